/*
 * Names the store gives meaning to, RocketMQ's rules for them, and the
 * system topics: one place for the producer, the ring decoder, the
 * registration socket, the metadata loaders and the ACL to agree on what a
 * topic or a consumer group may be called.
 */
#ifndef SHMQ_NAMES_H
#define SHMQ_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmq/types.h"

#define SHMQ_GROUP_MAX 120 /* bytes of a consumer group name */

/* Queues of one topic: shmqctl topic --queues and defaultTopicQueueNums (the
 * control block's queue table holds SHMQ_CTL_MAX_QUEUES for all topics). */
#define SHMQ_TOPIC_QUEUES_MAX 1024

/* System topics. */
#define SHMQ_SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"
#define SHMQ_TIMER_TOPIC    "rmq_sys_wheel_timer"
#define SHMQ_HALF_TOPIC     "RMQ_SYS_TRANS_HALF_TOPIC"
/* A consumer group's retry and dead-letter topics: the prefix, then the group. */
#define SHMQ_RETRY_PREFIX "%RETRY%"
#define SHMQ_DLQ_PREFIX   "%DLQ%"

/*
 * Check a topic name as a producer's input: 1..max_len bytes of letters,
 * digits, '%', '-', '_', '|' (retry and dead-letter topics up to
 * SHMQ_TOPIC_MAX_ANY).  0, or SHMQ_E_TOPIC with a detail.
 */
int shmq_topic_validate(const char *topic, size_t len, int32_t max_len);

/*
 * A topic of the store's own (RocketMQ's system topics no client may send
 * to): SCHEDULE_TOPIC_XXXX, RMQ_SYS_TRANS_HALF_TOPIC,
 * RMQ_SYS_TRANS_OP_HALF_TOPIC and every "rmq_sys_" topic
 * (rmq_sys_wheel_timer, ...).
 */
bool shmq_topic_is_system(const char *topic, size_t len);

/* A consumer group name: 1..SHMQ_GROUP_MAX bytes of A-Z a-z 0-9 % - _ | (RocketMQ's rule). */
int shmq_group_validate(const char *group, size_t len);

#endif
