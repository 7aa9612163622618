/*
 * index_bench: the key-lookup benchmark (docs/performance-index.md).
 *
 *   index_bench --store DIR --topic T --keys N [--build] [--lookups L] [--max M]
 *               [--set KEY=VALUE]...
 *
 * --build indexes the store's CommitLog into <root>/index as shmq-indexer
 * does (resuming after what is already indexed; the store must not be
 * running), and reports the rate.  Then L lookups (default 1,000,000) of
 * random keys "key-<i>", 0 <= i < N (the KEYS `shmqctl gen --keys` writes),
 * through the admin API from this one process, each verified against its
 * record; it prints the lookups per second, how many found their message,
 * and latency percentiles.  Exit 1 if any lookup found no message.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/index_service.h"
#include "client/query.h"
#include "shmq/admin.h"

#include "common/helper_util.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int build(const shmq_config_t *cfg)
{
    char dir[PATH_MAX];
    shmq_config_commitlog_dir(cfg, dir, sizeof(dir));
    shmq_commitlog_t cl;
    int rc =
        shmq_commitlog_open(&cl, dir, (size_t)cfg->mapped_file_size_commit_log, SHMQ_MF_READONLY);
    if (rc < 0) {
        fprintf(stderr, "index_bench: CommitLog %s: %s\n", dir, shmq_strerror(rc));
        return 1;
    }
    /* The end of the data: the zeros after the last record. */
    int64_t end = shmq_mfq_min_offset(&cl.q);
    shmq_record_t r;
    while (shmq_commitlog_next(&cl, &end, INT64_MAX, 0, &r) > 0) {
    }
    shmq_commitlog_set_positions(&cl, end, end);
    shmq_index_service_t svc;
    shmq_index_dir(cfg, dir, sizeof(dir));
    rc = shmq_index_open(&svc, dir, cfg->max_hash_slot_num, cfg->max_index_num, false);
    shmq_index_resume_report_t rep;
    if (rc == 0) {
        rc = shmq_index_resume(&svc, &cl, end, shmq_mfq_min_offset(&cl.q), &rep);
    }
    if (rc < 0) {
        fprintf(stderr, "index_bench: index %s: %s %s\n", dir, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    int64_t pos = rep.pos, t0 = helper_mono_ns();
    int64_t n = shmq_index_build(&svc, &cl, &pos, end);
    int frc = shmq_index_flush(&svc, NULL);
    double s = (double)(helper_mono_ns() - t0) / 1e9;
    if (n < 0 || frc < 0) {
        fprintf(stderr, "index_bench: build: %s %s\n", shmq_strerror(n < 0 ? (int)n : frc),
                shmq_error_detail());
        return 1;
    }
    printf("build: %lld messages indexed in %.2f s (%.0f messages/s, with msync), %zu file(s)\n",
           (long long)n, s, s > 0 ? (double)n / s : 0.0, svc.count);
    shmq_index_close(&svc);
    shmq_commitlog_close(&cl);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'}, {"topic", required_argument, NULL, 't'},
        {"keys", required_argument, NULL, 'k'},  {"lookups", required_argument, NULL, 'l'},
        {"max", required_argument, NULL, 'm'},   {"build", no_argument, NULL, 'b'},
        {"set", required_argument, NULL, 'S'},   {NULL, 0, NULL, 0},
    };
    shmq_config_t *cfg = calloc(1, sizeof(*cfg));
    shmq_query_result_t *res = malloc(sizeof(*res));
    if (!cfg || !res) {
        return 1;
    }
    shmq_config_defaults(cfg);
    const char *topic = NULL;
    long long keys = 0, lookups = 1000000;
    int max = 64, opt, rc;
    bool do_build = false;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            snprintf(cfg->store_path_root_dir, sizeof(cfg->store_path_root_dir), "%s", optarg);
            break;
        case 't':
            topic = optarg;
            break;
        case 'k':
            keys = strtoll(optarg, NULL, 10);
            break;
        case 'l':
            lookups = strtoll(optarg, NULL, 10);
            break;
        case 'm':
            max = atoi(optarg);
            break;
        case 'b':
            do_build = true;
            break;
        case 'S':
            rc = helper_config_set_arg(cfg, optarg);
            if (rc == -EINVAL) {
                return 2;
            }
            if (rc < 0) {
                fprintf(stderr, "index_bench: bad --set %s\n", optarg);
                return 2;
            }
            break;
        default:
            return 2;
        }
    }
    if (!topic || keys <= 0 || lookups <= 0 || max < 1 || max > SHMQ_QUERY_MAX ||
        !cfg->store_path_root_dir[0]) {
        fprintf(stderr, "usage: index_bench --store DIR --topic T --keys N [--build] "
                        "[--lookups L] [--max M] [--set K=V]...\n");
        return 2;
    }
    if (do_build && build(cfg) != 0) {
        return 1;
    }
    shmq_admin_t *a;
    rc = shmq_admin_open_config(cfg, &a);
    if (rc < 0) {
        fprintf(stderr, "index_bench: open: %s %s\n", shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    /* Sampled latencies (one lookup in 64): timing every call would cost as much as a lookup. */
    size_t nsamples = (size_t)(lookups / 64) + 1, ns = 0;
    int64_t *lat = malloc(nsamples * sizeof(*lat));
    unsigned long long seed = 88172645463325252ULL, found = 0;
    char key[32];
    int64_t t0 = helper_mono_ns();
    for (long long i = 0; i < lookups; i++) {
        seed ^= seed << 13; /* xorshift64 */
        seed ^= seed >> 7;
        seed ^= seed << 17;
        snprintf(key, sizeof(key), "key-%llu", seed % (unsigned long long)keys);
        int64_t s = (i & 63) == 0 ? helper_mono_ns() : 0;
        rc = shmq_query_by_key(a, topic, key, 0, INT64_MAX, max, res);
        if (s && ns < nsamples) {
            lat[ns++] = helper_mono_ns() - s;
        }
        if (rc < 0) {
            fprintf(stderr, "index_bench: query %s: %s\n", key, shmq_strerror(rc));
            return 1;
        }
        found += res->count > 0;
    }
    double secs = (double)(helper_mono_ns() - t0) / 1e9;
    qsort(lat, ns, sizeof(*lat), cmp_i64);
    printf("lookups: %lld in %.2f s = %.0f lookups/s from one process (%s store), "
           "%llu found; latency p50 %.1f us, p99 %.1f us, max %.1f us\n",
           lookups, secs, (double)lookups / secs, shmq_admin_running(a) ? "running" : "stopped",
           found, ns ? (double)lat[ns / 2] / 1e3 : 0.0, ns ? (double)lat[ns * 99 / 100] / 1e3 : 0.0,
           ns ? (double)lat[ns - 1] / 1e3 : 0.0);
    free(lat);
    shmq_admin_close(a);
    free(res);
    free(cfg);
    return found == (unsigned long long)lookups ? 0 : 1;
}
