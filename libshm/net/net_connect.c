/*
 * net: the connector (net.h) — one outgoing connection kept up with
 * exponential backoff, what a slave's HA receiver needs toward its master.
 * States: waiting (retry timer armed, no connection), connecting (a
 * connection not yet delivered, its timer the connect timeout), connected
 * (delivered).  Every failure or close goes through
 * shmq_net_connector_conn_gone() back to waiting.  The connector is freed
 * when it is stopped and both its timer and its connection are closed.
 */
#include "net/net_int.h"

#include "shmq/errors.h"

#include <errno.h>
#include <stdlib.h>

struct shmq_net_connector {
    uv_loop_t *loop;
    uv_timer_t retry;
    shmq_net_connector_cfg_t cfg;
    shmq_net_addr_t addr;
    shmq_net_conn_t *conn;  /* connecting or connected, or NULL */
    uint32_t next_delay_ms; /* the delay after the next failure */
    bool stopped;
    bool retry_closed;
};

static void connector_free_if_done(shmq_net_connector_t *k)
{
    if (k->stopped && k->retry_closed && k->conn == NULL) {
        free(k);
    }
}

static void connector_retry_closed(uv_handle_t *h)
{
    shmq_net_connector_t *k = h->data;
    k->retry_closed = true;
    connector_free_if_done(k);
}

/* The TLS handshake succeeded: the caller gets the connection (reading runs already). */
static void connector_secure(shmq_net_conn_t *c)
{
    shmq_net_conn_deliver(c);
    c->owner->cfg.on_connected(c->owner, c);
}

static void connector_connected(uv_connect_t *req, int status)
{
    shmq_net_conn_t *c = req->data;
    shmq_net_connector_t *k = c->owner;
    if (c->closing) {
        return; /* status UV_ECANCELED: timed out or stopped, already closing */
    }
    if (status < 0) {
        shmq_net_conn_close(c, "connect %s: %s", k->addr.text, uv_strerror(status));
        return;
    }
    uv_timer_stop(&c->timer); /* the connect timeout; start() arms the idle one */
    shmq_net_conn_prepare(c);
    if (c->cfg.tls != NULL) {
        shmq_net_tls_start(c, connector_secure);
        return;
    }
    shmq_net_conn_deliver(c);
    k->cfg.on_connected(k, c);
    shmq_net_conn_start(c);
}

static void connector_connect_timeout(uv_timer_t *t)
{
    shmq_net_conn_t *c = t->data;
    shmq_net_conn_close(c, "connect %s: timed out after %u ms", c->owner->addr.text,
                        (unsigned)c->owner->cfg.connect_timeout_ms);
}

/* One attempt; every failure, even at once, comes back through conn_gone. */
static void connector_attempt(uv_timer_t *t)
{
    shmq_net_connector_t *k = t->data;
    shmq_net_conn_t *c;
    if (shmq_net_conn_new(k->loop, &k->cfg.conn, k->cfg.arg, &c) < 0) {
        uv_timer_start(&k->retry, connector_attempt, k->next_delay_ms, 0); /* no memory */
        return;
    }
    c->owner = k;
    k->conn = c;
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&k->addr.sa,
                            connector_connected);
    if (rc < 0) {
        shmq_net_conn_close(c, "connect %s: %s", k->addr.text, uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, connector_connect_timeout, k->cfg.connect_timeout_ms, 0);
}

void shmq_net_connector_conn_gone(shmq_net_connector_t *k, shmq_net_conn_t *c)
{
    k->conn = NULL;
    if (k->stopped) {
        connector_free_if_done(k);
        return;
    }
    /* A connection that lasted resets the backoff; a failed attempt or a
     * short-lived connection takes the next, longer delay. */
    if (c->delivered && uv_now(k->loop) - c->up_ms >= k->cfg.backoff_max_ms) {
        k->next_delay_ms = k->cfg.backoff_min_ms;
    }
    uint32_t delay = k->next_delay_ms;
    k->next_delay_ms = delay >= k->cfg.backoff_max_ms / 2 ? k->cfg.backoff_max_ms : delay * 2;
    if (k->cfg.on_disconnected != NULL) {
        k->cfg.on_disconnected(k, c->reason, delay);
    }
    if (!k->stopped) { /* on_disconnected may have stopped it */
        uv_timer_start(&k->retry, connector_attempt, delay, 0);
    }
}

int shmq_net_connector_start(uv_loop_t *loop, const char *hostport,
                             const shmq_net_connector_cfg_t *cfg, shmq_net_connector_t **out)
{
    if (cfg->on_connected == NULL || cfg->conn.on_read == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "connect %s: on_connected and on_read are required",
                              hostport);
    }
    shmq_net_connector_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return shmq_error_set(-ENOMEM, "connect %s: no memory", hostport);
    }
    int rc = shmq_net_addr_parse(hostport, false, &k->addr);
    if (rc < 0) {
        free(k);
        return rc;
    }
    k->loop = loop;
    k->cfg = *cfg;
    if (k->cfg.backoff_min_ms == 0) {
        k->cfg.backoff_min_ms = SHMQ_NET_BACKOFF_MIN_MS;
    }
    if (k->cfg.backoff_max_ms == 0) {
        k->cfg.backoff_max_ms = SHMQ_NET_BACKOFF_MAX_MS;
    }
    if (k->cfg.backoff_max_ms < k->cfg.backoff_min_ms) {
        k->cfg.backoff_max_ms = k->cfg.backoff_min_ms;
    }
    if (k->cfg.connect_timeout_ms == 0) {
        k->cfg.connect_timeout_ms = SHMQ_NET_CONNECT_TIMEOUT_MS;
    }
    k->next_delay_ms = k->cfg.backoff_min_ms;
    uv_timer_init(loop, &k->retry);
    k->retry.data = k;
    /* The first attempt from the loop, like every later one: no callback
     * runs inside this call. */
    uv_timer_start(&k->retry, connector_attempt, 0, 0);
    *out = k;
    return 0;
}

void *shmq_net_connector_arg(const shmq_net_connector_t *k)
{
    return k->cfg.arg;
}

void shmq_net_connector_stop(shmq_net_connector_t *k)
{
    if (k->stopped) {
        return;
    }
    k->stopped = true;
    uv_close((uv_handle_t *)&k->retry, connector_retry_closed);
    if (k->conn != NULL) {
        k->conn->silent = true;
        shmq_net_conn_close(k->conn, "connector stopped");
    }
}
