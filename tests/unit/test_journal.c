/*
 * Unit tests of the writer's journal (libshm/journal.c): the scan of an
 * interrupted batch raises queue offsets and finds records by UNIQ_KEY (each
 * matched once), a decode error ends it early, and stale bytes after wrote
 * are zeroed across a segment boundary without touching what is before.
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

#include "commitlog.h"
#include "config.h"
#include "ctl.h"
#include "journal.h"

#define SEG 65536

typedef struct fixture {
    char dir[64];
    shmq_config_t cfg;
    shmq_ctl_t ctl;
    shmq_commitlog_t cl;
    int64_t phys[8];
    char keys[8][SHMQ_UNIQ_KEY_MAX];
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

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
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
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
    shmq_journal_rec_t *r = shmq_journal_find(&j, f->keys[4], strlen(f->keys[4]), 1);
    assert_non_null(r);
    assert_int_equal(r->phys, f->phys[4]);
    assert_int_equal(r->queue_offset, 4);
    assert_int_equal(r->size, f->phys[5] - f->phys[4]);
    assert_null(shmq_journal_find(&j, f->keys[4], strlen(f->keys[4]), 2)); /* other queue */
    assert_null(shmq_journal_find(&j, f->keys[2], strlen(f->keys[2]), 1)); /* before the batch */
    r->used = true;
    assert_null(shmq_journal_find(&j, f->keys[4], strlen(f->keys[4]), 1)); /* matched once */
    assert_true(j.last_store_ts > 0);
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
        cmocka_unit_test_setup_teardown(test_scan_never_lowers_a_next_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_stops_at_a_damaged_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_stale_clears_bytes_after_wrote_across_segments,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
