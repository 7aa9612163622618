/*
 * The record shmq-trace's BPF program (shmq_trace.bpf.c) hands to the tool
 * (main.c) for each probe that fired: shared by both sides, so plain
 * fixed-width types only.
 */
#ifndef SHMQ_TRACE_EVENT_H
#define SHMQ_TRACE_EVENT_H

#define TRACE_TOPIC_MAX 128 /* bytes of a topic (or role, phase) the event keeps */

/* Which probe fired (docs/tracing.md names their arguments). */
enum trace_kind {
    TRACE_PRODUCE = 0,      /* a[0] ring, a[1] req_id, a[2] queue_id, a[3] count, a[4] bytes */
    TRACE_APPEND = 1,       /* a[0] ring, a[1] req_id, a[2] phys, a[3] end, a[4] count,
                               a[5] queue_id, a[6] queue offset */
    TRACE_FLUSH = 2,        /* a[0] from, a[1] to, a[2] duration ns */
    TRACE_FLUSH_ERROR = 3,  /* a[0] position, a[1] negative errno */
    TRACE_DISPATCH = 4,     /* a[0] phys, a[1] size, a[2] queue_id, a[3] queue offset */
    TRACE_PULL = 5,         /* a[0] phys, a[1] size, a[2] queue_id, a[3] queue offset */
    TRACE_WORKER_START = 6, /* a[0] pid; text: the role */
    TRACE_WORKER_EXIT = 7,  /* a[0] pid, a[1] status (negative: the signal); text: the role */
    TRACE_RECOVERY = 8,     /* a[0] phase; text: its name */
    TRACE_KINDS = 9
};

struct trace_event {
    unsigned int kind;     /* enum trace_kind */
    unsigned int pid;      /* the process the probe fired in (thread group id) */
    unsigned long long ts; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    long long a[7];
    unsigned int text_len; /* bytes of text (a topic, a role or a phase name) */
    char text[TRACE_TOPIC_MAX];
};

#endif
