/*
 * meta.h - what a file says about itself and its folders, for the files
 * connector: Markdown front matter, and the ACL objects of front matter,
 * sidecars (<file>.acl.json) and folders (_acl.json).
 */
#ifndef CTX_CONNECTORS_FILES_META_H
#define CTX_CONNECTORS_FILES_META_H

#include <stddef.h>

#include <jansson.h>

/* What one file's permissions resolve to; strings owned by the json. */
typedef struct file_acl {
    json_t *src;    /* the object they came from (new reference), or NULL */
    const char **allow, **deny, **labels;
    size_t n_allow, n_deny, n_labels;
    char sig[65];   /* hash of the canonical ACL, for change detection */
} file_acl;

/*
 * files__front_matter - if text starts with a "---" line, read key: value
 * lines up to the closing "---" into a JSON object (*fm, new) and set
 * *body_off past it; otherwise *fm = NULL and *body_off = 0. -1 with why
 * set when it is malformed.
 */
int files__front_matter(const char *text, size_t len, json_t **fm, size_t *body_off,
                        char *why, size_t whylen);

/* files__acl_from - a's lists from obj's allow/deny/labels (obj borrowed;
 * a holds a reference) and its signature; -1 with why set when malformed. */
int files__acl_from(json_t *obj, file_acl *a, char *why, size_t whylen);
void files__acl_free(file_acl *a);

/*
 * files__load_json - the JSON object in the file at path (new), or NULL:
 * *missing set when there is no such file, else why says what is wrong.
 */
json_t *files__load_json(const char *path, char *why, size_t whylen, int *missing);

#endif
