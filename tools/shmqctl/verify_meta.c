/*
 * shmqctl verify, the files besides the CommitLog and the ConsumeQueues
 * (cmd_verify.c calls these after its two passes):
 *
 * config/ JSON files: loaded as the broker loads them (json_meta.h), with the
 *   queues verify opened as the store's view; every finding of a loader is
 *   a problem (its notes are notes), a refused load too, saying what the
 *   store does then.
 * checkpoint: 4096 bytes, zero after the five longs; confirmPhyOffset a
 *   record boundary inside the log; masterFlushedOffset inside the log;
 *   the timestamps not after the newest message (indexMsgTimestamp not
 *   after the newest IndexFile's end); physicMsgTimestamp and
 *   logicsMsgTimestamp, which shmq writes equal to the store time of the
 *   record before confirmPhyOffset: one of the two differing is damage.
 * index/: every file has the configured size; its header, every entry (its
 *   keyHash is a key of the record it points at, its timeDiff that
 *   record's time), every bucket chain (each entry's prev is the previous
 *   entry of its bucket, each slot its newest entry), hashSlotCount, and
 *   zeros after the last entry; files follow each other in log order.
 *
 * A running store (cmd_verify.c's snapshot): committed offsets are checked
 * against each queue's max offset as the control block shows it when the
 * file is read, and the checkpoint is read until two reads agree.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/index_file.h"
#include "store/index_service.h"
#include "format/json_meta.h"
#include "verify.h"

/* Problems shown per IndexFile and kind (the rest are counted). */
#define INDEX_SHOWN 5
/* A running store: reads of its checkpoint until two agree. */
#define CHECKPOINT_READS 10

/* ---- checkpoint ------------------------------------------------------------------ */

static void checkpoint_path(const verify_t *v, char *out, size_t len)
{
    snprintf(out, len, "%s/checkpoint", v->a->cfg.store_path_root_dir);
}

void verify_checkpoint_read(verify_t *v)
{
    char path[PATH_MAX + 16];
    uint8_t buf[SHMQ_CHECKPOINT_SIZE];
    struct stat sb;

    v->cp_ts = -1;
    v->max_ts = -1;
    checkpoint_path(v, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            verify_note(v, "%s is missing (a store never opened for writing)", path);
        } else {
            verify_problem(v, "%s: %s", path, strerror(errno));
        }
        return;
    }
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && sb.st_size == SHMQ_CHECKPOINT_SIZE) {
        n = pread(fd, buf, sizeof(buf), 0);
    }
    close(fd);
    if (n != SHMQ_CHECKPOINT_SIZE) {
        verify_problem(v, "%s: size %lld, expected %d bytes", path, (long long)sb.st_size,
                       SHMQ_CHECKPOINT_SIZE);
        return;
    }
    /* Bytes 40-4095 are zero but for shmq's record-CRC marker at 64-87 (formats.md). */
    int64_t nz = shmqctl_first_nonzero(buf + 40, 24);
    if (nz < 0 && (nz = shmqctl_first_nonzero(buf + 88, sizeof(buf) - 88)) >= 0) {
        nz += 48;
    }
    if (nz >= 0) {
        verify_problem(v,
                       "%s offset %lld: non-zero byte after the five fields (bytes 40-4095 are "
                       "always zero, but for the record-CRC marker at 64-87)",
                       path, (long long)(40 + nz));
    }
    bool marked = shmqctl_first_nonzero(buf + 64, 24) >= 0;
    shmq_error_clear();
    if (shmq_checkpoint_read(v->a->cfg.store_path_root_dir, &v->cp) < 0) {
        verify_problem(v, "%s: %s", path, shmq_error_detail());
        return;
    }
    /* A running store's flusher rewrites it in place: a read may see half of a write.
     * Two reads in a row that agree saw one checkpoint. */
    for (int i = 0; v->live && i < CHECKPOINT_READS; i++) {
        shmq_checkpoint_t again;
        if (shmq_checkpoint_read(v->a->cfg.store_path_root_dir, &again) < 0 ||
            memcmp(&again, &v->cp, sizeof(again)) == 0) {
            break;
        }
        v->cp = again;
    }
    if (marked && !v->cp.crc_marker) {
        verify_problem(v,
                       "%s offset 64: a damaged record-CRC marker (bytes 64-87 are \"%s\", the "
                       "offset, and a copy of physicMsgTimestamp): the store will take it as "
                       "absent and check fewer records",
                       path, SHMQ_CHECKPOINT_CRC_MAGIC);
    }
    v->cp_read = true;
}

void verify_checkpoint_record(verify_t *v, int64_t phys, int64_t size, int64_t store_ts)
{
    if (store_ts > v->max_ts) {
        v->max_ts = store_ts;
    }
    if (!v->cp_read) {
        return;
    }
    int64_t c = v->cp.confirm_phys;
    if (phys < c && c < phys + size && !v->cp_inside) {
        v->cp_inside = true;
        v->cp_inside_phys = phys;
    }
    if (phys + size <= c && store_ts >= 0) {
        v->cp_ts = store_ts; /* records come in log order: the last one wins */
    }
}

static void check_checkpoint(verify_t *v, int64_t index_end_ts)
{
    char path[PATH_MAX + 16];
    const shmq_checkpoint_t *cp = &v->cp;
    if (!v->cp_read) {
        return;
    }
    checkpoint_path(v, path, sizeof(path));
    int64_t c = cp->confirm_phys;
    if (c < 0 || c > v->data_end) {
        verify_problem(v,
                       "%s: confirmPhyOffset %lld is outside the log [0, %lld]: the checkpoint is "
                       "damaged (recovery would take the log as damaged below it)",
                       path, (long long)c, (long long)v->data_end);
    } else if (v->cp_inside) {
        verify_problem(v,
                       "%s: confirmPhyOffset %lld falls inside the record at %lld (it is always a "
                       "record boundary): the checkpoint is damaged",
                       path, (long long)c, (long long)v->cp_inside_phys);
    } else if (c > 0 && c < v->cl_min) {
        verify_note(v, "%s: confirmPhyOffset %lld is below the log's first offset %lld", path,
                    (long long)c, (long long)v->cl_min);
    }
    if (cp->master_flushed < 0 || cp->master_flushed > v->data_end) {
        verify_problem(v, "%s: masterFlushedOffset %lld is outside the log [0, %lld]", path,
                       (long long)cp->master_flushed, (long long)v->data_end);
    }
    struct {
        const char *name;
        int64_t value, max;
    } ts[] = {
        {"physicMsgTimestamp", cp->physic_msg_ts, v->max_ts},
        {"logicsMsgTimestamp", cp->logics_msg_ts, v->max_ts},
        {"indexMsgTimestamp", cp->index_msg_ts, index_end_ts >= 0 ? index_end_ts : v->max_ts},
    };
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        if (ts[i].value < 0 || (ts[i].max >= 0 && ts[i].value > ts[i].max)) {
            verify_problem(v, "%s: %s %lld is %s", path, ts[i].name, (long long)ts[i].value,
                           ts[i].value < 0 ? "negative"
                           : i < 2         ? "after the newest message's store time"
                                           : "after the newest index file's endTimestamp");
        }
    }
    if (c > 0 && v->cp_ts >= 0 && !v->cp_inside && c <= v->data_end) {
        bool pe = cp->physic_msg_ts == v->cp_ts, le = cp->logics_msg_ts == v->cp_ts;
        if (pe != le) {
            verify_problem(v,
                           "%s: %s %lld is not the store time %lld of the record before "
                           "confirmPhyOffset, which %s holds: the checkpoint is damaged",
                           path, pe ? "logicsMsgTimestamp" : "physicMsgTimestamp",
                           (long long)(pe ? cp->logics_msg_ts : cp->physic_msg_ts),
                           (long long)v->cp_ts, pe ? "physicMsgTimestamp" : "logicsMsgTimestamp");
        } else if (!pe) {
            verify_note(v,
                        "%s: physicMsgTimestamp and logicsMsgTimestamp are not the store time "
                        "%lld of the record before confirmPhyOffset (shmq writes them so; "
                        "RocketMQ need not)",
                        path, (long long)v->cp_ts);
        }
    }
}

/* ---- config/ JSON files -------------------------------------------------------- */

static void meta_sink(void *arg, enum shmq_meta_level level, const char *msg)
{
    verify_t *v = arg;
    if (level == SHMQ_META_WARN) {
        verify_problem(v, "%s", msg);
    } else {
        verify_note(v, "%s", msg);
    }
}

/* Queue maxima from the queues pass 2 opened; others from their files. */
static int verify_queue_max(void *arg, const char *topic, int32_t queue_id, int64_t *max)
{
    verify_t *v = arg;
    /* A running store: offsets committed up to now, against the max offsets now. */
    if (verify_live_queue_max(v, topic, queue_id, max)) {
        return 0;
    }
    vq_t *q = verify_queue_get(v, topic, strlen(topic), queue_id, false);
    if (q != NULL && q->cq != NULL) {
        *max = shmq_cq_max_offset(q->cq);
        return 0;
    }
    if (q != NULL && q->open_failed) {
        return -EIO; /* reported by pass 2 */
    }
    return shmq_meta_disk_queue_max(v->a->cfg.store_path_root_dir, topic, queue_id, max);
}

static void refused(verify_t *v, int rc, const char *then)
{
    const char *d = shmq_error_detail();
    verify_problem(v, "%s (%s)", d[0] ? d : shmq_strerror(rc), then);
}

static void check_config(verify_t *v)
{
    const char *root = v->a->cfg.store_path_root_dir;
    shmq_topic_table_t t;
    shmq_offset_table_t o;
    shmq_group_table_t g;
    int rc;

    shmq_meta_set_warn(meta_sink, v);
    shmq_error_clear();
    if ((rc = shmq_topics_load(root, &t)) < 0) {
        refused(v, rc, "shmqd does not start");
    } else {
        shmq_topic_table_free(&t);
    }
    shmq_error_clear();
    if ((rc = shmq_consumer_offsets_load_ex(root, &o, verify_queue_max, v, NULL)) < 0) {
        refused(v, rc, "shmqd does not start");
    } else {
        shmq_offset_table_free(&o);
    }
    shmq_error_clear();
    if ((rc = shmq_delay_offsets_load_ex(root, &o, verify_queue_max, v, NULL)) < 0) {
        refused(v, rc, "the scheduler does not start");
    } else {
        shmq_offset_table_free(&o);
    }
    shmq_error_clear();
    if ((rc = shmq_groups_load(root, &g)) < 0) {
        refused(v, rc, "consumers use the default group settings");
    } else {
        shmq_group_table_free(&g);
    }
    shmq_meta_set_warn(NULL, NULL);

    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/config", root);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
            verify_note(v, "%s/%s: left by an interrupted save (not read; removable)", dir,
                        e->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* ---- IndexFiles ----------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

typedef struct key_match {
    const shmq_record_t *rec;
    int32_t hash;
} key_match_t;

static int match_key(void *arg, bool uniq, const char *key, size_t len)
{
    key_match_t *m = arg;
    (void)uniq;
    return shmq_index_topic_key_hash(m->rec->topic, m->rec->topic_len, key, len) == m->hash;
}

/* Per-file problem counter: the first INDEX_SHOWN of each kind are shown. */
typedef struct index_ctx {
    verify_t *v;
    const shmq_index_file_t *f;
    int shown[4];
    int64_t hidden;
} index_ctx_t;

enum { IX_ENTRY, IX_CHAIN, IX_SLOT, IX_OTHER };

static void ix_problem(index_ctx_t *x, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ix_problem(index_ctx_t *x, int kind, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    if (x->shown[kind]++ >= INDEX_SHOWN) {
        x->hidden++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    verify_problem(x->v, "index file %s: %s", x->f->path, msg);
}

/* Store time of the record at phys after checking entry k against it; -1 if it cannot be. */
static int64_t check_entry(index_ctx_t *x, int32_t k, int32_t hash, int64_t phys, int32_t tdiff,
                           int64_t begin_ts, bool open)
{
    verify_t *v = x->v;
    shmq_record_t rec;
    int64_t off = 40 + 4 * (int64_t)x->f->slot_num + 20 * (int64_t)k;
    if (phys < v->cl_min) {
        return -1; /* its record was cleaned */
    }
    if (phys >= v->data_end && open) {
        return -1; /* appended after the CommitLog pass read the log */
    }
    if (phys >= v->data_end) {
        ix_problem(x, IX_ENTRY,
                   "entry %d (offset %lld) points at %lld, past the end of the log %lld", k,
                   (long long)off, (long long)phys, (long long)v->data_end);
        return -1;
    }
    int rc = shmqctl_record_at(v->cl, phys, SHMQ_DECODE_CHECK_PHYS, &rec);
    if (rc <= 0) {
        ix_problem(x, IX_ENTRY, "entry %d (offset %lld) points at %lld, where no record starts", k,
                   (long long)off, (long long)phys);
        return -1;
    }
    key_match_t m = {.rec = &rec, .hash = hash};
    if (!shmq_index_record_indexed(&rec) ||
        shmq_index_foreach_key(rec.props, rec.props_len, match_key, &m) != 1) {
        ix_problem(x, IX_ENTRY,
                   "entry %d (offset %lld): keyHash %d is not a key of the record at %lld", k,
                   (long long)off, (int)hash, (long long)phys);
    }
    /* The first entry's timeDiff may be RocketMQ's (against the previous file's begin). */
    if (k > 1 && begin_ts > 0) {
        int64_t want = (rec.store_ts - begin_ts) / 1000;
        want = want < 0 ? 0 : want > INT32_MAX ? INT32_MAX : want;
        if (tdiff != want) {
            ix_problem(x, IX_ENTRY,
                       "entry %d (offset %lld): timeDiff %d, its record's store time says %lld", k,
                       (long long)off, (int)tdiff, (long long)want);
        }
    } else if (tdiff < 0) {
        ix_problem(x, IX_ENTRY, "entry %d (offset %lld): timeDiff %d is negative", k,
                   (long long)off, (int)tdiff);
    }
    return rec.store_ts;
}

/*
 * One file; *end_phys and *end_ts carry the previous file's end and receive
 * this one's.  open: the store is open (abort exists): entries for records
 * appended after the CommitLog pass are not checked, and the newest file,
 * which the indexer may be writing, is not checked past indexCount.
 */
static void check_index_file(verify_t *v, const shmq_index_file_t *f, bool newest, bool open,
                             int64_t *end_phys, int64_t *end_ts)
{
    index_ctx_t x = {.v = v, .f = f};
    bool live = open && newest;
    const uint8_t *b = f->base;
    int64_t begin_ts = (int64_t)be64(b), hdr_end_ts = (int64_t)be64(b + 8);
    int64_t begin_phys = (int64_t)be64(b + 16), hdr_end_phys = (int64_t)be64(b + 24);
    int32_t slot_count = (int32_t)be32(b + 32), count = (int32_t)be32(b + 36);
    const uint8_t *slots = b + 40, *entries = b + 40 + 4 * (size_t)f->slot_num;

    if (count < 1 || count > f->index_num) {
        ix_problem(&x, IX_OTHER, "indexCount %d outside 1..%d: entries not checked", (int)count,
                   (int)f->index_num);
        return;
    }
    int32_t *last = calloc((size_t)f->slot_num, sizeof(*last));
    if (last == NULL) {
        verify_problem(v, "index file %s: out of memory", f->path);
        return;
    }
    int64_t prev_phys = -1, first_ts = -1, last_ts = -1, last_phys = -1;
    int32_t heads = 0;
    for (int32_t k = 1; k < count; k++) {
        const uint8_t *e = entries + 20 * (size_t)k;
        int32_t hash = (int32_t)be32(e), tdiff = (int32_t)be32(e + 12),
                prev = (int32_t)be32(e + 16);
        int64_t phys = (int64_t)be64(e + 4);
        if (hash < 0) {
            ix_problem(&x, IX_ENTRY, "entry %d: keyHash %d is negative", k, (int)hash);
            continue;
        }
        int32_t s = hash % f->slot_num;
        if (prev != last[s]) {
            ix_problem(&x, IX_CHAIN,
                       "entry %d: previous entry of its bucket %d is %d, expected %d (the bucket's "
                       "chain is broken)",
                       k, (int)s, (int)prev, (int)last[s]);
        }
        heads += last[s] == 0;
        last[s] = k;
        if (phys < prev_phys) {
            ix_problem(&x, IX_ENTRY, "entry %d points at %lld, before entry %d's %lld", k,
                       (long long)phys, k - 1, (long long)prev_phys);
        }
        prev_phys = phys;
        int64_t ts = check_entry(&x, k, hash, phys, tdiff, begin_ts, open);
        if (k == 1) {
            first_ts = ts;
        }
        last_ts = ts;
        last_phys = phys;
    }
    /* Slots: each holds its bucket's newest entry (a put killed before indexCount moved may
     * have pointed one at entry indexCount: the indexer undoes that at its start). */
    int64_t torn = -1, ahead = 0;
    for (int32_t s = 0; s < f->slot_num; s++) {
        int32_t val = (int32_t)be32(slots + 4 * (size_t)s);
        if (val == last[s]) {
            continue;
        }
        if (live && val >= count && val < f->index_num) {
            ahead++; /* an entry put since indexCount was read */
            continue;
        }
        const uint8_t *e = entries + 20 * (size_t)count;
        if (newest && val == count && count < f->index_num && (int32_t)be32(e) >= 0 &&
            (int32_t)be32(e) % f->slot_num == s && (int32_t)be32(e + 16) == last[s]) {
            torn = s;
            continue;
        }
        ix_problem(&x, IX_SLOT, "slot %d (offset %lld) is %d, expected %d", (int)s,
                   (long long)(40 + 4 * (int64_t)s), (int)val, (int)last[s]);
    }
    free(last);
    if (slot_count != heads) {
        ix_problem(&x, IX_OTHER, "hashSlotCount %d, but %d buckets hold entries", (int)slot_count,
                   (int)heads);
    }
    if (torn >= 0) {
        verify_note(v,
                    "index file %s: entry %d was written but not counted (a killed put; the "
                    "indexer undoes it at its start)",
                    f->path, (int)count);
    }
    int32_t from = count + (torn >= 0 ? 1 : 0);
    if (live) {
        if (ahead > 0) {
            verify_note(v,
                        "index file %s: %lld slots point past indexCount %d: the store is open "
                        "and this file is being written",
                        f->path, (long long)ahead, (int)count);
        }
    } else if (from < f->index_num) {
        size_t at = 20 * (size_t)from;
        int64_t nz = shmqctl_first_nonzero(entries + at, 20 * (size_t)f->index_num - at);
        if (nz >= 0) {
            int64_t off = 40 + 4 * (int64_t)f->slot_num + (int64_t)at + nz;
            ix_problem(&x, IX_OTHER, "offset %lld: data after the last entry (indexCount %d)",
                       (long long)off, (int)count);
        }
    }
    /* Header fields against the entries. */
    if (count > 1) {
        int64_t first_phys = (int64_t)be64(entries + 20 + 4);
        if (begin_phys != first_phys || (first_ts >= 0 && begin_ts != first_ts)) {
            ix_problem(&x, IX_OTHER,
                       "beginPhyOffset/beginTimestamp %lld/%lld, its first entry's record says "
                       "%lld/%lld",
                       (long long)begin_phys, (long long)begin_ts, (long long)first_phys,
                       (long long)first_ts);
        }
        if (!live && (hdr_end_phys != last_phys || (last_ts >= 0 && hdr_end_ts != last_ts))) {
            ix_problem(&x, IX_OTHER,
                       "endPhyOffset/endTimestamp %lld/%lld, its last entry's record says "
                       "%lld/%lld",
                       (long long)hdr_end_phys, (long long)hdr_end_ts, (long long)last_phys,
                       (long long)last_ts);
        }
        if (*end_phys >= 0 && begin_phys < *end_phys) {
            ix_problem(&x, IX_OTHER,
                       "its first entry (%lld) is before the previous file's last "
                       "(%lld)",
                       (long long)begin_phys, (long long)*end_phys);
        }
    } else if (begin_phys != hdr_end_phys || begin_ts != hdr_end_ts) {
        ix_problem(&x, IX_OTHER, "no entry, but begin (%lld/%lld) and end (%lld/%lld) differ",
                   (long long)begin_phys, (long long)begin_ts, (long long)hdr_end_phys,
                   (long long)hdr_end_ts);
    }
    if (x.hidden > 0) {
        verify_problem(v, "index file %s: %lld more problems", f->path, (long long)x.hidden);
    }
    *end_phys = count > 1 ? hdr_end_phys : *end_phys;
    *end_ts = hdr_end_ts;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the newest file's endTimestamp, or -1 when there is none. */
static int64_t check_index(verify_t *v)
{
    const shmq_config_t *cfg = &v->a->cfg;
    char dir[PATH_MAX];
    shmq_index_dir(cfg, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno != ENOENT) {
            verify_problem(v, "cannot list %s: %s", dir, strerror(errno));
        }
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (!shmq_index_name_valid(e->d_name)) {
            size_t len = strlen(e->d_name);
            if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) {
                verify_note(v,
                            "%s/%s: left by an interrupted creation (removed at the indexer's "
                            "start)",
                            dir, e->d_name);
            } else {
                verify_problem(v, "unexpected file %s/%s in the index directory", dir, e->d_name);
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n] != NULL) {
            n++;
        }
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof(*names), name_cmp);
    }
    int64_t want = shmq_index_file_size(cfg->max_hash_slot_num, cfg->max_index_num);
    bool open = shmq_abort_exists(cfg->store_path_root_dir);
    int64_t end_phys = -1, end_ts = -1;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 32];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || sb.st_size != want) {
            verify_problem(v,
                           "index file %s: size %lld, expected %lld (maxHashSlotNum %d, "
                           "maxIndexNum %d): not read by the store",
                           path, (long long)sb.st_size, (long long)want,
                           (int)cfg->max_hash_slot_num, (int)cfg->max_index_num);
            continue;
        }
        shmq_index_file_t f;
        shmq_error_clear();
        int rc = shmq_index_file_open(&f, path, cfg->max_hash_slot_num, cfg->max_index_num, true);
        if (rc < 0) {
            verify_problem(v, "index file %s: %s", path,
                           shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
            continue;
        }
        check_index_file(v, &f, i + 1 == n, open, &end_phys, &end_ts);
        shmq_index_file_close(&f);
        v->files_index++;
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return end_ts;
}

void verify_meta(verify_t *v)
{
    v->prog.label = "verify config, checkpoint, index";
    check_config(v);
    int64_t index_end = check_index(v);
    check_checkpoint(v, index_end);
    verify_timer(v);
}
