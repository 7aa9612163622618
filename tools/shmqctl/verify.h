/*
 * shmqctl verify's shared state: cmd_verify.c checks the CommitLog and the
 * ConsumeQueues, verify_meta.c the other files of the store (config/ JSON files,
 * the checkpoint, the IndexFiles).  Problems (damage: exit 1) and notes
 * (states that may be intended: exit 0) are printed on stdout.
 */
#ifndef SHMQCTL_VERIFY_H
#define SHMQCTL_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/ctl.h"
#include "shmqctl.h"

/* One (topic, queue id), from the consumequeue directory or from records. */
typedef struct vq {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    uint32_t topic_len;
    int32_t qid;
    shmq_cq_t *cq; /* NULL: no directory, or it failed to open */
    bool open_failed;
    int64_t records;      /* normal records of this queue in the CommitLog */
    int64_t max_rec_qoff; /* largest queue offset among them */
    int64_t first_rec_phys;
    int64_t missing; /* records whose unit is missing */
    int64_t first_missing_qoff;
    int64_t first_missing_phys;
    int64_t live_max; /* running store: its max offset in the snapshot (-1: not in it) */
} vq_t;

typedef struct verify {
    shmqctl_args_t *a;
    shmq_commitlog_t *cl;
    vq_t **tab; /* open addressing on (topic, qid) */
    size_t cap;
    size_t n;
    int64_t problems;
    int64_t notes;
    int64_t records, bytes, blanks, units;
    int64_t cl_min, data_end;
    shmqctl_progress_t prog;
    /* The checkpoint (verify_meta.c), read before the CommitLog pass. */
    bool cp_read; /* fields below are set */
    shmq_checkpoint_t cp;
    bool cp_inside;         /* confirmPhyOffset falls inside a record */
    int64_t cp_inside_phys; /* that record */
    int64_t cp_ts;          /* store time of the last record ending at or below it, -1 none */
    int64_t max_ts;         /* newest store time in the log, -1 none */
    int64_t files_index;    /* IndexFiles checked */
    /* A running store: the positions published when verify started (its snapshot).  Only
     * what lies below them is checked; what was written since is left alone. */
    bool live;
    bool unclean; /* stopped, but not closed cleanly (abort exists): a torn append may end it */
    int64_t undispatched, first_undispatched; /* unclean: records its dispatcher had not reached */
    shmq_ctl_t ctl;                           /* attached read-only while live */
    int64_t live_wrote, live_flushed, live_dispatched, live_cq_flushed;
} verify_t;

void verify_problem(verify_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void verify_note(verify_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Find (or, with create, add) a queue; NULL if absent or out of memory. */
vq_t *verify_queue_get(verify_t *v, const char *topic, size_t len, int32_t qid, bool create);

/* A running store: the queue's max offset now (its control block entry). */
bool verify_live_queue_max(verify_t *v, const char *topic, int32_t qid, int64_t *max);

/* verify_meta.c: read the checkpoint (before the CommitLog pass and the snapshot). */
void verify_checkpoint_read(verify_t *v);
/* verify_meta.c: account one record (or blank, store_ts -1) of the CommitLog pass. */
void verify_checkpoint_record(verify_t *v, int64_t phys, int64_t size, int64_t store_ts);
/* verify_meta.c: after both passes: config/ JSON files, the checkpoint, the IndexFiles. */
void verify_meta(verify_t *v);

/* verify_timer.c: the timer wheel, log and checkpoint (a stopped store). */
void verify_timer(verify_t *v);

#endif
