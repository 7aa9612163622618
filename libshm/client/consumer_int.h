/*
 * Internal to the consumer library (consumer.c, consumer_retry.c): what the
 * retry half of the API needs of a consumer handle.  Not installed.
 */
#ifndef SHMQ_CONSUMER_INT_H
#define SHMQ_CONSUMER_INT_H

#include "format/config.h"
#include "shmq/consumer.h"

/* consumer_retry.c's state of a handle: its producer, group settings, poll cursors. */
struct shmq_consumer_retry;

/* The store root the handle was opened with. */
const char *shmq_consumer_root(const shmq_consumer_t *c);

/* The handle's group, or NULL when it was opened without one. */
const char *shmq_consumer_group(const shmq_consumer_t *c);

/* The running store's configuration as the handle last attached to it. */
const shmq_config_t *shmq_consumer_config(const shmq_consumer_t *c);

/* Where the handle keeps consumer_retry.c's state (NULL until first used). */
struct shmq_consumer_retry **shmq_consumer_retry_state(shmq_consumer_t *c);

/* Release that state (shmq_consumer_close). */
void shmq_consumer_retry_free(struct shmq_consumer_retry *r);

/*
 * The group's offset of topic/queue_id was moved to offset outside a poll
 * (shmq_consumer_skip_corrupt): the poll's cursor of that queue follows.
 */
void shmq_consumer_poll_moved(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                              int64_t offset);

#endif
