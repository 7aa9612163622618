/*
 * shmqctl dlq: list a consumer group's dead-letter queue (%DLQ%<group>) of
 * a running store: the messages the group failed more often than its
 * retries allow (retryMaxTimes / maxReconsumeTimes).
 *
 * Reads every queue of the topic from its first message, without a group
 * (nothing is committed: listing twice shows the same), and prints one line
 * per message:
 *   topic=%DLQ%G queue=Q queueOffset=N msgId=... uniqKey=... retryTopic=T
 *   originMsgId=... reconsumeTimes=R storeTime=... body=<text>
 * or with --json an object per line (topic, queue, queue_offset,
 * phys_offset, msg_id, uniq_key, retry_topic, origin_msg_id, tags, keys,
 * reconsume_times, store_ts, body, body_encoding).  A summary line "dlq:
 * N messages" goes to stderr.
 *
 * Exit codes: 0 (also when the queue is empty or does not exist), 1 the
 * store is not running or a read failed, 2 bad arguments.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ctl.h"
#include "format/names.h"
#include "shmq/consumer.h"
#include "shmqctl.h"

#define DLQ_BATCH 256

static json_t *dlq_prop_json(const shmq_msg_view_t *v, const char *name)
{
    size_t len;
    const char *p = shmq_msg_property(v, name, &len);
    return p ? shmqctl_json_str(p, len) : json_null();
}

static void dlq_prop_text(const char *label, const shmq_msg_view_t *v, const char *name)
{
    size_t len;
    const char *p = shmq_msg_property(v, name, &len);
    printf(" %s=", label);
    if (p) {
        shmqctl_print_text(stdout, p, len);
    }
}

static int dlq_print(bool json, const shmq_msg_view_t *v)
{
    if (json) {
        bool text = shmqctl_utf8_printable(v->body, v->body_len);
        json_t *o = json_object();
        if (!o) {
            return -ENOMEM;
        }
        json_object_set_new(o, "topic", shmqctl_json_str(v->topic, v->topic_len));
        json_object_set_new(o, "queue", json_integer(v->queue_id));
        json_object_set_new(o, "queue_offset", json_integer(v->queue_offset));
        json_object_set_new(o, "phys_offset", json_integer(v->phys_offset));
        json_object_set_new(o, "msg_id", json_string(v->msg_id));
        json_object_set_new(o, "uniq_key", dlq_prop_json(v, SHMQ_PROP_UNIQ_KEY));
        json_object_set_new(o, "retry_topic", dlq_prop_json(v, SHMQ_PROP_RETRY_TOPIC));
        json_object_set_new(o, "origin_msg_id", dlq_prop_json(v, SHMQ_PROP_ORIGIN_ID));
        json_object_set_new(o, "tags", dlq_prop_json(v, SHMQ_PROP_TAGS));
        json_object_set_new(o, "keys", dlq_prop_json(v, SHMQ_PROP_KEYS));
        json_object_set_new(o, "reconsume_times", json_integer(v->reconsume_times));
        json_object_set_new(o, "store_ts", json_integer(v->store_ts));
        json_object_set_new(o, "body",
                            text ? json_stringn(v->body, v->body_len)
                                 : shmqctl_json_base64(v->body, v->body_len));
        json_object_set_new(o, "body_encoding", json_string(text ? "text" : "base64"));
        return shmqctl_json_print(o) < 0 ? -EIO : 0;
    }
    char ts[64];
    shmqctl_format_ts(v->store_ts, ts, sizeof(ts));
    fputs("topic=", stdout);
    shmqctl_print_text(stdout, v->topic, v->topic_len);
    printf(" queue=%d queueOffset=%lld msgId=%s", (int)v->queue_id, (long long)v->queue_offset,
           v->msg_id);
    dlq_prop_text("uniqKey", v, SHMQ_PROP_UNIQ_KEY);
    dlq_prop_text("retryTopic", v, SHMQ_PROP_RETRY_TOPIC);
    dlq_prop_text("originMsgId", v, SHMQ_PROP_ORIGIN_ID);
    printf(" reconsumeTimes=%d storeTime=%s body=", (int)v->reconsume_times, ts);
    shmqctl_print_text(stdout, v->body, v->body_len);
    fputc('\n', stdout);
    return 0;
}

/* Print queue q of topic from its first message; returns messages printed or an error. */
static int64_t dlq_queue(shmq_consumer_t *c, const char *topic, int32_t q, bool json, int64_t limit,
                         shmq_pull_result_t *pr)
{
    int64_t min, max, got = 0;
    int rc = shmq_queue_offsets(c, topic, q, &min, &max);
    if (rc == SHMQ_E_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    int64_t off = min;
    while (off < max && (limit < 0 || got < limit)) {
        int want = limit >= 0 && limit - got < DLQ_BATCH ? (int)(limit - got) : DLQ_BATCH;
        rc = shmq_pull(c, topic, q, off, want, NULL, 0, pr);
        if (rc < 0) {
            return rc;
        }
        if (pr->next_offset <= off && pr->status != SHMQ_PULL_FOUND) {
            break; /* nothing more readable */
        }
        for (size_t i = 0; i < pr->count; i++) {
            rc = dlq_print(json, &pr->msgs[i]);
            if (rc < 0) {
                return rc;
            }
            got++;
        }
        off = pr->next_offset > off ? pr->next_offset : off + 1;
    }
    return got;
}

int shmqctl_cmd_dlq(shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    if (!a->group) {
        return shmqctl_usage_error(a->cmd, "dlq needs --group");
    }
    int n = snprintf(topic, sizeof(topic), "%s%s", SHMQ_DLQ_TOPIC_PREFIX, a->group);
    if (n < 0 || (size_t)n >= sizeof(topic) ||
        shmq_topic_validate(topic, strlen(topic), SHMQ_TOPIC_MAX_ANY) < 0) {
        return shmqctl_usage_error(a->cmd, "invalid group name '%s'", a->group);
    }
    shmq_ctl_t ctl;
    memset(&ctl, 0, sizeof(ctl));
    int rc = shmqctl_attach_running(root, SHMQ_CTL_RDONLY, &ctl);
    if (rc != 0) {
        return rc;
    }
    shmq_ctl_detach(&ctl);
    shmq_consumer_t *c = NULL;
    shmq_error_clear();
    rc = shmq_consumer_open(root, NULL, &c);
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("store %s is not running", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot open a consumer on %s", root);
    }
    int ret = SHMQCTL_EXIT_OK;
    int64_t total = 0;
    shmq_pull_result_t *pr = malloc(sizeof(*pr));
    int nq = pr ? shmq_topic_queue_count(c, topic) : -ENOMEM;
    if (nq == SHMQ_E_NOT_FOUND) {
        nq = 0;
    }
    if (nq < 0) {
        ret = shmqctl_fail(nq, "cannot read topic %s", topic);
    }
    for (int32_t q = 0; ret == SHMQCTL_EXIT_OK && q < nq; q++) {
        int64_t got = dlq_queue(c, topic, q, a->json, a->count >= 0 ? a->count - total : -1, pr);
        if (got < 0) {
            ret = shmqctl_fail((int)got, "reading %s queue %d", topic, (int)q);
            break;
        }
        total += got;
    }
    if (ret == SHMQCTL_EXIT_OK) {
        fprintf(stderr, "dlq: %lld messages in %s\n", (long long)total, topic);
    }
    free(pr);
    shmq_consumer_close(c);
    return ret;
}
