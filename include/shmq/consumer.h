/*
 * shmq consumer API: read messages of a running store in place.
 *
 * A consumer attaches to the store by its path, read-only: the CommitLog,
 * the ConsumeQueues and the control block are mapped PROT_READ; the only
 * shared memory it writes is the consumer area (group offsets, its wake-up
 * registration).  A pull returns views of the records where they lie in the
 * mapped CommitLog: no copy.  Views stay valid until the next pull on the
 * same handle or shmq_consumer_close().
 *
 * Every record is checked before it is returned (as Kafka's consumers do
 * with check.crcs=true): against its ConsumeQueue unit (size, physical
 * offset, topic, queue, queue offset) and by its CRCs (docs/formats.md,
 * "What a consumer checks").  A record that fails is never returned: the
 * pull that reaches it fails with SHMQ_E_CORRUPT and says where
 * (shmq_pull_result_t.corrupt); shmq_consumer_skip_corrupt() moves a group
 * past it.
 *
 * A body stored compressed (RocketMQ's sysflag COMPRESSED bit, an LZ4 or
 * zstd frame or a zlib stream) is returned decompressed
 * (shmq_msg_view_t.compression says how it was stored); one that does not
 * decompress, or expands past maxMessageSize, is a corrupt record
 * (SHMQ_E_CORRUPT, check SHMQ_E_CORRUPT or SHMQ_E_TOO_BIG).  A pull returns
 * fewer messages than it could once it holds 32 MiB decompressed; the next
 * pull goes on from there.
 *
 * Thread safety: one thread per handle.
 */
#ifndef SHMQ_CONSUMER_H
#define SHMQ_CONSUMER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmq/errors.h"
#include "shmq/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_consumer shmq_consumer_t;

/* RocketMQ's pull statuses (GetMessageStatus). */
enum shmq_pull_status {
    SHMQ_PULL_FOUND = 0,
    SHMQ_PULL_NO_NEW_MSG = 1,             /* offset == max: nothing yet (after any wait) */
    SHMQ_PULL_NO_MATCHED_MSG = 2,         /* units scanned, none matched the subscription */
    SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE = 3, /* no such topic/queue */
    SHMQ_PULL_NO_MESSAGE_IN_QUEUE = 4,    /* queue exists, max offset 0 */
    SHMQ_PULL_OFFSET_TOO_SMALL = 5,       /* offset < min: next_offset = min */
    SHMQ_PULL_OFFSET_OVERFLOW_ONE = 6,    /* offset == max */
    SHMQ_PULL_OFFSET_OVERFLOW_BADLY = 7,  /* offset > max: next_offset = max */
    SHMQ_PULL_MESSAGE_WAS_REMOVING = 8,   /* the CommitLog data was cleaned */
};
const char *shmq_pull_status_name(int status);

/* A message as it lies in the CommitLog (pointers into read-only mappings). */
typedef struct shmq_msg_view {
    const char *topic;
    size_t topic_len;
    int32_t queue_id;
    int64_t queue_offset;
    int64_t phys_offset;
    int32_t size; /* record size */
    int32_t flag;
    int32_t sysflag;
    int32_t reconsume_times;
    int64_t born_ts;
    shmq_host_t born_host; /* the producer's host (a retry or dead letter keeps it) */
    int64_t store_ts;
    /*
     * The message body.  A body stored compressed (sysflag COMPRESSED) is
     * given decompressed by a consumer's pull, into memory of the handle
     * valid as long as the view, unless shmq_consumer_set_decompress() turned
     * that off; an admin query gives it as stored.
     */
    const void *body;
    size_t body_len;
    const char *props; /* encoded properties (see shmq_msg_property) */
    size_t props_len;
    char msg_id[SHMQ_MSGID_MAX];
    /* How the record stores the body: SHMQ_COMPRESSION_NONE, _LZ4, _ZSTD or _ZLIB
     * (types.h), or 4..7, type bits no RocketMQ client writes (given raw only). */
    int compression;
    /* The body as the record stores it (BODYCRC's bytes): body itself when
     * not compressed, or when the view gives it raw. */
    const void *stored_body;
    size_t stored_len;
} shmq_msg_view_t;

/* A property of a viewed message (value not NUL-terminated), or NULL. */
const char *shmq_msg_property(const shmq_msg_view_t *m, const char *name, size_t *len);

#define SHMQ_PULL_MAX 1024

/*
 * Where a pull that failed with SHMQ_E_CORRUPT stopped: the ConsumeQueue
 * unit whose record it will not return.  queue_offset is what
 * shmq_consumer_skip_corrupt() takes.
 */
typedef struct shmq_corrupt {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t queue_id;
    int64_t queue_offset; /* -1: the pull did not stop at a unit */
    int64_t phys_offset;  /* the CommitLog offset the unit points at */
    int check;            /* what failed: SHMQ_E_BODY_CRC, SHMQ_E_RECORD_CRC, SHMQ_E_SIZE,
                             SHMQ_E_MAGIC, SHMQ_E_PHYS_OFFSET, SHMQ_E_TRUNCATED,
                             SHMQ_E_TOO_BIG (its compressed body expands past
                             maxMessageSize), or SHMQ_E_CORRUPT (the record is not the
                             unit's, the unit is bad, or the body does not decompress) */
    char file[PATH_MAX];  /* the CommitLog file holding phys_offset; "" when none does */
    int64_t file_offset;  /* phys_offset within file; -1 when none */
} shmq_corrupt_t;

typedef struct shmq_pull_result {
    int status;          /* enum shmq_pull_status */
    int64_t next_offset; /* where the next pull should start */
    int64_t min_offset;
    int64_t max_offset;
    size_t count;
    shmq_corrupt_t corrupt; /* set when the pull returns SHMQ_E_CORRUPT */
    shmq_msg_view_t msgs[SHMQ_PULL_MAX];
} shmq_pull_result_t;

/*
 * Attach read-only to the store at store_root as a member of group (used
 * for offsets; may be NULL for offset-less reading).  SHMQ_E_NOT_FOUND when
 * the store is not running; SHMQ_E_ARG for a group name that is not 1..120
 * bytes of A-Z a-z 0-9 % - _ | (RocketMQ's rule, which the store checks on
 * every commit).
 */
int shmq_consumer_open(const char *store_root, const char *group, shmq_consumer_t **out);
void shmq_consumer_close(shmq_consumer_t *c);

/*
 * Let go of the files the cleaner deleted (unmap them): a mapping keeps a
 * deleted file's blocks allocated, so a full disk would stay full.  Pulls
 * do this by themselves (a long poll at least every 100 ms); a process that
 * keeps a handle open without pulling for long calls it about once a second.
 * Cheap when nothing was deleted (one shared-memory load).
 */
void shmq_consumer_release_removed(shmq_consumer_t *c);

/*
 * Check the CRCs of the records this handle returns (Kafka's consumer
 * option check.crcs): on (true) when the handle is opened.  Off, a pull
 * still checks each record against its unit (sizes, offsets, topic, queue)
 * but computes no CRC, and a flipped bit in a body or a header field
 * reaches the caller.  The cost of the check: docs/performance.md, bar 6.
 */
void shmq_consumer_set_check_crcs(shmq_consumer_t *c, bool on);

/*
 * Decompress the bodies RocketMQ's clients store compressed (on, true, when
 * the handle is opened).  Off, a view's body is the stored bytes as they
 * are (stored_body), its compression field still says how they are
 * compressed, and nothing is decompressed or checked beyond the CRCs.
 */
void shmq_consumer_set_decompress(shmq_consumer_t *c, bool on);

/*
 * Format each view's message id (msg_id) in the pull: on (true) when the
 * handle is opened.  Off, a pull leaves msg_id empty ("") and
 * shmq_msg_view_id() formats a view's id when asked: for a consumer that
 * reads the ids of few messages (a log line on failure, a send-back, which
 * formats it itself), about 25 instructions per message less.
 * Every other field is filled either way.
 */
void shmq_consumer_set_msg_ids(shmq_consumer_t *c, bool on);

/*
 * The offset message id of m into out, as msg_id holds it when the pull
 * formatted it: msg_id itself when filled, else formatted from the record m
 * views (a view of a pull, valid until the next pull on its handle).
 * Returns 0, or SHMQ_E_ARG when m is neither.
 */
int shmq_msg_view_id(const shmq_msg_view_t *m, char out[SHMQ_MSGID_MAX]);

/*
 * Pull up to max_msgs (1..SHMQ_PULL_MAX) messages of topic/queue_id from
 * offset.  subscription: NULL, "" or "*" for all, or "TagA || TagB" (tags
 * separated by "||", whitespace around them ignored; an empty tag, a single
 * '|', a '*' among tags, whitespace or control characters inside a tag, or
 * more than 64 tags is SHMQ_E_ARG).  Tags are matched by tagsCode first,
 * then by the record's exact TAGS value.
 *
 * Statuses and next_offset follow RocketMQ's getMessage: an offset equal to
 * the max is OFFSET_OVERFLOW_ONE without waiting (wait_ms <= 0) and
 * NO_NEW_MSG when a wait (wait_ms > 0) ended with nothing new.  If nothing
 * is available (offset == max, or offset 0 of an empty or not yet existing
 * queue) and wait_ms > 0, waits up to wait_ms for new messages (long
 * polling).  One pull scans at most max(800, max_msgs) units, within one
 * ConsumeQueue file; next_offset follows the last unit scanned.
 *
 * A unit whose record fails the checks (see the top of this file) ends the
 * batch: the messages before it are returned (FOUND, next_offset at the
 * bad unit; NO_MATCHED_MSG when only filtered units came before it), and
 * the pull that starts at it fails with SHMQ_E_CORRUPT, res->count 0,
 * res->corrupt naming the unit (topic, queue, queue offset) and the
 * CommitLog file and offset, and shmq_error_detail() saying the same with
 * the check that failed.  It fails the same way every time: the record is
 * never returned.  shmq_consumer_skip_corrupt() is the way past it.
 *
 * Returns 0 with *res filled (see status), or a negative error (SHMQ_E_ARG
 * for a bad argument or subscription, SHMQ_E_NOT_FOUND when the store is not
 * running: the handle re-attaches by itself once a store runs again,
 * SHMQ_E_CORRUPT as above).
 */
int shmq_pull(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t offset, int max_msgs,
              const char *subscription, int wait_ms, shmq_pull_result_t *res);

/* Min and max offset of a queue; SHMQ_E_NOT_FOUND if it does not exist. */
int shmq_queue_offsets(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t *min,
                       int64_t *max);

/* Number of readable queues of a topic; SHMQ_E_NOT_FOUND if the topic does not exist. */
int shmq_topic_queue_count(shmq_consumer_t *c, const char *topic);

/*
 * Queue offset of the first message stored at or after ts (ms), RocketMQ 5
 * rules (boundary LOWER), clamped to [min, max].  SHMQ_E_NOT_FOUND if the
 * queue does not exist.
 */
int shmq_offset_by_time(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t ts,
                        int64_t *offset);

/*
 * Commit the group's next offset for a queue (kept in shared memory, saved
 * to config/consumerOffset.json every 5 s and at shutdown).  SHMQ_E_ARG if
 * the consumer was opened without a group.
 */
int shmq_commit_offset(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t offset);

/* Fetch the group's committed offset; SHMQ_E_NOT_FOUND if none. */
int shmq_fetch_offset(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t *offset);

/*
 * The store's count of offset resets (shmqctl offsets reset, group delete
 * on a running store): odd while one is being written, even otherwise; 0 or
 * more, or a negative error.  A consumer that keeps its positions in its own
 * memory reads it before each commit: when it moved from the value it last
 * saw, it does not commit, waits (bounded) for an even count and fetches its
 * offsets again (shmq_fetch_offset).  One load from shared memory; never
 * blocks.
 */
int64_t shmq_consumer_offsets_resets(shmq_consumer_t *c);

/*
 * Give up the one message at queue_offset of topic/queue_id, whose record
 * a pull reported corrupt (SHMQ_E_CORRUPT, res->corrupt.queue_offset), and
 * move the handle's group past it: the group's offset becomes
 * queue_offset + 1, where its next poll starts.  Nothing else is skipped:
 *   - the unit and its record are checked again first (CRCs included,
 *     whatever shmq_consumer_set_check_crcs() says); a good record is not
 *     skipped (SHMQ_E_ARG);
 *   - the group must stand at it: its committed offset is queue_offset (or
 *     it has none and queue_offset is the queue's min offset); otherwise
 *     SHMQ_E_RANGE, as the messages in between would be lost with it:
 *     commit the ones processed first.  A queue_offset outside [min, max)
 *     is SHMQ_E_RANGE too.
 * A handle without a group checks the record and commits nothing (its
 * caller pulls from queue_offset + 1).
 *
 * line (line_len bytes, may be NULL) receives the line to log: it names the
 * group, the message (topic, queue, queue offset), the CommitLog file and
 * offset and what failed.  The message is lost to the group; that line is
 * where an operator finds it again (shmqctl consume --skip-corrupt prints
 * it).  Returns 0, or a negative error (the above; SHMQ_E_NOT_FOUND when
 * the store is not running or the queue does not exist).
 */
int shmq_consumer_skip_corrupt(shmq_consumer_t *c, const char *topic, int32_t queue_id,
                               int64_t queue_offset, char *line, size_t line_len);

/* ---- retries and dead letters (RocketMQ's rules: docs/architecture.md) ---------------- */

#define SHMQ_RETRY_TOPIC_PREFIX "%RETRY%"
#define SHMQ_DLQ_TOPIC_PREFIX   "%DLQ%"

/*
 * The topics a consumer of group reads for a subscription to topic: topic
 * and the group's retry topic "%RETRY%<group>" (only topic when it is
 * itself a retry or dead-letter topic).  Fills topics[0..n) and returns n
 * (1 or 2), or SHMQ_E_ARG when a name does not fit.
 */
int shmq_group_topics(const char *group, const char *topic, char topics[2][SHMQ_TOPIC_MAX_ANY + 1]);

/*
 * Report a message this handle pulled as failed, so that the store delivers
 * it again later (RocketMQ's consumer send-back).  A copy of m is stored for
 * "%RETRY%<group>" with delay level delay_level: 0 means by the retry count
 * (3 + m->reconsume_times: 10 s, 30 s, 1 m, ... up to 2 h with the default
 * messageDelayLevel), > 0 that level, < 0 no retry at all.  The copy has
 * reconsume_times + 1, RETRY_TOPIC (the first topic) and ORIGIN_MESSAGE_ID
 * (the first message id).  Once m->reconsume_times reached the group's
 * maximum (retryMaxTimes in config/subscriptionGroup.json, else the
 * store's maxReconsumeTimes, 16), or with delay_level < 0, the copy goes to
 * the dead-letter topic "%DLQ%<group>" instead, which no consumer reads
 * unless asked to.  Consumers of the group receive the retries with their
 * subscriptions (shmq_consumer_poll, or shmq_group_topics for a loop of
 * one's own).
 *
 * The handle needs a group.  It opens a producer (one ring of the store) on
 * first use and blocks until the copy is stored, as shmq_send().  Returns 0
 * or a negative error (SHMQ_E_ARG without a group, the errors of
 * shmq_send()).
 */
int shmq_consumer_send_back(shmq_consumer_t *c, const shmq_msg_view_t *m, int delay_level);

/* ---- consumer groups (docs/operations.md "Consumer groups") -------------------------- */

/* RocketMQ's message models (MessageModel). */
enum shmq_message_model {
    SHMQ_CLUSTERING = 0,   /* the group's members share its queues (the default) */
    SHMQ_BROADCASTING = 1, /* every member reads every queue */
};

/*
 * How this handle takes part in its group, set before its first
 * shmq_consumer_poll or shmq_consumer_queues (SHMQ_E_ARG after, or without
 * a group).
 *
 * Clustering: the store divides the queues of the topic among the group's
 * members that consume it, and those of the group's retry topic among all
 * of them, with RocketMQ's AllocateMessageQueueAveragely (queues by id,
 * members by client id "<pid>@<member id>"), and again whenever a member
 * joins or leaves (closes, or its process dies: the store sees it at once)
 * or the topic gains queues.  A queue changes hands only after its owner
 * committed it and gave it up, so the new owner starts where the old one
 * stopped: every message is delivered at least once, and exactly once when
 * members commit what they processed before they go.  An owner that does
 * not give a queue back within 20 s (it does not call poll or queues) loses
 * it anyway, and its later commits of it are refused (SHMQ_E_NOT_OWNER).
 *
 * Broadcasting: every member reads every queue; its positions are its own
 * (the group's committed offsets are not moved by it): a broadcasting
 * member starts at the group's committed offsets, else at each queue's
 * first message, and keeps its positions in its own memory, as RocketMQ's
 * clients keep theirs in a local file.
 *
 * Orderly (shmq_consumer_set_orderly): a clustering member that consumes
 * its queues in order holds them as RocketMQ's queue locks
 * (lockBatchMQ): a queue is never consumed by two members at once, is held
 * until the member gives it up or dies, and is taken from a member that does
 * not give it back within rebalanceLockMaxLiveTime (60 s).  Polls of one
 * queue return its messages in queue order; with a sharding key on the
 * producer side (shmq_send's queue selection) that is per-key order end to
 * end.
 */
int shmq_consumer_set_model(shmq_consumer_t *c, int model);
int shmq_consumer_set_orderly(shmq_consumer_t *c, bool orderly);

/* A queue a member holds. */
typedef struct shmq_queue_ref {
    char topic[SHMQ_TOPIC_MAX_ANY + 1]; /* the topic, or the group's retry topic */
    int32_t queue_id;
    bool retry;
} shmq_queue_ref_t;

/*
 * For a loop of one's own (shmq_pull and shmq_commit_offset): join the
 * handle's group for topic with subscription (as shmq_pull takes it; NULL
 * for every tag: the store records it, and reports a group whose members
 * subscribe otherwise) (once; again after the store restarted), give
 * back the queues the group asks back, and fill out[0..cap) with the
 * queues this member holds now, of topic and of the group's retry topic.
 * Commit what was processed of every queue before calling it: a queue
 * given back is taken over from its committed offset.  Call it between
 * batches, at least every few seconds.  *version (may be NULL) moves
 * whenever the queues held change (a pollable change).
 *
 * Returns the number of queues held (more than cap: only cap were filled),
 * or a negative error (SHMQ_E_ARG without a group or for a bad topic name,
 * SHMQ_E_NOT_FOUND when the store is not running).  One load from shared
 * memory when nothing changed.
 */
int shmq_consumer_queues(shmq_consumer_t *c, const char *topic, const char *subscription,
                         shmq_queue_ref_t *out, int cap, uint64_t *version);

/*
 * Consume as a member of the handle's group without managing queues: the
 * next messages of topic (filtered by subscription, as shmq_pull) or of the
 * group's retry topic (every message), taken round robin over the queues
 * this member holds (see shmq_consumer_set_model: all of them when
 * broadcasting), from the group's committed offsets (a queue without one
 * starts at its first message).  All the messages of one call come from one queue.
 * Calling it again commits the offsets of what the previous call returned:
 * process (or send back) every message before the next call; after a crash
 * the last batch is delivered again.  Waits up to wait_ms for a message
 * when none is there (a message on another queue than the one waited on is
 * noticed within 100 ms).
 *
 * Returns 0 with *res filled (status SHMQ_PULL_FOUND with res->count > 0,
 * or SHMQ_PULL_NO_NEW_MSG), or a negative error (SHMQ_E_ARG without a
 * group or for a bad subscription; the errors of shmq_pull()).  The views
 * stay valid until the next pull or poll on the handle.  SHMQ_E_CORRUPT
 * names the queue and message in res->corrupt; that queue fails the same
 * way whenever a later poll comes to it (the other queues go on) until
 * shmq_consumer_skip_corrupt() moves the group past the message.
 */
int shmq_consumer_poll(shmq_consumer_t *c, const char *topic, const char *subscription,
                       int max_msgs, int wait_ms, shmq_pull_result_t *res);

#ifdef __cplusplus
}
#endif

#endif
