/*
 * The retry half of the consumer API (include/shmq/consumer.h): sending a
 * failed message back (RocketMQ's consumerSendMsgBack, ROCKETMQ-FACTS §11)
 * and group consumption that reads the group's retry topic along with its
 * subscription.
 *
 * Send-back: the consumer maps the store read-only, so it writes through a
 * producer of its own, opened on first use.  The copy keeps the message's
 * UNIQ_KEY, body, flag, born time and host, and properties; the store's writer turns
 * its DELAY into a SCHEDULE_TOPIC_XXXX message (libshm/shm/schedule.c) and the
 * scheduler delivers it to %RETRY%<group> when due.  The retry topic (its
 * retryQueueNums queues) and the dead-letter topic (one queue) are created
 * here when missing, whatever autoCreateTopicEnable says, as RocketMQ does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/consumer_int.h"
#include "client/producer_entry.h"
#include "shm/schedule.h"
#include "format/store_files.h"

#define POLL_WAIT_SLICE_MS 100
#define RESET_WAITS        300 /* 10 ms each: an offsets reset takes well under 3 s */

typedef struct poll_queue {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t queue_id;
    bool retry;     /* the group's retry topic: every message, not the subscription */
    int64_t offset; /* next offset to pull */
    bool started;   /* offset known (committed, or the queue's first) */
} poll_queue_t;

struct shmq_consumer_retry {
    shmq_producer_t *producer;
    bool group_loaded;
    int32_t max_reconsume;
    int32_t retry_queue_nums;
    uint32_t rnd;
    char props[SHMQ_PROPS_MAX];
    shmq_retry_plan_t plan; /* the last send-back's: its entry's topic points here */
    /* shmq_consumer_poll */
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    char *sub;
    poll_queue_t *qs;
    size_t nq;
    size_t qcap;
    size_t rr;
    uint64_t member_version; /* the membership version qs was built for (0: none) */
    bool commit_pending;     /* the last batch's queue (qs[commit_idx]) to commit */
    size_t commit_idx;
    int64_t commit_offset;
    int64_t resets; /* the store's offset reset count the positions follow; -1 not read yet */
};

void shmq_consumer_retry_free(struct shmq_consumer_retry *r)
{
    if (r == NULL) {
        return;
    }
    if (r->producer) {
        shmq_producer_close(r->producer);
    }
    free(r->sub);
    free(r->qs);
    free(r);
}

static int retry_state(shmq_consumer_t *c, struct shmq_consumer_retry **out)
{
    struct shmq_consumer_retry **slot = shmq_consumer_retry_state(c);
    if (*slot == NULL) {
        *slot = calloc(1, sizeof(**slot));
        if (*slot == NULL) {
            return -ENOMEM;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        (*slot)->rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() * 2654435761u;
        (*slot)->resets = -1;
    }
    *out = *slot;
    return 0;
}

int shmq_group_topics(const char *group, const char *topic, char topics[2][SHMQ_TOPIC_MAX_ANY + 1])
{
    if (group == NULL || topic == NULL || group[0] == '\0' || topic[0] == '\0' ||
        strlen(topic) > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_ARG, "group topics: a group and a topic are required");
    }
    snprintf(topics[0], SHMQ_TOPIC_MAX_ANY + 1, "%s", topic);
    if (strncmp(topic, SHMQ_RETRY_PREFIX, strlen(SHMQ_RETRY_PREFIX)) == 0 ||
        strncmp(topic, SHMQ_DLQ_TOPIC_PREFIX, strlen(SHMQ_DLQ_TOPIC_PREFIX)) == 0) {
        return 1;
    }
    int n = snprintf(topics[1], SHMQ_TOPIC_MAX_ANY + 1, "%s%s", SHMQ_RETRY_PREFIX, group);
    if (n < 0 || n > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_ARG, "group %s: its retry topic name exceeds %d bytes", group,
                              SHMQ_TOPIC_MAX_ANY);
    }
    return 2;
}

/* ---- send-back --------------------------------------------------------------------------- */

/* The group's retryMaxTimes and retryQueueNums (subscriptionGroup.json, else the defaults). */
static void load_group(shmq_consumer_t *c, struct shmq_consumer_retry *r, const char *group)
{
    const shmq_config_t *cfg = shmq_consumer_config(c);
    r->max_reconsume = cfg->max_reconsume_times;
    r->retry_queue_nums = 1;
    shmq_group_table_t t;
    if (shmq_groups_load(shmq_consumer_root(c), &t) == 0) {
        const shmq_group_config_t *g = shmq_group_table_get(&t, group);
        if (g) {
            if (g->retry_max_times >= 0) {
                r->max_reconsume = g->retry_max_times;
            }
            r->retry_queue_nums = g->retry_queue_nums;
        }
        shmq_group_table_free(&t);
    }
    r->group_loaded = true;
}

/* The checks of a send-back and the handle's retry state, its group loaded. */
static int send_back_state(shmq_consumer_t *c, const shmq_msg_view_t *m,
                           struct shmq_consumer_retry **out)
{
    if (c == NULL || m == NULL || m->topic == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "send back: consumer and message are required");
    }
    const char *group = shmq_consumer_group(c);
    if (group == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "send back: the consumer has no group");
    }
    int rc = retry_state(c, out);
    if (rc < 0) {
        return rc;
    }
    if (!(*out)->group_loaded) {
        load_group(c, *out, group);
    }
    return 0;
}

/* The entry of a send-back (see shmq_consumer_send_back_entry), r's group loaded. */
static int send_back_build(shmq_consumer_t *c, struct shmq_consumer_retry *r,
                           const shmq_msg_view_t *m, int delay_level, shmq_ctl_t *ctl, char *buf,
                           size_t cap, shmq_ring_msg_t *out)
{
    const char *group = shmq_consumer_group(c);
    shmq_retry_plan_t *plan = &r->plan;
    r->rnd = r->rnd * 1103515245u + 12345u;
    int rc = shmq_retry_plan(group, m->reconsume_times, r->max_reconsume, r->retry_queue_nums,
                             delay_level, r->rnd >> 8, plan);
    if (rc < 0) {
        return rc;
    }
    if (plan->drop) {
        return 1; /* retryQueueNums 0: RocketMQ answers success and keeps nothing */
    }
    rc = shmq_schedule_topic_ensure(ctl, plan->topic, plan->dlq ? 1 : r->retry_queue_nums);
    if (rc < 0) {
        return shmq_error_wrap(rc, "send back: topic %s", plan->topic);
    }
    /* The body as stored: a compressed one goes back compressed, with its sysflag. */
    const void *body = m->stored_body ? m->stored_body : m->body;
    size_t body_len = m->stored_body ? m->stored_len : m->body_len;
    /* The id of a view this handle pulled without ids (shmq_consumer_set_msg_ids) is
     * formatted here; any other view gives its msg_id as it is. */
    char id[SHMQ_MSGID_MAX];
    if (m->msg_id[0] == '\0' && !shmq_consumer_msg_ids(c)) {
        rc = shmq_msg_view_id(m, id);
        if (rc < 0) {
            return rc;
        }
    } else {
        memcpy(id, m->msg_id, sizeof(id));
    }
    return shmq_retry_build(plan, m->topic, m->topic_len, body, body_len, m->flag, m->sysflag,
                            m->born_ts, &m->born_host, m->reconsume_times, m->props, m->props_len,
                            id, buf, cap, out);
}

int shmq_consumer_send_back(shmq_consumer_t *c, const shmq_msg_view_t *m, int delay_level)
{
    struct shmq_consumer_retry *r;
    int rc = send_back_state(c, m, &r);
    if (rc < 0) {
        return rc;
    }
    if (r->producer == NULL) {
        rc = shmq_producer_open(shmq_consumer_root(c), NULL, &r->producer);
        if (rc < 0) {
            return rc;
        }
    }
    shmq_ctl_t *ctl;
    rc = shmq_producer_ctl(r->producer, &ctl);
    if (rc < 0) {
        return shmq_error_wrap(rc, "send back");
    }
    shmq_ring_msg_t rm;
    rc = send_back_build(c, r, m, delay_level, ctl, r->props, sizeof(r->props), &rm);
    if (rc != 0) {
        return rc < 0 ? rc : 0;
    }
    shmq_send_result_t res;
    return shmq_producer_send_entry(r->producer, &rm, &res);
}

int shmq_consumer_send_back_entry(shmq_consumer_t *c, const shmq_msg_view_t *m, int delay_level,
                                  shmq_ctl_t *ctl, char *buf, size_t cap, shmq_ring_msg_t *out)
{
    struct shmq_consumer_retry *r;
    int rc = send_back_state(c, m, &r);
    if (rc < 0) {
        return rc;
    }
    return send_back_build(c, r, m, delay_level, ctl, buf, cap, out);
}

/* ---- group polls ------------------------------------------------------------------------- */

static int poll_add(struct shmq_consumer_retry *r, const char *topic, int32_t q, bool retry)
{
    for (size_t i = 0; i < r->nq; i++) {
        if (r->qs[i].queue_id == q && strcmp(r->qs[i].topic, topic) == 0) {
            return 0;
        }
    }
    if (r->nq == r->qcap) {
        size_t cap = r->qcap ? r->qcap * 2 : 16;
        poll_queue_t *n = realloc(r->qs, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        r->qs = n;
        r->qcap = cap;
    }
    poll_queue_t *e = &r->qs[r->nq++];
    memset(e, 0, sizeof(*e));
    snprintf(e->topic, sizeof(e->topic), "%s", topic);
    e->queue_id = q;
    e->retry = retry;
    return 0;
}

/*
 * (Re)build the queue list for topic and subscription: the queues this
 * member holds (shmq_cons_member_queues; a broadcasting member: all of
 * them, new ones added at the end).  A list rebuilt starts every queue at
 * the group's committed offset again: everything polled before was
 * committed by then (shmq_consumer_poll commits first).
 */
static int poll_refresh(shmq_consumer_t *c, struct shmq_consumer_retry *r, const char *topic,
                        const char *sub)
{
    const char *s = sub ? sub : "";
    if (strcmp(r->topic, topic) != 0 || r->sub == NULL || strcmp(r->sub, s) != 0) {
        char *copy = strdup(s);
        if (copy == NULL) {
            return -ENOMEM;
        }
        free(r->sub);
        r->sub = copy;
        snprintf(r->topic, sizeof(r->topic), "%s", topic);
        r->nq = 0;
        r->rr = 0;
        r->member_version = 0;
        r->commit_pending = false;
    }
    const shmq_ctl_member_t *own;
    int rc = shmq_cons_member_queues(c, topic, r->sub, &own);
    if (rc < 0) {
        return rc;
    }
    bool all = (c->member_flags & SHMQ_MEMBER_BROADCASTING) != 0;
    if (!all) {
        /* The version, not rc: a shmq_consumer_queues call may have seen the change first. */
        uint64_t version = shmq_cons_member_version(c);
        if (version == r->member_version) {
            return 0; /* the same queues */
        }
        r->member_version = version;
        r->nq = 0;
        r->commit_pending = false;
    }
    char topics[2][SHMQ_TOPIC_MAX_ANY + 1];
    int nt = shmq_group_topics(shmq_consumer_group(c), topic, topics);
    if (nt < 0) {
        return nt;
    }
    for (int t = 0; t < nt; t++) {
        int n = shmq_topic_queue_count(c, topics[t]);
        if (n == SHMQ_E_NOT_FOUND) {
            continue; /* not created yet (no retry so far) */
        }
        if (n < 0) {
            return n;
        }
        for (int32_t q = 0; q < n; q++) {
            bool held = all || shmq_member_holds(own, t == 1, q);
            if (held && (rc = poll_add(r, topics[t], q, t == 1)) < 0) {
                return rc;
            }
        }
    }
    return 0;
}

void shmq_consumer_poll_moved(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                              int64_t offset)
{
    struct shmq_consumer_retry *r = *shmq_consumer_retry_state(c);
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nq; i++) {
        poll_queue_t *e = &r->qs[i];
        if (e->queue_id != queue_id || strcmp(e->topic, topic) != 0) {
            continue;
        }
        if (e->started) {
            e->offset = offset;
        }
        if (r->commit_pending && r->commit_idx == i && r->commit_offset < offset) {
            r->commit_offset = offset; /* never commit the group back before it */
        }
    }
}

/*
 * The group's offset of e moves to offset.  A broadcasting member keeps it
 * to itself; a clustering member's commit of a queue the group took from it
 * meanwhile is refused, and dropped here: the new owner reads from the last
 * commit (at least once).
 */
static int poll_commit(shmq_consumer_t *c, poll_queue_t *e, int64_t offset)
{
    e->offset = offset;
    if (c->member_flags & SHMQ_MEMBER_BROADCASTING) {
        return 0;
    }
    struct shmq_consumer_retry *r = *shmq_consumer_retry_state(c);
    if (r != NULL && shmq_consumer_offsets_resets(c) != r->resets) {
        return 0; /* offsets reset behind this poll: not committed over (see poll_follow_reset) */
    }
    int rc = shmq_commit_offset(c, e->topic, e->queue_id, offset);
    return rc == SHMQ_E_NOT_OWNER ? 0 : rc;
}

/* Pull queue e once (waiting up to wait_ms): 1 messages found, 0 none, < 0 error. */
static int poll_queue(shmq_consumer_t *c, struct shmq_consumer_retry *r, size_t i, int max_msgs,
                      int wait_ms, shmq_pull_result_t *res)
{
    poll_queue_t *e = &r->qs[i];
    if (!e->started) {
        int64_t off, min, max;
        if (shmq_fetch_offset(c, e->topic, e->queue_id, &off) == 0) {
            e->offset = off;
        } else if (shmq_queue_offsets(c, e->topic, e->queue_id, &min, &max) == 0) {
            e->offset = min;
        } else {
            e->offset = 0;
        }
        e->started = true;
    }
    int rc = shmq_pull(c, e->topic, e->queue_id, e->offset, max_msgs, e->retry ? NULL : r->sub,
                       wait_ms, res);
    if (rc < 0) {
        return rc;
    }
    switch (res->status) {
    case SHMQ_PULL_FOUND:
        r->commit_pending = true;
        r->commit_idx = i;
        r->commit_offset = res->next_offset;
        return 1;
    case SHMQ_PULL_NO_MATCHED_MSG:
    case SHMQ_PULL_OFFSET_TOO_SMALL:
    case SHMQ_PULL_OFFSET_OVERFLOW_BADLY:
    case SHMQ_PULL_MESSAGE_WAS_REMOVING:
        if (res->next_offset != e->offset) {
            rc = poll_commit(c, e, res->next_offset);
        }
        return rc < 0 ? rc : 0;
    default:
        return 0;
    }
}

/*
 * shmqctl offsets reset or group delete moved the store's reset count: the
 * last batch is not committed over the new offsets; once the count is even
 * again (bounded wait) every queue starts at its committed offset again.
 */
static void poll_follow_reset(shmq_consumer_t *c, struct shmq_consumer_retry *r)
{
    int64_t now = shmq_consumer_offsets_resets(c);
    if (now < 0 || now == r->resets) {
        return;
    }
    for (int i = 0; i < RESET_WAITS && (now & 1); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        now = shmq_consumer_offsets_resets(c);
    }
    if (r->resets >= 0) {
        r->commit_pending = false;
        for (size_t i = 0; i < r->nq; i++) {
            r->qs[i].started = false;
        }
    }
    r->resets = now;
}

int shmq_consumer_poll(shmq_consumer_t *c, const char *topic, const char *subscription,
                       int max_msgs, int wait_ms, shmq_pull_result_t *res)
{
    if (c == NULL || topic == NULL || res == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "poll: consumer, topic and result are required");
    }
    if (shmq_consumer_group(c) == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "poll: the consumer has no group");
    }
    struct shmq_consumer_retry *r;
    int rc = retry_state(c, &r);
    if (rc < 0) {
        return rc;
    }
    poll_follow_reset(c, r);
    /* The previous batch was processed: commit it. */
    if (r->commit_pending && r->commit_idx < r->nq) {
        r->commit_pending = false;
        rc = poll_commit(c, &r->qs[r->commit_idx], r->commit_offset);
        if (rc < 0) {
            return rc;
        }
    }
    r->commit_pending = false;
    int64_t deadline = shmq_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        rc = poll_refresh(c, r, topic, subscription);
        if (rc < 0) {
            return rc;
        }
        for (size_t k = 0; k < r->nq; k++) {
            size_t i = (r->rr + k) % r->nq;
            rc = poll_queue(c, r, i, max_msgs, 0, res);
            if (rc != 0) {
                r->rr = (i + 1) % r->nq;
                return rc < 0 ? rc : 0;
            }
        }
        int64_t left = deadline - shmq_mono_ms();
        if (left <= 0) {
            break;
        }
        int slice = left < POLL_WAIT_SLICE_MS ? (int)left : POLL_WAIT_SLICE_MS;
        if (r->nq == 0) {
            struct timespec ts = {0, (long)slice * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        /* Long-poll the next queue for a slice, then look at every queue again. */
        size_t i = r->rr % r->nq;
        rc = poll_queue(c, r, i, max_msgs, slice, res);
        if (rc != 0) {
            r->rr = (i + 1) % r->nq;
            return rc < 0 ? rc : 0;
        }
    }
    res->count = 0;
    res->status = SHMQ_PULL_NO_NEW_MSG;
    return 0;
}
