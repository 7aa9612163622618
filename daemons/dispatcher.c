/*
 * shmq-dispatcher: builds the ConsumeQueues from the CommitLog (RocketMQ's
 * ReputMessageService) and tells consumers about new units.
 *
 * Started by shmqd as `shmq-dispatcher --store DIR` on the worker skeleton
 * (worker.h).  It follows `wrote` (ASYNC_FLUSH) or `flushed` (SYNC_FLUSH)
 * from `dispatched` (sleeping on dispatcher_wake, or on `flushed` itself in
 * SYNC_FLUSH): reads records with its own read-only CommitLog handle,
 * appends their units to its own read-write ConsumeQueue handles, publishes
 * each touched queue's max_offset in the control block's queue table, then
 * `dispatched`, then wakes consumers that sleep.  Every
 * flushIntervalConsumeQueue ms it flushes the ConsumeQueues (least-pages
 * rule, everything every flushConsumeQueueThoroughInterval): the loop plans
 * the msyncs and a thread of its own makes them (cq_flusher_t), so that
 * dispatching never waits for the disk; when they are back the loop
 * publishes `cq_flushed`: every unit of a record below it is on disk.  The
 * start's and the stop's flushes are made in the loop.  Before it, the
 * checkpoint's mark (ctl.h shmq_ctl_cq_mark_t): the highest batch end at or
 * below cq_flushed that it kept, with the store time of the record before it
 * (it read that record while dispatching), so that the flusher names a
 * record boundary and its time in the checkpoint without reading the log.
 *
 * Owns: positions `dispatched` and `cq_flushed`, the checkpoint's mark,
 * the queue table's max_offset (min_offset only raised, shared with the
 * cleaner), the ConsumeQueue files.  After `shmqctl topic delete` (ctl.h
 * topic_del) it removes the topic's ConsumeQueues once past the writer's
 * cut, checked once per loop, outside the batch.
 *
 * A failed ConsumeQueue flush fences the store (fence.h): cq_flushed is
 * recorded in <root>/fence-consumequeue and never moves again, also not in a
 * restarted dispatcher; the next start rebuilds the queues from there.
 *
 * Signals: SIGTERM/SIGINT flush the ConsumeQueues, publish cq_flushed and
 * exit 0.  FINISHING (orderly stop): dispatch to the end, flush everything,
 * publish, exit 0.
 *
 * Killed at any instruction it resumes from `dispatched`: units written
 * before the kill are skipped (shmq_cq_append is idempotent); only the last
 * unit of one queue can be torn by a kill (units are written one after the
 * other), and a unit above the published max_offset is checked against its
 * record at start and cut if it does not match, then written again.  No
 * gap, no duplicate.  The mark is published whole or not at all (ctl.h); a
 * new dispatcher starts from the published one, and finds the time of the
 * record before `dispatched` by walking the record sizes from the mark to it
 * once.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/probes.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "shm/ctl.h"
#include "shm/stats.h"
#include "store/fence.h"
#include "shmq/errors.h"
#include "store/store.h"
#include "store/topic_delete.h"
#include "worker.h"

#define DISPATCH_MAX_RECORDS 4096
#define DISPATCH_MAX_BYTES   (4 << 20)
#define CQ_PASS_STEPS        4 /* msyncs planned per queue and pass (segments, in order) */

/* One msync of a flush pass, and its queue. */
typedef struct cq_pass_step {
    shmq_queue_t *q;
    shmq_cq_flush_step_t s;
} cq_pass_step_t;

/*
 * The periodic ConsumeQueue flush, made by a thread of its own (RocketMQ's
 * FlushConsumeQueueService) so that the dispatch loop never waits for a disk:
 * the loop plans a pass (the msyncs each queue needs, shmq_cq_flush_plan()),
 * hands it over, dispatches on, and takes the results back once the thread
 * is done: each queue's flushed position, then cq_flushed and the mark.
 * While a pass is out, nothing it names is unmapped or freed: the loop
 * leaves topic deletions and the unmapping of files the cleaner removed for
 * after it.  The stop's and the start's flushes are made in the loop, after
 * the pass out (if any) came back.
 */
typedef struct cq_flusher {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a pass handed over, the stop, or (to a waiting loop) a pass done */
    bool go;             /* under lock: a pass to make */
    bool stop;           /* under lock: the thread returns */
    _Atomic bool done;   /* the pass handed over is made: its results are ready */
    bool busy;           /* the loop's: a pass is out */
    cq_pass_step_t *steps;
    size_t nsteps, cap;
    size_t failed;         /* the step that failed (nsteps: none) */
    int rc;                /* its error */
    char detail[512];      /* its error text (the thread's detail buffer is its own) */
    int64_t covers_from;   /* the dispatch position when the pass was planned */
    bool cq_drop_pending;  /* the cleaner removed files while the pass was out */
    shmq_ctl_wake_t *wake; /* the loop's wake word: woken when a pass is done */
} cq_flusher_t;

typedef struct dispatcher {
    shmq_worker_t *w;
    shmq_config_t cfg; /* the master's configuration, store root made absolute */
    shmq_store_t st;   /* attached: ConsumeQueues read-write, CommitLog read-only */
    bool store_open;
    int64_t pos;           /* next record to dispatch; published as `dispatched` after each batch */
    shmq_cl_cursor_t cur;  /* the CommitLog segment of pos */
    uint64_t stamp;        /* the writer's next append stamp to take (stats.h) */
    int64_t cq_flushed;    /* last published cq_flushed */
    int64_t last_ts;       /* store time of the last record below pos; 0 unknown */
    shmq_marks_t marks;    /* batch ends with their last record's time (ctl.h) */
    int64_t mark_pos;      /* the checkpoint's mark as published last */
    int64_t stall_pos;     /* pos at which a batch made no progress below the limit, -1 none */
    int64_t next_flush_ms; /* monotonic */
    int64_t next_thorough_ms; /* monotonic */
    int flush_err;            /* first ConsumeQueue flush failure: cq_flushed frozen */
    bool finished;            /* FINISHING: dispatched to the end, flushed and published */
    shmq_queue_t *touched[DISPATCH_MAX_RECORDS]; /* queues given units in this batch, once each */
    size_t ntouched;
    uint64_t batch;       /* this batch's number: a queue whose `batch` equals it is in touched */
    bool scheduler_units; /* this batch gave units to a queue the scheduler reads */
    uint64_t clean_seen;  /* cleaner: its deleted_seq when we last dropped removed files */
    int64_t nospace_ms;   /* cleaner: last "disk full" warning (monotonic), 0 none */
    uint64_t del_done;    /* shmqctl topic delete: the last request whose queues we removed */
    int64_t del_warn_ms;  /* its last failure logged (monotonic), 0 none */
    cq_flusher_t fl;      /* the ConsumeQueue flush thread */
} dispatcher_t;

/* ---- positions ------------------------------------------------------------------------ */

/* Where dispatching may go: what the writer wrote (ASYNC) or the flusher flushed (SYNC). */
static int64_t dispatch_limit(const dispatcher_t *d)
{
    const shmq_ctl_block_t *b = d->w->ctl.blk;
    /* Acquire (shmq_ctl_load): the record bytes below the position are visible. */
    if (d->cfg.flush_disk_type == SHMQ_SYNC_FLUSH) {
        return shmq_ctl_load(&b->flushed);
    }
    return shmq_ctl_load(&b->wrote);
}

/* Sleep predicate: records to dispatch, or the flush thread's pass to take back. */
static bool has_work(void *arg)
{
    dispatcher_t *d = arg;
    return (d->pos != d->stall_pos && dispatch_limit(d) > d->pos) ||
           (d->fl.busy && atomic_load_explicit(&d->fl.done, memory_order_acquire));
}

/* Raise an entry's min_offset to at least min (CAS: the cleaner raises it too). */
static void raise_min_offset(shmq_ctl_queue_t *e, int64_t min)
{
    int64_t cur = atomic_load_explicit(&e->min_offset, memory_order_relaxed);
    /* Release: a consumer reading the minimum with acquire sees the units above it. */
    while (cur < min &&
           !atomic_compare_exchange_weak_explicit(&e->min_offset, &cur, min, memory_order_release,
                                                  memory_order_relaxed)) {
    }
}

/* Publish one queue's max_offset (and its minimum), inserting its entry if missing. */
static int publish_queue(dispatcher_t *d, shmq_queue_t *q)
{
    shmq_ctl_t *ctl = &d->w->ctl;
    /* Queue table entries are never removed: the one found first stays the queue's. */
    shmq_ctl_queue_t *e = q->user;
    if (e == NULL) {
        e = shmq_ctl_queue_find(ctl, q->cq.topic, q->topic_len, q->cq.queue_id);
    }
    if (e == NULL) {
        int rc = shmq_ctl_queue_insert(ctl, q->cq.topic, q->topic_len, q->cq.queue_id, &e);
        if (rc < 0) {
            return shmq_error_wrap(rc, "queue table entry for %s/%d", q->cq.topic, q->cq.queue_id);
        }
    }
    q->user = e;
    raise_min_offset(e, shmq_cq_min_offset(&q->cq));
    int64_t max = shmq_cq_max_offset(&q->cq);
    /* Relaxed: this process is the only writer of max_offset. */
    if (max > atomic_load_explicit(&e->max_offset, memory_order_relaxed)) {
        /* Release: the unit bytes (written through our mapping) are visible before the new max. */
        atomic_store_explicit(&e->max_offset, max, memory_order_release);
    }
    return 0;
}

/* Publish every touched queue's max_offset, then `dispatched`, then wake sleeping consumers. */
static int publish_batch(dispatcher_t *d)
{
    for (size_t i = 0; i < d->ntouched; i++) {
        int rc = publish_queue(d, d->touched[i]);
        if (rc < 0) {
            return rc;
        }
    }
    bool units = d->ntouched > 0;
    bool scheduler = d->scheduler_units;
    d->ntouched = 0;
    d->scheduler_units = false;
    d->batch++; /* every queue's mark is stale now */
    shmq_ctl_block_t *b = d->w->ctl.blk;
    /* Release inside publish: every unit and max_offset above is visible before it. */
    shmq_ctl_publish(&b->dispatched, d->pos);
    if (d->last_ts > 0) {
        shmq_marks_add(&d->marks, d->pos, d->last_ts); /* a candidate for the mark */
    }
    shmq_stamps_take_inline(&b->stamps, &d->stamp, d->pos, &b->counters.append_dispatch,
                            &shmq_hist_stage);
    /* The publish's fence orders the units and max_offsets before these looks too. */
    if (units) {
        /* Wakes only if a consumer registered as a sleeper (no system call otherwise). */
        shmq_ctl_wake_also(&d->w->ctl.wake->consumer_wake);
    }
    if (scheduler) {
        /* Delayed or timed messages arrived: the scheduler sleeps on this word only. */
        shmq_ctl_wake_also(&b->scheduler.wake);
    }
    return 0;
}

/* ---- dispatching ------------------------------------------------------------------------ */

static void fence_queues(dispatcher_t *d, const char *topic, int queue_id, int rc);

/* Remember q (given a unit, or holding it already) for this batch's publish, once. */
static void touch(dispatcher_t *d, shmq_queue_t *q)
{
    if (q == NULL || q->batch == d->batch) {
        return; /* a record without a unit (prepared or rolled back transaction), or seen */
    }
    q->batch = d->batch;
    d->touched[d->ntouched++] = q;
    d->scheduler_units |= q->scheduler;
}

/* One bounded batch: up to DISPATCH_MAX_RECORDS records or DISPATCH_MAX_BYTES bytes. */
static int64_t dispatch_batch(dispatcher_t *d, int64_t limit)
{
    int64_t start = d->pos;
    int64_t records = 0, bytes = 0;
    bool refreshed = false;
    int rc = 0;
    while (d->pos < limit && records < DISPATCH_MAX_RECORDS && bytes < DISPATCH_MAX_BYTES) {
        shmq_record_head_t r;
        int64_t at = d->pos;
        rc = shmq_commitlog_next_head_inline(&d->st.cl, &d->cur, &d->pos, limit,
                                             SHMQ_DECODE_CHECK_PHYS, &r);
        if (rc == SHMQ_E_END) {
            if (d->pos < limit && !refreshed) {
                /* The next segment was created after our last look (or is not mapped yet). */
                refreshed = true;
                rc = shmq_mfq_refresh(&d->st.cl.q);
                if (rc < 0) {
                    return shmq_error_wrap(rc, "mapping new CommitLog segments");
                }
                continue;
            }
            break;
        }
        if (rc == SHMQ_E_RANGE && at < shmq_commitlog_min_offset(&d->st.cl)) {
            /* The log starts after us: a slave that started empty holds the master's log
             * from its last segment on. */
            d->pos = shmq_commitlog_min_offset(&d->st.cl);
            d->last_ts = 0; /* the record before it was never read */
            shmq_log(SHMQ_LOG_WARN,
                     "the CommitLog starts at %lld, after %lld: dispatching from "
                     "there",
                     (long long)d->pos, (long long)at);
            continue;
        }
        if (rc < 0) {
            d->pos = at;
            return shmq_error_wrap(rc, "CommitLog record at %lld (dispatch limit %lld)",
                                   (long long)at, (long long)limit);
        }
        shmq_queue_t *q;
        rc = shmq_store_dispatch_head_inline(&d->st, &r, &q);
        if (rc == -ENOSPC) {
            /* cleaner: a full disk; no new ConsumeQueue file now: retry from here later. */
            d->pos = at;
            if (shmq_mono_ms() - d->nospace_ms >= 10000) {
                d->nospace_ms = shmq_mono_ms();
                shmq_log(SHMQ_LOG_WARN, "disk full: %s; retrying", shmq_error_detail());
            }
            break;
        }
        if (rc == -EIO) {
            /* A consume queue's new file or directory could not be made durable (its
             * fsync failed): as a failed flush, never retried and trusted.  Fence; the
             * retry from here dispatches on, and nothing is flushed again. */
            d->pos = at;
            char topic[SHMQ_TOPIC_MAX_ANY + 1];
            snprintf(topic, sizeof(topic), "%.*s", (int)r.topic_len, r.topic);
            fence_queues(d, topic, r.queue_id, rc);
            break;
        }
        if (rc < 0) {
            d->pos = at;
            return rc;
        }
        touch(d, q);
        d->last_ts = r.store_ts;
        SHMQ_PROBE(dispatch, at, r.total_size, r.queue_id, r.queue_offset, r.topic, r.topic_len);
        records++;
        bytes += r.total_size;
    }
    if (d->pos > start) {
        rc = publish_batch(d);
        if (rc < 0) {
            return rc;
        }
    }
    if (d->pos == start && d->pos < limit) {
        if (d->stall_pos != d->pos && rc != -ENOSPC) {
            shmq_log(SHMQ_LOG_WARN, "no record readable at %lld below the limit %lld yet",
                     (long long)d->pos, (long long)limit);
        }
        d->stall_pos = d->pos; /* sleep until woken or the next timeout */
    } else {
        d->stall_pos = -1;
    }
    /* Amount of work: records, at least 1 when blank records moved the position. */
    return records > 0 ? records : (d->pos > start ? 1 : 0);
}

/* ---- flushing ----------------------------------------------------------------------------- */

/*
 * A ConsumeQueue flush failed: never retried and trusted (fence.h).  Record
 * cq_flushed as the point below which every unit is durable (the next start
 * rebuilds the ConsumeQueues from there), then fence the store.
 */
static void fence_queues(dispatcher_t *d, const char *topic, int queue_id, int rc)
{
    char what[512];
    const char *det = shmq_error_detail();
    snprintf(what, sizeof(what), "%s", det[0] ? det : shmq_strerror(rc));
    if (d->flush_err != 0) {
        return; /* fenced already: one record, one report */
    }
    d->flush_err = rc;
    shmq_ctl_block_t *b = d->w->ctl.blk;
    int frc = shmq_fence_record(d->w->ctl.root, SHMQ_FENCE_CONSUMEQUEUE, d->cq_flushed, rc);
    if (frc < 0) {
        det = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot record the fence point: %s (the master tries again)",
                 det[0] ? det : shmq_strerror(frc));
    }
    shmq_ctl_fence(b, SHMQ_FENCE_CONSUMEQUEUE, rc);
    shmq_log(SHMQ_LOG_ERROR,
             "flush of consume queue %s/%d failed: %s; the store is fenced: cq_flushed stays at "
             "%lld and the next start rebuilds the consume queues from there",
             topic, queue_id, what, (long long)d->cq_flushed);
}

typedef struct flush_pass {
    dispatcher_t *d;
    int least_pages;
    int64_t covered; /* records below it have every unit flushed */
} flush_pass_t;

/* The first unit of q not yet flushed bounds what a flush covers. */
static int covered_by(shmq_queue_t *q, void *arg)
{
    flush_pass_t *fp = arg;
    shmq_cq_t *cq = &q->cq;
    int64_t max = shmq_cq_max_offset(cq);
    int64_t first = cq->flushed_pos / SHMQ_CQ_UNIT_SIZE;
    if (first < shmq_cq_min_offset(cq)) {
        first = shmq_cq_min_offset(cq);
    }
    if (first < max) {
        shmq_cq_unit_t u;
        if (shmq_cq_read(cq, first, &u) == 0 && u.phys_offset >= 0) {
            if (u.phys_offset < fp->covered) {
                fp->covered = u.phys_offset;
            }
        } else {
            fp->covered = fp->d->cq_flushed; /* unknown: claim nothing new */
        }
    }
    return 0;
}

static int flush_one(shmq_queue_t *q, void *arg)
{
    flush_pass_t *fp = arg;
    shmq_cq_t *cq = &q->cq;
    int rc = shmq_cq_flush(cq, fp->least_pages);
    if (rc < 0) {
        fence_queues(fp->d, cq->topic, cq->queue_id, rc);
        return 1;
    }
    return 0;
}

/* After a flush: cq_flushed is the least of from (records below it had every unit written
 * before the flush began) and each queue's first unit not flushed; publish it and the mark. */
static void publish_flushed(dispatcher_t *d, int64_t from)
{
    if (d->flush_err != 0) {
        return;
    }
    flush_pass_t fp = {.d = d, .covered = from};
    shmq_store_foreach_queue(&d->st, covered_by, &fp);
    bool moved = fp.covered > d->cq_flushed;
    if (moved) {
        d->cq_flushed = fp.covered;
    }
    shmq_ctl_block_t *b = d->w->ctl.blk;
    int64_t pos, ts;
    if (shmq_marks_take(&d->marks, d->cq_flushed, &pos, &ts) && pos > d->mark_pos) {
        /* First: a flusher that sees the new cq_flushed (the orderly stop waits for it)
         * finds the mark that goes with it. */
        shmq_ctl_cq_mark_publish(&b->cq_mark, pos, ts);
        d->mark_pos = pos;
    }
    if (moved) {
        /* Release inside publish: the units below it were flushed before. */
        shmq_ctl_publish(&b->cq_flushed, d->cq_flushed);
    }
}

/* ---- the flush thread ------------------------------------------------------------------- */

static void *cq_flush_main(void *arg)
{
    cq_flusher_t *f = arg;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->go && !f->stop) {
            pthread_cond_wait(&f->cond, &f->lock);
        }
        if (f->stop) {
            break;
        }
        f->go = false;
        pthread_mutex_unlock(&f->lock);
        /* In plan order; the first failure ends the pass (the store is fenced after it). */
        size_t i = 0;
        int rc = 0;
        for (; i < f->nsteps; i++) {
            shmq_error_clear();
            rc = shmq_cq_flush_step(&f->steps[i].s);
            if (rc < 0) {
                snprintf(f->detail, sizeof(f->detail), "%s", shmq_error_detail());
                break;
            }
        }
        pthread_mutex_lock(&f->lock);
        f->failed = i;
        f->rc = rc;
        /* Release: the results above are seen by a loop that sees done. */
        atomic_store_explicit(&f->done, true, memory_order_release);
        pthread_cond_broadcast(&f->cond);
        shmq_ctl_wake(f->wake);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* Start the flush thread, with every signal blocked (the loop's thread takes them). */
static int cq_flusher_start(dispatcher_t *d)
{
    cq_flusher_t *f = &d->fl;
    f->wake = &d->w->ctl.blk->dispatcher_wake;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&f->thread, NULL, cq_flush_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return shmq_error_set(-rc, "cannot start the consume queue flush thread: %s", strerror(rc));
    }
    f->started = true;
    return 0;
}

/* Plan a queue's steps into the pass. */
static int pass_plan_one(shmq_queue_t *q, void *arg)
{
    flush_pass_t *fp = arg;
    cq_flusher_t *f = &fp->d->fl;
    if (f->cap - f->nsteps < CQ_PASS_STEPS) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        cq_pass_step_t *s = realloc(f->steps, cap * sizeof(*s));
        if (s == NULL) {
            return shmq_error_set(-ENOMEM, "no memory for a consume queue flush pass");
        }
        f->steps = s;
        f->cap = cap;
    }
    shmq_cq_flush_step_t buf[CQ_PASS_STEPS];
    int n = shmq_cq_flush_plan(&q->cq, fp->least_pages, buf, CQ_PASS_STEPS);
    if (n < 0) {
        fence_queues(fp->d, q->cq.topic, q->cq.queue_id, n);
        return n;
    }
    for (int i = 0; i < n; i++) {
        f->steps[f->nsteps++] = (cq_pass_step_t){.q = q, .s = buf[i]};
    }
    return 0;
}

static int drop_removed(shmq_queue_t *q, void *arg);

/* The pass out is done: record each step's result (the first failure fences the store), the
 * files the cleaner removed meanwhile are unmapped, cq_flushed and the mark published. */
static void pass_finish(dispatcher_t *d)
{
    cq_flusher_t *f = &d->fl;
    for (size_t i = 0; i < f->nsteps && i <= f->failed; i++) {
        shmq_cq_t *cq = &f->steps[i].q->cq;
        if (i < f->failed) {
            shmq_cq_flush_done(cq, &f->steps[i].s, 0);
            continue;
        }
        shmq_cq_flush_done(cq, &f->steps[i].s, f->rc);
        shmq_error_set(f->rc, "%s", f->detail);
        fence_queues(d, cq->topic, cq->queue_id, f->rc);
    }
    f->busy = false;
    atomic_store_explicit(&f->done, false, memory_order_relaxed);
    if (f->cq_drop_pending) {
        f->cq_drop_pending = false;
        shmq_store_foreach_queue(&d->st, drop_removed, NULL);
    }
    publish_flushed(d, f->covers_from);
}

/* Wait for the pass out (if any) and take its results. */
static void pass_wait(dispatcher_t *d)
{
    cq_flusher_t *f = &d->fl;
    if (!f->busy) {
        return;
    }
    pthread_mutex_lock(&f->lock);
    while (!atomic_load_explicit(&f->done, memory_order_acquire)) {
        pthread_cond_wait(&f->cond, &f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    pass_finish(d);
}

/* Plan a pass and hand it to the thread; one with nothing to msync is finished here. */
static void pass_start(dispatcher_t *d, int least_pages)
{
    cq_flusher_t *f = &d->fl;
    f->nsteps = 0;
    f->failed = 0;
    f->covers_from = d->pos;
    flush_pass_t fp = {.d = d, .least_pages = least_pages};
    if (shmq_store_foreach_queue(&d->st, pass_plan_one, &fp) != 0 || d->flush_err != 0) {
        if (d->flush_err == 0) {
            shmq_log(SHMQ_LOG_WARN, "%s: consume queues not flushed this time",
                     shmq_error_detail());
        }
        return;
    }
    if (f->nsteps == 0) {
        publish_flushed(d, f->covers_from);
        return;
    }
    f->busy = true;
    pthread_mutex_lock(&f->lock);
    f->go = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Stop the thread (after the pass out came back). */
static void cq_flusher_stop(dispatcher_t *d)
{
    cq_flusher_t *f = &d->fl;
    if (!f->started) {
        return;
    }
    pass_wait(d);
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->started = false;
}

/* Flush the ConsumeQueues here (least_pages 0: everything), after the pass out if any, and
 * publish the mark and cq_flushed: the start's and the stop's flush. */
static void flush_queues(dispatcher_t *d, int least_pages)
{
    pass_wait(d);
    if (d->flush_err != 0) {
        return;
    }
    flush_pass_t fp = {.d = d, .least_pages = least_pages};
    if (shmq_store_foreach_queue(&d->st, flush_one, &fp) == 0) {
        publish_flushed(d, d->pos);
    }
}

/*
 * At start: the published mark, and the store time of the record before pos,
 * so that the batch ends from here on name their record's time.  It walks
 * the record sizes to pos and reads the last record passed, from the mark
 * (usually less than a second of records), or from the start of pos's
 * segment when the mark is further back (segment starts are record
 * boundaries).  Unknown (0) when it cannot be told: the marks then wait
 * for the first record dispatched.
 */
static void marks_start(dispatcher_t *d)
{
    shmq_marks_init(&d->marks);
    d->last_ts = 0;
    d->mark_pos = 0;
    int64_t min = shmq_commitlog_min_offset(&d->st.cl);
    int64_t from = -1, from_ts = 0, mpos, mts;
    if (shmq_ctl_cq_mark_read(&d->w->ctl.blk->cq_mark, &mpos, &mts) == 0) {
        d->mark_pos = mpos;
        if (mpos <= d->pos && mpos >= min) {
            from = mpos;
            from_ts = mts;
        }
    }
    if (d->pos > min) {
        int64_t seg = (int64_t)d->st.cl.q.seg_size;
        int64_t seg_start = (d->pos - 1) - (d->pos - 1) % seg;
        if (seg_start < min) {
            seg_start = min;
        }
        if (from < seg_start) {
            from = seg_start;
            from_ts = 0;
        }
    }
    if (from < 0) {
        return; /* nothing below pos */
    }
    if (from_ts > 0) {
        shmq_marks_add(&d->marks, from, from_ts);
    }
    int64_t p = from, last = -1;
    int rc = shmq_commitlog_skip(&d->st.cl, &p, d->pos, &last);
    if (rc == 0 && p < d->pos && shmq_mfq_refresh(&d->st.cl.q) >= 0) {
        rc = shmq_commitlog_skip(&d->st.cl, &p, d->pos, &last); /* a segment made since */
    }
    if (rc == 0 && p == d->pos && last >= 0) {
        shmq_record_head_t r;
        int64_t at = last;
        rc = shmq_commitlog_next_head(&d->st.cl, &at, d->pos, SHMQ_DECODE_CHECK_PHYS, &r);
        if (rc > 0) {
            d->last_ts = r.store_ts;
        }
    } else if (rc == 0 && p == d->pos) {
        d->last_ts = from_ts; /* no record between (a blank at most): the same last record */
    }
    if (d->last_ts > 0) {
        shmq_marks_add(&d->marks, d->pos, d->last_ts);
    } else if (d->pos > min) {
        shmq_log(SHMQ_LOG_WARN,
                 "cannot tell the store time of the record before %lld (walking from %lld: %s, "
                 "stopped at %lld): the checkpoint's mark waits for the next record",
                 (long long)d->pos, (long long)from, rc < 0 ? shmq_strerror(rc) : "no error",
                 (long long)p);
    }
}

/* now: the loop turn's monotonic clock (w->mono_ms). */
static void flush_if_due(dispatcher_t *d, int64_t now)
{
    if (now < d->next_flush_ms) {
        return;
    }
    int interval =
        d->cfg.flush_interval_consume_queue > 0 ? d->cfg.flush_interval_consume_queue : 1000;
    d->next_flush_ms = now + interval;
    if (d->fl.busy || d->flush_err != 0) {
        return; /* the last pass is still out (a slow disk): the next one an interval on */
    }
    int least = d->cfg.flush_consume_queue_least_pages;
    if (now >= d->next_thorough_ms) {
        least = 0; /* a thorough pass is never skipped: it waits for the pass out */
        d->next_thorough_ms = now + d->cfg.flush_consume_queue_thorough_interval;
    }
    pass_start(d, least);
}

/* ---- shmqctl topic delete ----------------------------------------------------------------- */

/*
 * The writer took deletion request req and writes nothing of the topic after
 * its cut: once every record below the cut is dispatched (its units went to
 * the old files), forget the topic's queues, remove their directory and set
 * their queue table entries back to 0 with a new incarnation.  Checked once
 * per loop, outside the batch; a failure is retried at the next loop, and a
 * dispatcher killed mid-way does it all again (each step can be repeated).
 */
static void delete_topic_queues(dispatcher_t *d, uint64_t req)
{
    shmq_ctl_block_t *b = d->w->ctl.blk;
    shmq_ctl_topic_del_t *td = &b->topic_del;
    /* Relaxed: published by writer_seen's release, which the caller acquired. */
    int64_t cut = atomic_load_explicit(&td->cut_pos, memory_order_relaxed);
    if (d->pos < cut || shmq_ctl_load(&b->dispatched) < cut) {
        return; /* records of the topic still to dispatch (after the next batch) */
    }
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(topic, td->topic, sizeof(topic));
    topic[SHMQ_TOPIC_MAX_ANY] = '\0';
    size_t len = strlen(topic);
    int rc = len > 0 ? shmq_store_drop_topic(&d->st, topic, len) : 0;
    if (rc == 0 && len > 0) {
        rc = shmq_topic_delete_queues(d->w->ctl.root, topic);
    }
    if (rc < 0) {
        if (shmq_mono_ms() - d->del_warn_ms >= 10000) {
            d->del_warn_ms = shmq_mono_ms();
            shmq_log(SHMQ_LOG_WARN,
                     "cannot remove the consume queues of deleted topic %s: %s; "
                     "retrying",
                     topic, shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        }
        return;
    }
    for (uint32_t i = 0; len > 0 && i < SHMQ_CTL_MAX_QUEUES; i++) {
        shmq_ctl_queue_t *e = &b->queues[i];
        if (shmq_ctl_queue_of_topic(e, topic, len)) {
            /* Release: a reader that sees the new offsets sees the new incarnation. */
            atomic_fetch_add_explicit(&e->incarnation, 1, memory_order_release);
            atomic_store_explicit(&e->max_offset, 0, memory_order_release);
            atomic_store_explicit(&e->min_offset, 0, memory_order_release);
        }
    }
    /* Release: the entries above are reset before shmqctl finishes the deletion. */
    atomic_store_explicit(&td->dispatcher_done, req, memory_order_release);
    d->del_done = req;
    shmq_log(SHMQ_LOG_INFO, "consume queues of deleted topic %s removed (cut at %lld)", topic,
             (long long)cut);
}

static void check_topic_delete(dispatcher_t *d)
{
    /* Acquire: the writer's cut and next offsets are stored before. */
    uint64_t req =
        atomic_load_explicit(&d->w->ctl.blk->topic_del.writer_seen, memory_order_acquire);
    if (req != d->del_done) {
        delete_topic_queues(d, req);
    }
}

/* ---- start: cut a unit torn by the previous dispatcher's death ----------------------------- */

/* True if unit u at queue offset qoff describes its record exactly. */
static bool unit_matches(dispatcher_t *d, const shmq_cq_t *cq, int64_t qoff,
                         const shmq_cq_unit_t *u)
{
    shmq_record_t r;
    if (u->phys_offset < 0 || u->size <= 0) {
        return false;
    }
    int rc = shmq_commitlog_read(&d->st.cl, u->phys_offset, SHMQ_DECODE_CHECK_PHYS, &r);
    if (rc != u->size) {
        return false;
    }
    size_t tlen = strlen(cq->topic);
    int64_t tags =
        shmq_store_tags_code(&d->cfg, r.topic, r.topic_len, r.props, r.props_len, r.store_ts);
    return r.topic_len == tlen && memcmp(r.topic, cq->topic, tlen) == 0 &&
           r.queue_id == cq->queue_id && r.queue_offset == qoff && tags == u->tags_code;
}

static int repair_tail(shmq_queue_t *q, void *arg)
{
    dispatcher_t *d = arg;
    shmq_cq_t *cq = &q->cq;
    int64_t min = shmq_cq_min_offset(cq);
    int64_t max = shmq_cq_max_offset(cq);
    if (max <= min) {
        return 0;
    }
    const shmq_ctl_queue_t *e =
        shmq_ctl_queue_find(&d->w->ctl, cq->topic, strlen(cq->topic), cq->queue_id);
    /* Acquire: pairs with the release of the previous dispatcher's publish. */
    int64_t published = e ? atomic_load_explicit(&e->max_offset, memory_order_acquire) : 0;
    if (max <= published) {
        return 0; /* consumers may read every unit: all were complete */
    }
    shmq_cq_unit_t u;
    if (shmq_cq_read(cq, max - 1, &u) == 0 && unit_matches(d, cq, max - 1, &u)) {
        return 0;
    }
    /* Keep the units whose records end at or before the previous unit's. */
    int64_t keep = 0;
    shmq_cq_unit_t prev;
    if (max - 2 >= min && shmq_cq_read(cq, max - 2, &prev) == 0 && prev.phys_offset > 0 &&
        prev.size > 0 && prev.size != INT32_MAX) {
        keep = prev.phys_offset + prev.size;
    }
    shmq_log(SHMQ_LOG_WARN,
             "consume queue %s/%d: unit %lld does not match its record (torn by a kill); "
             "cutting it",
             cq->topic, cq->queue_id, (long long)(max - 1));
    int rc = shmq_cq_truncate_dirty(cq, keep);
    if (rc < 0) {
        return shmq_error_wrap(rc, "cutting a torn unit of consume queue %s/%d", cq->topic,
                               cq->queue_id);
    }
    if (shmq_cq_max_offset(cq) >= max) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "consume queue %s/%d: unit %lld does not match its record and "
                              "cannot be cut",
                              cq->topic, cq->queue_id, (long long)(max - 1));
    }
    return 0;
}

/* ---- worker operations ------------------------------------------------------------------------
 */

static int dispatcher_init(shmq_worker_t *w, void **state)
{
    dispatcher_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    d->w = w;
    d->cfg = *w->cfg;
    snprintf(d->cfg.store_path_root_dir, sizeof(d->cfg.store_path_root_dir), "%s", w->ctl.root);
    d->stall_pos = -1;
    d->batch = 1; /* queues start unmarked (0) */
    pthread_mutex_init(&d->fl.lock, NULL);
    pthread_cond_init(&d->fl.cond, NULL);
    /* A request not finished before a kill is done again (its steps can be repeated). */
    d->del_done =
        atomic_load_explicit(&w->ctl.blk->topic_del.dispatcher_done, memory_order_acquire);
    int rc = shmq_store_open(&d->st, &d->cfg, SHMQ_STORE_ATTACH, NULL);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the store's files: %s",
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        free(d);
        return SHMQ_EXIT_ERROR;
    }
    d->store_open = true;
    shmq_ctl_block_t *b = w->ctl.blk;
    /* Reads of records for the check below stop at what the writer published. */
    int64_t wrote = shmq_ctl_load(&b->wrote);
    shmq_commitlog_set_positions(&d->st.cl, wrote, wrote);
    d->pos = shmq_ctl_load(&b->dispatched);
    d->stamp = shmq_stamps_now(&b->stamps);
    d->cq_flushed = shmq_ctl_load(&b->cq_flushed);
    /* acquire: pairs with the fencing worker's CAS.  A fenced store flushes nothing more:
     * after a failed flush a second one "succeeds" without writing (PITFALLS 1). */
    if (atomic_load_explicit(&b->fenced_error, memory_order_acquire) != 0) {
        d->flush_err = SHMQ_E_FENCED;
        shmq_log(SHMQ_LOG_WARN, "the store is fenced: consume queues are not flushed again");
    }
    int64_t min = shmq_ctl_load(&b->min);
    if (d->pos < min) {
        shmq_log(SHMQ_LOG_WARN, "dispatched %lld is below the CommitLog minimum %lld: from there",
                 (long long)d->pos, (long long)min);
        d->pos = min;
    }
    marks_start(d);
    rc = shmq_store_foreach_queue(&d->st, repair_tail, d);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "%s",
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        shmq_store_abandon(&d->st);
        free(d);
        return SHMQ_EXIT_ERROR;
    }
    /* A queue opened here counts as unflushed from its first file: sync each once, so that
     * cq_flushed can follow the least-pages rule from now on. */
    flush_queues(d, 0);
    rc = cq_flusher_start(d);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "%s", shmq_error_detail());
        shmq_store_close(&d->st);
        free(d);
        return SHMQ_EXIT_ERROR;
    }
    int64_t now = shmq_mono_ms();
    d->next_flush_ms = now + d->cfg.flush_interval_consume_queue;
    d->next_thorough_ms = now + d->cfg.flush_consume_queue_thorough_interval;
    shmq_worker_log_reader(&d->cfg, &d->cur); /* SYNC_FLUSH: pread */
    shmq_log(SHMQ_LOG_INFO, "dispatching from %lld (%zu consume queues, following %s)",
             (long long)d->pos, d->st.queue_count,
             d->cfg.flush_disk_type == SHMQ_SYNC_FLUSH ? "flushed" : "wrote");
    *state = d;
    return 0;
}

/* cleaner: unmap a queue's files it deleted (their space returns only then). */
static int drop_removed(shmq_queue_t *q, void *arg)
{
    (void)arg;
    shmq_clean_cq_drop_removed(&q->cq);
    return 0;
}

static int64_t dispatcher_work(shmq_worker_t *w, void *state)
{
    dispatcher_t *d = state;
    if (d->fl.busy && atomic_load_explicit(&d->fl.done, memory_order_acquire)) {
        pass_finish(d);
    }
    if (shmq_clean_changed(&w->ctl, &d->clean_seen)) {
        shmq_clean_drop_removed(&d->st.cl.q);
        if (d->fl.busy) {
            d->fl.cq_drop_pending = true; /* a file of the pass out stays mapped until it is back */
        } else {
            shmq_store_foreach_queue(&d->st, drop_removed, NULL);
        }
    }
    int64_t n = 0;
    int64_t limit = dispatch_limit(d);
    if (limit > d->pos) {
        n = dispatch_batch(d, limit);
        if (n < 0) {
            return n;
        }
        /* Up to the limit it saw: idle comes next, not a call that would find nothing
         * (idle looks again, after registering as a sleeper, before it sleeps). */
        w->took_all = d->pos >= limit;
    }
    if (!d->fl.busy) {
        check_topic_delete(d); /* frees queues: not while a pass names them */
    }
    flush_if_due(d, w->mono_ms);
    return n;
}

static void dispatcher_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    dispatcher_t *d = state;
    /* The clock of this loop turn, read before work(): a flush comes at most one batch
     * late, and the turn reads the clock once. */
    int64_t until_flush = d->next_flush_ms - w->mono_ms;
    if (until_flush <= 0) {
        return;
    }
    if (until_flush < timeout_ms) {
        timeout_ms = (int)until_flush;
    }
    if (d->cfg.flush_disk_type == SHMQ_SYNC_FLUSH && d->stall_pos != d->pos && !d->fl.busy) {
        /* The flusher's publish of `flushed` wakes its waiters: no wake word needed. */
        shmq_ctl_wait_pos(&w->ctl.blk->flushed, d->pos + 1, timeout_ms);
        return;
    }
    shmq_ctl_sleep(&w->ctl.blk->dispatcher_wake, has_work, d, timeout_ms);
}

/* FINISHING: done once everything written is dispatched, flushed and published. */
static bool dispatcher_done(shmq_worker_t *w, void *state)
{
    dispatcher_t *d = state;
    if (d->finished) {
        return true;
    }
    /* Acquire: the master's state change is ordered after the writer's exit. */
    if (atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire) !=
        SHMQ_STATE_FINISHING) {
        return false;
    }
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    if (d->pos < wrote) {
        return false; /* work() dispatches the rest (SYNC_FLUSH: as the flusher flushes it) */
    }
    flush_queues(d, 0);
    d->finished = true;
    shmq_log(SHMQ_LOG_INFO, "finished: dispatched %lld, cq_flushed %lld", (long long)d->pos,
             (long long)d->cq_flushed);
    return true;
}

static int dispatcher_finish(shmq_worker_t *w, void *state)
{
    (void)w;
    dispatcher_t *d = state;
    if (d == NULL) {
        return SHMQ_EXIT_OK;
    }
    if (!d->finished) {
        flush_queues(d, 0);
    }
    cq_flusher_stop(d);
    free(d->fl.steps);
    pthread_mutex_destroy(&d->fl.lock);
    pthread_cond_destroy(&d->fl.cond);
    int code = d->flush_err ? SHMQ_EXIT_ERROR : SHMQ_EXIT_OK;
    if (d->store_open) {
        shmq_store_close(&d->st); /* attached: unmaps only */
    }
    shmq_cl_cursor_free(&d->cur);
    free(d);
    return code;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = dispatcher_init,
        .work = dispatcher_work,
        .idle = dispatcher_idle,
        .finish = dispatcher_finish,
        .done = dispatcher_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_DISPATCHER, &ops);
}
