/*
 * Unit tests for damaged broker JSON metadata (libshm/format/json_meta*.c): a file
 * whose table key is damaged is told from an empty one (its .bak is read,
 * or the load is refused naming the file); damaged entries are replaced
 * from .bak or dropped, with a warning naming file, group, topic and queue;
 * offsets are checked against the queue's max offset; topics that have
 * consume queues but no entry are restored; a save keeps a RocketMQ
 * dataVersion and leaves every new entry in .bak too; a file older than its
 * .bak (a stale copy: a lower dataVersion counter) loads the .bak, with a
 * warning.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_tree.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

/* ---- fixtures ------------------------------------------------------------ */

static char warned[16384];
static int nwarned;

static void capture(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    size_t n = strlen(warned);
    snprintf(warned + n, sizeof(warned) - n, "%s\n", msg);
    nwarned++;
}

static int setup(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-json-meta-XXXXXX");
    if (dir == NULL) {
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/config", dir);
    if (mkdir(path, 0755) != 0) {
        return -1;
    }
    warned[0] = '\0';
    nwarned = 0;
    shmq_meta_set_warn(capture, NULL);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *dir = *state;
    shmq_meta_set_warn(NULL, NULL);
    tmp_tree_remove(dir);
    free(dir);
    return 0;
}

static void put(const char *root, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *get(const char *root, const char *name)
{
    char path[4096], *data = NULL;
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", root, name);
    if (shmq_file_read_all(path, 1 << 20, &data, &len) < 0) {
        return NULL;
    }
    return data;
}

static void mkdirs(const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    assert_int_equal(shmq_file_mkdirs(path), 0);
}

static void expect_warned(const char *needle)
{
    if (strstr(warned, needle) == NULL) {
        fail_msg("warnings lack \"%s\":\n%s", needle, warned);
    }
}

static int64_t offset_of(const shmq_offset_table_t *t, const char *key, int32_t q)
{
    int64_t off = -1;
    if (shmq_offset_table_get(t, key, q, &off) < 0) {
        return -1;
    }
    return off;
}

#define TOPICS_AB                                                                                  \
    "{\n\t\"dataVersion\":{\"counter\":4,\"stateVersion\":0,\"timestamp\":1},\n"                   \
    "\t\"topicConfigTable\":{\n"                                                                   \
    "\t\t\"TopicA\":{\"perm\":6,\"readQueueNums\":8,\"topicName\":\"TopicA\","                     \
    "\"writeQueueNums\":8},\n"                                                                     \
    "\t\t\"TopicB\":{\"perm\":4,\"readQueueNums\":2,\"topicName\":\"TopicB\","                     \
    "\"writeQueueNums\":2}\n\t}\n}\n"

#define OFFSETS_G1                                                                                 \
    "{\n\t\"offsetTable\":{\n\t\t\"TopicA@G1\":{0:13,1:13,2:4},\n\t\t\"TopicA@G2\":{0:3}\n\t}\n}"  \
    "\n"

/* ---- a damaged file is not an empty one ----------------------------------------- */

static void test_topics_damaged_table_key_loads_bak_with_a_warning(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    char *bad = strdup(TOPICS_AB);
    *strstr(bad, "topicConfigTable") ^= 0x01; /* "uopicConfigTable" */
    put(root, "config/topics.json", bad);
    put(root, "config/topics.json.bak", TOPICS_AB);
    free(bad);
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_topic_table_get(&t, "TopicA")->read_queue_nums, 8);
    expect_warned("config/topics.json is damaged");
    expect_warned("no \"topicConfigTable\" table");
    expect_warned("loading");
    expect_warned("topics.json.bak");
    shmq_topic_table_free(&t);
}

static void test_topics_damaged_table_key_without_bak_refuses_naming_the_file(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    put(root, "config/topics.json", "{\"topicConfigTablg\":{\"TopicA\":{}}}");
    assert_int_equal(shmq_topics_load(root, &t), SHMQ_E_JSON);
    assert_int_equal(t.count, 0);
    const char *d = shmq_error_detail();
    if (strstr(d, "config/topics.json is damaged") == NULL ||
        strstr(d, "\"topicConfigTablg\" is a damaged name of it") == NULL ||
        strstr(d, "topics.json.bak is missing") == NULL) {
        fail_msg("detail: %s", d);
    }
}

static void test_content_without_table_is_damaged_whitespace_is_missing(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    put(root, "config/consumerOffset.json", "{}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), SHMQ_E_JSON);
    put(root, "config/consumerOffset.json", "{\"offsetTable\":null}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), SHMQ_E_JSON);
    put(root, "config/consumerOffset.json", " \n\t\n");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 0);
    assert_int_equal(nwarned, 0);
}

static void test_repeated_key_is_damage(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    /* Queue 1 flipped to "0": which of the two values is right cannot be told. */
    put(root, "config/consumerOffset.json", "{\"offsetTable\":{\"T@G\":{0:5,0:7}}}");
    put(root, "config/consumerOffset.json.bak", "{\"offsetTable\":{\"T@G\":{0:5,1:6}}}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "T@G", 0), 5);
    assert_int_equal(offset_of(&t, "T@G", 1), 6);
    expect_warned("duplicate");
    shmq_offset_table_free(&t);
}

/* ---- consumer offsets --------------------------------------------------------------- */

static void test_offsets_damaged_table_key_loads_bak(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    char *bad = strdup(OFFSETS_G1);
    *strstr(bad, "offsetTable") ^= 0x20; /* "OffsetTable" */
    put(root, "config/consumerOffset.json", bad);
    put(root, "config/consumerOffset.json.bak", OFFSETS_G1);
    free(bad);
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 4);
    assert_int_equal(offset_of(&t, "TopicA@G1", 2), 4);
    expect_warned("consumerOffset.json is damaged");
    shmq_offset_table_free(&t);
}

static void test_offsets_negative_entry_replaced_from_bak_naming_group_topic_queue(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G1\":{0:20,1:-5,2:4},\"TopicA@G2\":{0:-1}}}");
    put(root, "config/consumerOffset.json.bak", OFFSETS_G1);
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 20);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 13);
    assert_int_equal(offset_of(&t, "TopicA@G2", 0), 3);
    expect_warned("consumerOffset.json: group G1, topic TopicA, queue 1: offset -5 is negative; "
                  "using 13 from");
    expect_warned("group G2, topic TopicA, queue 0");
    shmq_offset_table_free(&t);
    /* Without a .bak the entry is dropped, with the warning: the start is not refused. */
    unlink(strcat(strcpy((char[4096]){0}, root), "/config/consumerOffset.json.bak"));
    warned[0] = '\0';
    put(root, "config/consumerOffset.json", "{\"offsetTable\":{\"TopicA@G1\":{0:20,1:-5}}}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 1);
    expect_warned("group G1, topic TopicA, queue 1: offset -5 is negative; dropped");
    shmq_offset_table_free(&t);
}

static int fake_max(void *arg, const char *topic, int32_t queue_id, int64_t *max)
{
    (void)arg;
    if (strcmp(topic, "TopicA") != 0) {
        return -ENOENT;
    }
    if (queue_id > 2) {
        return SHMQ_E_NOT_FOUND;
    }
    *max = 14;
    return 0;
}

static void test_offsets_above_queue_max_plus_one_take_bak_value_else_dropped(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    shmq_meta_report_t rep;
    /* 13 -> 93 (a digit flip), 4 -> 36 with a .bak value that does not fit either. */
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G1\":{0:93,1:13,2:36,7:2},\"TopicZ@G1\":{0:99}}}");
    put(root, "config/consumerOffset.json.bak",
        "{\"offsetTable\":{\"TopicA@G1\":{0:13,1:13,2:40},\"TopicZ@G1\":{0:99}}}");
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 13);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 13);
    assert_int_equal(offset_of(&t, "TopicA@G1", 2), -1); /* dropped, not lowered */
    assert_int_equal(offset_of(&t, "TopicA@G1", 7), -1);
    assert_int_equal(offset_of(&t, "TopicZ@G1", 0), 99); /* a topic the store lacks: kept */
    assert_int_equal(t.count, 3);
    assert_int_equal(rep.warnings, 3);
    expect_warned("group G1, topic TopicA, queue 0: offset 93 is above the queue's max offset 14; "
                  "using 13 from");
    expect_warned("group G1, topic TopicA, queue 2: offset 36 is above the queue's max offset 14; "
                  "dropped (");
    expect_warned("consumerOffset.json.bak has no offset for it up to 15)");
    expect_warned(
        "group G1, topic TopicA, queue 7: offset 2 is above the queue's max offset 0 (the "
        "topic has no such queue); dropped");
    shmq_offset_table_free(&t);
    /* No .bak at all: dropped too, and the load succeeds. */
    unlink(strcat(strcpy((char[4096]){0}, root), "/config/consumerOffset.json.bak"));
    warned[0] = '\0';
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), -1);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 13);
    expect_warned("queue 0: offset 93 is above the queue's max offset 14; dropped (no .bak to take "
                  "one from)");
    shmq_offset_table_free(&t);
}

static void test_offsets_up_to_queue_max_plus_one_are_kept_without_a_warning(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    shmq_meta_report_t rep;
    /* What a commit may store: 0..max + 1 (max 14 here). */
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G1\":{0:0,1:14,2:15},\"TopicA@G2\":{0:16}}}");
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 14);
    assert_int_equal(offset_of(&t, "TopicA@G1", 2), 15);
    assert_int_equal(offset_of(&t, "TopicA@G2", 0), -1);
    assert_int_equal(rep.warnings, 1);
    expect_warned("group G2, topic TopicA, queue 0: offset 16 is above the queue's max offset 14");
    shmq_offset_table_free(&t);
}

static void test_offsets_non_integer_take_bak_value_else_dropped_naming_the_value(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    shmq_meta_report_t rep;
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G1\":{0:\"7\",1:7.5,2:null,3:true,4:9}}}");
    put(root, "config/consumerOffset.json.bak",
        "{\"offsetTable\":{\"TopicA@G1\":{0:7,1:8,3:-1,4:9}}}");
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, NULL, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 7);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 8);
    assert_int_equal(offset_of(&t, "TopicA@G1", 2), -1);
    assert_int_equal(offset_of(&t, "TopicA@G1", 3), -1);
    assert_int_equal(offset_of(&t, "TopicA@G1", 4), 9);
    assert_int_equal(t.count, 3);
    assert_int_equal(rep.warnings, 4);
    expect_warned("group G1, topic TopicA, queue 0: offset \"7\" is not an integer; using 7 from");
    expect_warned("group G1, topic TopicA, queue 1: offset 7.5 is not an integer; using 8 from");
    expect_warned("group G1, topic TopicA, queue 2: offset null is not an integer; dropped");
    expect_warned("group G1, topic TopicA, queue 3: offset true is not an integer; dropped (");
    expect_warned("consumerOffset.json.bak has no valid value for it)");
    shmq_offset_table_free(&t);
}

static void test_offsets_minus_five_in_file_and_bak_is_dropped_and_the_load_succeeds(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    shmq_meta_report_t rep;
    /* A consumer wrote -5 into the shared area and two saves put it in both files. */
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G1\":{0:-5,1:3},\"TopicA@G2\":{0:4}}}");
    put(root, "config/consumerOffset.json.bak",
        "{\"offsetTable\":{\"TopicA@G1\":{0:-5,1:3},\"TopicA@G2\":{0:4}}}");
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), -1);
    assert_int_equal(offset_of(&t, "TopicA@G1", 1), 3);
    assert_int_equal(offset_of(&t, "TopicA@G2", 0), 4);
    assert_int_equal(rep.warnings, 1);
    expect_warned("group G1, topic TopicA, queue 0: offset -5 is negative; dropped");
    shmq_offset_table_free(&t);
    /* The saved table loads again without a finding. */
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    shmq_offset_table_free(&t);
    warned[0] = '\0';
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(rep.warnings, 0);
    assert_int_equal(t.count, 2);
    shmq_offset_table_free(&t);
}

static void test_offsets_group_with_slash_is_kept_topic_with_slash_dropped(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    shmq_meta_report_t rep;
    /* Consumers may open a group named "app/eu-1": a running store saves its offsets. */
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@app/eu-1\":{0:5},\"../x@G1\":{0:1}}}");
    assert_int_equal(shmq_consumer_offsets_load_ex(root, &t, fake_max, NULL, &rep), 0);
    assert_int_equal(offset_of(&t, "TopicA@app/eu-1", 0), 5);
    assert_int_equal(t.count, 1);
    assert_int_equal(rep.warnings, 1);
    expect_warned("entry \"../x@G1\": the topic has a '/'; dropped");
    shmq_offset_table_free(&t);
}

static void test_offsets_missing_from_file_are_restored_from_bak(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    /* "TopicA@G1" flipped to "TopicA@G3": G1's offsets would vanish. */
    put(root, "config/consumerOffset.json",
        "{\"offsetTable\":{\"TopicA@G3\":{0:14,1:14,2:5},\"TopicA@G2\":{0:3}}}");
    put(root, "config/consumerOffset.json.bak", OFFSETS_G1);
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 13);
    assert_int_equal(offset_of(&t, "TopicA@G1", 2), 4);
    assert_int_equal(offset_of(&t, "TopicA@G3", 0), 14);
    expect_warned("group G1, topic TopicA, queue 0 is missing; restored from");
    expect_warned("\"TopicA@G3\" (not in");
    expect_warned("differs from \"TopicA@G1\" by one bit");
    shmq_offset_table_free(&t);
}

static void test_offsets_key_without_group_is_dropped(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    put(root, "config/consumerOffset.json", "{\"offsetTable\":{\"TopicA G1\":{0:13}}}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.count, 0);
    expect_warned("entry \"TopicA G1\": the key is not topic@group; dropped");
}

static void test_offsets_save_keeps_rocketmq_data_version(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    put(root, "config/consumerOffset.json",
        "{\n\t\"dataVersion\":{\n\t\t\"counter\":41,\n\t\t\"stateVersion\":3,\n\t\t\"timestamp\":"
        "1700000000000\n\t},\n\t\"offsetTable\":{\n\t\t\"TopicA@G1\":{0:13}\n\t}\n}");
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.data_version_counter, 41);
    assert_int_equal(t.data_version_state, 3);
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@G1", 0, 20), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    shmq_offset_table_free(&t);
    assert_int_equal(shmq_consumer_offsets_load(root, &t), 0);
    assert_int_equal(t.data_version_counter, 42);
    assert_int_equal(t.data_version_state, 3);
    assert_int_equal(offset_of(&t, "TopicA@G1", 0), 20);
    shmq_offset_table_free(&t);
}

static void test_save_adding_entries_leaves_them_in_bak(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t = {0};
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@G1", 0, 1), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@G1", 0, 2), 0);
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@G9", 3, 7), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    char *bak = get(root, "config/consumerOffset.json.bak");
    assert_non_null(bak);
    assert_non_null(strstr(bak, "TopicA@G9"));
    free(bak);
    /* A save that only changes values keeps the previous version as .bak. */
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@G1", 0, 3), 0);
    assert_int_equal(shmq_consumer_offsets_save(root, &t), 0);
    bak = get(root, "config/consumerOffset.json.bak");
    assert_non_null(strstr(bak, "\"0\": 2"));
    free(bak);
    shmq_offset_table_free(&t);
}

static void test_file_older_than_its_bak_loads_the_bak(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    /* An old version put back in place of the file: its counter is behind the .bak's. */
    put(root, "config/delayOffset.json",
        "{\"dataVersion\":{\"counter\":3,\"stateVersion\":0,\"timestamp\":1700000000000},"
        "\"offsetTable\":{1:20}}");
    put(root, "config/delayOffset.json.bak",
        "{\"dataVersion\":{\"counter\":5,\"stateVersion\":0,\"timestamp\":1700000009000},"
        "\"offsetTable\":{1:30}}");
    assert_int_equal(shmq_delay_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "", 1), 30);
    expect_warned("delayOffset.json is older than its backup (dataVersion counter 3");
    expect_warned("a stale copy; loading");
    shmq_offset_table_free(&t);
    /* The usual state: the file one save ahead of its .bak, or the same text twice. */
    warned[0] = '\0';
    put(root, "config/delayOffset.json",
        "{\"dataVersion\":{\"counter\":6,\"stateVersion\":0,\"timestamp\":1700000010000},"
        "\"offsetTable\":{1:31}}");
    assert_int_equal(shmq_delay_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "", 1), 31);
    assert_null(strstr(warned, "older than its backup"));
    shmq_offset_table_free(&t);
}

/* ---- delay offsets ------------------------------------------------------------------- */

static void test_delay_level_flip_restored_from_bak_and_above_max_lowered(void **state)
{
    const char *root = *state;
    shmq_offset_table_t t;
    /* Level 2's key flipped to "6"; SCHEDULE_TOPIC_XXXX has queues 0 and 1 only. */
    mkdirs(root, "consumequeue/SCHEDULE_TOPIC_XXXX/0");
    mkdirs(root, "consumequeue/SCHEDULE_TOPIC_XXXX/1");
    put(root, "config/delayOffset.json", "{\"offsetTable\":{1:0,6:3}}");
    put(root, "config/delayOffset.json.bak", "{\"offsetTable\":{1:0,2:3}}");
    assert_int_equal(shmq_delay_offsets_load(root, &t), 0);
    assert_int_equal(offset_of(&t, "", 2), 0);
    assert_int_equal(offset_of(&t, "", 6), 0);
    expect_warned("delayOffset.json: level 2 is missing; restored from");
    expect_warned("level 6: offset 3 is above the queue's max offset 0");
    shmq_offset_table_free(&t);
}

/* ---- topics -------------------------------------------------------------------------- */

static void test_topic_with_consume_queues_but_no_entry_is_restored(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    mkdirs(root, "consumequeue/TopicA/0");
    mkdirs(root, "consumequeue/TopicC/0");
    mkdirs(root, "consumequeue/TopicC/2");
    put(root, "config/topics.json", TOPICS_AB);
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 3);
    const shmq_topic_config_t *tc = shmq_topic_table_get(&t, "TopicC");
    assert_non_null(tc);
    assert_int_equal(tc->read_queue_nums, 3);
    assert_int_equal(tc->write_queue_nums, 3);
    assert_int_equal(tc->perm, 6);
    expect_warned("topic \"TopicC\" has consume queues");
    expect_warned("restored with 3 read and write queues");
    shmq_topic_table_free(&t);
    /* Both files missing: every topic comes back from its consume queues. */
    warned[0] = '\0';
    unlink(strcat(strcpy((char[4096]){0}, root), "/config/topics.json"));
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_topic_table_get(&t, "TopicA")->read_queue_nums, 1);
    shmq_topic_table_free(&t);
}

static void test_topic_key_flip_is_read_under_the_name_the_store_knows(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    mkdirs(root, "consumequeue/TopicA/0");
    /* The key flipped ("TopicA" -> "TopicE"), the topicName intact. */
    put(root, "config/topics.json",
        "{\"topicConfigTable\":{\"TopicE\":{\"readQueueNums\":5,\"topicName\":\"TopicA\"}}}");
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(shmq_topic_table_get(&t, "TopicA")->read_queue_nums, 5);
    expect_warned("topic key \"TopicE\" differs from its topicName \"TopicA\"; read as \"TopicA\"");
    shmq_topic_table_free(&t);
    /* The topicName flipped instead: the key is the store's. */
    warned[0] = '\0';
    put(root, "config/topics.json",
        "{\"topicConfigTable\":{\"TopicA\":{\"readQueueNums\":5,\"topicName\":\"TopicE\"}}}");
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(shmq_topic_table_get(&t, "TopicA")->read_queue_nums, 5);
    expect_warned("topicName \"TopicE\" differs from the key; read as \"TopicA\"");
    shmq_topic_table_free(&t);
}

static void test_topic_field_name_flip_takes_the_bak_entry(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    char *bad = strdup(TOPICS_AB);
    *strstr(bad, "readQueueNums\":8") ^= 0x04; /* "veadQueueNums" */
    put(root, "config/topics.json", bad);
    put(root, "config/topics.json.bak", TOPICS_AB);
    free(bad);
    assert_int_equal(shmq_topics_load(root, &t), 0);
    assert_int_equal(shmq_topic_table_get(&t, "TopicA")->read_queue_nums, 8);
    expect_warned("topic \"TopicA\": field \"veadQueueNums\" is a damaged \"readQueueNums\"; using "
                  "its entry in");
    shmq_topic_table_free(&t);
}

static void test_topics_save_keeps_state_version_and_quiet_load_reports_nothing(void **state)
{
    const char *root = *state;
    shmq_topic_table_t t;
    shmq_meta_report_t rep;
    put(root, "config/topics.json",
        "{\"dataVersion\":{\"counter\":9,\"stateVersion\":5,\"timestamp\":1},"
        "\"topicConfigTable\":{\"TopicA\":{\"readQueueNums\":0}}}");
    assert_int_equal(shmq_topics_load_ex(root, &t, SHMQ_META_QUIET, &rep), 0);
    assert_int_equal(rep.warnings, 0);
    assert_int_equal(nwarned, 0);
    assert_int_equal(t.data_version_state, 5);
    t.data_version_counter = 10;
    assert_int_equal(shmq_topics_save(root, &t), 0);
    shmq_topic_table_free(&t);
    char *text = get(root, "config/topics.json");
    assert_non_null(strstr(text, "\"stateVersion\": 5"));
    free(text);
}

/* ---- groups -------------------------------------------------------------------------- */

static void test_group_name_flip_and_bad_entry(void **state)
{
    const char *root = *state;
    shmq_group_table_t t;
    put(root, "config/subscriptionGroup.json.bak",
        "{\"subscriptionGroupTable\":{\"GR\":{\"groupName\":\"GR\",\"retryMaxTimes\":4},"
        "\"GX\":{\"groupName\":\"GX\",\"retryMaxTimes\":2}}}");
    put(root, "config/subscriptionGroup.json",
        "{\"subscriptionGroupTable\":{\"GR\":{\"groupName\":\"GV\",\"retryMaxTimes\":4},"
        "\"GX\":{\"groupName\":\"GX\",\"retryMaxTimes\":\"2\"}}}");
    assert_int_equal(shmq_groups_load(root, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_group_table_get(&t, "GR")->retry_max_times, 4);
    assert_int_equal(shmq_group_table_get(&t, "GX")->retry_max_times, 2);
    expect_warned("group \"GR\": groupName \"GV\" differs from the key; read as \"GR\"");
    expect_warned("group \"GX\": field \"retryMaxTimes\": expected an integer; using its entry in");
    shmq_group_table_free(&t);
}

static void test_one_bit_apart(void **state)
{
    (void)state;
    assert_true(shmq_meta_one_bit_apart("offsetTable", "offsetTabld"));
    assert_true(shmq_meta_one_bit_apart("a", "A"));
    assert_false(shmq_meta_one_bit_apart("a", "a"));
    assert_false(shmq_meta_one_bit_apart("ab", "ba"));
    assert_true(shmq_meta_one_bit_apart("a", "c"));  /* 0x61 ^ 0x63 = 0x02 */
    assert_false(shmq_meta_one_bit_apart("a", "b")); /* 0x61 ^ 0x62 = 0x03 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_topics_damaged_table_key_loads_bak_with_a_warning),
        T(test_topics_damaged_table_key_without_bak_refuses_naming_the_file),
        T(test_content_without_table_is_damaged_whitespace_is_missing),
        T(test_repeated_key_is_damage),
        T(test_offsets_damaged_table_key_loads_bak),
        T(test_offsets_negative_entry_replaced_from_bak_naming_group_topic_queue),
        T(test_offsets_above_queue_max_plus_one_take_bak_value_else_dropped),
        T(test_offsets_up_to_queue_max_plus_one_are_kept_without_a_warning),
        T(test_offsets_non_integer_take_bak_value_else_dropped_naming_the_value),
        T(test_offsets_minus_five_in_file_and_bak_is_dropped_and_the_load_succeeds),
        T(test_offsets_group_with_slash_is_kept_topic_with_slash_dropped),
        T(test_offsets_missing_from_file_are_restored_from_bak),
        T(test_offsets_key_without_group_is_dropped),
        T(test_offsets_save_keeps_rocketmq_data_version),
        T(test_save_adding_entries_leaves_them_in_bak),
        T(test_delay_level_flip_restored_from_bak_and_above_max_lowered),
        T(test_file_older_than_its_bak_loads_the_bak),
        T(test_topic_with_consume_queues_but_no_entry_is_restored),
        T(test_topic_key_flip_is_read_under_the_name_the_store_knows),
        T(test_topic_field_name_flip_takes_the_bak_entry),
        T(test_topics_save_keeps_state_version_and_quiet_load_reports_nothing),
        T(test_group_name_flip_and_bad_entry),
        T(test_one_bit_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
