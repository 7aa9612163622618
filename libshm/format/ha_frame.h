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
 *
 * shmq's own requests on the same port (docs/formats.md "HA requests"): a
 * connection whose first 8 bytes are SHMQ_HA_REQ_MAGIC (0xFF "SHMQRQ1": as
 * a report it would be a negative offset, which no slave sends) is a
 * request, not a slave:
 *
 *   client -> master   magic (8) · request code (4, BE)
 *   master -> client   status (4, BE: 0 ok, else an shmq error code) ·
 *                      body length (4, BE, at most SHMQ_HA_BODY_MAX) · body
 *
 * The master answers once and leaves closing to the client.
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

/* ---- requests ------------------------------------------------------------------------ */

#define SHMQ_HA_REQ_MAGIC                                                                          \
    "\xff"                                                                                         \
    "SHMQRQ1" /* 8 bytes on the wire (no NUL) */
#define SHMQ_HA_REQ_MAGIC_LEN 8
#define SHMQ_HA_REQ_SIZE      12 /* magic + code */
#define SHMQ_HA_ANSWER_SIZE   8  /* status + body length */
#define SHMQ_HA_BODY_MAX      (16 << 20)

/* Request codes. */
#define SHMQ_HA_REQ_META  1 /* the master's metadata (topics, offsets, ...) */
#define SHMQ_HA_REQ_EPOCH 2 /* the master's epoch table and log end */

void shmq_ha_request_encode(int32_t code, uint8_t out[SHMQ_HA_REQ_SIZE]);

/* Whether buf[0, len) starts like a request (len >= 1: as far as it goes). */
bool shmq_ha_is_request(const uint8_t *buf, size_t len);

/* The code of a complete request; SHMQ_E_CORRUPT if the magic is not there. */
int shmq_ha_request_decode(const uint8_t in[SHMQ_HA_REQ_SIZE], int32_t *code);

void shmq_ha_answer_header_encode(int32_t status, uint32_t body_len,
                                  uint8_t out[SHMQ_HA_ANSWER_SIZE]);

/* Decode an answer header: SHMQ_E_CORRUPT when the body would exceed SHMQ_HA_BODY_MAX. */
int shmq_ha_answer_header_decode(const uint8_t in[SHMQ_HA_ANSWER_SIZE], int32_t *status,
                                 uint32_t *body_len);

#endif
