/*
 * Internal to shmq-ha-receiver (daemons/ha_receiver*.c).
 *
 *   ha_receiver.c       the link: the master's CommitLog bytes, reports
 *   ha_receiver_meta.c  the master's metadata (topics, subscription groups,
 *                       delay and consumer offsets), fetched every
 *                       HA_META_SYNC_MS and at once when the link connects
 *   ha_receiver_epoch.c the epoch check: when shmqd could not ask the master
 *                       for its epoch table at start, the receiver asks
 *                       before it follows, and follows only a master whose
 *                       log its own is a prefix of
 */
#ifndef SHMQ_HA_RECEIVER_H
#define SHMQ_HA_RECEIVER_H

#include <uv.h>

#include "net/net.h"
#include "shm/ctl.h"
#include "worker.h"

#define HA_META_SYNC_MS 3000 /* RocketMQ's SlaveSynchronize: every 10 s */

typedef struct ha_meta_sync ha_meta_sync_t;

/*
 * Start fetching the metadata of the master at addr (an address literal,
 * "127.0.0.1:10912"; name is how the log names it) on loop, applying it
 * to the store of ctl; tls: the link's (NULL: the plain protocol), kept by
 * the caller until ha_meta_sync_stop and the loop's close.  0 and *out, or
 * -ENOMEM.
 */
int ha_meta_sync_start(uv_loop_t *loop, shmq_ctl_t *ctl, const char *addr, const char *name,
                       const shmq_net_tls_t *tls, ha_meta_sync_t **out);

/* Fetch now, unless a fetch is under way (the link just connected). */
void ha_meta_sync_now(ha_meta_sync_t *m);

/* Stop: the fetch under way is dropped; m is freed by the loop's close callbacks. */
void ha_meta_sync_stop(ha_meta_sync_t *m);

enum receiver_epoch_verdict {
    RECEIVER_EPOCH_FOLLOW = 0, /* checked (or nothing to check with): follow */
    RECEIVER_EPOCH_WAIT = 1,   /* the master did not answer: ask again later */
    RECEIVER_EPOCH_REFUSE = 2, /* the logs share no epoch: never follow (exit 2) */
    RECEIVER_EPOCH_CUT = 3,    /* this log goes beyond: shmqd starts the store again to cut it */
};

/* One attempt (over the link's tls, NULL: plain), with the log ending at wrote; logs what it
 * finds. */
enum receiver_epoch_verdict receiver_epoch_check(shmq_worker_t *w, const shmq_net_tls_t *tls,
                                                 int64_t wrote, bool *logged);

#endif
