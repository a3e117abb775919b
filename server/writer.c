/* server/writer.c: the single log-writer thread. Request threads push impression jobs
 * (fire and forget: the query path never waits on disk) and events jobs (the request
 * waits until its COMMIT returned) into a bounded queue; the writer takes everything
 * queued, writes it in one transaction (each job in its own savepoint) and commits once. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

static void run_batch(srv_writer *w, srv_job **jobs, unsigned n)
{
    cw_err err;
    /* Only acknowledged data (events) needs the configured fsync; a batch of impressions
     * alone commits without one and becomes durable with the next synced commit. */
    bool has_events = false;
    for (unsigned i = 0; i < n && !has_events; i++) {
        has_events = jobs[i]->kind == SRV_JOB_EVENTS;
    }
    causal_sync want = has_events ? w->sync : CAUSAL_SYNC_NORMAL;
    int rc = CW_OK;
    if (want != w->cur_sync) {
        rc = causal_log_set_sync(w->log, want, &err);
        if (rc == CW_OK) {
            w->cur_sync = want;
        }
    }
    if (rc == CW_OK) {
        rc = causal_log_begin(w->log, &err);
    }
    uint64_t imps = 0, evs = 0, dups = 0, rejected = 0;
    /* Runs of impression jobs go in one append (one savepoint): a savepoint per
     * impression cost as much as the rows. Only if the run fails (a bug: the server built
     * them) is it retried one by one so the good ones still land. */
    causal_impression *run = malloc(n * sizeof *run);
    for (unsigned i = 0; i < n && rc == CW_OK; i++) {
        srv_job *j = jobs[i];
        unsigned len = 0;
        while (run && i + len < n && jobs[i + len]->kind == SRV_JOB_IMPRESSION) {
            run[len] = jobs[i + len]->imp;
            len++;
        }
        if (len > 1) {
            cw_err run_err;
            if (causal_log_append_impressions(w->log, run, len, &run_err) == CW_OK) {
                imps += len;
                i += len - 1;
                continue;
            }
        }
        if (j->kind == SRV_JOB_IMPRESSION) {
            j->result = causal_log_append_impressions(w->log, &j->imp, 1, &j->err);
            if (j->result == CW_OK) {
                imps++;
            } else {
                /* Our own bug (the server built it): say so loudly, keep the others. */
                fprintf(stderr, "causeway serve: impression %llu not logged: %s\n",
                        (unsigned long long)j->imp.id, j->err.msg);
                atomic_fetch_add(&w->metrics->impressions_failed, 1);
            }
        } else {
            j->result = causal_log_append_events(w->log, j->events, j->n_events, j->rejects,
                                                 &j->n_rejects, &j->n_duplicates, &j->err);
            if (j->result == CW_OK) {
                evs += j->n_events - j->n_duplicates;
                dups += j->n_duplicates;
            } else if (j->n_rejects > 0) {
                rejected += j->n_events;
            }
        }
    }
    free(run);
    if (rc == CW_OK) {
        rc = causal_log_commit(w->log, &err);
    }
    if (rc == CW_OK) {
        atomic_fetch_add(&w->metrics->commits, 1);
        atomic_fetch_add(&w->metrics->impressions_logged, imps);
        atomic_fetch_add(&w->metrics->events_written, evs);
        atomic_fetch_add(&w->metrics->events_duplicate, dups);
        atomic_fetch_add(&w->metrics->events_rejected, rejected);
    } else {
        /* Nothing of this batch is durable: no event of it may be acknowledged. */
        fprintf(stderr, "causeway serve: log commit failed, %u jobs lost: %s\n", n, err.msg);
        atomic_fetch_add(&w->metrics->commit_failures, 1);
        for (unsigned i = 0; i < n; i++) {
            if (jobs[i]->kind == SRV_JOB_IMPRESSION) {
                atomic_fetch_add(&w->metrics->impressions_failed, 1);
            } else if (jobs[i]->result == CW_OK || jobs[i]->n_rejects == 0) {
                jobs[i]->result = err.code ? err.code : CW_EIO;
                jobs[i]->err = err;
                jobs[i]->n_rejects = 0;
            }
        }
    }
    /* Impression jobs are ours to free; events jobs live in their request's arena, which
     * the request thread frees as soon as it sees `done`: touch none of them after that. */
    for (unsigned i = 0; i < n; i++) {
        if (jobs[i]->kind == SRV_JOB_IMPRESSION) {
            free(jobs[i]);
            jobs[i] = NULL;
        }
    }
    /* Read each job's notifier before marking it done: after that the job may be gone. */
    pthread_mutex_lock(&w->mu);
    unsigned n_notify = 0;
    for (unsigned i = 0; i < n; i++) {
        if (jobs[i]) {
            srv_job *j = jobs[i];
            if (j->notify) {
                w->notify_fn[n_notify] = j->notify;
                w->notify_ctx[n_notify] = j->notify_ctx;
                n_notify++;
            }
            j->done = true;
        }
    }
    pthread_cond_broadcast(&w->job_done);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < n_notify; i++) {
        w->notify_fn[i](w->notify_ctx[i]);
    }
}

static void *writer_main(void *arg)
{
    srv_writer *w = arg;
    srv_job **batch = malloc(w->commit_batch * sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->count == 0 && !w->stopping) {
            pthread_cond_wait(&w->has_work, &w->mu);
        }
        if (w->count == 0 && w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        unsigned n = 0;
        unsigned limit = batch ? w->commit_batch : 1;
        srv_job *single = NULL;
        while (w->count > 0 && n < limit) {
            srv_job *j = w->ring[w->head];
            w->head = (w->head + 1) % w->cap;
            w->count--;
            if (batch) {
                batch[n++] = j;
            } else {
                single = j;
                n = 1;
            }
        }
        pthread_mutex_unlock(&w->mu);
        run_batch(w, batch ? batch : &single, n);
    }
    free(batch);
    return NULL;
}

int srv_writer_start(srv_writer *w, causal_log *log, causal_sync sync, unsigned capacity,
                     unsigned commit_batch, srv_metrics *metrics, cw_err *err)
{
    memset(w, 0, sizeof *w);
    w->log = log;
    w->sync = sync;
    w->cur_sync = sync; /* causal_log_open applied it */
    w->metrics = metrics;
    w->cap = capacity ? capacity : SRV_DEFAULT_QUEUE;
    w->commit_batch = commit_batch ? commit_batch : 4096;
    w->ring = calloc(w->cap, sizeof *w->ring);
    w->notify_fn = calloc(w->commit_batch, sizeof *w->notify_fn);
    w->notify_ctx = calloc(w->commit_batch, sizeof *w->notify_ctx);
    if (!w->ring || !w->notify_fn || !w->notify_ctx) {
        free(w->ring);
        free(w->notify_fn);
        free(w->notify_ctx);
        return cw_err_set(err, CW_ENOMEM, "out of memory for a writer queue of %u jobs", w->cap);
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->has_work, NULL);
    pthread_cond_init(&w->job_done, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        free(w->ring);
        w->ring = NULL;
        return cw_err_set(err, CW_EIO, "cannot start the log writer thread");
    }
    w->started = true;
    return CW_OK;
}

int srv_writer_push(srv_writer *w, srv_job *job, cw_err *err)
{
    pthread_mutex_lock(&w->mu);
    if (w->count == w->cap || w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return cw_err_set(err, CW_EBUSY, "the log queue is full (%u jobs): retry later", w->cap);
    }
    w->ring[(w->head + w->count) % w->cap] = job;
    w->count++;
    pthread_cond_signal(&w->has_work);
    pthread_mutex_unlock(&w->mu);
    return CW_OK;
}

void srv_writer_wait(srv_writer *w, srv_job *job)
{
    pthread_mutex_lock(&w->mu);
    while (!job->done) {
        pthread_cond_wait(&w->job_done, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

unsigned srv_writer_depth(srv_writer *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned n = w->count;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void srv_writer_stop(srv_writer *w)
{
    if (!w->started) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->has_work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = false;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->has_work);
    pthread_cond_destroy(&w->job_done);
    free(w->ring);
    free(w->notify_fn);
    free(w->notify_ctx);
    w->ring = NULL;
}
