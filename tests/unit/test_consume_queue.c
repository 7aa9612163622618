/*
 * Unit tests of the ConsumeQueue (libshm/format/consume_queue.c): the byte layout of
 * units, appending across files, pre-fill, recovery of damaged tails, dirty
 * truncation, offset by time (RocketMQ 5 LOWER/UPPER rules against a real
 * CommitLog), minimum correction, flushing and read-only opens.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "page_cache.h"
#include "tmp_tree.h"
#include "format/commitlog.h"
#include "format/consume_queue.h"
#include "shmq/errors.h"

#define UNIT    SHMQ_CQ_UNIT_SIZE
#define FS      (UNIT * 50) /* 1000-byte files of 50 units */
#define TOPIC   "TopicA"
#define BLANK32 0x7FFFFFFF

typedef struct fixture {
    char root[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "/tmp/shmq-cq-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tmp_tree_remove(f->root);
    free(f);
    return 0;
}

/* Path of the queue file starting at byte offset off. */
static void seg_path(const fixture_t *f, int64_t off, char *out, size_t cap)
{
    char name[21];
    shmq_segment_name(off, name);
    snprintf(out, cap, "%s/consumequeue/%s/0/%s", f->root, TOPIC, name);
}

static bool seg_exists(const fixture_t *f, int64_t off)
{
    char p[PATH_MAX];
    seg_path(f, off, p, sizeof p);
    return access(p, F_OK) == 0;
}

static void seg_pread(const fixture_t *f, int64_t seg, size_t rel, void *buf, size_t len)
{
    char p[PATH_MAX];
    seg_path(f, seg, p, sizeof p);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)rel), (ssize_t)len);
    close(fd);
}

static void seg_pwrite(const fixture_t *f, int64_t seg, size_t rel, const void *buf, size_t len)
{
    char p[PATH_MAX];
    seg_path(f, seg, p, sizeof p);
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)rel), (ssize_t)len);
    close(fd);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

static void open_cq(const fixture_t *f, shmq_cq_t *cq, size_t fs, unsigned flags)
{
    int rc = shmq_cq_open(cq, f->root, TOPIC, 0, fs, flags);
    if (rc != 0)
        fail_msg("shmq_cq_open: %s (%s)", shmq_strerror(rc), shmq_error_detail());
}

/* Units i in [from, to): phys i*100, size 100, tags i. */
static void append_range(shmq_cq_t *cq, int64_t from, int64_t to)
{
    for (int64_t i = from; i < to; i++) {
        int rc = shmq_cq_append(cq, i, i * 100, 100, i);
        if (rc != 0)
            fail_msg("append %" PRId64 ": %s (%s)", i, shmq_strerror(rc), shmq_error_detail());
    }
}

static void assert_unit(const shmq_cq_t *cq, int64_t qo, int64_t phys, int32_t size, int64_t tags)
{
    shmq_cq_unit_t u;
    assert_int_equal(shmq_cq_read(cq, qo, &u), 0);
    assert_int_equal(u.phys_offset, phys);
    assert_int_equal(u.size, size);
    assert_int_equal(u.tags_code, tags);
}

/* ---- layout and naming --------------------------------------------------- */

static void test_file_size_rounds_up_to_unit_multiple(void **state)
{
    (void)state;
    assert_int_equal(shmq_cq_file_size(6000000), 6000000);
    assert_int_equal(shmq_cq_file_size(6000001), 6000020);
    assert_int_equal(shmq_cq_file_size(1), 20);
    assert_int_equal(shmq_cq_file_size(39), 40);
}

static void test_open_rejects_topics_unusable_as_directory(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    char longname[300];

    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(shmq_cq_open(&cq, f->root, "a/b", 0, FS, 0), SHMQ_E_TOPIC);
    assert_int_equal(shmq_cq_open(&cq, f->root, ".", 0, FS, 0), SHMQ_E_TOPIC);
    assert_int_equal(shmq_cq_open(&cq, f->root, "..", 0, FS, 0), SHMQ_E_TOPIC);
    assert_int_equal(shmq_cq_open(&cq, f->root, "", 0, FS, 0), SHMQ_E_TOPIC);
    assert_int_equal(shmq_cq_open(&cq, f->root, longname, 0, FS, 0), SHMQ_E_TOPIC);
    assert_int_equal(shmq_cq_open(&cq, f->root, "T", -1, FS, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_open(&cq, f->root, "T", 0, 1001, 0), SHMQ_E_ARG);

    /* A retry topic with '%' is a plain directory name. */
    assert_int_equal(shmq_cq_open(&cq, f->root, "%RETRY%group", 3, FS, 0), 0);
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/consumequeue/%%RETRY%%group/3", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    shmq_cq_close(&cq);
}

static void test_unit_is_20_big_endian_bytes(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t b[2 * UNIT];

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 0, 0x0102030405060708LL, 0x11223344, -2), 0);
    assert_int_equal(shmq_cq_append(&cq, 1, 0x0102030425060708LL, 7, 0x7A), 0);
    shmq_cq_close(&cq);

    seg_pread(f, 0, 0, b, sizeof b);
    static const uint8_t want[2 * UNIT] = {
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* phys */
        0x11, 0x22, 0x33, 0x44,                         /* size */
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, /* tagsCode -2 */
        0x01, 0x02, 0x03, 0x04, 0x25, 0x06, 0x07, 0x08, 0x00, 0x00,
        0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7A,
    };
    assert_memory_equal(b, want, sizeof want);

    struct stat st;
    char p[PATH_MAX];
    seg_path(f, 0, p, sizeof p);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, FS);
}

static void test_append_and_read_roll_over_files(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    append_range(&cq, 0, 175);
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 175);
    assert_int_equal(cq.max_phys_offset, 174 * 100 + 100);
    assert_int_equal(cq.q.count, 4);
    for (int64_t i = 0; i < 175; i++)
        assert_unit(&cq, i, i * 100, 100, i);

    /* Units never span files: unit 50 is at byte 0 of the second file. */
    uint8_t b[UNIT];
    seg_pread(f, FS, 0, b, UNIT);
    assert_int_equal(b[7], (50 * 100) & 0xFF);
    assert_int_equal(b[6], (50 * 100) >> 8);
    shmq_cq_close(&cq);
}

static void test_files_are_named_by_byte_offset(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    char p[PATH_MAX];

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 101);
    snprintf(p, sizeof p, "%s/consumequeue/%s/0/00000000000000001000", f->root, TOPIC);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/consumequeue/%s/0/00000000000000002000", f->root, TOPIC);
    assert_int_equal(access(p, F_OK), 0);
    assert_false(seg_exists(f, 3 * FS));
    shmq_cq_close(&cq);
}

/* ---- append rules -------------------------------------------------------- */

static void test_reappend_is_idempotent(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 10);
    /* Same units again (phys + size <= max_phys_offset): skipped. */
    for (int64_t i = 0; i < 10; i++)
        assert_int_equal(shmq_cq_append(&cq, i, i * 100, 100, 999), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 10);
    assert_unit(&cq, 3, 300, 100, 3);
    /* A queue offset below the end with a new phys is skipped too. */
    assert_int_equal(shmq_cq_append(&cq, 4, 5000, 10, 1), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 10);
    assert_unit(&cq, 4, 400, 100, 4);
    assert_int_equal(cq.max_phys_offset, 1000);
    /* The next one goes in. */
    assert_int_equal(shmq_cq_append(&cq, 10, 1000, 100, 10), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 11);
    shmq_cq_close(&cq);

    /* After reopening, max_phys_offset still makes re-dispatch idempotent. */
    open_cq(f, &cq, FS, 0);
    assert_int_equal(cq.max_phys_offset, 1100);
    assert_int_equal(shmq_cq_append(&cq, 10, 1000, 100, 10), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 11);
    shmq_cq_close(&cq);
}

static void test_gap_is_rejected(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 2);
    shmq_error_clear();
    assert_int_equal(shmq_cq_append(&cq, 3, 300, 100, 3), SHMQ_E_RANGE);
    assert_non_null(strstr(shmq_error_detail(), "gap"));
    assert_int_equal(shmq_cq_max_offset(&cq), 2);
    assert_int_equal(cq.max_phys_offset, 200);
    assert_int_equal(shmq_cq_append(&cq, 2, 200, 100, 2), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 3);
    shmq_cq_close(&cq);
}

static void test_bad_units_are_rejected(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, -1, 0, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_append(&cq, 0, -5, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_append(&cq, 0, 0, 0, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_append(&cq, 0, INT64_MAX - 10, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    shmq_cq_close(&cq);
}

/*
 * shmq_cq_append() (its inline usual unit, else the rest) against shmq_cq_append_rest() alone
 * (the checks and the lookup for every unit): the same sequence of appends (mostly the next
 * unit, across file ends; repeats, gaps, bad arguments, values at the limits, units already
 * built) on two queues, with cuts now and then that unmap the segment of the last unit (a
 * kept tail would be stale); every result, position and unit byte equal.  Each check of the
 * inline part has a case here where leaving it out would write a unit the rest does not.
 */
static void test_inline_append_equals_append(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t a, b;
    assert_int_equal(shmq_cq_open(&a, f->root, TOPIC, 1, FS, 0), 0);
    assert_int_equal(shmq_cq_open(&b, f->root, TOPIC, 2, FS, 0), 0);
    uint32_t seed = 12345;
    int64_t next = 7, phys = 1000;
    int cuts = 0, built = 0, boundaries = 0;
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 16) % 40;
        int64_t qo = next, po = phys, tags = (int64_t)seed * 7919;
        int32_t size = 100 + (int32_t)(r % 7);
        switch (r) {
        case 0:
            qo = next - 1;
            break; /* a repeat: skipped */
        case 1:
            qo = next + 1;
            break; /* a gap */
        case 2:
            qo = -1;
            break; /* bad arguments */
        case 3:
            po = -5;
            break;
        case 4:
            size = 0;
            break;
        case 5:
            size = -1;
            break;
        case 6:
            po = INT64_MAX - 10;
            break;
        case 7:
            qo = INT64_MAX / UNIT;
            break;
        case 8:
            po = phys - 200;
            break; /* below max_phys: already built */
        case 9:
            qo = INT64_MAX;
            po = INT64_MAX;
            break;
        case 10:
            po = phys - size;
            break; /* ends exactly at max_phys: already built */
        case 12:
            size = 0;
            po = phys + 1000;
            break; /* a size of 0 past max_phys */
        case 13:
            size = -100;
            po = phys + 1000;
            break;
        case 14:
            po = -1;
            size = 1 << 30;
            break; /* negative, though phys + size is past max_phys */
        case 15:
            qo = next + ((int64_t)1 << 62);
            break; /* qo * 20 would wrap to the next unit's place */
        case 11:
            if (i % 3 == 0 && next > 60) {
                /* Cut into an earlier file: the last unit's segment is unmapped. */
                int64_t keep = next - 1 - (int64_t)(seed % 40);
                if (i % 2 == 0) {
                    /* To the start of the last unit's file: that file goes whole, and the next
                     * unit's place is where the unmapped segment began. */
                    keep = (next - 1) / (int64_t)(FS / UNIT) * (int64_t)(FS / UNIT);
                }
                shmq_cq_unit_t u;
                assert_int_equal(shmq_cq_read(&b, keep - 1, &u), 0);
                int64_t cut = u.phys_offset + u.size;
                uint64_t before = a.q.unmapped;
                assert_int_equal(shmq_cq_truncate_dirty(&a, cut), 0);
                assert_int_equal(shmq_cq_truncate_dirty(&b, cut), 0);
                assert_int_equal(a.write_pos, keep * UNIT);
                cuts += a.q.unmapped != before;
                next = keep;
                phys = cut;
                continue;
            }
            break;
        default:
            break;
        }
        bool at_boundary = qo == next && (next * UNIT) % (int64_t)FS == 0;
        int ra = shmq_cq_append(&a, qo, po, size, tags);
        int rb = shmq_cq_append_rest(&b, qo, po, size, tags);
        assert_int_equal(ra, rb);
        assert_int_equal(a.write_pos, b.write_pos);
        assert_int_equal(a.max_phys_offset, b.max_phys_offset);
        assert_int_equal(a.min_logic_offset, b.min_logic_offset);
        built += (r == 8 || r == 10) && rb == 0 && b.write_pos == next * UNIT;
        boundaries += at_boundary && ra == 0 && a.write_pos > next * UNIT;
        if (b.write_pos > (next)*UNIT) {
            next = b.write_pos / UNIT;
            phys = b.max_phys_offset;
        }
    }
    assert_true(cuts > 3);
    assert_true(built > 50);
    assert_true(boundaries > 10);
    assert_true(shmq_cq_max_offset(&b) > 1000);
    assert_int_equal(shmq_cq_min_offset(&a), shmq_cq_min_offset(&b));
    for (int64_t q = shmq_cq_min_offset(&b); q < shmq_cq_max_offset(&b); q++) {
        shmq_cq_unit_t ua, ub;
        assert_int_equal(shmq_cq_read(&a, q, &ua), 0);
        assert_int_equal(shmq_cq_read(&b, q, &ub), 0);
        /* Field by field: the struct's padding after size is whatever the stack held. */
        assert_int_equal(ua.phys_offset, ub.phys_offset);
        assert_int_equal(ua.size, ub.size);
        assert_int_equal(ua.tags_code, ub.tags_code);
    }
    shmq_cq_close(&a);
    shmq_cq_close(&b);
    /* Read-only: refused the same way, nothing written. */
    assert_int_equal(shmq_cq_open(&a, f->root, TOPIC, 1, FS, SHMQ_MF_READONLY), 0);
    int64_t m = shmq_cq_max_offset(&a);
    a.tail = shmq_mfq_find(&a.q, a.write_pos); /* as a writer would have it */
    a.tail_unmapped = a.q.unmapped;
    assert_int_equal(shmq_cq_append(&a, m, 1 << 30, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_append_rest(&a, m, 1 << 30, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_max_offset(&a), m);
    shmq_cq_close(&a);
}

static void test_first_unit_in_first_file_prefills_blank_units(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    shmq_cq_unit_t u;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 30, 7000, 100, 5), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 30);
    assert_int_equal(shmq_cq_max_offset(&cq), 31);
    assert_int_equal(cq.max_phys_offset, 7100);
    assert_int_equal(shmq_cq_read(&cq, 29, &u), SHMQ_E_RANGE);
    assert_unit(&cq, 30, 7000, 100, 5);
    shmq_cq_close(&cq);

    /* Blank units (0, 0x7FFFFFFF, 0) on disk before unit 30. */
    uint8_t b[30 * UNIT];
    seg_pread(f, 0, 0, b, sizeof b);
    for (int i = 0; i < 30; i++) {
        static const uint8_t blank[UNIT] = {0,    0,    0, 0, 0, 0, 0, 0, 0x7F, 0xFF,
                                            0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0,    0};
        assert_memory_equal(b + i * UNIT, blank, UNIT);
    }

    /* Recovery counts the blanks as valid but starts the minimum after them. */
    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 30);
    assert_int_equal(shmq_cq_max_offset(&cq), 31);
    assert_int_equal(cq.max_phys_offset, 7100);
    assert_int_equal(shmq_cq_append(&cq, 31, 7100, 50, 0), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 32);
    shmq_cq_close(&cq);
}

static void test_first_unit_in_later_file_creates_only_that_file(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 120, 9000, 100, 0), 0);
    assert_false(seg_exists(f, 0));
    assert_false(seg_exists(f, FS));
    assert_true(seg_exists(f, 2 * FS));
    assert_int_equal(shmq_cq_min_offset(&cq), 120);
    assert_int_equal(shmq_cq_max_offset(&cq), 121);
    append_range(&cq, 121, 160); /* phys 12100.. is above 9100 */
    assert_int_equal(shmq_cq_max_offset(&cq), 160);
    shmq_cq_close(&cq);

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 120);
    assert_int_equal(shmq_cq_max_offset(&cq), 160);
    assert_unit(&cq, 120, 9000, 100, 0);
    assert_unit(&cq, 159, 15900, 100, 159);
    shmq_cq_close(&cq);
}

static void test_interrupted_prefill_is_replaced(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 30, 7000, 100, 5), 0);
    shmq_cq_close(&cq);
    /* Crash between the pre-fill and the unit: only blank units remain. */
    uint8_t zero[UNIT] = {0};
    seg_pwrite(f, 0, 30 * UNIT, zero, UNIT);

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 30);
    assert_int_equal(shmq_cq_max_offset(&cq), 30);
    assert_int_equal(cq.max_phys_offset, 0);
    /* Re-dispatch of an older record: the blank-only queue starts over at it. */
    assert_int_equal(shmq_cq_append(&cq, 25, 6500, 100, 0), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 25);
    assert_int_equal(shmq_cq_max_offset(&cq), 26);
    assert_unit(&cq, 25, 6500, 100, 0);
    shmq_cq_close(&cq);
}

static void test_read_outside_bounds_fails(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    shmq_cq_unit_t u;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_read(&cq, 0, &u), SHMQ_E_RANGE);
    append_range(&cq, 0, 5);
    assert_int_equal(shmq_cq_read(&cq, -1, &u), SHMQ_E_RANGE);
    assert_int_equal(shmq_cq_read(&cq, 5, &u), SHMQ_E_RANGE);
    assert_int_equal(shmq_cq_read(&cq, INT64_MAX, &u), SHMQ_E_RANGE);
    assert_int_equal(shmq_cq_read(&cq, 4, &u), 0);
    shmq_cq_close(&cq);
}

/* ---- recovery ------------------------------------------------------------ */

static void test_recovery_stops_at_zeroed_tail(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t zero[10 * UNIT] = {0};

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 120); /* files 0, 1000, 2000 (units 100..119) */
    shmq_cq_close(&cq);
    seg_pwrite(f, 2 * FS, 10 * UNIT, zero, sizeof zero); /* units 110..119 lost */

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 110);
    assert_int_equal(cq.max_phys_offset, 109 * 100 + 100);
    assert_int_equal(cq.write_pos, 110 * UNIT);
    assert_unit(&cq, 109, 10900, 100, 109);
    append_range(&cq, 110, 115);
    assert_int_equal(shmq_cq_max_offset(&cq), 115);
    shmq_cq_close(&cq);
}

static void test_recovery_zeroes_units_after_an_invalid_one(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t b[FS];

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 40);
    shmq_cq_close(&cq);
    /* Unit 30 torn (size 0); units 31..39 and stray bytes near the end stay. */
    uint8_t torn[UNIT] = {0, 0, 0, 0, 0, 0, 0x0B, 0xB8, 0, 0, 0, 0};
    seg_pwrite(f, 0, 30 * UNIT, torn, UNIT);
    uint8_t junk[3] = {0xAA, 0xBB, 0xCC};
    seg_pwrite(f, 0, FS - 3, junk, 3);

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 30);
    assert_int_equal(cq.max_phys_offset, 3000);
    shmq_cq_close(&cq);
    seg_pread(f, 0, 0, b, FS);
    assert_true(all_zero(b + 30 * UNIT, FS - 30 * UNIT));
    assert_false(all_zero(b + 29 * UNIT, UNIT));
}

static void test_recovery_after_last_file_deleted(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    char p[PATH_MAX];

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 120);
    shmq_cq_close(&cq);
    seg_path(f, 2 * FS, p, sizeof p);
    assert_int_equal(unlink(p), 0);

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 100);
    assert_int_equal(cq.max_phys_offset, 10000);
    /* Writing continues in a new third file. */
    append_range(&cq, 100, 101);
    assert_true(seg_exists(f, 2 * FS));
    shmq_cq_close(&cq);
}

static void test_recovery_removes_file_whose_first_unit_is_invalid(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t zero[UNIT] = {0};

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 120);
    shmq_cq_close(&cq);
    seg_pwrite(f, 2 * FS, 0, zero, UNIT); /* unit 100 */

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 100);
    assert_int_equal(cq.q.count, 2);
    assert_false(seg_exists(f, 2 * FS));
    shmq_cq_close(&cq);
}

static void test_recovery_without_valid_unit_is_empty_at_zero(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq, ro;
    uint8_t zero[UNIT] = {0};

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 120, 9000, 100, 0), 0); /* file 2000 only */
    shmq_cq_close(&cq);
    seg_pwrite(f, 2 * FS, 0, zero, UNIT); /* the first blank unit */

    open_cq(f, &ro, FS, SHMQ_MF_READONLY);
    assert_int_equal(shmq_cq_min_offset(&ro), 0);
    assert_int_equal(shmq_cq_max_offset(&ro), 0);
    shmq_cq_close(&ro);
    assert_true(seg_exists(f, 2 * FS));

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    assert_int_equal(cq.max_phys_offset, 0);
    assert_int_equal(cq.q.count, 0);
    assert_false(seg_exists(f, 2 * FS));
    assert_int_equal(shmq_cq_append(&cq, 0, 0, 100, 0), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 1);
    shmq_cq_close(&cq);
}

static void test_recovery_scans_from_third_from_last_file(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t zero[UNIT] = {0};

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 220); /* 5 files: 0..4000 */
    shmq_cq_close(&cq);
    /* Damage in the second file is before the scan start (third-from-last = 2000). */
    seg_pwrite(f, FS, 5 * UNIT, zero, UNIT); /* unit 55 */
    /* Damage in the third-from-last file ends the queue there. */
    seg_pwrite(f, 2 * FS, 10 * UNIT, zero, UNIT); /* unit 110 */

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 110);
    assert_int_equal(cq.q.count, 3);
    assert_false(seg_exists(f, 3 * FS));
    assert_false(seg_exists(f, 4 * FS));
    shmq_cq_close(&cq);
}

/* ---- truncate_dirty ------------------------------------------------------ */

static void test_truncate_dirty_keeps_units_whose_records_end_at_or_below(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    uint8_t b[FS];

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 175); /* unit i = record [i*100, i*100+100) */

    /* Nothing points past the end: no change. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 17500), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 175);

    /* Cut exactly at a record boundary: units 0..159 keep. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 16000), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 160);
    assert_int_equal(cq.max_phys_offset, 16000);

    /* Cut inside record 149 (14900..15000): unit 149 goes too. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 14950), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 149);
    assert_int_equal(cq.max_phys_offset, 14900);
    assert_false(seg_exists(f, 3 * FS)); /* its first unit (150) was dirty */
    assert_true(seg_exists(f, 2 * FS));
    shmq_cq_close(&cq);

    seg_pread(f, 2 * FS, 0, b, FS);
    assert_false(all_zero(b + 48 * UNIT, UNIT));
    assert_true(all_zero(b + 49 * UNIT, FS - 49 * UNIT));

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 149);
    assert_int_equal(cq.max_phys_offset, 14900);
    append_range(&cq, 149, 151);
    assert_unit(&cq, 150, 15000, 100, 150);
    shmq_cq_close(&cq);
}

static void test_truncate_dirty_at_file_boundary_and_to_zero(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 120);
    /* Record 100 is the first unit of the third file: that file goes whole. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 10050), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 100);
    assert_int_equal(cq.q.count, 2);
    assert_false(seg_exists(f, 2 * FS));
    append_range(&cq, 100, 101);
    assert_true(seg_exists(f, 2 * FS));

    /* Everything is dirty: all files go, the queue restarts at 0. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 0), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(cq.max_phys_offset, 0);
    assert_int_equal(cq.q.count, 0);
    assert_false(seg_exists(f, 0));
    append_range(&cq, 0, 3);
    assert_unit(&cq, 2, 200, 100, 2);
    shmq_cq_close(&cq);
}

static void test_truncate_dirty_keeps_blank_prefill(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 20, 500, 100, 0), 0);
    assert_int_equal(shmq_cq_append(&cq, 21, 600, 100, 0), 0);
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 650), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 20);
    assert_int_equal(shmq_cq_max_offset(&cq), 21);
    assert_int_equal(cq.max_phys_offset, 600);
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 500), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 20);
    assert_int_equal(cq.max_phys_offset, 0);
    assert_true(seg_exists(f, 0));
    /* An empty CommitLog: the blank units go too and the queue is empty at 0. */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 0), 0);
    assert_false(seg_exists(f, 0));
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    shmq_cq_close(&cq);
}

static void test_truncate_dirty_of_every_unit_empties_queue_at_zero(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 175);
    assert_int_equal(shmq_cq_correct_min(&cq, 6000), 0); /* files now start at 1000 */
    assert_int_equal(shmq_cq_truncate_dirty(&cq, 5000), 0);
    assert_int_equal(cq.q.count, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(shmq_cq_max_offset(&cq), 0);
    assert_int_equal(cq.max_phys_offset, 0);
    assert_int_equal(shmq_cq_append(&cq, 50, 5000, 100, 0), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 50);
    assert_int_equal(shmq_cq_max_offset(&cq), 51);
    shmq_cq_close(&cq);
}

/* ---- offset by time ------------------------------------------------------ */

typedef struct cl_fixture {
    shmq_commitlog_t cl;
    shmq_cq_t cq;
    int64_t phys[64];
    int32_t size[64];
    int n;
} cl_fixture_t;

static void cl_append(cl_fixture_t *c, int64_t store_ts, size_t body_len)
{
    char body[512];
    shmq_msg_in_t m;
    shmq_append_result_t res;

    assert_true(body_len <= sizeof body);
    memset(body, 'b', body_len);
    memset(&m, 0, sizeof m);
    m.topic = TOPIC;
    m.topic_len = strlen(TOPIC);
    m.born_ts = 1;
    m.body = body;
    m.body_len = body_len;
    int rc = shmq_commitlog_append(&c->cl, &m, c->n, store_ts, &res);
    if (rc < 0)
        fail_msg("commitlog append: %s (%s)", shmq_strerror(rc), shmq_error_detail());
    assert_int_equal(res.store_ts, store_ts);
    assert_int_equal(shmq_cq_append(&c->cq, c->n, res.phys_offset, res.size, 0), 0);
    c->phys[c->n] = res.phys_offset;
    c->size[c->n] = res.size;
    c->n++;
}

static void cl_open(const fixture_t *f, cl_fixture_t *c, size_t cl_seg, size_t cq_fs)
{
    char dir[PATH_MAX];

    memset(c, 0, sizeof *c);
    snprintf(dir, sizeof dir, "%s/commitlog", f->root);
    int rc = shmq_commitlog_open(&c->cl, dir, cl_seg, 0);
    if (rc < 0)
        fail_msg("commitlog open: %s (%s)", shmq_strerror(rc), shmq_error_detail());
    open_cq(f, &c->cq, cq_fs, 0);
}

static void cl_close(cl_fixture_t *c)
{
    shmq_cq_close(&c->cq);
    shmq_commitlog_close(&c->cl);
}

/*
 * Ten records, four units per CQ file:
 *   file 0: 0:1000 1:2000 2:2000 3:3000 | file 1: 4:3000 5:3000 6:4000 7:5000 |
 *   file 2: 8:6000 9:6000
 */
static void times_setup(const fixture_t *f, cl_fixture_t *c)
{
    static const int64_t ts[] = {1000, 2000, 2000, 3000, 3000, 3000, 4000, 5000, 6000, 6000};
    cl_open(f, c, 1 << 16, 4 * UNIT);
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        cl_append(c, ts[i], 10);
    assert_int_equal(c->cq.q.count, 3);
}

static int64_t lower(cl_fixture_t *c, int64_t ts)
{
    return shmq_cq_offset_by_time(&c->cq, &c->cl, ts, SHMQ_BOUNDARY_LOWER);
}

static int64_t upper(cl_fixture_t *c, int64_t ts)
{
    return shmq_cq_offset_by_time(&c->cq, &c->cl, ts, SHMQ_BOUNDARY_UPPER);
}

static void test_offset_by_time_exact_hits_take_first_or_last_duplicate(void **state)
{
    fixture_t *f = *state;
    cl_fixture_t c;

    times_setup(f, &c);
    assert_int_equal(lower(&c, 1000), 0);
    assert_int_equal(upper(&c, 1000), 0);
    assert_int_equal(lower(&c, 2000), 1);
    assert_int_equal(upper(&c, 2000), 2);
    /* 3000 spans files 0 and 1. */
    assert_int_equal(lower(&c, 3000), 3);
    assert_int_equal(upper(&c, 3000), 5);
    assert_int_equal(lower(&c, 4000), 6);
    assert_int_equal(upper(&c, 4000), 6);
    assert_int_equal(lower(&c, 5000), 7);
    assert_int_equal(upper(&c, 5000), 7);
    assert_int_equal(lower(&c, 6000), 8);
    assert_int_equal(upper(&c, 6000), 9);
    cl_close(&c);
}

static void test_offset_by_time_between_records(void **state)
{
    fixture_t *f = *state;
    cl_fixture_t c;

    times_setup(f, &c);
    /* LOWER: first unit after ts; UPPER: last unit before ts. */
    assert_int_equal(lower(&c, 1500), 1);
    assert_int_equal(upper(&c, 1500), 0);
    assert_int_equal(lower(&c, 2500), 3);
    assert_int_equal(upper(&c, 2500), 2);
    assert_int_equal(lower(&c, 3500), 6);
    assert_int_equal(upper(&c, 3500), 5);
    assert_int_equal(lower(&c, 5500), 8);
    assert_int_equal(upper(&c, 5500), 7);
    cl_close(&c);
}

static void test_offset_by_time_before_first_and_after_last(void **state)
{
    fixture_t *f = *state;
    cl_fixture_t c;

    times_setup(f, &c);
    assert_int_equal(lower(&c, 500), 0);
    assert_int_equal(upper(&c, 500), 0);
    assert_int_equal(lower(&c, 7000), 10); /* one past the last unit = max */
    assert_int_equal(upper(&c, 7000), 9);
    cl_close(&c);
}

static void test_offset_by_time_empty_queue_is_zero(void **state)
{
    fixture_t *f = *state;
    cl_fixture_t c;

    cl_open(f, &c, 1 << 16, 4 * UNIT);
    assert_int_equal(lower(&c, 1000), 0);
    assert_int_equal(upper(&c, 1000), 0);
    cl_close(&c);
}

static void test_offset_by_time_units_below_commitlog_min_are_before(void **state)
{
    fixture_t *f = *state;
    cl_fixture_t c;
    char dir[PATH_MAX], p[PATH_MAX];

    /* 4 KiB CommitLog segments of ~20 records each; one big CQ file. */
    cl_open(f, &c, 4096, 50 * UNIT);
    for (int i = 0; i < 40; i++)
        cl_append(&c, 1000 + 10 * i, 100);
    int k = 0;
    while (c.phys[k] < 4096)
        k++;
    assert_true(k > 1 && k < 39);
    int64_t end = c.phys[39] + c.size[39];

    /* The first CommitLog segment is cleaned. */
    shmq_commitlog_close(&c.cl);
    snprintf(p, sizeof p, "%s/commitlog/00000000000000000000", f->root);
    assert_int_equal(unlink(p), 0);
    snprintf(dir, sizeof dir, "%s/commitlog", f->root);
    assert_int_equal(shmq_commitlog_open(&c.cl, dir, 4096, 0), 0);
    shmq_commitlog_set_positions(&c.cl, end, end);
    assert_int_equal(shmq_commitlog_min_offset(&c.cl), 4096);

    assert_int_equal(lower(&c, 1000), k); /* record 0 is gone: first readable after */
    assert_int_equal(upper(&c, 1000), k - 1);
    assert_int_equal(lower(&c, 1000 + 10 * k), k);
    assert_int_equal(upper(&c, 1000 + 10 * k), k);
    assert_int_equal(lower(&c, 1000 + 10 * k + 5), k + 1);

    /* Once the minimum is corrected, results never go below it. */
    assert_int_equal(shmq_cq_correct_min(&c.cq, 4096), 0);
    assert_int_equal(shmq_cq_min_offset(&c.cq), k);
    assert_int_equal(upper(&c, 1000), k);
    assert_int_equal(lower(&c, 0), k);
    cl_close(&c);
}

/* ---- correct_min --------------------------------------------------------- */

static void test_correct_min_deletes_old_files_and_searches_min(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 175); /* files 0..3000; unit i has phys i*100 */

    assert_int_equal(shmq_cq_correct_min(&cq, 0), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 0);
    assert_int_equal(cq.q.count, 4);

    /* File 0's last unit (4900) is below 6000: deleted; min = unit 60. */
    assert_int_equal(shmq_cq_correct_min(&cq, 6000), 0);
    assert_false(seg_exists(f, 0));
    assert_true(seg_exists(f, FS));
    assert_int_equal(shmq_cq_min_offset(&cq), 60);

    /* Between records: first unit at or above. */
    assert_int_equal(shmq_cq_correct_min(&cq, 6050), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 61);

    /* The minimum never goes back. */
    assert_int_equal(shmq_cq_correct_min(&cq, 100), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 61);
    shmq_cq_unit_t u;
    assert_int_equal(shmq_cq_read(&cq, 60, &u), SHMQ_E_RANGE);
    assert_unit(&cq, 61, 6100, 100, 61);

    /* Exactly the last unit of a file. */
    assert_int_equal(shmq_cq_correct_min(&cq, 14900), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 149);
    assert_false(seg_exists(f, FS));
    assert_true(seg_exists(f, 2 * FS));
    shmq_cq_close(&cq);
}

static void test_correct_min_past_every_unit_keeps_last_file(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 175);
    assert_int_equal(shmq_cq_correct_min(&cq, 1000000), 0);
    assert_int_equal(cq.q.count, 1);
    assert_true(seg_exists(f, 3 * FS));
    assert_int_equal(shmq_cq_min_offset(&cq), 175);
    assert_int_equal(shmq_cq_max_offset(&cq), 175);
    append_range(&cq, 175, 176);
    assert_int_equal(shmq_cq_max_offset(&cq), 176);
    shmq_cq_close(&cq);

    /* Reopened: the first file's start is the minimum until corrected again. */
    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 150);
    assert_int_equal(shmq_cq_correct_min(&cq, 17500), 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 175);
    shmq_cq_close(&cq);
}

/* ---- flush --------------------------------------------------------------- */

static void test_flush_follows_least_pages_rule(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    const size_t fs = UNIT * 1000; /* 20000 bytes, ~4.9 pages */

    open_cq(f, &cq, fs, 0);
    append_range(&cq, 0, 100); /* 2000 bytes: less than a page */
    assert_int_equal(cq.flushed_pos, 0);
    assert_int_equal(shmq_cq_flush(&cq, 1), 0);
    assert_int_equal(cq.flushed_pos, 0);
    assert_int_equal(shmq_cq_flush(&cq, 0), 0);
    assert_int_equal(cq.flushed_pos, 2000);

    append_range(&cq, 100, 500); /* 10000 bytes: pages 0..2 */
    assert_int_equal(shmq_cq_flush(&cq, 3), 0);
    assert_int_equal(cq.flushed_pos, 2000);
    assert_int_equal(shmq_cq_flush(&cq, 2), 0);
    assert_int_equal(cq.flushed_pos, 10000);

    /* A full file is flushed whatever least_pages says, then the next one. */
    append_range(&cq, 500, 1100);
    assert_int_equal(shmq_cq_flush(&cq, 100), 0);
    assert_int_equal(cq.flushed_pos, 20000);
    assert_int_equal(shmq_cq_flush(&cq, 0), 0);
    assert_int_equal(cq.flushed_pos, 22000);
    shmq_cq_close(&cq);
}

/* The flush in three parts (the dispatcher's flush thread makes the steps): the plan names
 * what shmq_cq_flush() would msync, in order, and moves nothing; a recorded step moves the
 * flushed position; a failed one fences the queue. */
/* A flush of a few units writes back one 64 KiB piece of the page cache, not the 1 MiB one a
 * coarse zero-fill makes (SHMQ_MF_FINE). */
static void test_flush_of_few_units_writes_little(void **state)
{
    fixture_t *f = *state;
    if (io_write_bytes() < 0) {
        skip(); /* no I/O accounting in this kernel */
    }
    shmq_cq_t cq;
    open_cq(f, &cq, 6000000, 0); /* RocketMQ's file: 300,000 units */
    append_range(&cq, 0, 40000); /* 800,000 bytes: the middle of a 1 MiB piece next */
    assert_int_equal(shmq_cq_flush(&cq, 0), 0);
    for (int64_t i = 40000; i < 40004; i++) {
        long long before = io_write_bytes();
        append_range(&cq, i, i + 1);
        assert_int_equal(shmq_cq_flush(&cq, 0), 0);
        long long cost = io_write_bytes() - before;
        if (cost > (long long)SHMQ_MF_FILL_FINE) {
            fail_msg("unit %" PRId64 " flushed: %lld bytes written back (at most %u)", i, cost,
                     SHMQ_MF_FILL_FINE);
        }
    }
    shmq_cq_close(&cq);
}

static void test_flush_plan_steps_and_done(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq;
    const size_t fs = UNIT * 1000;
    shmq_cq_flush_step_t s[4];

    open_cq(f, &cq, fs, 0);
    append_range(&cq, 0, 2500); /* two full files and half of a third */
    assert_int_equal(shmq_cq_flush_plan(&cq, 100, s, 4), 2); /* the full ones only */
    assert_int_equal(shmq_cq_flush_plan(&cq, 0, s, 4), 3);
    assert_int_equal(cq.flushed_pos, 0);
    assert_int_equal(s[0].from, 0);
    assert_int_equal(s[0].to, fs);
    assert_int_equal(s[0].flushed_to, (int64_t)fs);
    assert_int_equal(s[1].flushed_to, (int64_t)(2 * fs));
    assert_int_equal(s[2].to, 500 * UNIT);
    assert_int_equal(s[2].flushed_to, (int64_t)(2500 * UNIT));
    assert_int_equal(shmq_cq_flush_plan(&cq, 0, s, 1), 1); /* at most max */

    /* Units appended after the plan are not claimed by its steps. */
    assert_int_equal(shmq_cq_flush_plan(&cq, 0, s, 4), 3);
    append_range(&cq, 2500, 2600);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(shmq_cq_flush_step(&s[i]), 0);
        shmq_cq_flush_done(&cq, &s[i], 0);
    }
    assert_int_equal(cq.flushed_pos, 2500 * UNIT);
    assert_int_equal(shmq_cq_flush_plan(&cq, 0, s, 4), 1);
    assert_int_equal(s[0].from, 500 * UNIT);
    assert_int_equal(s[0].to, 600 * UNIT);

    /* A failed step: the position stays, and the queue is fenced for good. */
    shmq_cq_flush_done(&cq, &s[0], -EIO);
    assert_int_equal(cq.flushed_pos, 2500 * UNIT);
    assert_int_equal(shmq_cq_flush_plan(&cq, 0, s, 4), SHMQ_E_FENCED);
    assert_int_equal(shmq_cq_flush(&cq, 0), SHMQ_E_FENCED);
    shmq_cq_flush_done(&cq, &s[0], 0);
    assert_int_equal(cq.flushed_pos, 2500 * UNIT);
    shmq_cq_close(&cq);
}

/* ---- read-only ----------------------------------------------------------- */

static void test_readonly_open_sees_same_units_and_never_writes(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq, ro;
    uint8_t before[FS], after[FS];

    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_append(&cq, 10, 1000, 100, 10), 0); /* blanks 0..9 */
    append_range(&cq, 11, 130);
    shmq_cq_close(&cq);
    /* A torn unit with junk after it in the last file. */
    uint8_t torn[UNIT] = {0, 0, 0, 0, 0, 0, 0, 1};
    seg_pwrite(f, 2 * FS, 25 * UNIT, torn, UNIT);
    uint8_t junk[4] = {1, 2, 3, 4};
    seg_pwrite(f, 2 * FS, 40 * UNIT, junk, 4);
    seg_pread(f, 2 * FS, 0, before, FS);

    open_cq(f, &ro, FS, SHMQ_MF_READONLY);
    assert_true(ro.readonly);
    assert_int_equal(shmq_cq_min_offset(&ro), 10);
    assert_int_equal(shmq_cq_max_offset(&ro), 125);
    assert_int_equal(ro.max_phys_offset, 12500);
    assert_unit(&ro, 10, 1000, 100, 10);
    for (int64_t i = 11; i < 125; i++)
        assert_unit(&ro, i, i * 100, 100, i);
    assert_int_equal(shmq_cq_append(&ro, 125, 12500, 100, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_truncate_dirty(&ro, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_flush(&ro, 0), SHMQ_E_ARG);
    assert_int_equal(shmq_cq_correct_min(&ro, 5000), 0);
    assert_int_equal(shmq_cq_min_offset(&ro), 50);
    assert_true(seg_exists(f, 0)); /* not deleted */
    shmq_cq_close(&ro);
    seg_pread(f, 2 * FS, 0, after, FS);
    assert_memory_equal(before, after, FS);

    /* A writable open sees the same units and cleans the tail. */
    open_cq(f, &cq, FS, 0);
    assert_int_equal(shmq_cq_min_offset(&cq), 10);
    assert_int_equal(shmq_cq_max_offset(&cq), 125);
    shmq_cq_close(&cq);
    seg_pread(f, 2 * FS, 0, after, FS);
    assert_true(all_zero(after + 25 * UNIT, FS - 25 * UNIT));
}

static void test_no_scan_open_reads_nothing_until_positions_are_set(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t cq, ro;
    shmq_cq_unit_t u;

    open_cq(f, &cq, FS, 0);
    append_range(&cq, 0, 30);
    shmq_cq_close(&cq);
    /* Writable with no scan: refused (a writer needs its tail recovered). */
    assert_int_equal(shmq_cq_open(&cq, f->root, TOPIC, 0, FS, SHMQ_CQ_NO_SCAN), SHMQ_E_ARG);
    /* Read-only with no scan: every position 0, nothing readable. */
    open_cq(f, &ro, FS, SHMQ_MF_READONLY | SHMQ_CQ_NO_SCAN);
    assert_int_equal(shmq_cq_min_offset(&ro), 0);
    assert_int_equal(shmq_cq_max_offset(&ro), 0);
    assert_int_equal(ro.max_phys_offset, 0);
    assert_true(shmq_cq_read(&ro, 0, &u) < 0);
    /* The positions a dispatcher published: the units below them read as written. */
    ro.min_logic_offset = 5 * UNIT;
    ro.write_pos = 20 * UNIT;
    for (int64_t i = 5; i < 20; i++)
        assert_unit(&ro, i, i * 100, 100, i);
    assert_true(shmq_cq_read(&ro, 20, &u) < 0);
    assert_true(shmq_cq_read(&ro, 4, &u) < 0);
    shmq_cq_close(&ro);
}

static void test_readonly_open_of_missing_queue_is_empty(void **state)
{
    fixture_t *f = *state;
    shmq_cq_t ro;
    char p[PATH_MAX];

    open_cq(f, &ro, FS, SHMQ_MF_READONLY);
    assert_int_equal(shmq_cq_min_offset(&ro), 0);
    assert_int_equal(shmq_cq_max_offset(&ro), 0);
    shmq_cq_close(&ro);
    snprintf(p, sizeof p, "%s/consumequeue", f->root);
    assert_int_equal(access(p, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_file_size_rounds_up_to_unit_multiple),
        T(test_open_rejects_topics_unusable_as_directory),
        T(test_unit_is_20_big_endian_bytes),
        T(test_append_and_read_roll_over_files),
        T(test_files_are_named_by_byte_offset),
        T(test_reappend_is_idempotent),
        T(test_gap_is_rejected),
        T(test_bad_units_are_rejected),
        T(test_inline_append_equals_append),
        T(test_first_unit_in_first_file_prefills_blank_units),
        T(test_first_unit_in_later_file_creates_only_that_file),
        T(test_interrupted_prefill_is_replaced),
        T(test_read_outside_bounds_fails),
        T(test_recovery_stops_at_zeroed_tail),
        T(test_recovery_zeroes_units_after_an_invalid_one),
        T(test_recovery_after_last_file_deleted),
        T(test_recovery_removes_file_whose_first_unit_is_invalid),
        T(test_recovery_without_valid_unit_is_empty_at_zero),
        T(test_recovery_scans_from_third_from_last_file),
        T(test_truncate_dirty_keeps_units_whose_records_end_at_or_below),
        T(test_truncate_dirty_at_file_boundary_and_to_zero),
        T(test_truncate_dirty_keeps_blank_prefill),
        T(test_truncate_dirty_of_every_unit_empties_queue_at_zero),
        T(test_offset_by_time_exact_hits_take_first_or_last_duplicate),
        T(test_offset_by_time_between_records),
        T(test_offset_by_time_before_first_and_after_last),
        T(test_offset_by_time_empty_queue_is_zero),
        T(test_offset_by_time_units_below_commitlog_min_are_before),
        T(test_correct_min_deletes_old_files_and_searches_min),
        T(test_correct_min_past_every_unit_keeps_last_file),
        T(test_flush_follows_least_pages_rule),
        T(test_flush_plan_steps_and_done),
        T(test_flush_of_few_units_writes_little),
        T(test_readonly_open_sees_same_units_and_never_writes),
        T(test_readonly_open_of_missing_queue_is_empty),
        T(test_no_scan_open_reads_nothing_until_positions_are_set),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
