/*
 * The controller's replicated state (RocketMQ 5's controller mode,
 * ReplicasInfoManager): per broker set (brokerName) the registered
 * replicas, the master and its epoch, and the sync-state set and its
 * epoch; and the client address of each controller that led the group.
 *
 * Every change is a command (controller_frame.h) that went through the
 * Raft log of shmq-controller and is applied here on every controller in
 * log order: shmq_ctrl_apply is deterministic (no clock, no randomness, no
 * process state), so every controller that applied the same log holds the
 * same state.  A command that is refused changes nothing and says why.
 *
 * The heartbeat fields of a replica (hb_*) are not replicated: only the
 * Raft leader fills them, from the brokers' heartbeats; apply, snapshots
 * and restore never read or write them.
 *
 * Snapshots are JSON (shmq_ctrl_state_encode / _decode); a snapshot is
 * read as untrusted input and refused whole when anything is wrong.
 */
#ifndef SHMQ_FORMAT_CONTROLLER_STATE_H
#define SHMQ_FORMAT_CONTROLLER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SHMQ_CTRL_MAX_SETS     256 /* broker sets a group holds */
#define SHMQ_CTRL_MAX_REPLICAS 16  /* replicas of one broker set */
#define SHMQ_CTRL_MAX_MEMBERS  16  /* controllers of one group */
#define SHMQ_CTRL_NAME_MAX     128 /* brokerName, brokerClusterName: bytes with the NUL */
#define SHMQ_CTRL_ADDR_MAX     64  /* host:port: bytes with the NUL */
#define SHMQ_CTRL_NO_MASTER    (-1)

typedef enum shmq_ctrl_cmd_kind {
    SHMQ_CTRL_CMD_NONE = 0,
    /* replicated (go through the log) */
    SHMQ_CTRL_CMD_REGISTER,   /* REGISTER_BROKER: assigns a brokerId when 0 */
    SHMQ_CTRL_CMD_ELECT,      /* ELECT_MASTER: from the sync-state set unless unclean */
    SHMQ_CTRL_CMD_ALTER_SYNC, /* ALTER_SYNC_STATE_SET: from the master, with its epoch */
    SHMQ_CTRL_CMD_MEMBER,     /* a controller's client address (a new leader's) */
    /* answered by a controller without the log */
    SHMQ_CTRL_CMD_HEARTBEAT,   /* a replica is alive: its log end and epoch */
    SHMQ_CTRL_CMD_STATUS,      /* the whole state (get-metadata) */
    SHMQ_CTRL_CMD_REPLICA_INFO /* one broker set (get-replica-info) */
} shmq_ctrl_cmd_kind_t;

/* What a replica reported (ELECT carries the leader's view of the live ones). */
typedef struct shmq_ctrl_report {
    int64_t broker_id;
    int64_t max_offset;
    int32_t epoch;
} shmq_ctrl_report_t;

/* One decoded command: the fields its kind uses (controller_frame.c says which). */
typedef struct shmq_ctrl_cmd {
    shmq_ctrl_cmd_kind_t kind;
    char cluster[SHMQ_CTRL_NAME_MAX];     /* register: brokerClusterName ("" allowed) */
    char broker_name[SHMQ_CTRL_NAME_MAX]; /* every broker command */
    char address[SHMQ_CTRL_ADDR_MAX];     /* register, heartbeat, member */
    char gateway[SHMQ_CTRL_ADDR_MAX];     /* register: its gateway's address ("": none) */
    int64_t broker_id;                    /* register (0: assign), heartbeat, elect (0: any) */
    int64_t max_offset;                   /* register, heartbeat: the replica's log end */
    int32_t epoch;                        /* register, heartbeat: the replica's last epoch */
    int64_t master_id;                    /* alter: who asks (must be the master) */
    int32_t master_epoch;                 /* alter: the master's epoch it holds */
    int32_t sync_epoch;                   /* alter: the set's epoch it holds (0: unchecked) */
    int nsync;                            /* alter: the new set */
    int64_t sync[SHMQ_CTRL_MAX_REPLICAS];
    bool unclean; /* elect: a replica outside the sync-state set may be chosen */
    int nalive;   /* elect: the live replicas, as the leader saw them */
    shmq_ctrl_report_t alive[SHMQ_CTRL_MAX_REPLICAS];
    int64_t member_id; /* member: the controller's Raft id */
} shmq_ctrl_cmd_t;

typedef struct shmq_ctrl_replica {
    int64_t broker_id;
    char address[SHMQ_CTRL_ADDR_MAX];
    int64_t max_offset; /* last reported (at register, or in an election) */
    int32_t epoch;
    /* where its gateway serves RocketMQ clients ("": no gateway, or registered by a store
     * that did not say; a log entry or snapshot written before the field has none) */
    char gateway[SHMQ_CTRL_ADDR_MAX];
    /* the leader's memory only (never replicated, never in a snapshot) */
    uint64_t hb_ms;        /* last heartbeat, monotonic ms; 0: none */
    int64_t hb_max_offset; /* what it said */
    int32_t hb_epoch;
} shmq_ctrl_replica_t;

typedef struct shmq_ctrl_set {
    char broker_name[SHMQ_CTRL_NAME_MAX];
    char cluster[SHMQ_CTRL_NAME_MAX];
    int64_t next_broker_id; /* the next brokerId register assigns (RocketMQ: from 1) */
    int64_t master_id;      /* SHMQ_CTRL_NO_MASTER when none */
    int32_t master_epoch;   /* bumped by every election */
    int32_t sync_epoch;     /* bumped by every change of the sync-state set */
    int nsync;
    int64_t sync[SHMQ_CTRL_MAX_REPLICAS];
    int nreplicas;
    shmq_ctrl_replica_t replicas[SHMQ_CTRL_MAX_REPLICAS];
    bool elect_pending; /* the leader's memory: an ELECT is in the log, not yet applied */
} shmq_ctrl_set_t;

typedef struct shmq_ctrl_member {
    int64_t id;
    char address[SHMQ_CTRL_ADDR_MAX]; /* where it serves clients */
} shmq_ctrl_member_t;

typedef struct shmq_ctrl_state {
    int nsets;
    shmq_ctrl_set_t sets[SHMQ_CTRL_MAX_SETS];
    int nmembers;
    shmq_ctrl_member_t members[SHMQ_CTRL_MAX_MEMBERS];
    uint64_t applied; /* commands applied (refused ones included) */
} shmq_ctrl_state_t;

/* What one apply did. */
typedef struct shmq_ctrl_result {
    int rc;               /* 0, or SHMQ_E_ARG / SHMQ_E_NOT_FOUND / SHMQ_E_RANGE */
    char error[160];      /* why, when rc < 0 */
    int64_t broker_id;    /* register: the id; elect: the new master */
    int32_t master_epoch; /* elect, alter: the set's epochs after */
    int32_t sync_epoch;
} shmq_ctrl_result_t;

void shmq_ctrl_state_init(shmq_ctrl_state_t *s);

/* Apply one replicated command (REGISTER, ELECT, ALTER_SYNC, MEMBER). */
void shmq_ctrl_apply(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res);

/* The replica an ELECT command c would make master of set (the live ones
 * of c->alive, in the sync-state set unless c->unclean or the set never had
 * a master; c->broker_id when not 0; the highest epoch, then the longest
 * log, then the lowest id), or NULL: no election.  Changes nothing. */
const shmq_ctrl_report_t *shmq_ctrl_elect_candidate(const shmq_ctrl_set_t *set,
                                                    const shmq_ctrl_cmd_t *c);

shmq_ctrl_set_t *shmq_ctrl_set_find(shmq_ctrl_state_t *s, const char *broker_name);
shmq_ctrl_replica_t *shmq_ctrl_replica_find(shmq_ctrl_set_t *set, int64_t broker_id);
bool shmq_ctrl_in_sync(const shmq_ctrl_set_t *set, int64_t broker_id);
const char *shmq_ctrl_member_address(const shmq_ctrl_state_t *s, int64_t id);

/* One broker set as JSON (status, replica info): new reference, NULL on ENOMEM. */
json_t *shmq_ctrl_set_json(const shmq_ctrl_set_t *set);

/* The replicated state as a snapshot: malloc'd JSON text.  0 or -ENOMEM. */
int shmq_ctrl_state_encode(const shmq_ctrl_state_t *s, char **out, size_t *len);

/* A snapshot back into s (replaced only when the whole text is valid).
 * 0, or SHMQ_E_JSON / SHMQ_E_ARG with a detail. */
int shmq_ctrl_state_decode(shmq_ctrl_state_t *s, const char *text, size_t len);

#endif
