/*
 * shmqd: epochs (format/epoch.h) and the divergent tail of a store that
 * comes back as a slave after a failover (docs/operations.md "Failover").
 *
 *   - A master's epoch: a store that starts as a master with an empty table
 *     begins epoch 1 at its log's first offset.  A plain restart keeps the
 *     epoch (as RocketMQ's controller bumps it only at an election); a
 *     promotion appends epoch last+1 from the promoted store's log end,
 *     saved durably before its writer starts.
 *   - A slave at start, before any worker runs and so before anything is
 *     dispatched or indexed: it asks its master for the master's table and
 *     log end (request code 2 on the HA port, format/ha_frame.h) and
 *     computes the last offset both logs agree on.  A log that goes beyond
 *     it is cut there (shmq_store_truncate: crash-safe, the next start
 *     computes the same point and cuts again), the records dropped are
 *     counted and logged per epoch, and the table becomes the master's.
 *     Logs that share no epoch: refused (exit 2), never a silent wipe.
 *
 * Nothing here runs while workers do: the master still writes no data
 * position after start.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "client/ha_request.h"
#include "format/epoch.h"
#include "format/ha_frame.h"
#include "master.h"
#include "shmq/errors.h"
#include "worker.h"
#include "worker_uv.h"

#define EPOCH_FETCH_IO_MS   3000 /* one attempt: connect, request, answer */
#define EPOCH_FETCH_WAIT_MS 5000 /* a slave's start waits this long for its master */
#define EPOCH_FETCH_PAUSE   250  /* between attempts */

/* ---- a master's epoch ----------------------------------------------------------------------- */

static void publish_epoch(shmq_ctl_t *ctl, const shmq_epoch_table_t *t)
{
    if (ctl == NULL || t->n == 0) {
        return;
    }
    atomic_store_explicit(&ctl->blk->role.epoch_start, t->e[t->n - 1].start, memory_order_relaxed);
    /* release: epoch_start is set with it (status only) */
    atomic_store_explicit(&ctl->blk->role.epoch, t->e[t->n - 1].epoch, memory_order_release);
}

int master_epoch_master_start(const char *root, int64_t log_min, int64_t log_end,
                              shmq_epoch_entry_t *cur)
{
    shmq_epoch_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = shmq_epoch_load(root, t);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "%s: move the damaged epoch files away to start a new table",
                 shmq_error_detail());
        free(t);
        return rc;
    }
    bool changed = false;
    if (t->n == 0) {
        rc = shmq_epoch_append(t, 1, log_min);
        changed = true;
        shmq_log(SHMQ_LOG_INFO, "epoch 1 begins at %lld (a master with no epoch table)",
                 (long long)log_min);
    } else if (t->e[t->n - 1].start > log_end) {
        /* A slave's table names an epoch whose bytes never reached it: this store starts a
         * new one at its own end (as a promotion does). */
        int32_t next = shmq_epoch_last(t) + 1;
        shmq_epoch_truncate(t, log_end + 1);
        rc = shmq_epoch_append(t, next, log_end);
        changed = true;
        shmq_log(SHMQ_LOG_INFO, "epoch %d begins at %lld (the table named later offsets)", next,
                 (long long)log_end);
    }
    if (rc == 0 && changed) {
        rc = shmq_epoch_save(root, t);
    }
    if (rc == 0) {
        *cur = t->e[t->n - 1];
        shmq_log(SHMQ_LOG_INFO, "master in epoch %d (from offset %lld)", cur->epoch,
                 (long long)cur->start);
    } else {
        shmq_log(SHMQ_LOG_ERROR, "epoch table of %s: %s", root, shmq_error_detail());
    }
    free(t);
    return rc;
}

int master_epoch_promote(const char *root, int64_t log_end, shmq_epoch_entry_t *cur)
{
    shmq_epoch_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = shmq_epoch_load(root, t);
    if (rc == 0) {
        int32_t next = shmq_epoch_last(t) + 1;
        /* Epochs of the old master whose bytes this store never got end here. */
        shmq_epoch_truncate(t, log_end + 1);
        rc = shmq_epoch_append(t, next, log_end);
    }
    if (rc == 0) {
        rc = shmq_epoch_save(root, t);
    }
    if (rc == 0) {
        *cur = t->e[t->n - 1];
    }
    free(t);
    return rc;
}

void master_epoch_publish(shmq_ctl_t *ctl, const shmq_epoch_entry_t *cur)
{
    shmq_epoch_table_t t = {.n = 0};
    if (cur->epoch > 0) {
        t.n = 1;
        t.e[0] = *cur;
    }
    publish_epoch(ctl, &t);
}

/* ---- a slave at start ------------------------------------------------------------------------ */

/* The local epoch whose part of the log holds off (0 when the table says nothing). */
static int32_t epoch_at(const shmq_epoch_table_t *t, int64_t off)
{
    int32_t e = 0;
    for (size_t i = 0; i < t->n && t->e[i].start <= off; i++) {
        e = t->e[i].epoch;
    }
    return e;
}

/*
 * Count the records of [from, end) per local epoch and log them; SHMQ_E_CORRUPT when from
 * is not where a record starts (the cut would split one: not done).
 */
static int count_dropped(const shmq_store_t *st, const shmq_epoch_table_t *t, int64_t from,
                         int64_t end)
{
    int64_t pos = from, seg_from = from, n = 0;
    int32_t cur = epoch_at(t, from);
    for (;;) {
        int64_t at = pos;
        shmq_record_t r;
        int rc = shmq_commitlog_next(&st->cl, &pos, end, SHMQ_DECODE_CHECK_PHYS, &r);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            return shmq_error_set(SHMQ_E_CORRUPT,
                                  "the cut at %lld: no record at %lld of this log (%s)",
                                  (long long)from, (long long)at, shmq_strerror(rc));
        }
        int32_t e = epoch_at(t, r.phys_offset);
        if (e != cur) {
            if (n > 0) {
                shmq_log(SHMQ_LOG_WARN,
                         "%lld messages of epoch %d from offset %lld were never replicated; "
                         "dropped",
                         (long long)n, cur, (long long)seg_from);
            }
            cur = e;
            seg_from = r.phys_offset;
            n = 0;
        }
        n++;
    }
    shmq_log(SHMQ_LOG_WARN,
             "%lld messages of epoch %d from offset %lld were never replicated; dropped",
             (long long)n, cur, (long long)seg_from);
    return 0;
}

int master_epoch_slave_start(const shmq_config_t *cfg, shmq_store_t *st,
                             volatile sig_atomic_t *stop, shmq_epoch_entry_t *cur, bool *checked)
{
    memset(cur, 0, sizeof(*cur));
    *checked = false;
    shmq_epoch_table_t *local = calloc(1, sizeof(*local));
    shmq_epoch_table_t *remote = calloc(1, sizeof(*remote));
    if (local == NULL || remote == NULL) {
        free(local);
        free(remote);
        return SHMQ_EXIT_ERROR;
    }
    int ret = 0;
    shmq_net_tls_t *tls = NULL; /* the link's, for the request */
    int rc = shmq_epoch_load(st->root, local);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR,
                 "%s: move the damaged epoch files away (the master's table "
                 "is taken then)",
                 shmq_error_detail());
        ret = SHMQ_EXIT_ERROR;
        goto out;
    }
    const char *master = cfg->ha_master_address;
    if (shmq_worker_ha_tls(cfg, false, &tls) < 0) {
        ret = SHMQ_EXIT_CONFIG;
        goto out;
    }
    int64_t remote_end = 0;
    int64_t deadline = shmq_mono_ms() + EPOCH_FETCH_WAIT_MS;
    bool logged = false;
    for (;;) {
        shmq_error_clear();
        rc = shmq_ha_fetch_epochs(master, tls, EPOCH_FETCH_IO_MS, remote, &remote_end);
        if (rc >= 0 || rc <= SHMQ_E_BASE || *stop || shmq_mono_ms() >= deadline) {
            break;
        }
        if (!logged) {
            shmq_log(SHMQ_LOG_INFO, "waiting up to %d ms for master %s's epoch table: %s",
                     EPOCH_FETCH_WAIT_MS, master, shmq_error_detail());
            logged = true;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = EPOCH_FETCH_PAUSE * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc < 0 && rc > SHMQ_E_BASE) {
        shmq_log(SHMQ_LOG_WARN,
                 "epoch check not done at start: %s; the ha-receiver checks before it follows",
                 shmq_error_detail());
        goto keep;
    }
    *checked = true;
    if (rc < 0 || remote->n == 0) {
        shmq_log(SHMQ_LOG_WARN, "epoch check skipped: %s; following by offset only",
                 rc < 0 ? shmq_error_detail() : "the master has no epoch table");
        goto keep;
    }
    int64_t local_end = st->cl.wrote_pos;
    if (local->n == 0) {
        shmq_log(SHMQ_LOG_INFO,
                 "no epoch table here: taking master %s's (%zu epochs, its log ends at %lld)",
                 master, remote->n, (long long)remote_end);
    } else {
        int64_t point = shmq_epoch_consistent_point(local, local_end, remote, remote_end);
        if (point < 0) {
            char l[64], r[64];
            snprintf(l, sizeof(l), "%d from %lld", local->e[local->n - 1].epoch,
                     (long long)local->e[local->n - 1].start);
            snprintf(r, sizeof(r), "%d from %lld", remote->e[remote->n - 1].epoch,
                     (long long)remote->e[remote->n - 1].start);
            shmq_log(SHMQ_LOG_ERROR,
                     "refusing to follow master %s: this log (newest epoch %s, ends at %lld) "
                     "shares no epoch with the master's (newest epoch %s): nothing of it can "
                     "be matched; move this store away or wipe it, then start it again "
                     "(docs/operations.md \"Failover\")",
                     master, l, (long long)local_end, r);
            ret = SHMQ_EXIT_CONFIG;
            goto out;
        }
        if (point < local_end) {
            shmq_log(SHMQ_LOG_WARN,
                     "this log (ends at %lld) goes beyond the last offset it shares with master "
                     "%s (%lld): cutting it there",
                     (long long)local_end, master, (long long)point);
            rc = count_dropped(st, local, point, local_end);
            if (rc == 0) {
                rc = shmq_store_truncate(st, point);
            }
            if (rc < 0) {
                shmq_log(SHMQ_LOG_ERROR, "cutting the divergent tail: %s", shmq_error_detail());
                ret = SHMQ_EXIT_ERROR;
                goto out;
            }
        } else {
            shmq_log(SHMQ_LOG_INFO,
                     "this log (ends at %lld) is a prefix of master %s's (ends at %lld): "
                     "nothing to cut",
                     (long long)local_end, master, (long long)remote_end);
        }
    }
    /* The log is a prefix of the master's now: its table is this store's. */
    rc = shmq_epoch_save(st->root, remote);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "saving the epoch table: %s", shmq_error_detail());
        ret = SHMQ_EXIT_ERROR;
        goto out;
    }
    *local = *remote;
keep:
    if (local->n > 0) {
        *cur = local->e[local->n - 1];
    }
out:
    shmq_net_tls_free(tls);
    free(local);
    free(remote);
    return ret;
}
