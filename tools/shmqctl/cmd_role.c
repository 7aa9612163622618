/*
 * shmqctl role: the store's role, where it comes from, and its epochs; a
 * failover's two steps (docs/operations.md "Failover"):
 *
 *   role --store DIR                 show (running or stopped store)
 *   role --store DIR --promote       a running slave becomes a master: its
 *                                    master (shmqd) stops the ha-receiver,
 *                                    begins a new epoch at the log's end,
 *                                    writes <store>/roleOverride and starts
 *                                    the writer; waits (30 s, --timeout MS)
 *                                    until the writer runs
 *   role --store DIR --slave --master HOST:PORT
 *                                    a stopped store becomes a slave of
 *                                    HOST:PORT at its next start (there its
 *                                    divergent tail is cut)
 *   role --store DIR --clear         broker.conf decides again (next start)
 *
 * Exit: 0 done, 1 refused or failed (said why), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/hostport.h"
#include "format/epoch.h"
#include "format/role_override.h"
#include "shm/ctl.h"
#include "shmqctl.h"

#define PROMOTE_TIMEOUT_MS 30000
#define POLL_MS            20

/* Role, its source and the epoch table of the store at root (ctl: its block when it runs). */
json_t *shmqctl_role_json(const char *root, const shmq_ctl_t *ctl, const shmq_config_t *cfg)
{
    json_t *o = json_object();
    shmq_config_t c = *cfg;
    bool overridden = false;
    int rc = 0;
    if (ctl != NULL) {
        c.broker_role = ctl->blk->hdr.config.broker_role;
        /* relaxed: a status snapshot */
        overridden = atomic_load_explicit(&ctl->blk->role.overridden, memory_order_relaxed) != 0;
    } else {
        rc = shmq_role_override_apply(root, &c, &overridden);
    }
    json_object_set_new(o, "role", json_string(shmq_broker_role_name(c.broker_role)));
    json_object_set_new(o, "role_source",
                        json_string(rc < 0       ? "roleOverride (unreadable)"
                                    : overridden ? SHMQ_ROLE_OVERRIDE_FILE
                                                 : "broker.conf"));
    if (c.broker_role == SHMQ_SLAVE) {
        json_object_set_new(o, "master_address", json_string(c.ha_master_address));
    }
    static shmq_epoch_table_t t;
    rc = shmq_epoch_load(root, &t);
    json_t *ea = json_array();
    if (rc == 0) {
        for (size_t i = 0; i < t.n; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "epoch", json_integer(t.e[i].epoch));
            json_object_set_new(e, "start", json_integer(t.e[i].start));
            json_array_append_new(ea, e);
        }
    } else {
        json_object_set_new(o, "epochs_error", json_string(shmq_error_detail()));
    }
    json_object_set_new(o, "epoch", json_integer(rc == 0 ? shmq_epoch_last(&t) : 0));
    json_object_set_new(o, "epochs", ea);
    return o;
}

void shmqctl_role_text(json_t *r)
{
    json_t *e;
    size_t i;
    printf("role: %s (from %s)", json_string_value(json_object_get(r, "role")),
           json_string_value(json_object_get(r, "role_source")));
    json_t *m = json_object_get(r, "master_address");
    if (m != NULL) {
        printf(", master %s", json_string_value(m));
    }
    printf("; epoch %lld; epochs:", (long long)json_integer_value(json_object_get(r, "epoch")));
    json_array_foreach(json_object_get(r, "epochs"), i, e)
    {
        printf(" %lld from %lld", (long long)json_integer_value(json_object_get(e, "epoch")),
               (long long)json_integer_value(json_object_get(e, "start")));
        if (i + 1 < json_array_size(json_object_get(r, "epochs"))) {
            printf(",");
        }
    }
    if (json_array_size(json_object_get(r, "epochs")) == 0) {
        printf(" none");
    }
    printf("\n");
}

/* Whether a master runs the store (quietly: no message when it does not). */
static bool running(const char *root)
{
    shmq_ctl_t ctl;
    if (shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl) != 0) {
        return false;
    }
    bool alive = shmqctl_master_alive(&ctl);
    shmq_ctl_detach(&ctl);
    return alive;
}

static int promote(shmqctl_args_t *a)
{
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, 0, &ctl);
    if (rc != 0) {
        shmqctl_err("--promote needs the slave running (start it, then promote)");
        return rc;
    }
    shmq_ctl_block_t *b = ctl.blk;
    if (b->hdr.config.broker_role != SHMQ_SLAVE) {
        shmqctl_err("store %s is already a master (%s)", ctl.root,
                    shmq_broker_role_name(b->hdr.config.broker_role));
        shmq_ctl_detach(&ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    int32_t old_writer =
        atomic_load_explicit(&b->workers[SHMQ_ROLE_WRITER].pid, memory_order_relaxed);
    uint32_t cur = atomic_load_explicit(&b->role.promote, memory_order_acquire);
    if (cur == SHMQ_PROMOTE_ASKED || cur == SHMQ_PROMOTE_RUNNING ||
        !atomic_compare_exchange_strong_explicit(&b->role.promote, &cur, SHMQ_PROMOTE_ASKED,
                                                 memory_order_release, memory_order_relaxed)) {
        shmqctl_err("store %s: a promotion is already under way", ctl.root);
        shmq_ctl_detach(&ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_ctl_wake(&b->master_wake);
    int64_t timeout = a->timeout_ms >= 0 ? a->timeout_ms : PROMOTE_TIMEOUT_MS;
    int64_t deadline = shmq_mono_ms() + timeout;
    uint32_t st = SHMQ_PROMOTE_ASKED;
    bool writer = false;
    for (;;) {
        st = atomic_load_explicit(&b->role.promote, memory_order_acquire);
        int32_t pid = atomic_load_explicit(&b->workers[SHMQ_ROLE_WRITER].pid, memory_order_acquire);
        writer = pid > 0 && pid != old_writer &&
                 atomic_load_explicit(&b->workers[SHMQ_ROLE_WRITER].state, memory_order_acquire) ==
                     SHMQ_WORKER_RUNNING;
        if (st == SHMQ_PROMOTE_FAILED || (st == SHMQ_PROMOTE_DONE && writer) ||
            shmq_mono_ms() >= deadline || !shmqctl_master_alive(&ctl)) {
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    int err = atomic_load_explicit(&b->role.error, memory_order_relaxed);
    int32_t epoch = atomic_load_explicit(&b->role.epoch, memory_order_relaxed);
    int64_t start = atomic_load_explicit(&b->role.epoch_start, memory_order_relaxed);
    shmq_ctl_detach(&ctl);
    if (st == SHMQ_PROMOTE_FAILED) {
        shmqctl_err("promotion refused: %s (see the master's log)", shmq_strerror(err));
        return SHMQCTL_EXIT_FAIL;
    }
    if (st != SHMQ_PROMOTE_DONE || !writer) {
        shmqctl_err("the promotion did not finish within %lld ms (see the master's log)",
                    (long long)timeout);
        return SHMQCTL_EXIT_FAIL;
    }
    /* In controller mode the store turns SYNC_MASTER (daemons/master.c promote_finish). */
    printf("promoted: store %s is a master (%s, kept in %s) in epoch %d from offset %lld\n",
           a->cfg.store_path_root_dir,
           a->cfg.enable_controller_mode ? "SYNC_MASTER" : "ASYNC_MASTER", SHMQ_ROLE_OVERRIDE_FILE,
           (int)epoch, (long long)start);
    return SHMQCTL_EXIT_OK;
}

int shmqctl_cmd_role(shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    int modes = (a->promote ? 1 : 0) + (a->slave ? 1 : 0) + (a->clear ? 1 : 0);
    if (modes > 1 || (a->master != NULL && !a->slave) || (a->slave && a->master == NULL)) {
        return shmqctl_usage_error(a->cmd, "give one of --promote, --slave --master HOST:PORT, "
                                           "--clear (or none to show)");
    }
    if (a->promote) {
        return promote(a);
    }
    if (a->slave) {
        char host[256];
        int port;
        if (shmq_hostport_split(a->master, host, sizeof(host), &port) < 0) {
            return shmqctl_usage_error(a->cmd, "--master %s: %s", a->master, shmq_error_detail());
        }
        if (running(root)) {
            shmqctl_err("store %s is running: stop it first (a store becomes a slave at its "
                        "start, where its divergent tail is cut)",
                        root);
            return SHMQCTL_EXIT_FAIL;
        }
        int rc = shmq_role_override_save(root, SHMQ_SLAVE, a->master);
        if (rc < 0) {
            return shmqctl_fail(rc, "store %s", root);
        }
        printf("store %s: a slave of %s from its next start (kept in %s)\n", root, a->master,
               SHMQ_ROLE_OVERRIDE_FILE);
        return SHMQCTL_EXIT_OK;
    }
    if (a->clear) {
        int rc = shmq_role_override_clear(root);
        if (rc < 0) {
            return shmqctl_fail(rc, "store %s", root);
        }
        printf("store %s: role override removed; broker.conf decides from the next start\n", root);
        return SHMQCTL_EXIT_OK;
    }
    shmq_ctl_t ctl;
    bool have = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl) == 0;
    if (have && !shmqctl_master_alive(&ctl)) {
        shmq_ctl_detach(&ctl);
        have = false;
    }
    json_t *o = shmqctl_role_json(root, have ? &ctl : NULL, &a->cfg);
    json_object_set_new(o, "running", json_boolean(have));
    if (have) {
        shmq_ctl_detach(&ctl);
    }
    if (a->json) {
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        shmqctl_role_text(o);
    }
    json_decref(o);
    return SHMQCTL_EXIT_OK;
}
