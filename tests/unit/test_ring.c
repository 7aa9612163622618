/*
 * Unit tests of producer ring entries (libshm/shm/ring.c): encode/decode round
 * trip, every kind of malformed entry refused with its own error (and
 * whether the writer can skip it), PAD entries at the wrap, a ring filled to
 * capacity, the copy-out rule of the writer's peek, and batches taken as
 * one unit (or refused whole).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "format/config.h"
#include "shm/ctl.h"
#include "shm/ring.h"

#define RING 4096

static const shmq_ring_limits_t LIM = {.max_body = 1024, .max_topic_len = 127};

/* A valid message entry view: topic, properties with a UNIQ_KEY, body. */
typedef struct sample {
    char props[512];
    size_t props_len;
    uint8_t body[1024];
    shmq_ring_msg_t m;
} sample_t;

static void sample_init(sample_t *s, const char *topic, size_t body_len)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(
        shmq_props_append(s->props, sizeof(s->props), &s->props_len, "TAGS", "tagA", 4), 0);
    assert_int_equal(shmq_props_append(s->props, sizeof(s->props), &s->props_len, "UNIQ_KEY",
                                       "0A0000010001000000010000000A0001", 32),
                     0);
    for (size_t i = 0; i < body_len; i++) {
        s->body[i] = (uint8_t)('a' + i % 26);
    }
    shmq_ring_msg_t *m = &s->m;
    m->kind = SHMQ_RING_KIND_MSG;
    m->batch_count = 1;
    m->slot = 7;
    m->req_id = 0x1122334455667788ULL;
    m->queue_id = 3;
    m->flag = -5;
    m->sysflag = SHMQ_SYSFLAG_MULTI_TAGS;
    m->reconsume_times = 2;
    m->born_ts = 1700000000123LL;
    m->prepared_tx_offset = 99;
    m->born_host.addr[0] = 10;
    m->born_host.addr[3] = 1;
    m->born_host.port = 4242;
    m->topic = topic;
    m->topic_len = (uint32_t)strlen(topic);
    m->props = s->props;
    m->props_len = (uint32_t)s->props_len;
    m->body = s->body;
    m->body_len = (uint32_t)body_len;
}

static size_t encode(const sample_t *s, uint8_t *buf, size_t cap)
{
    int64_t n = shmq_ring_encode(buf, cap, &s->m);
    assert_true(n > 0);
    return (size_t)n;
}

static void put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* Decode buf and expect err; returns the message for further checks. */
static shmq_ring_msg_t expect_decode(const uint8_t *buf, size_t len, int err)
{
    shmq_ring_msg_t out;
    int rc = shmq_ring_decode(buf, len, &LIM, &out);
    assert_int_equal(rc, err);
    return out;
}

/* ---- round trip -------------------------------------------------------------------- */

static void test_entry_round_trip_keeps_every_field(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 100);
    s.m.flags = SHMQ_RING_F_ONEWAY;
    s.m.batch_index = 1;
    s.m.batch_count = 3;
    uint8_t buf[2048];
    size_t n = encode(&s, buf, sizeof(buf));
    assert_int_equal(n, shmq_ring_entry_size(6, s.props_len, 100));
    assert_int_equal(n % 8, 0);

    shmq_ring_msg_t out;
    assert_int_equal(shmq_ring_decode(buf, n, &LIM, &out), SHMQ_RING_KIND_MSG);
    assert_int_equal(out.total_len, n);
    assert_int_equal(out.flags, SHMQ_RING_F_ONEWAY);
    assert_int_equal(out.batch_index, 1);
    assert_int_equal(out.batch_count, 3);
    assert_int_equal(out.slot, 7);
    assert_true(out.req_id == 0x1122334455667788ULL);
    assert_int_equal(out.queue_id, 3);
    assert_int_equal(out.flag, -5);
    assert_int_equal(out.sysflag, SHMQ_SYSFLAG_MULTI_TAGS);
    assert_int_equal(out.reconsume_times, 2);
    assert_true(out.born_ts == 1700000000123LL);
    assert_true(out.prepared_tx_offset == 99);
    assert_memory_equal(&out.born_host.addr, &s.m.born_host.addr, 16);
    assert_int_equal(out.born_host.port, 4242);
    assert_int_equal(out.born_host.is_v6, 0);
    assert_int_equal(out.topic_len, 6);
    assert_memory_equal(out.topic, "TopicA", 6);
    assert_int_equal(out.props_len, s.props_len);
    assert_memory_equal(out.props, s.props, s.props_len);
    assert_int_equal(out.body_len, 100);
    assert_memory_equal(out.body, s.body, 100);
    assert_int_equal(out.uniq_key_len, 32);
    assert_memory_equal(out.uniq_key, "0A0000010001000000010000000A0001", 32);
    /* Views point into the decoded buffer. */
    assert_ptr_equal(out.topic, (const char *)buf + SHMQ_RING_HDR_SIZE);
}

static void test_entry_padding_is_zeroed_and_empty_body_allowed(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "T", 0);
    uint8_t buf[1024];
    memset(buf, 0xEE, sizeof(buf));
    size_t n = encode(&s, buf, sizeof(buf));
    size_t used = SHMQ_RING_HDR_SIZE + 1 + s.props_len;
    for (size_t i = used; i < n; i++) {
        assert_int_equal(buf[i], 0);
    }
    shmq_ring_msg_t out = expect_decode(buf, n, SHMQ_RING_KIND_MSG);
    assert_int_equal(out.body_len, 0);
}

static void test_encode_refuses_a_too_small_buffer(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 100);
    uint8_t buf[128];
    assert_int_equal(shmq_ring_encode(buf, sizeof(buf), &s.m), SHMQ_E_TRUNCATED);
}

static void test_msg_to_in_gives_the_record_the_writer_appends(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    shmq_host_t store = {.addr = {192, 168, 0, 9}, .port = 10911};
    shmq_msg_in_t in;
    shmq_ring_msg_to_in(&s.m, &store, &in);
    assert_int_equal(in.topic_len, 6);
    assert_int_equal(in.queue_id, 3);
    assert_int_equal(in.flag, -5);
    assert_int_equal(in.store_host.port, 10911);
    assert_int_equal(in.body_len, 10);
    /* fixed 91 + body + topic + props + 20 CRC tail */
    assert_int_equal(shmq_record_size(&in), 91 + 10 + 6 + (int64_t)s.props_len + 20);
}

/* The plan decode makes is shmq_record_plan()'s for every host family, topic version and
 * properties ending (with or without their last separator). */
static void test_decode_plans_the_record_as_shmq_record_plan(void **state)
{
    (void)state;
    char longtopic[200];
    memset(longtopic, 'T', sizeof(longtopic) - 1);
    longtopic[sizeof(longtopic) - 1] = '\0';
    const char *topics[] = {"TopicA", longtopic};
    for (int t = 0; t < 2; t++) {
        for (int v6 = 0; v6 < 4; v6++) {
            for (int sep = 0; sep < 2; sep++) {
                sample_t s;
                sample_init(&s, topics[t], 37);
                if (sep) {
                    s.m.props_len--; /* no 0x02 after the last property */
                }
                s.m.born_host.is_v6 = (uint8_t)(v6 & 1);
                shmq_ring_limits_t lim = LIM;
                lim.max_topic_len = 255;
                lim.store_host_v6 = (v6 & 2) != 0;
                uint8_t buf[2048];
                size_t n = encode(&s, buf, sizeof(buf));
                shmq_ring_msg_t out;
                assert_int_equal(shmq_ring_decode(buf, n, &lim, &out), SHMQ_RING_KIND_MSG);
                assert_true(out.planned);
                shmq_host_t store = {.addr = {192, 168, 0, 9}, .port = 10911};
                store.is_v6 = lim.store_host_v6;
                shmq_msg_in_t in;
                shmq_ring_msg_to_in(&out, &store, &in);
                shmq_record_plan_t pl;
                assert_int_equal(shmq_record_plan(&in, 0, &pl), 0);
                assert_true(out.plan.total == pl.total);
                assert_int_equal(out.plan.props_len, pl.props_len);
                assert_int_equal(out.plan.v2, pl.v2);
                assert_int_equal(out.plan.add_sep, pl.add_sep);
                assert_int_equal(out.plan.v2, t == 1);
                assert_int_equal(out.plan.add_sep, sep == 1);
            }
        }
    }
}

/* ---- malformed entries: each has its error ------------------------------------------ */

static void test_bad_magic_is_fatal(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put32(buf, 0xDEADBEEF);
    expect_decode(buf, n, SHMQ_RING_E_MAGIC);
    assert_true(shmq_ring_error_fatal(SHMQ_RING_E_MAGIC));
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_MAGIC), SHMQ_E_CORRUPT);
}

static void test_unknown_kind_is_fatal(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put16(buf + 4, 9);
    expect_decode(buf, n, SHMQ_RING_E_KIND);
    assert_true(shmq_ring_error_fatal(SHMQ_RING_E_KIND));
}

static void test_garbage_length_is_fatal(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put32(buf + 8, (uint32_t)n + 3); /* not a multiple of 8 */
    expect_decode(buf, sizeof(buf), SHMQ_RING_E_LENGTH);
    put32(buf + 8, 40); /* below the header */
    expect_decode(buf, sizeof(buf), SHMQ_RING_E_LENGTH);
    assert_true(shmq_ring_error_fatal(SHMQ_RING_E_LENGTH));
}

static void test_length_past_the_available_bytes_is_fatal(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n - 8, SHMQ_RING_E_PAST_TAIL);
    expect_decode(buf, 40, SHMQ_RING_E_PAST_TAIL); /* not even a header */
    expect_decode(buf, 4, SHMQ_RING_E_SHORT);
    assert_true(shmq_ring_error_fatal(SHMQ_RING_E_PAST_TAIL));
    assert_true(shmq_ring_error_fatal(SHMQ_RING_E_SHORT));
}

static void test_unknown_flags_are_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put16(buf + 6, 0x80);
    shmq_ring_msg_t out = expect_decode(buf, n, SHMQ_RING_E_FLAGS);
    assert_true(out.hdr_ok); /* the request can still be answered */
    assert_int_equal(out.slot, 7);
    assert_false(shmq_ring_error_fatal(SHMQ_RING_E_FLAGS));
    put16(buf + 6, 0);
    buf[85] = 1; /* reserved byte */
    expect_decode(buf, n, SHMQ_RING_E_FLAGS);
}

static void test_bad_batch_index_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put16(buf + 12, 2); /* index 2 of 1 */
    expect_decode(buf, n, SHMQ_RING_E_BATCH);
    put16(buf + 12, 0);
    put16(buf + 14, 0); /* count 0 */
    expect_decode(buf, n, SHMQ_RING_E_BATCH);
}

static void test_slot_out_of_range_is_refused_unless_oneway(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    s.m.slot = SHMQ_RING_SLOTS;
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_SLOT);
    s.m.flags = SHMQ_RING_F_ONEWAY;
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_KIND_MSG);
}

static void test_topic_length_past_the_entry_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put32(buf + 44, (uint32_t)n); /* topic longer than the entry */
    expect_decode(buf, n, SHMQ_RING_E_TOPIC_LEN);
    put32(buf + 44, 0);
    expect_decode(buf, n, SHMQ_RING_E_TOPIC_LEN);
    put32(buf + 44, 300);
    expect_decode(buf, n, SHMQ_RING_E_TOPIC_LEN);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_TOPIC_LEN), SHMQ_E_TOPIC);
}

static void test_properties_and_body_past_the_entry_are_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    put32(buf + 88, (uint32_t)n);
    expect_decode(buf, n, SHMQ_RING_E_PROPS_LEN);
    put32(buf + 88, (uint32_t)s.props_len);
    put32(buf + 92, 0x7FFFFFF0u);
    expect_decode(buf, n, SHMQ_RING_E_BODY_LEN);
    put32(buf + 92, 2); /* parts end well before the entry's length */
    expect_decode(buf, n, SHMQ_RING_E_LEN_MISMATCH);
}

static void test_body_larger_than_max_message_size_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 1024);
    uint8_t buf[2048];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_KIND_MSG); /* exactly the limit */
    shmq_ring_limits_t small = {.max_body = 1023, .max_topic_len = 127};
    shmq_ring_msg_t out;
    assert_int_equal(shmq_ring_decode(buf, n, &small, &out), SHMQ_RING_E_BODY_TOO_BIG);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_BODY_TOO_BIG), SHMQ_E_TOO_BIG);
}

static void test_properties_too_big_are_refused(void **state)
{
    (void)state;
    static uint8_t buf[40000];
    static char props[33000];
    memset(props, 'x', sizeof(props));
    sample_t s;
    sample_init(&s, "TopicA", 0);
    /* 32747 bytes + __CRC32# tail (20) fit exactly; one more does not. */
    size_t len = SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN;
    memcpy(props, s.props, s.props_len); /* keeps UNIQ_KEY first */
    props[len - 1] = SHMQ_PROP_SEP;
    s.m.props = props;
    s.m.props_len = (uint32_t)len;
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_KIND_MSG);
    s.m.props_len = (uint32_t)len + 8;
    props[len - 1] = 'x';
    props[len + 7] = SHMQ_PROP_SEP;
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_PROPS_TOO_BIG);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_PROPS_TOO_BIG), SHMQ_E_PROPS);
}

static void test_missing_uniq_key_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    char props[64];
    size_t plen = 0;
    assert_int_equal(shmq_props_append(props, sizeof(props), &plen, "TAGS", "x", 1), 0);
    s.m.props = props;
    s.m.props_len = (uint32_t)plen;
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_UNIQ_KEY);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_UNIQ_KEY), SHMQ_E_PROPS);
    s.m.props_len = 0;
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_UNIQ_KEY);
}

static void test_store_crc_property_from_a_producer_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    assert_int_equal(
        shmq_props_append(s.props, sizeof(s.props), &s.props_len, "__CRC32#", "0000000000", 10),
        0); /* props_append allows the name: the record codec does not */
    s.m.props_len = (uint32_t)s.props_len;
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_PROPS);
}

static void test_queue_id_out_of_range_is_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    s.m.queue_id = -1;
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_QUEUE);
    s.m.queue_id = 65536;
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_QUEUE);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_QUEUE), SHMQ_E_RANGE);
}

static void test_bad_host_sysflag_and_topic_are_refused(void **state)
{
    (void)state;
    sample_t s;
    sample_init(&s, "TopicA", 10);
    uint8_t buf[1024];
    size_t n = encode(&s, buf, sizeof(buf));
    buf[84] = 2;
    expect_decode(buf, n, SHMQ_RING_E_HOST);

    sample_init(&s, "TopicA", 10);
    s.m.sysflag = SHMQ_SYSFLAG_INNER_BATCH;
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_SYSFLAG);

    sample_init(&s, "Topic A", 10);
    n = encode(&s, buf, sizeof(buf));
    expect_decode(buf, n, SHMQ_RING_E_TOPIC);
    assert_int_equal(shmq_ring_error_status(SHMQ_RING_E_TOPIC), SHMQ_E_TOPIC);
}

static void test_every_ring_error_has_its_own_text(void **state)
{
    (void)state;
    for (int e = SHMQ_RING_E_SHORT; e > SHMQ_RING_E_LAST; e--) {
        const char *t = shmq_ring_strerror(e);
        assert_non_null(t);
        assert_non_null(strstr(t, "ring:"));
        for (int f = e - 1; f > SHMQ_RING_E_LAST; f--) {
            assert_string_not_equal(t, shmq_ring_strerror(f));
        }
    }
}

/* ---- the ring: peek, PAD, capacity -------------------------------------------------------- */

typedef struct ring {
    uint8_t *data;
    _Atomic uint64_t head;
    _Atomic uint64_t tail;
    shmq_ring_prod_t rp;
    uint8_t buf[RING];
} ring_t;

static ring_t *ring_new(uint64_t start)
{
    ring_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->data = calloc(1, RING);
    assert_non_null(r->data);
    atomic_store(&r->head, start);
    atomic_store(&r->tail, start);
    shmq_ring_prod_init(&r->rp, r->data, RING, &r->head, &r->tail);
    return r;
}

static void ring_free(ring_t *r)
{
    free(r->data);
    free(r);
}

/* Producer side: reserve, encode, publish one entry. */
static int put_entry(ring_t *r, const sample_t *s)
{
    uint64_t len = shmq_ring_entry_size(s->m.topic_len, s->m.props_len, s->m.body_len);
    uint8_t *dst;
    int rc = shmq_ring_reserve(&r->rp, len, &dst);
    if (rc < 0) {
        return rc;
    }
    assert_int_equal(shmq_ring_encode(dst, len, &s->m), (int64_t)len);
    shmq_ring_publish(&r->rp);
    return 0;
}

/* Writer side: peek at head and advance. Returns the peek result. */
static int take(ring_t *r, shmq_ring_msg_t *out)
{
    uint64_t adv;
    int rc = shmq_ring_peek(r->data, RING, atomic_load(&r->head), atomic_load(&r->tail), &LIM,
                            r->buf, sizeof(r->buf), out, &adv);
    if (rc != 0 && adv > 0) {
        atomic_store(&r->head, atomic_load(&r->head) + adv);
    }
    return rc;
}

static void test_peek_returns_entries_in_order_then_empty(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a, b;
    sample_init(&a, "TopicA", 10);
    sample_init(&b, "TopicB", 20);
    assert_int_equal(put_entry(r, &a), 0);
    assert_int_equal(put_entry(r, &b), 0);
    shmq_ring_msg_t m;
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_memory_equal(m.topic, "TopicA", 6);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_memory_equal(m.topic, "TopicB", 6);
    assert_int_equal(take(r, &m), 0);
    assert_true(shmq_ring_drained(&r->rp));
    ring_free(r);
}

static void test_peek_copies_the_entry_out_of_the_ring(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a;
    sample_init(&a, "TopicA", 10);
    assert_int_equal(put_entry(r, &a), 0);
    shmq_ring_msg_t m;
    uint64_t adv;
    assert_int_equal(shmq_ring_peek(r->data, RING, 0, atomic_load(&r->tail), &LIM, r->buf,
                                    sizeof(r->buf), &m, &adv),
                     SHMQ_RING_KIND_MSG);
    /* A producer rewriting its entry afterwards changes nothing the writer holds. */
    memset(r->data, 0xFF, RING);
    assert_true(m.body >= r->buf && m.body < r->buf + sizeof(r->buf));
    assert_memory_equal(m.topic, "TopicA", 6);
    assert_int_equal(m.body_len, 10);
    assert_memory_equal(m.body, a.body, 10);
    ring_free(r);
}

/* body_in_ring: header, topic and properties are copied and checked; the body stays in the
 * ring (read once later, by the encoder); the checks and verdicts are the same. */
static void test_peek_body_in_ring_copies_all_but_the_body(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a;
    sample_init(&a, "TopicA", 10);
    assert_int_equal(put_entry(r, &a), 0);
    shmq_ring_limits_t lim = LIM;
    lim.body_in_ring = true;
    shmq_ring_msg_t m;
    uint64_t adv;
    memset(r->buf, 0xAB, sizeof(r->buf));
    assert_int_equal(shmq_ring_peek(r->data, RING, 0, atomic_load(&r->tail), &lim, r->buf,
                                    sizeof(r->buf), &m, &adv),
                     SHMQ_RING_KIND_MSG);
    assert_int_equal(adv, shmq_ring_entry_size(6, a.m.props_len, 10));
    assert_true(m.body >= r->data && m.body < r->data + RING);
    assert_memory_equal(m.body, a.body, 10);
    /* The copy ends with the properties: the body's bytes were not read into it. */
    size_t parts = SHMQ_RING_HDR_SIZE + 6 + a.m.props_len;
    assert_int_equal(r->buf[parts], 0xAB);
    assert_true(m.props_scanned);
    assert_false(m.sched);
    assert_int_equal(m.uniq_key_len, 32);
    /* A producer rewriting its entry afterwards changes nothing that was checked. */
    memset(r->data, 0xFF, SHMQ_RING_HDR_SIZE + 6 + a.m.props_len);
    assert_memory_equal(m.topic, "TopicA", 6);
    assert_true(m.props >= (const char *)r->buf && m.props < (const char *)r->buf + parts);
    ring_free(r);
}

/* The topic memo: a name found valid once is compared, not checked again; a bad one is
 * still refused, and a memo made under another limit does not count. */
static void test_decode_topic_memo_keeps_the_verdicts(void **state)
{
    (void)state;
    shmq_ring_topic_memo_t memo;
    memset(&memo, 0, sizeof(memo));
    shmq_ring_limits_t lim = LIM;
    lim.topic_memo = &memo;
    uint8_t enc[4096];
    shmq_ring_msg_t out;
    sample_t a;
    sample_init(&a, "TopicA", 4);
    int64_t n = shmq_ring_encode(enc, sizeof(enc), &a.m);
    assert_true(n > 0);
    assert_int_equal(shmq_ring_decode(enc, (size_t)n, &lim, &out), SHMQ_RING_KIND_MSG);
    assert_int_equal(memo.len, 6);
    uint64_t gen = memo.gen;
    assert_true(gen != 0);
    assert_int_equal(shmq_ring_decode(enc, (size_t)n, &lim, &out), SHMQ_RING_KIND_MSG);
    assert_true(memo.gen == gen); /* the same name: gen stays */
    sample_t b;
    sample_init(&b, "Topic A", 4); /* a space: not a topic name */
    n = shmq_ring_encode(enc, sizeof(enc), &b.m);
    assert_int_equal(shmq_ring_decode(enc, (size_t)n, &lim, &out), SHMQ_RING_E_TOPIC);
    assert_int_equal(memo.len, 6);
    sample_t c;
    sample_init(&c, "TopicA", 4);
    n = shmq_ring_encode(enc, sizeof(enc), &c.m);
    shmq_ring_limits_t shorter = lim;
    shorter.max_topic_len = 5;
    assert_int_equal(shmq_ring_decode(enc, (size_t)n, &shorter, &out), SHMQ_RING_E_TOPIC);
    assert_true(memo.gen == gen); /* refused names leave the memo */
    sample_t d;
    sample_init(&d, "TopicB", 4);
    n = shmq_ring_encode(enc, sizeof(enc), &d.m);
    assert_int_equal(shmq_ring_decode(enc, (size_t)n, &lim, &out), SHMQ_RING_KIND_MSG);
    assert_true(memo.gen != gen); /* another name: gen moves */
}

static void test_entry_past_the_published_tail_is_fatal(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a;
    sample_init(&a, "TopicA", 10);
    assert_int_equal(put_entry(r, &a), 0);
    atomic_store(&r->tail, 64); /* only part of the entry published */
    shmq_ring_msg_t m;
    uint64_t adv = 1;
    assert_int_equal(shmq_ring_peek(r->data, RING, 0, 64, &LIM, r->buf, sizeof(r->buf), &m, &adv),
                     SHMQ_RING_E_PAST_TAIL);
    assert_int_equal(adv, 0);
    /* A published region larger than the ring is garbage too. */
    assert_int_equal(
        shmq_ring_peek(r->data, RING, 0, RING + 8, &LIM, r->buf, sizeof(r->buf), &m, &adv),
        SHMQ_RING_E_PAST_TAIL);
    ring_free(r);
}

static void test_skippable_error_advances_past_the_entry(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t bad, good;
    sample_init(&bad, "TopicA", 10);
    bad.m.queue_id = 70000;
    sample_init(&good, "TopicB", 10);
    assert_int_equal(put_entry(r, &bad), 0);
    assert_int_equal(put_entry(r, &good), 0);
    shmq_ring_msg_t m;
    assert_int_equal(take(r, &m), SHMQ_RING_E_QUEUE);
    assert_true(m.hdr_ok);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_memory_equal(m.topic, "TopicB", 6);
    ring_free(r);
}

/* Every field of a peeked entry as shmq_ring_decode() gives it from the same copy. */
static void assert_same_msg(const shmq_ring_msg_t *a, const shmq_ring_msg_t *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->total_len, b->total_len);
    assert_int_equal(a->batch_index, b->batch_index);
    assert_int_equal(a->batch_count, b->batch_count);
    assert_int_equal(a->slot, b->slot);
    assert_int_equal(a->req_id, b->req_id);
    assert_int_equal(a->queue_id, b->queue_id);
    assert_int_equal(a->flag, b->flag);
    assert_int_equal(a->sysflag, b->sysflag);
    assert_int_equal(a->reconsume_times, b->reconsume_times);
    assert_int_equal(a->born_ts, b->born_ts);
    assert_int_equal(a->prepared_tx_offset, b->prepared_tx_offset);
    assert_memory_equal(a->born_host.addr, b->born_host.addr, sizeof(a->born_host.addr));
    assert_int_equal(a->born_host.port, b->born_host.port);
    assert_int_equal(a->born_host.is_v6, b->born_host.is_v6);
    assert_ptr_equal(a->topic, b->topic);
    assert_int_equal(a->topic_len, b->topic_len);
    assert_ptr_equal(a->props, b->props);
    assert_int_equal(a->props_len, b->props_len);
    assert_ptr_equal(a->body, b->body);
    assert_int_equal(a->body_len, b->body_len);
    assert_ptr_equal(a->uniq_key, b->uniq_key);
    assert_int_equal(a->uniq_key_len, b->uniq_key_len);
    assert_int_equal(a->hdr_ok, b->hdr_ok);
    assert_int_equal(a->props_scanned, b->props_scanned);
    assert_int_equal(a->sched, b->sched);
    assert_int_equal(a->planned, b->planned);
    assert_int_equal(a->plan.total, b->plan.total);
    assert_int_equal(a->plan.props_len, b->plan.props_len);
    assert_int_equal(a->plan.v2, b->plan.v2);
    assert_int_equal(a->plan.add_sep, b->plan.add_sep);
}

/* Peeking into the same message again and again (as the writer does): an entry refused at
 * any check leaves its header readable and its parts empty, never the fields of the entry
 * before; a good entry after it has every field as shmq_ring_decode() gives it. */
static void test_peek_refusal_leaves_the_parts_empty_and_the_next_entry_whole(void **state)
{
    (void)state;
    enum { CASES = 6 };
    const int errs[CASES] = {SHMQ_RING_E_SLOT,  SHMQ_RING_E_QUEUE,    SHMQ_RING_E_SYSFLAG,
                             SHMQ_RING_E_TOPIC, SHMQ_RING_E_UNIQ_KEY, SHMQ_RING_E_PROPS};
    for (int c = 0; c < CASES; c++) {
        ring_t *r = ring_new(0);
        sample_t good, bad;
        sample_init(&good, "TopicA", 10);
        sample_init(&bad, "TopicB", 20);
        static const char crc_props[] = "UNIQ_KEY\001K\002__CRC32#\0010000000000";
        switch (c) {
        case 0:
            bad.m.slot = SHMQ_RING_SLOTS;
            break;
        case 1:
            bad.m.queue_id = 70000;
            break;
        case 2:
            bad.m.sysflag = SHMQ_SYSFLAG_BORNHOST_V6;
            break;
        case 3:
            bad.m.topic = "Topic B";
            break;
        case 4:
            bad.m.props_len = 10;
            break; /* TAGS only: no UNIQ_KEY */
        default:
            bad.m.props = crc_props;
            bad.m.props_len = sizeof(crc_props) - 1;
            break;
        }
        assert_int_equal(put_entry(r, &good), 0);
        assert_int_equal(put_entry(r, &bad), 0);
        assert_int_equal(put_entry(r, &good), 0);
        shmq_ring_msg_t m, d;
        assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
        assert_int_equal(take(r, &m), errs[c]);
        assert_true(m.hdr_ok);
        assert_int_equal(m.req_id, bad.m.req_id);
        assert_null(m.topic);
        assert_null(m.props);
        assert_null(m.body);
        assert_null(m.uniq_key);
        assert_int_equal(m.topic_len + m.props_len + m.body_len + m.uniq_key_len, 0);
        assert_false(m.props_scanned || m.sched || m.planned);
        assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
        assert_int_equal(shmq_ring_decode(r->buf, m.total_len, &LIM, &d), SHMQ_RING_KIND_MSG);
        assert_same_msg(&m, &d);
        ring_free(r);
    }
}

static void test_pad_fills_the_ring_end_and_entry_starts_at_zero(void **state)
{
    (void)state;
    /* Start near the end: 4096 - 64 bytes before the wrap. */
    ring_t *r = ring_new(10 * RING + RING - 64);
    sample_t a;
    sample_init(&a, "TopicA", 100);
    uint64_t len = shmq_ring_entry_size(6, a.props_len, 100);
    assert_true(len > 64);
    assert_int_equal(put_entry(r, &a), 0);
    assert_int_equal(atomic_load(&r->tail), 11 * RING + len);
    shmq_ring_msg_t m;
    uint64_t head = atomic_load(&r->head);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_PAD);
    assert_int_equal(atomic_load(&r->head), head + 64);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_ptr_equal(m.topic, (const char *)r->buf + SHMQ_RING_HDR_SIZE);
    assert_int_equal(m.body_len, 100);
    assert_int_equal(take(r, &m), 0);
    ring_free(r);
}

static void test_pad_of_eight_bytes_is_enough(void **state)
{
    (void)state;
    ring_t *r = ring_new(RING - 8);
    sample_t a;
    sample_init(&a, "TopicA", 1);
    assert_int_equal(put_entry(r, &a), 0);
    shmq_ring_msg_t m;
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_PAD);
    assert_int_equal(atomic_load(&r->head), RING);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    ring_free(r);
}

static void test_partly_published_pad_is_fatal(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    shmq_ring_write_pad(r->data + RING - 64);
    shmq_ring_msg_t m;
    uint64_t adv;
    assert_int_equal(
        shmq_ring_peek(r->data, RING, RING - 64, RING - 32, &LIM, r->buf, sizeof(r->buf), &m, &adv),
        SHMQ_RING_E_PAST_TAIL);
    ring_free(r);
}

static void test_ring_fills_to_capacity_then_waits_for_the_writer(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a;
    sample_init(&a, "TopicA", 0);
    /* Make each entry exactly 256 bytes so that 16 fill the ring. */
    uint64_t base = shmq_ring_entry_size(6, a.props_len, 0);
    assert_true(base <= 256);
    a.m.body_len = (uint32_t)(256 - (SHMQ_RING_HDR_SIZE + 6 + a.props_len));
    assert_int_equal(shmq_ring_entry_size(6, a.props_len, a.m.body_len), 256);
    for (int i = 0; i < RING / 256; i++) {
        assert_int_equal(put_entry(r, &a), 0);
    }
    assert_int_equal(atomic_load(&r->tail) - atomic_load(&r->head), RING);
    assert_false(shmq_ring_has_space(&r->rp, 8));
    assert_int_equal(put_entry(r, &a), -EAGAIN);
    shmq_ring_msg_t m;
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_true(shmq_ring_has_space(&r->rp, 256));
    assert_int_equal(put_entry(r, &a), 0);
    int n = 0;
    while (take(r, &m) == SHMQ_RING_KIND_MSG) {
        n++;
    }
    assert_int_equal(n, RING / 256);
    assert_true(shmq_ring_drained(&r->rp));
    ring_free(r);
}

static void test_entry_not_fitting_before_wrap_publishes_pad_and_waits(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t a;
    sample_init(&a, "TopicA", 0);
    a.m.body_len = (uint32_t)(1024 - (SHMQ_RING_HDR_SIZE + 6 + a.props_len));
    /* Three 1 KiB entries, the writer takes one: 1 KiB before the wrap, 2 KiB free. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put_entry(r, &a), 0);
    }
    shmq_ring_msg_t m;
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    /* 2 KiB + 1 KiB of pad exceed the 2 KiB free: the PAD goes out alone. */
    uint8_t *dst;
    assert_int_equal(shmq_ring_reserve(&r->rp, 2048, &dst), -EAGAIN);
    assert_int_equal(atomic_load(&r->tail), 4096);
    assert_false(shmq_ring_has_space(&r->rp, 2048));
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_MSG);
    assert_int_equal(take(r, &m), SHMQ_RING_KIND_PAD);
    assert_true(shmq_ring_has_space(&r->rp, 2048));
    assert_int_equal(shmq_ring_reserve(&r->rp, 2048, &dst), 0);
    assert_ptr_equal(dst, r->data);
    ring_free(r);
}

static void test_reserve_refuses_what_can_never_fit(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    uint8_t *dst;
    assert_int_equal(shmq_ring_reserve(&r->rp, RING + 8, &dst), SHMQ_E_TOO_BIG);
    assert_int_equal(shmq_ring_reserve(&r->rp, 12, &dst), SHMQ_E_TOO_BIG);
    assert_int_equal(shmq_ring_reserve(&r->rp, RING, &dst), 0);
    shmq_ring_cancel(&r->rp);
    assert_int_equal(atomic_load(&r->tail), 0);
    ring_free(r);
}

static void test_store_host_comes_from_broker_ip1(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    strcpy(cfg.broker_ip1, "10.1.2.3");
    cfg.listen_port = 10999;
    shmq_host_t h;
    assert_int_equal(shmq_config_store_host(&cfg, &h), 0);
    assert_int_equal(h.addr[0], 10);
    assert_int_equal(h.addr[1], 1);
    assert_int_equal(h.addr[2], 2);
    assert_int_equal(h.addr[3], 3);
    assert_int_equal(h.port, 10999);
    strcpy(cfg.broker_ip1, "10.1.2");
    assert_int_equal(shmq_config_store_host(&cfg, &h), SHMQ_E_CONFIG);
}

/* An IPv6 brokerIP1: records carry RocketMQ's 20-byte IPv6 store host (sysflag
 * STOREHOSTADDRESS_V6_FLAG), which the codec reads back, and 56-digit message ids. */
static void test_store_host_may_be_ipv6(void **state)
{
    (void)state;
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    strcpy(cfg.broker_ip1, "2001:db8::7");
    cfg.listen_port = 10911;
    shmq_host_t h;
    assert_int_equal(shmq_config_store_host(&cfg, &h), 0);
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};
    assert_int_equal(h.is_v6, 1);
    assert_memory_equal(h.addr, want, 16);
    assert_int_equal(h.port, 10911);

    sample_t s;
    sample_init(&s, "TopicA", 100);
    shmq_msg_in_t in, in4;
    shmq_ring_msg_to_in(&s.m, &h, &in);
    shmq_host_t h4 = {.addr = {10, 1, 2, 3}, .port = 10911};
    shmq_ring_msg_to_in(&s.m, &h4, &in4);
    int64_t size = shmq_record_size(&in);
    assert_int_equal(size, shmq_record_size(&in4) + 12);
    static uint8_t rec[4096];
    assert_int_equal(shmq_record_encode(&in, 0, 4096, 1700000000000LL, rec, sizeof(rec)), size);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(rec, sizeof(rec), 4096, SHMQ_DECODE_CHECK_ALL, &r), size);
    assert_true((r.sysflag & SHMQ_SYSFLAG_STOREHOST_V6) != 0);
    assert_int_equal(r.store_host.is_v6, 1);
    assert_memory_equal(r.store_host.addr, want, 16);
    assert_int_equal(r.store_host.port, 10911);
    char id[SHMQ_MSGID_MAX];
    shmq_msgid_format(&r.store_host, r.phys_offset, id);
    assert_int_equal(strlen(id), 56);
    shmq_host_t back;
    int64_t off;
    assert_int_equal(shmq_msgid_parse(id, &back, &off), 0);
    assert_memory_equal(back.addr, want, 16);
    assert_int_equal(off, 4096);

    strcpy(cfg.broker_ip1, "2001:db8::zz");
    assert_int_equal(shmq_config_store_host(&cfg, &h), SHMQ_E_CONFIG);
}

/* ---- units: batches taken as one ----------------------------------------------------- */

/* Publish a batch of n entries (topic, queue 1, slot 3, request 42). */
static void put_batch(ring_t *r, sample_t *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        s->m.batch_index = (uint16_t)k;
        s->m.batch_count = (uint16_t)n;
        s->m.slot = 3;
        s->m.req_id = 42;
        s->m.queue_id = 1;
        assert_int_equal(put_entry(r, s), 0);
    }
    s->m.batch_index = 0;
    s->m.batch_count = 1;
}

static int take_unit(ring_t *r, shmq_ring_msg_t *msgs, size_t max, size_t *n, uint64_t *adv)
{
    return shmq_ring_take_unit(r->data, RING, atomic_load(&r->head), atomic_load(&r->tail), &LIM,
                               r->buf, sizeof(r->buf), msgs, max, n, adv);
}

static void test_batch_is_taken_as_one_unit(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t s;
    sample_init(&s, "TopicA", 30);
    put_batch(r, &s, 3);
    shmq_ring_msg_t msgs[4];
    size_t n;
    uint64_t adv;
    assert_int_equal(take_unit(r, msgs, 4, &n, &adv), SHMQ_RING_KIND_MSG);
    assert_int_equal(n, 3);
    assert_int_equal(adv, atomic_load(&r->tail));
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(msgs[k].batch_index, k);
        assert_int_equal(msgs[k].body_len, 30);
        assert_true(msgs[k].body >= r->buf && msgs[k].body < r->buf + sizeof(r->buf));
    }
    assert_true(msgs[1].topic > msgs[0].topic); /* each entry has its own copy */
    ring_free(r);
}

static void test_batch_larger_than_the_array_asks_for_room(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t s;
    sample_init(&s, "TopicA", 10);
    put_batch(r, &s, 3);
    shmq_ring_msg_t msgs[3];
    size_t n;
    uint64_t adv = 1;
    assert_int_equal(take_unit(r, msgs, 2, &n, &adv), -ENOBUFS);
    assert_int_equal(n, 3);
    assert_int_equal(adv, 0);
    assert_int_equal(take_unit(r, msgs, 3, &n, &adv), SHMQ_RING_KIND_MSG);
    ring_free(r);
}

static void test_batch_broken_by_a_foreign_entry_ends_before_it(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t s;
    sample_init(&s, "TopicA", 10);
    s.m.batch_count = 2; /* first of two... */
    assert_int_equal(put_entry(r, &s), 0);
    uint64_t first = atomic_load(&r->tail);
    s.m.batch_count = 1; /* ...followed by a single message */
    assert_int_equal(put_entry(r, &s), 0);
    shmq_ring_msg_t msgs[2];
    size_t n;
    uint64_t adv;
    assert_int_equal(take_unit(r, msgs, 2, &n, &adv), SHMQ_RING_E_BATCH);
    assert_int_equal(adv, first);
    assert_true(msgs[0].hdr_ok);
    atomic_store(&r->head, adv);
    assert_int_equal(take_unit(r, msgs, 2, &n, &adv), SHMQ_RING_KIND_MSG);
    assert_int_equal(n, 1);
    ring_free(r);
}

static void test_bad_entry_inside_a_batch_refuses_the_batch(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t s, bad;
    sample_init(&s, "TopicA", 10);
    sample_init(&bad, "TopicA", 10);
    bad.m.props_len = 0; /* no UNIQ_KEY */
    bad.m.batch_index = 1;
    bad.m.batch_count = 2;
    s.m.batch_count = 2;
    assert_int_equal(put_entry(r, &s), 0);
    assert_int_equal(put_entry(r, &bad), 0);
    shmq_ring_msg_t msgs[2];
    size_t n;
    uint64_t adv;
    assert_int_equal(take_unit(r, msgs, 2, &n, &adv), SHMQ_RING_E_UNIQ_KEY);
    assert_int_equal(adv, atomic_load(&r->tail)); /* both entries consumed */
    assert_int_equal(msgs[0].slot, s.m.slot);     /* the request to answer */
    ring_free(r);
}

static void test_partly_published_batch_or_lone_tail_is_refused(void **state)
{
    (void)state;
    ring_t *r = ring_new(0);
    sample_t s;
    sample_init(&s, "TopicA", 10);
    s.m.batch_count = 3;
    assert_int_equal(put_entry(r, &s), 0); /* only the first of three */
    shmq_ring_msg_t msgs[3];
    size_t n;
    uint64_t adv;
    assert_int_equal(take_unit(r, msgs, 3, &n, &adv), SHMQ_RING_E_BATCH);
    atomic_store(&r->head, adv);
    s.m.batch_index = 1;
    assert_int_equal(put_entry(r, &s), 0); /* a tail without its first */
    assert_int_equal(take_unit(r, msgs, 3, &n, &adv), SHMQ_RING_E_BATCH);
    assert_true(adv > 0);
    ring_free(r);
}

/* shmq_bytes_equal (the topic memo's compare): equal copies of every length up to 40 are
 * equal, and a change of any one byte is seen. */
static void test_bytes_equal_every_length_and_byte(void **state)
{
    (void)state;
    uint8_t a[40], b[40];
    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t n = 0; n <= sizeof(a); n++) {
        memcpy(b, a, sizeof(b));
        assert_true(shmq_bytes_equal(a, b, n));
        for (size_t i = 0; i < n; i++) {
            b[i] ^= 0x20;
            assert_false(shmq_bytes_equal(a, b, n));
            b[i] ^= 0x20;
        }
        if (n < sizeof(a)) {
            b[n] ^= 0x20; /* a byte past n does not count */
            assert_true(shmq_bytes_equal(a, b, n));
        }
    }
}

/* ---- the writer's plain-entry path ---------------------------------------------------- */

/* shmq_ring_peek_plain() of the entry at offset 0 of data (tail bytes published). */
static bool plain(const uint8_t *data, uint64_t tail, const shmq_ring_limits_t *lim,
                  shmq_ring_hdr_t *h)
{
    return shmq_ring_peek_plain(data, RING, 0, tail, lim, h);
}

/* A header peek_plain() takes is one shmq_ring_peek() takes, field for field. */
static void expect_same_header(const shmq_ring_hdr_t *h, const shmq_ring_msg_t *m, uint64_t adv)
{
    assert_int_equal(h->total_len, adv);
    assert_int_equal(h->flags, m->flags);
    assert_int_equal(h->slot, m->slot);
    assert_true(h->req_id == m->req_id);
    assert_int_equal(h->queue_id, m->queue_id);
    assert_int_equal(h->flag, m->flag);
    assert_int_equal(h->sysflag, m->sysflag);
    assert_int_equal(h->reconsume_times, m->reconsume_times);
    assert_true(h->born_ts == m->born_ts);
    assert_true(h->prepared_tx_offset == m->prepared_tx_offset);
    assert_memory_equal(h->born_addr, m->born_host.addr, 4);
    assert_int_equal(h->born_port, m->born_host.port);
    assert_int_equal(m->born_host.is_v6, 0);
    assert_int_equal(h->topic_len, m->topic_len);
    assert_int_equal(h->props_len, m->props_len);
    assert_int_equal(h->body_len, m->body_len);
    assert_int_equal(m->batch_count, 1);
    assert_int_equal(m->sysflag & SHMQ_SYSFLAG_TX_MASK, SHMQ_SYSFLAG_TX_NOT);
}

/* Every header byte of a plain entry set to each of a few values: whatever peek_plain()
 * takes, the full peek takes too (or refuses only for the parts' content, which the writer
 * checks in its copy), with the same fields.  The shapes it leaves to the full path: a
 * batch, an IPv4-less host, a transaction, a V2 topic, an IPv6 store host, an entry not
 * whole before the tail or the wrap. */
static void test_peek_plain_takes_only_what_peek_takes(void **state)
{
    (void)state;
    static uint8_t data[RING], orig[RING], buf[RING];
    sample_t s;
    sample_init(&s, "TopicA", 100);
    memset(orig, 0, sizeof(orig));
    uint64_t total = encode(&s, orig, sizeof(orig));
    shmq_ring_hdr_t h;
    shmq_ring_msg_t m;
    uint64_t adv;
    memcpy(data, orig, sizeof(data));
    assert_true(plain(data, total, &LIM, &h));
    assert_int_equal(shmq_ring_peek(data, RING, 0, total, &LIM, buf, sizeof(buf), &m, &adv),
                     SHMQ_RING_KIND_MSG);
    expect_same_header(&h, &m, adv);
    int taken = 0;
    for (size_t at = 0; at < SHMQ_RING_HDR_SIZE; at++) {
        const uint8_t vals[] = {0x00,
                                0x01,
                                0x02,
                                0x04,
                                0x08,
                                0x7F,
                                0x80,
                                0xFF,
                                (uint8_t)(orig[at] ^ 1),
                                (uint8_t)(orig[at] + 8)};
        for (size_t v = 0; v < sizeof(vals); v++) {
            memcpy(data, orig, sizeof(data));
            data[at] = vals[v];
            if (!plain(data, total, &LIM, &h)) {
                continue;
            }
            taken++;
            int rc = shmq_ring_peek(data, RING, 0, total, &LIM, buf, sizeof(buf), &m, &adv);
            if (rc == SHMQ_RING_KIND_MSG) {
                expect_same_header(&h, &m, adv);
            } else {
                assert_true(rc == SHMQ_RING_E_TOPIC || rc == SHMQ_RING_E_PROPS ||
                            rc == SHMQ_RING_E_UNIQ_KEY);
            }
        }
    }
    assert_true(taken > 100); /* the unchanged values and the harmless fields */

    shmq_ring_limits_t lim = LIM;
    memcpy(data, orig, sizeof(data));
    assert_false(plain(data, total - 8, &LIM, &h)); /* not published whole */
    assert_false(plain(data, 0, &LIM, &h));
    lim.store_host_v6 = true;
    assert_false(plain(data, total, &lim, &h));
    lim = LIM;
    lim.max_body = 99;
    assert_false(plain(data, total, &lim, &h));
    sample_t b = s;
    b.m.batch_count = 2;
    assert_true(shmq_ring_encode(data, sizeof(data), &b.m) > 0);
    assert_false(plain(data, total, &LIM, &h));
    b = s;
    b.m.born_host.is_v6 = 1;
    uint64_t t6 = (uint64_t)shmq_ring_encode(data, sizeof(data), &b.m);
    assert_false(plain(data, t6, &LIM, &h));
    b = s;
    b.m.sysflag = SHMQ_SYSFLAG_TX_PREPARED;
    assert_true(shmq_ring_encode(data, sizeof(data), &b.m) > 0);
    assert_false(plain(data, total, &LIM, &h));
    char longtopic[129];
    memset(longtopic, 'T', 128);
    longtopic[128] = '\0';
    b = s;
    b.m.topic = longtopic;
    b.m.topic_len = 128;
    lim = LIM;
    lim.max_topic_len = 255;
    uint64_t tl = (uint64_t)shmq_ring_encode(data, sizeof(data), &b.m);
    assert_true(tl > 0);
    assert_int_equal(shmq_ring_peek(data, RING, 0, tl, &lim, buf, sizeof(buf), &m, &adv),
                     SHMQ_RING_KIND_MSG);
    assert_false(plain(data, tl, &lim, &h)); /* a V2 record */
    /* An entry that runs past the wrap: contiguous bytes end before its end. */
    static uint8_t ring2[RING];
    memcpy(ring2 + RING - 128, orig, 128);
    assert_false(shmq_ring_peek_plain(ring2, RING, RING - 128, RING - 128 + total, &LIM, &h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_equal_every_length_and_byte),
        cmocka_unit_test(test_peek_plain_takes_only_what_peek_takes),
        cmocka_unit_test(test_entry_round_trip_keeps_every_field),
        cmocka_unit_test(test_entry_padding_is_zeroed_and_empty_body_allowed),
        cmocka_unit_test(test_encode_refuses_a_too_small_buffer),
        cmocka_unit_test(test_msg_to_in_gives_the_record_the_writer_appends),
        cmocka_unit_test(test_decode_plans_the_record_as_shmq_record_plan),
        cmocka_unit_test(test_bad_magic_is_fatal),
        cmocka_unit_test(test_unknown_kind_is_fatal),
        cmocka_unit_test(test_garbage_length_is_fatal),
        cmocka_unit_test(test_length_past_the_available_bytes_is_fatal),
        cmocka_unit_test(test_unknown_flags_are_refused),
        cmocka_unit_test(test_bad_batch_index_is_refused),
        cmocka_unit_test(test_slot_out_of_range_is_refused_unless_oneway),
        cmocka_unit_test(test_topic_length_past_the_entry_is_refused),
        cmocka_unit_test(test_properties_and_body_past_the_entry_are_refused),
        cmocka_unit_test(test_body_larger_than_max_message_size_is_refused),
        cmocka_unit_test(test_properties_too_big_are_refused),
        cmocka_unit_test(test_missing_uniq_key_is_refused),
        cmocka_unit_test(test_store_crc_property_from_a_producer_is_refused),
        cmocka_unit_test(test_queue_id_out_of_range_is_refused),
        cmocka_unit_test(test_bad_host_sysflag_and_topic_are_refused),
        cmocka_unit_test(test_every_ring_error_has_its_own_text),
        cmocka_unit_test(test_peek_returns_entries_in_order_then_empty),
        cmocka_unit_test(test_peek_copies_the_entry_out_of_the_ring),
        cmocka_unit_test(test_peek_body_in_ring_copies_all_but_the_body),
        cmocka_unit_test(test_decode_topic_memo_keeps_the_verdicts),
        cmocka_unit_test(test_entry_past_the_published_tail_is_fatal),
        cmocka_unit_test(test_skippable_error_advances_past_the_entry),
        cmocka_unit_test(test_peek_refusal_leaves_the_parts_empty_and_the_next_entry_whole),
        cmocka_unit_test(test_pad_fills_the_ring_end_and_entry_starts_at_zero),
        cmocka_unit_test(test_pad_of_eight_bytes_is_enough),
        cmocka_unit_test(test_partly_published_pad_is_fatal),
        cmocka_unit_test(test_ring_fills_to_capacity_then_waits_for_the_writer),
        cmocka_unit_test(test_entry_not_fitting_before_wrap_publishes_pad_and_waits),
        cmocka_unit_test(test_reserve_refuses_what_can_never_fit),
        cmocka_unit_test(test_store_host_comes_from_broker_ip1),
        cmocka_unit_test(test_store_host_may_be_ipv6),
        cmocka_unit_test(test_batch_is_taken_as_one_unit),
        cmocka_unit_test(test_batch_larger_than_the_array_asks_for_room),
        cmocka_unit_test(test_batch_broken_by_a_foreign_entry_ends_before_it),
        cmocka_unit_test(test_bad_entry_inside_a_batch_refuses_the_batch),
        cmocka_unit_test(test_partly_published_batch_or_lone_tail_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
