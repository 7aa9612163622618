/*
 * Fuzz target: the CommitLog record decoder and the properties readers
 * (libshm/format/message.c) on untrusted bytes, as recovery, consumers and
 * `shmqctl verify` meet them in a segment.  Byte 0 chooses the decode
 * flags, bytes 1..8 the expected physical offset; the rest is the record.
 * Decoded properties are iterated and searched; a decoded record goes
 * through the consumer's CRC check and is encoded again, which must give a
 * record that decodes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "format/message.h"

static void walk_props(const char *props, size_t len)
{
    size_t pos = 0, nl, vl;
    const char *name, *value;
    size_t guard = 0;
    while (shmq_props_next(props, len, &pos, &name, &nl, &value, &vl) && guard++ <= len) {
        if (nl > len || vl > len) {
            abort(); /* a view past the area */
        }
    }
    shmq_props_get(props, len, "UNIQ_KEY", &vl);
    shmq_props_get(props, len, "KEYS", &vl);
    const char *tags = shmq_props_get(props, len, "TAGS", &vl);
    if (tags != NULL) {
        shmq_tags_code(tags, vl);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) {
        return 0;
    }
    unsigned flags = data[0] & 0xF;
    int64_t expect = (int64_t)fuzz_be64(data, size, 1);
    size_t len = size - 9;
    /* A private copy of exactly len bytes, so that ASan sees any read past it. */
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, data + 9, len);
    shmq_record_t r;
    int rc = shmq_record_decode(buf, len, expect, flags, &r);
    if (rc > 0) {
        walk_props(r.props, r.props_len);
        shmq_record_crc_tail_distance(&r);
        shmq_record_check_crcs(&r);
        /* Encode what was decoded again: it must decode. */
        size_t plen = r.props_len;
        if (r.has_record_crc && plen >= 20) {
            plen -= 20;
        }
        shmq_msg_in_t m = {.topic = r.topic,
                           .topic_len = r.topic_len,
                           .queue_id = r.queue_id,
                           .flag = r.flag,
                           .sysflag = r.sysflag,
                           .born_ts = r.born_ts,
                           .born_host = r.born_host,
                           .store_host = r.store_host,
                           .reconsume_times = r.reconsume_times,
                           .prepared_tx_offset = r.prepared_tx_offset,
                           .body = r.body ? (const void *)r.body : (const void *)"",
                           .body_len = r.body_len,
                           .props = r.props ? r.props : "",
                           .props_len = plen};
        int64_t need = shmq_record_size(&m);
        if (need > 0 && need <= 1 << 20) {
            uint8_t *out = malloc((size_t)need);
            int64_t n = shmq_record_encode(&m, r.queue_offset, r.phys_offset, r.store_ts, out,
                                           (size_t)need);
            if (n == need) {
                shmq_record_t r2;
                if (shmq_record_decode(out, (size_t)n, r.phys_offset, SHMQ_DECODE_CHECK_ALL, &r2) !=
                    n) {
                    abort(); /* the encoder's output does not decode */
                }
            }
            free(out);
        }
    } else {
        walk_props((const char *)buf, len);
    }
    free(buf);
    return 0;
}
