/*
 * The broker JSON metadata under <root>/config/ (ROCKETMQ-FACTS §20):
 * consumerOffset.json, delayOffset.json, topics.json and
 * subscriptionGroup.json, loaded into and saved from the tables of
 * store_files.c.
 *
 * RocketMQ writes these with fastjson, whose maps with integer keys come out
 * with bare keys ({0:5,1:7}); shmq_json_quote_int_keys() turns that dialect
 * into strict JSON before jansson parses it.  Loading falls back to
 * <name>.bak when the main file is missing, empty or unparseable; a parsed
 * file with a bad entry fails the load (nothing is dropped silently).
 * Saving goes through shmq_file_write_atomic(), which keeps the previous
 * version as <name>.bak.
 */
#include "store_files.h"

#include "shmq/errors.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest metadata file accepted (consumer offsets of very many queues). */
#define META_MAX_BYTES ((size_t)256 << 20)

#define QUEUE_ID_MAX   65535
#define QUEUE_NUMS_MAX 65535

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

/* ---- reading ------------------------------------------------------------- */

static int meta_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int meta_bad(const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return shmq_error_set(SHMQ_E_JSON, "%s: %s", path, msg);
}

/*
 * Parse one file.  Returns 0 (*doc set), 1 if missing or empty, SHMQ_E_JSON
 * if unusable (why says how), or another negative code for an I/O error.
 */
static int meta_parse_file(const char *path, json_t **doc, char *why, size_t why_len)
{
    char *data;
    size_t len;

    *doc = NULL;
    int rc = shmq_file_read_all(path, META_MAX_BYTES, &data, &len);
    if (rc == -ENOENT) {
        return 1;
    }
    if (rc == -EFBIG) {
        snprintf(why, why_len, "larger than %zu bytes", META_MAX_BYTES);
        return SHMQ_E_JSON;
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
        return 1;
    }
    if (memchr(data, '\0', len) != NULL) {
        free(data);
        snprintf(why, why_len, "contains NUL bytes");
        return SHMQ_E_JSON;
    }
    char *strict = shmq_json_quote_int_keys(data, len);
    free(data);
    if (strict == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", path);
    }
    json_error_t jerr;
    json_t *j = json_loads(strict, 0, &jerr);
    free(strict);
    if (j == NULL) {
        snprintf(why, why_len, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return SHMQ_E_JSON;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(why, why_len, "top level is not an object");
        return SHMQ_E_JSON;
    }
    *doc = j;
    return 0;
}

/*
 * Read <root>/config/<name>, else <name>.bak.  *doc is NULL when both are
 * missing or empty (an empty table).  used receives the path read, for
 * error messages.
 */
static int meta_load(const char *root, const char *name, json_t **doc, char *used, size_t used_len)
{
    char path[PATH_MAX], bak[PATH_MAX], why_main[256] = "", why_bak[256] = "";

    *doc = NULL;
    if (snprintf(path, sizeof(path), "%s/config/%s", root, name) >= (int)sizeof(path) ||
        snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s/config/%s is too long", root, name);
    }
    snprintf(used, used_len, "%s", path);
    int rc_main = meta_parse_file(path, doc, why_main, sizeof(why_main));
    if (rc_main == 0) {
        return 0;
    }
    if (rc_main < 0 && rc_main != SHMQ_E_JSON) {
        return rc_main;
    }
    int rc_bak = meta_parse_file(bak, doc, why_bak, sizeof(why_bak));
    if (rc_bak == 0) {
        snprintf(used, used_len, "%s", bak);
        return 0;
    }
    if (rc_bak < 0 && rc_bak != SHMQ_E_JSON) {
        return rc_bak;
    }
    if (rc_main == 1 && rc_bak == 1) {
        return 0;
    }
    return shmq_error_set(SHMQ_E_JSON, "%s: %s; %s: %s", path,
                          rc_main == 1 ? "missing or empty" : why_main, bak,
                          rc_bak == 1 ? "missing or empty" : why_bak);
}

/* A strict decimal object key (optional '-', digits only) in [lo, hi]. */
static bool parse_int_key(const char *s, long long lo, long long hi, long long *out)
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

static int get_int(const char *path, const char *what, const json_t *v, long long lo, long long hi,
                   long long *out)
{
    if (!json_is_integer(v)) {
        return meta_bad(path, "%s: expected an integer", what);
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi == INT64_MAX) {
            return meta_bad(path, "%s: %lld, expected a value >= %lld", what, x, lo);
        }
        return meta_bad(path, "%s: %lld out of range %lld..%lld", what, x, lo, hi);
    }
    *out = x;
    return 0;
}

/* Optional integer field of obj: unchanged if absent or null. */
static int opt_int(const char *path, const char *entry, const json_t *obj, const char *field,
                   long long lo, long long hi, long long *out)
{
    const json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    char what[400];
    snprintf(what, sizeof(what), "%s field \"%s\"", entry, field);
    return get_int(path, what, v, lo, hi, out);
}

static int opt_bool(const char *path, const char *entry, const json_t *obj, const char *field,
                    bool *out)
{
    const json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return meta_bad(path, "%s field \"%s\": expected true or false", entry, field);
    }
    *out = json_is_true(v);
    return 0;
}

/* Optional object member; NULL if absent or null, error if not an object. */
static int opt_object(const char *path, const json_t *obj, const char *field, json_t **out)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        return meta_bad(path, "\"%s\": expected an object", field);
    }
    *out = v;
    return 0;
}

static int load_data_version(const char *path, const json_t *doc, int64_t *counter)
{
    json_t *dv;
    int rc = opt_object(path, doc, "dataVersion", &dv);
    if (rc < 0 || dv == NULL) {
        return rc;
    }
    long long c = 0;
    rc = opt_int(path, "\"dataVersion\"", dv, "counter", 0, INT64_MAX, &c);
    if (rc == 0) {
        *counter = c;
    }
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

static json_t *data_version_new(int64_t counter)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_int_t now_ms = (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return json_pack("{s:I,s:I,s:I}", "counter", (json_int_t)counter, "stateVersion", (json_int_t)0,
                     "timestamp", now_ms);
}

/* Write doc (reference stolen) to <root>/config/<name>. */
static int meta_save(const char *root, const char *name, json_t *doc)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int rc;

    if (doc == NULL) {
        return shmq_error_set(-ENOMEM, "%s/config/%s: out of memory", root, name);
    }
    if (snprintf(dir, sizeof(dir), "%s/config", root) >= (int)sizeof(dir) ||
        snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        json_decref(doc);
        return shmq_error_set(-ENAMETOOLONG, "path %s/config/%s is too long", root, name);
    }
    if ((rc = shmq_file_mkdirs(dir)) < 0) {
        json_decref(doc);
        return rc;
    }
    char *text = json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", path);
    }
    rc = shmq_file_write_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

/* ---- offset tables ------------------------------------------------------- */

/* Entries of one {queueId: offset} map into t under key; label names it in errors. */
static int load_queue_map(const char *path, const char *label, const char *key, const json_t *map,
                          long long qid_lo, shmq_offset_table_t *t)
{
    const char *qk;
    json_t *ov;
    json_object_foreach((json_t *)map, qk, ov)
    {
        long long qid = 0, off = 0;
        char what[700];
        if (!parse_int_key(qk, qid_lo, QUEUE_ID_MAX, &qid)) {
            return meta_bad(path, "%.300s \"%.40s\": expected an integer %lld..%d", label, qk,
                            qid_lo, QUEUE_ID_MAX);
        }
        snprintf(what, sizeof(what), "%.300s %lld", label, qid);
        int rc = get_int(path, what, ov, 0, INT64_MAX, &off);
        if (rc < 0) {
            return rc;
        }
        if ((rc = shmq_offset_table_set(t, key, (int32_t)qid, off)) < 0) {
            return rc;
        }
    }
    return 0;
}

int shmq_consumer_offsets_load(const char *root, shmq_offset_table_t *t)
{
    char path[PATH_MAX];
    json_t *doc, *ot;
    shmq_offset_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = meta_load(root, "consumerOffset.json", &doc, path, sizeof(path));
    if (rc < 0 || doc == NULL) {
        return rc;
    }
    rc = opt_object(path, doc, "offsetTable", &ot);
    if (rc == 0 && ot != NULL) {
        const char *key;
        json_t *map;
        json_object_foreach(ot, key, map)
        {
            if (key[0] == '\0' || strlen(key) >= sizeof(tmp.entries[0].key)) {
                rc = meta_bad(path, "entry \"%.300s\": key empty or longer than %zu bytes", key,
                              sizeof(tmp.entries[0].key) - 1);
                break;
            }
            if (!json_is_object(map)) {
                rc = meta_bad(path, "entry \"%.300s\": expected an object of queue offsets", key);
                break;
            }
            char label[400];
            snprintf(label, sizeof(label), "entry \"%.300s\" queue", key);
            if ((rc = load_queue_map(path, label, key, map, 0, &tmp)) < 0) {
                break;
            }
        }
    }
    json_decref(doc);
    if (rc < 0) {
        shmq_offset_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

/* {"key": {"qid": offset}} grouping entries by key. */
static json_t *offsets_by_key(const shmq_offset_table_t *t)
{
    json_t *ot = json_object();
    for (size_t i = 0; ot != NULL && i < t->count; i++) {
        const shmq_offset_entry_t *e = &t->entries[i];
        json_t *map = json_object_get(ot, e->key);
        if (map == NULL) {
            map = json_object();
            if (json_object_set_new(ot, e->key, map) != 0) {
                json_decref(ot);
                return NULL;
            }
        }
        char qk[16];
        snprintf(qk, sizeof(qk), "%d", (int)e->queue_id);
        if (json_object_set_new(map, qk, json_integer(e->offset)) != 0) {
            json_decref(ot);
            return NULL;
        }
    }
    return ot;
}

int shmq_consumer_offsets_save(const char *root, const shmq_offset_table_t *t)
{
    json_t *ot = offsets_by_key(t);
    return meta_save(root, "consumerOffset.json",
                     ot ? json_pack("{s:o}", "offsetTable", ot) : NULL);
}

int shmq_delay_offsets_load(const char *root, shmq_offset_table_t *t)
{
    char path[PATH_MAX];
    json_t *doc, *ot;
    shmq_offset_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = meta_load(root, "delayOffset.json", &doc, path, sizeof(path));
    if (rc < 0 || doc == NULL) {
        return rc;
    }
    rc = opt_object(path, doc, "offsetTable", &ot);
    if (rc == 0 && ot != NULL) {
        /* Delay levels start at 1. */
        rc = load_queue_map(path, "\"offsetTable\" level", "", ot, 1, &tmp);
    }
    if (rc == 0) {
        rc = load_data_version(path, doc, &tmp.data_version_counter);
    }
    json_decref(doc);
    if (rc < 0) {
        shmq_offset_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

int shmq_delay_offsets_save(const char *root, const shmq_offset_table_t *t)
{
    json_t *ot = json_object();
    for (size_t i = 0; ot != NULL && i < t->count; i++) {
        char qk[16];
        snprintf(qk, sizeof(qk), "%d", (int)t->entries[i].queue_id);
        if (json_object_set_new(ot, qk, json_integer(t->entries[i].offset)) != 0) {
            json_decref(ot);
            ot = NULL;
        }
    }
    json_t *dv = data_version_new(t->data_version_counter);
    json_t *doc = NULL;
    if (ot != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:o}", "offsetTable", ot, "dataVersion", dv);
    } else {
        json_decref(ot);
        json_decref(dv);
    }
    return meta_save(root, "delayOffset.json", doc);
}

/* ---- topics -------------------------------------------------------------- */

static int load_topic(const char *path, const char *name, const json_t *obj,
                      shmq_topic_config_t *tc)
{
    char entry[300];
    long long rq = 16, wq = 16, perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE, sysflag = 0;
    int rc;

    snprintf(entry, sizeof(entry), "topic \"%.256s\"", name);
    memset(tc, 0, sizeof(*tc));
    if (name[0] == '\0' || strlen(name) >= sizeof(tc->name)) {
        return meta_bad(path, "%s: name empty or longer than %zu bytes", entry,
                        sizeof(tc->name) - 1);
    }
    if (!json_is_object(obj)) {
        return meta_bad(path, "%s: expected an object", entry);
    }
    strcpy(tc->name, name);
    /* Absent fields take TopicConfig's defaults (16 queues, perm 6). */
    if ((rc = opt_int(path, entry, obj, "readQueueNums", 1, QUEUE_NUMS_MAX, &rq)) < 0 ||
        (rc = opt_int(path, entry, obj, "writeQueueNums", 1, QUEUE_NUMS_MAX, &wq)) < 0 ||
        (rc = opt_int(path, entry, obj, "perm", 0, 15, &perm)) < 0 ||
        (rc = opt_int(path, entry, obj, "topicSysFlag", 0, INT32_MAX, &sysflag)) < 0 ||
        (rc = opt_bool(path, entry, obj, "order", &tc->order)) < 0) {
        return rc;
    }
    tc->read_queue_nums = (int32_t)rq;
    tc->write_queue_nums = (int32_t)wq;
    tc->perm = (int32_t)perm;
    tc->topic_sys_flag = (int32_t)sysflag;

    const json_t *v = json_object_get(obj, "topicName");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), name) != 0)) {
        return meta_bad(path, "%s field \"topicName\": expected the string \"%.256s\"", entry,
                        name);
    }
    v = json_object_get(obj, "topicFilterType");
    if (v != NULL && !json_is_null(v)) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "MULTI_TAG") == 0) {
            tc->multi_tag = true;
        } else if (strcmp(s, "SINGLE_TAG") != 0) {
            return meta_bad(path, "%s field \"topicFilterType\": expected SINGLE_TAG or MULTI_TAG",
                            entry);
        }
    }
    v = json_object_get(obj, "attributes");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return meta_bad(path, "%s field \"attributes\": expected an object", entry);
        }
        if (json_object_size(v) > 0) {
            char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            if (text == NULL) {
                return shmq_error_set(-ENOMEM, "%s: out of memory", path);
            }
            size_t n = strlen(text);
            if (n < sizeof(tc->attributes)) {
                memcpy(tc->attributes, text, n + 1);
            }
            free(text);
            if (n >= sizeof(tc->attributes)) {
                return meta_bad(path, "%s field \"attributes\": longer than %zu bytes", entry,
                                sizeof(tc->attributes) - 1);
            }
        }
    }
    return 0;
}

int shmq_topics_load(const char *root, shmq_topic_table_t *t)
{
    char path[PATH_MAX];
    json_t *doc, *tct;
    shmq_topic_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = meta_load(root, "topics.json", &doc, path, sizeof(path));
    if (rc < 0 || doc == NULL) {
        return rc;
    }
    rc = opt_object(path, doc, "topicConfigTable", &tct);
    if (rc == 0 && tct != NULL) {
        const char *name;
        json_t *obj;
        json_object_foreach(tct, name, obj)
        {
            shmq_topic_config_t tc;
            if ((rc = load_topic(path, name, obj, &tc)) < 0 ||
                (rc = shmq_topic_table_put(&tmp, &tc)) < 0) {
                break;
            }
        }
    }
    tmp.data_version_counter = 0;
    if (rc == 0) {
        rc = load_data_version(path, doc, &tmp.data_version_counter);
    }
    json_decref(doc);
    if (rc < 0) {
        shmq_topic_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

/* NULL on allocation failure, or with *bad set if the attributes text is not an object. */
static json_t *topic_to_json(const shmq_topic_config_t *tc, bool *bad)
{
    json_t *attrs;
    if (tc->attributes[0] == '\0') {
        attrs = json_object();
    } else {
        attrs = json_loads(tc->attributes, 0, NULL);
        if (attrs == NULL || !json_is_object(attrs)) {
            json_decref(attrs);
            *bad = true;
            return NULL;
        }
    }
    return json_pack(
        "{s:o,s:b,s:i,s:i,s:s,s:s,s:i,s:i}", "attributes", attrs, "order", (int)tc->order, "perm",
        (int)tc->perm, "readQueueNums", (int)tc->read_queue_nums, "topicFilterType",
        tc->multi_tag ? "MULTI_TAG" : "SINGLE_TAG", "topicName", tc->name, "topicSysFlag",
        (int)tc->topic_sys_flag, "writeQueueNums", (int)tc->write_queue_nums);
}

int shmq_topics_save(const char *root, const shmq_topic_table_t *t)
{
    json_t *table = json_object();
    for (size_t i = 0; table != NULL && i < t->count; i++) {
        bool bad = false;
        json_t *tj = topic_to_json(&t->topics[i], &bad);
        if (bad) {
            json_decref(table);
            return shmq_error_set(SHMQ_E_ARG, "topic \"%s\": attributes are not a JSON object",
                                  t->topics[i].name);
        }
        if (tj == NULL || json_object_set_new(table, t->topics[i].name, tj) != 0) {
            json_decref(table);
            table = NULL;
        }
    }
    json_t *dv = data_version_new(t->data_version_counter);
    json_t *doc = NULL;
    if (table != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:o}", "dataVersion", dv, "topicConfigTable", table);
    } else {
        json_decref(table);
        json_decref(dv);
    }
    return meta_save(root, "topics.json", doc);
}

/* ---- subscription groups ------------------------------------------------- */

static int load_group(const char *path, const char *name, const json_t *obj, shmq_group_config_t *g)
{
    char entry[300];
    int rc;

    snprintf(entry, sizeof(entry), "group \"%.256s\"", name);
    if (name[0] == '\0' || strlen(name) >= sizeof(g->name)) {
        return meta_bad(path, "%s: name empty or longer than %zu bytes", entry,
                        sizeof(g->name) - 1);
    }
    if (!json_is_object(obj)) {
        return meta_bad(path, "%s: expected an object", entry);
    }
    shmq_group_config_init(g, name);
    long long retry_max = g->retry_max_times, retry_queues = g->retry_queue_nums;
    long long broker_id = g->broker_id, which = g->which_broker_when_consume_slowly;
    /* retryMaxTimes -1 is accepted as RocketMQ's "use the default". */
    if ((rc = opt_bool(path, entry, obj, "consumeEnable", &g->consume_enable)) < 0 ||
        (rc = opt_bool(path, entry, obj, "consumeBroadcastEnable", &g->consume_broadcast_enable)) <
            0 ||
        (rc = opt_bool(path, entry, obj, "consumeFromMinEnable", &g->consume_from_min_enable)) <
            0 ||
        (rc = opt_bool(path, entry, obj, "consumeMessageOrderly", &g->consume_message_orderly)) <
            0 ||
        (rc = opt_int(path, entry, obj, "retryMaxTimes", -1, QUEUE_NUMS_MAX, &retry_max)) < 0 ||
        (rc = opt_int(path, entry, obj, "retryQueueNums", 0, QUEUE_NUMS_MAX, &retry_queues)) < 0 ||
        (rc = opt_int(path, entry, obj, "brokerId", 0, INT64_MAX, &broker_id)) < 0 ||
        (rc = opt_int(path, entry, obj, "whichBrokerWhenConsumeSlowly", 0, INT32_MAX, &which)) <
            0) {
        return rc;
    }
    g->retry_max_times = (int32_t)retry_max;
    g->retry_queue_nums = (int32_t)retry_queues;
    g->broker_id = broker_id;
    g->which_broker_when_consume_slowly = (int32_t)which;

    const json_t *v = json_object_get(obj, "groupName");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), name) != 0)) {
        return meta_bad(path, "%s field \"groupName\": expected the string \"%.256s\"", entry,
                        name);
    }
    return 0;
}

int shmq_groups_load(const char *root, shmq_group_table_t *t)
{
    char path[PATH_MAX];
    json_t *doc, *sgt;
    shmq_group_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = meta_load(root, "subscriptionGroup.json", &doc, path, sizeof(path));
    if (rc < 0 || doc == NULL) {
        return rc;
    }
    rc = opt_object(path, doc, "subscriptionGroupTable", &sgt);
    if (rc == 0 && sgt != NULL) {
        const char *name;
        json_t *obj;
        json_object_foreach(sgt, name, obj)
        {
            shmq_group_config_t g;
            if ((rc = load_group(path, name, obj, &g)) < 0 ||
                (rc = shmq_group_table_put(&tmp, &g)) < 0) {
                break;
            }
        }
    }
    tmp.data_version_counter = 0;
    if (rc == 0) {
        rc = load_data_version(path, doc, &tmp.data_version_counter);
    }
    json_decref(doc);
    if (rc < 0) {
        shmq_group_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

int shmq_groups_save(const char *root, const shmq_group_table_t *t)
{
    json_t *table = json_object();
    for (size_t i = 0; table != NULL && i < t->count; i++) {
        const shmq_group_config_t *g = &t->groups[i];
        json_t *gj = json_pack(
            "{s:I,s:b,s:b,s:b,s:b,s:s,s:i,s:i,s:i}", "brokerId", (json_int_t)g->broker_id,
            "consumeBroadcastEnable", (int)g->consume_broadcast_enable, "consumeEnable",
            (int)g->consume_enable, "consumeFromMinEnable", (int)g->consume_from_min_enable,
            "consumeMessageOrderly", (int)g->consume_message_orderly, "groupName", g->name,
            "retryMaxTimes", (int)g->retry_max_times, "retryQueueNums", (int)g->retry_queue_nums,
            "whichBrokerWhenConsumeSlowly", (int)g->which_broker_when_consume_slowly);
        if (gj == NULL || json_object_set_new(table, g->name, gj) != 0) {
            json_decref(table);
            table = NULL;
        }
    }
    json_t *dv = data_version_new(t->data_version_counter);
    json_t *doc = NULL;
    if (table != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:{},s:o}", "dataVersion", dv, "forbiddenTable",
                        "subscriptionGroupTable", table);
    } else {
        json_decref(table);
        json_decref(dv);
    }
    return meta_save(root, "subscriptionGroup.json", doc);
}
