/*
 * shmq-metrics: serves the store's metrics over HTTP for Prometheus
 * (GET /metrics, the text format of shm/metrics.h), on metricsListen
 * (127.0.0.1 unless a host is given; off by default: the master starts this
 * worker only when the key is set).
 *
 * libmicrohttpd answers on its own thread; each scrape formats the text
 * from the control block, attached read-write only because every worker is
 * (it writes nothing but its heartbeat).  Bounded: at most METRICS_CONNS
 * connections, each closed after METRICS_TIMEOUT_S idle seconds; only GET
 * and HEAD of /metrics and / are answered, everything else is 404 or 405.
 * The worker's own loop only sleeps and reports its heartbeat.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/hostport.h"
#include "shm/metrics.h"
#include "worker.h"

#define METRICS_CONNS     16
#define METRICS_TIMEOUT_S 10

typedef struct metrics_worker {
    shmq_worker_t *w;
    struct MHD_Daemon *httpd;
} metrics_worker_t;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)version;
    (void)upload;
    (void)req;
    metrics_worker_t *m = cls;
    static char not_found[] = "not found: the metrics are at /metrics\n";
    static char not_allowed[] = "only GET and HEAD\n";
    if (*upload_size != 0) {
        *upload_size = 0; /* a body is ignored */
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", not_allowed,
                     sizeof(not_allowed) - 1, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0 && strcmp(url, "/") != 0) {
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", not_found,
                     sizeof(not_found) - 1, MHD_RESPMEM_PERSISTENT);
    }
    char *text = NULL;
    size_t len = 0;
    if (shmq_metrics_text(&m->w->ctl, &text, &len) < 0) {
        static char oom[] = "out of memory\n";
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", oom,
                     sizeof(oom) - 1, MHD_RESPMEM_PERSISTENT);
    }
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                 MHD_RESPMEM_MUST_FREE);
}

/* metricsListen ("host:port", a number already made 127.0.0.1:PORT) as a socket address. */
static int listen_addr(const char *listen, struct sockaddr_storage *ss)
{
    char host[256];
    int port;
    if (shmq_hostport_split(listen, host, sizeof(host), &port) < 0 || port < 1) {
        shmq_log(SHMQ_LOG_ERROR, "metricsListen '%s': expected PORT or HOST:PORT", listen);
        return -1;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "metricsListen '%s': cannot resolve %s: %s", listen, host,
                 gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    }
    freeaddrinfo(ai);
    return 0;
}

static int metrics_init(shmq_worker_t *w, void **state)
{
    metrics_worker_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    m->w = w;
    struct sockaddr_storage ss;
    if (listen_addr(w->cfg->metrics_listen, &ss) < 0) {
        free(m);
        return SHMQ_EXIT_CONFIG;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    m->httpd = MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
                                (const struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)METRICS_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (m->httpd == NULL) {
        /* Most likely the address is taken: a configuration matter, not retried in a loop. */
        shmq_log(SHMQ_LOG_ERROR, "cannot serve the metrics on %s: %s", w->cfg->metrics_listen,
                 errno ? strerror(errno) : "libmicrohttpd refused");
        free(m);
        return SHMQ_EXIT_CONFIG;
    }
    shmq_log(SHMQ_LOG_INFO, "serving the metrics at http://%s/metrics", w->cfg->metrics_listen);
    *state = m;
    return 0;
}

static int64_t metrics_work(shmq_worker_t *w, void *state)
{
    (void)w;
    (void)state;
    return 0; /* the HTTP thread does the work */
}

static void metrics_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    (void)w;
    (void)state;
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal (SIGTERM) ends it early */
}

static bool metrics_done(shmq_worker_t *w, void *state)
{
    (void)state;
    /* Acquire: pairs with the master's release store of the state. */
    return atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire) ==
           SHMQ_STATE_FINISHING;
}

static int metrics_finish(shmq_worker_t *w, void *state)
{
    (void)w;
    metrics_worker_t *m = state;
    MHD_stop_daemon(m->httpd);
    free(m);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = metrics_init,
        .work = metrics_work,
        .idle = metrics_idle,
        .finish = metrics_finish,
        .done = metrics_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_METRICS, &ops);
}
