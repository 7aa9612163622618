/*
 * Unit tests for compress.c, compressed message bodies: RocketMQ's sysflag
 * bits map to the right type (type bits 0 read as zlib, 4..7 refused); an
 * LZ4 frame the producer writes, a zlib stream and a zstd frame as other
 * clients write them decompress to the original body; and hostile bodies
 * (garbage, a cut stream, trailing bytes, a bomb expanding past the limit,
 * a stream of another type than its bits say) are refused with an error,
 * never with more output than the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "format/compress.h"

#define BODY_LEN 16384
#define MAX_LEN  (4 * 1024 * 1024)

/* A compressible body: text lines with a counter. */
static uint8_t *make_body(size_t len)
{
    uint8_t *b = malloc(len);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)("shmq compressible body line "[i % 28] + (i / 997) % 3);
    }
    return b;
}

static size_t lz4_of(const uint8_t *body, size_t len, uint8_t **out)
{
    size_t cap = shmq_body_lz4_bound(len);
    *out = malloc(cap);
    assert_non_null(*out);
    int64_t n = shmq_body_compress_lz4(body, len, *out, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static size_t zlib_of(const uint8_t *body, size_t len, uint8_t **out)
{
    uLongf n = compressBound(len);
    *out = malloc(n);
    assert_non_null(*out);
    assert_int_equal(compress2(*out, &n, body, len, 5), Z_OK);
    return n;
}

static size_t zstd_of(const uint8_t *body, size_t len, uint8_t **out)
{
    size_t cap = ZSTD_compressBound(len);
    *out = malloc(cap);
    assert_non_null(*out);
    size_t n = ZSTD_compress(*out, cap, body, len, 3);
    assert_false(ZSTD_isError(n));
    return n;
}

static void test_sysflag_bits_map_to_rocketmq_compression_types(void **state)
{
    (void)state;
    assert_int_equal(shmq_body_compression(0), SHMQ_COMPRESSION_NONE);
    assert_int_equal(shmq_body_compression(0x100), SHMQ_COMPRESSION_NONE); /* no bit 0 */
    assert_int_equal(shmq_body_compression(0x1), SHMQ_COMPRESSION_ZLIB);
    assert_int_equal(shmq_body_compression(0x101), SHMQ_COMPRESSION_LZ4);
    assert_int_equal(shmq_body_compression(0x201), SHMQ_COMPRESSION_ZSTD);
    assert_int_equal(shmq_body_compression(0x301), SHMQ_COMPRESSION_ZLIB);
    assert_int_equal(shmq_body_compression(0x30B), SHMQ_COMPRESSION_ZLIB);
    for (int t = 4; t < 8; t++) {
        assert_int_equal(shmq_body_compression(0x1 | (t << 8)), SHMQ_E_CORRUPT);
    }
    assert_int_equal(shmq_body_compression_sysflag(SHMQ_COMPRESSION_LZ4), 0x101);
    assert_int_equal(shmq_body_compression_sysflag(SHMQ_COMPRESSION_ZLIB), 0x301);
}

static void round_trip(int type, size_t (*enc)(const uint8_t *, size_t, uint8_t **), size_t len)
{
    uint8_t *body = make_body(len ? len : 1);
    uint8_t *z;
    size_t zl = enc(body, len, &z);
    if (len >= BODY_LEN) {
        assert_true(zl < len / 2);
    }
    uint8_t *out;
    size_t out_len;
    assert_int_equal(shmq_body_decompress(type, z, zl, MAX_LEN, &out, &out_len), 0);
    assert_int_equal(out_len, len);
    if (len > 0) {
        assert_memory_equal(out, body, len);
    }
    free(out);
    free(z);
    free(body);
}

static void test_lz4_frame_round_trips(void **state)
{
    (void)state;
    round_trip(SHMQ_COMPRESSION_LZ4, lz4_of, BODY_LEN);
    round_trip(SHMQ_COMPRESSION_LZ4, lz4_of, 1);
    round_trip(SHMQ_COMPRESSION_LZ4, lz4_of, 300000); /* several 64 KiB blocks, output grows */
}

static void test_zlib_stream_of_other_clients_decompresses(void **state)
{
    (void)state;
    round_trip(SHMQ_COMPRESSION_ZLIB, zlib_of, BODY_LEN);
    round_trip(SHMQ_COMPRESSION_ZLIB, zlib_of, 300000);
}

static void test_zstd_frame_of_other_clients_decompresses(void **state)
{
    (void)state;
    round_trip(SHMQ_COMPRESSION_ZSTD, zstd_of, BODY_LEN);
    round_trip(SHMQ_COMPRESSION_ZSTD, zstd_of, 300000);
}

static void expect_refused(int type, const uint8_t *src, size_t len, size_t max_len, int err)
{
    uint8_t *out = (uint8_t *)1;
    size_t out_len = 7;
    assert_int_equal(shmq_body_decompress(type, src, len, max_len, &out, &out_len), err);
    assert_null(out);
    assert_int_equal(out_len, 0);
}

static void test_garbage_and_cut_streams_are_corrupt(void **state)
{
    (void)state;
    uint8_t *body = make_body(BODY_LEN);
    uint8_t garbage[256];
    for (size_t i = 0; i < sizeof(garbage); i++) {
        garbage[i] = (uint8_t)(i * 37 + 11);
    }
    size_t (*enc[3])(const uint8_t *, size_t, uint8_t **) = {lz4_of, zlib_of, zstd_of};
    int types[3] = {SHMQ_COMPRESSION_LZ4, SHMQ_COMPRESSION_ZLIB, SHMQ_COMPRESSION_ZSTD};
    for (int i = 0; i < 3; i++) {
        expect_refused(types[i], garbage, sizeof(garbage), MAX_LEN, SHMQ_E_CORRUPT);
        expect_refused(types[i], garbage, 0, MAX_LEN, SHMQ_E_CORRUPT);
        uint8_t *z;
        size_t zl = enc[i](body, BODY_LEN, &z);
        /* Cut anywhere: refused, never a short body. */
        for (size_t cut = 1; cut < zl; cut += 1 + cut / 4) {
            expect_refused(types[i], z, cut, MAX_LEN, SHMQ_E_CORRUPT);
        }
        /* Bytes after the stream. */
        uint8_t *longer = malloc(zl + 3);
        memcpy(longer, z, zl);
        memcpy(longer + zl, "xyz", 3);
        expect_refused(types[i], longer, zl + 3, MAX_LEN, SHMQ_E_CORRUPT);
        /* A stream of another type than the bits say. */
        expect_refused(types[(i + 1) % 3], z, zl, MAX_LEN, SHMQ_E_CORRUPT);
        free(longer);
        free(z);
    }
    free(body);
}

static void test_bomb_past_the_limit_is_refused(void **state)
{
    (void)state;
    /* 64 MiB of zeros compress to a few KiB; the limit is 4 MiB. */
    size_t big = 64u * 1024 * 1024;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    size_t (*enc[3])(const uint8_t *, size_t, uint8_t **) = {lz4_of, zlib_of, zstd_of};
    int types[3] = {SHMQ_COMPRESSION_LZ4, SHMQ_COMPRESSION_ZLIB, SHMQ_COMPRESSION_ZSTD};
    for (int i = 0; i < 3; i++) {
        uint8_t *z;
        size_t zl = enc[i](zeros, big, &z);
        assert_true(zl < big / 100);
        expect_refused(types[i], z, zl, MAX_LEN, SHMQ_E_TOO_BIG);
        free(z);
    }
    /* Exactly at the limit is fine, one byte over is not. */
    uint8_t *z;
    size_t zl = lz4_of(zeros, 1000, &z);
    uint8_t *out;
    size_t out_len;
    assert_int_equal(shmq_body_decompress(SHMQ_COMPRESSION_LZ4, z, zl, 1000, &out, &out_len), 0);
    assert_int_equal(out_len, 1000);
    free(out);
    expect_refused(SHMQ_COMPRESSION_LZ4, z, zl, 999, SHMQ_E_TOO_BIG);
    free(z);
    free(zeros);
}

static void test_unknown_type_is_an_argument_error(void **state)
{
    (void)state;
    uint8_t b[4] = {0};
    expect_refused(0, b, sizeof(b), MAX_LEN, SHMQ_E_ARG);
    expect_refused(4, b, sizeof(b), MAX_LEN, SHMQ_E_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sysflag_bits_map_to_rocketmq_compression_types),
        cmocka_unit_test(test_lz4_frame_round_trips),
        cmocka_unit_test(test_zlib_stream_of_other_clients_decompresses),
        cmocka_unit_test(test_zstd_frame_of_other_clients_decompresses),
        cmocka_unit_test(test_garbage_and_cut_streams_are_corrupt),
        cmocka_unit_test(test_bomb_past_the_limit_is_refused),
        cmocka_unit_test(test_unknown_type_is_an_argument_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
