/*
 * shmq-ha-receiver: a slave's side of replication, in the writer's place.
 * Connects to haMasterAddress and appends exactly the master's CommitLog
 * bytes at exactly the master's offsets, in RocketMQ's classic HA protocol
 * (format/ha_frame.h), so that an shmq slave could follow a RocketMQ master
 * too.
 *
 * Started by shmqd on a store with brokerRole=SLAVE as
 * `shmq-ha-receiver --store DIR` (worker skeleton, worker.h).  The link is
 * TLS 1.3 with haSecretFile's pre-shared key (net/net.h: the master must
 * hold the same secret, and a byte altered on the way closes the
 * connection), or with haPlainLink=true the plain protocol of RocketMQ.
 *
 * Owns: `wrote` and the queues' next queue offsets (as the writer does on a
 * master: a writer started by a promotion continues from them) and the master fields of
 * the control block's replication table (shmq_ctl_ha_t); it adds topics (under
 * the topic lock, saving topics.json) as the writer's auto-creation does.
 *
 * The link: in controller mode it first gives the master its brokerId (the
 * hello, once the ctrl-agent knows it), then it reports where its log ends (8 bytes) when it
 * connects, after each batch of bytes it took, and every haSendHeartbeatInterval.  Each frame's
 * offset must be where its log ends (on an empty log: a segment's first byte, the master's last
 * segment for a slave that starts empty). The bytes go into the CommitLog as they arrive
 * (shmq_commitlog_put_raw): only records that are complete and check out as recovery checks them
 * (sizes, magic, CRCs, their own offset, blanks closing segments) move
 * `wrote`, so nothing unchecked reaches the flusher, the dispatcher or a
 * consumer.  A frame or record that does not check out closes the
 * connection with a log line (counted in `refused`), the bytes after the
 * last good record are zeroed, and it reconnects: nothing else changes.
 * The connection is retried with backoff (100 ms doubling to 5 s) and
 * closed when the master is silent for haHousekeepingInterval.
 *
 * After each batch: the topics of its records are added to the topic table
 * when this slave lacks them (consumers look topics up there), `wrote` is
 * published, then the flusher (SYNC_FLUSH) or the dispatcher (ASYNC_FLUSH)
 * is woken, as the writer does.
 *
 * The master's metadata (topics, subscription groups, delay and consumer
 * offsets) is fetched and applied by ha_receiver_meta.c on the same loop.
 *
 * Killed at any point: what it published is complete records; bytes after
 * `wrote` are zeroed at the next start (the master's recovery also cuts a
 * partial tail), and the master sends again from where the log ends.
 *
 * Epochs: when shmqd could not ask the master for its epoch table at start
 * (the control block's role.epoch_checked is 0), no connection is made
 * before the check of ha_receiver_epoch.c passes, tried at each tick.
 *
 * Orderly stop: in state DRAINING it closes the link and exits 0; what it
 * published is flushed and dispatched by the others.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/clock.h"
#include "base/hostport.h"
#include "format/commitlog.h"
#include "format/ha_frame.h"
#include "format/names.h"
#include "net/net.h"
#include "shm/ctl.h"
#include "shm/ctl_clean.h"
#include "shmq/errors.h"
#include "store/clean.h"
#include "ha_receiver.h"
#include "worker.h"
#include "worker_uv.h"

#define RECEIVER_TICK_MS       500 /* heartbeat check, removed segments */
#define RECEIVER_TOPIC_LOCK_MS 2000
#define RECEIVER_QUEUES_MAX    65536 /* queue ids 0..65535, as producers may give */

typedef struct receiver {
    shmq_worker_t *w;
    shmq_ctl_block_t *blk;
    const shmq_config_t *cfg;
    shmq_commitlog_t cl;
    bool cl_open;
    uv_loop_t loop;
    bool loop_open;
    uv_timer_t tick;
    uv_timer_t idle_timer;
    shmq_net_connector_t *k;
    shmq_net_tls_t *tls; /* haSecretFile's, or NULL: plain */
    shmq_net_conn_t *c;  /* the connection while it is up */
    char master[SHMQ_CTL_ADDR_MAX];
    /* the frame being read */
    uint8_t hdr[SHMQ_HA_HEADER_SIZE];
    size_t hdr_len;
    int64_t body_left; /* bytes of the current frame's body still to come */
    int64_t body_at;   /* the log offset of its next byte */
    bool closed;       /* closed by us: its on_close follows */
    int64_t reported;  /* the last report sent */
    int64_t hello_id;  /* the brokerId given on this connection (0: none yet) */
    int64_t last_report_ms;
    uint64_t clean_seen;
    ha_meta_sync_t *meta;         /* the master's metadata (ha_receiver_meta.c) */
    char addr[SHMQ_CTL_ADDR_MAX]; /* the master's address literal */
    bool epoch_pending;           /* not following before the epoch check (ha_receiver_epoch.c) */
    bool epoch_logged;
    bool epoch_refused; /* the logs share no epoch: exit 2 */
    bool epoch_cut;     /* the log must be cut: shmqd starts the store again */
} receiver_t;

/* ---- reports ------------------------------------------------------------------------------ */

static void report(receiver_t *rc)
{
    if (rc->c == NULL || rc->closed) {
        return;
    }
    uint8_t buf[SHMQ_HA_REPORT_SIZE];
    int64_t end = rc->cl.raw_end > rc->cl.wrote_pos ? rc->cl.raw_end : rc->cl.wrote_pos;
    shmq_ha_report_encode(end, buf);
    if (shmq_net_conn_write(rc->c, buf, sizeof(buf)) == 0) {
        rc->reported = end;
        rc->last_report_ms = shmq_mono_ms();
    }
}

/*
 * Controller mode: give the master this store's controller brokerId (SHMQ_HA_HELLO), so that
 * it knows which member of the sync-state set this connection is.  The ctrl-agent may learn
 * the id after the link is up: the tick sends it then.  Never sent outside controller mode,
 * so a master that does not know the hello is followed as before.
 */
static void hello(receiver_t *rc)
{
    if (rc->c == NULL || rc->closed || rc->hello_id != 0 || !rc->cfg->enable_controller_mode) {
        return;
    }
    /* relaxed: the ctrl-agent's single field, read alone */
    int64_t id = atomic_load_explicit(&rc->blk->controller.broker_id, memory_order_relaxed);
    if (id <= 0 || id > SHMQ_HA_BROKER_ID_MAX) {
        return;
    }
    uint8_t buf[SHMQ_HA_HELLO_SIZE];
    shmq_ha_hello_encode(id, buf);
    if (shmq_net_conn_write(rc->c, buf, sizeof(buf)) == 0) {
        rc->hello_id = id;
        shmq_log(SHMQ_LOG_INFO, "gave master %s this store's brokerId %lld", rc->master,
                 (long long)id);
    }
}

/* ---- frames ------------------------------------------------------------------------------- */

static void refuse(receiver_t *rc, const char *why)
{
    atomic_fetch_add_explicit(&rc->blk->ha.refused, 1, memory_order_relaxed);
    rc->closed = true;
    shmq_net_conn_close(rc->c, "%s", why);
}

/*
 * The topic of a record taken: known to this store with at least queue_id
 * + 1 queues (the topic table is what consumers look topics up in).  A
 * topic the master has and this slave lacks is added (readable and
 * writable, the default queue count or more), and topics.json saved.
 */
static void learn_topic(receiver_t *rc, const shmq_record_t *r)
{
    shmq_ctl_topic_t t;
    int32_t need = r->queue_id + 1;
    if (shmq_ctl_topic_get(&rc->w->ctl, r->topic, r->topic_len, &t) == 0 &&
        t.read_queue_nums >= need && t.write_queue_nums >= need) {
        return;
    }
    shmq_error_clear();
    if (r->queue_id < 0 || r->queue_id >= RECEIVER_QUEUES_MAX ||
        shmq_topic_validate(r->topic, r->topic_len, SHMQ_TOPIC_MAX_ANY) < 0) {
        /* A name no topic may have, or a queue no topic has: the record stays in the log
         * (it is the master's), its topic is not added. */
        shmq_log(SHMQ_LOG_WARN,
                 "a record of the master's log names a topic of %u bytes, queue %d: %s; the "
                 "topic is not added",
                 (unsigned)r->topic_len, r->queue_id,
                 shmq_error_detail()[0] ? shmq_error_detail() : "queue id out of range");
        return;
    }
    char name[SHMQ_TOPIC_MAX_ANY + 1];
    snprintf(name, sizeof(name), "%.*s", (int)r->topic_len, r->topic);
    if (shmq_ctl_topic_lock(&rc->w->ctl, RECEIVER_TOPIC_LOCK_MS) < 0) {
        return; /* the next record of the topic tries again */
    }
    int32_t nq =
        rc->cfg->default_topic_queue_nums > need ? rc->cfg->default_topic_queue_nums : need;
    int32_t perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
    bool order = false;
    if (shmq_ctl_topic_get(&rc->w->ctl, r->topic, r->topic_len, &t) == 0) {
        nq = t.read_queue_nums > nq ? t.read_queue_nums : nq;
        perm = t.perm;
        order = t.order;
    }
    int prc = shmq_ctl_topic_put(&rc->w->ctl, name, nq, nq, perm, order);
    if (prc == 0 && shmq_ctl_topics_save(&rc->w->ctl) < 0) {
        shmq_log(SHMQ_LOG_WARN, "topic %s learned, but topics.json not saved: %s", name,
                 shmq_error_detail());
    }
    shmq_ctl_topic_unlock(&rc->w->ctl);
    if (prc < 0) {
        shmq_log(SHMQ_LOG_WARN, "topic %s of the master's log: not added: %s", name,
                 shmq_error_detail());
    } else {
        shmq_log(SHMQ_LOG_INFO, "topic %s from the master's log: %d queues", name, nq);
    }
}

/*
 * The queue of a record taken: its next queue offset (the writer's field,
 * which a slave's receiver keeps in the writer's place) is raised past the
 * record's, so that a writer started after a promotion continues each queue
 * where the master's log left it.  Prepared and rolled-back transaction
 * records have no unit and change nothing.
 */
static void follow_queue(receiver_t *rc, const shmq_record_t *r)
{
    int32_t tx = r->sysflag & SHMQ_SYSFLAG_TX_MASK;
    if ((tx != SHMQ_SYSFLAG_TX_NOT && tx != SHMQ_SYSFLAG_TX_COMMIT) || r->queue_id < 0 ||
        r->queue_id >= RECEIVER_QUEUES_MAX || r->queue_offset < 0 || r->topic_len == 0 ||
        r->topic_len > SHMQ_TOPIC_MAX_ANY) {
        return;
    }
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(&rc->w->ctl, r->topic, r->topic_len, r->queue_id);
    if (q == NULL &&
        shmq_ctl_queue_insert(&rc->w->ctl, r->topic, r->topic_len, r->queue_id, &q) < 0) {
        return; /* a full table: the dispatcher names it */
    }
    /* relaxed: no writer runs beside the receiver; a writer started later reads it after the
     * master saw the receiver exit */
    if (atomic_load_explicit(&q->next_offset, memory_order_relaxed) < r->queue_offset + 1) {
        atomic_store_explicit(&q->next_offset, r->queue_offset + 1, memory_order_relaxed);
    }
}

/* Publish what put_raw took: the topics of its records, `wrote`, then wake the next stage. */
static void publish(receiver_t *rc, int64_t before)
{
    if (rc->cl.wrote_pos == before) {
        return;
    }
    for (int64_t pos = before;;) {
        shmq_record_t r;
        if (shmq_commitlog_next(&rc->cl, &pos, rc->cl.wrote_pos, 0, &r) <= 0) {
            break;
        }
        learn_topic(rc, &r);
        follow_queue(rc, &r);
    }
    shmq_ctl_publish(&rc->blk->wrote, rc->cl.wrote_pos);
    if (rc->cfg->flush_disk_type == SHMQ_SYNC_FLUSH) {
        shmq_ctl_wake(&rc->blk->flusher_wake);
    } else {
        shmq_ctl_wake(&rc->blk->dispatcher_wake);
    }
}

/* A complete header: check it against where our log ends. */
static bool take_header(receiver_t *rc)
{
    shmq_ha_header_t h;
    int32_t max_body = rc->cfg->mapped_file_size_commit_log > INT32_MAX
                           ? INT32_MAX
                           : (int32_t)rc->cfg->mapped_file_size_commit_log;
    if (shmq_ha_header_decode(rc->hdr, max_body, &h) < 0) {
        refuse(rc, shmq_error_detail());
        return false;
    }
    bool empty = shmq_commitlog_empty(&rc->cl);
    if (h.offset != rc->cl.raw_end && !(empty && h.size == 0) &&
        !(empty && h.offset % rc->cfg->mapped_file_size_commit_log == 0)) {
        char why[200];
        snprintf(why, sizeof(why), "a frame at %lld, but this log ends at %lld",
                 (long long)h.offset, (long long)rc->cl.raw_end);
        refuse(rc, why);
        return false;
    }
    atomic_store_explicit(&rc->blk->ha.master_end, h.offset + h.size, memory_order_relaxed);
    atomic_store_explicit(&rc->blk->ha.last_frame_ms, shmq_now_ms(), memory_order_relaxed);
    atomic_fetch_add_explicit(&rc->blk->ha.frames, 1, memory_order_relaxed);
    rc->body_left = h.size;
    rc->body_at = h.offset;
    return true;
}

static void on_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    receiver_t *rc = shmq_net_conn_arg(c);
    const uint8_t *p = (const uint8_t *)data;
    int64_t before = rc->cl.wrote_pos;
    while (len > 0 && !rc->closed) {
        if (rc->body_left == 0) {
            size_t take = SHMQ_HA_HEADER_SIZE - rc->hdr_len;
            take = take < len ? take : len;
            memcpy(rc->hdr + rc->hdr_len, p, take);
            rc->hdr_len += take;
            p += take;
            len -= take;
            if (rc->hdr_len == SHMQ_HA_HEADER_SIZE) {
                rc->hdr_len = 0;
                if (!take_header(rc)) {
                    break;
                }
            }
            continue;
        }
        size_t n = (int64_t)len < rc->body_left ? len : (size_t)rc->body_left;
        int64_t w = shmq_commitlog_put_raw(&rc->cl, rc->body_at, p, n);
        if (w < 0) {
            char why[400];
            snprintf(why, sizeof(why), "%s", shmq_error_detail());
            shmq_log(SHMQ_LOG_ERROR, "from master %s: %s", rc->master, why);
            refuse(rc, why);
            break;
        }
        atomic_fetch_add_explicit(&rc->blk->ha.bytes, n, memory_order_relaxed);
        rc->body_left -= (int64_t)n;
        rc->body_at += (int64_t)n;
        p += n;
        len -= n;
    }
    publish(rc, before);
    if (rc->cl.raw_end != rc->reported) {
        report(rc);
    }
}

static void on_close(shmq_net_conn_t *c, const char *reason)
{
    receiver_t *rc = shmq_net_conn_arg(c);
    shmq_log(SHMQ_LOG_WARN, "master %s: closed: %s", rc->master, reason);
    rc->c = NULL;
    atomic_store_explicit(&rc->blk->ha.master_connected, 0, memory_order_relaxed);
}

static void on_connected(shmq_net_connector_t *k, shmq_net_conn_t *c)
{
    receiver_t *rc = shmq_net_connector_arg(k);
    rc->c = c;
    rc->closed = false;
    rc->hdr_len = 0;
    rc->body_left = 0;
    /* A frame cut by the last connection left the start of a record after wrote: the
     * report says where the bytes end, and the master sends the rest. */
    shmq_log(SHMQ_LOG_INFO, "connected to master %s (%s); this log ends at %lld", rc->master,
             shmq_net_conn_security(c), (long long)rc->cl.raw_end);
    atomic_store_explicit(&rc->blk->ha.master_connected, 1, memory_order_relaxed);
    rc->hello_id = 0;
    hello(rc);
    report(rc);
    ha_meta_sync_now(rc->meta);
}

static void on_disconnected(shmq_net_connector_t *k, const char *reason, uint32_t retry_ms)
{
    receiver_t *rc = shmq_net_connector_arg(k);
    if (strncmp(reason, "TLS", 3) == 0) {
        /* A failed handshake (a master without our secret) or a record that did not
         * authenticate (altered on the way): refused like a bad frame. */
        atomic_fetch_add_explicit(&rc->blk->ha.refused, 1, memory_order_relaxed);
    }
    shmq_log(SHMQ_LOG_INFO, "master %s: %s; again in %u ms", rc->master, reason, retry_ms);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int start_following(receiver_t *rc);

static void on_tick(uv_timer_t *t)
{
    receiver_t *rc = t->data;
    if (rc->epoch_pending && !rc->epoch_refused && !rc->epoch_cut) {
        enum receiver_epoch_verdict v =
            receiver_epoch_check(rc->w, rc->tls, rc->cl.wrote_pos, &rc->epoch_logged);
        if (v == RECEIVER_EPOCH_FOLLOW) {
            rc->epoch_pending = false;
            if (start_following(rc) < 0) {
                rc->epoch_refused = true;
            }
        } else if (v == RECEIVER_EPOCH_REFUSE) {
            rc->epoch_refused = true;
        } else if (v == RECEIVER_EPOCH_CUT) {
            rc->epoch_cut = true; /* shmqd stops the store; this log is never followed */
        }
    }
    if (shmq_clean_changed(&rc->w->ctl, &rc->clean_seen)) {
        shmq_clean_drop_removed(&rc->cl.q);
    }
    hello(rc);
    if (shmq_mono_ms() - rc->last_report_ms >= rc->cfg->ha_send_heartbeat_interval) {
        report(rc);
    }
}

static int64_t receiver_work(shmq_worker_t *w, void *arg)
{
    (void)w;
    receiver_t *rc = arg;
    uv_run(&rc->loop, UV_RUN_NOWAIT);
    return 0;
}

static void receiver_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    (void)w;
    receiver_t *rc = arg;
    shmq_worker_uv_idle(&rc->loop, &rc->idle_timer, timeout_ms);
}

static bool receiver_done(shmq_worker_t *w, void *arg)
{
    if (((receiver_t *)arg)->epoch_refused) {
        return true;
    }
    /* Acquire: pairs with the master's release store of the state. */
    uint32_t st = atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
    return st == SHMQ_STATE_DRAINING || st == SHMQ_STATE_FINISHING || st == SHMQ_STATE_STOPPED;
}

/* ---- init / finish ------------------------------------------------------------------------ */

static void receiver_free(receiver_t *rc)
{
    if (rc->loop_open) {
        if (rc->k != NULL) {
            shmq_net_connector_stop(rc->k);
        }
        if (rc->meta != NULL) {
            ha_meta_sync_stop(rc->meta);
        }
        shmq_worker_uv_close(&rc->loop);
    }
    shmq_net_tls_free(rc->tls);
    atomic_store_explicit(&rc->blk->ha.master_connected, 0, memory_order_relaxed);
    if (rc->cl_open) {
        shmq_commitlog_close(&rc->cl);
    }
    free(rc);
}

/*
 * Bytes a killed receiver put after wrote were never taken: zero them.  They
 * lie below the end of the last frame it accepted (ha.master_end, stored
 * before the frame's bytes are put; frames never cross a segment), from
 * wrote, or on an empty log from the start of that frame's segment.  Only
 * that range is written: a fresh segment is not touched page by page.  A
 * fresh control block (the whole store restarted) has no frame end: the
 * store's recovery has judged the tail then.
 */
static void zero_untaken(receiver_t *rc, int64_t wrote)
{
    int64_t seg = rc->cfg->mapped_file_size_commit_log;
    int64_t dirty_end = atomic_load_explicit(&rc->blk->ha.master_end, memory_order_relaxed);
    int64_t from = wrote;
    if (shmq_commitlog_empty(&rc->cl) && dirty_end > 0) {
        from = (dirty_end - 1) - (dirty_end - 1) % seg;
    }
    for (int64_t at = from; at < dirty_end;) {
        int64_t seg_end = (at / seg + 1) * seg;
        int64_t end = dirty_end < seg_end ? dirty_end : seg_end;
        shmq_mapped_file_t *mf = shmq_mfq_find(&rc->cl.q, at);
        if (mf != NULL) {
            memset(mf->base + (at - mf->start_offset), 0, (size_t)(end - at));
        }
        at = seg_end;
    }
}

static int receiver_init(shmq_worker_t *w, void **state)
{
    receiver_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL) {
        return SHMQ_EXIT_ERROR;
    }
    rc->w = w;
    rc->blk = w->ctl.blk;
    rc->cfg = w->cfg;
    char addr[SHMQ_CTL_ADDR_MAX];
    /* haMasterAddress as an address literal (a host name is looked up once, here). */
    int r = shmq_hostport_resolve(rc->cfg->ha_master_address, addr, sizeof(addr));
    if (r < 0) {
        shmq_log(SHMQ_LOG_ERROR, "haMasterAddress %s", shmq_error_detail());
        receiver_free(rc);
        return SHMQ_EXIT_ERROR; /* a name may resolve later: restarted with backoff */
    }
    snprintf(rc->master, sizeof(rc->master), "%s", rc->cfg->ha_master_address);
    snprintf(rc->blk->ha.master_addr, sizeof(rc->blk->ha.master_addr), "%s", addr);
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(rc->cfg, dir, sizeof(dir));
    /* An empty log is not prepared: its first segment is where the master's bytes start
     * (its last segment for a slave that starts empty), not at 0. */
    int64_t wrote = shmq_ctl_load(&rc->blk->wrote);
    unsigned flags = wrote > 0 ? SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE : 0;
    flags |= shmq_commitlog_flush_flags(rc->cfg->flush_disk_type == SHMQ_SYNC_FLUSH);
    r = shmq_commitlog_open(&rc->cl, dir, (size_t)rc->cfg->mapped_file_size_commit_log, flags);
    if (r < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the CommitLog in %s: %s", dir, shmq_error_detail());
        receiver_free(rc);
        return SHMQ_EXIT_ERROR;
    }
    rc->cl_open = true;
    shmq_commitlog_set_positions(&rc->cl, wrote, shmq_ctl_load(&rc->blk->flushed));
    rc->cl.raw_end = wrote;
    zero_untaken(rc, wrote);
    if (uv_loop_init(&rc->loop) != 0) {
        receiver_free(rc);
        return SHMQ_EXIT_ERROR;
    }
    rc->loop_open = true;
    uv_timer_init(&rc->loop, &rc->tick);
    rc->tick.data = rc;
    uv_timer_start(&rc->tick, on_tick, RECEIVER_TICK_MS, RECEIVER_TICK_MS);
    uv_timer_init(&rc->loop, &rc->idle_timer);
    r = shmq_worker_ha_tls(rc->cfg, false, &rc->tls);
    if (r < 0) {
        receiver_free(rc);
        return SHMQ_EXIT_CONFIG;
    }
    snprintf(rc->addr, sizeof(rc->addr), "%s", addr);
    /* acquire: set by the master before the block was ready */
    rc->epoch_pending =
        atomic_load_explicit(&rc->blk->role.epoch_checked, memory_order_acquire) == 0;
    if (rc->epoch_pending) {
        shmq_log(SHMQ_LOG_INFO, "master %s: its epoch table first (not checked at start)",
                 rc->master);
    } else if (start_following(rc) < 0) {
        receiver_free(rc);
        return SHMQ_EXIT_CONFIG;
    }
    *state = rc;
    return 0;
}

/*
 * Connect to the master (and again after each loss of the link), and fetch
 * its metadata: only once its epoch table showed this log is a prefix of
 * its own.
 */
static int start_following(receiver_t *rc)
{
    if (rc->meta == NULL &&
        ha_meta_sync_start(&rc->loop, &rc->w->ctl, rc->addr, rc->master, rc->tls, &rc->meta) < 0) {
        shmq_log(SHMQ_LOG_ERROR, "master %s: %s", rc->master, shmq_error_detail());
        return -ENOMEM;
    }
    shmq_net_connector_cfg_t kc = {
        .on_connected = on_connected,
        .on_disconnected = on_disconnected,
        .arg = rc,
        .conn = {.on_read = on_read,
                 .on_close = on_close,
                 .idle_ms = (uint32_t)rc->cfg->ha_housekeeping_interval,
                 .tls = rc->tls},
    };
    int r = shmq_net_connector_start(&rc->loop, rc->addr, &kc, &rc->k);
    if (r < 0) {
        shmq_log(SHMQ_LOG_ERROR, "master %s: %s", rc->master, shmq_error_detail());
        return r;
    }
    shmq_log(SHMQ_LOG_INFO, "following master %s (%s) from %lld (%s)", rc->master, rc->addr,
             (long long)rc->cl.wrote_pos, shmq_worker_ha_link(rc->cfg));
    return 0;
}

static int receiver_finish(shmq_worker_t *w, void *arg)
{
    (void)w;
    bool refused = ((receiver_t *)arg)->epoch_refused;
    receiver_free(arg);
    return refused ? SHMQ_EXIT_CONFIG : SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = receiver_init,
        .work = receiver_work,
        .idle = receiver_idle,
        .finish = receiver_finish,
        .done = receiver_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_HA_RECEIVER, &ops);
}
