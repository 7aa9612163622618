/*
 * shmq-controller's configuration: RocketMQ 5's controller keys
 * (controllerDLegerGroup, controllerDLegerPeers, controllerDLegerSelfId,
 * controllerStorePath, enableElectUncleanMaster) and shmq's own
 * (controllerListen, controllerBrokerTimeoutMillis,
 * controllerElectionTimeoutMillis, controllerSnapshotThreshold), read from
 * a Java-properties style file ("key=value", '#' comments) and from
 * KEY=VALUE overrides.  docs/controller.md lists them.
 *
 * A bad value is refused with SHMQ_E_CONFIG and a detail naming the key,
 * the value and what was expected; an unknown key is a warning.
 */
#ifndef SHMQ_FORMAT_CONTROLLER_CONFIG_H
#define SHMQ_FORMAT_CONTROLLER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "format/controller_state.h"

typedef struct shmq_ctrl_peer {
    char name[32];                    /* "n0" */
    uint64_t raft_id;                 /* its Raft id: its position in the list + 1 */
    char address[SHMQ_CTRL_ADDR_MAX]; /* the Raft address, "127.0.0.1:9877" */
} shmq_ctrl_peer_t;

typedef struct shmq_ctrl_config {
    char group[128]; /* controllerDLegerGroup */
    int npeers;      /* controllerDLegerPeers */
    shmq_ctrl_peer_t peers[SHMQ_CTRL_MAX_MEMBERS];
    char self_id[32];                /* controllerDLegerSelfId: one of the peers' names */
    char store_path[PATH_MAX];       /* controllerStorePath: the Raft log and snapshots */
    bool elect_unclean;              /* enableElectUncleanMaster, false */
    char listen[SHMQ_CTRL_ADDR_MAX]; /* controllerListen: where brokers and tools connect */
    int32_t broker_timeout_ms;       /* controllerBrokerTimeoutMillis, 10000 */
    int32_t election_timeout_ms;     /* controllerElectionTimeoutMillis, 1000 */
    int32_t snapshot_threshold;      /* controllerSnapshotThreshold, 1024 log entries */
} shmq_ctrl_config_t;

typedef void (*shmq_ctrl_config_warn_fn)(const char *msg);

void shmq_ctrl_config_defaults(shmq_ctrl_config_t *cfg);

/* One key.  0, or SHMQ_E_CONFIG with a detail. */
int shmq_ctrl_config_set(shmq_ctrl_config_t *cfg, const char *key, const char *value,
                         shmq_ctrl_config_warn_fn warn);

/* A file of keys.  0, a negative errno (cannot read it) or SHMQ_E_CONFIG with a detail. */
int shmq_ctrl_config_load(shmq_ctrl_config_t *cfg, const char *path, shmq_ctrl_config_warn_fn warn);

/* The whole: peers given, self among them.  0 or SHMQ_E_CONFIG with a detail. */
int shmq_ctrl_config_validate(const shmq_ctrl_config_t *cfg);

/* This controller's peer entry (after validate). */
const shmq_ctrl_peer_t *shmq_ctrl_config_self(const shmq_ctrl_config_t *cfg);

#endif
