/*
 * The ha-receiver's epoch check (ha_receiver.h), for a slave whose
 * shmqd could not reach the master at start (role.epoch_checked is 0): the
 * same comparison shmqd makes (daemons/master_epoch.c), but the receiver
 * never cuts a log itself (the dispatcher and the indexer run: what they
 * published beyond a cut would have to be taken back).  A log that goes
 * beyond what it shares with the master has shmqd stop the store and start
 * again (role.restart_store), and that start cuts it before any worker
 * runs.  A log that is a prefix takes the master's table and is followed.
 */
#include <errno.h>
#include <stdlib.h>

#include "client/ha_request.h"
#include "format/epoch.h"
#include "ha_receiver.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

#define RECEIVER_EPOCH_IO_MS 2000

enum receiver_epoch_verdict receiver_epoch_check(shmq_worker_t *w, const shmq_net_tls_t *tls,
                                                 int64_t wrote, bool *logged)
{
    const char *master = w->cfg->ha_master_address;
    shmq_epoch_table_t *local = calloc(1, sizeof(*local));
    shmq_epoch_table_t *remote = calloc(1, sizeof(*remote));
    enum receiver_epoch_verdict v = RECEIVER_EPOCH_WAIT;
    if (local == NULL || remote == NULL) {
        goto out;
    }
    int64_t remote_end = 0;
    shmq_error_clear();
    int rc = shmq_ha_fetch_epochs(master, tls, RECEIVER_EPOCH_IO_MS, remote, &remote_end);
    if (rc == -EACCES) {
        /* The TLS handshake failed (a master without our secret): refused, as on the link. */
        atomic_fetch_add_explicit(&w->ctl.blk->ha.refused, 1, memory_order_relaxed);
    }
    if (rc < 0 && rc > SHMQ_E_BASE) {
        if (!*logged) {
            shmq_log(SHMQ_LOG_INFO, "not following master %s before its epoch table is seen: %s",
                     master, shmq_error_detail());
            *logged = true;
        }
        goto out;
    }
    if (rc < 0 || remote->n == 0) {
        shmq_log(SHMQ_LOG_WARN, "epoch check skipped: %s; following by offset only",
                 rc < 0 ? shmq_error_detail() : "the master has no epoch table");
        v = RECEIVER_EPOCH_FOLLOW;
        goto out;
    }
    rc = shmq_epoch_load(w->ctl.root, local);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "%s: move the damaged epoch files away", shmq_error_detail());
        v = RECEIVER_EPOCH_REFUSE;
        goto out;
    }
    int64_t point =
        local->n == 0 ? wrote : shmq_epoch_consistent_point(local, wrote, remote, remote_end);
    if (point < 0) {
        shmq_log(SHMQ_LOG_ERROR,
                 "refusing to follow master %s: this log (ends at %lld) shares no epoch with "
                 "the master's: nothing of it can be matched; move this store away or wipe it, "
                 "then start it again (docs/operations.md \"Failover\")",
                 master, (long long)wrote);
        v = RECEIVER_EPOCH_REFUSE;
        goto out;
    }
    if (point < wrote) {
        shmq_log(SHMQ_LOG_WARN,
                 "this log (ends at %lld) goes beyond the last offset it shares with master %s "
                 "(%lld): the store starts again to cut it",
                 (long long)wrote, master, (long long)point);
        /* release: the master acts on it (it wrote nothing else) */
        atomic_store_explicit(&w->ctl.blk->role.restart_store, 1, memory_order_release);
        shmq_ctl_wake(&w->ctl.blk->master_wake);
        v = RECEIVER_EPOCH_CUT;
        goto out;
    }
    rc = shmq_epoch_save(w->ctl.root, remote);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_WARN, "saving master %s's epoch table: %s", master, shmq_error_detail());
    }
    shmq_log(SHMQ_LOG_INFO, "this log (ends at %lld) is a prefix of master %s's: following",
             (long long)wrote, master);
    v = RECEIVER_EPOCH_FOLLOW;
out:
    free(local);
    free(remote);
    return v;
}
