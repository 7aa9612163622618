/*
 * Mapped segment files and segment queues.
 *
 * A segment is a fixed-size file named by the 20-digit decimal offset of its
 * first byte in its logical stream (CommitLog bytes, ConsumeQueue bytes).
 * Space is allocated with fallocate() before the file is mapped, so a full
 * disk is an error at creation, never a SIGBUS at a store into the mapping.
 * New writable segments are pre-faulted (MADV_POPULATE_WRITE where the kernel
 * has it, else one touch per page) and can be mlocked; a new file's blocks
 * are first written with zeros (a page of an fallocated but never written
 * extent costs several times more to fault in), in writes of the size of
 * the page-cache pieces the file is to have (SHMQ_MF_FINE).  With a preparing thread a
 * big segment is prepared a window at a time ahead of the writer.
 *
 * A segment queue (shmq_mfq_t) is the ordered list of segments in one
 * directory.  It can prepare the next segment ahead of need on a background
 * thread, so that an append that crosses a boundary does not wait for file
 * creation.  Files are removed with unlink() only, never truncated while
 * mapped (a reader holding the mapping keeps reading safely).
 *
 * Flushing: a flush that fails is reported (SHMQ_E_FENCED afterwards) and the
 * queue's flushed position never advances again: a failed msync/fdatasync is
 * never retried and trusted.
 *
 * Thread model: one writer thread per queue; the preparing thread only
 * touches the prepared slot under the queue's mutex.  Other threads may call
 * find/first/last/min_offset/end_offset while the writer adds segments
 * (get_or_create); truncate, delete_first and refresh need the readers of
 * the same queue object stopped (they unmap segments).
 */
#ifndef SHMQ_MAPPED_FILE_H
#define SHMQ_MAPPED_FILE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open flags. */
#define SHMQ_MF_READONLY 0x1 /* map PROT_READ, never create or modify files */
#define SHMQ_MF_PREFAULT 0x2 /* pre-fault writable segments when created */
#define SHMQ_MF_MLOCK    0x4 /* mlock writable segments */
#define SHMQ_MF_PREPARE  0x8 /* prepare the next segment on a background thread */
/*
 * With READONLY: open the file O_RDWR but map it PROT_READ, so that the
 * mapping is a shared one msync writes back (PITFALLS 18: msync of a mapping
 * of a file opened O_RDONLY returns 0 and writes nothing).  For the flusher,
 * which syncs bytes another process wrote and must never write them itself.
 */
#define SHMQ_MF_SYNCER 0x10
/*
 * The pieces a file's pages are put in the page cache in.  The page cache
 * keeps a file's pages in pieces (folios) of the size of the write that
 * first put them there, and writes a whole piece back for one dirty byte
 * (ext4 with large folios, Linux 6.16+).  New files are written with zeros
 * SHMQ_MF_FILL_FINE (64 KiB) at a time, or SHMQ_MF_FILL_HUGE (2 MiB):
 *  - fine pieces keep a flush of a few bytes to 64 KiB of writing (with the
 *    1 MiB pieces of before, a 128-byte SYNC_FLUSH group commit wrote 1 MiB
 *    and took 1 ms instead of 0.2);
 *  - a huge piece is mapped by one page-table entry (ext4 places a mapping
 *    of 2 MiB or more at a 2 MiB boundary): a process's first look at 1 MiB
 *    of it costs 15 us instead of 350 (in this VM each process that reads
 *    the log pays that for every page it reads), but an msync of one byte
 *    writes 2 MiB.
 * SHMQ_MF_FINE: always fine (a SYNC_FLUSH CommitLog, the ConsumeQueues).
 * Without it, a queue prepared ahead of its writer (SHMQ_MF_PREPARE) gets
 * huge pieces while the writer writes SHMQ_MF_HUGE_RATE bytes a second or
 * more (each periodic flush then covers many pieces) and fine ones below
 * (shmq_mfq_prefault_ahead measures the rate); other queues get fine ones.
 */
#define SHMQ_MF_FINE      0x20
#define SHMQ_MF_FILL_FINE (64u << 10)
#define SHMQ_MF_FILL_HUGE (2u << 20)
#define SHMQ_MF_HUGE_RATE (32LL << 20)
/*
 * SHMQ_MF_STAGED: the writer puts its bytes into the files with pwrite(2),
 * not by storing into its mapping (a SYNC_FLUSH CommitLog: commitlog.h,
 * "Staged appends").  Segments are still zero-filled ahead of it (PREFAULT,
 * PREPARE: the pieces), but its mapping is not pre-faulted for writing: it
 * would never use those page-table entries.
 */
#define SHMQ_MF_STAGED 0x40

/* Flush methods. */
enum shmq_flush_method { SHMQ_FLUSH_MSYNC = 0, SHMQ_FLUSH_FDATASYNC = 1 };

typedef struct shmq_mapped_file {
    char path[PATH_MAX];
    int fd;
    uint8_t *base;        /* mapping of the whole file */
    size_t size;          /* file size = segment size */
    int64_t start_offset; /* logical offset of byte 0 */
    bool readonly;
    bool syncable;    /* msync of the mapping writes back (opened O_RDWR) */
    size_t ready_end; /* bytes from the start already zero-filled and pre-faulted */
} shmq_mapped_file_t;

/* Format the 20-digit segment name of offset into out (21 bytes). */
void shmq_segment_name(int64_t offset, char out[21]);

/* Parse a 20-digit segment name; false if name is not exactly 20 decimal digits. */
bool shmq_segment_parse(const char *name, int64_t *offset);

/*
 * Create (or open an existing, fully sized) writable segment dir/<offset>:
 * open, fallocate the whole size (ENOSPC returned as -ENOSPC), map shared,
 * pre-fault / mlock per flags, fsync the directory when the file is new.
 */
int shmq_mf_create(shmq_mapped_file_t *mf, const char *dir, int64_t start_offset, size_t size,
                   unsigned flags);

/* Map an existing segment; its size must equal size (SHMQ_E_SEGMENT otherwise). */
int shmq_mf_open(shmq_mapped_file_t *mf, const char *path, int64_t start_offset, size_t size,
                 unsigned flags);

/*
 * Make bytes [from, to) of the segment (relative positions) durable, whoever
 * wrote them: msync(MS_SYNC) of the range where the mapping is shared-writable
 * (opened O_RDWR), else fdatasync of the whole file (never a no-op msync).
 * 0 or a negative errno; the caller never retries a failure (PITFALLS 1).
 */
int shmq_mf_flush(shmq_mapped_file_t *mf, size_t from, size_t to, enum shmq_flush_method how);

/*
 * Map dir/name, a file of exactly size bytes: created and allocated whole
 * (fsynced, with its directory) when missing or empty, unless check_only, which
 * maps an existing one read-only (SHMQ_E_NOT_FOUND when missing).  Another size
 * is SHMQ_E_SEGMENT; a symbolic link or a non-regular file is refused.
 */
int shmq_mf_open_fixed(shmq_mapped_file_t *mf, const char *dir, const char *name, size_t size,
                       bool check_only);

/* Unmap and close; does not remove the file. */
void shmq_mf_close(shmq_mapped_file_t *mf);

/* Unmap, close and unlink the file (and fsync its directory). */
int shmq_mf_destroy(shmq_mapped_file_t *mf);

/* ---- segment queue ----------------------------------------------------- */

typedef struct shmq_mfq {
    char dir[PATH_MAX];
    size_t seg_size;
    unsigned flags;
    shmq_mapped_file_t **segs; /* ordered by start_offset, contiguous */
    size_t count;
    size_t cap;
    /* Preparation of the next segment (SHMQ_MF_PREPARE). */
    pthread_t prep_thread;
    bool prep_running;
    pthread_mutex_t prep_lock;
    pthread_cond_t prep_cond;
    int64_t prep_want;              /* offset to prepare, -1 none */
    int64_t prep_busy;              /* offset being created right now, -1 none */
    shmq_mapped_file_t *prep_ready; /* prepared segment, not yet in segs */
    int prep_err;                   /* result of the latest preparation (0 or error) */
    bool prep_stop;
    /* The window prepared ahead of the writer (PREFAULT | PREPARE), under prep_lock. */
    shmq_mapped_file_t *warm_seg; /* segment being prepared, NULL none */
    size_t warm_pos;              /* its next byte to prepare */
    size_t warm_end;              /* prepare up to here */
    bool warm_busy;               /* a step runs right now (outside the lock) */
    /* The pieces of what is prepared next (SHMQ_MF_FINE), under prep_lock. */
    bool fill_huge;   /* SHMQ_MF_FILL_HUGE: the writer is fast */
    int64_t rate_pos; /* the writer's position at its previous ask ... */
    int64_t rate_ns;  /* ... and when (CLOCK_MONOTONIC; 0: no ask yet) */
    /* Writer and preparing thread (see shmq_mfq_write_horizon). */
    _Atomic int64_t write_horizon; /* writer: it writes nothing at or above this */
    _Atomic int64_t zero_claim;    /* preparing thread: the chunk it zero-fills, INT64_MAX none */
    int64_t horizon_mine;          /* writer thread's copy of write_horizon */
    bool is_open;                  /* mutex and condvar initialised */
    /* Segments of segs unmapped so far (removed, cut, reloaded, closed): a segment pointer
     * the owning thread keeps across calls stays valid while this is unchanged. */
    uint64_t unmapped;
} shmq_mfq_t;

/*
 * Load the segments in dir (created if missing and not read-only; a missing
 * directory opened read-only is an empty queue): only names of exactly 20
 * digits are segments (other names are ignored, names ending in ".tmp" are
 * removed unless read-only), sorted by offset; a zero-length last file is
 * deleted (skipped when read-only); a file of another size than seg_size, a
 * start offset that is not a multiple of seg_size, or a gap between segments
 * fails with SHMQ_E_SEGMENT naming the file.  Only the last segment is
 * pre-faulted / mlocked (with PREPARE too: window by window ahead of the
 * writer, see shmq_mfq_prefault_ahead).
 */
int shmq_mfq_open(shmq_mfq_t *q, const char *dir, size_t seg_size, unsigned flags);

/* Unmap everything and stop the preparing thread. Files stay. */
void shmq_mfq_close(shmq_mfq_t *q);

/* Segment holding logical offset off, or NULL. */
shmq_mapped_file_t *shmq_mfq_find(const shmq_mfq_t *q, int64_t off);

/* First / last segment, or NULL when empty. */
shmq_mapped_file_t *shmq_mfq_first(const shmq_mfq_t *q);
shmq_mapped_file_t *shmq_mfq_last(const shmq_mfq_t *q);

/*
 * Get the segment starting at start_offset for writing, creating it if it
 * does not exist (start_offset must be the end of the last segment, or any
 * multiple of seg_size when the queue is empty).  Uses the prepared segment
 * if there is one, and asks for the one after it to be prepared.
 */
int shmq_mfq_get_or_create(shmq_mfq_t *q, int64_t start_offset, shmq_mapped_file_t **out);

/*
 * Ask the preparing thread to create the segment at start_offset (no-op
 * without PREPARE, or unless start_offset is the end of the last segment, or
 * a multiple of seg_size when the queue is empty).  Called by the writer.
 */
void shmq_mfq_prepare(shmq_mfq_t *q, int64_t start_offset);

/*
 * Writer (PREFAULT | PREPARE queues): have the preparing thread make the
 * next window (64 MiB) after pos ready — zeros written over fallocated
 * blocks, pages pre-faulted — so that appends take no costly page faults.
 * Segments are prepared a window at a time: creating or opening one stays
 * cheap.  Called at each window's first quarter; no-op without the thread.
 */
void shmq_mfq_prefault_ahead(shmq_mfq_t *q, int64_t pos);

/*
 * Writer: announce that it will write bytes below end, before writing
 * them.  The preparing thread writes zeros only above the announced
 * horizon; if it is zero-filling a chunk below the new horizon right now,
 * this waits for it (rare: the window is far ahead).  Cheap: a store every
 * 4 MiB.  Every non-zero write into a queue's segments must be announced.
 */
void shmq_mfq_write_horizon_slow(shmq_mfq_t *q, int64_t end);
static inline void shmq_mfq_write_horizon(shmq_mfq_t *q, int64_t end)
{
    if (end > q->horizon_mine) {
        shmq_mfq_write_horizon_slow(q, end);
    }
}

/*
 * Wait until no preparation is requested or running.  Returns the last
 * preparation error (negative) or 0.  Used by tests and before shutdown.
 */
int shmq_mfq_prepare_wait(shmq_mfq_t *q);

/*
 * For a reader's queue: map segments that appeared after the last one (a
 * trailing file that is not yet fully sized is skipped until it is) and
 * drop leading segments whose files were removed.  Pointers to dropped
 * segments become invalid.  Returns the number of segments or an error.
 */
int shmq_mfq_refresh(shmq_mfq_t *q);

/*
 * Remove every segment that starts at or after off (unlink); and if off is
 * inside a segment, zero the bytes of that segment from off to its end.
 * Used by recovery to cut a torn tail.
 */
int shmq_mfq_truncate(shmq_mfq_t *q, int64_t off);

/*
 * Remove (unlink) the first segment.  Used by cleaning; never called on the
 * last segment.
 */
int shmq_mfq_delete_first(shmq_mfq_t *q);

/* Start offset of the first segment, or 0 when empty. */
int64_t shmq_mfq_min_offset(const shmq_mfq_t *q);

/* End offset of the last segment (start + seg_size), or 0 when empty. */
int64_t shmq_mfq_end_offset(const shmq_mfq_t *q);

#endif
