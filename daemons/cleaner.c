/*
 * shmq-cleaner: deletes what the store no longer keeps and guards the disk
 * (RocketMQ's CleanCommitLogService and CleanConsumeQueueService,
 * ROCKETMQ-FACTS §15, §7.5, §8.5; mechanisms in libshm/store/clean.c).
 *
 * Started by shmqd as `shmq-cleaner --store DIR` on the worker skeleton
 * (worker.h) when the program is installed next to shmqd.  SIGTERM/SIGINT:
 * finish the current step and exit 0; in FINISHING (orderly stop) it exits
 * 0 at once: it has nothing to finish.
 *
 * Every second (or every cleanResourceInterval if shorter) it measures the
 * disk usage of the CommitLog and consumequeue paths and publishes it with
 * the disk_full bits: above diskSpaceWarningLevelRatio the writer refuses
 * new messages (SHMQ_E_DISK_FULL), until the usage falls to
 * diskSpaceCleanForciblyRatio or below.
 *
 * Every cleanResourceInterval ms (at once after start, and at once for a
 * manual request) one run: it deletes CommitLog segments when the hour is
 * in deleteWhen, when the usage is above diskMaxUsedSpaceRatio, or for the
 * 20 runs after a manual request (`shmqctl clean`) — expired ones
 * (fileReservedTime, by file mtime) or, above diskSpaceCleanForciblyRatio
 * with cleanFileForciblyEnable, any but the newest; never one that is not
 * yet dispatched and flushed.  Then, when
 * the CommitLog minimum moved, ConsumeQueue files and index files wholly
 * below it, and each queue's min_offset.
 *
 * Owns: the control block's `min` (raised only), the queue table's
 * min_offset (raised only, with the dispatcher), the cleaner section
 * (disk usage, disk_full, deleted_seq, the last run's report, manual_done).
 *
 * Killed at any instruction: files are only unlinked, one at a time, and
 * everything published is derived again from the files by the next run:
 * a restarted cleaner re-measures the disk and runs the ConsumeQueue and
 * index pass for the current minimum once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "shm/ctl.h"
#include "shmq/errors.h"
#include "worker.h"

#define CHECK_MS_MAX  1000 /* disk usage is measured at least this often */
#define WARN_EVERY_MS 10000

typedef struct cleaner {
    shmq_worker_t *w;
    const shmq_config_t *cfg;
    shmq_ctl_block_t *blk;
    shmq_ctl_cleaner_t *cs;
    char cl_dir[PATH_MAX];
    char cq_dir[PATH_MAX + 16];
    size_t cq_file_size;
    int check_ms;          /* disk check period */
    int64_t next_check_ms; /* monotonic */
    int64_t next_run_ms;   /* monotonic */
    int cl_pct, cq_pct;    /* last measured usage, negative unknown */
    uint32_t full;         /* disk_full bits as last published */
    int64_t cq_done_min;   /* CommitLog minimum of the last complete ConsumeQueue/index pass */
    uint32_t manual_seen;  /* the last manual request taken */
    int manual_runs;       /* runs a manual request still enables */
    int64_t warn_ms;       /* rate limit of repeated warnings */
    /* one ConsumeQueue pass */
    int64_t pass_min;
    int pass_deleted;
    int pass_errors;
} cleaner_t;

static void warn_limited(cleaner_t *c, const char *what, int rc)
{
    int64_t now = shmq_mono_ms();
    if (now - c->warn_ms < WARN_EVERY_MS) {
        return;
    }
    c->warn_ms = now;
    shmq_log(SHMQ_LOG_WARN, "%s: %s", what,
             shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
}

/* ---- disk usage -------------------------------------------------------------------- */

static void check_disk(cleaner_t *c)
{
    shmq_error_clear();
    c->cl_pct = shmq_clean_disk_used_pct(c->cl_dir);
    c->cq_pct = shmq_clean_disk_used_pct(c->cq_dir);
    if (c->cq_pct < 0) {
        c->cq_pct = shmq_clean_disk_used_pct(c->w->ctl.root); /* no queue yet */
    }
    if (c->cl_pct < 0) {
        warn_limited(c, "cannot measure the disk usage", c->cl_pct);
    }
    /* Relaxed: status figures, read for display. */
    atomic_store_explicit(&c->cs->used_pct, c->cl_pct < 0 ? -1 : c->cl_pct, memory_order_relaxed);
    atomic_store_explicit(&c->cs->cq_used_pct, c->cq_pct < 0 ? -1 : c->cq_pct,
                          memory_order_relaxed);
    atomic_store_explicit(&c->cs->checked_ms, shmq_now_ms(), memory_order_relaxed);
    uint32_t full = shmq_clean_full_flags(c->cfg, c->cl_pct, c->cq_pct, c->full);
    if (full == c->full) {
        return;
    }
    /* Release: the writer that sees the flag also sees the usage behind it. */
    atomic_store_explicit(&c->cs->disk_full, full, memory_order_release);
    if (full) {
        shmq_log(SHMQ_LOG_ERROR,
                 "disk full: %s at %d%% (consumequeue path %d%%) is above "
                 "diskSpaceWarningLevelRatio %d%%: new messages are refused",
                 c->cl_dir, c->cl_pct, c->cq_pct, c->cfg->disk_space_warning_level_ratio);
    } else {
        shmq_log(SHMQ_LOG_INFO,
                 "disk usage %d%% (consumequeue path %d%%) is at or below "
                 "diskSpaceCleanForciblyRatio %d%%: taking new messages again",
                 c->cl_pct, c->cq_pct, c->cfg->disk_space_clean_forcibly_ratio);
    }
    c->full = full;
}

/* ---- one run -------------------------------------------------------------------------- */

/*
 * CommitLog bytes that may be deleted: dispatched and flushed.  Not bound by
 * `indexed`: index entries of deleted records are worthless, and the indexer
 * skips what was deleted before it got there (a stuck indexer must not keep
 * a full disk full).
 */
static int64_t delete_bound(const cleaner_t *c)
{
    const shmq_ctl_block_t *b = c->blk;
    int64_t bound = shmq_ctl_load(&b->dispatched);
    int64_t flushed = shmq_ctl_load(&b->flushed);
    return flushed < bound ? flushed : bound;
}

/* Raise a queue's published minimum (CAS: the dispatcher raises it too). */
static void raise_min_offset(shmq_ctl_queue_t *e, int64_t min)
{
    int64_t cur = atomic_load_explicit(&e->min_offset, memory_order_relaxed);
    /* Release: pairs with consumers' acquire load of the minimum. */
    while (cur < min &&
           !atomic_compare_exchange_weak_explicit(&e->min_offset, &cur, min, memory_order_release,
                                                  memory_order_relaxed)) {
    }
}

static int clean_queue(const char *topic, int32_t queue_id, void *arg)
{
    cleaner_t *c = arg;
    shmq_ctl_queue_t *e = shmq_ctl_queue_find(&c->w->ctl, topic, strlen(topic), queue_id);
    /* Acquire: the units below the published max are complete. */
    int64_t max = e ? atomic_load_explicit(&e->max_offset, memory_order_acquire) : -1;
    /* Acquire: a topic deleted meanwhile (the dispatcher bumps it before resetting the
     * offsets) must not get the old queue's minimum. */
    uint32_t inc = e ? atomic_load_explicit(&e->incarnation, memory_order_acquire) : 0;
    shmq_clean_cq_result_t res;
    shmq_error_clear();
    int rc = shmq_clean_consume_queue(c->w->ctl.root, topic, queue_id, c->cq_file_size, c->pass_min,
                                      max, &res);
    if (rc < 0) {
        c->pass_errors++;
        char what[PATH_MAX];
        snprintf(what, sizeof(what), "cleaning consume queue %s/%d", topic, queue_id);
        warn_limited(c, what, rc);
        return c->w->stop ? 1 : 0;
    }
    c->pass_deleted += res.deleted;
    if (e && atomic_load_explicit(&e->incarnation, memory_order_acquire) == inc) {
        if (max >= 0 && res.min_offset > max) {
            res.min_offset = max;
        }
        raise_min_offset(e, res.min_offset);
    }
    return c->w->stop ? 1 : 0;
}

static int local_hour(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    return tm.tm_hour;
}

/* One cleaning run; manual_req is the request it serves (0: none).  Returns files deleted. */
static int64_t run(cleaner_t *c, uint32_t manual_req)
{
    shmq_ctl_block_t *b = c->blk;
    bool manual = c->manual_runs > 0;
    shmq_clean_decision_t d;
    shmq_clean_decide(c->cfg, c->cl_pct, c->cq_pct, local_hour(), manual, &d);
    shmq_clean_last_t last = {.reason = d.reason, .time_ms = shmq_now_ms()};
    int64_t min = shmq_ctl_load(&b->min);
    if (d.run) {
        if (manual) {
            c->manual_runs--;
        }
        int64_t bound = delete_bound(c);
        shmq_clean_cl_args_t a = {
            .dir = c->cl_dir,
            .seg_size = (size_t)c->cfg->mapped_file_size_commit_log,
            .now_ms = shmq_now_ms(),
            .reserved_ms = (int64_t)c->cfg->file_reserved_time * 3600 * 1000,
            .force = d.force,
            .bound = bound,
            .batch_max = c->cfg->delete_file_batch_max,
            .interval_ms = c->cfg->delete_commit_log_files_interval,
        };
        int64_t new_min = min;
        shmq_error_clear();
        int rc = shmq_clean_commitlog(&a, &new_min);
        if (rc < 0) {
            warn_limited(c, "deleting CommitLog segments", rc);
        } else {
            last.commitlog = rc;
        }
        if (new_min > min) {
            /* Release inside publish: the segments below it are unlinked. */
            shmq_ctl_publish(&b->min, new_min);
            min = new_min;
        }
        atomic_fetch_add_explicit(&c->cs->runs, 1, memory_order_relaxed);
        if (rc == 0 && d.clean_immediately) {
            shmq_error_set(-ENOSPC,
                           "disk at %d%%, but no CommitLog segment could be deleted (only the "
                           "newest is left, or the rest is not yet dispatched and flushed below "
                           "%lld, or not expired and cleanFileForciblyEnable is false)",
                           c->cl_pct, (long long)bound);
            warn_limited(c, "cleaning", -ENOSPC);
        }
    }
    if (min <= 0) {
        c->cq_done_min = min; /* nothing lies below the start of the log */
    }
    if (min != c->cq_done_min && !c->w->stop) {
        c->pass_min = min;
        c->pass_deleted = 0;
        c->pass_errors = 0;
        shmq_clean_foreach_queue_dir(c->w->ctl.root, clean_queue, c);
        last.consumequeue = c->pass_deleted;
        shmq_error_clear();
        int rc = shmq_clean_index_files(c->w->ctl.root, min);
        if (rc < 0) {
            c->pass_errors++;
            warn_limited(c, "deleting index files", rc);
        } else {
            last.index = rc;
        }
        if (c->pass_errors == 0 && !c->w->stop) {
            c->cq_done_min = min; /* otherwise the next run tries again */
        }
    }
    int64_t total = (int64_t)last.commitlog + last.consumequeue + last.index;
    last.min = min;
    if (total > 0) {
        /* Release: processes that see the new sequence find the files gone. */
        atomic_fetch_add_explicit(&c->cs->deleted_seq, 1, memory_order_release);
        /* Those that sleep let go of the files now rather than at their next timeout. */
        shmq_ctl_wake(&c->w->ctl.wake->writer_wake);
        shmq_ctl_wake(&b->flusher_wake);
        shmq_ctl_wake(&b->dispatcher_wake);
        shmq_ctl_wake(&c->w->ctl.wake->consumer_wake);
        shmq_log(SHMQ_LOG_INFO,
                 "deleted %d CommitLog segment(s), %d ConsumeQueue file(s), %d index file(s) "
                 "(%s; disk at %d%%): the CommitLog starts at %lld",
                 last.commitlog, last.consumequeue, last.index, shmq_clean_reason_name(last.reason),
                 c->cl_pct, (long long)min);
    }
    if (total > 0 || manual_req != 0) {
        if (!d.run) {
            last.reason = SHMQ_CLEAN_NONE;
        }
        shmq_clean_last_publish(c->cs, &last);
    }
    if (manual_req != 0) {
        /* Release: shmqctl clean reads the report after seeing its request done. */
        atomic_store_explicit(&c->cs->manual_done, manual_req, memory_order_release);
    }
    if (last.commitlog > 0) {
        check_disk(c); /* space came back: lift the watermark without waiting */
    }
    return total;
}

/* ---- worker operations ------------------------------------------------------------------- */

static int64_t cleaner_work(shmq_worker_t *w, void *state)
{
    (void)w;
    cleaner_t *c = state;
    int64_t now = shmq_mono_ms();
    /* Acquire: pairs with shmqctl's release of the request. */
    uint32_t req = atomic_load_explicit(&c->cs->manual_request, memory_order_acquire);
    uint32_t serve = 0;
    if (req != c->manual_seen) {
        c->manual_seen = req;
        c->manual_runs = SHMQ_CLEAN_MANUAL_RUNS;
        serve = req;
        shmq_log(SHMQ_LOG_INFO, "manual cleaning requested: the next %d runs delete expired files",
                 SHMQ_CLEAN_MANUAL_RUNS);
    }
    if (now >= c->next_check_ms || serve) {
        check_disk(c);
        c->next_check_ms = now + c->check_ms;
    }
    int64_t n = 0;
    if (now >= c->next_run_ms || serve) {
        n = run(c, serve);
        c->next_run_ms = shmq_mono_ms() + c->cfg->clean_resource_interval;
    }
    return n;
}

static bool request_pending(void *arg)
{
    cleaner_t *c = arg;
    /* Relaxed: only a hint to skip the sleep; work() loads it again with acquire. */
    return atomic_load_explicit(&c->cs->manual_request, memory_order_relaxed) != c->manual_seen;
}

static void cleaner_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    (void)w;
    cleaner_t *c = state;
    int64_t now = shmq_mono_ms();
    int64_t due = c->next_check_ms < c->next_run_ms ? c->next_check_ms : c->next_run_ms;
    if (due - now < timeout_ms) {
        timeout_ms = due > now ? (int)(due - now) : 0;
    }
    if (timeout_ms > 0) {
        shmq_ctl_sleep(&c->cs->wake, request_pending, c, timeout_ms);
    }
}

static bool cleaner_done(shmq_worker_t *w, void *state)
{
    (void)state;
    /* Acquire: pairs with the master's release store of the state. */
    return atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire) ==
           SHMQ_STATE_FINISHING;
}

static int cleaner_init(shmq_worker_t *w, void **state)
{
    cleaner_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    c->w = w;
    c->cfg = w->cfg;
    c->blk = w->ctl.blk;
    c->cs = &w->ctl.blk->cleaner;
    shmq_config_t cfg = *w->cfg;
    snprintf(cfg.store_path_root_dir, sizeof(cfg.store_path_root_dir), "%s", w->ctl.root);
    shmq_config_commitlog_dir(&cfg, c->cl_dir, sizeof(c->cl_dir));
    snprintf(c->cq_dir, sizeof(c->cq_dir), "%s/consumequeue", w->ctl.root);
    c->cq_file_size = shmq_cq_file_size((size_t)c->cfg->mapped_file_size_consume_queue);
    c->check_ms = c->cfg->clean_resource_interval < CHECK_MS_MAX ? c->cfg->clean_resource_interval
                                                                 : CHECK_MS_MAX;
    if (c->check_ms <= 0) {
        c->check_ms = CHECK_MS_MAX;
    }
    c->cq_done_min = -1; /* one ConsumeQueue/index pass for the current minimum */
    /* Relaxed: our own fields, published by earlier runs of this worker. */
    c->full = atomic_load_explicit(&c->cs->disk_full, memory_order_relaxed);
    c->manual_seen = atomic_load_explicit(&c->cs->manual_done, memory_order_relaxed);
    c->warn_ms = -WARN_EVERY_MS;
    int64_t now = shmq_mono_ms();
    c->next_check_ms = now;
    c->next_run_ms = now;
    shmq_log(SHMQ_LOG_INFO,
             "watching %s: fileReservedTime %d h, deleteWhen \"%s\", ratios: max used %d%%, "
             "clean forcibly %d%%%s, warning %d%%",
             c->cl_dir, c->cfg->file_reserved_time, c->cfg->delete_when,
             c->cfg->disk_max_used_space_ratio, c->cfg->disk_space_clean_forcibly_ratio,
             c->cfg->clean_file_forcibly_enable ? "" : " (disabled)",
             c->cfg->disk_space_warning_level_ratio);
    *state = c;
    return 0;
}

static int cleaner_finish(shmq_worker_t *w, void *state)
{
    (void)w;
    free(state);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = cleaner_init,
        .work = cleaner_work,
        .idle = cleaner_idle,
        .finish = cleaner_finish,
        .done = cleaner_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_CLEANER, &ops);
}
