/*
 * fence_store: fence a running store as a failed CommitLog flush does, for
 * tests of what producers and workers answer once the store is fenced
 * (without having to make a disk fail).
 *
 *   fence_store --store DIR [--no-wake]
 *
 * Attaches to the control block read-write and calls shmq_ctl_fence() with
 * -EIO for the CommitLog, as a flusher whose flush failed does: the first
 * fence wins, the master is woken (it stops the store) and so is every
 * producer waiting on flushed.  --no-wake sets the fence word the same way
 * but wakes only the master: producers waiting on flushed must notice the
 * fence by themselves.  No fence file is written.  Prints "fenced <error>"
 * and exits 0, 1 on error, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "fence.h"
#include "shmq/errors.h"

int main(int argc, char **argv)
{
    bool wake = true;
    if (argc == 4 && strcmp(argv[3], "--no-wake") == 0) {
        wake = false;
    } else if (argc != 3) {
        argc = 0;
    }
    if (argc == 0 || strcmp(argv[1], "--store") != 0) {
        fprintf(stderr, "usage: fence_store --store DIR [--no-wake]\n");
        return 2;
    }
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(argv[2], 0, &ctl);
    if (rc < 0) {
        fprintf(stderr, "fence_store: cannot attach to %s: %s: %s\n", argv[2], shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    shmq_ctl_block_t *b = ctl.blk;
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
