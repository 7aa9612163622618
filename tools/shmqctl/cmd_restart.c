/*
 * shmqctl restart WORKER: ask the master of a running store to restart one
 * worker (any role the store runs).  Sets the worker's restart_request
 * in the control block and wakes the master, which stops the worker with
 * SIGTERM and starts it again (counted in its restarts, not as a crash).
 * Waits (10 s, or --timeout MS) until the worker runs again under a new
 * pid and prints the old and the new pid.
 *
 * Exit: 0 restarted, 1 not running / no such worker in this store / timed
 * out, 2 unknown worker name.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "shm/ctl.h"
#include "shmqctl.h"

#define RESTART_TIMEOUT_MS 10000
#define POLL_MS            20

int shmqctl_cmd_restart(shmqctl_args_t *a)
{
    const char *name = a->pos[0];
    int role = shmq_role_from_name(name);
    if (role < 0 || role >= SHMQ_CTL_MAX_WORKERS) {
        return shmqctl_usage_error(a->cmd,
                                   "unknown worker '%s' (writer, flusher, dispatcher, indexer, "
                                   "scheduler, cleaner, ha-sender, ha-receiver)",
                                   name);
    }
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, 0, &ctl);
    if (rc != 0) {
        return rc;
    }
    shmq_ctl_block_t *b = ctl.blk;
    shmq_ctl_worker_t *w = &b->workers[role];
    /* relaxed: status fields, only compared */
    if (atomic_load_explicit(&w->state, memory_order_relaxed) == SHMQ_WORKER_NONE) {
        shmqctl_err("store %s runs no %s", ctl.root, name);
        shmq_ctl_detach(&ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    uint32_t store_state = atomic_load_explicit(&b->hdr.state, memory_order_relaxed);
    if (store_state != SHMQ_STATE_RUNNING) {
        shmqctl_err("store %s is %s: workers are restarted only while it runs", ctl.root,
                    shmq_store_state_name(store_state));
        shmq_ctl_detach(&ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    int32_t old_pid = atomic_load_explicit(&w->pid, memory_order_relaxed);
    /* release: pairs with the master's acquire load of the request */
    atomic_store_explicit(&w->restart_request, 1, memory_order_release);
    shmq_ctl_wake(&b->master_wake);

    int64_t timeout = a->timeout_ms >= 0 ? a->timeout_ms : RESTART_TIMEOUT_MS;
    int64_t deadline = shmq_mono_ms() + timeout;
    int32_t pid = old_pid;
    bool ok = false;
    for (;;) {
        pid = atomic_load_explicit(&w->pid, memory_order_acquire);
        uint32_t st = atomic_load_explicit(&w->state, memory_order_acquire);
        if (pid > 0 && pid != old_pid && st == SHMQ_WORKER_RUNNING) {
            ok = true;
            break;
        }
        if (st == SHMQ_WORKER_FAILED || shmq_mono_ms() >= deadline || !shmqctl_master_alive(&ctl)) {
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    uint32_t st = atomic_load_explicit(&w->state, memory_order_relaxed);
    shmq_ctl_detach(&ctl);
    if (!ok) {
        shmqctl_err("the %s did not come back within %lld ms (pid %d, %s)", name,
                    (long long)timeout, (int)pid, shmq_worker_state_name(st));
        return SHMQCTL_EXIT_FAIL;
    }
    if (old_pid > 0) {
        printf("restarted the %s: pid %d -> %d\n", name, (int)old_pid, (int)pid);
    } else {
        printf("started the %s (it was waiting to be restarted): pid %d\n", name, (int)pid);
    }
    return SHMQCTL_EXIT_OK;
}
