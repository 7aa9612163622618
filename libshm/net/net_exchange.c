/*
 * net: one request and its answer, blocking (net.h, shmq_net_exchange):
 * for a process that has no loop of its own at that moment (shmqd before
 * its workers run, a worker before it follows).  It is the connector of
 * net_connect.c on a private loop, stopped after its first connection or
 * failure, so that plain and TLS connections behave exactly as they do
 * for the long-lived links.
 */
#include "net/net_int.h"

#include "shmq/errors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct exchange {
    shmq_net_connector_t *k;
    uv_timer_t timer;
    const void *req;
    size_t req_len;
    long (*answer_size)(const uint8_t *buf, size_t len);
    size_t max;
    uint8_t *buf;
    size_t len, cap;
    long want; /* the answer's length once known, else 0 */
    int rc;    /* 1 while running; 0 done; < 0 failed */
    char why[200];
} exchange_t;

static void finish(exchange_t *x, int rc, const char *why)
{
    if (x->rc != 1) {
        return;
    }
    x->rc = rc;
    if (why != NULL) {
        snprintf(x->why, sizeof(x->why), "%s", why);
    }
    if (x->k != NULL) {
        shmq_net_connector_stop(x->k);
        x->k = NULL;
    }
    uv_timer_stop(&x->timer);
}

static void x_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    exchange_t *x = shmq_net_conn_arg(c);
    if (x->rc != 1) {
        return;
    }
    if (len > x->max - x->len) {
        finish(x, -EMSGSIZE, "the answer is longer than the most taken");
        return;
    }
    if (x->len + len > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + len) {
            cap *= 2;
        }
        uint8_t *nb = realloc(x->buf, cap);
        if (nb == NULL) {
            finish(x, -ENOMEM, "no memory for the answer");
            return;
        }
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, len);
    x->len += len;
    if (x->want == 0) {
        long w = x->answer_size(x->buf, x->len);
        if (w < 0) {
            finish(x, (int)w, shmq_error_detail());
            return;
        }
        if ((size_t)w > x->max) {
            finish(x, -EMSGSIZE, "the answer is longer than the most taken");
            return;
        }
        x->want = w;
    }
    if (x->want > 0 && x->len >= (size_t)x->want) {
        x->len = (size_t)x->want; /* bytes after the answer are not ours */
        finish(x, 0, NULL);
    }
}

static void x_connected(shmq_net_connector_t *k, shmq_net_conn_t *c)
{
    exchange_t *x = shmq_net_connector_arg(k);
    int rc = shmq_net_conn_write(c, x->req, x->req_len);
    if (rc < 0) {
        finish(x, rc, shmq_error_detail());
    }
}

static void x_disconnected(shmq_net_connector_t *k, const char *reason, uint32_t retry_ms)
{
    (void)retry_ms;
    exchange_t *x = shmq_net_connector_arg(k);
    /* A TLS failure (a peer without our key): -EACCES. */
    int rc = strncmp(reason, "TLS", 3) == 0                 ? -EACCES
             : strstr(reason, "connection refused") != NULL ? -ECONNREFUSED
                                                            : -ECONNRESET;
    finish(x, rc, reason);
}

static void x_timeout(uv_timer_t *t)
{
    finish(t->data, -ETIMEDOUT, "no answer in time");
}

int shmq_net_exchange(const char *hostport, const shmq_net_tls_t *tls, const void *req,
                      size_t req_len, long (*answer_size)(const uint8_t *buf, size_t len),
                      size_t max, int timeout_ms, uint8_t **out, size_t *out_len)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return shmq_error_set(-ENOMEM, "%s: no event loop", hostport);
    }
    exchange_t x = {
        .req = req, .req_len = req_len, .answer_size = answer_size, .max = max, .rc = 1};
    uv_timer_init(&loop, &x.timer);
    x.timer.data = &x;
    uv_timer_start(&x.timer, x_timeout, (uint64_t)(timeout_ms > 0 ? timeout_ms : 1), 0);
    shmq_net_connector_cfg_t kc = {
        .on_connected = x_connected,
        .on_disconnected = x_disconnected,
        .arg = &x,
        .connect_timeout_ms = (uint32_t)(timeout_ms > 0 ? timeout_ms : 1),
        .conn = {.on_read = x_read, .tls = tls},
    };
    int rc = shmq_net_connector_start(&loop, hostport, &kc, &x.k);
    if (rc < 0) {
        x.k = NULL;
        finish(&x, rc, shmq_error_detail());
    }
    while (x.rc == 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&x.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the connector's and connection's close callbacks */
    uv_loop_close(&loop);
    if (x.rc < 0) {
        free(x.buf);
        return shmq_error_set(x.rc, "%s: %s", hostport, x.why);
    }
    *out = x.buf;
    *out_len = x.len;
    return 0;
}
