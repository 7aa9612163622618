/*
 * The consumer API (include/shmq/consumer.h): read messages of a running
 * store in place, RocketMQ pull semantics (ROCKETMQ-FACTS §16).
 *
 * A consumer attaches to the control block read-only (the consumer area,
 * where group offsets and the wake-up word live, is its only writable
 * shared memory), maps the CommitLog and the ConsumeQueues it reads
 * PROT_READ, and reads units only below the queue's max_offset published by
 * the dispatcher (acquire), so every unit it reads is complete.  Records are
 * still decoded with checks (magic, size, physical offset) and compared with
 * their unit (size, topic, queue, queue offset): a consumer never returns a
 * torn record, whatever the files hold.  With check_crcs (the default) the
 * record's CRCs are checked too, in one pass over its bytes: the whole-record
 * __CRC32# when present (it covers the body), else the body CRC
 * (shmq_record_check_crcs).  A record that fails is reported where it lies
 * (shmq_corrupt_t), never returned; shmq_consumer_skip_corrupt()
 * (consumer_skip.c) moves a group past exactly one such record.
 *
 * Long polling: register as a sleeper on the consumer area's wake word,
 * re-check the queue's max_offset, sleep with a bounded timeout; the
 * dispatcher wakes sleepers after publishing new units.
 *
 * Store down (ready cleared, state STOPPED, control block unlinked or
 * replaced, master gone): every call first re-attaches, and fails with
 * SHMQ_E_NOT_FOUND while no store runs.
 *
 * This file owns the handle (its struct is in consumer_int.h), attaching,
 * the ConsumeQueue handles, reading and checking a unit and its record, and
 * the pull.  Queue and group offsets are consumer_offsets.c's; send-back and
 * group polls consumer_retry.c's.
 */
#include "shmq/consumer.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/probes.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "format/commitlog.h"
#include "format/consume_queue.h"
#include "client/consumer_int.h"
#include "shm/ctl.h"
#include "shm/stats.h"
#include "format/compress.h"
#include "format/message.h"
#include "format/record_layout.h"
#include "client/subscription.h"
#include "base/bytes.h"

#define CONS_CHECK_MS       100 /* how often the master's liveness is checked */
#define CONS_WAIT_SLICE_MS  500 /* a long poll re-checks the store at least this often */
#define CONS_SCAN_MIN_UNITS 800 /* RocketMQ's maxFilterMessageSize (16000 bytes) in units */

const char *shmq_pull_status_name(int status)
{
    static const char *const names[] = {
        "FOUND",
        "NO_NEW_MSG",
        "NO_MATCHED_MSG",
        "NO_MATCHED_LOGIC_QUEUE",
        "NO_MESSAGE_IN_QUEUE",
        "OFFSET_TOO_SMALL",
        "OFFSET_OVERFLOW_ONE",
        "OFFSET_OVERFLOW_BADLY",
        "MESSAGE_WAS_REMOVING",
    };
    if (status < 0 || status >= (int)(sizeof(names) / sizeof(names[0]))) {
        return "UNKNOWN";
    }
    return names[status];
}

const char *shmq_msg_property(const shmq_msg_view_t *m, const char *name, size_t *len)
{
    size_t vlen = 0;
    const char *v = m && name ? shmq_props_get(m->props, m->props_len, name, &vlen) : NULL;
    if (len) {
        *len = v ? vlen : 0;
    }
    return v;
}

/* ---- attachment ----------------------------------------------------------------------- */

static void queues_close(shmq_consumer_t *c)
{
    for (size_t i = 0; i < CONS_BUCKETS; i++) {
        cons_queue_t *q = c->buckets[i];
        while (q) {
            cons_queue_t *next = q->next;
            shmq_cq_close(&q->cq);
            free(q);
            q = next;
        }
        c->buckets[i] = NULL;
    }
}

static void consumer_release(shmq_consumer_t *c)
{
    queues_close(c);
    if (c->reg_fd >= 0) {
        close(c->reg_fd); /* the master it talked to may be gone: connect again when needed */
        c->reg_fd = -1;
    }
    if (c->cl_open) {
        shmq_commitlog_close(&c->cl);
        c->cl_open = false;
    }
    if (c->attached) {
        shmq_ctl_detach(&c->ctl);
        c->attached = false;
    }
}

static int consumer_attach(shmq_consumer_t *c)
{
    int rc = shmq_ctl_attach(c->root, SHMQ_CTL_RDONLY, &c->ctl);
    if (rc == -EAGAIN) {
        rc = shmq_error_set(SHMQ_E_NOT_FOUND, "store %s is not running (starting or restarting)",
                            c->root);
    }
    if (rc < 0) {
        return rc;
    }
    c->attached = true;
    snprintf(c->shm_path, sizeof(c->shm_path), "/dev/shm%s", c->ctl.name);
    struct stat sb;
    if (stat(c->shm_path, &sb) == 0) {
        c->shm_dev = sb.st_dev;
        c->shm_ino = sb.st_ino;
    } else {
        c->shm_path[0] = '\0'; /* no /dev/shm: rely on the other checks */
    }
    c->next_check_ms = shmq_mono_ms() + CONS_CHECK_MS;

    memcpy(&c->cfg, &c->ctl.blk->hdr.config, sizeof(c->cfg));
    snprintf(c->cfg.store_path_root_dir, sizeof(c->cfg.store_path_root_dir), "%s", c->ctl.root);
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(&c->cfg, dir, sizeof(dir));
    int64_t seg = c->cfg.mapped_file_size_commit_log;
    if (seg <= 0 || seg > INT32_MAX) {
        consumer_release(c);
        return shmq_error_set(SHMQ_E_CONFIG, "store %s: CommitLog segment size %lld", c->root,
                              (long long)seg);
    }
    rc = shmq_commitlog_open(&c->cl, dir, (size_t)seg, SHMQ_MF_READONLY);
    if (rc < 0) {
        consumer_release(c);
        return shmq_error_wrap(rc, "store %s: CommitLog", c->root);
    }
    c->cl_open = true;
    c->cq_file_size = shmq_cq_file_size((size_t)c->cfg.mapped_file_size_consume_queue);
    return 0;
}

/* True if the store this handle is attached to stopped or was replaced. */
static bool store_down(shmq_consumer_t *c)
{
    const shmq_ctl_header_t *h = &c->ctl.blk->hdr;
    /* Acquire: pairs with the master's release of ready. */
    if (atomic_load_explicit((_Atomic uint32_t *)&h->ready, memory_order_acquire) != 1) {
        return true;
    }
    /* Relaxed: a state word only, nothing is read through it. */
    if (atomic_load_explicit((_Atomic uint32_t *)&h->state, memory_order_relaxed) ==
        SHMQ_STATE_STOPPED) {
        return true;
    }
    int64_t now = shmq_mono_ms();
    if (now < c->next_check_ms) {
        return false;
    }
    c->next_check_ms = now + CONS_CHECK_MS;
    if (kill(h->creator_pid, 0) != 0 && errno == ESRCH) {
        return true;
    }
    struct stat sb;
    if (c->shm_path[0] &&
        (stat(c->shm_path, &sb) != 0 || sb.st_ino != c->shm_ino || sb.st_dev != c->shm_dev)) {
        return true; /* unlinked at a clean stop, or a new master's object */
    }
    return false;
}

/* Attached to a running store, re-attaching if it went down; SHMQ_E_NOT_FOUND if none runs. */
int shmq_cons_ensure(shmq_consumer_t *c)
{
    if (c->attached && !store_down(c)) {
        return 0;
    }
    consumer_release(c);
    return consumer_attach(c);
}

int shmq_consumer_open(const char *store_root, const char *group, shmq_consumer_t **out)
{
    if (!store_root || !out) {
        return shmq_error_set(SHMQ_E_ARG, "consumer: store path and handle are required");
    }
    *out = NULL;
    if (strlen(store_root) == 0 || strlen(store_root) >= PATH_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "consumer: store path length %zu", strlen(store_root));
    }
    /* The master's rule for the commits to come (reg.h): refused here, not at the first commit. */
    int vrc = group ? shmq_group_validate(group, strnlen(group, SHMQ_GROUP_MAX + 1)) : 0;
    if (vrc < 0) {
        return vrc;
    }
    shmq_consumer_t *c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    snprintf(c->root, sizeof(c->root), "%s", store_root);
    c->check_crcs = true;
    c->reg_fd = -1;
    if (group) {
        snprintf(c->group, sizeof(c->group), "%s", group);
        c->has_group = true;
    }
    int rc = consumer_attach(c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void zbodies_release(shmq_consumer_t *c);

void shmq_consumer_close(shmq_consumer_t *c)
{
    if (c) {
        zbodies_release(c);
        free(c->zbodies);
        shmq_consumer_retry_free(c->retry);
        shmq_cons_member_free(c);
        consumer_release(c);
        shmq_acl_watch_free(&c->acl);
        free(c);
    }
}

void shmq_consumer_set_check_crcs(shmq_consumer_t *c, bool on)
{
    if (c) {
        c->check_crcs = on;
    }
}

void shmq_consumer_set_decompress(shmq_consumer_t *c, bool on)
{
    if (c) {
        c->raw_bodies = !on;
    }
}

void shmq_consumer_set_msg_ids(shmq_consumer_t *c, bool on)
{
    if (c) {
        c->no_ids = !on;
    }
}

int shmq_msg_view_id(const shmq_msg_view_t *m, char out[SHMQ_MSGID_MAX])
{
    if (!m || !out) {
        return shmq_error_set(SHMQ_E_ARG, "message id: view and buffer are required");
    }
    if (m->msg_id[0] != '\0') {
        memcpy(out, m->msg_id, SHMQ_MSGID_MAX);
        return 0;
    }
    /* A pull's view without its id: the properties end the record, TOTALSIZE long. */
    if (m->props == NULL || m->size < SHMQ_RECORD_FIXED_V1 || (size_t)m->size < m->props_len) {
        out[0] = '\0';
        return shmq_error_set(SHMQ_E_ARG, "message id: the view holds none and names no record");
    }
    const uint8_t *rec = (const uint8_t *)m->props + m->props_len - (size_t)m->size;
    uint32_t born_v6 = ((uint32_t)m->sysflag & SHMQ_SYSFLAG_BORNHOST_V6) != 0;
    shmq_record_msgid(rec, 56 + 12 * born_v6,
                      ((uint32_t)m->sysflag & SHMQ_SYSFLAG_STOREHOST_V6) != 0, out);
    return 0;
}

/* Free the decompressed bodies of the last pull's views (they end with the next pull). */
static void zbodies_release(shmq_consumer_t *c)
{
    for (size_t i = 0; i < c->nzbodies; i++) {
        free(c->zbodies[i]);
    }
    c->nzbodies = 0;
    c->zbytes = 0;
}

/*
 * (consumer_int.h) v's record stores its body compressed: point v's body at the body
 * decompressed (owned by c until the next pull), or with raw bodies only
 * say how it is compressed.  SHMQ_E_CORRUPT (with *bad filled: check
 * SHMQ_E_CORRUPT, or SHMQ_E_TOO_BIG past maxMessageSize) when it does not
 * decompress.
 */
int shmq_cons_view_decompress(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                              const shmq_cq_unit_t *u, int64_t qoff, const char *topic, size_t tlen,
                              int32_t queue_id, shmq_msg_view_t *v, shmq_corrupt_t *bad)
{
    int type = shmq_body_compression(v->sysflag);
    if (c->raw_bodies) {
        v->compression = type >= 0 ? type : (int)(((uint32_t)v->sysflag >> 8) & 7);
        return 0;
    }
    int rc = type;
    if (rc >= 0 && c->nzbodies == c->zbodies_cap) {
        size_t cap = c->zbodies_cap ? c->zbodies_cap * 2 : 16;
        uint8_t **nb = realloc(c->zbodies, cap * sizeof(*nb));
        if (nb == NULL) {
            return shmq_error_set(-ENOMEM, "no memory for decompressed bodies");
        }
        c->zbodies = nb;
        c->zbodies_cap = cap;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (rc >= 0) {
        size_t max = c->cfg.max_message_size > 0 ? (size_t)c->cfg.max_message_size : 0;
        rc = shmq_body_decompress(type, v->body, v->body_len, max, &out, &out_len);
    }
    if (rc == -ENOMEM) {
        return rc;
    }
    if (rc < 0) {
        shmq_error_wrap(rc, "compressed body (sysflag 0x%x, %zu bytes stored)",
                        (unsigned)v->sysflag, v->body_len);
        return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, u->phys_offset, mf,
                                      rc == SHMQ_E_TOO_BIG ? SHMQ_E_TOO_BIG : SHMQ_E_CORRUPT);
    }
    c->zbodies[c->nzbodies++] = out;
    c->zbytes += out_len;
    v->compression = type;
    v->body = out;
    v->body_len = out_len;
    return 0;
}

/*
 * aclEnable: may this process subscribe to topic (as its group)?  Checked
 * here, in the consumer's own process: it binds honest clients (acl.h).
 */
static int acl_may_pull(shmq_consumer_t *c, const char *topic, size_t tlen)
{
    if (!c->ident_set) {
        struct stat st;
        if (stat(c->root, &st) != 0) {
            int rc = -errno;
            return shmq_error_set(rc, "stat %s: %s", c->root, strerror(-rc));
        }
        shmq_acl_ident_self(&c->ident, st.st_uid);
        c->ident_set = true;
    }
    /* A rules file that fails to load keeps the rules loaded before (none: refused). */
    (void)shmq_acl_watch_poll(&c->acl, c->root, shmq_mono_ms());
    return shmq_acl_watch_may_subscribe(&c->acl, &c->ident, topic, tlen,
                                        c->has_group ? c->group : NULL);
}

/* ---- queues --------------------------------------------------------------------------- */

static size_t queue_bucket(const char *topic, size_t len, int32_t queue_id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)topic[i]) * 1099511628211ULL;
    }
    h = (h ^ (uint32_t)queue_id) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 32)) % CONS_BUCKETS;
}

/* The read-only ConsumeQueue handle of topic/queue_id, opened on first use. */
static int queue_get(shmq_consumer_t *c, const char *topic, size_t len, int32_t queue_id,
                     shmq_cq_t **out)
{
    size_t b = queue_bucket(topic, len, queue_id);
    const shmq_ctl_queue_t *e = shmq_ctl_queue_find(&c->ctl, topic, len, queue_id);
    /* Acquire: pairs with the dispatcher's release when the topic was deleted. */
    uint32_t inc =
        e ? atomic_load_explicit((_Atomic uint32_t *)&e->incarnation, memory_order_acquire) : 0;
    cons_queue_t **link = &c->buckets[b];
    for (cons_queue_t *q = *link; q; link = &q->next, q = q->next) {
        if (q->cq.queue_id == queue_id && strlen(q->cq.topic) == len &&
            memcmp(q->cq.topic, topic, len) == 0) {
            if (q->incarnation == inc) {
                *out = &q->cq;
                return 0;
            }
            /* The topic was deleted since: these files are gone; open the new ones. */
            *link = q->next;
            shmq_cq_close(&q->cq);
            free(q);
            break;
        }
    }
    char name[SHMQ_TOPIC_MAX_ANY + 1];
    memcpy(name, topic, len);
    name[len] = '\0';
    cons_queue_t *q = calloc(1, sizeof(*q));
    if (!q) {
        return -ENOMEM;
    }
    /* No recovery scan: shmq_cons_queue_ready() sets the positions to the ones the dispatcher
     * published right after, and every read stays below them. */
    int rc = shmq_cq_open(&q->cq, c->ctl.root, name, queue_id, c->cq_file_size,
                          SHMQ_MF_READONLY | SHMQ_CQ_NO_SCAN);
    if (rc < 0) {
        free(q);
        return shmq_error_wrap(rc, "consume queue %s/%d", name, queue_id);
    }
    q->incarnation = inc;
    q->next = c->buckets[b];
    c->buckets[b] = q;
    *out = &q->cq;
    return 0;
}

/*
 * Make the handle's positions those the dispatcher published (the
 * handle's own recovery scan may see units beyond them, not yet complete),
 * mapping segment files that appeared since.
 */
static int queue_sync(shmq_cq_t *cq, int64_t min, int64_t max)
{
    int64_t end = max * SHMQ_CQ_UNIT_SIZE;
    if (end > shmq_mfq_end_offset(&cq->q)) {
        int rc = shmq_mfq_refresh(&cq->q);
        if (rc < 0) {
            return shmq_error_wrap(rc, "consume queue %s/%d: mapping new files", cq->topic,
                                   cq->queue_id);
        }
    }
    cq->min_logic_offset = min * SHMQ_CQ_UNIT_SIZE;
    /* Release, as shmq_cq_append publishes it: this handle's only reader is this thread. */
    __atomic_store_n(&cq->write_pos, end, __ATOMIC_RELEASE);
    return 0;
}

/* Map CommitLog segments the writer created since the last look. */
static int commitlog_sync(shmq_consumer_t *c)
{
    int64_t wrote = shmq_ctl_load(&c->ctl.blk->wrote);
    if (wrote > shmq_mfq_end_offset(&c->cl.q)) {
        int rc = shmq_mfq_refresh(&c->cl.q);
        if (rc < 0) {
            return shmq_error_wrap(rc, "CommitLog: mapping new segments");
        }
    }
    return 0;
}

/* ---- pulling ---------------------------------------------------------------------------- */

/*
 * Say in *bad, and in the error detail (in front of what it already holds),
 * which message of topic/queue_id the unit at qoff fails to yield and
 * where its record lies.  mf: the CommitLog file holding phys, or NULL.
 * Returns SHMQ_E_CORRUPT.
 */
int shmq_cons_unit_corrupt(shmq_corrupt_t *bad, const char *topic, size_t tlen, int32_t queue_id,
                           int64_t qoff, int64_t phys, const shmq_mapped_file_t *mf, int check)
{
    memcpy(bad->topic, topic, tlen);
    bad->topic[tlen] = '\0';
    bad->queue_id = queue_id;
    bad->queue_offset = qoff;
    bad->phys_offset = phys;
    bad->check = check;
    if (mf) {
        snprintf(bad->file, sizeof(bad->file), "%s", mf->path);
        bad->file_offset = phys - mf->start_offset;
        return shmq_error_wrap(SHMQ_E_CORRUPT,
                               "corrupt message %.*s/%d queue offset %lld: CommitLog file %s "
                               "offset %lld",
                               (int)tlen, topic, queue_id, (long long)qoff, mf->path,
                               (long long)bad->file_offset);
    }
    bad->file[0] = '\0';
    bad->file_offset = -1;
    return shmq_error_wrap(SHMQ_E_CORRUPT,
                           "corrupt message %.*s/%d queue offset %lld: CommitLog offset %lld",
                           (int)tlen, topic, queue_id, (long long)qoff, (long long)phys);
}

/*
 * Decode the record unit u (queue offset qoff of topic/queue_id) points at
 * into v, checking its CRCs if check_crcs.  CONS_REC_REMOVED when its segment is
 * gone (cleaned), SHMQ_E_CORRUPT (with *bad filled) when the record does
 * not decode, fails a CRC or does not match the unit.
 */
static inline int record_view_in(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                                 const shmq_cq_unit_t *u, int64_t qoff, const char *topic,
                                 size_t tlen, int32_t queue_id, bool check_crcs, shmq_msg_view_t *v,
                                 shmq_corrupt_t *bad) __attribute__((always_inline));

int shmq_cons_record_view(shmq_consumer_t *c, const shmq_cq_unit_t *u, int64_t qoff,
                          const char *topic, size_t tlen, int32_t queue_id, bool check_crcs,
                          shmq_msg_view_t *v, shmq_corrupt_t *bad)
{
    const shmq_mapped_file_t *mf = shmq_mfq_find(&c->cl.q, u->phys_offset);
    if (!mf) {
        if (u->phys_offset < shmq_mfq_min_offset(&c->cl.q)) {
            return CONS_REC_REMOVED;
        }
        shmq_error_set(SHMQ_E_CORRUPT, "no CommitLog file holds it");
        return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, u->phys_offset, NULL,
                                      SHMQ_E_CORRUPT);
    }
    return record_view_in(c, mf, u, qoff, topic, tlen, queue_id, check_crcs, v, bad);
}

/*
 * shmq_cons_record_view() with mf, the CommitLog file holding u->phys_offset.
 * Inline: the pull's loop runs it for every message it returns.
 */
static inline int record_view_in(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                                 const shmq_cq_unit_t *u, int64_t qoff, const char *topic,
                                 size_t tlen, int32_t queue_id, bool check_crcs, shmq_msg_view_t *v,
                                 shmq_corrupt_t *bad)
{
    int64_t rel = u->phys_offset - mf->start_offset;
    const uint8_t *buf = mf->base + rel;
    /*
     * shmq_record_decode() straight into the view: the same layout check, the physical
     * offset, the CRCs (one pass over the record when it carries __CRC32#), then the
     * unit's fields, each read once from the record.
     */
    shmq_record_layout_t l;
    int rc = shmq_record_layout(buf, mf->size - (size_t)rel, &l);
    int64_t phys = rc > 0 ? (int64_t)shmq_get_be64(buf + 28) : 0;
    if (rc > 0 && phys != u->phys_offset) {
        rc = shmq_error_set(SHMQ_E_PHYS_OFFSET, "record: PHYSICALOFFSET %lld, expected %lld",
                            (long long)phys, (long long)u->phys_offset);
    }
    if (rc > 0 && check_crcs) {
        /* Every record shmq wrote ends with a well-formed __CRC32#: its value and one CRC
         * pass, inline (what shmq_record_verify() does then, with SHMQ_DECODE_VERIFY).
         * Anything else, a mismatch included, is judged and reported by
         * shmq_record_verify() itself. */
        int64_t want = shmq_record_crc_tail_value(buf + l.props_at, l.props_len);
        if (want < 0 || want != shmq_record_crc_before_tail(buf, l.total_size)) {
            /* The fields shmq_record_verify() reads, in a copy: the layout itself stays in
             * registers (its address is never taken). */
            shmq_record_layout_t lc;
            lc.total_size = l.total_size;
            lc.body_at = l.body_at;
            lc.body_len = l.body_len;
            lc.props_at = l.props_at;
            lc.props_len = l.props_len;
            int vrc = shmq_record_verify(
                buf, &lc, phys, shmq_decode_verify_flags(phys, c->ctl.blk->hdr.crc_tail_from));
            rc = vrc < 0 ? vrc : rc;
        }
    }
    if (rc <= 0) {
        if (rc == 0) {
            shmq_error_set(SHMQ_E_CORRUPT, "a blank (end-of-segment) record, not the unit's");
        }
        return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, u->phys_offset, mf,
                                      rc < 0 ? rc : SHMQ_E_CORRUPT);
    }
    const char *rtopic = (const char *)buf + l.topic_at;
    int32_t rqueue = (int32_t)shmq_get_be32(buf + 12);
    int64_t rqoff = (int64_t)shmq_get_be64(buf + 20);
    if (rc != u->size || l.topic_len != tlen || !shmq_bytes_equal(rtopic, topic, tlen) ||
        rqueue != queue_id || rqoff != qoff) {
        bool same_topic = l.topic_len == tlen && memcmp(rtopic, topic, tlen) == 0;
        shmq_error_set(SHMQ_E_CORRUPT,
                       "the record there (size %d, %s, queue %d, queue offset %lld) is not the "
                       "unit's (size %d)",
                       rc, same_topic ? "same topic" : "another topic", rqueue, (long long)rqoff,
                       u->size);
        return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, u->phys_offset, mf,
                                      SHMQ_E_CORRUPT);
    }
    v->topic = rtopic;
    v->topic_len = l.topic_len;
    v->queue_id = rqueue;
    v->queue_offset = rqoff;
    v->phys_offset = phys;
    v->size = rc;
    v->flag = (int32_t)shmq_get_be32(buf + 16);
    v->sysflag = l.sysflag;
    v->reconsume_times = (int32_t)shmq_get_be32(buf + l.recons_at);
    v->born_ts = (int64_t)shmq_get_be64(buf + 40);
    /* BORNHOST: 4 or 16 address bytes (the rest of addr zero), then the port: two 8-byte
     * stores whatever the family. */
    uint64_t addr_lo = 0, addr_hi = 0;
    if (l.born_v6) {
        memcpy(&addr_lo, buf + 48, 8);
        memcpy(&addr_hi, buf + 56, 8);
    } else {
        uint32_t a4;
        memcpy(&a4, buf + 48, 4);
        memcpy(&addr_lo, &a4, 4); /* the first 4 bytes in memory order, the rest zero */
    }
    memcpy(v->born_host.addr, &addr_lo, 8);
    memcpy(v->born_host.addr + 8, &addr_hi, 8);
    v->born_host.is_v6 = l.born_v6;
    v->born_host.port = (int32_t)shmq_get_be32(buf + l.store_at - 4);
    v->store_ts = (int64_t)shmq_get_be64(buf + l.store_at);
    v->body = buf + l.body_at;
    v->body_len = l.body_len;
    v->stored_body = v->body;
    v->stored_len = l.body_len;
    v->compression = SHMQ_COMPRESSION_NONE;
    v->props = (const char *)buf + l.props_at;
    v->props_len = l.props_len;
    if (!c->no_ids) {
        shmq_record_msgid_inline(buf, l.store_at, l.store_v6, v->msg_id);
    } else {
        v->msg_id[0] = '\0'; /* shmq_msg_view_id() formats it when asked */
    }
    return 0;
}

/*
 * shmq_record_crc_tail_value() (record_layout.h) for the pull's fast path,
 * always inline and with the digits added up by the vector unit: the value
 * of a well-formed __CRC32# tail ending the len bytes of properties at
 * props, -1 for anything else (the same answer for every input: the unit
 * test compares them).  The same checks of the name, the separators and
 * the ten digits, then two multiply-adds of 16-bit lanes (pmaddwd): digit
 * pairs (ones digit first, as RocketMQ writes them), then four-digit
 * groups.
 */
static inline __attribute__((always_inline)) int64_t crc_tail_value(const uint8_t *props,
                                                                    uint32_t len)
{
#if defined(__SSE2__)
    __m128i d; /* the ten digit values at bytes 0..9, zeros after them */
    if (!shmq_record_crc_tail_digits(props, len, &d)) {
        return -1;
    }
    const __m128i zero = _mm_setzero_si128();
    const __m128i k10 = _mm_setr_epi16(1, 10, 1, 10, 1, 10, 1, 10);
    const __m128i k100 = _mm_setr_epi16(1, 100, 1, 100, 1, 0, 0, 0);
    /* 32-bit lanes of two digits (0..99): digits 0-1, 2-3, 4-5, 6-7, then 8-9. */
    __m128i p = _mm_madd_epi16(_mm_unpacklo_epi8(d, zero), k10);
    __m128i p8 = _mm_madd_epi16(_mm_unpackhi_epi8(d, zero), k10);
    /* 32-bit lanes of four digits (0..9999): digits 0-3, 4-7, and 8-9. */
    __m128i q = _mm_madd_epi16(_mm_packs_epi32(p, p8), k100);
    uint64_t x = (uint64_t)_mm_cvtsi128_si64(q);
    uint64_t top = (uint64_t)(uint32_t)_mm_cvtsi128_si32(_mm_unpackhi_epi64(q, q));
    return (int64_t)((x & 0xFFFFFFFFULL) + (x >> 32) * 10000 + top * 100000000ULL);
#else
    return shmq_record_crc_tail_value(props, len);
#endif
}

int64_t shmq_cons_crc_tail_value(const uint8_t *props, uint32_t len)
{
    return crc_tail_value(props, len);
}

/*
 * The first and last eight bytes of a topic of 8..16 bytes (the usual
 * length), loaded once for a pull's records: tw[0] and tw[1], zero for
 * another length.
 */
static inline __attribute__((always_inline)) void topic_words(const char *topic, size_t tlen,
                                                              uint64_t tw[2])
{
    tw[0] = tw[1] = 0;
    if (tlen >= 8 && tlen <= 16) {
        memcpy(&tw[0], topic, 8);
        memcpy(&tw[1], topic + tlen - 8, 8);
    }
}

/* rtopic's tlen bytes are topic's (tw: topic_words() of it), as shmq_bytes_equal() says. */
static inline __attribute__((always_inline)) bool topic_is(const char *rtopic, const char *topic,
                                                           size_t tlen, const uint64_t tw[2])
{
    if (tlen >= 8 && tlen <= 16) {
        uint64_t a, b;
        memcpy(&a, rtopic, 8);
        memcpy(&b, rtopic + tlen - 8, 8);
        return a == tw[0] && b == tw[1];
    }
    return shmq_bytes_equal(rtopic, topic, tlen);
}

/*
 * record_view_in() for what nearly every record is: V1 with two IPv4 hosts,
 * TOTALSIZE the unit's size and readable (size <= avail), the unit's topic,
 * queue, queue offset and physical offset, and with check_crcs a
 * well-formed __CRC32# tail that matches.  Each field is read once from the
 * record, and the checks are record_view_in()'s with their bound known
 * (lim is the unit's size): true with v filled exactly as record_view_in()
 * fills it.  False says nothing about the record (v may be partly written):
 * record_view_in() reads it again and decides, its errors worded as always.
 */
static inline __attribute__((always_inline)) bool
record_view_v1(const uint8_t *buf, size_t avail, int32_t size, int64_t phys_want, int64_t qoff,
               const char *topic, size_t tlen, const uint64_t tw[2], int32_t queue_id,
               bool check_crcs, bool ids, shmq_msg_view_t *v)
{
    /* V1, IPv4 hosts: BODY at 88, then the topic length byte, the topic, the properties
     * length (2) and the properties; the smallest record is SHMQ_RECORD_FIXED_V1 bytes. */
    uint32_t s = (uint32_t)size; /* > 0: the unit was checked */
    const uint32_t fixed = SHMQ_RECORD_FIXED_V1 + (uint32_t)tlen;
    if ((size_t)s > avail || s < fixed) {
        return false;
    }
    uint32_t magic;
    memcpy(&magic, buf + 4, 4);
    if (shmq_get_be32(buf) != s || magic != htobe32((uint32_t)SHMQ_MAGIC_V1) ||
        (buf[39] & (SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6)) != 0) {
        return false;
    }
    /* Unsigned: a negative BODY length is past any bound. */
    uint32_t body_len = shmq_get_be32(buf + 84);
    const uint32_t room = s - fixed; /* BODY and PROPERTIES */
    if (body_len > room) {
        return false;
    }
    /* The topic length byte is signed in the walk: tlen (1..255) matches it only below 128. */
    uint32_t topic_at = 89 + body_len;
    if ((int8_t)buf[topic_at - 1] != (int64_t)tlen) {
        return false;
    }
    /* What the properties length must be for the fields to add up to TOTALSIZE: 0..32767. */
    uint32_t props_len = room - body_len;
    uint32_t props_at = topic_at + (uint32_t)tlen + 2;
    if (props_len > INT16_MAX || shmq_get_be16(buf + props_at - 2) != props_len) {
        return false;
    }
    /* Compared as they lie (big-endian): the view takes the values they equal. */
    uint64_t r_phys, r_qoff;
    uint32_t r_queue;
    memcpy(&r_phys, buf + 28, 8);
    memcpy(&r_queue, buf + 12, 4);
    memcpy(&r_qoff, buf + 20, 8);
    const char *rtopic = (const char *)buf + topic_at;
    if (r_phys != htobe64((uint64_t)phys_want) || r_queue != htobe32((uint32_t)queue_id) ||
        r_qoff != htobe64((uint64_t)qoff) || !topic_is(rtopic, topic, tlen, tw)) {
        return false;
    }
    if (check_crcs) {
        int64_t want = crc_tail_value(buf + props_at, props_len);
        if (want < 0 || want != shmq_record_crc_before_tail(buf, (int32_t)s)) {
            return false;
        }
    }
    v->topic = rtopic;
    v->topic_len = tlen;
    v->queue_id = queue_id;
    v->queue_offset = qoff;
    v->phys_offset = phys_want;
    v->size = (int32_t)s;
    v->flag = (int32_t)shmq_get_be32(buf + 16);
    v->sysflag = (int32_t)shmq_get_be32(buf + 36);
    v->reconsume_times = (int32_t)shmq_get_be32(buf + 72);
    v->born_ts = (int64_t)shmq_get_be64(buf + 40);
    /* BORNHOST: 4 address bytes in memory order, the rest of addr zero, then the port. */
    uint32_t a4;
    memcpy(&a4, buf + 48, 4);
    uint64_t addr_lo = a4, addr_hi = 0;
    memcpy(v->born_host.addr, &addr_lo, 8);
    memcpy(v->born_host.addr + 8, &addr_hi, 8);
    v->born_host.is_v6 = false;
    v->born_host.port = (int32_t)shmq_get_be32(buf + 52);
    v->store_ts = (int64_t)shmq_get_be64(buf + 56);
    v->body = buf + 88;
    v->body_len = body_len;
    v->stored_body = v->body;
    v->stored_len = body_len;
    v->compression = SHMQ_COMPRESSION_NONE;
    v->props = (const char *)buf + props_at;
    v->props_len = props_len;
    if (ids) {
        shmq_record_msgid_inline(buf, 56, false, v->msg_id);
    } else {
        v->msg_id[0] = '\0'; /* shmq_msg_view_id() formats it when asked */
    }
    return true;
}

bool shmq_cons_record_view_v1(const uint8_t *buf, size_t avail, const shmq_cq_unit_t *u,
                              int64_t qoff, const char *topic, size_t tlen, int32_t queue_id,
                              bool check_crcs, shmq_msg_view_t *v)
{
    return shmq_cons_record_view_v1_ids(buf, avail, u, qoff, topic, tlen, queue_id, check_crcs,
                                        true, v);
}

bool shmq_cons_record_view_v1_ids(const uint8_t *buf, size_t avail, const shmq_cq_unit_t *u,
                                  int64_t qoff, const char *topic, size_t tlen, int32_t queue_id,
                                  bool check_crcs, bool ids, shmq_msg_view_t *v)
{
    uint64_t tw[2];
    topic_words(topic, tlen, tw);
    return record_view_v1(buf, avail, u->size, u->phys_offset, qoff, topic, tlen, tw, queue_id,
                          check_crcs, ids, v);
}

int shmq_cons_record_view_in(shmq_consumer_t *c, const shmq_mapped_file_t *mf,
                             const shmq_cq_unit_t *u, int64_t qoff, const char *topic, size_t tlen,
                             int32_t queue_id, bool check_crcs, shmq_msg_view_t *v,
                             shmq_corrupt_t *bad)
{
    return record_view_in(c, mf, u, qoff, topic, tlen, queue_id, check_crcs, v, bad);
}

/* A unit no dispatcher writes: SHMQ_E_CORRUPT with *bad filled. */
int shmq_cons_unit_invalid(shmq_corrupt_t *bad, const char *topic, size_t tlen, int32_t queue_id,
                           int64_t qoff, const shmq_cq_unit_t *u)
{
    shmq_error_set(SHMQ_E_CORRUPT, "invalid ConsumeQueue unit (phys %lld, size %d)",
                   (long long)u->phys_offset, u->size);
    return shmq_cons_unit_corrupt(bad, topic, tlen, queue_id, qoff, u->phys_offset, NULL,
                                  SHMQ_E_CORRUPT);
}

/* The queue's handle, in step with the dispatcher's [min, max) and the writer's segments. */
int shmq_cons_queue_ready(shmq_consumer_t *c, const char *topic, size_t tlen, int32_t queue_id,
                          int64_t min, int64_t max, shmq_cq_t **cq)
{
    int rc = queue_get(c, topic, tlen, queue_id, cq);
    if (rc == 0) {
        rc = queue_sync(*cq, min, max);
    }
    if (rc == 0) {
        rc = commitlog_sync(c);
    }
    return rc;
}

/* Whether a tracer has the pull probe attached (its USDT semaphore). */
#ifdef SHMQ_HAVE_PROBES
#define PULL_PROBE_ATTACHED() (shmq_pull_semaphore != 0)
#else
#define PULL_PROBE_ATTACHED() false
#endif

static inline __attribute__((always_inline)) size_t
pull_run_as(const uint8_t *units, int64_t qoff, size_t lim, const shmq_mapped_file_t *clf,
            int64_t cl_min, const char *topic, size_t tlen, int32_t queue_id, bool check_crcs,
            bool ids, shmq_msg_view_t *v)
{
    uint64_t tw[2];
    topic_words(topic, tlen, tw);
    const uint8_t *cl_base = clf->base;
    const uint64_t cl_start = (uint64_t)clf->start_offset, cl_size = clf->size;
    /* A unit at offset 0 may be a blank one (phys 0): pull_units() tells. */
    const int64_t lo = cl_min > 1 ? cl_min : 1;
    const uint8_t *const units_end = units + lim * SHMQ_CQ_UNIT_SIZE;
    const shmq_msg_view_t *const v0 = v;
    for (; units < units_end; units += SHMQ_CQ_UNIT_SIZE, qoff++, v++) {
        int64_t phys = (int64_t)shmq_get_be64(units);
        /* Unsigned: a record below the file's start is outside it too. */
        uint64_t rel = (uint64_t)phys - cl_start;
        if (phys < lo || rel >= cl_size ||
            !record_view_v1(cl_base + rel, cl_size - rel, (int32_t)shmq_get_be32(units + 8), phys,
                            qoff, topic, tlen, tw, queue_id, check_crcs, ids, v) ||
            (v->sysflag & SHMQ_SYSFLAG_COMPRESSED) != 0) {
            break;
        }
    }
    return (size_t)(v - v0);
}

/*
 * pull_units()'s loop for the usual shape, with nothing but what that shape
 * needs in registers: units [qoff, qoff + lim) read straight from the
 * ConsumeQueue mapping at units, each one a message whose record lies in
 * clf (not below cl_min, not at CommitLog offset 0, which a blank unit
 * names) and passes record_view_v1(), not compressed.  Only for a pull
 * without a tag filter and with the pull probe detached (pull_units()
 * fires it).  Fills v[0..n) and returns n: the unit at qoff + n, when n <
 * lim, is pull_units()'s to read and decide, as every failure is.  The
 * views' loop is a function of its own for each setting of ids: its values
 * stay in registers.
 */
static __attribute__((noinline)) size_t
pull_views_ids(const uint8_t *units, int64_t qoff, size_t lim, const shmq_mapped_file_t *clf,
               int64_t cl_min, const char *topic, size_t tlen, int32_t queue_id, shmq_msg_view_t *v)
{
    return pull_run_as(units, qoff, lim, clf, cl_min, topic, tlen, queue_id, false, true, v);
}

static __attribute__((noinline)) size_t pull_views_no_ids(const uint8_t *units, int64_t qoff,
                                                          size_t lim, const shmq_mapped_file_t *clf,
                                                          int64_t cl_min, const char *topic,
                                                          size_t tlen, int32_t queue_id,
                                                          shmq_msg_view_t *v)
{
    return pull_run_as(units, qoff, lim, clf, cl_min, topic, tlen, queue_id, false, false, v);
}

static size_t pull_run(const uint8_t *units, int64_t qoff, size_t lim,
                       const shmq_mapped_file_t *clf, int64_t cl_min, const char *topic,
                       size_t tlen, int32_t queue_id, bool check_crcs, bool ids, shmq_msg_view_t *v)
{
    size_t (*views)(const uint8_t *, int64_t, size_t, const shmq_mapped_file_t *, int64_t,
                    const char *, size_t, int32_t, shmq_msg_view_t *) =
        ids ? pull_views_ids : pull_views_no_ids;
    if (!check_crcs) {
        return views(units, qoff, lim, clf, cl_min, topic, tlen, queue_id, v);
    }
    /*
     * With the CRC check: the views of up to PULL_RUN_CHUNK units first, their CRCs
     * after, in a loop of its own (around the CRC's call the views' loop would keep its
     * values on the stack): record_view_v1()'s CRC check, made on the records the views
     * were filled from (the properties end the record: the view gives where it
     * starts), in chunks whose records are still in the first-level cache.  The first
     * view that fails ends the run: pull_units() reads its unit again and decides.
     */
    enum { PULL_RUN_CHUNK = 32 };
    size_t n = 0;
    while (n < lim) {
        size_t want = lim - n < PULL_RUN_CHUNK ? lim - n : PULL_RUN_CHUNK;
        size_t got = views(units + n * SHMQ_CQ_UNIT_SIZE, qoff + (int64_t)n, want, clf, cl_min,
                           topic, tlen, queue_id, v + n);
        for (size_t k = n; k < n + got; k++) {
            const uint8_t *props = (const uint8_t *)v[k].props;
            int64_t tail = crc_tail_value(props, (uint32_t)v[k].props_len);
            if (tail < 0 || tail != shmq_record_crc_before_tail(
                                        props + v[k].props_len - (uint32_t)v[k].size, v[k].size)) {
                return k;
            }
        }
        n += got;
        if (got < want) {
            break;
        }
    }
    return n;
}

/* Read units [offset, ...) of a queue known to hold offset < max. */
static int pull_units(shmq_consumer_t *c, const char *topic, size_t tlen, int32_t queue_id,
                      int64_t offset, int max_msgs, shmq_pull_result_t *res)
{
    shmq_cq_t *cq;
    int rc = shmq_cons_queue_ready(c, topic, tlen, queue_id, res->min_offset, res->max_offset, &cq);
    if (rc < 0) {
        return rc;
    }
    /* Units whose records are below the CommitLog minimum were cleaned. */
    int64_t cl_min = shmq_ctl_load(&c->ctl.blk->min);
    int64_t end = offset + (max_msgs > CONS_SCAN_MIN_UNITS ? max_msgs : CONS_SCAN_MIN_UNITS);
    /* One ConsumeQueue file per pull, as RocketMQ reads one mapped buffer. */
    int64_t per_file = (int64_t)cq->q.seg_size / SHMQ_CQ_UNIT_SIZE;
    int64_t file_end = (offset / per_file + 1) * per_file;
    if (end > file_end) {
        end = file_end;
    }
    if (end > res->max_offset) {
        end = res->max_offset;
    }
    bool removing = false;
    size_t count = 0;
    int64_t qoff = offset;
    /*
     * The units of this pull lie in one ConsumeQueue file, below the max
     * the dispatcher published: read them straight from its mapping
     * (shmq_cq_read's checks, made once); the records mostly lie in one
     * CommitLog file: the last one is kept.
     */
    const shmq_mapped_file_t *cqf = shmq_mfq_find(&cq->q, qoff * SHMQ_CQ_UNIT_SIZE);
    /* Units [qoff, in_file) lie whole inside cqf's mapping. */
    int64_t in_file = qoff;
    if (cqf != NULL) {
        int64_t urel = qoff * SHMQ_CQ_UNIT_SIZE - cqf->start_offset;
        if (urel >= 0 && (uint64_t)urel < cqf->size) {
            in_file = qoff + (int64_t)((cqf->size - (uint64_t)urel) / SHMQ_CQ_UNIT_SIZE);
        }
    }
    const shmq_mapped_file_t *clf = NULL;
    /* Read once per pull: the handle's settings do not change during it. */
    const bool all = c->sub.all, check_crcs = c->check_crcs, ids = !c->no_ids;
    /* pull_run() while it takes units: a store whose records it never takes (another
     * shape) costs a few tries per pull, not one per unit. */
    int run_tries = all && !PULL_PROBE_ATTACHED() ? 4 : 0;
    uint64_t tw[2];
    topic_words(topic, tlen, tw);
    shmq_msg_view_t *v = res->msgs;
    while (qoff < end) {
        const uint8_t *run_at = run_tries > 0 && qoff < in_file
                                    ? cqf->base + (qoff * SHMQ_CQ_UNIT_SIZE - cqf->start_offset)
                                    : NULL;
        if (run_at != NULL && clf == NULL) {
            /* The first unit's file (the full loop finds it the same way; NULL: none). */
            clf = shmq_mfq_find(&c->cl.q, (int64_t)shmq_get_be64(run_at));
        }
        if (run_at != NULL && clf != NULL) {
            int64_t stop = in_file < end ? in_file : end;
            size_t lim = (size_t)(stop - qoff), room = (size_t)max_msgs - count;
            size_t n = pull_run(run_at, qoff, lim < room ? lim : room, clf, cl_min, topic, tlen,
                                queue_id, check_crcs, ids, v);
            v += n;
            count += n;
            qoff += (int64_t)n;
            run_tries -= n == 0;
            if (count == (size_t)max_msgs || qoff >= end) {
                break;
            }
        }
        shmq_cq_unit_t u;
        if (qoff < in_file) {
            const uint8_t *b = cqf->base + (qoff * SHMQ_CQ_UNIT_SIZE - cqf->start_offset);
            u.phys_offset = (int64_t)shmq_get_be64(b);
            u.size = (int32_t)shmq_get_be32(b + 8);
            u.tags_code = (int64_t)shmq_get_be64(b + 12);
        } else if (shmq_cq_read(cq, qoff, &u) < 0) {
            if (count > 0) {
                break;
            }
            int64_t first = shmq_mfq_min_offset(&cq->q) / SHMQ_CQ_UNIT_SIZE;
            if (cq->q.count > 0 && qoff < first) {
                /* The cleaner removed the file before the minimum was raised. */
                res->status = SHMQ_PULL_OFFSET_TOO_SMALL;
                res->next_offset = first;
                return 0;
            }
            if (qoff > offset) {
                break; /* what came before is answered first */
            }
            shmq_error_set(SHMQ_E_CORRUPT, "no ConsumeQueue file holds the unit (max offset %lld)",
                           (long long)res->max_offset);
            return shmq_cons_unit_corrupt(&res->corrupt, topic, tlen, queue_id, qoff, -1, NULL,
                                          SHMQ_E_CORRUPT);
        }
        if (shmq_cons_unit_is_blank(&u)) {
            qoff++; /* a blank pre-fill unit: no message */
            continue;
        }
        if (!shmq_cons_unit_is_valid(&u)) {
            if (count > 0 || qoff > offset) {
                break; /* the next pull starts at it and reports it */
            }
            return shmq_cons_unit_invalid(&res->corrupt, topic, tlen, queue_id, qoff, &u);
        }
        if (u.phys_offset < cl_min || !(all || shmq_sub_code_matches(&c->sub, u.tags_code))) {
            removing |= u.phys_offset < cl_min;
            qoff++;
            continue;
        }
        /* Unsigned: a record below the file's start is outside it too. */
        if (clf == NULL || (uint64_t)(u.phys_offset - clf->start_offset) >= clf->size) {
            clf = shmq_mfq_find(&c->cl.q, u.phys_offset);
        }
        if (clf != NULL &&
            record_view_v1(clf->base + (u.phys_offset - clf->start_offset),
                           clf->size - (size_t)(u.phys_offset - clf->start_offset), u.size,
                           u.phys_offset, qoff, topic, tlen, tw, queue_id, check_crcs, ids, v)) {
            rc = 0;
        } else if (clf != NULL) {
            rc = record_view_in(c, clf, &u, qoff, topic, tlen, queue_id, check_crcs, v,
                                &res->corrupt);
        } else {
            rc = shmq_cons_record_view(c, &u, qoff, topic, tlen, queue_id, check_crcs, v,
                                       &res->corrupt);
        }
        if (__builtin_expect(rc == 0 && (v->sysflag & SHMQ_SYSFLAG_COMPRESSED), 0)) {
            if (c->zbytes >= CONS_ZBYTES_MAX && !c->raw_bodies && (count > 0 || qoff > offset)) {
                break; /* enough decompressed for one pull: the next one starts here */
            }
            rc = shmq_cons_view_decompress(c, clf, &u, qoff, topic, tlen, queue_id, v,
                                           &res->corrupt);
        }
        if (rc == CONS_REC_REMOVED) {
            removing = true;
            qoff++;
            continue;
        }
        if (rc < 0) {
            if (count > 0 || qoff > offset) {
                /* Return what came before; the next pull starts at the bad unit and reports it. */
                shmq_error_clear();
                res->corrupt.queue_offset = -1;
                break;
            }
            return rc;
        }
        qoff++;
        if (!all) {
            /* The tagsCode matched: the record's exact TAGS decides (hash collisions). */
            size_t vlen;
            const char *tags = shmq_props_get(v->props, v->props_len, SHMQ_PROP_TAGS, &vlen);
            if (!shmq_sub_tags_match(&c->sub, tags, tags ? vlen : 0)) {
                continue;
            }
        }
        SHMQ_PROBE(pull, v->phys_offset, v->size, queue_id, qoff - 1, topic, tlen);
        v++;
        if (++count == (size_t)max_msgs) {
            break;
        }
    }
    res->count = count;
    res->next_offset = qoff;
    if (count > 0) {
        res->status = SHMQ_PULL_FOUND;
    } else if (removing) {
        res->status = SHMQ_PULL_MESSAGE_WAS_REMOVING;
    } else {
        res->status = SHMQ_PULL_NO_MATCHED_MSG;
    }
    return 0;
}

/*
 * The pull's messages in the shared store-to-pull histogram, all at the age
 * of its first (oldest) message: one clock read and one bucket per pull,
 * not per message (a pull's messages were stored close together).
 */
static void store_to_pull(shmq_consumer_t *c, const shmq_pull_result_t *res)
{
    int64_t ts = res->msgs[0].store_ts, now_ms = shmq_now_ms();
    if (ts <= 0 || ts > now_ms + 1000) {
        return; /* not a time of this clock (a record from another host's clock) */
    }
    uint64_t bucket[SHMQ_HIST_BOUNDS + 1] = {0};
    int64_t ns = ts < now_ms ? (now_ms - ts) * 1000000 : 0;
    bucket[shmq_hist_bucket(&shmq_hist_send, ns)] = res->count;
    shmq_hist_add_shared(&c->ctl.wake->store_pull, bucket, res->count, (uint64_t)ns * res->count);
}

/* One pull without waiting: the status decision of RocketMQ's getMessage. */
static int pull_once(shmq_consumer_t *c, const char *topic, size_t tlen, int32_t queue_id,
                     int64_t offset, int max_msgs, shmq_pull_result_t *res)
{
    res->count = 0;
    res->min_offset = res->max_offset = 0;
    const shmq_ctl_queue_t *e = shmq_ctl_queue_find(&c->ctl, topic, tlen, queue_id);
    if (!e) {
        res->status = SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE;
        res->next_offset = 0;
        return 0;
    }
    /* Acquire: pairs with the dispatcher's release; the units below max are complete. */
    int64_t max = atomic_load_explicit((_Atomic int64_t *)&e->max_offset, memory_order_acquire);
    int64_t min = atomic_load_explicit((_Atomic int64_t *)&e->min_offset, memory_order_acquire);
    if (min > max) {
        min = max;
    }
    if (min < 0) {
        min = 0;
    }
    res->min_offset = min;
    res->max_offset = max;
    if (max <= 0) {
        res->status = SHMQ_PULL_NO_MESSAGE_IN_QUEUE;
        res->next_offset = 0;
    } else if (offset < min) {
        res->status = SHMQ_PULL_OFFSET_TOO_SMALL;
        res->next_offset = min;
    } else if (offset == max) {
        res->status = SHMQ_PULL_OFFSET_OVERFLOW_ONE;
        res->next_offset = offset;
    } else if (offset > max) {
        res->status = SHMQ_PULL_OFFSET_OVERFLOW_BADLY;
        res->next_offset = max;
    } else {
        return pull_units(c, topic, tlen, queue_id, offset, max_msgs, res);
    }
    return 0;
}

/* What a long poll waits for: the queue to appear, or its max_offset to move. */
typedef struct cons_wait {
    shmq_consumer_t *c;
    const char *topic;
    size_t tlen;
    int32_t queue_id;
    bool existed;
    int64_t max;
} cons_wait_t;

static bool units_arrived(void *arg)
{
    const cons_wait_t *cw = arg;
    const shmq_ctl_queue_t *e = shmq_ctl_queue_find(&cw->c->ctl, cw->topic, cw->tlen, cw->queue_id);
    if (!e) {
        return false;
    }
    /* Acquire: a new max makes its units visible to the pull that follows. */
    return !cw->existed ||
           atomic_load_explicit((_Atomic int64_t *)&e->max_offset, memory_order_acquire) != cw->max;
}

/* Nothing to read yet, and new messages could change that. */
static bool worth_waiting(const shmq_pull_result_t *res, int64_t offset)
{
    switch (res->status) {
    case SHMQ_PULL_OFFSET_OVERFLOW_ONE:
        return true;
    case SHMQ_PULL_NO_MESSAGE_IN_QUEUE:
    case SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE:
        return offset == 0;
    default:
        return false;
    }
}

/*
 * cleaner: unmap the files it deleted, whose space returns only once no
 * process maps them.  The views of the previous pull end here anyway.
 */
static void drop_removed(shmq_consumer_t *c)
{
    if (!c->cl_open || !shmq_clean_changed(&c->ctl, &c->clean_seen)) {
        return;
    }
    shmq_clean_drop_removed(&c->cl.q);
    for (size_t b = 0; b < CONS_BUCKETS; b++) {
        for (cons_queue_t *q = c->buckets[b]; q; q = q->next) {
            shmq_clean_cq_drop_removed(&q->cq);
        }
    }
}

void shmq_consumer_release_removed(shmq_consumer_t *c)
{
    if (c) {
        drop_removed(c);
    }
}

int shmq_pull(shmq_consumer_t *c, const char *topic, int32_t queue_id, int64_t offset, int max_msgs,
              const char *subscription, int wait_ms, shmq_pull_result_t *res)
{
    if (!c || !topic || !res) {
        return shmq_error_set(SHMQ_E_ARG, "pull: consumer, topic and result are required");
    }
    size_t tlen = strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1);
    if (tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY || queue_id < 0 || offset < 0 || max_msgs < 1 ||
        max_msgs > SHMQ_PULL_MAX) {
        return shmq_error_set(SHMQ_E_ARG,
                              "pull: topic length %zu (1..%d), queue %d, offset %lld, max_msgs %d "
                              "(1..%d)",
                              tlen, SHMQ_TOPIC_MAX_ANY, queue_id, (long long)offset, max_msgs,
                              SHMQ_PULL_MAX);
    }
    int rc = shmq_sub_parse(&c->sub, subscription);
    if (rc < 0) {
        return rc;
    }
    zbodies_release(c); /* the last pull's views end here */
    res->count = 0;
    res->corrupt.queue_offset = -1;
    int64_t deadline = wait_ms > 0 ? shmq_mono_ms() + wait_ms : 0;
    for (;;) {
        rc = shmq_cons_ensure(c);
        if (rc < 0) {
            res->count = 0;
            return rc;
        }
        drop_removed(c);
        /* consumeEnable and the topic's PERM_READ, as RocketMQ's pull checks them. */
        shmq_ctl_topic_t tp;
        rc = shmq_sub_may_consume(
            topic, shmq_ctl_topic_get(&c->ctl, topic, tlen, &tp) == 0 ? tp.perm : -1,
            c->has_group ? shmq_sub_group_get(&c->group_cfg, c->root, c->group, shmq_mono_ms())
                         : NULL);
        if (rc == 0 && c->cfg.acl_enable) {
            rc = acl_may_pull(c, topic, tlen);
        }
        if (rc == 0) {
            rc = pull_once(c, topic, tlen, queue_id, offset, max_msgs, res);
        }
        if (rc < 0) {
            res->count = 0;
            return rc;
        }
        if (wait_ms <= 0 || !worth_waiting(res, offset)) {
            break;
        }
        int64_t left = deadline - shmq_mono_ms();
        if (left <= 0) {
            break;
        }
        cons_wait_t cw = {.c = c,
                          .topic = topic,
                          .tlen = tlen,
                          .queue_id = queue_id,
                          .existed = res->status != SHMQ_PULL_NO_MATCHED_LOGIC_QUEUE,
                          .max = res->max_offset};
        /* Registers, re-checks units_arrived, then sleeps: no lost wake-up. */
        shmq_ctl_sleep(&c->ctl.wake->consumer_wake, units_arrived, &cw,
                       (int)(left < CONS_WAIT_SLICE_MS ? left : CONS_WAIT_SLICE_MS));
    }
    if (wait_ms > 0 && res->status == SHMQ_PULL_OFFSET_OVERFLOW_ONE) {
        res->status = SHMQ_PULL_NO_NEW_MSG;
    }
    if (res->count > 0) {
        /* Relaxed: a statistics counter. */
        atomic_fetch_add_explicit(&c->ctl.wake->messages_out, res->count, memory_order_relaxed);
        store_to_pull(c, res);
    }
    return 0;
}

/* ---- for consumer_retry.c (consumer_int.h) ------------------------------------------------ */

const char *shmq_consumer_root(const shmq_consumer_t *c)
{
    return c->root;
}

const char *shmq_consumer_group(const shmq_consumer_t *c)
{
    return c->has_group ? c->group : NULL;
}

const shmq_config_t *shmq_consumer_config(const shmq_consumer_t *c)
{
    return &c->cfg;
}

bool shmq_consumer_msg_ids(const shmq_consumer_t *c)
{
    return !c->no_ids;
}

struct shmq_consumer_retry **shmq_consumer_retry_state(shmq_consumer_t *c)
{
    return &c->retry;
}
