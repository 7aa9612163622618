/*
 * Sending entries built by the store's own code (producer_entry.h): the
 * scheduler's due messages and consumers' send-backs, through the same
 * ring, slots and answers as shmq_send (producer_send.c).
 */
#include "client/producer_entry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "format/message.h"
#include "client/producer_int.h"
#include "format/names.h"

/* The store's rules for a re-stored entry (the writer checks everything again). */
static int entry_check(shmq_producer_t *p, const shmq_ring_msg_t *rm, char uniq[SHMQ_UNIQ_KEY_MAX])
{
    if (rm == NULL || rm->kind != SHMQ_RING_KIND_MSG || rm->topic == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "send entry: not a message entry");
    }
    int rc = shmq_prod_ensure_ready(p);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_topic_validate(rm->topic, rm->topic_len, p->cfg->max_topic_length);
    if (rc < 0) {
        return rc;
    }
    if (rm->queue_id < 0 || rm->queue_id > 65535) {
        return shmq_error_set(SHMQ_E_RANGE, "queue id %d outside 0..65535", (int)rm->queue_id);
    }
    /* The parts within shmq_ring_encode's limits: enqueue encodes without its checks. */
    if ((rm->body_len != 0 && rm->body == NULL) || rm->props_len > UINT32_MAX / 2) {
        return shmq_error_set(SHMQ_E_ARG, "send entry: bad part lengths");
    }
    if (rm->body_len > (uint32_t)p->cfg->max_message_size) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "body of %u bytes exceeds maxMessageSize %d",
                              (unsigned)rm->body_len, p->cfg->max_message_size);
    }
    size_t vl = 0;
    const char *v = shmq_props_get(rm->props, rm->props_len, SHMQ_PROP_UNIQ_KEY, &vl);
    if (v == NULL || vl >= SHMQ_UNIQ_KEY_MAX) {
        return shmq_error_set(SHMQ_E_PROPS, "send entry: no usable UNIQ_KEY property");
    }
    memcpy(uniq, v, vl);
    uniq[vl] = '\0';
    return 0;
}

/* Check rm (entry_check) and copy it into *out as a single message with no slot yet. */
static int entry_prepare(shmq_producer_t *p, const shmq_ring_msg_t *rm, shmq_ring_msg_t *out,
                         char uniq[SHMQ_UNIQ_KEY_MAX])
{
    int rc = entry_check(p, rm, uniq);
    if (rc < 0) {
        return rc;
    }
    *out = *rm;
    out->batch_index = 0;
    out->batch_count = 1;
    out->flags = SHMQ_RING_F_RESEND; /* its born time is an earlier send's */
    out->slot = 0;
    out->req_id = 0;
    return 0;
}

/* The send_entry pair after their argument checks (mode REQ_SYNC or REQ_ASYNC). */
static int entry_send(shmq_producer_t *p, const shmq_ring_msg_t *rm, uint8_t mode,
                      shmq_send_result_t *res, shmq_send_cb cb, void *arg)
{
    int64_t deadline = shmq_mono_ms() + p->send_timeout_ms;
    char uniq[SHMQ_UNIQ_KEY_MAX];
    shmq_ring_msg_t e;
    int rc = entry_prepare(p, rm, &e, uniq);
    if (rc < 0) {
        return rc;
    }
    return shmq_prod_send(p, &e, mode, deadline, uniq, res, cb, arg);
}

int shmq_producer_send_entry(shmq_producer_t *p, const shmq_ring_msg_t *rm, shmq_send_result_t *res)
{
    if (p == NULL || res == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "send entry: NULL argument");
    }
    return entry_send(p, rm, REQ_SYNC, res, NULL, NULL);
}

int shmq_producer_send_entry_async(shmq_producer_t *p, const shmq_ring_msg_t *rm, shmq_send_cb cb,
                                   void *arg)
{
    if (p == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "send entry: NULL producer");
    }
    return entry_send(p, rm, REQ_ASYNC, NULL, cb, arg);
}

int shmq_producer_ctl(shmq_producer_t *p, shmq_ctl_t **ctl)
{
    if (p == NULL || ctl == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "producer_ctl: NULL argument");
    }
    int rc = shmq_prod_ensure_ready(p);
    if (rc < 0) {
        return rc;
    }
    *ctl = &p->ctl;
    return 0;
}
