/*
 * shmq admin API: look messages up in a store by key, by UNIQ_KEY, by
 * message id, by CommitLog offset, and find a queue's offset at a time.
 *
 * A handle opens the store read-only: the CommitLog and the IndexFiles are
 * mapped PROT_READ, nothing in the store is written, so a process without
 * write access to the store (a consumer, a tool) can use it.  If the store
 * is running (its control block can be attached read-only and its master
 * is alive), the handle uses the running broker's configuration, reads
 * records only below the published end of the log, and notices new index
 * files at once; otherwise it reads the files as they are, with the
 * configuration it was given.
 *
 * Key lookups use RocketMQ's IndexFiles (built by shmq-indexer): the index
 * matches 32-bit hashes of "topic#key" only, so every candidate's record is
 * read and returned only if its topic is the one asked for and its KEYS
 * (or, for shmq_query_by_uniq_key, its UNIQ_KEY) hold the key exactly: two
 * keys with the same hash are never confused.  A message is found once it
 * is indexed (status position `indexed`).  Every record is checked as a
 * consumer checks it (its CRCs, shmq_record_check_crcs): a damaged message
 * is never returned; a key lookup counts the candidates it left out for
 * that in res->corrupt, a single lookup returns SHMQ_E_CORRUPT.
 *
 * Results are views into the mapped CommitLog (shmq_msg_view_t, see
 * consumer.h; shmq_msg_property reads their properties), valid until the
 * next call on the same handle or shmq_admin_close().  A body stored
 * compressed is given as stored (body == stored_body; compression says how
 * it is compressed): a query reads records, it does not decompress them.
 *
 * Thread safety: one thread per handle.  Nothing blocks except file I/O.
 */
#ifndef SHMQ_ADMIN_H
#define SHMQ_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "shmq/consumer.h"
#include "shmq/errors.h"
#include "shmq/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_admin shmq_admin_t;

/* Most messages one key query returns. */
#define SHMQ_QUERY_MAX 1024

typedef struct shmq_query_result {
    size_t count;            /* messages in msgs, newest first */
    int64_t index_last_ts;   /* endTimestamp of the newest index file (0: no index) */
    int64_t index_last_phys; /* its endPhyOffset */
    size_t corrupt;          /* candidates left out: their record fails its CRC check */
    int64_t corrupt_phys;    /* the CommitLog offset of the first of them (-1: none) */
    shmq_msg_view_t msgs[SHMQ_QUERY_MAX];
} shmq_query_result_t;

/*
 * Open the store at store_root for queries (RocketMQ's default sizes unless
 * the store is running: then its own configuration).  SHMQ_E_NOT_FOUND if
 * there is no CommitLog there.
 */
int shmq_admin_open(const char *store_root, shmq_admin_t **out);
void shmq_admin_close(shmq_admin_t *a);

/* CommitLog offset below which every message is indexed (running store), or -1 (not running). */
int64_t shmq_admin_indexed(shmq_admin_t *a);

/*
 * Messages of topic whose KEYS hold key (one space-separated token), stored
 * at a time in [begin_ms, end_ms] (inclusive; 0 and INT64_MAX for all), at
 * most max (1..SHMQ_QUERY_MAX), newest first, each message once.  Returns 0
 * with res->count possibly 0, or SHMQ_E_ARG (empty topic or key, max out of
 * range, begin > end).
 */
int shmq_query_by_key(shmq_admin_t *a, const char *topic, const char *key, int64_t begin_ms,
                      int64_t end_ms, int max, shmq_query_result_t *res);

/*
 * Messages whose UNIQ_KEY is uniq_key (what a producer returns as the
 * message id), in topic, or in every topic of the store when topic is NULL
 * (the topics found under <root>/consumequeue).  Normally one message;
 * more if a producer sent the same one again.  0 with res->count possibly
 * 0, or SHMQ_E_ARG.
 */
int shmq_query_by_uniq_key(shmq_admin_t *a, const char *topic, const char *uniq_key,
                           shmq_query_result_t *res);

/*
 * The message an offset message id names (32 or 56 hex characters: store
 * host, port, CommitLog offset; ROCKETMQ-FACTS §4.1).  SHMQ_E_MSGID when
 * malformed, SHMQ_E_NOT_FOUND when no record starts at its offset or the
 * record there was stored by another host/port than the id says,
 * SHMQ_E_CORRUPT when the record there fails its CRC check.
 */
int shmq_query_by_msg_id(shmq_admin_t *a, const char *msg_id, shmq_msg_view_t *out);

/* The message whose record starts at CommitLog offset phys; SHMQ_E_NOT_FOUND, or SHMQ_E_CORRUPT. */
int shmq_query_by_phys_offset(shmq_admin_t *a, int64_t phys, shmq_msg_view_t *out);

/*
 * Queue offset of the first message of topic/queue_id stored at or after
 * ts_ms (RocketMQ 5 rules, boundary LOWER, clamped to [min, max]: max when
 * every message is older).  SHMQ_E_NOT_FOUND if the queue does not exist.
 */
int shmq_query_offset_by_time(shmq_admin_t *a, const char *topic, int32_t queue_id, int64_t ts_ms,
                              int64_t *offset);

#ifdef __cplusplus
}
#endif

#endif
