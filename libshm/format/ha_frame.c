/*
 * RocketMQ's classic HA frames (ha_frame.h).
 */
#include "format/ha_frame.h"

#include "base/bytes.h"
#include "shmq/errors.h"

#include <string.h>

void shmq_ha_report_encode(int64_t log_end, uint8_t out[SHMQ_HA_REPORT_SIZE])
{
    shmq_put_be64(out, (uint64_t)log_end);
}

int shmq_ha_report_scan(const uint8_t *buf, size_t len, int64_t *latest)
{
    size_t n = len / SHMQ_HA_REPORT_SIZE;
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)shmq_get_be64(buf + i * SHMQ_HA_REPORT_SIZE);
        if (v < 0) {
            return shmq_error_set(SHMQ_E_CORRUPT, "report %lld: not an offset", (long long)v);
        }
        *latest = v;
    }
    return (int)(n > (size_t)INT32_MAX ? INT32_MAX : n);
}

void shmq_ha_header_encode(const shmq_ha_header_t *h, uint8_t out[SHMQ_HA_HEADER_SIZE])
{
    shmq_put_be64(out, (uint64_t)h->offset);
    shmq_put_be32(out + 8, (uint32_t)h->size);
}

int shmq_ha_header_decode(const uint8_t in[SHMQ_HA_HEADER_SIZE], int32_t max_body,
                          shmq_ha_header_t *h)
{
    h->offset = (int64_t)shmq_get_be64(in);
    h->size = (int32_t)shmq_get_be32(in + 8);
    if (h->offset < 0) {
        return shmq_error_set(SHMQ_E_CORRUPT, "transfer at %lld: not an offset",
                              (long long)h->offset);
    }
    if (h->size < 0 || h->size > max_body) {
        return shmq_error_set(SHMQ_E_CORRUPT, "transfer of %d bytes: give 0 to %d", h->size,
                              max_body);
    }
    if (h->offset > INT64_MAX - h->size) {
        return shmq_error_set(SHMQ_E_CORRUPT, "transfer at %lld of %d bytes ends past 2^63",
                              (long long)h->offset, h->size);
    }
    return 0;
}

int shmq_ha_start_offset(int64_t report, int64_t log_min, int64_t log_end, int64_t seg_size,
                         int64_t *start)
{
    if (report == 0) {
        *start = seg_size > 0 ? log_end - log_end % seg_size : log_end;
        if (*start < log_min) {
            *start = log_min;
        }
        return 0;
    }
    if (report > log_end) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "the slave's log ends at %lld, beyond this master's end %lld: it "
                              "holds bytes this master never wrote",
                              (long long)report, (long long)log_end);
    }
    if (report < log_min) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "the slave's log ends at %lld, before this master's first offset "
                              "%lld (cleaned): it cannot catch up from here",
                              (long long)report, (long long)log_min);
    }
    *start = report;
    return 0;
}

void shmq_ha_request_encode(int32_t code, uint8_t out[SHMQ_HA_REQ_SIZE])
{
    memcpy(out, SHMQ_HA_REQ_MAGIC, SHMQ_HA_REQ_MAGIC_LEN);
    shmq_put_be32(out + 8, (uint32_t)code);
}

bool shmq_ha_is_request(const uint8_t *buf, size_t len)
{
    size_t n = len < SHMQ_HA_REQ_MAGIC_LEN ? len : SHMQ_HA_REQ_MAGIC_LEN;
    return n > 0 && memcmp(buf, SHMQ_HA_REQ_MAGIC, n) == 0;
}

int shmq_ha_request_decode(const uint8_t in[SHMQ_HA_REQ_SIZE], int32_t *code)
{
    if (memcmp(in, SHMQ_HA_REQ_MAGIC, SHMQ_HA_REQ_MAGIC_LEN) != 0) {
        return shmq_error_set(SHMQ_E_CORRUPT, "not an HA request (bad magic)");
    }
    *code = (int32_t)shmq_get_be32(in + 8);
    return 0;
}

void shmq_ha_answer_header_encode(int32_t status, uint32_t body_len,
                                  uint8_t out[SHMQ_HA_ANSWER_SIZE])
{
    shmq_put_be32(out, (uint32_t)status);
    shmq_put_be32(out + 4, body_len);
}

int shmq_ha_answer_header_decode(const uint8_t in[SHMQ_HA_ANSWER_SIZE], int32_t *status,
                                 uint32_t *body_len)
{
    *status = (int32_t)shmq_get_be32(in);
    *body_len = shmq_get_be32(in + 4);
    if (*body_len > SHMQ_HA_BODY_MAX) {
        return shmq_error_set(SHMQ_E_CORRUPT, "an answer of %u bytes: at most %d", *body_len,
                              SHMQ_HA_BODY_MAX);
    }
    return 0;
}
