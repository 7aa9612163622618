/*
 * shmq-controller's parts: the process (controller.c: configuration, the
 * Raft server and its state machine, leadership, the brokers' heartbeat
 * timeouts, signals) and the client protocol (controller_client.c:
 * frames from brokers and tools, answered from the state or through the
 * Raft log).  Everything runs on one libuv loop in one thread.
 */
#ifndef SHMQ_DAEMON_CONTROLLER_H
#define SHMQ_DAEMON_CONTROLLER_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

#include "format/controller_config.h"
#include "format/controller_frame.h"
#include "format/controller_state.h"
#include "net/net.h"

typedef struct ctrl_client ctrl_client_t;

/* A command on its way through the log; client NULL for the leader's own. */
typedef struct ctrl_proposal {
    struct raft_apply req;
    ctrl_client_t *client;
    shmq_ctrl_cmd_t cmd;
} ctrl_proposal_t;

typedef struct ctrl {
    shmq_ctrl_config_t cfg;
    const shmq_ctrl_peer_t *self;
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    shmq_net_listener_t *listener;
    shmq_ctrl_state_t *state;
    shmq_ctrl_result_t last_result; /* the last apply's, read by its proposal's callback */
    bool leader;                    /* what the last tick saw */
    uint64_t leader_since_ms;
    uint64_t last_scan_ms;
    int nclients;
    ctrl_client_t *clients; /* the open connections (controller_client.c) */
    bool stopping;
} ctrl_t;

/* controller.c */
int ctrl_propose(ctrl_t *c, const shmq_ctrl_cmd_t *cmd, ctrl_client_t *client);
const char *ctrl_role_name(ctrl_t *c);
uint64_t ctrl_now_ms(ctrl_t *c);

/* controller_client.c */
int ctrl_clients_listen(ctrl_t *c);
/* A proposal's end: status 0 and the apply's result, or a Raft error. */
void ctrl_client_applied(ctrl_t *c, ctrl_client_t *client, const shmq_ctrl_cmd_t *cmd, int status,
                         const shmq_ctrl_result_t *res);
void ctrl_clients_close(ctrl_t *c);

#endif
