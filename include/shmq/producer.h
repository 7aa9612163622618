/*
 * shmq producer API: send messages to a running store on this host.
 *
 * A producer attaches to the store by its path, gets a shared-memory ring of
 * its own, and writes each message into it; the store's writer process
 * validates the entry, appends it to the CommitLog and completes the
 * request.  Nothing is copied through a socket.
 *
 * When a send is acknowledged (SHMQ_SEND_OK):
 *   ASYNC_FLUSH  the message is in the CommitLog (page cache): it survives
 *                the death of any shmq process, not a host crash before the
 *                next flush;
 *   SYNC_FLUSH   the message is on disk (fdatasync/msync done);
 *   SYNC_MASTER  (brokerRole) also: a slave in sync holds it (after the
 *                flush under SYNC_FLUSH).  With no slave in sync the
 *                status is SHMQ_SEND_SLAVE_NOT_AVAILABLE at once; when no
 *                slave confirms it within slaveTimeout (never past the
 *                send timeout) SHMQ_SEND_FLUSH_SLAVE_TIMEOUT.  The message
 *                is stored on the master in both cases, as in RocketMQ.
 *
 * Timeouts: the producer's send_timeout_ms bounds a synchronous send
 * (shmq_send, shmq_send_batch) as a whole: waiting for a completion slot
 * and ring space, for the store's answer and, under SYNC_FLUSH, for the
 * flush.  The flush wait lasts at most the store's syncFlushTimeout and
 * never past the send timeout; when it ends first the message is stored
 * and the status is SHMQ_SEND_FLUSH_DISK_TIMEOUT.  An asynchronous send's
 * callback waits for the flush up to syncFlushTimeout after the store's
 * answer.  A fenced store (a failed flush) ends every flush wait at once
 * with SHMQ_E_FENCED.
 *
 * Thread safety: a producer handle is used by one thread at a time (use one
 * handle per thread).  Handles are not inherited across fork().
 */
#ifndef SHMQ_PRODUCER_H
#define SHMQ_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "shmq/errors.h"
#include "shmq/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_producer shmq_producer_t;

/* A user property (name and value must not contain bytes 0x01 or 0x02). */
typedef struct shmq_property {
    const char *name;
    const char *value;
} shmq_property_t;

/* queue_id of a message whose queue the producer chooses (the only negative id allowed). */
#define SHMQ_QUEUE_ANY (-1)

/* A message to send.  Only topic and body are required. */
typedef struct shmq_message {
    const char *topic;
    const void *body;
    size_t body_len;
    const char *tags; /* NULL: none */
    const char *keys; /* space-separated keys, NULL: none */
    const shmq_property_t *properties;
    size_t property_count;
    int32_t flag;             /* opaque user flag */
    int32_t delay_level;      /* 0: none; 1..N per messageDelayLevel */
    int32_t queue_id;         /* 0..65535 below the topic's write queues, or SHMQ_QUEUE_ANY:
                                 chosen by the producer (round-robin from a random queue,
                                 or sharding key); any
                                 other negative id is refused (SHMQ_E_RANGE) */
    const char *sharding_key; /* same key -> same queue (ordered messages); NULL: round-robin */
    /*
     * Delivery at a given time (RocketMQ 5 timer messages; not with
     * delay_level, not in a batch): the message is held by the store's
     * scheduler and stored in its topic when due, with the precision of
     * timerPrecisionMs (delivered at most that much after the time asked),
     * at most timerMaxDelaySec (3 days) ahead (SHMQ_E_RANGE beyond).  A time
     * already past means now.  Set at most one of them.
     */
    int64_t deliver_at_ms;    /* > 0: ms since the epoch (property TIMER_DELIVER_MS) */
    int64_t deliver_after_ms; /* > 0: ms from now (property TIMER_DELAY_MS) */
    /*
     * Compression of this message's body (not in a batch: batches are never
     * compressed): 0 the producer's threshold (shmq_producer_set_compress_over),
     * > 0 compress a body of at least this many bytes, < 0 never.
     */
    int32_t compress_over;
} shmq_message_t;

/* Initialise m with no tags, no keys, queue_id SHMQ_QUEUE_ANY, no delay. */
void shmq_message_init(shmq_message_t *m, const char *topic, const void *body, size_t len);

/* RocketMQ's send statuses. */
enum shmq_send_status {
    SHMQ_SEND_OK = 0,
    SHMQ_SEND_FLUSH_DISK_TIMEOUT = 1,  /* stored, but not flushed within syncFlushTimeout */
    SHMQ_SEND_FLUSH_SLAVE_TIMEOUT = 2, /* SYNC_MASTER: stored, no slave confirmed it in time */
    SHMQ_SEND_SLAVE_NOT_AVAILABLE = 3, /* SYNC_MASTER: stored, no slave in sync to wait for */
};

typedef struct shmq_send_result {
    int status;                       /* enum shmq_send_status */
    char msg_id[SHMQ_MSGID_MAX];      /* offset message id */
    char uniq_key[SHMQ_UNIQ_KEY_MAX]; /* client unique id (UNIQ_KEY) */
    int32_t queue_id;
    int64_t queue_offset;
    int64_t phys_offset;
    int64_t store_ts;
} shmq_send_result_t;

typedef struct shmq_producer_options {
    int send_timeout_ms;   /* bounds a send as a whole (see the top of this file); default 3000 */
    int attach_timeout_ms; /* re-attaching after a master restart; default send_timeout_ms */
    const char *group;     /* producer group (PGROUP property); NULL: none */
} shmq_producer_options_t;

/*
 * Attach to the store at store_root (its storePathRootDir) and claim a ring.
 * opts may be NULL for defaults.  Errors: SHMQ_E_NOT_FOUND (store not
 * running), -EBUSY (all rings taken), SHMQ_E_VERSION.
 */
int shmq_producer_open(const char *store_root, const shmq_producer_options_t *opts,
                       shmq_producer_t **out);

/*
 * Compress the body of a single message (shmq_send, _async, _oneway; never
 * a batch) of at least bytes as RocketMQ's producers do
 * (compressMsgBodyOverHowmuch): one LZ4 frame, sysflag COMPRESSED | LZ4
 * (0x101); the record stores the frame and its BODYCRC covers it.  A body
 * the frame would not make smaller is sent as it is.  Default
 * SHMQ_COMPRESS_OVER_DEFAULT (4096); 0 never compresses.  A message's own
 * compress_over takes precedence.  Returns 0, or SHMQ_E_ARG (NULL producer,
 * negative bytes).
 */
int shmq_producer_set_compress_over(shmq_producer_t *p, int64_t bytes);

/* Release the ring (waits for outstanding requests up to the send timeout) and detach. */
void shmq_producer_close(shmq_producer_t *p);

/*
 * Send and wait for the result, at most the send timeout (see the top of
 * this file).  Returns 0 with *res filled (res->status may be
 * SHMQ_SEND_FLUSH_DISK_TIMEOUT: the message is stored, not known durable),
 * or a negative error:
 *   nothing stored: SHMQ_E_TOPIC, SHMQ_E_TOO_BIG, SHMQ_E_PROPS, SHMQ_E_ARG
 *     (message rules); SHMQ_E_NOT_FOUND (store not running, or failed);
 *     -ESHUTDOWN (the store stopped, or failed, before taking the message);
 *     SHMQ_E_DISK_FULL ("disk full": the disk is above
 *     diskSpaceWarningLevelRatio, sends are refused until the usage falls);
 *     -ENOSPC (no space to allocate the next CommitLog segment);
 *     SHMQ_E_FENCED (refused: the store is fenced after a failed flush);
 *     SHMQ_E_NOT_MASTER (enableControllerMode: the store holds no lease
 *     from the controller group as its set's master, before the group
 *     named it or once the lease lapsed; docs/controller.md "Fencing");
 *   outcome unknown: -ETIMEDOUT (no answer in time, or the store went away
 *     before it could answer);
 *   stored, not made durable: SHMQ_E_FENCED under SYNC_FLUSH when the store
 *     was fenced before the flush covered the message (*res names its
 *     record; whether it survives the recovery is unknown).
 * A store that stops or fails while the message waits for its answer still
 * answers from what was stored: SEND_OK if the writer appended it before it
 * exited, -ESHUTDOWN if it never took it.  A message stored and answered
 * that waits for the flush (SYNC_FLUSH) or a slave (SYNC_MASTER) when the
 * store goes away gets that wait's timeout status (SHMQ_SEND_FLUSH_DISK_TIMEOUT,
 * SHMQ_SEND_FLUSH_SLAVE_TIMEOUT: stored, not known durable or replicated)
 * within about 100 ms (the send's look for the store), not at
 * syncFlushTimeout or slaveTimeout.  res->uniq_key is set whenever
 * the message got its key, also with an error (to look it up after an
 * unknown outcome).  A full ring makes it wait for space (back pressure)
 * within the timeout.  With an error, shmq_error_detail() says what was
 * wrong with this send (the store's text when the store refused it).
 */
int shmq_send(shmq_producer_t *p, const shmq_message_t *m, shmq_send_result_t *res);

/* Completion callback of an asynchronous send: err as shmq_send() returns (with an error,
 * shmq_error_detail() holds that send's text while the callback runs). */
typedef void (*shmq_send_cb)(void *arg, int err, const shmq_send_result_t *res);

/*
 * Start a send and return once the message is in the ring; cb runs from a
 * later shmq_producer_poll()/shmq_producer_flush() call of the same thread.
 * Up to SHMQ_RING_SLOTS (256) requests in flight; more waits (back pressure)
 * within the send timeout.  Under SYNC_FLUSH the callback comes once the
 * flush covers the message (SEND_OK), syncFlushTimeout after the store's
 * answer (SHMQ_SEND_FLUSH_DISK_TIMEOUT), or as soon as the store is fenced
 * (err SHMQ_E_FENCED: stored, not made durable; res names the record).
 * Under SYNC_MASTER it comes likewise once a slave holds the message, or
 * with SHMQ_SEND_FLUSH_SLAVE_TIMEOUT.  When the store goes away (or the
 * producer is closed) while the callback still waits for the flush or a
 * slave, it comes with that timeout status (stored, not known durable or
 * replicated), never with SHMQ_SEND_OK; a request the store had not
 * answered yet gets -ETIMEDOUT.  shmq_producer_poll() looks for the store at
 * least every 100 ms while such callbacks wait, so they come then, not at
 * syncFlushTimeout or slaveTimeout.
 */
int shmq_send_async(shmq_producer_t *p, const shmq_message_t *m, shmq_send_cb cb, void *arg);

/* Run the callbacks of completed requests; wait up to timeout_ms for one. Returns how many ran. */
int shmq_producer_poll(shmq_producer_t *p, int timeout_ms);

/* Wait until every request in flight completed (their callbacks ran), up to timeout_ms. */
int shmq_producer_flush(shmq_producer_t *p, int timeout_ms);

/* Send without waiting for any result (fire and forget). */
int shmq_send_oneway(shmq_producer_t *p, const shmq_message_t *m);

/*
 * Send n messages of one topic as a batch: stored together, in one queue,
 * with consecutive queue offsets, all or none.  results has n entries.
 * Returns and times out as shmq_send() (one answer, one flush wait for the
 * whole batch); each results[i].uniq_key is set from the start.
 */
int shmq_send_batch(shmq_producer_t *p, const shmq_message_t *msgs, size_t n,
                    shmq_send_result_t *results);

/*
 * shmq_send_batch() asynchronously: checks the batch and returns once it is
 * in the ring (each results[i].uniq_key set); cb runs from a later
 * shmq_producer_poll()/shmq_producer_flush() call of the same thread, as
 * for shmq_send_async() (one completion slot, one flush wait for the whole
 * batch).  results (n entries) belongs to the caller and must stay valid
 * until cb runs: with err 0 every entry is filled before it (res is
 * &results[0]'s copy); with an error only the uniq keys are set.  Returns
 * 0, or an error of shmq_send_batch() before anything entered the ring (no
 * callback comes then); waits for a free completion slot and ring space
 * within the send timeout, as shmq_send_async().
 */
int shmq_send_batch_async(shmq_producer_t *p, const shmq_message_t *msgs, size_t n,
                          shmq_send_result_t *results, shmq_send_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif
