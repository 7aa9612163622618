/*
 * Fence files and the control block's fence word (see fence.h).
 */
#include "store/fence.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmq/errors.h"
#include "format/store_files.h"

#define FENCE_FILE_MAX 4096

static const char *const part_names[SHMQ_FENCE_PARTS] = {
    [SHMQ_FENCE_NONE] = "none",
    [SHMQ_FENCE_COMMITLOG] = "commitlog",
    [SHMQ_FENCE_CONSUMEQUEUE] = "consumequeue",
    [SHMQ_FENCE_INDEX] = "index",
    [SHMQ_FENCE_TIMER] = "timer",
};

const char *shmq_fence_part_name(enum shmq_fence_part part)
{
    return (unsigned)part < SHMQ_FENCE_PARTS ? part_names[part] : "none";
}

static int fence_path(char *out, size_t len, const char *root, enum shmq_fence_part part)
{
    if (snprintf(out, len, "%s/fence-%s", root, shmq_fence_part_name(part)) >= (int)len) {
        return shmq_error_set(-ENAMETOOLONG, "store path too long: %s", root);
    }
    return 0;
}

int shmq_fence_record(const char *root, enum shmq_fence_part part, int64_t durable, int err)
{
    char path[PATH_MAX];
    if (part <= SHMQ_FENCE_NONE || part >= SHMQ_FENCE_PARTS || durable < 0) {
        return shmq_error_set(SHMQ_E_ARG, "fence: bad part %d or durable point %" PRId64, (int)part,
                              durable);
    }
    int rc = fence_path(path, sizeof(path), root, part);
    if (rc < 0) {
        return rc;
    }
    if (access(path, F_OK) == 0) {
        return 0; /* the first failure's point stands */
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char buf[512];
    int n =
        snprintf(buf, sizeof(buf),
                 "part %s\ndurable %" PRId64 "\nerrno %d\nerror %s\ntime_ms %" PRId64 "\npid %d\n",
                 shmq_fence_part_name(part), durable, err < 0 ? -err : err,
                 shmq_strerror(err < 0 ? err : -EIO),
                 (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, (int)getpid());
    return shmq_file_write_atomic(path, buf, (size_t)n);
}

/* Parse one fence file's text. */
static int parse(const char *path, const char *text, int64_t *durable, int32_t *error)
{
    bool have = false;
    *error = -EIO;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        long long v;
        char *end;
        if (strncmp(l, "durable ", 8) == 0) {
            errno = 0;
            v = strtoll(l + 8, &end, 10);
            if (errno || end == l + 8 || (*end != '\n' && *end != '\0') || v < 0) {
                break;
            }
            *durable = v;
            have = true;
        } else if (strncmp(l, "errno ", 6) == 0) {
            v = strtoll(l + 6, &end, 10);
            if (v > 0 && v < 4096) {
                *error = (int32_t)-v;
            }
        }
    }
    if (!have) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "%s: no valid 'durable' line; the store was fenced after a failed "
                              "flush and the point to cut at is unknown",
                              path);
    }
    return 0;
}

int shmq_fence_read(const char *root, shmq_fences_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int p = SHMQ_FENCE_COMMITLOG; p < SHMQ_FENCE_PARTS; p++) {
        char path[PATH_MAX];
        int rc = fence_path(path, sizeof(path), root, (enum shmq_fence_part)p);
        if (rc < 0) {
            return rc;
        }
        char *text = NULL;
        size_t len = 0;
        rc = shmq_file_read_all(path, FENCE_FILE_MAX, &text, &len);
        if (rc == -ENOENT) {
            continue;
        }
        if (rc < 0) {
            return rc;
        }
        rc = parse(path, text, &out->durable[p], &out->error[p]);
        free(text);
        if (rc < 0) {
            return rc;
        }
        out->present[p] = true;
        out->any = true;
    }
    return 0;
}

int shmq_fence_clear(const char *root)
{
    bool removed = false;
    for (int p = SHMQ_FENCE_COMMITLOG; p < SHMQ_FENCE_PARTS; p++) {
        char path[PATH_MAX], bak[PATH_MAX + 8];
        int rc = fence_path(path, sizeof(path), root, (enum shmq_fence_part)p);
        if (rc < 0) {
            return rc;
        }
        snprintf(bak, sizeof(bak), "%s.bak", path);
        for (int i = 0; i < 2; i++) {
            const char *f = i ? bak : path;
            if (unlink(f) == 0) {
                removed = true;
            } else if (errno != ENOENT) {
                rc = -errno;
                return shmq_error_set(rc, "cannot remove %s: %s", f, strerror(-rc));
            }
        }
    }
    return removed ? shmq_file_fsync_dir(root) : 0;
}
