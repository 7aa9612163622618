/*
 * Unit tests of config/delaycheck (libshm/format/delay_check.c): a new file
 * has no progress; what is put is got back, per level, after a close and an
 * open (the mapping is the file); slots alternate, so a slot torn by a kill
 * (any of its stores missing) leaves the previous progress; a file that is
 * not ours reads as empty; levels out of range are refused; removing it is
 * idempotent; a symbolic link at its name is refused; a store without a
 * config/ directory yet gets one (0750) and the file (0640).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmp_tree.h"
#include "format/delay_check.h"
#include "shmq/errors.h"

typedef struct fixture {
    char root[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "/tmp/shmq-delaycheck-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/config", f->root);
    if (mkdir(dir, 0750) != 0) {
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/config/delaycheck", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tmp_tree_remove(f->root);
    free(f);
    return 0;
}

static shmq_delay_anchor_t anchor(int64_t q)
{
    shmq_delay_anchor_t a = {q, 1000 + q * 300, 1700000000000LL + q};
    return a;
}

static void expect_level(shmq_delaycheck_t *dc, int level, int64_t want)
{
    int64_t off = -1;
    shmq_delay_anchor_t a;
    assert_true(shmq_delaycheck_get(dc, level, &off, &a));
    assert_int_equal(off, want);
    shmq_delay_anchor_t w = anchor(want - 1);
    assert_memory_equal(&a, &w, sizeof(a));
}

static void test_new_file_is_empty_and_put_survives_reopen(void **state)
{
    fixture_t *f = *state;
    shmq_delaycheck_t dc;
    assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, SHMQ_DELAYCHECK_SIZE);
    int64_t off;
    shmq_delay_anchor_t a;
    for (int l = 1; l <= SHMQ_DELAYCHECK_LEVELS; l++) {
        assert_false(shmq_delaycheck_get(&dc, l, &off, &a));
    }
    for (int64_t k = 1; k <= 5; k++) {
        shmq_delay_anchor_t an = anchor(k * 10 - 1);
        shmq_delaycheck_put(&dc, 3, k * 10, &an);
        expect_level(&dc, 3, k * 10);
    }
    shmq_delay_anchor_t an = anchor(6);
    shmq_delaycheck_put(&dc, SHMQ_DELAYCHECK_LEVELS, 7, &an);
    shmq_delaycheck_close(&dc);

    assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
    expect_level(&dc, 3, 50);
    expect_level(&dc, SHMQ_DELAYCHECK_LEVELS, 7);
    assert_false(shmq_delaycheck_get(&dc, 2, &off, &a));
    assert_false(shmq_delaycheck_get(&dc, 4, &off, &a));
    /* Out of range: nothing stored, nothing read. */
    shmq_delaycheck_put(&dc, 0, 9, &an);
    shmq_delaycheck_put(&dc, SHMQ_DELAYCHECK_LEVELS + 1, 9, &an);
    assert_false(shmq_delaycheck_get(&dc, 0, &off, &a));
    assert_false(shmq_delaycheck_get(&dc, SHMQ_DELAYCHECK_LEVELS + 1, &off, &a));
    /* Puts after a reopen go on from the newest slot. */
    an = anchor(59);
    shmq_delaycheck_put(&dc, 3, 60, &an);
    expect_level(&dc, 3, 60);
    shmq_delaycheck_close(&dc);
    assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
    expect_level(&dc, 3, 60);
    shmq_delaycheck_close(&dc);
}

/* Each of the newest slot's six words changed in turn (a store a kill or a lost page left
 * out): the level reads the previous progress, never a mix. */
static void test_torn_slot_leaves_previous_progress(void **state)
{
    fixture_t *f = *state;
    for (int word = 0; word < 6; word++) {
        unlink(f->path);
        shmq_delaycheck_t dc;
        assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
        shmq_delay_anchor_t a1 = anchor(99), a2 = anchor(199);
        shmq_delaycheck_put(&dc, 1, 100, &a1);
        shmq_delaycheck_put(&dc, 1, 200, &a2);
        expect_level(&dc, 1, 200);
        shmq_delaycheck_close(&dc);

        /* seq 2 went to slot 0 of level 1, at byte 64. */
        FILE *fp = fopen(f->path, "r+b");
        assert_non_null(fp);
        uint64_t v;
        assert_int_equal(fseek(fp, 64 + word * 8, SEEK_SET), 0);
        assert_int_equal(fread(&v, 8, 1, fp), 1);
        v ^= 0x40;
        assert_int_equal(fseek(fp, 64 + word * 8, SEEK_SET), 0);
        assert_int_equal(fwrite(&v, 8, 1, fp), 1);
        fclose(fp);

        assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
        expect_level(&dc, 1, 100);
        /* The next put replaces the torn slot: the older whole one stays until then. */
        shmq_delay_anchor_t a3 = anchor(299);
        shmq_delaycheck_put(&dc, 1, 300, &a3);
        expect_level(&dc, 1, 300);
        shmq_delaycheck_close(&dc);
        assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
        expect_level(&dc, 1, 300);
        shmq_delaycheck_close(&dc);
    }
}

static void test_foreign_file_reads_empty(void **state)
{
    fixture_t *f = *state;
    /* The right size, not ours (no magic): every slot empty, whatever its bytes. */
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < SHMQ_DELAYCHECK_SIZE; i++) {
        fputc(i * 7 + 1, fp);
    }
    fclose(fp);
    shmq_delaycheck_t dc;
    assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
    int64_t off;
    shmq_delay_anchor_t a;
    for (int l = 1; l <= SHMQ_DELAYCHECK_LEVELS; l++) {
        assert_false(shmq_delaycheck_get(&dc, l, &off, &a));
    }
    shmq_delaycheck_close(&dc);
    /* Another size: refused, the file left as it is. */
    assert_int_equal(truncate(f->path, 100), 0);
    assert_true(shmq_delaycheck_open(&dc, f->root) < 0);
    assert_non_null(strstr(shmq_error_detail(), "delaycheck"));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, 100);
}

static void test_remove_and_symlink(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(shmq_delaycheck_remove(f->root), 0); /* none: fine */
    shmq_delaycheck_t dc;
    assert_int_equal(shmq_delaycheck_open(&dc, f->root), 0);
    shmq_delaycheck_close(&dc);
    assert_int_equal(shmq_delaycheck_remove(f->root), 0);
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(errno, ENOENT);

    char target[160];
    snprintf(target, sizeof(target), "%s/elsewhere", f->root);
    assert_int_equal(symlink(target, f->path), 0);
    assert_true(shmq_delaycheck_open(&dc, f->root) < 0);
    assert_int_equal(access(target, F_OK), -1); /* nothing created through the link */
}

static void test_config_dir_made(void **state)
{
    fixture_t *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/config", f->root);
    assert_int_equal(rmdir(dir), 0);
    mode_t was = umask(0);
    shmq_delaycheck_t dc;
    int rc = shmq_delaycheck_open(&dc, f->root);
    umask(was);
    assert_int_equal(rc, 0);
    shmq_delaycheck_close(&dc);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_new_file_is_empty_and_put_survives_reopen),
        T(test_torn_slot_leaves_previous_progress),
        T(test_foreign_file_reads_empty),
        T(test_remove_and_symlink),
        T(test_config_dir_made),
#undef T
    };
    return cmocka_run_group_tests_name("tests", tests, NULL, NULL);
}
