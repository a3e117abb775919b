/* bench/mhd_floor.c: the floor for bench/server_bench.sh (issue 3): a minimal
 * libmicrohttpd server with the same setup as causeway serve (internal thread pool on
 * epoll, response queued on the handler's second call so keep-alive survives) that
 * answers every request with a ~1 KB JSON body built per request with jansson.
 * Usage: mhd_floor PORT THREADS   (PORT 0 = any; prints the bound port). */
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ctx_marker;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &ctx_marker;
        return MHD_YES;
    }
    *upload_data_size = 0;
    json_t *o = json_object();
    json_object_set_new(o, "impression_id", json_integer(4294967297LL));
    json_object_set_new(o, "query", json_string("white rabbit"));
    json_t *res = json_array();
    for (int i = 0; i < 5; i++) {
        json_t *r = json_object();
        char id[16];
        snprintf(id, sizeof id, "d%d", i + 1);
        json_object_set_new(r, "id", json_string(id));
        json_object_set_new(r, "title", json_string("experimental investigation of a wing"));
        json_object_set_new(r, "snippet",
                            json_string("an experimental study of a <mark>wing</mark> in a "
                                        "propeller slipstream was made in order to determine "
                                        "the spanwise distribution of the lift increase"));
        json_object_set_new(r, "score", json_real(12.5 - i));
        json_object_set_new(r, "position", json_integer(i + 1));
        json_array_append_new(res, r);
    }
    json_object_set_new(o, "results", res);
    json_object_set_new(o, "took_ms", json_real(0.1));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC, (uint16_t)port, NULL, NULL, on_request, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, 15u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_floor: cannot listen\n");
        return 1;
    }
    printf("%u\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
