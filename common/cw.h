/* common/cw.h: what every causeway module shares: error codes with messages,
 * a seeded RNG, a bump arena, interruption and progress hooks for long jobs,
 * a bounded line reader for JSONL/TSV inputs, UTF-8 checks, checksums and hashes.
 * Depends on nothing else in the tree. */
#ifndef CAUSEWAY_COMMON_CW_H
#define CAUSEWAY_COMMON_CW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CW_MUST_CHECK __attribute__((warn_unused_result))
#define CW_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors ------------------------------------------------------------ */

enum {
    CW_OK = 0,
    CW_ENOMEM = -1,    /* allocation failed */
    CW_EINVAL = -2,    /* invalid argument or request */
    CW_EPARSE = -3,    /* malformed input text (JSON, JSONL, TSV, options) */
    CW_ECORRUPT = -4,  /* a binary file failed its checks */
    CW_ENOTFOUND = -5, /* unknown id, missing file */
    CW_ELIMIT = -6,    /* input over a documented limit */
    CW_EIO = -7,       /* system I/O error (errno saved) */
    CW_ENUMERIC = -8,  /* numerical failure (singular system, divergence) */
    CW_EINTR = -9,     /* interrupted by the user (SIGINT/SIGTERM) */
    CW_EBUSY = -10,    /* temporarily unavailable (queue full): retry later */
};

#define CW_ERR_MSG_BYTES 512

/* The failure that ended a call: code, message naming the place at fault
 * (path:line[:col], byte offset for binary files) and the saved errno. */
typedef struct cw_err {
    int code;                   /* CW_OK or a CW_E* code */
    int sys_errno;              /* errno at the failure, 0 if none */
    char msg[CW_ERR_MSG_BYTES]; /* NUL-terminated, human readable */
} cw_err;

/* Records code and a printf-style message in *err (err may be NULL).
 * Saves the current errno. Returns code, so callers can `return cw_err_set(...)`. */
int cw_err_set(cw_err *err, int code, const char *fmt, ...) CW_PRINTF(3, 4);
/* Prefixes context to an already-set message ("reading x: " + old). Returns err->code. */
int cw_err_prefix(cw_err *err, const char *fmt, ...) CW_PRINTF(2, 3);
/* Clears *err to CW_OK with an empty message. */
void cw_err_clear(cw_err *err);
/* Short symbolic name of a code: "EINVAL", "ENOTFOUND", ... ("OK" for 0). */
const char *cw_strerror(int code);

/* ---- random numbers ---------------------------------------------------- */

/* xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64 so any
 * 64-bit seed, 0 included, gives a good state. Not thread-safe: one per thread. */
typedef struct cw_rng {
    uint64_t s[4];
} cw_rng;

void cw_rng_seed(cw_rng *rng, uint64_t seed);
uint64_t cw_rng_u64(cw_rng *rng);
/* Uniform on the open interval (0, 1): never 0, never 1 (safe under log). */
double cw_rng_uniform(cw_rng *rng);
/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint64_t cw_rng_below(cw_rng *rng, uint64_t n);
/* Standard normal (Box-Muller, no caching, so the stream is position-independent). */
double cw_rng_normal(cw_rng *rng);
/* Standard Gumbel: -log(-log U). */
double cw_rng_gumbel(cw_rng *rng);
/* Bernoulli(p). */
bool cw_rng_bernoulli(cw_rng *rng, double p);
/* Fisher-Yates shuffle of n elements of size elem_bytes. */
void cw_rng_shuffle(cw_rng *rng, void *base, size_t n, size_t elem_bytes);
/* Independent stream number `stream` derived from seed (for per-thread or per-repetition RNGs). */
void cw_rng_seed_stream(cw_rng *rng, uint64_t seed, uint64_t stream);

/* ---- arena ------------------------------------------------------------- */

/* Bump allocator: many small allocations, one free. Not thread-safe. */
typedef struct cw_arena cw_arena;

/* Returns a new arena or NULL. Free with cw_arena_free. */
cw_arena *cw_arena_new(size_t block_bytes);
void cw_arena_free(cw_arena *arena);
/* 16-byte aligned memory valid until cw_arena_free/reset; NULL on ENOMEM. */
void *cw_arena_alloc(cw_arena *arena, size_t n_bytes);
char *cw_arena_strdup(cw_arena *arena, const char *s);
char *cw_arena_strndup(cw_arena *arena, const char *s, size_t n);
/* Forget all allocations but keep the first block. */
void cw_arena_reset(cw_arena *arena);

/* ---- long jobs: interruption and progress ------------------------------ */

/* Installs SIGINT/SIGTERM handlers that set a flag (cli/ calls it once). */
void cw_interrupt_install(void);
/* True once SIGINT or SIGTERM arrived; long loops poll it and return CW_EINTR. */
bool cw_interrupted(void);
/* Sets or clears the flag (tests). */
void cw_interrupt_set(bool on);

/* Progress callback for long jobs: library modules call it, cli/ prints.
 * `total` is 0 when unknown. May be NULL (no reporting). */
typedef void (*cw_progress_fn)(void *ctx, const char *stage, uint64_t done, uint64_t total);
typedef struct cw_progress {
    cw_progress_fn fn;
    void *ctx;
} cw_progress;
/* Calls p->fn if set; rate-limited by the caller's own loop. */
void cw_progress_report(const cw_progress *p, const char *stage, uint64_t done, uint64_t total);
/* A ready-made reporter printing "\rstage: done/total (rate/s)" to stderr at most
 * every 200 ms, and a final newline when done == total. ctx must be NULL. */
void cw_progress_stderr(void *ctx, const char *stage, uint64_t done, uint64_t total);

/* ---- time -------------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
uint64_t cw_now_ns(void);
/* Wall clock in milliseconds since the Unix epoch. */
int64_t cw_wall_ms(void);

/* ---- line reader ------------------------------------------------------- */

#define CW_MAX_LINE_BYTES ((size_t)64 << 20) /* one JSONL/TSV line */

/* Streams a text file line by line with line numbers; "-" reads stdin.
 * Not thread-safe. */
typedef struct cw_lines cw_lines;

/* Opens path. Errors: CW_ENOTFOUND (missing), CW_EIO, CW_ENOMEM. */
int cw_lines_open(const char *path, cw_lines **out, cw_err *err) CW_MUST_CHECK;
/* Next line without its '\n' (and '\r'), NUL-terminated, valid until the next call.
 * Returns 1 = line, 0 = end, CW_ELIMIT (line over CW_MAX_LINE_BYTES, names path:line),
 * CW_EIO. *line_no is 1-based. */
int cw_lines_next(cw_lines *lr, const char **line, size_t *len, long *line_no, cw_err *err);
/* Byte offset of the start of the next line (for progress). */
uint64_t cw_lines_offset(const cw_lines *lr);
void cw_lines_close(cw_lines *lr);

/* ---- text -------------------------------------------------------------- */

/* True if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * On false, *bad_offset (may be NULL) gets the offset of the first bad byte. */
bool cw_utf8_valid(const char *s, size_t n, size_t *bad_offset);

/* The shortest of "%g" and "%.17g" that reads back as v exactly (strtod), in buf; returns
 * buf. For numbers that name something (a policy's temperature, a fusion weight), where
 * two values that print alike must not be taken for one. */
#define CW_DOUBLE_BUF 32
const char *cw_fmt_double_exact(double v, char buf[CW_DOUBLE_BUF]);

/* Growable byte buffer; `data` is always NUL-terminated when non-NULL. */
typedef struct cw_buf {
    char *data;
    size_t len;
    size_t cap;
} cw_buf;
int cw_buf_append(cw_buf *b, const void *p, size_t n) CW_MUST_CHECK;
int cw_buf_printf(cw_buf *b, const char *fmt, ...) CW_PRINTF(2, 3) CW_MUST_CHECK;
void cw_buf_fini(cw_buf *b);

/* ---- checksums and hashes ---------------------------------------------- */

/* CRC-32C (Castagnoli), chainable: crc = cw_crc32c(crc, p, n), start from 0. */
uint32_t cw_crc32c(uint32_t crc, const void *p, size_t n);
/* 64-bit non-cryptographic hash of bytes (for hash tables and feature hashing). */
uint64_t cw_hash64(const void *p, size_t n, uint64_t seed);

/* ---- files ------------------------------------------------------------- */

/* Reads a whole file into a new NUL-terminated buffer (free with free()).
 * Errors: CW_ENOTFOUND, CW_EIO, CW_ELIMIT (over max_bytes), CW_ENOMEM. */
int cw_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len,
                 cw_err *err) CW_MUST_CHECK;
/* Writes data to path atomically: temp file in the same directory, fsync, rename,
 * fsync of the directory. Errors: CW_EIO. */
int cw_file_write_atomic(const char *path, const void *data, size_t n, cw_err *err) CW_MUST_CHECK;
/* mkdir -p. Errors: CW_EIO. */
int cw_mkdir_p(const char *path, cw_err *err) CW_MUST_CHECK;
/* rm -rf of a directory tree we created (refuses "/" and ""). Errors: CW_EIO. */
int cw_rmtree(const char *path, cw_err *err) CW_MUST_CHECK;

/* ---- small numeric helpers --------------------------------------------- */

/* Median of n doubles (sorts a copy); 0 for n == 0. */
double cw_median(const double *x, size_t n);
/* q-quantile (0..1) by linear interpolation between order statistics; 0 for n == 0. */
double cw_quantile(const double *x, size_t n, double q);

#define CW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CW_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* CAUSEWAY_COMMON_CW_H */
