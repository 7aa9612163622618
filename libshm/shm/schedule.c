/*
 * Delayed, timed and retried messages: the put-side rewrite, the message a
 * due one becomes, and the retry/DLQ decision (schedule.h; ROCKETMQ-FACTS
 * §10, §11, §17.1).  Pure functions over ring entry views and decoded
 * records, plus the writer's hook that applies the rewrite and creates the
 * system topics it targets.
 */
#include "shm/schedule.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/reg.h"
#include "format/store_files.h"

#define TOPIC_LOCK_MS 2000

static bool name_is(const char *n, size_t nl, const char *want)
{
    size_t wl = strlen(want);
    return nl == wl && memcmp(n, want, wl) == 0;
}

static bool topic_is(const char *t, size_t len, const char *want)
{
    return name_is(t, len, want);
}

bool shmq_schedule_parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s == NULL || len == 0) {
        return false;
    }
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || len - i > 18) {
        return false; /* 18 digits always fit an int64 */
    }
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* ---- property rewriting ------------------------------------------------------------ */

static bool listed(const char *n, size_t nl, const char *const *drop, const shmq_prop_kv_t *set,
                   size_t nset)
{
    if (name_is(n, nl, SHMQ_PROP_CRC32)) {
        return true;
    }
    for (size_t i = 0; drop && drop[i]; i++) {
        if (name_is(n, nl, drop[i])) {
            return true;
        }
    }
    for (size_t i = 0; i < nset; i++) {
        if (name_is(n, nl, set[i].name)) {
            return true;
        }
    }
    return false;
}

int shmq_props_rewrite(const char *props, size_t len, const char *const *drop,
                       const shmq_prop_kv_t *set, size_t nset, char *dst, size_t cap,
                       size_t *out_len)
{
    size_t pos = 0, nl, vl, out = 0;
    const char *n, *v;
    char name[256];
    while (props && shmq_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        if (listed(n, nl, drop, set, nset)) {
            continue;
        }
        if (nl >= sizeof(name)) {
            /* Longer than any name shmq_props_append takes NUL-terminated: copy it raw. */
            size_t need = out + nl + 1 + vl + 1;
            if (need > cap || need > SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN) {
                return shmq_error_set(SHMQ_E_PROPS, "properties exceed %d bytes",
                                      SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN);
            }
            memcpy(dst + out, n, nl);
            out += nl;
            dst[out++] = SHMQ_PROP_NAME_VALUE_SEP;
            memcpy(dst + out, v, vl);
            out += vl;
            dst[out++] = SHMQ_PROP_SEP;
            continue;
        }
        memcpy(name, n, nl);
        name[nl] = '\0';
        int rc = shmq_props_append(dst, cap, &out, name, v, vl);
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < nset; i++) {
        int rc = shmq_props_append(dst, cap, &out, set[i].name, set[i].value, set[i].value_len);
        if (rc < 0) {
            return rc;
        }
    }
    *out_len = out;
    return 0;
}

/* ---- the put-side rewrite -------------------------------------------------------------- */

/* The properties the rewrite looks at, found in one pass. */
typedef struct sched_props {
    const char *delay, *sec, *ms, *deliver;
    size_t delay_len, sec_len, ms_len, deliver_len;
    bool out_ms, del_uniq;
} sched_props_t;

/*
 * One pass over the properties as shmq_props_next() splits them (segments
 * up to 0x02, name up to the first 0x01, both non-empty), on every message
 * the writer takes: a segment that cannot hold DELAY or TIMER_* (at least
 * five name bytes, the separator and a value, starting with D or T) costs
 * one memchr and is not split.
 */
static bool scan_props(const char *props, size_t len, sched_props_t *sp)
{
    size_t pos = 0;
    bool any = false;
    memset(sp, 0, sizeof(*sp));
    while (props && pos < len) {
        const char *seg = props + pos;
        const char *end = memchr(seg, SHMQ_PROP_SEP, len - pos);
        size_t seg_len = end ? (size_t)(end - seg) : len - pos;
        pos += seg_len + 1;
        if (seg_len < 7 || (seg[0] != 'D' && seg[0] != 'T')) {
            continue; /* fast path: not DELAY, not TIMER_* */
        }
        const char *sep = memchr(seg, SHMQ_PROP_NAME_VALUE_SEP, seg_len);
        if (sep == NULL || sep == seg + seg_len - 1) {
            continue; /* no value: RocketMQ ignores the segment */
        }
        const char *n = seg, *v = sep + 1;
        size_t nl = (size_t)(sep - seg), vl = seg_len - nl - 1;
        if (nl < 5) {
            continue;
        }
        if (name_is(n, nl, SHMQ_PROP_DELAY)) {
            sp->delay = v, sp->delay_len = vl;
        } else if (name_is(n, nl, SHMQ_PROP_TIMER_DELAY_SEC)) {
            sp->sec = v, sp->sec_len = vl;
        } else if (name_is(n, nl, SHMQ_PROP_TIMER_DELAY_MS)) {
            sp->ms = v, sp->ms_len = vl;
        } else if (name_is(n, nl, SHMQ_PROP_TIMER_DELIVER_MS)) {
            sp->deliver = v, sp->deliver_len = vl;
        } else if (name_is(n, nl, SHMQ_PROP_TIMER_OUT_MS)) {
            sp->out_ms = true;
        } else if (name_is(n, nl, SHMQ_PROP_TIMER_DEL_UNIQKEY)) {
            sp->del_uniq = true;
        } else {
            continue;
        }
        any = true;
    }
    return any;
}

bool shmq_schedule_requested(const char *props, size_t len)
{
    sched_props_t sp;
    return scan_props(props, len, &sp) && (sp.delay || sp.sec || sp.ms || sp.deliver);
}

static int to_delay(const shmq_config_t *cfg, shmq_ring_msg_t *m, int64_t level, char *buf,
                    size_t cap)
{
    static const char *const drop[] = {SHMQ_PROP_TIMER_DELIVER_MS, SHMQ_PROP_TIMER_DELAY_MS,
                                       SHMQ_PROP_TIMER_DELAY_SEC, NULL};
    if (level > cfg->delay_level_count) {
        level = cfg->delay_level_count;
    }
    char lv[24], qid[24];
    int ll = snprintf(lv, sizeof(lv), "%" PRId64, level);
    int ql = snprintf(qid, sizeof(qid), "%d", (int)m->queue_id);
    shmq_prop_kv_t set[] = {
        {SHMQ_PROP_DELAY, lv, (size_t)ll},
        {SHMQ_PROP_REAL_TOPIC, m->topic, m->topic_len},
        {SHMQ_PROP_REAL_QID, qid, (size_t)ql},
    };
    size_t plen;
    int rc = shmq_props_rewrite(m->props, m->props_len, drop, set, 3, buf, cap, &plen);
    if (rc < 0) {
        return shmq_error_wrap(rc, "delayed message refused");
    }
    m->props = buf;
    m->props_len = (uint32_t)plen;
    m->topic = SHMQ_SCHEDULE_TOPIC;
    m->topic_len = (uint32_t)strlen(SHMQ_SCHEDULE_TOPIC);
    m->queue_id = (int32_t)level - 1;
    return SHMQ_SCHEDULE_DELAY;
}

static int to_timer(const shmq_config_t *cfg, int64_t now, shmq_ring_msg_t *m,
                    const sched_props_t *sp, char *buf, size_t cap)
{
    int64_t v, deliver;
    const char *name, *text;
    size_t text_len;
    bool ok;
    if (sp->sec) {
        name = SHMQ_PROP_TIMER_DELAY_SEC, text = sp->sec, text_len = sp->sec_len;
        ok = shmq_schedule_parse_i64(sp->sec, sp->sec_len, &v) && v < INT64_MAX / 2000 &&
             v > -(INT64_MAX / 2000);
        deliver = ok ? now + v * 1000 : 0;
    } else if (sp->ms) {
        name = SHMQ_PROP_TIMER_DELAY_MS, text = sp->ms, text_len = sp->ms_len;
        ok = shmq_schedule_parse_i64(sp->ms, sp->ms_len, &v) && v < INT64_MAX / 2 &&
             v > -(INT64_MAX / 2);
        deliver = ok ? now + v : 0;
    } else {
        name = SHMQ_PROP_TIMER_DELIVER_MS, text = sp->deliver, text_len = sp->deliver_len;
        ok = shmq_schedule_parse_i64(sp->deliver, sp->deliver_len, &v);
        deliver = v;
    }
    if (!ok) {
        return shmq_error_set(SHMQ_E_ARG,
                              "timed message refused: property %s '%.*s%s' is not a whole "
                              "number in range",
                              name, (int)(text_len > 40 ? 40 : text_len), text,
                              text_len > 40 ? "..." : "");
    }
    if (!cfg->timer_wheel_enable) {
        return shmq_error_set(SHMQ_E_ARG, "timed message (%s) refused: timerWheelEnable is false",
                              name);
    }
    if (deliver <= now) {
        if (sp->del_uniq) {
            return shmq_error_set(SHMQ_E_ARG,
                                  "timed message refused: a timer cancel marker (%s) that is "
                                  "already due",
                                  SHMQ_PROP_TIMER_DEL_UNIQKEY);
        }
        return SHMQ_SCHEDULE_NONE; /* due: stored as an ordinary message */
    }
    int64_t max_ms = (int64_t)cfg->timer_max_delay_sec * 1000;
    if (deliver - now > max_ms) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "timed message refused: %s asks for delivery %" PRId64
                              " ms ahead, more than timerMaxDelaySec (%d s)",
                              name, deliver - now, (int)cfg->timer_max_delay_sec);
    }
    int64_t p = cfg->timer_precision_ms > 0 ? cfg->timer_precision_ms : 1000;
    deliver -= deliver % p == 0 ? p : deliver % p;
    char out[24], qid[24];
    int ol = snprintf(out, sizeof(out), "%" PRId64, deliver);
    int ql = snprintf(qid, sizeof(qid), "%d", (int)m->queue_id);
    shmq_prop_kv_t set[] = {
        {SHMQ_PROP_TIMER_OUT_MS, out, (size_t)ol},
        {SHMQ_PROP_REAL_TOPIC, m->topic, m->topic_len},
        {SHMQ_PROP_REAL_QID, qid, (size_t)ql},
    };
    size_t plen;
    int rc = shmq_props_rewrite(m->props, m->props_len, NULL, set, 3, buf, cap, &plen);
    if (rc < 0) {
        return shmq_error_wrap(rc, "timed message refused");
    }
    m->props = buf;
    m->props_len = (uint32_t)plen;
    m->topic = SHMQ_TIMER_TOPIC;
    m->topic_len = (uint32_t)strlen(SHMQ_TIMER_TOPIC);
    m->queue_id = 0;
    return SHMQ_SCHEDULE_TIMER;
}

int shmq_schedule_transform(const shmq_config_t *cfg, int64_t now_ms, shmq_ring_msg_t *m, char *buf,
                            size_t cap)
{
    int32_t tx = m->sysflag & SHMQ_SYSFLAG_TX_MASK;
    if (tx != SHMQ_SYSFLAG_TX_NOT && tx != SHMQ_SYSFLAG_TX_COMMIT) {
        return SHMQ_SCHEDULE_NONE;
    }
    sched_props_t sp;
    if (!scan_props(m->props, m->props_len, &sp)) {
        return SHMQ_SCHEDULE_NONE;
    }
    int64_t level = 0;
    if (sp.delay && shmq_schedule_parse_i64(sp.delay, sp.delay_len, &level) && level > 0) {
        if (topic_is(m->topic, m->topic_len, SHMQ_SCHEDULE_TOPIC) || cfg->delay_level_count < 1) {
            return SHMQ_SCHEDULE_NONE;
        }
        return to_delay(cfg, m, level, buf, cap);
    }
    if (!(sp.sec || sp.ms || sp.deliver) || sp.out_ms ||
        topic_is(m->topic, m->topic_len, SHMQ_TIMER_TOPIC)) {
        return SHMQ_SCHEDULE_NONE;
    }
    return to_timer(cfg, now_ms, m, &sp, buf, cap);
}

int shmq_schedule_topic_ensure(shmq_ctl_t *ctl, const char *name, int32_t queues)
{
    const int32_t rw = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
    size_t len = strlen(name);
    shmq_ctl_topic_t t;
    int rc = shmq_ctl_topic_get(ctl, name, len, &t);
    if (rc == 0 && t.read_queue_nums >= queues && t.write_queue_nums >= queues &&
        (t.perm & rw) == rw) {
        return 0;
    }
    if (rc < 0 && rc != SHMQ_E_NOT_FOUND) {
        return rc;
    }
    if (ctl->readonly) {
        /* A client (a consumer sending back): the master creates it, if it is one a client
         * may ask for (reg_server.c). */
        return shmq_reg_request_topic(ctl->root, name, queues);
    }
    rc = shmq_ctl_topic_lock(ctl, TOPIC_LOCK_MS);
    if (rc < 0) {
        return rc;
    }
    int32_t r = queues, w = queues, perm = rw;
    bool order = false;
    if (shmq_ctl_topic_get(ctl, name, len, &t) == 0) {
        r = t.read_queue_nums > r ? t.read_queue_nums : r;
        w = t.write_queue_nums > w ? t.write_queue_nums : w;
        perm |= t.perm;
        order = t.order != 0;
    }
    rc = shmq_ctl_topic_put(ctl, name, r, w, perm, order);
    if (rc == 0) {
        /* The table in shared memory is what counts; topics.json follows at the next save. */
        (void)shmq_ctl_topics_save(ctl);
    }
    shmq_ctl_topic_unlock(ctl);
    return rc;
}

int shmq_schedule_writer_hook(shmq_ctl_t *ctl, const shmq_config_t *cfg, shmq_ring_msg_t *msgs,
                              size_t n)
{
    /* The writer's thread: the rewritten properties live here until its next unit. */
    static _Thread_local char buf[SHMQ_PROPS_MAX];
    if (n > 1) {
        for (size_t k = 0; k < n; k++) {
            if (shmq_schedule_requested(msgs[k].props, msgs[k].props_len)) {
                return shmq_error_set(SHMQ_E_ARG,
                                      "batch message %zu asks for a delay: delayed and timed "
                                      "messages cannot be batched",
                                      k);
            }
        }
        return 0;
    }
    if (!shmq_schedule_requested(msgs[0].props, msgs[0].props_len)) {
        return 0; /* an ordinary message: no clock read, nothing rewritten */
    }
    int kind = shmq_schedule_transform(cfg, shmq_now_ms(), &msgs[0], buf, sizeof(buf));
    if (kind <= 0) {
        return kind;
    }
    if (kind == SHMQ_SCHEDULE_DELAY) {
        return shmq_schedule_topic_ensure(ctl, SHMQ_SCHEDULE_TOPIC, cfg->delay_level_count);
    }
    return shmq_schedule_topic_ensure(ctl, SHMQ_TIMER_TOPIC, 1);
}

/* ---- due messages ------------------------------------------------------------------ */

int shmq_schedule_redeliver(const shmq_record_t *r, int kind, int64_t enqueue_ms, int64_t now_ms,
                            char *buf, size_t cap, shmq_ring_msg_t *out)
{
    size_t tl = 0, ql = 0;
    const char *rt = shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_TOPIC, &tl);
    const char *rq = shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_QID, &ql);
    int64_t qid;
    if (rt == NULL || tl > SHMQ_TOPIC_MAX_ANY || rq == NULL ||
        !shmq_schedule_parse_i64(rq, ql, &qid) || qid < 0 || qid > 65535) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "record at %" PRId64 ": REAL_TOPIC / REAL_QID missing or malformed",
                              r->phys_offset);
    }
    if (topic_is(rt, tl, SHMQ_HALF_TOPIC)) {
        return 1;
    }
    size_t plen;
    int rc;
    if (kind == SHMQ_SCHEDULE_DELAY) {
        static const char *const drop[] = {SHMQ_PROP_DELAY, SHMQ_PROP_TIMER_DELIVER_MS,
                                           SHMQ_PROP_TIMER_DELAY_MS, SHMQ_PROP_TIMER_DELAY_SEC,
                                           NULL};
        shmq_prop_kv_t set[] = {{SHMQ_PROP_WAIT, "false", 5}};
        rc = shmq_props_rewrite(r->props, r->props_len, drop, set, 1, buf, cap, &plen);
    } else {
        static const char *const drop[] = {SHMQ_PROP_REAL_TOPIC, SHMQ_PROP_REAL_QID, NULL};
        char enq[24], deq[24];
        int el = snprintf(enq, sizeof(enq), "%" PRId64, enqueue_ms);
        int dl = snprintf(deq, sizeof(deq), "%" PRId64, now_ms);
        shmq_prop_kv_t set[] = {{SHMQ_PROP_TIMER_ENQUEUE_MS, enq, (size_t)el},
                                {SHMQ_PROP_TIMER_DEQUEUE_MS, deq, (size_t)dl},
                                {SHMQ_PROP_WAIT, "false", 5}};
        rc = shmq_props_rewrite(r->props, r->props_len, drop, set, 3, buf, cap, &plen);
    }
    if (rc < 0) {
        return rc;
    }
    memset(out, 0, sizeof(*out));
    out->kind = SHMQ_RING_KIND_MSG;
    out->batch_count = 1;
    out->topic = rt;
    out->topic_len = (uint32_t)tl;
    out->queue_id = (int32_t)qid;
    out->flag = r->flag;
    out->sysflag = r->sysflag & SHMQ_RING_SYSFLAG_ALLOWED;
    out->reconsume_times = r->reconsume_times;
    out->born_ts = r->born_ts;
    out->born_host = r->born_host;
    out->prepared_tx_offset = r->prepared_tx_offset;
    out->props = buf;
    out->props_len = (uint32_t)plen;
    out->body = r->body;
    out->body_len = r->body_len;
    return 0;
}

/* ---- timer cancel markers --------------------------------------------------------- */

/* "<REAL_TOPIC>+<value of prop>" of a record (malloc'd), or NULL. */
static char *cancel_key(const shmq_record_t *r, const char *prop)
{
    size_t tl, kl;
    const char *t = shmq_props_get(r->props, r->props_len, SHMQ_PROP_REAL_TOPIC, &tl);
    const char *k = shmq_props_get(r->props, r->props_len, prop, &kl);
    char *out = NULL;
    if (t && k && asprintf(&out, "%.*s+%.*s", (int)tl, t, (int)kl, k) < 0) {
        out = NULL;
    }
    return out;
}

int shmq_cancel_set_add(shmq_cancel_set_t *cs, const shmq_record_t *r)
{
    char *k = cancel_key(r, SHMQ_PROP_TIMER_DEL_UNIQKEY);
    if (k == NULL) {
        return 0;
    }
    char **n = realloc(cs->keys, (cs->count + 1) * sizeof(*n));
    if (n == NULL) {
        free(k);
        return -ENOMEM;
    }
    cs->keys = n;
    cs->keys[cs->count++] = k;
    return 0;
}

bool shmq_cancel_set_has(const shmq_cancel_set_t *cs, const shmq_record_t *r)
{
    if (cs->count == 0) {
        return false;
    }
    char *k = cancel_key(r, SHMQ_PROP_UNIQ_KEY);
    bool hit = false;
    for (size_t i = 0; k && !hit && i < cs->count; i++) {
        hit = strcmp(cs->keys[i], k) == 0;
    }
    free(k);
    return hit;
}

void shmq_cancel_set_free(shmq_cancel_set_t *cs)
{
    for (size_t i = 0; i < cs->count; i++) {
        free(cs->keys[i]);
    }
    free(cs->keys);
    cs->keys = NULL;
    cs->count = 0;
}

/* ---- retries ---------------------------------------------------------------------- */

int shmq_retry_plan(const char *group, int32_t reconsume_times, int32_t max_reconsume,
                    int32_t retry_queue_nums, int delay_level, uint32_t rnd, shmq_retry_plan_t *out)
{
    memset(out, 0, sizeof(*out));
    out->dlq = reconsume_times >= max_reconsume || delay_level < 0;
    const char *prefix = out->dlq ? SHMQ_DLQ_PREFIX : SHMQ_RETRY_PREFIX;
    int n = snprintf(out->topic, sizeof(out->topic), "%s%s", prefix, group ? group : "");
    if (group == NULL || group[0] == '\0' || n < 0 || (size_t)n >= sizeof(out->topic)) {
        return shmq_error_set(SHMQ_E_TOPIC, "group '%s': no retry topic name fits 255 bytes",
                              group ? group : "");
    }
    if (out->dlq) {
        out->queue_id = 0;
        out->delay_level = 0;
        return 0;
    }
    if (retry_queue_nums <= 0) {
        out->drop = true;
        return 0;
    }
    out->queue_id = (int32_t)(rnd % (uint32_t)retry_queue_nums);
    out->delay_level = delay_level == 0 ? 3 + reconsume_times : delay_level;
    return 0;
}

int shmq_retry_build(const shmq_retry_plan_t *plan, const char *topic, size_t topic_len,
                     const void *body, size_t body_len, int32_t flag, int32_t sysflag,
                     int64_t born_ts, const shmq_host_t *born_host, int32_t reconsume_times,
                     const char *props, size_t props_len, const char *msg_id, char *buf, size_t cap,
                     shmq_ring_msg_t *out)
{
    static const char *const drop[] = {SHMQ_PROP_DELAY, NULL};
    shmq_prop_kv_t set[3];
    size_t nset = 0, vl;
    char lv[24];
    if (shmq_props_get(props, props_len, SHMQ_PROP_RETRY_TOPIC, &vl) == NULL) {
        set[nset++] = (shmq_prop_kv_t){SHMQ_PROP_RETRY_TOPIC, topic, topic_len};
    }
    if (shmq_props_get(props, props_len, SHMQ_PROP_ORIGIN_ID, &vl) == NULL && msg_id && msg_id[0]) {
        set[nset++] = (shmq_prop_kv_t){SHMQ_PROP_ORIGIN_ID, msg_id, strlen(msg_id)};
    }
    if (plan->delay_level > 0) {
        int ll = snprintf(lv, sizeof(lv), "%d", (int)plan->delay_level);
        set[nset++] = (shmq_prop_kv_t){SHMQ_PROP_DELAY, lv, (size_t)ll};
    }
    size_t plen;
    int rc = shmq_props_rewrite(props, props_len, drop, set, nset, buf, cap, &plen);
    if (rc < 0) {
        return rc;
    }
    memset(out, 0, sizeof(*out));
    out->kind = SHMQ_RING_KIND_MSG;
    out->batch_count = 1;
    out->topic = plan->topic;
    out->topic_len = (uint32_t)strlen(plan->topic);
    out->queue_id = plan->queue_id;
    out->flag = flag;
    out->sysflag = sysflag & SHMQ_RING_SYSFLAG_ALLOWED;
    out->reconsume_times = reconsume_times < INT32_MAX ? reconsume_times + 1 : INT32_MAX;
    out->born_ts = born_ts;
    if (born_host != NULL) {
        out->born_host = *born_host;
    }
    out->props = buf;
    out->props_len = (uint32_t)plen;
    out->body = body;
    out->body_len = (uint32_t)body_len;
    return 0;
}
