/*
 * Delayed, timed and retried messages: the rules, as pure functions
 * (ROCKETMQ-FACTS §10 delay levels, §11 retry and DLQ, §17.1 timer
 * admission).
 *
 * - The put-side rewrite RocketMQ's broker does in its put hook: a message
 *   with a delay level becomes a SCHEDULE_TOPIC_XXXX message (queue level-1,
 *   REAL_TOPIC/REAL_QID added); one with TIMER_DELIVER_MS, TIMER_DELAY_MS or
 *   TIMER_DELAY_SEC becomes a rmq_sys_wheel_timer message (queue 0,
 *   TIMER_OUT_MS added).  The writer applies it to every entry before
 *   appending (shmq_schedule_writer_hook).
 * - What a due message becomes when the scheduler writes it again to its
 *   real topic and queue.
 * - Where a consumer's failed message goes: %RETRY%<group> with a delay
 *   level, or %DLQ%<group>.
 *
 * Nothing here does I/O except shmq_schedule_topic_ensure (the topic table)
 * and the writer hook that calls it.
 */
#ifndef SHMQ_SCHEDULE_H
#define SHMQ_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/config.h"
#include "shm/ctl.h"
#include "format/message.h"
#include "format/names.h"
#include "shm/ring.h"

/* Property names of delayed and timed messages (§3.2). */
#define SHMQ_PROP_TIMER_DELIVER_MS  "TIMER_DELIVER_MS"
#define SHMQ_PROP_TIMER_DELAY_MS    "TIMER_DELAY_MS"
#define SHMQ_PROP_TIMER_DELAY_SEC   "TIMER_DELAY_SEC"
#define SHMQ_PROP_TIMER_OUT_MS      "TIMER_OUT_MS"
#define SHMQ_PROP_TIMER_ENQUEUE_MS  "TIMER_ENQUEUE_MS"
#define SHMQ_PROP_TIMER_DEQUEUE_MS  "TIMER_DEQUEUE_MS"
#define SHMQ_PROP_TIMER_ROLL_TIMES  "TIMER_ROLL_TIMES"
#define SHMQ_PROP_TIMER_DEL_UNIQKEY "TIMER_DEL_UNIQKEY"

/* What shmq_schedule_transform did. */
enum shmq_schedule_kind {
    SHMQ_SCHEDULE_NONE = 0,  /* stored as sent */
    SHMQ_SCHEDULE_DELAY = 1, /* now a SCHEDULE_TOPIC_XXXX message */
    SHMQ_SCHEDULE_TIMER = 2, /* now a rmq_sys_wheel_timer message */
};

/* Parse a decimal integer of len bytes (an optional '-', digits only). false if not one. */
bool shmq_schedule_parse_i64(const char *s, size_t len, int64_t *out);

/* A property to set: name and value (value_len bytes). */
typedef struct shmq_prop_kv {
    const char *name;
    const char *value;
    size_t value_len;
} shmq_prop_kv_t;

/*
 * Copy the properties props[0..len) into dst (cap bytes) without those
 * named in drop (a NULL-terminated list; may be NULL), without the
 * store's __CRC32# and without those named in set; then append set[0..nset)
 * in order.  Segments RocketMQ's decoder ignores are dropped.  Returns 0
 * with *out_len, or SHMQ_E_PROPS when the result would exceed cap or the
 * room the encoder keeps below 32767 bytes, SHMQ_E_ARG for a bad pair.
 */
int shmq_props_rewrite(const char *props, size_t len, const char *const *drop,
                       const shmq_prop_kv_t *set, size_t nset, char *dst, size_t cap,
                       size_t *out_len);

/*
 * The put-side rewrite of one message m (its topic, queue_id, sysflag and
 * properties) at time now_ms, RocketMQ's broker put hook:
 *   - a NOT_TYPE/COMMIT message with DELAY > 0 (not already on
 *     SCHEDULE_TOPIC_XXXX): level clamped to cfg's level count (DELAY
 *     rewritten then), TIMER_DELIVER_MS/TIMER_DELAY_MS/TIMER_DELAY_SEC
 *     removed, REAL_TOPIC/REAL_QID added, topic SCHEDULE_TOPIC_XXXX, queue
 *     level - 1: SHMQ_SCHEDULE_DELAY;
 *   - else one with TIMER_DELAY_SEC, TIMER_DELAY_MS or TIMER_DELIVER_MS
 *     (that priority), not on rmq_sys_wheel_timer and without TIMER_OUT_MS:
 *     deliverMs = now + sec * 1000, now + ms, or the absolute time.  If it
 *     is in the future: rounded to timerPrecisionMs P (an exact multiple
 *     loses P, anything else is floored), TIMER_OUT_MS/REAL_TOPIC/REAL_QID
 *     added, topic rmq_sys_wheel_timer, queue 0: SHMQ_SCHEDULE_TIMER.  Due
 *     already: SHMQ_SCHEDULE_NONE (stored as an ordinary message);
 *   - anything else: SHMQ_SCHEDULE_NONE, m untouched.
 * The new properties are written to buf (cap bytes; SHMQ_PROPS_MAX is
 * always enough) and m->props points there; m->topic points to a constant.
 * Errors (m untouched): SHMQ_E_ARG (a timer property that is not a number,
 * a timer message while timerWheelEnable is false, a due cancel marker),
 * SHMQ_E_RANGE (deliver time more than timerMaxDelaySec ahead),
 * SHMQ_E_PROPS (the properties would grow past the limit).
 */
int shmq_schedule_transform(const shmq_config_t *cfg, int64_t now_ms, shmq_ring_msg_t *m, char *buf,
                            size_t cap);

/* True when the properties ask for a delay level or a delivery time (cheap, one pass). */
bool shmq_schedule_requested(const char *props, size_t len);

/*
 * The writer's hook, called once per validated unit msgs[0..n) before it is
 * appended (or matched at a restart).  Applies shmq_schedule_transform to a
 * single message (its new properties live in a per-thread buffer until the
 * next call) and makes sure the system topic it now targets exists with
 * enough queues (shmq_schedule_topic_ensure).  A producer batch asking for a
 * delay is refused (SHMQ_E_ARG), as RocketMQ refuses it.  Returns 0 or the
 * error to answer the producer with.
 */
int shmq_schedule_writer_hook(shmq_ctl_t *ctl, const shmq_config_t *cfg, shmq_ring_msg_t *msgs,
                              size_t n);

/*
 * Make sure topic name exists in the control block's topic table with at
 * least queues read and write queues and read-write permission (created
 * or widened under the topic lock, topics.json saved).  0 or an error.
 */
int shmq_schedule_topic_ensure(shmq_ctl_t *ctl, const char *name, int32_t queues);

/* ---- due messages --------------------------------------------------------------- */

/*
 * What the decoded record r (a SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer
 * message) becomes when it is due (§10, §17.4): a ring entry view in *out
 * for its REAL_TOPIC / REAL_QID with r's body, flag, sysflag (host bits
 * left to the encoder), born time and host, reconsume times and
 * properties, where
 *   kind SHMQ_SCHEDULE_DELAY: DELAY and the TIMER_DELIVER_MS /
 *       TIMER_DELAY_MS / TIMER_DELAY_SEC requests removed (REAL_TOPIC and
 *       REAL_QID stay), WAIT=false;
 *   kind SHMQ_SCHEDULE_TIMER: REAL_TOPIC and REAL_QID removed,
 *       TIMER_ENQUEUE_MS = enqueue_ms and TIMER_DEQUEUE_MS = now_ms added
 *       (TIMER_OUT_MS stays: the put hook leaves the copy alone), WAIT=false
 *       (as RocketMQ's timer writes it: the re-write does not wait for a
 *       flush).
 * The properties go to buf (cap >= SHMQ_PROPS_MAX); out->topic points into
 * r's properties.  Returns 0, 1 when the message is to be dropped (a
 * transaction half-topic target), or SHMQ_E_CORRUPT when REAL_TOPIC or
 * REAL_QID is missing or malformed (the message cannot be delivered).
 */
int shmq_schedule_redeliver(const shmq_record_t *r, int kind, int64_t enqueue_ms, int64_t now_ms,
                            char *buf, size_t cap, shmq_ring_msg_t *out);

/*
 * The cancel markers of a timer slot (§17.4): a rmq_sys_wheel_timer record
 * with TIMER_DEL_UNIQKEY cancels the message of the same slot whose
 * REAL_TOPIC and UNIQ_KEY match.  Keys are "<REAL_TOPIC>+<UNIQ_KEY>".
 */
typedef struct shmq_cancel_set {
    char **keys;
    size_t count;
} shmq_cancel_set_t;

/* Add the marker record r (ignored without REAL_TOPIC / TIMER_DEL_UNIQKEY). 0 or -ENOMEM. */
int shmq_cancel_set_add(shmq_cancel_set_t *cs, const shmq_record_t *r);

/* True if the record r (its REAL_TOPIC and UNIQ_KEY) was cancelled. */
bool shmq_cancel_set_has(const shmq_cancel_set_t *cs, const shmq_record_t *r);

/* Empty the set. */
void shmq_cancel_set_free(shmq_cancel_set_t *cs);

/* ---- retries ---------------------------------------------------------------------- */

/* Where a failed message goes (§11). */
typedef struct shmq_retry_plan {
    char topic[SHMQ_TOPIC_MAX_ANY + 1]; /* %RETRY%<group> or %DLQ%<group> */
    int32_t queue_id;
    int32_t delay_level; /* DELAY of the new record; 0 for the DLQ */
    bool dlq;
    bool drop; /* retryQueueNums is 0: the send-back succeeds and nothing is stored */
} shmq_retry_plan_t;

/*
 * Decide per §11 for a message stored with reconsume_times that a consumer
 * of group reports failed with delay_level (0: 3 + reconsume_times; < 0:
 * straight to the DLQ): DLQ when reconsume_times >= max_reconsume or
 * delay_level < 0, else %RETRY%<group> queue rnd % retry_queue_nums.
 * SHMQ_E_TOPIC when the topic name would exceed 255 bytes.
 */
int shmq_retry_plan(const char *group, int32_t reconsume_times, int32_t max_reconsume,
                    int32_t retry_queue_nums, int delay_level, uint32_t rnd,
                    shmq_retry_plan_t *out);

/*
 * The send-back record of a failed message: topic, queue and DELAY of plan,
 * same body, flag, sysflag, born time and host (as RocketMQ keeps them;
 * born_host NULL: none, 0.0.0.0:0), properties (RETRY_TOPIC = the
 * message's topic when absent, ORIGIN_MESSAGE_ID = msg_id when absent),
 * RECONSUMETIMES + 1.  Properties go to buf (cap >= SHMQ_PROPS_MAX).
 */
int shmq_retry_build(const shmq_retry_plan_t *plan, const char *topic, size_t topic_len,
                     const void *body, size_t body_len, int32_t flag, int32_t sysflag,
                     int64_t born_ts, const shmq_host_t *born_host, int32_t reconsume_times,
                     const char *props, size_t props_len, const char *msg_id, char *buf, size_t cap,
                     shmq_ring_msg_t *out);

#endif
