/*
 * RocketMQ's classic HA frames (ha_frame.h).
 */
#include "format/ha_frame.h"

#include <string.h>

#include "base/bytes.h"
#include "shmq/errors.h"

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

/* ---- the slave hello (controller mode) --------------------------------------------------- */

void shmq_ha_hello_encode(int64_t broker_id, uint8_t out[SHMQ_HA_HELLO_SIZE])
{
    memcpy(out, SHMQ_HA_HELLO_MAGIC, SHMQ_HA_REPORT_SIZE);
    shmq_put_be64(out + SHMQ_HA_REPORT_SIZE, (uint64_t)broker_id);
}

bool shmq_ha_is_hello(const uint8_t p[SHMQ_HA_REPORT_SIZE])
{
    return memcmp(p, SHMQ_HA_HELLO_MAGIC, SHMQ_HA_REPORT_SIZE) == 0;
}

int shmq_ha_hello_decode(const uint8_t in[SHMQ_HA_HELLO_SIZE], int64_t *broker_id)
{
    if (!shmq_ha_is_hello(in)) {
        return shmq_error_set(SHMQ_E_CORRUPT, "not a hello: no hello magic");
    }
    int64_t id = (int64_t)shmq_get_be64(in + SHMQ_HA_REPORT_SIZE);
    if (id < 1 || id > SHMQ_HA_BROKER_ID_MAX) {
        return shmq_error_set(SHMQ_E_CORRUPT, "hello with brokerId %lld: give 1 to %lld",
                              (long long)id, (long long)SHMQ_HA_BROKER_ID_MAX);
    }
    *broker_id = id;
    return 0;
}

/* ---- requests on the HA port ------------------------------------------------------------ */

bool shmq_ha_is_request(const uint8_t p[SHMQ_HA_REQ_MAGIC_SIZE])
{
    return memcmp(p, SHMQ_HA_REQ_MAGIC, SHMQ_HA_REQ_MAGIC_SIZE) == 0;
}

void shmq_ha_request_encode(int32_t code, uint8_t out[SHMQ_HA_REQ_SIZE])
{
    memcpy(out, SHMQ_HA_REQ_MAGIC, SHMQ_HA_REQ_MAGIC_SIZE);
    shmq_put_be32(out + SHMQ_HA_REQ_MAGIC_SIZE, (uint32_t)code);
}

int shmq_ha_request_decode(const uint8_t in[SHMQ_HA_REQ_SIZE], int32_t *code)
{
    if (!shmq_ha_is_request(in)) {
        return shmq_error_set(SHMQ_E_CORRUPT, "not a request: no request magic");
    }
    *code = (int32_t)shmq_get_be32(in + SHMQ_HA_REQ_MAGIC_SIZE);
    return 0;
}

void shmq_ha_answer_encode(int32_t status, uint32_t body_len, uint8_t out[SHMQ_HA_ANSWER_HEAD_SIZE])
{
    shmq_put_be32(out, (uint32_t)status);
    shmq_put_be32(out + 4, body_len);
}

int shmq_ha_answer_decode(const uint8_t in[SHMQ_HA_ANSWER_HEAD_SIZE], int32_t *status,
                          uint32_t *body_len)
{
    *status = (int32_t)shmq_get_be32(in);
    *body_len = shmq_get_be32(in + 4);
    if (*status > 0) {
        return shmq_error_set(SHMQ_E_CORRUPT, "answer status %d: not 0 nor an error code", *status);
    }
    if (*body_len > SHMQ_HA_ANSWER_MAX) {
        return shmq_error_set(SHMQ_E_CORRUPT, "answer of %u bytes: at most %d are taken", *body_len,
                              SHMQ_HA_ANSWER_MAX);
    }
    return 0;
}

size_t shmq_ha_file_size(size_t name_len, size_t data_len)
{
    return 2 + name_len + 4 + data_len;
}

size_t shmq_ha_file_encode(uint8_t *out, const char *name, const void *data, uint32_t data_len)
{
    size_t n = strlen(name);
    shmq_put_be16(out, (uint16_t)n);
    memcpy(out + 2, name, n);
    shmq_put_be32(out + 2 + n, data_len);
    if (data_len > 0) {
        memcpy(out + 6 + n, data, data_len);
    }
    return shmq_ha_file_size(n, data_len);
}

static bool file_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int shmq_ha_file_next(const uint8_t *body, size_t len, size_t *pos, shmq_ha_file_t *f)
{
    size_t at = *pos;
    if (at >= len) {
        return 0;
    }
    if (len - at < 2) {
        return shmq_error_set(SHMQ_E_CORRUPT, "byte %zu: a file's name length is cut", at);
    }
    size_t n = shmq_get_be16(body + at);
    if (n == 0 || n > SHMQ_HA_FILE_NAME_MAX) {
        return shmq_error_set(SHMQ_E_CORRUPT, "byte %zu: a file name of %zu bytes (1 to %d)", at, n,
                              SHMQ_HA_FILE_NAME_MAX);
    }
    if (len - at - 2 < n + 4) {
        return shmq_error_set(SHMQ_E_CORRUPT, "byte %zu: a file's name or length is cut", at);
    }
    for (size_t i = 0; i < n; i++) {
        if (!file_name_char(body[at + 2 + i])) {
            return shmq_error_set(SHMQ_E_CORRUPT,
                                  "byte %zu: a file name with byte 0x%02x (not [A-Za-z0-9._-])",
                                  at + 2 + i, body[at + 2 + i]);
        }
    }
    uint32_t dl = shmq_get_be32(body + at + 2 + n);
    size_t data_at = at + 2 + n + 4;
    if (dl > len - data_at) {
        return shmq_error_set(SHMQ_E_CORRUPT, "byte %zu: file %.*s of %u bytes, %zu left", at,
                              (int)n, (const char *)body + at + 2, dl, len - data_at);
    }
    memcpy(f->name, body + at + 2, n);
    f->name[n] = '\0';
    f->data = body + data_at;
    f->len = dl;
    *pos = data_at + dl;
    return 1;
}
