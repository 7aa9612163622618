/*
 * Fuzz target: the timer store's files as the scheduler opens them
 * (libshm/format/timer.c): config/timercheck, the timerwheel and timerlog
 * segments, through shmq_timer_open()'s recovery (log scan, re-applying
 * units to the wheel, wheel repair), then the reads and writes the
 * scheduler does next (slot reads, an enqueue, progress, a checkpoint).
 * Input layout:
 *   [0, 80)     the first 80 bytes of timercheck (the rest is zero)
 *   80          low 4 bits: number n of wheel slots given; bit 4: precision 100 ms
 *   n x 36      slot index (4 bytes, taken modulo the wheel) and its 32 bytes
 *   the rest    timerlog segments of 1024 bytes from offset 0 (at most 2)
 * The wheel file is sparse: slots not given are zero.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "format/timer.h"

#define SEG_SIZE 1024
#define NOW_MS   1767225600000LL /* 2026-01-01 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 81) {
        return 0;
    }
    char root[512], path[700];
    fuzz_fresh_dir("timer", root, sizeof(root));
    snprintf(path, sizeof(path), "%s/config", root);
    fuzz_mkdirs(path);
    snprintf(path, sizeof(path), "%s/config/timercheck", root);
    fuzz_write_file(path, data, 80, SHMQ_TIMERCHECK_SIZE);

    size_t n = data[80] & 0xF;
    int64_t p = (data[80] & 0x10) ? 100 : 1000;
    size_t off = 81;
    snprintf(path, sizeof(path), "%s/timerwheel", root);
    fuzz_write_file(path, "", 0, (long long)SHMQ_TIMER_WHEEL_SIZE);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    for (size_t i = 0; i < n && off + 36 <= size; i++, off += 36) {
        uint32_t idx = fuzz_be32(data, size, off) % SHMQ_TIMER_WHEEL_SLOTS;
        if (pwrite(fd, data + off + 4, 32, (off_t)idx * SHMQ_TIMER_SLOT_SIZE) != 32) {
            abort();
        }
    }
    close(fd);
    if (off < size) {
        snprintf(path, sizeof(path), "%s/timerlog", root);
        fuzz_mkdirs(path);
        for (size_t s = 0; s < 2 && off < size; s++, off += SEG_SIZE) {
            snprintf(path, sizeof(path), "%s/timerlog/%020zu", root, s * SEG_SIZE);
            fuzz_write_file(path, data + off, size - off, SEG_SIZE);
        }
    }

    shmq_timer_store_t ts;
    if (shmq_timer_open(&ts, root, p, SEG_SIZE, NOW_MS) != 0) {
        return 0;
    }
    shmq_timer_unit_t *units = NULL;
    int64_t *pos = NULL;
    size_t cap = 0;
    int64_t broken = 0;
    for (int64_t k = 0; k < 4; k++) {
        int64_t slot = ts.read_ms + k * p;
        shmq_timer_slot_read(&ts, slot, &units, &pos, &cap, &broken);
        shmq_timer_slot_last(&ts, slot);
    }
    shmq_timer_enq_t e = {
        .phys_offset = 4096, .msg_size = 200, .topic_hash = 7, .deliver_ms = NOW_MS + 5000};
    int64_t slot_ms;
    shmq_timer_enqueue(&ts, &e, NOW_MS, &slot_ms);
    int64_t got = shmq_timer_slot_read(&ts, ts.read_ms, &units, &pos, &cap, &broken);
    shmq_timer_progress(&ts, ts.read_ms + p, 0, got > 0 ? got : 0);
    shmq_timer_checkpoint(&ts);
    free(units);
    free(pos);
    shmq_timer_close(&ts);
    return 0;
}
