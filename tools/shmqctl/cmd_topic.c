/*
 * shmqctl topic: create, update, list and delete topics.
 *
 * On a running store the change goes through the control block: under the
 * topic-table lock the entry is put or deleted and config/topics.json is
 * rewritten from the table, so producers, the writer and consumers see it
 * at once.  On a stopped store (no control block) config/topics.json is
 * edited directly under the store lock, which keeps a starting broker or an
 * offline tool out while the file changes.
 *
 *   topic create TOPIC    fails if the topic exists
 *   topic update TOPIC    changes the options given, keeps the others; fails
 *                         if the topic does not exist
 *   topic list [--json]   one topic per line, sorted by name
 *   topic delete TOPIC    fails if the topic does not exist
 *
 * Exit codes: 0 done, 1 failure (store error, topic exists / missing),
 * 2 bad input (name, queue counts, action).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shm/ctl.h"
#include "format/names.h"
#include "shmqctl.h"
#include "format/topic_deletes.h"

#define TOPIC_LOCK_TIMEOUT_MS 5000

enum topic_action { TOPIC_CREATE, TOPIC_UPDATE, TOPIC_LIST, TOPIC_DELETE };

/* What create/update asks for: -1 fields keep the current (or default) value. */
typedef struct topic_req {
    enum topic_action action;
    const char *name;
    int32_t read_queues;
    int32_t write_queues;
    int32_t perm;
    int order; /* -1 keep, else 0/1 */
} topic_req_t;

/* One topic as listed (from the control block or from topics.json). */
typedef struct topic_row {
    char name[256];
    int32_t read_queues;
    int32_t write_queues;
    int32_t perm;
    bool order;
} topic_row_t;

typedef struct topic_rows {
    topic_row_t *rows;
    size_t count;
    size_t cap;
} topic_rows_t;

static int topic_rows_add(topic_rows_t *r, const char *name, int32_t rq, int32_t wq, int32_t perm,
                          bool order)
{
    if (r->count == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        topic_row_t *n = realloc(r->rows, ncap * sizeof(*n));
        if (!n) {
            return -ENOMEM;
        }
        r->rows = n;
        r->cap = ncap;
    }
    topic_row_t *t = &r->rows[r->count++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->read_queues = rq;
    t->write_queues = wq;
    t->perm = perm;
    t->order = order;
    return 0;
}

static int topic_row_cmp(const void *a, const void *b)
{
    return strcmp(((const topic_row_t *)a)->name, ((const topic_row_t *)b)->name);
}

static int topic_list_print(shmqctl_args_t *a, topic_rows_t *r)
{
    if (r->count > 1) { /* rows is NULL when there are none (qsort wants neither) */
        qsort(r->rows, r->count, sizeof(r->rows[0]), topic_row_cmp);
    }
    for (size_t i = 0; i < r->count; i++) {
        const topic_row_t *t = &r->rows[i];
        if (a->json) {
            json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:b}", "topic", t->name, "read_queue_nums",
                                  (int)t->read_queues, "write_queue_nums", (int)t->write_queues,
                                  "perm", (int)t->perm, "order", (int)t->order);
            if (!o || shmqctl_json_print(o) < 0) {
                shmqctl_err("cannot format topic %s", t->name);
                return SHMQCTL_EXIT_FAIL;
            }
        } else {
            printf("%s read_queues=%d write_queues=%d perm=%d order=%s\n", t->name,
                   (int)t->read_queues, (int)t->write_queues, (int)t->perm,
                   t->order ? "true" : "false");
        }
    }
    return SHMQCTL_EXIT_OK;
}

/* ---- running store: the control block ------------------------------------------ */

static int ctl_collect(const shmq_ctl_topic_t *t, void *arg)
{
    return topic_rows_add(arg, t->name, t->read_queue_nums, t->write_queue_nums, t->perm,
                          t->order != 0);
}

static int topic_online(shmqctl_args_t *a, shmq_ctl_t *ctl, const topic_req_t *req)
{
    const shmq_config_t *scfg = &ctl->blk->hdr.config;
    shmq_ctl_topic_t cur;
    int32_t rq, wq, perm;
    bool order, exists;
    int rc, ret = SHMQCTL_EXIT_OK;

    if (req->action == TOPIC_LIST) {
        topic_rows_t rows = {0};
        rc = shmq_ctl_topic_foreach(ctl, ctl_collect, &rows);
        ret = rc < 0 ? shmqctl_fail(rc, "cannot list topics") : topic_list_print(a, &rows);
        free(rows.rows);
        return ret;
    }

    shmq_error_clear();
    rc = shmq_ctl_topic_lock(ctl, TOPIC_LOCK_TIMEOUT_MS);
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot take the topic lock of %s", a->cfg.store_path_root_dir);
    }
    rc = shmq_ctl_topic_get(ctl, req->name, strlen(req->name), &cur);
    if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
        ret = shmqctl_fail(rc, "cannot read topic %s", req->name);
        goto unlock;
    }
    exists = rc == 0;
    if (req->action == TOPIC_CREATE && exists) {
        shmqctl_err("topic %s already exists (use 'topic update')", req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto unlock;
    }
    if (req->action == TOPIC_DELETE) {
        ret = shmqctl_topic_delete_online(a, ctl, req->name, exists);
        goto unlock;
    }
    if (req->action == TOPIC_UPDATE && !exists) {
        shmqctl_err("no topic %s", req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto unlock;
    }
    if (req->action == TOPIC_CREATE && shmq_ctl_topic_deleting(ctl, req->name, strlen(req->name))) {
        shmqctl_err("topic %s is being deleted; run 'topic delete %s' to finish, then create it",
                    req->name, req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto unlock;
    }
    shmq_error_clear();
    {
        rq = exists ? cur.read_queue_nums : scfg->default_topic_queue_nums;
        wq = exists ? cur.write_queue_nums : scfg->default_topic_queue_nums;
        perm = exists ? cur.perm : SHMQ_PERM_READ | SHMQ_PERM_WRITE;
        order = exists ? cur.order != 0 : false;
        rq = req->read_queues >= 0 ? req->read_queues : rq;
        wq = req->write_queues >= 0 ? req->write_queues : wq;
        perm = req->perm >= 0 ? req->perm : perm;
        order = req->order >= 0 ? req->order != 0 : order;
        rc = shmq_ctl_topic_put(ctl, req->name, rq, wq, perm, order);
    }
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot change topic %s", req->name);
        goto unlock;
    }
    shmq_error_clear();
    rc = shmq_ctl_topics_save(ctl);
    if (rc < 0) {
        ret = shmqctl_fail(
            rc, "topic %s changed in the running store, but saving topics.json failed", req->name);
    }
unlock:
    shmq_ctl_topic_unlock(ctl);
    return ret;
}

/* ---- stopped store: config/topics.json ------------------------------------------ */

/* config/topicDeletes.json holds a deletion of name that did not finish. */
static bool topic_delete_interrupted(const char *root, const char *name)
{
    shmq_topic_cuts_t cuts;
    if (shmq_topic_cuts_load(root, &cuts) < 0) {
        return false; /* the next start reports the damage */
    }
    const shmq_topic_cut_t *c = shmq_topic_cuts_get(&cuts, name, strlen(name));
    bool yes = c != NULL && c->cut == SHMQ_TOPIC_CUT_DELETING;
    shmq_topic_cuts_free(&cuts);
    return yes;
}

static int topic_offline(shmqctl_args_t *a, const topic_req_t *req)
{
    const char *root = a->cfg.store_path_root_dir;
    shmq_topic_table_t t = {0};
    const shmq_topic_config_t *cur;
    shmq_topic_config_t tc;
    int fd = -1, rc, ret = SHMQCTL_EXIT_OK;

    if (req->action == TOPIC_LIST) {
        topic_rows_t rows = {0};
        shmq_error_clear();
        rc = shmq_topics_load(root, &t);
        if (rc < 0) {
            return shmqctl_fail(rc, "cannot read the topics of %s", root);
        }
        for (size_t i = 0; i < t.count && rc == 0; i++) {
            const shmq_topic_config_t *c = &t.topics[i];
            rc = topic_rows_add(&rows, c->name, c->read_queue_nums, c->write_queue_nums, c->perm,
                                c->order);
        }
        ret = rc < 0 ? shmqctl_fail(rc, "cannot list topics") : topic_list_print(a, &rows);
        free(rows.rows);
        shmq_topic_table_free(&t);
        return ret;
    }

    if (req->action == TOPIC_DELETE) {
        return shmqctl_topic_delete_offline(a, req->name);
    }
    if ((rc = shmqctl_store_lock(root, &fd)) != 0) {
        return rc;
    }
    shmq_error_clear();
    rc = shmq_topics_load(root, &t);
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot read the topics of %s", root);
        goto out;
    }
    cur = shmq_topic_table_get(&t, req->name);
    if (req->action == TOPIC_CREATE && cur) {
        shmqctl_err("topic %s already exists (use 'topic update')", req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    if (req->action == TOPIC_UPDATE && !cur) {
        shmqctl_err("no topic %s", req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    if (req->action == TOPIC_CREATE && topic_delete_interrupted(root, req->name)) {
        shmqctl_err("the deletion of topic %s was interrupted; run 'topic delete %s' to finish, "
                    "then create it",
                    req->name, req->name);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    shmq_error_clear();
    {
        if (cur) {
            tc = *cur;
        } else {
            memset(&tc, 0, sizeof(tc));
            snprintf(tc.name, sizeof(tc.name), "%s", req->name);
            tc.read_queue_nums = a->cfg.default_topic_queue_nums;
            tc.write_queue_nums = a->cfg.default_topic_queue_nums;
            tc.perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
            tc.multi_tag = false;
        }
        tc.read_queue_nums = req->read_queues >= 0 ? req->read_queues : tc.read_queue_nums;
        tc.write_queue_nums = req->write_queues >= 0 ? req->write_queues : tc.write_queue_nums;
        tc.perm = req->perm >= 0 ? req->perm : tc.perm;
        tc.order = req->order >= 0 ? req->order != 0 : tc.order;
        rc = shmq_topic_table_put(&t, &tc);
    }
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot change topic %s", req->name);
        goto out;
    }
    shmq_error_clear();
    rc = shmq_topics_save(root, &t);
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot write the topics of %s", root);
    }
out:
    shmq_topic_table_free(&t);
    shmq_store_unlock(fd);
    return ret;
}

/* ---- command ---------------------------------------------------------------------- */

static int topic_parse(shmqctl_args_t *a, topic_req_t *req)
{
    const char *act = a->pos[0];
    int rc;

    memset(req, 0, sizeof(*req));
    if (!strcmp(act, "create")) {
        req->action = TOPIC_CREATE;
    } else if (!strcmp(act, "update")) {
        req->action = TOPIC_UPDATE;
    } else if (!strcmp(act, "list")) {
        req->action = TOPIC_LIST;
    } else if (!strcmp(act, "delete")) {
        req->action = TOPIC_DELETE;
    } else {
        return shmqctl_usage_error(a->cmd, "topic: unknown action '%s'", act);
    }
    if (req->action == TOPIC_LIST) {
        if (a->npos != 1) {
            return shmqctl_usage_error(a->cmd, "topic list takes no topic");
        }
    } else if (a->npos != 2) {
        return shmqctl_usage_error(a->cmd, "topic %s needs a topic name", act);
    }
    if (a->json && req->action != TOPIC_LIST) {
        return shmqctl_usage_error(a->cmd, "--json goes with topic list");
    }
    bool conf =
        a->queues_set || a->read_queues >= 0 || a->write_queues >= 0 || a->perm >= 0 || a->order;
    if (conf && req->action != TOPIC_CREATE && req->action != TOPIC_UPDATE) {
        return shmqctl_usage_error(a->cmd, "queue and permission options go with create/update");
    }
    if (a->queues_set && (a->queues < 1 || a->queues > SHMQ_TOPIC_QUEUES_MAX)) {
        return shmqctl_usage_error(a->cmd, "--queues: expected 1..%d, got %d",
                                   SHMQ_TOPIC_QUEUES_MAX, (int)a->queues);
    }
    req->read_queues = a->read_queues >= 0 ? a->read_queues : a->queues_set ? a->queues : -1;
    req->write_queues = a->write_queues >= 0 ? a->write_queues : a->queues_set ? a->queues : -1;
    req->perm = a->perm;
    req->order = a->order ? 1 : -1;
    if (req->action == TOPIC_LIST) {
        return 0;
    }
    req->name = a->pos[1];
    shmq_error_clear();
    rc = shmq_topic_validate(req->name, strlen(req->name), a->cfg.max_topic_length);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        return shmqctl_usage_error(a->cmd, "invalid topic name '%s'%s%s", req->name,
                                   d[0] ? ": " : "", d);
    }
    if (req->action == TOPIC_DELETE && shmqctl_topic_internal(req->name)) {
        return shmqctl_usage_error(a->cmd, "%s is the store's own topic: it cannot be deleted",
                                   req->name);
    }
    return 0;
}

int shmqctl_cmd_topic(shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    shmq_ctl_t ctl;
    topic_req_t req;
    struct stat sb;
    int rc, ret;

    rc = topic_parse(a, &req);
    if (rc) {
        return rc;
    }
    if (stat(root, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        if (req.action != TOPIC_CREATE) {
            shmqctl_err("no store at %s", root);
            return SHMQCTL_EXIT_FAIL;
        }
        return topic_offline(a, &req); /* a new store: topics.json before the first start */
    }
    memset(&ctl, 0, sizeof(ctl));
    shmq_error_clear();
    rc = shmq_ctl_attach(root, req.action == TOPIC_LIST ? SHMQ_CTL_RDONLY : 0, &ctl);
    if (rc == SHMQ_E_NOT_FOUND) {
        return topic_offline(a, &req);
    }
    if (rc == -EAGAIN) {
        shmqctl_err("store %s is starting; try again", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot attach to store %s", root);
    }
    if (!shmqctl_master_alive(&ctl)) {
        /* A control block left behind by a master that died: the store is stopped. */
        shmq_ctl_detach(&ctl);
        return topic_offline(a, &req);
    }
    ret = topic_online(a, &ctl, &req);
    shmq_ctl_detach(&ctl);
    return ret;
}
