/*
 * The CommitLog: one sequential log of RocketMQ records for every topic,
 * stored as fixed-size segments under <root>/commitlog.
 *
 * Single writer: appends are not thread-safe; the caller serialises them
 * (the writer process in the broker, the tool in offline use).  Readers may
 * read any record below wrote_pos concurrently.
 *
 * Positions ("last byte + 1", logical CommitLog offsets):
 *   wrote_pos    end of the last appended record (advanced by append);
 *   flushed_pos  all bytes below it are on disk (advanced by flush).
 * A record never ends closer than 8 bytes to its segment's end; when one does
 * not fit, an 8-byte blank record (remaining length, BLANK magic) closes the
 * segment and the record goes to the start of the next.
 */
#ifndef SHMQ_COMMITLOG_H
#define SHMQ_COMMITLOG_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "format/mapped_file.h"
#include "format/message.h"
#include "format/record_scan.h"

typedef struct shmq_commitlog {
    shmq_mfq_t q;
    int64_t wrote_pos;
    int64_t flushed_pos;
    int flush_err; /* first flush (or staged write) error; once set, appends and flushes fail */
    enum shmq_flush_method flush_how;
    shmq_host_t store_host; /* stamped on every record (default: local host, port 10911) */
    bool readonly;
    int64_t last_store_ts; /* store time of the last append; recovery may set it */
    int64_t prep_asked;    /* next-segment offset already handed to shmq_mfq_prepare */
    int64_t warm_asked;    /* ask for the next prepared window once appends reach this */
    bool positions_known;  /* set_positions/append/truncate happened: reads stop at wrote_pos */
    int64_t raw_end;       /* a slave: end of the master's bytes put (>= wrote_pos) */
    /* The segment the last append_plans wrote in, while q.unmapped == app_unmapped. */
    shmq_mapped_file_t *app_seg;
    uint64_t app_unmapped;
    /* SHMQ_MF_STAGED: where the writer's room puts records before they are written into
     * the segment (SHMQ_CL_STAGE_BYTES; NULL: into the mapping). */
    uint8_t *stage;
} shmq_commitlog_t;

/*
 * Staged appends (SHMQ_MF_STAGED, the writer's SYNC_FLUSH CommitLog).  A
 * store into a shared mapping dirties the whole page-cache piece it falls in
 * (mapped_file.h), so an msync after it writes back the whole piece; and in a
 * VM each page the writer first stores into costs a fault of the host's page
 * tables (5 us here, 14 us after an msync made the page read-only again).
 * With SHMQ_MF_STAGED the room (shmq_commitlog_room) is a buffer of the
 * log's own, and shmq_commitlog_room_done() writes the records into the
 * segment with pwrite(2) before it publishes them: the page cache then
 * marks only the 4 KiB blocks written as dirty, and a group commit writes
 * back those.  Readers see the same pages: they map the file.  A record
 * bigger than the buffer goes into the mapping, as without the flag.
 */
#define SHMQ_CL_STAGE_BYTES (2u << 20)

/* Result of one append. */
typedef struct shmq_append_result {
    int64_t phys_offset;
    int32_t size;
    int64_t store_ts;
    int64_t queue_offset;
    char msg_id[SHMQ_MSGID_MAX];
} shmq_append_result_t;

/*
 * Open the CommitLog in dir with segments of seg_size bytes (flags from
 * mapped_file.h).  Positions start at the end of the loaded files' content
 * only after recovery sets them (shmq_commitlog_set_positions); until then
 * wrote_pos = flushed_pos = the first segment's start.
 */
int shmq_commitlog_open(shmq_commitlog_t *cl, const char *dir, size_t seg_size, unsigned flags);

/* What a writable open adds for the flush mode: under SYNC_FLUSH each group commit flushes
 * the few records written since the last one, so the log's pages are put in the cache in
 * fine pieces (SHMQ_MF_FINE) that a commit writes back; under ASYNC_FLUSH the pieces follow
 * the writer's rate (shmq_mfq_prefault_ahead). */
static inline unsigned shmq_commitlog_flush_flags(bool sync_flush)
{
    return sync_flush ? SHMQ_MF_FINE : 0u;
}
void shmq_commitlog_close(shmq_commitlog_t *cl);

/* Set wrote_pos and flushed_pos (after recovery). */
void shmq_commitlog_set_positions(shmq_commitlog_t *cl, int64_t wrote, int64_t flushed);

/*
 * Append one message at wrote_pos with the given queue offset.  store_ts 0
 * means "now" (ms); a store timestamp is never below the previous record's.
 * Fills *res.  Errors: SHMQ_E_FENCED after a failed flush, -ENOSPC when a
 * new segment cannot be allocated, SHMQ_E_SIZE if the record can never fit
 * a segment, errors of shmq_record_size().
 */
int shmq_commitlog_append(shmq_commitlog_t *cl, const shmq_msg_in_t *m, int64_t queue_offset,
                          int64_t store_ts, shmq_append_result_t *res);

/*
 * Append n messages as one unit: all land in the same segment with
 * consecutive positions (a blank record moves the whole batch when it does
 * not fit).  queue_offsets[i] is used for m[i].  res has n entries.
 */
int shmq_commitlog_append_batch(shmq_commitlog_t *cl, const shmq_msg_in_t *m, size_t n,
                                const int64_t *queue_offsets, int64_t store_ts,
                                shmq_append_result_t *res);

/*
 * The writer's append: as shmq_commitlog_append_batch() (one unit; store_ts
 * 0 means now, and a time before the last append's is raised to it), of
 * records planned already: plans[i] is shmq_record_plan() of m[i], whose
 * store_host must be cl->store_host.  Each record is encoded once, reading
 * each byte of m[i].body once (it may be shared memory).  res[i].msg_id is
 * left empty (shmq_msgid_format() makes it on demand).
 */
int shmq_commitlog_append_plans(shmq_commitlog_t *cl, const shmq_msg_in_t *m,
                                const shmq_record_plan_t *plans, size_t n,
                                const int64_t *queue_offsets, int64_t store_ts,
                                shmq_append_result_t *res);

/* Room for records at wrote_pos (shmq_commitlog_room()). */
typedef struct shmq_commitlog_room {
    uint8_t *dst; /* where the records go (mapped, writable; or the stage) */
    int fd;       /* staged: the segment the stage is written into; -1: dst is mapped */
    int64_t pos;  /* their CommitLog offset: wrote_pos */
    int64_t rel;  /* pos within its segment */
    int64_t ts;   /* their store time (the store_ts asked for, never before the last one) */
    int64_t most; /* bytes the segment holds from pos, a closing blank record kept aside */
} shmq_commitlog_room_t;

/*
 * The writer's in-place append, in two steps: room for total bytes of
 * records in the segment the last append went to, announced to the
 * preparing thread (0), or 1 when that segment cannot take them (or appends
 * may not go on): then only shmq_commitlog_append_plans() can append, which
 * closes a full segment and words the errors.  The caller writes its records
 * at room->dst (nothing past total, or what shmq_commitlog_room_grow() gave
 * it), then publishes done bytes of them with
 * shmq_commitlog_room_done(), or leaves them unpublished (clearing what it
 * wrote: no valid-looking record past wrote_pos).
 */
int shmq_commitlog_room(shmq_commitlog_t *cl, int64_t total, int64_t store_ts,
                        shmq_commitlog_room_t *room);
/* 0, or a staged room whose write failed: nothing is published, and the log takes no
 * append or flush again (flush_err: the page cache holds an unknown part of the bytes). */
int shmq_commitlog_room_done(shmq_commitlog_t *cl, const shmq_commitlog_room_t *room, int64_t done);

/* The room grown to end bytes from room->pos (announced to the preparing thread); false when
 * the segment (or the stage) does not hold them (the records written so far stay to be
 * published). */
static inline bool shmq_commitlog_room_grow(shmq_commitlog_t *cl, shmq_commitlog_room_t *room,
                                            int64_t end)
{
    if (end > room->most) {
        return false;
    }
    shmq_mfq_write_horizon(&cl->q, room->pos + end);
    return true;
}

/* shmq_commitlog_append_plans() of one record (n 1), without the loops; every pointer must
 * be valid (none is checked for NULL). */
int shmq_commitlog_append_plan(shmq_commitlog_t *cl, const shmq_msg_in_t *m,
                               const shmq_record_plan_t *plan, int64_t queue_offset,
                               int64_t store_ts, shmq_append_result_t *res)
    __attribute__((nonnull));

/*
 * A slave: put len bytes of the master's log at offset, which must be where
 * the bytes put so far end (raw_end; wrote_pos after set_positions or
 * truncate); a log without records (shmq_commitlog_empty) starts at any
 * segment's first byte, its empty segments removed.  Then every
 * record the bytes complete is checked as recovery checks it (sizes,
 * magic, body and record CRCs, its own offset, a blank closing each
 * segment) and wrote_pos moves past it; a record not complete yet waits
 * for more bytes.  Returns wrote_pos.  A record that does not check out:
 * SHMQ_E_CORRUPT naming its offset; wrote_pos ends at its start (past the
 * good records before it) and the bytes put after it are zeroed (raw_end =
 * wrote_pos).  SHMQ_E_RANGE when offset is not raw_end.
 */
int64_t shmq_commitlog_put_raw(shmq_commitlog_t *cl, int64_t offset, const uint8_t *data,
                               size_t len);

/* The log holds no record (no segment, or nothing written in its first). */
bool shmq_commitlog_empty(const shmq_commitlog_t *cl);

/*
 * Decode the record at phys_offset with the given decode flags.  Bytes at
 * and above wrote_pos are not read once positions are known (set, or an
 * append happened); before that (a read-only log nobody set positions on)
 * a record is bounded by its segment's end only.  Returns as shmq_record_decode():
 * > 0 size, 0 blank, < 0 error (SHMQ_E_RANGE when no segment holds it).
 */
int shmq_commitlog_read(const shmq_commitlog_t *cl, int64_t phys_offset, unsigned flags,
                        shmq_record_t *out);

/*
 * Iterate: *pos is a record position; reads the record there (limited to
 * bytes below limit), skipping blank records to the next segment.  On
 * success fills *out, sets *pos to the next position, returns size > 0.
 * Returns SHMQ_E_END when *pos reaches limit, or a decode error (with *pos
 * left at the bad record).
 */
int shmq_commitlog_next(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit, unsigned flags,
                        shmq_record_t *out);

/*
 * shmq_commitlog_next() with the light decode (record_scan.h): the same
 * iteration, checks and return values, only the header fields and the
 * properties area.  flags: 0 or SHMQ_DECODE_CHECK_PHYS.
 */
int shmq_commitlog_next_head(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit,
                             unsigned flags, shmq_record_head_t *out);

/*
 * A reader's cursor: the segment of its last read, so that the records
 * after the first are read without a segment lookup.  Zero it before the
 * first read; it notices segments unmapped since (cl->q.unmapped), also
 * when it moved to another position.
 */
typedef struct shmq_cl_cursor {
    const shmq_mapped_file_t *seg; /* NULL: none yet */
    uint64_t unmapped;             /* cl->q.unmapped when seg was found */
    /* Read-through (shmq_cl_cursor_read_through()): the records are read with pread into
     * buf, not through the mapping.  NULL: through the mapping. */
    uint8_t *buf;
    size_t cap;
    int64_t bstart, bend; /* the log's bytes [bstart, bend) are in buf */
} shmq_cl_cursor_t;

/*
 * Read records through cur with pread into a buffer of cap bytes of its own
 * (from then on: bytes below the limit given are the log's, never written
 * again while the segment exists).  For a reader of a log whose writer does
 * not store into the mapping (SHMQ_MF_STAGED): the first look at each page of
 * a shared mapping costs a fault, several microseconds in a virtual machine,
 * where a copy out of the page cache costs a tenth of that.  The head's
 * pointers (topic, properties) then point into the buffer, valid until the
 * cursor's next read.  A record longer than cap is read through the mapping.
 * 0, or -ENOMEM.
 */
int shmq_cl_cursor_read_through(shmq_cl_cursor_t *cur, size_t cap);
/* The buffer of the dispatcher's and the indexer's cursors under SYNC_FLUSH (the writer
 * stages its appends there): a few of their batches. */
#define SHMQ_CL_READ_THROUGH_BYTES (1u << 20)
/* Free the buffer (the cursor reads through the mapping again). */
void shmq_cl_cursor_free(shmq_cl_cursor_t *cur);

/* The out-of-line step of shmq_cl_cursor_bytes(): read from p of mf into the buffer. */
const uint8_t *shmq_cl_cursor_fill(shmq_cl_cursor_t *cur, const shmq_mapped_file_t *mf, int64_t p,
                                   int64_t *avail);

/*
 * The record at p of segment mf, with *avail bytes readable from p (up to
 * the limit or the segment's end): the mapping; or with a buffer, the
 * buffer when it holds the whole record (its size field at least 8 and at
 * most what it holds), *avail then cut to the bytes it holds, so that a
 * decode reads nothing past them.  Anything else (a blank, a record not all
 * below the limit, one longer than the buffer, a damaged size) is read
 * through the mapping, as without a buffer.  NULL: the read failed, with a
 * detail.
 */
static inline __attribute__((always_inline)) const uint8_t *
shmq_cl_cursor_bytes(shmq_cl_cursor_t *cur, const shmq_mapped_file_t *mf, int64_t p, int64_t *avail)
{
    if (cur->buf == NULL) {
        return mf->base + (p - mf->start_offset);
    }
    if (p >= cur->bstart && p + SHMQ_BLANK_MIN_LEN <= cur->bend) {
        const uint8_t *b = cur->buf + (p - cur->bstart);
        int64_t total = (int32_t)shmq_get_be32(b);
        if (total >= SHMQ_BLANK_MIN_LEN && p + total <= cur->bend) {
            if (*avail > cur->bend - p) {
                *avail = cur->bend - p;
            }
            return b;
        }
    }
    return shmq_cl_cursor_fill(cur, mf, p, avail);
}

/* shmq_commitlog_next_head() through cur (the reader's loop: no argument checks). */
int shmq_commitlog_next_head_at(const shmq_commitlog_t *cl, shmq_cl_cursor_t *cur, int64_t *pos,
                                int64_t limit, unsigned flags, shmq_record_head_t *out);

/*
 * The segment holding p, from the cursor when it still holds it (no lookup
 * for the records after the first), else found and kept.  NULL when no
 * mapped segment holds p.
 */
static inline __attribute__((always_inline)) const shmq_mapped_file_t *
shmq_commitlog_cursor_seg(const shmq_commitlog_t *cl, shmq_cl_cursor_t *cur, int64_t p)
{
    const shmq_mapped_file_t *mf = cur->seg;
    if (mf != NULL && cur->unmapped == cl->q.unmapped && p >= mf->start_offset &&
        p - mf->start_offset < (int64_t)cl->q.seg_size) {
        return mf;
    }
    mf = shmq_mfq_find(&cl->q, p);
    cur->seg = mf;
    cur->unmapped = cl->q.unmapped;
    return mf;
}

/*
 * The iteration of shmq_commitlog_next() and shmq_commitlog_next_head():
 * exactly one of rec and head is filled, by the full or the light decode.
 * Inline into each of them, and through shmq_commitlog_next_head_inline()
 * into the dispatcher's and the indexer's loops, which run it once per
 * record: there a call's saving and restoring of registers costs as much
 * as the checks of a record's head.
 */
static inline __attribute__((always_inline)) int
shmq_commitlog_next_record(const shmq_commitlog_t *cl, shmq_cl_cursor_t *cur, int64_t *pos,
                           int64_t limit, unsigned flags, shmq_record_t *rec,
                           shmq_record_head_t *head)
{
    for (;;) {
        int64_t p = *pos;
        if (p >= limit) {
            return SHMQ_E_END;
        }
        const shmq_mapped_file_t *mf = shmq_commitlog_cursor_seg(cl, cur, p);
        if (!mf) {
            if (p < shmq_mfq_min_offset(&cl->q)) {
                return shmq_error_set(SHMQ_E_RANGE, "commitlog %s: offset %lld was removed",
                                      cl->q.dir, (long long)p);
            }
            return SHMQ_E_END;
        }
        int64_t seg_end = mf->start_offset + (int64_t)cl->q.seg_size;
        int64_t to_end = seg_end - p;
        int64_t avail = (limit < seg_end ? limit : seg_end) - p;
        const uint8_t *buf = shmq_cl_cursor_bytes(cur, mf, p, &avail);
        if (__builtin_expect(buf == NULL, 0)) {
            return -EIO; /* the pread failed (the detail says how) */
        }

        /* avail <= to_end: avail >= SHMQ_BLANK_MIN_LEN says both are. */
        if (avail >= SHMQ_BLANK_MIN_LEN && (int32_t)shmq_get_be32(buf + 4) == SHMQ_MAGIC_BLANK) {
            avail = to_end; /* a blank record's length reaches the segment end */
            buf = mf->base + (p - mf->start_offset); /* read as far, not from a buffer */
        } else if (limit < seg_end) {
            /* A record that crosses limit is not there yet. */
            if (avail < SHMQ_BLANK_MIN_LEN) {
                return SHMQ_E_END;
            }
            int32_t total = (int32_t)shmq_get_be32(buf);
            if (total > avail && total <= to_end) {
                return SHMQ_E_END;
            }
        }
        int rc = rec ? shmq_record_decode(buf, (size_t)avail, p, flags, rec)
                     : shmq_record_head_decode_inline(buf, (size_t)avail, p, flags, head);
        if (rc == 0) {
            *pos = seg_end;
            continue;
        }
        if (rc > 0) {
            *pos = p + rc;
        }
        return rc;
    }
}

/* shmq_commitlog_next_head_at(), inline: for a worker's loop over records. */
static inline __attribute__((always_inline)) int
shmq_commitlog_next_head_inline(const shmq_commitlog_t *cl, shmq_cl_cursor_t *cur, int64_t *pos,
                                int64_t limit, unsigned flags, shmq_record_head_t *out)
{
    return shmq_commitlog_next_record(cl, cur, pos, limit, flags, NULL, out);
}

/*
 * Walk records by their size fields only, from *pos (a record boundary) up
 * to limit: checks each header's magic and that its size lies between the
 * fixed part and its segment's end; a blank record moves to the next
 * segment.  *pos ends after the last record (or blank) passed that ends at
 * or below limit; *last is set to the start of the last record passed
 * (unchanged if none).  The fields are not checked: a caller reads the
 * record it needs with shmq_commitlog_next_head() (SHMQ_DECODE_CHECK_PHYS).
 * Returns 0, or an error with *pos at the bad header (SHMQ_E_RANGE when
 * *pos was removed).
 */
int shmq_commitlog_skip(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit, int64_t *last);

/*
 * Physical offset of the first record whose store timestamp is >= ts, or
 * wrote_pos if none.  Uses each segment's first record to pick the segment.
 */
int64_t shmq_commitlog_offset_by_time(const shmq_commitlog_t *cl, int64_t ts);

/*
 * Flush.  least_pages > 0: flush only if at least that many 4 KiB pages are
 * dirty (or a segment is full); 0: flush everything written.  Returns 0 or
 * an error; a failure sets flush_err (SHMQ_E_FENCED for every later call).
 */
int shmq_commitlog_flush(shmq_commitlog_t *cl, int least_pages);

/*
 * Cut the log at off: segments starting at/after off are unlinked, the bytes
 * from off to the end of its segment are zeroed, positions set to off.
 */
int shmq_commitlog_truncate(shmq_commitlog_t *cl, int64_t off);

/* Smallest offset still stored (start of the first segment). */
int64_t shmq_commitlog_min_offset(const shmq_commitlog_t *cl);

/* Start of the segment after the one containing off. */
int64_t shmq_commitlog_next_segment(const shmq_commitlog_t *cl, int64_t off);

/* End (+1) of the last non-zero byte in [from, to) of the log, or from if all of it is
 * zero: how far a torn append wrote (recovery's cut, verify's torn tail). */
int64_t shmq_commitlog_last_nonzero(const shmq_commitlog_t *cl, int64_t from, int64_t to);

/*
 * Does a record start anywhere in [from, to) of the log?  Positions are tried
 * one by one: a record must decode with every check, its PHYSICALOFFSET equal
 * to its position (the magic is looked at first); with blanks, a blank
 * record's magic counts too.  What tells damage in the middle of the log from
 * a torn end (recovery, verify).
 */
bool shmq_commitlog_record_in(const shmq_commitlog_t *cl, int64_t from, int64_t to, bool blanks);

#endif
