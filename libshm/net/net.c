/*
 * net: addresses and connections (net.h).  A connection is a libuv TCP
 * handle, an idle timer and one read buffer in one allocation; writes are
 * copied into blocks of their own, freed by their completion.  The
 * connection is freed when both handles' close callbacks have run, after
 * on_close: until then every callback may still look at it, which is what
 * makes closing from inside a callback safe.  Listeners (net_listen.c) and
 * connectors (net_connect.c) make connections through net_int.h.
 */
#include "net/net_int.h"

#include "base/hostport.h"
#include "shmq/errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One queued write: libuv's request and the copied bytes. */
typedef struct write_block {
    uv_write_t req;
    shmq_net_conn_t *conn;
    char data[];
} write_block_t;

/* ---- addresses ----------------------------------------------------------- */

int shmq_net_addr_parse(const char *hostport, bool any_port, shmq_net_addr_t *out)
{
    char host[INET6_ADDRSTRLEN + 16]; /* room for a scope: "fe80::1%eth0" */
    int port;
    int rc = shmq_hostport_split(hostport, host, sizeof(host), &port);
    if (rc < 0) {
        return rc;
    }
    if (port == 0 && !any_port) {
        return shmq_error_set(SHMQ_E_ARG, "'%s': port 0 (expected 1..65535)", hostport);
    }
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&out->sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&out->sa) != 0) {
        return shmq_error_set(SHMQ_E_ARG, "'%s': host '%s' is not an IPv4 or IPv6 address",
                              hostport, host);
    }
    shmq_net_addr_text((const struct sockaddr *)&out->sa, out->text, sizeof(out->text));
    return 0;
}

void shmq_net_addr_text(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, size, "?");
    }
}

/* ---- life cycle ---------------------------------------------------------- */

/* The second close callback: tell the caller, then the connector, then free. */
static void conn_handle_closed(uv_handle_t *h)
{
    shmq_net_conn_t *c = h->data;
    if (--c->open_handles > 0) {
        return;
    }
    if (c->delivered && !c->silent && c->cfg.on_close != NULL) {
        c->cfg.on_close(c, c->reason);
    }
    if (c->lis != NULL) {
        shmq_net_listener_conn_gone(c->lis, c);
    }
    if (c->ssl != NULL) {
        shmq_net_tls_end(c);
    }
    if (c->owner != NULL) {
        shmq_net_connector_conn_gone(c->owner, c);
    }
    free(c);
}

int shmq_net_conn_new(uv_loop_t *loop, const shmq_net_conn_cfg_t *cfg, void *arg,
                      shmq_net_conn_t **out)
{
    shmq_net_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return shmq_error_set(-ENOMEM, "net: no memory for a connection");
    }
    c->cfg = *cfg;
    if (c->cfg.high_water == 0) {
        c->cfg.high_water = SHMQ_NET_HIGH_WATER;
    }
    if (c->cfg.low_water == 0) {
        c->cfg.low_water = c->cfg.high_water / 4;
    }
    if (c->cfg.low_water > c->cfg.high_water) {
        c->cfg.low_water = c->cfg.high_water;
    }
    c->arg = arg;
    /* Both inits only fill the structures (they cannot fail for AF_UNSPEC
     * and a valid loop): from here on the handles must be closed, not freed. */
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    snprintf(c->peer, sizeof(c->peer), "?");
    snprintf(c->security, sizeof(c->security), "plain");
    *out = c;
    return 0;
}

void shmq_net_conn_close(shmq_net_conn_t *c, const char *fmt, ...)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    /* uv_close stops reading, cancels queued writes (their callbacks run
     * with UV_ECANCELED before ours) and a pending connect. */
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

/* ---- reading and the idle timeout ---------------------------------------- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    shmq_net_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    shmq_net_conn_t *c = s->data;
    (void)buf;
    if (nread == UV_EOF) {
        shmq_net_conn_close(c, "closed by peer");
    } else if (nread < 0) {
        shmq_net_conn_close(c, "read: %s", uv_strerror((int)nread));
    } else if (nread > 0) {
        c->last_read_ms = uv_now(c->tcp.loop);
        if (c->ssl != NULL) {
            shmq_net_tls_input(c, c->buf, (size_t)nread);
        } else {
            c->cfg.on_read(c, c->buf, (size_t)nread);
        }
    }
}

static void conn_idle_fired(uv_timer_t *t)
{
    shmq_net_conn_t *c = t->data;
    uint64_t idle = c->cfg.idle_ms;
    uint64_t quiet = uv_now(t->loop) - c->last_read_ms;
    if (c->paused) {
        uv_timer_start(t, conn_idle_fired, idle, 0);
    } else if (quiet >= idle) {
        if (idle % 1000 == 0) {
            shmq_net_conn_close(c, "idle %u s", (unsigned)(idle / 1000));
        } else {
            shmq_net_conn_close(c, "idle %u ms", (unsigned)idle);
        }
    } else {
        /* Reads do not touch the timer: it wakes once per idle period. */
        uv_timer_start(t, conn_idle_fired, idle - quiet, 0);
    }
}

/* After a resume: what TLS decrypted (or holds) while paused, then the idle timer again. */
static void conn_tls_resumed(uv_timer_t *t)
{
    shmq_net_conn_t *c = t->data;
    if (c->cfg.idle_ms > 0) {
        uv_timer_start(&c->timer, conn_idle_fired, c->cfg.idle_ms, 0);
    }
    shmq_net_tls_input(c, NULL, 0);
}

void shmq_net_conn_prepare(shmq_net_conn_t *c)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    /* Failures only cost latency or dead-peer detection: not fatal. */
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, SHMQ_NET_KEEPALIVE_S);
    if (c->cfg.sndbuf > 0) {
        int size = c->cfg.sndbuf;
        uv_send_buffer_size((uv_handle_t *)&c->tcp, &size);
    }
    if (c->cfg.rcvbuf > 0) {
        int size = c->cfg.rcvbuf;
        uv_recv_buffer_size((uv_handle_t *)&c->tcp, &size);
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
        shmq_net_addr_text((const struct sockaddr *)&sa, c->peer, sizeof(c->peer));
    }
    c->up_ms = uv_now(c->tcp.loop);
    c->last_read_ms = c->up_ms;
}

void shmq_net_conn_deliver(shmq_net_conn_t *c)
{
    c->delivered = true;
    c->up_ms = uv_now(c->tcp.loop);
}

void shmq_net_conn_start(shmq_net_conn_t *c)
{
    if (c->closing) {
        return;
    }
    c->started = true;
    if (c->cfg.idle_ms > 0) {
        uv_timer_start(&c->timer, conn_idle_fired, c->cfg.idle_ms, 0);
    }
    if (!c->paused) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
        if (rc < 0) {
            shmq_net_conn_close(c, "read: %s", uv_strerror(rc));
        }
    }
}

int shmq_net_conn_pause_read(shmq_net_conn_t *c)
{
    if (c->closing) {
        return shmq_error_set(-EPIPE, "%s: connection closing (%s)", c->peer, c->reason);
    }
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    return 0;
}

int shmq_net_conn_resume_read(shmq_net_conn_t *c)
{
    if (c->closing) {
        return shmq_error_set(-EPIPE, "%s: connection closing (%s)", c->peer, c->reason);
    }
    if (!c->paused) {
        return 0;
    }
    c->paused = false;
    c->last_read_ms = uv_now(c->tcp.loop);
    if (!c->started) {
        return 0; /* shmq_net_conn_start() will start reading */
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    if (rc < 0) {
        return shmq_error_set(rc, "%s: read: %s", c->peer, uv_strerror(rc));
    }
    if (shmq_net_tls_pending(c)) {
        /* Records read before the pause: delivered from the loop, not from this call. */
        uv_timer_start(&c->timer, conn_tls_resumed, 0, 0);
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

static void conn_wrote(uv_write_t *req, int status)
{
    write_block_t *b = req->data;
    shmq_net_conn_t *c = b->conn;
    free(b);
    if (status < 0) {
        if (status != UV_ECANCELED) { /* ECANCELED: our own close dropped it */
            shmq_net_conn_close(c, "write: %s", uv_strerror(status));
        }
        return;
    }
    if (!c->closing && c->want_drain && shmq_net_conn_queued(c) <= c->cfg.low_water) {
        c->want_drain = false;
        if (c->cfg.on_drain != NULL) {
            c->cfg.on_drain(c);
        }
    }
}

int shmq_net_conn_writev(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt)
{
    if (c->closing) {
        return shmq_error_set(-EPIPE, "%s: connection closing (%s)", c->peer, c->reason);
    }
    if (shmq_net_conn_queued(c) >= c->cfg.high_water) {
        c->want_drain = true;
        return shmq_error_set(-EAGAIN, "%s: %zu bytes queued (high-water mark %zu)", c->peer,
                              shmq_net_conn_queued(c), c->cfg.high_water);
    }
    return c->ssl != NULL ? shmq_net_tls_write(c, iov, iovcnt)
                          : shmq_net_conn_submit(c, iov, iovcnt);
}

int shmq_net_conn_submit(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (len == 0) {
        return 0;
    }
    if (len > INT32_MAX) { /* libuv's buffers count in unsigned int */
        return shmq_error_set(-EMSGSIZE, "%s: a write of %zu bytes", c->peer, len);
    }
    write_block_t *b = malloc(sizeof(*b) + len);
    if (b == NULL) {
        return shmq_error_set(-ENOMEM, "%s: no memory for a write of %zu bytes", c->peer, len);
    }
    b->conn = c;
    b->req.data = b;
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(b->data + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    /* libuv writes at once what the kernel takes and queues the rest. */
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)len);
    int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, &ub, 1, conn_wrote);
    if (rc < 0) {
        free(b);
        return shmq_error_set(rc, "%s: write: %s", c->peer, uv_strerror(rc));
    }
    return 0;
}

int shmq_net_conn_write(shmq_net_conn_t *c, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return shmq_net_conn_writev(c, &iov, 1);
}

size_t shmq_net_conn_queued(const shmq_net_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* ---- accessors ----------------------------------------------------------- */

const char *shmq_net_conn_peer(const shmq_net_conn_t *c)
{
    return c->peer;
}

const char *shmq_net_conn_security(const shmq_net_conn_t *c)
{
    return c->security;
}

void *shmq_net_conn_arg(const shmq_net_conn_t *c)
{
    return c->arg;
}

void shmq_net_conn_set_arg(shmq_net_conn_t *c, void *arg)
{
    c->arg = arg;
}
