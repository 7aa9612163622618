/*
 * The producer API (include/shmq/producer.h), part one: the handle, its
 * attachment to a running store, its ring, and the rules a message must
 * pass before it may enter the ring (producer_send.c sends it).
 *
 * A producer attaches to the control block read-only, registers with the
 * master over <root>/shmq.sock and receives a ring of its own (a sealed
 * memfd passed with SCM_RIGHTS, ring_ctl.c), the only shared memory it
 * writes besides the wake-up words; it encodes each message as a ring entry
 * (ring.h).  The connection stays open while the producer lives: when it
 * ends (exit, crash, kill -9) the master hands the ring to the writer to
 * drain.
 *
 * Liveness: the same connection tells the producer that the master is gone
 * (EOF or hang-up; the master sends nothing unasked).  It is checked at most
 * every 100 ms on the send path and in every wait slice.  When the master
 * is gone the producer drops its attachment and attaches again on the next
 * send (a new master builds a new control block).
 */
#include "client/producer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "format/message.h"
#include "shm/reg.h"
#include "format/names.h"

/* ---- small helpers ------------------------------------------------------------ */

int shmq_prod_left_ms(int64_t deadline)
{
    int64_t left = deadline - shmq_mono_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

void shmq_message_init(shmq_message_t *m, const char *topic, const void *body, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->topic = topic;
    m->body = body;
    m->body_len = len;
    m->queue_id = SHMQ_QUEUE_ANY;
}

/* ---- liveness, attachment, ring ownership ----------------------------------------- */

static uint32_t store_state(const shmq_producer_t *p)
{
    /* Acquire: the master publishes state changes with release stores. */
    return atomic_load_explicit(&p->blk->hdr.state, memory_order_acquire);
}

bool shmq_prod_store_alive(const shmq_producer_t *p)
{
    return shmq_reg_peer_alive(p->reg_fd);
}

/* Register with the master: our ring arrives as a descriptor; the connection stays open. */
static int register_ring(shmq_producer_t *p)
{
    int rc = shmq_ring_register(p->root, p->blk->hdr.ring_size, &p->reg_fd, &p->map);
    if (rc < 0) {
        return rc;
    }
    p->ring_idx = p->map.index;
    p->ring = p->map.r;
    /* A new ring: the writer's head and our tail are both 0. */
    shmq_ring_prod_init(&p->rp, p->map.data, p->blk->hdr.ring_size, &p->ring->head, &p->ring->tail);
    return 0;
}

prod_done_t *shmq_prod_done_next(shmq_producer_t *p)
{
    if (p->ndone == p->done_cap) {
        size_t ncap = p->done_cap ? p->done_cap * 2 : 64;
        prod_done_t *nd = realloc(p->done, ncap * sizeof(*nd));
        if (nd == NULL) {
            return NULL;
        }
        p->done = nd;
        p->done_cap = ncap;
    }
    return &p->done[p->ndone];
}

int shmq_prod_push_done(shmq_producer_t *p, const prod_done_t *d)
{
    prod_done_t *slot = shmq_prod_done_next(p);
    if (slot == NULL) {
        return -ENOMEM;
    }
    prod_done_copy(slot, d);
    p->ndone++;
    return 0;
}

void shmq_prod_run_done(const prod_done_t *d)
{
    if (d->cb == NULL) {
        return;
    }
    for (size_t i = 0; d->err == 0 && i < d->batch_n; i++) {
        d->results[i].status = d->res.status; /* final once the flush and slave waits ended */
    }
    if (d->err < 0) {
        if (d->detail[0]) {
            shmq_error_set(d->err, "%s", d->detail);
        } else {
            shmq_error_set(d->err, "%s", shmq_strerror(d->err));
        }
    }
    d->cb(d->arg, d->err, &d->res);
}

/* Drop the attachment (store gone): requests in flight end with -ETIMEDOUT (outcome unknown). */
void shmq_prod_detach(shmq_producer_t *p, bool store_gone)
{
    if (!p->attached) {
        return;
    }
    /* Answered results that wait for the flush or a slave end now, against the positions
     * read one last time: nothing moves them once we are gone. */
    shmq_prod_settle_waits(p);
    for (int s = 0; s < SHMQ_RING_SLOTS; s++) {
        prod_req_t *q = &p->reqs[s];
        if (q->state == REQ_ASYNC) {
            prod_done_t d;
            memset(&d, 0, sizeof(d));
            d.cb = q->cb;
            d.arg = q->arg;
            d.err = -ETIMEDOUT;
            snprintf(d.detail, sizeof(d.detail),
                     "store %s went away with the request in flight: the outcome is unknown",
                     p->root);
            snprintf(d.res.uniq_key, sizeof(d.res.uniq_key), "%s", q->uniq);
            d.results = q->results;
            d.batch_n = q->batch_n;
            if (shmq_prod_push_done(p, &d) < 0) {
                shmq_prod_run_done(&d); /* out of memory: run it now rather than lose it */
            }
            p->async_busy--;
        }
        free(q->sizes);
        q->sizes = NULL;
        q->results = NULL;
        q->batch_n = 0;
        q->state = REQ_FREE;
    }
    memset(p->pending, 0, sizeof(p->pending));
    (void)store_gone;
    /* Closing the connection gives the ring back: the writer drains what we published. */
    shmq_ring_unmap(&p->map);
    p->ring = NULL;
    if (p->reg_fd >= 0) {
        close(p->reg_fd);
        p->reg_fd = -1;
    }
    shmq_ctl_detach(&p->ctl);
    p->attached = false;
    p->blk = NULL;
    p->cfg = NULL;
}

/* One attempt: 0, -EAGAIN (starting), SHMQ_E_NOT_FOUND (not running), or an error. */
static int attach_once(shmq_producer_t *p)
{
    /* Read-only: a producer writes only its ring and the wake-up words. */
    int rc = shmq_ctl_attach(p->root, SHMQ_CTL_RDONLY, &p->ctl);
    if (rc < 0) {
        return rc;
    }
    p->blk = p->ctl.blk;
    p->cfg = &p->blk->hdr.config;
    uint32_t st = store_state(p);
    if (st == SHMQ_STATE_STARTING || st == SHMQ_STATE_RECOVERING) {
        shmq_ctl_detach(&p->ctl);
        return shmq_error_set(-EAGAIN, "store %s is starting", p->root);
    }
    if (shmq_config_store_host(p->cfg, &p->store_host) < 0) {
        shmq_local_host(&p->store_host, p->cfg->listen_port);
    }
    shmq_prod_msgid_prefix(p);
    rc = register_ring(p);
    if (rc < 0) {
        shmq_ctl_detach(&p->ctl);
        return rc;
    }
    p->attached = true;
    p->checked_ms = shmq_mono_ms();
    shmq_prod_clock_sync(p);
    p->topic_ok = false; /* this store's rules and topic table */
    p->topic_cached = false;
    p->tmpl_len = 0;
    return 0;
}

static int attach_wait(shmq_producer_t *p, int timeout_ms, bool retry_not_found)
{
    int64_t deadline = shmq_mono_ms() + timeout_ms;
    for (;;) {
        int rc = attach_once(p);
        if (rc == 0) {
            return 0;
        }
        bool again = rc == -EAGAIN || (retry_not_found && rc == SHMQ_E_NOT_FOUND);
        if (!again) {
            return rc;
        }
        int left = shmq_prod_left_ms(deadline);
        if (left <= 0) {
            if (rc == -EAGAIN) {
                rc = shmq_error_set(SHMQ_E_NOT_FOUND, "store %s did not become ready in %d ms",
                                    p->root, timeout_ms);
            }
            return rc;
        }
        sleep_ms(left < PROD_RETRY_MS ? left : PROD_RETRY_MS);
    }
}

void shmq_prod_check_at(shmq_producer_t *p, int64_t now)
{
    if (p->attached && now - p->checked_ms >= PROD_CHECK_MS) {
        p->checked_ms = now;
        shmq_prod_clock_sync(p);
        if (!shmq_prod_store_alive(p)) {
            shmq_prod_detach(p, true);
        }
    }
}

/* Before a send: attached to a live store that takes messages. */
int shmq_prod_ensure_ready(shmq_producer_t *p)
{
    return shmq_prod_ensure_ready_at(p, shmq_mono_ms());
}

int shmq_prod_ensure_ready_at(shmq_producer_t *p, int64_t now)
{
    shmq_prod_check_at(p, now);
    if (!p->attached) {
        int rc = attach_wait(p, p->attach_timeout_ms, true);
        if (rc < 0) {
            return rc;
        }
    }
    uint32_t st = store_state(p);
    if (st == SHMQ_STATE_RUNNING) {
        return 0;
    }
    if (st == SHMQ_STATE_FAILED) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "store %s has failed", p->root);
    }
    return shmq_error_set(-ESHUTDOWN, "store %s is stopping (%s)", p->root,
                          shmq_store_state_name(st));
}

/* In a wait slice: 0 keep waiting, -ETIMEDOUT (master gone), -ESHUTDOWN (store stopping). */
int shmq_prod_wait_check(shmq_producer_t *p)
{
    /* The state first: a master that stops cleanly hangs up only after it stored STOPPED. */
    uint32_t st = store_state(p);
    if (st == SHMQ_STATE_FINISHING || st == SHMQ_STATE_STOPPED || st == SHMQ_STATE_FAILED) {
        /* Nothing of ours is in the ring yet: the store will not take it. */
        if (!shmq_prod_store_alive(p)) {
            p->checked_ms = INT64_MIN / 2; /* the next send detaches and attaches again */
        }
        return shmq_error_set(-ESHUTDOWN, "store %s stopped before taking the message", p->root);
    }
    if (!shmq_prod_store_alive(p)) {
        p->checked_ms = INT64_MIN / 2; /* the next send detaches and attaches again */
        return shmq_error_set(-ETIMEDOUT, "store %s: master gone while waiting", p->root);
    }
    return 0;
}

bool shmq_prod_writer_gone(shmq_producer_t *p, int32_t *last_exit)
{
    uint32_t st = store_state(p);
    if (st != SHMQ_STATE_FINISHING && st != SHMQ_STATE_STOPPED && st != SHMQ_STATE_FAILED) {
        return false; /* running or draining: the writer answers (or is restarted to) */
    }
    shmq_ctl_worker_t *w = &p->blk->workers[SHMQ_ROLE_WRITER];
    /* Acquire: pairs with the master's release of EXITED after it reaped the writer; the
     * writer's last answers (given before it exited) and last_exit are visible. */
    uint32_t ws = atomic_load_explicit(&w->state, memory_order_acquire);
    if (ws != SHMQ_WORKER_NONE && ws != SHMQ_WORKER_EXITED && ws != SHMQ_WORKER_FAILED) {
        return false; /* still finishing its batch (a stopping store does not restart it) */
    }
    /* Relaxed: ordered by the acquire above. */
    *last_exit = atomic_load_explicit(&w->last_exit, memory_order_relaxed);
    return true;
}

/* ---- open / close ------------------------------------------------------------------ */

int shmq_producer_open(const char *store_root, const shmq_producer_options_t *opts,
                       shmq_producer_t **out)
{
    if (store_root == NULL || out == NULL || strlen(store_root) >= PATH_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "producer: bad store path");
    }
    shmq_producer_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    snprintf(p->root, sizeof(p->root), "%s", store_root);
    p->send_timeout_ms = PROD_DEFAULT_TIMEOUT_MS;
    p->compress_over = SHMQ_COMPRESS_OVER_DEFAULT;
    /* Round robin from a random queue, as RocketMQ's client: producers started together do
     * not all begin at queue 0. */
    if (getrandom(&p->rr, sizeof(p->rr), GRND_NONBLOCK) != (ssize_t)sizeof(p->rr)) {
        p->rr = (uint32_t)getpid() * 2654435761u;
    }
    if (opts && opts->send_timeout_ms > 0) {
        p->send_timeout_ms = opts->send_timeout_ms;
    }
    p->attach_timeout_ms = p->send_timeout_ms;
    if (opts && opts->attach_timeout_ms > 0) {
        p->attach_timeout_ms = opts->attach_timeout_ms;
    }
    if (opts && opts->group && opts->group[0]) {
        p->group = strdup(opts->group);
        if (p->group == NULL) {
            free(p);
            return -ENOMEM;
        }
        p->group_len = strlen(p->group);
    }
    p->ctl.lock_fd = -1;
    p->ctl.topic_lock_fd = -1;
    p->reg_fd = -1;
    shmq_local_host(&p->born_host, 0);
    int rc = attach_wait(p, p->attach_timeout_ms, false);
    if (rc < 0) {
        free(p->group);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int shmq_producer_set_compress_over(shmq_producer_t *p, int64_t bytes)
{
    if (p == NULL || bytes < 0) {
        return shmq_error_set(SHMQ_E_ARG, "compress over %lld bytes: give 0 (never) or more",
                              (long long)bytes);
    }
    p->compress_over = bytes == 0 ? SIZE_MAX : (size_t)bytes;
    return 0;
}

void shmq_producer_close(shmq_producer_t *p)
{
    if (p == NULL) {
        return;
    }
    if (p->attached) {
        shmq_producer_flush(p, p->send_timeout_ms);
    }
    if (p->attached) {
        /* One-way entries have no slot: wait until the writer took them. */
        int64_t deadline = shmq_mono_ms() + p->send_timeout_ms;
        while (!shmq_ring_drained(&p->rp) && shmq_prod_left_ms(deadline) > 0 &&
               shmq_prod_store_alive(p)) {
            sleep_ms(1);
        }
        shmq_prod_detach(p, !shmq_prod_store_alive(p));
    }
    /* Callbacks of requests that ended with the store. */
    for (size_t i = 0; i < p->ndone; i++) {
        shmq_prod_run_done(&p->done[i]);
    }
    free(p->done);
    free(p->done_spare);
    free(p->zbuf);
    free(p->bprops);
    free(p->bprops_len);
    free(p->bmsgs);
    free(p->group);
    free(p);
}

/* ---- building a message ---------------------------------------------------------------- */

static bool reserved_name(const char *name)
{
    static const char *const names[] = {SHMQ_PROP_TAGS,  SHMQ_PROP_KEYS, SHMQ_PROP_UNIQ_KEY,
                                        SHMQ_PROP_DELAY, "PGROUP",       SHMQ_PROP_CRC32};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Properties of m into buf (cap bytes) with a fresh UNIQ_KEY (last: it wins on decode). */
int shmq_prod_build_props(const shmq_producer_t *p, const shmq_message_t *m, char *buf, size_t cap,
                          size_t *len, char uniq[SHMQ_UNIQ_KEY_MAX], int64_t now_ms)
{
    int rc = 0;
    *len = 0;
    if (m->tags && m->tags[0]) {
        rc = shmq_props_append(buf, cap, len, SHMQ_PROP_TAGS, m->tags, strlen(m->tags));
    }
    if (rc == 0 && m->keys && m->keys[0]) {
        rc = shmq_props_append(buf, cap, len, SHMQ_PROP_KEYS, m->keys, strlen(m->keys));
    }
    if (rc == 0 && m->delay_level > 0) {
        char d[16];
        int n = snprintf(d, sizeof(d), "%d", (int)m->delay_level);
        rc = shmq_props_append(buf, cap, len, SHMQ_PROP_DELAY, d, (size_t)n);
    }
    /* Delivery at a time (checked in shmq_prod_check_message): the writer's put-side rewrite
     * turns these into timer messages (libshm/shm/schedule.c). */
    if (rc == 0 && (m->deliver_at_ms > 0 || m->deliver_after_ms > 0)) {
        char d[24];
        bool at = m->deliver_at_ms > 0;
        int n = snprintf(d, sizeof(d), "%lld",
                         (long long)(at ? m->deliver_at_ms : m->deliver_after_ms));
        rc = shmq_props_append(buf, cap, len, at ? "TIMER_DELIVER_MS" : "TIMER_DELAY_MS", d,
                               (size_t)n);
    }
    if (rc == 0 && p->group) {
        rc = shmq_props_append(buf, cap, len, "PGROUP", p->group, p->group_len);
    }
    for (size_t i = 0; rc == 0 && i < m->property_count; i++) {
        const shmq_property_t *u = &m->properties[i];
        if (u->name == NULL || u->value == NULL) {
            return shmq_error_set(SHMQ_E_ARG, "property %zu: NULL name or value", i);
        }
        if (reserved_name(u->name)) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "property %s is reserved (set it through the "
                                  "message fields)",
                                  u->name);
        }
        rc = shmq_props_append(buf, cap, len, u->name, u->value, strlen(u->value));
    }
    if (rc < 0) {
        return rc;
    }
    /* The key is ours (hex, no separator): appended as shmq_props_append would, unchecked;
     * always SHMQ_UNIQ_KEY_LEN characters (a constant: the copy below is inlined). */
    (void)shmq_uniq_key_generate_at(uniq, now_ms);
    const size_t klen = SHMQ_UNIQ_KEY_LEN;
    const size_t name_len = sizeof(SHMQ_PROP_UNIQ_KEY) - 1;
    size_t cur = *len;
    size_t fix = (cur > 0 && buf[cur - 1] != SHMQ_PROP_SEP) ? 1 : 0;
    size_t need = cur + fix + name_len + 1 + klen + 1;
    size_t limit = SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN;
    if (need > cap || need > limit) {
        return shmq_error_set(SHMQ_E_PROPS, "property %s: %zu bytes exceed %zu", SHMQ_PROP_UNIQ_KEY,
                              need, need > cap ? cap : limit);
    }
    char *o = buf + cur;
    if (fix) {
        *o++ = SHMQ_PROP_SEP;
    }
    memcpy(o, SHMQ_PROP_UNIQ_KEY "\x01", name_len + 1);
    memcpy(o + name_len + 1, uniq, klen);
    o[name_len + 1 + klen] = SHMQ_PROP_SEP;
    *len = need;
    return 0;
}

/*
 * The write queues of the topic (tlen bytes) as its table entry says, or
 * the store's default for a topic not created yet.  The last topic's entry
 * is kept: while its seqlock number is the one it was copied under, nothing
 * of it changed (a change, a deletion, a reuse of the entry all move it).
 */
static int32_t topic_write_queues(shmq_producer_t *p, const char *topic, size_t tlen)
{
    bool same = shmq_prod_topic_is_cached(p, topic, tlen);
    if (same && p->topic_cached) {
        const shmq_ctl_topic_t *e = &p->blk->topics[p->topic_idx];
        /* Acquire: as a seqlock read; an unchanged even number means an unchanged entry. */
        if (atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire) ==
            p->topic_seq) {
            return p->topic_nq;
        }
        p->topic_cached = false;
    }
    shmq_ctl_topic_t t;
    const shmq_ctl_topic_t *entry = NULL;
    if (shmq_ctl_topic_get_entry(&p->ctl, topic, tlen, &t, &entry) < 0) {
        return p->cfg->default_topic_queue_nums;
    }
    if (same) {
        p->topic_idx = (uint32_t)(entry - p->blk->topics);
        p->topic_seq = t.seq;
        p->topic_nq = t.write_queue_nums;
        p->topic_cached = true;
    }
    return t.write_queue_nums;
}

/* Queue for m: explicit id, hash of the sharding key, or round-robin over the write queues. */
int shmq_prod_select_queue(shmq_producer_t *p, const shmq_message_t *m, size_t tlen, int32_t *qid)
{
    int32_t nq = topic_write_queues(p, m->topic, tlen);
    if (m->queue_id != SHMQ_QUEUE_ANY) {
        if (m->queue_id < 0 || m->queue_id >= nq || m->queue_id > 65535) {
            return shmq_error_set(SHMQ_E_RANGE,
                                  "topic %s: queue id %d outside its %d write "
                                  "queues",
                                  m->topic, m->queue_id, nq);
        }
        *qid = m->queue_id;
        return 0;
    }
    if (nq <= 0) {
        return shmq_error_set(SHMQ_E_RANGE, "topic %s has no write queues", m->topic);
    }
    if (m->sharding_key) {
        /* As RocketMQ's SelectMessageQueueByHash: Java hashCode % size, made non-negative. */
        int32_t v = shmq_java_hash(m->sharding_key, strlen(m->sharding_key)) % nq;
        *qid = v < 0 ? -v : v;
    } else {
        *qid = (int32_t)(p->rr++ % (uint32_t)nq);
    }
    return 0;
}

/* deliver_at_ms / deliver_after_ms: one, without a delay level, within timerMaxDelaySec. */
static int check_delivery_time(const shmq_producer_t *p, const shmq_message_t *m)
{
    if (m->deliver_at_ms < 0 || m->deliver_after_ms < 0) {
        return shmq_error_set(SHMQ_E_ARG, "negative delivery time");
    }
    if ((m->deliver_at_ms > 0 && m->deliver_after_ms > 0) || m->delay_level > 0) {
        return shmq_error_set(SHMQ_E_ARG,
                              "give one of delay_level, deliver_at_ms and deliver_after_ms");
    }
    if (!p->cfg->timer_wheel_enable) {
        return shmq_error_set(SHMQ_E_ARG, "delivery at a time: the store's timerWheelEnable is "
                                          "false");
    }
    int64_t ahead =
        m->deliver_after_ms > 0 ? m->deliver_after_ms : m->deliver_at_ms - shmq_now_ms();
    int64_t max_ms = (int64_t)p->cfg->timer_max_delay_sec * 1000;
    if (ahead > max_ms) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "delivery %lld ms ahead exceeds the store's timerMaxDelaySec (%d s)",
                              (long long)ahead, (int)p->cfg->timer_max_delay_sec);
    }
    return 0;
}

/* Message rules and the ring entry view of m (props already built into props/plen). */
int shmq_prod_check_message(shmq_producer_t *p, const shmq_message_t *m, size_t *tlen)
{
    if (m == NULL || m->topic == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "message without a topic");
    }
    size_t n = strnlen(m->topic, SHMQ_TOPIC_MAX_ANY + 1);
    *tlen = n;
    /* The last topic passed the store's rules already: validated once, not per message. */
    if (!shmq_prod_topic_is_cached(p, m->topic, n)) {
        int rc = shmq_topic_validate(m->topic, n, p->cfg->max_topic_length);
        if (rc < 0) {
            return rc;
        }
        memcpy(p->topic_name, m->topic, n);
        p->topic_name[n] = '\0';
        p->topic_len = n;
        p->topic_ok = true;
        p->topic_cached = false;
        p->tmpl_len = 0; /* its entry template is another topic's */
    }
    if (m->body == NULL && m->body_len > 0) {
        return shmq_error_set(SHMQ_E_ARG, "NULL body of %zu bytes", m->body_len);
    }
    if (m->body_len > (size_t)p->cfg->max_message_size) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "body of %zu bytes exceeds maxMessageSize %d",
                              m->body_len, p->cfg->max_message_size);
    }
    if (m->delay_level < 0) {
        return shmq_error_set(SHMQ_E_ARG, "delay level %d", (int)m->delay_level);
    }
    if (m->queue_id < SHMQ_QUEUE_ANY || m->queue_id > 65535) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "topic %s: queue id %d: give 0..65535 (below the topic's write "
                              "queues), or SHMQ_QUEUE_ANY (-1) to let the producer choose",
                              m->topic, (int)m->queue_id);
    }
    if (m->deliver_at_ms != 0 || m->deliver_after_ms != 0) {
        return check_delivery_time(p, m);
    }
    return 0;
}
