/*
 * shmq-gateway's pulls and offsets: PULL_MESSAGE 11 with RocketMQ's long
 * polling (a pull that finds nothing is held up to suspendTimeoutMillis and
 * answered as soon as its queue grows), QUERY_CONSUMER_OFFSET 14,
 * UPDATE_CONSUMER_OFFSET 15, SEARCH_OFFSET_BY_TIMESTAMP 29, GET_MAX_OFFSET
 * 30, GET_MIN_OFFSET 31.
 *
 * A pull reads through the consumer handle of its group (shmq_pull: the
 * tag filter by tag hash then tag, the topic's perms and the group's
 * consumeEnable), and answers the messages found as the CommitLog records
 * RocketMQ's clients decode, with the body decompressed (a client knows
 * zlib only; the store may hold LZ4) and the store's offsets, so that the
 * message ids the client computes are the store's.  Offsets are the
 * group's committed offsets of the store (config/consumerOffset.json).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "format/compress.h"
#include "format/message.h"
#include "gateway.h"
#include "shmq/errors.h"

#define PULL_SYSFLAG_COMMIT  0x1 /* commitOffset is to be committed */
#define PULL_SYSFLAG_SUSPEND 0x2 /* hold the pull when nothing is there */
#define PULL_SUSPEND_MAX_MS  60000

/* Grow *buf to hold need more bytes. */
static int reserve(uint8_t **buf, size_t len, size_t need, size_t *cap)
{
    if (len + need <= *cap) {
        return 0;
    }
    size_t c = *cap ? *cap : 65536;
    while (c < len + need) {
        c *= 2;
    }
    uint8_t *b = realloc(*buf, c);
    if (b == NULL) {
        return -ENOMEM;
    }
    *buf = b;
    *cap = c;
    return 0;
}

int gw_put_record(gw_t *gw, const shmq_msg_view_t *m, uint8_t **buf, size_t *len, size_t *cap)
{
    (void)gw;
    shmq_msg_in_t in;
    memset(&in, 0, sizeof(in));
    in.topic = m->topic;
    in.topic_len = m->topic_len;
    in.queue_id = m->queue_id;
    in.flag = m->flag;
    in.sysflag = m->sysflag;
    in.born_ts = m->born_ts;
    in.born_host = m->born_host;
    in.reconsume_times = m->reconsume_times;
    in.body = m->body;
    in.body_len = m->body_len;
    uint8_t *plain = NULL;
    if (m->compression != SHMQ_COMPRESSION_NONE && m->body == m->stored_body) {
        /* given as stored (an admin query): decompressed here, as a pull gives it */
        size_t plen;
        if (shmq_body_decompress(m->compression, m->stored_body, m->stored_len, 64u << 20, &plain,
                                 &plen) == 0) {
            in.body = plain;
            in.body_len = plen;
            in.sysflag &= ~(SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_COMPRESS_MASK);
        }
    } else if (m->compression != SHMQ_COMPRESSION_NONE) {
        in.sysflag &= ~(SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_COMPRESS_MASK);
    }
    /* the properties without the store's whole-record CRC (the encoder adds it again) */
    in.props = m->props;
    in.props_len = m->props_len;
    if (in.props_len >= SHMQ_CRC_PROP_LEN &&
        memcmp(in.props + in.props_len - SHMQ_CRC_PROP_LEN, SHMQ_PROP_CRC32 "\001", 9) == 0) {
        in.props_len -= SHMQ_CRC_PROP_LEN;
    }
    shmq_host_t store;
    int64_t phys;
    if (shmq_msgid_parse(m->msg_id, &store, &phys) < 0) {
        shmq_local_host(&store, gw->cfg->listen_port);
    }
    in.store_host = store;
    int64_t size = shmq_record_size(&in);
    int rc = size < 0 ? (int)size : reserve(buf, *len, (size_t)size, cap);
    if (rc == 0) {
        int64_t w = shmq_record_encode(&in, m->queue_offset, m->phys_offset, m->store_ts,
                                       *buf + *len, *cap - *len);
        if (w < 0) {
            rc = (int)w;
        } else {
            *len += (size_t)w;
        }
    }
    free(plain);
    return rc;
}

/* ---- pulls ------------------------------------------------------------------------------ */

/* Try the pull once.  True when answered; false when it should be held. */
static bool pull_once(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, bool may_hold)
{
    gw_t *gw = conn->gw;
    char gb[8], tb[8], sb[8];
    const char *group = gw_need(conn, cmd, "consumerGroup", gb, 0);
    const char *topic = group ? gw_need(conn, cmd, "topic", tb, 0) : NULL;
    int64_t qid, offset, max_nums = 32, sysflag = 0;
    if (topic == NULL || !gw_need_i64(conn, cmd, "queueId", 0, 65535, &qid) ||
        !gw_need_i64(conn, cmd, "queueOffset", 0, INT64_MAX, &offset)) {
        return true;
    }
    shmq_rmt_ext_i64(cmd, "maxMsgNums", 1, INT32_MAX, &max_nums);
    shmq_rmt_ext_i64(cmd, "sysFlag", 0, INT32_MAX, &sysflag);
    if (max_nums > SHMQ_PULL_MAX) {
        max_nums = SHMQ_PULL_MAX;
    }
    const char *sub = shmq_rmt_ext(cmd, "subscription", sb, 0);
    shmq_consumer_t *c = gw_group(gw, group);
    if (c == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "group %s: %s", group, shmq_error_detail());
        return true;
    }
    int64_t commit;
    if ((sysflag & PULL_SYSFLAG_COMMIT) &&
        shmq_rmt_ext_i64(cmd, "commitOffset", 0, INT64_MAX, &commit) == 0 && may_hold) {
        (void)shmq_commit_offset(c, topic, (int32_t)qid, commit);
    }
    shmq_pull_result_t *res = gw->res;
    int rc = shmq_pull(c, topic, (int32_t)qid, offset, (int)max_nums, sub, 0, res);
    if (rc < 0) {
        int code = rc == SHMQ_E_ARG ? 23 /* SUBSCRIPTION_PARSE_FAILED */ : gw_code_of(rc);
        gw_answer_err(conn, cmd, code, "pull %s/%lld at %lld: %s", topic, (long long)qid,
                      (long long)offset, shmq_error_detail());
        return true;
    }
    int code;
    int64_t next = res->next_offset;
    switch (res->status) {
    case SHMQ_PULL_FOUND:
        code = SHMQ_RMT_SUCCESS;
        break;
    case SHMQ_PULL_NO_MATCHED_MSG:
    case SHMQ_PULL_MESSAGE_WAS_REMOVING:
        code = SHMQ_RMT_PULL_RETRY_IMMEDIATELY;
        break;
    case SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE:
    case SHMQ_PULL_NO_MESSAGE_IN_QUEUE:
        code = offset != 0 ? SHMQ_RMT_PULL_OFFSET_MOVED : SHMQ_RMT_PULL_NOT_FOUND;
        next = 0;
        break;
    case SHMQ_PULL_OFFSET_TOO_SMALL:
    case SHMQ_PULL_OFFSET_OVERFLOW_BADLY:
        code = SHMQ_RMT_PULL_OFFSET_MOVED;
        break;
    default: /* NO_NEW_MSG, OFFSET_OVERFLOW_ONE */
        code = SHMQ_RMT_PULL_NOT_FOUND;
        break;
    }
    if (code == SHMQ_RMT_PULL_NOT_FOUND && may_hold && (sysflag & PULL_SYSFLAG_SUSPEND)) {
        return false;
    }
    size_t len = 0;
    for (size_t i = 0; i < res->count; i++) {
        if (i > 0 && len >= GW_PULL_BYTES) {
            next = res->msgs[i].queue_offset; /* the rest on the next pull */
            break;
        }
        if (gw_put_record(gw, &res->msgs[i], &gw->scratch, &len, &gw->scratch_cap) < 0) {
            if (i == 0) {
                gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "pull: %s", shmq_error_detail());
                return true;
            }
            next = res->msgs[i].queue_offset;
            break;
        }
    }
    char nb[32], mn[32], mx[32];
    snprintf(nb, sizeof(nb), "%lld", (long long)next);
    snprintf(mn, sizeof(mn), "%lld", (long long)res->min_offset);
    snprintf(mx, sizeof(mx), "%lld", (long long)res->max_offset);
    json_t *ext = json_pack("{s:s, s:s, s:s, s:s}", "nextBeginOffset", nb, "minOffset", mn,
                            "maxOffset", mx, "suggestWhichBrokerId", "0");
    gw_answer(conn, cmd, code, NULL, ext, gw->scratch, code == SHMQ_RMT_SUCCESS ? len : 0);
    json_decref(ext);
    return true;
}

void gw_pull(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    gw->counts.pulls++;
    if (pull_once(conn, cmd, true)) {
        return;
    }
    int64_t wait = PULL_SUSPEND_MAX_MS;
    shmq_rmt_ext_i64(cmd, "suspendTimeoutMillis", 0, PULL_SUSPEND_MAX_MS, &wait);
    /* past the bounds a pull is answered at once (PULL_NOT_FOUND): the client asks again */
    gw_pull_t *hp = conn->suspended < GW_SUSPENDED_MAX && gw->nheld < GW_HELD_MAX
                        ? calloc(1, sizeof(*hp))
                        : NULL;
    if (hp == NULL) {
        pull_once(conn, cmd, false); /* answered now: PULL_NOT_FOUND */
        return;
    }
    hp->conn = conn;
    hp->cmd.code = cmd->code;
    hp->cmd.opaque = cmd->opaque;
    hp->cmd.flag = cmd->flag;
    hp->cmd.ext = json_deep_copy(cmd->ext);
    hp->deadline_ms = shmq_mono_ms() + wait;
    conn->refs++;
    conn->suspended++;
    gw->nheld++;
    hp->next = gw->pulls;
    gw->pulls = hp;
    gw_poll_start(gw);
}

/* Whether the held pull's queue has grown past its offset. */
static bool grown(gw_t *gw, const gw_pull_t *hp)
{
    char tb[8];
    const char *topic = shmq_rmt_ext(&hp->cmd, "topic", tb, 0);
    int64_t qid, offset, min, max;
    if (topic == NULL || shmq_rmt_ext_i64(&hp->cmd, "queueId", 0, 65535, &qid) < 0 ||
        shmq_rmt_ext_i64(&hp->cmd, "queueOffset", 0, INT64_MAX, &offset) < 0) {
        return true;
    }
    if (shmq_queue_offsets(gw->reader, topic, (int32_t)qid, &min, &max) < 0) {
        return false;
    }
    return max > offset || offset < min;
}

void gw_pulls_check(gw_t *gw, bool all_now)
{
    int64_t now = shmq_mono_ms();
    gw_pull_t **pp = &gw->pulls;
    while (*pp) {
        gw_pull_t *hp = *pp;
        bool gone = hp->conn->closed;
        bool due = all_now || now >= hp->deadline_ms;
        if (!gone && !due && !grown(gw, hp)) {
            pp = &hp->next;
            continue;
        }
        *pp = hp->next;
        if (!gone && !pull_once(hp->conn, &hp->cmd, !due)) {
            /* nothing after all (filtered out): hold it on */
            hp->next = *pp;
            *pp = hp;
            pp = &hp->next;
            continue;
        }
        hp->conn->suspended--;
        gw->nheld--;
        shmq_rmt_cmd_free(&hp->cmd);
        gw_conn_unref(hp->conn);
        free(hp);
    }
}

/* ---- offsets ---------------------------------------------------------------------------- */

static void answer_offset(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int64_t offset)
{
    char ob[32];
    snprintf(ob, sizeof(ob), "%lld", (long long)offset);
    json_t *ext = json_pack("{s:s}", "offset", ob);
    gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, ext, NULL, 0);
    json_decref(ext);
}

void gw_offsets(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd)
{
    gw_t *gw = conn->gw;
    char tb[8], gb[8];
    const char *topic = gw_need(conn, cmd, "topic", tb, 0);
    int64_t qid, min = 0, max = 0;
    if (topic == NULL || !gw_need_i64(conn, cmd, "queueId", 0, 65535, &qid)) {
        return;
    }
    int rc;
    switch (cmd->code) {
    case SHMQ_RMT_GET_MAX_OFFSET:
    case SHMQ_RMT_GET_MIN_OFFSET:
        rc = shmq_queue_offsets(gw->reader, topic, (int32_t)qid, &min, &max);
        if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
            gw_answer_err(conn, cmd, gw_code_of(rc), "%s", shmq_error_detail());
            return;
        }
        answer_offset(conn, cmd, cmd->code == SHMQ_RMT_GET_MAX_OFFSET ? max : min);
        return;
    case SHMQ_RMT_SEARCH_OFFSET_BY_TIMESTAMP: {
        int64_t ts, off = 0;
        if (!gw_need_i64(conn, cmd, "timestamp", INT64_MIN, INT64_MAX, &ts)) {
            return;
        }
        rc = shmq_offset_by_time(gw->reader, topic, (int32_t)qid, ts, &off);
        if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
            gw_answer_err(conn, cmd, gw_code_of(rc), "%s", shmq_error_detail());
            return;
        }
        answer_offset(conn, cmd, off);
        return;
    }
    default:
        break;
    }
    const char *group = gw_need(conn, cmd, "consumerGroup", gb, 0);
    if (group == NULL) {
        return;
    }
    shmq_consumer_t *c = gw_group(gw, group);
    if (c == NULL) {
        gw_answer_err(conn, cmd, SHMQ_RMT_SYSTEM_ERROR, "group %s: %s", group, shmq_error_detail());
        return;
    }
    if (cmd->code == SHMQ_RMT_UPDATE_CONSUMER_OFFSET) {
        int64_t off;
        if (!gw_need_i64(conn, cmd, "commitOffset", 0, INT64_MAX, &off)) {
            return;
        }
        rc = shmq_commit_offset(c, topic, (int32_t)qid, off);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_DEBUG, "client %s: commit of %s %s/%lld: %s", conn->peer_text, group,
                     topic, (long long)qid, shmq_error_detail());
            gw_answer_err(conn, cmd, gw_code_of(rc), "%s", shmq_error_detail());
            return;
        }
        gw_answer(conn, cmd, SHMQ_RMT_SUCCESS, NULL, NULL, NULL, 0);
        return;
    }
    /* QUERY_CONSUMER_OFFSET */
    int64_t off;
    rc = shmq_fetch_offset(c, topic, (int32_t)qid, &off);
    if (rc == 0) {
        answer_offset(conn, cmd, off);
        return;
    }
    /* none committed: a queue whose first message is still there starts at 0 (RocketMQ's
     * rule for a new group); otherwise the client decides (consumeFromWhere) */
    rc = shmq_queue_offsets(gw->reader, topic, (int32_t)qid, &min, &max);
    if (rc == SHMQ_E_NOT_FOUND || (rc == 0 && min <= 0)) {
        answer_offset(conn, cmd, 0);
        return;
    }
    gw_answer_err(conn, cmd, SHMQ_RMT_QUERY_NOT_FOUND, "no offset of group %s for %s/%lld", group,
                  topic, (long long)qid);
}
