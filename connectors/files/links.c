/*
 * links.c - the files connector's links (see links.h): a url_base checked,
 * and joined with a file's path.
 */
#include "links.h"

#include <string.h>

#include "../../core/util.h"

int files__url_ok(const char *u)
{
    size_t skip = !strncmp(u, "https://", 8) ? 8 : !strncmp(u, "http://", 7) ? 7 : 0;

    if (!skip || !u[skip] || u[skip] == '/')
        return 0;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

char *files__url(const char *base, const char *rel)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(base);
    ctx_buf b = CTX_BUF_INIT;
    int rc = ctx_buf_append(&b, base, n);

    if (!rc && n && base[n - 1] != '/')
        rc = ctx_buf_append(&b, "/", 1);
    for (const unsigned char *p = (const unsigned char *)rel; !rc && *p; p++) {
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            rc = ctx_buf_append(&b, (const char *)p, 1);
        else
            rc = ctx_buf_append(&b, esc, 3);
    }
    if (!rc)
        rc = ctx_buf_append(&b, "", 1);
    if (rc) {
        ctx_buf_free(&b);
        return NULL;
    }
    return ctx_buf_steal(&b);
}
