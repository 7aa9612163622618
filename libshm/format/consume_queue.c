/*
 * ConsumeQueue: the per (topic, queue id) index of 20-byte units (phys
 * offset, size, tagsCode; big-endian) that points into the CommitLog.
 *
 * Written by one writer (the dispatcher): append, recovery cut, dirty
 * truncation, minimum correction, flush.  Read-only opens (consumers, tools)
 * compute the same positions and never modify a file.
 *
 * Positions are byte offsets in the queue's logical stream of units:
 *   min_logic_offset  first unit readers may use (past blank pre-fill units
 *                     and, after shmq_cq_correct_min, past units whose
 *                     records the CommitLog no longer holds);
 *   write_pos         end of the last unit;
 *   flushed_pos       bytes below it are on disk;
 *   max_phys_offset   phys + size of the last unit that is not a blank
 *                     pre-fill unit (0 when there is none).  Blank units are
 *                     left out so that their 0x7FFFFFFF size never makes a
 *                     real record look "already built".
 *
 * Formats and algorithms: ROCKETMQ-FACTS §7 (units, recovery, truncation,
 * minimum) and §16.1 (offset by time, RocketMQ 5 rules).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/consume_queue.h"
#include "shmq/errors.h"
#include "format/store_files.h"

#define CQ_UNIT       SHMQ_CQ_UNIT_SIZE
#define CQ_PAGE       4096
#define CQ_BLANK_SIZE INT32_MAX

/* ---- units ------------------------------------------------------------- */

static void cq_unit_decode(const uint8_t *p, shmq_cq_unit_t *u)
{
    uint64_t a;
    uint32_t b;
    uint64_t c;

    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 4);
    memcpy(&c, p + 12, 8);
    u->phys_offset = (int64_t)be64toh(a);
    u->size = (int32_t)be32toh(b);
    u->tags_code = (int64_t)be64toh(c);
}

/* A blank pre-fill unit (0, 0x7FFFFFFF, 0): it points at no record. */
static bool cq_unit_is_blank(const shmq_cq_unit_t *u)
{
    return u->phys_offset == 0 && u->size == CQ_BLANK_SIZE && u->tags_code == 0;
}

/*
 * Recovery's validity rule (phys >= 0 && size > 0), plus phys + size must
 * not overflow: such a unit is corrupt whatever the rule says.
 */
static bool cq_unit_is_valid(const shmq_cq_unit_t *u)
{
    return u->phys_offset >= 0 && u->size > 0 && u->phys_offset <= INT64_MAX - u->size;
}

/* Unit at logical byte offset off; false if no segment holds it. */
static bool cq_unit_get(const shmq_cq_t *cq, int64_t off, shmq_cq_unit_t *u)
{
    const shmq_mapped_file_t *mf = shmq_mfq_find(&cq->q, off);

    if (mf == NULL)
        return false;
    int64_t rel = off - mf->start_offset;
    if (rel < 0 || (size_t)rel + CQ_UNIT > mf->size)
        return false;
    cq_unit_decode(mf->base + rel, u);
    return true;
}

/* Readers' view of write_pos: the writer publishes it after the unit bytes below it. */
static int64_t cq_write_pos(const shmq_cq_t *cq)
{
    return __atomic_load_n(&cq->write_pos, __ATOMIC_ACQUIRE); /* pairs with cq_publish */
}

static void cq_publish(shmq_cq_t *cq, int64_t pos)
{
    /* release: a reader that sees pos also sees the unit bytes below it */
    __atomic_store_n(&cq->write_pos, pos, __ATOMIC_RELEASE);
}

/* ---- open / close ------------------------------------------------------ */

size_t shmq_cq_file_size(size_t configured)
{
    size_t rem = configured % CQ_UNIT;

    if (rem == 0)
        return configured;
    if (configured > SIZE_MAX - CQ_UNIT)
        return configured - rem; /* cannot round up: round down instead */
    return configured + (CQ_UNIT - rem);
}

static int cq_check_topic(const char *topic)
{
    size_t len = topic ? strlen(topic) : 0;

    if (len == 0 || len > SHMQ_TOPIC_MAX_ANY)
        return shmq_error_set(SHMQ_E_TOPIC, "topic length %zu: expected 1..%d bytes", len,
                              SHMQ_TOPIC_MAX_ANY);
    if (strchr(topic, '/') != NULL || strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)
        return shmq_error_set(SHMQ_E_TOPIC, "topic \"%s\": not usable as a directory name", topic);
    return 0;
}

/* mkdir path (existing is fine); fsync its parent directory when it was created. */
static int cq_mkdir(const char *path)
{
    if (mkdir(path, SHMQ_DIR_MODE) < 0) {
        if (errno == EEXIST)
            return 0;
        return shmq_error_set(-errno, "mkdir %s: %s", path, strerror(errno));
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return shmq_error_set(-errno, "open directory %s: %s", parent, strerror(errno));
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return shmq_error_set(rc, "fsync directory %s: %s", parent, strerror(-rc));
    return 0;
}

/* A queue without a valid unit is empty at offset 0 (as one without files is). */
static void cq_set_empty(shmq_cq_t *cq)
{
    cq->min_logic_offset = 0;
    cq->flushed_pos = 0;
    cq->max_phys_offset = 0;
    cq_publish(cq, 0);
}

int shmq_cq_open(shmq_cq_t *cq, const char *root, const char *topic, int32_t queue_id,
                 size_t file_size, unsigned flags)
{
    char dir[PATH_MAX];
    int rc;

    memset(cq, 0, sizeof *cq);
    rc = cq_check_topic(topic);
    if (rc < 0)
        return rc;
    if (queue_id < 0)
        return shmq_error_set(SHMQ_E_ARG, "queue id %" PRId32 ": expected >= 0", queue_id);
    if (file_size == 0 || file_size % CQ_UNIT != 0 || file_size > (size_t)INT32_MAX)
        return shmq_error_set(SHMQ_E_ARG, "consume queue file size %zu: expected a multiple of %d",
                              file_size, CQ_UNIT);
    if (snprintf(dir, sizeof dir, "%s/consumequeue/%s/%" PRId32, root, topic, queue_id) >=
        (int)sizeof dir)
        return shmq_error_set(-ENAMETOOLONG, "consume queue path under %s too long", root);

    cq->readonly = (flags & SHMQ_MF_READONLY) != 0;
    if (!cq->readonly) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/consumequeue", root);
        rc = cq_mkdir(path);
        if (rc == 0) {
            snprintf(path, sizeof path, "%s/consumequeue/%s", root, topic);
            rc = cq_mkdir(path);
        }
        if (rc == 0)
            rc = cq_mkdir(dir);
        if (rc < 0)
            return rc;
    }

    if ((flags & SHMQ_CQ_NO_SCAN) && !cq->readonly)
        return shmq_error_set(SHMQ_E_ARG, "consume queue %s: no scan is for read-only opens", dir);
    /* Fine pieces: a flush of a few units writes back 64 KiB, not 1 MiB (SHMQ_MF_FINE; a
     * read-only open drops the flag). */
    rc = shmq_mfq_open(&cq->q, dir, file_size, (flags & ~(unsigned)SHMQ_CQ_NO_SCAN) | SHMQ_MF_FINE);
    if (rc < 0)
        return rc;
    snprintf(cq->topic, sizeof cq->topic, "%s", topic);
    cq->queue_id = queue_id;
    if (flags & SHMQ_CQ_NO_SCAN) {
        cq_set_empty(cq); /* the caller's positions follow */
        return 0;
    }
    rc = shmq_cq_recover(cq);
    if (rc < 0) {
        shmq_mfq_close(&cq->q);
        return rc;
    }
    return 0;
}

void shmq_cq_close(shmq_cq_t *cq)
{
    shmq_mfq_close(&cq->q);
}

/* ---- cutting the tail --------------------------------------------------- */

/* One past the last non-zero byte of p[from, to), or from if all are zero. */
static size_t cq_last_nonzero(const uint8_t *p, size_t from, size_t to)
{
    while (to > from && (to % 8) != 0 && p[to - 1] == 0)
        to--;
    while (to >= from + 8 && (to % 8) == 0) {
        uint64_t w;
        memcpy(&w, p + to - 8, 8);
        if (w != 0)
            break;
        to -= 8;
    }
    while (to > from && p[to - 1] == 0)
        to--;
    return to;
}

/*
 * Make end the end of the queue's files: zero bytes [end, zero_to) of the
 * segment holding end (and sync them, so a crash cannot bring the dropped
 * units back), then unlink every segment after it.  A segment starting at
 * end is unlinked whole.  Writable queues only.
 */
static int cq_cut(shmq_cq_t *cq, int64_t end, int64_t zero_to)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&cq->q, end);
    int64_t remove_from = end;
    int rc;

    if (mf != NULL && end > mf->start_offset) {
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        int64_t lim = zero_to < seg_end ? zero_to : seg_end;
        if (lim > end) {
            size_t from = (size_t)(end - mf->start_offset);
            size_t to = (size_t)(lim - mf->start_offset);
            memset(mf->base + from, 0, to - from);
            rc = shmq_mf_flush(mf, from & ~(size_t)(CQ_PAGE - 1), to, SHMQ_FLUSH_MSYNC);
            if (rc < 0)
                return shmq_error_set(rc, "%s: sync of zeroed bytes %zu..%zu failed", mf->path,
                                      from, to);
        }
        remove_from = seg_end;
    }
    if (cq->q.count > 0 && shmq_mfq_end_offset(&cq->q) > remove_from) {
        rc = shmq_mfq_truncate(&cq->q, remove_from);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* phys + size of the last non-blank unit below end (0 if none). */
static int64_t cq_scan_max_phys(const shmq_cq_t *cq, int64_t end)
{
    int64_t floor = shmq_mfq_min_offset(&cq->q);
    shmq_cq_unit_t u;

    for (int64_t off = end - CQ_UNIT; off >= floor; off -= CQ_UNIT) {
        if (!cq_unit_get(cq, off, &u))
            return 0;
        if (cq_unit_is_blank(&u))
            continue;
        return cq_unit_is_valid(&u) ? u.phys_offset + u.size : 0;
    }
    return 0;
}

/* ---- recovery ---------------------------------------------------------- */

int shmq_cq_recover(shmq_cq_t *cq)
{
    size_t count = cq->q.count;

    cq->flush_err = 0;
    if (count == 0) {
        cq_set_empty(cq);
        return 0;
    }
    int64_t first = cq->q.segs[0]->start_offset;

    /* §7.3: scan from the third-from-last file; stop at the first invalid unit. */
    size_t idx = count >= 3 ? count - 3 : 0;
    int64_t end = cq->q.segs[idx]->start_offset;
    for (size_t i = idx; i < count; i++) {
        const shmq_mapped_file_t *mf = cq->q.segs[i];
        size_t rel = 0;
        shmq_cq_unit_t u;
        for (; rel + CQ_UNIT <= mf->size; rel += CQ_UNIT) {
            cq_unit_decode(mf->base + rel, &u);
            if (!cq_unit_is_valid(&u))
                break;
        }
        end = mf->start_offset + (int64_t)rel;
        if (rel + CQ_UNIT <= mf->size)
            break; /* an invalid unit ends the queue */
    }

    if (!cq->readonly) {
        int64_t zero_to = end;
        shmq_mapped_file_t *mf = shmq_mfq_find(&cq->q, end);
        if (mf != NULL && end > mf->start_offset) {
            size_t nz = cq_last_nonzero(mf->base, (size_t)(end - mf->start_offset), mf->size);
            zero_to = mf->start_offset + (int64_t)nz;
        }
        int rc = cq_cut(cq, end, zero_to);
        if (rc < 0)
            return rc;
    }
    if (end <= first) {
        cq_set_empty(cq); /* not one valid unit (all files removed unless read-only) */
        return 0;
    }

    /* The minimum: the first file's start, past leading blank pre-fill units. */
    int64_t min = first;
    shmq_cq_unit_t u;
    while (min < end && cq_unit_get(cq, min, &u) && cq_unit_is_blank(&u))
        min += CQ_UNIT;

    cq->min_logic_offset = min;
    /* Nothing is known to be on disk: the first flush syncs every file once. */
    cq->flushed_pos = first;
    cq_publish(cq, end);
    cq->max_phys_offset = cq_scan_max_phys(cq, end);
    return 0;
}

/* ---- append ------------------------------------------------------------ */

/*
 * Restart the queue at target: drop its files (they hold no real unit), create
 * the file holding target, fill it with blank units up to target (§7.2).
 */
static int cq_start_at(shmq_cq_t *cq, int64_t target)
{
    shmq_mapped_file_t *mf;
    int64_t fs = (int64_t)cq->q.seg_size;
    int rc;

    if (cq->q.count > 0) {
        rc = shmq_mfq_truncate(&cq->q, shmq_mfq_min_offset(&cq->q));
        if (rc < 0)
            return rc;
    }
    int64_t start = target - target % fs;
    rc = shmq_mfq_get_or_create(&cq->q, start, &mf);
    if (rc < 0)
        return rc;
    if (mf->start_offset != start || mf->size != cq->q.seg_size)
        return shmq_error_set(SHMQ_E_SEGMENT, "%s: expected a segment at %" PRId64, mf->path,
                              start);
    for (int64_t rel = 0; rel < target - start; rel += CQ_UNIT)
        shmq_cq_unit_encode(mf->base + rel, 0, CQ_BLANK_SIZE, 0);
    cq->min_logic_offset = target;
    cq->flushed_pos = start;
    cq->max_phys_offset = 0;
    cq_publish(cq, target);
    return 0;
}

/*
 * shmq_cq_append_rest() past its checks: the unit the inline part did not
 * take (a first unit, a repeat, a gap, a new segment, a segment unmapped
 * since): a lookup, maybe a new file.
 */
static int cq_append_slow(shmq_cq_t *cq, int64_t queue_offset, int64_t phys_offset, int32_t size,
                          int64_t tags_code)
{
    int rc;
    int64_t target = queue_offset * CQ_UNIT;
    int64_t wp = cq->write_pos;
    /* No real unit yet (no file, or only blank pre-fill units): start at target. */
    if (cq->q.count == 0 ||
        (cq->max_phys_offset == 0 && wp == cq->min_logic_offset && target != wp)) {
        rc = cq_start_at(cq, target);
        if (rc < 0)
            return rc;
        wp = target;
    }
    if (target < wp)
        return 0; /* written before ("repeatedly") */
    if (target > wp)
        return shmq_error_set(SHMQ_E_RANGE,
                              "consume queue %s: queue offset %" PRId64
                              " leaves a gap after max offset %" PRId64 " (phys %" PRId64 ")",
                              cq->q.dir, queue_offset, wp / CQ_UNIT, phys_offset);

    shmq_mapped_file_t *mf = shmq_mfq_find(&cq->q, wp);
    if (mf == NULL) {
        rc = shmq_mfq_get_or_create(&cq->q, wp, &mf);
        if (rc < 0)
            return rc;
    }
    int64_t rel = wp - mf->start_offset;
    if (rel < 0 || (size_t)rel + CQ_UNIT > mf->size)
        return shmq_error_set(SHMQ_E_SEGMENT, "%s: unit at %" PRId64 " does not fit the segment",
                              mf->path, wp);
    cq->tail = mf;
    cq->tail_unmapped = cq->q.unmapped;
    shmq_cq_put_unit(cq, mf, wp, phys_offset, size, tags_code);
    return 0;
}

/* Out of line: the refusals of shmq_cq_append() (their formatting needs a large frame). */
static __attribute__((noinline, cold)) int
cq_append_refuse(const shmq_cq_t *cq, int64_t queue_offset, int64_t phys_offset, int32_t size)
{
    if (cq->readonly)
        return shmq_error_set(SHMQ_E_ARG, "consume queue %s: opened read-only", cq->q.dir);
    return shmq_error_set(SHMQ_E_ARG,
                          "consume queue %s: bad unit (queue offset %" PRId64 ", phys %" PRId64
                          ", size %" PRId32 ")",
                          cq->q.dir, queue_offset, phys_offset, size);
}

int shmq_cq_append_rest(shmq_cq_t *cq, int64_t queue_offset, int64_t phys_offset, int32_t size,
                        int64_t tags_code)
{
    if (cq->readonly || queue_offset < 0 || queue_offset > INT64_MAX / CQ_UNIT - 1 ||
        phys_offset < 0 || size <= 0 || phys_offset > INT64_MAX - size)
        return cq_append_refuse(cq, queue_offset, phys_offset, size);
    if (phys_offset + size <= cq->max_phys_offset)
        return 0; /* already built (§7.2) */
    return cq_append_slow(cq, queue_offset, phys_offset, size, tags_code);
}

/* ---- reading ----------------------------------------------------------- */

int shmq_cq_read(const shmq_cq_t *cq, int64_t queue_offset, shmq_cq_unit_t *unit)
{
    int64_t min = shmq_cq_min_offset(cq);
    int64_t max = shmq_cq_max_offset(cq);

    if (queue_offset < min || queue_offset >= max)
        return shmq_error_set(
            SHMQ_E_RANGE, "consume queue %s: offset %" PRId64 " outside [%" PRId64 ", %" PRId64 ")",
            cq->q.dir, queue_offset, min, max);
    if (!cq_unit_get(cq, queue_offset * CQ_UNIT, unit))
        return shmq_error_set(SHMQ_E_RANGE, "consume queue %s: no file holds offset %" PRId64,
                              cq->q.dir, queue_offset);
    return 0;
}

/* ---- offset by time (§16.1, RocketMQ 5) -------------------------------- */

enum cq_time { CQ_TIME_OK, CQ_TIME_BEFORE, CQ_TIME_ERR };

/*
 * Store time of the unit at byte offset off.  CQ_TIME_BEFORE: a blank unit or
 * one whose record is below the CommitLog minimum; CQ_TIME_ERR: the record
 * cannot be read or its size differs from the unit's.  *ts is -1 unless OK.
 */
static enum cq_time cq_unit_time(const shmq_cq_t *cq, const shmq_commitlog_t *cl, int64_t cl_min,
                                 int64_t off, int64_t *ts)
{
    shmq_cq_unit_t u;
    shmq_record_t rec;

    *ts = -1;
    if (!cq_unit_get(cq, off, &u) || !cq_unit_is_valid(&u))
        return CQ_TIME_ERR;
    if (cq_unit_is_blank(&u) || u.phys_offset < cl_min)
        return CQ_TIME_BEFORE;
    int rc = shmq_commitlog_read(cl, u.phys_offset, 0, &rec);
    if (rc <= 0 || rc != u.size)
        return CQ_TIME_ERR;
    *ts = rec.store_ts;
    return CQ_TIME_OK;
}

static int64_t cq_unit_time_or_neg(const shmq_cq_t *cq, const shmq_commitlog_t *cl, int64_t cl_min,
                                   int64_t off)
{
    int64_t ts;
    cq_unit_time(cq, cl, cl_min, off, &ts);
    return ts;
}

/* Live byte range [*lo, *hi] of unit starts of segment i; false if it holds none. */
static bool cq_seg_range(const shmq_cq_t *cq, size_t i, int64_t wp, int64_t *lo, int64_t *hi)
{
    const shmq_mapped_file_t *mf = cq->q.segs[i];
    int64_t end = mf->start_offset + (int64_t)mf->size;

    *lo = mf->start_offset > cq->min_logic_offset ? mf->start_offset : cq->min_logic_offset;
    *hi = (end < wp ? end : wp) - CQ_UNIT;
    return *hi >= *lo;
}

/* RocketMQ 5's in-file search; returns a queue offset (0 on error). */
static int64_t cq_search_file(const shmq_cq_t *cq, const shmq_commitlog_t *cl, int64_t cl_min,
                              int64_t seg_start, int64_t floor, int64_t ceiling, int64_t ts,
                              enum shmq_boundary boundary)
{
    bool lower = boundary == SHMQ_BOUNDARY_LOWER;

    if (cq_unit_time_or_neg(cq, cl, cl_min, ceiling) < ts)
        return lower ? ceiling / CQ_UNIT + 1 : ceiling / CQ_UNIT;
    if (cq_unit_time_or_neg(cq, cl, cl_min, floor) > ts)
        return lower ? seg_start / CQ_UNIT : 0;

    /* Binary search over unit indices. */
    int64_t low = floor / CQ_UNIT, high = ceiling / CQ_UNIT;
    int64_t target = -1, left = -1, right = -1;
    while (high >= low) {
        int64_t mid = low + (high - low) / 2;
        int64_t t;
        enum cq_time k = cq_unit_time(cq, cl, cl_min, mid * CQ_UNIT, &t);
        if (k == CQ_TIME_BEFORE) {
            left = mid;
            low = mid + 1;
            continue;
        }
        if (k == CQ_TIME_ERR)
            return 0;
        if (t == ts) {
            target = mid;
            break;
        }
        if (t > ts) {
            right = mid;
            high = mid - 1;
        } else {
            left = mid;
            low = mid + 1;
        }
    }
    if (target < 0)
        return lower ? right : left; /* first after ts / last before ts */

    /* Exact hit: walk to the first (LOWER) or last (UPPER) unit of that time. */
    int64_t step = lower ? -1 : 1;
    int64_t bound = lower ? floor / CQ_UNIT : ceiling / CQ_UNIT;
    while (target != bound && cq_unit_time_or_neg(cq, cl, cl_min, (target + step) * CQ_UNIT) == ts)
        target += step;
    return target;
}

int64_t shmq_cq_offset_by_time(const shmq_cq_t *cq, const shmq_commitlog_t *cl, int64_t ts,
                               enum shmq_boundary boundary)
{
    int64_t wp = cq_write_pos(cq);
    int64_t min = shmq_cq_min_offset(cq), max = wp / CQ_UNIT;
    int64_t cl_min = shmq_commitlog_min_offset(cl);
    int64_t result = 0;
    int64_t lo, hi;
    size_t first = SIZE_MAX, last = 0;

    for (size_t i = 0; i < cq->q.count; i++) {
        if (cq_seg_range(cq, i, wp, &lo, &hi)) {
            if (first == SIZE_MAX)
                first = i;
            last = i;
        }
    }
    if (first == SIZE_MAX)
        goto clamp; /* empty queue */

    /* Pick the file (RocketMQ 5's rules, over the files holding live units). */
    size_t pick = SIZE_MAX;
    if (boundary == SHMQ_BOUNDARY_LOWER) {
        for (size_t i = first; i <= last && pick == SIZE_MAX; i++) {
            cq_seg_range(cq, i, wp, &lo, &hi);
            if (i == last || cq_unit_time_or_neg(cq, cl, cl_min, hi) >= ts)
                pick = i;
        }
    } else {
        for (size_t i = last + 1; i-- > first && pick == SIZE_MAX;) {
            cq_seg_range(cq, i, wp, &lo, &hi);
            if (cq_unit_time_or_neg(cq, cl, cl_min, lo) <= ts)
                pick = i;
        }
    }
    if (pick != SIZE_MAX) {
        cq_seg_range(cq, pick, wp, &lo, &hi);
        result =
            cq_search_file(cq, cl, cl_min, cq->q.segs[pick]->start_offset, lo, hi, ts, boundary);
    }
clamp:
    if (result < min)
        result = min;
    if (result > max)
        result = max;
    return result;
}

/* ---- truncation after CommitLog recovery (§7.4) ------------------------ */

/*
 * A unit survives a cut of the CommitLog at phys iff its whole record is below
 * it.  A blank pre-fill unit survives unless the CommitLog is cut to nothing
 * (RocketMQ's rule, phys 0 < cut).
 */
static bool cq_unit_kept(const shmq_cq_unit_t *u, int64_t phys)
{
    if (cq_unit_is_blank(u))
        return phys > 0;
    return cq_unit_is_valid(u) && u->phys_offset <= phys - u->size;
}

int shmq_cq_truncate_dirty(shmq_cq_t *cq, int64_t phys)
{
    int64_t old_wp = cq->write_pos;
    int64_t new_end = old_wp;
    shmq_cq_unit_t u;

    if (cq->readonly)
        return shmq_error_set(SHMQ_E_ARG, "consume queue %s: opened read-only", cq->q.dir);
    if (phys < 0)
        return shmq_error_set(SHMQ_E_ARG, "truncate at phys %" PRId64, phys);
    if (cq->max_phys_offset <= phys && phys > 0)
        return 0; /* every record the queue points at is below phys */
    int64_t first = shmq_mfq_min_offset(&cq->q);

    /* From the last file back: a file whose first unit is dirty goes whole. */
    for (size_t i = cq->q.count; i-- > 0;) {
        const shmq_mapped_file_t *mf = cq->q.segs[i];
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        int64_t end = seg_end < old_wp ? seg_end : old_wp;
        int64_t off = mf->start_offset;

        if (end <= off)
            continue;
        while (off < end) {
            cq_unit_decode(mf->base + (off - mf->start_offset), &u);
            if (!cq_unit_kept(&u, phys))
                break;
            off += CQ_UNIT;
        }
        new_end = off;
        if (off > mf->start_offset)
            break;
    }
    if (new_end == old_wp)
        return 0;

    int rc = cq_cut(cq, new_end, old_wp);
    if (rc < 0)
        return rc;
    if (new_end <= first) {
        cq_set_empty(cq); /* every file was removed */
        return 0;
    }
    if (cq->min_logic_offset > new_end)
        cq->min_logic_offset = new_end;
    if (cq->flushed_pos > new_end)
        cq->flushed_pos = new_end;
    cq_publish(cq, new_end);
    cq->max_phys_offset = cq_scan_max_phys(cq, new_end);
    return 0;
}

/* ---- flush ------------------------------------------------------------- */

int shmq_cq_flush_plan(const shmq_cq_t *cq, int least_pages, shmq_cq_flush_step_t *steps, int max)
{
    if (cq->readonly)
        return shmq_error_set(SHMQ_E_ARG, "consume queue %s: opened read-only", cq->q.dir);
    if (cq->flush_err != 0)
        return shmq_error_set(SHMQ_E_FENCED, "consume queue %s: an earlier flush failed (%s)",
                              cq->q.dir, shmq_strerror(cq->flush_err));

    int64_t wp = cq->write_pos;
    int64_t pos = cq->flushed_pos;
    if (cq->q.count > 0 && pos < shmq_mfq_min_offset(&cq->q))
        pos = shmq_mfq_min_offset(&cq->q);

    /* One segment at a time, in order: the next only once this one is full and flushed. */
    int n = 0;
    while (pos < wp && n < max) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cq->q, pos);
        if (mf == NULL)
            break;
        int64_t seg_end = mf->start_offset + (int64_t)mf->size;
        size_t written = (size_t)((wp < seg_end ? wp : seg_end) - mf->start_offset);
        size_t flushed = (size_t)(pos - mf->start_offset);
        bool full = written == mf->size;
        bool able;

        if (full || least_pages <= 0)
            able = written > flushed;
        else
            able = written / CQ_PAGE - flushed / CQ_PAGE >= (size_t)least_pages;
        if (!able)
            break;
        pos = mf->start_offset + (int64_t)written;
        steps[n++] =
            (shmq_cq_flush_step_t){.mf = mf, .from = flushed, .to = written, .flushed_to = pos};
        if (!full)
            break;
    }
    return n;
}

int shmq_cq_flush_step(const shmq_cq_flush_step_t *s)
{
    int rc = shmq_mf_flush(s->mf, s->from & ~(size_t)(CQ_PAGE - 1), s->to, SHMQ_FLUSH_MSYNC);
    if (rc < 0)
        return shmq_error_set(rc, "%s: flush of %zu..%zu failed", s->mf->path, s->from, s->to);
    return 0;
}

void shmq_cq_flush_done(shmq_cq_t *cq, const shmq_cq_flush_step_t *s, int rc)
{
    if (rc < 0) {
        if (cq->flush_err == 0)
            cq->flush_err = rc;
    } else if (cq->flush_err == 0 && cq->flushed_pos < s->flushed_to) {
        cq->flushed_pos = s->flushed_to;
    }
}

int shmq_cq_flush(shmq_cq_t *cq, int least_pages)
{
    shmq_cq_flush_step_t steps[4];
    const int max = (int)(sizeof(steps) / sizeof(steps[0]));
    int n;
    do {
        n = shmq_cq_flush_plan(cq, least_pages, steps, max);
        for (int i = 0; i < n; i++) {
            int rc = shmq_cq_flush_step(&steps[i]);
            shmq_cq_flush_done(cq, &steps[i], rc);
            if (rc < 0)
                return rc;
        }
    } while (n == max); /* as many as fit: there may be more */
    if (n < 0)
        return n;
    /* Files removed below it (the cleaner): nothing there to flush. */
    if (cq->q.count > 0 && cq->flushed_pos < shmq_mfq_min_offset(&cq->q))
        cq->flushed_pos = shmq_mfq_min_offset(&cq->q);
    return 0;
}

/* ---- minimum correction and deletion (§7.5) ---------------------------- */

int shmq_cq_correct_min(shmq_cq_t *cq, int64_t min_phys)
{
    shmq_cq_unit_t u;
    int rc;

    /* Delete files (never the last) whose last unit is below min_phys. */
    while (!cq->readonly && cq->q.count > 1) {
        const shmq_mapped_file_t *mf = cq->q.segs[0];
        cq_unit_decode(mf->base + mf->size - CQ_UNIT, &u);
        if (u.phys_offset >= min_phys)
            break;
        rc = shmq_mfq_delete_first(&cq->q);
        if (rc < 0)
            return rc;
    }
    int64_t first = shmq_mfq_min_offset(&cq->q);
    int64_t wp = cq->write_pos;
    if (cq->q.count > 0 && cq->min_logic_offset < first) /* never past the end: min <= max */
        cq->min_logic_offset = first < wp ? first : wp;

    if (wp <= cq->min_logic_offset)
        return 0;
    if (!cq_unit_get(cq, wp - CQ_UNIT, &u))
        return shmq_error_set(SHMQ_E_CORRUPT, "consume queue %s: no file holds the last unit",
                              cq->q.dir);
    if (u.phys_offset < min_phys) {
        cq->min_logic_offset = wp; /* every record is gone: keep the end as the minimum */
        return 0;
    }
    /* First unit with phys >= min_phys (units are ordered by phys). */
    int64_t lo = cq->min_logic_offset / CQ_UNIT, hi = wp / CQ_UNIT - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (!cq_unit_get(cq, mid * CQ_UNIT, &u))
            return shmq_error_set(SHMQ_E_CORRUPT, "consume queue %s: no file holds unit %" PRId64,
                                  cq->q.dir, mid);
        if (u.phys_offset >= min_phys)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo * CQ_UNIT > cq->min_logic_offset)
        cq->min_logic_offset = lo * CQ_UNIT;
    return 0;
}
