/*
 * shmq-ctrl-agent: the store's link to the controller group
 * (enableControllerMode=true, docs/controller.md "Brokers in controller
 * mode").  Started by shmqd as `shmq-ctrl-agent --store DIR` and restarted
 * by it like every worker; SIGTERM ends it.
 *
 * It registers the store with the controllers of controllerAddr (brokerName,
 * brokerId: 0 lets the controller assign one; its address is the store's
 * replication address, brokerIP1:haListenPort, the one a slave follows when
 * this store is master), then sends a heartbeat with the log end (wrote)
 * and the store's epoch every sixth of the group's broker timeout (at most
 * HEARTBEAT_MS; the answers carry the timeout: heartbeat_ms).  A follower's
 * NOT_LEADER names the leader, which is asked next; when no controller answers, the addresses are
 * tried in turn with a doubling pause (up to BACKOFF_MAX_MS).  Each request
 * is one short connection (shmq_net_exchange, at most IO_MS): the loop waits
 * on the network here, never in the master.
 *
 * After each heartbeat it compares the set's master with the store's role
 * (follow_master): a master reports its in-sync replicas
 * (ALTER_SYNC_STATE_SET); the elected slave asks shmqd to promote it
 * (role.promote, as `shmqctl role --promote`); a master the group did not
 * elect saves roleOverride as a slave of the elected one and asks shmqd to
 * start the store again (role.restart_store).  The role changes are
 * shmqd's; the agent only asks.
 *
 * It owns the control block's controller section (what the leader last
 * said: brokerId, the set's master and epoch, the leader's address); status
 * shows it.  The writer depends on one field of it, the lease (grant_lease,
 * docs/controller.md "Fencing"): each answer of the leader naming this
 * store master lets the store take writes until the heartbeat's send time
 * plus half the group's broker timeout; without one the writer refuses
 * every entry (SHMQ_E_NOT_MASTER).  A crash loses nothing but the link,
 * which the restarted agent builds again (a registered address keeps its
 * brokerId at the controller); the lease already granted runs on until its
 * time and is extended once the new agent is answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "format/controller_frame.h"
#include "format/role_override.h"
#include "net/net.h"
#include "shmq/errors.h"
#include "worker.h"

#define HEARTBEAT_MS     1000 /* between heartbeats, at most (heartbeat_ms) */
#define HEARTBEAT_MIN_MS 50
#define TIMEOUT_MIN_MS   100 /* controllerBrokerTimeoutMillis's range, as the controller's */
#define TIMEOUT_MAX_MS   600000
#define IO_MS            1000 /* one request: connect, send, answer */
#define BACKOFF_MIN_MS   200  /* after every controller failed once */
#define BACKOFF_MAX_MS   5000
#define REDIRECT_MS      20 /* before asking the leader a follower named */
#define LOG_EVERY_MS     10000
#define PROMOTE_RETRY_MS 10000 /* a failed promotion is asked again after this */

#define STORE_RELAXED(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

typedef struct ctrl_agent {
    char addrs[SHMQ_CONFIG_CONTROLLERS_MAX][SHMQ_CTL_ADDR_MAX];
    int naddrs;
    int next_addr;                  /* the next one to try when no leader is known */
    int tried;                      /* addresses failed since the last answer */
    char leader[SHMQ_CTL_ADDR_MAX]; /* the leader's client address ("" : not known) */
    char self_addr[SHMQ_CTL_ADDR_MAX];
    int64_t broker_id; /* 0 until registered */
    bool registered;
    int64_t next_mono; /* the next request at */
    int backoff_ms;
    int64_t logged_mono;       /* the last failure logged at (rate limit) */
    bool restarting;           /* asked shmqd to start the store again as a slave */
    int64_t promote_mono;      /* a promotion asked at (0: never) */
    int64_t broker_timeout_ms; /* the group's controllerBrokerTimeoutMillis (0: not known yet) */
    bool lease_held;           /* the lease was valid at the last look (logged on changes) */
    bool no_timeout_logged;    /* an answer without brokerTimeoutMillis was logged */
} ctrl_agent_t;

/* Copy an address into a control block field (relaxed bytes, NUL-terminated). */
static void publish_addr(char dst[SHMQ_CTL_ADDR_MAX], const char *src)
{
    char tmp[SHMQ_CTL_ADDR_MAX] = {0};
    snprintf(tmp, sizeof(tmp), "%s", src);
    memcpy(dst, tmp, sizeof(tmp));
}

static int parse_addrs(ctrl_agent_t *a, const char *list)
{
    const char *s = list;
    while (*s != '\0' && a->naddrs < SHMQ_CONFIG_CONTROLLERS_MAX) {
        size_t len = strcspn(s, ";");
        if (len > 0 && len < SHMQ_CTL_ADDR_MAX) {
            memcpy(a->addrs[a->naddrs], s, len);
            a->addrs[a->naddrs][len] = '\0';
            a->naddrs++;
        }
        s += len;
        if (*s == ';') {
            s++;
        }
    }
    return a->naddrs > 0 ? 0 : -1;
}

static int ctrl_agent_init(shmq_worker_t *w, void **state)
{
    ctrl_agent_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        shmq_log(SHMQ_LOG_ERROR, "out of memory");
        return SHMQ_EXIT_ERROR;
    }
    if (parse_addrs(a, w->cfg->controller_addr) < 0) {
        shmq_log(SHMQ_LOG_ERROR, "controllerAddr '%s': no controller address",
                 w->cfg->controller_addr);
        free(a);
        return SHMQ_EXIT_CONFIG;
    }
    snprintf(a->self_addr, sizeof(a->self_addr), "%s:%d",
             w->cfg->broker_ip1[0] ? w->cfg->broker_ip1 : "127.0.0.1", w->cfg->ha_listen_port);
    a->broker_id = w->cfg->broker_id;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->next_mono = 0;
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    STORE_RELAXED(cs->connected, 0);
    STORE_RELAXED(cs->broker_id, 0);
    STORE_RELAXED(cs->master_id, 0);
    shmq_log(SHMQ_LOG_INFO, "controller mode: broker set %s, address %s, controllers %s",
             w->cfg->broker_name, a->self_addr, w->cfg->controller_addr);
    *state = a;
    return 0;
}

static long answer_size(const uint8_t *buf, size_t len)
{
    return shmq_ctrl_frame_size(buf, len);
}

/* The request: register until registered, then heartbeats.  NULL when out of memory. */
static char *request_text(shmq_worker_t *w, ctrl_agent_t *a)
{
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    /* relaxed: a report, no data read under it */
    int32_t epoch = atomic_load_explicit(&w->ctl.blk->role.epoch, memory_order_relaxed);
    json_t *o;
    if (!a->registered) {
        o = json_pack("{sssssssIsssIsi}", "cmd", "register", "brokerName", w->cfg->broker_name,
                      "brokerAddress", a->self_addr, "brokerId", (json_int_t)a->broker_id,
                      "clusterName", w->cfg->broker_cluster_name, "maxOffset", (json_int_t)wrote,
                      "epoch", (int)epoch);
    } else {
        o = json_pack("{sssssIsssIsi}", "cmd", "heartbeat", "brokerName", w->cfg->broker_name,
                      "brokerId", (json_int_t)a->broker_id, "brokerAddress", a->self_addr,
                      "maxOffset", (json_int_t)wrote, "epoch", (int)epoch);
    }
    if (o == NULL) {
        return NULL;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* One failed attempt at target: the next address, and a pause once every one failed. */
static void failed(shmq_worker_t *w, ctrl_agent_t *a, const char *target, const char *why)
{
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    STORE_RELAXED(cs->connected, 0);
    atomic_fetch_add_explicit(&cs->failures, 1, memory_order_relaxed);
    if (a->logged_mono == 0 || w->mono_ms - a->logged_mono >= LOG_EVERY_MS) {
        shmq_log(SHMQ_LOG_WARN, "controller %s: %s", target, why);
        a->logged_mono = w->mono_ms;
    }
    a->leader[0] = '\0';
    a->next_addr = (a->next_addr + 1) % a->naddrs;
    if (++a->tried >= a->naddrs) {
        a->tried = 0;
        a->next_mono = w->mono_ms + a->backoff_ms;
        a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
    } else {
        a->next_mono = w->mono_ms;
    }
}

/* A set in the leader's answer: what status shows of it. */
static void take_set(shmq_worker_t *w, ctrl_agent_t *a, json_t *o)
{
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    json_t *id = json_object_get(o, "brokerId");
    if (!a->registered && json_is_integer(id) && json_integer_value(id) > 0) {
        a->broker_id = json_integer_value(id);
        a->registered = true;
        shmq_log(SHMQ_LOG_INFO, "registered with controller %s as brokerId %lld of %s", a->leader,
                 (long long)a->broker_id, w->cfg->broker_name);
    }
    json_t *mid = json_object_get(o, "masterId");
    json_t *mep = json_object_get(o, "masterEpoch");
    const char *maddr = json_string_value(json_object_get(o, "masterAddress"));
    int64_t old_master = atomic_load_explicit(&cs->master_id, memory_order_relaxed);
    if (json_is_integer(mid) && json_integer_value(mid) != old_master) {
        shmq_log(SHMQ_LOG_INFO, "the controller names brokerId %lld (%s) master of %s, epoch %lld",
                 (long long)json_integer_value(mid), maddr ? maddr : "?", w->cfg->broker_name,
                 (long long)json_integer_value(mep));
    }
    publish_addr(cs->master_addr, maddr ? maddr : "");
    STORE_RELAXED(cs->master_id, json_is_integer(mid) ? json_integer_value(mid) : -1);
    STORE_RELAXED(cs->master_epoch, (int32_t)json_integer_value(mep));
    STORE_RELAXED(cs->broker_id, a->broker_id);
}

/* One request to target and its answer (*answer, any JSON); a negative code when none came. */
static int ctrl_request(const char *target, const char *text, json_t **answer)
{
    size_t len = strlen(text);
    uint8_t *frame = malloc(SHMQ_CTRL_FRAME_HEAD + len);
    if (frame == NULL) {
        return -ENOMEM;
    }
    uint32_t head = htonl((uint32_t)len);
    memcpy(frame, &head, sizeof(head));
    memcpy(frame + SHMQ_CTRL_FRAME_HEAD, text, len);
    uint8_t *ans = NULL;
    size_t ans_len = 0;
    shmq_error_clear();
    int rc = shmq_net_exchange(target, NULL, frame, SHMQ_CTRL_FRAME_HEAD + len, answer_size,
                               SHMQ_CTRL_FRAME_HEAD + SHMQ_CTRL_FRAME_MAX, IO_MS, &ans, &ans_len);
    free(frame);
    if (rc < 0) {
        return rc;
    }
    json_error_t jerr;
    *answer = json_loadb((const char *)ans + SHMQ_CTRL_FRAME_HEAD, ans_len - SHMQ_CTRL_FRAME_HEAD,
                         0, &jerr);
    free(ans);
    if (*answer == NULL) {
        return shmq_error_set(SHMQ_E_CORRUPT, "the answer is not JSON");
    }
    return 0;
}

/*
 * The master's report of its in-sync replicas (ALTER_SYNC_STATE_SET): itself and every live
 * replica whose last reported log end is within haMaxGapNotInSync of this store's, when that
 * differs from the set the leader holds.  Only these may be elected when this store goes.
 */
static void report_sync_state_set(shmq_worker_t *w, ctrl_agent_t *a, json_t *set)
{
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    json_t *ids = json_array(), *e;
    size_t i;
    json_array_append_new(ids, json_integer(a->broker_id));
    json_array_foreach(json_object_get(set, "replicas"), i, e)
    {
        if (json_object_get(e, "alive") == NULL) {
            json_decref(ids); /* not a heartbeat's answer: the leader said nothing of them */
            return;
        }
        int64_t id = json_integer_value(json_object_get(e, "brokerId"));
        int64_t end = json_integer_value(json_object_get(e, "maxOffset"));
        if (id != a->broker_id && json_is_true(json_object_get(e, "alive")) &&
            end >= wrote - w->cfg->ha_max_gap_not_in_sync) {
            json_array_append_new(ids, json_integer(id));
        }
    }
    json_t *cur = json_object_get(set, "syncStateSet");
    bool same = json_array_size(cur) == json_array_size(ids);
    json_array_foreach(ids, i, e)
    {
        bool found = false;
        size_t k;
        json_t *c;
        json_array_foreach(cur, k, c)
        {
            found = found || json_integer_value(c) == json_integer_value(e);
        }
        same = same && found;
    }
    if (same) {
        json_decref(ids);
        return;
    }
    json_t *req = json_pack("{sssssIsIsosI}", "cmd", "alter_sync_state_set", "brokerName",
                            w->cfg->broker_name, "masterId", (json_int_t)a->broker_id,
                            "masterEpoch", json_integer_value(json_object_get(set, "masterEpoch")),
                            "syncStateSet", ids, "syncStateSetEpoch",
                            json_integer_value(json_object_get(set, "syncStateSetEpoch")));
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    json_t *ans = NULL;
    if (text != NULL && ctrl_request(a->leader, text, &ans) == 0) {
        if (json_is_true(json_object_get(ans, "ok"))) {
            shmq_log(SHMQ_LOG_INFO, "sync-state set of %s reported: %s", w->cfg->broker_name, text);
        } else {
            const char *err = json_string_value(json_object_get(ans, "error"));
            shmq_log(SHMQ_LOG_WARN, "sync-state set of %s not taken: %s", w->cfg->broker_name,
                     err ? err : "?");
        }
    }
    json_decref(ans);
    free(text);
}

/*
 * The set's master as the leader named it, against this store's role: the elected slave asks
 * shmqd to promote it (the `shmqctl role --promote` path); a master that is not the elected
 * one becomes a slave of it (roleOverride, then shmqd starts the store again: the start checks
 * its log against the new master's epochs and cuts a divergent tail).
 */
static void follow_master(shmq_worker_t *w, ctrl_agent_t *a, json_t *set)
{
    int64_t master = json_integer_value(json_object_get(set, "masterId"));
    const char *maddr = json_string_value(json_object_get(set, "masterAddress"));
    shmq_ctl_role_t *r = &w->ctl.blk->role;
    /* acquire: pairs with the master's release store of DONE */
    uint32_t pst = atomic_load_explicit(&r->promote, memory_order_acquire);
    bool slave = w->cfg->broker_role == SHMQ_SLAVE && pst != SHMQ_PROMOTE_DONE;
    if (master <= 0 || a->restarting) {
        return;
    }
    if (master == a->broker_id && slave) {
        if (pst == SHMQ_PROMOTE_ASKED || pst == SHMQ_PROMOTE_RUNNING ||
            (a->promote_mono != 0 && w->mono_ms - a->promote_mono < PROMOTE_RETRY_MS)) {
            return; /* under way, or failed a moment ago (logged by shmqd): not asked again */
        }
        a->promote_mono = w->mono_ms;
        /* release: the request is complete when the master sees ASKED */
        if (atomic_compare_exchange_strong_explicit(&r->promote, &pst, SHMQ_PROMOTE_ASKED,
                                                    memory_order_release, memory_order_relaxed)) {
            shmq_log(SHMQ_LOG_WARN,
                     "the controller elected this store (brokerId %lld) master of %s: promoting",
                     (long long)a->broker_id, w->cfg->broker_name);
            shmq_ctl_wake(&w->ctl.blk->master_wake);
        }
        return;
    }
    if (master == a->broker_id) {
        report_sync_state_set(w, a, set);
        return;
    }
    if (!slave && maddr != NULL && maddr[0] != '\0') {
        int rc = shmq_role_override_save(w->ctl.root, SHMQ_SLAVE, maddr);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "the controller names %s master of %s: %s", maddr,
                     w->cfg->broker_name, shmq_error_detail());
            return;
        }
        shmq_log(SHMQ_LOG_WARN,
                 "the controller names brokerId %lld (%s) master of %s, not this store: "
                 "starting again as its slave",
                 (long long)master, maddr, w->cfg->broker_name);
        a->restarting = true;
        /* release: the role override is saved before shmqd acts on it */
        atomic_store_explicit(&r->restart_store, 1, memory_order_release);
        shmq_ctl_wake(&w->ctl.blk->master_wake);
    }
}

/*
 * Between heartbeats: a sixth of the group's controllerBrokerTimeoutMillis, at most
 * HEARTBEAT_MS, so that a lease (half the timeout) spans about three heartbeats and one
 * answer lost or late does not let it lapse.
 */
static int64_t heartbeat_ms(const ctrl_agent_t *a)
{
    int64_t ms = a->broker_timeout_ms > 0 ? a->broker_timeout_ms / 6 : HEARTBEAT_MS;
    return ms > HEARTBEAT_MS ? HEARTBEAT_MS : ms < HEARTBEAT_MIN_MS ? HEARTBEAT_MIN_MS : ms;
}

/*
 * The lease (docs/controller.md "Fencing"), from an answer of the leader to a request sent
 * at t_send (CLOCK_MONOTONIC): when it names this store master of the set, the writer may
 * take writes until t_send + brokerTimeoutMillis / 2.  The leader received the heartbeat no
 * earlier than t_send and elects another master no earlier than brokerTimeoutMillis after
 * its last receipt (or after it became leader): this store stops taking writes at least half
 * the timeout before another master can exist.  Only heartbeat and register requests get
 * here, and only the leader answers them; an answer naming another master, or none, never
 * extends the lease: it lapses.
 */
static void grant_lease(shmq_worker_t *w, ctrl_agent_t *a, json_t *o, int64_t t_send)
{
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    json_t *to = json_object_get(o, "brokerTimeoutMillis");
    json_t *mid = json_object_get(o, "masterId");
    if (!json_is_integer(to) || json_integer_value(to) < TIMEOUT_MIN_MS ||
        json_integer_value(to) > TIMEOUT_MAX_MS) {
        /* A controller that grants no lease (one older than leases): the writer keeps
         * refusing, which is safe; said once, as the operator must upgrade the group. */
        if (!a->no_timeout_logged) {
            a->no_timeout_logged = true;
            shmq_log(SHMQ_LOG_ERROR,
                     "the controller's answer carries no valid brokerTimeoutMillis (%s): this "
                     "store gets no lease and takes no writes as master; upgrade the "
                     "controller group",
                     json_is_integer(to) ? "out of 100..600000" : "missing");
        }
        return;
    }
    if (a->broker_timeout_ms != json_integer_value(to)) {
        a->broker_timeout_ms = json_integer_value(to);
        STORE_RELAXED(cs->broker_timeout_ms, a->broker_timeout_ms);
        shmq_log(SHMQ_LOG_INFO,
                 "the controller group's broker timeout is %lld ms: a lease as master lasts "
                 "%lld ms from a heartbeat's send, heartbeats every %lld ms",
                 (long long)a->broker_timeout_ms, (long long)a->broker_timeout_ms / 2,
                 (long long)heartbeat_ms(a));
    }
    if (!a->registered || !json_is_integer(mid) || json_integer_value(mid) != a->broker_id) {
        return;
    }
    int64_t until = t_send + a->broker_timeout_ms / 2;
    /* relaxed: a deadline the writer compares with its clock; it never goes back */
    if (until > atomic_load_explicit(&cs->lease_until_ms, memory_order_relaxed)) {
        STORE_RELAXED(cs->lease_until_ms, until);
        atomic_fetch_add_explicit(&cs->leases, 1, memory_order_relaxed);
    }
}

/* Log when the lease starts to hold and when it lapses (the writer refuses meanwhile). */
static void watch_lease(shmq_worker_t *w, ctrl_agent_t *a)
{
    /* relaxed: as in grant_lease() */
    int64_t until =
        atomic_load_explicit(&w->ctl.blk->controller.lease_until_ms, memory_order_relaxed);
    int64_t now = shmq_mono_ms();
    bool held = now < until;
    if (held && !a->lease_held) {
        shmq_log(SHMQ_LOG_INFO,
                 "the controller group names this store (brokerId %lld) master of %s: it may "
                 "take writes for %lld ms, extended by each answered heartbeat",
                 (long long)a->broker_id, w->cfg->broker_name, (long long)(until - now));
    } else if (!held && a->lease_held) {
        shmq_log(SHMQ_LOG_WARN,
                 "the lease as master of %s lapsed %lld ms ago: no answer of the controller "
                 "group's leader named this store master in time; writes are refused",
                 w->cfg->broker_name, (long long)(now - until));
    }
    a->lease_held = held;
}

static int64_t ctrl_agent_work(shmq_worker_t *w, void *state)
{
    ctrl_agent_t *a = state;
    watch_lease(w, a);
    if (w->mono_ms < a->next_mono) {
        return 0;
    }
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    char target[SHMQ_CTL_ADDR_MAX];
    snprintf(target, sizeof(target), "%s", a->leader[0] ? a->leader : a->addrs[a->next_addr]);
    char *text = request_text(w, a);
    if (text == NULL) {
        return -ENOMEM;
    }
    json_t *o = NULL;
    /* The lease counts from before the request left: the leader's receipt is later. */
    int64_t t_send = shmq_mono_ms();
    int rc = ctrl_request(target, text, &o);
    free(text);
    /* The request took up to IO_MS: the timers below count from its end. */
    w->mono_ms = shmq_mono_ms();
    if (rc < 0) {
        const char *detail = shmq_error_detail();
        failed(w, a, target, detail[0] ? detail : shmq_strerror(rc));
        return 1;
    }
    if (json_is_true(json_object_get(o, "ok"))) {
        snprintf(a->leader, sizeof(a->leader), "%s", target);
        a->tried = 0;
        a->backoff_ms = BACKOFF_MIN_MS;
        take_set(w, a, o);
        grant_lease(w, a, o, t_send);
        publish_addr(cs->leader, a->leader);
        STORE_RELAXED(cs->connected, 1);
        STORE_RELAXED(cs->last_heartbeat_ms, shmq_now_ms());
        atomic_fetch_add_explicit(&cs->heartbeats, 1, memory_order_relaxed);
        a->next_mono = w->mono_ms + heartbeat_ms(a);
        if (a->registered) {
            follow_master(w, a, o);
        }
        json_decref(o);
        return 1;
    }
    const char *code = json_string_value(json_object_get(o, "code"));
    const char *leader = json_string_value(json_object_get(o, "leader"));
    const char *error = json_string_value(json_object_get(o, "error"));
    code = code ? code : "";
    if (strcmp(code, "NOT_LEADER") == 0 && leader && leader[0] && strcmp(leader, target) != 0 &&
        strlen(leader) < sizeof(a->leader)) {
        snprintf(a->leader, sizeof(a->leader), "%s", leader);
        a->next_mono = w->mono_ms + REDIRECT_MS;
    } else if (strcmp(code, "NOT_REGISTERED") == 0) {
        shmq_log(SHMQ_LOG_INFO, "controller %s does not know brokerId %lld: registering again",
                 target, (long long)a->broker_id);
        a->registered = false;
        a->next_mono = w->mono_ms;
    } else {
        char why[300];
        snprintf(why, sizeof(why), "%s: %s", code[0] ? code : "refused", error ? error : "");
        failed(w, a, target, why);
    }
    json_decref(o);
    return 1;
}

static void ctrl_agent_idle(shmq_worker_t *w, void *state, int timeout_ms)
{
    ctrl_agent_t *a = state;
    int64_t wait = a->next_mono - w->mono_ms;
    if (wait > timeout_ms) {
        wait = timeout_ms;
    }
    if (wait <= 0) {
        return;
    }
    struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal (SIGTERM) ends it early */
}

static bool ctrl_agent_done(shmq_worker_t *w, void *state)
{
    (void)state;
    /* Acquire: pairs with the master's release store of the state. */
    return atomic_load_explicit(&w->ctl.blk->hdr.state, memory_order_acquire) ==
           SHMQ_STATE_FINISHING;
}

static int ctrl_agent_finish(shmq_worker_t *w, void *state)
{
    STORE_RELAXED(w->ctl.blk->controller.connected, 0);
    free(state);
    return SHMQ_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const shmq_worker_ops_t ops = {
        .init = ctrl_agent_init,
        .work = ctrl_agent_work,
        .idle = ctrl_agent_idle,
        .finish = ctrl_agent_finish,
        .done = ctrl_agent_done,
    };
    return shmq_worker_main(argc, argv, SHMQ_ROLE_CTRL_AGENT, &ops);
}
