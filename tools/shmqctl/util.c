/*
 * shmqctl helpers shared by the commands: strict number parsing, opening the
 * store with a clear message, raw access to CommitLog records through the
 * segment mappings (read-only stores have no wrote_pos to bound reads), the
 * tagsCode rule, text/JSON output and the terminal progress line.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmqctl.h"

#include "format/compress.h"

/* ---- numbers ------------------------------------------------------------- */

int shmqctl_parse_int(const char *s, int64_t min, int64_t max, bool suffixes, int64_t *out)
{
    char *end;
    long long v;
    int64_t mul = 1;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')) || (*s == '-' && min >= 0)) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }
    if (*end && suffixes && end[1] == '\0') {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024 * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
    }
    if (*end) {
        return -1;
    }
    if (mul > 1 && (v > INT64_MAX / mul || v < INT64_MIN / mul)) {
        return -1;
    }
    v *= mul;
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int64_t shmqctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- store access ---------------------------------------------------------- */

/* The size of the segment file with the smallest start offset in dir (0 if none). */
static int64_t first_file_size(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    int64_t first = -1, off;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (shmq_segment_parse(e->d_name, &off) && (first < 0 || off < first)) {
            first = off;
        }
    }
    closedir(d);
    char name[21], path[PATH_MAX];
    struct stat sb;
    if (first < 0) {
        return 0;
    }
    shmq_segment_name(first, name);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        return 0;
    }
    return (int64_t)sb.st_size;
}

/* The size of a ConsumeQueue file of the store at root: consumequeue/TOPIC/QUEUE/ (0 if none). */
static int64_t cq_file_size(const char *root)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/consumequeue", root);
    DIR *topics = opendir(dir);
    int64_t size = 0;
    struct dirent *t;
    while (size == 0 && topics && (t = readdir(topics)) != NULL) {
        if (t->d_name[0] == '.') {
            continue;
        }
        char tdir[PATH_MAX];
        if (snprintf(tdir, sizeof(tdir), "%s/%s", dir, t->d_name) >= (int)sizeof(tdir)) {
            continue;
        }
        DIR *queues = opendir(tdir);
        struct dirent *q;
        while (size == 0 && queues && (q = readdir(queues)) != NULL) {
            char qdir[PATH_MAX];
            if (q->d_name[0] != '.' &&
                snprintf(qdir, sizeof(qdir), "%s/%s", tdir, q->d_name) < (int)sizeof(qdir)) {
                size = first_file_size(qdir);
            }
        }
        if (queues) {
            closedir(queues);
        }
    }
    if (topics) {
        closedir(topics);
    }
    return size;
}

void shmqctl_sizes_from_files(shmq_config_t *cfg)
{
    shmq_config_t def;
    shmq_config_defaults(&def);
    if (cfg->mapped_file_size_commit_log == def.mapped_file_size_commit_log) {
        char dir[PATH_MAX];
        shmq_config_commitlog_dir(cfg, dir, sizeof(dir));
        int64_t size = first_file_size(dir);
        if (size > 0 && size % 4096 == 0) { /* a whole number of pages, as shmqd makes them */
            cfg->mapped_file_size_commit_log = size;
        }
    }
    if (cfg->mapped_file_size_consume_queue == def.mapped_file_size_consume_queue) {
        int64_t size = cq_file_size(cfg->store_path_root_dir);
        if (size > 0 && size % SHMQ_CQ_UNIT_SIZE == 0) {
            cfg->mapped_file_size_consume_queue = size;
        }
    }
}

int shmqctl_store_check(const shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    char dir[PATH_MAX], path[PATH_MAX];
    struct stat sb;

    if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        shmqctl_err("no store at %s", root);
        return -ENOENT;
    }
    shmq_config_commitlog_dir(&a->cfg, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/checkpoint", root);
    if (stat(dir, &sb) != 0 && stat(path, &sb) != 0) {
        shmqctl_err("no store at %s (no CommitLog directory %s and no checkpoint): check the path; "
                    "shmqd makes a store when it first starts",
                    root, dir);
        return -ENOENT;
    }
    return 0;
}

int shmqctl_store_open(shmqctl_args_t *a, shmq_store_t *st, unsigned flags,
                       shmq_recovery_report_t *rep)
{
    int rc;
    shmq_error_clear();
    rc = shmq_store_open(st, &a->cfg, flags, rep);
    if (rc == SHMQ_E_LOCKED) {
        const char *detail = shmq_error_detail();
        shmqctl_err("store %s is in use%s%s (stop the broker or the other tool first)",
                    a->cfg.store_path_root_dir, detail[0] ? ": " : "", detail);
        return rc;
    }
    if (rc < 0) {
        shmqctl_fail(rc, "cannot open store %s", a->cfg.store_path_root_dir);
    }
    return rc;
}

int shmqctl_log_open(shmqctl_args_t *a, shmq_commitlog_t *cl)
{
    char dir[PATH_MAX];
    struct stat sb;
    int rc;

    if (stat(a->cfg.store_path_root_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        shmqctl_err("no store at %s", a->cfg.store_path_root_dir);
        return -ENOENT;
    }
    shmq_config_commitlog_dir(&a->cfg, dir, sizeof(dir));
    shmq_error_clear();
    rc = shmq_commitlog_open(cl, dir, (size_t)a->cfg.mapped_file_size_commit_log, SHMQ_MF_READONLY);
    if (rc < 0) {
        shmqctl_fail(rc, "cannot open the CommitLog %s", dir);
    }
    return rc;
}

const uint8_t *shmqctl_cl_bytes(const shmq_commitlog_t *cl, int64_t off, size_t *avail,
                                const shmq_mapped_file_t **seg)
{
    const shmq_mapped_file_t *mf = off >= 0 ? shmq_mfq_find(&cl->q, off) : NULL;
    int64_t rel;

    if (!mf || !mf->base) {
        return NULL;
    }
    rel = off - mf->start_offset;
    if (rel < 0 || (uint64_t)rel >= mf->size) {
        return NULL;
    }
    *avail = mf->size - (size_t)rel;
    if (seg) {
        *seg = mf;
    }
    return mf->base + rel;
}

int shmqctl_record_at(const shmq_commitlog_t *cl, int64_t phys, unsigned flags, shmq_record_t *rec)
{
    size_t avail;
    const uint8_t *p = shmqctl_cl_bytes(cl, phys, &avail, NULL);
    if (!p) {
        return shmq_error_set(SHMQ_E_RANGE, "no CommitLog segment holds offset %lld",
                              (long long)phys);
    }
    return shmq_record_decode(p, avail, phys, flags, rec);
}

int64_t shmqctl_first_nonzero(const uint8_t *buf, size_t len)
{
    size_t i = 0;
    /* Word at a time over the aligned middle: zero tails can be a whole segment. */
    while (i < len && ((uintptr_t)(buf + i) & 7)) {
        if (buf[i]) {
            return (int64_t)i;
        }
        i++;
    }
    for (; i + 64 <= len; i += 64) {
        const uint64_t *w = (const uint64_t *)(const void *)(buf + i);
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            break;
        }
    }
    for (; i < len; i++) {
        if (buf[i]) {
            return (int64_t)i;
        }
    }
    return -1;
}

bool shmqctl_is_zero_tail(const shmq_commitlog_t *cl, int64_t off)
{
    size_t avail;
    const uint8_t *p = shmqctl_cl_bytes(cl, off, &avail, NULL);
    if (!p) {
        return false;
    }
    /* TOTALSIZE and MAGICCODE both zero: nothing was ever written here. */
    return shmqctl_first_nonzero(p, avail < 8 ? avail : 8) < 0;
}

void shmqctl_cl_seg_path(const shmq_commitlog_t *cl, int64_t off, char *out, size_t len)
{
    const shmq_mapped_file_t *mf = shmq_mfq_find(&cl->q, off);
    char name[21];
    int64_t start;

    if (mf) {
        snprintf(out, len, "%s", mf->path);
        return;
    }
    start = cl->q.seg_size ? off - off % (int64_t)cl->q.seg_size : 0;
    shmq_segment_name(start, name);
    snprintf(out, len, "%s/%s", cl->q.dir, name);
}

int64_t shmqctl_expected_tags_code(const shmq_config_t *cfg, const shmq_record_t *rec)
{
    static const char sched[] = "SCHEDULE_TOPIC_XXXX";
    size_t vlen;
    const char *v;

    if (rec->topic_len == sizeof(sched) - 1 && !memcmp(rec->topic, sched, sizeof(sched) - 1)) {
        v = shmq_props_get(rec->props, rec->props_len, SHMQ_PROP_DELAY, &vlen);
        if (v && vlen < 12) {
            char buf[12];
            int64_t level;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            if (shmqctl_parse_int(buf, INT32_MIN, INT32_MAX, false, &level) == 0 && level > 0) {
                /* Delay topic: tagsCode is the delivery time (§10). */
                if (cfg->delay_level_count <= 0) {
                    return rec->store_ts + 1000;
                }
                if (level > cfg->delay_level_count) {
                    level = cfg->delay_level_count;
                }
                return rec->store_ts + cfg->delay_level_ms[level - 1];
            }
        }
    }
    v = shmq_props_get(rec->props, rec->props_len, SHMQ_PROP_TAGS, &vlen);
    return v ? shmq_tags_code(v, vlen) : 0;
}

/* ---- output -------------------------------------------------------------- */

void shmqctl_print_text(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            putc(c, f);
        } else {
            fprintf(f, "\\x%02x", c);
        }
    }
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint32_t cp;
    size_t len;

    if (p[0] < 0x80) {
        return 1;
    } else if ((p[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    /* Reject overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool shmqctl_utf8_printable(const uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(buf + i, len - i);
        if (n == 0) {
            return false;
        }
        if (n == 1 && ((buf[i] < 0x20 && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') ||
                       buf[i] == 0x7f)) {
            return false;
        }
        i += n;
    }
    return true;
}

json_t *shmqctl_json_str(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    char *fixed;
    size_t i = 0, o = 0;
    json_t *j;

    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            break;
        }
        i += n;
    }
    if (i == len) {
        return json_stringn(s, len);
    }
    fixed = malloc(len * 3 + 1);
    if (!fixed) {
        return NULL;
    }
    for (i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, p + i, n);
            o += n;
            i += n;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

json_t *shmqctl_json_base64(const uint8_t *buf, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = (len + 2) / 3 * 4;
    char *o = malloc(olen + 1);
    size_t i, k = 0;
    json_t *j;

    if (!o) {
        return NULL;
    }
    for (i = 0; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8 | buf[i + 2];
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = tab[(v >> 6) & 63];
        o[k++] = tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)buf[i] << 16;
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = '=';
        o[k++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8;
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = tab[(v >> 6) & 63];
        o[k++] = '=';
    }
    o[k] = '\0';
    j = json_stringn(o, k);
    free(o);
    return j;
}

int shmqctl_json_print(json_t *obj)
{
    int rc = -1;
    if (obj) {
        rc = json_dumpf(obj, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        putchar('\n');
        json_decref(obj);
    }
    return rc;
}

void shmqctl_format_ts(int64_t ms, char *out, size_t len)
{
    time_t sec = (time_t)(ms / 1000);
    int msec = (int)(ms % 1000);
    struct tm tm;
    char buf[64];

    if (msec < 0) {
        msec += 1000;
        sec--;
    }
    if (!localtime_r(&sec, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm)) {
        snprintf(out, len, "?");
        return;
    }
    snprintf(out, len, "%s.%03d", buf, msec);
}

void shmqctl_format_host(const shmq_host_t *h, char *out, size_t len)
{
    char addr[INET6_ADDRSTRLEN];
    if (h->is_v6) {
        if (!inet_ntop(AF_INET6, h->addr, addr, sizeof(addr))) {
            snprintf(addr, sizeof(addr), "?");
        }
        snprintf(out, len, "[%s]:%d", addr, (int)h->port);
    } else {
        snprintf(out, len, "%u.%u.%u.%u:%d", h->addr[0], h->addr[1], h->addr[2], h->addr[3],
                 (int)h->port);
    }
}

/* ---- progress ------------------------------------------------------------ */

void shmqctl_progress_init(shmqctl_progress_t *p, const char *label)
{
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->shown = false;
    p->last_ms = 0;
    p->label = label;
}

void shmqctl_progress_update(shmqctl_progress_t *p, int64_t done, int64_t total, const char *unit)
{
    int64_t now;
    if (!p->enabled) {
        return;
    }
    now = shmqctl_now_ms();
    if (p->shown && now - p->last_ms < 100) {
        return;
    }
    p->last_ms = now;
    p->shown = true;
    if (total > 0) {
        fprintf(stderr, "\r\033[K%s: %lld/%lld %s (%d%%)", p->label, (long long)done,
                (long long)total, unit, (int)(100.0 * (double)done / (double)total));
    } else {
        fprintf(stderr, "\r\033[K%s: %lld %s", p->label, (long long)done, unit);
    }
    fflush(stderr);
}

void shmqctl_progress_clear(shmqctl_progress_t *p)
{
    if (p->enabled && p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->shown = false;
    }
}

int shmqctl_store_lock(const char *root, int *fd)
{
    shmq_error_clear();
    int rc = shmq_store_lock(root, fd);
    if (rc == SHMQ_E_LOCKED) {
        const char *d = shmq_error_detail();
        shmqctl_err("store %s is in use but not running (starting or held by a tool)%s%s; try "
                    "again",
                    root, d[0] ? ": " : "", d);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot lock store %s", root);
    }
    return 0;
}

const char *shmqctl_compression_name(int type)
{
    switch (type) {
    case SHMQ_COMPRESSION_NONE:
        return "none";
    case SHMQ_COMPRESSION_LZ4:
        return "lz4";
    case SHMQ_COMPRESSION_ZSTD:
        return "zstd";
    case SHMQ_COMPRESSION_ZLIB:
        return "zlib";
    default:
        return "unknown";
    }
}

int shmqctl_body_decompress(int32_t sysflag, const void *body, size_t len, int32_t max_message_size,
                            bool raw, uint8_t **owned, const void **out, size_t *out_len)
{
    *owned = NULL;
    *out = body;
    *out_len = len;
    if (raw || !(sysflag & SHMQ_SYSFLAG_COMPRESSED)) {
        return 0;
    }
    int type = shmq_body_compression(sysflag);
    if (type < 0) {
        return type;
    }
    size_t got;
    int rc = shmq_body_decompress(type, body, len,
                                  max_message_size > 0 ? (size_t)max_message_size : 0, owned, &got);
    if (rc < 0) {
        return rc;
    }
    *out = *owned;
    *out_len = got;
    return 0;
}
