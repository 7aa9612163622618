/*
 * Mapped segment files: one segment, created, opened, flushed and closed
 * (see mapped_file.h).  The queue of segments is in mapped_file_queue.c.
 *
 * A segment is created with its whole size allocated (fallocate) before it
 * is mapped, so that a full disk shows up as -ENOSPC here and never as a
 * SIGBUS on a store into the mapping (PITFALLS 2).  Files are only ever
 * unlinked, never shrunk (PITFALLS 3), and the directory is fsynced after a
 * file is created or removed (PITFALLS 9).  A flush failure is returned to
 * the caller and never retried here (PITFALLS 1).
 */
#include "format/mapped_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmq/errors.h"
#include "format/mapped_file_int.h"
#include "format/store_files.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MF_PAGE 4096u

size_t shmq_mf_page_size(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (size_t)pg : MF_PAGE;
}

/* ---- names and small helpers ------------------------------------------- */

/* Record "path: what: reason" for the current errno; returns -errno. */
int shmq_mf_sys_err(const char *path, const char *what)
{
    int e = errno;
    return shmq_error_set(-e, "%s: %s: %s", path, what, strerror(e));
}

/* unlink() where a missing file is fine. */
int shmq_mf_unlink(const char *path)
{
    return unlink(path) == 0 || errno == ENOENT ? 0 : shmq_mf_sys_err(path, "unlink");
}

void shmq_segment_name(int64_t offset, char out[21])
{
    snprintf(out, 21, "%020lld", (long long)offset);
}

bool shmq_segment_parse(const char *name, int64_t *offset)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; name[i] != '\0'; i++) {
        if (i >= 20 || name[i] < '0' || name[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
    }
    if (i != 20) {
        return false;
    }
    if (offset) {
        *offset = (int64_t)v;
    }
    return true;
}

int shmq_mf_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return shmq_mf_sys_err(dir, "open directory");
    }
    int rc = fsync(fd) == 0 ? 0 : shmq_mf_sys_err(dir, "fsync directory");
    close(fd);
    return rc;
}

/* fsync the directory holding path. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash) {
        return shmq_mf_fsync_dir(".");
    }
    if (slash == path) {
        return shmq_mf_fsync_dir("/");
    }
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    return shmq_mf_fsync_dir(dir);
}

int shmq_mf_seg_path(char *out, const char *dir, int64_t offset)
{
    char name[21];
    shmq_segment_name(offset, name);
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
        return shmq_error_set(-ENAMETOOLONG, "segment path too long in %s", dir);
    }
    return 0;
}

/* Write zeros over [off, off + len) of fd through the page cache, `unit` bytes (at most
 * SHMQ_MF_FILL_HUGE) per write: each write puts its pages in the cache as one piece. */
int shmq_mf_zero_fill(int fd, size_t off, size_t len, size_t unit)
{
    /* Not const: in .bss, 2 MiB of the zero page, not of every binary's text. */
    static uint8_t zeros[SHMQ_MF_FILL_HUGE];
    if (unit == 0 || unit > sizeof(zeros)) {
        unit = sizeof(zeros);
    }
    size_t end = off + len;
    while (off < end) {
        size_t n = end - off < unit ? end - off : unit;
        ssize_t w = pwrite(fd, zeros, n, (off_t)off);
        if (w <= 0) {
            return w < 0 ? -errno : -EIO;
        }
        off += (size_t)w;
    }
    return 0;
}

/* Fault every page in writable; pages keep their contents. */
static void prefault(uint8_t *base, size_t size)
{
    if (madvise(base, size, MADV_POPULATE_WRITE) == 0 || errno != EINVAL) {
        return; /* done, or a failure (ENOMEM...) that only costs speed */
    }
    size_t pg = shmq_mf_page_size();
    for (size_t i = 0; i < size; i += pg) {
        volatile uint8_t *p = base + i;
        uint8_t v = *p;
        *p = v;
    }
}

/* Pre-fault bytes [from, to) of mf (from rounded down to a page). */
void shmq_mf_prefault_range(shmq_mapped_file_t *mf, size_t from, size_t to)
{
    from -= from % shmq_mf_page_size();
    if (to > from) {
        prefault(mf->base + from, to - from);
    }
}

/* Pre-fault the first `upto` bytes (PREFAULT, not STAGED) and mlock (MLOCK). */
void shmq_mf_tune_writable(shmq_mapped_file_t *mf, unsigned flags, size_t upto)
{
    if ((flags & (SHMQ_MF_PREFAULT | SHMQ_MF_STAGED)) == SHMQ_MF_PREFAULT) {
        shmq_mf_prefault_range(mf, 0, upto < mf->size ? upto : mf->size);
    }
    if (flags & SHMQ_MF_MLOCK) {
        (void)mlock(mf->base, mf->size); /* best effort: RLIMIT_MEMLOCK may refuse */
    }
}

/* ---- one segment ------------------------------------------------------- */

int shmq_mf_create(shmq_mapped_file_t *mf, const char *dir, int64_t start_offset, size_t size,
                   unsigned flags)
{
    struct stat st;
    bool created = true;
    int rc;

    if (!mf || !dir || start_offset < 0 || size == 0 || (flags & SHMQ_MF_READONLY)) {
        return shmq_error_set(SHMQ_E_ARG, "segment create: bad arguments");
    }
    memset(mf, 0, sizeof(*mf));
    mf->fd = -1;
    rc = shmq_mf_seg_path(mf->path, dir, start_offset);
    if (rc) {
        return rc;
    }
    /* O_EXCL never follows a link; the second open refuses one (PITFALLS 23). */
    int fd = open(mf->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, SHMQ_FILE_MODE);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = shmq_store_file_open(mf->path, O_RDWR, 0);
        if (fd < 0 && fd != -ENOENT) {
            return fd;
        }
        errno = -fd;
    }
    if (fd < 0) {
        return shmq_mf_sys_err(mf->path, "open");
    }
    if (fstat(fd, &st) != 0) {
        rc = shmq_mf_sys_err(mf->path, "fstat");
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > size) {
        rc = shmq_error_set(SHMQ_E_SEGMENT, "segment %s: size %lld, expected %zu", mf->path,
                            (long long)st.st_size, size);
        goto fail;
    }
    /* Always allocate: also fills holes of a sparse file made by someone else. */
    rc = shmq_file_allocate(fd, size);
    if (rc) {
        shmq_error_set(rc, "segment %s: allocating %zu bytes: %s", mf->path, size, strerror(-rc));
        goto fail;
    }
    /* A new (empty) file only: never write over what an existing one holds.  Small
     * files are prepared whole; a big one only its first window when a preparing
     * thread does the rest ahead of the writer (PREPARE), else whole if PREFAULT. */
    size_t ready = 0;
    if (st.st_size == 0) {
        ready = size;
        if (size > WARM_SMALL && (flags & SHMQ_MF_PREPARE)) {
            ready = WARM_WINDOW;
        } else if (size > WARM_SMALL && !(flags & SHMQ_MF_PREFAULT)) {
            ready = 0;
        }
        if (ready > 0 && (rc = shmq_mf_zero_fill(fd, 0, ready, shmq_mf_fill_unit(flags))) < 0) {
            shmq_error_set(rc, "segment %s: writing %zu zero bytes: %s", mf->path, ready,
                           strerror(-rc));
            goto fail;
        }
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = shmq_mf_sys_err(mf->path, "mmap");
        goto fail;
    }
    if (created) {
        rc = shmq_mf_fsync_dir(dir);
        if (rc) {
            munmap(p, size);
            goto fail;
        }
    }
    mf->fd = fd;
    mf->base = p;
    mf->size = size;
    mf->start_offset = start_offset;
    mf->readonly = false;
    mf->syncable = true;
    mf->ready_end = st.st_size == 0 ? ready : 0;
    shmq_mf_tune_writable(mf, flags, st.st_size == 0 ? ready : size);
    if (flags & SHMQ_MF_PREFAULT) {
        mf->ready_end = st.st_size == 0 ? ready : size;
    }
    return 0;

fail:
    close(fd);
    if (created) {
        unlink(mf->path); /* leave no short file behind */
    }
    return rc;
}

int shmq_mf_open(shmq_mapped_file_t *mf, const char *path, int64_t start_offset, size_t size,
                 unsigned flags)
{
    bool ro = (flags & SHMQ_MF_READONLY) != 0;
    bool syncer = ro && (flags & SHMQ_MF_SYNCER) != 0;
    struct stat st;
    int rc;

    if (!mf || !path || size == 0) {
        return shmq_error_set(SHMQ_E_ARG, "segment open: bad arguments");
    }
    memset(mf, 0, sizeof(*mf));
    mf->fd = -1;
    if (snprintf(mf->path, sizeof(mf->path), "%s", path) >= (int)sizeof(mf->path)) {
        return shmq_error_set(-ENAMETOOLONG, "segment path too long: %s", path);
    }
    int fd = shmq_store_file_open(path, ro && !syncer ? O_RDONLY : O_RDWR, 0);
    if (fd == -ENOENT) {
        errno = ENOENT;
        return shmq_mf_sys_err(path, "open");
    }
    if (fd < 0) {
        return fd;
    }
    if (fstat(fd, &st) != 0) {
        rc = shmq_mf_sys_err(path, "fstat");
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
        rc = shmq_error_set(SHMQ_E_SEGMENT, "segment %s: size %lld, expected %zu", path,
                            (long long)st.st_size, size);
        goto fail;
    }
    void *p = mmap(NULL, size, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = shmq_mf_sys_err(path, "mmap");
        goto fail;
    }
    mf->fd = fd;
    mf->base = p;
    mf->size = size;
    mf->start_offset = start_offset;
    mf->readonly = ro;
    mf->syncable = !ro || syncer;
    if (!ro) {
        shmq_mf_tune_writable(mf, flags, size);
    }
    return 0;

fail:
    close(fd);
    return rc;
}

int shmq_mf_flush(shmq_mapped_file_t *mf, size_t from, size_t to, enum shmq_flush_method how)
{
    if (!mf || !mf->base) {
        return -EBADF;
    }
    if (to > mf->size) {
        to = mf->size;
    }
    if (from >= to) {
        return 0;
    }
    if (how == SHMQ_FLUSH_FDATASYNC || !mf->syncable) {
        return fdatasync(mf->fd) == 0 ? 0 : shmq_mf_sys_err(mf->path, "fdatasync");
    }
    size_t a = from - from % shmq_mf_page_size();
    return msync(mf->base + a, to - a, MS_SYNC) == 0 ? 0 : shmq_mf_sys_err(mf->path, "msync");
}

int shmq_mf_open_fixed(shmq_mapped_file_t *mf, const char *dir, const char *name, size_t size,
                       bool check_only)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return shmq_error_set(-ENAMETOOLONG, "path too long: %s/%s", dir, name);
    }
    int fd = shmq_store_file_open(path, check_only ? O_RDONLY : O_RDWR | O_CREAT, SHMQ_FILE_MODE);
    if (fd == -ENOENT) {
        return shmq_error_set(check_only ? SHMQ_E_NOT_FOUND : fd, "%s: %s", path, strerror(ENOENT));
    }
    if (fd < 0) {
        return fd; /* the detail names path */
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return shmq_error_set(e, "%s: fstat: %s", path, strerror(-e));
    }
    if (st.st_size == 0 && !check_only) {
        /* Allocated whole before mapping: a full disk is an error now, never a SIGBUS later. */
        int rc = posix_fallocate(fd, 0, (off_t)size);
        if (rc == 0 && fsync(fd) != 0) {
            rc = errno;
        }
        close(fd);
        if (rc != 0) {
            unlink(path);
            return shmq_error_set(-rc, "%s: allocating %zu bytes: %s", path, size, strerror(rc));
        }
        int drc = shmq_file_fsync_dir(dir);
        if (drc < 0) {
            return drc;
        }
    } else {
        close(fd);
        if ((uint64_t)st.st_size != size) {
            return shmq_error_set(SHMQ_E_SEGMENT, "%s: size %lld, expected %zu", path,
                                  (long long)st.st_size, size);
        }
    }
    return shmq_mf_open(mf, path, 0, size, check_only ? SHMQ_MF_READONLY : 0);
}

void shmq_mf_close(shmq_mapped_file_t *mf)
{
    if (!mf) {
        return;
    }
    shmq_store_file_unmap(&mf->base, mf->size, &mf->fd);
}

int shmq_mf_destroy(shmq_mapped_file_t *mf)
{
    if (!mf) {
        return SHMQ_E_ARG;
    }
    shmq_mf_close(mf);
    int rc = shmq_mf_unlink(mf->path);
    return rc ? rc : fsync_parent(mf->path);
}
