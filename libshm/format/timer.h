/*
 * RocketMQ 5's timer store (ROCKETMQ-FACTS §17): the timer wheel, the timer
 * log and the timer checkpoint of messages that ask to be delivered at a
 * given time (rmq_sys_wheel_timer).  Byte-compatible files, all big-endian:
 *
 *   <root>/timerwheel          2 x 604,800 slots of 32 bytes (38,707,200):
 *                              timeUnits(8) firstPos(8) lastPos(8) num(4) magic(4);
 *                              the slot of time t is (t / P) % 1,209,600.
 *   <root>/timerlog/<20-digit> segments of 52-byte units: size(4) = 52,
 *                              prevPos(8), magic(4), writeTimeMs(8),
 *                              delayDelta(4) (= slot time - writeTime),
 *                              CommitLog offset(8), message size(4),
 *                              hash of REAL_TOPIC(4), reserved(8).  A unit
 *                              that would leave less than 16 bytes is
 *                              preceded by a 16-byte blank (remaining(4),
 *                              0L(8), 0xCBD43194(4)) ending the segment.
 *   <root>/config/timercheck   4096 bytes: lastReadTimeMs at 0,
 *                              lastTimerLogFlushPos at 8,
 *                              lastTimerQueueOffset at 16,
 *                              masterTimerQueueOffset at 24, then
 *                              dataVersion (stateVersion 32, timestamp 40,
 *                              counter 48).  shmq adds, at 64, the slot
 *                              being delivered and at 72 how many of its
 *                              units were; copies of lastReadTimeMs at 80,
 *                              of lastTimerLogFlushPos at 96 and of the
 *                              count at 104, marked present by "shmqtck1"
 *                              at 88; "shmqtck1" at 112 while closed after
 *                              a checkpoint of everything (RocketMQ ignores
 *                              bytes past 56).
 *
 * Each slot is a backward list: the wheel's lastPos names the newest unit,
 * each unit's prevPos the one before (-1: none).  A slot whose timeUnits is
 * not the wanted time / P is empty.
 *
 * Single user: the scheduler process.  Crash safety: a unit's size field is
 * written last, the wheel slot after the unit; the checkpoint (log and
 * wheel flushed, then lastTimerLogFlushPos and lastTimerQueueOffset) names
 * only durable data; the read time and the progress inside a slot are
 * stored in the mapped checkpoint as soon as the deliveries they cover are
 * acknowledged.  Opening cuts a torn last unit (at or after the checkpoint's
 * flush position), steps over units below it that do not decode (damage),
 * links each unit to the one before it in its slot, and makes every slot
 * not yet read name exactly the units the log holds for it: a slot update
 * lost by a kill, a slot naming units beyond the log's end (a host crash)
 * and a damaged slot are all repaired from the log.  A checkpoint field and
 * its copy that differ are reported, and the value that loses no message
 * is used; a checkpoint that is all zeros while the log holds units reads
 * from the oldest unit; units after the flush position of a checkpoint
 * closed cleanly mean a stale checkpoint.  Damage is reported through
 * shmq_meta_warn().
 */
#ifndef SHMQ_TIMER_H
#define SHMQ_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/mapped_file.h"
#include "shmq/errors.h"

#define SHMQ_TIMER_SLOTS_TOTAL       (7 * 86400) /* slotsTotal: 604,800 */
#define SHMQ_TIMER_WHEEL_SLOTS       (2 * SHMQ_TIMER_SLOTS_TOTAL)
#define SHMQ_TIMER_SLOT_SIZE         32
#define SHMQ_TIMER_WHEEL_SIZE        ((size_t)SHMQ_TIMER_WHEEL_SLOTS * SHMQ_TIMER_SLOT_SIZE)
#define SHMQ_TIMER_UNIT_SIZE         52
#define SHMQ_TIMER_BLANK_SIZE        16
#define SHMQ_TIMER_ROLL_WINDOW_SLOTS 172800 /* timerRollWindowSlot: 2 days of 1 s slots */
#define SHMQ_TIMERCHECK_SIZE         4096

/* Unit magic bits; a unit is valid iff (magic | 0xF) == 0xF. */
#define SHMQ_TIMER_MAGIC_DEFAULT 1
#define SHMQ_TIMER_MAGIC_ROLL    2
#define SHMQ_TIMER_MAGIC_DELETE  4

/* One timer log unit. */
typedef struct shmq_timer_unit {
    int64_t prev_pos;
    int32_t magic;
    int64_t write_ms;
    int32_t delay_delta; /* slot time - write_ms */
    int64_t phys_offset; /* the rmq_sys_wheel_timer record */
    int32_t msg_size;
    int32_t topic_hash; /* Java hashCode of REAL_TOPIC */
} shmq_timer_unit_t;

/* One wheel slot. */
typedef struct shmq_timer_slot {
    int64_t time_units; /* slot time / precision */
    int64_t first_pos;
    int64_t last_pos;
    int32_t num;
    int32_t magic;
} shmq_timer_slot_t;

/* Encode u at dst (52 bytes; the size field is stored last). */
void shmq_timer_unit_encode(uint8_t *dst, const shmq_timer_unit_t *u);

/*
 * Decode the unit at src (avail bytes to the segment's end).  Returns 1 for
 * a valid unit, 0 for a blank (end of segment), SHMQ_E_CORRUPT for anything
 * else (zeros, a torn unit, garbage).
 */
int shmq_timer_unit_decode(const uint8_t *src, size_t avail, shmq_timer_unit_t *u);

void shmq_timer_slot_encode(uint8_t *dst, const shmq_timer_slot_t *s);
void shmq_timer_slot_decode(const uint8_t *src, shmq_timer_slot_t *s);

/* Index in the wheel of the slot for time t (ms) at precision p. */
int64_t shmq_timer_slot_index(int64_t t, int64_t p);

/* The store. */
typedef struct shmq_timer_seg {
    int64_t start;
    int64_t max_slot_ms; /* latest slot time of its units (-1 none): deletable once read past */
} shmq_timer_seg_t;

typedef struct shmq_timer_store {
    char root[PATH_MAX];
    int64_t precision; /* P, timerPrecisionMs */
    size_t seg_size;   /* mappedFileSizeTimerLog */
    shmq_mfq_t log;
    bool log_open;
    int64_t write_pos;   /* end of the last unit */
    int64_t flushed_pos; /* log bytes below it are on disk */
    shmq_mapped_file_t wheel;
    bool wheel_open;
    shmq_mapped_file_t check;
    bool check_open;
    int64_t read_ms;      /* slots before it are delivered (lastReadTimeMs) */
    int64_t slot_done;    /* units of slot read_ms delivered, oldest first */
    int64_t queue_offset; /* next rmq_sys_wheel_timer/0 unit to enqueue (the caller's) */
    int64_t pending;      /* units in slots at or after read_ms */
    int64_t counter;      /* checkpoint dataVersion counter */
    /* What opening found after the checkpoint (units the last run wrote but did not
     * checkpoint): the caller raises queue_offset past their records. */
    int64_t recovered_units;
    int64_t recovered_max_phys; /* -1: none */
    int64_t repaired_slots;     /* slots made to name what the log holds for them */
    /* Damage opening found (each reported): */
    int64_t damaged_units;     /* units below the flush position that do not decode */
    int64_t first_damaged_pos; /* the first of them */
    int64_t relinked_units;    /* units whose prevPos was not their slot's unit before them */
    int64_t damaged_slots;     /* slots repaired that no kill or crash explains */
    int64_t log_units;         /* valid units in the log */
    int64_t oldest_slot_ms;    /* the oldest slot of a unit in the log (-1: none) */
    shmq_timer_seg_t *segs;
    size_t nsegs;
    size_t segs_cap;
    bool check_only;   /* shmq_timer_check: mapped read-only, nothing repaired */
    bool checkpointed; /* the last checkpoint succeeded */
    bool no_repair;    /* the log was written with another precision: slots left alone */
} shmq_timer_store_t;

/* True if <root>/timerwheel exists (the store has timer files), whatever it is: a link counts. */
bool shmq_timer_exists(const char *root);

/*
 * Open (creating if needed: the wheel and checkpoint are allocated whole,
 * the log's first segment on the first unit) the timer files of the store
 * at root with precision p (ms, 100..1000) and log segments of seg_size
 * bytes, and recover them (see the top of this file).  read_ms starts at
 * the checkpoint's, or at now_ms floored to p for new files; never older
 * than the wheel's span before now.  A wheel or checkpoint of another size
 * is SHMQ_E_SEGMENT.  Files are created SHMQ_FILE_MODE (0640) and opened as
 * every file of a store (store_files.h): a symbolic link at timerwheel or
 * config/timercheck is -ELOOP, a FIFO or other non-regular file -EINVAL,
 * each with a detail naming it; nothing is created through a link.
 */
int shmq_timer_open(shmq_timer_store_t *ts, const char *root, int64_t p, size_t seg_size,
                    int64_t now_ms);

/*
 * Check the timer files of the stopped store at root without changing them
 * (shmqctl verify): what shmq_timer_open would repair or report is reported
 * through shmq_meta_warn() and counted in *ts (damaged_units,
 * relinked_units, damaged_slots; the store is closed again before it
 * returns).  SHMQ_E_NOT_FOUND when the store has no timer files; the errors
 * of shmq_timer_open otherwise.
 */
int shmq_timer_check(shmq_timer_store_t *ts, const char *root, int64_t p, size_t seg_size,
                     int64_t now_ms);

/* Unmap everything (no flush: call shmq_timer_checkpoint first for a clean close). */
void shmq_timer_close(shmq_timer_store_t *ts);

/* A unit to enqueue. */
typedef struct shmq_timer_enq {
    int64_t phys_offset;
    int32_t msg_size;
    int32_t topic_hash;
    int64_t deliver_ms; /* TIMER_OUT_MS */
    int32_t magic;      /* 0, or SHMQ_TIMER_MAGIC_DELETE for a cancel marker */
} shmq_timer_enq_t;

/*
 * Append a unit for e at time now_ms: into the slot of deliver_ms floored to
 * P, but not before read_ms (a due message goes to the next slot read); one
 * timerRollWindowSlot slots or more ahead it is a ROLL unit placed at now +
 * the window (now + half of it when the overshoot is under a third of it),
 * to be enqueued again when read.  *slot_ms gets the slot time.  Errors:
 * -ENOSPC (segment allocation), SHMQ_E_RANGE (a slot beyond the wheel's
 * span).
 */
int shmq_timer_enqueue(shmq_timer_store_t *ts, const shmq_timer_enq_t *e, int64_t now_ms,
                       int64_t *slot_ms);

/*
 * The units of slot slot_ms, oldest first, with their positions: (*units,
 * *pos) grow as needed (*cap entries; free them with free()).  The walk
 * stops at a unit that is invalid or of another slot (counted in *broken).
 * Returns the number of units or -ENOMEM.
 */
int64_t shmq_timer_slot_read(shmq_timer_store_t *ts, int64_t slot_ms, shmq_timer_unit_t **units,
                             int64_t **pos, size_t *cap, int64_t *broken);

/* The newest unit position of slot slot_ms, or -1 (to notice units added while reading it). */
int64_t shmq_timer_slot_last(const shmq_timer_store_t *ts, int64_t slot_ms);

/*
 * Record delivery progress in the mapped checkpoint: read_ms = next_read_ms
 * and slot_done units of it done; units_done units left the wheel.
 */
void shmq_timer_progress(shmq_timer_store_t *ts, int64_t next_read_ms, int64_t slot_done,
                         int64_t units_done);

/*
 * Flush the log and the wheel, then write lastTimerLogFlushPos = write_pos
 * and lastTimerQueueOffset = queue_offset and flush the checkpoint; delete
 * log segments whose units were all read.  A failed flush is returned and
 * nothing after it is written.
 */
int shmq_timer_checkpoint(shmq_timer_store_t *ts);

#endif
