/*
 * Read-only message queries (include/shmq/admin.h): by key and UNIQ_KEY
 * through the IndexFiles, by offset message id and CommitLog offset, and a
 * queue's offset at a time.
 *
 * Everything is mapped PROT_READ and opened O_RDONLY.  The index is read
 * while shmq-indexer writes it: a slot or prev value is bounded by the
 * file's capacity (index_file.c), and a candidate counts only if its
 * record decodes at exactly that offset, belongs to the topic asked for and
 * carries the key itself.  New index files are noticed through the control
 * block's index.files_seq (running store) and, at most every 100 ms, the
 * index directory's modification time.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/compress.h"
#include "format/commitlog.h"
#include "format/consume_queue.h"
#include "shm/ctl.h"
#include "store/index_service.h"
#include "client/query.h"
#include "shmq/errors.h"
#include "format/store_files.h"

#define CHECK_EVERY_MS 100
#define OPEN_TRIES     50 /* a CommitLog segment being created: retry the open */

struct shmq_admin {
    shmq_config_t cfg;
    shmq_ctl_t ctl;
    bool running;
    int64_t crc_tail_from; /* stopped store: the checkpoint's record-CRC marker (INT64_MAX: none) */
    uint32_t files_seq;
    shmq_commitlog_t cl;
    bool cl_open;
    shmq_index_service_t idx;
    bool idx_open;
    struct timespec idx_mtime;
    int64_t next_check_ms;
    shmq_consumer_t *consumer; /* running store: offset by time */
};

/* ---- open, close ----------------------------------------------------------------------- */

static bool master_alive(const shmq_ctl_t *ctl)
{
    pid_t pid = ctl->blk->hdr.creator_pid;
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static void index_dir_mtime(const shmq_admin_t *a, struct timespec *out)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    if (stat(a->idx.dir, &st) == 0) {
        *out = st.st_mtim;
    }
}

int shmq_admin_open_config(const shmq_config_t *cfg, shmq_admin_t **out)
{
    *out = NULL;
    shmq_admin_t *a = calloc(1, sizeof(*a));
    if (!a) {
        return -ENOMEM;
    }
    a->cfg = *cfg;
    /* A running broker's configuration is the truth about its files. */
    if (shmq_ctl_attach(cfg->store_path_root_dir, SHMQ_CTL_RDONLY, &a->ctl) == 0) {
        if (master_alive(&a->ctl)) {
            a->running = true;
            a->cfg = a->ctl.blk->hdr.config;
            snprintf(a->cfg.store_path_root_dir, sizeof(a->cfg.store_path_root_dir), "%s",
                     a->ctl.root);
            /* acquire: files created before the sequence moved are in the directory */
            a->files_seq = atomic_load_explicit(&a->ctl.blk->index.files_seq, memory_order_acquire);
        } else {
            shmq_ctl_detach(&a->ctl);
        }
    }
    a->crc_tail_from = INT64_MAX;
    shmq_checkpoint_t cp;
    if (!a->running && shmq_checkpoint_read(a->cfg.store_path_root_dir, &cp) == 0) {
        /* No marker, or unreadable: every record is checked by RocketMQ's rules. */
        a->crc_tail_from = cp.crc_marker ? cp.crc_tail_from : INT64_MAX;
    }
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(&a->cfg, dir, sizeof(dir));
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        shmq_admin_close(a);
        return shmq_error_set(e == ENOENT ? SHMQ_E_NOT_FOUND : -e, "no CommitLog at %s: %s", dir,
                              strerror(e));
    }
    int rc = SHMQ_E_SEGMENT;
    for (int i = 0; i < OPEN_TRIES && rc == SHMQ_E_SEGMENT; i++) {
        shmq_error_clear();
        rc = shmq_commitlog_open(&a->cl, dir, (size_t)a->cfg.mapped_file_size_commit_log,
                                 SHMQ_MF_READONLY);
        if (rc == SHMQ_E_SEGMENT && a->running) {
            usleep(20 * 1000); /* the writer is creating the last segment */
        } else if (rc == SHMQ_E_SEGMENT) {
            break;
        }
    }
    if (rc < 0) {
        shmq_admin_close(a);
        return rc;
    }
    a->cl_open = true;
    shmq_index_dir(&a->cfg, dir, sizeof(dir));
    rc = shmq_index_open(&a->idx, dir, a->cfg.max_hash_slot_num, a->cfg.max_index_num, true);
    if (rc < 0) {
        shmq_admin_close(a);
        return rc;
    }
    a->idx_open = true;
    index_dir_mtime(a, &a->idx_mtime);
    a->next_check_ms = shmq_mono_ms() + CHECK_EVERY_MS;
    *out = a;
    return 0;
}

int shmq_admin_open(const char *store_root, shmq_admin_t **out)
{
    if (!store_root || !*store_root || !out) {
        return shmq_error_set(SHMQ_E_ARG, "admin open: a store path is required");
    }
    shmq_config_t *cfg = malloc(sizeof(*cfg));
    if (!cfg) {
        return -ENOMEM;
    }
    shmq_config_defaults(cfg);
    snprintf(cfg->store_path_root_dir, sizeof(cfg->store_path_root_dir), "%s", store_root);
    int rc = shmq_admin_open_config(cfg, out);
    free(cfg);
    return rc;
}

void shmq_admin_close(shmq_admin_t *a)
{
    if (!a) {
        return;
    }
    if (a->consumer) {
        shmq_consumer_close(a->consumer);
    }
    if (a->idx_open) {
        shmq_index_close(&a->idx);
    }
    if (a->cl_open) {
        shmq_commitlog_close(&a->cl);
    }
    if (a->running) {
        shmq_ctl_detach(&a->ctl);
    }
    free(a);
}

bool shmq_admin_running(const shmq_admin_t *a)
{
    return a && a->running;
}

int64_t shmq_admin_indexed(shmq_admin_t *a)
{
    return a && a->running ? shmq_ctl_load(&a->ctl.blk->indexed) : -1;
}

/* Before each query: follow new index files, the published log end, a master that left. */
static void admin_sync(shmq_admin_t *a)
{
    bool refresh = false, periodic = false;
    if (a->running) {
        /* acquire: pairs with the indexer's release after creating a file */
        uint32_t seq = atomic_load_explicit(&a->ctl.blk->index.files_seq, memory_order_acquire);
        if (seq != a->files_seq) {
            a->files_seq = seq;
            refresh = true;
        }
    }
    int64_t now = shmq_mono_ms();
    if (now >= a->next_check_ms) {
        a->next_check_ms = now + CHECK_EVERY_MS;
        periodic = true;
        if (a->running && !master_alive(&a->ctl)) {
            shmq_ctl_detach(&a->ctl); /* stopped: read the files as they are */
            a->running = false;
            a->cl.positions_known = false;
        }
        struct timespec m;
        index_dir_mtime(a, &m);
        if (m.tv_sec != a->idx_mtime.tv_sec || m.tv_nsec != a->idx_mtime.tv_nsec) {
            a->idx_mtime = m;
            refresh = true;
        }
    }
    if (refresh) {
        shmq_index_refresh(&a->idx); /* on failure the set stays as it was */
    }
    /* Segments come and go only here, between queries: views of one query stay mapped. */
    bool log_refresh = periodic;
    if (a->running) {
        int64_t wrote = shmq_ctl_load(&a->ctl.blk->wrote);
        log_refresh = log_refresh || wrote > shmq_mfq_end_offset(&a->cl.q);
        shmq_commitlog_set_positions(&a->cl, wrote, wrote);
    }
    if (log_refresh) {
        shmq_mfq_refresh(&a->cl.q); /* on failure the mapped segments stay */
    }
}

/* ---- records ---------------------------------------------------------------------------- */

/*
 * The record at phys as a view; SHMQ_E_NOT_FOUND if no record starts there,
 * SHMQ_E_CORRUPT (detail: what failed) if the one there fails its CRC check
 * (shmq_record_check_crcs): a query never returns a damaged message.
 */
static int view_at(shmq_admin_t *a, int64_t phys, shmq_msg_view_t *v, shmq_record_t *r)
{
    if (phys < 0) {
        return SHMQ_E_NOT_FOUND;
    }
    int64_t from = a->running ? a->ctl.blk->hdr.crc_tail_from : a->crc_tail_from;
    unsigned flags = SHMQ_DECODE_CHECK_PHYS | shmq_decode_verify_flags(phys, from);
    int rc = shmq_commitlog_read(&a->cl, phys, flags, r);
    if (rc == SHMQ_E_BODY_CRC || rc == SHMQ_E_RECORD_CRC) {
        return shmq_error_wrap(SHMQ_E_CORRUPT, "corrupt message at CommitLog offset %lld",
                               (long long)phys);
    }
    if (rc <= 0) {
        return SHMQ_E_NOT_FOUND;
    }
    memset(v, 0, sizeof(*v));
    v->topic = r->topic;
    v->topic_len = r->topic_len;
    v->queue_id = r->queue_id;
    v->queue_offset = r->queue_offset;
    v->phys_offset = r->phys_offset;
    v->size = r->total_size;
    v->flag = r->flag;
    v->sysflag = r->sysflag;
    v->reconsume_times = r->reconsume_times;
    v->born_ts = r->born_ts;
    v->born_host = r->born_host;
    v->store_ts = r->store_ts;
    v->body = r->body;
    v->body_len = r->body_len;
    v->stored_body = r->body;
    v->stored_len = r->body_len;
    int ct = shmq_body_compression(r->sysflag);
    v->compression = ct >= 0 ? ct : (int)(((uint32_t)r->sysflag >> 8) & 7);
    shmq_error_clear();
    v->props = r->props;
    v->props_len = r->props_len;
    shmq_msgid_format(&r->store_host, r->phys_offset, v->msg_id);
    return 0;
}

int shmq_query_by_phys_offset(shmq_admin_t *a, int64_t phys, shmq_msg_view_t *out)
{
    if (!a || !out) {
        return shmq_error_set(SHMQ_E_ARG, "query by offset: handle and result are required");
    }
    admin_sync(a);
    shmq_record_t r;
    int rc = view_at(a, phys, out, &r);
    if (rc == SHMQ_E_NOT_FOUND) {
        return shmq_error_set(rc, "no message starts at CommitLog offset %lld", (long long)phys);
    }
    return rc < 0 ? rc : 0;
}

int shmq_query_by_msg_id(shmq_admin_t *a, const char *msg_id, shmq_msg_view_t *out)
{
    if (!a || !msg_id || !out) {
        return shmq_error_set(SHMQ_E_ARG, "query by message id: arguments are required");
    }
    shmq_host_t host;
    int64_t phys;
    int rc = shmq_msgid_parse(msg_id, &host, &phys);
    if (rc < 0) {
        return rc;
    }
    admin_sync(a);
    shmq_record_t r;
    rc = view_at(a, phys, out, &r);
    if (rc == SHMQ_E_CORRUPT) {
        return shmq_error_wrap(rc, "message id %s", msg_id);
    }
    if (rc < 0) {
        return shmq_error_set(rc, "message id %s: no message starts at CommitLog offset %lld",
                              msg_id, (long long)phys);
    }
    size_t alen = host.is_v6 ? 16 : 4;
    if (r.store_host.is_v6 != host.is_v6 || r.store_host.port != host.port ||
        memcmp(r.store_host.addr, host.addr, alen) != 0) {
        return shmq_error_set(SHMQ_E_NOT_FOUND,
                              "message id %s: the message at offset %lld was stored by another "
                              "host or port (id %s)",
                              msg_id, (long long)phys, out->msg_id);
    }
    return 0;
}

/* ---- key lookups ------------------------------------------------------------------------ */

typedef struct key_query {
    shmq_admin_t *a;
    const char *topic;
    size_t topic_len;
    const char *key;
    size_t key_len;
    bool uniq; /* match UNIQ_KEY, else a KEYS token */
    int64_t begin;
    int64_t end;
    size_t max;
    shmq_query_result_t *res;
} key_query_t;

typedef struct key_match {
    const key_query_t *q;
    bool found;
} key_match_t;

static int match_key(void *arg, bool uniq, const char *key, size_t len)
{
    key_match_t *m = arg;
    if (uniq == m->q->uniq && len == m->q->key_len && memcmp(key, m->q->key, len) == 0) {
        m->found = true;
        return 1;
    }
    return 0;
}

/* One candidate from the index: keep it if its record really is a match. */
static int visit_candidate(void *arg, int64_t phys, int32_t entry)
{
    (void)entry;
    key_query_t *q = arg;
    shmq_query_result_t *res = q->res;
    for (size_t i = 0; i < res->count; i++) {
        if (res->msgs[i].phys_offset == phys) {
            return 0; /* the same message under two of its keys */
        }
    }
    shmq_msg_view_t *v = &res->msgs[res->count];
    shmq_record_t r;
    int rc = view_at(q->a, phys, v, &r);
    if (rc == SHMQ_E_CORRUPT) {
        /* Said, not returned: the caller learns that a candidate was left out. */
        if (res->corrupt++ == 0) {
            res->corrupt_phys = phys;
        }
        return 0;
    }
    if (rc < 0 || r.topic_len != q->topic_len || memcmp(r.topic, q->topic, q->topic_len) != 0 ||
        r.store_ts < q->begin || r.store_ts > q->end) {
        return 0;
    }
    key_match_t m = {.q = q};
    shmq_index_foreach_key(r.props, r.props_len, match_key, &m);
    if (!m.found) {
        return 0; /* another key with the same hash */
    }
    res->count++;
    return res->count >= q->max ? 1 : 0;
}

/* Walk the files newest first; stop once max messages are found or the files end before begin. */
static void search_files(key_query_t *q)
{
    shmq_admin_t *a = q->a;
    int32_t h = shmq_index_topic_key_hash(q->topic, q->topic_len, q->key, q->key_len);
    if (h < 0) {
        return;
    }
    for (size_t i = a->idx.count; i-- > 0;) {
        const shmq_index_file_t *f = a->idx.files[i];
        shmq_index_header_t hdr;
        shmq_index_header_read(f, &hdr);
        bool newest = i + 1 == a->idx.count; /* may be written right now: its header lags */
        if (!newest && hdr.index_count <= 1) {
            continue;
        }
        if (!newest && hdr.end_ts < q->begin) {
            break; /* this file and every older one end before the range */
        }
        if (hdr.begin_ts > q->end && hdr.index_count > 1) {
            continue; /* starts after the range */
        }
        if (shmq_index_file_lookup(f, h, q->begin, q->end, newest ? 0 : hdr.index_count,
                                   visit_candidate, q) != 0) {
            break;
        }
        if (hdr.begin_ts > 0 && hdr.begin_ts < q->begin && hdr.index_count > 1) {
            break;
        }
    }
}

static void result_init(shmq_admin_t *a, shmq_query_result_t *res)
{
    res->count = 0;
    res->corrupt = 0;
    res->corrupt_phys = -1;
    res->index_last_ts = 0;
    res->index_last_phys = 0;
    const shmq_index_file_t *last = shmq_index_last(&a->idx);
    if (last) {
        shmq_index_header_t h;
        shmq_index_header_read(last, &h);
        res->index_last_ts = h.end_ts;
        res->index_last_phys = h.end_phys;
    }
}

/* Start a lookup of key (a KEYS token, or the UNIQ_KEY when uniq) over
 * [begin, end] for at most max messages: the admin's view is brought up to
 * date and res emptied.  The caller sets the topic. */
static key_query_t key_query_start(shmq_admin_t *a, const char *key, bool uniq, int64_t begin,
                                   int64_t end, size_t max, shmq_query_result_t *res)
{
    admin_sync(a);
    result_init(a, res);
    return (key_query_t){.a = a,
                         .key = key,
                         .key_len = strlen(key),
                         .uniq = uniq,
                         .begin = begin,
                         .end = end,
                         .max = max,
                         .res = res};
}

static int check_text(const char *what, const char *s, size_t max)
{
    if (!s || !*s || strnlen(s, max + 1) > max) {
        return shmq_error_set(SHMQ_E_ARG, "%s: 1..%zu bytes required", what, max);
    }
    return 0;
}

int shmq_query_by_key(shmq_admin_t *a, const char *topic, const char *key, int64_t begin_ms,
                      int64_t end_ms, int max, shmq_query_result_t *res)
{
    int rc;
    if (!a || !res) {
        return shmq_error_set(SHMQ_E_ARG, "query by key: handle and result are required");
    }
    if ((rc = check_text("topic", topic, SHMQ_TOPIC_MAX_ANY)) < 0 ||
        (rc = check_text("key", key, SHMQ_PROPS_MAX)) < 0) {
        return rc;
    }
    if (max < 1 || max > SHMQ_QUERY_MAX || begin_ms > end_ms) {
        return shmq_error_set(SHMQ_E_ARG, "query by key: max %d (1..%d), time range %lld..%lld",
                              max, SHMQ_QUERY_MAX, (long long)begin_ms, (long long)end_ms);
    }
    key_query_t q = key_query_start(a, key, false, begin_ms, end_ms, (size_t)max, res);
    q.topic = topic;
    q.topic_len = strlen(topic);
    search_files(&q);
    return 0;
}

int shmq_query_by_uniq_key(shmq_admin_t *a, const char *topic, const char *uniq_key,
                           shmq_query_result_t *res)
{
    int rc;
    if (!a || !res) {
        return shmq_error_set(SHMQ_E_ARG, "query by UNIQ_KEY: handle and result are required");
    }
    if ((rc = check_text("UNIQ_KEY", uniq_key, SHMQ_PROPS_MAX)) < 0 ||
        (topic && (rc = check_text("topic", topic, SHMQ_TOPIC_MAX_ANY)) < 0)) {
        return rc;
    }
    key_query_t q = key_query_start(a, uniq_key, true, 0, INT64_MAX, SHMQ_QUERY_MAX, res);
    if (topic) {
        q.topic = topic;
        q.topic_len = strlen(topic);
        search_files(&q);
        return 0;
    }
    /* Every topic that has messages has a ConsumeQueue directory. */
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/consumequeue", a->cfg.store_path_root_dir);
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : shmq_error_set(-errno, "cannot read %s", dir);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL && res->count < SHMQ_QUERY_MAX) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len > SHMQ_TOPIC_MAX_ANY) {
            continue;
        }
        q.topic = de->d_name;
        q.topic_len = len;
        search_files(&q);
    }
    closedir(d);
    return 0;
}

/* ---- offset by time ----------------------------------------------------------------------- */

int shmq_query_offset_by_time(shmq_admin_t *a, const char *topic, int32_t queue_id, int64_t ts_ms,
                              int64_t *offset)
{
    int rc;
    if (!a || !offset || queue_id < 0) {
        return shmq_error_set(SHMQ_E_ARG, "offset by time: handle, queue id >= 0 and result");
    }
    if ((rc = check_text("topic", topic, SHMQ_TOPIC_MAX_ANY)) < 0) {
        return rc;
    }
    admin_sync(a);
    if (a->running) {
        if (!a->consumer) {
            rc = shmq_consumer_open(a->cfg.store_path_root_dir, NULL, &a->consumer);
            if (rc < 0) {
                a->consumer = NULL;
                return rc;
            }
        }
        return shmq_offset_by_time(a->consumer, topic, queue_id, ts_ms, offset);
    }
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s/consumequeue/%s/%d", a->cfg.store_path_root_dir, topic,
             (int)queue_id);
    struct stat st;
    if (stat(dir, &st) != 0) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "no queue %s/%d in %s", topic, (int)queue_id,
                              a->cfg.store_path_root_dir);
    }
    shmq_cq_t *cq = malloc(sizeof(*cq));
    if (!cq) {
        return -ENOMEM;
    }
    rc = shmq_cq_open(cq, a->cfg.store_path_root_dir, topic, queue_id,
                      shmq_cq_file_size((size_t)a->cfg.mapped_file_size_consume_queue),
                      SHMQ_MF_READONLY);
    if (rc == 0) {
        shmq_cq_correct_min(cq, shmq_commitlog_min_offset(&a->cl));
        *offset = shmq_cq_offset_by_time(cq, &a->cl, ts_ms, SHMQ_BOUNDARY_LOWER);
        shmq_cq_close(cq);
    }
    free(cq);
    return rc;
}
