/*
 * RocketMQ's remoting protocol, frame by frame: what shmq-gateway reads from
 * and writes to RocketMQ client applications (docs/gateway.md).
 *
 * A frame is a 4-byte big-endian length (of everything after it), a 4-byte
 * word of serialize type (high byte) and header length (low 24 bits), the
 * header (JSON: code, language, version, opaque, flag, remark, extFields)
 * and the body.  Only the JSON serialization is read (type 0); RocketMQ's
 * binary header (type 1) is refused.
 *
 * Pure: no I/O, no state.  Every frame is untrusted input: its length is
 * bounded by the caller's limit before anything is buffered, the header by
 * SHMQ_RMT_HEADER_MAX and the frame, and a header that is no JSON object,
 * lacks an integer code or opaque, or has extFields that are not a map of
 * scalars is refused with SHMQ_E_ARG and a detail.
 */
#ifndef SHMQ_REMOTING_H
#define SHMQ_REMOTING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHMQ_RMT_PREFIX    8           /* length word and serialize/header-length word */
#define SHMQ_RMT_FRAME_MAX (16u << 20) /* RocketMQ's decoder limit (length word + frame) */
#define SHMQ_RMT_HEADER_MAX                                                                        \
    (1u << 20)              /* a header: extFields with 32 KiB of properties, escaped              \
                             */
#define SHMQ_RMT_EXT_MAX 64 /* extFields entries */

/* Header flag bits. */
#define SHMQ_RMT_FLAG_RESPONSE 0x1
#define SHMQ_RMT_FLAG_ONEWAY   0x2

/* Request codes (RocketMQ's RequestCode). */
enum shmq_rmt_request {
    SHMQ_RMT_SEND_MESSAGE = 10,
    SHMQ_RMT_PULL_MESSAGE = 11,
    SHMQ_RMT_QUERY_MESSAGE = 12,
    SHMQ_RMT_QUERY_CONSUMER_OFFSET = 14,
    SHMQ_RMT_UPDATE_CONSUMER_OFFSET = 15,
    SHMQ_RMT_SEARCH_OFFSET_BY_TIMESTAMP = 29,
    SHMQ_RMT_GET_MAX_OFFSET = 30,
    SHMQ_RMT_GET_MIN_OFFSET = 31,
    SHMQ_RMT_VIEW_MESSAGE_BY_ID = 33,
    SHMQ_RMT_HEART_BEAT = 34,
    SHMQ_RMT_UNREGISTER_CLIENT = 35,
    SHMQ_RMT_CONSUMER_SEND_MSG_BACK = 36,
    SHMQ_RMT_GET_CONSUMER_LIST_BY_GROUP = 38,
    SHMQ_RMT_NOTIFY_CONSUMER_IDS_CHANGED = 40,
    SHMQ_RMT_LOCK_BATCH_MQ = 41,
    SHMQ_RMT_UNLOCK_BATCH_MQ = 42,
    SHMQ_RMT_GET_ROUTEINFO_BY_TOPIC = 105,
    SHMQ_RMT_GET_BROKER_CLUSTER_INFO = 106,
    SHMQ_RMT_SEND_MESSAGE_V2 = 310,
    SHMQ_RMT_SEND_BATCH_MESSAGE = 320,
};

/* Response codes (RocketMQ's ResponseCode and RemotingSysResponseCode). */
enum shmq_rmt_response {
    SHMQ_RMT_SUCCESS = 0,
    SHMQ_RMT_SYSTEM_ERROR = 1,
    SHMQ_RMT_SYSTEM_BUSY = 2,
    SHMQ_RMT_REQUEST_CODE_NOT_SUPPORTED = 3,
    SHMQ_RMT_FLUSH_DISK_TIMEOUT = 10,
    SHMQ_RMT_SLAVE_NOT_AVAILABLE = 11,
    SHMQ_RMT_FLUSH_SLAVE_TIMEOUT = 12,
    SHMQ_RMT_MESSAGE_ILLEGAL = 13,
    SHMQ_RMT_SERVICE_NOT_AVAILABLE = 14,
    SHMQ_RMT_NO_PERMISSION = 16,
    SHMQ_RMT_TOPIC_NOT_EXIST = 17,
    SHMQ_RMT_PULL_NOT_FOUND = 19,
    SHMQ_RMT_PULL_RETRY_IMMEDIATELY = 20,
    SHMQ_RMT_PULL_OFFSET_MOVED = 21,
    SHMQ_RMT_QUERY_NOT_FOUND = 22,
    SHMQ_RMT_SUBSCRIPTION_NOT_EXIST = 24,
};

/* A decoded frame.  body points into the frame; ext is owned (shmq_rmt_cmd_free). */
typedef struct shmq_rmt_cmd {
    int32_t code;
    int32_t opaque;
    int32_t flag;
    int32_t version;
    json_t *ext; /* extFields: an object of scalars, never NULL after a decode */
    const uint8_t *body;
    size_t body_len;
} shmq_rmt_cmd_t;

/*
 * How long the frame at buf is, from its first SHMQ_RMT_PREFIX bytes: the
 * whole frame's bytes (the length word included) once len >= 8, 0 while
 * fewer bytes are there, or SHMQ_E_TOO_BIG (the frame would exceed max
 * bytes) or SHMQ_E_ARG (a length below the header word, a header longer
 * than the frame or SHMQ_RMT_HEADER_MAX, a serialize type other than JSON)
 * with a detail.  Nothing past the prefix is looked at.
 */
int64_t shmq_rmt_frame_size(const uint8_t *buf, size_t len, size_t max);

/*
 * Decode one whole frame of len bytes (as shmq_rmt_frame_size() measured
 * it) into *cmd.  0, or SHMQ_E_ARG with a detail (the prefix, the JSON, a
 * missing or non-integer code or opaque, extFields not an object of
 * strings, numbers or booleans, more than SHMQ_RMT_EXT_MAX of them); cmd
 * holds nothing to free after an error.
 */
int shmq_rmt_decode(const uint8_t *frame, size_t len, shmq_rmt_cmd_t *cmd);

void shmq_rmt_cmd_free(shmq_rmt_cmd_t *cmd);

/*
 * An extFields value as text, NULL when absent.  Numbers and booleans (as
 * some clients write them) come as their text in buf (cap bytes).
 */
const char *shmq_rmt_ext(const shmq_rmt_cmd_t *cmd, const char *name, char *buf, size_t cap);

/*
 * An extFields value as a decimal integer within [lo, hi]: 0 and *out,
 * SHMQ_E_NOT_FOUND when absent, SHMQ_E_ARG (detail names the field) when
 * it is no integer or out of range.
 */
int shmq_rmt_ext_i64(const shmq_rmt_cmd_t *cmd, const char *name, int64_t lo, int64_t hi,
                     int64_t *out);

/*
 * Encode the prefix and JSON header of a frame: code, opaque, flag (the
 * response bit for answers), remark (NULL: none), ext (NULL: none; values
 * as strings), for a body of body_len bytes that the caller sends after
 * it.  Returns the malloc'd bytes in *out (*out_len), or -ENOMEM, or
 * SHMQ_E_TOO_BIG when the frame would exceed SHMQ_RMT_FRAME_MAX.
 */
int shmq_rmt_encode(int32_t code, int32_t opaque, int32_t flag, const char *remark,
                    const json_t *ext, size_t body_len, uint8_t **out, size_t *out_len);

#endif
