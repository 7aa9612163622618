/*
 * Consumer API tests without daemons: each test writes a store with the
 * single-process engine, creates the control block the way the master does
 * (positions, topic and queue tables, ready), then pulls from it and checks
 * statuses, next offsets, tag filtering, views, offsets, offset by time,
 * long polling (timeout, and a wake-up from another process), store-down
 * detection, and that a damaged record is never returned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ctl.h"
#include "reg_thread.h"
#include "shmq/consumer.h"
#include "store/store.h"

#define SEG_SIZE (32 * 1024)
#define CQ_UNITS 64 /* units per ConsumeQueue file */
#define N_A0     70 /* messages in TopicA/0: more than one ConsumeQueue file */
#define N_A1     3  /* messages in TopicA/1, without tags */
#define TS_BASE  4000000000000LL

typedef struct fixture {
    reg_thread_t reg; /* the master's socket: consumers commit offsets through it */
    char dir[256];
    char root[300];
    shmq_config_t cfg;
    shmq_store_t st; /* the writer's store, open for the whole test */
    shmq_ctl_t ctl;
    int64_t end; /* CommitLog end */
    int n_total; /* messages written so far */
    shmq_append_result_t a0[2 * N_A0];
    shmq_consumer_t *c;
    shmq_pull_result_t *res;
} fixture_t;

/* setup() leaves TopicA/1 out of the queue table. */
static bool without_a1;

static int tag_of(int i, const char **tag)
{
    *tag = (i % 2) ? "TagB" : "TagA";
    return 4;
}

/* Body of message i: its length varies so records spread over several segments. */
static int body_of(int i, char *buf, size_t cap)
{
    return snprintf(buf, cap, "body %d %0*d", i, 300 + (i * 37) % 400, i);
}

/* Put message i into topic/qid; store time TS_BASE + 10 * i. */
static void put_one(fixture_t *f, shmq_store_t *st, const char *topic, int32_t qid, int i,
                    bool tags, shmq_append_result_t *res)
{
    char body[1024];
    char props[128];
    size_t plen = 0;
    int blen = body_of(i, body, sizeof(body));
    if (tags) {
        const char *tag;
        int tl = tag_of(i, &tag);
        assert_int_equal(shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_TAGS, tag, tl),
                         0);
    }
    char key[32];
    int kl = snprintf(key, sizeof(key), "KEY%06d", i);
    assert_int_equal(shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, key, kl),
                     0);
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = qid;
    m.born_ts = TS_BASE + 10 * i;
    shmq_local_host(&m.born_host, 5555);
    m.body = body;
    m.body_len = (size_t)blen;
    m.props = props;
    m.props_len = plen;
    /* A store time is never below the previous one: this fixes it to TS_BASE + 10 i. */
    st->cl.last_store_ts = TS_BASE + 10 * i;
    assert_int_equal(shmq_store_put(st, &m, res), 0);
    assert_int_equal(res->store_ts, TS_BASE + 10 * i);
    (void)f;
}

/*
 * Append messages [from, to) of TopicA/0 (index i -> queue offset i), then
 * TopicA/1's.  The store stays open, as the broker's writer keeps it: the
 * consumer sees the new records and units through the shared page cache.
 */
static void write_store(fixture_t *f, int from, int to, bool with_a1)
{
    for (int i = from; i < to; i++) {
        put_one(f, &f->st, "TopicA", 0, f->n_total++, true, &f->a0[i]);
    }
    for (int i = 0; with_a1 && i < N_A1; i++) {
        shmq_append_result_t r;
        put_one(f, &f->st, "TopicA", 1, f->n_total++, false, &r);
    }
    f->end = f->st.cl.wrote_pos;
}

static void set_queue(fixture_t *f, const char *topic, int32_t qid, int64_t min, int64_t max)
{
    shmq_ctl_queue_t *q;
    assert_int_equal(shmq_ctl_queue_insert(&f->ctl, topic, strlen(topic), qid, &q), 0);
    atomic_store(&q->next_offset, max);
    atomic_store(&q->min_offset, min);
    atomic_store(&q->max_offset, max);
}

static void set_positions(fixture_t *f, int64_t end)
{
    shmq_ctl_block_t *b = f->ctl.blk;
    shmq_ctl_publish(&b->wrote, end);
    shmq_ctl_publish(&b->flushed, end);
    shmq_ctl_publish(&b->dispatched, end);
    shmq_ctl_publish(&b->cq_flushed, end);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/shmq-consumer-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s", f->root);
    f->cfg.mapped_file_size_commit_log = SEG_SIZE;
    f->cfg.mapped_file_size_consume_queue = CQ_UNITS * SHMQ_CQ_UNIT_SIZE;
    f->res = malloc(sizeof(*f->res));
    if (shmq_store_open(&f->st, &f->cfg, 0, NULL) < 0) {
        return -1;
    }
    write_store(f, 0, N_A0, true);

    /* The control block, as the master fills it after recovery. */
    if (shmq_ctl_create(&f->cfg, f->root, &f->ctl) < 0) {
        return -1;
    }
    set_positions(f, f->end);
    shmq_ctl_publish(&f->ctl.blk->min, 0);
    if (shmq_ctl_topic_lock(&f->ctl, 1000) < 0) {
        return -1;
    }
    shmq_ctl_topic_put(&f->ctl, "TopicA", 2, 2, SHMQ_PERM_READ | SHMQ_PERM_WRITE, false);
    shmq_ctl_topic_put(&f->ctl, "TopicE", 1, 1, SHMQ_PERM_READ | SHMQ_PERM_WRITE, false);
    shmq_ctl_topic_unlock(&f->ctl);
    set_queue(f, "TopicA", 0, 0, N_A0);
    if (!without_a1) {
        set_queue(f, "TopicA", 1, 0, N_A1);
    }
    set_queue(f, "TopicE", 0, 0, 0);
    shmq_ctl_set_ready(&f->ctl);
    if (reg_thread_start(&f->reg, &f->ctl, &f->cfg, NULL) < 0) {
        return -1;
    }
    if (shmq_consumer_open(f->root, "GroupX", &f->c) < 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_without_a1(void **state)
{
    without_a1 = true;
    int rc = setup(state);
    without_a1 = false;
    return rc;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    shmq_consumer_close(f->c);
    reg_thread_stop(&f->reg);
    int rc = shmq_store_close(&f->st);
    shmq_ctl_unlink(f->root);
    shmq_ctl_detach(&f->ctl);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        rc = -1;
    }
    free(f->res);
    free(f);
    return rc == 0 ? 0 : -1;
}

static shmq_ctl_queue_t *queue_a0(fixture_t *f)
{
    return shmq_ctl_queue_find(&f->ctl, "TopicA", 6, 0);
}

/* ---- statuses ------------------------------------------------------------------------ */

static void test_pull_returns_views_of_the_stored_records(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 10);
    assert_int_equal(r->next_offset, 10);
    assert_int_equal(r->min_offset, 0);
    assert_int_equal(r->max_offset, N_A0);
    for (int i = 0; i < 10; i++) {
        const shmq_msg_view_t *v = &r->msgs[i];
        char body[1024];
        int blen = body_of(i, body, sizeof(body));
        assert_int_equal(v->topic_len, 6);
        assert_memory_equal(v->topic, "TopicA", 6);
        assert_int_equal(v->queue_id, 0);
        assert_int_equal(v->queue_offset, i);
        assert_int_equal(v->phys_offset, f->a0[i].phys_offset);
        assert_int_equal(v->size, f->a0[i].size);
        assert_int_equal(v->store_ts, TS_BASE + 10 * i);
        assert_int_equal(v->born_ts, TS_BASE + 10 * i);
        assert_int_equal(v->body_len, blen);
        assert_memory_equal(v->body, body, (size_t)blen);
        assert_string_equal(v->msg_id, f->a0[i].msg_id);
        size_t len;
        const char *tag;
        tag_of(i, &tag);
        const char *t = shmq_msg_property(v, SHMQ_PROP_TAGS, &len);
        assert_non_null(t);
        assert_int_equal(len, 4);
        assert_memory_equal(t, tag, 4);
        assert_null(shmq_msg_property(v, "NOPE", &len));
    }
}

static void test_pull_stops_at_max_msgs(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 5, 3, "*", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 3);
    assert_int_equal(r->msgs[0].queue_offset, 5);
    assert_int_equal(r->msgs[2].queue_offset, 7);
    assert_int_equal(r->next_offset, 8);
}

static void test_pull_reads_one_consume_queue_file_per_call(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 60, 100, "", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, CQ_UNITS - 60);
    assert_int_equal(r->next_offset, CQ_UNITS);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, r->next_offset, 100, "", 0, r), 0);
    assert_int_equal(r->count, N_A0 - CQ_UNITS);
    assert_int_equal(r->msgs[0].queue_offset, CQ_UNITS);
    assert_int_equal(r->next_offset, N_A0);
}

static void test_pull_at_max_is_overflow_one_without_wait(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, N_A0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_OFFSET_OVERFLOW_ONE);
    assert_int_equal(r->next_offset, N_A0);
    assert_int_equal(r->count, 0);
}

static void test_pull_beyond_max_is_overflow_badly(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, N_A0 + 5, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_OFFSET_OVERFLOW_BADLY);
    assert_int_equal(r->next_offset, N_A0);
    assert_int_equal(r->count, 0);
}

static void test_pull_below_min_is_offset_too_small(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    atomic_store(&queue_a0(f)->min_offset, 4);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 1, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_OFFSET_TOO_SMALL);
    assert_int_equal(r->next_offset, 4);
    assert_int_equal(r->min_offset, 4);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 4, 1, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->msgs[0].queue_offset, 4);
}

static void test_pull_of_unknown_queue_is_no_matched_logic_queue(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "NoSuchTopic", 0, 3, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE);
    assert_int_equal(r->next_offset, 0);
    assert_int_equal(shmq_pull(f->c, "TopicA", 7, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE);
}

static void test_pull_of_empty_queue_is_no_message_in_queue(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicE", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MESSAGE_IN_QUEUE);
    assert_int_equal(r->next_offset, 0);
}

static void test_pull_reads_only_below_the_published_max(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    atomic_store(&queue_a0(f)->max_offset, 7);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 100, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 7);
    assert_int_equal(r->next_offset, 7);
    assert_int_equal(r->max_offset, 7);
}

static void test_pull_rejects_bad_arguments(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 0, NULL, 0, r), SHMQ_E_ARG);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, SHMQ_PULL_MAX + 1, NULL, 0, r), SHMQ_E_ARG);
    assert_int_equal(shmq_pull(f->c, "TopicA", -1, 0, 1, NULL, 0, r), SHMQ_E_ARG);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, -1, 1, NULL, 0, r), SHMQ_E_ARG);
    assert_int_equal(shmq_pull(f->c, "", 0, 0, 1, NULL, 0, r), SHMQ_E_ARG);
    /* Group names the store would refuse at every commit are refused at open. */
    static const char *const bad_groups[] = {"", "a/b", "g\n", "g h", "../x"};
    shmq_consumer_t *c = NULL;
    for (size_t i = 0; i < sizeof(bad_groups) / sizeof(bad_groups[0]); i++) {
        assert_int_equal(shmq_consumer_open(f->root, bad_groups[i], &c), SHMQ_E_ARG);
        assert_null(c);
    }
}

/* ---- subscriptions ------------------------------------------------------------------- */

static void test_pull_filters_by_tag(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 100, "TagA", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, CQ_UNITS / 2);
    for (size_t i = 0; i < r->count; i++) {
        assert_int_equal(r->msgs[i].queue_offset, 2 * (int64_t)i);
    }
    assert_int_equal(r->next_offset, CQ_UNITS);

    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 5, "  TagB ", 0, r), 0);
    assert_int_equal(r->count, 5);
    assert_int_equal(r->msgs[0].queue_offset, 1);
    assert_int_equal(r->msgs[4].queue_offset, 9);
    assert_int_equal(r->next_offset, 10);

    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, "TagB||TagA", 0, r), 0);
    assert_int_equal(r->count, 10);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, " TagC || TagA ", 0, r), 0);
    assert_int_equal(r->count, 10);
    assert_int_equal(r->msgs[1].queue_offset, 2);
}

static void test_pull_without_matching_tag_is_no_matched_msg(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, "TagC", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MATCHED_MSG);
    assert_int_equal(r->count, 0);
    assert_int_equal(r->next_offset, CQ_UNITS); /* every unit of the file was scanned */
    /* Messages without TAGS never match a tag. */
    assert_int_equal(shmq_pull(f->c, "TopicA", 1, 0, 10, "TagA", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MATCHED_MSG);
    assert_int_equal(r->next_offset, N_A1);
    assert_int_equal(shmq_pull(f->c, "TopicA", 1, 0, 10, "*", 0, r), 0);
    assert_int_equal(r->count, N_A1);
}

static void test_malformed_subscription_is_refused(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    static const char *const bad[] = {"TagA |", "||",          "TagA ||",   "|| TagA",
                                      "Tag A",  "TagA | TagB", "* || TagA", "TagA || || TagB",
                                      "a\001b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, bad[i], 0, r), SHMQ_E_ARG);
    }
    /* A good one still works after the bad ones. */
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, " * ", 0, r), 0);
    assert_int_equal(r->count, 10);
}

/* ---- damaged data ----------------------------------------------------------------------- */

static void test_damaged_record_is_never_returned(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    /* Overwrite record 5's physical offset field (bytes 28..35) in its segment file. */
    int64_t off = f->a0[5].phys_offset;
    char path[600];
    char name[21];
    shmq_segment_name(off - off % SEG_SIZE, name);
    snprintf(path, sizeof(path), "%s/commitlog/%s", f->root, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(pwrite(fd, junk, sizeof(junk), off % SEG_SIZE + 28), 8);
    close(fd);

    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 5);
    assert_int_equal(r->next_offset, 5);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 5, 10, NULL, 0, r), SHMQ_E_CORRUPT);
    assert_int_equal(r->count, 0);
}

static void test_unit_pointing_at_another_queue_record_is_refused(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    /* Point unit 2 of TopicA/0 at record 3 (a valid record, of queue offset 3). */
    char path[600];
    snprintf(path, sizeof(path), "%s/consumequeue/TopicA/0/00000000000000000000", f->root);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t unit[SHMQ_CQ_UNIT_SIZE];
    assert_int_equal(pread(fd, unit, sizeof(unit), 3 * SHMQ_CQ_UNIT_SIZE), SHMQ_CQ_UNIT_SIZE);
    assert_int_equal(pwrite(fd, unit, sizeof(unit), 2 * SHMQ_CQ_UNIT_SIZE), SHMQ_CQ_UNIT_SIZE);
    close(fd);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->next_offset, 2);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 2, 10, NULL, 0, r), SHMQ_E_CORRUPT);
}

/* ---- files appearing after attach ---------------------------------------------------------- */

static void test_pull_maps_files_created_after_attach(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    /* Read everything once so that the handle has its files mapped. */
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 100, NULL, 0, r), 0);
    int64_t old_end = f->end;
    write_store(f, N_A0, 2 * N_A0, false); /* new CommitLog segments and CQ files */
    assert_true(f->end / SEG_SIZE > old_end / SEG_SIZE);
    set_positions(f, f->end);
    atomic_store(&queue_a0(f)->max_offset, 2 * N_A0);
    int64_t next = N_A0;
    int got = 0;
    while (next < 2 * N_A0) {
        assert_int_equal(shmq_pull(f->c, "TopicA", 0, next, 1024, NULL, 0, r), 0);
        assert_int_equal(r->status, SHMQ_PULL_FOUND);
        for (size_t i = 0; i < r->count; i++) {
            assert_int_equal(r->msgs[i].queue_offset, next + (int64_t)i);
            assert_int_equal(r->msgs[i].phys_offset, f->a0[next + (int64_t)i].phys_offset);
        }
        got += (int)r->count;
        next = r->next_offset;
    }
    assert_int_equal(got, N_A0);
}

/* ---- offsets and queue information -------------------------------------------------------- */

static void test_offsets_commit_and_fetch(void **state)
{
    fixture_t *f = *state;
    int64_t off = -1;
    assert_int_equal(shmq_fetch_offset(f->c, "TopicA", 0, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_commit_offset(f->c, "TopicA", 0, 17), 0);
    assert_int_equal(shmq_fetch_offset(f->c, "TopicA", 0, &off), 0);
    assert_int_equal(off, 17);
    assert_int_equal(shmq_commit_offset(f->c, "TopicA", 0, 23), 0);
    assert_int_equal(shmq_fetch_offset(f->c, "TopicA", 0, &off), 0);
    assert_int_equal(off, 23);
    assert_int_equal(shmq_fetch_offset(f->c, "TopicA", 1, &off), SHMQ_E_NOT_FOUND);
    /* Visible through the control block (what the flusher saves). */
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "GroupX", "TopicA", 0, &off), 0);
    assert_int_equal(off, 23);
    assert_int_equal(shmq_commit_offset(f->c, "TopicA", 0, -1), SHMQ_E_ARG);

    shmq_consumer_t *anon;
    assert_int_equal(shmq_consumer_open(f->root, NULL, &anon), 0);
    assert_int_equal(shmq_commit_offset(anon, "TopicA", 0, 1), SHMQ_E_ARG);
    assert_int_equal(shmq_fetch_offset(anon, "TopicA", 0, &off), SHMQ_E_ARG);
    shmq_consumer_close(anon);
}

static void test_queue_offsets_and_topic_queue_count(void **state)
{
    fixture_t *f = *state;
    int64_t min = -1, max = -1;
    assert_int_equal(shmq_queue_offsets(f->c, "TopicA", 1, &min, &max), 0);
    assert_int_equal(min, 0);
    assert_int_equal(max, N_A1);
    assert_int_equal(shmq_queue_offsets(f->c, "TopicA", 5, &min, &max), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_topic_queue_count(f->c, "TopicA"), 2);
    assert_int_equal(shmq_topic_queue_count(f->c, "TopicE"), 1);
    assert_int_equal(shmq_topic_queue_count(f->c, "NoSuchTopic"), SHMQ_E_NOT_FOUND);
}

static void test_offset_by_time(void **state)
{
    fixture_t *f = *state;
    int64_t off = -1;
    /* Message i of TopicA/0 was stored at TS_BASE + 10 i. */
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 0, TS_BASE + 10 * 3, &off), 0);
    assert_int_equal(off, 3);
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 0, TS_BASE + 10 * 3 + 1, &off), 0);
    assert_int_equal(off, 4);
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 0, TS_BASE + 10 * 66, &off), 0);
    assert_int_equal(off, 66); /* in the second ConsumeQueue file */
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 0, 0, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 0, TS_BASE * 2, &off), 0);
    assert_int_equal(off, N_A0);
    assert_int_equal(shmq_offset_by_time(f->c, "TopicA", 9, 0, &off), SHMQ_E_NOT_FOUND);
}

static void test_messages_out_counts_returned_messages(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    uint64_t before = atomic_load(&f->ctl.wake->messages_out);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 7, NULL, 0, r), 0);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 100, "TagC", 0, r), 0);
    assert_int_equal(atomic_load(&f->ctl.wake->messages_out) - before, 7);
}

/* ---- long polling ------------------------------------------------------------------------- */

static void test_long_poll_times_out_with_no_new_msg(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicA", 1, N_A1, 10, NULL, 30, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_NEW_MSG);
    assert_int_equal(r->next_offset, N_A1);
    assert_int_equal(r->count, 0);
    assert_int_equal(atomic_load(&f->ctl.wake->consumer_wake.waiters), 0);
}

static void test_long_poll_wakes_when_new_units_are_published(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    shmq_ctl_queue_t *q = queue_a0(f);
    atomic_store(&q->max_offset, N_A0 - 1); /* the last unit is not published yet */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The dispatcher's part: once the consumer sleeps, publish and wake it. */
        for (int i = 0; i < 20000 && atomic_load(&f->ctl.wake->consumer_wake.waiters) == 0; i++) {
            usleep(1000);
        }
        atomic_store_explicit(&q->max_offset, N_A0, memory_order_release);
        shmq_ctl_wake(&f->ctl.wake->consumer_wake);
        _exit(0);
    }
    /* Far longer than the child needs: a lost wake-up fails the status check below. */
    int rc = shmq_pull(f->c, "TopicA", 0, N_A0 - 1, 10, NULL, 60000, r);
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].queue_offset, N_A0 - 1);
    assert_int_equal(r->next_offset, N_A0);
}

static void test_long_poll_wakes_when_a_queue_appears(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    /* setup_without_a1 left TopicA/1 out of the queue table: the writer has not added it yet. */
    assert_null(shmq_ctl_queue_find(&f->ctl, "TopicA", 6, 1));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 20000 && atomic_load(&f->ctl.wake->consumer_wake.waiters) == 0; i++) {
            usleep(1000);
        }
        /* The writer inserts the queue, the dispatcher publishes its units and wakes. */
        shmq_ctl_queue_t *q;
        if (shmq_ctl_queue_insert(&f->ctl, "TopicA", 6, 1, &q) < 0) {
            _exit(1);
        }
        atomic_store_explicit(&q->max_offset, N_A1, memory_order_release);
        shmq_ctl_wake(&f->ctl.wake->consumer_wake);
        _exit(0);
    }
    int rc = shmq_pull(f->c, "TopicA", 1, 0, 10, NULL, 60000, r);
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, N_A1);
    assert_int_equal(r->next_offset, N_A1);
}

/* ---- store down ----------------------------------------------------------------------------- */

static void test_store_not_running_is_not_found(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    shmq_consumer_t *c2 = NULL;
    assert_int_equal(shmq_consumer_open(f->dir, "G", &c2), SHMQ_E_NOT_FOUND);
    assert_null(c2);

    /* The master stops: ready cleared. */
    atomic_store(&f->ctl.blk->hdr.ready, 0);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_queue_offsets(f->c, "TopicA", 0, NULL, NULL), SHMQ_E_NOT_FOUND);
    /* It runs again: the handle re-attaches by itself. */
    shmq_ctl_set_ready(&f->ctl);
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);

    /* Objects unlinked (clean stop). */
    shmq_ctl_unlink(f->root);
    usleep(150 * 1000); /* the object check runs at most every 100 ms */
    assert_int_equal(shmq_pull(f->c, "TopicA", 0, 0, 10, NULL, 0, r), SHMQ_E_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pull_returns_views_of_the_stored_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_stops_at_max_msgs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_reads_one_consume_queue_file_per_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_at_max_is_overflow_one_without_wait, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_beyond_max_is_overflow_badly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_below_min_is_offset_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_of_unknown_queue_is_no_matched_logic_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_of_empty_queue_is_no_message_in_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_reads_only_below_the_published_max, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_filters_by_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_without_matching_tag_is_no_matched_msg, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_subscription_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_is_never_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_pointing_at_another_queue_record_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_maps_files_created_after_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_commit_and_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_offsets_and_topic_queue_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_by_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_out_counts_returned_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_poll_times_out_with_no_new_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_poll_wakes_when_new_units_are_published, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_poll_wakes_when_a_queue_appears, setup_without_a1,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_not_running_is_not_found, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
