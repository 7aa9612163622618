/*
 * shmqctl verify: check a store's CommitLog and ConsumeQueues against each
 * other, and its other files (verify_meta.c), read-only.
 *
 * The CommitLog and each ConsumeQueue are opened on their own, read-only, so
 * that a damaged queue is reported as a problem instead of stopping the run.
 *
 * Pass 1 walks every CommitLog segment straight from its mapping: every
 * record is decoded with all checks (body CRC, the whole-record __CRC32#
 * when present, physical offset; a properties end a few bits from a
 * __CRC32# tail, or a 0x00 byte in the properties, is damage, as recovery
 * and consumers count it: shmq_record_check_unverified); a blank record must carry
 * the exact rest of its segment and not start one; after the end of the data every byte of the log
 * must be zero.  Each normal record (transaction type NOT or COMMIT) is looked up in its queue: its
 * unit must exist and point back at it.
 *
 * Pass 2 walks every ConsumeQueue found under consumequeue/<topic>/<qid>:
 * units are valid and in order, each points at a record inside the log with
 * the same size, topic, queue id, queue offset and tagsCode; nothing follows
 * the queue's end; its max offset is 1 + the largest queue offset among its
 * records.
 *
 * Then config/ JSON files (as the broker would load them), the checkpoint
 * (against the log) and the IndexFiles (against the records): verify_meta.c.
 *
 * A running store is checked as of a snapshot: the positions its control
 * block published when verify started (live_snapshot()).  Records from
 * wrote on, units from each queue's max offset on, and records not yet
 * dispatched then are what the store is writing: they are not checked, nor
 * is the log after wrote or a queue after its max offset.  Everything below
 * the snapshot is checked as on a stopped store.
 *
 * Problems are printed on stdout naming the file and the offset inside it
 * (the first 100; the rest are counted), notes (states that may be
 * intended) too.  Exit 0 when there is no problem, 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "verify.h"

#define VERIFY_MAX_SHOWN  100
#define LIVE_ATTACH_TRIES 50 /* 100 ms apart: a store that is starting */
#define UNIT_BLANK_SIZE   0x7FFFFFFF

void verify_problem(verify_t *v, const char *fmt, ...)
{
    va_list ap;
    if (++v->problems > VERIFY_MAX_SHOWN) {
        return;
    }
    shmqctl_progress_clear(&v->prog);
    fputs("problem: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

void verify_note(verify_t *v, const char *fmt, ...)
{
    va_list ap;
    if (++v->notes > VERIFY_MAX_SHOWN) {
        return;
    }
    shmqctl_progress_clear(&v->prog);
    fputs("note: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- queue table --------------------------------------------------------- */

static uint64_t vq_hash(const char *topic, size_t len, int32_t qid)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)topic[i]) * 1099511628211ULL;
    }
    return (h ^ (uint64_t)(uint32_t)qid) * 0x9E3779B97F4A7C15ULL;
}

static int vq_grow(verify_t *v)
{
    size_t ncap = v->cap ? v->cap * 2 : 64;
    vq_t **nt = calloc(ncap, sizeof(*nt));
    if (!nt) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < v->cap; i++) {
        vq_t *q = v->tab[i];
        if (q) {
            size_t j = vq_hash(q->topic, q->topic_len, q->qid) & (ncap - 1);
            while (nt[j]) {
                j = (j + 1) & (ncap - 1);
            }
            nt[j] = q;
        }
    }
    free(v->tab);
    v->tab = nt;
    v->cap = ncap;
    return 0;
}

vq_t *verify_queue_get(verify_t *v, const char *topic, size_t len, int32_t qid, bool create)
{
    size_t j;
    vq_t *q;

    if (len > SHMQ_TOPIC_MAX_ANY) {
        return NULL;
    }
    if (v->cap) {
        j = vq_hash(topic, len, qid) & (v->cap - 1);
        while ((q = v->tab[j]) != NULL) {
            if (q->qid == qid && q->topic_len == len && !memcmp(q->topic, topic, len)) {
                return q;
            }
            j = (j + 1) & (v->cap - 1);
        }
    }
    if (!create) {
        return NULL;
    }
    if ((v->n + 1) * 2 > v->cap && vq_grow(v) < 0) {
        return NULL;
    }
    q = calloc(1, sizeof(*q));
    if (!q) {
        return NULL;
    }
    memcpy(q->topic, topic, len);
    q->topic_len = (uint32_t)len;
    q->qid = qid;
    q->first_rec_phys = -1;
    q->max_rec_qoff = -1;
    q->live_max = -1;
    j = vq_hash(topic, len, qid) & (v->cap - 1);
    while (v->tab[j]) {
        j = (j + 1) & (v->cap - 1);
    }
    v->tab[j] = q;
    v->n++;
    return q;
}

static int vq_cmp(const void *x, const void *y)
{
    const vq_t *a = *(vq_t *const *)x, *b = *(vq_t *const *)y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->qid > b->qid) - (a->qid < b->qid);
}

/* Open every consumequeue/<topic>/<qid> (read-only). */
static int load_queues(verify_t *v)
{
    const char *root = v->a->cfg.store_path_root_dir;
    size_t cq_size = shmq_cq_file_size((size_t)v->a->cfg.mapped_file_size_consume_queue);
    char dir[PATH_MAX + 16], tdir[PATH_MAX + 300];
    DIR *d, *td;
    struct dirent *e, *qe;

    snprintf(dir, sizeof(dir), "%s/consumequeue", root);
    d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : -errno;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) {
            continue;
        }
        snprintf(tdir, sizeof(tdir), "%s/%s", dir, e->d_name);
        if (stat(tdir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
            strlen(e->d_name) > SHMQ_TOPIC_MAX_ANY) {
            verify_problem(v, "unexpected entry %s in consumequeue/", tdir);
            continue;
        }
        td = opendir(tdir);
        if (!td) {
            verify_problem(v, "cannot list %s: %s", tdir, strerror(errno));
            continue;
        }
        while ((qe = readdir(td)) != NULL) {
            int64_t qid;
            vq_t *q;
            int rc;
            if (qe->d_name[0] == '.') {
                continue;
            }
            if (shmqctl_parse_int(qe->d_name, 0, INT32_MAX, false, &qid) < 0) {
                verify_problem(v, "unexpected entry %s/%s: not a queue id", tdir, qe->d_name);
                continue;
            }
            q = verify_queue_get(v, e->d_name, strlen(e->d_name), (int32_t)qid, true);
            if (!q || !(q->cq = calloc(1, sizeof(*q->cq)))) {
                closedir(td);
                closedir(d);
                return -ENOMEM;
            }
            shmq_error_clear();
            rc = shmq_cq_open(q->cq, root, e->d_name, (int32_t)qid, cq_size, SHMQ_MF_READONLY);
            if (rc < 0) {
                verify_problem(v, "consumequeue %s/%d: cannot open %s/%s: %s%s%s", q->topic, q->qid,
                               tdir, qe->d_name, shmq_strerror(rc),
                               shmq_error_detail()[0] ? ": " : "", shmq_error_detail());
                free(q->cq);
                q->cq = NULL;
                q->open_failed = true;
            }
        }
        closedir(td);
    }
    closedir(d);
    return 0;
}

/* ---- a running store: the snapshot ------------------------------------------- */

/*
 * Attach read-only to the store's control block if the store runs (its
 * master alive): v->live.  0 also when it does not run; an error when it is
 * still starting after a few seconds or cannot be attached.
 */
static int live_attach(verify_t *v)
{
    const char *root = v->a->cfg.store_path_root_dir;
    int rc = -EAGAIN;
    for (int i = 0; i < LIVE_ATTACH_TRIES && rc == -EAGAIN; i++) {
        if (i > 0) {
            usleep(100000);
        }
        shmq_error_clear();
        rc = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &v->ctl);
    }
    if (rc == SHMQ_E_NOT_FOUND) {
        return 0; /* stopped */
    }
    if (rc == -EAGAIN) {
        shmqctl_err("store %s is starting: run verify once it runs, or on the stopped store", root);
        return rc;
    }
    if (rc < 0) {
        shmqctl_fail(rc, "cannot attach to the control block of the store at %s", root);
        return rc;
    }
    if (!shmqctl_master_alive(&v->ctl)) {
        shmq_ctl_detach(&v->ctl);
        return 0; /* a control block its master left behind: the store is stopped */
    }
    v->live = true;
    return 0;
}

/*
 * Take the snapshot: the published positions, once, in an order that makes
 * them agree: dispatched, then each queue's max offset (the dispatcher
 * publishes those before dispatched, so every record below dispatched has
 * its unit below them), then cq_flushed, flushed and wrote (every unit
 * below a max offset points at a record below wrote).  After the
 * checkpoint is read: its offsets lie below wrote.
 */
static int live_snapshot(verify_t *v)
{
    const shmq_ctl_block_t *b = v->ctl.blk;
    v->live_dispatched = shmq_ctl_load(&b->dispatched);
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_QUEUES; i++) {
        const shmq_ctl_queue_t *e = &b->queues[i];
        /* Acquire: pairs with the inserter's release; the key fields are complete. */
        if (atomic_load_explicit(&e->state, memory_order_acquire) != SHMQ_ENTRY_ACTIVE ||
            e->topic_len == 0 || e->topic_len > SHMQ_TOPIC_MAX_ANY) {
            continue;
        }
        vq_t *q = verify_queue_get(v, e->topic, e->topic_len, e->queue_id, true);
        if (q == NULL) {
            return -ENOMEM;
        }
        /* Acquire: pairs with the dispatcher's release; the units below it are written. */
        q->live_max = atomic_load_explicit(&e->max_offset, memory_order_acquire);
    }
    v->live_cq_flushed = shmq_ctl_load(&b->cq_flushed);
    v->live_flushed = shmq_ctl_load(&b->flushed);
    v->live_wrote = shmq_ctl_load(&b->wrote);
    fprintf(stderr,
            "shmqctl: note: the store runs: checking what it had published at the start: the log "
            "below wrote %lld (flushed %lld, dispatched %lld, cq_flushed %lld) and each queue "
            "below its max offset then\n",
            (long long)v->live_wrote, (long long)v->live_flushed, (long long)v->live_dispatched,
            (long long)v->live_cq_flushed);
    return 0;
}

bool verify_live_queue_max(verify_t *v, const char *topic, int32_t qid, int64_t *max)
{
    if (!v->live) {
        return false;
    }
    const shmq_ctl_queue_t *e = shmq_ctl_queue_find(&v->ctl, topic, strlen(topic), qid);
    if (e == NULL) {
        return false;
    }
    /* Acquire: pairs with the dispatcher's release. */
    *max = atomic_load_explicit(&e->max_offset, memory_order_acquire);
    return true;
}

/* ---- pass 1: the CommitLog ------------------------------------------------- */

/* Cross-check one record with its queue's unit. */
static void record_account(verify_t *v, const shmq_record_t *r, const char *path, size_t rel)
{
    int32_t tx = r->sysflag & SHMQ_SYSFLAG_TX_MASK;
    shmq_cq_unit_t u;
    vq_t *q;

    v->records++;
    v->bytes += r->total_size;
    verify_checkpoint_record(v, r->phys_offset, r->total_size, r->store_ts);
    if ((tx != SHMQ_SYSFLAG_TX_NOT && tx != SHMQ_SYSFLAG_TX_COMMIT) ||
        (r->sysflag & SHMQ_SYSFLAG_INNER_BATCH)) {
        return; /* no ConsumeQueue unit (inner batches use batchconsumequeue) */
    }
    q = verify_queue_get(v, r->topic, r->topic_len, r->queue_id, true);
    if (!q) {
        verify_problem(
            v, "file %s offset %zu: record at phys %lld: topic of %u bytes (or out of memory)",
            path, rel, (long long)r->phys_offset, (unsigned)r->topic_len);
        return;
    }
    if (v->live && r->queue_offset >= q->live_max && r->phys_offset >= v->live_dispatched) {
        return; /* not dispatched in the snapshot: its unit may be being written */
    }
    /* A store that stopped without closing: a record past the checkpoint's mark, at or past
     * its queue's max offset, was not dispatched yet when it stopped (recovery adds its
     * unit).  A unit missing below the max offset is a hole, counted below. */
    if (v->unclean && q->cq != NULL && (!v->cp_read || r->phys_offset >= v->cp.confirm_phys) &&
        r->queue_offset >= shmq_cq_max_offset(q->cq)) {
        if (v->undispatched++ == 0) {
            v->first_undispatched = r->phys_offset;
        }
        return;
    }
    q->records++;
    if (q->first_rec_phys < 0) {
        q->first_rec_phys = r->phys_offset;
    }
    if (r->queue_offset > q->max_rec_qoff) {
        q->max_rec_qoff = r->queue_offset;
    }
    if (!q->cq) {
        return; /* reported once per queue in pass 2 */
    }
    if (shmq_cq_read(q->cq, r->queue_offset, &u) < 0) {
        if (q->missing++ == 0) {
            q->first_missing_qoff = r->queue_offset;
            q->first_missing_phys = r->phys_offset;
        }
        return;
    }
    if (u.phys_offset != r->phys_offset) {
        verify_problem(
            v,
            "file %s offset %zu: record at phys %lld (%s/%d queue offset %lld) is not the one "
            "its unit points at (phys %lld)",
            path, rel, (long long)r->phys_offset, q->topic, q->qid, (long long)r->queue_offset,
            (long long)u.phys_offset);
    }
}

/* Report non-zero bytes in buf (offset rel in file path) after the end of the log. */
static void check_zero(verify_t *v, const char *path, const uint8_t *buf, size_t rel, size_t len)
{
    int64_t nz = shmqctl_first_nonzero(buf, len);
    if (nz >= 0) {
        verify_problem(v, "garbage after end of log at file %s offset %lld", path,
                       (long long)(rel + (size_t)nz));
    }
}

/*
 * A store that was not closed cleanly: is what lies from rel of segment mf to
 * the segment's last non-zero byte an append the stop tore?  The writer
 * places a record's body before its header, and a crash can stop it anywhere
 * in a record: zeros where the header goes with the body after them, or a
 * header whose CRCs were not written yet.  It is, when nothing there was
 * confirmed flushed (at or past the checkpoint's confirmPhyOffset), it is no
 * longer than recovery's torn window (recovery clears exactly those bytes),
 * and no record or blank starts after rel (damage in the middle of the log is
 * followed by them).  Sets *len to the bytes it spans.
 */
static bool torn_append(const verify_t *v, const shmq_mapped_file_t *mf, size_t rel, size_t *len)
{
    int64_t phys = mf->start_offset + (int64_t)rel;
    if (!v->unclean || (v->cp_read && phys < v->cp.confirm_phys)) {
        return false;
    }
    int64_t end = shmq_commitlog_last_nonzero(v->cl, phys, mf->start_offset + (int64_t)mf->size);
    *len = (size_t)(end - phys);
    return end - phys <= shmq_store_torn_window(&v->a->cfg) &&
           !shmq_commitlog_record_in(v->cl, phys + 1, end, true);
}

/* The end of the data at rel of segment mf, if what starts there is a torn append (a note). */
static bool torn_end(verify_t *v, const shmq_mapped_file_t *mf, size_t rel)
{
    size_t len;
    if (!torn_append(v, mf, rel, &len)) {
        return false;
    }
    v->data_end = mf->start_offset + (int64_t)rel;
    verify_note(v,
                "file %s offset %zu: %zu bytes at the end of the log (phys %lld) are an append "
                "torn when the store stopped without closing; recovery clears them",
                mf->path, rel, len, (long long)v->data_end);
    return true;
}

/* Walk one segment; returns true when the end of the data was found in it. */
static bool scan_segment(verify_t *v, const shmq_mapped_file_t *mf, bool last)
{
    size_t rel = 0;
    shmq_record_t rec;
    int rc;

    while (rel < mf->size) {
        size_t avail = mf->size - rel;
        int64_t phys = mf->start_offset + (int64_t)rel;

        if (v->live && phys >= v->live_wrote) {
            v->data_end = phys; /* the snapshot's end: the writer is appending here */
            return true;
        }
        shmq_error_clear();
        rc = shmq_record_decode(mf->base + rel, avail, phys, SHMQ_DECODE_CHECK_ALL, &rec);
        if (rc > 0) {
            /* A damaged end (1: no __CRC32# where the checkpoint's marker says every record
             * has one; 2: a malformed tail; 3: a __CRC32# before the end), unless the record
             * is an append the stop tore. */
            int damage = 0;
            char detail[512];
            if (!rec.has_record_crc && v->cp_read && v->cp.crc_marker &&
                phys >= v->cp.crc_tail_from) {
                damage = 1;
            } else if (!rec.has_record_crc && shmq_record_check_unverified(&rec) < 0) {
                damage = 2;
                snprintf(detail, sizeof(detail), "%s", shmq_error_detail());
            } else if (!rec.has_record_crc && memmem(rec.props, rec.props_len, SHMQ_PROP_CRC32,
                                                     sizeof(SHMQ_PROP_CRC32) - 1)) {
                damage = 3;
            }
            if (damage != 0 && torn_end(v, mf, rel)) {
                return true;
            }
            if (damage == 1) {
                verify_problem(v,
                               "file %s offset %zu: record at phys %lld has no %s property, "
                               "which every record from %lld on carries (the checkpoint's "
                               "record-CRC marker): its properties are damaged",
                               mf->path, rel, (long long)phys, SHMQ_PROP_CRC32,
                               (long long)v->cp.crc_tail_from);
            } else if (damage == 2) {
                /* The decoder takes a malformed __CRC32# tail for an absent one; a tail a
                 * few bits from one, or zeroed bytes in the properties, is damage, as
                 * recovery and consumers count it (formats.md). */
                verify_problem(v, "file %s offset %zu: %s (torn or overwritten record end)",
                               mf->path, rel, detail);
            } else if (damage == 3) {
                verify_problem(v,
                               "file %s offset %zu: record at phys %lld: a %s property that does "
                               "not end the properties (overwritten record end)",
                               mf->path, rel, (long long)phys, SHMQ_PROP_CRC32);
            }
            record_account(v, &rec, mf->path, rel);
            rel += (size_t)rc;
            if (mf->size - rel < SHMQ_BLANK_MIN_LEN) {
                verify_problem(
                    v,
                    "file %s offset %zu: record at phys %lld ends %zu bytes before the end of "
                    "its segment (at least %d needed for the blank record)",
                    mf->path, rel - (size_t)rc, (long long)phys, mf->size - rel,
                    SHMQ_BLANK_MIN_LEN);
                break;
            }
            if ((v->records & 1023) == 0) {
                shmqctl_progress_update(&v->prog, phys - v->cl_min,
                                        shmq_mfq_end_offset(&v->cl->q) - v->cl_min, "bytes");
            }
            continue;
        }
        if (rc == 0) {
            v->blanks++;
            verify_checkpoint_record(v, phys, (int64_t)avail, -1);
            if (rel == 0) {
                verify_problem(v, "file %s offset 0: blank record at the start of a segment",
                               mf->path);
            }
            if ((size_t)(uint32_t)rec.total_size != avail) {
                verify_problem(
                    v,
                    "file %s offset %zu: blank record of length %d, expected %zu (the rest "
                    "of the segment)",
                    mf->path, rel, (int)rec.total_size, avail);
            }
            break;
        }
        if (shmqctl_first_nonzero(mf->base + rel, avail < 8 ? avail : 8) < 0) {
            /* Zero tail: the end of the data.  Everything after it must be zero. */
            v->data_end = phys;
            if (v->live) {
                verify_problem(v,
                               "file %s offset %zu: zeros at phys %lld, below the wrote position "
                               "%lld the store published: records it stored are missing",
                               mf->path, rel, (long long)phys, (long long)v->live_wrote);
                return true;
            }
            if (!torn_end(v, mf, rel)) {
                check_zero(v, mf->path, mf->base + rel, rel, avail);
            }
            return true;
        }
        {
            char detail[512];
            shmq_record_t r2;
            int rc2 = -1;
            snprintf(detail, sizeof(detail), "%s", shmq_error_detail());
            if (torn_end(v, mf, rel)) {
                return true;
            }
            /*
             * A CRC or position mismatch leaves the record's structure
             * sound: step over it (a CRC failure still counts for its
             * queue) and go on.  Anything else: no way to find the next
             * record in this segment.
             */
            if (rc == SHMQ_E_BODY_CRC || rc == SHMQ_E_RECORD_CRC) {
                rc2 = shmq_record_decode(mf->base + rel, avail, phys, SHMQ_DECODE_CHECK_PHYS, &r2);
            } else if (rc == SHMQ_E_PHYS_OFFSET) {
                rc2 = shmq_record_decode(mf->base + rel, avail, phys, 0, &r2);
            }
            verify_problem(v, "file %s offset %zu: record at phys %lld: %s (error %d)%s%s%s",
                           mf->path, rel, (long long)phys, shmq_strerror(rc), rc,
                           detail[0] ? ": " : "", detail,
                           rc2 > 0 ? "" : "; rest of the segment not checked");
            if (rc2 <= 0) {
                if (last) {
                    v->data_end = phys;
                    return true;
                }
                break;
            }
            if (rc == SHMQ_E_PHYS_OFFSET) {
                v->records++;
                v->bytes += rc2;
                verify_checkpoint_record(v, phys, rc2, r2.store_ts);
            } else {
                record_account(v, &r2, mf->path, rel);
            }
            rel += (size_t)rc2;
        }
    }
    v->data_end = mf->start_offset + (int64_t)mf->size;
    return false;
}

static void scan_commitlog(verify_t *v)
{
    const shmq_mfq_t *q = &v->cl->q;
    bool ended = false;

    v->cl_min = shmq_mfq_min_offset(q);
    v->data_end = v->cl_min;
    for (size_t s = 0; s < q->count; s++) {
        const shmq_mapped_file_t *mf = q->segs[s];
        if (ended) {
            if (!v->live) { /* a running store: files past wrote are being written */
                check_zero(v, mf->path, mf->base, 0, mf->size);
            }
            continue;
        }
        ended = scan_segment(v, mf, s + 1 == q->count);
    }
    if (v->live && v->data_end < v->live_wrote && v->cl_min < v->live_wrote) {
        verify_problem(v,
                       "the CommitLog ends at %lld, below the wrote position %lld the store "
                       "published",
                       (long long)v->data_end, (long long)v->live_wrote);
    }
    if (v->undispatched > 0) {
        verify_note(v,
                    "%lld record%s from phys %lld on %s no unit in %s queue yet: the store "
                    "stopped without closing before it dispatched %s; recovery adds the units",
                    (long long)v->undispatched, v->undispatched == 1 ? "" : "s",
                    (long long)v->first_undispatched, v->undispatched == 1 ? "has" : "have",
                    v->undispatched == 1 ? "its" : "their", v->undispatched == 1 ? "it" : "them");
    }
}

/* ---- pass 2: the ConsumeQueues ----------------------------------------------- */

/* File path and offset inside it of queue offset qoff. */
static void unit_where(const vq_t *q, int64_t qoff, char *out, size_t len)
{
    int64_t b = qoff * SHMQ_CQ_UNIT_SIZE;
    const shmq_mapped_file_t *mf = shmq_mfq_find(&q->cq->q, b);
    if (mf) {
        snprintf(out, len, "file %s offset %lld", mf->path, (long long)(b - mf->start_offset));
    } else {
        snprintf(out, len, "consumequeue %s/%d byte %lld", q->topic, q->qid, (long long)b);
    }
}

static void check_unit(verify_t *v, const vq_t *q, int64_t qoff, const shmq_cq_unit_t *u,
                       int64_t *prev_end)
{
    const shmq_commitlog_t *cl = v->cl;
    shmq_record_t rec;
    char where[PATH_MAX + 64];
    int64_t want_tags;
    int rc;

    if (u->phys_offset < 0 || u->size <= 0 || u->size == UNIT_BLANK_SIZE) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(
            v, "%s: %s/%d unit %lld is empty or blank (phys %lld size %d): a gap in the queue",
            where, q->topic, q->qid, (long long)qoff, (long long)u->phys_offset, (int)u->size);
        return;
    }
    if (u->phys_offset < *prev_end) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(v,
                       "%s: %s/%d unit %lld points at phys %lld, before the previous unit's record "
                       "(ends at %lld)",
                       where, q->topic, q->qid, (long long)qoff, (long long)u->phys_offset,
                       (long long)*prev_end);
    }
    *prev_end = u->phys_offset + u->size;
    if (u->phys_offset < v->cl_min || u->phys_offset + u->size > v->data_end) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(
            v, "%s: %s/%d unit %lld points at phys %lld size %d, outside the log [%lld, %lld)",
            where, q->topic, q->qid, (long long)qoff, (long long)u->phys_offset, (int)u->size,
            (long long)v->cl_min, (long long)v->data_end);
        return;
    }
    /* CRCs were checked in pass 1; here only the structure and the fields. */
    rc = shmqctl_record_at(cl, u->phys_offset, SHMQ_DECODE_CHECK_PHYS, &rec);
    if (rc <= 0) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(v, "%s: %s/%d unit %lld points at phys %lld where no record decodes (%s)",
                       where, q->topic, q->qid, (long long)qoff, (long long)u->phys_offset,
                       rc == 0 ? "blank record" : shmq_strerror(rc));
        return;
    }
    if (rec.total_size != u->size || rec.topic_len != q->topic_len ||
        memcmp(rec.topic, q->topic, q->topic_len) != 0 || rec.queue_id != q->qid ||
        rec.queue_offset != qoff) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(
            v,
            "%s: %s/%d unit %lld (phys %lld size %d) does not match its record (size %d, "
            "topic %.*s, queue %d, queue offset %lld)",
            where, q->topic, q->qid, (long long)qoff, (long long)u->phys_offset, (int)u->size,
            (int)rec.total_size, (int)(rec.topic_len > 255 ? 255 : rec.topic_len), rec.topic,
            (int)rec.queue_id, (long long)rec.queue_offset);
        return;
    }
    want_tags = shmqctl_expected_tags_code(&v->a->cfg, &rec);
    if (u->tags_code != want_tags) {
        unit_where(q, qoff, where, sizeof(where));
        verify_problem(v, "%s: %s/%d unit %lld has tagsCode %lld, its record's is %lld", where,
                       q->topic, q->qid, (long long)qoff, (long long)u->tags_code,
                       (long long)want_tags);
    }
}

/* Bytes after the queue's end must be zero: anything else is a gap or a torn unit. */
static void check_queue_tail(verify_t *v, const vq_t *q)
{
    const shmq_mfq_t *mq = &q->cq->q;
    int64_t end = q->cq->write_pos;

    for (size_t s = 0; s < mq->count; s++) {
        const shmq_mapped_file_t *mf = mq->segs[s];
        int64_t from = end > mf->start_offset ? end - mf->start_offset : 0;
        int64_t nz;
        if (from >= (int64_t)mf->size) {
            continue;
        }
        nz = shmqctl_first_nonzero(mf->base + from, mf->size - (size_t)from);
        if (nz >= 0) {
            verify_problem(v,
                           "file %s offset %lld: %s/%d has data after the end of the queue (max "
                           "offset %lld): a gap or a torn unit",
                           mf->path, (long long)(from + nz), q->topic, q->qid,
                           (long long)(end / SHMQ_CQ_UNIT_SIZE));
            return;
        }
    }
}

static void check_queue(verify_t *v, const vq_t *q, int64_t *done, int64_t total)
{
    char where[PATH_MAX + 64];
    int64_t min, max, prev_end = -1;

    if (!q->cq) {
        if (!q->open_failed && q->records > 0) {
            shmqctl_cl_seg_path(v->cl, q->first_rec_phys, where, sizeof(where));
            verify_problem(
                v,
                "%s/%d: %lld records in the CommitLog (first at phys %lld, file %s) but no "
                "consume queue %s/consumequeue/%s/%d",
                q->topic, q->qid, (long long)q->records, (long long)q->first_rec_phys, where,
                v->a->cfg.store_path_root_dir, q->topic, q->qid);
        }
        return;
    }
    /* Units whose records were cleaned lie below the queue's corrected minimum (§7.5). */
    if (v->cl_min > 0) {
        shmq_cq_correct_min(q->cq, v->cl_min); /* read-only: computes, deletes nothing */
    }
    min = shmq_cq_min_offset(q->cq);
    max = shmq_cq_max_offset(q->cq);
    if (v->live) {
        int64_t bound = q->live_max > 0 ? q->live_max : 0;
        max = max < bound ? max : bound; /* units from the snapshot's max on are being written */
    }
    for (int64_t qoff = min; qoff < max; qoff++) {
        shmq_cq_unit_t u;
        int rc = shmq_cq_read(q->cq, qoff, &u);
        if (rc < 0) {
            unit_where(q, qoff, where, sizeof(where));
            verify_problem(v, "%s: %s/%d unit %lld cannot be read: %s", where, q->topic, q->qid,
                           (long long)qoff, shmq_strerror(rc));
            break;
        }
        v->units++;
        check_unit(v, q, qoff, &u, &prev_end);
        if ((++*done & 1023) == 0) {
            shmqctl_progress_update(&v->prog, *done, total, "units");
        }
    }
    if (!v->live) {
        check_queue_tail(v, q);
    }
    if (q->records > 0 && max != q->max_rec_qoff + 1) {
        verify_problem(
            v,
            "%s/%d: max offset %lld, but its records in the CommitLog go up to queue offset "
            "%lld (expected max %lld)",
            q->topic, q->qid, (long long)max, (long long)q->max_rec_qoff,
            (long long)q->max_rec_qoff + 1);
    }
    if (q->missing > 0) {
        size_t avail;
        const shmq_mapped_file_t *seg = NULL;
        shmqctl_cl_seg_path(v->cl, q->first_missing_phys, where, sizeof(where));
        shmqctl_cl_bytes(v->cl, q->first_missing_phys, &avail, &seg);
        verify_problem(
            v,
            "%s/%d: %lld records have no unit in the queue (first: queue offset %lld, record "
            "at file %s offset %lld)",
            q->topic, q->qid, (long long)q->missing, (long long)q->first_missing_qoff, where,
            seg ? (long long)(q->first_missing_phys - seg->start_offset) : -1LL);
    }
}

static int check_queues(verify_t *v)
{
    vq_t **list = malloc((v->n ? v->n : 1) * sizeof(*list));
    int64_t total = 0, done = 0;
    size_t k = 0;

    if (!list) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < v->cap; i++) {
        if (v->tab[i]) {
            list[k++] = v->tab[i];
            if (v->tab[i]->cq) {
                total += shmq_cq_max_offset(v->tab[i]->cq) - shmq_cq_min_offset(v->tab[i]->cq);
            }
        }
    }
    qsort(list, k, sizeof(*list), vq_cmp);
    v->prog.label = "verify consumequeues";
    for (size_t i = 0; i < k; i++) {
        check_queue(v, list[i], &done, total);
    }
    free(list);
    return 0;
}

static void verify_free(verify_t *v)
{
    for (size_t i = 0; i < v->cap; i++) {
        vq_t *q = v->tab[i];
        if (q) {
            if (q->cq) {
                shmq_cq_close(q->cq);
                free(q->cq);
            }
            free(q);
        }
    }
    free(v->tab);
}

int shmqctl_cmd_verify(shmqctl_args_t *a)
{
    verify_t v;
    int rc, ret;

    struct stat sb;
    if (stat(a->cfg.store_path_root_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        shmqctl_err("no store at %s", a->cfg.store_path_root_dir);
        return SHMQCTL_EXIT_FAIL;
    }
    memset(&v, 0, sizeof(v));
    v.a = a;
    v.cl = calloc(1, sizeof(*v.cl));
    if (!v.cl) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    if (live_attach(&v) < 0) {
        free(v.cl);
        return SHMQCTL_EXIT_FAIL;
    }
    v.unclean = !v.live && shmq_abort_exists(a->cfg.store_path_root_dir);
    if (v.unclean) {
        fprintf(stderr,
                "shmqctl: note: %s/abort exists: the store is open or was not closed "
                "cleanly ('shmqctl recover' repairs a stopped store)\n",
                a->cfg.store_path_root_dir);
    }
    shmqctl_progress_init(&v.prog, "verify commitlog");
    verify_checkpoint_read(&v);
    /* The snapshot, then the queues, then the log: the files opened hold all it names,
     * and a queue file the cleaner deletes meanwhile is already open (it deletes the
     * CommitLog's files first). */
    rc = v.live ? live_snapshot(&v) : 0;
    if (rc == 0) {
        rc = load_queues(&v);
    }
    if (rc == 0 && shmqctl_log_open(a, v.cl) < 0) {
        verify_free(&v);
        if (v.live) {
            shmq_ctl_detach(&v.ctl);
        }
        free(v.cl);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc == 0) {
        scan_commitlog(&v);
        rc = check_queues(&v);
    }
    if (rc == 0) {
        verify_meta(&v);
    }
    shmqctl_progress_clear(&v.prog);
    if (rc < 0) {
        shmqctl_err("verify: %s", shmq_strerror(rc));
        ret = SHMQCTL_EXIT_FAIL;
    } else if (v.problems > 0) {
        if (v.problems > VERIFY_MAX_SHOWN) {
            printf("... and %lld more problems\n", (long long)(v.problems - VERIFY_MAX_SHOWN));
        }
        printf("verify: FAILED: %lld problems; %lld records (%lld bytes) in %zu CommitLog files, "
               "%zu queues, %lld units, %lld index files; %lld notes\n",
               (long long)v.problems, (long long)v.records, (long long)v.bytes, v.cl->q.count, v.n,
               (long long)v.units, (long long)v.files_index, (long long)v.notes);
        ret = SHMQCTL_EXIT_FAIL;
    } else {
        printf("verify: OK: %lld records (%lld bytes) in %zu CommitLog files, log [%lld, %lld), "
               "%zu queues, %lld units, %lld index files, config and checkpoint; %lld notes\n",
               (long long)v.records, (long long)v.bytes, v.cl->q.count, (long long)v.cl_min,
               (long long)v.data_end, v.n, (long long)v.units, (long long)v.files_index,
               (long long)v.notes);
        ret = SHMQCTL_EXIT_OK;
    }
    verify_free(&v);
    if (v.live) {
        shmq_ctl_detach(&v.ctl);
    }
    shmq_commitlog_close(v.cl);
    free(v.cl);
    return ret;
}
