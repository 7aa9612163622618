/*
 * shmq-trace's matching of stages and its histograms (trace_stats.h).
 *
 * A message is followed by two keys: its producer's ring and request id
 * (produce -> append) and its CommitLog offset (append -> flush, dispatch,
 * pull).  Appends come from the one writer in offset order, so they are kept
 * in a window of offset ranges (a producer's batch is one range): a flush
 * to position P covers every range ending at or below P, and a dispatched
 * or pulled record finds its range by binary search.  The window keeps the
 * last WINDOW_SLOTS appends: a record pulled after more than that many
 * appends came after it is counted as unmatched.
 */
#include "trace_stats.h"

#include <stdlib.h>
#include <string.h>

#define PROD_SLOTS   (1u << 16) /* producer entries waiting for their append */
#define WINDOW_SLOTS (1u << 20) /* appended ranges kept (power of two) */
#define TOPICS_MAX   512

typedef struct prod_slot {
    uint64_t key; /* ring << 48 ^ request id; 0 free */
    uint64_t ts;
} prod_slot_t;

typedef struct range {
    int64_t phys, end;
    uint64_t ts_append, ts_enqueue; /* ts_enqueue 0: the produce was not seen */
    uint64_t ts_dispatch;           /* its first record's dispatch; 0 not yet */
    uint32_t count;
} range_t;

typedef struct topic_count {
    char name[TRACE_TOPIC_MAX + 1];
    uint64_t messages, bytes;
} topic_count_t;

struct trace_stats {
    trace_hist_t hist[STAGE_COUNT];
    uint64_t events[TRACE_KINDS];   /* probe firings */
    uint64_t messages[TRACE_KINDS]; /* messages they stand for (a batch is several) */
    uint64_t lost[TRACE_KINDS];
    uint64_t unmatched[STAGE_COUNT]; /* a later stage whose earlier one was not kept */
    prod_slot_t *prod;
    range_t *win;
    uint64_t win_head, win_tail, win_flushed; /* ranges [tail, head); flushed: first not */
    topic_count_t *topics;
    size_t ntopics;
    uint64_t topics_dropped; /* messages of topics beyond TOPICS_MAX */
    uint64_t flush_errors;
    json_t *log; /* worker starts and exits, recovery steps, flush errors, in order */
};

static const char *const stage_names[STAGE_COUNT] = {
    "enqueue_to_append", "append_to_flush", "append_to_dispatch",
    "dispatch_to_pull",  "enqueue_to_pull", "flush_duration",
};

static const char *const kind_names[TRACE_KINDS] = {
    "produce", "append",       "flush",       "flush_error", "dispatch",
    "pull",    "worker_start", "worker_exit", "recovery",
};

trace_stats_t *trace_stats_new(void)
{
    trace_stats_t *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->prod = calloc(PROD_SLOTS, sizeof(*s->prod));
    s->win = calloc(WINDOW_SLOTS, sizeof(*s->win));
    s->topics = calloc(TOPICS_MAX, sizeof(*s->topics));
    s->log = json_array();
    if (!s->prod || !s->win || !s->topics || !s->log) {
        trace_stats_free(s);
        return NULL;
    }
    return s;
}

void trace_stats_free(trace_stats_t *s)
{
    if (!s) {
        return;
    }
    free(s->prod);
    free(s->win);
    free(s->topics);
    json_decref(s->log);
    free(s);
}

static void hist_add(trace_hist_t *h, uint64_t ns, uint64_t weight)
{
    int k = ns == 0 ? 0 : 63 - __builtin_clzll(ns);
    h->bucket[k] += weight;
    h->count += weight;
    h->sum_ns += ns * weight;
    if (ns > h->max_ns) {
        h->max_ns = ns;
    }
}

/* later - earlier, 0 when the clocks disagree (events of two CPUs a few ns apart). */
static uint64_t span(uint64_t later, uint64_t earlier)
{
    return later > earlier ? later - earlier : 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint64_t prod_key(long long ring, long long req)
{
    return ((uint64_t)ring << 48 ^ (uint64_t)req) | 1ULL << 63; /* never 0 */
}

/* A produced entry waits in one of PROD_WAYS slots from its key's home (the oldest gives way). */
#define PROD_WAYS 8

static void prod_put(trace_stats_t *s, uint64_t key, uint64_t ts)
{
    uint64_t home = mix(key);
    prod_slot_t *victim = NULL;
    for (uint64_t i = 0; i < PROD_WAYS; i++) {
        prod_slot_t *p = &s->prod[(home + i) & (PROD_SLOTS - 1)];
        if (p->key == 0 || p->key == key) {
            victim = p;
            break;
        }
        if (!victim || p->ts < victim->ts) {
            victim = p;
        }
    }
    victim->key = key;
    victim->ts = ts;
}

static prod_slot_t *prod_find(trace_stats_t *s, uint64_t key)
{
    uint64_t home = mix(key);
    for (uint64_t i = 0; i < PROD_WAYS; i++) {
        prod_slot_t *p = &s->prod[(home + i) & (PROD_SLOTS - 1)];
        if (p->key == key) {
            return p;
        }
    }
    return NULL;
}

static void topic_add(trace_stats_t *s, const struct trace_event *e, uint64_t msgs, uint64_t bytes)
{
    size_t len = e->text_len < TRACE_TOPIC_MAX ? e->text_len : TRACE_TOPIC_MAX;
    for (size_t i = 0; i < s->ntopics; i++) {
        topic_count_t *t = &s->topics[i];
        if (strlen(t->name) == len && memcmp(t->name, e->text, len) == 0) {
            t->messages += msgs;
            t->bytes += bytes;
            return;
        }
    }
    if (s->ntopics == TOPICS_MAX) {
        s->topics_dropped += msgs;
        return;
    }
    topic_count_t *t = &s->topics[s->ntopics++];
    memcpy(t->name, e->text, len);
    t->name[len] = '\0';
    t->messages = msgs;
    t->bytes = bytes;
}

/* The kept range holding offset phys, or NULL. */
static range_t *range_find(trace_stats_t *s, int64_t phys)
{
    uint64_t lo = s->win_tail, hi = s->win_head; /* search [lo, hi) */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        range_t *r = &s->win[mid & (WINDOW_SLOTS - 1)];
        if (phys < r->phys) {
            hi = mid;
        } else if (phys >= r->end) {
            lo = mid + 1;
        } else {
            return r;
        }
    }
    return NULL;
}

static void on_append(trace_stats_t *s, const struct trace_event *e)
{
    uint64_t count = e->a[4] > 0 ? (uint64_t)e->a[4] : 1;
    s->messages[TRACE_APPEND] += count;
    topic_add(s, e, count, (uint64_t)(e->a[3] - e->a[2]));
    uint64_t ts_enqueue = 0;
    prod_slot_t *p = prod_find(s, prod_key(e->a[0], e->a[1]));
    if (p) {
        ts_enqueue = p->ts;
        hist_add(&s->hist[STAGE_ENQUEUE_APPEND], span(e->ts, p->ts), count);
        p->key = 0;
    } else {
        s->unmatched[STAGE_ENQUEUE_APPEND] += count;
    }
    if (s->win_head > s->win_tail && e->a[2] < s->win[(s->win_head - 1) & (WINDOW_SLOTS - 1)].end) {
        /* The log went back (a recovery cut it): the kept ranges no longer describe it. */
        s->win_tail = s->win_flushed = s->win_head;
    }
    if (s->win_head - s->win_tail == WINDOW_SLOTS) {
        s->win_tail++;
        if (s->win_flushed < s->win_tail) {
            s->unmatched[STAGE_APPEND_FLUSH] +=
                s->win[(s->win_tail - 1) & (WINDOW_SLOTS - 1)].count;
            s->win_flushed = s->win_tail;
        }
    }
    range_t *r = &s->win[s->win_head++ & (WINDOW_SLOTS - 1)];
    *r = (range_t){.phys = e->a[2],
                   .end = e->a[3],
                   .ts_append = e->ts,
                   .ts_enqueue = ts_enqueue,
                   .count = (uint32_t)count};
}

static void on_flush(trace_stats_t *s, const struct trace_event *e)
{
    hist_add(&s->hist[STAGE_FLUSH_DURATION], (uint64_t)(e->a[2] > 0 ? e->a[2] : 0), 1);
    while (s->win_flushed < s->win_head) {
        const range_t *r = &s->win[s->win_flushed & (WINDOW_SLOTS - 1)];
        if (r->end > e->a[1]) {
            break;
        }
        hist_add(&s->hist[STAGE_APPEND_FLUSH], span(e->ts, r->ts_append), r->count);
        s->win_flushed++;
    }
}

static void on_dispatch(trace_stats_t *s, const struct trace_event *e)
{
    s->messages[TRACE_DISPATCH]++;
    range_t *r = range_find(s, e->a[0]);
    if (r) {
        hist_add(&s->hist[STAGE_APPEND_DISPATCH], span(e->ts, r->ts_append), 1);
        if (r->ts_dispatch == 0) {
            r->ts_dispatch = e->ts; /* a batch's records are dispatched together */
        }
    } else {
        s->unmatched[STAGE_APPEND_DISPATCH]++;
    }
}

static void on_pull(trace_stats_t *s, const struct trace_event *e)
{
    s->messages[TRACE_PULL]++;
    const range_t *r = range_find(s, e->a[0]);
    if (r && r->ts_dispatch != 0) {
        hist_add(&s->hist[STAGE_DISPATCH_PULL], span(e->ts, r->ts_dispatch), 1);
    } else {
        s->unmatched[STAGE_DISPATCH_PULL]++;
    }
    if (r && r->ts_enqueue != 0) {
        hist_add(&s->hist[STAGE_ENQUEUE_PULL], span(e->ts, r->ts_enqueue), 1);
    } else {
        s->unmatched[STAGE_ENQUEUE_PULL]++;
    }
}

static void log_event(trace_stats_t *s, const struct trace_event *e)
{
    if (json_array_size(s->log) >= 1024) {
        return;
    }
    json_t *o = json_pack("{s:s, s:I, s:s#}", "event", kind_names[e->kind], "ts_ns",
                          (json_int_t)e->ts, "text", e->text,
                          (int)(e->text_len < TRACE_TOPIC_MAX ? e->text_len : TRACE_TOPIC_MAX));
    if (!o) {
        return;
    }
    switch (e->kind) {
    case TRACE_WORKER_START:
        json_object_set_new(o, "pid", json_integer(e->a[0]));
        break;
    case TRACE_WORKER_EXIT:
        json_object_set_new(o, "pid", json_integer(e->a[0]));
        json_object_set_new(o, "status", json_integer(e->a[1]));
        break;
    case TRACE_RECOVERY:
        json_object_set_new(o, "phase", json_integer(e->a[0]));
        break;
    case TRACE_FLUSH_ERROR:
        json_object_set_new(o, "position", json_integer(e->a[0]));
        json_object_set_new(o, "error", json_integer(e->a[1]));
        break;
    }
    json_array_append_new(s->log, o);
}

void trace_stats_add(trace_stats_t *s, const struct trace_event *e)
{
    if (e->kind >= TRACE_KINDS) {
        return;
    }
    s->events[e->kind]++;
    switch (e->kind) {
    case TRACE_PRODUCE:
        s->messages[TRACE_PRODUCE] += e->a[3] > 0 ? (uint64_t)e->a[3] : 1;
        prod_put(s, prod_key(e->a[0], e->a[1]), e->ts);
        break;
    case TRACE_APPEND:
        on_append(s, e);
        break;
    case TRACE_FLUSH:
        s->messages[TRACE_FLUSH]++;
        on_flush(s, e);
        break;
    case TRACE_DISPATCH:
        on_dispatch(s, e);
        break;
    case TRACE_PULL:
        on_pull(s, e);
        break;
    case TRACE_FLUSH_ERROR:
        s->flush_errors++;
        /* fall through */
    default:
        s->messages[e->kind]++;
        log_event(s, e);
        break;
    }
}

void trace_stats_set_lost(trace_stats_t *s, const uint64_t lost[TRACE_KINDS])
{
    memcpy(s->lost, lost, sizeof(s->lost));
}

/* ---- the report ------------------------------------------------------------------------ */

/* The upper bound (ns) of the bucket holding quantile q of h, capped at its maximum. */
static uint64_t hist_quantile(const trace_hist_t *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count);
    rank = rank < 1 ? 1 : rank;
    uint64_t seen = 0;
    for (int k = 0; k < TRACE_HIST_BUCKETS; k++) {
        seen += h->bucket[k];
        if (seen >= rank) {
            uint64_t hi = k >= 63 ? UINT64_MAX : (2ULL << k) - 1;
            return hi < h->max_ns ? hi : h->max_ns;
        }
    }
    return h->max_ns;
}

static int topic_cmp(const void *a, const void *b)
{
    const topic_count_t *x = a, *y = b;
    return x->messages < y->messages   ? 1
           : x->messages > y->messages ? -1
                                       : strcmp(x->name, y->name);
}

/* The topics, most messages first (a sorted copy the caller frees). */
static topic_count_t *topics_sorted(const trace_stats_t *s)
{
    topic_count_t *t = malloc((s->ntopics ? s->ntopics : 1) * sizeof(*t));
    if (t) {
        memcpy(t, s->topics, s->ntopics * sizeof(*t));
        qsort(t, s->ntopics, sizeof(*t), topic_cmp);
    }
    return t;
}

static double per_sec(uint64_t n, uint64_t elapsed_ns)
{
    return elapsed_ns ? (double)n * 1e9 / (double)elapsed_ns : 0.0;
}

static json_t *hist_json(const trace_hist_t *h)
{
    json_t *b = json_array();
    for (int k = 0; k < TRACE_HIST_BUCKETS; k++) {
        if (h->bucket[k]) {
            uint64_t hi = k >= 63 ? UINT64_MAX : (2ULL << k) - 1;
            json_array_append_new(b, json_pack("{s:I, s:I}", "le_ns", (json_int_t)hi, "count",
                                               (json_int_t)h->bucket[k]));
        }
    }
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:o}", "count", (json_int_t)h->count,
                     "mean_us", h->count ? (double)h->sum_ns / (double)h->count / 1e3 : 0.0,
                     "p50_us", (double)hist_quantile(h, 0.50) / 1e3, "p90_us",
                     (double)hist_quantile(h, 0.90) / 1e3, "p99_us",
                     (double)hist_quantile(h, 0.99) / 1e3, "max_us", (double)h->max_ns / 1e3,
                     "buckets", b);
}

json_t *trace_stats_json(const trace_stats_t *s, uint64_t elapsed_ns, int top)
{
    json_t *o = json_object();
    json_object_set_new(o, "elapsed_s", json_real((double)elapsed_ns / 1e9));
    json_t *ev = json_object(), *msgs = json_object(), *lost = json_object();
    for (int k = 0; k < TRACE_KINDS; k++) {
        json_object_set_new(ev, kind_names[k], json_integer((json_int_t)s->events[k]));
        json_object_set_new(msgs, kind_names[k], json_integer((json_int_t)s->messages[k]));
        json_object_set_new(lost, kind_names[k], json_integer((json_int_t)s->lost[k]));
    }
    json_object_set_new(o, "events", ev);
    json_object_set_new(o, "messages", msgs);
    json_object_set_new(o, "lost", lost);
    json_t *st = json_object(), *un = json_object();
    for (int k = 0; k < STAGE_COUNT; k++) {
        json_object_set_new(st, stage_names[k], hist_json(&s->hist[k]));
        json_object_set_new(un, stage_names[k], json_integer((json_int_t)s->unmatched[k]));
    }
    json_object_set_new(o, "stages", st);
    json_object_set_new(o, "unmatched", un);
    json_t *tops = json_array();
    topic_count_t *t = topics_sorted(s);
    for (size_t i = 0; t && i < s->ntopics && (int)i < top; i++) {
        json_array_append_new(tops,
                              json_pack("{s:s, s:I, s:I, s:f}", "topic", t[i].name, "messages",
                                        (json_int_t)t[i].messages, "bytes", (json_int_t)t[i].bytes,
                                        "per_second", per_sec(t[i].messages, elapsed_ns)));
    }
    free(t);
    json_object_set_new(o, "topics", tops);
    json_object_set_new(o, "log", json_incref(s->log));
    return o;
}

static void hist_print(FILE *f, const char *name, const trace_hist_t *h)
{
    fprintf(f, "%s: %llu", name, (unsigned long long)h->count);
    if (h->count == 0) {
        fprintf(f, "\n");
        return;
    }
    fprintf(f, "  mean %.1f us  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f us\n",
            (double)h->sum_ns / (double)h->count / 1e3, (double)hist_quantile(h, 0.5) / 1e3,
            (double)hist_quantile(h, 0.9) / 1e3, (double)hist_quantile(h, 0.99) / 1e3,
            (double)h->max_ns / 1e3);
    uint64_t most = 0;
    int first = -1, last = 0;
    for (int k = 0; k < TRACE_HIST_BUCKETS; k++) {
        if (h->bucket[k]) {
            most = h->bucket[k] > most ? h->bucket[k] : most;
            first = first < 0 ? k : first;
            last = k;
        }
    }
    for (int k = first; k >= 0 && k <= last; k++) {
        char bar[41];
        int w = (int)(h->bucket[k] * 40 / most);
        memset(bar, '@', (size_t)w);
        bar[w] = '\0';
        fprintf(f, "  [%9.1f, %9.1f) us %10llu |%-40s|\n", (double)(k ? 1ULL << k : 0) / 1e3,
                (double)(2ULL << k) / 1e3, (unsigned long long)h->bucket[k], bar);
    }
}

void trace_stats_print(const trace_stats_t *s, FILE *f, uint64_t elapsed_ns, int top)
{
    fprintf(
        f, "--- %.1f s: %llu produced, %llu appended, %llu flushes, %llu dispatched, %llu pulled\n",
        (double)elapsed_ns / 1e9, (unsigned long long)s->messages[TRACE_PRODUCE],
        (unsigned long long)s->messages[TRACE_APPEND], (unsigned long long)s->events[TRACE_FLUSH],
        (unsigned long long)s->messages[TRACE_DISPATCH],
        (unsigned long long)s->messages[TRACE_PULL]);
    uint64_t lost = 0;
    for (int k = 0; k < TRACE_KINDS; k++) {
        lost += s->lost[k];
    }
    if (lost) {
        fprintf(f, "events lost (the trace buffer was full): %llu\n", (unsigned long long)lost);
    }
    for (int k = 0; k < STAGE_COUNT; k++) {
        hist_print(f, stage_names[k], &s->hist[k]);
    }
    topic_count_t *t = topics_sorted(s);
    if (t && s->ntopics) {
        fprintf(f, "top topics (messages/s):\n");
        for (size_t i = 0; i < s->ntopics && (int)i < top; i++) {
            fprintf(f, "  %-40s %12.1f  (%llu)\n", t[i].name, per_sec(t[i].messages, elapsed_ns),
                    (unsigned long long)t[i].messages);
        }
    }
    free(t);
    size_t i;
    json_t *o;
    json_array_foreach(s->log, i, o)
    {
        fprintf(f, "%s %s", json_string_value(json_object_get(o, "event")),
                json_string_value(json_object_get(o, "text")));
        const char *keys[] = {"pid", "status", "phase", "position", "error"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            json_t *v = json_object_get(o, keys[k]);
            if (v) {
                fprintf(f, " %s=%lld", keys[k], (long long)json_integer_value(v));
            }
        }
        fprintf(f, "\n");
    }
}
