/*
 * The writer's journal (see journal.h): the records of a batch a killed
 * writer was in, matched by UNIQ_KEY, and the zeroing of what its
 * unpublished appends left after wrote.
 */
#include "journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shmq/errors.h"

#define JOURNAL_PAGE 4096

static int rec_add(shmq_journal_t *j, const shmq_record_t *r, const char *key, size_t klen)
{
    if (klen == 0 || klen >= SHMQ_UNIQ_KEY_MAX) {
        return 0; /* not a key a producer of ours wrote */
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
    e->used = false;
    e->queue_id = r->queue_id;
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

shmq_journal_rec_t *shmq_journal_find(shmq_journal_t *j, const char *key, size_t len,
                                      int32_t queue_id)
{
    for (size_t i = 0; i < j->count; i++) {
        shmq_journal_rec_t *r = &j->recs[i];
        if (!r->used && r->queue_id == queue_id && strlen(r->key) == len &&
            memcmp(r->key, key, len) == 0) {
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
