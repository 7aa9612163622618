/*
 * RocketMQ remoting frames as shmq-gateway reads and writes them
 * (libshm/format/remoting.h): measuring a frame from its prefix, the
 * limits (a 2 GB length, a header longer than its frame, the binary
 * serialization), decoding the JSON header and its extFields, and encoding
 * an answer that decodes back to the same command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "format/remoting.h"
#include "shmq/errors.h"

/* A frame of header text hdr and body text body into buf; its length. */
static size_t frame(uint8_t *buf, const char *hdr, const char *body)
{
    size_t hl = strlen(hdr), bl = strlen(body);
    shmq_put_be32(buf, (uint32_t)(4 + hl + bl));
    shmq_put_be32(buf + 4, (uint32_t)hl);
    memcpy(buf + 8, hdr, hl);
    memcpy(buf + 8 + hl, body, bl);
    return 8 + hl + bl;
}

static void test_frame_size_waits_for_prefix_and_bounds_length(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t len = frame(b, "{\"code\":105,\"opaque\":1}", "xy");
    assert_int_equal(shmq_rmt_frame_size(b, 7, SHMQ_RMT_FRAME_MAX), 0);
    assert_int_equal(shmq_rmt_frame_size(b, 8, SHMQ_RMT_FRAME_MAX), (int64_t)len);
    /* a 2 GB length is refused from the prefix alone, before anything is buffered */
    uint8_t huge[8] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 16};
    assert_int_equal(shmq_rmt_frame_size(huge, 8, SHMQ_RMT_FRAME_MAX), SHMQ_E_TOO_BIG);
    /* the caller's own limit */
    assert_int_equal(shmq_rmt_frame_size(b, 8, len - 1), SHMQ_E_TOO_BIG);
    /* a header longer than the frame, an empty header, a length below the header word */
    uint8_t bad[8];
    shmq_put_be32(bad, 10);
    shmq_put_be32(bad + 4, 7);
    assert_int_equal(shmq_rmt_frame_size(bad, 8, SHMQ_RMT_FRAME_MAX), SHMQ_E_ARG);
    shmq_put_be32(bad + 4, 0);
    assert_int_equal(shmq_rmt_frame_size(bad, 8, SHMQ_RMT_FRAME_MAX), SHMQ_E_ARG);
    shmq_put_be32(bad, 3);
    assert_int_equal(shmq_rmt_frame_size(bad, 8, SHMQ_RMT_FRAME_MAX), SHMQ_E_ARG);
    /* RocketMQ's binary header serialization (type 1) is not read */
    shmq_put_be32(bad, 10);
    shmq_put_be32(bad + 4, (1u << 24) | 4);
    assert_int_equal(shmq_rmt_frame_size(bad, 8, SHMQ_RMT_FRAME_MAX), SHMQ_E_ARG);
    assert_non_null(strstr(shmq_error_detail(), "serialize type 1"));
}

static void test_decode_reads_header_ext_fields_and_body(void **state)
{
    (void)state;
    uint8_t b[512];
    size_t len = frame(b,
                       "{\"code\":310,\"language\":\"JAVA\",\"version\":317,\"opaque\":42,"
                       "\"flag\":0,\"extFields\":{\"b\":\"TopicTest\",\"e\":\"3\",\"n\":7,"
                       "\"t\":true,\"i\":\"KEYS\\u0001k1\\u0002\"}}",
                       "hello");
    shmq_rmt_cmd_t c;
    assert_int_equal(shmq_rmt_decode(b, len, &c), 0);
    assert_int_equal(c.code, 310);
    assert_int_equal(c.opaque, 42);
    assert_int_equal(c.version, 317);
    assert_int_equal(c.body_len, 5);
    assert_memory_equal(c.body, "hello", 5);
    char buf[32];
    assert_string_equal(shmq_rmt_ext(&c, "b", buf, sizeof(buf)), "TopicTest");
    assert_string_equal(shmq_rmt_ext(&c, "i", buf, sizeof(buf)), "KEYS\001k1\002");
    assert_string_equal(shmq_rmt_ext(&c, "n", buf, sizeof(buf)), "7");
    assert_string_equal(shmq_rmt_ext(&c, "t", buf, sizeof(buf)), "true");
    assert_null(shmq_rmt_ext(&c, "zz", buf, sizeof(buf)));
    int64_t v;
    assert_int_equal(shmq_rmt_ext_i64(&c, "e", 0, 65535, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(shmq_rmt_ext_i64(&c, "n", 0, 5, &v), SHMQ_E_ARG);
    assert_int_equal(shmq_rmt_ext_i64(&c, "b", 0, 5, &v), SHMQ_E_ARG);
    assert_int_equal(shmq_rmt_ext_i64(&c, "zz", 0, 5, &v), SHMQ_E_NOT_FOUND);
    shmq_rmt_cmd_free(&c);
}

static void test_decode_refuses_bad_headers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"code\":105,\"opaque\":1",                           /* broken JSON */
        "[105, 1]",                                             /* no object */
        "{\"opaque\":1}",                                       /* no code */
        "{\"code\":105}",                                       /* no opaque */
        "{\"code\":\"105\",\"opaque\":1}",                      /* code not a number */
        "{\"code\":1e3,\"opaque\":1}",                          /* code not an integer */
        "{\"code\":4294967296,\"opaque\":1}",                   /* beyond int32 */
        "{\"code\":105,\"opaque\":1,\"extFields\":[1]}",        /* extFields no object */
        "{\"code\":105,\"opaque\":1,\"extFields\":{\"a\":{}}}", /* a value no scalar */
        "{\"code\":105,\"code\":106,\"opaque\":1}",             /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[256];
        size_t len = frame(b, bad[i], "");
        shmq_rmt_cmd_t c;
        assert_int_equal(shmq_rmt_decode(b, len, &c), SHMQ_E_ARG);
        assert_null(c.ext);
        assert_true(shmq_error_detail()[0] != '\0');
    }
    /* a frame cut short does not decode */
    uint8_t b[256];
    size_t len = frame(b, "{\"code\":105,\"opaque\":1}", "body");
    shmq_rmt_cmd_t c;
    assert_int_equal(shmq_rmt_decode(b, len - 1, &c), SHMQ_E_ARG);
    /* too many extFields */
    char hdr[2048] = "{\"code\":1,\"opaque\":1,\"extFields\":{";
    for (int i = 0; i <= SHMQ_RMT_EXT_MAX; i++) {
        char kv[32];
        snprintf(kv, sizeof(kv), "%s\"k%d\":\"v\"", i ? "," : "", i);
        strcat(hdr, kv);
    }
    strcat(hdr, "}}");
    uint8_t big[4096];
    len = frame(big, hdr, "");
    assert_int_equal(shmq_rmt_decode(big, len, &c), SHMQ_E_ARG);
}

static void test_encode_answer_decodes_back(void **state)
{
    (void)state;
    json_t *ext =
        json_pack("{s:s, s:s}", "msgId", "7F00000100002A9F0000000000000000", "queueId", "2");
    uint8_t *hdr;
    size_t hlen;
    assert_int_equal(shmq_rmt_encode(SHMQ_RMT_SUCCESS, 42, SHMQ_RMT_FLAG_RESPONSE, "stored", ext, 3,
                                     &hdr, &hlen),
                     0);
    uint8_t b[1024];
    memcpy(b, hdr, hlen);
    memcpy(b + hlen, "abc", 3);
    free(hdr);
    assert_int_equal(shmq_rmt_frame_size(b, hlen + 3, SHMQ_RMT_FRAME_MAX), (int64_t)(hlen + 3));
    shmq_rmt_cmd_t c;
    assert_int_equal(shmq_rmt_decode(b, hlen + 3, &c), 0);
    assert_int_equal(c.code, 0);
    assert_int_equal(c.opaque, 42);
    assert_int_equal(c.flag, SHMQ_RMT_FLAG_RESPONSE);
    assert_int_equal(c.body_len, 3);
    char buf[8];
    assert_string_equal(shmq_rmt_ext(&c, "queueId", buf, sizeof(buf)), "2");
    shmq_rmt_cmd_free(&c);
    json_decref(ext);
    /* an answer past the frame limit is refused */
    assert_int_equal(shmq_rmt_encode(0, 1, 1, NULL, NULL, SHMQ_RMT_FRAME_MAX, &hdr, &hlen),
                     SHMQ_E_TOO_BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_size_waits_for_prefix_and_bounds_length),
        cmocka_unit_test(test_decode_reads_header_ext_fields_and_body),
        cmocka_unit_test(test_decode_refuses_bad_headers),
        cmocka_unit_test(test_encode_answer_decodes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
