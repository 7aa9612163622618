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

#include "shm/ctl.h"
#include "store/fence.h"
#include "shm/ring.h"
#include "shmq/errors.h"

#define PENDING_WAIT_MS 30000

/* Rings served by the writer whose published entries it has not given back yet (this tool
 * runs as the store's user: it maps each ring as the writer does). */
static int rings_pending(const shmq_ctl_t *ctl)
{
    int n = 0;
    shmq_ctl_block_t *b = ctl->blk;
    for (uint32_t i = 0; i < b->hdr.ring_count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ring_map_t m;
        if (shmq_ring_map(ctl, i, &m) != 0) {
            continue;
        }
        /* Acquire: the writer's head and the producer's tail as they published them. */
        uint64_t head = atomic_load_explicit(&b->rings[i].head, memory_order_acquire);
        uint64_t tail;
        if (shmq_ring_tail(&m, b->hdr.ring_size, head, &tail) == 0 && tail != head) {
            n++;
        }
        shmq_ring_unmap(&m);
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
    for (int waited = 0; rings_pending(&ctl) < pending; waited += 10) {
        if (waited >= PENDING_WAIT_MS) {
            fprintf(stderr, "fence_store: %d rings with pending entries, not %d: not fenced\n",
                    rings_pending(&ctl), pending);
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
