/* common/sys.c: interruption flag, progress printing, clocks and file helpers
 * shared by every long job (index build, training, simulation). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cw.h"

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

void cw_interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cw_interrupted(void)
{
    return g_interrupted != 0;
}

void cw_interrupt_set(bool on)
{
    g_interrupted = on ? 1 : 0;
}

uint64_t cw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int64_t cw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cw_progress_report(const cw_progress *p, const char *stage, uint64_t done, uint64_t total)
{
    if (p && p->fn) {
        p->fn(p->ctx, stage, done, total);
    }
}

void cw_progress_stderr(void *ctx, const char *stage, uint64_t done, uint64_t total)
{
    static uint64_t last_ns, start_ns;
    static char last_stage[64];
    static int tty = -1;
    (void)ctx;
    if (tty < 0) {
        tty = isatty(STDERR_FILENO);
    }
    uint64_t now = cw_now_ns();
    /* A stage is named by its first word: callers append changing figures ("embed-train
     * loss 4.21, 704 docs/s"), which must not restart the throttle and the rate. */
    size_t key = strcspn(stage, " ");
    if (key >= sizeof last_stage) {
        key = sizeof last_stage - 1;
    }
    if (strncmp(last_stage, stage, key) != 0 || last_stage[key] != '\0') {
        memcpy(last_stage, stage, key);
        last_stage[key] = '\0';
        start_ns = now;
        last_ns = 0;
    }
    bool final = total > 0 && done >= total;
    /* A terminal gets a line redrawn 5 times a second; a log file one line every 10 s. */
    uint64_t every = tty ? 200000000ULL : 10000000000ULL;
    if (!final && last_ns != 0 && now - last_ns < every) {
        return;
    }
    last_ns = now;
    double secs = (double)(now - start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0.0;
    char rate_s[40] = "";
    if (secs >= 0.01) { /* a stage that began and ended in one call has no rate */
        snprintf(rate_s, sizeof rate_s, " (%.0f/s)", rate);
    }
    const char *lead = tty ? "\r" : "";
    const char *end = (final || !tty) ? "\n" : "";
    if (total > 0) {
        fprintf(stderr, "%s%s: %llu/%llu%s%s", lead, stage, (unsigned long long)done,
                (unsigned long long)total, rate_s, end);
    } else {
        fprintf(stderr, "%s%s: %llu%s%s", lead, stage, (unsigned long long)done, rate_s, end);
    }
    fflush(stderr);
}

int cw_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len, cw_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return cw_err_set(err, errno == ENOENT ? CW_ENOTFOUND : CW_EIO, "%s: %s", path,
                          strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > max_bytes) {
            free(buf);
            fclose(f);
            return cw_err_set(err, CW_ELIMIT, "%s: larger than the limit of %zu bytes", path,
                              max_bytes);
        }
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        int e = errno; /* e.g. EISDIR: fopen() succeeds on a directory, reading fails */
        free(buf);
        fclose(f);
        return cw_err_set(err, CW_EIO, "%s: read: %s", path, strerror(e));
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    if (out_len) {
        *out_len = len;
    }
    return CW_OK;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (dir[0] == '\0') {
            strcpy(dir, "/");
        }
    } else {
        strcpy(dir, ".");
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cw_file_write_atomic(const char *path, const void *data, size_t n, cw_err *err)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        return cw_err_set(err, CW_EINVAL, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return cw_err_set(err, CW_EIO, "%s: %s", tmp, strerror(errno));
    }
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return cw_err_set(err, CW_EIO, "%s: write: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return cw_err_set(err, CW_EIO, "%s: fsync: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return cw_err_set(err, CW_EIO, "%s: rename: %s", path, strerror(e));
    }
    (void)fsync_dir_of(path);
    return CW_OK;
}

int cw_mkdir_p(const char *path, cw_err *err)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf) {
        return cw_err_set(err, CW_EINVAL, "%s: path too long", path);
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return cw_err_set(err, CW_EIO, "mkdir %s: %s", buf, strerror(errno));
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        return cw_err_set(err, CW_EIO, "mkdir %s: %s", buf, strerror(errno));
    }
    return CW_OK;
}

int cw_rmtree(const char *path, cw_err *err)
{
    if (!path || !*path || strcmp(path, "/") == 0) {
        return cw_err_set(err, CW_EINVAL, "refusing to remove \"%s\"", path ? path : "");
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? CW_OK : cw_err_set(err, CW_EIO, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            return cw_err_set(err, CW_EIO, "%s: %s", path, strerror(errno));
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char child[PATH_MAX];
            if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= sizeof child) {
                closedir(d);
                return cw_err_set(err, CW_EINVAL, "%s: path too long", path);
            }
            int rc = cw_rmtree(child, err);
            if (rc != CW_OK) {
                closedir(d);
                return rc;
            }
        }
        closedir(d);
        if (rmdir(path) != 0) {
            return cw_err_set(err, CW_EIO, "rmdir %s: %s", path, strerror(errno));
        }
    } else if (unlink(path) != 0) {
        return cw_err_set(err, CW_EIO, "unlink %s: %s", path, strerror(errno));
    }
    return CW_OK;
}
