/*
 * shmq-controller's client port (controllerListen): brokers and tools send
 * frames (format/controller_frame.h) and get one answer per frame, in
 * order.  Bounded: at most MAX_CLIENTS connections, one frame of at most
 * SHMQ_CTRL_FRAME_MAX bytes handled at a time per connection (reading
 * pauses while its command goes through the log), IDLE_MS of silence
 * closes a connection.  A frame whose head announces too many bytes closes
 * the connection; a body that is not a valid command gets an error answer
 * and the connection goes on.
 *
 * Who answers what: status and replica_info, any controller (its own view,
 * with its role); heartbeat, register, elect_master and
 * alter_sync_state_set, only the leader; a follower answers NOT_LEADER with
 * the leader's client address when it knows it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "controller.h"
#include "shmq/errors.h"

#define MAX_CLIENTS 256
#define IDLE_MS     60000

struct ctrl_client {
    ctrl_t *ctrl;
    shmq_net_conn_t *conn;
    uint8_t buf[SHMQ_CTRL_FRAME_HEAD + SHMQ_CTRL_FRAME_MAX];
    size_t len;
    bool pending;               /* a command of this client is in the log */
    bool closed;                /* the connection is gone; free when the command comes back */
    ctrl_client_t *prev, *next; /* ctrl->clients, while open */
};

static void client_process(ctrl_client_t *cl);

static void send_json(ctrl_client_t *cl, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        shmq_net_conn_close(cl->conn, "out of memory");
        return;
    }
    size_t len = strlen(text);
    uint32_t head = htonl((uint32_t)len);
    struct iovec iov[2] = {{&head, sizeof(head)}, {text, len}};
    if (shmq_net_conn_writev(cl->conn, iov, 2) == -EAGAIN) {
        shmq_net_conn_close(cl->conn, "answers not read");
    }
    free(text);
}

static void send_error(ctrl_client_t *cl, const char *code, const char *error)
{
    send_json(cl, json_pack("{sbssss}", "ok", 0, "code", code, "error", error));
}

static void send_not_leader(ctrl_client_t *cl)
{
    ctrl_t *c = cl->ctrl;
    raft_id id = 0;
    const char *raft_addr = NULL;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &raft_addr);
    if (id) {
        addr = shmq_ctrl_member_address(c->state, (int64_t)id);
    }
    send_json(
        cl,
        json_pack("{sbssssssss}", "ok", 0, "code", id ? "NOT_LEADER" : "NO_LEADER", "error",
                  id ? "this controller is not the leader" : "the group has no leader (no quorum)",
                  "leader", addr ? addr : "", "leaderRaftAddress", raft_addr ? raft_addr : ""));
}

/* The leader's view of a set's replicas added to its JSON: alive, and the log end and epoch
 * of each one's last heartbeat (newer than the registered ones, which the log holds). */
static void add_heartbeats(ctrl_t *c, const shmq_ctrl_set_t *set, json_t *j, uint64_t now)
{
    json_t *reps = json_object_get(j, "replicas");
    for (int k = 0; k < set->nreplicas; k++) {
        const shmq_ctrl_replica_t *r = &set->replicas[k];
        bool alive = r->hb_ms && now - r->hb_ms <= (uint64_t)c->cfg.broker_timeout_ms;
        json_t *rj = json_array_get(reps, (size_t)k);
        json_object_set_new(rj, "alive", json_boolean(alive));
        if (r->hb_ms) {
            json_object_set_new(rj, "maxOffset", json_integer(r->hb_max_offset));
            json_object_set_new(rj, "epoch", json_integer(r->hb_epoch));
        }
    }
}

static json_t *status_json(ctrl_t *c)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    json_t *o, *members = json_array(), *sets = json_array();
    uint64_t now = ctrl_now_ms(c);
    bool leader = raft_state(&c->raft) == RAFT_LEADER;

    raft_leader(&c->raft, &lid, &laddr);
    for (int i = 0; i < c->cfg.npeers; i++) {
        const shmq_ctrl_peer_t *p = &c->cfg.peers[i];
        const char *ca = shmq_ctrl_member_address(c->state, (int64_t)p->raft_id);
        json_array_append_new(members,
                              json_pack("{sssIsssssb}", "id", p->name, "raftId",
                                        (json_int_t)p->raft_id, "raftAddress", p->address,
                                        "address", ca ? ca : "", "leader", p->raft_id == lid));
    }
    for (int i = 0; i < c->state->nsets; i++) {
        const shmq_ctrl_set_t *set = &c->state->sets[i];
        json_t *j = shmq_ctrl_set_json(set);
        if (j && leader) {
            /* Only the leader hears heartbeats: it alone can say who is alive. */
            add_heartbeats(c, set, j, now);
        }
        json_array_append_new(sets, j);
    }
    o = json_pack("{sbsss{sssIssss}sIsIsIsoso}", "ok", 1, "group", c->cfg.group, "self", "id",
                  c->self->name, "raftId", (json_int_t)c->self->raft_id, "role", ctrl_role_name(c),
                  "address", c->cfg.listen, "leaderRaftId", (json_int_t)lid, "term",
                  (json_int_t)c->raft.current_term, "appliedIndex",
                  (json_int_t)raft_last_applied(&c->raft), "members", members, "brokerSets", sets);
    if (o) {
        const char *ca = lid ? shmq_ctrl_member_address(c->state, (int64_t)lid) : NULL;
        json_object_set_new(o, "leader", json_string(ca ? ca : ""));
        json_object_set_new(o, "electUncleanMaster", json_boolean(c->cfg.elect_unclean));
    }
    return o;
}

static json_t *set_answer(shmq_ctrl_set_t *set)
{
    json_t *o = shmq_ctrl_set_json(set);
    if (o) {
        json_object_set_new(o, "ok", json_true());
    }
    return o;
}

static void handle_heartbeat(ctrl_client_t *cl, const shmq_ctrl_cmd_t *cmd)
{
    ctrl_t *c = cl->ctrl;
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(c->state, cmd->broker_name);
    shmq_ctrl_replica_t *r = set ? shmq_ctrl_replica_find(set, cmd->broker_id) : NULL;
    if (!r) {
        send_error(cl, "NOT_REGISTERED", "no such replica: register first");
        return;
    }
    r->hb_ms = ctrl_now_ms(c);
    r->hb_max_offset = cmd->max_offset;
    r->hb_epoch = cmd->epoch;
    json_t *o = set_answer(set);
    if (o) {
        add_heartbeats(c, set, o, r->hb_ms);
        /* The broker's lease is half of it (docs/controller.md "Fencing"): brokers need no
         * setting of their own that could disagree with the group's. */
        json_object_set_new(o, "brokerTimeoutMillis", json_integer(c->cfg.broker_timeout_ms));
    }
    send_json(cl, o);
}

void ctrl_client_applied(ctrl_t *c, ctrl_client_t *cl, const shmq_ctrl_cmd_t *cmd, int status,
                         const shmq_ctrl_result_t *res)
{
    cl->pending = false;
    if (cl->closed) {
        free(cl);
        return;
    }
    if (status != 0) {
        send_error(cl,
                   status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER ? "NOT_LEADER"
                                                                             : "NOT_COMMITTED",
                   res->error);
    } else if (res->rc < 0) {
        send_error(cl, "REFUSED", res->error);
    } else {
        shmq_ctrl_set_t *set = shmq_ctrl_set_find(cl->ctrl->state, cmd->broker_name);
        json_t *o = set ? set_answer(set) : json_pack("{sb}", "ok", 1);
        json_object_set_new(o, "brokerId", json_integer(res->broker_id));
        /* As in a heartbeat's answer: a store registering again may get its lease from it. */
        json_object_set_new(o, "brokerTimeoutMillis", json_integer(c->cfg.broker_timeout_ms));
        send_json(cl, o);
    }
    shmq_net_conn_resume_read(cl->conn);
    client_process(cl);
}

/* Handle one frame's body. */
static void handle_frame(ctrl_client_t *cl, const char *body, size_t len)
{
    ctrl_t *c = cl->ctrl;
    shmq_ctrl_cmd_t cmd;
    char err[200];
    int rc;

    if (shmq_ctrl_cmd_decode(body, len, false, &cmd, err, sizeof(err)) < 0) {
        send_error(cl, "BAD_REQUEST", err);
        return;
    }
    switch (cmd.kind) {
    case SHMQ_CTRL_CMD_STATUS:
        send_json(cl, status_json(c));
        return;
    case SHMQ_CTRL_CMD_REPLICA_INFO: {
        shmq_ctrl_set_t *set = shmq_ctrl_set_find(c->state, cmd.broker_name);
        if (!set) {
            send_error(cl, "NOT_FOUND", "no such broker set");
        } else {
            json_t *o = set_answer(set);
            json_object_set_new(o, "role", json_string(ctrl_role_name(c)));
            send_json(cl, o);
        }
        return;
    }
    default:
        break;
    }
    if (raft_state(&c->raft) != RAFT_LEADER) {
        send_not_leader(cl);
        return;
    }
    if (cmd.kind == SHMQ_CTRL_CMD_HEARTBEAT) {
        handle_heartbeat(cl, &cmd);
        return;
    }
    if (cmd.kind == SHMQ_CTRL_CMD_ELECT) {
        /* An operator's election: the live replicas as this leader sees them. */
        shmq_ctrl_set_t *set = shmq_ctrl_set_find(c->state, cmd.broker_name);
        uint64_t now = ctrl_now_ms(c);
        if (!set) {
            send_error(cl, "NOT_FOUND", "no such broker set");
            return;
        }
        cmd.unclean = c->cfg.elect_unclean;
        for (int i = 0; i < set->nreplicas; i++) {
            shmq_ctrl_replica_t *r = &set->replicas[i];
            if (r->hb_ms && now - r->hb_ms <= (uint64_t)c->cfg.broker_timeout_ms) {
                cmd.alive[cmd.nalive].broker_id = r->broker_id;
                cmd.alive[cmd.nalive].max_offset = r->hb_max_offset;
                cmd.alive[cmd.nalive].epoch = r->hb_epoch;
                cmd.nalive++;
            }
        }
    }
    rc = ctrl_propose(c, &cmd, cl);
    if (rc < 0) {
        if (rc == -ENOTCONN) {
            send_not_leader(cl);
        } else {
            send_error(cl, "NOT_COMMITTED", "the log did not take the command");
        }
        return;
    }
    cl->pending = true;
    shmq_net_conn_pause_read(cl->conn);
}

/* Handle the complete frames buffered, until one goes to the log. */
static void client_process(ctrl_client_t *cl)
{
    size_t off = 0;
    while (!cl->pending && !cl->closed) {
        long size = shmq_ctrl_frame_size(cl->buf + off, cl->len - off);
        if (size < 0) {
            shmq_log(SHMQ_LOG_WARN, "client %s: a frame head over %u bytes: closed",
                     shmq_net_conn_peer(cl->conn), SHMQ_CTRL_FRAME_MAX);
            shmq_net_conn_close(cl->conn, "frame too big");
            return;
        }
        if (size == 0 || (size_t)size > cl->len - off) {
            break;
        }
        handle_frame(cl, (const char *)cl->buf + off + SHMQ_CTRL_FRAME_HEAD,
                     (size_t)size - SHMQ_CTRL_FRAME_HEAD);
        off += (size_t)size;
    }
    if (off) {
        memmove(cl->buf, cl->buf + off, cl->len - off);
        cl->len -= off;
    }
}

static void on_read(shmq_net_conn_t *conn, const char *data, size_t len)
{
    ctrl_client_t *cl = shmq_net_conn_arg(conn);
    while (len && !cl->closed) {
        size_t room = sizeof(cl->buf) - cl->len;
        size_t take = len < room ? len : room;
        if (take == 0) {
            /* A whole frame is buffered and waits for the log: no more now. */
            shmq_net_conn_pause_read(conn);
            return;
        }
        memcpy(cl->buf + cl->len, data, take);
        cl->len += take;
        data += take;
        len -= take;
        client_process(cl);
        if (cl->pending && len) {
            /* Keep the rest for after the answer: it fits, the frame being handled left. */
            room = sizeof(cl->buf) - cl->len;
            if (len > room) {
                shmq_net_conn_close(conn, "too many requests in flight");
                return;
            }
            memcpy(cl->buf + cl->len, data, len);
            cl->len += len;
            return;
        }
    }
}

static void on_close(shmq_net_conn_t *conn, const char *reason)
{
    ctrl_client_t *cl = shmq_net_conn_arg(conn);
    (void)reason;
    ctrl_t *c = cl->ctrl;
    c->nclients--;
    cl->closed = true;
    if (cl->prev) {
        cl->prev->next = cl->next;
    } else {
        c->clients = cl->next;
    }
    if (cl->next) {
        cl->next->prev = cl->prev;
    }
    if (!cl->pending) {
        free(cl);
    }
}

static void on_accept(shmq_net_listener_t *l, shmq_net_conn_t *conn, int err)
{
    ctrl_t *c = shmq_net_listener_arg(l);
    ctrl_client_t *cl;
    if (!conn) {
        shmq_log(SHMQ_LOG_WARN, "accept: %s", uv_strerror(err));
        return;
    }
    cl = calloc(1, sizeof(*cl));
    if (!cl || c->nclients >= MAX_CLIENTS || c->stopping) {
        free(cl);
        shmq_net_conn_set_arg(conn, NULL);
        shmq_log(SHMQ_LOG_WARN, "client %s refused: %d connections already",
                 shmq_net_conn_peer(conn), c->nclients);
        shmq_net_conn_close(conn, "too many connections");
        return;
    }
    cl->ctrl = c;
    cl->conn = conn;
    c->nclients++;
    cl->next = c->clients;
    if (cl->next) {
        cl->next->prev = cl;
    }
    c->clients = cl;
    shmq_net_conn_set_arg(conn, cl);
}

static void on_close_refused(shmq_net_conn_t *conn, const char *reason)
{
    if (shmq_net_conn_arg(conn)) {
        on_close(conn, reason);
    }
}

static void on_read_any(shmq_net_conn_t *conn, const char *data, size_t len)
{
    if (shmq_net_conn_arg(conn)) {
        on_read(conn, data, len);
    }
}

int ctrl_clients_listen(ctrl_t *c)
{
    shmq_net_listen_cfg_t cfg = {
        .on_accept = on_accept,
        .arg = c,
        .conn = {.on_read = on_read_any,
                 .on_close = on_close_refused,
                 .idle_ms = IDLE_MS,
                 .high_water = 1u << 20},
    };
    int rc = shmq_net_listen(&c->loop, c->cfg.listen, &cfg, &c->listener);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "controllerListen=%s: %s", c->cfg.listen, shmq_error_detail());
        return 1;
    }
    return 0;
}

void ctrl_clients_close(ctrl_t *c)
{
    if (c->listener) {
        shmq_net_listener_close(c->listener);
        c->listener = NULL;
    }
    for (ctrl_client_t *cl = c->clients; cl; cl = cl->next) {
        shmq_net_conn_close(cl->conn, "the controller stops");
    }
}
