/*
 * The small files at a store's root: `lock` (an OFD lock naming its holder),
 * `abort` (crash marker), `checkpoint` (RocketMQ's 4096-byte file of
 * big-endian longs), the crash-safe whole-file helpers the JSON metadata
 * uses (shmq_file_write_atomic, shmq_file_read_all), and the in-memory
 * tables (offsets, topics, groups) that json_meta.c loads and saves.  See
 * store_files.h and ROCKETMQ-FACTS §9.
 *
 * Every creation, rename and deletion is followed by an fsync of the
 * directory that holds the name (PITFALLS 9).  The lock is one the kernel
 * drops when its holder dies, never a pid test (PITFALLS 11).
 */
#include "store_files.h"

#include "shmq/errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int write_full(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
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
        if (mkdir(buf, 0755) == 0) {
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

static int lock_refused(const char *root, int fd)
{
    char text[128];
    ssize_t n = pread_full(fd, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = '\0';

    long pid = -1;
    long long start = -1;
    bool have = lock_parse_owner(text, &pid, &start);
    if (!have) {
        /* A classic POSIX lock (RocketMQ's JVM) reports its pid; OFD locks report -1. */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0) {
            pid = fl.l_pid;
            have = true;
        }
    }
    if (!have) {
        return shmq_error_set(SHMQ_E_LOCKED, "store %s is locked by another process (pid unknown)",
                              root);
    }
    if (start >= 0) {
        char when[64] = "";
        time_t t = (time_t)start;
        struct tm tm;
        if (localtime_r(&t, &tm) != NULL) {
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        }
        return shmq_error_set(SHMQ_E_LOCKED, "store %s is locked by pid %ld (started %s)", root,
                              pid, when);
    }
    return shmq_error_set(SHMQ_E_LOCKED, "store %s is locked by pid %ld", root, pid);
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
    int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "open %s: %s", path, strerror(-rc));
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
    return stat(path, &st) == 0;
}

int shmq_abort_create(const char *root)
{
    char path[PATH_MAX];
    int rc = path_join(path, sizeof(path), root, "abort");
    if (rc < 0) {
        return rc;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "create %s: %s", path, strerror(-rc));
    }
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld", (long)getpid());
    rc = write_full(fd, text, (size_t)n);
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        rc = -errno;
        return shmq_error_set(rc, "open %s: %s", path, strerror(-rc));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        close(fd);
        return shmq_error_set(rc, "stat %s: %s", path, strerror(-rc));
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

    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            rc = -errno;
            return shmq_error_set(rc, "open %s: %s", path, strerror(-rc));
        }
        /* First write: create it whole through a renamed temp file so that a
         * crash never leaves a checkpoint shorter than 4096 bytes. */
        return shmq_file_write_atomic(path, buf, sizeof(buf));
    }
    /* In place: the five longs lie in the first disk sector, which a device
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
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
        snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak)) {
        return shmq_error_set(-ENAMETOOLONG, "path %s is too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "create %s: %s", tmp, strerror(-rc));
    }
    rc = write_full(fd, data, len);
    /* The new content must be durable before any name points at it. */
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        return shmq_error_set(rc, "write %s: %s", tmp, strerror(-rc));
    }
    /*
     * Crash states: before this rename, path is the old complete version;
     * between the renames, path is missing and path.bak is the old version
     * (loaders fall back to it); after, path is the new version.  If only the
     * second rename reached the disk, path is the new (fsynced) version.
     */
    if (rename(path, bak) != 0 && errno != ENOENT) {
        rc = -errno;
        unlink(tmp);
        return shmq_error_set(rc, "rename %s to %s: %s", path, bak, strerror(-rc));
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        unlink(tmp);
        return shmq_error_set(rc, "rename %s to %s: %s", tmp, path, strerror(-rc));
    }
    return fsync_parent(path);
}

int shmq_file_read_all(const char *path, size_t max_len, char **data, size_t *len)
{
    int rc;

    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT) {
            return rc;
        }
        return shmq_error_set(rc, "open %s: %s", path, strerror(-rc));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        close(fd);
        return shmq_error_set(rc, "stat %s: %s", path, strerror(-rc));
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

/* ---- in-memory metadata tables (persisted by json_meta.c) -------------- */

int shmq_offset_table_set(shmq_offset_table_t *t, const char *key, int32_t queue_id, int64_t offset)
{
    if (strlen(key) >= sizeof(t->entries[0].key)) {
        return shmq_error_set(SHMQ_E_ARG, "offset key \"%.64s...\" is too long", key);
    }
    for (size_t i = 0; i < t->count; i++) {
        shmq_offset_entry_t *e = &t->entries[i];
        if (e->queue_id == queue_id && strcmp(e->key, key) == 0) {
            e->offset = offset;
            return 0;
        }
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        shmq_offset_entry_t *n = realloc(t->entries, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        t->entries = n;
        t->cap = cap;
    }
    shmq_offset_entry_t *e = &t->entries[t->count++];
    memset(e, 0, sizeof(*e));
    strcpy(e->key, key);
    e->queue_id = queue_id;
    e->offset = offset;
    return 0;
}

int shmq_offset_table_get(const shmq_offset_table_t *t, const char *key, int32_t queue_id,
                          int64_t *offset)
{
    for (size_t i = 0; i < t->count; i++) {
        const shmq_offset_entry_t *e = &t->entries[i];
        if (e->queue_id == queue_id && strcmp(e->key, key) == 0) {
            *offset = e->offset;
            return 0;
        }
    }
    return SHMQ_E_NOT_FOUND;
}

void shmq_offset_table_free(shmq_offset_table_t *t)
{
    free(t->entries);
    memset(t, 0, sizeof(*t));
}

int shmq_topic_table_put(shmq_topic_table_t *t, const shmq_topic_config_t *tc)
{
    size_t n = strnlen(tc->name, sizeof(tc->name));
    if (n == 0 || n == sizeof(tc->name)) {
        return shmq_error_set(SHMQ_E_ARG, "topic name empty or longer than %zu bytes",
                              sizeof(tc->name) - 1);
    }
    shmq_topic_config_t *slot = (shmq_topic_config_t *)shmq_topic_table_get(t, tc->name);
    if (slot == NULL) {
        if (t->count == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            shmq_topic_config_t *m = realloc(t->topics, cap * sizeof(*m));
            if (m == NULL) {
                return -ENOMEM;
            }
            t->topics = m;
            t->cap = cap;
        }
        slot = &t->topics[t->count++];
    }
    *slot = *tc;
    t->data_version_counter++;
    return 0;
}

const shmq_topic_config_t *shmq_topic_table_get(const shmq_topic_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->topics[i].name, name) == 0) {
            return &t->topics[i];
        }
    }
    return NULL;
}

int shmq_topic_table_remove(shmq_topic_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->topics[i].name, name) == 0) {
            memmove(&t->topics[i], &t->topics[i + 1], (t->count - i - 1) * sizeof(t->topics[0]));
            t->count--;
            t->data_version_counter++;
            return 0;
        }
    }
    return SHMQ_E_NOT_FOUND;
}

void shmq_topic_table_free(shmq_topic_table_t *t)
{
    free(t->topics);
    memset(t, 0, sizeof(*t));
}

void shmq_group_config_init(shmq_group_config_t *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->consume_enable = true;
    g->consume_broadcast_enable = true;
    g->consume_from_min_enable = true;
    g->consume_message_orderly = false;
    g->retry_max_times = 16;
    g->retry_queue_nums = 1;
    g->broker_id = 0;
    g->which_broker_when_consume_slowly = 1;
}

int shmq_group_table_put(shmq_group_table_t *t, const shmq_group_config_t *g)
{
    size_t n = strnlen(g->name, sizeof(g->name));
    if (n == 0 || n == sizeof(g->name)) {
        return shmq_error_set(SHMQ_E_ARG, "group name empty or longer than %zu bytes",
                              sizeof(g->name) - 1);
    }
    shmq_group_config_t *slot = (shmq_group_config_t *)shmq_group_table_get(t, g->name);
    if (slot == NULL) {
        if (t->count == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            shmq_group_config_t *m = realloc(t->groups, cap * sizeof(*m));
            if (m == NULL) {
                return -ENOMEM;
            }
            t->groups = m;
            t->cap = cap;
        }
        slot = &t->groups[t->count++];
    }
    *slot = *g;
    t->data_version_counter++;
    return 0;
}

const shmq_group_config_t *shmq_group_table_get(const shmq_group_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->groups[i].name, name) == 0) {
            return &t->groups[i];
        }
    }
    return NULL;
}

void shmq_group_table_free(shmq_group_table_t *t)
{
    free(t->groups);
    memset(t, 0, sizeof(*t));
}
