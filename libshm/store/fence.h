/*
 * Fences: what the store remembers of a failed flush, across restarts.
 *
 * After a failed fsync/msync Linux marks the pages clean: the page cache
 * still shows the bytes, the disk may not hold them, and a second flush
 * "succeeds" without writing (PITFALLS 1, 19).  So the first failed flush of
 * any store file fences the store: the worker that saw it records the last
 * point it knows durable in <root>/fence-<part> (written and synced before
 * anything else), publishes the error in the control block (the writer then
 * refuses entries, waiting producers get SHMQ_E_FENCED, the master stops the
 * store and `abort` stays), and nothing past that point is trusted again:
 * the next start's recovery cuts the CommitLog at the recorded point and
 * rebuilds the ConsumeQueues from theirs before anything reads them.  Only
 * a recovery that completed removes the fence files.
 *
 * The file is text, one "key value" per line (part, durable, error, errno,
 * time_ms, pid): an operator can read it, and recovery logs it.
 */
#ifndef SHMQ_FENCE_H
#define SHMQ_FENCE_H

#include <stdbool.h>
#include <stdint.h>

/* The part whose flush failed (also the control block's fenced_part). */
enum shmq_fence_part {
    SHMQ_FENCE_NONE = 0,
    SHMQ_FENCE_COMMITLOG = 1, /* durable: CommitLog offset (flushed) */
    SHMQ_FENCE_CONSUMEQUEUE =
        2,                /* durable: CommitLog offset whose units are flushed (cq_flushed) */
    SHMQ_FENCE_INDEX = 3, /* durable: checkpoint index time (index.flushed_ts) */
    SHMQ_FENCE_TIMER = 4, /* durable: timer log offset of the last good timer checkpoint */
    SHMQ_FENCE_PARTS = 5
};

/* "commitlog", "consumequeue", "index", "timer" ("none" otherwise). */
const char *shmq_fence_part_name(enum shmq_fence_part part);

/* The fences recorded in a store; present[p] says whether fence-<p> exists. */
typedef struct shmq_fences {
    bool present[SHMQ_FENCE_PARTS];
    int64_t durable[SHMQ_FENCE_PARTS];
    int32_t error[SHMQ_FENCE_PARTS]; /* negative errno of the failed flush */
    bool any;
} shmq_fences_t;

/*
 * Record a fence durably: <root>/fence-<part> (temp file, fsync, rename,
 * directory fsync).  An existing fence of that part is kept (the first
 * failure's point is the lower one).  0 or a negative error with detail.
 */
int shmq_fence_record(const char *root, enum shmq_fence_part part, int64_t durable, int err);

/* Read every fence file of the store.  A file that cannot be parsed is SHMQ_E_CORRUPT. */
int shmq_fence_read(const char *root, shmq_fences_t *out);

/* Remove the fence files (after a recovery that cut and rebuilt past them). */
int shmq_fence_clear(const char *root);

#endif
