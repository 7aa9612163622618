/*
 * shmq-writer: the restart repair.  A writer killed mid-batch left records
 * in [writer_journal, wrote) whose ring entries may be unanswered: they are
 * matched with the entries still in the rings (journal.h) and answered
 * from what was stored, never appended again; the bytes a killed append
 * left after wrote are zeroed.  See the top of writer.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shm/journal.h"
#include "shm/ring.h"
#include "shmq/errors.h"
#include "writer.h"
/* ---- restart repair ---------------------------------------------------------------------- */

/*
 * Restart: answer the ring units appended before the kill.  Units at the
 * head are consumed; one behind a unit that was not appended (it failed, or
 * will be refused) is remembered and skipped when the head reaches it.
 * Refusals are answered at once (the normal path would refuse them again;
 * a second answer finds the slot no longer PENDING for that request).
 */
static int repair_rings(writer_t *wr)
{
    size_t completed = 0;
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        shmq_ctl_ring_t *r = &wr->blk->rings[i];
        if (wr_ring_at(wr, i) == NULL) {
            continue;
        }
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        uint64_t tail;
        if (wr_ring_tail(wr, i, head, &tail) != 0) {
            continue; /* nothing we can trust to match: the normal path judges it */
        }
        uint64_t pos = head;
        bool prefix = true;
        while (pos != tail) {
            uint64_t adv = 0;
            wr->ndone = 0;
            int rc = wr_take_unit(wr, i, pos, tail, true, &adv);
            if (rc < 0) {
                return rc;
            }
            for (size_t k = 0; k < wr->ndone; k++) {
                wr_complete_slot(wr, &wr->done[k]);
            }
            bool refused = wr->ndone > 0;
            wr->ndone = 0;
            if (rc == UNIT_DISCARD || adv == 0) {
                break;
            }
            if (rc == UNIT_STOP) {
                prefix = false; /* not appended: later units may have been */
            } else if (!refused && wr->msgs[0].kind == SHMQ_RING_KIND_MSG) {
                completed++;
                if (!prefix) {
                    wr_skip_t *n = realloc(wr->skips, (wr->nskips + 1) * sizeof(*n));
                    if (n == NULL) {
                        return -ENOMEM;
                    }
                    wr->skips = n;
                    wr->skips[wr->nskips++] = (wr_skip_t){.ring = i, .pos = pos, .len = adv};
                }
            }
            if (prefix) {
                head = pos + adv;
            }
            pos += adv;
        }
        if (head != atomic_load_explicit(&r->head, memory_order_relaxed)) {
            /* Release: the entries are answered before their bytes are given back. */
            atomic_store_explicit(&r->head, head, memory_order_release);
            atomic_store_explicit(&wr->maps[i].r->head, head, memory_order_release);
            shmq_ctl_wake(&wr->maps[i].r->producer_wake);
        }
    }
    if (completed > 0) {
        shmq_log(SHMQ_LOG_INFO,
                 "answered %zu ring units appended before the restart (%zu out of "
                 "order)",
                 completed, wr->nskips);
    }
    return 0;
}

int wr_repair(writer_t *wr)
{
    int64_t wrote = wr->cl.wrote_pos;
    /* Acquire: pairs with the release store of the killed writer (or the master). */
    int64_t journal = atomic_load_explicit(&wr->blk->writer_journal, memory_order_acquire);
    if (journal < wrote && journal >= shmq_commitlog_min_offset(&wr->cl) &&
        wrote - journal <= wr->repair_bound) {
        int64_t n = shmq_journal_scan(&wr->journal, &wr->cl, wr->ctl, journal, wrote);
        if (n < 0) {
            return (int)n;
        }
        if (wr->journal.stop_err) {
            shmq_log(SHMQ_LOG_ERROR, "journal scan stopped at %lld: %s",
                     (long long)wr->journal.stop_at, shmq_strerror(wr->journal.stop_err));
        }
        if (wr->journal.last_store_ts > wr->cl.last_store_ts) {
            wr->cl.last_store_ts = wr->journal.last_store_ts;
        }
        shmq_log(SHMQ_LOG_INFO, "journal [%lld, %lld): %lld records of the interrupted batch",
                 (long long)journal, (long long)wrote, (long long)n);
    } else if (journal != wrote) {
        shmq_log(SHMQ_LOG_WARN, "journal %lld does not describe one batch before %lld: no scan",
                 (long long)journal, (long long)wrote);
    }
    int64_t zeroed = shmq_journal_zero_stale(&wr->cl, wrote, wr->repair_bound);
    if (zeroed > 0) {
        shmq_log(SHMQ_LOG_INFO, "zeroed %lld stale bytes after %lld", (long long)zeroed,
                 (long long)wrote);
    }
    int rc = repair_rings(wr);
    shmq_journal_free(&wr->journal);
    return rc;
}
