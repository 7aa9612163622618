/*
 * Light record reads for the store's workers (record_scan.h): the header
 * fields, the properties the dispatcher and the indexer look up, and the
 * index key hash.  Each runs on every record the store takes, in each of
 * those processes; the checks on the record's bytes are
 * shmq_record_layout() (record_layout.h), the ones shmq_record_decode()
 * (message.c) starts with.
 */
#include "format/record_scan.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSE2__) && defined(__x86_64__)
#include <smmintrin.h>
#include <stdbool.h>
#include <tmmintrin.h>
#endif

#include "base/bytes.h"
#include "format/record_layout.h"

int shmq_record_head_decode(const uint8_t *buf, size_t avail, int64_t expect_phys, unsigned flags,
                            shmq_record_head_t *out)
{
    return shmq_record_head_decode_inline(buf, avail, expect_phys, flags, out);
}

void shmq_record_head_from(const shmq_record_t *r, shmq_record_head_t *out)
{
    out->total_size = r->total_size;
    out->magic = r->magic;
    out->queue_id = r->queue_id;
    out->sysflag = r->sysflag;
    out->queue_offset = r->queue_offset;
    out->phys_offset = r->phys_offset;
    out->store_ts = r->store_ts;
    out->topic = r->topic;
    out->topic_len = r->topic_len;
    out->props = r->props;
    out->props_len = r->props_len;
}

/* ---- properties ------------------------------------------------------------------------ */

/* seg (no 0x02 inside) is "name 0x01 value" with a non-empty value: take the value. */
static inline void take(const char *seg, size_t seg_len, const char *name, size_t name_len,
                        const char **v, uint32_t *vl)
{
    /* name holds no 0x01: seg[name_len] == 0x01 makes it the first, as RocketMQ splits. */
    if (seg_len > name_len + 1 && seg[name_len] == SHMQ_PROP_NAME_VALUE_SEP &&
        memcmp(seg, name, name_len) == 0) {
        *v = seg + name_len + 1;
        *vl = (uint32_t)(seg_len - name_len - 1);
    }
}

#if !defined(__SSE2__)
/* True if no byte of the eight in x is 0x02. */
static inline bool no_sep8(uint64_t x)
{
    uint64_t v = x ^ 0x0202020202020202ULL; /* a 0x02 byte becomes 0 */
    return ((v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL) == 0;
}
#endif

/*
 * props ends with an intact __CRC32# property (shmq writes it last): one
 * segment of its own, "__CRC32#" 0x01, ten bytes without a 0x02, 0x02.
 * Its name is none the scan looks for, so the scan may stop before it.
 */
static bool ends_with_crc_property(const char *props, size_t len)
{
    if (len < SHMQ_CRC_PROP_LEN) {
        return false;
    }
    const char *t = props + len - SHMQ_CRC_PROP_LEN;
    if (len > SHMQ_CRC_PROP_LEN && t[-1] != SHMQ_PROP_SEP) {
        return false;
    }
#if defined(__SSE2__)
    /* "__CR" as a word, then the last 16 bytes in one compare: "C32#" 0x01 equal, the ten
     * value bytes not 0x02, the end byte 0x02. */
    uint32_t h4, w4;
    memcpy(&h4, t, 4);
    memcpy(&w4, SHMQ_PROP_CRC32, 4);
    const __m128i want =
        _mm_setr_epi8('C', '3', '2', '#', SHMQ_PROP_NAME_VALUE_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP,
                      SHMQ_PROP_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP,
                      SHMQ_PROP_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP, SHMQ_PROP_SEP);
    unsigned eq = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(t + 4)), want));
    return h4 == w4 && eq == 0x801Fu;
#else
    if (t[SHMQ_CRC_PROP_LEN - 1] != SHMQ_PROP_SEP ||
        memcmp(t, SHMQ_PROP_CRC32 "\001", sizeof(SHMQ_PROP_CRC32)) != 0) {
        return false;
    }
    uint64_t x;
    memcpy(&x, t + sizeof(SHMQ_PROP_CRC32), 8);
    return no_sep8(x) && t[SHMQ_CRC_PROP_LEN - 3] != SHMQ_PROP_SEP &&
           t[SHMQ_CRC_PROP_LEN - 2] != SHMQ_PROP_SEP;
#endif
}

/*
 * The first 0x02 in [p, end), or NULL; props is the start of the area p lies in.  Inline, 16
 * bytes a step: the segments are short, a call to memchr() costs more than the search.
 * Nothing outside [props, end) is read (the last step reads the area's last 16 bytes).
 */
static inline const char *find_sep(const char *props, const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i sep = _mm_set1_epi8(SHMQ_PROP_SEP);
    for (; end - p >= 16; p += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), sep));
        if (m != 0) {
            return p + __builtin_ctz(m);
        }
    }
    if (p < end && end - props >= 16) {
        /* The bits of the bytes before p dropped. */
        unsigned seen = (unsigned)(16 - (end - p));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
                         _mm_loadu_si128((const __m128i *)(const void *)(end - 16)), sep)) >>
                     seen;
        return m != 0 ? p + __builtin_ctz(m) : NULL;
    }
#else
    (void)props;
#endif
    for (; p < end; p++) {
        if (*p == SHMQ_PROP_SEP) {
            return p;
        }
    }
    return NULL;
}

/* The properties a scan looks for (a constant in each caller: the other cases fold away). */
enum {
    WANT_TAGS = 1u << 0,
    WANT_KEYS = 1u << 1,
    WANT_UNIQ_KEY = 1u << 2,
    WANT_DELAY = 1u << 3,
    WANT_ALL = WANT_TAGS | WANT_KEYS | WANT_UNIQ_KEY | WANT_DELAY,
};

/* shmq_record_props_scan() of the properties in want (the others stay NULL, 0). */
static inline __attribute__((always_inline)) void
props_scan(const char *props, size_t len, unsigned want, shmq_record_props_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ends_with_crc_property(props, len)) {
        len -= SHMQ_CRC_PROP_LEN;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *seg = props + pos;
        const char *sep = find_sep(props, seg, props + len);
        size_t seg_len = sep ? (size_t)(sep - seg) : len - pos;
        /* A later occurrence overrides an earlier one, as shmq_props_get(). */
        switch (seg[0]) {
        case 'T':
            if (want & WANT_TAGS) {
                take(seg, seg_len, SHMQ_PROP_TAGS, sizeof(SHMQ_PROP_TAGS) - 1, &out->tags,
                     &out->tags_len);
            }
            break;
        case 'K':
            if (want & WANT_KEYS) {
                take(seg, seg_len, SHMQ_PROP_KEYS, sizeof(SHMQ_PROP_KEYS) - 1, &out->keys,
                     &out->keys_len);
            }
            break;
        case 'U':
            if (want & WANT_UNIQ_KEY) {
                take(seg, seg_len, SHMQ_PROP_UNIQ_KEY, sizeof(SHMQ_PROP_UNIQ_KEY) - 1,
                     &out->uniq_key, &out->uniq_key_len);
            }
            break;
        case 'D':
            if (want & WANT_DELAY) {
                take(seg, seg_len, SHMQ_PROP_DELAY, sizeof(SHMQ_PROP_DELAY) - 1, &out->delay,
                     &out->delay_len);
            }
            break;
        default:
            break;
        }
        pos += seg_len + 1;
    }
}

void shmq_record_props_scan(const char *props, size_t len, shmq_record_props_t *out)
{
    props_scan(props, len, WANT_ALL, out);
}

void shmq_record_props_scan_tags(const char *props, size_t len, bool delay,
                                 shmq_record_props_t *out)
{
    if (delay) {
        props_scan(props, len, WANT_TAGS | WANT_DELAY, out);
    } else {
        props_scan(props, len, WANT_TAGS, out);
    }
}

#if defined(__SSE2__)
/*
 * The sixteen bytes at props + at hold a 'T' at each set bit of mt: take the
 * TAGS of those that start a segment (at 0 or after a 0x02), the last one
 * found in *v, *vl.  Out of line: most areas have none.
 */
static __attribute__((noinline)) void tags_in_step(const char *props, size_t len, size_t at,
                                                   unsigned mt, const char **v, uint32_t *vl)
{
    const size_t name_len = sizeof(SHMQ_PROP_TAGS) - 1;
    unsigned ms = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(props + at)),
                       _mm_set1_epi8(SHMQ_PROP_SEP)));
    unsigned after_sep = at == 0 || props[at - 1] == SHMQ_PROP_SEP;
    for (unsigned starts = ((ms << 1) | after_sep) & mt; starts != 0; starts &= starts - 1) {
        size_t s = at + (size_t)__builtin_ctz(starts);
        /* The name and 0x01 hold no 0x02: they are the segment's if they fit before len. */
        if (len - s > name_len + 1 && props[s + name_len] == SHMQ_PROP_NAME_VALUE_SEP &&
            memcmp(props + s, SHMQ_PROP_TAGS, name_len) == 0) {
            const char *val = props + s + name_len + 1;
            const char *sep = memchr(val, SHMQ_PROP_SEP, (size_t)(props + len - val));
            size_t n = (size_t)((sep ? sep : props + len) - val);
            if (n > 0) {
                *v = val;
                *vl = (uint32_t)n;
            }
        }
    }
}
#endif

/* shmq_record_props_find_tags() by the segment scan. */
static __attribute__((noinline)) const char *find_tags_scan(const char *props, size_t len,
                                                            uint32_t *tags_len)
{
    shmq_record_props_t pr;
    props_scan(props, len, WANT_TAGS, &pr);
    *tags_len = pr.tags_len;
    return pr.tags;
}

const char *shmq_record_props_find_tags(const char *props, size_t len, uint32_t *tags_len)
{
#if defined(__SSE2__)
    if (len >= 16) {
        /* The 'T's, sixteen bytes a step; only a step holding one looks for the segment
         * starts (usually none does: a TAGS segment is the only one of a usual area that
         * starts with 'T'). */
        const __m128i t = _mm_set1_epi8('T');
        const char *tags = NULL;
        uint32_t n = 0;
        size_t i = 0;
        for (; i + 16 <= len; i += 16) {
            unsigned mt = (unsigned)_mm_movemask_epi8(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(props + i)), t));
            if (mt != 0) {
                tags_in_step(props, len, i, mt, &tags, &n);
            }
        }
        if (i < len) {
            /* The area's last sixteen bytes, the 1 to 15 seen already dropped. */
            size_t at = len - 16;
            unsigned mt = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
                              _mm_loadu_si128((const __m128i *)(const void *)(props + at)), t)) &
                          (0xFFFFu << (i - at));
            if (mt != 0) {
                tags_in_step(props, len, at, mt, &tags, &n);
            }
        }
        *tags_len = n;
        return tags;
    }
#endif
    return find_tags_scan(props, len, tags_len);
}

void shmq_record_props_scan_keys(const char *props, size_t len, shmq_record_props_t *out)
{
    props_scan(props, len, WANT_UNIQ_KEY | WANT_KEYS, out);
}

/* ---- index key hash ----------------------------------------------------------------------- */

#define P1  31u
#define P2  (P1 * 31u)
#define P3  (P2 * 31u)
#define P4  (P3 * 31u)
#define P5  (P4 * 31u)
#define P6  (P5 * 31u)
#define P7  (P6 * 31u)
#define P8  (P7 * 31u) /* unsigned: wraps modulo 2^32 as Java's int arithmetic */
#define P12 (P8 * P4)

/*
 * Java's h = 31*h + c over ASCII bytes (one UTF-16 unit each), eight at a
 * time: the eight bytes b0..b7 add b0*31^7 + ... + b7, summed in SWAR lanes
 * (pairs in 16 bits, quads in 32; ASCII keeps every lane from carrying).
 * False at a non-ASCII byte (the caller decodes UTF-8 instead).
 */
#define HIGH_BITS 0x8080808080808080ULL

/* h continued over eight ASCII bytes, x as loaded from memory (byte 0 first). */
static inline uint32_t hash_word(uint32_t h, uint64_t x)
{
    const uint64_t m16 = 0x00FF00FF00FF00FFULL, m32 = 0x0000FFFF0000FFFFULL;
    x = le64toh(x); /* byte i of the key in bits 8i..8i+7 */
    /* 16-bit lanes: b(2k)*31 + b(2k+1) <= 127*32 */
    x = (x & m16) * P1 + ((x >> 8) & m16);
    /* 32-bit lanes: pair(2k)*31^2 + pair(2k+1) < 2^22 */
    x = (x & m32) * P2 + ((x >> 16) & m32);
    uint32_t v = (uint32_t)x * P4 + (uint32_t)(x >> 32);
    return h * P8 + v;
}

static bool hash_ascii(uint32_t *hp, const uint8_t *p, size_t n)
{
    uint32_t h = *hp;
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        if (x & HIGH_BITS) {
            return false;
        }
        h = hash_word(h, x);
        p += 8;
        n -= 8;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] & 0x80) {
            return false;
        }
        h = h * 31u + p[i];
    }
    *hp = h;
    return true;
}

/* Non-zero exactly when a byte of x is 0x02 or not ASCII (when all are ASCII, the
 * subtraction sets a high bit only from the first byte that x ^ 0x02.. makes 0 on). */
static inline uint64_t sep_or_high8(uint64_t x)
{
    return (((x ^ 0x0202020202020202ULL) - 0x0101010101010101ULL) | x) & HIGH_BITS;
}

/* RocketMQ's Math.abs of the hash: 0 for Integer.MIN_VALUE (its abs is still negative). */
static int32_t hash_abs(uint32_t h)
{
    int32_t s = (int32_t)h;
    if (s == INT32_MIN) {
        return 0;
    }
    return s < 0 ? -s : s;
}

int32_t shmq_topic_key_hash(const char *topic, size_t topic_len, const char *key, size_t key_len)
{
    uint32_t h = 0;
    if (hash_ascii(&h, (const uint8_t *)topic, topic_len)) {
        h = h * 31u + '#';
        if (hash_ascii(&h, (const uint8_t *)key, key_len)) {
            return hash_abs(h);
        }
    }
    /* Not ASCII: Java decodes the whole string's UTF-8 (a sequence may span the parts). */
    char small[1024];
    size_t len = topic_len + 1 + key_len;
    char *buf = len <= sizeof(small) ? small : malloc(len);
    if (!buf) {
        return -1; /* never matches: hashes are >= 0 */
    }
    memcpy(buf, topic, topic_len);
    buf[topic_len] = '#';
    memcpy(buf + topic_len + 1, key, key_len);
    int32_t r = shmq_index_key_hash(buf, len);
    if (buf != small) {
        free(buf);
    }
    return r;
}

/* The memo's topic is topic (a topic of 8 to 16 bytes: two words each side, no call). */
static inline bool memo_topic_is(const shmq_key_hash_memo_t *m, const char *topic, size_t len)
{
    return m->topic_len == len && shmq_bytes_equal(m->topic, topic, len);
}

/* shmq_topic_key_hash() of the memo's topic and key (a non-ASCII key), out of line. */
static __attribute__((noinline)) int32_t memo_plain(const shmq_key_hash_memo_t *m, const char *key,
                                                    size_t key_len)
{
    return shmq_topic_key_hash(m->topic, m->topic_len, key, key_len);
}

/*
 * shmq_topic_key_hash_memo() once the memo's topic is topic: the key, from
 * the words it shares with the previous one on.
 */
static inline __attribute__((always_inline)) int32_t memo_key(shmq_key_hash_memo_t *m,
                                                              const char *key, size_t key_len)
{
    /* The words this key shares with the previous one: their hash is known. */
    size_t w = 0, shared_max = key_len / 8 < m->words ? key_len / 8 : m->words;
    uint64_t x;
    while (w < shared_max) {
        memcpy(&x, key + 8 * w, 8);
        if (x != m->word[w]) {
            break;
        }
        w++;
    }
    uint32_t h = w ? m->after[w - 1] : m->topic_hash;
    const uint8_t *p = (const uint8_t *)key + 8 * w;
    size_t n = key_len - 8 * w;
    m->words = (uint32_t)w; /* from here on the remembered words are this key's */
    size_t keep = SHMQ_KEY_MEMO_WORDS;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&x, p, 8);
        if (x & HIGH_BITS) {
            return memo_plain(m, key, key_len);
        }
        h = hash_word(h, x);
        if (w < keep) {
            if (sep_or_high8(x) != 0) {
                keep = 0; /* a 0x02: not remembered, nor any word after it */
            } else {
                m->word[w] = x;
                m->after[w] = h;
                m->words = (uint32_t)++w;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] & 0x80) {
            return memo_plain(m, key, key_len);
        }
        h = h * 31u + p[i];
    }
    return hash_abs(h);
}

/*
 * Make topic the memo's topic (compared, remembered when new).  False when
 * the memo cannot hold it (empty, longer than the memo, not ASCII).
 */
static bool memo_take_topic(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len)
{
    if (topic_len == 0 || topic_len > sizeof(m->topic)) {
        return false;
    }
    if (!memo_topic_is(m, topic, topic_len)) {
        uint32_t th = 0;
        if (!hash_ascii(&th, (const uint8_t *)topic, topic_len)) {
            return false;
        }
        memcpy(m->topic, topic, topic_len);
        m->topic_len = (uint32_t)topic_len;
        m->topic_hash = th * 31u + '#';
        m->words = 0;
    }
    return true;
}

/*
 * shmq_topic_key_hash_memo() for any topic: compared, remembered when new.
 * Out of line: the usual call (a topic of 8 to 16 bytes, the previous key's)
 * keeps a small frame.
 */
static __attribute__((noinline)) int32_t memo_any_topic(shmq_key_hash_memo_t *m, const char *topic,
                                                        size_t topic_len, const char *key,
                                                        size_t key_len)
{
    if (!memo_take_topic(m, topic, topic_len)) {
        return shmq_topic_key_hash(topic, topic_len, key, key_len);
    }
    return memo_key(m, key, key_len);
}

int32_t shmq_topic_key_hash_memo(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len,
                                 const char *key, size_t key_len)
{
    if (topic_len >= 8 && topic_len <= 16 && memo_topic_is(m, topic, topic_len)) {
        return memo_key(m, key, key_len);
    }
    return memo_any_topic(m, topic, topic_len, key, key_len);
}

#if defined(__SSE2__)
#define P16 (P8 * P8)
#define P32 (P16 * P16)

/* 31^k modulo 2^32, for k 0..16. */
static const uint32_t pow31[17] = {1,         P1,        P2,        P3,        P4,        P5,
                                   P6,        P7,        P8,        (P8 * P1), (P8 * P2), (P8 * P3),
                                   (P8 * P4), (P8 * P5), (P8 * P6), (P8 * P7), P16};

/* Sixteen 0x00 then sixteen 0xFF: loaded from byte r, the last r bytes of a vector kept. */
static const uint8_t keep_last[32] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

/*
 * The sixteen bytes b0..b15 of x (each below 128) as four sums, each in a
 * 32-bit lane: b0*31^3 + b1*31^2 + b2*31 + b3, then those of b4..b7,
 * b8..b11, b12..b15 (each below 2^22: no lane overflows).  Pairs
 * b(2k)*31 + b(2k+1) by one multiply-add of the bytes widened to 16 bits,
 * packed back to 16 bits (each at most 127*32), then pairs of pairs.
 */
static inline __m128i quads16(__m128i x)
{
    const __m128i zero = _mm_setzero_si128();
    const __m128i w1 = _mm_set1_epi32(1 << 16 | 31);        /* 16-bit lanes 31, 1 */
    const __m128i w2 = _mm_set1_epi32(1 << 16 | (31 * 31)); /* 16-bit lanes 31^2, 1 */
    __m128i lo = _mm_madd_epi16(_mm_unpacklo_epi8(x, zero), w1);
    __m128i hi = _mm_madd_epi16(_mm_unpackhi_epi8(x, zero), w1);
    return _mm_madd_epi16(_mm_packs_epi32(lo, hi), w2);
}

/* The four 32-bit lanes q0..q3 of q times w0..w3 (w in the even and odd lanes of we and wo),
 * as 64-bit lanes whose low halves add up to the sum, modulo 2^32. */
static inline __m128i weigh(__m128i q, __m128i we, __m128i wo)
{
    return _mm_add_epi64(_mm_mul_epu32(q, we), _mm_mul_epu32(_mm_srli_epi64(q, 32), wo));
}

/* The low 32 bits of the two 64-bit lanes of v, added. */
static inline uint32_t lanes_sum(__m128i v)
{
    return (uint32_t)_mm_cvtsi128_si32(_mm_add_epi32(v, _mm_unpackhi_epi64(v, v)));
}

/* Bytes of x that are a 0x02 or not ASCII: their high bits set. */
static inline __m128i sep_or_high16(__m128i x)
{
    return _mm_or_si128(x, _mm_cmpeq_epi8(x, _mm_set1_epi8(SHMQ_PROP_SEP)));
}

/*
 * The walk of Java's h = 31*h + c from *hp over the n >= 16 bytes at p, as
 * the body of hash_ascii16() and hash_ascii16_sse41(), which differ only in
 * how they multiply: SUM32(a, b) is the sum, modulo 2^32, of the 32 bytes of
 * a then b weighted 31^31..31^0, and SUM16(a) that of a's 16 bytes weighted
 * 31^15..31^0.  The value is h*31^n + sum of b_i*31^(n-1-i), 32 bytes a
 * step.  A rest of fewer than 16 bytes is the last 16 bytes of the value
 * with the ones counted already masked to 0 (weight 0, no 0x02, ASCII):
 * each byte is counted, and checked, from one load.  False (and *hp
 * unchanged) when a byte is a 0x02 or not ASCII.
 */
#define HASH_ASCII16_WALK(SUM32, SUM16)                                                            \
    uint32_t h = *hp;                                                                              \
    __m128i bad = _mm_setzero_si128();                                                             \
    for (; n >= 32; p += 32, n -= 32) {                                                            \
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);                             \
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));                      \
        bad = _mm_or_si128(bad, _mm_or_si128(sep_or_high16(a), sep_or_high16(b)));                 \
        h = h * P32 + SUM32(a, b);                                                                 \
    }                                                                                              \
    if (n >= 16) {                                                                                 \
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);                             \
        bad = _mm_or_si128(bad, sep_or_high16(a));                                                 \
        h = h * P16 + SUM16(a);                                                                    \
        p += 16;                                                                                   \
        n -= 16;                                                                                   \
    }                                                                                              \
    if (n > 0) {                                                                                   \
        __m128i a =                                                                                \
            _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + n - 16)),            \
                          _mm_loadu_si128((const __m128i *)(const void *)(keep_last + n)));        \
        bad = _mm_or_si128(bad, sep_or_high16(a));                                                 \
        h = h * pow31[n] + SUM16(a);                                                               \
    }                                                                                              \
    if (_mm_movemask_epi8(bad) != 0) {                                                             \
        return false;                                                                              \
    }                                                                                              \
    *hp = h;                                                                                       \
    return true

/* SUM16 with the multiplies of SSE2 (quads16, weigh): weights 31^12, 31^8, 31^4, 1 of the
 * quads. */
static inline uint32_t sum16_sse2(__m128i a)
{
    const __m128i we = _mm_setr_epi32((int)P12, 0, (int)P4, 0);
    const __m128i wo = _mm_setr_epi32((int)P8, 0, 1, 0);
    return lanes_sum(weigh(quads16(a), we, wo));
}

/* SUM32 with the multiplies of SSE2: a's quads take 31^16 more than b's. */
static inline uint32_t sum32_sse2(__m128i a, __m128i b)
{
    const __m128i we_hi = _mm_setr_epi32((int)(P12 * P16), 0, (int)(P4 * P16), 0);
    const __m128i wo_hi = _mm_setr_epi32((int)(P8 * P16), 0, (int)P16, 0);
    const __m128i we_lo = _mm_setr_epi32((int)P12, 0, (int)P4, 0);
    const __m128i wo_lo = _mm_setr_epi32((int)P8, 0, 1, 0);
    return lanes_sum(
        _mm_add_epi64(weigh(quads16(a), we_hi, wo_hi), weigh(quads16(b), we_lo, wo_lo)));
}

/* The hash of the walk above with the multiplies of SSE2. */
static inline __attribute__((always_inline)) bool hash_ascii16(uint32_t *hp, const uint8_t *p,
                                                               size_t n)
{
    HASH_ASCII16_WALK(sum32_sse2, sum16_sse2);
}

#if defined(__x86_64__)
/* Whether the CPU has SSSE3 and SSE4.1 (pmaddubsw, pmulld): decided once, before main(). */
static bool key_have_sse41;

__attribute__((constructor)) static void key_detect_sse41(void)
{
    __builtin_cpu_init();
    key_have_sse41 = __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
}

/* quads16() by one unsigned-by-signed byte multiply-add (b(2k)*31 + b(2k+1), at most
 * 255*32: no saturation) then the same multiply-add of pairs. */
__attribute__((target("ssse3,sse4.1"))) static inline __m128i quads16_sse41(__m128i x)
{
    const __m128i w1 = _mm_set1_epi16(1 << 8 | 31);         /* byte lanes 31, 1 */
    const __m128i w2 = _mm_set1_epi32(1 << 16 | (31 * 31)); /* 16-bit lanes 31^2, 1 */
    return _mm_madd_epi16(_mm_maddubs_epi16(x, w1), w2);
}

/* The sum of the four 32-bit lanes of v, modulo 2^32. */
__attribute__((target("ssse3,sse4.1"))) static inline uint32_t lanes_sum4(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(v);
}

/* SUM16 with the multiplies of SSSE3 and SSE4.1. */
__attribute__((target("ssse3,sse4.1"))) static inline uint32_t sum16_sse41(__m128i a)
{
    const __m128i w = _mm_setr_epi32((int)P12, (int)P8, (int)P4, 1);
    return lanes_sum4(_mm_mullo_epi32(quads16_sse41(a), w));
}

/* SUM32 with the multiplies of SSSE3 and SSE4.1. */
__attribute__((target("ssse3,sse4.1"))) static inline uint32_t sum32_sse41(__m128i a, __m128i b)
{
    const __m128i w_lo = _mm_setr_epi32((int)P12, (int)P8, (int)P4, 1);
    const __m128i w_hi =
        _mm_setr_epi32((int)(P12 * P16), (int)(P8 * P16), (int)(P4 * P16), (int)P16);
    return lanes_sum4(_mm_add_epi32(_mm_mullo_epi32(quads16_sse41(a), w_hi),
                                    _mm_mullo_epi32(quads16_sse41(b), w_lo)));
}

/* hash_ascii16() with the multiplies of SSSE3 and SSE4.1: the same walk, the same value, the
 * same checks. */
__attribute__((target("ssse3,sse4.1"))) static inline bool
hash_ascii16_sse41(uint32_t *hp, const uint8_t *p, size_t n)
{
    HASH_ASCII16_WALK(sum32_sse41, sum16_sse41);
}
#endif
#endif

/* shmq_uniq_key_only_hash_memo(); sse41: its vector hash with the multiplies of SSSE3
 * and SSE4.1 (only in uniq_key_only_sse41, built for them). */
static inline __attribute__((always_inline)) int32_t
uniq_key_only(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len, const char *props,
              size_t len, bool sse41)
{
    const size_t name_len = sizeof(SHMQ_PROP_UNIQ_KEY) - 1;
    if (!(topic_len >= 8 && topic_len <= 16 && memo_topic_is(m, topic, topic_len)) &&
        !memo_take_topic(m, topic, topic_len)) {
        return -1;
    }
    if (ends_with_crc_property(props, len)) {
        len -= SHMQ_CRC_PROP_LEN; /* the byte before it, if any, is a 0x02 */
    } else if (len == 0 || props[len - 1] != SHMQ_PROP_SEP) {
        return -1;
    }
    if (len < name_len + 3 || props[name_len] != SHMQ_PROP_NAME_VALUE_SEP ||
        memcmp(props, SHMQ_PROP_UNIQ_KEY, name_len) != 0) {
        return -1;
    }
    /* The value: props[name_len + 1] up to the final 0x02, read once, a word at a time. A
     * word the previous key had at the same place (and each one before) has its hash in
     * the memo; the first other one and those after it are hashed and remembered. */
    const uint8_t *p = (const uint8_t *)props + name_len + 1;
    size_t n = len - name_len - 2;
#if defined(__SSE2__)
    if (n >= 16) {
        /* A value of 16 bytes or more (a UNIQ_KEY has 32): hashed whole, in vectors, for
         * fewer instructions than the memo's comparisons; the memo is left as it is. */
        uint32_t hv = m->topic_hash;
#if defined(__x86_64__)
        if (sse41) {
            return hash_ascii16_sse41(&hv, p, n) ? hash_abs(hv) : -1;
        }
#endif
        return hash_ascii16(&hv, p, n) ? hash_abs(hv) : -1;
    }
#endif
    (void)sse41;
    size_t w = 0, known = m->words;
    uint32_t h = m->topic_hash;
    int32_t res = -1;
    for (; n >= 8; p += 8, n -= 8, w++) {
        uint64_t x;
        memcpy(&x, p, 8);
        if (w < known && x == m->word[w]) {
            h = m->after[w]; /* a remembered word holds no 0x02 and is ASCII */
            continue;
        }
        if (sep_or_high8(x) != 0) {
            goto out;
        }
        h = hash_word(h, x);
        if (w < SHMQ_KEY_MEMO_WORDS) {
            m->word[w] = x;
            m->after[w] = h;
            known = w + 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if ((c & 0x80) != 0 || c == SHMQ_PROP_SEP) {
            goto out;
        }
        h = h * 31u + c;
    }
    res = hash_abs(h);
out:
    m->words = (uint32_t)known;
    return res;
}

#if defined(__SSE2__) && defined(__x86_64__)
/* uniq_key_only() built for SSSE3 and SSE4.1 (its vector hash inlined with their
 * multiplies). */
__attribute__((target("ssse3,sse4.1"))) static int32_t
uniq_key_only_sse41(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len, const char *props,
                    size_t len)
{
    return uniq_key_only(m, topic, topic_len, props, len, true);
}
#endif

/* shmq_uniq_key_only_hash_memo() on its SSE2 path whatever the CPU has (tests). */
int32_t shmq_uniq_key_only_hash_memo_sse2(shmq_key_hash_memo_t *m, const char *topic,
                                          size_t topic_len, const char *props, size_t len)
{
    return uniq_key_only(m, topic, topic_len, props, len, false);
}

/* Each path a function of its own: this one only tests the flag and jumps (no registers
 * saved here for a body inlined beside the call). */
int32_t shmq_uniq_key_only_hash_memo(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len,
                                     const char *props, size_t len)
{
#if defined(__SSE2__) && defined(__x86_64__)
    if (key_have_sse41) {
        return uniq_key_only_sse41(m, topic, topic_len, props, len);
    }
#endif
    return shmq_uniq_key_only_hash_memo_sse2(m, topic, topic_len, props, len);
}
