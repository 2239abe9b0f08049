/*
 * links.h - the url a file gets from the files connector's url_base. The
 * server's own paths (file://...) are never a link: a file without a
 * front matter url and without url_base has none.
 */
#ifndef CTX_CONNECTORS_FILES_LINKS_H
#define CTX_CONNECTORS_FILES_LINKS_H

/*
 * files__url_ok - 1 when u can be a url_base: http:// or https://, a host
 * after it, and no space or control byte anywhere.
 */
int files__url_ok(const char *u);

/*
 * files__url - base joined with the file's path rel (one '/' between
 * them), each byte of rel outside RFC 3986's unreserved set and '/'
 * percent-encoded. Returns a new string (ctx_free), or NULL when out of
 * memory.
 */
char *files__url(const char *base, const char *rel);

#endif
