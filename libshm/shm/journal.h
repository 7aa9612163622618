/*
 * The writer's journal: taking over after a writer killed in the middle of
 * a batch.
 *
 * Before each batch the writer stores writer_journal = wrote in the control
 * block.  Killed mid-batch, it leaves (a) records in [writer_journal, wrote)
 * whose queues' next_offset may not have been stored and whose ring entries
 * may not have been answered (their heads not advanced), and (b) bytes after
 * wrote from appends that were never published.  The next writer scans (a):
 * it raises each queue's next_offset past the records and remembers what
 * each record is, to answer those ring entries from the records instead of
 * appending them again; and it zeroes (b), so that no stale record can look
 * valid after its next append.
 *
 * A ring entry is matched to a record by what was stored, never by its
 * UNIQ_KEY alone (PITFALLS 20, 21): a consumer's send-back and the
 * scheduler's re-deliveries keep the original's key, and the put hook's
 * decision for a timed message depends on the clock, so the repair must not
 * make it again.  Each record keeps its stored topic and queue, the hook's
 * decision as the record shows it (a SCHEDULE_TOPIC_XXXX or
 * rmq_sys_wheel_timer record naming REAL_TOPIC / REAL_QID is a rewrite) and
 * a hash of its properties; an entry matches a record it became: stored as
 * sent (same topic, queue and properties), or rewritten by the hook from the
 * entry's own topic, queue and properties.
 */
#ifndef SHMQ_JOURNAL_H
#define SHMQ_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shm/ring.h"

/* A record of the interrupted batch, as stored. */
typedef struct shmq_journal_rec {
    char key[SHMQ_UNIQ_KEY_MAX];        /* its UNIQ_KEY */
    char topic[SHMQ_TOPIC_MAX_ANY + 1]; /* the topic it is stored in */
    int32_t queue_id;                   /* the queue it is stored in */
    /* The put hook's decision as the record shows it (enum shmq_schedule_kind):
     * SHMQ_SCHEDULE_NONE: not rewritten (as far as the record shows); DELAY /
     * TIMER: rewritten from a message sent to sent_topic, queue sent_queue_id
     * (its REAL_TOPIC / REAL_QID). */
    int kind;
    char sent_topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t sent_queue_id;
    uint64_t props_hash; /* every property but the store's __CRC32# */
    uint64_t base_hash;  /* also without those the hook sets or drops */
    bool used;           /* already matched to a ring entry */
    int32_t size;
    int64_t phys;
    int64_t queue_offset;
    int64_t store_ts;
} shmq_journal_rec_t;

typedef struct shmq_journal {
    shmq_journal_rec_t *recs;
    size_t count;
    size_t cap;
    int32_t delay_level_count; /* the store's messageDelayLevel count (the hook's rule) */
    int64_t last_store_ts;     /* store time of the last record scanned */
    int stop_err;              /* decode error that ended the scan early, 0 if none */
    int64_t stop_at;           /* where it did */
} shmq_journal_t;

/*
 * Scan the records in [from, to) of cl (positions known: reads stop at
 * wrote_pos): raise next_offset in ctl's queue table past every record that
 * has a ConsumeQueue unit (inserting the queue if needed), and remember each
 * record with a UNIQ_KEY as stored (see shmq_journal_rec_t).  A decode error
 * ends the scan early (j->stop_err, j->stop_at).  Returns the number of
 * records scanned, or a negative error (memory, queue table).
 */
int64_t shmq_journal_scan(shmq_journal_t *j, const shmq_commitlog_t *cl, shmq_ctl_t *ctl,
                          int64_t from, int64_t to);

/*
 * The first unmatched record the validated ring entry m (as the producer
 * wrote it: before the put hook) was stored as, or NULL.  Same UNIQ_KEY, and
 *   - stored as sent: the record's topic, queue and properties are the
 *     entry's, and the hook could leave the entry as it is; or
 *   - rewritten: the record is of the kind the hook makes of the entry
 *     (DELAY for a delay level; TIMER for a delivery time, when it was still
 *     ahead), names the entry's topic and queue as REAL_TOPIC / REAL_QID, and
 *     holds the entry's properties apart from those the hook sets or drops.
 * The clock plays no part: what the hook decided is read from the record.
 */
shmq_journal_rec_t *shmq_journal_find(shmq_journal_t *j, const shmq_ring_msg_t *m);

void shmq_journal_free(shmq_journal_t *j);

/*
 * Zero every non-zero page part in [from, from + len) of the segments cl
 * has mapped (nothing is written where the bytes are zero already).
 * Returns the number of bytes zeroed.
 */
int64_t shmq_journal_zero_stale(shmq_commitlog_t *cl, int64_t from, int64_t len);

#endif
