/*
 * The set of IndexFiles of a store (<root>/index), RocketMQ's IndexService:
 * files sorted by name (their creation time), the newest one written, a new
 * one created when it is full; the keys of a record (its UNIQ_KEY, then each
 * token of KEYS, as "topic#key"); where a restarted indexer resumes without
 * losing or repeating an entry; dropping files not known durable after an
 * unclean stop.
 *
 * Writers: the indexer process (daemons/indexer.c), the master for the
 * abnormal-start drop before any worker runs, an offline build (tests,
 * benchmark).  The cleaner deletes expired files itself (libshm/store/clean.c).  Readers
 * (libshm/client/query.c) open the set read-only and refresh it when files come or go.
 *
 * Exactly once across kills: the files are the indexer's only durable
 * state.  At start (shmq_index_resume) the newest file is repaired (an entry
 * written but not counted is undone, header fields recomputed), entries
 * pointing at or past the CommitLog's end are removed, and the newest
 * message that has entries is checked against its record: if every one of
 * its keys has its entry, indexing resumes after it; otherwise its entries
 * are removed and it is indexed again.  So a message never has an entry
 * twice and none is lost.
 */
#ifndef SHMQ_INDEX_SERVICE_H
#define SHMQ_INDEX_SERVICE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/commitlog.h"
#include "format/config.h"
#include "format/index_file.h"
#include "format/message.h"
#include "format/record_scan.h"

typedef struct shmq_index_service {
    char dir[PATH_MAX];
    int32_t slot_num;
    int32_t index_num;
    bool readonly;
    shmq_index_file_t **files; /* sorted by name, oldest first */
    size_t count;
    size_t cap;
    int32_t skipped;               /* files ignored: another size than configured, or unreadable */
    int64_t last_phys;             /* writer: phys offset of the newest entry, -1 when none */
    shmq_key_hash_memo_t key_memo; /* writer: the hash of its last key, by prefix */
} shmq_index_service_t;

/* <root>/index of a configuration. */
void shmq_index_dir(const shmq_config_t *cfg, char *out, size_t len);

/*
 * Load the files of dir (created unless read-only; missing and read-only:
 * empty set).  Names other than 17 digits are ignored; a ".tmp" left by an
 * interrupted creation is removed (writable).  A file of another size than
 * slot_num/index_num say is skipped and counted in skipped (RocketMQ would
 * refuse the store; shmq keeps serving and starts a new file).
 */
int shmq_index_open(shmq_index_service_t *svc, const char *dir, int32_t slot_num, int32_t index_num,
                    bool readonly);
void shmq_index_close(shmq_index_service_t *svc);

/*
 * Reader: bring the set in line with the directory: map files that
 * appeared, drop those removed.  Returns 1 if the set changed, 0 if not, or
 * an error.  Pointers to dropped files become invalid.
 */
int shmq_index_refresh(shmq_index_service_t *svc);

/* The newest file, or NULL. */
static inline shmq_index_file_t *shmq_index_last(const shmq_index_service_t *svc)
{
    return svc->count ? svc->files[svc->count - 1] : NULL;
}

/* Writer: remove (unlink) files from position i of the set on; their messages are indexed again. */
int shmq_index_drop_from(shmq_index_service_t *svc, size_t i);

/* abs(JavaHash(topic + "#" + key)) (§8.3); -1 only when out of memory. */
int32_t shmq_index_topic_key_hash(const char *topic, size_t topic_len, const char *key,
                                  size_t key_len);

/*
 * Call fn for each key a record is indexed under, in RocketMQ's order: the
 * UNIQ_KEY value (if any), then each non-empty space-separated token of
 * KEYS.  Stops when fn returns non-zero and returns that value.
 */
int shmq_index_foreach_key(const char *props, size_t props_len,
                           int (*fn)(void *arg, bool uniq, const char *key, size_t len), void *arg);

/* True if the record gets index entries (ROLLBACK transaction records do not). */
bool shmq_index_record_indexed(const shmq_record_t *r);

/*
 * Writer: add the entries of record r (creating a new file when the newest
 * is full or missing).  A record at or below the newest entry's offset is
 * already indexed and skipped (returns 0).  Returns the entries added.
 */
int shmq_index_put_record(shmq_index_service_t *svc, const shmq_record_t *r);

/* shmq_index_put_record() on a record read with the light decode (record_scan.h). */
int shmq_index_put_head(shmq_index_service_t *svc, const shmq_record_head_t *r);

/* The entries of a writable service's record r whose properties pr holds (scanned by
 * shmq_record_props_scan_keys): shmq_index_put_head() past its checks and its scan. */
int shmq_index_put_scanned(shmq_index_service_t *svc, const shmq_record_head_t *r,
                           const shmq_record_props_t *pr);

/*
 * shmq_index_put_head(), inline: the indexer's loop runs it on every record.
 * The usual record (only a UNIQ_KEY with an ASCII value, room in the newest
 * file: shmq_uniq_key_only_hash_memo()) is indexed here; any other is
 * scanned and goes to shmq_index_put_scanned().
 */
static inline __attribute__((always_inline)) int
shmq_index_put_head_inline(shmq_index_service_t *svc, const shmq_record_head_t *r)
{
    if (svc->readonly) {
        return shmq_index_put_head(svc, r); /* worded there */
    }
    if ((r->sysflag & SHMQ_SYSFLAG_TX_MASK) == SHMQ_SYSFLAG_TX_ROLLBACK ||
        r->phys_offset <= svc->last_phys) {
        return 0;
    }
    shmq_index_file_t *f = shmq_index_last(svc);
    if (f != NULL && !shmq_index_file_full(f)) {
        int32_t h = shmq_uniq_key_only_hash_memo(&svc->key_memo, r->topic, r->topic_len, r->props,
                                                 r->props_len);
        if (h >= 0) {
            int rc = shmq_index_file_put_inline(f, h, r->phys_offset, r->store_ts);
            if (rc < 0) {
                return rc;
            }
            svc->last_phys = r->phys_offset;
            return 1;
        }
    }
    shmq_record_props_t pr;
    shmq_record_props_scan_keys(r->props, r->props_len, &pr);
    return shmq_index_put_scanned(svc, r, &pr);
}

/*
 * Writer: index the records of cl from *pos up to limit, or up to the
 * zeros after the last record (an offline build: tests, the benchmark);
 * *pos ends after the last record indexed.  Returns
 * the records read or an error (with *pos at the record that failed).
 */
int64_t shmq_index_build(shmq_index_service_t *svc, const shmq_commitlog_t *cl, int64_t *pos,
                         int64_t limit);

/* What shmq_index_resume found and did. */
typedef struct shmq_index_resume_report {
    int64_t pos;             /* CommitLog offset to index from */
    int64_t last_phys;       /* newest message with entries, -1 none */
    int32_t torn_slots;      /* half-done puts undone */
    int32_t files_rebuilt;   /* inconsistent files removed (rebuilt from the CommitLog) */
    int32_t entries_removed; /* entries of a partly indexed message or past the log's end */
    bool last_complete;      /* the newest message had all its entries */
    char detail[256];        /* why a file was rebuilt */
} shmq_index_resume_report_t;

/*
 * Writer, at start: repair the newest file, remove entries for records at
 * or past log_end (cut by recovery), check the newest indexed message
 * against its record in cl (read below log_end) and complete or remove its
 * entries (see the top of this file).  rep->pos is where to index from,
 * never below log_min.  A file that cannot be repaired is removed with every
 * later one, and its messages are indexed again.
 */
int shmq_index_resume(shmq_index_service_t *svc, const shmq_commitlog_t *cl, int64_t log_end,
                      int64_t log_min, shmq_index_resume_report_t *rep);

/*
 * Writer: msync every file changed since the last flush.  *end_ts (may be
 * NULL) receives the newest file's endTimestamp at the flush (0 when
 * empty).  A failure is returned and never retried by this call's caller.
 */
int shmq_index_flush(shmq_index_service_t *svc, int64_t *end_ts);

/* After an abnormal stop: what shmq_index_recover_abnormal did. */
typedef struct shmq_index_abnormal_report {
    int64_t index_ts;     /* checkpoint indexMsgTimestamp found */
    int64_t new_index_ts; /* written back */
    int32_t dropped;      /* files removed */
    int32_t kept;
} shmq_index_abnormal_report_t;

/*
 * Master, at an abnormal start, before any worker runs: remove every index
 * file whose endTimestamp > the checkpoint's indexMsgTimestamp (their pages
 * may not all have reached the disk: the indexer rebuilds them from the
 * CommitLog), then lower the checkpoint's indexMsgTimestamp below the
 * newest kept file's endTimestamp (that file will be written again).
 */
int shmq_index_recover_abnormal(const shmq_config_t *cfg, shmq_index_abnormal_report_t *rep);

#endif
