/*
 * The consumer's record checks (consumer.h: check_crcs, SHMQ_E_CORRUPT,
 * shmq_consumer_skip_corrupt) without daemons: a store written with the
 * single-process engine and a control block made as the master makes it,
 * then bits flipped in the record files the consumer maps.  Proves: every
 * single-bit flip anywhere in a record (body, header, the __CRC32# property
 * and its name) is reported and the record never returned, naming the
 * CommitLog file and offset and the queue offset; the messages before it
 * are delivered first; a record without __CRC32# (as RocketMQ writes) is
 * delivered and gets the body CRC check; check_crcs off lets a flipped body
 * through; the skip moves the group past exactly one message, and only a
 * corrupt one the group stands at.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/consumer_int.h"
#include "format/message.h"
#include "format/record_layout.h"
#include "shm/ctl.h"
#include "reg_thread.h"
#include "shmq/consumer.h"
#include "store/store.h"

#define SEG_SIZE (32 * 1024)
#define CQ_UNITS 64 /* units per ConsumeQueue file */
#define N_MSGS   80 /* in TopicC/0: more than one CommitLog segment */
#define OLD_IDX  7  /* a record in the first (older) segment */
#define GROUP    "GroupC"

typedef struct fixture {
    reg_thread_t reg; /* the master's socket: the group's offsets are committed through it */
    char dir[256];
    char root[300];
    shmq_config_t cfg;
    shmq_store_t st; /* the writer's store, open for the whole test */
    shmq_ctl_t ctl;
    shmq_append_result_t rec[N_MSGS];
    shmq_consumer_t *c;
    shmq_pull_result_t *res;
} fixture_t;

static int body_of(int i, char *buf, size_t cap)
{
    return snprintf(buf, cap, "body %d %0*d", i, 500 + (i * 37) % 300, i);
}

static void put_one(fixture_t *f, int i)
{
    char body[1024];
    char props[128];
    size_t plen = 0;
    int blen = body_of(i, body, sizeof(body));
    const char *tag = (i % 2) ? "TagB" : "TagA";
    assert_int_equal(shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_TAGS, tag, 4), 0);
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicC";
    m.topic_len = 6;
    m.born_ts = 4000000000000LL + i;
    shmq_local_host(&m.born_host, 5555);
    m.body = body;
    m.body_len = (size_t)blen;
    m.props = props;
    m.props_len = plen;
    assert_int_equal(shmq_store_put(&f->st, &m, &f->rec[i]), 0);
    assert_int_equal(f->rec[i].queue_offset, i);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/shmq-consumer-crc-XXXXXX");
    if (!f || !mkdtemp(f->dir)) {
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s", f->root);
    f->cfg.mapped_file_size_commit_log = SEG_SIZE;
    f->cfg.mapped_file_size_consume_queue = CQ_UNITS * SHMQ_CQ_UNIT_SIZE;
    f->res = malloc(sizeof(*f->res));
    if (!f->res || shmq_store_open(&f->st, &f->cfg, 0, NULL) < 0) {
        return -1;
    }
    for (int i = 0; i < N_MSGS; i++) {
        put_one(f, i);
    }
    int64_t end = f->st.cl.wrote_pos;
    if (shmq_ctl_create(&f->cfg, f->root, &f->ctl) < 0) {
        return -1;
    }
    shmq_ctl_block_t *b = f->ctl.blk;
    shmq_ctl_publish(&b->wrote, end);
    shmq_ctl_publish(&b->flushed, end);
    shmq_ctl_publish(&b->dispatched, end);
    shmq_ctl_publish(&b->cq_flushed, end);
    shmq_ctl_publish(&b->min, 0);
    /* As for a store RocketMQ wrote before shmq took it over (the weakest case: records
     * need not carry __CRC32#); test_missing_tail_... covers a store shmq wrote. */
    b->hdr.crc_tail_from = end;
    if (shmq_ctl_topic_lock(&f->ctl, 1000) < 0) {
        return -1;
    }
    shmq_ctl_topic_put(&f->ctl, "TopicC", 1, 1, SHMQ_PERM_READ | SHMQ_PERM_WRITE, false);
    shmq_ctl_topic_unlock(&f->ctl);
    shmq_ctl_queue_t *q;
    if (shmq_ctl_queue_insert(&f->ctl, "TopicC", 6, 0, &q) < 0) {
        return -1;
    }
    atomic_store(&q->next_offset, N_MSGS);
    atomic_store(&q->min_offset, 0);
    atomic_store(&q->max_offset, N_MSGS);
    shmq_ctl_set_ready(&f->ctl);
    if (reg_thread_start(&f->reg, &f->ctl, &f->cfg, NULL) < 0) {
        return -1;
    }
    if (shmq_consumer_open(f->root, GROUP, &f->c) < 0) {
        return -1;
    }
    *state = f;
    return 0;
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

/* ---- helpers ------------------------------------------------------------------------------ */

/* The CommitLog file holding CommitLog offset phys. */
static void seg_path(const fixture_t *f, int64_t phys, char *out, size_t cap)
{
    char name[21];
    shmq_segment_name(phys - phys % SEG_SIZE, name);
    snprintf(out, cap, "%s/commitlog/%s", f->root, name);
}

/* XOR the byte at CommitLog offset phys with mask, through the file (as a bad disk would). */
static void flip(const fixture_t *f, int64_t phys, uint8_t mask)
{
    char path[600];
    seg_path(f, phys, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, phys % SEG_SIZE), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, phys % SEG_SIZE), 1);
    close(fd);
}

/* Overwrite len bytes at CommitLog offset phys. */
static void overwrite(const fixture_t *f, int64_t phys, const void *bytes, size_t len)
{
    char path[600];
    seg_path(f, phys, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, phys % SEG_SIZE), (ssize_t)len);
    close(fd);
}

/* Body byte k of message i (IPv4 hosts: the body starts 88 bytes into the record). */
static int64_t body_byte(const fixture_t *f, int i, int k)
{
    return f->rec[i].phys_offset + 88 + k;
}

/* Start of the 20-byte __CRC32# tail of message i. */
static int64_t tail_at(const fixture_t *f, int i)
{
    return f->rec[i].phys_offset + f->rec[i].size - SHMQ_CRC_PROP_LEN;
}

/* The pull at message i fails as the API says: SHMQ_E_CORRUPT, nothing returned, where. */
static void assert_corrupt_at(fixture_t *f, int i)
{
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, i, 32, NULL, 0, r), SHMQ_E_CORRUPT);
    assert_int_equal(r->count, 0);
    assert_string_equal(r->corrupt.topic, "TopicC");
    assert_int_equal(r->corrupt.queue_id, 0);
    assert_int_equal(r->corrupt.queue_offset, i);
    assert_int_equal(r->corrupt.phys_offset, f->rec[i].phys_offset);
    char path[600];
    seg_path(f, f->rec[i].phys_offset, path, sizeof(path));
    assert_string_equal(r->corrupt.file, path);
    assert_int_equal(r->corrupt.file_offset, f->rec[i].phys_offset % SEG_SIZE);
}

/* The pull at message i returns it, intact. */
static void assert_good_at(fixture_t *f, int i)
{
    shmq_pull_result_t *r = f->res;
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, i, 1, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, 1);
    assert_int_equal(r->msgs[0].queue_offset, i);
    char body[1024];
    int blen = body_of(i, body, sizeof(body));
    assert_int_equal(r->msgs[0].body_len, blen);
    assert_memory_equal(r->msgs[0].body, body, (size_t)blen);
}

/*
 * Rewrite message i as RocketMQ writes by default: its properties end with
 * an ordinary property instead of __CRC32# (same length: the sizes and the
 * body CRC stay right).
 */
static void make_rocketmq_record(fixture_t *f, int i)
{
    static const char cluster[SHMQ_CRC_PROP_LEN + 1] = "CLUSTER\001DefaultClus\002";
    overwrite(f, tail_at(f, i), cluster, SHMQ_CRC_PROP_LEN);
}

/* ---- the check -------------------------------------------------------------------------- */

static void check_every_bit_of(fixture_t *f, int i)
{
    int64_t start = f->rec[i].phys_offset;
    for (int64_t p = start; p < start + f->rec[i].size; p++) {
        for (int bit = 0; bit < 8; bit++) {
            flip(f, p, (uint8_t)(1u << bit));
            assert_corrupt_at(f, i);
            flip(f, p, (uint8_t)(1u << bit));
        }
    }
    assert_good_at(f, i);
}

static void test_every_single_bit_flip_in_an_older_segment_record_is_reported(void **state)
{
    fixture_t *f = *state;
    assert_true(f->rec[OLD_IDX].phys_offset < SEG_SIZE);
    check_every_bit_of(f, OLD_IDX);
}

static void test_every_single_bit_flip_in_a_current_segment_record_is_reported(void **state)
{
    fixture_t *f = *state;
    int last = N_MSGS - 1;
    /* The segment the writer appends to, not the first one. */
    assert_true(f->rec[last].phys_offset / SEG_SIZE == (f->st.cl.wrote_pos - 1) / SEG_SIZE);
    assert_true(f->rec[last].phys_offset / SEG_SIZE > 0);
    check_every_bit_of(f, last);
}

static void
test_corrupt_pull_delivers_what_came_before_and_names_file_offset_queue_offset(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    flip(f, body_byte(f, OLD_IDX, 3), 0x04);

    assert_int_equal(shmq_pull(f->c, "TopicC", 0, 0, 32, NULL, 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_FOUND);
    assert_int_equal(r->count, OLD_IDX);
    assert_int_equal(r->next_offset, OLD_IDX);
    assert_int_equal(r->corrupt.queue_offset, -1);

    for (int again = 0; again < 2; again++) {
        assert_corrupt_at(f, OLD_IDX);
        /* The whole-record __CRC32# is what the body flip fails. */
        assert_int_equal(r->corrupt.check, SHMQ_E_RECORD_CRC);
        char want[800];
        snprintf(want, sizeof(want), "TopicC/0 queue offset %d: CommitLog file %s offset %lld",
                 OLD_IDX, r->corrupt.file, (long long)r->corrupt.file_offset);
        assert_non_null(strstr(shmq_error_detail(), want));
    }
    /* The message after it is good. */
    assert_good_at(f, OLD_IDX + 1);
}

static void test_filtered_units_before_a_corrupt_one_are_passed_over(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    flip(f, body_byte(f, OLD_IDX, 0), 0x01); /* OLD_IDX is odd: TagB */
    /* Unit OLD_IDX-1 (TagA) filtered, then the corrupt one: the filtered unit is answered. */
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, OLD_IDX - 1, 32, "TagB", 0, r), 0);
    assert_int_equal(r->status, SHMQ_PULL_NO_MATCHED_MSG);
    assert_int_equal(r->next_offset, OLD_IDX);
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, OLD_IDX, 32, "TagB", 0, r), SHMQ_E_CORRUPT);
    /* A subscription that does not want it never reads it. */
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, OLD_IDX - 1, 4, "TagA", 0, r), 0);
    assert_int_equal(r->count, 4);
    assert_int_equal(r->msgs[1].queue_offset, OLD_IDX + 1);
}

static void test_check_crcs_off_lets_a_flipped_body_through(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    flip(f, body_byte(f, OLD_IDX, 3), 0x04);
    shmq_consumer_set_check_crcs(f->c, false);
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, OLD_IDX, 1, NULL, 0, r), 0);
    assert_int_equal(r->count, 1);
    char body[1024];
    body_of(OLD_IDX, body, sizeof(body));
    assert_int_equal(((const char *)r->msgs[0].body)[3], body[3] ^ 0x04);
    /* The unit checks stay: a unit pointing at another message's record is refused. */
    char path[600];
    snprintf(path, sizeof(path), "%s/consumequeue/TopicC/0/00000000000000000000", f->root);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t unit[SHMQ_CQ_UNIT_SIZE];
    assert_int_equal(pread(fd, unit, sizeof(unit), 3 * SHMQ_CQ_UNIT_SIZE), SHMQ_CQ_UNIT_SIZE);
    assert_int_equal(pwrite(fd, unit, sizeof(unit), 2 * SHMQ_CQ_UNIT_SIZE), SHMQ_CQ_UNIT_SIZE);
    close(fd);
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, 2, 1, NULL, 0, r), SHMQ_E_CORRUPT);
    assert_int_equal(r->corrupt.check, SHMQ_E_CORRUPT);
    assert_int_equal(r->corrupt.queue_offset, 2);
    assert_int_equal(r->corrupt.phys_offset, f->rec[3].phys_offset);
    /* On again: the body flip is caught. */
    shmq_consumer_set_check_crcs(f->c, true);
    assert_corrupt_at(f, OLD_IDX);
}

static void test_damaged_crc_property_name_does_not_switch_the_check_off(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    /* Each bit of the 0x02 before "__CRC32#", of its 8 name bytes and of its 0x01. */
    for (int64_t p = tail_at(f, OLD_IDX) - 1; p < tail_at(f, OLD_IDX) + 9; p++) {
        for (int bit = 0; bit < 8; bit++) {
            flip(f, p, (uint8_t)(1u << bit));
            assert_corrupt_at(f, OLD_IDX);
            assert_int_equal(r->corrupt.check, SHMQ_E_RECORD_CRC);
            assert_non_null(strstr(shmq_error_detail(), "damaged __CRC32#"));
            flip(f, p, (uint8_t)(1u << bit));
        }
    }
    /* A damaged name and a flipped header field (the born time, not in any unit check). */
    flip(f, tail_at(f, OLD_IDX) + 2, 0x01);
    flip(f, f->rec[OLD_IDX].phys_offset + 47, 0x01);
    assert_corrupt_at(f, OLD_IDX);
}

/* ---- records without __CRC32# -------------------------------------------------------------- */

static void test_rocketmq_record_without_crc_property_is_delivered(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    make_rocketmq_record(f, 3);
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, 0, 10, NULL, 0, r), 0);
    assert_int_equal(r->count, 10);
    size_t len;
    const char *v = shmq_msg_property(&r->msgs[3], "CLUSTER", &len);
    assert_non_null(v);
    assert_int_equal(len, 11);
    assert_null(shmq_msg_property(&r->msgs[3], SHMQ_PROP_CRC32, &len));
    assert_good_at(f, 3);

    /* Its body is still checked, by BODYCRC. */
    flip(f, body_byte(f, 3, 10), 0x80);
    assert_corrupt_at(f, 3);
    assert_int_equal(r->corrupt.check, SHMQ_E_BODY_CRC);
    flip(f, body_byte(f, 3, 10), 0x80);
    flip(f, f->rec[3].phys_offset + 8, 0x02); /* BODYCRC itself */
    assert_corrupt_at(f, 3);
    assert_int_equal(r->corrupt.check, SHMQ_E_BODY_CRC);
    flip(f, f->rec[3].phys_offset + 8, 0x02);
    assert_good_at(f, 3);
}

/*
 * A zeroed sector over the end of the properties takes the __CRC32# tail with
 * it: the record then reads as one without a tail, its body CRC still right.
 * A 0x00 byte in the properties marks it damaged (no writer stores one).
 */
static void test_zeroed_crc_property_and_properties_end_are_reported(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    static const uint8_t zeros[SHMQ_CRC_PROP_LEN + 1];
    for (size_t n = 1; n <= sizeof(zeros); n++) {
        overwrite(f, f->rec[OLD_IDX].phys_offset + f->rec[OLD_IDX].size - (int64_t)n, zeros, n);
        assert_corrupt_at(f, OLD_IDX);
        assert_int_equal(r->corrupt.check, SHMQ_E_RECORD_CRC);
    }
    /* One zero byte inside an ordinary property of a RocketMQ record (no tail). */
    make_rocketmq_record(f, 4);
    assert_good_at(f, 4);
    overwrite(f, tail_at(f, 4) + 9, zeros, 1);
    assert_corrupt_at(f, 4);
    assert_int_equal(r->corrupt.check, SHMQ_E_RECORD_CRC);
    assert_non_null(strstr(shmq_error_detail(), "0x00 byte"));
}

/*
 * In a store shmq wrote (the checkpoint's marker at or below the record), a
 * record without __CRC32# is damaged: a stale copy of other bytes over its
 * properties, even one that reads as ordinary properties, is never delivered.
 */
static void test_missing_tail_where_the_marker_requires_one_is_reported(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    make_rocketmq_record(f, 3);
    assert_good_at(f, 3); /* before the marker: RocketMQ's rules */
    f->ctl.blk->hdr.crc_tail_from = f->rec[3].phys_offset;
    assert_corrupt_at(f, 3);
    assert_int_equal(r->corrupt.check, SHMQ_E_RECORD_CRC);
    assert_non_null(strstr(shmq_error_detail(), "no __CRC32#"));
    assert_good_at(f, 2);
    assert_good_at(f, 4); /* records with their tail pass */
    f->ctl.blk->hdr.crc_tail_from = f->rec[4].phys_offset;
    assert_good_at(f, 3);
}

/* ---- the skip ------------------------------------------------------------------------------ */

static void test_skip_moves_the_group_past_exactly_one_corrupt_message(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    char line[2048];
    int64_t off = -1;
    flip(f, body_byte(f, OLD_IDX, 3), 0x04);

    /* The group is not at it: nothing moves. */
    assert_int_equal(shmq_commit_offset(f->c, "TopicC", 0, OLD_IDX - 2), 0);
    assert_int_equal(shmq_consumer_skip_corrupt(f->c, "TopicC", 0, OLD_IDX, line, sizeof(line)),
                     SHMQ_E_RANGE);
    assert_string_equal(line, "");
    assert_int_equal(shmq_fetch_offset(f->c, "TopicC", 0, &off), 0);
    assert_int_equal(off, OLD_IDX - 2);
    /* A good message is never skipped. */
    assert_int_equal(shmq_consumer_skip_corrupt(f->c, "TopicC", 0, OLD_IDX - 2, line, sizeof(line)),
                     SHMQ_E_ARG);
    assert_int_equal(shmq_fetch_offset(f->c, "TopicC", 0, &off), 0);
    assert_int_equal(off, OLD_IDX - 2);
    /* Outside the queue. */
    assert_int_equal(shmq_consumer_skip_corrupt(f->c, "TopicC", 0, N_MSGS, NULL, 0), SHMQ_E_RANGE);

    /* The group at it: the skip moves it by one and says so. */
    assert_int_equal(shmq_commit_offset(f->c, "TopicC", 0, OLD_IDX), 0);
    assert_int_equal(shmq_consumer_skip_corrupt(f->c, "TopicC", 0, OLD_IDX, line, sizeof(line)), 0);
    assert_int_equal(shmq_fetch_offset(f->c, "TopicC", 0, &off), 0);
    assert_int_equal(off, OLD_IDX + 1);
    char path[600], where[700], want[900];
    seg_path(f, f->rec[OLD_IDX].phys_offset, path, sizeof(path));
    snprintf(where, sizeof(where), "CommitLog file %s offset %lld: ", path,
             (long long)(f->rec[OLD_IDX].phys_offset % SEG_SIZE));
    snprintf(want, sizeof(want),
             "skipped corrupt message TopicC/0 queue offset %d for group " GROUP
             " (offset now %d): %s",
             OLD_IDX, OLD_IDX + 1, where);
    assert_memory_equal(line, want, strlen(want));
    /* Once: the group is past it now. */
    assert_int_equal(shmq_consumer_skip_corrupt(f->c, "TopicC", 0, OLD_IDX, NULL, 0), SHMQ_E_RANGE);
    assert_int_equal(shmq_pull(f->c, "TopicC", 0, off, 32, NULL, 0, r), 0);
    assert_int_equal(r->msgs[0].queue_offset, OLD_IDX + 1);

    /* Without a group: checked and described, nothing committed. */
    shmq_consumer_t *anon;
    assert_int_equal(shmq_consumer_open(f->root, NULL, &anon), 0);
    assert_int_equal(shmq_consumer_skip_corrupt(anon, "TopicC", 0, OLD_IDX, line, sizeof(line)), 0);
    snprintf(want, sizeof(want), "corrupt message TopicC/0 queue offset %d given up: %s", OLD_IDX,
             where);
    assert_memory_equal(line, want, strlen(want));
    assert_int_equal(shmq_consumer_skip_corrupt(anon, "TopicC", 0, OLD_IDX + 1, NULL, 0),
                     SHMQ_E_ARG);
    shmq_consumer_close(anon);
}

static void test_poll_gets_every_good_message_and_the_skip_passes_the_corrupt_ones(void **state)
{
    fixture_t *f = *state;
    shmq_pull_result_t *r = f->res;
    int bad[3] = {0, OLD_IDX, N_MSGS - 2}; /* the first message, an older one, a newer one */
    flip(f, body_byte(f, bad[0], 1), 0x10);
    flip(f, f->rec[bad[1]].phys_offset + 47, 0x01); /* born time */
    flip(f, tail_at(f, bad[2]) + 4, 0x20);          /* "__CRC32#" -> "__CRc32#" */
    int seen[N_MSGS] = {0};
    int corrupt_hits = 0, skipped = 0;
    for (int round = 0; round < 10 * N_MSGS; round++) {
        int rc = shmq_consumer_poll(f->c, "TopicC", NULL, 16, 0, r);
        if (rc == SHMQ_E_CORRUPT) {
            corrupt_hits++;
            assert_int_equal(r->corrupt.queue_offset, bad[skipped]);
            char line[2048];
            assert_int_equal(shmq_consumer_skip_corrupt(f->c, r->corrupt.topic, r->corrupt.queue_id,
                                                        r->corrupt.queue_offset, line,
                                                        sizeof(line)),
                             0);
            skipped++;
            continue;
        }
        assert_int_equal(rc, 0);
        if (r->status == SHMQ_PULL_NO_NEW_MSG) {
            break;
        }
        for (size_t k = 0; k < r->count; k++) {
            seen[r->msgs[k].queue_offset]++;
        }
    }
    assert_int_equal(corrupt_hits, 3);
    assert_int_equal(skipped, 3);
    for (int i = 0; i < N_MSGS; i++) {
        bool is_bad = i == bad[0] || i == bad[1] || i == bad[2];
        assert_int_equal(seen[i], is_bad ? 0 : 1);
    }
    int64_t off = -1;
    shmq_consumer_poll(f->c, "TopicC", NULL, 16, 0, r); /* commits the last batch */
    assert_int_equal(shmq_fetch_offset(f->c, "TopicC", 0, &off), 0);
    assert_int_equal(off, N_MSGS);
}

/*
 * One case of the pull's fast path against the path it stands for: the record
 * rec (total bytes, byte at set to val unless set < 0) given avail readable
 * bytes and unit u.  Whenever shmq_cons_record_view_v1() takes it, the full
 * check takes it too and fills the same view.  Returns whether the fast path
 * took it.
 */
static bool fast_case(shmq_consumer_t *c, const uint8_t *rec, size_t total, int set, uint8_t val,
                      size_t avail, const shmq_cq_unit_t *u, int64_t qoff, const char *topic,
                      int32_t queue_id, bool check)
{
    uint8_t *buf = malloc(avail); /* exactly what is readable: ASan sees any read past it */
    assert_non_null(buf);
    memset(buf, 0x5A, avail);
    memcpy(buf, rec, total < avail ? total : avail);
    if (set >= 0 && (size_t)set < avail) {
        buf[set] = val;
    }
    shmq_mapped_file_t mf;
    memset(&mf, 0, sizeof(mf));
    snprintf(mf.path, sizeof(mf.path), "fast-case");
    mf.base = buf;
    mf.size = avail;
    mf.start_offset = u->phys_offset > 0 ? u->phys_offset : 0;
    shmq_msg_view_t fast, full;
    memset(&fast, 0, sizeof(fast));
    memset(&full, 0, sizeof(full));
    size_t tlen = strlen(topic);
    bool took = shmq_cons_record_view_v1(buf, avail, u, qoff, topic, tlen, queue_id, check, &fast);
    if (took) {
        shmq_corrupt_t bad;
        int rc =
            shmq_cons_record_view_in(c, &mf, u, qoff, topic, tlen, queue_id, check, &full, &bad);
        assert_int_equal(rc, 0);
        /* The views point into buf: compare them field by field through their bytes. */
        assert_memory_equal(&fast, &full, sizeof(fast));
    }
    free(buf);
    return took;
}

static void test_pull_fast_path_takes_only_what_the_full_check_takes(void **state)
{
    fixture_t *f = *state;
    char t127[128], t128[129];
    memset(t127, 'q', 127);
    t127[127] = '\0';
    memset(t128, 'r', 128);
    t128[128] = '\0';
    const char *topics[] = {"T", "TopicC", "TopicSixteenChar", "TopicOfSeventeen1", t127, t128};
    char body[200];
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)('a' + i % 26);
    }
    size_t body_lens[] = {0, 5, 128};
    char props[64];
    size_t props_len = 0;
    assert_int_equal(shmq_props_append(props, sizeof(props), &props_len, SHMQ_PROP_TAGS, "TagA", 4),
                     0);
    int fast_taken = 0, v1_cases = 0;
    for (size_t ti = 0; ti < sizeof(topics) / sizeof(topics[0]); ti++) {
        for (size_t bi = 0; bi < 3; bi++) {
            for (int hosts = 0; hosts < 4; hosts++) { /* bit 0: born v6, bit 1: store v6 */
                shmq_msg_in_t m;
                memset(&m, 0, sizeof(m));
                m.topic = topics[ti];
                m.topic_len = strlen(topics[ti]);
                m.queue_id = 3;
                m.flag = 0x01020304;
                m.born_ts = 1700000000123LL;
                shmq_local_host(&m.born_host, 5555);
                shmq_local_host(&m.store_host, 10911);
                if (hosts & 1) {
                    m.born_host.is_v6 = 1;
                    memset(m.born_host.addr, 0xAB, 16);
                }
                if (hosts & 2) {
                    m.store_host.is_v6 = 1;
                    memset(m.store_host.addr, 0xCD, 16);
                }
                m.reconsume_times = 2;
                m.body = body;
                m.body_len = body_lens[bi];
                m.props = bi == 1 ? NULL : props;
                m.props_len = bi == 1 ? 0 : props_len;
                uint8_t rec[1024];
                const int64_t phys = 4096 + 16 * (int64_t)ti, qoff = 77;
                int64_t total =
                    shmq_record_encode(&m, qoff, phys, 1700000000456LL, rec, sizeof(rec));
                assert_true(total > 0);
                bool v1 = m.topic_len < 128 && hosts == 0;
                const shmq_cq_unit_t good = {.phys_offset = phys, .size = (int32_t)total};
                for (int check = 0; check < 2; check++) {
                    /* As written: the fast path takes every V1 record with IPv4 hosts. */
                    bool took = fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &good,
                                          qoff, m.topic, 3, check);
                    assert_int_equal(took, v1);
                    v1_cases += v1;
                    fast_taken += took;
                    /* Another unit, queue, queue offset, topic of the same length, or fewer
                     * readable bytes: never taken by the fast path unless the full check
                     * takes it too (fast_case's asserts). */
                    shmq_cq_unit_t u = good;
                    u.size--;
                    fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &u, qoff, m.topic, 3,
                              check);
                    u = good;
                    u.phys_offset++;
                    fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &u, qoff, m.topic, 3,
                              check);
                    assert_false(fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &good,
                                           qoff + 1, m.topic, 3, check));
                    assert_false(fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &good,
                                           qoff, m.topic, 4, check));
                    char other[260];
                    snprintf(other, sizeof(other), "%s", m.topic);
                    other[0] ^= 1;
                    assert_false(fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total, &good,
                                           qoff, other, 3, check));
                    assert_false(fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total - 1,
                                           &good, qoff, m.topic, 3, check));
                    fast_case(f->c, rec, (size_t)total, -1, 0, (size_t)total + 9, &good, qoff,
                              m.topic, 3, check);
                    /* Every byte of the record set to other values. */
                    for (int64_t at = 0; at < total; at++) {
                        const uint8_t vals[] = {(uint8_t)(rec[at] ^ 0x01),
                                                (uint8_t)(rec[at] ^ 0x80), 0x00, 0xFF, 0x7F};
                        for (size_t k = 0; k < sizeof(vals); k++) {
                            if (vals[k] != rec[at]) {
                                fast_case(f->c, rec, (size_t)total, (int)at, vals[k], (size_t)total,
                                          &good, qoff, m.topic, 3, check);
                            }
                        }
                    }
                }
            }
        }
    }
    assert_int_equal(fast_taken, v1_cases);
    assert_true(v1_cases > 0);
}

/*
 * The fast path's tail value (shmq_cons_crc_tail_value) against the one it
 * stands for (shmq_record_crc_tail_value): the same answer for well-formed
 * tails of every digit at every place, for each byte of the tail and the
 * separator before it set to other values, and for short properties.
 */
static void test_fast_tail_value_is_the_record_layout_one(void **state)
{
    (void)state;
    uint8_t props[64];
    uint32_t seed = 12345;
    int formed = 0;
    for (int round = 0; round < 4000; round++) {
        /* "a\1b\2" then the tail: "__CRC32#" 0x01, ten digits, 0x02. */
        size_t pre = (size_t)(round % 3) * 4;
        memcpy(props, "a\001b\002a\001b\002", pre);
        memcpy(props + pre, SHMQ_PROP_CRC32, 8);
        props[pre + 8] = SHMQ_PROP_NAME_VALUE_SEP;
        for (int k = 0; k < 10; k++) {
            seed = seed * 1103515245u + 12345u;
            props[pre + 9 + k] =
                (uint8_t)('0' + (round < 100 ? (uint32_t)(round + k) % 10 : (seed >> 16) % 10));
        }
        props[pre + 19] = SHMQ_PROP_SEP;
        uint32_t len = (uint32_t)pre + SHMQ_CRC_PROP_LEN;
        int64_t want = shmq_record_crc_tail_value(props, len);
        assert_int_equal(shmq_cons_crc_tail_value(props, len), want);
        formed += want >= 0;
        /* Shorter properties, and each byte before the end set to other values. */
        for (uint32_t l = 0; l < len; l++) {
            assert_int_equal(shmq_cons_crc_tail_value(props + len - l, l),
                             shmq_record_crc_tail_value(props + len - l, l));
        }
        if (round % 8 == 0) {
            for (uint32_t at = 0; at < len; at++) {
                const uint8_t vals[] = {'0' - 1, '9' + 1, '0',  '9',  0x00,
                                        0x01,    0x02,    0xFF, 0x80, (uint8_t)(props[at] ^ 0x10)};
                uint8_t keep = props[at];
                for (size_t k = 0; k < sizeof(vals); k++) {
                    props[at] = vals[k];
                    assert_int_equal(shmq_cons_crc_tail_value(props, len),
                                     shmq_record_crc_tail_value(props, len));
                }
                props[at] = keep;
            }
        }
    }
    assert_int_equal(formed, 4000);
}

/* Every message of TopicC/0 pulled with subscription sub into out[0..N_MSGS). */
static void pull_all(fixture_t *f, const char *sub, shmq_msg_view_t *out)
{
    shmq_pull_result_t *r = f->res;
    int64_t off = 0;
    int n = 0;
    while (off < N_MSGS) {
        assert_int_equal(shmq_pull(f->c, "TopicC", 0, off, SHMQ_PULL_MAX, sub, 0, r), 0);
        assert_int_equal(r->status, SHMQ_PULL_FOUND);
        for (size_t i = 0; i < r->count; i++) {
            out[n++] = r->msgs[i];
        }
        off = r->next_offset;
    }
    assert_int_equal(n, N_MSGS);
}

/*
 * The pull's loop for the usual shape (pull_run) against the full loop it
 * bypasses (a tag filter every message matches takes that one), with and
 * without ids (shmq_consumer_set_msg_ids): the same views, msg_id "" without
 * ids and shmq_msg_view_id() giving what the pull would have put there.
 */
static void test_pull_without_ids_and_the_full_loop_give_the_same_views(void **state)
{
    fixture_t *f = *state;
    static shmq_msg_view_t runs[N_MSGS], full[N_MSGS], lazy[N_MSGS], lazy_full[N_MSGS];
    pull_all(f, NULL, runs);
    pull_all(f, "TagA || TagB", full);
    shmq_consumer_set_msg_ids(f->c, false);
    pull_all(f, NULL, lazy);
    pull_all(f, "TagA || TagB", lazy_full);
    shmq_consumer_set_msg_ids(f->c, true);
    for (int i = 0; i < N_MSGS; i++) {
        assert_memory_equal(&runs[i], &full[i], sizeof(runs[i]));
        assert_int_equal(runs[i].queue_offset, i);
        assert_int_equal(runs[i].phys_offset, f->rec[i].phys_offset);
        assert_int_equal(strlen(runs[i].msg_id), 32);
        assert_string_equal(lazy[i].msg_id, "");
        assert_string_equal(lazy_full[i].msg_id, "");
        char id[SHMQ_MSGID_MAX];
        assert_int_equal(shmq_msg_view_id(&lazy[i], id), 0);
        assert_string_equal(id, runs[i].msg_id);
        assert_int_equal(shmq_msg_view_id(&lazy_full[i], id), 0);
        assert_string_equal(id, runs[i].msg_id);
        assert_int_equal(shmq_msg_view_id(&runs[i], id), 0);
        assert_string_equal(id, runs[i].msg_id);
        /* Apart from the id, the same views. */
        memcpy(lazy[i].msg_id, runs[i].msg_id, SHMQ_MSGID_MAX);
        memcpy(lazy_full[i].msg_id, runs[i].msg_id, SHMQ_MSGID_MAX);
        assert_memory_equal(&lazy[i], &runs[i], sizeof(runs[i]));
        assert_memory_equal(&lazy_full[i], &runs[i], sizeof(runs[i]));
    }
    /* A view with no id and no record: refused, not guessed. */
    shmq_msg_view_t none;
    memset(&none, 0, sizeof(none));
    char id[SHMQ_MSGID_MAX];
    assert_int_equal(shmq_msg_view_id(&none, id), SHMQ_E_ARG);
    assert_int_equal(shmq_msg_view_id(NULL, id), SHMQ_E_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_tail_value_is_the_record_layout_one),
        cmocka_unit_test_setup_teardown(test_pull_without_ids_and_the_full_loop_give_the_same_views,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_fast_path_takes_only_what_the_full_check_takes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_every_single_bit_flip_in_an_older_segment_record_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_every_single_bit_flip_in_a_current_segment_record_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_corrupt_pull_delivers_what_came_before_and_names_file_offset_queue_offset, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_filtered_units_before_a_corrupt_one_are_passed_over,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_crcs_off_lets_a_flipped_body_through, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_damaged_crc_property_name_does_not_switch_the_check_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_crc_property_and_properties_end_are_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_tail_where_the_marker_requires_one_is_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rocketmq_record_without_crc_property_is_delivered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_moves_the_group_past_exactly_one_corrupt_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_poll_gets_every_good_message_and_the_skip_passes_the_corrupt_ones, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
