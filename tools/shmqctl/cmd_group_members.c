/*
 * shmqctl group list|show: the members of a running store's consumer
 * groups, as the master records them in the consumer area's member table
 * (libshm/shm/groups.h): who they are (client id, pid, user), what they
 * consume (topic, subscription, model; a group whose members subscribe
 * otherwise is flagged inconsistent, as RocketMQ does), which queues they hold and which they were
 * asked to give back, when they joined and last committed.  A member is one while its connection to
 * the store lives: a process that died is gone from the table at once.  A stopped store has no
 * members.
 */
#include <stdlib.h>
#include <string.h>

#include "format/acl.h"
#include "format/names.h"
#include "shm/ctl.h"
#include "shmqctl.h"

/* A consistent copy of member slot i; false when free or mid-change for long. */
static bool member_copy(const shmq_ctl_t *ctl, int i, shmq_ctl_member_t *out)
{
    return shmq_ctl_member_copy(ctl->cons, i, out) == 0;
}

static const char *model_name(const shmq_ctl_member_t *m)
{
    return (m->flags & SHMQ_MEMBER_BROADCASTING) ? "broadcasting" : "clustering";
}

/* "T/0 T/1 %RETRY%G/0" of bitmaps own and own_retry (NULL: none), into a growing buffer. */
static char *queue_list(const shmq_ctl_member_t *m, const uint64_t *bits, const uint64_t *retry)
{
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    s[0] = '\0';
    for (int32_t q = 0; q < SHMQ_TOPIC_QUEUES_MAX + SHMQ_MEMBER_RETRY_MAX; q++) {
        bool main = q < SHMQ_TOPIC_QUEUES_MAX;
        int32_t id = main ? q : q - SHMQ_TOPIC_QUEUES_MAX;
        if (!shmq_member_bit(main ? bits : retry, id)) {
            continue;
        }
        size_t need = len + strlen(m->topic) + strlen(m->group) + 24;
        if (need > cap) {
            char *n = realloc(s, cap = need * 2);
            if (n == NULL) {
                free(s);
                return NULL;
            }
            s = n;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s%s/%d", len ? " " : "",
                                main ? m->topic : SHMQ_RETRY_PREFIX, main ? "" : m->group, (int)id);
    }
    return s;
}

static json_t *member_json(const shmq_ctl_member_t *m, const char *held, const char *releasing)
{
    char user[96];
    shmq_acl_ident_name(m->uid, user, sizeof(user));
    json_t *o = json_object();
    json_object_set_new(o, "client_id", json_string(m->client_id));
    json_object_set_new(o, "pid", json_integer(m->pid));
    json_object_set_new(o, "user", json_string(user));
    json_object_set_new(o, "topic", shmqctl_json_str(m->topic, strlen(m->topic)));
    json_object_set_new(o, "subscription", json_string(m->sub));
    json_object_set_new(o, "model", json_string(model_name(m)));
    json_object_set_new(o, "orderly", json_boolean(m->flags & SHMQ_MEMBER_ORDERLY));
    json_object_set_new(o, "queues_held", json_integer(m->queues_held));
    json_object_set_new(o, "queues", json_string(held));
    json_object_set_new(o, "releasing", json_string(releasing));
    json_object_set_new(o, "joined_ms", json_integer(m->joined_ms));
    json_object_set_new(o, "last_commit_ms", json_integer(m->last_commit_ms));
    return o;
}

static void member_text(const shmq_ctl_member_t *m, const char *held, const char *releasing)
{
    char user[96], joined[64], commit[64];
    shmq_acl_ident_name(m->uid, user, sizeof(user));
    shmqctl_format_ts(m->joined_ms, joined, sizeof(joined));
    if (m->last_commit_ms > 0) {
        shmqctl_format_ts(m->last_commit_ms, commit, sizeof(commit));
    } else {
        snprintf(commit, sizeof(commit), "never");
    }
    printf("member=%s pid=%d user=%s topic=%s subscription=\"%s\" model=%s%s joined=\"%s\" "
           "last_commit=\"%s\" held=%d queues=\"%s\"",
           m->client_id, (int)m->pid, user, m->topic, m->sub, model_name(m),
           (m->flags & SHMQ_MEMBER_ORDERLY) ? " orderly" : "", joined, commit, (int)m->queues_held,
           held);
    if (releasing[0]) {
        printf(" releasing=\"%s\"", releasing);
    }
    putchar('\n');
}

/* group show GROUP: one line (or JSON object) per member. */
static int group_show(const shmqctl_args_t *a, const shmq_ctl_t *ctl, const char *group)
{
    json_t *arr = a->json ? json_array() : NULL;
    int found = 0;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t m;
        if (!member_copy(ctl, i, &m) || strcmp(m.group, group) != 0) {
            continue;
        }
        char *held = queue_list(&m, m.own, &m.own_retry);
        char *rel = queue_list(&m, m.release, &m.release_retry);
        if (held == NULL || rel == NULL) {
            free(held);
            free(rel);
            json_decref(arr);
            shmqctl_err("out of memory");
            return SHMQCTL_EXIT_FAIL;
        }
        if (arr) {
            json_array_append_new(arr, member_json(&m, held, rel));
        } else {
            member_text(&m, held, rel);
        }
        free(held);
        free(rel);
        found++;
    }
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "group", shmqctl_json_str(group, strlen(group)));
        json_object_set_new(o, "members", arr);
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
    }
    if (found == 0) {
        printf("group=%s members=0\n", group);
    }
    return SHMQCTL_EXIT_OK;
}

/* group list: one line (or JSON object) per group with members. */
static int group_list(const shmqctl_args_t *a, const shmq_ctl_t *ctl)
{
    static shmq_ctl_member_t ms[SHMQ_CTL_MAX_MEMBERS];
    int n = 0;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        if (member_copy(ctl, i, &ms[n])) {
            n++;
        }
    }
    json_t *arr = a->json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++) {
            first = strcmp(ms[j].group, ms[i].group) != 0;
        }
        if (!first) {
            continue;
        }
        int members = 0, held = 0;
        bool consistent = true;
        for (int j = i; j < n; j++) {
            if (strcmp(ms[j].group, ms[i].group) == 0) {
                members++;
                held += ms[j].queues_held;
                consistent = consistent && strcmp(ms[j].topic, ms[i].topic) == 0 &&
                             ms[j].sub_hash == ms[i].sub_hash &&
                             (ms[j].flags & SHMQ_MEMBER_BROADCASTING) ==
                                 (ms[i].flags & SHMQ_MEMBER_BROADCASTING);
            }
        }
        if (arr) {
            json_t *o = json_object();
            json_object_set_new(o, "group", shmqctl_json_str(ms[i].group, strlen(ms[i].group)));
            json_object_set_new(o, "members", json_integer(members));
            json_object_set_new(o, "queues_held", json_integer(held));
            json_object_set_new(o, "model", json_string(model_name(&ms[i])));
            json_object_set_new(o, "consistent", json_boolean(consistent));
            json_array_append_new(arr, o);
        } else {
            printf("group=%s members=%d queues_held=%d model=%s%s\n", ms[i].group, members, held,
                   model_name(&ms[i]), consistent ? "" : " inconsistent");
        }
    }
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "groups", arr);
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
    }
    return SHMQCTL_EXIT_OK;
}

int shmqctl_group_members(shmqctl_args_t *a, const char *group)
{
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, SHMQ_CTL_RDONLY, &ctl);
    if (rc) {
        return rc;
    }
    rc = group != NULL ? group_show(a, &ctl, group) : group_list(a, &ctl);
    shmq_ctl_detach(&ctl);
    return rc;
}

int shmqctl_group_member_pids(const shmq_ctl_t *ctl, const char *group, char *out, size_t len)
{
    int n = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t m;
        if (!member_copy(ctl, i, &m) || strcmp(m.group, group) != 0) {
            continue;
        }
        if (used + 16 < len) {
            used += (size_t)snprintf(out + used, len - used, "%s%d", n ? ", " : "", (int)m.pid);
        }
        n++;
    }
    return n;
}

const char *shmqctl_group_queue_owner(const shmq_ctl_t *ctl, const char *group, const char *topic,
                                      int32_t queue_id, char *out, size_t len)
{
    char retry[SHMQ_TOPIC_MAX_ANY + 1];
    snprintf(retry, sizeof(retry), "%s%s", SHMQ_RETRY_PREFIX, group);
    bool is_retry = strcmp(topic, retry) == 0;
    int32_t cap = is_retry ? SHMQ_MEMBER_RETRY_MAX : SHMQ_TOPIC_QUEUES_MAX;
    if (queue_id < 0 || queue_id >= cap) {
        return NULL;
    }
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t m;
        if (!member_copy(ctl, i, &m) || strcmp(m.group, group) != 0 ||
            (!is_retry && strcmp(m.topic, topic) != 0)) {
            continue;
        }
        if (shmq_member_bit(is_retry ? &m.own_retry : m.own, queue_id)) {
            snprintf(out, len, "%s", m.client_id);
            return out;
        }
    }
    return NULL;
}
