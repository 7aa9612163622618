/*
 * The skeleton every shmq worker process runs on (writer, flusher,
 * dispatcher, and later indexer, scheduler, cleaner, ha-sender).
 *
 * A worker is started by the master as `shmq-<role> --store DIR`.  It
 * attaches to the control block, takes a shared lock on byte 1 of
 * <root>/lock (so a new master can tell that old workers still hold the
 * store), asks the kernel for SIGTERM when the master dies, and then loops:
 * handle signal flags, do one bounded unit of work, heartbeat, and sleep on
 * its wake-up word when there was nothing to do.  Signal handlers only set
 * flags.
 *
 * One clock read a loop turn, before done() and work(): it is the heartbeat
 * (the worker table's heartbeat_ms: a work() that hangs stops it, and the
 * master and status call the worker stale after SHMQ_HEARTBEAT_STALE_MS),
 * the clock of the once-a-second look at the master, and the roles' own
 * timers (w->mono_ms), so that a turn that wakes for one message reads the
 * clock once, not once in the skeleton and again in the role.
 *
 * Exit codes: 0 done (stopped on request), 1 error (the master restarts it),
 * 2 configuration error (not restarted).
 */
#ifndef SHMQ_WORKER_H
#define SHMQ_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"
#include "format/commitlog.h"
#include "format/config.h"
#include "shm/ctl.h"

#define SHMQ_EXIT_OK     0
#define SHMQ_EXIT_ERROR  1
#define SHMQ_EXIT_CONFIG 2

typedef struct shmq_worker {
    enum shmq_role role;
    const char *name; /* "writer", ... */
    shmq_ctl_t ctl;
    const shmq_config_t *cfg; /* the master's effective configuration (in the control block) */
    shmq_ctl_worker_t *self;  /* this worker's entry in the worker table */
    int master_pid;
    int lock_fd;
    volatile sig_atomic_t stop; /* SIGTERM/SIGINT received */
    /* work() sets it with a result > 0 when it took all it saw: the skeleton calls idle
     * next (which looks for work before it sleeps), not work() again to find nothing */
    bool took_all;
    /* CLOCK_MONOTONIC ms read by the skeleton at the start of this loop turn (before
     * done() and work()): the clock of the roles' timers in work() and idle() */
    int64_t mono_ms;
} shmq_worker_t;

typedef struct shmq_worker_ops {
    /* After attaching; *state is the role's own. Non-zero: exit with that code. */
    int (*init)(shmq_worker_t *w, void **state);
    /*
     * One bounded unit of work.  Returns the amount done (0 = nothing to do,
     * the skeleton then calls idle; > 0 with w->took_all set: idle too), or a
     * negative error (the worker exits 1).
     */
    int64_t (*work)(shmq_worker_t *w, void *state);
    /* Sleep until there may be work, at most timeout_ms. */
    void (*idle)(shmq_worker_t *w, void *state, int timeout_ms);
    /*
     * Called when the loop ends because w->stop was set or the store state
     * asks the role to finish; returns the exit code.
     */
    int (*finish)(shmq_worker_t *w, void *state);
    /* True when the role is done for an orderly stop (called each loop; may be NULL). */
    bool (*done)(shmq_worker_t *w, void *state);
} shmq_worker_ops_t;

/* Run a worker: parses argv (--store DIR), attaches, loops. Returns the exit code. */
int shmq_worker_main(int argc, char **argv, enum shmq_role role, const shmq_worker_ops_t *ops);

/* True if the master process is gone (the worker should exit). */
bool shmq_worker_master_gone(const shmq_worker_t *w);

/* A reader of the CommitLog (the dispatcher, the indexer) under SYNC_FLUSH, where the writer
 * stages its appends: cur reads the records with pread (shmq_cl_cursor_read_through());
 * without memory for its buffer, through the mapping (a warning). */
void shmq_worker_log_reader(const shmq_config_t *cfg, shmq_cl_cursor_t *cur);

#endif
