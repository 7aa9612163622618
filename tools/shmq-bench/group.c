/*
 * shmq-bench group: a consumer group of --members processes drains a
 * backlog, then loses members to kill -9.
 *
 * A producer process writes --count messages of --size bytes round robin
 * over the topic's queues (a started broker creates it with --queues
 * queues; with --store the topic is the store's) and the run waits until
 * the dispatcher indexed them.  Every message of the topic from each
 * queue's first offset to its max is the backlog.  The member processes
 * open consumers of one fresh group ("shmq-bench-<pid>", clustering) and
 * join it (shmq_consumer_queues) before the start; once the store has
 * divided the queues among them (every queue held, shares differing by one
 * at most, unchanged for 100 ms) the parent starts them together and they
 * call shmq_consumer_poll (SHMQ_PULL_MAX messages, 10 ms wait) until the
 * group has consumed the backlog.  The rate is the backlog over the time
 * from that start to the last message any member received.  Each member
 * marks every message's queue offset in a bitmap shared by all: a mark
 * found set is a duplicate, a mark left clear a message missed; the run
 * is exactly once when neither happened and the counts add up.
 *
 * Then, with the members idle (polls of 2 ms, shmq_consumer_queues after
 * each), the parent kills one member with SIGKILL (--kills times, a
 * different member each time, replaced by a new one and the division
 * awaited before the next kill) and measures the time from the kill until
 * the members left hold every queue of the topic, as they see it
 * (shmq_consumer_queues; queues being given back do not count).  That time
 * is the report's latency histogram; extra.rebalance_ms lists each one, and
 * extra.rebalance_exit_ms the part until the killed process was gone
 * (reaped: its memory unmapped and its connection closed by the kernel).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "shmq/consumer.h"

#define GROUP_DRAIN_WAIT_MS   10          /* a member's poll wait while draining */
#define GROUP_IDLE_WAIT_MS    2           /* and while idle: how often it looks at its queues */
#define GROUP_STABLE_NS       100000000LL /* a division unchanged this long is done */
#define GROUP_DIVIDE_LIMIT_NS (60LL * 1000000000)
#define GROUP_STALL_LIMIT_NS  (60LL * 1000000000) /* drain: no message this long, give up */

enum group_phase {
    GROUP_JOIN = 0,  /* members join and report their queues */
    GROUP_DRAIN = 1, /* members consume the backlog */
    GROUP_IDLE = 2,  /* members poll an idle topic (the kills) */
    GROUP_STOP = 3,  /* members close and exit */
};

/* What one member process reports (single writer: that member; the parent reads); each on
 * its own cache lines. */
typedef struct group_member {
    _Alignas(64) _Atomic int state; /* 0 starting, 1 joined, -1 failed */
    _Atomic int held;               /* queues of the topic it holds (shmq_consumer_queues) */
    _Atomic int64_t got;
    int64_t bytes;
    int64_t dups;    /* messages whose mark was already set */
    int64_t outside; /* messages outside the backlog's offsets */
    int64_t polls;
    _Atomic int64_t last_ns; /* monotonic ns of its last message */
    char error_text[160];
} group_member_t;

/* The area the parent and the members share (anonymous, mapped before the forks). */
typedef struct group_shared {
    _Atomic int phase;        /* the parent: enum group_phase */
    _Atomic int64_t consumed; /* backlog messages the members received, all together */
    group_member_t members[BENCH_MAX_PROCS];
} group_shared_t;

/* The run as each process knows it (built by the parent; the pointers survive fork). */
typedef struct group_run {
    const bench_opts_t *o;
    const char *root;
    char group[64];
    int nq;
    int64_t expected;        /* backlog messages */
    int64_t *qmin, *qmax;    /* per queue: the backlog's offsets [qmin, qmax) */
    int64_t *qword;          /* per queue: its first word in marks */
    _Atomic uint64_t *marks; /* one bit per backlog message (shared) */
    int64_t nwords;
    group_shared_t *sh; /* shared */
    size_t map_len;
    pid_t pids[BENCH_MAX_PROCS];
} group_run_t;

/* ---- a member process --------------------------------------------------------------------- */

/* The queues of the topic (not of the retry topic) this member holds now. */
static int member_held(group_run_t *g, shmq_consumer_t *c, shmq_queue_ref_t *refs, int cap)
{
    int n = shmq_consumer_queues(c, g->o->topic, NULL, refs, cap, NULL);
    if (n < 0) {
        return n;
    }
    int held = 0;
    for (int i = 0; i < n && i < cap; i++) {
        held += !refs[i].retry;
    }
    return held;
}

static void member_mark(group_run_t *g, group_member_t *me, const shmq_msg_view_t *v)
{
    int32_t q = v->queue_id;
    if (q < 0 || q >= g->nq || v->queue_offset < g->qmin[q] || v->queue_offset >= g->qmax[q]) {
        me->outside++;
        return;
    }
    int64_t idx = v->queue_offset - g->qmin[q];
    uint64_t bit = 1ULL << (idx % 64);
    /* Relaxed: the test needs only the atomic or; the parent's reads are ordered by the total. */
    uint64_t old =
        atomic_fetch_or_explicit(&g->marks[g->qword[q] + idx / 64], bit, memory_order_relaxed);
    if (old & bit) {
        me->dups++;
    }
}

static void member_fail(group_member_t *me, const char *what, int rc)
{
    const char *d = shmq_error_detail();
    snprintf(me->error_text, sizeof(me->error_text), "%s: %s", what, d[0] ? d : shmq_strerror(rc));
    /* Release: the error text is written before the state. */
    atomic_store_explicit(&me->state, -1, memory_order_release);
}

static void member_main(group_run_t *g, int i) __attribute__((noreturn));
static void member_main(group_run_t *g, int i)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no member outlives the run */
    group_member_t *me = &g->sh->members[i];
    int cap = g->nq + 64;
    shmq_queue_ref_t *refs = calloc((size_t)cap, sizeof(*refs));
    shmq_pull_result_t *res = malloc(sizeof(*res));
    shmq_consumer_t *c = NULL;
    int rc = refs && res ? shmq_consumer_open(g->root, g->group, &c) : -ENOMEM;
    if (rc < 0) {
        member_fail(me, "consumer open", rc);
        _exit(1);
    }
    shmq_consumer_set_check_crcs(c, !g->o->no_check_crcs);
    int64_t in_backlog = 0;
    for (;;) {
        /* Acquire: pairs with the parent's release (the offsets and marks it set before). */
        int phase = atomic_load_explicit(&g->sh->phase, memory_order_acquire);
        if (phase >= GROUP_STOP || bench_interrupted) {
            break;
        }
        if (phase == GROUP_DRAIN || phase == GROUP_IDLE) {
            int wait = phase == GROUP_DRAIN ? GROUP_DRAIN_WAIT_MS : GROUP_IDLE_WAIT_MS;
            rc = shmq_consumer_poll(c, g->o->topic, NULL, SHMQ_PULL_MAX, wait, res);
            if (rc < 0) {
                member_fail(me, "poll", rc);
                break;
            }
            me->polls++;
            if (res->status == SHMQ_PULL_FOUND && res->count > 0) {
                int64_t before = me->outside;
                for (size_t k = 0; k < res->count; k++) {
                    member_mark(g, me, &res->msgs[k]);
                    me->bytes += (int64_t)res->msgs[k].body_len;
                }
                int64_t mine = (int64_t)res->count - (me->outside - before);
                in_backlog += mine;
                /* Relaxed: counters the parent polls (ordered by the release below). */
                atomic_store_explicit(&me->got, in_backlog, memory_order_relaxed);
                atomic_store_explicit(&me->last_ns, bench_now_ns(), memory_order_relaxed);
                /* Release: the marks and counts above before the total that ends the drain. */
                atomic_fetch_add_explicit(&g->sh->consumed, mine, memory_order_release);
            }
        }
        int held = member_held(g, c, refs, cap);
        if (held < 0) {
            member_fail(me, "queues", held);
            break;
        }
        /* Relaxed: a count the parent polls. */
        atomic_store_explicit(&me->held, held, memory_order_relaxed);
        if (atomic_load_explicit(&me->state, memory_order_relaxed) == 0) {
            atomic_store_explicit(&me->state, 1, memory_order_release);
        }
        if (phase == GROUP_JOIN) {
            bench_sleep_ns(200000);
        }
    }
    /* The last batch is committed by one more poll (no wait). */
    if (atomic_load_explicit(&me->state, memory_order_relaxed) == 1) {
        shmq_consumer_poll(c, g->o->topic, NULL, 1, 0, res);
    }
    shmq_consumer_close(c);
    free(res);
    free(refs);
    _exit(atomic_load_explicit(&me->state, memory_order_relaxed) == 1 ? 0 : 1);
}

static int member_fork(group_run_t *g, int i)
{
    group_member_t *me = &g->sh->members[i];
    memset(me, 0, sizeof(*me));
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        member_main(g, i);
    }
    g->pids[i] = pid;
    return 0;
}

/* ---- the parent ------------------------------------------------------------------------------ */

/* A member that failed or ended: -1 with its error printed. */
static int members_alive(group_run_t *g)
{
    for (int i = 0; i < g->o->members; i++) {
        group_member_t *me = &g->sh->members[i];
        int status;
        bool ended = g->pids[i] > 0 && waitpid(g->pids[i], &status, WNOHANG) == g->pids[i];
        if (ended) {
            g->pids[i] = 0;
        }
        /* Acquire: the error text is written before the state. */
        if (ended || atomic_load_explicit(&me->state, memory_order_acquire) < 0) {
            bench_warn("member %d: %s", i, me->error_text[0] ? me->error_text : "ended");
            return -1;
        }
    }
    return 0;
}

/*
 * Whether the members in use (pids[i] > 0) hold every queue and are divided
 * averagely (shares differ by one at most, every one joined).
 */
static bool divided(group_run_t *g)
{
    int sum = 0, lo = INT32_MAX, hi = 0;
    for (int i = 0; i < g->o->members; i++) {
        if (g->pids[i] <= 0) {
            continue;
        }
        group_member_t *me = &g->sh->members[i];
        if (atomic_load_explicit(&me->state, memory_order_acquire) != 1) {
            return false;
        }
        int h = atomic_load_explicit(&me->held, memory_order_relaxed);
        sum += h;
        lo = h < lo ? h : lo;
        hi = h > hi ? h : hi;
    }
    return sum == g->nq && hi - lo <= 1;
}

/* Wait until the division holds for GROUP_STABLE_NS; the time it was first reached, or -1. */
static int64_t wait_divided(group_run_t *g, int64_t limit_ns)
{
    int64_t since = 0;
    while (!bench_interrupted && bench_now_ns() < limit_ns) {
        if (members_alive(g) < 0) {
            return -1;
        }
        int64_t now = bench_now_ns();
        if (!divided(g)) {
            since = 0;
        } else if (since == 0) {
            since = now;
        } else if (now - since >= GROUP_STABLE_NS) {
            return since;
        }
        bench_sleep_ns(200000);
    }
    if (!bench_interrupted) {
        bench_warn("the group's queues were not divided among its members in time");
    }
    return -1;
}

/* The backlog's offsets per queue, from a consumer outside the group. */
static int backlog_offsets(group_run_t *g)
{
    shmq_consumer_t *c;
    int rc = shmq_consumer_open(g->root, NULL, &c);
    if (rc < 0) {
        bench_warn("consumer open: %s", shmq_error_detail());
        return rc;
    }
    int nq = shmq_topic_queue_count(c, g->o->topic);
    if (nq <= 0) {
        bench_warn("topic %s: no queues (%s)", g->o->topic, shmq_strerror(nq));
        shmq_consumer_close(c);
        return nq < 0 ? nq : -ENOENT;
    }
    g->nq = nq;
    g->qmin = calloc((size_t)nq * 3, sizeof(int64_t));
    if (g->qmin == NULL) {
        shmq_consumer_close(c);
        return -ENOMEM;
    }
    g->qmax = g->qmin + nq;
    g->qword = g->qmax + nq;
    for (int q = 0; q < nq; q++) {
        if (shmq_queue_offsets(c, g->o->topic, q, &g->qmin[q], &g->qmax[q]) < 0) {
            g->qmin[q] = g->qmax[q] = 0;
        }
        g->qword[q] = g->nwords;
        g->nwords += (g->qmax[q] - g->qmin[q] + 63) / 64;
        g->expected += g->qmax[q] - g->qmin[q];
    }
    shmq_consumer_close(c);
    return 0;
}

static int map_shared(group_run_t *g)
{
    size_t head = (sizeof(group_shared_t) + 63) & ~(size_t)63;
    g->map_len = head + (size_t)g->nwords * sizeof(uint64_t);
    void *p = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return -errno;
    }
    g->sh = p;
    g->marks = (_Atomic uint64_t *)((char *)p + head);
    return 0;
}

/* Members left: stop them (bounded), then kill what did not go. */
static void members_stop(group_run_t *g)
{
    atomic_store_explicit(&g->sh->phase, GROUP_STOP, memory_order_release);
    int64_t limit = bench_now_ns() + 10LL * 1000000000;
    for (int i = 0; i < g->o->members; i++) {
        while (g->pids[i] > 0) {
            int status;
            pid_t w = waitpid(g->pids[i], &status, WNOHANG);
            if (w == g->pids[i] || (w < 0 && errno != EINTR)) {
                g->pids[i] = 0;
            } else if (bench_now_ns() > limit) {
                kill(g->pids[i], SIGKILL);
                waitpid(g->pids[i], &status, 0);
                g->pids[i] = 0;
            } else {
                bench_sleep_ns(1000000);
            }
        }
    }
}

/* Drain: start the members; wait until the backlog is consumed. 0, or -1. */
static int drain(group_run_t *g, int64_t *start_ns, int64_t *end_ns)
{
    *start_ns = bench_now_ns();
    /* Release: the members read the offsets and marks only after this. */
    atomic_store_explicit(&g->sh->phase, GROUP_DRAIN, memory_order_release);
    int64_t seen = 0, progress_ns = *start_ns;
    while (!bench_interrupted) {
        /* Acquire: the members' marks and counts are complete up to the total read. */
        int64_t c = atomic_load_explicit(&g->sh->consumed, memory_order_acquire);
        if (c >= g->expected) {
            break;
        }
        int64_t now = bench_now_ns();
        if (c != seen) {
            seen = c;
            progress_ns = now;
        } else if (now - progress_ns > GROUP_STALL_LIMIT_NS) {
            bench_warn("the group stopped consuming at %lld of %lld messages", (long long)c,
                       (long long)g->expected);
            return -1;
        }
        if (members_alive(g) < 0) {
            return -1;
        }
        bench_sleep_ns(200000);
    }
    *end_ns = *start_ns;
    for (int i = 0; i < g->o->members; i++) {
        int64_t t = atomic_load_explicit(&g->sh->members[i].last_ns, memory_order_relaxed);
        *end_ns = t > *end_ns ? t : *end_ns;
    }
    atomic_store_explicit(&g->sh->phase, GROUP_IDLE, memory_order_release);
    return bench_interrupted ? -1 : 0;
}

/*
 * The kills: each one's time in ms into times, and into exits the part until the killed
 * process was gone (waitpid: the kernel has unmapped its memory and closed its connection,
 * which is when the master learns of it); the number measured.
 */
static int rebalances(group_run_t *g, bench_report_t *r, double *times, double *exits,
                      int *timeouts)
{
    const bench_opts_t *o = g->o;
    int done = 0;
    *timeouts = 0;
    for (int k = 0; k < o->kills && !bench_interrupted; k++) {
        if (wait_divided(g, bench_now_ns() + GROUP_DIVIDE_LIMIT_NS) < 0) {
            break;
        }
        /* A different member each time, one that holds a queue (more members than queues). */
        int v = k % o->members;
        for (int j = 0; j < o->members; j++) {
            int cand = (k + j) % o->members;
            if (atomic_load_explicit(&g->sh->members[cand].held, memory_order_relaxed) > 0) {
                v = cand;
                break;
            }
        }
        int64_t t0 = bench_now_ns();
        kill(g->pids[v], SIGKILL);
        waitpid(g->pids[v], NULL, 0);
        int64_t gone = bench_now_ns();
        g->pids[v] = 0;
        int64_t t1 = wait_divided(g, t0 + 30LL * 1000000000);
        if (t1 < 0) {
            if (bench_interrupted || members_alive(g) < 0) {
                break;
            }
            (*timeouts)++;
        } else {
            bench_hist_add(r->hist, (uint64_t)(t1 - t0));
            exits[done] = (double)(gone - t0) / 1e6;
            times[done++] = (double)(t1 - t0) / 1e6;
        }
        /* A new member in its place, for the next kill. */
        if (member_fork(g, v) < 0) {
            bench_warn("fork: %s", strerror(errno));
            break;
        }
    }
    return done;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts v). */
static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Exactly once: every mark set once (the counts add up, no duplicate, none missing). */
static void check_marks(group_run_t *g, const int64_t *got, bench_report_t *r, json_t *x)
{
    int64_t set = 0, dups = 0, outside = 0, sum = 0;
    for (int q = 0; q < g->nq; q++) {
        int64_t n = g->qmax[q] - g->qmin[q];
        for (int64_t w = 0; w < (n + 63) / 64; w++) {
            uint64_t m = atomic_load_explicit(&g->marks[g->qword[q] + w], memory_order_relaxed);
            if (w == n / 64) {
                m &= (1ULL << (n % 64)) - 1; /* the bits past the queue's end */
            }
            set += __builtin_popcountll(m);
        }
    }
    json_t *per = json_array();
    for (int i = 0; i < g->o->members; i++) {
        dups += g->sh->members[i].dups;
        outside += g->sh->members[i].outside;
        sum += got[i];
        json_array_append_new(per, json_integer(got[i]));
    }
    bool once = set == g->expected && dups == 0 && sum == g->expected;
    json_object_set_new(x, "per_member", per);
    json_object_set_new(x, "duplicates", json_integer(dups));
    json_object_set_new(x, "missing", json_integer(g->expected - set));
    json_object_set_new(x, "outside_backlog", json_integer(outside));
    json_object_set_new(x, "exactly_once", json_boolean(once));
    if (!once) {
        r->errors += dups + (g->expected - set);
        snprintf(r->note, sizeof(r->note),
                 "NOT exactly once: %lld received, %lld duplicates, %lld missing of %lld",
                 (long long)sum, (long long)dups, (long long)(g->expected - set),
                 (long long)g->expected);
    }
}

int bench_group(const bench_opts_t *o, bench_report_t *r)
{
    char qset[48];
    snprintf(qset, sizeof(qset), "defaultTopicQueueNums=%d", o->queues);
    const char *extra[] = {qset};
    bench_broker_t b;
    int rc = bench_broker_open(o, extra, 1, &b);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, o->no_baseline, &r->machine);
    r->config = bench_config_json(o, &b);
    r->extra = json_object();
    group_run_t g;
    memset(&g, 0, sizeof(g));
    g.o = o;
    g.root = b.root;
    snprintf(g.group, sizeof(g.group), "shmq-bench-%d", (int)getpid());
    int64_t t0 = bench_now_ns();
    int64_t written = bench_write_backlog(o, &b, r->note, sizeof(r->note));
    if (written < 0 || (rc = bench_wait_dispatched(&b, 120000)) < 0 ||
        (rc = backlog_offsets(&g)) < 0 || (rc = map_shared(&g)) < 0) {
        if (written >= 0) {
            bench_warn("the backlog: %s", shmq_strerror(rc));
        }
        free(g.qmin);
        bench_broker_close(&b, o->keep);
        return -1;
    }
    json_object_set_new(r->extra, "backlog_written", json_integer(written));
    json_object_set_new(r->extra, "backlog_write_seconds",
                        json_real((double)(bench_now_ns() - t0) / 1e9));
    json_object_set_new(r->config, "members", json_integer(o->members));
    json_object_set_new(r->config, "queues", json_integer(g.nq));
    json_object_set_new(r->config, "kills", json_integer(o->members > 1 ? o->kills : 0));
    json_object_set_new(r->config, "group", json_string(g.group));
    json_object_set_new(r->extra, "backlog", json_integer(g.expected));

    rc = 0;
    for (int i = 0; i < o->members && rc == 0; i++) {
        rc = member_fork(&g, i);
    }
    int64_t j0 = bench_now_ns(), start_ns = 0, end_ns = 0;
    if (rc == 0 && wait_divided(&g, j0 + GROUP_DIVIDE_LIMIT_NS) < 0) {
        rc = -1;
    }
    if (rc == 0) {
        json_object_set_new(r->extra, "join_seconds",
                            json_real((double)(bench_now_ns() - j0) / 1e9));
        rc = drain(&g, &start_ns, &end_ns);
    }
    int64_t got[BENCH_MAX_PROCS] = {0}, bytes = 0;
    for (int i = 0; i < o->members; i++) {
        got[i] = atomic_load_explicit(&g.sh->members[i].got, memory_order_relaxed);
        bytes += g.sh->members[i].bytes;
        r->msgs += got[i];
    }
    r->seconds = (double)(end_ns - start_ns) / 1e9;
    if (rc == 0 && r->seconds > 0) {
        r->msgs_per_sec = (double)r->msgs / r->seconds;
        r->mb_per_sec = (double)bytes / r->seconds / 1e6;
    }
    double *times = calloc((size_t)o->kills * 2, sizeof(double)), *exits = times + o->kills;
    int ntimes = 0, timeouts = 0;
    if (rc == 0 && times == NULL) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        /* A message delivered twice could come after the total was reached: give it time. */
        bench_sleep_ns(50000000);
        check_marks(&g, got, r, r->extra);
        if (o->members > 1) {
            ntimes = rebalances(&g, r, times, exits, &timeouts);
        }
    }
    members_stop(&g);
    r->latency_what = "kill -9 of a member to the others holding every queue";
    json_t *rt = json_array(), *ex = json_array();
    for (int i = 0; i < ntimes; i++) {
        json_array_append_new(rt, json_real(times[i]));
        json_array_append_new(ex, json_real(exits[i]));
    }
    json_object_set_new(r->extra, "rebalance_ms", rt);
    json_object_set_new(r->extra, "rebalance_exit_ms", ex);
    if (ntimes > 0) {
        json_object_set_new(r->extra, "rebalance_ms_median", json_real(median_of(times, ntimes)));
        json_object_set_new(r->extra, "rebalance_ms_max", json_real(times[ntimes - 1]));
        json_object_set_new(r->extra, "rebalance_exit_ms_median",
                            json_real(median_of(exits, ntimes)));
    }
    free(times);
    json_object_set_new(r->extra, "rebalance_timeouts", json_integer(timeouts));
    munmap(g.sh, g.map_len);
    free(g.qmin);
    bench_broker_close(&b, o->keep);
    return rc;
}
