/*
 * Ring objects (see ring.h): how the master gives a producer a ring of its
 * own and takes it back, how the writer maps a ring and judges what its
 * producer published, and how the writer answers a request in a completion
 * slot.
 *
 * A ring is a memfd the master creates when a producer registers over
 * <root>/shmq.sock: sized, allocated at once (a full memory is an error at
 * registration, never a SIGBUS later) and sealed so that no holder can
 * shrink or grow it (a shrunk object would make the writer's reads fault).
 * The master keeps one descriptor (the ring table's master_fd) and sends
 * another to the producer, which is the only client that ever holds it.
 * The writer, a process of the store's user, reopens the master's
 * descriptor through /proc/<master>/fd/<n>, also after a restart.
 *
 * Ownership is the connection's: while the producer's connection is open
 * the ring is ACTIVE; when it ends (exit, kill -9) the master marks it
 * ORPHANED, the writer takes what was published and marks it DRAINED, and
 * the master closes its descriptor (FREE).  The claims counter, bumped at
 * each registration, tells the writer that a ring index now names another
 * object.
 */
#include "shm/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/reg.h"
#include "shmq/errors.h"

#define RING_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* ---- master --------------------------------------------------------------------------- */

/* A sealed, allocated memfd holding ring idx's header; the descriptor or -errno. */
static int ring_create(const shmq_ctl_t *ctl, uint32_t idx, uint64_t claims, char *name,
                       size_t name_len)
{
    uint64_t ring_size = ctl->blk->hdr.ring_size;
    uint64_t len = SHMQ_RING_DATA_OFF + ring_size;
    snprintf(name, name_len, "shmq-ring-%u-%llx", idx, (unsigned long long)claims);
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int rc = -errno;
        return shmq_error_set(rc, "memfd_create %s: %s", name, strerror(-rc));
    }
    int rc = 0;
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)len) != 0) {
        rc = -errno;
        shmq_error_set(rc, "producer ring %s (%llu bytes): %s", name, (unsigned long long)len,
                       strerror(-rc));
        goto fail;
    }
    if ((rc = -posix_fallocate(fd, 0, (off_t)len)) < 0) {
        if (rc == -ENOSPC || rc == -ENOMEM) {
            rc = shmq_error_set(-ENOSPC,
                                "no memory for a producer ring: %llu bytes of shared memory "
                                "needed (%s)",
                                (unsigned long long)len, strerror(-rc));
        } else {
            shmq_error_set(rc, "allocate producer ring %s (%llu bytes): %s", name,
                           (unsigned long long)len, strerror(-rc));
        }
        goto fail;
    }
    shmq_ring_shm_t *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED) {
        rc = -errno;
        shmq_error_set(rc, "mmap producer ring %s: %s", name, strerror(-rc));
        goto fail;
    }
    r->claims = claims;
    r->ring_size = ring_size;
    r->index = idx;
    r->magic = SHMQ_RING_SHM_MAGIC;
    munmap(r, sizeof(*r));
    if (fcntl(fd, F_ADD_SEALS, RING_SEALS) != 0) {
        rc = -errno;
        shmq_error_set(rc, "seal producer ring %s: %s", name, strerror(-rc));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int shmq_ring_assign(shmq_ctl_t *ctl, pid_t pid, const shmq_acl_ident_t *id, uint32_t *idx,
                     int *fd_out)
{
    uint32_t count = ctl->blk->hdr.ring_count;
    /* The lowest FREE ring first: the writer looks for a new ring only up to the lowest
     * FREE one it saw (writer.h, scan_end), and at the whole table now and then. */
    for (uint32_t i = 0; i < count && i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *t = &ctl->blk->rings[i];
        /* Acquire: a FREE stored by the master itself; DRAINED (writer) is not reused yet. */
        if (atomic_load_explicit(&t->state, memory_order_acquire) != SHMQ_RING_FREE) {
            continue;
        }
        uint64_t claims = atomic_load_explicit(&t->claims, memory_order_relaxed) + 1;
        char name[48];
        int fd = ring_create(ctl, i, claims, name, sizeof(name));
        if (fd < 0) {
            return fd;
        }
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) {
            int rc = -errno;
            close(fd);
            return shmq_error_set(rc, "producer ring %s: %s", name, strerror(-rc));
        }
        /* Relaxed: all published by the ACTIVE release below (the ring is FREE: unread). */
        atomic_store_explicit(&t->claims, claims, memory_order_relaxed);
        atomic_store_explicit(&t->owner_pid, (int32_t)pid, memory_order_relaxed);
        atomic_store_explicit(&t->owner_uid, (uint32_t)id->uid, memory_order_relaxed);
        int ng = id->ngroups < SHMQ_ACL_GROUPS_MAX ? id->ngroups : SHMQ_ACL_GROUPS_MAX;
        for (int g = 0; g < ng; g++) {
            t->owner_groups[g] = (uint32_t)id->groups[g];
        }
        atomic_store_explicit(&t->owner_ngroups, ng, memory_order_relaxed);
        atomic_store_explicit(&t->master_fd, fd, memory_order_relaxed);
        atomic_store_explicit(&t->head, 0, memory_order_relaxed);
        atomic_store_explicit(&t->tail_seen, 0, memory_order_relaxed);
        snprintf(t->name, sizeof(t->name), "%s", name);
        /* Release: a writer that sees ACTIVE sees the fields above. */
        atomic_store_explicit(&t->state, SHMQ_RING_ACTIVE, memory_order_release);
        *idx = i;
        *fd_out = dup_fd;
        return 0;
    }
    return shmq_error_set(-EBUSY, "store %s: all %u producer rings are taken", ctl->root, count);
}

void shmq_ring_orphan(shmq_ctl_t *ctl, uint32_t idx)
{
    if (idx >= SHMQ_CTL_MAX_RINGS) {
        return;
    }
    uint32_t expect = SHMQ_RING_ACTIVE;
    /* Release: pairs with the writer's acquire of the state. */
    atomic_compare_exchange_strong_explicit(&ctl->blk->rings[idx].state, &expect,
                                            SHMQ_RING_ORPHANED, memory_order_acq_rel,
                                            memory_order_relaxed);
}

int shmq_ring_reap(shmq_ctl_t *ctl, bool all)
{
    int n = 0;
    for (uint32_t i = 0; i < SHMQ_CTL_MAX_RINGS; i++) {
        shmq_ctl_ring_t *t = &ctl->blk->rings[i];
        /* Acquire: the writer's DRAINED release; it is done with the object. */
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
        if (st == SHMQ_RING_FREE || (!all && st != SHMQ_RING_DRAINED)) {
            continue;
        }
        int fd = atomic_exchange_explicit(&t->master_fd, -1, memory_order_relaxed);
        if (fd >= 0) {
            close(fd);
        }
        atomic_store_explicit(&t->owner_pid, 0, memory_order_relaxed);
        /* Release: a later ACTIVE of this entry comes with new fields. */
        atomic_store_explicit(&t->state, SHMQ_RING_FREE, memory_order_release);
        n++;
    }
    return n;
}

/* ---- mapping ---------------------------------------------------------------------------- */

/* Map fd (already checked for size) and check the header the master wrote. */
static int ring_map_checked(int fd, uint32_t idx, uint64_t claims, uint64_t ring_size,
                            shmq_ring_map_t *m)
{
    size_t len = (size_t)(SHMQ_RING_DATA_OFF + ring_size);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;
        return shmq_error_set(rc, "mmap producer ring %u: %s", idx, strerror(-rc));
    }
    shmq_ring_shm_t *r = p;
    /* Read once each: the producer may be rewriting them. */
    uint64_t magic = *(volatile uint64_t *)&r->magic;
    uint64_t rc_claims = *(volatile uint64_t *)&r->claims;
    uint64_t rsize = *(volatile uint64_t *)&r->ring_size;
    uint32_t ridx = *(volatile uint32_t *)&r->index;
    if (magic != SHMQ_RING_SHM_MAGIC || rc_claims != claims || rsize != ring_size || ridx != idx) {
        munmap(p, len);
        return shmq_error_set(-ESTALE,
                              "producer ring %u: header does not match the ring table (magic "
                              "%016llx, claims %llu/%llu, size %llu/%llu, index %u)",
                              idx, (unsigned long long)magic, (unsigned long long)rc_claims,
                              (unsigned long long)claims, (unsigned long long)rsize,
                              (unsigned long long)ring_size, ridx);
    }
    m->r = r;
    m->data = (uint8_t *)p + SHMQ_RING_DATA_OFF;
    m->len = len;
    m->claims = claims;
    m->index = idx;
    return 0;
}

/* The object behind fd is a sealed ring of the expected size. */
static int ring_check_fd(int fd, uint32_t idx, uint64_t ring_size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        return shmq_error_set(rc, "producer ring %u: fstat: %s", idx, strerror(-rc));
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != SHMQ_RING_DATA_OFF + ring_size ||
        seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        return shmq_error_set(-ESTALE,
                              "producer ring %u: not a sealed ring object of %llu bytes (%lld "
                              "bytes, seals %#x)",
                              idx, (unsigned long long)(SHMQ_RING_DATA_OFF + ring_size),
                              (long long)st.st_size, (unsigned)seals);
    }
    return 0;
}

int shmq_ring_map(const shmq_ctl_t *ctl, uint32_t idx, shmq_ring_map_t *m)
{
    memset(m, 0, sizeof(*m));
    if (idx >= SHMQ_CTL_MAX_RINGS) {
        return -ENOENT;
    }
    const shmq_ctl_ring_t *t = &ctl->blk->rings[idx];
    /* Acquire: pairs with the master's ACTIVE release; claims and master_fd are its. */
    uint32_t st = atomic_load_explicit((_Atomic uint32_t *)&t->state, memory_order_acquire);
    if (st != SHMQ_RING_ACTIVE && st != SHMQ_RING_ORPHANED) {
        return -ENOENT;
    }
    uint64_t claims = atomic_load_explicit((_Atomic uint64_t *)&t->claims, memory_order_relaxed);
    int mfd = atomic_load_explicit((_Atomic int32_t *)&t->master_fd, memory_order_relaxed);
    if (mfd < 0) {
        return -ENOENT;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)ctl->blk->hdr.creator_pid, mfd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return shmq_error_set(rc, "producer ring %u: open %s: %s", idx, path, strerror(-rc));
    }
    uint64_t ring_size = ctl->blk->hdr.ring_size;
    int rc = ring_check_fd(fd, idx, ring_size);
    if (rc == 0) {
        rc = ring_map_checked(fd, idx, claims, ring_size, m);
    }
    close(fd);
    if (rc == 0 &&
        atomic_load_explicit((_Atomic uint64_t *)&t->claims, memory_order_acquire) != claims) {
        shmq_ring_unmap(m); /* given to another producer while we opened it */
        return -ESTALE;
    }
    return rc;
}

int shmq_ring_map_fd(int fd, uint32_t idx, uint64_t claims, uint64_t ring_size, shmq_ring_map_t *m)
{
    memset(m, 0, sizeof(*m));
    int rc = ring_check_fd(fd, idx, ring_size);
    if (rc == 0) {
        rc = ring_map_checked(fd, idx, claims, ring_size, m);
    }
    close(fd);
    return rc;
}

int shmq_ring_register(const char *root, uint64_t ring_size, int *conn, shmq_ring_map_t *m)
{
    int fd = shmq_reg_connect(root);
    if (fd < 0) {
        return fd;
    }
    shmq_reg_msg_t req = {.type = SHMQ_REG_REGISTER_PRODUCER};
    shmq_reg_msg_t rep;
    int ring_fd = -1;
    int rc = shmq_reg_call(fd, &req, &rep, &ring_fd, SHMQ_REG_TIMEOUT_MS);
    if (rc == 0 && ring_fd < 0) {
        rc = shmq_error_set(SHMQ_E_CORRUPT, "store %s: registration answered without a ring", root);
    }
    if (rc == 0 && (rep.ring >= SHMQ_CTL_MAX_RINGS || rep.ring_size != ring_size)) {
        close(ring_fd);
        rc = shmq_error_set(SHMQ_E_CORRUPT, "store %s: ring %u of %llu bytes: not this store's",
                            root, rep.ring, (unsigned long long)rep.ring_size);
    }
    if (rc == 0) {
        rc = shmq_ring_map_fd(ring_fd, rep.ring, rep.claims, rep.ring_size, m);
    }
    if (rc < 0) {
        close(fd);
        if (rc == SHMQ_E_NOT_FOUND) {
            return shmq_error_set(-EAGAIN, "store %s: master went away while registering", root);
        }
        return rc;
    }
    *conn = fd;
    return 0;
}

void shmq_ring_unmap(shmq_ring_map_t *m)
{
    if (m->r != NULL) {
        munmap(m->r, m->len);
    }
    memset(m, 0, sizeof(*m));
}

/* ---- the writer's judgement -------------------------------------------------------------- */

bool shmq_ring_set_drained(shmq_ctl_t *ctl, uint32_t idx)
{
    uint32_t expect = SHMQ_RING_ORPHANED;
    /* Release: our last head and answers come before the master frees the object. */
    return idx < SHMQ_CTL_MAX_RINGS && atomic_compare_exchange_strong_explicit(
                                           &ctl->blk->rings[idx].state, &expect, SHMQ_RING_DRAINED,
                                           memory_order_acq_rel, memory_order_relaxed);
}

/* ---- completions ------------------------------------------------------------------------- */

bool shmq_ring_complete(shmq_ring_shm_t *r, uint32_t slot, const shmq_ring_slot_t *res)
{
    return shmq_ring_complete_slot(r, slot, res, res->status < 0);
}

int shmq_ring_fail_pending(shmq_ring_shm_t *r, int32_t status, const char *detail)
{
    int n = 0;
    for (int i = 0; i < SHMQ_RING_SLOTS; i++) {
        shmq_ring_slot_t *s = &r->slots[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) == SHMQ_SLOT_PENDING) {
            s->status = status;
            snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
            atomic_store_explicit(&s->state, SHMQ_SLOT_DONE, memory_order_release);
            n++;
        }
    }
    return n;
}

int shmq_ring_slot_error(const shmq_ring_slot_t *s)
{
    int status = s->status;
    char text[SHMQ_RING_DETAIL_MAX];
    /* Copy, then terminate the copy: the text is read from shared memory once. */
    memcpy(text, s->detail, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    if (text[0] == '\0') {
        return shmq_error_set(status, "the store refused the message: %s",
                              shmq_ring_strerror(status));
    }
    return shmq_error_set(status, "%s", text);
}
