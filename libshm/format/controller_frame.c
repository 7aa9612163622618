/*
 * The controller's frames and commands (controller_frame.h): the length
 * head, and the one decoder of a command's JSON, used for a client's
 * request and again for a Raft log entry before it is applied.  Pure: no
 * I/O, no clock; what it refuses it says in err.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/hostport.h"
#include "format/controller_frame.h"
#include "shmq/errors.h"

static const struct {
    shmq_ctrl_cmd_kind_t kind;
    const char *name;
    bool internal; /* only in the log, from the leader */
} kinds[] = {
    {SHMQ_CTRL_CMD_REGISTER, "register", false},
    {SHMQ_CTRL_CMD_ELECT, "elect_master", false},
    {SHMQ_CTRL_CMD_ALTER_SYNC, "alter_sync_state_set", false},
    {SHMQ_CTRL_CMD_MEMBER, "member", true},
    {SHMQ_CTRL_CMD_HEARTBEAT, "heartbeat", false},
    {SHMQ_CTRL_CMD_STATUS, "status", false},
    {SHMQ_CTRL_CMD_REPLICA_INFO, "replica_info", false},
};

const char *shmq_ctrl_cmd_name(shmq_ctrl_cmd_kind_t kind)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i].kind == kind) {
            return kinds[i].name;
        }
    }
    return "none";
}

long shmq_ctrl_frame_size(const uint8_t *buf, size_t len)
{
    if (len < SHMQ_CTRL_FRAME_HEAD) {
        return 0;
    }
    uint32_t body =
        (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
    if (body == 0 || body > SHMQ_CTRL_FRAME_MAX) {
        return SHMQ_E_TOO_BIG;
    }
    return (long)body + SHMQ_CTRL_FRAME_HEAD;
}

static int refuse(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) {
        vsnprintf(err, errlen, fmt, ap);
    }
    va_end(ap);
    return rc;
}

/* A string field: required or not, 1..size-1 bytes, no control characters. */
static int get_str(json_t *o, const char *key, bool required, char *dst, size_t size, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        dst[0] = '\0';
        return required ? refuse(err, errlen, SHMQ_E_ARG, "'%s' is missing", key) : 0;
    }
    if (!json_is_string(v)) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' is not a string", key);
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len >= size || (required && len == 0)) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' must be 1..%zu bytes", key, size - 1);
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return refuse(err, errlen, SHMQ_E_ARG, "'%s' holds a control character", key);
        }
    }
    memcpy(dst, s, len + 1);
    return 0;
}

static int get_int(json_t *o, const char *key, bool required, int64_t lo, int64_t hi, int64_t *dst,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        return required ? refuse(err, errlen, SHMQ_E_ARG, "'%s' is missing", key) : 0;
    }
    if (!json_is_integer(v)) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' is not an integer", key);
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' = %lld is outside %lld..%lld", key,
                      (long long)x, (long long)lo, (long long)hi);
    }
    *dst = x;
    return 0;
}

static int get_address(json_t *o, const char *key, bool required, char *dst, char *err,
                       size_t errlen)
{
    int rc = get_str(o, key, required, dst, SHMQ_CTRL_ADDR_MAX, err, errlen);
    if (rc < 0 || !dst[0]) {
        return rc;
    }
    char host[SHMQ_CTRL_ADDR_MAX];
    int port;
    if (shmq_hostport_split(dst, host, sizeof(host), &port) < 0 || port == 0) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' = '%s' is not host:port", key, dst);
    }
    return 0;
}

static int get_ids(json_t *o, const char *key, int64_t *ids, int *n, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    size_t i;
    json_t *e;
    if (!json_is_array(v)) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' is not an array", key);
    }
    if (json_array_size(v) > SHMQ_CTRL_MAX_REPLICAS) {
        return refuse(err, errlen, SHMQ_E_ARG, "'%s' holds more than %d ids", key,
                      SHMQ_CTRL_MAX_REPLICAS);
    }
    *n = 0;
    json_array_foreach(v, i, e)
    {
        if (!json_is_integer(e) || json_integer_value(e) < 1) {
            return refuse(err, errlen, SHMQ_E_ARG, "'%s'[%zu] is not a brokerId >= 1", key, i);
        }
        for (int j = 0; j < *n; j++) {
            if (ids[j] == json_integer_value(e)) {
                return refuse(err, errlen, SHMQ_E_ARG, "'%s' names brokerId %lld twice", key,
                              (long long)ids[j]);
            }
        }
        ids[(*n)++] = json_integer_value(e);
    }
    return 0;
}

static int get_alive(json_t *o, shmq_ctrl_cmd_t *c, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "alive");
    size_t i;
    json_t *e;
    int rc;
    if (!v) {
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > SHMQ_CTRL_MAX_REPLICAS) {
        return refuse(err, errlen, SHMQ_E_ARG, "'alive' is not an array of at most %d replicas",
                      SHMQ_CTRL_MAX_REPLICAS);
    }
    json_array_foreach(v, i, e)
    {
        shmq_ctrl_report_t *r = &c->alive[c->nalive];
        int64_t epoch = 0;
        if (!json_is_object(e)) {
            return refuse(err, errlen, SHMQ_E_ARG, "'alive'[%zu] is not an object", i);
        }
        if ((rc = get_int(e, "brokerId", true, 1, INT64_MAX, &r->broker_id, err, errlen)) < 0 ||
            (rc = get_int(e, "maxOffset", false, 0, INT64_MAX, &r->max_offset, err, errlen)) < 0 ||
            (rc = get_int(e, "epoch", false, 0, INT32_MAX, &epoch, err, errlen)) < 0) {
            return rc;
        }
        for (int j = 0; j < c->nalive; j++) {
            if (c->alive[j].broker_id == r->broker_id) {
                return refuse(err, errlen, SHMQ_E_ARG, "'alive' names brokerId %lld twice",
                              (long long)r->broker_id);
            }
        }
        r->epoch = (int32_t)epoch;
        c->nalive++;
    }
    return 0;
}

int shmq_ctrl_cmd_decode(const char *body, size_t len, bool allow_internal, shmq_ctrl_cmd_t *c,
                         char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *o;
    int rc = 0;
    int64_t x;
    const char *name;

    memset(c, 0, sizeof(*c));
    if (len > SHMQ_CTRL_FRAME_MAX) {
        return refuse(err, errlen, SHMQ_E_TOO_BIG, "a frame of %zu bytes (at most %u)", len,
                      SHMQ_CTRL_FRAME_MAX);
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        return refuse(err, errlen, SHMQ_E_JSON, "not JSON: %s at byte %d", jerr.text,
                      jerr.position);
    }
    if (!json_is_object(o)) {
        rc = refuse(err, errlen, SHMQ_E_ARG, "not a JSON object");
        goto out;
    }
    name = json_string_value(json_object_get(o, "cmd"));
    if (!name) {
        rc = refuse(err, errlen, SHMQ_E_ARG, "'cmd' is missing or not a string");
        goto out;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (!strcmp(kinds[i].name, name) && (allow_internal || !kinds[i].internal)) {
            c->kind = kinds[i].kind;
        }
    }
    switch (c->kind) {
    case SHMQ_CTRL_CMD_NONE:
        rc = refuse(err, errlen, SHMQ_E_ARG, "unknown command '%.40s'", name);
        break;
    case SHMQ_CTRL_CMD_STATUS:
        break;
    case SHMQ_CTRL_CMD_REPLICA_INFO:
        rc = get_str(o, "brokerName", true, c->broker_name, sizeof(c->broker_name), err, errlen);
        break;
    case SHMQ_CTRL_CMD_REGISTER:
    case SHMQ_CTRL_CMD_HEARTBEAT:
        x = 0;
        if ((rc = get_str(o, "brokerName", true, c->broker_name, sizeof(c->broker_name), err,
                          errlen)) < 0 ||
            (rc = get_str(o, "clusterName", false, c->cluster, sizeof(c->cluster), err, errlen)) <
                0 ||
            (rc = get_address(o, "brokerAddress", c->kind == SHMQ_CTRL_CMD_REGISTER, c->address,
                              err, errlen)) < 0 ||
            (rc = get_int(o, "brokerId", c->kind == SHMQ_CTRL_CMD_HEARTBEAT,
                          c->kind == SHMQ_CTRL_CMD_HEARTBEAT ? 1 : 0, INT64_MAX, &c->broker_id, err,
                          errlen)) < 0 ||
            (rc = get_int(o, "maxOffset", false, 0, INT64_MAX, &c->max_offset, err, errlen)) < 0 ||
            (rc = get_int(o, "epoch", false, 0, INT32_MAX, &x, err, errlen)) < 0) {
            break;
        }
        c->epoch = (int32_t)x;
        /* Optional: stores without a gateway, and those older than the field, send none. */
        if (c->kind == SHMQ_CTRL_CMD_REGISTER) {
            rc = get_address(o, "gatewayAddress", false, c->gateway, err, errlen);
        }
        break;
    case SHMQ_CTRL_CMD_ELECT:
        if ((rc = get_str(o, "brokerName", true, c->broker_name, sizeof(c->broker_name), err,
                          errlen)) < 0 ||
            (rc = get_int(o, "brokerId", false, 0, INT64_MAX, &c->broker_id, err, errlen)) < 0) {
            break;
        }
        if (allow_internal) {
            json_t *u = json_object_get(o, "unclean");
            if (u && !json_is_boolean(u)) {
                rc = refuse(err, errlen, SHMQ_E_ARG, "'unclean' is not a boolean");
                break;
            }
            c->unclean = json_is_true(u);
            rc = get_alive(o, c, err, errlen);
        }
        break;
    case SHMQ_CTRL_CMD_ALTER_SYNC:
        x = 0;
        if ((rc = get_str(o, "brokerName", true, c->broker_name, sizeof(c->broker_name), err,
                          errlen)) < 0 ||
            (rc = get_int(o, "masterId", true, 1, INT64_MAX, &c->master_id, err, errlen)) < 0 ||
            (rc = get_int(o, "masterEpoch", true, 0, INT32_MAX, &x, err, errlen)) < 0) {
            break;
        }
        c->master_epoch = (int32_t)x;
        x = 0;
        if ((rc = get_int(o, "syncStateSetEpoch", false, 0, INT32_MAX, &x, err, errlen)) < 0 ||
            (rc = get_ids(o, "syncStateSet", c->sync, &c->nsync, err, errlen)) < 0) {
            break;
        }
        c->sync_epoch = (int32_t)x;
        break;
    case SHMQ_CTRL_CMD_MEMBER:
        if ((rc = get_int(o, "memberId", true, 1, INT64_MAX, &c->member_id, err, errlen)) < 0 ||
            (rc = get_address(o, "address", true, c->address, err, errlen)) < 0) {
            break;
        }
        break;
    }
out:
    json_decref(o);
    if (rc < 0) {
        c->kind = SHMQ_CTRL_CMD_NONE;
    }
    return rc;
}

int shmq_ctrl_cmd_encode(const shmq_ctrl_cmd_t *c, char **out, size_t *len)
{
    json_t *o = json_object();
    int rc = -ENOMEM;
    if (!o) {
        return -ENOMEM;
    }
    json_object_set_new(o, "cmd", json_string(shmq_ctrl_cmd_name(c->kind)));
    switch (c->kind) {
    case SHMQ_CTRL_CMD_REGISTER:
    case SHMQ_CTRL_CMD_HEARTBEAT:
        json_object_set_new(o, "brokerName", json_string(c->broker_name));
        if (c->cluster[0]) {
            json_object_set_new(o, "clusterName", json_string(c->cluster));
        }
        if (c->address[0]) {
            json_object_set_new(o, "brokerAddress", json_string(c->address));
        }
        json_object_set_new(o, "brokerId", json_integer(c->broker_id));
        json_object_set_new(o, "maxOffset", json_integer(c->max_offset));
        json_object_set_new(o, "epoch", json_integer(c->epoch));
        if (c->kind == SHMQ_CTRL_CMD_REGISTER && c->gateway[0]) {
            json_object_set_new(o, "gatewayAddress", json_string(c->gateway));
        }
        break;
    case SHMQ_CTRL_CMD_ELECT: {
        json_t *a = json_array();
        json_object_set_new(o, "brokerName", json_string(c->broker_name));
        json_object_set_new(o, "brokerId", json_integer(c->broker_id));
        json_object_set_new(o, "unclean", json_boolean(c->unclean));
        for (int i = 0; a && i < c->nalive; i++) {
            json_array_append_new(
                a, json_pack("{sIsIsi}", "brokerId", (json_int_t)c->alive[i].broker_id, "maxOffset",
                             (json_int_t)c->alive[i].max_offset, "epoch", (int)c->alive[i].epoch));
        }
        json_object_set_new(o, "alive", a);
        break;
    }
    case SHMQ_CTRL_CMD_ALTER_SYNC: {
        json_t *a = json_array();
        json_object_set_new(o, "brokerName", json_string(c->broker_name));
        json_object_set_new(o, "masterId", json_integer(c->master_id));
        json_object_set_new(o, "masterEpoch", json_integer(c->master_epoch));
        json_object_set_new(o, "syncStateSetEpoch", json_integer(c->sync_epoch));
        for (int i = 0; a && i < c->nsync; i++) {
            json_array_append_new(a, json_integer(c->sync[i]));
        }
        json_object_set_new(o, "syncStateSet", a);
        break;
    }
    case SHMQ_CTRL_CMD_MEMBER:
        json_object_set_new(o, "memberId", json_integer(c->member_id));
        json_object_set_new(o, "address", json_string(c->address));
        break;
    case SHMQ_CTRL_CMD_REPLICA_INFO:
        json_object_set_new(o, "brokerName", json_string(c->broker_name));
        break;
    default:
        break;
    }
    *out = json_dumps(o, JSON_COMPACT);
    if (*out) {
        *len = strlen(*out);
        rc = 0;
    }
    json_decref(o);
    return rc;
}
