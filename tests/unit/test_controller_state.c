/*
 * The controller's replicated state machine (libshm/format/controller_state.h)
 * and its commands (controller_frame.h), without a network: registering
 * assigns brokerIds in order and keeps a restarted replica's; the first
 * election takes any live replica, later ones only the sync-state set unless
 * unclean, each bumping the master epoch; ALTER_SYNC_STATE_SET only from the
 * master with its epoch, never without the master; two states fed the same
 * log (as encoded entries) end equal; a snapshot restores the same state and
 * a damaged one is refused; hostile command bodies are refused; a replica's
 * gateway address goes through the log and snapshots (older ones have none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/controller_frame.h"
#include "format/controller_state.h"
#include "shmq/errors.h"

static shmq_ctrl_state_t *state_new(void)
{
    shmq_ctrl_state_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    shmq_ctrl_state_init(s);
    return s;
}

/* Decode JSON as a log entry and apply it; the result's rc. */
static int apply_json(shmq_ctrl_state_t *s, const char *json, shmq_ctrl_result_t *res)
{
    shmq_ctrl_cmd_t c;
    char err[200];
    assert_int_equal(shmq_ctrl_cmd_decode(json, strlen(json), true, &c, err, sizeof(err)), 0);
    shmq_ctrl_apply(s, &c, res);
    return res->rc;
}

static void register3(shmq_ctrl_state_t *s)
{
    shmq_ctrl_result_t res;
    for (int i = 1; i <= 3; i++) {
        char j[200];
        snprintf(j, sizeof(j),
                 "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:%d\"}",
                 10910 + i);
        assert_int_equal(apply_json(s, j, &res), 0);
        assert_int_equal(res.broker_id, i);
    }
}

static const char ELECT_ALL[] =
    "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"alive\":[{\"brokerId\":1,\"maxOffset\":10,"
    "\"epoch\":0},{\"brokerId\":2,\"maxOffset\":30,\"epoch\":0},{\"brokerId\":3,\"maxOffset\":20,"
    "\"epoch\":0}]}";

static void test_register_assigns_ids_in_order(void **st)
{
    (void)st;
    shmq_ctrl_state_t *s = state_new();
    shmq_ctrl_result_t res;
    register3(s);
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, "b");
    assert_non_null(set);
    assert_int_equal(set->nreplicas, 3);
    assert_int_equal(set->master_id, SHMQ_CTRL_NO_MASTER);
    /* the same address again keeps its id */
    assert_int_equal(
        apply_json(
            s, "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:10912\"}",
            &res),
        0);
    assert_int_equal(res.broker_id, 2);
    assert_int_equal(set->nreplicas, 3);
    /* ... and may not claim another */
    assert_int_not_equal(apply_json(s,
                                    "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":"
                                    "\"127.0.0.1:10912\",\"brokerId\":3}",
                                    &res),
                         0);
    free(s);
}

static void test_elect_first_then_sync_set_only(void **st)
{
    (void)st;
    shmq_ctrl_state_t *s = state_new();
    shmq_ctrl_result_t res;
    register3(s);
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, "b");

    /* first election: the longest log of every live replica */
    assert_int_equal(apply_json(s, ELECT_ALL, &res), 0);
    assert_int_equal(set->master_id, 2);
    assert_int_equal(set->master_epoch, 1);
    assert_int_equal(set->nsync, 1);
    assert_int_equal(set->sync_epoch, 1);

    /* master 2 gone, 1 and 3 alive, only 2 in the set: nobody, nothing changes */
    const char *without2 = "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"alive\":["
                           "{\"brokerId\":1,\"maxOffset\":40},{\"brokerId\":3,\"maxOffset\":50}]}";
    assert_int_not_equal(apply_json(s, without2, &res), 0);
    assert_int_equal(set->master_id, 2);
    assert_int_equal(set->master_epoch, 1);

    /* the set {2,1}: 1 is elected although 3 has the longer log */
    assert_int_equal(apply_json(s,
                                "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\","
                                "\"masterId\":2,\"masterEpoch\":1,\"syncStateSet\":[2,1]}",
                                &res),
                     0);
    assert_int_equal(set->sync_epoch, 2);
    assert_int_equal(apply_json(s, without2, &res), 0);
    assert_int_equal(set->master_id, 1);
    assert_int_equal(set->master_epoch, 2);
    assert_int_equal(set->sync_epoch, 3);

    /* unclean: 3, outside the set {1}, may be elected */
    const char *unclean = "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"unclean\":true,"
                          "\"alive\":[{\"brokerId\":3,\"maxOffset\":50}]}";
    assert_int_equal(apply_json(s, unclean, &res), 0);
    assert_int_equal(set->master_id, 3);
    assert_int_equal(set->master_epoch, 3);
    free(s);
}

static void test_alter_from_master_with_epoch_only(void **st)
{
    (void)st;
    shmq_ctrl_state_t *s = state_new();
    shmq_ctrl_result_t res;
    register3(s);
    assert_int_equal(apply_json(s, ELECT_ALL, &res), 0); /* master 2, epoch 1 */
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(s, "b");
    static const char *refused[] = {
        /* not the master */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":1,"
        "\"masterEpoch\":1,\"syncStateSet\":[1,2]}",
        /* an old epoch */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":2,"
        "\"masterEpoch\":0,\"syncStateSet\":[1,2]}",
        /* without the master */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":2,"
        "\"masterEpoch\":1,\"syncStateSet\":[1,3]}",
        /* an unknown replica */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":2,"
        "\"masterEpoch\":1,\"syncStateSet\":[2,9]}",
        /* a stale set epoch */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":2,"
        "\"masterEpoch\":1,\"syncStateSetEpoch\":5,\"syncStateSet\":[2,1]}",
        /* an unknown set */
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"x\",\"masterId\":2,"
        "\"masterEpoch\":1,\"syncStateSet\":[2]}",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_not_equal(apply_json(s, refused[i], &res), 0);
        assert_true(res.error[0] != '\0');
        assert_int_equal(set->nsync, 1);
        assert_int_equal(set->sync_epoch, 1);
    }
    free(s);
}

/* Two controllers applying the same log (encoded, decoded) hold the same state. */
static void test_same_log_same_state(void **st)
{
    (void)st;
    shmq_ctrl_state_t *a = state_new(), *b = state_new();
    shmq_ctrl_result_t res;
    register3(a);
    assert_int_equal(apply_json(a, ELECT_ALL, &res), 0);
    /* replay a's commands on b through encode/decode */
    const char *log[] = {
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:10911\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:10912\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:10913\"}",
        ELECT_ALL,
    };
    for (size_t i = 0; i < sizeof(log) / sizeof(log[0]); i++) {
        shmq_ctrl_cmd_t c, d;
        char err[200], *text;
        size_t len;
        assert_int_equal(shmq_ctrl_cmd_decode(log[i], strlen(log[i]), true, &c, err, sizeof(err)),
                         0);
        assert_int_equal(shmq_ctrl_cmd_encode(&c, &text, &len), 0);
        assert_int_equal(shmq_ctrl_cmd_decode(text, len, true, &d, err, sizeof(err)), 0);
        free(text);
        shmq_ctrl_apply(b, &d, &res);
    }
    char *ta, *tb;
    size_t la, lb;
    assert_int_equal(shmq_ctrl_state_encode(a, &ta, &la), 0);
    assert_int_equal(shmq_ctrl_state_encode(b, &tb, &lb), 0);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    free(a);
    free(b);
}

static void test_snapshot_round_trip_and_damage(void **st)
{
    (void)st;
    shmq_ctrl_state_t *a = state_new(), *b = state_new();
    shmq_ctrl_result_t res;
    register3(a);
    assert_int_equal(apply_json(a, ELECT_ALL, &res), 0);
    assert_int_equal(
        apply_json(a, "{\"cmd\":\"member\",\"memberId\":2,\"address\":\"127.0.0.1:9880\"}", &res),
        0);
    char *t1, *t2;
    size_t l1, l2;
    assert_int_equal(shmq_ctrl_state_encode(a, &t1, &l1), 0);
    assert_int_equal(shmq_ctrl_state_decode(b, t1, l1), 0);
    assert_int_equal(shmq_ctrl_state_encode(b, &t2, &l2), 0);
    assert_string_equal(t1, t2);
    assert_string_equal(shmq_ctrl_member_address(b, 2), "127.0.0.1:9880");

    /* damaged: cut anywhere, or a master outside its set: refused, b unchanged */
    for (size_t cut = 0; cut < l1; cut += 7) {
        assert_int_not_equal(shmq_ctrl_state_decode(b, t1, cut), 0);
    }
    char *bad = strdup(t1);
    char *m = strstr(bad, "\"masterId\":2");
    assert_non_null(m);
    m[11] = '3';
    assert_int_not_equal(shmq_ctrl_state_decode(b, bad, strlen(bad)), 0);
    assert_int_equal(shmq_ctrl_set_find(b, "b")->master_id, 2);
    free(bad);
    free(t1);
    free(t2);
    free(a);
    free(b);
}

/* Each replica's gateway address: registered, replicated through the log and snapshots; log
 * entries and snapshots written before the field read as "no gateway". */
static void test_gateway_address(void **st)
{
    (void)st;
    shmq_ctrl_state_t *a = state_new(), *b = state_new();
    shmq_ctrl_result_t res;
    assert_int_equal(apply_json(a,
                                "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":"
                                "\"127.0.0.1:10912\",\"gatewayAddress\":\"127.0.0.1:10911\"}",
                                &res),
                     0);
    /* an entry of an older log: no gateway */
    assert_int_equal(
        apply_json(
            a, "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:20912\"}",
            &res),
        0);
    shmq_ctrl_set_t *set = shmq_ctrl_set_find(a, "b");
    assert_string_equal(shmq_ctrl_replica_find(set, 1)->gateway, "127.0.0.1:10911");
    assert_string_equal(shmq_ctrl_replica_find(set, 2)->gateway, "");

    /* the command's round trip through the log keeps it */
    shmq_ctrl_cmd_t c, d;
    char err[200], *text;
    size_t len;
    const char *reg = "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":"
                      "\"127.0.0.1:10912\",\"gatewayAddress\":\"127.0.0.1:10911\"}";
    assert_int_equal(shmq_ctrl_cmd_decode(reg, strlen(reg), false, &c, err, sizeof(err)), 0);
    assert_int_equal(shmq_ctrl_cmd_encode(&c, &text, &len), 0);
    assert_int_equal(shmq_ctrl_cmd_decode(text, len, true, &d, err, sizeof(err)), 0);
    assert_string_equal(d.gateway, "127.0.0.1:10911");
    free(text);

    /* the set's JSON names the master's gateway once it is elected */
    assert_int_equal(apply_json(a,
                                "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"brokerId\":1,"
                                "\"alive\":[{\"brokerId\":1}]}",
                                &res),
                     0);
    json_t *j = shmq_ctrl_set_json(set);
    assert_string_equal(json_string_value(json_object_get(j, "masterGatewayAddress")),
                        "127.0.0.1:10911");
    json_decref(j);

    /* snapshots keep it; one without the field (older) reads as no gateway */
    char *t1;
    size_t l1;
    assert_int_equal(shmq_ctrl_state_encode(a, &t1, &l1), 0);
    assert_int_equal(shmq_ctrl_state_decode(b, t1, l1), 0);
    assert_string_equal(shmq_ctrl_replica_find(shmq_ctrl_set_find(b, "b"), 1)->gateway,
                        "127.0.0.1:10911");
    free(t1);
    const char *old =
        "{\"version\":1,\"applied\":3,\"members\":[],\"brokerSets\":[{"
        "\"brokerName\":\"b\",\"clusterName\":\"c\",\"nextBrokerId\":2,\"masterId\":1,"
        "\"masterEpoch\":1,\"syncStateSet\":[1],\"syncStateSetEpoch\":1,\"replicas\":[{"
        "\"brokerId\":1,\"address\":\"127.0.0.1:10912\",\"maxOffset\":0,\"epoch\":1}]}]}";
    assert_int_equal(shmq_ctrl_state_decode(b, old, strlen(old)), 0);
    assert_string_equal(shmq_ctrl_replica_find(shmq_ctrl_set_find(b, "b"), 1)->gateway, "");

    /* a gateway address that is not host:port is refused, in a command and in a snapshot */
    const char *badreg = "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":"
                         "\"127.0.0.1:1\",\"gatewayAddress\":\"nowhere\"}";
    assert_int_not_equal(shmq_ctrl_cmd_decode(badreg, strlen(badreg), false, &c, err, sizeof(err)),
                         0);
    assert_non_null(strstr(err, "gatewayAddress"));
    char *bad = malloc(strlen(old) + 64);
    assert_non_null(bad);
    const char *at = strstr(old, "\"maxOffset\"");
    snprintf(bad, strlen(old) + 64, "%.*s\"gatewayAddress\":\"nowhere\",%s", (int)(at - old), old,
             at);
    assert_int_not_equal(shmq_ctrl_state_decode(b, bad, strlen(bad)), 0);
    free(bad);
    free(a);
    free(b);
}

static void test_hostile_commands_refused(void **st)
{
    (void)st;
    static const char *bad[] = {
        "",
        "[]",
        "{\"cmd\":1}",
        "{\"cmd\":\"nope\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"nowhere\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"1.2.3.4:0\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"1.2.3.4:1\",\"brokerId\":-"
        "1}",
        "{\"cmd\":\"register\",\"brokerName\":\"a\\u0001\",\"brokerAddress\":\"1.2.3.4:1\"}",
        "{\"cmd\":\"heartbeat\",\"brokerName\":\"b\"}",
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":1,\"masterEpoch\":1,"
        "\"syncStateSet\":[1,1]}",
        "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\",\"masterId\":1,\"masterEpoch\":1,"
        "\"syncStateSet\":\"1\"}",
        "{\"cmd\":\"status\",\"cmd\":\"status\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        shmq_ctrl_cmd_t c;
        char err[200] = "";
        assert_int_not_equal(
            shmq_ctrl_cmd_decode(bad[i], strlen(bad[i]), true, &c, err, sizeof(err)), 0);
        assert_true(err[0] != '\0');
        assert_int_equal(c.kind, SHMQ_CTRL_CMD_NONE);
    }
    /* a client may not send what only the leader writes */
    shmq_ctrl_cmd_t c;
    char err[200];
    const char *member = "{\"cmd\":\"member\",\"memberId\":1,\"address\":\"1.2.3.4:5\"}";
    assert_int_not_equal(shmq_ctrl_cmd_decode(member, strlen(member), false, &c, err, sizeof(err)),
                         0);
    /* frame heads */
    const uint8_t big[4] = {0x7f, 0xff, 0xff, 0xff}, zero[4] = {0, 0, 0, 0}, ok[4] = {0, 0, 0, 9};
    assert_int_equal(shmq_ctrl_frame_size(big, 4), SHMQ_E_TOO_BIG);
    assert_int_equal(shmq_ctrl_frame_size(zero, 4), SHMQ_E_TOO_BIG);
    assert_int_equal(shmq_ctrl_frame_size(ok, 3), 0);
    assert_int_equal(shmq_ctrl_frame_size(ok, 4), 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_assigns_ids_in_order),
        cmocka_unit_test(test_elect_first_then_sync_set_only),
        cmocka_unit_test(test_alter_from_master_with_epoch_only),
        cmocka_unit_test(test_same_log_same_state),
        cmocka_unit_test(test_snapshot_round_trip_and_damage),
        cmocka_unit_test(test_hostile_commands_refused),
        cmocka_unit_test(test_gateway_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
