/*
 * shmq-ha-sender: the master's side of replication.  Listens on
 * haListenPort, and streams the CommitLog to every slave that connects, in
 * RocketMQ's classic HA protocol (format/ha_frame.h), so that a RocketMQ
 * slave could follow an shmq master too.
 *
 * Started by shmqd on a master whose replication link is configured, as
 * `shmq-ha-sender --store DIR` (worker skeleton, worker.h): haSecretFile
 * (TLS 1.3 with the file's pre-shared key, net/net.h: only a slave that
 * holds the same secret is served, and every byte is authenticated and
 * encrypted) or haPlainLink=true (the plain protocol, without
 * authentication, that a RocketMQ slave speaks).  A failed handshake is
 * logged and counted (`refused`), as is a slave closed for a bad report.
 *
 * Owns: `replicated` (the block's position: the offset the slowest slave in
 * sync has confirmed; it never moves back) and the slave table of the
 * control block (shmq_ctl_ha_t).  In controller mode a SYNC_MASTER with
 * allAckInSyncStateSet moves `replicated` by the sync-state set the
 * ctrl-agent published instead: the lowest confirmed by its members, each
 * known by the brokerId its slave gave in the hello (set_low).
 *
 * Per slave:
 *   - a slave in controller mode first gives its brokerId (the hello, 16
 *     bytes; format/ha_frame.h), or later, once it knows it;
 *   - its first report (8 bytes: where its log ends) fixes where sending
 *     starts: 0 is a slave that starts empty and gets this master's last
 *     segment first; a report beyond our end (it holds bytes we never
 *     wrote) or below our first offset (cleaned here) closes the
 *     connection with a log line;
 *   - then frames of at most haTransferBatchSize bytes of the log, each
 *     within one segment, as far as `wrote` (the writer's published end:
 *     records below it are complete); a heartbeat (an empty frame) when
 *     nothing was sent for haSendHeartbeatInterval;
 *   - each later report is what the slave holds: it may not exceed what was
 *     sent, nor move back; a slave is in sync while it is within
 *     haMaxGapNotInSync of `wrote`;
 *   - back pressure: at most SENDER_HIGH_WATER bytes queued per slave,
 *     sending resumes when the queue drains; a slave silent for
 *     haHousekeepingInterval is closed (it reconnects).
 *
 * Waiting for new records: one thread sleeps on `wrote` (futex) only while
 * some slave is caught up and wakes the event loop (libuv) when it moves,
 * so an idle master with idle slaves sleeps.
 *
 * Requests: a connection whose first 8 bytes are the request magic is no
 * slave but one question (format/ha_frame.h): it is answered once (status,
 * length, body) and left for the client to close; the metadata answer is
 * ha_sender_meta.c's.  An unknown code gets SHMQ_E_ARG and a text.
 *
 * Orderly stop: it keeps sending until the store is FINISHING (the rings
 * drained: nothing more will be written), then exits 0; slaves reconnect
 * to the next run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/clock.h"
#include "format/commitlog.h"
#include "format/ha_frame.h"
#include "net/net.h"
#include "shm/ctl.h"
#include "shm/ctl_clean.h"
#include "shmq/errors.h"
#include "store/clean.h"
#include "ha_sender.h"
#include "worker.h"
#include "worker_uv.h"

#define SENDER_HIGH_WATER (4 << 20) /* bytes queued to one slave before sending pauses */
#define SENDER_TICK_MS    500       /* heartbeats, status, removed segments */
#define SENDER_WAIT_MS    1000      /* the waiter's longest sleep on `wrote` */
#define SENDER_PUMP_BYTES (1 << 20) /* bytes sent to one slave before the loop turns */

typedef struct sender sender_t;

/* One connected slave. */
typedef struct slave {
    sender_t *hs;
    shmq_net_conn_t *c;
    shmq_ctl_slave_t *row; /* its entry in the control block */
    char addr[SHMQ_CTL_ADDR_MAX];
    bool started; /* its first report arrived */
    bool closed;  /* closed by us: its on_close follows */
    bool blocked; /* its queue is full: wait for on_drain */
    bool request; /* a request (its first bytes were the request magic), not a slave */
    bool answered;
    uint8_t req[SHMQ_HA_REQ_SIZE];
    size_t req_len;
    uint8_t part[SHMQ_HA_HELLO_SIZE];
    size_t part_len;
    size_t want;       /* bytes of the unit being read: a report, or a hello once its magic came */
    int64_t broker_id; /* the controller brokerId its hello gave (0: none) */
    int64_t next;      /* the next log byte to send */
    int64_t acked;     /* its last report */
    int64_t last_send_ms;
} slave_t;

struct sender {
    shmq_worker_t *w;
    shmq_ctl_block_t *blk;
    const shmq_config_t *cfg;
    shmq_commitlog_t cl; /* read-only */
    bool cl_open;
    uv_loop_t loop;
    bool loop_open;
    shmq_net_listener_t *lis;
    shmq_net_tls_t *tls; /* haSecretFile's, or NULL: plain */
    uv_async_t wake;     /* the waiter: `wrote` moved */
    uv_timer_t tick;
    uv_timer_t idle_timer;
    slave_t *slaves[SHMQ_CTL_MAX_SLAVES];
    uint64_t clean_seen;
    /* the waiter thread */
    pthread_t waiter;
    bool waiter_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want; /* some slave is caught up: wait for `wrote` to pass want_pos */
    int64_t want_pos;
    bool quit;
};

/* ---- the waiter --------------------------------------------------------------------------- */

static void *waiter_main(void *arg)
{
    sender_t *hs = arg;
    for (;;) {
        pthread_mutex_lock(&hs->mu);
        while (!hs->want && !hs->quit) {
            pthread_cond_wait(&hs->cv, &hs->mu);
        }
        bool quit = hs->quit;
        int64_t after = hs->want_pos;
        hs->want = false;
        pthread_mutex_unlock(&hs->mu);
        if (quit) {
            return NULL;
        }
        while (!__atomic_load_n(&hs->quit, __ATOMIC_RELAXED) &&
               shmq_ctl_wait_pos(&hs->blk->wrote, after + 1, SENDER_WAIT_MS) != 0) {
        }
        uv_async_send(&hs->wake);
    }
}

/* Ask the waiter to wake the loop once `wrote` passes pos. */
static void want_after(sender_t *hs, int64_t pos)
{
    pthread_mutex_lock(&hs->mu);
    if (!hs->want || pos < hs->want_pos) {
        hs->want_pos = pos;
    }
    hs->want = true;
    pthread_cond_signal(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
}

/* ---- status ------------------------------------------------------------------------------- */

/*
 * `replicated` by the sync-state set the ctrl-agent published: the lowest acked position among
 * its members other than this master, each of which must be a connected slave that gave its
 * brokerId; -1 (`replicated` stays) while no set is published or a member is not connected.
 * The master alone in the set acknowledges what it wrote (RocketMQ's minInSyncReplicas=1: the
 * group can elect no other store, so no election loses it).  *gen: the set's generation.
 */
static int64_t set_low(sender_t *hs, int64_t wrote, uint64_t *gen)
{
    shmq_ctl_sss_t set;
    if (shmq_ctl_sss_copy(&hs->blk->controller, &set) != 0) {
        return -1;
    }
    *gen = set.gen;
    int64_t low = wrote;
    for (uint32_t k = 0; k < set.count; k++) {
        if (set.ids[k] == set.master) {
            continue;
        }
        const slave_t *m = NULL;
        for (int i = 0; i < SHMQ_CTL_MAX_SLAVES && m == NULL; i++) {
            const slave_t *s = hs->slaves[i];
            if (s != NULL && s->started && !s->closed && s->broker_id == set.ids[k]) {
                m = s;
            }
        }
        if (m == NULL) {
            return -1; /* a member this master does not reach: acknowledgements wait */
        }
        if (m->acked < low) {
            low = m->acked;
        }
    }
    if (set.count == 1) {
        /* Alone: woken when `wrote` moves, so that acknowledgements follow it. */
        want_after(hs, wrote);
    }
    return low;
}

/* The slave's row, and `replicated` from every slave in sync (or the sync-state set's). */
static void publish(sender_t *hs)
{
    int64_t wrote = shmq_ctl_load(&hs->blk->wrote), now = shmq_now_ms();
    int64_t low = -1;
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        slave_t *s = hs->slaves[i];
        if (s == NULL || !s->started) {
            continue;
        }
        bool in_sync = wrote - s->acked <= hs->cfg->ha_max_gap_not_in_sync;
        atomic_store_explicit(&s->row->acked, s->acked, memory_order_relaxed);
        atomic_store_explicit(&s->row->sent, s->next, memory_order_relaxed);
        atomic_store_explicit(&s->row->in_sync, in_sync, memory_order_relaxed);
        if (s->acked >= wrote) {
            atomic_store_explicit(&s->row->caught_up_ms, now, memory_order_relaxed);
        }
        if (in_sync && (low < 0 || s->acked < low)) {
            low = s->acked;
        }
    }
    uint64_t gen = 0;
    if (shmq_config_acks_by_sync_state_set(hs->cfg)) {
        low = set_low(hs, wrote, &gen);
    }
    if (low > shmq_ctl_load(&hs->blk->replicated)) {
        shmq_ctl_publish(&hs->blk->replicated, low);
        /* SYNC_MASTER producers sleep on the wake-up object (the block is read-only to them). */
        shmq_ctl_wake(&hs->w->ctl.wake->replicated_wake);
    }
    if (gen != 0) {
        /* Release: `replicated` by this set is published before the ctrl-agent, seeing it,
         * asks the controller to add a member (ctrl_agent.c, publish_added). */
        atomic_store_explicit(&hs->blk->controller.sss_applied, gen, memory_order_release);
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

/* Close a slave's connection for what it did (the reason is logged by on_close). */
static void close_slave(slave_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void close_slave(slave_t *s, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    s->closed = true;
    atomic_fetch_add_explicit(&s->hs->blk->ha.refused, 1, memory_order_relaxed);
    shmq_net_conn_close(s->c, "%s", why);
}

static int send_frame(slave_t *s, int64_t offset, const uint8_t *body, int32_t size)
{
    uint8_t hdr[SHMQ_HA_HEADER_SIZE];
    shmq_ha_header_t h = {.offset = offset, .size = size};
    shmq_ha_header_encode(&h, hdr);
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(hdr)},
                           {.iov_base = (void *)(uintptr_t)body, .iov_len = (size_t)size}};
    int rc = shmq_net_conn_writev(s->c, iov, size > 0 ? 2 : 1);
    if (rc == 0) {
        s->last_send_ms = shmq_mono_ms();
    }
    return rc;
}

/* The segment holding off, mapping segments the writer created since the last look. */
static shmq_mapped_file_t *segment_at(sender_t *hs, int64_t off)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&hs->cl.q, off);
    if (mf == NULL && off >= shmq_mfq_end_offset(&hs->cl.q)) {
        int rc = shmq_mfq_refresh(&hs->cl.q);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_WARN, "mapping new CommitLog segments: %s", shmq_error_detail());
        }
        mf = shmq_mfq_find(&hs->cl.q, off);
    }
    return mf;
}

/*
 * Send what the slave lacks, up to `wrote`, until its queue is full or
 * SENDER_PUMP_BYTES went out: then the loop reads reports and serves the
 * other slaves before this one gets more (the wake-up is sent to
 * ourselves), so a writer as fast as the link cannot keep the loop here.
 */
static void pump(slave_t *s)
{
    sender_t *hs = s->hs;
    int64_t batch = hs->cfg->ha_transfer_batch_size, budget = SENDER_PUMP_BYTES;
    while (s->started && !s->blocked && !s->closed) {
        if (budget <= 0) {
            uv_async_send(&hs->wake);
            return;
        }
        int64_t wrote = shmq_ctl_load(&hs->blk->wrote);
        if (s->next >= wrote) {
            want_after(hs, s->next);
            return;
        }
        shmq_mapped_file_t *mf = segment_at(hs, s->next);
        if (mf == NULL) {
            close_slave(s, "offset %lld is no longer stored here (cleaned)", (long long)s->next);
            return;
        }
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        int64_t end = wrote < seg_end ? wrote : seg_end;
        int64_t n = end - s->next < batch ? end - s->next : batch;
        int rc = send_frame(s, s->next, mf->base + (s->next - mf->start_offset), (int32_t)n);
        if (rc == -EAGAIN) {
            s->blocked = true;
            return;
        }
        if (rc < 0) {
            return; /* closing: on_close follows */
        }
        s->next += n;
        budget -= n;
    }
}

static void pump_all(sender_t *hs)
{
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        if (hs->slaves[i] != NULL) {
            pump(hs->slaves[i]);
        }
    }
    publish(hs);
}

/* ---- a slave's reports -------------------------------------------------------------------- */

static void on_report(slave_t *s, int64_t r)
{
    sender_t *hs = s->hs;
    if (!s->started) {
        int64_t start;
        int rc = shmq_ha_start_offset(r, shmq_commitlog_min_offset(&hs->cl),
                                      shmq_ctl_load(&hs->blk->wrote),
                                      (int64_t)hs->cfg->mapped_file_size_commit_log, &start);
        if (rc < 0) {
            close_slave(s, "%s", shmq_error_detail());
            return;
        }
        s->started = true;
        s->next = start;
        s->acked = r;
        shmq_log(SHMQ_LOG_INFO, "slave %s: its log ends at %lld, sending from %lld", s->addr,
                 (long long)r, (long long)start);
        return;
    }
    if (r > s->next) {
        close_slave(s, "reports %lld, beyond the %lld sent to it", (long long)r,
                    (long long)s->next);
        return;
    }
    if (r < s->acked) {
        close_slave(s, "its report went back from %lld to %lld", (long long)s->acked, (long long)r);
        return;
    }
    s->acked = r;
}

/*
 * A slave's hello: its controller brokerId, once per connection.  Another connection that gave
 * the same id is an older link of the same store (restarted, its old socket not yet closed):
 * it is closed, so that one row speaks for each member.
 */
static void on_hello(slave_t *s, int64_t id)
{
    sender_t *hs = s->hs;
    if (s->broker_id != 0) {
        if (s->broker_id != id) {
            close_slave(s, "gave brokerId %lld, then %lld", (long long)s->broker_id, (long long)id);
        }
        return;
    }
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        slave_t *o = hs->slaves[i];
        if (o != NULL && o != s && !o->closed && o->broker_id == id) {
            o->closed = true;
            shmq_net_conn_close(o->c, "brokerId %lld connected again from %s", (long long)id,
                                s->addr);
        }
    }
    s->broker_id = id;
    atomic_store_explicit(&s->row->broker_id, id, memory_order_relaxed);
    shmq_log(SHMQ_LOG_INFO, "slave %s is brokerId %lld", s->addr, (long long)id);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Answer a request by its code: status, length, body (on an error, a text saying why). */
static void answer_request(slave_t *s, int32_t code)
{
    uint8_t *body = NULL;
    size_t len = 0;
    shmq_error_clear();
    int status;
    switch (code) {
    case SHMQ_HA_REQ_META:
        status = ha_sender_meta_body(&s->hs->w->ctl, &body, &len);
        break;
    case SHMQ_HA_REQ_EPOCH:
        status = ha_sender_epoch_answer(s->hs->w, &body, &len);
        break;
    default:
        status = shmq_error_set(SHMQ_E_ARG, "unknown request code %d", code);
        break;
    }
    if (status < 0) {
        const char *d = shmq_error_detail();
        body = (uint8_t *)strdup(d[0] ? d : shmq_strerror(status));
        len = body != NULL ? strlen((char *)body) : 0;
        shmq_log(SHMQ_LOG_WARN, "request %d from %s: %s", code, s->addr,
                 body != NULL ? (char *)body : "refused");
    } else {
        shmq_log(SHMQ_LOG_DEBUG, "request %d from %s: %zu bytes", code, s->addr, len);
    }
    uint8_t head[SHMQ_HA_ANSWER_HEAD_SIZE];
    shmq_ha_answer_encode(status < 0 ? status : 0, (uint32_t)len, head);
    struct iovec iov[2] = {{.iov_base = head, .iov_len = sizeof(head)},
                           {.iov_base = body, .iov_len = len}};
    int rc = shmq_net_conn_writev(s->c, iov, len > 0 ? 2 : 1);
    free(body);
    s->answered = true;
    if (rc < 0 && rc != -EPIPE) {
        close_slave(s, "request %d: the answer was not sent: %s", code, shmq_strerror(rc));
    }
}

/* Bytes of a request connection: the rest of the request, then nothing more is read. */
static void request_read(slave_t *s, const uint8_t *p, size_t len)
{
    if (s->answered) {
        return; /* one request per connection: the client closes it */
    }
    size_t take = SHMQ_HA_REQ_SIZE - s->req_len < len ? SHMQ_HA_REQ_SIZE - s->req_len : len;
    memcpy(s->req + s->req_len, p, take);
    s->req_len += take;
    if (s->req_len < SHMQ_HA_REQ_SIZE) {
        return;
    }
    int32_t code;
    if (shmq_ha_request_decode(s->req, &code) < 0) {
        close_slave(s, "%s", shmq_error_detail());
        return;
    }
    answer_request(s, code);
}

/* The first 8 bytes were the request magic: no slave, its row is free again. */
static void become_request(slave_t *s, const uint8_t *p, size_t len)
{
    s->request = true;
    memcpy(s->req, s->part, SHMQ_HA_REPORT_SIZE);
    s->req_len = SHMQ_HA_REPORT_SIZE;
    s->part_len = 0;
    /* Release: the row's fields are stale once FREE. */
    atomic_store_explicit(&s->row->state, SHMQ_SLAVE_FREE, memory_order_release);
    request_read(s, p, len);
}

static void on_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    slave_t *s = shmq_net_conn_arg(c);
    const uint8_t *p = (const uint8_t *)data;
    if (s->request) {
        request_read(s, p, len);
        return;
    }
    while (len > 0 && !s->closed) {
        size_t take = s->want - s->part_len;
        if (take > len) {
            take = len;
        }
        memcpy(s->part + s->part_len, p, take);
        s->part_len += take;
        p += take;
        len -= take;
        if (s->part_len < s->want) {
            break;
        }
        if (!s->started && shmq_ha_is_request(s->part)) {
            become_request(s, p, len);
            return;
        }
        if (s->want == SHMQ_HA_REPORT_SIZE && shmq_ha_is_hello(s->part)) {
            s->want = SHMQ_HA_HELLO_SIZE; /* its brokerId follows */
            continue;
        }
        s->part_len = 0;
        if (s->want == SHMQ_HA_HELLO_SIZE) {
            s->want = SHMQ_HA_REPORT_SIZE;
            int64_t id;
            if (shmq_ha_hello_decode(s->part, &id) < 0) {
                close_slave(s, "%s", shmq_error_detail());
                return;
            }
            on_hello(s, id);
            continue;
        }
        int64_t r;
        if (shmq_ha_report_scan(s->part, SHMQ_HA_REPORT_SIZE, &r) < 0) {
            close_slave(s, "%s", shmq_error_detail());
            return;
        }
        on_report(s, r);
    }
    if (!s->closed) {
        pump(s);
    }
    publish(s->hs);
}

static void on_drain(shmq_net_conn_t *c)
{
    slave_t *s = shmq_net_conn_arg(c);
    s->blocked = false;
    if (!s->request) {
        pump(s);
    }
}

static void on_close(shmq_net_conn_t *c, const char *reason)
{
    slave_t *s = shmq_net_conn_arg(c);
    if (s == NULL) {
        return; /* refused at accept */
    }
    if (s->request) {
        shmq_log(SHMQ_LOG_DEBUG, "request from %s: closed: %s", s->addr, reason);
    } else {
        shmq_log(SHMQ_LOG_WARN, "slave %s: closed: %s", s->addr, reason);
    }
    sender_t *hs = s->hs;
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        if (hs->slaves[i] == s) {
            hs->slaves[i] = NULL;
        }
    }
    /* Release: the row's fields are stale once FREE. */
    atomic_store_explicit(&s->row->state, SHMQ_SLAVE_FREE, memory_order_release);
    free(s);
    publish(hs);
}

static void on_accept(shmq_net_listener_t *l, shmq_net_conn_t *c, int err)
{
    sender_t *hs = shmq_net_listener_arg(l);
    if (c == NULL) {
        shmq_log(SHMQ_LOG_WARN, "accept failed: %s", shmq_strerror(err));
        return;
    }
    shmq_net_conn_set_arg(c, NULL);
    int i = 0;
    while (i < SHMQ_CTL_MAX_SLAVES && hs->slaves[i] != NULL) {
        i++;
    }
    slave_t *s = i < SHMQ_CTL_MAX_SLAVES ? calloc(1, sizeof(*s)) : NULL;
    if (s == NULL) {
        shmq_log(SHMQ_LOG_WARN, "slave %s refused: %s", shmq_net_conn_peer(c),
                 i < SHMQ_CTL_MAX_SLAVES ? "out of memory" : "already 8 slaves");
        shmq_net_conn_close(c, "refused");
        return;
    }
    s->hs = hs;
    s->c = c;
    s->row = &hs->blk->ha.slaves[i];
    s->last_send_ms = shmq_mono_ms();
    s->want = SHMQ_HA_REPORT_SIZE;
    snprintf(s->addr, sizeof(s->addr), "%s", shmq_net_conn_peer(c));
    memcpy(s->row->addr, s->addr, sizeof(s->addr));
    atomic_store_explicit(&s->row->connected_ms, shmq_now_ms(), memory_order_relaxed);
    atomic_store_explicit(&s->row->acked, 0, memory_order_relaxed);
    atomic_store_explicit(&s->row->sent, 0, memory_order_relaxed);
    atomic_store_explicit(&s->row->in_sync, 0, memory_order_relaxed);
    atomic_store_explicit(&s->row->caught_up_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&s->row->broker_id, 0, memory_order_relaxed);
    atomic_store_explicit(&s->row->state, SHMQ_SLAVE_CONNECTED, memory_order_release);
    hs->slaves[i] = s;
    shmq_net_conn_set_arg(c, s);
    /* A slave says so with its first report (on_report); a request with its magic. */
    shmq_log(SHMQ_LOG_DEBUG, "%s connected (%s)", s->addr, shmq_net_conn_security(c));
}

/* A connection that failed the TLS handshake: a wrong secret, a plain slave, garbage. */
static void on_refused(shmq_net_listener_t *l, const char *peer, const char *reason)
{
    sender_t *hs = shmq_net_listener_arg(l);
    atomic_fetch_add_explicit(&hs->blk->ha.refused, 1, memory_order_relaxed);
    shmq_log(SHMQ_LOG_WARN, "connection from %s refused: %s (is haSecretFile the same there?)",
             peer, reason);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void on_wake(uv_async_t *a)
{
    pump_all(a->data);
}

static void on_tick(uv_timer_t *t)
{
    sender_t *hs = t->data;
    int64_t now = shmq_mono_ms();
    if (shmq_clean_changed(&hs->w->ctl, &hs->clean_seen)) {
        shmq_clean_drop_removed(&hs->cl.q);
    }
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        slave_t *s = hs->slaves[i];
        if (s != NULL && s->started && !s->blocked &&
            now - s->last_send_ms >= hs->cfg->ha_send_heartbeat_interval) {
            send_frame(s, s->next, NULL, 0);
        }
    }
    pump_all(hs);
}

static int64_t sender_work(shmq_worker_t *w, void *arg)
{
    (void)w;
    sender_t *hs = arg;
    uv_run(&hs->loop, UV_RUN_NOWAIT);
    return 0;
}

static void sender_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    (void)w;
    sender_t *hs = arg;
    shmq_worker_uv_idle(&hs->loop, &hs->idle_timer, timeout_ms);
}

static bool sender_done(shmq_worker_t *w, void *arg)
{
    (void)arg;
    /* Acquire: pairs with the master's release store of the state. */
    uint32_t st = atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
    return st == SHMQ_STATE_FINISHING || st == SHMQ_STATE_STOPPED;
}

/* ---- init / finish ------------------------------------------------------------------------ */

static void sender_free(sender_t *hs)
{
    if (hs->waiter_started) {
        pthread_mutex_lock(&hs->mu);
        __atomic_store_n(&hs->quit, true, __ATOMIC_RELAXED);
        pthread_cond_signal(&hs->cv);
        pthread_mutex_unlock(&hs->mu);
        shmq_ctl_pos_wake_all(&hs->blk->wrote);
        pthread_join(hs->waiter, NULL);
    }
    if (hs->loop_open) {
        for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
            if (hs->slaves[i] != NULL) {
                shmq_net_conn_close(hs->slaves[i]->c, "the ha-sender stops");
            }
        }
        if (hs->lis != NULL) {
            shmq_net_listener_close(hs->lis);
        }
        uv_run(&hs->loop, UV_RUN_NOWAIT); /* the on_close callbacks */
        shmq_worker_uv_close(&hs->loop);
    }
    shmq_net_tls_free(hs->tls);
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        free(hs->slaves[i]);
        atomic_store_explicit(&hs->blk->ha.slaves[i].state, SHMQ_SLAVE_FREE, memory_order_release);
    }
    if (hs->cl_open) {
        shmq_commitlog_close(&hs->cl);
    }
    pthread_mutex_destroy(&hs->mu);
    pthread_cond_destroy(&hs->cv);
    free(hs);
}

static int sender_init(shmq_worker_t *w, void **state)
{
    sender_t *hs = calloc(1, sizeof(*hs));
    if (hs == NULL) {
        return SHMQ_EXIT_ERROR;
    }
    hs->w = w;
    hs->blk = w->ctl.blk;
    hs->cfg = w->cfg;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->cv, NULL);
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        atomic_store_explicit(&hs->blk->ha.slaves[i].state, SHMQ_SLAVE_FREE, memory_order_release);
    }
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(hs->cfg, dir, sizeof(dir));
    int rc = shmq_commitlog_open(&hs->cl, dir, (size_t)hs->cfg->mapped_file_size_commit_log,
                                 SHMQ_MF_READONLY);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the CommitLog in %s: %s", dir, shmq_error_detail());
        sender_free(hs);
        return SHMQ_EXIT_ERROR;
    }
    hs->cl_open = true;
    if (uv_loop_init(&hs->loop) != 0) {
        sender_free(hs);
        return SHMQ_EXIT_ERROR;
    }
    hs->loop_open = true;
    uv_async_init(&hs->loop, &hs->wake, on_wake);
    hs->wake.data = hs;
    uv_timer_init(&hs->loop, &hs->tick);
    hs->tick.data = hs;
    uv_timer_start(&hs->tick, on_tick, SENDER_TICK_MS, SENDER_TICK_MS);
    uv_timer_init(&hs->loop, &hs->idle_timer);
    char where[32];
    snprintf(where, sizeof(where), "0.0.0.0:%d", hs->cfg->ha_listen_port);
    rc = shmq_worker_ha_tls(hs->cfg, true, &hs->tls);
    if (rc < 0) {
        sender_free(hs);
        return SHMQ_EXIT_CONFIG;
    }
    shmq_net_listen_cfg_t lc = {
        .on_accept = on_accept,
        .on_refused = on_refused,
        .arg = hs,
        .conn = {.on_read = on_read,
                 .on_drain = on_drain,
                 .on_close = on_close,
                 .high_water = SENDER_HIGH_WATER,
                 .idle_ms = (uint32_t)hs->cfg->ha_housekeeping_interval,
                 .tls = hs->tls},
    };
    rc = shmq_net_listen(&hs->loop, where, &lc, &hs->lis);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot listen for slaves (haListenPort): %s",
                 shmq_error_detail());
        sender_free(hs);
        return SHMQ_EXIT_ERROR;
    }
    if (pthread_create(&hs->waiter, NULL, waiter_main, hs) != 0) {
        sender_free(hs);
        return SHMQ_EXIT_ERROR;
    }
    hs->waiter_started = true;
    shmq_log(SHMQ_LOG_INFO, "listening for slaves on %s (%s)", where, shmq_worker_ha_link(hs->cfg));
    *state = hs;
    return 0;
}

static int sender_finish(shmq_worker_t *w, void *arg)
{
    (void)w;
    sender_free(arg);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = sender_init,
        .work = sender_work,
        .idle = sender_idle,
        .finish = sender_finish,
        .done = sender_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_HA_SENDER, &ops);
}
