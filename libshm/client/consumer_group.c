/*
 * A consumer handle's membership of its group (the store's side:
 * libshm/shm/groups.h).  The handle joins over its connection to the
 * master (JOIN_GROUP) and is a member as long as that connection lives;
 * the master writes what the member holds into the member table of the
 * consumer area, which the handle reads (read-only) under the entry's seq.
 *
 * The handle notices a change with two loads: the table's members_gen and
 * its entry's id.  A different id (a store started anew, the entry freed)
 * or a new connection (reg_conns) means the membership ended: it joins
 * again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "client/consumer_int.h"
#include "shm/reg.h"

typedef struct cons_member {
    bool joined;
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    uint64_t sub_hash; /* of the subscription joined with */
    uint32_t flags;
    uint32_t slot;
    uint64_t id;
    uint64_t generation; /* the consumer area's when joined */
    uint64_t reg_conns;  /* the handle's connection count when joined */
    uint64_t gen_seen;   /* members_gen of the last copy */
    uint64_t version;    /* moves whenever the queues held change */
    shmq_ctl_member_t view;
} cons_member_t;

void shmq_cons_member_free(shmq_consumer_t *c)
{
    free(c->member);
    c->member = NULL;
}

/* The subscription as a member sends it: "*" for every tag, and its hash. */
static const char *sub_text(const char *sub, uint64_t *hash)
{
    const char *s = sub != NULL && sub[0] ? sub : "*";
    *hash = shmq_fnv1a64(SHMQ_FNV_BASIS, s, strlen(s));
    return s;
}

static int join(shmq_consumer_t *c, cons_member_t *m, const char *topic, const char *sub,
                uint32_t flags)
{
    shmq_reg_msg_t req = {.type = SHMQ_REG_JOIN_GROUP, .queue_id = (int32_t)flags};
    uint64_t hash;
    const char *s = sub_text(sub, &hash);
    req.offset = (int64_t)hash;
    snprintf(req.group, sizeof(req.group), "%s", c->group);
    snprintf(req.topic, sizeof(req.topic), "%s", topic);
    /* At most SHMQ_REG_EXPR_MAX bytes (cut), printable: the hash tells whole ones apart. */
    size_t i = 0;
    for (; s[i] && i < SHMQ_REG_EXPR_MAX; i++) {
        req.expr[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    }
    req.expr[i] = '\0';
    shmq_reg_msg_t rep;
    int rc = shmq_cons_reg_call(c, &req, &rep);
    if (rc < 0) {
        return shmq_error_wrap(rc, "group %s: joining for topic %s", c->group, topic);
    }
    if (rep.ring >= SHMQ_CTL_MAX_MEMBERS || rep.claims == 0) {
        return shmq_error_set(SHMQ_E_CORRUPT, "group %s: the store answered entry %u, id %llu",
                              c->group, rep.ring, (unsigned long long)rep.claims);
    }
    m->joined = true;
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    m->sub_hash = hash;
    m->flags = flags;
    m->slot = rep.ring;
    m->id = rep.claims;
    m->generation = c->ctl.cons->generation;
    m->reg_conns = c->reg_conns;
    m->gen_seen = 0;
    return 0;
}

static int member_sync(shmq_consumer_t *c, const char *topic, const char *sub, uint32_t flags,
                       const shmq_ctl_member_t **own)
{
    if (c->member == NULL && (c->member = calloc(1, sizeof(*c->member))) == NULL) {
        return -ENOMEM;
    }
    cons_member_t *m = c->member;
    const shmq_ctl_cons_t *cons = c->ctl.cons;
    uint64_t hash;
    sub_text(sub, &hash);
    bool rejoin = !m->joined || m->generation != cons->generation || m->reg_conns != c->reg_conns ||
                  c->reg_fd < 0 || m->flags != flags || m->sub_hash != hash ||
                  strcmp(m->topic, topic) != 0;
    if (!rejoin) {
        /* relaxed: the entry's seq orders the copy below */
        uint64_t id = atomic_load_explicit((_Atomic uint64_t *)&cons->members[m->slot].id,
                                           memory_order_relaxed);
        rejoin = id != m->id;
    }
    if (rejoin) {
        if (m->joined && c->reg_fd >= 0 && m->reg_conns == c->reg_conns) {
            /* Another topic, subscription or model on a live membership: a new
             * connection leaves it. */
            close(c->reg_fd);
            c->reg_fd = -1;
        }
        m->joined = false;
        int rc = join(c, m, topic, sub, flags);
        if (rc < 0) {
            return rc;
        }
    }
    /* Acquire: pairs with the master's release after it wrote the entries. */
    uint64_t gen = atomic_load_explicit(&cons->members_gen, memory_order_acquire);
    *own = &m->view;
    if (!rejoin && gen == m->gen_seen) {
        return 0;
    }
    shmq_ctl_member_t copy;
    int rc = shmq_ctl_member_copy(cons, (int)m->slot, &copy);
    if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
        return rc;
    }
    if (rc == SHMQ_E_NOT_FOUND || copy.id != m->id) {
        m->joined = false; /* ended meanwhile: joined again at the next call */
        memset(&m->view, 0, sizeof(m->view));
        m->version++;
        return 1;
    }
    m->gen_seen = gen;
    bool changed = rejoin || memcmp(copy.own, m->view.own, sizeof(copy.own)) != 0 ||
                   copy.own_retry != m->view.own_retry ||
                   memcmp(copy.release, m->view.release, sizeof(copy.release)) != 0 ||
                   copy.release_retry != m->view.release_retry;
    m->view = copy;
    m->version += changed;
    return changed ? 1 : 0;
}

int shmq_cons_member_release(shmq_consumer_t *c, const char *topic, int32_t queue_id)
{
    shmq_reg_msg_t req = {.type = SHMQ_REG_RELEASE_QUEUE, .queue_id = queue_id, .offset = -1};
    snprintf(req.group, sizeof(req.group), "%s", c->group);
    snprintf(req.topic, sizeof(req.topic), "%s", topic);
    shmq_reg_msg_t rep;
    int rc = shmq_cons_reg_call(c, &req, &rep);
    if (rc < 0) {
        return shmq_error_wrap(rc, "group %s: releasing %s/%d", c->group, topic, (int)queue_id);
    }
    return 0;
}

int shmq_cons_member_queues(shmq_consumer_t *c, const char *topic, const char *sub,
                            const shmq_ctl_member_t **own)
{
    int rc = member_sync(c, topic, sub, c->member_flags, own);
    if (rc < 0 || (c->member_flags & SHMQ_MEMBER_BROADCASTING)) {
        return rc;
    }
    /* Give back what the group asks back: what was processed is committed by now.  Asked
     * whether the view changed now or not: the copy taken after the last releases may ask
     * for more (a member joined meanwhile), and nothing moves members_gen again. */
    const shmq_ctl_member_t *v = *own;
    bool asked = v->release_retry != 0;
    for (int w = 0; w < SHMQ_MEMBER_QWORDS && !asked; w++) {
        asked = v->release[w] != 0;
    }
    if (!asked) {
        return rc;
    }
    char retry[SHMQ_TOPIC_MAX_ANY + 1];
    snprintf(retry, sizeof(retry), "%s%s", SHMQ_RETRY_PREFIX, c->group);
    bool released = false;
    for (int32_t q = 0; q < SHMQ_TOPIC_QUEUES_MAX + SHMQ_MEMBER_RETRY_MAX; q++) {
        bool main = q < SHMQ_TOPIC_QUEUES_MAX;
        int32_t id = main ? q : q - SHMQ_TOPIC_QUEUES_MAX;
        if (!shmq_member_bit(main ? v->release : &v->release_retry, id)) {
            continue;
        }
        rc = shmq_cons_member_release(c, main ? topic : retry, id);
        if (rc < 0 && rc != SHMQ_E_ARG) { /* SHMQ_E_ARG: no longer asked (divided back) */
            return rc;
        }
        released = true;
    }
    if (released) {
        rc = member_sync(c, topic, sub, c->member_flags, own);
        return rc < 0 ? rc : 1;
    }
    return 1;
}

uint64_t shmq_cons_member_version(const shmq_consumer_t *c)
{
    return c->member != NULL ? c->member->version : 0;
}

/* ---- the public calls ------------------------------------------------------------------- */

static int model_args(shmq_consumer_t *c)
{
    if (c == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "no consumer");
    }
    if (!c->has_group) {
        return shmq_error_set(SHMQ_E_ARG, "consumer opened without a group: no membership");
    }
    if (c->member != NULL && c->member->joined) {
        return shmq_error_set(SHMQ_E_ARG, "group %s: set the model before the first poll",
                              c->group);
    }
    return 0;
}

int shmq_consumer_set_model(shmq_consumer_t *c, int model)
{
    int rc = model_args(c);
    if (rc < 0) {
        return rc;
    }
    if (model != SHMQ_CLUSTERING && model != SHMQ_BROADCASTING) {
        return shmq_error_set(SHMQ_E_ARG, "message model %d: SHMQ_CLUSTERING or SHMQ_BROADCASTING",
                              model);
    }
    c->member_flags = model == SHMQ_BROADCASTING
                          ? c->member_flags | SHMQ_MEMBER_BROADCASTING
                          : c->member_flags & ~(uint32_t)SHMQ_MEMBER_BROADCASTING;
    return 0;
}

int shmq_consumer_set_orderly(shmq_consumer_t *c, bool orderly)
{
    int rc = model_args(c);
    if (rc < 0) {
        return rc;
    }
    c->member_flags = orderly ? c->member_flags | SHMQ_MEMBER_ORDERLY
                              : c->member_flags & ~(uint32_t)SHMQ_MEMBER_ORDERLY;
    return 0;
}

static void ref_set(shmq_queue_ref_t *r, const char *topic, int32_t q, bool retry)
{
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    r->queue_id = q;
    r->retry = retry;
}

int shmq_consumer_queues(shmq_consumer_t *c, const char *topic, const char *subscription,
                         shmq_queue_ref_t *out, int cap, uint64_t *version)
{
    if (c == NULL || topic == NULL || cap < 0 || (cap > 0 && out == NULL)) {
        return shmq_error_set(SHMQ_E_ARG, "queues: consumer, topic and room are required");
    }
    if (!c->has_group) {
        return shmq_error_set(SHMQ_E_ARG, "consumer opened without a group: no membership");
    }
    if (shmq_topic_validate(topic, strlen(topic), SHMQ_TOPIC_MAX_ANY) < 0) {
        return SHMQ_E_ARG;
    }
    int rc = shmq_cons_ensure(c);
    if (rc < 0) {
        return rc;
    }
    const shmq_ctl_member_t *v;
    rc = shmq_cons_member_queues(c, topic, subscription, &v);
    if (rc < 0) {
        return rc;
    }
    char topics[2][SHMQ_TOPIC_MAX_ANY + 1];
    int nt = shmq_group_topics(c->group, topic, topics);
    if (nt < 0) {
        return nt;
    }
    int n = 0;
    for (int t = 0; t < nt; t++) {
        int nq = shmq_topic_queue_count(c, topics[t]);
        if (nq == SHMQ_E_NOT_FOUND) {
            continue;
        }
        if (nq < 0) {
            return nq;
        }
        for (int32_t q = 0; q < nq; q++) {
            bool held =
                (c->member_flags & SHMQ_MEMBER_BROADCASTING) || shmq_member_holds(v, t == 1, q);
            if (held && n++ < cap) {
                ref_set(&out[n - 1], topics[t], q, t == 1);
            }
        }
    }
    if (version != NULL) {
        *version = c->member->version;
    }
    return n;
}
