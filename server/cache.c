/* server/cache.c: a bounded result cache for /search. A hit skips retrieval, feature
 * extraction and snippets (the costly steps: ~1 ms of snippet analysis per Cranfield query)
 * but never the impression log: every response still gets its own impression with the
 * cached ranking, which a deterministic ranker would have produced again. One cache per
 * serving state, so a reload starts empty. Sharded; a shard over its byte budget is emptied
 * whole (no LRU bookkeeping on the hot path). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

#define N_SHARDS 16
#define N_BUCKETS 1024 /* per shard */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen, vlen;
    char data[]; /* key then value */
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry *buckets[N_BUCKETS];
    size_t bytes;
} shard;

struct srv_cache {
    size_t shard_budget;
    shard shards[N_SHARDS];
};

srv_cache *srv_cache_new(size_t max_bytes)
{
    if (max_bytes == 0) {
        return NULL;
    }
    srv_cache *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->shard_budget = max_bytes / N_SHARDS;
    for (int i = 0; i < N_SHARDS; i++) {
        pthread_mutex_init(&c->shards[i].mu, NULL);
    }
    return c;
}

static void shard_clear(shard *sh)
{
    for (int b = 0; b < N_BUCKETS; b++) {
        entry *e = sh->buckets[b];
        while (e) {
            entry *next = e->next;
            free(e);
            e = next;
        }
        sh->buckets[b] = NULL;
    }
    sh->bytes = 0;
}

void srv_cache_free(srv_cache *c)
{
    if (!c) {
        return;
    }
    for (int i = 0; i < N_SHARDS; i++) {
        shard_clear(&c->shards[i]);
        pthread_mutex_destroy(&c->shards[i].mu);
    }
    free(c);
}

bool srv_cache_get(srv_cache *c, const void *key, size_t klen, void **val, size_t *vlen)
{
    if (!c) {
        return false;
    }
    uint64_t h = cw_hash64(key, klen, 0x5eed);
    shard *sh = &c->shards[h % N_SHARDS];
    bool found = false;
    pthread_mutex_lock(&sh->mu);
    for (entry *e = sh->buckets[(h / N_SHARDS) % N_BUCKETS]; e; e = e->next) {
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) {
            void *v = malloc(e->vlen ? e->vlen : 1);
            if (v) {
                memcpy(v, e->data + klen, e->vlen);
                *val = v;
                *vlen = e->vlen;
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return found;
}

void srv_cache_put(srv_cache *c, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!c) {
        return;
    }
    size_t bytes = sizeof(entry) + klen + vlen;
    if (bytes > c->shard_budget) {
        return;
    }
    entry *n = malloc(bytes);
    if (!n) {
        return;
    }
    uint64_t h = cw_hash64(key, klen, 0x5eed);
    n->hash = h;
    n->klen = klen;
    n->vlen = vlen;
    memcpy(n->data, key, klen);
    memcpy(n->data + klen, val, vlen);
    shard *sh = &c->shards[h % N_SHARDS];
    entry **head = &sh->buckets[(h / N_SHARDS) % N_BUCKETS];
    pthread_mutex_lock(&sh->mu);
    for (entry *e = *head; e; e = e->next) {
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) {
            pthread_mutex_unlock(&sh->mu); /* another thread stored it meanwhile */
            free(n);
            return;
        }
    }
    if (sh->bytes + bytes > c->shard_budget) {
        shard_clear(sh);
        head = &sh->buckets[(h / N_SHARDS) % N_BUCKETS];
    }
    n->next = *head;
    *head = n;
    sh->bytes += bytes;
    pthread_mutex_unlock(&sh->mu);
}
