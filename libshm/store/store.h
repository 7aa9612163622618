/*
 * A store opened by one process: the CommitLog, every ConsumeQueue, the
 * checkpoint and the topic table of one store root, with the lock held
 * (unless read-only).  This is the single-process engine that offline tools
 * use directly and that the broker's processes share through the control
 * block.
 *
 * Opening a store for writing takes the lock, loads the files and runs
 * recovery (normal, or abnormal when `abort` exists), then creates `abort`.
 * Closing it flushes everything, writes the checkpoint and removes `abort`.
 */
#ifndef SHMQ_STORE_H
#define SHMQ_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "format/commitlog.h"
#include "format/config.h"
#include "format/consume_queue.h"
#include "format/store_files.h"
#include "format/topic_deletes.h"

/* Open flags. */
#define SHMQ_STORE_READONLY   0x1 /* no lock, no recovery, PROT_READ mappings */
#define SHMQ_STORE_NO_RECOVER 0x2 /* writable, locked, but leave recovery to the caller */
#define SHMQ_STORE_REBUILD    0x4 /* recovery rebuilds every ConsumeQueue from the CommitLog */
#define SHMQ_STORE_FORCE      0x8 /* recovery cuts the log at a corrupt record below the checkpoint */
/*
 * Attach to a store another process holds (the broker's dispatcher): no
 * lock, no recovery, no `abort`; the CommitLog is mapped read-only and the
 * ConsumeQueues read-write.  A queue whose files cannot be loaded is an
 * error (never emptied: nobody would rebuild it).  Closing only unmaps.
 */
#define SHMQ_STORE_ATTACH 0x10

/* What recovery did. */
typedef struct shmq_recovery_report {
    bool abnormal;           /* abort file was present */
    int64_t scan_from;       /* CommitLog offset the scan started at */
    int64_t recovered_end;   /* end of the last valid record */
    int64_t old_end;         /* end of the data found before recovery (last non-zero byte bound) */
    int64_t truncated_bytes; /* bytes cut off at the tail (old_end - recovered_end) */
    int64_t records_checked;
    int64_t units_rebuilt;       /* ConsumeQueue units appended from the CommitLog */
    int64_t units_truncated;     /* ConsumeQueue units dropped (pointed past the end) */
    int32_t queues_touched;      /* queues whose units were truncated or rebuilt */
    int stop_error;              /* decode error that ended the scan (0 at a clean end) */
    bool below_checkpoint;       /* the cut was below the checkpoint (--force): flushed data lost */
    bool bad_checkpoint;         /* the checkpoint named bytes the log never held: not believed */
    int64_t bad_checkpoint_phys; /* its confirmPhyOffset */
    int64_t fence_commitlog; /* a fenced run's last durable CommitLog offset: cut there (-1 none) */
    int64_t fence_cq;      /* a fenced run's ConsumeQueue durable point: rebuilt from there (-1) */
    int64_t synced_from;   /* recovery made [synced_from, recovered_end) durable before use */
    int64_t crc_tail_from; /* records from here on must carry __CRC32# (checkpoint marker) */
    bool crc_tail_reset;   /* the checkpoint had no valid marker: it was set to the log's end */
    char stop_reason[256]; /* text for stop_error, naming file and offset */
} shmq_recovery_report_t;

/* Recovery phases, in order (shmq_recovery_progress_t). */
enum shmq_recovery_phase {
    SHMQ_RECOVERY_OPEN = 0,   /* the files and consume queues are open: nothing checked yet */
    SHMQ_RECOVERY_SCAN = 1,   /* checking CommitLog records from the scan start */
    SHMQ_RECOVERY_SYNC = 2,   /* making the checked CommitLog range durable */
    SHMQ_RECOVERY_QUEUES = 3, /* syncing every consume queue, writing the checkpoint */
    SHMQ_RECOVERY_INDEX = 4,  /* the caller's further steps (index files, control block) */
};
const char *shmq_recovery_phase_name(uint32_t phase);

/* How far past the end of the valid log an append torn by a crash can have written:
 * recovery clears the non-zero bytes up to there, and `shmqctl verify` of a store that
 * was not closed cleanly counts them as such a tail. */
int64_t shmq_store_torn_window(const shmq_config_t *cfg);

/*
 * How far a recovery is, for an observer in another process (the master's
 * progress object, shmqctl status).  Single writer: the recovering process
 * (relaxed stores: a report, nothing is read through it).  Offsets are
 * CommitLog offsets: the scan checked [scan_from, scan_pos) of
 * [scan_from, scan_to), the sync made [sync_from, sync_pos) of
 * [sync_from, sync_to) durable.
 */
typedef struct shmq_recovery_progress {
    _Atomic uint32_t phase; /* enum shmq_recovery_phase */
    _Atomic uint32_t abnormal;
    _Atomic int64_t scan_from, scan_to, scan_pos;
    _Atomic int64_t sync_from, sync_to, sync_pos;
} shmq_recovery_progress_t;

/* One (topic, queue id) known to the store. */
typedef struct shmq_queue {
    shmq_cq_t cq;
    size_t topic_len;    /* strlen(cq.topic) */
    int64_t next_offset; /* next queue offset to assign (writer) */
    bool used;
    bool rebuild;   /* files were damaged and removed: rebuild from the CommitLog */
    bool scheduler; /* SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer: the scheduler reads it */
    /* For the process driving the store (the dispatcher): the batch that last touched the
     * queue, and what it keeps about the queue (never owned nor freed by the store). */
    uint64_t batch;
    void *user;
} shmq_queue_t;

#define SHMQ_STORE_RECENT_QUEUES 16

typedef struct shmq_store {
    shmq_config_t cfg;
    char root[PATH_MAX];
    int lock_fd;
    unsigned flags;
    shmq_commitlog_t cl;
    shmq_checkpoint_t cp;
    shmq_topic_table_t topics;
    int64_t dispatched_pos; /* CommitLog offset up to which ConsumeQueues are built */
    int64_t last_store_ts;  /* store time of the last appended record */
    /* open-addressing table of queues, keyed by topic and queue id */
    shmq_queue_t **queues;
    size_t queue_count;
    size_t queue_cap;
    /* The queue each queue id's last dispatched record went to (by queue id modulo the
     * size): a record's queue found without hashing its topic when it is the same. */
    shmq_queue_t *recent_queues[SHMQ_STORE_RECENT_QUEUES];
    size_t cq_file_size;
    bool topics_dirty; /* topic table changed since topics.json was written */
    bool rebuild_all;  /* rebuild every ConsumeQueue from the CommitLog (operator request) */
    /* Writable opens: config/topicDeletes.json.  Recovery indexes no record a deletion cut
     * off (topic_deletes.h); the open finishes interrupted deletions first. */
    shmq_topic_cuts_t cuts;
    /* Where shmq_store_recover() reports how far it is; NULL: nowhere.  Set by the caller
     * between an open with SHMQ_STORE_NO_RECOVER and the recovery. */
    shmq_recovery_progress_t *progress;
} shmq_store_t;

/*
 * Open the store described by cfg.  Writable opens lock the store (a second
 * opener gets SHMQ_E_LOCKED naming the holder), recover (unless
 * SHMQ_STORE_NO_RECOVER; report may be NULL) and create `abort`.
 */
int shmq_store_open(shmq_store_t *st, const shmq_config_t *cfg, unsigned flags,
                    shmq_recovery_report_t *report);

/* Run recovery (normal or abnormal per the abort file). */
int shmq_store_recover(shmq_store_t *st, shmq_recovery_report_t *report);

/*
 * The end of every recovery (shmq_store_recover): a topic deletion made
 * while the store was stopped, or left unfinished, cuts at the recovered end
 * (every record of the topic in the log is older), before anything new is
 * written; config/topicDeletes.json is saved when a cut was set.
 */
int shmq_store_cuts_resolve(shmq_store_t *st);

/*
 * Clean close of a writable store: flush CommitLog and ConsumeQueues, write
 * the checkpoint, remove `abort`, unlock.  Read-only: just unmap.
 */
int shmq_store_close(shmq_store_t *st);

/* Close without any of the clean-shutdown steps (as if the process died). */
void shmq_store_abandon(shmq_store_t *st);

/*
 * Release every mapping and table of a writable store but keep it locked:
 * returns the lock fd, now the caller's (close it, or shmq_store_unlock(),
 * to release the lock), or -1 for a read-only store.  Nothing is flushed
 * and `abort` stays: the broker's master hands the store's data to its
 * workers this way after recovery.
 */
int shmq_store_detach(shmq_store_t *st);

/*
 * The queue of topic/queue_id; create = true opens or creates it (writable
 * stores only).  SHMQ_E_NOT_FOUND if absent and not created.
 */
int shmq_store_queue(shmq_store_t *st, const char *topic, size_t topic_len, int32_t queue_id,
                     bool create, shmq_queue_t **out);

/*
 * Append one message: validates it against the store's limits (topic rules,
 * body <= maxMessageSize, properties), assigns the next queue offset of its
 * queue (prepared and rolled-back transaction records get 0 and no unit),
 * appends it and dispatches it to its ConsumeQueue.
 */
int shmq_store_put(shmq_store_t *st, const shmq_msg_in_t *m, shmq_append_result_t *res);

/*
 * Build ConsumeQueue units for records from dispatched_pos up to upto
 * (usually wrote_pos).  Idempotent per unit.  Returns the number of units
 * appended or an error.
 */
int64_t shmq_store_dispatch(shmq_store_t *st, int64_t upto);

/*
 * Build the unit of one decoded record (idempotent).  Returns 1 if a unit
 * was appended, 0 if it was already there or the record has none.
 */
int shmq_store_dispatch_record(shmq_store_t *st, const shmq_record_t *r);

/*
 * shmq_store_dispatch_record() on a record read with the light decode
 * (record_scan.h), which is all dispatching needs.  *q (may be NULL)
 * receives the record's queue, NULL for a record without a unit.
 */
int shmq_store_dispatch_head(shmq_store_t *st, const shmq_record_head_t *r, shmq_queue_t **q);

/* The out-of-line steps of shmq_store_dispatch_head_inline(), for it only: the record's
 * queue found (or made) and remembered as the recent one; the tagsCode of a record of a
 * queue the scheduler reads; an append's error worded. */
int shmq_store_dispatch_queue(shmq_store_t *st, const shmq_record_head_t *r, shmq_queue_t **q);
int64_t shmq_store_dispatch_sched_tags(const shmq_store_t *st, const shmq_record_head_t *r);
int shmq_store_dispatch_failed(const shmq_queue_t *q, const shmq_record_head_t *r, int rc);

/*
 * shmq_store_dispatch_head(), inline, *q not NULL: the dispatcher's loop runs
 * it on every record, where a call's saving and restoring of registers and
 * the head's fields in memory cost as much as the usual record's own work
 * (its queue the recent one, no DELAY to look for).
 */
static inline __attribute__((always_inline)) int
shmq_store_dispatch_head_inline(shmq_store_t *st, const shmq_record_head_t *r, shmq_queue_t **qout)
{
    *qout = NULL;
    int32_t tx = r->sysflag & SHMQ_SYSFLAG_TX_MASK;
    if (tx != SHMQ_SYSFLAG_TX_NOT && tx != SHMQ_SYSFLAG_TX_COMMIT) {
        return 0; /* a prepared or rolled back transaction: no unit */
    }
    shmq_queue_t *q = st->recent_queues[(uint32_t)r->queue_id % SHMQ_STORE_RECENT_QUEUES];
    if (q == NULL || q->cq.queue_id != r->queue_id || q->topic_len != r->topic_len ||
        !shmq_bytes_equal(q->cq.topic, r->topic, r->topic_len)) {
        int rc = shmq_store_dispatch_queue(st, r, &q);
        if (rc < 0) {
            return rc;
        }
    }
    int64_t tags;
    if (q->scheduler) {
        tags = shmq_store_dispatch_sched_tags(st, r);
    } else {
        uint32_t tags_len;
        const char *t = shmq_record_props_find_tags_inline(r->props, r->props_len, &tags_len);
        tags = t ? shmq_tags_code(t, tags_len) : 0;
    }
    /* Our own write_pos (this process is the queue's only writer): no atomic load needed. */
    int64_t before = q->cq.write_pos;
    int rc = shmq_cq_append(&q->cq, r->queue_offset, r->phys_offset, r->total_size, tags);
    if (rc < 0) {
        return shmq_store_dispatch_failed(q, r, rc);
    }
    if (q->next_offset < r->queue_offset + 1) {
        q->next_offset = r->queue_offset + 1;
    }
    *qout = q;
    return q->cq.write_pos > before ? 1 : 0;
}

/* tagsCode of a record: TAGS hash, or delivery time for SCHEDULE_TOPIC_XXXX (§1.5). */
int64_t shmq_store_tags_code(const shmq_config_t *cfg, const char *topic, size_t topic_len,
                             const char *props, size_t props_len, int64_t store_ts);

/*
 * Flush CommitLog and ConsumeQueues (0 = everything) and write the
 * checkpoint.  No-op for read-only and attached stores.
 */
int shmq_store_flush(shmq_store_t *st);

/*
 * Cut the log at off (a record boundary between the log's first offset and
 * its end) and what is derived from it: ConsumeQueue units of the records
 * cut, the positions, the checkpoint; crash-safe in the order
 * store_truncate.c describes (a crash leaves a prefix at least off long).
 * Writable stores only.  0, or an error with a detail.
 */
int shmq_store_truncate(shmq_store_t *st, int64_t off);

/*
 * Close and forget every open queue of topic (its files were removed: the
 * dispatcher after `shmqctl topic delete`).  Queues of other topics stay.
 */
int shmq_store_drop_topic(shmq_store_t *st, const char *topic, size_t topic_len);

/* Iterate every open queue: call fn for each; stops early if fn returns non-zero. */
int shmq_store_foreach_queue(shmq_store_t *st, int (*fn)(shmq_queue_t *q, void *arg), void *arg);

#endif
