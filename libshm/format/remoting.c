/*
 * RocketMQ's remoting frames (remoting.h): measuring, decoding and encoding
 * the JSON-serialized commands a RocketMQ client exchanges with its name
 * server and broker.  Every byte is untrusted; nothing here keeps state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "format/remoting.h"
#include "shmq/errors.h"

int64_t shmq_rmt_frame_size(const uint8_t *buf, size_t len, size_t max)
{
    if (len < SHMQ_RMT_PREFIX) {
        return 0;
    }
    uint32_t length = shmq_get_be32(buf);
    uint32_t word = shmq_get_be32(buf + 4);
    uint32_t type = word >> 24, hlen = word & 0xffffffu;
    if ((uint64_t)length + 4 > max) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "frame of %" PRIu32 " bytes: the limit is %zu",
                              length, max);
    }
    if (length < 4) {
        return shmq_error_set(SHMQ_E_ARG, "frame length %" PRIu32 ": less than its header word",
                              length);
    }
    if (type != 0) {
        return shmq_error_set(SHMQ_E_ARG,
                              "serialize type %" PRIu32 ": only JSON (0) headers are read", type);
    }
    if (hlen == 0 || hlen > length - 4 || hlen > SHMQ_RMT_HEADER_MAX) {
        return shmq_error_set(
            SHMQ_E_ARG, "header of %" PRIu32 " bytes in a frame of %" PRIu32 " (1..%u allowed)",
            hlen, length, SHMQ_RMT_HEADER_MAX);
    }
    return (int64_t)length + 4;
}

/* A JSON integer within int32 (RocketMQ's code, opaque, flag, version). */
static int get_i32(const json_t *hdr, const char *name, bool required, int32_t *out)
{
    const json_t *v = json_object_get(hdr, name);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return shmq_error_set(SHMQ_E_ARG, "header without '%s'", name);
        }
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "header field '%s' is not a 32-bit integer", name);
    }
    *out = (int32_t)json_integer_value(v);
    return 0;
}

int shmq_rmt_decode(const uint8_t *frame, size_t len, shmq_rmt_cmd_t *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    int64_t size = shmq_rmt_frame_size(frame, len, SHMQ_RMT_FRAME_MAX);
    if (size < 0) {
        return (int)size;
    }
    if (size == 0 || (size_t)size != len) {
        return shmq_error_set(SHMQ_E_ARG, "frame of %zu bytes does not match its length word", len);
    }
    size_t hlen = shmq_get_be32(frame + 4) & 0xffffffu;
    json_error_t jerr;
    json_t *hdr =
        json_loadb((const char *)frame + SHMQ_RMT_PREFIX, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (hdr == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "header is no JSON: %s at %d", jerr.text, jerr.position);
    }
    int rc = 0;
    if (!json_is_object(hdr)) {
        rc = shmq_error_set(SHMQ_E_ARG, "header is no JSON object");
        goto out;
    }
    if ((rc = get_i32(hdr, "code", true, &cmd->code)) < 0 ||
        (rc = get_i32(hdr, "opaque", true, &cmd->opaque)) < 0 ||
        (rc = get_i32(hdr, "flag", false, &cmd->flag)) < 0 ||
        (rc = get_i32(hdr, "version", false, &cmd->version)) < 0) {
        goto out;
    }
    json_t *ext = json_object_get(hdr, "extFields");
    if (ext == NULL || json_is_null(ext)) {
        ext = json_object();
        if (ext == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    } else if (!json_is_object(ext)) {
        rc = shmq_error_set(SHMQ_E_ARG, "extFields is no JSON object");
        goto out;
    } else {
        if (json_object_size(ext) > SHMQ_RMT_EXT_MAX) {
            rc = shmq_error_set(SHMQ_E_ARG, "extFields has %zu entries (at most %d)",
                                json_object_size(ext), SHMQ_RMT_EXT_MAX);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(ext, k, v)
        {
            if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
                rc = shmq_error_set(SHMQ_E_ARG, "extFields '%.64s' is no string", k);
                goto out;
            }
        }
        json_incref(ext);
    }
    cmd->ext = ext;
    cmd->body = frame + SHMQ_RMT_PREFIX + hlen;
    cmd->body_len = len - SHMQ_RMT_PREFIX - hlen;
out:
    json_decref(hdr);
    if (rc < 0) {
        memset(cmd, 0, sizeof(*cmd));
    }
    return rc;
}

void shmq_rmt_cmd_free(shmq_rmt_cmd_t *cmd)
{
    json_decref(cmd->ext);
    cmd->ext = NULL;
}

const char *shmq_rmt_ext(const shmq_rmt_cmd_t *cmd, const char *name, char *buf, size_t cap)
{
    const json_t *v = cmd->ext != NULL ? json_object_get(cmd->ext, name) : NULL;
    if (v == NULL) {
        return NULL;
    }
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (cap == 0) {
        return NULL;
    }
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, cap, "%.17g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    } else {
        return NULL;
    }
    return buf;
}

int shmq_rmt_ext_i64(const shmq_rmt_cmd_t *cmd, const char *name, int64_t lo, int64_t hi,
                     int64_t *out)
{
    char buf[64];
    const char *s = shmq_rmt_ext(cmd, name, buf, sizeof(buf));
    if (s == NULL) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "extFields has no '%s'", name);
    }
    const char *p = s;
    if (*p == '-') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return shmq_error_set(SHMQ_E_ARG, "'%s' is no integer", name);
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        return shmq_error_set(SHMQ_E_ARG, "'%s' is no integer in %" PRId64 "..%" PRId64, name, lo,
                              hi);
    }
    *out = v;
    return 0;
}

int shmq_rmt_encode(int32_t code, int32_t opaque, int32_t flag, const char *remark,
                    const json_t *ext, size_t body_len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    json_t *hdr = json_pack("{s:i, s:s, s:i, s:i, s:i, s:s}", "code", (int)code, "language", "JAVA",
                            "version", 0, "opaque", (int)opaque, "flag", (int)flag,
                            "serializeTypeCurrentRPC", "JSON");
    if (hdr == NULL) {
        return -ENOMEM;
    }
    if (remark != NULL && json_object_set_new(hdr, "remark", json_string(remark)) < 0) {
        /* a remark that is no UTF-8 is left out rather than failing the answer */
        json_object_del(hdr, "remark");
    }
    if (ext != NULL && json_object_size(ext) > 0) {
        json_object_set(hdr, "extFields", (json_t *)ext);
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t hlen = strlen(text);
    if (hlen > SHMQ_RMT_HEADER_MAX || 4 + hlen + body_len + 4 > SHMQ_RMT_FRAME_MAX) {
        free(text);
        return shmq_error_set(SHMQ_E_TOO_BIG, "answer of %zu header and %zu body bytes", hlen,
                              body_len);
    }
    uint8_t *b = malloc(SHMQ_RMT_PREFIX + hlen);
    if (b == NULL) {
        free(text);
        return -ENOMEM;
    }
    shmq_put_be32(b, (uint32_t)(4 + hlen + body_len));
    shmq_put_be32(b + 4, (uint32_t)hlen); /* serialize type 0: JSON */
    memcpy(b + SHMQ_RMT_PREFIX, text, hlen);
    free(text);
    *out = b;
    *out_len = SHMQ_RMT_PREFIX + hlen;
    return 0;
}
