/*
 * shmq-bench consume: read a backlog from the start, in place.  Without
 * --store, a producer process first writes --count messages of --size
 * bytes (batches of 64) and the run waits until the dispatcher has built
 * every ConsumeQueue unit; with --store, the existing messages of --topic
 * are read.  The consumer (this process) pulls every queue of the topic
 * from its minimum offset to its maximum, SHMQ_PULL_MAX messages a pull,
 * and touches the first and last bytes of each body.  The latency recorded
 * is each pull call's duration; the rate counts messages.  The consumer
 * checks every record's CRCs (the default) unless --no-check-crcs.  With
 * --passes N the backlog is read N times by the same handle (the files
 * mapped once) and the fastest read is reported, with every read's time in
 * extra.pass_seconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"
#include "shmq/consumer.h"

#define BACKLOG_BATCH 64

int64_t bench_write_backlog(const bench_opts_t *o, const bench_broker_t *b, char *note,
                            size_t note_len)
{
    bench_opts_t po = *o;
    po.producers = 1;
    po.inflight = 1;
    po.batch = BACKLOG_BATCH;
    if (po.size * BACKLOG_BATCH > b->max_message_size) {
        po.batch = 1;
        po.inflight = 64;
    }
    bench_shared_t *sh = bench_shared_create(1);
    if (!sh) {
        return -ENOMEM;
    }
    bench_prod_t bp;
    bench_prod_init(&bp, &po, sh, 0, b->root);
    bp.quota = o->count;
    pid_t pid = bench_fork_producer(&bp);
    int64_t acked = -1;
    if (bench_children_ready(sh, &pid, 1) == 0) {
        bench_start(sh, 0);
        bench_children_reap(sh, &pid, 1);
        acked = sh->procs[0].acked;
        if (sh->procs[0].errors) {
            snprintf(note, note_len, "backlog: %lld errors, first: %s",
                     (long long)sh->procs[0].errors, sh->procs[0].error_text);
        }
    } else {
        bench_children_kill(&pid, 1);
    }
    bench_shared_free(sh);
    return acked;
}

int bench_wait_dispatched(const bench_broker_t *b, int timeout_ms)
{
    int64_t limit = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!bench_interrupted) {
        shmq_ctl_t ctl;
        int rc = shmq_ctl_attach(b->root, SHMQ_CTL_RDONLY, &ctl);
        if (rc < 0) {
            return rc;
        }
        int64_t wrote = shmq_ctl_load(&ctl.blk->wrote);
        int64_t disp = shmq_ctl_load(&ctl.blk->dispatched);
        shmq_ctl_detach(&ctl);
        if (disp >= wrote) {
            return 0;
        }
        if (bench_now_ns() > limit) {
            return -ETIMEDOUT;
        }
        bench_sleep_ns(5000000);
    }
    return -EINTR;
}

/* What one read of the backlog did. */
typedef struct consume_pass {
    int64_t ns;
    int64_t msgs;
    int64_t bytes;
    int64_t record_bytes;
    int64_t pulls;
    uint64_t touch;
} consume_pass_t;

/* Read every queue of the topic from its min to its max offset once. */
static void read_backlog(const bench_opts_t *o, shmq_consumer_t *c, int nq, shmq_pull_result_t *res,
                         bench_hist_t *hist, bench_report_t *r, consume_pass_t *p)
{
    memset(p, 0, sizeof(*p));
    int64_t t0 = bench_now_ns();
    for (int q = 0; q < nq && !bench_interrupted; q++) {
        int64_t min = 0, max = 0;
        if (shmq_queue_offsets(c, o->topic, q, &min, &max) < 0) {
            continue;
        }
        int64_t off = min;
        while (off < max && !bench_interrupted) {
            int64_t p0 = bench_now_ns();
            int rc = shmq_pull(c, o->topic, q, off, SHMQ_PULL_MAX, NULL, 0, res);
            int64_t p1 = bench_now_ns();
            p->pulls++;
            if (rc < 0) {
                r->errors++;
                if (r->note[0] == '\0') {
                    snprintf(r->note, sizeof(r->note), "pull %s/%d at %lld: %s", o->topic, q,
                             (long long)off, shmq_error_detail());
                }
                break;
            }
            bench_hist_add(hist, (uint64_t)(p1 - p0));
            for (size_t i = 0; i < res->count; i++) {
                const shmq_msg_view_t *v = &res->msgs[i];
                const uint8_t *body = v->body;
                if (v->body_len > 0) {
                    p->touch += body[0] + body[v->body_len - 1];
                }
                p->bytes += (int64_t)v->body_len;
                p->record_bytes += v->size;
            }
            p->msgs += (int64_t)res->count;
            if (res->next_offset <= off) {
                break; /* nothing more readable here */
            }
            off = res->next_offset;
        }
    }
    p->ns = bench_now_ns() - t0;
}

int bench_consume(const bench_opts_t *o, bench_report_t *r)
{
    bench_broker_t b;
    int rc = bench_broker_open(o, NULL, 0, &b);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, o->no_baseline, &r->machine);
    r->config = bench_config_json(o, &b);
    r->extra = json_object();
    if (!o->store) {
        int64_t t0 = bench_now_ns();
        int64_t n = bench_write_backlog(o, &b, r->note, sizeof(r->note));
        if (n < 0) {
            bench_broker_close(&b, o->keep);
            return -1;
        }
        json_object_set_new(r->extra, "backlog_written", json_integer(n));
        json_object_set_new(r->extra, "backlog_write_seconds",
                            json_real((double)(bench_now_ns() - t0) / 1e9));
        if ((rc = bench_wait_dispatched(&b, 120000)) < 0) {
            bench_warn("the dispatcher did not catch up: %s", shmq_strerror(rc));
            bench_broker_close(&b, o->keep);
            return rc;
        }
    }
    shmq_consumer_t *c = NULL;
    shmq_pull_result_t *res = malloc(sizeof(*res));
    if (!res || (rc = shmq_consumer_open(b.root, NULL, &c)) < 0) {
        bench_warn("consumer open: %s", res ? shmq_error_detail() : "out of memory");
        free(res);
        bench_broker_close(&b, o->keep);
        return rc < 0 ? rc : -ENOMEM;
    }
    shmq_consumer_set_check_crcs(c, !o->no_check_crcs);
    int nq = shmq_topic_queue_count(c, o->topic);
    if (nq <= 0) {
        bench_warn("topic %s: no queues to read (%s)", o->topic, shmq_strerror(nq));
        nq = 0;
    }
    /* Each pass reads the whole backlog; the first also maps (faults in) the files. */
    bench_hist_t *hist = malloc(sizeof(*hist));
    json_t *pass_secs = json_array();
    consume_pass_t best = {0};
    for (int pass = 0; hist && pass < o->passes && !bench_interrupted; pass++) {
        consume_pass_t p;
        bench_hist_init(hist);
        read_backlog(o, c, nq, res, hist, r, &p);
        json_array_append_new(pass_secs, json_real((double)p.ns / 1e9));
        if (pass == 0 || p.ns < best.ns) {
            best = p;
            if (r->hist) {
                memcpy(r->hist, hist, sizeof(*hist));
            }
        }
    }
    free(hist);
    r->msgs = best.msgs;
    r->seconds = (double)best.ns / 1e9;
    if (r->seconds > 0) {
        r->msgs_per_sec = (double)r->msgs / r->seconds;
        r->mb_per_sec = (double)best.bytes / r->seconds / 1e6;
        r->store_mb_per_sec = (double)best.record_bytes / r->seconds / 1e6;
    }
    if (r->machine.measured && r->machine.memcpy_bytes_per_sec > 0) {
        r->frac_memcpy = r->store_mb_per_sec * 1e6 / r->machine.memcpy_bytes_per_sec;
    }
    r->latency_what = "one shmq_pull call (up to 1024 messages)";
    json_object_set_new(r->extra, "queues", json_integer(nq));
    json_object_set_new(r->extra, "pulls", json_integer(best.pulls));
    json_object_set_new(r->extra, "checksum", json_integer((json_int_t)(best.touch & 0x7fffffff)));
    json_object_set_new(r->extra, "pass_seconds", pass_secs);
    free(res);
    shmq_consumer_close(c);
    bench_broker_close(&b, o->keep);
    return 0;
}
