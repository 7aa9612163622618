/*
 * Ring ownership and completion in the control block (see ring.h): how a
 * producer claims and gives back a ring, how the writer answers a request
 * in a completion slot, and how it finds rings whose producer died.
 *
 * A producer owns ring i while it holds an OFD write lock on byte 16 + i of
 * <root>/lock; the kernel drops the lock when the process dies, so a ring
 * that is ACTIVE with its byte unlocked is an orphan (PITFALLS 11: no pid
 * liveness).  The claims counter, bumped at each claim, lets the writer
 * notice a ring that was given back and claimed again while it looked.
 *
 * A claimer takes the ring's lock before it moves the ring FREE -> CLAIMING,
 * and never moves it back: a claim has no undo, so a claimer descheduled at
 * any point can never store FREE over a claim that is no longer its own
 * (the writer may have freed a claim it saw stuck, and another producer may
 * own the ring now).  While a live claimer's ring is CLAIMING it holds the
 * lock, so the writer frees a CLAIMING ring only when its claimer died.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shmq/errors.h"

int shmq_ring_claim(shmq_ctl_t *ctl, uint32_t *idx)
{
    int fd = shmq_ctl_lock_file(ctl);
    if (fd < 0) {
        return fd;
    }
    uint32_t count = ctl->blk->hdr.ring_count;
    for (uint32_t i = 0; i < count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *r = &ctl->blk->rings[i];
        /* Relaxed: a hint that spares a lock call on a taken ring; the CAS decides. */
        if (atomic_load_explicit(&r->state, memory_order_relaxed) != SHMQ_RING_FREE) {
            continue;
        }
        /* The lock first: whoever holds it may claim; nothing to undo if it is taken. */
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHMQ_RING_LOCK_BYTE(i), .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
            continue; /* owned, or its last owner is still closing */
        }
        uint32_t expect = SHMQ_RING_FREE;
        /* Acq_rel: the previous owner's (or the writer's) FREE release is visible. */
        if (!atomic_compare_exchange_strong_explicit(&r->state, &expect, SHMQ_RING_CLAIMING,
                                                     memory_order_acq_rel, memory_order_relaxed)) {
            /* Not free after all (a claimer that does not lock first): not ours. */
            fl.l_type = F_UNLCK;
            fcntl(fd, F_OFD_SETLK, &fl);
            continue;
        }
        /* Release: a writer that reads the new count sees CLAIMING. */
        atomic_fetch_add_explicit(&r->claims, 1, memory_order_release);
        for (int s = 0; s < SHMQ_RING_SLOTS; s++) {
            /* Relaxed: published by the ACTIVE release below. */
            atomic_store_explicit(&r->slots[s].state, SHMQ_SLOT_FREE, memory_order_relaxed);
        }
        /* Relaxed: the writer leaves a CLAIMING ring alone; ACTIVE publishes head = tail. */
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        atomic_store_explicit(&r->head, tail, memory_order_relaxed);
        atomic_store_explicit(&r->owner_pid, (int32_t)getpid(), memory_order_relaxed);
        atomic_store_explicit(&r->state, SHMQ_RING_ACTIVE, memory_order_release);
        *idx = i;
        return 0;
    }
    return shmq_error_set(-EBUSY, "store %s: all %u producer rings are taken", ctl->root, count);
}

void shmq_ring_release(shmq_ctl_t *ctl, uint32_t idx)
{
    if (idx >= SHMQ_CTL_MAX_RINGS) {
        return;
    }
    shmq_ctl_ring_t *r = &ctl->blk->rings[idx];
    /* Acquire: the writer copied out what lies below head. */
    bool drained = atomic_load_explicit(&r->head, memory_order_acquire) ==
                   atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->owner_pid, 0, memory_order_relaxed);
    /* Release: our last entries are published before the state names their keeper.  The
     * lock byte is dropped afterwards, by the caller closing the lock file. */
    atomic_store_explicit(&r->state, drained ? SHMQ_RING_FREE : SHMQ_RING_ORPHANED,
                          memory_order_release);
}

bool shmq_ring_store_alive(shmq_ctl_t *ctl)
{
    int fd = shmq_ctl_lock_file(ctl);
    if (fd < 0) {
        return true; /* cannot tell */
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK) {
        return false;
    }
    char text[96];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    if (n > 0) {
        text[n] = '\0';
        long pid;
        if (sscanf(text, "lock pid=%ld", &pid) == 1 && pid != ctl->blk->hdr.creator_pid) {
            return false; /* a stale block: another process holds the store now */
        }
    }
    return true;
}

bool shmq_ring_complete(shmq_ctl_ring_t *r, uint32_t slot, const shmq_ring_slot_t *res)
{
    if (slot >= SHMQ_RING_SLOTS) {
        return false;
    }
    shmq_ring_slot_t *s = &r->slots[slot];
    /* Acquire: the producer's arming (req_id) is visible with PENDING. */
    if (atomic_load_explicit(&s->state, memory_order_acquire) != SHMQ_SLOT_PENDING ||
        s->req_id != res->req_id) {
        return false; /* given up and reused, or never armed: nobody waits for it */
    }
    s->status = res->status;
    s->phys_offset = res->phys_offset;
    s->end_pos = res->end_pos;
    s->queue_offset = res->queue_offset;
    s->store_ts = res->store_ts;
    s->queue_id = res->queue_id;
    s->size = res->size;
    s->count = res->count;
    memcpy(s->detail, res->detail, sizeof(s->detail));
    s->detail[sizeof(s->detail) - 1] = '\0';
    /* Release: the result is visible before DONE. */
    atomic_store_explicit(&s->state, SHMQ_SLOT_DONE, memory_order_release);
    return true;
}

int shmq_ring_fail_pending(shmq_ctl_ring_t *r, int32_t status, const char *detail)
{
    int n = 0;
    for (int i = 0; i < SHMQ_RING_SLOTS; i++) {
        shmq_ring_slot_t *s = &r->slots[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) == SHMQ_SLOT_PENDING) {
            s->status = status;
            snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
            atomic_store_explicit(&s->state, SHMQ_SLOT_DONE, memory_order_release);
            n++;
        }
    }
    return n;
}

int shmq_ring_check_owners(shmq_ctl_t *ctl, shmq_ring_watch_t *watch)
{
    int fd = shmq_ctl_lock_file(ctl);
    if (fd < 0) {
        return fd;
    }
    int changed = 0;
    uint32_t count = ctl->blk->hdr.ring_count;
    for (uint32_t i = 0; i < count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *r = &ctl->blk->rings[i];
        uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
        if (st != SHMQ_RING_ACTIVE && st != SHMQ_RING_CLAIMING) {
            watch->claiming_seen[i] = 0;
            continue;
        }
        uint64_t claims = atomic_load_explicit(&r->claims, memory_order_acquire);
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHMQ_RING_LOCK_BYTE(i), .l_len = 1};
        if (fcntl(fd, F_OFD_GETLK, &fl) != 0 || fl.l_type != F_UNLCK) {
            watch->claiming_seen[i] = 0;
            continue; /* owned (or cannot tell) */
        }
        uint32_t expect = st;
        if (st == SHMQ_RING_CLAIMING) {
            /* A live claimer holds the lock (it locks before it claims); free the ring
             * only when it was stuck, unlocked, under the same claim at the previous
             * check as well (a claimer of another build may lock after claiming). */
            if (watch->claiming_seen[i] == claims + 1 &&
                atomic_compare_exchange_strong_explicit(&r->state, &expect, SHMQ_RING_FREE,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                watch->claiming_seen[i] = 0;
                changed++;
            } else {
                watch->claiming_seen[i] = claims + 1;
            }
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(&r->state, &expect, SHMQ_RING_ORPHANED,
                                                     memory_order_acq_rel, memory_order_relaxed)) {
            continue;
        }
        if (atomic_load_explicit(&r->claims, memory_order_acquire) != claims) {
            /* Given back and claimed again while we looked: it has an owner. */
            expect = SHMQ_RING_ORPHANED;
            atomic_compare_exchange_strong_explicit(&r->state, &expect, SHMQ_RING_ACTIVE,
                                                    memory_order_acq_rel, memory_order_relaxed);
            continue;
        }
        changed++;
    }
    return changed;
}

int shmq_ring_free_orphans(shmq_ctl_t *ctl)
{
    int n = 0;
    uint32_t count = ctl->blk->hdr.ring_count;
    for (uint32_t i = 0; i < count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *r = &ctl->blk->rings[i];
        if (atomic_load_explicit(&r->state, memory_order_acquire) != SHMQ_RING_ORPHANED ||
            atomic_load_explicit(&r->head, memory_order_relaxed) !=
                atomic_load_explicit(&r->tail, memory_order_acquire)) {
            continue;
        }
        uint32_t expect = SHMQ_RING_ORPHANED;
        /* Release: the head we stored is visible to the next claimer. */
        if (atomic_compare_exchange_strong_explicit(&r->state, &expect, SHMQ_RING_FREE,
                                                    memory_order_release, memory_order_relaxed)) {
            n++;
        }
    }
    return n;
}

int shmq_ring_slot_error(const shmq_ring_slot_t *s)
{
    int status = s->status;
    char text[SHMQ_RING_DETAIL_MAX];
    /* Copy, then terminate the copy: the text is read from shared memory once. */
    memcpy(text, s->detail, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    if (text[0] == '\0') {
        return shmq_error_set(status, "the store refused the message: %s",
                              shmq_ring_strerror(status));
    }
    return shmq_error_set(status, "%s", text);
}
