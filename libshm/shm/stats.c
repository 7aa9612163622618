/*
 * The bucket bounds of the control block's histograms (stats.h).  Changing
 * them changes what the buckets mean: bump SHMQ_CTL_VERSION with them.
 */
#include "shm/stats.h"

#include "base/clock.h"

#define US 1000LL
#define MS 1000000LL
#define S  1000000000LL

static const int64_t send_ns[] = {1 * MS,   2 * MS,   5 * MS, 10 * MS,   25 * MS, 50 * MS, 100 * MS,
                                  250 * MS, 500 * MS, 1 * S,  2500 * MS, 5 * S,   10 * S};
static const int64_t flush_ns[] = {10 * US,  25 * US,   50 * US,  100 * US, 250 * US, 500 * US,
                                   1 * MS,   2500 * US, 5 * MS,   10 * MS,  25 * MS,  50 * MS,
                                   100 * MS, 250 * MS,  500 * MS, 1 * S};

static const int64_t stage_ns[] = {10 * US,  25 * US,  50 * US, 100 * US, 250 * US, 500 * US,
                                   1 * MS,   5 * MS,   10 * MS, 25 * MS,  50 * MS,  100 * MS,
                                   250 * MS, 500 * MS, 1 * S,   10 * S};

_Static_assert(sizeof(send_ns) / sizeof(send_ns[0]) <= SHMQ_HIST_BOUNDS, "send buckets");
_Static_assert(sizeof(stage_ns) / sizeof(stage_ns[0]) <= SHMQ_HIST_BOUNDS, "stage buckets");
_Static_assert(sizeof(flush_ns) / sizeof(flush_ns[0]) <= SHMQ_HIST_BOUNDS, "flush buckets");

const shmq_hist_bounds_t shmq_hist_send = {send_ns, (int)(sizeof(send_ns) / sizeof(send_ns[0]))};
const shmq_hist_bounds_t shmq_hist_flush = {flush_ns,
                                            (int)(sizeof(flush_ns) / sizeof(flush_ns[0]))};
const shmq_hist_bounds_t shmq_hist_stage = {stage_ns,
                                            (int)(sizeof(stage_ns) / sizeof(stage_ns[0]))};

void shmq_hist_add_shared(shmq_ctl_hist_t *h, const uint64_t bucket[SHMQ_HIST_BOUNDS + 1],
                          uint64_t count, uint64_t sum_ns)
{
    /* Relaxed atomic adds: many processes add, readers take statistics. */
    for (int i = 0; i <= SHMQ_HIST_BOUNDS; i++) {
        if (bucket[i]) {
            atomic_fetch_add_explicit(&h->bucket[i], bucket[i], memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&h->count, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, sum_ns, memory_order_relaxed);
}

void shmq_stamps_take(const shmq_ctl_stamps_t *s, uint64_t *cursor, int64_t pos, shmq_ctl_hist_t *h,
                      const shmq_hist_bounds_t *b)
{
    int64_t now_ns = 0;
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    uint64_t c = *cursor;
    if (c > seq) {
        c = seq; /* a new control block: its stamps start again */
    }
    if (seq - c > SHMQ_STAMPS) {
        c = seq - SHMQ_STAMPS; /* the older ones were overwritten */
    }
    uint64_t count = 0, sum = 0;
    for (; c < seq; c++) {
        const shmq_ctl_stamp_t *t = &s->slot[c % SHMQ_STAMPS];
        /* Relaxed: statistics; a slot overwritten while read is dropped below. */
        int64_t end = atomic_load_explicit(&t->end, memory_order_relaxed);
        int64_t ns = atomic_load_explicit(&t->ns, memory_order_relaxed);
        uint64_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) - c > SHMQ_STAMPS) {
            continue; /* the writer reused the slot while we read it */
        }
        if (end > pos) {
            break;
        }
        if (now_ns == 0) {
            now_ns = shmq_now_ns();
        }
        int64_t v = now_ns > ns ? now_ns - ns : 0;
        shmq_hist_add_bucket(h, shmq_hist_bucket(b, v), n);
        count += n;
        sum += (uint64_t)v * n;
    }
    *cursor = c;
    if (count) {
        shmq_hist_add_total(h, count, sum);
    }
}
