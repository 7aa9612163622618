/*
 * The recovery progress object: how far the master's recovery is, for
 * `shmqctl status` while the store has no control block yet.
 *
 * "/shmq-<hash>.recovery" (the control block's name plus ".recovery"),
 * created by the master (shmqd) before it recovers the store, written by
 * it alone (shmq_recovery_progress_t, store.h, through shmq_store_t's
 * progress pointer), and removed once the control block is ready or the
 * start failed.  Mode 0640, group the client group when the master can
 * give it (0600 otherwise).  A master killed during recovery leaves it
 * behind: readers believe it only while its pid is the master that holds
 * the store lock, and the next master replaces it.
 */
#ifndef SHMQ_PROGRESS_H
#define SHMQ_PROGRESS_H

#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

#define SHMQ_PROGRESS_MAGIC 0x31474f5250514853ULL /* "SHQPROG1" */

typedef struct shmq_ctl_progress {
    uint64_t magic;
    uint32_t size; /* sizeof(shmq_ctl_progress_t) */
    int32_t pid;   /* the master */
    int64_t started_ms;
    shmq_recovery_progress_t p;
} shmq_ctl_progress_t;

/* Master: create (replacing a stale one of the store's user) and map the object for the
 * store at root; gid -1 keeps it 0600.  0 or a negative errno (detail set). */
int shmq_ctl_progress_create(const char *root, gid_t gid, shmq_ctl_progress_t **out);

/* Master: unmap and remove it (p may be NULL: nothing to do). */
void shmq_ctl_progress_remove(const char *root, shmq_ctl_progress_t *p);

/* A reader: map it read-only; SHMQ_E_NOT_FOUND when there is none, it is not one, or
 * its owner is not the owner of the store directory root. */
int shmq_ctl_progress_open(const char *root, const shmq_ctl_progress_t **out);
void shmq_ctl_progress_close(const shmq_ctl_progress_t *p);

#endif
