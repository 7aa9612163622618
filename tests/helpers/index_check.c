/*
 * index_check: check index lookups of many keys at once, for the broker's
 * TAP tests (one process instead of one shmqctl per key).
 *
 *   index_check --store DIR --topic T [--key] [--set KEY=VALUE]... < keys
 *
 * Reads one key per line on stdin: a UNIQ_KEY, or with --key a KEYS token.
 * For each it prints
 *
 *   <key> <messages found> <index entries for the first message found>
 *
 * where the messages come from the admin API (shmq_query_by_uniq_key /
 * shmq_query_by_key, which verify each record) and the entry count is the
 * raw number of entries of the key's bucket, over every index file, that
 * point at that message: 1 when the message was indexed exactly once.
 * Exit 0 when every line was checked, 1 on an error, 2 on bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/index_service.h"
#include "client/query.h"
#include "shmq/admin.h"

#include "common/helper_util.h"

static int count_phys(void *arg, int64_t phys, int32_t entry)
{
    (void)entry;
    int64_t *c = arg; /* c[0] phys wanted, c[1] count */
    c[1] += phys == c[0];
    return 0;
}

/* Raw entries of topic#key, over every index file, pointing at phys. */
static int64_t raw_entries(shmq_index_service_t *svc, const char *topic, const char *key,
                           int64_t phys)
{
    int32_t h = shmq_index_topic_key_hash(topic, strlen(topic), key, strlen(key));
    int64_t c[2] = {phys, 0};
    for (size_t i = 0; i < svc->count; i++) {
        shmq_index_header_t hdr;
        shmq_index_header_read(svc->files[i], &hdr);
        int32_t limit = i + 1 == svc->count ? 0 : hdr.index_count;
        shmq_index_file_lookup(svc->files[i], h, 0, INT64_MAX, limit, count_phys, c);
    }
    return c[1];
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"key", no_argument, NULL, 'k'},
        {"set", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    shmq_config_t *cfg = calloc(1, sizeof(*cfg));
    shmq_query_result_t *res = malloc(sizeof(*res));
    if (!cfg || !res) {
        return 1;
    }
    shmq_config_defaults(cfg);
    const char *topic = NULL;
    bool by_key = false;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            snprintf(cfg->store_path_root_dir, sizeof(cfg->store_path_root_dir), "%s", optarg);
            break;
        case 't':
            topic = optarg;
            break;
        case 'k':
            by_key = true;
            break;
        case 'S':
            rc = helper_config_set_arg(cfg, optarg);
            if (rc == -EINVAL) {
                fprintf(stderr, "index_check: --set KEY=VALUE\n");
                return 2;
            }
            if (rc < 0) {
                fprintf(stderr, "index_check: bad --set %s\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: index_check --store DIR --topic T [--key] [--set K=V]...\n");
            return 2;
        }
    }
    if (!topic || !cfg->store_path_root_dir[0]) {
        fprintf(stderr, "usage: index_check --store DIR --topic T [--key] [--set K=V]...\n");
        return 2;
    }
    shmq_admin_t *a;
    rc = shmq_admin_open_config(cfg, &a);
    if (rc < 0) {
        fprintf(stderr, "index_check: open %s: %s %s\n", cfg->store_path_root_dir,
                shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    shmq_index_service_t svc;
    char dir[PATH_MAX];
    shmq_index_dir(cfg, dir, sizeof(dir));
    rc = shmq_index_open(&svc, dir, cfg->max_hash_slot_num, cfg->max_index_num, true);
    if (rc < 0) {
        fprintf(stderr, "index_check: index %s: %s\n", dir, shmq_strerror(rc));
        return 1;
    }
    char line[4096];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) {
            continue;
        }
        rc = by_key ? shmq_query_by_key(a, topic, line, 0, INT64_MAX, SHMQ_QUERY_MAX, res)
                    : shmq_query_by_uniq_key(a, topic, line, res);
        if (rc < 0) {
            fprintf(stderr, "index_check: query %s: %s\n", line, shmq_strerror(rc));
            return 1;
        }
        int64_t raw = res->count ? raw_entries(&svc, topic, line, res->msgs[0].phys_offset) : 0;
        printf("%s %zu %lld\n", line, res->count, (long long)raw);
    }
    shmq_index_close(&svc);
    shmq_admin_close(a);
    free(res);
    free(cfg);
    return 0;
}
