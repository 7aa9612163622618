/*
 * A batch of deliveries sent asynchronously through a producer and settled
 * in order: the scheduler's way of writing due messages again so that its
 * progress moves only past deliveries that were acknowledged.
 *
 * Items are added in order (sent, or settled without a send); waiting
 * collects every answer and returns how many items from the first are
 * settled for good: stored, or refused with an error the caller deems
 * permanent.  A transient error (or no answer) ends that prefix: the items
 * after it are to be delivered again later.  Library code: nothing is
 * printed; the caller reads the items' statuses.
 */
#ifndef SHMQ_DELIVER_BATCH_H
#define SHMQ_DELIVER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/producer_entry.h"

#define SHMQ_DELIVER_BATCH   256 /* deliveries in flight at once */
#define SHMQ_DELIVER_PENDING 1   /* an item's status while its answer has not come */

typedef struct shmq_deliver_item {
    int32_t status; /* SHMQ_DELIVER_PENDING, 0 stored (or settled), or the error */
    int64_t key;    /* the caller's: which unit this delivers */
} shmq_deliver_item_t;

typedef struct shmq_deliver_batch {
    shmq_producer_t *prod;
    shmq_deliver_item_t items[SHMQ_DELIVER_BATCH];
    size_t n;
} shmq_deliver_batch_t;

/* True while the batch has room for another item. */
bool shmq_deliver_room(const shmq_deliver_batch_t *b);

/*
 * Send rm (producer_entry.h) as the next item, for key.  Returns 0, or the
 * error of a send that did not start (the item then holds it).
 */
int shmq_deliver_send(shmq_deliver_batch_t *b, const shmq_ring_msg_t *rm, int64_t key);

/* Add an item settled without a send (nothing to deliver for key). */
void shmq_deliver_settle(shmq_deliver_batch_t *b, int64_t key);

/*
 * Wait up to wait_ms for every answer, then return how many items from the
 * first are settled: stored, or failed with an error for which
 * transient(err, arg) is false.  The items stay readable until the next
 * add; the batch is empty for the next round.  -ETIMEDOUT when answers are
 * still missing after wait_ms (requests remain in flight: the caller must
 * not reuse the batch; the scheduler exits and starts again).
 */
int64_t shmq_deliver_wait(shmq_deliver_batch_t *b, int wait_ms,
                          bool (*transient)(int err, void *arg), void *arg);

#endif
