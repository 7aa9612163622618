/*
 * Fuzz target: an IndexFile from disk (libshm/format/index_file.c), as the indexer
 * meets it at start (open, repair, pop of the newest entries) and as a
 * query reads it (lookup, bounded or not by indexCount).  The input is the
 * file of 8 slots and 16 entries (40 + 32 + 320 bytes), zero-padded or cut;
 * the byte after that chooses whether the file's size is made wrong.
 * What is not covered here: the index service's choice of files and its
 * resume over the CommitLog (index_service.c, index_recover.c) which need
 * a whole store.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "format/index_file.h"

#define SLOTS   8
#define ENTRIES 16

static int visit(void *arg, int64_t phys, int32_t entry)
{
    (void)phys;
    int *count = arg;
    if (entry < 1 || entry >= ENTRIES) {
        abort(); /* the walk left the file */
    }
    return ++*count > 64; /* a walk visits each entry at most once */
}

static void lookups(const shmq_index_file_t *f, int32_t limit, int64_t begin, int64_t end)
{
    for (int32_t h = 0; h < SLOTS * 2; h++) {
        int count = 0;
        if (shmq_index_file_lookup(f, h, begin, end, limit, visit, &count) != 0) {
            abort();
        }
    }
    int count = 0;
    shmq_index_file_lookup(f, INT32_MAX, INT64_MIN, INT64_MAX, limit, visit, &count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t fsize = shmq_index_file_size(SLOTS, ENTRIES);
    char dir[512], path[600];
    fuzz_fresh_dir("index", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/20260101000000000", dir);
    bool bad_size = size > (size_t)fsize && (data[fsize] & 0x80);
    fuzz_write_file(path, data, size, bad_size ? fsize - 1 : fsize);
    int64_t begin = (int64_t)fuzz_be64(data, size, 0);
    int64_t end = (int64_t)fuzz_be64(data, size, 8);

    shmq_index_file_t f;
    if (shmq_index_file_open(&f, path, SLOTS, ENTRIES, true) == 0) {
        shmq_index_header_t h;
        shmq_index_header_read(&f, &h);
        lookups(&f, h.index_count, begin, end);
        lookups(&f, 0, INT64_MIN, INT64_MAX);
        for (int32_t k = 0; k <= ENTRIES; k++) {
            shmq_index_entry_t e;
            shmq_index_entry_read(&f, k, &e);
        }
        shmq_index_file_close(&f);
    }
    if (shmq_index_file_open(&f, path, SLOTS, ENTRIES, false) == 0) {
        shmq_index_repair_t rep;
        if (shmq_index_file_repair(&f, &rep) == 0) {
            shmq_index_header_t h;
            shmq_index_header_read(&f, &h);
            lookups(&f, h.index_count, begin, end);
            /* The indexer's undo of entries past the CommitLog's end, then more puts. */
            shmq_index_entry_t e;
            for (int i = 0; i < 3 && shmq_index_file_pop(&f, &e) == 0; i++) {
            }
            shmq_index_file_set_end(&f, f.hdr.end_phys, f.hdr.end_ts);
            for (int32_t i = 0; i < 4 && !shmq_index_file_full(&f); i++) {
                shmq_index_file_put(&f, i * 5, 1000 + i, end);
            }
            lookups(&f, 0, begin, end);
        }
        shmq_index_file_close(&f);
    }
    return 0;
}
