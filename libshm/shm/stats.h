/*
 * Latency histograms and per-topic counts in the control block: the writer
 * and the flusher add to them, `shmqctl metrics` and the shmq-metrics
 * worker read them (metrics.c).
 *
 * Each histogram and each topic's counts has exactly one writer process, so
 * an update is a relaxed load and a relaxed store (no locked instruction):
 * a few instructions on the writer's own cache line.  Readers take relaxed
 * loads of statistics: they never slow the writer and never read data
 * through them.  A reader may see a bucket updated before the count (or the
 * other way round) for an instant: statistics, not positions.
 */
#ifndef SHMQ_STATS_H
#define SHMQ_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "shm/ctl.h"

/* The bucket bounds of a histogram kind, in nanoseconds, ascending. */
typedef struct shmq_hist_bounds {
    const int64_t *ns;
    int count; /* finite bounds, at most SHMQ_HIST_BOUNDS */
} shmq_hist_bounds_t;

/* shmq_send_latency_seconds: 1 ms .. 10 s (the born timestamp has millisecond resolution). */
extern const shmq_hist_bounds_t shmq_hist_send;
/* shmq_flush_duration_seconds: 10 us .. 1 s. */
extern const shmq_hist_bounds_t shmq_hist_flush;
/* shmq_stage_latency_seconds: 10 us .. 10 s. */
extern const shmq_hist_bounds_t shmq_hist_stage;

/* The bucket of value ns (at least 0) under bounds b. */
static inline int shmq_hist_bucket(const shmq_hist_bounds_t *b, int64_t ns)
{
    int i = 0;
    while (i < b->count && ns > b->ns[i]) {
        i++;
    }
    return i;
}

/* Single writer: add weight observations to bucket i of h (count and sum left to the caller). */
static inline void shmq_hist_add_bucket(shmq_ctl_hist_t *h, int i, uint64_t weight)
{
    /* Relaxed load and store: this process is the only writer (statistics). */
    atomic_store_explicit(&h->bucket[i],
                          atomic_load_explicit(&h->bucket[i], memory_order_relaxed) + weight,
                          memory_order_relaxed);
}

/* Single writer: count observations whose values add up to sum_ns were added to h's buckets. */
static inline void shmq_hist_add_total(shmq_ctl_hist_t *h, uint64_t count, uint64_t sum_ns)
{
    /* Relaxed load and store: this process is the only writer (statistics). */
    atomic_store_explicit(&h->count, atomic_load_explicit(&h->count, memory_order_relaxed) + count,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns,
                          atomic_load_explicit(&h->sum_ns, memory_order_relaxed) + sum_ns,
                          memory_order_relaxed);
}

/* Single writer: add weight observations of value ns (clamped at 0) to h. */
static inline void shmq_hist_add(shmq_ctl_hist_t *h, const shmq_hist_bounds_t *b, int64_t ns,
                                 uint64_t weight)
{
    ns = ns > 0 ? ns : 0;
    shmq_hist_add_bucket(h, shmq_hist_bucket(b, ns), weight);
    shmq_hist_add_total(h, weight, (uint64_t)ns * weight);
}

/*
 * Many writers (consumers in the wake area): add count observations, whose
 * values add up to sum_ns, of which bucket[i] in bucket i (atomic adds of
 * the non-zero ones).
 */
void shmq_hist_add_shared(shmq_ctl_hist_t *h, const uint64_t bucket[SHMQ_HIST_BOUNDS + 1],
                          uint64_t count, uint64_t sum_ns);

/* The writer: stamp a batch of count messages whose records end at end, appended at ns
 * (CLOCK_REALTIME), before it publishes them (shmq_ctl_stamps_t). */
static inline void shmq_stamp_put(shmq_ctl_stamps_t *s, int64_t end, int64_t ns, uint64_t count)
{
    /* Relaxed: the writer is the only writer of seq and the slots. */
    uint64_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    shmq_ctl_stamp_t *t = &s->slot[q % SHMQ_STAMPS];
    atomic_store_explicit(&t->end, end, memory_order_relaxed);
    atomic_store_explicit(&t->ns, ns, memory_order_relaxed);
    atomic_store_explicit(&t->count, count, memory_order_relaxed);
    /* Release: a reader that sees seq sees the slot filled. */
    atomic_store_explicit(&s->seq, q + 1, memory_order_release);
}

/* A stage's cursor in the stamps at its start: the stamps written so far are not its. */
static inline uint64_t shmq_stamps_now(const shmq_ctl_stamps_t *s)
{
    return atomic_load_explicit(&s->seq, memory_order_acquire);
}

/*
 * A stage that follows the writer (single writer of h), now at position
 * pos: every stamp from *cursor on whose batch ends at or below pos adds
 * now - its time to h, once per message; the cursor moves past them.  Reads
 * the clock only when there is such a stamp.
 */
void shmq_stamps_take(const shmq_ctl_stamps_t *s, uint64_t *cursor, int64_t pos, shmq_ctl_hist_t *h,
                      const shmq_hist_bounds_t *b);

/*
 * shmq_stamps_take(), inline where it usually finds nothing to take (a
 * stage woken for each batch): no stamp after the cursor, or the next one's
 * batch ending past pos, is seen here without a call; anything else goes to
 * shmq_stamps_take(), which looks at it all again.
 */
static inline void shmq_stamps_take_inline(const shmq_ctl_stamps_t *s, uint64_t *cursor,
                                           int64_t pos, shmq_ctl_hist_t *h,
                                           const shmq_hist_bounds_t *b)
{
    /* Acquire: a stamp below seq is filled (pairs with shmq_stamp_put's release). */
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    uint64_t c = *cursor;
    if (c == seq) {
        return; /* no new stamp */
    }
    if (c < seq && seq - c <= SHMQ_STAMPS) {
        /* Relaxed: statistics; the look at seq after the fence tells whether the writer
         * reused the slot while we read it (then the full take decides). */
        int64_t end = atomic_load_explicit(&s->slot[c % SHMQ_STAMPS].end, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (end > pos && atomic_load_explicit(&s->seq, memory_order_relaxed) - c <= SHMQ_STAMPS) {
            return; /* the next stamp's batch is not reached yet: nothing to take */
        }
    }
    shmq_stamps_take(s, cursor, pos, h, b);
}

/*
 * The writer: n messages of bytes record bytes stored in the topic whose
 * table entry is e (snapshot incarnation inc).  Counts of an earlier topic of
 * the slot (another incarnation) are dropped first.
 */
static inline void shmq_topic_count_add(shmq_ctl_block_t *b, const shmq_ctl_topic_t *e,
                                        uint32_t inc, uint64_t n, uint64_t bytes)
{
    shmq_ctl_topic_count_t *c = &b->topic_counts[e - b->topics];
    /* Relaxed: this process is the only writer; readers compare inc with the topic's. */
    if (atomic_load_explicit(&c->incarnation, memory_order_relaxed) != inc) {
        atomic_store_explicit(&c->messages_in, 0, memory_order_relaxed);
        atomic_store_explicit(&c->bytes_in, 0, memory_order_relaxed);
        /* Release: a reader that sees the new incarnation sees the cleared counts. */
        atomic_store_explicit(&c->incarnation, inc, memory_order_release);
    }
    atomic_store_explicit(&c->messages_in,
                          atomic_load_explicit(&c->messages_in, memory_order_relaxed) + n,
                          memory_order_relaxed);
    atomic_store_explicit(&c->bytes_in,
                          atomic_load_explicit(&c->bytes_in, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
}

#endif
