/*
 * The Prometheus text format of a store's control block (metrics.h).  One
 * family at a time: "# HELP", "# TYPE", then its samples; counters end in
 * _total; label values are escaped (\\, \", \n) although topic and group
 * names cannot hold those characters.
 */
#include "shm/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "shm/stats.h"

/* relaxed loads: statistics, nothing is read through them */
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped. */
static void label_value(FILE *f, const char *v, size_t len)
{
    for (size_t i = 0; i < len && v[i] != '\0'; i++) {
        if (v[i] == '\\' || v[i] == '"') {
            fputc('\\', f);
            fputc(v[i], f);
        } else if (v[i] == '\n') {
            fputs("\\n", f);
        } else {
            fputc(v[i], f);
        }
    }
}

/* name{k="v"} value: one label. */
static void sample1(FILE *f, const char *name, const char *k, const char *v, long long value)
{
    fprintf(f, "%s{%s=\"", name, k);
    label_value(f, v, strlen(v));
    fprintf(f, "\"} %lld\n", value);
}

/* The queue's topic, NUL-terminated within its bounds. */
static size_t topic_len(const shmq_ctl_queue_t *q)
{
    return q->topic_len < sizeof(q->topic) ? q->topic_len : sizeof(q->topic) - 1;
}

static void queue_labels(FILE *f, const char *topic, size_t tlen, int32_t queue_id)
{
    fputs("topic=\"", f);
    label_value(f, topic, tlen);
    fprintf(f, "\",queue=\"%d\"", (int)queue_id);
}

/*
 * A histogram: cumulative buckets from the per-bucket counts, then sum and
 * count.  _count is the last bucket's cumulative value, so that a reader
 * racing with the writer never shows a count below the +Inf bucket.
 */
static void histogram(FILE *f, const char *name, const char *help, const shmq_ctl_hist_t *h,
                      const shmq_hist_bounds_t *b)
{
    family(f, name, "histogram", help);
    unsigned long long cum = 0;
    for (int i = 0; i <= b->count; i++) {
        cum += LOAD(h->bucket[i]);
        if (i < b->count) {
            /* seconds in plain decimals ("0.00001", "2.5", "1"), not "1e-05" */
            char le[32];
            int k = snprintf(le, sizeof(le), "%.6f", (double)b->ns[i] / 1e9);
            while (k > 1 && le[k - 1] == '0') {
                le[--k] = '\0';
            }
            if (k > 1 && le[k - 1] == '.') {
                le[--k] = '\0';
            }
            fprintf(f, "%s_bucket{le=\"%s\"} %llu\n", name, le, cum);
        } else {
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
        }
    }
    fprintf(f, "%s_sum %.9f\n%s_count %llu\n", name, (double)LOAD(h->sum_ns) / 1e9, name, cum);
}

static void store_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    shmq_ctl_block_t *b = ctl->blk;
    uint32_t state = LOAD(b->hdr.state);
    family(f, "shmq_store_state", "gauge", "1 for the state the store is in");
    static const char *const states[] = {"starting",  "recovering", "running", "draining",
                                         "finishing", "stopped",    "failed"};
    for (uint32_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
        sample1(f, "shmq_store_state", "state", states[s], s == state);
    }
    family(f, "shmq_store_uptime_seconds", "gauge", "Seconds since the master built the store");
    fprintf(f, "shmq_store_uptime_seconds %.3f\n",
            (double)(shmq_now_ms() - b->hdr.created_ms) / 1000.0);
    family(f, "shmq_store_fenced", "gauge",
           "1 after a failed flush of a store file (the store takes no writes)");
    fprintf(f, "shmq_store_fenced %d\n", LOAD(b->fenced_error) != 0);

    family(f, "shmq_commitlog_position_bytes", "gauge",
           "CommitLog offsets: wrote, flushed, dispatched, cq_flushed, indexed, replicated, min");
    const struct {
        const char *name;
        const shmq_ctl_position_t *p;
    } pos[] = {{"wrote", &b->wrote},
               {"flushed", &b->flushed},
               {"dispatched", &b->dispatched},
               {"cq_flushed", &b->cq_flushed},
               {"indexed", &b->indexed},
               {"replicated", &b->replicated},
               {"min", &b->min}};
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        sample1(f, "shmq_commitlog_position_bytes", "position", pos[i].name,
                (long long)shmq_ctl_load(pos[i].p));
    }
    family(f, "shmq_commitlog_bytes", "gauge", "CommitLog bytes stored (wrote - min)");
    fprintf(f, "shmq_commitlog_bytes %lld\n",
            (long long)(shmq_ctl_load(&b->wrote) - shmq_ctl_load(&b->min)));
    family(f, "shmq_unflushed_bytes", "gauge", "CommitLog bytes written, not yet on disk");
    fprintf(f, "shmq_unflushed_bytes %lld\n",
            (long long)(shmq_ctl_load(&b->wrote) - shmq_ctl_load(&b->flushed)));
}

static void counter_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_counters_t *c = &ctl->blk->counters;
    family(f, "shmq_messages_in_total", "counter", "Messages stored by the writer");
    fprintf(f, "shmq_messages_in_total %llu\n", (unsigned long long)LOAD(c->messages_in));
    family(f, "shmq_bytes_in_total", "counter", "Record bytes stored by the writer");
    fprintf(f, "shmq_bytes_in_total %llu\n", (unsigned long long)LOAD(c->bytes_in));
    family(f, "shmq_messages_out_total", "counter", "Messages returned to consumers");
    uint64_t out = LOAD(c->messages_out) + (ctl->wake ? LOAD(ctl->wake->messages_out) : 0);
    fprintf(f, "shmq_messages_out_total %llu\n", (unsigned long long)out);
    family(f, "shmq_refused_total", "counter", "Sends refused, by cause");
    sample1(f, "shmq_refused_total", "cause", "bad_input", (long long)LOAD(c->rejects));
    sample1(f, "shmq_refused_total", "cause", "disk_full", (long long)LOAD(c->refused_disk_full));
    sample1(f, "shmq_refused_total", "cause", "fenced", (long long)LOAD(c->refused_fenced));
    sample1(f, "shmq_refused_total", "cause", "not_master", (long long)LOAD(c->refused_not_master));
    sample1(f, "shmq_refused_total", "cause", "append_error", (long long)LOAD(c->append_errors));
    histogram(f, "shmq_send_latency_seconds",
              "Sends of new messages: the producer's born timestamp (milliseconds) to the "
              "writer's completion; an observation is up to 1 ms above the latency",
              &c->send_latency, &shmq_hist_send);
    histogram(f, "shmq_flush_duration_seconds", "CommitLog flushes of the flusher",
              &c->flush_latency, &shmq_hist_flush);
    histogram(f, "shmq_append_to_flush_seconds",
              "Stored messages: the writer's append to the flush that made them durable",
              &c->append_flush, &shmq_hist_stage);
    histogram(f, "shmq_append_to_dispatch_seconds",
              "Stored messages: the writer's append to their ConsumeQueue units",
              &c->append_dispatch, &shmq_hist_stage);
    if (ctl->wake) {
        histogram(f, "shmq_store_to_pull_seconds",
                  "Pulled messages: their store timestamp (milliseconds) to the pull that "
                  "returned them; an observation is up to 1 ms above the latency",
                  &ctl->wake->store_pull, &shmq_hist_send);
    }
    family(f, "shmq_flush_errors_total", "counter", "Failed CommitLog flushes");
    fprintf(f, "shmq_flush_errors_total %llu\n", (unsigned long long)LOAD(c->flush_errors));
}

static void disk_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_cleaner_t *cs = &ctl->blk->cleaner;
    int32_t used = LOAD(cs->used_pct), cq_used = LOAD(cs->cq_used_pct);
    family(f, "shmq_disk_used_ratio", "gauge",
           "Usage of the file system holding the path (the cleaner's last check)");
    if (used >= 0) {
        fprintf(f, "shmq_disk_used_ratio{path=\"commitlog\"} %.2f\n", used / 100.0);
    }
    if (cq_used >= 0) {
        fprintf(f, "shmq_disk_used_ratio{path=\"consumequeue\"} %.2f\n", cq_used / 100.0);
    }
    family(f, "shmq_disk_full", "gauge", "1 while sends are refused for lack of disk space");
    fprintf(f, "shmq_disk_full %d\n", LOAD(cs->disk_full) != 0);
    family(f, "shmq_cleaner_runs_total", "counter", "Deletion runs of the cleaner");
    fprintf(f, "shmq_cleaner_runs_total %llu\n", (unsigned long long)LOAD(cs->runs));
}

static void worker_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_block_t *b = ctl->blk;
    int64_t now = shmq_now_ms();
    const char *fams[][3] = {
        {"shmq_worker_up", "gauge", "1 while the worker runs"},
        {"shmq_worker_restarts_total", "counter", "Times the master started the worker again"},
        {"shmq_worker_heartbeat_age_seconds", "gauge",
         "Seconds since the worker's loop last turned"},
    };
    for (int k = 0; k < 3; k++) {
        family(f, fams[k][0], fams[k][1], fams[k][2]);
        for (int r = 0; r < SHMQ_ROLE_COUNT && r < SHMQ_CTL_MAX_WORKERS; r++) {
            const shmq_ctl_worker_t *w = &b->workers[r];
            uint32_t st = LOAD(w->state);
            if (st == SHMQ_WORKER_NONE) {
                continue; /* a role this store does not run */
            }
            const char *name = shmq_role_name((enum shmq_role)r);
            if (k == 0) {
                sample1(f, fams[k][0], "worker", name, st == SHMQ_WORKER_RUNNING);
            } else if (k == 1) {
                sample1(f, fams[k][0], "worker", name, (long long)LOAD(w->restarts));
            } else {
                int64_t hb = LOAD(w->heartbeat_ms), started = LOAD(w->started_ms);
                int64_t last = hb > started ? hb : started;
                fprintf(f, "%s{worker=\"%s\"} %.3f\n", fams[k][0], name,
                        last > 0 ? (double)(now - last) / 1000.0 : 0.0);
            }
        }
    }
}

/* Per topic: messages and record bytes the writer stored (counts of this incarnation). */
static void topic_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_block_t *b = ctl->blk;
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "shmq_topic_messages_in_total" : "shmq_topic_bytes_in_total";
        family(f, name, "counter",
               k == 0 ? "Messages stored in the topic by the writer"
                      : "Record bytes stored in the topic by the writer");
        for (size_t i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
            shmq_ctl_topic_t t;
            if (shmq_ctl_topic_at(ctl, i, &t) != 0) {
                continue;
            }
            const shmq_ctl_topic_count_t *c = &b->topic_counts[i];
            /* Acquire: pairs with the writer's release of the incarnation (counts cleared). */
            bool mine =
                atomic_load_explicit(&c->incarnation, memory_order_acquire) == t.incarnation;
            long long v =
                !mine ? 0 : (long long)(k == 0 ? LOAD(c->messages_in) : LOAD(c->bytes_in));
            sample1(f, name, "topic", t.name, v);
        }
    }
}

static void queue_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_block_t *b = ctl->blk;
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "shmq_queue_messages_total" : "shmq_queue_min_offset";
        family(f, name, k == 0 ? "counter" : "gauge",
               k == 0 ? "Messages dispatched into the queue (its max offset)"
                      : "Smallest queue offset still stored");
        for (size_t i = 0; i < SHMQ_CTL_MAX_QUEUES; i++) {
            const shmq_ctl_queue_t *q = &b->queues[i];
            if (atomic_load_explicit(&q->state, memory_order_acquire) != SHMQ_ENTRY_ACTIVE) {
                continue;
            }
            fputs(name, f);
            fputc('{', f);
            queue_labels(f, q->topic, topic_len(q), q->queue_id);
            fprintf(f, "} %lld\n", (long long)(k == 0 ? LOAD(q->max_offset) : LOAD(q->min_offset)));
        }
    }
    if (ctl->cons == NULL) {
        return;
    }
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "shmq_consumer_offset" : "shmq_consumer_lag_messages";
        family(f, name, "gauge",
               k == 0 ? "The group's committed offset in the queue (next to consume)"
                      : "Messages of the queue the group has not committed yet");
        for (size_t i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
            const shmq_ctl_offset_t *o = &ctl->cons->offsets[i];
            if (atomic_load_explicit(&o->state, memory_order_acquire) != SHMQ_ENTRY_ACTIVE) {
                continue;
            }
            int64_t off = LOAD(o->offset);
            int64_t value = off;
            if (k == 1) {
                const shmq_ctl_queue_t *q = shmq_ctl_queue_find(
                    ctl, o->topic, strnlen(o->topic, sizeof(o->topic)), o->queue_id);
                int64_t max = q ? LOAD(q->max_offset) : off;
                value = max > off ? max - off : 0;
            }
            fputs(name, f);
            fputs("{group=\"", f);
            label_value(f, o->group, sizeof(o->group));
            fputs("\",", f);
            queue_labels(f, o->topic, strnlen(o->topic, sizeof(o->topic)), o->queue_id);
            fprintf(f, "} %lld\n", (long long)value);
        }
    }
}

/* shmq_group_members{group}: live members per consumer group (libshm/shm/groups.h). */
static void member_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    static char groups[SHMQ_CTL_MAX_MEMBERS][SHMQ_GROUP_MAX + 1];
    int count[SHMQ_CTL_MAX_MEMBERS], ng = 0;
    for (int i = 0; i < SHMQ_CTL_MAX_MEMBERS; i++) {
        shmq_ctl_member_t m;
        if (shmq_ctl_member_copy(ctl->cons, i, &m) != 0) {
            continue;
        }
        const char *g = m.group;
        int k = 0;
        while (k < ng && strcmp(groups[k], g) != 0) {
            k++;
        }
        if (k == ng) {
            memcpy(groups[ng], g, sizeof(groups[ng]));
            count[ng++] = 0;
        }
        count[k]++;
    }
    family(f, "shmq_group_members", "gauge",
           "Live members of the consumer group (consumers polling as members)");
    for (int k = 0; k < ng; k++) {
        fputs("shmq_group_members{group=\"", f);
        label_value(f, groups[k], sizeof(groups[k]));
        fprintf(f, "\"} %d\n", count[k]);
    }
}

static void scheduler_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_scheduler_t *s = &ctl->blk->scheduler;
    family(f, "shmq_scheduler_pending_messages", "gauge",
           "Delayed and timed messages not yet delivered");
    sample1(f, "shmq_scheduler_pending_messages", "kind", "delay",
            (long long)LOAD(s->delay_pending));
    sample1(f, "shmq_scheduler_pending_messages", "kind", "timer",
            (long long)LOAD(s->timer_pending));
    family(f, "shmq_scheduler_delivered_total", "counter", "Delayed and timed messages delivered");
    sample1(f, "shmq_scheduler_delivered_total", "kind", "delay",
            (long long)LOAD(s->delay_delivered));
    sample1(f, "shmq_scheduler_delivered_total", "kind", "timer",
            (long long)LOAD(s->timer_delivered));
    family(f, "shmq_scheduler_dropped_total", "counter",
           "Due messages that could not be delivered");
    fprintf(f, "shmq_scheduler_dropped_total %llu\n", (unsigned long long)LOAD(s->dropped));
}

static void replication_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_block_t *b = ctl->blk;
    const shmq_ctl_ha_t *ha = &b->ha;
    int64_t wrote = shmq_ctl_load(&b->wrote);
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "shmq_slave_lag_bytes" : "shmq_slave_in_sync";
        family(f, name, "gauge",
               k == 0 ? "A master's slave: bytes it has not confirmed"
                      : "A master's slave: 1 while it is in sync");
        for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
            const shmq_ctl_slave_t *s = &ha->slaves[i];
            if (LOAD(s->state) == 0) {
                continue;
            }
            int64_t acked = LOAD(s->acked);
            char addr[SHMQ_CTL_ADDR_MAX];
            snprintf(addr, sizeof(addr), "%.*s", (int)sizeof(addr) - 1, s->addr);
            sample1(f, name, "slave", addr,
                    k == 0 ? (wrote > acked ? wrote - acked : 0) : LOAD(s->in_sync) != 0);
        }
    }
    if (b->hdr.config.broker_role == SHMQ_SLAVE) {
        family(f, "shmq_master_lag_bytes", "gauge",
               "A slave: bytes of its master's log (as last seen) it does not hold yet");
        int64_t end = LOAD(ha->master_end);
        fprintf(f, "shmq_master_lag_bytes %lld\n", (long long)(end > wrote ? end - wrote : 0));
        family(f, "shmq_master_connected", "gauge", "A slave: 1 while connected to its master");
        fprintf(f, "shmq_master_connected %d\n", LOAD(ha->master_connected) != 0);
    }
}

/* shmq-gateway's counters (docs/gateway.md), when the store runs it. */
static void gateway_metrics(FILE *f, const shmq_ctl_t *ctl)
{
    const shmq_ctl_block_t *b = ctl->blk;
    if (LOAD(b->workers[SHMQ_ROLE_GATEWAY].state) == SHMQ_WORKER_NONE) {
        return;
    }
    const shmq_ctl_gateway_t *g = &b->gateway;
    family(f, "shmq_gateway_connections", "gauge", "RocketMQ clients connected to the gateway");
    fprintf(f, "shmq_gateway_connections %llu\n", (unsigned long long)LOAD(g->connections));
    family(f, "shmq_gateway_accepted_total", "counter", "Connections the gateway accepted");
    fprintf(f, "shmq_gateway_accepted_total %llu\n", (unsigned long long)LOAD(g->accepted));
    family(f, "shmq_gateway_refused_total", "counter",
           "Connections the gateway closed, by cause: max_connections (closed as they came), "
           "bad_input (a bad frame, too much buffered, answers not read), slow_frame");
    sample1(f, "shmq_gateway_refused_total", "cause", "max_connections",
            (long long)LOAD(g->refused));
    sample1(f, "shmq_gateway_refused_total", "cause", "bad_input", (long long)LOAD(g->closed_bad));
    sample1(f, "shmq_gateway_refused_total", "cause", "slow_frame",
            (long long)LOAD(g->closed_slow));
    family(f, "shmq_gateway_requests_total", "counter",
           "Requests the gateway served, by kind: send (10, 310, 320), pull (11), other");
    sample1(f, "shmq_gateway_requests_total", "kind", "send", (long long)LOAD(g->requests_send));
    sample1(f, "shmq_gateway_requests_total", "kind", "pull", (long long)LOAD(g->requests_pull));
    sample1(f, "shmq_gateway_requests_total", "kind", "other", (long long)LOAD(g->requests_other));
    family(f, "shmq_gateway_unsupported_total", "counter",
           "Requests answered REQUEST_CODE_NOT_SUPPORTED");
    fprintf(f, "shmq_gateway_unsupported_total %llu\n", (unsigned long long)LOAD(g->unsupported));
    family(f, "shmq_gateway_bad_frames_total", "counter", "Frames that closed their connection");
    fprintf(f, "shmq_gateway_bad_frames_total %llu\n", (unsigned long long)LOAD(g->bad_frames));
    family(f, "shmq_gateway_messages_sent_total", "counter",
           "Messages the gateway handed to the store (a batch counts its messages)");
    fprintf(f, "shmq_gateway_messages_sent_total %llu\n",
            (unsigned long long)LOAD(g->messages_sent));
    family(f, "shmq_gateway_send_errors_total", "counter", "Sends and send-backs that failed");
    fprintf(f, "shmq_gateway_send_errors_total %llu\n", (unsigned long long)LOAD(g->send_errors));
    family(f, "shmq_gateway_bytes_total", "counter",
           "Bytes the gateway read from clients (in) and queued to them (out)");
    sample1(f, "shmq_gateway_bytes_total", "direction", "in", (long long)LOAD(g->bytes_in));
    sample1(f, "shmq_gateway_bytes_total", "direction", "out", (long long)LOAD(g->bytes_out));
    family(f, "shmq_gateway_held_pulls", "gauge", "Pulls the gateway holds for long polling");
    fprintf(f, "shmq_gateway_held_pulls %llu\n", (unsigned long long)LOAD(g->held_pulls));
}

int shmq_metrics_text(const shmq_ctl_t *ctl, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL) {
        return -ENOMEM;
    }
    store_metrics(f, ctl);
    counter_metrics(f, ctl);
    disk_metrics(f, ctl);
    worker_metrics(f, ctl);
    topic_metrics(f, ctl);
    queue_metrics(f, ctl);
    if (ctl->cons != NULL) {
        member_metrics(f, ctl);
    }
    scheduler_metrics(f, ctl);
    replication_metrics(f, ctl);
    gateway_metrics(f, ctl);
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return -ENOMEM;
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *len = n;
    return 0;
}
