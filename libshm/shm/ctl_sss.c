/*
 * The sync-state set a master in controller mode acknowledges by
 * (allAckInSyncStateSet; ctl.h, shmq_ctl_controller_t): the ctrl-agent
 * publishes it under a seqlock, the ha-sender and SYNC_MASTER producers
 * read a consistent copy.  Several fields (members, count, epoch) change
 * together, so a reader that saw half of a change could wait for a member
 * that left or, worse, miss one that joined: the seqlock rules that out.
 */
#include <errno.h>
#include <stdint.h>

#include "base/clock.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

#define SSS_SPINS 1000

void shmq_ctl_sss_publish(shmq_ctl_controller_t *cs, const shmq_ctl_sss_t *set)
{
    uint32_t s = atomic_load_explicit(&cs->sss_seq, memory_order_relaxed);
    atomic_store_explicit(&cs->sss_seq, s + 1, memory_order_relaxed);
    /* Release fence: the odd seq is visible before any field changes. */
    atomic_thread_fence(memory_order_release);
    uint32_t count = set->count > SHMQ_CTL_SSS_MAX ? SHMQ_CTL_SSS_MAX : set->count;
    for (uint32_t i = 0; i < SHMQ_CTL_SSS_MAX; i++) {
        atomic_store_explicit(&cs->sss_ids[i], i < count ? set->ids[i] : 0, memory_order_relaxed);
    }
    atomic_store_explicit(&cs->sss_count, count, memory_order_relaxed);
    atomic_store_explicit(&cs->sss_epoch, set->epoch, memory_order_relaxed);
    atomic_store_explicit(&cs->sss_master, set->master, memory_order_relaxed);
    atomic_store_explicit(&cs->sss_gen,
                          atomic_load_explicit(&cs->sss_gen, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* Release: the fields are complete before readers see an even seq. */
    atomic_store_explicit(&cs->sss_seq, s + 2, memory_order_release);
}

int shmq_ctl_sss_copy(const shmq_ctl_controller_t *cs, shmq_ctl_sss_t *out)
{
    /* The block may be mapped read-only: loads only, through non-const atomics. */
    shmq_ctl_controller_t *c = (shmq_ctl_controller_t *)(uintptr_t)cs;
    for (int round = 0; round < SSS_SPINS; round++) {
        /* Acquire: the fields read below are not older than this seq. */
        uint32_t s1 = atomic_load_explicit(&c->sss_seq, memory_order_acquire);
        if ((s1 & 1) == 0) {
            uint32_t count = atomic_load_explicit(&c->sss_count, memory_order_relaxed);
            out->count = count > SHMQ_CTL_SSS_MAX ? SHMQ_CTL_SSS_MAX : count;
            out->epoch = atomic_load_explicit(&c->sss_epoch, memory_order_relaxed);
            out->master = atomic_load_explicit(&c->sss_master, memory_order_relaxed);
            out->gen = atomic_load_explicit(&c->sss_gen, memory_order_relaxed);
            for (uint32_t i = 0; i < SHMQ_CTL_SSS_MAX; i++) {
                out->ids[i] = atomic_load_explicit(&c->sss_ids[i], memory_order_relaxed);
            }
            /* Acquire fence: the copy completes before seq is read again. */
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&c->sss_seq, memory_order_relaxed) == s1) {
                return out->count > 0 ? 0 : SHMQ_E_NOT_FOUND;
            }
        }
        shmq_cpu_relax();
    }
    return shmq_error_set(-EAGAIN, "the sync-state set stays mid-change");
}

bool shmq_ctl_sss_has(const shmq_ctl_sss_t *set, int64_t id)
{
    for (uint32_t i = 0; i < set->count && i < SHMQ_CTL_SSS_MAX; i++) {
        if (set->ids[i] == id) {
            return true;
        }
    }
    return false;
}
