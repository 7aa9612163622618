/*
 * Unit tests of the producer's fast paths (libshm/client/producer_int.h,
 * producer.c) against the reference functions they stand for: the message
 * id of an answer (shmq_prod_msgid against shmq_msgid_format), the
 * properties of a message without properties of its own
 * (shmq_prod_props_uniq against shmq_prod_build_props), the copy of a
 * request's UNIQ_KEY (against the full-array copy), the wall clock of a
 * send (shmq_prod_wall_ms against shmq_now_ms), the message checks of the
 * send path (shmq_prod_check_message_at against shmq_prod_check_message),
 * the queue choice (shmq_prod_select_queue_at against
 * shmq_prod_select_queue), the entry's encode (shmq_ring_encode_fitted
 * against shmq_ring_encode), the entry of a message without properties of
 * its own (shmq_prod_encode_plain, from the topic's template, against
 * shmq_prod_fill_entry and shmq_ring_encode).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/producer_int.h"
#include "format/config.h"
#include "format/message.h"
#include "shmq/errors.h"

/* A producer handle with only what the tested helpers read. */
static shmq_producer_t *handle(void)
{
    shmq_producer_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    return p;
}

static void expect_msgid(const shmq_producer_t *p, int64_t off)
{
    char want[SHMQ_MSGID_MAX], got[SHMQ_MSGID_MAX];
    memset(want, 'x', sizeof(want));
    memset(got, 'x', sizeof(got));
    shmq_msgid_format(&p->store_host, off, want);
    shmq_prod_msgid(p, off, got);
    assert_string_equal(got, want);
    assert_memory_equal(got, want, strlen(want) + 1);
}

/* Offsets with every nibble value at every place, and random ones, on v4 and v6 hosts. */
static void test_msgid_matches_format(void **state)
{
    (void)state;
    shmq_producer_t *p = handle();
    static const uint8_t v4[][4] = {
        {127, 0, 0, 1}, {10, 255, 0, 171}, {0, 0, 0, 0}, {255, 255, 255, 255}};
    static const int32_t ports[] = {0, 10911, 65535, -1, INT32_MAX};
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (int v6 = 0; v6 <= 1; v6++) {
        for (size_t h = 0; h < sizeof(v4) / sizeof(v4[0]); h++) {
            for (size_t pi = 0; pi < sizeof(ports) / sizeof(ports[0]); pi++) {
                memset(&p->store_host, 0, sizeof(p->store_host));
                p->store_host.is_v6 = v6 != 0;
                for (int i = 0; i < (v6 ? 16 : 4); i++) {
                    p->store_host.addr[i] = (uint8_t)(v4[h][i % 4] + i * 17 * v6);
                }
                p->store_host.port = ports[pi];
                shmq_prod_msgid_prefix(p);
                assert_int_equal(p->msgid_v4, !v6);
                for (int place = 0; place < 16; place++) {
                    for (uint64_t nv = 0; nv < 16; nv++) {
                        expect_msgid(p, (int64_t)(nv << (4 * place)));
                        expect_msgid(p, (int64_t) ~(nv << (4 * place)));
                    }
                }
                for (int i = 0; i < 2000; i++) {
                    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                    expect_msgid(p, (int64_t)(seed >> (i % 64)));
                }
                expect_msgid(p, INT64_MAX);
                expect_msgid(p, INT64_MIN);
                expect_msgid(p, -1);
            }
        }
    }
    /* A handle whose store host was never set formats in full. */
    shmq_producer_t *q = handle();
    q->store_host.addr[0] = 192;
    q->store_host.port = 9876;
    expect_msgid(q, 0x123456789ALL);
    free(q);
    free(p);
}

/* The bytes of build_props and props_uniq for m, the same but for the key each made. */
static void expect_props_same(const shmq_producer_t *p, const shmq_message_t *m, int64_t now)
{
    char slow[SHMQ_PROPS_MAX], fast[SHMQ_PROPS_MAX];
    char uslow[SHMQ_UNIQ_KEY_MAX], ufast[SHMQ_UNIQ_KEY_MAX];
    size_t slen = 0;
    memset(slow, 'x', sizeof(slow));
    memset(fast, 'y', sizeof(fast));
    assert_int_equal(shmq_prod_build_props(p, m, slow, sizeof(slow), &slen, uslow, now), 0);
    size_t flen = shmq_prod_props_uniq(fast, ufast, now);
    assert_int_equal(flen, slen);
    assert_int_equal(flen, SHMQ_PROD_PROPS_UNIQ_LEN);
    assert_int_equal(strlen(uslow), SHMQ_UNIQ_KEY_LEN);
    assert_int_equal(strlen(ufast), SHMQ_UNIQ_KEY_LEN);
    /* The key in place, then every byte the same. */
    const char *ks = memmem(slow, slen, uslow, SHMQ_UNIQ_KEY_LEN);
    assert_non_null(ks);
    assert_int_equal(ks - slow, sizeof(SHMQ_PROP_UNIQ_KEY));
    memcpy(slow + (ks - slow), ufast, SHMQ_UNIQ_KEY_LEN);
    assert_memory_equal(slow, fast, slen);
    /* The two keys: the same up to the counter (same process, same millisecond). */
    assert_memory_equal(uslow, ufast, SHMQ_UNIQ_KEY_LEN - 4);
    assert_string_not_equal(uslow, ufast);
}

/* What props_plain lets through builds the same properties; everything else is refused. */
static void test_props_plain_matches_build(void **state)
{
    (void)state;
    shmq_producer_t *p = handle();
    static const char body[] = "body";
    shmq_message_t m;
    int64_t now = 1765000000000LL;
    for (int i = 0; i < 3000; i++, now += i % 7) {
        shmq_message_init(&m, "BenchTopic", body, sizeof(body));
        switch (i % 4) {
        case 1:
            m.tags = "";
            m.keys = "";
            break;
        case 2:
            m.queue_id = i % 8;
            m.flag = i;
            break;
        case 3:
            m.sharding_key = "order-1";
            break;
        default:
            break;
        }
        assert_true(shmq_prod_props_plain(p, &m));
        expect_props_same(p, &m, now);
    }
    shmq_property_t up = {.name = "a", .value = "b"};
    for (int k = 0; k < 6; k++) {
        shmq_message_init(&m, "BenchTopic", body, sizeof(body));
        switch (k) {
        case 0:
            m.tags = "t";
            break;
        case 1:
            m.keys = "k";
            break;
        case 2:
            m.delay_level = 1;
            break;
        case 3:
            m.deliver_at_ms = 1;
            break;
        case 4:
            m.deliver_after_ms = 1;
            break;
        default:
            m.properties = &up;
            m.property_count = 1;
            break;
        }
        assert_false(shmq_prod_props_plain(p, &m));
    }
    shmq_message_init(&m, "BenchTopic", body, sizeof(body));
    char group[] = "g";
    p->group = group;
    p->group_len = 1;
    assert_false(shmq_prod_props_plain(p, &m));
    p->group = NULL;
    free(p);
}

/* Keys of every length, garbage after the NUL: the same string as the full copy. */
static void test_uniq_copy_matches_full(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    for (int len = 0; len < SHMQ_UNIQ_KEY_MAX + 2; len++) {
        for (int round = 0; round < 64; round++) {
            char src[SHMQ_UNIQ_KEY_MAX], want[SHMQ_UNIQ_KEY_MAX], got[SHMQ_UNIQ_KEY_MAX];
            for (size_t i = 0; i < sizeof(src); i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                char c = (char)(seed >> 56);
                src[i] = c == '\0' || round % 4 == 0 ? 'A' + (char)(i % 26) : c;
            }
            if (len < SHMQ_UNIQ_KEY_MAX) {
                src[len] = '\0';
            }
            if (round % 8 == 1 && len + 1 < SHMQ_UNIQ_KEY_MAX) {
                src[SHMQ_UNIQ_KEY_LEN] = '\0'; /* a short key with a NUL at 32 as well */
            }
            memcpy(want, src, sizeof(want));
            want[SHMQ_UNIQ_KEY_MAX - 1] = '\0';
            memset(got, 'z', sizeof(got));
            shmq_prod_uniq_copy(got, src);
            assert_string_equal(got, want);
        }
    }
}

/* The wall clock of a send: within a millisecond of shmq_now_ms read around it. */
static void test_wall_ms_matches_now(void **state)
{
    (void)state;
    shmq_producer_t *p = handle();
    shmq_prod_clock_sync(p);
    for (int i = 0; i < 20000; i++) {
        int64_t before = shmq_now_ms();
        int64_t w = shmq_prod_wall_ms(p, shmq_mono_ns());
        int64_t after = shmq_now_ms();
        assert_true(w >= before - 1);
        assert_true(w <= after + 1);
        if (i % 1000 == 0) {
            shmq_prod_clock_sync(p);
        }
    }
    free(p);
}

/* Every field the checks read, at the edges of its rules: the same verdict and length. */
static void test_check_at_matches_check(void **state)
{
    (void)state;
    shmq_producer_t *p = handle();
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    cfg.max_message_size = 1000;
    p->cfg = &cfg;
    static const char *const topics[] = {"BenchTopic", "BenchTopid", "BenchTopi", "BenchTopicX",
                                         "",           "bad topic",  "T",         NULL};
    static const size_t lens[] = {0, 1, 999, 1000, 1001};
    static const int32_t delays[] = {-1, 0, 1};
    static const int32_t qids[] = {INT32_MIN, -2, -1, 0, 3, 65535, 65536};
    static const int64_t times[] = {-1, 0, 1};
    static const char body[] = "x";
    int checked = 0;
    for (int cached = 0; cached <= 1; cached++) {
        for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
            for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                for (int nb = 0; nb <= 1; nb++) {
                    for (size_t d = 0; d < sizeof(delays) / sizeof(delays[0]); d++) {
                        for (size_t q = 0; q < sizeof(qids) / sizeof(qids[0]); q++) {
                            for (size_t at = 0; at < 3; at++) {
                                for (size_t after = 0; after < 3; after++) {
                                    shmq_message_t m;
                                    shmq_message_init(&m, topics[t], nb ? NULL : body, lens[l]);
                                    m.delay_level = delays[d];
                                    m.queue_id = qids[q];
                                    m.deliver_at_ms = times[at];
                                    m.deliver_after_ms = times[after];
                                    /* The cache as the first check left it, or cleared. */
                                    p->topic_ok = false;
                                    shmq_message_t first;
                                    shmq_message_init(&first, "BenchTopic", body, 1);
                                    size_t tl0 = 0;
                                    if (cached) {
                                        assert_int_equal(shmq_prod_check_message(p, &first, &tl0),
                                                         0);
                                    }
                                    size_t tl_ref = 99, tl_at = 99;
                                    int ref = shmq_prod_check_message(p, &m, &tl_ref);
                                    p->topic_ok = false;
                                    if (cached) {
                                        (void)shmq_prod_check_message(p, &first, &tl0);
                                    }
                                    int got = shmq_prod_check_message_at(p, &m, &tl_at);
                                    assert_int_equal(got, ref);
                                    if (ref == 0) {
                                        assert_int_equal(tl_at, tl_ref);
                                    }
                                    checked++;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    size_t tl = 0;
    assert_int_equal(shmq_prod_check_message_at(p, NULL, &tl), SHMQ_E_ARG);
    assert_true(checked > 10000);
    free(p);
}

/*
 * Two handles in the same state (a topic table entry copied, its seqlock
 * number as copied or moved on), the same messages: the same results,
 * queues and round-robin positions.  The entry's number is never moved
 * while the slow path could look the topic up (that needs a store).
 */
static void test_select_at_matches_select(void **state)
{
    (void)state;
    shmq_ctl_block_t *blk = calloc(1, sizeof(*blk));
    shmq_producer_t *a = handle(), *b = handle();
    assert_non_null(blk);
    shmq_config_t cfg;
    shmq_config_defaults(&cfg);
    static const char body[] = "x";
    static const int32_t nqs[] = {1, 3, 4, 7, 0, -1};
    static const int32_t qids[] = {-1, 0, 2, 3, 6, 7, 65535};
    static const char *const keys[] = {NULL, "order-1", ""};
    for (size_t k = 0; k < sizeof(nqs) / sizeof(nqs[0]); k++) {
        for (uint32_t rr = UINT32_MAX - 3; rr != 5; rr++) {
            shmq_producer_t *hs[2] = {a, b};
            for (int h = 0; h < 2; h++) {
                shmq_producer_t *p = hs[h];
                p->cfg = &cfg;
                p->blk = blk;
                p->rr = rr;
                memcpy(p->topic_name, "BenchTopic", sizeof("BenchTopic"));
                p->topic_len = sizeof("BenchTopic") - 1;
                p->topic_ok = true;
                p->topic_cached = true;
                p->topic_idx = 5;
                p->topic_seq = 8;
                p->topic_nq = nqs[k];
            }
            atomic_store(&blk->topics[5].seq, 8);
            for (size_t q = 0; q < sizeof(qids) / sizeof(qids[0]); q++) {
                for (size_t key = 0; key < sizeof(keys) / sizeof(keys[0]); key++) {
                    for (int i = 0; i < 5; i++) {
                        shmq_message_t m;
                        shmq_message_init(&m, i == 4 ? "BenchTopid" : "BenchTopic", body, 1);
                        m.queue_id = qids[q];
                        m.sharding_key = keys[key];
                        if (i == 4) {
                            /* Another topic: the fast path must not take it (the slow path
                             * would look it up in a store: left to the integration tests). */
                            assert_false(shmq_prod_topic_is_cached(a, m.topic, 10));
                            continue;
                        }
                        /* select_at's precondition: the topic passed the message checks. */
                        size_t tlen = 0;
                        assert_int_equal(shmq_prod_check_message_at(a, &m, &tlen), 0);
                        assert_int_equal(tlen, 10);
                        int32_t qa = -7, qb = -7;
                        int ra = shmq_prod_select_queue_at(a, &m, 10, &qa);
                        int rb = shmq_prod_select_queue(b, &m, 10, &qb);
                        assert_int_equal(ra, rb);
                        assert_int_equal(qa, qb);
                        assert_int_equal(a->rr, b->rr);
                    }
                }
            }
        }
    }
    free(blk);
    free(a);
    free(b);
}

/*
 * shmq_ring_encode_fitted (the send path's encode, no checks) against
 * shmq_ring_encode: the same bytes, padding included, for part lengths
 * from none to the limits of the send path, over a buffer full of garbage.
 */
static void test_encode_fitted_matches_encode(void **state)
{
    (void)state;
    static char topic[SHMQ_TOPIC_MAX_ANY];
    static char props[300];
    static uint8_t body[1000];
    for (size_t i = 0; i < sizeof(topic); i++) {
        topic[i] = (char)('A' + i % 26);
    }
    for (size_t i = 0; i < sizeof(props); i++) {
        props[i] = (char)(1 + i % 120);
    }
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)(i * 7 + 3);
    }
    const uint32_t tlens[] = {0, 1, 10, 17, SHMQ_TOPIC_MAX_ANY};
    const uint32_t plens[] = {0, 1, 44, 45, 299};
    const uint32_t blens[] = {0, 1, 7, 128, 999};
    size_t cap = SHMQ_RING_HDR_SIZE + sizeof(topic) + sizeof(props) + sizeof(body) + 8;
    uint8_t *want = malloc(cap), *got = malloc(cap);
    assert_non_null(want);
    assert_non_null(got);
    for (size_t t = 0; t < sizeof(tlens) / sizeof(tlens[0]); t++) {
        for (size_t q = 0; q < sizeof(plens) / sizeof(plens[0]); q++) {
            for (size_t b = 0; b < sizeof(blens) / sizeof(blens[0]); b++) {
                shmq_ring_msg_t m;
                memset(&m, 0, sizeof(m));
                m.kind = SHMQ_RING_KIND_MSG;
                m.flags = (uint16_t)(t & 1 ? SHMQ_RING_F_ONEWAY : 0);
                m.batch_index = (uint16_t)q;
                m.batch_count = (uint16_t)(q + 1);
                m.slot = (uint32_t)(b * 13);
                m.req_id = 0x0102030405060708ULL + t;
                m.queue_id = (int32_t)(q * 3);
                m.flag = -5;
                m.sysflag = (int32_t)b;
                m.reconsume_times = 2;
                m.born_ts = 1700000000123LL + (int64_t)b;
                m.prepared_tx_offset = (int64_t)(t * 1000);
                m.born_host.is_v6 = (b & 1) != 0;
                memset(m.born_host.addr, 0xA5, sizeof(m.born_host.addr));
                m.born_host.port = 10911;
                m.topic = tlens[t] ? topic : NULL;
                m.topic_len = tlens[t];
                m.props = plens[q] ? props : NULL;
                m.props_len = plens[q];
                m.body = blens[b] ? body : NULL;
                m.body_len = blens[b];
                uint64_t total = shmq_ring_entry_size(m.topic_len, m.props_len, m.body_len);
                assert_true(total <= cap);
                memset(want, 0xEE, cap);
                memset(got, 0xEE, cap);
                assert_int_equal(shmq_ring_encode(want, cap, &m), (int64_t)total);
                shmq_ring_encode_fitted(got, total, &m);
                assert_memory_equal(want, got, cap);
            }
        }
    }
    free(want);
    free(got);
}

/*
 * shmq_prod_encode_plain (the send path's entry of a message without
 * properties of its own, from the topic's template) against what it stands
 * for: shmq_prod_fill_entry of the message with shmq_prod_props_uniq's
 * properties, encoded by shmq_ring_encode.  Topics and bodies of every
 * length class, both kinds of born host, one-way and answered entries,
 * user flags and queue ids, over a buffer full of garbage.
 */
static void test_encode_plain_matches_encode(void **state)
{
    (void)state;
    shmq_producer_t *p = handle();
    static char topic[SHMQ_TOPIC_MAX_ANY + 1];
    static uint8_t body[1000];
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)(i * 7 + 3);
    }
    const size_t tlens[] = {1, 7, 10, 17, 127, SHMQ_TOPIC_MAX_ANY};
    const size_t blens[] = {0, 1, 5, 7, 8, 128, 999};
    const int32_t flags[] = {0, -5, 1, INT32_MAX};
    size_t cap = SHMQ_RING_HDR_SIZE + sizeof(topic) + SHMQ_PROD_PROPS_UNIQ_LEN + sizeof(body) + 8;
    uint8_t *want = malloc(cap), *got = malloc(cap);
    assert_non_null(want);
    assert_non_null(got);
    int64_t now = 1765000000000LL;
    for (int v6 = 0; v6 <= 1; v6++) {
        memset(&p->born_host, 0, sizeof(p->born_host));
        p->born_host.is_v6 = v6 != 0;
        for (int i = 0; i < (v6 ? 16 : 4); i++) {
            p->born_host.addr[i] = (uint8_t)(0xC0 + i * 3);
        }
        p->born_host.port = v6 ? 0 : 10911;
        for (size_t t = 0; t < sizeof(tlens) / sizeof(tlens[0]); t++) {
            for (size_t i = 0; i < tlens[t]; i++) {
                topic[i] = (char)('A' + (i + t) % 26);
            }
            topic[tlens[t]] = '\0';
            memcpy(p->topic_name, topic, tlens[t] + 1);
            p->topic_len = tlens[t];
            p->topic_ok = true;
            p->tmpl_len = 0;
            shmq_prod_tmpl_build(p);
            assert_int_equal(p->tmpl_len,
                             SHMQ_RING_HDR_SIZE + tlens[t] + sizeof(SHMQ_PROP_UNIQ_KEY));
            for (size_t b = 0; b < sizeof(blens) / sizeof(blens[0]); b++) {
                for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++, now += 3) {
                    shmq_message_t m;
                    shmq_message_init(&m, topic, blens[b] ? body : NULL, blens[b]);
                    m.flag = flags[f];
                    assert_true(shmq_prod_props_plain(p, &m));
                    int32_t qid = (int32_t)(f * 5 + b);
                    bool oneway = (b + f) % 3 == 0;
                    uint32_t slot = oneway ? 0 : (uint32_t)(t * 7 + f) % SHMQ_RING_SLOTS;
                    uint64_t req_id = 0x0102030405060708ULL + b * 77 + f;
                    /* The reference: the entry view and its properties, encoded. */
                    char props[SHMQ_PROD_PROPS_UNIQ_LEN];
                    char uniq[SHMQ_UNIQ_KEY_MAX];
                    size_t plen = shmq_prod_props_uniq(props, uniq, now);
                    shmq_ring_msg_t rm;
                    shmq_prod_fill_entry(p, &m, tlens[t], props, plen, qid, now, &rm);
                    rm.flags = oneway ? SHMQ_RING_F_ONEWAY : 0;
                    rm.slot = slot;
                    rm.req_id = req_id;
                    uint64_t total = shmq_ring_entry_size(tlens[t], plen, blens[b]);
                    assert_int_equal(shmq_prod_plain_size(p, blens[b]), total);
                    memset(want, 0xEE, cap);
                    memset(got, 0xEE, cap);
                    assert_int_equal(shmq_ring_encode(want, cap, &rm), (int64_t)total);
                    shmq_prod_encode_plain(p, got, total, &m, qid, now,
                                           oneway ? SHMQ_RING_F_ONEWAY : 0, slot, req_id, uniq);
                    assert_memory_equal(want, got, cap);
                    /* And the writer takes it as the message it is (a name of 127
                     * characters at most: longer ones are for retry topics only). */
                    if (tlens[t] > 127) {
                        continue;
                    }
                    shmq_ring_msg_t out;
                    assert_int_equal(shmq_ring_decode(got, total, NULL, &out), SHMQ_RING_KIND_MSG);
                    assert_int_equal(out.body_len, blens[b]);
                    assert_int_equal(out.queue_id, qid);
                    assert_int_equal(out.flag, flags[f]);
                    assert_int_equal(out.req_id, req_id);
                }
            }
        }
    }
    free(want);
    free(got);
    free(p);
}

/*
 * shmq_uniq_key_generate_next (the send path's key) against
 * shmq_uniq_key_generate_at: the same key, the one counter, in the same
 * millisecond, a new one, back in time, across a month's end and a year.
 */
static void test_uniq_next_matches_at(void **state)
{
    (void)state;
    /* 2026-01-31 23:59:59.990 UTC and on: the month ends (in any time zone within a day). */
    static const int64_t starts[] = {1769903999990LL, 1765000000000LL, 1798761599000LL};
    static const int steps[] = {0, 0, 1, 0, 3, 1000, -5, 0, 86400000, 0, 1, 1};
    for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
        int64_t now = starts[k];
        for (int round = 0; round < 40; round++) {
            now += steps[round % (sizeof(steps) / sizeof(steps[0]))];
            char a[SHMQ_UNIQ_KEY_MAX], b[SHMQ_UNIQ_KEY_MAX], c[SHMQ_UNIQ_KEY_MAX];
            memset(b, 'x', sizeof(b));
            assert_int_equal(shmq_uniq_key_generate_at(a, now), SHMQ_UNIQ_KEY_LEN);
            assert_int_equal(shmq_uniq_key_generate_next(b, now), SHMQ_UNIQ_KEY_LEN);
            assert_int_equal(shmq_uniq_key_generate_at(c, now), SHMQ_UNIQ_KEY_LEN);
            assert_int_equal(strlen(b), SHMQ_UNIQ_KEY_LEN);
            /* Prefix and millisecond as the reference's, the counter between its two keys. */
            assert_memory_equal(a, b, SHMQ_UNIQ_KEY_LEN - 4);
            assert_memory_equal(b, c, SHMQ_UNIQ_KEY_LEN - 4);
            unsigned long ca = strtoul(a + SHMQ_UNIQ_KEY_LEN - 4, NULL, 16);
            unsigned long cb = strtoul(b + SHMQ_UNIQ_KEY_LEN - 4, NULL, 16);
            unsigned long cc = strtoul(c + SHMQ_UNIQ_KEY_LEN - 4, NULL, 16);
            assert_int_equal(cb, (ca + 1) & 0xFFFF);
            assert_int_equal(cc, (cb + 1) & 0xFFFF);
            /* A new millisecond first through next: the same key as at's would be. */
            now += 1;
            assert_int_equal(shmq_uniq_key_generate_next(b, now), SHMQ_UNIQ_KEY_LEN);
            assert_int_equal(shmq_uniq_key_generate_at(c, now), SHMQ_UNIQ_KEY_LEN);
            assert_memory_equal(b, c, SHMQ_UNIQ_KEY_LEN - 4);
        }
    }
}

/* ---- answers: reap_run (poll's callbacks straight from the slots) against reap + run_ready -- */

#define POLL_SLOTS 200 /* slots used of SHMQ_RING_SLOTS: across the first three words */

typedef struct poll_seen {
    int calls;
    int err;
    char detail[SHMQ_RING_DETAIL_MAX];
    shmq_send_result_t res;
} poll_seen_t;

typedef struct poll_case {
    shmq_producer_t *p;
    poll_seen_t seen[POLL_SLOTS];
    int nested; /* slot whose callback polls again (-1: none) */
} poll_case_t;

static poll_case_t *poll_now;

static void poll_cb(void *arg, int err, const shmq_send_result_t *res)
{
    poll_seen_t *e = arg;
    e->calls++;
    e->err = err;
    e->res = *res;
    snprintf(e->detail, sizeof(e->detail), "%s", err < 0 ? shmq_error_detail() : "");
    if (poll_now->nested >= 0 && e == &poll_now->seen[poll_now->nested]) {
        poll_now->nested = -1;
        (void)shmq_producer_poll(poll_now->p, 0);
    }
}

/*
 * A handle with POLL_SLOTS requests in flight of every kind: answered
 * (OK, refused with and without a text, no callback), not answered yet,
 * abandoned and answered, free (only_ok: answered OK, not answered, free).  sync_master: the
 * store's role SYNC_MASTER with every message replicated (answers then go through the done list,
 * with the same final result).
 */
static int poll_kind(uint32_t s, bool only_ok)
{
    int kind = (int)(s % 7);
    return only_ok && kind != 3 && kind != 6 ? 0 : kind;
}

static void poll_setup(poll_case_t *c, bool sync_master, int nested, bool only_ok)
{
    memset(c, 0, sizeof(*c));
    shmq_producer_t *p = handle();
    c->p = p;
    c->nested = nested;
    p->attached = true;
    p->ring = calloc(1, sizeof(*p->ring));
    shmq_config_t *cfg = calloc(1, sizeof(*cfg));
    p->blk = calloc(1, sizeof(*p->blk));
    assert_non_null(p->ring);
    assert_non_null(cfg);
    assert_non_null(p->blk);
    cfg->flush_disk_type = SHMQ_ASYNC_FLUSH;
    cfg->broker_role = sync_master ? SHMQ_SYNC_MASTER : SHMQ_ASYNC_MASTER;
    p->cfg = cfg;
    atomic_store(&p->blk->replicated.pos, INT64_MAX);
    p->store_host.addr[0] = 10;
    p->store_host.addr[3] = 7;
    p->store_host.port = 10911;
    shmq_prod_msgid_prefix(p);
    for (uint32_t s = 0; s < POLL_SLOTS; s++) {
        prod_req_t *q = &p->reqs[s];
        shmq_ring_slot_t *sl = &p->ring->slots[s];
        int kind = poll_kind(s, only_ok);
        if (kind == 6) {
            continue; /* free */
        }
        q->state = kind == 5 ? REQ_ABANDONED : REQ_ASYNC;
        q->cb = kind == 4 ? NULL : poll_cb;
        q->arg = &c->seen[s];
        snprintf(q->uniq, sizeof(q->uniq), "7F0000010001%020u", s * 2654435761u);
        p->pending[s / 64] |= 1ULL << (s % 64);
        if (q->state == REQ_ASYNC) {
            p->async_busy++;
        }
        sl->req_id = s + 1000;
        sl->status = kind == 1 ? SHMQ_E_TOPIC : kind == 2 ? SHMQ_E_TOO_BIG : 0;
        if (kind == 1) {
            snprintf(sl->detail, sizeof(sl->detail), "refused %u", s);
        }
        sl->phys_offset = (int64_t)s * 4099 + 17;
        sl->end_pos = sl->phys_offset + 300;
        sl->queue_offset = s * 3;
        sl->store_ts = 1765000000000LL + s;
        sl->queue_id = (int32_t)(s % 4);
        /* kind 3: not answered yet */
        atomic_store(&sl->state, kind == 3 ? SHMQ_SLOT_PENDING : SHMQ_SLOT_DONE);
    }
}

static void poll_teardown(poll_case_t *c)
{
    shmq_producer_t *p = c->p;
    free(p->ring);
    free((void *)p->cfg);
    free(p->blk);
    free(p->done);
    free(p->done_spare);
    free(p);
}

static void test_reap_run_matches_done_list(void **state)
{
    (void)state;
    static poll_case_t fast, ref;
    /* Callbacks that poll again: none, the first, the last of a word, the first of the next
     * word, one in the middle (answered OK: their callbacks run straight from the slot). */
    static const int nesteds[] = {-1, 0, 63, 70, 133};
    for (size_t k = 0; k < 2 * sizeof(nesteds) / sizeof(nesteds[0]); k++) {
        int nested = nesteds[k / 2];
        bool only_ok = k % 2 != 0; /* every answer OK: none goes to the done list */
        poll_setup(&fast, false, nested, only_ok);
        poll_setup(&ref, true, nested, only_ok);
        /* Polls until one runs nothing (the straight look ends at the first request not
         * answered once it took some: the answers after it come with the next poll). */
        poll_now = &fast;
        int nf = 0, polls = 0;
        for (int n; (n = shmq_producer_poll(fast.p, 0)) > 0; polls++) {
            nf += n;
        }
        assert_true(polls <= 1 + POLL_SLOTS / 7);
        poll_now = &ref;
        int nr = shmq_producer_poll(ref.p, 0);
        assert_int_equal(shmq_producer_poll(ref.p, 0), 0);
        /* The nested poll's callbacks are counted by the inner call. */
        if (nested < 0) {
            assert_int_equal(nf, nr);
        }
        assert_true(nf > 0);
        /* Everything answered was delivered, each once (checked below). */
        for (uint32_t s = 0; s < POLL_SLOTS; s++) {
            const poll_seen_t *a = &fast.seen[s], *b = &ref.seen[s];
            int kind = poll_kind(s, only_ok);
            assert_int_equal(a->calls, b->calls);
            assert_int_equal(a->calls, kind == 0 || kind == 1 || kind == 2 ? 1 : 0);
            assert_int_equal(a->err, b->err);
            assert_string_equal(a->detail, b->detail);
            /* Every field (the bytes after a string's NUL are no part of the answer). */
            assert_int_equal(a->res.status, b->res.status);
            assert_string_equal(a->res.msg_id, b->res.msg_id);
            assert_string_equal(a->res.uniq_key, b->res.uniq_key);
            assert_int_equal(a->res.queue_id, b->res.queue_id);
            assert_int_equal(a->res.queue_offset, b->res.queue_offset);
            assert_int_equal(a->res.phys_offset, b->res.phys_offset);
            assert_int_equal(a->res.store_ts, b->res.store_ts);
            /* The slot's state after: freed once answered, kept while not. */
            uint32_t want = kind == 3 ? SHMQ_SLOT_PENDING : SHMQ_SLOT_FREE;
            assert_int_equal(atomic_load(&fast.p->ring->slots[s].state), want);
            assert_int_equal(atomic_load(&ref.p->ring->slots[s].state), want);
            assert_int_equal(fast.p->reqs[s].state, ref.p->reqs[s].state);
        }
        assert_memory_equal(fast.p->pending, ref.p->pending, sizeof(fast.p->pending));
        assert_int_equal(fast.p->async_busy, ref.p->async_busy);
        assert_int_equal(fast.p->ndone, 0);
        assert_int_equal(ref.p->ndone, 0);
        /* One OK answer looked at field by field. */
        const shmq_send_result_t *r = &fast.seen[7].res;
        assert_int_equal(r->status, SHMQ_SEND_OK);
        assert_int_equal(r->phys_offset, 7 * 4099 + 17);
        assert_int_equal(r->queue_offset, 21);
        assert_int_equal(r->queue_id, 3);
        assert_string_equal(r->uniq_key, fast.p->reqs[7].uniq);
        char id[SHMQ_MSGID_MAX];
        shmq_msgid_format(&fast.p->store_host, r->phys_offset, id);
        assert_string_equal(r->msg_id, id);
        poll_teardown(&fast);
        poll_teardown(&ref);
    }
}

/*
 * The straight look's order: from the oldest request in flight
 * (reap_hint), round the slots' end; in-order answers all come in one
 * poll, and a poll whose oldest request is not answered takes the later
 * answers all the same.
 */
static void test_reap_run_order(void **state)
{
    (void)state;
    static poll_case_t c;
    /* start: the oldest; n in flight from it (round the end); done: answered of them */
    static const struct {
        uint32_t start, n, done;
    } cases[] = {{0, 100, 60}, {200, 90, 67}, {250, 200, 200}, {63, 64, 1}, {64, 64, 0}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        poll_setup(&c, false, -1, true);
        shmq_producer_t *p = c.p;
        memset(p->pending, 0, sizeof(p->pending));
        p->async_busy = 0;
        for (uint32_t s = 0; s < SHMQ_RING_SLOTS; s++) {
            p->reqs[s].state = REQ_FREE;
            atomic_store(&p->ring->slots[s].state, SHMQ_SLOT_FREE);
        }
        for (uint32_t i = 0; i < cases[k].n; i++) {
            uint32_t s = (cases[k].start + i) % SHMQ_RING_SLOTS;
            p->reqs[s].state = REQ_ASYNC;
            p->reqs[s].cb = poll_cb;
            p->reqs[s].arg = &c.seen[s % POLL_SLOTS];
            p->pending[s / 64] |= 1ULL << (s % 64);
            p->async_busy++;
            atomic_store(&p->ring->slots[s].state,
                         i < cases[k].done ? SHMQ_SLOT_DONE : SHMQ_SLOT_PENDING);
        }
        p->reap_hint = cases[k].start;
        poll_now = &c;
        assert_int_equal(shmq_producer_poll(p, 0), (int)cases[k].done);
        assert_int_equal(p->async_busy, (int)(cases[k].n - cases[k].done));
        if (cases[k].done > 0) {
            assert_int_equal(p->reap_hint, (cases[k].start + cases[k].done) % SHMQ_RING_SLOTS);
        }
        /* Out of order: the oldest not answered, a later one answered: taken all the same,
         * by a poll that does not wait and by one that may (its first look stops at the
         * oldest; its sleep's condition sees the answer, the next look takes it). */
        if (cases[k].done < cases[k].n - 1) {
            uint32_t s = (cases[k].start + cases[k].n - 1) % SHMQ_RING_SLOTS;
            atomic_store(&p->ring->slots[s].state, SHMQ_SLOT_DONE);
            assert_true(shmq_producer_poll(p, k % 2 ? 0 : 5000) == 1);
            assert_int_equal(p->async_busy, (int)(cases[k].n - cases[k].done - 1));
        }
        poll_teardown(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msgid_matches_format),
        cmocka_unit_test(test_props_plain_matches_build),
        cmocka_unit_test(test_uniq_copy_matches_full),
        cmocka_unit_test(test_wall_ms_matches_now),
        cmocka_unit_test(test_check_at_matches_check),
        cmocka_unit_test(test_select_at_matches_select),
        cmocka_unit_test(test_encode_fitted_matches_encode),
        cmocka_unit_test(test_encode_plain_matches_encode),
        cmocka_unit_test(test_uniq_next_matches_at),
        cmocka_unit_test(test_reap_run_matches_done_list),
        cmocka_unit_test(test_reap_run_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
