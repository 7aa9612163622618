/*
 * The shared part of the targets for the JSON files under config/ (libshm/format/json_meta.c,
 * json_meta_tables.c): the input is the file and, after its first NUL
 * byte (JSON never holds one), its .bak, which a loader falls back to
 * for a damaged file or damaged entries.  Consume queues T/0 and T/1 exist
 * (so that topics.json's restore of missing topics and the offset checks
 * against queue maxima run); the loaded table is saved and loaded again,
 * which must succeed.
 */
#ifndef SHMQ_FUZZ_JSON_H
#define SHMQ_FUZZ_JSON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

static inline void fuzz_meta_quiet(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

/* Queue maxima the offset checks see: T has queues 0 and 1 with 100 units. */
static inline int fuzz_queue_max(void *arg, const char *topic, int32_t queue_id, int64_t *max)
{
    (void)arg;
    if (strcmp(topic, "T") != 0) {
        return -ENOENT; /* no queue of the topic at all: cannot be told */
    }
    if (queue_id < 0 || queue_id > 1) {
        *max = 0;
        return SHMQ_E_NOT_FOUND;
    }
    *max = 100;
    return 0;
}

/* Make a store root holding config/<name> (and .bak) from the input; its path in root. */
static inline void fuzz_json_root(const uint8_t *data, size_t size, const char *name, char *root,
                                  size_t cap)
{
    static bool quiet;
    if (!quiet) {
        shmq_meta_set_warn(fuzz_meta_quiet, NULL);
        quiet = true;
    }
    char path[700];
    fuzz_fresh_dir("json", root, cap);
    snprintf(path, sizeof(path), "%s/consumequeue/T/0", root);
    fuzz_mkdirs(path);
    snprintf(path, sizeof(path), "%s/consumequeue/T/1", root);
    fuzz_mkdirs(path);
    snprintf(path, sizeof(path), "%s/config", root);
    fuzz_mkdirs(path);
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    size_t main_len = nul ? (size_t)(nul - data) : size;
    snprintf(path, sizeof(path), "%s/config/%s", root, name);
    fuzz_write_file(path, size ? data : (const uint8_t *)"", main_len, -1);
    if (nul != NULL) {
        snprintf(path, sizeof(path), "%s/config/%s.bak", root, name);
        fuzz_write_file(path, nul + 1, size - main_len - 1, -1);
    }
}

#endif
