/*
 * Unit tests for the consumer-side permission rules (libshm/client/subscription.c):
 * a group whose consumeEnable is false, or a topic whose perm lacks
 * PERM_READ (4), may not consume, and the refusal is -EACCES with a detail
 * naming the rule; a group subscriptionGroup.json lacks, a consumer without
 * a group and a topic the store lacks are not refused.  The group settings
 * a consumer keeps follow the file: an edit of consumeEnable is seen at the
 * next check, not before its interval, and a missing or damaged file means
 * the defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmp_tree.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"
#include "client/subscription.h"

static void quiet(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

static int setup(void **state)
{
    char *dir = tmp_tree_make("/tmp/shmq-test-consume-perm-XXXXXX");
    if (dir == NULL) {
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/config", dir);
    if (mkdir(path, 0750) != 0) {
        return -1;
    }
    shmq_meta_set_warn(quiet, NULL);
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

static void put_groups(const char *root, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/config/subscriptionGroup.json", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void expect_detail(const char *needle)
{
    if (strstr(shmq_error_detail(), needle) == NULL) {
        fail_msg("detail lacks \"%s\": %s", needle, shmq_error_detail());
    }
}

/* ---- the rules ------------------------------------------------------------------------ */

static void test_group_with_consume_enable_false_is_refused_naming_the_rule(void **state)
{
    (void)state;
    shmq_group_config_t g;
    shmq_group_config_init(&g, "G1");
    assert_int_equal(shmq_sub_may_consume("TopicA", 6, &g), 0);
    g.consume_enable = false;
    shmq_error_clear();
    assert_int_equal(shmq_sub_may_consume("TopicA", 6, &g), -EACCES);
    expect_detail("consumer group G1 may not consume: consumeEnable is false in "
                  "subscriptionGroup.json");
    /* Whatever the topic: the group is checked first, as RocketMQ does. */
    assert_int_equal(shmq_sub_may_consume("TopicA", 2, &g), -EACCES);
    expect_detail("consumeEnable is false");
}

static void test_topic_without_perm_read_is_refused_naming_the_rule(void **state)
{
    (void)state;
    shmq_group_config_t g;
    shmq_group_config_init(&g, "G1");
    for (int32_t perm = 0; perm < 16; perm++) {
        shmq_error_clear();
        int rc = shmq_sub_may_consume("TopicA", perm, &g);
        if (perm & SHMQ_PERM_READ) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -EACCES);
            char want[128];
            snprintf(want, sizeof(want),
                     "topic TopicA is not readable (perm %d, PERM_READ 4 not set)", (int)perm);
            expect_detail(want);
        }
    }
    /* A consumer without a group is held to the topic's perm too. */
    assert_int_equal(shmq_sub_may_consume("TopicW", SHMQ_PERM_WRITE, NULL), -EACCES);
    expect_detail("topic TopicW is not readable (perm 2");
    assert_int_equal(shmq_sub_may_consume("TopicR", SHMQ_PERM_READ, NULL), 0);
}

static void test_unknown_topic_and_group_are_not_refused(void **state)
{
    (void)state;
    /* No such topic (-1): the pull itself answers that there is no queue. */
    assert_int_equal(shmq_sub_may_consume("NoTopic", -1, NULL), 0);
    shmq_group_config_t g;
    shmq_group_config_init(&g, "G1");
    assert_int_equal(shmq_sub_may_consume("NoTopic", -1, &g), 0);
    assert_true(g.consume_enable); /* RocketMQ's default */
}

/* ---- the settings a consumer keeps ----------------------------------------------------------- */

#define GROUPS(enable)                                                                             \
    "{\"subscriptionGroupTable\":{\"G1\":{\"groupName\":\"G1\",\"consumeEnable\":" enable          \
    "},\"G2\":{\"groupName\":\"G2\"}}}"

static void test_group_settings_follow_the_file_at_the_next_check(void **state)
{
    const char *root = *state;
    shmq_sub_group_t sg;
    memset(&sg, 0, sizeof(sg));
    put_groups(root, GROUPS("false"));
    const shmq_group_config_t *g = shmq_sub_group_get(&sg, root, "G1", 1000);
    assert_non_null(g);
    assert_false(g->consume_enable);
    assert_int_equal(shmq_sub_may_consume("TopicA", 6, g), -EACCES);

    /* Enabled by an edit (another size: the change is seen whatever the mtime grain). */
    put_groups(root, GROUPS("true "));
    g = shmq_sub_group_get(&sg, root, "G1", 1000 + SHMQ_SUB_GROUP_CHECK_MS - 1);
    assert_non_null(g);
    assert_false(g->consume_enable); /* not looked at before the interval */
    g = shmq_sub_group_get(&sg, root, "G1", 1000 + SHMQ_SUB_GROUP_CHECK_MS);
    assert_non_null(g);
    assert_true(g->consume_enable);
    assert_int_equal(shmq_sub_may_consume("TopicA", 6, g), 0);

    /* A group the file lacks: the defaults (NULL). */
    shmq_sub_group_t other;
    memset(&other, 0, sizeof(other));
    assert_null(shmq_sub_group_get(&other, root, "G9", 1000));
    assert_int_equal(shmq_sub_may_consume("TopicA", 6, NULL), 0);
}

static void test_missing_or_damaged_group_file_means_the_defaults(void **state)
{
    const char *root = *state;
    shmq_sub_group_t sg;
    memset(&sg, 0, sizeof(sg));
    assert_null(shmq_sub_group_get(&sg, root, "G1", 0)); /* no file */
    put_groups(root, GROUPS("false"));
    assert_false(shmq_sub_group_get(&sg, root, "G1", SHMQ_SUB_GROUP_CHECK_MS)->consume_enable);
    /* Damaged beyond use with no .bak: the load is refused, the defaults apply. */
    put_groups(root, "{\"subscriptionGroupTable\":{\"G1\":");
    assert_null(shmq_sub_group_get(&sg, root, "G1", 2 * SHMQ_SUB_GROUP_CHECK_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_group_with_consume_enable_false_is_refused_naming_the_rule),
        T(test_topic_without_perm_read_is_refused_naming_the_rule),
        T(test_unknown_topic_and_group_are_not_refused),
        T(test_group_settings_follow_the_file_at_the_next_check),
        T(test_missing_or_damaged_group_file_means_the_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
