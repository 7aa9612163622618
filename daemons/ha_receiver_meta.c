/*
 * shmq-ha-receiver's copy of its master's metadata (RocketMQ's
 * SlaveSynchronize): every HA_META_SYNC_MS, and at once when the link
 * connects, one connection to the master's haListenPort asks for the
 * metadata (request code 1, format/ha_frame.h), takes the answer, and is
 * closed.  Runs on the receiver's loop; nothing here blocks but the small
 * file writes of an apply.
 *
 * Every byte of an answer is untrusted.  The named files go to
 * <root>/ha-master/config/ and are loaded there by the loaders every
 * process uses (json_meta.h), without a .bak to fall back on: a file that
 * does not load, or that any entry of is damaged, refuses the whole answer
 * with a log line naming it (and the first damaged entry), and nothing of
 * the store changes; the same refusal again is logged once a minute.  A good
 * answer is applied (docs/operations.md "Replication"):
 *
 *   topics.json             the master's topics are put in the topic table
 *                           (queue counts, perm, order) where they differ,
 *                           under the topic lock, and topics.json saved;
 *                           topics only this slave has stay;
 *   subscriptionGroup.json  replaces this store's when it differs
 *                           (consumers reload it by its stamp);
 *   delayOffset.json        replaces this store's when it differs (the
 *                           scheduler of a promoted slave goes on there);
 *   consumerOffset.json     each offset moves this store's forward, never
 *                           back (shmq_ctl_offset_advance): a group
 *                           consuming here keeps its progress, one
 *                           consuming on the master follows it; the
 *                           flusher saves the file.
 *
 * Files are replaced with shmq_file_write_atomic.  Killed mid-apply: each
 * file is whole, old or new; the next fetch completes the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "format/ha_frame.h"
#include "format/json_meta.h"
#include "format/store_files.h"
#include "ha_receiver.h"
#include "net/net.h"
#include "shmq/errors.h"

#define META_IDLE_MS       10000 /* a master silent so long in a fetch: the fetch is dropped */
#define META_TOPIC_LOCK_MS 2000
#define META_STAGE         "ha-master" /* under the store root: <root>/ha-master/config/ */
#define META_REPEAT_MS     60000       /* the same refusal again: logged at most so often */

enum { F_TOPICS, F_GROUPS, F_DELAY, F_OFFSETS, F_COUNT };
static const char *const file_names[F_COUNT] = {"topics.json", "subscriptionGroup.json",
                                                "delayOffset.json", "consumerOffset.json"};

struct ha_meta_sync {
    uv_loop_t *loop;
    shmq_ctl_t *ctl;
    char addr[64];
    char name[SHMQ_CTL_ADDR_MAX];
    uv_timer_t timer;
    const shmq_net_tls_t *tls; /* the link's: requests go the link's way (NULL: plain) */
    shmq_net_connector_t *k;   /* the fetch under way, NULL between fetches */
    uint8_t head[SHMQ_HA_ANSWER_HEAD_SIZE];
    size_t head_len;
    bool have_head;
    int32_t status;
    uint8_t *body;
    size_t body_len, body_got;
    bool warned; /* the last fetch failed: said once until one succeeds */
    /* Refusals: one repeated is logged at most every META_REPEAT_MS, with a count. */
    char refused[1200];
    int64_t refused_ms;
    int refused_again;
};

/* The files of one answer. */
typedef struct meta_files {
    shmq_ha_file_t f[F_COUNT];
    bool have[F_COUNT];
} meta_files_t;

/* ---- checking an answer ------------------------------------------------------------------ */

static int split_body(const uint8_t *body, size_t len, meta_files_t *mf)
{
    memset(mf, 0, sizeof(*mf));
    size_t pos = 0;
    shmq_ha_file_t f;
    int rc;
    while ((rc = shmq_ha_file_next(body, len, &pos, &f)) == 1) {
        int i = 0;
        while (i < F_COUNT && strcmp(f.name, file_names[i]) != 0) {
            i++;
        }
        if (i == F_COUNT) {
            continue; /* a file this version does not know: a newer master's */
        }
        if (mf->have[i]) {
            return shmq_error_set(SHMQ_E_CORRUPT, "%s twice in one answer", f.name);
        }
        mf->f[i] = f;
        mf->have[i] = true;
    }
    return rc;
}

static int stage_file(const char *dir, const char *name, const shmq_ha_file_t *f, bool have)
{
    char path[PATH_MAX], bak[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(bak, sizeof(bak), "%s/%s.bak", dir, name);
    (void)unlink(bak); /* no fallback: what the master sent loads or is refused */
    (void)unlink(path);
    if (!have) {
        return 0;
    }
    int fd = shmq_store_file_open(path, O_WRONLY | O_CREAT | O_EXCL, SHMQ_FILE_MODE);
    if (fd < 0) {
        return shmq_error_set(fd, "%s: %s", path, shmq_strerror(fd));
    }
    size_t done = 0;
    while (done < f->len) {
        ssize_t n = write(fd, f->data + done, f->len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? -errno : -EIO;
            close(fd);
            return shmq_error_set(err, "%s: %s", path, shmq_strerror(err));
        }
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

/* The loaded tables of a checked answer. */
typedef struct meta_tables {
    shmq_topic_table_t topics;
    shmq_group_table_t groups;
    shmq_offset_table_t delay;
    shmq_offset_table_t offsets;
} meta_tables_t;

static void tables_free(meta_tables_t *t)
{
    shmq_topic_table_free(&t->topics);
    shmq_group_table_free(&t->groups);
    shmq_offset_table_free(&t->delay);
    shmq_offset_table_free(&t->offsets);
}

/* The loaders' findings during a check: the first damage, for the refusal's line. */
typedef struct findings {
    char first[400];
    int warnings;
} findings_t;

static void on_finding(void *arg, enum shmq_meta_level level, const char *msg)
{
    findings_t *f = arg;
    if (level == SHMQ_META_WARN && f->warnings++ == 0) {
        snprintf(f->first, sizeof(f->first), "%s", msg);
    }
}

/* A file that is no JSON document at all: said plainly (the loaders would talk of its .bak). */
static int check_json(const char *name, const shmq_ha_file_t *f)
{
    char *text = shmq_json_quote_int_keys((const char *)f->data, f->len);
    if (text == NULL) {
        return shmq_error_set(-ENOMEM, "%s: no memory to parse it", name);
    }
    json_error_t err;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (doc == NULL) {
        return shmq_error_set(SHMQ_E_JSON, "%s is not JSON (line %d column %d: %s)", name, err.line,
                              err.column, err.text);
    }
    json_decref(doc);
    return 0;
}

/* Load each file sent with the loaders every process uses: 0, or an error naming the file. */
static int check_files(const char *stage, const meta_files_t *mf, meta_tables_t *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < F_COUNT; i++) {
        if (!mf->have[i]) {
            continue;
        }
        int jrc = check_json(file_names[i], &mf->f[i]);
        if (jrc < 0) {
            return jrc;
        }
        shmq_meta_report_t rep = {0};
        findings_t fd = {{0}, 0};
        shmq_error_clear();
        shmq_meta_set_warn(on_finding, &fd);
        int rc;
        switch (i) {
        case F_TOPICS:
            rc = shmq_topics_load_ex(stage, &t->topics, 0, &rep);
            break;
        case F_GROUPS:
            rc = shmq_groups_load_ex(stage, &t->groups, &rep);
            break;
        case F_DELAY:
            rc = shmq_delay_offsets_load_ex(stage, &t->delay, NULL, NULL, &rep);
            break;
        default:
            rc = shmq_consumer_offsets_load_ex(stage, &t->offsets, NULL, NULL, &rep);
            break;
        }
        shmq_meta_set_warn(NULL, NULL);
        if (rc < 0) {
            const char *d = shmq_error_detail();
            return shmq_error_set(rc, "%s: %s", file_names[i], d[0] ? d : shmq_strerror(rc));
        }
        if (rep.warnings > 0 || fd.warnings > 0) {
            return shmq_error_set(SHMQ_E_JSON, "%s: damaged entries: %d (the first: %s)",
                                  file_names[i], rep.warnings > 0 ? rep.warnings : fd.warnings,
                                  fd.first);
        }
    }
    return 0;
}

/* ---- applying it ------------------------------------------------------------------------- */

/* The master's topics where this table differs; topics.json saved when one changed. */
static int apply_topics(ha_meta_sync_t *m, const shmq_topic_table_t *tt)
{
    int changed = 0;
    bool locked = false;
    for (size_t i = 0; i < tt->count; i++) {
        const shmq_topic_config_t *tc = &tt->topics[i];
        shmq_ctl_topic_t cur;
        size_t len = strlen(tc->name);
        if (shmq_ctl_topic_get(m->ctl, tc->name, len, &cur) == 0 &&
            cur.read_queue_nums == tc->read_queue_nums &&
            cur.write_queue_nums == tc->write_queue_nums && cur.perm == tc->perm &&
            (cur.order != 0) == tc->order) {
            continue;
        }
        if (!locked) {
            if (shmq_ctl_topic_lock(m->ctl, META_TOPIC_LOCK_MS) < 0) {
                shmq_log(SHMQ_LOG_WARN, "master %s's topics: the topic lock is busy; next time",
                         m->name);
                return 0;
            }
            locked = true;
        }
        if (shmq_ctl_topic_put(m->ctl, tc->name, tc->read_queue_nums, tc->write_queue_nums,
                               tc->perm, tc->order) < 0) {
            shmq_log(SHMQ_LOG_WARN, "master %s's topic %s: not put: %s", m->name, tc->name,
                     shmq_error_detail());
            continue;
        }
        shmq_log(SHMQ_LOG_INFO, "topic %s from master %s: %d read / %d write queues, perm %d",
                 tc->name, m->name, tc->read_queue_nums, tc->write_queue_nums, tc->perm);
        changed++;
    }
    if (changed > 0 && shmq_ctl_topics_save(m->ctl) < 0) {
        shmq_log(SHMQ_LOG_WARN, "topics from master %s put, but topics.json not saved: %s", m->name,
                 shmq_error_detail());
    }
    if (locked) {
        shmq_ctl_topic_unlock(m->ctl);
    }
    return changed;
}

/* Replace config/<name> with the master's bytes when they differ: 1 replaced, 0 same. */
static int apply_file(ha_meta_sync_t *m, const char *name, const shmq_ha_file_t *f)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/config/%s", m->ctl->root, name);
    char *cur = NULL;
    size_t len = 0;
    int rc = shmq_store_file_read_all(path, SHMQ_HA_ANSWER_MAX, &cur, &len);
    bool same = rc == 0 && len == f->len && memcmp(cur, f->data, len) == 0;
    free(cur);
    if (same) {
        return 0;
    }
    rc = shmq_file_write_atomic(path, f->data, f->len);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_WARN, "%s from master %s: not written: %s", name, m->name,
                 shmq_error_detail());
        return 0;
    }
    shmq_log(SHMQ_LOG_INFO, "%s from master %s (%u bytes)", name, m->name, f->len);
    return 1;
}

/* Each of the master's consumer offsets moves this store's forward: how many moved. */
static int apply_offsets(ha_meta_sync_t *m, const shmq_offset_table_t *t)
{
    int moved = 0, failed = 0;
    for (size_t i = 0; i < t->count; i++) {
        const shmq_offset_entry_t *o = &t->entries[i];
        char key[sizeof(o->key)], *group;
        if (!shmq_offset_key_split(o, key, &group)) {
            continue;
        }
        int rc = shmq_ctl_offset_advance(m->ctl, group, key, o->queue_id, o->offset);
        if (rc > 0) {
            moved++;
        } else if (rc < 0 && failed++ == 0) {
            shmq_log(SHMQ_LOG_WARN, "consumer offset %s@%s/%d from master %s: %s", key, group,
                     (int)o->queue_id, m->name, shmq_error_detail());
        }
    }
    return moved;
}

/* Log a refusal: a new one at once, the same one again at most every META_REPEAT_MS. */
static void refusal(ha_meta_sync_t *m, const char *why)
{
    int64_t now = shmq_mono_ms();
    if (strcmp(why, m->refused) == 0 && now - m->refused_ms < META_REPEAT_MS) {
        m->refused_again++;
        return;
    }
    if (m->refused_again > 0) {
        shmq_log(SHMQ_LOG_ERROR,
                 "metadata from master %s refused: %s; nothing of it applied (%d more times "
                 "the same since the last line)",
                 m->name, why, m->refused_again);
    } else {
        shmq_log(SHMQ_LOG_ERROR, "metadata from master %s refused: %s; nothing of it applied",
                 m->name, why);
    }
    snprintf(m->refused, sizeof(m->refused), "%s", why);
    m->refused_ms = now;
    m->refused_again = 0;
}

static void apply_answer(ha_meta_sync_t *m)
{
    char stage[PATH_MAX], dir[PATH_MAX];
    snprintf(stage, sizeof(stage), "%s/" META_STAGE, m->ctl->root);
    snprintf(dir, sizeof(dir), "%s/config", stage);
    meta_files_t mf;
    meta_tables_t t = {0};
    shmq_error_clear();
    int rc = split_body(m->body, m->body_len, &mf);
    if (rc == 0) {
        rc = shmq_file_mkdirs(dir);
    }
    for (int i = 0; i < F_COUNT && rc == 0; i++) {
        rc = stage_file(dir, file_names[i], &mf.f[i], mf.have[i]);
    }
    if (rc == 0) {
        rc = check_files(stage, &mf, &t);
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        char why[1200];
        snprintf(why, sizeof(why), "an answer of %zu bytes: %s", m->body_len,
                 d[0] ? d : shmq_strerror(rc));
        refusal(m, why);
        tables_free(&t);
        return;
    }
    int topics = mf.have[F_TOPICS] ? apply_topics(m, &t.topics) : 0;
    int groups = mf.have[F_GROUPS] ? apply_file(m, file_names[F_GROUPS], &mf.f[F_GROUPS]) : 0;
    int delay = mf.have[F_DELAY] ? apply_file(m, file_names[F_DELAY], &mf.f[F_DELAY]) : 0;
    int offsets = mf.have[F_OFFSETS] ? apply_offsets(m, &t.offsets) : 0;
    tables_free(&t);
    /* Topics and files are logged one by one as they change; offsets move all the time. */
    shmq_log(SHMQ_LOG_DEBUG,
             "metadata from master %s: %d topics, %d files changed, %d consumer offsets moved "
             "forward",
             m->name, topics, groups + delay, offsets);
}

/* ---- one fetch --------------------------------------------------------------------------- */

static void fetch_end(ha_meta_sync_t *m)
{
    if (m->k != NULL) {
        shmq_net_connector_stop(m->k);
        m->k = NULL;
    }
    free(m->body);
    m->body = NULL;
}

static void fetch_failed(ha_meta_sync_t *m, const char *why)
{
    if (!m->warned) {
        shmq_log(SHMQ_LOG_WARN, "metadata from master %s: %s", m->name, why);
        m->warned = true;
    }
    fetch_end(m);
}

static void on_connected(shmq_net_connector_t *k, shmq_net_conn_t *c)
{
    ha_meta_sync_t *m = shmq_net_connector_arg(k);
    m->head_len = 0;
    m->have_head = false;
    m->body_got = 0;
    uint8_t req[SHMQ_HA_REQ_SIZE];
    shmq_ha_request_encode(SHMQ_HA_REQ_META, req);
    if (shmq_net_conn_write(c, req, sizeof(req)) < 0) {
        shmq_net_conn_close(c, "the request was not sent");
    }
}

static void on_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    ha_meta_sync_t *m = shmq_net_conn_arg(c);
    const uint8_t *p = (const uint8_t *)data;
    if (!m->have_head) {
        size_t take = SHMQ_HA_ANSWER_HEAD_SIZE - m->head_len;
        take = take < len ? take : len;
        memcpy(m->head + m->head_len, p, take);
        m->head_len += take;
        p += take;
        len -= take;
        if (m->head_len < SHMQ_HA_ANSWER_HEAD_SIZE) {
            return;
        }
        uint32_t blen;
        if (shmq_ha_answer_decode(m->head, &m->status, &blen) < 0) {
            char why[300];
            snprintf(why, sizeof(why), "%s", shmq_error_detail());
            refusal(m, why);
            fetch_end(m);
            return;
        }
        m->have_head = true;
        m->body_len = blen;
        m->body = malloc(blen > 0 ? blen : 1);
        if (m->body == NULL) {
            fetch_failed(m, "no memory for the answer");
            return;
        }
    }
    size_t take = m->body_len - m->body_got < len ? m->body_len - m->body_got : len;
    memcpy(m->body + m->body_got, p, take);
    m->body_got += take;
    if (m->body_got < m->body_len) {
        return;
    }
    if (m->status != 0) {
        char why[400];
        snprintf(why, sizeof(why), "the master answers %s: %.*s", shmq_strerror(m->status),
                 (int)(m->body_len < 300 ? m->body_len : 300), (const char *)m->body);
        fetch_failed(m, why);
        return;
    }
    m->warned = false;
    apply_answer(m);
    fetch_end(m);
}

static void on_disconnected(shmq_net_connector_t *k, const char *reason, uint32_t retry_ms)
{
    (void)retry_ms;
    ha_meta_sync_t *m = shmq_net_connector_arg(k);
    char why[300];
    snprintf(why, sizeof(why), "no answer: %s", reason);
    fetch_failed(m, why); /* the next fetch tries again */
}

static void fetch(ha_meta_sync_t *m)
{
    if (m->k != NULL) {
        return; /* under way */
    }
    shmq_net_connector_cfg_t kc = {
        .on_connected = on_connected,
        .on_disconnected = on_disconnected,
        .arg = m,
        .conn = {.on_read = on_read, .idle_ms = META_IDLE_MS, .tls = m->tls},
    };
    if (shmq_net_connector_start(m->loop, m->addr, &kc, &m->k) < 0) {
        m->k = NULL;
        fetch_failed(m, shmq_error_detail());
    }
}

static void on_timer(uv_timer_t *t)
{
    fetch(t->data);
}

/* ---- start / stop ------------------------------------------------------------------------ */

int ha_meta_sync_start(uv_loop_t *loop, shmq_ctl_t *ctl, const char *addr, const char *name,
                       const shmq_net_tls_t *tls, ha_meta_sync_t **out)
{
    ha_meta_sync_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    m->loop = loop;
    m->ctl = ctl;
    m->tls = tls;
    snprintf(m->addr, sizeof(m->addr), "%s", addr);
    snprintf(m->name, sizeof(m->name), "%s", name);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_timer, HA_META_SYNC_MS, HA_META_SYNC_MS);
    *out = m;
    return 0;
}

void ha_meta_sync_now(ha_meta_sync_t *m)
{
    fetch(m);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ha_meta_sync_stop(ha_meta_sync_t *m)
{
    fetch_end(m);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}
