/*
 * config/delaycheck: delay-level progress between saves of delayOffset.json
 * (layout and rules: delay_check.h).
 */
#include "format/delay_check.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "format/store_files.h"
#include "shmq/errors.h"

#define DC_MAGIC "shmqdly1"
#define DC_HEAD  64

typedef struct dc_slot {
    uint64_t seq;
    int64_t offset;
    int64_t aq;
    int64_t aphys;
    int64_t ats;
    uint64_t check;
} dc_slot_t;

_Static_assert(sizeof(dc_slot_t) == 48, "slot layout");
_Static_assert(DC_HEAD + SHMQ_DELAYCHECK_LEVELS * 2 * sizeof(dc_slot_t) <= SHMQ_DELAYCHECK_SIZE,
               "delaycheck size");

/* A 64-bit mix of the slot's fields and its level (splitmix64 steps): a slot
 * half written, or of another level, does not match. */
static uint64_t slot_check(const dc_slot_t *s, int level)
{
    uint64_t v[5] = {s->seq, (uint64_t)s->offset, (uint64_t)s->aq, (uint64_t)s->aphys,
                     (uint64_t)s->ats};
    uint64_t h = 0x73686d71646c7931ULL ^ (uint64_t)level;
    for (size_t i = 0; i < 5; i++) {
        h ^= v[i];
        h += 0x9e3779b97f4a7c15ULL;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
    }
    return h | 1; /* never 0: a zeroed slot is empty */
}

static dc_slot_t *slot_at(const shmq_delaycheck_t *dc, int level, int k)
{
    return (dc_slot_t *)(dc->mf.base + DC_HEAD +
                         ((size_t)(level - 1) * 2 + (size_t)k) * sizeof(dc_slot_t));
}

/* The newest whole slot of level (0 or 1), -1 if neither is. */
static int newest(const shmq_delaycheck_t *dc, int level)
{
    int best = -1;
    for (int k = 0; k < 2; k++) {
        dc_slot_t s;
        memcpy(&s, slot_at(dc, level, k), sizeof(s));
        if (s.check == slot_check(&s, level) && s.offset >= 0 &&
            (best < 0 || s.seq > slot_at(dc, level, best)->seq)) {
            best = k;
        }
    }
    return best;
}

int shmq_delaycheck_open(shmq_delaycheck_t *dc, const char *root)
{
    memset(dc, 0, sizeof(*dc));
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/config", root) >= (int)sizeof(dir)) {
        return shmq_error_set(-ENAMETOOLONG, "path too long: %s/config", root);
    }
    int rc = shmq_file_mkdirs(dir);
    if (rc == 0) {
        rc = shmq_mf_open_fixed(&dc->mf, dir, "delaycheck", SHMQ_DELAYCHECK_SIZE, false);
    }
    if (rc < 0) {
        return rc;
    }
    if (memcmp(dc->mf.base, DC_MAGIC, 8) != 0) {
        /* New, or not ours: every slot empty (progress comes from delayOffset.json). */
        memset(dc->mf.base, 0, SHMQ_DELAYCHECK_SIZE);
        memcpy(dc->mf.base, DC_MAGIC, 8);
    }
    for (int l = 1; l <= SHMQ_DELAYCHECK_LEVELS; l++) {
        int k = newest(dc, l);
        dc->seq[l - 1] = k < 0 ? 0 : slot_at(dc, l, k)->seq;
    }
    dc->open = true;
    return 0;
}

void shmq_delaycheck_close(shmq_delaycheck_t *dc)
{
    if (dc->open) {
        shmq_mf_close(&dc->mf);
        dc->open = false;
    }
}

bool shmq_delaycheck_get(const shmq_delaycheck_t *dc, int level, int64_t *offset,
                         shmq_delay_anchor_t *anchor)
{
    if (!dc->open || level < 1 || level > SHMQ_DELAYCHECK_LEVELS) {
        return false;
    }
    int k = newest(dc, level);
    if (k < 0) {
        return false;
    }
    const dc_slot_t *s = slot_at(dc, level, k);
    *offset = s->offset;
    anchor->queue_offset = s->aq;
    anchor->phys = s->aphys;
    anchor->store_ts = s->ats;
    return true;
}

void shmq_delaycheck_put(shmq_delaycheck_t *dc, int level, int64_t offset,
                         const shmq_delay_anchor_t *anchor)
{
    if (!dc->open || level < 1 || level > SHMQ_DELAYCHECK_LEVELS) {
        return;
    }
    uint64_t seq = dc->seq[level - 1] + 1;
    dc_slot_t v = {.seq = seq,
                   .offset = offset,
                   .aq = anchor->queue_offset,
                   .aphys = anchor->phys,
                   .ats = anchor->store_ts};
    v.check = slot_check(&v, level);
    dc_slot_t *s = slot_at(dc, level, (int)(seq & 1));
    /* The check last: the compiler may not move the fields' stores after it. */
    s->check = 0;
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(s, &v, offsetof(dc_slot_t, check));
    atomic_signal_fence(memory_order_seq_cst);
    s->check = v.check;
    dc->seq[level - 1] = seq;
}

int shmq_delaycheck_remove(const char *root)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/config/delaycheck", root) >= (int)sizeof(path)) {
        return shmq_error_set(-ENAMETOOLONG, "path too long: %s/config/delaycheck", root);
    }
    if (unlink(path) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        int e = -errno;
        return shmq_error_set(e, "%s: unlink: %s", path, strerror(-e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/config", root); /* shorter than path */
    return shmq_file_fsync_dir(dir);
}
