/* Tests of the server's life cycle in process (server/server.c): srv_free must give the
 * listening port back. MHD_quiesce_daemon hands the listen socket to the caller, who must
 * close it after MHD_stop_daemon; a server that forgot kept the port in LISTEN state, so
 * connections were accepted by the kernel and then hung, and the port could not be bound
 * again by the next srv_new (an embedder restarting the server, or a reload by restart). */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "index/index.h"
#include "server/server.h"
#include "tests/unit/index/helpers.h"

static srv_server *start(const char *dir, uint16_t port)
{
    char ix[512], db[512];
    snprintf(ix, sizeof ix, "%s/ix", dir);
    snprintf(db, sizeof db, "%s/log.db", dir);
    srv_config cfg = srv_config_default();
    cfg.index_dir = ix;
    cfg.db_path = db;
    cfg.port = port;
    srv_server *s = NULL;
    cw_err err;
    cr_assert(eq(int, srv_new(&cfg, &s, &err), CW_OK), "%s", err.msg);
    return s;
}

/* 0 when a TCP connection to 127.0.0.1:port is accepted, else the errno of connect */
static int try_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

Test(srv_lifecycle, free_releases_the_listening_port)
{
    char *dir = th_tmpdir();
    char *src = th_fixture("index/tiny.jsonl");
    char ix[512];
    snprintf(ix, sizeof ix, "%s/ix", dir);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(src, ix, &o, NULL, &err), CW_OK), "%s", err.msg);
    free(src);

    srv_server *s = start(dir, 0);
    uint16_t port = srv_port(s);
    cr_assert(ne(int, port, 0));
    cr_expect(eq(int, try_connect(port), 0), "the running server refuses connections");
    srv_free(s);
    cr_expect(eq(int, try_connect(port), ECONNREFUSED),
              "port %u still accepts connections after srv_free", (unsigned)port);
    /* the same port is free for the next server */
    s = start(dir, port);
    cr_expect(eq(int, srv_port(s), port));
    srv_free(s);
    th_cleanup(dir);
}
