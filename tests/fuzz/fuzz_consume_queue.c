/*
 * Fuzz target: a ConsumeQueue read from disk (libshm/format/consume_queue.c).  The
 * input, after an 8-byte prologue, is cut into files of 10 units (200
 * bytes) of the queue T/0 (at most 4 files, the last zero-padded); the
 * queue is opened read-only (positions only) and read-write (recovery
 * scan, which cuts and zeroes), every unit in [min, max) is read, and the
 * writer's paths that trust the recovered state run: correct_min and
 * truncate_dirty at the prologue's offsets, then an append after the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/consume_queue.h"
#include "fuzz_util.h"

#define FILE_SIZE 200
#define MAX_FILES 4

static void read_all(const shmq_cq_t *cq)
{
    int64_t min = shmq_cq_min_offset(cq), max = shmq_cq_max_offset(cq);
    if (min < 0 || max < min) {
        abort(); /* recovery left positions that make no sense */
    }
    for (int64_t o = min; o < max && o < min + 64; o++) {
        shmq_cq_unit_t u;
        shmq_cq_read(cq, o, &u);
    }
    shmq_cq_unit_t u;
    shmq_cq_read(cq, max, &u);
    shmq_cq_read(cq, min - 1, &u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) {
        return 0;
    }
    char root[512], dir[600], path[700];
    fuzz_fresh_dir("cq", root, sizeof(root));
    snprintf(dir, sizeof(dir), "%s/consumequeue/T/0", root);
    fuzz_mkdirs(dir);
    /* Prologue: file start index (0..3, to start the queue at a later file), phys values. */
    int64_t first = data[0] & 3;
    int64_t min_phys = (int64_t)(fuzz_be32(data, size, 1) & 0xFFFFFF);
    int64_t cut_phys = (int64_t)(fuzz_be32(data, size, 4) & 0xFFFFFF);
    bool skip_gap = data[7] & 1;
    const uint8_t *body = data + 8;
    size_t len = size - 8;
    for (int64_t i = 0; i < MAX_FILES && (i == 0 || (size_t)i * FILE_SIZE < len); i++) {
        size_t off = (size_t)i * FILE_SIZE;
        if (skip_gap && i == 1) {
            continue; /* a missing file in the middle */
        }
        snprintf(path, sizeof(path), "%s/%020lld", dir, (long long)((first + i) * FILE_SIZE));
        fuzz_write_file(path, off < len ? body + off : body, off < len ? len - off : 0, FILE_SIZE);
    }

    shmq_cq_t cq;
    if (shmq_cq_open(&cq, root, "T", 0, FILE_SIZE, SHMQ_MF_READONLY) == 0) {
        read_all(&cq);
        shmq_cq_correct_min(&cq, min_phys);
        read_all(&cq);
        shmq_cq_close(&cq);
    }
    if (shmq_cq_open(&cq, root, "T", 0, FILE_SIZE, 0) == 0) {
        read_all(&cq);
        shmq_cq_correct_min(&cq, min_phys);
        read_all(&cq);
        if (shmq_cq_truncate_dirty(&cq, cut_phys) == 0) {
            read_all(&cq);
        }
        int64_t end = shmq_cq_max_offset(&cq);
        int64_t phys = cq.max_phys_offset;
        if (shmq_cq_append(&cq, end, phys, 100, 7) == 0) {
            read_all(&cq);
        }
        shmq_cq_close(&cq);
    }
    return 0;
}
