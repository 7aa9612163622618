/*
 * The light reads of a CommitLog record that the store's own workers make
 * on every record (dispatcher, indexer, flusher): the header fields they
 * use, the few properties they look up, and the index key hash, each in
 * one pass.  The full codec (every field, CRC checks, encoding) is
 * message.h; a record read here is checked exactly as shmq_record_decode()
 * checks it with the same flags (magic, sizes, field lengths, physical
 * offset), so no check on untrusted bytes is lost, only fields nobody
 * reads are left out.
 */
#ifndef SHMQ_RECORD_SCAN_H
#define SHMQ_RECORD_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/message.h"
#include "format/record_layout.h"

/* The fields of a record a store worker needs.  Pointers point into the record. */
typedef struct shmq_record_head {
    int32_t total_size; /* a blank record: its length field */
    int32_t magic;
    int32_t queue_id;
    int32_t sysflag;
    int64_t queue_offset;
    int64_t phys_offset;
    int64_t store_ts;
    const char *topic;
    uint32_t topic_len;
    uint32_t props_len;
    const char *props; /* the whole properties area, __CRC32# included */
} shmq_record_head_t;

/*
 * Read the record at buf (avail bytes readable) as shmq_record_decode()
 * does with flags 0 or SHMQ_DECODE_CHECK_PHYS (other flags: SHMQ_E_ARG):
 * the same checks in the same order, the same return values (> 0 size,
 * 0 blank, < 0 the same error codes), but only the fields of *out.  On
 * failure only total_size and magic are set (as far as they were read).
 */
int shmq_record_head_decode(const uint8_t *buf, size_t avail, int64_t expect_phys, unsigned flags,
                            shmq_record_head_t *out);

/*
 * shmq_record_head_decode(), inline: the dispatcher's and the indexer's
 * CommitLog iteration (shmq_commitlog_next_head_inline) runs it on every record,
 * where a call's saving and restoring of registers costs as much as the
 * fields it reads.
 */
static inline __attribute__((always_inline)) int
shmq_record_head_decode_inline(const uint8_t *buf, size_t avail, int64_t expect_phys,
                               unsigned flags, shmq_record_head_t *out)
{
    if (flags & ~(unsigned)SHMQ_DECODE_CHECK_PHYS) {
        return shmq_error_set(SHMQ_E_ARG, "record head: decode flags 0x%x not supported", flags);
    }
    shmq_record_layout_t l;
    int rc = shmq_record_layout(buf, avail, &l);
    out->total_size = l.total_size;
    out->magic = l.magic;
    if (rc <= 0) {
        return rc;
    }
    out->queue_id = (int32_t)shmq_get_be32(buf + 12);
    out->queue_offset = (int64_t)shmq_get_be64(buf + 20);
    out->phys_offset = (int64_t)shmq_get_be64(buf + 28);
    out->sysflag = l.sysflag;
    out->store_ts = (int64_t)shmq_get_be64(buf + l.store_at);
    out->topic = (const char *)buf + l.topic_at;
    out->topic_len = l.topic_len;
    out->props = (const char *)buf + l.props_at;
    out->props_len = l.props_len;
    if ((flags & SHMQ_DECODE_CHECK_PHYS) && out->phys_offset != expect_phys) {
        return shmq_error_set(SHMQ_E_PHYS_OFFSET, "record: PHYSICALOFFSET %lld, expected %lld",
                              (long long)out->phys_offset, (long long)expect_phys);
    }
    return rc;
}

/* The head of a fully decoded record (for callers that hold a shmq_record_t). */
void shmq_record_head_from(const shmq_record_t *r, shmq_record_head_t *out);

/*
 * The properties the store's workers look up, found in one pass over the
 * properties area, each as shmq_props_get() finds it (the last valid
 * occurrence; NULL, length 0 when absent or empty).
 */
typedef struct shmq_record_props {
    const char *tags, *keys, *uniq_key, *delay;
    uint32_t tags_len, keys_len, uniq_key_len, delay_len;
} shmq_record_props_t;

void shmq_record_props_scan(const char *props, size_t len, shmq_record_props_t *out);

/*
 * shmq_record_props_scan() of only what one worker reads, the other fields
 * NULL, 0: TAGS, and DELAY when delay (the dispatcher: DELAY counts only in
 * the schedule topic); UNIQ_KEY and KEYS (the indexer).  Each field it sets
 * is the one shmq_record_props_scan() finds.
 */
void shmq_record_props_scan_tags(const char *props, size_t len, bool delay,
                                 shmq_record_props_t *out);
void shmq_record_props_scan_keys(const char *props, size_t len, shmq_record_props_t *out);

/*
 * The TAGS value of the properties area props, as shmq_record_props_scan()
 * finds it (the last non-empty TAGS), *len its length; NULL, *len 0 when
 * there is none.  The dispatcher's scan outside the schedule topic.
 */
const char *shmq_record_props_find_tags(const char *props, size_t len, uint32_t *tags_len);

/*
 * shmq_record_props_find_tags(), inline for the dispatcher's loop: an area
 * of 16 to 64 bytes without a 'T' anywhere (the usual one: a UNIQ_KEY and
 * the __CRC32# tail) has no TAGS, seen in four overlapping loads and one
 * mask, without a call; any other area goes to the search.
 */
static inline __attribute__((always_inline)) const char *
shmq_record_props_find_tags_inline(const char *props, size_t len, uint32_t *tags_len)
{
#if defined(__SSE2__)
    if (len >= 16 && len <= 64) {
        /* Bytes 0..15, 16..31 and 32..47 where the area holds them, else its last 16 (read
         * again: a 'T' anywhere sends the area to the search, which reads it all). */
        size_t at1 = len >= 32 ? 16 : len - 16, at2 = len >= 48 ? 32 : len - 16;
        const __m128i t = _mm_set1_epi8('T');
        __m128i any = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)props), t),
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(props + at1)), t)),
            _mm_or_si128(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(props + at2)), t),
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(props + len - 16)),
                               t)));
        if (_mm_movemask_epi8(any) == 0) {
            *tags_len = 0;
            return NULL;
        }
    }
#endif
    return shmq_record_props_find_tags(props, len, tags_len);
}

/*
 * IndexFile key hash of topic + "#" + key (abs(Java hashCode), 0 if still
 * negative), without building the string: equal to
 * shmq_index_key_hash() of the concatenation, for any bytes (ASCII is
 * hashed directly; anything else goes through Java's UTF-8 decoding).
 * -1 only when out of memory (a non-ASCII key longer than 1 KiB).
 */
int32_t shmq_topic_key_hash(const char *topic, size_t topic_len, const char *key, size_t key_len);

/*
 * What shmq_topic_key_hash_memo() remembers of the last key it hashed: the
 * hash of its topic and "#", and of its first eight bytes, sixteen, ...
 * (ASCII words without a 0x02 only: a key's words are remembered up to the
 * first that holds one).
 * Zero it before the first use; one per thread.
 */
#define SHMQ_KEY_MEMO_TOPIC 128 /* longer topics are hashed whole every time */
#define SHMQ_KEY_MEMO_WORDS 8   /* key bytes remembered: 8 words of 8 */

typedef struct shmq_key_hash_memo {
    uint32_t topic_len;  /* 0: no topic yet */
    uint32_t topic_hash; /* h of topic + "#" */
    char topic[SHMQ_KEY_MEMO_TOPIC];
    uint32_t words;                      /* key words remembered */
    uint64_t word[SHMQ_KEY_MEMO_WORDS];  /* key bytes 8i..8i+7 */
    uint32_t after[SHMQ_KEY_MEMO_WORDS]; /* h after them */
} shmq_key_hash_memo_t;

/*
 * shmq_topic_key_hash() (the same result for any bytes) that skips what
 * the previous key of the same topic shares with this one, eight bytes at a
 * time: a producer's UNIQ_KEYs share their first 20 characters, so one of
 * them costs the topic comparison and its last two words.
 */
int32_t shmq_topic_key_hash_memo(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len,
                                 const char *key, size_t key_len);

/*
 * The indexer's usual record in one pass over its properties area props:
 * when it holds only a UNIQ_KEY property with a non-empty ASCII value
 * ("UNIQ_KEY" 0x01 value 0x02, shmq's __CRC32# property after it or not),
 * the hash shmq_topic_key_hash_memo() gives topic and that value, the key
 * shmq_record_props_scan_keys() finds (and no KEYS).  -1 for any other area
 * or a topic the memo cannot hold: the caller scans it.  Each byte of the
 * value is checked and hashed from one read (the area may be shared
 * memory).  A value of 16 bytes or more is hashed whole in vectors (SSE2,
 * or SSSE3 and SSE4.1 where the CPU has them), the memo's key words left as
 * they are; a shorter one through the memo.
 */
int32_t shmq_uniq_key_only_hash_memo(shmq_key_hash_memo_t *m, const char *topic, size_t topic_len,
                                     const char *props, size_t len);

/* shmq_uniq_key_only_hash_memo() on its SSE2 path whatever the CPU has (tests). */
int32_t shmq_uniq_key_only_hash_memo_sse2(shmq_key_hash_memo_t *m, const char *topic,
                                          size_t topic_len, const char *props, size_t len);

#endif
