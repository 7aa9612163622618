/*
 * Fuzz target: RocketMQ remoting frames as shmq-gateway reads them from a
 * client (libshm/format/remoting.c).  The input is what arrived on a
 * connection: frames are measured and decoded one after the other, as the
 * gateway does; a measured frame must lie inside the input, a decoded one
 * must have its body inside the frame and extFields an object, and every
 * integer field read back must be within the bounds asked.  An answer
 * encoded for each decoded frame must measure and decode to the same code
 * and opaque.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/remoting.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        int64_t fl = shmq_rmt_frame_size(data + pos, size - pos, SHMQ_RMT_FRAME_MAX);
        if (fl <= 0) {
            break;
        }
        if (fl < SHMQ_RMT_PREFIX + 1 || (uint64_t)fl > SHMQ_RMT_FRAME_MAX) {
            abort();
        }
        if ((size_t)fl > size - pos) {
            break; /* the rest of the frame has not arrived */
        }
        shmq_rmt_cmd_t cmd;
        if (shmq_rmt_decode(data + pos, (size_t)fl, &cmd) == 0) {
            if (cmd.ext == NULL || !json_is_object(cmd.ext) || cmd.body < data + pos ||
                cmd.body + cmd.body_len != data + pos + fl) {
                abort();
            }
            int64_t v;
            if (shmq_rmt_ext_i64(&cmd, "queueId", 0, 65535, &v) == 0 && (v < 0 || v > 65535)) {
                abort();
            }
            char buf[64];
            (void)shmq_rmt_ext(&cmd, "topic", buf, sizeof(buf));
            uint8_t *hdr;
            size_t hlen;
            if (shmq_rmt_encode(cmd.code, cmd.opaque, SHMQ_RMT_FLAG_RESPONSE, "fuzz", cmd.ext,
                                cmd.body_len, &hdr, &hlen) == 0) {
                size_t total = hlen + cmd.body_len;
                uint8_t *again = malloc(total);
                if (again == NULL) {
                    abort();
                }
                memcpy(again, hdr, hlen);
                memcpy(again + hlen, cmd.body, cmd.body_len);
                shmq_rmt_cmd_t back;
                if (shmq_rmt_frame_size(again, total, SHMQ_RMT_FRAME_MAX) != (int64_t)total ||
                    shmq_rmt_decode(again, total, &back) != 0 || back.code != cmd.code ||
                    back.opaque != cmd.opaque || back.body_len != cmd.body_len) {
                    abort();
                }
                shmq_rmt_cmd_free(&back);
                free(again);
                free(hdr);
            }
            shmq_rmt_cmd_free(&cmd);
        }
        pos += (size_t)fl;
    }
    return 0;
}
