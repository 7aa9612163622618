/*
 * Unit tests of shmq-bench produce's per-acknowledgement helpers
 * (tools/shmq-bench/bench.h, hist.c, compiled in here): the inline
 * single-value histogram add against bench_hist_add_n(h, v, 1), and the
 * bucket index against the function it was moved from.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_add1_matches_add_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
