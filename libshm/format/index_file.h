/*
 * One RocketMQ IndexFile (ROCKETMQ-FACTS §8): a 40-byte header, a table of
 * hash slots, then 20-byte entries numbered from 1, all big-endian, in a
 * file of exactly 40 + slot_num*4 + index_num*20 bytes named by its
 * creation time (local yyyyMMddHHmmssSSS) under <root>/index.
 *
 *   header  0 beginTimestamp  8 endTimestamp  16 beginPhyOffset
 *          24 endPhyOffset   32 hashSlotCount 36 indexCount (next entry number)
 *   slot s  (at 40 + 4s): number of the newest entry of bucket s, 0 = empty
 *   entry k (at 40 + 4*slot_num + 20k, k >= 1): keyHash, phys offset,
 *           timeDiff (seconds since beginTimestamp), previous entry of the bucket
 *
 * Single writer (the indexer, or an offline build), any number of readers
 * that map the file PROT_READ while it is written.  The writer puts an entry
 * in this order: the entry's 20 bytes, the slot (release), the header's
 * other fields, indexCount last (release).  So a reader that sees a slot
 * value sees the whole entry and every older entry of its chain; and a
 * writer killed at any instruction leaves at most one entry past
 * indexCount, possibly with its slot already pointing at it, which
 * shmq_index_file_repair() undoes.  An entry lies wholly in one file and
 * is written whole before anything points at it.
 *
 * Readers trust nothing: slot and prev values are bounded by the file's
 * capacity (and by indexCount for files no longer written), a chain is
 * followed only towards strictly older entries (so every walk ends), and
 * every candidate's record is checked by the caller.
 */
#ifndef SHMQ_INDEX_FILE_H
#define SHMQ_INDEX_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shmq/errors.h"

#define SHMQ_INDEX_HEADER_SIZE 40
#define SHMQ_INDEX_SLOT_SIZE   4
#define SHMQ_INDEX_ENTRY_SIZE  20
#define SHMQ_INDEX_NAME_LEN    17 /* yyyyMMddHHmmssSSS */

typedef struct shmq_index_header {
    int64_t begin_ts;        /* store time of the first entry's message */
    int64_t end_ts;          /* store time of the last entry's message */
    int64_t begin_phys;      /* its CommitLog offset */
    int64_t end_phys;        /* the last entry's CommitLog offset */
    int32_t hash_slot_count; /* slots that are not empty */
    int32_t index_count;     /* next entry number: entries 1 .. index_count-1 exist */
} shmq_index_header_t;

typedef struct shmq_index_entry {
    int32_t key_hash;
    int64_t phys_offset;
    int32_t time_diff; /* seconds since the header's begin_ts */
    int32_t prev;      /* previous entry of the same bucket, 0 = none */
} shmq_index_entry_t;

typedef struct shmq_index_file {
    char path[PATH_MAX];
    char name[SHMQ_INDEX_NAME_LEN + 1];
    int fd;
    uint8_t *base;
    uint8_t *entries; /* base + the slot table: entry k at entries + 20k */
    size_t size;
    int32_t slot_num;  /* hashSlotNum */
    int32_t index_num; /* maxIndexNum: entries 1 .. index_num-1 fit */
    bool readonly;
    bool dirty; /* writer: changed since the last flush */
    /* Writer, shmq_index_time_diff(): the timeDiff sec_diff of the store times
     * sec_from .. sec_from + 999 against beginTimestamp sec_begin (0: none yet). */
    int64_t sec_begin, sec_from;
    int32_t sec_diff;
    shmq_index_header_t hdr; /* writer: the header as written (readers use header_read) */
} shmq_index_file_t;

/*
 * Crash tests only (NULL otherwise): called between the writes of a put and
 * of a message's keys, so that a test can kill the writer at each step.
 */
enum shmq_index_step {
    SHMQ_INDEX_STEP_ENTRY = 1,  /* the entry is written, its slot not yet */
    SHMQ_INDEX_STEP_SLOT = 2,   /* the slot points at it, the header not updated */
    SHMQ_INDEX_STEP_HEADER = 3, /* header fields set, indexCount not yet */
    SHMQ_INDEX_STEP_KEY = 4,    /* a message's UNIQ_KEY is in, its KEYS entries not yet */
};
typedef void (*shmq_index_crash_fn)(enum shmq_index_step step);
extern shmq_index_crash_fn shmq_index_crash_hook;

/* Size of a file with these parameters (40 + 4*slots + 20*num). */
int64_t shmq_index_file_size(int32_t slot_num, int32_t index_num);

/* True if name is exactly 17 decimal digits. */
bool shmq_index_name_valid(const char *name);

/* The name for a file created at ms (local time yyyyMMddHHmmssSSS). */
void shmq_index_name_format(int64_t ms, char out[SHMQ_INDEX_NAME_LEN + 1]);

/* The time a name stands for (local time), or -1 if it is not a valid time. */
int64_t shmq_index_name_parse(const char *name);

/*
 * Create dir/name: written as dir/name.tmp with its whole size allocated
 * (fallocate: a full disk is -ENOSPC here, never a SIGBUS later), the
 * header init (index_count forced to at least 1), synced, renamed into place,
 * directory synced; then mapped read-write.  An existing dir/name is
 * -EEXIST.
 */
int shmq_index_file_create(shmq_index_file_t *f, const char *dir, const char *name,
                           int32_t slot_num, int32_t index_num, const shmq_index_header_t *init);

/*
 * Map an existing file; its size must be shmq_index_file_size(slot_num,
 * index_num) (SHMQ_E_SEGMENT otherwise).  Read-only: O_RDONLY, PROT_READ.
 * The writer's copy of the header (f->hdr) is read from the file.
 */
int shmq_index_file_open(shmq_index_file_t *f, const char *path, int32_t slot_num,
                         int32_t index_num, bool readonly);

void shmq_index_file_close(shmq_index_file_t *f);

/* Unmap, unlink, sync the directory. */
int shmq_index_file_destroy(shmq_index_file_t *f);

/*
 * The header as it is in the mapping now (8-byte fields read atomically;
 * a concurrent writer may be between two fields).  index_count below 1
 * reads as 1.
 */
void shmq_index_header_read(const shmq_index_file_t *f, shmq_index_header_t *h);

/* Entry k as stored, or SHMQ_E_RANGE unless 1 <= k < index_num. */
int shmq_index_entry_read(const shmq_index_file_t *f, int32_t k, shmq_index_entry_t *e);

/* Slot value (acquire: the entries it leads to are visible), unchecked. */
int32_t shmq_index_slot_read(const shmq_index_file_t *f, int32_t slot);

/* Writer: no room for another entry (index_count >= index_num). */
static inline bool shmq_index_file_full(const shmq_index_file_t *f)
{
    return f->hdr.index_count >= f->index_num;
}

/*
 * Writer: add an entry for key_hash (>= 0) of the message at phys stored at
 * store_ts.  The first entry of a file sets begin_ts/begin_phys (its
 * timeDiff is then 0: RocketMQ computes it against the inherited begin
 * time, which makes its time too late).  SHMQ_E_RANGE when full,
 * SHMQ_E_ARG on a read-only file or a negative hash.  The entry itself is
 * shmq_index_file_put_entry() below.
 */
int shmq_index_file_put(shmq_index_file_t *f, int32_t key_hash, int64_t phys, int64_t store_ts);

/* The put's header offsets (the layout at the top of this file). */
enum {
    SHMQ_INDEX_OFF_BEGIN_TS = 0,
    SHMQ_INDEX_OFF_END_TS = 8,
    SHMQ_INDEX_OFF_BEGIN_PHYS = 16,
    SHMQ_INDEX_OFF_END_PHYS = 24,
    SHMQ_INDEX_OFF_SLOT_COUNT = 32,
    SHMQ_INDEX_OFF_COUNT = 36,
};

/* Writer: a header field of the mapping (naturally aligned: single-copy atomic). */
static inline void shmq_index_hdr_store64(shmq_index_file_t *f, size_t off, int64_t v)
{
    /* Relaxed: the release store of indexCount orders these before it. */
    __atomic_store_n((uint64_t *)(void *)(f->base + off), __builtin_bswap64((uint64_t)v),
                     __ATOMIC_RELAXED);
}

static inline void shmq_index_hdr_store32(shmq_index_file_t *f, size_t off, int32_t v)
{
    /* Release: whatever was written before (entry, slot) is visible with the new value. */
    __atomic_store_n((uint32_t *)(void *)(f->base + off), __builtin_bswap32((uint32_t)v),
                     __ATOMIC_RELEASE);
}

static inline __attribute__((always_inline)) void shmq_index_crash_point(shmq_index_crash_fn hook,
                                                                         enum shmq_index_step step)
{
    if (hook != NULL) {
        hook(step);
    }
}

/*
 * timeDiff of an entry stored at store_ts: whole seconds since
 * beginTimestamp, 0..INT32_MAX (0 while beginTimestamp is not after the
 * epoch).  The second found is remembered (sec_begin, sec_from, sec_diff:
 * a memo of this function of beginTimestamp and store_ts), so that the next
 * entry of the same second needs no division.
 */
static inline __attribute__((always_inline)) int32_t shmq_index_time_diff(shmq_index_file_t *f,
                                                                          int64_t store_ts)
{
    int64_t begin = f->hdr.begin_ts;
    /* Unsigned: store_ts in sec_from .. sec_from + 999 (which never passes INT64_MAX). */
    if (f->sec_begin == begin && (uint64_t)store_ts - (uint64_t)f->sec_from < 1000) {
        return f->sec_diff; /* the second of the previous entry's (or 0, 0, 0 as opened: 0) */
    }
    if (begin <= 0) {
        return 0;
    }
    int64_t diff;
    /* begin_ts comes from the file: the difference may not fit int64. */
    if (__builtin_sub_overflow(store_ts, begin, &diff)) {
        diff = store_ts < begin ? 0 : INT64_MAX;
    }
    diff /= 1000;
    if (diff < 0) {
        return 0;
    }
    if (diff >= INT32_MAX) {
        return INT32_MAX; /* clamped: not a second of its own */
    }
    int64_t from = begin + diff * 1000; /* <= store_ts */
    if (from <= INT64_MAX - 999) {
        f->sec_begin = begin;
        f->sec_from = from;
        f->sec_diff = (int32_t)diff;
    }
    return (int32_t)diff;
}

/*
 * The put past its argument check (a writable file, key_hash >= 0), with
 * the crash hook as read once by the caller (NULL: the put makes no call).
 * shmq_index_file_put() and shmq_index_file_put_inline() both run it;
 * may_be_first false (a constant) leaves out the first entry's steps: the
 * caller has seen index_count > 1.
 */
static inline __attribute__((always_inline)) int
shmq_index_file_put_entry(shmq_index_file_t *f, int32_t key_hash, int64_t phys, int64_t store_ts,
                          shmq_index_crash_fn hook, bool may_be_first)
{
    int32_t n = f->hdr.index_count;
    if (n >= f->index_num) {
        return SHMQ_E_RANGE;
    }
    bool first = may_be_first && n <= 1;
    if (first) {
        n = 1; /* an index_count below 1 counts as 1 (as shmq_index_header_read reads it) */
        f->hdr.begin_ts = store_ts;
        f->hdr.begin_phys = phys;
    }
    int32_t slot = key_hash % f->slot_num;
    uint32_t *slot_word = (uint32_t *)(void *)(f->base + SHMQ_INDEX_HEADER_SIZE +
                                               (size_t)slot * SHMQ_INDEX_SLOT_SIZE);
    /* Acquire: pairs with the release store of the slot after its entry. */
    int32_t prev = (int32_t)__builtin_bswap32(__atomic_load_n(slot_word, __ATOMIC_ACQUIRE));
    if (prev <= 0 || prev >= n) {
        prev = 0;
    }
    int32_t diff = shmq_index_time_diff(f, store_ts);
    uint8_t *p = f->entries + (size_t)n * SHMQ_INDEX_ENTRY_SIZE;
    uint32_t v32 = __builtin_bswap32((uint32_t)key_hash);
    uint64_t v64 = __builtin_bswap64((uint64_t)phys);
    memcpy(p, &v32, 4);
    memcpy(p + 4, &v64, 8);
    v32 = __builtin_bswap32((uint32_t)diff);
    memcpy(p + 12, &v32, 4);
    v32 = __builtin_bswap32((uint32_t)prev);
    memcpy(p + 16, &v32, 4);
    shmq_index_crash_point(hook, SHMQ_INDEX_STEP_ENTRY);
    /* Release: the entry (and its chain) is complete before the slot points at it. */
    __atomic_store_n(slot_word, __builtin_bswap32((uint32_t)n), __ATOMIC_RELEASE);
    shmq_index_crash_point(hook, SHMQ_INDEX_STEP_SLOT);
    if (first) {
        shmq_index_hdr_store64(f, SHMQ_INDEX_OFF_BEGIN_TS, store_ts);
        shmq_index_hdr_store64(f, SHMQ_INDEX_OFF_BEGIN_PHYS, phys);
    }
    f->hdr.end_phys = phys;
    f->hdr.end_ts = store_ts;
    shmq_index_hdr_store64(f, SHMQ_INDEX_OFF_END_PHYS, phys);
    shmq_index_hdr_store64(f, SHMQ_INDEX_OFF_END_TS, store_ts);
    if (prev == 0) {
        f->hdr.hash_slot_count++;
        shmq_index_hdr_store32(f, SHMQ_INDEX_OFF_SLOT_COUNT, f->hdr.hash_slot_count);
    }
    shmq_index_crash_point(hook, SHMQ_INDEX_STEP_HEADER);
    f->hdr.index_count = n + 1;
    shmq_index_hdr_store32(f, SHMQ_INDEX_OFF_COUNT, n + 1); /* last (release): counted */
    f->dirty = true;
    return 0;
}

/*
 * shmq_index_file_put(), inline for the indexer's loop: a put on a writable
 * file holding entries already, with a hash >= 0 and no crash hook, runs
 * shmq_index_file_put_entry() here, without a call; anything else goes to
 * shmq_index_file_put(), which refuses and words it, begins the file, or
 * runs the hook.
 */
static inline __attribute__((always_inline)) int
shmq_index_file_put_inline(shmq_index_file_t *f, int32_t key_hash, int64_t phys, int64_t store_ts)
{
    if (f->readonly || key_hash < 0 || f->hdr.index_count <= 1 || shmq_index_crash_hook != NULL) {
        return shmq_index_file_put(f, key_hash, phys, store_ts);
    }
    return shmq_index_file_put_entry(f, key_hash, phys, store_ts, NULL, false);
}

/*
 * Writer: remove the newest entry (index_count - 1): indexCount first, then
 * its slot goes back to the entry's prev.  Fills *out with it.  The caller
 * sets the end fields afterwards (shmq_index_file_set_end).
 * SHMQ_E_RANGE when empty, SHMQ_E_CORRUPT when its slot does not point at
 * it.
 */
int shmq_index_file_pop(shmq_index_file_t *f, shmq_index_entry_t *out);

/* Writer: set endPhyOffset/endTimestamp (after pops or a repair). */
void shmq_index_file_set_end(shmq_index_file_t *f, int64_t end_phys, int64_t end_ts);

/* What a repair found. */
typedef struct shmq_index_repair {
    int32_t torn_slots;      /* slots that pointed at an entry past indexCount: undone */
    int32_t slot_count_diff; /* hashSlotCount corrected by this much */
    bool end_fixed;          /* endPhyOffset did not name the last entry */
} shmq_index_repair_t;

/*
 * Writer, at start: make the file consistent with its entries after a kill
 * at any instruction of put or pop.  Every slot is checked: one that points
 * at entry indexCount (written, not counted) goes back to that entry's
 * prev; any other value at or past indexCount, or a negative one, is
 * SHMQ_E_CORRUPT (the caller rebuilds the file).  hashSlotCount is
 * recounted and endPhyOffset set to the last entry's.  Costs one pass over
 * the slot table.
 */
int shmq_index_file_repair(shmq_index_file_t *f, shmq_index_repair_t *rep);

/* Writer: msync the whole file when dirty.  0 or a negative errno (never retried). */
int shmq_index_file_flush(shmq_index_file_t *f);

/*
 * Reader: visit the entries of key_hash's bucket, newest first, whose time
 * may lie in [begin_ts, end_ts] (entry times are known to the second only:
 * an entry is skipped only when its whole second is outside the range).
 * limit_count > 0 bounds entry numbers (a file no longer written: its
 * indexCount); 0 trusts only the file's capacity (the file being written).
 * The walk follows prev only to strictly older entries, so it ends.
 * visit returns non-zero to stop; that value is returned, else 0.
 */
typedef int (*shmq_index_visit_fn)(void *arg, int64_t phys, int32_t entry);
int shmq_index_file_lookup(const shmq_index_file_t *f, int32_t key_hash, int64_t begin_ts,
                           int64_t end_ts, int32_t limit_count, shmq_index_visit_fn visit,
                           void *arg);

#endif
