/*
 * How the broker JSON metadata under <root>/config/ is checked when it is
 * loaded (json_meta.c; the tables and the plain loaders are declared in
 * store_files.h).  The files stay RocketMQ's (ROCKETMQ-FACTS §20); what is
 * added is what a loader does with a damaged one, the same for the broker
 * at start, the scheduler, consumers and `shmqctl verify`:
 *
 *   - a file with content that is not JSON, has a duplicate key, or lacks
 *     its table ("topicConfigTable", "offsetTable", "subscriptionGroupTable")
 *     is damaged: <name>.bak is loaded instead, with a warning; with no
 *     usable .bak the load fails naming both files (SHMQ_E_JSON);
 *   - an entry of a usable file that is out of range, of the wrong type,
 *     or has a field name one bit away from a known one is replaced by the
 *     same entry of <name>.bak, else dropped, with a warning naming it;
 *   - consumer and delay offsets in .bak that the file lacks are restored;
 *     a consumer offset above its queue's max offset + 1 takes the .bak
 *     value when that one fits, else it is dropped (the group starts that
 *     queue where it is told to); a delay offset above the max offset takes
 *     the .bak value when that one fits, else the max offset;
 *   - a consumer offset file a running store wrote is never refused (a
 *     negative, non-integer or too large offset is one entry's damage);
 *   - a topic whose consume queues exist but that topics.json lacks is
 *     restored from .bak, else with as many queues as it has directories;
 *     a topic whose key and "topicName" differ keeps the name the store
 *     knows (consume queues or .bak);
 *   - a loader never writes: the repaired table is saved by the next save.
 *
 * docs/recovery.md ("Metadata files") lists every case.
 */
#ifndef SHMQ_JSON_META_H
#define SHMQ_JSON_META_H

#include <stdint.h>

#include "format/store_files.h"

/* What a finding is: damage found and repaired (or a load refused), or a
 * state that may be intended but is worth a look. */
enum shmq_meta_level {
    SHMQ_META_WARN = 1,
    SHMQ_META_NOTE = 2,
};

/*
 * Where loaders report findings: one line each, naming the file and the
 * entry (group, topic, queue).  Set once by a program before it loads
 * (not synchronised with loads running in other threads); NULL restores
 * the default.  The default sends them to the daemons' log (shmq_log, see
 * daemons/worker.h) when the program links it, and nowhere otherwise: the
 * library itself never prints.
 */
typedef void (*shmq_meta_warn_fn)(void *arg, enum shmq_meta_level level, const char *msg);
void shmq_meta_set_warn(shmq_meta_warn_fn fn, void *arg);

/* Report a finding made outside the loaders (the control block's offset load). */
void shmq_meta_warn(enum shmq_meta_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The max offset (number of units, RocketMQ's maxOffset) of a queue: 0 and
 * *max, SHMQ_E_NOT_FOUND when the topic has queues but not this one (its
 * max is 0), or another negative code when it cannot be told, e.g. the
 * store has no queue of the topic at all (no check is made).
 */
typedef int (*shmq_meta_queue_max_fn)(void *arg, const char *topic, int32_t queue_id, int64_t *max);

/* A shmq_meta_queue_max_fn reading <root>/consumequeue (arg: the root), read-only. */
int shmq_meta_disk_queue_max(void *root, const char *topic, int32_t queue_id, int64_t *max);

/* Counts of what a load reported. */
typedef struct shmq_meta_report {
    int warnings;
    int notes;
} shmq_meta_report_t;

/* Load flags. */
#define SHMQ_META_QUIET 1u /* report nothing and skip the checks against the store */

/*
 * The loaders of store_files.h with their checks spelled out.  qmax (may
 * be NULL: no max-offset check) gives queue maxima; rep (may be NULL)
 * receives the counts.  The plain loaders are these with the store's files
 * as the view (shmq_meta_disk_queue_max, <root>/consumequeue) and no
 * report.  Returns 0, SHMQ_E_JSON when the file and its .bak are unusable,
 * or an I/O error; *t is empty on failure.
 */
int shmq_consumer_offsets_load_ex(const char *root, shmq_offset_table_t *t,
                                  shmq_meta_queue_max_fn qmax, void *qarg, shmq_meta_report_t *rep);
int shmq_delay_offsets_load_ex(const char *root, shmq_offset_table_t *t,
                               shmq_meta_queue_max_fn qmax, void *qarg, shmq_meta_report_t *rep);
int shmq_topics_load_ex(const char *root, shmq_topic_table_t *t, unsigned flags,
                        shmq_meta_report_t *rep);
int shmq_groups_load_ex(const char *root, shmq_group_table_t *t, shmq_meta_report_t *rep);

/* True if a and b have the same length and differ in exactly one bit. */
bool shmq_meta_one_bit_apart(const char *a, const char *b);

#endif
