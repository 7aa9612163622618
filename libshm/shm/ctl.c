/*
 * The control block (see ctl.h): naming, creation by the master, attachment
 * by everyone else, the futex-based positions and wake-up words, and the
 * small name tables.  The topic, queue and consumer-offset tables live in
 * ctl_tables.c.
 *
 * Creation order: both objects are created empty (O_EXCL), sized, mapped and
 * filled; the header's magic is stored last with release order so that an
 * attacher that sees the magic sees the whole header; `ready` is stored by
 * shmq_ctl_set_ready() after the master filled positions and tables.  An
 * attacher that finds an object of size 0 or a zero magic is looking at a
 * block being created (-EAGAIN).
 */
#include "shm/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/futex.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "format/store_files.h"
#include "shmq/errors.h"

/* ---- layout checks ---------------------------------------------------------- */

/* Futex words are 32-bit and must be plain (lock-free, unpadded) atomics. */
_Static_assert(sizeof(_Atomic uint32_t) == 4, "futex word is 32 bits");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free (shared memory)");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free (shared memory)");
/* One position or wake word per cache line: writers of different positions never share one. */
_Static_assert(sizeof(shmq_ctl_position_t) == 64, "a position is one cache line");
_Static_assert(sizeof(shmq_ctl_wake_t) == 64, "a wake word is one cache line");
_Static_assert(offsetof(shmq_ctl_block_t, wrote) % 64 == 0, "positions are cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, flushed) % 64 == 0, "positions are cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, dispatched) % 64 == 0, "positions are cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, cq_flushed) % 64 == 0, "positions are cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, cq_mark) % 64 == 0, "the mark has its own lines");
_Static_assert(sizeof(shmq_ctl_cq_mark_t) == 128, "the mark: gen and two slots, two lines");
_Static_assert(offsetof(shmq_ctl_block_t, writer_journal) % 64 == 0, "journal is cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, flusher_wake) % 64 == 0, "wake words are cache aligned");
_Static_assert(offsetof(shmq_ctl_wakes_t, writer_wake) % 64 == 0, "wake words are cache aligned");
_Static_assert(offsetof(shmq_ctl_wakes_t, messages_out) % 64 == 0,
               "consumer counter apart from the wake words");
_Static_assert(offsetof(shmq_ctl_block_t, rings) % 64 == 0, "rings are cache aligned");
_Static_assert(offsetof(shmq_ctl_block_t, gateway) % 64 == 0,
               "the gateway's counters are cache aligned");
/* The writer's head apart from the master's fields of the same ring. */
_Static_assert(offsetof(shmq_ctl_ring_t, head) % 64 == 0, "ring head has its own line");
_Static_assert(sizeof(shmq_ctl_ring_t) % 64 == 0, "rings are whole cache lines");
_Static_assert(offsetof(shmq_ctl_counters_t, messages_out) % 64 == 0,
               "consumer counters apart from the writer's");
_Static_assert((SHMQ_CTL_MAX_QUEUES & (SHMQ_CTL_MAX_QUEUES - 1)) == 0, "queue table size");
_Static_assert((SHMQ_CTL_MAX_TOPICS & (SHMQ_CTL_MAX_TOPICS - 1)) == 0, "topic table size");
_Static_assert((SHMQ_CTL_MAX_OFFSETS & (SHMQ_CTL_MAX_OFFSETS - 1)) == 0, "offset table size");
_Static_assert(sizeof(shmq_ctl_block_t) < UINT32_MAX, "header_size fits 32 bits");
_Static_assert(sizeof(shmq_ctl_cons_t) < UINT32_MAX, "cons size fits 32 bits");
_Static_assert(SHMQ_ROLE_COUNT <= SHMQ_CTL_MAX_WORKERS, "every role has a worker entry");

#define CTL_RING_MIN      (1ULL << 20)
#define CTL_RING_MAX      (1ULL << 30)
#define CTL_RING_SLACK    (64ULL * 1024 + 4096) /* entry header + topic + properties */
#define CTL_SPIN_ROUNDS   50
#define CTL_PAGE_ROUND(x) (((x) + 4095) & ~(uint64_t)4095)

/* ---- names ------------------------------------------------------------------ */

static const char *const role_names[SHMQ_ROLE_COUNT] = {
    "writer",    "flusher",     "dispatcher", "indexer", "scheduler",  "cleaner",
    "ha-sender", "ha-receiver", "metrics",    "gateway", "ctrl-agent",
};

const char *shmq_role_name(enum shmq_role role)
{
    if ((unsigned)role >= SHMQ_ROLE_COUNT) {
        return "unknown";
    }
    return role_names[role];
}

int shmq_role_from_name(const char *name)
{
    for (int i = 0; name != NULL && i < SHMQ_ROLE_COUNT; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *shmq_store_state_name(uint32_t state)
{
    static const char *const names[] = {"starting",  "recovering", "running", "draining",
                                        "finishing", "stopped",    "failed"};
    return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

const char *shmq_worker_state_name(uint32_t state)
{
    static const char *const names[] = {"none",     "starting", "running",
                                        "stopping", "exited",   "failed"};
    return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

/* ---- naming -------------------------------------------------------------------- */

/* realpath(root) into real (PATH_MAX bytes). */
static int ctl_realpath(const char *root, char *real)
{
    if (root == NULL || root[0] == '\0') {
        return shmq_error_set(SHMQ_E_ARG, "empty store root");
    }
    if (realpath(root, real) == NULL) {
        int rc = -errno;
        return shmq_error_set(rc, "store root %s: %s", root, strerror(-rc));
    }
    return 0;
}

static int name_of_real(const char *real, char *out, size_t len)
{
    int n = snprintf(out, len, "/shmq-%016llx",
                     (unsigned long long)shmq_fnv1a64(SHMQ_FNV_BASIS, real, strlen(real)));
    if (n < 0 || (size_t)n >= len) {
        return shmq_error_set(-ENAMETOOLONG, "control block name buffer too small (%zu)", len);
    }
    return 0;
}

int shmq_ctl_name(const char *root, char *out, size_t len)
{
    char real[PATH_MAX];
    int rc = ctl_realpath(root, real);
    if (rc < 0) {
        return rc;
    }
    return name_of_real(real, out, len);
}

static void cons_name(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s.cons", name);
}

static void wake_name(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s.wake", name);
}

int shmq_ctl_client_gid(const shmq_config_t *cfg, const char *root, gid_t *gid, char *name,
                        size_t len)
{
    char buf[4096];
    struct group g, *res = NULL;
    const char *want = cfg != NULL ? cfg->client_unix_group : "";
    if (want[0] == '\0') {
        struct stat st;
        if (stat(root, &st) != 0) {
            int rc = -errno;
            return shmq_error_set(rc, "store root %s: %s", root, strerror(-rc));
        }
        *gid = st.st_gid;
        if (getgrgid_r(st.st_gid, &g, buf, sizeof(buf), &res) == 0 && res != NULL) {
            snprintf(name, len, "%s", res->gr_name);
        } else {
            snprintf(name, len, "%ld", (long)st.st_gid);
        }
        return 0;
    }
    if (getgrnam_r(want, &g, buf, sizeof(buf), &res) != 0 || res == NULL) {
        return shmq_error_set(SHMQ_E_CONFIG, "clientUnixGroup '%s': no such group", want);
    }
    *gid = res->gr_gid;
    snprintf(name, len, "%s", res->gr_name);
    return 0;
}

/* ---- creation ------------------------------------------------------------------ */

/* Ring bytes for a message size: a power of two holding two maximal entries. */
static int ring_size_for(int32_t max_message_size, uint64_t *out)
{
    if (max_message_size <= 0) {
        return shmq_error_set(SHMQ_E_CONFIG, "maxMessageSize %d: expected > 0",
                              (int)max_message_size);
    }
    uint64_t need = 2 * ((uint64_t)max_message_size + CTL_RING_SLACK);
    uint64_t size = CTL_RING_MIN;
    while (size < need && size < CTL_RING_MAX) {
        size <<= 1;
    }
    if (size < need) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "maxMessageSize %d: producer rings would exceed %llu bytes",
                              (int)max_message_size, (unsigned long long)CTL_RING_MAX);
    }
    *out = size;
    return 0;
}

/* "name (uid N)" of a user, or "uid N" when it has no name. */
static void user_text(uid_t uid, char *out, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        snprintf(out, len, "%s (uid %ld)", res->pw_name, (long)uid);
    } else {
        snprintf(out, len, "uid %ld", (long)uid);
    }
}

/*
 * The object at name, if any, must belong to the store's user (our
 * effective uid): then it is a stale one (a master that died left it; the
 * caller holds the store lock) and is removed.  One of another user (made
 * while the store was stopped: its name is predictable) is refused naming
 * it and its owner, and is never opened.  Checked by its path under
 * SHMQ_SHM_DIR without following a link.
 */
static int shm_clear_stale(const char *name)
{
    char path[96];
    snprintf(path, sizeof(path), "%s%s", SHMQ_SHM_DIR, name);
    struct stat st;
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        int rc = -errno;
        if (rc == -ENOENT) {
            return 0;
        }
        return shmq_error_set(rc, "control block %s: cannot check it: %s", path, strerror(-rc));
    }
    if (st.st_uid != geteuid()) {
        char owner[160], self[160];
        user_text(st.st_uid, owner, sizeof(owner));
        user_text(geteuid(), self, sizeof(self));
        return shmq_error_set(-EPERM,
                              "control block %s already exists and belongs to %s, not to the "
                              "store's user %s: it is neither used nor replaced; its owner or "
                              "root must remove it before the store can start",
                              path, owner, self);
    }
    if (shm_unlink(name) != 0 && errno != ENOENT) {
        int rc = -errno;
        return shmq_error_set(rc, "control block %s: cannot remove the stale one: %s", path,
                              strerror(-rc));
    }
    return 0;
}

/*
 * shm_open O_CREAT|O_EXCL, give it mode and group gid, size it, allocate its
 * first reserve bytes and map it; returns the mapping.
 */
static int shm_create_map(const char *name, uint64_t size, uint64_t reserve, mode_t mode, gid_t gid,
                          void **out)
{
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -EEXIST && shm_clear_stale(name) < 0) {
            return -EPERM; /* made by another user since the check: the detail names it */
        }
        return shmq_error_set(rc, "shm_open %s: %s", name, strerror(-rc));
    }
    int rc = 0;
    /* Group first, then mode: the object is never open to the group before it has its group. */
    if (fchown(fd, (uid_t)-1, gid) != 0 || fchmod(fd, mode) != 0) {
        rc = -errno;
        shmq_error_set(rc,
                       "%s%s: cannot give it group %ld and mode %04o (clientUnixGroup: the store's "
                       "user must be a member of the client group): %s",
                       SHMQ_SHM_DIR, name, (long)gid, (unsigned)mode, strerror(-rc));
        goto fail;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        rc = -errno;
        shmq_error_set(rc, "ftruncate %s to %llu: %s", name, (unsigned long long)size,
                       strerror(-rc));
        goto fail;
    }
    /* Allocate the tables' pages now: a full /dev/shm must be an error here,
     * never a SIGBUS later (PITFALLS 2).  Ring data stays sparse. */
    if (reserve > 0 && (rc = -posix_fallocate(fd, 0, (off_t)reserve)) < 0) {
        if (rc == -ENOSPC || rc == -ENOMEM) {
            shmq_error_set(-ENOSPC,
                           "shared memory %s is full: %s%s needs %llu bytes (free space in %s, "
                           "or mount it larger)",
                           SHMQ_SHM_DIR, SHMQ_SHM_DIR, name, (unsigned long long)reserve,
                           SHMQ_SHM_DIR);
            rc = -ENOSPC;
        } else {
            shmq_error_set(rc, "reserve %llu bytes of %s%s: %s", (unsigned long long)reserve,
                           SHMQ_SHM_DIR, name, strerror(-rc));
        }
        goto fail;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        shmq_error_set(rc, "mmap %s (%llu bytes): %s", name, (unsigned long long)size,
                       strerror(-rc));
        goto fail;
    }
    close(fd);
    *out = p;
    return 0;
fail:
    close(fd);
    shm_unlink(name);
    return rc;
}

static uint64_t random_generation(void)
{
    uint64_t g = 0;
    if (getrandom(&g, sizeof(g), 0) != (ssize_t)sizeof(g)) {
        g = (uint64_t)shmq_mono_ns() ^ ((uint64_t)getpid() << 32);
    }
    return g != 0 ? g : 1;
}

int shmq_ctl_create(const shmq_config_t *cfg, const char *root, shmq_ctl_t *ctl)
{
    char cname[80], wname[80], gname[64];
    uint64_t ring_size = 0;
    gid_t gid;
    int rc;

    memset(ctl, 0, sizeof(*ctl));
    ctl->lock_fd = -1;
    ctl->topic_lock_fd = -1;
    if (cfg == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "no configuration");
    }
    if ((rc = ctl_realpath(root, ctl->root)) < 0 ||
        (rc = name_of_real(ctl->root, ctl->name, sizeof(ctl->name))) < 0 ||
        (rc = ring_size_for(cfg->max_message_size, &ring_size)) < 0 ||
        (rc = shmq_ctl_client_gid(cfg, ctl->root, &gid, gname, sizeof(gname))) < 0) {
        return rc;
    }
    cons_name(ctl->name, cname, sizeof(cname));
    wake_name(ctl->name, wname, sizeof(wname));
    /* Stale objects from a master that died (the caller holds the store lock) are
     * replaced; objects of another user are refused, never opened. */
    if ((rc = shm_clear_stale(ctl->name)) < 0 || (rc = shm_clear_stale(cname)) < 0 ||
        (rc = shm_clear_stale(wname)) < 0) {
        return rc;
    }

    uint64_t total = CTL_PAGE_ROUND(sizeof(shmq_ctl_block_t));
    uint64_t cons_size = CTL_PAGE_ROUND(sizeof(shmq_ctl_cons_t));
    uint64_t wake_size = CTL_PAGE_ROUND(sizeof(shmq_ctl_wakes_t));
    void *blk = NULL;
    void *cons = NULL;
    void *wake = NULL;
    /* Clients read the block and the consumer area (0640) and write only the wake words (0660). */
    if ((rc = shm_create_map(ctl->name, total, total, 0640, gid, &blk)) < 0) {
        return rc;
    }
    if ((rc = shm_create_map(cname, cons_size, cons_size, 0640, gid, &cons)) < 0) {
        munmap(blk, total);
        shm_unlink(ctl->name);
        return rc;
    }
    if ((rc = shm_create_map(wname, wake_size, wake_size, 0660, gid, &wake)) < 0) {
        munmap(blk, total);
        munmap(cons, cons_size);
        shm_unlink(ctl->name);
        shm_unlink(cname);
        return rc;
    }
    ctl->blk = blk;
    ctl->blk_size = total;
    ctl->cons = cons;
    ctl->cons_size = cons_size;
    ctl->wake = wake;
    ctl->wake_size = wake_size;
    ctl->readonly = false;

    /* The objects are new, hence zero: only the non-zero fields are written. */
    shmq_ctl_header_t *h = &ctl->blk->hdr;
    h->version = SHMQ_CTL_VERSION;
    h->header_size = (uint32_t)sizeof(shmq_ctl_block_t);
    h->total_size = total;
    h->ring_size = ring_size;
    h->ring_count = SHMQ_CTL_MAX_RINGS;
    h->config_size = (uint32_t)sizeof(shmq_config_t);
    h->creator_pid = (int32_t)getpid();
    h->generation = random_generation();
    h->created_ms = shmq_now_ms();
    snprintf(h->store_root, sizeof(h->store_root), "%s", ctl->root);
    memcpy(&h->config, cfg, sizeof(h->config));
    for (int i = 0; i < SHMQ_ROLE_COUNT; i++) {
        snprintf(ctl->blk->workers[i].name, sizeof(ctl->blk->workers[i].name), "%s", role_names[i]);
    }
    for (int i = 0; i < SHMQ_CTL_MAX_RINGS; i++) {
        atomic_store_explicit(&ctl->blk->rings[i].master_fd, -1, memory_order_relaxed);
    }

    ctl->cons->version = SHMQ_CTL_VERSION;
    ctl->cons->size = (uint32_t)cons_size;
    ctl->cons->generation = h->generation;
    ctl->wake->version = SHMQ_CTL_VERSION;
    ctl->wake->size = (uint32_t)wake_size;
    ctl->wake->generation = h->generation;
    /* Magic last (release): an attacher that sees it sees the filled header. */
    __atomic_store_n(&ctl->wake->magic, SHMQ_CTL_WAKE_MAGIC, __ATOMIC_RELEASE);
    __atomic_store_n(&ctl->cons->magic, SHMQ_CTL_CONS_MAGIC, __ATOMIC_RELEASE);
    __atomic_store_n(&h->magic, SHMQ_CTL_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

void shmq_ctl_set_ready(shmq_ctl_t *ctl)
{
    /* Release: everything the master filled (positions, tables) is visible
     * to an attacher that reads ready == 1 with acquire. */
    atomic_store_explicit(&ctl->blk->hdr.ready, 1, memory_order_release);
}

/* ---- attachment ---------------------------------------------------------------- */

static int not_running(const char *root, const char *name)
{
    return shmq_error_set(SHMQ_E_NOT_FOUND, "store %s is not running (no control block %s)", root,
                          name);
}

/* Open and map an existing object; *size_out gets its size. */
static int shm_attach_map(const char *root, const char *name, bool rdonly, size_t min_size,
                          void **out, size_t *size_out)
{
    int fd = shm_open(name, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT) {
            return not_running(root, name);
        }
        return shmq_error_set(rc, "shm_open %s: %s", name, strerror(-rc));
    }
    struct stat st;
    int rc = shmq_file_fstat(fd, name, &st);
    if (rc < 0) {
        return rc;
    }
    if (st.st_size == 0) {
        close(fd); /* created, not sized yet */
        return shmq_error_set(-EAGAIN, "control block %s is being created", name);
    }
    if ((uint64_t)st.st_size < min_size) {
        close(fd);
        return shmq_error_set(SHMQ_E_VERSION,
                              "%s is not a shmq control block of this version (%lld bytes, "
                              "expected at least %zu)",
                              name, (long long)st.st_size, min_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, rdonly ? PROT_READ : PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    rc = p == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0) {
        return shmq_error_set(rc, "mmap %s: %s", name, strerror(-rc));
    }
    *out = p;
    *size_out = (size_t)st.st_size;
    return 0;
}

static int check_block(const shmq_ctl_t *ctl)
{
    const shmq_ctl_header_t *h = &ctl->blk->hdr;
    /* Acquire: pairs with the creator's release store of the magic. */
    uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
    if (magic == 0) {
        return shmq_error_set(-EAGAIN, "control block %s is being created", ctl->name);
    }
    if (magic != SHMQ_CTL_MAGIC) {
        return shmq_error_set(SHMQ_E_VERSION, "%s: not a shmq control block (magic %016llx)",
                              ctl->name, (unsigned long long)magic);
    }
    if (h->version != SHMQ_CTL_VERSION || h->header_size != sizeof(shmq_ctl_block_t) ||
        h->config_size != sizeof(shmq_config_t)) {
        return shmq_error_set(SHMQ_E_VERSION,
                              "%s: control block version %u, header %u bytes, config %u bytes; "
                              "this program expects version %d, %zu, %zu (mixed shmq builds?)",
                              ctl->name, h->version, h->header_size, h->config_size,
                              SHMQ_CTL_VERSION, sizeof(shmq_ctl_block_t), sizeof(shmq_config_t));
    }
    if (h->total_size != ctl->blk_size || h->total_size < sizeof(shmq_ctl_block_t) ||
        h->ring_count > SHMQ_CTL_MAX_RINGS || h->ring_size < CTL_RING_MIN ||
        h->ring_size > CTL_RING_MAX || (h->ring_size & (h->ring_size - 1)) != 0) {
        return shmq_error_set(SHMQ_E_VERSION,
                              "%s: inconsistent sizes (total %llu, mapped %zu, rings %u x %llu)",
                              ctl->name, (unsigned long long)h->total_size, ctl->blk_size,
                              h->ring_count, (unsigned long long)h->ring_size);
    }
    if (memchr(h->store_root, '\0', sizeof(h->store_root)) == NULL ||
        strcmp(h->store_root, ctl->root) != 0) {
        return shmq_error_set(SHMQ_E_VERSION, "%s: control block of another store (%.200s)",
                              ctl->name, h->store_root);
    }
    /* Acquire: pairs with shmq_ctl_set_ready(); the tables are filled. */
    if (atomic_load_explicit(&h->ready, memory_order_acquire) != 1) {
        return shmq_error_set(-EAGAIN, "store %s is starting (control block not ready)", ctl->root);
    }
    /* A master killed without cleaning up leaves its block behind.  ESRCH is
     * certain; a reused pid only makes this check miss (never wrongly fail). */
    if (h->creator_pid > 0 && kill(h->creator_pid, 0) != 0 && errno == ESRCH) {
        return shmq_error_set(SHMQ_E_NOT_FOUND,
                              "store %s is not running (master pid %d is gone; stale control "
                              "block %s)",
                              ctl->root, (int)h->creator_pid, ctl->name);
    }
    return 0;
}

static int check_wake(const shmq_ctl_t *ctl, const char *wname)
{
    const shmq_ctl_wakes_t *w = ctl->wake;
    uint64_t magic = __atomic_load_n(&w->magic, __ATOMIC_ACQUIRE);
    if (magic != SHMQ_CTL_WAKE_MAGIC || w->version != SHMQ_CTL_VERSION ||
        w->size != ctl->wake_size) {
        return shmq_error_set(SHMQ_E_VERSION,
                              "%s: not a shmq wake-up object of this version (magic %016llx, "
                              "version %u, %u bytes, mapped %zu)",
                              wname, (unsigned long long)magic, w->version, w->size,
                              ctl->wake_size);
    }
    if (w->generation != ctl->blk->hdr.generation) {
        return shmq_error_set(-EAGAIN, "%s: wake-up object of another master generation", wname);
    }
    return 0;
}

static int check_cons(const shmq_ctl_t *ctl, const char *cname)
{
    const shmq_ctl_cons_t *c = ctl->cons;
    uint64_t magic = __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE);
    if (magic != SHMQ_CTL_CONS_MAGIC) {
        return shmq_error_set(SHMQ_E_VERSION, "%s: not a shmq consumer area (magic %016llx)", cname,
                              (unsigned long long)magic);
    }
    if (c->version != SHMQ_CTL_VERSION || c->size != ctl->cons_size) {
        return shmq_error_set(SHMQ_E_VERSION,
                              "%s: consumer area version %u, %u bytes (mapped %zu); expected "
                              "version %d",
                              cname, c->version, c->size, ctl->cons_size, SHMQ_CTL_VERSION);
    }
    if (c->generation != ctl->blk->hdr.generation) {
        /* The master restarted between our two opens: try again. */
        return shmq_error_set(-EAGAIN, "%s: consumer area of another master generation", cname);
    }
    return 0;
}

int shmq_ctl_attach(const char *root, unsigned flags, shmq_ctl_t *ctl)
{
    char cname[80], wname[80];
    void *p;
    size_t size;
    int rc;

    memset(ctl, 0, sizeof(*ctl));
    ctl->lock_fd = -1;
    ctl->topic_lock_fd = -1;
    if ((rc = ctl_realpath(root, ctl->root)) < 0) {
        if (rc == -ENOENT) {
            return shmq_error_set(SHMQ_E_NOT_FOUND, "store %s is not running (no such directory)",
                                  root);
        }
        return rc;
    }
    if ((rc = name_of_real(ctl->root, ctl->name, sizeof(ctl->name))) < 0) {
        return rc;
    }
    ctl->readonly = (flags & SHMQ_CTL_RDONLY) != 0;
    if ((rc = shm_attach_map(root, ctl->name, ctl->readonly, sizeof(shmq_ctl_header_t), &p,
                             &size)) < 0) {
        return rc;
    }
    ctl->blk = p;
    ctl->blk_size = size;
    if (size < sizeof(shmq_ctl_block_t)) {
        /* Only the header may be read: check it reports the layout mismatch. */
        const shmq_ctl_header_t *h = p;
        uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
        rc = magic == 0 ? shmq_error_set(-EAGAIN, "control block %s is being created", ctl->name)
                        : shmq_error_set(SHMQ_E_VERSION,
                                         "%s: not a shmq control block of this version "
                                         "(%zu bytes)",
                                         ctl->name, size);
        goto fail;
    }
    if ((rc = check_block(ctl)) < 0) {
        goto fail;
    }
    /* The consumer area as the block: clients commit offsets through the master. */
    cons_name(ctl->name, cname, sizeof(cname));
    if ((rc = shm_attach_map(root, cname, ctl->readonly, sizeof(shmq_ctl_cons_t), &p, &size)) < 0) {
        goto fail;
    }
    ctl->cons = p;
    ctl->cons_size = size;
    if ((rc = check_cons(ctl, cname)) < 0) {
        goto fail;
    }
    /* The wake words are written by everyone (sleepers register there). */
    wake_name(ctl->name, wname, sizeof(wname));
    if ((rc = shm_attach_map(root, wname, false, sizeof(shmq_ctl_wakes_t), &p, &size)) < 0) {
        goto fail;
    }
    ctl->wake = p;
    ctl->wake_size = size;
    if ((rc = check_wake(ctl, wname)) < 0) {
        goto fail;
    }
    return 0;
fail:
    shmq_ctl_detach(ctl);
    return rc;
}

void shmq_ctl_detach(shmq_ctl_t *ctl)
{
    if (ctl->blk != NULL) {
        munmap(ctl->blk, ctl->blk_size);
    }
    if (ctl->cons != NULL) {
        munmap(ctl->cons, ctl->cons_size);
    }
    if (ctl->wake != NULL) {
        munmap(ctl->wake, ctl->wake_size);
    }
    if (ctl->blk != NULL || ctl->cons != NULL || ctl->wake != NULL) {
        /* A zeroed handle never opened these: only close what attach/create set up. */
        if (ctl->lock_fd >= 0) {
            close(ctl->lock_fd);
        }
        if (ctl->topic_lock_fd >= 0) {
            close(ctl->topic_lock_fd);
        }
    }
    ctl->blk = NULL;
    ctl->cons = NULL;
    ctl->wake = NULL;
    ctl->blk_size = 0;
    ctl->cons_size = 0;
    ctl->wake_size = 0;
    ctl->lock_fd = -1;
    ctl->topic_lock_fd = -1;
}

int shmq_ctl_unlink(const char *root)
{
    char name[64];
    char cname[80], wname[80];
    int rc = shmq_ctl_name(root, name, sizeof(name));
    if (rc < 0) {
        return rc;
    }
    cons_name(name, cname, sizeof(cname));
    wake_name(name, wname, sizeof(wname));
    int first = 0;
    if (shm_unlink(name) != 0 && errno != ENOENT) {
        first = shmq_error_set(-errno, "shm_unlink %s: %s", name, strerror(errno));
    }
    if (shm_unlink(cname) != 0 && errno != ENOENT && first == 0) {
        first = shmq_error_set(-errno, "shm_unlink %s: %s", cname, strerror(errno));
    }
    if (shm_unlink(wname) != 0 && errno != ENOENT && first == 0) {
        first = shmq_error_set(-errno, "shm_unlink %s: %s", wname, strerror(errno));
    }
    return first;
}

/* ---- futex ----------------------------------------------------------------------- */

static int futex_wait_ns(_Atomic uint32_t *word, uint32_t expected, int64_t ns)
{
    if (ns < 0) {
        ns = 0;
    }
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, &ts, NULL, 0) != 0) {
        return -errno;
    }
    return 0;
}

int shmq_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    return futex_wait_ns(word, expected, (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000);
}

int shmq_futex_wake(_Atomic uint32_t *word, int n)
{
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

/* ---- positions and wake words ------------------------------------------------------ */

/*
 * The sleep word (ctl.h "Sleeping"): seq and waiters, the halves of one 64-bit word.  The
 * kernel sleeps on the seq half; every change in user space is an atomic operation on the
 * whole word, so that a wake bumps seq and clears waiters in one step (SHMQ_SW_* in ctl.h).
 */
#define SW_SEQ(v)     SHMQ_SW_SEQ(v)
#define SW_WAITERS(v) SHMQ_SW_WAITERS(v)
#define SW_SEQ_SHIFT  SHMQ_SW_SEQ_SHIFT
#define SW_ONE_WAITER ((uint64_t)1 << SHMQ_SW_WAIT_SHIFT)
_Static_assert(offsetof(shmq_ctl_wake_t, seq) == offsetof(shmq_ctl_wake_t, word),
               "seq is the first half of the sleep word");
_Static_assert(offsetof(shmq_ctl_wake_t, waiters) == offsetof(shmq_ctl_wake_t, word) + 4,
               "waiters is the second half of the sleep word");
_Static_assert(offsetof(shmq_ctl_position_t, word) == 8, "the sleep word follows pos");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "the sleep word is 64 bits");

/* FUTEX_WAKE system calls this process made through wake words (shmq_ctl_wake_syscalls). */
static _Atomic uint64_t ctl_wake_syscalls;

uint64_t shmq_ctl_wake_syscalls(void)
{
    return atomic_load_explicit(&ctl_wake_syscalls, memory_order_relaxed);
}

/*
 * The rest of a wake (ctl.h shmq_ctl_wake_word: the fence and the first look at the word
 * came before, and found a sleeper).  The CAS bumps seq (a sleeper that registered before
 * it fails its FUTEX_WAIT, or is queued and woken below) and clears waiters: the wake
 * consumes every registration, so the publishes after it make no system call until
 * someone registers again, and a sleeper that died registered costs one wake, not one per
 * publish.  The word is client-writable: a scribbled value costs a spurious wake or a
 * sleeper's timeout, never more.
 */
void shmq_ctl_wake_slow(_Atomic uint64_t *word, _Atomic uint32_t *seq)
{
    uint64_t cur = atomic_load_explicit(word, memory_order_relaxed);
    while (SW_WAITERS(cur) != 0) {
        uint64_t next = (uint64_t)(SW_SEQ(cur) + 1u) << SW_SEQ_SHIFT;
        if (atomic_compare_exchange_weak_explicit(word, &cur, next, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            atomic_fetch_add_explicit(&ctl_wake_syscalls, 1, memory_order_relaxed);
            shmq_futex_wake(seq, INT32_MAX);
            return;
        }
    }
}

/* Register as a sleeper on word; returns the seq to sleep on.  Sequentially consistent:
 * the caller's re-check of its condition comes after (pairs with shmq_ctl_wake_word). */
static uint32_t sleep_register(_Atomic uint64_t *word)
{
    uint64_t old = atomic_fetch_add_explicit(word, SW_ONE_WAITER, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    return SW_SEQ(old);
}

/*
 * Take back a registration made at seq, unless a wake consumed it (seq moved: the wake
 * cleared every registration).  While seq is unchanged no wake happened since, so the
 * count still holds ours and removing one removes exactly ours.
 */
static void sleep_unregister(_Atomic uint64_t *word, uint32_t seq)
{
    uint64_t cur = atomic_load_explicit(word, memory_order_relaxed);
    while (SW_SEQ(cur) == seq && SW_WAITERS(cur) != 0) {
        if (atomic_compare_exchange_weak_explicit(word, &cur, cur - SW_ONE_WAITER,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            return;
        }
    }
}

int shmq_ctl_wait_pos(shmq_ctl_position_t *p, int64_t target, int timeout_ms)
{
    for (int i = 0; i < CTL_SPIN_ROUNDS; i++) {
        if (shmq_ctl_load(p) >= target) {
            return 0;
        }
        shmq_cpu_relax();
    }
    int64_t deadline = shmq_mono_ns() + (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
    for (;;) {
        if (shmq_ctl_load(p) >= target) {
            return 0;
        }
        int64_t left = deadline - shmq_mono_ns();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        /* Register, then re-check: pairs with the fence in shmq_ctl_wake_word(). */
        uint32_t seq = sleep_register(&p->word);
        if (shmq_ctl_load(p) < target) {
            futex_wait_ns(&p->seq, seq, left);
        }
        sleep_unregister(&p->word, seq);
    }
}

void shmq_ctl_pos_wake_all(shmq_ctl_position_t *p)
{
    shmq_ctl_wake_word(&p->word, &p->seq);
}

int shmq_ctl_sleep(shmq_ctl_wake_t *w, bool (*ready)(void *arg), void *arg, int timeout_ms)
{
    /* Register, then re-check: pairs with the fence in shmq_ctl_wake_word(). */
    uint32_t seq = sleep_register(&w->word);
    int rc = 0;
    if (ready != NULL && ready(arg)) {
        rc = 1;
    } else {
        futex_wait_ns(&w->seq, seq, (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000);
    }
    sleep_unregister(&w->word, seq);
    return rc;
}

/* ---- the checkpoint's mark ------------------------------------------------------- */

/* Reads of the mark that a writer overtook before one succeeds (it writes once a second). */
#define MARK_TRIES 1000

void shmq_ctl_cq_mark_publish(shmq_ctl_cq_mark_t *m, int64_t pos, int64_t ts)
{
    /* Acquire: a writer started after another's death writes past its last generation. */
    uint64_t g = atomic_load_explicit(&m->gen, memory_order_acquire) + 1;
    shmq_ctl_mark_slot_t *s = &m->slot[g & 1];
    atomic_store_explicit(&s->gen_begin, g, memory_order_relaxed);
    /* Release fence: a reader that sees a field below sees gen_begin changed (it re-checks
     * it after its acquire fence), so a slot being rewritten is never taken. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->pos, pos, memory_order_relaxed);
    atomic_store_explicit(&s->ts, ts, memory_order_relaxed);
    /* Release: the fields are complete before the stamp that closes them... */
    atomic_store_explicit(&s->gen_end, g, memory_order_release);
    /* ...and before gen names the slot. */
    atomic_store_explicit(&m->gen, g, memory_order_release);
}

int shmq_ctl_cq_mark_read(const shmq_ctl_cq_mark_t *cm, int64_t *pos, int64_t *ts)
{
    /* The block may be mapped read-only: loads only, through non-const atomics. */
    shmq_ctl_cq_mark_t *m = (shmq_ctl_cq_mark_t *)(uintptr_t)cm;
    for (int i = 0; i < MARK_TRIES; i++) {
        /* Acquire: the slot gen names is whole (its gen_end was stored before). */
        uint64_t g = atomic_load_explicit(&m->gen, memory_order_acquire);
        if (g == 0) {
            return SHMQ_E_NOT_FOUND;
        }
        shmq_ctl_mark_slot_t *s = &m->slot[g & 1];
        /* Acquire: the fields read below are not older than this stamp. */
        uint64_t end = atomic_load_explicit(&s->gen_end, memory_order_acquire);
        int64_t p = atomic_load_explicit(&s->pos, memory_order_relaxed);
        int64_t t = atomic_load_explicit(&s->ts, memory_order_relaxed);
        /* Acquire fence: the fields are read before gen_begin is; a rewrite that began
         * (gen_begin = g + 2) before they were read shows here. */
        atomic_thread_fence(memory_order_acquire);
        uint64_t begin = atomic_load_explicit(&s->gen_begin, memory_order_relaxed);
        if (end == g && begin == g) {
            *pos = p;
            *ts = t;
            return 0;
        }
        shmq_cpu_relax(); /* overtaken: the writer published twice during this read */
    }
    return shmq_error_set(-EAGAIN, "the checkpoint mark stays mid-change");
}

void shmq_marks_init(shmq_marks_t *l)
{
    memset(l, 0, sizeof(*l));
    l->every = 1;
}

void shmq_marks_add(shmq_marks_t *l, int64_t pos, int64_t ts)
{
    if (l->has_last && pos <= l->last_pos) {
        return;
    }
    if (l->has_last && ++l->seen >= l->every) {
        /* The newest so far is kept below the new one. */
        if (l->n == SHMQ_MARKS) {
            for (int i = 0; i < SHMQ_MARKS / 2; i++) {
                l->pos[i] = l->pos[2 * i];
                l->ts[i] = l->ts[2 * i];
            }
            l->n = SHMQ_MARKS / 2;
            l->every *= 2;
        }
        l->pos[l->n] = l->last_pos;
        l->ts[l->n] = l->last_ts;
        l->n++;
        l->seen = 0;
    }
    l->last_pos = pos;
    l->last_ts = ts;
    l->has_last = true;
}

bool shmq_marks_take(shmq_marks_t *l, int64_t upto, int64_t *pos, int64_t *ts)
{
    if (l->has_last && l->last_pos <= upto) {
        *pos = l->last_pos;
        *ts = l->last_ts;
        l->n = 0; /* all below it */
        l->every = 1;
        l->seen = 0;
        return true;
    }
    int i = l->n;
    while (i > 0 && l->pos[i - 1] > upto) {
        i--;
    }
    if (i == 0) {
        return false;
    }
    *pos = l->pos[i - 1];
    *ts = l->ts[i - 1];
    memmove(l->pos, l->pos + i - 1, (size_t)(l->n - i + 1) * sizeof(l->pos[0]));
    memmove(l->ts, l->ts + i - 1, (size_t)(l->n - i + 1) * sizeof(l->ts[0]));
    l->n -= i - 1;
    return true;
}

bool shmq_ctl_fence(shmq_ctl_block_t *b, enum shmq_fence_part part, int err)
{
    int32_t expect = 0;
    int32_t v = err < 0 ? err : SHMQ_E_FENCED;
    /* acq_rel: the fence record written before is visible to whoever sees the error */
    bool mine = atomic_compare_exchange_strong_explicit(&b->fenced_error, &expect, v,
                                                        memory_order_acq_rel, memory_order_acquire);
    if (mine) {
        /* relaxed: for status only (0 for a moment after the error appears) */
        atomic_store_explicit(&b->fenced_part, (int32_t)part, memory_order_relaxed);
    }
    shmq_ctl_wake(&b->master_wake);
    /* Producers waiting for flushed: answer SHMQ_E_FENCED now, not at syncFlushTimeout. */
    shmq_ctl_pos_wake_all(&b->flushed);
    return mine;
}
