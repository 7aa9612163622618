/*
 * shmq_store_detach: the broker's master recovers a store, then releases
 * its mappings but keeps the store lock for as long as it runs.  These tests
 * prove the lock survives the detach, `abort` stays, the data is untouched,
 * and closing the returned fd releases the lock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq/errors.h"
#include "store/store.h"

typedef struct fixture {
    char dir[256];
    shmq_config_t cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    strcpy(f->dir, "/tmp/shmq-detach-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s/store", f->dir);
    f->cfg.mapped_file_size_commit_log = 64 * 1024;
    f->cfg.mapped_file_size_consume_queue = 20 * 64;
    f->cfg.max_message_size = 4096;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void put_one(shmq_store_t *st, int i)
{
    char body[64];
    int blen = snprintf(body, sizeof(body), "message %d", i);
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicTest";
    m.topic_len = strlen(m.topic);
    m.queue_id = 0;
    m.born_ts = 1700000000000LL + i;
    shmq_local_host(&m.born_host, 5555);
    m.body = body;
    m.body_len = (size_t)blen;
    shmq_append_result_t res;
    assert_int_equal(shmq_store_put(st, &m, &res), 0);
}

static void test_detach_keeps_the_store_locked(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    int fd = shmq_store_detach(&st);
    assert_true(fd >= 0);

    shmq_store_t other;
    assert_int_equal(shmq_store_open(&other, &f->cfg, 0, NULL), SHMQ_E_LOCKED);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
    assert_non_null(strstr(shmq_error_detail(), pid));

    shmq_store_unlock(fd);
    assert_int_equal(shmq_store_open(&other, &f->cfg, 0, NULL), 0);
    assert_int_equal(shmq_store_close(&other), 0);
}

static void test_detach_leaves_abort_and_data(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    for (int i = 0; i < 10; i++) {
        put_one(&st, i);
    }
    int64_t end = st.cl.wrote_pos;
    int fd = shmq_store_detach(&st);
    assert_true(fd >= 0);
    assert_true(shmq_abort_exists(f->cfg.store_path_root_dir));
    shmq_store_unlock(fd);

    /* The next open finds the run unfinished and every record in place. */
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_true(rep.abnormal);
    assert_int_equal(rep.recovered_end, end);
    assert_int_equal(rep.truncated_bytes, 0);
    shmq_queue_t *q;
    assert_int_equal(shmq_store_queue(&st, "TopicTest", 9, 0, false, &q), 0);
    assert_int_equal(shmq_cq_max_offset(&q->cq), 10);
    assert_int_equal(shmq_store_close(&st), 0);
    assert_false(shmq_abort_exists(f->cfg.store_path_root_dir));
}

static void test_detach_of_a_read_only_store_returns_no_fd(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    assert_int_equal(shmq_store_close(&st), 0);
    assert_int_equal(shmq_store_open(&st, &f->cfg, SHMQ_STORE_READONLY, NULL), 0);
    assert_int_equal(shmq_store_detach(&st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detach_keeps_the_store_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_leaves_abort_and_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_of_a_read_only_store_returns_no_fd, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
