/*
 * Store recovery: find the end of the valid CommitLog, cut a torn tail,
 * bring the ConsumeQueues in line with it, rebuild what they miss, and reset
 * the positions and next queue offsets.  Runs at every writable open (and in
 * `shmqctl recover`), normal after a clean stop, abnormal when `abort` exists
 * (ROCKETMQ-FACTS §13).
 *
 * Where the scan starts (proportional to what is not known to be safe,
 * PITFALLS 16): shmq's checkpoint records in confirmPhyOffset the CommitLog
 * offset below which the log is flushed and every ConsumeQueue unit is built
 * and flushed.  The scan starts at the segment holding the smaller of that
 * offset and the point ConsumeQueues are known to be built to, so records of
 * that segment below the checkpoint are checked too.  Without that offset
 * (a store written by RocketMQ) RocketMQ's own rules pick the segment: the
 * third-from-last one after a clean stop, and after a crash the newest
 * segment whose first record is older than the checkpoint's timestamps.
 *
 * What counts as the tail (PITFALLS 7, 8): the scan stops at the first record
 * that fails a check (magic, size, physical offset, body CRC, __CRC32#).  A
 * record without __CRC32# is valid by RocketMQ's rules (RocketMQ writes none
 * by default), also after records that carry it, unless its properties end
 * in a damaged __CRC32# or in a zero byte (a torn append).  At
 * or beyond the checkpoint that is a torn tail: it is zeroed and cut off.
 * Below the checkpoint it is damage to flushed, confirmed data (in the middle
 * of the log or its last records alike): recovery refuses (SHMQ_E_CORRUPT
 * naming the file and offset) unless the caller forces the cut
 * (SHMQ_STORE_FORCE, `shmqctl recover --force`); nothing acknowledged is cut
 * silently.  A checkpoint that names bytes the log never held (only zeros or
 * no file up to it) is a damaged checkpoint, reported as such and not
 * believed; nothing is cut for it.
 *
 * Durability (PITFALLS 19): after a crash the records the scan accepts may be
 * only in the page cache.  Recovery syncs the CommitLog from the scan start
 * and every ConsumeQueue before it writes the checkpoint, so nothing it
 * accepted can vanish at a later power loss once it is published.
 *
 * After a fenced run (a failed flush, fence.h) the log is read only up to the
 * recorded fence point and cut there, whatever the page cache shows past it,
 * and ConsumeQueue units past their fence point are dropped and rebuilt.  The
 * fence files are removed once that is durable.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/probes.h"
#include "store/fence.h"
#include "shmq/errors.h"
#include "store/store.h"

const char *shmq_recovery_phase_name(uint32_t phase)
{
    static const char *const names[] = {"open", "scan", "sync", "queues", "finishing"};
    return phase < sizeof(names) / sizeof(names[0]) ? names[phase] : "unknown";
}

/* Relaxed: a progress report for observers, nothing is read through it. */
#define PROGRESS(st, field, v)                                                                     \
    do {                                                                                           \
        if ((st)->progress != NULL) {                                                              \
            atomic_store_explicit(&(st)->progress->field, (v), memory_order_relaxed);              \
        }                                                                                          \
    } while (0)

/*
 * Make [from, end) of the log durable segment by segment, reporting each
 * step (a large range after a crash takes a while).  Stops early at a gap
 * (no segment): the flush of the whole log that follows reports it.
 */
static int sync_log(shmq_store_t *st, int64_t from, int64_t end)
{
    int64_t pos = from > shmq_mfq_min_offset(&st->cl.q) ? from : shmq_mfq_min_offset(&st->cl.q);
    PROGRESS(st, sync_from, from);
    PROGRESS(st, sync_to, end);
    PROGRESS(st, sync_pos, pos < end ? pos : end);
    PROGRESS(st, phase, SHMQ_RECOVERY_SYNC);
    SHMQ_PROBE(recovery, SHMQ_RECOVERY_SYNC, shmq_recovery_phase_name(SHMQ_RECOVERY_SYNC));
    while (pos < end) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&st->cl.q, pos);
        if (mf == NULL) {
            break;
        }
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        int64_t to = end < seg_end ? end : seg_end;
        int rc = shmq_mf_flush(mf, (size_t)(pos - mf->start_offset),
                               (size_t)(to - mf->start_offset), st->cl.flush_how);
        if (rc != 0) {
            return shmq_error_set(rc, "CommitLog flush from %lld to %lld failed: %s",
                                  (long long)pos, (long long)to, shmq_strerror(rc));
        }
        pos = to;
        PROGRESS(st, sync_pos, pos);
    }
    shmq_commitlog_set_positions(&st->cl, end, pos > from ? pos : from);
    return 0;
}

int64_t shmq_store_torn_window(const shmq_config_t *cfg)
{
    return (int64_t)cfg->max_message_size + SHMQ_PROPS_MAX + (1 << 20);
}

static int64_t seg_start(const shmq_store_t *st, int64_t off)
{
    int64_t seg = st->cfg.mapped_file_size_commit_log;
    return off - off % seg;
}

/*
 * Is there a valid record between a bad one at bad and the checkpoint's end?
 * Then the bad record is damage in the middle of flushed data (corruption),
 * not the end of the log.  When the gap is longer than any record, data was
 * certainly lost.  Positions are tried one by one: a record must decode with
 * every check, its physical offset field equal to its position.
 */
static bool valid_data_after(const shmq_store_t *st, int64_t bad, int64_t durable)
{
    return durable - bad > shmq_store_torn_window(&st->cfg) ||
           shmq_commitlog_record_in(&st->cl, bad + 1, durable, false);
}

typedef struct scan_start {
    int64_t start;    /* first record checked (a segment start) */
    int64_t dispatch; /* records at or after this are dispatched */
    int64_t durable;  /* below this, a bad record is corruption (0 = unknown) */
} scan_start_t;

static int queue_dispatch_floor(shmq_queue_t *q, void *arg)
{
    int64_t *floor = arg;
    if (q->rebuild) {
        floor[1] = 1; /* a queue needs rebuilding from the start of the log */
    }
    if (q->cq.max_phys_offset > floor[0]) {
        floor[0] = q->cq.max_phys_offset;
    }
    return 0;
}

/* First record of the segment at start decodes and has 0 < store time <= ts. */
static bool segment_older_than(const shmq_commitlog_t *cl, int64_t start, int64_t ts)
{
    shmq_record_t r;
    int rc = shmq_commitlog_read(cl, start, SHMQ_DECODE_CHECK_ALL, &r);
    return rc > 0 && r.store_ts != 0 && r.store_ts <= ts;
}

static scan_start_t choose_start(shmq_store_t *st, bool abnormal)
{
    scan_start_t s;
    int64_t cl_min = shmq_commitlog_min_offset(&st->cl);
    int64_t floor[2] = {0, 0};
    shmq_store_foreach_queue(st, queue_dispatch_floor, floor);
    /* ConsumeQueues are built in log order: the newest unit bounds what is built. */
    int64_t built = floor[0];
    if (floor[1] || st->rebuild_all || st->queue_count == 0) {
        built = cl_min;
    }
    s.durable = st->cp.confirm_phys;
    int64_t base;
    if (s.durable > 0) {
        base = s.durable < built ? s.durable : built;
    } else if (!abnormal) {
        /* RocketMQ's normal recovery: the third-from-last segment. */
        size_t n = st->cl.q.count;
        base = n >= 3 ? st->cl.q.segs[n - 3]->start_offset : cl_min;
        if (built < base) {
            base = built;
        }
    } else {
        /* RocketMQ's abnormal recovery: newest segment older than the checkpoint. */
        int64_t ts = shmq_checkpoint_min_ts(&st->cp);
        base = cl_min;
        for (size_t i = st->cl.q.count; ts > 0 && i-- > 0;) {
            if (segment_older_than(&st->cl, st->cl.q.segs[i]->start_offset, ts)) {
                base = st->cl.q.segs[i]->start_offset;
                break;
            }
        }
        if (built < base) {
            base = built;
        }
    }
    if (base < cl_min) {
        base = cl_min;
    }
    s.dispatch = base;
    s.start = seg_start(st, base);
    if (s.start < cl_min) {
        s.start = cl_min;
    }
    return s;
}

typedef struct truncate_ctx {
    int64_t end;
    int64_t dropped;
    int32_t touched;
    int err;
} truncate_ctx_t;

/* Drop q's units of records at or after t->end (counted in t); 1 stops the walk on an error. */
static int cut_queue_at(shmq_queue_t *q, void *arg)
{
    truncate_ctx_t *t = arg;
    int64_t before = shmq_cq_max_offset(&q->cq);
    if (q->cq.max_phys_offset > t->end) {
        int rc = shmq_cq_truncate_dirty(&q->cq, t->end);
        if (rc < 0) {
            t->err = shmq_error_wrap(rc, "cutting consume queue %s/%d at %lld", q->cq.topic,
                                     q->cq.queue_id, (long long)t->end);
            return 1;
        }
    }
    int64_t after = shmq_cq_max_offset(&q->cq);
    if (after < before) {
        t->dropped += before - after;
        t->touched++;
    }
    return 0;
}

/* Cut q at the recovered end; its next queue offset follows its last unit. */
static int truncate_queue(shmq_queue_t *q, void *arg)
{
    int stop = cut_queue_at(q, arg);
    q->next_offset = shmq_cq_max_offset(&q->cq);
    return stop;
}

static int empty_queue(shmq_queue_t *q, void *arg)
{
    int *err = arg;
    int rc = shmq_cq_truncate_dirty(&q->cq, 0);
    if (rc < 0) {
        *err = rc;
        return 1;
    }
    q->next_offset = 0;
    return 0;
}

static void format_stop(const shmq_store_t *st, int64_t pos, int err, char *out, size_t len)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&st->cl.q, pos);
    if (mf) {
        snprintf(out, len, "%s at file %s offset %lld (log offset %lld)", shmq_strerror(err),
                 mf->path, (long long)(pos - mf->start_offset), (long long)pos);
    } else {
        snprintf(out, len, "%s at log offset %lld (no segment)", shmq_strerror(err),
                 (long long)pos);
    }
}

int shmq_store_recover(shmq_store_t *st, shmq_recovery_report_t *out)
{
    shmq_recovery_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.abnormal = shmq_abort_exists(st->root);
    rep.fence_commitlog = -1;
    rep.fence_cq = -1;

    /*
     * A fenced run (fence.h): past the recorded points the page cache may show
     * bytes the disk does not hold.  ConsumeQueue units past theirs are dropped
     * (rebuilt below from the CommitLog); the CommitLog is read only up to its own.
     */
    shmq_fences_t fences;
    int frc = shmq_fence_read(st->root, &fences);
    if (frc < 0) {
        return frc;
    }
    if (fences.present[SHMQ_FENCE_CONSUMEQUEUE]) {
        rep.fence_cq = fences.durable[SHMQ_FENCE_CONSUMEQUEUE];
        truncate_ctx_t ft = {.end = rep.fence_cq};
        shmq_store_foreach_queue(st, cut_queue_at, &ft);
        if (ft.err < 0) {
            return ft.err;
        }
        rep.units_truncated += ft.dropped;
        rep.queues_touched += ft.touched;
    }
    if (fences.present[SHMQ_FENCE_COMMITLOG]) {
        rep.fence_commitlog = fences.durable[SHMQ_FENCE_COMMITLOG];
    }
    if (st->flags & SHMQ_STORE_REBUILD) {
        st->rebuild_all = true;
    }
    if (st->rebuild_all) {
        int err = 0;
        shmq_store_foreach_queue(st, empty_queue, &err);
        if (err < 0) {
            return shmq_error_wrap(err, "emptying consume queues for a rebuild");
        }
    }

    unsigned dflags = SHMQ_DECODE_CHECK_PHYS;
    if (st->cfg.check_crc_on_recover) {
        dflags |= SHMQ_DECODE_CHECK_BODY_CRC | SHMQ_DECODE_CHECK_RECORD_CRC;
    }
    scan_start_t s = choose_start(st, rep.abnormal);
    int64_t files_end = shmq_mfq_end_offset(&st->cl.q);
    int64_t limit = files_end;
    if (rep.fence_commitlog >= 0 && rep.fence_commitlog < limit) {
        limit = rep.fence_commitlog; /* nothing past the last good flush is trusted */
    }
    int64_t pos = s.start;
    int64_t last_ts = 0;
    rep.scan_from = s.start;
    PROGRESS(st, abnormal, rep.abnormal);
    PROGRESS(st, scan_from, s.start);
    PROGRESS(st, scan_to, limit > s.start ? limit : s.start);
    PROGRESS(st, scan_pos, s.start);
    PROGRESS(st, phase, SHMQ_RECOVERY_SCAN);
    SHMQ_PROBE(recovery, SHMQ_RECOVERY_SCAN, shmq_recovery_phase_name(SHMQ_RECOVERY_SCAN));
    int64_t reported = s.start;

    while (pos < limit) {
        shmq_record_t r;
        int rc = shmq_commitlog_next(&st->cl, &pos, limit, dflags, &r);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            /* next() leaves pos at the failing record (past a blank record it skipped). */
            bool zeros = rc == SHMQ_E_MAGIC && r.total_size == 0;
            if (!zeros) {
                rep.stop_error = rc;
                format_stop(st, pos, rc, rep.stop_reason, sizeof(rep.stop_reason));
            }
            break;
        }
        /* A record without __CRC32# is valid by RocketMQ's rules (RocketMQ writes none by
         * default), unless its properties show a damaged tail or zeroed bytes. */
        if (!r.has_record_crc && (dflags & SHMQ_DECODE_CHECK_RECORD_CRC)) {
            int bad = shmq_record_check_unverified(&r);
            if (bad < 0) {
                pos = r.phys_offset;
                rep.stop_error = bad;
                format_stop(st, pos, bad, rep.stop_reason, sizeof(rep.stop_reason));
                break;
            }
        }
        rep.records_checked++;
        last_ts = r.store_ts;
        if (pos - reported >= (1 << 20)) {
            reported = pos;
            PROGRESS(st, scan_pos, pos);
        }
        if (r.phys_offset >= s.dispatch) {
            int d = shmq_store_dispatch_record(st, &r);
            if (d < 0) {
                return d;
            }
            rep.units_rebuilt += d;
        }
    }
    /* A blank record that closes the last segment ends the log at that segment's end. */
    int64_t end = pos;
    rep.recovered_end = end;
    PROGRESS(st, scan_pos, limit > s.start ? limit : s.start); /* the rest is not the log's */

    /*
     * A checkpoint that names bytes the log never held (nothing but zeros, or
     * no file, from the recovered end up to it) is itself damaged: it is not
     * believed, and nothing is cut for it (there is nothing to cut).
     */
    if (end < s.durable &&
        shmq_commitlog_last_nonzero(&st->cl, end, s.durable < files_end ? s.durable : files_end) ==
            end) {
        rep.bad_checkpoint = true;
        rep.bad_checkpoint_phys = s.durable;
        s.durable = end;
    }
    /* Below the checkpoint nothing is cut unless the operator asks (--force). */
    if (end < s.durable && !(st->flags & SHMQ_STORE_FORCE)) {
        char where[300];
        format_stop(st, end, rep.stop_error ? rep.stop_error : SHMQ_E_TRUNCATED, where,
                    sizeof(where));
        if (out) {
            *out = rep;
        }
        bool more = valid_data_after(st, end, s.durable);
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "CommitLog corrupt below the checkpoint (confirmed up to %lld): %s; "
                              "%s; keep a copy of the store, run 'shmqctl verify', and only then "
                              "'shmqctl recover --force' to cut the log there",
                              (long long)s.durable, where,
                              more ? "valid records follow it"
                                   : "the damaged records had been flushed and confirmed");
    }

    if (end < s.durable) {
        rep.below_checkpoint = true;
    }

    /* Cut the tail: what a torn append can have written past the end (after a fence, all
     * that was written past the fence point, however long). */
    rep.synced_from = s.start < end ? s.start : end;
    PROGRESS(st, sync_from, rep.synced_from);
    PROGRESS(st, sync_to, end);
    PROGRESS(st, sync_pos, rep.synced_from);
    PROGRESS(st, phase, SHMQ_RECOVERY_SYNC); /* zeroing the tail syncs it first */
    SHMQ_PROBE(recovery, SHMQ_RECOVERY_SYNC, shmq_recovery_phase_name(SHMQ_RECOVERY_SYNC));
    int64_t window_end = end + shmq_store_torn_window(&st->cfg);
    if (rep.fence_commitlog >= 0) {
        window_end = files_end;
    }
    rep.old_end =
        shmq_commitlog_last_nonzero(&st->cl, end, window_end < files_end ? window_end : files_end);
    if (rep.old_end < end) {
        rep.old_end = end;
    }
    rep.truncated_bytes = rep.old_end - end;
    int rc = shmq_commitlog_truncate(&st->cl, end);
    if (rc < 0) {
        return shmq_error_wrap(rc, "cutting the CommitLog at %lld", (long long)end);
    }
    /*
     * What the scan accepted may exist only in the page cache (PITFALLS 19): the
     * flush below makes [scan start, end) durable before the checkpoint names
     * it, before the master publishes it as flushed, before a consumer reads it.
     * Pages already on disk cost nothing to sync again.
     */
    rep.synced_from = s.start < end ? s.start : end;
    shmq_commitlog_set_positions(&st->cl, end, rep.synced_from);
    rc = sync_log(st, rep.synced_from, end);
    if (rc < 0) {
        return rc;
    }

    truncate_ctx_t t = {.end = end};
    shmq_store_foreach_queue(st, truncate_queue, &t);
    if (t.err < 0) {
        return t.err;
    }
    rep.units_truncated = t.dropped;
    rep.queues_touched = t.touched;
    st->dispatched_pos = end;
    st->last_store_ts = last_ts ? last_ts : st->cp.physic_msg_ts;
    st->cl.last_store_ts = st->last_store_ts;

    for (size_t i = 0; i < st->queue_cap; i++) {
        if (st->queues[i]) {
            st->queues[i]->rebuild = false;
        }
    }
    st->rebuild_all = false;

    if (!st->cp.crc_marker || st->cp.crc_tail_from > end) {
        /* No marker (or one past the log): records from here on are shmq's own. A
         * non-empty log may hold records written without __CRC32# (by RocketMQ). */
        rep.crc_tail_reset = end > 0;
        st->cp.crc_marker = true;
        st->cp.crc_tail_from = end;
    }
    rep.crc_tail_from = st->cp.crc_tail_from;
    PROGRESS(st, phase, SHMQ_RECOVERY_QUEUES);
    SHMQ_PROBE(recovery, SHMQ_RECOVERY_QUEUES, shmq_recovery_phase_name(SHMQ_RECOVERY_QUEUES));
    rc = shmq_store_flush(st);
    if (rc < 0) {
        return rc;
    }
    if (fences.any) {
        /* Cut and rebuilt past every fence point, and durable: the fence is lifted. */
        rc = shmq_fence_clear(st->root);
        if (rc < 0) {
            return rc;
        }
    }
    rc = shmq_store_cuts_resolve(st);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_abort_create(st->root);
    if (rc < 0) {
        return shmq_error_set(rc, "cannot create %s/abort: %s", st->root, shmq_strerror(rc));
    }
    PROGRESS(st, phase, SHMQ_RECOVERY_INDEX);
    SHMQ_PROBE(recovery, SHMQ_RECOVERY_INDEX, shmq_recovery_phase_name(SHMQ_RECOVERY_INDEX));
    if (out) {
        *out = rep;
    }
    return 0;
}
