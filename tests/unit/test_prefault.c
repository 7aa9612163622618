/*
 * Unit tests of the pages prepared ahead of the writer (mapped_file.c):
 * new files are written with zeros and pre-faulted (small ones whole, big
 * ones a window at a time), and the preparing thread never writes zeros
 * over bytes the writer announced (shmq_mfq_write_horizon).  With
 * SHMQ_MF_FINE the zeros go in 64 KiB at a time, so that a flush of a few
 * bytes writes back one such piece, not the 1 MiB one write put in the page
 * cache (a SYNC_FLUSH group commit, a ConsumeQueue flush).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "page_cache.h"
#include "tmp_tree.h"
#include "format/mapped_file.h"
#include "shmq/errors.h"

#define MIB       (1024 * 1024)
#define BIG_SEG   (80 * MIB) /* bigger than one prepared window (64 MiB) */
#define SMALL_SEG (6 * MIB)

typedef struct fixture {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-prefault.XXXXXX");
    if (!f || !mkdtemp(f->dir)) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tmp_tree_remove(f->dir);
    free(f);
    return 0;
}

/* The prepared end of mf, read under the queue's lock. */
static size_t ready_end(shmq_mfq_t *q, shmq_mapped_file_t *mf)
{
    pthread_mutex_lock(&q->prep_lock);
    size_t r = mf->ready_end;
    pthread_mutex_unlock(&q->prep_lock);
    return r;
}

/* Wait (bounded) until the preparing thread has nothing left to do. */
static void wait_prepared(shmq_mfq_t *q)
{
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&q->prep_lock);
        bool idle = !q->warm_busy && (q->warm_seg == NULL || q->warm_pos >= q->warm_end);
        pthread_mutex_unlock(&q->prep_lock);
        if (idle) {
            return;
        }
        usleep(1000);
    }
    fail_msg("the preparing thread did not finish");
}

static void test_small_new_segment_is_zero_filled_whole(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    assert_int_equal(shmq_mfq_open(&q, f->dir, SMALL_SEG, SHMQ_MF_PREFAULT), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    assert_int_equal(mf->ready_end, SMALL_SEG);
    for (size_t i = 0; i < SMALL_SEG; i += 4096) {
        assert_int_equal(mf->base[i], 0);
    }
    shmq_mfq_close(&q);
}

static void test_big_new_segment_gets_its_first_window_then_more_ahead(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    assert_int_equal(shmq_mfq_open(&q, f->dir, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    assert_int_equal(ready_end(&q, mf), 64 * MIB);
    shmq_mfq_write_horizon(&q, 60 * MIB);
    shmq_mfq_prefault_ahead(&q, 60 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    shmq_mfq_close(&q);
}

static void test_zero_fill_never_overwrites_announced_writes(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    assert_int_equal(shmq_mfq_open(&q, f->dir, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    /* Write the whole segment as the writer does, asking for windows ahead as it goes. */
    for (size_t pos = 0; pos < BIG_SEG; pos += 4096) {
        if (pos % (16 * MIB) == 0) {
            shmq_mfq_prefault_ahead(&q, (int64_t)pos);
        }
        shmq_mfq_write_horizon(&q, (int64_t)pos + 4096);
        memset(mf->base + pos, 0xA5, 4096);
    }
    wait_prepared(&q);
    for (size_t pos = 0; pos < BIG_SEG; pos += 512) {
        if (mf->base[pos] != 0xA5) {
            fail_msg("byte %zu was overwritten", pos);
        }
    }
    shmq_mfq_close(&q);
}

static void test_reopened_segment_keeps_its_data_when_prepared_ahead(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    assert_int_equal(shmq_mfq_open(&q, f->dir, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    shmq_mfq_write_horizon(&q, 70 * MIB);
    memset(mf->base, 0x5A, 70 * MIB);
    shmq_mfq_close(&q);

    /* Reopened (a writer restart): the window goes after the data, never over it. */
    assert_int_equal(shmq_mfq_open(&q, f->dir, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE), 0);
    mf = shmq_mfq_find(&q, 0); /* the next segment was prepared too: not the last one */
    assert_non_null(mf);
    shmq_mfq_prefault_ahead(&q, 70 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    for (size_t pos = 0; pos < 70 * MIB; pos += 512) {
        if (mf->base[pos] != 0x5A) {
            fail_msg("byte %zu of the data was overwritten", pos);
        }
    }
    for (size_t pos = 70 * MIB; pos < BIG_SEG; pos += 512) {
        assert_int_equal(mf->base[pos], 0);
    }
    shmq_mfq_close(&q);
}

/* What storing 100 bytes at off of a clean mf and flushing them costs in bytes written. */
static long long append_cost(shmq_mapped_file_t *mf, size_t off)
{
    long long before = io_write_bytes();
    memset(mf->base + off, 0x3C, 100);
    assert_int_equal(shmq_mf_flush(mf, off - off % 4096, off + 100, SHMQ_FLUSH_MSYNC), 0);
    return io_write_bytes() - before;
}

static void test_fine_pieces_flush_what_was_written(void **state)
{
    fixture_t *f = *state;
    if (io_write_bytes() < 0) {
        skip(); /* no I/O accounting in this kernel */
    }
    shmq_mfq_t q;
    assert_int_equal(
        shmq_mfq_open(&q, f->dir, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE | SHMQ_MF_FINE), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    shmq_mfq_prefault_ahead(&q, 60 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    assert_int_equal(shmq_mf_flush(mf, 0, BIG_SEG, SHMQ_FLUSH_MSYNC), 0); /* the zeros, clean */
    /* In the window prepared at creation and in one the preparing thread added, each append
     * in the middle of what a 1 MiB write would have made one piece. */
    const size_t at[] = {3 * MIB + 500 * 1024, 40 * MIB + 300 * 1024, 72 * MIB + 700 * 1024};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        for (size_t k = 0; k < 4; k++) {
            long long cost = append_cost(mf, at[i] + k * 100);
            if (cost > (long long)SHMQ_MF_FILL_FINE) {
                fail_msg("100 bytes at %zu flushed: %lld bytes written back (at most %u)",
                         at[i] + k * 100, cost, SHMQ_MF_FILL_FINE);
            }
        }
    }
    shmq_mfq_close(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_new_segment_is_zero_filled_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_big_new_segment_gets_its_first_window_then_more_ahead,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_fill_never_overwrites_announced_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopened_segment_keeps_its_data_when_prepared_ahead,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fine_pieces_flush_what_was_written, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
