/*
 * Giving up one corrupt message (shmq_consumer_skip_corrupt,
 * include/shmq/consumer.h; shmqctl consume --skip-corrupt): the unit and its
 * record are checked again, CRCs included, and the group, which must stand
 * at that message, is committed past it (consumer_offsets.c) and its poll
 * cursor follows (consumer_retry.c).  The one place that decides whether a
 * message may be skipped and for whom; the line it returns is what an
 * operator logs.  Decoding and checking a unit is consumer.c's, shared with
 * the pull path (consumer_int.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/consumer_int.h"

/*
 * Check the unit at qoff of a queue holding [min, max) and its record, CRCs
 * included: 0 when it yields a message or none (a blank unit, a cleaned
 * record), SHMQ_E_CORRUPT with *bad filled when a pull would stop there.
 */
static int unit_check(shmq_consumer_t *c, const char *topic, size_t tlen, int32_t queue_id,
                      int64_t qoff, int64_t min, int64_t max, shmq_corrupt_t *bad)
{
    shmq_cq_t *cq;
    int rc = shmq_cons_queue_ready(c, topic, tlen, queue_id, min, max, &cq);
    if (rc < 0) {
        return rc;
    }
    shmq_cq_unit_t u;
    if (shmq_cq_read(cq, qoff, &u) < 0) {
        shmq_error_set(SHMQ_E_CORRUPT, "no ConsumeQueue file holds the unit (max offset %lld)",
                       (long long)max);
        return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, -1, NULL, SHMQ_E_CORRUPT);
    }
    if (shmq_cons_unit_is_blank(&u)) {
        return 0;
    }
    if (!shmq_cons_unit_is_valid(&u)) {
        return shmq_cons_unit_invalid(bad, topic, tlen, queue_id, qoff, &u);
    }
    if (u.phys_offset < shmq_ctl_load(&c->ctl.blk->min)) {
        return 0;
    }
    shmq_msg_view_t v;
    rc = shmq_cons_record_view(c, &u, qoff, topic, tlen, queue_id, true, &v, bad);
    if (rc == 0 && (v.sysflag & SHMQ_SYSFLAG_COMPRESSED)) {
        rc = shmq_cons_view_decompress(c, NULL, &u, qoff, topic, tlen, queue_id, &v, bad);
    }
    return rc == CONS_REC_REMOVED ? 0 : rc;
}

/* Where the group stands in the queue must be qoff; SHMQ_E_RANGE otherwise. */
static int group_at(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t qoff,
                    int64_t min)
{
    int64_t committed;
    int rc = shmq_ctl_offset_get(&c->ctl, c->group, topic, queue_id, &committed);
    if (rc == SHMQ_E_NOT_FOUND) {
        if (qoff == min) {
            return 0;
        }
        return shmq_error_set(SHMQ_E_RANGE,
                              "group %s has no offset in %s/%d: it starts at %lld, not at %lld; "
                              "nothing skipped",
                              c->group, topic, queue_id, (long long)min, (long long)qoff);
    }
    if (rc < 0) {
        return rc;
    }
    if (committed != qoff) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "group %s stands at offset %lld of %s/%d, not at %lld: skipping "
                              "would lose the messages between; nothing skipped",
                              c->group, (long long)committed, topic, queue_id, (long long)qoff);
    }
    return 0;
}

int shmq_consumer_skip_corrupt(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                               int64_t queue_offset, char *line, size_t line_len)
{
    if (line && line_len > 0) {
        line[0] = '\0';
    }
    const shmq_ctl_queue_t *e;
    int rc = shmq_cons_queue_entry(c, topic, queue_id, &e);
    if (rc < 0) {
        return rc;
    }
    size_t tlen = strlen(topic);
    /* Acquire: pairs with the dispatcher's release; the units below max are complete. */
    int64_t max = atomic_load_explicit((_Atomic int64_t *)&e->max_offset, memory_order_acquire);
    int64_t min = atomic_load_explicit((_Atomic int64_t *)&e->min_offset, memory_order_acquire);
    min = min < 0 ? 0 : min > max ? max : min;
    if (queue_offset < min || queue_offset >= max) {
        return shmq_error_set(SHMQ_E_RANGE, "queue offset %lld of %s/%d outside [%lld, %lld)",
                              (long long)queue_offset, topic, queue_id, (long long)min,
                              (long long)max);
    }
    if (c->has_group && (rc = group_at(c, topic, queue_id, queue_offset, min)) < 0) {
        return rc;
    }
    shmq_corrupt_t *bad = malloc(sizeof(*bad)); /* a path inside: too big for the stack */
    if (!bad) {
        return -ENOMEM;
    }
    shmq_error_clear();
    rc = unit_check(c, topic, tlen, queue_id, queue_offset, min, max, bad);
    if (rc == 0) {
        free(bad);
        return shmq_error_set(SHMQ_E_ARG,
                              "%s/%d queue offset %lld is not corrupt (CRCs checked): nothing "
                              "skipped",
                              topic, queue_id, (long long)queue_offset);
    }
    if (rc != SHMQ_E_CORRUPT) {
        free(bad);
        return rc;
    }
    /* The detail less its "corrupt message T/Q queue offset N: " head, which the line says. */
    char head[SHMQ_TOPIC_MAX_ANY + 96];
    int hn = snprintf(head, sizeof(head), "corrupt message %s/%d queue offset %lld: ", topic,
                      queue_id, (long long)queue_offset);
    const char *why = shmq_error_detail();
    if (hn > 0 && strncmp(why, head, (size_t)hn) == 0) {
        why += hn;
    }
    char why_copy[1024];
    snprintf(why_copy, sizeof(why_copy), "%s", why);
    if (c->has_group) {
        rc = shmq_cons_offset_commit(c, topic, queue_id, queue_offset + 1);
        if (rc < 0) {
            free(bad);
            return shmq_error_wrap(rc, "committing offset %lld of group %s in %s/%d",
                                   (long long)queue_offset + 1, c->group, topic, queue_id);
        }
        shmq_consumer_poll_moved(c, topic, queue_id, queue_offset + 1);
    }
    if (line && line_len > 0) {
        if (c->has_group) {
            snprintf(line, line_len,
                     "skipped corrupt message %s/%d queue offset %lld for group %s (offset now "
                     "%lld): %s",
                     topic, queue_id, (long long)queue_offset, c->group,
                     (long long)queue_offset + 1, why_copy);
        } else {
            snprintf(line, line_len, "corrupt message %s/%d queue offset %lld given up: %s", topic,
                     queue_id, (long long)queue_offset, why_copy);
        }
    }
    free(bad);
    shmq_error_clear();
    return 0;
}
