/*
 * The set of IndexFiles under <root>/index (see index_service.h): loading
 * and refreshing the set, the keys of a record, putting a record's entries
 * with rollover, the exactly-once resume of a restarted indexer, flushing,
 * the abnormal-start drop and the deletion of expired files.
 */
#include "store/index_service.h"

#include "base/clock.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq/errors.h"
#include "format/store_files.h"

#define ROLL_NAME_TRIES 1000

void shmq_index_dir(const shmq_config_t *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s/index", cfg->store_path_root_dir);
}

/* ---- the set of files ---------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted 17-digit names of dir (malloc'd array of malloc'd strings). */
static int list_names(const char *dir, bool remove_tmp, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            return 0;
        }
        return shmq_error_set(-errno, "cannot read index directory %s: %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (remove_tmp && len == SHMQ_INDEX_NAME_LEN + 4 &&
            strcmp(de->d_name + SHMQ_INDEX_NAME_LEN, ".tmp") == 0) {
            char p[PATH_MAX + 32];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p); /* a creation interrupted by a kill */
            continue;
        }
        if (!shmq_index_name_valid(de->d_name)) {
            continue;
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
            cap = nc;
        }
        names[cnt] = strdup(de->d_name);
        if (!names[cnt]) {
            rc = -ENOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc < 0) {
        for (size_t i = 0; i < cnt; i++) {
            free(names[i]);
        }
        free(names);
        return rc;
    }
    if (cnt > 1) {
        qsort(names, cnt, sizeof(*names), name_cmp);
    }
    *out = names;
    *n = cnt;
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

static int push_file(shmq_index_service_t *svc, shmq_index_file_t *f)
{
    if (svc->count == svc->cap) {
        size_t nc = svc->cap ? svc->cap * 2 : 8;
        shmq_index_file_t **nf = realloc(svc->files, nc * sizeof(*nf));
        if (!nf) {
            return -ENOMEM;
        }
        svc->files = nf;
        svc->cap = nc;
    }
    svc->files[svc->count++] = f;
    return 0;
}

/* Map dir/name; 1 if it was skipped (wrong size, unreadable), 0 when added. */
static int add_file(shmq_index_service_t *svc, const char *name)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", svc->dir, name);
    shmq_index_file_t *f = malloc(sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    int rc = shmq_index_file_open(f, path, svc->slot_num, svc->index_num, svc->readonly);
    if (rc == SHMQ_E_SEGMENT || rc == -ENOENT || rc == -EACCES) {
        free(f);
        svc->skipped++;
        return 1;
    }
    if (rc == 0) {
        rc = push_file(svc, f);
        if (rc == 0) {
            return 0;
        }
        shmq_index_file_close(f);
    }
    free(f);
    return rc;
}

int shmq_index_open(shmq_index_service_t *svc, const char *dir, int32_t slot_num, int32_t index_num,
                    bool readonly)
{
    memset(svc, 0, sizeof(*svc));
    svc->last_phys = -1;
    svc->slot_num = slot_num;
    svc->index_num = index_num;
    svc->readonly = readonly;
    if (slot_num <= 0 || index_num <= 1 ||
        shmq_index_file_size(slot_num, index_num) > (int64_t)INT32_MAX) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "index: maxHashSlotNum %d / maxIndexNum %d give no valid file size",
                              slot_num, index_num);
    }
    if (snprintf(svc->dir, sizeof(svc->dir), "%s", dir) >= (int)sizeof(svc->dir)) {
        return shmq_error_set(-ENAMETOOLONG, "index directory path too long: %s", dir);
    }
    if (!readonly) {
        int rc = shmq_file_mkdirs(dir);
        if (rc < 0) {
            return shmq_error_set(rc, "cannot create index directory %s: %s", dir, strerror(-rc));
        }
    }
    char **names;
    size_t n;
    int rc = list_names(dir, !readonly, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int a = add_file(svc, names[i]);
        rc = a < 0 ? a : 0;
    }
    free_names(names, n);
    if (rc < 0) {
        shmq_index_close(svc);
    }
    return rc;
}

void shmq_index_close(shmq_index_service_t *svc)
{
    for (size_t i = 0; i < svc->count; i++) {
        shmq_index_file_close(svc->files[i]);
        free(svc->files[i]);
    }
    free(svc->files);
    svc->files = NULL;
    svc->count = svc->cap = 0;
}

int shmq_index_refresh(shmq_index_service_t *svc)
{
    char **names;
    size_t n;
    int rc = list_names(svc->dir, false, &names, &n);
    if (rc < 0) {
        return rc;
    }
    shmq_index_file_t **old = svc->files;
    size_t old_n = svc->count, j = 0;
    bool changed = false;
    svc->files = NULL;
    svc->count = svc->cap = 0;
    svc->skipped = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        while (j < old_n && strcmp(old[j]->name, names[i]) < 0) {
            shmq_index_file_close(old[j]); /* removed */
            free(old[j++]);
            changed = true;
        }
        if (j < old_n && strcmp(old[j]->name, names[i]) == 0) {
            rc = push_file(svc, old[j]);
            if (rc == 0) {
                j++;
            }
            continue;
        }
        int a = add_file(svc, names[i]);
        rc = a < 0 ? a : 0;
        changed = changed || a == 0;
    }
    for (; j < old_n; j++) {
        shmq_index_file_close(old[j]);
        free(old[j]);
        changed = true;
    }
    free(old);
    free_names(names, n);
    return rc < 0 ? rc : changed;
}

/* Remove files from index i on (they are rebuilt from the CommitLog). */
int shmq_index_drop_from(shmq_index_service_t *svc, size_t i)
{
    int rc = 0;
    while (svc->count > i) {
        shmq_index_file_t *f = svc->files[--svc->count];
        int r = shmq_index_file_destroy(f);
        rc = rc < 0 ? rc : r;
        free(f);
    }
    return rc;
}

/* ---- keys ----------------------------------------------------------------------------------- */

int32_t shmq_index_topic_key_hash(const char *topic, size_t topic_len, const char *key,
                                  size_t key_len)
{
    return shmq_topic_key_hash(topic, topic_len, key, key_len);
}

/* The next non-empty space-separated token of KEYS (v, len) from *i, or NULL; *i moves past it. */
static const char *next_token(const char *v, size_t len, size_t *i, size_t *tok_len)
{
    while (*i < len) {
        size_t start = *i;
        while (*i < len && v[*i] != ' ') {
            (*i)++;
        }
        size_t end = (*i)++;
        if (end > start) {
            *tok_len = end - start;
            return v + start;
        }
    }
    return NULL;
}

/* The keys of scanned properties, in RocketMQ's order (see shmq_index_foreach_key). */
static int foreach_scanned_key(const shmq_record_props_t *pr,
                               int (*fn)(void *arg, bool uniq, const char *key, size_t len),
                               void *arg)
{
    if (pr->uniq_key) {
        int rc = fn(arg, true, pr->uniq_key, pr->uniq_key_len);
        if (rc) {
            return rc;
        }
    }
    size_t i = 0, len;
    for (const char *k; (k = next_token(pr->keys, pr->keys_len, &i, &len)) != NULL;) {
        int rc = fn(arg, false, k, len);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int shmq_index_foreach_key(const char *props, size_t props_len,
                           int (*fn)(void *arg, bool uniq, const char *key, size_t len), void *arg)
{
    shmq_record_props_t pr;
    shmq_record_props_scan_keys(props, props_len, &pr);
    return foreach_scanned_key(&pr, fn, arg);
}

static bool sysflag_indexed(int32_t sysflag)
{
    return (sysflag & SHMQ_SYSFLAG_TX_MASK) != SHMQ_SYSFLAG_TX_ROLLBACK;
}

bool shmq_index_record_indexed(const shmq_record_t *r)
{
    return sysflag_indexed(r->sysflag);
}

/* ---- writing ----------------------------------------------------------------------------------
 */

/* Create the next file: named by the time now (later than every name so far), begin/end
 * inherited from the newest file. */
static int roll(shmq_index_service_t *svc, shmq_index_file_t **out)
{
    shmq_index_header_t init = {0};
    shmq_index_file_t *last = shmq_index_last(svc);
    int64_t ms = shmq_now_ms();
    if (last) {
        if (last->hdr.end_phys > 0) {
            init.begin_phys = init.end_phys = last->hdr.end_phys;
        }
        if (last->hdr.end_ts > 0) {
            init.begin_ts = init.end_ts = last->hdr.end_ts;
        }
        int64_t t = shmq_index_name_parse(last->name);
        if (t >= ms) {
            ms = t + 1; /* two files in one millisecond, or a clock that went back */
        }
    }
    shmq_index_file_t *f = malloc(sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    int rc = -EEXIST;
    for (int i = 0; i < ROLL_NAME_TRIES && rc == -EEXIST; i++, ms++) {
        char name[SHMQ_INDEX_NAME_LEN + 1];
        shmq_index_name_format(ms, name);
        if (last && strcmp(name, last->name) <= 0) {
            continue; /* a local-time step back (DST): keep names in creation order */
        }
        shmq_error_clear();
        rc = shmq_index_file_create(f, svc->dir, name, svc->slot_num, svc->index_num, &init);
    }
    if (rc == 0) {
        rc = push_file(svc, f);
        if (rc == 0) {
            *out = f;
            return 0;
        }
        shmq_index_file_destroy(f);
    }
    free(f);
    return rc == -EEXIST ? shmq_error_set(rc, "index: no free file name in %s", svc->dir) : rc;
}

/* One entry of record r for key (the newest file, or a new one when it is full). */
static inline int put_key(shmq_index_service_t *svc, const shmq_record_head_t *r, const char *key,
                          size_t len)
{
    int32_t h = shmq_topic_key_hash_memo(&svc->key_memo, r->topic, r->topic_len, key, len);
    if (h < 0) {
        return -ENOMEM;
    }
    shmq_index_file_t *f = shmq_index_last(svc);
    if (!f || shmq_index_file_full(f)) {
        /* The new file through its own variable: f itself stays in a register. */
        shmq_index_file_t *made = f;
        int rc = roll(svc, &made);
        if (rc < 0) {
            return rc;
        }
        f = made;
    }
    return shmq_index_file_put(f, h, r->phys_offset, r->store_ts);
}

int shmq_index_put_head(shmq_index_service_t *svc, const shmq_record_head_t *r)
{
    if (svc->readonly) {
        return shmq_error_set(SHMQ_E_ARG, "index %s: opened read-only", svc->dir);
    }
    if (!sysflag_indexed(r->sysflag) || r->phys_offset <= svc->last_phys) {
        return 0;
    }
    shmq_record_props_t pr;
    shmq_record_props_scan_keys(r->props, r->props_len, &pr);
    return shmq_index_put_scanned(svc, r, &pr);
}

int shmq_index_put_scanned(shmq_index_service_t *svc, const shmq_record_head_t *r,
                           const shmq_record_props_t *scanned)
{
    const shmq_record_props_t pr = *scanned;
    int added = 0, rc = 0;
    if (pr.uniq_key) {
        rc = put_key(svc, r, pr.uniq_key, pr.uniq_key_len);
        if (rc == 0) {
            added++;
            if (pr.keys && shmq_index_crash_hook) {
                shmq_index_crash_hook(SHMQ_INDEX_STEP_KEY); /* KEYS entries follow */
            }
        }
    }
    size_t i = 0, len;
    for (const char *k; rc == 0 && (k = next_token(pr.keys, pr.keys_len, &i, &len)) != NULL;) {
        rc = put_key(svc, r, k, len);
        added += rc == 0;
    }
    if (added > 0) {
        svc->last_phys = r->phys_offset;
    }
    return rc < 0 ? rc : added;
}

int shmq_index_put_record(shmq_index_service_t *svc, const shmq_record_t *r)
{
    shmq_record_head_t h;
    shmq_record_head_from(r, &h);
    return shmq_index_put_head(svc, &h);
}

int shmq_index_flush(shmq_index_service_t *svc, int64_t *end_ts)
{
    int rc = 0;
    for (size_t i = 0; i < svc->count && rc == 0; i++) {
        rc = shmq_index_file_flush(svc->files[i]);
    }
    if (end_ts) {
        shmq_index_file_t *last = shmq_index_last(svc);
        *end_ts = last ? last->hdr.end_ts : 0;
    }
    return rc;
}

int64_t shmq_index_build(shmq_index_service_t *svc, const shmq_commitlog_t *cl, int64_t *pos,
                         int64_t limit)
{
    int64_t n = 0;
    for (;;) {
        shmq_record_head_t r;
        int64_t at = *pos;
        int rc = shmq_commitlog_next_head(cl, pos, limit, SHMQ_DECODE_CHECK_PHYS, &r);
        if (rc == SHMQ_E_END || (rc == SHMQ_E_MAGIC && r.total_size == 0)) {
            *pos = at;
            return n; /* the limit, or the zeros after the last record */
        }
        if (rc < 0) {
            *pos = at;
            return shmq_error_wrap(rc, "index build: CommitLog record at %lld", (long long)at);
        }
        rc = shmq_index_put_head(svc, &r);
        if (rc < 0) {
            *pos = at;
            return rc;
        }
        n++;
    }
}
