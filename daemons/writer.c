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
 * messages_in / bytes_in counters, the per-topic counts (topic_counts),
 * the send latency histogram and the refusal counters (rejects: bad
 * input; refused_disk_full, refused_fenced, refused_not_master,
 * append_errors: entries the store could not take); it creates topics when
 * autoCreateTopicEnable allows (under the topic lock, saving topics.json).  Before each batch it
 * takes a `shmqctl topic delete` request (ctl.h topic_del): the topic's
 * next_offsets back to 0, the cut published (wr_topic_deleted).
 *
 * A refused entry is answered with its status and the text of its own
 * error (the error detail is cleared before each entry, so no text of an
 * earlier one can come along).
 *
 * One batch (work(); set up only once a ring shows published entries, so a
 * call that finds nothing costs a look at each serviced ring's tail):
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
#include "shm/stats.h"
#include "shmq/errors.h"
#include "store/store.h"
#include "format/store_files.h"
#include "worker.h"
#include "writer.h"

/* ---- helpers ------------------------------------------------------------------------ */

void wr_log(writer_t *wr, enum shmq_log_level level, const char *fmt, ...)
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
shmq_ring_shm_t *wr_ring_at(writer_t *wr, uint32_t i)
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
            wr_log(wr, SHMQ_LOG_WARN, "ring %u (pid %d): not served: %s", i,
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

/* A tail of ring i behind our head: nothing to take; logged once per value. */
void wr_tail_behind(writer_t *wr, uint32_t i, uint64_t head, uint64_t tail)
{
    wr->tail_warned[i] = tail + 1;
    wr_log(wr, SHMQ_LOG_WARN, "ring %u (pid %d): tail %llu behind the writer's head %llu: ignored",
           i, (int)atomic_load_explicit(&wr->blk->rings[i].owner_pid, memory_order_relaxed),
           (unsigned long long)tail, (unsigned long long)head);
}

/*
 * Step (1), once per batch and only for a batch that takes something: where
 * the batch starts (a restart scans from here), the batch's counters, and
 * the store's state its entries are judged against.
 */
/* The batch's clock read: its store time, and (batch_ns) its append stamp and the end of its
 * send latencies. */
static void batch_clock(writer_t *wr)
{
    wr->batch_ns = shmq_now_ns();
    wr->store_ts = wr->batch_ns / 1000000;
}

static void batch_open(writer_t *wr)
{
    wr->batch_open = true;
    /* (1) Where this batch starts: a restart scans from here. */
    atomic_store_explicit(&wr->blk->writer_journal, wr->cl.wrote_pos, memory_order_release);
    wr->ndirty = 0;
    if (wr->nqueues > WR_QUEUE_CACHE) {
        wr->nqueues = 0; /* all clean between batches: start the cache again */
    }
    wr->msgs_in = wr->bytes_in = 0;
    /* One store time for the records of a ring's entries, read here and again for each
     * further ring the batch takes from (take_ring), instead of once per unit.  RocketMQ
     * takes each message's time at its append; the entries of one ring up to the tail
     * read are published before this time and taken within microseconds, so stored times
     * differ from that only within the millisecond per-unit reads would mostly have
     * shared.  Times still never go back (shmq_commitlog_append_plans raises one below
     * the last).  The same read serves as the batch's append stamp and the end of its send
     * latencies (batch_finish). */
    batch_clock(wr);
    wr->rejects = wr->refused_disk_full = wr->refused_fenced = wr->append_errors = 0;
    /* Acquire: the flusher's error is set before anything depends on it. */
    wr->fenced = atomic_load_explicit(&wr->blk->fenced_error, memory_order_acquire) != 0;
    /* cleaner: the disk watermark (acquire: pairs with the cleaner's release). */
    wr->disk_full = atomic_load_explicit(&wr->blk->cleaner.disk_full, memory_order_acquire);
    wr->refused_not_master = 0;
    if (wr->cfg->enable_controller_mode) {
        /* The ctrl-agent's lease (ctl.h): one clock read a batch.  Relaxed: a deadline, no
         * data is read under it. */
        int64_t until =
            atomic_load_explicit(&wr->blk->controller.lease_until_ms, memory_order_relaxed);
        int64_t now = shmq_mono_ms();
        wr->not_master = now >= until;
        wr->not_master_ms = until > 0 ? now - until : -1;
    }
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
}

/* Ring i's head moves to head at step (5) of this batch. */
static void ring_moved(writer_t *wr, uint32_t i, uint64_t head)
{
    wr->heads[i] = head;
    if (!wr->moved[i]) {
        wr->moved[i] = true;
        wr->moved_list[wr->nmoved++] = i;
    }
}

static void take_ring(writer_t *wr, uint32_t i)
{
    shmq_ctl_ring_t *r = &wr->blk->rings[i];
    /* Mapped already for the registration the table names (the caller saw it serviced),
     * or mapped (again) now. */
    const shmq_ring_map_t *m = &wr->maps[i];
    if (!(m->r != NULL && m->claims == atomic_load_explicit(&r->claims, memory_order_relaxed)) &&
        wr_ring_at(wr, i) == NULL) {
        return;
    }
    /* Relaxed: head is ours (the table's copy, never the producer's). */
    uint64_t head =
        wr->moved[i] ? wr->heads[i] : atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail;
    int trc = wr_ring_tail(wr, i, head, &tail);
    if (trc < 0 || (trc == 0 && tail == head)) {
        return;
    }
    if (!wr->batch_open) {
        batch_open(wr);
    } else {
        /* The entries up to this tail were published after the batch's time was read:
         * stored times are never before a message was sent (a retry's delay counts from
         * its send-back).  Once per ring a batch takes from, not per unit. */
        batch_clock(wr);
    }
    if (trc > 0) {
        wr_log(wr, SHMQ_LOG_WARN,
               "ring %u: tail %llu is more than the ring ahead of head %llu: discarding the "
               "published region",
               i, (unsigned long long)tail, (unsigned long long)head);
        wr->discard[i] = true;
        wr->rejects++;
        ring_moved(wr, i, tail);
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
        /* The usual units in a run of their own (none while a restart's skips remain, whose
         * positions take_skip() must see one by one). */
        adv = wr->nskips ? 0 : wr_take_plain(wr, i, head, tail);
        if (adv > 0) {
            head += adv;
            wr->bytes += (int64_t)adv;
            continue;
        }
        int rc = wr_take_unit(wr, i, head, tail, false, &adv);
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
        ring_moved(wr, i, head);
    }
}

/*
 * Look at the whole ring table: which rings are serviced, and where the
 * part a batch looks at ends (after the last serviced ring and the lowest
 * FREE one; the whole table when none is FREE).
 */
static void rings_rescan(writer_t *wr)
{
    uint64_t serviced = 0;
    uint32_t end = 0;
    bool free_seen = false;
    for (uint32_t i = 0; i < wr->ring_count; i++) {
        /* Acquire: pairs with the master's release of the state. */
        uint32_t st = atomic_load_explicit(&wr->blk->rings[i].state, memory_order_acquire);
        if (ring_serviced(st)) {
            serviced |= 1ULL << i;
            end = i + 1;
        } else if (st == SHMQ_RING_FREE && !free_seen) {
            free_seen = true;
            end = end > i + 1 ? end : i + 1;
        }
    }
    wr->serviced = serviced;
    wr->scan_end = free_seen ? end : wr->ring_count;
    wr->rescan = false;
    wr->since_scan = 0;
}

/* Ring i (below scan_end) is serviced: a new one makes the next batch look at the whole table. */
static inline void note_serviced(writer_t *wr, uint32_t i)
{
    if (!(wr->serviced & (1ULL << i))) {
        wr->rescan = true;
    }
}

static void batch_finish(writer_t *wr)
{
    if (wr->tc_entry != NULL) {
        wr_topic_counts_flush(wr); /* the stored messages' topic counts (one store per topic) */
    }
    crash_point(wr, "appended");
    /* No clock read of its own: the batch's append stamp (put before the records are
     * published, so that a stage that reaches them finds it) and the end of the send latencies
     * at (5) are the time the last ring's store time was read from, before its appends (the
     * microseconds they take count in the next stage's lag, not in the send latency). */
    int64_t now_ns = wr->msgs_in > 0 ? wr->batch_ns : 0;
    if (wr->msgs_in > 0 &&
        (now_ns - wr->stamp_ns >= SHMQ_STAMP_EVERY_NS || now_ns < wr->stamp_ns)) {
        shmq_stamp_put(&wr->blk->stamps, wr->cl.wrote_pos, now_ns, wr->msgs_in);
        wr->stamp_ns = now_ns;
    }
    /* (3) The records are complete: publish them. */
    if (wr->cl.wrote_pos != wr->published) {
        shmq_ctl_publish(&wr->blk->wrote, wr->cl.wrote_pos);
        wr->published = wr->cl.wrote_pos;
    }
    crash_point(wr, "published");
    /* (4) Then the queue offsets that name them (never ahead of wrote). */
    for (size_t k = 0; k < wr->ndirty; k++) {
        wr_queue_t *e = &wr->queues[wr->dirty[k]];
        /* Release: pairs with readers that then read records below wrote. */
        atomic_store_explicit(&e->q->next_offset, e->next, memory_order_release);
        e->dirty = false;
    }
    wr->ndirty = 0;
    crash_point(wr, "offsets");
    /* (5) Answers, then the heads (space for the producers).  The send latency: the
     * batch's clock read, one bucket per stored unit, count and sum once per batch
     * (stats.h).  Units born in the same millisecond have the same latency: their
     * bucket is found once and their weights added to it together. */
    shmq_ctl_hist_t *lat = &wr->blk->counters.send_latency;
    uint64_t lat_count = 0, lat_sum = 0, lat_run = 0;
    int64_t run_ts = 0, run_ns = 0; /* run_ts 0: no run (a counted born_ts is > 0) */
    int run_bucket = 0;
    for (size_t k = 0; k < wr->ndone; k++) {
        const wr_done_t *d = &wr->done[k];
        wr_complete_slot(wr, d);
        if (d->born_ts > 0 && d->born_ts < INT64_MAX / 1000000) { /* a producer's word */
            if (d->born_ts != run_ts) {
                if (lat_run > 0) { /* the run before: its bucket, count and sum at once */
                    shmq_hist_add_bucket(lat, run_bucket, lat_run);
                    lat_count += lat_run;
                    lat_sum += (uint64_t)run_ns * lat_run;
                }
                run_ts = d->born_ts;
                run_ns = now_ns - d->born_ts * 1000000;
                run_ns = run_ns > 0 ? run_ns : 0;
                run_bucket = shmq_hist_bucket(&shmq_hist_send, run_ns);
                lat_run = 0;
            }
            lat_run += (uint64_t)d->res.count;
        }
    }
    if (lat_run > 0) {
        shmq_hist_add_bucket(lat, run_bucket, lat_run);
        lat_count += lat_run;
        lat_sum += (uint64_t)run_ns * lat_run;
    }
    if (lat_count > 0) {
        shmq_hist_add_total(lat, lat_count, lat_sum);
    }
    crash_point(wr, "answered");
    for (uint32_t k = 0; k < wr->nmoved; k++) {
        uint32_t i = wr->moved_list[k];
        bool discard = wr->discard[i];
        wr->moved[i] = wr->discard[i] = false; /* for the next batch */
        shmq_ring_shm_t *r = wr->maps[i].r;
        if (r == NULL) {
            continue;
        }
        if (discard) {
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
    wr->nmoved = 0;
    atomic_fetch_add_explicit(&wr->blk->counters.messages_in, wr->msgs_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&wr->blk->counters.bytes_in, wr->bytes_in, memory_order_relaxed);
    if (wr->rejects | wr->refused_disk_full | wr->refused_fenced | wr->append_errors |
        wr->refused_not_master) {
        shmq_ctl_counters_t *c = &wr->blk->counters;
        atomic_fetch_add_explicit(&c->rejects, wr->rejects, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->refused_not_master, wr->refused_not_master,
                                  memory_order_relaxed);
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
    for (uint32_t i = 0; i < wr->scan_end; i++) {
        shmq_ctl_ring_t *t = &wr->blk->rings[i];
        if (atomic_load_explicit(&t->state, memory_order_acquire) != SHMQ_RING_ORPHANED) {
            continue;
        }
        uint64_t tail = 0;
        uint64_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
        if (wr_ring_at(wr, i) != NULL &&
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

/*
 * One pass over the serviced rings: a ring with published entries opens
 * the batch (step (1)) and is taken; rings with nothing cost a look at
 * their tail, and a call that finds nothing anywhere sets nothing up.
 */
static int64_t writer_work(shmq_worker_t *w, void *arg)
{
    writer_t *wr = arg;
    /* shmqctl topic delete (acquire: the topic was marked deleted before the request). */
    uint64_t del = atomic_load_explicit(&wr->blk->topic_del.request, memory_order_acquire);
    if (del != wr->del_seen) {
        wr_topic_deleted(wr, del);
    }
    if (wr->rescan || ++wr->since_scan >= WR_RESCAN_CALLS) {
        rings_rescan(wr);
    }
    /* cleaner: unmap the segments it deleted, whose space returns only once no process
     * maps them. */
    if (shmq_clean_changed(wr->ctl, &wr->clean_seen)) {
        shmq_clean_drop_removed(&wr->cl.q);
    }
    wr->batch_open = false;
    wr->entries = 0;
    wr->bytes = 0;
    wr->ndone = 0;
    bool orphans = false;
    uint32_t end = wr->scan_end;
    uint32_t rr = wr->rr < end ? wr->rr : 0;
    shmq_ctl_ring_t *rings = wr->blk->rings; /* loaded once, not after each take_ring */
    for (uint32_t k = 0, i = rr; k < end; k++, i = i + 1 < end ? i + 1 : 0) {
        /* Acquire: pairs with the master's release of the state. */
        uint32_t st = atomic_load_explicit(&rings[i].state, memory_order_acquire);
        if (!ring_serviced(st)) {
            continue;
        }
        note_serviced(wr, i);
        orphans |= st == SHMQ_RING_ORPHANED;
        take_ring(wr, i);
        if (wr->batch_open && (wr->entries >= WR_BATCH_ENTRIES || wr->bytes >= WR_BATCH_BYTES ||
                               wr->ndone >= WR_COMPLETIONS)) {
            break; /* the batch is full */
        }
    }
    wr->rr = rr + 1 < end ? rr + 1 : 0;
    bool any = wr->nmoved > 0;
    if (any) {
        batch_finish(wr);
    }
    if (orphans) {
        /* After the batch: an orphan it emptied is given back now. */
        int given = drain_orphans(wr);
        if (given > 0) {
            shmq_log(SHMQ_LOG_INFO, "%d orphaned ring(s) drained: given back to the master", given);
        }
    }
    if (!any) {
        wr->empty++;
        return 0;
    }
    /* Every ring taken up to the tail it showed: the next call would most likely find
     * nothing, so idle comes next (its first look is the one that call would make). */
    bool full = wr->entries >= WR_BATCH_ENTRIES || wr->bytes >= WR_BATCH_BYTES ||
                wr->ndone >= WR_COMPLETIONS;
    w->took_all = !full;
    wr->empty = full ? 0 : 1; /* idle: right after a batch */
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
    for (uint32_t i = 0; i < wr->scan_end; i++) {
        shmq_ctl_ring_t *t = &wr->blk->rings[i];
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (!ring_serviced(st)) {
            continue;
        }
        if (!(wr->serviced & (1ULL << i))) {
            wr->rescan = true; /* a new ring */
            return true;
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
        if (rc < 0 && wr->tail_warned[i] != tail + 1) {
            return true; /* a tail behind our head, to be logged (once) */
        }
        if (st == SHMQ_RING_ORPHANED && tail == head) {
            return true; /* to be given back */
        }
    }
    return false;
}

/*
 * Nothing to take.  Right after a batch that took entries (dense traffic)
 * spin a while first: a spin is cheaper than a futex wake (~27 us, and a
 * system call for the producer).  The spin adapts: it doubles when it (or
 * a sleep shorter than WR_SPIN_NS) found entries, halves down to none after
 * a spin that found nothing and after a longer sleep, and never outlasts WR_SPIN_NS.  Then sleep on
 * the writer's futex: an idle writer sleeps.
 */
static void writer_idle(shmq_worker_t *w, void *arg, int timeout_ms)
{
    writer_t *wr = arg;
    if (wr->empty == 1 && wr->spin > 0) {
        int64_t until = shmq_mono_ns() + WR_SPIN_NS;
        for (uint32_t i = 1; i <= wr->spin; i++) {
            if (rings_pending(wr) || w->stop) {
                wr->spin = wr->spin * 2 < WR_SPIN_MAX ? wr->spin * 2 : WR_SPIN_MAX;
                return;
            }
            if ((i & 63) == 0 && shmq_mono_ns() > until) {
                break;
            }
            shmq_cpu_relax();
        }
        wr->spin /= 2; /* nothing came: entries do not keep coming */
    }
    int64_t t0 = shmq_mono_ns();
    int ready = shmq_ctl_sleep(&wr->ctl->wake->writer_wake, rings_pending, wr, timeout_ms);
    int64_t slept = shmq_mono_ns() - t0;
    if (!ready && slept < WR_SPIN_NS) {
        /* Woken soon after: a (longer) spin would have found the entries. */
        uint32_t more = wr->spin ? wr->spin * 2 : WR_SPIN_FIRST;
        wr->spin = more < WR_SPIN_MAX ? more : WR_SPIN_MAX;
    } else if (!ready) {
        wr->spin /= 2;
    }
    if (slept >= (int64_t)WR_RESCAN_SLEPT_MS * 1000000) {
        wr->rescan = true; /* quiet for a while: look at the whole ring table again */
    }
}

static bool writer_done(shmq_worker_t *w, void *arg)
{
    /* Acquire: pairs with the master's release store of the state. */
    uint32_t st = atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
    if (st != SHMQ_STATE_DRAINING && st != SHMQ_STATE_FINISHING && st != SHMQ_STATE_STOPPED) {
        return false;
    }
    rings_rescan(arg); /* every ring, not only the part a batch looks at */
    if (rings_pending(arg)) {
        return false;
    }
    shmq_log(SHMQ_LOG_INFO, "every ring drained at %lld: done",
             (long long)((writer_t *)arg)->published);
    return true;
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
    free(wr->plans);
    free(wr->queues);
    free(wr->dirty);
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
    /* A request not taken before a kill is taken again (its steps can be repeated). */
    wr->del_seen = atomic_load_explicit(&wr->blk->topic_del.writer_seen, memory_order_acquire);
    wr->lim.max_body = wr->cfg->max_message_size;
    wr->lim.max_topic_len = wr->cfg->max_topic_length;
    wr->lim.body_in_ring = true; /* encoded straight from the ring (read once) */
    wr->lim.topic_memo = &wr->topic_memo;
    wr->unit_max = (int64_t)wr->cfg->max_message_size + SHMQ_RING_UNIT_SLACK;
    /* One batch: < 1 MiB of entries plus one unit; records are at most ~1.5x their
     * entries, plus segment-closing blanks. */
    wr->repair_bound = 2 * (WR_BATCH_BYTES + 2 * wr->unit_max);
    wr->buf_cap = wr->ring_size;
    wr->buf = malloc(wr->buf_cap);
    if (wr->buf == NULL || wr->ring_count == 0 || wr_unit_room(wr, 16) < 0) {
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
    flags |= shmq_commitlog_flush_flags(wr->cfg->flush_disk_type == SHMQ_SYNC_FLUSH);
    if (wr->cfg->flush_disk_type == SHMQ_SYNC_FLUSH) {
        /* Each group commit writes back only the blocks its records went to (commitlog.h,
         * "Staged appends"). */
        flags |= SHMQ_MF_STAGED;
    }
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
    wr->lim.store_host_v6 = host.is_v6; /* decode plans each record with this host */
    int64_t wrote = shmq_ctl_load(&wr->blk->wrote);
    shmq_commitlog_set_positions(&wr->cl, wrote, shmq_ctl_load(&wr->blk->flushed));
    wr->published = wrote;
    wr->spin = WR_SPIN_FIRST;
    rings_rescan(wr);
    crash_point(wr, "repair");
    rc = wr_repair(wr);
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