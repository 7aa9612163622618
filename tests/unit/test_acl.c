/*
 * ACL rules (libshm/format/acl.h): the file's strict parsing, which account a
 * client gets, the publish / subscribe / group decisions with RocketMQ's
 * defaults, retry topics under their group, the store's user, the text of
 * a refusal, and the watched file (reload on change, old rules kept when a
 * change does not load, refused when none ever loaded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/acl.h"
#include "shmq/errors.h"

#define UID_A 4000001u /* uids and gids no system has */
#define UID_B 4000002u
#define GID_X 4000010u
#define GID_Y 4000011u

static const char *RULES = "{ \"accounts\": ["
                           "  { \"user\": \"4000001\", \"topicPerms\": [\"orders=PUB|SUB\","
                           "    \"audit=SUB\", \"drafts=PUB\"], \"groupPerms\": [\"billing=SUB\","
                           "    \"ops=DENY\"] },"
                           "  { \"group\": \"4000010\", \"defaultTopicPerm\": \"SUB\","
                           "    \"defaultGroupPerm\": \"DENY\", \"topicPerms\": [\"secret=DENY\"],"
                           "    \"groupPerms\": [\"readers=SUB\"] },"
                           "  { \"group\": \"4000011\", \"admin\": true }"
                           "] }";

static shmq_acl_ident_t ident(uid_t uid, gid_t g0, gid_t g1)
{
    shmq_acl_ident_t id = {.uid = uid, .ngroups = g1 ? 2 : 1, .groups = {g0, g1}};
    return id;
}

static void parse_ok(const char *text, shmq_acl_t *acl)
{
    shmq_error_clear();
    int rc = shmq_acl_parse(text, strlen(text), "acl.json", acl);
    if (rc != 0) {
        fail_msg("parse: %s", shmq_error_detail());
    }
}

/* The text must be refused with a detail containing want. */
static void parse_refused(const char *text, const char *want)
{
    shmq_acl_t acl;
    shmq_error_clear();
    assert_int_equal(shmq_acl_parse(text, strlen(text), "acl.json", &acl), SHMQ_E_CONFIG);
    if (strstr(shmq_error_detail(), want) == NULL) {
        fail_msg("detail \"%s\" lacks \"%s\"", shmq_error_detail(), want);
    }
    assert_null(acl.accounts);
    assert_int_equal(acl.naccounts, 0);
}

static void test_first_matching_account_decides(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok(RULES, &acl);
    assert_int_equal(acl.naccounts, 3);
    shmq_acl_ident_t a = ident(UID_A, GID_X, 0); /* user A also in group X: account 0 first */
    const shmq_acl_account_t *acct = shmq_acl_match(&acl, &a);
    assert_non_null(acct);
    assert_int_equal(acct->index, 0);
    shmq_acl_ident_t b = ident(UID_B, 100, GID_X); /* by a supplementary group */
    acct = shmq_acl_match(&acl, &b);
    assert_non_null(acct);
    assert_int_equal(acct->index, 1);
    shmq_acl_ident_t c = ident(UID_B, 100, 0);
    assert_null(shmq_acl_match(&acl, &c));
    shmq_acl_free(&acl);
}

static void test_topic_and_group_rules(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok(RULES, &acl);
    shmq_acl_ident_t a = ident(UID_A, 100, 0);
    const shmq_acl_account_t *acct = shmq_acl_match(&acl, &a);
    assert_int_equal(shmq_acl_may_publish(acct, &a, "orders", 6), 0);
    assert_int_equal(shmq_acl_may_subscribe(acct, &a, "orders", 6, "billing"), 0);
    assert_int_equal(shmq_acl_may_publish(acct, &a, "audit", 5), -EACCES);
    assert_int_equal(shmq_acl_may_subscribe(acct, &a, "audit", 5, NULL), 0);
    assert_int_equal(shmq_acl_may_subscribe(acct, &a, "drafts", 6, NULL), -EACCES);
    /* defaultTopicPerm is DENY unless given (RocketMQ); a prefix is not the topic. */
    assert_int_equal(shmq_acl_may_publish(acct, &a, "order", 5), -EACCES);
    assert_int_equal(shmq_acl_may_publish(acct, &a, "ordersX", 7), -EACCES);
    /* defaultGroupPerm is SUB unless given; an entry overrides it. */
    assert_int_equal(shmq_acl_may_use_group(acct, &a, "anygroup"), 0);
    assert_int_equal(shmq_acl_may_use_group(acct, &a, "ops"), -EACCES);
    assert_int_equal(shmq_acl_may_subscribe(acct, &a, "orders", 6, "ops"), -EACCES);

    shmq_acl_ident_t x = ident(UID_B, GID_X, 0);
    acct = shmq_acl_match(&acl, &x);
    assert_int_equal(shmq_acl_may_subscribe(acct, &x, "anything", 8, "readers"), 0);
    assert_int_equal(shmq_acl_may_subscribe(acct, &x, "secret", 6, "readers"), -EACCES);
    assert_int_equal(shmq_acl_may_subscribe(acct, &x, "anything", 8, "other"), -EACCES);
    assert_int_equal(shmq_acl_may_publish(acct, &x, "anything", 8), -EACCES);
    shmq_acl_free(&acl);
}

static void test_retry_topics_follow_their_group(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok(RULES, &acl);
    shmq_acl_ident_t a = ident(UID_A, 100, 0);
    const shmq_acl_account_t *acct = shmq_acl_match(&acl, &a);
    /* A consumer of billing sends back to its retry and dead-letter topics. */
    assert_int_equal(shmq_acl_may_publish(acct, &a, "%RETRY%billing", 14), 0);
    assert_int_equal(shmq_acl_may_publish(acct, &a, "%DLQ%billing", 12), 0);
    assert_int_equal(shmq_acl_may_subscribe(acct, &a, "%RETRY%billing", 14, "billing"), 0);
    assert_int_equal(shmq_acl_may_publish(acct, &a, "%RETRY%ops", 10), -EACCES);
    shmq_acl_ident_t x = ident(UID_B, GID_X, 0); /* defaultGroupPerm DENY */
    acct = shmq_acl_match(&acl, &x);
    assert_int_equal(shmq_acl_may_publish(acct, &x, "%RETRY%other", 12), -EACCES);
    assert_int_equal(shmq_acl_may_publish(acct, &x, "%RETRY%readers", 14), 0);
    shmq_acl_free(&acl);
}

static void test_admin_owner_and_strangers(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok(RULES, &acl);
    shmq_acl_ident_t adm = ident(UID_B, 100, GID_Y);
    const shmq_acl_account_t *acct = shmq_acl_match(&acl, &adm);
    assert_true(acct->admin);
    assert_int_equal(shmq_acl_may_publish(acct, &adm, "secret", 6), 0);
    assert_int_equal(shmq_acl_may_subscribe(acct, &adm, "secret", 6, "ops"), 0);
    /* Nobody names the stranger: nothing is allowed, and the refusal says so. */
    shmq_acl_ident_t s = ident(UID_B, 100, 0);
    assert_null(shmq_acl_match(&acl, &s));
    shmq_error_clear();
    assert_int_equal(shmq_acl_may_publish(NULL, &s, "orders", 6), -EACCES);
    assert_non_null(strstr(shmq_error_detail(), "uid 4000002"));
    assert_non_null(strstr(shmq_error_detail(), "no account in config/acl.json"));
    assert_int_equal(shmq_acl_may_use_group(NULL, &s, "billing"), -EACCES);
    /* The store's user may do everything, whatever the file says. */
    s.owner = true;
    assert_int_equal(shmq_acl_may_publish(NULL, &s, "orders", 6), 0);
    assert_int_equal(shmq_acl_may_subscribe(NULL, &s, "orders", 6, "ops"), 0);
    shmq_acl_free(&acl);
}

static void test_refusal_names_the_rule(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok(RULES, &acl);
    shmq_acl_ident_t a = ident(UID_A, 100, 0);
    const shmq_acl_account_t *acct = shmq_acl_match(&acl, &a);
    shmq_error_clear();
    assert_int_equal(shmq_acl_may_publish(acct, &a, "audit", 5), -EACCES);
    const char *d = shmq_error_detail();
    assert_non_null(strstr(d, "may not publish to topic audit"));
    assert_non_null(strstr(d, "accounts[0] (user 4000001)"));
    assert_non_null(strstr(d, "audit=SUB"));
    shmq_error_clear();
    assert_int_equal(shmq_acl_may_publish(acct, &a, "news", 4), -EACCES);
    assert_non_null(strstr(shmq_error_detail(), "defaultTopicPerm DENY"));
    shmq_error_clear();
    assert_int_equal(shmq_acl_may_use_group(acct, &a, "ops"), -EACCES);
    assert_non_null(strstr(shmq_error_detail(), "consume as consumer group ops"));
    shmq_acl_free(&acl);
}

static void test_names_resolve_through_the_system(void **state)
{
    (void)state;
    shmq_acl_t acl;
    parse_ok("{\"accounts\":[{\"user\":\"root\",\"topicPerms\":[\"t=PUB\"]},"
             "{\"group\":\"root\",\"defaultTopicPerm\":\"SUB\"}]}",
             &acl);
    assert_int_equal(acl.accounts[0].id, 0);
    assert_false(acl.accounts[0].is_group);
    assert_string_equal(acl.accounts[0].who, "user root");
    assert_int_equal(acl.accounts[1].id, 0);
    assert_true(acl.accounts[1].is_group);
    shmq_acl_free(&acl);
}

static void test_bad_files_are_refused_naming_the_entry(void **state)
{
    (void)state;
    parse_refused("", "not valid JSON");
    parse_refused("[]", "one key, \"accounts\"");
    parse_refused("{\"accounts\":[], \"x\":1}", "one key, \"accounts\"");
    parse_refused("{\"accounts\":[], \"accounts\":[]}", "not valid JSON"); /* duplicate key */
    parse_refused("{\"accounts\":[1]}", "accounts[0] must be an object");
    parse_refused("{\"accounts\":[{}]}", "exactly one \"user\" or \"group\"");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"group\":\"1\"}]}", "exactly one");
    parse_refused("{\"accounts\":[{\"user\":\"no-such-user-shmq\"}]}", "no such user");
    parse_refused("{\"accounts\":[{\"group\":\"no-such-group-shmq\"}]}", "no such group");
    parse_refused("{\"accounts\":[{\"user\":\"\"}]}", "1..64 bytes");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"topicPerm\":[]}]}",
                  "unknown key \"topicPerm\"");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"admin\":\"yes\"}]}", "admin must be");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"defaultTopicPerm\":\"ALL\"}]}",
                  "defaultTopicPerm must be");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"topicPerms\":\"a=PUB\"}]}",
                  "topicPerms must be an array");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"topicPerms\":[\"a\"]}]}", "topicPerms[0]");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"topicPerms\":[\"a=WRITE\"]}]}",
                  "the perm must be");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"topicPerms\":[\"../x=PUB\"]}]}",
                  "topicPerms[0] \"../x=PUB\"");
    /* The name checker's own reason, quoted whole after the entry. */
    parse_refused(
        "{\"accounts\":[{\"user\":\"1\",\"topicPerms\":[\"a b=PUB\"]}]}",
        "topicPerms[0] \"a b=PUB\": topic has a character outside [A-Za-z0-9%_|-] at byte 1");
    parse_refused("{\"accounts\":[{\"user\":\"1\",\"groupPerms\":[\"g h=SUB\"]}]}",
                  "groupPerms[0]");
    parse_refused(
        "{\"accounts\":[{\"user\":\"1\",\"topicPerms\":[\"b=PUB\",\"a=SUB\",\"b=SUB\"]}]}",
        "lists \"b\" twice");
    parse_refused("{\"accounts\":[{\"user\":\"1\"},{\"user\":\"1\",\"x\":1}]}", "accounts[1]");
}

/* ---- the watched file ------------------------------------------------------------------ */

static char root[256];

static void write_rules(const char *text)
{
    char path[512], tmp[512];
    snprintf(path, sizeof(path), "%s/config/acl.json", root);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0); /* a new inode: seen as changed */
}

static int watch_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/shmq-test-acl.XXXXXX");
    if (mkdtemp(root) == NULL) {
        return -1;
    }
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "%s/config", root);
    return mkdir(cfg, 0750);
}

static int watch_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_watch_reloads_and_keeps_good_rules(void **state)
{
    (void)state;
    shmq_acl_watch_t w = {0};
    shmq_acl_ident_t a = ident(UID_A, 100, 0);
    /* No file: nothing loaded, every client but the owner refused, saying why. */
    int64_t now = 1000;
    assert_int_equal(shmq_acl_watch_poll(&w, root, now), SHMQ_E_CONFIG);
    shmq_error_clear();
    assert_int_equal(shmq_acl_watch_may_subscribe(&w, &a, "orders", 6, NULL), -EACCES);
    assert_non_null(strstr(shmq_error_detail(), "does not exist"));
    shmq_acl_ident_t owner = a;
    owner.owner = true;
    assert_int_equal(shmq_acl_watch_may_subscribe(&w, &owner, "orders", 6, NULL), 0);

    write_rules(RULES);
    assert_int_equal(shmq_acl_watch_poll(&w, root, now + 10), 0); /* not due yet */
    now += SHMQ_ACL_CHECK_MS;
    assert_int_equal(shmq_acl_watch_poll(&w, root, now), 1);
    assert_int_equal(w.gen, 1);
    assert_int_equal(shmq_acl_watch_may_subscribe(&w, &a, "orders", 6, "billing"), 0);
    now += SHMQ_ACL_CHECK_MS;
    assert_int_equal(shmq_acl_watch_poll(&w, root, now), 0); /* unchanged */

    /* A broken edit keeps the rules in force. */
    write_rules("{\"accounts\":[{\"user\":\"4000001\",\"topicPerms\":[\"orders=NOPE\"]}]}");
    now += SHMQ_ACL_CHECK_MS;
    assert_int_equal(shmq_acl_watch_poll(&w, root, now), SHMQ_E_CONFIG);
    assert_int_equal(w.gen, 1);
    assert_int_equal(shmq_acl_watch_may_subscribe(&w, &a, "orders", 6, "billing"), 0);

    /* A good one replaces them. */
    write_rules("{\"accounts\":[{\"user\":\"4000001\",\"topicPerms\":[\"orders=PUB\"]}]}");
    now += SHMQ_ACL_CHECK_MS;
    assert_int_equal(shmq_acl_watch_poll(&w, root, now), 1);
    assert_int_equal(w.gen, 2);
    assert_int_equal(shmq_acl_watch_may_subscribe(&w, &a, "orders", 6, NULL), -EACCES);
    shmq_acl_watch_free(&w);
}

static void test_watch_refuses_a_link(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/config/acl.json", root);
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    shmq_acl_watch_t w = {0};
    shmq_error_clear();
    assert_int_equal(shmq_acl_watch_poll(&w, root, 1), SHMQ_E_CONFIG);
    assert_non_null(strstr(shmq_error_detail(), "symbolic link"));
    assert_false(w.loaded);
    shmq_acl_watch_free(&w);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_matching_account_decides),
        cmocka_unit_test(test_topic_and_group_rules),
        cmocka_unit_test(test_retry_topics_follow_their_group),
        cmocka_unit_test(test_admin_owner_and_strangers),
        cmocka_unit_test(test_refusal_names_the_rule),
        cmocka_unit_test(test_names_resolve_through_the_system),
        cmocka_unit_test(test_bad_files_are_refused_naming_the_entry),
        cmocka_unit_test_setup_teardown(test_watch_reloads_and_keeps_good_rules, watch_setup,
                                        watch_teardown),
        cmocka_unit_test_setup_teardown(test_watch_refuses_a_link, watch_setup, watch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
