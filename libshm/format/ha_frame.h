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

#endif
