/*
 * shmq-scheduler: delivers delayed and timed messages when they are due
 * (RocketMQ's ScheduleMessageService and TimerMessageStore; ROCKETMQ-FACTS
 * §10, §17).
 *
 * Started by shmqd as `shmq-scheduler --store DIR` when the program is
 * installed (worker skeleton, worker.h).  SIGTERM/SIGINT: save progress and
 * exit 0.  Orderly stop: in DRAINING the store takes no new messages, so it
 * stops delivering and saves its progress; in FINISHING it exits 0.
 *
 * The writer rewrites messages as they arrive (libshm/shm/schedule.c): a delay
 * level makes a SCHEDULE_TOPIC_XXXX message (queue level - 1, ConsumeQueue
 * tagsCode = delivery time), a delivery time a rmq_sys_wheel_timer message.
 * The scheduler reads those queues through the consumer API, read-only, and
 * writes each due message again to its REAL_TOPIC / REAL_QID through a
 * producer of its own (libshm/client/producer_entry.h), so the writer stays the
 * only appender.
 *
 * Delay levels: per level, the next ConsumeQueue offset to deliver, kept in
 * memory, stored in the mapped config/delaycheck as each batch is
 * acknowledged (format/delay_check.h) and saved to config/delayOffset.json
 * every flushDelayOffsetInterval and at stop.  Timer: units of the timer queue
 * are put in the timer wheel and log (libshm/format/timer.h) at once; slot by slot
 * as time passes the units of a slot are delivered.  A batch of deliveries
 * is sent asynchronously and every answer awaited before any progress moves
 * past it.
 *
 * A held message whose REAL_TOPIC was deleted after it was sent (below the
 * topic's cut in config/topicDeletes.json, reread when it changes) is not
 * delivered.
 *
 * Owns: config/delayOffset.json, config/delaycheck, timerwheel, timerlog/,
 * config/timercheck, the control block's scheduler counters.  Killed at any
 * instruction: the next run delivers again what was sent after the last
 * stored progress: the batch in flight, whose progress is stored in the
 * mapped delaycheck or timercheck as soon as it is acknowledged.  Nothing
 * due is lost.
 *
 * Crash tests: with SHMQ_TEST_CRASH_DIR set, the scheduler kills itself
 * (SIGKILL) when the file <dir>/scheduler-<step> exists (removing it
 * first): delay-acked (a delay-level batch acknowledged, its progress not
 * yet moved), timer-acked (a timer batch acknowledged, the timercheck not
 * yet written).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "store/fence.h"
#include "client/deliver_batch.h"
#include "format/message.h"
#include "client/producer_entry.h"
#include "shm/schedule.h"
#include "shmq/consumer.h"
#include "shmq/producer.h"
#include "format/store_files.h"
#include "format/topic_deletes.h"
#include "format/timer.h"
#include "format/delay_check.h"
#include "worker.h"

#define SC_BATCH           SHMQ_DELIVER_BATCH /* deliveries in flight at once */
#define SC_SEND_TIMEOUT_MS 30000 /* one delivery; no answer in time stops the scheduler */
#define SC_FLUSH_WAIT_MS   60000
#define SC_RETRY_MS        1000  /* after a transient error */
#define SC_TIMER_FLUSH_MS  1000  /* timerFlushIntervalMs */
#define SC_EMPTY_SLOTS     20000 /* empty timer slots passed in one unit of work */
#define SC_IDLE_MS         500   /* longest sleep with nothing due (new units wake it at once) */
_Static_assert(SHMQ_DELAYCHECK_LEVELS >= SHMQ_MAX_DELAY_LEVELS, "a delaycheck slot per level");

typedef struct sc_level {
    int64_t offset;   /* next ConsumeQueue offset of SCHEDULE_TOPIC_XXXX/level-1 to deliver */
    int64_t next_due; /* its head unit's delivery time; 0: look now */
    int64_t retry_at; /* after a transient error */
    /* its queue table entry once it exists (entries are never removed), NULL before */
    const shmq_ctl_queue_t *entry;
} sc_level_t;

typedef struct scheduler {
    shmq_worker_t *w;
    shmq_ctl_block_t *blk;
    const shmq_config_t *cfg;
    const char *root;
    shmq_consumer_t *cons;
    shmq_producer_t *prod;
    shmq_commitlog_t cl;
    bool cl_open;
    uint64_t clean_seen;
    shmq_pull_result_t *pr;
    char props[SHMQ_PROPS_MAX];
    shmq_deliver_batch_t batch; /* keys: delay: a unit's queue offset; timer: its index */
    /* delay levels */
    sc_level_t levels[SHMQ_MAX_DELAY_LEVELS];
    int nlevels;
    int64_t delay_version;
    bool delay_dirty;
    int64_t delay_saved_ms;
    shmq_delaycheck_t dc; /* config/delaycheck: progress as each batch is acknowledged */
    /* timer */
    shmq_timer_store_t ts;
    bool ts_open;
    const shmq_ctl_queue_t *timer_entry; /* rmq_sys_wheel_timer/0's entry, NULL before it exists */
    int64_t timer_saved_ms;
    int64_t timer_retry_at;
    shmq_timer_unit_t *units; /* the slot being delivered, oldest first */
    int64_t *upos;
    size_t ucap;
    int64_t nunits;
    int64_t loaded_slot;       /* slot time of units[], -1 none */
    shmq_cancel_set_t cancels; /* the slot's cancel markers */
    bool stopping_saved;
    const char *crash_dir; /* SHMQ_TEST_CRASH_DIR, or NULL */
    /* config/topicDeletes.json, reloaded when it changes: a message held for a topic
     * deleted after it was sent is not delivered to a topic created again */
    shmq_topic_cuts_t cuts;
    shmq_file_stamp_t cuts_stamp;
    bool cuts_known;
} scheduler_t;

/* Reload config/topicDeletes.json if it changed (one lstat). */
static void cuts_reload(scheduler_t *s)
{
    char path[PATH_MAX];
    bool fits =
        snprintf(path, sizeof(path), "%s/config/topicDeletes.json", s->root) < (int)sizeof(path);
    if (!shmq_file_stamp_update(&s->cuts_stamp, s->cuts_known, fits ? path : NULL)) {
        return;
    }
    s->cuts_known = true;
    shmq_topic_cuts_t t;
    shmq_error_clear();
    if (shmq_topic_cuts_load(s->root, &t) < 0) {
        shmq_log(SHMQ_LOG_WARN, "%s; the deletions read before stay in force", shmq_error_detail());
        return;
    }
    shmq_topic_cuts_free(&s->cuts);
    s->cuts = t;
}

/* 1 when the held record r's REAL_TOPIC was deleted after r was sent (not delivered), else 0. */
static int deleted_after(const scheduler_t *s, const shmq_record_t *r)
{
    size_t tl = 0;
    const char *rt =
        s->cuts.count ? shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_TOPIC, &tl) : NULL;
    return rt != NULL && shmq_topic_cuts_hides(&s->cuts, rt, tl, r->phys_offset) ? 1 : 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint32_t store_state(const scheduler_t *s)
{
    /* Acquire: pairs with the master's release store of the state. */
    return atomic_load_explicit(&s->blk->hdr.state, memory_order_acquire);
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    /* Relaxed: a statistics counter. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* The queue table entry of topic/queue_id, cached in *slot once found (never removed). */
static const shmq_ctl_queue_t *queue_entry(scheduler_t *s, const shmq_ctl_queue_t **slot,
                                           const char *topic, size_t len, int32_t queue_id)
{
    if (*slot == NULL) {
        *slot = shmq_ctl_queue_find(&s->w->ctl, topic, len, queue_id);
    }
    return *slot;
}

static const shmq_ctl_queue_t *level_entry(scheduler_t *s, int l)
{
    return queue_entry(s, &s->levels[l].entry, SHMQ_SCHEDULE_TOPIC, sizeof(SHMQ_SCHEDULE_TOPIC) - 1,
                       l);
}

static const shmq_ctl_queue_t *timer_entry(scheduler_t *s)
{
    return queue_entry(s, &s->timer_entry, SHMQ_TIMER_TOPIC, sizeof(SHMQ_TIMER_TOPIC) - 1, 0);
}

/* Units built in a queue (its max offset), 0 for a queue that does not exist yet. */
static int64_t entry_max(const shmq_ctl_queue_t *e)
{
    /* Acquire: pairs with the dispatcher's release; the units below are readable. */
    return e ? atomic_load_explicit((_Atomic int64_t *)&e->max_offset, memory_order_acquire) : 0;
}

/* Crash tests: die here if <crash_dir>/scheduler-<step> exists (see the top of the file). */
static void crash_point(const scheduler_t *s, const char *step)
{
    if (s->crash_dir == NULL) {
        return;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/scheduler-%s", s->crash_dir, step);
    if (unlink(path) == 0) {
        shmq_log(SHMQ_LOG_WARN, "crash test: killed at step %s", step);
        raise(SIGKILL);
    }
}

static const char *why(int rc)
{
    return shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc);
}

/* The decoded record at phys (size bytes; 0: any) from the scheduler's read-only CommitLog mapping.
 */
static int read_record(scheduler_t *s, int64_t phys, int32_t size, shmq_record_t *r)
{
    int64_t wrote = shmq_ctl_load(&s->blk->wrote);
    if (shmq_clean_changed(&s->w->ctl, &s->clean_seen) ||
        phys + (size > 0 ? size : 1) > shmq_mfq_end_offset(&s->cl.q)) {
        int rc = shmq_mfq_refresh(&s->cl.q);
        if (rc < 0) {
            return rc;
        }
    }
    shmq_commitlog_set_positions(&s->cl, wrote, wrote);
    unsigned flags =
        SHMQ_DECODE_CHECK_PHYS | shmq_decode_verify_flags(phys, s->w->ctl.blk->hdr.crc_tail_from);
    int rc = shmq_commitlog_read(&s->cl, phys, flags, r);
    if (rc == 0 || (rc > 0 && size > 0 && rc != size)) {
        return shmq_error_set(SHMQ_E_CORRUPT, "record at %" PRId64 ": size %d, expected %d", phys,
                              rc, size);
    }
    return rc < 0 ? rc : 0;
}

/* An error after which the same delivery can succeed later (else it is dropped). */
static bool transient(const scheduler_t *s, int err)
{
    switch (err) {
    case SHMQ_E_TOPIC:
    case SHMQ_E_PROPS:
    case SHMQ_E_TOO_BIG:
    case SHMQ_E_RANGE:
    case SHMQ_E_ARG:
    case SHMQ_E_CORRUPT:
    case -EACCES:
        return false;
    case SHMQ_E_NOT_FOUND: /* a topic that does not exist, unless the store is gone */
        return store_state(s) != SHMQ_STATE_RUNNING;
    default:
        return true;
    }
}

/* ---- the batch of deliveries ----------------------------------------------------------- */

static bool transient_cb(int err, void *arg)
{
    return transient(arg, err);
}

/*
 * Wait for every answer of the batch: returns how many items from the first are
 * settled (stored, or refused for good: dropped and logged); a transient error ends
 * that prefix.  < 0: no answer in time (the scheduler exits and starts again).
 */
static int64_t batch_wait(scheduler_t *s, const char *what, const char *acked_step)
{
    size_t sent = s->batch.n;
    int64_t done = shmq_deliver_wait(&s->batch, SC_FLUSH_WAIT_MS, transient_cb, s);
    if (done < 0) {
        return done;
    }
    for (int64_t k = 0; k < done; k++) {
        const shmq_deliver_item_t *it = &s->batch.items[k];
        if (it->status != 0) {
            shmq_log(SHMQ_LOG_WARN, "%s %" PRId64 ": delivery refused, dropped: %s", what, it->key,
                     shmq_strerror(it->status));
            count(&s->blk->scheduler.dropped, 1);
        }
    }
    if ((size_t)done < sent) {
        count(&s->blk->scheduler.retries, 1);
    }
    if (done > 0) {
        crash_point(s, acked_step);
    }
    return done;
}

static bool may_deliver(const scheduler_t *s)
{
    return store_state(s) == SHMQ_STATE_RUNNING && !s->w->stop;
}

/* ---- delay levels --------------------------------------------------------------------------- */

/* The anchor of a delaycheck slot is still unit a->queue_offset of level l's queue: the
 * queue below the slot's progress is the one the slot was written for. */
static bool anchor_holds(scheduler_t *s, int l, const shmq_delay_anchor_t *a)
{
    int rc = shmq_pull(s->cons, SHMQ_SCHEDULE_TOPIC, l, a->queue_offset, 1, NULL, 0, s->pr);
    const shmq_msg_view_t *v = &s->pr->msgs[0];
    return rc == 0 && s->pr->status == SHMQ_PULL_FOUND && s->pr->count >= 1 &&
           v->queue_offset == a->queue_offset && v->phys_offset == a->phys &&
           v->store_ts == a->store_ts;
}

static int delay_load(scheduler_t *s)
{
    shmq_offset_table_t t;
    int rc = shmq_delay_offsets_load(s->root, &t);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot load config/delayOffset.json: %s", why(rc));
        return rc;
    }
    rc = shmq_delaycheck_open(&s->dc, s->root);
    if (rc < 0) {
        /* Progress from delayOffset.json alone: what was delivered since its last save
         * comes again after a kill. */
        shmq_log(SHMQ_LOG_WARN, "config/delaycheck not used: %s", why(rc));
    }
    s->delay_version = t.data_version_counter;
    s->nlevels = s->cfg->delay_level_count;
    for (int l = 0; l < s->nlevels; l++) {
        int64_t off = 0, min, max, coff;
        shmq_delay_anchor_t a;
        shmq_offset_table_get(&t, "", l + 1, &off);
        bool range = shmq_queue_offsets(s->cons, SHMQ_SCHEDULE_TOPIC, l, &min, &max) == 0;
        /* Acknowledged since delayOffset.json's last save, its queue unchanged below. */
        if (range && shmq_delaycheck_get(&s->dc, l + 1, &coff, &a) && coff > off && coff <= max &&
            a.queue_offset < coff && anchor_holds(s, l, &a)) {
            shmq_log(SHMQ_LOG_INFO,
                     "delay level %d: resuming at offset %" PRId64
                     " (config/delaycheck; delayOffset.json says %" PRId64 ")",
                     l + 1, coff, off);
            off = coff;
        }
        /* Clamped into the queue's range, as RocketMQ 5 does on load. */
        if (range) {
            off = off < min ? min : off > max ? max : off;
        }
        s->levels[l].offset = off < 0 ? 0 : off;
    }
    shmq_offset_table_free(&t);
    return 0;
}

static int delay_save(scheduler_t *s)
{
    shmq_offset_table_t t = {0};
    int rc = 0;
    for (int l = 0; l < s->nlevels && rc == 0; l++) {
        rc = shmq_offset_table_set(&t, "", l + 1, s->levels[l].offset);
    }
    t.data_version_counter = s->delay_version + 1;
    if (rc == 0) {
        rc = shmq_delay_offsets_save(s->root, &t);
    }
    shmq_offset_table_free(&t);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot save config/delayOffset.json: %s", why(rc));
        return rc;
    }
    s->delay_version++;
    s->delay_dirty = false;
    s->delay_saved_ms = shmq_mono_ms();
    return 0;
}

/* A pull that found nothing but whose next_offset is where the queue goes on
 * (units cleaned away, none to match, an offset past the end): take it. */
static bool pull_moves_offset(const shmq_pull_result_t *pr)
{
    return pr->status == SHMQ_PULL_OFFSET_TOO_SMALL || pr->status == SHMQ_PULL_NO_MATCHED_MSG ||
           pr->status == SHMQ_PULL_OFFSET_OVERFLOW_BADLY ||
           pr->status == SHMQ_PULL_MESSAGE_WAS_REMOVING;
}

/* Level l's progress into config/delaycheck as soon as it moved past units of pr: the last
 * of them below it is the anchor. */
static void delay_check_put(scheduler_t *s, int l, const shmq_pull_result_t *pr)
{
    for (size_t i = pr->count; i-- > 0;) {
        const shmq_msg_view_t *v = &pr->msgs[i];
        if (v->queue_offset < s->levels[l].offset) {
            shmq_delay_anchor_t a = {v->queue_offset, v->phys_offset, v->store_ts};
            shmq_delaycheck_put(&s->dc, l + 1, s->levels[l].offset, &a);
            return;
        }
    }
}

/* Deliver the due units of one level; returns the units settled or < 0. */
static int64_t delay_level_work(scheduler_t *s, int l, int64_t now)
{
    sc_level_t *lv = &s->levels[l];
    int64_t delay = s->cfg->delay_level_ms[l];
    int rc = shmq_pull(s->cons, SHMQ_SCHEDULE_TOPIC, l, lv->offset, SC_BATCH, NULL, 0, s->pr);
    if (rc < 0) {
        return rc;
    }
    const shmq_pull_result_t *pr = s->pr;
    if (pr->status != SHMQ_PULL_FOUND) {
        if (pull_moves_offset(pr)) {
            lv->offset = pr->next_offset;
            s->delay_dirty = true;
        }
        lv->next_due = 0;
        return 0;
    }
    /* The time again, after the pull: a unit stored after the caller read its time has a
     * store time past it, and the skew correction below would take it for a clock gone
     * back and deliver it at once, a whole level early.  Every unit pulled was stored
     * before now. */
    now = shmq_now_ms();
    lv->next_due = 0;
    size_t i = 0;
    for (; i < pr->count; i++) {
        const shmq_msg_view_t *v = &pr->msgs[i];
        int64_t due = v->store_ts + delay;
        if (due > now + delay) {
            due = now; /* clock-skew correction, as RocketMQ's */
        }
        if (due > now) {
            lv->next_due = due;
            break;
        }
        shmq_record_t r;
        shmq_ring_msg_t rm;
        rc = read_record(s, v->phys_offset, v->size, &r);
        if (rc == 0) {
            rc = deleted_after(s, &r);
        }
        if (rc == 0) {
            rc = shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_DELAY, 0, now, s->props,
                                         sizeof(s->props), &rm);
        }
        if (rc != 0) {
            if (rc < 0) {
                shmq_log(SHMQ_LOG_WARN, "level %d offset %" PRId64 ": cannot deliver, dropped: %s",
                         l + 1, v->queue_offset, why(rc));
                count(&s->blk->scheduler.dropped, 1);
            }
            shmq_deliver_settle(&s->batch, v->queue_offset);
            continue;
        }
        int src = shmq_deliver_send(&s->batch, &rm, v->queue_offset);
        if (src < 0 && transient(s, src)) {
            break;
        }
    }
    /* Units past the batch (or filtered blanks) up to next_offset are settled too. */
    bool whole = i == pr->count;
    int64_t sent = (int64_t)s->batch.n;
    int64_t done = batch_wait(s, "delay level unit", "delay-acked");
    if (done < 0) {
        return done;
    }
    if (done > 0) {
        lv->offset = s->batch.items[done - 1].key + 1;
        s->delay_dirty = true;
        count(&s->blk->scheduler.delay_delivered, (uint64_t)done);
    }
    if (done < sent) {
        lv->retry_at = now + SC_RETRY_MS;
    } else if (whole) {
        lv->offset = pr->next_offset > lv->offset ? pr->next_offset : lv->offset;
    }
    delay_check_put(s, l, pr);
    return done;
}

static int64_t delay_work(scheduler_t *s, int64_t now)
{
    int64_t total = 0, pending = 0;
    bool deliver = may_deliver(s);
    for (int l = 0; l < s->nlevels; l++) {
        sc_level_t *lv = &s->levels[l];
        /* A level whose queue ends at its offset has nothing to pull (an offset past the
         * end is pulled: the pull moves it back). */
        if (deliver && lv->retry_at <= now && lv->next_due <= now &&
            entry_max(level_entry(s, l)) != lv->offset) {
            int64_t n = delay_level_work(s, l, now);
            if (n < 0) {
                return n;
            }
            total += n;
        }
        int64_t max = entry_max(lv->entry);
        if (max > lv->offset) {
            pending += max - lv->offset;
        }
    }
    atomic_store_explicit(&s->blk->scheduler.delay_pending, pending, memory_order_relaxed);
    if (s->delay_dirty &&
        shmq_mono_ms() - s->delay_saved_ms >= s->cfg->flush_delay_offset_interval) {
        delay_save(s); /* a failed save is logged and tried again at the next interval */
    }
    return total;
}

/* ---- timer ---------------------------------------------------------------------------------- */

static int timer_open(scheduler_t *s, int64_t now)
{
    int64_t min, max;
    bool queue = shmq_queue_offsets(s->cons, SHMQ_TIMER_TOPIC, 0, &min, &max) == 0 && max > 0;
    if (!queue && !shmq_timer_exists(s->root)) {
        return 0; /* no timed message so far: no timer files */
    }
    int rc = shmq_timer_open(&s->ts, s->root, s->cfg->timer_precision_ms,
                             (size_t)s->cfg->mapped_file_size_timer_log, now);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the timer files: %s", why(rc));
        return rc;
    }
    s->ts_open = true;
    /* Units the last run put in the log after its last checkpoint: their queue units are done. */
    if (s->ts.recovered_max_phys >= 0) {
        shmq_record_t r;
        if (read_record(s, s->ts.recovered_max_phys, 0, &r) == 0 &&
            r.queue_offset + 1 > s->ts.queue_offset) {
            s->ts.queue_offset = r.queue_offset + 1;
        }
    }
    if (queue) {
        s->ts.queue_offset = s->ts.queue_offset < min ? min : s->ts.queue_offset;
        s->ts.queue_offset = s->ts.queue_offset > max ? max : s->ts.queue_offset;
    }
    shmq_log(SHMQ_LOG_INFO,
             "timer: reading at %" PRId64 " (precision %d ms), %" PRId64 " units pending, timer "
             "queue at %" PRId64 "; %" PRId64 " units found after the checkpoint, %" PRId64
             " slots repaired",
             s->ts.read_ms, (int)s->cfg->timer_precision_ms, s->ts.pending, s->ts.queue_offset,
             s->ts.recovered_units, s->ts.repaired_slots);
    s->loaded_slot = -1;
    return 0;
}

/* Put new rmq_sys_wheel_timer units in the wheel. */
static int64_t timer_enqueue_work(scheduler_t *s, int64_t now)
{
    int rc = shmq_pull(s->cons, SHMQ_TIMER_TOPIC, 0, s->ts.queue_offset, SC_BATCH, NULL, 0, s->pr);
    if (rc < 0) {
        return rc;
    }
    const shmq_pull_result_t *pr = s->pr;
    if (pr->status != SHMQ_PULL_FOUND) {
        if (pull_moves_offset(pr)) {
            s->ts.queue_offset = pr->next_offset;
        }
        return 0;
    }
    for (size_t i = 0; i < pr->count; i++) {
        const shmq_msg_view_t *v = &pr->msgs[i];
        size_t l = 0;
        const char *out = shmq_msg_property(v, SHMQ_PROP_TIMER_OUT_MS, &l);
        shmq_timer_enq_t e = {.phys_offset = v->phys_offset, .msg_size = v->size};
        if (out == NULL || !shmq_schedule_parse_i64(out, l, &e.deliver_ms)) {
            e.deliver_ms = now; /* no valid time: due now */
        }
        const char *rt = shmq_msg_property(v, SHMQ_PROP_REAL_TOPIC, &l);
        e.topic_hash = rt ? shmq_java_hash(rt, l) : 0;
        if (shmq_msg_property(v, SHMQ_PROP_TIMER_DEL_UNIQKEY, &l) != NULL) {
            e.magic = SHMQ_TIMER_MAGIC_DELETE;
        }
        int64_t slot;
        rc = shmq_timer_enqueue(&s->ts, &e, now, &slot);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "timer: cannot enqueue the unit at %" PRId64 ": %s",
                     v->phys_offset, why(rc));
            return rc;
        }
    }
    s->ts.queue_offset = pr->next_offset;
    count(&s->blk->scheduler.timer_enqueued, pr->count);
    return (int64_t)pr->count;
}

/* Read slot's units (oldest first) and its cancel markers. */
static int timer_load_slot(scheduler_t *s, int64_t slot)
{
    int64_t broken = 0;
    shmq_cancel_set_free(&s->cancels);
    s->nunits = shmq_timer_slot_read(&s->ts, slot, &s->units, &s->upos, &s->ucap, &broken);
    if (s->nunits < 0) {
        return (int)s->nunits;
    }
    if (broken) {
        shmq_log(SHMQ_LOG_WARN,
                 "timer slot %" PRId64 ": its chain breaks after %" PRId64
                 " units (damaged timer log)",
                 slot, s->nunits);
    }
    s->loaded_slot = slot;
    for (int64_t i = 0; i < s->nunits; i++) {
        shmq_record_t r;
        if (!(s->units[i].magic & SHMQ_TIMER_MAGIC_DELETE) ||
            read_record(s, s->units[i].phys_offset, s->units[i].msg_size, &r) < 0) {
            continue;
        }
        if (shmq_cancel_set_add(&s->cancels, &r) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* Prepare unit i of the loaded slot: 1 send rm, 0 settled without a send, < 0 transient. */
static int timer_unit(scheduler_t *s, int64_t i, int64_t now, shmq_ring_msg_t *rm)
{
    const shmq_timer_unit_t *u = &s->units[i];
    shmq_record_t r;
    int rc = read_record(s, u->phys_offset, u->msg_size, &r);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_WARN, "timer unit for the record at %" PRId64 ": unreadable, dropped: %s",
                 u->phys_offset, why(rc));
        count(&s->blk->scheduler.dropped, 1);
        return 0;
    }
    if (u->magic & SHMQ_TIMER_MAGIC_DELETE) {
        return 0;
    }
    if (u->magic & SHMQ_TIMER_MAGIC_ROLL) {
        /* Rolled: into the wheel again for the time the message asked. */
        size_t l;
        const char *out = shmq_props_get(r.props, r.props_len, SHMQ_PROP_TIMER_OUT_MS, &l);
        shmq_timer_enq_t e = {
            .phys_offset = u->phys_offset, .msg_size = u->msg_size, .topic_hash = u->topic_hash};
        if (out == NULL || !shmq_schedule_parse_i64(out, l, &e.deliver_ms)) {
            e.deliver_ms = now;
        }
        int64_t slot;
        rc = shmq_timer_enqueue(&s->ts, &e, now, &slot);
        return rc < 0 ? rc : 0;
    }
    if (shmq_cancel_set_has(&s->cancels, &r) || deleted_after(s, &r)) {
        return 0;
    }
    rc = shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_TIMER, u->write_ms, now, s->props,
                                 sizeof(s->props), rm);
    if (rc != 0) {
        if (rc < 0) {
            shmq_log(SHMQ_LOG_WARN, "timer unit for the record at %" PRId64 ": dropped: %s",
                     u->phys_offset, why(rc));
            count(&s->blk->scheduler.dropped, 1);
        }
        return 0;
    }
    return 1;
}

/* Deliver the units of due slots; returns units settled (or empty slots passed), or < 0. */
static int64_t timer_dequeue_work(scheduler_t *s, int64_t now)
{
    int64_t p = s->ts.precision, work = 0, empty = 0;
    while (s->ts.read_ms + p <= now && may_deliver(s) && s->timer_retry_at <= now) {
        int64_t slot = s->ts.read_ms;
        int64_t last = shmq_timer_slot_last(&s->ts, slot);
        if (last < 0 && s->ts.slot_done == 0) {
            shmq_timer_progress(&s->ts, slot + p, 0, 0);
            if (++empty >= SC_EMPTY_SLOTS) {
                return work + 1;
            }
            continue;
        }
        if (s->loaded_slot != slot || (s->nunits > 0 && s->upos[s->nunits - 1] != last) ||
            (s->nunits == 0 && last >= 0)) {
            int rc = timer_load_slot(s, slot);
            if (rc < 0) {
                return rc;
            }
        }
        if (s->ts.slot_done >= s->nunits) {
            shmq_timer_progress(&s->ts, slot + p, 0, s->nunits);
            continue;
        }
        /* One batch of the slot's next units. */
        int64_t i = s->ts.slot_done;
        for (; i < s->nunits && shmq_deliver_room(&s->batch); i++) {
            shmq_ring_msg_t rm;
            int rc = timer_unit(s, i, now, &rm);
            if (rc < 0) {
                s->timer_retry_at = now + SC_RETRY_MS;
                break;
            }
            if (rc == 0) {
                shmq_deliver_settle(&s->batch, i);
            } else if ((rc = shmq_deliver_send(&s->batch, &rm, i)) < 0 && transient(s, rc)) {
                break;
            }
        }
        int64_t sent = (int64_t)s->batch.n;
        int64_t done = batch_wait(s, "timer unit", "timer-acked");
        if (done < 0) {
            return done;
        }
        count(&s->blk->scheduler.timer_delivered, (uint64_t)done);
        shmq_timer_progress(&s->ts, slot, s->ts.slot_done + done, 0);
        work += done;
        if (done < sent) {
            s->timer_retry_at = now + SC_RETRY_MS;
            break;
        }
        if (work >= SC_BATCH) {
            break; /* bounded unit of work */
        }
    }
    return work;
}

static int timer_save(scheduler_t *s)
{
    /* acquire: pairs with the fencing worker's CAS.  A fenced store flushes nothing more:
     * a flush after a failed one "succeeds" without writing (PITFALLS 1). */
    if (atomic_load_explicit(&s->blk->fenced_error, memory_order_acquire) != 0) {
        return 0;
    }
    int64_t durable = s->ts.flushed_pos;
    int rc = shmq_timer_checkpoint(&s->ts);
    if (rc < 0) {
        char what[512];
        snprintf(what, sizeof(what), "%s", why(rc));
        if (shmq_fence_record(s->root, SHMQ_FENCE_TIMER, durable, rc) < 0) {
            shmq_log(SHMQ_LOG_ERROR, "cannot record the fence point: %s", why(rc));
        }
        shmq_ctl_fence(s->blk, SHMQ_FENCE_TIMER, rc);
        shmq_log(SHMQ_LOG_ERROR, "timer checkpoint failed: %s; the store is fenced", what);
        return rc;
    }
    s->timer_saved_ms = shmq_mono_ms();
    return 0;
}

static int64_t timer_work(scheduler_t *s, int64_t now)
{
    if (!s->ts_open) {
        /* Files left by an earlier run were opened at start: only new units open them. */
        if (entry_max(timer_entry(s)) <= 0) {
            return 0;
        }
        int rc = timer_open(s, now);
        if (rc < 0 || !s->ts_open) {
            return rc;
        }
    }
    int64_t a = timer_enqueue_work(s, now);
    if (a < 0) {
        return a;
    }
    int64_t b = timer_dequeue_work(s, now);
    if (b < 0) {
        return b;
    }
    atomic_store_explicit(&s->blk->scheduler.timer_pending, s->ts.pending, memory_order_relaxed);
    atomic_store_explicit(&s->blk->scheduler.timer_read_ms, s->ts.read_ms, memory_order_relaxed);
    if (shmq_mono_ms() - s->timer_saved_ms >= SC_TIMER_FLUSH_MS) {
        int rc = timer_save(s);
        if (rc < 0) {
            return rc; /* a failed flush is never retried and trusted: restart, recover */
        }
    }
    return a + b;
}

/* ---- the worker -------------------------------------------------------------------------------
 */

static int save_all(scheduler_t *s)
{
    int rc = 0;
    if (s->nlevels > 0 && delay_save(s) < 0) {
        rc = -EIO;
    }
    if (s->ts_open && timer_save(s) < 0) {
        rc = -EIO;
    }
    return rc;
}

static int64_t scheduler_work(shmq_worker_t *w, void *arg)
{
    (void)w;
    scheduler_t *s = arg;
    /* cleaner: unmap the CommitLog segments it deleted even while nothing is due (PITFALLS
     * 25); read_record refreshes again when it needs a segment it has not mapped. */
    if (s->cl_open && shmq_clean_changed(&s->w->ctl, &s->clean_seen)) {
        shmq_mfq_refresh(&s->cl.q);
    }
    shmq_consumer_release_removed(s->cons); /* its own view of the cleaner's deletions */
    cuts_reload(s);
    if (store_state(s) != SHMQ_STATE_RUNNING) {
        /* Stopping: the store takes no more messages.  Save what was acknowledged, once. */
        if (!s->stopping_saved) {
            s->stopping_saved = true;
            save_all(s);
        }
        return 0;
    }
    if (s->cfg->broker_role == SHMQ_SLAVE) {
        return 0; /* a slave holds copies: its master delivers (as RocketMQ's) */
    }
    int64_t now = shmq_now_ms();
    int64_t a = delay_work(s, now);
    if (a < 0) {
        return a;
    }
    int64_t b = timer_work(s, now);
    return b < 0 ? b : a + b;
}

/* New units in a queue the scheduler reads. */
static bool units_arrived(void *arg)
{
    scheduler_t *s = arg;
    if (entry_max(timer_entry(s)) > (s->ts_open ? s->ts.queue_offset : 0)) {
        return true;
    }
    int64_t now = shmq_now_ms();
    for (int l = 0; l < s->nlevels; l++) {
        /* Not a level waiting for its head unit's time or for a retry: the idle timeout
         * covers those. */
        if (s->levels[l].next_due == 0 && s->levels[l].retry_at <= now &&
            entry_max(level_entry(s, l)) > s->levels[l].offset) {
            return true;
        }
    }
    return false;
}

static void scheduler_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    scheduler_t *s = arg;
    if (store_state(s) != SHMQ_STATE_RUNNING || s->cfg->broker_role == SHMQ_SLAVE) {
        /* Nothing to deliver: only the loop's heartbeat (a stop signal ends the sleep). */
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    (void)w;
    /* New units wake it: with nothing due it sleeps SC_IDLE_MS, not the loop's timeout. */
    int64_t now = shmq_now_ms(), wake = now + SC_IDLE_MS;
    for (int l = 0; l < s->nlevels; l++) {
        int64_t t = s->levels[l].next_due > s->levels[l].retry_at ? s->levels[l].next_due
                                                                  : s->levels[l].retry_at;
        if (t > now && t < wake) {
            wake = t;
        }
    }
    if (s->ts_open) {
        int64_t t = s->ts.read_ms + s->ts.precision;
        t = t > s->timer_retry_at ? t : s->timer_retry_at;
        if (t < wake) {
            wake = t;
        }
    }
    if (wake <= now) {
        return;
    }
    /* Until the next due time, or new units: the dispatcher wakes this word when it gives
     * units to SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer, never for ordinary messages. */
    shmq_ctl_sleep(&s->blk->scheduler.wake, units_arrived, s, (int)(wake - now));
}

static bool scheduler_done(shmq_worker_t *w, void *arg)
{
    (void)w;
    uint32_t st = store_state(arg);
    return st == SHMQ_STATE_FINISHING || st == SHMQ_STATE_STOPPED || st == SHMQ_STATE_FAILED;
}

static void scheduler_free(scheduler_t *s)
{
    shmq_delaycheck_close(&s->dc);
    if (s->ts_open) {
        shmq_timer_close(&s->ts);
    }
    if (s->prod) {
        shmq_producer_close(s->prod);
    }
    if (s->cons) {
        shmq_consumer_close(s->cons);
    }
    if (s->cl_open) {
        shmq_commitlog_close(&s->cl);
    }
    shmq_cancel_set_free(&s->cancels);
    free(s->units);
    free(s->upos);
    free(s->pr);
    shmq_topic_cuts_free(&s->cuts);
    free(s);
}

static int scheduler_init(shmq_worker_t *w, void **state)
{
    scheduler_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->pr = malloc(sizeof(*s->pr))) == NULL) {
        free(s);
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    s->w = w;
    s->blk = w->ctl.blk;
    s->cfg = w->cfg;
    s->root = w->ctl.root;
    s->loaded_slot = -1;
    s->crash_dir = getenv("SHMQ_TEST_CRASH_DIR");
    s->delay_saved_ms = s->timer_saved_ms = shmq_mono_ms();
    int rc = shmq_consumer_open(s->root, NULL, &s->cons);
    shmq_producer_options_t po = {.send_timeout_ms = SC_SEND_TIMEOUT_MS};
    if (rc == 0) {
        rc = shmq_producer_open(s->root, &po, &s->prod);
        s->batch.prod = s->prod;
    }
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(s->cfg, dir, sizeof(dir));
    if (rc == 0) {
        rc = shmq_commitlog_open(&s->cl, dir, (size_t)s->cfg->mapped_file_size_commit_log,
                                 SHMQ_MF_READONLY);
        s->cl_open = rc == 0;
    }
    if (rc == 0) {
        rc = delay_load(s);
    }
    if (rc == 0) {
        rc = timer_open(s, shmq_now_ms());
    }
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot start: %s", why(rc));
        scheduler_free(s);
        return SHMQ_EXIT_ERROR;
    }
    shmq_log(SHMQ_LOG_INFO, "%d delay levels (%s); timer %s", s->nlevels,
             s->cfg->message_delay_level, s->ts_open ? "files open" : "files not created yet");
    *state = s;
    return 0;
}

static int scheduler_finish(shmq_worker_t *w, void *arg)
{
    (void)w;
    scheduler_t *s = arg;
    int rc = save_all(s);
    scheduler_free(s);
    return rc < 0 ? SHMQ_EXIT_ERROR : SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = scheduler_init,
        .work = scheduler_work,
        .idle = scheduler_idle,
        .finish = scheduler_finish,
        .done = scheduler_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_SCHEDULER, &ops);
}
