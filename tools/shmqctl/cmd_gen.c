/*
 * shmqctl gen: write synthetic messages straight into a stopped store, for
 * tests and benchmarks of the offline path and of recovery.
 *
 * Opens the store writable (takes the lock, recovers), appends --count
 * messages with shmq_store_put round-robin over --queues queues, and closes
 * it cleanly.  The hot loop allocates nothing and makes no system calls of
 * its own: the body buffer and the properties buffer are built once and only
 * the message index, KEYS and UNIQ_KEY are rewritten per message.
 *
 * SIGINT/SIGTERM stop the loop after the current message; the store is then
 * closed cleanly and gen exits 1.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmqctl.h"
#include "format/names.h"

static volatile sig_atomic_t gen_stop;

static void gen_on_signal(int sig)
{
    (void)sig;
    gen_stop = 1;
}

/* Decimal digits of v into buf (no NUL); returns the length (<= 20). */
static size_t u64_digits(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

/*
 * Put the message index at the start of the body: "<i>|" then the fixed
 * pattern.  Bodies shorter than that keep the last digits of the index.
 */
static void body_stamp(uint8_t *body, size_t size, uint64_t i)
{
    char d[21];
    size_t n = u64_digits(i, d);
    d[n++] = '|';
    if (n <= size) {
        memcpy(body, d, n);
    } else {
        memcpy(body, d + (n - size), size);
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct gen_state {
    char props[SHMQ_PROPS_MAX + 1];
    size_t base_len; /* length of the fixed part (TAGS) */
    char key[32];
    char uniq[SHMQ_UNIQ_KEY_MAX];
} gen_state_t;

/*
 * The topic must have at least --queues queues: create it with that many, or
 * widen an existing one (the store's own auto-creation would give it only
 * defaultTopicQueueNums).
 */
static int gen_prepare_topic(shmqctl_args_t *a, shmq_store_t *st)
{
    const shmq_topic_config_t *tc = shmq_topic_table_get(&st->topics, a->topic);
    shmq_topic_config_t n;
    int rc;

    if (tc && tc->write_queue_nums >= a->queues && tc->read_queue_nums >= a->queues) {
        return 0;
    }
    if (tc) {
        n = *tc;
        fprintf(stderr, "shmqctl: note: topic %s widened from %d to %d queues\n", a->topic,
                (int)tc->write_queue_nums, (int)a->queues);
    } else {
        memset(&n, 0, sizeof(n));
        snprintf(n.name, sizeof(n.name), "%s", a->topic);
        n.perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
    }
    if (n.write_queue_nums < a->queues) {
        n.write_queue_nums = a->queues;
    }
    if (n.read_queue_nums < a->queues) {
        n.read_queue_nums = a->queues;
    }
    shmq_error_clear();
    rc = shmq_topic_table_put(&st->topics, &n);
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot configure topic %s", a->topic);
    }
    st->topics_dirty = true; /* written to config/topics.json at close */
    return 0;
}

static int gen_check_args(shmqctl_args_t *a)
{
    int rc;
    if (!a->topic) {
        return shmqctl_usage_error(a->cmd, "gen needs --topic");
    }
    if (a->count < 0) {
        return shmqctl_usage_error(a->cmd, "gen needs --count");
    }
    if (a->size < 0) {
        return shmqctl_usage_error(a->cmd, "gen needs --size");
    }
    shmq_error_clear();
    rc = shmq_topic_validate(a->topic, strlen(a->topic), a->cfg.max_topic_length);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        return shmqctl_usage_error(a->cmd, "invalid topic '%s'%s%s", a->topic, d[0] ? ": " : "", d);
    }
    if (a->size > a->cfg.max_message_size) {
        return shmqctl_usage_error(a->cmd, "--size %lld exceeds maxMessageSize %d",
                                   (long long)a->size, (int)a->cfg.max_message_size);
    }
    if (a->tags && (!a->tags[0] || strchr(a->tags, SHMQ_PROP_NAME_VALUE_SEP) ||
                    strchr(a->tags, SHMQ_PROP_SEP) || strlen(a->tags) > 4096)) {
        return shmqctl_usage_error(a->cmd, "--tags must be 1..4096 bytes without 0x01/0x02");
    }
    return 0;
}

int shmqctl_cmd_gen(shmqctl_args_t *a)
{
    static const char pattern[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    shmq_store_t *st = NULL;
    gen_state_t *gs = NULL;
    uint8_t *body = NULL;
    shmq_recovery_report_t rep;
    shmq_msg_in_t m;
    shmq_append_result_t res;
    shmqctl_progress_t prog;
    struct sigaction sa, old_int, old_term;
    int64_t i = 0, rec_bytes = 0, first_phys = -1, last_end = 0, t0, elapsed;
    int rc, ret = SHMQCTL_EXIT_OK;
    bool topic_ok;
    double secs;

    rc = gen_check_args(a);
    if (rc) {
        return rc;
    }
    st = calloc(1, sizeof(*st));
    gs = calloc(1, sizeof(*gs));
    body = malloc(a->size > 0 ? (size_t)a->size : 1);
    if (!st || !gs || !body) {
        shmqctl_err("out of memory");
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    for (int64_t j = 0; j < a->size; j++) {
        body[j] = (uint8_t)pattern[j % (int64_t)(sizeof(pattern) - 1)];
    }
    if (a->tags) {
        rc = shmq_props_append(gs->props, sizeof(gs->props) - 1, &gs->base_len, SHMQ_PROP_TAGS,
                               a->tags, strlen(a->tags));
        if (rc < 0) {
            ret = shmqctl_usage_error(a->cmd, "--tags: %s", shmq_strerror(rc));
            goto out;
        }
    }

    /* Before the open: a signal that comes during recovery must not kill us mid-way. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = gen_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (shmqctl_store_open(a, st, 0, &rep) < 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    if (rep.truncated_bytes > 0 || rep.units_rebuilt > 0 || rep.units_truncated > 0) {
        fprintf(stderr,
                "shmqctl: note: recovery at open cut %lld bytes at offset %lld, rebuilt %lld "
                "and dropped %lld ConsumeQueue units\n",
                (long long)rep.truncated_bytes, (long long)rep.recovered_end,
                (long long)rep.units_rebuilt, (long long)rep.units_truncated);
    }

    topic_ok = gen_prepare_topic(a, st) == 0;
    if (!topic_ok) {
        ret = SHMQCTL_EXIT_FAIL; /* skip the loop, close the store cleanly */
    }
    memset(&m, 0, sizeof(m));
    m.topic = a->topic;
    m.topic_len = strlen(a->topic);
    m.body = body;
    m.body_len = (size_t)a->size;
    m.props = gs->props;
    shmq_local_host(&m.born_host, 0);
    m.store_host = st->cl.store_host;

    shmqctl_progress_init(&prog, "gen");
    t0 = shmqctl_now_ms();
    rc = 0;
    for (i = 0; topic_ok && i < a->count && !gen_stop; i++) {
        size_t len = gs->base_len;
        size_t klen;

        body_stamp(body, (size_t)a->size, (uint64_t)i);
        if (a->keys) {
            memcpy(gs->key, "key-", 4);
            klen = 4 + u64_digits((uint64_t)i, gs->key + 4);
            rc = shmq_props_append(gs->props, sizeof(gs->props) - 1, &len, SHMQ_PROP_KEYS, gs->key,
                                   klen);
            if (rc < 0) {
                shmqctl_fail(rc, "message %lld: cannot set KEYS", (long long)i);
                ret = SHMQCTL_EXIT_FAIL;
                break;
            }
        }
        shmq_uniq_key_generate(gs->uniq);
        rc = shmq_props_append(gs->props, sizeof(gs->props) - 1, &len, SHMQ_PROP_UNIQ_KEY, gs->uniq,
                               strlen(gs->uniq));
        if (rc < 0) {
            shmqctl_fail(rc, "message %lld: cannot set UNIQ_KEY", (long long)i);
            ret = SHMQCTL_EXIT_FAIL;
            break;
        }
        m.props_len = len;
        m.queue_id = (int32_t)(i % a->queues);
        if ((i & 63) == 0) {
            m.born_ts = wall_ms(); /* ms resolution: no need to read the clock every time */
        }

        shmq_error_clear();
        rc = shmq_store_put(st, &m, &res);
        if (rc < 0) {
            shmqctl_fail(rc, "message %lld: put failed", (long long)i);
            ret = SHMQCTL_EXIT_FAIL;
            break;
        }
        if (first_phys < 0) {
            first_phys = res.phys_offset;
        }
        last_end = res.phys_offset + res.size;
        rec_bytes += res.size;
        if ((i & 1023) == 0) {
            shmqctl_progress_update(&prog, i, a->count, "messages");
        }
    }
    elapsed = shmqctl_now_ms() - t0;
    shmqctl_progress_clear(&prog);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    if (rc == SHMQ_E_FENCED) {
        /* A flush failed: nothing after the last good flush may be trusted. */
        shmq_store_abandon(st);
        shmqctl_err("store abandoned after a failed flush; run 'shmqctl recover'");
        ret = SHMQCTL_EXIT_FAIL;
    } else {
        shmq_error_clear();
        rc = shmq_store_close(st);
        if (rc < 0) {
            ret = shmqctl_fail(rc, "closing the store");
        }
    }
    free(st);
    st = NULL;

    secs = (double)(elapsed > 0 ? elapsed : 1) / 1000.0;
    printf("gen: wrote %lld messages, %lld bytes (records), %lld bytes (bodies), topic %s, "
           "%d queues, CommitLog %lld..%lld, %.3f s, %.0f msgs/s\n",
           (long long)i, (long long)rec_bytes, (long long)(i * a->size), a->topic, (int)a->queues,
           (long long)(first_phys < 0 ? 0 : first_phys), (long long)last_end,
           (double)elapsed / 1000.0, (double)i / secs);
    if (gen_stop && i < a->count) {
        shmqctl_err("interrupted after %lld of %lld messages", (long long)i, (long long)a->count);
        ret = SHMQCTL_EXIT_FAIL;
    }
out:
    free(st);
    free(gs);
    free(body);
    return ret;
}
