/*
 * Unit tests of the timer files as files of a store (libshm/format/timer.c,
 * docs/security.md): timerwheel, config/timercheck and timer log segments
 * are created 0640 whatever the umask, their directories 0750; a symbolic
 * link at timerwheel or config/timercheck is refused with an error naming
 * it, and nothing is created or changed through it; a FIFO or a directory
 * there is refused naming it (never waited on, never removed); the
 * read-only check (shmqctl verify) refuses the same.
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
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/timer.h"

#define P   1000
#define T0  1700000000000LL
#define SEG 4096

typedef struct fixture {
    char dir[64];   /* holds the root and a file outside it */
    char root[128]; /* <dir>/store */
    char outside[128];
    mode_t umask_was;
} fixture_t;

static void quiet(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-timer-files-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
    char config[160];
    snprintf(config, sizeof(config), "%s/config", f->root);
    if (mkdir(f->root, 0750) != 0 || mkdir(config, 0750) != 0) {
        return -1;
    }
    f->umask_was = umask(0);
    shmq_meta_set_warn(quiet, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    umask(f->umask_was);
    shmq_meta_set_warn(NULL, NULL);
    tmp_tree_remove(f->dir);
    free(f);
    return 0;
}

static void path_of(const fixture_t *f, const char *rel, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", f->root, rel);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void expect_detail(const char *a, const char *b)
{
    const char *d = shmq_error_detail();
    if (strstr(d, a) == NULL || strstr(d, b) == NULL) {
        fail_msg("detail lacks \"%s\" / \"%s\": %s", a, b, d);
    }
}

static void test_new_timer_files_are_0640_and_directories_0750_whatever_the_umask(void **state)
{
    fixture_t *f = *state;
    shmq_timer_store_t ts;
    char p[256];
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), 0);
    shmq_timer_enq_t e = {
        .phys_offset = 0, .msg_size = 100, .topic_hash = 7, .deliver_ms = T0 + 3000};
    int64_t slot = 0;
    assert_int_equal(shmq_timer_enqueue(&ts, &e, T0, &slot), 0);
    assert_int_equal(shmq_timer_checkpoint(&ts), 0);
    shmq_timer_close(&ts);
    path_of(f, "timerwheel", p, sizeof(p));
    assert_int_equal(mode_of(p), 0640);
    path_of(f, "config/timercheck", p, sizeof(p));
    assert_int_equal(mode_of(p), 0640);
    path_of(f, "timerlog/00000000000000000000", p, sizeof(p));
    assert_int_equal(mode_of(p), 0640);
    path_of(f, "timerlog", p, sizeof(p));
    assert_int_equal(mode_of(p), 0750);
    /* Opened again: modes unchanged, the unit still there. */
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), 0);
    shmq_timer_close(&ts);
    path_of(f, "timerwheel", p, sizeof(p));
    assert_int_equal(mode_of(p), 0640);
}

/* A link at rel (to the file outside the store, missing): refused naming it, nothing made. */
static void refused_through_link(fixture_t *f, const char *rel)
{
    shmq_timer_store_t ts;
    char p[256];
    path_of(f, rel, p, sizeof(p));
    assert_int_equal(symlink(f->outside, p), 0);
    assert_true(shmq_timer_exists(f->root) || strcmp(rel, "timerwheel") != 0);
    shmq_error_clear();
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), -ELOOP);
    expect_detail(p, "is a symbolic link");
    assert_int_equal(access(f->outside, F_OK), -1); /* nothing created through it */
    assert_int_equal(errno, ENOENT);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* the link itself is left as it was */
}

static void test_link_at_timerwheel_is_refused_and_nothing_is_created_through_it(void **state)
{
    refused_through_link(*state, "timerwheel");
}

static void test_link_at_timercheck_is_refused_and_nothing_is_created_through_it(void **state)
{
    refused_through_link(*state, "config/timercheck");
}

static void test_link_to_an_existing_file_is_refused_and_the_file_untouched(void **state)
{
    fixture_t *f = *state;
    shmq_timer_store_t ts;
    char p[256];
    FILE *o = fopen(f->outside, "w");
    assert_non_null(o);
    fputs("root-only data\n", o);
    assert_int_equal(fclose(o), 0);
    path_of(f, "config/timercheck", p, sizeof(p));
    assert_int_equal(symlink(f->outside, p), 0);
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), -ELOOP);
    struct stat st;
    assert_int_equal(stat(f->outside, &st), 0);
    assert_int_equal(st.st_size, 15); /* not grown to a checkpoint */
}

static void test_fifo_or_directory_at_a_timer_file_is_refused_naming_it(void **state)
{
    fixture_t *f = *state;
    shmq_timer_store_t ts;
    char p[256];
    path_of(f, "config/timercheck", p, sizeof(p));
    assert_int_equal(mkfifo(p, 0640), 0);
    shmq_error_clear();
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), -EINVAL);
    expect_detail(p, "is a FIFO, not a regular file");
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode)); /* refused, not removed */
    assert_int_equal(unlink(p), 0);

    path_of(f, "timerwheel", p, sizeof(p));
    assert_int_equal(mkdir(p, 0750), 0);
    shmq_error_clear();
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), -EINVAL);
    expect_detail(p, "is a directory");
}

static void test_check_refuses_a_link_or_fifo_without_waiting(void **state)
{
    fixture_t *f = *state;
    shmq_timer_store_t ts;
    char p[256];
    assert_int_equal(shmq_timer_open(&ts, f->root, P, SEG, T0), 0);
    assert_int_equal(shmq_timer_checkpoint(&ts), 0);
    shmq_timer_close(&ts);
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0), 0);
    shmq_timer_close(&ts);
    /* A FIFO at timercheck: opened read-only it would wait for a writer forever. */
    path_of(f, "config/timercheck", p, sizeof(p));
    assert_int_equal(rename(p, f->outside), 0);
    assert_int_equal(mkfifo(p, 0640), 0);
    shmq_error_clear();
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0), -EINVAL);
    expect_detail(p, "is a FIFO");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(symlink(f->outside, p), 0);
    shmq_error_clear();
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0), -ELOOP);
    expect_detail(p, "is a symbolic link");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_new_timer_files_are_0640_and_directories_0750_whatever_the_umask),
        T(test_link_at_timerwheel_is_refused_and_nothing_is_created_through_it),
        T(test_link_at_timercheck_is_refused_and_nothing_is_created_through_it),
        T(test_link_to_an_existing_file_is_refused_and_the_file_untouched),
        T(test_fifo_or_directory_at_a_timer_file_is_refused_naming_it),
        T(test_check_refuses_a_link_or_fifo_without_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
