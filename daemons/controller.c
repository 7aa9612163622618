/*
 * shmq-controller: one member of a controller group (RocketMQ 5's
 * controller mode, DLedger replaced by canonical's Raft library): three or
 * more of them keep the broker sets' replicas, masters, master epochs and
 * sync-state sets in a replicated state machine, and the leader elects a
 * new master for a broker set whose master stopped sending heartbeats.
 *
 * Started by an operator or a service manager, not by shmqd:
 *
 *   shmq-controller [-c FILE] [--set KEY=VALUE]...
 *
 * Owns controllerStorePath (the Raft log, its term and vote, and the
 * snapshots: written by libraft, durable) and the client port
 * (controllerListen, controller_client.c).  The replicated state lives in
 * memory and is rebuilt from the snapshot and the log at each start; the
 * brokers' heartbeats live only in the leader's memory.
 *
 * Signals: SIGTERM and SIGINT stop it cleanly (exit 0).  Killed mid-way,
 * it loses nothing the group committed: the log is on disk, and a restart
 * rejoins the group from it.  Exit codes: 0 stopped, 1 error, 2
 * configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "controller.h"
#include "shmq/errors.h"

#define TICK_MS 100

static void usage(FILE *f)
{
    fprintf(f, "usage: shmq-controller [-c FILE] [--set KEY=VALUE]...\n"
               "    Run one controller of a group (docs/controller.md).\n"
               "Options:\n"
               "    -c, --config FILE     read the controller's keys from FILE\n"
               "    --set KEY=VALUE       set a key (repeatable, after the file)\n"
               "    -h, --help            this text\n"
               "Exit status: 0 stopped by SIGTERM or SIGINT, 1 error, 2 configuration error.\n");
}

uint64_t ctrl_now_ms(ctrl_t *c)
{
    return uv_now(&c->loop);
}

const char *ctrl_role_name(ctrl_t *c)
{
    switch (raft_state(&c->raft)) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

/* ---- the state machine -------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    ctrl_t *c = fsm->data;
    shmq_ctrl_cmd_t cmd;
    char err[160];

    memset(&c->last_result, 0, sizeof(c->last_result));
    if (shmq_ctrl_cmd_decode(buf->base, buf->len, true, &cmd, err, sizeof(err)) < 0) {
        /* Every controller decodes the same bytes the same way: all skip it. */
        shmq_log(SHMQ_LOG_ERROR, "log entry %llu refused: %s",
                 (unsigned long long)raft_last_applied(&c->raft) + 1, err);
        c->last_result.rc = SHMQ_E_ARG;
        snprintf(c->last_result.error, sizeof(c->last_result.error), "%s", err);
    } else {
        shmq_ctrl_apply(c->state, &cmd, &c->last_result);
        if (cmd.kind == SHMQ_CTRL_CMD_ELECT && c->last_result.rc == 0) {
            shmq_log(SHMQ_LOG_INFO, "%s: brokerId %lld is master, epoch %d", cmd.broker_name,
                     (long long)c->last_result.broker_id, c->last_result.master_epoch);
        }
    }
    *result = &c->last_result;
    return 0;
}

/* Snapshots: the state's JSON in one buffer, released by snapshot_finalize. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    ctrl_t *c = fsm->data;
    char *text;
    size_t len;
    if (shmq_ctrl_state_encode(c->state, &text, &len) < 0) {
        return RAFT_NOMEM;
    }
    size_t padded = (len + 7) & ~(size_t)7; /* 8-byte words, as the log entries */
    *bufs = raft_malloc(sizeof(**bufs));
    void *copy = raft_malloc(padded);
    if (!*bufs || !copy) {
        raft_free(*bufs);
        raft_free(copy);
        free(text);
        return RAFT_NOMEM;
    }
    memcpy(copy, text, len);
    memset((char *)copy + len, ' ', padded - len);
    free(text);
    (*bufs)[0].base = copy;
    (*bufs)[0].len = padded;
    *n_bufs = 1;
    shmq_log(SHMQ_LOG_INFO, "snapshot at applied index %llu (%zu bytes)",
             (unsigned long long)raft_last_applied(&c->raft), len);
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            raft_free((*bufs)[i].base);
        }
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    ctrl_t *c = fsm->data;
    shmq_error_clear();
    if (shmq_ctrl_state_decode(c->state, buf->base, buf->len) < 0) {
        shmq_log(SHMQ_LOG_ERROR, "snapshot refused: %s", shmq_error_detail());
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    shmq_log(SHMQ_LOG_INFO, "state restored from a snapshot: %d broker sets", c->state->nsets);
    return 0;
}

/* ---- proposals ------------------------------------------------------------------------ */

typedef struct proposal_ctx {
    ctrl_proposal_t p;
    ctrl_t *c;
} proposal_ctx_t;

static void proposal_cb(struct raft_apply *req, int status, void *result)
{
    proposal_ctx_t *x = req->data;
    ctrl_t *c = x->c;
    shmq_ctrl_result_t res;
    if (status == 0 && result) {
        res = *(const shmq_ctrl_result_t *)result;
    } else {
        memset(&res, 0, sizeof(res));
        res.rc = SHMQ_E_ARG;
        snprintf(res.error, sizeof(res.error), "not committed: %s", raft_strerror(status));
    }
    if (x->p.cmd.kind == SHMQ_CTRL_CMD_ELECT) {
        shmq_ctrl_set_t *set = shmq_ctrl_set_find(c->state, x->p.cmd.broker_name);
        if (set) {
            set->elect_pending = false;
        }
        if (res.rc < 0) {
            shmq_log(SHMQ_LOG_WARN, "%s: no new master: %s", x->p.cmd.broker_name, res.error);
        }
    }
    if (x->p.cmd.kind == SHMQ_CTRL_CMD_REGISTER && res.rc == 0) {
        /* A replica that just registered counts as alive from now on. */
        shmq_ctrl_set_t *set = shmq_ctrl_set_find(c->state, x->p.cmd.broker_name);
        shmq_ctrl_replica_t *r = set ? shmq_ctrl_replica_find(set, res.broker_id) : NULL;
        if (r) {
            r->hb_ms = ctrl_now_ms(c);
            r->hb_max_offset = x->p.cmd.max_offset;
            r->hb_epoch = x->p.cmd.epoch;
        }
    }
    if (x->p.client) {
        ctrl_client_applied(c, x->p.client, &x->p.cmd, status, &res);
    }
    free(x);
}

int ctrl_propose(ctrl_t *c, const shmq_ctrl_cmd_t *cmd, ctrl_client_t *client)
{
    char *text;
    size_t len;
    struct raft_buffer buf;
    proposal_ctx_t *x;
    int rv;

    if (shmq_ctrl_cmd_encode(cmd, &text, &len) < 0) {
        return -ENOMEM;
    }
    /* Entries of a multiple of 8 bytes (JSON's trailing blanks): libraft's
     * segments are made of 8-byte words, and 0.15 can close a segment short
     * of an entry of another length at shutdown (canonical/raft#180). */
    size_t padded = (len + 7) & ~(size_t)7;
    x = calloc(1, sizeof(*x));
    buf.base = raft_malloc(padded);
    if (!x || !buf.base) {
        free(x);
        raft_free(buf.base);
        free(text);
        return -ENOMEM;
    }
    memcpy(buf.base, text, len);
    memset((char *)buf.base + len, ' ', padded - len);
    buf.len = padded;
    free(text);
    x->c = c;
    x->p.client = client;
    x->p.cmd = *cmd;
    x->p.req.data = x;
    rv = raft_apply(&c->raft, &x->p.req, &buf, 1, proposal_cb);
    if (rv != 0) {
        raft_free(buf.base);
        free(x);
        return rv == RAFT_NOTLEADER ? -ENOTCONN : -EIO;
    }
    return 0;
}

/* ---- the leader's duties -------------------------------------------------------------- */

/* Became leader: tell the group where this controller serves clients, and give
 * every replica a full timeout to find the new leader with its heartbeats. */
static void leadership_gained(ctrl_t *c)
{
    shmq_ctrl_cmd_t cmd;
    uint64_t now = ctrl_now_ms(c);
    const char *known = shmq_ctrl_member_address(c->state, (int64_t)c->self->raft_id);

    shmq_log(SHMQ_LOG_INFO, "leader of %s (term %llu)", c->cfg.group,
             (unsigned long long)c->raft.current_term);
    c->leader_since_ms = now;
    for (int i = 0; i < c->state->nsets; i++) {
        shmq_ctrl_set_t *set = &c->state->sets[i];
        set->elect_pending = false;
        for (int j = 0; j < set->nreplicas; j++) {
            set->replicas[j].hb_ms = now;
            set->replicas[j].hb_max_offset = set->replicas[j].max_offset;
            set->replicas[j].hb_epoch = set->replicas[j].epoch;
        }
    }
    if (!known || strcmp(known, c->cfg.listen)) {
        memset(&cmd, 0, sizeof(cmd));
        cmd.kind = SHMQ_CTRL_CMD_MEMBER;
        cmd.member_id = (int64_t)c->self->raft_id;
        snprintf(cmd.address, sizeof(cmd.address), "%s", c->cfg.listen);
        if (ctrl_propose(c, &cmd, NULL) < 0) {
            shmq_log(SHMQ_LOG_WARN, "cannot propose this controller's address");
        }
    }
}

static bool replica_alive(ctrl_t *c, const shmq_ctrl_replica_t *r, uint64_t now)
{
    return r->hb_ms && now - r->hb_ms <= (uint64_t)c->cfg.broker_timeout_ms;
}

/* Every broker set whose master is gone (its heartbeats stopped for
 * controllerBrokerTimeoutMillis) or that has none: propose ELECT_MASTER with
 * the live replicas as this leader sees them. */
static void scan_brokers(ctrl_t *c, uint64_t now)
{
    for (int i = 0; i < c->state->nsets; i++) {
        shmq_ctrl_set_t *set = &c->state->sets[i];
        shmq_ctrl_replica_t *m = set->master_id == SHMQ_CTRL_NO_MASTER
                                     ? NULL
                                     : shmq_ctrl_replica_find(set, set->master_id);
        shmq_ctrl_cmd_t cmd;
        if (set->elect_pending || (m && replica_alive(c, m, now))) {
            continue;
        }
        memset(&cmd, 0, sizeof(cmd));
        cmd.kind = SHMQ_CTRL_CMD_ELECT;
        snprintf(cmd.broker_name, sizeof(cmd.broker_name), "%s", set->broker_name);
        cmd.unclean = c->cfg.elect_unclean;
        for (int j = 0; j < set->nreplicas; j++) {
            shmq_ctrl_replica_t *r = &set->replicas[j];
            if (r != m && replica_alive(c, r, now)) {
                cmd.alive[cmd.nalive].broker_id = r->broker_id;
                cmd.alive[cmd.nalive].max_offset = r->hb_max_offset;
                cmd.alive[cmd.nalive].epoch = r->hb_epoch;
                cmd.nalive++;
            }
        }
        if (cmd.nalive == 0) {
            continue; /* nobody to elect: wait for a heartbeat */
        }
        if (!shmq_ctrl_elect_candidate(set, &cmd)) {
            /* Nothing goes to the log while nobody can be elected. */
            shmq_log(SHMQ_LOG_WARN,
                     "%s: no new master: no live replica in the sync-state set can be "
                     "master%s",
                     set->broker_name, cmd.unclean ? "" : " (enableElectUncleanMaster is false)");
            continue;
        }
        if (m) {
            shmq_log(SHMQ_LOG_WARN, "%s: master brokerId %lld sent no heartbeat for %llu ms",
                     set->broker_name, (long long)m->broker_id,
                     (unsigned long long)(now - m->hb_ms));
        }
        if (ctrl_propose(c, &cmd, NULL) == 0) {
            set->elect_pending = true;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    ctrl_t *c = t->data;
    bool leader = raft_state(&c->raft) == RAFT_LEADER;
    uint64_t now = ctrl_now_ms(c);
    uint64_t scan_every = (uint64_t)c->cfg.broker_timeout_ms / 4;

    if (leader && !c->leader) {
        leadership_gained(c);
    } else if (!leader && c->leader) {
        shmq_log(SHMQ_LOG_INFO, "no longer the leader (now %s)", ctrl_role_name(c));
    }
    c->leader = leader;
    if (scan_every < TICK_MS) {
        scan_every = TICK_MS;
    }
    /* Raft applies the log before this leader's first scan: the state is current. */
    if (leader && now - c->last_scan_ms >= scan_every &&
        raft_last_applied(&c->raft) >= raft_last_index(&c->raft)) {
        c->last_scan_ms = now;
        scan_brokers(c, now);
    }
}

/* ---- start and stop ------------------------------------------------------------------- */

static void on_raft_closed(struct raft *r)
{
    ctrl_t *c = r->data;
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    uv_close((uv_handle_t *)&c->sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    ctrl_t *c = s->data;
    if (c->stopping) {
        return;
    }
    c->stopping = true;
    shmq_log(SHMQ_LOG_INFO, "%s: stopping", strsignal(signum));
    uv_timer_stop(&c->tick);
    ctrl_clients_close(c);
    c->raft.data = c;
    raft_close(&c->raft, on_raft_closed);
}

static void config_warn(const char *msg)
{
    fprintf(stderr, "shmq-controller: warning: %s\n", msg);
}

static int config_fail(const char *what, int rc)
{
    const char *d = shmq_error_detail();
    fprintf(stderr, "shmq-controller: %s: %s\n", what, d[0] ? d : shmq_strerror(rc));
    return 2;
}

static int parse_args(ctrl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"set", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof(*sets));
    int nsets = 0, opt, rc = 0;

    if (!sets) {
        return 1;
    }
    shmq_ctrl_config_defaults(&c->cfg);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 's':
            sets[nsets++] = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = -1;
            goto out;
        case ':':
            fprintf(stderr, "shmq-controller: option %s needs a value\n", argv[optind - 1]);
            usage(stderr);
            rc = 2;
            goto out;
        default:
            fprintf(stderr, "shmq-controller: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            rc = 2;
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmq-controller: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        rc = 2;
        goto out;
    }
    if (file && (rc = shmq_ctrl_config_load(&c->cfg, file, config_warn)) < 0) {
        rc = config_fail(file, rc);
        goto out;
    }
    for (int i = 0; i < nsets; i++) {
        char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i]) {
            fprintf(stderr, "shmq-controller: --set expects KEY=VALUE, got '%s'\n", sets[i]);
            rc = 2;
            goto out;
        }
        *eq = '\0';
        shmq_error_clear();
        rc = shmq_ctrl_config_set(&c->cfg, sets[i], eq + 1, config_warn);
        *eq = '=';
        if (rc < 0) {
            rc = config_fail("--set", rc);
            goto out;
        }
    }
    shmq_error_clear();
    if ((rc = shmq_ctrl_config_validate(&c->cfg)) < 0) {
        rc = config_fail("configuration", rc);
        goto out;
    }
    c->self = shmq_ctrl_config_self(&c->cfg);
out:
    free(sets);
    return rc;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int start_raft(ctrl_t *c)
{
    struct raft_configuration conf;
    int rv;

    if ((rv = raft_uv_tcp_init(&c->transport, &c->loop)) != 0) {
        shmq_log(SHMQ_LOG_ERROR, "raft transport: %s", raft_strerror(rv));
        return 1;
    }
    if ((rv = raft_uv_init(&c->io, &c->loop, c->cfg.store_path, &c->transport)) != 0) {
        shmq_log(SHMQ_LOG_ERROR, "raft store %s: %s", c->cfg.store_path, raft_strerror(rv));
        return 1;
    }
    c->fsm.version = 2;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm.restore = fsm_restore;
    if ((rv = raft_init(&c->raft, &c->io, &c->fsm, c->self->raft_id, c->self->address)) != 0) {
        shmq_log(SHMQ_LOG_ERROR, "raft: %s", raft_errmsg(&c->raft));
        return 1;
    }
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, (unsigned)c->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, (unsigned)c->cfg.election_timeout_ms / 10 + 1);
    raft_set_snapshot_threshold(&c->raft, (unsigned)c->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, (unsigned)c->cfg.snapshot_threshold / 2 + 1);
    raft_set_pre_vote(&c->raft, true);
    raft_configuration_init(&conf);
    for (int i = 0; i < c->cfg.npeers; i++) {
        rv = raft_configuration_add(&conf, c->cfg.peers[i].raft_id, c->cfg.peers[i].address,
                                    RAFT_VOTER);
        if (rv != 0) {
            raft_configuration_close(&conf);
            shmq_log(SHMQ_LOG_ERROR, "raft configuration: %s", raft_strerror(rv));
            return 1;
        }
    }
    /* Every member starts from the same configuration; a store that has
     * state already (a restart) keeps its own. */
    rv = raft_bootstrap(&c->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        shmq_log(SHMQ_LOG_ERROR, "raft bootstrap in %s: %s", c->cfg.store_path, raft_strerror(rv));
        return 1;
    }
    if ((rv = raft_start(&c->raft)) != 0) {
        shmq_log(SHMQ_LOG_ERROR, "raft start from %s: %s", c->cfg.store_path,
                 raft_errmsg(&c->raft));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ctrl_t *c = calloc(1, sizeof(*c));
    int rc;

    shmq_log_init("shmq-controller");
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not a death */
    if (!c || !(c->state = calloc(1, sizeof(*c->state)))) {
        fprintf(stderr, "shmq-controller: out of memory\n");
        return 1;
    }
    shmq_ctrl_state_init(c->state);
    rc = parse_args(c, argc, argv);
    if (rc != 0) {
        free(c->state);
        free(c);
        return rc < 0 ? 0 : rc;
    }
    if ((rc = mkdir_p(c->cfg.store_path)) < 0) {
        fprintf(stderr, "shmq-controller: controllerStorePath=%s: %s\n", c->cfg.store_path,
                strerror(-rc));
        return 2;
    }
    uv_loop_init(&c->loop);
    if (start_raft(c) != 0) {
        return 1;
    }
    if (ctrl_clients_listen(c) != 0) {
        c->stopping = true;
        raft_close(&c->raft, NULL);
        return 1;
    }
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(&c->loop, &c->sigterm);
    uv_signal_init(&c->loop, &c->sigint);
    c->sigterm.data = c->sigint.data = c;
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    shmq_log(SHMQ_LOG_INFO, "%s of %s: Raft %s (id %llu), clients on %s, store %s", c->self->name,
             c->cfg.group, c->self->address, (unsigned long long)c->self->raft_id, c->cfg.listen,
             c->cfg.store_path);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&c->loop);
    if (rc != 0) {
        shmq_log(SHMQ_LOG_WARN, "loop closed with handles open: %s", uv_strerror(rc));
    }
    shmq_log(SHMQ_LOG_INFO, "stopped");
    free(c->state);
    free(c);
    return 0;
}
