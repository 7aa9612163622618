/*
 * Big-endian integers in byte buffers, as Java's ByteBuffer writes them
 * (every RocketMQ file and frame): unaligned, through memcpy.
 */
#ifndef SHMQ_BASE_BYTES_H
#define SHMQ_BASE_BYTES_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void shmq_put_be16(uint8_t *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, 2);
}

static inline void shmq_put_be32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}

static inline void shmq_put_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

static inline uint16_t shmq_get_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}

static inline uint32_t shmq_get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static inline uint64_t shmq_get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

/*
 * a and b (n bytes each) are equal: 8 bytes at a time, the last 8 (or 4)
 * overlapping the ones before; inline, for short names compared on a hot
 * path (topics), where a call to memcmp costs more than the compare.
 */
static inline bool shmq_bytes_equal(const void *av, const void *bv, size_t n)
{
    const uint8_t *a = av, *b = bv;
    uint64_t x, y;
    if (n >= 8) {
        if (n <= 16) { /* the usual topic: its first and last eight bytes, no loop */
            uint64_t h, k;
            memcpy(&x, a, 8);
            memcpy(&y, b, 8);
            memcpy(&h, a + n - 8, 8);
            memcpy(&k, b + n - 8, 8);
            return x == y && h == k;
        }
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) {
                return false;
            }
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t h, k, t, u;
        memcpy(&h, a, 4);
        memcpy(&k, b, 4);
        memcpy(&t, a + n - 4, 4);
        memcpy(&u, b + n - 4, 4);
        return h == k && t == u;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

/* FNV-1a, 64 bits: h is SHMQ_FNV_BASIS to start, or a previous result to go on. */
#define SHMQ_FNV_BASIS 0xcbf29ce484222325ULL

static inline uint64_t shmq_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
