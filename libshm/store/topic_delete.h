/*
 * Deleting a topic's files: its ConsumeQueues, its consumer offsets, its
 * entry in topics.json, and the cut that keeps its old records out of a
 * topic of the same name created later (format/topic_deletes.h).
 *
 * The running store deletes through the control block (shmqctl and the
 * workers, docs/operations.md "Deleting a topic"); a stopped store, and
 * shmqd's start for a deletion it finds interrupted, with these calls.
 * Every step can be repeated: a deletion killed at any point is finished by
 * running it again.
 */
#ifndef SHMQ_TOPIC_DELETE_H
#define SHMQ_TOPIC_DELETE_H

#include "format/topic_deletes.h"

/*
 * Remove <root>/consumequeue/<topic>: renamed at once to
 * consumequeue/.deleting (after removing what an earlier, interrupted call
 * left there), so that no reader ever finds half of it, then removed.
 * Mappings of its files stay valid (the files are unlinked, never cut).
 * A missing directory is fine.
 */
int shmq_topic_delete_queues(const char *root, const char *topic);

/*
 * Stopped store (the caller holds the store lock): remove topic's entry
 * from topics.json, its ConsumeQueues and every "topic@group" entry of
 * consumerOffset.json.  Missing parts are fine.
 */
int shmq_topic_delete_files(const char *root, const char *topic);

/*
 * Stopped store (store lock held): finish every deletion found in
 * progress (SHMQ_TOPIC_CUT_DELETING -> SHMQ_TOPIC_CUT_AT_START) and save
 * the table if anything changed.  *t is the table, loaded.
 */
int shmq_topic_deletes_finish(const char *root, shmq_topic_cuts_t *t);

#endif
