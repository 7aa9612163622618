/*
 * shmqctl send: send messages to a running store through the producer API.
 *
 * The body is the BODY argument, else stdin when it is not a terminal (read
 * up to maxMessageSize + 1 bytes: one byte more means too big), else --size
 * generated printable bytes stamped with the message index.  The store's
 * own limits (maxMessageSize, maxTopicLength) are read from the running
 * store's control block; the producer library and the store's writer check
 * the message again.
 *
 * Without --count one message is sent and its result printed:
 *   SEND_OK msgId=... uniqKey=... queue=Q queueOffset=N physOffset=P
 * With --count N, N messages are sent and a summary is printed:
 *   send: messages=OK errors=E elapsed=S.sss s rate=R msgs/s
 * --async K keeps up to K requests in flight (shmq_send_async).
 * --delay-level L, --deliver-at TIME, --deliver-after MS: delivered later by
 * the store's scheduler; the queue and offsets printed are then those of
 * the message as held (SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer).
 *
 * Exit codes: 0 every message stored with SEND_OK, 1 a send failed or
 * completed with a timeout status (store not running, limits, errors),
 * 2 bad arguments.  SIGINT/SIGTERM stop a --count loop (exit 1).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/ctl.h"
#include "format/names.h"
#include "shmq/producer.h"
#include "shmqctl.h"

#define SEND_MAX_ERRORS_SHOWN 10
#define SEND_FLUSH_TIMEOUT_MS 30000

static volatile sig_atomic_t send_stop;

static void send_on_signal(int sig)
{
    (void)sig;
    send_stop = 1;
}

typedef struct send_state {
    bool quiet; /* --count: summary only */
    int64_t ok;
    int64_t errors;
    int64_t inflight;
} send_state_t;

static const char *send_status_name(int status)
{
    switch (status) {
    case SHMQ_SEND_OK:
        return "SEND_OK";
    case SHMQ_SEND_FLUSH_DISK_TIMEOUT:
        return "FLUSH_DISK_TIMEOUT";
    case SHMQ_SEND_FLUSH_SLAVE_TIMEOUT:
        return "FLUSH_SLAVE_TIMEOUT";
    case SHMQ_SEND_SLAVE_NOT_AVAILABLE:
        return "SLAVE_NOT_AVAILABLE";
    default:
        return "UNKNOWN_STATUS";
    }
}

/* Account for (and print) one finished send. */
static void send_done(send_state_t *s, int err, const shmq_send_result_t *res)
{
    if (err < 0) {
        if (s->errors < SEND_MAX_ERRORS_SHOWN) {
            const char *d = shmq_error_detail();
            shmqctl_err("send failed: %s%s%s", shmq_strerror(err), d[0] ? ": " : "", d);
        } else if (s->errors == SEND_MAX_ERRORS_SHOWN) {
            shmqctl_err("more send errors follow; only the count is kept");
        }
        s->errors++;
        return;
    }
    if (res->status != SHMQ_SEND_OK) {
        s->errors++; /* stored, but the durability promise timed out */
    } else {
        s->ok++;
    }
    if (!s->quiet || res->status != SHMQ_SEND_OK) {
        printf("%s msgId=%s uniqKey=%s queue=%d queueOffset=%lld physOffset=%lld\n",
               send_status_name(res->status), res->msg_id, res->uniq_key, (int)res->queue_id,
               (long long)res->queue_offset, (long long)res->phys_offset);
    }
}

static void send_async_cb(void *arg, int err, const shmq_send_result_t *res)
{
    send_state_t *s = arg;
    s->inflight--;
    send_done(s, err, res);
}

/* Read stdin into a buffer of limit + 1 bytes; *len > limit means too big. */
static int read_stdin_body(size_t limit, uint8_t **out, size_t *len)
{
    uint8_t *buf = malloc(limit + 1);
    size_t n = 0;

    if (!buf) {
        return -ENOMEM;
    }
    while (n < limit + 1) {
        ssize_t r = read(STDIN_FILENO, buf + n, limit + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = -errno;
            free(buf);
            return e;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Index stamp "<i>|" at the start of a generated body. */
static void body_stamp(uint8_t *body, size_t size, int64_t i)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%lld|", (long long)i);
    if ((size_t)n <= size) {
        memcpy(body, d, (size_t)n);
    } else {
        memcpy(body, d + ((size_t)n - size), size);
    }
}

/* --deliver-at TIME: ms since the epoch, or local "YYYY-MM-DD HH:MM:SS[.mmm]". -1 if neither. */
static int64_t send_parse_time(const char *s)
{
    int64_t v;
    if (shmqctl_parse_int(s, 1, INT64_MAX / 2, false, &v) == 0) {
        return v;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (end == NULL) {
        return -1;
    }
    int ms = 0;
    if (*end == '.') {
        int64_t frac;
        if (strlen(end + 1) != 3 || shmqctl_parse_int(end + 1, 0, 999, false, &frac) < 0) {
            return -1;
        }
        ms = (int)frac;
    } else if (*end != '\0') {
        return -1;
    }
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000 + ms;
}

static int send_check_args(shmqctl_args_t *a, const shmq_config_t *scfg)
{
    const char *topic = a->pos[0];
    int rc;

    shmq_error_clear();
    rc = shmq_topic_validate(topic, strlen(topic), scfg->max_topic_length);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        return shmqctl_usage_error(a->cmd, "invalid topic name '%s'%s%s", topic, d[0] ? ": " : "",
                                   d);
    }
    if (a->npos == 2 && a->size >= 0) {
        return shmqctl_usage_error(a->cmd, "give a BODY or --size, not both");
    }
    if (a->queue_id >= 0 && a->sharding_key) {
        return shmqctl_usage_error(a->cmd, "give --queue or --sharding-key, not both");
    }
    if ((a->delay_level > 0) + (a->deliver_at_arg != NULL) + (a->deliver_after_ms >= 0) > 1) {
        return shmqctl_usage_error(a->cmd,
                                   "give one of --delay-level, --deliver-at, --deliver-after");
    }
    if (a->deliver_at_arg && send_parse_time(a->deliver_at_arg) < 0) {
        return shmqctl_usage_error(a->cmd,
                                   "--deliver-at: expected ms since the epoch or "
                                   "\"YYYY-MM-DD HH:MM:SS[.mmm]\", got '%s'",
                                   a->deliver_at_arg);
    }
    if (a->delay_level > scfg->delay_level_count) {
        return shmqctl_usage_error(a->cmd, "--delay-level %d: the store has %d delay levels",
                                   (int)a->delay_level, (int)scfg->delay_level_count);
    }
    return 0;
}

int shmqctl_cmd_send(shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    shmq_config_t *scfg = NULL;
    shmq_producer_t *p = NULL;
    shmq_ctl_t ctl;
    shmq_message_t m;
    shmq_send_result_t res;
    send_state_t s = {0};
    uint8_t *body = NULL;
    size_t body_len = 0;
    int64_t count = a->count >= 0 ? a->count : 1, i = 0, t0, elapsed;
    struct sigaction sa, old_int, old_term;
    int rc, ret = SHMQCTL_EXIT_OK;

    /* The running store's configuration: its limits are the ones that apply. */
    memset(&ctl, 0, sizeof(ctl));
    shmq_error_clear();
    rc = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl);
    if (rc == SHMQ_E_NOT_FOUND || (rc == 0 && !shmqctl_master_alive(&ctl))) {
        if (rc == 0) {
            shmq_ctl_detach(&ctl);
        }
        shmqctl_err("store %s is not running", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc == -EAGAIN) {
        shmqctl_err("store %s is starting; try again", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot attach to store %s", root);
    }
    scfg = malloc(sizeof(*scfg));
    if (!scfg) {
        shmq_ctl_detach(&ctl);
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    *scfg = ctl.blk->hdr.config;
    shmq_ctl_detach(&ctl);

    rc = send_check_args(a, scfg);
    if (rc) {
        free(scfg);
        return rc;
    }
    if (a->npos == 2) {
        body = (uint8_t *)a->pos[1];
        body_len = strlen(a->pos[1]);
    } else if (a->size >= 0) {
        static const char pattern[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        if (a->size > scfg->max_message_size) {
            shmqctl_err("--size %lld exceeds the store's maxMessageSize %d: nothing sent",
                        (long long)a->size, (int)scfg->max_message_size);
            ret = SHMQCTL_EXIT_FAIL;
            goto out;
        }
        body_len = (size_t)a->size;
        body = malloc(body_len ? body_len : 1);
        if (!body) {
            shmqctl_err("out of memory");
            ret = SHMQCTL_EXIT_FAIL;
            goto out;
        }
        for (size_t j = 0; j < body_len; j++) {
            body[j] = (uint8_t)pattern[j % (sizeof(pattern) - 1)];
        }
    } else if (!isatty(STDIN_FILENO)) {
        rc = read_stdin_body((size_t)scfg->max_message_size, &body, &body_len);
        if (rc < 0) {
            ret = shmqctl_fail(rc, "cannot read the body from stdin");
            goto out;
        }
        if (body_len > (size_t)scfg->max_message_size) {
            shmqctl_err("body from stdin exceeds the store's maxMessageSize %d: nothing sent",
                        (int)scfg->max_message_size);
            ret = SHMQCTL_EXIT_FAIL;
            goto out;
        }
    } else {
        free(scfg);
        return shmqctl_usage_error(a->cmd, "no body: give BODY, --size, or pipe it on stdin");
    }

    shmq_error_clear();
    rc = shmq_producer_open(root, NULL, &p);
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("store %s is not running", root);
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }
    if (rc < 0) {
        ret = shmqctl_fail(rc, "cannot open a producer on %s", root);
        goto out;
    }
    if (a->compress_over >= 0) {
        shmq_producer_set_compress_over(p, a->compress_over);
    }
    shmq_message_init(&m, a->pos[0], body, body_len);
    m.tags = a->tags;
    m.keys = a->keys_arg;
    m.delay_level = a->delay_level;
    if (a->deliver_at_arg) {
        m.deliver_at_ms = send_parse_time(a->deliver_at_arg);
    }
    if (a->deliver_after_ms > 0) {
        m.deliver_after_ms = a->deliver_after_ms;
    }
    m.queue_id = a->queue_id;
    m.sharding_key = a->sharding_key;
    s.quiet = a->count >= 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = send_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    t0 = shmqctl_now_ms();
    for (i = 0; i < count && !send_stop; i++) {
        if (a->size > 0 && a->npos == 1) {
            body_stamp(body, body_len, i);
        }
        shmq_error_clear();
        if (a->async > 0) {
            int64_t wait_start = shmqctl_now_ms();
            while (s.inflight >= a->async && !send_stop &&
                   shmqctl_now_ms() - wait_start < SEND_FLUSH_TIMEOUT_MS) {
                shmq_producer_poll(p, 100);
            }
            if (s.inflight >= a->async) {
                break; /* interrupted, or no completion for too long: counted below */
            }
            rc = shmq_send_async(p, &m, send_async_cb, &s);
            if (rc < 0) {
                send_done(&s, rc, NULL);
            } else {
                s.inflight++;
            }
        } else {
            rc = shmq_send(p, &m, &res);
            send_done(&s, rc, &res);
        }
    }
    if (a->async > 0 && s.inflight > 0) {
        shmq_producer_flush(p, SEND_FLUSH_TIMEOUT_MS);
    }
    if (s.inflight > 0) {
        shmqctl_err("%lld requests got no answer in time (outcome unknown)", (long long)s.inflight);
        s.errors += s.inflight;
    }
    elapsed = shmqctl_now_ms() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (a->count >= 0) {
        double secs = (double)(elapsed > 0 ? elapsed : 1) / 1000.0;
        printf("send: messages=%lld errors=%lld elapsed=%.3f s rate=%.0f msgs/s\n", (long long)s.ok,
               (long long)s.errors, (double)elapsed / 1000.0, (double)s.ok / secs);
    }
    if (send_stop && i < count) {
        shmqctl_err("interrupted after %lld of %lld messages", (long long)i, (long long)count);
        ret = SHMQCTL_EXIT_FAIL;
    }
    if (s.errors > 0) {
        ret = SHMQCTL_EXIT_FAIL;
    }
out:
    if (p) {
        shmq_producer_close(p);
    }
    if (a->npos != 2) {
        free(body); /* generated or read from stdin */
    }
    free(scfg);
    return ret;
}
