/*
 * Unit tests of the timer store (libshm/format/timer.c): the byte layout of
 * timer log units, wheel slots and the timer checkpoint (§17), slot
 * chains read oldest first, rounding and rolling at enqueue, segment ends,
 * and recovery after a kill (a lost slot update, a torn unit) and after a
 * crash (a slot naming units beyond the log's end), and after damage: a
 * unit below the checkpoint that does not decode is stepped over and the
 * units after it are still delivered, a damaged or stale slot is rebuilt
 * from the log, a checkpoint field whose copy differs costs no message,
 * and a zeroed checkpoint reads from the oldest unit.  Each damage is
 * reported (shmq_meta_warn); shmq_timer_check (shmqctl verify) reports the
 * same and changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmp_tree.h"
#include "format/json_meta.h"
#include "shmq/types.h"
#include "format/timer.h"

#define P             1000
#define T0            1700000000000LL /* a slot time */
#define SEG           4096
#define UNITS_PER_SEG ((SEG - SHMQ_TIMER_BLANK_SIZE) / SHMQ_TIMER_UNIT_SIZE)

typedef struct fixture {
    char root[64];
    shmq_timer_store_t ts;
    shmq_timer_unit_t *units;
    int64_t *pos;
    size_t cap;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/shmq-timer-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    shmq_timer_close(&f->ts);
    free(f->units);
    free(f->pos);
    tmp_tree_remove(f->root);
    free(f);
    return 0;
}

static void open_at(fixture_t *f, int64_t now)
{
    assert_int_equal(shmq_timer_open(&f->ts, f->root, P, SEG, now), 0);
}

static void enqueue(fixture_t *f, int64_t phys, int64_t deliver, int64_t now, int64_t want_slot)
{
    shmq_timer_enq_t e = {
        .phys_offset = phys, .msg_size = 100, .topic_hash = 7, .deliver_ms = deliver};
    int64_t slot = 0;
    assert_int_equal(shmq_timer_enqueue(&f->ts, &e, now, &slot), 0);
    assert_int_equal(slot, want_slot);
}

static int64_t read_slot(fixture_t *f, int64_t slot)
{
    int64_t broken = 0;
    int64_t n = shmq_timer_slot_read(&f->ts, slot, &f->units, &f->pos, &f->cap, &broken);
    assert_int_equal(broken, 0);
    return n;
}

static int64_t be64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return (int64_t)be64toh(v);
}

static void put_be64(uint8_t *p, int64_t v)
{
    uint64_t be = htobe64((uint64_t)v);
    memcpy(p, &be, 8);
}

/* Findings reported while opening (shmq_meta_warn). */
static int warnings;
static char last_warning[1024];

static void count_warning(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg, (void)level;
    warnings++;
    snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

/* Units 100..(100+n-1) in slot T0+2000 and 900 in T0+5000, checkpointed, the store closed
 * (written at T0, read up to T0+1000). */
static void damage_fixture(fixture_t *f, int n)
{
    open_at(f, T0);
    for (int i = 0; i < n; i++) {
        enqueue(f, 100 + i, T0 + 2000, T0, T0 + 2000);
    }
    enqueue(f, 900, T0 + 5000, T0, T0 + 5000);
    f->ts.queue_offset = n + 1;
    shmq_timer_progress(&f->ts, T0 + 1000, 0, 0);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    shmq_timer_close(&f->ts);
    warnings = 0;
    last_warning[0] = '\0';
    shmq_meta_set_warn(count_warning, NULL);
}

static uint8_t *file_bytes(fixture_t *f, const char *rel, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->root, rel);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    uint8_t *b = malloc(*len);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(b, 1, *len, fp), *len);
    fclose(fp);
    return b;
}

static void file_write(fixture_t *f, const char *rel, size_t off, const void *b, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->root, rel);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void test_damaged_unit_below_the_checkpoint_is_stepped_over(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 5);
    /* Unit 2 (phys 102) zeroed: the units after it are not a tail to cut. */
    uint8_t zero[SHMQ_TIMER_UNIT_SIZE] = {0};
    file_write(f, "timerlog/00000000000000000000", 2 * 52, zero, sizeof(zero));
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.damaged_units, 1);
    assert_int_equal(f->ts.first_damaged_pos, 104);
    assert_int_equal(f->ts.write_pos, 6 * 52);
    assert_int_equal(f->ts.relinked_units, 1);
    assert_int_equal(read_slot(f, T0 + 2000), 4);
    assert_int_equal(f->units[0].phys_offset, 100);
    assert_int_equal(f->units[1].phys_offset, 101);
    assert_int_equal(f->units[2].phys_offset, 103);
    assert_int_equal(f->units[3].phys_offset, 104);
    assert_int_equal(read_slot(f, T0 + 5000), 1);
    assert_true(warnings >= 1);
    assert_non_null(strstr(last_warning, "timerlog") ? last_warning
                                                     : strstr(last_warning, "timerwheel"));
    shmq_meta_set_warn(NULL, NULL);
}

static void test_unit_with_a_flipped_write_time_is_damage(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 3);
    /* Bit 4 of unit 1's writeTimeMs: its slot time is no multiple of P. */
    size_t len;
    uint8_t *b = file_bytes(f, "timerlog/00000000000000000000", &len);
    b[52 + 16 + 7] ^= 0x10;
    file_write(f, "timerlog/00000000000000000000", 52 + 16 + 7, b + 52 + 16 + 7, 1);
    free(b);
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.damaged_units, 1);
    assert_int_equal(read_slot(f, T0 + 2000), 2);
    assert_int_equal(f->units[1].phys_offset, 102);
    assert_true(warnings >= 1);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_check_reports_damage_and_changes_nothing(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 5);
    uint8_t zero[SHMQ_TIMER_UNIT_SIZE] = {0};
    file_write(f, "timerlog/00000000000000000000", 2 * 52, zero, sizeof(zero));
    size_t off = (size_t)shmq_timer_slot_index(T0 + 5000, P) * SHMQ_TIMER_SLOT_SIZE;
    uint8_t zslot[SHMQ_TIMER_SLOT_SIZE] = {0};
    file_write(f, "timerwheel", off, zslot, sizeof(zslot));
    size_t llen, wlen;
    uint8_t *log0 = file_bytes(f, "timerlog/00000000000000000000", &llen);
    uint8_t *wheel0 = file_bytes(f, "timerwheel", &wlen);
    shmq_timer_store_t ts;
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0 + 1500), 0);
    assert_int_equal(ts.damaged_units, 1);
    assert_int_equal(ts.relinked_units, 1);
    assert_int_equal(ts.damaged_slots, 2);
    assert_true(warnings >= 3);
    uint8_t *log1 = file_bytes(f, "timerlog/00000000000000000000", &llen);
    uint8_t *wheel1 = file_bytes(f, "timerwheel", &wlen);
    assert_memory_equal(log0, log1, llen);
    assert_memory_equal(wheel0, wheel1, wlen);
    free(log0), free(log1), free(wheel0), free(wheel1);
    /* The scheduler's open repairs what the check reported. */
    open_at(f, T0 + 1500);
    assert_int_equal(read_slot(f, T0 + 2000), 4);
    assert_int_equal(read_slot(f, T0 + 5000), 1);
    shmq_timer_close(&f->ts);
    /* Links and slots are whole again; the unit that does not decode stays (reported until
     * its segment is deleted). */
    warnings = 0;
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0 + 1500), 0);
    assert_int_equal(ts.damaged_units, 1);
    assert_int_equal(ts.relinked_units, 0);
    assert_int_equal(ts.damaged_slots, 0);
    assert_int_equal(warnings, 1);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_zeroed_or_stale_slot_is_rebuilt_from_the_log(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 4);
    size_t off = (size_t)shmq_timer_slot_index(T0 + 2000, P) * SHMQ_TIMER_SLOT_SIZE;
    uint8_t zero[SHMQ_TIMER_SLOT_SIZE] = {0};
    file_write(f, "timerwheel", off, zero, sizeof(zero));
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.damaged_slots, 1);
    assert_int_equal(read_slot(f, T0 + 2000), 4);
    assert_int_equal(f->ts.pending, 5);
    assert_true(warnings >= 1);
    assert_non_null(strstr(last_warning, "timerwheel"));
    /* The slot as it was after its first unit (a stale copy): last = first, num 1. */
    shmq_timer_slot_t s = {.time_units = (T0 + 2000) / P, .first_pos = 0, .last_pos = 0, .num = 1};
    uint8_t enc[SHMQ_TIMER_SLOT_SIZE];
    shmq_timer_slot_encode(enc, &s);
    shmq_timer_close(&f->ts);
    file_write(f, "timerwheel", off, enc, sizeof(enc));
    warnings = 0;
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.damaged_slots, 1);
    assert_int_equal(read_slot(f, T0 + 2000), 4);
    assert_int_equal(f->units[3].phys_offset, 103);
    assert_true(warnings >= 1);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_zeroed_checkpoint_reads_from_the_oldest_unit(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 2);
    uint8_t zero[512] = {0};
    file_write(f, "config/timercheck", 0, zero, sizeof(zero));
    /* Opened days later: without its checkpoint nothing tells what was delivered. */
    open_at(f, T0 + 3 * 86400000LL);
    assert_int_equal(f->ts.read_ms, T0 + 2000);
    assert_int_equal(f->ts.pending, 3);
    assert_int_equal(read_slot(f, T0 + 2000), 2);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "holds no checkpoint"));
    shmq_meta_set_warn(NULL, NULL);
}

static void test_stale_checkpoint_after_a_clean_close_is_reported(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 2);
    size_t len;
    uint8_t *old = file_bytes(f, "config/timercheck", &len);
    /* A later run: two more units, checkpointed, closed cleanly. */
    open_at(f, T0 + 1500);
    enqueue(f, 300, T0 + 3000, T0 + 1500, T0 + 3000);
    enqueue(f, 301, T0 + 3000, T0 + 1500, T0 + 3000);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    shmq_timer_close(&f->ts);
    warnings = 0;
    open_at(f, T0 + 1600);
    assert_int_equal(warnings, 0);
    shmq_timer_close(&f->ts);
    /* The checkpoint of the first run put back: the units after it are no kill's. */
    file_write(f, "config/timercheck", 0, old, 512);
    free(old);
    open_at(f, T0 + 1600);
    assert_int_equal(f->ts.recovered_units, 2);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "older than the timer log"));
    /* A kill after an enqueue (no clean close): the units after the checkpoint are no damage. */
    enqueue(f, 400, T0 + 4000, T0 + 1600, T0 + 4000);
    f->ts.checkpointed = false;
    shmq_timer_close(&f->ts);
    warnings = 0;
    open_at(f, T0 + 1700);
    assert_true(f->ts.recovered_units >= 1);
    assert_int_equal(warnings, 0);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_check_with_another_precision_is_a_note(void **state)
{
    fixture_t *f = *state;
    /* Written at 100 ms precision: slots 100 ms apart. */
    assert_int_equal(shmq_timer_open(&f->ts, f->root, 100, SEG, T0), 0);
    shmq_timer_enq_t e = {.phys_offset = 1, .msg_size = 10, .deliver_ms = T0 + 2100};
    int64_t slot;
    assert_int_equal(shmq_timer_enqueue(&f->ts, &e, T0, &slot), 0);
    e.phys_offset = 2;
    e.deliver_ms = T0 + 2200;
    assert_int_equal(shmq_timer_enqueue(&f->ts, &e, T0, &slot), 0);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    shmq_timer_close(&f->ts);
    warnings = 0;
    shmq_meta_set_warn(count_warning, NULL);
    shmq_timer_store_t ts;
    /* verify run with the default 1000 ms: checked at 100 ms, nothing damaged. */
    assert_int_equal(shmq_timer_check(&ts, f->root, P, SEG, T0 + 500), 0);
    assert_int_equal(ts.damaged_units, 0);
    assert_int_equal(ts.relinked_units, 0);
    assert_int_equal(ts.damaged_slots, 0);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "written with a timer precision of 100 ms"));
    shmq_meta_set_warn(NULL, NULL);
}

static void test_checkpoint_field_and_its_copy_differ(void **state)
{
    fixture_t *f = *state;
    damage_fixture(f, 2);
    /* lastReadTimeMs moved ahead by a flipped bit: its copy keeps slot T0+2000 unread. */
    uint8_t b[8];
    put_be64(b, T0 + 1000 + (1LL << 30));
    file_write(f, "config/timercheck", 0, b, 8);
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.read_ms, T0 + 1000);
    assert_int_equal(f->ts.pending, 3);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "lastReadTimeMs"));
    shmq_timer_close(&f->ts);
    /* lastTimerLogFlushPos lowered: the larger of the two is used (units enqueued again on
     * the same store: 6 in all). */
    damage_fixture(f, 2);
    put_be64(b, 52);
    file_write(f, "config/timercheck", 8, b, 8);
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.write_pos, 6 * 52);
    assert_int_equal(f->ts.flushed_pos, 6 * 52);
    assert_int_equal(f->ts.recovered_units, 0);
    assert_int_equal(warnings, 1);
    shmq_meta_set_warn(NULL, NULL);
}

static void test_unit_layout_is_rocketmq_big_endian(void **state)
{
    (void)state;
    uint8_t b[SHMQ_TIMER_UNIT_SIZE];
    memset(b, 0xAA, sizeof(b));
    shmq_timer_unit_t u = {.prev_pos = 0x0102030405060708LL,
                           .magic = SHMQ_TIMER_MAGIC_DEFAULT | SHMQ_TIMER_MAGIC_ROLL,
                           .write_ms = 0x1112131415161718LL,
                           .delay_delta = 0x21222324,
                           .phys_offset = 0x3132333435363738LL,
                           .msg_size = 0x41424344,
                           .topic_hash = -2};
    shmq_timer_unit_encode(b, &u);
    static const uint8_t want[SHMQ_TIMER_UNIT_SIZE] = {
        0,    0,    0,    52,   1,    2,    3,    4,    5,    6,    7,    8,    0,
        0,    0,    3,    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22,
        0x23, 0x24, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x41, 0x42, 0x43,
        0x44, 0xFF, 0xFF, 0xFF, 0xFE, 0,    0,    0,    0,    0,    0,    0,    0};
    assert_memory_equal(b, want, sizeof(want));
    shmq_timer_unit_t d;
    assert_int_equal(shmq_timer_unit_decode(b, sizeof(b), &d), 1);
    assert_int_equal(d.prev_pos, u.prev_pos);
    assert_int_equal(d.write_ms, u.write_ms);
    assert_int_equal(d.delay_delta, u.delay_delta);
    assert_int_equal(d.phys_offset, u.phys_offset);
    assert_int_equal(d.topic_hash, -2);
    /* a bad magic, a zero region, a wrong size */
    b[15] = 0x13;
    assert_int_equal(shmq_timer_unit_decode(b, sizeof(b), &d), SHMQ_E_CORRUPT);
    memset(b, 0, sizeof(b));
    assert_int_equal(shmq_timer_unit_decode(b, sizeof(b), &d), SHMQ_E_CORRUPT);
}

static void test_slot_layout_and_index(void **state)
{
    (void)state;
    uint8_t b[SHMQ_TIMER_SLOT_SIZE];
    shmq_timer_slot_t s = {.time_units = 1700000000, .first_pos = 52, .last_pos = 104, .num = 2};
    shmq_timer_slot_encode(b, &s);
    assert_int_equal(be64_at(b), 1700000000);
    assert_int_equal(be64_at(b + 8), 52);
    assert_int_equal(be64_at(b + 16), 104);
    assert_int_equal(b[27], 2);
    assert_int_equal(SHMQ_TIMER_WHEEL_SIZE, 38707200);
    assert_int_equal(shmq_timer_slot_index(T0, 1000), (T0 / 1000) % 1209600);
    assert_int_equal(shmq_timer_slot_index(T0, 100), (T0 / 100) % 1209600);
}

static void test_open_creates_files_of_rocketmq_sizes(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0 + 300);
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/timerwheel", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 38707200);
    snprintf(path, sizeof(path), "%s/config/timercheck", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4096);
    assert_int_equal(f->ts.read_ms, T0);
    assert_true(shmq_timer_exists(f->root));
}

static void test_wheel_of_another_size_is_refused(void **state)
{
    fixture_t *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/timerwheel", f->root);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    close(fd);
    assert_int_equal(shmq_timer_open(&f->ts, f->root, P, SEG, T0), SHMQ_E_SEGMENT);
}

static void test_slot_units_come_back_oldest_first(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    enqueue(f, 100, T0 + 5000, T0, T0 + 5000);
    enqueue(f, 200, T0 + 6000, T0, T0 + 6000);
    enqueue(f, 300, T0 + 5999, T0, T0 + 5000); /* floored to its slot */
    enqueue(f, 400, T0 + 5000, T0 + 10, T0 + 5000);
    assert_int_equal(read_slot(f, T0 + 5000), 3);
    assert_int_equal(f->units[0].phys_offset, 100);
    assert_int_equal(f->units[1].phys_offset, 300);
    assert_int_equal(f->units[2].phys_offset, 400);
    assert_int_equal(f->units[0].prev_pos, -1);
    assert_int_equal(f->units[2].prev_pos, f->pos[1]);
    assert_int_equal(f->units[2].write_ms, T0 + 10);
    assert_int_equal(f->units[2].delay_delta, 4990);
    assert_int_equal(read_slot(f, T0 + 6000), 1);
    assert_int_equal(read_slot(f, T0 + 7000), 0);
    assert_int_equal(f->ts.pending, 4);
    assert_int_equal(shmq_timer_slot_last(&f->ts, T0 + 5000), 3 * 52);
}

static void test_due_message_goes_to_the_next_slot_read(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    shmq_timer_progress(&f->ts, T0 + 3000, 0, 0);
    enqueue(f, 100, T0 - 60000, T0 + 3500, T0 + 3000);
    assert_int_equal(read_slot(f, T0 + 3000), 1);
}

static void test_far_message_rolls_at_the_window(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    int64_t w = (int64_t)SHMQ_TIMER_ROLL_WINDOW_SLOTS * P;
    /* overshoot beyond a third of the window: placed a whole window ahead */
    enqueue(f, 100, T0 + 2 * w, T0, T0 + w);
    /* small overshoot: half a window */
    enqueue(f, 200, T0 + w + 1000, T0, T0 + w / 2);
    assert_int_equal(read_slot(f, T0 + w), 1);
    assert_true(f->units[0].magic & SHMQ_TIMER_MAGIC_ROLL);
    assert_int_equal(read_slot(f, T0 + w / 2), 1);
    assert_true(f->units[0].magic & SHMQ_TIMER_MAGIC_ROLL);
    /* just inside the window: no roll */
    enqueue(f, 300, T0 + w - 1000, T0, T0 + w - 1000);
    assert_int_equal(read_slot(f, T0 + w - 1000), 1);
    assert_int_equal(f->units[0].magic, SHMQ_TIMER_MAGIC_DEFAULT);
}

static void test_full_segment_ends_with_a_blank(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    int n = UNITS_PER_SEG + 3;
    for (int i = 0; i < n; i++) {
        enqueue(f, 1000 + i, T0 + 2000, T0, T0 + 2000);
    }
    assert_int_equal(f->ts.write_pos, SEG + 3 * 52);
    char path[128];
    snprintf(path, sizeof(path), "%s/timerlog/00000000000000004096", f->root);
    assert_int_equal(access(path, F_OK), 0);
    /* the blank: remaining length, then BLANK magic at byte 12 */
    const uint8_t *b = shmq_mfq_first(&f->ts.log)->base + UNITS_PER_SEG * 52;
    uint32_t v;
    memcpy(&v, b, 4);
    assert_int_equal(be32toh(v), SEG - UNITS_PER_SEG * 52);
    memcpy(&v, b + 12, 4);
    assert_int_equal(be32toh(v), 0xCBD43194u);
    assert_int_equal(read_slot(f, T0 + 2000), n);
    assert_int_equal(f->units[n - 1].phys_offset, 1000 + n - 1);
}

static void test_checkpoint_writes_rocketmq_fields(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    enqueue(f, 100, T0 + 2000, T0, T0 + 2000);
    f->ts.queue_offset = 17;
    shmq_timer_progress(&f->ts, T0 + 1000, 0, 0);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    const uint8_t *c = f->ts.check.base;
    assert_int_equal(be64_at(c), T0 + 1000);
    assert_int_equal(be64_at(c + 8), 52);
    assert_int_equal(be64_at(c + 16), 17);
    assert_int_equal(be64_at(c + 24), 17);
    assert_int_equal(be64_at(c + 48), 1);
    shmq_timer_close(&f->ts);
    open_at(f, T0 + 1500);
    assert_int_equal(f->ts.read_ms, T0 + 1000);
    assert_int_equal(f->ts.queue_offset, 17);
    assert_int_equal(f->ts.recovered_units, 0);
    assert_int_equal(f->ts.pending, 1);
}

static void test_progress_inside_a_slot_survives_a_reopen(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    shmq_timer_progress(&f->ts, T0 + 1000, 5, 0);
    shmq_timer_close(&f->ts);
    open_at(f, T0 + 5000);
    assert_int_equal(f->ts.read_ms, T0 + 1000);
    assert_int_equal(f->ts.slot_done, 5);
    shmq_timer_progress(&f->ts, T0 + 2000, 0, 0);
    shmq_timer_close(&f->ts);
    open_at(f, T0 + 5000);
    assert_int_equal(f->ts.slot_done, 0);
}

static void test_unit_whose_slot_update_was_lost_is_found_at_open(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    enqueue(f, 100, T0 + 2000, T0, T0 + 2000);
    f->ts.queue_offset = 1;
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    /* A kill between the unit and its slot: save the slot, enqueue, put the slot back. */
    uint8_t *sp = f->ts.wheel.base + shmq_timer_slot_index(T0 + 2000, P) * SHMQ_TIMER_SLOT_SIZE;
    uint8_t saved[SHMQ_TIMER_SLOT_SIZE];
    memcpy(saved, sp, sizeof(saved));
    enqueue(f, 200, T0 + 2000, T0, T0 + 2000);
    enqueue(f, 300, T0 + 9000, T0, T0 + 9000);
    memcpy(sp, saved, sizeof(saved));
    memset(f->ts.wheel.base + shmq_timer_slot_index(T0 + 9000, P) * SHMQ_TIMER_SLOT_SIZE, 0,
           SHMQ_TIMER_SLOT_SIZE);
    shmq_timer_close(&f->ts);
    open_at(f, T0 + 100);
    assert_int_equal(f->ts.recovered_units, 2);
    assert_int_equal(f->ts.recovered_max_phys, 300);
    assert_int_equal(f->ts.queue_offset, 1);
    assert_int_equal(read_slot(f, T0 + 2000), 2);
    assert_int_equal(f->units[1].phys_offset, 200);
    assert_int_equal(read_slot(f, T0 + 9000), 1);
    assert_int_equal(f->ts.write_pos, 3 * 52);
}

static void test_torn_last_unit_is_cut_and_overwritten(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    enqueue(f, 100, T0 + 2000, T0, T0 + 2000);
    /* A unit killed before its size field: everything but the first 4 bytes. */
    uint8_t *b = shmq_mfq_first(&f->ts.log)->base + 52;
    memset(b + 4, 0x5A, 48);
    shmq_timer_close(&f->ts);
    open_at(f, T0);
    assert_int_equal(f->ts.write_pos, 52);
    b = shmq_mfq_first(&f->ts.log)->base + 52;
    for (int i = 0; i < 52; i++) {
        assert_int_equal(b[i], 0);
    }
    enqueue(f, 200, T0 + 2000, T0, T0 + 2000);
    assert_int_equal(read_slot(f, T0 + 2000), 2);
}

static void test_slot_naming_lost_units_is_repaired(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    enqueue(f, 100, T0 + 2000, T0, T0 + 2000);
    enqueue(f, 200, T0 + 2000, T0, T0 + 2000);
    enqueue(f, 300, T0 + 4000, T0, T0 + 4000);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    /* A crash lost the log's last two units but kept the wheel's pages. */
    uint8_t *b = shmq_mfq_first(&f->ts.log)->base;
    memset(b + 52, 0, 104);
    shmq_timer_close(&f->ts);
    open_at(f, T0);
    assert_int_equal(f->ts.write_pos, 52);
    assert_int_equal(f->ts.repaired_slots, 2);
    assert_int_equal(read_slot(f, T0 + 2000), 1);
    assert_int_equal(f->units[0].phys_offset, 100);
    assert_int_equal(read_slot(f, T0 + 4000), 0);
    assert_int_equal(f->ts.pending, 1);
}

static void test_read_segments_are_deleted_at_checkpoint(void **state)
{
    fixture_t *f = *state;
    open_at(f, T0);
    for (int i = 0; i < UNITS_PER_SEG; i++) {
        enqueue(f, i, T0 + 1000, T0, T0 + 1000);
    }
    enqueue(f, 9999, T0 + 5000, T0, T0 + 5000); /* second segment */
    assert_int_equal(f->ts.log.count, 2);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    assert_int_equal(f->ts.log.count, 2); /* slot T0+1000 not read yet */
    shmq_timer_progress(&f->ts, T0 + 2000, 0, UNITS_PER_SEG);
    assert_int_equal(shmq_timer_checkpoint(&f->ts), 0);
    assert_int_equal(f->ts.log.count, 1);
    assert_int_equal(read_slot(f, T0 + 5000), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unit_layout_is_rocketmq_big_endian),
        cmocka_unit_test(test_slot_layout_and_index),
        cmocka_unit_test_setup_teardown(test_open_creates_files_of_rocketmq_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wheel_of_another_size_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_units_come_back_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_message_goes_to_the_next_slot_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_far_message_rolls_at_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_segment_ends_with_a_blank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_writes_rocketmq_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_inside_a_slot_survives_a_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unit_whose_slot_update_was_lost_is_found_at_open,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_unit_is_cut_and_overwritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slot_naming_lost_units_is_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_unit_below_the_checkpoint_is_stepped_over,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_with_a_flipped_write_time_is_damage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_reports_damage_and_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_or_stale_slot_is_rebuilt_from_the_log, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_checkpoint_reads_from_the_oldest_unit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_field_and_its_copy_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_checkpoint_after_a_clean_close_is_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_with_another_precision_is_a_note, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_segments_are_deleted_at_checkpoint, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
