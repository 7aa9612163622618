/*
 * The writer's journal: taking over after a writer killed in the middle of
 * a batch.
 *
 * Before each batch the writer stores writer_journal = wrote in the control
 * block.  Killed mid-batch, it leaves (a) records in [writer_journal, wrote)
 * whose queues' next_offset may not have been stored and whose ring entries
 * may not have been answered (their heads not advanced), and (b) bytes after
 * wrote from appends that were never published.  The next writer scans (a):
 * it raises each queue's next_offset past the records and remembers their
 * UNIQ_KEYs, to answer those ring entries from the records instead of
 * appending them again; and it zeroes (b), so that no stale record can look
 * valid after its next append.
 */
#ifndef SHMQ_JOURNAL_H
#define SHMQ_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "commitlog.h"
#include "ctl.h"

/* A record of the interrupted batch. */
typedef struct shmq_journal_rec {
    char key[SHMQ_UNIQ_KEY_MAX]; /* its UNIQ_KEY */
    bool used;                   /* already matched to a ring entry */
    int32_t queue_id;
    int32_t size;
    int64_t phys;
    int64_t queue_offset;
    int64_t store_ts;
} shmq_journal_rec_t;

typedef struct shmq_journal {
    shmq_journal_rec_t *recs;
    size_t count;
    size_t cap;
    int64_t last_store_ts; /* store time of the last record scanned */
    int stop_err;          /* decode error that ended the scan early, 0 if none */
    int64_t stop_at;       /* where it did */
} shmq_journal_t;

/*
 * Scan the records in [from, to) of cl (positions known: reads stop at
 * wrote_pos): raise next_offset in ctl's queue table past every record that
 * has a ConsumeQueue unit (inserting the queue if needed), and remember each
 * UNIQ_KEY.  A decode error ends the scan early (j->stop_err, j->stop_at).
 * Returns the number of records scanned, or a negative error (memory, queue
 * table).
 */
int64_t shmq_journal_scan(shmq_journal_t *j, const shmq_commitlog_t *cl, shmq_ctl_t *ctl,
                          int64_t from, int64_t to);

/* The unmatched record with this UNIQ_KEY in queue queue_id, or NULL. */
shmq_journal_rec_t *shmq_journal_find(shmq_journal_t *j, const char *key, size_t len,
                                      int32_t queue_id);

void shmq_journal_free(shmq_journal_t *j);

/*
 * Zero every non-zero page part in [from, from + len) of the segments cl
 * has mapped (nothing is written where the bytes are zero already).
 * Returns the number of bytes zeroed.
 */
int64_t shmq_journal_zero_stale(shmq_commitlog_t *cl, int64_t from, int64_t len);

#endif
