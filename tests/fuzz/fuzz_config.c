/*
 * Fuzz target: broker.conf (libshm/format/config.c): the Java-properties reader,
 * every value parser it dispatches to (sizes, booleans, enums, the delay
 * level table), and the cross-field checks.  The input is the file.  The
 * delay level parser also gets the input's first line as a string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/config.h"
#include "fuzz_util.h"

static void no_warn(void *arg, const char *file, int line, const char *msg)
{
    (void)arg;
    (void)file;
    (void)line;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[512], path[600];
    fuzz_fresh_dir("conf", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/broker.conf", dir);
    fuzz_write_file(path, size ? data : (const uint8_t *)"", size, -1);
    shmq_config_t *cfg = malloc(sizeof(*cfg));
    shmq_config_defaults(cfg);
    if (shmq_config_load(cfg, path, no_warn, NULL) == 0) {
        shmq_config_validate(cfg);
        char cl[PATH_MAX];
        shmq_config_commitlog_dir(cfg, cl, sizeof(cl));
    }
    free(cfg);

    char line[512];
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0';
    int64_t ms[SHMQ_MAX_DELAY_LEVELS];
    shmq_config_parse_delay_levels(line, ms, SHMQ_MAX_DELAY_LEVELS);
    return 0;
}
