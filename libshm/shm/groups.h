/*
 * Consumer group membership and the division of a group's queues among its
 * members (the master's side; docs/operations.md "Consumer groups").
 *
 * A consumer handle becomes a member when it sends JOIN_GROUP over its
 * connection to <root>/shmq.sock (reg.h) and stops being one when that
 * connection closes: on shmq_consumer_close, and when its process dies,
 * since the kernel closes the socket then.  No heartbeat, no timeout: the
 * master sees the end at once.
 *
 * Clustering (RocketMQ's default model): the queues of each topic are
 * divided among the group's members subscribed to it, and the queues of the
 * group's retry topic among all of its clustering members, with RocketMQ's
 * AllocateMessageQueueAveragely (queues sorted by id, members by client
 * id).  A queue changes hands only through its owner: when the division
 * moves it, its owner is asked to release it (the member entry's release
 * bits); the owner commits its offset and releases it (RELEASE_QUEUE), and
 * only then the new owner gets it and starts from that commit.  An owner
 * that dies gives its queues up with its connection (what it processed
 * without committing is delivered again: at least once).  An owner that
 * lives but does not release within SHMQ_GROUP_RELEASE_MS (an orderly one:
 * SHMQ_GROUP_LOCK_MS, RocketMQ's rebalanceLockMaxLiveTime) loses the queue
 * anyway; its later commits of it are refused (SHMQ_E_NOT_OWNER).
 *
 * Broadcasting members hold no queues: each reads every queue, with offsets
 * of its own (the client's side: consumer_retry.c).
 *
 * Every function here runs in the master's loop (one thread); the member
 * table in the consumer area is the only state, so a reader (a member,
 * shmqctl) sees what the master decided.
 */
#ifndef SHMQ_GROUPS_H
#define SHMQ_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/ctl.h"

#define SHMQ_GROUP_RELEASE_MS 20000 /* RocketMQ's rebalance interval */
#define SHMQ_GROUP_LOCK_MS    60000 /* rebalanceLockMaxLiveTime */

/* Who joins, and for what. */
typedef struct shmq_member_join {
    pid_t pid;
    uid_t uid;
    const char *group;
    const char *topic;
    const char *sub;   /* its subscription expression as sent (may be cut) */
    uint64_t sub_hash; /* FNV-1a of the whole expression */
    uint32_t flags;    /* enum shmq_member_flags */
} shmq_member_join_t;

/*
 * Make members[slot] (a free entry: the connection's index) a member of
 * j->group consuming j->topic, and divide the group's queues again.  *id
 * receives the member's id.  When another member of the group subscribes
 * otherwise (another topic, model or expression: RocketMQ reports such a
 * group as inconsistent), note (len bytes) says how, else it is "".
 * SHMQ_E_ARG for a bad name or flag; -EBUSY when the slot is a member
 * already.
 */
int shmq_groups_join(shmq_ctl_t *ctl, int slot, const shmq_member_join_t *j, uint64_t *id,
                     char *note, size_t len);

/* True when every live member of group subscribes alike (topic, model, expression). */
bool shmq_groups_consistent(const shmq_ctl_t *ctl, const char *group);

/* members[slot]'s connection closed: it leaves, its queues are divided again. */
void shmq_groups_leave(shmq_ctl_t *ctl, int slot);

/*
 * May the connection at slot (member or not) commit group's offset of
 * topic/queue_id?  A clustering member of group may commit only the queues
 * it holds of its topic and of the group's retry topic (SHMQ_E_NOT_OWNER
 * otherwise); anything else is not this file's to refuse.  0 or the error
 * with a detail.
 */
int shmq_groups_may_commit(const shmq_ctl_t *ctl, int slot, const char *group, const char *topic,
                           int32_t queue_id);

/* A commit of the member at slot was stored: its last commit time. */
void shmq_groups_committed(shmq_ctl_t *ctl, int slot);

/*
 * The member at slot gives up topic/queue_id, which it was asked to
 * release (its offset committed before, by the caller).  SHMQ_E_ARG when it
 * is not a member of group or was not asked to.
 */
int shmq_groups_release(shmq_ctl_t *ctl, int slot, const char *group, const char *topic,
                        int32_t queue_id);

/*
 * Called by the master's loop (now_ms: shmq_mono_ms()): once a second it
 * takes the queues their owners did not release in time and divides every
 * group again (queues added to a topic, a retry topic created).  Returns
 * the number of queues taken; note (len bytes, may be NULL) then says from
 * whom, for the log.
 */
int shmq_groups_tick(shmq_ctl_t *ctl, int64_t now_ms, char *note, size_t len);

#endif
