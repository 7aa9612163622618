/*
 * shmq-writer: one ring unit (a message, or a producer's batch appended as
 * one).  Its entries are copied out of the ring and validated (ring.h),
 * the scheduler's put hook runs, the ACL, the topic (created when
 * autoCreateTopicEnable allows) and the queue are resolved, the unit is
 * appended with queue offsets from the batch's local copies, and its answer
 * is queued for step (5) of the batch (writer.c).  At restart the same
 * path matches a unit with the records the killed writer left
 * (complete_recorded) instead of appending it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/probes.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shm/journal.h"
#include "shm/ring.h"
#include "shm/schedule.h"
#include "shm/stats.h"
#include "shmq/errors.h"
#include "store/fence.h"
#include "writer.h"

static bool tx_gets_unit(int32_t sysflag)
{
    int32_t tx = sysflag & SHMQ_SYSFLAG_TX_MASK;
    return tx == SHMQ_SYSFLAG_TX_NOT || tx == SHMQ_SYSFLAG_TX_COMMIT;
}

int wr_unit_room(writer_t *wr, size_t n)
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
    shmq_record_plan_t *pl = realloc(wr->plans, cap * sizeof(*pl));
    if (pl) {
        wr->plans = pl;
    }
    if (!m || !in || !q || !r || !jr || !pl) {
        return -ENOMEM;
    }
    wr->unit_cap = cap;
    return 0;
}

/* ---- completions -------------------------------------------------------------------- */

static void add_done(writer_t *wr, uint32_t ring, const shmq_ring_msg_t *m, int status)
{
    wr_done_t *d = &wr->done[wr->ndone++];
    /* All but the detail text, which only an error fills (its first byte says none). */
    memset(d, 0, offsetof(wr_done_t, res.detail));
    d->res.detail[0] = '\0';
    d->ring = ring;
    d->slot = m->slot;
    d->res.req_id = m->req_id;
    d->oneway = (m->flags & SHMQ_RING_F_ONEWAY) != 0;
    d->res.status = status;
    d->res.queue_id = m->queue_id;
    d->res.count = m->batch_count;
}

/* The counter a refusal counts in: bad input, or an entry the store could not take. */
static void count_refusal(writer_t *wr, int err)
{
    if (err == SHMQ_E_DISK_FULL || err == -ENOSPC || err == -EDQUOT) {
        wr->refused_disk_full++;
    } else if (err == SHMQ_E_FENCED) {
        wr->refused_fenced++;
    } else if (err == SHMQ_E_NOT_MASTER) {
        wr->refused_not_master++;
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
    wr_log(wr, SHMQ_LOG_WARN, "ring %u (pid %d) entry at %llu refused: %s", ring,
           (int)atomic_load_explicit(&wr->blk->rings[ring].owner_pid, memory_order_relaxed),
           (unsigned long long)pos, why);
    count_refusal(wr, err);
    if (m->hdr_ok) {
        add_done(wr, ring, m, shmq_ring_error_status(err));
        snprintf(wr->done[wr->ndone - 1].res.detail, SHMQ_RING_DETAIL_MAX, "%s", why);
    }
}

/*
 * The CommitLog could not take a run of records the writer put (a staged
 * write failed: commitlog.h): what the page cache holds past `wrote` is not
 * known.  Every record below `wrote` went in whole (its write succeeded), and
 * the flusher goes on flushing them: a producer's SYNC_FLUSH answer may still
 * come for any of them.  So the fence point (fence.h) is `wrote`, not
 * `flushed`: every entry from now on is refused, the master stops the store,
 * and the next start cuts the log there, after checking what lies below it
 * as every recovery does.
 */
static void write_failed(writer_t *wr, int rc)
{
    if (wr->fenced) {
        return;
    }
    wr->fenced = true;
    int64_t wrote = wr->cl.wrote_pos; /* frozen: the log takes no append after the failure */
    const char *d = shmq_error_detail();
    char what[512];
    snprintf(what, sizeof(what), "%s", d[0] ? d : shmq_strerror(rc));
    /* The fence point first, durably (the master records one too if this fails). */
    if (shmq_fence_record(wr->ctl->root, SHMQ_FENCE_COMMITLOG, wrote, rc) < 0) {
        d = shmq_error_detail();
        wr_log(wr, SHMQ_LOG_ERROR, "cannot record the fence point: %s",
               d[0] ? d : shmq_strerror(rc));
    }
    shmq_ctl_fence(wr->blk, SHMQ_FENCE_COMMITLOG, rc);
    wr_log(wr, SHMQ_LOG_ERROR,
           "%s; the store is fenced: nothing past %lld is acknowledged, and the next start cuts "
           "the log there",
           what, (long long)wrote);
}

/* An append that failed with rc: its answer's text in why; when the CommitLog could not
 * take the records (a staged write failed: flush_err), the store is fenced. */
static void append_failed(writer_t *wr, int rc, char why[SHMQ_RING_DETAIL_MAX])
{
    snprintf(why, SHMQ_RING_DETAIL_MAX, "append at %lld failed: %s", (long long)wr->cl.wrote_pos,
             shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
    if (wr->cl.flush_err != 0) {
        write_failed(wr, rc);
    }
}

/* Refuse the entry at pos: the store holds no lease as its set's master (wr->not_master). */
static void reject_not_master(writer_t *wr, uint32_t ring, uint64_t pos, const shmq_ring_msg_t *m)
{
    const shmq_ctl_controller_t *cs = &wr->blk->controller;
    /* Relaxed: the ctrl-agent's report, shown as it is (ctl.h) */
    int64_t master = atomic_load_explicit(&cs->master_id, memory_order_relaxed);
    char maddr[SHMQ_CTL_ADDR_MAX];
    memcpy(maddr, cs->master_addr, sizeof(maddr));
    maddr[sizeof(maddr) - 1] = '\0';
    char named[SHMQ_CTL_ADDR_MAX + 64];
    if (master > 0) {
        snprintf(named, sizeof(named), "the group last named brokerId %lld at %s master",
                 (long long)master, maddr[0] ? maddr : "?");
    } else if (master < 0) {
        snprintf(named, sizeof(named), "the group names no master");
    } else {
        snprintf(named, sizeof(named), "the group has not answered yet");
    }
    /* The store's path last: the producer's copy of the text holds SHMQ_RING_DETAIL_MAX
     * bytes, and the producer knows which store it opened. */
    if (wr->not_master_ms < 0) {
        shmq_error_set(SHMQ_E_NOT_MASTER,
                       "not master of broker set %s: the controller group has not named this "
                       "store master yet; %s (store %s)",
                       wr->cfg->broker_name, named, wr->ctl->root);
    } else {
        shmq_error_set(SHMQ_E_NOT_MASTER,
                       "not master of broker set %s: the store's lease from the controller group "
                       "lapsed %lld ms ago; %s (store %s)",
                       wr->cfg->broker_name, (long long)wr->not_master_ms, named, wr->ctl->root);
    }
    reject(wr, ring, pos, m, SHMQ_E_NOT_MASTER);
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

/*
 * The topic admits a message to queue_id (creating the topic if allowed).
 * decoded: topic is the one the unit's decode left in the topic memo (no
 * put hook replaced it): while the memo's gen is the one the snapshot was
 * taken at, the snapshot's name is that topic without comparing it again.
 */
static int __attribute__((noinline))
resolve_topic_slow(writer_t *wr, const char *topic, size_t len, int32_t queue_id, bool decoded)
{
    shmq_ctl_topic_t *t = &wr->topic;
    const shmq_ctl_topic_t *e = wr->topic_entry;
    bool same = decoded && wr->topic_memo_gen != 0 && wr->topic_memo_gen == wr->topic_memo.gen;
    /* The snapshot holds while its entry's seq is the one it was taken at (acquire: pairs
     * with the seqlock's release; any change makes it odd, then larger). */
    if (!(e != NULL && (same || (t->name[len] == '\0' && memcmp(t->name, topic, len) == 0)) &&
          atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire) == t->seq)) {
        wr->topic_entry = NULL;
        wr->topic_gen++;
        wr->topic_memo_gen = decoded ? wr->topic_memo.gen : 0;
        int rc = shmq_ctl_topic_get_entry(wr->ctl, topic, len, t, &e);
        if (rc == SHMQ_E_NOT_FOUND && (rc = create_topic(wr, topic, len, t)) == 0) {
            rc = shmq_ctl_topic_get_entry(wr->ctl, topic, len, t, &e);
        }
        if (rc < 0) {
            return rc;
        }
        t->name[sizeof(t->name) - 1] = '\0';
        wr->topic_entry = e;
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

static inline int resolve_topic(writer_t *wr, const char *topic, size_t len, int32_t queue_id,
                                bool decoded)
{
    /* The common case in a few loads: the unit's decode found the topic the snapshot was
     * taken for (the memo's gen unchanged), whose entry is unchanged, and it admits the
     * queue.  Anything else, errors included, is the slow path's (the same checks). */
    const shmq_ctl_topic_t *t = &wr->topic;
    const shmq_ctl_topic_t *e = wr->topic_entry;
    /* Acquire: as in resolve_topic_slow(). */
    if (decoded && e != NULL && wr->topic_memo_gen != 0 &&
        wr->topic_memo_gen == wr->topic_memo.gen &&
        atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire) == t->seq &&
        (t->perm & SHMQ_PERM_WRITE) && queue_id < t->write_queue_nums) {
        return 0;
    }
    return resolve_topic_slow(wr, topic, len, queue_id, decoded);
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
        /* Relaxed: written before the ACTIVE release that wr_ring_at() acquired. */
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

/*
 * The entry for a queue of the topic resolve_topic() just admitted: from the
 * cache (kept across batches: queue entries never move, and we are
 * next_offset's only writer), or found or inserted in the control block and
 * cached.
 */
static bool queue_is(const shmq_ctl_queue_t *q, const char *topic, size_t len, int32_t queue_id)
{
    return q->queue_id == queue_id && q->topic_len == len && memcmp(q->topic, topic, len) == 0;
}

/* The hint: the entry last found for this queue id, taken only if the scan of batch_queue()
 * would take it at once (its topic found equal to the snapshot still held); or NULL. */
static inline wr_queue_t *queue_hinted(writer_t *wr, int32_t queue_id)
{
    uint32_t hint = wr->queue_hint[(uint32_t)queue_id & (WR_QUEUE_HINTS - 1)];
    if (hint != 0 && hint <= wr->nqueues) {
        wr_queue_t *e = &wr->queues[hint - 1];
        if (e->topic_gen == wr->topic_gen && e->q->queue_id == queue_id) {
            return e;
        }
    }
    return NULL;
}

static int batch_queue(writer_t *wr, const char *topic, size_t len, int32_t queue_id,
                       wr_queue_t **out)
{
    if ((*out = queue_hinted(wr, queue_id)) != NULL) {
        return 0;
    }
    uint32_t *hint = &wr->queue_hint[(uint32_t)queue_id & (WR_QUEUE_HINTS - 1)];
    /* A cached queue whose topic was found equal to the topic snapshot still held needs no
     * comparing of its topic. */
    for (size_t i = 0; i < wr->nqueues; i++) {
        wr_queue_t *e = &wr->queues[i];
        if (e->topic_gen == wr->topic_gen ? e->q->queue_id == queue_id
                                          : queue_is(e->q, topic, len, queue_id)) {
            e->topic_gen = wr->topic_gen;
            *hint = (uint32_t)i + 1;
            *out = e;
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
        size_t cap = wr->queues_cap ? wr->queues_cap * 2 : WR_QUEUE_CACHE;
        wr_queue_t *n = realloc(wr->queues, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        wr->queues = n;
        size_t *d = realloc(wr->dirty, cap * sizeof(*d));
        if (d == NULL) {
            return -ENOMEM;
        }
        wr->dirty = d;
        wr->queues_cap = cap;
    }
    wr_queue_t *e = &wr->queues[wr->nqueues++];
    e->q = q;
    e->topic_gen = wr->topic_gen;
    /* Relaxed: we are next_offset's only writer. */
    e->next = atomic_load_explicit(&q->next_offset, memory_order_relaxed);
    e->dirty = false;
    *hint = (uint32_t)wr->nqueues;
    *out = e;
    return 0;
}

/* ---- shmqctl topic delete ------------------------------------------------------------------- */

void wr_topic_deleted(writer_t *wr, uint64_t req)
{
    shmq_ctl_topic_del_t *d = &wr->blk->topic_del;
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(topic, d->topic, sizeof(topic));
    topic[SHMQ_TOPIC_MAX_ANY] = '\0';
    size_t len = strlen(topic);
    /* Between batches: nothing is dirty.  The topic is deleted in the table, so nothing of it
     * is written from here on until the deletion is finished: its queues start again at 0. */
    for (uint32_t i = 0; len > 0 && i < SHMQ_CTL_MAX_QUEUES; i++) {
        shmq_ctl_queue_t *e = &wr->blk->queues[i];
        if (shmq_ctl_queue_of_topic(e, topic, len)) {
            /* Release: as step (4) stores it. */
            atomic_store_explicit(&e->next_offset, 0, memory_order_release);
        }
    }
    wr->nqueues = 0;
    wr->topic_entry = NULL;
    /* Relaxed: published by writer_seen's release below. */
    atomic_store_explicit(&d->cut_pos, wr->cl.wrote_pos, memory_order_relaxed);
    /* Release: the dispatcher reads the cut and the offsets after it. */
    atomic_store_explicit(&d->writer_seen, req, memory_order_release);
    wr->del_seen = req;
    shmq_log(SHMQ_LOG_INFO, "topic %s deleted: nothing of it is written after %lld", topic,
             (long long)wr->cl.wrote_pos);
}

/* ---- one unit ------------------------------------------------------------------------------ */

/* What a stored unit's answer and counters need of its first entry (shmq_ring_msg_t's or
 * shmq_ring_hdr_t's fields). */
typedef struct unit_id {
    uint32_t slot;
    uint16_t flags;
    int32_t queue_id;
    uint64_t req_id;
    int64_t born_ts;
    const char *topic;
    uint32_t topic_len;
} unit_id_t;

/* Queue q's next offset is next now (q is written back after the batch). */
static inline __attribute__((always_inline)) void queue_advanced(writer_t *wr, wr_queue_t *q,
                                                                 int64_t next)
{
    q->next = next;
    if (!q->dirty) {
        q->dirty = true;
        wr->dirty[wr->ndirty++] = (size_t)(q - wr->queues);
    }
}

/* d: the answer to the unit of n records [phys, end) with queue offsets from qoff, taken from
 * ring ring (u: its first entry). */
static inline __attribute__((always_inline)) void
answer_fill(wr_done_t *d, uint32_t ring, const unit_id_t *u, size_t n, int64_t qoff, int64_t phys,
            int64_t end, int64_t store_ts, int32_t size0)
{
    /* Every field but the detail text, which only an error reads: each stored once. */
    d->ring = ring;
    d->slot = u->slot;
    d->oneway = (u->flags & SHMQ_RING_F_ONEWAY) != 0;
    d->born_ts = (u->flags & SHMQ_RING_F_RESEND) ? 0 : u->born_ts;
    d->res.status = 0;
    d->res.req_id = u->req_id;
    d->res.phys_offset = phys;
    d->res.end_pos = end;
    d->res.queue_offset = qoff; /* the first record's (wr->qoffs[0] of a batch) */
    d->res.store_ts = store_ts;
    d->res.queue_id = u->queue_id;
    d->res.size = size0;
    d->res.count = (int32_t)n;
    SHMQ_PROBE(append, ring, u->req_id, phys, end, n, u->queue_id, qoff, u->topic, u->topic_len);
}

/* The unit of n records [phys, end) with queue offsets from qoff (in queue q, or NULL for
 * records no consumer reads) is stored: the queue's next offset and its answer. */
static inline __attribute__((always_inline)) void
unit_answer(writer_t *wr, uint32_t ring, const unit_id_t *u, size_t n, wr_queue_t *q, int64_t qoff,
            int64_t phys, int64_t end, int64_t store_ts, int32_t size0)
{
    if (q != NULL) {
        queue_advanced(wr, q, qoff + (int64_t)n);
    }
    answer_fill(&wr->done[wr->ndone++], ring, u, n, qoff, phys, end, store_ts, size0);
}

/* n messages of bytes record bytes stored (in units answered by unit_answer()): the batch's
 * counters and the pending per-topic counts. */
static inline __attribute__((always_inline)) void unit_counted(writer_t *wr, size_t n,
                                                               uint64_t bytes)
{
    wr->msgs_in += n;
    wr->bytes_in += bytes;
    if (wr->topic_entry != NULL) {
        /* One addition per topic and batch: a unit of the same topic joins the pending one. */
        if (wr->tc_entry != wr->topic_entry || wr->tc_inc != wr->topic.incarnation) {
            if (wr->tc_entry != NULL) {
                wr_topic_counts_flush(wr);
            }
            wr->tc_entry = wr->topic_entry;
            wr->tc_inc = wr->topic.incarnation;
        }
        wr->tc_msgs += n;
        wr->tc_bytes += bytes;
    }
}

/* The unit of n records [phys, end) is stored: unit_answer() and unit_counted(). */
static inline __attribute__((always_inline)) void
unit_stored(writer_t *wr, uint32_t ring, const unit_id_t *u, size_t n, wr_queue_t *q, int64_t qoff,
            int64_t phys, int64_t end, int64_t store_ts, int32_t size0)
{
    unit_answer(wr, ring, u, n, q, qoff, phys, end, store_ts, size0);
    unit_counted(wr, n, (uint64_t)(end - phys));
}

/* Append the unit held in wr->msgs[0..n) (validated); queue the completion. */
static inline __attribute__((always_inline)) void append_unit(writer_t *wr, uint32_t ring,
                                                              uint64_t pos, size_t n)
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
    /* Controller mode: no lease as the set's master, no write (docs/controller.md
     * "Fencing"): the group may elect another master once the lease has lapsed. */
    if (wr->not_master) {
        reject_not_master(wr, ring, pos, m0);
        return;
    }
    /* The ACL before the topic: a producer may not create a topic it may not publish to. */
    int rc = acl_publish(wr, ring, m0->topic, m0->topic_len);
    if (rc == 0) {
        /* planned: the unit's topic is still the one its decode checked (the hook clears it). */
        rc = resolve_topic(wr, m0->topic, m0->topic_len, m0->queue_id, m0->planned);
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
    rc = 0;
    shmq_error_clear();
    /* Each record planned once: by the decode that validated the entry, or here when the
     * put hook replaced its topic and properties; then encoded from that plan. */
    if (n == 1) {
        /* One record (no loop), its plan where the decode left it (or made here). */
        shmq_ring_msg_to_in(m0, &wr->cl.store_host, &wr->ins[0]);
        if (!m0->planned) {
            rc = shmq_record_plan(&wr->ins[0], m0->props_scanned ? SHMQ_PLAN_PROPS_SCANNED : 0,
                                  &wr->plans[0]);
        }
        if (rc == 0) {
            rc = shmq_commitlog_append_plan(&wr->cl, wr->ins, m0->planned ? &m0->plan : wr->plans,
                                            qoff, wr->store_ts, wr->res);
        }
    } else {
        for (size_t k = 0; k < n && rc == 0; k++) {
            const shmq_ring_msg_t *m = &wr->msgs[k];
            shmq_ring_msg_to_in(m, &wr->cl.store_host, &wr->ins[k]);
            wr->qoffs[k] = unit ? qoff + (int64_t)k : 0;
            if (!m->planned) {
                rc = shmq_record_plan(&wr->ins[k], m->props_scanned ? SHMQ_PLAN_PROPS_SCANNED : 0,
                                      &wr->plans[k]);
            } else {
                wr->plans[k] = m->plan; /* a batch's plans side by side */
            }
        }
        if (rc == 0) {
            rc = shmq_commitlog_append_plans(&wr->cl, wr->ins, wr->plans, n, wr->qoffs,
                                             wr->store_ts, wr->res);
        }
    }
    if (rc < 0) {
        char why[SHMQ_RING_DETAIL_MAX];
        append_failed(wr, rc, why);
        wr_log(wr, SHMQ_LOG_ERROR, "%s", why);
        count_refusal(wr, rc);
        add_done(wr, ring, m0, rc);
        memcpy(wr->done[wr->ndone - 1].res.detail, why, sizeof(why));
        return;
    }
    const shmq_append_result_t *first = &wr->res[0], *last = &wr->res[n - 1];
    unit_id_t u = {.slot = m0->slot,
                   .flags = m0->flags,
                   .queue_id = m0->queue_id,
                   .req_id = m0->req_id,
                   .born_ts = m0->born_ts,
                   .topic = m0->topic,
                   .topic_len = m0->topic_len};
    unit_stored(wr, ring, &u, n, unit ? q : NULL, qoff, first->phys_offset,
                last->phys_offset + last->size, first->store_ts, first->size);
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
                   .oneway = (m0->flags & SHMQ_RING_F_ONEWAY) != 0,
                   .res = {.req_id = m0->req_id,
                           .queue_id = first->queue_id,
                           .size = first->size,
                           .count = (int32_t)n,
                           .phys_offset = first->phys,
                           .end_pos = last->phys + last->size,
                           .queue_offset = first->queue_offset,
                           .store_ts = first->store_ts}};
    wr_complete_slot(wr, &d);
    return true;
}

/* A delayed or timed message's own topic, checked as append_unit checks a plain one. */
static int real_topic_check(writer_t *wr, uint32_t ring, const shmq_ring_msg_t *m)
{
    int rc = acl_publish(wr, ring, m->topic, m->topic_len);
    return rc < 0 ? rc : resolve_topic(wr, m->topic, m->topic_len, m->queue_id, false);
}

/* The records of a run were not stored (the staged write failed): its n answers say so, and
 * the store is fenced. */
static __attribute__((noinline, cold)) void run_failed(writer_t *wr, wr_done_t *answers, size_t n,
                                                       int rc)
{
    char why[SHMQ_RING_DETAIL_MAX];
    append_failed(wr, rc, why);
    for (size_t k = 0; k < n; k++) {
        answers[k].res.status = shmq_ring_error_status(rc);
        memcpy(answers[k].res.detail, why, sizeof(why));
        count_refusal(wr, rc);
    }
}

/*
 * The usual units, taken without the full path's copy, decode and conversion:
 * plain messages (shmq_ring_peek_plain()) to the topic the last unit had (the
 * decode's topic memo: valid, not a system topic, its snapshot still
 * admitting the queue, which is cached), with no property the put hook
 * reads, into a store that takes appends, while they fit the segment the
 * last append went to.  Each header is copied out of the ring and checked;
 * body, topic and properties are copied once, straight to where the record
 * holds them in the CommitLog, or in its stage (staged appends: commitlog.h;
 * no client can write either: what is checked is what is stored), and
 * checked there as the decode checks its copy; then the
 * record is completed around them (shmq_record_encode_placed_v1()).  The run
 * ends at the first entry it does not take, or at a check that fails (that
 * record's bytes are cleared: nothing valid-looking past what is published),
 * and the full path takes that entry and decides, words and counts as
 * before.  Per run, not per entry: the batch's bounds, the writer's state the
 * run reads (held in locals), the topic's words, the answers' count, the
 * entries and the counters.  Returns the ring bytes taken from pos (0: none).
 */
uint64_t wr_take_plain(writer_t *wr, uint32_t i, uint64_t pos, uint64_t tail)
{
    /* Once per run: the store takes appends, and the topic is the memo's name (checked
     * against each copy below), found not to be a system topic, the snapshot taken for it
     * unchanged (resolve_topic()'s common case) and writable, the producer allowed to
     * publish to it. */
    const shmq_ring_topic_memo_t *memo = &wr->topic_memo;
    const shmq_ctl_topic_t *t = &wr->topic;
    const shmq_ctl_topic_t *e = wr->topic_entry;
    /* Acquire: as in resolve_topic_slow(). */
    if (wr->fenced || wr->disk_full || wr->not_master ||
        !(memo->len != 0 && memo->max_len == wr->lim.max_topic_len &&
          memo->gen == wr->not_system_gen && e != NULL && wr->topic_memo_gen == memo->gen &&
          atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire) == t->seq &&
          (t->perm & SHMQ_PERM_WRITE) && acl_publish(wr, i, memo->name, memo->len) == 0)) {
        return 0;
    }
    /* What the run reads of the writer's state, in locals: the records' stores (through
     * byte pointers) would otherwise make the compiler load each again for every entry. */
    const uint8_t *data = wr->maps[i].data;
    const uint64_t ring_size = wr->ring_size;
    const shmq_ring_limits_t lim = wr->lim;
    const int64_t unit_max = wr->unit_max;
    const int32_t write_queues = t->write_queue_nums;
    /* The batch's bounds as take_ring() checks them before each unit, turned into this run's:
     * one entry and one answer per message, and ring bytes taken before the next entry. */
    size_t max_n = wr->entries < WR_BATCH_ENTRIES ? WR_BATCH_ENTRIES - wr->entries : 0;
    size_t max_done = wr->ndone < WR_COMPLETIONS ? WR_COMPLETIONS - wr->ndone : 0;
    max_n = max_done < max_n ? max_done : max_n;
    const int64_t max_taken = WR_BATCH_BYTES - wr->bytes;
    wr_done_t *const answers = &wr->done[wr->ndone];
    /* The same for every message of the run: its topic, as the memo's name (a name of 8 to 16
     * bytes as two overlapping words: the ring's bytes are read once into words that are
     * compared with these and stored), and the fields of the encode's input it holds. */
    const uint32_t tlen = memo->len;
    const bool t_words = tlen >= 8 && tlen <= 16;
    uint64_t tw0 = 0, tw1 = 0;
    if (t_words) {
        memcpy(&tw0, memo->name, 8);
        memcpy(&tw1, memo->name + tlen - 8, 8);
    }
    shmq_msg_in_t in;
    in.topic_len = tlen;
    in.born_host.is_v6 = false;
    in.store_host = wr->cl.store_host;
    shmq_commitlog_room_t room;
    int64_t done = 0; /* record bytes written in the room */
    uint64_t taken = 0;
    size_t n = 0;
    while (pos + taken != tail && n < max_n && (int64_t)taken < max_taken) {
        shmq_ring_hdr_t h;
        uint64_t at = pos + taken;
        if (!shmq_ring_peek_plain(data, ring_size, at, tail, &lim, &h) ||
            (int64_t)h.total_len > unit_max || h.topic_len != tlen || h.queue_id >= write_queues) {
            break;
        }
        wr_queue_t *q = queue_hinted(wr, h.queue_id);
        if (q == NULL) {
            break;
        }
        /* Room for the record with a separator before the __CRC32# tail (one byte more than
         * needed when the properties end with one): the run's room, grown. */
        int64_t most =
            SHMQ_RECORD_FIXED_V1 + (int64_t)h.body_len + tlen + h.props_len + 1 + SHMQ_CRC_PROP_LEN;
        if (most > INT32_MAX ||
            (done == 0 ? shmq_commitlog_room(&wr->cl, most, wr->store_ts, &room) != 0
                       : !shmq_commitlog_room_grow(&wr->cl, &room, done + most))) {
            break;
        }
        uint8_t *dst = room.dst + done;
        /* Each part's bytes read once from the ring, into the record. */
        const uint8_t *src = data + (at & (ring_size - 1)) + SHMQ_RING_HDR_SIZE;
        uint8_t *body = dst + SHMQ_RECORD_BODY_AT_V4;
        char *topic = (char *)body + h.body_len + 1;
        char *props = topic + tlen + 2;
        /* The copy checked as the decode checks its own (check_parts()). */
        bool topic_ok;
        if (t_words) {
            uint64_t w0, w1;
            memcpy(&w0, src, 8);
            memcpy(&w1, src + tlen - 8, 8);
            memcpy(topic, &w0, 8);
            memcpy(topic + tlen - 8, &w1, 8); /* the bytes stored: w0's, then w1's */
            topic_ok = w0 == tw0 && w1 == tw1;
        } else {
            memcpy(topic, src, tlen);
            topic_ok = shmq_bytes_equal(memo->name, topic, tlen);
        }
        memcpy(body, src + tlen + h.props_len, h.body_len);
        shmq_props_info_t pi;
        if (!topic_ok ||
            shmq_props_copy_scan(props, (const char *)src + tlen, h.props_len, &pi) < 0 ||
            pi.uniq_key == NULL || pi.uniq_key_len >= SHMQ_UNIQ_KEY_MAX || pi.sched) {
            memset(dst, 0, (size_t)most); /* no valid-looking record past wrote */
            break;
        }
        bool add_sep = h.props_len > 0 && props[h.props_len - 1] != SHMQ_PROP_SEP;
        shmq_record_plan_t plan = {.total = most - !add_sep,
                                   .props_len = h.props_len + add_sep + SHMQ_CRC_PROP_LEN,
                                   .v2 = false,
                                   .add_sep = add_sep};
        int64_t qoff = q->next;
        int64_t phys = room.pos + done;
        /* Stored (the answer goes out after the batch's records are published): the queue's
         * next offset, the answer (unit_answer()'s, into the run's part of the batch's answers:
         * wr->ndone moves once, after the run), both before the encode (fewer values kept
         * across its call). */
        queue_advanced(wr, q, qoff + 1);
        unit_id_t u = {.slot = h.slot,
                       .flags = h.flags,
                       .queue_id = h.queue_id,
                       .req_id = h.req_id,
                       .born_ts = h.born_ts,
                       .topic = topic,
                       .topic_len = tlen};
        answer_fill(&answers[n], i, &u, 1, qoff, phys, phys + plan.total, room.ts,
                    (int32_t)plan.total);
        /* Field by field: encode_placed reads each (an initializer would clear the rest). */
        in.topic = topic;
        in.queue_id = h.queue_id;
        in.flag = h.flag;
        in.sysflag = h.sysflag;
        in.born_ts = h.born_ts;
        memcpy(in.born_host.addr, h.born_addr, 4); /* IPv4: the first 4 bytes are read */
        in.born_host.port = h.born_port;
        in.reconsume_times = h.reconsume_times;
        in.prepared_tx_offset = h.prepared_tx_offset;
        in.body = body;
        in.body_len = h.body_len;
        in.props = props;
        in.props_len = h.props_len;
        shmq_record_encode_placed_v1(&in, &plan, qoff, phys, room.ts, dst);
        n++;
        done += plan.total;
        taken += h.total_len;
    }
    if (done > 0) {
        int rc = shmq_commitlog_room_done(&wr->cl, &room, done);
        if (__builtin_expect(rc < 0, 0)) {
            run_failed(wr, answers, n, rc);
        } else {
            /* Once per run: the counters. */
            unit_counted(wr, n, (uint64_t)done);
        }
        /* The answers and the entries taken. */
        wr->ndone += n;
        wr->entries += n;
    }
    return taken;
}

/*
 * Take the unit at pos (head or later) of ring i: copy and validate every
 * entry, then append it (repair = false) or, at restart, complete it if it
 * was appended before (repair = true: UNIT_STOP when it was not).  *adv
 * gets the bytes to skip.  UNIT_DISCARD: garbage hides the rest of the ring.
 */
int wr_take_unit(writer_t *wr, uint32_t i, uint64_t pos, uint64_t tail, bool repair, uint64_t *adv)
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
        if (wr_unit_room(wr, n) < 0) {
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
        wr_log(wr, SHMQ_LOG_WARN,
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
    /* The store's own topics take nothing from a client (RocketMQ: "sending message to
     * topic ... is forbidden"); the hook below rewrites to them.  The unit's topic is the
     * decode's topic memo's name (its last entry's, the same as the first's): while the memo
     * keeps the gen it had when its name was found not to be one, no look again. */
    if (wr->topic_memo.gen != wr->not_system_gen) {
        if (shmq_topic_is_system(wr->msgs[0].topic, wr->msgs[0].topic_len)) {
            shmq_error_set(-EACCES, "sending to topic %.*s is forbidden: it is a system topic",
                           (int)wr->msgs[0].topic_len, wr->msgs[0].topic);
            reject(wr, i, pos, &wr->msgs[0], -EACCES);
            return UNIT_OK;
        }
        wr->not_system_gen = wr->topic_memo.gen;
    }
    /* ---- scheduler: delay levels and timed messages go to their system topics
     * (RocketMQ's put hook, libshm/shm/schedule.c). ---- */
    bool sched = wr->msgs[0].sched;
    for (size_t k = 1; k < n; k++) {
        sched |= wr->msgs[k].sched;
    }
    if (sched) { /* else no property the hook reads (decode looked): nothing to do */
        const char *props = wr->msgs[0].props;
        /* Its own topic is checked as for a plain send (exists or may be created, is
         * writable, has the queue, the ACL), before it is rewritten to a system topic. */
        if (n == 1 && shmq_schedule_requested(props, wr->msgs[0].props_len) &&
            (rc = real_topic_check(wr, i, &wr->msgs[0])) < 0) {
            reject(wr, i, pos, &wr->msgs[0], rc);
            return UNIT_OK;
        }
        if ((rc = shmq_schedule_writer_hook(wr->ctl, wr->cfg, wr->msgs, n)) < 0) {
            reject(wr, i, pos, &wr->msgs[0], rc);
            return UNIT_OK;
        }
        if (wr->msgs[0].props != props) {
            wr->msgs[0].props_scanned = false; /* rewritten: planned with every check */
        }
        for (size_t k = 0; k < n; k++) {
            wr->msgs[k].planned = false; /* the hook may have changed topic or properties */
        }
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