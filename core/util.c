/*
 * util.c - buffer, UTF-8, hashing and suggestion helpers.
 */
#include "util.h"
#include "ctx.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ctx_buf_reserve(ctx_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1, cap;
    char *p;

    if (need <= b->cap)
        return CTX_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    p = ctx_realloc(b->data, cap);
    if (!p)
        return CTX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return CTX_OK;
}

int ctx_buf_append(ctx_buf *b, const void *p, size_t n)
{
    if (ctx_buf_reserve(b, n))
        return CTX_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CTX_OK;
}

int ctx_buf_puts(ctx_buf *b, const char *s)
{
    return ctx_buf_append(b, s, strlen(s));
}

int ctx_buf_printf(ctx_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CTX_EINVAL;
    if (ctx_buf_reserve(b, (size_t)n))
        return CTX_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CTX_OK;
}

void ctx_buf_reset(ctx_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ctx_buf_free(ctx_buf *b)
{
    ctx_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ctx_buf_steal(ctx_buf *b)
{
    char *p = b->data;
    if (!p)
        p = ctx_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* Length of the well-formed sequence at s (1..4), or 0 if ill-formed. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] > 0x8F)
            return 0;
        return 4;
    }
    return 0;
}

int ctx_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

int ctx_utf8_repair(const char *s, size_t n, ctx_buf *out, size_t *nbad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0, bad = 0, k;

    if (ctx_buf_reserve(out, n))
        return CTX_ENOMEM;
    while (i < n) {
        k = p[i] ? utf8_seq(p + i, n - i) : 0;
        if (k) {
            i += k;
            run += k;
            continue;
        }
        if (ctx_buf_append(out, p + i - run, run))
            return CTX_ENOMEM;
        run = 0;
        if (p[i]) {
            bad++;
            if (ctx_buf_append(out, "\xEF\xBF\xBD", 3))
                return CTX_ENOMEM;
        }
        i++;
    }
    if (ctx_buf_append(out, p + i - run, run))
        return CTX_ENOMEM;
    if (nbad)
        *nbad = bad;
    return CTX_OK;
}

void ctx_hash_hex(const void *const *parts, const size_t *lens, size_t nparts,
                  char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t i;

    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (i = 0; i < nparts; i++) {
        /* A separator keeps ("ab","c") and ("a","bc") apart. */
        unsigned char len8[8];
        uint64_t l = lens[i];
        for (int j = 0; j < 8; j++)
            len8[j] = (unsigned char)(l >> (8 * j));
        EVP_DigestUpdate(c, len8, sizeof len8);
        if (lens[i])
            EVP_DigestUpdate(c, parts[i], lens[i]);
    }
    EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64], prev, tmp;

    if (la >= 63 || lb >= 63)
        return (size_t)-1;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

const char *ctx_suggest(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1, limit = strlen(word) / 3 + 1, d;

    if (limit < 2)
        limit = 2;
    for (; *candidates; candidates++) {
        d = edit_distance(word, *candidates);
        if (d < bestd) {
            bestd = d;
            best = *candidates;
        }
    }
    return bestd <= limit ? best : NULL;
}

int ctx_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ctx_buf b = CTX_BUF_INIT;
    char chunk[65536];
    size_t n;

    if (!f)
        return errno == ENOENT ? CTX_ENOTFOUND : CTX_EIO;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (ctx_buf_append(&b, chunk, n)) {
            fclose(f);
            ctx_buf_free(&b);
            return CTX_ENOMEM;
        }
    }
    if (ferror(f)) {
        fclose(f);
        ctx_buf_free(&b);
        return CTX_EIO;
    }
    fclose(f);
    *len = b.len;
    *out = ctx_buf_steal(&b);
    return CTX_OK;
}

int ctx_strvec_add(ctx_strvec *l, const char *prefix, const char *s, size_t len)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    char *d;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = ctx_realloc(l->v, cap * sizeof *v);
        if (!v)
            return CTX_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(d = ctx_malloc(plen + len + 1)))
        return CTX_ENOMEM;
    memcpy(d, prefix ? prefix : "", plen);
    memcpy(d + plen, s, len);
    d[plen + len] = '\0';
    l->v[l->n++] = d;
    return CTX_OK;
}

void ctx_strvec_clear(ctx_strvec *l)
{
    for (size_t i = 0; i < l->n; i++)
        ctx_free(l->v[i]);
    l->n = 0;
}

void ctx_strvec_free(ctx_strvec *l)
{
    ctx_strvec_clear(l);
    ctx_free(l->v);
    l->v = NULL;
    l->cap = 0;
}

int ctx_iso8601_ms(const char *s, int64_t *ms)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, oh = 0, om = 0, sign;
    int64_t frac = 0, scale = 100;

    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return CTX_EINVAL;
    s += n;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        n = 0;
        if (sscanf(s + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
            return CTX_EINVAL;
        s += 1 + n;
        if (*s == '.')
            for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
                frac += (*s - '0') * scale;
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            sign = *s == '-' ? -1 : 1;
            n = 0;
            if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 &&
                sscanf(s + 1, "%2d%2d%n", &oh, &om, &n) != 2)
                return CTX_EINVAL;
            s += 1 + n;
            oh *= sign;
            om *= sign;
        }
    }
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return CTX_EINVAL;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - oh * 3600 - om * 60) * 1000 + frac;
    return CTX_OK;
}

int ctx_mkdir_p(const char *path)
{
    char buf[4096];
    size_t i, n = strlen(path);

    if (n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

int ctx_flock_take(const char *path, int wait_ms, volatile sig_atomic_t *cancel, int *fd)
{
    struct timespec nap = {0, 20 * 1000000L};
    int waited = 0;

    if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return CTX_EIO;
    while (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e != EWOULDBLOCK && e != EINTR) {
            close(*fd);
            *fd = -1;
            errno = e;
            return CTX_EIO;
        }
        if ((cancel && *cancel) || (wait_ms >= 0 && waited >= wait_ms)) {
            close(*fd);
            *fd = -1;
            return cancel && *cancel ? CTX_ECANCELED : CTX_EBUSY;
        }
        nanosleep(&nap, NULL);
        waited += 20;
    }
    return CTX_OK;
}

void ctx_flock_drop(int fd)
{
    if (fd >= 0)
        close(fd); /* the lock goes with the last descriptor of the open file */
}

void ctx_wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        ctx_free(s);
    }
}

void ctx_scrub(char *s, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    char *p;

    if (!n)
        return;
    while ((p = strstr(s, secret)))
        memset(p, '*', n);
}

int ctx_in_sorted(const int64_t *v, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == x;
}

void *ctx_pack_take(ctx_pack *k, size_t len, size_t align)
{
    size_t off = (k->used + align - 1) & ~(align - 1);

    k->used = off + len;
    return k->base ? k->base + off : NULL;
}

const char *ctx_pack_mem(ctx_pack *k, const char *s, size_t len)
{
    char *d;

    if (!s)
        return NULL;
    if ((d = ctx_pack_take(k, len + 1, 1))) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

const char *ctx_pack_str(ctx_pack *k, const char *s)
{
    return s ? ctx_pack_mem(k, s, strlen(s)) : NULL;
}

const char *const *ctx_pack_strv(ctx_pack *k, const char *const *v, size_t n)
{
    const char **d;

    if (!n || !v)
        return NULL;
    d = ctx_pack_take(k, n * sizeof *d, _Alignof(const char *));
    for (size_t i = 0; i < n; i++) {
        const char *s = ctx_pack_str(k, v[i]);
        if (d)
            d[i] = s;
    }
    return d;
}

int ctx_url_https_or_loopback(const char *url)
{
    static const char *const local[] = {"127.0.0.1", "localhost", "[::1]"};
    const char *host;
    size_t len;

    if (!url)
        return 0;
    if (!strncasecmp(url, "https://", 8))
        host = url + 8;
    else if (!strncasecmp(url, "http://", 7))
        host = url + 7;
    else
        return 0;
    len = strcspn(host, "/?#");
    if (!len || memchr(host, '@', len))
        return 0;
    if (host == url + 8)
        return 1;
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        size_t n = strlen(local[i]);
        if (len >= n && !strncasecmp(host, local[i], n) &&
            (len == n || (host[n] == ':' && strspn(host + n + 1, "0123456789") == len - n - 1)))
            return 1;
    }
    return 0;
}

long ctx_b64_decode(const char *s, size_t n, int url, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == (url ? '-' : '+'))
            v = 62;
        else if (c == (url ? '_' : '/'))
            v = 63;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}
