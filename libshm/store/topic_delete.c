/*
 * A topic's files removed (topic_delete.h): the directory of its
 * ConsumeQueues renamed away in one step and then removed, its consumer
 * offsets and its topics.json entry dropped.  Used by shmqctl on a stopped
 * store, by every writable store open for a deletion found interrupted,
 * and (shmq_topic_delete_queues) by the dispatcher of a running store.
 */
#include "store/topic_delete.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/store_files.h"
#include "shmq/errors.h"

#define TRASH_NAME ".deleting"

/* Remove dir and what it holds: queue directories and their segment files (two levels). */
static int remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : shmq_error_set(-errno, "opendir %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        char p[PATH_MAX];
        if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p)) {
            rc = shmq_error_set(-ENAMETOOLONG, "path under %s too long", dir);
            continue;
        }
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && depth > 0) {
            int r = remove_tree(p, depth - 1);
            rc = rc ? rc : r;
        } else if (unlink(p) < 0 && errno != ENOENT) {
            rc = rc ? rc : shmq_error_set(-errno, "unlink %s: %s", p, strerror(errno));
        }
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOENT) {
        rc = rc ? rc : shmq_error_set(-errno, "rmdir %s: %s", dir, strerror(errno));
    }
    return rc;
}

int shmq_topic_delete_queues(const char *root, const char *topic)
{
    char base[PATH_MAX], from[PATH_MAX], trash[PATH_MAX];
    if (snprintf(base, sizeof(base), "%s/consumequeue", root) >= (int)sizeof(base) ||
        snprintf(from, sizeof(from), "%s/%s", base, topic) >= (int)sizeof(from) ||
        snprintf(trash, sizeof(trash), "%s/" TRASH_NAME, base) >= (int)sizeof(trash)) {
        return shmq_error_set(-ENAMETOOLONG, "consume queue path under %s too long", root);
    }
    if (topic[0] == '\0' || topic[0] == '.' || strchr(topic, '/') != NULL) {
        return shmq_error_set(SHMQ_E_TOPIC, "bad topic name \"%.255s\"", topic);
    }
    int rc = remove_tree(trash, 2); /* an interrupted earlier deletion */
    if (rc < 0) {
        return rc;
    }
    if (rename(from, trash) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return shmq_error_set(-errno, "rename %s to %s: %s", from, trash, strerror(errno));
    }
    /* The rename is what makes the queues gone: durable before anything relies on it. */
    rc = shmq_file_fsync_dir(base);
    if (rc < 0) {
        return shmq_error_wrap(rc, "fsync %s", base);
    }
    return remove_tree(trash, 2);
}

/* Drop every "topic@group" entry of consumerOffset.json. */
static int delete_offsets(const char *root, const char *topic)
{
    shmq_offset_table_t t = {0}, out = {0};
    int rc = shmq_consumer_offsets_load(root, &t);
    if (rc == -ENOENT || rc == SHMQ_E_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    size_t tlen = strlen(topic);
    bool changed = false;
    for (size_t i = 0; i < t.count && rc == 0; i++) {
        const shmq_offset_entry_t *o = &t.entries[i];
        if (!strncmp(o->key, topic, tlen) && o->key[tlen] == '@') {
            changed = true;
            continue;
        }
        rc = shmq_offset_table_set(&out, o->key, o->queue_id, o->offset);
    }
    if (rc == 0 && changed) {
        out.data_version_counter = t.data_version_counter;
        out.data_version_state = t.data_version_state;
        rc = shmq_consumer_offsets_save_dropped(root, &out);
    }
    shmq_offset_table_free(&t);
    shmq_offset_table_free(&out);
    return rc;
}

int shmq_topic_delete_files(const char *root, const char *topic)
{
    shmq_topic_table_t t = {0};
    int rc = shmq_topics_load(root, &t);
    if (rc == 0 && shmq_topic_table_get(&t, topic) != NULL) {
        rc = shmq_topic_table_remove(&t, topic);
        if (rc == 0) {
            rc = shmq_topics_save(root, &t);
        }
    }
    shmq_topic_table_free(&t);
    if (rc < 0) {
        return shmq_error_wrap(rc, "topics.json");
    }
    rc = shmq_topic_delete_queues(root, topic);
    if (rc < 0) {
        return rc;
    }
    rc = delete_offsets(root, topic);
    return rc < 0 ? shmq_error_wrap(rc, "consumerOffset.json") : 0;
}

int shmq_topic_deletes_finish(const char *root, shmq_topic_cuts_t *t)
{
    bool changed = false;
    for (size_t i = 0; i < t->count; i++) {
        shmq_topic_cut_t *c = &t->cuts[i];
        if (c->cut != SHMQ_TOPIC_CUT_DELETING) {
            continue;
        }
        int rc = shmq_topic_delete_files(root, c->topic);
        if (rc < 0) {
            return shmq_error_wrap(rc, "finishing the deletion of topic %s", c->topic);
        }
        c->cut = SHMQ_TOPIC_CUT_AT_START;
        changed = true;
    }
    return changed ? shmq_topic_cuts_save(root, t) : 0;
}
