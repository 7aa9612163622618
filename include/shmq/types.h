/*
 * shmq public types and format constants shared by every API.
 *
 * The constants are RocketMQ's (see docs/formats.md): shmq's files are
 * byte-compatible with a RocketMQ store.
 */
#ifndef SHMQ_TYPES_H
#define SHMQ_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Record magic codes, as the signed ints RocketMQ writes (big-endian). */
#define SHMQ_MAGIC_V1    ((int32_t)0xDAA320A7)
#define SHMQ_MAGIC_V2    ((int32_t)0xDAA320AB)
#define SHMQ_MAGIC_BLANK ((int32_t)0xCBD43194)

/* Minimum room a segment keeps for the end-of-file blank record. */
#define SHMQ_BLANK_MIN_LEN 8

/* SysFlag bits. */
#define SHMQ_SYSFLAG_COMPRESSED    0x001
#define SHMQ_SYSFLAG_MULTI_TAGS    0x002
#define SHMQ_SYSFLAG_TX_MASK       0x00C
#define SHMQ_SYSFLAG_TX_NOT        0x000
#define SHMQ_SYSFLAG_TX_PREPARED   0x004
#define SHMQ_SYSFLAG_TX_COMMIT     0x008
#define SHMQ_SYSFLAG_TX_ROLLBACK   0x00C
#define SHMQ_SYSFLAG_BORNHOST_V6   0x010
#define SHMQ_SYSFLAG_STOREHOST_V6  0x020
#define SHMQ_SYSFLAG_NEED_UNWRAP   0x040
#define SHMQ_SYSFLAG_INNER_BATCH   0x080
#define SHMQ_SYSFLAG_COMPRESS_MASK 0x700
#define SHMQ_SYSFLAG_COMPRESS_LZ4  0x100
#define SHMQ_SYSFLAG_COMPRESS_ZSTD 0x200
#define SHMQ_SYSFLAG_COMPRESS_ZLIB 0x300

/*
 * Compression types: sysflag bits 8-10 of a record whose COMPRESSED bit is
 * set (RocketMQ's CompressionType; bits 0 there mean ZLIB, as pre-5.x
 * clients write).  LZ4 bodies are LZ4 frames, ZSTD bodies zstd frames,
 * ZLIB bodies zlib streams (RFC 1950).
 */
#define SHMQ_COMPRESSION_NONE 0
#define SHMQ_COMPRESSION_LZ4  1
#define SHMQ_COMPRESSION_ZSTD 2
#define SHMQ_COMPRESSION_ZLIB 3

/* Bodies larger than this are compressed by default (compressMsgBodyOverHowmuch). */
#define SHMQ_COMPRESS_OVER_DEFAULT 4096

/* Property separators and limits. */
#define SHMQ_PROP_NAME_VALUE_SEP 0x01
#define SHMQ_PROP_SEP            0x02
#define SHMQ_PROPS_MAX           32767
#define SHMQ_TOPIC_MAX           127 /* non-retry topics */
#define SHMQ_TOPIC_MAX_ANY       255 /* any topic (retry topics may be longer than 127) */

/* Reserved property names. */
#define SHMQ_PROP_KEYS        "KEYS"
#define SHMQ_PROP_TAGS        "TAGS"
#define SHMQ_PROP_WAIT        "WAIT"
#define SHMQ_PROP_DELAY       "DELAY"
#define SHMQ_PROP_UNIQ_KEY    "UNIQ_KEY"
#define SHMQ_PROP_REAL_TOPIC  "REAL_TOPIC"
#define SHMQ_PROP_REAL_QID    "REAL_QID"
#define SHMQ_PROP_RETRY_TOPIC "RETRY_TOPIC"
#define SHMQ_PROP_ORIGIN_ID   "ORIGIN_MESSAGE_ID"
#define SHMQ_PROP_CRC32       "__CRC32#"

/* Length of the whole-record CRC property tail: "__CRC32#" 0x01 10 digits 0x02. */
#define SHMQ_CRC_PROP_LEN 20

/* Offset message id text: 32 hex chars for IPv4 store hosts, 56 for IPv6. */
#define SHMQ_MSGID_MAX 57
/* UNIQ_KEY text: 32 hex chars (IPv4 producer) or 56 (IPv6), plus NUL. */
#define SHMQ_UNIQ_KEY_MAX 57

/* ConsumeQueue unit size. */
#define SHMQ_CQ_UNIT_SIZE 20

/* A network host as RocketMQ stores it: address bytes (network order) and a port. */
typedef struct shmq_host {
    uint8_t addr[16]; /* IPv4 uses addr[0..3] */
    uint8_t is_v6;
    int32_t port;
} shmq_host_t;

#ifdef __cplusplus
}
#endif

#endif
