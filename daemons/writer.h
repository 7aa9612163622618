/*
 * Internal to shmq-writer (daemons/writer*.c): the writer's state and what
 * its files share.
 *
 *   writer.c         the batch (round robin over the rings, publishing,
 *                    answers), ring access, idle and done, init, main
 *   writer_unit.c    one ring unit: copy and validate, resolve topic, queue
 *                    and ACL, append, and the answers
 *   writer_repair.c  the restart repair: units appended before a kill are
 *                    answered from their records, never appended again
 */
#ifndef SHMQ_WRITER_H
#define SHMQ_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "format/acl.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shm/journal.h"
#include "shm/ring.h"
#include "shm/stats.h"
#include "worker.h"

#define WR_BATCH_ENTRIES   256       /* ring entries per batch (one journal cycle) */
#define WR_BATCH_BYTES     (1 << 20) /* ring bytes per batch */
#define WR_COMPLETIONS     (WR_BATCH_ENTRIES + 1)
#define WR_SPIN_NS         50000 /* the longest spin for new entries before sleeping */
#define WR_SPIN_FIRST      16    /* polls of a spin that starts again from none */
#define WR_SPIN_MAX        4096  /* polls of the longest spin */
#define WR_RESCAN_CALLS    1024  /* batches between two looks at the whole ring table */
#define WR_RESCAN_SLEPT_MS 50    /* a sleep this long (a timeout): look at the whole table */
#define WR_QUEUE_CACHE     64    /* queues remembered across batches */
#define WR_QUEUE_HINTS     64    /* queue hints by queue id (a power of two) */
#define WR_TOPIC_LOCK_MS   2000
#define WR_WARN_EVERY_MS   1000
#define WR_HOLD_MAX_MS     60000 /* crash tests: the longest hold at a step */

/* One request to complete at step (5). */
typedef struct wr_done {
    uint32_t ring;
    uint32_t slot;
    bool oneway;
    int64_t born_ts; /* stored, not a re-send: the producer's born time (send latency), else 0 */
    /* the answer as the slot takes it (shmq_ring_complete(); its state is not read): with
     * a negative status, res.detail holds that request's error */
    shmq_ring_slot_t res;
} wr_done_t;

/* A queue whose next_offset this batch advances (stored at step (4)). */
typedef struct wr_queue {
    shmq_ctl_queue_t *q;
    uint64_t topic_gen; /* its topic is the snapshot of this generation's (writer.topic_gen) */
    int64_t next;       /* the next queue offset (we are next_offset's only writer) */
    bool dirty;         /* advanced by this batch: stored at step (4) */
} wr_queue_t;

/* aclEnable: who owns a ring, and its account under the rules of generation gen. */
typedef struct wr_owner {
    uint64_t claims; /* the registration it was built for (0: none yet) */
    uint64_t gen;    /* the rules' generation */
    shmq_acl_ident_t id;
    const shmq_acl_account_t *acct;
} wr_owner_t;

/* A ring unit appended before a restart but not at its ring's head: skip it when reached. */
typedef struct wr_skip {
    uint32_t ring;
    uint64_t pos;
    uint64_t len;
} wr_skip_t;

typedef struct writer {
    shmq_worker_t *w;
    shmq_ctl_t *ctl;
    shmq_ctl_block_t *blk;
    const shmq_config_t *cfg;
    shmq_commitlog_t cl;
    bool cl_open;
    shmq_ring_limits_t lim;
    uint64_t ring_size;
    uint32_t ring_count;
    int64_t unit_max;     /* ring bytes of one unit */
    int64_t repair_bound; /* what one batch can leave after wrote */
    int64_t published;    /* wrote as last published */
    /* staging for one unit */
    uint8_t *buf;
    size_t buf_cap;
    shmq_ring_msg_t *msgs;
    shmq_msg_in_t *ins;
    int64_t *qoffs;
    shmq_append_result_t *res;
    shmq_record_plan_t *plans;
    shmq_journal_rec_t **matched; /* restart: the records a unit's messages matched */
    size_t unit_cap;
    /* the batch */
    wr_done_t done[WR_COMPLETIONS];
    size_t ndone;
    wr_queue_t *queues; /* a cache across batches (the entries never move) */
    size_t nqueues;
    size_t queues_cap;
    /* queue_id & (WR_QUEUE_HINTS - 1) -> index + 1 in queues of the last entry found for
     * that id; only a hint: checked as the scan checks an entry (writer_unit.c) */
    uint32_t queue_hint[WR_QUEUE_HINTS];
    size_t *dirty; /* indexes in queues of the entries this batch advanced */
    size_t ndirty;
    uint64_t heads[SHMQ_CTL_MAX_RINGS];
    bool moved[SHMQ_CTL_MAX_RINGS];
    bool discard[SHMQ_CTL_MAX_RINGS];
    uint32_t moved_list[SHMQ_CTL_MAX_RINGS]; /* the rings with moved set, in taking order */
    uint32_t nmoved;
    bool batch_open; /* this work() call found entries: the batch was set up (step (1)) */
    size_t entries;
    int64_t bytes;
    uint64_t msgs_in, bytes_in;
    /* this batch's stored messages and bytes of one topic (tc_entry, incarnation tc_inc)
     * not yet added to its counts: added when another topic comes, and at step (5) */
    const shmq_ctl_topic_t *tc_entry; /* NULL: nothing pending */
    uint32_t tc_inc;
    uint64_t tc_msgs, tc_bytes;
    uint64_t rejects, refused_disk_full, refused_fenced, append_errors; /* this batch's */
    bool fenced;
    /* controller mode: the lease as the set's master lapsed (or was never granted) when this
     * batch started, not_master_ms ago (-1: never granted); refused_not_master: this batch's */
    bool not_master;
    int64_t not_master_ms;
    uint64_t refused_not_master;
    int64_t store_ts; /* the batch's store time (batch_open) */
    /* the wall clock in ns that store_ts was last taken from (batch_open, take_ring): also the
     * batch's append stamp and the end of its send latencies (one clock read) */
    int64_t batch_ns;
    int64_t stamp_ns;    /* when the last append stamp was put (shmq_ctl_stamps_t) */
    uint32_t disk_full;  /* cleaner: disk above diskSpaceWarningLevelRatio (this batch) */
    uint64_t clean_seen; /* cleaner: its deleted_seq when we last dropped removed segments */
    /* topic cache: a snapshot, valid while its table entry's seq is unchanged */
    shmq_ctl_topic_t topic;
    const shmq_ctl_topic_t *topic_entry; /* NULL: none */
    uint64_t topic_gen;                  /* counts the snapshots taken */
    shmq_ring_topic_memo_t topic_memo;   /* decode: the last topic name found valid */
    uint64_t del_seen;       /* shmqctl topic delete: the last request taken (topic_del) */
    uint64_t topic_memo_gen; /* topic_memo.gen when the snapshot was taken for its name, or 0 */
    /* topic_memo.gen when its name was found not to be a system topic, or 0 */
    uint64_t not_system_gen;
    /* restart */
    shmq_journal_t journal;
    wr_skip_t *skips;
    size_t nskips;
    /* the rings: each producer's object, mapped while the table names it */
    shmq_ring_map_t maps[SHMQ_CTL_MAX_RINGS];
    uint64_t map_failed[SHMQ_CTL_MAX_RINGS]; /* claims + 1 of a ring that could not be mapped */
    int64_t map_retry_ms[SHMQ_CTL_MAX_RINGS];
    uint64_t tail_warned[SHMQ_CTL_MAX_RINGS]; /* a tail behind head, logged once per value */
    /* aclEnable: config/acl.json and each ring's owner under it */
    shmq_acl_watch_t acl;
    wr_owner_t owners[SHMQ_CTL_MAX_RINGS];
    /* The part of the ring table a batch looks at: [0, scan_end) holds every serviced
     * ring and the lowest FREE one (the master gives the lowest FREE ring to the next
     * producer, ring_ctl.c), so a new ring shows up there; then the whole table is
     * looked at again (rescan), and every WR_RESCAN_CALLS batches and after a long sleep. */
    uint64_t serviced; /* bit i: ring i was ACTIVE or ORPHANED at the last whole look */
    uint32_t scan_end;
    bool rescan;
    uint32_t since_scan;
    /* idle: polls of the next spin (adapts: doubled when a spin or a short sleep found
     * entries, halved after a long sleep), and empty batches in a row */
    uint32_t spin;
    uint32_t empty;
    /* housekeeping */
    uint32_t rr;
    int64_t warn_ms;
    uint64_t warn_suppressed;
    const char *crash_dir; /* SHMQ_TEST_CRASH_DIR, or NULL */
} writer_t;

enum { UNIT_OK = 0, UNIT_DISCARD = 1, UNIT_STOP = 2 };

/* Rate-limited log line (producers' bad input, repeated append errors). */
void wr_log(writer_t *wr, enum shmq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Room for units of n entries in the staging arrays (-ENOMEM). */
int wr_unit_room(writer_t *wr, size_t n);

/* Give the answer d to its ring slot (nothing for a one-way send). */
static inline void wr_complete_slot(writer_t *wr, const wr_done_t *d)
{
    if (d->oneway || d->ring >= wr->ring_count) {
        return;
    }
    /* The answer as queued (shmq_ring_complete(), inline): its text only with an error. */
    if (wr->maps[d->ring].r != NULL) {
        shmq_ring_complete_slot(wr->maps[d->ring].r, d->slot, &d->res, d->res.status < 0);
    }
}
/* Add the pending per-topic counts of this batch (tc_*, tc_entry set) to the control block. */
static inline void wr_topic_counts_flush(writer_t *wr)
{
    shmq_topic_count_add(wr->blk, wr->tc_entry, wr->tc_inc, wr->tc_msgs, wr->tc_bytes);
    wr->tc_entry = NULL;
    wr->tc_msgs = wr->tc_bytes = 0;
}

/*
 * Take the unit at pos (head or later) of ring i: copy and validate every
 * entry, then append it (repair = false) or, at restart, complete it if it
 * was appended before (repair = true: UNIT_STOP when it was not).  *adv
 * gets the bytes to skip.  UNIT_DISCARD: garbage hides the rest of the ring.
 */
int wr_take_unit(writer_t *wr, uint32_t i, uint64_t pos, uint64_t tail, bool repair, uint64_t *adv);

/* The plain units of ring i from pos, appended in one run (writer_unit.c); the ring bytes
 * taken (0: the entry at pos is for wr_take_unit()). */
uint64_t wr_take_plain(writer_t *wr, uint32_t i, uint64_t pos, uint64_t tail);

/*
 * Ring i's object, mapped (again) when the table names a new one; NULL when
 * the ring is not in use or cannot be mapped.
 */
shmq_ring_shm_t *wr_ring_at(writer_t *wr, uint32_t i);

/* Log (once per value) a tail of ring i behind our head. */
void wr_tail_behind(writer_t *wr, uint32_t i, uint64_t head, uint64_t tail);

/*
 * The producer's tail of ring i, judged against our head: 0 with *tail set
 * when it may be read up to; -1 when there is nothing to take (a tail
 * behind our head: logged once); 1 when it ran more than a ring ahead.
 */
static inline int wr_ring_tail(writer_t *wr, uint32_t i, uint64_t head, uint64_t *tail)
{
    int rc = shmq_ring_tail(&wr->maps[i], wr->ring_size, head, tail);
    if (rc < 0 && wr->tail_warned[i] != *tail + 1) {
        wr_tail_behind(wr, i, head, *tail);
    }
    return rc;
}

/*
 * shmqctl topic delete asked request req (between batches): the topic's
 * next offsets back to 0, the caches forgotten, the cut published.
 */
void wr_topic_deleted(writer_t *wr, uint64_t req);

/* Restart: scan the interrupted batch's records and answer the ring units they hold. */
int wr_repair(writer_t *wr);

#endif
