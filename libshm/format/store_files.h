/*
 * The small files at a store's root: `lock`, `abort`, `checkpoint`, and the
 * JSON metadata under `config/` (topics, consumer offsets, delay offsets,
 * subscription groups), plus the atomic-write helper they share.
 *
 * lock: an OFD lock on byte 0 of <root>/lock, released by the kernel when the
 *   holder dies; the file holds the holder's pid and start time so that a
 *   refused opener can name it.
 * abort: exists while a store is open for writing; present at start means the
 *   last run did not stop cleanly (abnormal recovery).  Contains the pid.
 * checkpoint: RocketMQ's 4096-byte file of big-endian longs.
 * JSON: written atomically (temp file, fsync, rename, .bak kept, directory
 *   fsync); read accepting RocketMQ's bare integer keys ({0:5,1:7}); a
 *   missing or damaged main file falls back to <name>.bak (json_meta.h).
 *
 * Access (docs/security.md): every file and directory created in a store
 * gives others no permission (SHMQ_FILE_MODE, SHMQ_LOCK_MODE, SHMQ_DIR_MODE;
 * a umask can only narrow them).  No name in a store is followed when it is
 * a symbolic link, and a name that is not a regular file where one is
 * expected (a FIFO, a device) is refused, naming it.
 */
#ifndef SHMQ_STORE_FILES_H
#define SHMQ_STORE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* ---- modes and opens -------------------------------------------------------- */

#define SHMQ_FILE_MODE 0640 /* data and metadata: the store group (consumers) reads */
#define SHMQ_LOCK_MODE 0600 /* lock: the store's processes alone (clients register by socket) */
#define SHMQ_DIR_MODE  0750

/*
 * Open a file of a store: O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC are added to
 * flags, then the descriptor must be a regular file.  A symbolic link
 * (-ELOOP) or a FIFO, device, socket or directory (-EINVAL) is refused with
 * a detail naming path.  A missing file is -ENOENT without a detail.
 * Returns the descriptor or a negative errno.
 */
int shmq_store_file_open(const char *path, int flags, mode_t mode);

/* fstat fd (the file path names in errors); on failure closes fd and returns -errno with a detail.
 */
int shmq_file_fstat(int fd, const char *path, struct stat *st);

/* The same relative to the directory dirfd (name has no '/'); path names it in errors. */
int shmq_store_file_openat(int dirfd, const char *name, const char *path, int flags, mode_t mode);

/*
 * Start-time checks of a store root that exists (shmqd): the root and its
 * directories commitlog/, consumequeue/, index/ and config/ must be
 * directories owned by this process's effective user and writable by nobody
 * else (neither group nor others): -EPERM naming the first that is not.
 * Then, for the root, those directories and the names directly in them,
 * calls warn(arg, path) for each one others may read (mode o+r), at most
 * max_warn times, and returns the number found (>= 0).  Changes no mode.
 */
int shmq_store_check_root(const char *root, void (*warn)(void *arg, const char *path), void *arg,
                          int max_warn);

/* ---- lock ---------------------------------------------------------------- */

/*
 * Take the store lock (creating root and the lock file if needed, the file
 * with SHMQ_LOCK_MODE).  On success *fd holds the lock until
 * shmq_store_unlock().  The lock file must be a regular file (not a link)
 * owned by this process's effective user and give others no permission:
 * -EPERM otherwise, naming it.  If another process holds it: SHMQ_E_LOCKED,
 * with a detail naming the processes that hold a lock on the file (pid,
 * command, uid), found in /proc, never a pid merely written in the file.
 */
int shmq_store_lock(const char *root, int *fd);
void shmq_store_unlock(int fd);

/* A process holding locks on <root>/lock, as /proc shows it. */
typedef struct shmq_lock_holder {
    long pid;
    long uid;         /* effective uid, -1 if unknown */
    char comm[32];    /* the command name */
    bool store_bytes; /* holds a lock on byte 0 or 1 (the master's or the workers') */
} shmq_lock_holder_t;

/*
 * Find the processes (this one included) holding a lock on <root>/lock:
 * fills at most max entries and returns how many were found (may exceed
 * max), 0 when none or no lock file.  Processes whose /proc entries this
 * process cannot read are not seen.
 */
int shmq_store_lock_holders(const char *root, shmq_lock_holder_t *out, int max);

/*
 * Replace <root>/lock by a new empty file (lock.new, created O_EXCL with
 * SHMQ_LOCK_MODE, renamed over it, directory fsynced).  Locks on the old file
 * stay on the old file and no longer conflict with anyone's.  Only for a lock
 * file on which no process of the store's user holds a lock.
 */
int shmq_store_lock_renew(const char *root);

/* ---- abort --------------------------------------------------------------- */

bool shmq_abort_exists(const char *root);
int shmq_abort_create(const char *root); /* writes the pid, fsyncs file and dir */
int shmq_abort_remove(const char *root); /* unlink + dir fsync; missing is fine */

/* ---- checkpoint ---------------------------------------------------------- */

#define SHMQ_CHECKPOINT_SIZE 4096

typedef struct shmq_checkpoint {
    int64_t physic_msg_ts;  /* offset 0: store time of last flushed CommitLog message */
    int64_t logics_msg_ts;  /* offset 8: store time of last dispatched message (CQ flushed) */
    int64_t index_msg_ts;   /* offset 16: end time of the last full, flushed index file */
    int64_t master_flushed; /* offset 24 */
    int64_t confirm_phys;   /* offset 32 */
    /*
     * shmq's record-CRC marker (offsets 64..87, which RocketMQ neither reads nor
     * writes): every record at or after this CommitLog offset was written by
     * shmq and carries a __CRC32# tail, so readers require one there; valid
     * when crc_marker.  No marker: a new file, a damaged one, or a checkpoint
     * another program wrote since (the marker holds a copy of
     * physicMsgTimestamp, which must match).  docs/formats.md "checkpoint".
     */
    bool crc_marker;
    int64_t crc_tail_from;
} shmq_checkpoint_t;

/* Bytes 64..71 of the checkpoint when it holds shmq's record-CRC marker. */
#define SHMQ_CHECKPOINT_CRC_MAGIC "SHMQCRC1"

/* Read <root>/checkpoint; a missing file yields all zeros and returns 0. */
int shmq_checkpoint_read(const char *root, shmq_checkpoint_t *cp);

/* Write <root>/checkpoint (4096 bytes) durably (write in place + fdatasync). */
int shmq_checkpoint_write(const char *root, const shmq_checkpoint_t *cp);

/* min(physic, logics) - 3000, floored at 0 (§9.1). */
int64_t shmq_checkpoint_min_ts(const shmq_checkpoint_t *cp);

/* ---- atomic file write --------------------------------------------------- */

/*
 * Replace path with data: write path.tmp (a stale one is unlinked first,
 * then it is created O_EXCL | O_NOFOLLOW with SHMQ_FILE_MODE), fsync it,
 * keep the old file as path.bak, rename the tmp over path, fsync the
 * directory; names are resolved relative to a descriptor of the directory.
 */
int shmq_file_write_atomic(const char *path, const void *data, size_t len);

/*
 * Read a whole file into a malloc'd NUL-terminated buffer (max_len bounds
 * it).  -ENOENT if missing.  Follows a symbolic link (configuration files
 * outside the store); a name that is not a regular file is refused.
 */
int shmq_file_read_all(const char *path, size_t max_len, char **data, size_t *len);

/* shmq_file_read_all for a file of a store: a symbolic link is refused (-ELOOP). */
int shmq_store_file_read_all(const char *path, size_t max_len, char **data, size_t *len);

/* Allocate [0, size) of fd (no hole left to fault on later): 0, or -ENOSPC when the disk is full.
 */
int shmq_file_allocate(int fd, int64_t size);

/*
 * Unmap the size bytes at *base and close *fd, each only when set, leaving
 * *base NULL and *fd -1: the close of a mapped store file (segment, IndexFile).
 */
void shmq_store_file_unmap(uint8_t **base, size_t size, int *fd);

/*
 * What tells a reader that a file it loaded has changed: the identity and
 * last change lstat gives (all zero for a missing file).  Readers that poll
 * a file (acl.json, subscriptionGroup.json) reload when the stamp differs.
 */
typedef struct shmq_file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} shmq_file_stamp_t;

/*
 * Take path's stamp (path NULL, as when it did not fit, or a file lstat
 * cannot see: all zero).  Returns false when known is true and the stamp is
 * the one already in *s; otherwise stores it in *s and returns true (load
 * the file again).
 */
bool shmq_file_stamp_update(shmq_file_stamp_t *s, bool known, const char *path);

/* fsync a directory (after creating, renaming or deleting a name in it). */
int shmq_file_fsync_dir(const char *dir);

/* mkdir -p (SHMQ_DIR_MODE), fsyncing the parent of every directory it creates. */
int shmq_file_mkdirs(const char *path);

/* ---- JSON metadata ------------------------------------------------------- */

/*
 * Loaders (shmq_*_load) initialise *t themselves (free a previous table
 * first); on failure *t is left empty.  Both files missing is an empty table
 * and returns 0.  A main file that is missing falls back to <name>.bak; one
 * that is damaged (content that does not parse, a repeated key, no table)
 * too, and if .bak is unusable the load fails with SHMQ_E_JSON naming both
 * files.  A damaged entry is replaced by the .bak's or dropped, and values
 * are checked against the store, each with a warning (json_meta.h).
 * Savers write pretty JSON to <root>/config/<name> (created if needed)
 * through shmq_file_write_atomic; a save that adds entries is written twice
 * so that .bak holds them too.
 */

/* Queue-offset maps: consumerOffset.json and delayOffset.json. */
typedef struct shmq_offset_entry {
    char key[512];    /* "topic@group" for consumer offsets; "" for delay offsets */
    int32_t queue_id; /* queue id, or delay level */
    int64_t offset;
} shmq_offset_entry_t;

/*
 * A consumer offset's "topic@group" key: copied into key (sizeof(o->key)
 * bytes), the '@' replaced by a NUL, so that key is the topic and *group
 * points at the group within it.  False when the key has no '@' (the loader
 * refuses such keys; topics cannot contain '@').
 */
bool shmq_offset_key_split(const shmq_offset_entry_t *o, char key[512], char **group);

typedef struct shmq_offset_table {
    shmq_offset_entry_t *entries;
    size_t count;
    size_t cap;
    int64_t data_version_counter; /* delayOffset.json dataVersion.counter (kept as loaded) */
    int64_t data_version_state;   /* dataVersion.stateVersion (kept as loaded) */
} shmq_offset_table_t;

/* Set (insert or replace) key/queue -> offset. */
int shmq_offset_table_set(shmq_offset_table_t *t, const char *key, int32_t queue_id,
                          int64_t offset);
/* Look up; SHMQ_E_NOT_FOUND if absent. */
int shmq_offset_table_get(const shmq_offset_table_t *t, const char *key, int32_t queue_id,
                          int64_t *offset);
void shmq_offset_table_free(shmq_offset_table_t *t);

/* config/consumerOffset.json: {"offsetTable":{"topic@group":{0:5,1:7}}}.  The save's
 * dataVersion continues the file's (counter + 1); the table's counter is not used. */
int shmq_consumer_offsets_load(const char *root, shmq_offset_table_t *t);
int shmq_consumer_offsets_save(const char *root, const shmq_offset_table_t *t);
/* The save of a table some offsets were removed from (a group or a topic deleted): made
 * twice, so that the .bak lacks them too (the load restores an offset the .bak holds and
 * the file lacks, for a damaged file). */
int shmq_consumer_offsets_save_dropped(const char *root, const shmq_offset_table_t *t);
/* The document a save writes, without dataVersion, as compact JSON text (malloc'd, *len
 * bytes, NUL-terminated): what a master sends its slaves.  0 or -ENOMEM. */
int shmq_consumer_offsets_dump(const shmq_offset_table_t *t, char **text, size_t *len);

/* config/delayOffset.json: {"offsetTable":{1:5,2:0}} (key "", queue_id = level). */
int shmq_delay_offsets_load(const char *root, shmq_offset_table_t *t);
int shmq_delay_offsets_save(const char *root, const shmq_offset_table_t *t);

/* Topic configuration as in topics.json. */
#define SHMQ_PERM_PRIORITY 8
#define SHMQ_PERM_READ     4
#define SHMQ_PERM_WRITE    2
#define SHMQ_PERM_INHERIT  1

typedef struct shmq_topic_config {
    char name[256];
    int32_t read_queue_nums;
    int32_t write_queue_nums;
    int32_t perm;
    bool order;
    int32_t topic_sys_flag;
    bool multi_tag; /* topicFilterType MULTI_TAG */
    /* RocketMQ 5.x topic attributes ("queue.type", "message.type", ...) kept
     * verbatim as compact JSON object text so that a load/save round trip
     * preserves them; "" means {}. */
    char attributes[512];
} shmq_topic_config_t;

typedef struct shmq_topic_table {
    shmq_topic_config_t *topics;
    size_t count;
    size_t cap;
    int64_t data_version_counter; /* dataVersion.counter; put/remove increment it */
    int64_t data_version_state;   /* dataVersion.stateVersion (kept as loaded) */
} shmq_topic_table_t;

/* Insert or replace by name. */
int shmq_topic_table_put(shmq_topic_table_t *t, const shmq_topic_config_t *tc);
const shmq_topic_config_t *shmq_topic_table_get(const shmq_topic_table_t *t, const char *name);
int shmq_topic_table_remove(shmq_topic_table_t *t, const char *name);
void shmq_topic_table_free(shmq_topic_table_t *t);

int shmq_topics_load(const char *root, shmq_topic_table_t *t);
int shmq_topics_save(const char *root, const shmq_topic_table_t *t);

/* Subscription groups (subscriptionGroup.json); the fields shmq uses. */
typedef struct shmq_group_config {
    char name[256];
    bool consume_enable;
    bool consume_broadcast_enable;
    bool consume_from_min_enable;
    bool consume_message_orderly;
    int32_t retry_max_times;                  /* default 16 */
    int32_t retry_queue_nums;                 /* default 1 */
    int64_t broker_id;                        /* default 0 */
    int32_t which_broker_when_consume_slowly; /* default 1 */
} shmq_group_config_t;

typedef struct shmq_group_table {
    shmq_group_config_t *groups;
    size_t count;
    size_t cap;
    int64_t data_version_counter; /* dataVersion.counter; put increments it */
    int64_t data_version_state;   /* dataVersion.stateVersion (kept as loaded) */
} shmq_group_table_t;

/* Defaults for a new group named name. */
void shmq_group_config_init(shmq_group_config_t *g, const char *name);
int shmq_group_table_put(shmq_group_table_t *t, const shmq_group_config_t *g);
const shmq_group_config_t *shmq_group_table_get(const shmq_group_table_t *t, const char *name);
void shmq_group_table_free(shmq_group_table_t *t);

int shmq_groups_load(const char *root, shmq_group_table_t *t);
int shmq_groups_save(const char *root, const shmq_group_table_t *t);

/*
 * Turn RocketMQ's JSON dialect (bare integer object keys) into strict JSON
 * by quoting such keys; strings and escapes are left untouched.  Returns a
 * malloc'd string or NULL on allocation failure.
 */
char *shmq_json_quote_int_keys(const char *in, size_t len);

#endif
