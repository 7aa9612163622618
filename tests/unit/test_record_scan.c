/*
 * Unit tests for record_scan.c, the light record reads of the store's
 * workers: the head decode agrees with shmq_record_decode() on every field
 * it fills and on every error (damaged and cut records), the one-pass
 * property scan finds what shmq_props_get() finds, and the index key hash
 * equals Java's hashCode of "topic#key" (RocketMQ's IndexFile) for ASCII
 * and non-ASCII keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/message.h"
#include "format/record_scan.h"

static uint32_t rng = 12345;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int64_t encode_hosts(uint8_t *buf, size_t cap, const char *topic, bool v6, bool store_v6,
                            const char *props, size_t body_len, int64_t phys);

/* A record of topic: BORNHOST IPv6 when v6, STOREHOST the other kind. */
static int64_t encode(uint8_t *buf, size_t cap, const char *topic, bool v6, const char *props,
                      size_t body_len, int64_t phys)
{
    return encode_hosts(buf, cap, topic, v6, !v6, props, body_len, phys);
}

static int64_t encode_hosts(uint8_t *buf, size_t cap, const char *topic, bool v6, bool store_v6,
                            const char *props, size_t body_len, int64_t phys)
{
    static uint8_t body[512];
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)(i * 7 + 3);
    }
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = 3;
    m.sysflag = 0;
    m.born_ts = 1700000000123;
    m.born_host.is_v6 = v6;
    m.born_host.addr[0] = 10;
    m.born_host.port = 4444;
    m.store_host.is_v6 = store_v6;
    m.store_host.addr[0] = 11;
    m.store_host.port = 10911;
    m.body = body;
    m.body_len = body_len;
    m.props = props;
    m.props_len = strlen(props);
    return shmq_record_encode(&m, 77, phys, 1700000000999, buf, cap);
}

static void assert_head_matches(const shmq_record_head_t *h, const shmq_record_t *r)
{
    assert_int_equal(h->total_size, r->total_size);
    assert_int_equal(h->magic, r->magic);
    assert_int_equal(h->queue_id, r->queue_id);
    assert_int_equal(h->sysflag, r->sysflag);
    assert_int_equal(h->queue_offset, r->queue_offset);
    assert_int_equal(h->phys_offset, r->phys_offset);
    assert_int_equal(h->store_ts, r->store_ts);
    assert_ptr_equal(h->topic, r->topic);
    assert_int_equal(h->topic_len, r->topic_len);
    assert_ptr_equal(h->props, r->props);
    assert_int_equal(h->props_len, r->props_len);
}

static void test_head_decode_reads_what_the_full_decode_reads(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    char long_topic[200];
    memset(long_topic, 'T', sizeof(long_topic) - 1);
    long_topic[sizeof(long_topic) - 1] = '\0';
    const char *topics[] = {"TopicTest", long_topic};
    for (int t = 0; t < 2; t++) {
        for (int v6 = 0; v6 < 2; v6++) {
            int64_t len = encode(buf, sizeof(buf), topics[t], v6, "KEYS\001a b\002", 100, 4242);
            assert_true(len > 0);
            shmq_record_t r;
            shmq_record_head_t h;
            assert_int_equal(shmq_record_decode(buf, (size_t)len, 4242, SHMQ_DECODE_CHECK_PHYS, &r),
                             len);
            assert_int_equal(
                shmq_record_head_decode(buf, (size_t)len, 4242, SHMQ_DECODE_CHECK_PHYS, &h), len);
            assert_head_matches(&h, &r);
            assert_int_equal(h.store_ts, 1700000000999);
            assert_int_equal(h.queue_offset, 77);
        }
    }
    /* A blank record. */
    shmq_record_write_blank(buf, 64);
    shmq_record_head_t h;
    assert_int_equal(shmq_record_head_decode(buf, 64, 0, SHMQ_DECODE_CHECK_PHYS, &h), 0);
    assert_int_equal(h.total_size, 64);
    assert_int_equal(h.magic, SHMQ_MAGIC_BLANK);
    assert_int_equal(shmq_record_head_decode(buf, 63, 0, 0, &h), SHMQ_E_SIZE);
    /* Flags it does not implement are refused, not ignored. */
    assert_int_equal(shmq_record_head_decode(buf, 64, 0, SHMQ_DECODE_CHECK_BODY_CRC, &h),
                     SHMQ_E_ARG);
}

/* The layout's shortcut for a V1 record with IPv4 hosts against the walk it bypasses: damaged
 * lengths (the body's, the topic's, the properties', TOTALSIZE), cut records, avail beyond
 * the record; the same result, and the same layout when it succeeds. */
static void test_layout_shortcut_equals_the_walk(void **state)
{
    (void)state;
    static uint8_t orig[4096], buf[4096];
    static const size_t fields[] = {0, 1, 2, 3, 84, 85, 86, 87};
    int ok = 0;
    for (int round = 0; round < 20000; round++) {
        int64_t len = encode_hosts(orig, sizeof(orig), "TopicTest", false, false,
                                   "UNIQ_KEY\001abc\002", next_rand() % 300, 1000);
        assert_true(len > 0);
        memset(buf, 0, sizeof(buf));
        memcpy(buf, orig, (size_t)len);
        int changes = (int)(next_rand() % 3);
        for (int c = 0; c < changes; c++) {
            size_t body_len = shmq_get_be32(orig + 84);
            size_t at = next_rand() % 4 == 0 ? fields[next_rand() % 8]
                        : next_rand() % 2    ? 88 + body_len + next_rand() % 12 /* topic, props */
                                             : next_rand() % (size_t)len;
            unsigned k = next_rand() % 4;
            buf[at] = k == 0   ? (uint8_t)next_rand()
                      : k == 1 ? (uint8_t)(buf[at] ^ 0x80)
                               : (uint8_t)(buf[at] + (k == 2 ? 1 : -1));
        }
        size_t avail =
            (next_rand() % 3) ? (size_t)len + next_rand() % 30 : next_rand() % ((size_t)len + 40);
        int64_t total = (int32_t)shmq_get_be32(buf);
        shmq_record_layout_t a, b;
        memset(&a, 0x5A, sizeof(a));
        memset(&b, 0x5A, sizeof(b));
        int ra = shmq_record_layout(buf, avail, &a);
        if (avail < 40 || (int32_t)shmq_get_be32(buf + 4) != SHMQ_MAGIC_V1 ||
            (shmq_get_be32(buf + 36) & (SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6))) {
            continue; /* not the shortcut's */
        }
        shmq_error_clear();
        int rb = shmq_record_layout_walk(buf, avail, total, 0, true, &b);
        assert_int_equal(ra, rb);
        if (ra > 0) {
            ok++;
            assert_int_equal(a.sysflag, b.sysflag);
            assert_int_equal(a.v2, b.v2);
            assert_int_equal(a.born_v6, b.born_v6);
            assert_int_equal(a.store_v6, b.store_v6);
            assert_int_equal(a.store_at, b.store_at);
            assert_int_equal(a.recons_at, b.recons_at);
            assert_int_equal(a.body_at, b.body_at);
            assert_int_equal(a.body_len, b.body_len);
            assert_int_equal(a.topic_at, b.topic_at);
            assert_int_equal(a.topic_len, b.topic_len);
            assert_int_equal(a.props_at, b.props_at);
            assert_int_equal(a.props_len, b.props_len);
        }
    }
    assert_true(ok > 3000);
}

/* Damaged and cut records: the same answer as the full decode, for each byte changed. */
static void test_head_decode_fails_as_the_full_decode_fails(void **state)
{
    (void)state;
    static uint8_t orig[4096], buf[4096];
    for (int round = 0; round < 4000; round++) {
        bool v6 = round & 1;
        const char *topic = (round & 2) ? "TopicTest" : "SCHEDULE_TOPIC_XXXX";
        int64_t len = encode(orig, sizeof(orig), topic, v6, "TAGS\001x\002UNIQ_KEY\001abc\002",
                             next_rand() % 200, 1000);
        assert_true(len > 0);
        memcpy(buf, orig, (size_t)len);
        int changes = 1 + (int)(next_rand() % 3);
        for (int c = 0; c < changes; c++) {
            /* Mostly the header and the length fields, sometimes anywhere. */
            size_t at = (next_rand() % 4) ? next_rand() % 120 : next_rand() % (size_t)len;
            buf[at] = (next_rand() % 2) ? (uint8_t)next_rand() : (uint8_t)(buf[at] ^ 0x80);
        }
        size_t avail = (next_rand() % 3) ? (size_t)len : next_rand() % ((size_t)len + 40);
        unsigned flags = (round & 4) ? SHMQ_DECODE_CHECK_PHYS : 0;
        int64_t expect = (round & 8) ? 1000 : 999;
        shmq_record_t r;
        shmq_record_head_t h;
        int a = shmq_record_decode(buf, avail, expect, flags, &r);
        int b = shmq_record_head_decode(buf, avail, expect, flags, &h);
        assert_int_equal(a, b);
        if (a > 0) {
            assert_head_matches(&h, &r);
        } else {
            assert_int_equal(h.total_size, r.total_size);
        }
    }
}

/* Every name shmq_record_props_scan looks for, and the value props_get finds. */
static void check_scan(const char *p, size_t len)
{
    shmq_record_props_t pr;
    shmq_record_props_scan(p, len, &pr);
    struct {
        const char *name;
        const char *v;
        uint32_t vl;
    } want[] = {
        {SHMQ_PROP_TAGS, pr.tags, pr.tags_len},
        {SHMQ_PROP_KEYS, pr.keys, pr.keys_len},
        {SHMQ_PROP_UNIQ_KEY, pr.uniq_key, pr.uniq_key_len},
        {SHMQ_PROP_DELAY, pr.delay, pr.delay_len},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t vl = 0;
        const char *v = shmq_props_get(p, len, want[i].name, &vl);
        assert_ptr_equal(want[i].v, v);
        if (v) {
            assert_int_equal(want[i].vl, vl);
        } else {
            assert_int_equal(want[i].vl, 0);
        }
    }
}

static void test_props_scan_finds_what_props_get_finds(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "",
        "TAGS\001tagA\002",
        "KEYS\001k1 k2\002TAGS\001t\002UNIQ_KEY\001ABCDEF\002__CRC32#\0010123456789\002",
        "TAGS\001first\002TAGS\001second\002",
        "TAGS\001first\002TAGS\001\002",           /* an empty later value does not override */
        "TAGS\002KEYS\001\001x\002",               /* a name without value; a value with 0x01 */
        "TAGSX\001no\002XTAGS\001no\002TAG\001no", /* other names */
        "DELAY\0013\002UNIQ_KEY\001u\001v",        /* no closing 0x02 */
        "\002\002\001\002UNIQ_KEY\001last",
        /* shmq's __CRC32# tail, intact, and with a property hidden in its digits */
        "__CRC32#\0010123456789\002",
        "TAGS\001a\002__CRC32#\0010123456789\002",
        "TAGS\001a\002__CRC32#\001\002TAGS\001bcd\002",
        "TAGS\001a\002__CRC32#\0010123\002KEYS\001\002",
        "TAGS\001a\002__CRC32#\00101234567\002x\002",
        "TAGS\001a__CRC32#\0010123456789\002",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        check_scan(fixed[i], strlen(fixed[i]));
    }
    static const char *const parts[] = {"TAGS",
                                        "KEYS",
                                        "UNIQ_KEY",
                                        "DELAY",
                                        "T",
                                        "U",
                                        "D",
                                        "\001",
                                        "\002",
                                        "x",
                                        "yy",
                                        " ",
                                        "TAGS\001",
                                        "KEYS\001",
                                        "DELAY\001",
                                        "UNIQ_KEY\001",
                                        "__CRC32#\0010123456789\002",
                                        "__CRC32#\001",
                                        "01234"};
    char buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        int n = (int)(next_rand() % 12);
        for (int k = 0; k < n; k++) {
            const char *s = parts[next_rand() % (sizeof(parts) / sizeof(parts[0]))];
            size_t l = strlen(s);
            if (len + l > sizeof(buf)) {
                break;
            }
            memcpy(buf + len, s, l);
            len += l;
        }
        check_scan(buf, len);
    }
    /* Every value of every byte of a __CRC32# tail (and of the byte before it) whose value
     * hides a property: a 0x02 anywhere in it makes TAGS a property of its own. */
    static const char *const tails[] = {
        "__CRC32#\001xTAGS\001bcde\002",
        "KEYS\001k\002__CRC32#\001xTAGS\001bcde\002",
    };
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        size_t len = strlen(tails[i]);
        memcpy(buf, tails[i], len);
        size_t from = len > SHMQ_CRC_PROP_LEN ? len - SHMQ_CRC_PROP_LEN - 1 : 0;
        for (size_t at = from; at < len; at++) {
            for (int v = 0; v < 256; v++) {
                buf[at] = (char)v;
                check_scan(buf, len);
            }
            buf[at] = tails[i][at];
        }
    }
}

static void test_topic_key_hash_is_java_hashcode_of_topic_hash_key(void **state)
{
    (void)state;
    /* Java: Math.abs(("topic" + "#" + "key").hashCode()), from the JDK. */
    assert_int_equal(shmq_topic_key_hash("TopicTest", 9, "key1", 4), 1655984460);
    assert_int_equal(shmq_topic_key_hash("BenchTopic", 10, "7F0000010E5A18B4AAC21C7A9E3B0000", 32),
                     1366475764);
    assert_int_equal(shmq_topic_key_hash("TopicTest", 9, "", 0), 1148604930);
    assert_int_equal(shmq_topic_key_hash("", 0, "", 0), 35);
    /* Non-ASCII: UTF-8 decoded to UTF-16 as Java does (surrogate pairs included). */
    const char *cn = "\xe8\xae\xa2\xe5\x8d\x95-42"; /* 订单-42 */
    assert_int_equal(shmq_topic_key_hash("TopicTest", 9, cn, strlen(cn)), 609834538);
    const char *emoji = "\xf0\x9f\x98\x80 emoji";
    assert_int_equal(shmq_topic_key_hash("TopicTest", 9, emoji, strlen(emoji)), 617675595);
    const char *t = "T\xc3\xb3pico", *k = "cl\xc3\xa9";
    assert_int_equal(shmq_topic_key_hash(t, strlen(t), k, strlen(k)), 1189229471);
}

/* Any bytes, including a UTF-8 sequence split by '#' and malformed ones: as the full hash. */
static void test_topic_key_hash_equals_the_hash_of_the_joined_bytes(void **state)
{
    (void)state;
    char topic[64], key[64], joined[130];
    for (int round = 0; round < 50000; round++) {
        size_t tl = next_rand() % 40, kl = next_rand() % 60;
        bool high = round % 3 == 0;
        for (size_t i = 0; i < tl; i++) {
            topic[i] =
                (char)(high && next_rand() % 8 == 0 ? 0x80 | next_rand() : 0x20 + next_rand() % 95);
        }
        for (size_t i = 0; i < kl; i++) {
            key[i] =
                (char)(high && next_rand() % 8 == 0 ? 0x80 | next_rand() : 0x20 + next_rand() % 95);
        }
        memcpy(joined, topic, tl);
        joined[tl] = '#';
        memcpy(joined + tl + 1, key, kl);
        assert_int_equal(shmq_topic_key_hash(topic, tl, key, kl),
                         shmq_index_key_hash(joined, tl + 1 + kl));
    }
}

/* The memo's hash equals the plain one key after key: keys sharing a prefix of any length
 * with the previous one (also non-ASCII ones, and keys longer than what it remembers), a
 * topic that changes, topics too long to remember. */
static void test_topic_key_hash_memo_equals_the_plain_hash(void **state)
{
    (void)state;
    shmq_key_hash_memo_t memo;
    memset(&memo, 0, sizeof(memo));
    char topics[5][200] = {"BenchTopic", "T\xc3\xb3pico", "", "BenchTopiX", "AenchTopic"};
    size_t tlens[5] = {10, 7, 150, 10, 10};
    memset(topics[2], 'L', tlens[2]);
    char key[100] = "7F0000010E5A18B4AAC21C7A9E3B0000";
    size_t kl = 32;
    for (int round = 0; round < 200000; round++) {
        int t = next_rand() % 16 == 0 ? (int)(next_rand() % 5) : 0;
        if (next_rand() % 4 != 0) {
            /* change a few bytes from some point on: a shared prefix of that length */
            size_t from = next_rand() % (kl + 1);
            for (size_t i = from; i < kl && i < from + 1 + next_rand() % 4; i++) {
                key[i] =
                    (char)(next_rand() % 50 == 0 ? 0x80 | next_rand() : '0' + next_rand() % 43);
            }
        } else {
            kl = next_rand() % sizeof(key);
            for (size_t i = 0; i < kl; i++) {
                key[i] =
                    (char)(next_rand() % 50 == 0 ? 0x80 | next_rand() : 0x20 + next_rand() % 95);
            }
        }
        assert_int_equal(shmq_topic_key_hash_memo(&memo, topics[t], tlens[t], key, kl),
                         shmq_topic_key_hash(topics[t], tlens[t], key, kl));
    }
}

/* The one-pass hash of an area holding only a UNIQ_KEY against the scan then the plain hash:
 * equal when it answers, an answer for every usual area (ASCII value, a topic the memo
 * holds), -1 for any other.  Areas of the usual shape with values that share a prefix with
 * the previous one, of every length, with a 0x02, 0x01, non-ASCII bytes anywhere; other
 * areas (KEYS, other properties, cut short); topics that change; the memo used by
 * shmq_topic_key_hash_memo() in between.  Each area in an allocation of its own size. */
static void test_uniq_key_only_hash_equals_scan_then_hash(void **state)
{
    (void)state;
    shmq_key_hash_memo_t memo;
    memset(&memo, 0, sizeof(memo));
    char topics[6][200] = {"BenchTopic", "T\xc3\xb3pico", "", "BenchTopiX", "AenchTopic", "T"};
    size_t tlens[6] = {10, 7, 150, 10, 10, 1};
    memset(topics[2], 'L', tlens[2]);
    static const char *const parts[] = {"KEYS\001", "UNIQ_KEY\001", "TAGS\001", "\002", "\001", " ",
                                        "U",        "UNIQ_KEY",     "ab",       "\x80"};
    static const char crc[] = "__CRC32#\0010123456789\002";
    char value[100] = "7F0000010E5A18B4AAC21C7A9E3B0000";
    size_t vl = 32;
    char area[300];
    int fast = 0;
    for (int round = 0; round < 300000; round++) {
        int t = next_rand() % 16 == 0 ? (int)(next_rand() % 6) : 0;
        unsigned r = next_rand() % 8;
        if (r < 5) {
            /* change a few bytes from some point on (now and then a 0x02, 0x01 or a
             * non-ASCII one), or take a new length */
            size_t from = next_rand() % (vl + 1);
            for (size_t i = from; i < vl && i < from + 1 + next_rand() % 4; i++) {
                unsigned c = next_rand() % 60;
                value[i] = (char)(c == 0 ? 0x80 | next_rand() : c == 1 ? 2 : c == 2 ? 1 : '0' + c);
            }
        } else if (r == 5) {
            vl = next_rand() % sizeof(value);
            for (size_t i = 0; i < vl; i++) {
                value[i] = (char)('0' + next_rand() % 43);
            }
        }
        size_t len = 0;
        bool usual = r != 7;
        if (usual) {
            memcpy(area, "UNIQ_KEY\001", 9);
            memcpy(area + 9, value, vl);
            area[9 + vl] = '\002';
            len = 10 + vl;
        } else {
            for (int j = (int)(next_rand() % 6); j > 0; j--) {
                const char *s = parts[next_rand() % (sizeof(parts) / sizeof(parts[0]))];
                memcpy(area + len, s, strlen(s));
                len += strlen(s);
            }
            size_t n = next_rand() % 20;
            memcpy(area + len, value, n < vl ? n : vl);
            len += n < vl ? n : vl;
        }
        if (next_rand() % 2 == 0) {
            memcpy(area + len, crc, sizeof(crc) - 1);
            len += sizeof(crc) - 1;
        }
        if (next_rand() % 10 == 0) {
            /* one byte changed anywhere: a separator at each position, a cut name */
            area[next_rand() % (len + 1)] = (char)(next_rand() % 3);
            usual = false;
        }
        if (next_rand() % 10 == 0 && len > 0) {
            len = next_rand() % len; /* cut short */
            usual = false;
        }
        char *p = malloc(len ? len : 1);
        assert_non_null(p);
        memcpy(p, area, len);
        shmq_record_props_t k;
        shmq_record_props_scan_keys(p, len, &k);
        int32_t h = shmq_uniq_key_only_hash_memo(&memo, topics[t], tlens[t], p, len);
        if (h >= 0) {
            fast++;
            assert_non_null(k.uniq_key);
            assert_null(k.keys);
            assert_int_equal(h,
                             shmq_topic_key_hash(topics[t], tlens[t], k.uniq_key, k.uniq_key_len));
        } else {
            assert_int_equal(h, -1);
            bool ascii = true;
            for (size_t i = 0; i < vl; i++) {
                ascii = ascii && value[i] != 2 && (value[i] & 0x80) == 0;
            }
            /* only a value with a 0x02 or a non-ASCII byte, an empty one or a topic the
             * memo cannot hold is handed on */
            assert_false(usual && ascii && vl > 0 && t != 1 && t != 2);
        }
        if (next_rand() % 4 == 0) {
            /* the memo's other user, on keys of any bytes */
            assert_int_equal(shmq_topic_key_hash_memo(&memo, topics[t], tlens[t], p, len),
                             shmq_topic_key_hash(topics[t], tlens[t], p, len));
        }
        free(p);
    }
    assert_true(fast > 100000);
}

/* The UNIQ_KEY value hashed in vectors (16 bytes and more): every length from 1 to 130, every
 * ASCII byte (0x00, 0x01, 0x7F among them) in random values, with and without the __CRC32#
 * tail, equal to the plain hash; a 0x02 or a non-ASCII byte at each position of the value
 * hands the area on (-1).  Each area in an allocation of its own size (the vector loads stay
 * inside: the sanitizer build checks it). */
static void test_uniq_key_vector_hash_equals_the_plain_hash(void **state)
{
    (void)state;
    static const char crc[] = "__CRC32#\0010123456789\002";
    static const uint8_t bad[] = {0x02, 0x80, 0xFF, 0xC3};
    char area[200];
    for (size_t vl = 1; vl <= 130; vl++) {
        for (int round = 0; round < 40; round++) {
            shmq_key_hash_memo_t memo;
            memset(&memo, 0, sizeof(memo));
            char value[131];
            for (size_t i = 0; i < vl; i++) {
                unsigned c = next_rand() % 128;
                value[i] = (char)(c == 2 ? 0x7F : c);
            }
            int spoil = round % 4 == 3 ? (int)(next_rand() % vl) : -1;
            if (spoil >= 0) {
                value[spoil] = (char)bad[next_rand() % sizeof(bad)];
            }
            memcpy(area, "UNIQ_KEY\001", 9);
            memcpy(area + 9, value, vl);
            area[9 + vl] = '\002';
            size_t len = 10 + vl;
            if (round % 2 == 0) {
                memcpy(area + len, crc, sizeof(crc) - 1);
                len += sizeof(crc) - 1;
            }
            char *p = malloc(len);
            assert_non_null(p);
            memcpy(p, area, len);
            shmq_key_hash_memo_t memo2 = memo;
            int32_t h = shmq_uniq_key_only_hash_memo(&memo, "BenchTopic", 10, p, len);
            /* The SSE2 path too, whichever the CPU lets the call above take. */
            int32_t h2 = shmq_uniq_key_only_hash_memo_sse2(&memo2, "BenchTopic", 10, p, len);
            if (spoil >= 0) {
                assert_int_equal(h, -1);
                assert_int_equal(h2, -1);
            } else {
                assert_int_equal(h, shmq_topic_key_hash("BenchTopic", 10, value, vl));
                assert_int_equal(h2, h);
            }
            free(p);
        }
    }
}

/* The partial scans against the full one: the fields each looks for equal, the rest NULL, 0. */
static void check_partial_scans(const char *p, size_t len)
{
    shmq_record_props_t all, t, td, k;
    shmq_record_props_scan(p, len, &all);
    shmq_record_props_scan_tags(p, len, false, &t);
    shmq_record_props_scan_tags(p, len, true, &td);
    shmq_record_props_scan_keys(p, len, &k);
    assert_ptr_equal(t.tags, all.tags);
    assert_int_equal(t.tags_len, all.tags_len);
    assert_ptr_equal(td.tags, all.tags);
    assert_int_equal(td.tags_len, all.tags_len);
    assert_ptr_equal(td.delay, all.delay);
    assert_int_equal(td.delay_len, all.delay_len);
    assert_ptr_equal(k.uniq_key, all.uniq_key);
    assert_int_equal(k.uniq_key_len, all.uniq_key_len);
    assert_ptr_equal(k.keys, all.keys);
    assert_int_equal(k.keys_len, all.keys_len);
    assert_null(t.keys);
    assert_null(t.uniq_key);
    assert_null(t.delay);
    assert_int_equal(t.keys_len + t.uniq_key_len + t.delay_len, 0);
    assert_null(td.keys);
    assert_null(td.uniq_key);
    assert_int_equal(td.keys_len + td.uniq_key_len, 0);
    assert_null(k.tags);
    assert_null(k.delay);
    assert_int_equal(k.tags_len + k.delay_len, 0);
    /* The dispatcher's TAGS search, on a copy that ends where its allocation ends (a read
     * past the area shows in the sanitizer build); found at the same offset. */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, p, len);
    uint32_t tl = 12345;
    const char *tv = shmq_record_props_find_tags(copy, len, &tl);
    if (all.tags == NULL) {
        assert_null(tv);
    } else {
        assert_non_null(tv);
        assert_int_equal(tv - copy, all.tags - p);
    }
    assert_int_equal(tl, all.tags_len);
    /* Its inline form (an area of 16 to 64 bytes without a 'T' answered without the
     * search): the same answer. */
    tl = 12345;
    assert_ptr_equal(shmq_record_props_find_tags_inline(copy, len, &tl), tv);
    assert_int_equal(tl, all.tags_len);
    free(copy);
}

static void test_partial_props_scans_find_what_the_full_scan_finds(void **state)
{
    (void)state;
    static const char *const parts[] = {"TAGS",
                                        "KEYS",
                                        "UNIQ_KEY",
                                        "DELAY",
                                        "T",
                                        "K",
                                        "U",
                                        "D",
                                        "\001",
                                        "\002",
                                        "x",
                                        " ",
                                        "TAGS\001",
                                        "KEYS\001",
                                        "DELAY\001",
                                        "UNIQ_KEY\001",
                                        "__CRC32#\001",
                                        "0123456789",
                                        "\002TAGS\001",
                                        "TTAGS\001",
                                        "TAG",
                                        "TAGSS\001",
                                        "0123456789ABCDEF"};
    char buf[300];
    for (int round = 0; round < 100000; round++) {
        size_t len = 0;
        int parts_n = (int)(next_rand() % 16);
        for (int j = 0; j < parts_n; j++) {
            const char *s = parts[next_rand() % (sizeof(parts) / sizeof(parts[0]))];
            size_t l = strlen(s);
            memcpy(buf + len, s, l);
            len += l;
        }
        if (next_rand() % 2 == 0) {
            /* shmq's tail, as every record the store writes ends */
            static const char tail[] = "\002__CRC32#\0010123456789\002";
            memcpy(buf + len, tail, sizeof(tail) - 1);
            len += sizeof(tail) - 1;
        }
        check_partial_scans(buf, len);
    }
    static const char rec[] =
        "UNIQ_KEY\001C00002027DFA85325A991E64704B0000\002__CRC32#\0018756936450\002";
    check_partial_scans(rec, sizeof(rec) - 1);
    /* A TAGS segment at every offset of areas of 16 to 80 bytes (the search's steps and its
     * last, overlapping one), with and without a value and an end. */
    for (size_t len = 16; len <= 80; len++) {
        for (size_t at = 0; at + 5 <= len; at++) {
            for (int form = 0; form < 3; form++) {
                memset(buf, 'T', len);
                if (at > 0) {
                    buf[at - 1] = '\002';
                }
                memcpy(buf + at, "TAGS\001", 5);
                if (form == 1 && at + 6 < len) {
                    buf[at + 6] = '\002';
                } else if (form == 2 && at + 5 < len) {
                    buf[at + 5] = '\002';
                }
                check_partial_scans(buf, len);
            }
            /* and a second one after it: the later one counts */
            for (size_t b = at + 7; b + 6 <= len; b++) {
                memset(buf, 'x', len);
                if (at > 0) {
                    buf[at - 1] = '\002';
                }
                memcpy(buf + at, "TAGS\001a", 6);
                memcpy(buf + b - 1, "\002TAGS\001b", 7);
                check_partial_scans(buf, len);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_decode_reads_what_the_full_decode_reads),
        cmocka_unit_test(test_head_decode_fails_as_the_full_decode_fails),
        cmocka_unit_test(test_props_scan_finds_what_props_get_finds),
        cmocka_unit_test(test_topic_key_hash_is_java_hashcode_of_topic_hash_key),
        cmocka_unit_test(test_topic_key_hash_equals_the_hash_of_the_joined_bytes),
        cmocka_unit_test(test_topic_key_hash_memo_equals_the_plain_hash),
        cmocka_unit_test(test_uniq_key_only_hash_equals_scan_then_hash),
        cmocka_unit_test(test_uniq_key_vector_hash_equals_the_plain_hash),
        cmocka_unit_test(test_layout_shortcut_equals_the_walk),
        cmocka_unit_test(test_partial_props_scans_find_what_the_full_scan_finds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
