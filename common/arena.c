/* common/arena.c: bump allocator for per-request and per-batch memory. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/cw.h"

typedef struct arena_block {
    struct arena_block *next;
    size_t cap;
    size_t used;
    _Alignas(16) unsigned char data[];
} arena_block;

struct cw_arena {
    arena_block *head;
    size_t block_bytes;
};

static arena_block *block_new(size_t cap)
{
    arena_block *b = malloc(sizeof *b + cap);
    if (!b) {
        return NULL;
    }
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

cw_arena *cw_arena_new(size_t block_bytes)
{
    cw_arena *a = malloc(sizeof *a);
    if (!a) {
        return NULL;
    }
    a->block_bytes = block_bytes < 256 ? 4096 : block_bytes;
    a->head = block_new(a->block_bytes);
    if (!a->head) {
        free(a);
        return NULL;
    }
    return a;
}

void cw_arena_free(cw_arena *a)
{
    if (!a) {
        return;
    }
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *cw_arena_alloc(cw_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) {
        return NULL;
    }
    arena_block *b = a->head;
    if (b->cap - b->used < need) {
        size_t cap = need > a->block_bytes ? need : a->block_bytes;
        arena_block *nb = block_new(cap);
        if (!nb) {
            return NULL;
        }
        /* Keep the partly used head in front when the new block is a one-off big one. */
        if (need > a->block_bytes) {
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            return nb->data;
        }
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

char *cw_arena_strndup(cw_arena *a, const char *s, size_t n)
{
    char *p = cw_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *cw_arena_strdup(cw_arena *a, const char *s)
{
    return cw_arena_strndup(a, s, strlen(s));
}

void cw_arena_reset(cw_arena *a)
{
    arena_block *b = a->head;
    /* Keep the last block in the chain (the first allocated), free the others. */
    while (b->next) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}
