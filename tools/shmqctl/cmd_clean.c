/*
 * shmqctl clean: a manual deletion request to the cleaner of a running
 * store (RocketMQ's executeDeleteFilesManually): the next 20 cleaning runs
 * delete expired CommitLog segments whatever the hour, the first of them at
 * once.  Bumps manual_request in the control block's cleaner section, wakes
 * the cleaner, waits (10 s, or --timeout MS) until it reports that run done,
 * and prints what that run deleted.
 *
 * Exit: 0 the run happened (deleting nothing is a success), 1 the store is
 * not running, runs no cleaner, or the cleaner did not answer in time.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "shm/ctl.h"
#include "shmqctl.h"

#define CLEAN_TIMEOUT_MS 10000
#define POLL_MS          20

int shmqctl_cmd_clean(shmqctl_args_t *a)
{
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, 0, &ctl);
    if (rc != 0) {
        return rc;
    }
    shmq_ctl_block_t *b = ctl.blk;
    shmq_ctl_cleaner_t *cs = &b->cleaner;
    /* relaxed: a status field, only compared */
    uint32_t wst = atomic_load_explicit(&b->workers[SHMQ_ROLE_CLEANER].state, memory_order_relaxed);
    if (wst == SHMQ_WORKER_NONE || wst == SHMQ_WORKER_FAILED) {
        shmqctl_err("store %s runs no cleaner (shmq-cleaner is not installed next to shmqd%s)",
                    ctl.root, wst == SHMQ_WORKER_FAILED ? ", or it failed" : "");
        shmq_ctl_detach(&ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    /* release: pairs with the cleaner's acquire load of the request */
    uint32_t req = atomic_fetch_add_explicit(&cs->manual_request, 1, memory_order_release) + 1;
    shmq_ctl_wake(&cs->wake);

    int64_t timeout = a->timeout_ms >= 0 ? a->timeout_ms : CLEAN_TIMEOUT_MS;
    int64_t deadline = shmq_mono_ms() + timeout;
    bool done = false;
    for (;;) {
        /* acquire: the report is published before manual_done */
        uint32_t d = atomic_load_explicit(&cs->manual_done, memory_order_acquire);
        if ((int32_t)(d - req) >= 0) {
            done = true;
            break;
        }
        if (shmq_mono_ms() >= deadline || !shmqctl_master_alive(&ctl)) {
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    shmq_clean_last_t last;
    memset(&last, 0, sizeof(last));
    int lrc = done ? shmq_clean_last_read(cs, &last) : 0;
    int64_t min = shmq_ctl_load(&b->min);
    shmq_ctl_detach(&ctl);
    if (!done) {
        shmqctl_err("the cleaner did not report within %lld ms (the request stays: it runs "
                    "when the cleaner does)",
                    (long long)timeout);
        return SHMQCTL_EXIT_FAIL;
    }
    if (lrc < 0) {
        return shmqctl_fail(lrc, "reading the cleaner's report");
    }
    if (a->json) {
        json_t *o = json_object();
        json_object_set_new(o, "reason", json_string(shmq_clean_reason_name(last.reason)));
        json_object_set_new(o, "time_ms", json_integer(last.time_ms));
        json_object_set_new(o, "deleted_commitlog", json_integer(last.commitlog));
        json_object_set_new(o, "deleted_consumequeue", json_integer(last.consumequeue));
        json_object_set_new(o, "deleted_index", json_integer(last.index));
        json_object_set_new(o, "min", json_integer(min));
        json_object_set_new(o, "runs", json_integer(SHMQ_CLEAN_MANUAL_RUNS));
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
    }
    printf("deleted %d CommitLog segment(s), %d ConsumeQueue file(s), %d index file(s) (%s); "
           "the CommitLog starts at %lld; the next %d runs also delete expired files\n",
           last.commitlog, last.consumequeue, last.index, shmq_clean_reason_name(last.reason),
           (long long)min, SHMQ_CLEAN_MANUAL_RUNS - 1);
    return SHMQCTL_EXIT_OK;
}
