/*
 * shmq-bench: measures a shmq store against this machine's limits.  This
 * header is shared by the tool's files only: the parsed command line, the
 * log-linear latency histogram, the shared-memory area through which the
 * producer and consumer processes report, the broker the tool starts (or
 * the running one it uses), the machine baseline and the report.
 *
 * Modes (one file each): produce.c (produce, e2e, writer-kill), consume.c,
 * group.c, recover.c, idle.c, failover.c.  Every mode fills one bench_report_t; main.c prints it
 * for people or as one JSON object, and plot.c draws its latency curve.
 */
#ifndef SHMQ_BENCH_H
#define SHMQ_BENCH_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "shm/ctl.h"

#define BENCH_TOPIC        "BenchTopic"
#define BENCH_MAX_PROCS    64
#define BENCH_MAX_SETS     32
#define BENCH_MAX_EXTRA    (BENCH_MAX_SETS + 8)  /* --set values a started shmqd gets beside */
#define BENCH_E2E_MAGIC    0x45324553484d5142ULL /* "BQMHSE2E": an e2e body's first 8 bytes */
#define BENCH_E2E_MIN_SIZE 16                    /* magic + send time */

/* ---- options --------------------------------------------------------------------------- */

typedef enum bench_mode {
    BENCH_PRODUCE,
    BENCH_CONSUME,
    BENCH_E2E,
    BENCH_RECOVER,
    BENCH_WRITER_KILL,
    BENCH_IDLE,
    BENCH_GROUP,
    BENCH_FAILOVER,
} bench_mode_t;

typedef struct bench_opts {
    bench_mode_t mode;
    const char *mode_name;
    const char *store;     /* --store: a running broker's store; NULL: start one */
    const char *tmpdir;    /* where a temporary store goes */
    const char *shmqd;     /* shmqd binary (default: next to shmq-bench) */
    const char *topic;     /* --topic */
    int producers;         /* --producers */
    int64_t size;          /* --size: body bytes */
    double seconds;        /* --seconds (0: use count) */
    int64_t count;         /* --count (0: use seconds) */
    int flush;             /* --flush: -1 unset, 0 async, 1 sync */
    int inflight;          /* --inflight: requests in flight per producer */
    int batch;             /* --batch: messages per shmq_send_batch call (1: none) */
    int64_t compress_over; /* --compress-over: producers' threshold (-1: their default, 4096) */
    double rate;           /* --rate: e2e messages per second (all producers) */
    int64_t store_bytes;   /* recover: CommitLog bytes to generate */
    int64_t tail_bytes;    /* recover: bytes appended after the last checkpoint */
    int queues;            /* recover, group: queues of the topic */
    int members;           /* group: --members, member processes of the group */
    int restarts;          /* recover: clean restarts timed */
    bool cold;             /* recover: drop the store's pages from the page cache first */
    int kills;             /* writer-kill, group: kills */
    int64_t kill_every_ms;
    bool json;
    const char *plot;                 /* --plot FILE.png */
    bool no_baseline;                 /* --no-baseline: skip the memcpy / fdatasync measurement */
    bool keep;                        /* --keep: leave the temporary store */
    bool no_check_crcs;               /* consume: --no-check-crcs (check.crcs=false) */
    int passes;                       /* consume: --passes, reads of the backlog (1) */
    bool slave;                       /* produce, e2e: --slave, the started broker gets a slave */
    bool strict;                      /* e2e: --strict, exit 3 when the rate was not offered */
    const char *gate;                 /* produce: --gate FILE, start when FILE is removed */
    const char *sets[BENCH_MAX_SETS]; /* --set KEY=VALUE for a started broker */
    int nsets;
    int64_t since_ms;   /* failover: --since-ms, wall-clock ms the times count from (0: start) */
    int64_t timeout_ms; /* failover: --timeout, how long to keep trying (60000) */
    int64_t retry_ms;   /* failover: --retry-ms, the pause after a refusal (2) */
} bench_opts_t;

/* ---- log-linear histogram ------------------------------------------------------------------ */

/*
 * Values (nanoseconds) below 64 have a bucket each; above, every power of two
 * is split into 32 equal buckets (relative error < 3.2 %).  Counts add up
 * across processes (bench_hist_merge).  Values above 2^47 ns are clamped.
 */
#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_HALF     (1 << (BENCH_HIST_SUB_BITS - 1))
#define BENCH_HIST_MAX_BIT  47
#define BENCH_HIST_BUCKETS  ((BENCH_HIST_MAX_BIT - BENCH_HIST_SUB_BITS + 3) * BENCH_HIST_HALF)

typedef struct bench_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist_t;

void bench_hist_init(bench_hist_t *h);
void bench_hist_add_n(bench_hist_t *h, uint64_t v, uint64_t n);

/* The bucket of v. */
static inline size_t bench_hist_index(uint64_t v)
{
    if (v >= (1ULL << BENCH_HIST_MAX_BIT)) {
        v = (1ULL << BENCH_HIST_MAX_BIT) - 1;
    }
    if (v < (1u << BENCH_HIST_SUB_BITS)) {
        return (size_t)v;
    }
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - BENCH_HIST_SUB_BITS + 1;
    /* v >> shift lies in [HALF, 2 * HALF): the linear bucket within the power of two. */
    return (size_t)shift * BENCH_HIST_HALF + (size_t)(v >> shift);
}

/* bench_hist_add_n(h, v, 1), inline: every single acknowledgement of shmq-bench produce. */
static inline void bench_hist_add1(bench_hist_t *h, uint64_t v)
{
    h->buckets[bench_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}
static inline void bench_hist_add(bench_hist_t *h, uint64_t v)
{
    bench_hist_add_n(h, v, 1);
}
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);
/* Value at quantile q (0..1): the highest value of the bucket holding it, at most max. */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);

/* ---- processes reporting through shared memory --------------------------------------------- */

/* What one producer or consumer process reports (single writer: that process). */
typedef struct bench_proc {
    _Atomic int state; /* 0 starting, 1 ready, 2 done, -1 failed */
    int64_t sent;
    int64_t acked;
    int64_t errors;
    int first_error;
    char error_text[160];
    int64_t end_ns;              /* monotonic ns of the last completion */
    _Atomic int64_t last_ack_ns; /* writer-kill: the latest acknowledgement */
    int64_t received;            /* e2e consumer: messages received */
    int64_t bytes;               /* body bytes acknowledged / received */
    bench_hist_t hist;           /* send (or send-to-receive) latency, ns */
} bench_proc_t;

typedef struct bench_shared {
    _Atomic int go;           /* the parent: 1 start, 2 stop now */
    int64_t start_ns;         /* the parent: common start (monotonic) */
    int64_t deadline_ns;      /* the parent: 0 none */
    int64_t e2e_expected;     /* e2e: messages the producers will send */
    _Atomic int64_t e2e_sent; /* e2e: producers' sends so far (the consumer stops after them) */
    int nprocs;
    bench_proc_t procs[];
} bench_shared_t;

bench_shared_t *bench_shared_create(int nprocs);
void bench_shared_free(bench_shared_t *s);

/* One producer process's plan (built by the parent before fork). */
struct async_req;
typedef struct bench_prod {
    const bench_opts_t *o;
    bench_shared_t *sh;
    bench_proc_t *me;
    const char *root;
    const char *topic;
    int32_t queue_id;  /* -1: round-robin */
    int64_t quota;     /* messages to send (INT64_MAX: until the deadline or stop) */
    int64_t period_ns; /* e2e: pace sends this far apart (0: as fast as possible) */
    int64_t phase_ns;  /* e2e: offset of this producer's schedule */
    bool e2e;          /* stamp magic and send time into each body */
    bool e2e_count;    /* count sends in sh->e2e_sent */
    /* the process's own state */
    struct async_req *free_reqs;
    int inflight;
} bench_prod_t;

void bench_prod_init(bench_prod_t *bp, const bench_opts_t *o, bench_shared_t *sh, int i,
                     const char *root);
/* Fork producer process bp (never returns in the child). */
pid_t bench_fork_producer(bench_prod_t *bp);
void bench_producer_main(bench_prod_t *bp) __attribute__((noreturn));
/* Wait until processes [0, n) are ready; -1 if one failed (its error printed). */
int bench_children_ready(bench_shared_t *sh, const pid_t *pids, int n);
/* Start them all now (deadline after seconds, 0: none). */
void bench_start(bench_shared_t *sh, double seconds);
void bench_children_reap(bench_shared_t *sh, pid_t *pids, int n);
/*
 * --gate FILE (produce): once the n producer processes are ready, write their pids (one a
 * line) into FILE and wait until FILE is removed, so that a measuring program (bench/cost)
 * can start counting in exactly these processes before the first send.  0 at once without
 * --gate; -1 when interrupted or after 600 s.
 */
int bench_gate(const bench_opts_t *o, const pid_t *pids, int n);
/* With --gate, in a producer process at the start signal: under callgrind
 * (--instr-atstart=no), switch counting on (callgrind_control cannot reach a forked child). */
void bench_gate_count_start(const bench_opts_t *o);
void bench_children_kill(pid_t *pids, int n);

/* ---- the broker ------------------------------------------------------------------------------ */

typedef struct bench_broker {
    char root[PATH_MAX]; /* the store root */
    char tmp[PATH_MAX];  /* temporary directory we created ("" when --store) */
    char log[PATH_MAX];  /* shmqd's stderr (started broker) */
    pid_t pid;           /* shmqd we started, 0 for a running one */
    bool started;
    int flush_sync;   /* the broker's flushDiskType: 1 SYNC_FLUSH */
    int64_t seg_size; /* mappedFileSizeCommitLog */
    int32_t max_message_size;
} bench_broker_t;

/* A fresh temporary directory under opts->tmpdir; its path in out. */
int bench_tmpdir(const bench_opts_t *o, const char *what, char *out, size_t len);
/* Remove a directory tree (ours). */
void bench_rmtree(const char *path);

/* Use the running broker of o->store, or start shmqd on a fresh store (extra --set too). */
int bench_broker_open(const bench_opts_t *o, const char *const *extra, int nextra,
                      bench_broker_t *b);
/* Start shmqd on root with the options' --set values; b->pid. Does not wait. */
int bench_broker_spawn(const bench_opts_t *o, const char *root, const char *const *extra,
                       int nextra, bench_broker_t *b);
/* Wait until the store runs with its three workers (timeout ms). */
int bench_broker_wait(bench_broker_t *b, int timeout_ms);
/* Stop the broker we started (SIGTERM, bounded wait); returns its exit status or -1. */
int bench_broker_stop(bench_broker_t *b);
/* Stop it and remove the temporary store (unless keep). */
void bench_broker_close(bench_broker_t *b, bool keep);
/* The pid of a worker role of the running store (0 if none). */
pid_t bench_broker_worker_pid(const bench_broker_t *b, int role);
/* Store counters: messages and record bytes stored so far. */
int bench_broker_counters(const bench_broker_t *b, uint64_t *msgs, uint64_t *bytes);

/* ---- a slave of the started broker (slave.c) ------------------------------------------------- */

typedef struct bench_slave {
    bench_broker_t b;   /* the slave's shmqd and store */
    char tmp[PATH_MAX]; /* its temporary directory: the store and the secret */
    char secret[PATH_MAX + 16];
    char set_secret[PATH_MAX + 32], set_ha_port[32], set_master[64];
    const char *master_sets[2]; /* --set values the master needs */
    int nmaster_sets;
    /* the sampler */
    shmq_ctl_t mctl, sctl;
    pthread_t sampler;
    bool sampling;
    _Atomic bool stop;
    bench_hist_t lag_bytes; /* master's wrote - slave's wrote, per sample */
    bench_hist_t lag_ns;    /* master's end at a sample to the slave's reaching it */
    int64_t unresolved;     /* master ends the slave had not reached when sampling stopped */
} bench_slave_t;

/* Its directory and secret, and the master's extra --set values (before the master starts). */
int bench_slave_prepare(const bench_opts_t *o, bench_slave_t *s);
/* Start the slave of master and wait until the master lists it in sync. */
int bench_slave_start(const bench_opts_t *o, const bench_broker_t *master, bench_slave_t *s);
/* The lag sampler, from the start of the load to its end (stop waits for the slave to catch
 * up, at most 30 s, then adds "replication" to r->extra). */
int bench_slave_sample_start(const bench_broker_t *master, bench_slave_t *s);
struct bench_report;
void bench_slave_sample_stop(bench_slave_t *s, struct bench_report *r);
/* Stop the slave and remove its directory (unless keep). */
void bench_slave_close(bench_slave_t *s, bool keep);
/* With --slave: prepare, open the master with its sets, start the slave; else open the
 * master.  On failure everything is closed. */
int bench_open_with_slave(const bench_opts_t *o, bench_broker_t *b, bench_slave_t *s);

/* ---- machine baseline -------------------------------------------------------------------------
 */

typedef struct bench_machine {
    bool measured;
    int nproc;
    char cpu[128];
    char kernel[128];
    char fs[64];                 /* filesystem type of the store's directory */
    double load1;                /* 1-minute load average before the run (others' work shows) */
    double memcpy_bytes_per_sec; /* large buffers */
    double fdatasync_p50_us;     /* 4 KiB write + fdatasync */
    double fdatasync_p99_us;
} bench_machine_t;

/* Describe the machine and (unless skip) measure memcpy and 4 KiB fdatasync in dir. */
void bench_machine_measure(const char *dir, bool skip, bench_machine_t *m);

/* ---- report ------------------------------------------------------------------------------------
 */

typedef struct bench_report {
    const char *mode;
    json_t *config; /* the configuration used (owned) */
    json_t *extra;  /* mode-specific figures (owned) */
    int64_t msgs;
    double seconds;
    double msgs_per_sec;
    double mb_per_sec;       /* body bytes (10^6) per second */
    double store_mb_per_sec; /* CommitLog record bytes per second (0 when not known) */
    int64_t errors;
    const char *latency_what; /* what the latency measures */
    bench_hist_t *hist;       /* owned */
    bench_machine_t machine;
    double frac_memcpy;    /* store (or read) bytes per second / memcpy bandwidth */
    double frac_fdatasync; /* fdatasync p50 / latency p50 (SYNC_FLUSH sends) */
    char note[512];
    bool rate_missed; /* e2e: the producers did not offer the requested rate */
} bench_report_t;

void bench_report_init(bench_report_t *r, const char *mode);
/* Add processes [from, to) into r: messages, errors, histogram; their last completion and bytes. */
void bench_sum(bench_shared_t *sh, int from, int to, bench_report_t *r, int64_t *end_ns,
               int64_t *bytes);
void bench_report_free(bench_report_t *r);
/* The configuration every mode shares (sizes, flush, processes). */
json_t *bench_config_json(const bench_opts_t *o, const bench_broker_t *b);

/* ---- modes
 * ---------------------------------------------------------------------------------------- */

int bench_produce(const bench_opts_t *o, bench_report_t *r);
int bench_e2e(const bench_opts_t *o, bench_report_t *r);
int bench_writer_kill(const bench_opts_t *o, bench_report_t *r);
int bench_consume(const bench_opts_t *o, bench_report_t *r);
int bench_recover(const bench_opts_t *o, bench_report_t *r);
int bench_idle(const bench_opts_t *o, bench_report_t *r);
int bench_group(const bench_opts_t *o, bench_report_t *r);
int bench_failover(const bench_opts_t *o, bench_report_t *r);

/* consume.c, for the modes that read a backlog: write o->count messages of o->size bytes to
 * o->topic (round robin over its queues) with one producer process, batches of 64; the
 * messages acknowledged, or -1 (the first error in note). */
int64_t bench_write_backlog(const bench_opts_t *o, const bench_broker_t *b, char *note,
                            size_t note_len);
/* Wait until the dispatcher caught up with the writer (units for every record). */
int bench_wait_dispatched(const bench_broker_t *b, int timeout_ms);

/* Draw the latency percentile curve of r into png with gnuplot. */
int bench_plot(const bench_report_t *r, const char *png);

/* ---- small helpers
 * ------------------------------------------------------------------------------- */

int64_t bench_now_ns(void);
/* Calibrate the fast clock (once, in the parent before any fork). */
void bench_clock_init(void);
/*
 * CLOCK_MONOTONIC nanoseconds read from the TSC: for per-message latency
 * stamps.  Inline (twice a message in the producer loop and its callback):
 * the rate and base bench_clock_init measured, CLOCK_MONOTONIC when it
 * could not (and on other architectures).
 */
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
extern double bench_tick_ns;
extern uint64_t bench_tick_base;
extern int64_t bench_tick_base_ns;

/* bench_fast_ns() once bench_fast_ready(): the TSC's reading, converted (inlined:
 * once per send and once per acknowledgement of shmq-bench produce). */
static inline __attribute__((always_inline)) int64_t bench_tsc_ns(void)
{
    return bench_tick_base_ns +
           (int64_t)((double)(int64_t)(__rdtsc() - bench_tick_base) * bench_tick_ns);
}

static inline bool bench_fast_ready(void)
{
    return bench_tick_ns > 0;
}

/* Inlined everywhere: shmq-bench produce reads it once per send. */
static inline __attribute__((always_inline)) int64_t bench_fast_ns(void)
{
    return __builtin_expect(bench_fast_ready(), 1) ? bench_tsc_ns() : bench_now_ns();
}
#else
static inline bool bench_fast_ready(void)
{
    return false;
}

static inline int64_t bench_tsc_ns(void)
{
    return bench_now_ns();
}

static inline int64_t bench_fast_ns(void)
{
    return bench_now_ns();
}
#endif
void bench_sleep_ns(int64_t ns);
/* Set by SIGINT/SIGTERM: stop the run early (results so far are reported). */
extern volatile int bench_interrupted;
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
