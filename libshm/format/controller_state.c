/*
 * The controller's replicated state machine (controller_state.h): the
 * apply rules of REGISTER_BROKER, ELECT_MASTER, ALTER_SYNC_STATE_SET and
 * the members' addresses, and the state's JSON (status and snapshots).
 *
 * Deterministic: apply reads only the state and the command, so that
 * every controller applying the same log reaches the same state.  The
 * heartbeat fields (hb_*) and elect_pending belong to the leader's memory
 * and are left alone here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hostport.h"
#include "format/controller_state.h"
#include "shmq/errors.h"

void shmq_ctrl_state_init(shmq_ctrl_state_t *s)
{
    memset(s, 0, sizeof(*s));
}

shmq_ctrl_set_t *shmq_ctrl_set_find(shmq_ctrl_state_t *s, const char *broker_name)
{
    for (int i = 0; i < s->nsets; i++) {
        if (!strcmp(s->sets[i].broker_name, broker_name)) {
            return &s->sets[i];
        }
    }
    return NULL;
}

shmq_ctrl_replica_t *shmq_ctrl_replica_find(shmq_ctrl_set_t *set, int64_t broker_id)
{
    for (int i = 0; i < set->nreplicas; i++) {
        if (set->replicas[i].broker_id == broker_id) {
            return &set->replicas[i];
        }
    }
    return NULL;
}

bool shmq_ctrl_in_sync(const shmq_ctrl_set_t *set, int64_t broker_id)
{
    for (int i = 0; i < set->nsync; i++) {
        if (set->sync[i] == broker_id) {
            return true;
        }
    }
    return false;
}

const char *shmq_ctrl_member_address(const shmq_ctrl_state_t *s, int64_t id)
{
    for (int i = 0; i < s->nmembers; i++) {
        if (s->members[i].id == id) {
            return s->members[i].address;
        }
    }
    return NULL;
}

static void refused(shmq_ctrl_result_t *res, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refused(shmq_ctrl_result_t *res, int rc, const char *fmt, ...)
{
    va_list ap;
    res->rc = rc;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

static void apply_register(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res)
{
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, c->broker_name);
    shmq_ctrl_replica_t *r = NULL;

    if (!set) {
        if (s->nsets >= SHMQ_CTRL_MAX_SETS) {
            refused(res, SHMQ_E_RANGE, "the group holds %d broker sets already",
                    SHMQ_CTRL_MAX_SETS);
            return;
        }
        set = &s->sets[s->nsets++];
        memset(set, 0, sizeof(*set));
        snprintf(set->broker_name, sizeof(set->broker_name), "%s", c->broker_name);
        snprintf(set->cluster, sizeof(set->cluster), "%s", c->cluster);
        set->next_broker_id = 1;
        set->master_id = SHMQ_CTRL_NO_MASTER;
    }
    /* The same address registering again keeps its id (a broker restarted). */
    for (int i = 0; i < set->nreplicas && !r; i++) {
        if (!strcmp(set->replicas[i].address, c->address)) {
            r = &set->replicas[i];
        }
    }
    if (r && c->broker_id && c->broker_id != r->broker_id) {
        refused(res, SHMQ_E_ARG, "%s of %s is brokerId %lld, not %lld", c->address, c->broker_name,
                (long long)r->broker_id, (long long)c->broker_id);
        return;
    }
    if (!r && c->broker_id) {
        r = shmq_ctrl_replica_find(set, c->broker_id);
        if (r) {
            /* A known id at a new address: it moved. */
            snprintf(r->address, sizeof(r->address), "%s", c->address);
        }
    }
    if (!r) {
        if (set->nreplicas >= SHMQ_CTRL_MAX_REPLICAS) {
            refused(res, SHMQ_E_RANGE, "%s has %d replicas already", c->broker_name,
                    SHMQ_CTRL_MAX_REPLICAS);
            return;
        }
        r = &set->replicas[set->nreplicas++];
        memset(r, 0, sizeof(*r));
        r->broker_id = c->broker_id ? c->broker_id : set->next_broker_id;
        snprintf(r->address, sizeof(r->address), "%s", c->address);
    }
    if (r->broker_id >= set->next_broker_id) {
        set->next_broker_id = r->broker_id + 1;
    }
    r->max_offset = c->max_offset;
    r->epoch = c->epoch;
    /* Each registration says where the gateway is now ("": it has none any more). */
    snprintf(r->gateway, sizeof(r->gateway), "%s", c->gateway);
    res->broker_id = r->broker_id;
    res->master_epoch = set->master_epoch;
    res->sync_epoch = set->sync_epoch;
}

/* a is a better candidate than b: the higher epoch, then the longer log, then the lower id. */
static bool better(const shmq_ctrl_report_t *a, const shmq_ctrl_report_t *b)
{
    if (!b) {
        return true;
    }
    if (a->epoch != b->epoch) {
        return a->epoch > b->epoch;
    }
    if (a->max_offset != b->max_offset) {
        return a->max_offset > b->max_offset;
    }
    return a->broker_id < b->broker_id;
}

const shmq_ctrl_report_t *shmq_ctrl_elect_candidate(const shmq_ctrl_set_t *set,
                                                    const shmq_ctrl_cmd_t *c)
{
    const shmq_ctrl_report_t *best = NULL;
    /* A set that never had a master (its first election): every live replica may lead. */
    bool first = set->master_id == SHMQ_CTRL_NO_MASTER && set->master_epoch == 0;

    for (int i = 0; i < c->nalive; i++) {
        const shmq_ctrl_report_t *a = &c->alive[i];
        if (!shmq_ctrl_replica_find((shmq_ctrl_set_t *)set, a->broker_id)) {
            continue;
        }
        if (c->broker_id && a->broker_id != c->broker_id) {
            continue;
        }
        if (!first && !c->unclean && !shmq_ctrl_in_sync(set, a->broker_id)) {
            continue;
        }
        if (better(a, best)) {
            best = a;
        }
    }
    return best;
}

static void apply_elect(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res)
{
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, c->broker_name);
    const shmq_ctrl_report_t *best;

    if (!set) {
        refused(res, SHMQ_E_NOT_FOUND, "no broker set %s", c->broker_name);
        return;
    }
    /* What the live replicas reported becomes their last report. */
    for (int i = 0; i < c->nalive; i++) {
        shmq_ctrl_replica_t *r = shmq_ctrl_replica_find(set, c->alive[i].broker_id);
        if (r) {
            r->max_offset = c->alive[i].max_offset;
            r->epoch = c->alive[i].epoch;
        }
    }
    best = shmq_ctrl_elect_candidate(set, c);
    if (!best) {
        if (c->broker_id) {
            refused(res, SHMQ_E_ARG,
                    "brokerId %lld of %s cannot be master: not alive, not registered or not in "
                    "the sync-state set",
                    (long long)c->broker_id, c->broker_name);
        } else {
            refused(res, SHMQ_E_NOT_FOUND,
                    "%s: no live replica in the sync-state set can be master%s", c->broker_name,
                    c->unclean ? "" : " (enableElectUncleanMaster is false)");
        }
        return;
    }
    set->master_id = best->broker_id;
    set->master_epoch++;
    set->nsync = 1;
    set->sync[0] = best->broker_id;
    set->sync_epoch++;
    res->broker_id = best->broker_id;
    res->master_epoch = set->master_epoch;
    res->sync_epoch = set->sync_epoch;
}

static void apply_alter(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res)
{
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, c->broker_name);
    bool has_master = false;

    if (!set) {
        refused(res, SHMQ_E_NOT_FOUND, "no broker set %s", c->broker_name);
        return;
    }
    if (set->master_id == SHMQ_CTRL_NO_MASTER || c->master_id != set->master_id) {
        refused(res, SHMQ_E_ARG, "brokerId %lld is not the master of %s (the master is %lld)",
                (long long)c->master_id, c->broker_name, (long long)set->master_id);
        return;
    }
    if (c->master_epoch != set->master_epoch) {
        refused(res, SHMQ_E_ARG, "master epoch %d is not %s's (%d)", c->master_epoch,
                c->broker_name, set->master_epoch);
        return;
    }
    if (c->sync_epoch && c->sync_epoch != set->sync_epoch) {
        refused(res, SHMQ_E_ARG, "sync-state set epoch %d is not %s's (%d)", c->sync_epoch,
                c->broker_name, set->sync_epoch);
        return;
    }
    for (int i = 0; i < c->nsync; i++) {
        if (!shmq_ctrl_replica_find(set, c->sync[i])) {
            refused(res, SHMQ_E_ARG, "brokerId %lld is not a replica of %s", (long long)c->sync[i],
                    c->broker_name);
            return;
        }
        has_master |= c->sync[i] == set->master_id;
    }
    if (!has_master) {
        refused(res, SHMQ_E_ARG, "the sync-state set must hold the master (brokerId %lld)",
                (long long)set->master_id);
        return;
    }
    set->nsync = c->nsync;
    memcpy(set->sync, c->sync, sizeof(set->sync[0]) * (size_t)c->nsync);
    set->sync_epoch++;
    res->broker_id = set->master_id;
    res->master_epoch = set->master_epoch;
    res->sync_epoch = set->sync_epoch;
}

static void apply_member(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res)
{
    for (int i = 0; i < s->nmembers; i++) {
        if (s->members[i].id == c->member_id) {
            snprintf(s->members[i].address, sizeof(s->members[i].address), "%s", c->address);
            return;
        }
    }
    if (s->nmembers >= SHMQ_CTRL_MAX_MEMBERS) {
        refused(res, SHMQ_E_RANGE, "more than %d controllers", SHMQ_CTRL_MAX_MEMBERS);
        return;
    }
    s->members[s->nmembers].id = c->member_id;
    snprintf(s->members[s->nmembers].address, sizeof(s->members[0].address), "%s", c->address);
    s->nmembers++;
}

void shmq_ctrl_apply(shmq_ctrl_state_t *s, const shmq_ctrl_cmd_t *c, shmq_ctrl_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->broker_id = SHMQ_CTRL_NO_MASTER;
    s->applied++;
    switch (c->kind) {
    case SHMQ_CTRL_CMD_REGISTER:
        apply_register(s, c, res);
        break;
    case SHMQ_CTRL_CMD_ELECT:
        apply_elect(s, c, res);
        break;
    case SHMQ_CTRL_CMD_ALTER_SYNC:
        apply_alter(s, c, res);
        break;
    case SHMQ_CTRL_CMD_MEMBER:
        apply_member(s, c, res);
        break;
    default:
        refused(res, SHMQ_E_ARG, "command %d is not replicated", (int)c->kind);
        break;
    }
}

/* ---- JSON ------------------------------------------------------------------------------- */

static json_t *ids_json(const int64_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        json_array_append_new(a, json_integer(ids[i]));
    }
    return a;
}

json_t *shmq_ctrl_set_json(const shmq_ctrl_set_t *set)
{
    json_t *o = json_object();
    json_t *reps = json_array();
    const char *master_addr = "", *master_gw = "";
    if (!o || !reps) {
        json_decref(o);
        json_decref(reps);
        return NULL;
    }
    for (int i = 0; i < set->nreplicas; i++) {
        const shmq_ctrl_replica_t *r = &set->replicas[i];
        if (r->broker_id == set->master_id) {
            master_addr = r->address;
            master_gw = r->gateway;
        }
        json_array_append_new(reps, json_pack("{sIsssIsiss}", "brokerId", (json_int_t)r->broker_id,
                                              "address", r->address, "maxOffset",
                                              (json_int_t)r->max_offset, "epoch", (int)r->epoch,
                                              "gatewayAddress", r->gateway));
    }
    json_object_set_new(o, "brokerName", json_string(set->broker_name));
    json_object_set_new(o, "clusterName", json_string(set->cluster));
    json_object_set_new(o, "nextBrokerId", json_integer(set->next_broker_id));
    json_object_set_new(o, "masterId", json_integer(set->master_id));
    json_object_set_new(o, "masterAddress", json_string(master_addr));
    json_object_set_new(o, "masterGatewayAddress", json_string(master_gw));
    json_object_set_new(o, "masterEpoch", json_integer(set->master_epoch));
    json_object_set_new(o, "syncStateSet", ids_json(set->sync, set->nsync));
    json_object_set_new(o, "syncStateSetEpoch", json_integer(set->sync_epoch));
    json_object_set_new(o, "replicas", reps);
    return o;
}

int shmq_ctrl_state_encode(const shmq_ctrl_state_t *s, char **out, size_t *len)
{
    json_t *o = json_object(), *sets = json_array(), *members = json_array();
    int rc = -ENOMEM;
    if (!o || !sets || !members) {
        goto out;
    }
    for (int i = 0; i < s->nsets; i++) {
        json_t *j = shmq_ctrl_set_json(&s->sets[i]);
        if (!j || json_array_append_new(sets, j) < 0) {
            goto out;
        }
    }
    for (int i = 0; i < s->nmembers; i++) {
        json_array_append_new(members, json_pack("{sIss}", "id", (json_int_t)s->members[i].id,
                                                 "address", s->members[i].address));
    }
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "applied", json_integer((json_int_t)s->applied));
    json_object_set_new(o, "brokerSets", sets);
    json_object_set_new(o, "members", members);
    sets = members = NULL;
    *out = json_dumps(o, JSON_COMPACT);
    if (*out) {
        *len = strlen(*out);
        rc = 0;
    }
out:
    json_decref(o);
    json_decref(sets);
    json_decref(members);
    return rc;
}

/* A JSON integer field in lo..hi, or -1 (and a detail). */
static int field_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        shmq_error_set(SHMQ_E_ARG, "controller snapshot: '%s' missing or outside %lld..%lld", key,
                       (long long)lo, (long long)hi);
        return -1;
    }
    *v = json_integer_value(j);
    return 0;
}

static int field_str(json_t *o, const char *key, char *dst, size_t size, bool hostport)
{
    json_t *j = json_object_get(o, key);
    char host[SHMQ_CTRL_ADDR_MAX];
    int port;
    if (!json_is_string(j) || json_string_length(j) >= size ||
        strlen(json_string_value(j)) != json_string_length(j)) {
        shmq_error_set(SHMQ_E_ARG, "controller snapshot: '%s' missing or too long", key);
        return -1;
    }
    memcpy(dst, json_string_value(j), json_string_length(j) + 1);
    if (hostport && shmq_hostport_split(dst, host, sizeof(host), &port) < 0) {
        shmq_error_set(SHMQ_E_ARG, "controller snapshot: '%s' is not host:port", key);
        return -1;
    }
    return 0;
}

static int decode_set(json_t *j, shmq_ctrl_set_t *set)
{
    json_t *reps = json_object_get(j, "replicas"), *sync = json_object_get(j, "syncStateSet"), *e;
    int64_t v;
    size_t i;
    memset(set, 0, sizeof(*set));
    if (!json_is_object(j) ||
        field_str(j, "brokerName", set->broker_name, sizeof(set->broker_name), false) < 0 ||
        !set->broker_name[0] ||
        field_str(j, "clusterName", set->cluster, sizeof(set->cluster), false) < 0 ||
        field_int(j, "nextBrokerId", 1, INT64_MAX, &set->next_broker_id) < 0 ||
        field_int(j, "masterId", SHMQ_CTRL_NO_MASTER, INT64_MAX, &set->master_id) < 0 ||
        set->master_id == 0 || field_int(j, "masterEpoch", 0, INT32_MAX, &v) < 0) {
        return shmq_error_set(SHMQ_E_ARG, "controller snapshot: a bad broker set");
    }
    set->master_epoch = (int32_t)v;
    if (field_int(j, "syncStateSetEpoch", 0, INT32_MAX, &v) < 0) {
        return SHMQ_E_ARG;
    }
    set->sync_epoch = (int32_t)v;
    if (!json_is_array(reps) || json_array_size(reps) > SHMQ_CTRL_MAX_REPLICAS ||
        !json_is_array(sync) || json_array_size(sync) > SHMQ_CTRL_MAX_REPLICAS) {
        return shmq_error_set(SHMQ_E_ARG, "controller snapshot: %s: bad replicas or sync set",
                              set->broker_name);
    }
    json_array_foreach(reps, i, e)
    {
        shmq_ctrl_replica_t *r = &set->replicas[set->nreplicas];
        if (!json_is_object(e) ||
            field_int(e, "brokerId", 1, set->next_broker_id - 1, &r->broker_id) < 0 ||
            field_str(e, "address", r->address, sizeof(r->address), true) < 0 ||
            field_int(e, "maxOffset", 0, INT64_MAX, &r->max_offset) < 0 ||
            field_int(e, "epoch", 0, INT32_MAX, &v) < 0 ||
            shmq_ctrl_replica_find(set, r->broker_id) ||
            (json_object_get(e, "gatewayAddress") != NULL &&
             field_str(e, "gatewayAddress", r->gateway, sizeof(r->gateway), false) < 0)) {
            return shmq_error_set(SHMQ_E_ARG, "controller snapshot: %s: bad replica %zu",
                                  set->broker_name, i);
        }
        /* A snapshot written before gateways were registered has none: "" (no gateway). */
        if (r->gateway[0] &&
            field_str(e, "gatewayAddress", r->gateway, sizeof(r->gateway), true) < 0) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "controller snapshot: %s: replica %zu: "
                                  "gatewayAddress '%s' is not host:port",
                                  set->broker_name, i, r->gateway);
        }
        r->epoch = (int32_t)v;
        set->nreplicas++;
    }
    json_array_foreach(sync, i, e)
    {
        if (!json_is_integer(e) || !shmq_ctrl_replica_find(set, json_integer_value(e)) ||
            shmq_ctrl_in_sync(set, json_integer_value(e))) {
            return shmq_error_set(SHMQ_E_ARG, "controller snapshot: %s: bad sync-state set",
                                  set->broker_name);
        }
        set->sync[set->nsync++] = json_integer_value(e);
    }
    if (set->master_id != SHMQ_CTRL_NO_MASTER && !shmq_ctrl_in_sync(set, set->master_id)) {
        return shmq_error_set(SHMQ_E_ARG, "controller snapshot: %s: master outside its sync set",
                              set->broker_name);
    }
    return 0;
}

int shmq_ctrl_state_decode(shmq_ctrl_state_t *s, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *sets, *members, *e;
    shmq_ctrl_state_t *t = NULL;
    int rc = SHMQ_E_ARG;
    int64_t v;
    size_t i;

    if (!o) {
        return shmq_error_set(SHMQ_E_JSON, "controller snapshot: %s at byte %d", jerr.text,
                              jerr.position);
    }
    sets = json_object_get(o, "brokerSets");
    members = json_object_get(o, "members");
    if (!json_is_object(o) || field_int(o, "version", 1, 1, &v) < 0 || !json_is_array(sets) ||
        json_array_size(sets) > SHMQ_CTRL_MAX_SETS || !json_is_array(members) ||
        json_array_size(members) > SHMQ_CTRL_MAX_MEMBERS) {
        rc = shmq_error_set(SHMQ_E_ARG, "controller snapshot: not a version 1 state");
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        rc = -ENOMEM;
        goto out;
    }
    if (field_int(o, "applied", 0, INT64_MAX, &v) < 0) {
        goto out;
    }
    t->applied = (uint64_t)v;
    json_array_foreach(sets, i, e)
    {
        if ((rc = decode_set(e, &t->sets[t->nsets])) < 0) {
            goto out;
        }
        if (shmq_ctrl_set_find(t, t->sets[t->nsets].broker_name)) {
            rc = shmq_error_set(SHMQ_E_ARG, "controller snapshot: %s twice",
                                t->sets[t->nsets].broker_name);
            goto out;
        }
        t->nsets++;
    }
    json_array_foreach(members, i, e)
    {
        shmq_ctrl_member_t *m = &t->members[t->nmembers];
        if (!json_is_object(e) || field_int(e, "id", 1, INT64_MAX, &m->id) < 0 ||
            field_str(e, "address", m->address, sizeof(m->address), true) < 0 ||
            shmq_ctrl_member_address(t, m->id)) {
            rc = shmq_error_set(SHMQ_E_ARG, "controller snapshot: bad member %zu", i);
            goto out;
        }
        t->nmembers++;
    }
    memcpy(s, t, sizeof(*s));
    rc = 0;
out:
    free(t);
    json_decref(o);
    return rc;
}
