/*
 * What shmqd's master.c (the state machine, the workers) calls in
 * master_store.c (checks before the store is opened, the control block
 * filled from the recovered store, the recovery report).  Used by shmqd only.
 */
#ifndef SHMQ_MASTER_H
#define SHMQ_MASTER_H

#include <stdbool.h>

#include "format/config.h"
#include "shm/ctl.h"
#include "store/store.h"

/* Refuse to start while workers of an earlier master still hold the store:
 * 0 when free, -1 after logging who holds it. */
int master_check_old_workers(const char *root);

/* The root's and top-level directories' owner and modes (docs/security.md):
 * 0, or < 0 with an error detail; world-readable names are logged. */
int master_check_store_access(const char *root);

/* Replace a lock file only other users' processes hold a lock on: 0 or -1. */
int master_check_lock_squatters(const char *root);

/* Fill the new control block ctl from the recovered store st. */
int master_fill_ctl(shmq_ctl_t *ctl, shmq_store_t *st);

/* Log what recovery found and did. */
void master_log_recovery(const shmq_recovery_report_t *r);

/* After an unclean stop, drop index files the checkpoint does not cover
 * when an indexer runs to rebuild them. */
void master_recover_index(const shmq_config_t *cfg, bool indexer,
                          const shmq_recovery_report_t *rep);

/* ---- epochs (master_epoch.c) ---- */

#include <signal.h>

#include "format/epoch.h"

/*
 * A master's epoch at start (epoch 1 at log_min for an empty table; a
 * restart keeps the epoch), saved; *cur the current one.  0 or an error
 * (logged).
 */
int master_epoch_master_start(const char *root, int64_t log_min, int64_t log_end,
                              shmq_epoch_entry_t *cur);

/* A promotion: epoch last+1 from log_end, saved durably; *cur the new one. */
int master_epoch_promote(const char *root, int64_t log_end, shmq_epoch_entry_t *cur);

/* Show the current epoch in the control block (status). */
void master_epoch_publish(shmq_ctl_t *ctl, const shmq_epoch_entry_t *cur);

/*
 * A slave at start, its store recovered and no worker running: the master's
 * epoch table, the divergent tail cut, the table saved (master_epoch.c).
 * 0 to go on (also when the master could not be asked: logged, *checked
 * false: the ha-receiver checks before it follows), or the exit code (2:
 * the logs share no epoch, an operator must act).
 */
int master_epoch_slave_start(const shmq_config_t *cfg, shmq_store_t *st,
                             volatile sig_atomic_t *stop, shmq_epoch_entry_t *cur, bool *checked);

/* ---- the service manager (master_notify.c; no-ops without NOTIFY_SOCKET) ---- */

/* Read WATCHDOG_USEC once at start. */
void master_notify_start(void);

/* STATUS=<state>[, R of N workers running]. */
void master_notify_state(const char *state, int running, int workers);

/* READY=1, once. */
void master_notify_ready(void);

/* STOPPING=1. */
void master_notify_stopping(void);

/* WATCHDOG=1 when half the watchdog interval has passed since the last one. */
void master_notify_watchdog(void);

#endif
