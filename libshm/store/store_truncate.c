/*
 * Cutting an open store's log at an offset and everything derived from it
 * (shmq_store_truncate, store.h): what a store that was a master does when it
 * comes back as a slave and its log went beyond the last offset it shares
 * with the new master (docs/recovery.md "Divergent tail").
 *
 * The order is chosen so that a crash at any step leaves a store whose next
 * recovery (abnormal: `abort` stays all along) ends with a log that is a
 * prefix of the one before the cut and at least off long, so that the cut
 * is simply computed and made again:
 *   1. the checkpoint's confirmPhyOffset goes down to off, durably: recovery
 *      never takes a shorter log for "corrupt below the checkpoint";
 *   2. ConsumeQueue units of records at or after off are dropped, flushed, and
 *      so are the index entries of those records (with messageIndexEnable);
 *   3. the CommitLog is cut: segments after off's are unlinked from the
 *      newest (the rest stays contiguous), the rest of off's segment is
 *      zeroed and msynced (a torn zeroing is a torn tail for recovery);
 *   4. the checkpoint is written again from the new positions.
 * The index entries go here, not when the indexer starts: a slave's
 * ha-receiver may have replicated the new master's records to those offsets
 * by then, and the indexer, which resumes from its newest entry below the
 * log's end, would take the old entries for the new records'.
 */
#include <limits.h>
#include <string.h>

#include "shmq/errors.h"
#include "store/index_service.h"
#include "store/store.h"

typedef struct cut_ctx {
    int64_t off;
    int err;
} cut_ctx_t;

static int cut_queue(shmq_queue_t *q, void *arg)
{
    cut_ctx_t *c = arg;
    if (q->cq.max_phys_offset > c->off) {
        int rc = shmq_cq_truncate_dirty(&q->cq, c->off);
        if (rc == 0) {
            rc = shmq_cq_flush(&q->cq, 0);
        }
        if (rc < 0) {
            c->err = shmq_error_wrap(rc, "cutting consume queue %s/%d at %lld", q->cq.topic,
                                     q->cq.queue_id, (long long)c->off);
            return 1;
        }
    }
    q->next_offset = shmq_cq_max_offset(&q->cq);
    return 0;
}

/* Remove the index entries of records at or after off (step 2), msynced. */
static int cut_index(shmq_store_t *st, int64_t off)
{
    if (!st->cfg.message_index_enable) {
        return 0;
    }
    char dir[PATH_MAX];
    shmq_index_dir(&st->cfg, dir, sizeof(dir));
    shmq_index_service_t svc;
    int rc = shmq_index_open(&svc, dir, st->cfg.max_hash_slot_num, st->cfg.max_index_num, false);
    if (rc < 0) {
        return shmq_error_wrap(rc, "opening the index files in %s", dir);
    }
    shmq_index_resume_report_t rep;
    /* The resume of a log that ends at off: entries past it go, the newest below is checked
     * against its record (still there). */
    rc = shmq_index_resume(&svc, &st->cl, off, shmq_commitlog_min_offset(&st->cl), &rep);
    if (rc == 0) {
        rc = shmq_index_flush(&svc, NULL);
    }
    shmq_index_close(&svc);
    if (rc < 0) {
        return shmq_error_wrap(rc, "removing the index entries at or after %lld", (long long)off);
    }
    return 0;
}

int shmq_store_truncate(shmq_store_t *st, int64_t off)
{
    if (st->flags & (SHMQ_STORE_READONLY | SHMQ_STORE_ATTACH)) {
        return shmq_error_set(SHMQ_E_ARG, "store %s: truncate needs the store open for writing",
                              st->root);
    }
    if (off < shmq_commitlog_min_offset(&st->cl) || off > st->cl.wrote_pos) {
        return shmq_error_set(
            SHMQ_E_RANGE, "store %s: cannot cut its log at %lld (it holds %lld to %lld)", st->root,
            (long long)off, (long long)shmq_commitlog_min_offset(&st->cl),
            (long long)st->cl.wrote_pos);
    }
    if (off == st->cl.wrote_pos) {
        return 0;
    }
    if (st->cp.confirm_phys > off) {
        st->cp.confirm_phys = off;
        int rc = shmq_checkpoint_write(st->root, &st->cp);
        if (rc < 0) {
            return shmq_error_wrap(rc, "lowering the checkpoint to %lld", (long long)off);
        }
    }
    cut_ctx_t c = {.off = off};
    shmq_store_foreach_queue(st, cut_queue, &c);
    if (c.err < 0) {
        return c.err;
    }
    int rc = cut_index(st, off);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_commitlog_truncate(&st->cl, off);
    if (rc < 0) {
        return shmq_error_wrap(rc, "cutting the CommitLog at %lld", (long long)off);
    }
    st->dispatched_pos = off;
    return shmq_store_flush(st);
}
