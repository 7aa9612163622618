/*
 * RocketMQ's classic HA frames (DefaultHAService, HAConnection,
 * HAClient), byte by byte, big-endian as Java writes them:
 *
 *   slave -> master   a report: the slave's log end (8 bytes, int64),
 *                     sent at least every haSendHeartbeatInterval and
 *                     after each append; the master takes the newest
 *                     complete one;
 *   master -> slave   a transfer: the CommitLog offset of the first body
 *                     byte (int64) and the body's size (int32), then that
 *                     many bytes of the log (record boundaries anywhere);
 *                     a body of 0 bytes is a heartbeat.
 *
 * What a frame claims is checked here before anything acts on it: a
 * negative offset, a size beyond the batch, an end past INT64_MAX.
 */
#ifndef SHMQ_FORMAT_HA_FRAME_H
#define SHMQ_FORMAT_HA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHMQ_HA_REPORT_SIZE 8
#define SHMQ_HA_HEADER_SIZE 12

typedef struct shmq_ha_header {
    int64_t offset; /* of the first body byte in the CommitLog */
    int32_t size;   /* body bytes that follow (0: heartbeat) */
} shmq_ha_header_t;

void shmq_ha_report_encode(int64_t log_end, uint8_t out[SHMQ_HA_REPORT_SIZE]);

/*
 * The reports in buf[0, len): how many complete ones there are (the bytes
 * they take: 8 each; a partial one waits for more), *latest the newest.
 * SHMQ_E_CORRUPT when one is negative.
 */
int shmq_ha_report_scan(const uint8_t *buf, size_t len, int64_t *latest);

void shmq_ha_header_encode(const shmq_ha_header_t *h, uint8_t out[SHMQ_HA_HEADER_SIZE]);

/*
 * Decode and check a transfer header: offset >= 0, 0 <= size <= max_body,
 * offset + size representable.  SHMQ_E_CORRUPT with a detail otherwise.
 */
int shmq_ha_header_decode(const uint8_t in[SHMQ_HA_HEADER_SIZE], int32_t max_body,
                          shmq_ha_header_t *h);

/*
 * Where the master starts sending to a slave whose first report is
 * report, its log holding [log_min, log_end) in segments of seg_size: a
 * slave that starts empty (0) gets the last segment first, as RocketMQ
 * does; any other report is where that slave's log ends.  SHMQ_E_RANGE
 * (with a detail) when the report is beyond log_end (that slave holds
 * bytes this master never wrote) or below log_min (cleaned here: the slave
 * cannot catch up from this master).
 */
int shmq_ha_start_offset(int64_t report, int64_t log_min, int64_t log_end, int64_t seg_size,
                         int64_t *start);

/*
 * shmq's slave hello (controller mode): a slave in controller mode gives the
 * master its controller brokerId, so that the master knows which member of
 * the sync-state set each connection is (allAckInSyncStateSet):
 *
 *   slave -> master   SHMQ_HA_HELLO_MAGIC (8 bytes), the brokerId (int64,
 *                     1 to SHMQ_HA_BROKER_ID_MAX)
 *
 * in place of any report (the magic's first byte 0xFF makes it a negative
 * report, never a real one), usually before the first.  A slave not in
 * controller mode never sends it, so a RocketMQ master or an shmq master
 * of an older version follows it as before; a master takes one brokerId per
 * connection (another one closes the connection).
 */
#define SHMQ_HA_HELLO_MAGIC   "\xffSHMQID1"
#define SHMQ_HA_HELLO_SIZE    16
#define SHMQ_HA_BROKER_ID_MAX (1LL << 40)

void shmq_ha_hello_encode(int64_t broker_id, uint8_t out[SHMQ_HA_HELLO_SIZE]);

/* True when the first 8 bytes of p are the hello magic. */
bool shmq_ha_is_hello(const uint8_t p[SHMQ_HA_REPORT_SIZE]);

/* The brokerId of a hello; SHMQ_E_CORRUPT (naming the value) when the magic is missing or
 * the id is not in 1..SHMQ_HA_BROKER_ID_MAX. */
int shmq_ha_hello_decode(const uint8_t in[SHMQ_HA_HELLO_SIZE], int64_t *broker_id);

/* ---- requests on the HA port ------------------------------------------------------------ */

/*
 * A connection to haListenPort whose first 8 bytes are SHMQ_HA_REQ_MAGIC is
 * a request, not a slave (a slave's first 8 bytes are its report, an offset
 * >= 0, and the magic's first byte 0xFF makes it negative as an int64):
 *
 *   client -> master   the magic (8 bytes), the request code (int32);
 *   master -> client   the status (int32: 0 ok, else an shmq error code),
 *                      the body's length (int32, 0 to SHMQ_HA_ANSWER_MAX),
 *                      the body (on an error: a text saying why).
 *
 * One request per connection; the client closes it when the answer is in
 * (the master's idle timeout closes a silent one).  Codes: 1 metadata
 * (SHMQ_HA_REQ_META: the body is a sequence of named files, below); 2 the
 * epoch table (SHMQ_HA_REQ_EPOCH: the master's log end, int64, then its
 * epochFileCheckpoint text).  An unknown code is answered with SHMQ_E_ARG.
 */
#define SHMQ_HA_REQ_MAGIC        "\xffSHMQRQ1"
#define SHMQ_HA_REQ_MAGIC_SIZE   8
#define SHMQ_HA_REQ_SIZE         12
#define SHMQ_HA_ANSWER_HEAD_SIZE 8
#define SHMQ_HA_ANSWER_MAX       (16 << 20)
#define SHMQ_HA_REQ_META         1 /* the master's metadata (topics, groups, offsets) */
#define SHMQ_HA_REQ_EPOCH        2 /* the master's log end and epoch table */

/* True when the first SHMQ_HA_REQ_MAGIC_SIZE bytes of p are the magic. */
bool shmq_ha_is_request(const uint8_t p[SHMQ_HA_REQ_MAGIC_SIZE]);

void shmq_ha_request_encode(int32_t code, uint8_t out[SHMQ_HA_REQ_SIZE]);

/* The code of a request; SHMQ_E_CORRUPT when the magic is not there. */
int shmq_ha_request_decode(const uint8_t in[SHMQ_HA_REQ_SIZE], int32_t *code);

void shmq_ha_answer_encode(int32_t status, uint32_t body_len,
                           uint8_t out[SHMQ_HA_ANSWER_HEAD_SIZE]);

/*
 * Decode an answer's head: SHMQ_E_CORRUPT when the body's length is above
 * SHMQ_HA_ANSWER_MAX (nothing of it is read) or the status is positive.
 */
int shmq_ha_answer_decode(const uint8_t in[SHMQ_HA_ANSWER_HEAD_SIZE], int32_t *status,
                          uint32_t *body_len);

/*
 * The metadata body: named files one after the other, each
 *   name length (uint16, 1 to SHMQ_HA_FILE_NAME_MAX), name (bytes of
 *   [A-Za-z0-9._-]), data length (uint32), data.
 */
#define SHMQ_HA_FILE_NAME_MAX 64

/* Bytes one file takes in a body (its head and data). */
size_t shmq_ha_file_size(size_t name_len, size_t data_len);

/* Write one file at out (shmq_ha_file_size bytes); returns the bytes written. */
size_t shmq_ha_file_encode(uint8_t *out, const char *name, const void *data, uint32_t data_len);

typedef struct shmq_ha_file {
    char name[SHMQ_HA_FILE_NAME_MAX + 1];
    const uint8_t *data; /* into the body */
    uint32_t len;
} shmq_ha_file_t;

/*
 * The file of body[*pos, len): 1 and *f with *pos past it, 0 at the end of
 * the body, SHMQ_E_CORRUPT (with a detail naming the byte) for a name
 * empty, too long or of other characters, or a length past the body.
 */
int shmq_ha_file_next(const uint8_t *body, size_t len, size_t *pos, shmq_ha_file_t *f);

#endif
