/*
 * The timer store: timer wheel, timer log and timer checkpoint files of
 * RocketMQ 5 (timer.h; ROCKETMQ-FACTS §17), their recovery after a killed
 * scheduler, a host crash or damage, enqueueing a unit and reading a slot.
 *
 * Damage (a bad disk, a file edited by hand) is told from a crash by the
 * checkpoint: units below its lastTimerLogFlushPos were on the disk, so one
 * that does not decode there is damage, stepped over and reported, not the
 * end of the log (PITFALLS 7).  The wheel is derived from the log at open
 * for every slot not yet read, and each unit's prevPos from the units
 * before it, so a damaged slot or link loses nothing the log still holds.
 * shmq keeps copies of the checkpoint's lastReadTimeMs, lastTimerLogFlushPos
 * and in-slot progress past byte 56 (RocketMQ reads only 0..55): two copies
 * that differ are reported and the one that loses nothing is used.
 * Findings go to the store's log through shmq_meta_warn (json_meta.h).
 */
#include "format/timer.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "shmq/types.h"
#include "format/store_files.h"

#define CHECK_READ_MS   0
#define CHECK_FLUSH_POS 8
#define CHECK_QUEUE_OFF 16
#define CHECK_MASTER_QO 24
#define CHECK_STATE_VER 32
#define CHECK_TIMESTAMP 40
#define CHECK_COUNTER   48
#define CHECK_PROG_SLOT 64  /* shmq: slot being delivered */
#define CHECK_PROG_DONE 72  /* shmq: its units delivered */
#define CHECK_READ_COPY 80  /* shmq: lastReadTimeMs again, written after it */
#define CHECK_EXT_MAGIC 88  /* shmq: CHECK_EXT when the copies are written */
#define CHECK_FLUSH_CPY 96  /* shmq: lastTimerLogFlushPos again */
#define CHECK_DONE_COPY 104 /* shmq: the in-slot progress again, written after it */
#define CHECK_CLOSED    112 /* shmq: CHECK_EXT when closed after a checkpoint of everything */
#define CHECK_USED      120 /* bytes of the checkpoint shmq writes */
#define CHECK_EXT       0x73686d7174636b31LL /* "shmqtck1" */

#define STALE_ZERO_RUN (1 << 20) /* a run of zero bytes this long ends the stale tail */
#define SLOT_GRAIN     25        /* divides every precision allowed (100..1000, dividing 1000) */
#define PAGE           4096

/* ---- byte order ---------------------------------------------------------------------- */

/* The timer files' fields are signed Java ints and longs. */
static void put64(uint8_t *p, int64_t v)
{
    shmq_put_be64(p, (uint64_t)v);
}

static void put32(uint8_t *p, int32_t v)
{
    shmq_put_be32(p, (uint32_t)v);
}

static int64_t get64(const uint8_t *p)
{
    return (int64_t)shmq_get_be64(p);
}

static int32_t get32(const uint8_t *p)
{
    return (int32_t)shmq_get_be32(p);
}

static int64_t floor_to(int64_t t, int64_t p)
{
    int64_t r = t % p;
    return r < 0 ? t - r - p : t - r;
}

/* ---- codecs ------------------------------------------------------------------------------ */

void shmq_timer_unit_encode(uint8_t *dst, const shmq_timer_unit_t *u)
{
    put64(dst + 4, u->prev_pos);
    put32(dst + 12, u->magic);
    put64(dst + 16, u->write_ms);
    put32(dst + 24, u->delay_delta);
    put64(dst + 28, u->phys_offset);
    put32(dst + 36, u->msg_size);
    put32(dst + 40, u->topic_hash);
    put64(dst + 44, 0);
    /* The size marks the unit complete: a process killed before this store leaves a
     * unit that does not decode. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    put32(dst, SHMQ_TIMER_UNIT_SIZE);
}

int shmq_timer_unit_decode(const uint8_t *src, size_t avail, shmq_timer_unit_t *u)
{
    if (avail < SHMQ_TIMER_BLANK_SIZE) {
        return SHMQ_E_CORRUPT;
    }
    int32_t size = get32(src);
    int32_t magic = get32(src + 12);
    if (magic == SHMQ_MAGIC_BLANK && size >= SHMQ_TIMER_BLANK_SIZE && (size_t)size == avail) {
        return 0;
    }
    if (size != SHMQ_TIMER_UNIT_SIZE || avail < SHMQ_TIMER_UNIT_SIZE || magic == 0 ||
        (magic | 0xF) != 0xF) {
        return SHMQ_E_CORRUPT;
    }
    u->prev_pos = get64(src + 4);
    u->magic = magic;
    u->write_ms = get64(src + 16);
    u->delay_delta = get32(src + 24);
    u->phys_offset = get64(src + 28);
    u->msg_size = get32(src + 36);
    u->topic_hash = get32(src + 40);
    return 1;
}

void shmq_timer_slot_encode(uint8_t *dst, const shmq_timer_slot_t *s)
{
    put64(dst, s->time_units);
    put64(dst + 8, s->first_pos);
    put32(dst + 24, s->num);
    put32(dst + 28, s->magic);
    put64(dst + 16, s->last_pos);
}

void shmq_timer_slot_decode(const uint8_t *src, shmq_timer_slot_t *s)
{
    s->time_units = get64(src);
    s->first_pos = get64(src + 8);
    s->last_pos = get64(src + 16);
    s->num = get32(src + 24);
    s->magic = get32(src + 28);
}

int64_t shmq_timer_slot_index(int64_t t, int64_t p)
{
    int64_t i = (t / p) % SHMQ_TIMER_WHEEL_SLOTS;
    return i < 0 ? i + SHMQ_TIMER_WHEEL_SLOTS : i;
}

/* ---- files --------------------------------------------------------------------------------- */

bool shmq_timer_exists(const char *root)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/timerwheel", root);
    /* lstat: a link there counts, and the open refuses it naming it. */
    return lstat(path, &st) == 0;
}

/*
 * Open path as a file of exactly size bytes, creating (SHMQ_FILE_MODE) and allocating it
 * when missing or empty; read-only (check_only: SHMQ_E_NOT_FOUND when missing) never
 * creating.  As every file of a store (store_files.h): a symbolic link, a FIFO or any
 * other non-regular file is refused naming it.
 */
static uint8_t *slot_at(const shmq_timer_store_t *ts, int64_t slot_ms)
{
    return ts->wheel.base +
           (size_t)shmq_timer_slot_index(slot_ms, ts->precision) * SHMQ_TIMER_SLOT_SIZE;
}

/* The unit at pos: 1 valid (*u filled), 0 blank (*next = next segment), < 0 none. */
static int unit_at(const shmq_timer_store_t *ts, int64_t pos, shmq_timer_unit_t *u, int64_t *next)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, pos);
    if (mf == NULL) {
        return SHMQ_E_NOT_FOUND;
    }
    size_t rel = (size_t)(pos - mf->start_offset);
    int rc = shmq_timer_unit_decode(mf->base + rel, mf->size - rel, u);
    if (rc == 0) {
        *next = mf->start_offset + (int64_t)mf->size;
    } else if (rc == 1) {
        *next = pos + SHMQ_TIMER_UNIT_SIZE;
    }
    return rc;
}

static int seg_note(shmq_timer_store_t *ts, int64_t start, int64_t slot_ms)
{
    if (ts->nsegs == 0 || ts->segs[ts->nsegs - 1].start != start) {
        if (ts->nsegs == ts->segs_cap) {
            size_t cap = ts->segs_cap ? ts->segs_cap * 2 : 16;
            shmq_timer_seg_t *n = realloc(ts->segs, cap * sizeof(*n));
            if (n == NULL) {
                return -ENOMEM;
            }
            ts->segs = n;
            ts->segs_cap = cap;
        }
        ts->segs[ts->nsegs++] = (shmq_timer_seg_t){.start = start, .max_slot_ms = -1};
    }
    shmq_timer_seg_t *s = &ts->segs[ts->nsegs - 1];
    if (slot_ms > s->max_slot_ms) {
        s->max_slot_ms = slot_ms;
    }
    return 0;
}

/* ---- recovery ------------------------------------------------------------------------------ */

/* What the log says a slot holds: its units in log order (open's rebuild of the wheel). */
typedef struct slot_acc {
    int64_t tu; /* slot time / P; 0: no unit seen */
    int64_t first;
    int64_t last;
    int64_t num;
} slot_acc_t;

/* Zero the stale bytes a kill or a crash left after the log's end (non-zero pages only). */
static void zero_stale(shmq_timer_store_t *ts, int64_t end)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, end);
    if (mf == NULL) {
        return;
    }
    size_t rel = (size_t)(end - mf->start_offset), zero_run = 0;
    while (rel < mf->size && zero_run < STALE_ZERO_RUN) {
        size_t len = PAGE - rel % PAGE;
        if (len > mf->size - rel) {
            len = mf->size - rel;
        }
        uint8_t *b = mf->base + rel;
        bool zero = b[0] == 0 && memcmp(b, b + 1, len - 1) == 0;
        if (!zero) {
            memset(b, 0, len);
            zero_run = 0;
        } else {
            zero_run += len;
        }
        rel += len;
    }
}

/* Where the unit after an undecodable one at pos would start: units never straddle. */
static int64_t step_over(const shmq_timer_store_t *ts, int64_t pos)
{
    int64_t seg = (int64_t)ts->seg_size, start = pos - pos % seg;
    if (pos + SHMQ_TIMER_UNIT_SIZE + SHMQ_TIMER_UNIT_SIZE + SHMQ_TIMER_BLANK_SIZE > start + seg) {
        return start + seg; /* only a blank fits after it */
    }
    return pos + SHMQ_TIMER_UNIT_SIZE;
}

/*
 * The precision the log's units were written with: the largest allowed one
 * that divides every slot time in the log (p itself when it does, or when the
 * log is empty).  Another one means the store ran with another
 * timerPrecisionMs.
 */
static int64_t log_precision(shmq_timer_store_t *ts, int64_t p)
{
    static const int64_t allowed[] = {1000, 500, 250, 200, 125, 100};
    bool fits[sizeof(allowed) / sizeof(allowed[0])];
    int64_t pos = ts->log.count ? shmq_mfq_min_offset(&ts->log) : 0, next;
    bool p_fits = true;
    for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
        fits[i] = true;
    }
    for (;;) {
        shmq_timer_unit_t u;
        int rc = unit_at(ts, pos, &u, &next);
        if (rc == SHMQ_E_NOT_FOUND) {
            break;
        }
        if (rc < 0) {
            pos = step_over(ts, pos);
            continue;
        }
        int64_t slot_ms = u.write_ms + u.delay_delta;
        if (rc == 1 && slot_ms > 0 && slot_ms % SLOT_GRAIN == 0) {
            p_fits = p_fits && slot_ms % p == 0;
            for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
                fits[i] = fits[i] && slot_ms % allowed[i] == 0;
            }
        }
        pos = next;
    }
    if (p_fits) {
        return p;
    }
    for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
        if (fits[i]) {
            return allowed[i];
        }
    }
    return SLOT_GRAIN;
}

/*
 * Scan the whole log: find its end (the first unit that does not decode at
 * or after the checkpoint's flush position: a torn tail), step over units
 * that do not decode below it (damage), note each segment's latest slot,
 * give every unit the prevPos of the unit before it in its slot (rewriting
 * a damaged link), count the units after flush_pos (a kill or a crash lost
 * their slot updates), and record in acc what each slot holds.
 */
static int scan_log(shmq_timer_store_t *ts, int64_t flush_pos, bool flush_confirmed,
                    slot_acc_t *acc)
{
    int64_t p = ts->precision, next;
    int64_t min = ts->log.count ? shmq_mfq_min_offset(&ts->log) : flush_pos, pos = min;
    int64_t end = pos; /* after the last unit or blank that decoded */
    ts->recovered_max_phys = -1;
    ts->oldest_slot_ms = -1;
    for (;;) {
        shmq_timer_unit_t u;
        int rc = unit_at(ts, pos, &u, &next);
        if (rc == SHMQ_E_NOT_FOUND) {
            break;
        }
        int64_t slot_ms = rc == 1 ? u.write_ms + u.delay_delta : 0;
        /* A slot time is a multiple of the precision, so of SLOT_GRAIN: a flipped write time
         * or delay (plus or minus a power of two) is not. */
        if (rc == 1 && (slot_ms <= 0 || slot_ms % SLOT_GRAIN != 0 || slot_ms > INT64_MAX / 2)) {
            rc = SHMQ_E_CORRUPT;
        }
        if (rc < 0) {
            if (pos >= flush_pos) {
                break; /* the end, or a torn tail */
            }
            if (ts->damaged_units++ == 0) {
                ts->first_damaged_pos = pos;
            }
            pos = step_over(ts, pos);
            continue;
        }
        if (rc == 1) {
            int src = seg_note(ts, pos - (pos % (int64_t)ts->seg_size), slot_ms);
            if (src < 0) {
                return src;
            }
            slot_acc_t *a = &acc[shmq_timer_slot_index(slot_ms, p)];
            int64_t tu = slot_ms / p;
            /* The same wheel slot two weeks later may hold newer units: then this one was
             * read long ago and is left alone. */
            if (a->tu <= tu) {
                if (a->tu != tu) {
                    *a = (slot_acc_t){.tu = tu, .first = pos, .last = -1};
                }
                /* The first unit of a slot in the log points before the log (its segment was
                 * read and deleted) or nowhere; any other one at the slot's unit before it. */
                int64_t want_prev = a->last >= 0 ? a->last : (u.prev_pos < min ? u.prev_pos : -1);
                if (u.prev_pos != want_prev && !ts->no_repair) {
                    shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, pos);
                    if (!ts->check_only) {
                        put64(mf->base + (pos - mf->start_offset) + 4, want_prev);
                    }
                    ts->relinked_units++;
                }
                a->last = pos;
                a->num++;
            }
            ts->log_units++;
            if (ts->oldest_slot_ms < 0 || slot_ms < ts->oldest_slot_ms) {
                ts->oldest_slot_ms = slot_ms;
            }
            if (pos >= flush_pos) {
                ts->recovered_units++;
                if (u.phys_offset > ts->recovered_max_phys) {
                    ts->recovered_max_phys = u.phys_offset;
                }
            }
        }
        pos = next;
        end = pos;
    }
    /* Units that do not decode after the last one that does are the end's zeros seen from a
     * flush position that may itself be wrong, unless its copy confirms it. */
    if (!flush_confirmed && ts->damaged_units > 0 && ts->first_damaged_pos >= end) {
        ts->damaged_units = 0;
    }
    ts->write_pos = end;
    if (ts->check_only) {
        return 0;
    }
    /* Segments past the end hold only what a crash left: remove them. */
    int64_t seg_end = end - (end % (int64_t)ts->seg_size) + (int64_t)ts->seg_size;
    if (shmq_mfq_end_offset(&ts->log) > seg_end) {
        int rc = shmq_mfq_truncate(&ts->log, seg_end);
        if (rc < 0) {
            return rc;
        }
    }
    zero_stale(ts, end);
    return 0;
}

/*
 * Make every slot not yet read (read_ms and later) what the log says it
 * holds, clearing slots that name units the log does not have for them;
 * count the pending units.
 */
static void rebuild_wheel(shmq_timer_store_t *ts, const slot_acc_t *acc)
{
    int64_t p = ts->precision, from = ts->read_ms / p;
    if (ts->no_repair) {
        for (size_t i = 0; i < SHMQ_TIMER_WHEEL_SLOTS; i++) {
            ts->pending += acc[i].tu >= from ? acc[i].num : 0;
        }
        return;
    }
    for (size_t i = 0; i < SHMQ_TIMER_WHEEL_SLOTS; i++) {
        uint8_t *b = ts->wheel.base + i * SHMQ_TIMER_SLOT_SIZE;
        const slot_acc_t *a = &acc[i];
        shmq_timer_slot_t s;
        shmq_timer_slot_decode(b, &s);
        if (a->tu >= from && a->num > 0) {
            if (s.time_units != a->tu || s.first_pos != a->first || s.last_pos != a->last ||
                s.num != a->num || s.magic != 0) {
                /* Units after the flush position explain a slot a kill or a crash did not
                 * update; anything else is damage. */
                if (a->last < ts->flushed_pos) {
                    ts->damaged_slots++;
                }
                s = (shmq_timer_slot_t){.time_units = a->tu,
                                        .first_pos = a->first,
                                        .last_pos = a->last,
                                        .num = (int32_t)a->num};
                if (!ts->check_only) {
                    shmq_timer_slot_encode(b, &s);
                }
                ts->repaired_slots++;
            }
            ts->pending += a->num;
            continue;
        }
        if (get64(b) == 0 && get64(b + 16) == 0) {
            continue; /* never used */
        }
        /* A slot to be read that the log has no unit for (units lost with a crash, or a
         * damaged slot): nothing to deliver there. */
        if (s.time_units >= from && s.time_units <= INT64_MAX / p &&
            shmq_timer_slot_index(s.time_units * p, p) == (int64_t)i) {
            if (s.last_pos < ts->flushed_pos && s.first_pos < ts->flushed_pos) {
                ts->damaged_slots++;
            }
            if (!ts->check_only) {
                memset(b, 0, SHMQ_TIMER_SLOT_SIZE);
            }
            ts->repaired_slots++;
        }
    }
}

/* Report a finding about the timer files in the store's log. */
static void timer_warn(const shmq_timer_store_t *ts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void timer_warn(const shmq_timer_store_t *ts, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    shmq_meta_warn(SHMQ_META_WARN, "%s/%s", ts->root, msg);
}

/*
 * A field and its copy: equal, or the one that loses no message, reported: the smaller
 * (larger when want_max) that is not negative.
 */
static int64_t copy_pick(const shmq_timer_store_t *ts, const char *what, int64_t v, int64_t copy,
                         bool want_max, const char *meaning)
{
    if (v == copy) {
        return v;
    }
    int64_t lo = v < copy ? v : copy, hi = v < copy ? copy : v;
    int64_t pick = want_max || lo < 0 ? hi : lo;
    timer_warn(ts,
               "config/timercheck: %s is %" PRId64 ", its copy %" PRId64
               " (damage, or a kill between the two writes): using %" PRId64 " (%s)",
               what, v, copy, pick, meaning);
    return pick;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    return b[0] == 0 && memcmp(b, b + 1, n - 1) == 0;
}

static int flush_repairs(shmq_timer_store_t *ts)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ts->log.count; i++) {
        shmq_mapped_file_t *mf = ts->log.segs[i];
        rc = shmq_mf_flush(mf, 0, mf->size, SHMQ_FLUSH_MSYNC);
    }
    if (rc == 0) {
        rc = shmq_mf_flush(&ts->wheel, 0, ts->wheel.size, SHMQ_FLUSH_FDATASYNC);
    }
    return rc;
}

static int timer_open(shmq_timer_store_t *ts, const char *root, int64_t p, size_t seg_size,
                      int64_t now_ms, bool check_only)
{
    memset(ts, 0, sizeof(*ts));
    ts->wheel.fd = ts->check.fd = -1;
    ts->check_only = check_only;
    if (p <= 0 || 1000 % p != 0 || seg_size < 1024 || seg_size % 4 != 0) {
        return shmq_error_set(SHMQ_E_ARG, "timer store: precision %lld, log segment size %zu",
                              (long long)p, seg_size);
    }
    snprintf(ts->root, sizeof(ts->root), "%s", root);
    ts->precision = p;
    ts->seg_size = seg_size;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/config", root);
    int rc = check_only ? 0 : shmq_file_mkdirs(dir);
    if (rc == 0) {
        rc = shmq_mf_open_fixed(&ts->check, dir, "timercheck", SHMQ_TIMERCHECK_SIZE, check_only);
        ts->check_open = rc == 0;
    }
    if (rc == 0) {
        rc = shmq_mf_open_fixed(&ts->wheel, root, "timerwheel", SHMQ_TIMER_WHEEL_SIZE, check_only);
        ts->wheel_open = rc == 0;
    }
    if (rc == 0) {
        snprintf(dir, sizeof(dir), "%s/timerlog", root);
        rc = shmq_mfq_open(&ts->log, dir, seg_size, check_only ? SHMQ_MF_READONLY : 0);
        ts->log_open = rc == 0;
    }
    if (rc < 0) {
        shmq_timer_close(ts);
        return rc;
    }
    const uint8_t *c = ts->check.base;
    bool ext = get64(c + CHECK_EXT_MAGIC) == CHECK_EXT;
    bool blank = all_zero(c, CHECK_USED);
    bool closed_clean = ext && get64(c + CHECK_CLOSED) == CHECK_EXT;
    int64_t read_ms = get64(c + CHECK_READ_MS);
    int64_t flush_pos = get64(c + CHECK_FLUSH_POS);
    int64_t slot_done = get64(c + CHECK_PROG_DONE);
    ts->queue_offset = get64(c + CHECK_QUEUE_OFF);
    ts->counter = get64(c + CHECK_COUNTER);
    bool flush_confirmed = ext && flush_pos == get64(c + CHECK_FLUSH_CPY);
    if (ext) {
        read_ms = copy_pick(ts, "lastReadTimeMs", read_ms, get64(c + CHECK_READ_COPY), false,
                            "timed messages of the slots in between may be delivered again");
        slot_done = copy_pick(ts, "the units delivered of the slot being read", slot_done,
                              get64(c + CHECK_DONE_COPY), false, "some may be delivered again");
        flush_pos = copy_pick(ts, "lastTimerLogFlushPos", flush_pos, get64(c + CHECK_FLUSH_CPY),
                              true, "units after it are checked as a tail");
        /* shmq writes masterTimerQueueOffset equal to lastTimerQueueOffset. */
        ts->queue_offset =
            copy_pick(ts, "lastTimerQueueOffset", ts->queue_offset, get64(c + CHECK_MASTER_QO),
                      false, "timed messages after it are put in the wheel again");
    }
    if (flush_pos < 0 || ts->queue_offset < 0) {
        shmq_timer_close(ts);
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "%s/config/timercheck: flush position %" PRId64
                              ", queue offset %" PRId64,
                              root, flush_pos, ts->queue_offset);
    }
    slot_acc_t *acc = calloc(SHMQ_TIMER_WHEEL_SLOTS, sizeof(*acc));
    if (acc == NULL) {
        shmq_timer_close(ts);
        return shmq_error_set(-ENOMEM, "timer store: no memory to check the wheel");
    }
    /* A store that ran with another timerPrecisionMs: its slots are other slots.  verify
     * (check_only) checks it with the precision it was written with; the scheduler repairs
     * nothing then (its slots would not be the ones written). */
    int64_t p_log = log_precision(ts, p);
    if (p_log != p) {
        if (check_only) {
            shmq_meta_warn(SHMQ_META_NOTE,
                           "%s/timerlog: written with a timer precision of %" PRId64
                           " ms, not timerPrecisionMs %" PRId64 ": checked with %" PRId64 " ms",
                           root, p_log, p, p_log);
            ts->precision = p = p_log;
        } else {
            timer_warn(ts,
                       "timerlog: its units were written with a timer precision of %" PRId64
                       " ms, not timerPrecisionMs %" PRId64
                       ": slots are not checked or repaired (run with the precision the "
                       "timer files were written with)",
                       p_log, p);
            ts->no_repair = true;
        }
    }
    rc = scan_log(ts, flush_pos, flush_confirmed, acc);
    if (rc < 0) {
        free(acc);
        shmq_timer_close(ts);
        return rc;
    }
    ts->flushed_pos = flush_pos < ts->write_pos ? flush_pos : ts->write_pos;
    if (blank && ts->log_units > 0) {
        /* No checkpoint, yet units: the checkpoint was lost (zeroed), or the first run died
         * before its first one.  What was delivered is unknown: read from the oldest unit. */
        read_ms = ts->oldest_slot_ms;
        timer_warn(ts,
                   "config/timercheck holds no checkpoint but the timer log holds %" PRId64
                   " units: reading from the oldest unit's slot %" PRId64
                   " (timed messages delivered since may be delivered again)",
                   ts->log_units, read_ms);
    }
    int64_t oldest = floor_to(now_ms - (int64_t)SHMQ_TIMER_WHEEL_SLOTS * p + 60 * p, p);
    if (read_ms <= 0) {
        read_ms = floor_to(now_ms, p);
    } else if (read_ms < oldest) {
        read_ms = oldest;
    }
    ts->read_ms = floor_to(read_ms, p);
    if (get64(c + CHECK_PROG_SLOT) == ts->read_ms) {
        ts->slot_done = slot_done < 0 ? 0 : slot_done;
    }
    rebuild_wheel(ts, acc);
    free(acc);
    if (ts->damaged_units > 0) {
        const shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, ts->first_damaged_pos);
        shmq_meta_warn(SHMQ_META_WARN,
                       "%s offset %" PRId64 ": %" PRId64
                       " timer log unit(s) below the checkpoint's flush position %" PRId64
                       " do not decode (the first here): damaged, stepped over; the timed "
                       "messages they held are not delivered",
                       mf ? mf->path : ts->root,
                       mf ? ts->first_damaged_pos - mf->start_offset : ts->first_damaged_pos,
                       ts->damaged_units, flush_pos);
    }
    if (closed_clean && ts->recovered_units > 0) {
        timer_warn(ts,
                   "config/timercheck is older than the timer log: %" PRId64
                   " unit(s) follow its flush position %" PRId64
                   " although the scheduler stopped after checkpointing everything (a stale "
                   "copy of the checkpoint): timed messages delivered since it may be "
                   "delivered again",
                   ts->recovered_units, flush_pos);
    }
    if (!check_only) {
        put64(ts->check.base + CHECK_CLOSED, 0); /* until the next clean close */
    }
    if (ts->relinked_units > 0) {
        timer_warn(ts,
                   "timerlog: %" PRId64
                   " unit(s) did not point at the unit before them in their slot: relinked",
                   ts->relinked_units);
    }
    if (ts->damaged_slots > 0) {
        timer_warn(ts,
                   "timerwheel: %" PRId64
                   " slot(s) not yet read did not name the units the timer log holds for them: "
                   "rebuilt from the log",
                   ts->damaged_slots);
    }
    if (!check_only &&
        (ts->damaged_units > 0 || ts->relinked_units > 0 || ts->repaired_slots > 0) &&
        (rc = flush_repairs(ts)) < 0) {
        shmq_timer_close(ts);
        return rc;
    }
    return 0;
}

int shmq_timer_open(shmq_timer_store_t *ts, const char *root, int64_t p, size_t seg_size,
                    int64_t now_ms)
{
    return timer_open(ts, root, p, seg_size, now_ms, false);
}

int shmq_timer_check(shmq_timer_store_t *ts, const char *root, int64_t p, size_t seg_size,
                     int64_t now_ms)
{
    int rc = timer_open(ts, root, p, seg_size, now_ms, true);
    if (rc == 0) {
        shmq_timer_close(ts);
    }
    return rc;
}

void shmq_timer_close(shmq_timer_store_t *ts)
{
    /* Everything checkpointed: a unit found after the flush position at the next open then
     * means a stale checkpoint, not a kill. */
    if (ts->check_open && !ts->check_only && ts->checkpointed && ts->flushed_pos == ts->write_pos) {
        put64(ts->check.base + CHECK_CLOSED, CHECK_EXT);
    }
    if (ts->log_open) {
        shmq_mfq_close(&ts->log);
        ts->log_open = false;
    }
    if (ts->wheel_open) {
        shmq_mf_close(&ts->wheel);
        ts->wheel_open = false;
    }
    if (ts->check_open) {
        shmq_mf_close(&ts->check);
        ts->check_open = false;
    }
    free(ts->segs);
    ts->segs = NULL;
    ts->nsegs = ts->segs_cap = 0;
}

/* ---- enqueue and read ------------------------------------------------------------------- */

/* The segment holding the next unit, closing the current one with a blank when full. */
static int log_room(shmq_timer_store_t *ts, shmq_mapped_file_t **out)
{
    int64_t seg = (int64_t)ts->seg_size;
    for (;;) {
        int64_t start = ts->write_pos - ts->write_pos % seg;
        size_t rel = (size_t)(ts->write_pos - start);
        shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, ts->write_pos);
        if (mf == NULL) {
            int rc = shmq_mfq_get_or_create(&ts->log, start, &mf);
            if (rc < 0) {
                return rc;
            }
        }
        if (ts->seg_size - rel >= SHMQ_TIMER_UNIT_SIZE + SHMQ_TIMER_BLANK_SIZE) {
            *out = mf;
            return 0;
        }
        uint8_t *b = mf->base + rel;
        put64(b + 4, 0);
        put32(b + 12, SHMQ_MAGIC_BLANK);
        put32(b, (int32_t)(ts->seg_size - rel));
        ts->write_pos = start + seg;
    }
}

int shmq_timer_enqueue(shmq_timer_store_t *ts, const shmq_timer_enq_t *e, int64_t now_ms,
                       int64_t *slot_ms)
{
    int64_t p = ts->precision;
    int64_t slot = floor_to(e->deliver_ms, p);
    int32_t magic = SHMQ_TIMER_MAGIC_DEFAULT | (e->magic & SHMQ_TIMER_MAGIC_DELETE);
    if (slot < ts->read_ms) {
        slot = ts->read_ms;
    }
    int64_t window = (int64_t)SHMQ_TIMER_ROLL_WINDOW_SLOTS * p;
    if (slot - now_ms >= window) {
        int64_t over = slot - now_ms - window;
        magic |= SHMQ_TIMER_MAGIC_ROLL;
        slot = floor_to(now_ms + (over < window / 3 ? window / 2 : window), p);
        if (slot < ts->read_ms) {
            slot = ts->read_ms;
        }
    }
    int64_t delta = slot - now_ms;
    if (delta > INT32_MAX || delta < INT32_MIN) {
        return shmq_error_set(
            SHMQ_E_RANGE, "timer slot %" PRId64 " is %" PRId64 " ms from now: outside the wheel",
            slot, delta);
    }
    shmq_mapped_file_t *mf;
    int rc = log_room(ts, &mf);
    if (rc < 0) {
        return rc;
    }
    int64_t pos = ts->write_pos;
    rc = seg_note(ts, mf->start_offset, slot);
    if (rc < 0) {
        return rc;
    }
    uint8_t *sp = slot_at(ts, slot);
    shmq_timer_slot_t s;
    shmq_timer_slot_decode(sp, &s);
    bool same = s.time_units == slot / p;
    shmq_timer_unit_t u = {.prev_pos = same ? s.last_pos : -1,
                           .magic = magic,
                           .write_ms = now_ms,
                           .delay_delta = (int32_t)delta,
                           .phys_offset = e->phys_offset,
                           .msg_size = e->msg_size,
                           .topic_hash = e->topic_hash};
    shmq_timer_unit_encode(mf->base + (pos - mf->start_offset), &u);
    ts->write_pos = pos + SHMQ_TIMER_UNIT_SIZE;
    /* The slot after the unit: a kill in between is repaired by reapply() at open. */
    if (same) {
        s.last_pos = pos;
        s.num++;
    } else {
        s = (shmq_timer_slot_t){
            .time_units = slot / p, .first_pos = pos, .last_pos = pos, .num = 1};
    }
    shmq_timer_slot_encode(sp, &s);
    ts->pending++;
    *slot_ms = slot;
    return 0;
}

int64_t shmq_timer_slot_last(const shmq_timer_store_t *ts, int64_t slot_ms)
{
    shmq_timer_slot_t s;
    shmq_timer_slot_decode(slot_at(ts, slot_ms), &s);
    return s.time_units == slot_ms / ts->precision ? s.last_pos : -1;
}

int64_t shmq_timer_slot_read(shmq_timer_store_t *ts, int64_t slot_ms, shmq_timer_unit_t **units,
                             int64_t **pos, size_t *cap, int64_t *broken)
{
    int64_t at = shmq_timer_slot_last(ts, slot_ms), next;
    size_t n = 0;
    while (at >= 0) {
        shmq_timer_unit_t u;
        if (at >= ts->write_pos || unit_at(ts, at, &u, &next) != 1 ||
            u.write_ms + u.delay_delta != slot_ms || u.prev_pos >= at) {
            (*broken)++;
            break;
        }
        if (n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            shmq_timer_unit_t *nu = realloc(*units, nc * sizeof(*nu));
            if (nu) {
                *units = nu;
            }
            int64_t *np = realloc(*pos, nc * sizeof(*np));
            if (np) {
                *pos = np;
            }
            if (!nu || !np) {
                return -ENOMEM;
            }
            *cap = nc;
        }
        (*units)[n] = u;
        (*pos)[n] = at;
        n++;
        at = u.prev_pos;
    }
    for (size_t i = 0; i < n / 2; i++) {
        shmq_timer_unit_t tu = (*units)[i];
        (*units)[i] = (*units)[n - 1 - i];
        (*units)[n - 1 - i] = tu;
        int64_t tp = (*pos)[i];
        (*pos)[i] = (*pos)[n - 1 - i];
        (*pos)[n - 1 - i] = tp;
    }
    return (int64_t)n;
}

void shmq_timer_progress(shmq_timer_store_t *ts, int64_t next_read_ms, int64_t slot_done,
                         int64_t units_done)
{
    uint8_t *c = ts->check.base;
    /* Order for a kill between two stores: the read time, then the count, then the slot the
     * count belongs to (a count is only used when its slot equals the read time). */
    put64(c + CHECK_READ_MS, next_read_ms);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    put64(c + CHECK_PROG_DONE, slot_done);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    put64(c + CHECK_PROG_SLOT, next_read_ms);
    /* The copies last: a kill leaves them behind (older), never ahead. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    put64(c + CHECK_READ_COPY, next_read_ms);
    put64(c + CHECK_DONE_COPY, slot_done);
    ts->read_ms = next_read_ms;
    ts->slot_done = slot_done;
    ts->pending -= units_done;
    if (ts->pending < 0) {
        ts->pending = 0;
    }
}

int shmq_timer_checkpoint(shmq_timer_store_t *ts)
{
    int rc = 0;
    int64_t from = ts->flushed_pos, to = ts->write_pos;
    while (rc == 0 && from < to) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&ts->log, from);
        if (mf == NULL) {
            break;
        }
        int64_t end = mf->start_offset + (int64_t)mf->size;
        int64_t upto = end < to ? end : to;
        rc = shmq_mf_flush(mf, (size_t)(from - mf->start_offset), (size_t)(upto - mf->start_offset),
                           SHMQ_FLUSH_MSYNC);
        from = upto;
    }
    if (rc == 0) {
        rc = shmq_mf_flush(&ts->wheel, 0, ts->wheel.size, SHMQ_FLUSH_FDATASYNC);
    }
    if (rc < 0) {
        return rc;
    }
    ts->flushed_pos = to;
    uint8_t *c = ts->check.base;
    put64(c + CHECK_FLUSH_POS, to);
    put64(c + CHECK_QUEUE_OFF, ts->queue_offset);
    put64(c + CHECK_MASTER_QO, ts->queue_offset);
    put64(c + CHECK_FLUSH_CPY, to);
    put64(c + CHECK_READ_MS, ts->read_ms); /* what progress stored, or the start's read time */
    put64(c + CHECK_READ_COPY, ts->read_ms);
    put64(c + CHECK_DONE_COPY, get64(c + CHECK_PROG_DONE));
    put64(c + CHECK_EXT_MAGIC, CHECK_EXT);
    put64(c + CHECK_STATE_VER, 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    put64(c + CHECK_TIMESTAMP, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    put64(c + CHECK_COUNTER, ++ts->counter);
    rc = shmq_mf_flush(&ts->check, 0, ts->check.size, SHMQ_FLUSH_MSYNC);
    if (rc < 0) {
        ts->checkpointed = false;
        return rc;
    }
    ts->checkpointed = true;
    /* Segments whose every unit was read are no longer needed. */
    while (ts->nsegs > 1 && ts->log.count > 1 && ts->segs[0].max_slot_ms < ts->read_ms &&
           ts->segs[0].start == shmq_mfq_min_offset(&ts->log) &&
           ts->segs[0].start + (int64_t)ts->seg_size <= ts->flushed_pos) {
        rc = shmq_mfq_delete_first(&ts->log);
        if (rc < 0) {
            return rc;
        }
        memmove(ts->segs, ts->segs + 1, (ts->nsegs - 1) * sizeof(*ts->segs));
        ts->nsegs--;
    }
    return 0;
}
