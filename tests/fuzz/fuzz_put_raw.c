/*
 * Fuzz target: a slave's putting of its master's CommitLog bytes
 * (shmq_commitlog_put_raw, libshm/format/commitlog.c): what a master sends
 * is untrusted.  Input: byte 0 chooses the chunk sizes, the rest is the
 * byte stream from offset 0 into a log of 4096-byte segments.  After every
 * chunk: wrote never moves back, never passes the bytes put, and every
 * record below it reads back with every check (sizes, magic, body and
 * record CRCs, its own offset; blanks closing segments) up to exactly
 * wrote; a refused chunk leaves no byte put after wrote.  The first refusal
 * ends the stream, as the ha-receiver closes the connection.
 */
#include <stdint.h>
#include <stdlib.h>

#include "format/commitlog.h"
#include "fuzz_util.h"

#define SEG 4096

/* Every record below wrote reads back checked, and they end exactly at wrote. */
static void check_log(const shmq_commitlog_t *cl)
{
    int64_t pos = shmq_commitlog_min_offset(cl);
    for (;;) {
        shmq_record_t r;
        int rc = shmq_commitlog_next(cl, &pos, cl->wrote_pos, SHMQ_DECODE_CHECK_ALL, &r);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc <= 0) {
            abort(); /* a record published that does not check out */
        }
    }
    if (pos != cl->wrote_pos && !(pos > cl->wrote_pos && cl->wrote_pos % SEG == 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    char root[512];
    fuzz_fresh_dir("putraw", root, sizeof(root));
    shmq_commitlog_t cl;
    if (shmq_commitlog_open(&cl, root, SEG, 0) != 0) {
        abort();
    }
    unsigned pattern = data[0];
    const uint8_t *s = data + 1;
    size_t n = size - 1, off = 0, k = 0;
    int64_t last = 0;
    while (off < n) {
        size_t chunk = 1 + ((pattern * 131u + k * 977u) % (pattern & 1 ? 97u : 4096u));
        if (chunk > n - off) {
            chunk = n - off;
        }
        int64_t w = shmq_commitlog_put_raw(&cl, (int64_t)off, s + off, chunk);
        if (w >= 0 && (w < last || w > (int64_t)(off + chunk) || w != cl.wrote_pos)) {
            abort();
        }
        check_log(&cl);
        if (w < 0) {
            if (cl.raw_end != cl.wrote_pos || cl.wrote_pos < last) {
                abort();
            }
            break;
        }
        last = w;
        off += chunk;
        k++;
    }
    shmq_commitlog_close(&cl);
    return 0;
}
