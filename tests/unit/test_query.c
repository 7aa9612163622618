/*
 * Query tests (include/shmq/admin.h) on a stopped store whose index was
 * built offline: lookups by key (several keys per message, keys with equal
 * Java hashCode, the topic check, time ranges over several index files, the
 * result limit), by UNIQ_KEY, by message id and CommitLog offset, a queue's
 * offset at a time, and all of it from a process that cannot write the
 * store.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/index_service.h"
#include "client/query.h"
#include "store/store.h"

#define BASE_TS 1700000000000LL

typedef struct fixture {
    char dir[256];
    shmq_config_t cfg;
    shmq_store_t st;
    int32_t next_qoff[2];
    int64_t ts;
    shmq_query_result_t *res;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/shmq-query-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s/store", f->dir);
    f->cfg.mapped_file_size_commit_log = 64 * 1024;
    f->cfg.mapped_file_size_consume_queue = 20 * 64;
    f->cfg.max_hash_slot_num = 5;
    f->cfg.max_index_num = 8;
    f->ts = BASE_TS;
    f->res = malloc(sizeof(*f->res));
    if (shmq_store_open(&f->st, &f->cfg, 0, NULL) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f->res);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Append a message of topic (queue 0) with KEYS keys and UNIQ_KEY uniq, ts_step ms after the last.
 */
static int64_t put(fixture_t *f, const char *topic, const char *keys, const char *uniq,
                   int64_t ts_step)
{
    char props[256];
    size_t plen = 0;
    if (keys) {
        assert_int_equal(
            shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_KEYS, keys, strlen(keys)), 0);
    }
    if (uniq) {
        assert_int_equal(
            shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, uniq, strlen(uniq)),
            0);
    }
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.born_ts = f->ts;
    shmq_local_host(&m.born_host, 1);
    m.body = "payload";
    m.body_len = 7;
    m.props = props;
    m.props_len = plen;
    int t = strcmp(topic, "T") == 0 ? 0 : 1;
    f->ts += ts_step;
    shmq_append_result_t res;
    assert_int_equal(shmq_commitlog_append(&f->st.cl, &m, f->next_qoff[t]++, f->ts, &res), 0);
    return res.phys_offset;
}

/* Close the store (its ConsumeQueues are built), build the index, open an admin handle. */
static shmq_admin_t *finish(fixture_t *f)
{
    assert_int_equal(shmq_store_close(&f->st), 0);
    shmq_store_t ro;
    assert_int_equal(shmq_store_open(&ro, &f->cfg, SHMQ_STORE_READONLY, NULL), 0);
    shmq_index_service_t svc;
    char dir[PATH_MAX];
    shmq_index_dir(&f->cfg, dir, sizeof(dir));
    assert_int_equal(
        shmq_index_open(&svc, dir, f->cfg.max_hash_slot_num, f->cfg.max_index_num, false), 0);
    int64_t pos = 0;
    assert_true(shmq_index_build(&svc, &ro.cl, &pos, INT64_MAX) > 0);
    shmq_index_close(&svc);
    shmq_store_close(&ro);
    shmq_admin_t *a;
    assert_int_equal(shmq_admin_open_config(&f->cfg, &a), 0);
    assert_false(shmq_admin_running(a));
    return a;
}

static void test_by_key_finds_each_message_holding_the_key_newest_first(void **state)
{
    fixture_t *f = *state;
    int64_t p1 = put(f, "T", "order-1 cust-A", "U1", 10);
    int64_t p2 = put(f, "T", "order-2 cust-A", "U2", 10);
    put(f, "T", "order-3 cust-B", "U3", 10);
    shmq_admin_t *a = finish(f);
    shmq_query_result_t *r = f->res;
    assert_int_equal(shmq_query_by_key(a, "T", "cust-A", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->msgs[0].phys_offset, p2);
    assert_int_equal(r->msgs[1].phys_offset, p1);
    size_t len;
    const char *keys = shmq_msg_property(&r->msgs[0], SHMQ_PROP_KEYS, &len);
    assert_int_equal(len, 14);
    assert_memory_equal(keys, "order-2 cust-A", 14);
    assert_int_equal(shmq_query_by_key(a, "T", "order-1", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, p1);
    /* A prefix of a key, or the UNIQ_KEY, is not a KEYS token. */
    assert_int_equal(shmq_query_by_key(a, "T", "order", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 0);
    assert_int_equal(shmq_query_by_key(a, "T", "U1", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 0);
    shmq_admin_close(a);
}

static void test_by_key_never_confuses_keys_with_equal_hash(void **state)
{
    fixture_t *f = *state;
    /* "Aa"/"BB" and "AaAa"/"BBBB" have equal Java hashCodes. */
    int64_t pa = put(f, "T", "Aa", NULL, 10);
    int64_t pb = put(f, "T", "BB", NULL, 10);
    int64_t pc = put(f, "T", "AaAa BBBB", NULL, 10);
    shmq_admin_t *a = finish(f);
    shmq_query_result_t *r = f->res;
    assert_int_equal(shmq_query_by_key(a, "T", "Aa", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, pa);
    assert_int_equal(shmq_query_by_key(a, "T", "BB", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, pb);
    assert_int_equal(shmq_query_by_key(a, "T", "BBBB", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 1); /* one message, found once although both keys match its hash */
    assert_int_equal(r->msgs[0].phys_offset, pc);
    shmq_admin_close(a);
}

static void test_by_key_returns_only_the_topic_asked_for(void **state)
{
    fixture_t *f = *state;
    put(f, "T", "k", NULL, 10);
    int64_t p2 = put(f, "T2", "k", NULL, 10);
    shmq_admin_t *a = finish(f);
    shmq_query_result_t *r = f->res;
    assert_int_equal(shmq_query_by_key(a, "T2", "k", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, p2);
    assert_memory_equal(r->msgs[0].topic, "T2", 2);
    shmq_admin_close(a);
}

static void test_by_key_time_range_over_several_index_files(void **state)
{
    fixture_t *f = *state;
    int64_t p[20], ts[20];
    for (int i = 0; i < 20; i++) {
        char u[8];
        snprintf(u, sizeof(u), "U%d", i);
        p[i] = put(f, "T", "shared", u, 700); /* 2 entries a message: a file every 3.5 */
        ts[i] = f->ts;
    }
    shmq_admin_t *a = finish(f);
    shmq_query_result_t *r = f->res;
    assert_int_equal(shmq_query_by_key(a, "T", "shared", 0, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 20);
    assert_int_equal(shmq_query_by_key(a, "T", "shared", ts[4], ts[13], 64, r), 0);
    assert_int_equal(r->count, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r->msgs[i].phys_offset, p[13 - i]);
    }
    /* ms bounds are exact, although entries know their time to the second. */
    assert_int_equal(shmq_query_by_key(a, "T", "shared", ts[4] + 1, ts[13] - 1, 64, r), 0);
    assert_int_equal(r->count, 8);
    assert_int_equal(shmq_query_by_key(a, "T", "shared", ts[19] + 1, INT64_MAX, 64, r), 0);
    assert_int_equal(r->count, 0);
    /* The limit keeps the newest. */
    assert_int_equal(shmq_query_by_key(a, "T", "shared", 0, INT64_MAX, 3, r), 0);
    assert_int_equal(r->count, 3);
    assert_int_equal(r->msgs[0].phys_offset, p[19]);
    assert_int_equal(shmq_query_by_key(a, "T", "shared", 0, INT64_MAX, 0, r), SHMQ_E_ARG);
    assert_int_equal(shmq_query_by_key(a, "T", "shared", 5, 4, 10, r), SHMQ_E_ARG);
    shmq_admin_close(a);
}

static void test_by_uniq_key_with_and_without_topic(void **state)
{
    fixture_t *f = *state;
    put(f, "T", "x", "AAAA", 10);
    int64_t p = put(f, "T2", NULL, "BBBB", 10);
    shmq_admin_t *a = finish(f);
    shmq_query_result_t *r = f->res;
    assert_int_equal(shmq_query_by_uniq_key(a, "T2", "BBBB", r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, p);
    assert_int_equal(shmq_query_by_uniq_key(a, NULL, "BBBB", r), 0);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].phys_offset, p);
    assert_int_equal(shmq_query_by_uniq_key(a, "T", "BBBB", r), 0);
    assert_int_equal(r->count, 0);
    /* "x" is a KEYS token, not a UNIQ_KEY. */
    assert_int_equal(shmq_query_by_uniq_key(a, NULL, "x", r), 0);
    assert_int_equal(r->count, 0);
    assert_true(r->index_last_phys >= p);
    shmq_admin_close(a);
}

static void test_by_msg_id_and_by_offset(void **state)
{
    fixture_t *f = *state;
    put(f, "T", "a", NULL, 10);
    int64_t p = put(f, "T", "b", NULL, 10);
    shmq_admin_t *a = finish(f);
    shmq_msg_view_t v, w;
    assert_int_equal(shmq_query_by_phys_offset(a, p, &v), 0);
    assert_int_equal(v.phys_offset, p);
    assert_int_equal(v.queue_offset, 1);
    assert_int_equal(strlen(v.msg_id), 32);
    assert_int_equal(shmq_query_by_msg_id(a, v.msg_id, &w), 0);
    assert_int_equal(w.phys_offset, p);
    assert_int_equal(shmq_query_by_phys_offset(a, p + 1, &w), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_query_by_msg_id(a, "nothex", &w), SHMQ_E_MSGID);
    /* The same offset under another store port. */
    char other[SHMQ_MSGID_MAX];
    snprintf(other, sizeof(other), "%s", v.msg_id);
    other[15] = other[15] == '0' ? '1' : '0';
    assert_int_equal(shmq_query_by_msg_id(a, other, &w), SHMQ_E_NOT_FOUND);
    shmq_admin_close(a);
}

/* Flip bit 0 of the byte at CommitLog offset phys (the test segments are 64 KiB). */
static void flip_log_byte(fixture_t *f, int64_t phys)
{
    char path[PATH_MAX + 64];
    char name[21];
    shmq_segment_name(phys - phys % (64 * 1024), name);
    snprintf(path, sizeof(path), "%s/store/commitlog/%s", f->dir, name);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)(phys % (64 * 1024)), SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, (long)(phys % (64 * 1024)), SEEK_SET), 0);
    fputc(c ^ 1, fp);
    assert_int_equal(fclose(fp), 0);
}

/* A damaged record is never returned: a key lookup counts it as left out, a single lookup fails. */
static void test_queries_never_return_a_corrupt_message(void **state)
{
    fixture_t *f = *state;
    put(f, "T", "k", "U1", 10);
    int64_t p = put(f, "T", "k", "U2", 10);
    put(f, "T", "k", "U3", 10);
    shmq_admin_t *a = finish(f);
    shmq_msg_view_t v;
    assert_int_equal(shmq_query_by_phys_offset(a, p, &v), 0);
    /* A body byte: the body is followed by the topic (1-byte length) and the properties (2). */
    int64_t body = p + v.size - (int64_t)v.props_len - 2 - (int64_t)v.topic_len - 1 - v.body_len;
    flip_log_byte(f, body + 3);
    assert_int_equal(shmq_query_by_key(a, "T", "k", 0, INT64_MAX, 10, f->res), 0);
    assert_int_equal(f->res->count, 2);
    assert_int_equal(f->res->corrupt, 1);
    assert_int_equal(f->res->corrupt_phys, p);
    for (size_t i = 0; i < f->res->count; i++) {
        assert_true(f->res->msgs[i].phys_offset != p);
    }
    assert_int_equal(shmq_query_by_uniq_key(a, "T", "U2", f->res), 0);
    assert_int_equal(f->res->count, 0);
    assert_int_equal(f->res->corrupt, 1);
    assert_int_equal(shmq_query_by_phys_offset(a, p, &v), SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), "corrupt message at CommitLog offset"));
    shmq_admin_close(a);
}

static void test_offset_by_time_of_a_stopped_store(void **state)
{
    fixture_t *f = *state;
    int64_t ts[5];
    for (int i = 0; i < 5; i++) {
        put(f, "T", NULL, NULL, 1000);
        ts[i] = f->ts;
    }
    shmq_admin_t *a = finish(f);
    int64_t off;
    assert_int_equal(shmq_query_offset_by_time(a, "T", 0, ts[2], &off), 0);
    assert_int_equal(off, 2);
    assert_int_equal(shmq_query_offset_by_time(a, "T", 0, ts[2] + 1, &off), 0);
    assert_int_equal(off, 3);
    assert_int_equal(shmq_query_offset_by_time(a, "T", 0, 0, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(shmq_query_offset_by_time(a, "T", 0, ts[4] + 1, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(shmq_query_offset_by_time(a, "T", 3, ts[0], &off), SHMQ_E_NOT_FOUND);
    shmq_admin_close(a);
}

static void test_queries_work_without_write_access_to_the_store(void **state)
{
    fixture_t *f = *state;
    int64_t p = put(f, "T", "ro-key", "ROKEY", 10);
    shmq_admin_t *a = finish(f);
    shmq_admin_close(a);
    if (geteuid() != 0) {
        skip(); /* needs root to become another user */
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "chmod -R a+rX,go-w '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            _exit(10);
        }
        shmq_admin_t *b;
        if (shmq_admin_open_config(&f->cfg, &b) != 0) {
            _exit(11);
        }
        if (shmq_query_by_key(b, "T", "ro-key", 0, INT64_MAX, 8, f->res) != 0 ||
            f->res->count != 1 || f->res->msgs[0].phys_offset != p) {
            _exit(12);
        }
        if (shmq_query_by_uniq_key(b, NULL, "ROKEY", f->res) != 0 || f->res->count != 1) {
            _exit(13);
        }
        shmq_admin_close(b);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_by_key_finds_each_message_holding_the_key_newest_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_key_never_confuses_keys_with_equal_hash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_by_key_returns_only_the_topic_asked_for, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_by_key_time_range_over_several_index_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_by_uniq_key_with_and_without_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_msg_id_and_by_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_by_time_of_a_stopped_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries_never_return_a_corrupt_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queries_work_without_write_access_to_the_store, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
