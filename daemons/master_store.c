/*
 * shmqd's store side (see master.c for the process): what is checked before
 * the store is opened (an earlier master's workers still holding it, the
 * root's owner and modes, locks other users' processes hold), how the new
 * control block is filled from the recovered files, and how recovery is
 * reported (the log, the index files after an unclean stop).  Called by
 * master.c's start_store only, before any worker runs; nothing here
 * supervises processes or holds state between calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/store_files.h"
#include "master.h"
#include "shm/ctl.h"
#include "shmq/errors.h"
#include "store/index_service.h"
#include "store/store.h"
#include "worker.h"

/* ---- old workers ---------------------------------------------------------------- */

/* Name the processes holding a lock on byte 0 or 1 of <root>/lock: "pid N (comm, uid U), ...". */
static void describe_holders(const char *root, char *out, size_t len)
{
    shmq_lock_holder_t h[16];
    int count = shmq_store_lock_holders(root, h, 16);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < count && i < 16 && used + 64 < len; i++) {
        if (!h[i].store_bytes) {
            continue;
        }
        int n = snprintf(out + used, len - used, "%spid %ld (%s, uid %ld)", used ? ", " : "",
                         h[i].pid, h[i].comm, h[i].uid);
        used += n > 0 ? (size_t)n : 0;
    }
}

/*
 * Refuse to start while workers of an earlier master still hold the store
 * (a shared OFD lock on byte 1 of <root>/lock): try to take it exclusively,
 * and release it at once.  Returns 0 when free (or no lock file yet), -1
 * after logging who holds it.  When the store lock itself (byte 0) is held,
 * returns 0: the store open then reports the master that holds it.
 */
int master_check_old_workers(const char *root)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", root);
    int fd = shmq_store_file_open(path, O_RDWR, 0);
    if (fd == -ENOENT) {
        return 0; /* a new store: nobody can hold it */
    }
    if (fd < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot open the store lock: %s", shmq_error_detail());
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
        close(fd);
        return 0; /* a running master: shmq_store_open names it */
    }
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 1;
    fl.l_len = 1;
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
        fl.l_type = F_UNLCK;
        fcntl(fd, F_OFD_SETLK, &fl);
        close(fd);
        return 0;
    }
    int e = errno;
    close(fd);
    if (e != EAGAIN && e != EACCES) {
        shmq_log(SHMQ_LOG_ERROR, "cannot test the workers' lock on %s: %s", path, strerror(e));
        return -1;
    }
    char who[512];
    describe_holders(root, who, sizeof(who));
    shmq_log(SHMQ_LOG_ERROR,
             "store %s is still held by workers of an earlier master (%s); they exit when "
             "they notice the master is gone; stop them (kill PID) and start again",
             root, who[0] ? who : "pids unknown");
    return -1;
}

/* ---- the store's owner, modes and lock file -------------------------------------------- */

#define MODE_WARN_MAX 10 /* world-readable names listed one by one; the rest are counted */

static void warn_readable(void *arg, const char *path)
{
    (void)arg;
    shmq_log(SHMQ_LOG_WARN, "%s can be read by every local user (mode o+r)", path);
}

/*
 * Before the store is opened: create a missing root (SHMQ_DIR_MODE), refuse
 * a root or top-level directory another user owns or others may write, and
 * warn about world-readable names at the top level.  Modes are never changed
 * here: the operator decides (docs/security.md).
 */
int master_check_store_access(const char *root)
{
    struct stat st;
    if (stat(root, &st) != 0 && errno == ENOENT) {
        shmq_error_clear();
        if (shmq_file_mkdirs(root) < 0) {
            shmq_log(SHMQ_LOG_ERROR, "cannot create the store directory: %s", shmq_error_detail());
            return SHMQ_EXIT_ERROR;
        }
    }
    shmq_error_clear();
    int n = shmq_store_check_root(root, warn_readable, NULL, MODE_WARN_MAX);
    if (n < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "%s", d[0] ? d : shmq_strerror(n));
        return SHMQ_EXIT_CONFIG;
    }
    if (n > 0) {
        shmq_log(SHMQ_LOG_WARN,
                 "%d name%s in store %s (top level) can be read by every local user%s: "
                 "chmod -R o-rwx %s (see docs/security.md)",
                 n, n == 1 ? "" : "s", root, n > MODE_WARN_MAX ? " (first ones listed)" : "", root);
    }
    return 0;
}

/*
 * A lock on <root>/lock held only by processes of other users (who could
 * open the file while it was readable) must not keep the store down nor
 * take the producer rings: replace the file, so that their locks stay on the
 * old one, naming them.  Any holder of the store's user (a master, old
 * workers, a producer) leaves the file alone; the usual checks name it.
 */
int master_check_lock_squatters(const char *root)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", root);
    shmq_lock_holder_t h[16];
    int count = shmq_store_lock_holders(root, h, 16);
    if (count <= 0) {
        return 0;
    }
    char who[512] = "";
    size_t used = 0;
    for (int i = 0; i < count && i < 16; i++) {
        if (h[i].uid == (long)geteuid() || h[i].uid < 0) {
            return 0;
        }
        int n = snprintf(who + used, sizeof(who) - used, "%spid %ld (%s, uid %ld)",
                         used ? ", " : "", h[i].pid, h[i].comm, h[i].uid);
        used += n > 0 && (size_t)n < sizeof(who) - used ? (size_t)n : 0;
    }
    if (count > 16) {
        return 0; /* not all seen: leave it to the usual checks */
    }
    shmq_log(SHMQ_LOG_WARN,
             "%s is locked by %s, not a process of the store's user (uid %ld): replacing the "
             "lock file so that these locks stop nothing",
             path, who, (long)geteuid());
    shmq_error_clear();
    int rc = shmq_store_lock_renew(root);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot replace the lock file: %s", shmq_error_detail());
        return -1;
    }
    return 0;
}

/* ---- building the control block ---------------------------------------------------- */

static int put_queue(shmq_queue_t *q, void *arg)
{
    shmq_ctl_t *ctl = arg;
    shmq_ctl_queue_t *cq;
    int rc = shmq_ctl_queue_insert(ctl, q->cq.topic, strlen(q->cq.topic), q->cq.queue_id, &cq);
    if (rc < 0) {
        shmq_error_wrap(rc, "queue table: %s/%d", q->cq.topic, q->cq.queue_id);
        return rc;
    }
    int64_t max = shmq_cq_max_offset(&q->cq);
    /* relaxed: the block is not ready yet; shmq_ctl_set_ready publishes everything (release) */
    atomic_store_explicit(&cq->next_offset, q->next_offset > max ? q->next_offset : max,
                          memory_order_relaxed);
    atomic_store_explicit(&cq->max_offset, max, memory_order_relaxed);
    atomic_store_explicit(&cq->min_offset, shmq_cq_min_offset(&q->cq), memory_order_relaxed);
    return 0;
}

/*
 * Fill the new control block from the recovered store: positions, topic
 * table, queue table, consumer offsets.
 */
int master_fill_ctl(shmq_ctl_t *ctl, shmq_store_t *st)
{
    shmq_ctl_block_t *b = ctl->blk;
    int64_t end = st->cl.wrote_pos;
    shmq_ctl_publish(&b->wrote, end);
    shmq_ctl_publish(&b->flushed, end);
    shmq_ctl_publish(&b->dispatched, end);
    /* The checkpoint's mark: recovery's, which names the record before end by its time
     * (the last record it checked, or the checkpoint's when it checked none). */
    shmq_ctl_cq_mark_publish(&b->cq_mark, end, st->last_store_ts);
    shmq_ctl_publish(&b->cq_flushed, end);
    /* indexer: nothing is known indexed until it has resumed from its files (it publishes). */
    shmq_ctl_publish(&b->indexed, shmq_commitlog_min_offset(&st->cl));
    shmq_ctl_publish(&b->replicated, end);
    shmq_ctl_publish(&b->min, shmq_commitlog_min_offset(&st->cl));
    atomic_store_explicit(&b->writer_journal, end, memory_order_relaxed);
    b->hdr.crc_tail_from = st->cp.crc_marker ? st->cp.crc_tail_from : INT64_MAX;

    int rc = shmq_ctl_topic_lock(ctl, 5000);
    if (rc < 0) {
        return shmq_error_wrap(rc, "topic lock");
    }
    for (size_t i = 0; i < st->topics.count && rc == 0; i++) {
        const shmq_topic_config_t *t = &st->topics.topics[i];
        rc = shmq_ctl_topic_put(ctl, t->name, t->read_queue_nums, t->write_queue_nums, t->perm,
                                t->order);
        if (rc < 0) {
            shmq_error_wrap(rc, "topic table: %s", t->name);
        }
    }
    shmq_ctl_topic_unlock(ctl);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_store_foreach_queue(st, put_queue, ctl);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_ctl_offsets_load(ctl);
    if (rc < 0) {
        return shmq_error_wrap(rc, "consumer offsets");
    }
    shmq_log(SHMQ_LOG_INFO,
             "control block %s: positions at %lld (min %lld), %zu topics, %zu queues", ctl->name,
             (long long)end, (long long)shmq_commitlog_min_offset(&st->cl), st->topics.count,
             st->queue_count);
    return 0;
}

void master_log_recovery(const shmq_recovery_report_t *r)
{
    shmq_log(SHMQ_LOG_INFO,
             "recovery (%s): scanned from %lld, end %lld, %lld records checked, %lld bytes "
             "truncated, %lld units rebuilt, %lld units dropped in %d queues",
             r->abnormal ? "abnormal: the last run did not stop cleanly" : "normal",
             (long long)r->scan_from, (long long)r->recovered_end, (long long)r->records_checked,
             (long long)r->truncated_bytes, (long long)r->units_rebuilt,
             (long long)r->units_truncated, r->queues_touched);
    if (r->stop_error) {
        shmq_log(r->truncated_bytes > 0 ? SHMQ_LOG_WARN : SHMQ_LOG_INFO, "recovery stopped at: %s",
                 r->stop_reason);
    }
    if (r->below_checkpoint) {
        shmq_log(SHMQ_LOG_WARN, "recovery cut the log below the checkpoint: flushed data was "
                                "damaged");
    }
    if (r->bad_checkpoint) {
        shmq_log(SHMQ_LOG_WARN,
                 "the checkpoint is damaged: its confirmPhyOffset %lld names bytes the CommitLog "
                 "never held (nothing but zeros after %lld); it was not believed and nothing "
                 "was cut for it; the checkpoint is rewritten",
                 (long long)r->bad_checkpoint_phys, (long long)r->recovered_end);
    }
    if (r->fence_commitlog >= 0) {
        shmq_log(SHMQ_LOG_WARN,
                 "the last run was fenced after a failed CommitLog flush or write: the log was "
                 "cut at its last good flush %lld (%lld bytes past it dropped: never "
                 "acknowledged under SYNC_FLUSH); fence lifted",
                 (long long)r->fence_commitlog, (long long)r->truncated_bytes);
    }
    if (r->fence_cq >= 0) {
        shmq_log(SHMQ_LOG_WARN,
                 "the last run was fenced after a failed consume queue flush: units past %lld "
                 "were dropped and rebuilt from the CommitLog; fence lifted",
                 (long long)r->fence_cq);
    }
    shmq_log(SHMQ_LOG_INFO, "recovery synced the CommitLog from %lld and every consume queue",
             (long long)r->synced_from);
    if (r->crc_tail_reset) {
        shmq_log(SHMQ_LOG_WARN,
                 "the checkpoint holds no record-CRC marker (an older shmq, another program "
                 "wrote it, or it is damaged): records before CommitLog offset %lld are read "
                 "without requiring __CRC32#; every later one must carry it",
                 (long long)r->crc_tail_from);
    }
}

/*
 * After an unclean stop, index files the checkpoint does not cover may have
 * lost pages: drop them (the indexer rebuilds them from the CommitLog).  A
 * failure leaves the files to the indexer's own repair.
 */
void master_recover_index(const shmq_config_t *cfg, bool indexer, const shmq_recovery_report_t *rep)
{
    if (!rep->abnormal || !indexer) {
        return; /* no indexer (not installed, or messageIndexEnable=false) rebuilds them */
    }
    shmq_index_abnormal_report_t ir;
    shmq_error_clear();
    int rc = shmq_index_recover_abnormal(cfg, &ir);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_WARN, "index recovery: %s", d[0] ? d : shmq_strerror(rc));
        return;
    }
    shmq_log(SHMQ_LOG_INFO,
             "index recovery (abnormal): dropped %d index file(s) newer than the checkpoint's "
             "index time %lld, kept %d; the indexer rebuilds them",
             ir.dropped, (long long)ir.index_ts, ir.kept);
}
