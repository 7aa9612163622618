/*
 * config/topicDeletes.json (topic_deletes.h): the cut of every deleted
 * topic.  A small shmq file, not one of RocketMQ's: read as untrusted input
 * (names checked, values bounded), written whole and atomically.
 */
#include "format/topic_deletes.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/store_files.h"
#include "shmq/errors.h"

#define CUTS_FILE    "topicDeletes.json"
#define CUTS_KEY     "topicDeletes"
#define CUTS_MAX_LEN (4 << 20)

static void cuts_path(const char *root, char *path, size_t len)
{
    snprintf(path, len, "%s/config/" CUTS_FILE, root);
}

shmq_topic_cut_t *shmq_topic_cuts_get(const shmq_topic_cuts_t *t, const char *topic, size_t len)
{
    for (size_t i = 0; i < t->count; i++) {
        shmq_topic_cut_t *c = &t->cuts[i];
        if (strlen(c->topic) == len && memcmp(c->topic, topic, len) == 0) {
            return c;
        }
    }
    return NULL;
}

int shmq_topic_cuts_set(shmq_topic_cuts_t *t, const char *topic, int64_t cut)
{
    size_t len = strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1);
    if (len == 0 || len > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic name empty or longer than %d bytes",
                              SHMQ_TOPIC_MAX_ANY);
    }
    shmq_topic_cut_t *c = shmq_topic_cuts_get(t, topic, len);
    if (c == NULL) {
        if (t->count == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 8;
            shmq_topic_cut_t *n = realloc(t->cuts, cap * sizeof(*n));
            if (n == NULL) {
                return -ENOMEM;
            }
            t->cuts = n;
            t->cap = cap;
        }
        c = &t->cuts[t->count++];
        memset(c, 0, sizeof(*c));
        memcpy(c->topic, topic, len);
    }
    c->cut = cut;
    return 0;
}

void shmq_topic_cuts_free(shmq_topic_cuts_t *t)
{
    free(t->cuts);
    memset(t, 0, sizeof(*t));
}

bool shmq_topic_cuts_hides(const shmq_topic_cuts_t *t, const char *topic, size_t len,
                           int64_t phys_offset)
{
    const shmq_topic_cut_t *c = t->count ? shmq_topic_cuts_get(t, topic, len) : NULL;
    return c != NULL && (c->cut < 0 || phys_offset < c->cut);
}

int shmq_topic_cuts_load(const char *root, shmq_topic_cuts_t *t)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    memset(t, 0, sizeof(*t));
    cuts_path(root, path, sizeof(path));
    int rc = shmq_store_file_read_all(path, CUTS_MAX_LEN, &text, &len);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc < 0) {
        return shmq_error_set(rc, "%s: %s", path, shmq_strerror(rc));
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    free(text);
    json_t *tab = doc ? json_object_get(doc, CUTS_KEY) : NULL;
    if (!json_is_object(tab)) {
        json_decref(doc);
        return shmq_error_set(SHMQ_E_JSON, "%s: no \"%s\" object%s%s", path, CUTS_KEY,
                              doc ? "" : ": ", doc ? "" : jerr.text);
    }
    const char *name;
    json_t *v;
    rc = 0;
    json_object_foreach(tab, name, v)
    {
        size_t nlen = strlen(name);
        if (shmq_topic_validate(name, nlen, SHMQ_TOPIC_MAX_ANY) < 0 || !json_is_integer(v) ||
            json_integer_value(v) < SHMQ_TOPIC_CUT_AT_START) {
            rc = shmq_error_set(SHMQ_E_JSON, "%s: bad entry \"%.255s\"", path, name);
            break;
        }
        if ((rc = shmq_topic_cuts_set(t, name, (int64_t)json_integer_value(v))) < 0) {
            break;
        }
    }
    json_decref(doc);
    if (rc < 0) {
        shmq_topic_cuts_free(t);
    }
    return rc;
}

int shmq_topic_cuts_save(const char *root, const shmq_topic_cuts_t *t)
{
    char path[PATH_MAX];
    char dir[PATH_MAX];
    cuts_path(root, path, sizeof(path));
    snprintf(dir, sizeof(dir), "%s/config", root);
    int rc = shmq_file_mkdirs(dir);
    if (rc < 0) {
        return shmq_error_wrap(rc, "cannot create %s", dir);
    }
    json_t *tab = json_object();
    json_t *doc = json_object();
    bool ok = tab && doc && json_object_set(doc, CUTS_KEY, tab) == 0;
    for (size_t i = 0; ok && i < t->count; i++) {
        ok = json_object_set_new(tab, t->cuts[i].topic, json_integer(t->cuts[i].cut)) == 0;
    }
    json_decref(tab);
    char *text = ok ? json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (text == NULL) {
        return shmq_error_set(-ENOMEM, "%s: out of memory", path);
    }
    rc = shmq_file_write_atomic(path, text, strlen(text));
    free(text);
    return rc;
}
