/*
 * config/delaycheck: the delay levels' progress as each batch of deliveries
 * is acknowledged (shmq's own file; RocketMQ keeps only delayOffset.json,
 * which the scheduler still saves every flushDelayOffsetInterval and at stop).
 *
 *   8192 bytes: "shmqdly1" at 0, then from 64 two slots of 48 bytes per delay
 *   level (level l, 1-based, at 64 + (l - 1) * 96), each: seq(8) offset(8)
 *   anchor queue offset(8) anchor CommitLog offset(8) anchor store
 *   time(8) check(8), native byte order (the file never leaves its host).
 *
 * A slot says: every unit of SCHEDULE_TOPIC_XXXX queue l - 1 below offset
 * was delivered (acknowledged) or settled, and the unit at the anchor queue
 * offset (the last one the scheduler read below offset) was this record.
 * Slots are written in turn (seq + 1 into the other one), check last, so a
 * kill or a torn page leaves the older slot whole.  Single user: the
 * scheduler.  The file is mapped shared: a kill -9 of the scheduler or of
 * the whole store keeps what was stored; a power cut may lose the page's
 * last stores, which only takes progress back (messages delivered again,
 * never skipped).  A store that starts as a slave removes the file: its log
 * may be cut and another master's delivered meanwhile.
 */
#ifndef SHMQ_FORMAT_DELAY_CHECK_H
#define SHMQ_FORMAT_DELAY_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "format/mapped_file.h"

#define SHMQ_DELAYCHECK_SIZE   8192
#define SHMQ_DELAYCHECK_LEVELS 64 /* levels it holds (SHMQ_MAX_DELAY_LEVELS) */

typedef struct shmq_delay_anchor {
    int64_t queue_offset; /* a unit of the level's queue below the progress */
    int64_t phys;         /* its record's CommitLog offset */
    int64_t store_ts;     /* its record's store time */
} shmq_delay_anchor_t;

typedef struct shmq_delaycheck {
    shmq_mapped_file_t mf;
    bool open;
    uint64_t seq[SHMQ_DELAYCHECK_LEVELS]; /* the newest whole slot's seq per level */
} shmq_delaycheck_t;

/* Map root/config/delaycheck, created when missing.  0 or < 0 (the detail names the file). */
int shmq_delaycheck_open(shmq_delaycheck_t *dc, const char *root);

void shmq_delaycheck_close(shmq_delaycheck_t *dc);

/* Level (1-based)'s newest whole slot: true and its offset and anchor, false if none. */
bool shmq_delaycheck_get(const shmq_delaycheck_t *dc, int level, int64_t *offset,
                         shmq_delay_anchor_t *anchor);

/* Store level's progress and its anchor into the older slot. */
void shmq_delaycheck_put(shmq_delaycheck_t *dc, int level, int64_t offset,
                         const shmq_delay_anchor_t *anchor);

/* Remove root/config/delaycheck (a store starting as a slave): 0, also when there was none. */
int shmq_delaycheck_remove(const char *root);

#endif
