/*
 * Unit tests of the pages prepared ahead of the writer (mapped_file.c):
 * new files are written with zeros and pre-faulted (small ones whole, big
 * ones a window at a time), and the preparing thread never writes zeros
 * over bytes the writer announced (shmq_mfq_write_horizon).  With
 * SHMQ_MF_FINE the zeros go in 64 KiB at a time, so that a flush of a few
 * bytes writes back one such piece, not the 1 MiB one write put in the page
 * cache (a SYNC_FLUSH group commit, a ConsumeQueue flush).  Without it the
 * writer's rate decides: huge (2 MiB) pieces while it is fast, which the
 * kernel maps with one page-table entry each where a mapping starts at a
 * 2 MiB boundary (ext4 places them there).  With SHMQ_MF_STAGED (a writer
 * that puts its bytes with pwrite) nothing is faulted into the mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* Open a queue of segments of `size` bytes in the fixture's directory and create its first. */
static shmq_mapped_file_t *first_segment(fixture_t *f, shmq_mfq_t *q, size_t size, unsigned flags)
{
    assert_int_equal(shmq_mfq_open(q, f->dir, size, flags), 0);
    shmq_mapped_file_t *mf;
    assert_int_equal(shmq_mfq_get_or_create(q, 0, &mf), 0);
    return mf;
}

static void test_small_new_segment_is_zero_filled_whole(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf = first_segment(f, &q, SMALL_SEG, SHMQ_MF_PREFAULT);
    assert_int_equal(mf->ready_end, SMALL_SEG);
    for (size_t i = 0; i < SMALL_SEG; i += 4096) {
        assert_int_equal(mf->base[i], 0);
    }
    shmq_mfq_close(&q);
}

/* The fixture's directory emptied, for a queue of another segment size. */
static void fresh_dir(fixture_t *f)
{
    assert_int_equal(tmp_tree_remove(f->dir), 0);
    assert_int_equal(mkdir(f->dir, 0700), 0);
}

/* The pages of [from, to) of mf: how many are in the page cache, and how many are mapped
 * in this process (none is touched). */
static void pages_of(const shmq_mapped_file_t *mf, size_t from, size_t to, size_t *cached,
                     size_t *mapped)
{
    size_t n = (to - from) / 4096;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(mf->base + from, to - from, vec), 0);
    *cached = *mapped = 0;
    for (size_t i = 0; i < n; i++) {
        *cached += vec[i] & 1;
        int present = page_present(mf->base + from + i * 4096);
        assert_true(present >= 0);
        *mapped += (size_t)present;
    }
    free(vec);
}

/* SHMQ_MF_STAGED: the writer puts its bytes with pwrite, not through its mapping.  Its
 * segments are written with zeros as before (the page cache's pieces), but none of their
 * pages is faulted into the mapping, neither at creation nor by the preparing thread. */
static void test_staged_segments_are_zero_filled_not_mapped(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    size_t cached, mapped;
    shmq_mapped_file_t *mf = first_segment(f, &q, SMALL_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_STAGED);
    assert_int_equal(mf->ready_end, SMALL_SEG);
    pages_of(mf, 0, SMALL_SEG, &cached, &mapped);
    assert_int_equal(cached, SMALL_SEG / 4096);
    assert_int_equal(mapped, 0);
    shmq_mfq_close(&q);

    fresh_dir(f);
    mf = first_segment(f, &q, BIG_SEG,
                       SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE | SHMQ_MF_FINE | SHMQ_MF_STAGED);
    shmq_mfq_write_horizon(&q, 60 * MIB);
    shmq_mfq_prefault_ahead(&q, 60 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    /* The preparing thread's window, above what the writer announced (60 MiB, and the
     * chunks ahead of it that the horizon covers). */
    pages_of(mf, 72 * MIB, BIG_SEG, &cached, &mapped);
    assert_int_equal(cached, (BIG_SEG - 72 * MIB) / 4096);
    pages_of(mf, 64 * MIB, BIG_SEG, &cached, &mapped);
    assert_int_equal(mapped, 0);
    uint8_t block[4096];
    assert_int_equal(pread(mf->fd, block, sizeof(block), 70 * MIB), (ssize_t)sizeof(block));
    for (size_t i = 0; i < sizeof(block); i++) {
        assert_int_equal(block[i], 0);
    }
    shmq_mfq_close(&q);

    /* Without the flag the same pages are mapped (the comparison that makes the test). */
    fresh_dir(f);
    mf = first_segment(f, &q, SMALL_SEG, SHMQ_MF_PREFAULT);
    pages_of(mf, 0, SMALL_SEG, &cached, &mapped);
    assert_int_equal(mapped, SMALL_SEG / 4096);
    shmq_mfq_close(&q);
}

static void test_big_new_segment_gets_its_first_window_then_more_ahead(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf = first_segment(f, &q, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
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
    shmq_mapped_file_t *mf = first_segment(f, &q, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
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
    shmq_mapped_file_t *mf = first_segment(f, &q, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
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
    shmq_mapped_file_t *mf =
        first_segment(f, &q, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE | SHMQ_MF_FINE);
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

/* Does this kernel put one 2 MiB write in the page cache as one piece?  (Else every piece is
 * small whatever shmq writes, and only the bounds can be checked.) */
static bool kernel_makes_big_pieces(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static uint8_t zeros[SHMQ_MF_FILL_HUGE]; /* .bss */
    assert_int_equal(pwrite(fd, zeros, sizeof(zeros), 0), (ssize_t)sizeof(zeros));
    assert_int_equal(fsync(fd), 0);
    uint8_t *p = mmap(NULL, sizeof(zeros), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    long long before = io_write_bytes();
    p[4096 * 100] = 1;
    long long cost = io_write_bytes() - before;
    munmap(p, sizeof(zeros));
    close(fd);
    unlink(path);
    return cost > (long long)SHMQ_MF_FILL_FINE;
}

/* A queue without SHMQ_MF_FINE, its first segment created: the first window in fine pieces
 * (no rate known yet). */
static shmq_mapped_file_t *open_rated(fixture_t *f, shmq_mfq_t *q)
{
    shmq_mapped_file_t *mf = first_segment(f, q, BIG_SEG, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
    assert_int_equal(ready_end(q, mf), 64 * MIB);
    return mf;
}

static void test_fast_writer_gets_huge_pieces(void **state)
{
    fixture_t *f = *state;
    if (io_write_bytes() < 0) {
        skip();
    }
    bool big = kernel_makes_big_pieces(f->dir);
    shmq_mfq_t q;
    shmq_mapped_file_t *mf = open_rated(f, &q);
    /* 16 MiB between two asks at once: far above SHMQ_MF_HUGE_RATE. */
    shmq_mfq_prefault_ahead(&q, 0);
    shmq_mfq_write_horizon(&q, 16 * MIB);
    shmq_mfq_prefault_ahead(&q, 16 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    assert_int_equal(shmq_mf_flush(mf, 0, BIG_SEG, SHMQ_FLUSH_MSYNC), 0);
    long long fine = append_cost(mf, 3 * MIB + 500 * 1024);  /* prepared at creation */
    long long huge = append_cost(mf, 72 * MIB + 700 * 1024); /* after the fast asks */
    if (fine > (long long)SHMQ_MF_FILL_FINE) {
        fail_msg("the first window: %lld bytes written back for 100 (at most %u)", fine,
                 SHMQ_MF_FILL_FINE);
    }
    if (huge > (long long)SHMQ_MF_FILL_HUGE || (big && huge <= (long long)SHMQ_MF_FILL_FINE)) {
        fail_msg("after a fast writer: %lld bytes written back for 100 (a huge piece: %u)", huge,
                 SHMQ_MF_FILL_HUGE);
    }
    shmq_mfq_close(&q);
}

static void test_slow_writer_gets_fine_pieces(void **state)
{
    fixture_t *f = *state;
    if (io_write_bytes() < 0) {
        skip();
    }
    shmq_mfq_t q;
    shmq_mapped_file_t *mf = open_rated(f, &q);
    /* 1 MiB in 100 ms (10 MiB/s): below SHMQ_MF_HUGE_RATE. */
    shmq_mfq_prefault_ahead(&q, 15 * MIB);
    usleep(100 * 1000);
    shmq_mfq_write_horizon(&q, 16 * MIB);
    shmq_mfq_prefault_ahead(&q, 16 * MIB);
    wait_prepared(&q);
    assert_int_equal(ready_end(&q, mf), BIG_SEG);
    assert_int_equal(shmq_mf_flush(mf, 0, BIG_SEG, SHMQ_FLUSH_MSYNC), 0);
    long long cost = append_cost(mf, 72 * MIB + 700 * 1024);
    if (cost > (long long)SHMQ_MF_FILL_FINE) {
        fail_msg("after a slow writer: %lld bytes written back for 100 (at most %u)", cost,
                 SHMQ_MF_FILL_FINE);
    }
    shmq_mfq_close(&q);
}

/* What the huge pieces need of the kernel: it maps a file of 2 MiB or more at a 2 MiB boundary
 * (ext4's thp_get_unmapped_area), the writer's mapping and a reader's. */
static void test_segments_are_mapped_at_huge_page_boundaries(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf = first_segment(f, &q, SMALL_SEG, SHMQ_MF_PREFAULT);
    assert_int_equal((uintptr_t)mf->base % SHMQ_MF_FILL_HUGE, 0);
    shmq_mfq_t r; /* a reader's */
    assert_int_equal(shmq_mfq_open(&r, f->dir, SMALL_SEG, SHMQ_MF_READONLY), 0);
    shmq_mapped_file_t *rm = shmq_mfq_find(&r, 0);
    assert_non_null(rm);
    assert_int_equal((uintptr_t)rm->base % SHMQ_MF_FILL_HUGE, 0);
    memset(mf->base, 0x77, SMALL_SEG); /* the whole mapping is the file's */
    assert_int_equal(rm->base[SMALL_SEG - 1], 0x77);
    shmq_mfq_close(&r);
    shmq_mfq_close(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_new_segment_is_zero_filled_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_staged_segments_are_zero_filled_not_mapped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_big_new_segment_gets_its_first_window_then_more_ahead,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_fill_never_overwrites_announced_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopened_segment_keeps_its_data_when_prepared_ahead,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fine_pieces_flush_what_was_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_writer_gets_huge_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_writer_gets_fine_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_are_mapped_at_huge_page_boundaries, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
