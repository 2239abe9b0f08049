/* no_entry.c - a shared object that forgot to export ctx_connector_entry. */
int ctx_not_the_entry(void);
__attribute__((visibility("default"))) int ctx_not_the_entry(void) { return 0; }
