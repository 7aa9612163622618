/*
 * CommitLog record codec: RocketMQ V1/V2 records with shmq's whole-record
 * __CRC32# property, the properties string, offset message ids, UNIQ_KEY
 * generation, and the Java-compatible tag and index key hashes.
 *
 * Encoding is on the append hot path: no allocation, one pass writing the
 * record, one CRC over the body and one over the record prefix.  Decoding
 * treats its input as untrusted (a file on disk, another process): every
 * field read is bounded by both TOTALSIZE and the bytes available, and each
 * failed check has its own error code.  Formats: ROCKETMQ-FACTS §1-§4, §8.3.
 */
#include "format/message.h"

#include <endian.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/crc.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/bytes.h"
#include "format/record_layout.h"

/* "__CRC32#" 0x01: the head of the whole-record CRC property. */
static const char crc_prop_head[] = SHMQ_PROP_CRC32 "\x01";
#define CRC_PROP_HEAD_LEN 9 /* 8 name bytes + the name/value separator */
#define CRC_PROP_DIGITS   10

static const char hex_upper[] = "0123456789ABCDEF";

/* ---- big-endian field access ------------------------------------------ */

/* ---- CRC and hashes ---------------------------------------------------- */

/* RocketMQ's masked CRC, for the encoder without a call in between. */
static inline uint32_t crc_masked(const void *buf, size_t len)
{
    /* crc32_gzip_refl takes a uint64_t length; ISA-L reads nothing for 0. */
    return crc32_gzip_refl(0, (const unsigned char *)buf, (uint64_t)len) & 0x7FFFFFFFu;
}

uint32_t shmq_crc32(const void *buf, size_t len)
{
    return crc32_gzip_refl(0, (const unsigned char *)buf, (uint64_t)len);
}

int32_t shmq_crc32_masked(const void *buf, size_t len)
{
    return (int32_t)crc_masked(buf, len);
}

/* ---- CRC combination --------------------------------------------------- *
 * crc32(A || B) = crc32(A) * x^(8 |B|) mod P  xor  crc32(B), with CRCs as zlib keeps them
 * (reflected: bit 31 holds x^0).  The encoder uses it to take the record CRC of a long body
 * from the body CRC it has just computed, instead of reading the body a second time. */

/* x^(8 d 16^i) mod P for each hex digit d of a length at position i (d = 0: x^0). */
static const uint32_t crc_x8n_digit[8][16] = {
    {0x80000000, 0x00800000, 0x00008000, 0x00000080, 0xedb88320, 0x3b83984b, 0xe1351b80, 0xed59b63b,
     0xb1e6b092, 0x1eb014d8, 0x8816eaf2, 0x533b85da, 0x6655004f, 0xe6050901, 0x77e1359f,
     0x60c76fe0},
    {0x80000000, 0xa06a2517, 0xed627dae, 0x15141c31, 0x88d14467, 0x4721589f, 0xe5b592b8, 0x6325605c,
     0xd7bbfe6a, 0xdb54814c, 0x0eaee722, 0x784d2a56, 0x62b6ca4b, 0x291ea462, 0x6b1d2b53,
     0x8fd2cd3c},
    {0x80000000, 0xec447f11, 0x8e7ea170, 0x05616c82, 0x6427800e, 0x5ef840e2, 0xbf110f7e, 0x118f848e,
     0x4d47bae0, 0xa84bdc84, 0x0b19ae7f, 0xaf5619bc, 0x6347a4bd, 0xd91ef3cb, 0x13d40d42,
     0x5b6cda72},
    {0x80000000, 0x09fe548f, 0x83852d0f, 0xe4b54665, 0x30362f1a, 0x668145e1, 0xf27674ad, 0xb8c9f94b,
     0x7b5a9cc3, 0x866744b2, 0xc99622b9, 0xafe90854, 0xec735cea, 0xefe9d761, 0x0f9f0002,
     0xf014301e},
    {0x80000000, 0x31fec169, 0x9fec022a, 0x169810b5, 0x6c8dedc4, 0x2484f1bc, 0x0abf1a4f, 0x31ca80c2,
     0x15d6874d, 0xbd2a626f, 0xaddc2f07, 0x6736439c, 0x07474644, 0xf4165146, 0xfb765627,
     0xe2faf430},
    {0x80000000, 0x5fde7a4e, 0xbad90e37, 0x799a8cf7, 0x2e4e5eef, 0x7ad256cc, 0x725d2aad, 0xc340f13e,
     0x4eaba214, 0x05efb6ad, 0x36a60923, 0x65b78f8d, 0xdfcd2365, 0x55252240, 0x2177bc48,
     0x3446c848},
    {0x80000000, 0xa8a472c0, 0x429a969e, 0x3e855758, 0x148d302a, 0xec8302fa, 0x6633295b, 0x9dd77bf8,
     0xc40ba6d0, 0xc0262b6b, 0x9c7b4c60, 0x48536a3e, 0x966bbc20, 0x21476b31, 0xa1c375b0,
     0x33f2d7b5},
    {0x80000000, 0xc4e22c3c, 0x40000000, 0x6271161e, 0x20000000, 0x31388b0f, 0x10000000, 0xf524c6a7,
     0x08000000, 0x972ae073, 0x04000000, 0xa62df319, 0x02000000, 0xbeae7aac, 0x01000000,
     0x5f573d56},
};

#if defined(__x86_64__)
/* Whether the CPU multiplies carry-less (PCLMULQDQ): decided once, before main(). */
static bool crc_have_clmul;

__attribute__((constructor)) static void crc_detect_clmul(void)
{
    __builtin_cpu_init();
    crc_have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
#endif

/* a * b mod P, bit by bit (zlib's multmodp); a must not be 0 (a power of x never is). */
static uint32_t crc_mulmod_bits(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) {
                break;
            }
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ 0xEDB88320u : b >> 1;
    }
    return p;
}

#if defined(__x86_64__)
/* a * b mod P: one carry-less product (63 bits, shifted to 64 so that its high half is the
 * x^31..x^0 part), then a Barrett reduction of its low half (x^63..x^32) by the reflected
 * constants mu = 0x1F7011641 and P = 0x1DB710641. */
__attribute__((target("pclmul,sse4.1"))) static inline uint32_t crc_mulmod_clmul(uint32_t a,
                                                                                 uint32_t b)
{
    const __m128i k = _mm_set_epi64x(0x1F7011641LL, 0x1DB710641LL);
    const __m128i lo32 = _mm_set_epi64x(0, 0xFFFFFFFFLL);
    __m128i r = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)b), 0x00);
    r = _mm_slli_epi64(r, 1);
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(r, lo32), k, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, lo32), k, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(r, t), 1);
}

/* crc * x^(8 len) mod P: the CRC crc of some bytes moved past len more bytes. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_shift_clmul(uint32_t crc, uint32_t len)
{
    /* x^(8 len) as the product of one factor per non-zero hex digit of len; the first
     * factor is taken as it is (x^0 = 1 is never multiplied by): a body of 128 or 1,024
     * bytes needs the final multiply only. */
    uint32_t x = crc_x8n_digit[0][len & 15];
    bool one = (len & 15) == 0;
    for (unsigned i = 1; (len >>= 4) != 0; i++) {
        if ((len & 15) != 0) {
            x = one ? crc_x8n_digit[i][len & 15] : crc_mulmod_clmul(x, crc_x8n_digit[i][len & 15]);
            one = false;
        }
    }
    return crc_mulmod_clmul(crc, x);
}
#endif

uint32_t shmq_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint32_t len_b)
{
    /* Bit by bit on every CPU: the encoder's carry-less path is compared with it. */
    uint32_t x = crc_x8n_digit[0][len_b & 15];
    for (unsigned i = 1; (len_b >>= 4) != 0; i++) {
        x = crc_mulmod_bits(x, crc_x8n_digit[i][len_b & 15]);
    }
    return crc_mulmod_bits(x, crc_a) ^ crc_b;
}

static inline bool utf8_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

/*
 * Java String.hashCode() of the string Java's UTF-8 decoder makes of s:
 * h = 31*h + unit over UTF-16 code units (supplementary characters become
 * surrogate pairs).  Malformed input becomes U+FFFD the way the JDK's
 * decoder does it: a maximal valid prefix of a sequence counts as one
 * replacement, a UTF-8 encoded surrogate as one replacement for its three
 * bytes, and a valid but unfinished sequence at the end as one replacement.
 */
int32_t shmq_java_hash(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    uint32_t h = 0;
    size_t i = 0;

    while (i < len) {
        uint8_t b1 = p[i];
        if (b1 < 0x80) {
            h = 31 * h + b1;
            i++;
            continue;
        }
        size_t rest = len - i;
        uint32_t cp = 0xFFFD;
        size_t used = 1;
        if (b1 >= 0xC2 && b1 <= 0xDF) {
            if (rest >= 2 && utf8_cont(p[i + 1])) {
                cp = ((uint32_t)(b1 & 0x1F) << 6) | (p[i + 1] & 0x3F);
                used = 2;
            }
        } else if (b1 >= 0xE0 && b1 <= 0xEF) {
            bool b2_ok = rest >= 2 && utf8_cont(p[i + 1]) && !(b1 == 0xE0 && p[i + 1] < 0xA0);
            if (!b2_ok) {
                used = 1;
            } else if (rest < 3) {
                used = rest; /* unfinished at the end: one replacement */
            } else if (!utf8_cont(p[i + 2])) {
                used = 2;
            } else {
                uint32_t c = ((uint32_t)(b1 & 0x0F) << 12) | ((uint32_t)(p[i + 1] & 0x3F) << 6) |
                             (p[i + 2] & 0x3F);
                used = 3;
                if (c < 0xD800 || c > 0xDFFF) {
                    cp = c;
                }
            }
        } else if (b1 >= 0xF0 && b1 <= 0xF4) {
            bool b2_ok = rest >= 2 && utf8_cont(p[i + 1]) && !(b1 == 0xF0 && p[i + 1] < 0x90) &&
                         !(b1 == 0xF4 && p[i + 1] > 0x8F);
            if (!b2_ok) {
                used = 1;
            } else if (rest < 3) {
                used = rest;
            } else if (!utf8_cont(p[i + 2])) {
                used = 2;
            } else if (rest < 4) {
                used = rest;
            } else if (!utf8_cont(p[i + 3])) {
                used = 3;
            } else {
                cp = ((uint32_t)(b1 & 0x07) << 18) | ((uint32_t)(p[i + 1] & 0x3F) << 12) |
                     ((uint32_t)(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
                used = 4;
            }
        }
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            h = 31 * h + (0xD800 + (v >> 10));
            h = 31 * h + (0xDC00 + (v & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
        i += used;
    }
    return (int32_t)h;
}

int64_t shmq_tags_code(const char *tags, size_t len)
{
    if (tags == NULL || len == 0) {
        return 0;
    }
    return (int64_t)shmq_java_hash(tags, len); /* sign-extended */
}

int32_t shmq_index_key_hash(const char *key, size_t len)
{
    int32_t h = shmq_java_hash(key, len);
    if (h == INT32_MIN) {
        return 0; /* Math.abs(Integer.MIN_VALUE) is still negative */
    }
    return h < 0 ? -h : h;
}

/* ---- properties -------------------------------------------------------- */

/*
 * One segment of a properties area as RocketMQ's decoder splits it: up to
 * the next 0x02; the first 0x01 separates name and value; the segment
 * counts only if both are non-empty.
 */
static bool props_segment(const char *props, size_t len, size_t *pos, const char **name,
                          size_t *name_len, const char **value, size_t *value_len, bool *valid)
{
    size_t start = *pos;
    if (start >= len) {
        return false;
    }
    const char *seg = props + start;
    const char *end = memchr(seg, SHMQ_PROP_SEP, len - start);
    size_t seg_len = end ? (size_t)(end - seg) : len - start;
    *pos = start + seg_len + 1;

    const char *sep = memchr(seg, SHMQ_PROP_NAME_VALUE_SEP, seg_len);
    *name = seg;
    *name_len = sep ? (size_t)(sep - seg) : seg_len;
    *value = sep ? sep + 1 : seg + seg_len;
    *value_len = sep ? seg_len - *name_len - 1 : 0;
    *valid = sep != NULL && *name_len > 0 && *value_len > 0;
    return true;
}

bool shmq_props_next(const char *props, size_t len, size_t *pos, const char **name,
                     size_t *name_len, const char **value, size_t *value_len)
{
    bool valid;
    while (props_segment(props, len, pos, name, name_len, value, value_len, &valid)) {
        if (valid) {
            return true;
        }
    }
    return false;
}

const char *shmq_props_get(const char *props, size_t len, const char *name, size_t *vlen)
{
    size_t want = strlen(name);
    size_t pos = 0, nl, vl;
    const char *n, *v, *found = NULL;

    while (shmq_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        if (nl == want && memcmp(n, name, want) == 0) {
            found = v; /* a later duplicate overrides an earlier one */
            *vlen = vl;
        }
    }
    return found;
}

static bool has_separator(const char *s, size_t len)
{
    return memchr(s, SHMQ_PROP_NAME_VALUE_SEP, len) != NULL ||
           memchr(s, SHMQ_PROP_SEP, len) != NULL;
}

int shmq_props_append(char *buf, size_t cap, size_t *len, const char *name, const char *value,
                      size_t value_len)
{
    size_t name_len = name ? strlen(name) : 0;
    if (name_len == 0 || value == NULL || value_len == 0) {
        return shmq_error_set(SHMQ_E_ARG, "property name and value must not be empty");
    }
    if (has_separator(name, name_len) || has_separator(value, value_len)) {
        return shmq_error_set(SHMQ_E_ARG, "property %s: name or value contains 0x01/0x02", name);
    }
    size_t cur = *len;
    size_t fix = (cur > 0 && buf[cur - 1] != SHMQ_PROP_SEP) ? 1 : 0;
    size_t need = cur + fix + name_len + 1 + value_len + 1;
    size_t limit = SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN;
    if (need > cap || need > limit) {
        return shmq_error_set(SHMQ_E_PROPS, "property %s: %zu bytes exceed %zu", name, need,
                              need > cap ? cap : limit);
    }
    char *p = buf + cur;
    if (fix) {
        *p++ = SHMQ_PROP_SEP;
    }
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = SHMQ_PROP_NAME_VALUE_SEP;
    memcpy(p, value, value_len);
    p += value_len;
    *p = SHMQ_PROP_SEP;
    *len = need;
    return 0;
}

/* True if some segment of props is named __CRC32# (valid or not). */
static bool props_name_crc(const char *props, size_t len)
{
    const size_t nlen = sizeof(SHMQ_PROP_CRC32) - 1;
    if (len < nlen) {
        return false; /* also when props is NULL */
    }
    const char *p = props, *end = props + len;

    /* One memchr per property: cheaper than a substring search on the hot path. */
    while ((size_t)(end - p) >= nlen) {
        if (memcmp(p, SHMQ_PROP_CRC32, nlen) == 0 &&
            ((size_t)(end - p) == nlen || p[nlen] == SHMQ_PROP_NAME_VALUE_SEP ||
             p[nlen] == SHMQ_PROP_SEP)) {
            return true;
        }
        const char *sep = memchr(p, SHMQ_PROP_SEP, (size_t)(end - p));
        if (sep == NULL) {
            break;
        }
        p = sep + 1;
    }
    return false;
}

/* ---- record layout ----------------------------------------------------- */

/* Bit i: byte i of the 16 at p is 0x00, 0x01 or 0x02 (which one, the byte says): one
 * unsigned compare with 2 instead of a mask per value. */
static inline uint32_t props_chunk_mask(const char *p)
{
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(2)), v));
#else
    uint32_t m = 0;
    for (unsigned i = 0; i < 16; i++) {
        m |= (uint32_t)((uint8_t)p[i] <= 2) << i;
    }
    return m;
#endif
}

/*
 * One segment [p, seg_end) of shmq_props_scan, nvs its first 0x01 (or NULL):
 * false when it is named __CRC32# (valid or not: as props_name_crc()).
 */
static inline bool props_scan_segment(const char *p, const char *seg_end, const char *nvs,
                                      shmq_props_info_t *info)
{
    const size_t crc_len = sizeof(SHMQ_PROP_CRC32) - 1, uk_len = sizeof(SHMQ_PROP_UNIQ_KEY) - 1;
    size_t seg_len = (size_t)(seg_end - p);
    if (seg_len >= crc_len && memcmp(p, SHMQ_PROP_CRC32, crc_len) == 0 &&
        (seg_len == crc_len || p[crc_len] == SHMQ_PROP_NAME_VALUE_SEP)) {
        return false;
    }
    /* A property counts when its name and value are both non-empty (shmq_props_next). */
    if (nvs != NULL && nvs > p && nvs + 1 < seg_end) {
        size_t nl = (size_t)(nvs - p);
        if (nl == uk_len && memcmp(p, SHMQ_PROP_UNIQ_KEY, uk_len) == 0) {
            info->uniq_key = nvs + 1; /* the last one wins */
            info->uniq_key_len = (size_t)(seg_end - nvs - 1);
        } else if (nl >= 5 && (p[0] == 'D' || p[0] == 'T')) {
            info->sched = true;
        }
    }
    return true;
}

/*
 * shmq_props_scan()'s usual case: the area is a single UNIQ_KEY property (what a plain send
 * carries), its value 16 bytes or more with no 0x00, 0x01 or 0x02 in it, with or without a
 * 0x02 after it.  True with *info filled as the full scan fills it; false when the full scan
 * has to decide (test_message compares the two).
 */
static inline bool props_scan_uniq_only(const char *props, size_t len, shmq_props_info_t *info)
{
    const size_t head = sizeof(SHMQ_PROP_UNIQ_KEY); /* the name and its 0x01 */
    size_t vend = len > 0 && props[len - 1] == SHMQ_PROP_SEP ? len - 1 : len;
    if (vend < head + 16 || memcmp(props, SHMQ_PROP_UNIQ_KEY "\001", head) != 0) {
        return false;
    }
    /* The value in 16-byte steps, the last one overlapping the one before. */
    uint32_t bits = 0;
    size_t off = head;
    for (; off + 16 <= vend; off += 16) {
        bits |= props_chunk_mask(props + off);
    }
    if (off < vend) {
        bits |= props_chunk_mask(props + vend - 16);
    }
    if (bits != 0) {
        return false;
    }
    info->uniq_key = props + head;
    info->uniq_key_len = vend - head;
    info->sched = false;
    return true;
}

int shmq_props_scan(const char *props, size_t len, shmq_props_info_t *info)
{
    if (props_scan_uniq_only(props, len, info)) {
        return 0;
    }
    return shmq_props_scan_general(props, len, info);
}

int shmq_props_copy_scan_general(char *dst, const char *src, size_t len, shmq_props_info_t *info)
{
    if (len > 0) {
        memcpy(dst, src, len);
    }
    return shmq_props_scan(dst, len, info);
}

int shmq_props_scan_general(const char *props, size_t len, shmq_props_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (len == 0) {
        return 0;
    }
    /* One pass, 16 bytes a step: a mask of the bytes 0x00, 0x01 and 0x02, in order; each
     * 0x02 ends a segment, the first 0x01 of a segment splits name from value.  The first
     * 0x00 is the first refusal, so a __CRC32# segment only marks the area until the end. */
    char tail[16];
    const char *seg = props, *nvs = NULL, *end = props + len;
    bool crc = false;
    for (size_t off = 0; off < len; off += 16) {
        const char *chunk = props + off;
        uint32_t bits;
        if (len - off >= 16) {
            bits = props_chunk_mask(chunk);
        } else if (len >= 16) {
            /* The last 16 bytes of the area; the bits of the bytes seen already dropped. */
            bits = props_chunk_mask(end - 16) >> (16 - (len - off));
        } else {
            /* Shorter than a step: a copy, its unused bytes not 0x00, 0x01 or 0x02. */
            memset(tail, 'x', sizeof(tail));
            memcpy(tail, props, len);
            bits = props_chunk_mask(tail);
        }
        /* Bit i is byte chunk[i] of the area (the bytes the masks above looked at). */
        for (; bits != 0; bits &= bits - 1) {
            unsigned i = (unsigned)__builtin_ctz(bits);
            char c = chunk[i];
            if (c == SHMQ_PROP_SEP) {
                crc |= !props_scan_segment(seg, chunk + i, nvs, info);
                seg = chunk + i + 1;
                nvs = NULL;
            } else if (c != SHMQ_PROP_NAME_VALUE_SEP) {
                return shmq_error_set(SHMQ_E_PROPS, "properties hold a 0x00 byte at %zu", off + i);
            } else if (nvs == NULL) {
                nvs = chunk + i;
            }
        }
    }
    if (seg < end) {
        crc |= !props_scan_segment(seg, end, nvs, info);
    }
    if (crc) {
        return shmq_error_set(SHMQ_E_PROPS, "properties already hold %s", SHMQ_PROP_CRC32);
    }
    return 0;
}

static inline uint32_t host_len(const shmq_host_t *h)
{
    return h->is_v6 ? 20 : 8;
}

int shmq_record_plan(const shmq_msg_in_t *m, unsigned flags, shmq_record_plan_t *pl)
{
    if (m->topic == NULL || m->topic_len == 0 || m->topic_len > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic length %zu not in 1..%d", m->topic_len,
                              SHMQ_TOPIC_MAX_ANY);
    }
    if ((m->body == NULL && m->body_len > 0) || (m->props == NULL && m->props_len > 0)) {
        return shmq_error_set(SHMQ_E_ARG, "NULL body or properties with a non-zero length");
    }
    if (m->props_len > SHMQ_PROPS_MAX) {
        return shmq_error_set(SHMQ_E_PROPS, "properties of %zu bytes exceed %d", m->props_len,
                              SHMQ_PROPS_MAX);
    }
    pl->add_sep = m->props_len > 0 && m->props[m->props_len - 1] != SHMQ_PROP_SEP;
    size_t props = m->props_len + (pl->add_sep ? 1 : 0) + SHMQ_CRC_PROP_LEN;
    if (props > SHMQ_PROPS_MAX) {
        return shmq_error_set(SHMQ_E_PROPS, "properties of %zu bytes with __CRC32# exceed %d",
                              props, SHMQ_PROPS_MAX);
    }
    if (!(flags & SHMQ_PLAN_PROPS_SCANNED)) {
        const char *nul = m->props_len > 0 ? memchr(m->props, 0, m->props_len) : NULL;
        if (nul != NULL) {
            return shmq_error_set(SHMQ_E_PROPS, "properties hold a 0x00 byte at %zu",
                                  (size_t)(nul - m->props));
        }
        if (props_name_crc(m->props, m->props_len)) {
            return shmq_error_set(SHMQ_E_PROPS, "properties already hold %s", SHMQ_PROP_CRC32);
        }
    }
    pl->props_len = (uint32_t)props;
    pl->v2 = m->topic_len > SHMQ_TOPIC_MAX;
    /* SHMQ_RECORD_FIXED_V1 counts two 8-byte hosts and a 1-byte topic length. */
    int64_t fixed = SHMQ_RECORD_FIXED_V1 + (host_len(&m->born_host) - 8) +
                    (host_len(&m->store_host) - 8) + pl->v2;
    if (m->body_len > (size_t)INT32_MAX) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "body of %zu bytes", m->body_len);
    }
    pl->total = fixed + (int64_t)m->body_len + (int64_t)m->topic_len + (int64_t)props;
    if (pl->total > INT32_MAX) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "record of %lld bytes", (long long)pl->total);
    }
    return 0;
}

int64_t shmq_record_size(const shmq_msg_in_t *m)
{
    shmq_record_plan_t pl;
    int rc = shmq_record_plan(m, 0, &pl);
    return rc < 0 ? rc : pl.total;
}

static inline uint8_t *put_host(uint8_t *p, const shmq_host_t *h, bool v4)
{
    /* Fixed-size copies: one store each, not a call with a length (v4: known to be IPv4). */
    if (!v4 && h->is_v6) {
        memcpy(p, h->addr, 16);
        p += 16;
    } else {
        memcpy(p, h->addr, 4);
        p += 4;
    }
    shmq_put_be32(p, (uint32_t)h->port);
    return p + 4;
}

/* The topic's len bytes (1..255) at p: 4 to 16 bytes (most names) as two overlapping
 * fixed-size moves, not a call with a length. */
static inline void put_topic(uint8_t *p, const char *topic, size_t len)
{
    if (len >= 8 && len <= 16) {
        uint64_t a, b;
        memcpy(&a, topic, 8);
        memcpy(&b, topic + len - 8, 8);
        memcpy(p, &a, 8);
        memcpy(p + len - 8, &b, 8);
    } else if (len >= 4 && len < 8) {
        uint32_t a, b;
        memcpy(&a, topic, 4);
        memcpy(&b, topic + len - 4, 4);
        memcpy(p, &a, 4);
        memcpy(p + len - 4, &b, 4);
    } else {
        memcpy(p, topic, len);
    }
}

/* "00".."99" with the ones digit first: two digits of crc_digits() per step. */
static const char digit_pairs_lsf[200] = {
#define P10(t) '0', t, '1', t, '2', t, '3', t, '4', t, '5', t, '6', t, '7', t, '8', t, '9', t
    P10('0'), P10('1'), P10('2'), P10('3'), P10('4'),
    P10('5'), P10('6'), P10('7'), P10('8'), P10('9'),
#undef P10
};

/* The five digits of x (< 100000) at out, least significant first: the top digit and the two
 * pairs below it taken from a 32.32 fixed-point fraction of x / 10^4, each pair by one multiply
 * by 100 (exact for every x below 10^5: an exhaustive comparison with % 10 over every masked
 * CRC value shows it). */
static inline void five_digits(char *out, uint32_t x)
{
    uint64_t t = (uint64_t)x * 429497u; /* ceil(2^32 / 10^4) */
    out[4] = (char)('0' + (t >> 32));
    t = (uint64_t)(uint32_t)t * 100u;
    memcpy(out + 2, &digit_pairs_lsf[2 * (t >> 32)], 2);
    t = (uint64_t)(uint32_t)t * 100u;
    memcpy(out + 0, &digit_pairs_lsf[2 * (t >> 32)], 2);
}

/* The 10 digits of a masked CRC, least significant first, '0'-padded: the low and the high
 * five digits as two independent chains. */
static inline __attribute__((always_inline)) void crc_digits(char *out, uint32_t v)
{
    five_digits(out, v % 100000);
    five_digits(out + 5, v / 100000);
}

/* shmq_record_encode_plan(), its record CRC in one pass over the record or, with combine,
 * from the body CRC (two instances, so that the usual short body keeps the one-pass code);
 * placed: shmq_record_encode_placed() (body, topic and properties are where the record holds
 * them already); v1_v4: the record is known to be V1 with IPv4 hosts (no look at either). */
static inline __attribute__((always_inline)) int64_t
encode_plan(const shmq_msg_in_t *m, const shmq_record_plan_t *pl, int64_t queue_offset,
            int64_t phys_offset, int64_t store_ts, uint8_t *dst, bool combine, bool placed,
            bool v1_v4)
{
    int32_t sysflag = m->sysflag & ~(SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6);
    if (!v1_v4 && m->born_host.is_v6) {
        sysflag |= SHMQ_SYSFLAG_BORNHOST_V6;
    }
    if (!v1_v4 && m->store_host.is_v6) {
        sysflag |= SHMQ_SYSFLAG_STOREHOST_V6;
    }
    const bool v2 = !v1_v4 && pl->v2;

    uint8_t *p = dst;
    /* Two adjacent big-endian 32-bit fields as one 64-bit store (the first in the high half):
     * TOTALSIZE and MAGICCODE, QUEUEID and FLAG. */
    shmq_put_be64(p + 0, (uint64_t)(uint32_t)pl->total << 32 |
                             (uint32_t)(v2 ? SHMQ_MAGIC_V2 : SHMQ_MAGIC_V1));
    shmq_put_be64(p + 12, (uint64_t)(uint32_t)m->queue_id << 32 | (uint32_t)m->flag);
    shmq_put_be64(p + 20, (uint64_t)queue_offset);
    shmq_put_be64(p + 28, (uint64_t)phys_offset);
    shmq_put_be32(p + 36, (uint32_t)sysflag);
    shmq_put_be64(p + 40, (uint64_t)m->born_ts);
    p = put_host(p + 48, &m->born_host, v1_v4);
    shmq_put_be64(p, (uint64_t)store_ts);
    p = put_host(p + 8, &m->store_host, v1_v4);
    shmq_put_be32(p, (uint32_t)m->reconsume_times);
    shmq_put_be64(p + 4, (uint64_t)m->prepared_tx_offset);
    shmq_put_be32(p + 12, (uint32_t)m->body_len);
    p += 16;
    if (!placed && m->body_len > 0) {
        memcpy(p, m->body, m->body_len);
    }
    /* BODYCRC of the bytes as written (the source may be shared memory: read once). */
    const uint8_t *body = p;
    uint32_t body_crc = crc32_gzip_refl(0, body, (uint64_t)m->body_len);
    shmq_put_be32(dst + 8, body_crc & 0x7FFFFFFFu);
    p += m->body_len;
    if (v2) {
        shmq_put_be16(p, (uint16_t)m->topic_len);
        p += 2;
    } else {
        *p++ = (uint8_t)m->topic_len;
    }
    if (!placed) {
        put_topic(p, m->topic, m->topic_len);
    }
    p += m->topic_len;
    shmq_put_be16(p, (uint16_t)pl->props_len);
    p += 2;
    if (!placed && m->props_len > 0) {
        memcpy(p, m->props, m->props_len);
    }
    p += m->props_len;
    if (pl->add_sep) {
        *p++ = SHMQ_PROP_SEP;
    }
    memcpy(p, crc_prop_head, CRC_PROP_HEAD_LEN);
    p += CRC_PROP_HEAD_LEN;
    /* The record CRC covers everything before the tail, offsets included.  Past
     * SHMQ_CRC_COMBINE_MIN body bytes it is put together from the CRCs of the head, of the
     * body (computed above) and of what follows the body, without reading the body again (where
     * the CPU multiplies carry-less; the bit-by-bit shift would cost more than the pass). */
    uint32_t crc;
#if defined(__x86_64__)
    if (combine) {
        const uint8_t *body_end = body + m->body_len,
                      *crc_end = dst + pl->total - SHMQ_CRC_PROP_LEN;
        crc = crc32_gzip_refl(0, dst, (uint64_t)(body - dst));
        crc = crc_shift_clmul(crc, (uint32_t)m->body_len) ^ body_crc;
        crc = crc32_gzip_refl(crc, body_end, (uint64_t)(crc_end - body_end)) & 0x7FFFFFFFu;
    } else
#else
    (void)combine;
    (void)body;
#endif
    {
        crc = crc_masked(dst, (size_t)pl->total - SHMQ_CRC_PROP_LEN);
    }
    crc_digits((char *)p, crc);
    p[CRC_PROP_DIGITS] = SHMQ_PROP_SEP;
    return pl->total;
}

#if defined(__x86_64__)
/* The long body's instance (placed decided at run time: a branch is nothing next to the
 * body's CRC). */
static __attribute__((noinline)) int64_t
encode_plan_combined(const shmq_msg_in_t *m, const shmq_record_plan_t *pl, int64_t queue_offset,
                     int64_t phys_offset, int64_t store_ts, uint8_t *dst, bool placed)
{
    return encode_plan(m, pl, queue_offset, phys_offset, store_ts, dst, true, placed, false);
}

/* The long body's instance of shmq_record_encode_placed_v1(). */
static __attribute__((noinline)) int64_t
encode_plan_combined_v1(const shmq_msg_in_t *m, const shmq_record_plan_t *pl, int64_t queue_offset,
                        int64_t phys_offset, int64_t store_ts, uint8_t *dst)
{
    return encode_plan(m, pl, queue_offset, phys_offset, store_ts, dst, true, true, true);
}
#endif

/* shmq_record_encode_plan() and shmq_record_encode_placed(), each with its own instance of
 * the short body's encode. */
static inline __attribute__((always_inline)) int64_t
encode_any(const shmq_msg_in_t *m, const shmq_record_plan_t *pl, int64_t queue_offset,
           int64_t phys_offset, int64_t store_ts, uint8_t *dst, bool placed, bool v1_v4)
{
#if defined(__x86_64__)
    if (m->body_len >= SHMQ_CRC_COMBINE_MIN && crc_have_clmul) {
        return v1_v4
                   ? encode_plan_combined_v1(m, pl, queue_offset, phys_offset, store_ts, dst)
                   : encode_plan_combined(m, pl, queue_offset, phys_offset, store_ts, dst, placed);
    }
#endif
    return encode_plan(m, pl, queue_offset, phys_offset, store_ts, dst, false, placed, v1_v4);
}

int64_t shmq_record_encode_plan(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                uint8_t *dst)
{
    return encode_any(m, pl, queue_offset, phys_offset, store_ts, dst, false, false);
}

int64_t shmq_record_encode_placed(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                  int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                  uint8_t *dst)
{
    return encode_any(m, pl, queue_offset, phys_offset, store_ts, dst, true, false);
}

int64_t shmq_record_encode_placed_v1(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                     int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                     uint8_t *dst)
{
    return encode_any(m, pl, queue_offset, phys_offset, store_ts, dst, true, true);
}

int64_t shmq_record_encode(const shmq_msg_in_t *m, int64_t queue_offset, int64_t phys_offset,
                           int64_t store_ts, uint8_t *dst, size_t cap)
{
    shmq_record_plan_t pl;
    int rc = shmq_record_plan(m, 0, &pl);
    if (rc < 0) {
        return rc;
    }
    if ((uint64_t)pl.total > cap) {
        return shmq_error_set(SHMQ_E_TRUNCATED, "record of %lld bytes, room for %zu",
                              (long long)pl.total, cap);
    }
    return shmq_record_encode_plan(m, &pl, queue_offset, phys_offset, store_ts, dst);
}

void shmq_record_write_blank(uint8_t *dst, int32_t remaining)
{
    shmq_put_be32(dst, (uint32_t)remaining);
    shmq_put_be32(dst + 4, (uint32_t)SHMQ_MAGIC_BLANK);
}

/* ---- decode ------------------------------------------------------------ */

int shmq_record_layout_past(int64_t end, int64_t total, size_t avail, const char *what)
{
    if (end > total) {
        return shmq_error_set(SHMQ_E_SIZE, "record: %s ends at %lld, past TOTALSIZE %lld", what,
                              (long long)end, (long long)total);
    }
    return shmq_error_set(SHMQ_E_TRUNCATED, "record: %s ends at %lld, only %zu bytes", what,
                          (long long)end, avail);
}

static void get_host(const uint8_t *p, bool v6, shmq_host_t *h)
{
    size_t n = v6 ? 16 : 4;
    memcpy(h->addr, p, n);
    h->is_v6 = v6;
    h->port = (int32_t)shmq_get_be32(p + n);
}

/* Where the __CRC32# tail of a properties area (len bytes at props) would be if present, or NULL.
 */
static const uint8_t *crc_tail_at(const char *props, uint32_t len)
{
    if (len < SHMQ_CRC_PROP_LEN) {
        return NULL;
    }
    const uint8_t *t = (const uint8_t *)props + len - SHMQ_CRC_PROP_LEN;
    /* The name claims the tail; a damaged value or end byte is then a mismatch. */
    if (memcmp(t, crc_prop_head, CRC_PROP_HEAD_LEN) != 0) {
        return NULL;
    }
    /* The name must start a property, not sit inside another one's value. */
    if (len > SHMQ_CRC_PROP_LEN && t[-1] != SHMQ_PROP_SEP) {
        return NULL;
    }
    return t;
}

/* True if each byte of x is an ASCII digit. */
static inline bool swar_all_digits(uint64_t x, uint64_t lanes)
{
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ULL & lanes, d3 = 0x3030303030303030ULL & lanes;
    /* 0x30..0x39: high nibble 3, and still 3 after adding 6 (no byte carries: 0x39 + 6 = 0x3F). */
    return (x & hi) == d3 && ((x + (0x0606060606060606ULL & lanes)) & hi) == d3;
}

/*
 * Value of the tail's digits (least significant first); -1 if one is not a
 * digit.  On every consumed record: eight digits at once (SWAR), ~25
 * instructions instead of a ten-step loop.
 */
static inline __attribute__((always_inline)) int64_t crc_digits_value(const uint8_t *d)
{
    uint64_t x;
    memcpy(&x, d, 8);
    x = le64toh(x); /* byte i = digit i, the least significant first */
    uint64_t tail = (uint64_t)d[8] | (uint64_t)d[9] << 8;
    if (!swar_all_digits(x, ~0ULL) || !swar_all_digits(tail, 0xFFFFULL)) {
        return -1;
    }
    x -= 0x3030303030303030ULL;
    const uint64_t m8 = 0x00FF00FF00FF00FFULL, m16 = 0x0000FFFF0000FFFFULL;
    x = (x & m8) + ((x >> 8) & m8) * 10;         /* 16-bit lanes: 2 digits, 0..99 */
    x = (x & m16) + ((x >> 16) & m16) * 100;     /* 32-bit lanes: 4 digits */
    x = (x & 0xFFFFFFFFULL) + (x >> 32) * 10000; /* 8 digits */
    tail -= 0x3030;
    return (int64_t)(x + ((tail & 0xFF) + (tail >> 8) * 10) * 100000000ULL);
}

static int crc_mismatch(int64_t phys, int64_t want, int32_t crc)
{
    return shmq_error_set(SHMQ_E_RECORD_CRC, "record at %lld: %s %lld, record has %d",
                          (long long)phys, SHMQ_PROP_CRC32, (long long)want, crc);
}

/*
 * The CRC checks of decode's flags on the record r (at buf, TOTALSIZE total;
 * r->has_record_crc says whether its properties end with a __CRC32# tail, at
 * tail), in decode's order: body CRC, then the record CRC.
 */
static int crc_checks(const uint8_t *buf, int64_t total, const shmq_record_t *r,
                      const uint8_t *tail, unsigned flags)
{
    if (flags & SHMQ_DECODE_CHECK_BODY_CRC) {
        int32_t crc = shmq_crc32_masked(r->body, r->body_len);
        if (crc != r->body_crc) {
            return shmq_error_set(SHMQ_E_BODY_CRC, "record at %lld: BODYCRC %d, body has %d",
                                  (long long)r->phys_offset, r->body_crc, crc);
        }
    }
    if (tail == NULL && (flags & SHMQ_DECODE_REQUIRE_RECORD_CRC)) {
        return shmq_error_set(SHMQ_E_RECORD_CRC, "record at %lld: no %s property",
                              (long long)r->phys_offset, SHMQ_PROP_CRC32);
    }
    if (tail != NULL && (flags & (SHMQ_DECODE_CHECK_RECORD_CRC | SHMQ_DECODE_REQUIRE_RECORD_CRC |
                                  SHMQ_DECODE_VERIFY))) {
        int64_t want = tail[SHMQ_CRC_PROP_LEN - 1] == SHMQ_PROP_SEP
                           ? crc_digits_value(tail + CRC_PROP_HEAD_LEN)
                           : -1;
        int32_t crc = shmq_crc32_masked(buf, (size_t)total - SHMQ_CRC_PROP_LEN);
        if (want != crc) {
            return shmq_error_set(SHMQ_E_RECORD_CRC, "record at %lld: %s %lld, record has %d",
                                  (long long)r->phys_offset, SHMQ_PROP_CRC32, (long long)want, crc);
        }
    }
    if (tail == NULL && (flags & SHMQ_DECODE_VERIFY)) {
        return shmq_record_check_crcs(r);
    }
    return 0;
}

int shmq_record_decode(const uint8_t *buf, size_t avail, int64_t expect_phys, unsigned flags,
                       shmq_record_t *out)
{
    memset(out, 0, sizeof(*out));
    shmq_record_layout_t l = {0}; /* set on success only, which the compiler cannot follow */
    int rc = shmq_record_layout(buf, avail, &l);
    out->total_size = l.total_size;
    out->magic = l.magic;
    if (rc <= 0) {
        return rc;
    }
    int64_t total = rc;
    out->body_crc = (int32_t)shmq_get_be32(buf + 8);
    out->queue_id = (int32_t)shmq_get_be32(buf + 12);
    out->flag = (int32_t)shmq_get_be32(buf + 16);
    out->queue_offset = (int64_t)shmq_get_be64(buf + 20);
    out->phys_offset = (int64_t)shmq_get_be64(buf + 28);
    out->sysflag = l.sysflag;
    out->born_ts = (int64_t)shmq_get_be64(buf + 40);
    get_host(buf + 48, l.born_v6, &out->born_host);
    out->store_ts = (int64_t)shmq_get_be64(buf + l.store_at);
    get_host(buf + l.store_at + 8, l.store_v6, &out->store_host);
    out->reconsume_times = (int32_t)shmq_get_be32(buf + l.recons_at);
    out->prepared_tx_offset = (int64_t)shmq_get_be64(buf + l.recons_at + 4);
    out->body = buf + l.body_at;
    out->body_len = l.body_len;
    out->topic = (const char *)buf + l.topic_at;
    out->topic_len = l.topic_len;
    out->props = (const char *)buf + l.props_at;
    out->props_len = l.props_len;

    if ((flags & SHMQ_DECODE_CHECK_PHYS) && out->phys_offset != expect_phys) {
        return shmq_error_set(SHMQ_E_PHYS_OFFSET, "record: PHYSICALOFFSET %lld, expected %lld",
                              (long long)out->phys_offset, (long long)expect_phys);
    }
    const uint8_t *tail = crc_tail_at(out->props, out->props_len);
    out->has_record_crc = tail != NULL;
    rc = crc_checks(buf, total, out, tail, flags);
    return rc < 0 ? rc : (int)total;
}

/*
 * shmq_record_verify() for every record but a well-formed __CRC32# tail
 * (shmq_record_crc_tail_value()) with only the record CRC asked for:
 * crc_checks() with the tail crc_tail_at() finds.  Out of line: the check of every record shmq
 * wrote keeps a small frame.
 */
static __attribute__((noinline)) int record_verify_general(const uint8_t *buf,
                                                           const shmq_record_layout_t *l,
                                                           int64_t phys, unsigned flags)
{
    const uint8_t *tail = crc_tail_at((const char *)buf + l->props_at, l->props_len);
    if (tail != NULL && !(flags & SHMQ_DECODE_CHECK_BODY_CRC)) {
        if (!(flags & (SHMQ_DECODE_CHECK_RECORD_CRC | SHMQ_DECODE_REQUIRE_RECORD_CRC |
                       SHMQ_DECODE_VERIFY))) {
            return 0;
        }
        int64_t want = tail[SHMQ_CRC_PROP_LEN - 1] == SHMQ_PROP_SEP
                           ? crc_digits_value(tail + CRC_PROP_HEAD_LEN)
                           : -1;
        int32_t crc = shmq_record_crc_before_tail(buf, l->total_size);
        return want == crc ? 0 : crc_mismatch(phys, want, crc);
    }
    /* A record without __CRC32# (RocketMQ's default), or a body CRC asked for. */
    shmq_record_t r;
    r.phys_offset = phys;
    r.body_crc = (int32_t)shmq_get_be32(buf + 8);
    r.body = buf + l->body_at;
    r.body_len = l->body_len;
    r.props = (const char *)buf + l->props_at;
    r.props_len = l->props_len;
    r.has_record_crc = tail != NULL;
    return crc_checks(buf, l->total_size, &r, tail, flags);
}

int shmq_record_verify(const uint8_t *buf, const shmq_record_layout_t *l, int64_t phys,
                       unsigned flags)
{
    if (!(flags & SHMQ_DECODE_CHECK_BODY_CRC) &&
        (flags &
         (SHMQ_DECODE_CHECK_RECORD_CRC | SHMQ_DECODE_REQUIRE_RECORD_CRC | SHMQ_DECODE_VERIFY))) {
        /* Every record shmq wrote: crc_checks()'s record CRC check alone, with ISA-L
         * called straight (on every consumed record). */
        int64_t want = shmq_record_crc_tail_value(buf + l->props_at, l->props_len);
        if (want >= 0) {
            int32_t crc = shmq_record_crc_before_tail(buf, l->total_size);
            return want == crc ? 0 : crc_mismatch(phys, want, crc);
        }
    }
    return record_verify_general(buf, l, phys, flags);
}

int shmq_record_crc_tail_distance(const shmq_record_t *r)
{
    if (r->props_len < SHMQ_CRC_PROP_LEN) {
        return -1;
    }
    const uint8_t *t = (const uint8_t *)r->props + r->props_len - SHMQ_CRC_PROP_LEN;
    int d = 0;
    for (int i = 0; i < CRC_PROP_HEAD_LEN; i++) {
        d += __builtin_popcount((unsigned)(t[i] ^ (uint8_t)crc_prop_head[i]));
    }
    for (int i = CRC_PROP_HEAD_LEN; i < CRC_PROP_HEAD_LEN + CRC_PROP_DIGITS; i++) {
        d += t[i] < '0' || t[i] > '9';
    }
    d += __builtin_popcount((unsigned)(t[SHMQ_CRC_PROP_LEN - 1] ^ SHMQ_PROP_SEP));
    if (r->props_len > SHMQ_CRC_PROP_LEN) {
        d += __builtin_popcount((unsigned)(t[-1] ^ SHMQ_PROP_SEP));
    }
    return d;
}

int shmq_record_check_unverified(const shmq_record_t *r)
{
    int d = shmq_record_crc_tail_distance(r);
    if (d > 0 && d <= SHMQ_CRC_TAIL_NEAR_BITS) {
        return shmq_error_set(SHMQ_E_RECORD_CRC,
                              "record at %lld: damaged %s property (%d bit%s off), the record "
                              "cannot be verified",
                              (long long)r->phys_offset, SHMQ_PROP_CRC32, d, d == 1 ? "" : "s");
    }
    const char *nul = r->props_len > 0 ? memchr(r->props, 0, r->props_len) : NULL;
    if (nul != NULL) {
        return shmq_error_set(SHMQ_E_RECORD_CRC,
                              "record at %lld: no %s and a 0x00 byte at %lld of its properties "
                              "(zeroed or torn)",
                              (long long)r->phys_offset, SHMQ_PROP_CRC32,
                              (long long)(nul - r->props));
    }
    return 0;
}

int shmq_record_check_crcs(const shmq_record_t *r)
{
    if (r->has_record_crc) {
        return 0; /* verified by decode; it covers the body and BODYCRC */
    }
    int rc = shmq_record_check_unverified(r);
    if (rc < 0) {
        return rc;
    }
    int32_t crc = shmq_crc32_masked(r->body, r->body_len);
    if (crc != r->body_crc) {
        return shmq_error_set(SHMQ_E_BODY_CRC, "record at %lld: BODYCRC %d, body has %d",
                              (long long)r->phys_offset, r->body_crc, crc);
    }
    return 0;
}

/* ---- identifiers ------------------------------------------------------- */

/*
 * Four bytes (the first in x's top byte) as eight uppercase hex characters
 * in memory order, without a table or a branch: each nibble is spread to a
 * byte of its own, then '0' is added, and 7 more for the nibbles 10..15
 * (+6 carries them into bit 4).  About 15 instructions for 8 characters.
 */
static inline uint64_t hex4_upper(uint32_t x)
{
    uint64_t v = x;
    v = (v | v << 16) & 0x0000FFFF0000FFFFULL;
    v = (v | v << 8) & 0x00FF00FF00FF00FFULL;
    v = (v | v << 4) & 0x0F0F0F0F0F0F0F0FULL; /* nibble k (first = most significant) in byte 7-k */
    uint64_t letters = ((v + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
    v += 0x3030303030303030ULL + letters * 7;
    return htobe64(v); /* the first nibble's character at the lowest address */
}

/* 16 bytes of b as 32 uppercase hex characters at o (no NUL): a message id in ~20 instructions. */
static inline void hex16_upper(char *o, const uint8_t *b)
{
#if defined(__SSE2__)
    const __m128i nib = _mm_set1_epi8(0x0F), nine = _mm_set1_epi8(9);
    const __m128i zero = _mm_set1_epi8('0'), seven = _mm_set1_epi8(7);
    __m128i in = _mm_loadu_si128((const __m128i *)(const void *)b);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(in, 4), nib);
    __m128i lo = _mm_and_si128(in, nib);
    __m128i c0 = _mm_unpacklo_epi8(hi, lo), c1 = _mm_unpackhi_epi8(hi, lo); /* nibbles in order */
    c0 = _mm_add_epi8(_mm_add_epi8(c0, zero), _mm_and_si128(_mm_cmpgt_epi8(c0, nine), seven));
    c1 = _mm_add_epi8(_mm_add_epi8(c1, zero), _mm_and_si128(_mm_cmpgt_epi8(c1, nine), seven));
    _mm_storeu_si128((__m128i *)(void *)o, c0);
    _mm_storeu_si128((__m128i *)(void *)(o + 16), c1);
#else
    for (int i = 0; i < 16; i += 4) {
        uint64_t v = hex4_upper(shmq_get_be32(b + i));
        memcpy(o + 2 * i, &v, 8);
    }
#endif
}

/* n bytes of b as 2n uppercase hex characters at o; returns o + 2n (no NUL). */
static char *hex_put(char *o, const uint8_t *b, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        hex16_upper(o, b + i);
        o += 32;
    }
    for (; i + 4 <= n; i += 4) {
        uint64_t v = hex4_upper(shmq_get_be32(b + i));
        memcpy(o, &v, 8);
        o += 8;
    }
    for (; i < n; i++) {
        *o++ = hex_upper[b[i] >> 4];
        *o++ = hex_upper[b[i] & 0xF];
    }
    return o;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

void shmq_msgid_format(const shmq_host_t *store_host, int64_t phys_offset, char out[SHMQ_MSGID_MAX])
{
    /* On every send result and every consumed message: straight from the binary fields. */
    uint8_t b[28];
    if (!store_host->is_v6) {
        /* IPv4: address, port and offset are 16 bytes, one hex16 at fixed places. */
        memcpy(b, store_host->addr, 4);
        shmq_put_be32(b + 4, (uint32_t)store_host->port);
        shmq_put_be64(b + 8, (uint64_t)phys_offset);
        hex16_upper(out, b);
        out[32] = '\0';
        return;
    }
    memcpy(b, store_host->addr, 16);
    shmq_put_be32(b + 16, (uint32_t)store_host->port);
    shmq_put_be64(b + 20, (uint64_t)phys_offset);
    hex16_upper(out, b);
    *hex_put(out + 32, b + 16, 12) = '\0';
}

void shmq_record_msgid(const uint8_t *buf, uint32_t store_at, bool store_v6,
                       char out[SHMQ_MSGID_MAX])
{
    /* On every consumed message: STOREHOST (address, port) and PHYSICALOFFSET are stored
     * big-endian, the id's order; an IPv4 host and the offset are 16 bytes, one hex16. */
    const uint8_t *host = buf + store_at + 8;
    uint8_t b[28];
    if (!store_v6) {
        uint64_t hp, po;
        memcpy(&hp, host, 8);
        memcpy(&po, buf + 28, 8);
        memcpy(b, &hp, 8);
        memcpy(b + 8, &po, 8);
        hex16_upper(out, b);
        out[32] = '\0';
        return;
    }
    memcpy(b, host, 20);
    memcpy(b + 20, buf + 28, 8);
    hex16_upper(out, b);
    *hex_put(out + 32, b + 16, 12) = '\0';
}

int shmq_msgid_parse(const char *text, shmq_host_t *store_host, int64_t *phys_offset)
{
    size_t len = text ? strnlen(text, SHMQ_MSGID_MAX) : 0;
    if (len != 32 && len != 56) {
        return shmq_error_set(SHMQ_E_MSGID, "message id of %zu characters, expected 32 or 56", len);
    }
    uint8_t b[28];
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_val(text[2 * i]), lo = hex_val(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return shmq_error_set(SHMQ_E_MSGID, "message id: non-hex character at %zu",
                                  hi < 0 ? 2 * i : 2 * i + 1);
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t n = len == 56 ? 16 : 4;
    memset(store_host, 0, sizeof(*store_host));
    memcpy(store_host->addr, b, n);
    store_host->is_v6 = len == 56;
    store_host->port = (int32_t)shmq_get_be32(b + n);
    *phys_offset = (int64_t)shmq_get_be64(b + n + 4);
    return 0;
}

void shmq_local_host(shmq_host_t *host, int32_t port)
{
    static const uint8_t loopback[4] = {127, 0, 0, 1};
    struct ifaddrs *list = NULL;

    memset(host, 0, sizeof(*host));
    host->port = port;
    memcpy(host->addr, loopback, 4);
    if (getifaddrs(&list) != 0) {
        return;
    }
    for (struct ifaddrs *ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
        if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET ||
            (ifa->ifa_flags & IFF_LOOPBACK) || !(ifa->ifa_flags & IFF_UP)) {
            continue;
        }
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ifa->ifa_addr;
        const uint8_t *a = (const uint8_t *)&sin->sin_addr.s_addr; /* network order */
        if (a[0] == 127) {
            continue;
        }
        memcpy(host->addr, a, 4);
        break;
    }
    freeifaddrs(list);
}

/*
 * UNIQ_KEY: a fixed per-process prefix (ip 4, pid 2, random word 4) as 20
 * hex characters, then ms since the start of the month (4) and a counter
 * (2).  The prefix is rebuilt in a forked child, whose pid differs.
 *
 * On every send: the month's ms are turned into hex only when they changed
 * since this thread's last key (many keys share a millisecond), and the
 * counter's two bytes come from a table of byte pairs.
 */
static char uniq_prefix[20];
static pthread_once_t uniq_once = PTHREAD_ONCE_INIT;
static _Atomic bool uniq_ready; /* uniq_init has run: the prefix and uniq_hex_pair are set */
static _Atomic uint32_t uniq_counter;
static char uniq_hex_pair[256][2]; /* byte i as two uppercase hex characters */
/* Month bounds (ms since the epoch, local time), cached per thread. */
static __thread int64_t uniq_month_start, uniq_month_end;
/* The last ms-in-month this thread encoded and its 8 hex characters (no month is
 * UINT32_MAX ms long: the first key always encodes). */
static __thread uint32_t uniq_last_ms = UINT32_MAX;
static __thread uint64_t uniq_last_hex;

static void uniq_prefix_build(void)
{
    static uint8_t ip[4];
    static bool have_ip;
    uint8_t b[10];
    uint32_t rnd;

    if (!have_ip) {
        shmq_host_t h;
        shmq_local_host(&h, 0);
        memcpy(ip, h.addr, 4);
        have_ip = true;
    }
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rnd = (uint32_t)ts.tv_nsec * 2654435761u ^ (uint32_t)getpid();
    }
    memcpy(b, ip, 4);
    shmq_put_be16(b + 4, (uint16_t)getpid());
    memcpy(b + 6, &rnd, 4);
    hex_put(uniq_prefix, b, sizeof(b));
}

static void uniq_init(void)
{
    for (int i = 0; i < 256; i++) {
        uniq_hex_pair[i][0] = hex_upper[i >> 4];
        uniq_hex_pair[i][1] = hex_upper[i & 0xF];
    }
    uniq_prefix_build();
    /* The child is single-threaded when this runs; no other reader races it. */
    pthread_atfork(NULL, NULL, uniq_prefix_build);
    /* Release: the table and the prefix are written before a thread skips pthread_once. */
    atomic_store_explicit(&uniq_ready, true, memory_order_release);
}

static void uniq_month_bounds(int64_t now_ms)
{
    time_t now = (time_t)(now_ms / 1000);
    struct tm tm;
    localtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    uniq_month_start = (int64_t)mktime(&tm) * 1000;
    tm.tm_mon += 1;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    uniq_month_end = (int64_t)mktime(&tm) * 1000;
}

size_t shmq_uniq_key_generate_at(char out[SHMQ_UNIQ_KEY_MAX], int64_t now_ms)
{
    /* Acquire: pairs with uniq_init's release; pthread_once only until it has run. */
    if (__builtin_expect(!atomic_load_explicit(&uniq_ready, memory_order_acquire), 0)) {
        pthread_once(&uniq_once, uniq_init);
    }

    if (now_ms < uniq_month_start || now_ms >= uniq_month_end) {
        uniq_month_bounds(now_ms);
    }
    /* Relaxed: only uniqueness of the value matters, not ordering. */
    uint32_t count = atomic_fetch_add_explicit(&uniq_counter, 1, memory_order_relaxed);

    /* The prefix, then ms in the month (4 bytes, wraps like Java's int) and the count (2). */
    memcpy(out, uniq_prefix, sizeof(uniq_prefix));
    uint32_t ms = (uint32_t)(now_ms - uniq_month_start);
    if (ms != uniq_last_ms) {
        uniq_last_ms = ms;
        uniq_last_hex = hex4_upper(ms);
    }
    memcpy(out + sizeof(uniq_prefix), &uniq_last_hex, 8);
    memcpy(out + sizeof(uniq_prefix) + 8, uniq_hex_pair[(uint8_t)(count >> 8)], 2);
    memcpy(out + sizeof(uniq_prefix) + 10, uniq_hex_pair[(uint8_t)count], 2);
    out[SHMQ_UNIQ_KEY_LEN] = '\0';
    return SHMQ_UNIQ_KEY_LEN;
}

void shmq_uniq_key_generate(char out[SHMQ_UNIQ_KEY_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    shmq_uniq_key_generate_at(out, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

size_t shmq_uniq_key_generate_next(char out[SHMQ_UNIQ_KEY_MAX], int64_t now_ms)
{
    /* This thread's last key had this millisecond: shmq_uniq_key_generate_at() set it all up
     * then (uniq_init, its acquire, the month), and the millisecond's hex is cached.  The
     * month's bounds first: the millisecond is within it only then. */
    if (__builtin_expect(now_ms < uniq_month_start || now_ms >= uniq_month_end ||
                             (uint32_t)(now_ms - uniq_month_start) != uniq_last_ms,
                         0)) {
        return shmq_uniq_key_generate_at(out, now_ms);
    }
    /* Relaxed: as in shmq_uniq_key_generate_at. */
    uint32_t count = atomic_fetch_add_explicit(&uniq_counter, 1, memory_order_relaxed);
    memcpy(out, uniq_prefix, sizeof(uniq_prefix));
    memcpy(out + sizeof(uniq_prefix), &uniq_last_hex, 8);
    memcpy(out + sizeof(uniq_prefix) + 8, uniq_hex_pair[(uint8_t)(count >> 8)], 2);
    memcpy(out + sizeof(uniq_prefix) + 10, uniq_hex_pair[(uint8_t)count], 2);
    out[SHMQ_UNIQ_KEY_LEN] = '\0';
    return SHMQ_UNIQ_KEY_LEN;
}
