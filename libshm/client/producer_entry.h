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
 * The producer's read-write handle on the store's control block (attaching
 * first if needed), for creating the topics a re-stored message needs.
 * Valid until the next call on p.  SHMQ_E_NOT_FOUND when no store runs.
 */
int shmq_producer_ctl(shmq_producer_t *p, shmq_ctl_t **ctl);

#endif
