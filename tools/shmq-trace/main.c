/*
 * shmq-trace: live latency breakdown of a running store from its USDT
 * probes (libshm/base/probes.h), with libbpf.
 *
 *   shmq-trace --store DIR [--binary PATH]... [--pid PID]... [--duration S]
 *              [--interval S] [--top N] [--json]
 *   shmq-trace --check
 *
 * It attaches one BPF program per probe to every file that holds shmq's
 * probes: the executables of the store's master, workers and producers and
 * of its consumer-group members (their pids are in the control block), any
 * libshmq.so those processes map, and the files and processes named with
 * --binary and --pid.  A probe attached to a file fires in every process
 * that runs it, also one started later (a restarted worker, a new
 * producer).  With --store, only the events of that store's processes count
 * (those that map its control block, and its master): another store
 * running the same files is left out.  Until --duration passes (or SIGINT/SIGTERM) it prints the
 * stages every --interval seconds, then the whole run's report (JSON with
 * --json).  docs/tracing.md describes the output.
 *
 * Exit: 0 done, 1 the store or the files could not be traced, 2 usage,
 * 3 BPF is not available here (--check says why).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shm/ctl.h"
#include "shmq/errors.h"
#include "shmq_trace.skel.h"
#include "trace_stats.h"

#define EXIT_TRACE_FAIL  1
#define EXIT_TRACE_USAGE 2
#define EXIT_TRACE_NOBPF 3
#define PATHS_MAX        64

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmq-trace --store DIR [--binary PATH]... [--pid PID]... [--duration S]\n"
               "                  [--interval S] [--top N] [--json]\n"
               "       shmq-trace --check | --help\n");
}

typedef struct paths {
    char *p[PATHS_MAX];
    size_t n;
} paths_t;

static void paths_add_raw(paths_t *ps, const char *path)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i], path) == 0) {
            return;
        }
    }
    if (ps->n < PATHS_MAX) {
        ps->p[ps->n++] = strdup(path);
    }
}

static void paths_add(paths_t *ps, const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real)) {
        paths_add_raw(ps, real);
    }
}

/* The executable of pid and every libshmq.so it maps. */
static void paths_of_pid(paths_t *ps, long pid)
{
    if (pid <= 0) {
        return;
    }
    char path[64], target[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    if (n > 0 && strstr(target, " (deleted)")) {
        /* It runs a file replaced since (a rebuild or upgrade): its probes are in the old
         * inode, which only /proc/PID/exe still names. */
        paths_add_raw(ps, path);
    } else {
        paths_add(ps, path);
    }
    snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof(line), f)) {
        char *file = strchr(line, '/');
        if (file && strstr(file, "/libshmq.so")) {
            file[strcspn(file, "\n")] = '\0';
            paths_add(ps, file);
        }
    }
    fclose(f);
}

/*
 * Which processes are the store's: those that map its control block
 * (/dev/shm<name> in /proc/PID/maps), and its master.  Each pid is looked
 * up once (a table of the pids seen); a pid gone before its first event was
 * looked at is not the store's.
 */
#define OWNERS_SLOTS 4096

typedef struct owners {
    char shm[80]; /* "/dev/shm/shmq-<hash>" */
    long master;
    uint32_t pid[OWNERS_SLOTS]; /* 0 free */
    uint8_t mine[OWNERS_SLOTS];
    uint64_t foreign; /* events of other processes, left out */
} owners_t;

static bool maps_store(const owners_t *o, uint32_t pid)
{
    char path[64], line[PATH_MAX + 128];
    snprintf(path, sizeof(path), "/proc/%u/maps", pid);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        found = strstr(line, o->shm) != NULL;
    }
    if (f) {
        fclose(f);
    }
    return found;
}

static bool owners_mine(owners_t *o, uint32_t pid)
{
    if ((long)pid == o->master) {
        return true;
    }
    uint32_t h = (pid * 2654435761u) % OWNERS_SLOTS;
    for (uint32_t i = 0; i < OWNERS_SLOTS; i++) {
        uint32_t k = (h + i) % OWNERS_SLOTS;
        if (o->pid[k] == pid) {
            return o->mine[k];
        }
        if (o->pid[k] == 0) {
            o->pid[k] = pid;
            o->mine[k] = maps_store(o, pid);
            return o->mine[k];
        }
    }
    return maps_store(o, pid); /* the table is full: look every time */
}

/* The pids the store's control block names: master, workers, producers, group members. */
static int paths_of_store(paths_t *ps, const char *root, owners_t *own)
{
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        fprintf(stderr, "shmq-trace: store %s: %s\n", root, d[0] ? d : shmq_strerror(rc));
        return rc;
    }
    const shmq_ctl_block_t *b = ctl.blk;
    snprintf(own->shm, sizeof(own->shm), "/dev/shm%s", ctl.name);
    own->master = b->hdr.creator_pid;
    paths_of_pid(ps, b->hdr.creator_pid);
    for (size_t i = 0; i < SHMQ_CTL_MAX_WORKERS; i++) {
        paths_of_pid(ps, atomic_load_explicit(&b->workers[i].pid, memory_order_relaxed));
    }
    for (uint32_t i = 0; i < b->hdr.ring_count && i < SHMQ_CTL_MAX_RINGS; i++) {
        if (atomic_load_explicit(&b->rings[i].state, memory_order_relaxed) != SHMQ_RING_FREE) {
            paths_of_pid(ps, atomic_load_explicit(&b->rings[i].owner_pid, memory_order_relaxed));
        }
    }
    for (size_t i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t m;
        if (shmq_ctl_member_copy(ctl.cons, (int)i, &m) == 0) {
            paths_of_pid(ps, m.pid);
        }
    }
    shmq_ctl_detach(&ctl);
    return 0;
}

typedef struct probe_prog {
    const char *probe;
    struct bpf_program *prog;
} probe_prog_t;

/* Attach every probe to every file that has it; the count attached, or -1. */
static int attach_all(struct shmq_trace *skel, const paths_t *ps, struct bpf_link ***links,
                      size_t *nlinks)
{
    const probe_prog_t progs[] = {
        {"produce", skel->progs.on_produce},
        {"append", skel->progs.on_append},
        {"flush", skel->progs.on_flush},
        {"flush_error", skel->progs.on_flush_error},
        {"dispatch", skel->progs.on_dispatch},
        {"pull", skel->progs.on_pull},
        {"worker_start", skel->progs.on_worker_start},
        {"worker_exit", skel->progs.on_worker_exit},
        {"recovery", skel->progs.on_recovery},
    };
    size_t np = sizeof(progs) / sizeof(progs[0]);
    *links = calloc(ps->n * np + 1, sizeof(**links));
    if (!*links) {
        return -1;
    }
    int files = 0;
    for (size_t i = 0; i < ps->n; i++) {
        int here = 0;
        for (size_t k = 0; k < np; k++) {
            struct bpf_link *l =
                bpf_program__attach_usdt(progs[k].prog, -1, ps->p[i], "shmq", progs[k].probe, NULL);
            if (!l) {
                continue; /* this file does not have that probe (a client has no flush) */
            }
            (*links)[(*nlinks)++] = l;
            here++;
        }
        if (here > 0) {
            files++;
            fprintf(stderr, "shmq-trace: %d probes in %s\n", here, ps->p[i]);
        }
    }
    return files;
}

typedef struct tracer {
    trace_stats_t *st;
    owners_t *own; /* NULL: every process's events count */
} tracer_t;

static int on_event(void *ctx, void *data, size_t len)
{
    tracer_t *t = ctx;
    const struct trace_event *e = data;
    if (len < sizeof(*e)) {
        return 0;
    }
    if (t->own && !owners_mine(t->own, e->pid)) {
        t->own->foreign++;
        return 0;
    }
    trace_stats_add(t->st, e);
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void read_lost(struct shmq_trace *skel, trace_stats_t *st)
{
    uint64_t lost[TRACE_KINDS] = {0};
    int fd = bpf_map__fd(skel->maps.lost);
    for (uint32_t k = 0; k < TRACE_KINDS; k++) {
        bpf_map_lookup_elem(fd, &k, &lost[k]);
    }
    trace_stats_set_lost(st, lost);
}

/* libbpf's own messages only with SHMQ_TRACE_DEBUG: a missing probe is not an error. */
static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_WARN || getenv("SHMQ_TRACE_DEBUG")) {
        return getenv("SHMQ_TRACE_DEBUG") ? vfprintf(stderr, fmt, ap) : 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},    {"binary", required_argument, NULL, 'b'},
        {"pid", required_argument, NULL, 'p'},      {"duration", required_argument, NULL, 'd'},
        {"interval", required_argument, NULL, 'i'}, {"top", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},           {"check", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *store = NULL;
    paths_t ps = {0};
    double duration = 0, interval = 0;
    int top = 10;
    bool json = false, check = false;
    int c;
    while ((c = getopt_long(argc, argv, "s:b:p:d:i:t:jch", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's':
            store = optarg;
            break;
        case 'b':
            if (access(optarg, R_OK) != 0) {
                fprintf(stderr, "shmq-trace: --binary %s: %s\n", optarg, strerror(errno));
                return EXIT_TRACE_USAGE;
            }
            paths_add(&ps, optarg);
            break;
        case 'p': {
            long pid = strtol(optarg, &end, 10);
            if (*end || pid <= 0) {
                fprintf(stderr, "shmq-trace: --pid %s: not a process id\n", optarg);
                return EXIT_TRACE_USAGE;
            }
            paths_of_pid(&ps, pid);
            break;
        }
        case 'd':
        case 'i': {
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v < 1e7)) {
                fprintf(stderr, "shmq-trace: --%s %s: not a number of seconds\n",
                        c == 'd' ? "duration" : "interval", optarg);
                return EXIT_TRACE_USAGE;
            }
            *(c == 'd' ? &duration : &interval) = v;
            break;
        }
        case 't':
            top = (int)strtol(optarg, &end, 10);
            if (*end || top < 0 || top > 1000) {
                fprintf(stderr, "shmq-trace: --top %s: 0 to 1000\n", optarg);
                return EXIT_TRACE_USAGE;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'c':
            check = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_TRACE_USAGE;
        }
    }
    if (optind != argc || (!check && !store && ps.n == 0)) {
        usage(stderr);
        return EXIT_TRACE_USAGE;
    }
    libbpf_set_print(quiet_print);
    struct shmq_trace *skel = shmq_trace__open_and_load();
    if (!skel) {
        fprintf(stderr,
                "shmq-trace: cannot load the BPF programs: %s (tracing needs root or "
                "CAP_BPF and CAP_PERFMON, and a kernel with BPF ring buffers and uprobes)\n",
                strerror(errno));
        return EXIT_TRACE_NOBPF;
    }
    if (check) {
        shmq_trace__destroy(skel);
        printf("shmq-trace: BPF programs load\n");
        return 0;
    }
    static owners_t own;
    if (store && paths_of_store(&ps, store, &own) < 0) {
        shmq_trace__destroy(skel);
        return EXIT_TRACE_FAIL;
    }
    struct bpf_link **links = NULL;
    size_t nlinks = 0;
    int files = attach_all(skel, &ps, &links, &nlinks);
    int rc = 0;
    trace_stats_t *st = trace_stats_new();
    struct ring_buffer *rb = NULL;
    if (files <= 0 || !st) {
        fprintf(stderr, "shmq-trace: no file with shmq probes to attach to%s\n",
                ps.n ? " (built without sys/sdt.h?)" : "");
        rc = EXIT_TRACE_FAIL;
        goto out;
    }
    tracer_t tr = {.st = st, .own = store ? &own : NULL};
    rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &tr, NULL);
    if (!rb) {
        fprintf(stderr, "shmq-trace: ring buffer: %s\n", strerror(errno));
        rc = EXIT_TRACE_FAIL;
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "shmq-trace: attached %zu probes in %d files; tracing\n", nlinks, files);
    uint64_t t0 = mono_ns(), next = t0 + (uint64_t)(interval * 1e9);
    while (!stopping) {
        int prc = ring_buffer__poll(rb, 100);
        if (prc < 0 && prc != -EINTR) {
            fprintf(stderr, "shmq-trace: ring buffer: %s\n", strerror(-prc));
            rc = EXIT_TRACE_FAIL;
            break;
        }
        uint64_t now = mono_ns();
        if (duration > 0 && now - t0 >= (uint64_t)(duration * 1e9)) {
            break;
        }
        if (interval > 0 && now >= next && !json) {
            read_lost(skel, st);
            trace_stats_print(st, stdout, now - t0, top);
            fflush(stdout);
            next = now + (uint64_t)(interval * 1e9);
        }
    }
    ring_buffer__consume(rb); /* what the programs handed over before the stop */
    read_lost(skel, st);
    uint64_t elapsed = mono_ns() - t0;
    if (json) {
        json_t *o = trace_stats_json(st, elapsed, top);
        json_object_set_new(o, "other_processes", json_integer((json_int_t)own.foreign));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(o);
    } else {
        trace_stats_print(st, stdout, elapsed, top);
        if (own.foreign) {
            printf("events of processes of other stores, left out: %llu\n",
                   (unsigned long long)own.foreign);
        }
    }
out:
    ring_buffer__free(rb);
    for (size_t i = 0; i < nlinks; i++) {
        bpf_link__destroy(links[i]);
    }
    free(links);
    trace_stats_free(st);
    shmq_trace__destroy(skel);
    for (size_t i = 0; i < ps.n; i++) {
        free(ps.p[i]);
    }
    return rc;
}
