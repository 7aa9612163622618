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

#endif
