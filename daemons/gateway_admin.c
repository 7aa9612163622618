/*
 * shmq-gateway as name server and as the broker's bookkeeper of clients:
 * GET_ROUTEINFO_BY_TOPIC 105 and GET_BROKER_CLUSTER_INFO 106 (this store
 * is the only broker of every topic), HEART_BEAT 34, UNREGISTER_CLIENT 35
 * and GET_CONSUMER_LIST_BY_GROUP 38 (the client ids of a group, which
 * RocketMQ's clients divide the queues by; the others are told with
 * NOTIFY_CONSUMER_IDS_CHANGED 40 when one comes or goes), LOCK_BATCH_MQ 41
 * and UNLOCK_BATCH_MQ 42 (queue locks of orderly consumers, lapsing after
 * GW_LOCK_MS), QUERY_MESSAGE 12 and VIEW_MESSAGE_BY_ID 33 (the IndexFile
 * and the CommitLog through the admin handle), CONSUMER_SEND_MSG_BACK 36
 * (the store's retry and dead-letter path).  Client ids and locks live in
 * the gateway's memory only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "client/producer_entry.h"
#include "format/message.h"
#include "gateway.h"
#include "shmq/errors.h"

#define PERM_RW 6 /* PERM_READ | PERM_WRITE */

/* ---- routes ----------------------------------------------------------------------------- */

bool gw_store_is_slave(gw_t *gw)
{
    /* acquire: pairs with the master's release store of DONE (a promoted slave is a master) */
    return gw->cfg->broker_role == SHMQ_SLAVE &&
           atomic_load_explicit(&gw->w->ctl.blk->role.promote, memory_order_acquire) !=
               SHMQ_PROMOTE_DONE;
}

bool gw_master_gateway(gw_t *gw, char *out, size_t cap)
{
    shmq_ctl_route_t r;
    if (!gw->cfg->enable_controller_mode || shmq_ctl_route_get(&gw->w->ctl, &r) < 0 ||
        r.count == 0 || !r.e[0].master) {
        return false;
    }
    snprintf(out, cap, "%s", r.e[0].gateway);
    return true;
}

/*
 * brokerAddrs of this store's broker set.  Without controller mode, this gateway as brokerId 0
 * (the only broker).  In controller mode, the set's gateways the ctrl-agent published: the
 * master's as brokerId 0 (RocketMQ clients send to id 0 only), the live slaves' under their
 * brokerIds (for reads); until the set's master is known, this gateway as brokerId 0 when the
 * store is a master, as brokerId 1 when it is a slave.
 */
static json_t *broker_data(gw_t *gw)
{
    json_t *addrs = json_object();
    shmq_ctl_route_t r;
    bool have_master = false;
    if (gw->cfg->enable_controller_mode && shmq_ctl_route_get(&gw->w->ctl, &r) == 0) {
        for (uint32_t i = 0; addrs != NULL && i < r.count; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%lld", r.e[i].master ? 0LL : (long long)r.e[i].broker_id);
            have_master = have_master || r.e[i].master;
            json_object_set_new(addrs, id, json_string(r.e[i].gateway));
        }
    }
    if (addrs != NULL && !have_master) {
        json_object_set_new(addrs, gw_store_is_slave(gw) ? "1" : "0", json_string(gw->addr));
    }
    return json_pack("{s:s, s:s, s:o}", "cluster", gw->cfg->broker_cluster_name, "brokerName",
                     gw->cfg->broker_name, "brokerAddrs", addrs);
}

static void answer_json(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "out of memory");
        return;
    }
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, text, strlen(text));
    free(text);
}

void gw_route(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char tb[8];
    const char *topic = gw_need(conn, cmd, "topic", tb, 0);
    if (topic == NULL) {
        return;
    }
    shmq_ctl_topic_t t;
    int32_t rq, wq, perm;
    if (shmq_ctl_topic_get(&gw->w->ctl, topic, strlen(topic), &t) == 0 &&
        t.state == SHMQ_ENTRY_ACTIVE) {
        rq = t.read_queue_nums;
        wq = t.write_queue_nums;
        perm = t.perm;
    } else if (strncmp(topic, SHMQ_RETRY_TOPIC_PREFIX, strlen(SHMQ_RETRY_TOPIC_PREFIX)) == 0) {
        rq = wq = 1; /* a group's retry topic: made by its first send-back */
        perm = PERM_RW;
    } else if (gw->cfg->auto_create_topic_enable) {
        rq = wq = gw->cfg->default_topic_queue_nums; /* made by its first send */
        perm = PERM_RW;
    } else {
        gw_answer_err(conn, cmd, SHMQ_RMT_TOPIC_NOT_EXIST, "no topic %s", topic);
        return;
    }
    json_t *body =
        json_pack("{s:[o], s:{}, s:[{s:s, s:i, s:i, s:i, s:i}]}", "brokerDatas", broker_data(gw),
                  "filterServerTable", "queueDatas", "brokerName", gw->cfg->broker_name,
                  "readQueueNums", rq, "writeQueueNums", wq, "perm", perm, "topicSynFlag", 0);
    answer_json(conn, cmd, body);
}

void gw_cluster(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    json_t *body =
        json_pack("{s:{s:o}, s:{s:[s]}}", "brokerAddrTable", gw->cfg->broker_name, broker_data(gw),
                  "clusterAddrTable", gw->cfg->broker_cluster_name, gw->cfg->broker_name);
    answer_json(conn, cmd, body);
}

/* ---- clients of groups ------------------------------------------------------------------ */

/* Tell the group's other clients that its members changed. */
static void members_changed(gw_t *gw, const char *group, const gw_conn_t *except)
{
    json_t *ext = json_pack("{s:s}", "consumerGroup", group);
    for (int i = 0; i < gw->nclients; i++) {
        gw_client_t *k = &gw->clients[i];
        if (k->conn != except && !k->conn->closed && strcmp(k->group, group) == 0) {
            gw_notify(k->conn, SHMQ_RMT_NOTIFY_CONSUMER_IDS_CHANGED, ext);
        }
    }
    json_decref(ext);
}

static void client_remove(gw_t *gw, int i)
{
    char group[128];
    snprintf(group, sizeof(group), "%s", gw->clients[i].group);
    gw_conn_t *conn = gw->clients[i].conn;
    gw->clients[i] = gw->clients[--gw->nclients];
    members_changed(gw, group, conn);
}

static void client_seen(gw_conn_t *conn, const char *group, const char *client_id)
{
    gw_t *gw = conn->gw;
    for (int i = 0; i < gw->nclients; i++) {
        gw_client_t *k = &gw->clients[i];
        if (strcmp(k->group, group) == 0 && strcmp(k->client_id, client_id) == 0) {
            k->conn = conn;
            k->seen_ms = gw->now_ms;
            return;
        }
    }
    if (gw->nclients == GW_CLIENTS_MAX || strlen(group) >= sizeof(gw->clients[0].group) ||
        strlen(client_id) >= sizeof(gw->clients[0].client_id)) {
        return;
    }
    gw_client_t *k = &gw->clients[gw->nclients++];
    snprintf(k->group, sizeof(k->group), "%s", group);
    snprintf(k->client_id, sizeof(k->client_id), "%s", client_id);
    k->conn = conn;
    k->seen_ms = gw->now_ms;
    members_changed(gw, group, conn);
}

void gw_heartbeat(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    gw->now_ms = shmq_mono_ms();
    json_error_t jerr;
    json_t *hb = json_loadb((const char *)cmd->body, cmd->body_len, 0, &jerr);
    const char *client_id = json_string_value(json_object_get(hb, "clientID"));
    if (hb == NULL || client_id == NULL) {
        json_decref(hb);
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "heartbeat: no clientID in its body");
        return;
    }
    json_t *set = json_object_get(hb, "consumerDataSet");
    size_t i;
    json_t *cd;
    json_array_foreach(set, i, cd)
    {
        const char *group = json_string_value(json_object_get(cd, "groupName"));
        if (group != NULL && i < 64) {
            client_seen(conn, group, client_id);
        }
    }
    json_decref(hb);
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0);
}

void gw_unregister(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char b1[8], b2[8];
    const char *client_id = shmq_rmt_ext(cmd, "clientID", b1, 0);
    const char *group = shmq_rmt_ext(cmd, "consumerGroup", b2, 0);
    for (int i = 0; client_id != NULL && group != NULL && i < gw->nclients; i++) {
        if (strcmp(gw->clients[i].group, group) == 0 &&
            strcmp(gw->clients[i].client_id, client_id) == 0) {
            client_remove(gw, i);
            break;
        }
    }
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0);
}

void gw_consumer_list(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char gb[8];
    const char *group = gw_need(conn, cmd, "consumerGroup", gb, 0);
    if (group == NULL) {
        return;
    }
    json_t *ids = json_array();
    for (int i = 0; i < gw->nclients; i++) {
        if (strcmp(gw->clients[i].group, group) == 0) {
            json_array_append_new(ids, json_string(gw->clients[i].client_id));
        }
    }
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "no consumer of group %s", group);
        return;
    }
    answer_json(conn, cmd, json_pack("{s:o}", "consumerIdList", ids));
}

void gw_clients_drop_conn(gw_t *gw, gw_conn_t *conn)
{
    for (int i = 0; i < gw->nclients;) {
        if (gw->clients[i].conn == conn) {
            client_remove(gw, i);
        } else {
            i++;
        }
    }
}

void gw_admin_tick(gw_t *gw)
{
    gw->now_ms = shmq_mono_ms();
    for (int i = 0; i < gw->nclients;) {
        if (gw->now_ms - gw->clients[i].seen_ms > GW_CLIENT_MS) {
            client_remove(gw, i);
        } else {
            i++;
        }
    }
    for (int i = 0; i < gw->nlocks;) {
        if (gw->now_ms > gw->locks[i].until_ms) {
            gw->locks[i] = gw->locks[--gw->nlocks];
        } else {
            i++;
        }
    }
}

/* ---- queue locks -------------------------------------------------------------------------- */

/* Lock (or unlock) one queue for client_id; true when it holds it now (lock) or let it go. */
static bool lock_one(gw_t *gw, const char *group, const char *client_id, const char *topic,
                     int32_t qid, bool lock)
{
    for (int i = 0; i < gw->nlocks; i++) {
        gw_lock_t *l = &gw->locks[i];
        if (l->queue_id != qid || strcmp(l->group, group) != 0 || strcmp(l->topic, topic) != 0) {
            continue;
        }
        bool mine = strcmp(l->client_id, client_id) == 0;
        if (!lock) {
            if (mine) {
                gw->locks[i] = gw->locks[--gw->nlocks];
            }
            return mine;
        }
        if (!mine && gw->now_ms <= l->until_ms) {
            return false;
        }
        snprintf(l->client_id, sizeof(l->client_id), "%s", client_id);
        l->until_ms = gw->now_ms + GW_LOCK_MS;
        return true;
    }
    if (!lock || gw->nlocks == GW_LOCKS_MAX || strlen(group) >= sizeof(gw->locks[0].group) ||
        strlen(topic) >= sizeof(gw->locks[0].topic) ||
        strlen(client_id) >= sizeof(gw->locks[0].client_id)) {
        return false;
    }
    gw_lock_t *l = &gw->locks[gw->nlocks++];
    snprintf(l->group, sizeof(l->group), "%s", group);
    snprintf(l->topic, sizeof(l->topic), "%s", topic);
    snprintf(l->client_id, sizeof(l->client_id), "%s", client_id);
    l->queue_id = qid;
    l->until_ms = gw->now_ms + GW_LOCK_MS;
    return true;
}

void gw_lock_batch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, bool lock)
{
    gw_t *gw = conn->gw;
    gw->now_ms = shmq_mono_ms();
    json_error_t jerr;
    json_t *req = json_loadb((const char *)cmd->body, cmd->body_len, 0, &jerr);
    const char *group = json_string_value(json_object_get(req, "consumerGroup"));
    const char *client_id = json_string_value(json_object_get(req, "clientId"));
    json_t *set = json_object_get(req, "mqSet");
    if (group == NULL || client_id == NULL || !json_is_array(set)) {
        json_decref(req);
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR,
                      "queue locks: the body needs consumerGroup, clientId and mqSet");
        return;
    }
    json_t *ok = json_array();
    size_t i;
    json_t *mq;
    json_array_foreach(set, i, mq)
    {
        const char *topic = json_string_value(json_object_get(mq, "topic"));
        json_t *q = json_object_get(mq, "queueId");
        if (i >= 1024 || topic == NULL || !json_is_integer(q) || json_integer_value(q) < 0 ||
            json_integer_value(q) > 65535) {
            continue;
        }
        if (lock_one(gw, group, client_id, topic, (int32_t)json_integer_value(q), lock) && lock) {
            json_array_append(ok, mq);
        }
    }
    json_decref(req);
    if (!lock) {
        json_decref(ok);
        gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0);
        return;
    }
    answer_json(conn, cmd, json_pack("{s:o}", "lockOKMQSet", ok));
}

/* ---- queries ------------------------------------------------------------------------------ */

static shmq_admin_t *admin(gw_t *gw)
{
    if (gw->admin == NULL && shmq_admin_open(gw->cfg->store_path_root_dir, &gw->admin) < 0) {
        gw->admin = NULL;
    }
    return gw->admin;
}

void gw_query(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char tb[8], kb[8];
    const char *topic = gw_need(conn, cmd, "topic", tb, 0);
    const char *key = topic ? gw_need(conn, cmd, "key", kb, 0) : NULL;
    int64_t max_num = 32, begin = 0, end = INT64_MAX;
    if (key == NULL) {
        return;
    }
    shmq_rmt_ext_i64(cmd, "maxNum", 1, 64, &max_num);
    shmq_rmt_ext_i64(cmd, "beginTimestamp", 0, INT64_MAX, &begin);
    shmq_rmt_ext_i64(cmd, "endTimestamp", 0, INT64_MAX, &end);
    shmq_admin_t *a = admin(gw);
    if (a == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "%s", shmq_error_detail());
        return;
    }
    shmq_query_result_t *qr = malloc(sizeof(*qr));
    int rc = qr ? shmq_query_by_key(a, topic, key, begin, end, (int)max_num, qr) : -ENOMEM;
    if (rc < 0 || qr->count == 0) {
        if (rc < 0) {
            gw_answer_err(conn, cmd, gw_code_of(rc), "%s", shmq_error_detail());
        } else {
            gw_answer_err(conn, cmd, SHMQ_RMT_QUERY_NOT_FOUND, "no message of %s with key %s",
                          topic, key);
        }
        free(qr);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < qr->count; i++) {
        gw_put_record(gw, &qr->msgs[i], &buf, &len, &cap);
    }
    char ts[32], ph[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)qr->index_last_ts);
    snprintf(ph, sizeof(ph), "%lld", (long long)qr->index_last_phys);
    free(qr);
    json_t *ext =
        json_pack("{s:s, s:s}", "indexLastUpdateTimestamp", ts, "indexLastUpdatePhyoffset", ph);
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, ext, buf, len);
    json_decref(ext);
    free(buf);
}

void gw_view(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    int64_t phys;
    if (!gw_need_i64(conn, cmd, "offset", 0, INT64_MAX, &phys)) {
        return;
    }
    shmq_admin_t *a = admin(gw);
    shmq_msg_view_t v;
    int rc = a ? shmq_query_by_phys_offset(a, phys, &v) : SHMQ_E_NOT_FOUND;
    if (rc < 0) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "no message at CommitLog offset %lld: %s",
                      (long long)phys, shmq_error_detail());
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    if (gw_put_record(gw, &v, &buf, &len, &cap) < 0) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "%s", shmq_error_detail());
    } else {
        gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, buf, len);
    }
    free(buf);
}

/* A send-back in flight: what its answer needs. */
typedef struct gw_sendback {
    gw_conn_t *conn;
    shmq_rmt_cmd_t cmd; /* code, opaque and flag (no ext) */
    int64_t phys;
    size_t bytes; /* what it takes of the producer's ring, about */
    char group[128];
} gw_sendback_t;

static void send_back_answer(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, const char *group,
                             int64_t phys, int rc)
{
    if (rc < 0) {
        conn->gw->counts.send_errors++;
        gw_warn(conn->gw, "client %s: send back of CommitLog offset %lld for %s: %s",
                conn->peer_text, (long long)phys, group, shmq_error_detail());
        gw_answer_err(conn, cmd, gw_code_of(rc), "send back of %lld for %s: %s", (long long)phys,
                      group, shmq_error_detail());
        return;
    }
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0);
}

static void on_sent_back(void *arg, int err, const shmq_send_result_t *res)
{
    (void)res;
    gw_sendback_t *sb = arg;
    gw_t *gw = sb->conn->gw;
    gw->sends--;
    gw->send_bytes -= sb->bytes;
    if (!sb->conn->closed) {
        send_back_answer(sb->conn, &sb->cmd, sb->group, sb->phys, err);
    }
    gw_conn_unref(sb->conn);
    free(sb);
}

/*
 * The copy goes through the gateway's producer as a send in flight (its
 * bounds, answered when the store's completion comes): the loop never
 * waits for the store.
 */
void gw_send_back(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char gb[8];
    int64_t phys, level = 0;
    const char *group = gw_need(conn, cmd, "group", gb, 0);
    if (group == NULL || !gw_need_i64(conn, cmd, "offset", 0, INT64_MAX, &phys)) {
        return;
    }
    shmq_rmt_ext_i64(cmd, "delayLevel", INT32_MIN, INT32_MAX, &level);
    shmq_consumer_t *c = gw_group(gw, group);
    shmq_admin_t *a = admin(gw);
    shmq_producer_t *p = c && a ? gw_producer(gw) : NULL;
    shmq_msg_view_t v;
    shmq_ctl_t *ctl = NULL;
    int rc = p ? shmq_query_by_phys_offset(a, phys, &v) : SHMQ_E_NOT_FOUND;
    if (rc == 0) {
        rc = shmq_producer_ctl(p, &ctl);
    }
    shmq_ring_msg_t rm;
    static char props[SHMQ_PROPS_MAX]; /* the loop's thread only; copied into the ring at once */
    if (rc == 0) {
        /* RocketMQ: delayLevel -1 means straight to the dead letters, 0 by the retry count */
        rc = shmq_consumer_send_back_entry(c, &v, (int)level, ctl, props, sizeof(props), &rm);
        if (rc == 1) {
            gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0); /* nothing to store */
            return;
        }
    }
    gw_sendback_t *sb = NULL;
    if (rc == 0 && (sb = calloc(1, sizeof(*sb))) == NULL) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        sb->conn = conn;
        sb->cmd.code = cmd->code;
        sb->cmd.opaque = cmd->opaque;
        sb->cmd.flag = cmd->flag;
        sb->phys = phys;
        snprintf(sb->group, sizeof(sb->group), "%s", group);
        sb->bytes = rm.topic_len + rm.props_len + rm.body_len + GW_SEND_OVERHEAD;
        conn->refs++;
        gw->sends++;
        gw->send_bytes += sb->bytes;
        rc = shmq_producer_send_entry_async(p, &rm, on_sent_back, sb);
        if (rc == 0) {
            return;
        }
        /* not started: no callback comes */
        gw->sends--;
        gw->send_bytes -= sb->bytes;
        gw_conn_unref(conn);
        free(sb);
    }
    send_back_answer(conn, cmd, group, phys, rc);
}
