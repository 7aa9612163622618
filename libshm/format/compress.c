/*
 * Compressed message bodies (compress.h): RocketMQ's sysflag bits, LZ4
 * frames for the producer, and bounded decompression of the three types a
 * RocketMQ client writes (LZ4 frame, zstd frame, zlib stream).
 *
 * Every decompressor writes into one buffer that grows by doubling and is
 * never larger than max_len + 1 bytes: a body that would expand past
 * max_len is refused as soon as its output reaches that size, whatever the
 * stream claims about its content size.
 */
#include "format/compress.h"

#include <errno.h>
#include <lz4frame.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* First output buffer of a decompression; it doubles from there. */
#define FIRST_OUT_CAP 65536

int shmq_body_compression(int32_t sysflag)
{
    if (!(sysflag & SHMQ_SYSFLAG_COMPRESSED)) {
        return SHMQ_COMPRESSION_NONE;
    }
    int type = (int)(((uint32_t)sysflag & SHMQ_SYSFLAG_COMPRESS_MASK) >> 8);
    if (type == 0) {
        return SHMQ_COMPRESSION_ZLIB; /* pre-5.x clients set bit 0 only */
    }
    if (type > SHMQ_COMPRESSION_ZLIB) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "sysflag 0x%x: compression type %d is none of "
                              "LZ4 (1), ZSTD (2), ZLIB (3)",
                              (unsigned)sysflag, type);
    }
    return type;
}

int32_t shmq_body_compression_sysflag(int type)
{
    return SHMQ_SYSFLAG_COMPRESSED | (int32_t)((unsigned)type << 8);
}

static LZ4F_preferences_t lz4_prefs(size_t len)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentSize = (unsigned long long)len;
    return prefs;
}

size_t shmq_body_lz4_bound(size_t len)
{
    LZ4F_preferences_t prefs = lz4_prefs(len);
    return LZ4F_compressFrameBound(len, &prefs);
}

int64_t shmq_body_compress_lz4(const void *src, size_t len, void *dst, size_t cap)
{
    LZ4F_preferences_t prefs = lz4_prefs(len);
    if (cap < LZ4F_compressFrameBound(len, &prefs)) {
        return shmq_error_set(SHMQ_E_ARG, "LZ4 frame of %zu bytes: %zu bytes of room", len, cap);
    }
    size_t n = LZ4F_compressFrame(dst, cap, src, len, &prefs);
    if (LZ4F_isError(n)) {
        return shmq_error_set(SHMQ_E_ARG, "LZ4 frame: %s", LZ4F_getErrorName(n));
    }
    return (int64_t)n;
}

/* The growing output of one decompression: at most limit = max_len + 1 bytes. */
typedef struct out_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t limit;
} out_buf_t;

/* Room for more output: 0, SHMQ_E_TOO_BIG when the buffer is at its limit, -ENOMEM. */
static int out_grow(out_buf_t *o)
{
    if (o->len < o->cap) {
        return 0;
    }
    if (o->cap >= o->limit) {
        return SHMQ_E_TOO_BIG;
    }
    size_t cap = o->cap ? o->cap * 2 : FIRST_OUT_CAP;
    if (cap > o->limit || cap < o->cap) {
        cap = o->limit;
    }
    uint8_t *np = realloc(o->p, cap);
    if (np == NULL) {
        return -ENOMEM;
    }
    o->p = np;
    o->cap = cap;
    return 0;
}

static int too_big(size_t max_len)
{
    return shmq_error_set(SHMQ_E_TOO_BIG, "the body expands past maxMessageSize (%zu bytes)",
                          max_len);
}

static int lz4_decompress(const uint8_t *src, size_t len, out_buf_t *o)
{
    LZ4F_dctx *ctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) {
        return -ENOMEM;
    }
    size_t in = 0;
    size_t hint = 1; /* 0: the last frame ended */
    int rc = 0;
    while (rc == 0 && (in < len || hint != 0)) {
        if ((rc = out_grow(o)) < 0) {
            break;
        }
        size_t dn = o->cap - o->len;
        size_t sn = len - in;
        hint = LZ4F_decompress(ctx, o->p + o->len, &dn, src + in, &sn, NULL);
        if (LZ4F_isError(hint)) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "not an LZ4 frame at byte %zu: %s", in,
                                LZ4F_getErrorName(hint));
            break;
        }
        in += sn;
        o->len += dn;
        if (hint != 0 && in == len && dn == 0 && o->len < o->cap) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "LZ4 frame truncated after %zu bytes", len);
        }
    }
    LZ4F_freeDecompressionContext(ctx);
    return rc;
}

static int zlib_decompress(const uint8_t *src, size_t len, out_buf_t *o)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK) {
        return -ENOMEM;
    }
    int rc = 0;
    size_t in = 0;
    for (;;) {
        if ((rc = out_grow(o)) < 0) {
            break;
        }
        /* At most 1 GiB a step: avail_in and avail_out are 32-bit. */
        size_t sn = len - in < (1u << 30) ? len - in : (1u << 30);
        size_t dn = o->cap - o->len < (1u << 30) ? o->cap - o->len : (1u << 30);
        zs.next_in = (Bytef *)(uintptr_t)(src + in);
        zs.avail_in = (uInt)sn;
        zs.next_out = o->p + o->len;
        zs.avail_out = (uInt)dn;
        int zr = inflate(&zs, Z_NO_FLUSH);
        in += sn - zs.avail_in;
        o->len += dn - zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (in != len) {
                rc = shmq_error_set(SHMQ_E_CORRUPT, "%zu bytes after the zlib stream", len - in);
            }
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_out != 0) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "zlib stream truncated after %zu bytes", len);
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "not a zlib stream at byte %zu: %s", in,
                                zs.msg ? zs.msg : "inflate failed");
            break;
        }
        if (in == len && zs.avail_out != 0) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "zlib stream truncated after %zu bytes", len);
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static int zstd_decompress(const uint8_t *src, size_t len, size_t max_len, out_buf_t *o)
{
    ZSTD_DCtx *ctx = ZSTD_createDCtx();
    if (ctx == NULL) {
        return -ENOMEM;
    }
    /* The window a frame may ask for: no more than the output may hold (a frame asking for
     * more is refused, not given memory). */
    int wlog = 10;
    while (wlog < 31 && ((size_t)1 << wlog) < max_len) {
        wlog++;
    }
    ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, wlog);
    ZSTD_inBuffer ib = {src, len, 0};
    size_t hint = 1; /* 0: the last frame ended */
    int rc = 0;
    while (rc == 0 && (ib.pos < len || hint != 0)) {
        if ((rc = out_grow(o)) < 0) {
            break;
        }
        ZSTD_outBuffer ob = {o->p + o->len, o->cap - o->len, 0};
        size_t before = ib.pos;
        hint = ZSTD_decompressStream(ctx, &ob, &ib);
        if (ZSTD_isError(hint)) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "not a zstd frame at byte %zu: %s", before,
                                ZSTD_getErrorName(hint));
            break;
        }
        o->len += ob.pos;
        if (hint != 0 && ib.pos == len && ob.pos < ob.size) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "zstd frame truncated after %zu bytes", len);
        }
    }
    ZSTD_freeDCtx(ctx);
    return rc;
}

int shmq_body_decompress(int type, const void *src, size_t len, size_t max_len, uint8_t **out,
                         size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (src == NULL && len > 0) {
        return shmq_error_set(SHMQ_E_ARG, "decompress: NULL body of %zu bytes", len);
    }
    out_buf_t o = {NULL, 0, 0, max_len + 1};
    int rc;
    switch (type) {
    case SHMQ_COMPRESSION_LZ4:
        rc = lz4_decompress(src, len, &o);
        break;
    case SHMQ_COMPRESSION_ZLIB:
        rc = zlib_decompress(src, len, &o);
        break;
    case SHMQ_COMPRESSION_ZSTD:
        rc = zstd_decompress(src, len, max_len, &o);
        break;
    default:
        return shmq_error_set(SHMQ_E_ARG, "decompress: compression type %d", type);
    }
    if (rc == 0 && o.len > max_len) {
        rc = SHMQ_E_TOO_BIG;
    }
    if (rc == SHMQ_E_TOO_BIG) {
        too_big(max_len);
    } else if (rc == -ENOMEM) {
        shmq_error_set(-ENOMEM, "decompress: no memory for the body");
    }
    if (rc < 0) {
        free(o.p);
        return rc;
    }
    if (o.p == NULL) {
        o.p = malloc(1); /* an empty body: still a buffer to own */
        if (o.p == NULL) {
            return shmq_error_set(-ENOMEM, "decompress: no memory for the body");
        }
    }
    *out = o.p;
    *out_len = o.len;
    return 0;
}
