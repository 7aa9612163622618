/*
 * Fuzz target: decompressing stored message bodies (libshm/format/compress.c),
 * the bytes a consumer reads from a record whose sysflag says COMPRESSED.
 * The input's first byte chooses the type (LZ4, ZSTD, ZLIB: byte % 3 + 1),
 * the rest is the stored body.  A body that decompresses never gives more
 * than the limit; one that does not leaves nothing behind.  Then the rest
 * is compressed as a producer does and must come back whole.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/compress.h"

#define LIMIT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int type = data[0] % 3 + 1;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = shmq_body_decompress(type, body, len, LIMIT, &out, &out_len);
    if (rc == 0) {
        if (out == NULL || out_len > LIMIT) {
            abort();
        }
        free(out);
    } else if (out != NULL || out_len != 0 ||
               (rc != SHMQ_E_CORRUPT && rc != SHMQ_E_TOO_BIG && rc != -ENOMEM)) {
        abort();
    }
    size_t cap = shmq_body_lz4_bound(len);
    uint8_t *z = malloc(cap);
    if (z == NULL) {
        return 0;
    }
    int64_t zl = shmq_body_compress_lz4(body, len, z, cap);
    if (zl <= 0) {
        abort();
    }
    rc = shmq_body_decompress(SHMQ_COMPRESSION_LZ4, z, (size_t)zl, len, &out, &out_len);
    if (rc != 0 || out_len != len || (len > 0 && memcmp(out, body, len) != 0)) {
        abort();
    }
    free(out);
    free(z);
    return 0;
}
