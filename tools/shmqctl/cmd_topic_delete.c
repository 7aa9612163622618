/*
 * shmqctl topic delete: a topic's configuration, ConsumeQueues and
 * consumer offsets removed, so that a topic created again with the same
 * name starts at queue offset 0 and hands no old message to any group.
 *
 * Running store (docs/operations.md "Deleting a topic"), under the topic
 * lock throughout:
 *   1. config/topicDeletes.json records the deletion as in progress (a
 *      crash from here on is finished by the next start, or by running the
 *      command again);
 *   2. the topic is marked deleted in the table, topics.json saved, and
 *      the request published in the control block (topic_del);
 *   3. the writer takes it between two batches: it writes nothing of the
 *      topic after its cut and sets its next offsets to 0;
 *   4. the dispatcher, past the cut, removes the topic's ConsumeQueues and
 *      sets their queue table entries back to 0 (new incarnation);
 *   5. here: every group's offsets of the topic dropped and saved, the
 *      cut recorded, the request finished.  The topic may be created again.
 *
 * Stopped store: the same files changed directly under the store lock
 * (store/topic_delete.h); the next start cuts the topic at the log's end.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "format/names.h"
#include "shm/ctl.h"
#include "shmqctl.h"
#include "store/topic_delete.h"

#define DELETE_WAIT_MS 30000

/* Record topic's cut in config/topicDeletes.json. */
static int save_cut(const char *root, const char *topic, int64_t cut)
{
    shmq_topic_cuts_t t;
    shmq_error_clear();
    int rc = shmq_topic_cuts_load(root, &t);
    if (rc == 0) {
        rc = shmq_topic_cuts_set(&t, topic, cut);
    }
    if (rc == 0) {
        rc = shmq_topic_cuts_save(root, &t);
    }
    shmq_topic_cuts_free(&t);
    return rc;
}

static bool deleting(const shmq_ctl_topic_del_t *d, uint64_t *req)
{
    /* Acquire: the topic name and the workers' steps are visible with the words. */
    *req = atomic_load_explicit((_Atomic uint64_t *)&d->request, memory_order_acquire);
    return *req != atomic_load_explicit((_Atomic uint64_t *)&d->finished, memory_order_acquire);
}

/* Steps 3 and 4: wait for the writer and the dispatcher (waking them), at most DELETE_WAIT_MS. */
static bool wait_workers(shmq_ctl_t *ctl, uint64_t req)
{
    shmq_ctl_topic_del_t *d = &ctl->blk->topic_del;
    int64_t deadline = shmq_mono_ms() + DELETE_WAIT_MS;
    while (shmq_mono_ms() < deadline) {
        /* Acquire: pairs with the workers' release of their words. */
        if (atomic_load_explicit(&d->writer_seen, memory_order_acquire) == req &&
            atomic_load_explicit(&d->dispatcher_done, memory_order_acquire) == req) {
            return true;
        }
        shmq_ctl_wake(&ctl->wake->writer_wake);
        shmq_ctl_wake(&ctl->blk->dispatcher_wake);
        struct timespec ms = {.tv_sec = 0, .tv_nsec = 2000000};
        nanosleep(&ms, NULL);
    }
    return false;
}

/* Step 5 of request req (the workers are done with it). */
static int finish(shmqctl_args_t *a, shmq_ctl_t *ctl, uint64_t req, const char *topic)
{
    shmq_ctl_topic_del_t *d = &ctl->blk->topic_del;
    shmq_error_clear();
    int rc = shmq_ctl_offsets_delete_topic(ctl, topic);
    if (rc >= 0) {
        rc = shmq_ctl_offsets_save_dropped(ctl);
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "topic %s: cannot drop its consumer offsets", topic);
    }
    /* Relaxed: published by the writer's release of writer_seen, acquired in wait_workers. */
    int64_t cut = atomic_load_explicit(&d->cut_pos, memory_order_relaxed);
    rc = save_cut(a->cfg.store_path_root_dir, topic, cut);
    if (rc < 0) {
        return shmqctl_fail(rc, "topic %s: cannot record its deletion", topic);
    }
    /* Release: everything above is done before the topic may be created again. */
    atomic_store_explicit(&d->finished, req, memory_order_release);
    return SHMQCTL_EXIT_OK;
}

int shmqctl_topic_delete_online(shmqctl_args_t *a, shmq_ctl_t *ctl, const char *name, bool exists)
{
    const char *root = a->cfg.store_path_root_dir;
    shmq_ctl_topic_del_t *d = &ctl->blk->topic_del;
    char prev[SHMQ_TOPIC_MAX_ANY + 1];
    uint64_t req;
    int rc;

    if (ctl->blk->hdr.config.broker_role == SHMQ_SLAVE) {
        shmqctl_err("%s is a slave: its topics follow its master's; delete %s there", root, name);
        return SHMQCTL_EXIT_FAIL;
    }
    if (deleting(d, &req)) {
        /* An earlier deletion was interrupted (its shmqctl died or gave up): finish it. */
        memcpy(prev, d->topic, sizeof(prev));
        prev[SHMQ_TOPIC_MAX_ANY] = '\0';
        if (!wait_workers(ctl, req)) {
            shmqctl_err("the deletion of topic %s is still under way; try again", prev);
            return SHMQCTL_EXIT_FAIL;
        }
        rc = finish(a, ctl, req, prev);
        if (rc != SHMQCTL_EXIT_OK) {
            return rc;
        }
        if (!strcmp(prev, name)) {
            return SHMQCTL_EXIT_OK;
        }
    }
    if (!exists) {
        shmqctl_err("no topic %s", name);
        return SHMQCTL_EXIT_FAIL;
    }
    /* Step 1: a crash from here on leaves a deletion the next start finishes. */
    rc = save_cut(root, name, SHMQ_TOPIC_CUT_DELETING);
    if (rc < 0) {
        return shmqctl_fail(rc, "topic %s: cannot record its deletion", name);
    }
    /* Step 2. */
    shmq_error_clear();
    rc = shmq_ctl_topic_delete(ctl, name);
    if (rc == 0) {
        rc = shmq_ctl_topics_save(ctl);
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot delete topic %s", name);
    }
    memset(d->topic, 0, sizeof(d->topic));
    memcpy(d->topic, name, strlen(name));
    req = atomic_load_explicit(&d->request, memory_order_relaxed) + 1;
    /* Release: the topic's deleted entry and its name are visible with the request. */
    atomic_store_explicit(&d->request, req, memory_order_release);
    /* Steps 3 and 4. */
    if (!wait_workers(ctl, req)) {
        shmqctl_err("topic %s is deleted, but the store has not removed its consume queues "
                    "within %d s (is the writer or the dispatcher stopped?); run 'topic delete "
                    "%s' again to finish",
                    name, DELETE_WAIT_MS / 1000, name);
        return SHMQCTL_EXIT_FAIL;
    }
    return finish(a, ctl, req, name);
}

int shmqctl_topic_delete_offline(shmqctl_args_t *a, const char *name)
{
    const char *root = a->cfg.store_path_root_dir;
    shmq_topic_table_t t = {0};
    shmq_topic_cuts_t cuts = {0};
    int fd = -1, rc, ret = SHMQCTL_EXIT_OK;

    if ((rc = shmqctl_store_lock(root, &fd)) != 0) {
        return rc;
    }
    rc = shmq_topics_load(root, &t);
    if (rc == 0) {
        rc = shmq_topic_cuts_load(root, &cuts);
    }
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot read the topics of %s", root);
        goto out;
    }
    const shmq_topic_cut_t *c = shmq_topic_cuts_get(&cuts, name, strlen(name));
    bool resume = c != NULL && c->cut == SHMQ_TOPIC_CUT_DELETING;
    if (shmq_topic_table_get(&t, name) == NULL && !resume) {
        shmqctl_err("no topic %s", name);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    shmq_error_clear();
    rc = shmq_topic_cuts_set(&cuts, name, SHMQ_TOPIC_CUT_DELETING);
    if (rc == 0) {
        rc = shmq_topic_cuts_save(root, &cuts);
    }
    if (rc == 0) {
        rc = shmq_topic_delete_files(root, name);
    }
    if (rc == 0) {
        /* Every record of the topic in the log is old: the next start cuts at its end. */
        rc = shmq_topic_cuts_set(&cuts, name, SHMQ_TOPIC_CUT_AT_START);
    }
    if (rc == 0) {
        rc = shmq_topic_cuts_save(root, &cuts);
    }
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot delete topic %s (run the command again to finish)", name);
        goto out;
    }
out:
    shmq_topic_cuts_free(&cuts);
    shmq_topic_table_free(&t);
    shmq_store_unlock(fd);
    return ret;
}

bool shmqctl_topic_internal(const char *name)
{
    return !strcmp(name, SHMQ_SCHEDULE_TOPIC) || !strcmp(name, SHMQ_TIMER_TOPIC) ||
           !strcmp(name, SHMQ_HALF_TOPIC);
}
