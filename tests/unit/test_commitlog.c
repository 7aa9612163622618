/*
 * Unit tests for commitlog.c: segment-end rule with the blank record, batch
 * placement, reading back by offset / iteration / store time, truncation,
 * flushing and fencing after a failed flush, background preparation of the
 * next segment, read-only opening, a slave's putting of the master's
 * bytes (only complete, checked records taken), and staged appends (written
 * with pwrite).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "format/commitlog.h"
#include "shmq/errors.h"

#define SEG       4096
#define BIG_SEG   65536
#define ALL_CHECK (SHMQ_DECODE_CHECK_ALL | SHMQ_DECODE_REQUIRE_RECORD_CRC)

static uint8_t body_buf[BIG_SEG];
static const char props[] = "KEYS\001k1\002TAGS\001tagA\002";

static int setup_dir(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-cl-XXXXXX");
    if (dir == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(body_buf); i++) {
        body_buf[i] = (uint8_t)(i * 31 + 7);
    }
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    return tmp_tree_teardown(state);
}

static void test_host(shmq_host_t *h, uint8_t last, int32_t port)
{
    memset(h, 0, sizeof(*h));
    h->addr[0] = 10;
    h->addr[3] = last;
    h->port = port;
}

static shmq_msg_in_t msg_with_body(size_t body_len)
{
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicTest";
    m.topic_len = 9;
    m.queue_id = 3;
    m.born_ts = 1700000000000;
    test_host(&m.born_host, 2, 5555);
    test_host(&m.store_host, 1, 10911);
    m.body = body_buf;
    m.body_len = body_len;
    m.props = props;
    m.props_len = sizeof(props) - 1;
    return m;
}

/* A message whose record is exactly len bytes. */
static shmq_msg_in_t msg_of_size(int64_t len)
{
    shmq_msg_in_t m = msg_with_body(0);
    int64_t empty = shmq_record_size(&m);
    assert_true(empty > 0 && len >= empty);
    m.body_len = (size_t)(len - empty);
    assert_int_equal(shmq_record_size(&m), len);
    return m;
}

static void open_log(shmq_commitlog_t *cl, const char *dir, size_t seg, unsigned flags)
{
    assert_int_equal(shmq_commitlog_open(cl, dir, seg, flags), 0);
    test_host(&cl->store_host, 1, 10911);
}

static shmq_append_result_t append_len(shmq_commitlog_t *cl, int64_t len, int64_t qoff, int64_t ts)
{
    shmq_msg_in_t m = msg_of_size(len);
    shmq_append_result_t res;
    assert_int_equal(shmq_commitlog_append(cl, &m, qoff, ts, &res), 0);
    assert_int_equal(res.size, len);
    return res;
}

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool seg_exists(const char *dir, int64_t off)
{
    char name[21], path[PATH_MAX];
    shmq_segment_name(off, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_append_rolls_over_with_blank_record_at_exact_position(void **state)
{
    shmq_commitlog_t cl;
    shmq_record_t rec;

    open_log(&cl, *state, SEG, 0);
    for (int i = 0; i < 4; i++) {
        shmq_append_result_t r = append_len(&cl, 1000, i, 0);
        assert_int_equal(r.phys_offset, i * 1000);
    }
    assert_int_equal(cl.wrote_pos, 4000);
    shmq_append_result_t r = append_len(&cl, 1000, 4, 0);
    assert_int_equal(r.phys_offset, SEG);
    assert_int_equal(cl.wrote_pos, SEG + 1000);
    const uint8_t *blank = shmq_mfq_find(&cl.q, 0)->base + 4000;
    assert_int_equal(be32_at(blank), SEG - 4000);
    assert_int_equal(be32_at(blank + 4), (uint32_t)SHMQ_MAGIC_BLANK);
    assert_int_equal(shmq_commitlog_read(&cl, 4000, 0, &rec), 0);
    assert_int_equal(rec.total_size, SEG - 4000);
    assert_int_equal(shmq_commitlog_read(&cl, SEG, ALL_CHECK, &rec), 1000);
    assert_int_equal(rec.queue_offset, 4);
    shmq_commitlog_close(&cl);
}

static void test_append_fits_when_exactly_8_bytes_remain(void **state)
{
    shmq_commitlog_t cl;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 1000, 0, 0);
    shmq_append_result_t r = append_len(&cl, SEG - 1000 - 8, 1, 0); /* L + 8 == space */
    assert_int_equal(r.phys_offset, 1000);
    assert_int_equal(cl.wrote_pos, SEG - 8);
    assert_int_equal(cl.q.count, 1);
    r = append_len(&cl, 200, 2, 0);
    assert_int_equal(r.phys_offset, SEG);
    const uint8_t *blank = shmq_mfq_find(&cl.q, 0)->base + SEG - 8;
    assert_int_equal(be32_at(blank), 8);
    assert_int_equal(be32_at(blank + 4), (uint32_t)SHMQ_MAGIC_BLANK);
    shmq_commitlog_close(&cl);
}

static void test_append_rolls_when_only_7_bytes_would_remain(void **state)
{
    shmq_commitlog_t cl;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 1000, 0, 0);
    shmq_append_result_t r = append_len(&cl, SEG - 1000 - 7, 1, 0); /* L + 9 == space + 1 */
    assert_int_equal(r.phys_offset, SEG);
    const uint8_t *blank = shmq_mfq_find(&cl.q, 0)->base + 1000;
    assert_int_equal(be32_at(blank), SEG - 1000);
    assert_int_equal(be32_at(blank + 4), (uint32_t)SHMQ_MAGIC_BLANK);
    shmq_commitlog_close(&cl);
}

static void test_append_rejects_record_larger_than_segment(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t res;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 500, 0, 0);
    shmq_msg_in_t m = msg_of_size(SEG - 7);
    assert_int_equal(shmq_commitlog_append(&cl, &m, 1, 0, &res), SHMQ_E_SIZE);
    assert_int_equal(cl.wrote_pos, 500);
    m = msg_of_size(SEG - 8); /* fits an empty segment */
    assert_int_equal(shmq_commitlog_append(&cl, &m, 1, 0, &res), 0);
    assert_int_equal(res.phys_offset, SEG);
    shmq_commitlog_close(&cl);
}

static void test_batch_that_does_not_fit_moves_whole_to_next_segment(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t res[3];
    shmq_msg_in_t m[3];
    int64_t qoffs[3] = {10, 11, 12};
    shmq_record_t rec;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 3000, 0, 0);
    for (int i = 0; i < 3; i++) {
        m[i] = msg_of_size(400); /* one would fit, three do not */
    }
    assert_int_equal(shmq_commitlog_append_batch(&cl, m, 3, qoffs, 0, res), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].phys_offset, SEG + 400 * i);
        assert_int_equal(res[i].queue_offset, 10 + i);
        assert_int_equal(shmq_commitlog_read(&cl, res[i].phys_offset, ALL_CHECK, &rec), 400);
        assert_int_equal(rec.queue_offset, 10 + i);
    }
    const uint8_t *blank = shmq_mfq_find(&cl.q, 0)->base + 3000;
    assert_int_equal(be32_at(blank), SEG - 3000);
    assert_int_equal(be32_at(blank + 4), (uint32_t)SHMQ_MAGIC_BLANK);
    /* A batch that fits stays in place. */
    assert_int_equal(shmq_commitlog_append_batch(&cl, m, 2, qoffs, 0, res), 0);
    assert_int_equal(res[0].phys_offset, SEG + 1200);
    assert_int_equal(res[1].phys_offset, SEG + 1600);
    shmq_commitlog_close(&cl);
}

/* Two logs of seg-byte segments side by side in the test's directory (a/, b/), b with
 * b_flags; b's directory in dir_b. */
static void open_two_logs(void **state, shmq_commitlog_t *a, shmq_commitlog_t *b, size_t seg,
                          unsigned b_flags, char dir_b[512])
{
    char dir_a[512];
    snprintf(dir_a, sizeof(dir_a), "%s/a", (char *)*state);
    snprintf(dir_b, 512, "%s/b", (char *)*state);
    assert_int_equal(mkdir(dir_a, 0755), 0);
    assert_int_equal(mkdir(dir_b, 0755), 0);
    open_log(a, dir_a, seg, 0);
    open_log(b, dir_b, seg, b_flags);
}

/* Planned records land as append_batch() puts them: same bytes, same segment rule. */
static void test_append_plans_writes_what_append_batch_writes(void **state)
{
    shmq_commitlog_t a, b;
    shmq_append_result_t ra[3], rb[3];
    shmq_msg_in_t m[3];
    shmq_record_plan_t pl[3];
    int64_t qoffs[3] = {10, 11, 12};
    char dir_b[512];
    open_two_logs(state, &a, &b, SEG, 0, dir_b);
    append_len(&a, 3000, 0, 0);
    append_len(&b, 3000, 0, 0);
    for (int i = 0; i < 3; i++) {
        m[i] = msg_of_size(400); /* the batch moves to the next segment */
        m[i].store_host = b.store_host;
        assert_int_equal(shmq_record_plan(&m[i], 0, &pl[i]), 0);
    }
    assert_int_equal(shmq_commitlog_append_batch(&a, m, 3, qoffs, 0, ra), 0);
    assert_int_equal(shmq_commitlog_append_plans(&b, m, pl, 3, qoffs, 0, rb), 0);
    assert_int_equal(a.wrote_pos, b.wrote_pos);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ra[i].phys_offset, rb[i].phys_offset);
        assert_int_equal(ra[i].size, rb[i].size);
        assert_int_equal(ra[i].queue_offset, rb[i].queue_offset);
        assert_string_equal(rb[i].msg_id, "");
        shmq_record_t rec;
        assert_int_equal(shmq_commitlog_read(&b, rb[i].phys_offset, ALL_CHECK, &rec), 400);
        /* Byte for byte but the store time (each append reads the clock). */
        const uint8_t *pa = shmq_mfq_find(&a.q, ra[i].phys_offset)->base + ra[i].phys_offset % SEG;
        const uint8_t *pb = shmq_mfq_find(&b.q, rb[i].phys_offset)->base + rb[i].phys_offset % SEG;
        size_t ts_at = 48 + 8; /* IPv4 born host: store time at 56 */
        assert_memory_equal(pa, pb, ts_at);
        if (rec.store_ts == ra[i].store_ts) {
            assert_memory_equal(pa, pb, 400);
        }
    }
    const uint8_t *blank = shmq_mfq_find(&b.q, 0)->base + 3000;
    assert_int_equal(be32_at(blank), SEG - 3000);
    /* A store time given is the records' (never before the last one: the log's times only
     * grow): the same bytes as append_batch() with that time. */
    int64_t q2[1] = {13};
    int64_t ts = rb[0].store_ts + 5;
    assert_int_equal(shmq_commitlog_append_batch(&a, m, 1, q2, ts, ra), 0);
    assert_int_equal(shmq_commitlog_append_plans(&b, m, pl, 1, q2, ts, rb), 0);
    assert_true(ra[0].store_ts == ts && rb[0].store_ts == ts);
    assert_memory_equal(shmq_mfq_find(&a.q, ra[0].phys_offset)->base + ra[0].phys_offset % SEG,
                        shmq_mfq_find(&b.q, rb[0].phys_offset)->base + rb[0].phys_offset % SEG,
                        400);
    assert_int_equal(shmq_commitlog_append_plans(&b, m, pl, 1, q2, ts - 1000, rb), 0);
    assert_true(rb[0].store_ts == ts);
    /* append_plan(): the same as append_plans() of one record (bytes, results, time rule);
     * a first takes the record b took last. */
    assert_int_equal(shmq_commitlog_append_batch(&a, m, 1, q2, ts, ra), 0);
    assert_int_equal(a.wrote_pos, b.wrote_pos);
    assert_int_equal(shmq_commitlog_append_batch(&a, m, 1, q2, ts, ra), 0);
    assert_int_equal(shmq_commitlog_append_plan(&b, m, pl, q2[0], ts - 1000, rb), 0);
    assert_int_equal(a.wrote_pos, b.wrote_pos);
    assert_int_equal(ra[0].phys_offset, rb[0].phys_offset);
    assert_int_equal(ra[0].size, rb[0].size);
    assert_int_equal(ra[0].queue_offset, rb[0].queue_offset);
    assert_true(rb[0].store_ts == ts);
    assert_string_equal(rb[0].msg_id, "");
    assert_memory_equal(shmq_mfq_find(&a.q, ra[0].phys_offset)->base + ra[0].phys_offset % SEG,
                        shmq_mfq_find(&b.q, rb[0].phys_offset)->base + rb[0].phys_offset % SEG,
                        400);
    shmq_commitlog_close(&a);
    shmq_commitlog_close(&b);
}

/* One planned record of len bytes appended with append_plans(), or append_plan() for an odd
 * queue offset (both follow the same segment rules). */
static int plans_len(shmq_commitlog_t *cl, int64_t len, int64_t qoff, shmq_append_result_t *res)
{
    shmq_msg_in_t m = msg_of_size(len);
    m.store_host = cl->store_host;
    shmq_record_plan_t pl;
    assert_int_equal(shmq_record_plan(&m, 0, &pl), 0);
    if (qoff % 2 != 0) {
        return shmq_commitlog_append_plan(cl, &m, &pl, qoff, 0, res);
    }
    return shmq_commitlog_append_plans(cl, &m, &pl, 1, &qoff, 0, res);
}

/* The segment append_plans() keeps is used only while it is right: a record that does not fit
 * closes it with a blank record, a cut into an earlier segment (which unmaps the kept one)
 * writes at the cut, and a fenced log takes nothing. */
static void test_append_plans_kept_segment_follows_rolls_cuts_and_fences(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t r[12];
    shmq_record_t rec;

    open_log(&cl, *state, SEG, 0);
    for (int i = 0; i < 12; i++) { /* four 1000-byte records fit in a segment of 4096 */
        assert_int_equal(plans_len(&cl, 1000, i, &r[i]), 0);
        assert_int_equal(r[i].phys_offset, (i / 4) * SEG + (i % 4) * 1000);
        assert_int_equal(shmq_commitlog_read(&cl, r[i].phys_offset, ALL_CHECK, &rec), 1000);
        assert_int_equal(rec.queue_offset, i);
    }
    for (int k = 0; k < 2; k++) { /* the first two closed, the third written in */
        const uint8_t *blank = shmq_mfq_find(&cl.q, k * SEG)->base + 4000;
        assert_int_equal(be32_at(blank), SEG - 4000);
        assert_int_equal(be32_at(blank + 4), (uint32_t)SHMQ_MAGIC_BLANK);
    }
    /* Cut inside the first segment: the kept (third) one is unmapped. */
    assert_int_equal(shmq_commitlog_truncate(&cl, r[2].phys_offset), 0);
    assert_int_equal(cl.q.count, 1);
    shmq_append_result_t again;
    assert_int_equal(plans_len(&cl, 500, 2, &again), 0);
    assert_int_equal(again.phys_offset, r[2].phys_offset);
    assert_int_equal(shmq_commitlog_read(&cl, again.phys_offset, ALL_CHECK, &rec), 500);
    /* Cut inside the kept segment itself: the next record goes at the cut. */
    assert_int_equal(shmq_commitlog_truncate(&cl, r[1].phys_offset), 0);
    assert_int_equal(plans_len(&cl, 700, 1, &again), 0);
    assert_int_equal(again.phys_offset, r[1].phys_offset);
    assert_int_equal(shmq_commitlog_read(&cl, again.phys_offset, ALL_CHECK, &rec), 700);
    int64_t wrote = cl.wrote_pos;
    /* A failed flush fences appends, the kept segment notwithstanding. */
    cl.flush_err = -EIO;
    assert_int_equal(plans_len(&cl, 500, 2, &again), SHMQ_E_FENCED);
    assert_int_equal(plans_len(&cl, 500, 3, &again), SHMQ_E_FENCED);
    assert_int_equal(cl.wrote_pos, wrote);
    shmq_commitlog_close(&cl);
}

/* The bytes of the record at phys in cl's mapping (what a reader of the file sees). */
static const uint8_t *mapped_at(shmq_commitlog_t *cl, int64_t phys)
{
    const shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, phys);
    assert_non_null(mf);
    return mf->base + (phys - mf->start_offset);
}

#define STAGED_SEG (4 << 20) /* bigger than the stage */

/*
 * Staged appends (SHMQ_MF_STAGED): the room is the log's own buffer, not the
 * mapping; room_done() writes it into the segment before it publishes, and
 * readers of the file see what an unstaged log would have written there.  A
 * record bigger than the stage goes into the mapping; the room grows no
 * further than the stage holds.
 */
static void test_staged_appends_go_through_the_file(void **state)
{
    shmq_commitlog_t a, b;
    shmq_append_result_t ra, rb;
    shmq_record_t rec;
    char dir_b[512];
    open_two_logs(state, &a, &b, STAGED_SEG, SHMQ_MF_STAGED, dir_b);
    assert_null(a.stage);
    assert_non_null(b.stage);
    shmq_msg_in_t m = msg_of_size(400);
    m.store_host = b.store_host;
    shmq_record_plan_t pl;
    assert_int_equal(shmq_record_plan(&m, 0, &pl), 0);
    const int64_t ts = 1700000001000;
    for (int64_t q = 0; q < 3; q++) {
        assert_int_equal(shmq_commitlog_append_plans(&a, &m, &pl, 1, &q, ts, &ra), 0);
        assert_int_equal(shmq_commitlog_append_plans(&b, &m, &pl, 1, &q, ts, &rb), 0);
        assert_int_equal(ra.phys_offset, rb.phys_offset);
        assert_memory_equal(mapped_at(&a, ra.phys_offset), mapped_at(&b, rb.phys_offset), 400);
        assert_int_equal(shmq_commitlog_read(&b, rb.phys_offset, ALL_CHECK, &rec), 400);
    }
    assert_int_equal(b.wrote_pos, 1200);

    /* The writer's room: the stage, published only by room_done(). */
    shmq_commitlog_room_t room;
    assert_int_equal(shmq_commitlog_room(&b, 400, ts, &room), 0);
    assert_true(room.fd >= 0);
    assert_ptr_equal(room.dst, b.stage);
    assert_int_equal(room.pos, 1200);
    assert_int_equal(room.most, SHMQ_CL_STAGE_BYTES);
    assert_false(shmq_commitlog_room_grow(&b, &room, SHMQ_CL_STAGE_BYTES + 1));
    assert_true(shmq_commitlog_room_grow(&b, &room, 800));
    int64_t q3 = 3, q4 = 4;
    assert_int_equal(shmq_record_encode_plan(&m, &pl, q3, 1200, room.ts, room.dst), 400);
    assert_int_equal(shmq_record_encode_plan(&m, &pl, q4, 1600, room.ts, room.dst + 400), 400);
    assert_int_equal(be32_at(mapped_at(&b, 1200)), 0); /* not in the file yet */
    assert_int_equal(b.wrote_pos, 1200);
    assert_int_equal(shmq_commitlog_room_done(&b, &room, 800), 0);
    assert_int_equal(b.wrote_pos, 2000);
    assert_int_equal(shmq_commitlog_read(&b, 1200, ALL_CHECK, &rec), 400);
    assert_int_equal(rec.queue_offset, 3);
    assert_int_equal(shmq_commitlog_read(&b, 1600, ALL_CHECK, &rec), 400);
    assert_int_equal(rec.queue_offset, 4);

    /* A record bigger than the stage: into the mapping. */
    uint8_t *big = calloc(1, SHMQ_CL_STAGE_BYTES + 4096);
    assert_non_null(big);
    shmq_msg_in_t mb = msg_with_body(0);
    mb.store_host = b.store_host;
    mb.body = big;
    mb.body_len = SHMQ_CL_STAGE_BYTES + 100;
    shmq_record_plan_t plb;
    assert_int_equal(shmq_record_plan(&mb, 0, &plb), 0);
    assert_int_equal(shmq_commitlog_room(&b, plb.total, ts, &room), 0);
    assert_int_equal(room.fd, -1);
    assert_ptr_equal(room.dst, mapped_at(&b, 2000));
    int64_t q5 = 5;
    assert_int_equal(shmq_commitlog_append_plans(&b, &mb, &plb, 1, &q5, ts, &rb), 0);
    assert_int_equal(rb.phys_offset, 2000);
    assert_int_equal(shmq_commitlog_read(&b, 2000, ALL_CHECK, &rec), plb.total);
    free(big);

    /* A write that fails: nothing published, and the log takes nothing again. */
    int64_t wrote = b.wrote_pos;
    assert_int_equal(shmq_commitlog_room(&b, 400, ts, &room), 0);
    assert_true(room.fd >= 0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%020d", dir_b, 0);
    int ro = open(path, O_RDONLY);
    assert_true(ro >= 0);
    room.fd = ro; /* pwrite fails with EBADF */
    int64_t q6 = 6;
    assert_int_equal(shmq_record_encode_plan(&m, &pl, q6, wrote, room.ts, room.dst), 400);
    assert_int_equal(shmq_commitlog_room_done(&b, &room, 400), -EBADF);
    close(ro);
    assert_int_equal(b.flush_err, -EBADF);
    assert_int_equal(b.wrote_pos, wrote);
    assert_int_equal(be32_at(mapped_at(&b, wrote)), 0);
    assert_int_equal(shmq_commitlog_append_plans(&b, &m, &pl, 1, &q6, ts, &rb), SHMQ_E_FENCED);
    assert_int_equal(shmq_commitlog_room(&b, 400, ts, &room), 1);
    assert_int_equal(b.wrote_pos, wrote);
    shmq_commitlog_close(&a);
    shmq_commitlog_close(&b);
}

static void test_batch_larger_than_segment_is_rejected(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t res[3];
    shmq_msg_in_t m[3];
    int64_t qoffs[3] = {0, 1, 2};

    open_log(&cl, *state, SEG, 0);
    for (int i = 0; i < 3; i++) {
        m[i] = msg_of_size(1500);
    }
    assert_int_equal(shmq_commitlog_append_batch(&cl, m, 3, qoffs, 0, res), SHMQ_E_SIZE);
    assert_int_equal(cl.wrote_pos, 0);
    shmq_commitlog_close(&cl);
}

static void test_records_read_back_by_offset_and_iteration(void **state)
{
    enum { N = 60 };
    shmq_commitlog_t cl;
    shmq_append_result_t res[N];
    shmq_record_t rec;
    size_t lens[N];

    open_log(&cl, *state, SEG, SHMQ_MF_PREFAULT);
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)(i * 37) % 800;
        shmq_msg_in_t m = msg_with_body(lens[i]);
        m.queue_id = i % 4;
        assert_int_equal(shmq_commitlog_append(&cl, &m, 100 + i, 5000 + i, &res[i]), 0);
    }
    assert_true(cl.q.count >= 5);
    for (int i = 0; i < N; i++) {
        assert_int_equal(shmq_commitlog_read(&cl, res[i].phys_offset, ALL_CHECK, &rec),
                         res[i].size);
        assert_int_equal(rec.phys_offset, res[i].phys_offset);
        assert_int_equal(rec.queue_offset, 100 + i);
        assert_int_equal(rec.queue_id, i % 4);
        assert_int_equal(rec.store_ts, 5000 + i);
        assert_int_equal(rec.body_len, lens[i]);
        assert_memory_equal(rec.body, body_buf, lens[i]);
        assert_int_equal(rec.topic_len, 9);
        assert_memory_equal(rec.topic, "TopicTest", 9);
        assert_memory_equal(rec.store_host.addr, cl.store_host.addr, 4);
        assert_int_equal(rec.store_host.port, 10911);
        assert_true(rec.has_record_crc);
    }
    int64_t pos = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(shmq_commitlog_next(&cl, &pos, cl.wrote_pos, ALL_CHECK, &rec),
                         res[i].size);
        assert_int_equal(rec.phys_offset, res[i].phys_offset);
        assert_int_equal(pos, res[i].phys_offset + res[i].size);
    }
    assert_int_equal(shmq_commitlog_next(&cl, &pos, cl.wrote_pos, ALL_CHECK, &rec), SHMQ_E_END);
    assert_int_equal(shmq_commitlog_read(&cl, cl.wrote_pos, 0, &rec), SHMQ_E_RANGE);
    shmq_commitlog_close(&cl);
}

static void test_next_treats_record_crossing_limit_as_not_there(void **state)
{
    shmq_commitlog_t cl;
    shmq_record_t rec;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 300, 0, 0);
    shmq_append_result_t r = append_len(&cl, 300, 1, 0);
    int64_t pos = 0;
    int64_t limit = r.phys_offset + r.size - 1;
    assert_int_equal(shmq_commitlog_next(&cl, &pos, limit, ALL_CHECK, &rec), 300);
    assert_int_equal(shmq_commitlog_next(&cl, &pos, limit, ALL_CHECK, &rec), SHMQ_E_END);
    assert_int_equal(pos, r.phys_offset);
    assert_int_equal(shmq_commitlog_next(&cl, &pos, r.phys_offset + 4, 0, &rec), SHMQ_E_END);
    assert_int_equal(shmq_commitlog_next(&cl, &pos, limit + 1, ALL_CHECK, &rec), 300);
    shmq_commitlog_close(&cl);
}

static void test_store_timestamps_never_decrease(void **state)
{
    shmq_commitlog_t cl;

    open_log(&cl, *state, SEG, 0);
    shmq_append_result_t r = append_len(&cl, 200, 0, 0);
    assert_true(r.store_ts > 1600000000000); /* "now" in ms */
    int64_t later = r.store_ts + 100000;
    r = append_len(&cl, 200, 1, later);
    assert_int_equal(r.store_ts, later);
    r = append_len(&cl, 200, 2, later - 50);
    assert_int_equal(r.store_ts, later);
    r = append_len(&cl, 200, 3, 0); /* now is below the last one */
    assert_int_equal(r.store_ts, later);
    r = append_len(&cl, 200, 4, later + 1);
    assert_int_equal(r.store_ts, later + 1);
    shmq_commitlog_close(&cl);
}

static void test_msg_id_is_made_from_store_host_and_offset(void **state)
{
    shmq_commitlog_t cl;
    shmq_record_t rec;
    char expect[SHMQ_MSGID_MAX];

    open_log(&cl, *state, SEG, 0);
    test_host(&cl.store_host, 77, 10922);
    append_len(&cl, 200, 0, 0);
    shmq_append_result_t r = append_len(&cl, 200, 1, 0);
    shmq_msgid_format(&cl.store_host, 200, expect);
    assert_string_equal(r.msg_id, expect);
    assert_int_equal(shmq_commitlog_read(&cl, 200, ALL_CHECK, &rec), 200);
    assert_int_equal(rec.store_host.addr[3], 77);
    assert_int_equal(rec.store_host.port, 10922);
    shmq_commitlog_close(&cl);
}

static void test_truncate_mid_record_zeroes_rest_and_unlinks_later_segments(void **state)
{
    const char *dir = *state;
    shmq_commitlog_t cl;
    shmq_record_t rec;
    shmq_append_result_t r[10];
    uint8_t buf[SEG];

    open_log(&cl, dir, SEG, 0);
    for (int i = 0; i < 10; i++) {
        r[i] = append_len(&cl, 1000, i, 0);
    }
    assert_int_equal(r[5].phys_offset, SEG + 1000);
    assert_int_equal(r[8].phys_offset, 2 * SEG);
    int64_t cut = r[5].phys_offset + 10;
    assert_int_equal(shmq_commitlog_truncate(&cl, cut), 0);
    assert_int_equal(cl.wrote_pos, cut);
    assert_int_equal(cl.flushed_pos, cut);
    assert_false(seg_exists(dir, 2 * SEG));
    assert_int_equal(cl.q.count, 2);

    char name[21], path[PATH_MAX];
    shmq_segment_name(SEG, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, SEG, 0), SEG);
    close(fd);
    for (int i = 1010; i < SEG; i++) {
        assert_int_equal(buf[i], 0);
    }
    assert_int_equal(be32_at(buf + 1000), 1000); /* the cut record's head stays */

    int64_t pos = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(shmq_commitlog_next(&cl, &pos, cl.wrote_pos, ALL_CHECK, &rec), 1000);
    }
    assert_int_equal(shmq_commitlog_next(&cl, &pos, cl.wrote_pos, ALL_CHECK, &rec), SHMQ_E_END);
    assert_int_equal(pos, r[5].phys_offset);
    /* The log continues at the cut. */
    shmq_append_result_t again = append_len(&cl, 500, 5, 0);
    assert_int_equal(again.phys_offset, cut);
    assert_int_equal(shmq_commitlog_read(&cl, cut, ALL_CHECK, &rec), 500);
    shmq_commitlog_close(&cl);
}

static void test_flush_advances_flushed_pos_by_pages_rule(void **state)
{
    shmq_commitlog_t cl;

    open_log(&cl, *state, BIG_SEG, 0);
    append_len(&cl, 1000, 0, 0);
    assert_int_equal(shmq_commitlog_flush(&cl, 4), 0);
    assert_int_equal(cl.flushed_pos, 0); /* fewer than 4 dirty pages */
    assert_int_equal(shmq_commitlog_flush(&cl, 0), 0);
    assert_int_equal(cl.flushed_pos, 1000);
    for (int i = 1; i < 20; i++) {
        append_len(&cl, 1000, i, 0);
    }
    assert_int_equal(shmq_commitlog_flush(&cl, 4), 0);
    assert_int_equal(cl.flushed_pos, 20000);
    cl.flush_how = SHMQ_FLUSH_FDATASYNC;
    append_len(&cl, 1000, 20, 0);
    assert_int_equal(shmq_commitlog_flush(&cl, 0), 0);
    assert_int_equal(cl.flushed_pos, 21000);
    shmq_commitlog_close(&cl);
}

static void test_flush_of_full_segment_ignores_page_threshold(void **state)
{
    shmq_commitlog_t cl;

    open_log(&cl, *state, SEG, 0);
    append_len(&cl, 3000, 0, 0);
    append_len(&cl, 3000, 1, 0); /* rolls: segment 0 is full */
    assert_int_equal(shmq_commitlog_flush(&cl, 100), 0);
    assert_int_equal(cl.flushed_pos, SEG + 3000);
    shmq_commitlog_close(&cl);
}

static void test_flush_failure_fences_appends_and_flushes(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t res;

    open_log(&cl, *state, SEG, 0);
    cl.flush_how = SHMQ_FLUSH_FDATASYNC;
    append_len(&cl, 500, 0, 0);
    assert_int_equal(shmq_commitlog_flush(&cl, 0), 0);
    append_len(&cl, 500, 1, 0);
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, 0);
    close(mf->fd);
    mf->fd = -1; /* the next fdatasync fails with EBADF */
    assert_int_equal(shmq_commitlog_flush(&cl, 0), -EBADF);
    assert_int_equal(cl.flush_err, -EBADF);
    assert_int_equal(cl.flushed_pos, 500);
    shmq_msg_in_t m = msg_of_size(500);
    assert_int_equal(shmq_commitlog_append(&cl, &m, 2, 0, &res), SHMQ_E_FENCED);
    assert_int_equal(cl.wrote_pos, 1000);
    assert_int_equal(shmq_commitlog_flush(&cl, 0), SHMQ_E_FENCED);
    assert_int_equal(cl.flushed_pos, 500);
    shmq_commitlog_close(&cl);
}

static void test_offset_by_time_finds_first_record_at_or_after(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t r[10];

    open_log(&cl, *state, SEG, 0);
    for (int i = 0; i < 10; i++) {
        r[i] = append_len(&cl, 1000, i, 1000 * (i + 1));
    }
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 0), 0);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 1000), 0);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 2500), r[2].phys_offset);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 4500), r[4].phys_offset);
    assert_int_equal(r[4].phys_offset, SEG);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 5000), r[4].phys_offset);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 5001), r[5].phys_offset);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 9500), r[9].phys_offset);
    assert_int_equal(shmq_commitlog_offset_by_time(&cl, 10001), cl.wrote_pos);
    shmq_commitlog_close(&cl);
}

static void test_prepared_segment_exists_before_roll_and_is_used(void **state)
{
    const char *dir = *state;
    shmq_commitlog_t cl;

    open_log(&cl, dir, SEG, 0);
    append_len(&cl, 1000, 0, 0);
    shmq_commitlog_close(&cl);

    open_log(&cl, dir, SEG, SHMQ_MF_PREPARE | SHMQ_MF_PREFAULT);
    shmq_commitlog_set_positions(&cl, 1000, 1000);
    append_len(&cl, 1000, 1, 0); /* ends at 2000 < half */
    assert_int_equal(shmq_mfq_prepare_wait(&cl.q), 0);
    assert_false(seg_exists(dir, SEG));
    append_len(&cl, 1000, 2, 0); /* ends at 3000: past half */
    assert_int_equal(shmq_mfq_prepare_wait(&cl.q), 0);
    assert_true(seg_exists(dir, SEG));
    assert_true(cl.wrote_pos < SEG);
    assert_int_equal(cl.q.count, 1);
    shmq_mapped_file_t *prepared = cl.q.prep_ready;
    assert_non_null(prepared);
    assert_int_equal(prepared->start_offset, SEG);
    append_len(&cl, 1000, 3, 0);
    shmq_append_result_t r = append_len(&cl, 1000, 4, 0);
    assert_int_equal(r.phys_offset, SEG);
    assert_int_equal(cl.q.count, 2);
    assert_ptr_equal(cl.q.segs[1], prepared);
    assert_int_equal(shmq_mfq_prepare_wait(&cl.q), 0);
    assert_true(seg_exists(dir, 2 * SEG));
    shmq_commitlog_close(&cl);
}

static void test_readonly_open_reads_same_records(void **state)
{
    enum { N = 20 };
    const char *dir = *state;
    shmq_commitlog_t cl, ro;
    shmq_append_result_t res[N];
    shmq_record_t rec;

    open_log(&cl, dir, SEG, 0);
    for (int i = 0; i < N; i++) {
        res[i] = append_len(&cl, 300 + 50 * (i % 7), i, 0);
    }
    int64_t wrote = cl.wrote_pos;
    assert_int_equal(shmq_commitlog_flush(&cl, 0), 0);
    shmq_commitlog_close(&cl);

    open_log(&ro, dir, SEG, SHMQ_MF_READONLY);
    assert_true(ro.readonly);
    int64_t pos = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(shmq_commitlog_next(&ro, &pos, wrote, ALL_CHECK, &rec), res[i].size);
        assert_int_equal(rec.phys_offset, res[i].phys_offset);
        assert_int_equal(rec.queue_offset, i);
        assert_int_equal(rec.store_ts, res[i].store_ts);
        assert_int_equal(shmq_commitlog_read(&ro, res[i].phys_offset, ALL_CHECK, &rec),
                         res[i].size);
    }
    assert_int_equal(shmq_commitlog_next(&ro, &pos, wrote, ALL_CHECK, &rec), SHMQ_E_END);
    /* Without a limit from the writer, the zeros after the last record stop the scan. */
    assert_int_equal(shmq_commitlog_next(&ro, &pos, shmq_mfq_end_offset(&ro.q), 0, &rec),
                     SHMQ_E_MAGIC);
    shmq_append_result_t r;
    shmq_msg_in_t m = msg_of_size(300);
    assert_int_equal(shmq_commitlog_append(&ro, &m, 0, 0, &r), -EROFS);
    shmq_commitlog_close(&ro);
}

static void test_open_positions_start_at_first_segment(void **state)
{
    const char *dir = *state;
    shmq_commitlog_t cl;

    open_log(&cl, dir, SEG, 0);
    assert_int_equal(cl.wrote_pos, 0);
    for (int i = 0; i < 9; i++) {
        append_len(&cl, 1000, i, 0);
    }
    assert_int_equal(shmq_mfq_delete_first(&cl.q), 0);
    shmq_commitlog_close(&cl);
    open_log(&cl, dir, SEG, 0);
    assert_int_equal(cl.wrote_pos, SEG);
    assert_int_equal(cl.flushed_pos, SEG);
    assert_int_equal(shmq_commitlog_min_offset(&cl), SEG);
    assert_int_equal(shmq_commitlog_next_segment(&cl, SEG + 5), 2 * SEG);
    assert_int_equal(shmq_commitlog_next_segment(&cl, 2 * SEG), 3 * SEG);
    shmq_commitlog_close(&cl);
}

static void test_open_rejects_gap_between_segments(void **state)
{
    const char *dir = *state;
    shmq_commitlog_t cl;

    open_log(&cl, dir, SEG, 0);
    for (int i = 0; i < 9; i++) {
        append_len(&cl, 1000, i, 0);
    }
    shmq_commitlog_close(&cl);
    char name[21], path[PATH_MAX];
    shmq_segment_name(SEG, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(shmq_commitlog_open(&cl, dir, SEG, 0), SHMQ_E_SEGMENT);
}

enum { CONCURRENT_N = 400 };

static void *follow_log(void *arg)
{
    const shmq_commitlog_t *cl = arg;
    shmq_record_t rec;
    int64_t pos = 0;
    intptr_t seen = 0;

    while (seen < CONCURRENT_N) {
        int64_t limit = __atomic_load_n(&cl->wrote_pos, __ATOMIC_ACQUIRE);
        int rc = shmq_commitlog_next(cl, &pos, limit, ALL_CHECK, &rec);
        if (rc == SHMQ_E_END) {
            sched_yield();
            continue;
        }
        if (rc <= 0 || rec.queue_offset != seen) {
            return (void *)(intptr_t)-1;
        }
        seen++;
    }
    return (void *)seen;
}

static void test_reader_thread_follows_appends_across_new_segments(void **state)
{
    shmq_commitlog_t cl;
    pthread_t reader;
    void *seen;

    open_log(&cl, *state, SEG, SHMQ_MF_PREPARE);
    append_len(&cl, 500, 0, 0); /* positions known before the reader starts */
    assert_int_equal(pthread_create(&reader, NULL, follow_log, &cl), 0);
    for (int i = 1; i < CONCURRENT_N; i++) {
        append_len(&cl, 500, i, 0);
    }
    assert_int_equal(pthread_join(reader, &seen), 0);
    assert_int_equal((intptr_t)seen, CONCURRENT_N);
    assert_true(cl.q.count > 16); /* the segment array grew while being read */
    shmq_commitlog_close(&cl);
}

/* A master's log of records of varied sizes over several segments (blanks closing them). */
static int64_t fill_master(shmq_commitlog_t *m, const char *dir, int records)
{
    open_log(m, dir, SEG, 0);
    for (int i = 0; i < records; i++) {
        shmq_msg_in_t msg = msg_with_body((size_t)(i * 97) % 900);
        shmq_append_result_t res;
        assert_int_equal(shmq_commitlog_append(m, &msg, i, 1700000000000 + i, &res), 0);
    }
    return m->wrote_pos;
}

/* Bytes [from, to) of the master's log into buf. */
static void master_bytes(const shmq_commitlog_t *m, int64_t from, int64_t to, uint8_t *buf)
{
    for (int64_t p = from; p < to;) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&m->q, p);
        assert_non_null(mf);
        int64_t seg_end = mf->start_offset + SEG;
        int64_t n = (to < seg_end ? to : seg_end) - p;
        memcpy(buf + (p - from), mf->base + (p - mf->start_offset), (size_t)n);
        p += n;
    }
}

/*
 * A master's log of records under dir/m (fill_master), all its bytes in
 * *all (malloc'd), and the path dir/s for the slave's; returns its end.
 */
static int64_t master_and_slave(const char *dir, int records, shmq_commitlog_t *m, char *sdir,
                                size_t sdir_len, uint8_t **all)
{
    char mdir[PATH_MAX];
    snprintf(mdir, sizeof(mdir), "%s/m", dir);
    snprintf(sdir, sdir_len, "%s/s", dir);
    int64_t end = fill_master(m, mdir, records);
    *all = malloc((size_t)end);
    assert_non_null(*all);
    master_bytes(m, 0, end, *all);
    return end;
}

static void test_put_raw_takes_only_complete_checked_records(void **state)
{
    char sdir[PATH_MAX];
    shmq_commitlog_t m, sl;
    uint8_t *all;
    int64_t end = master_and_slave(*state, 40, &m, sdir, sizeof(sdir), &all);
    assert_true(end > 3 * SEG);

    /* The master's bytes in chunks of odd sizes, as frames bring them. */
    open_log(&sl, sdir, SEG, 0);
    int64_t pos = 0, last = 0;
    for (size_t chunk = 1; pos < end; chunk = chunk * 3 % 1531 + 1) {
        size_t n = (size_t)(end - pos) < chunk ? (size_t)(end - pos) : chunk;
        int64_t w = shmq_commitlog_put_raw(&sl, pos, all + pos, n);
        assert_true(w >= last); /* never backwards */
        assert_true(w <= pos + (int64_t)n);
        /* wrote is always at a record's start or a segment's: a reader finds a record there */
        if (w < pos + (int64_t)n && w % SEG != 0) {
            shmq_record_t r;
            int64_t p = w;
            assert_int_equal(shmq_commitlog_next(&m, &p, end, ALL_CHECK, &r) > 0, true);
        }
        last = w;
        pos += (int64_t)n;
    }
    assert_int_equal(sl.wrote_pos, end);
    assert_int_equal(sl.last_store_ts, 1700000000000 + 39);
    /* Byte for byte the master's log. */
    uint8_t *copy = malloc((size_t)end);
    assert_non_null(copy);
    master_bytes(&sl, 0, end, copy);
    assert_memory_equal(copy, all, (size_t)end);

    /* Bytes that do not continue the log are refused. */
    assert_int_equal(shmq_commitlog_put_raw(&sl, end + 1, all, 8), SHMQ_E_RANGE);
    assert_int_equal(shmq_commitlog_put_raw(&sl, end - 8, all, 8), SHMQ_E_RANGE);
    assert_int_equal(sl.wrote_pos, end);
    shmq_commitlog_close(&sl);
    free(copy);
    free(all);
    shmq_commitlog_close(&m);
}

static void test_put_raw_refuses_a_damaged_record_and_keeps_what_checked(void **state)
{
    char sdir[PATH_MAX];
    shmq_commitlog_t m, sl;
    uint8_t *all;
    int64_t end = master_and_slave(*state, 12, &m, sdir, sizeof(sdir), &all);
    /* The third record: one body byte flipped in transit. */
    shmq_record_t r;
    int64_t p = 0;
    assert_true(shmq_commitlog_next(&m, &p, end, ALL_CHECK, &r) > 0);
    assert_true(shmq_commitlog_next(&m, &p, end, ALL_CHECK, &r) > 0);
    int64_t third = p;
    assert_true(shmq_commitlog_next(&m, &p, end, ALL_CHECK, &r) > 0);
    int64_t fourth = p;
    all[fourth - 5] ^= 0x40;

    open_log(&sl, sdir, SEG, 0);
    assert_int_equal(shmq_commitlog_put_raw(&sl, 0, all, (size_t)(third + 10)), third);
    assert_int_equal(
        shmq_commitlog_put_raw(&sl, third + 10, all + third + 10, (size_t)(end - third - 10)),
        SHMQ_E_CORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "received at %lld", (long long)third);
    assert_non_null(strstr(shmq_error_detail(), want));
    assert_int_equal(sl.wrote_pos, third);
    assert_int_equal(sl.raw_end, third);
    /* Nothing of what came after is left to look like a record. */
    shmq_mapped_file_t *mf = shmq_mfq_find(&sl.q, third);
    for (int64_t i = third - mf->start_offset; i < SEG; i++) {
        assert_int_equal(mf->base[i], 0);
    }
    /* The same bytes again, undamaged: taken. */
    all[fourth - 5] ^= 0x40;
    assert_int_equal(shmq_commitlog_put_raw(&sl, third, all + third, (size_t)(end - third)), end);
    shmq_commitlog_close(&sl);
    free(all);
    shmq_commitlog_close(&m);
}

static void test_put_raw_empty_log_starts_at_a_segment(void **state)
{
    char sdir[PATH_MAX];
    shmq_commitlog_t m, sl;
    uint8_t *all;
    int64_t end = master_and_slave(*state, 40, &m, sdir, sizeof(sdir), &all);
    int64_t last_seg = end - end % SEG;
    const uint8_t *tail = all + last_seg;
    open_log(&sl, sdir, SEG, 0);
    assert_int_equal(shmq_commitlog_put_raw(&sl, last_seg + 1, tail + 1, 8), SHMQ_E_RANGE);
    assert_int_equal(shmq_commitlog_put_raw(&sl, last_seg, tail, (size_t)(end - last_seg)), end);
    assert_int_equal(shmq_commitlog_min_offset(&sl), last_seg);
    shmq_commitlog_close(&sl);
    /* Reopened, it reads from that segment on. */
    open_log(&sl, sdir, SEG, 0);
    assert_int_equal(shmq_commitlog_min_offset(&sl), last_seg);
    shmq_commitlog_close(&sl);
    free(all);
    shmq_commitlog_close(&m);
}

/* The light iteration sees what the full one sees; the size walk ends where it ends. */
static void test_next_head_and_skip_follow_the_full_iteration(void **state)
{
    enum { N = 60 };
    shmq_commitlog_t cl;
    shmq_append_result_t res[N];

    open_log(&cl, *state, SEG, SHMQ_MF_PREFAULT);
    for (int i = 0; i < N; i++) {
        shmq_msg_in_t m = msg_with_body((size_t)(i * 37) % 800);
        m.queue_id = i % 4;
        assert_int_equal(shmq_commitlog_append(&cl, &m, 100 + i, 5000 + i, &res[i]), 0);
    }
    assert_true(cl.q.count >= 5);
    int64_t pos = 0, hpos = 0;
    for (int i = 0; i < N; i++) {
        shmq_record_t rec;
        shmq_record_head_t h;
        assert_int_equal(shmq_commitlog_next(&cl, &pos, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, &rec),
                         res[i].size);
        assert_int_equal(
            shmq_commitlog_next_head(&cl, &hpos, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, &h),
            res[i].size);
        assert_int_equal(hpos, pos);
        assert_int_equal(h.phys_offset, rec.phys_offset);
        assert_int_equal(h.queue_offset, 100 + i);
        assert_int_equal(h.queue_id, i % 4);
        assert_int_equal(h.store_ts, 5000 + i);
        assert_int_equal(h.sysflag, rec.sysflag);
        assert_int_equal(h.total_size, rec.total_size);
        assert_int_equal(h.topic_len, 9);
        assert_ptr_equal(h.topic, rec.topic);
        assert_ptr_equal(h.props, rec.props);
        assert_int_equal(h.props_len, rec.props_len);
    }
    shmq_record_head_t h;
    assert_int_equal(shmq_commitlog_next_head(&cl, &hpos, cl.wrote_pos, 0, &h), SHMQ_E_END);

    /* From the start to every limit: the last record ending at or below it. */
    for (int i = 0; i < N; i++) {
        int64_t end = res[i].phys_offset + res[i].size;
        int64_t limits[] = {end, end + 1, end + 8, res[i].phys_offset + 4};
        for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
            int64_t limit = limits[k] < cl.wrote_pos ? limits[k] : cl.wrote_pos;
            int want = -1;
            for (int j = 0; j < N && res[j].phys_offset + res[j].size <= limit; j++) {
                want = j;
            }
            int64_t p = 0, last = -1;
            assert_int_equal(shmq_commitlog_skip(&cl, &p, limit, &last), 0);
            assert_true(want >= 0 || last == -1);
            if (want >= 0) {
                assert_int_equal(last, res[want].phys_offset);
                /* After the last record, or past the blank that closes its segment. */
                int64_t after = res[want].phys_offset + res[want].size;
                assert_true(p == after || p == shmq_commitlog_next_segment(&cl, after - 1));
            }
            /* From a later boundary: the same answer. */
            if (want >= 1) {
                int64_t p2 = res[want - 1].phys_offset, last2 = -1;
                assert_int_equal(shmq_commitlog_skip(&cl, &p2, limit, &last2), 0);
                assert_int_equal(last2, res[want].phys_offset);
                assert_int_equal(p2, p);
            }
        }
    }
    /* A damaged header stops the walk there with the decode's error. */
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, res[3].phys_offset);
    uint8_t *b = mf->base + (res[3].phys_offset - mf->start_offset);
    b[4] ^= 0x40;
    int64_t p = 0, last = -1;
    assert_int_equal(shmq_commitlog_skip(&cl, &p, cl.wrote_pos, &last), SHMQ_E_MAGIC);
    assert_int_equal(p, res[3].phys_offset);
    assert_int_equal(last, res[2].phys_offset);
    b[4] ^= 0x40;
    shmq_commitlog_close(&cl);
}

/* One reader's pass with shmq_commitlog_next_head_inline() through a cursor (reading through
 * a buffer of cap bytes, 0: through the mapping), against shmq_commitlog_next() from the same
 * position: the same result and position, and the same topic and properties (from the buffer;
 * from the mapping for a record longer than the buffer). */
static void head_inline_follows_next(const shmq_commitlog_t *cl, int64_t limit, unsigned flags,
                                     size_t cap)
{
    shmq_cl_cursor_t cur = {0};
    if (cap > 0) {
        assert_int_equal(shmq_cl_cursor_read_through(&cur, cap), 0);
    }
    int64_t pos = 0, hpos = 0;
    for (;;) {
        shmq_record_t rec;
        shmq_record_head_t h = {0};
        int rc = shmq_commitlog_next(cl, &pos, limit, flags, &rec);
        int hrc = shmq_commitlog_next_head_inline(cl, &cur, &hpos, limit, flags, &h);
        assert_int_equal(hrc, rc);
        assert_int_equal(hpos, pos);
        if (rc <= 0) {
            break;
        }
        assert_int_equal(h.phys_offset, rec.phys_offset);
        assert_int_equal(h.queue_offset, rec.queue_offset);
        assert_int_equal(h.queue_id, rec.queue_id);
        assert_int_equal(h.store_ts, rec.store_ts);
        assert_int_equal(h.sysflag, rec.sysflag);
        assert_int_equal(h.total_size, rec.total_size);
        assert_int_equal(h.topic_len, rec.topic_len);
        assert_int_equal(h.props_len, rec.props_len);
        if (cap == 0 || (size_t)rec.total_size > cap) {
            assert_ptr_equal(h.topic, rec.topic);
            assert_ptr_equal(h.props, rec.props);
        } else {
            assert_true((const uint8_t *)h.topic >= cur.buf &&
                        (const uint8_t *)h.topic < cur.buf + cap);
            assert_memory_equal(h.topic, rec.topic, rec.topic_len);
            assert_memory_equal(h.props, rec.props, rec.props_len);
        }
    }
    shmq_cl_cursor_free(&cur);
}

static void test_next_head_inline_follows_next_at_every_limit_and_damage(void **state)
{
    enum { N = 40 };
    shmq_commitlog_t cl;
    shmq_append_result_t res[N];

    open_log(&cl, *state, SEG, SHMQ_MF_PREFAULT);
    for (int i = 0; i < N; i++) {
        shmq_msg_in_t m = msg_with_body((size_t)(i * 53) % 900);
        m.queue_id = i % 3;
        assert_int_equal(shmq_commitlog_append(&cl, &m, 10 + i, 7000 + i, &res[i]), 0);
    }
    assert_true(cl.q.count >= 4);
    /* Every limit from the start to the end: records, blanks, a record cut by the limit. */
    for (int64_t limit = 0; limit <= cl.wrote_pos; limit += 7) {
        head_inline_follows_next(&cl, limit, SHMQ_DECODE_CHECK_PHYS, 0);
        head_inline_follows_next(&cl, limit, 0, 0);
        /* Read through a buffer: one that holds a few records (the longer ones go through
         * the mapping), and one that holds a segment. */
        head_inline_follows_next(&cl, limit, SHMQ_DECODE_CHECK_PHYS, 700);
        head_inline_follows_next(&cl, limit, SHMQ_DECODE_CHECK_PHYS, SEG);
    }
    /* A damaged byte in each of a record's first 120 bytes and in its lengths: the same
     * error (or the same record) at the same place. */
    int k = 7;
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, res[k].phys_offset);
    uint8_t *b = mf->base + (res[k].phys_offset - mf->start_offset);
    for (int i = 0; i < 120; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b[i] ^= (uint8_t)(1u << bit);
            head_inline_follows_next(&cl, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, 0);
            head_inline_follows_next(&cl, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, 700);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    shmq_record_t rec;
    assert_int_equal(shmq_commitlog_read(&cl, res[k].phys_offset, ALL_CHECK, &rec), res[k].size);
    shmq_commitlog_close(&cl);
}

/* A reader that follows the writer through a buffer: what it read below one limit holds no
 * byte past it, so the records appended after are read as written; a failed read is an
 * error with a detail, and the next read tries again. */
static void test_read_through_cursor_follows_appends(void **state)
{
    shmq_commitlog_t cl;
    shmq_append_result_t res;
    shmq_cl_cursor_t cur = {0};
    shmq_record_head_t h;
    int64_t pos = 0;
    open_log(&cl, *state, SEG, SHMQ_MF_PREFAULT);
    assert_int_equal(shmq_cl_cursor_read_through(&cur, SEG), 0);
    /* Its buffer is resident before the first read: a read's copy into a page touched for
     * the first time is a fault, one a page, more the further a lagging reader reads. */
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (cur.cap + (size_t)page - 1) / (size_t)page;
    unsigned char *in = calloc(pages, 1);
    assert_non_null(in);
    assert_int_equal(mincore(cur.buf, cur.cap, in), 0);
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++) {
        resident += in[i] & 1;
    }
    free(in);
    assert_int_equal(resident, pages);
    int64_t qoff = 0;
    for (int round = 0; round < 30; round++) {
        int64_t first = qoff;
        for (int i = 0; i < 1 + round % 4; i++, qoff++) {
            shmq_msg_in_t m = msg_with_body((size_t)(round * 37 + i * 11) % 700);
            assert_int_equal(shmq_commitlog_append(&cl, &m, qoff, 5000 + qoff, &res), 0);
        }
        for (int64_t want = first; want < qoff; want++) {
            int64_t at = pos;
            int rc = shmq_commitlog_next_head_inline(&cl, &cur, &pos, cl.wrote_pos,
                                                     SHMQ_DECODE_CHECK_PHYS, &h);
            assert_true(rc > 0);
            assert_int_equal(rc, h.total_size);
            assert_int_equal(h.phys_offset, pos - rc);
            assert_true(h.phys_offset >= at); /* a blank at a segment's end moves past it */
            assert_int_equal(h.queue_offset, want);
            assert_int_equal(h.store_ts, 5000 + want);
        }
        assert_int_equal(shmq_commitlog_next_head_inline(&cl, &cur, &pos, cl.wrote_pos,
                                                         SHMQ_DECODE_CHECK_PHYS, &h),
                         SHMQ_E_END);
        assert_int_equal(pos, cl.wrote_pos);
    }
    assert_true(cl.q.count >= 2); /* the reader crossed segments */
    /* A read that fails: -EIO and what failed; then the same record is read. */
    shmq_msg_in_t m = msg_with_body(100);
    assert_int_equal(shmq_commitlog_append(&cl, &m, qoff, 9000, &res), 0);
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, pos);
    int fd = mf->fd;
    mf->fd = -1;
    shmq_error_clear();
    assert_int_equal(
        shmq_commitlog_next_head_inline(&cl, &cur, &pos, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, &h),
        -EIO);
    assert_non_null(strstr(shmq_error_detail(), "reading"));
    assert_int_equal(pos, res.phys_offset);
    mf->fd = fd;
    assert_int_equal(
        shmq_commitlog_next_head_inline(&cl, &cur, &pos, cl.wrote_pos, SHMQ_DECODE_CHECK_PHYS, &h),
        res.size);
    assert_int_equal(h.queue_offset, qoff);
    shmq_cl_cursor_free(&cur);
    assert_null(cur.buf);
    shmq_commitlog_close(&cl);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_append_rolls_over_with_blank_record_at_exact_position),
        T(test_append_fits_when_exactly_8_bytes_remain),
        T(test_append_rolls_when_only_7_bytes_would_remain),
        T(test_append_rejects_record_larger_than_segment),
        T(test_batch_that_does_not_fit_moves_whole_to_next_segment),
        T(test_batch_larger_than_segment_is_rejected),
        T(test_append_plans_writes_what_append_batch_writes),
        T(test_append_plans_kept_segment_follows_rolls_cuts_and_fences),
        T(test_staged_appends_go_through_the_file),
        T(test_records_read_back_by_offset_and_iteration),
        T(test_next_treats_record_crossing_limit_as_not_there),
        T(test_store_timestamps_never_decrease),
        T(test_msg_id_is_made_from_store_host_and_offset),
        T(test_truncate_mid_record_zeroes_rest_and_unlinks_later_segments),
        T(test_flush_advances_flushed_pos_by_pages_rule),
        T(test_flush_of_full_segment_ignores_page_threshold),
        T(test_flush_failure_fences_appends_and_flushes),
        T(test_offset_by_time_finds_first_record_at_or_after),
        T(test_prepared_segment_exists_before_roll_and_is_used),
        T(test_readonly_open_reads_same_records),
        T(test_open_positions_start_at_first_segment),
        T(test_open_rejects_gap_between_segments),
        T(test_reader_thread_follows_appends_across_new_segments),
        T(test_put_raw_takes_only_complete_checked_records),
        T(test_put_raw_refuses_a_damaged_record_and_keeps_what_checked),
        T(test_put_raw_empty_log_starts_at_a_segment),
        T(test_next_head_and_skip_follow_the_full_iteration),
        T(test_next_head_inline_follows_next_at_every_limit_and_damage),
        T(test_read_through_cursor_follows_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
