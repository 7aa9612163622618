/*
 * config/topicDeletes.json: the topics `shmqctl topic delete` removed, and
 * where in the CommitLog each deletion cut the topic.
 *
 *   {"topicDeletes": {"T": 123456, "U": -1}}
 *
 * A topic's records below its cut belong to the deleted topic: recovery
 * never indexes them again (a topic re-created after the deletion starts at
 * queue offset 0 and must not be handed the old messages).  Two values are
 * not positions:
 *
 *   SHMQ_TOPIC_CUT_DELETING  a deletion in progress (interrupted, if found
 *                            at start): the next start, or the next
 *                            `shmqctl topic delete` of the topic, finishes it;
 *                            the topic cannot be created meanwhile;
 *   SHMQ_TOPIC_CUT_AT_START  deleted while the store was stopped: every
 *                            record of the topic in the log is old; the next
 *                            start replaces it with the log's end.
 *
 * A missing file is an empty table.  Saved through shmq_file_write_atomic.
 */
#ifndef SHMQ_TOPIC_DELETES_H
#define SHMQ_TOPIC_DELETES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/names.h"

#define SHMQ_TOPIC_CUT_DELETING (-1)
#define SHMQ_TOPIC_CUT_AT_START (-2)

typedef struct shmq_topic_cut {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int64_t cut; /* CommitLog offset, or one of the two values above */
} shmq_topic_cut_t;

typedef struct shmq_topic_cuts {
    shmq_topic_cut_t *cuts;
    size_t count;
    size_t cap;
} shmq_topic_cuts_t;

/* Load <root>/config/topicDeletes.json (a missing file: empty).  SHMQ_E_JSON when damaged. */
int shmq_topic_cuts_load(const char *root, shmq_topic_cuts_t *t);
/* Write the table (an empty table still writes the file). */
int shmq_topic_cuts_save(const char *root, const shmq_topic_cuts_t *t);
/* Insert or replace topic's cut.  0 or -ENOMEM. */
int shmq_topic_cuts_set(shmq_topic_cuts_t *t, const char *topic, int64_t cut);
/* topic's entry, or NULL. */
shmq_topic_cut_t *shmq_topic_cuts_get(const shmq_topic_cuts_t *t, const char *topic, size_t len);
void shmq_topic_cuts_free(shmq_topic_cuts_t *t);

/*
 * True when a record of topic at phys_offset belongs to a deleted topic:
 * below its cut (every record, while the cut is not a position yet).
 */
bool shmq_topic_cuts_hides(const shmq_topic_cuts_t *t, const char *topic, size_t len,
                           int64_t phys_offset);

#endif
