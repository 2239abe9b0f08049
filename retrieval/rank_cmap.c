/*
 * rank_cmap.c - the chunk map's storage (rank_int.h): slots for the live
 * chunks only, found by id through a bit per id and a running count per
 * 64 ids.
 */
#include "rank_int.h"

#include <string.h>

#include "../core/util.h"

/* grow - room for n elements of size bytes in *p (cap *cap): 0 or CTX_ENOMEM. */
static int grow(void **p, int64_t *cap, int64_t n, size_t size)
{
    int64_t c = *cap ? *cap : 1024;
    void *v;

    if (n <= *cap)
        return CTX_OK;
    while (c < n)
        c *= 2;
    if (!(v = ctx_realloc(*p, (size_t)c * size)))
        return CTX_ENOMEM;
    *p = v;
    *cap = c;
    return CTX_OK;
}

/* list_room - room for one more id in acl's list (growing byacl to hold
 * acl): 0 or CTX_ENOMEM. */
static int list_room(rank_cmap *m, int32_t acl)
{
    rank_idlist *l;

    if (acl >= m->nbyacl) {
        int64_t n = m->nbyacl ? m->nbyacl : 64;
        rank_idlist *v;
        while (n <= acl)
            n *= 2;
        if (!(v = ctx_realloc(m->byacl, (size_t)n * sizeof *v)))
            return CTX_ENOMEM;
        memset(v + m->nbyacl, 0, (size_t)(n - m->nbyacl) * sizeof *v);
        m->byacl = v;
        m->nbyacl = n;
    }
    l = &m->byacl[acl];
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4; /* a set per document is common */
        uint32_t *ids;
        if (l->cap >= UINT32_MAX / 2 || !(ids = ctx_realloc(l->ids, (size_t)cap * sizeof *ids)))
            return CTX_ENOMEM;
        l->ids = ids;
        l->cap = cap;
    }
    return CTX_OK;
}

static void lists_free(rank_cmap *m)
{
    for (int64_t i = 0; i < m->nbyacl; i++)
        ctx_free(m->byacl[i].ids);
    ctx_free(m->byacl);
    m->byacl = NULL;
    m->nbyacl = 0;
}

int rank__cmap_append(rank_cmap *m, int64_t id, int32_t acl, int32_t src, int32_t len)
{
    int64_t w = id >> 6, cw = m->capwords, cs = m->capslots;

    if (id <= 0)
        return CTX_OK;
    if (id > (int64_t)UINT32_MAX && !m->nolists) {
        lists_free(m); /* the lists hold 32-bit ids, as the frequency maps do */
        m->nolists = 1;
    }
    if (!m->nolists && acl > 0 && list_room(m, acl))
        return CTX_ENOMEM;
    /* the words first (bits and before grow together), then the slots */
    if (w >= m->capwords) {
        void *x = m->w;
        if (grow(&x, &cw, w + 1, sizeof *m->w))
            return CTX_ENOMEM;
        m->w = x;
        m->capwords = cw;
    }
    if (m->nslots == m->capslots) {
        void *a = m->acl, *s = m->src, *l = m->len;
        if (grow(&a, &cs, m->nslots + 1, sizeof *m->acl))
            return CTX_ENOMEM;
        m->acl = a;
        cs = m->capslots;
        if (grow(&s, &cs, m->nslots + 1, sizeof *m->src))
            return CTX_ENOMEM;
        m->src = s;
        cs = m->capslots;
        if (grow(&l, &cs, m->nslots + 1, sizeof *m->len))
            return CTX_ENOMEM;
        m->len = l;
        m->capslots = cs;
    }
    while (m->nwords <= w) { /* words with no slot yet: all their slots come after */
        m->w[m->nwords].bits = 0;
        m->w[m->nwords++].before = (uint64_t)m->nslots;
    }
    m->w[w].bits |= (uint64_t)1 << (id & 63);
    m->acl[m->nslots] = acl;
    m->src[m->nslots] = src;
    m->len[m->nslots++] = len;
    if (!m->nolists && acl > 0) {
        rank_idlist *l = &m->byacl[acl];
        l->ids[l->n++] = (uint32_t)id;
    }
    return CTX_OK;
}

void rank__cmap_compact(rank_cmap *m)
{
    int64_t keep = 0;

    if (m->dead <= m->nslots - m->dead || m->dead < 1024)
        return;
    for (int64_t i = 0; i < m->nbyacl; i++) /* listed again below, live ones only */
        m->byacl[i].n = 0;
    for (int64_t w = 0, s = 0; w < m->nwords; w++) {
        uint64_t b = m->w[w].bits;
        m->w[w].before = (uint64_t)keep;
        for (uint64_t left = b; left; left &= left - 1, s++) {
            if (!m->acl[s]) {
                m->w[w].bits &= ~(left & -left); /* its lowest set bit: this slot's */
                continue;
            }
            if (!m->nolists) { /* the list had room for it before */
                rank_idlist *l = &m->byacl[m->acl[s]];
                l->ids[l->n++] = (uint32_t)(w * 64 + __builtin_ctzll(left));
            }
            m->acl[keep] = m->acl[s];
            m->src[keep] = m->src[s];
            m->len[keep++] = m->len[s];
        }
    }
    m->nslots = keep;
    m->dead = 0;
    /* give the memory back: what is left, and room to grow */
    if (m->capslots > 2 * keep + 1024) {
        int64_t cap = keep + keep / 2 + 1024;
        int32_t *a = ctx_realloc(m->acl, (size_t)cap * sizeof *a);
        int32_t *s = ctx_realloc(m->src, (size_t)cap * sizeof *s);
        int32_t *l = ctx_realloc(m->len, (size_t)cap * sizeof *l);
        /* a shrink that fails leaves the bigger block: each holds cap either way */
        if (a)
            m->acl = a;
        if (s)
            m->src = s;
        if (l)
            m->len = l;
        m->capslots = cap;
    }
}

void rank__cmap_free(rank_cmap *m)
{
    lists_free(m);
    ctx_free(m->w);
    ctx_free(m->acl);
    ctx_free(m->src);
    ctx_free(m->len);
    memset(m, 0, sizeof *m);
}

/* copy_of - n elements of size bytes of p, or NULL (also for none). */
static void *copy_of(const void *p, int64_t n, size_t size)
{
    void *d = n ? ctx_malloc((size_t)n * size) : NULL;
    if (d)
        memcpy(d, p, (size_t)n * size);
    return d;
}

int rank__cmap_copy(rank_cmap *dst, const rank_cmap *src)
{
    memset(dst, 0, sizeof *dst);
    if (!src->nwords)
        return CTX_OK;
    dst->w = copy_of(src->w, src->nwords, sizeof *src->w);
    dst->capwords = dst->nwords = src->nwords;
    if (src->nslots) {
        dst->acl = copy_of(src->acl, src->nslots, sizeof *src->acl);
        dst->src = copy_of(src->src, src->nslots, sizeof *src->src);
        dst->len = copy_of(src->len, src->nslots, sizeof *src->len);
    }
    dst->capslots = dst->nslots = src->nslots;
    dst->dead = src->dead;
    dst->nolists = src->nolists;
    if (!dst->w || (src->nslots && (!dst->acl || !dst->src || !dst->len)))
        goto oom;
    if (src->nbyacl) {
        if (!(dst->byacl = ctx_calloc((size_t)src->nbyacl, sizeof *dst->byacl)))
            goto oom;
        dst->nbyacl = src->nbyacl;
        for (int64_t i = 0; i < src->nbyacl; i++) {
            const rank_idlist *l = &src->byacl[i];
            if (l->n && !(dst->byacl[i].ids = copy_of(l->ids, l->n, sizeof *l->ids)))
                goto oom;
            dst->byacl[i].n = dst->byacl[i].cap = l->n;
        }
    }
    return CTX_OK;
oom:
    rank__cmap_free(dst);
    return CTX_ENOMEM;
}

int64_t rank_map_bytes(const rank_conn *rc)
{
    const rank_cmap *m = &rc->map;
    int64_t lists = m->nbyacl * (int64_t)sizeof *m->byacl;

    for (int64_t i = 0; i < m->nbyacl; i++)
        lists += (int64_t)m->byacl[i].cap * (int64_t)sizeof *m->byacl[i].ids;
    return m->capwords * (int64_t)sizeof *m->w +
           m->capslots * (int64_t)(sizeof *m->acl + sizeof *m->src + sizeof *m->len) + lists;
}
