/*
 * shmq-trace's BPF side: one program per shmq USDT probe (libshm/base/probes.h),
 * each copying the probe's arguments and the time into a ring buffer for the
 * tool (main.c), which matches the stages of each message and keeps the
 * histograms.  When the ring buffer is full an event is counted as lost
 * (lost[kind]) rather than waited for: a tracer never slows the store down
 * more than its probes do.
 */
#include <stdbool.h>

#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "trace_event.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 32 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TRACE_KINDS);
    __type(key, __u32);
    __type(value, __u64);
} lost SEC(".maps");

static __always_inline struct trace_event *begin(__u32 kind)
{
    struct trace_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        __u64 *l = bpf_map_lookup_elem(&lost, &kind);
        if (l) {
            __sync_fetch_and_add(l, 1);
        }
        return 0;
    }
    e->kind = kind;
    e->pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
    e->ts = bpf_ktime_get_ns();
    e->text_len = 0;
    return e;
}

/* A topic of len bytes (not NUL-terminated) at p in the traced process. */
static __always_inline void text_bytes(struct trace_event *e, const void *p, long len)
{
    if (len <= 0) {
        return;
    }
    __u32 n = len > TRACE_TOPIC_MAX ? TRACE_TOPIC_MAX : (__u32)len;
    if (bpf_probe_read_user(e->text, n, p) == 0) {
        e->text_len = n;
    }
}

/* A NUL-terminated string at p in the traced process. */
static __always_inline void text_str(struct trace_event *e, const void *p)
{
    long n = bpf_probe_read_user_str(e->text, sizeof(e->text), p);
    e->text_len = n > 1 ? (__u32)(n - 1) : 0;
}

SEC("usdt")
int BPF_USDT(on_produce, long ring, long req, long qid, long count, long bytes, const void *topic,
             long tlen)
{
    struct trace_event *e = begin(TRACE_PRODUCE);
    if (!e) {
        return 0;
    }
    e->a[0] = ring;
    e->a[1] = req;
    e->a[2] = qid;
    e->a[3] = count;
    e->a[4] = bytes;
    text_bytes(e, topic, tlen);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_append, long ring, long req, long phys, long end, long count, long qid, long qoff,
             const void *topic, long tlen)
{
    struct trace_event *e = begin(TRACE_APPEND);
    if (!e) {
        return 0;
    }
    e->a[0] = ring;
    e->a[1] = req;
    e->a[2] = phys;
    e->a[3] = end;
    e->a[4] = count;
    e->a[5] = qid;
    e->a[6] = qoff;
    text_bytes(e, topic, tlen);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_flush, long from, long to, long ns)
{
    struct trace_event *e = begin(TRACE_FLUSH);
    if (!e) {
        return 0;
    }
    e->a[0] = from;
    e->a[1] = to;
    e->a[2] = ns;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_flush_error, long pos, long err)
{
    struct trace_event *e = begin(TRACE_FLUSH_ERROR);
    if (!e) {
        return 0;
    }
    e->a[0] = pos;
    e->a[1] = err;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* dispatch and pull have the same arguments. */
static __always_inline int unit_event(__u32 kind, long phys, long size, long qid, long qoff,
                                      const void *topic, long tlen)
{
    struct trace_event *e = begin(kind);
    if (!e) {
        return 0;
    }
    e->a[0] = phys;
    e->a[1] = size;
    e->a[2] = qid;
    e->a[3] = qoff;
    text_bytes(e, topic, tlen);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_dispatch, long phys, long size, long qid, long qoff, const void *topic, long tlen)
{
    return unit_event(TRACE_DISPATCH, phys, size, qid, qoff, topic, tlen);
}

SEC("usdt")
int BPF_USDT(on_pull, long phys, long size, long qid, long qoff, const void *topic, long tlen)
{
    return unit_event(TRACE_PULL, phys, size, qid, qoff, topic, tlen);
}

SEC("usdt")
int BPF_USDT(on_worker_start, const void *role, long pid)
{
    struct trace_event *e = begin(TRACE_WORKER_START);
    if (!e) {
        return 0;
    }
    e->a[0] = pid;
    text_str(e, role);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_worker_exit, const void *role, long pid, long status)
{
    struct trace_event *e = begin(TRACE_WORKER_EXIT);
    if (!e) {
        return 0;
    }
    e->a[0] = pid;
    e->a[1] = status;
    text_str(e, role);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_recovery, long phase, const void *name)
{
    struct trace_event *e = begin(TRACE_RECOVERY);
    if (!e) {
        return 0;
    }
    e->a[0] = phase;
    text_str(e, name);
    bpf_ringbuf_submit(e, 0);
    return 0;
}
