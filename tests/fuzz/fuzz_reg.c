/*
 * Fuzz target: the registration frames of <root>/shmq.sock (libshm/shm/reg.c).
 * shmq_reg_decode() is what the master runs on every frame a client sends
 * (and a client on every reply); a frame it accepts must encode back to the
 * same bytes, and an accepted commit's, join's or release's names (and a
 * join's subscription) must obey their rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "shm/reg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shmq_reg_msg_t m;
    if (shmq_reg_decode(data, size, &m) != 0) {
        return 0;
    }
    if (m.type == SHMQ_REG_JOIN_GROUP) {
        /* A subscription reaches the member table as it is: bounded, printable. */
        size_t elen = strlen(m.expr);
        for (size_t i = 0; i < elen; i++) {
            if ((unsigned char)m.expr[i] < 0x20 || (unsigned char)m.expr[i] >= 0x7f) {
                abort();
            }
        }
        if (elen > SHMQ_REG_EXPR_MAX) {
            abort();
        }
    }
    if (m.type == SHMQ_REG_COMMIT_OFFSET || m.type == SHMQ_REG_JOIN_GROUP ||
        m.type == SHMQ_REG_RELEASE_QUEUE) {
        size_t glen = strlen(m.group);
        size_t tlen = strlen(m.topic);
        if (glen == 0 || glen > SHMQ_GROUP_MAX || tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY) {
            abort();
        }
        /* The master's name check runs on what the decoder accepted. */
        (void)shmq_group_validate(m.group, glen);
    }
    if (m.type == SHMQ_REG_REPLY_ERROR && strlen(m.text) > SHMQ_REG_TEXT_MAX) {
        abort();
    }
    uint8_t again[SHMQ_REG_FRAME_MAX];
    int n = shmq_reg_encode(&m, again, sizeof(again));
    /* Error texts are made printable on decode: only the other types round-trip exactly. */
    if (n < 0 ||
        (m.type != SHMQ_REG_REPLY_ERROR && ((size_t)n != size || memcmp(again, data, size) != 0))) {
        abort();
    }
    return 0;
}
