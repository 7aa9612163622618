/*
 * Internal to the producer library (producer.c, producer_send.c): the
 * producer handle and the helpers the two files share.  Not installed.
 */
#ifndef SHMQ_PRODUCER_INT_H
#define SHMQ_PRODUCER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "base/bytes.h"
#include "base/clock.h"
#include "format/message.h"
#include "shm/ctl.h"
#include "shm/ring.h"
#include "shmq/producer.h"

#define PROD_DEFAULT_TIMEOUT_MS 3000
#define PROD_CHECK_MS           100   /* liveness checks on the send path at most this often */
#define PROD_SLICE_MS           100   /* a wait re-checks liveness at least this often */
#define PROD_SPIN_NS            20000 /* spin this long for a completion before sleeping */
#define PROD_SPIN_SHIFT_MAX     5     /* spin_shift at which the spin is left out */
#define PROD_SPIN_PROBE         64    /* every this many waits spins in full */
#define PROD_RETRY_MS           20    /* attach retry interval */
#define PROD_DONE_BATCH         64    /* callbacks taken out of the list at a time */

enum prod_req_state {
    REQ_FREE = 0,
    REQ_SYNC = 1,      /* a blocking send waits on it */
    REQ_ASYNC = 2,     /* completion goes to the done list, callback from poll */
    REQ_ABANDONED = 3, /* its send gave up: free it when the writer completes it */
};

typedef struct prod_req {
    uint8_t state;
    uint64_t req_id;
    shmq_send_cb cb;
    void *arg;
    char uniq[SHMQ_UNIQ_KEY_MAX];
    /* shmq_send_batch_async: the caller's results and each record's size (malloc'd, NULL
     * otherwise), to fill every message's offsets when the answer comes */
    shmq_send_result_t *results;
    int64_t *sizes;
    size_t batch_n;
} prod_req_t;

/* A completed asynchronous request whose callback has not run yet. */
typedef struct prod_done {
    shmq_send_cb cb;
    void *arg;
    int err;
    bool wait_flush; /* SYNC_FLUSH: hold the callback until flushed >= end_pos */
    bool wait_repl;  /* SYNC_MASTER: then until replicated >= end_pos */
    int64_t end_pos;
    int64_t flush_deadline;
    int64_t repl_deadline;
    shmq_send_result_t res;
    shmq_send_result_t *results; /* a batch's (batch_n): their status set before cb runs */
    size_t batch_n;
    char detail[SHMQ_RING_DETAIL_MAX]; /* err < 0: its text (shmq_error_detail() in cb); last */
} prod_done_t;

/* Copy d to dst: without its detail text when it has no error (the detail is then unused). */
static inline void prod_done_copy(prod_done_t *dst, const prod_done_t *d)
{
    memcpy(dst, d, d->err < 0 ? sizeof(*d) : offsetof(prod_done_t, detail));
}

struct shmq_producer {
    char root[PATH_MAX];
    int send_timeout_ms;
    int attach_timeout_ms;
    char *group;
    size_t group_len;
    shmq_ctl_t ctl;
    bool attached;
    shmq_ctl_block_t *blk;
    const shmq_config_t *cfg;
    int reg_fd; /* the master's socket: open while we own our ring (-1 when detached) */
    uint32_t ring_idx;
    shmq_ring_map_t map;   /* our ring object (the only client that holds it) */
    shmq_ring_shm_t *ring; /* map.r */
    shmq_ring_prod_t rp;
    shmq_host_t store_host;
    shmq_host_t born_host;
    /* An IPv4 store_host: the first 16 characters of every message id (address and port),
     * set with store_host (shmq_prod_msgid_prefix); msgid_v4 false: formatted in full */
    bool msgid_v4;
    char msgid_host[16];
    uint64_t next_req;
    uint32_t rr;
    int64_t checked_ms;
    /* CLOCK_REALTIME - CLOCK_MONOTONIC in ns, read at attach and at each liveness check
     * (shmq_prod_clock_sync): a send reads the monotonic clock only (shmq_prod_wall_ms) */
    int64_t wall_off_ns;
    uint32_t slot_hint;
    /* The slot after the last answer poll took: where the oldest request in flight usually
     * is (slots are taken in turn and answered in order), where its look at the slots starts */
    uint32_t reap_hint;
    int async_busy; /* requests in REQ_ASYNC state */
    /*
     * The spin before a sleep for an answer: PROD_SPIN_NS >> spin_shift (none
     * from PROD_SPIN_SHIFT_MAX on).  A spin that ends in a sleep halves it, an
     * answer within a spin restores it, and every PROD_SPIN_PROBE-th wait spins
     * in full to see whether answers come fast again.
     */
    uint32_t spin_shift;
    uint32_t spin_waits;
    /* slots in REQ_ASYNC or REQ_ABANDONED state (a bit each): reaping visits only these */
    uint64_t pending[SHMQ_RING_SLOTS / 64];
    /*
     * The last topic sent to, validated against the store's rules, and its
     * entry in the topic table: while the entry's seqlock number stays
     * topic_seq nothing of it changed, so its write queues need no new copy.
     * Cleared when the producer attaches (another store, other rules).
     */
    bool topic_ok;     /* topic_name[0..topic_len) passed shmq_topic_validate */
    bool topic_cached; /* topic_idx, topic_seq and topic_nq hold its table entry */
    size_t topic_len;
    uint32_t topic_idx;
    uint32_t topic_seq;
    int32_t topic_nq;
    char topic_name[SHMQ_TOPIC_MAX_ANY + 1];
    /*
     * The first tmpl_len bytes of the ring entry of a message to topic_name
     * that shmq_prod_props_plain() accepts (shmq_prod_tmpl_build): header,
     * topic, "UNIQ_KEY" 0x01.  A send copies them and stores only what is
     * its own (shmq_prod_encode_plain).  0: not built; cleared with the
     * topic (another topic, or attached again).
     */
    size_t tmpl_len;
    uint8_t tmpl[SHMQ_RING_HDR_SIZE + SHMQ_TOPIC_MAX_ANY + sizeof(SHMQ_PROP_UNIQ_KEY)];
    prod_req_t reqs[SHMQ_RING_SLOTS];
    prod_done_t *done;
    size_t ndone;
    size_t done_cap;
    prod_done_t *done_spare; /* an empty list that takes done's place while its callbacks run */
    size_t done_spare_cap;
    char props[SHMQ_PROPS_MAX];
    /* single messages with a body of compress_over bytes or more are sent LZ4-compressed */
    size_t compress_over; /* SIZE_MAX: never */
    uint8_t *zbuf;        /* the compressed body of the message being sent */
    size_t zcap;
    /* batch scratch */
    char *bprops;
    size_t bprops_cap;
    size_t *bprops_len;
    shmq_ring_msg_t *bmsgs;
    size_t bmsgs_cap;
};

/* ---- message ids ---------------------------------------------------------------- */

/* v as 16 uppercase hex characters at o, most significant first (no NUL). */
static inline void shmq_prod_hex64_upper(char *o, uint64_t v)
{
#if defined(__SSE2__)
    /* The bytes in the id's order (big-endian), each split into its two nibbles. */
    const __m128i nib = _mm_set1_epi8(0x0F), nine = _mm_set1_epi8(9);
    const __m128i zero = _mm_set1_epi8('0'), seven = _mm_set1_epi8(7);
    __m128i in = _mm_cvtsi64_si128((long long)__builtin_bswap64(v));
    __m128i c =
        _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(in, 4), nib), _mm_and_si128(in, nib));
    c = _mm_add_epi8(_mm_add_epi8(c, zero), _mm_and_si128(_mm_cmpgt_epi8(c, nine), seven));
    _mm_storeu_si128((__m128i *)(void *)o, c);
#else
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 15; i >= 0; i--, v >>= 4) {
        o[i] = hex[v & 0xF];
    }
#endif
}

/* Set p->msgid_v4 and p->msgid_host from p->store_host (after it changed). */
static inline void shmq_prod_msgid_prefix(shmq_producer_t *p)
{
    char id[SHMQ_MSGID_MAX];
    shmq_msgid_format(&p->store_host, 0, id);
    p->msgid_v4 = !p->store_host.is_v6;
    memcpy(p->msgid_host, id, sizeof(p->msgid_host));
}

/*
 * shmq_msgid_format(&p->store_host, phys_offset, out), on every answer: an
 * IPv4 host's 16 characters copied, only the offset's formatted.
 */
static inline void shmq_prod_msgid(const shmq_producer_t *p, int64_t phys_offset,
                                   char out[SHMQ_MSGID_MAX])
{
    if (__builtin_expect(!p->msgid_v4, 0)) {
        shmq_msgid_format(&p->store_host, phys_offset, out);
        return;
    }
    memcpy(out, p->msgid_host, 16);
    shmq_prod_hex64_upper(out + 16, (uint64_t)phys_offset);
    out[32] = '\0';
}

/*
 * The UNIQ_KEY in uniq (a SHMQ_UNIQ_KEY_MAX array holding it NUL-terminated)
 * into dst: the same string, cut at SHMQ_UNIQ_KEY_MAX - 1 characters.  A key
 * of ours (SHMQ_UNIQ_KEY_LEN characters) is copied with its NUL only.
 */
static inline void shmq_prod_uniq_copy(char dst[SHMQ_UNIQ_KEY_MAX], const char *uniq)
{
    if (__builtin_expect(uniq[SHMQ_UNIQ_KEY_LEN] == '\0', 1)) {
        memcpy(dst, uniq, SHMQ_UNIQ_KEY_LEN + 1);
        return;
    }
    memcpy(dst, uniq, SHMQ_UNIQ_KEY_MAX);
    dst[SHMQ_UNIQ_KEY_MAX - 1] = '\0';
}

/* ---- clocks ----------------------------------------------------------------------- */

/* Read the wall clock's offset from the monotonic one (p->wall_off_ns). */
static inline void shmq_prod_clock_sync(shmq_producer_t *p)
{
    int64_t mono = shmq_mono_ns();
    p->wall_off_ns = shmq_now_ns() - mono;
}

/*
 * The wall clock in ms (as shmq_now_ms) at the monotonic time mono_ns, by
 * the offset read within the last PROD_CHECK_MS of sends: one clock read a
 * send.  Both clocks follow NTP's slewing alike; a step of the wall clock
 * shows in born times and UNIQ_KEYs from the next liveness check on.
 */
static inline int64_t shmq_prod_wall_ms(const shmq_producer_t *p, int64_t mono_ns)
{
    return (mono_ns + p->wall_off_ns) / 1000000;
}

/* ---- producer.c ------------------------------------------------------------------ */

/* Milliseconds left until deadline (monotonic), 0 when past. */
int shmq_prod_left_ms(int64_t deadline);

/* Before a send: attached to a live store that takes messages (-ESHUTDOWN while it stops). */
int shmq_prod_ensure_ready(shmq_producer_t *p);

/* As shmq_prod_ensure_ready(), with the monotonic clock (ms) the caller just read. */
int shmq_prod_ensure_ready_at(shmq_producer_t *p, int64_t now_mono_ms);

/*
 * The liveness check of a send, at most every PROD_CHECK_MS (now: the
 * monotonic clock in ms): the wall clock's offset read again, and the
 * attachment dropped when the master no longer holds our registration
 * (what waited for the flush or a slave is settled then).
 */
void shmq_prod_check_at(shmq_producer_t *p, int64_t now);

/*
 * shmq_prod_ensure_ready_at() on the send path: its usual answer (attached,
 * liveness checked within PROD_CHECK_MS, the store running) without the call.
 */
static inline int shmq_prod_ready_at(shmq_producer_t *p, int64_t now_mono_ms)
{
    /* Acquire: as store_state() in producer.c (the master's release of a new state). */
    if (p->attached && now_mono_ms - p->checked_ms < PROD_CHECK_MS &&
        atomic_load_explicit(&p->blk->hdr.state, memory_order_acquire) == SHMQ_STATE_RUNNING) {
        return 0;
    }
    return shmq_prod_ensure_ready_at(p, now_mono_ms);
}

/*
 * In a wait slice before our entry is in the ring: 0 keep waiting, -ETIMEDOUT
 * (master gone), -ESHUTDOWN (the store is stopping: it will not take it).
 */
int shmq_prod_wait_check(shmq_producer_t *p);

/*
 * The store is stopping (finishing, stopped or failed) and its writer has
 * exited: no answer can come any more.  *last_exit gets the writer's exit
 * status as the master recorded it (0: it finished its batch and exited on
 * request; anything else: it may have died in the middle of a batch).
 * False while the store runs or drains, or while the writer still runs.
 */
bool shmq_prod_writer_gone(shmq_producer_t *p, int32_t *last_exit);

/*
 * Before the attachment is dropped: every finished request that still waits
 * for the flush or a slave gets its final result against the positions now
 * (SEND_OK only where they cover it; a timeout status otherwise).
 */
void shmq_prod_settle_waits(shmq_producer_t *p);

/* Drop the attachment; store_gone: do not give the ring back (the block is dead). */
void shmq_prod_detach(shmq_producer_t *p, bool store_gone);

/* The master still holds our registration (no EOF or hang-up on its socket). */
bool shmq_prod_store_alive(const shmq_producer_t *p);

/* Queue a finished asynchronous request for its callback. */
int shmq_prod_push_done(shmq_producer_t *p, const prod_done_t *d);

/*
 * Where the next finished request goes (the list grown if needed), to be
 * filled in place and then counted (p->ndone++); NULL when out of memory.
 */
prod_done_t *shmq_prod_done_next(shmq_producer_t *p);

/* Run d's callback (if any); with an error, shmq_error_detail() holds d's text meanwhile. */
void shmq_prod_run_done(const prod_done_t *d);

/* Message rules (topic, body size, delay level); *tlen gets the topic length. */
int shmq_prod_check_message(shmq_producer_t *p, const shmq_message_t *m, size_t *tlen);

/* The topic (n bytes) is the one validated last (p->topic_name). */
static inline bool shmq_prod_topic_is_cached(const shmq_producer_t *p, const char *topic, size_t n)
{
    return p->topic_ok && p->topic_len == n && shmq_bytes_equal(p->topic_name, topic, n);
}

/*
 * shmq_prod_check_message() on the send path: its usual answer (the topic
 * validated last, a body within maxMessageSize, no delay level below 0, a
 * queue id in range, no delivery time) without the call; anything else goes
 * to it, which checks everything again and words the error.
 */
static inline int shmq_prod_check_message_at(shmq_producer_t *p, const shmq_message_t *m,
                                             size_t *tlen)
{
    if (m != NULL && m->topic != NULL) {
        size_t n = strnlen(m->topic, SHMQ_TOPIC_MAX_ANY + 1);
        if (shmq_prod_topic_is_cached(p, m->topic, n) && (m->body != NULL || m->body_len == 0) &&
            m->body_len <= (size_t)p->cfg->max_message_size && m->delay_level >= 0 &&
            m->queue_id >= SHMQ_QUEUE_ANY && m->queue_id <= 65535 &&
            (m->deliver_at_ms | m->deliver_after_ms) == 0) {
            *tlen = n;
            return 0;
        }
    }
    return shmq_prod_check_message(p, m, tlen);
}

/* Queue for m: explicit id, hash of the sharding key, or round-robin. */
int shmq_prod_select_queue(shmq_producer_t *p, const shmq_message_t *m, size_t tlen, int32_t *qid);

/*
 * shmq_prod_select_queue() on the send path, for an m that just passed
 * shmq_prod_check_message(_at) (its topic is then the one validated last,
 * p->topic_name: not compared again): its usual answer (any queue, no
 * sharding key, the topic's table entry unchanged since it was copied:
 * round-robin over its write queues) without the call; anything else goes
 * to it.
 */
static inline int shmq_prod_select_queue_at(shmq_producer_t *p, const shmq_message_t *m,
                                            size_t tlen, int32_t *qid)
{
    /* Acquire: as a seqlock read in topic_write_queues (producer.c). */
    if (m->queue_id == SHMQ_QUEUE_ANY && m->sharding_key == NULL && p->topic_cached &&
        p->topic_nq > 0 &&
        atomic_load_explicit((_Atomic uint32_t *)&p->blk->topics[p->topic_idx].seq,
                             memory_order_acquire) == p->topic_seq) {
        *qid = (int32_t)(p->rr++ % (uint32_t)p->topic_nq);
        return 0;
    }
    return shmq_prod_select_queue(p, m, tlen, qid);
}

/*
 * Properties of m into buf with a fresh UNIQ_KEY (copied to uniq, NUL-terminated);
 * now_ms: the wall clock of the send (the key's time).
 */
int shmq_prod_build_props(const shmq_producer_t *p, const shmq_message_t *m, char *buf, size_t cap,
                          size_t *len, char uniq[SHMQ_UNIQ_KEY_MAX], int64_t now_ms);

/*
 * m puts nothing of its own in the properties (no tags, keys, delay level,
 * delivery time or user property; negative values were refused before) and
 * p has no group: shmq_prod_build_props() would write the UNIQ_KEY alone.
 */
static inline bool shmq_prod_props_plain(const shmq_producer_t *p, const shmq_message_t *m)
{
    return (m->tags == NULL || m->tags[0] == '\0') && (m->keys == NULL || m->keys[0] == '\0') &&
           m->delay_level <= 0 && m->deliver_at_ms <= 0 && m->deliver_after_ms <= 0 &&
           m->property_count == 0 && p->group == NULL;
}

/* Bytes shmq_prod_props_uniq() writes: UNIQ_KEY, 0x01, the key, 0x02. */
#define SHMQ_PROD_PROPS_UNIQ_LEN (sizeof(SHMQ_PROP_UNIQ_KEY) + SHMQ_UNIQ_KEY_LEN + 1)

/*
 * shmq_prod_build_props() of a message shmq_prod_props_plain() accepts,
 * into buf (at least SHMQ_PROD_PROPS_UNIQ_LEN bytes): the same bytes, the
 * same key in uniq; returns their length.
 */
static inline size_t shmq_prod_props_uniq(char *buf, char uniq[SHMQ_UNIQ_KEY_MAX], int64_t now_ms)
{
    const size_t name_len = sizeof(SHMQ_PROP_UNIQ_KEY) - 1;
    (void)shmq_uniq_key_generate_at(uniq, now_ms);
    memcpy(buf, SHMQ_PROP_UNIQ_KEY "\x01", name_len + 1);
    memcpy(buf + name_len + 1, uniq, SHMQ_UNIQ_KEY_LEN);
    buf[name_len + 1 + SHMQ_UNIQ_KEY_LEN] = SHMQ_PROP_SEP;
    return SHMQ_PROD_PROPS_UNIQ_LEN;
}

/*
 * The ring entry view of m (kind MSG, single message, no slot yet), born at now_ms.
 * Every field is stored (the decode-only ones zero), except plan: planned is false.
 */
static inline void shmq_prod_fill_entry(const shmq_producer_t *p, const shmq_message_t *m,
                                        size_t tlen, const char *props, size_t plen, int32_t qid,
                                        int64_t now_ms, shmq_ring_msg_t *rm)
{
    /* Field by field, not one initializer: that would also zero plan's bytes on every send.
     * Every field but plan is named below (the size says when the struct changed). */
    _Static_assert(sizeof(shmq_ring_msg_t) == 160,
                   "shmq_prod_fill_entry stores every field of shmq_ring_msg_t but plan: "
                   "name a new field there too");
    rm->kind = SHMQ_RING_KIND_MSG;
    rm->flags = 0;
    rm->total_len = 0;
    rm->batch_index = 0;
    rm->batch_count = 1;
    rm->slot = 0;
    rm->req_id = 0;
    rm->queue_id = qid;
    rm->flag = m->flag;
    rm->sysflag = 0;
    rm->reconsume_times = 0;
    rm->born_ts = now_ms;
    rm->prepared_tx_offset = 0;
    rm->born_host = p->born_host;
    rm->topic = m->topic;
    rm->topic_len = (uint32_t)tlen;
    rm->props = props;
    rm->props_len = (uint32_t)plen;
    rm->body = m->body;
    rm->body_len = (uint32_t)m->body_len;
    rm->uniq_key = NULL;
    rm->uniq_key_len = 0;
    rm->hdr_ok = false;
    rm->props_scanned = false;
    rm->sched = false;
    rm->planned = false;
}

/* ---- the entry of a plain message ------------------------------------------------ */

/* Bytes of the entry of a plain message (shmq_prod_encode_plain) of body_len bytes. */
static inline uint64_t shmq_prod_plain_size(const shmq_producer_t *p, size_t body_len)
{
    return (p->tmpl_len + SHMQ_UNIQ_KEY_LEN + 1 + body_len + SHMQ_RING_ALIGN - 1) &
           ~(uint64_t)(SHMQ_RING_ALIGN - 1);
}

/*
 * Build p->tmpl for the topic validated last (p->topic_name): the bytes
 * shmq_ring_encode_fitted() writes for it up to the UNIQ_KEY's value, so
 * that every field the template holds is encoded by the one encoder.
 */
static inline void shmq_prod_tmpl_build(shmq_producer_t *p)
{
    char props[SHMQ_PROD_PROPS_UNIQ_LEN];
    memcpy(props, SHMQ_PROP_UNIQ_KEY "\x01", sizeof(SHMQ_PROP_UNIQ_KEY));
    memset(props + sizeof(SHMQ_PROP_UNIQ_KEY), '0', SHMQ_UNIQ_KEY_LEN);
    props[SHMQ_PROD_PROPS_UNIQ_LEN - 1] = SHMQ_PROP_SEP;
    shmq_message_t m;
    memset(&m, 0, sizeof(m));
    m.topic = p->topic_name;
    shmq_ring_msg_t rm;
    shmq_prod_fill_entry(p, &m, p->topic_len, props, sizeof(props), 0, 0, &rm);
    uint8_t buf[sizeof(p->tmpl) + SHMQ_UNIQ_KEY_LEN + 1 + SHMQ_RING_ALIGN];
    uint64_t total = shmq_ring_entry_size_inline(p->topic_len, sizeof(props), 0);
    shmq_ring_encode_fitted(buf, total, &rm);
    p->tmpl_len = SHMQ_RING_HDR_SIZE + p->topic_len + sizeof(SHMQ_PROP_UNIQ_KEY);
    memcpy(p->tmpl, buf, p->tmpl_len);
}

/* v little-endian at dst + off (as the ring's encoder stores header fields). */
static inline void shmq_prod_put_le(uint8_t *dst, size_t off, uint64_t v, size_t n)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v) >> (64 - 8 * n);
#endif
    memcpy(dst + off, &v, n);
}

/*
 * shmq_ring_encode_fitted() of the entry of m (which shmq_prod_props_plain()
 * accepts, to the topic of p->tmpl, its body not compressed) with the
 * UNIQ_KEY uniq (SHMQ_UNIQ_KEY_LEN characters) as its properties, at dst
 * holding total = shmq_prod_plain_size() bytes: the same bytes, from the
 * template and the fields of this send.
 */
static inline void shmq_prod_encode_plain(const shmq_producer_t *p, uint8_t *dst, uint64_t total,
                                          const shmq_message_t *m, int32_t qid, int64_t now_ms,
                                          uint16_t flags, uint32_t slot, uint64_t req_id,
                                          const char *uniq)
{
    shmq_prod_put_le(dst, total - 8, 0, 8); /* the padding: the parts overwrite their bytes */
    memcpy(dst, p->tmpl, p->tmpl_len);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, flags), flags, 2);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, total_len), (uint32_t)total, 4);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, slot), slot, 4);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, queue_id), (uint32_t)qid, 4);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, req_id), req_id, 8);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, flag), (uint32_t)m->flag, 4);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, born_ts), (uint64_t)now_ms, 8);
    shmq_prod_put_le(dst, offsetof(shmq_ring_hdr_t, body_len), (uint32_t)m->body_len, 4);
    uint8_t *o = dst + p->tmpl_len;
    memcpy(o, uniq, SHMQ_UNIQ_KEY_LEN);
    o[SHMQ_UNIQ_KEY_LEN] = SHMQ_PROP_SEP;
    if (m->body_len) {
        memcpy(o + SHMQ_UNIQ_KEY_LEN + 1, m->body, m->body_len);
    }
}

/* ---- producer_send.c ------------------------------------------------------------- */

/*
 * Put the entry view rm (one message, its slot and request id not set yet)
 * in the ring: mode REQ_SYNC / REQ_ASYNC takes a completion slot (*slot_out),
 * REQ_FREE sends it one-way.  Waits for a slot and ring space until deadline.
 * rm's slot, request id and flags are set to those of the entry (the caller's
 * scratch copy: not copied again).
 */
int shmq_prod_enqueue(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                      uint32_t *slot_out);

/*
 * Send the checked entry view rm (uniq: its UNIQ_KEY) by the deadline:
 * REQ_SYNC waits for its result in *res as shmq_send() does, REQ_ASYNC
 * leaves it to cb from shmq_producer_poll as shmq_send_async() does,
 * REQ_FREE sends it one-way.  rm is the caller's scratch (shmq_prod_enqueue).
 */
int shmq_prod_send(shmq_producer_t *p, shmq_ring_msg_t *rm, uint8_t mode, int64_t deadline,
                   const char *uniq, shmq_send_result_t *res, shmq_send_cb cb, void *arg);

/* Wait for the answer of the REQ_SYNC request in slot s (and the flush): as shmq_send(). */
int shmq_prod_wait_result(shmq_producer_t *p, uint32_t s, int64_t deadline, const char *uniq,
                          shmq_send_result_t *res);

#endif
