/*
 * shmqctl group progress|delete and shmqctl offsets reset: the operator's
 * view of consumer groups, on the committed offsets the store keeps
 * (RocketMQ's consumerProgress, deleteSubGroup's offsets and
 * resetOffsetByTime).
 *
 * Offsets come from the consumer area of a running store's control block
 * (read-only attach), or from config/consumerOffset.json of a stopped one;
 * a queue's min and max offsets from the queue table, or from its
 * ConsumeQueue files.  progress also shows each queue's last consumed
 * message's store time (RocketMQ's lastTimestamp) and, on a running store,
 * the member holding it (cmd_group_members.c).
 *
 * Running store (the store's user): group delete and offsets reset change
 * the consumer area between an odd and an even reset count (cons->resets,
 * shmq_ctl_offsets_reset_begin/end), so that a running consumer that keeps
 * its own position (shmqctl consume) does not commit over the change and
 * fetches its offsets again; group delete saves the table at once.  A
 * group with live members is not deleted unless --force (its members would
 * commit again); a consumer that is no member and does not follow resets
 * commits again after a delete.
 *
 * Stopped store: consumerOffset.json is rewritten under the store lock as
 * the store saves it (temporary file, fsync, rename), with
 * shmq_consumer_offsets_save_dropped: twice, so that after a delete the .bak
 * lacks the group too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "client/query.h"
#include "format/consume_queue.h"
#include "format/names.h"
#include "shm/ctl.h"
#include "shmq/admin.h"
#include "shmqctl.h"

#define RESET_GRACE_MS 200

/* The store as the commands see it: running (ctl attached) or stopped. */
typedef struct group_store {
    const shmqctl_args_t *a;
    bool running;
    shmq_ctl_t ctl;
    shmq_offset_table_t offsets;
} group_store_t;

/* Attach read-only (or writable) when running; else load consumerOffset.json. */
static int group_store_open(const shmqctl_args_t *a, unsigned flags, group_store_t *s)
{
    const char *root = a->cfg.store_path_root_dir;
    memset(s, 0, sizeof(*s));
    s->a = a;
    struct stat sb;
    if (stat(root, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        shmqctl_err("no store at %s", root);
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_error_clear();
    int rc = shmq_ctl_attach(root, flags, &s->ctl);
    if (rc == -EAGAIN) {
        shmqctl_err("store %s is starting; try again", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
        return shmqctl_fail(rc, "cannot attach to store %s", root);
    }
    if (rc == 0 && shmqctl_master_alive(&s->ctl)) {
        s->running = true;
        rc = shmq_ctl_offsets_snapshot(&s->ctl, &s->offsets);
    } else {
        if (rc == 0) {
            shmq_ctl_detach(&s->ctl); /* left behind by a master that died */
        }
        rc = shmq_consumer_offsets_load(root, &s->offsets);
    }
    if (rc < 0) {
        if (s->running) {
            shmq_ctl_detach(&s->ctl);
        }
        return shmqctl_fail(rc, "cannot read the consumer offsets of %s", root);
    }
    return 0;
}

static void group_store_close(group_store_t *s)
{
    if (s->running) {
        shmq_ctl_detach(&s->ctl);
    }
    shmq_offset_table_free(&s->offsets);
}

/* A queue's min and max offsets; an unknown queue is empty (0, 0). */
static void queue_range(group_store_t *s, const char *topic, int32_t queue_id, int64_t *min,
                        int64_t *max)
{
    *min = *max = 0;
    if (s->running) {
        const shmq_ctl_queue_t *q = shmq_ctl_queue_find(&s->ctl, topic, strlen(topic), queue_id);
        if (q) {
            /* Acquire: pairs with the dispatcher's (and the cleaner's) release. */
            *max = atomic_load_explicit((_Atomic int64_t *)&q->max_offset, memory_order_acquire);
            *min = atomic_load_explicit((_Atomic int64_t *)&q->min_offset, memory_order_acquire);
        }
    } else {
        shmq_cq_t *cq = calloc(1, sizeof(*cq));
        if (cq && shmq_cq_open(cq, s->a->cfg.store_path_root_dir, topic, queue_id,
                               shmq_cq_file_size((size_t)s->a->cfg.mapped_file_size_consume_queue),
                               SHMQ_MF_READONLY) == 0) {
            *min = cq->min_logic_offset / SHMQ_CQ_UNIT_SIZE;
            *max = cq->write_pos / SHMQ_CQ_UNIT_SIZE;
            shmq_cq_close(cq);
        }
        free(cq);
    }
    if (*min > *max) {
        *min = *max;
    }
}

/*
 * RocketMQ's lastTimestamp of consumerProgress: the store time of the last
 * message the group consumed in the queue (the one before its committed
 * offset), or 0 when there is none (nothing consumed, or cleaned since).
 */
static int64_t last_consumed_ms(const group_store_t *s, shmq_admin_t *adm, const char *topic,
                                int32_t queue_id, int64_t committed, int64_t min)
{
    if (adm == NULL || committed <= 0 || committed - 1 < min) {
        return 0;
    }
    int64_t ts = 0;
    shmq_cq_t *cq = calloc(1, sizeof(*cq));
    shmq_cq_unit_t u;
    shmq_msg_view_t v;
    if (cq && shmq_cq_open(cq, s->a->cfg.store_path_root_dir, topic, queue_id,
                           shmq_cq_file_size((size_t)s->a->cfg.mapped_file_size_consume_queue),
                           SHMQ_MF_READONLY) == 0) {
        if (shmq_cq_read(cq, committed - 1, &u) == 0 &&
            shmq_query_by_phys_offset(adm, u.phys_offset, &v) == 0) {
            ts = v.store_ts;
        }
        shmq_cq_close(cq);
    }
    free(cq);
    return ts;
}

/* The entry's group is group (its key is "topic@group"); *topic is set to the topic. */
static bool entry_of_group(const shmq_offset_entry_t *o, const char *group, char key[512],
                           char **topic)
{
    char *g;
    if (!shmq_offset_key_split(o, key, &g) || strcmp(g, group) != 0) {
        return false;
    }
    *topic = key;
    return true;
}

static int check_group(const shmqctl_args_t *a, const char *group)
{
    size_t len = strnlen(group, SHMQ_GROUP_MAX + 1);
    if (len == 0 || len > SHMQ_GROUP_MAX || strchr(group, '@')) {
        return shmqctl_usage_error(a->cmd, "bad group name '%s' (1..%d bytes, no '@')", group,
                                   SHMQ_GROUP_MAX);
    }
    return 0;
}

static int cmp_entry(const void *x, const void *y)
{
    const shmq_offset_entry_t *p = x, *q = y;
    int c = strcmp(p->key, q->key);
    return c ? c : (p->queue_id > q->queue_id) - (p->queue_id < q->queue_id);
}

/* ---- group progress -------------------------------------------------------------------- */

static int group_progress(shmqctl_args_t *a, const char *group)
{
    group_store_t s;
    int rc = group_store_open(a, SHMQ_CTL_RDONLY, &s);
    if (rc) {
        return rc;
    }
    if (s.offsets.count > 0) { /* entries is NULL when there are none (qsort wants neither) */
        qsort(s.offsets.entries, s.offsets.count, sizeof(*s.offsets.entries), cmp_entry);
    }
    shmq_admin_t *adm = NULL;
    if (shmq_admin_open(a->cfg.store_path_root_dir, &adm) < 0) {
        adm = NULL; /* no CommitLog: no times */
    }
    json_t *arr = a->json ? json_array() : NULL;
    int64_t total = 0;
    size_t found = 0;
    for (size_t i = 0; i < s.offsets.count; i++) {
        const shmq_offset_entry_t *o = &s.offsets.entries[i];
        char key[512];
        char *topic;
        if (!entry_of_group(o, group, key, &topic)) {
            continue;
        }
        int64_t min, max;
        queue_range(&s, topic, o->queue_id, &min, &max);
        int64_t lag = max > o->offset ? max - o->offset : 0;
        total += lag;
        found++;
        int64_t last_ms = last_consumed_ms(&s, adm, topic, o->queue_id, o->offset, min);
        char owner_buf[SHMQ_MEMBER_CLIENT_ID];
        const char *owner = s.running ? shmqctl_group_queue_owner(&s.ctl, group, topic, o->queue_id,
                                                                  owner_buf, sizeof(owner_buf))
                                      : NULL;
        if (arr) {
            json_t *q = json_object();
            json_object_set_new(q, "topic", shmqctl_json_str(topic, strlen(topic)));
            json_object_set_new(q, "queue", json_integer(o->queue_id));
            json_object_set_new(q, "max_offset", json_integer(max));
            json_object_set_new(q, "min_offset", json_integer(min));
            json_object_set_new(q, "committed", json_integer(o->offset));
            json_object_set_new(q, "lag", json_integer(lag));
            json_object_set_new(q, "owner", owner ? json_string(owner) : json_null());
            json_object_set_new(q, "last_consumed_ms", json_integer(last_ms));
            json_array_append_new(arr, q);
        } else {
            char when[64] = "-";
            if (last_ms > 0) {
                shmqctl_format_ts(last_ms, when, sizeof(when));
            }
            printf("topic=%s queue=%d max=%lld min=%lld committed=%lld lag=%lld owner=%s "
                   "last_consumed=\"%s\"\n",
                   topic, (int)o->queue_id, (long long)max, (long long)min, (long long)o->offset,
                   (long long)lag, owner ? owner : "-", when);
        }
    }
    bool running = s.running;
    shmq_admin_close(adm);
    group_store_close(&s);
    if (found == 0) {
        json_decref(arr);
        shmqctl_err("no offsets of group %s in %s", group, a->cfg.store_path_root_dir);
        return SHMQCTL_EXIT_FAIL;
    }
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "group", shmqctl_json_str(group, strlen(group)));
        json_object_set_new(o, "running", json_boolean(running));
        json_object_set_new(o, "queues", arr);
        json_object_set_new(o, "total_lag", json_integer(total));
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
    }
    printf("group=%s total_lag=%lld\n", group, (long long)total);
    return SHMQCTL_EXIT_OK;
}

/* ---- stopped store: rewrite consumerOffset.json ---------------------------------------- */

/* Load the file again under the lock, let fn change it, save it. */
static int offsets_rewrite(const shmqctl_args_t *a,
                           int (*fn)(shmq_offset_table_t *t, void *arg, shmq_offset_table_t *out),
                           void *arg)
{
    const char *root = a->cfg.store_path_root_dir;
    int fd;
    int ret = shmqctl_store_lock(root, &fd);
    if (ret) {
        return ret;
    }
    shmq_offset_table_t t = {0}, out = {0};
    shmq_error_clear();
    int rc = shmq_consumer_offsets_load(root, &t);
    if (rc == 0) {
        rc = fn(&t, arg, &out);
    }
    if (rc == 0) {
        out.data_version_counter = t.data_version_counter;
        out.data_version_state = t.data_version_state;
        shmq_error_clear();
        rc = shmq_consumer_offsets_save_dropped(root, &out);
        if (rc < 0) {
            ret = shmqctl_fail(rc, "cannot save %s/config/consumerOffset.json", root);
        }
    } else if (rc > 0) {
        ret = rc; /* fn's own exit code, message printed */
    } else {
        ret = shmqctl_fail(rc, "cannot rewrite the consumer offsets of %s", root);
    }
    shmq_offset_table_free(&t);
    shmq_offset_table_free(&out);
    shmq_store_unlock(fd);
    return ret;
}

/*
 * Between the odd reset count and the change: a consumer that read the
 * count just before it went odd may have a commit in flight (one round trip
 * to the master); it lands before the change, not over it.
 */
static void reset_grace(void)
{
    struct timespec ts = {0, RESET_GRACE_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- group delete ---------------------------------------------------------------------- */

typedef struct delete_req {
    const char *group;
    size_t dropped;
} delete_req_t;

static int delete_fn(shmq_offset_table_t *t, void *arg, shmq_offset_table_t *out)
{
    delete_req_t *d = arg;
    for (size_t i = 0; i < t->count; i++) {
        char key[512];
        char *topic;
        if (entry_of_group(&t->entries[i], d->group, key, &topic)) {
            d->dropped++;
            continue;
        }
        int rc = shmq_offset_table_set(out, t->entries[i].key, t->entries[i].queue_id,
                                       t->entries[i].offset);
        if (rc < 0) {
            return rc;
        }
    }
    if (d->dropped == 0) {
        shmqctl_err("no offsets of group %s", d->group);
        return SHMQCTL_EXIT_FAIL;
    }
    return 0;
}

static int group_delete(shmqctl_args_t *a, const char *group)
{
    group_store_t s;
    int rc = group_store_open(a, 0, &s);
    if (rc) {
        return rc;
    }
    if (!s.running) {
        group_store_close(&s);
        delete_req_t d = {.group = group};
        rc = offsets_rewrite(a, delete_fn, &d);
        if (rc == 0) {
            printf("group %s: %zu offsets deleted\n", group, d.dropped);
        }
        return rc;
    }
    char pids[200];
    int members = shmqctl_group_member_pids(&s.ctl, group, pids, sizeof(pids));
    if (members > 0 && !a->force) {
        group_store_close(&s);
        shmqctl_err("group %s has %d live member(s) (pid %s): stop them first, or --force "
                    "(they commit again)",
                    group, members, pids);
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_error_clear();
    shmq_ctl_offsets_reset_begin(&s.ctl);
    reset_grace();
    int dropped = shmq_ctl_offsets_delete_group(&s.ctl, group);
    shmq_ctl_offsets_reset_end(&s.ctl);
    if (dropped > 0) {
        int src = shmq_ctl_offsets_save_dropped(&s.ctl); /* saved here, at once */
        if (src < 0) {
            group_store_close(&s);
            return shmqctl_fail(src, "group %s: offsets deleted but not saved", group);
        }
    }
    group_store_close(&s);
    if (dropped < 0) {
        return shmqctl_fail(dropped, "cannot delete the offsets of group %s", group);
    }
    if (dropped == 0) {
        shmqctl_err("no offsets of group %s", group);
        return SHMQCTL_EXIT_FAIL;
    }
    printf("group %s: %d offsets deleted\n", group, dropped);
    return SHMQCTL_EXIT_OK;
}

int shmqctl_cmd_group(shmqctl_args_t *a)
{
    const char *verb = a->pos[0], *group = a->pos[1];
    if (!strcmp(verb, "list")) {
        if (group != NULL) {
            return shmqctl_usage_error(a->cmd, "group list takes no group");
        }
        return shmqctl_group_members(a, NULL);
    }
    if (group == NULL) {
        return shmqctl_usage_error(a->cmd, "group %s needs a GROUP", verb);
    }
    int rc = check_group(a, group);
    if (rc) {
        return rc;
    }
    if (!strcmp(verb, "progress")) {
        return group_progress(a, group);
    }
    if (!strcmp(verb, "show")) {
        return shmqctl_group_members(a, group);
    }
    if (!strcmp(verb, "delete")) {
        if (a->json) {
            return shmqctl_usage_error(a->cmd, "group delete takes no --json");
        }
        return group_delete(a, group);
    }
    return shmqctl_usage_error(a->cmd, "unknown group action '%s' (list, show, progress or delete)",
                               verb);
}

/* ---- offsets reset --------------------------------------------------------------------- */

enum reset_kind { RESET_EARLIEST, RESET_LATEST, RESET_OFFSET, RESET_TIME };

typedef struct reset_req {
    const shmqctl_args_t *a;
    enum reset_kind kind;
    int64_t value; /* offset or time (ms) */
    int32_t queues;
    char key[512]; /* "topic@group" */
    shmq_admin_t *ad;
    group_store_t *s;
    int64_t *done; /* stopped store: the offset set per queue, printed once saved */
} reset_req_t;

static int reset_target(reset_req_t *r, int32_t q, int64_t *target)
{
    int64_t min, max;
    queue_range(r->s, r->a->topic, q, &min, &max);
    switch (r->kind) {
    case RESET_EARLIEST:
        *target = min;
        return 0;
    case RESET_LATEST:
        *target = max;
        return 0;
    case RESET_OFFSET:
        *target = r->value < min ? min : r->value > max ? max : r->value;
        return 0;
    case RESET_TIME:
        break;
    }
    if (max == 0) {
        *target = 0;
        return 0;
    }
    shmq_error_clear();
    int rc = shmq_query_offset_by_time(r->ad, r->a->topic, q, r->value, target);
    if (rc == SHMQ_E_NOT_FOUND) {
        *target = 0;
        return 0;
    }
    return rc;
}

static int reset_fn(shmq_offset_table_t *t, void *arg, shmq_offset_table_t *out)
{
    reset_req_t *r = arg;
    for (size_t i = 0; i < t->count; i++) {
        int rc = shmq_offset_table_set(out, t->entries[i].key, t->entries[i].queue_id,
                                       t->entries[i].offset);
        if (rc < 0) {
            return rc;
        }
    }
    int32_t from = r->a->queue_id >= 0 ? r->a->queue_id : 0;
    int32_t to = r->a->queue_id >= 0 ? r->a->queue_id + 1 : r->queues;
    for (int32_t q = from; q < to; q++) {
        int64_t target;
        int rc = reset_target(r, q, &target);
        if (rc == 0) {
            rc = shmq_offset_table_set(out, r->key, q, target);
        }
        if (rc < 0) {
            return rc;
        }
        r->done[q - from] = target;
    }
    return 0;
}

/*
 * Running store: every target first (nothing changed on an error), then,
 * between an odd and an even reset count, the offsets set in the consumer
 * area as the master stores commits (the flusher saves them); consumers of
 * the group see the count move and fetch them.
 */
static int reset_running(reset_req_t *r)
{
    const shmqctl_args_t *a = r->a;
    int32_t from = a->queue_id >= 0 ? a->queue_id : 0;
    int32_t to = a->queue_id >= 0 ? a->queue_id + 1 : r->queues;
    int64_t *targets = calloc((size_t)(to > from ? to - from : 1), sizeof(*targets));
    if (!targets) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    int rc = 0;
    for (int32_t q = from; q < to && rc == 0; q++) {
        rc = reset_target(r, q, &targets[q - from]);
    }
    if (rc < 0) {
        free(targets);
        return shmqctl_fail(rc, "cannot find the offsets to reset to");
    }
    shmq_ctl_offsets_reset_begin(&r->s->ctl);
    reset_grace();
    for (int32_t q = from; q < to && rc >= 0; q++) {
        shmq_error_clear();
        rc = shmq_ctl_offset_set(&r->s->ctl, a->group, a->topic, q, targets[q - from]);
    }
    shmq_ctl_offsets_reset_end(&r->s->ctl);
    if (rc < 0) {
        free(targets);
        return shmqctl_fail(rc, "cannot reset the offsets of group %s", a->group);
    }
    for (int32_t q = from; q < to; q++) {
        printf("topic=%s queue=%d offset=%lld\n", a->topic, (int)q, (long long)targets[q - from]);
    }
    free(targets);
    return SHMQCTL_EXIT_OK;
}

static int reset_parse_to(shmqctl_args_t *a, reset_req_t *r)
{
    const char *to = a->to_arg;
    if (!strcmp(to, "earliest")) {
        r->kind = RESET_EARLIEST;
    } else if (!strcmp(to, "latest")) {
        r->kind = RESET_LATEST;
    } else if (to[0] == '@') {
        r->kind = RESET_TIME;
        if (shmqctl_parse_int(to + 1, 0, INT64_MAX, false, &r->value) < 0) {
            return shmqctl_usage_error(a->cmd, "--to: expected @MS (ms since the epoch), got '%s'",
                                       to);
        }
    } else if (shmqctl_parse_int(to, 0, INT64_MAX, false, &r->value) == 0) {
        r->kind = RESET_OFFSET;
    } else if (shmqctl_parse_time(to, &r->value) == 0) {
        r->kind = RESET_TIME;
    } else {
        return shmqctl_usage_error(a->cmd,
                                   "--to: expected earliest, latest, an offset >= 0, @MS or "
                                   "\"YYYY-MM-DD HH:MM:SS\", got '%s'",
                                   to);
    }
    return 0;
}

static int offsets_reset(shmqctl_args_t *a)
{
    if (a->delay_level || a->sharding_key || a->async) {
        return shmqctl_usage_error(a->cmd, "offsets reset takes no --delay-level, "
                                           "--sharding-key or --async");
    }
    if (!a->group || !a->topic || !a->to_arg) {
        return shmqctl_usage_error(a->cmd, "offsets reset needs --group, --topic and --to");
    }
    int rc = check_group(a, a->group);
    if (rc) {
        return rc;
    }
    reset_req_t r = {.a = a};
    rc = reset_parse_to(a, &r);
    if (rc) {
        return rc;
    }
    snprintf(r.key, sizeof(r.key), "%s@%s", a->topic, a->group);
    group_store_t s;
    rc = group_store_open(a, 0, &s);
    if (rc) {
        return rc;
    }
    r.s = &s;
    bool known = false;
    for (size_t i = 0; i < s.offsets.count && !known; i++) {
        char key[512];
        char *topic;
        known = entry_of_group(&s.offsets.entries[i], a->group, key, &topic);
    }
    if (!known) {
        group_store_close(&s);
        shmqctl_err("no offsets of group %s in %s", a->group, a->cfg.store_path_root_dir);
        return SHMQCTL_EXIT_FAIL;
    }
    bool have_topic = false;
    shmq_error_clear();
    if (s.running) {
        shmq_ctl_topic_t t;
        rc = shmq_ctl_topic_get(&s.ctl, a->topic, strnlen(a->topic, SHMQ_TOPIC_MAX_ANY + 1), &t);
        have_topic = rc == 0;
        r.queues = have_topic ? t.read_queue_nums : 0;
        rc = rc == SHMQ_E_NOT_FOUND ? 0 : rc;
    } else {
        shmq_topic_table_t topics = {0};
        rc = shmq_topics_load(a->cfg.store_path_root_dir, &topics);
        const shmq_topic_config_t *tc = rc == 0 ? shmq_topic_table_get(&topics, a->topic) : NULL;
        have_topic = tc != NULL;
        r.queues = tc ? tc->read_queue_nums : 0;
        shmq_topic_table_free(&topics);
    }
    int ret = SHMQCTL_EXIT_OK;
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot read the topics of %s", a->cfg.store_path_root_dir);
    } else if (!have_topic) {
        shmqctl_err("no topic %s in %s", a->topic, a->cfg.store_path_root_dir);
        ret = SHMQCTL_EXIT_FAIL;
    } else if (a->queue_id >= r.queues) {
        shmqctl_err("topic %s has %d queues: no queue %d", a->topic, (int)r.queues,
                    (int)a->queue_id);
        ret = SHMQCTL_EXIT_FAIL;
    }
    if (ret == SHMQCTL_EXIT_OK && r.kind == RESET_TIME) {
        shmq_error_clear();
        rc = shmq_admin_open_config(&a->cfg, &r.ad);
        if (rc < 0) {
            r.ad = NULL;
            ret = shmqctl_fail(rc, "cannot open the store at %s", a->cfg.store_path_root_dir);
        }
    }
    if (ret == SHMQCTL_EXIT_OK) {
        if (s.running) {
            ret = reset_running(&r);
        } else if (!(r.done = calloc((size_t)(r.queues > 0 ? r.queues : 1), sizeof(*r.done)))) {
            shmqctl_err("out of memory");
            ret = SHMQCTL_EXIT_FAIL;
        } else if ((ret = offsets_rewrite(a, reset_fn, &r)) == SHMQCTL_EXIT_OK) {
            int32_t from = a->queue_id >= 0 ? a->queue_id : 0;
            int32_t to = a->queue_id >= 0 ? a->queue_id + 1 : r.queues;
            for (int32_t q = from; q < to; q++) {
                printf("topic=%s queue=%d offset=%lld\n", a->topic, (int)q,
                       (long long)r.done[q - from]);
            }
        }
        free(r.done);
    }
    if (r.ad) {
        shmq_admin_close(r.ad);
    }
    group_store_close(&s);
    return ret;
}

int shmqctl_cmd_offsets(shmqctl_args_t *a)
{
    if (strcmp(a->pos[0], "reset") != 0) {
        return shmqctl_usage_error(a->cmd, "unknown offsets action '%s' (reset)", a->pos[0]);
    }
    return offsets_reset(a);
}
