/*
 * ConsumeQueue: the per (topic, queue id) index of a topic's records in the
 * CommitLog, as 20-byte units (phys offset, size, tagsCode), big-endian,
 * stored under <root>/consumequeue/<topic>/<queueId>/<20-digit byte offset>.
 *
 * Unit n (queue offset n) is at byte n*20 of the queue's logical stream.
 * Default file size 6,000,000 bytes (300,000 units); configured sizes are
 * rounded up to a multiple of 20.
 *
 * Single writer (the dispatcher); readers may read any unit below the
 * published max offset.
 */
#ifndef SHMQ_CONSUME_QUEUE_H
#define SHMQ_CONSUME_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "format/commitlog.h"
#include "format/mapped_file.h"

typedef struct shmq_cq_unit {
    int64_t phys_offset;
    int32_t size;
    int64_t tags_code;
} shmq_cq_unit_t;

typedef struct shmq_cq {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t queue_id;
    shmq_mfq_t q;
    int64_t min_logic_offset; /* byte offset of the first valid unit */
    int64_t write_pos;        /* byte offset after the last unit (logical stream) */
    int64_t flushed_pos;      /* bytes below it are on disk */
    int64_t max_phys_offset;  /* end (phys + size) of the last unit's record, 0 when empty;
                                 blank pre-fill units do not count */
    int flush_err;            /* first flush error; later flushes return SHMQ_E_FENCED */
    bool readonly;
    /* The writer's segment of the last unit appended, while q.unmapped == tail_unmapped. */
    const shmq_mapped_file_t *tail;
    uint64_t tail_unmapped;
} shmq_cq_t;

/* Boundaries for shmq_cq_offset_by_time (RocketMQ 5). */
enum shmq_boundary { SHMQ_BOUNDARY_LOWER = 0, SHMQ_BOUNDARY_UPPER = 1 };

/* Round a configured file size up to a multiple of 20. */
size_t shmq_cq_file_size(size_t configured);

/*
 * Open (create the directory unless read-only) the queue of topic/queue_id
 * under root/consumequeue.  file_size must already be a multiple of 20.
 * Loads the files and runs the per-queue scan (shmq_cq_recover) so that
 * write_pos and max_phys_offset are known.
 * Errors: SHMQ_E_TOPIC (empty, > 255 bytes, contains '/', "." or ".."),
 * SHMQ_E_ARG (queue_id < 0, bad file size), errors of shmq_mfq_open().  A
 * missing directory opened read-only is an empty queue.
 * With SHMQ_CQ_NO_SCAN (read-only only) the scan is left out: every position
 * is 0 until the caller sets write_pos and min_logic_offset to the ones the
 * dispatcher published (a consumer, which never reads past them).
 */
#define SHMQ_CQ_NO_SCAN 0x100 /* not a SHMQ_MF_ flag: never passed on to the files */
int shmq_cq_open(shmq_cq_t *cq, const char *root, const char *topic, int32_t queue_id,
                 size_t file_size, unsigned flags);
void shmq_cq_close(shmq_cq_t *cq);

/*
 * Recovery scan (ROCKETMQ-FACTS §7.3): from the third-from-last file, keep
 * units while phys >= 0 and size > 0; the queue ends after the last valid
 * unit; later files are removed and the rest of the last one zeroed (and
 * synced).  min_logic_offset = first file's start past leading blank units;
 * max_phys_offset = phys + size of the last non-blank unit; flushed_pos =
 * first file's start.  A queue without any valid unit (or without files) is
 * empty at offset 0: all positions 0.  Read-only: positions only, no file is
 * touched.
 */
int shmq_cq_recover(shmq_cq_t *cq);

/* Encode a unit (phys offset, size, tagsCode; big-endian) at p. */
static inline void shmq_cq_unit_encode(uint8_t *p, int64_t phys_offset, int32_t size,
                                       int64_t tags_code)
{
    shmq_put_be64(p, (uint64_t)phys_offset);
    shmq_put_be32(p + 8, (uint32_t)size);
    shmq_put_be64(p + 12, (uint64_t)tags_code);
}

/*
 * Writer: write the unit at write_pos wp (inside segment mf, arguments
 * checked) and publish it.
 */
static inline __attribute__((always_inline)) void shmq_cq_put_unit(shmq_cq_t *cq,
                                                                   const shmq_mapped_file_t *mf,
                                                                   int64_t wp, int64_t phys_offset,
                                                                   int32_t size, int64_t tags_code)
{
    shmq_cq_unit_encode(mf->base + (wp - mf->start_offset), phys_offset, size, tags_code);
    cq->max_phys_offset = phys_offset + size;
    /* Release: a reader that sees the new write_pos sees the unit's bytes. */
    __atomic_store_n(&cq->write_pos, wp + SHMQ_CQ_UNIT_SIZE, __ATOMIC_RELEASE);
}

/*
 * shmq_cq_append() for every unit but the usual one, out of line: the
 * checks and refusals, "already built", and the lookup (maybe a new file or
 * a pre-fill) of cq_append_slow.  It decides every unit by itself: a unit
 * the inline part would take is written the same way.
 */
int shmq_cq_append_rest(shmq_cq_t *cq, int64_t queue_offset, int64_t phys_offset, int32_t size,
                        int64_t tags_code);

/*
 * Append the unit for queue offset queue_offset.  Idempotent: if phys +
 * size <= max_phys_offset the unit is already there and 0 is returned.
 * If the queue is empty and queue_offset > 0, the file is pre-filled with
 * blank units (0, 0x7FFFFFFF, 0) and min_logic_offset set.  A queue holding
 * only blank units (an interrupted pre-fill) counts as empty: its files are
 * replaced.  A queue_offset below the end is skipped (returns 0); above it
 * is SHMQ_E_RANGE (a gap would make readers see blank units).  SHMQ_E_ARG
 * when read-only or for a negative offset / non-positive size.
 *
 * Inline (the dispatcher runs it on every record): the usual unit (the next
 * one, in the segment of the previous one, arguments in range, not built
 * yet) is written here without a call; anything else goes to
 * shmq_cq_append_rest().
 */
static inline __attribute__((always_inline)) int shmq_cq_append(shmq_cq_t *cq, int64_t queue_offset,
                                                                int64_t phys_offset, int32_t size,
                                                                int64_t tags_code)
{
    const shmq_mapped_file_t *tail = cq->tail;
    int64_t wp = cq->write_pos; /* ours: this process is the queue's only writer */
    /* Unsigned compares: a negative queue or physical offset is out of range too. */
    if (!cq->readonly && (uint64_t)queue_offset <= INT64_MAX / SHMQ_CQ_UNIT_SIZE - 1 && size > 0 &&
        (uint64_t)phys_offset <= (uint64_t)(INT64_MAX - size) &&
        phys_offset + size > cq->max_phys_offset && queue_offset * SHMQ_CQ_UNIT_SIZE == wp &&
        tail != NULL && cq->tail_unmapped == cq->q.unmapped && wp >= tail->start_offset &&
        wp - tail->start_offset + SHMQ_CQ_UNIT_SIZE <= (int64_t)tail->size) {
        shmq_cq_put_unit(cq, tail, wp, phys_offset, size, tags_code);
        return 0;
    }
    return shmq_cq_append_rest(cq, queue_offset, phys_offset, size, tags_code);
}

/* Read unit at queue offset; SHMQ_E_RANGE outside [min, max). */
int shmq_cq_read(const shmq_cq_t *cq, int64_t queue_offset, shmq_cq_unit_t *unit);

/* Min and max queue offsets (units): min = min_logic_offset/20, max = write_pos/20. */
static inline int64_t shmq_cq_min_offset(const shmq_cq_t *cq)
{
    return cq->min_logic_offset / SHMQ_CQ_UNIT_SIZE;
}

static inline int64_t shmq_cq_max_offset(const shmq_cq_t *cq)
{
    /* acquire: pairs with the writer's release of write_pos after the unit bytes below it */
    return __atomic_load_n(&cq->write_pos, __ATOMIC_ACQUIRE) / SHMQ_CQ_UNIT_SIZE;
}

/*
 * Queue offset by store time (RocketMQ 5 rules, §16.1); store time of a unit
 * is read from its CommitLog record.  Units below the CommitLog's min offset
 * (and blank units) count as "before"; a record that cannot be read makes the
 * search return 0 (then clamped).  Only files holding units in [min, max) are
 * considered, and a file's first unit is its first unit at or above min.
 * Result clamped to [min, max]; an empty queue gives min (0 for a new queue).
 */
int64_t shmq_cq_offset_by_time(const shmq_cq_t *cq, const shmq_commitlog_t *cl, int64_t ts,
                               enum shmq_boundary boundary);

/*
 * Drop units whose records reach beyond phys (after the CommitLog was cut
 * there): ROCKETMQ-FACTS §7.4.  From the last file back, a file whose first
 * unit is dropped is unlinked whole; in the file kept, units are kept while
 * phys_offset + size <= phys (a record that starts below phys but ends after
 * it goes too); blank pre-fill units are kept unless phys is 0.  Zeroes
 * (and syncs) the dropped bytes; updates write_pos, flushed_pos and
 * max_phys_offset.  A queue left without files is empty at offset 0 (min =
 * max = 0).  No-op when 0 < phys and max_phys_offset <= phys.  SHMQ_E_ARG
 * when read-only.
 */
int shmq_cq_truncate_dirty(shmq_cq_t *cq, int64_t phys);

/*
 * Flush written units (least_pages as in the CommitLog: a segment is flushed
 * when full, or when least_pages > 0 and that many 4 KiB pages are unflushed,
 * or when least_pages <= 0 and anything is unflushed).  Segments are flushed
 * in order; flushed_pos advances only over flushed bytes.  After a failure
 * every later call returns SHMQ_E_FENCED.  SHMQ_E_ARG when read-only.
 */
int shmq_cq_flush(shmq_cq_t *cq, int least_pages);

/* One msync of shmq_cq_flush(): bytes [from, to) of mf, after which the queue is flushed up to
 * flushed_to. */
typedef struct shmq_cq_flush_step {
    shmq_mapped_file_t *mf;
    size_t from, to;
    int64_t flushed_to;
} shmq_cq_flush_step_t;

/*
 * shmq_cq_flush() in three parts, so that its msyncs can be made by another
 * thread while the queue's owner goes on appending (the dispatcher's flush
 * thread): the steps it would make now, in order, at most max of them
 * (their count, or SHMQ_E_ARG / SHMQ_E_FENCED as shmq_cq_flush()); one step
 * made (an msync: it reads nothing of cq, only the step's mapping, which
 * must stay mapped until it returns); a step's result recorded (rc 0:
 * flushed_pos moves to its flushed_to; an error is kept, and every later
 * plan or flush returns SHMQ_E_FENCED).  Steps are recorded in plan order.
 */
int shmq_cq_flush_plan(const shmq_cq_t *cq, int least_pages, shmq_cq_flush_step_t *steps, int max);
int shmq_cq_flush_step(const shmq_cq_flush_step_t *s);
void shmq_cq_flush_done(shmq_cq_t *cq, const shmq_cq_flush_step_t *s, int rc);

/*
 * Correct the minimum after the CommitLog minimum moved to min_phys: delete
 * files (never the last) whose last unit is below it, then binary-search the
 * first unit at or above it; if even the last unit is below, the minimum is
 * the end of the queue.  The minimum never decreases.  Read-only: no file is
 * deleted, the minimum is still computed.
 */
int shmq_cq_correct_min(shmq_cq_t *cq, int64_t min_phys);

#endif
