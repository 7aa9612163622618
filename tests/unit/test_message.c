/*
 * Unit tests of the CommitLog record codec (libshm/format/message.c): the §22a
 * vectors of ROCKETMQ-FACTS, golden records built byte by byte from the
 * format, V1/V2 and IPv6 layouts, every decode error, properties, Java
 * hashes, offset message ids and UNIQ_KEY generation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/crc.h>
#include <zlib.h>

#include "format/message.h"
#include "format/record_layout.h"

/* ---- helpers independent of the codec ------------------------------------ */

typedef struct bytes {
    uint8_t b[70000];
    size_t n;
} bytes_t;

static void be(bytes_t *o, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o->b[o->n++] = (uint8_t)(v >> (8 * i));
    }
}

static void raw(bytes_t *o, const void *p, size_t n)
{
    if (n == 0) {
        return; /* p may be NULL */
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static uint32_t masked_crc(const void *p, size_t n)
{
    return crc32_gzip_refl(0, (const unsigned char *)p, n) & 0x7FFFFFFFu;
}

/* __CRC32# digits: least significant first, '0'-padded to 10. */
static void digits_lsd_first(uint32_t v, char out[11])
{
    for (int i = 0; i < 10; i++) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    out[10] = '\0';
}

static shmq_host_t host4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, int32_t port)
{
    shmq_host_t h = {.addr = {a, b, c, d}, .is_v6 = 0, .port = port};
    return h;
}

static shmq_host_t host6(uint8_t last, int32_t port)
{
    shmq_host_t h = {.addr = {0x20, 0x01, 0x0d, 0xb8}, .is_v6 = 1, .port = port};
    h.addr[15] = last;
    return h;
}

static shmq_msg_in_t sample_msg(void)
{
    shmq_msg_in_t m = {
        .topic = "TopicTest",
        .topic_len = 9,
        .queue_id = 3,
        .flag = 7,
        .sysflag = 0,
        .born_ts = 1700000000000LL,
        .born_host = host4(10, 0, 0, 1, 50000),
        .store_host = host4(192, 168, 0, 10, 10911),
        .reconsume_times = 1,
        .prepared_tx_offset = 0,
        .body = "Hello RocketMQ",
        .body_len = 14,
        .props = "TAGS\001TagA\002KEYS\001KEY1\002",
        .props_len = 20,
    };
    return m;
}

/* The expected record of m, written field by field from ROCKETMQ-FACTS §1.2/§3.4. */
static void golden_record(const shmq_msg_in_t *m, int64_t qo, int64_t po, int64_t sts,
                          bool with_crc, bytes_t *o)
{
    bool v2 = m->topic_len > 127;
    bool sep = with_crc && m->props_len > 0 && m->props[m->props_len - 1] != 0x02;
    size_t props_len = m->props_len + (sep ? 1 : 0) + (with_crc ? 20 : 0);
    size_t bh = m->born_host.is_v6 ? 16 : 4, sh = m->store_host.is_v6 ? 16 : 4;
    size_t total = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + (bh + 4) + 8 + (sh + 4) + 4 + 8 + 4 +
                   m->body_len + (v2 ? 2 : 1) + m->topic_len + 2 + props_len;
    int32_t sysflag = m->sysflag & ~0x30;
    sysflag |= (m->born_host.is_v6 ? 0x10 : 0) | (m->store_host.is_v6 ? 0x20 : 0);

    o->n = 0;
    be(o, total, 4);
    be(o, v2 ? 0xDAA320ABu : 0xDAA320A7u, 4);
    be(o, masked_crc(m->body, m->body_len), 4);
    be(o, (uint32_t)m->queue_id, 4);
    be(o, (uint32_t)m->flag, 4);
    be(o, (uint64_t)qo, 8);
    be(o, (uint64_t)po, 8);
    be(o, (uint32_t)sysflag, 4);
    be(o, (uint64_t)m->born_ts, 8);
    raw(o, m->born_host.addr, bh);
    be(o, (uint32_t)m->born_host.port, 4);
    be(o, (uint64_t)sts, 8);
    raw(o, m->store_host.addr, sh);
    be(o, (uint32_t)m->store_host.port, 4);
    be(o, (uint32_t)m->reconsume_times, 4);
    be(o, (uint64_t)m->prepared_tx_offset, 8);
    be(o, m->body_len, 4);
    raw(o, m->body, m->body_len);
    be(o, m->topic_len, v2 ? 2 : 1);
    raw(o, m->topic, m->topic_len);
    be(o, props_len, 2);
    raw(o, m->props, m->props_len);
    if (sep) {
        be(o, 0x02, 1);
    }
    if (with_crc) {
        char d[11];
        digits_lsd_first(masked_crc(o->b, o->n), d);
        raw(o, "__CRC32#\001", 9);
        raw(o, d, 10);
        be(o, 0x02, 1);
    }
    assert_int_equal(o->n, total);
}

static int64_t encode(const shmq_msg_in_t *m, int64_t po, uint8_t *dst, size_t cap)
{
    return shmq_record_encode(m, 42, po, 1700000000123LL, dst, cap);
}

static uint8_t buf[70000];
static bytes_t gold;

/* ---- §22a vectors -------------------------------------------------------- */

static void test_crc32_of_hello_rocketmq_matches_vector(void **state)
{
    (void)state;
    assert_int_equal(shmq_crc32("Hello RocketMQ", 14), 0x69C865EDu);
    assert_int_equal(shmq_crc32_masked("Hello RocketMQ", 14), 1774740973);
    assert_int_equal(shmq_crc32_masked("", 0), 0);
    assert_int_equal(shmq_crc32("", 0), 0);
}

static void test_crc_digits_are_least_significant_first(void **state)
{
    (void)state;
    char d[11];
    digits_lsd_first(1774740973, d);
    assert_string_equal(d, "3790474771");
    digits_lsd_first(123, d);
    assert_string_equal(d, "3210000000");
}

static void test_tags_code_of_taga_matches_vector(void **state)
{
    (void)state;
    assert_int_equal(shmq_java_hash("TagA", 4), 2598919);
    assert_true(shmq_tags_code("TagA", 4) == 0x000000000027A807LL);
    assert_true(shmq_tags_code("", 0) == 0);
    assert_true(shmq_tags_code(NULL, 0) == 0);
}

static void test_index_key_hash_matches_vector(void **state)
{
    (void)state;
    assert_int_equal(shmq_java_hash("TopicTest#KEY1", 14), -1656969516);
    assert_true((uint64_t)shmq_tags_code("TopicTest#KEY1", 14) == 0xFFFFFFFF9D3CA6D4ULL);
    int32_t h = shmq_index_key_hash("TopicTest#KEY1", 14);
    assert_int_equal(h, 1656969516);
    assert_int_equal(h % 5000000, 1969516);
    assert_int_equal(40 + (int64_t)(h % 5000000) * 4, 7878104);
}

static void test_index_key_hash_of_int_min_is_zero(void **state)
{
    (void)state;
    /* A well-known string whose Java hashCode is Integer.MIN_VALUE. */
    assert_int_equal(shmq_java_hash("polygenelubricants", 18), INT32_MIN);
    assert_int_equal(shmq_index_key_hash("polygenelubricants", 18), 0);
}

static void test_record_size_formula_matches_vector(void **state)
{
    (void)state;
    /* §22a: body 14, topic 9, no properties, IPv4 hosts, V1 = 114 bytes. */
    assert_int_equal(SHMQ_RECORD_FIXED_V1 + 14 + 9 + 0, 114);
    shmq_msg_in_t m = sample_msg();
    m.props = NULL;
    m.props_len = 0;
    assert_int_equal(shmq_record_size(&m), 114 + SHMQ_CRC_PROP_LEN);
    m.props = "TAGS\001TagA\002";
    m.props_len = 10;
    assert_int_equal(shmq_record_size(&m), 114 + 10 + SHMQ_CRC_PROP_LEN);
    m.props_len = 9; /* without the trailing 0x02: one is inserted */
    assert_int_equal(shmq_record_size(&m), 114 + 10 + SHMQ_CRC_PROP_LEN);
}

/* ---- golden records and round trips -------------------------------------- */

static void test_encode_matches_golden_record_bytes(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 1000, buf, sizeof(buf));
    golden_record(&m, 42, 1000, 1700000000123LL, true, &gold);
    assert_int_equal(n, gold.n);
    assert_memory_equal(buf, gold.b, gold.n);
}

/* A record planned once and encoded from the plan is the golden record (V1, V2, IPv6,
 * properties with and without their closing 0x02). */
static void test_encode_plan_matches_golden_record_bytes(void **state)
{
    (void)state;
    static char long_topic[200];
    memset(long_topic, 'T', sizeof(long_topic));
    for (int v = 0; v < 4; v++) {
        shmq_msg_in_t m = sample_msg();
        if (v == 1) {
            m.topic = long_topic;
            m.topic_len = sizeof(long_topic);
        } else if (v == 2) {
            m.born_host = host6(7, 1234);
            m.store_host = host6(9, 10911);
        } else if (v == 3) {
            m.props = "TAGS\001TagA";
            m.props_len = 9;
        }
        shmq_record_plan_t pl;
        assert_int_equal(shmq_record_plan(&m, 0, &pl), 0);
        assert_int_equal(pl.total, shmq_record_size(&m));
        shmq_record_plan_t pl2;
        assert_int_equal(shmq_record_plan(&m, SHMQ_PLAN_PROPS_SCANNED, &pl2), 0);
        assert_memory_equal(&pl, &pl2, sizeof(pl));
        memset(buf, 0xEE, sizeof(buf));
        assert_int_equal(shmq_record_encode_plan(&m, &pl, 42, 1000, 1700000000123LL, buf),
                         pl.total);
        golden_record(&m, 42, 1000, 1700000000123LL, true, &gold);
        assert_int_equal(pl.total, gold.n);
        assert_memory_equal(buf, gold.b, gold.n);
        assert_int_equal(buf[gold.n], 0xEE); /* nothing past the record */
    }
}

/* shmq_crc32_combine() against one pass over A then B (ISA-L and zlib) at every length of B up
 * to 4,200, and against zlib's crc32_combine() at every hex digit of every position of a
 * 32-bit length (each entry of its table) and at random lengths. */
static void test_crc32_combine_matches_one_pass_and_zlib(void **state)
{
    (void)state;
    static uint8_t data[4400];
    srand(7);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)rand();
    }
    for (uint32_t la = 0; la < 200; la += 37) {
        uint32_t ca = shmq_crc32(data, la);
        for (uint32_t lb = 0; lb <= 4200; lb++) {
            uint32_t cb = shmq_crc32(data + la, lb);
            uint32_t one = shmq_crc32(data, (size_t)la + lb);
            assert_int_equal(shmq_crc32_combine(ca, cb, lb), one);
            assert_int_equal(one, (uint32_t)crc32(0, data, la + lb));
        }
    }
    for (unsigned pos = 0; pos < 8; pos++) {
        for (uint32_t d = 1; d < 16; d++) {
            uint32_t len = d << (4 * pos);
            uint32_t a = 0x9E3779B9u * (d + 16 * pos), b = 0x7F4A7C15u ^ len;
            assert_int_equal(shmq_crc32_combine(a, b, len),
                             (uint32_t)crc32_combine(a, b, (z_off_t)len));
        }
    }
    for (int i = 0; i < 20000; i++) {
        uint32_t len = (uint32_t)rand() ^ (uint32_t)rand() << 16;
        uint32_t a = (uint32_t)rand() * 2654435761u, b = (uint32_t)rand() << 3;
        assert_int_equal(shmq_crc32_combine(a, b, len),
                         (uint32_t)crc32_combine(a, b, (z_off_t)len));
    }
}

/* The record bytes at every body length from 0 to 3,000 (the record CRC in one pass below
 * SHMQ_CRC_COMBINE_MIN, combined from the body CRC at and above it), with IPv4 and IPv6
 * hosts, a V2 topic and no properties: the golden record, whose CRCs are one pass each. */
static void test_encode_at_every_body_length_matches_golden(void **state)
{
    (void)state;
    static char body[3001];
    static char long_topic[200];
    memset(long_topic, 'T', sizeof(long_topic));
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)(i * 131 + 17);
    }
    assert_true(SHMQ_CRC_COMBINE_MIN < 3000);
    for (int v = 0; v < 4; v++) {
        for (size_t len = 0; len <= 3000; len++) {
            shmq_msg_in_t m = sample_msg();
            m.body = len > 0 ? body : NULL;
            m.body_len = len;
            if (v == 1) {
                m.born_host = host6(7, 1234);
                m.store_host = host6(9, 10911);
            } else if (v == 2) {
                m.topic = long_topic;
                m.topic_len = sizeof(long_topic);
            } else if (v == 3) {
                m.props = NULL;
                m.props_len = 0;
            }
            memset(buf, 0xEE, len + 600);
            int64_t total = encode(&m, (int64_t)len * 977, buf, sizeof(buf));
            golden_record(&m, 42, (int64_t)len * 977, 1700000000123LL, true, &gold);
            assert_int_equal(total, gold.n);
            assert_memory_equal(buf, gold.b, gold.n);
            assert_int_equal(buf[gold.n], 0xEE);
        }
    }
}

typedef int64_t (*placed_encoder_t)(const shmq_msg_in_t *, const shmq_record_plan_t *, int64_t,
                                    int64_t, int64_t, uint8_t *);

/* m's record by a placed encoder (body, topic and properties copied to their places in the
 * record first) is the record shmq_record_encode_plan() writes, byte for byte, and nothing
 * past it is written. */
static void check_placed_as_planned(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                    int64_t queue_offset, placed_encoder_t encoder)
{
    static uint8_t placed[4096];
    int64_t phys = (int64_t)m->body_len * 977;
    memset(buf, 0xEE, m->body_len + 600);
    assert_int_equal(shmq_record_encode_plan(m, pl, queue_offset, phys, 1700000000123LL, buf),
                     pl->total);
    memset(placed, 0xEE, sizeof(placed));
    uint8_t *b = placed + SHMQ_RECORD_BODY_AT_V4;
    char *t = (char *)b + m->body_len + (pl->v2 ? 2 : 1);
    char *pr = t + m->topic_len + 2;
    if (m->body_len > 0) {
        memcpy(b, m->body, m->body_len);
    }
    memcpy(t, m->topic, m->topic_len);
    if (m->props_len > 0) {
        memcpy(pr, m->props, m->props_len);
    }
    shmq_msg_in_t in = *m;
    in.body = b;
    in.topic = t;
    in.props = pr;
    assert_int_equal(encoder(&in, pl, queue_offset, phys, 1700000000123LL, placed), pl->total);
    assert_memory_equal(placed, buf, (size_t)pl->total);
    assert_int_equal(placed[pl->total], 0xEE); /* nothing past the record */
}

/* A record whose body, topic and properties were put in place first (the writer's plain
 * path) is the record shmq_record_encode_plan() writes, byte for byte, at every body length
 * from 0 to 3,000 (both ways of the record CRC), IPv4 hosts, V1 and V2 topics, properties
 * with and without their closing 0x02, and none. */
static void test_encode_placed_matches_encode_plan(void **state)
{
    (void)state;
    static char body[3001];
    static char long_topic[200];
    memset(long_topic, 'T', sizeof(long_topic));
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)(i * 131 + 17);
    }
    for (int v = 0; v < 4; v++) {
        for (size_t len = 0; len <= 3000; len += (len < 300 ? 1 : 7)) {
            shmq_msg_in_t m = sample_msg();
            m.body = len > 0 ? body : NULL;
            m.body_len = len;
            if (v == 1) {
                m.topic = long_topic;
                m.topic_len = sizeof(long_topic);
            } else if (v == 2) {
                m.props = NULL;
                m.props_len = 0;
            } else if (v == 3) {
                m.props = "TAGS\001TagA";
                m.props_len = 9;
            }
            shmq_record_plan_t pl;
            assert_int_equal(shmq_record_plan(&m, 0, &pl), 0);
            check_placed_as_planned(&m, &pl, 42, shmq_record_encode_placed);
        }
    }
}

/* Every CRC value's ten digits, least significant first (the two-at-a-time writer). */
static void test_encode_crc_digits_for_edge_values(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    for (int64_t po = 0; po < 300; po++) {
        int64_t n = encode(&m, po, buf, sizeof(buf));
        assert_true(n > 0);
        char d[11];
        digits_lsd_first(masked_crc(buf, (size_t)n - 20), d);
        assert_memory_equal(buf + n - 11, d, 10);
    }
}

/* One pass finds UNIQ_KEY (the last valid one), a maybe-scheduling name, and refuses what
 * shmq_record_size() refuses. */
static void test_props_scan_finds_uniq_key_and_refuses_nul_and_crc(void **state)
{
    (void)state;
    shmq_props_info_t pi;
    const char p1[] = "UNIQ_KEY\001AAA\002TAGS\001x\002UNIQ_KEY\001BBBB\002UNIQ_KEY\001\002";
    assert_int_equal(shmq_props_scan(p1, sizeof(p1) - 1, &pi), 0);
    assert_non_null(pi.uniq_key);
    assert_int_equal(pi.uniq_key_len, 4);
    assert_memory_equal(pi.uniq_key, "BBBB", 4);
    assert_false(pi.sched);
    size_t vl = 0;
    assert_ptr_equal(shmq_props_get(p1, sizeof(p1) - 1, "UNIQ_KEY", &vl), pi.uniq_key);

    const char p2[] = "DELAY\0013\002UNIQ_KEY\001K";
    assert_int_equal(shmq_props_scan(p2, sizeof(p2) - 1, &pi), 0);
    assert_true(pi.sched);
    assert_int_equal(pi.uniq_key_len, 1);
    const char p3[] = "TIMER_DELAY_SEC\0015";
    assert_int_equal(shmq_props_scan(p3, sizeof(p3) - 1, &pi), 0);
    assert_true(pi.sched);
    assert_null(pi.uniq_key);
    const char p4[] = "TAG\001x\002DEL\001y\002TAGS\001"; /* short names, an empty value */
    assert_int_equal(shmq_props_scan(p4, sizeof(p4) - 1, &pi), 0);
    assert_false(pi.sched);

    const char bad1[] = "A\001b\002__CRC32#\0010000000000\002";
    assert_int_equal(shmq_props_scan(bad1, sizeof(bad1) - 1, &pi), SHMQ_E_PROPS);
    const char bad2[] = "A\001b\002__CRC32#";
    assert_int_equal(shmq_props_scan(bad2, sizeof(bad2) - 1, &pi), SHMQ_E_PROPS);
    const char bad3[] = "A\001b\000c\002";
    assert_int_equal(shmq_props_scan(bad3, sizeof(bad3) - 1, &pi), SHMQ_E_PROPS);
    const char ok1[] = "X\001__CRC32#\002__CRC32#X\001y"; /* a value, a longer name */
    assert_int_equal(shmq_props_scan(ok1, sizeof(ok1) - 1, &pi), 0);
    /* The same verdicts as the record codec's. */
    shmq_msg_in_t m = sample_msg();
    const char *cases[] = {p1, p2, bad1, bad2, bad3, ok1};
    size_t lens[] = {sizeof(p1) - 1,   sizeof(p2) - 1,   sizeof(bad1) - 1,
                     sizeof(bad2) - 1, sizeof(bad3) - 1, sizeof(ok1) - 1};
    for (size_t i = 0; i < 6; i++) {
        m.props = cases[i];
        m.props_len = lens[i];
        bool refused = shmq_record_size(&m) < 0;
        assert_int_equal(refused, shmq_props_scan(cases[i], lens[i], &pi) < 0);
    }
}

/* Random areas of every length around the 16-byte steps: the verdict, UNIQ_KEY and the
 * scheduling flag agree with the codec's own property walk (shmq_props_next). */
static void test_props_scan_agrees_with_props_next_on_random_areas(void **state)
{
    (void)state;
    static const char alphabet[] = "\001\002\002\001UNIQ_KEYDELAYT__CRC32#ab";
    static const char *const words[] = {"UNIQ_KEY\001", "__CRC32#",     "DELAY\001", "TAGS\001",
                                        "\002",         "__CRC32#\001", "x"};
    shmq_msg_in_t m = sample_msg();
    srand(7);
    for (int round = 0; round < 20000; round++) {
        char area[96];
        size_t len = (size_t)(rand() % 90);
        for (size_t j = 0; j < len;) {
            if (rand() % 3 == 0) {
                const char *w = words[rand() % 7];
                for (size_t q = 0; w[q] != '\0' && j < len; q++) {
                    area[j++] = w[q];
                }
            } else {
                area[j++] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
            }
        }
        bool nul = round % 50 == 0 && len > 0;
        if (nul) {
            area[rand() % (int)len] = '\0';
        }
        shmq_props_info_t pi;
        int rc = shmq_props_scan(area, len, &pi);
        m.props = area;
        m.props_len = len;
        assert_int_equal(rc < 0, shmq_record_size(&m) < 0);
        if (nul) {
            assert_int_equal(rc, SHMQ_E_PROPS);
            assert_non_null(strstr(shmq_error_detail(), "0x00")); /* before any __CRC32# */
            continue;
        }
        if (rc < 0) {
            continue;
        }
        size_t vl = 0;
        const char *uk = shmq_props_get(area, len, "UNIQ_KEY", &vl);
        assert_ptr_equal(pi.uniq_key, uk);
        if (uk != NULL) {
            assert_int_equal(pi.uniq_key_len, vl);
        }
        bool sched = false;
        size_t pos = 0, nl, vl2;
        const char *n, *v;
        while (shmq_props_next(area, len, &pos, &n, &nl, &v, &vl2)) {
            sched |= nl >= 5 && (n[0] == 'D' || n[0] == 'T') &&
                     !(nl == 8 && memcmp(n, "UNIQ_KEY", 8) == 0);
        }
        assert_int_equal(pi.sched, sched);
    }
}

/*
 * A properties area of the shapes the UNIQ_KEY scans are tried on: the
 * property with a value of vlen bytes (base + (j * 7) % span), then for shape
 * 1 its closing 0x02, for shape 2 that and a DELAY property, for 0 and 3
 * nothing.  Returns its length.
 */
static size_t uniq_area(char *area, size_t vlen, int shape, char base, int span)
{
    size_t len = 9;
    memcpy(area, "UNIQ_KEY\001", 9);
    for (size_t j = 0; j < vlen; j++) {
        area[len++] = (char)(base + (int)((j * 7) % (size_t)span));
    }
    if (shape == 1 || shape == 2) {
        area[len++] = '\002';
    }
    if (shape == 2) {
        memcpy(area + len, "DELAY\0013", 7);
        len += 7;
    }
    return len;
}

/* The fast path for an area that is one UNIQ_KEY property gives what the full scan gives:
 * values of every length up to 80, with and without a closing 0x02, with a 0x00, 0x01 or 0x02
 * at every place of the value, a damaged name, something after the property. */
static void test_props_scan_uniq_only_agrees_with_full_scan(void **state)
{
    (void)state;
    static const char odd[] = {'\000', '\001', '\002'};
    char area[128];
    size_t checked = 0;
    for (size_t vlen = 0; vlen <= 80; vlen++) {
        for (int shape = 0; shape < 4; shape++) {
            /* -1: the value intact; else one byte of it (or of the name: shape 3) changed */
            for (int at = -1; at < (int)vlen + 9; at++) {
                for (size_t o = 0; o < (at < 0 ? 1u : 3u); o++) {
                    size_t len = uniq_area(area, vlen, shape, 'A', 26);
                    if (at >= 9 && (size_t)at < 9 + vlen) {
                        area[at] = odd[o];
                    } else if (at >= 0 && at < 9 && shape == 3) {
                        area[at] = (char)(area[at] ^ (1 << o));
                    } else if (at >= 0) {
                        continue;
                    }
                    shmq_props_info_t fast, full;
                    memset(&fast, 0x5a, sizeof(fast));
                    memset(&full, 0xa5, sizeof(full));
                    int rc_fast = shmq_props_scan(area, len, &fast);
                    int rc_full = shmq_props_scan_general(area, len, &full);
                    assert_int_equal(rc_fast, rc_full);
                    if (rc_full == 0) {
                        assert_ptr_equal(fast.uniq_key, full.uniq_key);
                        assert_int_equal(fast.uniq_key_len, full.uniq_key_len);
                        assert_int_equal(fast.sched, full.sched);
                    }
                    checked++;
                }
            }
        }
    }
    assert_true(checked > 10000);
}

static void test_encode_without_properties_matches_golden(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.props = NULL;
    m.props_len = 0;
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    golden_record(&m, 42, 0, 1700000000123LL, true, &gold);
    assert_int_equal(n, 134);
    assert_memory_equal(buf, gold.b, gold.n);
    /* The properties area is exactly the tail. */
    assert_memory_equal(buf + 112, "\x00\x14__CRC32#\x01", 11);
}

static void test_decode_record_without_crc_property(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.props = NULL;
    m.props_len = 0;
    golden_record(&m, 42, 500, 99, false, &gold);
    assert_int_equal(gold.n, 114);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(gold.b, gold.n, 500, SHMQ_DECODE_CHECK_ALL, &r), 114);
    assert_false(r.has_record_crc);
    assert_int_equal(r.props_len, 0);
    assert_int_equal(shmq_record_decode(gold.b, gold.n, 500,
                                        SHMQ_DECODE_CHECK_ALL | SHMQ_DECODE_REQUIRE_RECORD_CRC, &r),
                     SHMQ_E_RECORD_CRC);
}

static void test_v1_round_trip_keeps_every_field(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.sysflag = SHMQ_SYSFLAG_TX_COMMIT | SHMQ_SYSFLAG_MULTI_TAGS;
    m.prepared_tx_offset = 123456789012LL;
    int64_t n = encode(&m, 4096, buf, sizeof(buf));
    assert_int_equal(n, SHMQ_RECORD_FIXED_V1 + 14 + 9 + 20 + 20);

    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, sizeof(buf), 4096, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.total_size, n);
    assert_int_equal(r.magic, SHMQ_MAGIC_V1);
    assert_int_equal(r.body_crc, 1774740973);
    assert_int_equal(r.queue_id, 3);
    assert_int_equal(r.flag, 7);
    assert_true(r.queue_offset == 42);
    assert_true(r.phys_offset == 4096);
    assert_int_equal(r.sysflag, SHMQ_SYSFLAG_TX_COMMIT | SHMQ_SYSFLAG_MULTI_TAGS);
    assert_true(r.born_ts == 1700000000000LL);
    assert_true(r.store_ts == 1700000000123LL);
    assert_memory_equal(r.born_host.addr, m.born_host.addr, 4);
    assert_int_equal(r.born_host.port, 50000);
    assert_false(r.born_host.is_v6);
    assert_memory_equal(r.store_host.addr, m.store_host.addr, 4);
    assert_int_equal(r.store_host.port, 10911);
    assert_int_equal(r.reconsume_times, 1);
    assert_true(r.prepared_tx_offset == 123456789012LL);
    assert_int_equal(r.body_len, 14);
    assert_memory_equal(r.body, "Hello RocketMQ", 14);
    assert_int_equal(r.topic_len, 9);
    assert_memory_equal(r.topic, "TopicTest", 9);
    assert_int_equal(r.props_len, 40);
    assert_memory_equal(r.props, m.props, 20);
    assert_true(r.has_record_crc);
    size_t vl;
    const char *v = shmq_props_get(r.props, r.props_len, "TAGS", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 4);
    assert_memory_equal(v, "TagA", 4);
}

static void test_topic_over_127_bytes_uses_v2(void **state)
{
    (void)state;
    char topic[256];
    memset(topic, 'T', sizeof(topic));
    shmq_msg_in_t m = sample_msg();
    m.topic = topic;

    m.topic_len = 127;
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    assert_int_equal(n, SHMQ_RECORD_FIXED_V1 + 14 + 127 + 40);
    assert_memory_equal(buf + 4, "\xDA\xA3\x20\xA7", 4);

    m.topic_len = 200;
    n = encode(&m, 0, buf, sizeof(buf));
    assert_int_equal(n, SHMQ_RECORD_FIXED_V1 + 1 + 14 + 200 + 40);
    golden_record(&m, 42, 0, 1700000000123LL, true, &gold);
    assert_memory_equal(buf, gold.b, gold.n);
    assert_memory_equal(buf + 4, "\xDA\xA3\x20\xAB", 4);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.magic, SHMQ_MAGIC_V2);
    assert_int_equal(r.topic_len, 200);
    assert_memory_equal(r.topic, topic, 200);
    assert_true(r.has_record_crc);

    m.topic_len = 255;
    assert_true(encode(&m, 0, buf, sizeof(buf)) > 0);
}

/* Every topic length: the record holds the topic's bytes exactly, nothing around them
 * touched (the golden record's bytes, byte for byte). */
static void test_every_topic_length_encodes_the_golden_bytes(void **state)
{
    (void)state;
    char topic[256];
    for (size_t i = 0; i < sizeof(topic); i++) {
        topic[i] = (char)('a' + i % 26);
    }
    shmq_msg_in_t m = sample_msg();
    m.topic = topic;
    for (uint32_t len = 1; len <= 255; len++) {
        m.topic_len = len;
        memset(buf, 0xEE, 1024);
        int64_t n = encode(&m, 0, buf, sizeof(buf));
        golden_record(&m, 42, 0, 1700000000123LL, true, &gold);
        assert_int_equal(n, gold.n);
        assert_memory_equal(buf, gold.b, gold.n);
        assert_int_equal(buf[n], 0xEE);
    }
}

static void test_topic_empty_or_over_255_is_rejected(void **state)
{
    (void)state;
    char topic[300];
    memset(topic, 'T', sizeof(topic));
    shmq_msg_in_t m = sample_msg();
    m.topic = topic;
    m.topic_len = 256;
    assert_int_equal(shmq_record_size(&m), SHMQ_E_TOPIC);
    assert_int_equal(encode(&m, 0, buf, sizeof(buf)), SHMQ_E_TOPIC);
    m.topic_len = 0;
    assert_int_equal(shmq_record_size(&m), SHMQ_E_TOPIC);
}

static void test_ipv6_hosts_add_12_bytes_each_and_set_sysflag(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t base = shmq_record_size(&m);
    shmq_record_t r;

    m.born_host = host6(0x11, 1234);
    int64_t n = encode(&m, 64, buf, sizeof(buf));
    assert_int_equal(n, base + 12);
    golden_record(&m, 42, 64, 1700000000123LL, true, &gold);
    assert_memory_equal(buf, gold.b, gold.n);
    assert_int_equal(shmq_record_decode(buf, n, 64, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.sysflag & 0x30, SHMQ_SYSFLAG_BORNHOST_V6);
    assert_true(r.born_host.is_v6);
    assert_memory_equal(r.born_host.addr, m.born_host.addr, 16);
    assert_int_equal(r.born_host.port, 1234);
    assert_true(r.store_ts == 1700000000123LL);

    m.store_host = host6(0x22, 5678);
    n = encode(&m, 64, buf, sizeof(buf));
    assert_int_equal(n, base + 24);
    golden_record(&m, 42, 64, 1700000000123LL, true, &gold);
    assert_memory_equal(buf, gold.b, gold.n);
    assert_int_equal(shmq_record_decode(buf, n, 64, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.sysflag & 0x30, 0x30);
    assert_true(r.store_host.is_v6);
    assert_memory_equal(r.store_host.addr, m.store_host.addr, 16);
    assert_int_equal(r.store_host.port, 5678);
    assert_memory_equal(r.body, "Hello RocketMQ", 14);

    m.born_host = host4(1, 2, 3, 4, 1);
    n = encode(&m, 64, buf, sizeof(buf));
    assert_int_equal(n, base + 12);
    assert_int_equal(shmq_record_decode(buf, n, 64, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.sysflag & 0x30, SHMQ_SYSFLAG_STOREHOST_V6);
}

/* What a reader straight from the layout sees equals the full decode, for every host mix and V2. */
static void test_layout_and_record_msgid_agree_with_decode(void **state)
{
    (void)state;
    char topic[200];
    memset(topic, 'T', sizeof(topic));
    for (int k = 0; k < 8; k++) {
        shmq_msg_in_t m = sample_msg();
        m.born_host = (k & 1) ? host6(0x11, 1234) : host4(1, 2, 3, 4, 1234);
        m.store_host = (k & 2) ? host6(0x22, 5678) : host4(5, 6, 7, 8, 5678);
        if (k & 4) {
            m.topic = topic; /* over 127 bytes: V2 */
            m.topic_len = sizeof(topic);
        }
        int64_t n = encode(&m, 4096, buf, sizeof(buf));
        assert_true(n > 0);
        shmq_record_t r;
        assert_int_equal(shmq_record_decode(buf, (size_t)n, 4096, SHMQ_DECODE_CHECK_ALL, &r), n);
        shmq_record_layout_t l;
        assert_int_equal(shmq_record_layout(buf, (size_t)n, &l), n);
        assert_int_equal(l.sysflag, r.sysflag);
        assert_int_equal(l.born_v6, r.born_host.is_v6);
        assert_int_equal(l.store_v6, r.store_host.is_v6);
        assert_true(buf + l.body_at == r.body && l.body_len == r.body_len);
        assert_true((const char *)buf + l.topic_at == r.topic && l.topic_len == r.topic_len);
        assert_true((const char *)buf + l.props_at == r.props && l.props_len == r.props_len);
        assert_int_equal((int64_t)shmq_get_be64(buf + l.store_at), r.store_ts);
        assert_int_equal((int32_t)shmq_get_be32(buf + l.recons_at), r.reconsume_times);
        char a[SHMQ_MSGID_MAX], b[SHMQ_MSGID_MAX];
        shmq_msgid_format(&r.store_host, r.phys_offset, a);
        shmq_record_msgid(buf, l.store_at, l.store_v6, b);
        assert_string_equal(a, b);
        assert_int_equal(shmq_record_verify(buf, &l, 4096, SHMQ_DECODE_VERIFY), 0);
        buf[n - 5] ^= 1; /* a digit of __CRC32#: both refuse it alike */
        assert_int_equal(shmq_record_decode(buf, (size_t)n, 4096, SHMQ_DECODE_VERIFY, &r),
                         SHMQ_E_RECORD_CRC);
        assert_int_equal(shmq_record_verify(buf, &l, 4096, SHMQ_DECODE_VERIFY), SHMQ_E_RECORD_CRC);
    }
}

/* Every value of every byte of the __CRC32# tail (and of the byte before it): the record
 * check of a consumer (shmq_record_verify) judges as decode does, under each set of flags. */
static void test_verify_agrees_with_decode_on_every_tail_byte(void **state)
{
    (void)state;
    static const unsigned flag_sets[] = {
        SHMQ_DECODE_VERIFY,
        SHMQ_DECODE_VERIFY | SHMQ_DECODE_REQUIRE_RECORD_CRC,
        SHMQ_DECODE_CHECK_RECORD_CRC,
        SHMQ_DECODE_REQUIRE_RECORD_CRC,
        SHMQ_DECODE_CHECK_BODY_CRC | SHMQ_DECODE_VERIFY,
        0,
    };
    for (int k = 0; k < 2; k++) {
        shmq_msg_in_t m = sample_msg();
        if (k == 1) {
            m.props = NULL; /* the tail alone: the byte before it is the length's */
            m.props_len = 0;
        }
        int64_t n = encode(&m, 4096, buf, sizeof(buf));
        assert_true(n > 0);
        shmq_record_layout_t l;
        assert_int_equal(shmq_record_layout(buf, (size_t)n, &l), n);
        int64_t end = (int64_t)l.props_at + l.props_len;
        int64_t from = end - SHMQ_CRC_PROP_LEN - (l.props_len > SHMQ_CRC_PROP_LEN ? 1 : 0);
        if (k == 1) {
            assert_int_equal(l.props_len, SHMQ_CRC_PROP_LEN);
        }
        for (int64_t at = from; at < end; at++) {
            uint8_t keep = buf[at];
            for (int v = 0; v < 256; v++) {
                buf[at] = (uint8_t)v;
                for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
                    shmq_record_t r;
                    int d = shmq_record_decode(buf, (size_t)n, 4096, flag_sets[f], &r);
                    int want = d < 0 ? d : 0;
                    if (shmq_record_verify(buf, &l, 4096, flag_sets[f]) != want) {
                        fail_msg("byte %lld = %d, flags %#x: verify and decode disagree",
                                 (long long)(at - from), v, flag_sets[f]);
                    }
                }
            }
            buf[at] = keep;
        }
    }
}

static void test_host_v6_sysflag_bits_are_cleared_for_ipv4_hosts(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.sysflag = 0x30 | SHMQ_SYSFLAG_COMPRESSED;
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.sysflag, SHMQ_SYSFLAG_COMPRESSED);
}

static void test_properties_without_trailing_separator_get_one(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.props_len = 19; /* drop the final 0x02 */
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    golden_record(&m, 42, 0, 1700000000123LL, true, &gold);
    assert_int_equal(n, gold.n);
    assert_memory_equal(buf, gold.b, gold.n);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.props_len, 19 + 1 + 20);
    assert_int_equal(r.props[19], 0x02);
    size_t vl;
    const char *v = shmq_props_get(r.props, r.props_len, "KEYS", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 4);
    assert_memory_equal(v, "KEY1", 4);
    assert_true(r.has_record_crc);
}

static void test_empty_body_round_trips(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.body = NULL;
    m.body_len = 0;
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    assert_int_equal(n, SHMQ_RECORD_FIXED_V1 + 9 + 40);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.body_crc, 0);
    assert_memory_equal(r.topic, "TopicTest", 9);
}

static void test_encode_into_small_buffer_is_truncated(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t size = shmq_record_size(&m);
    assert_int_equal(encode(&m, 0, buf, (size_t)size - 1), SHMQ_E_TRUNCATED);
    assert_int_equal(encode(&m, 0, buf, (size_t)size), size);
}

static void test_properties_holding_crc32_are_rejected(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    m.props = "A\001b\002__CRC32#\0011234567890\002";
    m.props_len = strlen(m.props);
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    assert_int_equal(encode(&m, 0, buf, sizeof(buf)), SHMQ_E_PROPS);
    m.props = "__CRC32#\001x";
    m.props_len = strlen(m.props);
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    m.props = "A\001b\002__CRC32#";
    m.props_len = strlen(m.props);
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    /* A longer name, or the same bytes inside a value, are not the CRC property. */
    m.props = "__CRC32#X\001y\002";
    m.props_len = strlen(m.props);
    assert_true(encode(&m, 0, buf, sizeof(buf)) > 0);
    m.props = "A\001x__CRC32#\002";
    m.props_len = strlen(m.props);
    assert_true(encode(&m, 0, buf, sizeof(buf)) > 0);
}

static void test_properties_over_32767_with_tail_are_rejected(void **state)
{
    (void)state;
    static char props[32800];
    memset(props, 'v', sizeof(props));
    memcpy(props, "K\001", 2);
    shmq_msg_in_t m = sample_msg();
    m.props = props;

    m.props_len = 32767 - 20;
    props[m.props_len - 1] = 0x02;
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    assert_true(n > 0);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
    assert_int_equal(r.props_len, 32767);
    assert_true(r.has_record_crc);

    props[m.props_len - 1] = 'v';
    m.props_len = 32767 - 20 + 1;
    props[m.props_len - 1] = 0x02;
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    /* No trailing 0x02: the inserted separator counts too. */
    m.props_len = 32767 - 20;
    props[m.props_len - 1] = 'v';
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    /* A 0x00 byte: readers take one for a zeroed sector (shmq_record_check_unverified). */
    m.props_len = 100;
    props[m.props_len - 1] = 0x02;
    props[40] = 0;
    assert_int_equal(shmq_record_size(&m), SHMQ_E_PROPS);
    assert_int_equal(encode(&m, 0, buf, sizeof(buf)), SHMQ_E_PROPS);
}

/* ---- blank records and decode errors ------------------------------------- */

static void test_blank_record_decodes_as_end_of_segment(void **state)
{
    (void)state;
    memset(buf, 0, 100);
    shmq_record_write_blank(buf, 100);
    assert_memory_equal(buf, "\x00\x00\x00\x64\xCB\xD4\x31\x94", 8);
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, 100, 0, SHMQ_DECODE_CHECK_ALL, &r), 0);
    assert_int_equal(r.total_size, 100);
    assert_int_equal(r.magic, SHMQ_MAGIC_BLANK);
    shmq_record_write_blank(buf, 8);
    assert_int_equal(shmq_record_decode(buf, 8, 0, 0, &r), 0);
    assert_int_equal(r.total_size, 8);
}

static void test_blank_record_length_out_of_range_is_size_error(void **state)
{
    (void)state;
    shmq_record_t r;
    shmq_record_write_blank(buf, 4);
    assert_int_equal(shmq_record_decode(buf, 100, 0, 0, &r), SHMQ_E_SIZE);
    shmq_record_write_blank(buf, 101);
    assert_int_equal(shmq_record_decode(buf, 100, 0, 0, &r), SHMQ_E_SIZE);
    shmq_record_write_blank(buf, -8);
    assert_int_equal(shmq_record_decode(buf, 100, 0, 0, &r), SHMQ_E_SIZE);
}

static void test_all_zero_region_is_magic_error_with_size_zero(void **state)
{
    (void)state;
    memset(buf, 0, 4096);
    shmq_record_t r;
    r.total_size = -1;
    assert_int_equal(shmq_record_decode(buf, 4096, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_MAGIC);
    assert_int_equal(r.total_size, 0);
}

static void test_flipped_body_byte_is_body_crc_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    buf[88] ^= 0x01; /* first body byte */
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_BODY_CRC);
    /* Without the body check the record CRC still catches it. */
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_RECORD_CRC, &r),
                     SHMQ_E_RECORD_CRC);
    assert_int_equal(shmq_record_decode(buf, n, 0, 0, &r), n);
}

static void test_flipped_header_byte_is_record_crc_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    const int offsets[] = {8, 12, 16, 20, 40, 48, 56, 64, 72, 76};
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        buf[offsets[i] + 3] ^= 0x40;
        unsigned flags = SHMQ_DECODE_CHECK_RECORD_CRC | SHMQ_DECODE_CHECK_PHYS;
        assert_int_equal(shmq_record_decode(buf, n, 0, flags, &r), SHMQ_E_RECORD_CRC);
        buf[offsets[i] + 3] ^= 0x40;
    }
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
}

static void test_bad_crc_digit_is_record_crc_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    uint8_t *digit = buf + n - 11;
    uint8_t saved = *digit;
    *digit = (uint8_t)(saved == '9' ? '0' : saved + 1);
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_RECORD_CRC);
    *digit = 'x';
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_RECORD_CRC);
    /* Not asked to check: decodes, the tail is still reported present. */
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_BODY_CRC, &r), n);
    assert_true(r.has_record_crc);
}

static void test_wrong_phys_offset_is_phys_offset_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 8192, buf, sizeof(buf));
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 8200, SHMQ_DECODE_CHECK_ALL, &r),
                     SHMQ_E_PHYS_OFFSET);
    assert_true(r.phys_offset == 8192);
    assert_int_equal(shmq_record_decode(buf, n, 8200, SHMQ_DECODE_CHECK_BODY_CRC, &r), n);
}

static void test_phys_offset_is_checked_before_body_crc(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 8192, buf, sizeof(buf));
    buf[90] ^= 0xFF;
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, n, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_PHYS_OFFSET);
    assert_int_equal(shmq_record_decode(buf, n, 8192, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_BODY_CRC);
}

static void test_truncated_record_is_truncated_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, (size_t)n - 1, 0, SHMQ_DECODE_CHECK_ALL, &r),
                     SHMQ_E_TRUNCATED);
    assert_int_equal(shmq_record_decode(buf, 60, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_TRUNCATED);
    assert_int_equal(shmq_record_decode(buf, 7, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_TRUNCATED);
    assert_int_equal(shmq_record_decode(buf, 0, 0, SHMQ_DECODE_CHECK_ALL, &r), SHMQ_E_TRUNCATED);
}

static void set_size_field(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_size_field_too_small_or_too_large_is_size_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    const uint32_t bad[] = {
        0,           8,           90,         (uint32_t)n - 1, (uint32_t)n + 1, (uint32_t)n + 1000,
        0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        set_size_field(buf, bad[i]);
        assert_int_equal(shmq_record_decode(buf, sizeof(buf), 0, SHMQ_DECODE_CHECK_ALL, &r),
                         SHMQ_E_SIZE);
        /* Also when the bad size points past the bytes available. */
        assert_int_equal(shmq_record_decode(buf, (size_t)n, 0, SHMQ_DECODE_CHECK_ALL, &r),
                         SHMQ_E_SIZE);
    }
}

static void test_bad_length_fields_are_size_errors(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    shmq_record_t r;
    const struct {
        size_t off;
        uint8_t val;
    } pokes[] = {
        {84, 0x80},      /* body length negative */
        {87, 15},        /* body length 15 instead of 14 */
        {88 + 14, 0x80}, /* V1 topic length byte read as signed: -128 */
        {88 + 14, 8},    /* topic length 8 instead of 9 */
        {88 + 24, 0x80}, /* properties length negative */
        {88 + 25, 41},   /* properties length 41 instead of 40 */
        {39, 0x10},      /* sysflag claims an IPv6 born host */
    };
    for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
        uint8_t saved = buf[pokes[i].off];
        buf[pokes[i].off] = pokes[i].val;
        assert_int_equal(shmq_record_decode(buf, (size_t)n, 0, SHMQ_DECODE_CHECK_ALL, &r),
                         SHMQ_E_SIZE);
        buf[pokes[i].off] = saved;
    }
    assert_int_equal(shmq_record_decode(buf, (size_t)n, 0, SHMQ_DECODE_CHECK_ALL, &r), n);
}

static void test_unknown_magic_is_magic_error(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    buf[7] ^= 0x01;
    shmq_record_t r;
    assert_int_equal(shmq_record_decode(buf, (size_t)n, 0, 0, &r), SHMQ_E_MAGIC);
}

static void test_consecutive_records_decode_in_sequence(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        m.queue_id = i;
        int64_t n = shmq_record_encode(&m, i, (int64_t)pos, 1000 + i, buf + pos, 1024 - pos);
        assert_true(n > 0);
        pos += (size_t)n;
    }
    shmq_record_write_blank(buf + pos, (int32_t)(1024 - pos));
    size_t at = 0;
    shmq_record_t r;
    for (int i = 0; i < 5; i++) {
        int rc = shmq_record_decode(buf + at, 1024 - at, (int64_t)at, SHMQ_DECODE_CHECK_ALL, &r);
        assert_true(rc > 0);
        assert_int_equal(r.queue_id, i);
        assert_true(r.queue_offset == i);
        at += (size_t)rc;
    }
    assert_int_equal(shmq_record_decode(buf + at, 1024 - at, (int64_t)at, 0, &r), 0);
    assert_int_equal(r.total_size, 1024 - at);
}

/* Random byte flips and cuts: decode never reads outside its input (ASan checks). */
static void test_decode_of_mutated_records_stays_in_bounds(void **state)
{
    (void)state;
    shmq_msg_in_t m = sample_msg();
    int64_t n = encode(&m, 0, buf, sizeof(buf));
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t avail = (seed >> 8) % (size_t)(n + 1);
        uint8_t *copy = malloc(avail ? avail : 1); /* exact size: ASan sees over-reads */
        assert_non_null(copy);
        memcpy(copy, buf, avail);
        for (int k = 0; k < 3 && avail > 0; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % avail] ^= (uint8_t)(1u << (seed & 7));
        }
        shmq_record_t r;
        int rc = shmq_record_decode(copy, avail, 0, SHMQ_DECODE_CHECK_ALL, &r);
        assert_true(rc <= (int64_t)avail);
        if (rc > 0) {
            assert_true(r.props + r.props_len == (const char *)copy + rc);
            assert_true(r.body >= copy && r.body + r.body_len <= copy + rc);
        }
        free(copy);
    }
}

/* ---- Java hash ----------------------------------------------------------- */

static void test_java_hash_of_equal_hash_strings(void **state)
{
    (void)state;
    assert_int_equal(shmq_java_hash("Aa", 2), 'A' * 31 + 'a');
    assert_int_equal(shmq_java_hash("Aa", 2), shmq_java_hash("BB", 2));
    assert_int_equal(shmq_java_hash("", 0), 0);
}

static void test_java_hash_of_cjk_uses_utf16_units(void **state)
{
    (void)state;
    /* "中文" = U+4E2D U+6587 (UTF-8 E4 B8 AD E6 96 87). */
    assert_int_equal(shmq_java_hash("\xE4\xB8\xAD\xE6\x96\x87", 6), 0x4E2D * 31 + 0x6587);
    assert_int_equal(shmq_java_hash("\xE4\xB8\xAD\xE6\x96\x87", 6), 646394);
    /* "é" = U+00E9 (2-byte UTF-8). */
    assert_int_equal(shmq_java_hash("\xC3\xA9", 2), 0xE9);
}

static void test_java_hash_of_emoji_uses_surrogate_pair(void **state)
{
    (void)state;
    /* U+1F600 = F0 9F 98 80 = surrogates D83D DE00. */
    assert_int_equal(shmq_java_hash("\xF0\x9F\x98\x80", 4), 0xD83D * 31 + 0xDE00);
    assert_int_equal(shmq_java_hash("\xF0\x9F\x98\x80", 4), 1772899);
    /* "a😀b" */
    int32_t want = (int32_t)((((uint32_t)'a' * 31 + 0xD83D) * 31 + 0xDE00) * 31 + 'b');
    assert_int_equal(shmq_java_hash("a\xF0\x9F\x98\x80"
                                    "b",
                                    6),
                     want);
}

static void test_java_hash_replaces_invalid_utf8_with_fffd(void **state)
{
    (void)state;
    int32_t want = (int32_t)(((uint32_t)'a' * 31 + 0xFFFD) * 31 + 'b');
    assert_int_equal(shmq_java_hash("a\xFF"
                                    "b",
                                    3),
                     want);
    assert_int_equal(shmq_java_hash("a\x80"
                                    "b",
                                    3),
                     want); /* lone continuation */
    assert_int_equal(shmq_java_hash("a\xE4\xB8"
                                    "b",
                                    4),
                     want); /* cut 3-byte sequence */
    assert_int_equal(shmq_java_hash("a\xED\xA0\x80"
                                    "b",
                                    5),
                     want); /* encoded surrogate */
    assert_int_equal(shmq_java_hash("a\xC0\x80", 3),
                     (int32_t)(((uint32_t)'a' * 31 + 0xFFFD) * 31 + 0xFFFD)); /* overlong */
    assert_int_equal(shmq_java_hash("\xE4\xB8", 2), 0xFFFD); /* unfinished at the end */
}

/* ---- properties ---------------------------------------------------------- */

static void test_props_get_last_occurrence_wins(void **state)
{
    (void)state;
    const char p[] = "TAGS\001a\002KEYS\001k\002TAGS\001b\002";
    size_t vl;
    const char *v = shmq_props_get(p, sizeof(p) - 1, "TAGS", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 1);
    assert_int_equal(v[0], 'b');
    assert_null(shmq_props_get(p, sizeof(p) - 1, "TAG", &vl));
    assert_null(shmq_props_get(p, sizeof(p) - 1, "NONE", &vl));
}

static void test_props_get_follows_rocketmq_ignore_rules(void **state)
{
    (void)state;
    /* Empty value, empty name, no separator, too short: all ignored. */
    const char p[] = "A\001\002\001x\002AB\002\002K\001v\001w\002L\001last";
    size_t len = sizeof(p) - 1, vl;
    assert_null(shmq_props_get(p, len, "A", &vl));
    assert_null(shmq_props_get(p, len, "AB", &vl));
    const char *v = shmq_props_get(p, len, "K", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 3); /* the value keeps a later 0x01 */
    assert_memory_equal(v, "v\001w", 3);
    v = shmq_props_get(p, len, "L", &vl); /* missing trailing 0x02 is tolerated */
    assert_non_null(v);
    assert_int_equal(vl, 4);
    assert_memory_equal(v, "last", 4);
    /* A later empty value does not erase an earlier one. */
    const char q[] = "T\001x\002T\001\002";
    v = shmq_props_get(q, sizeof(q) - 1, "T", &vl);
    assert_non_null(v);
    assert_int_equal(v[0], 'x');
}

static void test_props_next_yields_only_valid_pairs(void **state)
{
    (void)state;
    const char p[] = "A\001\002K1\001v1\002junk\002K2\001v2";
    size_t pos = 0, nl, vl, count = 0;
    const char *n, *v;
    while (shmq_props_next(p, sizeof(p) - 1, &pos, &n, &nl, &v, &vl)) {
        count++;
        assert_int_equal(nl, 2);
        assert_int_equal(n[0], 'K');
        assert_int_equal(n[1], (char)('0' + count));
        assert_int_equal(vl, 2);
        assert_int_equal(v[1], (char)('0' + count));
    }
    assert_int_equal(count, 2);
    assert_false(shmq_props_next(p, sizeof(p) - 1, &pos, &n, &nl, &v, &vl));
    pos = 0;
    assert_false(shmq_props_next("", 0, &pos, &n, &nl, &v, &vl));
}

static void test_props_append_builds_and_validates(void **state)
{
    (void)state;
    char p[64];
    size_t len = 0;
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "TAGS", "TagA", 4), 0);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "KEYS", "k1 k2", 5), 0);
    assert_int_equal(len, 21);
    assert_memory_equal(p, "TAGS\001TagA\002KEYS\001k1 k2\002", 21);

    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "", "x", 1), SHMQ_E_ARG);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "X", "", 0), SHMQ_E_ARG);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "A\001B", "x", 1), SHMQ_E_ARG);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "A", "x\002y", 3), SHMQ_E_ARG);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "A", "x\001y", 3), SHMQ_E_ARG);
    assert_int_equal(len, 21);

    char big[40];
    memset(big, 'v', sizeof(big));
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "BIG", big, 40), SHMQ_E_PROPS);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "BIG", big, 38), 0);
    assert_int_equal(len, 64);

    /* A buffer not ending with 0x02 gets one before the new pair. */
    memcpy(p, "A\001b", 3);
    len = 3;
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "C", "d", 1), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(p, "A\001b\002C\001d\002", 8);
}

static void test_props_append_keeps_room_for_crc_tail(void **state)
{
    (void)state;
    static char p[40000];
    static char val[40000];
    memset(val, 'v', sizeof(val));
    size_t len = 0;
    /* "K" 0x01 value 0x02 = value + 3 bytes; the limit is 32767 - 20. */
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "K", val, 32747 - 3 + 1), SHMQ_E_PROPS);
    assert_int_equal(shmq_props_append(p, sizeof(p), &len, "K", val, 32747 - 3), 0);
    assert_int_equal(len, 32747);
    shmq_msg_in_t m = sample_msg();
    m.props = p;
    m.props_len = len;
    assert_int_equal(shmq_record_size(&m), SHMQ_RECORD_FIXED_V1 + 14 + 9 + 32767);
}

/* ---- identifiers --------------------------------------------------------- */

static void test_msgid_format_and_parse_round_trip_ipv4(void **state)
{
    (void)state;
    shmq_host_t h = host4(192, 168, 0, 10, 10911), back;
    char id[SHMQ_MSGID_MAX];
    shmq_msgid_format(&h, 1073741824LL, id);
    assert_string_equal(id, "C0A8000A00002A9F0000000040000000");
    int64_t off = 0;
    assert_int_equal(shmq_msgid_parse(id, &back, &off), 0);
    assert_true(off == 1073741824LL);
    assert_false(back.is_v6);
    assert_memory_equal(back.addr, h.addr, 4);
    assert_int_equal(back.port, 10911);
    assert_int_equal(shmq_msgid_parse("c0a8000a00002a9f0000000040000000", &back, &off), 0);
    assert_true(off == 1073741824LL);
    assert_int_equal(back.port, 10911);
}

static void test_msgid_format_and_parse_round_trip_ipv6(void **state)
{
    (void)state;
    shmq_host_t h = host6(0xAB, 65535), back;
    char id[SHMQ_MSGID_MAX];
    shmq_msgid_format(&h, INT64_MAX, id);
    assert_int_equal(strlen(id), 56);
    /* address 2001:db8::ab (16 bytes), port 65535, offset INT64_MAX */
    assert_string_equal(id, "20010DB8"
                            "0000000000000000000000"
                            "AB"
                            "0000FFFF"
                            "7FFFFFFFFFFFFFFF");
    int64_t off = 0;
    assert_int_equal(shmq_msgid_parse(id, &back, &off), 0);
    assert_true(back.is_v6);
    assert_memory_equal(back.addr, h.addr, 16);
    assert_int_equal(back.port, 65535);
    assert_true(off == INT64_MAX);
}

static bool all_upper_hex(const char *s, size_t n);

/* The table-less formatter gives printf's text for every nibble value in every position. */
static void test_msgid_format_matches_printf_for_all_nibbles(void **state)
{
    (void)state;
    uint64_t x = 0x0123456789ABCDEFULL;
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        shmq_host_t h = host4((uint8_t)(x >> 56), (uint8_t)(x >> 48), (uint8_t)(x >> 40),
                              (uint8_t)(x >> 32), (int32_t)(uint32_t)(x >> 7));
        int64_t off = (int64_t)(x * 0x9E3779B97F4A7C15ULL);
        char id[SHMQ_MSGID_MAX], want[SHMQ_MSGID_MAX + 8];
        memset(id, 'x', sizeof(id));
        shmq_msgid_format(&h, off, id);
        snprintf(want, sizeof(want), "%02X%02X%02X%02X%08X%016llX", h.addr[0], h.addr[1], h.addr[2],
                 h.addr[3], (unsigned)h.port, (unsigned long long)off);
        assert_string_equal(id, want);
        int64_t back_off = 0;
        shmq_host_t back;
        assert_int_equal(shmq_msgid_parse(id, &back, &back_off), 0);
        assert_true(back_off == off);
        assert_int_equal(back.port, h.port);
    }
}

/* A key made at a given wall-clock time: its time field is ms since the month began. */
static void test_uniq_key_generate_at_encodes_the_given_time(void **state)
{
    (void)state;
    char a[SHMQ_UNIQ_KEY_MAX], b[SHMQ_UNIQ_KEY_MAX];
    int64_t now = 1700000000123LL;
    assert_int_equal(shmq_uniq_key_generate_at(a, now), SHMQ_UNIQ_KEY_LEN);
    assert_int_equal(shmq_uniq_key_generate_at(b, now + 4660), SHMQ_UNIQ_KEY_LEN);
    assert_int_equal(strlen(a), 32);
    assert_true(all_upper_hex(a, 32));
    assert_memory_equal(a, b, 20);
    char ta[9] = {0}, tb[9] = {0};
    memcpy(ta, a + 20, 8);
    memcpy(tb, b + 20, 8);
    assert_int_equal(strtoul(tb, NULL, 16) - strtoul(ta, NULL, 16), 4660);
}

/*
 * Keys made within one ms and across ms: each one's time and counter fields are
 * what snprintf makes of the ms in the month and of the counter (the time field
 * is reused within a ms, the counter turns through its byte boundaries).
 */
static void test_uniq_key_fields_match_printf_within_and_across_ms(void **state)
{
    (void)state;
    char k[SHMQ_UNIQ_KEY_MAX], first[SHMQ_UNIQ_KEY_MAX];
    int64_t now = 1700000000123LL;
    shmq_uniq_key_generate_at(first, now);
    char t0[9] = {0};
    memcpy(t0, first + 20, 8);
    unsigned long month_ms = strtoul(t0, NULL, 16);
    unsigned count = (unsigned)strtoul(first + 28, NULL, 16);
    for (int i = 1; i < 600; i++) {
        int64_t at = now + i / 7; /* several keys per ms */
        assert_int_equal(shmq_uniq_key_generate_at(k, at), SHMQ_UNIQ_KEY_LEN);
        char want[13];
        snprintf(want, sizeof(want), "%08lX%04X", month_ms + (unsigned long)(i / 7),
                 (count + (unsigned)i) & 0xFFFF);
        assert_memory_equal(k, first, 20);
        assert_string_equal(k + 20, want);
    }
}

static void test_msgid_parse_rejects_malformed_ids(void **state)
{
    (void)state;
    shmq_host_t h;
    int64_t off;
    assert_int_equal(shmq_msgid_parse("", &h, &off), SHMQ_E_MSGID);
    assert_int_equal(shmq_msgid_parse("C0A8000A00002A9F000000004000000", &h, &off),
                     SHMQ_E_MSGID); /* 31 */
    assert_int_equal(shmq_msgid_parse("C0A8000A00002A9F00000000400000000", &h, &off),
                     SHMQ_E_MSGID); /* 33 */
    assert_int_equal(shmq_msgid_parse("G0A8000A00002A9F0000000040000000", &h, &off), SHMQ_E_MSGID);
    assert_int_equal(shmq_msgid_parse("C0A8000A00002A9F000000004000000 ", &h, &off), SHMQ_E_MSGID);
    assert_int_equal(shmq_msgid_parse(NULL, &h, &off), SHMQ_E_MSGID);
    char long_id[80];
    memset(long_id, 'A', sizeof(long_id) - 1);
    long_id[79] = '\0';
    assert_int_equal(shmq_msgid_parse(long_id, &h, &off), SHMQ_E_MSGID);
}

static bool all_upper_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) {
            return false;
        }
    }
    return true;
}

static void test_uniq_key_is_32_upper_hex_and_unique(void **state)
{
    (void)state;
    char a[SHMQ_UNIQ_KEY_MAX], b[SHMQ_UNIQ_KEY_MAX];
    shmq_uniq_key_generate(a);
    shmq_uniq_key_generate(b);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strlen(b), 32);
    assert_true(all_upper_hex(a, 32));
    assert_true(all_upper_hex(b, 32));
    assert_string_not_equal(a, b);
    /* Same process prefix: ip, pid, random word. */
    assert_memory_equal(a, b, 20);
    /* Consecutive counter values in the last 2 bytes. */
    unsigned ca = (unsigned)strtoul(a + 28, NULL, 16), cb = (unsigned)strtoul(b + 28, NULL, 16);
    assert_int_equal((ca + 1) & 0xFFFF, cb);
}

static void test_uniq_key_prefix_holds_ip_and_pid(void **state)
{
    (void)state;
    shmq_host_t h;
    shmq_local_host(&h, 0);
    char want[13];
    snprintf(want, sizeof(want), "%02X%02X%02X%02X%04X", h.addr[0], h.addr[1], h.addr[2], h.addr[3],
             (unsigned)getpid() & 0xFFFF);
    char k[SHMQ_UNIQ_KEY_MAX];
    shmq_uniq_key_generate(k);
    assert_memory_equal(k, want, 12);
}

#define UNIQ_THREADS 4
#define UNIQ_PER     1000
static char uniq_keys[UNIQ_THREADS * UNIQ_PER][SHMQ_UNIQ_KEY_MAX];

static void *uniq_worker(void *arg)
{
    size_t base = (size_t)(uintptr_t)arg * UNIQ_PER;
    for (size_t i = 0; i < UNIQ_PER; i++) {
        shmq_uniq_key_generate(uniq_keys[base + i]);
    }
    return NULL;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uniq_keys_from_threads_are_distinct(void **state)
{
    (void)state;
    pthread_t t[UNIQ_THREADS];
    for (uintptr_t i = 0; i < UNIQ_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, uniq_worker, (void *)i), 0);
    }
    for (int i = 0; i < UNIQ_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    qsort(uniq_keys, UNIQ_THREADS * UNIQ_PER, SHMQ_UNIQ_KEY_MAX, cmp_key);
    for (size_t i = 1; i < UNIQ_THREADS * UNIQ_PER; i++) {
        assert_string_not_equal(uniq_keys[i - 1], uniq_keys[i]);
    }
}

static void test_local_host_is_ipv4_with_port(void **state)
{
    (void)state;
    shmq_host_t h;
    shmq_local_host(&h, 10911);
    assert_false(h.is_v6);
    assert_int_equal(h.port, 10911);
    assert_true(h.addr[0] != 0);
    for (int i = 4; i < 16; i++) {
        assert_int_equal(h.addr[i], 0);
    }
}

/* shmq_props_copy_scan() (the writer's copy of a producer's properties, checked in the
 * registers it goes through when the area is the usual single UNIQ_KEY) against a copy and the
 * full scan of it: the same bytes copied, the same answer on good areas and on every byte of
 * the name and the value set to 0x00, 0x01, 0x02 or another value.  The source is a buffer of
 * exactly the area's length (the sanitizer build sees any read past it). */
static void test_props_copy_scan_agrees_with_copy_and_full_scan(void **state)
{
    (void)state;
    static const char odd[] = {'\000', '\001', '\002', 'z'};
    char area[128];
    size_t checked = 0, fast_refused = 0;
    for (size_t vlen = 0; vlen <= 60; vlen++) {
        for (int shape = 0; shape < 4; shape++) {
            for (int at = -1; at < (int)vlen + 10; at++) {
                for (size_t o = 0; o < (at < 0 ? 1u : 4u); o++) {
                    size_t len = uniq_area(area, vlen, shape, '0', 40);
                    if (at >= 0 && (size_t)at >= len) {
                        continue;
                    }
                    if (at >= 0) {
                        area[at] = shape == 3 && at < 9 ? (char)(area[at] ^ (1 << o)) : odd[o];
                    }
                    char *src = malloc(len ? len : 1);
                    assert_non_null(src);
                    memcpy(src, area, len);
                    char dst[160], copy[160];
                    memset(dst, 0x33, sizeof(dst));
                    memcpy(copy, area, len);
                    shmq_props_info_t fast, full;
                    memset(&fast, 0x5a, sizeof(fast));
                    memset(&full, 0xa5, sizeof(full));
                    int rc_fast = shmq_props_copy_scan(dst, src, len, &fast);
                    int rc_full = shmq_props_scan_general(copy, len, &full);
                    free(src);
                    assert_memory_equal(dst, area, len);
                    assert_int_equal((unsigned char)dst[len], 0x33); /* nothing past the area */
                    assert_int_equal(rc_fast, rc_full);
                    if (rc_full == 0) {
                        assert_true((full.uniq_key == NULL) == (fast.uniq_key == NULL));
                        if (full.uniq_key != NULL) {
                            assert_int_equal(fast.uniq_key - dst, full.uniq_key - copy);
                            assert_int_equal(fast.uniq_key_len, full.uniq_key_len);
                        }
                        assert_int_equal(fast.sched, full.sched);
                    } else if (len >= 25 && len <= 48) {
                        fast_refused++;
                    }
                    checked++;
                }
            }
        }
    }
    assert_true(checked > 10000);
    assert_true(fast_refused > 1000); /* the fast lengths met bad bytes, each refused */
}

/* The checks the fast case of shmq_props_copy_scan() makes, each needed: a usual area of 41
 * bytes (a 32-byte key, as a plain send carries) with one of the bytes it checks made bad is
 * refused, and the same area intact is taken with the key where the copy holds it. */
static void test_props_copy_scan_fast_case_refuses_each_bad_byte(void **state)
{
    (void)state;
    char area[42], dst[64];
    memcpy(area, "UNIQ_KEY\001", 9);
    for (size_t j = 0; j < 32; j++) {
        area[9 + j] = (char)('A' + j % 16);
    }
    for (int with_sep = 0; with_sep < 2; with_sep++) {
        size_t len = 41 + (size_t)with_sep;
        area[41] = '\002';
        shmq_props_info_t pi;
        assert_int_equal(shmq_props_copy_scan(dst, area, len, &pi), 0);
        assert_ptr_equal(pi.uniq_key, dst + 9);
        assert_int_equal(pi.uniq_key_len, 32);
        assert_false(pi.sched);
        for (size_t at = 9; at < 41; at++) {
            char keep = area[at];
            area[at] = '\000';
            assert_int_equal(shmq_props_copy_scan(dst, area, len, &pi), SHMQ_E_PROPS);
            area[at] = '\002'; /* the value ends there: a shorter key, if any */
            memset(&pi, 0, sizeof(pi));
            assert_int_equal(shmq_props_copy_scan(dst, area, len, &pi), 0);
            assert_true(pi.uniq_key == NULL || pi.uniq_key_len == at - 9);
            area[at] = keep;
        }
        for (size_t at = 0; at < 8; at++) {
            char keep = area[at];
            area[at] = 'x'; /* another property's name: no UNIQ_KEY */
            memset(&pi, 0, sizeof(pi));
            assert_int_equal(shmq_props_copy_scan(dst, area, len, &pi), 0);
            assert_null(pi.uniq_key);
            area[at] = keep;
        }
    }
}

/* shmq_record_encode_placed_v1() (the writer's plain path: a V1 record with IPv4 hosts,
 * neither looked at) writes the record shmq_record_encode_plan() writes, byte for byte, at every
 * body length from 0 to 3,000 (both ways of the record CRC), with topics of 1, 9 and 127
 * bytes, properties with and without their closing 0x02 and none, and a sysflag whose host
 * bits are set (the encoders clear them for IPv4 hosts). */
static void test_encode_placed_v1_matches_encode_plan(void **state)
{
    (void)state;
    static char body[3001];
    static char topic127[127];
    memset(topic127, 'q', sizeof(topic127));
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)(i * 37 + 5);
    }
    for (int v = 0; v < 5; v++) {
        for (size_t len = 0; len <= 3000; len += (len < 300 ? 1 : 7)) {
            shmq_msg_in_t m = sample_msg();
            m.body = len > 0 ? body : NULL;
            m.body_len = len;
            m.queue_id = (int32_t)(len % 70000);
            m.flag = (int32_t)(len * 2654435761u);
            m.born_ts = 1700000000000LL + (int64_t)len;
            m.prepared_tx_offset = (int64_t)len << 20;
            if (v == 1) {
                m.topic = topic127;
                m.topic_len = sizeof(topic127);
                m.sysflag = SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6 | 1;
            } else if (v == 2) {
                m.props = NULL;
                m.props_len = 0;
                m.topic = "T";
                m.topic_len = 1;
            } else if (v == 3) {
                m.props = "UNIQ_KEY\00101234567890ABCDEF01234567890ABCDEF";
                m.props_len = 41;
            } else if (v == 4) {
                m.props = "UNIQ_KEY\00101234567890ABCDEF01234567890ABCDEF\002";
                m.props_len = 42;
                m.sysflag = SHMQ_SYSFLAG_STOREHOST_V6;
            }
            shmq_record_plan_t pl;
            assert_int_equal(shmq_record_plan(&m, 0, &pl), 0);
            assert_false(pl.v2);
            check_placed_as_planned(&m, &pl, 42 + (int64_t)len, shmq_record_encode_placed_v1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_of_hello_rocketmq_matches_vector),
        cmocka_unit_test(test_crc_digits_are_least_significant_first),
        cmocka_unit_test(test_tags_code_of_taga_matches_vector),
        cmocka_unit_test(test_index_key_hash_matches_vector),
        cmocka_unit_test(test_index_key_hash_of_int_min_is_zero),
        cmocka_unit_test(test_record_size_formula_matches_vector),
        cmocka_unit_test(test_encode_matches_golden_record_bytes),
        cmocka_unit_test(test_encode_without_properties_matches_golden),
        cmocka_unit_test(test_decode_record_without_crc_property),
        cmocka_unit_test(test_v1_round_trip_keeps_every_field),
        cmocka_unit_test(test_topic_over_127_bytes_uses_v2),
        cmocka_unit_test(test_every_topic_length_encodes_the_golden_bytes),
        cmocka_unit_test(test_topic_empty_or_over_255_is_rejected),
        cmocka_unit_test(test_ipv6_hosts_add_12_bytes_each_and_set_sysflag),
        cmocka_unit_test(test_layout_and_record_msgid_agree_with_decode),
        cmocka_unit_test(test_verify_agrees_with_decode_on_every_tail_byte),
        cmocka_unit_test(test_host_v6_sysflag_bits_are_cleared_for_ipv4_hosts),
        cmocka_unit_test(test_properties_without_trailing_separator_get_one),
        cmocka_unit_test(test_empty_body_round_trips),
        cmocka_unit_test(test_encode_into_small_buffer_is_truncated),
        cmocka_unit_test(test_properties_holding_crc32_are_rejected),
        cmocka_unit_test(test_properties_over_32767_with_tail_are_rejected),
        cmocka_unit_test(test_blank_record_decodes_as_end_of_segment),
        cmocka_unit_test(test_blank_record_length_out_of_range_is_size_error),
        cmocka_unit_test(test_all_zero_region_is_magic_error_with_size_zero),
        cmocka_unit_test(test_flipped_body_byte_is_body_crc_error),
        cmocka_unit_test(test_flipped_header_byte_is_record_crc_error),
        cmocka_unit_test(test_bad_crc_digit_is_record_crc_error),
        cmocka_unit_test(test_wrong_phys_offset_is_phys_offset_error),
        cmocka_unit_test(test_phys_offset_is_checked_before_body_crc),
        cmocka_unit_test(test_truncated_record_is_truncated_error),
        cmocka_unit_test(test_size_field_too_small_or_too_large_is_size_error),
        cmocka_unit_test(test_bad_length_fields_are_size_errors),
        cmocka_unit_test(test_unknown_magic_is_magic_error),
        cmocka_unit_test(test_consecutive_records_decode_in_sequence),
        cmocka_unit_test(test_decode_of_mutated_records_stays_in_bounds),
        cmocka_unit_test(test_java_hash_of_equal_hash_strings),
        cmocka_unit_test(test_java_hash_of_cjk_uses_utf16_units),
        cmocka_unit_test(test_java_hash_of_emoji_uses_surrogate_pair),
        cmocka_unit_test(test_java_hash_replaces_invalid_utf8_with_fffd),
        cmocka_unit_test(test_props_get_last_occurrence_wins),
        cmocka_unit_test(test_props_get_follows_rocketmq_ignore_rules),
        cmocka_unit_test(test_props_next_yields_only_valid_pairs),
        cmocka_unit_test(test_props_append_builds_and_validates),
        cmocka_unit_test(test_props_append_keeps_room_for_crc_tail),
        cmocka_unit_test(test_msgid_format_and_parse_round_trip_ipv4),
        cmocka_unit_test(test_msgid_format_and_parse_round_trip_ipv6),
        cmocka_unit_test(test_msgid_parse_rejects_malformed_ids),
        cmocka_unit_test(test_msgid_format_matches_printf_for_all_nibbles),
        cmocka_unit_test(test_uniq_key_generate_at_encodes_the_given_time),
        cmocka_unit_test(test_uniq_key_fields_match_printf_within_and_across_ms),
        cmocka_unit_test(test_uniq_key_is_32_upper_hex_and_unique),
        cmocka_unit_test(test_uniq_key_prefix_holds_ip_and_pid),
        cmocka_unit_test(test_uniq_keys_from_threads_are_distinct),
        cmocka_unit_test(test_local_host_is_ipv4_with_port),
        cmocka_unit_test(test_encode_plan_matches_golden_record_bytes),
        cmocka_unit_test(test_encode_placed_matches_encode_plan),
        cmocka_unit_test(test_crc32_combine_matches_one_pass_and_zlib),
        cmocka_unit_test(test_encode_at_every_body_length_matches_golden),
        cmocka_unit_test(test_encode_crc_digits_for_edge_values),
        cmocka_unit_test(test_props_scan_finds_uniq_key_and_refuses_nul_and_crc),
        cmocka_unit_test(test_props_scan_agrees_with_props_next_on_random_areas),
        cmocka_unit_test(test_props_scan_uniq_only_agrees_with_full_scan),
        cmocka_unit_test(test_props_copy_scan_agrees_with_copy_and_full_scan),
        cmocka_unit_test(test_props_copy_scan_fast_case_refuses_each_bad_byte),
        cmocka_unit_test(test_encode_placed_v1_matches_encode_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
