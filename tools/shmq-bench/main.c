/*
 * shmq-bench: measure a shmq store — throughput, latency, recovery, idle
 * cost — and compare each figure with what this machine can do (memcpy
 * bandwidth and 4 KiB fdatasync latency, measured in the same run).
 *
 *   shmq-bench produce [--producers N] [--size B] [--seconds S | --count N]
 *                      [--flush async|sync] [--inflight K] [--batch K]
 *   shmq-bench consume [--count N] [--size B]        read a backlog in place
 *   shmq-bench e2e --rate R [--seconds S]             send-to-receive latency
 *   shmq-bench recover [--store-bytes B] [--queues N]  torn tail, restarts
 *   shmq-bench writer-kill [--kills N]                 kill -9 of the writer
 *   shmq-bench idle [--seconds S]                      CPU of an idle broker
 *   shmq-bench group [--members N] [--count N] [--queues Q] [--kills K]
 *                                         a group drains a backlog; rebalances
 *   shmq-bench failover --store DIR [--since-ms T] [--timeout MS]
 *                                         a slave about to be elected: time to
 *                                         its first acknowledged send
 *
 * With --store DIR it measures the running broker of DIR; without, it starts
 * shmqd on a fresh temporary store and removes it afterwards.  --json prints
 * one JSON object; --plot FILE.png draws the latency percentile curve.
 * Exit status: 0 measured (even with send errors: they are counted), 1 the
 * run could not be made, 2 usage, 3 e2e --strict: the producers did not offer
 * the requested --rate (the percentiles are those of a lower rate).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Callgrind's client requests (valgrind's header), for --gate: no-ops outside valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif

static void on_signal(int sig)
{
    (void)sig;
    bench_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmq-bench MODE [options]\n"
               "modes:\n"
               "  produce      producers send as fast as they can\n"
               "  consume      read a backlog from the start, in place\n"
               "  e2e          send at --rate; the consumer records send-to-receive latency\n"
               "  recover      generate a store, tear its tail, time recovery and restarts\n"
               "  writer-kill  kill -9 the writer under load; time to the next acknowledgement\n"
               "  idle         CPU used by an idle broker\n"
               "  group        --members consumer group members drain a backlog (exactly\n"
               "               once); then kill -9 of a member, the time until the others\n"
               "               hold every queue\n"
               "  failover     --store DIR, a slave in controller mode about to be elected:\n"
               "               attach and send until a send is acknowledged; the time\n"
               "               from --since-ms\n"
               "options:\n"
               "  --store DIR          use the running broker of DIR (default: start one on a\n"
               "                       temporary store and remove it afterwards)\n"
               "  --producers N        producer processes (1)\n"
               "  --size B             body bytes (128)\n"
               "  --seconds S          run time (5; idle 10)\n"
               "  --count N            messages in all, instead of --seconds (consume: the\n"
               "                       backlog, 2000000; group: 1000000)\n"
               "  --flush async|sync   flushDiskType of the started broker (async)\n"
               "  --inflight K         requests in flight per producer (1 = shmq_send)\n"
               "  --batch K            messages per shmq_send_batch call (1 = no batches)\n"
               "  --compress-over B    producers store single bodies of B bytes or more LZ4-\n"
               "                       compressed (4096, RocketMQ's default; 0: never)\n"
               "  --rate R             e2e: messages per second, all producers (100000)\n"
               "  --strict             e2e: exit 3 when the producers did not offer --rate\n"
               "                       (sent less than 95 %% of it; --inflight 1 waits for each\n"
               "                       acknowledgement and rarely offers 100000 msg/s)\n"
               "  --store-bytes B      recover: CommitLog bytes to generate (1G)\n"
               "  --tail-bytes B       recover: bytes after the last checkpoint (256M)\n"
               "  --queues N           recover: queues of the generated topic (100); group:\n"
               "                       queues of the topic the started broker creates (8)\n"
               "  --members N          group: member processes of the consumer group (4)\n"
               "  --restarts N         recover: clean restarts timed (3)\n"
               "  --cold               recover: drop the store from the page cache first\n"
               "  --kills N            writer-kill: kills (20); group: members killed, one\n"
               "                       at a time, each replaced before the next (5)\n"
               "  --kill-every MS      writer-kill: load between kills (1200: over 1 s up,\n"
               "                       not a crash loop, so the master restarts it at once)\n"
               "  --topic T            topic (BenchTopic)\n"
               "  --set KEY=VALUE      broker.conf value for the started broker (repeatable)\n"
               "  --tmpdir DIR         where temporary stores go ($TMPDIR or /tmp)\n"
               "  --shmqd PATH         shmqd to start (default: next to shmq-bench)\n"
               "  --json               print one JSON object\n"
               "  --plot FILE.png      draw the latency percentile curve (needs gnuplot)\n"
               "  --no-baseline        skip the memcpy / fdatasync measurement\n"
               "  --keep               keep the temporary store\n"
               "  --slave              produce, e2e: the started broker gets a slave (a second\n"
               "                       store, TLS link on 127.0.0.1); with --set\n"
               "                       brokerRole=SYNC_MASTER sends wait for it; reports the\n"
               "                       slave's lag in bytes and milliseconds\n"
               "  --no-check-crcs      consume, group: the consumers check no record CRC\n"
               "                       (shmq_consumer_set_check_crcs(c, false))\n"
               "  --passes N           consume: read the backlog N times in one process and\n"
               "                       report the fastest read (1)\n"
               "  --gate FILE          produce: when the producers are ready, write their pids\n"
               "                       into FILE and start when FILE is removed (bench/cost)\n"
               "  --since-ms T         failover: count from T, wall-clock milliseconds since\n"
               "                       1970 (the master's kill; default: the start)\n"
               "  --timeout MS         failover: keep trying this long (60000)\n"
               "  --retry-ms MS        failover: pause after a refused attach or send (2)\n"
               "exit status: 0 measured, 1 the run could not be made, 2 usage, 3 e2e --strict\n"
               "and the requested rate was not offered\n");
}

/* 123, 4K, 256M, 4G (powers of 1024). */
static int parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) {
        return -1;
    }
    int64_t mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1LL << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1LL << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1LL << 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0' || v > INT64_MAX / mul) {
        return -1;
    }
    *out = v * mul;
    return 0;
}

static int parse_num(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "shmq-bench: %s %s: expected a number in %g..%g\n", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_STORE = 256,
    OPT_PRODUCERS,
    OPT_SIZE,
    OPT_SECONDS,
    OPT_COUNT,
    OPT_FLUSH,
    OPT_INFLIGHT,
    OPT_BATCH,
    OPT_RATE,
    OPT_STORE_BYTES,
    OPT_TAIL_BYTES,
    OPT_QUEUES,
    OPT_RESTARTS,
    OPT_COLD,
    OPT_KILLS,
    OPT_KILL_EVERY,
    OPT_TOPIC,
    OPT_SET,
    OPT_TMPDIR,
    OPT_SHMQD,
    OPT_JSON,
    OPT_PLOT,
    OPT_NO_BASELINE,
    OPT_KEEP,
    OPT_SLAVE,
    OPT_NO_CHECK_CRCS,
    OPT_PASSES,
    OPT_STRICT,
    OPT_GATE,
    OPT_MEMBERS,
    OPT_COMPRESS_OVER,
    OPT_SINCE_MS,
    OPT_TIMEOUT,
    OPT_RETRY_MS,
};

static const struct option long_opts[] = {
    {"store", required_argument, NULL, OPT_STORE},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"size", required_argument, NULL, OPT_SIZE},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"count", required_argument, NULL, OPT_COUNT},
    {"flush", required_argument, NULL, OPT_FLUSH},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"compress-over", required_argument, NULL, OPT_COMPRESS_OVER},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"rate", required_argument, NULL, OPT_RATE},
    {"store-bytes", required_argument, NULL, OPT_STORE_BYTES},
    {"tail-bytes", required_argument, NULL, OPT_TAIL_BYTES},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"restarts", required_argument, NULL, OPT_RESTARTS},
    {"cold", no_argument, NULL, OPT_COLD},
    {"kills", required_argument, NULL, OPT_KILLS},
    {"kill-every", required_argument, NULL, OPT_KILL_EVERY},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"set", required_argument, NULL, OPT_SET},
    {"tmpdir", required_argument, NULL, OPT_TMPDIR},
    {"shmqd", required_argument, NULL, OPT_SHMQD},
    {"json", no_argument, NULL, OPT_JSON},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"no-baseline", no_argument, NULL, OPT_NO_BASELINE},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"slave", no_argument, NULL, OPT_SLAVE},
    {"no-check-crcs", no_argument, NULL, OPT_NO_CHECK_CRCS},
    {"passes", required_argument, NULL, OPT_PASSES},
    {"strict", no_argument, NULL, OPT_STRICT},
    {"gate", required_argument, NULL, OPT_GATE},
    {"members", required_argument, NULL, OPT_MEMBERS},
    {"since-ms", required_argument, NULL, OPT_SINCE_MS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retry-ms", required_argument, NULL, OPT_RETRY_MS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_mode(const char *s, bench_mode_t *m)
{
    static const struct {
        const char *name;
        bench_mode_t mode;
    } modes[] = {
        {"produce", BENCH_PRODUCE}, {"consume", BENCH_CONSUME},         {"e2e", BENCH_E2E},
        {"recover", BENCH_RECOVER}, {"writer-kill", BENCH_WRITER_KILL}, {"idle", BENCH_IDLE},
        {"group", BENCH_GROUP},     {"failover", BENCH_FAILOVER}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(s, modes[i].name) == 0) {
            *m = modes[i].mode;
            return 0;
        }
    }
    return -1;
}

static int parse_args(int argc, char **argv, bench_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->topic = BENCH_TOPIC;
    o->producers = 1;
    o->size = 128;
    o->flush = -1;
    o->inflight = 1;
    o->batch = 1;
    o->compress_over = -1;
    o->rate = 100000;
    o->store_bytes = 1LL << 30;
    o->tail_bytes = -1;
    o->restarts = 3;
    o->passes = 1;
    o->members = 4;
    o->kill_every_ms = 1200;
    o->timeout_ms = 60000;
    o->retry_ms = 2;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            usage(stdout);
            exit(0);
        }
        usage(stderr);
        return -1;
    }
    if (parse_mode(argv[1], &o->mode) < 0) {
        fprintf(stderr, "shmq-bench: unknown mode %s\n", argv[1]);
        usage(stderr);
        return -1;
    }
    o->mode_name = argv[1];
    double v;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_STORE:
            o->store = optarg;
            break;
        case OPT_PRODUCERS:
            if (parse_num("--producers", optarg, 1, BENCH_MAX_PROCS, &v) < 0) {
                return -1;
            }
            o->producers = (int)v;
            break;
        case OPT_SIZE:
            if (parse_size(optarg, &o->size) < 0 || o->size > (64LL << 20)) {
                fprintf(stderr, "shmq-bench: --size %s: expected 0..64M\n", optarg);
                return -1;
            }
            break;
        case OPT_SECONDS:
            if (parse_num("--seconds", optarg, 0.001, 86400, &o->seconds) < 0) {
                return -1;
            }
            break;
        case OPT_COUNT:
            if (parse_size(optarg, &o->count) < 0 || o->count < 1) {
                fprintf(stderr, "shmq-bench: --count %s: expected a positive count\n", optarg);
                return -1;
            }
            break;
        case OPT_FLUSH:
            if (strcmp(optarg, "async") == 0 || strcmp(optarg, "ASYNC_FLUSH") == 0) {
                o->flush = 0;
            } else if (strcmp(optarg, "sync") == 0 || strcmp(optarg, "SYNC_FLUSH") == 0) {
                o->flush = 1;
            } else {
                fprintf(stderr, "shmq-bench: --flush %s: expected async or sync\n", optarg);
                return -1;
            }
            break;
        case OPT_INFLIGHT:
            if (parse_num("--inflight", optarg, 1, 256, &v) < 0) {
                return -1;
            }
            o->inflight = (int)v;
            break;
        case OPT_BATCH:
            if (parse_num("--batch", optarg, 1, 4096, &v) < 0) {
                return -1;
            }
            o->batch = (int)v;
            break;
        case OPT_RATE:
            if (parse_num("--rate", optarg, 1, 1e8, &o->rate) < 0) {
                return -1;
            }
            break;
        case OPT_STORE_BYTES:
        case OPT_TAIL_BYTES:
            if (parse_size(optarg, c == OPT_STORE_BYTES ? &o->store_bytes : &o->tail_bytes) < 0) {
                fprintf(stderr, "shmq-bench: %s: expected bytes (e.g. 4G)\n", optarg);
                return -1;
            }
            break;
        case OPT_QUEUES:
            if (parse_num("--queues", optarg, 1, 8192, &v) < 0) {
                return -1;
            }
            o->queues = (int)v;
            break;
        case OPT_RESTARTS:
            if (parse_num("--restarts", optarg, 0, 1000, &v) < 0) {
                return -1;
            }
            o->restarts = (int)v;
            break;
        case OPT_COLD:
            o->cold = true;
            break;
        case OPT_KILLS:
            if (parse_num("--kills", optarg, 1, 10000, &v) < 0) {
                return -1;
            }
            o->kills = (int)v;
            break;
        case OPT_KILL_EVERY:
            if (parse_num("--kill-every", optarg, 1, 600000, &v) < 0) {
                return -1;
            }
            o->kill_every_ms = (int64_t)v;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_SET:
            if (o->nsets == BENCH_MAX_SETS || !strchr(optarg, '=')) {
                fprintf(stderr, "shmq-bench: --set %s: expected KEY=VALUE (at most %d)\n", optarg,
                        BENCH_MAX_SETS);
                return -1;
            }
            o->sets[o->nsets++] = optarg;
            break;
        case OPT_TMPDIR:
            o->tmpdir = optarg;
            break;
        case OPT_SHMQD:
            o->shmqd = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_PLOT:
            o->plot = optarg;
            break;
        case OPT_NO_BASELINE:
            o->no_baseline = true;
            break;
        case OPT_KEEP:
            o->keep = true;
            break;
        case OPT_SLAVE:
            o->slave = true;
            break;
        case OPT_NO_CHECK_CRCS:
            o->no_check_crcs = true;
            break;
        case OPT_COMPRESS_OVER:
            if (parse_size(optarg, &o->compress_over) < 0) {
                fprintf(stderr, "shmq-bench: --compress-over %s: expected bytes\n", optarg);
                return -1;
            }
            break;
        case OPT_PASSES:
            if (parse_num("--passes", optarg, 1, 1000, &v) < 0) {
                return -1;
            }
            o->passes = (int)v;
            break;
        case OPT_STRICT:
            o->strict = true;
            break;
        case OPT_GATE:
            o->gate = optarg;
            break;
        case OPT_MEMBERS:
            if (parse_num("--members", optarg, 1, BENCH_MAX_PROCS, &v) < 0) {
                return -1;
            }
            o->members = (int)v;
            break;
        case OPT_SINCE_MS:
            if (parse_num("--since-ms", optarg, 1, 1e15, &v) < 0) {
                return -1;
            }
            o->since_ms = (int64_t)v;
            break;
        case OPT_TIMEOUT:
            if (parse_num("--timeout", optarg, 1, 3600000, &v) < 0) {
                return -1;
            }
            o->timeout_ms = (int64_t)v;
            break;
        case OPT_RETRY_MS:
            if (parse_num("--retry-ms", optarg, 0, 10000, &v) < 0) {
                return -1;
            }
            o->retry_ms = (int64_t)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmq-bench: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->seconds <= 0 && o->count <= 0) {
        o->seconds = o->mode == BENCH_IDLE ? 10 : 5;
    }
    if (o->mode == BENCH_CONSUME && o->count <= 0) {
        o->count = 2000000; /* the backlog */
    }
    if (o->mode == BENCH_GROUP && o->count <= 0) {
        o->count = 1000000; /* the backlog */
    }
    if (o->queues <= 0) {
        o->queues = o->mode == BENCH_GROUP ? 8 : 100;
    }
    if (o->kills <= 0) {
        o->kills = o->mode == BENCH_GROUP ? 5 : 20;
    }
    if (o->mode == BENCH_GROUP && o->queues > SHMQ_TOPIC_QUEUES_MAX) {
        fprintf(stderr, "shmq-bench: group: --queues at most %d\n", SHMQ_TOPIC_QUEUES_MAX);
        return -1;
    }
    if (o->tail_bytes < 0) {
        o->tail_bytes = o->store_bytes / 4 < (256LL << 20) ? o->store_bytes / 4 : (256LL << 20);
    }
    if (o->tail_bytes >= o->store_bytes) {
        fprintf(stderr, "shmq-bench: --tail-bytes must be below --store-bytes\n");
        return -1;
    }
    if (o->batch > 1 && o->inflight > 1) {
        fprintf(stderr, "shmq-bench: --batch sends are synchronous: use --inflight 1 with it\n");
        return -1;
    }
    if (o->mode == BENCH_E2E && o->batch > 1) {
        fprintf(stderr, "shmq-bench: e2e sends single messages (no --batch)\n");
        return -1;
    }
    if (o->strict && o->mode != BENCH_E2E) {
        fprintf(stderr, "shmq-bench: --strict is for e2e\n");
        return -1;
    }
    if (o->gate && o->mode != BENCH_PRODUCE) {
        fprintf(stderr, "shmq-bench: --gate is for produce\n");
        return -1;
    }
    if (o->mode == BENCH_FAILOVER && o->store == NULL) {
        fprintf(stderr, "shmq-bench: failover needs --store DIR (the slave about to be "
                        "elected)\n");
        return -1;
    }
    if (o->mode != BENCH_FAILOVER && o->since_ms > 0) {
        fprintf(stderr, "shmq-bench: --since-ms is for failover\n");
        return -1;
    }
    if (o->slave && (o->store != NULL || (o->mode != BENCH_PRODUCE && o->mode != BENCH_E2E))) {
        fprintf(stderr, "shmq-bench: --slave is for produce and e2e on a started broker (no "
                        "--store)\n");
        return -1;
    }
    return 0;
}

json_t *bench_config_json(const bench_opts_t *o, const bench_broker_t *b)
{
    json_t *c = json_object();
    json_object_set_new(c, "producers", json_integer(o->producers));
    json_object_set_new(c, "size", json_integer(o->size));
    json_object_set_new(c, "seconds", o->count > 0 ? json_null() : json_real(o->seconds));
    json_object_set_new(c, "count", o->count > 0 ? json_integer(o->count) : json_null());
    json_object_set_new(c, "flush", json_string(b->flush_sync ? "SYNC_FLUSH" : "ASYNC_FLUSH"));
    json_object_set_new(c, "inflight", json_integer(o->inflight));
    json_object_set_new(c, "batch", json_integer(o->batch));
    json_object_set_new(c, "compress_over",
                        json_integer(o->compress_over >= 0 ? o->compress_over : 4096));
    json_object_set_new(c, "topic", json_string(o->topic));
    json_object_set_new(c, "store", o->store ? json_string(o->store) : json_string("temporary"));
    json_object_set_new(c, "slave", json_boolean(o->slave));
    json_object_set_new(c, "segment_bytes", json_integer(b->seg_size));
    json_object_set_new(c, "check_crcs", json_boolean(!o->no_check_crcs));
    json_object_set_new(c, "passes", json_integer(o->passes));
    json_t *sets = json_array();
    for (int i = 0; i < o->nsets; i++) {
        json_array_append_new(sets, json_string(o->sets[i]));
    }
    json_object_set_new(c, "set", sets);
    return c;
}

int bench_gate(const bench_opts_t *o, const pid_t *pids, int n)
{
    if (o->gate == NULL) {
        return 0;
    }
    /* Written under another name and renamed: the file appears whole. */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", o->gate) >= (int)sizeof(tmp)) {
        bench_warn("--gate %s: name too long", o->gate);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        bench_warn("--gate %s: %s", tmp, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d\n", (int)pids[i]);
    }
    if (fclose(f) != 0 || rename(tmp, o->gate) != 0) {
        bench_warn("--gate %s: %s", o->gate, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int64_t limit = bench_now_ns() + 600LL * 1000000000;
    while (access(o->gate, F_OK) == 0) {
        if (bench_interrupted || bench_now_ns() > limit) {
            bench_warn("--gate %s: not removed, the run does not start", o->gate);
            unlink(o->gate);
            return -1;
        }
        bench_sleep_ns(1000000);
    }
    return 0;
}

void bench_gate_count_start(const bench_opts_t *o)
{
    if (o->gate == NULL) {
        return;
    }
#ifdef BENCH_HAVE_CALLGRIND
    /* A forked process cannot be reached by callgrind_control: it switches itself on. */
    CALLGRIND_START_INSTRUMENTATION;
#endif
}

void bench_report_init(bench_report_t *r, const char *mode)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->hist = malloc(sizeof(*r->hist));
    if (r->hist) {
        bench_hist_init(r->hist);
    }
}

void bench_report_free(bench_report_t *r)
{
    json_decref(r->config);
    json_decref(r->extra);
    free(r->hist);
    r->config = r->extra = NULL;
    r->hist = NULL;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static json_t *report_json(const bench_report_t *r)
{
    const bench_hist_t *h = r->hist;
    json_t *j = json_object();
    json_object_set_new(j, "mode", json_string(r->mode));
    json_object_set_new(j, "config", r->config ? json_incref(r->config) : json_object());
    json_object_set_new(j, "msgs", json_integer(r->msgs));
    json_object_set_new(j, "seconds", json_real(r->seconds));
    json_object_set_new(j, "msgs_per_sec", json_real(r->msgs_per_sec));
    json_object_set_new(j, "mb_per_sec", json_real(r->mb_per_sec));
    json_object_set_new(j, "store_mb_per_sec", json_real(r->store_mb_per_sec));
    json_object_set_new(j, "errors", json_integer(r->errors));
    json_t *l = json_object();
    json_object_set_new(l, "what", json_string(r->latency_what ? r->latency_what : ""));
    json_object_set_new(l, "count", json_integer((json_int_t)h->count));
    json_object_set_new(l, "p50", json_real(us(bench_hist_quantile(h, 0.5))));
    json_object_set_new(l, "p90", json_real(us(bench_hist_quantile(h, 0.9))));
    json_object_set_new(l, "p99", json_real(us(bench_hist_quantile(h, 0.99))));
    json_object_set_new(l, "p999", json_real(us(bench_hist_quantile(h, 0.999))));
    json_object_set_new(l, "max", json_real(us(h->count ? h->max : 0)));
    json_object_set_new(l, "mean", json_real(h->count ? h->sum / (double)h->count / 1000.0 : 0));
    json_object_set_new(j, "latency_us", l);
    const bench_machine_t *m = &r->machine;
    json_t *mj = json_object();
    json_object_set_new(mj, "nproc", json_integer(m->nproc));
    json_object_set_new(mj, "cpu", json_string(m->cpu));
    json_object_set_new(mj, "kernel", json_string(m->kernel));
    json_object_set_new(mj, "filesystem", json_string(m->fs));
    json_object_set_new(mj, "load_1m", json_real(m->load1));
    if (m->measured) {
        json_object_set_new(mj, "memcpy_gb_per_sec", json_real(m->memcpy_bytes_per_sec / 1e9));
        json_object_set_new(mj, "fdatasync_4k_p50_us", json_real(m->fdatasync_p50_us));
        json_object_set_new(mj, "fdatasync_4k_p99_us", json_real(m->fdatasync_p99_us));
    }
    json_object_set_new(j, "machine", mj);
    json_t *fr = json_object();
    json_object_set_new(fr, "of_memcpy", json_real(r->frac_memcpy));
    json_object_set_new(fr, "fdatasync_over_p50", json_real(r->frac_fdatasync));
    json_object_set_new(j, "fraction", fr);
    if (r->extra) {
        json_object_set_new(j, "extra", json_incref(r->extra));
    }
    if (r->note[0]) {
        json_object_set_new(j, "note", json_string(r->note));
    }
    return j;
}

static void print_human(const bench_report_t *r)
{
    const bench_hist_t *h = r->hist;
    printf("shmq-bench %s", r->mode);
    if (r->config) {
        char *c = json_dumps(r->config, JSON_COMPACT | JSON_SORT_KEYS);
        printf("  %s", c ? c : "");
        free(c);
    }
    printf("\n");
    printf("  messages   %lld in %.3f s, %lld errors\n", (long long)r->msgs, r->seconds,
           (long long)r->errors);
    printf("  rate       %.0f msgs/s, %.1f MB/s bodies", r->msgs_per_sec, r->mb_per_sec);
    if (r->store_mb_per_sec > 0) {
        printf(", %.1f MB/s CommitLog", r->store_mb_per_sec);
    }
    printf("\n");
    if (h->count) {
        printf("  latency    %s, us (%llu samples):\n", r->latency_what ? r->latency_what : "",
               (unsigned long long)h->count);
        printf("             p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
               us(bench_hist_quantile(h, 0.5)), us(bench_hist_quantile(h, 0.9)),
               us(bench_hist_quantile(h, 0.99)), us(bench_hist_quantile(h, 0.999)), us(h->max),
               h->sum / (double)h->count / 1000.0);
    }
    const bench_machine_t *m = &r->machine;
    printf("  machine    %d x %s, %s, %s, load %.2f", m->nproc, m->cpu, m->kernel, m->fs, m->load1);
    if (m->measured) {
        printf("; memcpy %.1f GB/s; 4 KiB fdatasync p50 %.0f us, p99 %.0f us",
               m->memcpy_bytes_per_sec / 1e9, m->fdatasync_p50_us, m->fdatasync_p99_us);
    }
    printf("\n");
    if (r->frac_memcpy > 0 || r->frac_fdatasync > 0) {
        printf("  vs machine");
        if (r->frac_memcpy > 0) {
            printf("  bytes/s at %.2f %% of memcpy", r->frac_memcpy * 100.0);
        }
        if (r->frac_fdatasync > 0) {
            printf("  fdatasync p50 / latency p50 = %.2f", r->frac_fdatasync);
        }
        printf("\n");
    }
    if (r->extra) {
        char *e = json_dumps(r->extra, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("  details    %s\n", e ? e : "");
        free(e);
    }
    if (r->note[0]) {
        printf("  note       %s\n", r->note);
    }
    if (r->rate_missed) {
        printf("  WARNING    the requested rate was not offered (see offered_rate in details):\n"
               "             the latencies above are those of a lower rate\n");
    }
}

int main(int argc, char **argv)
{
    bench_opts_t o;
    if (parse_args(argc, argv, &o) < 0) {
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bench_clock_init();
    bench_report_t r;
    bench_report_init(&r, o.mode_name);
    if (!r.hist) {
        return 1;
    }
    int rc;
    switch (o.mode) {
    case BENCH_PRODUCE:
        rc = bench_produce(&o, &r);
        break;
    case BENCH_CONSUME:
        rc = bench_consume(&o, &r);
        break;
    case BENCH_E2E:
        rc = bench_e2e(&o, &r);
        break;
    case BENCH_RECOVER:
        rc = bench_recover(&o, &r);
        break;
    case BENCH_WRITER_KILL:
        rc = bench_writer_kill(&o, &r);
        break;
    case BENCH_GROUP:
        rc = bench_group(&o, &r);
        break;
    case BENCH_FAILOVER:
        rc = bench_failover(&o, &r);
        break;
    case BENCH_IDLE:
    default:
        rc = bench_idle(&o, &r);
        break;
    }
    if (rc < 0) {
        bench_report_free(&r);
        return 1;
    }
    if (o.json) {
        json_t *j = report_json(&r);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7));
        if (s) {
            printf("%s\n", s);
        }
        free(s);
        json_decref(j);
    } else {
        print_human(&r);
    }
    if (o.plot && bench_plot(&r, o.plot) == 0 && !o.json) {
        printf("  plot       %s\n", o.plot);
    }
    bool missed = r.rate_missed;
    bench_report_free(&r);
    if (bench_interrupted) {
        return 1;
    }
    return o.strict && missed ? 3 : 0;
}
