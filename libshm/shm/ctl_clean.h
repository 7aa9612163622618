/*
 * The cleaner's shared state (shmq_ctl_cleaner_t in the control block):
 * the report of the last cleaning, which shmq-cleaner publishes and
 * `shmqctl status` / `shmqctl clean` read, and the count of deletions
 * every process that maps store files watches to unmap removed segments
 * (clean.h, shmq_clean_drop_removed).
 */
#ifndef SHMQ_CTL_CLEAN_H
#define SHMQ_CTL_CLEAN_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/ctl.h"

/* ---- the last cleaning (status, shmqctl clean) ----------------------------------------- */

typedef struct shmq_clean_last {
    uint32_t reason; /* enum shmq_clean_reason */
    int64_t time_ms; /* wall clock, 0: none yet */
    int32_t commitlog;
    int32_t consumequeue;
    int32_t index;
    int64_t min; /* CommitLog minimum after the run */
} shmq_clean_last_t;

/* Cleaner: publish the last run's report (seqlock; single writer). */
void shmq_clean_last_publish(shmq_ctl_cleaner_t *cs, const shmq_clean_last_t *last);

/* Anyone: a consistent copy of the last report; -EAGAIN if it kept changing (retry). */
int shmq_clean_last_read(const shmq_ctl_cleaner_t *cs, shmq_clean_last_t *out);

/*
 * True once when the cleaner deleted files since *seen (its deleted_seq
 * moved; *seen is updated).  One acquire load, inline: cheap enough for every loop.
 */
static inline bool shmq_clean_changed(const shmq_ctl_t *ctl, uint64_t *seen)
{
    /* Acquire: pairs with the cleaner's release after the unlinks it counts. */
    uint64_t seq = atomic_load_explicit(&ctl->blk->cleaner.deleted_seq, memory_order_acquire);
    if (seq == *seen) {
        return false;
    }
    *seen = seq;
    return true;
}

#endif
