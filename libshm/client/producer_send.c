/*
 * Sending (see producer.c for the handle): completion slots, ring space with
 * back pressure, waiting for the writer's answer (and the flush under
 * SYNC_FLUSH), synchronous, asynchronous, one-way and batch sends, and the
 * callbacks of asynchronous ones.
 *
 * A batch uses one slot: the writer reports the first record's offset, and
 * the producer derives every message's offset by adding the record sizes
 * (shmq_record_size of the same message the writer appends: the records of
 * a batch are consecutive in one segment).
 */
#include "client/producer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/probes.h"
#include "format/compress.h"
#include "format/message.h"

/* ---- slots, ring space, completions ----------------------------------------------------- */

static bool slot_done(const shmq_ring_slot_t *s)
{
    /* Acquire: pairs with the writer's release of DONE; the result fields are visible. */
    return atomic_load_explicit(&((shmq_ring_slot_t *)s)->state, memory_order_acquire) ==
           SHMQ_SLOT_DONE;
}

static void pending_set(shmq_producer_t *p, uint32_t s)
{
    p->pending[s / 64] |= 1ULL << (s % 64);
}

static void pending_clear(shmq_producer_t *p, uint32_t s)
{
    p->pending[s / 64] &= ~(1ULL << (s % 64));
}

/*
 * The pending slots (p->pending) in pass i (0..PENDING_PASSES-1) of a look
 * at all of them that starts at slot start and goes round: the bits of word
 * *w to look at in that pass (start's word is split: from start on first,
 * the slots before it last).
 */
#define PENDING_PASSES (SHMQ_RING_SLOTS / 64 + 1)

static inline uint64_t pending_pass(const shmq_producer_t *p, uint32_t start, uint32_t i,
                                    uint32_t *w)
{
    uint32_t b = start % 64;
    *w = (start / 64 + i) % (SHMQ_RING_SLOTS / 64);
    uint64_t mask = i == 0 ? ~0ULL << b : i == PENDING_PASSES - 1 ? (1ULL << b) - 1 : ~0ULL;
    return p->pending[*w] & mask;
}

/* Some pending request is answered: the oldest in flight looked at first (reap_run). */
static bool any_slot_done(void *arg)
{
    shmq_producer_t *p = arg;
    uint32_t start = p->reap_hint;
    for (uint32_t i = 0; i < PENDING_PASSES; i++) {
        uint32_t w;
        for (uint64_t bits = pending_pass(p, start, i, &w); bits != 0; bits &= bits - 1) {
            if (slot_done(&p->ring->slots[w * 64 + (uint32_t)__builtin_ctzll(bits)])) {
                return true;
            }
        }
    }
    return false;
}

static inline void slot_free(shmq_producer_t *p, uint32_t s)
{
    /* Relaxed: the writer only touches a slot after an entry naming it is published. */
    atomic_store_explicit(&p->ring->slots[s].state, SHMQ_SLOT_FREE, memory_order_relaxed);
    if (p->reqs[s].state == REQ_ASYNC) {
        p->async_busy--;
    }
    if (p->reqs[s].sizes != NULL) { /* an asynchronous batch's */
        free(p->reqs[s].sizes);
        p->reqs[s].sizes = NULL;
    }
    p->reqs[s].results = NULL;
    p->reqs[s].batch_n = 0;
    p->reqs[s].state = REQ_FREE;
    pending_clear(p, s);
}

/* The result of an answer without a record: zeros, and the UNIQ_KEY to look it up by. */
static void result_failed(const char *uniq, shmq_send_result_t *res)
{
    memset(res, 0, sizeof(*res));
    shmq_prod_uniq_copy(res->uniq_key, uniq);
}

/* uniq: the request's UNIQ_KEY array, or NULL (a batch fills each message's own).
 * Inlined: on every answer (reap_run's), a call would cost a tenth of its work. */
static inline __attribute__((always_inline)) void result_from_slot(const shmq_producer_t *p,
                                                                   const shmq_ring_slot_t *sl,
                                                                   const char *uniq,
                                                                   shmq_send_result_t *res)
{
    res->status = SHMQ_SEND_OK;
    shmq_prod_msgid(p, sl->phys_offset, res->msg_id);
    if (uniq != NULL) {
        shmq_prod_uniq_copy(res->uniq_key, uniq);
    } else {
        res->uniq_key[0] = '\0';
    }
    res->queue_id = sl->queue_id;
    res->queue_offset = sl->queue_offset;
    res->phys_offset = sl->phys_offset;
    res->store_ts = sl->store_ts;
}

/*
 * SYNC_MASTER: a slave is connected and within haMaxGapNotInSync of the
 * master's end (the ha-sender's table; RocketMQ answers SLAVE_NOT_AVAILABLE
 * at once otherwise).  In controller mode with allAckInSyncStateSet the
 * sync-state set decides instead: once the ctrl-agent published one, the
 * ha-sender moves `replicated` by its members (a member not connected makes
 * sends wait, FLUSH_SLAVE_TIMEOUT), so only no set at all is "not available".
 */
static bool slave_in_sync(const shmq_producer_t *p)
{
    if (shmq_config_acks_by_sync_state_set(p->cfg)) {
        shmq_ctl_sss_t set;
        return shmq_ctl_sss_copy(&p->blk->controller, &set) != SHMQ_E_NOT_FOUND;
    }
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        const shmq_ctl_slave_t *sl = &p->blk->ha.slaves[i];
        /* Acquire: the row is written before CONNECTED. */
        if (atomic_load_explicit(&sl->state, memory_order_acquire) == SHMQ_SLAVE_CONNECTED &&
            atomic_load_explicit(&sl->in_sync, memory_order_relaxed) != 0) {
            return true;
        }
    }
    return false;
}

static void reap_slot(shmq_producer_t *p, uint32_t s);

/* An answered batch of shmq_send_batch_async: each message's result from the first's (the
 * records are consecutive, of the sizes the writer encodes); statuses come before the callback. */
static void batch_results(const shmq_producer_t *p, const prod_req_t *q,
                          const shmq_send_result_t *first)
{
    int64_t phys = first->phys_offset;
    for (size_t i = 0; i < q->batch_n; i++) {
        shmq_send_result_t *r = &q->results[i];
        r->status = first->status;
        r->queue_id = first->queue_id;
        r->store_ts = first->store_ts;
        r->phys_offset = phys;
        r->queue_offset = first->queue_offset + (int64_t)i;
        shmq_prod_msgid(p, phys, r->msg_id);
        phys += q->sizes[i];
    }
}

/* Move completed async requests to the done list; free abandoned ones. */
static void reap(shmq_producer_t *p)
{
    if (!p->attached) {
        return;
    }
    for (uint32_t w = 0; w < SHMQ_RING_SLOTS / 64; w++) {
        for (uint64_t bits = p->pending[w]; bits != 0; bits &= bits - 1) {
            uint32_t s = w * 64 + (uint32_t)__builtin_ctzll(bits);
            if (slot_done(&p->ring->slots[s])) { /* the call only for an answered one */
                reap_slot(p, s);
            }
        }
    }
}

/* reap() of slot s, a REQ_ASYNC or REQ_ABANDONED request its writer answered (slot_done). */
static void reap_slot(shmq_producer_t *p, uint32_t s)
{
    prod_req_t *q = &p->reqs[s];
    shmq_ring_slot_t *sl = &p->ring->slots[s];
    if (q->state != REQ_ASYNC) {
        slot_free(p, s); /* abandoned: nobody waits for its answer */
        return;
    }
    /* Filled in place in the done list (its callback runs from there, run_list, or
     * from a copy out of the list when some request in it waits, run_ready). */
    prod_done_t *d =
        p->ndone < p->done_cap ? &p->done[p->ndone] : shmq_prod_done_next(p); /* grown */
    if (d == NULL) {
        return; /* out of memory: leave it in the ring for a later reap */
    }
    d->cb = q->cb;
    d->arg = q->arg;
    d->err = sl->status < 0 ? shmq_ring_slot_error(sl) : 0;
    d->wait_flush = false;
    d->wait_repl = false;
    d->flush_deadline = 0;
    d->repl_deadline = 0;
    d->results = q->results;
    d->batch_n = q->batch_n;
    if (d->err == 0) {
        result_from_slot(p, sl, q->uniq, &d->res);
        d->end_pos = sl->end_pos;
        if (q->batch_n != 0) {
            batch_results(p, q, &d->res);
        }
        if (p->cfg->flush_disk_type == SHMQ_SYNC_FLUSH) {
            d->wait_flush = true;
            d->flush_deadline = shmq_mono_ms() + p->cfg->sync_flush_timeout;
        }
        if (p->cfg->broker_role == SHMQ_SYNC_MASTER &&
            shmq_ctl_load(&p->blk->replicated) < d->end_pos) {
            if (slave_in_sync(p)) {
                d->wait_repl = true;
                d->repl_deadline = shmq_mono_ms() + p->cfg->slave_timeout;
            } else {
                d->res.status = SHMQ_SEND_SLAVE_NOT_AVAILABLE;
            }
        }
    } else {
        /* The writer's text for this request, for the callback. */
        snprintf(d->detail, sizeof(d->detail), "%s", shmq_error_detail());
        result_failed(q->uniq, &d->res);
        d->end_pos = 0;
    }
    p->ndone++;
    /* slot_free() of an asynchronous request: only a batch's (with its sizes) has sizes,
     * results and batch_n to let go of. */
    atomic_store_explicit(&sl->state, SHMQ_SLOT_FREE, memory_order_relaxed);
    p->async_busy--;
    if (q->sizes != NULL) {
        free(q->sizes);
        q->sizes = NULL;
        q->results = NULL;
        q->batch_n = 0;
    }
    q->state = REQ_FREE;
    pending_clear(p, s);
}

static int slot_take(shmq_producer_t *p, uint32_t *out)
{
    for (uint32_t i = 0; i < SHMQ_RING_SLOTS; i++) {
        uint32_t s = (p->slot_hint + i) % SHMQ_RING_SLOTS;
        if (p->reqs[s].state == REQ_FREE) {
            p->slot_hint = (s + 1) % SHMQ_RING_SLOTS;
            *out = s;
            return 0;
        }
    }
    return -EAGAIN;
}

struct space_wait {
    shmq_producer_t *p;
    uint64_t len;
};

static bool space_ready(void *arg)
{
    struct space_wait *w = arg;
    return shmq_ring_has_space(&w->p->rp, w->len);
}

/* A wait before the message entered the ring: a dead store means "not stored". */
static int before_publish_check(shmq_producer_t *p)
{
    int rc = shmq_prod_wait_check(p);
    if (rc == -ETIMEDOUT) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "store %s is not running (its master is gone)",
                              p->root);
    }
    return rc;
}

/* A free completion slot, waiting (back pressure) until deadline. */
static int slot_alloc_wait(shmq_producer_t *p, int64_t deadline, uint32_t *out)
{
    for (;;) {
        if (slot_take(p, out) == 0) {
            return 0;
        }
        reap(p);
        if (slot_take(p, out) == 0) {
            return 0;
        }
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0) {
            return shmq_error_set(-ETIMEDOUT, "no completion slot free within the send timeout");
        }
        shmq_ctl_sleep(&p->ring->producer_wake, any_slot_done, p,
                       left < PROD_SLICE_MS ? left : PROD_SLICE_MS);
        int rc = before_publish_check(p);
        if (rc < 0) {
            return rc;
        }
    }
}

/*
 * A free completion slot: on every send, the one after the last taken when it
 * is free (where slot_take's search begins), else slot_alloc_wait's search.
 */
static inline int slot_alloc(shmq_producer_t *p, int64_t deadline, uint32_t *out)
{
    uint32_t s = p->slot_hint;
    if (__builtin_expect(p->reqs[s].state == REQ_FREE, 1)) {
        p->slot_hint = (s + 1) % SHMQ_RING_SLOTS;
        *out = s;
        return 0;
    }
    return slot_alloc_wait(p, deadline, out);
}

/* len contiguous ring bytes, waiting (back pressure) until deadline. */
static int ring_reserve_wait(shmq_producer_t *p, uint64_t len, int64_t deadline, uint8_t **dst)
{
    for (;;) {
        int rc = shmq_ring_reserve(&p->rp, len, dst);
        if (rc != -EAGAIN) {
            return rc;
        }
        /* A PAD may just have been published: the writer must see it to make room. */
        shmq_ctl_wake(&p->ctl.wake->writer_wake);
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0) {
            return shmq_error_set(-ETIMEDOUT, "ring full for the whole send timeout");
        }
        struct space_wait w = {.p = p, .len = len};
        shmq_ctl_sleep(&p->ring->producer_wake, space_ready, &w,
                       left < PROD_SLICE_MS ? left : PROD_SLICE_MS);
        rc = before_publish_check(p);
        if (rc < 0) {
            return rc;
        }
    }
}

/* len contiguous ring bytes: on every send, taken at once when free, else ring_reserve_wait. */
static inline int ring_reserve(shmq_producer_t *p, uint64_t len, int64_t deadline, uint8_t **dst)
{
    int rc = shmq_ring_reserve(&p->rp, len, dst);
    return __builtin_expect(rc != -EAGAIN, 1) ? rc : ring_reserve_wait(p, len, deadline, dst);
}

static inline void slot_arm(shmq_producer_t *p, uint32_t s, uint64_t req_id, uint8_t state)
{
    shmq_ring_slot_t *sl = &p->ring->slots[s];
    sl->req_id = req_id;
    sl->status = 0;
    /* Relaxed: published to the writer by the release store of tail. */
    atomic_store_explicit(&sl->state, SHMQ_SLOT_PENDING, memory_order_relaxed);
    p->reqs[s].state = state;
    p->reqs[s].req_id = req_id;
    if (state == REQ_ASYNC) {
        p->async_busy++;
        pending_set(p, s);
    }
}

static void publish(shmq_producer_t *p)
{
    shmq_ring_publish(&p->rp);
    /* Wakes the writer only if it sleeps (no system call otherwise). */
    shmq_ctl_wake(&p->ctl.wake->writer_wake);
}

struct slot_wait {
    shmq_producer_t *p;
    uint32_t slot;
};

static bool one_slot_done(void *arg)
{
    struct slot_wait *w = arg;
    return slot_done(&w->p->ring->slots[w->slot]);
}

/*
 * In the wait for the answer to our published entry (slot sl): 0 keep
 * waiting (or the slot is answered: the caller reads it), else the final
 * word when no answer can come.  A stopping store answers from what was
 * stored: its writer finishes the batch it is in (answering every entry it
 * appended) before it exits, so only an exited writer's silence counts.
 */
static int answer_check(shmq_producer_t *p, const shmq_ring_slot_t *sl)
{
    bool alive = shmq_prod_store_alive(p);
    if (!alive) {
        p->checked_ms = INT64_MIN / 2; /* the next send detaches and attaches again */
    }
    int32_t last_exit = 0;
    bool gone = shmq_prod_writer_gone(p, &last_exit);
    /* After the writer's exit was seen (acquire): an answer it gave is visible now. */
    if (slot_done(sl)) {
        return 0;
    }
    if (gone && last_exit == 0) {
        return shmq_error_set(-ESHUTDOWN, "store %s stopped before taking the message", p->root);
    }
    if (gone) {
        return shmq_error_set(-ETIMEDOUT,
                              "store %s stopped and its writer ended with status %d, maybe in "
                              "the middle of a batch: the outcome is unknown",
                              p->root, (int)last_exit);
    }
    if (!alive) {
        return shmq_error_set(
            -ETIMEDOUT, "store %s: master gone while waiting: the outcome is unknown", p->root);
    }
    return 0;
}

/*
 * Spin for the answer in sl at most PROD_SPIN_NS >> p->spin_shift: true
 * when it came.  A spin saves the sleep and the wake (a futex wake of a
 * process on another core), but one that keeps ending in a sleep only takes
 * a core from the writer it waits for: it shrinks then, and grows back when
 * a full spin (every PROD_SPIN_PROBE-th wait) sees the answer come.
 */
static bool spin_for_answer(shmq_producer_t *p, const shmq_ring_slot_t *sl)
{
    bool probe = ++p->spin_waits % PROD_SPIN_PROBE == 0;
    uint32_t shift = probe ? 0 : p->spin_shift;
    if (shift >= PROD_SPIN_SHIFT_MAX) {
        return slot_done(sl);
    }
    int64_t spin_end = 0; /* the clock is read only once a short spin did not see the answer */
    for (unsigned i = 1;; i++) {
        if (slot_done(sl)) {
            p->spin_shift = 0;
            return true;
        }
        if ((i & 63) == 0) {
            int64_t now = shmq_mono_ns();
            if (spin_end == 0) {
                spin_end = now + (PROD_SPIN_NS >> shift);
            } else if (now > spin_end) {
                break;
            }
        }
        shmq_cpu_relax();
    }
    if (p->spin_shift < PROD_SPIN_SHIFT_MAX) {
        p->spin_shift++;
    }
    return false;
}

/* Wait for slot s: 0 when DONE, or -ETIMEDOUT / -ESHUTDOWN. */
static int wait_slot(shmq_producer_t *p, uint32_t s, int64_t deadline)
{
    const shmq_ring_slot_t *sl = &p->ring->slots[s];
    if (spin_for_answer(p, sl)) {
        return 0;
    }
    struct slot_wait w = {.p = p, .slot = s};
    for (;;) {
        if (slot_done(sl)) {
            return 0;
        }
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0) {
            return shmq_error_set(-ETIMEDOUT, "no answer from the store within %d ms",
                                  p->send_timeout_ms);
        }
        shmq_ctl_sleep(&p->ring->producer_wake, one_slot_done, &w,
                       left < PROD_SLICE_MS ? left : PROD_SLICE_MS);
        if (slot_done(sl)) {
            return 0;
        }
        int rc = answer_check(p, sl);
        if (rc < 0) {
            return rc;
        }
    }
}

/* SYNC_FLUSH: 1 when flushed covers end_pos, -1 when the store is fenced short of it, else 0. */
static int flush_state(shmq_producer_t *p, int64_t end_pos)
{
    /* Acquire: the fence is set after the last flushed it lets stand (and flushed never
     * moves after it), so flushed read after it is final. */
    int32_t fenced = atomic_load_explicit(&p->blk->fenced_error, memory_order_acquire);
    if (shmq_ctl_load(&p->blk->flushed) >= end_pos) {
        return 1;
    }
    return fenced != 0 ? -1 : 0;
}

/*
 * Sleep on the wake-up word f until pos moves past end_pos (its publisher
 * wakes f after publishing: the block is read-only here), a fence wakes
 * us, or timeout_ms passes.  shmq_ctl_wait_pos would sleep again after a
 * wake that leaves the position where it was.
 */
struct pos_wait {
    shmq_producer_t *p;
    const shmq_ctl_position_t *pos;
    int64_t end_pos;
};

static bool pos_reached(void *arg)
{
    const struct pos_wait *w = arg;
    return shmq_ctl_load(w->pos) >= w->end_pos ||
           atomic_load_explicit(&w->p->blk->fenced_error, memory_order_acquire) != 0;
}

static void pos_sleep(shmq_producer_t *p, shmq_ctl_wake_t *f, const shmq_ctl_position_t *pos,
                      int64_t end_pos, int timeout_ms)
{
    /* Registers, re-checks, then sleeps: no lost wake-up (ctl.h "Sleeping"). */
    struct pos_wait w = {.p = p, .pos = pos, .end_pos = end_pos};
    shmq_ctl_sleep(f, pos_reached, &w, timeout_ms);
}

static void flush_sleep(shmq_producer_t *p, int64_t end_pos, int timeout_ms)
{
    pos_sleep(p, &p->ctl.wake->flushed_wake, &p->blk->flushed, end_pos, timeout_ms);
}

/*
 * A synchronous send's wait for the flush or a slave: true once the store
 * is gone (shmq_prod_check_at, the liveness check of every send, at most
 * every 100 ms, detached the producer).  Nothing moves the position any
 * more: the send ends with the timeout status now (stored, not known
 * durable or replicated), not at syncFlushTimeout or slaveTimeout.  The
 * control block is unmapped then: the caller returns without reading it.
 */
static bool store_gone(shmq_producer_t *p)
{
    shmq_prod_check_at(p, shmq_mono_ms());
    return !p->attached;
}

/*
 * SYNC_MASTER, after the flush: SHMQ_SEND_OK once replicated covers
 * end_pos; SHMQ_SEND_SLAVE_NOT_AVAILABLE at once when no slave is in sync;
 * SHMQ_SEND_FLUSH_SLAVE_TIMEOUT after slaveTimeout, as RocketMQ 5's
 * handleHA (never past the send's deadline).  RocketMQ's statuses: the message is stored either
 * way.
 */
static int repl_status(shmq_producer_t *p, int64_t end_pos, int64_t deadline)
{
    if (p->cfg->broker_role != SHMQ_SYNC_MASTER || shmq_ctl_load(&p->blk->replicated) >= end_pos) {
        return SHMQ_SEND_OK;
    }
    if (!slave_in_sync(p)) {
        return SHMQ_SEND_SLAVE_NOT_AVAILABLE;
    }
    int64_t until = shmq_mono_ms() + p->cfg->slave_timeout;
    if (deadline < until) {
        until = deadline;
    }
    for (;;) {
        if (shmq_ctl_load(&p->blk->replicated) >= end_pos) {
            return SHMQ_SEND_OK;
        }
        int left = shmq_prod_left_ms(until);
        if (left <= 0 || store_gone(p)) {
            return SHMQ_SEND_FLUSH_SLAVE_TIMEOUT;
        }
        pos_sleep(p, &p->ctl.wake->replicated_wake, &p->blk->replicated, end_pos,
                  left < PROD_SLICE_MS ? left : PROD_SLICE_MS);
    }
}

/*
 * SYNC_FLUSH: wait until flushed covers end_pos, at most syncFlushTimeout
 * and never past the send's deadline.  The send status (SHMQ_SEND_OK, or
 * SHMQ_SEND_FLUSH_DISK_TIMEOUT: stored, not known durable), or
 * SHMQ_E_FENCED as soon as the store is fenced short of end_pos.
 */
static int flush_status(shmq_producer_t *p, int64_t end_pos, int64_t deadline)
{
    if (p->cfg->flush_disk_type != SHMQ_SYNC_FLUSH) {
        return SHMQ_SEND_OK;
    }
    int64_t until = shmq_mono_ms() + p->cfg->sync_flush_timeout;
    if (deadline < until) {
        until = deadline;
    }
    /* A group commit often lands within the spin of a zero-timeout wait. */
    if (shmq_ctl_wait_pos(&p->blk->flushed, end_pos, 0) == 0) {
        return SHMQ_SEND_OK;
    }
    for (;;) {
        int st = flush_state(p, end_pos);
        if (st > 0) {
            return SHMQ_SEND_OK;
        }
        if (st < 0) {
            /* Acquire: as in flush_state. */
            int32_t err = atomic_load_explicit(&p->blk->fenced_error, memory_order_acquire);
            return shmq_error_set(SHMQ_E_FENCED,
                                  "store %s fenced (%s) before the message at %lld was flushed: "
                                  "stored, not made durable; whether it survives the recovery "
                                  "is unknown",
                                  p->root, shmq_strerror(err), (long long)end_pos);
        }
        int left = shmq_prod_left_ms(until);
        if (left <= 0 || store_gone(p)) {
            return SHMQ_SEND_FLUSH_DISK_TIMEOUT;
        }
        /* Sliced: a fence is seen within a slice even if nobody wakes us. */
        flush_sleep(p, end_pos, left < PROD_SLICE_MS ? left : PROD_SLICE_MS);
    }
}

/* ---- sends ---------------------------------------------------------------------------------- */

/*
 * Replace rm's body by its LZ4 frame (in p->zbuf) and set RocketMQ's bits
 * for it, unless the frame is no smaller than the body.
 */
static int compress_body(shmq_producer_t *p, shmq_ring_msg_t *rm)
{
    size_t need = shmq_body_lz4_bound(rm->body_len);
    if (need > p->zcap) {
        uint8_t *nb = realloc(p->zbuf, need);
        if (nb == NULL) {
            return shmq_error_set(-ENOMEM, "no memory to compress a body of %u bytes",
                                  (unsigned)rm->body_len);
        }
        p->zbuf = nb;
        p->zcap = need;
    }
    int64_t zl = shmq_body_compress_lz4(rm->body, rm->body_len, p->zbuf, p->zcap);
    if (zl < 0) {
        return (int)zl;
    }
    if ((uint64_t)zl < rm->body_len) {
        rm->body = p->zbuf;
        rm->body_len = (uint32_t)zl;
        rm->sysflag |= shmq_body_compression_sysflag(SHMQ_COMPRESSION_LZ4);
    }
    return 0;
}

/*
 * The checks of one message on every send (the store ready, the message
 * rules, its queue in *qid; *tlen its topic's length), the monotonic clock
 * read at now_mono_ns.
 */
static inline int check_one(shmq_producer_t *p, const shmq_message_t *m, int64_t now_mono_ns,
                            size_t *tlen, int32_t *qid)
{
    int rc = shmq_prod_ready_at(p, now_mono_ns / 1000000);
    if (rc < 0) {
        return rc;
    }
    if ((rc = shmq_prod_check_message_at(p, m, tlen)) < 0) {
        return rc;
    }
    return shmq_prod_select_queue_at(p, m, *tlen, qid);
}

/* The body of m is sent LZ4-compressed (RocketMQ compares with >=). */
static inline bool compressed(const shmq_producer_t *p, const shmq_message_t *m)
{
    size_t over = m->compress_over == 0  ? p->compress_over
                  : m->compress_over < 0 ? SIZE_MAX
                                         : (size_t)m->compress_over;
    return m->body_len >= over;
}

/*
 * The ring entry view *rm of a checked message (check_one: tlen, qid),
 * pointing into p->props, and its UNIQ_KEY; now: the wall clock of the send.
 */
static int prepare_one(shmq_producer_t *p, const shmq_message_t *m, size_t tlen, int32_t qid,
                       int64_t now, shmq_ring_msg_t *rm, char uniq[SHMQ_UNIQ_KEY_MAX])
{
    size_t plen;
    int rc;
    _Static_assert(sizeof(p->props) >= SHMQ_PROD_PROPS_UNIQ_LEN, "props holds a UNIQ_KEY");
    if (shmq_prod_props_plain(p, m)) {
        plen = shmq_prod_props_uniq(p->props, uniq, now); /* the key alone */
    } else if ((rc = shmq_prod_build_props(p, m, p->props, sizeof(p->props), &plen, uniq, now)) <
               0) {
        return rc;
    }
    shmq_prod_fill_entry(p, m, tlen, p->props, plen, qid, now, rm);
    if (__builtin_expect(compressed(p, m), 0)) {
        return compress_body(p, rm);
    }
    return 0;
}

/* Room for an entry of len bytes: a completion slot (*s; none for a one-way send, mode
 * REQ_FREE) and the ring's bytes (*dst), waiting for each until deadline. */
static inline __attribute__((always_inline)) int entry_room(shmq_producer_t *p, uint64_t len,
                                                            uint8_t mode, int64_t deadline,
                                                            uint32_t *s, uint8_t **dst)
{
    if (len > p->rp.size) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "message of %llu bytes exceeds the ring (%llu)",
                              (unsigned long long)len, (unsigned long long)p->rp.size);
    }
    int rc;
    if (mode != REQ_FREE && (rc = slot_alloc(p, deadline, s)) < 0) {
        return rc;
    }
    return ring_reserve(p, len, deadline, dst);
}

/* Put the entry view rm (single message, no slot yet) in the ring; see producer_int.h. */
static inline int enqueue(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                          uint32_t *slot_out)
{
    uint64_t len = shmq_ring_entry_size_inline(rm->topic_len, rm->props_len, rm->body_len);
    uint32_t s = 0;
    uint8_t *dst;
    int rc = entry_room(p, len, mode, deadline, &s, &dst);
    if (rc < 0) {
        return rc;
    }
    rm->req_id = ++p->next_req;
    if (mode == REQ_FREE) {
        rm->flags = SHMQ_RING_F_ONEWAY;
    } else {
        rm->slot = s;
        slot_arm(p, s, rm->req_id, mode);
    }
    /* rm's parts are within shmq_ring_encode's limits (the message checks, our properties,
     * entry_check for an entry) and len is reserved: the checks are not made again. */
    shmq_ring_encode_fitted(dst, len, rm);
    /* Before the publish: a tracer's time for it is then never after the writer's append. */
    SHMQ_PROBE(produce, p->ring_idx, rm->req_id, rm->queue_id, 1, len, rm->topic, rm->topic_len);
    publish(p);
    *slot_out = s;
    return 0;
}

int shmq_prod_enqueue(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                      uint32_t *slot_out)
{
    return enqueue(p, rm, mode, deadline, slot_out);
}

/* shmq_prod_send (see producer_int.h): inlined into shmq_send and its siblings. */
static inline int prod_send(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                            const char *uniq, shmq_send_result_t *res, shmq_send_cb cb, void *arg)
{
    uint32_t s;
    int rc = enqueue(p, rm, mode, deadline, &s);
    if (rc < 0 || mode == REQ_FREE) {
        return rc;
    }
    if (mode == REQ_SYNC) {
        return shmq_prod_wait_result(p, s, deadline, uniq, res);
    }
    p->reqs[s].cb = cb;
    p->reqs[s].arg = arg;
    shmq_prod_uniq_copy(p->reqs[s].uniq, uniq);
    return 0;
}

/*
 * enqueue() and prod_send() of a checked message (check_one: tlen, qid)
 * that shmq_prod_props_plain() accepts, its body not compressed: the
 * entry written from the topic's template (shmq_prod_encode_plain), its
 * UNIQ_KEY made straight into the request (no entry view, no properties
 * built aside, no copies of the key).  now: the wall clock of the send.
 */
static inline int send_plain(shmq_producer_t *p, const shmq_message_t *m, int32_t qid, int64_t now,
                             uint8_t mode, int64_t deadline, shmq_send_result_t *res,
                             shmq_send_cb cb, void *arg)
{
    if (__builtin_expect(p->tmpl_len == 0, 0)) {
        shmq_prod_tmpl_build(p); /* m's topic: the one check_one validated last */
    }
    uint64_t len = shmq_prod_plain_size(p, m->body_len);
    uint32_t s = 0;
    uint8_t *dst;
    int rc = entry_room(p, len, mode, deadline, &s, &dst);
    if (rc < 0) {
        return rc;
    }
    uint64_t req_id = ++p->next_req;
    char own[SHMQ_UNIQ_KEY_MAX];
    prod_req_t *q = &p->reqs[s];
    char *uniq = own;
    if (mode == REQ_ASYNC) {
        /* Its callback and key where they are kept (read once the answer is reaped, by this
         * thread, after the publish below). */
        q->cb = cb;
        q->arg = arg;
        uniq = q->uniq;
    }
    (void)shmq_uniq_key_generate_next(uniq, now);
    if (mode != REQ_FREE) {
        slot_arm(p, s, req_id, mode);
    }
    shmq_prod_encode_plain(p, dst, len, m, qid, now, mode == REQ_FREE ? SHMQ_RING_F_ONEWAY : 0, s,
                           req_id, uniq);
    /* Before the publish: a tracer's time for it is then never after the writer's append. */
    SHMQ_PROBE(produce, p->ring_idx, req_id, qid, 1, len, m->topic, p->topic_len);
    publish(p);
    if (mode == REQ_SYNC) {
        return shmq_prod_wait_result(p, s, deadline, uniq, res);
    }
    return 0;
}

/* One message of shmq_send (REQ_SYNC: *res), shmq_send_async (REQ_ASYNC: cb) or
 * shmq_send_oneway (REQ_FREE), the arguments checked; the timeout runs from here. */
static int send_one(shmq_producer_t *p, const shmq_message_t *m, uint8_t mode,
                    shmq_send_result_t *res, shmq_send_cb cb, void *arg)
{
    int64_t now_ns = shmq_mono_ns(); /* the send's one clock read */
    int64_t deadline = now_ns / 1000000 + p->send_timeout_ms;
    size_t tlen;
    int32_t qid;
    int rc = check_one(p, m, now_ns, &tlen, &qid);
    if (rc < 0) {
        return rc;
    }
    /* The wall clock (born time and UNIQ_KEY) from the send's monotonic read, after the
     * liveness check that may have read the offset again. */
    int64_t now = shmq_prod_wall_ms(p, now_ns);
    if (__builtin_expect(shmq_prod_props_plain(p, m) && !compressed(p, m), 1)) {
        return send_plain(p, m, qid, now, mode, deadline, res, cb, arg);
    }
    char uniq[SHMQ_UNIQ_KEY_MAX];
    shmq_ring_msg_t rm;
    if ((rc = prepare_one(p, m, tlen, qid, now, &rm, uniq)) < 0) {
        return rc;
    }
    return prod_send(p, &rm, mode, deadline, uniq, res, cb, arg);
}

int shmq_send(shmq_producer_t *p, const shmq_message_t *m, shmq_send_result_t *res)
{
    if (p == NULL || m == NULL || res == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_send: NULL argument");
    }
    return send_one(p, m, REQ_SYNC, res, NULL, NULL);
}

int shmq_prod_send(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                   const char *uniq, shmq_send_result_t *res, shmq_send_cb cb, void *arg)
{
    return prod_send(p, rm, mode, deadline, uniq, res, cb, arg);
}

/* Wait for the answer to the REQ_SYNC request in slot s; see shmq_send. */
int shmq_prod_wait_result(shmq_producer_t *p, uint32_t s, int64_t deadline, const char *uniq,
                          shmq_send_result_t *res)
{
    int rc = wait_slot(p, s, deadline);
    if (rc < 0) {
        p->reqs[s].state = REQ_ABANDONED; /* a late completion is dropped */
        pending_set(p, s);
        result_failed(uniq, res);
        return rc;
    }
    const shmq_ring_slot_t *sl = &p->ring->slots[s];
    int status = sl->status;
    if (status < 0) {
        status = shmq_ring_slot_error(sl); /* the writer's text, before the slot is reused */
        slot_free(p, s);
        result_failed(uniq, res);
        return status;
    }
    result_from_slot(p, sl, uniq, res);
    int64_t end_pos = sl->end_pos;
    slot_free(p, s);
    rc = flush_status(p, end_pos, deadline);
    if (rc < 0) {
        return rc; /* fenced: *res names the record, stored but not made durable */
    }
    res->status = rc == SHMQ_SEND_OK ? repl_status(p, end_pos, deadline) : rc;
    return 0;
}

int shmq_send_async(shmq_producer_t *p, const shmq_message_t *m, shmq_send_cb cb, void *arg)
{
    if (p == NULL || m == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_send_async: NULL argument");
    }
    return send_one(p, m, REQ_ASYNC, NULL, cb, arg);
}

int shmq_send_oneway(shmq_producer_t *p, const shmq_message_t *m)
{
    if (p == NULL || m == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_send_oneway: NULL argument");
    }
    return send_one(p, m, REQ_FREE, NULL, NULL, NULL);
}

/* ---- poll / flush ------------------------------------------------------------------------- */

/* d's callback (there is one): shmq_prod_run_done, called only when it has more to do. */
static inline void run_done(const prod_done_t *d)
{
    if (d->err == 0 && d->batch_n == 0) {
        d->cb(d->arg, 0, &d->res);
    } else {
        shmq_prod_run_done(d);
    }
}

/* No request in the done list waits for the flush or a slave: each one's result is final. */
static bool done_none_waits(const shmq_producer_t *p)
{
    for (size_t i = 0; i < p->ndone; i++) {
        if (p->done[i].wait_flush || p->done[i].wait_repl) {
            return false;
        }
    }
    return true;
}

/*
 * Run the callbacks of the whole done list (done_none_waits): the list is
 * taken at once, the spare one (empty) in its place, rather than copied out
 * entry by entry; callbacks that send or poll again fill the new list.
 * Returns how many ran.
 */
static int run_list(shmq_producer_t *p)
{
    prod_done_t *list = p->done;
    size_t count = p->ndone, cap = p->done_cap;
    p->done = p->done_spare;
    p->done_cap = p->done_spare_cap;
    p->ndone = 0;
    p->done_spare = NULL;
    p->done_spare_cap = 0;
    for (size_t i = 0; i < count; i++) {
        if (list[i].cb) {
            run_done(&list[i]);
        }
    }
    /* The spare again; a callback's own poll may have put one there already: keep the bigger. */
    if (p->done_spare != NULL && p->done_spare_cap >= cap) {
        free(list);
    } else {
        free(p->done_spare);
        p->done_spare = list;
        p->done_spare_cap = cap;
    }
    return (int)count;
}

/* The positions a waiting result is settled against (positions_read). */
typedef struct prod_positions {
    int64_t now;
    int32_t fenced;
    int64_t flushed;
    int64_t replicated;
    bool gone; /* the store went away, or the producer closes: nothing moves any more */
} prod_positions_t;

/* The positions now; detached (the store gone): none, and gone. */
static void positions_read(const shmq_producer_t *p, prod_positions_t *at)
{
    at->now = shmq_mono_ms();
    at->gone = !p->attached;
    /* Acquire, before flushed: as in flush_state (flushed never moves after a fence). */
    at->fenced = at->gone ? 0 : atomic_load_explicit(&p->blk->fenced_error, memory_order_acquire);
    at->flushed = at->gone ? INT64_MIN : shmq_ctl_load(&p->blk->flushed);
    at->replicated = at->gone ? INT64_MIN : shmq_ctl_load(&p->blk->replicated);
}

/*
 * Settle d, which may wait for the flush (SYNC_FLUSH) or a slave
 * (SYNC_MASTER), against the positions at: true when its result is final.
 * A wait that runs out ends as RocketMQ's timeout status (stored, not known
 * flushed or replicated); so does one the store can no longer end (at->gone:
 * it went away, or the producer closes), never as SEND_OK.
 */
static bool done_settle(prod_done_t *d, const prod_positions_t *at)
{
    if (d->wait_flush) {
        if (at->flushed >= d->end_pos) {
            d->wait_flush = false; /* the status stays: OK, or SLAVE_NOT_AVAILABLE */
        } else if (at->fenced != 0) {
            d->err = SHMQ_E_FENCED; /* stored, not made durable: *res names it */
            snprintf(d->detail, sizeof(d->detail),
                     "store fenced (%s) before the message at %lld was flushed: stored, not "
                     "made durable",
                     shmq_strerror(at->fenced), (long long)d->end_pos);
            d->wait_flush = false;
            d->wait_repl = false;
        } else if (at->gone || at->now >= d->flush_deadline) {
            d->res.status = SHMQ_SEND_FLUSH_DISK_TIMEOUT;
            d->wait_flush = false;
            d->wait_repl = false;
        } else {
            return false;
        }
    }
    if (d->err == 0 && d->wait_repl) {
        if (at->replicated >= d->end_pos) {
            d->res.status = SHMQ_SEND_OK;
        } else if (at->gone || at->now >= d->repl_deadline) {
            d->res.status = SHMQ_SEND_FLUSH_SLAVE_TIMEOUT;
        } else {
            return false;
        }
        d->wait_repl = false;
    }
    return true;
}

void shmq_prod_settle_waits(shmq_producer_t *p)
{
    prod_positions_t at;
    positions_read(p, &at);
    at.gone = true;
    for (size_t i = 0; i < p->ndone; i++) {
        done_settle(&p->done[i], &at);
    }
}

/* Run the callbacks whose result is final; returns how many ran. */
static int run_ready(shmq_producer_t *p)
{
    int ran = 0;
    for (;;) {
        if (p->ndone > 0 && done_none_waits(p)) {
            ran += run_list(p);
            continue;
        }
        prod_done_t take[PROD_DONE_BATCH];
        size_t ntake = 0, keep = 0;
        prod_positions_t at;
        positions_read(p, &at);
        for (size_t i = 0; i < p->ndone; i++) {
            prod_done_t *d = &p->done[i];
            bool ready = ntake < PROD_DONE_BATCH && done_settle(d, &at);
            if (ready) {
                prod_done_copy(&take[ntake++], d);
            } else {
                if (&p->done[keep] != d) {
                    prod_done_copy(&p->done[keep], d);
                }
                keep++;
            }
        }
        p->ndone = keep;
        if (ntake == 0) {
            return ran;
        }
        /* Out of the list before calling: a callback may send or poll again. */
        for (size_t i = 0; i < ntake; i++) {
            if (take[i].cb) {
                run_done(&take[i]);
            }
            ran++;
        }
    }
}

/*
 * reap() and run_ready() at once, for the usual answers: with nothing in
 * the done list and nothing to wait for after an answer (no SYNC_FLUSH, no
 * SYNC_MASTER), an answered asynchronous message's callback runs straight
 * from its slot (the slot freed first: the callback may send again), its
 * result built once, on the stack.  Anything else (an error, a batch, an
 * abandoned request) goes to reap_slot() and the done list as before.
 *
 * The look starts at the oldest request in flight (p->reap_hint) and, once
 * it took an answer, ends at the first request not answered yet: the
 * writer answers a ring's requests in order, so the ones after it are not
 * answered either, as a rule; one that is waits for the next poll (a look
 * that takes nothing goes all the way round, so every answer is taken).
 * quick: the oldest not answered ends the look at once (nothing else is
 * answered then, as a rule): only for a poll's first look when it may sleep
 * (any_slot_done, its sleep's condition, looks at every slot, and the look
 * after a sleep goes all the way round).
 * Returns how many callbacks ran; *rest: a callback detached the producer
 * or filled the done list (the caller's reap() and run_ready() take the
 * rest).
 */
static int reap_run(shmq_producer_t *p, bool quick, bool *rest)
{
    int ran = 0;
    bool took = false;
    uint32_t start = p->reap_hint;
    *rest = false;
    for (uint32_t i = 0; i < PENDING_PASSES; i++) {
        uint32_t w;
        for (uint64_t bits = pending_pass(p, start, i, &w); bits != 0; bits &= bits - 1) {
            uint32_t s = w * 64 + (uint32_t)__builtin_ctzll(bits);
            shmq_ring_slot_t *sl = &p->ring->slots[s];
            if (!slot_done(sl)) {
                if (took || quick) {
                    return ran;
                }
                continue;
            }
            took = true;
            p->reap_hint = (s + 1) % SHMQ_RING_SLOTS;
            prod_req_t *q = &p->reqs[s];
            /* (An asynchronous batch has batch_n and its sizes: batch_n says it.) */
            if (__builtin_expect((q->state != REQ_ASYNC) | (sl->status < 0) | (q->batch_n != 0),
                                 0)) {
                reap_slot(p, s); /* to the done list (or freed), run_ready's */
                continue;
            }
            shmq_send_result_t res;
            result_from_slot(p, sl, q->uniq, &res);
            shmq_send_cb cb = q->cb;
            void *arg = q->arg;
            /* slot_free() of an asynchronous single message (no batch to let go of). */
            atomic_store_explicit(&sl->state, SHMQ_SLOT_FREE, memory_order_relaxed);
            p->async_busy--;
            q->state = REQ_FREE;
            pending_clear(p, s);
            ran++;
            if (cb) {
                cb(arg, 0, &res);
                if (!p->attached || p->ndone != 0) {
                    *rest = true;
                    return ran;
                }
                /* A send or poll of the callback's may have reaped some of the rest (bit s
                 * stays: the loop clears it next). */
                bits &= p->pending[w] | 1ULL << (s % 64);
            }
        }
    }
    return ran;
}

/* reap_run() applies: nothing in the done list, no answer waits for the flush or a slave. */
static inline bool reap_run_applies(const shmq_producer_t *p)
{
    return p->attached && p->ndone == 0 && p->cfg->flush_disk_type != SHMQ_SYNC_FLUSH &&
           p->cfg->broker_role != SHMQ_SYNC_MASTER;
}

int shmq_producer_poll(shmq_producer_t *p, int timeout_ms)
{
    if (p == NULL) {
        return SHMQ_E_ARG;
    }
    int64_t deadline = shmq_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    bool quick = timeout_ms > 0; /* see reap_run */
    for (;; quick = false) {
        int n = 0;
        bool rest = true;
        if (reap_run_applies(p)) {
            n = reap_run(p, quick, &rest);
        }
        if (rest) {
            reap(p);
        }
        if (p->ndone > 0) {
            n += run_ready(p);
        }
        if (n > 0) {
            return n;
        }
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0 || (p->async_busy == 0 && p->ndone == 0)) {
            return 0;
        }
        int slice = left < PROD_SLICE_MS ? left : PROD_SLICE_MS;
        if (p->async_busy > 0 && p->attached) {
            shmq_ctl_sleep(&p->ring->producer_wake, any_slot_done, p, slice);
            if (!any_slot_done(p) && !shmq_prod_store_alive(p)) {
                shmq_prod_detach(p, true); /* their callbacks get -ETIMEDOUT */
            }
        } else if (p->attached) {
            /* Only results waiting for the flush or a slave.  A store that went away
             * ends them now (shmq_prod_check_at settles them), not at their timeouts. */
            shmq_prod_check_at(p, shmq_mono_ms());
            if (!p->attached) {
                continue;
            }
            /* Sleep on the flushed position, or on replicated once everything waiting is
             * flushed (a fence wakes us too: pos_sleep returns on any wake). */
            int64_t end = INT64_MAX, first_deadline = INT64_MAX;
            int64_t flushed = shmq_ctl_load(&p->blk->flushed);
            bool flushing = false;
            for (size_t i = 0; i < p->ndone; i++) {
                const prod_done_t *d = &p->done[i];
                bool on_flush = d->wait_flush && flushed < d->end_pos;
                flushing = flushing || on_flush;
                if (d->end_pos < end) {
                    end = d->end_pos;
                }
                int64_t dl = on_flush || !d->wait_repl ? d->flush_deadline : d->repl_deadline;
                if (dl < first_deadline) {
                    first_deadline = dl;
                }
            }
            int until = shmq_prod_left_ms(first_deadline);
            until = until < slice ? until : slice;
            if (flushing) {
                flush_sleep(p, end, until);
            } else {
                pos_sleep(p, &p->ctl.wake->replicated_wake, &p->blk->replicated, end, until);
            }
        }
    }
}

int shmq_producer_flush(shmq_producer_t *p, int timeout_ms)
{
    if (p == NULL) {
        return SHMQ_E_ARG;
    }
    int64_t deadline = shmq_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        shmq_producer_poll(p, 0);
        if (p->async_busy == 0 && p->ndone == 0) {
            return 0;
        }
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0) {
            return shmq_error_set(-ETIMEDOUT, "%d requests still in flight", p->async_busy);
        }
        shmq_producer_poll(p, left);
    }
}

/* ---- batch ------------------------------------------------------------------------------------
 */

static int batch_scratch(shmq_producer_t *p, size_t n)
{
    if (p->bmsgs_cap < n) {
        shmq_ring_msg_t *nm = realloc(p->bmsgs, n * sizeof(*nm));
        size_t *nl = realloc(p->bprops_len, n * sizeof(*nl));
        if (nm) {
            p->bmsgs = nm;
        }
        if (nl) {
            p->bprops_len = nl;
        }
        if (!nm || !nl) {
            return -ENOMEM;
        }
        p->bmsgs_cap = n;
    }
    return 0;
}

/* Room for need more bytes of properties after used. */
static int bprops_room(shmq_producer_t *p, size_t used, size_t need)
{
    if (used + need <= p->bprops_cap) {
        return 0;
    }
    size_t ncap = p->bprops_cap ? p->bprops_cap : 4096;
    while (ncap < used + need) {
        ncap *= 2;
    }
    char *nb = realloc(p->bprops, ncap);
    if (nb == NULL) {
        return -ENOMEM;
    }
    p->bprops = nb;
    p->bprops_cap = ncap;
    return 0;
}

/*
 * Check msgs and put them in the ring as one batch entry in slot *slot_out
 * (armed in mode: REQ_SYNC or REQ_ASYNC); each results[i].uniq_key set.
 * The send timeout runs to deadline.
 */
static int batch_enqueue(shmq_producer_t *p, const shmq_message_t *msgs, size_t n,
                         shmq_send_result_t *results, uint8_t mode, int64_t now_mono,
                         int64_t deadline, uint32_t *slot_out)
{
    int rc = shmq_prod_ready_at(p, now_mono);
    if (rc < 0) {
        return rc;
    }
    int64_t now = shmq_now_ms(); /* the wall clock, once for the batch */
    size_t tlen;
    if ((rc = shmq_prod_check_message(p, &msgs[0], &tlen)) < 0) {
        return rc;
    }
    int32_t qid;
    if ((rc = shmq_prod_select_queue(p, &msgs[0], tlen, &qid)) < 0) {
        return rc;
    }
    if ((rc = batch_scratch(p, n)) < 0) {
        return rc;
    }
    uint64_t total = 0, bodies = 0;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const shmq_message_t *m = &msgs[i];
        size_t tl;
        if ((rc = shmq_prod_check_message(p, m, &tl)) < 0) {
            return rc;
        }
        if (tl != tlen || memcmp(m->topic, msgs[0].topic, tlen) != 0) {
            return shmq_error_set(SHMQ_E_ARG, "batch message %zu: topic differs from the first", i);
        }
        if (m->delay_level != 0 || m->deliver_at_ms != 0 || m->deliver_after_ms != 0) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "batch message %zu: delayed messages cannot be "
                                  "batched",
                                  i);
        }
        if (i > 0 && m->queue_id >= 0 && m->queue_id != qid) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "batch message %zu: queue id %d differs from the "
                                  "batch's %d",
                                  i, m->queue_id, qid);
        }
        if ((rc = bprops_room(p, used, SHMQ_PROPS_MAX)) < 0) {
            return rc;
        }
        size_t plen;
        if ((rc = shmq_prod_build_props(p, m, p->bprops + used, SHMQ_PROPS_MAX, &plen,
                                        results[i].uniq_key, now)) < 0) {
            return rc;
        }
        p->bprops_len[i] = plen;
        used += plen;
        total += shmq_ring_entry_size(tlen, plen, m->body_len);
        bodies += m->body_len;
    }
    if (bodies > (uint64_t)p->cfg->max_message_size ||
        total > (uint64_t)p->cfg->max_message_size + SHMQ_RING_UNIT_SLACK || total > p->rp.size) {
        return shmq_error_set(SHMQ_E_TOO_BIG,
                              "batch of %zu messages: %llu body bytes, %llu "
                              "entry bytes (maxMessageSize %d)",
                              n, (unsigned long long)bodies, (unsigned long long)total,
                              p->cfg->max_message_size);
    }
    /* Views into bprops only now: it no longer moves. */
    used = 0;
    for (size_t i = 0; i < n; i++) {
        shmq_prod_fill_entry(p, &msgs[i], tlen, p->bprops + used, p->bprops_len[i], qid, now,
                             &p->bmsgs[i]);
        used += p->bprops_len[i];
    }
    int64_t *sizes = NULL;
    if (mode == REQ_ASYNC) {
        /* each record's size, for the offsets of the answer (p->bmsgs is reused meanwhile) */
        if ((sizes = malloc(n * sizeof(*sizes))) == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            shmq_msg_in_t in;
            shmq_ring_msg_to_in(&p->bmsgs[i], &p->store_host, &in);
            int64_t size = shmq_record_size(&in);
            sizes[i] = size > 0 ? size : 0;
        }
    }
    uint32_t s;
    if ((rc = slot_alloc(p, deadline, &s)) < 0) {
        free(sizes);
        return rc;
    }
    uint8_t *dst;
    if ((rc = ring_reserve(p, total, deadline, &dst)) < 0) {
        free(sizes);
        return rc;
    }
    uint64_t req_id = ++p->next_req;
    slot_arm(p, s, req_id, mode);
    p->reqs[s].sizes = sizes;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        shmq_ring_msg_t *rm = &p->bmsgs[i];
        rm->batch_index = (uint16_t)i;
        rm->batch_count = (uint16_t)n;
        rm->slot = s;
        rm->req_id = req_id;
        off += (uint64_t)shmq_ring_encode(dst + off, total - off, rm);
    }
    SHMQ_PROBE(produce, p->ring_idx, req_id, p->bmsgs[0].queue_id, n, total, p->bmsgs[0].topic,
               p->bmsgs[0].topic_len);
    publish(p);
    *slot_out = s;
    return 0;
}

int shmq_send_batch(shmq_producer_t *p, const shmq_message_t *msgs, size_t n,
                    shmq_send_result_t *results)
{
    if (p == NULL || msgs == NULL || results == NULL || n == 0 || n > UINT16_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_send_batch: bad arguments (n = %zu)", n);
    }
    int64_t now_mono = shmq_mono_ms();
    int64_t deadline = now_mono + p->send_timeout_ms;
    uint32_t s;
    int rc = batch_enqueue(p, msgs, n, results, REQ_SYNC, now_mono, deadline, &s);
    if (rc < 0) {
        return rc;
    }
    rc = wait_slot(p, s, deadline);
    if (rc < 0) {
        p->reqs[s].state = REQ_ABANDONED;
        pending_set(p, s);
        return rc;
    }
    const shmq_ring_slot_t *sl = &p->ring->slots[s];
    if (sl->status < 0) {
        rc = shmq_ring_slot_error(sl); /* the writer's text, before the slot is reused */
        slot_free(p, s);
        return rc;
    }
    shmq_send_result_t first;
    result_from_slot(p, sl, NULL, &first);
    int64_t end_pos = sl->end_pos;
    slot_free(p, s);
    /* Each record's offset: the records are consecutive, sized as the writer encodes them. */
    int64_t phys = first.phys_offset;
    for (size_t i = 0; i < n; i++) {
        shmq_msg_in_t in;
        shmq_ring_msg_to_in(&p->bmsgs[i], &p->store_host, &in);
        int64_t size = shmq_record_size(&in);
        shmq_send_result_t *r = &results[i];
        r->status = first.status;
        r->queue_id = first.queue_id;
        r->store_ts = first.store_ts;
        r->phys_offset = phys;
        results[i].queue_offset = first.queue_offset + (int64_t)i;
        shmq_prod_msgid(p, phys, results[i].msg_id);
        phys += size > 0 ? size : 0;
    }
    int status = flush_status(p, end_pos, deadline);
    if (status < 0) {
        return status; /* fenced: results name the records, stored but not made durable */
    }
    if (status == SHMQ_SEND_OK) {
        status = repl_status(p, end_pos, deadline);
    }
    for (size_t i = 0; i < n; i++) {
        results[i].status = status;
    }
    return 0;
}

int shmq_send_batch_async(shmq_producer_t *p, const shmq_message_t *msgs, size_t n,
                          shmq_send_result_t *results, shmq_send_cb cb, void *arg)
{
    if (p == NULL || msgs == NULL || results == NULL || n == 0 || n > UINT16_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_send_batch_async: bad arguments (n = %zu)", n);
    }
    int64_t now_mono = shmq_mono_ms();
    uint32_t s;
    int rc =
        batch_enqueue(p, msgs, n, results, REQ_ASYNC, now_mono, now_mono + p->send_timeout_ms, &s);
    if (rc < 0) {
        return rc;
    }
    p->reqs[s].cb = cb;
    p->reqs[s].arg = arg;
    p->reqs[s].results = results;
    p->reqs[s].batch_n = n;
    shmq_prod_uniq_copy(p->reqs[s].uniq, results[0].uniq_key);
    return 0;
}
