/*
 * The CommitLog (see commitlog.h): appends RocketMQ records into the segment
 * queue under <root>/commitlog, closing a segment with an 8-byte blank record
 * when the next record (or batch) does not fit (ROCKETMQ-FACTS §1.4, §6.1),
 * flushes the written range by the "N pages" rule (§14), and reads records
 * back by offset, by iteration or by store time.
 *
 * A failed flush fences the log: flushed_pos never moves again and every
 * later append or flush returns SHMQ_E_FENCED (PITFALLS 1).  Records are
 * encoded straight into the mapping (or, staged, into the log's buffer and
 * written with pwrite: commitlog.h); wrote_pos is published with a release
 * store after the bytes it covers.
 */
#include "format/commitlog.h"

#include "base/bytes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CL_PAGE         4096
#define CL_DEFAULT_PORT 10911 /* RocketMQ's default listen port, part of the msg id */
#define CL_SEG_MIN      64
#define CL_SEG_MAX      INT32_MAX  /* the blank record's length field is an int32 */
#define CL_WARM_EVERY   (16 << 20) /* ask for the next prepared window this often (bytes) */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t seg_size(const shmq_commitlog_t *cl)
{
    return (int64_t)cl->q.seg_size;
}

static int64_t load_wrote(const shmq_commitlog_t *cl)
{
    /* acquire: pairs with the release in publish_wrote, bytes below are visible */
    return __atomic_load_n(&cl->wrote_pos, __ATOMIC_ACQUIRE);
}

static void publish_wrote(shmq_commitlog_t *cl, int64_t pos)
{
    /* release: the record bytes are stored before readers see the new end */
    __atomic_store_n(&cl->wrote_pos, pos, __ATOMIC_RELEASE);
}

static bool positions_known(const shmq_commitlog_t *cl)
{
    /* relaxed: a flag that only turns true; wrote_pos itself is loaded with acquire */
    return __atomic_load_n(&cl->positions_known, __ATOMIC_RELAXED);
}

static void set_known(shmq_commitlog_t *cl)
{
    __atomic_store_n(&cl->positions_known, true, __ATOMIC_RELAXED);
}

/* Upper bound for reading: wrote_pos when known, else the end of the files. */
static int64_t read_limit(const shmq_commitlog_t *cl)
{
    return positions_known(cl) ? load_wrote(cl) : shmq_mfq_end_offset(&cl->q);
}

int shmq_commitlog_open(shmq_commitlog_t *cl, const char *dir, size_t seg_sz, unsigned flags)
{
    if (!cl || !dir) {
        return SHMQ_E_ARG;
    }
    memset(cl, 0, sizeof(*cl));
    if (seg_sz < CL_SEG_MIN || seg_sz > (size_t)CL_SEG_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "commitlog %s: segment size %zu not in %d..%d", dir,
                              seg_sz, CL_SEG_MIN, CL_SEG_MAX);
    }
    int rc = shmq_mfq_open(&cl->q, dir, seg_sz, flags);
    if (rc) {
        return rc;
    }
    cl->readonly = (flags & SHMQ_MF_READONLY) != 0;
    if (!cl->readonly && (flags & SHMQ_MF_STAGED)) {
        /* Touched once here, not page by page by the first appends. */
        cl->stage = aligned_alloc(CL_PAGE, SHMQ_CL_STAGE_BYTES);
        if (!cl->stage) {
            shmq_mfq_close(&cl->q);
            return shmq_error_set(-ENOMEM, "commitlog %s: no memory for its %u-byte stage", dir,
                                  SHMQ_CL_STAGE_BYTES);
        }
        memset(cl->stage, 0, SHMQ_CL_STAGE_BYTES);
    }
    cl->wrote_pos = cl->flushed_pos = shmq_mfq_min_offset(&cl->q);
    cl->flush_how = SHMQ_FLUSH_MSYNC;
    cl->prep_asked = -1;
    shmq_local_host(&cl->store_host, CL_DEFAULT_PORT);
    return 0;
}

void shmq_commitlog_close(shmq_commitlog_t *cl)
{
    if (cl) {
        shmq_mfq_close(&cl->q);
        free(cl->stage);
        cl->stage = NULL;
    }
}

void shmq_commitlog_set_positions(shmq_commitlog_t *cl, int64_t wrote, int64_t flushed)
{
    publish_wrote(cl, wrote);
    cl->flushed_pos = flushed;
    set_known(cl);
    if (!cl->readonly) {
        /* Pages ahead of where appends go are prepared before they are needed. */
        shmq_mfq_prefault_ahead(&cl->q, wrote);
        cl->warm_asked = wrote + CL_WARM_EVERY;
    }
}

/* Appends may go on: not read-only, not fenced by a failed flush. */
static int appendable(const shmq_commitlog_t *cl)
{
    if (cl->readonly) {
        return shmq_error_set(-EROFS, "commitlog %s is read-only", cl->q.dir);
    }
    if (cl->flush_err) {
        return shmq_error_set(SHMQ_E_FENCED, "commitlog %s: fenced after flush error: %s",
                              cl->q.dir, shmq_strerror(cl->flush_err));
    }
    return 0;
}

/* The segment to write at pos, created when pos is at (or past) the end. */
static int segment_for_write(shmq_commitlog_t *cl, int64_t pos, shmq_mapped_file_t **out)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, pos);
    if (mf) {
        *out = mf;
        return 0;
    }
    return shmq_mfq_get_or_create(&cl->q, pos - pos % seg_size(cl), out);
}

/*
 * Room for total bytes of records at wrote_pos: the segment (closed with a
 * blank record and the next one taken when they do not fit), the position
 * and its offset in the segment.  The bytes are announced to the preparing
 * thread.
 */
static int append_room(shmq_commitlog_t *cl, int64_t total, shmq_mapped_file_t **mfp, int64_t *posp,
                       int64_t *relp)
{
    shmq_mapped_file_t *mf = NULL;
    int64_t pos, rel;
    for (int attempt = 0;; attempt++) {
        pos = cl->wrote_pos;
        int rc = segment_for_write(cl, pos, &mf);
        if (rc) {
            return rc;
        }
        rel = pos - mf->start_offset;
        int64_t space = seg_size(cl) - rel;
        if (total + SHMQ_BLANK_MIN_LEN <= space) {
            break;
        }
        if (attempt > 0) {
            return shmq_error_set(SHMQ_E_SIZE, "commitlog %s: %lld bytes do not fit at %lld",
                                  cl->q.dir, (long long)total, (long long)pos);
        }
        /* Close the segment: blank record with the remaining length, then retry. */
        shmq_mfq_write_horizon(&cl->q, mf->start_offset + seg_size(cl));
        if (space >= SHMQ_BLANK_MIN_LEN) {
            shmq_record_write_blank(mf->base + rel, (int32_t)space);
        } else {
            memset(mf->base + rel, 0, (size_t)space);
        }
        publish_wrote(cl, mf->start_offset + seg_size(cl));
        set_known(cl);
    }
    /* Announced before writing: the preparing thread zero-fills only above it. */
    shmq_mfq_write_horizon(&cl->q, pos + total);
    *mfp = mf;
    *posp = pos;
    *relp = rel;
    return 0;
}

/* The records of [pos, pos + done) are written in mf: publish them, prepare what comes next. */
static inline __attribute__((always_inline)) void append_finish(shmq_commitlog_t *cl,
                                                                shmq_mapped_file_t *mf, int64_t pos,
                                                                int64_t rel, int64_t done,
                                                                int64_t ts)
{
    cl->last_store_ts = ts;
    publish_wrote(cl, pos + done);
    set_known(cl);

    /* The next window of this segment, prepared ahead. */
    if (pos + done >= cl->warm_asked && (cl->q.flags & SHMQ_MF_PREPARE)) {
        shmq_mfq_prefault_ahead(&cl->q, pos + done);
        cl->warm_asked = pos + done + CL_WARM_EVERY;
    }
    /* Past half of the segment: have the next one prepared before we need it. */
    int64_t next = mf->start_offset + seg_size(cl);
    if ((cl->q.flags & SHMQ_MF_PREPARE) && rel + done >= seg_size(cl) / 2 &&
        cl->prep_asked != next) {
        shmq_mfq_prepare(&cl->q, next);
        cl->prep_asked = next;
    }
}

/* The store time of an append: store_ts or now, never before the last one. */
static int64_t append_ts(const shmq_commitlog_t *cl, int64_t store_ts)
{
    int64_t ts = store_ts ? store_ts : now_ms();
    return ts < cl->last_store_ts ? cl->last_store_ts : ts;
}

int shmq_commitlog_append_batch(shmq_commitlog_t *cl, const shmq_msg_in_t *m, size_t n,
                                const int64_t *queue_offsets, int64_t store_ts,
                                shmq_append_result_t *res)
{
    shmq_mapped_file_t *mf = NULL;
    int64_t total = 0, pos = 0, rel = 0;
    int rc;

    if (!cl || !m || n == 0 || !queue_offsets || !res) {
        return SHMQ_E_ARG;
    }
    int rc0 = appendable(cl);
    if (rc0 < 0) {
        return rc0;
    }
    for (size_t i = 0; i < n; i++) {
        shmq_msg_in_t mi = m[i];
        mi.store_host = cl->store_host;
        int64_t len = shmq_record_size(&mi);
        if (len < 0) {
            return (int)len;
        }
        total += len;
        if (total + SHMQ_BLANK_MIN_LEN > seg_size(cl)) {
            return shmq_error_set(SHMQ_E_SIZE,
                                  "commitlog %s: %zu record(s) of %lld bytes cannot fit a "
                                  "segment of %lld bytes",
                                  cl->q.dir, i + 1, (long long)total, (long long)seg_size(cl));
        }
    }
    int64_t ts = append_ts(cl, store_ts);
    if ((rc = append_room(cl, total, &mf, &pos, &rel)) != 0) {
        return rc;
    }
    uint8_t *dst = mf->base + rel;
    int64_t done = 0;
    for (size_t i = 0; i < n; i++) {
        shmq_msg_in_t mi = m[i];
        mi.store_host = cl->store_host;
        int64_t len = shmq_record_encode(&mi, queue_offsets[i], pos + done, ts, dst + done,
                                         (size_t)(total - done));
        if (len <= 0) {
            /* Leave no valid-looking record past wrote_pos. */
            memset(dst, 0, (size_t)done);
            return len < 0 ? (int)len : SHMQ_E_SIZE;
        }
        res[i].phys_offset = pos + done;
        res[i].size = (int32_t)len;
        res[i].store_ts = ts;
        res[i].queue_offset = queue_offsets[i];
        shmq_msgid_format(&cl->store_host, pos + done, res[i].msg_id);
        done += len;
    }
    append_finish(cl, mf, pos, rel, done, ts);
    return 0;
}

/* shmq_commitlog_room(), inlined into it and into append_plans(): 0 with the room, 1 when
 * only the full path (append_room()) can give it (full is false), or the full path's error. */
static inline __attribute__((always_inline)) int room_for(shmq_commitlog_t *cl, int64_t total,
                                                          int64_t store_ts, bool full,
                                                          shmq_commitlog_room_t *room)
{
    /* The common case: the unit fits in the segment the last one went to (still mapped),
     * appends may go on.  Then it is a compare, not a lookup; anything else, the checks and
     * the search of append_room() (which also closes a full segment). */
    shmq_mapped_file_t *mf = cl->app_unmapped == cl->q.unmapped ? cl->app_seg : NULL;
    int64_t pos = cl->wrote_pos;
    int64_t rel = mf != NULL ? pos - mf->start_offset : -1; /* mf still mapped: checked first */
    if (mf != NULL && rel >= 0 && !cl->readonly && !cl->flush_err &&
        total + SHMQ_BLANK_MIN_LEN <= seg_size(cl) - rel) {
        /* Announced before writing, as append_room() does. */
        shmq_mfq_write_horizon(&cl->q, pos + total);
    } else if (!full) {
        return 1;
    } else {
        int rc = appendable(cl);
        if (rc < 0) {
            return rc;
        }
        if (total + SHMQ_BLANK_MIN_LEN > seg_size(cl)) {
            return shmq_error_set(SHMQ_E_SIZE,
                                  "commitlog %s: %lld bytes of records cannot fit a segment of "
                                  "%lld bytes",
                                  cl->q.dir, (long long)total, (long long)seg_size(cl));
        }
        if ((rc = append_room(cl, total, &mf, &pos, &rel)) != 0) {
            cl->app_seg = NULL;
            return rc;
        }
        cl->app_seg = mf;
        cl->app_unmapped = cl->q.unmapped;
    }
    room->dst = mf->base + rel;
    room->fd = -1;
    room->pos = pos;
    room->rel = rel;
    room->most = seg_size(cl) - rel - SHMQ_BLANK_MIN_LEN;
    if (cl->stage != NULL && total <= (int64_t)SHMQ_CL_STAGE_BYTES) {
        room->dst = cl->stage;
        room->fd = mf->fd;
        if (room->most > (int64_t)SHMQ_CL_STAGE_BYTES) {
            room->most = SHMQ_CL_STAGE_BYTES;
        }
    }
    room->ts = append_ts(cl, store_ts);
    return 0;
}

int shmq_commitlog_room(shmq_commitlog_t *cl, int64_t total, int64_t store_ts,
                        shmq_commitlog_room_t *room)
{
    return room_for(cl, total, store_ts, false, room);
}

/* A staged room's done bytes written into its segment (commitlog.h, "Staged appends"). */
static int stage_put(shmq_commitlog_t *cl, const shmq_commitlog_room_t *room, int64_t done)
{
    size_t put = 0;
    while (put < (size_t)done) {
        ssize_t w =
            pwrite(room->fd, room->dst + put, (size_t)done - put, (off_t)room->rel + (off_t)put);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int rc = w < 0 ? -errno : -EIO;
            cl->flush_err = rc;
            return shmq_error_set(rc,
                                  "commitlog %s: writing %lld bytes of records at %lld failed: "
                                  "%s; the log takes no more appends",
                                  cl->q.dir, (long long)done, (long long)room->pos, strerror(-rc));
        }
        put += (size_t)w;
    }
    return 0;
}

int shmq_commitlog_room_done(shmq_commitlog_t *cl, const shmq_commitlog_room_t *room, int64_t done)
{
    if (room->fd >= 0 && done > 0) {
        int rc = stage_put(cl, room, done);
        if (rc < 0) {
            return rc;
        }
    }
    append_finish(cl, cl->app_seg, room->pos, room->rel, done, room->ts);
    return 0;
}

/* shmq_commitlog_append_plans(), inlined into it and into shmq_commitlog_append_plan() (n
 * 1: no loop left). */
static inline __attribute__((always_inline)) int
append_plans(shmq_commitlog_t *cl, const shmq_msg_in_t *m, const shmq_record_plan_t *plans,
             size_t n, const int64_t *queue_offsets, int64_t store_ts, shmq_append_result_t *res)
{
    int64_t total = 0;

    if (!cl || !m || !plans || n == 0 || !queue_offsets || !res) {
        return SHMQ_E_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        total += plans[i].total;
    }
    shmq_commitlog_room_t room;
    int rc = room_for(cl, total, store_ts, true, &room);
    if (rc != 0) {
        return rc;
    }
    int64_t done = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t len = shmq_record_encode_plan(&m[i], &plans[i], queue_offsets[i], room.pos + done,
                                              room.ts, room.dst + done);
        res[i].phys_offset = room.pos + done;
        res[i].size = (int32_t)len;
        res[i].store_ts = room.ts;
        res[i].queue_offset = queue_offsets[i];
        res[i].msg_id[0] = '\0';
        done += len;
    }
    return shmq_commitlog_room_done(cl, &room, done);
}

int shmq_commitlog_append_plans(shmq_commitlog_t *cl, const shmq_msg_in_t *m,
                                const shmq_record_plan_t *plans, size_t n,
                                const int64_t *queue_offsets, int64_t store_ts,
                                shmq_append_result_t *res)
{
    return append_plans(cl, m, plans, n, queue_offsets, store_ts, res);
}

int shmq_commitlog_append_plan(shmq_commitlog_t *cl, const shmq_msg_in_t *m,
                               const shmq_record_plan_t *plan, int64_t queue_offset,
                               int64_t store_ts, shmq_append_result_t *res)
{
    return append_plans(cl, m, plan, 1, &queue_offset, store_ts, res);
}

int shmq_commitlog_append(shmq_commitlog_t *cl, const shmq_msg_in_t *m, int64_t queue_offset,
                          int64_t store_ts, shmq_append_result_t *res)
{
    return shmq_commitlog_append_batch(cl, m, 1, &queue_offset, store_ts, res);
}

/* Zero [from, to) of the log's segments (bytes put but not taken). */
static void zero_range(shmq_commitlog_t *cl, int64_t from, int64_t to)
{
    while (from < to) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, from);
        int64_t seg_end = from - from % seg_size(cl) + seg_size(cl);
        int64_t end = to < seg_end ? to : seg_end;
        if (mf) {
            memset(mf->base + (from - mf->start_offset), 0, (size_t)(end - from));
        }
        from = end;
    }
}

bool shmq_commitlog_empty(const shmq_commitlog_t *cl)
{
    return shmq_mfq_last(&cl->q) == NULL ||
           (cl->wrote_pos == shmq_mfq_min_offset(&cl->q) && cl->raw_end <= cl->wrote_pos);
}

int64_t shmq_commitlog_put_raw(shmq_commitlog_t *cl, int64_t offset, const uint8_t *data,
                               size_t len)
{
    if (!cl || offset < 0 || (len > 0 && !data) || len > (size_t)(INT64_MAX - offset)) {
        return SHMQ_E_ARG;
    }
    int rc0 = appendable(cl);
    if (rc0 < 0) {
        return rc0;
    }
    if (shmq_commitlog_empty(cl) && offset != cl->raw_end) {
        /* A log without records starts where the master's bytes start: a segment's first
         * byte.  Its empty segments go (a log has no gap). */
        if (offset % seg_size(cl) != 0) {
            return shmq_error_set(SHMQ_E_RANGE,
                                  "commitlog %s is empty: it can start at a segment's first "
                                  "byte, not at %lld",
                                  cl->q.dir, (long long)offset);
        }
        if (shmq_mfq_last(&cl->q) != NULL) {
            int rc = shmq_commitlog_truncate(cl, shmq_mfq_min_offset(&cl->q));
            if (rc < 0) {
                return rc;
            }
        }
        shmq_commitlog_set_positions(cl, offset, offset);
        cl->raw_end = offset;
    }
    if (cl->raw_end < cl->wrote_pos) {
        cl->raw_end = cl->wrote_pos;
    }
    if (offset != cl->raw_end) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "commitlog %s: bytes at %lld, but the log received so far ends "
                              "at %lld",
                              cl->q.dir, (long long)offset, (long long)cl->raw_end);
    }
    int64_t pos = offset;
    size_t done = 0;
    while (done < len) {
        shmq_mapped_file_t *mf;
        int rc = segment_for_write(cl, pos, &mf);
        if (rc < 0) {
            return rc;
        }
        int64_t rel = pos - mf->start_offset;
        size_t n = len - done;
        if ((int64_t)n > seg_size(cl) - rel) {
            n = (size_t)(seg_size(cl) - rel);
        }
        /* Announced before writing: the preparing thread zero-fills only above it. */
        shmq_mfq_write_horizon(&cl->q, pos + (int64_t)n);
        memcpy(mf->base + rel, data + done, n);
        done += n;
        pos += (int64_t)n;
        cl->raw_end = pos;
    }
    /* Take every record the bytes complete. */
    int64_t at = cl->wrote_pos, last_ts = cl->last_store_ts;
    for (;;) {
        shmq_record_t r;
        int64_t p = at;
        int rc = shmq_commitlog_next(cl, &p, cl->raw_end, SHMQ_DECODE_CHECK_ALL, &r);
        if (rc == SHMQ_E_END) {
            /* Blanks passed on the way count: the next record starts in the next segment. */
            if (p > at && p <= cl->raw_end) {
                at = p;
            }
            break;
        }
        if (rc <= 0) {
            char why[256];
            snprintf(why, sizeof(why), "%s", shmq_error_detail());
            zero_range(cl, at, cl->raw_end);
            cl->raw_end = at;
            if (at != cl->wrote_pos) {
                publish_wrote(cl, at);
            }
            return shmq_error_set(SHMQ_E_CORRUPT, "commitlog %s: the record received at %lld: %s",
                                  cl->q.dir, (long long)p, why[0] ? why : shmq_strerror(rc));
        }
        if (r.store_ts > last_ts) {
            last_ts = r.store_ts;
        }
        at = p;
    }
    cl->last_store_ts = last_ts;
    if (at != cl->wrote_pos) {
        publish_wrote(cl, at);
    }
    set_known(cl);
    return at;
}

int shmq_commitlog_read(const shmq_commitlog_t *cl, int64_t phys_offset, unsigned flags,
                        shmq_record_t *out)
{
    if (!cl || !out) {
        return SHMQ_E_ARG;
    }
    shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, phys_offset);
    if (!mf) {
        return shmq_error_set(SHMQ_E_RANGE, "commitlog %s: no segment holds offset %lld", cl->q.dir,
                              (long long)phys_offset);
    }
    int64_t rel = phys_offset - mf->start_offset;
    int64_t avail = seg_size(cl) - rel;
    if (positions_known(cl)) {
        int64_t wrote = load_wrote(cl);
        if (phys_offset >= wrote) {
            return shmq_error_set(SHMQ_E_RANGE, "commitlog %s: offset %lld is at/after %lld",
                                  cl->q.dir, (long long)phys_offset, (long long)wrote);
        }
        if (wrote - phys_offset < avail) {
            avail = wrote - phys_offset;
        }
    }
    return shmq_record_decode(mf->base + rel, (size_t)avail, phys_offset, flags, out);
}

static int32_t peek32(const uint8_t *p)
{
    return (int32_t)shmq_get_be32(p);
}

int shmq_commitlog_next(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit, unsigned flags,
                        shmq_record_t *out)
{
    if (!cl || !pos || !out) {
        return SHMQ_E_ARG;
    }
    shmq_cl_cursor_t cur = {0};
    return shmq_commitlog_next_record(cl, &cur, pos, limit, flags, out, NULL);
}

int shmq_commitlog_next_head(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit,
                             unsigned flags, shmq_record_head_t *out)
{
    if (!cl || !pos || !out) {
        return SHMQ_E_ARG;
    }
    shmq_cl_cursor_t cur = {0};
    return shmq_commitlog_next_record(cl, &cur, pos, limit, flags, NULL, out);
}

int shmq_commitlog_next_head_at(const shmq_commitlog_t *cl, shmq_cl_cursor_t *cur, int64_t *pos,
                                int64_t limit, unsigned flags, shmq_record_head_t *out)
{
    return shmq_commitlog_next_record(cl, cur, pos, limit, flags, NULL, out);
}

int shmq_cl_cursor_read_through(shmq_cl_cursor_t *cur, size_t cap)
{
    /* Resident from the start, so that the reads copy into pages already there: a page
     * first touched by a read's copy is a fault within it, and a reader that lags reads
     * further into the buffer.  (malloc and memset with zeros would not do: a compiler
     * may make them calloc, which leaves fresh pages untouched.) */
    void *b =
        mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (b == MAP_FAILED) {
        return -ENOMEM;
    }
    shmq_cl_cursor_free(cur);
    cur->buf = b;
    cur->cap = cap;
    return 0;
}

void shmq_cl_cursor_free(shmq_cl_cursor_t *cur)
{
    if (cur->buf != NULL) {
        munmap(cur->buf, cur->cap);
    }
    cur->buf = NULL;
    cur->cap = 0;
    cur->bstart = cur->bend = 0;
}

const uint8_t *shmq_cl_cursor_fill(shmq_cl_cursor_t *cur, const shmq_mapped_file_t *mf, int64_t p,
                                   int64_t *avail)
{
    /* As much as the buffer holds of what is readable from p: the records of the batches
     * to come, one read. */
    size_t n = *avail < (int64_t)cur->cap ? (size_t)*avail : cur->cap;
    size_t got = 0;
    cur->bstart = cur->bend = 0; /* nothing held if the read fails */
    while (got < n) {
        ssize_t r = pread(mf->fd, cur->buf + got, n - got, (off_t)(p - mf->start_offset) + got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            shmq_error_set(-EIO, "commitlog %s: reading %zu bytes at %lld: %s", mf->path, n - got,
                           (long long)(p + (int64_t)got), r < 0 ? strerror(errno) : "end of file");
            return NULL;
        }
        got += (size_t)r;
    }
    cur->bstart = p;
    cur->bend = p + (int64_t)n;
    if (n >= SHMQ_BLANK_MIN_LEN) {
        int64_t total = (int32_t)shmq_get_be32(cur->buf);
        if (total >= SHMQ_BLANK_MIN_LEN && total <= (int64_t)n) {
            *avail = (int64_t)n;
            return cur->buf;
        }
    }
    /* Not held whole (shmq_cl_cursor_bytes()): through the mapping. */
    return mf->base + (p - mf->start_offset);
}

int shmq_commitlog_skip(const shmq_commitlog_t *cl, int64_t *pos, int64_t limit, int64_t *last)
{
    if (!cl || !pos || !last) {
        return SHMQ_E_ARG;
    }
    int64_t p = *pos;
    int rc = 0;
    bool done = false;
    while (!done && p < limit) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, p);
        if (!mf) {
            if (p < shmq_mfq_min_offset(&cl->q)) {
                rc = shmq_error_set(SHMQ_E_RANGE, "commitlog %s: offset %lld was removed",
                                    cl->q.dir, (long long)p);
            }
            break;
        }
        int64_t seg_end = mf->start_offset + seg_size(cl);
        int64_t stop = limit < seg_end ? limit : seg_end;
        while (p < stop) {
            if (stop - p < SHMQ_BLANK_MIN_LEN) {
                if (stop == seg_end) {
                    rc = shmq_error_set(SHMQ_E_TRUNCATED,
                                        "commitlog %s: %lld bytes at %lld before the segment end",
                                        cl->q.dir, (long long)(seg_end - p), (long long)p);
                }
                done = true; /* otherwise: the next header is not below limit yet */
                break;
            }
            const uint8_t *b = mf->base + (p - mf->start_offset);
            int32_t total = peek32(b);
            int32_t magic = peek32(b + 4);
            if (magic == SHMQ_MAGIC_BLANK) {
                if (total < SHMQ_BLANK_MIN_LEN || total > seg_end - p) {
                    rc =
                        shmq_error_set(SHMQ_E_SIZE, "commitlog %s: blank record at %lld: length %d",
                                       cl->q.dir, (long long)p, total);
                    done = true;
                    break;
                }
                p = seg_end; /* the next record starts the next segment */
                break;
            }
            if (magic != SHMQ_MAGIC_V1 && magic != SHMQ_MAGIC_V2) {
                rc = shmq_error_set(SHMQ_E_MAGIC, "commitlog %s: record at %lld: magic 0x%08x",
                                    cl->q.dir, (long long)p, (unsigned)magic);
                done = true;
                break;
            }
            if (total < SHMQ_RECORD_FIXED_V1 || total > seg_end - p) {
                rc = shmq_error_set(SHMQ_E_SIZE, "commitlog %s: record at %lld: size %d", cl->q.dir,
                                    (long long)p, total);
                done = true;
                break;
            }
            if (p + total > limit) {
                done = true; /* crosses limit: not there yet */
                break;
            }
            *last = p;
            p += total;
        }
    }
    *pos = p;
    return rc;
}

int64_t shmq_commitlog_offset_by_time(const shmq_commitlog_t *cl, int64_t ts)
{
    int64_t limit = read_limit(cl);
    size_t start_idx = 0;
    shmq_record_t rec;

    if (cl->q.count == 0) {
        return limit;
    }
    /* The last segment whose first record is older than ts holds the answer or precedes it. */
    for (size_t i = 0; i < cl->q.count; i++) {
        const shmq_mapped_file_t *mf = cl->q.segs[i];
        int64_t pos = mf->start_offset;
        if (pos >= limit || shmq_commitlog_next(cl, &pos, limit, 0, &rec) <= 0 ||
            pos - rec.total_size != mf->start_offset || rec.store_ts >= ts) {
            break;
        }
        start_idx = i;
    }
    int64_t pos = cl->q.segs[start_idx]->start_offset;
    for (;;) {
        int rc = shmq_commitlog_next(cl, &pos, limit, 0, &rec);
        if (rc <= 0) {
            return limit;
        }
        if (rec.store_ts >= ts) {
            return pos - rc;
        }
    }
}

int shmq_commitlog_flush(shmq_commitlog_t *cl, int least_pages)
{
    if (!cl) {
        return SHMQ_E_ARG;
    }
    if (cl->readonly) {
        return 0;
    }
    if (cl->flush_err) {
        return shmq_error_set(SHMQ_E_FENCED, "commitlog %s: fenced after flush error: %s",
                              cl->q.dir, shmq_strerror(cl->flush_err));
    }
    int64_t wrote = load_wrote(cl);
    int64_t flushed = cl->flushed_pos;
    if (wrote <= flushed) {
        return 0;
    }
    if (least_pages > 0) {
        int64_t seg_end = flushed - flushed % seg_size(cl) + seg_size(cl);
        if (wrote < seg_end && wrote / CL_PAGE - flushed / CL_PAGE < least_pages) {
            return 0;
        }
    }
    int64_t pos = flushed;
    if (pos < shmq_mfq_min_offset(&cl->q)) {
        pos = shmq_mfq_min_offset(&cl->q);
    }
    while (pos < wrote) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, pos);
        if (!mf) {
            return shmq_error_set(SHMQ_E_RANGE, "commitlog %s: no segment holds offset %lld",
                                  cl->q.dir, (long long)pos);
        }
        int64_t end = mf->start_offset + seg_size(cl);
        if (end > wrote) {
            end = wrote;
        }
        int rc = shmq_mf_flush(mf, (size_t)(pos - mf->start_offset),
                               (size_t)(end - mf->start_offset), cl->flush_how);
        if (rc) {
            /* Never retried, never trusted: flushed_pos stays where it was. */
            cl->flush_err = rc;
            return rc;
        }
        pos = end;
    }
    cl->flushed_pos = wrote;
    return 0;
}

int shmq_commitlog_truncate(shmq_commitlog_t *cl, int64_t off)
{
    if (!cl || off < 0) {
        return SHMQ_E_ARG;
    }
    if (cl->readonly) {
        return shmq_error_set(-EROFS, "commitlog %s is read-only", cl->q.dir);
    }
    int rc = shmq_mfq_truncate(&cl->q, off);
    if (rc) {
        return rc;
    }
    shmq_commitlog_set_positions(cl, off, off);
    cl->prep_asked = -1;
    return 0;
}

int64_t shmq_commitlog_min_offset(const shmq_commitlog_t *cl)
{
    return shmq_mfq_min_offset(&cl->q);
}

int64_t shmq_commitlog_next_segment(const shmq_commitlog_t *cl, int64_t off)
{
    return off - off % seg_size(cl) + seg_size(cl);
}

int64_t shmq_commitlog_last_nonzero(const shmq_commitlog_t *cl, int64_t from, int64_t to)
{
    int64_t found = from;
    int64_t pos = from;
    while (pos < to) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, pos);
        if (!mf) {
            int64_t next = shmq_commitlog_next_segment(cl, pos);
            if (next <= pos) {
                break;
            }
            pos = next;
            continue;
        }
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        int64_t end = to < seg_end ? to : seg_end;
        const uint8_t *p = mf->base + (pos - mf->start_offset);
        const uint8_t *e = mf->base + (end - mf->start_offset);
        /* Scan backwards: the last non-zero byte is what we want. */
        while (e > p && e[-1] == 0) {
            e--;
        }
        if (e > p) {
            found = mf->start_offset + (e - mf->base);
        }
        pos = seg_end;
    }
    return found;
}

bool shmq_commitlog_record_in(const shmq_commitlog_t *cl, int64_t from, int64_t to, bool blanks)
{
    for (int64_t pos = from; pos < to; pos++) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, pos);
        if (!mf) {
            continue;
        }
        int64_t rel = pos - mf->start_offset;
        /* Cheap filter before a full decode: the magic. */
        if ((size_t)rel + SHMQ_BLANK_MIN_LEN > mf->size) {
            continue;
        }
        const uint8_t *p = mf->base + rel;
        int32_t magic = (int32_t)shmq_get_be32(p + 4);
        if (blanks && magic == SHMQ_MAGIC_BLANK) {
            return true;
        }
        shmq_record_t r;
        if ((magic == SHMQ_MAGIC_V1 || magic == SHMQ_MAGIC_V2) &&
            shmq_record_decode(p, mf->size - (size_t)rel, pos, SHMQ_DECODE_CHECK_ALL, &r) > 0) {
            return true;
        }
    }
    return false;
}
