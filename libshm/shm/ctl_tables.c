/*
 * The control block's tables (see ctl.h): topics (seqlocked entries changed
 * under the topic lock), queues (open addressing, entries become ACTIVE
 * once and are never removed), and consumer group offsets in the consumer
 * area; the OFD locks on bytes of <root>/lock that serialise their writers;
 * and their persistence to config/topics.json and config/consumerOffset.json
 * (the master's load at start checks each offset against its queue and
 * reports damage instead of refusing the start: json_meta.h).
 *
 * Everything read from the shared tables is untrusted (another process, maybe
 * buggy, writes them): lengths are bounded and names NUL-terminated before
 * use.  A writer killed in the middle of a topic change leaves an odd
 * sequence number behind; the next holder of the topic lock repairs it.
 */
#include "shm/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

#define LOCK_BYTE_TOPICS       2
#define LOCK_BYTE_OFFSETS      3
#define LOCK_BYTE_QUEUES       4
#define LOCK_BYTE_OFFSETS_FILE 5    /* config/consumerOffset.json: one saver at a time */
#define TABLE_LOCK_TIMEOUT     5000 /* ms: inserts hold their lock for microseconds */
#define SEQLOCK_SPINS          100
#define SEQLOCK_WAIT_MS        100 /* a writer stuck mid-change this long has died */

/* ---- locks on bytes of <root>/lock ------------------------------------------------ */

static int lock_path(const shmq_ctl_t *ctl, char *path, size_t len)
{
    int n = snprintf(path, len, "%s/lock", ctl->root);
    if (n < 0 || (size_t)n >= len) {
        return shmq_error_set(-ENAMETOOLONG, "store root %s: path too long", ctl->root);
    }
    return 0;
}

int shmq_ctl_lock_file(shmq_ctl_t *ctl)
{
    char path[PATH_MAX];
    int fd = __atomic_load_n(&ctl->lock_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0) {
        return fd;
    }
    int rc = lock_path(ctl, path, sizeof(path));
    if (rc < 0) {
        return rc;
    }
    /* No link followed, no FIFO waited on: the lock is a store file (store_files.h). */
    fd = shmq_store_file_open(path, O_RDWR, 0);
    if (fd < 0) {
        return fd == -ENOENT ? shmq_error_set(fd, "open %s: %s", path, strerror(ENOENT)) : fd;
    }
    int expected = -1;
    /* Two threads racing here: one keeps its descriptor, the other closes its own. */
    if (!__atomic_compare_exchange_n(&ctl->lock_fd, &expected, fd, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        close(fd);
        return expected;
    }
    return fd;
}

/*
 * Take an OFD write lock on one byte of <root>/lock through a descriptor of
 * its own (so that threads of one process exclude each other too), polling
 * every millisecond for at most timeout_ms.  Returns the fd holding the lock;
 * closing it releases the lock.
 */
static int lock_byte(const shmq_ctl_t *ctl, off_t byte, int timeout_ms, const char *what)
{
    char path[PATH_MAX];
    int rc = lock_path(ctl, path, sizeof(path));
    if (rc < 0) {
        return rc;
    }
    int fd = shmq_store_file_open(path, O_RDWR, 0);
    if (fd < 0) {
        return fd == -ENOENT ? shmq_error_set(fd, "open %s: %s", path, strerror(ENOENT)) : fd;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    int64_t deadline = shmq_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
            return fd;
        }
        rc = -errno;
        if (rc != -EAGAIN && rc != -EACCES && rc != -EINTR) {
            close(fd);
            return shmq_error_set(rc, "lock byte %lld of %s: %s", (long long)byte, path,
                                  strerror(-rc));
        }
        if (shmq_mono_ms() >= deadline) {
            close(fd);
            return shmq_error_set(-ETIMEDOUT, "%s lock (byte %lld of %s) busy for %d ms", what,
                                  (long long)byte, path, timeout_ms);
        }
        struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ms, NULL);
    }
}

/* ---- topics -------------------------------------------------------------------- */

static uint32_t topic_home(const char *name, size_t len)
{
    return (uint32_t)shmq_fnv1a64(SHMQ_FNV_BASIS, name, len) & (SHMQ_CTL_MAX_TOPICS - 1);
}

/*
 * A seqlock reader after a round that found the entry mid-change: spin SEQLOCK_SPINS rounds,
 * then yield, for SEQLOCK_WAIT_MS at most.  False: give up (its writer died mid-change).
 */
static bool seq_read_wait(int round, int64_t *give_up)
{
    if (round < SEQLOCK_SPINS) {
        shmq_cpu_relax();
        return true;
    }
    int64_t now = shmq_mono_ms();
    if (*give_up == 0) {
        *give_up = now + SEQLOCK_WAIT_MS;
    } else if (now >= *give_up) {
        return false;
    }
    sched_yield();
    return true;
}

/* Seqlock write side (the caller is the only writer); returns the odd value to end with. */
static uint32_t seq_write_begin(_Atomic uint32_t *seq)
{
    uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
    /* odd: a writer killed mid-change left it odd; +2 keeps it odd while this one writes */
    uint32_t odd = (s & 1) ? s + 2 : s + 1;
    atomic_store_explicit(seq, odd, memory_order_relaxed);
    /* Release fence: the odd seq is visible before any field changes. */
    atomic_thread_fence(memory_order_release);
    return odd;
}

static void seq_write_end(_Atomic uint32_t *seq, uint32_t odd)
{
    /* Release: the fields are complete before readers see an even seq. */
    atomic_store_explicit(seq, odd + 1, memory_order_release);
}

/*
 * Consistent copy of a topic entry (seqlock read side).  -EAGAIN if the
 * entry stays mid-change for SEQLOCK_WAIT_MS (its writer died; the next
 * holder of the topic lock repairs it).
 */
static int topic_snapshot(const shmq_ctl_topic_t *e, shmq_ctl_topic_t *out)
{
    int64_t give_up = 0;
    for (int round = 0;; round++) {
        /* Acquire: the fields read below are not older than this seq. */
        uint32_t s1 = atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire);
        if ((s1 & 1) == 0) {
            memcpy(out, e, sizeof(*out));
            /* Acquire fence: the copy completes before seq is read again. */
            atomic_thread_fence(memory_order_acquire);
            uint32_t s2 = atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_relaxed);
            if (s1 == s2) {
                out->name[SHMQ_TOPIC_MAX_ANY] = '\0';
                return 0;
            }
        }
        if (!seq_read_wait(round, &give_up)) {
            return shmq_error_set(-EAGAIN, "a topic table entry stays mid-change (%d ms)",
                                  SEQLOCK_WAIT_MS);
        }
    }
}

static bool topic_matches(const shmq_ctl_topic_t *t, const char *name, size_t len)
{
    return t->name[len] == '\0' && memcmp(t->name, name, len) == 0;
}

int shmq_ctl_topic_get(const shmq_ctl_t *ctl, const char *name, size_t len, shmq_ctl_topic_t *out)
{
    return shmq_ctl_topic_get_entry(ctl, name, len, out, NULL);
}

int shmq_ctl_topic_get_entry(const shmq_ctl_t *ctl, const char *name, size_t len,
                             shmq_ctl_topic_t *out, const shmq_ctl_topic_t **entry)
{
    shmq_ctl_topic_t snap;
    if (name == NULL || len == 0 || len > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "no topic of length %zu", len);
    }
    uint32_t home = topic_home(name, len);
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        uint32_t at = (home + i) & (SHMQ_CTL_MAX_TOPICS - 1);
        int rc = topic_snapshot(&ctl->blk->topics[at], &snap);
        if (rc < 0) {
            return rc;
        }
        if (snap.state == SHMQ_ENTRY_FREE) {
            break; /* end of the probe chain */
        }
        if (snap.state == SHMQ_ENTRY_ACTIVE && topic_matches(&snap, name, len)) {
            *out = snap;
            if (entry != NULL) {
                *entry = &ctl->blk->topics[(home + i) & (SHMQ_CTL_MAX_TOPICS - 1)];
            }
            return 0;
        }
    }
    return shmq_error_set(SHMQ_E_NOT_FOUND, "topic %.*s not found", (int)len, name);
}

int shmq_ctl_topic_foreach(const shmq_ctl_t *ctl, int (*fn)(const shmq_ctl_topic_t *t, void *arg),
                           void *arg)
{
    shmq_ctl_topic_t snap;
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        int rc = topic_snapshot(&ctl->blk->topics[i], &snap);
        if (rc < 0) {
            return rc;
        }
        if (snap.state == SHMQ_ENTRY_ACTIVE && (rc = fn(&snap, arg)) != 0) {
            return rc;
        }
    }
    return 0;
}

int shmq_ctl_topic_at(const shmq_ctl_t *ctl, size_t i, shmq_ctl_topic_t *out)
{
    if (i >= SHMQ_CTL_MAX_TOPICS) {
        return SHMQ_E_NOT_FOUND;
    }
    int rc = topic_snapshot(&ctl->blk->topics[i], out);
    if (rc < 0) {
        return rc;
    }
    if (out->state != SHMQ_ENTRY_ACTIVE) {
        return SHMQ_E_NOT_FOUND;
    }
    out->name[sizeof(out->name) - 1] = '\0';
    return 0;
}

/* A writer killed mid-change left odd sequence numbers: make them even again. */
static void topic_repair(shmq_ctl_t *ctl)
{
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        shmq_ctl_topic_t *e = &ctl->blk->topics[i];
        uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
        if (s & 1) {
            /* Release: whatever the dead writer stored is published as is
             * (a half-inserted entry is still FREE: its state is written last). */
            atomic_store_explicit(&e->seq, s + 1, memory_order_release);
        }
    }
}

int shmq_ctl_topic_lock(shmq_ctl_t *ctl, int timeout_ms)
{
    int fd = lock_byte(ctl, LOCK_BYTE_TOPICS, timeout_ms, "topic table");
    if (fd < 0) {
        return fd;
    }
    __atomic_store_n(&ctl->topic_lock_fd, fd, __ATOMIC_RELEASE);
    if (!ctl->readonly) {
        topic_repair(ctl);
    }
    return 0;
}

void shmq_ctl_topic_unlock(shmq_ctl_t *ctl)
{
    int fd = __atomic_exchange_n(&ctl->topic_lock_fd, -1, __ATOMIC_ACQ_REL);
    if (fd >= 0) {
        close(fd); /* the only descriptor of its description: drops the lock */
    }
}

/* Index of name's active entry, or -1; *free_idx gets the first reusable slot or -1. */
static int topic_find_locked(shmq_ctl_t *ctl, const char *name, size_t len, int *free_idx)
{
    uint32_t home = topic_home(name, len);
    *free_idx = -1;
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        uint32_t idx = (home + i) & (SHMQ_CTL_MAX_TOPICS - 1);
        shmq_ctl_topic_t *e = &ctl->blk->topics[idx];
        /* Relaxed: we are the only writer (topic lock). */
        uint32_t st = atomic_load_explicit(&e->state, memory_order_relaxed);
        if (st == SHMQ_ENTRY_ACTIVE) {
            if (topic_matches(e, name, len)) {
                return (int)idx;
            }
        } else if (*free_idx < 0) {
            *free_idx = (int)idx;
        }
        if (st == SHMQ_ENTRY_FREE) {
            break;
        }
    }
    return -1;
}

int shmq_ctl_topic_put(shmq_ctl_t *ctl, const char *name, int32_t read_queue_nums,
                       int32_t write_queue_nums, int32_t perm, bool order)
{
    if (ctl->readonly) {
        return shmq_error_set(-EROFS, "topic table: read-only control block");
    }
    size_t len = name != NULL ? strnlen(name, SHMQ_TOPIC_MAX_ANY + 1) : 0;
    if (len == 0 || len > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic name empty or longer than %d bytes",
                              SHMQ_TOPIC_MAX_ANY);
    }
    int free_idx;
    int idx = topic_find_locked(ctl, name, len, &free_idx);
    bool insert = idx < 0;
    if (insert && shmq_ctl_topic_deleting(ctl, name, len)) {
        return shmq_error_set(-EBUSY,
                              "topic %s is being deleted; create it again once that is done", name);
    }
    if (insert) {
        if (free_idx < 0) {
            return shmq_error_set(SHMQ_E_RANGE, "topic table full (%d topics): cannot add %s",
                                  SHMQ_CTL_MAX_TOPICS, name);
        }
        idx = free_idx;
    }
    shmq_ctl_topic_t *e = &ctl->blk->topics[idx];
    uint32_t odd = seq_write_begin(&e->seq); /* the topic lock: the only writer */
    if (insert) {
        e->incarnation++; /* a new topic of the slot: its counts start again (stats.h) */
        memset(e->name, 0, sizeof(e->name));
        memcpy(e->name, name, len);
    }
    e->read_queue_nums = read_queue_nums;
    e->write_queue_nums = write_queue_nums;
    e->perm = perm;
    e->order = order ? 1 : 0;
    /* Relaxed: published by seq_write_end's release. */
    atomic_store_explicit(&e->state, SHMQ_ENTRY_ACTIVE, memory_order_relaxed);
    seq_write_end(&e->seq, odd);
    return 0;
}

int shmq_ctl_topic_delete(shmq_ctl_t *ctl, const char *name)
{
    if (ctl->readonly) {
        return shmq_error_set(-EROFS, "topic table: read-only control block");
    }
    size_t len = name != NULL ? strnlen(name, SHMQ_TOPIC_MAX_ANY + 1) : 0;
    int free_idx;
    int idx =
        len == 0 || len > SHMQ_TOPIC_MAX_ANY ? -1 : topic_find_locked(ctl, name, len, &free_idx);
    if (idx < 0) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "topic %.255s not found", name ? name : "");
    }
    shmq_ctl_topic_t *e = &ctl->blk->topics[idx];
    uint32_t odd = seq_write_begin(&e->seq); /* the topic lock: the only writer */
    /* DELETED, not FREE: later entries of the probe chain stay reachable. */
    atomic_store_explicit(&e->state, SHMQ_ENTRY_DELETED, memory_order_relaxed);
    seq_write_end(&e->seq, odd);
    return 0;
}

bool shmq_ctl_topic_deleting(const shmq_ctl_t *ctl, const char *name, size_t len)
{
    const shmq_ctl_topic_del_t *d = &ctl->blk->topic_del;
    /* Acquire: the topic name was written before the request it goes with. */
    uint64_t req = atomic_load_explicit((_Atomic uint64_t *)&d->request, memory_order_acquire);
    uint64_t fin = atomic_load_explicit((_Atomic uint64_t *)&d->finished, memory_order_acquire);
    return req != fin && len <= SHMQ_TOPIC_MAX_ANY && d->topic[len] == '\0' &&
           memcmp(d->topic, name, len) == 0;
}

struct topics_save_ctx {
    const shmq_topic_table_t *old;
    shmq_topic_table_t *out;
};

static int topics_save_one(const shmq_ctl_topic_t *t, void *arg)
{
    struct topics_save_ctx *c = arg;
    shmq_topic_config_t tc;
    /* Keep what the table does not hold (attributes, flags) from the file. */
    const shmq_topic_config_t *prev = shmq_topic_table_get(c->old, t->name);
    if (prev != NULL) {
        tc = *prev;
    } else {
        memset(&tc, 0, sizeof(tc));
        snprintf(tc.name, sizeof(tc.name), "%s", t->name);
    }
    tc.read_queue_nums = t->read_queue_nums;
    tc.write_queue_nums = t->write_queue_nums;
    tc.perm = t->perm;
    tc.order = t->order != 0;
    return shmq_topic_table_put(c->out, &tc);
}

int shmq_ctl_topics_save(shmq_ctl_t *ctl)
{
    shmq_topic_table_t old = {0};
    shmq_topic_table_t out = {0};
    /* An unreadable old file only loses the attributes: the table is the truth
     * (quiet: damage was reported when the store started). */
    if (shmq_topics_load_ex(ctl->root, &old, SHMQ_META_QUIET, NULL) < 0) {
        shmq_topic_table_free(&old);
    }
    struct topics_save_ctx c = {.old = &old, .out = &out};
    int rc = shmq_ctl_topic_foreach(ctl, topics_save_one, &c);
    if (rc == 0) {
        out.data_version_counter = old.data_version_counter + 1;
        out.data_version_state = old.data_version_state;
        rc = shmq_topics_save(ctl->root, &out);
    }
    shmq_topic_table_free(&old);
    shmq_topic_table_free(&out);
    return rc;
}

/* ---- queues ----------------------------------------------------------------------- */

static uint32_t queue_home(const char *topic, size_t len, int32_t queue_id)
{
    uint32_t q = (uint32_t)queue_id;
    uint8_t qb[4] = {(uint8_t)q, (uint8_t)(q >> 8), (uint8_t)(q >> 16), (uint8_t)(q >> 24)};
    uint64_t h = shmq_fnv1a64(shmq_fnv1a64(SHMQ_FNV_BASIS, topic, len), qb, sizeof(qb));
    return (uint32_t)(h ^ (h >> 32)) & (SHMQ_CTL_MAX_QUEUES - 1);
}

/* Index of the entry, or -(first free index) - 1, or INT32_MIN when the table is full. */
static int32_t queue_probe(const shmq_ctl_t *ctl, const char *topic, size_t len, int32_t queue_id)
{
    uint32_t home = queue_home(topic, len, queue_id);
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_QUEUES; i++) {
        uint32_t idx = (home + i) & (SHMQ_CTL_MAX_QUEUES - 1);
        shmq_ctl_queue_t *q = &ctl->blk->queues[idx];
        /* Acquire: pairs with the inserter's release; the key fields are complete. */
        uint32_t st = atomic_load_explicit(&q->state, memory_order_acquire);
        if (st == SHMQ_ENTRY_FREE) {
            return -(int32_t)idx - 1;
        }
        if (st == SHMQ_ENTRY_ACTIVE && q->queue_id == queue_id && q->topic_len == len &&
            memcmp(q->topic, topic, len) == 0) {
            return (int32_t)idx;
        }
    }
    return INT32_MIN;
}

bool shmq_ctl_queue_of_topic(const shmq_ctl_queue_t *e, const char *topic, size_t len)
{
    /* Acquire: pairs with the inserter's release; the key fields are complete. */
    return atomic_load_explicit((_Atomic uint32_t *)&e->state, memory_order_acquire) ==
               SHMQ_ENTRY_ACTIVE &&
           e->topic_len == len && memcmp(e->topic, topic, len) == 0;
}

shmq_ctl_queue_t *shmq_ctl_queue_find(const shmq_ctl_t *ctl, const char *topic, size_t len,
                                      int32_t queue_id)
{
    if (topic == NULL || len == 0 || len > SHMQ_TOPIC_MAX_ANY) {
        return NULL;
    }
    int32_t idx = queue_probe(ctl, topic, len, queue_id);
    return idx >= 0 ? &ctl->blk->queues[idx] : NULL;
}

int shmq_ctl_queue_insert(shmq_ctl_t *ctl, const char *topic, size_t len, int32_t queue_id,
                          shmq_ctl_queue_t **out)
{
    if (topic == NULL || len == 0 || len > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "queue table: topic length %zu", len);
    }
    if (queue_id < 0) {
        return shmq_error_set(SHMQ_E_ARG, "queue table: queue id %d", (int)queue_id);
    }
    int32_t idx = queue_probe(ctl, topic, len, queue_id);
    if (idx >= 0) {
        *out = &ctl->blk->queues[idx];
        return 0;
    }
    if (ctl->readonly) {
        return shmq_error_set(-EROFS, "queue table: read-only control block");
    }
    int fd = lock_byte(ctl, LOCK_BYTE_QUEUES, TABLE_LOCK_TIMEOUT, "queue table");
    if (fd < 0) {
        return fd;
    }
    /* Another inserter may have added it while we waited for the lock. */
    idx = queue_probe(ctl, topic, len, queue_id);
    int rc = 0;
    if (idx == INT32_MIN) {
        rc = shmq_error_set(SHMQ_E_RANGE, "queue table full (%d queues): cannot add %.*s/%d",
                            SHMQ_CTL_MAX_QUEUES, (int)len, topic, (int)queue_id);
    } else if (idx < 0) {
        idx = -idx - 1;
        shmq_ctl_queue_t *q = &ctl->blk->queues[idx];
        q->queue_id = queue_id;
        q->topic_len = (uint32_t)len;
        memset(q->topic, 0, sizeof(q->topic));
        memcpy(q->topic, topic, len);
        atomic_store_explicit(&q->next_offset, 0, memory_order_relaxed);
        atomic_store_explicit(&q->max_offset, 0, memory_order_relaxed);
        atomic_store_explicit(&q->min_offset, 0, memory_order_relaxed);
        /* Release: finders that see ACTIVE see the fields above. */
        atomic_store_explicit(&q->state, SHMQ_ENTRY_ACTIVE, memory_order_release);
    }
    close(fd);
    if (rc == 0) {
        *out = &ctl->blk->queues[idx];
    }
    return rc;
}

/* ---- consumer offsets --------------------------------------------------------------- */

static int offset_key_check(const char *group, const char *topic, size_t *glen, size_t *tlen)
{
    *glen = group != NULL ? strnlen(group, SHMQ_GROUP_MAX + 1) : 0;
    *tlen = topic != NULL ? strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1) : 0;
    if (*glen == 0 || *glen > SHMQ_GROUP_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "consumer group name empty or longer than %d bytes",
                              SHMQ_GROUP_MAX);
    }
    if (*tlen == 0 || *tlen > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic name empty or longer than %d bytes",
                              SHMQ_TOPIC_MAX_ANY);
    }
    return 0;
}

static uint32_t offset_home(const char *group, size_t glen, const char *topic, size_t tlen,
                            int32_t queue_id)
{
    uint32_t q = (uint32_t)queue_id;
    uint8_t qb[4] = {(uint8_t)q, (uint8_t)(q >> 8), (uint8_t)(q >> 16), (uint8_t)(q >> 24)};
    uint64_t h =
        shmq_fnv1a64(SHMQ_FNV_BASIS, group, glen + 1); /* with the NUL: "a"+"bc" != "ab"+"c" */
    h = shmq_fnv1a64(shmq_fnv1a64(h, topic, tlen), qb, sizeof(qb));
    return (uint32_t)(h ^ (h >> 32)) & (SHMQ_CTL_MAX_OFFSETS - 1);
}

/* Index of the entry, or -(first free index) - 1, or INT32_MIN when full. */
static int32_t offset_probe(const shmq_ctl_t *ctl, const char *group, size_t glen,
                            const char *topic, size_t tlen, int32_t queue_id)
{
    uint32_t home = offset_home(group, glen, topic, tlen, queue_id);
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
        uint32_t idx = (home + i) & (SHMQ_CTL_MAX_OFFSETS - 1);
        shmq_ctl_offset_t *e = &ctl->cons->offsets[idx];
        /* Acquire: pairs with the inserter's release; the key fields are complete. */
        uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
        if (st == SHMQ_ENTRY_FREE) {
            return -(int32_t)idx - 1;
        }
        /* Compare with the terminating NUL: bounded by our own (checked) lengths. */
        if (st == SHMQ_ENTRY_ACTIVE && e->queue_id == queue_id &&
            memcmp(e->group, group, glen + 1) == 0 && memcmp(e->topic, topic, tlen + 1) == 0) {
            return (int32_t)idx;
        }
    }
    return INT32_MIN;
}

int shmq_ctl_offset_get(const shmq_ctl_t *ctl, const char *group, const char *topic,
                        int32_t queue_id, int64_t *offset)
{
    size_t glen, tlen;
    int rc = offset_key_check(group, topic, &glen, &tlen);
    if (rc < 0) {
        return rc;
    }
    int32_t idx = offset_probe(ctl, group, glen, topic, tlen, queue_id);
    if (idx < 0) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "no offset committed for %s@%s queue %d", topic,
                              group, (int)queue_id);
    }
    /* Acquire: pairs with the committer's release store. */
    *offset = atomic_load_explicit(&ctl->cons->offsets[idx].offset, memory_order_acquire);
    return 0;
}

static void offsets_mark_dirty(shmq_ctl_t *ctl)
{
    /* Release: a saver that sees dirty (and clears it) sees the new offset. */
    atomic_store_explicit(&ctl->cons->offsets_dirty, 1, memory_order_release);
}

/*
 * Put offset in the entry at p: always, or with forward only when it is
 * ahead of the entry's (a CAS loop, so that a commit racing with it is
 * never undone).  True when the entry changed.
 */
static bool offset_put(_Atomic int64_t *p, int64_t offset, bool forward)
{
    if (!forward) {
        /* Release: pairs with offset_get's acquire. */
        atomic_store_explicit(p, offset, memory_order_release);
        return true;
    }
    int64_t cur = atomic_load_explicit(p, memory_order_acquire);
    while (cur < offset) {
        /* Release as above; acquire on failure: cur is the newer value to compare with. */
        if (atomic_compare_exchange_weak_explicit(p, &cur, offset, memory_order_release,
                                                  memory_order_acquire)) {
            return true;
        }
    }
    return false;
}

/* Store an offset (forward: only ahead of the entry's) without touching the dirty flag.
 * 1 when the entry changed or was made, 0 when not. */
static int offset_store(shmq_ctl_t *ctl, const char *group, const char *topic, int32_t queue_id,
                        int64_t offset, bool forward)
{
    if (ctl->readonly) {
        return shmq_error_set(-EROFS,
                              "consumer area of %s is read-only here: offsets are committed "
                              "through the master (shmq_commit_offset)",
                              ctl->root);
    }
    size_t glen, tlen;
    int rc = offset_key_check(group, topic, &glen, &tlen);
    if (rc < 0) {
        return rc;
    }
    int32_t idx = offset_probe(ctl, group, glen, topic, tlen, queue_id);
    if (idx >= 0) {
        return offset_put(&ctl->cons->offsets[idx].offset, offset, forward) ? 1 : 0;
    }
    int fd = lock_byte(ctl, LOCK_BYTE_OFFSETS, TABLE_LOCK_TIMEOUT, "consumer offsets");
    if (fd < 0) {
        return fd;
    }
    /* Re-check under the lock: another committer may have inserted it. */
    idx = offset_probe(ctl, group, glen, topic, tlen, queue_id);
    if (idx == INT32_MIN) {
        rc = shmq_error_set(SHMQ_E_RANGE, "consumer offset table full (%d entries): %s@%s/%d",
                            SHMQ_CTL_MAX_OFFSETS, topic, group, (int)queue_id);
    } else if (idx < 0) {
        shmq_ctl_offset_t *e = &ctl->cons->offsets[-idx - 1];
        e->queue_id = queue_id;
        memset(e->group, 0, sizeof(e->group));
        memcpy(e->group, group, glen);
        memset(e->topic, 0, sizeof(e->topic));
        memcpy(e->topic, topic, tlen);
        atomic_store_explicit(&e->offset, offset, memory_order_relaxed);
        /* Release: finders that see ACTIVE see the key and the offset. */
        atomic_store_explicit(&e->state, SHMQ_ENTRY_ACTIVE, memory_order_release);
        rc = 1;
    } else {
        rc = offset_put(&ctl->cons->offsets[idx].offset, offset, forward) ? 1 : 0;
    }
    close(fd);
    return rc;
}

int shmq_ctl_offset_set(shmq_ctl_t *ctl, const char *group, const char *topic, int32_t queue_id,
                        int64_t offset)
{
    int rc = offset_store(ctl, group, topic, queue_id, offset, false);
    if (rc < 0) {
        return rc;
    }
    offsets_mark_dirty(ctl);
    return 0;
}

int shmq_ctl_offset_advance(shmq_ctl_t *ctl, const char *group, const char *topic, int32_t queue_id,
                            int64_t offset)
{
    int rc = offset_store(ctl, group, topic, queue_id, offset, true);
    if (rc > 0) {
        offsets_mark_dirty(ctl);
    }
    return rc;
}

/* Mark DELETED every active offset whose topic (by_group: group) is name[0..len]. */
static int offsets_delete_matching(shmq_ctl_t *ctl, bool by_group, const char *name, size_t len)
{
    /* Under the inserters' lock: no matching entry appears while we look. */
    int fd = lock_byte(ctl, LOCK_BYTE_OFFSETS, TABLE_LOCK_TIMEOUT, "consumer offsets");
    if (fd < 0) {
        return fd;
    }
    int dropped = 0;
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
        shmq_ctl_offset_t *e = &ctl->cons->offsets[i];
        /* Acquire: an ACTIVE entry's key is complete (the inserter's release). */
        if (atomic_load_explicit(&e->state, memory_order_acquire) == SHMQ_ENTRY_ACTIVE &&
            memcmp(by_group ? e->group : e->topic, name, len + 1) == 0) {
            /* DELETED, not FREE: later entries of the probe chain stay reachable. */
            atomic_store_explicit(&e->state, SHMQ_ENTRY_DELETED, memory_order_release);
            dropped++;
        }
    }
    close(fd);
    if (dropped > 0) {
        offsets_mark_dirty(ctl);
    }
    return dropped;
}

int shmq_ctl_offsets_delete_topic(shmq_ctl_t *ctl, const char *topic)
{
    if (ctl->readonly) {
        return shmq_error_set(-EROFS, "consumer area of %s is read-only here", ctl->root);
    }
    size_t tlen = strnlen(topic, SHMQ_TOPIC_MAX_ANY + 1);
    if (tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY) {
        return shmq_error_set(SHMQ_E_TOPIC, "topic name empty or longer than %d bytes",
                              SHMQ_TOPIC_MAX_ANY);
    }
    return offsets_delete_matching(ctl, false, topic, tlen);
}

int shmq_ctl_offsets_delete_group(shmq_ctl_t *ctl, const char *group)
{
    if (ctl->readonly) {
        return shmq_error_set(-EROFS, "consumer area of %s is read-only here", ctl->root);
    }
    size_t glen = strnlen(group, SHMQ_GROUP_MAX + 1);
    if (glen == 0 || glen > SHMQ_GROUP_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "consumer group name empty or longer than %d bytes",
                              SHMQ_GROUP_MAX);
    }
    return offsets_delete_matching(ctl, true, group, glen);
}

void shmq_ctl_offsets_reset_begin(shmq_ctl_t *ctl)
{
    uint32_t r = atomic_load_explicit(&ctl->cons->resets, memory_order_relaxed);
    /* Nothing is published by the odd mark itself; the offset stores that follow are
     * releases and keep it before them.  seq_cst: no reordering to reason about here. */
    atomic_store_explicit(&ctl->cons->resets, (r | 1u) == r ? r + 2 : r | 1u, memory_order_seq_cst);
}

void shmq_ctl_offsets_reset_end(shmq_ctl_t *ctl)
{
    uint32_t r = atomic_load_explicit(&ctl->cons->resets, memory_order_relaxed);
    /* Release: a consumer that sees the even count sees the new offsets. */
    atomic_store_explicit(&ctl->cons->resets, (r | 1u) + 1, memory_order_release);
}

int shmq_ctl_offsets_snapshot(const shmq_ctl_t *ctl, shmq_offset_table_t *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
        const shmq_ctl_offset_t *e = &ctl->cons->offsets[i];
        if (atomic_load_explicit((_Atomic uint32_t *)&e->state, memory_order_acquire) !=
            SHMQ_ENTRY_ACTIVE) {
            continue;
        }
        /* Untrusted: consumers write this area.  Copy, then bound. */
        char group[SHMQ_GROUP_MAX + 1];
        char topic[SHMQ_TOPIC_MAX_ANY + 1];
        memcpy(group, e->group, sizeof(group));
        memcpy(topic, e->topic, sizeof(topic));
        group[SHMQ_GROUP_MAX] = '\0';
        topic[SHMQ_TOPIC_MAX_ANY] = '\0';
        if (group[0] == '\0' || topic[0] == '\0') {
            continue;
        }
        if (t->count == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            shmq_offset_entry_t *n = realloc(t->entries, cap * sizeof(*n));
            if (n == NULL) {
                shmq_offset_table_free(t);
                return -ENOMEM;
            }
            t->entries = n;
            t->cap = cap;
        }
        /* Keys are unique in the area (inserts re-check under the lock): append. */
        shmq_offset_entry_t *o = &t->entries[t->count++];
        memset(o, 0, sizeof(*o));
        snprintf(o->key, sizeof(o->key), "%s@%s", topic, group);
        o->queue_id = e->queue_id;
        o->offset = atomic_load_explicit((_Atomic int64_t *)&e->offset, memory_order_acquire);
    }
    return 0;
}

/*
 * One saver at a time, from its snapshot to its rename (the flusher's rounds,
 * shmqctl's topic and group deletes): two writers of the file would share its
 * temporary name (one removes the other's as stale, and its rename fails), and
 * a snapshot taken before a delete and renamed after it would bring the
 * dropped offsets back.  Under the lock the newest snapshot is the last saved.
 */
static int ctl_offsets_save(shmq_ctl_t *ctl, bool dropped)
{
    int lfd = lock_byte(ctl, LOCK_BYTE_OFFSETS_FILE, TABLE_LOCK_TIMEOUT, "consumer offsets file");
    if (lfd < 0) {
        offsets_mark_dirty(ctl); /* not saved: try again next time */
        return lfd;
    }
    shmq_offset_table_t t;
    /* Clear first (acquire pairs with the committers' release): a commit
     * racing with this save sets it again and is saved next time. */
    atomic_exchange_explicit(&ctl->cons->offsets_dirty, 0, memory_order_acq_rel);
    int rc = shmq_ctl_offsets_snapshot(ctl, &t);
    if (rc == 0) {
        rc = dropped ? shmq_consumer_offsets_save_dropped(ctl->root, &t)
                     : shmq_consumer_offsets_save(ctl->root, &t);
    }
    if (rc < 0) {
        offsets_mark_dirty(ctl); /* not saved: try again next time */
    }
    shmq_offset_table_free(&t);
    close(lfd);
    return rc;
}

int shmq_ctl_offsets_save(shmq_ctl_t *ctl)
{
    return ctl_offsets_save(ctl, false);
}

int shmq_ctl_offsets_save_dropped(shmq_ctl_t *ctl)
{
    return ctl_offsets_save(ctl, true);
}

/* The max offset of a queue as the control block has it (the master fills it from the files). */
static int ctl_queue_max(void *arg, const char *topic, int32_t queue_id, int64_t *max)
{
    const shmq_ctl_t *ctl = arg;
    size_t len = strlen(topic);
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(ctl, topic, len, queue_id);
    if (q == NULL) {
        /* Max 0 if the topic has other queues; a topic without any: nothing to tell. */
        shmq_ctl_topic_t t;
        int32_t n = 0;
        if (shmq_ctl_topic_get(ctl, topic, len, &t) == 0) {
            n = t.read_queue_nums > t.write_queue_nums ? t.read_queue_nums : t.write_queue_nums;
        }
        for (int32_t i = 0; i < n; i++) {
            if (shmq_ctl_queue_find(ctl, topic, len, i) != NULL) {
                return SHMQ_E_NOT_FOUND;
            }
        }
        return -ENOENT;
    }
    /* Relaxed: the master filled the table before this load, in this thread. */
    *max = atomic_load_explicit(&q->max_offset, memory_order_relaxed);
    return 0;
}

int shmq_ctl_offsets_load(shmq_ctl_t *ctl)
{
    shmq_offset_table_t t = {0};
    shmq_meta_report_t rep;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/config/consumerOffset.json", ctl->root);
    int rc = shmq_consumer_offsets_load_ex(ctl->root, &t, ctl_queue_max, ctl, &rep);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < t.count && rc == 0; i++) {
        const shmq_offset_entry_t *o = &t.entries[i];
        char key[sizeof(o->key)], *group;
        if (!shmq_offset_key_split(o, key, &group)) {
            continue;
        }
        rc = offset_store(ctl, group, key, o->queue_id, o->offset, false);
        if (rc > 0) {
            rc = 0;
        } else if (rc == SHMQ_E_RANGE) {
            /* The table is full: more offsets than a store can hold. */
            rc = shmq_error_wrap(rc, "%s: entry \"%.300s@%.120s\"", path, key, group);
        } else if (rc < 0) {
            shmq_meta_warn(SHMQ_META_WARN, "%s: group %.200s, topic %.255s, queue %d: %s; dropped",
                           path, group, key, (int)o->queue_id, shmq_error_detail());
            rep.warnings++;
            rc = 0;
        }
    }
    shmq_offset_table_free(&t);
    if (rc < 0) {
        return rc;
    }
    /* What was loaded is what the file holds, unless something was repaired: then the
     * flusher saves the repaired table at its next round (release: pairs with its acquire). */
    atomic_store_explicit(&ctl->cons->offsets_dirty, rep.warnings > 0 ? 1 : 0,
                          memory_order_release);
    /*
     * subscriptionGroup.json is read by consumers (their retry policy), not by
     * the store; checked here so that its damage shows in the log at start.
     * A refused load leaves every group on the defaults.
     */
    shmq_group_table_t g;
    shmq_error_clear();
    int grc = shmq_groups_load_ex(ctl->root, &g, NULL);
    if (grc < 0) {
        shmq_meta_warn(SHMQ_META_WARN, "%s; consumers use the default group settings",
                       shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(grc));
    } else {
        shmq_group_table_free(&g);
    }
    return 0;
}

/* ---- consumer group members (written by the master: groups.c) ------------------------ */

int shmq_ctl_member_copy(const shmq_ctl_cons_t *cons, int slot, shmq_ctl_member_t *out)
{
    if (slot < 0 || slot >= SHMQ_CTL_MAX_MEMBERS) {
        return shmq_error_set(SHMQ_E_ARG, "member slot %d outside 0..%d", slot,
                              SHMQ_CTL_MAX_MEMBERS - 1);
    }
    const shmq_ctl_member_t *e = &cons->members[slot];
    for (int round = 0; round < SEQLOCK_SPINS * 10; round++) {
        /* Acquire: the fields read below are not older than this seq. */
        uint32_t s1 = atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire);
        if ((s1 & 1) == 0) {
            memcpy(out, e, sizeof(*out));
            /* Acquire fence: the copy completes before seq is read again. */
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_relaxed) == s1) {
                out->group[SHMQ_GROUP_MAX] = '\0';
                out->topic[SHMQ_TOPIC_MAX_ANY] = '\0';
                out->client_id[SHMQ_MEMBER_CLIENT_ID - 1] = '\0';
                out->sub[SHMQ_MEMBER_SUB_MAX] = '\0';
                return out->state == SHMQ_ENTRY_ACTIVE ? 0 : SHMQ_E_NOT_FOUND;
            }
        }
        shmq_cpu_relax();
    }
    return shmq_error_set(-EAGAIN, "member entry %d stays mid-change", slot);
}

/* ---- the set's gateways ---------------------------------------------------------------- */

void shmq_ctl_route_publish(shmq_ctl_t *ctl, const shmq_ctl_route_t *r)
{
    shmq_ctl_controller_t *cs = &ctl->blk->controller;
    uint32_t odd = seq_write_begin(&cs->route_seq);
    memcpy(&cs->route, r, sizeof(*r));
    seq_write_end(&cs->route_seq, odd);
}

int shmq_ctl_route_get(const shmq_ctl_t *ctl, shmq_ctl_route_t *out)
{
    const shmq_ctl_controller_t *cs = &ctl->blk->controller;
    int64_t give_up = 0;
    for (int round = 0;; round++) {
        /* Acquire: the fields read below are not older than this seq. */
        uint32_t s1 =
            atomic_load_explicit((_Atomic uint32_t *)&cs->route_seq, memory_order_acquire);
        if ((s1 & 1) == 0) {
            memcpy(out, &cs->route, sizeof(*out));
            /* Acquire fence: the copy completes before seq is read again. */
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit((_Atomic uint32_t *)&cs->route_seq, memory_order_relaxed) ==
                s1) {
                if (out->count > SHMQ_CTL_ROUTE_MAX) {
                    out->count = SHMQ_CTL_ROUTE_MAX;
                }
                for (uint32_t i = 0; i < out->count; i++) {
                    out->e[i].gateway[SHMQ_CTL_ADDR_MAX - 1] = '\0';
                }
                return 0;
            }
        }
        if (!seq_read_wait(round, &give_up)) {
            return shmq_error_set(-EAGAIN, "the controller route stays mid-change (%d ms)",
                                  SEQLOCK_WAIT_MS);
        }
    }
}
