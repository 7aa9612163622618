/*
 * shmq-bench e2e: end-to-end latency at a fixed rate.  Producer processes
 * send --rate messages per second in total (paced, asynchronous sends with
 * up to --inflight in flight) to queue 0 of the bench topic; each body
 * starts with a magic number and the send time (CLOCK_MONOTONIC, the same
 * clock in every process of the host).  A consumer process long-polls that
 * queue from its end and records, for every message it receives, the time
 * from send to the pull's return: the producer's ring, the writer, the
 * dispatcher (ConsumeQueue unit, wake-up) and the pull together.
 *
 * The producers can fall behind the schedule (with --inflight 1 each send
 * waits for its acknowledgement): the rate they offered (sends over the
 * time from the start to their last completion) is reported next to the one
 * requested, with a warning when it is below E2E_RATE_REACHED of it, and
 * --strict makes that exit 3.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "shmq/consumer.h"

#define E2E_GRACE_NS     (5LL * 1000000000) /* after the producers: wait this long for the rest */
#define E2E_POLL_MS      50
#define E2E_RATE_REACHED 0.95 /* offered / requested below this: the rate was not reached */

static void consumer_fail(bench_proc_t *me, int rc, const char *what)
{
    me->first_error = rc;
    snprintf(me->error_text, sizeof(me->error_text), "%s: %s", what,
             shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
    atomic_store_explicit(&me->state, -1, memory_order_release);
    _exit(1);
}

static void consumer_main(const bench_opts_t *o, bench_shared_t *sh, int idx, const char *root)
{
    bench_proc_t *me = &sh->procs[idx];
    shmq_consumer_t *c = NULL;
    int rc = shmq_consumer_open(root, NULL, &c);
    if (rc < 0) {
        consumer_fail(me, rc, "consumer open");
    }
    shmq_pull_result_t *res = malloc(sizeof(*res));
    if (!res) {
        consumer_fail(me, -ENOMEM, "consumer");
    }
    int64_t min = 0, offset = 0;
    if (shmq_queue_offsets(c, o->topic, 0, &min, &offset) < 0) {
        offset = 0; /* the queue appears with the first message */
    }
    atomic_store_explicit(&me->state, 1, memory_order_release);
    int64_t done_ns = 0;
    for (;;) {
        /* Acquire: pairs with the parent's release of go. */
        int go = atomic_load_explicit(&sh->go, memory_order_acquire);
        if (bench_interrupted) {
            break;
        }
        if (go == 2) {
            int64_t sent = atomic_load_explicit(&sh->e2e_sent, memory_order_relaxed);
            if (done_ns == 0) {
                done_ns = bench_now_ns();
            }
            if (me->received >= sent || bench_now_ns() - done_ns > E2E_GRACE_NS) {
                break;
            }
        }
        rc = shmq_pull(c, o->topic, 0, offset, SHMQ_PULL_MAX, NULL, go == 0 ? 1 : E2E_POLL_MS, res);
        int64_t now = bench_fast_ns();
        if (rc < 0) {
            me->errors++;
            if (me->first_error == 0) {
                me->first_error = rc;
                snprintf(me->error_text, sizeof(me->error_text), "pull: %s",
                         shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
            }
            bench_sleep_ns(10000000);
            continue;
        }
        if (res->status == SHMQ_PULL_OFFSET_TOO_SMALL || res->status == SHMQ_PULL_FOUND ||
            res->status == SHMQ_PULL_NO_MATCHED_MSG ||
            res->status == SHMQ_PULL_OFFSET_OVERFLOW_BADLY ||
            res->status == SHMQ_PULL_MESSAGE_WAS_REMOVING) {
            offset = res->next_offset;
        }
        for (size_t i = 0; i < res->count; i++) {
            const shmq_msg_view_t *v = &res->msgs[i];
            uint64_t magic;
            int64_t sent_ns;
            if (v->body_len < BENCH_E2E_MIN_SIZE) {
                continue;
            }
            memcpy(&magic, v->body, 8);
            memcpy(&sent_ns, (const uint8_t *)v->body + 8, 8);
            /* The producers' clock is this one; a second of slack for its calibration. */
            if (magic != BENCH_E2E_MAGIC || sent_ns < sh->start_ns - 1000000000 ||
                sent_ns > now + 1000000) {
                continue; /* not a message of this run */
            }
            bench_hist_add(&me->hist, (uint64_t)(now > sent_ns ? now - sent_ns : 0));
            me->received++;
            me->acked++;
            me->sent++;
            me->bytes += (int64_t)v->body_len;
            me->end_ns = now;
        }
    }
    free(res);
    shmq_consumer_close(c);
    atomic_store_explicit(&me->state, 2, memory_order_release);
    _exit(0);
}

int bench_e2e(const bench_opts_t *o, bench_report_t *r)
{
    if (o->size < BENCH_E2E_MIN_SIZE) {
        bench_warn("e2e needs --size %d or more (the body carries the send time)",
                   BENCH_E2E_MIN_SIZE);
        return -EINVAL;
    }
    bench_broker_t b;
    bench_slave_t sl;
    int rc = bench_open_with_slave(o, &b, &sl);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, o->no_baseline, &r->machine);
    r->config = bench_config_json(o, &b);
    json_object_set_new(r->config, "rate", json_real(o->rate));
    int np = o->producers;
    bench_shared_t *sh = bench_shared_create(np + 1);
    pid_t pids[BENCH_MAX_PROCS + 1] = {0};
    bench_prod_t bps[BENCH_MAX_PROCS];
    if (!sh) {
        bench_slave_close(&sl, o->keep);
        bench_broker_close(&b, o->keep);
        return -ENOMEM;
    }
    double per = o->rate / np;
    int64_t period = (int64_t)(1e9 / per);
    for (int i = 0; i < np; i++) {
        bench_prod_init(&bps[i], o, sh, i, b.root);
        bps[i].queue_id = 0;
        bps[i].e2e = true;
        bps[i].e2e_count = true;
        bps[i].period_ns = period;
        bps[i].phase_ns = period * i / np;
        if (o->count > 0) {
            bps[i].quota = o->count / np + (i < o->count % np ? 1 : 0);
        } else {
            bps[i].quota = (int64_t)(per * o->seconds + 0.5);
        }
        pids[i] = bench_fork_producer(&bps[i]);
    }
    pid_t cpid = fork();
    if (cpid == 0) {
        consumer_main(o, sh, np, b.root);
    }
    pids[np] = cpid;
    rc = bench_children_ready(sh, pids, np + 1);
    if (rc == 0 && o->slave) {
        rc = bench_slave_sample_start(&b, &sl);
    }
    if (rc == 0) {
        bench_start(sh, 0);
        bench_children_reap(sh, pids, np);
        /* Release: the consumer stops once it has what the producers sent. */
        atomic_store_explicit(&sh->go, 2, memory_order_release);
        bench_children_reap(sh, pids + np, 1);
        bench_report_t snd;
        bench_report_init(&snd, "send");
        int64_t end_ns, bytes, rend, rbytes;
        bench_sum(sh, 0, np, &snd, &end_ns, &bytes);
        bench_sum(sh, np, np + 1, r, &rend, &rbytes);
        r->seconds = (double)(end_ns - sh->start_ns) / 1e9;
        if (r->seconds > 0) {
            r->msgs_per_sec = (double)r->msgs / r->seconds;
            r->mb_per_sec = (double)rbytes / r->seconds / 1e6;
        }
        r->errors += snd.errors;
        if (r->note[0] == '\0') {
            memcpy(r->note, snd.note, sizeof(r->note));
        }
        r->latency_what = "send to receive (producer's clock read before the send call)";
        r->extra = json_object();
        int64_t offered_n = snd.msgs + snd.errors;
        double send_s = (double)(end_ns - sh->start_ns) / 1e9;
        double offered = send_s > 0 ? (double)offered_n / send_s : 0;
        r->rate_missed = offered_n > 0 && offered < o->rate * E2E_RATE_REACHED;
        json_object_set_new(r->extra, "requested_rate", json_real(o->rate));
        json_object_set_new(r->extra, "offered_rate", json_real(offered));
        json_object_set_new(r->extra, "rate_reached", json_boolean(!r->rate_missed));
        if (r->rate_missed) {
            char miss[200];
            snprintf(miss, sizeof(miss),
                     "rate NOT reached: the producers offered %.0f msgs/s of the %.0f requested "
                     "(%.0f %%); raise --inflight or --producers",
                     offered, o->rate, o->rate > 0 ? offered / o->rate * 100.0 : 0.0);
            if (r->note[0] == '\0') {
                snprintf(r->note, sizeof(r->note), "%s", miss);
            } else {
                size_t len = strlen(r->note);
                snprintf(r->note + len, sizeof(r->note) - len, "; %s", miss);
            }
            bench_warn("%s", miss);
        }
        json_object_set_new(r->extra, "sent", json_integer(offered_n));
        json_object_set_new(r->extra, "acked", json_integer(snd.msgs));
        json_object_set_new(r->extra, "received", json_integer(r->msgs));
        json_object_set_new(r->extra, "lost",
                            json_integer(snd.msgs > r->msgs ? snd.msgs - r->msgs : 0));
        json_object_set_new(r->extra, "send_latency_p50_us",
                            json_real((double)bench_hist_quantile(snd.hist, 0.5) / 1000.0));
        json_object_set_new(r->extra, "send_latency_p99_us",
                            json_real((double)bench_hist_quantile(snd.hist, 0.99) / 1000.0));
        if (snd.msgs > r->msgs) {
            r->errors += snd.msgs - r->msgs; /* acknowledged, never received */
        }
        bench_report_free(&snd);
        bench_slave_sample_stop(&sl, r);
    } else {
        bench_children_kill(pids, np + 1);
        rc = -1;
    }
    bench_shared_free(sh);
    bench_slave_close(&sl, o->keep);
    bench_broker_close(&b, o->keep);
    return rc;
}
