/*
 * shmq-bench: the log-linear latency histogram, the shared-memory area the
 * benchmark's processes report through, and small time helpers.
 *
 * Percentiles come from bucket counts, never from averages: a value falls
 * in one of 32 linear buckets of its power of two, so a reported percentile
 * is at most 3.2 % above the true one (and never above the recorded max).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"

volatile int bench_interrupted;

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The latency clock: the TSC (a handful of cycles; clock_gettime costs ~25 ns
 * in this VM, twice per message), converted to CLOCK_MONOTONIC nanoseconds
 * with a rate measured once in the parent, so that every forked process
 * reads the same scale.  Other architectures read CLOCK_MONOTONIC.
 */
#if defined(__x86_64__) || defined(__i386__)
double bench_tick_ns;
uint64_t bench_tick_base;
int64_t bench_tick_base_ns;

void bench_clock_init(void)
{
    int64_t t0 = bench_now_ns();
    uint64_t c0 = __rdtsc();
    bench_sleep_ns(20000000);
    int64_t t1 = bench_now_ns();
    uint64_t c1 = __rdtsc();
    if (c1 > c0 && t1 > t0) {
        bench_tick_ns = (double)(t1 - t0) / (double)(c1 - c0);
        bench_tick_base = c1;
        bench_tick_base_ns = t1;
    }
}
#else
void bench_clock_init(void) {}
#endif

void bench_sleep_ns(int64_t ns)
{
    if (ns <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !bench_interrupted) {
    }
}

void bench_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("shmq-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- histogram --------------------------------------------------------------------------- */

void bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Highest value that falls into bucket i. */
static uint64_t hist_bucket_high(size_t i)
{
    if (i < (1u << BENCH_HIST_SUB_BITS)) {
        return i;
    }
    size_t shift = i / BENCH_HIST_HALF - 1;
    uint64_t r = i % BENCH_HIST_HALF + BENCH_HIST_HALF;
    return ((r + 1) << shift) - 1;
}

void bench_hist_add_n(bench_hist_t *h, uint64_t v, uint64_t n)
{
    if (n == 0) {
        return;
    }
    h->buckets[bench_hist_index(v)] += n;
    h->count += n;
    /* n == 1 (every single acknowledgement): (double)v * 1.0 is (double)v, exactly. */
    h->sum += n == 1 ? (double)v : (double)v * (double)n;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src)
{
    if (src->count == 0) {
        return;
    }
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t bench_hist_quantile(const bench_hist_t *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (q <= 0) {
        return h->min;
    }
    if (q >= 1) {
        return h->max;
    }
    /* The rank of the value: the smallest with at least q of all values at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max) {
                v = h->max;
            }
            if (v < h->min) {
                v = h->min;
            }
            return v;
        }
    }
    return h->max;
}

/* ---- shared area --------------------------------------------------------------------------- */

bench_shared_t *bench_shared_create(int nprocs)
{
    size_t size = sizeof(bench_shared_t) + (size_t)nprocs * sizeof(bench_proc_t);
    /* Shared with the forked producer and consumer processes; zero-filled. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    bench_shared_t *s = p;
    s->nprocs = nprocs;
    for (int i = 0; i < nprocs; i++) {
        bench_hist_init(&s->procs[i].hist);
    }
    return s;
}

void bench_shared_free(bench_shared_t *s)
{
    if (s) {
        munmap(s, sizeof(bench_shared_t) + (size_t)s->nprocs * sizeof(bench_proc_t));
    }
}
