/*
 * store_content: the checking consumer of the corruption campaign
 * (tests/torture/corruption.pl).  It waits until a freshly started store
 * has settled, then prints everything the store gives its users, one line
 * per fact, so that the campaign can compare a damaged store with the intact
 * one line by line:
 *
 *   store_content --store DIR [--pid P] [--wait-ms MS] [--keys FILE]
 *
 * Waiting (each step bounded by --wait-ms, default 30000): the control
 * block is ready and the store running (shmqd's pid P, when given, still
 * alive: otherwise "STATE exited" and exit 3); then the store settles:
 * every message dispatched and indexed, the scheduler's counters set and
 * its timer caught up with the clock, and nothing moving between two looks
 * 200 ms apart ("QUIET timeout" when it does not, and the lines follow all
 * the same).
 *
 * Lines (fields separated by one space; absent properties print as "-"):
 *   STATE running
 *   W <worker> <state> <restarts> <last exit>       every worker of the table
 *   S <delay pending> <timer pending> <dropped> <delay delivered> <timer delivered>
 *   T <topic> <read queues> <write queues> <perm>   the topic table
 *   O <group> <topic> <queue> <offset>             committed consumer offsets
 *   Q <topic> <queue> <min> <max>                  every queue a consumer sees
 *   M <topic> <queue> <queue offset> <phys> <size> <body fnv> <body len> <props fnv>
 *     <uniq key> <keys> <tags> <reconsume> <store ts> <born ts> <flag> <sysflag>
 *   X <topic> <queue> <queue offset> <error> <file> <file offset> <check>
 *       a pull failed there (SHMQ_E_CORRUPT: the record is not delivered); the
 *       read goes on after it
 *   X <topic> query-<K|U>-<key> <phys> <error> - -1 <n>
 *       a query left n candidates out as corrupt, the first at CommitLog offset phys
 *   P <topic> <queue> <offset> <status> <next>      a pull status that skipped units
 *   K <topic> <key> <n> <phys>:<body fnv>:<props fnv>,...   query by key (--keys)
 *   U <topic> <uniq> <n> <phys>:<body fnv>:<props fnv>,...  query by UNIQ_KEY
 * The messages are read by a consumer without a group (nothing is
 * committed), with its default checks (CRCs on), from each queue's min
 * offset to its max.  --keys FILE holds lines "K <topic> <key>" and
 * "U <topic> <uniq key>".
 *
 * Exit 0 when the lines were printed, 3 when the store did not run, 1 on
 * an error of the helper itself, 2 on bad arguments.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm/ctl.h"
#include "shmq/admin.h"
#include "shmq/consumer.h"

#include "common/helper_util.h"

#define BATCH 256

static uint64_t fnv64(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 1099511628211ULL;
    }
    return h;
}

/* Is pid alive and not a zombie? */
static int alive(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    int ok = 1;

    if (kill(pid, 0) != 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "State:", 6)) {
            ok = strchr(line, 'Z') == NULL;
            break;
        }
    }
    fclose(f);
    return ok;
}

static void print_prop(const shmq_msg_view_t *v, const char *name)
{
    size_t len;
    const char *p = shmq_msg_property(v, name, &len);
    putchar(' ');
    if (!p || len == 0) {
        putchar('-');
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c >= 0x7f) {
            printf("\\x%02x", c);
        } else {
            putchar(c);
        }
    }
}

static void print_msg(const shmq_msg_view_t *v)
{
    printf("M %.*s %d %lld %lld %d %016llx %zu %016llx", (int)v->topic_len, v->topic,
           (int)v->queue_id, (long long)v->queue_offset, (long long)v->phys_offset, (int)v->size,
           (unsigned long long)fnv64(v->body, v->body_len), v->body_len,
           (unsigned long long)fnv64(v->props, v->props_len));
    print_prop(v, SHMQ_PROP_UNIQ_KEY);
    print_prop(v, SHMQ_PROP_KEYS);
    print_prop(v, SHMQ_PROP_TAGS);
    printf(" %d %lld %lld %d %d\n", (int)v->reconsume_times, (long long)v->store_ts,
           (long long)v->born_ts, (int)v->flag, (int)v->sysflag);
}

/* ---- waiting ----------------------------------------------------------------------------- */

typedef struct sample {
    int64_t wrote, dispatched, indexed, delay_pending, timer_pending, timer_read_ms;
    uint64_t dropped, delay_delivered, timer_delivered;
} sample_t;

static void take(const shmq_ctl_block_t *b, sample_t *s)
{
    s->wrote = shmq_ctl_load(&b->wrote);
    s->dispatched = shmq_ctl_load(&b->dispatched);
    s->indexed = shmq_ctl_load(&b->indexed);
    s->delay_pending = atomic_load(&b->scheduler.delay_pending);
    s->timer_pending = atomic_load(&b->scheduler.timer_pending);
    s->timer_read_ms = atomic_load(&b->scheduler.timer_read_ms);
    s->dropped = atomic_load(&b->scheduler.dropped);
    s->delay_delivered = atomic_load(&b->scheduler.delay_delivered);
    s->timer_delivered = atomic_load(&b->scheduler.timer_delivered);
}

static const shmq_ctl_worker_t *worker(const shmq_ctl_block_t *b, const char *name)
{
    for (int i = 0; i < SHMQ_CTL_MAX_WORKERS; i++) {
        if (!strcmp(b->workers[i].name, name)) {
            return &b->workers[i];
        }
    }
    return NULL;
}

/* Settled: dispatched and indexed to the end, the timer caught up, nothing moving. */
static int settled(const shmq_ctl_block_t *b, const sample_t *now, const sample_t *prev,
                   int timer_files)
{
    const shmq_ctl_worker_t *sc = worker(b, "scheduler");
    const shmq_ctl_worker_t *ix = worker(b, "indexer");
    if (now->dispatched != now->wrote) {
        return 0;
    }
    if (ix && now->indexed != now->wrote) {
        return 0;
    }
    if (sc && timer_files && now->timer_read_ms < shmq_now_ms() - 2500) {
        return 0;
    }
    if (sc && atomic_load(&sc->state) != SHMQ_WORKER_RUNNING) {
        return 0;
    }
    return now->wrote == prev->wrote && now->delay_pending == prev->delay_pending &&
           now->timer_pending == prev->timer_pending && now->dropped == prev->dropped &&
           now->delay_delivered == prev->delay_delivered &&
           now->timer_delivered == prev->timer_delivered;
}

/* ---- what is printed ------------------------------------------------------------------ */

static int print_topic(const shmq_ctl_topic_t *t, void *arg)
{
    (void)arg;
    printf("T %s %d %d %d\n", t->name, (int)t->read_queue_nums, (int)t->write_queue_nums,
           (int)t->perm);
    return 0;
}

/* Read one queue from its min to its max, printing every message or failure. */
static void read_queue(shmq_consumer_t *c, shmq_pull_result_t *pr, const char *topic, int32_t q)
{
    int64_t min, max, off;
    int stuck = 0;

    if (shmq_queue_offsets(c, topic, q, &min, &max) < 0) {
        printf("Q %s %d none\n", topic, (int)q);
        return;
    }
    printf("Q %s %d %lld %lld\n", topic, (int)q, (long long)min, (long long)max);
    off = min;
    while (off < max) {
        shmq_error_clear();
        int rc = shmq_pull(c, topic, q, off, BATCH, NULL, 0, pr);
        if (rc < 0) {
            const shmq_corrupt_t *x = &pr->corrupt;
            if (rc == SHMQ_E_CORRUPT && x->queue_offset >= off) {
                printf("X %s %d %lld %d %s %lld %d\n", topic, (int)q, (long long)x->queue_offset,
                       rc, x->file[0] ? x->file : "-", (long long)x->file_offset, x->check);
                off = x->queue_offset + 1;
                continue;
            }
            printf("X %s %d %lld %d - -1 0\n", topic, (int)q, (long long)off, rc);
            off++;
            continue;
        }
        if (pr->status == SHMQ_PULL_FOUND) {
            for (size_t i = 0; i < pr->count; i++) {
                print_msg(&pr->msgs[i]);
            }
        } else {
            printf("P %s %d %lld %s %lld\n", topic, (int)q, (long long)off,
                   shmq_pull_status_name(pr->status), (long long)pr->next_offset);
        }
        if (pr->next_offset <= off) {
            if (++stuck > 3) {
                printf("P %s %d %lld STUCK %lld\n", topic, (int)q, (long long)off,
                       (long long)pr->next_offset);
                return;
            }
            continue;
        }
        stuck = 0;
        off = pr->next_offset;
    }
}

typedef struct qname {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t q;
} qname_t;

static int qname_cmp(const void *x, const void *y)
{
    const qname_t *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->q > b->q) - (a->q < b->q);
}

/* Every queue of the topic table and of the control block's queue table, sorted. */
static size_t list_queues(shmq_ctl_t *ctl, shmq_consumer_t *c, qname_t **out)
{
    size_t n = 0, cap = 256;
    qname_t *l = malloc(cap * sizeof(*l));
    const shmq_ctl_block_t *b = ctl->blk;

    if (!l) {
        return 0;
    }
    for (int i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        shmq_ctl_topic_t t;
        if (atomic_load(&b->topics[i].state) != SHMQ_ENTRY_ACTIVE ||
            shmq_ctl_topic_get(ctl, b->topics[i].name, strlen(b->topics[i].name), &t) < 0) {
            continue;
        }
        int nq = shmq_topic_queue_count(c, t.name);
        for (int32_t q = 0; q < nq; q++) {
            if (n == cap && !(l = realloc(l, (cap *= 2) * sizeof(*l)))) {
                return 0;
            }
            snprintf(l[n].topic, sizeof(l[n].topic), "%s", t.name);
            l[n++].q = q;
        }
    }
    for (int i = 0; i < SHMQ_CTL_MAX_QUEUES; i++) {
        const shmq_ctl_queue_t *e = &b->queues[i];
        if (atomic_load(&e->state) != SHMQ_ENTRY_ACTIVE || e->topic_len > SHMQ_TOPIC_MAX_ANY) {
            continue;
        }
        if (n == cap && !(l = realloc(l, (cap *= 2) * sizeof(*l)))) {
            return 0;
        }
        memcpy(l[n].topic, e->topic, e->topic_len);
        l[n].topic[e->topic_len] = '\0';
        l[n++].q = e->queue_id;
    }
    qsort(l, n, sizeof(*l), qname_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || qname_cmp(&l[k - 1], &l[i]) != 0) {
            l[k++] = l[i];
        }
    }
    *out = l;
    return k;
}

static int result_cmp(const void *x, const void *y)
{
    const shmq_msg_view_t *a = x, *b = y;
    return (a->phys_offset > b->phys_offset) - (a->phys_offset < b->phys_offset);
}

static void print_query(char kind, const char *topic, const char *key, int rc,
                        shmq_query_result_t *r)
{
    if (rc < 0) {
        printf("%c %s %s error %d\n", kind, topic, key, rc);
        return;
    }
    qsort(r->msgs, r->count, sizeof(r->msgs[0]), result_cmp);
    if (r->corrupt > 0) {
        /* A candidate left out, and said so: an error the reader sees. */
        printf("X %s query-%c-%s %lld %d - -1 %zu\n", topic, kind, key, (long long)r->corrupt_phys,
               SHMQ_E_CORRUPT, r->corrupt);
    }
    printf("%c %s %s %zu ", kind, topic, key, r->count);
    for (size_t i = 0; i < r->count; i++) {
        const shmq_msg_view_t *v = &r->msgs[i];
        printf("%s%lld:%016llx:%016llx", i ? "," : "", (long long)v->phys_offset,
               (unsigned long long)fnv64(v->body, v->body_len),
               (unsigned long long)fnv64(v->props, v->props_len));
    }
    putchar('\n');
}

static void run_queries(const char *root, const char *keys_file)
{
    FILE *f = fopen(keys_file, "r");
    shmq_admin_t *a = NULL;
    shmq_query_result_t *r = malloc(sizeof(*r));
    char line[1024], topic[512], key[512], kind;
    int rc;

    if (!f || !r) {
        printf("K error cannot read %s\n", keys_file);
        goto out;
    }
    rc = shmq_admin_open(root, &a);
    if (rc < 0) {
        printf("K error admin open %d\n", rc);
        goto out;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%c %511s %511s", &kind, topic, key) != 3) {
            continue;
        }
        shmq_error_clear();
        if (kind == 'K') {
            rc = shmq_query_by_key(a, topic, key, 0, INT64_MAX, 64, r);
        } else if (kind == 'U') {
            rc = shmq_query_by_uniq_key(a, topic, key, r);
        } else {
            continue;
        }
        print_query(kind, topic, key, rc, r);
    }
out:
    if (a) {
        shmq_admin_close(a);
    }
    if (f) {
        fclose(f);
    }
    free(r);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"pid", required_argument, NULL, 'p'},
        {"wait-ms", required_argument, NULL, 'w'},
        {"keys", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const char *root = NULL, *keys = NULL;
    long pid = 0, wait_ms = 30000;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            root = optarg;
            break;
        case 'p':
            pid = strtol(optarg, NULL, 10);
            break;
        case 'w':
            wait_ms = strtol(optarg, NULL, 10);
            break;
        case 'k':
            keys = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!root || wait_ms <= 0 || pid < 0) {
        fprintf(stderr, "usage: store_content --store DIR [--pid P] [--wait-ms MS] [--keys "
                        "FILE]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    /* The store runs. */
    shmq_ctl_t ctl;
    int64_t deadline = shmq_mono_ms() + wait_ms;
    for (;;) {
        memset(&ctl, 0, sizeof(ctl));
        rc = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl);
        if (rc == 0) {
            uint32_t st = atomic_load(&ctl.blk->hdr.state);
            if (st == SHMQ_STATE_RUNNING) {
                break;
            }
            shmq_ctl_detach(&ctl);
            if (st == SHMQ_STATE_FAILED) {
                printf("STATE failed\n");
                return 3;
            }
        }
        if (pid > 0 && !alive((pid_t)pid)) {
            printf("STATE exited\n");
            return 3;
        }
        if (shmq_mono_ms() > deadline) {
            printf("STATE timeout\n");
            return 3;
        }
        helper_sleep_ms(50);
    }
    printf("STATE running\n");

    /* It settles. */
    char path[PATH_MAX + 16];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/timerwheel", root);
    int timer_files = stat(path, &sb) == 0;
    sample_t prev, now;
    take(ctl.blk, &prev);
    deadline = shmq_mono_ms() + wait_ms;
    for (;;) {
        helper_sleep_ms(200);
        take(ctl.blk, &now);
        if (settled(ctl.blk, &now, &prev, timer_files)) {
            break;
        }
        prev = now;
        if (shmq_mono_ms() > deadline) {
            printf("QUIET timeout\n");
            break;
        }
        if (pid > 0 && !alive((pid_t)pid)) {
            printf("STATE exited\n");
            shmq_ctl_detach(&ctl);
            return 3;
        }
    }
    for (int i = 0; i < SHMQ_CTL_MAX_WORKERS; i++) {
        const shmq_ctl_worker_t *w = &ctl.blk->workers[i];
        if (w->name[0]) {
            printf("W %s %s %u %d\n", w->name, shmq_worker_state_name(atomic_load(&w->state)),
                   atomic_load(&w->restarts), (int)atomic_load(&w->last_exit));
        }
    }
    printf("S %lld %lld %llu %llu %llu\n", (long long)now.delay_pending,
           (long long)now.timer_pending, (unsigned long long)now.dropped,
           (unsigned long long)now.delay_delivered, (unsigned long long)now.timer_delivered);
    shmq_ctl_topic_foreach(&ctl, print_topic, NULL);
    for (int i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
        const shmq_ctl_offset_t *o = &ctl.cons->offsets[i];
        if (atomic_load(&o->state) == SHMQ_ENTRY_ACTIVE) {
            printf("O %s %s %d %lld\n", o->group, o->topic, (int)o->queue_id,
                   (long long)atomic_load(&o->offset));
        }
    }

    /* Every message a consumer gets. */
    shmq_consumer_t *c;
    shmq_pull_result_t *pr = malloc(sizeof(*pr));
    rc = pr ? shmq_consumer_open(root, NULL, &c) : -ENOMEM;
    if (rc < 0) {
        printf("ERROR consumer open %d\n", rc);
        free(pr);
        shmq_ctl_detach(&ctl);
        return 1;
    }
    qname_t *ql = NULL;
    size_t nq = list_queues(&ctl, c, &ql);
    for (size_t i = 0; i < nq; i++) {
        read_queue(c, pr, ql[i].topic, ql[i].q);
    }
    free(ql);
    shmq_consumer_close(c);
    free(pr);
    shmq_ctl_detach(&ctl);
    if (keys) {
        run_queries(root, keys);
    }
    printf("END\n");
    return 0;
}
