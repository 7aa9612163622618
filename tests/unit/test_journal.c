/*
 * Unit tests of the writer's journal (libshm/shm/journal.c): the scan of an
 * interrupted batch raises queue offsets and finds the record a ring entry
 * was stored as (each matched once): by UNIQ_KEY, topic and queue as stored,
 * so that a send-back keeping the original's key never takes the original's
 * record, and by the put hook's decision read from the record, so that a
 * timed message whose time has passed since still matches its wheel record;
 * a decode error ends the scan early, and stale bytes after wrote are zeroed
 * across a segment boundary without touching what is before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmp_tree.h"
#include "format/commitlog.h"
#include "format/config.h"
#include "shm/ctl.h"
#include "shm/journal.h"
#include "shm/schedule.h"

#define SEG 65536

typedef struct fixture {
    char dir[64];
    shmq_config_t cfg;
    shmq_ctl_t ctl;
    shmq_commitlog_t cl;
    int64_t phys[8];
    char keys[8][SHMQ_UNIQ_KEY_MAX];
} fixture_t;

/* Append message k of TopicJ queue 1 with queue offset k and its own UNIQ_KEY. */
static void append(fixture_t *f, int k)
{
    char props[128];
    size_t plen = 0;
    snprintf(f->keys[k], SHMQ_UNIQ_KEY_MAX, "0A00000100010000000100000000%04X", k);
    assert_int_equal(
        shmq_props_append(props, sizeof(props), &plen, "UNIQ_KEY", f->keys[k], strlen(f->keys[k])),
        0);
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicJ";
    m.topic_len = 6;
    m.queue_id = 1;
    m.body = "body";
    m.body_len = 4;
    m.props = props;
    m.props_len = plen;
    shmq_append_result_t res;
    assert_int_equal(shmq_commitlog_append(&f->cl, &m, k, 0, &res), 0);
    f->phys[k] = res.phys_offset;
}

/* Append a record of topic, queue, queue offset qoff and properties props; its offset. */
static int64_t append_rec(fixture_t *f, const char *topic, int32_t queue, int64_t qoff,
                          const char *props, size_t plen)
{
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = (uint32_t)strlen(topic);
    m.queue_id = queue;
    m.body = "body";
    m.body_len = 4;
    m.props = props;
    m.props_len = plen;
    shmq_append_result_t res;
    assert_int_equal(shmq_commitlog_append(&f->cl, &m, qoff, 0, &res), 0);
    return res.phys_offset;
}

/* Properties: name/value pairs (NULL-terminated list), appended into buf. */
static size_t props_of(char *buf, size_t cap, const char *const *kv)
{
    size_t len = 0;
    for (; kv[0] != NULL; kv += 2) {
        assert_int_equal(shmq_props_append(buf, cap, &len, kv[0], kv[1], strlen(kv[1])), 0);
    }
    return len;
}

/* A validated ring entry as its producer wrote it (before the put hook). */
static shmq_ring_msg_t entry(const char *topic, int32_t queue, const char *props, size_t plen)
{
    shmq_ring_msg_t m;
    memset(&m, 0, sizeof(m));
    m.kind = SHMQ_RING_KIND_MSG;
    m.batch_count = 1;
    m.topic = topic;
    m.topic_len = (uint32_t)strlen(topic);
    m.queue_id = queue;
    m.props = props;
    m.props_len = (uint32_t)plen;
    size_t kl = 0;
    m.uniq_key = shmq_props_get(props, plen, SHMQ_PROP_UNIQ_KEY, &kl);
    assert_non_null(m.uniq_key);
    m.uniq_key_len = (uint32_t)kl;
    return m;
}

/* The entry of message k of setup()'s TopicJ, queue q. */
static shmq_ring_msg_t entry_k(fixture_t *f, int k, int32_t q, char *buf, size_t cap)
{
    const char *kv[] = {SHMQ_PROP_UNIQ_KEY, f->keys[k], NULL};
    size_t plen = props_of(buf, cap, kv);
    return entry("TopicJ", q, buf, plen);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    shmq_config_defaults(&f->cfg);
    f->cfg.max_message_size = 4096;
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s", f->dir);
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    snprintf(path, sizeof(path), "%s/commitlog", f->dir);
    assert_int_equal(shmq_commitlog_open(&f->cl, path, SEG, 0), 0);
    shmq_commitlog_set_positions(&f->cl, 0, 0);
    for (int k = 0; k < 6; k++) {
        append(f, k);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    shmq_commitlog_close(&f->cl);
    shmq_ctl_detach(&f->ctl);
    shmq_ctl_unlink(f->dir);
    tmp_tree_remove(f->dir);
    free(f);
    return 0;
}

static void test_scan_raises_next_offset_and_finds_records_by_uniq_key(void **state)
{
    fixture_t *f = *state;
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    /* The interrupted batch: records 3..5. */
    int64_t n = shmq_journal_scan(&j, &f->cl, &f->ctl, f->phys[3], f->cl.wrote_pos);
    assert_int_equal(n, 3);
    assert_int_equal(j.stop_err, 0);
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(&f->ctl, "TopicJ", 6, 1);
    assert_non_null(q);
    assert_int_equal(atomic_load(&q->next_offset), 6);
    char pb[128];
    shmq_ring_msg_t e = entry_k(f, 4, 1, pb, sizeof(pb));
    shmq_journal_rec_t *r = shmq_journal_find(&j, &e);
    assert_non_null(r);
    assert_int_equal(r->phys, f->phys[4]);
    assert_int_equal(r->queue_offset, 4);
    assert_int_equal(r->size, f->phys[5] - f->phys[4]);
    assert_string_equal(r->topic, "TopicJ");
    assert_int_equal(r->kind, SHMQ_SCHEDULE_NONE);
    e = entry_k(f, 4, 2, pb, sizeof(pb));
    assert_null(shmq_journal_find(&j, &e)); /* other queue */
    e = entry_k(f, 2, 1, pb, sizeof(pb));
    assert_null(shmq_journal_find(&j, &e)); /* before the batch */
    e = entry_k(f, 4, 1, pb, sizeof(pb));
    e.topic = "TopicK";
    assert_null(shmq_journal_find(&j, &e)); /* same key and queue, other topic */
    e.topic = "TopicJ";
    r->used = true;
    assert_null(shmq_journal_find(&j, &e)); /* matched once */
    assert_true(j.last_store_ts > 0);
    shmq_journal_free(&j);
}

static void test_find_tells_a_send_back_from_the_original_by_what_was_stored(void **state)
{
    fixture_t *f = *state;
    const char *key = f->keys[5];
    int64_t from = f->cl.wrote_pos;
    /* The original (TopicJ queue 2), then its send-back as the put hook stored it:
     * SCHEDULE_TOPIC_XXXX queue 2 (delay level 3), REAL_TOPIC %RETRY%G queue 0. */
    char po[128], pc[256];
    const char *kv_o[] = {SHMQ_PROP_UNIQ_KEY, key, NULL};
    size_t plo = props_of(po, sizeof(po), kv_o);
    int64_t phys_o = append_rec(f, "TopicJ", 2, 0, po, plo);
    const char *kv_c[] = {SHMQ_PROP_UNIQ_KEY,
                          key,
                          SHMQ_PROP_DELAY,
                          "3",
                          SHMQ_PROP_REAL_TOPIC,
                          "%RETRY%G",
                          SHMQ_PROP_REAL_QID,
                          "0",
                          NULL};
    size_t plc = props_of(pc, sizeof(pc), kv_c);
    int64_t phys_c = append_rec(f, SHMQ_SCHEDULE_TOPIC, 2, 0, pc, plc);
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, from, f->cl.wrote_pos), 2);

    /* The send-back's entry as the consumer wrote it: %RETRY%G queue 0, DELAY 3. */
    char pe[256];
    const char *kv_e[] = {SHMQ_PROP_UNIQ_KEY, key, SHMQ_PROP_DELAY, "3", NULL};
    size_t ple = props_of(pe, sizeof(pe), kv_e);
    shmq_ring_msg_t copy = entry("%RETRY%G", 0, pe, ple);
    shmq_journal_rec_t *r = shmq_journal_find(&j, &copy);
    assert_non_null(r);
    assert_int_equal(r->phys, phys_c);
    assert_int_equal(r->kind, SHMQ_SCHEDULE_DELAY);
    assert_string_equal(r->topic, SHMQ_SCHEDULE_TOPIC);
    assert_string_equal(r->sent_topic, "%RETRY%G");
    r->used = true;
    /* The original's entry finds its own record, whatever was matched first. */
    shmq_ring_msg_t orig = entry("TopicJ", 2, po, plo);
    r = shmq_journal_find(&j, &orig);
    assert_non_null(r);
    assert_int_equal(r->phys, phys_o);
    r->used = true;
    assert_null(shmq_journal_find(&j, &copy));
    shmq_journal_free(&j);

    /* Either order: the original first never takes the send-back's record. */
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, from, f->cl.wrote_pos), 2);
    r = shmq_journal_find(&j, &orig);
    assert_int_equal(r->phys, phys_o);
    r->used = true;
    assert_null(shmq_journal_find(&j, &orig)); /* only one original was stored */
    /* A send-back without a delay (straight to the DLQ) was not what was stored. */
    shmq_ring_msg_t dlq = entry("%RETRY%G", 0, po, plo);
    assert_null(shmq_journal_find(&j, &dlq));
    r = shmq_journal_find(&j, &copy);
    assert_non_null(r);
    assert_int_equal(r->phys, phys_c);
    shmq_journal_free(&j);
}

static void test_find_reads_the_hooks_decision_for_a_timed_message_from_the_record(void **state)
{
    fixture_t *f = *state;
    int64_t from = f->cl.wrote_pos;
    /* Delivery time already past when matched: the hook would now store it as it is. */
    const char *past = "1000";
    char pe[256], pw[256], pd[128];
    /* Message 4: held in the wheel (the time was ahead when it was appended). */
    const char *kv_e4[] = {SHMQ_PROP_UNIQ_KEY, f->keys[4], SHMQ_PROP_TIMER_DELIVER_MS, past, NULL};
    size_t ple4 = props_of(pe, sizeof(pe), kv_e4);
    const char *kv_w[] = {SHMQ_PROP_UNIQ_KEY,
                          f->keys[4],
                          SHMQ_PROP_TIMER_DELIVER_MS,
                          past,
                          SHMQ_PROP_TIMER_OUT_MS,
                          "900",
                          SHMQ_PROP_REAL_TOPIC,
                          "TopicJ",
                          SHMQ_PROP_REAL_QID,
                          "1",
                          NULL};
    size_t plw = props_of(pw, sizeof(pw), kv_w);
    int64_t phys_w = append_rec(f, SHMQ_TIMER_TOPIC, 0, 0, pw, plw);
    /* Message 5: due when appended, stored in its topic as sent. */
    const char *kv_d[] = {SHMQ_PROP_UNIQ_KEY, f->keys[5], SHMQ_PROP_TIMER_DELIVER_MS, past, NULL};
    size_t pld = props_of(pd, sizeof(pd), kv_d);
    int64_t phys_d = append_rec(f, "TopicJ", 1, 9, pd, pld);
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, from, f->cl.wrote_pos), 2);

    shmq_ring_msg_t e4 = entry("TopicJ", 1, pe, ple4);
    shmq_journal_rec_t *r = shmq_journal_find(&j, &e4);
    assert_non_null(r);
    assert_int_equal(r->phys, phys_w);
    assert_int_equal(r->kind, SHMQ_SCHEDULE_TIMER);
    assert_int_equal(r->queue_id, 0);
    assert_int_equal(r->sent_queue_id, 1);
    shmq_ring_msg_t e5 = entry("TopicJ", 1, pd, pld);
    r = shmq_journal_find(&j, &e5);
    assert_non_null(r);
    assert_int_equal(r->phys, phys_d);
    assert_int_equal(r->kind, SHMQ_SCHEDULE_NONE);
    /* The wheel record names queue 1: an entry for queue 2 was not stored as it. */
    shmq_ring_msg_t e4q2 = entry("TopicJ", 2, pe, ple4);
    assert_null(shmq_journal_find(&j, &e4q2));
    shmq_journal_free(&j);

    /* The scheduler's delivery of message 4 (same key, topic and queue, TIMER_OUT_MS and
     * the wheel's times added, REAL_TOPIC / REAL_QID removed) was not stored as the wheel
     * record: the hook leaves such an entry as it is. */
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, from, f->cl.wrote_pos), 2);
    char pv[256];
    const char *kv_v[] = {SHMQ_PROP_UNIQ_KEY,
                          f->keys[4],
                          SHMQ_PROP_TIMER_DELIVER_MS,
                          past,
                          SHMQ_PROP_TIMER_OUT_MS,
                          "900",
                          SHMQ_PROP_TIMER_ENQUEUE_MS,
                          "950",
                          SHMQ_PROP_TIMER_DEQUEUE_MS,
                          "1001",
                          NULL};
    size_t plv = props_of(pv, sizeof(pv), kv_v);
    shmq_ring_msg_t delivery = entry("TopicJ", 1, pv, plv);
    assert_null(shmq_journal_find(&j, &delivery));
    assert_int_equal(shmq_journal_find(&j, &e4)->phys, phys_w);
    shmq_journal_free(&j);
}

static void test_find_never_gives_a_delayed_send_back_a_record_stored_as_sent(void **state)
{
    fixture_t *f = *state;
    int64_t from = f->cl.wrote_pos;
    /* A retry message delivered to %RETRY%G queue 0 (stored as sent) ... */
    char pr[128], pc[128];
    const char *kv_r[] = {SHMQ_PROP_UNIQ_KEY, f->keys[3], SHMQ_PROP_RETRY_TOPIC, "TopicJ", NULL};
    size_t plr = props_of(pr, sizeof(pr), kv_r);
    int64_t phys_r = append_rec(f, "%RETRY%G", 0, 0, pr, plr);
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, from, f->cl.wrote_pos), 1);
    /* ... and its send-back to the same topic and queue with a delay level: the hook always
     * rewrites that entry, so the record stored as sent is not its. */
    const char *kv_c[] = {SHMQ_PROP_UNIQ_KEY,
                          f->keys[3],
                          SHMQ_PROP_RETRY_TOPIC,
                          "TopicJ",
                          SHMQ_PROP_DELAY,
                          "4",
                          NULL};
    size_t plc = props_of(pc, sizeof(pc), kv_c);
    shmq_ring_msg_t copy = entry("%RETRY%G", 0, pc, plc);
    assert_null(shmq_journal_find(&j, &copy));
    shmq_ring_msg_t delivered = entry("%RETRY%G", 0, pr, plr);
    assert_int_equal(shmq_journal_find(&j, &delivered)->phys, phys_r);
    shmq_journal_free(&j);
}

static void test_scan_never_lowers_a_next_offset(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_queue_t *q;
    assert_int_equal(shmq_ctl_queue_insert(&f->ctl, "TopicJ", 6, 1, &q), 0);
    atomic_store(&q->next_offset, 100);
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, f->phys[0], f->cl.wrote_pos), 6);
    assert_int_equal(atomic_load(&q->next_offset), 100);
    shmq_journal_free(&j);
}

static void test_scan_stops_at_a_damaged_record(void **state)
{
    fixture_t *f = *state;
    shmq_mapped_file_t *mf = shmq_mfq_find(&f->cl.q, f->phys[4]);
    mf->base[f->phys[4] - mf->start_offset + 4] ^= 0xFF; /* magic */
    shmq_journal_t j;
    memset(&j, 0, sizeof(j));
    assert_int_equal(shmq_journal_scan(&j, &f->cl, &f->ctl, f->phys[2], f->cl.wrote_pos), 2);
    assert_int_equal(j.stop_err, SHMQ_E_MAGIC);
    assert_int_equal(j.stop_at, f->phys[4]);
    shmq_journal_free(&j);
}

static void test_zero_stale_clears_bytes_after_wrote_across_segments(void **state)
{
    fixture_t *f = *state;
    int64_t wrote = f->cl.wrote_pos;
    /* A killed append left a record after wrote, and one at the next segment's start. */
    append(f, 6);
    append(f, 7);
    shmq_mapped_file_t *seg1;
    assert_int_equal(shmq_mfq_get_or_create(&f->cl.q, SEG, &seg1), 0);
    memset(seg1->base, 0xAB, 100);
    int64_t stale = f->cl.wrote_pos - wrote;
    shmq_commitlog_set_positions(&f->cl, wrote, wrote);
    shmq_mapped_file_t *seg0 = shmq_mfq_find(&f->cl.q, 0);
    uint8_t before[4096];
    memcpy(before, seg0->base, (size_t)wrote);

    int64_t zeroed = shmq_journal_zero_stale(&f->cl, wrote, 2 * SEG);
    assert_true(zeroed >= stale + 100);
    for (int64_t i = wrote; i < SEG; i++) {
        assert_int_equal(seg0->base[i], 0);
    }
    for (int i = 0; i < 100; i++) {
        assert_int_equal(seg1->base[i], 0);
    }
    assert_memory_equal(seg0->base, before, (size_t)wrote); /* the records stay */
    assert_int_equal(shmq_journal_zero_stale(&f->cl, wrote, 2 * SEG), 0);
    /* The log reads to wrote and no further. */
    shmq_record_t rec;
    int64_t pos = f->phys[5];
    assert_true(shmq_commitlog_next(&f->cl, &pos, INT64_MAX, 0, &rec) > 0);
    assert_int_equal(pos, wrote);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan_raises_next_offset_and_finds_records_by_uniq_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_find_tells_a_send_back_from_the_original_by_what_was_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_find_reads_the_hooks_decision_for_a_timed_message_from_the_record, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_find_never_gives_a_delayed_send_back_a_record_stored_as_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_never_lowers_a_next_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_stops_at_a_damaged_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_stale_clears_bytes_after_wrote_across_segments,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
