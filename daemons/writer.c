/*
 * shmq-writer: takes producers' ring entries and appends them to the
 * CommitLog, exactly once, even if killed at any instruction.
 *
 * Started by shmqd as `shmq-writer --store DIR` (worker skeleton, worker.h).
 * SIGTERM/SIGINT: finish the current batch and exit 0; the master's death
 * delivers SIGTERM (PDEATHSIG).  Orderly stop: in state DRAINING it appends
 * every entry already published in any ring, then exits 0 (done()).
 *
 * Owns: `wrote` and `writer_journal` in the control block, every queue's
 * next_offset, every ring's head (the ring table's, which it trusts, and
 * the copy in the ring for its producer), ORPHANED -> DRAINED of a ring it
 * emptied, the completion of ring slots, the
 * messages_in / bytes_in counters and the refusal counters (rejects: bad
 * input; refused_disk_full, refused_fenced, append_errors: entries the
 * store could not take); it creates topics when autoCreateTopicEnable
 * allows (under the topic lock, saving topics.json).
 *
 * A refused entry is answered with its status and the text of its own
 * error (the error detail is cleared before each entry, so no text of an
 * earlier one can come along).
 *
 * One batch (work()):
 *   (1) writer_journal = wrote (release);
 *   (2) round robin over ACTIVE and ORPHANED rings (each its own object,
 *       mapped through the master's descriptor, ring.h): judge the
 *       producer's tail against our head (a tail behind it is ignored, one
 *       more than a ring ahead discards the region), copy each entry out of
 *       the ring, validate the copy (ring.h), resolve topic and queue, append
 *       (a producer batch as one unit), assigning queue offsets from local
 *       copies; a bad entry is answered with its error and nothing appended;
 *   (3) publish wrote; (4) store the queues' next_offsets; (5) complete the
 *       slots and advance the heads, waking producers that sleep; (6) wake
 *       the flusher (SYNC_FLUSH) or the dispatcher (ASYNC_FLUSH) if asleep.
 *
 * Killed mid-batch: on restart the records in [writer_journal, wrote) are
 * scanned: next_offsets are raised past them and the entries still in the
 * rings are matched with them by what was stored (UNIQ_KEY, topic, queue and
 * properties, and the put hook's decision as the record shows it; the hook
 * is not run again: journal.h).  Entries appended before the kill are completed from
 * their records, never appended again.  Then the bytes a killed append left
 * after wrote are zeroed so that no stale record can look valid after the
 * next append.
 *
 * Crash tests: with SHMQ_TEST_CRASH_DIR set, the writer kills itself
 * (SIGKILL) at a step of a batch when the file <dir>/writer-<step> exists
 * (removing it first): appended (records written, wrote not published),
 * published (before the next_offsets), offsets (before any answer), answered
 * (answers given, heads not advanced), and repair (at start, before the
 * restart repair).  While <dir>/writer-hold-<step> exists it stops at that
 * step instead (signals still set their flags), with <dir>/writer-held-<step>
 * present meanwhile, so that a test can act at a known point; a hold ends
 * after WR_HOLD_MAX_MS at the latest.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "store/fence.h"
#include "shm/journal.h"
#include "shm/ring.h"
#include "shm/schedule.h"
#include "shmq/errors.h"
#include "store/store.h"
#include "format/store_files.h"
#include "worker.h"

#define WR_BATCH_ENTRIES 256       /* ring entries per batch (one journal cycle) */
#define WR_BATCH_BYTES   (1 << 20) /* ring bytes per batch */
#define WR_COMPLETIONS   (WR_BATCH_ENTRIES + 1)
#define WR_SPIN_NS       50000 /* spin for new entries before sleeping */
#define WR_TOPIC_LOCK_MS 2000
#define WR_WARN_EVERY_MS 1000
#define WR_HOLD_MAX_MS   60000 /* crash tests: the longest hold at a step */

/* One request to complete at step (5). */
typedef struct wr_done {
    uint32_t ring;
    uint32_t slot;
    uint64_t req_id;
    bool oneway;
    int32_t status;
    int32_t queue_id;
    int32_t size;
    int32_t count;
    int64_t phys;
    int64_t end;
    int64_t queue_offset;
    int64_t store_ts;
    char detail[SHMQ_RING_DETAIL_MAX]; /* with a negative status: that request's error */
} wr_done_t;

/* A queue whose next_offset this batch advances (stored at step (4)). */
typedef struct wr_queue {
    shmq_ctl_queue_t *q;
    int64_t next;
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
    shmq_journal_rec_t **matched; /* restart: the records a unit's messages matched */
    size_t unit_cap;
    /* the batch */
    wr_done_t done[WR_COMPLETIONS];
    size_t ndone;
    wr_queue_t *queues;
    size_t nqueues;
    size_t queues_cap;
    uint64_t heads[SHMQ_CTL_MAX_RINGS];
    bool moved[SHMQ_CTL_MAX_RINGS];
    bool discard[SHMQ_CTL_MAX_RINGS];
    size_t entries;
    int64_t bytes;
    uint64_t msgs_in, bytes_in;
    uint64_t rejects, refused_disk_full, refused_fenced, append_errors; /* this batch's */
    bool fenced;
    uint32_t disk_full;  /* cleaner: disk above diskSpaceWarningLevelRatio (this batch) */
    uint64_t clean_seen; /* cleaner: its deleted_seq when we last dropped removed segments */
    /* one-entry topic cache, valid for one batch */
    shmq_ctl_topic_t topic;
    bool topic_valid;
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
    /* housekeeping */
    uint32_t rr;
    int64_t warn_ms;
    uint64_t warn_suppressed;
    const char *crash_dir; /* SHMQ_TEST_CRASH_DIR, or NULL */
} writer_t;

enum { UNIT_OK = 0, UNIT_DISCARD = 1, UNIT_STOP = 2 };

/* ---- helpers ------------------------------------------------------------------------ */

/* Rate-limited log line (producers' bad input, repeated append errors). */
static void log_limited(writer_t *wr, enum shmq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_limited(writer_t *wr, enum shmq_log_level level, const char *fmt, ...)
{
    int64_t now = shmq_mono_ms();
    if (now - wr->warn_ms < WR_WARN_EVERY_MS) {
        wr->warn_suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (wr->warn_suppressed) {
        shmq_log(level, "%s (and %llu more since the last such line)", msg,
                 (unsigned long long)wr->warn_suppressed);
    } else {
        shmq_log(level, "%s", msg);
    }
    wr->warn_ms = now;
    wr->warn_suppressed = 0;
}

/* Crash tests: stay here while <crash_dir>/writer-hold-<step> exists (see the top of the file). */
static void hold_point(const writer_t *wr, const char *step)
{
    char hold[PATH_MAX], held[PATH_MAX];
    snprintf(hold, sizeof(hold), "%s/writer-hold-%s", wr->crash_dir, step);
    if (access(hold, F_OK) != 0) {
        return;
    }
    snprintf(held, sizeof(held), "%s/writer-held-%s", wr->crash_dir, step);
    int fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
    }
    shmq_log(SHMQ_LOG_WARN, "crash test: held at step %s", step);
    for (int64_t t0 = shmq_mono_ms();
         access(hold, F_OK) == 0 && shmq_mono_ms() - t0 < WR_HOLD_MAX_MS;) {
        usleep(10000);
    }
    unlink(held);
    shmq_log(SHMQ_LOG_WARN, "crash test: released at step %s", step);
}

/* Crash tests: hold, then die here if <crash_dir>/writer-<step> exists (see the top of the
 * file). */
static void crash_point(const writer_t *wr, const char *step)
{
    if (wr->crash_dir == NULL) {
        return;
    }
    hold_point(wr, step);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/writer-%s", wr->crash_dir, step);
    if (unlink(path) == 0) {
        shmq_log(SHMQ_LOG_WARN, "crash test: killed at step %s", step);
        raise(SIGKILL);
    }
}

static bool tx_gets_unit(int32_t sysflag)
{
    int32_t tx = sysflag & SHMQ_SYSFLAG_TX_MASK;
    return tx == SHMQ_SYSFLAG_TX_NOT || tx == SHMQ_SYSFLAG_TX_COMMIT;
}

static int unit_room(writer_t *wr, size_t n)
{
    if (n <= wr->unit_cap) {
        return 0;
    }
    size_t cap = wr->unit_cap ? wr->unit_cap : 16;
    while (cap < n) {
        cap *= 2;
    }
    shmq_ring_msg_t *m = realloc(wr->msgs, cap * sizeof(*m));
    if (m) {
        wr->msgs = m;
    }
    shmq_msg_in_t *in = realloc(wr->ins, cap * sizeof(*in));
    if (in) {
        wr->ins = in;
    }
    int64_t *q = realloc(wr->qoffs, cap * sizeof(*q));
    if (q) {
        wr->qoffs = q;
    }
    shmq_append_result_t *r = realloc(wr->res, cap * sizeof(*r));
    if (r) {
        wr->res = r;
    }
    shmq_journal_rec_t **jr = realloc(wr->matched, cap * sizeof(*jr));
    if (jr) {
        wr->matched = jr;
    }
    if (!m || !in || !q || !r || !jr) {
        return -ENOMEM;
    }
    wr->unit_cap = cap;
    return 0;
}

/* ---- completions -------------------------------------------------------------------- */

static void add_done(writer_t *wr, uint32_t ring, const shmq_ring_msg_t *m, int status)
{
    wr_done_t *d = &wr->done[wr->ndone++];
    memset(d, 0, sizeof(*d));
    d->ring = ring;
    d->slot = m->slot;
    d->req_id = m->req_id;
    d->oneway = (m->flags & SHMQ_RING_F_ONEWAY) != 0;
    d->status = status;
    d->queue_id = m->queue_id;
    d->count = m->batch_count;
}

/* The counter a refusal counts in: bad input, or an entry the store could not take. */
static void count_refusal(writer_t *wr, int err)
{
    if (err == SHMQ_E_DISK_FULL || err == -ENOSPC || err == -EDQUOT) {
        wr->refused_disk_full++;
    } else if (err == SHMQ_E_FENCED) {
        wr->refused_fenced++;
    } else if ((err < SHMQ_RING_E_BASE && err > SHMQ_RING_E_LAST) || err == SHMQ_E_TOPIC ||
               err == SHMQ_E_PROPS || err == SHMQ_E_TOO_BIG || err == SHMQ_E_RANGE ||
               err == SHMQ_E_NOT_FOUND || err == SHMQ_E_ARG || err == -EACCES) {
        wr->rejects++; /* what the producer sent is wrong */
    } else {
        wr->append_errors++;
    }
}

/* Refuse the entry at pos with err: log, count, answer with the entry's own error text. */
static void reject(writer_t *wr, uint32_t ring, uint64_t pos, const shmq_ring_msg_t *m, int err)
{
    /* Cleared before the entry was taken: any text now is this entry's. */
    const char *why = shmq_error_detail()[0] ? shmq_error_detail() : shmq_ring_strerror(err);
    log_limited(wr, SHMQ_LOG_WARN, "ring %u (pid %d) entry at %llu refused: %s", ring,
                (int)atomic_load_explicit(&wr->blk->rings[ring].owner_pid, memory_order_relaxed),
                (unsigned long long)pos, why);
    count_refusal(wr, err);
    if (m->hdr_ok) {
        add_done(wr, ring, m, shmq_ring_error_status(err));
        snprintf(wr->done[wr->ndone - 1].detail, SHMQ_RING_DETAIL_MAX, "%s", why);
    }
}

static void complete_slot(writer_t *wr, const wr_done_t *d)
{
    if (d->oneway || d->ring >= wr->ring_count) {
        return;
    }
    shmq_ring_slot_t res = {.status = d->status,
                            .req_id = d->req_id,
                            .phys_offset = d->phys,
                            .end_pos = d->end,
                            .queue_offset = d->queue_offset,
                            .store_ts = d->store_ts,
                            .queue_id = d->queue_id,
                            .size = d->size,
                            .count = d->count};
    memcpy(res.detail, d->detail, sizeof(res.detail));
    if (wr->maps[d->ring].r != NULL) {
        shmq_ring_complete(wr->maps[d->ring].r, d->slot, &res);
    }
}

/* ---- topics and queues ----------------------------------------------------------------- */

static int create_topic(writer_t *wr, const char *topic, size_t len, shmq_ctl_topic_t *out)
{
    if (!wr->cfg->auto_create_topic_enable) {
        return shmq_error_set(SHMQ_E_NOT_FOUND,
                              "topic %.*s does not exist and autoCreateTopicEnable is false",
                              (int)len, topic);
    }
    char name[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(name, topic, len);
    name[len] = '\0';
    int rc = shmq_ctl_topic_lock(wr->ctl, WR_TOPIC_LOCK_MS);
    if (rc < 0) {
        return rc;
    }
    if (shmq_ctl_topic_get(wr->ctl, topic, len, out) == 0) {
        shmq_ctl_topic_unlock(wr->ctl);
        return 0; /* created meanwhile */
    }
    int32_t nq = wr->cfg->default_topic_queue_nums > 0 ? wr->cfg->default_topic_queue_nums : 1;
    rc = shmq_ctl_topic_put(wr->ctl, name, nq, nq, SHMQ_PERM_READ | SHMQ_PERM_WRITE, false);
    if (rc == 0) {
        int src = shmq_ctl_topics_save(wr->ctl);
        if (src < 0) {
            shmq_log(SHMQ_LOG_WARN, "topic %s created, but topics.json not saved: %s", name,
                     shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(src));
        }
    }
    shmq_ctl_topic_unlock(wr->ctl);
    if (rc < 0) {
        return rc;
    }
    shmq_log(SHMQ_LOG_INFO, "created topic %s with %d queues", name, nq);
    return shmq_ctl_topic_get(wr->ctl, topic, len, out);
}

/* The topic admits a message to queue_id (creating the topic if allowed). */
static int resolve_topic(writer_t *wr, const char *topic, size_t len, int32_t queue_id)
{
    shmq_ctl_topic_t *t = &wr->topic;
    if (!(wr->topic_valid && strlen(t->name) == len && memcmp(t->name, topic, len) == 0)) {
        wr->topic_valid = false;
        int rc = shmq_ctl_topic_get(wr->ctl, topic, len, t);
        if (rc == SHMQ_E_NOT_FOUND) {
            rc = create_topic(wr, topic, len, t);
        }
        if (rc < 0) {
            return rc;
        }
        t->name[sizeof(t->name) - 1] = '\0';
        wr->topic_valid = true;
    }
    if (!(t->perm & SHMQ_PERM_WRITE)) {
        return shmq_error_set(-EACCES, "topic %.*s is not writable (perm %d)", (int)len, topic,
                              t->perm);
    }
    if (queue_id >= t->write_queue_nums) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "topic %.*s has %d write queues; queue id %d is "
                              "outside",
                              (int)len, topic, t->write_queue_nums, queue_id);
    }
    return 0;
}

/*
 * aclEnable: may the producer of ring i publish to topic?  Its identity is
 * the master's record (uid and groups from SO_PEERCRED and /proc at
 * registration), never anything the producer wrote.
 */
static int acl_publish(writer_t *wr, uint32_t i, const char *topic, size_t len)
{
    if (!wr->cfg->acl_enable) {
        return 0;
    }
    wr_owner_t *o = &wr->owners[i];
    uint64_t claims = wr->maps[i].claims;
    if (o->claims != claims || o->gen != wr->acl.gen) {
        const shmq_ctl_ring_t *t = &wr->blk->rings[i];
        /* Relaxed: written before the ACTIVE release that ring_at() acquired. */
        uid_t uid = (uid_t)atomic_load_explicit(&t->owner_uid, memory_order_relaxed);
        int32_t ng = atomic_load_explicit(&t->owner_ngroups, memory_order_relaxed);
        memset(&o->id, 0, sizeof(o->id));
        o->id.uid = uid;
        o->id.owner = uid == geteuid();
        o->id.ngroups = ng < 0 ? 0 : ng > SHMQ_ACL_GROUPS_MAX ? SHMQ_ACL_GROUPS_MAX : ng;
        for (int g = 0; g < o->id.ngroups; g++) {
            o->id.groups[g] = (gid_t)t->owner_groups[g];
        }
        int rc = shmq_acl_watch_account(&wr->acl, &o->id, &o->acct);
        if (rc < 0) {
            o->claims = 0; /* no rules loaded: looked at again next time */
            return rc;
        }
        o->claims = claims;
        o->gen = wr->acl.gen;
    }
    return shmq_acl_may_publish(o->acct, &o->id, topic, len);
}

/* The batch's entry for a queue (found or inserted in the control block). */
static int batch_queue(writer_t *wr, const char *topic, size_t len, int32_t queue_id,
                       wr_queue_t **out)
{
    for (size_t i = 0; i < wr->nqueues; i++) {
        shmq_ctl_queue_t *q = wr->queues[i].q;
        if (q->queue_id == queue_id && q->topic_len == len && memcmp(q->topic, topic, len) == 0) {
            *out = &wr->queues[i];
            return 0;
        }
    }
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(wr->ctl, topic, len, queue_id);
    if (q == NULL) {
        int rc = shmq_ctl_queue_insert(wr->ctl, topic, len, queue_id, &q);
        if (rc < 0) {
            return rc;
        }
    }
    if (wr->nqueues == wr->queues_cap) {
        size_t cap = wr->queues_cap ? wr->queues_cap * 2 : 64;
        wr_queue_t *n = realloc(wr->queues, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        wr->queues = n;
        wr->queues_cap = cap;
    }
    wr_queue_t *e = &wr->queues[wr->nqueues++];
    e->q = q;
    /* Relaxed: we are next_offset's only writer. */
    e->next = atomic_load_explicit(&q->next_offset, memory_order_relaxed);
    *out = e;
    return 0;
}

/* ---- one unit ------------------------------------------------------------------------------ */

/* Append the unit held in wr->msgs[0..n) (validated); queue the completion. */
static void append_unit(writer_t *wr, uint32_t ring, uint64_t pos, size_t n)
{
    const shmq_ring_msg_t *m0 = &wr->msgs[0];
    if (wr->fenced) {
        const shmq_ctl_block_t *b = wr->blk;
        /* Relaxed: status words, set before fenced_error (read with acquire this batch). */
        int32_t ferr = atomic_load_explicit(&b->fenced_error, memory_order_relaxed);
        int32_t part = atomic_load_explicit(&b->fenced_part, memory_order_relaxed);
        shmq_error_set(SHMQ_E_FENCED,
                       "the store is fenced: a %s flush failed (%s); it stores nothing until it "
                       "is restarted",
                       shmq_fence_part_name((enum shmq_fence_part)part), shmq_strerror(ferr));
        reject(wr, ring, pos, m0, SHMQ_E_FENCED);
        return;
    }
    /* cleaner: no new message while the disk is above the warning level. */
    if (wr->disk_full) {
        bool cl = (wr->disk_full & 1) != 0;
        /* Relaxed: statistics the cleaner set before disk_full. */
        int32_t pct = atomic_load_explicit(
            cl ? &wr->blk->cleaner.used_pct : &wr->blk->cleaner.cq_used_pct, memory_order_relaxed);
        shmq_error_set(SHMQ_E_DISK_FULL,
                       "disk full: the %s filesystem is %d%% used, above "
                       "diskSpaceWarningLevelRatio %d%%: nothing is stored until the cleaner "
                       "frees space",
                       cl ? "CommitLog's" : "consume queues'", (int)pct,
                       (int)wr->cfg->disk_space_warning_level_ratio);
        reject(wr, ring, pos, m0, SHMQ_E_DISK_FULL);
        return;
    }
    /* The ACL before the topic: a producer may not create a topic it may not publish to. */
    int rc = acl_publish(wr, ring, m0->topic, m0->topic_len);
    if (rc == 0) {
        rc = resolve_topic(wr, m0->topic, m0->topic_len, m0->queue_id);
    }
    if (rc < 0) {
        reject(wr, ring, pos, m0, rc);
        return;
    }
    bool unit = tx_gets_unit(m0->sysflag);
    wr_queue_t *q = NULL;
    if (unit && (rc = batch_queue(wr, m0->topic, m0->topic_len, m0->queue_id, &q)) < 0) {
        reject(wr, ring, pos, m0, rc);
        return;
    }
    int64_t qoff = unit ? q->next : 0;
    for (size_t k = 0; k < n; k++) {
        shmq_ring_msg_to_in(&wr->msgs[k], &wr->cl.store_host, &wr->ins[k]);
        wr->qoffs[k] = unit ? qoff + (int64_t)k : 0;
    }
    shmq_error_clear();
    rc = shmq_commitlog_append_batch(&wr->cl, wr->ins, n, wr->qoffs, 0, wr->res);
    if (rc < 0) {
        char why[SHMQ_RING_DETAIL_MAX];
        snprintf(why, sizeof(why), "append at %lld failed: %s", (long long)wr->cl.wrote_pos,
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        log_limited(wr, SHMQ_LOG_ERROR, "%s", why);
        count_refusal(wr, rc);
        add_done(wr, ring, m0, rc);
        memcpy(wr->done[wr->ndone - 1].detail, why, sizeof(why));
        return;
    }
    if (unit) {
        q->next = qoff + (int64_t)n;
    }
    const shmq_append_result_t *first = &wr->res[0], *last = &wr->res[n - 1];
    add_done(wr, ring, m0, 0);
    wr_done_t *d = &wr->done[wr->ndone - 1];
    d->phys = first->phys_offset;
    d->size = first->size;
    d->end = last->phys_offset + last->size;
    d->queue_offset = wr->qoffs[0];
    d->store_ts = first->store_ts;
    d->count = (int32_t)n;
    wr->msgs_in += n;
    wr->bytes_in += (uint64_t)(d->end - d->phys);
}

/*
 * Restart: answer a unit appended before the kill from the records it was
 * stored as (every message of the unit matched, journal.h); false if it was
 * not appended.
 */
static bool complete_recorded(writer_t *wr, uint32_t ring, size_t n)
{
    shmq_journal_rec_t *first = NULL, *last = NULL;
    size_t k = 0;
    for (; k < n; k++) {
        last = shmq_journal_find(&wr->journal, &wr->msgs[k]);
        if (last == NULL) {
            break;
        }
        last->used = true; /* two messages of a unit never match one record */
        wr->matched[k] = last;
        first = k == 0 ? last : first;
    }
    if (k < n) {
        while (k-- > 0) {
            wr->matched[k]->used = false; /* not this unit's records after all */
        }
        return false;
    }
    const shmq_ring_msg_t *m0 = &wr->msgs[0];
    wr_done_t d = {.ring = ring,
                   .slot = m0->slot,
                   .req_id = m0->req_id,
                   .oneway = (m0->flags & SHMQ_RING_F_ONEWAY) != 0,
                   .queue_id = first->queue_id,
                   .size = first->size,
                   .count = (int32_t)n,
                   .phys = first->phys,
                   .end = last->phys + last->size,
                   .queue_offset = first->queue_offset,
                   .store_ts = first->store_ts};
    complete_slot(wr, &d);
    return true;
}

/*
 * Take the unit at pos (head or later) of ring i: copy and validate every
 * entry, then append it (repair = false) or, at restart, complete it if it
 * was appended before (repair = true: UNIT_STOP when it was not).  *adv
 * gets the bytes to skip.  UNIT_DISCARD: garbage hides the rest of the ring.
 */
static int take_unit(writer_t *wr, uint32_t i, uint64_t pos, uint64_t tail, bool repair,
                     uint64_t *adv)
{
    const uint8_t *data = wr->maps[i].data;
    size_t n = 0;
    int rc;
    shmq_error_clear(); /* every error text from here on is this unit's */
    for (;;) {
        rc = shmq_ring_take_unit(data, wr->ring_size, pos, tail, &wr->lim, wr->buf, wr->buf_cap,
                                 wr->msgs, wr->unit_cap, &n, adv);
        if (rc != -ENOBUFS) {
            break;
        }
        if (unit_room(wr, n) < 0) {
            return -ENOMEM;
        }
    }
    if (rc == 0) {
        return UNIT_STOP;
    }
    if (rc == SHMQ_RING_KIND_PAD) {
        return UNIT_OK;
    }
    if (rc < 0 && shmq_ring_error_fatal(rc)) {
        log_limited(wr, SHMQ_LOG_WARN,
                    "ring %u: entry at %llu unreadable (%s): discarding %llu published bytes", i,
                    (unsigned long long)pos, shmq_error_detail(), (unsigned long long)(tail - pos));
        return UNIT_DISCARD;
    }
    if (rc < 0) {
        reject(wr, i, pos, &wr->msgs[0], rc);
        return UNIT_OK;
    }
    /* A restart matches the entry as the producer wrote it with what was stored (the
     * journal reads the hook's decision from the record): the hook is not run again,
     * its decision for a timed message depends on the clock (PITFALLS 20). */
    if (repair) {
        return complete_recorded(wr, i, n) ? UNIT_OK : UNIT_STOP;
    }
    /* ---- scheduler: delay levels and timed messages go to their system topics
     * (RocketMQ's put hook, libshm/shm/schedule.c). ---- */
    if ((rc = shmq_schedule_writer_hook(wr->ctl, wr->cfg, wr->msgs, n)) < 0) {
        reject(wr, i, pos, &wr->msgs[0], rc);
        return UNIT_OK;
    }
    /* ---- end scheduler ---- */
    const shmq_ring_msg_t *m0 = &wr->msgs[0];
    if ((int64_t)*adv > wr->unit_max) {
        shmq_error_set(SHMQ_E_TOO_BIG, "unit of %llu ring bytes exceeds %lld",
                       (unsigned long long)*adv, (long long)wr->unit_max);
        reject(wr, i, pos, m0, SHMQ_E_TOO_BIG);
        return UNIT_OK;
    }
    if (n > 1 && (m0->sysflag & SHMQ_SYSFLAG_TX_MASK) != SHMQ_SYSFLAG_TX_NOT) {
        shmq_error_set(SHMQ_RING_E_SYSFLAG, "transactional messages cannot be batched");
        reject(wr, i, pos, m0, SHMQ_RING_E_SYSFLAG);
        return UNIT_OK;
    }
    append_unit(wr, i, pos, n);
    wr->entries += n;
    return UNIT_OK;
}

/* A unit the restart found appended out of order: skip it (already answered). */
static bool take_skip(writer_t *wr, uint32_t i, uint64_t pos, uint64_t *adv)
{
    for (size_t k = 0; k < wr->nskips; k++) {
        wr_skip_t *s = &wr->skips[k];
        if (s->ring == i && s->pos == pos) {
            *adv = s->len;
            wr->skips[k] = wr->skips[--wr->nskips];
            return true;
        }
    }
    return false;
}

/* ---- the batch --------------------------------------------------------------------------------
 */

static bool ring_serviced(uint32_t state)
{
    return state == SHMQ_RING_ACTIVE || state == SHMQ_RING_ORPHANED;
}

/*
 * Ring i's object, mapped (again) when the table names a new one; NULL when
 * the ring is not in use or cannot be mapped (retried after a second; a
 * header its producer scribbled is never served: that producer's sends
 * time out, nobody else's).
 */
static shmq_ring_shm_t *ring_at(writer_t *wr, uint32_t i)
{
    shmq_ctl_ring_t *t = &wr->blk->rings[i];
    shmq_ring_map_t *m = &wr->maps[i];
    /* Acquire: pairs with the master's release of ACTIVE (claims, master_fd). */
    uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!ring_serviced(st)) {
        if (m->r != NULL) {
            shmq_ring_unmap(m);
        }
        return NULL;
    }
    uint64_t claims = atomic_load_explicit(&t->claims, memory_order_relaxed);
    if (m->r != NULL && m->claims == claims) {
        return m->r;
    }
    if (m->r != NULL) {
        shmq_ring_unmap(m);
    }
    int64_t now = shmq_mono_ms();
    if (wr->map_failed[i] == claims + 1 && now < wr->map_retry_ms[i]) {
        return NULL;
    }
    shmq_error_clear();
    int rc = shmq_ring_map(wr->ctl, i, m);
    if (rc < 0) {
        if (rc != -ENOENT) {
            log_limited(wr, SHMQ_LOG_WARN, "ring %u (pid %d): not served: %s", i,
                        (int)atomic_load_explicit(&t->owner_pid, memory_order_relaxed),
                        shmq_error_detail());
        }
        wr->map_failed[i] = claims + 1;
        wr->map_retry_ms[i] = now + 1000;
        return NULL;
    }
    wr->map_failed[i] = 0;
    /* The producer's copy of our head: ours (a writer killed between the two stores, or a
     * producer that wrote it, left another value there). */
    atomic_store_explicit(&m->r->head, atomic_load_explicit(&t->head, memory_order_relaxed),
                          memory_order_release);
    return m->r;
}

/*
 * The producer's tail of ring i, judged against our head: 0 with *tail set
 * when it may be read up to; -1 when there is nothing to take (a tail
 * behind our head: logged once); 1 when it ran more than a ring ahead.
 */
static int ring_tail(writer_t *wr, uint32_t i, uint64_t head, uint64_t *tail)
{
    int rc = shmq_ring_tail(&wr->maps[i], wr->ring_size, head, tail);
    if (rc < 0 && wr->tail_warned[i] != *tail + 1) {
        wr->tail_warned[i] = *tail + 1;
        log_limited(wr, SHMQ_LOG_WARN,
                    "ring %u (pid %d): tail %llu behind the writer's head %llu: ignored", i,
                    (int)atomic_load_explicit(&wr->blk->rings[i].owner_pid, memory_order_relaxed),
                    (unsigned long long)*tail, (unsigned long long)head);
    }
    return rc;
}

static void take_ring(writer_t *wr, uint32_t i)
{
    shmq_ctl_ring_t *r = &wr->blk->rings[i];
    if (ring_at(wr, i) == NULL) {
        return;
    }
    /* Relaxed: head is ours (the table's copy, never the producer's). */
    uint64_t head =
        wr->moved[i] ? wr->heads[i] : atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail;
    int trc = ring_tail(wr, i, head, &tail);
    if (trc < 0) {
        return;
    }
    if (trc > 0) {
        log_limited(wr, SHMQ_LOG_WARN,
                    "ring %u: tail %llu is more than the ring ahead of head %llu: discarding the "
                    "published region",
                    i, (unsigned long long)tail, (unsigned long long)head);
        wr->discard[i] = true;
        wr->rejects++;
        wr->heads[i] = tail;
        wr->moved[i] = true;
        return;
    }
    uint64_t start = head;
    while (head != tail && wr->entries < WR_BATCH_ENTRIES && wr->bytes < WR_BATCH_BYTES &&
           wr->ndone < WR_COMPLETIONS) {
        uint64_t adv = 0;
        if (wr->nskips && take_skip(wr, i, head, &adv)) {
            head += adv;
            continue;
        }
        int rc = take_unit(wr, i, head, tail, false, &adv);
        if (rc == UNIT_DISCARD) {
            wr->discard[i] = true;
            wr->rejects++;
            head = tail;
            break;
        }
        if (rc != UNIT_OK || adv == 0) {
            break;
        }
        head += adv;
        wr->bytes += (int64_t)adv;
    }
    if (head != start) {
        wr->heads[i] = head;
        wr->moved[i] = true;
    }
}

static void batch_finish(writer_t *wr)
{
    crash_point(wr, "appended");
    /* (3) The records are complete: publish them. */
    if (wr->cl.wrote_pos != wr->published) {
        shmq_ctl_publish(&wr->blk->wrote, wr->cl.wrote_pos);
        wr->published = wr->cl.wrote_pos;
    }
    crash_point(wr, "published");
    /* (4) Then the queue offsets that name them (never ahead of wrote). */
    for (size_t k = 0; k < wr->nqueues; k++) {
        /* Release: pairs with readers that then read records below wrote. */
        atomic_store_explicit(&wr->queues[k].q->next_offset, wr->queues[k].next,
                              memory_order_release);
    }
    crash_point(wr, "offsets");
    /* (5) Answers, then the heads (space for the producers). */
    for (size_t k = 0; k < wr->ndone; k++) {
        complete_slot(wr, &wr->done[k]);
    }
    crash_point(wr, "answered");
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        if (!wr->moved[i] || wr->maps[i].r == NULL) {
            continue;
        }
        shmq_ring_shm_t *r = wr->maps[i].r;
        if (wr->discard[i]) {
            shmq_ring_fail_pending(r, SHMQ_E_CORRUPT,
                                   "an unreadable entry in this producer's ring: the entries "
                                   "published after it were discarded");
        }
        /* Release: we copied the entries out before the producer may overwrite them.  The
         * table's head first: it is the one a restarted writer trusts. */
        atomic_store_explicit(&wr->blk->rings[i].head, wr->heads[i], memory_order_release);
        atomic_store_explicit(&wr->blk->rings[i].tail_seen, wr->heads[i], memory_order_relaxed);
        atomic_store_explicit(&r->head, wr->heads[i], memory_order_release);
        shmq_ctl_wake(&r->producer_wake);
    }
    atomic_fetch_add_explicit(&wr->blk->counters.messages_in, wr->msgs_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&wr->blk->counters.bytes_in, wr->bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&wr->blk->counters.rejects, wr->rejects, memory_order_relaxed);
    if (wr->refused_disk_full | wr->refused_fenced | wr->append_errors) {
        shmq_ctl_counters_t *c = &wr->blk->counters;
        atomic_fetch_add_explicit(&c->refused_disk_full, wr->refused_disk_full,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&c->refused_fenced, wr->refused_fenced, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->append_errors, wr->append_errors, memory_order_relaxed);
    }
    /* (6) The next stage, only if it sleeps. */
    if (wr->msgs_in > 0) {
        if (wr->cfg->flush_disk_type == SHMQ_SYNC_FLUSH) {
            shmq_ctl_wake(&wr->blk->flusher_wake);
        } else {
            shmq_ctl_wake(&wr->blk->dispatcher_wake);
        }
    }
}

/*
 * ORPHANED rings (their producer's connection ended) with nothing left to
 * take become DRAINED: the master frees them.  A ring we cannot map, or
 * whose tail is behind our head, has nothing we could take either.
 */
static int drain_orphans(writer_t *wr)
{
    int n = 0;
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        shmq_ctl_ring_t *t = &wr->blk->rings[i];
        if (atomic_load_explicit(&t->state, memory_order_acquire) != SHMQ_RING_ORPHANED) {
            continue;
        }
        uint64_t tail = 0;
        uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
        if (ring_at(wr, i) != NULL &&
            shmq_ring_tail(&wr->maps[i], wr->ring_size, head, &tail) >= 0 && tail != head) {
            continue; /* published entries left: the batches take them */
        }
        shmq_ring_unmap(&wr->maps[i]);
        if (shmq_ring_set_drained(wr->ctl, i)) {
            n++;
        }
    }
    return n;
}

static int64_t writer_work(shmq_worker_t *w, void *arg)
{
    (void)w;
    writer_t *wr = arg;
    int64_t now = shmq_mono_ms();
    (void)now;
    int given = drain_orphans(wr);
    if (given > 0) {
        shmq_log(SHMQ_LOG_INFO, "%d orphaned ring(s) drained: given back to the master", given);
    }
    /* (1) Where this batch starts: a restart scans from here. */
    atomic_store_explicit(&wr->blk->writer_journal, wr->cl.wrote_pos, memory_order_release);
    wr->ndone = 0;
    wr->nqueues = 0;
    wr->entries = 0;
    wr->bytes = 0;
    wr->msgs_in = wr->bytes_in = 0;
    wr->rejects = wr->refused_disk_full = wr->refused_fenced = wr->append_errors = 0;
    wr->topic_valid = false;
    memset(wr->moved, 0, sizeof(wr->moved));
    memset(wr->discard, 0, sizeof(wr->discard));
    /* Acquire: the flusher's error is set before anything depends on it. */
    wr->fenced = atomic_load_explicit(&wr->blk->fenced_error, memory_order_acquire) != 0;
    /* cleaner: the disk watermark (acquire: pairs with the cleaner's release), and unmapping
     * the segments it deleted, whose space returns only once no process maps them. */
    wr->disk_full = atomic_load_explicit(&wr->blk->cleaner.disk_full, memory_order_acquire);
    if (wr->cfg->acl_enable) {
        /* config/acl.json edited: the new rules, or the old ones and why (at most once a s). */
        int arc = shmq_acl_watch_poll(&wr->acl, wr->ctl->root, shmq_mono_ms());
        if (arc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "%s: %s", shmq_error_detail(),
                     wr->acl.loaded ? "the rules loaded before stay in force"
                                    : "every producer but the store's user is refused");
        } else if (arc > 0) {
            shmq_log(SHMQ_LOG_INFO, "config/%s loaded (%zu accounts)", SHMQ_ACL_FILE,
                     wr->acl.acl.naccounts);
        }
    }
    if (shmq_clean_changed(wr->ctl, &wr->clean_seen)) {
        shmq_clean_drop_removed(&wr->cl.q);
    }

    bool any = false;
    for (uint32_t k = 0; k < wr->ring_count; k++) {
        uint32_t i = (wr->rr + k) % wr->ring_count;
        if (wr->entries >= WR_BATCH_ENTRIES || wr->bytes >= WR_BATCH_BYTES ||
            wr->ndone >= WR_COMPLETIONS) {
            break;
        }
        if (!ring_serviced(atomic_load_explicit(&wr->blk->rings[i].state, memory_order_acquire))) {
            continue;
        }
        take_ring(wr, i);
        any = any || wr->moved[i];
    }
    wr->rr = (wr->rr + 1) % wr->ring_count;
    if (!any) {
        return 0;
    }
    batch_finish(wr);
    return (int64_t)(wr->entries + wr->ndone) + 1;
}

/* ---- idle / done -------------------------------------------------------------------------- */

/*
 * Work waits in some ring: published entries (a valid tail past our head),
 * a ring not mapped yet, or an orphan to give back.  Cheap: called while
 * spinning and before sleeping.
 */
static bool rings_pending(void *arg)
{
    writer_t *wr = arg;
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        shmq_ctl_ring_t *t = &wr->blk->rings[i];
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (!ring_serviced(st)) {
            continue;
        }
        const shmq_ring_map_t *m = &wr->maps[i];
        uint64_t claims = atomic_load_explicit(&t->claims, memory_order_relaxed);
        if (m->r == NULL || m->claims != claims) {
            if (wr->map_failed[i] != claims + 1) {
                return true; /* to be mapped */
            }
            if (st == SHMQ_RING_ORPHANED) {
                return true; /* to be given back */
            }
            continue;
        }
        uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
        uint64_t tail;
        int rc = shmq_ring_tail(m, wr->ring_size, head, &tail);
        if ((rc == 0 && tail != head) || rc > 0 || (st == SHMQ_RING_ORPHANED && rc < 0)) {
            return true;
        }
        if (st == SHMQ_RING_ORPHANED && tail == head) {
            return true; /* to be given back */
        }
    }
    return false;
}

static void writer_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    writer_t *wr = arg;
    /* Dense traffic: a short spin is cheaper than a futex wake (~27 us). */
    int64_t until = shmq_mono_ns() + WR_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (rings_pending(wr) || w->stop) {
            return;
        }
        if ((i & 15) == 0 && shmq_mono_ns() > until) {
            break;
        }
        shmq_cpu_relax();
    }
    shmq_ctl_sleep(&wr->ctl->wake->writer_wake, rings_pending, wr, timeout_ms);
}

static bool writer_done(shmq_worker_t *w, void *arg)
{
    /* Acquire: pairs with the master's release store of the state. */
    uint32_t st = atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
    if (st != SHMQ_STATE_DRAINING && st != SHMQ_STATE_FINISHING && st != SHMQ_STATE_STOPPED) {
        return false;
    }
    if (rings_pending(arg)) {
        return false;
    }
    shmq_log(SHMQ_LOG_INFO, "every ring drained at %lld: done",
             (long long)((writer_t *)arg)->published);
    return true;
}

/* ---- restart repair ---------------------------------------------------------------------- */

/*
 * Restart: answer the ring units appended before the kill.  Units at the
 * head are consumed; one behind a unit that was not appended (it failed, or
 * will be refused) is remembered and skipped when the head reaches it.
 * Refusals are answered at once (the normal path would refuse them again;
 * a second answer finds the slot no longer PENDING for that request).
 */
static int repair_rings(writer_t *wr)
{
    size_t completed = 0;
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        shmq_ctl_ring_t *r = &wr->blk->rings[i];
        if (ring_at(wr, i) == NULL) {
            continue;
        }
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        uint64_t tail;
        if (ring_tail(wr, i, head, &tail) != 0) {
            continue; /* nothing we can trust to match: the normal path judges it */
        }
        uint64_t pos = head;
        bool prefix = true;
        while (pos != tail) {
            uint64_t adv = 0;
            wr->ndone = 0;
            int rc = take_unit(wr, i, pos, tail, true, &adv);
            if (rc < 0) {
                return rc;
            }
            for (size_t k = 0; k < wr->ndone; k++) {
                complete_slot(wr, &wr->done[k]);
            }
            bool refused = wr->ndone > 0;
            wr->ndone = 0;
            if (rc == UNIT_DISCARD || adv == 0) {
                break;
            }
            if (rc == UNIT_STOP) {
                prefix = false; /* not appended: later units may have been */
            } else if (!refused && wr->msgs[0].kind == SHMQ_RING_KIND_MSG) {
                completed++;
                if (!prefix) {
                    wr_skip_t *n = realloc(wr->skips, (wr->nskips + 1) * sizeof(*n));
                    if (n == NULL) {
                        return -ENOMEM;
                    }
                    wr->skips = n;
                    wr->skips[wr->nskips++] = (wr_skip_t){.ring = i, .pos = pos, .len = adv};
                }
            }
            if (prefix) {
                head = pos + adv;
            }
            pos += adv;
        }
        if (head != atomic_load_explicit(&r->head, memory_order_relaxed)) {
            /* Release: the entries are answered before their bytes are given back. */
            atomic_store_explicit(&r->head, head, memory_order_release);
            atomic_store_explicit(&wr->maps[i].r->head, head, memory_order_release);
            shmq_ctl_wake(&wr->maps[i].r->producer_wake);
        }
    }
    if (completed > 0) {
        shmq_log(SHMQ_LOG_INFO,
                 "answered %zu ring units appended before the restart (%zu out of "
                 "order)",
                 completed, wr->nskips);
    }
    return 0;
}

static int repair(writer_t *wr)
{
    int64_t wrote = wr->cl.wrote_pos;
    /* Acquire: pairs with the release store of the killed writer (or the master). */
    int64_t journal = atomic_load_explicit(&wr->blk->writer_journal, memory_order_acquire);
    if (journal < wrote && journal >= shmq_commitlog_min_offset(&wr->cl) &&
        wrote - journal <= wr->repair_bound) {
        int64_t n = shmq_journal_scan(&wr->journal, &wr->cl, wr->ctl, journal, wrote);
        if (n < 0) {
            return (int)n;
        }
        if (wr->journal.stop_err) {
            shmq_log(SHMQ_LOG_ERROR, "journal scan stopped at %lld: %s",
                     (long long)wr->journal.stop_at, shmq_strerror(wr->journal.stop_err));
        }
        if (wr->journal.last_store_ts > wr->cl.last_store_ts) {
            wr->cl.last_store_ts = wr->journal.last_store_ts;
        }
        shmq_log(SHMQ_LOG_INFO, "journal [%lld, %lld): %lld records of the interrupted batch",
                 (long long)journal, (long long)wrote, (long long)n);
    } else if (journal != wrote) {
        shmq_log(SHMQ_LOG_WARN, "journal %lld does not describe one batch before %lld: no scan",
                 (long long)journal, (long long)wrote);
    }
    int64_t zeroed = shmq_journal_zero_stale(&wr->cl, wrote, wr->repair_bound);
    if (zeroed > 0) {
        shmq_log(SHMQ_LOG_INFO, "zeroed %lld stale bytes after %lld", (long long)zeroed,
                 (long long)wrote);
    }
    int rc = repair_rings(wr);
    shmq_journal_free(&wr->journal);
    return rc;
}

/* ---- init / finish ------------------------------------------------------------------------ */

static void writer_free(writer_t *wr)
{
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ring_unmap(&wr->maps[i]);
    }
    if (wr->cl_open) {
        shmq_commitlog_close(&wr->cl);
    }
    free(wr->buf);
    free(wr->msgs);
    free(wr->ins);
    free(wr->qoffs);
    free(wr->res);
    free(wr->matched);
    free(wr->queues);
    shmq_acl_watch_free(&wr->acl);
    shmq_journal_free(&wr->journal);
    free(wr->skips);
    free(wr);
}

static int writer_init(shmq_worker_t *w, void **state)
{
    writer_t *wr = calloc(1, sizeof(*wr));
    if (wr == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    wr->w = w;
    wr->ctl = &w->ctl;
    wr->blk = w->ctl.blk;
    wr->cfg = w->cfg;
    wr->ring_size = wr->blk->hdr.ring_size;
    wr->ring_count =
        wr->blk->hdr.ring_count < SHMQ_CTL_MAX_RINGS ? wr->blk->hdr.ring_count : SHMQ_CTL_MAX_RINGS;
    wr->crash_dir = getenv("SHMQ_TEST_CRASH_DIR");
    wr->lim.max_body = wr->cfg->max_message_size;
    wr->lim.max_topic_len = wr->cfg->max_topic_length;
    wr->unit_max = (int64_t)wr->cfg->max_message_size + SHMQ_RING_UNIT_SLACK;
    /* One batch: < 1 MiB of entries plus one unit; records are at most ~1.5x their
     * entries, plus segment-closing blanks. */
    wr->repair_bound = 2 * (WR_BATCH_BYTES + 2 * wr->unit_max);
    wr->buf_cap = wr->ring_size;
    wr->buf = malloc(wr->buf_cap);
    if (wr->buf == NULL || wr->ring_count == 0 || unit_room(wr, 16) < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot set up: ring size %llu, %u rings",
                 (unsigned long long)wr->ring_size, wr->ring_count);
        writer_free(wr);
        return SHMQ_EXIT_ERROR;
    }
    shmq_host_t host;
    int rc = shmq_config_store_host(wr->cfg, &host);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "%s", shmq_error_detail());
        writer_free(wr);
        return SHMQ_EXIT_CONFIG;
    }
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(wr->cfg, dir, sizeof(dir));
    unsigned flags = SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE;
    if (wr->cfg->mlock_enable) {
        flags |= SHMQ_MF_MLOCK;
    }
    rc = shmq_commitlog_open(&wr->cl, dir, (size_t)wr->cfg->mapped_file_size_commit_log, flags);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the CommitLog in %s: %s", dir,
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        writer_free(wr);
        return SHMQ_EXIT_ERROR;
    }
    wr->cl_open = true;
    wr->cl.store_host = host;
    int64_t wrote = shmq_ctl_load(&wr->blk->wrote);
    shmq_commitlog_set_positions(&wr->cl, wrote, shmq_ctl_load(&wr->blk->flushed));
    wr->published = wrote;
    crash_point(wr, "repair");
    rc = repair(wr);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "restart repair failed: %s",
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        writer_free(wr);
        return SHMQ_EXIT_ERROR;
    }
    shmq_log(SHMQ_LOG_INFO, "appending at %lld (%s)", (long long)wrote,
             wr->cfg->flush_disk_type == SHMQ_SYNC_FLUSH ? "SYNC_FLUSH" : "ASYNC_FLUSH");
    *state = wr;
    return 0;
}

static int writer_finish(shmq_worker_t *w, void *arg)
{
    (void)w;
    writer_free(arg);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = writer_init,
        .work = writer_work,
        .idle = writer_idle,
        .finish = writer_finish,
        .done = writer_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_WRITER, &ops);
}
