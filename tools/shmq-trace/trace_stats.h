/*
 * shmq-trace's user side: the stages of each message matched from the
 * probes' events, latency histograms per stage, counts per topic, and the
 * report (text or JSON).  All bounded: the tables that match stages keep a
 * fixed number of recent messages, and an older message whose later stage
 * comes after it was pushed out is counted as unmatched.
 */
#ifndef SHMQ_TRACE_STATS_H
#define SHMQ_TRACE_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "trace_event.h"

/* Power-of-two buckets of nanoseconds: bucket k holds values in [2^k, 2^(k+1)), 0 in 0. */
#define TRACE_HIST_BUCKETS 64

typedef struct trace_hist {
    uint64_t bucket[TRACE_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
} trace_hist_t;

/* The stages a message's latency is broken into, and the fsync itself. */
enum trace_stage {
    STAGE_ENQUEUE_APPEND = 0, /* producer's ring entry published -> the writer appended it */
    STAGE_APPEND_FLUSH,       /* appended -> the flush that covers it returned */
    STAGE_APPEND_DISPATCH,    /* appended -> its ConsumeQueue unit was written */
    STAGE_DISPATCH_PULL,      /* unit written -> a consumer's pull returned it */
    STAGE_ENQUEUE_PULL,       /* end to end: published by the producer -> pulled */
    STAGE_FLUSH_DURATION,     /* one CommitLog flush (msync or fdatasync) */
    STAGE_COUNT
};

typedef struct trace_stats trace_stats_t;

trace_stats_t *trace_stats_new(void);
void trace_stats_free(trace_stats_t *s);

/* Take one event from the BPF side (ts: CLOCK_MONOTONIC nanoseconds). */
void trace_stats_add(trace_stats_t *s, const struct trace_event *e);

/* Events the BPF side could not hand over (its ring buffer was full), per kind. */
void trace_stats_set_lost(trace_stats_t *s, const uint64_t lost[TRACE_KINDS]);

/* The report over elapsed_ns of tracing: text for people, or a JSON object. */
void trace_stats_print(const trace_stats_t *s, FILE *f, uint64_t elapsed_ns, int top);
json_t *trace_stats_json(const trace_stats_t *s, uint64_t elapsed_ns, int top);

#endif
