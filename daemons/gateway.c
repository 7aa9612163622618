/*
 * shmq-gateway: RocketMQ's remoting protocol over TCP, so that RocketMQ
 * client applications produce to and consume from the store
 * (docs/gateway.md).  One port (listenPort, on gatewayBindAddress,
 * 127.0.0.1 by default) serves both roles a client talks to: the name
 * server (routes: this broker is the only broker of every topic) and the
 * broker (sends, pulls with long polling, offsets, heartbeats, queries).
 *
 * Started by shmqd when gatewayEnable=true, as `shmq-gateway --store DIR`
 * (worker skeleton, worker.h); restarted by it when it dies.  Owns no
 * position and nothing of the store: its sends go through an ordinary
 * producer ring, its pulls and offsets through ordinary consumer handles
 * (one per consumer group), so the store's rules (topic perms, sizes,
 * retries and dead letters) apply as to any client.  Its own state (client
 * ids of groups, queue locks, held pulls) is in its memory: a restart
 * loses it, and RocketMQ clients register again with their next heartbeat.
 *
 * Every frame is hostile input (format/remoting.h): a length past 16 MiB
 * or a malformed prefix closes the connection; a header that is no JSON or
 * lacks what a request needs is answered with an error and the connection
 * goes on; an unknown request code is answered REQUEST_CODE_NOT_SUPPORTED.
 * A frame begun must be whole within GW_FRAME_MS, a client silent for
 * GW_IDLE_MS is closed, at most gatewayMaxConnections are held, and a
 * client whose answers pile up stops being read (its answers are bounded).
 * Each is logged and counted.  It trusts its network: RocketMQ's ACL
 * signatures are not checked.
 *
 * It owns (single writer) the control block's gateway section
 * (shmq_ctl_gateway_t): its counts, published after each unit of work.
 *
 * Held pulls: one thread sleeps on `dispatched` (futex) only while pulls
 * are held, and wakes the loop when new messages were dispatched; their
 * times are looked at every GW_POLL_MS.  An idle gateway sleeps.
 *
 * Signals: those of the worker skeleton (SIGTERM, SIGINT: stop).  Killed at
 * any instruction, it loses only what lives in its memory: its clients'
 * connections (they connect again and repeat what was not answered), the
 * client ids and locks (back with their next heartbeat and renewal), held
 * pulls; a send in flight was stored or not as its ring entry says, as for
 * any producer that dies.
 *
 * Orderly stop: when the store drains, it stops listening, closes its
 * clients and exits 0 once its sends in flight are answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "format/message.h"
#include "gateway.h"
#include "shm/ring.h"
#include "shmq/errors.h"
#include "worker_uv.h"

/* ---- client warnings, rate-limited -------------------------------------------------------- */

void gw_warn(gw_t *gw, const char *fmt, ...)
{
    int64_t now = shmq_mono_ms();
    if (now - gw->warn_window_ms >= GW_WARN_WINDOW_MS) {
        if (gw->warn_suppressed > 0) {
            shmq_log(SHMQ_LOG_WARN, "%llu more warnings about clients not logged",
                     (unsigned long long)gw->warn_suppressed);
        }
        gw->warn_window_ms = now;
        gw->warn_lines = 0;
        gw->warn_suppressed = 0;
    }
    if (gw->warn_lines >= GW_WARN_LINES) {
        gw->warn_suppressed++;
        return;
    }
    gw->warn_lines++;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    shmq_log(SHMQ_LOG_WARN, "%s", line);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void write_frame(gw_conn_t *conn, const uint8_t *hdr, size_t hlen, const void *body,
                        size_t body_len)
{
    if (conn->closed) {
        return;
    }
    struct iovec iov[2] = {{(void *)hdr, hlen}, {(void *)body, body_len}};
    conn->gw->counts.bytes_out += hlen + body_len;
    int rc = shmq_net_conn_writev(conn->c, iov, body_len ? 2 : 1);
    if (rc == -EAGAIN) {
        conn->gw->counts.closed_bad++;
        shmq_net_conn_close(conn->c, "more than %u bytes of answers not read", GW_OUT_HIGH_WATER);
    }
}

void gw_answer(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int code, const char *remark,
               const json_t *ext, const void *body, size_t body_len)
{
    if (cmd->flag & SHMQ_RMT_FLAG_ONEWAY) {
        return;
    }
    uint8_t *hdr;
    size_t hlen;
    int rc = shmq_rmt_encode(code, cmd->opaque, SHMQ_RMT_FLAG_RESPONSE, remark, ext, body_len, &hdr,
                             &hlen);
    if (rc < 0) {
        gw_warn(conn->gw, "client %s: cannot encode an answer to request %d: %s", conn->peer_text,
                cmd->code, shmq_error_detail());
        if (body_len == 0 ||
            shmq_rmt_encode(SHMQ_RMT_SYSTEM_ERROR, cmd->opaque, SHMQ_RMT_FLAG_RESPONSE,
                            "answer too big", NULL, 0, &hdr, &hlen) < 0) {
            return;
        }
        body_len = 0;
    }
    write_frame(conn, hdr, hlen, body, body_len);
    free(hdr);
}

void gw_answer_err(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int code, const char *fmt, ...)
{
    char remark[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(remark, sizeof(remark), fmt, ap);
    va_end(ap);
    gw_answer(conn, cmd, code, remark, NULL, NULL, 0);
}

void gw_notify(gw_conn_t *conn, int code, const json_t *ext)
{
    static int32_t opaque = 1 << 30;
    uint8_t *hdr;
    size_t hlen;
    if (shmq_rmt_encode(code, opaque++, SHMQ_RMT_FLAG_ONEWAY, NULL, ext, 0, &hdr, &hlen) == 0) {
        write_frame(conn, hdr, hlen, NULL, 0);
        free(hdr);
    }
}

const char *gw_need(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, const char *name, char *buf,
                    size_t cap)
{
    const char *v = shmq_rmt_ext(cmd, name, buf, cap);
    if (v == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR,
                      "the request (code %d) lacks the header field '%s'", cmd->code, name);
    }
    return v;
}

bool gw_need_i64(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, const char *name, int64_t lo,
                 int64_t hi, int64_t *out)
{
    if (shmq_rmt_ext_i64(cmd, name, lo, hi, out) < 0) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "request code %d: %s", cmd->code,
                      shmq_error_detail());
        return false;
    }
    return true;
}

int gw_code_of(int err)
{
    switch (err) {
    case SHMQ_E_TOPIC:
    case SHMQ_E_TOO_BIG:
    case SHMQ_E_PROPS:
    case SHMQ_E_ARG:
    case SHMQ_E_RANGE:
        return SHMQ_RMT_MESSAGE_ILLEGAL;
    case -EACCES:
    case -EPERM:
        return SHMQ_RMT_NO_PERMISSION;
    case SHMQ_E_NOT_FOUND:
    case -ESHUTDOWN:
    case SHMQ_E_DISK_FULL:
    case -ENOSPC:
    case SHMQ_E_FENCED:
    case SHMQ_E_NOT_MASTER:
        return SHMQ_RMT_SERVICE_NOT_AVAILABLE;
    default:
        return SHMQ_RMT_SYSTEM_ERROR;
    }
}

/* ---- groups ------------------------------------------------------------------------------- */

shmq_consumer_t *gw_group(gw_t *gw, const char *group)
{
    for (int i = 0; i < gw->ngroups; i++) {
        if (strcmp(gw->groups[i].name, group) == 0) {
            return gw->groups[i].c;
        }
    }
    if (strlen(group) >= sizeof(gw->groups[0].name)) {
        shmq_error_set(SHMQ_E_ARG, "consumer group '%.64s...' is too long", group);
        return NULL;
    }
    if (gw->ngroups == GW_GROUPS_MAX) {
        /* the oldest group's handle goes: opened again when it comes back */
        shmq_consumer_close(gw->groups[0].c);
        memmove(&gw->groups[0], &gw->groups[1], sizeof(gw->groups[0]) * (GW_GROUPS_MAX - 1));
        gw->ngroups--;
    }
    shmq_consumer_t *c;
    if (shmq_consumer_open(gw->cfg->store_path_root_dir, group, &c) < 0) {
        return NULL;
    }
    gw_group_t *g = &gw->groups[gw->ngroups++];
    snprintf(g->name, sizeof(g->name), "%s", group);
    g->c = c;
    return c;
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_free(gw_conn_t *conn)
{
    free(conn->buf);
    free(conn);
}

void gw_conn_unref(gw_conn_t *conn)
{
    if (--conn->refs == 0 && conn->closed) {
        conn_free(conn);
    }
}

static void dispatch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    gw->counts.requests++;
    if (cmd->code == SHMQ_RMT_SEND_MESSAGE || cmd->code == SHMQ_RMT_SEND_MESSAGE_V2 ||
        cmd->code == SHMQ_RMT_SEND_BATCH_MESSAGE) {
        gw->counts.requests_send++;
    } else if (cmd->code == SHMQ_RMT_PULL_MESSAGE) {
        gw->counts.requests_pull++;
    }
    switch (cmd->code) {
    case SHMQ_RMT_GET_ROUTEINFO_BY_TOPIC:
        gw_route(conn, cmd);
        break;
    case SHMQ_RMT_GET_BROKER_CLUSTER_INFO:
        gw_cluster(conn, cmd);
        break;
    case SHMQ_RMT_SEND_MESSAGE:
    case SHMQ_RMT_SEND_MESSAGE_V2:
        gw_send(conn, cmd);
        break;
    case SHMQ_RMT_SEND_BATCH_MESSAGE:
        gw_send_batch(conn, cmd);
        break;
    case SHMQ_RMT_PULL_MESSAGE:
        gw_pull(conn, cmd);
        break;
    case SHMQ_RMT_HEART_BEAT:
        gw_heartbeat(conn, cmd);
        break;
    case SHMQ_RMT_UNREGISTER_CLIENT:
        gw_unregister(conn, cmd);
        break;
    case SHMQ_RMT_GET_CONSUMER_LIST_BY_GROUP:
        gw_consumer_list(conn, cmd);
        break;
    case SHMQ_RMT_QUERY_CONSUMER_OFFSET:
    case SHMQ_RMT_UPDATE_CONSUMER_OFFSET:
    case SHMQ_RMT_GET_MAX_OFFSET:
    case SHMQ_RMT_GET_MIN_OFFSET:
    case SHMQ_RMT_SEARCH_OFFSET_BY_TIMESTAMP:
        gw_offsets(conn, cmd);
        break;
    case SHMQ_RMT_CONSUMER_SEND_MSG_BACK:
        gw_send_back(conn, cmd);
        break;
    case SHMQ_RMT_QUERY_MESSAGE:
        gw_query(conn, cmd);
        break;
    case SHMQ_RMT_VIEW_MESSAGE_BY_ID:
        gw_view(conn, cmd);
        break;
    case SHMQ_RMT_LOCK_BATCH_MQ:
    case SHMQ_RMT_UNLOCK_BATCH_MQ:
        gw_lock_batch(conn, cmd, cmd->code == SHMQ_RMT_LOCK_BATCH_MQ);
        break;
    default:
        gw->counts.unsupported++;
        shmq_log(SHMQ_LOG_DEBUG, "client %s: request code %d is not supported", conn->peer_text,
                 cmd->code);
        gw_answer_err(conn, cmd, SHMQ_RMT_REQUEST_CODE_NOT_SUPPORTED,
                      "request code %d is not supported by shmq-gateway", cmd->code);
        break;
    }
}

/* Whether conn must stop handling frames for now (and pause reading). */
static bool must_wait(gw_conn_t *conn)
{
    gw_t *gw = conn->gw;
    /* the producer ring's bytes (the master sized it for two of the largest messages; it never
     * changes while the store runs): room for one more send of any size, a batch's too (up to
     * maxMessageSize + SHMQ_RING_UNIT_SLACK of entries), or it would wait for ring space inside
     * the loop */
    uint64_t ring = gw->w->ctl.blk->hdr.ring_size;
    uint64_t next = (uint64_t)gw->cfg->max_message_size + SHMQ_RING_UNIT_SLACK + GW_SEND_OVERHEAD;
    return shmq_net_conn_queued(conn->c) >= GW_OUT_PAUSE || gw->sends >= GW_SENDS_MAX ||
           (gw->sends > 0 && gw->send_bytes + next > ring);
}

/* Handle the whole frames buffered; keep a partial one. */
static void process(gw_conn_t *conn)
{
    gw_t *gw = conn->gw;
    size_t off = 0;
    while (!conn->closed) {
        if (must_wait(conn)) {
            if (!conn->paused) {
                conn->paused = true;
                shmq_net_conn_pause_read(conn->c);
            }
            break;
        }
        int64_t fl = shmq_rmt_frame_size(conn->buf + off, conn->len - off, SHMQ_RMT_FRAME_MAX);
        if (fl < 0) {
            gw->counts.bad_frames++;
            gw->counts.closed_bad++;
            gw_warn(gw, "client %s: closed: %s", conn->peer_text, shmq_error_detail());
            shmq_net_conn_close(conn->c, "bad frame");
            break;
        }
        if (fl == 0 || (size_t)fl > conn->len - off) {
            break;
        }
        shmq_rmt_cmd_t cmd;
        if (shmq_rmt_decode(conn->buf + off, (size_t)fl, &cmd) < 0) {
            gw->counts.bad_frames++;
            gw_warn(gw, "client %s: bad request: %s", conn->peer_text, shmq_error_detail());
            shmq_rmt_cmd_t none = {.opaque = 0};
            gw_answer_err(conn, &none, SHMQ_RMT_SYSTEM_ERROR, "bad request: %s",
                          shmq_error_detail());
        } else {
            if (!(cmd.flag & SHMQ_RMT_FLAG_RESPONSE)) {
                dispatch(conn, &cmd);
            }
            shmq_rmt_cmd_free(&cmd);
        }
        off += (size_t)fl;
    }
    if (off > 0) {
        memmove(conn->buf, conn->buf + off, conn->len - off);
        conn->len -= off;
    }
    /* the clock of a partial frame starts when its first bytes are left over */
    if (conn->len == 0) {
        conn->frame_start_ms = 0;
    } else if (off > 0 || conn->frame_start_ms == 0) {
        conn->frame_start_ms = shmq_mono_ms();
    }
}

static void on_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    gw_conn_t *conn = shmq_net_conn_arg(c);
    gw_t *gw = conn->gw;
    gw->counts.bytes_in += len;
    if (conn->len + len > SHMQ_RMT_FRAME_MAX + SHMQ_NET_READ_SIZE) {
        gw->counts.closed_bad++;
        gw_warn(gw, "client %s: closed: more than %u bytes buffered", conn->peer_text,
                SHMQ_RMT_FRAME_MAX + SHMQ_NET_READ_SIZE);
        shmq_net_conn_close(c, "too many bytes buffered");
        return;
    }
    if (conn->len + len > conn->cap) {
        size_t cap = conn->cap ? conn->cap : 4096;
        while (cap < conn->len + len) {
            cap *= 2;
        }
        if (gw->buffered - conn->cap + cap > GW_BUFFERED_MAX) {
            /* every client's partial frames together: one more big frame would pass the bound */
            gw->counts.closed_bad++;
            gw_warn(gw,
                    "client %s: closed: the clients' frames being read hold %zu bytes (at most %u)",
                    conn->peer_text, gw->buffered, GW_BUFFERED_MAX);
            shmq_net_conn_close(c, "the gateway's buffers are full");
            return;
        }
        uint8_t *b = realloc(conn->buf, cap);
        if (b == NULL) {
            shmq_net_conn_close(c, "out of memory");
            return;
        }
        gw->buffered += cap - conn->cap;
        conn->buf = b;
        conn->cap = cap;
    }
    memcpy(conn->buf + conn->len, data, len);
    conn->len += len;
    process(conn);
    /* a large buffer left after a big frame is given back */
    if (conn->len == 0 && conn->cap > (1u << 20)) {
        gw->buffered -= conn->cap;
        free(conn->buf);
        conn->buf = NULL;
        conn->cap = 0;
    }
}

/* Go on with clients that waited for their answers to drain or for the producer. */
static void resume_waiting(gw_t *gw)
{
    for (gw_conn_t *conn = gw->conns; conn != NULL;) {
        gw_conn_t *next = conn->next;
        if (conn->paused && !must_wait(conn)) {
            conn->paused = false;
            process(conn);
            if (!conn->paused && !conn->closed) {
                shmq_net_conn_resume_read(conn->c);
            }
        }
        conn = next;
    }
}

static void on_drain(shmq_net_conn_t *c)
{
    gw_conn_t *conn = shmq_net_conn_arg(c);
    resume_waiting(conn->gw);
}

static void on_close(shmq_net_conn_t *c, const char *reason)
{
    gw_conn_t *conn = shmq_net_conn_arg(c);
    gw_t *gw = conn->gw;
    shmq_log(SHMQ_LOG_DEBUG, "client %s: %s", conn->peer_text, reason);
    gw_clients_drop_conn(gw, conn);
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        gw->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    gw->nconns--;
    gw->buffered -= conn->cap;
    free(conn->buf);
    conn->buf = NULL;
    conn->len = conn->cap = 0;
    conn->closed = true;
    conn->c = NULL;
    if (conn->refs == 0) {
        conn_free(conn);
    }
}

/* The born host of a client's messages, from "1.2.3.4:5678" or "[::1]:5678". */
static void peer_host(gw_conn_t *conn)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", conn->peer_text);
    char *colon = strrchr(host, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (colon) {
        *colon = '\0';
    }
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strcspn(h, "]")] = '\0';
    }
    memset(&conn->peer, 0, sizeof(conn->peer));
    conn->peer.port = port;
    if (inet_pton(AF_INET, h, conn->peer.addr) != 1) {
        if (inet_pton(AF_INET6, h, conn->peer.addr) == 1) {
            conn->peer.is_v6 = 1;
        } else {
            conn->peer.addr[0] = 127;
            conn->peer.addr[3] = 1;
        }
    }
}

static void on_accept(shmq_net_listener_t *l, shmq_net_conn_t *c, int err)
{
    gw_t *gw = shmq_net_listener_arg(l);
    if (c == NULL) {
        shmq_log(SHMQ_LOG_WARN, "accept: %s", strerror(-err));
        return;
    }
    if (gw->nconns >= gw->cfg->gateway_max_connections || gw->stopping) {
        gw->counts.refused_conns++;
        gw_warn(gw, "client %s refused: %d connections held (gatewayMaxConnections)",
                shmq_net_conn_peer(c), gw->nconns);
        shmq_net_conn_set_arg(c, NULL);
        shmq_net_conn_close(c, "too many connections");
        return;
    }
    gw_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        shmq_net_conn_set_arg(c, NULL);
        shmq_net_conn_close(c, "out of memory");
        return;
    }
    conn->gw = gw;
    conn->c = c;
    snprintf(conn->peer_text, sizeof(conn->peer_text), "%s", shmq_net_conn_peer(c));
    peer_host(conn);
    conn->next = gw->conns;
    if (gw->conns) {
        gw->conns->prev = conn;
    }
    gw->conns = conn;
    gw->nconns++;
    gw->counts.accepted++;
    shmq_net_conn_set_arg(c, conn);
    shmq_log(SHMQ_LOG_DEBUG, "client %s connected", conn->peer_text);
}

/* on_close of a refused connection (arg NULL) does nothing. */
static void on_close_any(shmq_net_conn_t *c, const char *reason)
{
    if (shmq_net_conn_arg(c) != NULL) {
        on_close(c, reason);
    }
}

static void on_read_any(shmq_net_conn_t *c, const char *data, size_t len)
{
    if (shmq_net_conn_arg(c) != NULL) {
        on_read(c, data, len);
    }
}

static void on_drain_any(shmq_net_conn_t *c)
{
    if (shmq_net_conn_arg(c) != NULL) {
        on_drain(c);
    }
}

/* ---- counters in the control block -------------------------------------------------------- */

/* Single writer (this process): a relaxed load and store, as shm/stats.h (statistics). */
static void put(_Atomic uint64_t *a, uint64_t v)
{
    if (atomic_load_explicit(a, memory_order_relaxed) != v) {
        atomic_store_explicit(a, v, memory_order_relaxed);
    }
}

/* Publish the counts to the control block's gateway section (after each unit of work). */
static void gw_counts_publish(gw_t *gw)
{
    shmq_ctl_gateway_t *g = &gw->w->ctl.blk->gateway;
    const gw_counts_t *k = &gw->counts;
    put(&g->connections, (uint64_t)gw->nconns);
    put(&g->accepted, k->accepted);
    put(&g->refused, k->refused_conns);
    put(&g->closed_bad, k->closed_bad);
    put(&g->closed_slow, k->slow_closed);
    put(&g->requests_send, k->requests_send);
    put(&g->requests_pull, k->requests_pull);
    put(&g->requests_other, k->requests - k->requests_send - k->requests_pull);
    put(&g->unsupported, k->unsupported);
    put(&g->bad_frames, k->bad_frames);
    put(&g->messages_sent, k->sends);
    put(&g->send_errors, k->send_errors);
    put(&g->bytes_in, k->bytes_in);
    put(&g->bytes_out, k->bytes_out);
    put(&g->held_pulls, (uint64_t)gw->nheld);
}

/* A restarted gateway's counts go on from what the control block holds (counters only grow). */
static void gw_counts_load(gw_t *gw)
{
    const shmq_ctl_gateway_t *g = &gw->w->ctl.blk->gateway;
    gw_counts_t *k = &gw->counts;
#define GW_LOAD(f) atomic_load_explicit(&g->f, memory_order_relaxed)
    k->accepted = GW_LOAD(accepted);
    k->refused_conns = GW_LOAD(refused);
    k->closed_bad = GW_LOAD(closed_bad);
    k->slow_closed = GW_LOAD(closed_slow);
    k->requests_send = GW_LOAD(requests_send);
    k->requests_pull = GW_LOAD(requests_pull);
    k->requests = k->requests_send + k->requests_pull + GW_LOAD(requests_other);
    k->unsupported = GW_LOAD(unsupported);
    k->bad_frames = GW_LOAD(bad_frames);
    k->sends = GW_LOAD(messages_sent);
    k->send_errors = GW_LOAD(send_errors);
    k->bytes_in = GW_LOAD(bytes_in);
    k->bytes_out = GW_LOAD(bytes_out);
#undef GW_LOAD
    k->pulls = k->requests_pull;
    gw->logged = *k;
}

/* ---- timers ------------------------------------------------------------------------------- */

static void log_counts(gw_t *gw)
{
    gw_counts_t *k = &gw->counts;
    if (memcmp(k, &gw->logged, sizeof(*k)) == 0) {
        return;
    }
    gw->logged = *k;
    shmq_log(SHMQ_LOG_INFO,
             "clients %d (accepted %llu, refused %llu, closed for bad input %llu, slow frames "
             "%llu); requests %llu (not supported %llu, bad frames %llu); sends %llu (failed "
             "%llu); pulls %llu",
             gw->nconns, (unsigned long long)k->accepted, (unsigned long long)k->refused_conns,
             (unsigned long long)k->closed_bad, (unsigned long long)k->slow_closed,
             (unsigned long long)k->requests, (unsigned long long)k->unsupported,
             (unsigned long long)k->bad_frames, (unsigned long long)k->sends,
             (unsigned long long)k->send_errors, (unsigned long long)k->pulls);
}

static void on_tick(uv_timer_t *t)
{
    gw_t *gw = t->data;
    int64_t now = shmq_mono_ms();
    for (gw_conn_t *conn = gw->conns; conn != NULL; conn = conn->next) {
        if (conn->frame_start_ms != 0 && !conn->paused &&
            now - conn->frame_start_ms > GW_FRAME_MS) {
            gw->counts.slow_closed++;
            gw_warn(gw, "client %s: closed: a frame begun %d s ago is not whole", conn->peer_text,
                    GW_FRAME_MS / 1000);
            shmq_net_conn_close(conn->c, "slow frame");
        }
    }
    gw_admin_tick(gw);
    static int64_t last_log;
    if (now - last_log >= 60000) {
        last_log = now;
        log_counts(gw);
    }
}

/* ---- held pulls: the waiter ------------------------------------------------------------- */

static void *waiter_main(void *arg)
{
    gw_t *gw = arg;
    shmq_ctl_block_t *blk = gw->w->ctl.blk;
    for (;;) {
        pthread_mutex_lock(&gw->mu);
        while (!gw->want && !gw->quit) {
            pthread_cond_wait(&gw->cv, &gw->mu);
        }
        bool quit = gw->quit;
        int64_t after = gw->want_pos;
        gw->want = false;
        pthread_mutex_unlock(&gw->mu);
        if (quit) {
            return NULL;
        }
        while (!__atomic_load_n(&gw->quit, __ATOMIC_RELAXED) &&
               shmq_ctl_wait_pos(&blk->dispatched, after + 1, GW_WAIT_MS) != 0) {
        }
        uv_async_send(&gw->wake);
    }
}

/* Ask the waiter to wake the loop once messages past what is dispatched now arrive. */
static void want_dispatch(gw_t *gw)
{
    int64_t pos = shmq_ctl_load(&gw->w->ctl.blk->dispatched);
    pthread_mutex_lock(&gw->mu);
    gw->want_pos = pos;
    gw->want = true;
    pthread_cond_signal(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
}

static void check_held(gw_t *gw)
{
    gw_pulls_check(gw, false);
    if (gw->pulls == NULL) {
        uv_timer_stop(&gw->poll);
        gw->poll_on = false;
    } else {
        want_dispatch(gw);
    }
}

static void on_wake(uv_async_t *a)
{
    check_held(a->data);
}

static void on_poll(uv_timer_t *t)
{
    check_held(t->data);
}

void gw_poll_start(gw_t *gw)
{
    if (!gw->poll_on) {
        gw->poll_on = true;
        uv_timer_start(&gw->poll, on_poll, GW_POLL_MS, GW_POLL_MS);
    }
    want_dispatch(gw);
}

/* ---- the worker --------------------------------------------------------------------------- */

static int64_t gw_work(shmq_worker_t *w, void *arg)
{
    (void)w;
    gw_t *gw = arg;
    int64_t n = 0;
    uv_run(&gw->loop, UV_RUN_NOWAIT);
    if (gw->sends > 0) {
        int k = shmq_producer_poll(gw->p, 0);
        n += k > 0 ? k : 0;
    }
    resume_waiting(gw);
    gw_counts_publish(gw);
    return n;
}

static void gw_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    (void)w;
    gw_t *gw = arg;
    if (gw->sends > 0) {
        /* answers of sends come through the producer, not the loop: wait there, briefly */
        shmq_producer_poll(gw->p, 2);
        return;
    }
    shmq_worker_uv_idle(&gw->loop, &gw->idle_timer, timeout_ms);
}

static bool gw_done(shmq_worker_t *w, void *arg)
{
    gw_t *gw = arg;
    /* Acquire: pairs with the master's release store of the state. */
    uint32_t st = atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
    if (st != SHMQ_STATE_DRAINING && st != SHMQ_STATE_FINISHING) {
        return false;
    }
    if (!gw->stopping) {
        gw->stopping = true;
        shmq_log(SHMQ_LOG_INFO, "the store stops: closing %d clients", gw->nconns);
        if (gw->lis) {
            shmq_net_listener_close(gw->lis);
            gw->lis = NULL;
        }
        for (gw_conn_t *conn = gw->conns; conn != NULL; conn = conn->next) {
            shmq_net_conn_close(conn->c, "the store stops");
        }
    }
    return gw->sends == 0;
}

static void gw_free(gw_t *gw)
{
    if (gw->waiter_started) {
        pthread_mutex_lock(&gw->mu);
        gw->quit = true;
        pthread_cond_signal(&gw->cv);
        pthread_mutex_unlock(&gw->mu);
        pthread_join(gw->waiter, NULL); /* within GW_WAIT_MS */
    }
    if (gw->lis) {
        shmq_net_listener_close(gw->lis);
    }
    for (gw_conn_t *conn = gw->conns; conn != NULL; conn = conn->next) {
        shmq_net_conn_close(conn->c, "the gateway stops");
    }
    if (gw->p) {
        shmq_producer_flush(gw->p, 3000);
    }
    while (gw->pulls) {
        gw_pull_t *hp = gw->pulls;
        gw->pulls = hp->next;
        shmq_rmt_cmd_free(&hp->cmd);
        hp->conn->suspended--;
        gw->nheld--;
        gw_conn_unref(hp->conn);
        free(hp);
    }
    if (gw->loop_open) {
        uv_run(&gw->loop, UV_RUN_NOWAIT); /* the on_close callbacks */
        shmq_worker_uv_close(&gw->loop);
    }
    if (gw->p) {
        shmq_producer_close(gw->p);
    }
    for (int i = 0; i < gw->ngroups; i++) {
        shmq_consumer_close(gw->groups[i].c);
    }
    if (gw->reader) {
        shmq_consumer_close(gw->reader);
    }
    if (gw->admin) {
        shmq_admin_close(gw->admin);
    }
    free(gw->clients);
    free(gw->locks);
    free(gw->scratch);
    free(gw->res);
    free(gw);
}

/* The address routes give clients: the bound one, or this host's for a wildcard. */
static void advertised_addr(gw_t *gw, const char *bind, int port)
{
    if (strcmp(bind, "0.0.0.0") != 0 && strcmp(bind, "::") != 0) {
        snprintf(gw->addr, sizeof(gw->addr), strchr(bind, ':') ? "[%s]:%d" : "%s:%d", bind, port);
        return;
    }
    if (gw->cfg->broker_ip1[0] != '\0') {
        snprintf(gw->addr, sizeof(gw->addr), strchr(gw->cfg->broker_ip1, ':') ? "[%s]:%d" : "%s:%d",
                 gw->cfg->broker_ip1, port);
        return;
    }
    shmq_host_t h;
    shmq_local_host(&h, port);
    char ip[64];
    inet_ntop(AF_INET, h.addr, ip, sizeof(ip));
    snprintf(gw->addr, sizeof(gw->addr), "%s:%d", ip, port);
}

static int gw_init(shmq_worker_t *w, void **state)
{
    gw_t *gw = calloc(1, sizeof(*gw));
    if (gw == NULL) {
        return SHMQ_EXIT_ERROR;
    }
    gw->w = w;
    gw->cfg = w->cfg;
    gw->clients = calloc(GW_CLIENTS_MAX, sizeof(*gw->clients));
    gw->locks = calloc(GW_LOCKS_MAX, sizeof(*gw->locks));
    gw->res = malloc(sizeof(*gw->res));
    if (gw->clients == NULL || gw->locks == NULL || gw->res == NULL) {
        gw_free(gw);
        return SHMQ_EXIT_ERROR;
    }
    if (uv_loop_init(&gw->loop) != 0) {
        gw_free(gw);
        return SHMQ_EXIT_ERROR;
    }
    gw->loop_open = true;
    gw_counts_load(gw);
    gw_counts_publish(gw);
    uv_timer_init(&gw->loop, &gw->idle_timer);
    uv_timer_init(&gw->loop, &gw->tick);
    uv_timer_init(&gw->loop, &gw->poll);
    gw->tick.data = gw;
    gw->poll.data = gw;
    uv_timer_start(&gw->tick, on_tick, GW_TICK_MS, GW_TICK_MS);
    uv_async_init(&gw->loop, &gw->wake, on_wake);
    gw->wake.data = gw;
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    if (pthread_create(&gw->waiter, NULL, waiter_main, gw) != 0) {
        gw_free(gw);
        return SHMQ_EXIT_ERROR;
    }
    gw->waiter_started = true;
    int rc = shmq_consumer_open(gw->cfg->store_path_root_dir, NULL, &gw->reader);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot read the store: %s", shmq_error_detail());
        gw_free(gw);
        return SHMQ_EXIT_ERROR;
    }
    const char *bind =
        gw->cfg->gateway_bind_address[0] ? gw->cfg->gateway_bind_address : "127.0.0.1";
    char where[96];
    snprintf(where, sizeof(where), strchr(bind, ':') ? "[%s]:%d" : "%s:%d", bind,
             gw->cfg->listen_port);
    advertised_addr(gw, bind, gw->cfg->listen_port);
    shmq_net_listen_cfg_t lc = {
        .on_accept = on_accept,
        .arg = gw,
        .conn = {.on_read = on_read_any,
                 .on_drain = on_drain_any,
                 .on_close = on_close_any,
                 .high_water = GW_OUT_HIGH_WATER,
                 .low_water = GW_OUT_PAUSE / 2,
                 .idle_ms = GW_IDLE_MS},
    };
    rc = shmq_net_listen(&gw->loop, where, &lc, &gw->lis);
    if (rc < 0) {
        /* most likely the port is taken: the store goes on without the gateway, which the
         * master starts again (with its backoff, up to 5 s) until the port is free */
        shmq_log(SHMQ_LOG_ERROR,
                 "cannot listen for RocketMQ clients (listenPort): %s; trying again shortly",
                 shmq_error_detail());
        gw_free(gw);
        return SHMQ_EXIT_ERROR;
    }
    shmq_log(SHMQ_LOG_INFO,
             "serving RocketMQ clients on %s (name server and broker %s; no ACL: trusts its "
             "network)",
             where, gw->addr);
    *state = gw;
    return 0;
}

static int gw_finish(shmq_worker_t *w, void *arg)
{
    (void)w;
    gw_t *gw = arg;
    log_counts(gw);
    gw_free(gw);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = gw_init,
        .work = gw_work,
        .idle = gw_idle,
        .finish = gw_finish,
        .done = gw_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_GATEWAY, &ops);
}
