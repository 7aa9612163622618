/*
 * fence_store: fence a running store as a failed CommitLog flush does, for
 * tests of what producers and workers answer once the store is fenced
 * (without having to make a disk fail).
 *
 *   fence_store --store DIR [--no-wake] [--pending N]
 *
 * Attaches to the control block read-write and calls shmq_ctl_fence() with
 * -EIO for the CommitLog, as a flusher whose flush failed does: the first
 * fence wins, the master is woken (it stops the store) and so is every
 * producer waiting on flushed.  --no-wake sets the fence word the same way
 * but wakes only the master: producers waiting on flushed must notice the
 * fence by themselves.  --pending N waits first (up to 30 s) until N
 * producer rings hold entries the writer has not given back yet (tail !=
 * head): entries published, not yet answered.  No fence file is written.
 * Prints "fenced <error>" and exits 0, 1 on error (or when the rings did not
 * fill in time: then nothing is fenced), 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "fence.h"
#include "shmq/errors.h"

#define PENDING_WAIT_MS 30000

/* Rings served by the writer whose published entries it has not given back yet. */
static int rings_pending(shmq_ctl_block_t *b)
{
    int n = 0;
    for (uint32_t i = 0; i < b->hdr.ring_count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *r = &b->rings[i];
        /* Acquire: state and counters as their writers published them (a snapshot). */
        uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
        if ((st == SHMQ_RING_ACTIVE || st == SHMQ_RING_ORPHANED) &&
            atomic_load_explicit(&r->tail, memory_order_acquire) !=
                atomic_load_explicit(&r->head, memory_order_acquire)) {
            n++;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *store = NULL;
    bool wake = true;
    int pending = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store = argv[++i];
        } else if (strcmp(argv[i], "--no-wake") == 0) {
            wake = false;
        } else if (strcmp(argv[i], "--pending") == 0 && i + 1 < argc) {
            pending = atoi(argv[++i]);
        } else {
            store = NULL;
            break;
        }
    }
    if (store == NULL) {
        fprintf(stderr, "usage: fence_store --store DIR [--no-wake] [--pending N]\n");
        return 2;
    }
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(store, 0, &ctl);
    if (rc < 0) {
        fprintf(stderr, "fence_store: cannot attach to %s: %s: %s\n", store, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    shmq_ctl_block_t *b = ctl.blk;
    for (int waited = 0; rings_pending(b) < pending; waited += 10) {
        if (waited >= PENDING_WAIT_MS) {
            fprintf(stderr, "fence_store: %d rings with pending entries, not %d: not fenced\n",
                    rings_pending(b), pending);
            shmq_ctl_detach(&ctl);
            return 1;
        }
        usleep(10000);
    }
    if (wake) {
        shmq_ctl_fence(b, SHMQ_FENCE_COMMITLOG, -EIO);
    } else {
        int32_t expect = 0;
        /* Acq_rel: as shmq_ctl_fence (the first fence wins). */
        atomic_compare_exchange_strong_explicit(&b->fenced_error, &expect, -EIO,
                                                memory_order_acq_rel, memory_order_acquire);
        shmq_ctl_wake(&b->master_wake);
    }
    /* Acquire: pairs with the fencing CAS (ours, or an earlier fence's). */
    printf("fenced %d\n", atomic_load_explicit(&b->fenced_error, memory_order_acquire));
    shmq_ctl_detach(&ctl);
    return 0;
}
