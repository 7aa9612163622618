/*
 * A fault shim for the flush-failure tests (LD_PRELOAD): makes one msync,
 * fdatasync or fsync of one process fail with EIO, as a disk whose
 * writeback failed does, and lets every later call succeed, as Linux does
 * after a failed writeback (the pages are marked clean: PITFALLS 1).  A
 * store that retries and trusts the second call is caught by the tests.
 *
 * Environment (read at the first intercepted call):
 *   SHMQ_FAULT_PROG   program name that fails (e.g. shmq-flusher); others pass through
 *   SHMQ_FAULT_PATH   only calls on files whose path contains this text
 *   SHMQ_FAULT_AFTER  this many matching calls succeed first (default 0)
 *   SHMQ_FAULT_MARK   a file created when the fault fires (tests wait on it)
 *   SHMQ_FAULT_DELAY_MS  instead of failing, the chosen call sleeps this long and
 *                     then succeeds (a slow disk: holds a process inside a step)
 *   SHMQ_FAULT_NOSPACE=FILE  instead: no sync fails, but every fallocate of a
 *                     matching path fails with ENOSPC while FILE exists (a disk
 *                     full for that program's new files until the test removes FILE)
 *   SHMQ_FAULT_WRITE=1  instead: no sync fails, but one pwrite of bytes that do not
 *                     start with zeros fails with EIO (a staged CommitLog write of
 *                     records, not the zeros a new segment is filled with)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int active = -1; /* -1 not decided yet */
static long after;
static long seen;
static int fired;
static const char *want_path;
static int write_mode; /* SHMQ_FAULT_WRITE: a pwrite fails, no sync */

static void decide(void)
{
    if (active >= 0) {
        return;
    }
    active = 0;
    const char *prog = getenv("SHMQ_FAULT_PROG");
    extern char *program_invocation_short_name;
    if (!prog || strcmp(prog, program_invocation_short_name) != 0) {
        return;
    }
    const char *a = getenv("SHMQ_FAULT_AFTER");
    after = a ? strtol(a, NULL, 10) : 0;
    want_path = getenv("SHMQ_FAULT_PATH");
    fired = getenv("SHMQ_FAULT_NOSPACE") != NULL; /* that mode fails no sync */
    write_mode = getenv("SHMQ_FAULT_WRITE") != NULL;
    active = 1;
}

static int path_matches(const char *path)
{
    return !want_path || (path && strstr(path, want_path));
}

/* The file mapped at addr, from /proc/self/maps (the path text, or "" if none). */
static void mapped_path(const void *addr, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) {
        return;
    }
    char line[4096 + 256];
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2) {
            continue;
        }
        if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
            snprintf(out, len, "%s", line + off);
            break;
        }
    }
    fclose(f);
}

static int should_fail(const char *path)
{
    decide();
    if (active != 1 || fired || !path_matches(path)) {
        return 0;
    }
    if (seen++ < after) {
        return 0;
    }
    fired = 1;
    const char *mark = getenv("SHMQ_FAULT_MARK");
    const char *delay = getenv("SHMQ_FAULT_DELAY_MS");
    if (mark) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dprintf(fd, "%s\n", path ? path : "");
            close(fd);
        }
    }
    if (delay) {
        long ms = strtol(delay, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return 0; /* slow, not failed */
    }
    return 1;
}

static void fd_path(int fd, char *path, size_t len)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, len - 1);
    path[n > 0 ? n : 0] = '\0';
}

static int fd_fails(int fd)
{
    char path[4096];
    fd_path(fd, path, sizeof(path));
    return should_fail(path);
}

int fallocate(int fd, int mode, off_t offset, off_t len)
{
    static int (*real)(int, int, off_t, off_t);
    if (!real) {
        real = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate");
    }
    decide();
    const char *full = getenv("SHMQ_FAULT_NOSPACE");
    if (active == 1 && full && access(full, F_OK) == 0) {
        char path[4096];
        fd_path(fd, path, sizeof(path));
        if (path_matches(path)) {
            errno = ENOSPC;
            return -1;
        }
    }
    return real(fd, mode, offset, len);
}

int msync(void *addr, size_t len, int flags)
{
    static int (*real)(void *, size_t, int);
    if (!real) {
        real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    }
    decide();
    if (active == 1 && !fired && !write_mode) {
        char path[4096];
        mapped_path(addr, path, sizeof(path));
        if (should_fail(path)) {
            errno = EIO;
            return -1;
        }
    }
    return real(addr, len, flags);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    decide();
    if (active == 1 && !fired && !write_mode && fd_fails(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    decide();
    if (active == 1 && !fired && !write_mode && fd_fails(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

/* One pwrite of records (bytes not starting with zeros) to a matching path fails. */
static ssize_t pwrite_shim(int fd, const void *buf, size_t n, off_t off, const char *name)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) {
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, name);
    }
    decide();
    uint32_t head = 0;
    if (n >= sizeof(head)) {
        memcpy(&head, buf, sizeof(head));
    }
    if (active == 1 && !fired && write_mode && head != 0 && fd_fails(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite_shim(fd, buf, n, off, "pwrite");
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite_shim(fd, buf, n, off, "pwrite64");
}
