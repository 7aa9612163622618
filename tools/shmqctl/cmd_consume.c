/*
 * shmqctl consume: read a topic's messages from a running store as a member
 * of a consumer group, print them, and commit the group's offsets.
 *
 * Every queue of the topic, and of the group's retry topic %RETRY%<group>
 * (where the messages the group sent back come again, read whatever --tags
 * says), is pulled round-robin starting at the group's committed offset
 * (none: the queue's min offset with --from first, the default, or its max
 * offset with --from last, committed at once; a retry queue always starts
 * at its min).  With --fail every message printed is sent back
 * (shmq_consumer_send_back, delay level by its reconsume times), to try the
 * retry path by hand; after maxReconsumeTimes it lands in %DLQ%<group>.  When a
 * whole round finds nothing, the next pull long-polls (a short bounded
 * wait, so that a message on another queue is not held up).  After each batch the queue's
 * next offset is committed (shmq_commit_offset): a later run of the same
 * group continues where this one stopped.  Before each pull and each commit
 * the store's offset reset count is compared (shmq_consumer_offsets_resets):
 * after shmqctl offsets reset or group delete the run takes its positions
 * from the committed offsets again instead of committing over them.
 *
 * Output, one message per line: text
 *   topic=T queue=Q queueOffset=N physOffset=P msgId=... uniqKey=... tags=...
 *   keys=... reconsumeTimes=R storeTime=... body=<text, non-printable bytes as \xNN>
 * or with --json an object per line: topic, queue, queue_offset,
 * phys_offset, msg_id, uniq_key, tags, keys (null when absent),
 * reconsume_times, store_ts, body and body_encoding ("text" when the body
 * is printable UTF-8, else "base64").
 *
 * Every record is checked before it is printed (consumer.h: its ConsumeQueue
 * unit, and its CRCs unless --no-check).  A record that fails stops the
 * run (exit 1): the message names the queue offset and the CommitLog file
 * and offset, and the command that gives up that one message for the group.
 * --skip-corrupt [TOPIC:]QUEUE:OFFSET does that first
 * (shmq_consumer_skip_corrupt: only a corrupt message the group stands at)
 * and prints "consume: skipped corrupt message ..." on stderr; with
 * --count 0 nothing else is done.
 *
 * Stops after --count messages, or when nothing arrived for --timeout ms
 * (default 3000), or at SIGINT/SIGTERM.  Exit codes: 0, or 1 when fewer
 * than --count messages came, a record was corrupt or the store failed, 2
 * bad arguments.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/ctl.h"
#include "format/names.h"
#include "shmq/consumer.h"
#include "shmqctl.h"

#define CONSUME_TIMEOUT_DEFAULT_MS 3000
#define CONSUME_POLL_SLICE_MS      100 /* one long-poll wait: bounds the delay of other queues */
#define CONSUME_BATCH              256
#define CONSUME_RESET_WAITS        300 /* 10 ms each: an offsets reset takes well under 3 s */

static volatile sig_atomic_t consume_stop;

static void consume_on_signal(int sig)
{
    (void)sig;
    consume_stop = 1;
}

/* A topic read: the one asked for, or the group's retry topic. */
typedef struct consume_src {
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    bool retry; /* the retry topic: every message, from its first */
    int32_t nq;
    int64_t *offsets; /* next offset per queue */
    bool *held;       /* per queue: this member holds it (consumer.h, shmq_consumer_queues) */
} consume_src_t;

typedef struct consume_state {
    shmqctl_args_t *a;
    shmq_consumer_t *c;
    const char *topic;
    bool from_last;
    /* --skip-corrupt */
    char skip_topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t skip_queue;
    int64_t skip_offset;
    consume_src_t src[2];
    int nsrc;
    int32_t nq; /* queues of every source */
    int64_t got;
    int64_t sent_back;
    int64_t resets;         /* the store's offset reset count this run's positions follow */
    shmq_queue_ref_t *refs; /* the queues held, as shmq_consumer_queues gave them */
    int32_t held;           /* how many */
} consume_state_t;

static json_t *prop_json(const shmq_msg_view_t *v, const char *name)
{
    size_t len;
    const char *p = shmq_msg_property(v, name, &len);
    return p ? shmqctl_json_str(p, len) : json_null();
}

static void prop_text(const shmq_msg_view_t *v, const char *name)
{
    size_t len;
    const char *p = shmq_msg_property(v, name, &len);
    if (p) {
        shmqctl_print_text(stdout, p, len);
    }
}

static int print_view(bool json, const shmq_msg_view_t *v);

/* One message, as `consume` and `query` print it: text, or a JSON line. */
int shmqctl_print_message(const shmqctl_args_t *a, const shmq_msg_view_t *view)
{
    bool json = a->json;
    /* An admin query's view holds the body as stored; a pull's is decompressed already. */
    shmq_msg_view_t dv = *view;
    const shmq_msg_view_t *v = &dv;
    uint8_t *owned = NULL;
    if (view->body == view->stored_body && view->compression != SHMQ_COMPRESSION_NONE) {
        const void *b;
        size_t bl;
        int rc = shmqctl_body_decompress(view->sysflag, view->body, view->body_len,
                                         a->cfg.max_message_size, a->raw, &owned, &b, &bl);
        if (rc < 0) {
            shmqctl_err("message %s (CommitLog offset %lld): the body does not decompress: %s",
                        view->msg_id, (long long)view->phys_offset, shmq_error_detail());
            return rc;
        }
        dv.body = b;
        dv.body_len = bl;
    }
    int rc = print_view(json, v);
    free(owned);
    return rc;
}

/* One message, as `consume` and `query` print it, its body ready. */
static int print_view(bool json, const shmq_msg_view_t *v)
{
    if (json) {
        bool text = shmqctl_utf8_printable(v->body, v->body_len);
        json_t *o = json_object();
        if (!o) {
            return -ENOMEM;
        }
        json_object_set_new(o, "topic", shmqctl_json_str(v->topic, v->topic_len));
        json_object_set_new(o, "queue", json_integer(v->queue_id));
        json_object_set_new(o, "queue_offset", json_integer(v->queue_offset));
        json_object_set_new(o, "phys_offset", json_integer(v->phys_offset));
        json_object_set_new(o, "msg_id", json_string(v->msg_id));
        json_object_set_new(o, "uniq_key", prop_json(v, SHMQ_PROP_UNIQ_KEY));
        json_object_set_new(o, "tags", prop_json(v, SHMQ_PROP_TAGS));
        json_object_set_new(o, "keys", prop_json(v, SHMQ_PROP_KEYS));
        json_object_set_new(o, "reconsume_times", json_integer(v->reconsume_times));
        json_object_set_new(o, "store_ts", json_integer(v->store_ts));
        json_object_set_new(o, "body_len", json_integer((json_int_t)v->body_len));
        json_object_set_new(o, "body",
                            text ? json_stringn(v->body, v->body_len)
                                 : shmqctl_json_base64(v->body, v->body_len));
        json_object_set_new(o, "body_encoding", json_string(text ? "text" : "base64"));
        json_object_set_new(o, "sysflag", json_integer(v->sysflag));
        json_object_set_new(o, "compression",
                            json_string(shmqctl_compression_name(v->compression)));
        json_object_set_new(o, "stored_len", json_integer((json_int_t)v->stored_len));
        return shmqctl_json_print(o) < 0 ? -EIO : 0;
    }
    char ts[64];
    shmqctl_format_ts(v->store_ts, ts, sizeof(ts));
    fputs("topic=", stdout);
    shmqctl_print_text(stdout, v->topic, v->topic_len);
    printf(" queue=%d queueOffset=%lld physOffset=%lld msgId=%s uniqKey=", (int)v->queue_id,
           (long long)v->queue_offset, (long long)v->phys_offset, v->msg_id);
    prop_text(v, SHMQ_PROP_UNIQ_KEY);
    fputs(" tags=", stdout);
    prop_text(v, SHMQ_PROP_TAGS);
    fputs(" keys=", stdout);
    prop_text(v, SHMQ_PROP_KEYS);
    printf(" reconsumeTimes=%d storeTime=%s", (int)v->reconsume_times, ts);
    if (v->compression != SHMQ_COMPRESSION_NONE) {
        printf(" compression=%s storedLen=%zu", shmqctl_compression_name(v->compression),
               v->stored_len);
    }
    fputs(" body=", stdout);
    shmqctl_print_text(stdout, v->body, v->body_len);
    fputc('\n', stdout);
    return 0;
}

/* Start offset of a queue the group never committed. */
static int64_t consume_start_offset(consume_state_t *st, const consume_src_t *src, int32_t q)
{
    int64_t off, min, max;
    if (shmq_fetch_offset(st->c, src->topic, q, &off) == 0) {
        return off;
    }
    if (shmq_queue_offsets(st->c, src->topic, q, &min, &max) < 0) {
        return 0; /* no such queue yet: its first message will have offset 0 */
    }
    if (st->from_last && !src->retry) {
        /* Committed at once: a later run starts here too, not at a newer end (a
         * broadcasting member's positions are its own). */
        if (!st->a->broadcast) {
            shmq_commit_offset(st->c, src->topic, q, max);
        }
        return max;
    }
    return min;
}

/*
 * (Re)read the topic's queue count; new queues start at their offsets.
 * Returns the count, 0 when the topic does not exist, or an error.
 */
static int consume_refresh_queues(consume_state_t *st)
{
    st->nq = 0;
    for (int i = 0; i < st->nsrc; i++) {
        consume_src_t *src = &st->src[i];
        int n = shmq_topic_queue_count(st->c, src->topic);
        if (n == SHMQ_E_NOT_FOUND) {
            n = 0;
        } else if (n < 0) {
            return n;
        }
        if (n > src->nq) {
            int64_t *o = realloc(src->offsets, (size_t)n * sizeof(*o));
            if (!o) {
                return -ENOMEM;
            }
            src->offsets = o;
            bool *h = realloc(src->held, (size_t)n * sizeof(*h));
            if (!h) {
                return -ENOMEM;
            }
            src->held = h;
            for (int32_t q = src->nq; q < n; q++) {
                src->held[q] = false; /* its offset is taken when it is held */
            }
            src->nq = n;
        }
        st->nq += src->nq;
    }
    return st->nq;
}

/*
 * The queues this member of the group holds now (every one when
 * broadcasting): what it processed is committed by now, so the queues the
 * group asks back are given up here.  A queue newly held starts at the
 * group's committed offset, where its last owner stopped.
 */
static int consume_member_queues(consume_state_t *st)
{
    int cap = SHMQ_TOPIC_QUEUES_MAX + SHMQ_MEMBER_RETRY_MAX;
    if (st->refs == NULL && (st->refs = calloc((size_t)cap, sizeof(*st->refs))) == NULL) {
        return -ENOMEM;
    }
    int n = shmq_consumer_queues(st->c, st->topic, st->a->tags, st->refs, cap, NULL);
    if (n < 0) {
        return n;
    }
    st->held = n < cap ? n : cap;
    for (int i = 0; i < st->nsrc; i++) {
        consume_src_t *src = &st->src[i];
        for (int32_t q = 0; q < src->nq; q++) {
            bool h = false;
            for (int32_t k = 0; k < st->held && !h; k++) {
                h = st->refs[k].queue_id == q && strcmp(st->refs[k].topic, src->topic) == 0;
            }
            if (h && !src->held[q]) {
                src->offsets[q] = consume_start_offset(st, src, q);
            }
            src->held[q] = h;
        }
    }
    return 0;
}

/*
 * An offsets reset (or group delete) moved the store's reset count: wait
 * (bounded) until it is even again, then take every queue's position from
 * the committed offsets (a deleted group starts by --from).  True when the
 * positions were reloaded.
 */
static bool consume_follow_reset(consume_state_t *st)
{
    int64_t r = shmq_consumer_offsets_resets(st->c);
    if (r < 0 || r == st->resets) {
        return false;
    }
    for (int i = 0; i < CONSUME_RESET_WAITS && (r & 1); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        r = shmq_consumer_offsets_resets(st->c);
    }
    st->resets = r;
    for (int i = 0; i < st->nsrc; i++) {
        consume_src_t *src = &st->src[i];
        for (int32_t q = 0; q < src->nq; q++) {
            if (src->held[q]) {
                src->offsets[q] = consume_start_offset(st, src, q);
            }
        }
    }
    return true;
}

/* The source and queue of the k-th queue of the round. */
static consume_src_t *consume_queue_at(consume_state_t *st, int32_t k, int32_t *q)
{
    for (int i = 0; i < st->nsrc; i++) {
        if (k < st->src[i].nq) {
            *q = k;
            return &st->src[i];
        }
        k -= st->src[i].nq;
    }
    *q = 0;
    return &st->src[0];
}

/* Pull queue q of src once; returns the number of messages printed or an error. */
static int64_t consume_pull(consume_state_t *st, shmq_pull_result_t *pr, consume_src_t *src,
                            int32_t q, int wait_ms)
{
    shmqctl_args_t *a = st->a;
    int64_t left = a->count >= 0 ? a->count - st->got : CONSUME_BATCH;
    int max = left < CONSUME_BATCH ? (int)left : CONSUME_BATCH;
    int64_t next;
    size_t i;
    int rc;

    if (!src->held[q]) {
        return 0; /* another member's */
    }
    consume_follow_reset(st);
    shmq_error_clear();
    rc = shmq_pull(st->c, src->topic, q, src->offsets[q], max, src->retry ? NULL : a->tags, wait_ms,
                   pr);
    if (rc < 0) {
        return rc;
    }
    switch (pr->status) {
    case SHMQ_PULL_FOUND:
        next = pr->next_offset;
        for (i = 0; i < pr->count; i++) {
            rc = shmqctl_print_message(st->a, &pr->msgs[i]);
            if (rc < 0) {
                return rc;
            }
            if (a->fail) {
                /* Stored again for a later try (before the offset moves past it). */
                shmq_error_clear();
                rc = shmq_consumer_send_back(st->c, &pr->msgs[i], 0);
                if (rc < 0) {
                    return shmq_error_wrap(rc == SHMQ_E_ARG ? -EINVAL : rc,
                                           "sending back message %s", pr->msgs[i].msg_id);
                }
                st->sent_back++;
            }
        }
        if (pr->count > 0 && pr->msgs[pr->count - 1].queue_offset + 1 > next) {
            next = pr->msgs[pr->count - 1].queue_offset + 1; /* defensive: never re-read */
        }
        break;
    case SHMQ_PULL_NO_MATCHED_MSG:        /* filtered out: consumed all the same */
    case SHMQ_PULL_OFFSET_TOO_SMALL:      /* cleaned: move up to min */
    case SHMQ_PULL_OFFSET_OVERFLOW_BADLY: /* past the end: move back to max */
    case SHMQ_PULL_MESSAGE_WAS_REMOVING:
        next = pr->next_offset;
        break;
    default: /* nothing new, or no such queue yet */
        return 0;
    }
    if (consume_follow_reset(st)) {
        /* Reset behind us: this batch's offset is not committed over it. */
    } else if (next != src->offsets[q]) {
        src->offsets[q] = next;
        shmq_error_clear();
        rc = st->a->broadcast ? 0 : shmq_commit_offset(st->c, src->topic, q, next);
        if (rc == SHMQ_E_NOT_OWNER) {
            /* Taken from this member meanwhile: the new owner reads it from the last commit. */
            src->held[q] = false;
        } else if (rc < 0) {
            return rc;
        }
    }
    st->got += pr->status == SHMQ_PULL_FOUND ? (int64_t)pr->count : 0;
    return pr->status == SHMQ_PULL_FOUND ? (int64_t)pr->count : 0;
}

/* --skip-corrupt [TOPIC:]QUEUE:OFFSET (topic names hold no ':'); -1 when malformed. */
static int consume_parse_skip(const char *arg, consume_state_t *st)
{
    char buf[SHMQ_TOPIC_MAX_ANY + 64];
    int64_t q, off;
    if (strlen(arg) >= sizeof(buf)) {
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", arg);
    char *last = strrchr(buf, ':');
    if (!last) {
        return -1;
    }
    *last = '\0';
    char *qs = strrchr(buf, ':');
    const char *topic = st->topic;
    if (qs) {
        *qs++ = '\0';
        topic = buf;
    } else {
        qs = buf;
    }
    shmq_error_clear();
    if (shmq_topic_validate(topic, strlen(topic), SHMQ_TOPIC_MAX_ANY) < 0 ||
        shmqctl_parse_int(qs, 0, INT32_MAX, false, &q) < 0 ||
        shmqctl_parse_int(last + 1, 0, INT64_MAX, false, &off) < 0) {
        return -1;
    }
    snprintf(st->skip_topic, sizeof(st->skip_topic), "%s", topic);
    st->skip_queue = (int32_t)q;
    st->skip_offset = off;
    return 0;
}

/* Give up the message --skip-corrupt names, and say so; an exit code. */
static int consume_skip(consume_state_t *st)
{
    char line[2048];
    shmq_error_clear();
    int rc = shmq_consumer_skip_corrupt(st->c, st->skip_topic, st->skip_queue, st->skip_offset,
                                        line, sizeof(line));
    if (rc < 0) {
        return shmqctl_fail(rc, "--skip-corrupt %s:%d:%lld", st->skip_topic, (int)st->skip_queue,
                            (long long)st->skip_offset);
    }
    fprintf(stderr, "consume: %s\n", line);
    return SHMQCTL_EXIT_OK;
}

/* A pull met a record that fails its checks: say where, and how to go past it. */
static int consume_corrupt(consume_state_t *st, const shmq_pull_result_t *pr)
{
    const shmq_corrupt_t *bad = &pr->corrupt;
    int ret = shmqctl_fail(SHMQ_E_CORRUPT, "pull of %s queue %d", bad->topic, (int)bad->queue_id);
    bool other = strcmp(bad->topic, st->topic) != 0;
    fprintf(stderr,
            "consume: group %s stops at this message; to give it up (it is lost to the group):\n"
            "    shmqctl consume --store %s %s --group %s --skip-corrupt %s%s%d:%lld --count 0\n",
            st->a->group, st->a->cfg.store_path_root_dir, st->topic, st->a->group,
            other ? bad->topic : "", other ? ":" : "", (int)bad->queue_id,
            (long long)bad->queue_offset);
    return ret;
}

static int consume_check_args(shmqctl_args_t *a, consume_state_t *st)
{
    int rc;
    if (!a->group) {
        return shmqctl_usage_error(a->cmd, "consume needs --group");
    }
    shmq_error_clear();
    rc = shmq_topic_validate(a->group, strlen(a->group), SHMQ_GROUP_MAX);
    if (rc < 0) {
        return shmqctl_usage_error(a->cmd,
                                   "invalid group name '%s': 1..%d bytes of [A-Za-z0-9%%_|-]",
                                   a->group, SHMQ_GROUP_MAX);
    }
    rc = shmq_topic_validate(st->topic, strlen(st->topic), SHMQ_TOPIC_MAX_ANY);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        return shmqctl_usage_error(a->cmd, "invalid topic name '%s'%s%s", st->topic,
                                   d[0] ? ": " : "", d);
    }
    if (a->from_arg && strcmp(a->from_arg, "first") && strcmp(a->from_arg, "last")) {
        return shmqctl_usage_error(a->cmd, "--from: expected first or last, got '%s'", a->from_arg);
    }
    st->from_last = a->from_arg && !strcmp(a->from_arg, "last");
    if (a->skip_corrupt && consume_parse_skip(a->skip_corrupt, st) < 0) {
        return shmqctl_usage_error(
            a->cmd, "--skip-corrupt: expected [TOPIC:]QUEUE:OFFSET, got '%s'", a->skip_corrupt);
    }
    /* The topic, and the group's retry topic (unless reading a retry or DLQ topic). */
    char topics[2][SHMQ_TOPIC_MAX_ANY + 1];
    shmq_error_clear();
    rc = shmq_group_topics(a->group, st->topic, topics);
    if (rc < 0) {
        return shmqctl_usage_error(a->cmd, "group '%s': %s", a->group, shmq_error_detail());
    }
    st->nsrc = rc;
    for (int i = 0; i < st->nsrc; i++) {
        snprintf(st->src[i].topic, sizeof(st->src[i].topic), "%s", topics[i]);
        st->src[i].retry = i == 1;
    }
    return 0;
}

int shmqctl_cmd_consume(shmqctl_args_t *a)
{
    const char *root = a->cfg.store_path_root_dir;
    int64_t timeout = a->timeout_ms >= 0 ? a->timeout_ms : CONSUME_TIMEOUT_DEFAULT_MS;
    consume_state_t st = {.a = a, .topic = a->pos[0]};
    shmq_pull_result_t *pr = NULL;
    struct sigaction sa, old_int, old_term;
    int64_t deadline, now, n;
    int32_t q = 0;
    int empty = 0; /* pulls in a row that found nothing */
    int rc, ret = SHMQCTL_EXIT_OK;

    rc = consume_check_args(a, &st);
    if (rc) {
        return rc;
    }
    shmq_ctl_t ctl;
    memset(&ctl, 0, sizeof(ctl));
    shmq_error_clear();
    rc = shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl);
    if (rc == 0) {
        bool alive = shmqctl_master_alive(&ctl);
        shmq_ctl_detach(&ctl);
        rc = alive ? 0 : SHMQ_E_NOT_FOUND; /* a block left behind by a dead master */
    }
    if (rc == 0) {
        shmq_error_clear();
        rc = shmq_consumer_open(root, a->group, &st.c);
    }
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("store %s is not running", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot open a consumer on %s", root);
    }
    if (a->no_check) {
        shmq_consumer_set_check_crcs(st.c, false);
    }
    if (rc == 0 && a->raw) {
        shmq_consumer_set_decompress(st.c, false);
    }
    if (a->broadcast) {
        shmq_consumer_set_model(st.c, SHMQ_BROADCASTING);
    }
    if (a->orderly) {
        shmq_consumer_set_orderly(st.c, true);
    }
    st.resets = shmq_consumer_offsets_resets(st.c);
    if (a->skip_corrupt && (ret = consume_skip(&st)) != SHMQCTL_EXIT_OK) {
        goto out;
    }
    pr = malloc(sizeof(*pr));
    if (!pr) {
        shmqctl_err("out of memory");
        ret = SHMQCTL_EXIT_FAIL;
        goto out;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = consume_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    deadline = shmqctl_now_ms() + timeout;
    while (!consume_stop && (a->count < 0 || st.got < a->count)) {
        now = shmqctl_now_ms();
        if (now >= deadline) {
            break;
        }
        if (q == 0) {
            rc = consume_refresh_queues(&st);
            if (rc < 0) {
                ret = shmqctl_fail(rc, "cannot read the queues of topic %s", st.topic);
                break;
            }
            int mrc = rc > 0 ? consume_member_queues(&st) : 0;
            if (mrc < 0) {
                ret =
                    shmqctl_fail(mrc, "group %s: cannot join it for topic %s", a->group, st.topic);
                break;
            }
            if (rc == 0 || st.held == 0) {
                /* The topic does not exist (yet), or the group gave this member no queue. */
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        /* Long-poll only when a whole round found nothing. */
        int wait = 0;
        if (empty >= st.nq) {
            wait = (int)(deadline - now < CONSUME_POLL_SLICE_MS ? deadline - now
                                                                : CONSUME_POLL_SLICE_MS);
        }
        int32_t qq;
        consume_src_t *src = consume_queue_at(&st, q, &qq);
        n = consume_pull(&st, pr, src, qq, wait);
        if (n == SHMQ_E_ARG) {
            ret = shmqctl_usage_error(a->cmd, "--tags: invalid subscription '%s'",
                                      a->tags ? a->tags : "");
            break;
        }
        if (n == SHMQ_E_CORRUPT && pr->corrupt.queue_offset >= 0) {
            ret = consume_corrupt(&st, pr);
            break;
        }
        if (n < 0) {
            ret = shmqctl_fail((int)n, "pull of %s queue %d failed", src->topic, (int)qq);
            break;
        }
        if (n > 0) {
            empty = 0;
            deadline = shmqctl_now_ms() + timeout;
        } else {
            empty++;
        }
        q = (q + 1) % st.nq;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (ret == SHMQCTL_EXIT_OK && st.nq == 0 && a->count != 0 && !consume_stop) {
        /* The time ran out before the first look (--timeout 0): look once now. */
        if (consume_refresh_queues(&st) < 0) {
            st.nq = 0;
        }
    }
    if (ret == SHMQCTL_EXIT_OK && st.nq == 0 && a->count != 0 && !consume_stop) {
        shmqctl_err("no topic %s in store %s", st.topic, root);
        ret = SHMQCTL_EXIT_FAIL;
    } else if (ret == SHMQCTL_EXIT_OK && a->count >= 0 && st.got < a->count) {
        shmqctl_err("got %lld of %lld messages before the timeout", (long long)st.got,
                    (long long)a->count);
        ret = SHMQCTL_EXIT_FAIL;
    }
out:
    free(pr);
    if (st.sent_back > 0) {
        fprintf(stderr, "consume: %lld messages sent back\n", (long long)st.sent_back);
    }
    for (int i = 0; i < st.nsrc; i++) {
        free(st.src[i].offsets);
        free(st.src[i].held);
    }
    free(st.refs);
    shmq_consumer_close(st.c);
    return ret;
}
