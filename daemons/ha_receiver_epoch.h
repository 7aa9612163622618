/*
 * The ha-receiver's epoch check (ha_receiver_epoch.c): when shmqd could
 * not ask the master for its epoch table at start, the receiver asks before
 * it follows, and follows only a master whose log its own is a prefix of.
 */
#ifndef SHMQ_HA_RECEIVER_EPOCH_H
#define SHMQ_HA_RECEIVER_EPOCH_H

#include <stdint.h>

#include "worker.h"

enum receiver_epoch_verdict {
    RECEIVER_EPOCH_FOLLOW = 0, /* checked (or nothing to check with): follow */
    RECEIVER_EPOCH_WAIT = 1,   /* the master did not answer: ask again later */
    RECEIVER_EPOCH_REFUSE = 2, /* the logs share no epoch: never follow (exit 2) */
    RECEIVER_EPOCH_CUT = 3,    /* this log goes beyond: shmqd starts the store again to cut it */
};

/* One attempt, with the log ending at wrote; logs what it finds. */
enum receiver_epoch_verdict receiver_epoch_check(shmq_worker_t *w, int64_t wrote, bool *logged);

#endif
