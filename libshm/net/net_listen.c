/*
 * net: the listener (net.h).  Binds, listens, and turns each accepted
 * socket into a connection (net.c) handed to on_accept; it keeps no list
 * of them: an accepted connection lives on its own until its on_close.
 * With TLS a connection is handed over once its handshake succeeded; until
 * then the listener keeps it in a list (closed with the listener), and one
 * whose handshake fails is reported to on_refused.
 */
#include "net/net_int.h"

#include "shmq/errors.h"

#include <errno.h>
#include <stdlib.h>

struct shmq_net_listener {
    uv_tcp_t tcp;
    shmq_net_listen_cfg_t cfg;
    int port;
    bool closing;
    shmq_net_conn_t *pending; /* TLS handshakes in progress */
};

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pending_unlink(shmq_net_listener_t *l, shmq_net_conn_t *c)
{
    if (c->pend_prev != NULL) {
        c->pend_prev->pend_next = c->pend_next;
    } else {
        l->pending = c->pend_next;
    }
    if (c->pend_next != NULL) {
        c->pend_next->pend_prev = c->pend_prev;
    }
    c->pend_next = c->pend_prev = NULL;
    c->lis = NULL;
}

/* The TLS handshake succeeded: the caller gets the connection (reading runs already). */
static void listener_secure(shmq_net_conn_t *c)
{
    shmq_net_listener_t *l = c->lis;
    pending_unlink(l, c);
    shmq_net_conn_deliver(c);
    l->cfg.on_accept(l, c, 0);
}

void shmq_net_listener_conn_gone(shmq_net_listener_t *l, shmq_net_conn_t *c)
{
    pending_unlink(l, c);
    if (l->cfg.on_refused != NULL && !l->closing) {
        l->cfg.on_refused(l, c->peer, c->reason);
    }
}

static void listener_accept(uv_stream_t *s, int status)
{
    shmq_net_listener_t *l = s->data;
    shmq_net_conn_t *c;
    if (l->closing) {
        return;
    }
    if (status < 0) {
        shmq_error_set(status, "listener :%d: accept: %s", l->port, uv_strerror(status));
        l->cfg.on_accept(l, NULL, status);
        return;
    }
    int rc = shmq_net_conn_new(s->loop, &l->cfg.conn, l->cfg.arg, &c);
    if (rc < 0) {
        l->cfg.on_accept(l, NULL, rc);
        return;
    }
    rc = uv_accept(s, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        shmq_net_conn_close(c, "accept"); /* not delivered: no on_close */
        shmq_error_set(rc, "listener :%d: accept: %s", l->port, uv_strerror(rc));
        l->cfg.on_accept(l, NULL, rc);
        return;
    }
    shmq_net_conn_prepare(c);
    if (c->cfg.tls != NULL) {
        c->lis = l;
        c->on_secure = listener_secure;
        c->pend_next = l->pending;
        if (l->pending != NULL) {
            l->pending->pend_prev = c;
        }
        l->pending = c;
        shmq_net_tls_start(c, listener_secure);
        return;
    }
    shmq_net_conn_deliver(c);
    l->cfg.on_accept(l, c, 0);
    shmq_net_conn_start(c);
}

int shmq_net_listen(uv_loop_t *loop, const char *hostport, const shmq_net_listen_cfg_t *cfg,
                    shmq_net_listener_t **out)
{
    shmq_net_addr_t addr;
    if (cfg->on_accept == NULL || cfg->conn.on_read == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "listen %s: on_accept and on_read are required",
                              hostport);
    }
    int rc = shmq_net_addr_parse(hostport, cfg->any_port, &addr);
    if (rc < 0) {
        return rc;
    }
    shmq_net_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return shmq_error_set(-ENOMEM, "listen %s: no memory", addr.text);
    }
    l->cfg = *cfg;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    /* libuv sets SO_REUSEADDR: a restarted master rebinds at once. */
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&addr.sa, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->tcp, cfg->backlog > 0 ? cfg->backlog : 128,
                       listener_accept);
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (rc == 0) {
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    }
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        return shmq_error_set(rc, "listen %s: %s", addr.text, uv_strerror(rc));
    }
    l->port = ntohs(((const struct sockaddr_in *)&bound)->sin_port); /* same spot in sin6 */
    *out = l;
    return 0;
}

int shmq_net_listener_port(const shmq_net_listener_t *l)
{
    return l->port;
}

void *shmq_net_listener_arg(const shmq_net_listener_t *l)
{
    return l->cfg.arg;
}

void shmq_net_listener_close(shmq_net_listener_t *l)
{
    if (!l->closing) {
        l->closing = true;
        while (l->pending != NULL) {
            shmq_net_conn_t *c = l->pending;
            pending_unlink(l, c);
            shmq_net_conn_close(c, "listener closed");
        }
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
    }
}
