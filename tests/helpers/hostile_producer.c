/*
 * hostile_producer: a producer that breaks the ring protocol on purpose.
 *
 *   hostile_producer --store DIR [--ok-topic T] [--bad-topic T]
 *
 * It attaches to a running store's control block directly (not through the
 * producer API; read-only, as any client must), registers over
 * <root>/shmq.sock the way a producer does (its ring arrives as a
 * descriptor) and first tries to write every page of the control block and
 * the consumer area (each store must fault; mprotect PROT_WRITE and writes
 * through /proc/self/mem must be refused; opening them O_RDWR is reported,
 * refused to anyone but the store's user and root), then publishes, one
 * case at a time, entries with absurd part lengths,
 * lengths past the tail or the ring, bad magic or kind, oversized topic
 * lengths, bad names, missing UNIQ_KEY, forbidden flags, a published tail
 * beyond the ring, a tail moved back behind the writer's head, and every
 * completion slot and the writer's head copy scribbled.  Each case arms its
 * completion slot first, then:
 *
 *   reject   the writer completes the slot with the expected error and
 *            appends nothing;
 *   fatal    the entry's length cannot be trusted: the writer discards the
 *            published region (head reaches tail) and fails every pending
 *            slot with SHMQ_E_CORRUPT;
 *   noslot   the slot number is out of range: no completion is possible;
 *            the writer skips the entry (head reaches tail).
 *
 * A last case rewrites valid entries after publishing them (lengths and
 * body bytes, in a loop until the completion comes): the writer copies an
 * entry once and checks the copy, so each is either stored whole (its
 * record passes verify later) or rejected, and the writer survives.
 *
 * After every case a valid entry (topic --ok-topic) must be stored (status
 * 0): the writer still serves this ring, and the writer's pid must not
 * change (it did not crash).
 *
 * stdout: "CASE <name> <kind> expected=<code> got=<code> pass|FAIL" per
 * case, "OKKEY <uniq key> <phys offset>" per stored valid entry, and
 * "SUMMARY cases=<n> failed=<n> ok=<n>".  Exit 0 when every case passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/ctl.h"
#include "format/message.h"
#include "shm/reg.h"
#include "shm/ring.h"
#include "shmq/errors.h"

#include "common/helper_util.h"

#define WAIT_MS 10000

static int32_t max_body; /* the store's maxMessageSize */

typedef struct hostile {
    shmq_ctl_t ctl;
    shmq_ctl_block_t *blk;
    int reg_fd;
    shmq_ring_map_t map;
    shmq_ring_shm_t *ring;
    uint32_t ring_idx;
    shmq_ring_prod_t rp;
    int32_t writer_pid;
    uint64_t req_id;
    const char *ok_topic;
    const char *bad_topic;
    int cases;
    int failed;
    int oks;
} hostile_t;

/* How a case is expected to end. */
enum expect { EXP_OK, EXP_REJECT, EXP_FATAL, EXP_NOSLOT };

/* An entry being built: parts, then header patches applied to the encoded bytes. */
typedef struct entry {
    const char *topic;
    uint32_t topic_len;
    char props[40000];
    uint32_t props_len;
    uint8_t *body;
    uint32_t body_len;
    int32_t queue_id;
    uint32_t extra_len; /* bytes reserved beyond the encoded size */
} entry_t;

/* Register as every producer does (shmq_ring_register): the connection stays. */
static int claim(hostile_t *h)
{
    int rc = shmq_ring_register(h->ctl.root, h->blk->hdr.ring_size, &h->reg_fd, &h->map);
    if (rc < 0) {
        return rc;
    }
    h->ring = h->map.r;
    h->ring_idx = h->map.index;
    shmq_ring_prod_init(&h->rp, h->map.data, h->blk->hdr.ring_size, &h->ring->head, &h->ring->tail);
    return 0;
}

/* ---- writes outside our ring -------------------------------------------------------- */

static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
    siglongjmp(fault_jmp, sig);
}

/* Store into the first byte of every page of [p, p + len) and into its last byte; how many
 * stores went through (0: every one faulted). */
static size_t store_every_page(uint8_t *p, size_t len)
{
    struct sigaction sa = {.sa_handler = on_fault}, old_segv, old_bus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    /* volatile: kept across the longjmp out of a faulting store. */
    volatile size_t through = 0;
    for (volatile size_t off = 0; off <= len; off += 4096) {
        volatile uint8_t *b = p + (off < len ? off : len - 1);
        if (sigsetjmp(fault_jmp, 1) == 0) {
            *b = (uint8_t)(*b ^ 0xff);
            through = through + 1;
        }
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return through;
}

/* One object shared with the store: every way to write it; true when none went through. */
static bool shared_refused(const char *what, const char *name, void *map, size_t len)
{
    bool refused = true;
    int fd = shm_open(name, O_RDWR, 0);
    if (fd >= 0) {
        struct stat st;
        bool own = fstat(fd, &st) == 0 && (st.st_uid == geteuid() || geteuid() == 0);
        printf("# %s: shm_open O_RDWR allowed (%s)\n", what,
               own ? "the store's own user or root: not protected" : "ANOTHER USER");
        refused = own;
        close(fd);
    } else {
        printf("# %s: shm_open O_RDWR refused: %s\n", what, strerror(errno));
    }
    if (mprotect(map, len, PROT_READ | PROT_WRITE) == 0) {
        printf("# %s: mprotect PROT_WRITE allowed\n", what);
        refused = false;
    }
    size_t through = store_every_page(map, len);
    printf("# %s: %zu of %zu page stores went through\n", what, through, len / 4096 + 1);
    refused = refused && through == 0;
    int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (mem >= 0) {
        uint8_t b = 1;
        if (pwrite(mem, &b, 1, (off_t)(uintptr_t)map) == 1) {
            printf("# %s: /proc/self/mem write went through\n", what);
            refused = false;
        }
        close(mem);
    }
    return refused;
}

static void entry_init(hostile_t *h, entry_t *e, const char *topic, size_t body_len)
{
    static uint8_t body[70000];
    char uniq[SHMQ_UNIQ_KEY_MAX];
    size_t len = 0;

    memset(body, 'b', sizeof(body));
    e->topic = topic;
    e->topic_len = (uint32_t)strlen(topic);
    e->body = body;
    e->body_len = (uint32_t)body_len;
    e->queue_id = 0;
    e->extra_len = 0;
    shmq_uniq_key_generate(uniq);
    shmq_props_append(e->props, sizeof(e->props), &len, SHMQ_PROP_UNIQ_KEY, uniq, strlen(uniq));
    e->props_len = (uint32_t)len;
    (void)h;
}

/* Reserve ring space (waiting for the writer up to WAIT_MS), encode e, return the entry. */
static uint8_t *entry_place(hostile_t *h, const entry_t *e, uint32_t slot, uint64_t *total)
{
    shmq_ring_msg_t m;
    uint8_t *dst = NULL;
    memset(&m, 0, sizeof(m));
    m.kind = SHMQ_RING_KIND_MSG;
    m.batch_count = 1;
    m.slot = slot;
    m.req_id = ++h->req_id;
    m.queue_id = e->queue_id;
    m.born_ts = shmq_now_ms();
    shmq_local_host(&m.born_host, 0);
    m.topic = e->topic;
    m.topic_len = e->topic_len;
    m.props = e->props;
    m.props_len = e->props_len;
    m.body = e->body;
    m.body_len = e->body_len;
    uint64_t size = shmq_ring_entry_size(e->topic_len, e->props_len, e->body_len) + e->extra_len;
    int64_t start = shmq_mono_ms();
    int rc;
    while ((rc = shmq_ring_reserve(&h->rp, size, &dst)) == -EAGAIN &&
           shmq_mono_ms() - start < WAIT_MS) {
        helper_sleep_ms(1);
    }
    if (rc < 0) {
        return NULL;
    }
    if (shmq_ring_encode(dst, size, &m) < 0) {
        shmq_ring_cancel(&h->rp);
        return NULL;
    }
    *total = size;
    return dst;
}

static void arm(hostile_t *h, uint32_t slot)
{
    shmq_ring_slot_t *s = &h->ring->slots[slot];
    s->req_id = h->req_id;
    atomic_store_explicit(&s->state, SHMQ_SLOT_PENDING, memory_order_release);
}

static void publish(hostile_t *h)
{
    shmq_ring_publish(&h->rp);
    shmq_ctl_wake(&h->ctl.wake->writer_wake);
}

/* Wait for slot DONE; its status, or 1 on timeout. */
static int wait_slot(hostile_t *h, uint32_t slot, int64_t *phys)
{
    shmq_ring_slot_t *s = &h->ring->slots[slot];
    int64_t start = shmq_mono_ms();
    while (atomic_load_explicit(&s->state, memory_order_acquire) != SHMQ_SLOT_DONE) {
        if (shmq_mono_ms() - start > WAIT_MS) {
            return 1;
        }
        helper_sleep_ms(1);
    }
    int status = s->status;
    if (phys) {
        *phys = s->phys_offset;
    }
    atomic_store_explicit(&s->state, SHMQ_SLOT_FREE, memory_order_relaxed);
    return status;
}

/* Wait until the writer consumed everything published; 0 or 1 on timeout. */
static int wait_drained(hostile_t *h)
{
    int64_t start = shmq_mono_ms();
    while (atomic_load(&h->ring->head) != atomic_load(&h->ring->tail)) {
        if (shmq_mono_ms() - start > WAIT_MS) {
            return 1;
        }
        helper_sleep_ms(1);
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* little-endian host (x86-64, aarch64) */
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* The valid entry after each case: stored with status 0. */
static bool control(hostile_t *h)
{
    entry_t *e = malloc(sizeof(*e));
    uint64_t total;
    int64_t phys = -1;
    bool ok = false;
    if (!e) {
        return false;
    }
    entry_init(h, e, h->ok_topic, 64);
    uint8_t *dst = entry_place(h, e, 0, &total);
    if (dst) {
        arm(h, 0);
        publish(h);
        int st = wait_slot(h, 0, &phys);
        if (st == 0 && phys >= 0) {
            size_t ulen;
            const char *u = shmq_props_get(e->props, e->props_len, SHMQ_PROP_UNIQ_KEY, &ulen);
            printf("OKKEY %.*s %lld\n", (int)ulen, u, (long long)phys);
            h->oks++;
            ok = true;
        } else {
            printf("# control entry: status %d (%s)\n", st, shmq_strerror(st));
        }
    }
    free(e);
    return ok;
}

typedef void (*mutate_fn)(entry_t *e);
typedef void (*patch_fn)(uint8_t *hdr, uint64_t total);

static void run_case(hostile_t *h, const char *name, enum expect exp, int expected, mutate_fn mut,
                     patch_fn patch, uint32_t slot_field)
{
    entry_t *e = malloc(sizeof(*e));
    uint64_t total = 0;
    int got = 1;
    bool pass = false;
    uint32_t slot = 1 + (uint32_t)(h->cases % (SHMQ_RING_SLOTS - 1));

    h->cases++;
    if (!e) {
        exit(1);
    }
    entry_init(h, e, h->bad_topic, 100);
    if (mut) {
        mut(e);
    }
    uint8_t *dst = entry_place(h, e, slot_field ? slot_field : slot, &total);
    if (!dst) {
        printf("CASE %s cannot place the entry FAIL\n", name);
        h->failed++;
        free(e);
        return;
    }
    if (patch) {
        patch(dst, total);
    }
    arm(h, slot);
    publish(h);
    if (exp == EXP_NOSLOT) {
        got = wait_drained(h);
        pass = got == 0;
        /* Our armed slot was never named: it must still be pending. */
        pass = pass && atomic_load(&h->ring->slots[slot].state) == SHMQ_SLOT_PENDING;
        atomic_store(&h->ring->slots[slot].state, SHMQ_SLOT_FREE);
    } else {
        got = wait_slot(h, slot, NULL);
        pass = got == expected;
        if (exp == EXP_FATAL) {
            pass = pass && wait_drained(h) == 0;
        }
    }
    free(e);
    if (exp == EXP_FATAL) {
        /* The writer skipped to the tail: continue from there. */
        shmq_ring_prod_init(&h->rp, h->rp.data, h->rp.size, h->rp.head, h->rp.tail);
    }
    bool served = control(h);
    int32_t wpid = atomic_load(&h->blk->workers[SHMQ_ROLE_WRITER].pid);
    printf("CASE %s %s expected=%d got=%d%s%s %s\n", name,
           exp == EXP_REJECT  ? "reject"
           : exp == EXP_FATAL ? "fatal"
                              : "noslot",
           expected, got, served ? "" : " (then a valid entry was not served)",
           wpid == h->writer_pid ? "" : " (the writer restarted)",
           pass && served && wpid == h->writer_pid ? "pass" : "FAIL");
    if (!(pass && served && wpid == h->writer_pid)) {
        h->failed++;
    }
}

/* ---- the cases ------------------------------------------------------------------- */

#define HDR_KIND      4
#define HDR_FLAGS     6
#define HDR_TOTAL     8
#define HDR_BATCH_CNT 14
#define HDR_TOPIC_LEN 44
#define HDR_BORN_V6   84
#define HDR_RESERVED  85
#define HDR_PROPS_LEN 88
#define HDR_BODY_LEN  92
#define HDR_SYSFLAG   36

static void p_topic_len_300(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_TOPIC_LEN, 300);
}
static void p_body_len_absurd(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_BODY_LEN, 0xFFFFFFF0u);
}
static void p_props_len_absurd(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_PROPS_LEN, 0x7FFFFFFFu);
}
static void p_flags(uint8_t *d, uint64_t t)
{
    (void)t;
    put16(d + HDR_FLAGS, 0x8000);
}
static void p_reserved(uint8_t *d, uint64_t t)
{
    (void)t;
    d[HDR_RESERVED + 1] = 0x5a;
}
static void p_batch0(uint8_t *d, uint64_t t)
{
    (void)t;
    put16(d + HDR_BATCH_CNT, 0);
}
static void p_v6(uint8_t *d, uint64_t t)
{
    (void)t;
    d[HDR_BORN_V6] = 7;
}
static void p_sysflag(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_SYSFLAG, SHMQ_SYSFLAG_INNER_BATCH);
}
static void p_len_mismatch(uint8_t *d, uint64_t t)
{
    put32(d + HDR_TOTAL, (uint32_t)t);
}
static void p_magic(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d, 0xDEADBEEFu);
}
static void p_kind(uint8_t *d, uint64_t t)
{
    (void)t;
    put16(d + HDR_KIND, 9);
}
static void p_past_tail(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_TOTAL, 0x7FFFFFF8u);
}
static void p_unaligned(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_TOTAL, 101);
}
static void p_tiny(uint8_t *d, uint64_t t)
{
    (void)t;
    put32(d + HDR_TOTAL, 8);
}

static void m_extra8(entry_t *e)
{
    e->extra_len = 8;
}
static void m_bad_chars(entry_t *e)
{
    e->topic = "Hostile Bad!";
    e->topic_len = 12;
}
static void m_body_too_big(entry_t *e)
{
    e->body_len = (uint32_t)max_body + 1;
}
static void m_queue_huge(entry_t *e)
{
    e->queue_id = 70000;
}
static void m_no_uniq(entry_t *e)
{
    size_t len = 0;
    shmq_props_append(e->props, sizeof(e->props), &len, "A", "b", 1);
    e->props_len = (uint32_t)len;
}
static void m_crc_prop(entry_t *e)
{
    size_t len = e->props_len;
    shmq_props_append(e->props, sizeof(e->props), &len, SHMQ_PROP_CRC32, "0000000000", 10);
    e->props_len = (uint32_t)len;
}
static void m_nul_prop(entry_t *e)
{
    /* A property whose value holds a 0x00 byte. */
    memcpy(e->props + e->props_len, "X\001a\000b\002", 6);
    e->props_len += 6;
}
static void m_props_too_big(entry_t *e)
{
    /* By hand: shmq_props_append itself refuses to go past the limit. */
    size_t len = e->props_len, end = SHMQ_PROPS_MAX - 8; /* + __CRC32# tail > 32767 */
    memcpy(e->props + len, "BIG\x01", 4);
    memset(e->props + len + 4, 'p', end - len - 5);
    e->props[end - 1] = SHMQ_PROP_SEP;
    e->props_len = (uint32_t)end;
}

/* Entries of a plain run (see main) with the writer's topic, one byte of its name made a
 * character no topic may hold: the first, one in the middle, the last. */
static char bad_topic[3][SHMQ_TOPIC_MAX_ANY + 1];
static void topic_byte(entry_t *e, int which)
{
    char *t = bad_topic[which];
    memcpy(t, e->topic, e->topic_len);
    uint32_t at = which == 0 ? 0 : which == 1 ? e->topic_len / 2 : e->topic_len - 1;
    t[at] = '!';
    e->topic = t;
}
static void m_topic_first(entry_t *e)
{
    topic_byte(e, 0);
}
static void m_topic_mid(entry_t *e)
{
    topic_byte(e, 1);
}
static void m_topic_last(entry_t *e)
{
    topic_byte(e, 2);
}
static void m_uniq_nul(entry_t *e)
{
    /* A 0x00 inside the UNIQ_KEY's value (the first property: its name and 0x01, 9 bytes). */
    e->props[9 + 5] = '\0';
}

/*
 * Publish the entries of muts (NULL: a good one) to the ok topic at once, after a control
 * entry (the writer's topic is then the ok topic: its plain path takes the run), and check
 * each answer against want (0: stored).  Prints the CASE line; -1 when out of memory.
 */
static int plain_run(hostile_t *h, const char *name, const mutate_fn *muts, const int *want,
                     size_t nrun)
{
    entry_t *es[16];
    int stored = 0, rejected = 0, wrong = 0, want_stored = 0, want_rejected = 0;
    h->cases++;
    bool placed = nrun <= 16 && control(h);
    for (size_t k = 0; k < nrun && placed; k++) {
        uint64_t total;
        es[k] = malloc(sizeof(*es[k]));
        if (!es[k]) {
            return -1;
        }
        entry_init(h, es[k], h->ok_topic, 40 + 30 * k);
        if (muts[k]) {
            muts[k](es[k]);
        }
        placed = placed && entry_place(h, es[k], 200 + (uint32_t)k, &total) != NULL;
        arm(h, 200 + (uint32_t)k);
        want_stored += want[k] == 0;
        want_rejected += want[k] != 0;
    }
    publish(h);
    for (size_t k = 0; k < nrun && placed; k++) {
        int64_t phys = -1;
        int st = wait_slot(h, 200 + (uint32_t)k, &phys);
        if (st == 0 && want[k] == 0) {
            size_t ulen;
            const char *u =
                shmq_props_get(es[k]->props, es[k]->props_len, SHMQ_PROP_UNIQ_KEY, &ulen);
            printf("OKKEY %.*s %lld\n", (int)ulen, u, (long long)phys);
            h->oks++;
            stored++;
        } else if (st == want[k] && st < 0) {
            rejected++;
        } else {
            printf("# %s entry %zu: status %d, expected %d\n", name, k, st, want[k]);
            wrong++;
        }
    }
    for (size_t k = 0; k < nrun && placed; k++) {
        free(es[k]);
    }
    bool served = control(h);
    bool all = placed && wrong == 0 && stored == want_stored && rejected == want_rejected && served;
    printf("CASE %s run stored=%d rejected=%d wrong=%d %s\n", name, stored, rejected, wrong,
           all ? "pass" : "FAIL");
    h->failed += all ? 0 : 1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"ok-topic", required_argument, NULL, 'o'},
        {"bad-topic", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    hostile_t h;
    const char *store = NULL;
    int opt, rc;

    memset(&h, 0, sizeof(h));
    h.ok_topic = "HostileOk";
    h.bad_topic = "HostileBad";
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            store = optarg;
            break;
        case 'o':
            h.ok_topic = optarg;
            break;
        case 'b':
            h.bad_topic = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!store) {
        fprintf(stderr, "usage: hostile_producer --store DIR [--ok-topic T] [--bad-topic T]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    h.reg_fd = -1;
    rc = shmq_ctl_attach(store, SHMQ_CTL_RDONLY, &h.ctl);
    if (rc < 0) {
        fprintf(stderr, "hostile_producer: attach: %s: %s\n", shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    h.blk = h.ctl.blk;
    h.writer_pid = atomic_load(&h.blk->workers[SHMQ_ROLE_WRITER].pid);
    max_body = h.blk->hdr.config.max_message_size;
    rc = claim(&h);
    if (rc < 0) {
        fprintf(stderr, "hostile_producer: no ring: %s\n", shmq_error_detail());
        return 1;
    }
    {
        char cname[96];
        snprintf(cname, sizeof(cname), "%s.cons", h.ctl.name);
        h.cases++;
        bool blk_ok = shared_refused("control block", h.ctl.name, h.ctl.blk, h.ctl.blk_size);
        bool cons_ok = shared_refused("consumer area", cname, h.ctl.cons, h.ctl.cons_size);
        bool served = control(&h);
        bool all = blk_ok && cons_ok && served;
        printf("CASE shared-memory-writes refused expected=0 got=%d %s\n", all ? 0 : 1,
               all ? "pass" : "FAIL");
        h.failed += all ? 0 : 1;
    }
    printf("# ring %u of %llu bytes, writer pid %d\n", h.ring_idx,
           (unsigned long long)h.blk->hdr.ring_size, (int)h.writer_pid);
    if (!control(&h)) {
        printf("CASE first-valid-entry FAIL\n");
        h.failed++;
    }

    run_case(&h, "topic-length-300", EXP_REJECT, SHMQ_E_TOPIC, NULL, p_topic_len_300, 0);
    run_case(&h, "body-length-absurd", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_body_len_absurd, 0);
    run_case(&h, "props-length-absurd", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_props_len_absurd, 0);
    run_case(&h, "length-mismatch", EXP_REJECT, SHMQ_E_CORRUPT, m_extra8, p_len_mismatch, 0);
    run_case(&h, "unknown-flags", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_flags, 0);
    run_case(&h, "reserved-bytes", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_reserved, 0);
    run_case(&h, "batch-count-0", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_batch0, 0);
    run_case(&h, "born-host-flag", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_v6, 0);
    run_case(&h, "sysflag-inner-batch", EXP_REJECT, SHMQ_E_CORRUPT, NULL, p_sysflag, 0);
    run_case(&h, "topic-bad-chars", EXP_REJECT, SHMQ_E_TOPIC, m_bad_chars, NULL, 0);
    if (max_body < 70000) { /* the body buffer's size */
        run_case(&h, "body-over-max", EXP_REJECT, SHMQ_E_TOO_BIG, m_body_too_big, NULL, 0);
    }
    run_case(&h, "queue-id-70000", EXP_REJECT, SHMQ_E_RANGE, m_queue_huge, NULL, 0);
    run_case(&h, "no-uniq-key", EXP_REJECT, SHMQ_E_PROPS, m_no_uniq, NULL, 0);
    run_case(&h, "crc-property", EXP_REJECT, SHMQ_E_PROPS, m_crc_prop, NULL, 0);
    run_case(&h, "props-over-limit", EXP_REJECT, SHMQ_E_PROPS, m_props_too_big, NULL, 0);
    run_case(&h, "slot-out-of-range", EXP_NOSLOT, 0, NULL, NULL, 5000);
    run_case(&h, "bad-magic", EXP_FATAL, SHMQ_E_CORRUPT, NULL, p_magic, 0);
    run_case(&h, "bad-kind", EXP_FATAL, SHMQ_E_CORRUPT, NULL, p_kind, 0);
    run_case(&h, "length-past-tail", EXP_FATAL, SHMQ_E_CORRUPT, NULL, p_past_tail, 0);
    run_case(&h, "length-unaligned", EXP_FATAL, SHMQ_E_CORRUPT, NULL, p_unaligned, 0);
    run_case(&h, "length-below-header", EXP_FATAL, SHMQ_E_CORRUPT, NULL, p_tiny, 0);

    /* A published tail beyond the whole ring: the region cannot be trusted. */
    {
        uint32_t slot = 7;
        h.cases++;
        uint64_t head = atomic_load(&h.ring->head);
        h.ring->slots[slot].req_id = ++h.req_id;
        atomic_store_explicit(&h.ring->slots[slot].state, SHMQ_SLOT_PENDING, memory_order_release);
        atomic_store_explicit(&h.ring->tail, head + h.blk->hdr.ring_size + 64,
                              memory_order_release);
        shmq_ctl_wake(&h.ctl.wake->writer_wake);
        int got = wait_slot(&h, slot, NULL);
        bool pass = got == SHMQ_E_CORRUPT && wait_drained(&h) == 0;
        shmq_ring_prod_init(&h.rp, h.rp.data, h.rp.size, h.rp.head, h.rp.tail);
        bool served = control(&h);
        int32_t wpid = atomic_load(&h.blk->workers[SHMQ_ROLE_WRITER].pid);
        bool all = pass && served && wpid == h.writer_pid;
        printf("CASE tail-beyond-ring fatal expected=%d got=%d %s\n", SHMQ_E_CORRUPT, got,
               all ? "pass" : "FAIL");
        h.failed += all ? 0 : 1;
    }

    /* A tail moved back behind the writer's head: ignored (nothing taken, nothing lost). */
    {
        h.cases++;
        uint64_t tail = atomic_load(&h.ring->tail);
        uint64_t table_head = atomic_load(&h.blk->rings[h.ring_idx].head);
        atomic_store_explicit(&h.ring->tail, tail - 4096, memory_order_release);
        shmq_ctl_wake(&h.ctl.wake->writer_wake);
        helper_sleep_ms(300);
        bool unmoved = atomic_load(&h.blk->rings[h.ring_idx].head) == table_head;
        atomic_store_explicit(&h.ring->tail, tail, memory_order_release);
        bool served = control(&h);
        int32_t wpid = atomic_load(&h.blk->workers[SHMQ_ROLE_WRITER].pid);
        bool all = unmoved && served && wpid == h.writer_pid;
        printf("CASE tail-backwards ignored expected=0 got=%d %s\n", unmoved ? 0 : 1,
               all ? "pass" : "FAIL");
        h.failed += all ? 0 : 1;
    }

    /* Every completion slot and the head copy scribbled: the writer trusts neither. */
    {
        h.cases++;
        uint64_t table_head = atomic_load(&h.blk->rings[h.ring_idx].head);
        for (int k = 0; k < SHMQ_RING_SLOTS; k++) {
            shmq_ring_slot_t *sl = &h.ring->slots[k];
            atomic_store(&sl->state, k % 4 == 0 ? 0xdeadbeefu : (uint32_t)(k % 3));
            sl->req_id = ~(uint64_t)k;
            sl->status = -k;
            memset(sl->detail, 'z', sizeof(sl->detail));
        }
        atomic_store(&h.ring->head, table_head + 12345);
        shmq_ctl_wake(&h.ctl.wake->writer_wake);
        helper_sleep_ms(200);
        bool unmoved = atomic_load(&h.blk->rings[h.ring_idx].head) == table_head;
        for (int k = 0; k < SHMQ_RING_SLOTS; k++) {
            atomic_store(&h.ring->slots[k].state, SHMQ_SLOT_FREE);
        }
        atomic_store(&h.ring->head, table_head);
        bool served = control(&h);
        int32_t wpid = atomic_load(&h.blk->workers[SHMQ_ROLE_WRITER].pid);
        bool all = unmoved && served && wpid == h.writer_pid;
        printf("CASE slots-and-head-scribbled ignored expected=0 got=%d %s\n", unmoved ? 0 : 1,
               all ? "pass" : "FAIL");
        h.failed += all ? 0 : 1;
    }

    /* Entries rewritten while the writer may be copying them (double fetch). */
    {
        int stored = 0, rejected = 0, lost = 0;
        h.cases++;
        for (int k = 0; k < 200; k++) {
            entry_t *e = malloc(sizeof(*e));
            uint64_t total;
            if (!e) {
                return 1;
            }
            entry_init(&h, e, h.ok_topic, 200);
            uint8_t *dst = entry_place(&h, e, 3, &total);
            if (!dst) {
                lost++;
                free(e);
                continue;
            }
            arm(&h, 3);
            publish(&h);
            shmq_ring_slot_t *sl = &h.ring->slots[3];
            int64_t start = shmq_mono_ms();
            uint32_t flip = 0;
            while (atomic_load_explicit(&sl->state, memory_order_acquire) != SHMQ_SLOT_DONE &&
                   shmq_mono_ms() - start < WAIT_MS) {
                put32(dst + HDR_BODY_LEN, (flip & 1) ? 0xFFFFFFF0u : e->body_len);
                put32(dst + HDR_TOTAL, (flip & 2) ? 0x7FFFFFF8u : (uint32_t)total);
                dst[total - 1 - (flip % 64)] ^= 0x20;
                flip++;
            }
            /* Put the entry back as it was published, whatever the writer took. */
            put32(dst + HDR_BODY_LEN, e->body_len);
            put32(dst + HDR_TOTAL, (uint32_t)total);
            int64_t phys = -1;
            int st = wait_slot(&h, 3, &phys);
            if (st == 0) {
                size_t ulen;
                const char *u = shmq_props_get(e->props, e->props_len, SHMQ_PROP_UNIQ_KEY, &ulen);
                printf("OKKEY %.*s %lld\n", (int)ulen, u, (long long)phys);
                h.oks++;
                stored++;
            } else if (st < 0) {
                rejected++;
            } else {
                lost++;
            }
            free(e);
            if (atomic_load(&h.ring->head) != atomic_load(&h.ring->tail)) {
                wait_drained(&h); /* a fatal verdict discarded the region: continue at the tail */
            }
            shmq_ring_prod_init(&h.rp, h.rp.data, h.rp.size, h.rp.head, h.rp.tail);
        }
        bool served = control(&h);
        int32_t wpid = atomic_load(&h.blk->workers[SHMQ_ROLE_WRITER].pid);
        bool all = lost == 0 && served && wpid == h.writer_pid;
        printf("CASE rewrite-after-publish race stored=%d rejected=%d unanswered=%d %s\n", stored,
               rejected, lost, all ? "pass" : "FAIL");
        h.failed += all ? 0 : 1;
    }

    /* A run of the writer's plain path (entries to the topic it took last, published at once)
     * broken by bad properties: each bad entry refused with its error, nothing of it stored,
     * and every good one around it stored. */
    {
        const mutate_fn muts[] = {NULL, m_no_uniq, NULL, m_crc_prop, m_nul_prop, NULL, NULL};
        const int want[] = {0, SHMQ_E_PROPS, 0, SHMQ_E_PROPS, SHMQ_E_PROPS, 0, 0};
        if (plain_run(&h, "plain-run", muts, want, sizeof(want) / sizeof(want[0])) < 0) {
            return 1;
        }
    }

    /* The same with topics of the writer's topic's length, one byte of them (the first, a
     * middle and the last: each word the plain path compares) made bad, and a 0x00 inside the
     * UNIQ_KEY's value (the properties' own fast check): each refused, nothing of it stored. */
    {
        const mutate_fn muts[] = {NULL,         m_topic_first, NULL, m_topic_mid,
                                  m_topic_last, m_uniq_nul,    NULL};
        const int want[] = {0, SHMQ_E_TOPIC, 0, SHMQ_E_TOPIC, SHMQ_E_TOPIC, SHMQ_E_PROPS, 0};
        if (plain_run(&h, "plain-run-topic", muts, want, sizeof(want) / sizeof(want[0])) < 0) {
            return 1;
        }
    }

    printf("SUMMARY cases=%d failed=%d ok=%d rejects=%llu\n", h.cases, h.failed, h.oks,
           (unsigned long long)atomic_load(&h.blk->counters.rejects));
    /* Give the ring back, as a closing producer does: hang up. */
    shmq_ring_unmap(&h.map);
    close(h.reg_fd);
    shmq_ctl_detach(&h.ctl);
    return h.failed == 0 ? 0 : 1;
}
