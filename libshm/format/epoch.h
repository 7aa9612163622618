/*
 * The epoch file: who was master from which CommitLog offset
 * (RocketMQ 5's <store>/epochFileCheckpoint, EpochFileCache and
 * CheckpointFile), so that a store that comes back after a failover can
 * find the last offset its log and the new master's agree on.
 *
 * Text, RocketMQ's layout exactly:
 *
 *   <number of entries>\n
 *   <CRC32 & 0x7FFFFFFF of the entry lines, each with its \n>\n
 *   <epoch>-<start offset>\n        one line per entry, oldest first
 *
 * An entry's log runs from its start offset to the next entry's start (the
 * newest one's to the end of the log).  Epochs rise strictly, start offsets
 * never fall.  A CRC of 0 means "not checked", as in RocketMQ.
 *
 * Read as untrusted input: anything else (a count that does not match, a
 * wrong CRC, a negative, signed, oversized or non-decimal number, a blank
 * or extra line, epochs out of order) is refused with a detail naming the
 * line, and the load falls back to epochFileCheckpoint.bak as RocketMQ's
 * does.  Written with shmq_file_write_atomic (tmp, fsync, .bak, rename).
 */
#ifndef SHMQ_FORMAT_EPOCH_H
#define SHMQ_FORMAT_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#define SHMQ_EPOCH_FILE "epochFileCheckpoint"

/* Entries a table holds: one per failover; the oldest may be dropped once
 * the cleaner removed their part of the log (shmq_epoch_drop_before). */
#define SHMQ_EPOCH_MAX 1024

/* The longest file shmq reads (every entry at its widest, and the header). */
#define SHMQ_EPOCH_FILE_MAX (SHMQ_EPOCH_MAX * 32 + 64)

typedef struct shmq_epoch_entry {
    int32_t epoch; /* >= 1 */
    int64_t start; /* the CommitLog offset this epoch's first record starts at */
} shmq_epoch_entry_t;

typedef struct shmq_epoch_table {
    size_t n;
    shmq_epoch_entry_t e[SHMQ_EPOCH_MAX];
} shmq_epoch_table_t;

/*
 * Parse a file's text (len bytes; need not be NUL-terminated).  A
 * trailing \r before a \n is taken as part of the line end, as Java's
 * reader does.  SHMQ_E_CORRUPT with a detail naming the line.
 */
int shmq_epoch_parse(const char *text, size_t len, shmq_epoch_table_t *t);

/* The file's text for t into buf; its length, or SHMQ_E_RANGE if cap is too small. */
int shmq_epoch_format(const shmq_epoch_table_t *t, char *buf, size_t cap);

/*
 * Load <root>/epochFileCheckpoint, falling back to its .bak when the main
 * file is missing, empty or damaged (logged by the caller from the detail).
 * Neither present: 0 with an empty table.  Both unusable: SHMQ_E_CORRUPT
 * naming both.
 */
int shmq_epoch_load(const char *root, shmq_epoch_table_t *t);

/* Save t (nothing is written for an empty table, as RocketMQ does). */
int shmq_epoch_save(const char *root, const shmq_epoch_table_t *t);

/*
 * Add epoch from offset start: it must be above the newest epoch and start
 * at or after its start (SHMQ_E_RANGE otherwise; SHMQ_E_TOO_BIG when full).
 */
int shmq_epoch_append(shmq_epoch_table_t *t, int32_t epoch, int64_t start);

/* The newest epoch (0 when the table is empty). */
int32_t shmq_epoch_last(const shmq_epoch_table_t *t);

/* Where entry i's log ends: the next entry's start, or log_end for the newest. */
int64_t shmq_epoch_end(const shmq_epoch_table_t *t, size_t i, int64_t log_end);

/*
 * The last offset two logs agree on: newest first, the first epoch both
 * tables hold with the same start gives min(its end here, its end there).
 * -1 when they share no epoch (the log cannot be matched: start over
 * from the other's).  local_end / remote_end: each log's end.
 */
int64_t shmq_epoch_consistent_point(const shmq_epoch_table_t *local, int64_t local_end,
                                    const shmq_epoch_table_t *remote, int64_t remote_end);

/*
 * A log truncated to offset: entries that start at or after it go (the
 * newest that remains then ends at offset).  Returns how many went.
 */
size_t shmq_epoch_truncate(shmq_epoch_table_t *t, int64_t offset);

/*
 * The log's oldest segments were removed up to offset: entries that end at
 * or before it go, except the newest (RocketMQ's truncatePrefix).
 */
size_t shmq_epoch_drop_before(shmq_epoch_table_t *t, int64_t offset);

#endif
