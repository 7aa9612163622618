/*
 * Unit tests for clean.c: RocketMQ's disk-usage formula, the decision of a
 * cleaning run (deleteWhen, the three watermarks, manual requests), the
 * disk-full hysteresis, CommitLog deletion against a clock the test sets
 * (file mtimes and "now" are both given), ConsumeQueue and index cleanup
 * below the new minimum, readers that keep reading a deleted file and then
 * let it go, and a CommitLog on a small tmpfs filled until ENOSPC (skipped
 * when tmpfs cannot be mounted).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "format/commitlog.h"
#include "format/consume_queue.h"
#include "shmq/errors.h"

#define SEG     4096
#define HOUR_MS (3600 * 1000LL)
#define NOW_MS  1800000000000LL /* the test's clock */

typedef struct fixture {
    char root[64];
    char dir[PATH_MAX]; /* <root>/commitlog */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->root, sizeof(f->root), "/tmp/shmq-test-clean-XXXXXX");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/commitlog", f->root);
    mkdir(f->dir, 0755);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char mnt[PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s/mnt", f->root);
    umount2(mnt, MNT_DETACH); /* a failed full-filesystem test leaves its tmpfs mounted */
    tmp_tree_remove(f->root);
    free(f);
    return 0;
}

static void seg_file(const char *dir, int64_t off, char *out)
{
    char name[21];
    shmq_segment_name(off, name);
    snprintf(out, PATH_MAX, "%.4000s/%s", dir, name);
}

/* A segment file of size bytes whose mtime is mtime_ms. */
static void make_seg(const char *dir, int64_t off, size_t size, int64_t mtime_ms)
{
    char p[PATH_MAX];
    seg_file(dir, off, p);
    int fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    struct timespec ts[2] = {{.tv_sec = mtime_ms / 1000, .tv_nsec = (mtime_ms % 1000) * 1000000},
                             {.tv_sec = mtime_ms / 1000, .tv_nsec = (mtime_ms % 1000) * 1000000}};
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static bool seg_exists(const char *dir, int64_t off)
{
    char p[PATH_MAX];
    seg_file(dir, off, p);
    return access(p, F_OK) == 0;
}

static shmq_clean_cl_args_t cl_args(const fixture_t *f)
{
    shmq_clean_cl_args_t a = {.dir = f->dir,
                              .seg_size = SEG,
                              .now_ms = NOW_MS,
                              .reserved_ms = 72 * HOUR_MS,
                              .force = false,
                              .bound = INT64_MAX,
                              .batch_max = 10,
                              .interval_ms = 0};
    return a;
}

/* ---- disk usage and the decision --------------------------------------------------- */

static void test_ratio_is_used_over_used_plus_available_rounded_up(void **state)
{
    (void)state;
    /* used 750 of 750 + 250: exactly 75 %. */
    assert_int_equal(shmq_clean_ratio_pct(1000, 250, 250), 75);
    /* used 76, entire 76 + 20 (reserved blocks are not available): ceil(79.17) = 80. */
    assert_int_equal(shmq_clean_ratio_pct(100, 24, 20), 80);
    assert_int_equal(shmq_clean_ratio_pct(1000, 1000, 1000), 0);
    assert_int_equal(shmq_clean_ratio_pct(1000, 0, 0), 100);
    assert_int_equal(shmq_clean_ratio_pct(0, 0, 0), -1);
    /* Huge filesystems do not overflow. */
    assert_int_equal(shmq_clean_ratio_pct(10ULL << 60, 1ULL << 60, 1ULL << 60), 90);
}

static void test_disk_usage_of_a_real_path_and_a_missing_one(void **state)
{
    fixture_t *f = *state;
    int pct = shmq_clean_disk_used_pct(f->dir);
    assert_true(pct >= 0 && pct <= 100);
    char missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/none/such", f->root);
    assert_int_equal(shmq_clean_disk_used_pct(missing), -ENOENT);
}

static void test_delete_when_lists_hours_separated_by_semicolons(void **state)
{
    (void)state;
    assert_true(shmq_clean_hour_listed("04", 4));
    assert_false(shmq_clean_hour_listed("04", 5));
    assert_true(shmq_clean_hour_listed("01;13", 1));
    assert_true(shmq_clean_hour_listed("01;13", 13));
    assert_false(shmq_clean_hour_listed("01;13", 3));
    assert_true(shmq_clean_hour_listed("4", 4));
    assert_true(shmq_clean_hour_listed("00", 0));
    assert_false(shmq_clean_hour_listed("", 0));
    assert_false(shmq_clean_hour_listed("x;;123", 12));
}

static void decide(const shmq_config_t *cfg, int cl, int cq, int hour, bool manual,
                   shmq_clean_decision_t *d)
{
    shmq_clean_decide(cfg, cl, cq, hour, manual, d);
}

static void test_nothing_runs_below_the_watermarks_outside_delete_when(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 75, 75, 3, false, &d); /* 75 % is not above 75 % */
    assert_false(d.run);
    assert_false(d.disk_full);
    assert_int_equal(d.reason, SHMQ_CLEAN_NONE);
}

static void test_delete_when_hour_deletes_expired_files_only(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 10, 10, 4, false, &d);
    assert_true(d.run && d.time_up);
    assert_false(d.force);
    assert_int_equal(d.reason, SHMQ_CLEAN_TIME);
}

static void test_above_max_used_ratio_deletes_expired_files_at_any_hour(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 76, 10, 3, false, &d);
    assert_true(d.run && d.space_to_delete);
    assert_false(d.force);
    assert_int_equal(d.reason, SHMQ_CLEAN_SPACE);
    decide(&cfg, 10, 76, 3, false, &d); /* the consumequeue path counts too */
    assert_true(d.run && d.space_to_delete);
    decide(&cfg, -1, 10, 3, false, &d); /* unknown usage: expired files go */
    assert_true(d.run && !d.force);
}

static void test_above_clean_forcibly_ratio_deletes_unexpired_files(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 86, 10, 3, false, &d);
    assert_true(d.run && d.clean_immediately && d.force);
    assert_false(d.disk_full);
    assert_int_equal(d.reason, SHMQ_CLEAN_FORCED);
    cfg.clean_file_forcibly_enable = false;
    decide(&cfg, 86, 10, 3, false, &d);
    assert_true(d.run && d.clean_immediately);
    assert_false(d.force);
    assert_int_equal(d.reason, SHMQ_CLEAN_SPACE);
}

static void test_above_warning_ratio_the_disk_is_full(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 91, 10, 3, false, &d);
    assert_true(d.disk_full && d.force);
    assert_false(d.logic_disk_full);
    decide(&cfg, 10, 91, 3, false, &d);
    assert_true(d.logic_disk_full && d.force);
    assert_false(d.disk_full);
}

static void test_manual_request_deletes_expired_files_at_any_hour(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    shmq_clean_decision_t d;
    decide(&cfg, 10, 10, 3, true, &d);
    assert_true(d.run);
    assert_false(d.force);
    assert_int_equal(d.reason, SHMQ_CLEAN_MANUAL);
    assert_string_equal(shmq_clean_reason_name(d.reason), "manual");
}

static void test_full_flag_sets_above_warning_and_clears_at_forcibly_ratio(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    const uint32_t CL = SHMQ_CLEAN_FULL_COMMITLOG, CQ = SHMQ_CLEAN_FULL_LOGICS;
    assert_int_equal(shmq_clean_full_flags(&cfg, 90, 10, 0), 0);
    assert_int_equal(shmq_clean_full_flags(&cfg, 91, 10, 0), CL);
    assert_int_equal(shmq_clean_full_flags(&cfg, 88, 10, CL), CL); /* between: stays */
    assert_int_equal(shmq_clean_full_flags(&cfg, 88, 10, 0), 0);   /* between: stays clear */
    assert_int_equal(shmq_clean_full_flags(&cfg, 85, 10, CL), 0);  /* at the level: cleared */
    assert_int_equal(shmq_clean_full_flags(&cfg, -1, 10, CL), 0);  /* unknown: cleared */
    assert_int_equal(shmq_clean_full_flags(&cfg, 10, 95, CL), CQ);
}

/* ---- CommitLog ------------------------------------------------------------------------ */

static void test_expired_segments_go_oldest_first_never_the_newest(void **state)
{
    fixture_t *f = *state;
    int64_t old = NOW_MS - 96 * HOUR_MS; /* touch -d "4 days ago" */
    for (int i = 0; i < 4; i++) {
        make_seg(f->dir, i * SEG, SEG, old);
    }
    shmq_clean_cl_args_t a = cl_args(f);
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 3);
    assert_int_equal(min, 3 * SEG);
    assert_false(seg_exists(f->dir, 0));
    assert_false(seg_exists(f->dir, 2 * SEG));
    assert_true(seg_exists(f->dir, 3 * SEG));
    /* Nothing more to do: the newest stays even though it is expired. */
    assert_int_equal(shmq_clean_commitlog(&a, &min), 0);
    assert_int_equal(min, 3 * SEG);
}

static void test_reserved_time_is_compared_with_file_mtime(void **state)
{
    fixture_t *f = *state;
    int64_t mtime = NOW_MS - 10 * HOUR_MS;
    make_seg(f->dir, 0, SEG, mtime);
    make_seg(f->dir, SEG, SEG, NOW_MS);
    shmq_clean_cl_args_t a = cl_args(f);
    int64_t min = -1;
    a.now_ms = mtime + a.reserved_ms - 1; /* one ms before it expires */
    assert_int_equal(shmq_clean_commitlog(&a, &min), 0);
    assert_int_equal(min, 0);
    a.now_ms = mtime + a.reserved_ms; /* now >= mtime + fileReservedTime */
    assert_int_equal(shmq_clean_commitlog(&a, &min), 1);
    assert_int_equal(min, SEG);
}

static void test_first_unexpired_segment_stops_the_run_no_holes(void **state)
{
    fixture_t *f = *state;
    int64_t old = NOW_MS - 96 * HOUR_MS;
    make_seg(f->dir, 0, SEG, old);
    make_seg(f->dir, SEG, SEG, NOW_MS); /* recent */
    make_seg(f->dir, 2 * SEG, SEG, old);
    make_seg(f->dir, 3 * SEG, SEG, NOW_MS);
    shmq_clean_cl_args_t a = cl_args(f);
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 1);
    assert_int_equal(min, SEG);
    assert_true(seg_exists(f->dir, 2 * SEG));
}

static void test_at_most_delete_file_batch_max_per_run(void **state)
{
    fixture_t *f = *state;
    int64_t old = NOW_MS - 96 * HOUR_MS;
    for (int i = 0; i < 6; i++) {
        make_seg(f->dir, i * SEG, SEG, old);
    }
    shmq_clean_cl_args_t a = cl_args(f);
    a.batch_max = 2;
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 2);
    assert_int_equal(min, 2 * SEG);
    assert_int_equal(shmq_clean_commitlog(&a, &min), 2);
    assert_int_equal(shmq_clean_commitlog(&a, &min), 1);
    assert_int_equal(min, 5 * SEG);
}

static void test_segments_not_below_the_bound_are_kept(void **state)
{
    fixture_t *f = *state;
    int64_t old = NOW_MS - 96 * HOUR_MS;
    for (int i = 0; i < 4; i++) {
        make_seg(f->dir, i * SEG, SEG, old);
    }
    shmq_clean_cl_args_t a = cl_args(f);
    a.bound = 2 * SEG + 10; /* dispatched/flushed inside the third segment */
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 2);
    assert_int_equal(min, 2 * SEG);
}

static void test_forced_cleaning_deletes_unexpired_segments_but_the_newest(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 3; i++) {
        make_seg(f->dir, i * SEG, SEG, NOW_MS);
    }
    shmq_clean_cl_args_t a = cl_args(f);
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 0);
    a.force = true;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 2);
    assert_int_equal(min, 2 * SEG);
    assert_true(seg_exists(f->dir, 2 * SEG));
}

static void test_a_file_of_another_size_is_left_alone(void **state)
{
    fixture_t *f = *state;
    int64_t old = NOW_MS - 96 * HOUR_MS;
    make_seg(f->dir, 0, SEG / 2, old);
    make_seg(f->dir, SEG, SEG, old);
    shmq_clean_cl_args_t a = cl_args(f);
    a.force = true;
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 0);
    assert_true(seg_exists(f->dir, 0));
    /* A missing directory is nothing to do. */
    snprintf(f->dir, sizeof(f->dir), "%s/nothing", f->root);
    a = cl_args(f);
    min = 7;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 0);
    assert_int_equal(min, 7);
}

/* ---- readers -------------------------------------------------------------------------- */

static void test_reader_keeps_reading_a_deleted_segment_then_drops_it(void **state)
{
    fixture_t *f = *state;
    shmq_mfq_t w;
    assert_int_equal(shmq_mfq_open(&w, f->dir, SEG, 0), 0);
    shmq_mapped_file_t *mf;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmq_mfq_get_or_create(&w, i * SEG, &mf), 0);
        memset(mf->base, 'a' + i, SEG);
    }
    shmq_mfq_t r;
    assert_int_equal(shmq_mfq_open(&r, f->dir, SEG, SHMQ_MF_READONLY), 0);
    const uint8_t *view = shmq_mfq_first(&r)->base; /* a consumer's view into segment 0 */

    shmq_clean_cl_args_t a = cl_args(f);
    a.force = true;
    a.batch_max = 1;
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 1);
    assert_false(seg_exists(f->dir, 0));
    /* The file is gone, its mapping is not: every byte still reads. */
    for (size_t i = 0; i < SEG; i++) {
        if (view[i] != 'a') {
            fail_msg("byte %zu of the deleted segment reads %d", i, view[i]);
        }
    }
    assert_int_equal(shmq_clean_drop_removed(&r), 1);
    assert_int_equal(r.count, 2);
    assert_int_equal(shmq_mfq_min_offset(&r), SEG);
    assert_int_equal(shmq_mfq_find(&r, 0), NULL);
    assert_int_equal(shmq_mfq_find(&r, SEG)->base[0], 'b');
    /* The writable queue (the writer's) drops it too, without touching the others. */
    assert_int_equal(shmq_clean_drop_removed(&w), 1);
    assert_int_equal(shmq_mfq_min_offset(&w), SEG);
    assert_int_equal(shmq_mfq_find(&w, 2 * SEG)->base[0], 'c');
    assert_int_equal(shmq_clean_drop_removed(&w), 0);
    shmq_mfq_close(&r);
    shmq_mfq_close(&w);
}

static void test_changed_reports_each_new_deletion_once(void **state)
{
    (void)state;
    size_t size = (sizeof(shmq_ctl_block_t) + 63) / 64 * 64;
    shmq_ctl_block_t *blk = aligned_alloc(64, size);
    assert_non_null(blk);
    memset(blk, 0, size);
    shmq_ctl_t ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.blk = blk;
    uint64_t seen = 0;
    assert_false(shmq_clean_changed(&ctl, &seen));
    atomic_fetch_add(&blk->cleaner.deleted_seq, 1);
    assert_true(shmq_clean_changed(&ctl, &seen));
    assert_false(shmq_clean_changed(&ctl, &seen));

    shmq_clean_last_t in = {.reason = SHMQ_CLEAN_FORCED,
                            .time_ms = NOW_MS,
                            .commitlog = 3,
                            .consumequeue = 7,
                            .index = 1,
                            .min = 3 * SEG},
                      out;
    shmq_clean_last_publish(&blk->cleaner, &in);
    int rc = shmq_clean_last_read(&blk->cleaner, &out);
    uint32_t seq = atomic_load(&blk->cleaner.last_seq);
    free(blk);
    assert_int_equal(rc, 0);
    assert_int_equal(seq, 2); /* one change: odd while writing, even after */
    assert_int_equal(out.reason, in.reason);
    assert_int_equal(out.time_ms, in.time_ms);
    assert_int_equal(out.commitlog, in.commitlog);
    assert_int_equal(out.consumequeue, in.consumequeue);
    assert_int_equal(out.index, in.index);
    assert_int_equal(out.min, in.min);
}

/* ---- ConsumeQueue ---------------------------------------------------------------------- */

#define CQ_FS   100 /* 5 units per file */
#define CQTOPIC "TopicC"

/* Units i in [0, n): phys i*100, size 100. */
static void build_queue(const fixture_t *f, shmq_cq_t *cq, int32_t qid, int64_t n)
{
    assert_int_equal(shmq_cq_open(cq, f->root, CQTOPIC, qid, CQ_FS, 0), 0);
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(shmq_cq_append(cq, i, i * 100, 100, 0), 0);
    }
}

static bool cq_file_exists(const fixture_t *f, int32_t qid, int64_t off)
{
    char p[PATH_MAX], name[21];
    shmq_segment_name(off, name);
    snprintf(p, sizeof(p), "%s/consumequeue/%s/%d/%s", f->root, CQTOPIC, qid, name);
    return access(p, F_OK) == 0;
}

static void test_consume_queue_files_wholly_below_the_minimum_are_deleted(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    build_queue(f, &cq, 0, 12); /* files at 0, 100, 200 bytes */
    shmq_clean_cq_result_t res;
    /* CommitLog minimum 700: file 0 (units 0..4, last phys 400) goes; file 1 (last 900) stays. */
    assert_int_equal(shmq_clean_consume_queue(f->root, CQTOPIC, 0, CQ_FS, 700, -1, &res), 0);
    assert_int_equal(res.deleted, 1);
    assert_int_equal(res.min_offset, 7); /* first unit pointing at or above 700 */
    assert_false(cq_file_exists(f, 0, 0));
    assert_true(cq_file_exists(f, 0, CQ_FS));
    /* The dispatcher's own mapping still reads the deleted file's units ... */
    shmq_cq_unit_t u;
    assert_int_equal(shmq_cq_read(&cq, 2, &u), 0);
    assert_int_equal(u.phys_offset, 200);
    /* ... until it drops it; then its minimum starts at its first file. */
    assert_int_equal(shmq_clean_cq_drop_removed(&cq), 1);
    assert_int_equal(shmq_cq_min_offset(&cq), 5);
    assert_int_equal(shmq_cq_append(&cq, 12, 1200, 100, 0), 0); /* appends go on */
    shmq_cq_close(&cq);
}

static void test_last_consume_queue_file_is_never_deleted(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    build_queue(f, &cq, 1, 12);
    shmq_cq_close(&cq);
    shmq_clean_cq_result_t res;
    assert_int_equal(shmq_clean_consume_queue(f->root, CQTOPIC, 1, CQ_FS, 100000, -1, &res), 0);
    assert_int_equal(res.deleted, 2);
    assert_int_equal(res.min_offset, 12); /* every record gone: the minimum is the end */
    assert_true(cq_file_exists(f, 1, 2 * CQ_FS));
}

static void test_consume_queue_minimum_stays_within_the_published_max(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    build_queue(f, &cq, 2, 12);
    shmq_cq_close(&cq);
    shmq_clean_cq_result_t res;
    /* Only 8 units published: units 8..11 are not looked at. */
    assert_int_equal(shmq_clean_consume_queue(f->root, CQTOPIC, 2, CQ_FS, 100000, 8, &res), 0);
    assert_int_equal(res.min_offset, 8);
    assert_int_equal(res.deleted, 2);
    /* A minimum below every unit deletes nothing and keeps the minimum at 0. */
    build_queue(f, &cq, 3, 7);
    shmq_cq_close(&cq);
    assert_int_equal(shmq_clean_consume_queue(f->root, CQTOPIC, 3, CQ_FS, 0, -1, &res), 0);
    assert_int_equal(res.deleted, 0);
    assert_int_equal(res.min_offset, 0);
}

static int count_queue(const char *topic, int32_t qid, void *arg)
{
    int *n = arg;
    assert_true(strcmp(topic, "TopicA") == 0 || strcmp(topic, "%RETRY%G") == 0);
    assert_true(qid == 0 || qid == 1 || qid == 15);
    (*n)++;
    return 0;
}

static void test_queue_directories_are_walked_and_strays_skipped(void **state)
{
    fixture_t *f = *state;
    char p[PATH_MAX + 64];
    const char *dirs[] = {"consumequeue",
                          "consumequeue/TopicA",
                          "consumequeue/TopicA/0",
                          "consumequeue/TopicA/1",
                          "consumequeue/TopicA/x1",
                          "consumequeue/%RETRY%G",
                          "consumequeue/%RETRY%G/15"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->root, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof(p), "%s/consumequeue/TopicA/7", f->root); /* a file, not a queue */
    close(open(p, O_CREAT | O_WRONLY, 0644));
    int n = 0;
    assert_int_equal(shmq_clean_foreach_queue_dir(f->root, count_queue, &n), 0);
    assert_int_equal(n, 3);
}

/* ---- IndexFile ---------------------------------------------------------------------------- */

static void make_index(const fixture_t *f, const char *name, int64_t end_phys, size_t len)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/index", f->root);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/index/%s", f->root, name);
    uint8_t hdr[40];
    memset(hdr, 0, sizeof(hdr));
    for (int i = 0; i < 8; i++) {
        hdr[24 + i] = (uint8_t)((uint64_t)end_phys >> (56 - 8 * i)); /* big-endian */
    }
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, hdr, len), (ssize_t)len);
    close(fd);
}

static bool index_exists(const fixture_t *f, const char *name)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/index/%s", f->root, name);
    return access(p, F_OK) == 0;
}

static void test_index_files_below_the_minimum_go_but_never_the_last(void **state)
{
    fixture_t *f = *state;
    make_index(f, "20250101000000000", 100, 40);
    make_index(f, "20250102000000000", 200, 40);
    make_index(f, "20250103000000000", 300, 40);
    make_index(f, "not-an-index", 0, 40);
    assert_int_equal(shmq_clean_index_files(f->root, 150), 1);
    assert_false(index_exists(f, "20250101000000000"));
    assert_true(index_exists(f, "20250102000000000"));
    assert_int_equal(shmq_clean_index_files(f->root, 200), 0); /* endPhyOffset < min only */
    assert_int_equal(shmq_clean_index_files(f->root, 1000000), 1);
    assert_true(index_exists(f, "20250103000000000"));
    assert_true(index_exists(f, "not-an-index"));
}

static void test_an_unreadable_index_header_stops_index_cleaning(void **state)
{
    fixture_t *f = *state;
    make_index(f, "20250101000000000", 100, 12); /* short: no endPhyOffset */
    make_index(f, "20250102000000000", 200, 40);
    make_index(f, "20250103000000000", 300, 40);
    assert_int_equal(shmq_clean_index_files(f->root, 1000), 0);
    assert_true(index_exists(f, "20250102000000000"));
}

/* ---- a full filesystem ----------------------------------------------------------------------- */

static uint8_t body[1000];

static shmq_msg_in_t message(void)
{
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "TopicFull";
    m.topic_len = strlen(m.topic);
    m.born_ts = NOW_MS;
    m.body = body;
    m.body_len = sizeof(body);
    return m;
}

/*
 * A CommitLog on a 3 MiB tmpfs with 1 MiB segments (pre-faulted, prepared
 * ahead): appends run until a segment cannot be allocated, which is
 * -ENOSPC and never a SIGBUS; every record appended reads back; once the
 * oldest segment is deleted and unmapped, appends resume.
 */
static void test_full_filesystem_is_enospc_and_appends_resume_after_cleaning(void **state)
{
    fixture_t *f = *state;
    char mnt[PATH_MAX + 8];
    snprintf(mnt, sizeof(mnt), "%s/mnt", f->root);
    assert_int_equal(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=3m") != 0) {
        print_message("# SKIP: cannot mount a tmpfs at %s: %s\n", mnt, strerror(errno));
        skip();
    }
    const size_t seg = 1 << 20;
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/commitlog", mnt);
    shmq_commitlog_t cl;
    int rc = shmq_commitlog_open(&cl, dir, seg, SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
    assert_int_equal(rc, 0);
    shmq_commitlog_set_positions(&cl, 0, 0);
    shmq_msg_in_t m = message();
    shmq_append_result_t res;
    int64_t appended = 0, last_end = 0;
    for (int i = 0; i < 10000; i++) {
        rc = shmq_commitlog_append(&cl, &m, i, NOW_MS, &res);
        if (rc < 0) {
            break;
        }
        appended++;
        last_end = res.phys_offset + res.size;
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(appended > 1000); /* two segments and more were written */
    assert_int_equal(shmq_commitlog_append(&cl, &m, appended, NOW_MS, &res), -ENOSPC);
    /* Every record appended is intact. */
    int64_t pos = 0, n = 0;
    shmq_record_t r;
    while (shmq_commitlog_next(&cl, &pos, last_end, SHMQ_DECODE_CHECK_ALL, &r) > 0) {
        n++;
    }
    assert_int_equal(n, appended);
    /* The cleaner deletes the oldest segment; the writer lets go of it; space is back. */
    shmq_clean_cl_args_t a = {.dir = dir,
                              .seg_size = seg,
                              .now_ms = NOW_MS,
                              .reserved_ms = 72 * HOUR_MS,
                              .force = true,
                              .bound = last_end,
                              .batch_max = 1};
    int64_t min = -1;
    assert_int_equal(shmq_clean_commitlog(&a, &min), 1);
    assert_int_equal(min, (int64_t)seg);
    assert_int_equal(shmq_clean_drop_removed(&cl.q), 1);
    assert_int_equal(shmq_commitlog_append(&cl, &m, appended, NOW_MS, &res), 0);
    assert_true(res.phys_offset >= 3 * (int64_t)seg);
    shmq_commitlog_close(&cl);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ratio_is_used_over_used_plus_available_rounded_up),
        T(test_disk_usage_of_a_real_path_and_a_missing_one),
        T(test_delete_when_lists_hours_separated_by_semicolons),
        T(test_nothing_runs_below_the_watermarks_outside_delete_when),
        T(test_delete_when_hour_deletes_expired_files_only),
        T(test_above_max_used_ratio_deletes_expired_files_at_any_hour),
        T(test_above_clean_forcibly_ratio_deletes_unexpired_files),
        T(test_above_warning_ratio_the_disk_is_full),
        T(test_manual_request_deletes_expired_files_at_any_hour),
        T(test_full_flag_sets_above_warning_and_clears_at_forcibly_ratio),
        T(test_expired_segments_go_oldest_first_never_the_newest),
        T(test_reserved_time_is_compared_with_file_mtime),
        T(test_first_unexpired_segment_stops_the_run_no_holes),
        T(test_at_most_delete_file_batch_max_per_run),
        T(test_segments_not_below_the_bound_are_kept),
        T(test_forced_cleaning_deletes_unexpired_segments_but_the_newest),
        T(test_a_file_of_another_size_is_left_alone),
        T(test_reader_keeps_reading_a_deleted_segment_then_drops_it),
        T(test_changed_reports_each_new_deletion_once),
        T(test_consume_queue_files_wholly_below_the_minimum_are_deleted),
        T(test_last_consume_queue_file_is_never_deleted),
        T(test_consume_queue_minimum_stays_within_the_published_max),
        T(test_queue_directories_are_walked_and_strays_skipped),
        T(test_index_files_below_the_minimum_go_but_never_the_last),
        T(test_an_unreadable_index_header_stops_index_cleaning),
        T(test_full_filesystem_is_enospc_and_appends_resume_after_cleaning),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
