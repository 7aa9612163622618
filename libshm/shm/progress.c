/*
 * The recovery progress object (progress.h): one small POSIX shared-memory
 * object beside the control block, alive while the master recovers.
 */
#include "shm/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

static int progress_name(const char *root, char *out, size_t len)
{
    char base[64];
    int rc = shmq_ctl_name(root, base, sizeof(base));
    if (rc < 0) {
        return rc;
    }
    snprintf(out, len, "%s.recovery", base);
    return 0;
}

int shmq_ctl_progress_create(const char *root, gid_t gid, shmq_ctl_progress_t **out)
{
    char name[80];
    int rc = progress_name(root, name, sizeof(name));
    if (rc < 0) {
        return rc;
    }
    shm_unlink(name); /* a stale one (a master killed during recovery) */
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "shm_open %s: %s", name, strerror(-rc));
    }
    /* Group first, then mode: never open to a group before it has its group. */
    if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) == 0) {
        (void)fchmod(fd, 0640);
    }
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)sizeof(shmq_ctl_progress_t)) == 0) {
        p = mmap(NULL, sizeof(shmq_ctl_progress_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    rc = p == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0) {
        shm_unlink(name);
        return shmq_error_set(rc, "%s: cannot size or map it: %s", name, strerror(-rc));
    }
    shmq_ctl_progress_t *g = p;
    g->size = sizeof(*g);
    g->pid = (int32_t)getpid();
    g->started_ms = shmq_now_ms();
    /* Release: a reader that sees the magic sees the fields above. */
    __atomic_store_n(&g->magic, SHMQ_PROGRESS_MAGIC, __ATOMIC_RELEASE);
    *out = g;
    return 0;
}

void shmq_ctl_progress_remove(const char *root, shmq_ctl_progress_t *p)
{
    if (p == NULL) {
        return;
    }
    char name[80];
    if (progress_name(root, name, sizeof(name)) == 0) {
        shm_unlink(name);
    }
    munmap(p, sizeof(*p));
}

int shmq_ctl_progress_open(const char *root, const shmq_ctl_progress_t **out)
{
    char name[80];
    int rc = progress_name(root, name, sizeof(name));
    if (rc < 0) {
        return rc;
    }
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return SHMQ_E_NOT_FOUND;
    }
    /* Only the store's own user's object is believed: /dev/shm is open to every local
     * user, and another one could have made an object of that name first. */
    struct stat rs, sb;
    void *p = MAP_FAILED;
    if (stat(root, &rs) == 0 && fstat(fd, &sb) == 0 && sb.st_uid == rs.st_uid &&
        sb.st_size == (off_t)sizeof(shmq_ctl_progress_t)) {
        p = mmap(NULL, sizeof(shmq_ctl_progress_t), PROT_READ, MAP_SHARED, fd, 0);
    }
    close(fd);
    if (p == MAP_FAILED) {
        return SHMQ_E_NOT_FOUND;
    }
    const shmq_ctl_progress_t *g = p;
    /* Acquire: pairs with the creator's release of the magic. */
    if (__atomic_load_n(&g->magic, __ATOMIC_ACQUIRE) != SHMQ_PROGRESS_MAGIC ||
        g->size != sizeof(*g)) {
        munmap(p, sizeof(shmq_ctl_progress_t));
        return SHMQ_E_NOT_FOUND;
    }
    *out = g;
    return 0;
}

void shmq_ctl_progress_close(const shmq_ctl_progress_t *p)
{
    if (p != NULL) {
        munmap((void *)p, sizeof(*p));
    }
}
