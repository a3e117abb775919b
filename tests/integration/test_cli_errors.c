/* tests/integration/test_cli_errors.c: bad input on the causeway subcommands, run through
 * the real binary (QA pass): every case must end with the documented exit code and an
 * error naming the file at fault, never a crash or a sanitizer report, and must not leave
 * a half-written output under the name of a complete one. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cw.h"
#include "tests/integration/harness.h"

typedef struct cli_case {
    char args[256];    /* space-separated arguments; '@' stands for the test's directory */
    int exit_code;     /* expected exit code */
    char want[128];    /* must appear in stderr ("" = no check) */
    char unwanted[64]; /* must not appear in stderr ("" = no check) */
    char absent[64];   /* no file of the directory may start with this afterwards */
} cli_case;

/* The fixtures every case may name: @/empty (0 bytes), @/sim.db (a small simulated log)
 * and @/bad.db (the same log with the shown list of its first impression broken). */
static void make_fixtures(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/empty", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fclose(f);
    const char *names[] = {"sim.db", "bad.db"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *a[] = {(char *)th_bin(), "simulate", "--synthetic", "50,10", "--policy", "randtop",
                     "--sessions",     "200",      "--quiet",     "--out", path,       NULL};
        cr_assert(eq(int, th_run(a, "/dev/null", "/dev/null"), 0), "causeway simulate failed");
    }
    sqlite3 *db = NULL;
    cr_assert(eq(int, sqlite3_open(path, &db), SQLITE_OK));
    cr_assert(eq(int,
                 sqlite3_exec(db,
                              "UPDATE impressions SET shown = '[broken' WHERE id = "
                              "(SELECT min(id) FROM impressions)",
                              NULL, NULL, NULL),
                 SQLITE_OK),
              "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Replaces every '@' of s by dir into out[size]. */
static void expand(const char *s, const char *dir, char *out, size_t size)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *piece = *s == '@' ? dir : (char[2]){*s, '\0'};
        size_t k = strlen(piece);
        cr_assert(n + k < size, "expanded arguments too long");
        memcpy(out + n, piece, k);
        n += k;
    }
    out[n] = '\0';
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot read %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

ParameterizedTestParameters(cli_errors, bad_input)
{
    static cli_case cases[] = {
        /* An empty qrels and run evaluate to zero queries (was UBSan: NULL to qsort). */
        {"eval --qrels @/empty @/empty", 0, "", "runtime error", ""},
        /* --out in a missing directory names the real reason (was "Bad file descriptor":
         * errno clobbered by closing the log before it was printed). */
        {"logs export --db @/sim.db --out @/no/such/dir/x.jsonl", 1,
         "x.jsonl: No such file or directory", "Bad file descriptor", ""},
        /* A log that fails half-way leaves no export file that looks complete. */
        {"logs export --db @/bad.db --out @/out.jsonl", 1, "bad.db: impression", "", "out.jsonl"},
        {"logs export --db @/sim.db --out @/ok.jsonl", 0, "", "", "ok.jsonl.tmp"},
        {"logs export --db @/bad.db", 1, "bad.db: impression", "", ""},
        /* Arguments a subcommand does not use were silently ignored. */
        {"logs stats --db @/sim.db @/empty", 2, "unexpected argument", "", ""},
        {"logs import --db @/sim.db --out @/x.jsonl @/empty", 2, "--out applies to export only", "",
         ""},
        /* A repeated query id is refused at its line (the run was written and `eval`
         * failed later on "duplicate document" in the run). */
        {"run --index @/ix --queries @/dup.tsv", 1,
         "dup.tsv:2: query id 'q1' repeated (first "
         "at line 1)",
         "", ""},
        /* strtod took hexadecimal; embed train/build took stray words as a query. */
        {"embed train --index @/ix --tau 0x10", 2, "--tau expects a number", "", ""},
        {"embed build --index @/ix stray", 2, "build takes no query words (got 'stray')", "", ""},
        /* A missing propensity file: the name and errno, not "FILE:-1:-1: ...". */
        /* rank --out is complete or absent: a bad query line at line 2 used to leave the
         * first query's results under the final name. */
        {"rank --index @/ix --queries @/bad.tsv --out @/r.trec", 1, "bad.tsv:2: expected", "",
         "r.trec"},
        {"train --db @/sim.db --objective ips --propensity @/nonexist.json --out @/m.json", 1,
         "nonexist.json: No such file or directory", ":-1:-1", "m.json"},
        /* Hybrid fusion options: one parser (cli/hybrid_opts.c), so every command takes the
         * same spellings and ranges and refuses with the same words, before opening anything
         * (search and run knew no --rrf-k, run no --dense-weight, embed took --rrf-k 0). */
        {"search --index @/none --hybrid --fusion max q", 2,
         "causeway search: --fusion expects rrf|weighted, got 'max'", "", ""},
        {"search --index @/none --hybrid --rrf-k 0 q", 2,
         "causeway search: --rrf-k expects a number in [1e-09, 1e+06], got '0'", "", ""},
        {"run --index @/none --queries @/none.tsv --hybrid --dense-weight 1.5", 2,
         "causeway run: --dense-weight expects a number in [0, 1], got '1.5'", "", ""},
        {"run --index @/none --queries @/none.tsv --hybrid --ef 5000", 2,
         "causeway run: --ef expects a whole number in [1, 4096], got '5000'", "", ""},
        {"embed search --index @/none --hybrid --rrf-k 0 q", 2,
         "causeway embed: --rrf-k expects a number in [1e-09, 1e+06], got '0'", "", ""},
        {"embed run --index @/none --queries @/none.tsv --w-dense 2", 2,
         "causeway embed: --w-dense expects a number in [0, 1], got '2'", "", ""},
        {"embed search --index @/none --depth 0 q", 2,
         "causeway embed: --depth expects a whole number in [1, 1000], got '0'", "", ""},
        {"serve --index @/none --db @/s.db --fusion max", 2,
         "causeway serve: --fusion expects rrf|weighted, got 'max'", "", "s.db"},
        {"serve --index @/none --db @/s.db --rrf-k 0", 2,
         "causeway serve: --rrf-k expects a number in [1e-09, 1e+06], got '0'", "", "s.db"},
        {"search --index @/none --fusion", 2, "causeway search: --fusion needs a value", "", ""},
        /* A policy name the loader cannot read ("team@pl": a draw without its temperature)
         * was imported, and then every fit refused the whole log: refused at its line. */
        {"logs import --db @/imp.db @/badpol.jsonl", 1,
         "badpol.jsonl:2: \"policy\": policy name \"team@pl\"", "", ""},
    };
    return cr_make_param_array(cli_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(cli_case *c, cli_errors, bad_input)
{
    char dir[256], line[2048], errp[512];
    th_tmpdir(dir, sizeof dir, "cli_errors");
    make_fixtures(dir);
    if (strstr(c->args, "@/ix")) { /* an index and a query file whose line 2 is bad */
        char syn[300], ix[300], q[300];
        snprintf(syn, sizeof syn, "%s/syn", dir);
        snprintf(ix, sizeof ix, "%s/ix", dir);
        snprintf(q, sizeof q, "%s/bad.tsv", dir);
        th_synth_index(syn, "100", "3", ix);
        FILE *f = fopen(q, "w");
        cr_assert(f != NULL);
        fputs("q1\thello\nq2 no tab\n", f);
        fclose(f);
        snprintf(q, sizeof q, "%s/dup.tsv", dir);
        f = fopen(q, "w");
        cr_assert(f != NULL);
        fputs("q1\thello\nq1\tworld\n", f);
        fclose(f);
    }
    if (strstr(c->args, "@/badpol.jsonl")) { /* line 1 as exported, line 2 renamed */
        char src[300], out[300];
        snprintf(src, sizeof src, "%s/sim.db", dir);
        snprintf(out, sizeof out, "%s/exp.jsonl", dir);
        char *a[] = {(char *)th_bin(), "logs", "export", "--db", src, "--out", out, NULL};
        cr_assert(eq(int, th_run(a, "/dev/null", "/dev/null"), 0));
        FILE *in = fopen(out, "r");
        snprintf(out, sizeof out, "%s/badpol.jsonl", dir);
        FILE *f = fopen(out, "w");
        cr_assert(in != NULL && f != NULL);
        static char l1[1 << 16], l2[1 << 16];
        cr_assert(fgets(l1, sizeof l1, in) != NULL && fgets(l2, sizeof l2, in) != NULL);
        char *pol = strstr(l2, "\"policy\":\"randtop-10\"");
        cr_assert(pol != NULL, "no randtop-10 policy in: %.200s", l2);
        fputs(l1, f);
        fwrite(l2, 1, (size_t)(pol - l2), f);
        fprintf(f, "\"policy\":\"team@pl\"%s", pol + strlen("\"policy\":\"randtop-10\""));
        fclose(f);
        fclose(in);
    }
    expand(c->args, dir, line, sizeof line);
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)th_bin();
    for (char *t = strtok(line, " "); t; t = strtok(NULL, " ")) {
        cr_assert(n < CW_ARRAY_LEN(argv) - 1);
        argv[n++] = t;
    }
    argv[n] = NULL;
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    int rc = th_run(argv, "/dev/null", errp);
    const char *text = read_all(errp);
    cr_expect(eq(int, rc, c->exit_code), "%s: exit %d, stderr:\n%s", c->args, rc, text);
    if (c->want[0]) {
        cr_expect(strstr(text, c->want) != NULL, "%s: stderr lacks \"%s\":\n%s", c->args, c->want,
                  text);
    }
    if (c->unwanted[0]) {
        cr_expect(strstr(text, c->unwanted) == NULL, "%s: stderr has \"%s\":\n%s", c->args,
                  c->unwanted, text);
    }
    if (c->absent[0]) {
        DIR *d = opendir(dir);
        cr_assert(d != NULL);
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            cr_expect(strncmp(e->d_name, c->absent, strlen(c->absent)) != 0,
                      "%s: %s was left behind", c->args, e->d_name);
        }
        closedir(d);
    }
    th_rmtree(dir);
}

/* Runs `causeway ARGS` (argv[1..]) with a FIFO standing for one of its input files, feeds
 * it line1, sends SIGINT, feeds line2 and closes it: the signal lands deterministically
 * while the command waits for its second line. Returns the exit status; stderr in errp. */
static int sigint_between_lines(char *const argv[], const char *fifo, const char *errp,
                                const char *line1, const char *line2)
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen(errp, "w", stderr)) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    /* Opening the FIFO returns once the command opened it, after its handler was
     * installed. */
    int fd = open(fifo, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert(write(fd, line1, strlen(line1)) == (ssize_t)strlen(line1));
    cr_assert(eq(int, kill(p, SIGINT), 0));
    cr_assert(write(fd, line2, strlen(line2)) == (ssize_t)strlen(line2));
    close(fd);
    int st = 0;
    cr_assert(eq(int, waitpid(p, &st, 0), p));
    return st;
}

/* Ctrl-C between two queries of `causeway run` (QA regression: the flag set by the
 * SIGINT handler was never polled, so a long query file ran to the end and exited 0). */
Test(cli_errors, run_stops_on_sigint_between_queries)
{
    char dir[256], syn[300], ix[300], fifo[300], errp[300];
    th_tmpdir(dir, sizeof dir, "cli_sigint");
    snprintf(syn, sizeof syn, "%s/syn", dir);
    snprintf(ix, sizeof ix, "%s/ix", dir);
    snprintf(fifo, sizeof fifo, "%s/q.fifo", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    th_synth_index(syn, "200", "5", ix);
    cr_assert(eq(int, mkfifo(fifo, 0600), 0));
    char *a[] = {(char *)th_bin(), "run", "--index", ix, "--queries", fifo, NULL};
    int st = sigint_between_lines(a, fifo, errp, "q1\thello\n", "q2\tworld\n");
    const char *text = read_all(errp);
    bool exit1 = WIFEXITED(st) && WEXITSTATUS(st) == 1;
    cr_expect(exit1, "status %d, stderr:\n%s", st, text);
    cr_expect(strstr(text, "causeway run: interrupted at ") != NULL, "stderr:\n%s", text);
    th_rmtree(dir);
}

/* Ctrl-C during `causeway logs import`: exit 1 and nothing of the file in the log (the
 * import ran to the end and committed before). */
Test(cli_errors, logs_import_stops_on_sigint_and_writes_nothing)
{
    char dir[256], fifo[300], errp[300], src[300], jsonl[300], dst[300], out[300];
    th_tmpdir(dir, sizeof dir, "cli_sigint");
    make_fixtures(dir);
    snprintf(src, sizeof src, "%s/sim.db", dir);
    snprintf(jsonl, sizeof jsonl, "%s/sim.jsonl", dir);
    snprintf(dst, sizeof dst, "%s/dst.db", dir);
    snprintf(fifo, sizeof fifo, "%s/in.fifo", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    snprintf(out, sizeof out, "%s/stats", dir);
    char *ex[] = {(char *)th_bin(), "logs", "export", "--db", src, "--out", jsonl, NULL};
    cr_assert(eq(int, th_run(ex, "/dev/null", "/dev/null"), 0));
    char first[1 << 14];
    FILE *f = fopen(jsonl, "r");
    cr_assert(f != NULL && fgets(first, sizeof first, f) != NULL);
    char second[1 << 14];
    cr_assert(fgets(second, sizeof second, f) != NULL);
    fclose(f);
    cr_assert(eq(int, mkfifo(fifo, 0600), 0));
    char *a[] = {(char *)th_bin(), "logs", "import", "--db", dst, fifo, NULL};
    int st = sigint_between_lines(a, fifo, errp, first, second);
    const char *text = read_all(errp);
    bool exit1 = WIFEXITED(st) && WEXITSTATUS(st) == 1;
    cr_expect(exit1, "status %d, stderr:\n%s", st, text);
    cr_expect(strstr(text, "causeway logs: interrupted at ") != NULL, "stderr:\n%s", text);
    char *stats[] = {(char *)th_bin(), "logs", "stats", "--db", dst, NULL};
    cr_assert(eq(int, th_run(stats, out, "/dev/null"), 0));
    cr_expect(strstr(read_all(out), "impressions 0\n") != NULL, "%s", read_all(out));
    th_rmtree(dir);
}

/* QA regression: with "bind" from --config, serve printed "listening on http://<freed
 * memory>:PORT" (the config's strings were released before the line; ASan:
 * heap-use-after-free). An IPv6 bind address is printed in brackets. */
Test(cli_errors, serve_prints_the_bind_address_of_its_config_file)
{
    char dir[256], syn[300], ix[300], cfgp[300], outp[300], errp[300], portp[300];
    th_tmpdir(dir, sizeof dir, "cli_serve_cfg");
    snprintf(syn, sizeof syn, "%s/syn", dir);
    snprintf(ix, sizeof ix, "%s/ix", dir);
    snprintf(cfgp, sizeof cfgp, "%s/cfg.json", dir);
    snprintf(outp, sizeof outp, "%s/stdout", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    snprintf(portp, sizeof portp, "%s/port", dir);
    th_synth_index(syn, "50", "2", ix);
    const char *binds[] = {"127.0.0.1", "::1"};
    const char *want[] = {"listening on http://127.0.0.1:", "listening on http://[::1]:"};
    for (size_t b = 0; b < 2; b++) {
        FILE *f = fopen(cfgp, "w");
        cr_assert(f != NULL);
        fprintf(f, "{\"index\":\"%s\",\"db\":\"%s/log%zu.db\",\"bind\":\"%s\",\"port\":0}\n", ix,
                dir, b, binds[b]);
        fclose(f);
        unlink(portp);
        unlink(outp); /* else the first round's line could be read before the child truncates */
        pid_t p = fork();
        cr_assert(p >= 0);
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan server if the test dies */
            if (!freopen(outp, "w", stdout) || !freopen(errp, "w", stderr)) {
                _exit(126);
            }
            char *a[] = {(char *)th_bin(), "serve", "--config", cfgp, "--port-file", portp, NULL};
            execv(a[0], a);
            _exit(127);
        }
        bool seen = false;
        for (double t0 = th_now_s(); !seen && th_now_s() - t0 < 20; th_sleep_ms(50)) {
            seen = access(outp, R_OK) == 0 && strstr(read_all(outp), "listening on") != NULL;
            int st;
            if (waitpid(p, &st, WNOHANG) == p) {
                p = 0;
                break;
            }
        }
        const char *out = read_all(outp);
        cr_expect(strstr(out, want[b]) != NULL, "stdout: %s\nstderr: %s", out, read_all(errp));
        if (p > 0) {
            kill(p, SIGTERM);
            int st = 0;
            waitpid(p, &st, 0);
            bool exit0 = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            cr_expect(exit0, "serve status %d: %s", st, read_all(errp));
        }
    }
    th_rmtree(dir);
}
