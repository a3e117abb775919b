/* index/hnsw.c: the approximate nearest-neighbour index of the dense side (issue 6):
 * HNSW (Malkov & Yashunin, TPAMI 2020) built single-threaded from the document
 * vectors, written as one checksummed file (dense.hnsw) and searched memory-mapped;
 * exact brute force over the same vectors is the option and the test oracle. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/dense_int.h"

#define HNSW_MAGIC "CWHNSW01"
#define MAX_LEVEL 31u

/* Layer-0 record of node i: [count, links[m0], pad] u32 then dim floats, 16-byte
 * aligned, so expanding a node touches its links and its neighbours' vectors in
 * contiguous memory (the layout hnswlib uses as well). */
struct idx_hnsw {
    dense_map map;
    uint32_t n, dim, m, m0, link_words, entry, max_level;
    size_t rec_bytes;
    const unsigned char *l0;   /* n records */
    const uint8_t *levels;     /* n */
    const uint32_t *upper_off; /* n: first upper slot of node i (levels >= 1) */
    const uint32_t *upper;     /* slots of (1 + m) u32 */
    uint64_t n_upper_slots;
};

struct idx_hnsw_searcher {
    const idx_hnsw *h;
    uint16_t *mark;
    uint16_t epoch;
    float *q;           /* aligned copy of the query */
    struct heap *cands; /* capacity n + 1: at most every node is pushed once */
    struct heap *top;   /* capacity IDX_DENSE_MAX_EF + 2 */
};

idx_hnsw_opts idx_hnsw_opts_default(void)
{
    return (idx_hnsw_opts){.m = 32, .ef_construction = 100, .seed = 1};
}

/* ---- distance ------------------------------------------------------------------- */

typedef float v4 __attribute__((vector_size(16)));

/* Dot product; a and b 16-byte aligned when dim % 16 == 0. Four independent vector
 * accumulators keep the adds pipelined without -ffast-math. */
static inline float dot(const float *a, const float *b, uint32_t dim)
{
    if (dim % 16 == 0) {
        v4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        const v4 *va = (const v4 *)(const void *)a, *vb = (const v4 *)(const void *)b;
        for (uint32_t i = 0; i < dim / 4; i += 4) {
            s0 += va[i] * vb[i];
            s1 += va[i + 1] * vb[i + 1];
            s2 += va[i + 2] * vb[i + 2];
            s3 += va[i + 3] * vb[i + 3];
        }
        v4 s = (s0 + s1) + (s2 + s3);
        return (s[0] + s[1]) + (s[2] + s[3]);
    }
    float s = 0;
    for (uint32_t i = 0; i < dim; i++) {
        s += a[i] * b[i];
    }
    return s;
}

/* ---- heaps of (distance, id); distance = -dot ----------------------------------- */

typedef struct cand {
    float dist;
    uint32_t id;
} cand;

typedef struct heap {
    cand *a;
    size_t n, cap;
} heap;

static int heap_reserve(heap *h, size_t cap)
{
    if (cap <= h->cap) {
        return CW_OK;
    }
    cand *a = realloc(h->a, cap * sizeof *a);
    if (!a) {
        return CW_ENOMEM;
    }
    h->a = a;
    h->cap = cap;
    return CW_OK;
}

/* max = true: largest distance on top. Capacity is reserved by the caller. */
static inline bool before(cand x, cand y, bool max)
{
    return max ? x.dist > y.dist : x.dist < y.dist;
}

static inline void heap_push(heap *h, cand c, bool max)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(c, h->a[p], max)) {
            break;
        }
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = c;
}

static inline cand heap_pop(heap *h, bool max)
{
    cand top = h->a[0];
    cand last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        cand bc = last;
        if (l < n && before(h->a[l], bc, max)) {
            best = l;
            bc = h->a[l];
        }
        if (l + 1 < n && before(h->a[l + 1], bc, max)) {
            best = l + 1;
        }
        if (best == i) {
            break;
        }
        h->a[i] = h->a[best];
        i = best;
    }
    if (n > 0) {
        h->a[i] = last;
    }
    return top;
}

/* ---- graph access shared by build and search ------------------------------------ */

typedef struct graph {
    uint32_t n, dim, m, m0, link_words;
    size_t rec_bytes;
    unsigned char *l0;
    uint32_t *upper;
    const uint32_t *upper_off;
} graph;

static inline uint32_t *links_at(const graph *g, uint32_t i, uint32_t level)
{
    if (level == 0) {
        return (uint32_t *)(void *)(g->l0 + (size_t)i * g->rec_bytes);
    }
    return g->upper + ((size_t)g->upper_off[i] + level - 1) * (g->m + 1);
}

static inline const float *vec_at(const graph *g, uint32_t i)
{
    return (const float *)(const void *)(g->l0 + (size_t)i * g->rec_bytes +
                                         (size_t)g->link_words * 4);
}

/* Visited marks with an epoch, cleared only when the 16-bit epoch wraps. */
typedef struct visited {
    uint16_t *mark;
    uint16_t epoch;
    uint32_t n;
} visited;

static void visited_next(visited *v)
{
    if (++v->epoch == 0) {
        memset(v->mark, 0, v->n * sizeof *v->mark);
        v->epoch = 1;
    }
}

/* Greedy walk with beam 1 on one upper layer (Malkov & Yashunin, Algorithm 5, lines 4-6). */
static uint32_t greedy(const graph *g, const float *q, uint32_t ep, float *ep_dist, uint32_t level)
{
    bool changed = true;
    while (changed) {
        changed = false;
        const uint32_t *l = links_at(g, ep, level);
        for (uint32_t j = 1; j <= l[0]; j++) {
            float dd = -dot(q, vec_at(g, l[j]), g->dim);
            if (dd < *ep_dist) {
                *ep_dist = dd;
                ep = l[j];
                changed = true;
            }
        }
    }
    return ep;
}

/* SEARCH-LAYER (Algorithm 2): beam search of width ef from ep on `level`; the ef
 * closest found are left in `top` (a max-heap). Capacity reserved by the caller:
 * cands n + 1 (a node is pushed at most once), top ef + 2. */
static void search_layer(const graph *g, visited *vis, const float *q, uint32_t ep, float ep_dist,
                         uint32_t ef, uint32_t level, heap *cands, heap *top)
{
    visited_next(vis);
    cands->n = 0;
    top->n = 0;
    vis->mark[ep] = vis->epoch;
    heap_push(cands, (cand){ep_dist, ep}, false);
    heap_push(top, (cand){ep_dist, ep}, true);
    float bound = ep_dist;
    while (cands->n > 0) {
        cand c = heap_pop(cands, false);
        if (c.dist > bound && top->n >= ef) {
            break;
        }
        const uint32_t *l = links_at(g, c.id, level);
        uint32_t cnt = l[0];
        for (uint32_t j = 1; j <= cnt; j++) {
            __builtin_prefetch(vec_at(g, l[j]));
        }
        for (uint32_t j = 1; j <= cnt; j++) {
            uint32_t nb = l[j];
            if (j < cnt) {
                __builtin_prefetch((const char *)vec_at(g, l[j + 1]) + 64);
            }
            if (vis->mark[nb] == vis->epoch) {
                continue;
            }
            vis->mark[nb] = vis->epoch;
            float dd = -dot(q, vec_at(g, nb), g->dim);
            if (top->n < ef || dd < bound) {
                heap_push(cands, (cand){dd, nb}, false);
                heap_push(top, (cand){dd, nb}, true);
                if (top->n > ef) {
                    heap_pop(top, true);
                }
                bound = top->a[0].dist;
            }
        }
    }
}

/* ---- build ---------------------------------------------------------------------- */

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->dist != y->dist) {
        return x->dist < y->dist ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* SELECT-NEIGHBORS-HEURISTIC (Algorithm 4, without extendCandidates and
 * keepPrunedConnections, as in hnswlib): walk candidates nearest first and keep one
 * only if it is closer to the base than to every neighbour kept so far. c is sorted
 * ascending; the kept ones are compacted to its front. Returns their number. */
static uint32_t select_heuristic(const graph *g, cand *c, uint32_t n, uint32_t max_keep)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n && kept < max_keep; i++) {
        bool good = true;
        const float *v = vec_at(g, c[i].id);
        for (uint32_t j = 0; j < kept; j++) {
            if (-dot(v, vec_at(g, c[j].id), g->dim) < c[i].dist) {
                good = false;
                break;
            }
        }
        if (good) {
            c[kept++] = c[i];
        }
    }
    return kept;
}

int idx_hnsw_build(const float *vecs, uint32_t n, uint32_t dim, const idx_hnsw_opts *opts,
                   const char *path, cw_err *err)
{
    if (n == 0 || dim == 0 || dim > IDX_DENSE_MAX_DIM || opts->m < 2 || opts->m > IDX_DENSE_MAX_M ||
        opts->ef_construction < 1 || opts->ef_construction > IDX_DENSE_MAX_EF) {
        return cw_err_set(err, CW_EINVAL,
                          "hnsw: invalid build (n %u >= 1, dim %u in [1, %u], m %u in [2, %u], "
                          "ef_construction %u in [1, %u])",
                          n, dim, IDX_DENSE_MAX_DIM, opts->m, IDX_DENSE_MAX_M,
                          opts->ef_construction, IDX_DENSE_MAX_EF);
    }
    graph g = {.n = n, .dim = dim, .m = opts->m, .m0 = 2 * opts->m};
    g.link_words = (g.m0 + 1 + 3) / 4 * 4;
    g.rec_bytes = (size_t)g.link_words * 4 + (size_t)dim * 4;
    g.rec_bytes = (g.rec_bytes + 15) / 16 * 16;
    uint8_t *levels = malloc(n);
    uint32_t *upper_off = malloc((size_t)n * sizeof *upper_off);
    visited vis = {.n = n, .epoch = 0};
    vis.mark = calloc(n, sizeof *vis.mark);
    heap cands = {0}, top = {0};
    cand *sel = NULL;
    g.l0 = calloc(n, g.rec_bytes);
    int rc = CW_OK;
    if (!levels || !upper_off || !vis.mark || !g.l0) {
        rc = cw_err_set(err, CW_ENOMEM, "hnsw: out of memory for %u x %u", n, dim);
        goto fail;
    }
    /* Levels l = floor(-ln U * mL), mL = 1 / ln M (section 4.1 of the paper). */
    cw_rng rng;
    cw_rng_seed(&rng, opts->seed);
    double ml = 1.0 / log((double)opts->m);
    uint64_t slots = 0;
    uint32_t max_level = 0;
    for (uint32_t i = 0; i < n; i++) {
        double l = floor(-log(cw_rng_uniform(&rng)) * ml);
        levels[i] = (uint8_t)(l > MAX_LEVEL ? MAX_LEVEL : l);
        upper_off[i] = (uint32_t)slots;
        slots += levels[i];
        memcpy((void *)vec_at(&g, i), vecs + (size_t)i * dim, (size_t)dim * sizeof(float));
    }
    if (slots > UINT32_MAX / (g.m + 1)) {
        rc = cw_err_set(err, CW_ELIMIT, "hnsw: too many upper-layer nodes");
        goto fail;
    }
    g.upper = calloc(slots ? slots : 1, (size_t)(g.m + 1) * sizeof(uint32_t));
    g.upper_off = upper_off;
    size_t cap = (size_t)opts->ef_construction + g.m0 + 2;
    sel = malloc((cap + g.m0 + 1) * sizeof *sel);
    if (!g.upper || !sel || heap_reserve(&cands, (size_t)n + 1) != CW_OK ||
        heap_reserve(&top, cap) != CW_OK) {
        rc = cw_err_set(err, CW_ENOMEM, "hnsw: out of memory");
        goto fail;
    }
    uint32_t entry = 0;
    max_level = levels[0];
    for (uint32_t i = 1; i < n; i++) {
        if (i % 4096 == 0) {
            cw_progress_report(&opts->progress, "hnsw", i, n);
            if (cw_interrupted()) {
                rc = cw_err_set(err, CW_EINTR, "hnsw: build interrupted at %u of %u", i, n);
                goto fail;
            }
        }
        const float *q = vec_at(&g, i);
        uint32_t li = levels[i];
        uint32_t ep = entry;
        float ep_dist = -dot(q, vec_at(&g, ep), dim);
        for (uint32_t l = max_level; l > li; l--) {
            ep = greedy(&g, q, ep, &ep_dist, l);
        }
        for (int l = (int)CW_MIN(li, max_level); l >= 0; l--) {
            uint32_t lvl = (uint32_t)l;
            uint32_t mmax = lvl == 0 ? g.m0 : g.m;
            search_layer(&g, &vis, q, ep, ep_dist, opts->ef_construction, lvl, &cands, &top);
            uint32_t nc = (uint32_t)top.n;
            memcpy(sel, top.a, nc * sizeof *sel);
            qsort(sel, nc, sizeof *sel, cand_cmp);
            ep = sel[0].id;
            ep_dist = sel[0].dist;
            uint32_t kept = select_heuristic(&g, sel, nc, g.m);
            uint32_t *mine = links_at(&g, i, lvl);
            mine[0] = kept;
            for (uint32_t j = 0; j < kept; j++) {
                mine[j + 1] = sel[j].id;
            }
            /* Reverse links, shrinking an overfull list with the same heuristic. */
            for (uint32_t j = 0; j < kept; j++) {
                uint32_t nb = mine[j + 1];
                uint32_t *theirs = links_at(&g, nb, lvl);
                if (theirs[0] < mmax) {
                    theirs[++theirs[0]] = i;
                    continue;
                }
                cand *tmp = sel + cap;
                const float *vn = vec_at(&g, nb);
                for (uint32_t t = 0; t < theirs[0]; t++) {
                    tmp[t] = (cand){-dot(vn, vec_at(&g, theirs[t + 1]), dim), theirs[t + 1]};
                }
                tmp[theirs[0]] = (cand){-dot(vn, q, dim), i};
                qsort(tmp, mmax + 1, sizeof *tmp, cand_cmp);
                uint32_t k2 = select_heuristic(&g, tmp, mmax + 1, mmax);
                theirs[0] = k2;
                for (uint32_t t = 0; t < k2; t++) {
                    theirs[t + 1] = tmp[t].id;
                }
            }
        }
        if (li > max_level) {
            max_level = li;
            entry = i;
        }
    }
    cw_progress_report(&opts->progress, "hnsw", n, n);
    uint64_t meta[DENSE_N_META] = {
        n,          dim,         g.m,  g.m0, g.link_words, entry, max_level, opts->ef_construction,
        opts->seed, g.rec_bytes, slots};
    dense_section s[4] = {
        {levels, n},
        {upper_off, (uint64_t)n * 4},
        {g.upper, slots * (g.m + 1) * 4},
        {g.l0, (uint64_t)n * g.rec_bytes},
    };
    rc = dense_file_write(path, HNSW_MAGIC, meta, s, 4, err);
fail:
    free(levels);
    free(upper_off);
    free(vis.mark);
    free(cands.a);
    free(top.a);
    free(sel);
    free(g.l0);
    free(g.upper);
    return rc;
}

/* ---- the mapped file ------------------------------------------------------------ */

int idx_hnsw_open(const char *path, idx_hnsw **out, cw_err *err)
{
    idx_hnsw *h = calloc(1, sizeof *h);
    if (!h) {
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    int rc = dense_file_map(path, HNSW_MAGIC, 4, &h->map, err);
    if (rc != CW_OK) {
        free(h);
        return rc;
    }
    const uint64_t *mt = h->map.meta;
    uint64_t n = mt[0], dim = mt[1], m = mt[2], m0 = mt[3], lw = mt[4], entry = mt[5], maxl = mt[6],
             rec = mt[9], slots = mt[10];
    if (n == 0 || n > UINT32_MAX || dim == 0 || dim > IDX_DENSE_MAX_DIM || m < 2 ||
        m > IDX_DENSE_MAX_M || m0 != 2 * m || lw < m0 + 1 || lw > m0 + 4 ||
        rec != (lw * 4 + dim * 4 + 15) / 16 * 16 || entry >= n || maxl > MAX_LEVEL) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte 16: invalid graph parameters", path);
        goto fail;
    }
    if (h->map.sect[0].bytes != n || h->map.sect[1].bytes != n * 4 ||
        h->map.sect[2].bytes != slots * (m + 1) * 4 || h->map.sect[3].bytes != n * rec) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: section sizes do not match %llu x %llu", path,
                        (unsigned long long)n, (unsigned long long)dim);
        goto fail;
    }
    h->n = (uint32_t)n;
    h->dim = (uint32_t)dim;
    h->m = (uint32_t)m;
    h->m0 = (uint32_t)m0;
    h->link_words = (uint32_t)lw;
    h->entry = (uint32_t)entry;
    h->max_level = (uint32_t)maxl;
    h->rec_bytes = (size_t)rec;
    h->levels = h->map.sect[0].data;
    h->upper_off = h->map.sect[1].data;
    h->upper = h->map.sect[2].data;
    h->l0 = h->map.sect[3].data;
    h->n_upper_slots = slots;
    /* Bounds of every link, so a search can never leave the mapping. */
    const unsigned char *base = h->map.base;
    if (h->levels[h->entry] != h->max_level) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: entry point %u is not on the top level", path,
                        h->entry);
        goto fail;
    }
    for (uint32_t i = 0; i < h->n; i++) {
        const uint32_t *l = (const uint32_t *)(const void *)(h->l0 + (size_t)i * rec);
        if (l[0] > m0) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: node %u has %u links (max %llu)", path,
                            (size_t)((const unsigned char *)l - base), i, l[0],
                            (unsigned long long)m0);
            goto fail;
        }
        for (uint32_t j = 1; j <= l[0]; j++) {
            if (l[j] >= n) {
                rc = cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: link to %u out of %u nodes", path,
                                (size_t)((const unsigned char *)(l + j) - base), l[j], h->n);
                goto fail;
            }
        }
        uint32_t lv = h->levels[i];
        if (lv > h->max_level || (lv > 0 && (uint64_t)h->upper_off[i] + lv > slots)) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: node %u has a bad level %u", path, i, lv);
            goto fail;
        }
        for (uint32_t k = 0; k < lv; k++) {
            const uint32_t *u = h->upper + ((size_t)h->upper_off[i] + k) * (m + 1);
            bool bad = u[0] > m;
            for (uint32_t j = 1; !bad && j <= u[0]; j++) {
                bad = u[j] >= n || h->levels[u[j]] < k + 1;
            }
            if (bad) {
                rc = cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: bad upper links of node %u", path,
                                (size_t)((const unsigned char *)u - base), i);
                goto fail;
            }
        }
    }
    *out = h;
    return CW_OK;
fail:
    dense_file_unmap(&h->map);
    free(h);
    return rc;
}

void idx_hnsw_close(idx_hnsw *h)
{
    if (h) {
        dense_file_unmap(&h->map);
        free(h);
    }
}

uint32_t idx_hnsw_n(const idx_hnsw *h)
{
    return h->n;
}

uint32_t idx_hnsw_dim(const idx_hnsw *h)
{
    return h->dim;
}

const float *idx_hnsw_vector(const idx_hnsw *h, uint32_t i)
{
    if (i >= h->n) {
        return NULL;
    }
    return (const float *)(const void *)(h->l0 + (size_t)i * h->rec_bytes +
                                         (size_t)h->link_words * 4);
}

uint64_t idx_hnsw_bytes(const idx_hnsw *h)
{
    return h->map.bytes;
}

idx_hnsw_searcher *idx_hnsw_searcher_new(const idx_hnsw *h)
{
    idx_hnsw_searcher *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->h = h;
    s->mark = calloc(h->n, sizeof *s->mark);
    s->q = aligned_alloc(64, ((size_t)h->dim * 4 + 63) / 64 * 64);
    s->cands = calloc(1, sizeof *s->cands);
    s->top = calloc(1, sizeof *s->top);
    if (!s->mark || !s->q || !s->cands || !s->top ||
        heap_reserve(s->cands, (size_t)h->n + 1) != CW_OK ||
        heap_reserve(s->top, IDX_DENSE_MAX_EF + 2) != CW_OK) {
        idx_hnsw_searcher_free(s);
        return NULL;
    }
    return s;
}

void idx_hnsw_searcher_free(idx_hnsw_searcher *s)
{
    if (s) {
        free(s->mark);
        free(s->q);
        if (s->cands) {
            free(s->cands->a);
        }
        if (s->top) {
            free(s->top->a);
        }
        free(s->cands);
        free(s->top);
        free(s);
    }
}

static int hit_cmp(const void *a, const void *b)
{
    const idx_hit *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int exact_search(const idx_hnsw *h, const float *q, uint32_t k, idx_hit *hits,
                        size_t *n_hits, cw_err *err)
{
    float qa[IDX_DENSE_MAX_DIM] __attribute__((aligned(16)));
    memcpy(qa, q, h->dim * sizeof(float));
    heap top = {0};
    if (heap_reserve(&top, (size_t)k + 1) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "hnsw: out of memory");
    }
    /* Min-heap of the best k by (score, -id); distance = -score, ties broken so the
     * lower id wins (it is scanned first and an equal later score does not replace it). */
    for (uint32_t i = 0; i < h->n; i++) {
        float s = dot(qa, idx_hnsw_vector(h, i), h->dim);
        if (top.n < k) {
            heap_push(&top, (cand){-s, i}, true);
        } else if (-s < top.a[0].dist) {
            heap_pop(&top, true);
            heap_push(&top, (cand){-s, i}, true);
        }
    }
    size_t n = top.n;
    for (size_t i = 0; i < n; i++) {
        hits[i] = (idx_hit){top.a[i].id, -(double)top.a[i].dist};
    }
    qsort(hits, n, sizeof *hits, hit_cmp);
    free(top.a);
    *n_hits = n;
    return CW_OK;
}

int idx_hnsw_search(const idx_hnsw *h, idx_hnsw_searcher *s, const float *q, uint32_t k,
                    uint32_t ef, bool exact, idx_hit *hits, size_t *n_hits, cw_err *err)
{
    if (k < 1 || k > IDX_MAX_K) {
        return cw_err_set(err, CW_EINVAL, "dense search: k %u outside [1, %u]", k, IDX_MAX_K);
    }
    if (exact) {
        return exact_search(h, q, k, hits, n_hits, err);
    }
    if (ef > IDX_DENSE_MAX_EF) {
        return cw_err_set(err, CW_EINVAL, "dense search: ef %u over %u", ef, IDX_DENSE_MAX_EF);
    }
    ef = CW_MAX(ef, k);
    assert(s && s->h == h);
    memcpy(s->q, q, h->dim * sizeof(float));
    graph g = {.n = h->n,
               .dim = h->dim,
               .m = h->m,
               .m0 = h->m0,
               .link_words = h->link_words,
               .rec_bytes = h->rec_bytes,
               .l0 = (unsigned char *)(uintptr_t)h->l0,
               .upper = (uint32_t *)(uintptr_t)h->upper,
               .upper_off = h->upper_off};
    uint32_t ep = h->entry;
    float ep_dist = -dot(s->q, vec_at(&g, ep), g.dim);
    for (uint32_t l = h->max_level; l > 0; l--) {
        ep = greedy(&g, s->q, ep, &ep_dist, l);
    }
    visited vis = {.mark = s->mark, .epoch = s->epoch, .n = h->n};
    heap *top = s->top;
    search_layer(&g, &vis, s->q, ep, ep_dist, ef, 0, s->cands, top);
    s->epoch = vis.epoch;
    size_t n = top->n;
    idx_hit tmp[IDX_DENSE_MAX_EF + 2];
    for (size_t i = 0; i < n; i++) {
        tmp[i] = (idx_hit){top->a[i].id, -(double)top->a[i].dist};
    }
    qsort(tmp, n, sizeof *tmp, hit_cmp);
    size_t nk = CW_MIN(n, (size_t)k);
    memcpy(hits, tmp, nk * sizeof *hits);
    *n_hits = nk;
    return CW_OK;
}
