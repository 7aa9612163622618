/*
 * shmq-flusher: makes the CommitLog durable and writes the checkpoint.
 *
 * Started by shmqd as `shmq-flusher --store DIR` (worker skeleton,
 * worker.h); obeys SIGTERM/SIGINT (final flush, checkpoint, consumer
 * offsets, exit 0) and exits when the master dies.
 *
 * Owns: `flushed` in the control block, the flush latency histogram, the
 * `checkpoint` file, and the periodic save of config/consumerOffset.json.
 *
 *   ASYNC_FLUSH: every flushIntervalCommitLog ms, flush when at least
 *     flushCommitLogLeastPages pages are dirty (or a segment filled), and
 *     everything every flushCommitLogThoroughInterval ms.
 *   SYNC_FLUSH: group commit: sleep on flusher_wake until wrote > flushed,
 *     then flush everything written in one go and publish flushed, which
 *     wakes the producers waiting for it and the dispatcher.
 *
 * A flush that fails fences the store (fence.h): the last flushed offset
 * is recorded in <root>/fence-commitlog, fenced_error is set, flushed never
 * moves again (a failed msync is never retried and trusted, also not by a
 * restarted flusher), the writer refuses new entries, waiting producers get
 * SHMQ_E_FENCED, and the master stops the store; the next start cuts the
 * log at the recorded point (the page cache may show bytes the disk lacks).
 *
 * Checkpoint, every second when it changed: confirmPhyOffset a record
 * boundary at or below min(flushed, cq_flushed), the physic/logics
 * timestamps the store time of the last record below it, indexMsgTimestamp
 * the indexer's index.flushed_ts (when it runs).  The boundary and its time
 * are the dispatcher's checkpoint mark (ctl.h shmq_ctl_cq_mark_t: at or
 * below cq_flushed, with the time of the record before it, which the
 * dispatcher read): the newest mark read that flushed has reached, so that
 * no record is read here.  Under SYNC_FLUSH the dispatcher follows flushed
 * and every mark is below it; under ASYNC_FLUSH a mark past flushed waits
 * for a later flush and an older one is named meanwhile.  Consumer offsets:
 * every 5 s when a consumer committed, and at stop.
 *
 * Orderly stop (store state FINISHING): flush everything, wait until the
 * dispatcher has built and flushed every unit (dispatched == cq_flushed ==
 * wrote), write the final checkpoint and the consumer offsets, exit 0.
 *
 * Killed at any point: flushed only names bytes a flush covered; a new
 * flusher starts from the published value (and the published mark: the
 * checkpoint is only ever written with one whole mark at or below flushed).
 * The CommitLog is mapped read-only: opening a segment queue writable would
 * remove an empty trailing segment, which may be the one the writer is
 * creating right now.
 * Its files are opened O_RDWR all the same (SHMQ_MF_SYNCER): msync of a
 * mapping of a file opened read-only writes nothing back (PITFALLS 18).
 * msync(MS_SYNC) of a shared mapping writes back the range's dirty pages
 * whoever dirtied them, and waits for the device.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "format/commitlog.h"
#include "shm/ctl.h"
#include "shm/stats.h"
#include "base/probes.h"
#include "store/fence.h"
#include "shmq/errors.h"
#include "format/store_files.h"
#include "worker.h"

#define PAGE           4096
#define CHECKPOINT_MS  1000
#define OFFSETS_MS     5000
#define IDLE_MAX_MS    1000
#define OPEN_TRIES     50 /* a segment being created: retry the open */
#define FINISH_WAIT_MS 100

typedef struct flusher {
    shmq_commitlog_t cl;
    char root[PATH_MAX];
    bool sync;
    bool fenced;
    int64_t flushed;       /* what this process published (it alone writes it) */
    uint64_t stamp;        /* the writer's next append stamp to take (stats.h) */
    int64_t next_flush;    /* ASYNC: next flush (monotonic ms) */
    int64_t next_thorough; /* ASYNC: next flush of everything */
    int64_t next_cp;
    int64_t next_offsets;
    shmq_checkpoint_t cp; /* as last written (or read at start) */
    shmq_marks_t marks;   /* the dispatcher's marks read, not yet below the checkpoint */
    uint64_t cp_turns;    /* checkpoint turns of this process (a log line at exit) */
    uint64_t cp_past;     /* ...in which the newest mark read was past flushed */
    bool cp_warned;
    uint64_t clean_seen; /* cleaner: its deleted_seq when we last dropped removed segments */
} flusher_t;

static flusher_t the_flusher;

static uint32_t store_state(const shmq_worker_t *w)
{
    /* acquire: pairs with the master's release store of the state */
    return atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
}

/* ---- flush ------------------------------------------------------------------------ */

static void fence(shmq_worker_t *w, flusher_t *f, int rc)
{
    shmq_ctl_block_t *b = w->ctl.blk;
    f->fenced = true;
    char what[512];
    const char *d = shmq_error_detail();
    snprintf(what, sizeof(what), "%s", d[0] ? d : shmq_strerror(rc));
    /* The fence point first, durably: the next start cuts the log there (fence.h). */
    int frc = shmq_fence_record(f->root, SHMQ_FENCE_COMMITLOG, f->flushed, rc);
    if (frc < 0) {
        d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot record the fence point: %s (the master tries again)",
                 d[0] ? d : shmq_strerror(frc));
    }
    /* relaxed: statistics */
    atomic_fetch_add_explicit(&b->counters.flush_errors, 1, memory_order_relaxed);
    shmq_ctl_fence(b, SHMQ_FENCE_COMMITLOG, rc);
    SHMQ_PROBE(flush_error, f->flushed, rc);
    shmq_log(SHMQ_LOG_ERROR,
             "CommitLog flush failed at %lld: %s; the store is fenced: no write is acknowledged "
             "past %lld, and the next start cuts the log there",
             (long long)f->flushed, what, (long long)f->flushed);
}

/* The segment holding pos, mapping segments the writer created since the last look. */
static shmq_mapped_file_t *segment_at(flusher_t *f, int64_t pos)
{
    shmq_mapped_file_t *mf = shmq_mfq_find(&f->cl.q, pos);
    if (!mf && shmq_mfq_refresh(&f->cl.q) >= 0) {
        mf = shmq_mfq_find(&f->cl.q, pos);
    }
    return mf;
}

/*
 * Flush [flushed, wrote) when least_pages (0: always) pages are dirty or a
 * segment filled up, as shmq_commitlog_flush does, and publish the new
 * flushed.  Returns the bytes flushed, or a negative error (fenced unless
 * it was a missing segment).
 */
static int64_t flush_to(shmq_worker_t *w, flusher_t *f, int64_t wrote, int least_pages)
{
    if (f->fenced || wrote <= f->flushed) {
        return 0;
    }
    int64_t seg = (int64_t)f->cl.q.seg_size;
    if (least_pages > 0) {
        int64_t seg_end = f->flushed - f->flushed % seg + seg;
        if (wrote < seg_end && wrote / PAGE - f->flushed / PAGE < least_pages) {
            return 0;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t pos = f->flushed;
    while (pos < wrote) {
        shmq_mapped_file_t *mf = segment_at(f, pos);
        if (!mf) {
            if (pos < shmq_mfq_min_offset(&f->cl.q)) {
                pos = shmq_mfq_min_offset(&f->cl.q); /* removed by cleaning: nothing to flush */
                continue;
            }
            return shmq_error_set(SHMQ_E_RANGE, "commitlog %s: no segment holds offset %lld",
                                  f->cl.q.dir, (long long)pos);
        }
        int64_t end = mf->start_offset + seg;
        if (end > wrote) {
            end = wrote;
        }
        int rc = shmq_mf_flush(mf, (size_t)(pos - mf->start_offset),
                               (size_t)(end - mf->start_offset), f->cl.flush_how);
        if (rc < 0) {
            fence(w, f, rc);
            return rc;
        }
        pos = end;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t bytes = wrote - f->flushed;
    int64_t from = f->flushed;
    f->flushed = wrote;
    shmq_ctl_block_t *b = w->ctl.blk;
    /* release (inside publish): the bytes below are on disk before anyone acts on it */
    shmq_ctl_publish(&b->flushed, wrote);
    /* Producers waiting for a SYNC_FLUSH sleep on the wake-up object (clients cannot
     * register on flushed in the read-only control block).  The publish's fence orders
     * flushed before these looks too. */
    shmq_ctl_wake_also(&w->ctl.wake->flushed_wake);
    if (f->sync) {
        shmq_ctl_wake_also(&b->dispatcher_wake); /* SYNC_FLUSH: the dispatcher follows flushed */
    }
    uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    shmq_hist_add(&b->counters.flush_latency, &shmq_hist_flush, (int64_t)ns, 1);
    shmq_stamps_take_inline(&b->stamps, &f->stamp, wrote, &b->counters.append_flush,
                            &shmq_hist_stage);
    SHMQ_PROBE(flush, from, wrote, ns);
    return bytes;
}

/* ---- checkpoint ---------------------------------------------------------------------- */

/*
 * Write the checkpoint when the mark it can name moved (or force): the
 * newest of the dispatcher's marks read so far at or below min(flushed,
 * cq_flushed).
 */
static void checkpoint(shmq_worker_t *w, flusher_t *f, bool force)
{
    int64_t mpos, mts;
    if (shmq_ctl_cq_mark_read(&w->ctl.blk->cq_mark, &mpos, &mts) == 0 && mts > 0) {
        shmq_marks_add(&f->marks, mpos, mts);
    }
    /* The dispatcher publishes a mark before the cq_flushed it lies below: a mark read
     * before its cq_flushed waits for the next turn. */
    int64_t cq_flushed = shmq_ctl_load(&w->ctl.blk->cq_flushed);
    int64_t upto = f->flushed < cq_flushed ? f->flushed : cq_flushed;
    f->cp_turns++;
    f->cp_past += f->marks.has_last && f->marks.last_pos > upto;
    int64_t confirm, ts;
    if (!shmq_marks_take(&f->marks, upto, &confirm, &ts)) {
        return; /* no mark at or below min(flushed, cq_flushed) yet */
    }
    if (confirm < f->cp.confirm_phys || (confirm == f->cp.confirm_phys && !force)) {
        return;
    }
    shmq_checkpoint_t cp = f->cp;
    cp.confirm_phys = confirm;
    cp.physic_msg_ts = ts;
    cp.logics_msg_ts = ts;
    /* indexer: the index time its msyncs cover (0: no indexer yet: keep the file's value).
     * acquire: pairs with the indexer's release after its msync. */
    int64_t index_ts = atomic_load_explicit(&w->ctl.blk->index.flushed_ts, memory_order_acquire);
    if (index_ts > 0) {
        cp.index_msg_ts = index_ts;
    }
    int rc = shmq_checkpoint_write(f->root, &cp);
    if (rc < 0) {
        if (!f->cp_warned) {
            const char *d = shmq_error_detail();
            shmq_log(SHMQ_LOG_WARN, "cannot write the checkpoint: %s",
                     d[0] ? d : shmq_strerror(rc));
            f->cp_warned = true;
        }
        return;
    }
    f->cp_warned = false;
    f->cp = cp;
}

static void save_offsets(shmq_worker_t *w, bool always)
{
    shmq_ctl_cons_t *c = w->ctl.cons;
    /* acq_rel: offsets committed before the flag was set are in what we save */
    uint32_t dirty = atomic_exchange_explicit(&c->offsets_dirty, 0, memory_order_acq_rel);
    if (!dirty && !always) {
        return;
    }
    shmq_error_clear();
    int rc = shmq_ctl_offsets_save(&w->ctl);
    if (rc < 0) {
        atomic_store_explicit(&c->offsets_dirty, 1, memory_order_relaxed); /* try again later */
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_WARN, "cannot save the consumer offsets: %s",
                 d[0] ? d : shmq_strerror(rc));
    }
}

/* ---- worker ops ------------------------------------------------------------------------ */

static int flusher_init(shmq_worker_t *w, void **state)
{
    flusher_t *f = &the_flusher;
    const shmq_config_t *cfg = w->cfg;
    memset(f, 0, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "%s", w->ctl.root);
    f->sync = cfg->flush_disk_type == SHMQ_SYNC_FLUSH;
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(cfg, dir, sizeof(dir));
    int rc = SHMQ_E_SEGMENT;
    for (int i = 0; i < OPEN_TRIES && rc == SHMQ_E_SEGMENT; i++) {
        shmq_error_clear();
        rc = shmq_commitlog_open(&f->cl, dir, (size_t)cfg->mapped_file_size_commit_log,
                                 SHMQ_MF_READONLY | SHMQ_MF_SYNCER);
        if (rc == SHMQ_E_SEGMENT) {
            usleep(20 * 1000); /* the writer is creating the last segment */
        }
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot open the CommitLog in %s: %s", dir,
                 d[0] ? d : shmq_strerror(rc));
        return SHMQ_EXIT_ERROR;
    }
    shmq_ctl_block_t *b = w->ctl.blk;
    f->flushed = shmq_ctl_load(&b->flushed);
    f->stamp = shmq_stamps_now(&b->stamps);
    /* acquire: pairs with the release store of a fencing flusher */
    int fenced = atomic_load_explicit(&b->fenced_error, memory_order_acquire);
    if (fenced) {
        f->fenced = true;
        shmq_log(SHMQ_LOG_WARN, "the store is fenced (%s): no flush until it is recovered",
                 shmq_strerror(fenced));
    }
    rc = shmq_checkpoint_read(f->root, &f->cp);
    if (rc < 0) {
        memset(&f->cp, 0, sizeof(f->cp));
    }
    shmq_marks_init(&f->marks);
    int64_t now = shmq_mono_ms();
    f->next_flush = now;
    f->next_thorough = now + cfg->flush_commit_log_thorough_interval;
    f->next_cp = now + CHECKPOINT_MS;
    f->next_offsets = now + OFFSETS_MS;
    shmq_log(SHMQ_LOG_INFO, "%s, flushed at %lld",
             f->sync ? "SYNC_FLUSH (group commit)" : "ASYNC_FLUSH", (long long)f->flushed);
    *state = f;
    return 0;
}

static int64_t flusher_work(shmq_worker_t *w, void *state)
{
    flusher_t *f = state;
    const shmq_config_t *cfg = w->cfg;
    /* cleaner: unmap the segments it deleted (their space returns only then). */
    if (shmq_clean_changed(&w->ctl, &f->clean_seen)) {
        shmq_clean_drop_removed(&f->cl.q);
    }
    int64_t now = w->mono_ms; /* the loop turn's clock, read just before */
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    bool finishing = store_state(w) == SHMQ_STATE_FINISHING;
    int64_t done = 0;
    if (f->sync || finishing) {
        done = flush_to(w, f, wrote, 0);
    } else if (now >= f->next_flush) {
        int least = cfg->flush_commit_log_least_pages;
        if (now >= f->next_thorough) {
            least = 0;
            f->next_thorough = now + cfg->flush_commit_log_thorough_interval;
        }
        done = flush_to(w, f, wrote, least);
        f->next_flush =
            now + (cfg->flush_interval_commit_log > 0 ? cfg->flush_interval_commit_log : 1);
    }
    if (done < 0) {
        /* A fence keeps the flusher running (checkpoints stay truthful); other errors restart it.
         */
        return f->fenced ? 0 : done;
    }
    if (now >= f->next_cp) {
        checkpoint(w, f, false);
        f->next_cp = now + CHECKPOINT_MS;
    }
    if (now >= f->next_offsets) {
        save_offsets(w, false);
        f->next_offsets = now + OFFSETS_MS;
    }
    /* Flushed up to what it saw written: idle comes next, not a call that would find
     * nothing (idle looks at wrote again, after registering as a sleeper, in SYNC_FLUSH). */
    w->took_all = done > 0;
    return done;
}

/* Sleep predicates: true means "do not sleep, there is work". */
static bool stop_requested(void *arg)
{
    shmq_worker_t *w = arg;
    return w->stop;
}

static bool sync_ready(void *arg)
{
    shmq_worker_t *w = arg;
    return w->stop || shmq_ctl_load(&w->ctl.blk->wrote) > the_flusher.flushed ||
           store_state(w) == SHMQ_STATE_FINISHING;
}

/* A stop signal that came just before the sleep, or the orderly stop's last phase. */
static bool finishing(void *arg)
{
    shmq_worker_t *w = arg;
    return w->stop || store_state(w) == SHMQ_STATE_FINISHING;
}

static void flusher_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    flusher_t *f = state;
    shmq_ctl_block_t *b = w->ctl.blk;
    (void)timeout_ms; /* this role keeps its own timers */
    if (store_state(w) == SHMQ_STATE_FINISHING) {
        /* Waiting for the dispatcher: its last units, then its last ConsumeQueue flush. */
        int64_t wrote = shmq_ctl_load(&b->wrote);
        if (shmq_ctl_load(&b->dispatched) < wrote) {
            shmq_ctl_wait_pos(&b->dispatched, wrote, FINISH_WAIT_MS);
        } else if (shmq_ctl_load(&b->cq_flushed) < wrote) {
            shmq_ctl_wait_pos(&b->cq_flushed, wrote, FINISH_WAIT_MS);
        } else {
            shmq_ctl_sleep(&b->flusher_wake, stop_requested, w, FINISH_WAIT_MS);
        }
        return;
    }
    int64_t now = shmq_mono_ms();
    int64_t due = f->next_cp < f->next_offsets ? f->next_cp : f->next_offsets;
    if (!f->sync && !f->fenced && shmq_ctl_load(&b->wrote) > f->flushed && f->next_flush < due) {
        due = f->next_flush;
    }
    int64_t t = due - now;
    if (t < 1) {
        t = 1;
    }
    if (t > IDLE_MAX_MS) {
        t = IDLE_MAX_MS;
    }
    if (f->sync && !f->fenced) {
        shmq_ctl_sleep(&b->flusher_wake, sync_ready, w, (int)t);
    } else {
        shmq_ctl_sleep(&b->flusher_wake, finishing, w, (int)t);
    }
}

static bool flusher_done(shmq_worker_t *w, void *state)
{
    flusher_t *f = state;
    shmq_ctl_block_t *b = w->ctl.blk;
    if (store_state(w) != SHMQ_STATE_FINISHING) {
        return false;
    }
    int64_t wrote = shmq_ctl_load(&b->wrote);
    if (f->fenced) {
        return true; /* nothing more can be made durable */
    }
    return f->flushed == wrote && shmq_ctl_load(&b->dispatched) == wrote &&
           shmq_ctl_load(&b->cq_flushed) == wrote;
}

static int flusher_finish(shmq_worker_t *w, void *state)
{
    flusher_t *f = state;
    int code = SHMQ_EXIT_OK;
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    if (flush_to(w, f, wrote, 0) < 0) {
        code = SHMQ_EXIT_ERROR;
    }
    checkpoint(w, f, false);
    save_offsets(w, true);
    shmq_log(SHMQ_LOG_INFO,
             "flushed %lld, checkpoint at %lld; in %llu of %llu checkpoint turns the "
             "dispatcher's newest mark was past min(flushed, cq_flushed) (an older one was "
             "named)",
             (long long)f->flushed, (long long)f->cp.confirm_phys, (unsigned long long)f->cp_past,
             (unsigned long long)f->cp_turns);
    shmq_commitlog_close(&f->cl);
    return code;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = flusher_init,
        .work = flusher_work,
        .idle = flusher_idle,
        .finish = flusher_finish,
        .done = flusher_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_FLUSHER, &ops);
}
