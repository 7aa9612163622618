/*
 * The broker JSON metadata under <root>/config/ (ROCKETMQ-FACTS §20):
 * reading a file and its .bak and choosing between them, the findings
 * loaders report, saving, and the store's view that values are checked
 * against (json_meta.h).  What each file holds is in json_meta_tables.c.
 *
 * RocketMQ writes these with fastjson, whose maps with integer keys come out
 * with bare keys ({0:5,1:7}); shmq_json_quote_int_keys() turns that dialect
 * into strict JSON before jansson parses it.  A file with content that does
 * not parse, repeats a key or lacks its table is damaged, and <name>.bak is
 * read instead; a file that is missing or only whitespace is missing (the
 * .bak is read when there is one: a save was interrupted between its two
 * renames).  Saving goes through shmq_file_write_atomic(), which keeps the
 * previous version as <name>.bak.
 */
#include "format/json_meta_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/consume_queue.h"
#include "format/mapped_file.h"
#include "shmq/errors.h"
#include "base/log.h"

/*
 * The daemons' logger (daemons/log.c), referenced weakly: tools and
 * client programs do not link it, and then findings go only to the sink
 * a program sets.
 */
extern __typeof__(shmq_log) shmq_log __attribute__((weak));

/* Largest metadata file accepted (consumer offsets of very many queues). */
#define META_MAX_BYTES ((size_t)256 << 20)

/* Findings shown per load; the rest are counted in one last line. */
#define META_MAX_SHOWN 50

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- RocketMQ dialect ---------------------------------------------------- */

char *shmq_json_quote_int_keys(const char *in, size_t len)
{
    if (len > (SIZE_MAX - 1) / 2) {
        return NULL;
    }
    /* Each quoted key is at least one byte followed by ':' and gains two quotes. */
    char *out = malloc(2 * len + 1);
    char *stack = malloc(len + 1); /* open containers: '{' or '[' */
    if (out == NULL || stack == NULL) {
        free(out);
        free(stack);
        return NULL;
    }
    size_t i = 0, o = 0, depth = 0;
    bool expect_key = false; /* just after '{' or after ',' inside an object */

    while (i < len) {
        char c = in[i];
        if (c == '"') {
            /* Copy the string verbatim; a backslash escapes the next byte. */
            out[o++] = in[i++];
            while (i < len) {
                char s = in[i];
                out[o++] = in[i++];
                if (s == '\\') {
                    if (i < len) {
                        out[o++] = in[i++];
                    }
                } else if (s == '"') {
                    break;
                }
            }
            expect_key = false;
            continue;
        }
        if (json_ws(c)) {
            out[o++] = in[i++];
            continue;
        }
        if (c == '{' || c == '[') {
            stack[depth++] = c;
            expect_key = c == '{';
            out[o++] = in[i++];
            continue;
        }
        if (c == '}' || c == ']') {
            if (depth > 0) {
                depth--;
            }
            expect_key = false;
            out[o++] = in[i++];
            continue;
        }
        if (c == ',') {
            expect_key = depth > 0 && stack[depth - 1] == '{';
            out[o++] = in[i++];
            continue;
        }
        if (expect_key && (c == '-' || is_digit(c))) {
            size_t j = i + (c == '-');
            size_t digits_at = j;
            while (j < len && is_digit(in[j])) {
                j++;
            }
            size_t k = j;
            while (k < len && json_ws(in[k])) {
                k++;
            }
            if (j > digits_at && k < len && in[k] == ':') {
                out[o++] = '"';
                memcpy(out + o, in + i, j - i);
                o += j - i;
                out[o++] = '"';
                i = j;
                expect_key = false;
                continue;
            }
        }
        expect_key = false;
        out[o++] = in[i++];
    }
    out[o] = '\0';
    free(stack);
    return out;
}

/* ---- findings ------------------------------------------------------------ */

static shmq_meta_warn_fn warn_fn;
static void *warn_arg;

void shmq_meta_set_warn(shmq_meta_warn_fn fn, void *arg)
{
    warn_fn = fn;
    warn_arg = arg;
}

static void emit(enum shmq_meta_level level, const char *msg)
{
    if (warn_fn != NULL) {
        warn_fn(warn_arg, level, msg);
    } else if (shmq_log != NULL) {
        shmq_log(SHMQ_LOG_WARN, "%s", msg);
    }
}

static void vemit(enum shmq_meta_level level, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    emit(level, msg);
}

void shmq_meta_warn(enum shmq_meta_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vemit(level, fmt, ap);
    va_end(ap);
}

void meta_finding(meta_load_t *ml, enum shmq_meta_level level, const char *fmt, ...)
{
    if (ml->quiet) {
        return;
    }
    if (level == SHMQ_META_WARN) {
        ml->rep.warnings++;
    } else {
        ml->rep.notes++;
    }
    if (ml->shown++ >= META_MAX_SHOWN) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vemit(level, fmt, ap);
    va_end(ap);
}

bool shmq_meta_one_bit_apart(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b)) {
        return false;
    }
    int diff = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned x = (unsigned char)a[i] ^ (unsigned char)b[i];
        if (x != 0) {
            if ((x & (x - 1)) != 0 || ++diff > 1) {
                return false;
            }
        }
    }
    return diff == 1;
}

/* ---- reading ------------------------------------------------------------- */

/* Read and classify one file; only an I/O error is returned. */
static int meta_file_read(meta_file_t *f, const meta_kind_t *k)
{
    char *data;
    size_t len;

    f->state = META_MISSING;
    f->why[0] = '\0';
    f->doc = NULL;
    f->table = NULL;
    int rc = shmq_store_file_read_all(f->path, META_MAX_BYTES, &data, &len);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc == -EFBIG) {
        f->state = META_DAMAGED;
        snprintf(f->why, sizeof(f->why), "larger than %zu bytes", META_MAX_BYTES);
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    size_t ws = 0;
    while (ws < len && json_ws(data[ws])) {
        ws++;
    }
    if (ws == len) {
        free(data);
        return 0;
    }
    f->state = META_DAMAGED;
    if (memchr(data, '\0', len) != NULL) {
        free(data);
        snprintf(f->why, sizeof(f->why), "it contains NUL bytes");
        return 0;
    }
    char *strict = shmq_json_quote_int_keys(data, len);
    free(data);
    if (strict == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", f->path);
    }
    json_error_t jerr;
    /* A repeated key is damage (fastjson never writes one): keep neither value. */
    json_t *j = json_loads(strict, JSON_REJECT_DUPLICATES, &jerr);
    free(strict);
    if (j == NULL) {
        snprintf(f->why, sizeof(f->why), "line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return 0;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(f->why, sizeof(f->why), "the top level is not an object");
        return 0;
    }
    json_t *table = json_object_get(j, k->table_key);
    if (table == NULL || !json_is_object(table)) {
        /* A key one bit away from the table's is the table under a damaged name. */
        const char *near = NULL, *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            if (shmq_meta_one_bit_apart(key, k->table_key)) {
                near = key;
            }
        }
        if (table != NULL) {
            snprintf(f->why, sizeof(f->why), "\"%s\" is not an object", k->table_key);
        } else if (near != NULL) {
            snprintf(f->why, sizeof(f->why), "no \"%s\" table (\"%.100s\" is a damaged name of it)",
                     k->table_key, near);
        } else {
            snprintf(f->why, sizeof(f->why), "no \"%s\" table", k->table_key);
        }
        json_decref(j);
        return 0;
    }
    f->state = META_OK;
    f->doc = j;
    f->table = table;
    return 0;
}

static bool data_version_of(const json_t *doc, int64_t *counter, int64_t *state, char *why,
                            size_t why_len);

/*
 * A file older than its .bak: both carry a dataVersion and the file's counter is
 * below the backup's.  Every save moves the counter on (or writes the same text
 * twice), and the .bak is the version before the file: a file behind it is a stale
 * copy (an old version put back, a lost write of a block).
 */
static bool older_than_bak(const meta_file_t *m, const meta_file_t *b, int64_t *mc, int64_t *bc)
{
    int64_t ms, bs;
    char why[300];
    return json_is_object(json_object_get(m->doc, "dataVersion")) &&
           json_is_object(json_object_get(b->doc, "dataVersion")) &&
           data_version_of(m->doc, mc, &ms, why, sizeof(why)) &&
           data_version_of(b->doc, bc, &bs, why, sizeof(why)) && *mc < *bc;
}

int meta_open(meta_load_t *ml, const meta_kind_t *k, const char *root, bool quiet)
{
    memset(ml, 0, sizeof(*ml));
    ml->kind = k;
    ml->root = root;
    ml->quiet = quiet;
    if (snprintf(ml->main.path, sizeof(ml->main.path), "%s/config/%s", root, k->name) >=
            (int)sizeof(ml->main.path) ||
        snprintf(ml->bak.path, sizeof(ml->bak.path), "%s.bak", ml->main.path) >=
            (int)sizeof(ml->bak.path)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s/config/%s is too long", root, k->name);
    }
    int rc = meta_file_read(&ml->main, k);
    if (rc == 0) {
        rc = meta_file_read(&ml->bak, k);
    }
    if (rc < 0) {
        meta_close(ml, NULL);
        return rc;
    }
    meta_file_t *m = &ml->main, *b = &ml->bak;
    if (m->state == META_OK) {
        ml->base = m;
        int64_t mc, bc;
        if (b->state == META_OK && older_than_bak(m, b, &mc, &bc)) {
            meta_finding(ml, SHMQ_META_WARN,
                         "%s is older than its backup (dataVersion counter %lld, %s has %lld): a "
                         "stale copy; loading %s instead",
                         m->path, (long long)mc, b->path, (long long)bc, b->path);
            ml->base = b;
            ml->other = m;
        } else if (b->state == META_OK) {
            ml->other = b;
        } else if (b->state == META_DAMAGED) {
            meta_finding(ml, SHMQ_META_WARN, "%s is damaged (%s); not needed: %s is intact",
                         b->path, b->why, m->path);
        }
        return 0;
    }
    if (b->state == META_OK) {
        ml->base = b;
        if (m->state == META_MISSING) {
            meta_finding(ml, SHMQ_META_WARN,
                         "%s is missing: loading %s (a save was interrupted, or the file was "
                         "removed)",
                         m->path, b->path);
        } else {
            meta_finding(ml, SHMQ_META_WARN,
                         "%s is damaged (%s): loading %s instead, the state before the last save",
                         m->path, m->why, b->path);
        }
        return 0;
    }
    if (m->state == META_MISSING && b->state == META_MISSING) {
        return 0; /* a new store: empty tables */
    }
    rc = shmq_error_set(SHMQ_E_JSON,
                        "%s is %s%s%s and %s is %s%s%s: what it held cannot be told; restore "
                        "it from a copy, or remove both files %s",
                        m->path, m->state == META_DAMAGED ? "damaged (" : "missing",
                        m->state == META_DAMAGED ? m->why : "", m->state == META_DAMAGED ? ")" : "",
                        b->path, b->state == META_DAMAGED ? "damaged (" : "missing",
                        b->state == META_DAMAGED ? b->why : "", b->state == META_DAMAGED ? ")" : "",
                        k->if_lost);
    if (!quiet) {
        ml->rep.warnings++;
    }
    meta_close(ml, NULL);
    return rc;
}

void meta_close(meta_load_t *ml, shmq_meta_report_t *rep)
{
    if (ml->shown > META_MAX_SHOWN) {
        char msg[PATH_MAX + 100];
        snprintf(msg, sizeof(msg), "%s: %d more findings not shown", ml->main.path,
                 ml->shown - META_MAX_SHOWN);
        emit(SHMQ_META_WARN, msg);
    }
    json_decref(ml->main.doc);
    json_decref(ml->bak.doc);
    ml->main.doc = ml->bak.doc = NULL;
    ml->main.table = ml->bak.table = NULL;
    ml->base = ml->other = NULL;
    if (rep != NULL) {
        *rep = ml->rep;
    }
}

const char *meta_base_path(const meta_load_t *ml)
{
    return ml->base != NULL ? ml->base->path : ml->main.path;
}

void meta_check_top_keys(meta_load_t *ml)
{
    const char *key;
    json_t *v;
    json_object_foreach(ml->base->doc, key, v)
    {
        bool known = false;
        for (const char *const *kk = ml->kind->top_keys; *kk != NULL && !known; kk++) {
            known = strcmp(key, *kk) == 0;
        }
        for (const char *const *kk = ml->kind->top_keys; *kk != NULL && !known; kk++) {
            if (shmq_meta_one_bit_apart(key, *kk)) {
                meta_finding(ml, SHMQ_META_WARN, "%s: key \"%.100s\" is a damaged \"%s\"; ignored",
                             ml->base->path, key, *kk);
                known = true;
            }
        }
    }
}

/* dataVersion of one document: false with why when present and damaged. */
static bool data_version_of(const json_t *doc, int64_t *counter, int64_t *state, char *why,
                            size_t why_len)
{
    static const char *const known[] = {"counter", "stateVersion", "timestamp", NULL};
    const json_t *dv = json_object_get(doc, "dataVersion");
    long long c = 0, s = 0, ts = 0;
    *counter = 0;
    *state = 0;
    if (dv == NULL || json_is_null(dv)) {
        return true; /* RocketMQ 4.x writes none in some files */
    }
    if (!json_is_object(dv)) {
        snprintf(why, why_len, "not an object");
        return false;
    }
    if (!meta_opt_int(dv, "counter", 0, INT64_MAX, &c, why, why_len) ||
        !meta_opt_int(dv, "stateVersion", INT64_MIN, INT64_MAX, &s, why, why_len) ||
        !meta_opt_int(dv, "timestamp", 0, INT64_MAX, &ts, why, why_len) ||
        meta_damaged_field_name(dv, known, why, why_len)) {
        return false;
    }
    *counter = c;
    *state = s;
    return true;
}

void meta_data_version(meta_load_t *ml, int64_t *counter, int64_t *state)
{
    char why[300];
    *counter = 0;
    *state = 0;
    if (ml->base == NULL || data_version_of(ml->base->doc, counter, state, why, sizeof(why))) {
        return;
    }
    char why_other[300];
    if (ml->other != NULL &&
        data_version_of(ml->other->doc, counter, state, why_other, sizeof(why_other))) {
        meta_finding(ml, SHMQ_META_WARN,
                     "%s: \"dataVersion\" is damaged (%s): continuing from the counter of %s",
                     ml->base->path, why, ml->other->path);
        return;
    }
    meta_finding(ml, SHMQ_META_WARN, "%s: \"dataVersion\" is damaged (%s): counter restarts at 0",
                 ml->base->path, why);
}

/* ---- entry fields --------------------------------------------------------------- */

/* An optional field's value: NULL when absent or null (the caller's default stays). */
static const json_t *opt_field(const json_t *obj, const char *field)
{
    const json_t *v = json_object_get(obj, field);
    return json_is_null(v) ? NULL : v;
}

/* A present field of the wrong type: why says what was expected; false. */
static bool opt_field_bad_type(const char *field, const char *expected, char *why, size_t why_len)
{
    snprintf(why, why_len, "field \"%s\": expected %s", field, expected);
    return false;
}

bool meta_opt_int(const json_t *obj, const char *field, long long lo, long long hi, long long *out,
                  char *why, size_t why_len)
{
    const json_t *v = opt_field(obj, field);
    if (v == NULL) {
        return true;
    }
    if (!json_is_integer(v)) {
        return opt_field_bad_type(field, "an integer", why, why_len);
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi == INT64_MAX) {
            snprintf(why, why_len, "field \"%s\": %lld, expected a value >= %lld", field, x, lo);
        } else {
            snprintf(why, why_len, "field \"%s\": %lld outside %lld..%lld", field, x, lo, hi);
        }
        return false;
    }
    *out = x;
    return true;
}

bool meta_opt_bool(const json_t *obj, const char *field, bool *out, char *why, size_t why_len)
{
    const json_t *v = opt_field(obj, field);
    if (v == NULL) {
        return true;
    }
    if (!json_is_boolean(v)) {
        return opt_field_bad_type(field, "true or false", why, why_len);
    }
    *out = json_is_true(v);
    return true;
}

bool meta_damaged_field_name(const json_t *obj, const char *const *known, char *why, size_t why_len)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        for (const char *const *k = known; *k != NULL; k++) {
            if (json_object_get(obj, *k) == NULL && shmq_meta_one_bit_apart(key, *k)) {
                snprintf(why, why_len, "field \"%.100s\" is a damaged \"%s\"", key, *k);
                return true;
            }
        }
    }
    return false;
}

bool meta_int_key(const char *s, long long lo, long long hi, long long *out)
{
    const char *p = s + (*s == '-');
    if (*p == '\0') {
        return false;
    }
    for (const char *q = p; *q; q++) {
        if (!is_digit(*q)) {
            return false;
        }
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- writing ------------------------------------------------------------- */

json_t *meta_data_version_new(int64_t counter, int64_t state)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_int_t now_ms = (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return json_pack("{s:I,s:I,s:I}", "counter", (json_int_t)counter, "stateVersion",
                     (json_int_t)state, "timestamp", now_ms);
}

/* Does new_t have a key (or a key of an object value) that old_t lacks? */
static bool adds_entries(const json_t *old_t, const json_t *new_t)
{
    const char *key;
    json_t *nv;
    json_object_foreach((json_t *)new_t, key, nv)
    {
        const json_t *ov = json_object_get(old_t, key);
        if (ov == NULL) {
            return true;
        }
        if (json_is_object(nv) && json_is_object(ov)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(nv, k2, v2)
            {
                if (json_object_get(ov, k2) == NULL) {
                    return true;
                }
            }
        }
    }
    return false;
}

int meta_save(const char *root, const meta_kind_t *k, json_t *doc, bool carry_version)
{
    char dir[PATH_MAX];
    meta_file_t cur, bak;
    int rc;

    if (doc == NULL) {
        return shmq_error_set(-ENOMEM, "%s/config/%s: out of memory", root, k->name);
    }
    if (snprintf(dir, sizeof(dir), "%s/config", root) >= (int)sizeof(dir) ||
        snprintf(cur.path, sizeof(cur.path), "%s/%s", dir, k->name) >= (int)sizeof(cur.path) ||
        snprintf(bak.path, sizeof(bak.path), "%s.bak", cur.path) >= (int)sizeof(bak.path)) {
        json_decref(doc);
        return shmq_error_set(-ENAMETOOLONG, "path %s/config/%s is too long", root, k->name);
    }
    if ((rc = shmq_file_mkdirs(dir)) < 0) {
        json_decref(doc);
        return rc;
    }
    /* What the file holds now: an unreadable one counts as damaged. */
    if (meta_file_read(&cur, k) < 0) {
        cur.state = META_DAMAGED;
    }
    if (carry_version) {
        int64_t counter = 0, state = 0;
        char why[300];
        const meta_file_t *src = &cur;
        bak.doc = NULL;
        if (cur.state != META_OK && meta_file_read(&bak, k) == 0 && bak.state == META_OK) {
            src = &bak;
        }
        if (src->state == META_OK &&
            !data_version_of(src->doc, &counter, &state, why, sizeof(why))) {
            counter = 0;
            state = 0;
        }
        json_decref(bak.doc);
        if (json_object_set_new(doc, "dataVersion", meta_data_version_new(counter + 1, state)) !=
            0) {
            json_decref(cur.doc);
            json_decref(doc);
            return shmq_error_set(-ENOMEM, "%s: out of memory", cur.path);
        }
    }
    /*
     * .bak must hold every entry the new file holds, or damage to a new
     * entry's key could not be told from a new entry: a save that adds
     * entries (or replaces a damaged or missing file) is written twice.
     */
    bool twice =
        cur.state != META_OK || adds_entries(cur.table, json_object_get(doc, k->table_key));
    json_decref(cur.doc);
    char *text = json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", cur.path);
    }
    rc = shmq_file_write_atomic(cur.path, text, strlen(text));
    if (rc == 0 && twice) {
        rc = shmq_file_write_atomic(cur.path, text, strlen(text));
    }
    free(text);
    return rc;
}

/* ---- the store's view ------------------------------------------------------------ */

static bool segment_name(const char *s)
{
    size_t n = 0;
    while (is_digit(s[n])) {
        n++;
    }
    return n == 20 && s[n] == '\0';
}

int shmq_meta_disk_queue_max(void *arg, const char *topic, int32_t queue_id, int64_t *max)
{
    const char *root = arg;
    char dir[PATH_MAX];
    struct stat tsb;
    if (snprintf(dir, sizeof(dir), "%s/consumequeue/%s", root, topic) >= (int)sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    if (stat(dir, &tsb) != 0 || !S_ISDIR(tsb.st_mode)) {
        return -ENOENT; /* no queue of the topic at all: nothing to tell */
    }
    if (snprintf(dir, sizeof(dir), "%s/consumequeue/%s/%d", root, topic, (int)queue_id) >=
        (int)sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? SHMQ_E_NOT_FOUND : -errno;
    }
    /* The segment size is the files' own: every file of a queue has it. */
    int64_t size = -1;
    struct dirent *e;
    while (size < 0 && (e = readdir(d)) != NULL) {
        struct stat sb;
        if (segment_name(e->d_name) && fstatat(dirfd(d), e->d_name, &sb, 0) == 0 &&
            S_ISREG(sb.st_mode)) {
            size = sb.st_size;
        }
    }
    closedir(d);
    if (size < 0) {
        return SHMQ_E_NOT_FOUND; /* a directory without files: no units */
    }
    if (size == 0 || size % SHMQ_CQ_UNIT_SIZE != 0) {
        return -EINVAL; /* the queue's own check reports it */
    }
    shmq_cq_t cq;
    int rc = shmq_cq_open(&cq, root, topic, queue_id, (size_t)size, SHMQ_MF_READONLY);
    if (rc < 0) {
        return rc;
    }
    *max = shmq_cq_max_offset(&cq);
    shmq_cq_close(&cq);
    return 0;
}

static int cq_topic_cmp(const void *a, const void *b)
{
    return strcmp(((const meta_cq_topic_t *)a)->name, ((const meta_cq_topic_t *)b)->name);
}

int meta_cq_topics_scan(const char *root, meta_cq_topics_t *out)
{
    char dir[PATH_MAX];
    size_t cap = 0;

    out->t = NULL;
    out->count = 0;
    if (snprintf(dir, sizeof(dir), "%s/consumequeue", root) >= (int)sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct dirent *te;
    int rc = 0;
    while (rc == 0 && (te = readdir(d)) != NULL) {
        if (te->d_name[0] == '.' || strlen(te->d_name) >= sizeof(out->t[0].name)) {
            continue;
        }
        int tfd = openat(dirfd(d), te->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *qd = tfd >= 0 ? fdopendir(tfd) : NULL;
        if (qd == NULL) {
            if (tfd >= 0) {
                close(tfd);
            }
            continue;
        }
        long long top = -1, qid;
        struct dirent *qe;
        while ((qe = readdir(qd)) != NULL) {
            if (meta_int_key(qe->d_name, 0, META_QUEUE_ID_MAX, &qid) && qe->d_name[0] != '-' &&
                qid > top) {
                top = qid;
            }
        }
        closedir(qd);
        if (top < 0) {
            continue;
        }
        if (out->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            meta_cq_topic_t *n = realloc(out->t, ncap * sizeof(*n));
            if (n == NULL) {
                rc = -ENOMEM;
                break;
            }
            out->t = n;
            cap = ncap;
        }
        meta_cq_topic_t *t = &out->t[out->count++];
        snprintf(t->name, sizeof(t->name), "%s", te->d_name);
        t->queues = (int32_t)top + 1;
    }
    closedir(d);
    if (rc < 0) {
        meta_cq_topics_free(out);
        return rc;
    }
    if (out->count > 1) {
        qsort(out->t, out->count, sizeof(out->t[0]), cq_topic_cmp);
    }
    return 0;
}

const meta_cq_topic_t *meta_cq_topics_get(const meta_cq_topics_t *s, const char *name)
{
    meta_cq_topic_t key;
    if (s->count == 0 || strlen(name) >= sizeof(key.name)) {
        return NULL;
    }
    snprintf(key.name, sizeof(key.name), "%s", name);
    return bsearch(&key, s->t, s->count, sizeof(s->t[0]), cq_topic_cmp);
}

void meta_cq_topics_free(meta_cq_topics_t *s)
{
    free(s->t);
    s->t = NULL;
    s->count = 0;
}
