/*
 * The in-memory metadata tables declared in store_files.h: queue offsets
 * (consumerOffset.json, delayOffset.json), topics (topics.json) and
 * subscription groups (subscriptionGroup.json) as json_meta.c loads and
 * saves them and the control block copies them.  Plain growing arrays
 * looked up by name; no file is touched here.
 */
#include "format/store_files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq/errors.h"

/* ---- in-memory metadata tables (persisted by json_meta.c) -------------- */

/* The tables' arrays double from 16 entries; returns items (reallocated when
 * count reached *cap, with *cap updated) or NULL when out of memory. */
static void *table_grow(void *items, size_t count, size_t *cap, size_t size)
{
    if (count < *cap) {
        return items;
    }
    size_t n = *cap ? *cap * 2 : 16;
    void *m = realloc(items, n * size);
    if (m != NULL) {
        *cap = n;
    }
    return m;
}

/* A table's key is a NUL-terminated name that fits its field. */
static int table_name_check(const char *kind, const char *name, size_t size)
{
    size_t n = strnlen(name, size);
    if (n == 0 || n == size) {
        return shmq_error_set(SHMQ_E_ARG, "%s name empty or longer than %zu bytes", kind, size - 1);
    }
    return 0;
}

int shmq_offset_table_set(shmq_offset_table_t *t, const char *key, int32_t queue_id, int64_t offset)
{
    if (strlen(key) >= sizeof(t->entries[0].key)) {
        return shmq_error_set(SHMQ_E_ARG, "offset key \"%.64s...\" is too long", key);
    }
    for (size_t i = 0; i < t->count; i++) {
        shmq_offset_entry_t *e = &t->entries[i];
        if (e->queue_id == queue_id && strcmp(e->key, key) == 0) {
            e->offset = offset;
            return 0;
        }
    }
    shmq_offset_entry_t *grown = table_grow(t->entries, t->count, &t->cap, sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    t->entries = grown;
    shmq_offset_entry_t *e = &t->entries[t->count++];
    memset(e, 0, sizeof(*e));
    strcpy(e->key, key);
    e->queue_id = queue_id;
    e->offset = offset;
    return 0;
}

int shmq_offset_table_get(const shmq_offset_table_t *t, const char *key, int32_t queue_id,
                          int64_t *offset)
{
    for (size_t i = 0; i < t->count; i++) {
        const shmq_offset_entry_t *e = &t->entries[i];
        if (e->queue_id == queue_id && strcmp(e->key, key) == 0) {
            *offset = e->offset;
            return 0;
        }
    }
    return SHMQ_E_NOT_FOUND;
}

void shmq_offset_table_free(shmq_offset_table_t *t)
{
    free(t->entries);
    memset(t, 0, sizeof(*t));
}

int shmq_topic_table_put(shmq_topic_table_t *t, const shmq_topic_config_t *tc)
{
    int rc = table_name_check("topic", tc->name, sizeof(tc->name));
    if (rc < 0) {
        return rc;
    }
    shmq_topic_config_t *slot = (shmq_topic_config_t *)shmq_topic_table_get(t, tc->name);
    if (slot == NULL) {
        shmq_topic_config_t *grown = table_grow(t->topics, t->count, &t->cap, sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        t->topics = grown;
        slot = &t->topics[t->count++];
    }
    *slot = *tc;
    t->data_version_counter++;
    return 0;
}

const shmq_topic_config_t *shmq_topic_table_get(const shmq_topic_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->topics[i].name, name) == 0) {
            return &t->topics[i];
        }
    }
    return NULL;
}

int shmq_topic_table_remove(shmq_topic_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->topics[i].name, name) == 0) {
            memmove(&t->topics[i], &t->topics[i + 1], (t->count - i - 1) * sizeof(t->topics[0]));
            t->count--;
            t->data_version_counter++;
            return 0;
        }
    }
    return SHMQ_E_NOT_FOUND;
}

void shmq_topic_table_free(shmq_topic_table_t *t)
{
    free(t->topics);
    memset(t, 0, sizeof(*t));
}

void shmq_group_config_init(shmq_group_config_t *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->consume_enable = true;
    g->consume_broadcast_enable = true;
    g->consume_from_min_enable = true;
    g->consume_message_orderly = false;
    g->retry_max_times = 16;
    g->retry_queue_nums = 1;
    g->broker_id = 0;
    g->which_broker_when_consume_slowly = 1;
}

int shmq_group_table_put(shmq_group_table_t *t, const shmq_group_config_t *g)
{
    int rc = table_name_check("group", g->name, sizeof(g->name));
    if (rc < 0) {
        return rc;
    }
    shmq_group_config_t *slot = (shmq_group_config_t *)shmq_group_table_get(t, g->name);
    if (slot == NULL) {
        shmq_group_config_t *grown = table_grow(t->groups, t->count, &t->cap, sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        t->groups = grown;
        slot = &t->groups[t->count++];
    }
    *slot = *g;
    t->data_version_counter++;
    return 0;
}

const shmq_group_config_t *shmq_group_table_get(const shmq_group_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->groups[i].name, name) == 0) {
            return &t->groups[i];
        }
    }
    return NULL;
}

void shmq_group_table_free(shmq_group_table_t *t)
{
    free(t->groups);
    memset(t, 0, sizeof(*t));
}
