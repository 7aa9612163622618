/*
 * The one check every reader of a CommitLog record starts with: its size
 * field, magic and field lengths, each bounded by TOTALSIZE and by the
 * bytes readable, giving where its variable fields lie.  shmq_record_decode()
 * (message.c), shmq_record_head_decode() (record_scan.c) and the consumer's
 * read straight into a view (consumer.c) all start here, so a record is
 * judged the same way, with the same error codes, by every one of them.
 *
 * Inline: it runs on every record each worker and each consumer reads;
 * only its failures leave the hot path.
 */
#ifndef SHMQ_RECORD_LAYOUT_H
#define SHMQ_RECORD_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

#include "shmq/errors.h"
#include "shmq/types.h"
#include "base/bytes.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "format/message.h"

/* Where the fields of a record lie (offsets from its first byte), as its lengths say. */
typedef struct shmq_record_layout {
    int32_t total_size; /* a blank record: its length field */
    int32_t magic;
    int32_t sysflag;
    bool v2;
    bool born_v6;       /* BORNHOST is 16 address bytes (else 4) */
    bool store_v6;      /* STOREHOST is 16 address bytes (else 4) */
    uint32_t store_at;  /* STORETIMESTAMP; STOREHOST follows it */
    uint32_t recons_at; /* RECONSUMETIMES; PREPAREDTRANSACTIONOFFSET follows it */
    uint32_t body_at;
    uint32_t body_len;
    uint32_t topic_at;
    uint32_t topic_len;
    uint32_t props_at;
    uint32_t props_len;
} shmq_record_layout_t;

/* [0, end) is past lim = min(TOTALSIZE, avail): beyond TOTALSIZE the size field
 * disagrees with the fields (SHMQ_E_SIZE), else the record is cut short
 * (SHMQ_E_TRUNCATED).  Out of line: only a bad record gets here. */
int shmq_record_layout_past(int64_t end, int64_t total, size_t avail, const char *what);

/* rc, an error code: negative (said so to the compiler: a caller's success path reads the
 * fields only a success sets). */
static inline int shmq_record_layout_failed(int rc)
{
    if (rc >= 0) {
        __builtin_unreachable();
    }
    return rc;
}

/*
 * shmq_record_layout() past the magic (V1 or V2: v2) of a record of
 * TOTALSIZE total.  v4_hosts: the caller saw SYSFLAG's two host bits clear
 * (a constant where it is known: the offsets then fold to constants).
 */
static inline __attribute__((always_inline)) int
shmq_record_layout_walk(const uint8_t *buf, size_t avail, int64_t total, uint32_t v2, bool v4_hosts,
                        shmq_record_layout_t *l)
{
    int64_t fixed_min = SHMQ_RECORD_FIXED_V1 + v2;
    if (total < fixed_min) {
        return shmq_record_layout_failed(
            shmq_error_set(SHMQ_E_SIZE, "record: TOTALSIZE %lld below the fixed part %lld",
                           (long long)total, (long long)fixed_min));
    }
    /* Walk the fields, each bounded by TOTALSIZE and by avail: one compare against the
     * smaller of the two; shmq_record_layout_past() says which one was passed. */
    int64_t lim = (uint64_t)total <= avail ? total : (int64_t)avail;
    if (40 > lim) {
        return shmq_record_layout_failed(shmq_record_layout_past(40, total, avail, "sysflag"));
    }
    int32_t sysflag = (int32_t)shmq_get_be32(buf + 36);
    /* An IPv6 host holds 12 more address bytes: 0 or 1 each, as numbers (no branches). */
    _Static_assert(SHMQ_SYSFLAG_BORNHOST_V6 == 1 << 4 && SHMQ_SYSFLAG_STOREHOST_V6 == 1 << 5,
                   "host bits of SYSFLAG");
    uint32_t born_v6 = v4_hosts ? 0 : ((uint32_t)sysflag >> 4) & 1;
    uint32_t store_v6 = v4_hosts ? 0 : ((uint32_t)sysflag >> 5) & 1;
    int64_t body_len_at = 84 + 12 * (int64_t)(born_v6 + store_v6);
    if (body_len_at + 4 > lim) {
        return shmq_record_layout_failed(
            shmq_record_layout_past(body_len_at + 4, total, avail, "fixed fields"));
    }
    int32_t body_len = (int32_t)shmq_get_be32(buf + body_len_at);
    if (body_len < 0) {
        return shmq_record_layout_failed(
            shmq_error_set(SHMQ_E_SIZE, "record: negative body length %d", body_len));
    }
    int64_t body_at = body_len_at + 4;
    int64_t topic_len_at = body_at + body_len;
    int64_t topic_at = topic_len_at + 1 + v2;
    if (topic_at > lim) {
        return shmq_record_layout_failed(
            shmq_record_layout_past(topic_at, total, avail, "topic length"));
    }
    int32_t topic_len = v2 ? (int16_t)shmq_get_be16(buf + topic_len_at) : (int8_t)buf[topic_len_at];
    if (topic_len < 0) {
        return shmq_record_layout_failed(
            shmq_error_set(SHMQ_E_SIZE, "record: negative topic length %d", topic_len));
    }
    int64_t props_len_at = topic_at + topic_len;
    if (props_len_at + 2 > lim) {
        return shmq_record_layout_failed(
            shmq_record_layout_past(props_len_at + 2, total, avail, "properties length"));
    }
    int32_t props_len = (int16_t)shmq_get_be16(buf + props_len_at);
    if (props_len < 0) {
        return shmq_record_layout_failed(
            shmq_error_set(SHMQ_E_SIZE, "record: negative properties length %d", props_len));
    }
    int64_t end = props_len_at + 2 + props_len;
    if (end != total) {
        return shmq_record_layout_failed(
            shmq_error_set(SHMQ_E_SIZE, "record: TOTALSIZE %lld, fields add up to %lld",
                           (long long)total, (long long)end));
    }
    if (end > lim) {
        return shmq_record_layout_failed(shmq_record_layout_past(end, total, avail, "properties"));
    }
    l->sysflag = sysflag;
    l->v2 = v2;
    l->born_v6 = born_v6;
    l->store_v6 = store_v6;
    /* BORNHOST (4 or 16 address bytes and a port) sits between BORNTIMESTAMP and
     * STORETIMESTAMP, STOREHOST between STORETIMESTAMP and RECONSUMETIMES. */
    l->store_at = 56 + 12 * born_v6;
    l->recons_at = 72 + 12 * (born_v6 + store_v6);
    l->body_at = (uint32_t)body_at;
    l->body_len = (uint32_t)body_len;
    l->topic_at = (uint32_t)topic_at;
    l->topic_len = (uint32_t)topic_len;
    l->props_at = (uint32_t)props_len_at + 2;
    l->props_len = (uint32_t)props_len;
    return (int)total;
}

/*
 * Check the record at buf (avail bytes readable, to the end of its
 * segment) and fill *l.  Returns the record's TOTALSIZE (> 0), 0 for a
 * blank (end-of-segment) record (total_size its length field), or, with
 * shmq_error_set() context: SHMQ_E_TRUNCATED (fewer than 8 bytes, or a
 * record whose fields, as far as they are readable, agree with its size
 * field), SHMQ_E_MAGIC, SHMQ_E_SIZE (size field below the fixed part or
 * not the sum of the fields, a negative length, a blank length not in
 * 8..avail).  Checks run in this order: magic, size bounds, each field's
 * length as the walk reaches it, the sum.  total_size and magic are set as
 * far as they were read (0 before); the rest only on success.
 */
static inline __attribute__((always_inline)) int
shmq_record_layout(const uint8_t *buf, size_t avail, shmq_record_layout_t *l)
{
    if (avail < SHMQ_BLANK_MIN_LEN) {
        l->total_size = l->magic = 0;
        return shmq_record_layout_failed(shmq_error_set(
            SHMQ_E_TRUNCATED, "record: %zu bytes, need 8 for size and magic", avail));
    }
    int64_t total = (int32_t)shmq_get_be32(buf);
    int32_t magic = (int32_t)shmq_get_be32(buf + 4);
    l->total_size = (int32_t)total;
    l->magic = magic;
    /* What nearly every record is, V1 with two IPv4 hosts, walked with its offsets known;
     * the same checks in the same order as any other record. */
    uint32_t sysflag = avail >= 40 ? shmq_get_be32(buf + 36) : 0;
    if (magic == SHMQ_MAGIC_V1 && avail >= 40 &&
        (sysflag & (SHMQ_SYSFLAG_BORNHOST_V6 | SHMQ_SYSFLAG_STOREHOST_V6)) == 0) {
        /* A whole record that checks out, in fewer compares: with TOTALSIZE readable and
         * at least the fixed part, each length read lies before TOTALSIZE when the sum of
         * those before it does (lengths as unsigned, a negative one too large to), and the
         * fields add up to TOTALSIZE.  Anything else: the walk, which decides and words it. */
        if (total >= SHMQ_RECORD_FIXED_V1 && (uint64_t)total <= avail) {
            uint64_t topic_len_at = 88 + (uint64_t)shmq_get_be32(buf + 84);
            uint8_t topic_len = topic_len_at < (uint64_t)total ? buf[topic_len_at] : 0x80;
            if (topic_len < 0x80) {
                uint64_t props_len_at = topic_len_at + 1 + topic_len;
                if (props_len_at + 2 <= (uint64_t)total) {
                    uint32_t props_len = shmq_get_be16(buf + props_len_at);
                    if (props_len < 0x8000 && props_len_at + 2 + props_len == (uint64_t)total) {
                        l->sysflag = (int32_t)sysflag;
                        l->v2 = false;
                        l->born_v6 = l->store_v6 = false;
                        l->store_at = 56;
                        l->recons_at = 72;
                        l->body_at = 88;
                        l->body_len = (uint32_t)(topic_len_at - 88);
                        l->topic_at = (uint32_t)topic_len_at + 1;
                        l->topic_len = topic_len;
                        l->props_at = (uint32_t)props_len_at + 2;
                        l->props_len = props_len;
                        return (int)total;
                    }
                }
            }
        }
        return shmq_record_layout_walk(buf, avail, total, 0, true, l);
    }
    if (magic == SHMQ_MAGIC_BLANK) {
        if (total < SHMQ_BLANK_MIN_LEN || (uint64_t)total > avail) {
            return shmq_record_layout_failed(shmq_error_set(
                SHMQ_E_SIZE, "blank record: length %lld not in 8..%zu", (long long)total, avail));
        }
        return 0;
    }
    if (magic != SHMQ_MAGIC_V1 && magic != SHMQ_MAGIC_V2) {
        return shmq_record_layout_failed(shmq_error_set(SHMQ_E_MAGIC,
                                                        "record: magic 0x%08x, size field %lld",
                                                        (unsigned)magic, (long long)total));
    }
    return shmq_record_layout_walk(buf, avail, total, magic == SHMQ_MAGIC_V2, false, l);
}

/*
 * The CRC checks shmq_record_decode() makes with flags (SHMQ_DECODE_VERIFY,
 * SHMQ_DECODE_REQUIRE_RECORD_CRC, SHMQ_DECODE_CHECK_RECORD_CRC,
 * SHMQ_DECODE_CHECK_BODY_CRC), in its order and with its error codes, on
 * the record at buf whose layout l shmq_record_layout() gave and whose
 * PHYSICALOFFSET is phys (for the error text): for a reader that has the
 * layout and needs no shmq_record_t.  0 when the record passes.  With a
 * __CRC32# tail and without the body CRC: the tail's digits and one CRC
 * pass over the record, nothing else.  Of *l it reads total_size, body_at,
 * body_len, props_at and props_len only.
 */
int shmq_record_verify(const uint8_t *buf, const shmq_record_layout_t *l, int64_t phys,
                       unsigned flags);

/*
 * The CRC a record's __CRC32# tail holds: RocketMQ's masked CRC-32 of the
 * record's total_size bytes before the tail (the tail ends the record).
 */
static inline int32_t shmq_record_crc_before_tail(const uint8_t *buf, int32_t total_size)
{
    return (int32_t)(crc32_gzip_refl(0, buf, (uint64_t)total_size - SHMQ_CRC_PROP_LEN) &
                     0x7FFFFFFFu);
}

#if defined(__SSE2__)
/*
 * The check of shmq_record_crc_tail_value(): true for a well-formed
 * __CRC32# tail ending the len bytes of properties at props, with *digits
 * the ten digit values (the least significant first) at bytes 0..9 and
 * zeros after them.  "__CR" as a word, then the last 16 bytes of the tail in
 * one SSE2 compare: minus "C32#" 0x01, ten '0' and 0x02, each byte must be 0
 * at a fixed byte and at most 9 at a digit (unsigned, saturated).
 */
static inline __attribute__((always_inline)) bool
shmq_record_crc_tail_digits(const uint8_t *props, uint32_t len, __m128i *digits)
{
    if (len < SHMQ_CRC_PROP_LEN) {
        return false;
    }
    const uint8_t *t = props + len - SHMQ_CRC_PROP_LEN;
    uint32_t h4, w4;
    memcpy(&h4, t, 4);
    memcpy(&w4, SHMQ_PROP_CRC32, 4);
    if (h4 != w4 || (len > SHMQ_CRC_PROP_LEN && t[-1] != SHMQ_PROP_SEP)) {
        return false;
    }
    const __m128i base = _mm_setr_epi8('C', '3', '2', '#', SHMQ_PROP_NAME_VALUE_SEP, '0', '0', '0',
                                       '0', '0', '0', '0', '0', '0', '0', SHMQ_PROP_SEP);
    const __m128i most = _mm_setr_epi8(0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0);
    __m128i d = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)(t + 4)), base);
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_subs_epu8(d, most), _mm_setzero_si128())) != 0xFFFF) {
        return false;
    }
    *digits = _mm_srli_si128(d, 5); /* the end byte less itself: zero */
    return true;
}
#endif

/*
 * The value of a well-formed __CRC32# tail ending the len bytes of
 * properties at props: the name at a property's start, ten digits, the end
 * byte; -1 for anything else (no tail, or a damaged one), which
 * shmq_record_verify() judges in full.  Where it returns a value,
 * shmq_record_verify() with SHMQ_DECODE_VERIFY (and without
 * SHMQ_DECODE_CHECK_BODY_CRC) returns 0 if and only if it equals the masked
 * CRC of the record's bytes before the tail (the check:
 * shmq_record_crc_tail_digits()).
 */
static inline int64_t shmq_record_crc_tail_value(const uint8_t *props, uint32_t len)
{
#if defined(__SSE2__)
    __m128i d;
    if (!shmq_record_crc_tail_digits(props, len, &d)) {
        return -1;
    }
    /* The digits' values, the least significant first: eight, then two. */
    uint64_t x = (uint64_t)_mm_cvtsi128_si64(d);
    uint64_t top = (uint64_t)(uint32_t)_mm_extract_epi16(d, 4);
    const uint64_t m8 = 0x00FF00FF00FF00FFULL, m16 = 0x0000FFFF0000FFFFULL;
    x = (x & m8) + ((x >> 8) & m8) * 10;
    x = (x & m16) + ((x >> 16) & m16) * 100;
    x = (x & 0xFFFFFFFFULL) + (x >> 32) * 10000;
    return (int64_t)(x + ((top & 0xFF) + (top >> 8) * 10) * 100000000ULL);
#else
    (void)props;
    (void)len;
    return -1;
#endif
}

/*
 * The offset message id of the record at buf (its layout's store_at and
 * store_v6), as shmq_msgid_format() of its STOREHOST and PHYSICALOFFSET:
 * straight from the record's bytes, which hold both in the id's byte order.
 */
void shmq_record_msgid(const uint8_t *buf, uint32_t store_at, bool store_v6,
                       char out[SHMQ_MSGID_MAX]);

/*
 * shmq_record_msgid(), inline for an IPv4 STOREHOST (every record a store on
 * one host writes): its address and port and PHYSICALOFFSET are the id's 16
 * bytes, loaded straight into one vector and written as 32 hex characters.
 */
static inline __attribute__((always_inline)) void shmq_record_msgid_inline(const uint8_t *buf,
                                                                           uint32_t store_at,
                                                                           bool store_v6,
                                                                           char out[SHMQ_MSGID_MAX])
{
#if defined(__SSE2__)
    if (!store_v6) {
        const __m128i nib = _mm_set1_epi8(0x0F), nine = _mm_set1_epi8(9);
        const __m128i zero = _mm_set1_epi8('0'), seven = _mm_set1_epi8(7);
        __m128i in = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(buf + store_at + 8)),
                                        _mm_loadl_epi64((const __m128i *)(buf + 28)));
        __m128i hi = _mm_and_si128(_mm_srli_epi16(in, 4), nib);
        __m128i lo = _mm_and_si128(in, nib);
        __m128i c0 = _mm_unpacklo_epi8(hi, lo), c1 = _mm_unpackhi_epi8(hi, lo);
        c0 = _mm_add_epi8(_mm_add_epi8(c0, zero), _mm_and_si128(_mm_cmpgt_epi8(c0, nine), seven));
        c1 = _mm_add_epi8(_mm_add_epi8(c1, zero), _mm_and_si128(_mm_cmpgt_epi8(c1, nine), seven));
        _mm_storeu_si128((__m128i *)(void *)out, c0);
        _mm_storeu_si128((__m128i *)(void *)(out + 16), c1);
        out[32] = '\0';
        return;
    }
#endif
    shmq_record_msgid(buf, store_at, store_v6, out);
}

#endif
