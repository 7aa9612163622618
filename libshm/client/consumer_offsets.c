/*
 * Where a consumer stands in a queue (include/shmq/consumer.h): a queue's
 * min and max offsets, a topic's read queue count, the offset of a store
 * time (shmq_offset_by_time), and the group offsets a consumer commits and
 * fetches.
 *
 * Queue offsets are read from the queue's entry in the control block, as
 * the dispatcher (max_offset) and the cleaner (min_offset) published them.  A
 * group's offset is read from the consumer area and committed through the
 * master's socket (SHMQ_REG_COMMIT_OFFSET, shm/reg.h), which checks and
 * stores it; the connection is the handle's reg_fd, opened at the first
 * commit.  The pull path is consumer.c's.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/consumer_int.h"
#include "shm/reg.h"

int shmq_cons_queue_entry(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                          const shmq_ctl_queue_t **out)
{
    if (!c || !topic || queue_id < 0) {
        return shmq_error_set(SHMQ_E_ARG, "consumer, topic and a queue id >= 0 are required");
    }
    size_t tlen = strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1);
    if (tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_ARG, "topic length %zu outside 1..%d", tlen,
                              SHMQ_TOPIC_MAX_ANY);
    }
    int rc = shmq_cons_ensure(c);
    if (rc < 0) {
        return rc;
    }
    *out = shmq_ctl_queue_find(&c->ctl, topic, tlen, queue_id);
    if (!*out) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "no queue %s/%d", topic, queue_id);
    }
    return 0;
}

int shmq_queue_offsets(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t *min,
                       int64_t *max)
{
    const shmq_ctl_queue_t *e;
    int rc = shmq_cons_queue_entry(c, topic, queue_id, &e);
    if (rc < 0) {
        return rc;
    }
    /* Acquire: pairs with the dispatcher's release (and the cleaner's for min). */
    int64_t hi = atomic_load_explicit((_Atomic int64_t *)&e->max_offset, memory_order_acquire);
    int64_t lo = atomic_load_explicit((_Atomic int64_t *)&e->min_offset, memory_order_acquire);
    if (min) {
        *min = lo < hi ? lo : hi;
    }
    if (max) {
        *max = hi;
    }
    return 0;
}

int shmq_topic_queue_count(shmq_consumer_t *c, const char *topic)
{
    if (!c || !topic || !*topic || strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1) > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_ARG, "a topic name of 1..%d bytes is required",
                              SHMQ_TOPIC_MAX_ANY);
    }
    int rc = shmq_cons_ensure(c);
    if (rc < 0) {
        return rc;
    }
    shmq_ctl_topic_t t;
    rc = shmq_ctl_topic_get(&c->ctl, topic, strlen(topic), &t);
    if (rc < 0) {
        return rc;
    }
    return t.read_queue_nums > 0 ? t.read_queue_nums : 0;
}

int shmq_offset_by_time(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t ts,
                        int64_t *offset)
{
    if (!offset) {
        return shmq_error_set(SHMQ_E_ARG, "offset_by_time: no result pointer");
    }
    int64_t min, max;
    int rc = shmq_queue_offsets(c, topic, queue_id, &min, &max);
    if (rc < 0) {
        return rc;
    }
    shmq_cq_t *cq;
    rc = shmq_cons_queue_ready(c, topic, strlen(topic), queue_id, min, max, &cq);
    if (rc < 0) {
        return rc;
    }
    /* Record reads stop at what the writer published. */
    int64_t wrote = shmq_ctl_load(&c->ctl.blk->wrote);
    shmq_commitlog_set_positions(&c->cl, wrote, wrote);
    *offset = shmq_cq_offset_by_time(cq, &c->cl, ts, SHMQ_BOUNDARY_LOWER);
    return 0;
}

static int offset_args(shmq_consumer_t *c, const char *topic, int32_t queue_id)
{
    if (!c || !topic || !*topic || queue_id < 0 ||
        strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1) > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_ARG,
                              "consumer, topic (1..%d bytes) and a queue id >= 0 "
                              "are required",
                              SHMQ_TOPIC_MAX_ANY);
    }
    if (!c->has_group) {
        return shmq_error_set(SHMQ_E_ARG, "consumer opened without a group: no offsets");
    }
    return shmq_cons_ensure(c);
}

/*
 * One request to the master over the handle's connection (opened when
 * there is none; every new one counts in reg_conns, since a group
 * membership ends with the connection it was made on).  A connection to a
 * master that went away is replaced once (a repeated commit of the same
 * offset is harmless; a join on the new one is what the caller wants).
 */
int shmq_cons_reg_call(shmq_consumer_t *c, const shmq_reg_msg_t *req, shmq_reg_msg_t *rep)
{
    for (int attempt = 0;; attempt++) {
        if (c->reg_fd < 0) {
            int fd = shmq_reg_connect(c->ctl.root);
            if (fd < 0) {
                return fd;
            }
            c->reg_fd = fd;
            c->reg_conns++;
        }
        memset(rep, 0, sizeof(*rep));
        int rc = shmq_reg_call(c->reg_fd, req, rep, NULL, SHMQ_REG_TIMEOUT_MS);
        if (rc >= 0 || rep->type == SHMQ_REG_REPLY_ERROR) {
            return rc; /* done, or refused with the master's reason */
        }
        /* No usable reply: this connection is done with. */
        close(c->reg_fd);
        c->reg_fd = -1;
        if (rc != SHMQ_E_NOT_FOUND || attempt > 0) {
            return rc;
        }
    }
}

/* Commit through the master (one round trip): it validates the commit and stores it. */
int shmq_cons_offset_commit(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t offset)
{
    shmq_reg_msg_t req = {.type = SHMQ_REG_COMMIT_OFFSET, .queue_id = queue_id, .offset = offset};
    snprintf(req.group, sizeof(req.group), "%s", c->group);
    snprintf(req.topic, sizeof(req.topic), "%s", topic);
    shmq_reg_msg_t rep;
    int rc = shmq_cons_reg_call(c, &req, &rep);
    if (rc < 0 && rep.type != SHMQ_REG_REPLY_ERROR) {
        return shmq_error_wrap(rc, "committing offset %lld of group %s in %s/%d", (long long)offset,
                               c->group, topic, (int)queue_id);
    }
    return rc;
}

int shmq_commit_offset(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t offset)
{
    int rc = offset_args(c, topic, queue_id);
    if (rc < 0) {
        return rc;
    }
    if (offset < 0) {
        return shmq_error_set(SHMQ_E_ARG, "offset %lld < 0", (long long)offset);
    }
    return shmq_cons_offset_commit(c, topic, queue_id, offset);
}

int shmq_fetch_offset(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t *offset)
{
    int rc = offset_args(c, topic, queue_id);
    if (rc < 0) {
        return rc;
    }
    if (!offset) {
        return shmq_error_set(SHMQ_E_ARG, "fetch_offset: no result pointer");
    }
    return shmq_ctl_offset_get(&c->ctl, c->group, topic, queue_id, offset);
}

int64_t shmq_consumer_offsets_resets(shmq_consumer_t *c)
{
    if (!c) {
        return shmq_error_set(SHMQ_E_ARG, "offsets_resets: no consumer");
    }
    int rc = shmq_cons_ensure(c);
    if (rc < 0) {
        return rc;
    }
    /* Acquire: pairs with shmq_ctl_offsets_reset_end's release (the new offsets). */
    return atomic_load_explicit(&c->ctl.cons->resets, memory_order_acquire);
}
