/*
 * Producer rings: the entry format a producer writes into its shared-memory
 * ring and the writer process reads back, with the producer-side cursor
 * (reserve, write, publish) and the writer-side reader (copy out, then
 * validate the copy).
 *
 * A ring is an object of its own (shmq_ring_shm_t: a sealed memfd the master
 * creates at registration and hands to one producer over <root>/shmq.sock):
 * a header, the completion slots, then ring_size bytes of data (a power of
 * two).  Two monotonic byte counters: tail (the producer's, published with a
 * release store after whole entries) and head (the writer's; the copy it
 * trusts lives in the control block's ring table, the ring holds a copy for
 * the producer).  The byte of counter value v lives at data[v & (size - 1)].
 *
 * Entry = fixed little-endian header (shmq_ring_hdr_t, 96 bytes), then the
 * topic, the encoded properties and the body, zero-padded to a multiple of
 * 8.  An entry never crosses the ring's end: when one does not fit before
 * the wrap, a PAD entry fills the rest of the ring (only its first 8 bytes,
 * magic and kind, are meaningful: a PAD always runs to the end of the ring,
 * so it fits any gap, even 8 bytes).  A producer batch is count consecutive
 * MSG entries (batch_index 0..count-1, same slot and request id), all before
 * the wrap, published together and appended as one unit.
 *
 * Everything in a ring is untrusted input for the writer: it copies an entry
 * out of shared memory once (each shared byte is read exactly once, PITFALLS
 * 10) and validates the private copy; each kind of garbage has its own
 * error code.  A garbage length cannot be skipped safely: the writer then
 * discards the rest of the published region.
 */
#ifndef SHMQ_RING_H
#define SHMQ_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/config.h"
#include "shm/ctl.h"
#include "format/message.h"
#include "shmq/types.h"

#define SHMQ_RING_MAGIC    0x31455153u /* "SQE1" as little-endian bytes */
#define SHMQ_RING_ALIGN    8
#define SHMQ_RING_HDR_SIZE 96
#define SHMQ_RING_PAD_SIZE 8 /* bytes of a PAD entry that are read */

/*
 * A unit (one message, or one producer batch) holds at most maxMessageSize
 * + SHMQ_RING_UNIT_SLACK bytes of entries: this bounds what one append can
 * leave behind wrote_pos when the writer is killed.
 */
#define SHMQ_RING_UNIT_SLACK (64 * 1024)

/* ---- the ring object ------------------------------------------------------------ */

#define SHMQ_RING_SHM_MAGIC 0x31474e4952514853ULL /* "SHQRING1" */

/*
 * A ring object: this header, then the data at SHMQ_RING_DATA_OFF.  The
 * producer that owns it maps it read-write and may write anything in it:
 * the writer reads nothing from it it does not check (the header's fields
 * are the master's, checked against the ring table when the writer maps
 * it; tail is validated against the writer's own head; entries are copied
 * out and decoded).  A producer that scribbles its ring hurts only itself.
 */
typedef struct shmq_ring_shm {
    uint64_t magic;     /* master: SHMQ_RING_SHM_MAGIC */
    uint64_t claims;    /* master: the ring table's claims when it was created */
    uint64_t ring_size; /* master: bytes of data */
    uint32_t index;     /* master: the ring table entry */
    uint32_t pad;
    _Alignas(64) _Atomic uint64_t tail; /* producer: bytes published (monotonic) */
    _Alignas(64) _Atomic uint64_t head; /* writer: bytes consumed (its copy for the producer) */
    shmq_ctl_wake_t producer_wake;      /* writer -> producer: completions, space */
    shmq_ring_slot_t slots[SHMQ_RING_SLOTS];
} shmq_ring_shm_t;

#define SHMQ_RING_DATA_OFF (((uint64_t)sizeof(shmq_ring_shm_t) + 4095) & ~(uint64_t)4095)

/* A process's mapping of a ring object. */
typedef struct shmq_ring_map {
    shmq_ring_shm_t *r;
    uint8_t *data; /* r + SHMQ_RING_DATA_OFF */
    size_t len;    /* the whole mapping */
    uint64_t claims;
    uint32_t index;
} shmq_ring_map_t;

/* Entry kinds. */
enum shmq_ring_kind { SHMQ_RING_KIND_MSG = 1, SHMQ_RING_KIND_PAD = 2 };

/* Entry flags. */
#define SHMQ_RING_F_ONEWAY 0x0001 /* no completion: slot is ignored */
/* A message stored again (a consumer's send-back, the scheduler's delivery): born_ts is
 * an earlier send's, so the writer leaves it out of the send latency (statistics only) */
#define SHMQ_RING_F_RESEND 0x0002
#define SHMQ_RING_F_KNOWN  (SHMQ_RING_F_ONEWAY | SHMQ_RING_F_RESEND)

/* SysFlag bits a producer may set (host bits are the encoder's; batch bits are refused). */
#define SHMQ_RING_SYSFLAG_ALLOWED                                                                  \
    (SHMQ_SYSFLAG_COMPRESSED | SHMQ_SYSFLAG_MULTI_TAGS | SHMQ_SYSFLAG_TX_MASK |                    \
     SHMQ_SYSFLAG_COMPRESS_MASK)

/*
 * The fixed header, as stored (little-endian; no implicit padding).  The
 * first 8 bytes are all a PAD entry has.
 */
typedef struct shmq_ring_hdr {
    uint32_t magic;             /*  0 SHMQ_RING_MAGIC */
    uint16_t kind;              /*  4 enum shmq_ring_kind */
    uint16_t flags;             /*  6 SHMQ_RING_F_* */
    uint32_t total_len;         /*  8 whole entry, header included, multiple of 8 */
    uint16_t batch_index;       /* 12 position in its batch, 0 = first */
    uint16_t batch_count;       /* 14 entries in the batch, 1 = single message */
    uint32_t slot;              /* 16 completion slot (< SHMQ_RING_SLOTS unless ONEWAY) */
    int32_t queue_id;           /* 20 */
    uint64_t req_id;            /* 24 producer's request id, echoed in the slot */
    int32_t flag;               /* 32 user flag */
    int32_t sysflag;            /* 36 */
    int32_t reconsume_times;    /* 40 */
    uint32_t topic_len;         /* 44 */
    int64_t born_ts;            /* 48 */
    int64_t prepared_tx_offset; /* 56 */
    uint8_t born_addr[16];      /* 64 IPv4 uses the first 4 bytes */
    int32_t born_port;          /* 80 */
    uint8_t born_v6;            /* 84 0 or 1 */
    uint8_t reserved[3];        /* 85 zero */
    uint32_t props_len;         /* 88 */
    uint32_t body_len;          /* 92 */
} shmq_ring_hdr_t;

/*
 * One entry, decoded (views into the caller's copy) or to encode (views
 * into the producer's buffers).
 */
typedef struct shmq_ring_msg {
    uint16_t kind;
    uint16_t flags;
    uint32_t total_len;
    uint16_t batch_index;
    uint16_t batch_count;
    uint32_t slot;
    uint64_t req_id;
    int32_t queue_id;
    int32_t flag;
    int32_t sysflag;
    int32_t reconsume_times;
    int64_t born_ts;
    int64_t prepared_tx_offset;
    shmq_host_t born_host;
    const char *topic;
    uint32_t topic_len;
    const char *props;
    uint32_t props_len;
    const uint8_t *body;
    uint32_t body_len;
    const char *uniq_key; /* decode: the UNIQ_KEY property's value (not NUL-terminated) */
    uint32_t uniq_key_len;
    bool hdr_ok; /* decode: the header fields above are readable (for completing an error) */
    /* decode: the properties passed shmq_props_scan() (no 0x00, no __CRC32#): the record
     * can be planned with SHMQ_PLAN_PROPS_SCANNED while props is not replaced */
    bool props_scanned;
    bool sched; /* decode: a property the scheduler's put hook may act on (shmq_props_info_t) */
    /* decode: plan is the record's layout (shmq_record_plan() of the entry with a store host
     * of the limits' family), valid while topic and props are not replaced */
    bool planned;
    shmq_record_plan_t plan;
} shmq_ring_msg_t;

/* The last topic name found valid (a writer's: consecutive entries mostly share a topic). */
typedef struct shmq_ring_topic_memo {
    uint32_t len; /* 0: none */
    int32_t max_len;
    /* moves each time name is replaced: after a unit decoded with this memo, an unchanged gen
     * says its topic is the name an earlier unit had */
    uint64_t gen;
    char name[SHMQ_TOPIC_MAX_ANY];
} shmq_ring_topic_memo_t;

/* The store's limits an entry is checked against. */
typedef struct shmq_ring_limits {
    int32_t max_body;      /* maxMessageSize */
    int32_t max_topic_len; /* maxTopicLength (retry/DLQ topics: 255) */
    /* shmq_ring_peek(): copy the header, topic and properties only and leave the body where
     * it is (body views the ring; the caller reads each of its bytes once, as
     * shmq_record_encode_plan() does, and before giving the entry's bytes back) */
    bool body_in_ring;
    /* the family of the store host the records get (decode plans them: shmq_ring_msg_t.plan) */
    bool store_host_v6;
    /* optional: decode checks a topic equal to the memo's (same limit) no more, and
     * remembers the last one it found valid */
    shmq_ring_topic_memo_t *topic_memo;
} shmq_ring_limits_t;

/*
 * Errors of a ring entry, one per kind of garbage.  The first five are
 * "fatal": the entry's length cannot be trusted, so nothing after it can
 * be found (the writer discards the rest of the published region).  The
 * others leave a valid length: the entry is skipped and its request
 * completed with shmq_ring_error_status(err).
 */
enum shmq_ring_error {
    SHMQ_RING_E_BASE = -10200,
    SHMQ_RING_E_SHORT = -10201,         /* fatal: fewer than 8 published bytes before the wrap */
    SHMQ_RING_E_MAGIC = -10202,         /* fatal: not SHMQ_RING_MAGIC */
    SHMQ_RING_E_KIND = -10203,          /* fatal: neither MSG nor PAD */
    SHMQ_RING_E_LENGTH = -10204,        /* fatal: total length < header or not a multiple of 8 */
    SHMQ_RING_E_PAST_TAIL = -10205,     /* fatal: entry runs past the published tail or the wrap */
    SHMQ_RING_E_FLAGS = -10206,         /* unknown flag bits, or non-zero reserved bytes */
    SHMQ_RING_E_BATCH = -10207,         /* batch index/count inconsistent */
    SHMQ_RING_E_SLOT = -10208,          /* completion slot out of range */
    SHMQ_RING_E_TOPIC_LEN = -10209,     /* topic length 0, > 255 or past the entry */
    SHMQ_RING_E_PROPS_LEN = -10210,     /* properties run past the entry */
    SHMQ_RING_E_BODY_LEN = -10211,      /* body runs past the entry */
    SHMQ_RING_E_LEN_MISMATCH = -10212,  /* total length is not the padded sum of the parts */
    SHMQ_RING_E_PROPS_TOO_BIG = -10213, /* properties + __CRC32# tail > 32767 */
    SHMQ_RING_E_BODY_TOO_BIG = -10214,  /* body > maxMessageSize */
    SHMQ_RING_E_HOST = -10215,          /* born host flag not 0/1 */
    SHMQ_RING_E_QUEUE = -10216,         /* queue id outside 0..65535 (or the topic's queues) */
    SHMQ_RING_E_SYSFLAG = -10217,       /* sysflag bits a producer may not set */
    SHMQ_RING_E_TOPIC = -10218,         /* topic name breaks the topic rules */
    SHMQ_RING_E_UNIQ_KEY = -10219,      /* UNIQ_KEY missing, or longer than 56 bytes */
    SHMQ_RING_E_PROPS = -10220,         /* properties hold __CRC32# (the store's) */
    SHMQ_RING_E_LAST = -10221
};

/* True for errors after which the entry's length cannot be trusted. */
bool shmq_ring_error_fatal(int err);

/*
 * The status a producer receives for a rejected entry: SHMQ_E_CORRUPT
 * (framing), SHMQ_E_TOPIC, SHMQ_E_PROPS, SHMQ_E_TOO_BIG, SHMQ_E_RANGE.
 * Other codes are returned unchanged.
 */
int shmq_ring_error_status(int err);

/* Text for a SHMQ_RING_E_* code (shmq_strerror() for anything else). */
const char *shmq_ring_strerror(int err);

/* Bytes of an entry with these part lengths (header included, rounded up to 8). */
uint64_t shmq_ring_entry_size(uint64_t topic_len, uint64_t props_len, uint64_t body_len);

/* shmq_ring_entry_size() inline, for the send path (shmq_ring_encode and the producer). */
static inline uint64_t shmq_ring_entry_size_inline(uint64_t topic_len, uint64_t props_len,
                                                   uint64_t body_len)
{
    return (SHMQ_RING_HDR_SIZE + topic_len + props_len + body_len + SHMQ_RING_ALIGN - 1) &
           ~(uint64_t)(SHMQ_RING_ALIGN - 1);
}

/*
 * Encode m (kind MSG) at dst, cap bytes available.  total_len, kind and
 * the header layout are filled in from the part lengths; padding is zeroed.
 * Returns the entry size, or SHMQ_E_TRUNCATED if cap is too small, or
 * SHMQ_E_ARG for a part length that does not fit its field.
 */
int64_t shmq_ring_encode(uint8_t *dst, size_t cap, const shmq_ring_msg_t *m);

/*
 * shmq_ring_encode() of an m its caller built within the limits that
 * function checks (topic_len at most SHMQ_TOPIC_MAX_ANY, props_len and
 * body_len at most UINT32_MAX / 2, no NULL part with a length), at dst
 * holding total = shmq_ring_entry_size() of its parts (at most UINT32_MAX):
 * the same bytes, without the checks.  The producer's send path, whose
 * message was checked once already.
 */
void shmq_ring_encode_fitted(uint8_t *dst, uint64_t total, const shmq_ring_msg_t *m);

/* Write a PAD entry header at dst (8 bytes). */
void shmq_ring_write_pad(uint8_t *dst);

/*
 * Decode and validate one entry held privately in buf (len bytes: the
 * entry's total length as the caller copied it).  Returns
 * SHMQ_RING_KIND_MSG or SHMQ_RING_KIND_PAD, or a SHMQ_RING_E_* error (with
 * shmq_error_set() context).  On a non-fatal error out->hdr_ok is true and
 * the header fields (slot, req_id, flags, batch) are filled.  Checks every
 * length against len, the limits, topic rules, queue id range, sysflag,
 * UNIQ_KEY presence.
 */
int shmq_ring_decode(const uint8_t *buf, size_t len, const shmq_ring_limits_t *lim,
                     shmq_ring_msg_t *out);

/*
 * Writer side: take the entry at head of a ring (data, size bytes, a power
 * of two) whose producer published up to tail.  The entry is copied out of
 * the ring into buf (cap bytes; cap >= size suffices for any entry) with a
 * single read of each shared byte, then decoded from the copy.  Returns
 *   0                   the ring is empty (head == tail);
 *   SHMQ_RING_KIND_PAD  *advance = bytes from head to the ring's end;
 *   SHMQ_RING_KIND_MSG  *out views the copy; *advance = its total length;
 *   < 0                 a SHMQ_RING_E_* error: *advance = the entry's
 *                       length when it can be skipped, 0 when fatal.
 */
int shmq_ring_peek(const uint8_t *data, uint64_t size, uint64_t head, uint64_t tail,
                   const shmq_ring_limits_t *lim, uint8_t *buf, size_t cap, shmq_ring_msg_t *out,
                   uint64_t *advance);

/*
 * Writer side: true when the entry at head is the usual one, whose header
 * (copied once into *h) passes every check shmq_ring_peek() makes of a
 * header: a MSG entry published whole before the wrap, a batch of one, not
 * transactional, an IPv4 born host, a topic of 1..127 bytes (and at most
 * lim->max_topic_len), a body within lim->max_body, properties that leave
 * room for a separator and the __CRC32# tail, and lim->store_host_v6 false
 * (the record is V1 with two IPv4 hosts).  The parts are not looked at: the
 * caller copies them once and checks its copy as shmq_ring_peek() does
 * (topic rules, shmq_props_scan(), UNIQ_KEY).  False for anything else,
 * bad entries included, with no error set: shmq_ring_take_unit() decides.
 */
static inline bool shmq_ring_peek_plain(const uint8_t *data, uint64_t size, uint64_t head,
                                        uint64_t tail, const shmq_ring_limits_t *lim,
                                        shmq_ring_hdr_t *h)
{
    _Static_assert(sizeof(shmq_ring_hdr_t) == SHMQ_RING_HDR_SIZE, "the header is the entry's");
    uint64_t avail = tail - head;
    uint64_t off = head & (size - 1);
    uint64_t contig = size - off < avail ? size - off : avail;
    if (avail > size || contig < SHMQ_RING_HDR_SIZE) {
        return false;
    }
    /* Each shared byte of the header read once, into *h: every check below reads *h. */
    memcpy(h, data + off, SHMQ_RING_HDR_SIZE);
    uint32_t v6_word;
    memcpy(&v6_word, (const uint8_t *)h + offsetof(shmq_ring_hdr_t, born_v6), 4);
    /* Fields checked together as the little-endian words they lie in: magic, kind and flags
     * (bytes 0..7: MSG, no flag but the known ones), batch index and count (12..15: 0 and 1). */
    uint64_t w0, w1;
    memcpy(&w0, h, 8);
    memcpy(&w1, (const uint8_t *)h + 8, 8);
    _Static_assert(offsetof(shmq_ring_hdr_t, flags) == 6 &&
                       offsetof(shmq_ring_hdr_t, batch_index) == 12 &&
                       offsetof(shmq_ring_hdr_t, batch_count) == 14,
                   "the words below");
    _Static_assert(SHMQ_SYSFLAG_TX_NOT == 0, "one mask for the sysflag's two checks");
    const uint64_t w0_want = (uint64_t)SHMQ_RING_KIND_MSG << 32 | SHMQ_RING_MAGIC;
    const uint64_t w0_free = (uint64_t)SHMQ_RING_F_KNOWN << 48;
    /* decode_msg()'s and check_parts()'s checks of the header, each true here, and the shape
     * of the usual entry: one message (a batch of one), not transactional, an IPv4 born host
     * and a V1 record (topic of at most 127 bytes, a store host of IPv4 too).  Unsigned
     * compares take both ends of a range: a topic length of 1..max_topic, a queue id of
     * 0..65535. */
    int32_t max_topic = lim->max_topic_len < SHMQ_TOPIC_MAX ? lim->max_topic_len : SHMQ_TOPIC_MAX;
    return (w0 & ~w0_free) == w0_want && (w1 >> 32) == (uint64_t)1 << 16 &&
           h->total_len <= contig &&
           shmq_ring_entry_size_inline(h->topic_len, h->props_len, h->body_len) == h->total_len &&
           v6_word == 0 && ((h->flags & SHMQ_RING_F_ONEWAY) || h->slot < SHMQ_RING_SLOTS) &&
           h->topic_len - 1 < (uint32_t)max_topic &&
           (uint64_t)h->props_len + 1 + SHMQ_CRC_PROP_LEN <= SHMQ_PROPS_MAX &&
           (int64_t)h->body_len <= (int64_t)lim->max_body && (uint32_t)h->queue_id <= 65535 &&
           (h->sysflag & (~SHMQ_RING_SYSFLAG_ALLOWED | SHMQ_SYSFLAG_TX_MASK)) == 0 &&
           !lim->store_host_v6;
}

/*
 * Writer side: the unit at pos (one message, or a producer batch): each entry
 * copied and validated as by shmq_ring_peek() into consecutive parts of buf,
 * and the batch framing checked (entries 0..count-1 in a row, all before the
 * wrap, with the same slot, request id, flags, topic, queue id and sysflag).
 * msgs has room for max_msgs entries.  Returns
 *   0 / SHMQ_RING_KIND_PAD  as shmq_ring_peek();
 *   SHMQ_RING_KIND_MSG      msgs[0..*n) hold the unit, *advance its bytes;
 *   -ENOBUFS                the batch has *n entries, more than max_msgs
 *                           (nothing consumed: grow msgs and call again);
 *   < 0                     a SHMQ_RING_E_* error: fatal (*advance 0), or
 *                           *advance covers the refused entries and msgs[0]
 *                           holds the request to answer (if msgs[0].hdr_ok).
 * A batch broken by a foreign entry ends before that entry (SHMQ_RING_E_BATCH).
 */
int shmq_ring_take_unit(const uint8_t *data, uint64_t size, uint64_t pos, uint64_t tail,
                        const shmq_ring_limits_t *lim, uint8_t *buf, size_t cap,
                        shmq_ring_msg_t *msgs, size_t max_msgs, size_t *n, uint64_t *advance);

/*
 * The CommitLog message for an entry: m's views, with the given store host
 * (the one the writer stamps; see shmq_config_store_host()).
 */
static inline void shmq_ring_msg_to_in(const shmq_ring_msg_t *m, const shmq_host_t *store_host,
                                       shmq_msg_in_t *in)
{
    /* Every field is set (no memset: the writer calls this per message). */
    in->topic = m->topic;
    in->topic_len = m->topic_len;
    in->queue_id = m->queue_id;
    in->flag = m->flag;
    in->sysflag = m->sysflag;
    in->born_ts = m->born_ts;
    in->born_host = m->born_host;
    in->store_host = *store_host;
    in->reconsume_times = m->reconsume_times;
    in->prepared_tx_offset = m->prepared_tx_offset;
    in->body = m->body;
    in->body_len = m->body_len;
    in->props = m->props;
    in->props_len = m->props_len;
}

/* ---- producer-side cursor ------------------------------------------------ */

typedef struct shmq_ring_prod {
    uint8_t *data;
    uint64_t size;          /* power of two */
    _Atomic uint64_t *head; /* the writer's consumed position (read with acquire) */
    _Atomic uint64_t *tail; /* our published position */
    uint64_t reserved;      /* end of the bytes reserved so far, >= *tail */
} shmq_ring_prod_t;

/* Start a cursor at the ring's current tail (the claimer set head = tail). */
void shmq_ring_prod_init(shmq_ring_prod_t *rp, uint8_t *data, uint64_t size, _Atomic uint64_t *head,
                         _Atomic uint64_t *tail);

/*
 * Reserve len contiguous bytes (a multiple of 8) after what is reserved:
 * when they do not fit before the ring's end, a PAD entry fills it and the
 * bytes start at the ring's beginning.  Returns 0 with *dst set, -EAGAIN
 * when the free space is not enough now (nothing written: wait for the
 * writer), SHMQ_E_TOO_BIG when len can never fit.
 */
/* shmq_ring_reserve() off its fast path: a PAD at the ring's end, -EAGAIN, a bad length. */
int shmq_ring_reserve_slow(shmq_ring_prod_t *rp, uint64_t len, uint8_t **dst);

static inline int shmq_ring_reserve(shmq_ring_prod_t *rp, uint64_t len, uint8_t **dst)
{
    /* On every send: when len (a multiple of 8) fits before the ring's end and in the
     * free space, take it here; anything else (a PAD, waiting, a bad length) is the
     * out-of-line part's. */
    uint64_t off = rp->reserved & (rp->size - 1);
    /* Acquire: the writer copied the bytes below head out before publishing it. */
    uint64_t used = rp->reserved - atomic_load_explicit(rp->head, memory_order_acquire);
    if (len != 0 && len % SHMQ_RING_ALIGN == 0 && len <= rp->size - off && used <= rp->size &&
        len <= rp->size - used) {
        *dst = rp->data + off;
        rp->reserved += len;
        return 0;
    }
    return shmq_ring_reserve_slow(rp, len, dst);
}

/* True if a reservation of len bytes would succeed now. */
bool shmq_ring_has_space(const shmq_ring_prod_t *rp, uint64_t len);

/* Publish everything reserved (release store of tail). */
void shmq_ring_publish(shmq_ring_prod_t *rp);

/* Drop unpublished reservations. */
void shmq_ring_cancel(shmq_ring_prod_t *rp);

/* True when the writer consumed everything published (head == tail). */
bool shmq_ring_drained(const shmq_ring_prod_t *rp);

/* ---- ring objects: the master, the writer, the producer (ring_ctl.c) -------------- */

/*
 * Master: give a FREE ring to a producer (pid from SO_PEERCRED; id: its uid
 * and groups, recorded in the ring table for the writer's ACL checks).  The
 * object is a memfd of SHMQ_RING_DATA_OFF + ring_size bytes, allocated at
 * once (posix_fallocate: no SIGBUS later) and sealed against shrinking or
 * growing (nobody holding it can make the writer's mapping fault).  The
 * master keeps its descriptor (ring table master_fd: the ring outlives
 * writer restarts); *fd_out is a second one for the producer (the caller
 * sends and closes it).  -EBUSY when every ring is taken, -ENOSPC /
 * -ENOMEM with the bytes needed when memory is short.
 */
int shmq_ring_assign(shmq_ctl_t *ctl, pid_t pid, const shmq_acl_ident_t *id, uint32_t *idx,
                     int *fd_out);

/* Master: the producer of ring idx went away: ACTIVE -> ORPHANED (the writer drains it). */
void shmq_ring_orphan(shmq_ctl_t *ctl, uint32_t idx);

/* Master: close the objects of DRAINED rings (and, at stop, of every ring when all is true):
 * FREE.  Returns how many rings were freed. */
int shmq_ring_reap(shmq_ctl_t *ctl, bool all);

/*
 * Writer (or a tool of the store's user): map ring idx if it is ACTIVE or
 * ORPHANED, through the master's descriptor (/proc/<master>/fd/<n>), and
 * check it is the object the table names (size, seals, magic, claims,
 * index).  0, -ENOENT when the ring is not in use, -ESTALE when the table
 * changed meanwhile or the object's header does not match (its producer
 * scribbled it: the ring is not served), or an open/map error.
 */
int shmq_ring_map(const shmq_ctl_t *ctl, uint32_t idx, shmq_ring_map_t *m);
void shmq_ring_unmap(shmq_ring_map_t *m);

/*
 * Producer: map the ring object received as fd for ring idx with the
 * given claims and ring_size (the master's reply), checking its size and
 * header.  The descriptor is closed in all cases.
 */
int shmq_ring_map_fd(int fd, uint32_t idx, uint64_t claims, uint64_t ring_size, shmq_ring_map_t *m);

/*
 * Producer: register with the master of the store at root over
 * <root>/shmq.sock and map the ring it sends (of ring_size bytes, the
 * store's).  *conn gets the connection, which must stay open for as long
 * as the ring is used: its end gives the ring back.  -EAGAIN when the
 * master went away while registering; SHMQ_E_CORRUPT when the answer is
 * not a ring of this store.
 */
int shmq_ring_register(const char *root, uint64_t ring_size, int *conn, shmq_ring_map_t *m);

/*
 * Writer: the producer's tail of ring m read once (acquire) and judged
 * against the writer's head: *tail gets it when valid (head <= tail <= head
 * + ring_size).  Returns 0 when valid, 1 when the tail ran more than the
 * ring ahead (the published region cannot be trusted: discard up to it),
 * -1 when it went backwards (nothing to take).
 */
static inline int shmq_ring_tail(const shmq_ring_map_t *m, uint64_t ring_size, uint64_t head,
                                 uint64_t *tail)
{
    /* Acquire: the entries below a tail the producer published are written. */
    uint64_t t = atomic_load_explicit(&m->r->tail, memory_order_acquire);
    *tail = t;
    if (t - head > ring_size) {
        return t < head ? -1 : 1; /* behind our head, or more than the whole ring ahead */
    }
    return 0;
}

/* Writer: ORPHANED -> DRAINED (nothing left to take).  True if it changed. */
bool shmq_ring_set_drained(shmq_ctl_t *ctl, uint32_t idx);

/*
 * Writer: answer slot of ring r with res (status, offsets, ..., and with a
 * negative status the text saying what was wrong with that request), if
 * that slot still waits for request res->req_id (PENDING).  Returns true
 * if so.
 */
bool shmq_ring_complete(shmq_ring_shm_t *r, uint32_t slot, const shmq_ring_slot_t *res);

/* shmq_ring_complete()'s body, inline for the writer's batch of answers: with_detail copies
 * res's error text (a negative status); without, the text is left empty (read only with a
 * negative status: shmq_ring_slot_error). */
static inline bool shmq_ring_complete_slot(shmq_ring_shm_t *r, uint32_t slot,
                                           const shmq_ring_slot_t *res, bool with_detail)
{
    if (slot >= SHMQ_RING_SLOTS) {
        return false;
    }
    shmq_ring_slot_t *s = &r->slots[slot];
    /* Acquire: the producer's arming (req_id) is visible with PENDING. */
    if (atomic_load_explicit(&s->state, memory_order_acquire) != SHMQ_SLOT_PENDING ||
        s->req_id != res->req_id) {
        return false; /* given up and reused, or never armed: nobody waits for it */
    }
    s->status = res->status;
    /* phys_offset to count, adjacent in both: one copy of fixed size (a few wide moves). */
    _Static_assert(
        offsetof(shmq_ring_slot_t, end_pos) == offsetof(shmq_ring_slot_t, phys_offset) + 8 &&
            offsetof(shmq_ring_slot_t, queue_offset) == offsetof(shmq_ring_slot_t, end_pos) + 8 &&
            offsetof(shmq_ring_slot_t, store_ts) == offsetof(shmq_ring_slot_t, queue_offset) + 8 &&
            offsetof(shmq_ring_slot_t, queue_id) == offsetof(shmq_ring_slot_t, store_ts) + 8 &&
            offsetof(shmq_ring_slot_t, size) == offsetof(shmq_ring_slot_t, queue_id) + 4 &&
            offsetof(shmq_ring_slot_t, count) == offsetof(shmq_ring_slot_t, size) + 4,
        "the answer's fields from phys_offset to count lie side by side");
    memcpy(&s->phys_offset, &res->phys_offset,
           offsetof(shmq_ring_slot_t, count) + sizeof(s->count) -
               offsetof(shmq_ring_slot_t, phys_offset));
    if (with_detail) {
        memcpy(s->detail, res->detail, sizeof(s->detail));
        s->detail[sizeof(s->detail) - 1] = '\0';
    } else {
        s->detail[0] = '\0';
    }
    /* Release: the result is visible before DONE. */
    atomic_store_explicit(&s->state, SHMQ_SLOT_DONE, memory_order_release);
    return true;
}

/* Writer: answer every PENDING slot of r with status and detail. Returns how many. */
int shmq_ring_fail_pending(shmq_ring_shm_t *r, int32_t status, const char *detail);

/*
 * Producer: the error of a completed slot with a negative status: returns
 * the status with shmq_error_detail() set to the writer's text for that
 * request (copied out of the slot and bounded), or to a text naming the
 * status when the writer gave none.
 */
int shmq_ring_slot_error(const shmq_ring_slot_t *s);

#endif
