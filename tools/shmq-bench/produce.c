/*
 * shmq-bench produce and writer-kill: producer processes (forked, one
 * producer handle each) sending fixed-size messages through the producer
 * API, one at a time (shmq_send), with up to --inflight requests in flight
 * (shmq_send_async), or in batches (shmq_send_batch).  Each process records
 * every send's latency (call to acknowledgement) in its histogram in shared
 * memory; the parent starts them together, waits, merges.
 *
 * writer-kill: the same load, one-by-one sends; the parent kills the writer
 * with SIGKILL every --kill-every ms and measures how long after each kill
 * the next acknowledgement comes (any producer).
 *
 * The producer loop is shared with e2e (e2e.c): there the body carries the
 * send time and the sends are paced to --rate.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"
#include "shmq/producer.h"

void bench_prod_init(bench_prod_t *bp, const bench_opts_t *o, bench_shared_t *sh, int i,
                     const char *root)
{
    memset(bp, 0, sizeof(*bp));
    bp->o = o;
    bp->sh = sh;
    bp->me = &sh->procs[i];
    bp->root = root;
    bp->topic = o->topic;
    bp->queue_id = -1;
    bp->quota = INT64_MAX;
}

/* ---- the producer process --------------------------------------------------------------- */

typedef struct async_req {
    bench_prod_t *bp;
    int64_t send_ns;
    int64_t n;
    struct async_req *next_free;
} async_req_t;

/* A failed request (rare): counted, and the first error's text kept. */
static __attribute__((noinline, cold)) void record_error(bench_proc_t *me, int err, int64_t n)
{
    me->errors += n;
    if (me->first_error == 0) {
        me->first_error = err;
        snprintf(me->error_text, sizeof(me->error_text), "%s",
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(err));
    }
}

/* On every acknowledgement: inline, the error's formatting kept out of its way. */
static inline void record_ack(bench_prod_t *bp, int err, int64_t send_ns, int64_t n)
{
    bench_proc_t *me = bp->me;
    int64_t now = bench_fast_ns();
    if (__builtin_expect(err == 0, 1)) {
        me->acked += n;
        me->bytes += n * bp->o->size;
        if (n == 1) {
            bench_hist_add1(&me->hist, (uint64_t)(now - send_ns));
        } else {
            bench_hist_add_n(&me->hist, (uint64_t)(now - send_ns), (uint64_t)n);
        }
        me->end_ns = now;
        /* Relaxed: the parent polls it for the writer-kill gap; one stale read costs 200 us. */
        atomic_store_explicit(&me->last_ack_ns, now, memory_order_relaxed);
    } else {
        record_error(me, err, n);
    }
}

/* on_async_done's record_ack() of anything but one message stored OK, timed by the TSC. */
static __attribute__((noinline)) void record_async_ack(bench_prod_t *bp, int err,
                                                       const shmq_send_result_t *res,
                                                       int64_t send_ns, int64_t n)
{
    if (err == 0 && res->status != SHMQ_SEND_OK) {
        err = -ETIMEDOUT; /* FLUSH_DISK_TIMEOUT: stored, not flushed in time */
    }
    record_ack(bp, err, send_ns, n);
}

/*
 * The usual acknowledgement (one message, stored OK, the TSC calibrated)
 * recorded as record_ack() does, without a call: the callback then needs
 * no registers saved (it runs for every message, inside the measurement).
 */
static void on_async_done(void *arg, int err, const shmq_send_result_t *res)
{
    async_req_t *q = arg;
    bench_prod_t *bp = q->bp;
    if (__builtin_expect(err == 0 && res->status == SHMQ_SEND_OK && q->n == 1 && bench_fast_ready(),
                         1)) {
        bench_proc_t *me = bp->me;
        int64_t now = bench_tsc_ns();
        me->acked++;
        me->bytes += bp->o->size;
        bench_hist_add1(&me->hist, (uint64_t)(now - q->send_ns));
        me->end_ns = now;
        /* Relaxed: as in record_ack. */
        atomic_store_explicit(&me->last_ack_ns, now, memory_order_relaxed);
    } else {
        record_async_ack(bp, err, res, q->send_ns, q->n);
    }
    q->next_free = bp->free_reqs;
    bp->free_reqs = q;
    bp->inflight--;
}

/* Wait for the parent's start signal; false if told to stop. */
static bool wait_go(bench_shared_t *sh)
{
    int64_t limit = bench_now_ns() + 120LL * 1000000000;
    for (;;) {
        /* Acquire: start_ns and deadline_ns are written before go. */
        int go = atomic_load_explicit(&sh->go, memory_order_acquire);
        if (go == 1) {
            return true;
        }
        if (go == 2 || bench_interrupted || bench_now_ns() > limit) {
            return false;
        }
        bench_sleep_ns(100000);
    }
}

static inline __attribute__((always_inline)) bool keep_going(const bench_prod_t *bp, int64_t now)
{
    bench_shared_t *sh = bp->sh;
    if (bench_interrupted || atomic_load_explicit(&sh->go, memory_order_relaxed) == 2) {
        return false;
    }
    if (bp->me->sent >= bp->quota) {
        return false;
    }
    return sh->deadline_ns == 0 || now < sh->deadline_ns;
}

/* e2e: sleep until the next send is due (no catching up beyond the schedule). */
static void pace(bench_prod_t *bp, int64_t *now)
{
    if (bp->period_ns <= 0) {
        return;
    }
    int64_t due = bp->sh->start_ns + bp->phase_ns + bp->me->sent * bp->period_ns;
    if (*now < due) {
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        *now = bench_fast_ns();
    }
}

static void stamp(bench_prod_t *bp, uint8_t *body, int64_t now)
{
    if (bp->e2e) {
        uint64_t magic = BENCH_E2E_MAGIC;
        memcpy(body, &magic, 8);
        memcpy(body + 8, &now, 8);
    }
}

/* A send that failed at once: counted, its request back in the free list. */
static __attribute__((noinline, cold)) void async_send_failed(bench_prod_t *bp, async_req_t *q,
                                                              int rc)
{
    record_ack(bp, rc, q->send_ns, 1);
    q->next_free = bp->free_reqs;
    bp->free_reqs = q;
}

/* A free request for one message sent at *now (read again after a wait for one), or NULL when
 * the run was interrupted while waiting. */
static inline __attribute__((always_inline)) async_req_t *take_req(bench_prod_t *bp,
                                                                   shmq_producer_t *p, int64_t *now)
{
    if (bp->free_reqs == NULL) {
        while (bp->free_reqs == NULL && !bench_interrupted) {
            shmq_producer_poll(p, 100);
        }
        if (bp->free_reqs == NULL) {
            return NULL;
        }
        *now = bench_fast_ns(); /* after the wait for a request */
    }
    async_req_t *q = bp->free_reqs;
    bp->free_reqs = q->next_free;
    q->n = 1;
    q->send_ns = *now;
    return q;
}

/*
 * run_loop's asynchronous sends (--inflight K > 1) of one message at a time,
 * neither paced nor stamped (produce, not e2e): the same steps, without the
 * other modes' tests on every send (the loop runs inside the measurement).
 */
static void run_async(bench_prod_t *bp, shmq_producer_t *p, const shmq_message_t *m, int64_t now)
{
    bench_proc_t *me = bp->me;
    while (keep_going(bp, now)) {
        async_req_t *q = take_req(bp, p, &now);
        if (q == NULL) {
            break;
        }
        int rc = shmq_send_async(p, m, on_async_done, q);
        me->sent++;
        if (__builtin_expect(rc < 0, 0)) {
            async_send_failed(bp, q, rc);
        } else {
            bp->inflight++;
        }
        now = bench_fast_ns();
    }
}

static int run_loop(bench_prod_t *bp, shmq_producer_t *p)
{
    const bench_opts_t *o = bp->o;
    bench_proc_t *me = bp->me;
    uint8_t *body = calloc(1, (size_t)o->size + 1);
    int k = o->batch > 1 ? o->batch : 1;
    shmq_message_t *msgs = calloc((size_t)k, sizeof(*msgs));
    shmq_send_result_t *res = calloc((size_t)k, sizeof(*res));
    async_req_t *reqs = calloc((size_t)(o->inflight > 0 ? o->inflight : 1), sizeof(*reqs));
    if (!body || !msgs || !res || !reqs) {
        free(body);
        free(msgs);
        free(res);
        free(reqs);
        return -ENOMEM;
    }
    for (int64_t i = 0; i < o->size; i++) {
        body[i] = (uint8_t)('a' + i % 26);
    }
    for (int i = 0; i < k; i++) {
        shmq_message_init(&msgs[i], bp->topic, body, (size_t)o->size);
        msgs[i].queue_id = bp->queue_id;
    }
    for (int i = 0; i < o->inflight; i++) {
        reqs[i].bp = bp;
        reqs[i].next_free = bp->free_reqs;
        bp->free_reqs = &reqs[i];
    }
    /* now: read once per send, at the end of the previous one (or after a wait): the
     * time keep_going and pace judge by and the send's start for its latency. */
    int64_t now = bench_fast_ns();
    bool plain_async =
        o->batch <= 1 && o->inflight > 1 && bp->period_ns <= 0 && !bp->e2e && !bp->e2e_count;
    if (plain_async) {
        run_async(bp, p, &msgs[0], now);
    }
    while (!plain_async && keep_going(bp, now)) {
        pace(bp, &now);
        if (o->batch > 1) {
            int64_t n = bp->quota - me->sent < k ? bp->quota - me->sent : k;
            int64_t t0 = now;
            int rc = shmq_send_batch(p, msgs, (size_t)n, res);
            me->sent += n;
            record_ack(bp, rc == 0 && res[0].status != SHMQ_SEND_OK ? -ETIMEDOUT : rc, t0, n);
        } else if (o->inflight <= 1) {
            int64_t t0 = now;
            stamp(bp, body, t0);
            shmq_send_result_t r1;
            int rc = shmq_send(p, &msgs[0], &r1);
            me->sent++;
            record_ack(bp, rc == 0 && r1.status != SHMQ_SEND_OK ? -ETIMEDOUT : rc, t0, 1);
        } else {
            async_req_t *q = take_req(bp, p, &now);
            if (q == NULL) {
                break;
            }
            stamp(bp, body, q->send_ns);
            int rc = shmq_send_async(p, &msgs[0], on_async_done, q);
            me->sent++;
            if (rc < 0) {
                record_ack(bp, rc, q->send_ns, 1);
                q->next_free = bp->free_reqs;
                bp->free_reqs = q;
            } else {
                bp->inflight++;
            }
        }
        if (bp->e2e_count) {
            /* Relaxed: a running total the e2e consumer compares with what it received. */
            atomic_fetch_add_explicit(&bp->sh->e2e_sent, 1, memory_order_relaxed);
        }
        now = bench_fast_ns();
    }
    if (bp->inflight > 0) {
        shmq_producer_flush(p, 30000);
    }
    free(body);
    free(msgs);
    free(res);
    free(reqs);
    return 0;
}

void bench_producer_main(bench_prod_t *bp)
{
    bench_proc_t *me = bp->me;
    if (bp->period_ns > 0) {
        prctl(PR_SET_TIMERSLACK, 1000UL); /* pacing needs fine sleeps */
    }
    shmq_producer_options_t po = {.send_timeout_ms = 10000, .attach_timeout_ms = 10000};
    shmq_producer_t *p = NULL;
    int rc = shmq_producer_open(bp->root, &po, &p);
    if (rc < 0) {
        me->first_error = rc;
        snprintf(me->error_text, sizeof(me->error_text), "producer open: %s",
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        /* Release: the error text is written before the state. */
        atomic_store_explicit(&me->state, -1, memory_order_release);
        _exit(1);
    }
    if (bp->o->compress_over >= 0) {
        shmq_producer_set_compress_over(p, bp->o->compress_over);
    }
    atomic_store_explicit(&me->state, 1, memory_order_release);
    if (wait_go(bp->sh)) {
        bench_gate_count_start(bp->o);
        rc = run_loop(bp, p);
    }
    shmq_producer_close(p);
    atomic_store_explicit(&me->state, rc < 0 ? -1 : 2, memory_order_release);
    _exit(rc < 0 ? 1 : 0);
}

/* ---- the parent ------------------------------------------------------------------------------ */

int bench_children_ready(bench_shared_t *sh, const pid_t *pids, int n)
{
    int64_t limit = bench_now_ns() + 60LL * 1000000000;
    for (;;) {
        int ready = 0;
        for (int i = 0; i < n; i++) {
            int st = atomic_load_explicit(&sh->procs[i].state, memory_order_acquire);
            if (st < 0) {
                bench_warn("process %d: %s", i, sh->procs[i].error_text);
                return -1;
            }
            ready += st >= 1;
        }
        if (ready == n) {
            return 0;
        }
        for (int i = 0; i < n; i++) {
            int status;
            if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
                bench_warn("process %d ended before starting: %s", i,
                           sh->procs[i].error_text[0] ? sh->procs[i].error_text : "no reason");
                return -1;
            }
        }
        if (bench_interrupted || bench_now_ns() > limit) {
            bench_warn("the benchmark's processes did not get ready");
            return -1;
        }
        bench_sleep_ns(1000000);
    }
}

void bench_children_reap(bench_shared_t *sh, pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        if (pids[i] <= 0) {
            continue;
        }
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
            if (bench_interrupted) {
                atomic_store_explicit(&sh->go, 2, memory_order_release);
            }
        }
        pids[i] = 0;
    }
}

void bench_children_kill(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    }
}

pid_t bench_fork_producer(bench_prod_t *bp)
{
    pid_t pid = fork();
    if (pid == 0) {
        bench_producer_main(bp);
    }
    return pid;
}

void bench_start(bench_shared_t *sh, double seconds)
{
    sh->start_ns = bench_now_ns() + 1000000;
    sh->deadline_ns = seconds > 0 ? sh->start_ns + (int64_t)(seconds * 1e9) : 0;
    /* Release: start_ns and deadline_ns before go. */
    atomic_store_explicit(&sh->go, 1, memory_order_release);
}

/* Sum the processes [from, to) into r (msgs, errors, histogram, end time). */
void bench_sum(bench_shared_t *sh, int from, int to, bench_report_t *r, int64_t *end_ns,
               int64_t *bytes)
{
    *end_ns = sh->start_ns;
    *bytes = 0;
    for (int i = from; i < to; i++) {
        bench_proc_t *pr = &sh->procs[i];
        r->msgs += pr->acked;
        r->errors += pr->errors + (pr->sent - pr->acked - pr->errors);
        *bytes += pr->bytes;
        bench_hist_merge(r->hist, &pr->hist);
        if (pr->end_ns > *end_ns) {
            *end_ns = pr->end_ns;
        }
        if (pr->first_error && r->note[0] == '\0') {
            snprintf(r->note, sizeof(r->note), "first error (process %d): %s", i, pr->error_text);
        }
    }
}

/* Fill the quota of producer i: --count split evenly, else unbounded (deadline). */
static int64_t quota_of(const bench_opts_t *o, int i)
{
    if (o->count <= 0) {
        return INT64_MAX;
    }
    int64_t q = o->count / o->producers;
    return q + (i < o->count % o->producers ? 1 : 0);
}

int bench_produce(const bench_opts_t *o, bench_report_t *r)
{
    bench_broker_t b;
    bench_slave_t sl;
    int rc = bench_open_with_slave(o, &b, &sl);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, o->no_baseline, &r->machine);
    r->config = bench_config_json(o, &b);
    bench_shared_t *sh = bench_shared_create(o->producers);
    pid_t pids[BENCH_MAX_PROCS] = {0};
    bench_prod_t bps[BENCH_MAX_PROCS];
    if (!sh) {
        bench_slave_close(&sl, o->keep);
        bench_broker_close(&b, o->keep);
        return -ENOMEM;
    }
    for (int i = 0; i < o->producers; i++) {
        bench_prod_init(&bps[i], o, sh, i, b.root);
        bps[i].quota = quota_of(o, i);
        pids[i] = bench_fork_producer(&bps[i]);
    }
    rc = bench_children_ready(sh, pids, o->producers);
    if (rc == 0) {
        rc = bench_gate(o, pids, o->producers);
    }
    if (rc == 0 && o->slave) {
        rc = bench_slave_sample_start(&b, &sl);
    }
    uint64_t m0 = 0, by0 = 0, m1 = 0, by1 = 0;
    if (rc == 0) {
        bench_broker_counters(&b, &m0, &by0);
        bench_start(sh, o->count > 0 ? 0 : o->seconds);
        bench_children_reap(sh, pids, o->producers);
        bench_broker_counters(&b, &m1, &by1);
        bench_slave_sample_stop(&sl, r);
        int64_t end_ns, bytes;
        bench_sum(sh, 0, o->producers, r, &end_ns, &bytes);
        r->seconds = (double)(end_ns - sh->start_ns) / 1e9;
        if (r->seconds > 0) {
            r->msgs_per_sec = (double)r->msgs / r->seconds;
            r->mb_per_sec = (double)bytes / r->seconds / 1e6;
            r->store_mb_per_sec = (double)(by1 - by0) / r->seconds / 1e6;
        }
        /* What the bodies cost on disk (a compressed body stores fewer bytes). */
        if (r->extra == NULL) {
            r->extra = json_object();
        }
        json_object_set_new(r->extra, "commitlog_bytes", json_integer((json_int_t)(by1 - by0)));
        json_object_set_new(r->extra, "commitlog_bytes_per_msg",
                            json_real(r->msgs > 0 ? (double)(by1 - by0) / (double)r->msgs : 0));
        r->latency_what = o->batch > 1 ? "shmq_send_batch call to its return (per message)"
                                       : "send call to acknowledgement";
        if (r->machine.measured && r->machine.memcpy_bytes_per_sec > 0) {
            r->frac_memcpy = r->store_mb_per_sec * 1e6 / r->machine.memcpy_bytes_per_sec;
        }
        double p50 = (double)bench_hist_quantile(r->hist, 0.5) / 1000.0;
        if (b.flush_sync && r->machine.measured && p50 > 0) {
            r->frac_fdatasync = r->machine.fdatasync_p50_us / p50;
        }
    } else {
        bench_children_kill(pids, o->producers);
        rc = -1;
    }
    bench_shared_free(sh);
    bench_slave_close(&sl, o->keep);
    bench_broker_close(&b, o->keep);
    return rc;
}

/* ---- writer-kill ------------------------------------------------------------------------------
 */

static int64_t latest_ack(bench_shared_t *sh, int n)
{
    int64_t best = 0;
    for (int i = 0; i < n; i++) {
        /* Relaxed: see record_ack. */
        int64_t v = atomic_load_explicit(&sh->procs[i].last_ack_ns, memory_order_relaxed);
        best = v > best ? v : best;
    }
    return best;
}

static pid_t wait_writer(const bench_broker_t *b, int64_t limit_ns)
{
    while (!bench_interrupted && bench_now_ns() < limit_ns) {
        pid_t pid = bench_broker_worker_pid(b, SHMQ_ROLE_WRITER);
        if (pid > 0) {
            return pid;
        }
        bench_sleep_ns(1000000);
    }
    return 0;
}

int bench_writer_kill(const bench_opts_t *o, bench_report_t *r)
{
    bench_broker_t b;
    int rc = bench_broker_open(o, NULL, 0, &b);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, o->no_baseline, &r->machine);
    r->config = bench_config_json(o, &b);
    json_object_set_new(r->config, "kills", json_integer(o->kills));
    json_object_set_new(r->config, "kill_every_ms", json_integer(o->kill_every_ms));
    bench_shared_t *sh = bench_shared_create(o->producers);
    pid_t pids[BENCH_MAX_PROCS] = {0};
    bench_prod_t bps[BENCH_MAX_PROCS];
    if (!sh) {
        bench_broker_close(&b, o->keep);
        return -ENOMEM;
    }
    for (int i = 0; i < o->producers; i++) {
        bench_prod_init(&bps[i], o, sh, i, b.root);
        bps[i].quota = INT64_MAX;
        pids[i] = bench_fork_producer(&bps[i]);
    }
    rc = bench_children_ready(sh, pids, o->producers);
    if (rc < 0) {
        bench_children_kill(pids, o->producers);
        bench_shared_free(sh);
        bench_broker_close(&b, o->keep);
        return -1;
    }
    bench_start(sh, 0);
    bench_sleep_ns(500000000); /* load established */
    bench_hist_t *gaps = r->hist;
    int64_t missed = 0;
    for (int k = 0; k < o->kills && !bench_interrupted; k++) {
        pid_t w = wait_writer(&b, bench_now_ns() + 30LL * 1000000000);
        if (w <= 0) {
            snprintf(r->note, sizeof(r->note), "no running writer before kill %d", k + 1);
            break;
        }
        /* Some acknowledgements under the new writer first, so that each kill hits a load. */
        bench_sleep_ns(o->kill_every_ms * 1000000);
        int64_t t_kill = bench_fast_ns();
        kill(w, SIGKILL);
        int64_t limit = bench_now_ns() + 10LL * 1000000000;
        int64_t ack;
        while ((ack = latest_ack(sh, o->producers)) <= t_kill && bench_now_ns() < limit &&
               !bench_interrupted) {
            bench_sleep_ns(200000);
        }
        if (ack <= t_kill) {
            missed++;
            ack = bench_fast_ns();
        }
        bench_hist_add(gaps, (uint64_t)(ack - t_kill));
    }
    atomic_store_explicit(&sh->go, 2, memory_order_release);
    bench_children_reap(sh, pids, o->producers);
    /* The load's own figures go to extra; the histogram is the kill-to-ack gaps. */
    bench_report_t load;
    bench_report_init(&load, "load");
    int64_t end_ns, bytes;
    bench_sum(sh, 0, o->producers, &load, &end_ns, &bytes);
    r->msgs = load.msgs;
    r->errors = load.errors;
    r->seconds = (double)(end_ns - sh->start_ns) / 1e9;
    if (r->seconds > 0) {
        r->msgs_per_sec = (double)r->msgs / r->seconds;
        r->mb_per_sec = (double)bytes / r->seconds / 1e6;
    }
    memcpy(r->note, load.note, sizeof(r->note));
    r->latency_what = "writer SIGKILL to the next acknowledged send";
    r->extra = json_object();
    json_object_set_new(r->extra, "kills_done", json_integer((json_int_t)gaps->count));
    json_object_set_new(r->extra, "kills_without_ack_in_10s", json_integer(missed));
    json_object_set_new(r->extra, "send_latency_p99_us",
                        json_real((double)bench_hist_quantile(load.hist, 0.99) / 1000.0));
    bench_report_free(&load);
    bench_shared_free(sh);
    bench_broker_close(&b, o->keep);
    return 0;
}
