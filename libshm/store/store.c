/*
 * The store engine of one process: opens the CommitLog, the ConsumeQueues,
 * the checkpoint and the topic table of a store root; appends messages
 * (assigning queue offsets) and dispatches records to their ConsumeQueues;
 * closes cleanly (flush, checkpoint, remove `abort`).
 *
 * Recovery lives in recovery.c; this file holds the queue table and the
 * write and dispatch paths.  Not thread-safe: one thread drives a store.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "format/message.h"
#include "format/record_scan.h"
#include "format/names.h"
#include "store/topic_delete.h"
#include "shmq/errors.h"

#define SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"

static bool is_schedule_topic(const char *topic, size_t len);

/* ---- queue table ----------------------------------------------------------- */

/* A hash of topic and queue id, eight topic bytes at a time (one lookup per dispatched record). */
static uint64_t queue_hash(const char *topic, size_t len, int32_t queue_id)
{
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h = (len ^ ((uint64_t)(uint32_t)queue_id << 32)) * k;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, topic + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, topic + i, len - i);
        h = (h ^ w) * k;
    }
    return h ^ (h >> 32);
}

static bool queue_matches(const shmq_queue_t *q, const char *topic, size_t len, int32_t queue_id)
{
    /* Inline word compares: once per record the dispatcher takes (recent_queues). */
    return q->cq.queue_id == queue_id && q->topic_len == len &&
           shmq_bytes_equal(q->cq.topic, topic, len);
}

static int queue_table_grow(shmq_store_t *st)
{
    size_t ncap = st->queue_cap ? st->queue_cap * 2 : 64;
    shmq_queue_t **nq = calloc(ncap, sizeof(*nq));
    if (!nq) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < st->queue_cap; i++) {
        shmq_queue_t *q = st->queues[i];
        if (!q) {
            continue;
        }
        uint64_t h = queue_hash(q->cq.topic, strlen(q->cq.topic), q->cq.queue_id);
        size_t j = h & (ncap - 1);
        while (nq[j]) {
            j = (j + 1) & (ncap - 1);
        }
        nq[j] = q;
    }
    free(st->queues);
    st->queues = nq;
    st->queue_cap = ncap;
    return 0;
}

static shmq_queue_t *queue_lookup(const shmq_store_t *st, const char *topic, size_t len,
                                  int32_t queue_id)
{
    if (!st->queue_cap) {
        return NULL;
    }
    size_t j = queue_hash(topic, len, queue_id) & (st->queue_cap - 1);
    while (st->queues[j]) {
        if (queue_matches(st->queues[j], topic, len, queue_id)) {
            return st->queues[j];
        }
        j = (j + 1) & (st->queue_cap - 1);
    }
    return NULL;
}

static int queue_insert(shmq_store_t *st, shmq_queue_t *q)
{
    if ((st->queue_count + 1) * 10 >= st->queue_cap * 7) {
        int rc = queue_table_grow(st);
        if (rc < 0) {
            return rc;
        }
    }
    size_t j = queue_hash(q->cq.topic, strlen(q->cq.topic), q->cq.queue_id) & (st->queue_cap - 1);
    while (st->queues[j]) {
        j = (j + 1) & (st->queue_cap - 1);
    }
    st->queues[j] = q;
    st->queue_count++;
    return 0;
}

int shmq_store_queue(shmq_store_t *st, const char *topic, size_t topic_len, int32_t queue_id,
                     bool create, shmq_queue_t **out)
{
    shmq_queue_t *q = queue_lookup(st, topic, topic_len, queue_id);
    if (q) {
        *out = q;
        return 0;
    }
    if (!create) {
        return SHMQ_E_NOT_FOUND;
    }
    if (topic_len > SHMQ_TOPIC_MAX_ANY || topic_len == 0 || queue_id < 0) {
        return shmq_error_set(SHMQ_E_ARG, "bad queue %.*s/%d", (int)topic_len, topic, queue_id);
    }
    char name[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    q = calloc(1, sizeof(*q));
    if (!q) {
        return -ENOMEM;
    }
    unsigned mf = (st->flags & SHMQ_STORE_READONLY) ? SHMQ_MF_READONLY : 0;
    int rc = shmq_cq_open(&q->cq, st->root, name, queue_id, st->cq_file_size, mf);
    if (rc < 0) {
        free(q);
        return rc;
    }
    q->next_offset = shmq_cq_max_offset(&q->cq);
    q->topic_len = topic_len;
    q->used = true;
    q->scheduler =
        is_schedule_topic(name, topic_len) || (topic_len == sizeof(SHMQ_TIMER_TOPIC) - 1 &&
                                               memcmp(name, SHMQ_TIMER_TOPIC, topic_len) == 0);
    rc = queue_insert(st, q);
    if (rc < 0) {
        shmq_cq_close(&q->cq);
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int shmq_store_foreach_queue(shmq_store_t *st, int (*fn)(shmq_queue_t *q, void *arg), void *arg)
{
    for (size_t i = 0; i < st->queue_cap; i++) {
        if (st->queues[i]) {
            int rc = fn(st->queues[i], arg);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

int shmq_store_drop_topic(shmq_store_t *st, const char *topic, size_t topic_len)
{
    size_t cap = st->queue_cap;
    shmq_queue_t **old = st->queues;
    shmq_queue_t **nq = cap ? calloc(cap, sizeof(*nq)) : NULL;
    if (cap && nq == NULL) {
        return -ENOMEM;
    }
    /* Re-inserted into a fresh table: open addressing keeps no holes. */
    st->queues = nq;
    st->queue_count = 0;
    for (size_t i = 0; i < cap; i++) {
        shmq_queue_t *q = old[i];
        if (q == NULL) {
            continue;
        }
        if (q->topic_len == topic_len && memcmp(q->cq.topic, topic, topic_len) == 0) {
            shmq_cq_close(&q->cq);
            free(q);
            continue;
        }
        (void)queue_insert(st, q); /* no growth: fewer entries than before */
    }
    free(old);
    memset(st->recent_queues, 0, sizeof(st->recent_queues)); /* may name a freed queue */
    return 0;
}

static void queue_table_free(shmq_store_t *st)
{
    for (size_t i = 0; i < st->queue_cap; i++) {
        if (st->queues[i]) {
            shmq_cq_close(&st->queues[i]->cq);
            free(st->queues[i]);
        }
    }
    free(st->queues);
    st->queues = NULL;
    st->queue_cap = st->queue_count = 0;
    memset(st->recent_queues, 0, sizeof(st->recent_queues));
}

/* Remove the segment files of a queue directory (derived data, rebuilt by recovery). */
static int remove_queue_files(const char *qdir)
{
    DIR *d = opendir(qdir);
    if (!d) {
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", qdir, e->d_name);
        if (unlink(p) < 0 && errno != ENOENT) {
            rc = -errno;
        }
    }
    closedir(d);
    return rc;
}

/*
 * Open every queue found under <root>/consumequeue/<topic>/<queueId>.  In a
 * writable store a queue whose files cannot be loaded (wrong size, gap) is
 * emptied and marked for rebuilding from the CommitLog; read-only opens fail.
 */
static int load_queues(shmq_store_t *st)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/consumequeue", st->root);
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : -errno;
    }
    int rc = 0;
    struct dirent *te;
    while (rc == 0 && (te = readdir(d)) != NULL) {
        if (te->d_name[0] == '.' || strlen(te->d_name) > SHMQ_TOPIC_MAX_ANY) {
            continue;
        }
        char tdir[PATH_MAX];
        snprintf(tdir, sizeof(tdir), "%s/%s", dir, te->d_name);
        DIR *qd = opendir(tdir);
        if (!qd) {
            continue;
        }
        struct dirent *qe;
        while (rc == 0 && (qe = readdir(qd)) != NULL) {
            char *end;
            errno = 0;
            long qid = strtol(qe->d_name, &end, 10);
            if (qe->d_name[0] < '0' || qe->d_name[0] > '9' || *end || errno || qid > 65535) {
                continue;
            }
            shmq_queue_t *q;
            size_t tlen = strlen(te->d_name);
            rc = shmq_store_queue(st, te->d_name, tlen, (int32_t)qid, true, &q);
            if (rc < 0 && !(st->flags & (SHMQ_STORE_READONLY | SHMQ_STORE_ATTACH)) &&
                (rc == SHMQ_E_SEGMENT || rc == SHMQ_E_CORRUPT)) {
                char qdir[PATH_MAX];
                snprintf(qdir, sizeof(qdir), "%s/%s", tdir, qe->d_name);
                rc = remove_queue_files(qdir);
                if (rc == 0) {
                    rc = shmq_store_queue(st, te->d_name, tlen, (int32_t)qid, true, &q);
                }
                if (rc == 0) {
                    q->rebuild = true;
                }
            }
            if (rc == 0 && q->cq.q.count == 0) {
                /* Queue directories are created with their first unit: an empty one lost its files.
                 */
                q->rebuild = true;
            }
            if (rc < 0) {
                shmq_error_wrap(rc, "consume queue %s/%ld", te->d_name, qid);
            }
        }
        closedir(qd);
    }
    closedir(d);
    return rc;
}

/* ---- open / close ---------------------------------------------------------- */

/* The store host stamped on records: the same rule the writer applies (brokerIP1, listenPort). */
static int host_from_config(const shmq_config_t *cfg, shmq_host_t *h)
{
    return shmq_config_store_host(cfg, h);
}

int shmq_store_cuts_resolve(shmq_store_t *st)
{
    bool changed = false;
    for (size_t i = 0; i < st->cuts.count; i++) {
        if (st->cuts.cuts[i].cut < 0) {
            st->cuts.cuts[i].cut = st->cl.wrote_pos;
            changed = true;
        }
    }
    int rc = changed ? shmq_topic_cuts_save(st->root, &st->cuts) : 0;
    return rc < 0 ? shmq_error_wrap(rc, "config/topicDeletes.json") : 0;
}

int shmq_store_open(shmq_store_t *st, const shmq_config_t *cfg, unsigned flags,
                    shmq_recovery_report_t *report)
{
    memset(st, 0, sizeof(*st));
    st->cfg = *cfg;
    st->flags = flags;
    st->lock_fd = -1;
    st->cq_file_size = shmq_cq_file_size((size_t)cfg->mapped_file_size_consume_queue);
    if (strlen(cfg->store_path_root_dir) >= sizeof(st->root)) {
        return shmq_error_set(-ENAMETOOLONG, "store path too long");
    }
    strcpy(st->root, cfg->store_path_root_dir);
    bool ro = flags & SHMQ_STORE_READONLY;
    bool attach = flags & SHMQ_STORE_ATTACH;
    int rc;

    if (ro || attach) {
        struct stat sb;
        if (stat(st->root, &sb) < 0) {
            return shmq_error_set(-errno, "store %s: %s", st->root, strerror(errno));
        }
    } else {
        /* A new root and its missing parents are SHMQ_DIR_MODE (0750), as shmqd makes them. */
        rc = shmq_file_mkdirs(st->root);
        if (rc < 0) {
            return shmq_error_wrap(rc, "cannot create store directory %s", st->root);
        }
        rc = shmq_store_lock(st->root, &st->lock_fd);
        if (rc < 0) {
            return rc;
        }
    }

    char cldir[PATH_MAX];
    shmq_config_commitlog_dir(cfg, cldir, sizeof(cldir));
    /* A slave's log is not prepared here: its first segment is where its master's bytes
     * start (the ha-receiver's), not at 0. */
    unsigned mf = (ro || attach)                   ? SHMQ_MF_READONLY
                  : cfg->broker_role == SHMQ_SLAVE ? 0u
                                                   : (SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE);
    if (!ro && !attach) {
        mf |= shmq_commitlog_flush_flags(cfg->flush_disk_type == SHMQ_SYNC_FLUSH);
        if (cfg->mlock_enable) {
            mf |= SHMQ_MF_MLOCK;
        }
    }
    rc = shmq_commitlog_open(&st->cl, cldir, (size_t)cfg->mapped_file_size_commit_log, mf);
    if (rc < 0) {
        goto fail;
    }
    rc = host_from_config(cfg, &st->cl.store_host);
    if (rc < 0) {
        goto fail;
    }
    rc = shmq_checkpoint_read(st->root, &st->cp);
    if (rc < 0) {
        goto fail;
    }
    if (!ro && !attach) {
        /* Deletions found interrupted are finished before the topics and queues are read. */
        rc = shmq_topic_cuts_load(st->root, &st->cuts);
        if (rc == 0) {
            rc = shmq_topic_deletes_finish(st->root, &st->cuts);
        }
        if (rc < 0) {
            goto fail;
        }
    }
    rc = shmq_topics_load(st->root, &st->topics);
    if (rc < 0) {
        goto fail;
    }
    rc = load_queues(st);
    if (rc < 0) {
        goto fail;
    }
    if (!ro && !attach && !(flags & SHMQ_STORE_NO_RECOVER)) {
        rc = shmq_store_recover(st, report);
        if (rc < 0) {
            goto fail;
        }
    }
    return 0;
fail:
    shmq_store_abandon(st);
    return rc;
}

void shmq_store_abandon(shmq_store_t *st)
{
    queue_table_free(st);
    shmq_commitlog_close(&st->cl);
    shmq_topic_table_free(&st->topics);
    shmq_topic_cuts_free(&st->cuts);
    if (st->lock_fd >= 0) {
        shmq_store_unlock(st->lock_fd);
        st->lock_fd = -1;
    }
}

int shmq_store_detach(shmq_store_t *st)
{
    int fd = st->lock_fd;
    st->lock_fd = -1; /* abandon() must not unlock: the caller owns the fd now */
    shmq_store_abandon(st);
    return fd;
}

static int flush_queue(shmq_queue_t *q, void *arg)
{
    int *first_err = arg;
    int rc = shmq_cq_flush(&q->cq, 0);
    if (rc < 0 && *first_err == 0) {
        *first_err = shmq_error_set(rc, "flush of consume queue %s/%d failed: %s", q->cq.topic,
                                    q->cq.queue_id, shmq_strerror(rc));
    }
    return 0;
}

int shmq_store_flush(shmq_store_t *st)
{
    /* An attached store does not own the CommitLog nor the checkpoint. */
    if (st->flags & (SHMQ_STORE_READONLY | SHMQ_STORE_ATTACH)) {
        return 0;
    }
    int rc = shmq_commitlog_flush(&st->cl, 0);
    if (rc < 0) {
        return shmq_error_set(rc, "CommitLog flush failed: %s", shmq_strerror(rc));
    }
    int qerr = 0;
    shmq_store_foreach_queue(st, flush_queue, &qerr);
    if (qerr < 0) {
        return qerr;
    }
    /* The checkpoint only names data that is now durable (PITFALLS 5). */
    int64_t durable =
        st->cl.flushed_pos < st->dispatched_pos ? st->cl.flushed_pos : st->dispatched_pos;
    st->cp.physic_msg_ts = st->last_store_ts;
    st->cp.logics_msg_ts = st->last_store_ts;
    st->cp.confirm_phys = durable;
    return shmq_checkpoint_write(st->root, &st->cp);
}

int shmq_store_close(shmq_store_t *st)
{
    int rc = 0;
    if (!(st->flags & SHMQ_STORE_READONLY) && st->lock_fd >= 0) {
        if (st->dispatched_pos < st->cl.wrote_pos) {
            int64_t n = shmq_store_dispatch(st, st->cl.wrote_pos);
            if (n < 0) {
                rc = (int)n;
            }
        }
        if (rc == 0) {
            rc = shmq_store_flush(st);
        }
        if (rc == 0 && st->topics_dirty) {
            rc = shmq_topics_save(st->root, &st->topics);
        }
        /* A clean stop is recorded only when everything above succeeded. */
        if (rc == 0) {
            rc = shmq_abort_remove(st->root);
        }
    }
    shmq_store_abandon(st);
    return rc;
}

/* ---- validation ------------------------------------------------------------ */

/* ---- write path ------------------------------------------------------------- */

static bool tx_gets_unit(int32_t sysflag)
{
    int32_t tx = sysflag & SHMQ_SYSFLAG_TX_MASK;
    return tx == SHMQ_SYSFLAG_TX_NOT || tx == SHMQ_SYSFLAG_TX_COMMIT;
}

static bool is_schedule_topic(const char *topic, size_t len)
{
    return len == sizeof(SCHEDULE_TOPIC) - 1 && memcmp(topic, SCHEDULE_TOPIC, len) == 0;
}

/* tagsCode from the record's scanned properties (§1.5). */
static int64_t tags_code_of(const shmq_config_t *cfg, bool schedule_topic,
                            const shmq_record_props_t *pr, int64_t store_ts)
{
    if (schedule_topic && pr->delay && pr->delay_len < 12) {
        char buf[12];
        memcpy(buf, pr->delay, pr->delay_len);
        buf[pr->delay_len] = '\0';
        long level = strtol(buf, NULL, 10);
        if (level > 0) {
            if (level > cfg->delay_level_count) {
                level = cfg->delay_level_count;
            }
            if (level >= 1) {
                return store_ts + cfg->delay_level_ms[level - 1];
            }
            return store_ts + 1000;
        }
    }
    return pr->tags ? shmq_tags_code(pr->tags, pr->tags_len) : 0;
}

/* tagsCode of a record: the TAGS hash, or the delivery time for delayed messages (§1.5). */
int64_t shmq_store_tags_code(const shmq_config_t *cfg, const char *topic, size_t topic_len,
                             const char *props, size_t props_len, int64_t store_ts)
{
    bool schedule = is_schedule_topic(topic, topic_len);
    shmq_record_props_t pr;
    shmq_record_props_scan_tags(props, props_len, schedule, &pr);
    return tags_code_of(cfg, schedule, &pr, store_ts);
}

static int ensure_topic(shmq_store_t *st, const char *topic, size_t len, int32_t queue_id)
{
    char name[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(name, topic, len);
    name[len] = '\0';
    const shmq_topic_config_t *tc = shmq_topic_table_get(&st->topics, name);
    if (tc) {
        if (queue_id >= tc->write_queue_nums && queue_id >= tc->read_queue_nums) {
            return shmq_error_set(SHMQ_E_RANGE, "topic %s has %d queues; queue id %d is outside",
                                  name, tc->write_queue_nums, queue_id);
        }
        if (!(tc->perm & SHMQ_PERM_WRITE)) {
            return shmq_error_set(SHMQ_E_ARG, "topic %s is not writable (perm %d)", name, tc->perm);
        }
        return 0;
    }
    if (!st->cfg.auto_create_topic_enable) {
        return shmq_error_set(SHMQ_E_NOT_FOUND,
                              "topic %s does not exist and autoCreateTopicEnable is false", name);
    }
    shmq_topic_config_t n;
    memset(&n, 0, sizeof(n));
    strcpy(n.name, name);
    int32_t nq = st->cfg.default_topic_queue_nums;
    if (queue_id + 1 > nq) {
        nq = queue_id + 1;
    }
    n.read_queue_nums = n.write_queue_nums = nq;
    n.perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
    int rc = shmq_topic_table_put(&st->topics, &n);
    if (rc == 0) {
        st->topics_dirty = true;
    }
    return rc;
}

int shmq_store_put(shmq_store_t *st, const shmq_msg_in_t *m, shmq_append_result_t *res)
{
    if (st->flags & SHMQ_STORE_READONLY) {
        return shmq_error_set(-EROFS, "store opened read-only");
    }
    int rc = shmq_topic_validate(m->topic, m->topic_len, st->cfg.max_topic_length);
    if (rc < 0) {
        return rc;
    }
    if (m->body_len > (size_t)st->cfg.max_message_size) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "body of %zu bytes exceeds maxMessageSize %d",
                              m->body_len, st->cfg.max_message_size);
    }
    if (m->queue_id < 0 || m->queue_id > 65535) {
        return shmq_error_set(SHMQ_E_ARG, "queue id %d outside 0..65535", m->queue_id);
    }
    rc = ensure_topic(st, m->topic, m->topic_len, m->queue_id);
    if (rc < 0) {
        return rc;
    }
    bool unit = tx_gets_unit(m->sysflag);
    shmq_queue_t *q = NULL;
    int64_t qoff = 0;
    if (unit) {
        rc = shmq_store_queue(st, m->topic, m->topic_len, m->queue_id, true, &q);
        if (rc < 0) {
            return rc;
        }
        qoff = q->next_offset;
    }
    bool in_step = st->dispatched_pos == st->cl.wrote_pos;
    rc = shmq_commitlog_append(&st->cl, m, qoff, 0, res);
    if (rc < 0) {
        return rc;
    }
    st->last_store_ts = res->store_ts;
    if (unit) {
        q->next_offset = qoff + 1;
        if (in_step) {
            int64_t tags = shmq_store_tags_code(&st->cfg, m->topic, m->topic_len, m->props,
                                                m->props_len, res->store_ts);
            rc = shmq_cq_append(&q->cq, qoff, res->phys_offset, res->size, tags);
            if (rc < 0) {
                /* The record is in the CommitLog; dispatch will retry the unit. */
                return rc;
            }
        }
    }
    if (in_step) {
        st->dispatched_pos = st->cl.wrote_pos;
    }
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

int shmq_store_dispatch_queue(shmq_store_t *st, const shmq_record_head_t *r, shmq_queue_t **qout)
{
    shmq_queue_t *q;
    int rc = shmq_store_queue(st, r->topic, r->topic_len, r->queue_id, true, &q);
    if (rc < 0) {
        return rc;
    }
    st->recent_queues[(uint32_t)r->queue_id % SHMQ_STORE_RECENT_QUEUES] = q;
    *qout = q;
    return 0;
}

int64_t shmq_store_dispatch_sched_tags(const shmq_store_t *st, const shmq_record_head_t *r)
{
    /* DELAY counts only in the schedule topic: the scan looks for it there only. */
    bool schedule = is_schedule_topic(r->topic, r->topic_len);
    shmq_record_props_t pr;
    shmq_record_props_scan_tags(r->props, r->props_len, schedule, &pr);
    return tags_code_of(&st->cfg, schedule, &pr, r->store_ts);
}

int shmq_store_dispatch_failed(const shmq_queue_t *q, const shmq_record_head_t *r, int rc)
{
    return shmq_error_wrap(rc, "dispatch of record at %lld to %s/%d (queue offset %lld)",
                           (long long)r->phys_offset, q->cq.topic, q->cq.queue_id,
                           (long long)r->queue_offset);
}

int shmq_store_dispatch_head(shmq_store_t *st, const shmq_record_head_t *r, shmq_queue_t **qout)
{
    shmq_queue_t *q;
    int rc = shmq_store_dispatch_head_inline(st, r, &q);
    if (qout) {
        *qout = q;
    }
    return rc;
}

int shmq_store_dispatch_record(shmq_store_t *st, const shmq_record_t *r)
{
    if (shmq_topic_cuts_hides(&st->cuts, r->topic, r->topic_len, r->phys_offset)) {
        return 0; /* a record of a deleted topic: never indexed again */
    }
    shmq_record_head_t h;
    shmq_record_head_from(r, &h);
    return shmq_store_dispatch_head(st, &h, NULL);
}

int64_t shmq_store_dispatch(shmq_store_t *st, int64_t upto)
{
    int64_t pos = st->dispatched_pos;
    int64_t n = 0;
    while (pos < upto) {
        shmq_record_t r;
        int64_t at = pos;
        int rc = shmq_commitlog_next(&st->cl, &pos, upto, 0, &r);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            return shmq_error_set(rc, "dispatch stopped at CommitLog offset %lld: %s",
                                  (long long)at, shmq_strerror(rc));
        }
        rc = shmq_store_dispatch_record(st, &r);
        if (rc < 0) {
            return rc;
        }
        n += rc;
        st->dispatched_pos = pos;
    }
    if (pos > st->dispatched_pos) {
        st->dispatched_pos = pos;
    }
    return n;
}
