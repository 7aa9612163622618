/*
 * shmq-bench failover: how long producers wait for a new master.
 *
 *   shmq-bench failover --store DIR [--since-ms T] [--timeout MS] [--retry-ms MS]
 *
 * DIR is a running store in controller mode that is a slave now and that the
 * group is about to elect (its master was just killed, or is about to be).
 * The mode keeps trying to attach a producer and send one message: a slave
 * refuses producers (the attach fails) and a store that is starting or
 * stopping answers with errors, so every refusal is counted and tried again
 * --retry-ms later (2), for up to --timeout ms (60000).  It reports the time
 * of the first send answered SEND_OK, and of the first attach that
 * succeeded, from T (wall-clock milliseconds since 1970, e.g. the moment the
 * master was killed; default: the start of the run).  The wall clock, not the
 * monotonic one, so that a script on the same machine can give the moment it
 * killed the master.  Exit status 1 when no send was acknowledged in time.
 *
 * No machine baseline is measured: it would delay the first attempt.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "shmq/errors.h"
#include "shmq/producer.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remember the latest refusal's text (the library's detail) and count it. */
static void refused(char *last, size_t len, int64_t *count, const char *what, int rc)
{
    const char *d = shmq_error_detail();
    snprintf(last, len, "%s: %s", what, d && d[0] ? d : shmq_strerror(rc));
    (*count)++;
}

int bench_failover(const bench_opts_t *o, bench_report_t *r)
{
    if (o->store == NULL) {
        bench_warn("failover: give --store DIR, the slave the group is about to elect");
        return -1;
    }
    int64_t start_wall = wall_ms(), start_ns = bench_now_ns();
    int64_t since = o->since_ms > 0 ? o->since_ms : start_wall;
    /* The monotonic clock at `since`: every figure is measured on it from here on. */
    int64_t since_ns = start_ns - (start_wall - since) * 1000000;
    int64_t limit_ns = start_ns + o->timeout_ms * 1000000;
    shmq_producer_options_t po = {
        /* Short: a store that does not answer is tried again, not waited for. */
        .send_timeout_ms = 3000,
        .attach_timeout_ms = 1,
        .group = "shmq-bench-failover",
    };
    char last[256] = "";
    int64_t open_refusals = 0, send_failures = 0, attach_ns = -1, ack_ns = -1;
    int64_t attach_wall = 0, ack_wall = 0;
    shmq_producer_t *p = NULL;
    static const char body[] = "failover";

    while (!bench_interrupted && bench_now_ns() < limit_ns) {
        if (p == NULL) {
            int rc = shmq_producer_open(o->store, &po, &p);
            if (rc < 0) {
                p = NULL;
                refused(last, sizeof(last), &open_refusals, "attach", rc);
                bench_sleep_ns(o->retry_ms * 1000000);
                continue;
            }
            if (attach_ns < 0) {
                attach_ns = bench_now_ns();
                attach_wall = wall_ms();
            }
        }
        shmq_message_t m;
        shmq_message_init(&m, o->topic, body, sizeof(body) - 1);
        shmq_send_result_t res;
        int rc = shmq_send(p, &m, &res);
        if (rc == 0 && res.status == SHMQ_SEND_OK) {
            ack_ns = bench_now_ns();
            ack_wall = wall_ms();
            break;
        }
        if (rc == 0) {
            snprintf(last, sizeof(last), "send: status %d, not SEND_OK", (int)res.status);
            send_failures++;
        } else {
            refused(last, sizeof(last), &send_failures, "send", rc);
            /* Attach again: the store may have started again since (a deposed master). */
            shmq_producer_close(p);
            p = NULL;
        }
        bench_sleep_ns(o->retry_ms * 1000000);
    }
    if (p != NULL) {
        shmq_producer_close(p);
    }

    bench_machine_measure(o->store, true, &r->machine);
    r->config = json_object();
    json_object_set_new(r->config, "store", json_string(o->store));
    json_object_set_new(r->config, "topic", json_string(o->topic));
    json_object_set_new(r->config, "since_unix_ms", json_integer(since));
    json_object_set_new(r->config, "since_given", json_boolean(o->since_ms > 0));
    json_object_set_new(r->config, "timeout_ms", json_integer(o->timeout_ms));
    json_object_set_new(r->config, "retry_ms", json_integer(o->retry_ms));
    r->extra = json_object();
    json_object_set_new(r->extra, "open_refusals", json_integer(open_refusals));
    json_object_set_new(r->extra, "send_failures", json_integer(send_failures));
    json_object_set_new(r->extra, "last_refusal", json_string(last));
    json_object_set_new(r->extra, "started_after_ms",
                        json_real((double)(start_ns - since_ns) / 1e6));
    json_object_set_new(r->extra, "first_attach_ms",
                        attach_ns < 0 ? json_null()
                                      : json_real((double)(attach_ns - since_ns) / 1e6));
    json_object_set_new(r->extra, "first_attach_unix_ms",
                        attach_ns < 0 ? json_null() : json_integer(attach_wall));
    json_object_set_new(r->extra, "first_ack_ms",
                        ack_ns < 0 ? json_null() : json_real((double)(ack_ns - since_ns) / 1e6));
    json_object_set_new(r->extra, "first_ack_unix_ms",
                        ack_ns < 0 ? json_null() : json_integer(ack_wall));
    r->latency_what = "from --since-ms (or the start) to the first send answered SEND_OK";
    r->errors = open_refusals + send_failures;
    r->seconds = (double)(bench_now_ns() - start_ns) / 1e9;
    if (ack_ns < 0) {
        bench_warn("failover: no send to %s was acknowledged in %lld ms (%lld attaches refused, "
                   "%lld sends failed; last: %s)",
                   o->store, (long long)o->timeout_ms, (long long)open_refusals,
                   (long long)send_failures, last[0] ? last : "none");
        return -1;
    }
    r->msgs = 1;
    bench_hist_add(r->hist, (uint64_t)(ack_ns > since_ns ? ack_ns - since_ns : 0));
    return 0;
}
