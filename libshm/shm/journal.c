/*
 * The writer's journal (see journal.h): the records of a batch a killed
 * writer was in, matched to ring entries by what was stored (UNIQ_KEY,
 * topic, queue and properties, and the put hook's decision the record
 * shows), and the zeroing of what its unpublished appends left after wrote.
 */
#include "shm/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/schedule.h"
#include "shmq/errors.h"

#define JOURNAL_PAGE 4096
#define HASH_SEED    0xcbf29ce484222325ULL /* FNV-1a 64 */
#define HASH_PRIME   0x100000001b3ULL

/* Properties the put hook sets or drops (schedule.h): outside a record's base hash. */
static const char *const hook_props[] = {SHMQ_PROP_DELAY,          SHMQ_PROP_TIMER_DELIVER_MS,
                                         SHMQ_PROP_TIMER_DELAY_MS, SHMQ_PROP_TIMER_DELAY_SEC,
                                         SHMQ_PROP_TIMER_OUT_MS,   SHMQ_PROP_REAL_TOPIC,
                                         SHMQ_PROP_REAL_QID,       NULL};

static bool same_name(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

static bool is_prop(const char *name, size_t len, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (same_name(*list, name, len)) {
            return true;
        }
    }
    return false;
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * HASH_PRIME;
    }
    return h;
}

/* Hash of the name/value pairs in order, without the store's __CRC32# (and, for base,
 * without the hook's properties): what the hook keeps of a message's properties. */
static uint64_t props_hash(const char *props, size_t len, bool base)
{
    static const char *const crc[] = {SHMQ_PROP_CRC32, NULL};
    static const uint8_t sep[2] = {SHMQ_PROP_NAME_VALUE_SEP, SHMQ_PROP_SEP};
    uint64_t h = HASH_SEED;
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (props && shmq_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        if (is_prop(n, nl, crc) || (base && is_prop(n, nl, hook_props))) {
            continue;
        }
        h = hash_bytes(h, n, nl);
        h = hash_bytes(h, &sep[0], 1);
        h = hash_bytes(h, v, vl);
        h = hash_bytes(h, &sep[1], 1);
    }
    return h;
}

/* The hook's decision the record r shows: a system topic's record naming where it was sent. */
static void rec_kind(shmq_journal_rec_t *e, const shmq_record_t *r)
{
    e->kind = SHMQ_SCHEDULE_NONE;
    e->sent_topic[0] = '\0';
    e->sent_queue_id = -1;
    bool delay = same_name(SHMQ_SCHEDULE_TOPIC, r->topic, r->topic_len);
    bool timer = same_name(SHMQ_TIMER_TOPIC, r->topic, r->topic_len);
    if (!delay && !timer) {
        return;
    }
    size_t tl = 0, ql = 0;
    const char *t = shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_TOPIC, &tl);
    const char *q = shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_QID, &ql);
    int64_t qid;
    if (t == NULL || tl == 0 || tl > SHMQ_TOPIC_MAX_ANY || q == NULL ||
        !shmq_schedule_parse_i64(q, ql, &qid) || qid < 0 || qid > 65535) {
        return; /* not a rewrite: sent to the system topic as it is */
    }
    memcpy(e->sent_topic, t, tl);
    e->sent_topic[tl] = '\0';
    e->sent_queue_id = (int32_t)qid;
    e->kind = delay ? SHMQ_SCHEDULE_DELAY : SHMQ_SCHEDULE_TIMER;
}

static int rec_add(shmq_journal_t *j, const shmq_record_t *r, const char *key, size_t klen)
{
    if (klen == 0 || klen >= SHMQ_UNIQ_KEY_MAX || r->topic_len == 0 ||
        r->topic_len > SHMQ_TOPIC_MAX_ANY) {
        return 0; /* not a record a producer of ours wrote */
    }
    if (j->count == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 256;
        shmq_journal_rec_t *n = realloc(j->recs, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        j->recs = n;
        j->cap = cap;
    }
    shmq_journal_rec_t *e = &j->recs[j->count++];
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    memcpy(e->topic, r->topic, r->topic_len);
    e->topic[r->topic_len] = '\0';
    e->queue_id = r->queue_id;
    rec_kind(e, r);
    e->props_hash = props_hash(r->props, r->props_len, false);
    e->base_hash = props_hash(r->props, r->props_len, true);
    e->used = false;
    e->size = r->total_size;
    e->phys = r->phys_offset;
    e->queue_offset = r->queue_offset;
    e->store_ts = r->store_ts;
    return 0;
}

static bool gets_unit(int32_t sysflag)
{
    int32_t tx = sysflag & SHMQ_SYSFLAG_TX_MASK;
    return tx == SHMQ_SYSFLAG_TX_NOT || tx == SHMQ_SYSFLAG_TX_COMMIT;
}

int64_t shmq_journal_scan(shmq_journal_t *j, const shmq_commitlog_t *cl, shmq_ctl_t *ctl,
                          int64_t from, int64_t to)
{
    int64_t pos = from, count = 0;
    j->stop_err = 0;
    j->delay_level_count = ctl->blk->hdr.config.delay_level_count;
    while (pos < to) {
        shmq_record_t rec;
        int64_t at = pos;
        int rc = shmq_commitlog_next(cl, &pos, to, 0, &rec);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            j->stop_err = rc;
            j->stop_at = at;
            break;
        }
        count++;
        j->last_store_ts = rec.store_ts;
        if (gets_unit(rec.sysflag)) {
            shmq_ctl_queue_t *q;
            rc = shmq_ctl_queue_insert(ctl, rec.topic, rec.topic_len, rec.queue_id, &q);
            if (rc < 0) {
                return rc;
            }
            /* Relaxed load: the caller is next_offset's only writer.  Release store:
             * the record it counts is below the published wrote already. */
            if (atomic_load_explicit(&q->next_offset, memory_order_relaxed) <
                rec.queue_offset + 1) {
                atomic_store_explicit(&q->next_offset, rec.queue_offset + 1, memory_order_release);
            }
        }
        size_t klen = 0;
        const char *key = shmq_props_get(rec.props, rec.props_len, SHMQ_PROP_UNIQ_KEY, &klen);
        if (key && (rc = rec_add(j, &rec, key, klen)) < 0) {
            return rc;
        }
    }
    return count;
}

/*
 * What the put hook makes of m whatever the clock (shmq_schedule_transform's
 * rule, less the clock): DELAY for a delay level (always), TIMER for a
 * delivery time (when it is ahead: else the message stays as it is), NONE
 * for anything else.
 */
static int hook_kind(const shmq_journal_t *j, const shmq_ring_msg_t *m)
{
    int32_t tx = m->sysflag & SHMQ_SYSFLAG_TX_MASK;
    if (tx != SHMQ_SYSFLAG_TX_NOT && tx != SHMQ_SYSFLAG_TX_COMMIT) {
        return SHMQ_SCHEDULE_NONE;
    }
    size_t vl = 0;
    int64_t level = 0;
    const char *v = shmq_props_get(m->props, m->props_len, SHMQ_PROP_DELAY, &vl);
    if (v && shmq_schedule_parse_i64(v, vl, &level) && level > 0) {
        bool kept =
            same_name(SHMQ_SCHEDULE_TOPIC, m->topic, m->topic_len) || j->delay_level_count < 1;
        return kept ? SHMQ_SCHEDULE_NONE : SHMQ_SCHEDULE_DELAY;
    }
    bool timed = shmq_props_get(m->props, m->props_len, SHMQ_PROP_TIMER_DELAY_SEC, &vl) ||
                 shmq_props_get(m->props, m->props_len, SHMQ_PROP_TIMER_DELAY_MS, &vl) ||
                 shmq_props_get(m->props, m->props_len, SHMQ_PROP_TIMER_DELIVER_MS, &vl);
    if (!timed || shmq_props_get(m->props, m->props_len, SHMQ_PROP_TIMER_OUT_MS, &vl) ||
        same_name(SHMQ_TIMER_TOPIC, m->topic, m->topic_len)) {
        return SHMQ_SCHEDULE_NONE;
    }
    return SHMQ_SCHEDULE_TIMER;
}

shmq_journal_rec_t *shmq_journal_find(shmq_journal_t *j, const shmq_ring_msg_t *m)
{
    bool known = false; /* the entry's hook kind and hashes: worked out at the first key match */
    int kind = SHMQ_SCHEDULE_NONE;
    uint64_t all = 0, base = 0;
    for (size_t i = 0; i < j->count; i++) {
        shmq_journal_rec_t *r = &j->recs[i];
        if (r->used || !same_name(r->key, m->uniq_key, m->uniq_key_len)) {
            continue;
        }
        if (!known) {
            kind = hook_kind(j, m);
            all = props_hash(m->props, m->props_len, false);
            base = props_hash(m->props, m->props_len, true);
            known = true;
        }
        /* Stored as sent: possible unless the hook always rewrites the entry (a delay). */
        if (kind != SHMQ_SCHEDULE_DELAY && r->queue_id == m->queue_id &&
            same_name(r->topic, m->topic, m->topic_len) && r->props_hash == all) {
            return r;
        }
        /* Rewritten by the hook, from this entry's topic, queue and properties. */
        if (kind != SHMQ_SCHEDULE_NONE && r->kind == kind && r->sent_queue_id == m->queue_id &&
            same_name(r->sent_topic, m->topic, m->topic_len) && r->base_hash == base) {
            return r;
        }
    }
    return NULL;
}

void shmq_journal_free(shmq_journal_t *j)
{
    free(j->recs);
    memset(j, 0, sizeof(*j));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zero[JOURNAL_PAGE];
    while (n > 0) {
        size_t k = n < sizeof(zero) ? n : sizeof(zero);
        if (memcmp(p, zero, k) != 0) {
            return false;
        }
        p += k;
        n -= k;
    }
    return true;
}

int64_t shmq_journal_zero_stale(shmq_commitlog_t *cl, int64_t from, int64_t len)
{
    int64_t seg = (int64_t)cl->q.seg_size;
    int64_t end = from + len, pos = from, zeroed = 0;
    while (pos < end) {
        shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, pos);
        if (mf == NULL) {
            break; /* no segment there: nothing was written */
        }
        int64_t stop = mf->start_offset + seg < end ? mf->start_offset + seg : end;
        while (pos < stop) {
            int64_t next = (pos / JOURNAL_PAGE + 1) * JOURNAL_PAGE;
            if (next > stop) {
                next = stop;
            }
            uint8_t *p = mf->base + (pos - mf->start_offset);
            /* Read first: clean pages stay clean (no writeback for nothing). */
            if (!all_zero(p, (size_t)(next - pos))) {
                memset(p, 0, (size_t)(next - pos));
                zeroed += next - pos;
            }
            pos = next;
        }
    }
    return zeroed;
}
