/*
 * Unit tests for mapped_file.c: segment names, creation with fallocate,
 * size checks, queue loading rules (zero-length last file, gaps, stray
 * names), background preparation, truncation and deletion.
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

#include "tmp_tree.h"
#include "format/mapped_file.h"
#include "page_cache.h"
#include "shmq/errors.h"

#define SEG 4096

static int setup_dir(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-mf-XXXXXX");
    if (dir == NULL) {
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    return tmp_tree_teardown(state);
}

static void seg_file(char *out, const char *dir, int64_t off)
{
    char name[21];
    shmq_segment_name(off, name);
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static void make_file(const char *dir, const char *name, size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

static void make_seg(const char *dir, int64_t off, size_t size)
{
    char name[21];
    shmq_segment_name(off, name);
    make_file(dir, name, size);
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void test_segment_name_is_20_zero_padded_digits(void **state)
{
    (void)state;
    char name[21];
    shmq_segment_name(0, name);
    assert_string_equal(name, "00000000000000000000");
    shmq_segment_name(1073741824, name);
    assert_string_equal(name, "00000000001073741824");
    shmq_segment_name(6000000, name);
    assert_string_equal(name, "00000000000006000000");
}

static void test_segment_parse_accepts_exactly_20_digits(void **state)
{
    (void)state;
    int64_t off = -1;
    assert_true(shmq_segment_parse("00000000001073741824", &off));
    assert_int_equal(off, 1073741824);
    assert_false(shmq_segment_parse("0000000000107374182", &off));   /* 19 */
    assert_false(shmq_segment_parse("000000000010737418240", &off)); /* 21 */
    assert_false(shmq_segment_parse("0000000000107374182a", &off));
    assert_false(shmq_segment_parse("00000000001073741824.tmp", &off));
    assert_false(shmq_segment_parse("", &off));
    assert_false(shmq_segment_parse("99999999999999999999", &off)); /* > INT64_MAX */
}

static void test_mf_create_allocates_whole_file_zeroed(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;
    struct stat st;

    assert_int_equal(shmq_mf_create(&mf, dir, 8192, SEG, SHMQ_MF_PREFAULT | SHMQ_MF_MLOCK), 0);
    assert_int_equal(mf.start_offset, 8192);
    assert_int_equal(mf.size, SEG);
    assert_false(mf.readonly);
    assert_int_equal(stat(mf.path, &st), 0);
    assert_int_equal(st.st_size, SEG);
    assert_true((uint64_t)st.st_blocks * 512 >= SEG); /* allocated, not sparse */
    for (size_t i = 0; i < SEG; i++) {
        assert_int_equal(mf.base[i], 0);
    }
    char expect[PATH_MAX];
    seg_file(expect, dir, 8192);
    assert_string_equal(mf.path, expect);
    shmq_mf_close(&mf);
}

static void test_mf_create_keeps_contents_of_existing_file(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;

    assert_int_equal(shmq_mf_create(&mf, dir, 0, SEG, 0), 0);
    mf.base[100] = 0x5a;
    shmq_mf_close(&mf);
    assert_int_equal(shmq_mf_create(&mf, dir, 0, SEG, SHMQ_MF_PREFAULT), 0);
    assert_int_equal(mf.base[100], 0x5a);
    shmq_mf_close(&mf);
}

static void test_mf_create_rejects_larger_existing_file(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;

    make_seg(dir, 0, 2 * SEG);
    assert_int_equal(shmq_mf_create(&mf, dir, 0, SEG, 0), SHMQ_E_SEGMENT);
}

static void test_mf_open_rejects_wrong_size_naming_file_and_sizes(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;
    char path[PATH_MAX];

    make_seg(dir, 0, 100);
    seg_file(path, dir, 0);
    assert_int_equal(shmq_mf_open(&mf, path, 0, SEG, 0), SHMQ_E_SEGMENT);
    assert_non_null(strstr(shmq_error_detail(), path));
    assert_non_null(strstr(shmq_error_detail(), "100"));
    assert_non_null(strstr(shmq_error_detail(), "4096"));
}

static void test_mf_open_readonly_reads_written_bytes(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t w, r;

    assert_int_equal(shmq_mf_create(&w, dir, 0, SEG, 0), 0);
    memcpy(w.base + 10, "hello", 5);
    assert_int_equal(shmq_mf_open(&r, w.path, 0, SEG, SHMQ_MF_READONLY), 0);
    assert_true(r.readonly);
    assert_memory_equal(r.base + 10, "hello", 5);
    memcpy(w.base + 20, "later", 5); /* shared mapping: visible at once */
    assert_memory_equal(r.base + 20, "later", 5);
    shmq_mf_close(&r);
    shmq_mf_close(&w);
}

static void test_mf_flush_succeeds_and_reports_bad_fd(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;

    assert_int_equal(shmq_mf_create(&mf, dir, 0, SEG, 0), 0);
    memset(mf.base + 5, 1, 3000);
    assert_int_equal(shmq_mf_flush(&mf, 5, 3005, SHMQ_FLUSH_MSYNC), 0);
    assert_int_equal(shmq_mf_flush(&mf, 0, SEG, SHMQ_FLUSH_FDATASYNC), 0);
    int fd = mf.fd;
    mf.fd = -1;
    assert_int_equal(shmq_mf_flush(&mf, 0, SEG, SHMQ_FLUSH_FDATASYNC), -EBADF);
    mf.fd = fd;
    shmq_mf_close(&mf);
}

static void test_mf_destroy_unlinks_file(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t mf;

    assert_int_equal(shmq_mf_create(&mf, dir, 0, SEG, 0), 0);
    char path[PATH_MAX];
    strcpy(path, mf.path);
    assert_int_equal(shmq_mf_destroy(&mf), 0);
    assert_false(file_exists(path));
}

static void test_mfq_open_loads_segments_in_order(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;

    make_seg(dir, 2 * SEG, SEG);
    make_seg(dir, 0, SEG);
    make_seg(dir, SEG, SEG);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), 0);
    assert_int_equal(q.count, 3);
    assert_int_equal(shmq_mfq_min_offset(&q), 0);
    assert_int_equal(shmq_mfq_end_offset(&q), 3 * SEG);
    assert_int_equal(shmq_mfq_first(&q)->start_offset, 0);
    assert_int_equal(shmq_mfq_last(&q)->start_offset, 2 * SEG);
    assert_int_equal(shmq_mfq_find(&q, SEG + 17)->start_offset, SEG);
    assert_null(shmq_mfq_find(&q, 3 * SEG));
    assert_null(shmq_mfq_find(&q, -1));
    shmq_mfq_close(&q);
}

static void test_mfq_open_removes_zero_length_last_file(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    char path[PATH_MAX];

    make_seg(dir, 0, SEG);
    make_seg(dir, SEG, 0);
    seg_file(path, dir, SEG);
    /* Read-only: skipped but left alone. */
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_READONLY), 0);
    assert_int_equal(q.count, 1);
    shmq_mfq_close(&q);
    assert_true(file_exists(path));
    /* Writable: deleted. */
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), 0);
    assert_int_equal(q.count, 1);
    assert_int_equal(shmq_mfq_end_offset(&q), SEG);
    shmq_mfq_close(&q);
    assert_false(file_exists(path));
}

static void test_mfq_open_rejects_wrong_size_file(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;

    make_seg(dir, 0, SEG - 1);
    make_seg(dir, SEG, SEG);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), SHMQ_E_SEGMENT);
    assert_non_null(strstr(shmq_error_detail(), "00000000000000000000"));
}

static void test_mfq_open_rejects_gap(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;

    make_seg(dir, 0, SEG);
    make_seg(dir, 2 * SEG, SEG);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), SHMQ_E_SEGMENT);
    assert_non_null(strstr(shmq_error_detail(), "00000000000000008192"));
}

static void test_mfq_open_rejects_unaligned_start(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;

    make_seg(dir, 100, SEG);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), SHMQ_E_SEGMENT);
}

static void test_mfq_open_ignores_other_names_and_removes_tmp(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    char path[PATH_MAX];

    make_seg(dir, 0, SEG);
    make_file(dir, "00000000000000004096.tmp", 7);
    make_file(dir, "README", 3);
    make_file(dir, "0000000000000000409", 3);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), 0);
    assert_int_equal(q.count, 1);
    shmq_mfq_close(&q);
    snprintf(path, sizeof(path), "%s/00000000000000004096.tmp", dir);
    assert_false(file_exists(path));
    snprintf(path, sizeof(path), "%s/README", dir);
    assert_true(file_exists(path));
}

static void test_mfq_open_creates_missing_dir_unless_readonly(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    char sub[PATH_MAX];

    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(shmq_mfq_open(&q, sub, SEG, SHMQ_MF_READONLY), 0);
    assert_int_equal(q.count, 0);
    shmq_mfq_close(&q);
    assert_false(file_exists(sub));
    assert_int_equal(shmq_mfq_open(&q, sub, SEG, 0), 0);
    shmq_mfq_close(&q);
    assert_true(file_exists(sub));
}

static void test_mfq_get_or_create_appends_contiguously_only(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;

    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_PREFAULT), 0);
    assert_int_equal(shmq_mfq_get_or_create(&q, 3 * SEG + 1, &mf), SHMQ_E_RANGE);
    assert_int_equal(shmq_mfq_get_or_create(&q, 3 * SEG, &mf), 0);
    assert_int_equal(mf->start_offset, 3 * SEG);
    assert_int_equal(shmq_mfq_get_or_create(&q, 5 * SEG, &mf), SHMQ_E_RANGE);
    assert_int_equal(shmq_mfq_get_or_create(&q, 4 * SEG, &mf), 0);
    shmq_mapped_file_t *again;
    assert_int_equal(shmq_mfq_get_or_create(&q, 4 * SEG, &again), 0);
    assert_ptr_equal(again, mf);
    assert_int_equal(q.count, 2);
    shmq_mfq_close(&q);
}

static void test_mfq_prepare_creates_next_segment_outside_segs(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;
    char path[PATH_MAX];
    struct stat st;

    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_PREPARE | SHMQ_MF_PREFAULT), 0);
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    /* Installing segment 0 asked for segment 1. */
    assert_int_equal(shmq_mfq_prepare_wait(&q), 0);
    seg_file(path, dir, SEG);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, SEG);
    assert_int_equal(q.count, 1);
    assert_null(shmq_mfq_find(&q, SEG));
    assert_non_null(q.prep_ready);
    shmq_mapped_file_t *prepared = q.prep_ready;
    assert_int_equal(shmq_mfq_get_or_create(&q, SEG, &mf), 0);
    assert_ptr_equal(mf, prepared);
    assert_int_equal(q.count, 2);
    assert_int_equal(shmq_mfq_prepare_wait(&q), 0);
    seg_file(path, dir, 2 * SEG);
    assert_true(file_exists(path));
    /* A request that is not the next place is ignored. */
    shmq_mfq_prepare(&q, 7 * SEG);
    assert_int_equal(shmq_mfq_prepare_wait(&q), 0);
    seg_file(path, dir, 7 * SEG);
    assert_false(file_exists(path));
    shmq_mfq_close(&q);
}

static void test_mfq_close_keeps_prepared_file_loadable(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;

    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_PREPARE), 0);
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    mf->base[0] = 1;
    assert_int_equal(shmq_mfq_prepare_wait(&q), 0);
    shmq_mfq_close(&q);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), 0);
    assert_int_equal(q.count, 2);
    assert_int_equal(shmq_mfq_first(&q)->base[0], 1);
    assert_int_equal(shmq_mfq_last(&q)->base[0], 0);
    shmq_mfq_close(&q);
}

static void test_mfq_truncate_unlinks_later_segments_and_zeroes_tail(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;
    char path[PATH_MAX];
    uint8_t buf[SEG];

    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_PREPARE), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmq_mfq_get_or_create(&q, (int64_t)i * SEG, &mf), 0);
        memset(mf->base, 0xab, SEG);
    }
    assert_int_equal(shmq_mfq_prepare_wait(&q), 0);
    assert_int_equal(shmq_mfq_truncate(&q, SEG + 100), 0);
    assert_int_equal(q.count, 2);
    assert_null(q.prep_ready);
    seg_file(path, dir, 2 * SEG);
    assert_false(file_exists(path));
    seg_file(path, dir, 3 * SEG); /* the prepared one */
    assert_false(file_exists(path));
    seg_file(path, dir, SEG);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, SEG, 0), SEG);
    close(fd);
    for (int i = 0; i < SEG; i++) {
        assert_int_equal(buf[i], i < 100 ? 0xab : 0);
    }
    /* Cutting at a segment start removes that segment entirely. */
    assert_int_equal(shmq_mfq_truncate(&q, SEG), 0);
    assert_int_equal(q.count, 1);
    assert_int_equal(shmq_mfq_last(&q)->base[SEG - 1], 0xab);
    shmq_mfq_close(&q);
}

static void test_mfq_delete_first_refuses_last_segment(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;
    char path[PATH_MAX];

    assert_int_equal(shmq_mfq_open(&q, dir, SEG, 0), 0);
    assert_int_equal(shmq_mfq_delete_first(&q), SHMQ_E_RANGE);
    assert_int_equal(shmq_mfq_get_or_create(&q, 0, &mf), 0);
    assert_int_equal(shmq_mfq_get_or_create(&q, SEG, &mf), 0);
    assert_int_equal(shmq_mfq_delete_first(&q), 0);
    seg_file(path, dir, 0);
    assert_false(file_exists(path));
    assert_int_equal(shmq_mfq_min_offset(&q), SEG);
    assert_int_equal(shmq_mfq_find(&q, SEG + 5)->start_offset, SEG);
    assert_int_equal(shmq_mfq_delete_first(&q), SHMQ_E_RANGE);
    shmq_mfq_close(&q);
}

static void test_mfq_refresh_sees_new_and_removed_segments(void **state)
{
    const char *dir = *state;
    shmq_mfq_t w, r;
    shmq_mapped_file_t *mf;

    assert_int_equal(shmq_mfq_open(&w, dir, SEG, 0), 0);
    assert_int_equal(shmq_mfq_open(&r, dir, SEG, SHMQ_MF_READONLY), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(shmq_mfq_get_or_create(&w, 0, &mf), 0);
    assert_int_equal(shmq_mfq_refresh(&r), 1);
    make_seg(dir, SEG, 10); /* still being created: not yet picked up */
    assert_int_equal(shmq_mfq_refresh(&r), 1);
    make_seg(dir, SEG, 0);
    assert_int_equal(shmq_mfq_get_or_create(&w, SEG, &mf), 0);
    mf->base[3] = 9;
    assert_int_equal(shmq_mfq_refresh(&r), 2);
    assert_int_equal(shmq_mfq_find(&r, SEG + 3)->base[3], 9);
    assert_int_equal(shmq_mfq_delete_first(&w), 0);
    assert_int_equal(shmq_mfq_refresh(&r), 1);
    assert_int_equal(shmq_mfq_min_offset(&r), SEG);
    shmq_mfq_close(&r);
    shmq_mfq_close(&w);
}

static void test_mfq_readonly_refuses_changes(void **state)
{
    const char *dir = *state;
    shmq_mfq_t q;
    shmq_mapped_file_t *mf;

    make_seg(dir, 0, SEG);
    assert_int_equal(shmq_mfq_open(&q, dir, SEG, SHMQ_MF_READONLY | SHMQ_MF_PREPARE), 0);
    assert_false(q.prep_running);
    assert_true(shmq_mfq_first(&q)->readonly);
    assert_int_equal(shmq_mfq_get_or_create(&q, SEG, &mf), -EROFS);
    assert_int_equal(shmq_mfq_truncate(&q, 0), -EROFS);
    shmq_mfq_close(&q);
}

/*
 * PITFALLS 18: the flusher maps the CommitLog read-only; its flush must write
 * back what the writer's mapping dirtied.  msync of a mapping of a file opened
 * O_RDONLY returns 0 and writes nothing, so a flush through such a mapping
 * must not be a bare msync.  The page-cache dirty bit tells, without a power cut.
 */
static void test_mf_flush_of_readonly_mapping_writes_back_what_another_mapping_dirtied(void **state)
{
    const char *dir = *state;
    shmq_mapped_file_t w, ro, syncer;
    char path[PATH_MAX];

    assert_int_equal(shmq_mf_create(&w, dir, 0, 4 * SEG, 0), 0);
    seg_file(path, dir, 0);
    assert_int_equal(shmq_mf_open(&ro, path, 0, 4 * SEG, SHMQ_MF_READONLY), 0);
    assert_int_equal(shmq_mf_open(&syncer, path, 0, 4 * SEG, SHMQ_MF_READONLY | SHMQ_MF_SYNCER), 0);
    assert_true(syncer.readonly);
    assert_true(syncer.syncable);
    if (dirty_page(w.base + SEG + 7, 1) < 0) {
        shmq_mf_close(&syncer);
        shmq_mf_close(&ro);
        shmq_mf_close(&w);
        skip(); /* page flags need root */
    }
    assert_int_equal(page_dirty(w.base + SEG + 7), 1);
    /* A read-only mapping without a writable descriptor: fdatasync, not a no-op msync. */
    assert_int_equal(shmq_mf_flush(&ro, SEG, SEG + 8, SHMQ_FLUSH_MSYNC), 0);
    assert_int_equal(page_dirty(w.base + SEG + 7), 0);
    /* The flusher's mapping: an msync of the range that really writes back. */
    assert_int_equal(dirty_page(w.base + 2 * SEG + 9, 2), 1);
    assert_int_equal(shmq_mf_flush(&syncer, 2 * SEG, 2 * SEG + 10, SHMQ_FLUSH_MSYNC), 0);
    assert_int_equal(page_dirty(w.base + 2 * SEG + 9), 0);
    assert_int_equal(syncer.base[2 * SEG + 9], w.base[2 * SEG + 9]);
    shmq_mf_close(&syncer);
    shmq_mf_close(&ro);
    shmq_mf_close(&w);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_name_is_20_zero_padded_digits),
        cmocka_unit_test(test_segment_parse_accepts_exactly_20_digits),
        T(test_mf_create_allocates_whole_file_zeroed),
        T(test_mf_create_keeps_contents_of_existing_file),
        T(test_mf_create_rejects_larger_existing_file),
        T(test_mf_open_rejects_wrong_size_naming_file_and_sizes),
        T(test_mf_open_readonly_reads_written_bytes),
        T(test_mf_flush_succeeds_and_reports_bad_fd),
        T(test_mf_flush_of_readonly_mapping_writes_back_what_another_mapping_dirtied),
        T(test_mf_destroy_unlinks_file),
        T(test_mfq_open_loads_segments_in_order),
        T(test_mfq_open_removes_zero_length_last_file),
        T(test_mfq_open_rejects_wrong_size_file),
        T(test_mfq_open_rejects_gap),
        T(test_mfq_open_rejects_unaligned_start),
        T(test_mfq_open_ignores_other_names_and_removes_tmp),
        T(test_mfq_open_creates_missing_dir_unless_readonly),
        T(test_mfq_get_or_create_appends_contiguously_only),
        T(test_mfq_prepare_creates_next_segment_outside_segs),
        T(test_mfq_close_keeps_prepared_file_loadable),
        T(test_mfq_truncate_unlinks_later_segments_and_zeroes_tail),
        T(test_mfq_delete_first_refuses_last_segment),
        T(test_mfq_refresh_sees_new_and_removed_segments),
        T(test_mfq_readonly_refuses_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
