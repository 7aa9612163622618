/*
 * Recovery tests: a store is written, "crashed" (abandoned without the
 * clean-stop steps), damaged the way a crash or a disk damages it, and
 * reopened.  Each test asserts what recovery kept, cut and rebuilt.
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
#include <sys/stat.h>
#include <unistd.h>

#include "page_cache.h"
#include "store/index_service.h"
#include "store/store.h"

#define SEG_SIZE (64 * 1024)
#define CQ_SIZE  (20 * 64)

typedef struct fixture {
    char dir[256];
    shmq_config_t cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/shmq-recovery-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s/store", f->dir);
    f->cfg.mapped_file_size_commit_log = SEG_SIZE;
    f->cfg.mapped_file_size_consume_queue = CQ_SIZE;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        return -1;
    }
    free(f);
    return 0;
}

static void put_msg(shmq_store_t *st, const char *topic, int32_t qid, int i, bool keyed,
                    shmq_append_result_t *res)
{
    char body[160];
    char props[128];
    size_t plen = 0;
    int blen = snprintf(body, sizeof(body), "message %d of topic %s with some padding %0*d", i,
                        topic, 40 + i % 37, i);
    assert_int_equal(shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_TAGS, "TagA", 4), 0);
    if (keyed) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(
            shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_KEYS, key, (size_t)klen), 0);
    }
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = qid;
    m.born_ts = 1700000000000LL + i;
    shmq_local_host(&m.born_host, 5555);
    m.body = body;
    m.body_len = (size_t)blen;
    m.props = props;
    m.props_len = plen;
    int rc = shmq_store_put(st, &m, res);
    assert_int_equal(rc, 0);
}

static void put_one(shmq_store_t *st, const char *topic, int32_t qid, int i,
                    shmq_append_result_t *res)
{
    put_msg(st, topic, qid, i, false, res);
}

/* Write n messages over topics A/0, A/1, B/0; positions of each in pos[] if given. */
static void write_messages(shmq_store_t *st, int from, int n, shmq_append_result_t *res)
{
    static const char *topics[] = {"TopicA", "TopicA", "TopicB"};
    static const int32_t qids[] = {0, 1, 0};
    for (int i = from; i < from + n; i++) {
        shmq_append_result_t r;
        put_one(st, topics[i % 3], qids[i % 3], i, &r);
        if (res) {
            res[i] = r;
        }
    }
}

static int64_t queue_max(shmq_store_t *st, const char *topic, int32_t qid)
{
    shmq_queue_t *q;
    int rc = shmq_store_queue(st, topic, strlen(topic), qid, false, &q);
    if (rc < 0) {
        return -1;
    }
    return shmq_cq_max_offset(&q->cq);
}

static int64_t total_units(shmq_store_t *st)
{
    return queue_max(st, "TopicA", 0) + queue_max(st, "TopicA", 1) + queue_max(st, "TopicB", 0);
}

/* Count valid records in the log. */
static int64_t count_records(shmq_store_t *st)
{
    int64_t pos = shmq_commitlog_min_offset(&st->cl);
    int64_t n = 0;
    shmq_record_t r;
    while (shmq_commitlog_next(&st->cl, &pos, st->cl.wrote_pos, SHMQ_DECODE_CHECK_ALL, &r) > 0) {
        n++;
    }
    return n;
}

/* Path of the segment holding off, and off's position in it. */
static void segment_of(const fixture_t *f, int64_t off, char *path, size_t len, int64_t *rel)
{
    char name[21];
    shmq_segment_name(off - off % SEG_SIZE, name);
    snprintf(path, len, "%s/store/commitlog/%s", f->dir, name);
    *rel = off % SEG_SIZE;
}

static void patch_file(const char *path, int64_t at, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
    close(fd);
}

static void read_file_at(const char *path, int64_t at, void *data, size_t len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, data, len, at), (ssize_t)len);
    close(fd);
}

static void copy_tree(const char *from, const char *to)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
    assert_int_equal(system(cmd), 0);
}

/*
 * A store whose first `durable` messages were written and closed cleanly
 * (checkpoint at their end), then `extra` more appended and the process
 * "died" (abandoned: abort stays, checkpoint stays).
 */
static void make_crashed_store(fixture_t *f, int durable, int extra, shmq_append_result_t *res)
{
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, durable, res);
    assert_int_equal(shmq_store_close(&st), 0);
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, durable, extra, res);
    shmq_store_abandon(&st);
}

static void test_clean_reopen_keeps_every_record_and_unit(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    write_messages(&st, 0, 900, NULL); /* several 64 KiB segments */
    int64_t end = st.cl.wrote_pos;
    assert_true(end > 2 * SEG_SIZE);
    assert_int_equal(shmq_store_close(&st), 0);

    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_false(rep.abnormal);
    assert_int_equal(rep.truncated_bytes, 0);
    assert_int_equal(rep.recovered_end, end);
    assert_int_equal(rep.units_truncated, 0);
    assert_int_equal(st.cl.wrote_pos, end);
    assert_int_equal(count_records(&st), 900);
    assert_int_equal(total_units(&st), 900);
    assert_int_equal(queue_max(&st, "TopicB", 0), 300);
    /* Queue offsets continue where they were. */
    shmq_append_result_t r;
    put_one(&st, "TopicB", 0, 900, &r);
    shmq_record_t rec;
    assert_true(shmq_commitlog_read(&st.cl, r.phys_offset, SHMQ_DECODE_CHECK_ALL, &rec) > 0);
    assert_int_equal(rec.queue_offset, 300);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_second_opener_is_refused_naming_the_holder(void **state)
{
    fixture_t *f = *state;
    shmq_store_t a, b;
    assert_int_equal(shmq_store_open(&a, &f->cfg, 0, NULL), 0);
    assert_int_equal(shmq_store_open(&b, &f->cfg, 0, NULL), SHMQ_E_LOCKED);
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    assert_non_null(strstr(shmq_error_detail(), pid));
    /* A read-only opener needs no lock. */
    assert_int_equal(shmq_store_open(&b, &f->cfg, SHMQ_STORE_READONLY, NULL), 0);
    assert_int_equal(shmq_store_close(&b), 0);
    assert_int_equal(shmq_store_close(&a), 0);
}

static void test_crash_without_damage_loses_nothing(void **state)
{
    fixture_t *f = *state;
    make_crashed_store(f, 100, 50, NULL);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_true(rep.abnormal);
    assert_int_equal(rep.truncated_bytes, 0);
    assert_int_equal(count_records(&st), 150);
    assert_int_equal(total_units(&st), 150);
    assert_int_equal(shmq_store_close(&st), 0);
}

/*
 * PITFALLS 19: after a crash the records recovery accepts may exist only in
 * the page cache.  Recovery must write them back before it names them in the
 * checkpoint (and before the master publishes them as flushed): every page of
 * the accepted tail is clean once the store is open.
 */
static void test_recovery_makes_the_accepted_tail_durable(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[800];
    make_crashed_store(f, 20, 780, res);
    /* A record past the checkpoint in a segment before the last one (the last one is
     * pre-faulted again by the store it opens, which dirties its pages anew). */
    int k = -1;
    for (int i = 21; i < 800; i++) {
        if (res[i].phys_offset + res[i].size + 4096 < SEG_SIZE) {
            k = i;
        }
    }
    assert_true(k > 0);
    assert_true(res[799].phys_offset >= SEG_SIZE);
    shmq_commitlog_t cl;
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(&f->cfg, dir, sizeof(dir));
    assert_int_equal(shmq_commitlog_open(&cl, dir, SEG_SIZE, SHMQ_MF_READONLY), 0);
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl.q, res[k].phys_offset);
    assert_non_null(mf);
    const uint8_t *rec = mf->base + (res[k].phys_offset - mf->start_offset);
    int before = page_dirty(rec);
    if (before < 0) {
        shmq_commitlog_close(&cl);
        skip(); /* page flags need root */
    }
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_true(rep.abnormal);
    assert_int_equal(rep.recovered_end, res[799].phys_offset + res[799].size);
    assert_true(rep.synced_from <= res[20].phys_offset);
    /* Dirty before (the crashed writer's bytes) unless writeback came first; clean after. */
    print_message("# page of record %d dirty before recovery: %d\n", k, before);
    assert_int_equal(page_dirty(rec), 0);
    assert_int_equal(st.cp.confirm_phys, rep.recovered_end);
    shmq_commitlog_close(&cl);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * Rewrite the records from res[first] to res[n-1] as RocketMQ writes them by
 * default: without the __CRC32# property (TOTALSIZE and PROPERTIES LENGTH 20
 * bytes less, PHYSICALOFFSET at their new place), one after the other from
 * res[first]; zero what follows.  The ConsumeQueues are removed (rebuilt),
 * the checkpoint names the new end.  Returns the new end.
 */
static int64_t strip_crc_from(fixture_t *f, shmq_append_result_t *res, int first, int n)
{
    char seg[400];
    int64_t rel;
    segment_of(f, res[first].phys_offset, seg, sizeof(seg), &rel);
    int64_t old_end = res[n - 1].phys_offset + res[n - 1].size;
    assert_true(old_end - res[first].phys_offset < SEG_SIZE - rel);
    size_t span = (size_t)(old_end - res[first].phys_offset);
    uint8_t *in = malloc(span), *out = calloc(1, span);
    read_file_at(seg, rel, in, span);
    int64_t at = res[first].phys_offset;
    size_t o = 0;
    for (int i = first; i < n; i++) {
        const uint8_t *p = in + (res[i].phys_offset - res[first].phys_offset);
        shmq_record_t r;
        assert_int_equal(shmq_record_decode(p, (size_t)res[i].size, res[i].phys_offset,
                                            SHMQ_DECODE_CHECK_ALL, &r),
                         res[i].size);
        assert_true(r.has_record_crc);
        size_t size = (size_t)res[i].size - SHMQ_CRC_PROP_LEN;
        memcpy(out + o, p, size);
        put_be32(out + o, (uint32_t)size);
        uint64_t ph = (uint64_t)at;
        for (int b = 0; b < 8; b++) {
            out[o + 28 + b] = (uint8_t)(ph >> (56 - 8 * b));
        }
        size_t plen_at = (size_t)((const uint8_t *)r.props - p) - 2;
        uint32_t plen = r.props_len - SHMQ_CRC_PROP_LEN;
        out[o + plen_at] = (uint8_t)(plen >> 8);
        out[o + plen_at + 1] = (uint8_t)plen;
        res[i].phys_offset = at;
        res[i].size = (int32_t)size;
        at += (int64_t)size;
        o += size;
    }
    patch_file(seg, rel, out, span);
    free(in);
    free(out);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/store/consumequeue", f->dir);
    assert_int_equal(system(cmd), 0);
    shmq_checkpoint_t cp;
    assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
    cp.confirm_phys = at;
    assert_int_equal(shmq_checkpoint_write(f->cfg.store_path_root_dir, &cp), 0);
    return at;
}

/*
 * Records as RocketMQ writes them (no __CRC32#) after records that carry it
 * (a store both wrote, or records copied from RocketMQ) are read, not taken
 * for a torn tail: after a clean stop and after a crash alike.
 */
static void test_records_without_crc_property_after_ones_with_it_are_kept(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    for (int crashed = 0; crashed < 2; crashed++) {
        if (crashed) {
            char cmd[600];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'/store", f->dir);
            assert_int_equal(system(cmd), 0);
        }
        shmq_store_t st;
        assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
        write_messages(&st, 0, 40, res);
        assert_int_equal(shmq_store_close(&st), 0);
        int64_t end = strip_crc_from(f, res, 25, 40);
        if (crashed) {
            assert_int_equal(shmq_abort_create(f->cfg.store_path_root_dir), 0);
        }
        shmq_recovery_report_t rep;
        assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
        assert_int_equal(rep.abnormal, crashed);
        assert_int_equal(rep.recovered_end, end);
        assert_int_equal(rep.truncated_bytes, 0);
        assert_int_equal(count_records(&st), 40);
        assert_int_equal(total_units(&st), 40);
        assert_int_equal(shmq_store_close(&st), 0);
    }
}

/* A flipped bit in the __CRC32# name does not switch the record check off. */
static void test_flipped_bit_in_crc_property_name_is_damage(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 20, 10, res);
    char seg[400];
    int64_t rel;
    segment_of(f, res[29].phys_offset, seg, sizeof(seg), &rel);
    uint8_t b;
    int64_t name_at = rel + res[29].size - SHMQ_CRC_PROP_LEN + 3; /* the 'C' of __CRC32# */
    read_file_at(seg, name_at, &b, 1);
    b ^= 0x04;
    patch_file(seg, name_at, &b, 1);
    shmq_recovery_report_t rep;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.recovered_end, res[29].phys_offset);
    assert_int_equal(rep.stop_error, SHMQ_E_RECORD_CRC);
    assert_int_equal(count_records(&st), 29);
    assert_int_equal(shmq_store_close(&st), 0);
}

/* Without __CRC32#, a record whose properties end in zeros is torn, not RocketMQ's. */
static void test_record_without_crc_property_ending_in_zeros_is_a_torn_tail(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 40, res);
    assert_int_equal(shmq_store_close(&st), 0);
    strip_crc_from(f, res, 25, 40);
    /* A crash tore the last record: its properties' last bytes never reached the disk. */
    char seg[400];
    int64_t rel;
    segment_of(f, res[39].phys_offset, seg, sizeof(seg), &rel);
    static const uint8_t zeros[6];
    patch_file(seg, rel + res[39].size - 6, zeros, sizeof(zeros));
    shmq_checkpoint_t cp;
    assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
    cp.confirm_phys = res[30].phys_offset;
    assert_int_equal(shmq_checkpoint_write(f->cfg.store_path_root_dir, &cp), 0);
    assert_int_equal(shmq_abort_create(f->cfg.store_path_root_dir), 0);
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.recovered_end, res[39].phys_offset);
    assert_int_equal(rep.stop_error, SHMQ_E_RECORD_CRC);
    assert_int_equal(count_records(&st), 39);
    assert_int_equal(shmq_store_close(&st), 0);
}

/* Cut the last record at every byte offset: exactly that record is gone. */
static void cut_last_record_at_every_byte(fixture_t *f, bool with_abort)
{
    static shmq_append_result_t res[64];
    make_crashed_store(f, 40, 10, res);
    shmq_append_result_t last = res[49];
    char pristine[300], work[300];
    snprintf(pristine, sizeof(pristine), "%s/pristine", f->dir);
    snprintf(work, sizeof(work), "%s/store", f->dir);
    copy_tree(work, pristine);

    char seg[400];
    int64_t rel;
    segment_of(f, last.phys_offset, seg, sizeof(seg), &rel);
    for (int32_t k = 0; k < last.size; k++) {
        copy_tree(pristine, work);
        static uint8_t zeros[4096];
        patch_file(seg, rel + k, zeros, (size_t)(last.size - k));
        if (!with_abort) {
            char ab[400];
            snprintf(ab, sizeof(ab), "%s/abort", work);
            unlink(ab);
        }
        shmq_store_t st;
        shmq_recovery_report_t rep;
        int rc = shmq_store_open(&st, &f->cfg, 0, &rep);
        if (rc != 0) {
            fail_msg("cut at byte %d: open failed: %s", k, shmq_error_detail());
        }
        assert_int_equal(rep.recovered_end, last.phys_offset);
        assert_true(rep.truncated_bytes >= 0 && rep.truncated_bytes <= k);
        assert_int_equal(count_records(&st), 49);
        assert_int_equal(total_units(&st), 49);
        /* The bytes after the new end are zero. */
        uint8_t tail[512];
        read_file_at(seg, rel, tail, (size_t)last.size);
        for (int32_t i = 0; i < last.size; i++) {
            assert_int_equal(tail[i], 0);
        }
        /* The record before it is intact and a new append takes its place. */
        shmq_append_result_t r;
        put_one(&st, "TopicA", 1, 77, &r);
        assert_int_equal(r.phys_offset, last.phys_offset);
        assert_int_equal(shmq_store_close(&st), 0);
    }
}

static void test_cut_last_record_at_every_byte_with_abort(void **state)
{
    cut_last_record_at_every_byte(*state, true);
}

static void test_cut_last_record_at_every_byte_without_abort(void **state)
{
    cut_last_record_at_every_byte(*state, false);
}

static void test_flipped_bit_in_tail_cuts_from_that_record(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 30, 20, res);
    char seg[400];
    int64_t rel;
    /* Flip a body bit of message 45: 45..49 go, 0..44 stay. */
    segment_of(f, res[45].phys_offset, seg, sizeof(seg), &rel);
    uint8_t b;
    read_file_at(seg, rel + 100, &b, 1);
    b ^= 0x10;
    patch_file(seg, rel + 100, &b, 1);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.recovered_end, res[45].phys_offset);
    assert_true(rep.stop_error == SHMQ_E_BODY_CRC || rep.stop_error == SHMQ_E_RECORD_CRC);
    assert_non_null(strstr(rep.stop_reason, seg));
    assert_int_equal(count_records(&st), 45);
    assert_int_equal(total_units(&st), 45);
    assert_int_equal(rep.units_truncated, 5);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_flipped_header_bit_caught_by_record_crc(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 30, 20, res);
    char seg[400];
    int64_t rel;
    /* Queue id field (offset 12) of message 47: only the whole-record CRC sees it. */
    segment_of(f, res[47].phys_offset, seg, sizeof(seg), &rel);
    uint8_t b;
    read_file_at(seg, rel + 15, &b, 1);
    b ^= 0x01;
    patch_file(seg, rel + 15, &b, 1);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.stop_error, SHMQ_E_RECORD_CRC);
    assert_int_equal(rep.recovered_end, res[47].phys_offset);
    assert_int_equal(count_records(&st), 47);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_zeroed_tail_of_several_records_is_cut(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 30, 20, res);
    char seg[400];
    int64_t rel;
    segment_of(f, res[40].phys_offset, seg, sizeof(seg), &rel);
    int64_t len = res[49].phys_offset + res[49].size - res[40].phys_offset;
    assert_true(len < 4096);
    static uint8_t zeros[4096];
    patch_file(seg, rel, zeros, (size_t)len);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.recovered_end, res[40].phys_offset);
    assert_int_equal(rep.stop_error, 0); /* zeros: a clean end, no garbage */
    assert_int_equal(count_records(&st), 40);
    assert_int_equal(total_units(&st), 40);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_bad_record_below_checkpoint_is_corruption_not_end(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 40, 10, res);
    char seg[400];
    int64_t rel;
    /* Message 35 was flushed and checkpointed before the crash. */
    segment_of(f, res[35].phys_offset, seg, sizeof(seg), &rel);
    uint8_t b;
    read_file_at(seg, rel + 90, &b, 1);
    b ^= 0x80;
    patch_file(seg, rel + 90, &b, 1);
    shmq_store_t st;
    int rc = shmq_store_open(&st, &f->cfg, 0, NULL);
    assert_int_equal(rc, SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), seg));
    char off[32];
    snprintf(off, sizeof(off), "offset %lld", (long long)rel);
    assert_non_null(strstr(shmq_error_detail(), off));
    /* Nothing was changed: the records after it are still on disk. */
    uint8_t first[4];
    int64_t rel49;
    char seg49[400];
    segment_of(f, res[49].phys_offset, seg49, sizeof(seg49), &rel49);
    read_file_at(seg49, rel49, first, 4);
    assert_int_equal((first[0] << 24) | (first[1] << 16) | (first[2] << 8) | first[3],
                     res[49].size);
    /* The operator may force the cut. */
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, SHMQ_STORE_FORCE, &rep), 0);
    assert_int_equal(rep.recovered_end, res[35].phys_offset);
    assert_int_equal(count_records(&st), 35);
    assert_int_equal(total_units(&st), 35);
    assert_int_equal(shmq_store_close(&st), 0);
}

/*
 * The last records damaged after a clean stop (they were flushed and confirmed):
 * refused like damage in the middle, never cut silently; the operator may force it.
 */
static void test_damaged_last_record_below_checkpoint_is_refused_until_forced(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 30, res);
    assert_int_equal(shmq_store_close(&st), 0);
    char seg[400];
    int64_t rel;
    segment_of(f, res[29].phys_offset, seg, sizeof(seg), &rel);
    static uint8_t zeros[64];
    patch_file(seg, rel + res[29].size - 30, zeros, 30);
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), SHMQ_E_CORRUPT);
    assert_non_null(strstr(shmq_error_detail(), "below the checkpoint"));
    assert_non_null(strstr(shmq_error_detail(), seg));
    /* Nothing changed: the damaged record is still there for the operator. */
    uint8_t first[4];
    read_file_at(seg, rel, first, 4);
    assert_int_equal((first[0] << 24) | (first[1] << 16) | (first[2] << 8) | first[3],
                     res[29].size);
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, SHMQ_STORE_FORCE, &rep), 0);
    assert_false(rep.abnormal);
    assert_true(rep.below_checkpoint);
    assert_int_equal(rep.recovered_end, res[29].phys_offset);
    assert_int_equal(count_records(&st), 29);
    assert_int_equal(total_units(&st), 29);
    assert_int_equal(shmq_store_close(&st), 0);
}

/* A checkpoint naming bytes the log never held is a damaged checkpoint, not a damaged log. */
static void test_checkpoint_beyond_the_log_is_a_bad_checkpoint(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 30, res);
    assert_int_equal(shmq_store_close(&st), 0);
    int64_t end = res[29].phys_offset + res[29].size;
    for (int k = 0; k < 2; k++) {
        /* Inside the last segment's zeros, then beyond every file. */
        shmq_checkpoint_t cp;
        assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
        cp.confirm_phys = k == 0 ? end + 1000 : (int64_t)SEG_SIZE * 40 + 17;
        assert_int_equal(shmq_checkpoint_write(f->cfg.store_path_root_dir, &cp), 0);
        shmq_recovery_report_t rep;
        assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
        assert_true(rep.bad_checkpoint);
        assert_int_equal(rep.bad_checkpoint_phys, cp.confirm_phys);
        assert_false(rep.below_checkpoint);
        assert_int_equal(rep.recovered_end, end);
        assert_int_equal(count_records(&st), 30);
        assert_int_equal(shmq_store_close(&st), 0);
        /* The rewritten checkpoint is truthful again. */
        assert_int_equal(shmq_checkpoint_read(f->cfg.store_path_root_dir, &cp), 0);
        assert_int_equal(cp.confirm_phys, end);
    }
}

static void remove_queue_files(fixture_t *f, const char *topic, int32_t qid)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -f '%s'/store/consumequeue/%s/%d/*", f->dir, topic, qid);
    assert_int_equal(system(cmd), 0);
}

static void deleted_queue_files_are_rebuilt(fixture_t *f, bool crashed)
{
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 600, NULL);
    shmq_cq_unit_t before[200];
    shmq_queue_t *q;
    assert_int_equal(shmq_store_queue(&st, "TopicA", 6, 1, false, &q), 0);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(shmq_cq_read(&q->cq, i, &before[i]), 0);
    }
    if (crashed) {
        shmq_store_abandon(&st);
    } else {
        assert_int_equal(shmq_store_close(&st), 0);
    }
    remove_queue_files(f, "TopicA", 1);
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.abnormal, crashed);
    assert_true(rep.units_rebuilt >= 200);
    assert_int_equal(queue_max(&st, "TopicA", 1), 200);
    assert_int_equal(total_units(&st), 600);
    assert_int_equal(shmq_store_queue(&st, "TopicA", 6, 1, false, &q), 0);
    for (int i = 0; i < 200; i++) {
        shmq_cq_unit_t u;
        assert_int_equal(shmq_cq_read(&q->cq, i, &u), 0);
        assert_int_equal(u.phys_offset, before[i].phys_offset);
        assert_int_equal(u.size, before[i].size);
        assert_int_equal(u.tags_code, before[i].tags_code);
    }
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_deleted_queue_files_rebuilt_after_clean_stop(void **state)
{
    deleted_queue_files_are_rebuilt(*state, false);
}

static void test_deleted_queue_files_rebuilt_after_crash(void **state)
{
    deleted_queue_files_are_rebuilt(*state, true);
}

static void test_deleted_last_queue_file_rebuilt_on_request(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 600, NULL);
    assert_int_equal(shmq_store_close(&st), 0);
    /* Remove the newest file of TopicB/0 (200 units in 64-unit files: 4 files). */
    char cmd[600];
    snprintf(cmd, sizeof(cmd),
             "cd '%s'/store/consumequeue/TopicB/0 && rm -f \"$(ls | sort | tail -n 1)\"", f->dir);
    assert_int_equal(system(cmd), 0);
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, SHMQ_STORE_REBUILD, &rep), 0);
    assert_int_equal(queue_max(&st, "TopicB", 0), 200);
    assert_int_equal(total_units(&st), 600);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_damaged_queue_file_is_rebuilt(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 300, NULL);
    assert_int_equal(shmq_store_close(&st), 0);
    /* A queue file of the wrong size cannot be mapped: the queue is rebuilt. */
    char path[600];
    snprintf(path, sizeof(path), "%s/store/consumequeue/TopicA/0/00000000000000000000", f->dir);
    assert_int_equal(truncate(path, 100), 0);
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(queue_max(&st, "TopicA", 0), 100);
    assert_int_equal(total_units(&st), 300);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_units_past_the_end_are_dropped(void **state)
{
    fixture_t *f = *state;
    static shmq_append_result_t res[64];
    make_crashed_store(f, 20, 30, res);
    /* Cut the log in the middle of message 30's record: its unit and later ones must go. */
    char seg[400];
    int64_t rel;
    segment_of(f, res[30].phys_offset, seg, sizeof(seg), &rel);
    int64_t len = res[49].phys_offset + res[49].size - res[30].phys_offset - 10;
    static uint8_t zeros[8192];
    assert_true(len < (int64_t)sizeof(zeros));
    patch_file(seg, rel + 10, zeros, (size_t)len);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(rep.recovered_end, res[30].phys_offset);
    assert_int_equal(rep.units_truncated, 20);
    assert_int_equal(total_units(&st), 30);
    assert_int_equal(queue_max(&st, "TopicA", 0), 10);
    assert_int_equal(shmq_store_close(&st), 0);
}

static void test_torn_record_across_a_segment_roll(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    static shmq_append_result_t res[1200];
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 300, res);
    assert_int_equal(shmq_store_close(&st), 0);
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    /* Append until a record lands at the start of a new segment. */
    int i = 300;
    do {
        write_messages(&st, i, 1, res);
        i++;
    } while (res[i - 1].phys_offset % SEG_SIZE != 0 && i < 1200);
    assert_true(i < 1200);
    int64_t first_in_seg = res[i - 1].phys_offset;
    shmq_store_abandon(&st);
    char seg[400];
    int64_t rel;
    segment_of(f, first_in_seg, seg, sizeof(seg), &rel);
    static uint8_t zeros[64];
    patch_file(seg, 20, zeros, sizeof(zeros));
    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    /* The blank record closing the previous segment stays; the log ends there. */
    assert_int_equal(rep.recovered_end, first_in_seg);
    assert_int_equal(count_records(&st), i - 1);
    shmq_append_result_t r;
    put_one(&st, "TopicA", 0, 5000, &r);
    assert_int_equal(r.phys_offset, first_in_seg);
    assert_int_equal(shmq_store_close(&st), 0);
}

/*
 * A divergent tail cut (shmq_store_truncate): records at and after the cut
 * go with their units, queue offsets continue from the cut, and a reopen
 * (clean, or after a crash) keeps exactly the prefix.
 */
static void test_truncate_cuts_the_tail_and_its_units(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    static shmq_append_result_t res[900];
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 900, res);
    int64_t cut = res[600].phys_offset; /* a later segment than the first */
    assert_true(cut > SEG_SIZE);
    assert_int_equal(shmq_store_truncate(&st, cut), 0);
    assert_int_equal(st.cl.wrote_pos, cut);
    assert_int_equal(count_records(&st), 600);
    assert_int_equal(total_units(&st), 600);
    assert_int_equal(queue_max(&st, "TopicB", 0), 200);
    assert_true(st.cp.confirm_phys <= cut);
    /* Beyond the log: refused, nothing changes. */
    assert_int_equal(shmq_store_truncate(&st, cut + 1), SHMQ_E_RANGE);
    assert_int_equal(st.cl.wrote_pos, cut);
    /* Queue offsets continue from the cut. */
    shmq_append_result_t r;
    put_one(&st, "TopicB", 0, 2000, &r);
    assert_int_equal(r.phys_offset, cut);
    shmq_record_t rec;
    assert_true(shmq_commitlog_read(&st.cl, r.phys_offset, SHMQ_DECODE_CHECK_ALL, &rec) > 0);
    assert_int_equal(rec.queue_offset, 200);
    assert_int_equal(shmq_store_close(&st), 0);

    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(count_records(&st), 601);
    assert_int_equal(total_units(&st), 601);
    assert_int_equal(shmq_store_close(&st), 0);
}

/*
 * The index entries of a cut tail go with it, in shmq_store_truncate: a deposed master that
 * comes back as a slave replicates its new master's records to the same offsets before its
 * indexer starts, and the indexer, resuming from its newest entry below the log's end, would
 * take the old entries for the new records' (and fail on them, again and again).
 */
static void test_truncate_cuts_the_index_entries(void **state)
{
    fixture_t *f = *state;
    f->cfg.message_index_enable = true;
    f->cfg.max_hash_slot_num = 1024;
    f->cfg.max_index_num = 4096;
    shmq_store_t st;
    static shmq_append_result_t res[900];
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    char dir[PATH_MAX];
    shmq_index_dir(&f->cfg, dir, sizeof(dir));
    shmq_index_service_t svc;
    assert_int_equal(shmq_index_open(&svc, dir, 1024, 4096, false), 0);
    for (int i = 0; i < 900; i++) {
        put_msg(&st, "TopicK", 0, i, true, &res[i]);
        shmq_record_t r;
        assert_true(shmq_commitlog_read(&st.cl, res[i].phys_offset, SHMQ_DECODE_CHECK_ALL, &r) > 0);
        assert_int_equal(shmq_index_put_record(&svc, &r), 1); /* its one key */
    }
    assert_int_equal(shmq_index_flush(&svc, NULL), 0);
    shmq_index_close(&svc);
    int64_t cut = res[600].phys_offset;
    assert_int_equal(shmq_store_truncate(&st, cut), 0);
    /* Other records at the cut offsets and beyond, without keys (the new master's). */
    write_messages(&st, 600, 400, NULL);
    assert_true(st.cl.wrote_pos > res[899].phys_offset);
    /* The indexer's start: nothing past the cut is left to remove, the newest entry is the
     * last record kept, complete. */
    assert_int_equal(shmq_index_open(&svc, dir, 1024, 4096, false), 0);
    shmq_index_resume_report_t rep;
    assert_int_equal(
        shmq_index_resume(&svc, &st.cl, st.cl.wrote_pos, shmq_commitlog_min_offset(&st.cl), &rep),
        0);
    assert_int_equal(rep.entries_removed, 0);
    assert_int_equal(rep.last_phys, res[599].phys_offset);
    assert_true(rep.last_complete);
    assert_int_equal(rep.files_rebuilt, 0);
    shmq_index_close(&svc);
    assert_int_equal(shmq_store_close(&st), 0);
}

/* Killed during the cut, after the checkpoint was lowered and the units dropped: the next
 * start recovers the whole (longer) prefix, never refuses it as corrupt. */
static void test_truncate_interrupted_leaves_a_recoverable_prefix(void **state)
{
    fixture_t *f = *state;
    shmq_store_t st;
    static shmq_append_result_t res[900];
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, NULL), 0);
    write_messages(&st, 0, 900, res);
    assert_int_equal(shmq_store_flush(&st), 0);
    int64_t cut = res[300].phys_offset;
    /* The first two steps of shmq_store_truncate, then the process dies. */
    st.cp.confirm_phys = cut;
    assert_int_equal(shmq_checkpoint_write(st.root, &st.cp), 0);
    shmq_store_abandon(&st);

    shmq_recovery_report_t rep;
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_true(rep.abnormal);
    assert_true(st.cl.wrote_pos >= cut);
    assert_int_equal(count_records(&st), 900);
    assert_int_equal(shmq_store_truncate(&st, cut), 0);
    assert_int_equal(count_records(&st), 300);
    shmq_store_abandon(&st); /* killed right after the cut */
    assert_int_equal(shmq_store_open(&st, &f->cfg, 0, &rep), 0);
    assert_int_equal(st.cl.wrote_pos, cut);
    assert_int_equal(count_records(&st), 300);
    assert_int_equal(total_units(&st), 300);
    assert_int_equal(shmq_store_close(&st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_truncate_cuts_the_tail_and_its_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_cuts_the_index_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_interrupted_leaves_a_recoverable_prefix,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_reopen_keeps_every_record_and_unit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_second_opener_is_refused_naming_the_holder, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_without_damage_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_last_record_at_every_byte_with_abort, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cut_last_record_at_every_byte_without_abort, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bit_in_tail_cuts_from_that_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flipped_header_bit_caught_by_record_crc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_tail_of_several_records_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_record_below_checkpoint_is_corruption_not_end,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_damaged_last_record_below_checkpoint_is_refused_until_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_queue_files_rebuilt_after_clean_stop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_queue_files_rebuilt_after_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_last_queue_file_rebuilt_on_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_queue_file_is_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_units_past_the_end_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_record_across_a_segment_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_beyond_the_log_is_a_bad_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_records_without_crc_property_after_ones_with_it_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_record_without_crc_property_ending_in_zeros_is_a_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bit_in_crc_property_name_is_damage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recovery_makes_the_accepted_tail_durable, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
