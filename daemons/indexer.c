/*
 * shmq-indexer: builds the IndexFiles (RocketMQ's IndexService) from the
 * CommitLog: one entry per message for its UNIQ_KEY and for each token of
 * its KEYS, keyed "topic#key", in <root>/index (libshm/store/index_service.h).
 *
 * Started by shmqd as `shmq-indexer --store DIR` on the worker skeleton
 * (worker.h) when messageIndexEnable is true.  It follows `wrote`
 * (ASYNC_FLUSH) or `flushed` (SYNC_FLUSH) from a position of its own,
 * sleeping on dispatcher_wake (which the writer, or the flusher, wakes after
 * publishing that position) when there is nothing new; after
 * each batch it publishes `indexed` (every message below it has all its
 * entries).  Off the path of a message to its consumer, it paces itself:
 * after a turn that indexed records and took all there was, it pauses
 * INDEXER_PACE_US before it looks again (a steady stream is taken in
 * batches some 500 times a second, not one wake per writer batch: each wake
 * is a futex wait and a context switch); a backlog goes on without pauses.
 * When a file has filled (it looks once a second), and at the stop, it
 * msyncs the files and publishes index.flushed_ts, which the flusher writes
 * into the checkpoint's indexMsgTimestamp (RocketMQ flushes an index file
 * when it is full: the newest one is rebuilt after a host crash anyway).
 *
 * Owns: position `indexed`, the control block's index section, the files
 * under <root>/index (the cleaner deletes old ones).
 *
 * Signals: SIGTERM/SIGINT flush the files and exit 0.  FINISHING (orderly
 * stop): index to the end, flush, exit 0.
 *
 * Killed at any instruction, it loses and repeats nothing: its durable
 * state is the index files themselves.  A new indexer repairs the newest
 * file (an entry written but not counted is undone), then checks the
 * newest indexed message against its record: complete, it resumes after
 * it; partly indexed, its entries are removed and it is indexed again
 * (shmq_index_resume).  An msync that fails is not retried: flushed_ts
 * stays where it was for the rest of the run and the indexer exits 1 at
 * the stop, so the stop is unclean and the next start rebuilds the files
 * the checkpoint does not cover.
 *
 * Crash tests: with SHMQ_TEST_CRASH_DIR set, the indexer kills itself
 * (SIGKILL) at a step of a put when the file <dir>/indexer-<step> exists
 * (removing it first): entry (entry written, slot not set), slot (slot set,
 * header not), header (indexCount not yet), key (a message's UNIQ_KEY
 * indexed, its KEYS not yet).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/commitlog.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "shm/ctl.h"
#include "store/fence.h"
#include "store/index_service.h"
#include "shmq/errors.h"
#include "worker.h"

#define INDEX_MAX_RECORDS 4096
#define INDEX_MAX_BYTES   (4 << 20)
#define INDEX_FLUSH_MS    1000 /* how often it looks for a file that filled, to flush it */
#define OPEN_TRIES        50   /* a CommitLog segment being created: retry the open */

#define INDEXER_PACE_US 2000 /* the pause after a turn that indexed records */

typedef struct indexer {
    shmq_worker_t *w;
    shmq_config_t cfg; /* the master's configuration, store root made absolute */
    shmq_commitlog_t cl;
    bool cl_open;
    shmq_index_service_t svc;
    bool svc_open;
    bool enabled;
    int64_t pos;          /* next record to index */
    shmq_cl_cursor_t cur; /* the CommitLog segment of pos */
    int64_t published;    /* last `indexed` published */
    int64_t stall_pos; /* pos at which a batch found no readable record below the limit, -1 none */
    uint64_t clean_seen;   /* cleaner: its deleted_seq when we last dropped removed segments */
    bool no_space;         /* the last index file could not be allocated: waiting for disk space */
    int64_t next_flush_ms; /* monotonic */
    int flush_err;         /* first failed msync: flushed_ts frozen */
    bool finished;
    bool paced;          /* the last turn indexed all there was: pause INDEXER_PACE_US first */
    int64_t full_end_ts; /* end time of the last file that filled (flushed with it), 0 none */
} indexer_t;

static const char *detail_or(int rc)
{
    const char *d = shmq_error_detail();
    return d[0] ? d : shmq_strerror(rc);
}

static uint32_t store_state(const shmq_worker_t *w)
{
    /* acquire: pairs with the master's release store of the state */
    return atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire);
}

/* What may be indexed: what the writer wrote (ASYNC) or the flusher flushed (SYNC). */
static shmq_ctl_position_t *follow(const indexer_t *x)
{
    shmq_ctl_block_t *b = x->w->ctl.blk;
    return x->cfg.flush_disk_type == SHMQ_SYNC_FLUSH ? &b->flushed : &b->wrote;
}

static void publish_pos(indexer_t *x)
{
    if (x->pos > x->published) {
        x->published = x->pos;
        /* release (inside publish): the entries below it are written before */
        shmq_ctl_publish(&x->w->ctl.blk->indexed, x->pos);
    }
}

/* Tell readers the set of files changed (they re-read the directory). */
static void files_changed(indexer_t *x)
{
    /* release: the new file is in place before a reader sees the new sequence */
    atomic_fetch_add_explicit(&x->w->ctl.blk->index.files_seq, 1, memory_order_release);
}

/* msync what changed; publish the checkpoint time it covers; map only the newest file after. */
static void flush_files(indexer_t *x)
{
    if (!x->svc_open) {
        return;
    }
    shmq_index_file_t *last = shmq_index_last(&x->svc);
    if (x->svc.count > 1) {
        x->full_end_ts = x->svc.files[x->svc.count - 2]->hdr.end_ts;
    }
    if (x->flush_err == 0) {
        int64_t end_ts = 0;
        shmq_error_clear();
        int rc = shmq_index_flush(&x->svc, &end_ts);
        if (rc < 0) {
            char what[512];
            snprintf(what, sizeof(what), "%s", detail_or(rc));
            x->flush_err = rc;
            shmq_ctl_block_t *fb = x->w->ctl.blk;
            /* release: status readers see the error with whatever came before it */
            atomic_store_explicit(&fb->index.flush_error, rc, memory_order_release);
            /* Fence the store (fence.h): the disk failed a write; abort stays, and the next
             * start drops the index files newer than the checkpoint's index time. */
            int64_t durable = atomic_load_explicit(&fb->index.flushed_ts, memory_order_relaxed);
            if (shmq_fence_record(x->w->ctl.root, SHMQ_FENCE_INDEX, durable, rc) < 0) {
                shmq_log(SHMQ_LOG_ERROR, "cannot record the fence point: %s", detail_or(rc));
            }
            shmq_ctl_fence(fb, SHMQ_FENCE_INDEX, rc);
            shmq_log(SHMQ_LOG_ERROR,
                     "index flush failed: %s; the store is fenced: the checkpoint's index time "
                     "stays where it is and the next start rebuilds the newer files",
                     what);
        } else if (end_ts > 1) {
            /* The newest file may get more entries of the same millisecond: claim below it. */
            int64_t ts = end_ts - 1;
            shmq_ctl_block_t *b = x->w->ctl.blk;
            if (ts > atomic_load_explicit(&b->index.flushed_ts, memory_order_relaxed)) {
                /* release: the msync above happened before anyone writes this time down */
                atomic_store_explicit(&b->index.flushed_ts, ts, memory_order_release);
            }
        }
    }
    /* Only the newest file is written: unmap the older ones (the cleaner may delete them). */
    if (x->svc.count > 1 && last && x->flush_err == 0) {
        for (size_t i = 0; i + 1 < x->svc.count; i++) {
            shmq_index_file_close(x->svc.files[i]);
            free(x->svc.files[i]);
        }
        x->svc.files[0] = last;
        x->svc.count = 1;
    }
}

/*
 * As RocketMQ: an index file is flushed once, when it has filled (and at the
 * stop), not every second.  After a crash of the host the newest file is
 * rebuilt whatever was flushed of it (docs/recovery.md), so msyncing it
 * every second bought nothing and wrote its dirty slot pages again each
 * time.  A file that filled is flushed with the newest one; the time
 * published then covers the full file unless the newest one holds nothing
 * later than its last millisecond yet: the newest is flushed again each
 * INDEX_FLUSH_MS until it does.  now: the loop turn's clock (w->mono_ms).
 */
static void flush_if_due(indexer_t *x, int64_t now)
{
    if (now < x->next_flush_ms) {
        return;
    }
    x->next_flush_ms = now + INDEX_FLUSH_MS;
    /* Relaxed: this process's own store. */
    int64_t covered = atomic_load_explicit(&x->w->ctl.blk->index.flushed_ts, memory_order_relaxed);
    if (x->svc.count > 1 || (x->full_end_ts > 0 && covered < x->full_end_ts)) {
        flush_files(x);
    }
}

/* ---- indexing ------------------------------------------------------------------------ */

static int64_t index_batch(indexer_t *x, int64_t limit)
{
    int64_t start = x->pos, records = 0, bytes = 0;
    bool refreshed = false;
    size_t files_before = x->svc.count;
    const shmq_index_file_t *newest = shmq_index_last(&x->svc);
    while (x->pos < limit && records < INDEX_MAX_RECORDS && bytes < INDEX_MAX_BYTES) {
        shmq_record_head_t r;
        int64_t at = x->pos;
        int rc = shmq_commitlog_next_head_inline(&x->cl, &x->cur, &x->pos, limit,
                                                 SHMQ_DECODE_CHECK_PHYS, &r);
        if ((rc == SHMQ_E_END && x->pos < limit) || rc == SHMQ_E_RANGE) {
            if (!refreshed) {
                /* A segment created (or removed) since the last look, or not mapped yet. */
                refreshed = true;
                int r2 = shmq_mfq_refresh(&x->cl.q);
                if (r2 < 0) {
                    return shmq_error_wrap(r2, "mapping new CommitLog segments");
                }
                int64_t min = shmq_mfq_min_offset(&x->cl.q);
                if (x->pos < min) {
                    x->pos = min; /* cleaned before it was indexed: nothing left to index */
                }
                continue;
            }
        }
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            x->pos = at;
            return shmq_error_wrap(rc, "CommitLog record at %lld (index limit %lld)", (long long)at,
                                   (long long)limit);
        }
        rc = shmq_index_put_head_inline(&x->svc, &r);
        if (rc == -ENOSPC) {
            /* A full disk is waited out, not a crash: the next loop tries again. */
            x->pos = at;
            if (!x->no_space) {
                shmq_log(SHMQ_LOG_WARN,
                         "disk full: no space for an index file; indexing at %lld "
                         "waits for space",
                         (long long)at);
                x->no_space = true;
            }
            if (x->svc.count != files_before || shmq_index_last(&x->svc) != newest) {
                files_changed(x);
            }
            publish_pos(x);
            return records;
        }
        if (x->no_space) {
            shmq_log(SHMQ_LOG_INFO, "disk space is back: indexing goes on at %lld", (long long)at);
            x->no_space = false;
        }
        if (rc < 0) {
            x->pos = at;
            return shmq_error_wrap(rc, "indexing the message at %lld", (long long)at);
        }
        records++;
        bytes += r.total_size;
    }
    if (x->svc.count != files_before || shmq_index_last(&x->svc) != newest) {
        files_changed(x);
    }
    publish_pos(x);
    if (x->pos == start && x->pos < limit) {
        if (x->stall_pos != x->pos) {
            shmq_log(SHMQ_LOG_WARN, "no record readable at %lld below the limit %lld yet",
                     (long long)x->pos, (long long)limit);
        }
        x->stall_pos = x->pos;
    } else {
        x->stall_pos = -1;
    }
    return records > 0 ? records : (x->pos > start ? 1 : 0);
}

/* ---- crash tests ------------------------------------------------------------------------ */

static const char *crash_dir; /* SHMQ_TEST_CRASH_DIR, or NULL */

/* Die here if <crash_dir>/indexer-<step> exists (see the top of the file). */
static void crash_point(enum shmq_index_step step)
{
    static const char *const names[] = {"", "entry", "slot", "header", "key"};
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/indexer-%s", crash_dir, names[step]);
    if (unlink(path) == 0) {
        shmq_log(SHMQ_LOG_WARN, "crash test: killed at step %s", names[step]);
        raise(SIGKILL);
    }
}

/* ---- start -------------------------------------------------------------------------- */

static int open_files(indexer_t *x)
{
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(&x->cfg, dir, sizeof(dir));
    int rc = SHMQ_E_SEGMENT;
    for (int i = 0; i < OPEN_TRIES && rc == SHMQ_E_SEGMENT; i++) {
        shmq_error_clear();
        rc = shmq_commitlog_open(&x->cl, dir, (size_t)x->cfg.mapped_file_size_commit_log,
                                 SHMQ_MF_READONLY);
        if (rc == SHMQ_E_SEGMENT) {
            usleep(20 * 1000); /* the writer is creating the last segment */
        }
    }
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the CommitLog in %s: %s", dir, detail_or(rc));
        return rc;
    }
    x->cl_open = true;
    shmq_worker_log_reader(&x->cfg, &x->cur); /* SYNC_FLUSH: pread */
    shmq_index_dir(&x->cfg, dir, sizeof(dir));
    shmq_error_clear();
    rc = shmq_index_open(&x->svc, dir, x->cfg.max_hash_slot_num, x->cfg.max_index_num, false);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the index files in %s: %s", dir, detail_or(rc));
        return rc;
    }
    x->svc_open = true;
    if (x->svc.skipped > 0) {
        shmq_log(SHMQ_LOG_WARN,
                 "%d index file(s) in %s do not have the size maxHashSlotNum/maxIndexNum give: "
                 "ignored",
                 x->svc.skipped, dir);
    }
    return 0;
}

static int resume(indexer_t *x)
{
    shmq_ctl_block_t *b = x->w->ctl.blk;
    int64_t wrote = shmq_ctl_load(&b->wrote);
    int64_t min = shmq_ctl_load(&b->min);
    shmq_commitlog_set_positions(&x->cl, wrote, wrote);
    shmq_index_resume_report_t rep;
    size_t files_before = x->svc.count;
    shmq_error_clear();
    int rc = shmq_index_resume(&x->svc, &x->cl, wrote, min, &rep);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot resume the index: %s", detail_or(rc));
        return rc;
    }
    if (rep.files_rebuilt > 0) {
        shmq_log(SHMQ_LOG_WARN, "%d index file(s) could not be repaired (%s): rebuilding them",
                 rep.files_rebuilt, rep.detail);
    }
    if (x->svc.count != files_before) {
        files_changed(x);
    }
    x->pos = rep.pos;
    /* Nothing published is taken back: a partly indexed message lies past `indexed`. */
    x->published = shmq_ctl_load(&b->indexed);
    publish_pos(x); /* everything below the resume point is indexed */
    shmq_log(SHMQ_LOG_INFO,
             "indexing from %lld (%s; %d half-written entr%s undone, %d entr%s removed, %zu "
             "file(s), following %s)",
             (long long)x->pos,
             rep.last_phys < 0   ? "no message indexed yet"
             : rep.last_complete ? "the last indexed message is complete"
                                 : "the last message was partly indexed: indexing it again",
             rep.torn_slots, rep.torn_slots == 1 ? "y" : "ies", rep.entries_removed,
             rep.entries_removed == 1 ? "y" : "ies", x->svc.count,
             x->cfg.flush_disk_type == SHMQ_SYNC_FLUSH ? "flushed" : "wrote");
    /* Make the repair durable, and keep only the newest file mapped. */
    flush_files(x);
    return 0;
}

/* ---- worker operations ---------------------------------------------------------------- */

static int indexer_init(shmq_worker_t *w, void **state)
{
    indexer_t *x = calloc(1, sizeof(*x));
    if (!x) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    x->w = w;
    x->cfg = *w->cfg;
    snprintf(x->cfg.store_path_root_dir, sizeof(x->cfg.store_path_root_dir), "%s", w->ctl.root);
    x->stall_pos = -1;
    x->enabled = x->cfg.message_index_enable;
    /* acquire: an earlier indexer of this run stored it */
    x->flush_err = atomic_load_explicit(&w->ctl.blk->index.flush_error, memory_order_acquire);
    /* acquire: pairs with the fencing worker's CAS; a fenced store trusts no later flush */
    if (x->flush_err == 0 &&
        atomic_load_explicit(&w->ctl.blk->fenced_error, memory_order_acquire) != 0) {
        x->flush_err = SHMQ_E_FENCED;
    }
    *state = x;
    if (!x->enabled) {
        shmq_log(SHMQ_LOG_INFO, "messageIndexEnable is false: nothing to do");
        return 0;
    }
    crash_dir = getenv("SHMQ_TEST_CRASH_DIR");
    if (crash_dir) {
        shmq_index_crash_hook = crash_point;
    }
    if (open_files(x) < 0 || resume(x) < 0) {
        return SHMQ_EXIT_ERROR; /* finish() is not called: the process exits, the OS unmaps */
    }
    x->next_flush_ms = shmq_mono_ms() + INDEX_FLUSH_MS;
    return 0;
}

static int64_t indexer_work(shmq_worker_t *w, void *state)
{
    indexer_t *x = state;
    if (!x->enabled) {
        return 0;
    }
    /* cleaner: unmap the segments it deleted, whether or not there is work: a mapping
     * keeps a deleted file's blocks allocated, and the disk full (PITFALLS 25). */
    if (x->cl_open && shmq_clean_changed(&w->ctl, &x->clean_seen)) {
        shmq_clean_drop_removed(&x->cl.q);
    }
    int64_t min = shmq_ctl_load(&w->ctl.blk->min);
    if (x->pos < min) {
        x->pos = min; /* the cleaner removed records not indexed yet */
    }
    int64_t n = 0;
    int64_t limit = shmq_ctl_load(follow(x));
    if (limit > x->pos && x->pos != x->stall_pos) {
        n = index_batch(x, limit);
        if (n < 0) {
            return n;
        }
        /* Up to the limit it saw: idle comes next, not a call that would find nothing
         * (idle looks again, after registering as a sleeper, before it sleeps). */
        w->took_all = x->pos >= limit;
        x->paced = n > 0 && w->took_all;
    }
    flush_if_due(x, w->mono_ms);
    return n;
}

/* Sleep predicate: records past pos (or a stop request): do not sleep. */
static bool records_ready(void *arg)
{
    const indexer_t *x = arg;
    return x->w->stop || shmq_ctl_load(follow(x)) > x->pos;
}

static void indexer_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    indexer_t *x = state;
    /* The clock of this loop turn, read before work(): a flush comes at most one batch
     * late, and the turn reads the clock once. */
    int64_t until_flush = x->next_flush_ms - w->mono_ms;
    if (x->enabled && until_flush < timeout_ms) {
        timeout_ms = until_flush > 0 ? (int)until_flush : 0;
    }
    if (timeout_ms <= 0 || w->stop) {
        return;
    }
    /* Nothing to do until a record comes, or (a full disk) until the next try: sleep out
     * the timeout rather than wait for records that are already there. */
    if (!x->enabled || x->stall_pos == x->pos || x->no_space) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a signal ends it (EINTR) */
        return;
    }
    /* Records were indexed: more come while it pauses, and are taken in one turn (the
     * pause is not a sleep on the wake word, so the writer's publishes do not end it; a
     * signal does). */
    if (x->paced) {
        x->paced = false;
        struct timespec ts = {0, INDEXER_PACE_US * 1000L};
        nanosleep(&ts, NULL);
        return;
    }
    /* The word the writer (SYNC_FLUSH: the flusher) wakes after publishing what it followed:
     * no spinning before the sleep, a batch of records comes at once. */
    shmq_ctl_sleep(&w->ctl.blk->dispatcher_wake, records_ready, x, timeout_ms);
}

/* FINISHING: done once every record written is indexed and the files are flushed. */
static bool indexer_done(shmq_worker_t *w, void *state)
{
    indexer_t *x = state;
    if (x->finished) {
        return true;
    }
    if (store_state(w) != SHMQ_STATE_FINISHING) {
        return false;
    }
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    if (x->enabled && x->pos < wrote && x->pos != x->stall_pos) {
        return false; /* work() indexes the rest (SYNC_FLUSH: as the flusher flushes it) */
    }
    flush_files(x);
    x->finished = true;
    shmq_log(SHMQ_LOG_INFO, "finished: indexed %lld", (long long)x->pos);
    return true;
}

static int indexer_finish(shmq_worker_t *w, void *state)
{
    (void)w;
    indexer_t *x = state;
    if (!x) {
        return SHMQ_EXIT_OK;
    }
    if (!x->finished) {
        flush_files(x);
    }
    int code = x->flush_err ? SHMQ_EXIT_ERROR : SHMQ_EXIT_OK;
    if (x->svc_open) {
        shmq_index_close(&x->svc);
    }
    if (x->cl_open) {
        shmq_commitlog_close(&x->cl);
    }
    shmq_cl_cursor_free(&x->cur);
    free(x);
    return code;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = indexer_init,
        .work = indexer_work,
        .idle = indexer_idle,
        .finish = indexer_finish,
        .done = indexer_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_INDEXER, &ops);
}
