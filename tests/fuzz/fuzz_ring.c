/*
 * Fuzz target: the writer's reading of a producer's ring (libshm/shm/ring.c):
 * shmq_ring_take_unit() copies an entry (or a batch of entries) out of the
 * ring, then shmq_ring_decode() validates the copy.  The input fills a ring
 * of 4096 bytes; its first 4 bytes choose head, tail and the limits.
 * What the writer does next with a refused entry (answering the slot,
 * discarding a region: daemons/writer_unit.c, writer.c) is not covered here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "shm/ring.h"

#define RING_SIZE 4096u
#define MAX_MSGS  8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    static uint8_t ring[RING_SIZE];
    static uint8_t buf[RING_SIZE];
    uint64_t head = (uint64_t)(data[0] & 0x1F) * 8; /* entries start 8-aligned */
    uint64_t used = (uint64_t)data[1] << 4 | (data[2] >> 4);
    shmq_ring_limits_t lim = {.max_body = (data[2] & 0x8) ? 64 : 4 << 20,
                              .max_topic_len = (data[2] & 0x4) ? 127 : 255};
    bool wrapped = data[3] & 1;
    memset(ring, 0, sizeof(ring));
    size_t len = size - 4 < RING_SIZE ? size - 4 : RING_SIZE;
    /* The entry bytes start at head (wrapping round the ring's end). */
    for (size_t i = 0; i < len; i++) {
        ring[(head + i) % RING_SIZE] = data[4 + i];
    }
    if (wrapped) {
        head += RING_SIZE; /* positions grow: a later lap */
    }
    uint64_t tail = head + (used ? used : len);
    if (tail - head > RING_SIZE) {
        tail = head + RING_SIZE;
    }
    /* Take units until the published region is used up or a fatal error. */
    uint64_t pos = head;
    for (int guard = 0; pos < tail && guard < 64; guard++) {
        shmq_ring_msg_t msgs[MAX_MSGS];
        size_t n = 0;
        uint64_t adv = 0;
        int rc = shmq_ring_take_unit(ring, RING_SIZE, pos, tail, &lim, buf, sizeof(buf), msgs,
                                     MAX_MSGS, &n, &adv);
        if (rc == SHMQ_RING_KIND_MSG) {
            if (n == 0 || n > MAX_MSGS) {
                abort();
            }
            for (size_t k = 0; k < n; k++) {
                /* The views lie in the private copy. */
                const uint8_t *b = (const uint8_t *)msgs[k].topic;
                if (b < buf || b + msgs[k].topic_len > buf + sizeof(buf)) {
                    abort();
                }
                volatile uint8_t sink = 0;
                for (uint32_t j = 0; j < msgs[k].body_len; j++) {
                    sink ^= msgs[k].body[j];
                }
                for (uint32_t j = 0; j < msgs[k].props_len; j++) {
                    sink ^= (uint8_t)msgs[k].props[j];
                }
                (void)sink;
            }
        }
        if (rc == 0 || rc == -ENOBUFS || adv == 0) {
            break;
        }
        if (adv > tail - pos) {
            abort(); /* advanced past what the producer published */
        }
        pos += adv;
    }
    /* The decoder alone on the input as one private entry. */
    shmq_ring_msg_t m;
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, data + 4, len);
    shmq_ring_decode(copy, len, &lim, &m);
    free(copy);
    return 0;
}
