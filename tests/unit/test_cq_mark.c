/*
 * The checkpoint's mark against the walk it replaced: the dispatcher keeps
 * its batch ends with the store time of each batch's last record
 * (shmq_marks_t, ctl.h) and the flusher names one of them in the checkpoint;
 * before, the flusher walked the record sizes (shmq_commitlog_skip) and read
 * the last record.  On a real CommitLog (small segments closed by blank
 * records, records of many sizes, each with its own store time), read in
 * batches of random length as the dispatcher reads it, every mark taken is a
 * record boundary the walk reaches exactly, its time is the time of the
 * record the walk finds last, it never lies above the limit, and a limit at
 * or above the last batch end gets that batch end.  Every record has a time
 * of its own, so a time taken from another record of the batch (or of
 * another batch) would show.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

#define SEG      8192
#define RECORDS  600
#define TS_FIRST 1700000000000LL

static uint8_t body_buf[2048];
static const char props[] = "KEYS\001k1\002TAGS\001tagA\002";

static int setup_dir(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-mark-XXXXXX");
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

static void append_one(shmq_commitlog_t *cl, size_t body_len, int64_t ts)
{
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicMark";
    m.topic_len = 9;
    m.queue_id = 1;
    m.born_ts = TS_FIRST;
    m.body = body_buf;
    m.body_len = body_len;
    m.props = props;
    m.props_len = sizeof(props) - 1;
    shmq_append_result_t res;
    assert_int_equal(shmq_commitlog_append(cl, &m, 0, ts, &res), 0);
    assert_int_equal(res.store_ts, ts);
}

/* The bypassed path: walk the sizes from 0 to pos, read the last record passed. */
static int walk_ts(const shmq_commitlog_t *cl, int64_t pos, int64_t *end, int64_t *ts)
{
    int64_t p = 0, last = -1;
    int rc = shmq_commitlog_skip(cl, &p, pos, &last);
    if (rc < 0) {
        return rc;
    }
    *end = p;
    *ts = 0;
    if (last >= 0) {
        shmq_record_head_t r;
        rc = shmq_commitlog_next_head(cl, &last, pos, SHMQ_DECODE_CHECK_PHYS, &r);
        if (rc <= 0) {
            return rc < 0 ? rc : SHMQ_E_CORRUPT;
        }
        *ts = r.store_ts;
    }
    return 0;
}

static void test_marks_of_batch_ends_name_what_the_walk_finds(void **state)
{
    const char *dir = *state;
    shmq_commitlog_t cl;
    assert_int_equal(shmq_commitlog_open(&cl, dir, SEG, 0), 0);
    srandom(11);
    for (int i = 0; i < RECORDS; i++) {
        append_one(&cl, (size_t)(random() % 1500), TS_FIRST + 7 * i);
    }
    int64_t end = cl.wrote_pos;
    shmq_commitlog_set_positions(&cl, end, end);
    assert_true(cl.q.count > 20); /* many segments, each closed by a blank record */

    /* The dispatcher: records in batches; each batch end offered with its last time. */
    shmq_marks_t l;
    shmq_marks_init(&l);
    shmq_cl_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    int64_t pos = 0, last_ts = 0, upto = 0, taken = 0;
    long takes = 0, records = 0, first_differs = 0, older = 0;
    while (pos < end) {
        int n = 1 + (int)(random() % 9);
        int64_t first_ts = 0;
        for (int i = 0; i < n && pos < end; i++) {
            shmq_record_head_t r = {0};
            int rc =
                shmq_commitlog_next_head_inline(&cl, &cur, &pos, end, SHMQ_DECODE_CHECK_PHYS, &r);
            assert_true(rc > 0);
            first_ts = i == 0 ? r.store_ts : first_ts;
            last_ts = r.store_ts;
            records++;
        }
        shmq_marks_add(&l, pos, last_ts);
        first_differs += n > 1 && first_ts != last_ts;
        if (random() % 4 != 0) {
            continue;
        }
        /* The flusher's limit: anywhere from where it was to a little past the batch
         * end, mid-record too (flushed or cq_flushed behind the dispatcher, or past it). */
        upto += random() % (pos - upto + 200);
        int64_t mpos, mts, wend, wts;
        assert_true(shmq_marks_take(&l, upto, &mpos, &mts));
        takes++;
        assert_true(mpos <= upto && mpos >= taken);
        taken = mpos;
        assert_int_equal(walk_ts(&cl, mpos, &wend, &wts), 0);
        assert_int_equal(wend, mpos); /* a record boundary */
        assert_int_equal(mts, wts);   /* the time of the record before it */
        if (upto >= pos) {
            assert_int_equal(mpos, pos); /* the newest batch end, exactly */
        } else {
            older++; /* a batch end kept below the newest */
        }
    }
    assert_int_equal(records, RECORDS);
    assert_true(takes > 10);
    assert_true(first_differs > 10);
    assert_true(older > 10);
    shmq_commitlog_close(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_marks_of_batch_ends_name_what_the_walk_finds,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
