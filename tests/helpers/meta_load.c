/*
 * meta_load ROOT: load a stopped store's config/ JSON files with the loaders the
 * store uses (topics as shmq_store_open, consumer and delay offsets checked
 * against the consume queue files, subscription groups) and print what
 * they hold, one sorted line per entry, so that a test can compare a
 * damaged store's tables with the intact one's:
 *
 *   topic NAME READ WRITE PERM ORDER      offset KEY QUEUE OFFSET
 *   delay LEVEL OFFSET                     group NAME RETRYMAX RETRYQUEUES
 *   refused FILE                           (a load that failed)
 *
 * Findings go to stderr as "warning: ..." / "note: ...".  Exit 0, or 2 on
 * bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

static void sink(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    fprintf(stderr, "%s: %s\n", level == SHMQ_META_WARN ? "warning" : "note", msg);
}

static void refused(const char *file, int rc)
{
    printf("refused %s\n", file);
    fprintf(stderr, "warning: refused: %s\n",
            shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: meta_load ROOT\n");
        return 2;
    }
    const char *root = argv[1];
    shmq_meta_set_warn(sink, NULL);

    shmq_topic_table_t t;
    int rc = shmq_topics_load(root, &t);
    if (rc < 0) {
        refused("topics.json", rc);
    } else {
        for (size_t i = 0; i < t.count; i++) {
            const shmq_topic_config_t *c = &t.topics[i];
            printf("topic %s %d %d %d %d\n", c->name, (int)c->read_queue_nums,
                   (int)c->write_queue_nums, (int)c->perm, c->order ? 1 : 0);
        }
        shmq_topic_table_free(&t);
    }
    shmq_offset_table_t o;
    rc = shmq_consumer_offsets_load(root, &o);
    if (rc < 0) {
        refused("consumerOffset.json", rc);
    } else {
        for (size_t i = 0; i < o.count; i++) {
            printf("offset %s %d %lld\n", o.entries[i].key, (int)o.entries[i].queue_id,
                   (long long)o.entries[i].offset);
        }
        shmq_offset_table_free(&o);
    }
    rc = shmq_delay_offsets_load(root, &o);
    if (rc < 0) {
        refused("delayOffset.json", rc);
    } else {
        for (size_t i = 0; i < o.count; i++) {
            printf("delay %d %lld\n", (int)o.entries[i].queue_id, (long long)o.entries[i].offset);
        }
        shmq_offset_table_free(&o);
    }
    shmq_group_table_t g;
    rc = shmq_groups_load(root, &g);
    if (rc < 0) {
        refused("subscriptionGroup.json", rc);
    } else {
        for (size_t i = 0; i < g.count; i++) {
            printf("group %s %d %d\n", g.groups[i].name, (int)g.groups[i].retry_max_times,
                   (int)g.groups[i].retry_queue_nums);
        }
        shmq_group_table_free(&g);
    }
    return 0;
}
