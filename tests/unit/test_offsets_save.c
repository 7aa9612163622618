/*
 * Unit tests for the save of config/consumerOffset.json from the control
 * block (libshm/shm/ctl_tables.c): processes that save at the same time (the
 * flusher's rounds beside shmqctl's topic and group deletes) each succeed,
 * and the file always holds one whole save.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl_fixture.h"
#include "format/config.h"
#include "format/json_meta.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

enum { SAVERS = 3, ROUNDS = 150 };

/*
 * A saver process: its own handle on the block, ROUNDS saves (every third
 * one as after a delete); exits with the number that failed.
 */
static int saver(const char *dir, int who)
{
    shmq_ctl_t c = {.lock_fd = -1, .topic_lock_fd = -1};
    if (shmq_ctl_attach(dir, 0, &c) != 0) {
        return 100;
    }
    int failed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        /* Each saver moves its own offset: the saves differ. */
        (void)shmq_ctl_offset_set(&c, "g", "TopicA", who, i);
        int rc = i % 3 == 2 ? shmq_ctl_offsets_save_dropped(&c) : shmq_ctl_offsets_save(&c);
        if (rc != 0) {
            fprintf(stderr, "saver %d round %d: %s\n", who, i, shmq_error_detail());
            failed++;
        }
    }
    shmq_ctl_detach(&c);
    return failed > 99 ? 99 : failed;
}

/* Savers in three processes at once: every save succeeds and the file reads whole. */
static void test_concurrent_saves_each_succeed(void **state)
{
    fixture_t *f = *state;
    for (int w = 0; w < SAVERS; w++) {
        assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g", "TopicA", w, 0), 0);
    }
    pid_t pids[SAVERS];
    for (int w = 0; w < SAVERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            _exit(saver(f->dir, w));
        }
    }
    for (int w = 0; w < SAVERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    /* One more save, alone: the file has every saver's last offset. */
    assert_int_equal(shmq_ctl_offsets_save(&f->ctl), 0);
    shmq_offset_table_t t = {0};
    assert_int_equal(shmq_consumer_offsets_load(f->dir, &t), 0);
    for (int w = 0; w < SAVERS; w++) {
        int64_t off = -1;
        assert_int_equal(shmq_offset_table_get(&t, "TopicA@g", w, &off), 0);
        assert_int_equal(off, ROUNDS - 1);
    }
    shmq_offset_table_free(&t);
    /* No temporary left behind. */
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s/config/consumerOffset.json.tmp", f->dir);
    assert_int_equal(access(tmp, F_OK), -1);
}

/* A save while another process holds the save's lock waits for it, then succeeds. */
static void test_save_waits_for_the_holder(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g", "TopicB", 0, 42), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    char marker[160];
    snprintf(marker, sizeof(marker), "%s/released", f->dir);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Byte 5 of <root>/lock: the save's lock (ctl_tables.c), held for 300 ms. */
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1};
        int ok = fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0;
        (void)!write(go[1], ok ? "y" : "n", 1);
        usleep(300000);
        /* Made while the lock is still held (it goes with the process). */
        int m = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        _exit(m >= 0 ? 0 : 1);
    }
    char c = 0;
    assert_int_equal(read(go[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(shmq_ctl_offsets_save(&f->ctl), 0);
    /* Not before the holder let go: it made the marker while it held the lock. */
    assert_int_equal(access(marker, F_OK), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmq_offset_table_t t = {0};
    assert_int_equal(shmq_consumer_offsets_load(f->dir, &t), 0);
    int64_t off = -1;
    assert_int_equal(shmq_offset_table_get(&t, "TopicB@g", 0, &off), 0);
    assert_int_equal(off, 42);
    shmq_offset_table_free(&t);
    close(go[0]);
    close(go[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_saves_each_succeed, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_waits_for_the_holder, setup_ready, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
