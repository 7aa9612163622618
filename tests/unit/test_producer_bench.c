/*
 * Unit tests of shmq-bench produce's per-acknowledgement helpers
 * (tools/shmq-bench/bench.h, hist.c, compiled in here): the inline
 * single-value histogram add against bench_hist_add_n(h, v, 1), the
 * bucket index against the function it was moved from, and the inline TSC
 * clock (bench_fast_ns) against CLOCK_MONOTONIC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../tools/shmq-bench/hist.c"

static uint64_t next_value(uint64_t *seed, int i)
{
    *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
    switch (i % 4) {
    case 0:
        return *seed >> 58; /* below 64 */
    case 1:
        return *seed >> (i % 64);
    case 2:
        return (1ULL << (i % 64)) - (uint64_t)(i % 3);
    default:
        return *seed;
    }
}

static void test_hist_add1_matches_add_n(void **state)
{
    (void)state;
    bench_hist_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    bench_hist_init(a);
    bench_hist_init(b);
    uint64_t seed = 77;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = next_value(&seed, i);
        assert_true(bench_hist_index(v) < BENCH_HIST_BUCKETS);
        bench_hist_add1(a, v);
        bench_hist_add_n(b, v, 1);
        if (i % 1000 == 0) {
            assert_memory_equal(a, b, sizeof(*a));
        }
    }
    assert_memory_equal(a, b, sizeof(*a));
    free(a);
    free(b);
}

/* The inline TSC clock against CLOCK_MONOTONIC: the same time (within a millisecond's
 * scheduling), never going back; before bench_clock_init, CLOCK_MONOTONIC itself. */
static void test_fast_ns_matches_now(void **state)
{
    (void)state;
    int64_t a = bench_now_ns(), f = bench_fast_ns(), b = bench_now_ns();
    assert_true(f >= a && f <= b);
    bench_clock_init();
    int64_t last = bench_fast_ns();
    for (int i = 0; i < 1000; i++) {
        a = bench_now_ns();
        f = bench_fast_ns();
        b = bench_now_ns();
        assert_true(f >= last);
        last = f;
        if (bench_fast_ready()) {
            assert_true(f >= a - 1000000 && f <= b + 1000000);
            assert_int_equal(bench_tsc_ns() >= f, true);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_add1_matches_add_n),
        cmocka_unit_test(test_fast_ns_matches_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
