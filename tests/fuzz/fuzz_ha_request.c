/*
 * Fuzz target: the request frames of the HA port (libshm/format/ha_frame.c)
 * as a client and the master read them.  The input is what arrived: a
 * request (magic and code; the same bytes read as a slave's hello), an answer's head, then its body
 * of named files, walked as the slave walks the metadata answer; every file found must lie inside
 * the body, in order, and its name must be printable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/ha_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < SHMQ_HA_REQ_SIZE + SHMQ_HA_ANSWER_HEAD_SIZE) {
        return 0;
    }
    int32_t code;
    int rc = shmq_ha_request_decode(data, &code);
    if ((rc == 0) != shmq_ha_is_request(data)) {
        abort();
    }
    /* The same first bytes as a slave's hello: an id taken is in range, and only after the
     * hello magic. */
    if (size >= SHMQ_HA_HELLO_SIZE) {
        int64_t id = 0;
        rc = shmq_ha_hello_decode(data, &id);
        if (rc == 0 && (!shmq_ha_is_hello(data) || id < 1 || id > SHMQ_HA_BROKER_ID_MAX)) {
            abort();
        }
    }
    const uint8_t *head = data + SHMQ_HA_REQ_SIZE;
    int32_t status;
    uint32_t len;
    if (shmq_ha_answer_decode(head, &status, &len) == 0 &&
        (status > 0 || len > SHMQ_HA_ANSWER_MAX)) {
        abort();
    }
    const uint8_t *body = head + SHMQ_HA_ANSWER_HEAD_SIZE;
    size_t blen = size - SHMQ_HA_REQ_SIZE - SHMQ_HA_ANSWER_HEAD_SIZE;
    size_t pos = 0, last = 0;
    shmq_ha_file_t f;
    while ((rc = shmq_ha_file_next(body, blen, &pos, &f)) == 1) {
        size_t n = strlen(f.name);
        if (n == 0 || n > SHMQ_HA_FILE_NAME_MAX || pos <= last || pos > blen || f.data < body ||
            f.data + f.len != body + pos) {
            abort();
        }
        last = pos;
    }
    if (rc == 0 && pos < blen) {
        abort();
    }
    return 0;
}
