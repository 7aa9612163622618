/*
 * shmq-gateway's sends (SEND_MESSAGE 10, SEND_MESSAGE_V2 310,
 * SEND_BATCH_MESSAGE 320): a RocketMQ message handed to the store through
 * the gateway's producer ring as the client built it (its properties,
 * sysflag, compressed body, born time; the born host is the client's
 * address), so that the record is what a RocketMQ broker would have
 * stored.  Single sends are asynchronous (answered when the store's
 * completion comes; at most GW_SENDS_MAX in flight and what leaves room
 * in the producer ring for one more, so that a send never waits for ring
 * space in the loop).  A batch is stored all or none through
 * shmq_send_batch_async, one send in flight of those bounds, answered as
 * its completion comes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "client/producer_entry.h"
#include "format/message.h"
#include "gateway.h"
#include "shmq/errors.h"

#define BATCH_MAX 1024 /* messages of one batch */

/* A send in flight: what its answer needs. */
typedef struct gw_sending {
    gw_conn_t *conn;
    shmq_rmt_cmd_t cmd; /* code, opaque and flag (no ext) */
    size_t bytes;       /* what it takes of the producer's ring, about */
} gw_sending_t;

shmq_producer_t *gw_producer(gw_t *gw)
{
    if (gw->p == NULL) {
        shmq_producer_options_t o = {.send_timeout_ms = 3000, .group = NULL};
        if (shmq_producer_open(gw->cfg->store_path_root_dir, &o, &gw->p) < 0) {
            gw->p = NULL;
        }
    }
    return gw->p;
}

static int status_code(int status)
{
    switch (status) {
    case SHMQ_SEND_FLUSH_DISK_TIMEOUT:
        return SHMQ_RMT_FLUSH_DISK_TIMEOUT;
    case SHMQ_SEND_FLUSH_SLAVE_TIMEOUT:
        return SHMQ_RMT_FLUSH_SLAVE_TIMEOUT;
    case SHMQ_SEND_SLAVE_NOT_AVAILABLE:
        return SHMQ_RMT_SLAVE_NOT_AVAILABLE;
    default:
        return SHMQ_RMT_SUCCESS;
    }
}

static void answer_sent(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int err,
                        const shmq_send_result_t *res)
{
    gw_t *gw = conn->gw;
    if (err < 0) {
        gw->counts.send_errors++;
        gw_answer_err(conn, cmd, gw_code_of(err), "%s: %s", shmq_strerror(err),
                      shmq_error_detail());
        return;
    }
    char qid[16], qoff[32];
    snprintf(qid, sizeof(qid), "%d", res->queue_id);
    snprintf(qoff, sizeof(qoff), "%lld", (long long)res->queue_offset);
    json_t *ext =
        json_pack("{s:s, s:s, s:s}", "msgId", res->msg_id, "queueId", qid, "queueOffset", qoff);
    gw_answer(conn, cmd, status_code(res->status), NULL, ext, NULL, 0);
    json_decref(ext);
}

static void on_sent(void *arg, int err, const shmq_send_result_t *res)
{
    gw_sending_t *s = arg;
    gw_t *gw = s->conn->gw;
    gw->sends--;
    gw->send_bytes -= s->bytes;
    if (err < 0 && (s->cmd.flag & SHMQ_RMT_FLAG_ONEWAY)) {
        gw->counts.send_errors++;
    }
    if (!s->conn->closed) {
        answer_sent(s->conn, &s->cmd, err, res);
    }
    gw_conn_unref(s->conn);
    free(s);
}

/* A header field under its SendMessageRequestHeader name or its V2 letter. */
static const char *field(const shmq_rmt_cmd_t *cmd, bool v2, const char *name, const char *letter,
                         char *buf, size_t cap)
{
    return shmq_rmt_ext(cmd, v2 ? letter : name, buf, cap);
}

static int64_t field_i64(const shmq_rmt_cmd_t *cmd, bool v2, const char *name, const char *letter,
                         int64_t lo, int64_t hi, int64_t dflt, bool *bad)
{
    int64_t v;
    int rc = shmq_rmt_ext_i64(cmd, v2 ? letter : name, lo, hi, &v);
    if (rc == SHMQ_E_NOT_FOUND) {
        return dflt;
    }
    if (rc < 0) {
        *bad = true;
        return dflt;
    }
    return v;
}

/* The write queue for a negative queue id: one of the topic's, at random. */
static int32_t any_queue(gw_t *gw, const char *topic)
{
    shmq_ctl_topic_t t;
    int32_t nq = gw->cfg->default_topic_queue_nums;
    if (shmq_ctl_topic_get(&gw->w->ctl, topic, strlen(topic), &t) == 0 && t.write_queue_nums > 0) {
        nq = t.write_queue_nums;
    }
    return (int32_t)((uint32_t)rand() % (uint32_t)nq);
}

/*
 * Controller mode: a slave's gateway refuses sends with SERVICE_NOT_AVAILABLE naming the set's
 * master, as a RocketMQ broker that is not the master does; the client's retry asks its name
 * servers for the route again, which names the master as brokerId 0.  True when it answered.
 */
static bool refused_on_slave(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    if (!gw->cfg->enable_controller_mode || !gw_store_is_slave(gw)) {
        return false;
    }
    char master[SHMQ_CTL_ADDR_MAX];
    gw->counts.send_errors++;
    if (gw_master_gateway(gw, master, sizeof(master))) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SERVICE_NOT_AVAILABLE,
                      "not the master of %s: the master is %s", gw->cfg->broker_name, master);
    } else {
        gw_answer_err(conn, cmd, SHMQ_RMT_SERVICE_NOT_AVAILABLE,
                      "not the master of %s: the master is not known yet", gw->cfg->broker_name);
    }
    return true;
}

void gw_send(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    if (refused_on_slave(conn, cmd)) {
        return;
    }
    bool v2 = cmd->code == SHMQ_RMT_SEND_MESSAGE_V2, bad = false;
    char tb[8], pb[8];
    const char *topic = field(cmd, v2, "topic", "b", tb, 0);
    if (topic == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "a send without its topic");
        return;
    }
    const char *props = field(cmd, v2, "properties", "i", pb, 0);
    int64_t qid = field_i64(cmd, v2, "queueId", "e", -1, 65535, -1, &bad);
    int64_t sysflag = field_i64(cmd, v2, "sysFlag", "f", 0, INT32_MAX, 0, &bad);
    int64_t born = field_i64(cmd, v2, "bornTimestamp", "g", 0, INT64_MAX, 0, &bad);
    int64_t flag = field_i64(cmd, v2, "flag", "h", INT32_MIN, INT32_MAX, 0, &bad);
    int64_t reconsume = field_i64(cmd, v2, "reconsumeTimes", "j", 0, INT32_MAX, 0, &bad);
    if (bad) {
        gw_answer_err(conn, cmd, SHMQ_RMT_MESSAGE_ILLEGAL, "send: %s", shmq_error_detail());
        return;
    }
    if ((sysflag & SHMQ_SYSFLAG_TX_MASK) != SHMQ_SYSFLAG_TX_NOT) {
        gw_answer_err(conn, cmd, SHMQ_RMT_MESSAGE_ILLEGAL,
                      "transactional messages are not supported by shmq-gateway");
        return;
    }
    if (cmd->body_len == 0 || cmd->body_len > (size_t)gw->cfg->max_message_size) {
        gw_answer_err(conn, cmd, SHMQ_RMT_MESSAGE_ILLEGAL,
                      "a body of %zu bytes (1..%d, maxMessageSize)", cmd->body_len,
                      gw->cfg->max_message_size);
        return;
    }
    size_t plen = props ? strlen(props) : 0;
    /* a message without the client's UNIQ_KEY gets one, as a RocketMQ broker's would */
    char *all = NULL;
    if (props == NULL || shmq_props_get(props, plen, SHMQ_PROP_UNIQ_KEY, NULL) == NULL) {
        char uniq[SHMQ_UNIQ_KEY_MAX];
        shmq_uniq_key_generate(uniq);
        all = malloc(plen + 128);
        if (all == NULL) {
            gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "out of memory");
            return;
        }
        memcpy(all, props ? props : "", plen);
        if (plen > 0 && all[plen - 1] != SHMQ_PROP_SEP) {
            all[plen++] = SHMQ_PROP_SEP;
        }
        plen += (size_t)snprintf(all + plen, 128, "%s%c%s%c", SHMQ_PROP_UNIQ_KEY,
                                 SHMQ_PROP_NAME_VALUE_SEP, uniq, SHMQ_PROP_SEP);
        props = all;
    }
    if (gw_producer(gw) == NULL) {
        free(all);
        gw->counts.send_errors++;
        gw_answer_err(conn, cmd, SHMQ_RMT_SERVICE_NOT_AVAILABLE, "the store takes no sends: %s",
                      shmq_error_detail());
        return;
    }
    shmq_ring_msg_t rm;
    memset(&rm, 0, sizeof(rm));
    rm.kind = SHMQ_RING_KIND_MSG;
    rm.batch_count = 1;
    rm.queue_id = qid < 0 ? any_queue(gw, topic) : (int32_t)qid;
    rm.flag = (int32_t)flag;
    rm.sysflag = (int32_t)sysflag & ~(SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6);
    rm.reconsume_times = (int32_t)reconsume;
    rm.born_ts = born;
    rm.born_host = conn->peer;
    rm.topic = topic;
    rm.topic_len = (uint32_t)strlen(topic);
    rm.props = props;
    rm.props_len = (uint32_t)plen;
    rm.body = cmd->body;
    rm.body_len = (uint32_t)cmd->body_len;
    gw->counts.sends++;
    gw_sending_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        free(all);
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "out of memory");
        return;
    }
    s->conn = conn;
    s->cmd.code = cmd->code;
    s->cmd.opaque = cmd->opaque;
    s->cmd.flag = cmd->flag; /* a one-way send's result is counted, not answered */
    s->bytes = rm.topic_len + plen + cmd->body_len + GW_SEND_OVERHEAD;
    conn->refs++;
    gw->sends++;
    gw->send_bytes += s->bytes;
    int rc = shmq_producer_send_entry_async(gw->p, &rm, on_sent, s);
    free(all);
    if (rc < 0) {
        /* not started: no callback comes */
        gw->sends--;
        gw->send_bytes -= s->bytes;
        gw->counts.send_errors++;
        gw_answer_err(conn, cmd, gw_code_of(rc), "%s: %s", shmq_strerror(rc), shmq_error_detail());
        gw_conn_unref(conn);
        free(s);
    }
}

/* ---- batches -------------------------------------------------------------------------- */

/* One message of a batch body (RocketMQ's MessageDecoder.encodeMessages). */
typedef struct batch_msg {
    const uint8_t *body;
    uint32_t body_len;
    int32_t flag;
    char *props; /* NUL-terminated copy */
    uint32_t props_len;
} batch_msg_t;

static int batch_parse(const uint8_t *b, size_t len, batch_msg_t *out, size_t *n)
{
    size_t pos = 0;
    *n = 0;
    while (pos < len) {
        if (*n == BATCH_MAX) {
            return shmq_error_set(SHMQ_E_ARG, "more than %d messages in a batch", BATCH_MAX);
        }
        if (len - pos < 20) {
            return shmq_error_set(SHMQ_E_ARG, "batch message %zu: cut short", *n);
        }
        uint32_t total = shmq_get_be32(b + pos);
        uint32_t blen = shmq_get_be32(b + pos + 16);
        if (total < 22 || total > len - pos || blen > total - 22) {
            return shmq_error_set(SHMQ_E_ARG, "batch message %zu: bad sizes", *n);
        }
        uint16_t plen = shmq_get_be16(b + pos + 20 + blen);
        if (20 + (size_t)blen + 2 + plen != total) {
            return shmq_error_set(SHMQ_E_ARG, "batch message %zu: bad sizes", *n);
        }
        batch_msg_t *m = &out[(*n)++];
        m->flag = (int32_t)shmq_get_be32(b + pos + 12);
        m->body = b + pos + 20;
        m->body_len = blen;
        m->props = malloc((size_t)plen + 1);
        if (m->props == NULL) {
            return -ENOMEM;
        }
        memcpy(m->props, b + pos + 22 + blen, plen);
        m->props[plen] = '\0';
        m->props_len = plen;
        pos += total;
    }
    return 0;
}

/* A batch in flight: what its answer needs. */
typedef struct gw_batch {
    gw_conn_t *conn;
    shmq_rmt_cmd_t cmd; /* code, opaque and flag (no ext) */
    size_t n;
    shmq_send_result_t *res; /* n, filled by the producer before on_batch_sent */
    size_t bytes;            /* what it takes of the producer's ring, about */
} gw_batch_t;

static void answer_batch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, size_t n,
                         const shmq_send_result_t *res)
{
    /* msgId: the offset ids of the batch, comma-separated (as RocketMQ answers) */
    size_t cap = n * SHMQ_MSGID_MAX + 1, l = 0;
    char *ids = malloc(cap);
    if (ids == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        l += (size_t)snprintf(ids + l, cap - l, "%s%s", i ? "," : "", res[i].msg_id);
    }
    char q[16], qo[32];
    snprintf(q, sizeof(q), "%d", res[0].queue_id);
    snprintf(qo, sizeof(qo), "%lld", (long long)res[0].queue_offset);
    json_t *ext = json_pack("{s:s, s:s, s:s}", "msgId", ids, "queueId", q, "queueOffset", qo);
    gw_answer(conn, cmd, status_code(res[0].status), NULL, ext, NULL, 0);
    json_decref(ext);
    free(ids);
}

static void on_batch_sent(void *arg, int err, const shmq_send_result_t *first)
{
    (void)first; /* bt->res holds every message's */
    gw_batch_t *bt = arg;
    gw_t *gw = bt->conn->gw;
    gw->sends--;
    gw->send_bytes -= bt->bytes;
    if (err < 0) {
        gw->counts.send_errors++;
    }
    if (!bt->conn->closed && !(bt->cmd.flag & SHMQ_RMT_FLAG_ONEWAY)) {
        if (err < 0) {
            gw_answer_err(bt->conn, &bt->cmd, gw_code_of(err), "batch: %s: %s", shmq_strerror(err),
                          shmq_error_detail());
        } else {
            answer_batch(bt->conn, &bt->cmd, bt->n, bt->res);
        }
    }
    gw_conn_unref(bt->conn);
    free(bt->res);
    free(bt);
}

void gw_send_batch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    if (refused_on_slave(conn, cmd)) {
        return;
    }
    bool v2 = shmq_rmt_ext(cmd, "b", NULL, 0) != NULL, bad = false;
    char tb[8];
    const char *topic = field(cmd, v2, "topic", "b", tb, 0);
    int64_t qid = field_i64(cmd, v2, "queueId", "e", -1, 65535, -1, &bad);
    if (topic == NULL || bad) {
        gw_answer_err(conn, cmd, SHMQ_RMT_MESSAGE_ILLEGAL, "a batch without its topic or queue");
        return;
    }
    batch_msg_t *msgs = calloc(BATCH_MAX, sizeof(*msgs));
    shmq_message_t *sm = calloc(BATCH_MAX, sizeof(*sm));
    shmq_send_result_t *res = calloc(BATCH_MAX, sizeof(*res));
    shmq_property_t *pp = calloc(BATCH_MAX * 16, sizeof(*pp));
    size_t n = 0;
    int rc = msgs && sm && res && pp ? batch_parse(cmd->body, cmd->body_len, msgs, &n) : -ENOMEM;
    if (rc == 0 && n == 0) {
        rc = shmq_error_set(SHMQ_E_ARG, "an empty batch");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        shmq_message_init(&sm[i], topic, msgs[i].body, msgs[i].body_len);
        sm[i].flag = msgs[i].flag;
        sm[i].queue_id = qid < 0 ? SHMQ_QUEUE_ANY : (int32_t)qid;
        sm[i].properties = &pp[i * 16];
        /* the properties: tags and keys to their fields, the store's own left out, the rest
         * (at most 16) kept; names and values are cut in place at their separators */
        size_t pos = 0, np = 0, nl, vl;
        const char *name, *value;
        char *p = msgs[i].props;
        while (shmq_props_next(p, msgs[i].props_len, &pos, &name, &nl, &value, &vl)) {
            ((char *)name)[nl] = '\0';
            ((char *)value)[vl] = '\0';
            if (strcmp(name, SHMQ_PROP_TAGS) == 0) {
                sm[i].tags = value;
            } else if (strcmp(name, SHMQ_PROP_KEYS) == 0) {
                sm[i].keys = value;
            } else if (strcmp(name, SHMQ_PROP_UNIQ_KEY) != 0 && strcmp(name, SHMQ_PROP_WAIT) != 0 &&
                       np < 16) {
                pp[i * 16 + np].name = name;
                pp[i * 16 + np].value = value;
                np++;
            }
        }
        sm[i].property_count = np;
    }
    if (rc == 0 && gw_producer(gw) == NULL) {
        rc = SHMQ_E_NOT_FOUND;
    }
    gw_batch_t *bt = NULL;
    if (rc == 0) {
        bt = calloc(1, sizeof(*bt));
        rc = bt ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        /* the results live until the answer: the batch in flight is one more send */
        gw->counts.sends += n;
        bt->conn = conn;
        bt->cmd.code = cmd->code;
        bt->cmd.opaque = cmd->opaque;
        bt->cmd.flag = cmd->flag;
        bt->n = n;
        shmq_send_result_t *fit = realloc(res, n * sizeof(*res)); /* n of BATCH_MAX kept */
        res = fit ? fit : res;
        bt->res = res;
        bt->bytes = cmd->body_len + n * (strlen(topic) + GW_SEND_OVERHEAD);
        conn->refs++;
        gw->sends++;
        gw->send_bytes += bt->bytes;
        rc = shmq_send_batch_async(gw->p, sm, n, res, on_batch_sent, bt);
        if (rc < 0) {
            /* not started: no callback comes */
            gw->sends--;
            gw->send_bytes -= bt->bytes;
            gw_conn_unref(conn);
            free(bt);
        } else {
            res = NULL; /* the batch's now */
        }
    }
    if (rc < 0) {
        gw->counts.send_errors++;
        gw_answer_err(conn, cmd, gw_code_of(rc), "batch: %s: %s", shmq_strerror(rc),
                      shmq_error_detail());
    }
    for (size_t i = 0; msgs && i < n; i++) {
        free(msgs[i].props);
    }
    free(msgs);
    free(sm);
    free(res);
    free(pp);
}
