/*
 * Segment queues (MappedFileQueue, see mapped_file.h): the ordered
 * segments of one stream in a directory, loaded, extended, truncated and
 * trimmed from the front.  The single segment is in mapped_file.c.
 *
 * The preparing thread of a queue creates the next segment ahead of the
 * writer (PITFALLS 15).  It shares only prep_* fields with the writer, under
 * prep_lock; the segment list itself belongs to the writer thread.
 */
#include "format/mapped_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "format/mapped_file_int.h"
#include "format/store_files.h"
#include "shmq/errors.h"

/* ---- segment queue ----------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char buf[PATH_MAX];

    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
        return shmq_error_set(-ENAMETOOLONG, "directory name too long: %s", dir);
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(buf, SHMQ_DIR_MODE) != 0 && errno != EEXIST) {
            return shmq_mf_sys_err(buf, "mkdir");
        }
        *p = '/';
    }
    return mkdir(buf, SHMQ_DIR_MODE) == 0 || errno == EEXIST ? 0 : shmq_mf_sys_err(buf, "mkdir");
}

/*
 * The segs array is never freed while the queue is open: a grown copy links
 * to the one it replaces, so that a reader thread still indexing the old
 * array (shmq_mfq_find during an append) reads valid memory.
 */
struct seg_array {
    struct seg_array *prev;
    shmq_mapped_file_t *v[];
};

static struct seg_array *seg_array_of(shmq_mapped_file_t **segs)
{
    return (struct seg_array *)((char *)segs - offsetof(struct seg_array, v));
}

static int mfq_push(shmq_mfq_t *q, shmq_mapped_file_t *mf)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct seg_array *a = malloc(sizeof(*a) + cap * sizeof(a->v[0]));
        if (!a) {
            return -ENOMEM;
        }
        a->prev = q->segs ? seg_array_of(q->segs) : NULL;
        if (q->count) {
            memcpy(a->v, q->segs, q->count * sizeof(a->v[0]));
        }
        /* release: the copied entries are visible before the new array */
        __atomic_store_n(&q->segs, a->v, __ATOMIC_RELEASE);
        q->cap = cap;
    }
    q->segs[q->count] = mf;
    /* release: the entry is visible before the count that covers it */
    __atomic_store_n(&q->count, q->count + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Segment count and array as a concurrent reader may use them. */
static size_t mfq_snapshot(const shmq_mfq_t *q, shmq_mapped_file_t *const **segs)
{
    /* acquire: pairs with mfq_push, the array holds at least this many entries */
    size_t n = __atomic_load_n(&q->count, __ATOMIC_ACQUIRE);
    *segs = __atomic_load_n(&q->segs, __ATOMIC_ACQUIRE);
    return n;
}

/* Unmap and free a segment taken out of segs; kept pointers to it are stale from now on. */
static void mfq_unmap(shmq_mfq_t *q, shmq_mapped_file_t *mf)
{
    shmq_mf_close(mf);
    free(mf);
    q->unmapped++;
}

static int cmp_off(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted start offsets of the 20-digit files in q->dir; removes *.tmp when writable. */
static int mfq_list(shmq_mfq_t *q, int64_t **out, size_t *n_out)
{
    bool ro = (q->flags & SHMQ_MF_READONLY) != 0;
    int64_t *offs = NULL, off;
    size_t n = 0, cap = 0;
    struct dirent *de;

    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(q->dir);
    if (!d) {
        return errno == ENOENT && ro ? 0 : shmq_mf_sys_err(q->dir, "opendir");
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            if (!ro) {
                unlinkat(dirfd(d), de->d_name, 0);
            }
            continue;
        }
        if (!shmq_segment_parse(de->d_name, &off)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            int64_t *nn = realloc(offs, cap * sizeof(*nn));
            if (!nn) {
                free(offs);
                closedir(d);
                return -ENOMEM;
            }
            offs = nn;
        }
        offs[n++] = off;
    }
    closedir(d);
    if (n > 1) {
        qsort(offs, n, sizeof(*offs), cmp_off);
    }
    *out = offs;
    *n_out = n;
    return 0;
}

/*
 * Check and map the segments of q->dir.  tolerant: a trailing file of the
 * wrong size is skipped (a reader racing with the writer's creation).
 */
static int mfq_load(shmq_mfq_t *q, bool tolerant)
{
    bool ro = (q->flags & SHMQ_MF_READONLY) != 0;
    char path[PATH_MAX];
    int64_t *offs;
    size_t n;
    struct stat st;

    int rc = mfq_list(q, &offs, &n);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        rc = shmq_mf_seg_path(path, q->dir, offs[i]);
        if (rc) {
            goto out;
        }
        if (lstat(path, &st) != 0) {
            rc = shmq_mf_sys_err(path, "stat");
            goto out;
        }
        if (S_ISLNK(st.st_mode)) {
            /* Never followed, not even to its size (PITFALLS 23). */
            rc = shmq_error_set(-ELOOP, "%s is a symbolic link: shmq follows no link in a store",
                                path);
            goto out;
        }
        bool last = i + 1 == n;
        if (last && st.st_size == 0) {
            n--;
            if (!ro && (rc = shmq_mf_unlink(path)) == 0) {
                rc = shmq_mf_fsync_dir(q->dir);
            }
            if (rc) {
                goto out;
            }
            break;
        }
        if ((uint64_t)st.st_size != q->seg_size || !S_ISREG(st.st_mode)) {
            if (last && tolerant) {
                n--;
                break;
            }
            rc = shmq_error_set(SHMQ_E_SEGMENT, "segment %s: size %lld, expected %zu", path,
                                (long long)st.st_size, q->seg_size);
            goto out;
        }
        if (offs[i] % (int64_t)q->seg_size != 0) {
            rc = shmq_error_set(SHMQ_E_SEGMENT,
                                "segment %s: start offset %lld is not a multiple of %zu", path,
                                (long long)offs[i], q->seg_size);
            goto out;
        }
        if (i > 0 && offs[i] != offs[i - 1] + (int64_t)q->seg_size) {
            rc = shmq_error_set(
                SHMQ_E_SEGMENT, "segment %s: gap, previous segment starts at %lld, expected %lld",
                path, (long long)offs[i - 1], (long long)(offs[i - 1] + (int64_t)q->seg_size));
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned fl = ro ? q->flags & (SHMQ_MF_READONLY | SHMQ_MF_SYNCER) : 0;
        shmq_mapped_file_t *mf = malloc(sizeof(*mf));
        if (!mf) {
            rc = -ENOMEM;
            goto out;
        }
        shmq_mf_seg_path(path, q->dir, offs[i]);
        rc = shmq_mf_open(mf, path, offs[i], q->seg_size, fl);
        if (rc == 0 && !ro && i + 1 == n) {
            /* The writer appends into the last segment: give it all its blocks. */
            rc = shmq_file_allocate(mf->fd, q->seg_size);
            if (rc) {
                shmq_error_set(rc, "%s: allocating: %s", path, strerror(-rc));
            } else if ((q->flags & (SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE)) ==
                       (SHMQ_MF_PREFAULT | SHMQ_MF_PREPARE)) {
                /* Prepared a window at a time ahead of the writer once it says where it
                 * writes (shmq_mfq_prefault_ahead), not whole here: opening stays fast. */
                shmq_mf_tune_writable(mf, q->flags & SHMQ_MF_MLOCK, 0);
            } else {
                shmq_mf_tune_writable(mf, q->flags, q->seg_size);
            }
        }
        if (rc == 0) {
            rc = mfq_push(q, mf);
        }
        if (rc) {
            shmq_mf_close(mf);
            free(mf);
            goto out;
        }
    }
out:
    free(offs);
    return rc;
}

/* The flags a segment q creates now gets: its own, and SHMQ_MF_FINE while its writer is slow
 * (SHMQ_MF_HUGE_RATE).  Under prep_lock. */
static unsigned create_flags(const shmq_mfq_t *q)
{
    unsigned fl = q->flags & (SHMQ_MF_PREFAULT | SHMQ_MF_MLOCK | SHMQ_MF_PREPARE | SHMQ_MF_FINE |
                              SHMQ_MF_STAGED);
    return q->fill_huge ? fl : fl | SHMQ_MF_FINE;
}

/* The zero-fill unit of q's next pieces.  Under prep_lock. */
static size_t fill_unit(const shmq_mfq_t *q)
{
    return shmq_mf_fill_unit(create_flags(q));
}

static bool warm_pending(const shmq_mfq_t *q)
{
    return q->warm_seg != NULL && q->warm_pos < q->warm_end;
}

/* Pre-fault [from, to) of w for its writer, unless it writes with pwrite (SHMQ_MF_STAGED). */
static void warm_fault(const shmq_mfq_t *q, shmq_mapped_file_t *w, size_t from, size_t to)
{
    if (!(q->flags & SHMQ_MF_STAGED)) {
        shmq_mf_prefault_range(w, from, to);
    }
}

/*
 * Prepare [from, to) of w, beyond the writer: zero-fill (unit bytes a write), then pre-fault.
 * The writer announces how far it may write (write_horizon, see
 * shmq_mfq_write_horizon) before it writes; this thread claims the chunk
 * (zero_claim) before it looks at the horizon.  Both are sequentially
 * consistent, so either this thread sees the writer's horizon and leaves
 * the bytes below it alone, or the writer sees the claim and waits until
 * the zeros are in (Dekker).  Returns the end of what is now prepared (or
 * skipped because the writer is already there).
 */
static size_t warm_step(shmq_mfq_t *q, shmq_mapped_file_t *w, size_t from, size_t to, size_t unit)
{
    int64_t base = w->start_offset;
    atomic_store_explicit(&q->zero_claim, base + (int64_t)from, memory_order_seq_cst);
    int64_t horizon = atomic_load_explicit(&q->write_horizon, memory_order_seq_cst);
    if (horizon > base + (int64_t)from) {
        /* The writer may write here: pre-fault only (it keeps contents), from its horizon. */
        atomic_store_explicit(&q->zero_claim, NO_CLAIM, memory_order_release);
        warm_fault(q, w, from, to);
        return to;
    }
    if (shmq_mf_zero_fill(w->fd, from, to - from, unit) < 0) {
        /* Only speed is lost: the writer's own faults allocate the pages. */
        atomic_store_explicit(&q->zero_claim, NO_CLAIM, memory_order_release);
        return to;
    }
    /* Release: the zeros are in the page cache before the writer may write there. */
    atomic_store_explicit(&q->zero_claim, NO_CLAIM, memory_order_release);
    warm_fault(q, w, from, to);
    return to;
}

static void *mfq_prep_main(void *arg)
{
    shmq_mfq_t *q = arg;

    pthread_mutex_lock(&q->prep_lock);
    for (;;) {
        while (!q->prep_stop && q->prep_want < 0 && !warm_pending(q)) {
            pthread_cond_wait(&q->prep_cond, &q->prep_lock);
        }
        if (q->prep_stop) {
            break;
        }
        if (q->prep_want < 0) {
            /* One step of the window ahead of the writer; a segment to create goes first. */
            shmq_mapped_file_t *w = q->warm_seg;
            size_t from = q->warm_pos;
            /* Up to the next multiple of WARM_CHUNK: huge pieces start where a huge page does. */
            size_t to = (from / WARM_CHUNK + 1) * WARM_CHUNK;
            to = to < q->warm_end ? to : q->warm_end;
            size_t unit = fill_unit(q);
            q->warm_busy = true;
            pthread_mutex_unlock(&q->prep_lock);
            size_t done = warm_step(q, w, from, to, unit);
            pthread_mutex_lock(&q->prep_lock);
            q->warm_busy = false;
            if (q->warm_seg == w) {
                q->warm_pos = done;
                if (done > w->ready_end) {
                    w->ready_end = done;
                }
            }
            pthread_cond_broadcast(&q->prep_cond);
            continue;
        }
        int64_t off = q->prep_want;
        q->prep_want = -1;
        if (q->prep_ready && q->prep_ready->start_offset == off) {
            pthread_cond_broadcast(&q->prep_cond);
            continue;
        }
        shmq_mapped_file_t *stale = q->prep_ready;
        q->prep_ready = NULL;
        q->prep_busy = off;
        unsigned cflags = create_flags(q);
        pthread_mutex_unlock(&q->prep_lock);

        if (stale) {
            /*
             * Not reachable through the API (prepare only takes the end of
             * the queue, get_or_create consumes or cancels it, truncate
             * removes it).  Unmap only: never unlink a file that might be
             * installed.
             */
            shmq_mf_close(stale);
            free(stale);
        }
        shmq_mapped_file_t *mf = malloc(sizeof(*mf));
        int rc = mf ? shmq_mf_create(mf, q->dir, off, q->seg_size, cflags) : -ENOMEM;

        pthread_mutex_lock(&q->prep_lock);
        q->prep_busy = -1;
        q->prep_err = rc; /* the latest attempt's result */
        if (rc == 0) {
            q->prep_ready = mf;
        } else {
            free(mf);
        }
        pthread_cond_broadcast(&q->prep_cond);
    }
    pthread_mutex_unlock(&q->prep_lock);
    return NULL;
}

int shmq_mfq_open(shmq_mfq_t *q, const char *dir, size_t seg_size, unsigned flags)
{
    bool ro = (flags & SHMQ_MF_READONLY) != 0;
    int rc;

    if (!q || !dir) {
        return shmq_error_set(SHMQ_E_ARG, "segment queue open: bad arguments");
    }
    memset(q, 0, sizeof(*q));
    if (seg_size == 0 || seg_size > (size_t)INT64_MAX / 4) {
        return shmq_error_set(SHMQ_E_ARG, "segment queue %s: bad segment size %zu", dir, seg_size);
    }
    if (snprintf(q->dir, sizeof(q->dir), "%s", dir) >= (int)sizeof(q->dir) - 22) {
        return shmq_error_set(-ENAMETOOLONG, "directory name too long: %s", dir);
    }
    q->seg_size = seg_size;
    q->flags = ro ? (flags & (SHMQ_MF_READONLY | SHMQ_MF_SYNCER)) : flags;
    q->prep_want = -1;
    q->prep_busy = -1;
    atomic_init(&q->zero_claim, NO_CLAIM);
    atomic_init(&q->write_horizon, 0);
    q->horizon_mine = 0;
    pthread_mutex_init(&q->prep_lock, NULL);
    pthread_cond_init(&q->prep_cond, NULL);
    q->is_open = true;
    if (!ro) {
        rc = mkdir_p(dir);
        if (rc) {
            goto fail;
        }
    }
    rc = mfq_load(q, false);
    if (rc) {
        goto fail;
    }
    if (q->flags & SHMQ_MF_PREPARE) {
        rc = -pthread_create(&q->prep_thread, NULL, mfq_prep_main, q);
        if (rc) {
            shmq_error_set(rc, "segment queue %s: cannot start preparing thread", dir);
            goto fail;
        }
        q->prep_running = true;
    }
    return 0;

fail:
    shmq_mfq_close(q);
    return rc;
}

void shmq_mfq_close(shmq_mfq_t *q)
{
    if (!q || !q->is_open) {
        return;
    }
    if (q->prep_running) {
        pthread_mutex_lock(&q->prep_lock);
        q->prep_stop = true;
        pthread_cond_broadcast(&q->prep_cond);
        pthread_mutex_unlock(&q->prep_lock);
        pthread_join(q->prep_thread, NULL);
        q->prep_running = false;
    }
    if (q->prep_ready) {
        /* A prepared file stays: fully sized zeros read as the end of the log. */
        shmq_mf_close(q->prep_ready);
        free(q->prep_ready);
        q->prep_ready = NULL;
    }
    for (size_t i = 0; i < q->count; i++) {
        mfq_unmap(q, q->segs[i]);
    }
    for (struct seg_array *a = q->segs ? seg_array_of(q->segs) : NULL, *prev; a; a = prev) {
        prev = a->prev;
        free(a);
    }
    q->segs = NULL;
    q->count = q->cap = 0;
    pthread_cond_destroy(&q->prep_cond);
    pthread_mutex_destroy(&q->prep_lock);
    q->is_open = false;
}

shmq_mapped_file_t *shmq_mfq_find(const shmq_mfq_t *q, int64_t off)
{
    shmq_mapped_file_t *const *segs;
    size_t n = q ? mfq_snapshot(q, &segs) : 0;
    if (n == 0 || off < segs[0]->start_offset) {
        return NULL;
    }
    uint64_t idx = (uint64_t)(off - segs[0]->start_offset) / q->seg_size;
    return idx < n ? segs[idx] : NULL;
}

shmq_mapped_file_t *shmq_mfq_first(const shmq_mfq_t *q)
{
    shmq_mapped_file_t *const *segs;
    size_t n = q ? mfq_snapshot(q, &segs) : 0;
    return n ? segs[0] : NULL;
}

shmq_mapped_file_t *shmq_mfq_last(const shmq_mfq_t *q)
{
    shmq_mapped_file_t *const *segs;
    size_t n = q ? mfq_snapshot(q, &segs) : 0;
    return n ? segs[n - 1] : NULL;
}

int64_t shmq_mfq_min_offset(const shmq_mfq_t *q)
{
    const shmq_mapped_file_t *mf = shmq_mfq_first(q);
    return mf ? mf->start_offset : 0;
}

int64_t shmq_mfq_end_offset(const shmq_mfq_t *q)
{
    const shmq_mapped_file_t *mf = shmq_mfq_last(q);
    return mf ? mf->start_offset + (int64_t)q->seg_size : 0;
}

/* Is start_offset the place where the next segment goes? */
static bool mfq_next_place(const shmq_mfq_t *q, int64_t start_offset)
{
    if (q->count) {
        return start_offset == shmq_mfq_end_offset(q);
    }
    return start_offset >= 0 && start_offset % (int64_t)q->seg_size == 0;
}

void shmq_mfq_prepare(shmq_mfq_t *q, int64_t start_offset)
{
    if (!q || !q->prep_running || !mfq_next_place(q, start_offset)) {
        return;
    }
    pthread_mutex_lock(&q->prep_lock);
    if (q->prep_busy != start_offset &&
        !(q->prep_ready && q->prep_ready->start_offset == start_offset)) {
        q->prep_want = start_offset;
        pthread_cond_broadcast(&q->prep_cond);
    }
    pthread_mutex_unlock(&q->prep_lock);
}

int shmq_mfq_prepare_wait(shmq_mfq_t *q)
{
    int rc;

    if (!q || !q->prep_running) {
        return 0;
    }
    pthread_mutex_lock(&q->prep_lock);
    while (q->prep_want >= 0 || q->prep_busy >= 0) {
        pthread_cond_wait(&q->prep_cond, &q->prep_lock);
    }
    rc = q->prep_err;
    pthread_mutex_unlock(&q->prep_lock);
    return rc;
}

void shmq_mfq_prefault_ahead(shmq_mfq_t *q, int64_t pos)
{
    if (!q || !q->prep_running || !(q->flags & SHMQ_MF_PREFAULT)) {
        return;
    }
    shmq_mapped_file_t *mf = shmq_mfq_find(q, pos);
    if (!mf) {
        return;
    }
    size_t rel = (size_t)(pos - mf->start_offset);
    size_t end = rel + WARM_WINDOW < mf->size ? rel + WARM_WINDOW : mf->size;
    int64_t now = shmq_mono_ns();
    pthread_mutex_lock(&q->prep_lock);
    /* The writer's rate since its previous ask (CL_WARM_EVERY bytes ago for the CommitLog)
     * decides the pieces of what is prepared from now on. */
    if (q->rate_ns != 0 && pos > q->rate_pos && now > q->rate_ns) {
        q->fill_huge = (double)(pos - q->rate_pos) * 1e9 / (double)(now - q->rate_ns) >=
                       (double)SHMQ_MF_HUGE_RATE;
    }
    q->rate_pos = pos;
    q->rate_ns = now;
    size_t from = rel > mf->ready_end ? rel : mf->ready_end;
    if (q->warm_seg == mf && q->warm_pos > from) {
        from = q->warm_pos;
    }
    if (from < end) {
        q->warm_seg = mf;
        q->warm_pos = from;
        q->warm_end = end;
        pthread_cond_broadcast(&q->prep_cond);
    }
    pthread_mutex_unlock(&q->prep_lock);
}

void shmq_mfq_write_horizon_slow(shmq_mfq_t *q, int64_t end)
{
    int64_t h = end + (int64_t)WARM_CHUNK * 4;
    q->horizon_mine = h;
    atomic_store_explicit(&q->write_horizon, h, memory_order_seq_cst);
    /* A chunk below the new horizon being zero-filled right now: wait for it. */
    while (atomic_load_explicit(&q->zero_claim, memory_order_seq_cst) < h) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

int shmq_mfq_get_or_create(shmq_mfq_t *q, int64_t start_offset, shmq_mapped_file_t **out)
{
    shmq_mapped_file_t *mf;
    int rc;

    if (!q || !out) {
        return SHMQ_E_ARG;
    }
    if (q->flags & SHMQ_MF_READONLY) {
        return shmq_error_set(-EROFS, "segment queue %s is read-only", q->dir);
    }
    mf = shmq_mfq_find(q, start_offset);
    if (mf && mf->start_offset == start_offset) {
        *out = mf;
        return 0;
    }
    if (!mfq_next_place(q, start_offset)) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "segment queue %s: cannot create a segment at %lld (end %lld, "
                              "segment size %zu)",
                              q->dir, (long long)start_offset, (long long)shmq_mfq_end_offset(q),
                              q->seg_size);
    }
    mf = NULL;
    if (q->prep_running) {
        pthread_mutex_lock(&q->prep_lock);
        while (q->prep_busy == start_offset) {
            pthread_cond_wait(&q->prep_cond, &q->prep_lock);
        }
        if (q->prep_want == start_offset) {
            q->prep_want = -1; /* created here instead: the thread must not map it again */
            pthread_cond_broadcast(&q->prep_cond);
        }
        if (q->prep_ready && q->prep_ready->start_offset == start_offset) {
            mf = q->prep_ready;
            q->prep_ready = NULL;
        }
        pthread_mutex_unlock(&q->prep_lock);
    }
    if (!mf) {
        mf = malloc(sizeof(*mf));
        if (!mf) {
            return -ENOMEM;
        }
        pthread_mutex_lock(&q->prep_lock);
        unsigned cflags = create_flags(q);
        pthread_mutex_unlock(&q->prep_lock);
        rc = shmq_mf_create(mf, q->dir, start_offset, q->seg_size, cflags);
        if (rc) {
            free(mf);
            return rc;
        }
    }
    rc = mfq_push(q, mf);
    if (rc) {
        shmq_mf_close(mf); /* the file stays: fully sized zeros are harmless */
        free(mf);
        return rc;
    }
    *out = mf;
    shmq_mfq_prepare(q, start_offset + (int64_t)q->seg_size);
    return 0;
}

/* Zero mf bytes [from, to): only the pages that hold something. */
static void mf_zero_range(shmq_mapped_file_t *mf, size_t from, size_t to)
{
    size_t pg = shmq_mf_page_size();
    size_t pos = from;

    while (pos < to) {
        size_t end = pos - pos % pg + pg;
        if (end > to) {
            end = to;
        }
        const uint8_t *p = mf->base + pos;
        size_t n = end - pos;
        if (p[0] != 0 || memcmp(p, p + 1, n - 1) != 0) {
            memset(mf->base + pos, 0, n);
        }
        pos = end;
    }
}

/*
 * Zero mf bytes [from, size), then msync.  Only the file's data ranges are
 * read (SEEK_DATA / SEEK_HOLE): a hole or a never-written fallocated range
 * reads as zeros already, and touching it would fault in every page of a
 * mostly empty 1 GiB segment at each start (seconds).
 */
static int mf_zero_tail(shmq_mapped_file_t *mf, size_t from)
{
    size_t pos = from;
    while (pos < mf->size) {
        off_t d = lseek(mf->fd, (off_t)pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO) {
                break; /* nothing but holes up to the end */
            }
            mf_zero_range(mf, pos, mf->size); /* no SEEK_DATA here: read it all */
            break;
        }
        if ((size_t)d >= mf->size) {
            break;
        }
        off_t h = lseek(mf->fd, d, SEEK_HOLE);
        size_t end = h < 0 || (size_t)h > mf->size ? mf->size : (size_t)h;
        mf_zero_range(mf, (size_t)d > pos ? (size_t)d : pos, end);
        pos = end > (size_t)d ? end : mf->size;
    }
    return shmq_mf_flush(mf, from, mf->size, SHMQ_FLUSH_MSYNC);
}

int shmq_mfq_truncate(shmq_mfq_t *q, int64_t off)
{
    shmq_mapped_file_t *stale = NULL;
    bool removed = false;
    int rc;

    if (!q || off < 0) {
        return SHMQ_E_ARG;
    }
    if (q->flags & SHMQ_MF_READONLY) {
        return shmq_error_set(-EROFS, "segment queue %s is read-only", q->dir);
    }
    if (q->prep_running) {
        pthread_mutex_lock(&q->prep_lock);
        while (q->prep_busy >= 0 || q->warm_busy) {
            pthread_cond_wait(&q->prep_cond, &q->prep_lock);
        }
        q->warm_seg = NULL; /* segments may be unmapped below */
        if (q->prep_want >= off) {
            q->prep_want = -1;
        }
        if (q->prep_ready && q->prep_ready->start_offset >= off) {
            stale = q->prep_ready;
            q->prep_ready = NULL;
        }
        pthread_mutex_unlock(&q->prep_lock);
    }
    if (stale) {
        shmq_mf_close(stale);
        rc = shmq_mf_unlink(stale->path);
        free(stale);
        if (rc) {
            return rc;
        }
        removed = true;
    }
    while (q->count > 0 && q->segs[q->count - 1]->start_offset >= off) {
        shmq_mapped_file_t *mf = q->segs[q->count - 1];
        rc = shmq_mf_unlink(mf->path);
        if (rc) {
            return rc;
        }
        mfq_unmap(q, mf);
        q->count--;
        removed = true;
    }
    if (removed) {
        rc = shmq_mf_fsync_dir(q->dir);
        if (rc) {
            return rc;
        }
    }
    shmq_mapped_file_t *mf = shmq_mfq_find(q, off);
    if (mf) {
        return mf_zero_tail(mf, (size_t)(off - mf->start_offset));
    }
    return 0;
}

int shmq_mfq_delete_first(shmq_mfq_t *q)
{
    if (!q) {
        return SHMQ_E_ARG;
    }
    if (q->flags & SHMQ_MF_READONLY) {
        return shmq_error_set(-EROFS, "segment queue %s is read-only", q->dir);
    }
    if (q->count <= 1) {
        return shmq_error_set(SHMQ_E_RANGE, "segment queue %s: %zu segment(s), keeping the last",
                              q->dir, q->count);
    }
    shmq_mapped_file_t *mf = q->segs[0];
    if (q->prep_running) {
        pthread_mutex_lock(&q->prep_lock);
        while (q->warm_busy && q->warm_seg == mf) {
            pthread_cond_wait(&q->prep_cond, &q->prep_lock);
        }
        if (q->warm_seg == mf) {
            q->warm_seg = NULL;
        }
        pthread_mutex_unlock(&q->prep_lock);
    }
    int rc = shmq_mf_unlink(mf->path);
    if (rc) {
        return rc;
    }
    mfq_unmap(q, mf);
    memmove(q->segs, q->segs + 1, (q->count - 1) * sizeof(*q->segs));
    q->count--;
    return shmq_mf_fsync_dir(q->dir);
}

int shmq_mfq_refresh(shmq_mfq_t *q)
{
    char path[PATH_MAX];
    struct stat st;
    int rc;

    if (!q || !q->is_open) {
        return SHMQ_E_ARG;
    }
    if (q->count == 0) {
        rc = mfq_load(q, true);
        return rc ? rc : (int)q->count;
    }
    /* New segments first: a reader that mapped only an old one (it had nothing to read since)
     * must not keep that one because it is its only mapping. */
    for (;;) {
        int64_t off = shmq_mfq_end_offset(q);
        rc = shmq_mf_seg_path(path, q->dir, off);
        if (rc) {
            return rc;
        }
        if (stat(path, &st) != 0 || (uint64_t)st.st_size != q->seg_size) {
            break; /* not there, or still being created */
        }
        shmq_mapped_file_t *mf = malloc(sizeof(*mf));
        if (!mf) {
            return -ENOMEM;
        }
        rc = shmq_mf_open(mf, path, off, q->seg_size,
                          q->flags & (SHMQ_MF_READONLY | SHMQ_MF_SYNCER));
        if (rc == 0) {
            rc = mfq_push(q, mf);
            if (rc) {
                shmq_mf_close(mf);
            }
        }
        if (rc) {
            free(mf);
            return rc;
        }
    }
    /* Every mapped segment is gone (the reader slept while the cleaner deleted them and more):
     * start again from the directory. */
    if (access(q->segs[q->count - 1]->path, F_OK) != 0 && errno == ENOENT) {
        while (q->count > 0) {
            mfq_unmap(q, q->segs[q->count - 1]);
            q->count--;
        }
        rc = mfq_load(q, true);
        return rc ? rc : (int)q->count;
    }
    /* Leading segments removed by the cleaner: a mapping keeps a deleted file's blocks
     * allocated (PITFALLS 25).  The newest segment is never removed: one mapping stays. */
    while (q->count > 1 && access(q->segs[0]->path, F_OK) != 0 && errno == ENOENT) {
        mfq_unmap(q, q->segs[0]);
        memmove(q->segs, q->segs + 1, (q->count - 1) * sizeof(*q->segs));
        q->count--;
    }
    return (int)q->count;
}
