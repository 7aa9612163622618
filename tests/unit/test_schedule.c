/*
 * Unit tests of the delay/timer/retry rules (libshm/shm/schedule.c): the
 * put-side rewrite of delay-level and timed messages (§10, §17.1), the
 * message a due one becomes (§10, §17.4), and the retry/DLQ decision and
 * record (§11).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/config.h"
#include "format/message.h"
#include "shm/ring.h"
#include "shm/schedule.h"

#define NOW 1700000000123LL

static shmq_config_t cfg;

static int setup(void **state)
{
    (void)state;
    shmq_config_defaults(&cfg);
    return 0;
}

/* A message of topic T, queue 2, with the given extra properties and a UNIQ_KEY. */
typedef struct msg {
    char props[1024];
    size_t len;
    char buf[SHMQ_PROPS_MAX];
    shmq_ring_msg_t m;
} msg_t;

static void msg_init(msg_t *x, const char *topic, const char *const *kv)
{
    memset(x, 0, sizeof(*x));
    for (size_t i = 0; kv && kv[i]; i += 2) {
        assert_int_equal(shmq_props_append(x->props, sizeof(x->props), &x->len, kv[i], kv[i + 1],
                                           strlen(kv[i + 1])),
                         0);
    }
    assert_int_equal(shmq_props_append(x->props, sizeof(x->props), &x->len, "UNIQ_KEY",
                                       "0A000001000100000001000000020003", 32),
                     0);
    x->m.kind = SHMQ_RING_KIND_MSG;
    x->m.batch_count = 1;
    x->m.topic = topic;
    x->m.topic_len = (uint32_t)strlen(topic);
    x->m.queue_id = 2;
    x->m.props = x->props;
    x->m.props_len = (uint32_t)x->len;
}

static int transform(msg_t *x)
{
    return shmq_schedule_transform(&cfg, NOW, &x->m, x->buf, sizeof(x->buf));
}

/* The value of property name of x's (possibly rewritten) properties, or NULL. */
static char *prop(const shmq_ring_msg_t *m, const char *name)
{
    static char out[256];
    size_t vl;
    const char *v = shmq_props_get(m->props, m->props_len, name, &vl);
    if (!v) {
        return NULL;
    }
    snprintf(out, sizeof(out), "%.*s", (int)vl, v);
    return out;
}

static bool topic_eq(const shmq_ring_msg_t *m, const char *t)
{
    return m->topic_len == strlen(t) && memcmp(m->topic, t, m->topic_len) == 0;
}

/* ---- delay levels ------------------------------------------------------------------------ */

static void test_delay_level_goes_to_schedule_queue_level_minus_one(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TAGS", "a", "DELAY", "3", NULL};
    msg_init(&x, "TopicA", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_DELAY);
    assert_true(topic_eq(&x.m, "SCHEDULE_TOPIC_XXXX"));
    assert_int_equal(x.m.queue_id, 2);
    assert_string_equal(prop(&x.m, "REAL_TOPIC"), "TopicA");
    assert_string_equal(prop(&x.m, "REAL_QID"), "2");
    assert_string_equal(prop(&x.m, "DELAY"), "3");
    assert_string_equal(prop(&x.m, "TAGS"), "a");
    assert_string_equal(prop(&x.m, "UNIQ_KEY"), "0A000001000100000001000000020003");
}

static void test_delay_level_above_max_is_clamped(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"DELAY", "40", NULL};
    msg_init(&x, "TopicA", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_DELAY);
    assert_int_equal(x.m.queue_id, 17);
    assert_string_equal(prop(&x.m, "DELAY"), "18");
}

static void test_delay_level_drops_timer_requests(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"DELAY", "1", "TIMER_DELAY_MS", "5000", "TIMER_DELIVER_MS", "9", NULL};
    msg_init(&x, "TopicA", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_DELAY);
    assert_null(prop(&x.m, "TIMER_DELAY_MS"));
    assert_null(prop(&x.m, "TIMER_DELIVER_MS"));
    assert_int_equal(x.m.queue_id, 0);
}

static void test_ordinary_and_zero_level_messages_untouched(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TAGS", "x", NULL};
    msg_init(&x, "TopicA", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
    assert_ptr_equal(x.m.props, x.props);
    assert_true(topic_eq(&x.m, "TopicA"));
    const char *kv0[] = {"DELAY", "0", NULL};
    msg_init(&x, "TopicA", kv0);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
    assert_int_equal(x.m.queue_id, 2);
}

static void test_prepared_transaction_is_not_delayed(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"DELAY", "2", NULL};
    msg_init(&x, "TopicA", kv);
    x.m.sysflag = SHMQ_SYSFLAG_TX_PREPARED;
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
    x.m.sysflag = SHMQ_SYSFLAG_TX_COMMIT;
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_DELAY);
}

/* ---- timer admission ------------------------------------------------------------------------ */

static void test_timer_delay_ms_floors_to_precision(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELAY_MS", "2500", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
    assert_true(topic_eq(&x.m, "rmq_sys_wheel_timer"));
    assert_int_equal(x.m.queue_id, 0);
    /* NOW + 2500 = ...2623 -> floored to ...2000 */
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)((NOW + 2500) / 1000 * 1000));
    assert_string_equal(prop(&x.m, "TIMER_OUT_MS"), want);
    assert_string_equal(prop(&x.m, "REAL_TOPIC"), "TopicB");
    assert_string_equal(prop(&x.m, "REAL_QID"), "2");
    assert_string_equal(prop(&x.m, "TIMER_DELAY_MS"), "2500");
}

static void test_timer_exact_multiple_loses_one_precision_unit(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELIVER_MS", "1700000005000", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
    assert_string_equal(prop(&x.m, "TIMER_OUT_MS"), "1700000004000");
    cfg.timer_precision_ms = 100;
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
    assert_string_equal(prop(&x.m, "TIMER_OUT_MS"), "1700000004900");
}

static void test_timer_seconds_win_over_ms_and_deliver_time(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELIVER_MS",
                        "1800000000000",
                        "TIMER_DELAY_MS",
                        "100000",
                        "TIMER_DELAY_SEC",
                        "10",
                        NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)((NOW + 10000) / 1000 * 1000));
    assert_string_equal(prop(&x.m, "TIMER_OUT_MS"), want);
    const char *kv2[] = {"TIMER_DELIVER_MS", "1800000000000", "TIMER_DELAY_MS", "100000", NULL};
    msg_init(&x, "TopicB", kv2);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
    snprintf(want, sizeof(want), "%lld", (long long)((NOW + 100000) / 1000 * 1000));
    assert_string_equal(prop(&x.m, "TIMER_OUT_MS"), want);
}

static void test_timer_already_due_is_stored_normally(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELIVER_MS", "1600000000000", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
    assert_true(topic_eq(&x.m, "TopicB"));
    assert_int_equal(x.m.queue_id, 2);
}

static void test_timer_beyond_max_delay_is_refused(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELAY_SEC", "259201", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_E_RANGE);
    assert_non_null(strstr(shmq_error_detail(), "timerMaxDelaySec"));
    assert_true(topic_eq(&x.m, "TopicB"));
    const char *ok[] = {"TIMER_DELAY_SEC", "259200", NULL};
    msg_init(&x, "TopicB", ok);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_TIMER);
}

static void test_timer_bad_number_or_disabled_wheel_is_refused(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELAY_MS", "12x", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_E_ARG);
    const char *ok[] = {"TIMER_DELAY_MS", "1200", NULL};
    msg_init(&x, "TopicB", ok);
    cfg.timer_wheel_enable = false;
    assert_int_equal(transform(&x), SHMQ_E_ARG);
    assert_non_null(strstr(shmq_error_detail(), "timerWheelEnable"));
}

static void test_message_with_timer_out_ms_is_not_timed_again(void **state)
{
    (void)state;
    msg_t x;
    const char *kv[] = {"TIMER_DELAY_SEC", "5", "TIMER_OUT_MS", "1700000004000", NULL};
    msg_init(&x, "TopicB", kv);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
    const char *kv2[] = {"TIMER_DELAY_SEC", "5", NULL};
    msg_init(&x, "rmq_sys_wheel_timer", kv2);
    assert_int_equal(transform(&x), SHMQ_SCHEDULE_NONE);
}

static void test_writer_hook_refuses_a_delayed_batch(void **state)
{
    (void)state;
    msg_t a, b;
    const char *kv[] = {"TAGS", "x", NULL};
    const char *kd[] = {"TIMER_DELAY_MS", "1000", NULL};
    msg_init(&a, "TopicA", kv);
    msg_init(&b, "TopicA", kd);
    shmq_ring_msg_t ms[2] = {a.m, b.m};
    assert_int_equal(shmq_schedule_writer_hook(NULL, &cfg, ms, 2), SHMQ_E_ARG);
    ms[1] = a.m;
    assert_int_equal(shmq_schedule_writer_hook(NULL, &cfg, ms, 2), 0);
    /* a single ordinary message needs no topic table */
    assert_int_equal(shmq_schedule_writer_hook(NULL, &cfg, ms, 1), 0);
}

static void test_props_rewrite_drops_crc_and_replaces_set_names(void **state)
{
    (void)state;
    char in[256], out[256];
    size_t il = 0, ol = 0;
    shmq_props_append(in, sizeof(in), &il, "A", "1", 1);
    shmq_props_append(in, sizeof(in), &il, "B", "2", 1);
    shmq_props_append(in, sizeof(in), &il, "__CRC32#", "0123456789", 10);
    static const char *const drop[] = {"A", NULL};
    shmq_prop_kv_t set[] = {{"B", "3", 1}, {"C", "4", 1}};
    assert_int_equal(shmq_props_rewrite(in, il, drop, set, 2, out, sizeof(out), &ol), 0);
    assert_int_equal(ol, strlen("B\0013\002C\0014\002"));
    assert_memory_equal(out, "B\0013\002C\0014\002", ol);
    /* too small a destination */
    assert_int_equal(shmq_props_rewrite(in, il, NULL, set, 2, out, 4, &ol), SHMQ_E_PROPS);
}

/* ---- due messages -------------------------------------------------------------------------- */

/* Encode a record of topic with props (UNIQ_KEY added) and decode it into *r. */
static uint8_t recbuf[4096];

static void record_make(const char *topic, const char *const *kv, shmq_record_t *r)
{
    char props[1024];
    size_t pl = 0;
    for (size_t i = 0; kv[i]; i += 2) {
        shmq_props_append(props, sizeof(props), &pl, kv[i], kv[i + 1], strlen(kv[i + 1]));
    }
    shmq_props_append(props, sizeof(props), &pl, "UNIQ_KEY", "K1", 2);
    shmq_msg_in_t in = {.topic = topic,
                        .topic_len = strlen(topic),
                        .queue_id = 0,
                        .flag = 7,
                        .sysflag = SHMQ_SYSFLAG_MULTI_TAGS,
                        .born_ts = 1234,
                        .reconsume_times = 4,
                        .body = "hello",
                        .body_len = 5,
                        .props = props,
                        .props_len = pl};
    in.born_host.addr[0] = 10;
    in.born_host.port = 99;
    int64_t n = shmq_record_encode(&in, 5, 1000, NOW, recbuf, sizeof(recbuf));
    assert_true(n > 0);
    assert_int_equal(shmq_record_decode(recbuf, (size_t)n, 1000, SHMQ_DECODE_CHECK_ALL, r), n);
}

static void test_due_delay_message_returns_to_real_topic(void **state)
{
    (void)state;
    shmq_record_t r;
    const char *kv[] = {"DELAY", "2", "REAL_TOPIC", "TopicA", "REAL_QID", "3", "TAGS", "t", NULL};
    record_make("SCHEDULE_TOPIC_XXXX", kv, &r);
    char buf[SHMQ_PROPS_MAX];
    shmq_ring_msg_t m;
    assert_int_equal(shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_DELAY, 0, NOW, buf, sizeof(buf), &m),
                     0);
    assert_true(topic_eq(&m, "TopicA"));
    assert_int_equal(m.queue_id, 3);
    assert_null(prop(&m, "DELAY"));
    assert_null(prop(&m, "__CRC32#"));
    assert_string_equal(prop(&m, "REAL_TOPIC"), "TopicA");
    assert_string_equal(prop(&m, "WAIT"), "false");
    assert_string_equal(prop(&m, "UNIQ_KEY"), "K1");
    assert_int_equal(m.flag, 7);
    assert_int_equal(m.sysflag, SHMQ_SYSFLAG_MULTI_TAGS);
    assert_int_equal(m.reconsume_times, 4);
    assert_int_equal(m.born_ts, 1234);
    assert_int_equal(m.born_host.port, 99);
    assert_int_equal(m.body_len, 5);
    assert_memory_equal(m.body, "hello", 5);
}

static void test_due_timer_message_loses_real_props_gains_times(void **state)
{
    (void)state;
    shmq_record_t r;
    const char *kv[] = {
        "TIMER_OUT_MS", "1700000004000", "REAL_TOPIC", "TopicB", "REAL_QID", "1", NULL};
    record_make("rmq_sys_wheel_timer", kv, &r);
    char buf[SHMQ_PROPS_MAX];
    shmq_ring_msg_t m;
    assert_int_equal(
        shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_TIMER, 1111, 2222, buf, sizeof(buf), &m), 0);
    assert_true(topic_eq(&m, "TopicB"));
    assert_int_equal(m.queue_id, 1);
    assert_null(prop(&m, "REAL_TOPIC"));
    assert_null(prop(&m, "REAL_QID"));
    assert_string_equal(prop(&m, "TIMER_OUT_MS"), "1700000004000");
    assert_string_equal(prop(&m, "TIMER_ENQUEUE_MS"), "1111");
    assert_string_equal(prop(&m, "TIMER_DEQUEUE_MS"), "2222");
    assert_string_equal(prop(&m, "WAIT"), "false"); /* as RocketMQ's timer re-writes it */
    assert_int_equal(m.born_host.addr[0], 10);
    assert_int_equal(m.born_host.port, 99);
}

static void test_due_message_without_real_topic_cannot_be_delivered(void **state)
{
    (void)state;
    shmq_record_t r;
    char buf[SHMQ_PROPS_MAX];
    shmq_ring_msg_t m;
    const char *kv[] = {"DELAY", "2", "REAL_QID", "3", NULL};
    record_make("SCHEDULE_TOPIC_XXXX", kv, &r);
    assert_int_equal(shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_DELAY, 0, NOW, buf, sizeof(buf), &m),
                     SHMQ_E_CORRUPT);
    const char *kv2[] = {"REAL_TOPIC", "T", "REAL_QID", "x", NULL};
    record_make("SCHEDULE_TOPIC_XXXX", kv2, &r);
    assert_int_equal(shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_DELAY, 0, NOW, buf, sizeof(buf), &m),
                     SHMQ_E_CORRUPT);
    const char *kv3[] = {"REAL_TOPIC", "RMQ_SYS_TRANS_HALF_TOPIC", "REAL_QID", "0", NULL};
    record_make("SCHEDULE_TOPIC_XXXX", kv3, &r);
    assert_int_equal(shmq_schedule_redeliver(&r, SHMQ_SCHEDULE_DELAY, 0, NOW, buf, sizeof(buf), &m),
                     1);
}

static void test_cancel_marker_matches_real_topic_and_uniq_key(void **state)
{
    (void)state;
    shmq_cancel_set_t cs = {0};
    shmq_record_t r;
    const char *marker[] = {"REAL_TOPIC", "TopicB", "TIMER_DEL_UNIQKEY", "K1", NULL};
    record_make("rmq_sys_wheel_timer", marker, &r);
    assert_int_equal(shmq_cancel_set_add(&cs, &r), 0);
    const char *same[] = {"REAL_TOPIC", "TopicB", NULL}; /* UNIQ_KEY K1 */
    record_make("rmq_sys_wheel_timer", same, &r);
    assert_true(shmq_cancel_set_has(&cs, &r));
    const char *other[] = {"REAL_TOPIC", "TopicC", NULL};
    record_make("rmq_sys_wheel_timer", other, &r);
    assert_false(shmq_cancel_set_has(&cs, &r));
    shmq_cancel_set_free(&cs);
    assert_int_equal(cs.count, 0);
}

/* ---- retries ------------------------------------------------------------------------------ */

static void test_retry_levels_follow_reconsume_times_then_dlq(void **state)
{
    (void)state;
    shmq_retry_plan_t p;
    assert_int_equal(shmq_retry_plan("G", 0, 16, 1, 0, 77, &p), 0);
    assert_false(p.dlq);
    assert_string_equal(p.topic, "%RETRY%G");
    assert_int_equal(p.delay_level, 3);
    assert_int_equal(p.queue_id, 0);
    assert_int_equal(shmq_retry_plan("G", 15, 16, 1, 0, 0, &p), 0);
    assert_int_equal(p.delay_level, 18);
    assert_int_equal(shmq_retry_plan("G", 16, 16, 1, 0, 0, &p), 0);
    assert_true(p.dlq);
    assert_string_equal(p.topic, "%DLQ%G");
    assert_int_equal(p.delay_level, 0);
    /* an explicit level, a negative one, four retry queues, none */
    assert_int_equal(shmq_retry_plan("G", 2, 16, 4, 7, 6, &p), 0);
    assert_int_equal(p.delay_level, 7);
    assert_int_equal(p.queue_id, 2);
    assert_int_equal(shmq_retry_plan("G", 0, 16, 1, -1, 0, &p), 0);
    assert_true(p.dlq);
    assert_int_equal(shmq_retry_plan("G", 0, 16, 0, 0, 0, &p), 0);
    assert_true(p.drop);
}

static void test_retry_record_carries_origin_and_counts_up(void **state)
{
    (void)state;
    shmq_retry_plan_t p;
    assert_int_equal(shmq_retry_plan("G", 1, 16, 1, 0, 0, &p), 0);
    char props[256], buf[SHMQ_PROPS_MAX];
    size_t pl = 0;
    shmq_props_append(props, sizeof(props), &pl, "UNIQ_KEY", "K1", 2);
    shmq_props_append(props, sizeof(props), &pl, "DELAY", "9", 1);
    shmq_ring_msg_t m;
    shmq_host_t born = {.addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 9}, .is_v6 = 1, .port = 4321};
    assert_int_equal(shmq_retry_build(&p, "TopicA", 6, "b", 1, 3, 0, 55, &born, 1, props, pl,
                                      "MSGID1", buf, sizeof(buf), &m),
                     0);
    assert_true(topic_eq(&m, "%RETRY%G"));
    assert_int_equal(m.reconsume_times, 2);
    /* the born host is the original's (RocketMQ keeps it), not 0.0.0.0:0 */
    assert_memory_equal(&m.born_host, &born, sizeof(born));
    assert_string_equal(prop(&m, "RETRY_TOPIC"), "TopicA");
    assert_string_equal(prop(&m, "ORIGIN_MESSAGE_ID"), "MSGID1");
    assert_string_equal(prop(&m, "DELAY"), "4");
    assert_string_equal(prop(&m, "UNIQ_KEY"), "K1");
    /* a retried message keeps its first topic and id */
    char p2[256];
    size_t l2 = 0;
    shmq_props_append(p2, sizeof(p2), &l2, "RETRY_TOPIC", "TopicA", 6);
    shmq_props_append(p2, sizeof(p2), &l2, "ORIGIN_MESSAGE_ID", "FIRST", 5);
    assert_int_equal(shmq_retry_plan("G", 16, 16, 1, 0, 0, &p), 0);
    assert_int_equal(shmq_retry_build(&p, "%RETRY%G", 8, "b", 1, 3, 0, 55, &born, 16, p2, l2,
                                      "MSGID2", buf, sizeof(buf), &m),
                     0);
    assert_true(topic_eq(&m, "%DLQ%G"));
    assert_memory_equal(&m.born_host, &born, sizeof(born));
    assert_string_equal(prop(&m, "RETRY_TOPIC"), "TopicA");
    assert_string_equal(prop(&m, "ORIGIN_MESSAGE_ID"), "FIRST");
    assert_null(prop(&m, "DELAY"));
    assert_int_equal(m.reconsume_times, 17);
}

/* The reference: RocketMQ's split (shmq_props_next), then the names. */
static bool requested_by_split(const char *p, size_t len)
{
    size_t pos = 0, nl, vl;
    const char *n, *v;
    bool any = false;
    while (shmq_props_next(p, len, &pos, &n, &nl, &v, &vl)) {
        const char *names[] = {SHMQ_PROP_DELAY, SHMQ_PROP_TIMER_DELAY_SEC, SHMQ_PROP_TIMER_DELAY_MS,
                               SHMQ_PROP_TIMER_DELIVER_MS};
        for (size_t i = 0; i < 4; i++) {
            any |= nl == strlen(names[i]) && memcmp(n, names[i], nl) == 0;
        }
    }
    return any;
}

/* The writer's one-pass scan sees a delay or timer request exactly where the split does. */
static void test_schedule_request_scan_agrees_with_the_property_split(void **state)
{
    (void)state;
    static const char *const parts[] = {"DELAY",
                                        "TIMER_DELAY_SEC",
                                        "TIMER_DELAY_MS",
                                        "TIMER_DELIVER_MS",
                                        "D",
                                        "T",
                                        "\001",
                                        "\002",
                                        "3",
                                        "xx",
                                        "DELAY\001",
                                        "TIMER_DELAY_MS\001",
                                        "UNIQ_KEY\001abc\002"};
    uint32_t r = 99;
    char buf[200];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        r = r * 1103515245u + 12345u;
        int n = (int)((r >> 16) % 10);
        for (int k = 0; k < n; k++) {
            r = r * 1103515245u + 12345u;
            const char *s = parts[(r >> 16) % (sizeof(parts) / sizeof(parts[0]))];
            size_t l = strlen(s);
            if (len + l > sizeof(buf)) {
                break;
            }
            memcpy(buf + len, s, l);
            len += l;
        }
        assert_int_equal(shmq_schedule_requested(buf, len), requested_by_split(buf, len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_delay_level_goes_to_schedule_queue_level_minus_one, setup),
        cmocka_unit_test_setup(test_delay_level_above_max_is_clamped, setup),
        cmocka_unit_test_setup(test_delay_level_drops_timer_requests, setup),
        cmocka_unit_test_setup(test_ordinary_and_zero_level_messages_untouched, setup),
        cmocka_unit_test_setup(test_prepared_transaction_is_not_delayed, setup),
        cmocka_unit_test_setup(test_timer_delay_ms_floors_to_precision, setup),
        cmocka_unit_test_setup(test_timer_exact_multiple_loses_one_precision_unit, setup),
        cmocka_unit_test_setup(test_timer_seconds_win_over_ms_and_deliver_time, setup),
        cmocka_unit_test_setup(test_timer_already_due_is_stored_normally, setup),
        cmocka_unit_test_setup(test_timer_beyond_max_delay_is_refused, setup),
        cmocka_unit_test_setup(test_timer_bad_number_or_disabled_wheel_is_refused, setup),
        cmocka_unit_test_setup(test_message_with_timer_out_ms_is_not_timed_again, setup),
        cmocka_unit_test_setup(test_writer_hook_refuses_a_delayed_batch, setup),
        cmocka_unit_test_setup(test_props_rewrite_drops_crc_and_replaces_set_names, setup),
        cmocka_unit_test_setup(test_due_delay_message_returns_to_real_topic, setup),
        cmocka_unit_test_setup(test_due_timer_message_loses_real_props_gains_times, setup),
        cmocka_unit_test_setup(test_due_message_without_real_topic_cannot_be_delivered, setup),
        cmocka_unit_test_setup(test_cancel_marker_matches_real_topic_and_uniq_key, setup),
        cmocka_unit_test(test_schedule_request_scan_agrees_with_the_property_split),
        cmocka_unit_test_setup(test_retry_levels_follow_reconsume_times_then_dlq, setup),
        cmocka_unit_test_setup(test_retry_record_carries_origin_and_counts_up, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
