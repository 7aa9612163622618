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
 * (ALTER_SYNC_STATE_SET) and, a SYNC_MASTER with allAckInSyncStateSet,
 * publishes the set it acknowledges by (report_sync_state_set); the elected slave asks shmqd to
 * promote it (role.promote, as `shmqctl role --promote`); a master the group did not elect saves
 * roleOverride as a slave of the elected one and asks shmqd to start the store again
 * (role.restart_store).  The role changes are shmqd's; the agent only asks.
 *
 * It owns the control block's controller section (what the leader last
 * said: brokerId, the set's master and epoch, the leader's address, the
 * set acknowledged by, and the set's gateways: with gatewayEnable the store
 * registers its gateway's address too, and every gateway of the set names
 * the master's to RocketMQ clients as broker id 0); status shows it.  The
 * writer depends on one field of it, the lease (grant_lease, docs/
 * controller.md "Fencing"): each answer of the leader naming this store
 * master lets the store take writes until the heartbeat's send time plus
 * half the group's broker timeout; without one the writer refuses every
 * entry (SHMQ_E_NOT_MASTER).  The ha-sender and SYNC_MASTER producers depend
 * on the set acknowledged by, which a restarted agent keeps.  Otherwise a
 * crash loses nothing but the link, which the restarted agent builds again
 * (a registered address keeps its brokerId at the controller); the lease
 * already granted runs on until its time and is extended once the new agent
 * is answered.
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
#define ADD_WAIT_MS      1000  /* for the ha-sender to acknowledge by a set with a member added */
#define ADD_POLL_MS      10

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
    int64_t logged_mono;     /* the last failure logged at (rate limit) */
    bool restarting;         /* asked shmqd to start the store again as a slave */
    int64_t promote_mono;    /* a promotion asked at (0: never) */
    shmq_ctl_sss_t acked_by; /* the sync-state set last published (allAckInSyncStateSet) */

    /* where this store's gateway serves RocketMQ clients ("": no gateway) */
    char gateway_addr[SHMQ_CTL_ADDR_MAX];
    /* the set's gateways last published in the control block */
    shmq_ctl_route_t route;
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

/*
 * The address this store's gateway gives RocketMQ clients, as shmq-gateway advertises it: its
 * bind address unless that is a wildcard, else brokerIP1 (127.0.0.1 when not set), with
 * listenPort; "" when gatewayEnable is false.  The controller keeps it with the replica so that
 * every replica's gateway can name the set's master to clients.
 */
static void gateway_addr(const shmq_config_t *cfg, char out[SHMQ_CTL_ADDR_MAX])
{
    out[0] = '\0';
    if (!cfg->gateway_enable) {
        return;
    }
    const char *host = cfg->gateway_bind_address[0] ? cfg->gateway_bind_address : "127.0.0.1";
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        host = cfg->broker_ip1[0] ? cfg->broker_ip1 : "127.0.0.1";
    }
    snprintf(out, SHMQ_CTL_ADDR_MAX, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             cfg->listen_port);
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
    gateway_addr(w->cfg, a->gateway_addr);
    /* a restarted agent goes on from the route its predecessor published (its count) */
    if (shmq_ctl_route_get(&w->ctl, &a->route) < 0) {
        memset(&a->route, 0, sizeof(a->route));
    }
    a->broker_id = w->cfg->broker_id;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->next_mono = 0;
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    STORE_RELAXED(cs->connected, 0);
    STORE_RELAXED(cs->broker_id, 0);
    STORE_RELAXED(cs->master_id, 0);
    /* A restarted agent goes on from the set it published (count 0 when none). */
    if (shmq_ctl_sss_copy(cs, &a->acked_by) != 0) {
        memset(&a->acked_by, 0, sizeof(a->acked_by));
    }
    shmq_log(SHMQ_LOG_INFO,
             "controller mode: broker set %s, address %s, gateway %s, controllers %s",
             w->cfg->broker_name, a->self_addr, a->gateway_addr[0] ? a->gateway_addr : "none",
             w->cfg->controller_addr);
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
        if (o != NULL && a->gateway_addr[0]) {
            json_object_set_new(o, "gatewayAddress", json_string(a->gateway_addr));
        }
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

/*
 * The set's gateways from the leader's answer: the master's first (whether the leader still
 * hears it or not: until it elects another, it is the master clients must send to), then the
 * other replicas the leader sees alive (their gateways serve reads).  An answer without the
 * leader's view of who is alive (a registration's) names the master only.  Published in the
 * control block when it changed.
 */
static void publish_route(shmq_worker_t *w, ctrl_agent_t *a, json_t *o)
{
    shmq_ctl_route_t r;
    memset(&r, 0, sizeof(r));
    json_t *mid = json_object_get(o, "masterId"), *e;
    r.master_id = json_is_integer(mid) ? json_integer_value(mid) : -1;
    r.master_epoch = (int32_t)json_integer_value(json_object_get(o, "masterEpoch"));
    size_t i;
    for (int pass = 0; pass < 2; pass++) {
        json_array_foreach(json_object_get(o, "replicas"), i, e)
        {
            int64_t id = json_integer_value(json_object_get(e, "brokerId"));
            const char *gw = json_string_value(json_object_get(e, "gatewayAddress"));
            bool master = id == r.master_id;
            if ((pass == 0) != master || gw == NULL || gw[0] == '\0' ||
                strlen(gw) >= SHMQ_CTL_ADDR_MAX || r.count == SHMQ_CTL_ROUTE_MAX ||
                (!master && !json_is_true(json_object_get(e, "alive")))) {
                continue;
            }
            shmq_ctl_route_entry_t *x = &r.e[r.count++];
            x->broker_id = id;
            x->master = master;
            snprintf(x->gateway, sizeof(x->gateway), "%s", gw);
        }
    }
    r.updates = a->route.updates;
    if (a->route.updates != 0 && memcmp(&r, &a->route, sizeof(r)) == 0) {
        return;
    }
    r.updates = a->route.updates + 1;
    a->route = r;
    shmq_ctl_route_publish(&w->ctl, &r);
    shmq_log(SHMQ_LOG_INFO,
             "gateways of %s: master brokerId %lld at %s, %u replica(s) with a "
             "gateway",
             w->cfg->broker_name, (long long)r.master_id,
             r.count > 0 && r.e[0].master ? r.e[0].gateway : "(none)", r.count);
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
    publish_route(w, a, o);
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

/* ---- the set acknowledged by (allAckInSyncStateSet) ---------------------------------------- */

/* The ha-sender's connected row of the slave that gave brokerId id (NULL: none). */
static const shmq_ctl_slave_t *slave_row(shmq_worker_t *w, int64_t id)
{
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        const shmq_ctl_slave_t *r = &w->ctl.blk->ha.slaves[i];
        /* Acquire: the row is written before CONNECTED. */
        if (atomic_load_explicit(&r->state, memory_order_acquire) == SHMQ_SLAVE_CONNECTED &&
            atomic_load_explicit(&r->broker_id, memory_order_relaxed) == id) {
            return r;
        }
    }
    return NULL;
}

/* Add id to set (kept sorted: logs and status read alike); nothing when full or there. */
static void set_add(shmq_ctl_sss_t *set, int64_t id)
{
    if (set->count >= SHMQ_CTL_SSS_MAX || shmq_ctl_sss_has(set, id)) {
        return;
    }
    uint32_t k = set->count++;
    for (; k > 0 && set->ids[k - 1] > id; k--) {
        set->ids[k] = set->ids[k - 1];
    }
    set->ids[k] = id;
}

/* The set of the brokerIds in ids (a JSON array; at most SHMQ_CTL_SSS_MAX are kept). */
static void set_of(json_t *ids, int64_t master, int32_t epoch, shmq_ctl_sss_t *out)
{
    memset(out, 0, sizeof(*out));
    out->master = master;
    out->epoch = epoch;
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        set_add(out, json_integer_value(e));
    }
}

static bool same_set(const shmq_ctl_sss_t *x, const shmq_ctl_sss_t *y)
{
    if (x->count != y->count || x->epoch != y->epoch || x->master != y->master) {
        return false;
    }
    for (uint32_t i = 0; i < x->count; i++) {
        if (!shmq_ctl_sss_has(y, x->ids[i])) {
            return false;
        }
    }
    return true;
}

/* Publish set in the control block (when it changed); its generation. */
static uint64_t publish_set(shmq_worker_t *w, ctrl_agent_t *a, const shmq_ctl_sss_t *set)
{
    shmq_ctl_controller_t *cs = &w->ctl.blk->controller;
    if (a->acked_by.count > 0 && same_set(set, &a->acked_by)) {
        return atomic_load_explicit(&cs->sss_gen, memory_order_relaxed);
    }
    char text[SHMQ_CTL_SSS_MAX * 24 + 8];
    size_t at = 0;
    for (uint32_t i = 0; i < set->count; i++) {
        at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%lld", i ? "," : "",
                               (long long)set->ids[i]);
    }
    shmq_log(SHMQ_LOG_INFO, "acknowledging by the sync-state set [%s] (epoch %d) of %s", text,
             (int)set->epoch, w->cfg->broker_name);
    /* Published after the line: a send acknowledged by this set is never logged before it. */
    shmq_ctl_sss_publish(cs, set);
    a->acked_by = *set;
    a->acked_by.gen = atomic_load_explicit(&cs->sss_gen, memory_order_relaxed);
    return a->acked_by.gen;
}

/*
 * Members added to the set the master acknowledges by (published as generation gen) may be
 * reported to the controller once the ha-sender computes `replicated` by that set and each of
 * them holds everything acknowledged so far: from then on nothing is acknowledged that they
 * lack.  Waits at most ADD_WAIT_MS; false when that was not enough (asked again at the next
 * heartbeat).
 */
static bool added_hold_acked(shmq_worker_t *w, uint64_t gen, const shmq_ctl_sss_t *added)
{
    int64_t until = shmq_mono_ms() + ADD_WAIT_MS;
    for (;;) {
        /* Acquire: pairs with the ha-sender's release after publishing `replicated`. */
        uint64_t applied =
            atomic_load_explicit(&w->ctl.blk->controller.sss_applied, memory_order_acquire);
        if (applied >= gen) {
            int64_t replicated = shmq_ctl_load(&w->ctl.blk->replicated);
            bool hold = true;
            for (uint32_t i = 0; i < added->count && hold; i++) {
                const shmq_ctl_slave_t *r = slave_row(w, added->ids[i]);
                hold = r != NULL &&
                       atomic_load_explicit(&r->acked, memory_order_relaxed) >= replicated;
            }
            if (hold) {
                return true;
            }
        }
        if (shmq_mono_ms() >= until) {
            return false;
        }
        struct timespec ts = {0, ADD_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * The master's report of its in-sync replicas (ALTER_SYNC_STATE_SET): itself and every live
 * replica whose last reported log end is within haMaxGapNotInSync of this store's, when that
 * differs from the set the leader holds.  Only these may be elected when this store goes.
 *
 * With allAckInSyncStateSet a replica must also be connected to this master's ha-sender under
 * its brokerId and in sync there, and the set this store acknowledges by (the control block's,
 * shmq_ctl_sss_t) always contains the set the controller holds, so that the member elected
 * next holds every acknowledged message: a member being added is published here, and
 * acknowledged by, BEFORE the controller is asked; a member being removed leaves it only AFTER
 * the controller confirmed the smaller set; an addition the controller refuses is removed
 * again.
 */
static void report_sync_state_set(shmq_worker_t *w, ctrl_agent_t *a, json_t *set)
{
    int64_t wrote = shmq_ctl_load(&w->ctl.blk->wrote);
    bool allack = shmq_config_acks_by_sync_state_set(w->cfg);
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
        const shmq_ctl_slave_t *row = allack ? slave_row(w, id) : NULL;
        if (id != a->broker_id && json_is_true(json_object_get(e, "alive")) &&
            end >= wrote - w->cfg->ha_max_gap_not_in_sync &&
            (!allack ||
             (row != NULL && atomic_load_explicit(&row->in_sync, memory_order_relaxed) != 0))) {
            json_array_append_new(ids, json_integer(id));
        }
    }
    json_t *cur = json_object_get(set, "syncStateSet");
    int32_t cur_epoch = (int32_t)json_integer_value(json_object_get(set, "syncStateSetEpoch"));
    shmq_ctl_sss_t held, wanted, added = {0};
    set_of(cur, a->broker_id, cur_epoch, &held);
    set_of(ids, a->broker_id, cur_epoch, &wanted);
    if (allack) {
        /* Acknowledge by what the controller holds and what is being added. */
        shmq_ctl_sss_t local = held;
        for (uint32_t k = 0; k < wanted.count; k++) {
            if (!shmq_ctl_sss_has(&held, wanted.ids[k]) && local.count < SHMQ_CTL_SSS_MAX) {
                set_add(&local, wanted.ids[k]);
                set_add(&added, wanted.ids[k]);
            }
        }
        set_add(&local, a->broker_id); /* a set that never had this master holds it too */
        uint64_t gen = publish_set(w, a, &local);
        if (added.count > 0 && !added_hold_acked(w, gen, &added)) {
            json_decref(ids);
            return; /* asked at the next heartbeat; meanwhile acknowledged by the larger set */
        }
    }
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
            json_t *now = json_object_get(ans, "syncStateSet");
            if (allack && json_is_array(now)) {
                /* Confirmed: members removed leave the set acknowledged by only now. */
                shmq_ctl_sss_t confirmed;
                set_of(now, a->broker_id,
                       (int32_t)json_integer_value(json_object_get(ans, "syncStateSetEpoch")),
                       &confirmed);
                publish_set(w, a, &confirmed);
            }
        } else {
            const char *err = json_string_value(json_object_get(ans, "error"));
            shmq_log(SHMQ_LOG_WARN, "sync-state set of %s not taken: %s", w->cfg->broker_name,
                     err ? err : "?");
            if (allack && added.count > 0) {
                publish_set(w, a, &held); /* the additions are not the controller's */
            }
        }
    }
    json_decref(ans);
    free(text);
}

/* Save roleOverride as a slave of maddr and ask shmqd to start the store again. */
static void restart_as_slave(shmq_worker_t *w, ctrl_agent_t *a, int64_t master, const char *maddr,
                             const char *why)
{
    int rc = shmq_role_override_save(w->ctl.root, SHMQ_SLAVE, maddr);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "the controller names %s master of %s: %s", maddr,
                 w->cfg->broker_name, shmq_error_detail());
        return;
    }
    shmq_log(SHMQ_LOG_WARN,
             "the controller names brokerId %lld (%s) master of %s, %s: starting again as its "
             "slave",
             (long long)master, maddr, w->cfg->broker_name, why);
    a->restarting = true;
    /* release: the role override is saved before shmqd acts on it */
    atomic_store_explicit(&w->ctl.blk->role.restart_store, 1, memory_order_release);
    shmq_ctl_wake(&w->ctl.blk->master_wake);
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
        if (w->cfg->all_ack_in_sync_state_set) {
            /* Promoted in controller mode, this store turns SYNC_MASTER (master.c
             * promote_finish).  The set the group holds, published before the writer starts: the
             * new master acknowledges by it from its first send (SYNC_MASTER: without a set it
             * would answer SLAVE_NOT_AVAILABLE until the next heartbeat).  The group's own set: the
             * invariant of report_sync_state_set holds. */
            shmq_ctl_sss_t held;
            set_of(json_object_get(set, "syncStateSet"), a->broker_id,
                   (int32_t)json_integer_value(json_object_get(set, "syncStateSetEpoch")), &held);
            set_add(&held, a->broker_id);
            publish_set(w, a, &held);
        }
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
    if (maddr == NULL || maddr[0] == '\0') {
        return;
    }
    if (!slave) {
        restart_as_slave(w, a, master, maddr, "not this store");
    } else if (strcmp(maddr, w->cfg->ha_master_address) != 0 &&
               json_integer_value(json_object_get(set, "masterEpoch")) >
                   atomic_load_explicit(&w->ctl.blk->role.epoch, memory_order_relaxed)) {
        /* A slave the group did not elect, still following the master that went: the group's
         * master epoch went past the epoch this store has from the master it follows, and the
         * group names another address.  It follows the elected one (RocketMQ's changeToSlave
         * on a new master epoch); the start checks its log against the new master's epochs,
         * as for a deposed master.  Another address alone is no reason: a slave may reach
         * its master through another name, a proxy or a NAT. */
        restart_as_slave(w, a, master, maddr, "not the one it follows");
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
