/*
 * IndexFile recovery (see index_service.h): where a restarted indexer
 * resumes so that no message loses or repeats an entry, and the drop of files
 * not known durable after an unclean stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/index_service.h"
#include "shmq/errors.h"
#include "format/store_files.h"

/* ---- resume ------------------------------------------------------------------------------- */

/* Index (in svc->files) of the newest file holding an entry, or -1. */
static ssize_t newest_nonempty(const shmq_index_service_t *svc)
{
    for (size_t i = svc->count; i-- > 0;) {
        if (svc->files[i]->hdr.index_count > 1) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* The newest entry of the set; false when there is none. */
static bool newest_entry(const shmq_index_service_t *svc, shmq_index_entry_t *e)
{
    ssize_t i = newest_nonempty(svc);
    if (i < 0) {
        return false;
    }
    shmq_index_file_t *f = svc->files[i];
    return shmq_index_entry_read(f, f->hdr.index_count - 1, e) == 0;
}

typedef struct resume_state {
    shmq_index_service_t *svc;
    const shmq_commitlog_t *cl;
    shmq_index_resume_report_t *rep;
    bool *touched; /* per file: entries removed, end fields to recompute */
    size_t touched_cap;
    ssize_t bad; /* file found inconsistent, -1 none */
} resume_state_t;

/* Remove the newest entry of the set; SHMQ_E_CORRUPT sets rs->bad. */
static int pop_newest(resume_state_t *rs)
{
    ssize_t i = newest_nonempty(rs->svc);
    if (i < 0) {
        return SHMQ_E_RANGE;
    }
    int rc = shmq_index_file_pop(rs->svc->files[i], NULL);
    if (rc == SHMQ_E_CORRUPT) {
        rs->bad = i;
        return rc;
    }
    if (rc == 0) {
        rs->rep->entries_removed++;
        if ((size_t)i < rs->touched_cap) {
            rs->touched[i] = true;
        }
    }
    return rc;
}

static int64_t record_ts(const shmq_commitlog_t *cl, int64_t phys)
{
    shmq_record_t r;
    return shmq_commitlog_read(cl, phys, SHMQ_DECODE_CHECK_PHYS, &r) > 0 ? r.store_ts : -1;
}

/* Set the end fields of touched files (and the newest) from their last entry's record. */
static void fix_ends(resume_state_t *rs)
{
    shmq_index_service_t *svc = rs->svc;
    for (size_t i = 0; i < svc->count; i++) {
        shmq_index_file_t *f = svc->files[i];
        bool touched = (i < rs->touched_cap && rs->touched[i]) || i + 1 == svc->count;
        shmq_index_entry_t e;
        if (!touched || f->hdr.index_count <= 1 ||
            shmq_index_entry_read(f, f->hdr.index_count - 1, &e) != 0) {
            continue;
        }
        int64_t ts = record_ts(rs->cl, e.phys_offset);
        shmq_index_file_set_end(f, e.phys_offset, ts > 0 ? ts : f->hdr.end_ts);
    }
}

typedef struct hash_list {
    const shmq_record_t *r;
    int32_t *h;
    size_t n;
    size_t cap;
} hash_list_t;

static int collect_hash(void *arg, bool uniq, const char *key, size_t len)
{
    (void)uniq;
    hash_list_t *l = arg;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        int32_t *nh = realloc(l->h, nc * sizeof(*nh));
        if (!nh) {
            return -ENOMEM;
        }
        l->h = nh;
        l->cap = nc;
    }
    l->h[l->n++] = shmq_index_topic_key_hash(l->r->topic, l->r->topic_len, key, len);
    return 0;
}

/*
 * The entries of message p, newest first across files, compared with the
 * hashes its record should have (exp, in insertion order).  Returns how many
 * trailing entries name p; *match says whether they are exactly exp.
 */
static int32_t trailing_entries(const shmq_index_service_t *svc, int64_t p, const hash_list_t *exp,
                                bool *match)
{
    int32_t m = 0;
    *match = exp != NULL;
    for (size_t i = svc->count; i-- > 0;) {
        const shmq_index_file_t *f = svc->files[i];
        for (int32_t k = f->hdr.index_count - 1; k >= 1; k--) {
            shmq_index_entry_t e;
            if (shmq_index_entry_read(f, k, &e) != 0 || e.phys_offset != p) {
                return m;
            }
            if (*match) {
                ssize_t want = (ssize_t)exp->n - 1 - m;
                *match = want >= 0 && exp->h[want] == e.key_hash;
            }
            m++;
        }
    }
    return m;
}

/* One pass; SHMQ_E_CORRUPT with rs->bad set when a file must be rebuilt. */
static int resume_pass(resume_state_t *rs, int64_t log_end, int64_t log_min)
{
    shmq_index_service_t *svc = rs->svc;
    shmq_index_resume_report_t *rep = rs->rep;
    shmq_index_file_t *last = shmq_index_last(svc);
    if (last) {
        shmq_index_repair_t r;
        int rc = shmq_index_file_repair(last, &r);
        if (rc == SHMQ_E_CORRUPT) {
            rs->bad = (ssize_t)svc->count - 1;
        }
        if (rc < 0) {
            return rc;
        }
        rep->torn_slots += r.torn_slots;
    }
    /* Entries for records the log no longer holds (recovery cut its tail). */
    shmq_index_entry_t e;
    while (newest_entry(svc, &e) && e.phys_offset >= log_end) {
        int rc = pop_newest(rs);
        if (rc < 0) {
            return rc;
        }
    }
    if (!newest_entry(svc, &e)) {
        rep->pos = log_min;
        rep->last_phys = -1;
        return 0;
    }
    int64_t p = e.phys_offset;
    if (p < log_min) {
        rep->pos = log_min; /* the newest indexed message was cleaned */
        rep->last_phys = p;
        return 0;
    }
    shmq_record_t r;
    int size = shmq_commitlog_read(rs->cl, p, SHMQ_DECODE_CHECK_PHYS, &r);
    hash_list_t exp = {.r = &r};
    int rc = 0;
    if (size > 0 && shmq_index_record_indexed(&r)) {
        rc = shmq_index_foreach_key(r.props, r.props_len, collect_hash, &exp);
    }
    bool match = false;
    int32_t m = rc == 0 ? trailing_entries(svc, p, size > 0 ? &exp : NULL, &match) : 0;
    free(exp.h);
    if (rc < 0) {
        return rc;
    }
    if (size > 0 && match && (size_t)m == exp.n) {
        rep->pos = p + size;
        rep->last_phys = p;
        rep->last_complete = true;
        return 0;
    }
    /* Partly indexed (a kill between two keys): remove its entries, index it again. */
    for (int32_t i = 0; i < m; i++) {
        rc = pop_newest(rs);
        if (rc < 0) {
            return rc;
        }
    }
    rep->pos = p;
    rep->last_phys = newest_entry(svc, &e) ? e.phys_offset : -1;
    return 0;
}

int shmq_index_resume(shmq_index_service_t *svc, const shmq_commitlog_t *cl, int64_t log_end,
                      int64_t log_min, shmq_index_resume_report_t *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (svc->readonly) {
        return shmq_error_set(SHMQ_E_ARG, "index %s: resume on a read-only set", svc->dir);
    }
    resume_state_t rs = {.svc = svc, .cl = cl, .rep = rep, .bad = -1};
    int rc;
    for (;;) {
        free(rs.touched);
        rs.touched_cap = svc->count;
        rs.touched = calloc(svc->count + 1, sizeof(bool));
        if (!rs.touched) {
            return -ENOMEM;
        }
        rs.bad = -1;
        shmq_error_clear();
        rc = resume_pass(&rs, log_end, log_min);
        if (rc != SHMQ_E_CORRUPT || rs.bad < 0) {
            break;
        }
        /* A file that cannot be made consistent: it and every later one are rebuilt. */
        if (!rep->detail[0]) {
            snprintf(rep->detail, sizeof(rep->detail), "%s", shmq_error_detail());
        }
        rep->files_rebuilt += (int32_t)(svc->count - (size_t)rs.bad);
        rc = shmq_index_drop_from(svc, (size_t)rs.bad);
        if (rc < 0) {
            break;
        }
    }
    if (rc == 0) {
        fix_ends(&rs);
        svc->last_phys = rep->last_phys;
        if (rep->pos < log_min) {
            rep->pos = log_min;
        }
    }
    free(rs.touched);
    return rc;
}

/* ---- abnormal start ----------------------------------------------------------------------- */

int shmq_index_recover_abnormal(const shmq_config_t *cfg, shmq_index_abnormal_report_t *rep)
{
    memset(rep, 0, sizeof(*rep));
    char dir[PATH_MAX];
    shmq_index_dir(cfg, dir, sizeof(dir));
    shmq_checkpoint_t cp;
    int rc = shmq_checkpoint_read(cfg->store_path_root_dir, &cp);
    if (rc < 0) {
        return shmq_error_wrap(rc, "index recovery: reading the checkpoint");
    }
    rep->index_ts = cp.index_msg_ts;
    shmq_index_service_t svc;
    rc = shmq_index_open(&svc, dir, cfg->max_hash_slot_num, cfg->max_index_num, false);
    if (rc < 0) {
        return rc;
    }
    /* The first file that ends after the checkpoint's time, and every later one. */
    size_t first = svc.count;
    for (size_t i = 0; i < svc.count; i++) {
        shmq_index_header_t h;
        shmq_index_header_read(svc.files[i], &h);
        if (h.end_ts > cp.index_msg_ts) {
            first = i;
            break;
        }
    }
    rep->dropped = (int32_t)(svc.count - first);
    rc = shmq_index_drop_from(&svc, first);
    rep->kept = (int32_t)svc.count;
    /* The newest kept file is written again: only what ends before it stays durable. */
    int64_t ts = 0;
    shmq_index_file_t *last = shmq_index_last(&svc);
    if (last) {
        shmq_index_header_t h;
        shmq_index_header_read(last, &h);
        ts = h.end_ts - 1;
    }
    if (ts > cp.index_msg_ts) {
        ts = cp.index_msg_ts;
    }
    rep->new_index_ts = ts < 0 ? 0 : ts;
    shmq_index_close(&svc);
    if (rc == 0 && rep->new_index_ts != cp.index_msg_ts) {
        cp.index_msg_ts = rep->new_index_ts;
        rc = shmq_checkpoint_write(cfg->store_path_root_dir, &cp);
        if (rc < 0) {
            shmq_error_wrap(rc, "index recovery: writing the checkpoint");
        }
    }
    return rc;
}
