/*
 * Tag subscriptions (see subscription.h): parsing "TagA || TagB" and
 * matching units by tagsCode, records by their TAGS value; and the
 * consumer-side permission rules (a group's consumeEnable, a topic's
 * PERM_READ) with the group settings a consumer keeps.
 */
#include "client/subscription.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "format/message.h"
#include "shmq/errors.h"

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Parse "*", "" or "TagA || TagB" (whitespace around tags ignored) into s. */
int shmq_sub_parse(shmq_sub_t *s, const char *expr)
{
    if (expr == NULL) {
        expr = "";
    }
    size_t n = strnlen(expr, SHMQ_SUB_MAX_LEN + 1);
    if (n > SHMQ_SUB_MAX_LEN) {
        return shmq_error_set(SHMQ_E_ARG, "subscription longer than %d bytes", SHMQ_SUB_MAX_LEN);
    }
    if (s->cached && strcmp(s->text, expr) == 0) {
        return 0;
    }
    s->cached = false;
    s->all = false;
    s->ntags = 0;
    size_t a = 0, z = n;
    while (a < z && is_space(expr[a])) {
        a++;
    }
    while (z > a && is_space(expr[z - 1])) {
        z--;
    }
    if (a == z || (z - a == 1 && expr[a] == '*')) {
        s->all = true;
    } else {
        memcpy(s->buf, expr, n + 1);
        size_t p = a;
        for (;;) {
            /* One element: up to the next "||" or the end. */
            size_t e = p;
            while (e < z && !(expr[e] == '|' && e + 1 < z && expr[e + 1] == '|')) {
                e++;
            }
            size_t ta = p, tz = e;
            while (ta < tz && is_space(expr[ta])) {
                ta++;
            }
            while (tz > ta && is_space(expr[tz - 1])) {
                tz--;
            }
            if (ta == tz) {
                return shmq_error_set(SHMQ_E_ARG, "subscription \"%s\": empty tag at byte %zu",
                                      expr, p);
            }
            for (size_t i = ta; i < tz; i++) {
                unsigned char ch = (unsigned char)expr[i];
                if (ch == '|' || ch == '*' || ch < 0x20 || is_space((char)ch)) {
                    return shmq_error_set(SHMQ_E_ARG,
                                          "subscription \"%s\": unexpected character at byte %zu "
                                          "(tags are separated by \"||\")",
                                          expr, i);
                }
            }
            if (s->ntags == SHMQ_SUB_MAX_TAGS) {
                return shmq_error_set(SHMQ_E_ARG, "subscription \"%s\": more than %d tags", expr,
                                      SHMQ_SUB_MAX_TAGS);
            }
            s->tags[s->ntags] = s->buf + ta;
            s->lens[s->ntags] = tz - ta;
            s->codes[s->ntags] = (int32_t)shmq_tags_code(expr + ta, tz - ta);
            s->ntags++;
            if (e >= z) {
                break;
            }
            p = e + 2;
        }
    }
    memcpy(s->text, expr, n + 1);
    s->cached = true;
    return 0;
}

/* tagsCode prefilter (hash collisions possible: the record's TAGS decides). */
bool shmq_sub_code_matches(const shmq_sub_t *s, int64_t tags_code)
{
    if (s->all) {
        return true;
    }
    for (int i = 0; i < s->ntags; i++) {
        if (s->codes[i] == (int32_t)tags_code) {
            return true;
        }
    }
    return false;
}

bool shmq_sub_tags_match(const shmq_sub_t *s, const char *tags, size_t len)
{
    if (s->all) {
        return true;
    }
    if (!tags) {
        return false;
    }
    for (int i = 0; i < s->ntags; i++) {
        if (s->lens[i] == len && memcmp(s->tags[i], tags, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- who may consume ---------------------------------------------------------- */

int shmq_sub_may_consume(const char *topic, int32_t topic_perm, const shmq_group_config_t *gc)
{
    if (gc != NULL && !gc->consume_enable) {
        return shmq_error_set(-EACCES,
                              "consumer group %s may not consume: consumeEnable is false in "
                              "subscriptionGroup.json",
                              gc->name);
    }
    if (topic_perm >= 0 && !(topic_perm & SHMQ_PERM_READ)) {
        return shmq_error_set(-EACCES,
                              "topic %s is not readable (perm %d, PERM_READ %d not set): pulls "
                              "are refused",
                              topic ? topic : "?", (int)topic_perm, SHMQ_PERM_READ);
    }
    return 0;
}

const shmq_group_config_t *shmq_sub_group_get(shmq_sub_group_t *g, const char *root,
                                              const char *group, int64_t now_ms)
{
    if (g->loaded && now_ms < g->next_check_ms) {
        return g->known ? &g->cfg : NULL;
    }
    g->next_check_ms = now_ms + SHMQ_SUB_GROUP_CHECK_MS;
    char path[PATH_MAX];
    bool fits =
        snprintf(path, sizeof(path), "%s/config/subscriptionGroup.json", root) < (int)sizeof(path);
    /* Missing (or its path too long): the .bak may still be read; reload on a change. */
    if (!shmq_file_stamp_update(&g->stamp, g->loaded, fits ? path : NULL)) {
        return g->known ? &g->cfg : NULL;
    }
    g->loaded = true;
    g->known = false;
    shmq_group_table_t t;
    if (shmq_groups_load(root, &t) == 0) {
        const shmq_group_config_t *c = shmq_group_table_get(&t, group);
        if (c != NULL) {
            g->cfg = *c;
            g->known = true;
        }
        shmq_group_table_free(&t);
    }
    return g->known ? &g->cfg : NULL;
}
