/*
 * Sending a message built by the store's own code rather than from a
 * shmq_message_t: the scheduler writing a due message again to its real
 * topic, a consumer sending a failed message back to its retry topic.  The
 * entry keeps the fields a re-stored RocketMQ message keeps (topic, queue,
 * flag, sysflag, born time and host, reconsume times, properties with the
 * original UNIQ_KEY, body), which the public producer API does not let a
 * user set.  Otherwise a send as shmq_send() / shmq_send_async(): same
 * ring, same answers, same errors.
 */
#ifndef SHMQ_PRODUCER_ENTRY_H
#define SHMQ_PRODUCER_ENTRY_H

#include "shm/ctl.h"
#include "shm/ring.h"
#include "shmq/consumer.h"
#include "shmq/producer.h"

/*
 * Send the entry view rm (kind MSG, batch_count 1; its slot, request id and
 * flags are the library's) and wait for the result, as shmq_send().  Its
 * topic is checked against the store's rules, its queue id against
 * 0..65535; the writer checks the rest.  The UNIQ_KEY of rm's properties is
 * reported in res->uniq_key.
 */
int shmq_producer_send_entry(shmq_producer_t *p, const shmq_ring_msg_t *rm,
                             shmq_send_result_t *res);

/* As shmq_producer_send_entry(), asynchronously: as shmq_send_async(). */
int shmq_producer_send_entry_async(shmq_producer_t *p, const shmq_ring_msg_t *rm, shmq_send_cb cb,
                                   void *arg);

/*
 * The send-back of m by consumer c (shmq_consumer_send_back's rules: retry
 * or dead-letter topic, created on ctl when missing, delay, RECONSUMETIMES)
 * as an entry view in *out for any producer to send (its properties in buf,
 * cap >= SHMQ_PROPS_MAX; its body m's; its topic c's, until the next
 * send-back of c).  0, 1 when nothing is to be stored
 * (the group's retryQueueNums is 0: the send-back succeeds), or an error.
 */
int shmq_consumer_send_back_entry(shmq_consumer_t *c, const shmq_msg_view_t *m, int delay_level,
                                  shmq_ctl_t *ctl, char *buf, size_t cap, shmq_ring_msg_t *out);

/*
 * The producer's read-write handle on the store's control block (attaching
 * first if needed), for creating the topics a re-stored message needs.
 * Valid until the next call on p.  SHMQ_E_NOT_FOUND when no store runs.
 */
int shmq_producer_ctl(shmq_producer_t *p, shmq_ctl_t **ctl);

#endif
