/*
 * The cleaner's shared state in the control block (see ctl_clean.h): the
 * report of its last run, published under a seqlock, and the deletion
 * counter every process that maps store files watches.
 */
#include "shm/ctl_clean.h"

#include <errno.h>
#include <sched.h>

/* ---- the last cleaning ---------------------------------------------------------------------- */

void shmq_clean_last_publish(shmq_ctl_cleaner_t *cs, const shmq_clean_last_t *last)
{
    /* Relaxed: the cleaner is the only writer of the sequence. */
    uint32_t seq = atomic_load_explicit(&cs->last_seq, memory_order_relaxed);
    atomic_store_explicit(&cs->last_seq, seq + 1, memory_order_relaxed);
    /* Release fence: readers that see a field below also see the odd sequence. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&cs->last_reason, last->reason, memory_order_relaxed);
    atomic_store_explicit(&cs->last_time_ms, last->time_ms, memory_order_relaxed);
    atomic_store_explicit(&cs->last_commitlog, last->commitlog, memory_order_relaxed);
    atomic_store_explicit(&cs->last_consumequeue, last->consumequeue, memory_order_relaxed);
    atomic_store_explicit(&cs->last_index, last->index, memory_order_relaxed);
    atomic_store_explicit(&cs->last_min, last->min, memory_order_relaxed);
    /* Release: the fields are complete before the even sequence. */
    atomic_store_explicit(&cs->last_seq, seq + 2, memory_order_release);
}

int shmq_clean_last_read(const shmq_ctl_cleaner_t *cs, shmq_clean_last_t *out)
{
    for (int tries = 0; tries < 1000; tries++) {
        /* Acquire: pairs with the release of the even sequence. */
        uint32_t s1 = atomic_load_explicit(&cs->last_seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        out->reason = atomic_load_explicit(&cs->last_reason, memory_order_relaxed);
        out->time_ms = atomic_load_explicit(&cs->last_time_ms, memory_order_relaxed);
        out->commitlog = atomic_load_explicit(&cs->last_commitlog, memory_order_relaxed);
        out->consumequeue = atomic_load_explicit(&cs->last_consumequeue, memory_order_relaxed);
        out->index = atomic_load_explicit(&cs->last_index, memory_order_relaxed);
        out->min = atomic_load_explicit(&cs->last_min, memory_order_relaxed);
        /* Acquire fence: the field loads happen before the second sequence load. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&cs->last_seq, memory_order_relaxed) == s1) {
            return 0;
        }
    }
    return -EAGAIN;
}
