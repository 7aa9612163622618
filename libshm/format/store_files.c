/*
 * The small files at a store's root: `lock` (an OFD lock naming its holder),
 * `abort` (crash marker), `checkpoint` (RocketMQ's 4096-byte file of
 * big-endian longs), the crash-safe whole-file helpers the JSON metadata
 * uses (shmq_file_write_atomic, shmq_file_read_all), and the small file
 * primitives the mapped formats share (allocate, unmap, change stamps).  The
 * in-memory tables json_meta.c loads and saves are in meta_tables.c.  See
 * store_files.h and ROCKETMQ-FACTS §9.
 *
 * Every creation, rename and deletion is followed by an fsync of the
 * directory that holds the name (PITFALLS 9).  The lock is one the kernel
 * drops when its holder dies, never a pid test (PITFALLS 11).
 *
 * A store may lie in a directory others can write (PITFALLS 23): names are
 * opened with O_NOFOLLOW (links refused), reads with O_NONBLOCK then fstat
 * (a FIFO is refused, never waited on), temporaries with O_EXCL, and
 * nothing created gives others any permission (docs/security.md).
 */
#include "format/store_files.h"

#include "shmq/errors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static int path_join(char *out, size_t len, const char *dir, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        return shmq_error_set(-ENAMETOOLONG, "path %s/%s is too long", dir, name);
    }
    return 0;
}

/* The kind of a non-regular file, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISFIFO(m)) {
        return "a FIFO";
    }
    if (S_ISDIR(m)) {
        return "a directory";
    }
    if (S_ISCHR(m) || S_ISBLK(m)) {
        return "a device";
    }
    if (S_ISSOCK(m)) {
        return "a socket";
    }
    if (S_ISLNK(m)) {
        return "a symbolic link";
    }
    return "not a regular file";
}

int shmq_file_fstat(int fd, const char *path, struct stat *st)
{
    if (fstat(fd, st) != 0) {
        int err = -errno;
        close(fd);
        return shmq_error_set(err, "stat %s: %s", path, strerror(-err));
    }
    return 0;
}

int shmq_store_file_openat(int dirfd, const char *name, const char *path, int flags, mode_t mode)
{
    int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = -errno;
        if (err == -ENOENT) {
            return err; /* callers decide whether a missing file matters */
        }
        if (err == -ELOOP) {
            return shmq_error_set(err, "%s is a symbolic link: shmq follows no link in a store",
                                  path);
        }
        if (err == -ENXIO || err == -EISDIR) {
            /* ENXIO: a FIFO opened for writing with no reader; EISDIR: a directory. */
            return shmq_error_set(-EINVAL, "%s is %s, not a regular file: refused", path,
                                  err == -ENXIO ? "a FIFO" : "a directory");
        }
        return shmq_error_set(err, "open %s: %s", path, strerror(-err));
    }
    struct stat st;
    int rc = shmq_file_fstat(fd, path, &st);
    if (rc < 0) {
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return shmq_error_set(-EINVAL, "%s is %s, not a regular file: refused", path,
                              file_kind(st.st_mode));
    }
    /* A regular file ignores O_NONBLOCK; clear it anyway so that nothing depends on it. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    return fd;
}

int shmq_store_file_open(const char *path, int flags, mode_t mode)
{
    return shmq_store_file_openat(AT_FDCWD, path, path, flags, mode);
}

/* Open the directory holding path (the part before the last '/'); *name gets the last part. */
static int open_parent(const char *path, const char **name)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
        *name = path;
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir)) {
            return shmq_error_set(-ENAMETOOLONG, "path %s is too long", path);
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
        if (n == 0) {
            snprintf(dir, sizeof(dir), "/");
        }
        *name = slash + 1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        return shmq_error_set(err, "open directory %s: %s", dir, strerror(-err));
    }
    return fd;
}

static int pwrite_full(int fd, const void *data, size_t len, off_t off)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Read up to len bytes at off; returns the count read (short only at EOF) or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int shmq_file_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        return shmq_error_set(err, "open directory %s: %s", dir, strerror(-err));
    }
    int rc = 0;
    if (fsync(fd) != 0) {
        rc = -errno;
        shmq_error_set(rc, "fsync directory %s: %s", dir, strerror(-rc));
    }
    close(fd);
    return rc;
}

/* fsync the directory holding path (the part before the last '/', or "."). */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return shmq_file_fsync_dir(".");
    }
    size_t n = (size_t)(slash - path);
    if (n == 0) {
        return shmq_file_fsync_dir("/");
    }
    if (n >= sizeof(dir)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s is too long", path);
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return shmq_file_fsync_dir(dir);
}

int shmq_file_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0) {
        return shmq_error_set(-EINVAL, "empty directory path");
    }
    if (len >= sizeof(buf)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s is too long", path);
    }
    memcpy(buf, path, len + 1);
    /* Create each missing component; the parent's fsync makes the new name durable. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, SHMQ_DIR_MODE) == 0) {
            int rc = fsync_parent(buf);
            if (rc < 0) {
                return rc;
            }
        } else if (errno != EEXIST) {
            int err = -errno;
            return shmq_error_set(err, "mkdir %s: %s", buf, strerror(-err));
        } else {
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                return shmq_error_set(-ENOTDIR, "%s exists and is not a directory", buf);
            }
        }
        buf[i] = saved;
    }
    return 0;
}

/* ---- the store root's owner and modes ------------------------------------ */

/* The directories whose owner and mode shmqd checks, and whose entries it looks at. */
static const char *const top_dirs[] = {"", "commitlog", "consumequeue", "index", "config", NULL};

int shmq_store_check_root(const char *root, void (*warn)(void *arg, const char *path), void *arg,
                          int max_warn)
{
    char path[PATH_MAX];
    int found = 0;
    for (int i = 0; top_dirs[i] != NULL; i++) {
        struct stat st;
        if (top_dirs[i][0] == '\0') {
            snprintf(path, sizeof(path), "%s", root);
        } else if (path_join(path, sizeof(path), root, top_dirs[i]) < 0) {
            return -ENAMETOOLONG;
        }
        /* lstat below the root: a link to a directory elsewhere is refused too. */
        int src = i == 0 ? stat(path, &st) : lstat(path, &st);
        if (src != 0) {
            if (errno == ENOENT && i > 0) {
                continue; /* created later, with SHMQ_DIR_MODE */
            }
            int err = -errno;
            return shmq_error_set(err, "store directory %s: %s", path, strerror(-err));
        }
        if (!S_ISDIR(st.st_mode)) {
            return shmq_error_set(-EPERM, "store directory %s is %s, not a directory: refused",
                                  path, file_kind(st.st_mode));
        }
        if (st.st_uid != geteuid()) {
            return shmq_error_set(-EPERM,
                                  "store directory %s belongs to uid %ld, not to the store's user "
                                  "(uid %ld, which runs shmqd): refused; use a directory this "
                                  "user owns",
                                  path, (long)st.st_uid, (long)geteuid());
        }
        if ((st.st_mode & 0022) != 0) {
            return shmq_error_set(-EPERM,
                                  "store directory %s has mode %04o: writable by %s, who could "
                                  "plant or replace files in it; refused (chmod go-w %s)",
                                  path, (unsigned)(st.st_mode & 07777),
                                  (st.st_mode & 0002) ? "others" : "the group", path);
        }
        if ((st.st_mode & 0004) != 0 && found++ < max_warn && warn != NULL) {
            warn(arg, path);
        }
        DIR *d = opendir(path);
        if (d == NULL) {
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[PATH_MAX];
            struct stat es;
            /* The top-level directories are looked at as directories, once. */
            bool top = false;
            for (int k = 1; i == 0 && top_dirs[k] != NULL; k++) {
                top = top || strcmp(e->d_name, top_dirs[k]) == 0;
            }
            if (top || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                fstatat(dirfd(d), e->d_name, &es, AT_SYMLINK_NOFOLLOW) != 0 ||
                S_ISLNK(es.st_mode) || (es.st_mode & 0004) == 0) {
                continue;
            }
            if (found++ < max_warn && warn != NULL) {
                snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
                warn(arg, p);
            }
        }
        closedir(d);
    }
    return found;
}

/* ---- lock ---------------------------------------------------------------- */

/* Parse "lock pid=<pid> start=<unix time>" written by the holder. */
static bool lock_parse_owner(const char *text, long *pid, long long *start)
{
    const char *p = strstr(text, "pid=");
    if (p == NULL) {
        return false;
    }
    char *end;
    errno = 0;
    long v = strtol(p + 4, &end, 10);
    if (errno != 0 || end == p + 4 || v <= 0) {
        return false;
    }
    *pid = v;
    *start = -1;
    const char *s = strstr(end, "start=");
    if (s != NULL) {
        errno = 0;
        long long t = strtoll(s + 6, &end, 10);
        if (errno == 0 && end != s + 6 && t >= 0) {
            *start = t;
        }
    }
    return true;
}

/* Effective uid of pid from /proc/<pid>/status ("Uid: real effective saved fs"), -1 if unknown. */
static long proc_uid(long pid)
{
    char p[64], line[256];
    long uid = -1;
    snprintf(p, sizeof(p), "/proc/%ld/status", pid);
    FILE *f = fopen(p, "re");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        long r, e;
        if (sscanf(line, "Uid: %ld %ld", &r, &e) == 2) {
            uid = e;
            break;
        }
    }
    fclose(f);
    return uid;
}

/*
 * Does /proc/<pid>/fdinfo/<fd> list a lock?  *store_bytes tells whether one
 * covers byte 0 or 1.  A line reads "lock:\t1: OFDLCK ADVISORY  READ -1
 * fe:00:123 0 0" (start, end; end may be EOF).
 */
static bool fdinfo_locks(const char *fdinfo, bool *store_bytes)
{
    FILE *f = fopen(fdinfo, "re");
    char line[256];
    bool any = false;
    if (f == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "lock:", 5) != 0) {
            continue;
        }
        any = true;
        long long s;
        char *lk = strstr(line, "ADVISORY");
        if (lk == NULL) {
            lk = strstr(line, "MANDATORY");
        }
        if (lk != NULL && sscanf(lk, "%*s %*s %*s %*s %lld", &s) == 1 && s <= 1) {
            *store_bytes = true;
        }
    }
    fclose(f);
    return any;
}

int shmq_store_lock_holders(const char *root, shmq_lock_holder_t *out, int max)
{
    char path[PATH_MAX];
    struct stat lst;
    int found = 0;
    if (path_join(path, sizeof(path), root, "lock") < 0 || lstat(path, &lst) != 0) {
        return 0;
    }
    DIR *proc = opendir("/proc");
    if (proc == NULL) {
        return 0;
    }
    struct dirent *pe;
    while ((pe = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(pe->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) {
            continue;
        }
        char fddir[64];
        snprintf(fddir, sizeof(fddir), "/proc/%ld/fd", pid);
        DIR *fds = opendir(fddir);
        if (fds == NULL) {
            continue;
        }
        struct dirent *fe;
        bool holds = false, store_bytes = false;
        while ((fe = readdir(fds)) != NULL) {
            char p[PATH_MAX];
            struct stat st;
            snprintf(p, sizeof(p), "%s/%s", fddir, fe->d_name);
            if (fe->d_name[0] == '.' || stat(p, &st) != 0 || st.st_ino != lst.st_ino ||
                st.st_dev != lst.st_dev) {
                continue;
            }
            snprintf(p, sizeof(p), "/proc/%ld/fdinfo/%s", pid, fe->d_name);
            holds = fdinfo_locks(p, &store_bytes) || holds;
        }
        closedir(fds);
        if (!holds) {
            continue;
        }
        if (found < max) {
            shmq_lock_holder_t *h = &out[found];
            memset(h, 0, sizeof(*h));
            h->pid = pid;
            h->uid = proc_uid(pid);
            h->store_bytes = store_bytes;
            snprintf(h->comm, sizeof(h->comm), "?");
            char p[64];
            snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
            FILE *f = fopen(p, "re");
            if (f != NULL) {
                if (fgets(h->comm, sizeof(h->comm), f) != NULL) {
                    h->comm[strcspn(h->comm, "\n")] = '\0';
                }
                fclose(f);
            }
        }
        found++;
    }
    closedir(proc);
    return found;
}

/*
 * The store lock is taken: name the processes that hold locks on the file,
 * as /proc shows them.  The pid the file names is only the last holder's:
 * it is quoted as such, never blamed, when no live holder matches it.
 */
static int lock_refused(const char *root, int fd)
{
    char text[128];
    ssize_t n = pread_full(fd, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    long named = -1;
    long long start = -1;
    if (!lock_parse_owner(text, &named, &start)) {
        named = -1;
    }

    shmq_lock_holder_t h[8];
    int count = shmq_store_lock_holders(root, h, 8);
    char who[512] = "";
    size_t used = 0;
    bool named_holds = false;
    for (int i = 0; i < count && i < 8 && used + 80 < sizeof(who); i++) {
        int k = snprintf(who + used, sizeof(who) - used, "%spid %ld (%s, uid %ld)",
                         used ? ", " : "", h[i].pid, h[i].comm, h[i].uid);
        used += k > 0 ? (size_t)k : 0;
        named_holds = named_holds || h[i].pid == named;
    }
    if (count == 0) {
        /* A classic POSIX lock (RocketMQ's JVM) reports its pid; OFD locks report -1. */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0) {
            return shmq_error_set(SHMQ_E_LOCKED, "store %s is locked by pid %ld (uid %ld)", root,
                                  (long)fl.l_pid, proc_uid(fl.l_pid));
        }
        return shmq_error_set(SHMQ_E_LOCKED,
                              "store %s is locked by a process this one cannot see in /proc "
                              "(another pid namespace or user?); the lock file names pid %ld as "
                              "its last holder",
                              root, named);
    }
    if (named_holds && start >= 0) {
        char when[64] = "";
        time_t t = (time_t)start;
        struct tm tm;
        if (localtime_r(&t, &tm) != NULL) {
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        }
        return shmq_error_set(SHMQ_E_LOCKED,
                              "store %s is locked by pid %ld (started %s; holders: %s)", root,
                              named, when, who);
    }
    return shmq_error_set(SHMQ_E_LOCKED, "store %s is locked by %s", root, who);
}

int shmq_store_lock(const char *root, int *fd)
{
    char path[PATH_MAX];
    int rc;

    *fd = -1;
    if ((rc = shmq_file_mkdirs(root)) < 0) {
        return rc;
    }
    if ((rc = path_join(path, sizeof(path), root, "lock")) < 0) {
        return rc;
    }
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "open directory %s: %s", root, strerror(-rc));
    }
    int lfd = shmq_store_file_openat(dfd, "lock", path, O_RDWR | O_CREAT, SHMQ_LOCK_MODE);
    close(dfd);
    if (lfd < 0) {
        return lfd;
    }
    /* Anyone who can open the lock file can lock bytes of it: the store's user alone.  Clients
     * no longer lock it (they register over <root>/shmq.sock), so a group permission left by
     * an older version is refused as well. */
    struct stat st;
    if ((rc = shmq_file_fstat(lfd, path, &st)) < 0) {
        return rc;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
        close(lfd);
        return shmq_error_set(-EPERM,
                              "%s is owned by uid %ld with mode %04o: it must belong to the "
                              "store's user (uid %ld) and give the group and others no access "
                              "(clients no longer lock it: chown, then chmod 0600)",
                              path, (long)st.st_uid, (unsigned)(st.st_mode & 07777),
                              (long)geteuid());
    }
    /* OFD locks belong to this open file description: a second open in the same
     * process conflicts too, and the kernel drops the lock when the holder dies. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(lfd, F_OFD_SETLK, &fl) != 0) {
        rc = -errno;
        if (rc == -EAGAIN || rc == -EACCES) {
            rc = lock_refused(root, lfd);
        } else {
            shmq_error_set(rc, "lock %s: %s", path, strerror(-rc));
        }
        close(lfd);
        return rc;
    }
    /* Name ourselves.  The text starts with "lock", as RocketMQ's file does.
     * Write first, then cut: a refused opener reading concurrently sees a
     * whole line (ours or the previous holder's), never an empty file. */
    char text[96];
    int n = snprintf(text, sizeof(text), "lock pid=%ld start=%lld\n", (long)getpid(),
                     (long long)time(NULL));
    if ((rc = pwrite_full(lfd, text, (size_t)n, 0)) < 0 || ftruncate(lfd, n) != 0 ||
        fdatasync(lfd) != 0) {
        if (rc == 0) {
            rc = -errno;
        }
        shmq_error_set(rc, "write %s: %s", path, strerror(-rc));
        close(lfd);
        return rc;
    }
    *fd = lfd;
    return 0;
}

int shmq_store_lock_renew(const char *root)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    int rc;
    if ((rc = path_join(path, sizeof(path), root, "lock")) < 0 ||
        (rc = path_join(tmp, sizeof(tmp), root, "lock.new")) < 0) {
        return rc;
    }
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "open directory %s: %s", root, strerror(-rc));
    }
    /* The name only: a stale lock.new (or a link planted there) goes, its target stays. */
    if (unlinkat(dfd, "lock.new", 0) != 0 && errno != ENOENT) {
        rc = -errno;
        close(dfd);
        return shmq_error_set(rc, "unlink %s: %s", tmp, strerror(-rc));
    }
    int fd =
        shmq_store_file_openat(dfd, "lock.new", tmp, O_RDWR | O_CREAT | O_EXCL, SHMQ_LOCK_MODE);
    if (fd < 0) {
        close(dfd);
        return fd;
    }
    rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    if (rc == 0 && renameat(dfd, "lock.new", dfd, "lock") != 0) {
        rc = -errno;
    }
    if (rc == 0 && fsync(dfd) != 0) {
        rc = -errno;
    }
    if (rc < 0) {
        unlinkat(dfd, "lock.new", 0);
        shmq_error_set(rc, "replace %s: %s", path, strerror(-rc));
    }
    close(dfd);
    return rc;
}

void shmq_store_unlock(int fd)
{
    if (fd >= 0) {
        close(fd); /* the last close of the description drops the OFD lock */
    }
}

/* ---- abort --------------------------------------------------------------- */

bool shmq_abort_exists(const char *root)
{
    char path[PATH_MAX];
    struct stat st;
    if (path_join(path, sizeof(path), root, "abort") < 0) {
        return false;
    }
    return lstat(path, &st) == 0; /* a link planted there counts (and is refused at create) */
}

int shmq_abort_create(const char *root)
{
    char path[PATH_MAX];
    int rc = path_join(path, sizeof(path), root, "abort");
    if (rc < 0) {
        return rc;
    }
    int fd = shmq_store_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, SHMQ_FILE_MODE);
    if (fd < 0) {
        return fd;
    }
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld", (long)getpid());
    rc = pwrite_full(fd, text, (size_t)n, 0); /* a new, empty file */
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        return shmq_error_set(rc, "write %s: %s", path, strerror(-rc));
    }
    return shmq_file_fsync_dir(root);
}

int shmq_abort_remove(const char *root)
{
    char path[PATH_MAX];
    int rc = path_join(path, sizeof(path), root, "abort");
    if (rc < 0) {
        return rc;
    }
    if (unlink(path) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        rc = -errno;
        return shmq_error_set(rc, "unlink %s: %s", path, strerror(-rc));
    }
    return shmq_file_fsync_dir(root);
}

/* ---- checkpoint ---------------------------------------------------------- */

static void put_be64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(u & 0xff);
        u >>= 8;
    }
}

static int64_t get_be64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) {
        u = (u << 8) | p[i];
    }
    return (int64_t)u;
}

int shmq_checkpoint_read(const char *root, shmq_checkpoint_t *cp)
{
    char path[PATH_MAX];
    uint8_t buf[SHMQ_CHECKPOINT_SIZE];
    int rc = path_join(path, sizeof(path), root, "checkpoint");

    memset(cp, 0, sizeof(*cp));
    if (rc < 0) {
        return rc;
    }
    int fd = shmq_store_file_open(path, O_RDONLY, 0);
    if (fd < 0) {
        if (fd == -ENOENT) {
            return 0;
        }
        return fd;
    }
    struct stat st;
    if ((rc = shmq_file_fstat(fd, path, &st)) < 0) {
        return rc;
    }
    if (st.st_size != SHMQ_CHECKPOINT_SIZE) {
        close(fd);
        return shmq_error_set(SHMQ_E_CORRUPT, "%s: size %lld, expected %d bytes", path,
                              (long long)st.st_size, SHMQ_CHECKPOINT_SIZE);
    }
    ssize_t n = pread_full(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n < 0) {
        return shmq_error_set((int)n, "read %s: %s", path, strerror((int)-n));
    }
    if (n != SHMQ_CHECKPOINT_SIZE) {
        return shmq_error_set(SHMQ_E_CORRUPT, "%s: read %zd bytes, expected %d", path, n,
                              SHMQ_CHECKPOINT_SIZE);
    }
    cp->physic_msg_ts = get_be64(buf + 0);
    cp->logics_msg_ts = get_be64(buf + 8);
    cp->index_msg_ts = get_be64(buf + 16);
    cp->master_flushed = get_be64(buf + 24);
    cp->confirm_phys = get_be64(buf + 32);
    int64_t from = get_be64(buf + 72);
    if (memcmp(buf + 64, SHMQ_CHECKPOINT_CRC_MAGIC, 8) == 0 && from >= 0 &&
        get_be64(buf + 80) == cp->physic_msg_ts) {
        cp->crc_marker = true;
        cp->crc_tail_from = from;
    }
    return 0;
}

int shmq_checkpoint_write(const char *root, const shmq_checkpoint_t *cp)
{
    char path[PATH_MAX];
    uint8_t buf[SHMQ_CHECKPOINT_SIZE];
    int rc = path_join(path, sizeof(path), root, "checkpoint");
    if (rc < 0) {
        return rc;
    }
    memset(buf, 0, sizeof(buf));
    put_be64(buf + 0, cp->physic_msg_ts);
    put_be64(buf + 8, cp->logics_msg_ts);
    put_be64(buf + 16, cp->index_msg_ts);
    put_be64(buf + 24, cp->master_flushed);
    put_be64(buf + 32, cp->confirm_phys);
    if (cp->crc_marker && cp->crc_tail_from >= 0) {
        memcpy(buf + 64, SHMQ_CHECKPOINT_CRC_MAGIC, 8);
        put_be64(buf + 72, cp->crc_tail_from);
        put_be64(buf + 80, cp->physic_msg_ts);
    }

    int fd = shmq_store_file_open(path, O_RDWR, 0);
    if (fd < 0) {
        if (fd != -ENOENT) {
            return fd;
        }
        /* First write: create it whole through a renamed temp file so that a
         * crash never leaves a checkpoint shorter than 4096 bytes. */
        return shmq_file_write_atomic(path, buf, sizeof(buf));
    }
    /* In place: the five longs and the marker lie in the first disk sector, which a device
     * writes atomically; the file is one page so no block is reallocated. */
    rc = pwrite_full(fd, buf, sizeof(buf), 0);
    if (rc == 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 ||
            (st.st_size != SHMQ_CHECKPOINT_SIZE && ftruncate(fd, SHMQ_CHECKPOINT_SIZE) != 0)) {
            rc = -errno;
        }
    }
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        return shmq_error_set(rc, "write %s: %s", path, strerror(-rc));
    }
    return 0;
}

int64_t shmq_checkpoint_min_ts(const shmq_checkpoint_t *cp)
{
    int64_t m = cp->physic_msg_ts < cp->logics_msg_ts ? cp->physic_msg_ts : cp->logics_msg_ts;
    return m <= 3000 ? 0 : m - 3000; /* times come from a file: m may be INT64_MIN */
}

/* ---- atomic file write --------------------------------------------------- */

int shmq_file_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX], bak[PATH_MAX];
    const char *name = NULL;
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
        snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s is too long", path);
    }
    int dfd = open_parent(path, &name);
    if (dfd < 0) {
        return dfd;
    }
    char tname[NAME_MAX + 8], bname[NAME_MAX + 8];
    if (snprintf(tname, sizeof(tname), "%s.tmp", name) >= (int)sizeof(tname) ||
        snprintf(bname, sizeof(bname), "%s.bak", name) >= (int)sizeof(bname)) {
        close(dfd);
        return shmq_error_set(-ENAMETOOLONG, "name %s is too long", name);
    }
    /* A stale temp (or a link planted there): remove the name only, then create it O_EXCL. */
    if (unlinkat(dfd, tname, 0) != 0 && errno != ENOENT) {
        rc = -errno;
        close(dfd);
        return shmq_error_set(rc, "unlink %s: %s", tmp, strerror(-rc));
    }
    int fd = shmq_store_file_openat(dfd, tname, tmp, O_WRONLY | O_CREAT | O_EXCL, SHMQ_FILE_MODE);
    if (fd < 0) {
        close(dfd);
        return fd;
    }
    rc = pwrite_full(fd, data, len, 0); /* a new, empty file */
    /* The new content must be durable before any name points at it. */
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        unlinkat(dfd, tname, 0);
        close(dfd);
        return shmq_error_set(rc, "write %s: %s", tmp, strerror(-rc));
    }
    /*
     * The old version becomes path.bak through a second name (a hard link,
     * renamed over the old .bak), and only then the new one replaces path in
     * one rename: path always names a complete version, for readers at any
     * moment (no window where it is missing) and in every crash state.
     * Neither link nor rename follows a link: one planted at path or
     * path.bak is what moves or is replaced, never its target.
     */
    char lname[NAME_MAX + 16];
    snprintf(lname, sizeof(lname), "%s.bak.tmp", name);
    if (unlinkat(dfd, lname, 0) != 0 && errno != ENOENT) {
        rc = -errno;
    } else if (linkat(dfd, name, dfd, lname, 0) == 0) {
        rc = renameat(dfd, lname, dfd, bname) == 0 ? 0 : -errno;
    } else {
        rc = errno == ENOENT ? 0 : -errno; /* the first version: no old one */
    }
    if (rc < 0) {
        unlinkat(dfd, lname, 0);
        unlinkat(dfd, tname, 0);
        close(dfd);
        return shmq_error_set(rc, "keep %s as %s: %s", path, bak, strerror(-rc));
    }
    if (renameat(dfd, tname, dfd, name) != 0) {
        rc = -errno;
        unlinkat(dfd, tname, 0);
        close(dfd);
        return shmq_error_set(rc, "rename %s to %s: %s", tmp, path, strerror(-rc));
    }
    rc = 0;
    if (fsync(dfd) != 0) {
        rc = -errno;
        shmq_error_set(rc, "fsync the directory of %s: %s", path, strerror(-rc));
    }
    close(dfd);
    return rc;
}

/* Read the whole file fd (named path) into a malloc'd buffer; closes fd. */
static int read_fd_all(int fd, const char *path, size_t max_len, char **data, size_t *len)
{
    int rc;
    struct stat st;
    if ((rc = shmq_file_fstat(fd, path, &st)) < 0) {
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return shmq_error_set(-EINVAL, "%s is not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max_len) {
        close(fd);
        return shmq_error_set(-EFBIG, "%s: size %lld exceeds the limit of %zu bytes", path,
                              (long long)st.st_size, max_len);
    }
    /* Read one byte more than the size seen, to notice a file that grew. */
    size_t want = (size_t)st.st_size;
    char *buf = malloc(want + 2);
    if (buf == NULL) {
        close(fd);
        return shmq_error_set(-ENOMEM, "read %s: out of memory", path);
    }
    ssize_t n = pread_full(fd, buf, want + 1, 0);
    close(fd);
    if (n < 0) {
        free(buf);
        return shmq_error_set((int)n, "read %s: %s", path, strerror((int)-n));
    }
    if ((size_t)n > want) {
        free(buf);
        return shmq_error_set(-EAGAIN, "%s changed while being read", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = (size_t)n;
    return 0;
}

int shmq_file_read_all(const char *path, size_t max_len, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO is refused after fstat instead of blocking the open. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT) {
            return rc;
        }
        return shmq_error_set(rc, "open %s: %s", path, strerror(-rc));
    }
    return read_fd_all(fd, path, max_len, data, len);
}

int shmq_store_file_read_all(const char *path, size_t max_len, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = shmq_store_file_open(path, O_RDONLY, 0);
    if (fd < 0) {
        return fd;
    }
    return read_fd_all(fd, path, max_len, data, len);
}

int shmq_file_allocate(int fd, int64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0) {
        return 0;
    }
    /* A file system without fallocate: the C library writes the blocks. */
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        return -errno;
    }
    int e = posix_fallocate(fd, 0, (off_t)size);
    return e ? -e : 0;
}

void shmq_store_file_unmap(uint8_t **base, size_t size, int *fd)
{
    if (*base != NULL) {
        munmap(*base, size);
        *base = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

bool shmq_file_stamp_update(shmq_file_stamp_t *s, bool known, const char *path)
{
    struct stat st;
    if (path == NULL || lstat(path, &st) != 0) {
        memset(&st, 0, sizeof(st));
    }
    if (known && s->dev == st.st_dev && s->ino == st.st_ino && s->size == st.st_size &&
        s->mtime.tv_sec == st.st_mtim.tv_sec && s->mtime.tv_nsec == st.st_mtim.tv_nsec) {
        return false;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    return true;
}

bool shmq_offset_key_split(const shmq_offset_entry_t *o, char key[512], char **group)
{
    memcpy(key, o->key, sizeof(o->key));
    key[sizeof(o->key) - 1] = '\0';
    char *at = strchr(key, '@');
    if (at == NULL) {
        return false;
    }
    *at = '\0';
    *group = at + 1;
    return true;
}
