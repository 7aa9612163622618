/*
 * Cleaning mechanisms (see clean.h): disk usage by RocketMQ's formula, the
 * decision of one cleaning run, deletion of expired CommitLog segments,
 * ConsumeQueue files and index files below the new minimum, and the
 * helpers with which processes that map store files let go of deleted
 * ones.
 *
 * Nothing here maps a file for writing or shortens one: files are unlinked
 * (PITFALLS 3) and the directory is fsynced afterwards (PITFALLS 9).  Every
 * name and header read from disk is checked before it is used.
 */
#include "store/clean.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "shmq/errors.h"

#define INDEX_NAME_LEN   17 /* yyyyMMddHHmmssSSS */
#define INDEX_HEADER_LEN 40
#define QUEUE_ID_DIGITS  9

const char *shmq_clean_reason_name(uint32_t reason)
{
    switch (reason) {
    case SHMQ_CLEAN_TIME:
        return "delete_when";
    case SHMQ_CLEAN_SPACE:
        return "disk_usage";
    case SHMQ_CLEAN_MANUAL:
        return "manual";
    case SHMQ_CLEAN_FORCED:
        return "clean_forcibly";
    default:
        return "none";
    }
}

/* ---- disk usage ----------------------------------------------------------------- */

int shmq_clean_ratio_pct(uint64_t total, uint64_t free_bytes, uint64_t avail)
{
    uint64_t used = total > free_bytes ? total - free_bytes : 0;
    unsigned __int128 entire = (unsigned __int128)used + avail;
    if (entire == 0) {
        return -1;
    }
    unsigned __int128 pct = ((unsigned __int128)used * 100 + entire - 1) / entire;
    return pct > 100 ? 100 : (int)pct;
}

int shmq_clean_disk_used_pct(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0) {
        int e = errno;
        return shmq_error_set(-e, "statvfs %s: %s", path, strerror(e));
    }
    uint64_t unit = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    return shmq_clean_ratio_pct((uint64_t)sv.f_blocks * unit, (uint64_t)sv.f_bfree * unit,
                                (uint64_t)sv.f_bavail * unit);
}

/* ---- the decision ------------------------------------------------------------------- */

bool shmq_clean_hour_listed(const char *delete_when, int hour)
{
    const char *p = delete_when;
    while (p && *p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int v = 0;
        bool digits = len > 0 && len <= 2;
        for (size_t i = 0; i < len && digits; i++) {
            digits = p[i] >= '0' && p[i] <= '9';
            v = v * 10 + (p[i] - '0');
        }
        if (digits && v == hour) {
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

void shmq_clean_decide(const shmq_config_t *cfg, int cl_pct, int cq_pct, int hour, bool manual,
                       shmq_clean_decision_t *d)
{
    memset(d, 0, sizeof(*d));
    int warning = cfg->disk_space_warning_level_ratio;
    int forcibly = cfg->disk_space_clean_forcibly_ratio;
    int max_used = cfg->disk_max_used_space_ratio;
    /* CommitLog path first, then the consumequeue path (§15 isSpaceToDelete). */
    if (cl_pct > warning) {
        d->disk_full = true;
        d->clean_immediately = true;
    } else if (cl_pct > forcibly) {
        d->clean_immediately = true;
    }
    if (cq_pct > warning) {
        d->logic_disk_full = true;
        d->clean_immediately = true;
    } else if (cq_pct > forcibly) {
        d->clean_immediately = true;
    }
    d->space_to_delete =
        d->clean_immediately || cl_pct < 0 || cq_pct < 0 || cl_pct > max_used || cq_pct > max_used;
    d->time_up = shmq_clean_hour_listed(cfg->delete_when, hour);
    d->run = d->time_up || d->space_to_delete || manual;
    d->force = d->run && d->clean_immediately && cfg->clean_file_forcibly_enable;
    if (!d->run) {
        d->reason = SHMQ_CLEAN_NONE;
    } else if (d->force) {
        d->reason = SHMQ_CLEAN_FORCED;
    } else if (manual) {
        d->reason = SHMQ_CLEAN_MANUAL;
    } else if (d->space_to_delete) {
        d->reason = SHMQ_CLEAN_SPACE;
    } else {
        d->reason = SHMQ_CLEAN_TIME;
    }
}

uint32_t shmq_clean_full_flags(const shmq_config_t *cfg, int cl_pct, int cq_pct, uint32_t prev)
{
    const int pct[2] = {cl_pct, cq_pct};
    const uint32_t bit[2] = {SHMQ_CLEAN_FULL_COMMITLOG, SHMQ_CLEAN_FULL_LOGICS};
    uint32_t flags = 0;
    for (int i = 0; i < 2; i++) {
        if (pct[i] > cfg->disk_space_warning_level_ratio) {
            flags |= bit[i];
        } else if (pct[i] > cfg->disk_space_clean_forcibly_ratio) {
            flags |= prev & bit[i]; /* between the two levels: as it was */
        }
    }
    return flags;
}

/* ---- directory helpers ----------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return shmq_error_set(-e, "open directory %s: %s", dir, strerror(e));
    }
    int rc = 0;
    if (fsync(fd) != 0) {
        int e = errno;
        rc = shmq_error_set(-e, "fsync directory %s: %s", dir, strerror(e));
    }
    close(fd);
    return rc;
}

/* Sorted start offsets of the 20-digit segment files in dir (none if dir is missing). */
static int list_segments(const char *dir, int64_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        return e == ENOENT ? 0 : shmq_error_set(-e, "opendir %s: %s", dir, strerror(e));
    }
    int64_t *v = NULL, off;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!shmq_segment_parse(de->d_name, &off)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *nv = realloc(v, cap * sizeof(*nv));
            if (nv == NULL) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = off;
    }
    closedir(d);
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_i64);
    }
    *out = v;
    *n_out = n;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the worker then sees its flag */
}

/* ---- CommitLog ---------------------------------------------------------------------------- */

int shmq_clean_commitlog(const shmq_clean_cl_args_t *a, int64_t *min)
{
    if (!a || !a->dir || a->seg_size == 0 || !min) {
        return SHMQ_E_ARG;
    }
    int64_t *offs;
    size_t n;
    int rc = list_segments(a->dir, &offs, &n);
    if (rc < 0) {
        return rc;
    }
    int deleted = 0;
    char path[PATH_MAX + 32];
    char name[21];
    /* Never the newest file; oldest first; the first kept stops the run. */
    for (size_t i = 0; i + 1 < n && deleted < a->batch_max; i++) {
        if (offs[i] > INT64_MAX - (int64_t)a->seg_size ||
            offs[i] + (int64_t)a->seg_size > a->bound) {
            break; /* not dispatched or flushed completely yet */
        }
        shmq_segment_name(offs[i], name);
        snprintf(path, sizeof(path), "%s/%s", a->dir, name);
        struct stat st;
        if (stat(path, &st) != 0) {
            int e = errno;
            rc = shmq_error_set(-e, "stat %s: %s", path, strerror(e));
            break;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != a->seg_size) {
            break; /* not a segment as this store writes them: leave it to an operator */
        }
        int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        bool expired = a->now_ms >= mtime_ms + a->reserved_ms;
        if (!expired && !a->force) {
            break;
        }
        if (deleted > 0 && a->interval_ms > 0) {
            sleep_ms(a->interval_ms);
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            rc = shmq_error_set(-e, "unlink %s: %s", path, strerror(e));
            break;
        }
        deleted++;
    }
    if (deleted > 0) {
        int frc = fsync_dir(a->dir);
        rc = rc < 0 ? rc : frc;
    }
    if ((size_t)deleted < n) {
        *min = offs[deleted];
    }
    free(offs);
    return rc < 0 && deleted == 0 ? rc : deleted;
}

/* ---- ConsumeQueue -------------------------------------------------------------------------- */

static int64_t unit_phys(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return (int64_t)be64toh(v);
}

int shmq_clean_consume_queue(const char *root, const char *topic, int32_t queue_id,
                             size_t file_size, int64_t cl_min, int64_t max_offset,
                             shmq_clean_cq_result_t *res)
{
    if (!root || !topic || !res || file_size < SHMQ_CQ_UNIT_SIZE) {
        return SHMQ_E_ARG;
    }
    memset(res, 0, sizeof(*res));
    shmq_cq_t cq;
    int rc = shmq_cq_open(&cq, root, topic, queue_id, file_size, SHMQ_MF_READONLY);
    if (rc < 0) {
        return rc;
    }
    /* Units beyond what the dispatcher published may still be being written. */
    if (max_offset >= 0 && max_offset <= INT64_MAX / SHMQ_CQ_UNIT_SIZE &&
        max_offset * SHMQ_CQ_UNIT_SIZE < cq.write_pos) {
        cq.write_pos = max_offset * SHMQ_CQ_UNIT_SIZE;
        if (cq.write_pos < cq.min_logic_offset) {
            cq.write_pos = cq.min_logic_offset;
        }
    }
    rc = shmq_cq_correct_min(&cq, cl_min); /* read-only: computes, deletes nothing */
    if (rc < 0) {
        shmq_cq_close(&cq);
        return rc;
    }
    res->min_offset = shmq_cq_min_offset(&cq);
    /* Files (never the last) whose last unit is below the CommitLog minimum. */
    for (size_t i = 0; i + 1 < cq.q.count; i++) {
        const shmq_mapped_file_t *mf = cq.q.segs[i];
        if (mf->size < SHMQ_CQ_UNIT_SIZE ||
            unit_phys(mf->base + mf->size - SHMQ_CQ_UNIT_SIZE) >= cl_min) {
            break;
        }
        if (unlink(mf->path) != 0 && errno != ENOENT) {
            int e = errno;
            rc = shmq_error_set(-e, "unlink %s: %s", mf->path, strerror(e));
            break;
        }
        res->deleted++;
    }
    if (res->deleted > 0) {
        int frc = fsync_dir(cq.q.dir);
        rc = rc < 0 ? rc : frc;
    }
    shmq_cq_close(&cq);
    return rc < 0 && res->deleted == 0 ? rc : 0;
}

/* A queue id directory name: 1..9 decimal digits. */
static bool parse_queue_id(const char *s, int32_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > QUEUE_ID_DIGITS) {
        return false;
    }
    int32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_dir_at(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

int shmq_clean_foreach_queue_dir(const char *root,
                                 int (*fn)(const char *topic, int32_t queue_id, void *arg),
                                 void *arg)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/consumequeue", root) >= (int)sizeof(dir)) {
        return shmq_error_set(-ENAMETOOLONG, "store path too long: %s", root);
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        return e == ENOENT ? 0 : shmq_error_set(-e, "opendir %s: %s", dir, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *topic = de->d_name;
        if (topic[0] == '.' || strlen(topic) > SHMQ_TOPIC_MAX_ANY || !is_dir_at(dirfd(d), topic)) {
            continue;
        }
        int tfd = openat(dirfd(d), topic, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0) {
            continue; /* removed meanwhile (topic deleted) */
        }
        DIR *td = fdopendir(tfd);
        if (td == NULL) {
            close(tfd);
            continue;
        }
        struct dirent *qe;
        while (rc == 0 && (qe = readdir(td)) != NULL) {
            int32_t qid;
            if (parse_queue_id(qe->d_name, &qid) && is_dir_at(dirfd(td), qe->d_name)) {
                rc = fn(topic, qid, arg);
            }
        }
        closedir(td);
    }
    closedir(d);
    return rc;
}

/* ---- IndexFile ------------------------------------------------------------------------------ */

static bool index_name(const char *s)
{
    if (strlen(s) != INDEX_NAME_LEN) {
        return false;
    }
    for (size_t i = 0; i < INDEX_NAME_LEN; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* endPhyOffset of an index file's header; false when the header cannot be read. */
static bool index_end_phys(const char *path, int64_t *end)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    uint8_t hdr[INDEX_HEADER_LEN];
    ssize_t got = pread(fd, hdr, sizeof(hdr), 0);
    close(fd);
    if (got != (ssize_t)sizeof(hdr)) {
        return false;
    }
    *end = unit_phys(hdr + 24);
    return true;
}

int shmq_clean_index_files(const char *root, int64_t cl_min)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/index", root) >= (int)sizeof(dir) - INDEX_NAME_LEN - 2) {
        return shmq_error_set(-ENAMETOOLONG, "store path too long: %s", root);
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        return e == ENOENT ? 0 : shmq_error_set(-e, "opendir %s: %s", dir, strerror(e));
    }
    char(*names)[INDEX_NAME_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!index_name(de->d_name)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char(*nn)[INDEX_NAME_LEN + 1] = realloc(names, cap * sizeof(*nn));
            if (nn == NULL) {
                free(names);
                closedir(d);
                return -ENOMEM;
            }
            names = nn;
        }
        memcpy(names[n++], de->d_name, INDEX_NAME_LEN + 1);
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_name);
    }
    int deleted = 0, rc = 0;
    char path[PATH_MAX + 32];
    for (size_t i = 0; i + 1 < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        int64_t end;
        if (!index_end_phys(path, &end) || end >= cl_min) {
            break;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            rc = shmq_error_set(-e, "unlink %s: %s", path, strerror(e));
            break;
        }
        deleted++;
    }
    free(names);
    if (deleted > 0) {
        int frc = fsync_dir(dir);
        rc = rc < 0 ? rc : frc;
    }
    return rc < 0 && deleted == 0 ? rc : deleted;
}

/* ---- processes holding mappings ----------------------------------------------------------- */

static bool first_removed(const shmq_mfq_t *q)
{
    return q->count > 1 && access(q->segs[0]->path, F_OK) != 0 && errno == ENOENT;
}

int shmq_clean_drop_removed(shmq_mfq_t *q)
{
    if (!q || !q->is_open) {
        return SHMQ_E_ARG;
    }
    size_t before = q->count;
    /* A reader may have mapped only segments that are all gone now (it read nothing since):
     * refresh maps the newer ones first, then drops the removed ones. */
    if ((q->flags & SHMQ_MF_READONLY) && q->count > 0 && access(q->segs[0]->path, F_OK) != 0 &&
        errno == ENOENT) {
        int rc = shmq_mfq_refresh(q);
        if (rc < 0) {
            return rc;
        }
        return before > q->count ? (int)(before - q->count) : 0;
    }
    if (!first_removed(q)) {
        return 0;
    }
    if (q->flags & SHMQ_MF_READONLY) {
        int rc = shmq_mfq_refresh(q);
        if (rc < 0) {
            return rc;
        }
        return before > q->count ? (int)(before - q->count) : 0;
    }
    int dropped = 0;
    while (first_removed(q)) {
        int rc = shmq_mfq_delete_first(q); /* the file is gone: unmaps and fsyncs the directory */
        if (rc < 0) {
            return rc;
        }
        dropped++;
    }
    return dropped;
}

int shmq_clean_cq_drop_removed(shmq_cq_t *cq)
{
    int rc = shmq_clean_drop_removed(&cq->q);
    if (rc > 0) {
        int64_t first = shmq_mfq_min_offset(&cq->q);
        if (cq->min_logic_offset < first) {
            cq->min_logic_offset = first;
        }
        if (cq->flushed_pos < first) {
            cq->flushed_pos = first;
        }
    }
    return rc;
}
