/*
 * Cleaning: the mechanisms behind shmq-cleaner (RocketMQ's
 * CleanCommitLogService and CleanConsumeQueueService, ROCKETMQ-FACTS §15,
 * §7.5, §8.5), and what every process that maps store files needs to let
 * the space of deleted files return.
 *
 *   disk usage       RocketMQ's formula on statvfs(): used = total - free,
 *                    ratio = ceil(used * 100 / (used + available)) percent;
 *   the decision     of one run: deleteWhen hour, disk watermarks
 *                    (diskMaxUsedSpaceRatio, diskSpaceCleanForciblyRatio,
 *                    diskSpaceWarningLevelRatio), manual request;
 *   CommitLog        oldest segments first, by file mtime against
 *                    fileReservedTime (or all but the newest when forced),
 *                    never the newest, never past a bound the caller gives
 *                    (what is dispatched and flushed), stop at the first
 *                    segment kept (no holes), at most deleteFileBatchMax;
 *   ConsumeQueue     files (never the last) whose last unit is below the
 *                    CommitLog minimum, and the queue's corrected minimum;
 *   IndexFile        leading files (never the last) whose endPhyOffset is
 *                    below the CommitLog minimum.
 *
 * Files are only ever unlinked (PITFALLS 3): a process that still maps one
 * keeps reading it; its blocks return to the filesystem once every mapping
 * is gone.  So every process holding segment mappings watches the
 * cleaner's deleted_seq (shmq_clean_changed, ctl_clean.h) and then drops the leading
 * segments whose files were removed (shmq_clean_drop_removed).
 *
 * Library code: returns counts or negative errors, never prints.
 */
#ifndef SHMQ_CLEAN_H
#define SHMQ_CLEAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/config.h"
#include "format/consume_queue.h"
#include "format/mapped_file.h"

#define SHMQ_CLEAN_MANUAL_RUNS 20 /* runs a manual request enables (RocketMQ's 20) */

/* Why a run deleted (status `last_clean.reason`). */
enum shmq_clean_reason {
    SHMQ_CLEAN_NONE = 0,
    SHMQ_CLEAN_TIME = 1,   /* the current hour is in deleteWhen: expired files */
    SHMQ_CLEAN_SPACE = 2,  /* usage above diskMaxUsedSpaceRatio (or unknown): expired files */
    SHMQ_CLEAN_MANUAL = 3, /* shmqctl clean: expired files */
    SHMQ_CLEAN_FORCED = 4, /* usage above diskSpaceCleanForciblyRatio: unexpired files too */
};

/* "delete_when", "disk_usage", "manual", "clean_forcibly", or "none". */
const char *shmq_clean_reason_name(uint32_t reason);

/* ---- disk usage ------------------------------------------------------------- */

/*
 * RocketMQ's ratio on raw byte counts, in percent rounded up:
 * ceil((total - free) * 100 / ((total - free) + avail)).  -1 when that
 * divisor is 0.
 */
int shmq_clean_ratio_pct(uint64_t total, uint64_t free_bytes, uint64_t avail);

/* Usage of the filesystem holding path (statvfs), in percent; -errno on failure. */
int shmq_clean_disk_used_pct(const char *path);

/* ---- the decision of one run ---------------------------------------------------- */

/* True when hour (0..23) is one of deleteWhen's ';'-separated hours ("04", "01;13"). */
bool shmq_clean_hour_listed(const char *delete_when, int hour);

typedef struct shmq_clean_decision {
    bool disk_full;         /* CommitLog path above diskSpaceWarningLevelRatio */
    bool logic_disk_full;   /* consumequeue path above it */
    bool clean_immediately; /* either path above diskSpaceCleanForciblyRatio (or full) */
    bool space_to_delete;   /* either path above diskMaxUsedSpaceRatio, or a ratio unknown */
    bool time_up;           /* the hour is in deleteWhen */
    bool run;               /* this run deletes: time_up, space_to_delete or manual */
    bool force;      /* unexpired files go too: clean_immediately && cleanFileForciblyEnable */
    uint32_t reason; /* enum shmq_clean_reason when run */
} shmq_clean_decision_t;

/*
 * RocketMQ's isTimeToDelete / isSpaceToDelete / manual request for one run.
 * cl_pct and cq_pct are the usages of the CommitLog and consumequeue paths
 * (negative: unknown), hour the local hour.
 */
void shmq_clean_decide(const shmq_config_t *cfg, int cl_pct, int cq_pct, int hour, bool manual,
                       shmq_clean_decision_t *d);

/* disk_full bits (shmq_ctl_cleaner_t.disk_full). */
#define SHMQ_CLEAN_FULL_COMMITLOG 0x1u
#define SHMQ_CLEAN_FULL_LOGICS    0x2u

/*
 * The disk_full bits after a check, RocketMQ's rule per path: set above
 * diskSpaceWarningLevelRatio, kept as they were above
 * diskSpaceCleanForciblyRatio, cleared at or below it (or when the usage
 * is unknown).  prev: the bits before.
 */
uint32_t shmq_clean_full_flags(const shmq_config_t *cfg, int cl_pct, int cq_pct, uint32_t prev);

/* ---- CommitLog ------------------------------------------------------------------------ */

typedef struct shmq_clean_cl_args {
    const char *dir;     /* the CommitLog directory */
    size_t seg_size;     /* mappedFileSizeCommitLog */
    int64_t now_ms;      /* wall clock compared with file mtimes */
    int64_t reserved_ms; /* fileReservedTime in ms */
    bool force;          /* delete unexpired segments too */
    int64_t bound;       /* keep every segment that ends above it (dispatched, flushed) */
    int batch_max;       /* deleteFileBatchMax */
    int interval_ms;     /* deleteCommitLogFilesInterval: pause between two deletions */
} shmq_clean_cl_args_t;

/*
 * Delete CommitLog segments, oldest first: a segment goes when it is not the
 * newest file, ends at or below a->bound, has the segment size, and is
 * expired (now >= mtime + reserved) or a->force; the first segment kept
 * stops the run (no holes); at most batch_max.  Unlinks only, then fsyncs
 * the directory.  *min gets the start of the first segment left (unchanged
 * when the directory holds none).  Returns the number deleted or an error.
 */
int shmq_clean_commitlog(const shmq_clean_cl_args_t *a, int64_t *min);

/* ---- ConsumeQueue ----------------------------------------------------------------------- */

typedef struct shmq_clean_cq_result {
    int deleted;        /* files unlinked */
    int64_t min_offset; /* the queue's corrected minimum (units) */
} shmq_clean_cq_result_t;

/*
 * One queue, after the CommitLog minimum moved to cl_min (§7.5): opens it
 * read-only (never writing to a file the dispatcher appends to), limits it
 * to max_offset units when max_offset >= 0 (what the dispatcher
 * published), corrects the minimum with shmq_cq_correct_min, then unlinks
 * the leading files (never the last) whose last unit points below cl_min.
 */
int shmq_clean_consume_queue(const char *root, const char *topic, int32_t queue_id,
                             size_t file_size, int64_t cl_min, int64_t max_offset,
                             shmq_clean_cq_result_t *res);

/*
 * Visit every <root>/consumequeue/<topic>/<queueId> directory (topic names
 * as on disk, queue ids of decimal digits).  fn returning non-zero stops
 * the walk with that value.  A missing consumequeue directory visits none.
 */
int shmq_clean_foreach_queue_dir(const char *root,
                                 int (*fn)(const char *topic, int32_t queue_id, void *arg),
                                 void *arg);

/* ---- IndexFile -------------------------------------------------------------------------- */

/*
 * Unlink the leading <root>/index files (17-digit names, oldest first,
 * never the last) whose header endPhyOffset (bytes 24..31, big-endian) is
 * below cl_min; the first file kept, or one whose header cannot be read,
 * stops.  Returns the number deleted or an error.
 */
int shmq_clean_index_files(const char *root, int64_t cl_min);

/* ---- processes holding mappings ----------------------------------------------------------- */

/*
 * Unmap the leading segments of q whose files are gone (never the last
 * one), so that their space returns.  Read-only queues are refreshed
 * (shmq_mfq_refresh, which may also map segments added at the end);
 * writable ones drop segments only.  Pointers to dropped segments become
 * invalid; the caller's other threads must not use q meanwhile.  Returns
 * the number dropped or an error.
 */
int shmq_clean_drop_removed(shmq_mfq_t *q);

/* shmq_clean_drop_removed for a ConsumeQueue; its minimum then starts in its first file. */
int shmq_clean_cq_drop_removed(shmq_cq_t *cq);

#endif
