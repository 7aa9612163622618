/*
 * Fuzz target: the controller's frames, commands and snapshots
 * (libshm/format/controller_frame.c, controller_state.c).  The input's
 * first byte chooses: even, the rest is what a client sent (a frame head
 * and a body): the head must announce a size within bounds, a body that
 * decodes must encode to text that decodes to the same command, and
 * applying it as a log entry to a state with one broker set must keep the
 * state's rules (the master inside its sync-state set, epochs never
 * falling, ids unique) and encode to a snapshot that reads back; odd, the
 * rest is a snapshot: one that is read must encode to text that reads back
 * to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/controller_frame.h"
#include "format/controller_state.h"
#include "shmq/errors.h"

static shmq_ctrl_state_t s, u;

static void check_rules(const shmq_ctrl_state_t *st)
{
    for (int i = 0; i < st->nsets; i++) {
        const shmq_ctrl_set_t *set = &st->sets[i];
        if (set->master_id != SHMQ_CTRL_NO_MASTER && !shmq_ctrl_in_sync(set, set->master_id)) {
            abort();
        }
        for (int j = 0; j < set->nreplicas; j++) {
            for (int k = j + 1; k < set->nreplicas; k++) {
                if (set->replicas[j].broker_id == set->replicas[k].broker_id) {
                    abort();
                }
            }
        }
    }
}

static void snapshot_round_trip(const shmq_ctrl_state_t *st)
{
    char *t1, *t2;
    size_t l1, l2;
    if (shmq_ctrl_state_encode(st, &t1, &l1) != 0) {
        return;
    }
    if (shmq_ctrl_state_decode(&u, t1, l1) != 0 || shmq_ctrl_state_encode(&u, &t2, &l2) != 0) {
        abort();
    }
    if (l1 != l2 || memcmp(t1, t2, l1) != 0) {
        abort();
    }
    free(t1);
    free(t2);
}

static void command_case(const uint8_t *data, size_t size)
{
    shmq_ctrl_cmd_t c, d;
    shmq_ctrl_result_t res;
    char err[200], *text;
    size_t len;
    long fs = shmq_ctrl_frame_size(data, size);
    if (fs < 0 ? fs != SHMQ_E_TOO_BIG
               : (fs != 0 && (fs < 5 || fs > SHMQ_CTRL_FRAME_HEAD + SHMQ_CTRL_FRAME_MAX))) {
        abort();
    }
    if (size < SHMQ_CTRL_FRAME_HEAD) {
        return;
    }
    const char *body = (const char *)data + SHMQ_CTRL_FRAME_HEAD;
    size_t blen = size - SHMQ_CTRL_FRAME_HEAD;
    /* a client's request: the internal fields are not taken */
    if (shmq_ctrl_cmd_decode(body, blen, false, &c, err, sizeof(err)) == 0 &&
        c.kind == SHMQ_CTRL_CMD_MEMBER) {
        abort();
    }
    /* a log entry */
    if (shmq_ctrl_cmd_decode(body, blen, true, &c, err, sizeof(err)) != 0) {
        if (c.kind != SHMQ_CTRL_CMD_NONE || err[0] == '\0') {
            abort();
        }
        return;
    }
    if (shmq_ctrl_cmd_encode(&c, &text, &len) != 0) {
        return;
    }
    if (shmq_ctrl_cmd_decode(text, len, true, &d, err, sizeof(err)) != 0 ||
        memcmp(&c, &d, sizeof(c)) != 0) {
        abort();
    }
    free(text);
    if (c.kind > SHMQ_CTRL_CMD_MEMBER) {
        return;
    }
    /* one set of three replicas, master 1 of {1,2}, then the command */
    static const char alter[] = "{\"cmd\":\"alter_sync_state_set\",\"brokerName\":\"b\","
                                "\"masterId\":1,\"masterEpoch\":1,\"syncStateSet\":[1,2]}";
    static const char *const setup[] = {
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:1\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:2\"}",
        "{\"cmd\":\"register\",\"brokerName\":\"b\",\"brokerAddress\":\"127.0.0.1:3\"}",
        "{\"cmd\":\"elect_master\",\"brokerName\":\"b\",\"brokerId\":1,\"alive\":[{\"brokerId\":1}]"
        "}",
        alter,
    };
    shmq_ctrl_state_init(&s);
    for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
        if (shmq_ctrl_cmd_decode(setup[i], strlen(setup[i]), true, &d, err, sizeof(err)) != 0) {
            abort();
        }
        shmq_ctrl_apply(&s, &d, &res);
        if (res.rc != 0) {
            abort();
        }
    }
    int32_t me = s.sets[0].master_epoch, se = s.sets[0].sync_epoch;
    shmq_ctrl_apply(&s, &c, &res);
    const shmq_ctrl_set_t *b = shmq_ctrl_set_find(&s, "b");
    if (!b || b->master_epoch < me || b->sync_epoch < se || (res.rc != 0 && res.error[0] == '\0')) {
        abort();
    }
    check_rules(&s);
    snapshot_round_trip(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        command_case(data + 1, size - 1);
        return 0;
    }
    if (shmq_ctrl_state_decode(&s, (const char *)data + 1, size - 1) == 0) {
        check_rules(&s);
        snapshot_round_trip(&s);
    }
    return 0;
}
