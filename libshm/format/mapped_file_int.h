/*
 * What mapped_file.c (one segment) and mapped_file_queue.c (the queue of
 * segments) share: errors naming a path, directory syncs, segment paths and
 * the preparation of pages ahead of the writer.  Private to those two files.
 */
#ifndef SHMQ_MAPPED_FILE_INT_H
#define SHMQ_MAPPED_FILE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "format/mapped_file.h"

/*
 * Preparing pages ahead of the writer.  fallocate() leaves "unwritten"
 * extents, and the first store into each of their pages through a mapping
 * costs several microseconds (ext4 converts the page); a page first written
 * with pwrite() (zeros: what the file holds anyway, so a reader sees the end
 * of the log either way) and then pre-faulted costs a fraction of that.  A
 * big segment is prepared a window at a time just ahead of the writer, not
 * whole: a whole 1 GiB segment would take seconds and leave a gigabyte of
 * dirty zeros for writeback to compete with SYNC_FLUSH.
 */
#define WARM_WINDOW (64u << 20) /* prepared ahead of the writer (and at creation) */
#define WARM_CHUNK  (2u << 20)  /* one step of the preparing thread: a huge piece */
#define WARM_SMALL  (64u << 20) /* files up to this size are prepared whole at creation */
#define NO_CLAIM    INT64_MAX

size_t shmq_mf_page_size(void);

/* Record "path: what: reason" for the current errno; returns -errno. */
int shmq_mf_sys_err(const char *path, const char *what);

/* unlink() where a missing file is fine. */
int shmq_mf_unlink(const char *path);

/* fsync the directory dir (after a name in it was created or removed). */
int shmq_mf_fsync_dir(const char *dir);

/* <dir>/<20-digit offset> into out (PATH_MAX bytes). */
int shmq_mf_seg_path(char *out, const char *dir, int64_t offset);

/* Write zeros over [off, off + len) of fd through the page cache, one write per `unit` bytes
 * (the size of the page cache's pieces: SHMQ_MF_FINE). */
int shmq_mf_zero_fill(int fd, size_t off, size_t len, size_t unit);

/* The zero-fill unit of the open flags (SHMQ_MF_FINE; without it, huge pieces). */
static inline size_t shmq_mf_fill_unit(unsigned flags)
{
    return (flags & SHMQ_MF_FINE) ? SHMQ_MF_FILL_FINE : SHMQ_MF_FILL_HUGE;
}

/* Pre-fault bytes [from, to) of mf (from rounded down to a page). */
void shmq_mf_prefault_range(shmq_mapped_file_t *mf, size_t from, size_t to);

/* Pre-fault the first `upto` bytes (PREFAULT, not STAGED) and mlock (MLOCK). */
void shmq_mf_tune_writable(shmq_mapped_file_t *mf, unsigned flags, size_t upto);

#endif
