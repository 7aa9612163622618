/*
 * Batches of asynchronous deliveries settled in order (deliver_batch.h).
 */
#include "client/deliver_batch.h"

#include <errno.h>

static void on_answer(void *arg, int err, const shmq_send_result_t *res)
{
    /* A FLUSH_DISK_TIMEOUT status still means stored; SHMQ_E_FENCED (stored, not made
     * durable: a recovery may cut it) comes as err, for the caller to deliver again. */
    (void)res;
    ((shmq_deliver_item_t *)arg)->status = err;
}

bool shmq_deliver_room(const shmq_deliver_batch_t *b)
{
    return b->n < SHMQ_DELIVER_BATCH;
}

int shmq_deliver_send(shmq_deliver_batch_t *b, const shmq_ring_msg_t *rm, int64_t key)
{
    shmq_deliver_item_t *it = &b->items[b->n++];
    it->key = key;
    it->status = SHMQ_DELIVER_PENDING;
    int rc = shmq_producer_send_entry_async(b->prod, rm, on_answer, it);
    if (rc < 0) {
        it->status = rc;
    }
    return rc;
}

void shmq_deliver_settle(shmq_deliver_batch_t *b, int64_t key)
{
    b->items[b->n++] = (shmq_deliver_item_t){.status = 0, .key = key};
}

int64_t shmq_deliver_wait(shmq_deliver_batch_t *b, int wait_ms,
                          bool (*transient)(int err, void *arg), void *arg)
{
    if (shmq_producer_flush(b->prod, wait_ms) < 0) {
        return shmq_error_set(-ETIMEDOUT, "no answer to %zu deliveries in %d ms", b->n, wait_ms);
    }
    size_t k = 0;
    for (; k < b->n; k++) {
        int st = b->items[k].status;
        if (st != 0 && (st == SHMQ_DELIVER_PENDING || transient(st, arg))) {
            break;
        }
    }
    b->n = 0;
    return (int64_t)k;
}
