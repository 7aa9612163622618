/*
 * What each broker JSON file holds, and how a damaged entry of it is
 * handled (json_meta.h has the rules, docs/recovery.md every case):
 * consumerOffset.json and delayOffset.json (queue offsets: checked against
 * the queue's max offset, entries .bak has restored), topics.json (checked
 * against the consume queue directories), subscriptionGroup.json.  The
 * last two hold one entry a name and are read by one routine, named_load(),
 * told by a named_kind_t how they differ.
 *
 * A load works on the file chosen by meta_open() (the main file, else its
 * .bak); "other" is the .bak when the main file is read, the source of
 * replacements.  Results are built in jansson objects (hash lookups, so a
 * load stays linear in the entries) and copied into the caller's table.
 */
#include "format/json_meta_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/names.h"
#include "shmq/errors.h"

static const char *const consumer_top[] = {"offsetTable", "dataVersion", "groupTopicMap",
                                           "pullOffsetTable", NULL};
static const char *const delay_top[] = {"offsetTable", "dataVersion", NULL};
static const char *const topics_top[] = {"topicConfigTable", "dataVersion", NULL};
static const char *const groups_top[] = {"subscriptionGroupTable", "forbiddenTable", "dataVersion",
                                         NULL};

static const meta_kind_t kind_consumer = {
    "consumerOffset.json", "offsetTable", consumer_top,
    "to start with no committed offsets (each group then starts where it is told to)"};
static const meta_kind_t kind_delay = {
    "delayOffset.json", "offsetTable", delay_top,
    "(the messages still in the delay queues are then delivered again)"};
static const meta_kind_t kind_topics = {
    "topics.json", "topicConfigTable", topics_top,
    "to rebuild the topics from the consume queue directories with default settings"};
static const meta_kind_t kind_groups = {"subscriptionGroup.json", "subscriptionGroupTable",
                                        groups_top,
                                        "to give every consumer group the default settings"};

/* ---- queue offsets (consumerOffset.json, delayOffset.json) ------------------------ */

typedef struct off_ctx {
    meta_load_t ml;
    bool delay;  /* delayOffset.json: {level: offset} under the key "" */
    json_t *res; /* {key: {"qid": offset}} being built */
} off_ctx_t;

/*
 * "topic@group": a topic and a group, neither empty (the group may carry "@broadcast").
 * The group may hold any printable byte, '/' included: consumers may open a group of
 * any such name, and a running store saves its offsets.  The topic may not hold '/'
 * (it names a directory of consumequeue/ when its max offset is read from the files;
 * no topic with one can have messages: producers refuse such names).
 */
static bool consumer_key_ok(const char *key, char *why, size_t why_len)
{
    const char *at = strchr(key, '@');
    size_t len = strlen(key);
    if (at == NULL || at == key || at[1] == '\0') {
        snprintf(why, why_len, "the key is not topic@group");
        return false;
    }
    if ((size_t)(at - key) > SHMQ_TOPIC_MAX_ANY || len >= sizeof(((shmq_offset_entry_t *)0)->key)) {
        snprintf(why, why_len, "the key is too long");
        return false;
    }
    for (const char *p = key; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            snprintf(why, why_len, "the key has a control character");
            return false;
        }
        if (*p == '/' && p < at) {
            snprintf(why, why_len, "the topic has a '/'");
            return false;
        }
    }
    return true;
}

/* "group G, topic T, queue Q" or "level L" for a finding. */
static void off_label(const off_ctx_t *c, const char *key, long long qid, char *out, size_t len)
{
    if (c->delay) {
        snprintf(out, len, "level %lld", qid);
        return;
    }
    const char *at = strchr(key, '@');
    int tlen = at ? (int)(at - key) : (int)strlen(key);
    if (qid >= 0) {
        snprintf(out, len, "group %.200s, topic %.*s, queue %lld", at ? at + 1 : "?", tlen, key,
                 qid);
    } else {
        snprintf(out, len, "group %.200s, topic %.*s", at ? at + 1 : "?", tlen, key);
    }
}

static int res_set(json_t *res, const char *key, const char *qk, int64_t off)
{
    json_t *m = json_object_get(res, key);
    if (m == NULL) {
        m = json_object();
        if (m == NULL || json_object_set_new(res, key, m) != 0) {
            return -ENOMEM;
        }
    }
    return json_object_set_new(m, qk, json_integer(off)) == 0 ? 0 : -ENOMEM;
}

static bool res_has(const json_t *res, const char *key, const char *qk)
{
    const json_t *m = json_object_get(res, key);
    return m != NULL && json_object_get(m, qk) != NULL;
}

/* The queue map of key in a file's table ({qid: off}); the delay table is one map. */
static const json_t *queue_map(const off_ctx_t *c, const json_t *table, const char *key)
{
    if (table == NULL) {
        return NULL;
    }
    if (c->delay) {
        return table;
    }
    const json_t *m = json_object_get(table, key);
    return json_is_object(m) ? m : NULL;
}

/* A valid offset of key/qk in the .bak, if it has one. */
static bool other_offset(const off_ctx_t *c, const char *key, const char *qk, int64_t *off)
{
    const json_t *m = queue_map(c, c->ml.other ? c->ml.other->table : NULL, key);
    const json_t *v = m ? json_object_get(m, qk) : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *off = json_integer_value(v);
    return true;
}

static bool qid_key(const off_ctx_t *c, const char *qk, long long *qid)
{
    return meta_int_key(qk, c->delay ? 1 : 0, META_QUEUE_ID_MAX, qid) && qk[0] != '-' &&
           (qk[0] != '0' || qk[1] == '\0');
}

/* Settle one bad queue offset: the .bak's value, else dropped. */
static int off_bad_queue(off_ctx_t *c, const char *key, const char *qk, long long qid,
                         const char *why)
{
    char label[400];
    int64_t off;
    off_label(c, key, qid, label, sizeof(label));
    if (other_offset(c, key, qk, &off)) {
        meta_finding(&c->ml, SHMQ_META_WARN, "%s: %s: %s; using %lld from %s", c->ml.base->path,
                     label, why, (long long)off, c->ml.other->path);
        return res_set(c->res, key, qk, off);
    }
    meta_finding(&c->ml, SHMQ_META_WARN, "%s: %s: %s; dropped (%s has no valid value for it)",
                 c->ml.base->path, label, why, c->ml.other ? c->ml.other->path : "no .bak");
    return 0;
}

/* Settle a bad entry as a whole: every queue offset the .bak has for it. */
static int off_bad_entry(off_ctx_t *c, const char *key, const char *why)
{
    char label[400], w[300];
    off_label(c, key, -1, label, sizeof(label));
    const json_t *m = NULL;
    if (c->ml.other != NULL && consumer_key_ok(key, w, sizeof(w))) {
        m = queue_map(c, c->ml.other->table, key);
    }
    int n = 0, rc = 0;
    const char *qk;
    json_t *v;
    json_object_foreach((json_t *)m, qk, v)
    {
        long long qid;
        int64_t off;
        if (rc == 0 && qid_key(c, qk, &qid) && other_offset(c, key, qk, &off)) {
            rc = res_set(c->res, key, qk, off);
            n++;
        }
    }
    if (n > 0) {
        meta_finding(&c->ml, SHMQ_META_WARN,
                     "%s: entry \"%.300s\" (%s): %s; its %d queue offsets restored from %s",
                     c->ml.base->path, key, label, why, n, c->ml.other->path);
    } else {
        meta_finding(&c->ml, SHMQ_META_WARN, "%s: entry \"%.300s\": %s; dropped", c->ml.base->path,
                     key, why);
    }
    return rc;
}

/* The queue offsets of one entry ({qid: offset}; the whole table for delay levels). */
static int off_read_map(off_ctx_t *c, const char *key, const json_t *map)
{
    const char *qk;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)map, qk, v)
    {
        long long qid = -1;
        char w[200];
        if (!qid_key(c, qk, &qid)) {
            char label[400];
            off_label(c, key, -1, label, sizeof(label));
            meta_finding(&c->ml, SHMQ_META_WARN, "%s: %s%s\"%.40s\" is not a %s; dropped",
                         c->ml.base->path, c->delay ? "" : label, c->delay ? "" : ": ", qk,
                         c->delay ? "delay level (1..65535)" : "queue id (0..65535)");
            continue;
        }
        if (!json_is_integer(v)) {
            char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(w, sizeof(w), "offset %.60s%s is not an integer", text ? text : "?",
                     text != NULL && strlen(text) > 60 ? "..." : "");
            free(text);
            rc = off_bad_queue(c, key, qk, qid, w);
        } else if (json_integer_value(v) < 0) {
            snprintf(w, sizeof(w), "offset %lld is negative", (long long)json_integer_value(v));
            rc = off_bad_queue(c, key, qk, qid, w);
        } else {
            rc = res_set(c->res, key, qk, json_integer_value(v));
        }
        if (rc < 0) {
            break;
        }
    }
    return rc;
}

/* Step 1: the entries of the file read; bad ones replaced from .bak or dropped. */
static int off_read_base(off_ctx_t *c)
{
    const json_t *table = c->ml.base->table;
    if (c->delay) {
        return off_read_map(c, "", table);
    }
    const char *key;
    json_t *map;
    int rc = 0;
    json_object_foreach((json_t *)table, key, map)
    {
        char why[300];
        if (!consumer_key_ok(key, why, sizeof(why))) {
            rc = off_bad_entry(c, key, why);
        } else if (!json_is_object(map)) {
            rc = off_bad_entry(c, key, "expected an object of queue offsets");
        } else {
            rc = off_read_map(c, key, map);
        }
        if (rc < 0) {
            break;
        }
    }
    return rc;
}

/* A key of the file read, absent from .bak, one bit away from key (a damaged name of it?). */
static const char *near_key(const off_ctx_t *c, const char *key)
{
    const char *k;
    json_t *v;
    json_object_foreach(c->ml.base->table, k, v)
    {
        if (json_object_get(c->ml.other->table, k) == NULL && shmq_meta_one_bit_apart(k, key)) {
            return k;
        }
    }
    return NULL;
}

/* Restore the offsets of key that the .bak has and the result lacks; true if any. */
static int off_restore_map(off_ctx_t *c, const char *key, const json_t *m, bool *any)
{
    const char *qk;
    json_t *v;
    json_object_foreach((json_t *)m, qk, v)
    {
        long long qid;
        int64_t off;
        if (!qid_key(c, qk, &qid) || !other_offset(c, key, qk, &off) || res_has(c->res, key, qk)) {
            continue;
        }
        char label[400];
        off_label(c, key, qid, label, sizeof(label));
        meta_finding(&c->ml, SHMQ_META_WARN, "%s: %s is missing; restored from %s (offset %lld)",
                     c->ml.base->path, label, c->ml.other->path, (long long)off);
        int rc = res_set(c->res, key, qk, off);
        if (rc < 0) {
            return rc;
        }
        *any = true;
    }
    return 0;
}

/* Step 2: offsets the .bak holds and the file lacks: restored (a save that removes
 * offsets is made twice, shmq_consumer_offsets_save_dropped, so the .bak lacks them too). */
static int off_restore_missing(off_ctx_t *c)
{
    bool any = false;
    if (c->delay) {
        return off_restore_map(c, "", c->ml.other->table, &any);
    }
    const char *key;
    json_t *map;
    json_object_foreach(c->ml.other->table, key, map)
    {
        char why[300];
        if (!json_is_object(map) || !consumer_key_ok(key, why, sizeof(why))) {
            continue;
        }
        any = false;
        int rc = off_restore_map(c, key, map, &any);
        if (rc < 0) {
            return rc;
        }
        const char *near = any ? near_key(c, key) : NULL;
        if (near != NULL) {
            meta_finding(&c->ml, SHMQ_META_NOTE,
                         "%s: entry \"%.300s\" (not in %s) differs from \"%.300s\" by one bit: it "
                         "may be a damaged copy of it (kept)",
                         c->ml.base->path, near, c->ml.other->path, key);
        }
    }
    return 0;
}

/*
 * Step 3: no offset out of its queue's range (a queue its topic lacks has max offset 0).
 * A consumer offset may be up to max + 1 (what a commit may store: nothing a running
 * store could have written is taken away); above that it takes the .bak value when
 * that one is in range, else it is dropped: the group then starts that queue where it
 * is told to, which may deliver messages again but never skips one.  A delay offset
 * may be up to max; above that it takes the .bak value, else max.
 */
static void off_check_max(off_ctx_t *c, shmq_meta_queue_max_fn qmax, void *qarg)
{
    const char *key;
    json_t *map;
    json_object_foreach(c->res, key, map)
    {
        char topic[SHMQ_TOPIC_MAX_ANY + 1];
        const char *at = strchr(key, '@');
        if (c->delay) {
            snprintf(topic, sizeof(topic), "%s", SHMQ_SCHEDULE_TOPIC);
        } else {
            snprintf(topic, sizeof(topic), "%.*s", at ? (int)(at - key) : 0, key);
        }
        const char *qk;
        json_t *v;
        void *next;
        json_object_foreach_safe(map, next, qk, v)
        {
            long long qid = strtoll(qk, NULL, 10);
            int64_t max = 0, off = json_integer_value(v), alt;
            int rc = qmax(qarg, topic, (int32_t)(c->delay ? qid - 1 : qid), &max);
            if (rc == SHMQ_E_NOT_FOUND) {
                max = 0;
            } else if (rc < 0) {
                continue; /* cannot be told */
            }
            int64_t limit = c->delay ? max : max + 1;
            if (off <= limit) {
                continue;
            }
            char label[400];
            off_label(c, key, qid, label, sizeof(label));
            const char *why = rc == SHMQ_E_NOT_FOUND ? " (the topic has no such queue)" : "";
            if (c->ml.other != NULL && other_offset(c, key, qk, &alt) && alt <= limit) {
                meta_finding(&c->ml, SHMQ_META_WARN,
                             "%s: %s: offset %lld is above the queue's max offset %lld%s; using "
                             "%lld from %s",
                             c->ml.base->path, label, (long long)off, (long long)max, why,
                             (long long)alt, c->ml.other->path);
                json_integer_set(v, alt);
            } else if (c->delay) {
                meta_finding(&c->ml, SHMQ_META_WARN,
                             "%s: %s: offset %lld is above the queue's max offset %lld%s; using "
                             "%lld (the max offset)",
                             c->ml.base->path, label, (long long)off, (long long)max, why,
                             (long long)max);
                json_integer_set(v, max);
            } else {
                char src[PATH_MAX + 64];
                if (c->ml.other != NULL) {
                    snprintf(src, sizeof(src), "%s has no offset for it up to %lld",
                             c->ml.other->path, (long long)limit);
                } else {
                    snprintf(src, sizeof(src), "no .bak to take one from");
                }
                meta_finding(&c->ml, SHMQ_META_WARN,
                             "%s: %s: offset %lld is above the queue's max offset %lld%s; dropped "
                             "(%s): the group starts the queue where it is told to",
                             c->ml.base->path, label, (long long)off, (long long)max, why, src);
                char gone[16];
                snprintf(gone, sizeof(gone), "%s", qk); /* qk goes with its entry */
                json_object_del(map, gone);
            }
        }
    }
}

static int offsets_load(const meta_kind_t *k, bool delay, const char *root, shmq_offset_table_t *t,
                        shmq_meta_queue_max_fn qmax, void *qarg, shmq_meta_report_t *rep)
{
    off_ctx_t c;
    shmq_offset_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    if (rep != NULL) {
        memset(rep, 0, sizeof(*rep));
    }
    memset(&c, 0, sizeof(c));
    int rc = meta_open(&c.ml, k, root, false);
    if (rc < 0) {
        if (rep != NULL) {
            rep->warnings = 1;
        }
        return rc;
    }
    c.delay = delay;
    c.res = json_object();
    if (c.res == NULL) {
        meta_close(&c.ml, rep);
        return -ENOMEM;
    }
    if (c.ml.base != NULL) {
        meta_check_top_keys(&c.ml);
        meta_data_version(&c.ml, &tmp.data_version_counter, &tmp.data_version_state);
        rc = off_read_base(&c);
        if (rc == 0 && c.ml.other != NULL) {
            rc = off_restore_missing(&c);
        }
        if (rc == 0 && qmax != NULL) {
            off_check_max(&c, qmax, qarg);
        }
    }
    const char *key;
    json_t *map;
    json_object_foreach(c.res, key, map)
    {
        const char *qk;
        json_t *v;
        json_object_foreach(map, qk, v)
        {
            if (rc == 0) {
                rc = shmq_offset_table_set(&tmp, key, (int32_t)strtol(qk, NULL, 10),
                                           json_integer_value(v));
            }
        }
    }
    json_decref(c.res);
    meta_close(&c.ml, rep);
    if (rc < 0) {
        shmq_offset_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

int shmq_consumer_offsets_load_ex(const char *root, shmq_offset_table_t *t,
                                  shmq_meta_queue_max_fn qmax, void *qarg, shmq_meta_report_t *rep)
{
    return offsets_load(&kind_consumer, false, root, t, qmax, qarg, rep);
}

int shmq_consumer_offsets_load(const char *root, shmq_offset_table_t *t)
{
    return offsets_load(&kind_consumer, false, root, t, shmq_meta_disk_queue_max, (void *)root,
                        NULL);
}

int shmq_delay_offsets_load_ex(const char *root, shmq_offset_table_t *t,
                               shmq_meta_queue_max_fn qmax, void *qarg, shmq_meta_report_t *rep)
{
    return offsets_load(&kind_delay, true, root, t, qmax, qarg, rep);
}

int shmq_delay_offsets_load(const char *root, shmq_offset_table_t *t)
{
    return offsets_load(&kind_delay, true, root, t, shmq_meta_disk_queue_max, (void *)root, NULL);
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
    /* dataVersion continues the file's (a RocketMQ-written one keeps its history). */
    return meta_save(root, &kind_consumer, ot ? json_pack("{s:o}", "offsetTable", ot) : NULL, true);
}

int shmq_consumer_offsets_save_dropped(const char *root, const shmq_offset_table_t *t)
{
    int rc = shmq_consumer_offsets_save(root, t);
    return rc < 0 ? rc : shmq_consumer_offsets_save(root, t);
}

int shmq_consumer_offsets_dump(const shmq_offset_table_t *t, char **text, size_t *len)
{
    json_t *ot = offsets_by_key(t);
    json_t *doc = ot ? json_pack("{s:o}", "offsetTable", ot) : NULL;
    char *out = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (out == NULL) {
        return -ENOMEM;
    }
    *text = out;
    *len = strlen(out);
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
    json_t *dv = meta_data_version_new(t->data_version_counter, t->data_version_state);
    json_t *doc = NULL;
    if (ot != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:o}", "offsetTable", ot, "dataVersion", dv);
    } else {
        json_decref(ot);
        json_decref(dv);
    }
    return meta_save(root, &kind_delay, doc, false);
}

/* ---- topics and groups: one entry a name ---------------------------------- */

/*
 * topics.json and subscriptionGroup.json are read alike: each entry of the
 * file read is parsed; one whose key and name field differ is read under
 * the name the store knows; a damaged one is replaced by the .bak's entry,
 * else made from the store, else dropped.  named_kind_t says how the two
 * files differ.
 */
typedef union named_entry {
    shmq_topic_config_t topic;
    shmq_group_config_t group;
} named_entry_t;

typedef struct named_kind {
    const meta_kind_t *file;
    const char *what;       /* "topic", in findings */
    const char *name_field; /* "topicName": the entry's copy of its key */
    const char *dropped;    /* what a dropped entry means, in its finding */
    /* One entry into *e, *named its name field (NULL when absent); false with why when damaged. */
    bool (*parse)(const char *name, const json_t *obj, named_entry_t *e, const char **named,
                  char *why, size_t why_len);
    int (*put)(void *table, const named_entry_t *e);
    /* What the consume queue directories tell of name ("it has consume queues"), else NULL. */
    const char *(*in_store)(const meta_cq_topics_t *cq, const char *name);
    /* NULL, or an entry made from the store for a damaged one, how said; false if none. */
    bool (*from_store)(const meta_cq_topics_t *cq, const char *name, named_entry_t *e, char *how,
                       size_t how_len);
    /*
     * NULL, or step 2: entries the store has and the file lacks.  The consume
     * queues are then a source of entries and a load fails when they cannot be
     * read; otherwise they only witness names.
     */
    int (*restore)(const struct named_kind *k, meta_load_t *ml, const meta_cq_topics_t *cq,
                   void *table);
} named_kind_t;

/* What the store knows of a name: "" when nothing. */
static const char *named_known(const named_kind_t *k, const meta_load_t *ml,
                               const meta_cq_topics_t *cq, const char *name)
{
    const char *s = k->in_store(cq, name);
    if (s != NULL) {
        return s;
    }
    if (ml->other != NULL && json_object_get(ml->other->table, name) != NULL) {
        return "it is in the .bak";
    }
    return "";
}

/* The .bak's entry for name, if valid and named so. */
static bool named_from_other(const named_kind_t *k, const meta_load_t *ml, const char *name,
                             named_entry_t *e)
{
    const json_t *obj = ml->other ? json_object_get(ml->other->table, name) : NULL;
    const char *named;
    char why[300];
    return obj != NULL && k->parse(name, obj, e, &named, why, sizeof(why)) &&
           (named == NULL || strcmp(named, name) == 0);
}

/*
 * Entry obj, read into *e, has key name and name field named, which differ:
 * one of the two names is damaged; keep the one the store knows, the key
 * first.  Read under named, the entry is parsed again (which checks named
 * as a key).  False with why when the store knows neither.
 */
static bool named_choose(const named_kind_t *k, meta_load_t *ml, const meta_cq_topics_t *cq,
                         const char *name, const json_t *obj, const char *named, named_entry_t *e,
                         char *why, size_t why_len)
{
    const char *again;
    const char *kk = named_known(k, ml, cq, name), *kn = named_known(k, ml, cq, named);
    if (kk[0] != '\0') {
        meta_finding(ml, SHMQ_META_WARN,
                     "%s: %s \"%s\": %s \"%.256s\" differs from the key; read as \"%s\" (%s)",
                     ml->base->path, k->what, name, k->name_field, named, name, kk);
        return true;
    }
    if (kn[0] != '\0' && json_object_get(ml->base->table, named) == NULL &&
        k->parse(named, obj, e, &again, why, why_len)) {
        meta_finding(ml, SHMQ_META_WARN,
                     "%s: %s key \"%s\" differs from its %s \"%s\"; read as \"%s\" (%s)",
                     ml->base->path, k->what, name, k->name_field, named, named, kn);
        return true;
    }
    snprintf(why, why_len, "its key and %s \"%.256s\" differ, and the store knows neither",
             k->name_field, named);
    return false;
}

/* Step 1: the entries of the file read; damaged ones replaced or dropped. */
static int named_read_base(const named_kind_t *k, meta_load_t *ml, const meta_cq_topics_t *cq,
                           void *table)
{
    const char *name;
    json_t *obj;
    int rc = 0;
    json_object_foreach(ml->base->table, name, obj)
    {
        named_entry_t e;
        const char *named;
        char why[400], how[300];
        bool ok = k->parse(name, obj, &e, &named, why, sizeof(why));
        if (ok && named != NULL && strcmp(named, name) != 0 && !ml->quiet) {
            ok = named_choose(k, ml, cq, name, obj, named, &e, why, sizeof(why));
        }
        if (ok) {
            rc = k->put(table, &e);
        } else if (named_from_other(k, ml, name, &e)) {
            meta_finding(ml, SHMQ_META_WARN, "%s: %s \"%s\": %s; using its entry in %s",
                         ml->base->path, k->what, name, why, ml->other->path);
            rc = k->put(table, &e);
        } else if (!ml->quiet && k->from_store != NULL &&
                   k->from_store(cq, name, &e, how, sizeof(how))) {
            meta_finding(ml, SHMQ_META_WARN, "%s: %s \"%s\": %s; %s", ml->base->path, k->what, name,
                         why, how);
            rc = k->put(table, &e);
        } else {
            meta_finding(ml, SHMQ_META_WARN, "%s: %s \"%s\": %s; %s", ml->base->path, k->what, name,
                         why, k->dropped);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * Load k's file into table (empty, of k's type; the caller frees it on an
 * error) and its dataVersion into *dv_counter and *dv_state.
 */
static int named_load(const named_kind_t *k, const char *root, bool quiet, void *table,
                      int64_t *dv_counter, int64_t *dv_state, shmq_meta_report_t *rep)
{
    meta_load_t ml;
    meta_cq_topics_t cq = {0};

    if (rep != NULL) {
        memset(rep, 0, sizeof(*rep));
    }
    int rc = meta_open(&ml, k->file, root, quiet);
    if (rc < 0) {
        if (rep != NULL) {
            rep->warnings = quiet ? 0 : 1;
        }
        return rc;
    }
    if (!quiet && (k->restore != NULL || ml.base != NULL)) {
        rc = meta_cq_topics_scan(root, &cq);
        if (rc < 0 && k->restore != NULL) {
            rc = shmq_error_set(rc, "%s/consumequeue: %s", root, shmq_strerror(rc));
        } else if (rc < 0) {
            rc = 0; /* names are then told by the .bak only */
        }
    }
    if (rc == 0 && ml.base != NULL) {
        meta_check_top_keys(&ml);
        rc = named_read_base(k, &ml, &cq, table);
    }
    if (rc == 0 && !quiet && k->restore != NULL) {
        rc = k->restore(k, &ml, &cq, table);
    }
    /* put() counted every insert: the counter is the file's. */
    meta_data_version(&ml, dv_counter, dv_state);
    meta_cq_topics_free(&cq);
    meta_close(&ml, rep);
    return rc;
}

/* ---- topics -------------------------------------------------------------- */

static const char *const topic_fields[] = {"attributes",    "order",           "perm",
                                           "readQueueNums", "topicFilterType", "topicName",
                                           "topicSysFlag",  "writeQueueNums",  NULL};

/* A name that can be a consume queue directory. */
static bool name_ok(const char *name, size_t max, char *why, size_t why_len)
{
    size_t n = strlen(name);
    if (n == 0 || n > max) {
        snprintf(why, why_len, "name empty or longer than %zu bytes", max);
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, why_len, "name \"%s\"", name);
        return false;
    }
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == '/') {
            snprintf(why, why_len, "the name has a control character or '/'");
            return false;
        }
    }
    return true;
}

/*
 * A topic name from a file obeys the rules a producer's does
 * (shmq_topic_validate): a name like "../../x" never becomes a directory.
 */
static bool topic_name_ok(const char *name, char *why, size_t why_len)
{
    int rc = shmq_topic_validate(name, strlen(name), SHMQ_TOPIC_MAX_ANY);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        snprintf(why, why_len, "not a valid topic name (%s)", d[0] ? d : shmq_strerror(rc));
        return false;
    }
    return true;
}

/*
 * One topics.json entry into e->topic (its name: the key).  *named gets its
 * "topicName" (NULL when absent).  False with why when damaged.
 */
static bool topic_parse(const char *name, const json_t *obj, named_entry_t *e, const char **named,
                        char *why, size_t why_len)
{
    shmq_topic_config_t *tc = &e->topic;
    long long rq = 16, wq = 16, perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE, sysflag = 0;

    memset(tc, 0, sizeof(*tc));
    *named = NULL;
    if (!name_ok(name, sizeof(tc->name) - 1, why, why_len) || !topic_name_ok(name, why, why_len)) {
        return false;
    }
    if (!json_is_object(obj)) {
        snprintf(why, why_len, "expected an object");
        return false;
    }
    snprintf(tc->name, sizeof(tc->name), "%s", name);
    /* Absent fields take TopicConfig's defaults (16 queues, perm 6). */
    if (!meta_opt_int(obj, "readQueueNums", 1, META_QUEUE_NUMS_MAX, &rq, why, why_len) ||
        !meta_opt_int(obj, "writeQueueNums", 1, META_QUEUE_NUMS_MAX, &wq, why, why_len) ||
        !meta_opt_int(obj, "perm", 0, 15, &perm, why, why_len) ||
        !meta_opt_int(obj, "topicSysFlag", 0, INT32_MAX, &sysflag, why, why_len) ||
        !meta_opt_bool(obj, "order", &tc->order, why, why_len) ||
        meta_damaged_field_name(obj, topic_fields, why, why_len)) {
        return false;
    }
    tc->read_queue_nums = (int32_t)rq;
    tc->write_queue_nums = (int32_t)wq;
    tc->perm = (int32_t)perm;
    tc->topic_sys_flag = (int32_t)sysflag;

    const json_t *v = json_object_get(obj, "topicName");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            snprintf(why, why_len, "field \"topicName\": expected a string");
            return false;
        }
        *named = json_string_value(v);
    }
    v = json_object_get(obj, "topicFilterType");
    if (v != NULL && !json_is_null(v)) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "MULTI_TAG") == 0) {
            tc->multi_tag = true;
        } else if (strcmp(s, "SINGLE_TAG") != 0) {
            snprintf(why, why_len, "field \"topicFilterType\": expected SINGLE_TAG or MULTI_TAG");
            return false;
        }
    }
    v = json_object_get(obj, "attributes");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            snprintf(why, why_len, "field \"attributes\": expected an object");
            return false;
        }
        if (json_object_size(v) > 0) {
            char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            size_t n = text ? strlen(text) : sizeof(tc->attributes);
            if (n < sizeof(tc->attributes)) {
                memcpy(tc->attributes, text, n + 1);
            }
            free(text);
            if (n >= sizeof(tc->attributes)) {
                snprintf(why, why_len, "field \"attributes\": longer than %zu bytes",
                         sizeof(tc->attributes) - 1);
                return false;
            }
        }
    }
    return true;
}

static int topic_put(void *table, const named_entry_t *e)
{
    return shmq_topic_table_put(table, &e->topic);
}

static const char *topic_in_store(const meta_cq_topics_t *cq, const char *name)
{
    return meta_cq_topics_get(cq, name) != NULL ? "it has consume queues" : NULL;
}

/* A topic with consume queues and no entry: defaults, one queue per directory. */
static void topic_derived(shmq_topic_config_t *tc, const meta_cq_topic_t *q)
{
    memset(tc, 0, sizeof(*tc));
    snprintf(tc->name, sizeof(tc->name), "%s", q->name);
    tc->read_queue_nums = q->queues;
    tc->write_queue_nums = q->queues;
    tc->perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
}

/* A damaged entry of a topic with consume queues. */
static bool topic_from_store(const meta_cq_topics_t *cq, const char *name, named_entry_t *e,
                             char *how, size_t how_len)
{
    const meta_cq_topic_t *q = meta_cq_topics_get(cq, name);
    if (q == NULL) {
        return false;
    }
    topic_derived(&e->topic, q);
    snprintf(how, how_len,
             "restored with %d read and write queues (its consume queue directories) and perm 6: "
             "check its settings",
             (int)q->queues);
    return true;
}

/* Topics with consume queues but no entry: their messages would be unreachable. */
static int topics_restore(const named_kind_t *k, meta_load_t *ml, const meta_cq_topics_t *cq,
                          void *table)
{
    shmq_topic_table_t *tmp = table;
    for (size_t i = 0; i < cq->count; i++) {
        const meta_cq_topic_t *q = &cq->t[i];
        named_entry_t e;
        int rc = 0;
        if (shmq_topic_table_get(tmp, q->name) == NULL) {
            if (named_from_other(k, ml, q->name, &e)) {
                meta_finding(ml, SHMQ_META_WARN,
                             "%s: topic \"%s\" has consume queues (%s/consumequeue/%s) but no "
                             "entry; restored from %s",
                             meta_base_path(ml), q->name, ml->root, q->name, ml->other->path);
            } else {
                topic_derived(&e.topic, q);
                meta_finding(ml, SHMQ_META_WARN,
                             "%s: topic \"%s\" has consume queues (%s/consumequeue/%s) but no "
                             "entry; restored with %d read and write queues (one per directory) "
                             "and perm 6: check its settings",
                             meta_base_path(ml), q->name, ml->root, q->name, (int)q->queues);
            }
            rc = shmq_topic_table_put(tmp, &e.topic);
        }
        if (rc < 0) {
            return rc;
        }
        const shmq_topic_config_t *have = shmq_topic_table_get(tmp, q->name);
        if (have != NULL && have->read_queue_nums < q->queues) {
            meta_finding(ml, SHMQ_META_NOTE,
                         "%s: topic \"%s\": readQueueNums %d, but it has a consume queue %d: "
                         "consumers do not read queues %d..%d",
                         meta_base_path(ml), q->name, (int)have->read_queue_nums,
                         (int)q->queues - 1, (int)have->read_queue_nums, (int)q->queues - 1);
        }
    }
    return 0;
}

static const named_kind_t named_topics = {
    .file = &kind_topics,
    .what = "topic",
    .name_field = "topicName",
    .dropped = "dropped (no valid entry in the .bak, no consume queue)",
    .parse = topic_parse,
    .put = topic_put,
    .in_store = topic_in_store,
    .from_store = topic_from_store,
    .restore = topics_restore,
};

int shmq_topics_load_ex(const char *root, shmq_topic_table_t *t, unsigned flags,
                        shmq_meta_report_t *rep)
{
    shmq_topic_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = named_load(&named_topics, root, flags & SHMQ_META_QUIET, &tmp,
                        &tmp.data_version_counter, &tmp.data_version_state, rep);
    if (rc < 0) {
        shmq_topic_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

int shmq_topics_load(const char *root, shmq_topic_table_t *t)
{
    return shmq_topics_load_ex(root, t, 0, NULL);
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
    json_t *dv = meta_data_version_new(t->data_version_counter, t->data_version_state);
    json_t *doc = NULL;
    if (table != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:o}", "dataVersion", dv, "topicConfigTable", table);
    } else {
        json_decref(table);
        json_decref(dv);
    }
    return meta_save(root, &kind_topics, doc, false);
}

/* ---- subscription groups ------------------------------------------------- */

static const char *const group_fields[] = {"attributes",
                                           "brokerId",
                                           "consumeBroadcastEnable",
                                           "consumeEnable",
                                           "consumeFromMinEnable",
                                           "consumeMessageOrderly",
                                           "consumeTimeoutMinute",
                                           "groupName",
                                           "groupRetryPolicy",
                                           "groupSysFlag",
                                           "notifyConsumerIdsChangedEnable",
                                           "retryMaxTimes",
                                           "retryQueueNums",
                                           "subscriptionDataSet",
                                           "whichBrokerWhenConsumeSlowly",
                                           NULL};

/*
 * One subscriptionGroup.json entry into e->group (its name: the key).
 * *named gets its "groupName" (NULL when absent).  False with why when damaged.
 */
static bool group_parse(const char *name, const json_t *obj, named_entry_t *e, const char **named,
                        char *why, size_t why_len)
{
    shmq_group_config_t *g = &e->group;

    *named = NULL;
    if (!name_ok(name, sizeof(g->name) - 1, why, why_len)) {
        return false;
    }
    if (!json_is_object(obj)) {
        snprintf(why, why_len, "expected an object");
        return false;
    }
    shmq_group_config_init(g, name);
    long long retry_max = g->retry_max_times, retry_queues = g->retry_queue_nums;
    long long broker_id = g->broker_id, which = g->which_broker_when_consume_slowly;
    long long timeout = 15, sysflag = 0;
    bool notify = true;
    /* retryMaxTimes -1 is accepted as RocketMQ's "use the default". */
    if (!meta_opt_bool(obj, "consumeEnable", &g->consume_enable, why, why_len) ||
        !meta_opt_bool(obj, "consumeBroadcastEnable", &g->consume_broadcast_enable, why, why_len) ||
        !meta_opt_bool(obj, "consumeFromMinEnable", &g->consume_from_min_enable, why, why_len) ||
        !meta_opt_bool(obj, "consumeMessageOrderly", &g->consume_message_orderly, why, why_len) ||
        !meta_opt_bool(obj, "notifyConsumerIdsChangedEnable", &notify, why, why_len) ||
        !meta_opt_int(obj, "retryMaxTimes", -1, META_QUEUE_NUMS_MAX, &retry_max, why, why_len) ||
        !meta_opt_int(obj, "retryQueueNums", 0, META_QUEUE_NUMS_MAX, &retry_queues, why, why_len) ||
        !meta_opt_int(obj, "brokerId", 0, INT64_MAX, &broker_id, why, why_len) ||
        !meta_opt_int(obj, "whichBrokerWhenConsumeSlowly", 0, INT32_MAX, &which, why, why_len) ||
        !meta_opt_int(obj, "consumeTimeoutMinute", 0, INT32_MAX, &timeout, why, why_len) ||
        !meta_opt_int(obj, "groupSysFlag", 0, INT32_MAX, &sysflag, why, why_len) ||
        meta_damaged_field_name(obj, group_fields, why, why_len)) {
        return false;
    }
    g->retry_max_times = (int32_t)retry_max;
    g->retry_queue_nums = (int32_t)retry_queues;
    g->broker_id = broker_id;
    g->which_broker_when_consume_slowly = (int32_t)which;

    const json_t *v = json_object_get(obj, "groupName");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            snprintf(why, why_len, "field \"groupName\": expected a string");
            return false;
        }
        *named = json_string_value(v);
    }
    return true;
}

static int group_put(void *table, const named_entry_t *e)
{
    return shmq_group_table_put(table, &e->group);
}

static const char *group_in_store(const meta_cq_topics_t *cq, const char *name)
{
    char retry[SHMQ_TOPIC_MAX_ANY + 1];
    snprintf(retry, sizeof(retry), "%s%s", SHMQ_RETRY_PREFIX, name);
    return meta_cq_topics_get(cq, retry) != NULL ? "it has a retry topic" : NULL;
}

/* No step 2: a group without an entry gets the default settings. */
static const named_kind_t named_groups = {
    .file = &kind_groups,
    .what = "group",
    .name_field = "groupName",
    .dropped = "dropped: the group gets the default settings (retryMaxTimes 16, retryQueueNums 1)",
    .parse = group_parse,
    .put = group_put,
    .in_store = group_in_store,
};

int shmq_groups_load_ex(const char *root, shmq_group_table_t *t, shmq_meta_report_t *rep)
{
    shmq_group_table_t tmp = {0};

    memset(t, 0, sizeof(*t));
    int rc = named_load(&named_groups, root, false, &tmp, &tmp.data_version_counter,
                        &tmp.data_version_state, rep);
    if (rc < 0) {
        shmq_group_table_free(&tmp);
        return rc;
    }
    *t = tmp;
    return 0;
}

int shmq_groups_load(const char *root, shmq_group_table_t *t)
{
    return shmq_groups_load_ex(root, t, NULL);
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
    json_t *dv = meta_data_version_new(t->data_version_counter, t->data_version_state);
    json_t *doc = NULL;
    if (table != NULL && dv != NULL) {
        doc = json_pack("{s:o,s:{},s:o}", "dataVersion", dv, "forbiddenTable",
                        "subscriptionGroupTable", table);
    } else {
        json_decref(table);
        json_decref(dv);
    }
    return meta_save(root, &kind_groups, doc, false);
}
