/*
 * test_files_links.c - the files connector's links: which url_base values
 * it takes, and how a file's path joins one (percent-encoding, one '/').
 */
#include <criterion/criterion.h>
#include <string.h>

#include "connectors/files/links.h"
#include "core/ctx.h"

Test(files_links, url_base_must_be_an_http_address)
{
    static const char *const ok[] = {"https://wiki.corp.test", "https://wiki.corp.test/docs/",
                                     "http://intranet:8080/w", "https://x.test/a%20b"};
    static const char *const bad[] = {"", "file:///srv/wiki", "/srv/wiki", "wiki.corp.test",
                                      "ftp://x.test/", "https://", "http:///x",
                                      "https://x.test/a b", "https://x.test/\t",
                                      "https://x.test/\x7f", "HTTPS:/x.test"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert(files__url_ok(ok[i]), "refused %s", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!files__url_ok(bad[i]), "took \"%s\"", bad[i]);
}

Test(files_links, a_path_joins_the_base_percent_encoded)
{
    static const struct {
        const char *base, *rel, *want;
    } cases[] = {
        {"https://w.test/docs", "hr/pay.md", "https://w.test/docs/hr/pay.md"},
        {"https://w.test/docs/", "hr/pay.md", "https://w.test/docs/hr/pay.md"},
        {"https://w.test", "a b/c#d?e%f.md", "https://w.test/a%20b/c%23d%3Fe%25f.md"},
        {"https://w.test", "caf\xc3\xa9.txt", "https://w.test/caf%C3%A9.txt"},
        {"https://w.test", "keep-._~/x.json", "https://w.test/keep-._~/x.json"},
        {"https://w.test", "q+r&s=t.md", "https://w.test/q%2Br%26s%3Dt.md"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = files__url(cases[i].base, cases[i].rel);
        cr_assert(got);
        cr_assert_str_eq(got, cases[i].want, "%s + %s", cases[i].base, cases[i].rel);
        ctx_free(got);
    }
}
