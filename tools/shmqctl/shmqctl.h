/*
 * shmqctl: the operator tool for offline work on a store (gen, dump, verify,
 * recover).  This header is shared by the tool's files only: the parsed
 * command line, the command entry points and the small helpers they share
 * (strict number parsing, raw record access, JSON and text output, progress).
 *
 * Exit codes: 0 success, 1 failure (a problem found, an I/O or store error),
 * 2 usage or configuration error.
 */
#ifndef SHMQCTL_H
#define SHMQCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "format/config.h"
#include "format/message.h"
#include "store/store.h"

#define SHMQCTL_VERSION "0.1.0"

#define SHMQCTL_EXIT_OK    0
#define SHMQCTL_EXIT_FAIL  1
#define SHMQCTL_EXIT_USAGE 2

/* Options a command accepts (bit mask per command). */
#define SHMQCTL_OPT_JSON     0x001
#define SHMQCTL_OPT_TOPIC    0x002
#define SHMQCTL_OPT_COUNT    0x004
#define SHMQCTL_OPT_SIZE     0x008
#define SHMQCTL_OPT_QUEUES   0x010
#define SHMQCTL_OPT_TAGS     0x020
#define SHMQCTL_OPT_KEYS     0x040
#define SHMQCTL_OPT_FROM     0x080
#define SHMQCTL_OPT_NO_CHECK 0x100
#define SHMQCTL_OPT_FORCE    0x200
#define SHMQCTL_OPT_REBUILD  0x400
#define SHMQCTL_OPT_CTRL     0x800 /* controller: --controller HOST:PORT */
/* Online commands (topic, send, consume). */
#define SHMQCTL_OPT_TOPIC_CONF 0x10000  /* --read-queues --write-queues --perm --order */
#define SHMQCTL_OPT_SEND       0x20000  /* --delay-level --queue --sharding-key --async */
#define SHMQCTL_OPT_GROUP      0x40000  /* --group */
#define SHMQCTL_OPT_TIMEOUT    0x80000  /* --timeout MS */
#define SHMQCTL_OPT_FROM_WORD  0x100000 /* --from takes first|last (with SHMQCTL_OPT_FROM) */
#define SHMQCTL_OPT_KEYS_ARG   0x200000 /* --keys takes a value (with SHMQCTL_OPT_KEYS) */
/* query, offset-by-time: --key --begin --end --max --msg-id --uniq-key --phys-offset --time */
#define SHMQCTL_OPT_QUERY        0x400000
#define SHMQCTL_OPT_DELIVER      0x1000000  /* send: --deliver-at TIME --deliver-after MS */
#define SHMQCTL_OPT_FAIL         0x2000000  /* consume: --fail */
#define SHMQCTL_OPT_SKIP_CORRUPT 0x4000000  /* consume: --skip-corrupt [TOPIC:]QUEUE:OFFSET */
#define SHMQCTL_OPT_ROLE         0x8000000  /* role: --promote --slave --master HOST:PORT --clear */
#define SHMQCTL_OPT_TO           0x10000000 /* offsets reset: --to */
#define SHMQCTL_OPT_MEMBER       0x20000000 /* consume: --broadcast --orderly */
#define SHMQCTL_OPT_RAW          0x40000000 /* dump, consume, query: --raw */
#define SHMQCTL_OPT_COMPRESS     0x80000000 /* send: --compress-over BYTES */

/* The parsed command line of one command. */
typedef struct shmqctl_args {
    const char *cmd;
    shmq_config_t cfg; /* defaults, then -c FILE, then --set/--store in order */
    bool json;
    bool no_check;
    bool force;   /* recover: cut the log at a corrupt record below the checkpoint */
    bool rebuild; /* recover: rebuild every ConsumeQueue from the CommitLog */
    const char *topic;
    int64_t count; /* -1 when not given */
    int64_t size;  /* -1 when not given */
    int32_t queues;
    const char *tags;
    bool keys;
    int64_t from; /* -1 when not given */
    /* online commands */
    const char *from_arg;     /* --from as given (consume: first|last) */
    const char *keys_arg;     /* --keys VALUE (send) */
    bool queues_set;          /* --queues was given */
    int32_t read_queues;      /* --read-queues, -1 when not given */
    int32_t write_queues;     /* --write-queues, -1 when not given */
    int32_t perm;             /* --perm, -1 when not given */
    bool order;               /* --order */
    int32_t delay_level;      /* --delay-level, 0 when not given */
    int32_t queue_id;         /* --queue, -1 when not given */
    const char *sharding_key; /* --sharding-key */
    int32_t async;            /* --async K: requests in flight, 0 = synchronous */
    const char *group;        /* --group */
    int64_t timeout_ms;       /* --timeout, -1 when not given */
    /* query, offset-by-time */
    const char *query_key; /* --key */
    const char *begin_arg; /* --begin TIME */
    const char *end_arg;   /* --end TIME */
    int64_t max;           /* --max, -1 when not given */
    const char *msg_id;    /* --msg-id */
    const char *uniq_key;  /* --uniq-key */
    int64_t phys_offset;   /* --phys-offset, -1 when not given */
    const char *time_arg;  /* --time TIME */
    /* scheduler: send at a time, consume --fail */
    const char *deliver_at_arg; /* --deliver-at TIME */
    int64_t deliver_after_ms;   /* --deliver-after MS, -1 when not given */
    bool fail;                  /* consume --fail: send every message back */
    bool broadcast;             /* consume --broadcast: every queue, positions of its own */
    bool orderly;               /* consume --orderly: queues held as locks */
    const char *skip_corrupt;   /* consume --skip-corrupt [TOPIC:]QUEUE:OFFSET */
    /* role */
    bool promote;          /* --promote */
    bool slave;            /* --slave */
    const char *master;    /* --master HOST:PORT */
    bool clear;            /* --clear */
    const char *to_arg;    /* offsets reset --to */
    bool raw;              /* --raw: compressed bodies as stored */
    int64_t compress_over; /* send --compress-over BYTES, -1 when not given */
    char **pos;            /* positional arguments after the command */
    int npos;
    /* controller */
    const char *controller; /* --controller HOST:PORT */
} shmqctl_args_t;

/* Commands: each returns an exit code. */
int shmqctl_cmd_gen(shmqctl_args_t *a);
int shmqctl_cmd_dump(shmqctl_args_t *a);
int shmqctl_cmd_verify(shmqctl_args_t *a);
int shmqctl_cmd_recover(shmqctl_args_t *a);
int shmqctl_cmd_topic(shmqctl_args_t *a);
int shmqctl_cmd_send(shmqctl_args_t *a);
int shmqctl_cmd_consume(shmqctl_args_t *a);
int shmqctl_cmd_status(shmqctl_args_t *a);
int shmqctl_cmd_restart(shmqctl_args_t *a);
int shmqctl_cmd_log_level(shmqctl_args_t *a);
int shmqctl_cmd_metrics(shmqctl_args_t *a);
int shmqctl_cmd_dlq(shmqctl_args_t *a);
int shmqctl_cmd_clean(shmqctl_args_t *a);
int shmqctl_cmd_query(shmqctl_args_t *a);
int shmqctl_cmd_offset_by_time(shmqctl_args_t *a);
int shmqctl_cmd_role(shmqctl_args_t *a);
int shmqctl_cmd_group(shmqctl_args_t *a);
int shmqctl_cmd_controller(shmqctl_args_t *a);

/* cmd_group_members.c: group list (group NULL) or group show GROUP of a running store. */
int shmqctl_group_members(shmqctl_args_t *a, const char *group);
struct shmq_ctl;
/* The pids of group's live members, "1, 2" in out; returns how many there are. */
int shmqctl_group_member_pids(const struct shmq_ctl *ctl, const char *group, char *out, size_t len);
/* The client id of the member of group holding topic/queue_id (in out), or NULL. */
const char *shmqctl_group_queue_owner(const struct shmq_ctl *ctl, const char *group,
                                      const char *topic, int32_t queue_id, char *out, size_t len);
int shmqctl_cmd_offsets(shmqctl_args_t *a);

/* ms since the epoch, or local "YYYY-MM-DD HH:MM:SS[.mmm]": 0, or -1 when s is neither. */
int shmqctl_parse_time(const char *s, int64_t *out);

/*
 * Attach to the running store at root (flags as shmq_ctl_attach).  Prints
 * "store <root> is not running" (or "is starting", or the error) and returns
 * SHMQCTL_EXIT_FAIL when it is not; 0 with *ctl attached otherwise.
 */
struct shmq_ctl;
int shmqctl_attach_running(const char *root, unsigned flags, struct shmq_ctl *ctl);

/*
 * Lock the stopped store at root for an offline change (shmq_store_lock).  Prints "store
 * <root> is in use but not running ..." (locked: starting, or held by a tool) or the error
 * and returns SHMQCTL_EXIT_FAIL; 0 with *fd holding the lock (shmq_store_unlock after).
 */
int shmqctl_store_lock(const char *root, int *fd);

/* The master that created ctl's block is alive and holds the store lock. */
bool shmqctl_master_alive(const struct shmq_ctl *ctl);

/* The role, where it comes from and the epoch table of the store at root ("role" object
 * of status; ctl: its control block when it runs, else NULL), and its text line. */
#include <jansson.h>
json_t *shmqctl_role_json(const char *root, const struct shmq_ctl *ctl, const shmq_config_t *cfg);
void shmqctl_role_text(json_t *r);

/*
 * topic delete (cmd_topic_delete.c): on a running store, with the topic
 * lock held (exists: the topic is in the table); on a stopped one.
 */
int shmqctl_topic_delete_online(shmqctl_args_t *a, struct shmq_ctl *ctl, const char *name,
                                bool exists);
int shmqctl_topic_delete_offline(shmqctl_args_t *a, const char *name);
/* The scheduler's and transactions' own topics: never deleted. */
bool shmqctl_topic_internal(const char *name);

/* Print the usage of a command (or of all with NULL) to f. */
void shmqctl_usage(FILE *f, const char *cmd);

/* ---- messages ------------------------------------------------------------ */

/* "shmqctl: <text>\n" on stderr. */
void shmqctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Report a failed library call: "shmqctl: <what>: <strerror(rc)>: <detail>".
 * Returns SHMQCTL_EXIT_FAIL.
 */
int shmqctl_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Usage error: message, then the command's usage on stderr.  Returns 2. */
int shmqctl_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- numbers ------------------------------------------------------------- */

/*
 * Parse a decimal integer strictly (the whole string, no sign unless min < 0)
 * into [min, max].  With suffixes, a single K, M or G (any case) multiplies by
 * 1024, 1024^2, 1024^3.  Returns 0 or -1.
 */
int shmqctl_parse_int(const char *s, int64_t min, int64_t max, bool suffixes, int64_t *out);

/* Monotonic milliseconds. */
int64_t shmqctl_now_ms(void);

/* ---- store access --------------------------------------------------------- */

/* Open the store of a->cfg (flags as shmq_store_open); prints the error. */
int shmqctl_store_open(shmqctl_args_t *a, shmq_store_t *st, unsigned flags,
                       shmq_recovery_report_t *rep);

/*
 * Open the store's CommitLog alone, read-only (no lock, no recovery, no
 * ConsumeQueues or metadata: a damaged queue or topics.json does not stop
 * dump and verify from reading the log); prints the error.
 */
/* 0 when the root is a store (its CommitLog directory or checkpoint exists); else
 * prints "no store at ..." and returns -ENOENT: offline commands that write refuse a
 * mistyped path instead of making a store there. */
int shmqctl_store_check(const shmqctl_args_t *a);

/*
 * mappedFileSizeCommitLog and mappedFileSizeConsumeQueue left at their
 * defaults take the size of the store's own files when it has any (its
 * first CommitLog segment, its first ConsumeQueue file): offline commands
 * read a store made with other sizes without repeating them.
 */
void shmqctl_sizes_from_files(shmq_config_t *cfg);

int shmqctl_log_open(shmqctl_args_t *a, shmq_commitlog_t *cl);

/*
 * Bytes of the CommitLog at logical offset off: a pointer into the mapping
 * and how many bytes remain in its segment; NULL if no segment holds off.
 * *seg (optional) receives the segment.
 */
const uint8_t *shmqctl_cl_bytes(const shmq_commitlog_t *cl, int64_t off, size_t *avail,
                                const shmq_mapped_file_t **seg);

/*
 * Decode the record at phys straight from the mapping (no wrote_pos bound:
 * read-only stores have none).  Returns as shmq_record_decode(), or
 * SHMQ_E_RANGE when no segment holds phys.
 */
int shmqctl_record_at(const shmq_commitlog_t *cl, int64_t phys, unsigned flags, shmq_record_t *rec);

/* True when the bytes at off are the zero tail after the end of the data. */
bool shmqctl_is_zero_tail(const shmq_commitlog_t *cl, int64_t off);

/* Offset of the first non-zero byte in buf[0..len), or -1 if all zero. */
int64_t shmqctl_first_nonzero(const uint8_t *buf, size_t len);

/* Path of the CommitLog segment that holds (or would hold) off. */
void shmqctl_cl_seg_path(const shmq_commitlog_t *cl, int64_t off, char *out, size_t len);

/* tagsCode a ConsumeQueue unit should carry for rec (§4.3, delay topic §10). */
int64_t shmqctl_expected_tags_code(const shmq_config_t *cfg, const shmq_record_t *rec);

/* ---- output -------------------------------------------------------------- */

/* Write bytes to f, printable ASCII as is and anything else as \xNN. */
void shmqctl_print_text(FILE *f, const char *s, size_t len);

/* True when buf is valid UTF-8 without control characters other than \t \n \r. */
bool shmqctl_utf8_printable(const uint8_t *buf, size_t len);

/* A JSON string of bytes; invalid UTF-8 sequences become U+FFFD. */
json_t *shmqctl_json_str(const char *s, size_t len);

/* base64 of buf as a JSON string. */
json_t *shmqctl_json_base64(const uint8_t *buf, size_t len);

/* Print obj compactly on one line of stdout and release it.  0 or -1. */
int shmqctl_json_print(json_t *obj);

/* "YYYY-MM-DD HH:MM:SS.mmm" local time of ms since the epoch. */
void shmqctl_format_ts(int64_t ms, char *out, size_t len);

/* "a.b.c.d:port" or "[v6]:port". */
void shmqctl_format_host(const shmq_host_t *h, char *out, size_t len);

/* ---- progress ------------------------------------------------------------ */

/* Progress line on stderr, only when stderr is a terminal, redrawn <= every 100 ms. */
typedef struct shmqctl_progress {
    bool enabled;
    bool shown;
    int64_t last_ms;
    const char *label;
} shmqctl_progress_t;

void shmqctl_progress_init(shmqctl_progress_t *p, const char *label);

/* Redraw if 100 ms passed since the last draw: "<label>: <done>/<total> (<pct>%) <unit>". */
void shmqctl_progress_update(shmqctl_progress_t *p, int64_t done, int64_t total, const char *unit);

/* Erase the progress line (before other output, and at the end). */
void shmqctl_progress_clear(shmqctl_progress_t *p);

/* One consumed or queried message: text, or a JSON line (cmd_consume.c). */
struct shmq_msg_view;
int shmqctl_print_message(const shmqctl_args_t *a, const struct shmq_msg_view *v);

/*
 * The body of a record stored with sysflag (body[0..len)), for display:
 * decompressed into *owned (the caller frees it) unless raw or not
 * compressed, then *out and *out_len give it.  Returns 0 or the error of
 * shmq_body_decompress() (its detail says what failed).
 */
int shmqctl_body_decompress(int32_t sysflag, const void *body, size_t len, int32_t max_message_size,
                            bool raw, uint8_t **owned, const void **out, size_t *out_len);

/* "none", "lz4", "zstd", "zlib" or "unknown" for a compression type. */
const char *shmqctl_compression_name(int type);

#endif
