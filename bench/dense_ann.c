/* bench/dense_ann.c: the ANN benchmark of issue 6. Generates seeded clustered unit
 * vectors, computes exact top-10 by blocked cblas_sgemm, builds causeway's HNSW,
 * measures recall@10 and single-threaded QPS per ef, brute-force QPS, build time and
 * memory, and writes the vectors and truth as .fvecs/.ivecs for bench/dense_hnswlib.py
 * (hnswlib measured on the same data by bench/dense_bench.sh). */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "index/index.h"

#define K 10

static void unit(float *v, uint32_t d)
{
    double n2 = 0;
    for (uint32_t j = 0; j < d; j++) {
        n2 += (double)v[j] * v[j];
    }
    float inv = (float)(1.0 / sqrt(n2));
    for (uint32_t j = 0; j < d; j++) {
        v[j] *= inv;
    }
}

/* n points around n_clusters random unit centres with Gaussian spread sigma, normalised. */
static float *clustered(uint32_t n, uint32_t d, uint32_t n_clusters, double sigma,
                        const float *centres, cw_rng *r)
{
    float *v = malloc((size_t)n * d * sizeof(float));
    if (!v) {
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        const float *c = centres + (size_t)cw_rng_below(r, n_clusters) * d;
        float *x = v + (size_t)i * d;
        for (uint32_t j = 0; j < d; j++) {
            x[j] = c[j] + (float)(sigma * cw_rng_normal(r) / sqrt((double)d));
        }
        unit(x, d);
    }
    return v;
}

static int write_vecs(const char *path, const void *data, uint32_t n, uint32_t d)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    const char *p = data;
    for (uint32_t i = 0; i < n; i++) {
        int32_t dd = (int32_t)d;
        fwrite(&dd, 4, 1, f);
        fwrite(p + (size_t)i * d * 4, 4, d, f);
    }
    return fclose(f);
}

static void *read_vecs(const char *path, uint32_t *n, uint32_t *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    int32_t dd;
    if (fread(&dd, 4, 1, f) != 1 || dd <= 0) {
        fclose(f);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint32_t rows = (uint32_t)(bytes / (4 * (dd + 1)));
    float *v = malloc((size_t)rows * dd * 4);
    for (uint32_t i = 0; v && i < rows; i++) {
        if (fread(&dd, 4, 1, f) != 1 || fread(v + (size_t)i * dd, 4, (size_t)dd, f) != (size_t)dd) {
            free(v);
            v = NULL;
        }
    }
    fclose(f);
    *n = rows;
    *d = (uint32_t)dd;
    return v;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static double rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    uint32_t n = 1000000, d = 128, nq = 1000, m = 32, efc = 100, n_clusters = 1000;
    double sigma = 1.0;
    uint64_t seed = 1;
    bool reuse = false;
    const char *out = "/tmp/cw_dense_ann";
    const char *efs = "10,16,24,32,48,64,96,128,192,256";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--n")) {
            n = (uint32_t)strtod(v, NULL);
        } else if (!strcmp(o, "--dim")) {
            d = (uint32_t)atoi(v);
        } else if (!strcmp(o, "--queries")) {
            nq = (uint32_t)atoi(v);
        } else if (!strcmp(o, "--m")) {
            m = (uint32_t)atoi(v);
        } else if (!strcmp(o, "--ef-construction")) {
            efc = (uint32_t)atoi(v);
        } else if (!strcmp(o, "--clusters")) {
            n_clusters = (uint32_t)atoi(v);
        } else if (!strcmp(o, "--sigma")) {
            sigma = atof(v);
        } else if (!strcmp(o, "--seed")) {
            seed = strtoull(v, NULL, 10);
        } else if (!strcmp(o, "--ef")) {
            efs = v;
        } else if (!strcmp(o, "--out")) {
            out = v;
        } else if (!strcmp(o, "--reuse")) {
            reuse = atoi(v) != 0;
        } else {
            fprintf(stderr, "dense_ann: unknown option %s\n", o);
            return 2;
        }
    }
    cw_interrupt_install();
    cw_err err;
    if (cw_mkdir_p(out, &err) != CW_OK) {
        fprintf(stderr, "dense_ann: %s\n", err.msg);
        return 1;
    }
    char p[4096];
    float *qs = NULL;
    int32_t *gt = NULL;
    idx_hnsw *h;
    if (reuse) {
        /* Search figures only: the vectors, truth and graph of an earlier run. */
        uint32_t rows, cols;
        snprintf(p, sizeof p, "%s/query.fvecs", out);
        qs = read_vecs(p, &nq, &d);
        snprintf(p, sizeof p, "%s/gt.ivecs", out);
        gt = read_vecs(p, &rows, &cols);
        snprintf(p, sizeof p, "%s/dense.hnsw", out);
        if (!qs || !gt || cols != K || rows != nq || idx_hnsw_open(p, &h, &err) != CW_OK) {
            fprintf(stderr, "dense_ann: --reuse 1 needs %s/{query.fvecs,gt.ivecs,dense.hnsw}\n",
                    out);
            return 1;
        }
        printf("reusing %s: %u x %u vectors, %u queries\n", out, idx_hnsw_n(h), d, nq);
        goto search;
    }
    cw_rng r;
    cw_rng_seed(&r, seed);
    float *centres = malloc((size_t)n_clusters * d * sizeof(float));
    for (uint32_t c = 0; c < n_clusters; c++) {
        for (uint32_t j = 0; j < d; j++) {
            centres[(size_t)c * d + j] = (float)cw_rng_normal(&r);
        }
        unit(centres + (size_t)c * d, d);
    }
    float *base = clustered(n, d, n_clusters, sigma, centres, &r);
    qs = clustered(nq, d, n_clusters, sigma, centres, &r);
    if (!base || !qs) {
        fprintf(stderr, "dense_ann: out of memory\n");
        return 1;
    }
    printf("data: %u x %u clustered unit vectors (%u clusters, sigma %.2f, seed %llu), %u "
           "queries\n",
           n, d, n_clusters, sigma, (unsigned long long)seed, nq);

    /* Exact truth: blocked Q B^T by sgemm, top-K per query. */
    uint64_t t0 = cw_now_ns();
    gt = malloc((size_t)nq * K * sizeof *gt);
    float *gs = malloc((size_t)nq * K * sizeof *gs);
    for (size_t i = 0; i < (size_t)nq * K; i++) {
        gt[i] = -1;
        gs[i] = -INFINITY;
    }
    const uint32_t blk = 16384;
    float *S = malloc((size_t)nq * blk * sizeof *S);
    for (uint32_t b0 = 0; b0 < n; b0 += blk) {
        uint32_t bn = CW_MIN(blk, n - b0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)bn, (int)d, 1.0f, qs,
                    (int)d, base + (size_t)b0 * d, (int)d, 0.0f, S, (int)bn);
        for (uint32_t q = 0; q < nq; q++) {
            float *ts = gs + (size_t)q * K;
            int32_t *ti = gt + (size_t)q * K;
            for (uint32_t j = 0; j < bn; j++) {
                float s = S[(size_t)q * bn + j];
                if (s > ts[K - 1]) {
                    int t = K - 1;
                    while (t > 0 && s > ts[t - 1]) {
                        ts[t] = ts[t - 1];
                        ti[t] = ti[t - 1];
                        t--;
                    }
                    ts[t] = s;
                    ti[t] = (int32_t)(b0 + j);
                }
            }
        }
    }
    free(S);
    printf("truth: exact top-%d by blocked sgemm in %.1f s\n", K, (cw_now_ns() - t0) * 1e-9);
    snprintf(p, sizeof p, "%s/base.fvecs", out);
    write_vecs(p, base, n, d);
    snprintf(p, sizeof p, "%s/query.fvecs", out);
    write_vecs(p, qs, nq, d);
    snprintf(p, sizeof p, "%s/gt.ivecs", out);
    write_vecs(p, gt, nq, K);

    snprintf(p, sizeof p, "%s/dense.hnsw", out);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    ho.m = m;
    ho.ef_construction = efc;
    ho.progress = (cw_progress){cw_progress_stderr, NULL};
    double rss_before = rss_mib();
    double c0 = cpu_s();
    t0 = cw_now_ns();
    if (idx_hnsw_build(base, n, d, &ho, p, &err) != CW_OK) {
        fprintf(stderr, "dense_ann: %s\n", err.msg);
        return 1;
    }
    double build_s = (cw_now_ns() - t0) * 1e-9, build_cpu = cpu_s() - c0;
    double rss_build = rss_mib();
    free(base);
    t0 = cw_now_ns();
    if (idx_hnsw_open(p, &h, &err) != CW_OK) {
        fprintf(stderr, "dense_ann: %s\n", err.msg);
        return 1;
    }
    double open_s = (cw_now_ns() - t0) * 1e-9;
    printf("causeway build: %.1f s wall, %.1f s CPU single-threaded (M %u, efConstruction %u, "
           "includes the write), peak RSS %.0f MiB (%.0f before build), file %.0f MiB, open + "
           "verify %.2f s\n",
           build_s, build_cpu, m, efc, rss_build, rss_before, idx_hnsw_bytes(h) / 1048576.0,
           open_s);
    free(gs);
    free(centres);
search:;
    idx_hnsw_searcher *s = idx_hnsw_searcher_new(h);
    idx_hit hits[IDX_MAX_K];
    size_t nh;
    /* Brute force one query at a time (the exact option of the same index). */
    uint32_t nbf = CW_MIN(nq, 50u);
    uint64_t t0b = cw_now_ns();
    double cb = cpu_s();
    for (uint32_t q = 0; q < nbf; q++) {
        if (idx_hnsw_search(h, NULL, qs + (size_t)q * d, K, 0, true, hits, &nh, &err) != CW_OK) {
            fprintf(stderr, "dense_ann: %s\n", err.msg);
            return 1;
        }
    }
    double bf_qps = nbf / ((cw_now_ns() - t0b) * 1e-9), bf_cpu_qps = nbf / (cpu_s() - cb);
    printf("causeway exact: %.1f QPS (%.1f ms/query, %u queries), CPU-QPS %.1f\n", bf_qps,
           1000.0 / bf_qps, nbf, bf_cpu_qps);
    char *list = strdup(efs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t ef = (uint32_t)atoi(tok);
        size_t found = 0;
        /* Warm the pages once, then time a full pass. */
        for (uint32_t q = 0; q < CW_MIN(nq, 100u); q++) {
            if (idx_hnsw_search(h, s, qs + (size_t)q * d, K, ef, false, hits, &nh, NULL) != CW_OK) {
                return 1;
            }
        }
        uint64_t t1 = cw_now_ns();
        double c1 = cpu_s();
        for (uint32_t q = 0; q < nq; q++) {
            if (idx_hnsw_search(h, s, qs + (size_t)q * d, K, ef, false, hits, &nh, &err) != CW_OK) {
                fprintf(stderr, "dense_ann: %s\n", err.msg);
                return 1;
            }
            for (size_t i = 0; i < nh; i++) {
                for (int t = 0; t < K; t++) {
                    found += (int32_t)hits[i].doc == gt[(size_t)q * K + t];
                }
            }
        }
        double secs = (cw_now_ns() - t1) * 1e-9, csecs = cpu_s() - c1;
        printf("causeway ef %u: recall@10 %.4f QPS %.0f CPU-QPS %.0f (%.1fx exact, CPU)\n", ef,
               (double)found / ((double)nq * K), nq / secs, nq / csecs, nq / csecs / bf_cpu_qps);
        fflush(stdout);
    }
    free(list);
    idx_hnsw_searcher_free(s);
    idx_hnsw_close(h);
    free(qs);
    free(gt);
    return 0;
}
