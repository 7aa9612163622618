/*
 * CommitLog record codec (RocketMQ V1/V2 records), properties, message ids,
 * tag and key hashes.
 *
 * Everything here is pure: no I/O, no global state except the UNIQ_KEY
 * counter.  Encoding always appends the whole-record __CRC32# property.
 * Decoding treats its input as untrusted: every length is bounded by the
 * bytes available, and each failed check has its own error code.
 * Formats: docs/formats.md (ROCKETMQ-FACTS §1-§4).
 */
#ifndef SHMQ_MESSAGE_H
#define SHMQ_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmq/errors.h"
#include "shmq/types.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Fixed part of a V1 record with both hosts IPv4, without body, topic, properties. */
#define SHMQ_RECORD_FIXED_V1 91

/* A message to encode.  Pointers are borrowed for the duration of the call. */
typedef struct shmq_msg_in {
    const char *topic;
    size_t topic_len;
    int32_t queue_id;
    int32_t flag;
    int32_t sysflag; /* host v6 bits are set by the encoder from born_host/store_host */
    int64_t born_ts;
    shmq_host_t born_host;
    shmq_host_t store_host;
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
    const void *body;
    size_t body_len;
    const char *props; /* encoded properties (name 0x01 value 0x02 ...), without __CRC32# */
    size_t props_len;
} shmq_msg_in_t;

/* A decoded record.  Pointers point into the decoded buffer (views, no copies). */
typedef struct shmq_record {
    int32_t total_size;
    int32_t magic;
    int32_t body_crc;
    int32_t queue_id;
    int32_t flag;
    int64_t queue_offset;
    int64_t phys_offset;
    int32_t sysflag;
    int64_t born_ts;
    shmq_host_t born_host;
    int64_t store_ts;
    shmq_host_t store_host;
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
    const uint8_t *body;
    uint32_t body_len;
    const char *topic;
    uint32_t topic_len;
    const char *props; /* the whole properties area, including __CRC32# if present */
    uint32_t props_len;
    bool has_record_crc; /* a __CRC32# property was present (and verified if asked) */
} shmq_record_t;

/* ---- CRC and hashes ---------------------------------------------------- */

/* Standard CRC-32 (IEEE, zlib-compatible) of buf (ISA-L). */
uint32_t shmq_crc32(const void *buf, size_t len);

/* RocketMQ's masked CRC: shmq_crc32() & 0x7FFFFFFF. */
int32_t shmq_crc32_masked(const void *buf, size_t len);

/* shmq_crc32() of A followed by B from crc_a = shmq_crc32(A), crc_b = shmq_crc32(B) and B's
 * length (zlib's crc32_combine), without reading either. */
uint32_t shmq_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint32_t len_b);

/* Body length from which shmq_record_encode_plan() takes the record CRC from the body CRC by
 * shmq_crc32_combine() instead of a second pass over the body (below it the pass is cheaper
 * than the two extra calls). */
#define SHMQ_CRC_COMBINE_MIN 512

/* Java String.hashCode() of a UTF-8 string (over its UTF-16 code units). */
int32_t shmq_java_hash(const char *s, size_t len);

/* ConsumeQueue tagsCode of a TAGS value: Java hash sign-extended; 0 when empty. */
int64_t shmq_tags_code(const char *tags, size_t len);

/* IndexFile key hash: abs(java_hash(key)), 0 if that is still negative. */
int32_t shmq_index_key_hash(const char *key, size_t len);

/* ---- record size, encode, decode --------------------------------------- */

/*
 * Total encoded size of m (including the __CRC32# tail and a separator
 * inserted before it if m->props is non-empty and does not end with 0x02),
 * or a negative error: SHMQ_E_TOPIC (empty or > 255 bytes), SHMQ_E_PROPS
 * (properties area would exceed 32767 bytes, or m->props already holds a
 * __CRC32# property: the store owns it), SHMQ_E_ARG (NULL body or props
 * with a non-zero length), SHMQ_E_TOO_BIG (the record would not fit
 * TOTALSIZE's int32).
 * The body limit (maxMessageSize) is a store policy, checked by callers.
 */
int64_t shmq_record_size(const shmq_msg_in_t *m);

/*
 * The layout of one record (shmq_record_plan()): its size and what decides
 * where its fields go.  A plan is made once and handed to
 * shmq_record_encode_plan(); planning again costs a pass over the
 * properties.
 */
typedef struct shmq_record_plan {
    int64_t total;      /* TOTALSIZE */
    uint32_t props_len; /* final: with the separator and the __CRC32# tail */
    bool v2;            /* topic longer than 127 bytes */
    bool add_sep;       /* a 0x02 goes between the user properties and the tail */
} shmq_record_plan_t;

/* Flag of shmq_record_plan(): m->props passed shmq_props_scan() already (no second pass). */
#define SHMQ_PLAN_PROPS_SCANNED 0x1u

/*
 * Plan the record of m: 0 with *pl filled, or the errors of
 * shmq_record_size() (which is this without the plan).  With
 * SHMQ_PLAN_PROPS_SCANNED the properties' content (0x00 bytes, __CRC32#)
 * is not looked at again: the caller checked it with shmq_props_scan().
 */
int shmq_record_plan(const shmq_msg_in_t *m, unsigned flags, shmq_record_plan_t *pl);

/*
 * Encode m as planned by shmq_record_plan(m, ..., pl) into dst, which has
 * pl->total bytes.  Both CRCs are computed over the bytes written to dst,
 * so m->body may point into memory another process can change (each of its
 * bytes is read once).  Returns pl->total.
 */
int64_t shmq_record_encode_plan(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                uint8_t *dst);

/*
 * Where the body of a V1 record with IPv4 born and store hosts starts; its
 * topic length byte follows the body, then the topic, the properties' length
 * (2 bytes) and the properties (SHMQ_RECORD_FIXED_V1 counts these 91 bytes).
 */
#define SHMQ_RECORD_BODY_AT_V4 88

/*
 * shmq_record_encode_plan() of a message whose body, topic and properties
 * are in dst already, where the record holds them (m->body, m->topic and
 * m->props point there; V1 or V2 as pl says): every other byte is written,
 * and both CRCs are computed over dst.  Returns pl->total.
 */
int64_t shmq_record_encode_placed(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                  int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                  uint8_t *dst);

/*
 * shmq_record_encode_placed() of a V1 record (pl->v2 false) with IPv4 born
 * and store hosts, which the caller knows: neither is looked at (the writer's
 * plain path).  The same bytes.
 */
int64_t shmq_record_encode_placed_v1(const shmq_msg_in_t *m, const shmq_record_plan_t *pl,
                                     int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                                     uint8_t *dst);

/*
 * Encode m into dst (cap bytes) with the given queue offset, physical
 * offset and store timestamp.  Chooses V2 when the topic is longer than 127
 * bytes.  Computes BODYCRC and the whole-record __CRC32# (written last).
 * Returns the record size, or SHMQ_E_TRUNCATED if cap is too small, or an
 * error from shmq_record_size().
 */
int64_t shmq_record_encode(const shmq_msg_in_t *m, int64_t queue_offset, int64_t phys_offset,
                           int64_t store_ts, uint8_t *dst, size_t cap);

/* Flags for shmq_record_decode(). */
#define SHMQ_DECODE_CHECK_BODY_CRC     0x1 /* verify BODYCRC */
#define SHMQ_DECODE_CHECK_RECORD_CRC   0x2 /* verify __CRC32# when present */
#define SHMQ_DECODE_REQUIRE_RECORD_CRC 0x4 /* a missing __CRC32# is an error */
#define SHMQ_DECODE_CHECK_PHYS         0x8 /* PHYSICALOFFSET must equal expect_phys */
/* The check of a reader that hands records to users: shmq_record_check_crcs(). */
#define SHMQ_DECODE_VERIFY 0x10

/*
 * The flags of a reader that hands the record at phys to users: VERIFY, and
 * REQUIRE_RECORD_CRC from crc_tail_from on (the checkpoint's record-CRC
 * marker: records shmq wrote carry __CRC32#; INT64_MAX when there is none).
 */
static inline unsigned shmq_decode_verify_flags(int64_t phys, int64_t crc_tail_from)
{
    return SHMQ_DECODE_VERIFY | (phys >= crc_tail_from ? SHMQ_DECODE_REQUIRE_RECORD_CRC : 0u);
}
#define SHMQ_DECODE_CHECK_ALL                                                                      \
    (SHMQ_DECODE_CHECK_BODY_CRC | SHMQ_DECODE_CHECK_RECORD_CRC | SHMQ_DECODE_CHECK_PHYS)

/*
 * Decode the record at buf, with avail bytes readable from buf (to the end of
 * its segment).  Returns:
 *   > 0  the record's TOTALSIZE; *out is filled;
 *   0    a blank (end-of-segment) record; out->total_size holds its length
 *        field (the rest of the segment), out->magic SHMQ_MAGIC_BLANK;
 *   < 0  SHMQ_E_TRUNCATED (avail too small for the size field and magic,
 *        or for a record whose fields, as far as they are readable, agree
 *        with its size field), SHMQ_E_MAGIC, SHMQ_E_SIZE (size field < fixed
 *        part, or not equal to the length computed from the fields, or a
 *        negative body/topic/properties length; a blank record whose length
 *        is < 8 or > avail), SHMQ_E_PHYS_OFFSET, SHMQ_E_BODY_CRC,
 *        SHMQ_E_RECORD_CRC.
 * Checks run in this order: magic, size bounds, length consistency,
 * physical offset, body CRC, record CRC.  The record CRC property is the
 * 20-byte tail "__CRC32#" 0x01 <10 digits> 0x02 ending the properties (and
 * starting a property); a non-digit in it counts as a mismatch.  With
 * SHMQ_DECODE_REQUIRE_RECORD_CRC a present tail is also verified.
 * An all-zero region decodes as SHMQ_E_MAGIC with total_size 0 in *out.
 * On failure *out holds what was read before the failing check.
 */
int shmq_record_decode(const uint8_t *buf, size_t avail, int64_t expect_phys, unsigned flags,
                       shmq_record_t *out);

/*
 * How far the end of a decoded record's properties is from an intact
 * __CRC32# tail: the number of bits in which the 0x02 before it (when the
 * properties hold more than the tail), "__CRC32#", its 0x01 and its closing
 * 0x02 differ from what they must be, plus one for each of the ten value
 * bytes that is not a digit.  0 for an intact tail; a record that never had
 * one (RocketMQ's default) is far from it.  -1 when the properties are
 * shorter than the tail.  Rule for readers: docs/formats.md.
 */
int shmq_record_crc_tail_distance(const shmq_record_t *r);

/* A tail at most this far (and not 0) is a damaged __CRC32#, not a missing one. */
#define SHMQ_CRC_TAIL_NEAR_BITS 4

/*
 * The rule for a decoded record that carries no verified __CRC32# (RocketMQ
 * writes none by default, shmq always does): SHMQ_E_RECORD_CRC when what
 * ends its properties is a damaged tail (distance 1..SHMQ_CRC_TAIL_NEAR_BITS:
 * a flipped bit in the name must not switch the check off) or when its
 * properties hold a 0x00 byte (a zeroed sector or a torn append: no
 * properties string holds one, and shmq refuses to store one).  0 otherwise.
 */
int shmq_record_check_unverified(const shmq_record_t *r);

/*
 * The CRC check of a reader that hands records to users (consumers,
 * queries, the scheduler), on a record r decoded with
 * SHMQ_DECODE_CHECK_RECORD_CRC: r->has_record_crc means decode verified
 * __CRC32#, which covers the whole record, body and BODYCRC included, so
 * nothing is computed again; any other record must pass
 * shmq_record_check_unverified() and RocketMQ's body CRC check
 * (SHMQ_E_BODY_CRC on mismatch).  Returns 0 when the record is good.
 * Decoding with SHMQ_DECODE_VERIFY runs this check.
 */
int shmq_record_check_crcs(const shmq_record_t *r);

/* Write an 8-byte blank record (length, BLANK magic) at dst. */
void shmq_record_write_blank(uint8_t *dst, int32_t remaining);

/* ---- properties -------------------------------------------------------- */

/*
 * Find property name in an encoded properties area (last occurrence wins,
 * as RocketMQ's decoder does).  Returns a pointer to the value (not NUL
 * terminated) and its length in *vlen, or NULL if absent or empty.
 */
const char *shmq_props_get(const char *props, size_t len, const char *name, size_t *vlen);

/* What the store reads from a message's properties, found in one pass (shmq_props_scan()). */
typedef struct shmq_props_info {
    const char *uniq_key; /* UNIQ_KEY's value (the last one wins), NULL if absent or empty */
    size_t uniq_key_len;
    /* a property whose name starts with 'D' or 'T' and has 5 bytes or more: maybe DELAY or
     * TIMER_*, which the scheduler's put hook reads (none: the hook has nothing to do) */
    bool sched;
} shmq_props_info_t;

/*
 * One pass over an encoded properties area: SHMQ_E_PROPS when it holds a
 * 0x00 byte or a property named __CRC32# (as shmq_record_size() refuses
 * them), else 0 with *info filled.
 */
int shmq_props_scan(const char *props, size_t len, shmq_props_info_t *info);

/* shmq_props_copy_scan() without its fast path: a copy, then shmq_props_scan() of it. */
int shmq_props_copy_scan_general(char *dst, const char *src, size_t len, shmq_props_info_t *info);

/*
 * Copy the len bytes of an area from src (memory another process may write
 * meanwhile: each byte is read once) to dst (the caller's), then
 * shmq_props_scan() of dst: what is checked is what dst holds.  The usual
 * area (a single UNIQ_KEY property of 25 to 48 bytes, as a plain send
 * carries it) is checked inline in the registers it is copied through.
 */
static inline int shmq_props_copy_scan(char *dst, const char *src, size_t len,
                                       shmq_props_info_t *info)
{
#if defined(__SSE2__)
    /* Two or three 16-byte loads, each stored as loaded; a byte two of them overlap is stored
     * from the last one, whose check covers it. */
    const size_t head = sizeof(SHMQ_PROP_UNIQ_KEY); /* the name and its 0x01 */
    if (len >= head + 16 && len <= 48) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + len - 16));
        __m128i two = _mm_set1_epi8(2);
        uint32_t mb = 0;
        _mm_storeu_si128((__m128i *)(void *)dst, a);
        if (len > 32) {
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
            _mm_storeu_si128((__m128i *)(void *)(dst + 16), b);
            mb = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(b, two), b));
        }
        _mm_storeu_si128((__m128i *)(void *)(dst + len - 16), c);
        const __m128i name =
            _mm_setr_epi8('U', 'N', 'I', 'Q', '_', 'K', 'E', 'Y', 1, 0, 0, 0, 0, 0, 0, 0);
        uint32_t ma = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(a, two), a));
        uint32_t mc = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(c, two), c));
        uint32_t named = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, name)) & 0x1FFu;
        /* The last byte as stored: a 0x02 after the value, or the value's last byte. */
        bool sep = dst[len - 1] == SHMQ_PROP_SEP;
        size_t vend = len - sep;
        /* Bytes 0x00..0x02: only the name's 0x01 in the first 16, none in the next 16, none
         * in the last 16 but a closing 0x02; a value of at least 16 bytes (as
         * shmq_props_scan()'s own fast case takes it). */
        if (named == 0x1FFu && ma == 0x100u && mb == 0 && (mc & 0x7FFFu) == 0 &&
            ((mc & 0x8000u) == 0 || sep) && vend >= head + 16) {
            info->uniq_key = dst + head;
            info->uniq_key_len = vend - head;
            info->sched = false;
            return 0;
        }
        return shmq_props_scan(dst, len, info); /* every byte stored: the full scan decides */
    }
#endif
    return shmq_props_copy_scan_general(dst, src, len, info);
}

/* shmq_props_scan() without its fast path for an area that is a single UNIQ_KEY property
 * (the same results: for tests that compare the two). */
int shmq_props_scan_general(const char *props, size_t len, shmq_props_info_t *info);

/*
 * Append "name 0x01 value 0x02" to buf (which holds *len bytes, cap in all;
 * name is NUL-terminated).  A 0x02 is inserted first if buf is non-empty
 * and does not end with one.  Returns 0, SHMQ_E_PROPS if it would exceed
 * cap or SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN (the room the encoder keeps for
 * __CRC32#), or SHMQ_E_ARG if name/value is empty or contains 0x01/0x02.
 */
int shmq_props_append(char *buf, size_t cap, size_t *len, const char *name, const char *value,
                      size_t value_len);

/*
 * Iterate properties: *pos starts at 0; each call yields the next pair
 * (skipping segments RocketMQ ignores) and returns true, false at the end.
 */
bool shmq_props_next(const char *props, size_t len, size_t *pos, const char **name,
                     size_t *name_len, const char **value, size_t *value_len);

/* ---- identifiers ------------------------------------------------------- */

/* Offset message id of a record: uppercase hex of store host, port, phys offset. */
void shmq_msgid_format(const shmq_host_t *store_host, int64_t phys_offset,
                       char out[SHMQ_MSGID_MAX]);

/* Parse an offset message id (32 or 56 hex chars). SHMQ_E_MSGID if malformed. */
int shmq_msgid_parse(const char *text, shmq_host_t *store_host, int64_t *phys_offset);

/*
 * A new client unique key (UNIQ_KEY) for this process: ip, pid, a
 * per-process random word in the place of RocketMQ's class loader hash, ms
 * since the start of the month, a counter.  Thread-safe.
 */
void shmq_uniq_key_generate(char out[SHMQ_UNIQ_KEY_MAX]);

/* Length of a key shmq_uniq_key_generate() makes (32 hex characters; IPv4 prefix). */
#define SHMQ_UNIQ_KEY_LEN 32

/*
 * As shmq_uniq_key_generate(), with the wall clock (ms since the epoch)
 * the caller already read; returns the key's length (SHMQ_UNIQ_KEY_LEN).
 */
size_t shmq_uniq_key_generate_at(char out[SHMQ_UNIQ_KEY_MAX], int64_t now_ms);

/*
 * shmq_uniq_key_generate_at() on a producer's send path: the same key (the
 * same counter).  Its usual case, a key in the same millisecond as this
 * thread's last one, without the rest's stack frame; anything else is
 * shmq_uniq_key_generate_at()'s.
 */
size_t shmq_uniq_key_generate_next(char out[SHMQ_UNIQ_KEY_MAX], int64_t now_ms);

/* The host address this process stamps on messages (first non-loopback IPv4, else 127.0.0.1). */
void shmq_local_host(shmq_host_t *host, int32_t port);

#endif
