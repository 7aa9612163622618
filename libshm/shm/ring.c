/*
 * Producer ring entries (see ring.h): encoding on the producer side,
 * copy-then-validate decoding on the writer side, and the producer's
 * reserve/publish cursor.
 *
 * The writer treats a ring as hostile input: shmq_ring_peek() reads each
 * shared byte once into a private buffer and every check runs on that copy,
 * so a producer rewriting its entry concurrently cannot get a length past a
 * check (PITFALLS 10).
 */
#include "shm/ring.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/bytes.h"
#include "shm/ctl.h"
#include "shmq/errors.h"
#include "format/commitlog.h"
#include "format/names.h"

_Static_assert(sizeof(shmq_ring_hdr_t) == SHMQ_RING_HDR_SIZE, "ring header is 96 bytes");
_Static_assert(offsetof(shmq_ring_hdr_t, total_len) == 8, "ring header layout");
_Static_assert(offsetof(shmq_ring_hdr_t, req_id) == 24, "ring header layout");
_Static_assert(offsetof(shmq_ring_hdr_t, born_ts) == 48, "ring header layout");
_Static_assert(offsetof(shmq_ring_hdr_t, born_addr) == 64, "ring header layout");
_Static_assert(offsetof(shmq_ring_hdr_t, born_v6) == 84, "ring header layout");
_Static_assert(offsetof(shmq_ring_hdr_t, body_len) == 92, "ring header layout");
_Static_assert(SHMQ_RING_HDR_SIZE % SHMQ_RING_ALIGN == 0, "header keeps entries aligned");

#define PROPS_LIMIT (SHMQ_PROPS_MAX - SHMQ_CRC_PROP_LEN)

/* ---- errors ------------------------------------------------------------------ */

bool shmq_ring_error_fatal(int err)
{
    return err == SHMQ_RING_E_SHORT || err == SHMQ_RING_E_MAGIC || err == SHMQ_RING_E_KIND ||
           err == SHMQ_RING_E_LENGTH || err == SHMQ_RING_E_PAST_TAIL;
}

int shmq_ring_error_status(int err)
{
    switch (err) {
    case SHMQ_RING_E_TOPIC_LEN:
    case SHMQ_RING_E_TOPIC:
        return SHMQ_E_TOPIC;
    case SHMQ_RING_E_PROPS_TOO_BIG:
    case SHMQ_RING_E_UNIQ_KEY:
    case SHMQ_RING_E_PROPS:
        return SHMQ_E_PROPS;
    case SHMQ_RING_E_BODY_TOO_BIG:
        return SHMQ_E_TOO_BIG;
    case SHMQ_RING_E_QUEUE:
        return SHMQ_E_RANGE;
    default:
        if (err <= SHMQ_RING_E_BASE && err > SHMQ_RING_E_LAST) {
            return SHMQ_E_CORRUPT;
        }
        return err;
    }
}

const char *shmq_ring_strerror(int err)
{
    static const char *const text[] = {
        "ring: fewer than 8 bytes published before the wrap",
        "ring: bad entry magic",
        "ring: unknown entry kind",
        "ring: entry length below the header or not a multiple of 8",
        "ring: entry runs past the published tail or the ring's end",
        "ring: unknown entry flags",
        "ring: inconsistent batch index/count",
        "ring: completion slot out of range",
        "ring: topic length 0, over 255 or past the entry",
        "ring: properties run past the entry",
        "ring: body runs past the entry",
        "ring: entry length differs from its parts",
        "ring: properties too big",
        "ring: body larger than maxMessageSize",
        "ring: bad born host",
        "ring: queue id out of range",
        "ring: sysflag bits a producer may not set",
        "ring: bad topic name",
        "ring: UNIQ_KEY missing or too long",
        "ring: properties hold __CRC32#",
    };
    if (err < SHMQ_RING_E_BASE && err > SHMQ_RING_E_LAST) {
        return text[SHMQ_RING_E_BASE - err - 1];
    }
    return shmq_strerror(err);
}

/* ---- little-endian fields ------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static inline void put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static inline void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static uint64_t align8(uint64_t n)
{
    return (n + SHMQ_RING_ALIGN - 1) & ~(uint64_t)(SHMQ_RING_ALIGN - 1);
}

uint64_t shmq_ring_entry_size(uint64_t topic_len, uint64_t props_len, uint64_t body_len)
{
    return align8(SHMQ_RING_HDR_SIZE + topic_len + props_len + body_len);
}

/* ---- encode ---------------------------------------------------------------------- */

void shmq_ring_write_pad(uint8_t *dst)
{
    uint32_t magic = htole32(SHMQ_RING_MAGIC);
    uint16_t kind = htole16(SHMQ_RING_KIND_PAD), flags = 0;
    memcpy(dst, &magic, 4);
    memcpy(dst + 4, &kind, 2);
    memcpy(dst + 6, &flags, 2);
}

int64_t shmq_ring_encode(uint8_t *dst, size_t cap, const shmq_ring_msg_t *m)
{
    /* One branch for all (|, not ||): on every send, and nearly never true. */
    /* (a | b) > 2^31 - 1 exactly when a or b is: both lengths in one comparison. */
    if ((m->topic_len > SHMQ_TOPIC_MAX_ANY) | ((m->props_len | m->body_len) > UINT32_MAX / 2) |
        (m->topic_len && !m->topic) | (m->props_len && !m->props) | (m->body_len && !m->body)) {
        return shmq_error_set(SHMQ_E_ARG, "ring entry: bad part lengths");
    }
    uint64_t total = shmq_ring_entry_size_inline(m->topic_len, m->props_len, m->body_len);
    if (total > cap || total > UINT32_MAX) {
        return shmq_error_set(SHMQ_E_TRUNCATED, "ring entry of %llu bytes does not fit %zu",
                              (unsigned long long)total, cap);
    }
    shmq_ring_encode_fitted(dst, total, m);
    return (int64_t)total;
}

void shmq_ring_encode_fitted(uint8_t *dst, uint64_t total, const shmq_ring_msg_t *m)
{
    /* The padding first (the entry's last 8 bytes: the parts then overwrite what is
     * theirs), then each field stored once, straight into the entry (shmq_ring_hdr_t's
     * layout): on every send, no header built aside and copied. */
    put64(dst + total - 8, 0);
    put32(dst + offsetof(shmq_ring_hdr_t, magic), SHMQ_RING_MAGIC);
    put16(dst + offsetof(shmq_ring_hdr_t, kind), SHMQ_RING_KIND_MSG);
    put16(dst + offsetof(shmq_ring_hdr_t, flags), m->flags);
    put32(dst + offsetof(shmq_ring_hdr_t, total_len), (uint32_t)total);
    put16(dst + offsetof(shmq_ring_hdr_t, batch_index), m->batch_index);
    put16(dst + offsetof(shmq_ring_hdr_t, batch_count), m->batch_count);
    put32(dst + offsetof(shmq_ring_hdr_t, slot), m->slot);
    put32(dst + offsetof(shmq_ring_hdr_t, queue_id), (uint32_t)m->queue_id);
    put64(dst + offsetof(shmq_ring_hdr_t, req_id), m->req_id);
    put32(dst + offsetof(shmq_ring_hdr_t, flag), (uint32_t)m->flag);
    put32(dst + offsetof(shmq_ring_hdr_t, sysflag), (uint32_t)m->sysflag);
    put32(dst + offsetof(shmq_ring_hdr_t, reconsume_times), (uint32_t)m->reconsume_times);
    put32(dst + offsetof(shmq_ring_hdr_t, topic_len), m->topic_len);
    put64(dst + offsetof(shmq_ring_hdr_t, born_ts), (uint64_t)m->born_ts);
    put64(dst + offsetof(shmq_ring_hdr_t, prepared_tx_offset), (uint64_t)m->prepared_tx_offset);
    memcpy(dst + offsetof(shmq_ring_hdr_t, born_addr), m->born_host.addr, 16);
    put32(dst + offsetof(shmq_ring_hdr_t, born_port), (uint32_t)m->born_host.port);
    /* born_v6 and the three reserved bytes after it: one word */
    put32(dst + offsetof(shmq_ring_hdr_t, born_v6), m->born_host.is_v6 ? 1 : 0);
    put32(dst + offsetof(shmq_ring_hdr_t, props_len), m->props_len);
    put32(dst + offsetof(shmq_ring_hdr_t, body_len), m->body_len);
    _Static_assert(offsetof(shmq_ring_hdr_t, reserved) == 85 &&
                       sizeof(((shmq_ring_hdr_t *)0)->reserved) == 3,
                   "born_v6 and reserved make one 32-bit word");

    uint8_t *p = dst + SHMQ_RING_HDR_SIZE;
    if (m->topic_len) {
        memcpy(p, m->topic, m->topic_len);
        p += m->topic_len;
    }
    if (m->props_len) {
        memcpy(p, m->props, m->props_len);
        p += m->props_len;
    }
    if (m->body_len) {
        memcpy(p, m->body, m->body_len);
    }
}

/* ---- decode ---------------------------------------------------------------------- */

static int bad(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(int err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return shmq_error_set(err, "%s: %s", shmq_ring_strerror(err), msg);
}

/* Magic and kind of the 8-byte prefix every entry has. */
static int decode_prefix(const uint8_t *buf)
{
    uint32_t magic = get32(buf);
    uint16_t kind = get16(buf + 4);
    if (magic != SHMQ_RING_MAGIC) {
        return bad(SHMQ_RING_E_MAGIC, "0x%08x, expected 0x%08x", magic, SHMQ_RING_MAGIC);
    }
    if (kind != SHMQ_RING_KIND_MSG && kind != SHMQ_RING_KIND_PAD) {
        return bad(SHMQ_RING_E_KIND, "kind %u", kind);
    }
    return kind;
}

/* Checks that need the parts: lengths are already known to lie inside the entry. */
static int check_parts(shmq_ring_msg_t *m, const shmq_ring_limits_t *lim)
{
    bool add_sep = m->props_len > 0 && m->props[m->props_len - 1] != SHMQ_PROP_SEP;
    uint64_t props_total = (uint64_t)m->props_len + (add_sep ? 1 : 0) + SHMQ_CRC_PROP_LEN;
    if (props_total > SHMQ_PROPS_MAX) {
        return bad(SHMQ_RING_E_PROPS_TOO_BIG, "%u bytes (%llu with __CRC32#), limit %d",
                   m->props_len, (unsigned long long)props_total, SHMQ_PROPS_MAX);
    }
    if (lim && (int64_t)m->body_len > (int64_t)lim->max_body) {
        return bad(SHMQ_RING_E_BODY_TOO_BIG, "%u bytes, maxMessageSize %d", m->body_len,
                   lim->max_body);
    }
    if (m->born_host.is_v6 > 1) {
        return bad(SHMQ_RING_E_HOST, "born host v6 flag %u", m->born_host.is_v6);
    }
    if (m->queue_id < 0 || m->queue_id > 65535) {
        return bad(SHMQ_RING_E_QUEUE, "queue id %d outside 0..65535", m->queue_id);
    }
    if (m->sysflag & ~SHMQ_RING_SYSFLAG_ALLOWED) {
        return bad(SHMQ_RING_E_SYSFLAG, "sysflag 0x%x", (unsigned)m->sysflag);
    }
    int32_t max_topic = lim ? lim->max_topic_len : SHMQ_TOPIC_MAX;
    shmq_ring_topic_memo_t *memo = lim ? lim->topic_memo : NULL;
    if (!(memo && memo->len == m->topic_len && memo->max_len == max_topic &&
          shmq_bytes_equal(memo->name, m->topic, m->topic_len))) {
        if (shmq_topic_validate(m->topic, m->topic_len, max_topic) < 0) {
            return bad(SHMQ_RING_E_TOPIC, "%s", shmq_error_detail());
        }
        if (memo) {
            memcpy(memo->name, m->topic, m->topic_len); /* topic_len <= 255: checked */
            memo->len = m->topic_len;
            memo->max_len = max_topic;
            memo->gen++;
        }
    }
    /* The record codec's own rules (it refuses a __CRC32# the producer put there), and
     * what the writer needs from the properties, in one pass. */
    shmq_props_info_t pi;
    if (shmq_props_scan(m->props, m->props_len, &pi) < 0) {
        return bad(SHMQ_RING_E_PROPS, "%s", shmq_error_detail());
    }
    /* The record's plan (shmq_record_plan() with the checks above): SHMQ_RECORD_FIXED_V1
     * counts two IPv4 hosts and a 1-byte topic length. */
    bool v2 = m->topic_len > SHMQ_TOPIC_MAX;
    int64_t total = SHMQ_RECORD_FIXED_V1 + (m->born_host.is_v6 ? 12 : 0) +
                    (lim && lim->store_host_v6 ? 12 : 0) + v2 + (int64_t)m->body_len +
                    m->topic_len + (int64_t)props_total;
    if (total > INT32_MAX) {
        return bad(SHMQ_RING_E_PROPS, "record of %lld bytes", (long long)total);
    }
    m->plan.total = total;
    m->plan.props_len = (uint32_t)props_total;
    m->plan.v2 = v2;
    m->plan.add_sep = add_sep;
    m->planned = true;
    m->props_scanned = true;
    m->sched = pi.sched;
    if (pi.uniq_key == NULL) {
        return bad(SHMQ_RING_E_UNIQ_KEY, "absent");
    }
    if (pi.uniq_key_len >= SHMQ_UNIQ_KEY_MAX) {
        return bad(SHMQ_RING_E_UNIQ_KEY, "%zu bytes, at most %d", pi.uniq_key_len,
                   SHMQ_UNIQ_KEY_MAX - 1);
    }
    m->uniq_key = pi.uniq_key;
    m->uniq_key_len = (uint32_t)pi.uniq_key_len;
    return 0;
}

/*
 * A MSG entry in buf whose prefix was checked and whose total length is at
 * least a header, a multiple of 8 and within the bytes held.  Sets every
 * field but the parts' views, which the caller cleared.
 */
static int decode_msg(const uint8_t *buf, const shmq_ring_limits_t *lim, shmq_ring_msg_t *out)
{
    /* Each field read from the copy straight into out (offsets: shmq_ring_hdr_t). */
    shmq_ring_hdr_t h;
    h.flags = get16(buf + offsetof(shmq_ring_hdr_t, flags));
    h.total_len = get32(buf + offsetof(shmq_ring_hdr_t, total_len));
    h.batch_index = get16(buf + offsetof(shmq_ring_hdr_t, batch_index));
    h.batch_count = get16(buf + offsetof(shmq_ring_hdr_t, batch_count));
    h.slot = get32(buf + offsetof(shmq_ring_hdr_t, slot));
    h.topic_len = get32(buf + offsetof(shmq_ring_hdr_t, topic_len));
    h.props_len = get32(buf + offsetof(shmq_ring_hdr_t, props_len));
    h.body_len = get32(buf + offsetof(shmq_ring_hdr_t, body_len));
    /* born_v6 and the three reserved bytes after it: one word, read once */
    uint32_t v6_word = get32(buf + offsetof(shmq_ring_hdr_t, born_v6));
    out->kind = SHMQ_RING_KIND_MSG;
    out->flags = h.flags;
    out->total_len = h.total_len;
    out->batch_index = h.batch_index;
    out->batch_count = h.batch_count;
    out->slot = h.slot;
    out->req_id = get64(buf + offsetof(shmq_ring_hdr_t, req_id));
    out->queue_id = (int32_t)get32(buf + offsetof(shmq_ring_hdr_t, queue_id));
    out->flag = (int32_t)get32(buf + offsetof(shmq_ring_hdr_t, flag));
    out->sysflag = (int32_t)get32(buf + offsetof(shmq_ring_hdr_t, sysflag));
    out->reconsume_times = (int32_t)get32(buf + offsetof(shmq_ring_hdr_t, reconsume_times));
    out->born_ts = (int64_t)get64(buf + offsetof(shmq_ring_hdr_t, born_ts));
    out->prepared_tx_offset = (int64_t)get64(buf + offsetof(shmq_ring_hdr_t, prepared_tx_offset));
    memcpy(out->born_host.addr, buf + offsetof(shmq_ring_hdr_t, born_addr),
           sizeof(out->born_host.addr));
    out->born_host.port = (int32_t)get32(buf + offsetof(shmq_ring_hdr_t, born_port));
    out->born_host.is_v6 = (uint8_t)v6_word;
    out->hdr_ok = true;

    if ((h.flags & ~SHMQ_RING_F_KNOWN) || (v6_word >> 8) != 0) { /* flags, reserved bytes */
        return bad(SHMQ_RING_E_FLAGS, "flags 0x%x", h.flags);
    }
    if (h.batch_count == 0 || h.batch_index >= h.batch_count) {
        return bad(SHMQ_RING_E_BATCH, "index %u of %u", h.batch_index, h.batch_count);
    }
    if (!(h.flags & SHMQ_RING_F_ONEWAY) && h.slot >= SHMQ_RING_SLOTS) {
        return bad(SHMQ_RING_E_SLOT, "slot %u, %d slots", h.slot, SHMQ_RING_SLOTS);
    }
    uint64_t end = SHMQ_RING_HDR_SIZE + (uint64_t)h.topic_len;
    if (h.topic_len == 0 || h.topic_len > SHMQ_TOPIC_MAX_ANY || end > h.total_len) {
        return bad(SHMQ_RING_E_TOPIC_LEN, "topic length %u in an entry of %u", h.topic_len,
                   h.total_len);
    }
    end += h.props_len;
    if (end > h.total_len) {
        return bad(SHMQ_RING_E_PROPS_LEN, "properties length %u in an entry of %u", h.props_len,
                   h.total_len);
    }
    end += h.body_len;
    if (end > h.total_len) {
        return bad(SHMQ_RING_E_BODY_LEN, "body length %u in an entry of %u", h.body_len,
                   h.total_len);
    }
    if (align8(end) != h.total_len) {
        return bad(SHMQ_RING_E_LEN_MISMATCH, "total length %u, parts end at %llu", h.total_len,
                   (unsigned long long)end);
    }
    out->topic = (const char *)buf + SHMQ_RING_HDR_SIZE;
    out->topic_len = h.topic_len;
    out->props = out->topic + h.topic_len;
    out->props_len = h.props_len;
    out->body = (const uint8_t *)out->props + h.props_len;
    out->body_len = h.body_len;
    int rc = check_parts(out, lim);
    return rc < 0 ? rc : SHMQ_RING_KIND_MSG;
}

int shmq_ring_decode(const uint8_t *buf, size_t len, const shmq_ring_limits_t *lim,
                     shmq_ring_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len < SHMQ_RING_PAD_SIZE) {
        return bad(SHMQ_RING_E_SHORT, "%zu bytes", len);
    }
    int kind = decode_prefix(buf);
    if (kind < 0) {
        return kind;
    }
    out->kind = (uint16_t)kind;
    if (kind == SHMQ_RING_KIND_PAD) {
        return SHMQ_RING_KIND_PAD;
    }
    if (len < SHMQ_RING_HDR_SIZE) {
        return bad(SHMQ_RING_E_PAST_TAIL, "%zu bytes hold no whole header", len);
    }
    uint32_t total = get32(buf + 8);
    if (total < SHMQ_RING_HDR_SIZE || total % SHMQ_RING_ALIGN != 0) {
        return bad(SHMQ_RING_E_LENGTH, "total length %u", total);
    }
    if (total > len) {
        return bad(SHMQ_RING_E_PAST_TAIL, "total length %u, %zu bytes available", total, len);
    }
    return decode_msg(buf, lim, out);
}

/* shmq_ring_peek(), inlined into it and into shmq_ring_take_unit(). */
static inline __attribute__((always_inline)) int ring_peek(const uint8_t *data, uint64_t size,
                                                           uint64_t head, uint64_t tail,
                                                           const shmq_ring_limits_t *lim,
                                                           uint8_t *buf, size_t cap,
                                                           shmq_ring_msg_t *out, uint64_t *advance)
{
    /* What a caller reads of a refused entry (shmq_ring_decode() fills the rest). */
    out->kind = 0;
    out->hdr_ok = false;
    *advance = 0;
    if (tail == head) {
        return 0;
    }
    uint64_t avail = tail - head;
    if (avail > size) {
        return bad(SHMQ_RING_E_PAST_TAIL,
                   "published region of %llu bytes (head %llu, tail %llu) "
                   "in a ring of %llu",
                   (unsigned long long)avail, (unsigned long long)head, (unsigned long long)tail,
                   (unsigned long long)size);
    }
    uint64_t off = head & (size - 1);
    uint64_t contig = size - off < avail ? size - off : avail;
    /* Each shared byte is read once, into buf; every check below uses buf.  A whole header's
     * bytes when they are published before the wrap (a PAD's past its first 8 are not looked
     * at), else the 8 bytes every entry has. */
    bool whole = contig >= SHMQ_RING_HDR_SIZE && cap >= SHMQ_RING_HDR_SIZE;
    if (whole) {
        memcpy(buf, data + off, SHMQ_RING_HDR_SIZE);
    } else if (contig < SHMQ_RING_PAD_SIZE || cap < SHMQ_RING_PAD_SIZE) {
        return bad(SHMQ_RING_E_SHORT, "%llu bytes at ring offset %llu", (unsigned long long)contig,
                   (unsigned long long)off);
    } else {
        memcpy(buf, data + off, SHMQ_RING_PAD_SIZE);
    }
    int kind = decode_prefix(buf);
    if (kind < 0) {
        return kind;
    }
    if (kind == SHMQ_RING_KIND_PAD) {
        if (avail < size - off) {
            return bad(SHMQ_RING_E_PAST_TAIL,
                       "PAD at ring offset %llu needs %llu bytes, %llu "
                       "published",
                       (unsigned long long)off, (unsigned long long)(size - off),
                       (unsigned long long)avail);
        }
        memset(out, 0, sizeof(*out));
        out->kind = SHMQ_RING_KIND_PAD;
        *advance = size - off;
        return SHMQ_RING_KIND_PAD;
    }
    if (!whole) {
        return bad(SHMQ_RING_E_PAST_TAIL, "header at ring offset %llu: %llu bytes available",
                   (unsigned long long)off, (unsigned long long)contig);
    }
    uint32_t total = get32(buf + 8);
    if (total < SHMQ_RING_HDR_SIZE || total % SHMQ_RING_ALIGN != 0) {
        return bad(SHMQ_RING_E_LENGTH, "total length %u at ring offset %llu", total,
                   (unsigned long long)off);
    }
    if (total > contig || total > cap) {
        return bad(SHMQ_RING_E_PAST_TAIL,
                   "total length %u at ring offset %llu, %llu bytes "
                   "published before the wrap",
                   total, (unsigned long long)off, (unsigned long long)contig);
    }
    uint64_t copy = total - SHMQ_RING_HDR_SIZE;
    if (lim != NULL && lim->body_in_ring) {
        /* Topic and properties only (lengths from our copy of the header, bounded by the
         * entry): decode checks them there; the body stays in the ring. */
        uint64_t parts = (uint64_t)get32(buf + 44) + get32(buf + 88);
        copy = parts < copy ? parts : copy;
    }
    memcpy(buf + SHMQ_RING_HDR_SIZE, data + off + SHMQ_RING_HDR_SIZE, copy);
    /* Prefix and total length are checked above: decode the rest once.  A decoded entry has
     * every field set; a refused one reads empty but for its header (no memset of the whole
     * entry, and nothing cleared first that the decode then sets). */
    int rc = decode_msg(buf, lim, out);
    if (rc < 0) {
        out->topic = out->props = out->uniq_key = NULL;
        out->body = NULL;
        out->topic_len = out->props_len = out->body_len = out->uniq_key_len = 0;
        out->props_scanned = out->sched = out->planned = false;
    } else if (lim != NULL && lim->body_in_ring) {
        out->body = data + off + ((const uint8_t *)out->body - buf);
    }
    if (rc > 0 || !shmq_ring_error_fatal(rc)) {
        *advance = total;
    }
    return rc;
}

int shmq_ring_peek(const uint8_t *data, uint64_t size, uint64_t head, uint64_t tail,
                   const shmq_ring_limits_t *lim, uint8_t *buf, size_t cap, shmq_ring_msg_t *out,
                   uint64_t *advance)
{
    return ring_peek(data, size, head, tail, lim, buf, cap, out, advance);
}

/* Entry k of the batch begun by m0: same request, same destination. */
static bool same_batch(const shmq_ring_msg_t *m0, const shmq_ring_msg_t *mk, size_t k, size_t n)
{
    return mk->batch_index == k && mk->batch_count == n && mk->slot == m0->slot &&
           mk->req_id == m0->req_id && mk->flags == m0->flags && mk->queue_id == m0->queue_id &&
           mk->sysflag == m0->sysflag && mk->topic_len == m0->topic_len &&
           memcmp(mk->topic, m0->topic, m0->topic_len) == 0;
}

int shmq_ring_take_unit(const uint8_t *data, uint64_t size, uint64_t pos, uint64_t tail,
                        const shmq_ring_limits_t *lim, uint8_t *buf, size_t cap,
                        shmq_ring_msg_t *msgs, size_t max_msgs, size_t *n, uint64_t *advance)
{
    uint64_t a = 0;
    *n = 0;
    *advance = 0;
    if (max_msgs == 0) {
        return -ENOBUFS;
    }
    int rc = ring_peek(data, size, pos, tail, lim, buf, cap, &msgs[0], &a);
    if (rc <= 0 || rc == SHMQ_RING_KIND_PAD) {
        *advance = a;
        return rc;
    }
    *advance = a;
    if (msgs[0].batch_index != 0) {
        return bad(SHMQ_RING_E_BATCH, "entry %u of a batch without its first", msgs[0].batch_index);
    }
    size_t count = msgs[0].batch_count;
    if (count > max_msgs) {
        *n = count;
        *advance = 0;
        return -ENOBUFS;
    }
    size_t used = msgs[0].total_len;
    uint64_t cur = pos + a;
    for (size_t k = 1; k < count; k++) {
        shmq_ring_msg_t *mk = &msgs[k];
        rc = shmq_ring_peek(data, size, cur, tail, lim, buf + used, cap - used, mk, &a);
        if (rc < 0 && shmq_ring_error_fatal(rc)) {
            *advance = 0;
            return rc;
        }
        if (rc < 0) {
            *advance = cur + a - pos; /* the bad entry belongs to the batch */
            return rc;
        }
        if (rc != SHMQ_RING_KIND_MSG || !same_batch(&msgs[0], mk, k, count)) {
            *advance = cur - pos; /* what follows starts another unit */
            return bad(SHMQ_RING_E_BATCH, "batch of %zu broken at entry %zu", count, k);
        }
        used += mk->total_len;
        cur += a;
    }
    *n = count;
    *advance = cur - pos;
    return SHMQ_RING_KIND_MSG;
}

/* ---- producer cursor --------------------------------------------------------------- */

void shmq_ring_prod_init(shmq_ring_prod_t *rp, uint8_t *data, uint64_t size, _Atomic uint64_t *head,
                         _Atomic uint64_t *tail)
{
    rp->data = data;
    rp->size = size;
    rp->head = head;
    rp->tail = tail;
    /* Relaxed: our own counter, nobody else writes it. */
    rp->reserved = atomic_load_explicit(tail, memory_order_relaxed);
}

/* Free bytes, or 0 when the writer's head is not within the ring behind us. */
static uint64_t ring_free(const shmq_ring_prod_t *rp)
{
    /* Acquire: the writer copied the bytes below head out before publishing it. */
    uint64_t head = atomic_load_explicit(rp->head, memory_order_acquire);
    uint64_t used = rp->reserved - head;
    return used > rp->size ? 0 : rp->size - used;
}

bool shmq_ring_has_space(const shmq_ring_prod_t *rp, uint64_t len)
{
    uint64_t off = rp->reserved & (rp->size - 1);
    uint64_t pad = rp->size - off < len ? rp->size - off : 0;
    return len <= rp->size && pad + len <= ring_free(rp);
}

int shmq_ring_reserve_slow(shmq_ring_prod_t *rp, uint64_t len, uint8_t **dst)
{
    if (len == 0 || len % SHMQ_RING_ALIGN != 0 || len > rp->size) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "ring entry of %llu bytes, ring of %llu",
                              (unsigned long long)len, (unsigned long long)rp->size);
    }
    uint64_t free_bytes = ring_free(rp);
    uint64_t off = rp->reserved & (rp->size - 1);
    if (rp->size - off < len) {
        uint64_t pad = rp->size - off;
        if (pad > free_bytes) {
            return -EAGAIN;
        }
        /* Publish the PAD on its own: the entry may only fit once the writer has
         * consumed it (an entry bigger than the ring's free half, say). */
        shmq_ring_write_pad(rp->data + off);
        rp->reserved += pad;
        free_bytes -= pad;
        shmq_ring_publish(rp);
        off = 0;
    }
    if (len > free_bytes) {
        return -EAGAIN;
    }
    *dst = rp->data + off;
    rp->reserved += len;
    return 0;
}

void shmq_ring_publish(shmq_ring_prod_t *rp)
{
    /* Release: the entries' bytes are written before the writer can see the tail. */
    atomic_store_explicit(rp->tail, rp->reserved, memory_order_release);
}

void shmq_ring_cancel(shmq_ring_prod_t *rp)
{
    rp->reserved = atomic_load_explicit(rp->tail, memory_order_relaxed);
}

bool shmq_ring_drained(const shmq_ring_prod_t *rp)
{
    return atomic_load_explicit(rp->head, memory_order_acquire) ==
           atomic_load_explicit(rp->tail, memory_order_relaxed);
}
