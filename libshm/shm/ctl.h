/*
 * The control block: the shared memory every shmq process of one store
 * attaches to, found from the store path alone.
 *
 * Three POSIX shared-memory objects per store, created by the master
 * (shmqd) after recovery, allocated in full at once (posix_fallocate: a
 * full /dev/shm is an error at creation naming the bytes needed, never a
 * SIGBUS later), given the client group (clientUnixGroup) and removed at
 * its clean stop:
 *
 *   /shmq-<hash>       the control block proper: header (with a copy of the
 *                      effective configuration), positions, worker table,
 *                      ring table, topic table, queue table, counters.
 *                      Mode 0640: written only by the store's processes
 *                      (master, workers, shmqctl as the store's user);
 *                      clients (producers, consumers, read-only tools) open
 *                      it O_RDONLY and map it PROT_READ.
 *   /shmq-<hash>.cons  the consumer area: consumer group offsets.  Mode
 *                      0640, written by the master only (and on a slave
 *                      by the ha-receiver, moving offsets forward to its
 *                      master's): consumers commit through
 *                      <root>/shmq.sock (reg.h), which validates.
 *   /shmq-<hash>.wake  the wake-up words clients write (producers -> writer,
 *                      sleepers' counts) and a statistic; mode 0660.  No
 *                      process trusts a value it reads there: a scribbler
 *                      costs latency at worst (every sleep has a timeout).
 *
 * Producer rings are not here: each is a memfd of its own (ring.h), made
 * by the master at registration and passed to its producer alone; the
 * control block keeps the master's ring table and the writer's own heads.
 *
 * <hash> is 16 hex digits of FNV-1a over the store root's realpath.
 *
 * Rules (STYLE.md): no pointers inside, offsets only; every position is a
 * 64-bit CommitLog offset that only grows, has one writer (named beside it),
 * is published with a release store after the data it covers and read with
 * an acquire load; hot positions of different writers sit on separate cache
 * lines.  Nothing here is the only copy of anything: the master rebuilds
 * every value from the files at start.
 *
 * Sleeping: a futex word (seq) is paired with a count of sleepers
 * (waiters), the two halves of one 64-bit word changed together.  A sleeper
 * registers (adds one to waiters, reading seq in the same atomic step),
 * re-checks its condition, then sleeps on seq with a timeout (never
 * unbounded).  A publisher that finds waiters non-zero bumps seq and clears
 * waiters in one step, then calls FUTEX_WAKE once for every sleeper: the
 * waker consumes the registrations, so a busy system makes no wake-up
 * system call, and the publishes that follow a wake make none either until
 * someone sleeps again.  A sleeper that returns without being woken (its
 * condition held, a timeout, a signal) takes its registration back only
 * while seq is unchanged (no wake consumed it); a sleeper killed while
 * asleep leaves its registration behind until the next wake clears it: one
 * extra system call, never one per publish for the rest of the run.
 */
#ifndef SHMQ_CTL_H
#define SHMQ_CTL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "format/acl.h"
#include "base/clock.h"
#include "format/config.h"
#include "store/fence.h"
#include "format/names.h"
#include "format/store_files.h"
#include "shmq/types.h"

#define SHMQ_CTL_MAGIC      0x314c5443514d4853ULL /* "SHMQCTL1" little-endian */
#define SHMQ_CTL_CONS_MAGIC 0x31534e4f434d4853ULL /* "SHMCONS1" */
#define SHMQ_CTL_WAKE_MAGIC 0x314b4157434d4853ULL /* "SHMCWAK1" */
#define SHMQ_CTL_VERSION    15

#define SHMQ_CTL_MAX_WORKERS 12
#define SHMQ_CTL_MAX_RINGS   64
#define SHMQ_RING_SLOTS      256 /* completion slots per ring = max requests in flight */
#define SHMQ_CTL_MAX_TOPICS  1024
#define SHMQ_CTL_MAX_QUEUES  16384 /* power of two: open addressing */
#define SHMQ_CTL_MAX_OFFSETS 8192  /* consumer group offsets (group, topic, queue) */
#define SHMQ_CTL_MAX_MEMBERS 256   /* consumer group members: one per client connection */

/* A worker whose heartbeat is older than this has not turned its loop: the master warns,
 * shmqctl status shows it stale. */
#define SHMQ_HEARTBEAT_STALE_MS 5000

/* Worker roles: index into the worker table. */
enum shmq_role {
    SHMQ_ROLE_WRITER = 0,
    SHMQ_ROLE_FLUSHER = 1,
    SHMQ_ROLE_DISPATCHER = 2,
    SHMQ_ROLE_INDEXER = 3,
    SHMQ_ROLE_SCHEDULER = 4,
    SHMQ_ROLE_CLEANER = 5,
    SHMQ_ROLE_HA_SENDER = 6,   /* a master: streams the CommitLog to slaves */
    SHMQ_ROLE_HA_RECEIVER = 7, /* a slave: appends the master's CommitLog in the writer's place */
    SHMQ_ROLE_METRICS = 8,     /* serves the metrics over HTTP (metricsListen) */
    SHMQ_ROLE_GATEWAY = 9, /* RocketMQ's remoting protocol for RocketMQ clients (gatewayEnable) */
    SHMQ_ROLE_CTRL_AGENT = 10, /* the store's link to the controller group (controller mode) */
    SHMQ_ROLE_COUNT = 11
};

/* Name of a role as in `ps`, status and `shmqctl restart`: "writer", ... */
const char *shmq_role_name(enum shmq_role role);
/* Role by name; -1 if unknown. */
int shmq_role_from_name(const char *name);

/* Store (master) states. */
enum shmq_store_state {
    SHMQ_STATE_STARTING = 0,
    SHMQ_STATE_RECOVERING = 1,
    SHMQ_STATE_RUNNING = 2,   /* serving */
    SHMQ_STATE_DRAINING = 3,  /* stopping: no new messages; the writer drains the rings */
    SHMQ_STATE_FINISHING = 4, /* stopping: rings drained; dispatch, flush, checkpoint */
    SHMQ_STATE_STOPPED = 5,
    SHMQ_STATE_FAILED = 6, /* a worker cannot run (configuration) or a flush failed */
};
const char *shmq_store_state_name(uint32_t state);

/* Worker states. */
enum shmq_worker_state {
    SHMQ_WORKER_NONE = 0,
    SHMQ_WORKER_STARTING = 1, /* forked, not attached yet */
    SHMQ_WORKER_RUNNING = 2,
    SHMQ_WORKER_STOPPING = 3,
    SHMQ_WORKER_EXITED = 4, /* waiting for restart (backoff) */
    SHMQ_WORKER_FAILED = 5, /* exited 2: not restarted */
};
const char *shmq_worker_state_name(uint32_t state);

/*
 * The futex word and its count of sleepers as one 64-bit word (see
 * "Sleeping" above): every change goes through `word` (ctl.c), so that a
 * wake clears the count and bumps seq in one step; the kernel sleeps on the
 * seq half.  seq and waiters name the halves for readers (status, tests).
 */
#define SHMQ_CTL_SLEEP_WORD                                                                        \
    union {                                                                                        \
        _Atomic uint64_t word;                                                                     \
        struct {                                                                                   \
            _Atomic uint32_t seq;     /* futex word, bumped by a wake */                           \
            _Atomic uint32_t waiters; /* registered sleepers, cleared by a wake */                 \
        };                                                                                         \
    }

/* A published position with its wake-up word; one cache line. */
typedef struct shmq_ctl_position {
    _Alignas(64) _Atomic int64_t pos;
    SHMQ_CTL_SLEEP_WORD; /* bumped when pos advances and someone sleeps */
} shmq_ctl_position_t;

/*
 * The checkpoint's mark: a CommitLog record boundary at or below cq_flushed
 * (every CommitLog byte and ConsumeQueue unit below it that the flusher has
 * flushed too is durable) and the store time of the last record that ends at
 * or below it (0: none known).  Written by the dispatcher when it publishes
 * cq_flushed (before it), and by the master at start; read by the flusher,
 * which names it in the checkpoint (confirmPhyOffset, physicMsgTimestamp,
 * logicsMsgTimestamp) once flushed reaches it, without reading the records.
 *
 * One writer at a time.  Two slots written in turn, each stamped with its
 * generation first and last, and `gen` naming the newest whole one
 * (slot[gen & 1]; 0: none published): a reader checks both stamps against
 * the gen it loaded, so it never takes the offset of one publication with
 * the time of another; a writer killed mid-way leaves the previous slot
 * whole and `gen` naming it (nothing stays locked, unlike a seqlock's odd
 * count), and the next writer writes the other slot again.
 */
typedef struct shmq_ctl_mark_slot {
    _Atomic uint64_t gen_begin; /* stored first */
    _Atomic int64_t pos;
    _Atomic int64_t ts;
    _Atomic uint64_t gen_end; /* stored last (release) */
} shmq_ctl_mark_slot_t;

typedef struct shmq_ctl_cq_mark {
    _Alignas(64) _Atomic uint64_t gen; /* the newest whole slot's generation (release) */
    shmq_ctl_mark_slot_t slot[2];
} shmq_ctl_cq_mark_t;

/* A wake-up word for one sleeper role (e.g. the writer waiting for ring entries). */
typedef struct shmq_ctl_wake {
    _Alignas(64) SHMQ_CTL_SLEEP_WORD;
} shmq_ctl_wake_t;

typedef struct shmq_ctl_worker {
    char name[16];
    _Atomic int32_t pid;              /* master */
    _Atomic uint32_t state;           /* master, and the worker for RUNNING/STOPPING */
    _Atomic int64_t heartbeat_ms;     /* the worker, each loop */
    _Atomic int64_t started_ms;       /* master */
    _Atomic uint32_t restarts;        /* master */
    _Atomic int32_t last_exit;        /* master: exit code, or -signal */
    _Atomic uint32_t restart_request; /* shmqctl sets, master clears */
    _Atomic int64_t work_done;        /* the worker: units of work done (for status) */
} shmq_ctl_worker_t;

/* ---- producer rings -------------------------------------------------------- */

/*
 * A ring is an object of its own (ring.h: shmq_ring_shm_t), created by the
 * master when a producer registers and handed to that producer alone.  The
 * control block keeps the master's record of it: who owns it, which object
 * it is, and the writer's own count of what it consumed (never the
 * producer's word for it).
 */

/* Ring states.  The master moves FREE -> ACTIVE (registration), ACTIVE -> ORPHANED (its
 * producer's connection ended) and DRAINED -> FREE (object closed); the writer moves
 * ORPHANED -> DRAINED once nothing published is left. */
enum shmq_ring_state {
    SHMQ_RING_FREE = 0,
    SHMQ_RING_ACTIVE = 2,   /* owned by a live producer */
    SHMQ_RING_ORPHANED = 3, /* owner gone: the writer drains published entries */
    SHMQ_RING_DRAINED = 4,  /* drained: the master frees it */
};

/* Completion slot states. */
enum shmq_slot_state { SHMQ_SLOT_FREE = 0, SHMQ_SLOT_PENDING = 1, SHMQ_SLOT_DONE = 2 };

/* Bytes of a completion's error text, NUL included (longer texts are cut). */
#define SHMQ_RING_DETAIL_MAX 192

/* One request's completion, written by the writer, read by the producer. */
typedef struct shmq_ring_slot {
    _Atomic uint32_t state; /* producer: FREE->PENDING; writer: PENDING->DONE (release) */
    int32_t status;         /* 0 stored, or a negative error */
    uint64_t req_id;        /* producer's id, echoed */
    int64_t phys_offset;    /* first record */
    int64_t end_pos;        /* end of the last record (SYNC_FLUSH waits for flushed >= it) */
    int64_t queue_offset;   /* first message's queue offset */
    int64_t store_ts;
    int32_t queue_id;
    int32_t size;  /* first record's size */
    int32_t count; /* messages stored (batch) */
    int32_t pad;
    /* With a negative status: what was wrong with this request (or "" when the writer
     * had nothing to add to the status), NUL-terminated; the producer copies it before
     * it trusts it. */
    char detail[SHMQ_RING_DETAIL_MAX];
} shmq_ring_slot_t;

/* The master's record of ring i (the control block's ring table). */
typedef struct shmq_ctl_ring {
    _Alignas(64) _Atomic uint32_t state; /* see enum shmq_ring_state */
    _Atomic int32_t owner_pid;           /* master: the producer (SO_PEERCRED) */
    _Atomic uint32_t owner_uid;          /* master */
    _Atomic int32_t master_fd;           /* master: its descriptor of the object, -1 */
    /* master: the producer's groups (SO_PEERCRED gid first), for the writer's ACL checks */
    _Atomic int32_t owner_ngroups;
    uint32_t owner_groups[SHMQ_ACL_GROUPS_MAX];
    _Atomic uint64_t claims;            /* master: bumped at each registration */
    char name[48];                      /* master: the object's name (status) */
    _Alignas(64) _Atomic uint64_t head; /* writer: bytes consumed (monotonic, trusted) */
    _Atomic uint64_t tail_seen;         /* writer: the last tail it found valid (status) */
} shmq_ctl_ring_t;

/* ---- topics and queues ------------------------------------------------------ */

enum shmq_entry_state { SHMQ_ENTRY_FREE = 0, SHMQ_ENTRY_ACTIVE = 1, SHMQ_ENTRY_DELETED = 2 };

typedef struct shmq_ctl_topic {
    _Atomic uint32_t seq;   /* seqlock: odd while the entry changes */
    _Atomic uint32_t state; /* enum shmq_entry_state */
    int32_t read_queue_nums;
    int32_t write_queue_nums;
    int32_t perm;
    int32_t order;
    /* bumped each time a slot takes a topic (insert): per-topic counts of an earlier
     * topic of the slot are not this one's (shmq_ctl_topic_count_t) */
    uint32_t incarnation;
    char name[SHMQ_TOPIC_MAX_ANY + 1];
} shmq_ctl_topic_t;

/* Messages stored in the topic of one topic-table slot (same index).  Single writer: the
 * writer (shm/stats.h).  The counts are the topic's while incarnation equals its table
 * entry's; the writer clears them when it first stores a message of a new incarnation. */
typedef struct shmq_ctl_topic_count {
    _Atomic uint32_t incarnation;
    uint32_t pad;
    _Atomic uint64_t messages_in; /* messages stored */
    _Atomic uint64_t bytes_in;    /* record bytes stored */
} shmq_ctl_topic_count_t;

typedef struct shmq_ctl_queue {
    _Atomic uint32_t state; /* FREE -> ACTIVE once, after the fields below (release) */
    int32_t queue_id;
    uint32_t topic_len;
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    _Atomic int64_t next_offset; /* writer: next queue offset to assign */
    _Atomic int64_t max_offset;  /* dispatcher: units built (consumers read below it) */
    _Atomic int64_t min_offset;  /* dispatcher at start, cleaner later */
    /* dispatcher: bumped when its topic was deleted and its files removed (before the offsets
     * above go back to 0, release): a reader holding the queue's files opens them again */
    _Atomic uint32_t incarnation;
} shmq_ctl_queue_t;

/*
 * A topic deletion in progress (shmqctl topic delete; docs/operations.md).
 * One at a time: shmqctl asks under the topic lock, after marking the
 * topic deleted in the table; the writer stops writing it and sets its
 * next offsets to 0, the dispatcher removes its ConsumeQueues once it has
 * dispatched past the writer's cut, shmqctl then drops the topic's
 * consumer offsets and records the cut (config/topicDeletes.json).  The
 * topic cannot be created again until then.
 */
typedef struct shmq_ctl_topic_del {
    /* shmqctl, under the topic lock: deletions asked (the topic written before, release) */
    _Alignas(64) _Atomic uint64_t request;
    /* shmqctl: the last request finished (offsets dropped, cut saved) */
    _Atomic uint64_t finished;
    /* writer: the last request taken: nothing of the topic is written after cut_pos, its
     * next offsets are 0 (cut_pos stored before, release) */
    _Atomic uint64_t writer_seen;
    _Atomic int64_t cut_pos;
    /* dispatcher: the last request whose ConsumeQueues are removed (its queue table entries
     * back to 0, incarnation bumped, before; release) */
    _Atomic uint64_t dispatcher_done;
    char topic[SHMQ_TOPIC_MAX_ANY + 1]; /* shmqctl: the topic of the last request */
} shmq_ctl_topic_del_t;

/* ---- counters ----------------------------------------------------------------- */

/* Finite bucket bounds of a histogram at most (shm/stats.h holds each kind's bounds). */
#define SHMQ_HIST_BOUNDS 16

/* A latency histogram.  Single writer (named where it is embedded); shm/stats.h. */
typedef struct shmq_ctl_hist {
    /* observations per bucket, not cumulative: bucket[i] holds values <= bound i and above
     * bound i-1; bucket[bounds] the values above every bound */
    _Alignas(64) _Atomic uint64_t bucket[SHMQ_HIST_BOUNDS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} shmq_ctl_hist_t;

typedef struct shmq_ctl_counters {
    _Alignas(64) _Atomic uint64_t messages_in; /* writer: messages stored */
    _Atomic uint64_t bytes_in;                 /* writer: record bytes stored */
    _Atomic uint64_t rejects;                  /* writer: entries refused as bad input */
    _Atomic uint64_t flush_errors;             /* flusher */
    /* writer: good entries it could not store, by cause (none of them is in rejects) */
    _Atomic uint64_t refused_disk_full; /* disk above the warning level, or no space left */
    _Atomic uint64_t refused_fenced;    /* the store is fenced after a failed flush */
    _Atomic uint64_t append_errors;     /* any other failure of the store (I/O, memory, ...) */
    _Alignas(64) _Atomic uint64_t messages_out; /* consumers: messages returned by pulls */
    /* writer: born timestamp (ms) of new messages to the completion of their request */
    shmq_ctl_hist_t send_latency;
    shmq_ctl_hist_t flush_latency; /* flusher: CommitLog flushes (count, total time) */
    /* The stages after the append, from the writer's stamps (shmq_ctl_stamps_t): flusher:
     * appended -> flushed; dispatcher: appended -> its ConsumeQueue units written */
    shmq_ctl_hist_t append_flush;
    shmq_ctl_hist_t append_dispatch;
    /* writer, controller mode: good entries refused because the store holds no lease from the
     * controller group as its set's master (SHMQ_E_NOT_MASTER; none of them in rejects) */
    _Alignas(64) _Atomic uint64_t refused_not_master;
} shmq_ctl_counters_t;

/*
 * The writer's append stamps, a sample: for at most one batch per
 * SHMQ_STAMP_EVERY_NS, where the batch's records end, when they were
 * appended (wall clock, ns) and how many there were, in a ring of
 * SHMQ_STAMPS (a second of stamps at least: more than flushIntervalCommitLog).
 * A stage that follows the writer (the flusher, the dispatcher) takes every
 * stamp its position has passed and adds now - append time to its
 * histogram, once per message of the batch (stats.h).  Statistics only: a
 * reader more than SHMQ_STAMPS stamps behind skips the oldest.
 */
#define SHMQ_STAMPS         1024
#define SHMQ_STAMP_EVERY_NS 1000000

typedef struct shmq_ctl_stamp {
    _Atomic int64_t end;    /* the batch's records end here */
    _Atomic int64_t ns;     /* appended at (CLOCK_REALTIME ns) */
    _Atomic uint64_t count; /* messages */
} shmq_ctl_stamp_t;

typedef struct shmq_ctl_stamps {
    /* writer: stamps written; slot seq % SHMQ_STAMPS is filled before (release) */
    _Alignas(64) _Atomic uint64_t seq;
    shmq_ctl_stamp_t slot[SHMQ_STAMPS];
} shmq_ctl_stamps_t;

/* ---- gateway (shmq-gateway, docs/gateway.md) ------------------------------------------- */

/*
 * The gateway's counters.  Single writer: shmq-gateway (relaxed loads and
 * stores, as shm/stats.h: statistics, never positions); `shmqctl metrics`,
 * the metrics endpoint and `shmqctl status` read them.  A restarted gateway
 * goes on from the values there (the gauges it sets again).
 */
typedef struct shmq_ctl_gateway {
    _Alignas(64) _Atomic uint64_t connections; /* gauge: clients connected now */
    _Atomic uint64_t accepted;                 /* connections accepted */
    _Atomic uint64_t refused;                  /* closed at once: gatewayMaxConnections */
    _Atomic uint64_t closed_bad;               /* closed for bad input or piled-up answers */
    _Atomic uint64_t closed_slow;              /* closed: a frame not whole in 30 s */
    _Atomic uint64_t requests_send;            /* SEND_MESSAGE(_V2), SEND_BATCH_MESSAGE */
    _Atomic uint64_t requests_pull;            /* PULL_MESSAGE */
    _Atomic uint64_t requests_other;           /* every other request, unsupported ones too */
    _Atomic uint64_t unsupported;              /* answered REQUEST_CODE_NOT_SUPPORTED */
    _Atomic uint64_t bad_frames;               /* frames that closed their connection */
    _Atomic uint64_t messages_sent;            /* messages handed to the store */
    _Atomic uint64_t send_errors;              /* sends and send-backs that failed */
    _Atomic uint64_t bytes_in;                 /* bytes read from clients */
    _Atomic uint64_t bytes_out;                /* bytes of answers and notices queued */
    _Atomic uint64_t held_pulls;               /* gauge: pulls held for long polling now */
} shmq_ctl_gateway_t;

/* ---- cleaner (shmq-cleaner, libshm/store/clean.h) ---------------------------------- */

/* The cleaner's shared state: disk watermarks, deletions, manual requests. */
typedef struct shmq_ctl_cleaner {
    shmq_ctl_wake_t wake; /* shmqctl clean -> cleaner: a manual request */
    /* Bit 0: the CommitLog path, bit 1: the consumequeue path is above
     * diskSpaceWarningLevelRatio.  Single writer: the cleaner.  While it is
     * non-zero the writer completes new entries with SHMQ_E_DISK_FULL. */
    _Alignas(64) _Atomic uint32_t disk_full;
    _Atomic int32_t used_pct;    /* cleaner: CommitLog path usage, percent rounded up; -1 unknown */
    _Atomic int32_t cq_used_pct; /* cleaner: consumequeue path usage, likewise */
    _Atomic int64_t checked_ms;  /* cleaner: wall time of the last disk check, 0 never */
    _Atomic uint64_t deleted_seq; /* cleaner: bumped after files were deleted (mappers drop them) */
    _Atomic uint64_t runs;        /* cleaner: deletion runs done */
    _Atomic uint32_t manual_request; /* shmqctl clean (fetch_add): requests made */
    _Atomic uint32_t manual_done;    /* cleaner: the last request whose first run is done */
    /* The last run that deleted something, or served a manual request:
     * seqlock (odd while the cleaner changes it). */
    _Atomic uint32_t last_seq;
    _Atomic uint32_t last_reason; /* enum shmq_clean_reason */
    _Atomic int64_t last_time_ms;
    _Atomic int32_t last_commitlog;    /* CommitLog segments deleted */
    _Atomic int32_t last_consumequeue; /* ConsumeQueue files deleted */
    _Atomic int32_t last_index;        /* index files deleted */
    _Atomic int32_t pad;
    _Atomic int64_t last_min; /* CommitLog minimum after that run */
} shmq_ctl_cleaner_t;

/* ---- indexer (shmq-indexer, libshm/store/index_service.h) -------------------------------- */

/* The indexer's shared state.  Single writer: the indexer. */
typedef struct shmq_ctl_index {
    /* A checkpoint indexMsgTimestamp: every index file whose endTimestamp is at or
     * below it was msynced after its last change (0: none yet).  The flusher copies
     * it into the checkpoint; after an unclean stop the master drops newer files. */
    _Alignas(64) _Atomic int64_t flushed_ts;
    _Atomic int32_t flush_error; /* first failed msync (negative errno): flushed_ts stays */
    _Atomic uint32_t files_seq;  /* bumped after an index file is created or removed */
} shmq_ctl_index_t;

/* ---- scheduler (shmq-scheduler: delay levels and the timer wheel) ------------------- */

/* The scheduler's progress, for status.  Single writer: the scheduler (relaxed stores:
 * statistics only; nothing is read through them). */
typedef struct shmq_ctl_scheduler {
    _Alignas(64) _Atomic uint64_t delay_delivered; /* delay-level messages written again */
    _Atomic int64_t delay_pending;    /* units of SCHEDULE_TOPIC_XXXX not delivered yet */
    _Atomic uint64_t timer_enqueued;  /* rmq_sys_wheel_timer messages put in the wheel */
    _Atomic uint64_t timer_delivered; /* timed messages written to their topic */
    _Atomic int64_t timer_pending;    /* units in the wheel not yet read */
    _Atomic int64_t timer_read_ms;    /* slots before this time are delivered; 0: no timer files */
    _Atomic uint64_t dropped;         /* due messages that could not be delivered (logged) */
    _Atomic uint64_t retries;         /* deliveries retried after a transient error */
    /* dispatcher -> scheduler: units for SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer (the
     * scheduler sleeps on it, so that ordinary messages never wake it) */
    shmq_ctl_wake_t wake;
} shmq_ctl_scheduler_t;

/* ---- replication ------------------------------------------------------------------ */

#define SHMQ_CTL_MAX_SLAVES 8
#define SHMQ_CTL_ADDR_MAX   64 /* "host:port" of a peer, NUL-terminated */

/* Slave entry states (ha-sender). */
enum shmq_slave_state {
    SHMQ_SLAVE_FREE = 0,
    SHMQ_SLAVE_CONNECTED = 1, /* addr and connected_ms set before (release) */
};

/* A slave connected to this master.  Single writer: the ha-sender. */
typedef struct shmq_ctl_slave {
    _Alignas(64) _Atomic uint32_t state; /* enum shmq_slave_state */
    _Atomic uint32_t in_sync;            /* acked within haMaxGapNotInSync of wrote */
    char addr[SHMQ_CTL_ADDR_MAX];
    _Atomic int64_t connected_ms;
    _Atomic int64_t acked;        /* the slave's last report: its log ends there */
    _Atomic int64_t sent;         /* the end of what was sent to it */
    _Atomic int64_t caught_up_ms; /* when acked last equalled wrote (lag in time) */
    /* the controller brokerId the slave gave in its handshake (SHMQ_HA_HELLO; 0: none given),
     * set before CONNECTED or, given later, before the next report is taken */
    _Atomic int64_t broker_id;
} shmq_ctl_slave_t;

/*
 * Replication.  On a master the ha-sender writes the slave table and
 * `replicated` (the block's position); on a slave the ha-receiver writes the
 * master fields.  Statistics and status, except `replicated`.
 */
typedef struct shmq_ctl_ha {
    shmq_ctl_slave_t slaves[SHMQ_CTL_MAX_SLAVES];
    /* a slave's ha-receiver */
    _Alignas(64) _Atomic uint32_t master_connected;
    char master_addr[SHMQ_CTL_ADDR_MAX];
    _Atomic int64_t master_end;    /* the master's log end, as its last frame showed */
    _Atomic int64_t last_frame_ms; /* when the last frame arrived */
    _Atomic uint64_t frames;       /* frames received */
    _Atomic uint64_t bytes;        /* log bytes received */
    /* connections closed for bad input (logged): by the ha-receiver on a slave (frames,
     * records), by the ha-sender on a master (handshakes, reports) */
    _Atomic uint64_t refused;
} shmq_ctl_ha_t;

/* ---- role changes (shmqctl role --promote) ------------------------------------------ */

enum shmq_promote_state {
    SHMQ_PROMOTE_NONE = 0,
    SHMQ_PROMOTE_ASKED = 1,   /* shmqctl: a request (release) */
    SHMQ_PROMOTE_RUNNING = 2, /* master: the ha-receiver is stopping */
    SHMQ_PROMOTE_DONE = 3,    /* master: a master now (epoch, epoch_start set before, release) */
    SHMQ_PROMOTE_FAILED = 4,  /* master: refused or failed (logged; error holds the code) */
};

/* A promotion request and its outcome; the epoch this store writes in. */
typedef struct shmq_ctl_role {
    _Alignas(64) _Atomic uint32_t promote; /* enum shmq_promote_state: shmqctl or the
                                              ctrl-agent NONE/DONE/FAILED -> ASKED (CAS), master
                                              the rest */
    _Atomic int32_t error;                 /* master: why a promotion failed */
    _Atomic int32_t epoch;                 /* master: this store's current epoch (0: none) */
    _Atomic int32_t overridden;            /* master: the role comes from <root>/roleOverride */
    _Atomic int64_t epoch_start;           /* master: the offset the current epoch starts at */
    /* master, before ready: a slave's log was checked against its master's epochs at start
     * (0: the master could not be asked; the ha-receiver checks before it follows) */
    _Atomic int32_t epoch_checked;
    /* ha-receiver: its log goes beyond what it shares with the master; ctrl-agent: the
     * controller named another master (roleOverride saved): shmqd stops the store and starts
     * again (the start cuts the divergent tail) */
    _Atomic uint32_t restart_store;
} shmq_ctl_role_t;

/* ---- the controller link (enableControllerMode) --------------------------------------- */

#define SHMQ_CTL_ROUTE_MAX 16 /* gateways of one broker set (the controller's replicas) */

/* One replica's gateway in the set's route. */
typedef struct shmq_ctl_route_entry {
    int64_t broker_id;               /* the controller's brokerId of the replica */
    uint32_t master;                 /* 1: the set's master (entry 0 when there is one) */
    char gateway[SHMQ_CTL_ADDR_MAX]; /* where its shmq-gateway serves RocketMQ clients */
} shmq_ctl_route_entry_t;

/* The set's gateways as the controller's leader last named them: the master's, then those of
 * the other live replicas (those without a gateway are left out).  What the gateway's
 * name-server role answers in controller mode (docs/gateway.md). */
typedef struct shmq_ctl_route {
    uint64_t updates;  /* bumped by every change the ctrl-agent publishes (0: none yet) */
    int64_t master_id; /* the set's master (-1: none) */
    int32_t master_epoch;
    uint32_t count; /* entries in e[] */
    shmq_ctl_route_entry_t e[SHMQ_CTL_ROUTE_MAX];
} shmq_ctl_route_t;
#define SHMQ_CTL_SSS_MAX 16 /* members of a sync-state set kept (a broker set's replicas) */

/* What the ctrl-agent last learnt from the controller group; written by the ctrl-agent only,
 * read by status.  Each field is a relaxed store: status shows a snapshot, no field guards
 * another (except the route, under its seqlock). */
typedef struct shmq_ctl_controller {
    _Alignas(64) _Atomic uint32_t connected; /* the last request was answered by the leader */
    _Atomic int32_t master_epoch;            /* the set's master epoch, as the leader said */
    _Atomic int64_t broker_id;               /* assigned by the controller (0: not registered) */
    _Atomic int64_t master_id;               /* the set's master (-1: none, 0: not known) */
    _Atomic int64_t last_heartbeat_ms;       /* wall clock of the last answered heartbeat */
    _Atomic uint64_t heartbeats;             /* heartbeats answered */
    _Atomic uint64_t failures;               /* requests not answered or refused */
    char leader[SHMQ_CTL_ADDR_MAX];          /* the leader's client address (relaxed bytes) */
    char master_addr[SHMQ_CTL_ADDR_MAX];     /* the set's master's address ("": none) */

    /* The set's gateways (version 14): written by the ctrl-agent only under route_seq, a
     * seqlock (odd while it writes: shmq_ctl_route_publish); read a consistent copy with
     * shmq_ctl_route_get. */
    _Alignas(64) _Atomic uint32_t route_seq;
    shmq_ctl_route_t route;
    /*
     * The sync-state set this store acknowledges by as master (allAckInSyncStateSet, docs/
     * controller.md).  Written by the ctrl-agent only, under sss_seq (odd while it writes;
     * shmq_ctl_sss_publish), read whole with shmq_ctl_sss_copy by the ha-sender and producers.
     * It always contains the set the controller holds: a member being added is published here
     * (and applied by the ha-sender, sss_applied) before the controller is asked; a member
     * being removed leaves only after the controller confirmed the smaller set.
     */
    _Atomic uint32_t sss_seq;
    _Atomic uint32_t sss_count;                /* members (0: none published yet) */
    _Atomic int32_t sss_epoch;                 /* the set's epoch at the controller */
    _Atomic uint32_t sss_pad;                  /* zero */
    _Atomic int64_t sss_master;                /* the master's brokerId (a member) */
    _Atomic int64_t sss_ids[SHMQ_CTL_SSS_MAX]; /* the members' brokerIds */
    _Atomic uint64_t sss_gen;                  /* bumped with each publication */
    /* ha-sender: the sss_gen its last `replicated` was computed by (release, after it) */
    _Atomic uint64_t sss_applied;
    /* The lease (docs/controller.md "Fencing"): CLOCK_MONOTONIC ms (shmq_mono_ms, the same in
     * every process of the host) until which this store may take writes as its set's master:
     * the send time of the last heartbeat the leader answered naming this store master, plus
     * half the group's controllerBrokerTimeoutMillis.  0: never granted.  It only grows.  The
     * writer reads it once a batch (relaxed: a deadline, no data read under it). */
    _Alignas(64) _Atomic int64_t lease_until_ms;
    /* the group's controllerBrokerTimeoutMillis, as its answers carry it (0: not known) */
    _Atomic int64_t broker_timeout_ms;
    _Atomic uint64_t leases; /* answers that granted or extended the lease */
} shmq_ctl_controller_t;

/* A consistent copy of the published sync-state set. */
typedef struct shmq_ctl_sss {
    uint32_t count;
    int32_t epoch;
    int64_t master;
    int64_t ids[SHMQ_CTL_SSS_MAX];
    uint64_t gen;
} shmq_ctl_sss_t;

/* Publish set (the ctrl-agent only): bumps sss_gen; readers see the old set or the new one. */
void shmq_ctl_sss_publish(shmq_ctl_controller_t *cs, const shmq_ctl_sss_t *set);

/*
 * A consistent copy of the published set (seqlock read side; any process, the block may be
 * mapped read-only): 0, SHMQ_E_NOT_FOUND when none was published, -EAGAIN when it stays
 * mid-change (the agent writes it in microseconds).
 */
int shmq_ctl_sss_copy(const shmq_ctl_controller_t *cs, shmq_ctl_sss_t *out);

/* True when id is a member of set. */
bool shmq_ctl_sss_has(const shmq_ctl_sss_t *set, int64_t id);

/* Operator settings that change while the store runs (the store's user: shmqctl). */
typedef struct shmq_ctl_ops {
    /* enum shmq_log_level: every process of the store logs up to it.  The master sets
     * it from logLevel at start; `shmqctl log-level` changes it. */
    _Alignas(64) _Atomic int32_t log_level;
} shmq_ctl_ops_t;

/* ---- the block ------------------------------------------------------------------ */

typedef struct shmq_ctl_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* sizeof(shmq_ctl_block_t) */
    uint64_t total_size;  /* whole mapping */
    uint64_t ring_size;   /* bytes of each ring's data, a power of two */
    uint32_t ring_count;
    uint32_t config_size; /* sizeof(shmq_config_t) */
    int32_t creator_pid;  /* the master */
    int32_t pad;
    uint64_t generation; /* random at each master start: attachers detect a new master */
    int64_t created_ms;
    /* Master, before ready: records at or after this CommitLog offset must carry
     * __CRC32# (the checkpoint's marker, shmq_checkpoint_t); readers require it. */
    int64_t crc_tail_from;
    char store_root[PATH_MAX];
    shmq_config_t config;   /* effective configuration (workers read it from here) */
    _Atomic uint32_t ready; /* 1, written last (release) */
    _Atomic uint32_t state; /* enum shmq_store_state, master */
} shmq_ctl_header_t;

typedef struct shmq_ctl_block {
    shmq_ctl_header_t hdr;

    /* Positions (CommitLog offsets).  min <= dispatched <= wrote, flushed <= wrote. */
    shmq_ctl_position_t wrote;      /* writer */
    shmq_ctl_position_t flushed;    /* flusher */
    shmq_ctl_position_t dispatched; /* dispatcher */
    shmq_ctl_position_t cq_flushed; /* dispatcher: ConsumeQueue units below it are flushed */
    shmq_ctl_cq_mark_t cq_mark;     /* dispatcher (master at start): the checkpoint's mark */
    shmq_ctl_position_t min;        /* cleaner (the master sets it at start) */
    shmq_ctl_position_t indexed;    /* indexer */
    shmq_ctl_position_t replicated; /* ha-sender */
    _Alignas(64) _Atomic int64_t writer_journal; /* writer: wrote_pos before its current batch */
    /* The first failed flush of any store file (negative errno): set once, by CAS from 0, by
     * the worker whose flush failed (flusher, dispatcher, indexer, scheduler; fence.h).
     * Writes stop, SYNC_FLUSH waiters get SHMQ_E_FENCED, the master stops the store. */
    _Atomic int32_t fenced_error;
    _Atomic int32_t fenced_part; /* the fencing worker: enum shmq_fence_part (status only) */

    /* Wake-up words of the store's processes (clients' are in shmq_ctl_wakes_t). */
    shmq_ctl_wake_t flusher_wake; /* writer -> flusher: data to flush (SYNC_FLUSH) */
    /* writer/flusher -> dispatcher and indexer: records to dispatch and index */
    shmq_ctl_wake_t dispatcher_wake;
    shmq_ctl_wake_t master_wake; /* anyone -> master: a request (restart) */

    shmq_ctl_worker_t workers[SHMQ_CTL_MAX_WORKERS];
    shmq_ctl_counters_t counters;
    shmq_ctl_stamps_t stamps;
    shmq_ctl_ring_t rings[SHMQ_CTL_MAX_RINGS];
    shmq_ctl_topic_t topics[SHMQ_CTL_MAX_TOPICS];
    shmq_ctl_topic_count_t topic_counts[SHMQ_CTL_MAX_TOPICS]; /* writer: per topics[] slot */
    shmq_ctl_queue_t queues[SHMQ_CTL_MAX_QUEUES];
    shmq_ctl_cleaner_t cleaner;       /* cleaner (see the struct) */
    shmq_ctl_index_t index;           /* indexer (see the struct) */
    shmq_ctl_scheduler_t scheduler;   /* scheduler (see the struct) */
    shmq_ctl_ha_t ha;                 /* ha-sender or ha-receiver (see the struct) */
    shmq_ctl_role_t role;             /* master, and shmqctl role's request (see the struct) */
    shmq_ctl_ops_t ops;               /* operator settings (see the struct) */
    shmq_ctl_topic_del_t topic_del;   /* a topic deletion (see the struct) */
    shmq_ctl_gateway_t gateway;       /* shmq-gateway (see the struct) */
    shmq_ctl_controller_t controller; /* ctrl-agent (see the struct) */
} shmq_ctl_block_t;

/* A consumer group offset. */
typedef struct shmq_ctl_offset {
    _Atomic uint32_t state; /* FREE -> ACTIVE once (release) */
    int32_t queue_id;
    char group[SHMQ_GROUP_MAX + 1];
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    _Atomic int64_t offset; /* next offset to consume */
} shmq_ctl_offset_t;

/*
 * A member of a consumer group (libshm/shm/groups.c): a consumer handle that
 * polls as a member registered over its connection to <root>/shmq.sock, and
 * is one as long as that connection lives.  Written by the master only,
 * under seq (odd while it writes); its members and shmqctl read it.
 *
 * Clustering: own holds the queues of topic the member consumes (bit q of
 * own[q / 64]), own_retry those of the group's retry topic; release the
 * ones it must give up (commit, then SHMQ_REG_RELEASE_QUEUE) because the
 * group was divided again.  A queue is owned by one member at most.
 * Broadcasting: no queues are divided (own and release stay empty).
 */
#define SHMQ_MEMBER_QWORDS    (SHMQ_TOPIC_QUEUES_MAX / 64)
#define SHMQ_MEMBER_RETRY_MAX 64 /* queues of the retry topic a bitmap holds (own_retry) */
#define SHMQ_MEMBER_CLIENT_ID 48
#define SHMQ_MEMBER_SUB_MAX   200 /* bytes of a subscription kept (a longer one is cut) */

enum shmq_member_flags {
    SHMQ_MEMBER_BROADCASTING = 0x1, /* RocketMQ's MessageModel.BROADCASTING */
    SHMQ_MEMBER_ORDERLY = 0x2,      /* holds its queues as locks (rebalanceLockMaxLiveTime) */
};

typedef struct shmq_ctl_member {
    _Atomic uint32_t seq;
    uint32_t state; /* SHMQ_ENTRY_FREE or SHMQ_ENTRY_ACTIVE */
    uint64_t id;    /* unique in the store's run; 0 when free */
    int32_t pid;
    uint32_t uid;
    uint32_t flags;           /* enum shmq_member_flags */
    int32_t queues_held;      /* bits set in own and own_retry */
    int64_t joined_ms;        /* wall clock */
    int64_t last_commit_ms;   /* wall clock of its last offset commit; 0 when none */
    int64_t release_since_ms; /* monotonic: since when release is not empty; 0 when it is */
    char group[SHMQ_GROUP_MAX + 1];
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    char client_id[SHMQ_MEMBER_CLIENT_ID]; /* "<pid>@<id>": the sort key of the division */
    char sub[SHMQ_MEMBER_SUB_MAX + 1];     /* its subscription expression ("*": every tag) */
    uint64_t sub_hash;                     /* FNV-1a of the whole expression */
    uint64_t own[SHMQ_MEMBER_QWORDS];
    uint64_t own_retry;
    uint64_t release[SHMQ_MEMBER_QWORDS];
    uint64_t release_retry;
} shmq_ctl_member_t;

/* Bit q of a member bitmap (own, release). */
static inline bool shmq_member_bit(const uint64_t *bits, int32_t q)
{
    return (bits[q / 64] >> (q % 64)) & 1u;
}

/* Member m holds queue q of its topic (retry: of the group's retry topic) and is not asked
 * to give it back. */
static inline bool shmq_member_holds(const shmq_ctl_member_t *m, bool retry, int32_t q)
{
    if (q < 0 || q >= (retry ? SHMQ_MEMBER_RETRY_MAX : SHMQ_TOPIC_QUEUES_MAX)) {
        return false;
    }
    return retry ? shmq_member_bit(&m->own_retry, q) && !shmq_member_bit(&m->release_retry, q)
                 : shmq_member_bit(m->own, q) && !shmq_member_bit(m->release, q);
}

/* The consumer area: written by the master (commits arrive over <root>/shmq.sock) and on a
 * slave by the ha-receiver (shmq_ctl_offset_advance). */
typedef struct shmq_ctl_cons {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint64_t generation; /* equals the control block's */
    _Alignas(64) _Atomic uint32_t
        offsets_dirty; /* master, ha-receiver: a change since the last save */
    /* The store's user (shmqctl offsets reset, group delete): odd while offsets are being
     * reset behind running consumers, even again after; consumers that see it move
     * fetch their offsets again (shmq_consumer_offsets_resets). */
    _Atomic uint32_t resets;
    shmq_ctl_offset_t offsets[SHMQ_CTL_MAX_OFFSETS];
    /* master: moves whenever a member joins or leaves or queues change hands (release) */
    _Alignas(64) _Atomic uint64_t members_gen;
    shmq_ctl_member_t members[SHMQ_CTL_MAX_MEMBERS];
} shmq_ctl_cons_t;

/*
 * A consistent copy of members[slot] (seqlock read side; any process): 0 when
 * it is a member, SHMQ_E_NOT_FOUND when the entry is free, -EAGAIN when it
 * stays mid-change (the master writes it in microseconds).
 */
int shmq_ctl_member_copy(const shmq_ctl_cons_t *cons, int slot, shmq_ctl_member_t *out);

/*
 * The wake-up object: the only shared memory every client may write.  It
 * holds futex words and statistics, nothing any process trusts: a client
 * that scribbles here costs others at most latency (every sleeper sleeps
 * with a timeout) or a wrong statistic.
 */
typedef struct shmq_ctl_wakes {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint64_t generation;             /* equals the control block's */
    shmq_ctl_wake_t writer_wake;     /* producers -> writer: ring entries published */
    shmq_ctl_wake_t consumer_wake;   /* dispatcher -> consumers: new units */
    shmq_ctl_wake_t flushed_wake;    /* flusher -> producers waiting for a SYNC_FLUSH */
    shmq_ctl_wake_t replicated_wake; /* ha-sender -> producers waiting for a SYNC_MASTER slave */
    _Alignas(64) _Atomic uint64_t messages_out; /* consumers: messages returned (statistics) */
    /* consumers (many writers: atomic adds): a record's store timestamp (ms) to the pull
     * that returned it.  Any client can write here: statistics, never read for data. */
    shmq_ctl_hist_t store_pull;
} shmq_ctl_wakes_t;

/* A process's handle on the control block. */
typedef struct shmq_ctl {
    shmq_ctl_block_t *blk;
    size_t blk_size;
    shmq_ctl_cons_t *cons;
    size_t cons_size;
    shmq_ctl_wakes_t *wake; /* always read-write */
    size_t wake_size;
    bool readonly; /* control block and consumer area mapped PROT_READ (clients) */
    char name[64];
    char root[PATH_MAX];
    int lock_fd; /* <root>/lock opened once (shmq_ctl_lock_file); -1 until first needed */
    /* The held topic lock's own open file description, -1 when not held.  The
     * table locks open <root>/lock afresh at each acquisition: OFD locks of
     * one description do not exclude each other, so threads of one process
     * would otherwise all "hold" the lock at once. */
    int topic_lock_fd;
} shmq_ctl_t;

/* ---- naming, creation, attachment ----------------------------------------- */

/* Where POSIX shared-memory objects live (shm_open's tmpfs). */
#define SHMQ_SHM_DIR "/dev/shm"

/* "/shmq-<16 hex>" for the store at root (realpath'd; root must exist). */
int shmq_ctl_name(const char *root, char *out, size_t len);

/*
 * The client group of a store: cfg's clientUnixGroup, or the group of the
 * store root when it is "".  Its name goes to name.  SHMQ_E_CONFIG for an
 * unknown group.
 */
int shmq_ctl_client_gid(const shmq_config_t *cfg, const char *root, gid_t *gid, char *name,
                        size_t len);

/*
 * Master: create both objects for cfg's store (an existing, stale pair that
 * belongs to the store's user is removed first: the caller holds the store
 * lock; an object of another user is refused with -EPERM naming it and its
 * owner, and never opened), fill the header, copy cfg, size the rings for
 * cfg->max_message_size, and leave ready = 0.  The caller fills positions
 * and tables, then calls shmq_ctl_set_ready().
 */
int shmq_ctl_create(const shmq_config_t *cfg, const char *root, shmq_ctl_t *ctl);
void shmq_ctl_set_ready(shmq_ctl_t *ctl);

/* Attach flags. */
#define SHMQ_CTL_RDONLY 0x1 /* map the control block PROT_READ (consumers) */

/*
 * Attach to the running store at root: checks magic, version, sizes, the
 * configuration size and ready; SHMQ_E_NOT_FOUND (detail "store ... is not
 * running") when the objects do not exist or their master process is gone,
 * SHMQ_E_VERSION on a layout mismatch, -EAGAIN when not ready yet (or the
 * master restarted between the two opens): retry.  The consumer area is
 * always mapped read-write.  On failure *ctl holds nothing to detach.
 */
int shmq_ctl_attach(const char *root, unsigned flags, shmq_ctl_t *ctl);
void shmq_ctl_detach(shmq_ctl_t *ctl);

/* Master at clean stop: remove both objects (attached processes keep their mappings). */
int shmq_ctl_unlink(const char *root);

/*
 * <root>/lock opened read-write once per handle (ctl->lock_fd), for probes
 * and per-process locks on its bytes (F_OFD_GETLK, a producer's ring byte).
 * Every thread of the process shares its OFD locks.  Returns the fd or -errno.
 */
int shmq_ctl_lock_file(shmq_ctl_t *ctl);

/* ---- futex and positions --------------------------------------------------- */

/* Sleep while *word == expected, at most timeout_ms (>= 0). 0, -ETIMEDOUT, -EINTR, -EAGAIN. */
int shmq_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);
/* Wake up to n sleepers (INT32_MAX for all). */
int shmq_futex_wake(_Atomic uint32_t *word, int n);

/*
 * The halves of a sleep word as a 64-bit value ("Sleeping" above): the kernel sleeps on
 * the seq half, a waker looks at the waiters half.
 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SHMQ_SW_SEQ_SHIFT  0
#define SHMQ_SW_WAIT_SHIFT 32
#else
#define SHMQ_SW_SEQ_SHIFT  32
#define SHMQ_SW_WAIT_SHIFT 0
#endif
#define SHMQ_SW_SEQ(v)     ((uint32_t)((v) >> SHMQ_SW_SEQ_SHIFT))
#define SHMQ_SW_WAITERS(v) ((uint32_t)((v) >> SHMQ_SW_WAIT_SHIFT))

/* The rest of a wake once a sleeper was seen: bump seq, clear waiters, FUTEX_WAKE (ctl.c). */
void shmq_ctl_wake_slow(_Atomic uint64_t *word, _Atomic uint32_t *seq);

/*
 * Wake every sleeper registered on a sleep word, if any.  The caller has published its
 * data; the fence orders that store before our load of the word (pairs with the sleeper's
 * register-then-recheck, Dekker style): either the sleeper sees the data, or we see its
 * registration.  Inline: the usual case, nobody sleeps, is the fence and one load.
 */
static inline void shmq_ctl_wake_word(_Atomic uint64_t *word, _Atomic uint32_t *seq)
{
    atomic_thread_fence(memory_order_seq_cst);
    /* Relaxed: the fence above orders this load after the caller's publish. */
    if (SHMQ_SW_WAITERS(atomic_load_explicit(word, memory_order_relaxed)) != 0) {
        shmq_ctl_wake_slow(word, seq);
    }
}

/* Publish a new value (release); wake sleepers if any. */
static inline void shmq_ctl_publish(shmq_ctl_position_t *p, int64_t value)
{
    /* Release: the data the position covers is visible before the position. */
    atomic_store_explicit(&p->pos, value, memory_order_release);
    shmq_ctl_wake_word(&p->word, &p->seq);
}

/* Acquire load. */
static inline int64_t shmq_ctl_load(const shmq_ctl_position_t *p)
{
    /* Acquire: pairs with shmq_ctl_publish(); the covered data is visible. */
    return atomic_load_explicit((_Atomic int64_t *)&p->pos, memory_order_acquire);
}

/*
 * Wait until p->pos >= target or timeout_ms passes (>= 0: every wait is
 * bounded).  Returns 0 when reached, -ETIMEDOUT otherwise.  Requires write
 * access (registers as a waiter).
 */
int shmq_ctl_wait_pos(shmq_ctl_position_t *p, int64_t target, int timeout_ms);

/* Wake one role's sleeper if it sleeps (after publishing work for it). */
static inline void shmq_ctl_wake(shmq_ctl_wake_t *w)
{
    shmq_ctl_wake_word(&w->word, &w->seq);
}

/*
 * shmq_ctl_wake(w) right after a shmq_ctl_publish() or shmq_ctl_wake() of the same thread
 * that came after every store w's sleepers look for: that call's fence orders those
 * stores before this load too, so this one makes none (a batch's publish, then the wakes
 * of its readers).
 */
static inline void shmq_ctl_wake_also(shmq_ctl_wake_t *w)
{
    /* Relaxed: ordered after the caller's stores by the fence of the wake just before. */
    if (SHMQ_SW_WAITERS(atomic_load_explicit(&w->word, memory_order_relaxed)) != 0) {
        shmq_ctl_wake_slow(&w->word, &w->seq);
    }
}

/*
 * Publish the checkpoint's mark (shmq_ctl_cq_mark_t): pos a record boundary
 * at or below the cq_flushed published next, ts the store time of the last
 * record ending at or below pos.  The mark's writer only (the dispatcher; the
 * master before the block is ready).
 */
void shmq_ctl_cq_mark_publish(shmq_ctl_cq_mark_t *m, int64_t pos, int64_t ts);

/*
 * A consistent copy of the mark (any process; the block may be mapped
 * read-only): 0 with *pos and *ts of one publication, SHMQ_E_NOT_FOUND when
 * none was published, -EAGAIN when the writer kept overtaking the read.
 */
int shmq_ctl_cq_mark_read(const shmq_ctl_cq_mark_t *m, int64_t *pos, int64_t *ts);

/*
 * A process's own list of record boundaries with the store time of the
 * record before each (the dispatcher's batch ends, the marks the flusher
 * read), from which it takes the highest at or below a limit.  Boundaries
 * are offered in increasing order; the newest is always held, and of the
 * ones before it one in `every`: a full list drops every other entry (the
 * oldest stays) and doubles `every`, so that SHMQ_MARKS entries span any
 * stretch, finer when it is short.  Not shared.
 */
#define SHMQ_MARKS 64

typedef struct shmq_marks {
    int64_t pos[SHMQ_MARKS]; /* kept boundaries, oldest first, all below last_pos */
    int64_t ts[SHMQ_MARKS];
    int n;
    uint32_t every;   /* keep one boundary in `every` (a power of two) */
    uint32_t seen;    /* boundaries offered since the last one kept */
    bool has_last;    /* last_pos/last_ts hold the newest boundary offered */
    int64_t last_pos; /* the newest boundary offered */
    int64_t last_ts;
} shmq_marks_t;

/* Empty, keeping every boundary. */
void shmq_marks_init(shmq_marks_t *l);

/* Offer a boundary (ignored unless above the newest one). */
void shmq_marks_add(shmq_marks_t *l, int64_t pos, int64_t ts);

/*
 * The highest boundary held at or below upto into *pos, *ts; the ones below
 * it are dropped (it stays held).  False, changing nothing, when none is.
 */
bool shmq_marks_take(shmq_marks_t *l, int64_t upto, int64_t *pos, int64_t *ts);

/* Wake every process waiting on p (shmq_ctl_wait_pos) without changing its value:
 * they re-check their own conditions (a fence, a stop). */
void shmq_ctl_pos_wake_all(shmq_ctl_position_t *p);

/*
 * Sleep on w until woken or timeout_ms, unless ready(arg) becomes true after
 * registering (checked once before sleeping).  Returns 1 if ready, 0 when
 * woken or timed out.
 */
int shmq_ctl_sleep(shmq_ctl_wake_t *w, bool (*ready)(void *arg), void *arg, int timeout_ms);

/* FUTEX_WAKE system calls this process made through wake words and positions so far (a
 * statistic: tests count wake-ups against publishes with it). */
uint64_t shmq_ctl_wake_syscalls(void);

/* ---- the set's gateways (controller mode; seqlocked, one writer) -------------- */

/* Publish *r as the set's route (the ctrl-agent, the only writer). */
void shmq_ctl_route_publish(shmq_ctl_t *ctl, const shmq_ctl_route_t *r);

/*
 * A consistent copy of the set's route into *out.  0; -EAGAIN when it stays
 * mid-change for 100 ms (its writer was killed while writing: the restarted
 * ctrl-agent writes it again).  Lock-free; works on a read-only handle.
 */
int shmq_ctl_route_get(const shmq_ctl_t *ctl, shmq_ctl_route_t *out);

/* ---- topics (seqlocked; changes under the topic lock) ------------------------ */

/*
 * Copy topic name's entry into *out (consistent snapshot).  SHMQ_E_NOT_FOUND
 * if absent or deleted; -EAGAIN if the entry stays mid-change for 100 ms
 * (its writer was killed inside a change: the next topic-lock holder
 * repairs it; retry later).  Lock-free; works on a read-only handle.
 */
int shmq_ctl_topic_get(const shmq_ctl_t *ctl, const char *name, size_t len, shmq_ctl_topic_t *out);

/*
 * shmq_ctl_topic_get(), and *entry = the table entry the snapshot was taken
 * from: while that entry's seq (acquire) still equals out->seq, the entry
 * has not changed since (a cache's check, without copying it again).
 */
int shmq_ctl_topic_get_entry(const shmq_ctl_t *ctl, const char *name, size_t len,
                             shmq_ctl_topic_t *out, const shmq_ctl_topic_t **entry);

/*
 * Take / release the topic-table lock (an OFD lock on byte 2 of <root>/lock,
 * released by the kernel if the holder dies).  Blocks at most timeout_ms
 * (polling every 1 ms), then -ETIMEDOUT.  Excludes other processes and
 * other threads of this one; not recursive.  Taking it also repairs
 * entries a killed holder left mid-change.  A child forked while the lock
 * is held shares it until the child closes the descriptor (O_CLOEXEC: at
 * exec at the latest).
 */
int shmq_ctl_topic_lock(shmq_ctl_t *ctl, int timeout_ms);
void shmq_ctl_topic_unlock(shmq_ctl_t *ctl);

/* Insert or update a topic (caller holds the topic lock). SHMQ_E_RANGE when the table is full. */
int shmq_ctl_topic_put(shmq_ctl_t *ctl, const char *name, int32_t read_queue_nums,
                       int32_t write_queue_nums, int32_t perm, bool order);
/* Mark deleted (caller holds the topic lock). */
int shmq_ctl_topic_delete(shmq_ctl_t *ctl, const char *name);

/*
 * True while a deletion of topic name is not finished (topic_del): the
 * topic cannot be created again meanwhile (shmq_ctl_topic_put refuses it
 * with -EBUSY).
 */
bool shmq_ctl_topic_deleting(const shmq_ctl_t *ctl, const char *name, size_t len);

/* True when queue entry e belongs to topic (len bytes). */
bool shmq_ctl_queue_of_topic(const shmq_ctl_queue_t *e, const char *topic, size_t len);

/* Write config/topics.json from the table (caller holds the topic lock). */
int shmq_ctl_topics_save(shmq_ctl_t *ctl);

/* Visit every active topic (snapshot copies). */
int shmq_ctl_topic_foreach(const shmq_ctl_t *ctl, int (*fn)(const shmq_ctl_topic_t *t, void *arg),
                           void *arg);

/* Snapshot of the topic in table slot i (for per-slot arrays such as topic_counts):
 * SHMQ_E_NOT_FOUND when the slot holds no active topic, -EAGAIN as shmq_ctl_topic_get. */
int shmq_ctl_topic_at(const shmq_ctl_t *ctl, size_t i, shmq_ctl_topic_t *out);

/* ---- queues ------------------------------------------------------------------ */

/* Find the queue entry; NULL if absent. Lock-free. */
shmq_ctl_queue_t *shmq_ctl_queue_find(const shmq_ctl_t *ctl, const char *topic, size_t len,
                                      int32_t queue_id);

/*
 * Find or insert (the master at start; the writer, and the dispatcher for a
 * queue the writer has not inserted, at run time).  Inserts are serialised
 * by an OFD lock on byte 4 of <root>/lock, so concurrent inserters never
 * create two entries for one queue; finds stay lock-free.  A new entry's
 * offsets start at 0.  SHMQ_E_RANGE when the table is full, SHMQ_E_TOPIC for
 * a bad topic length, -EROFS on a read-only handle.
 */
int shmq_ctl_queue_insert(shmq_ctl_t *ctl, const char *topic, size_t len, int32_t queue_id,
                          shmq_ctl_queue_t **out);

/* ---- consumer offsets (consumer area) ----------------------------------------- */

/* Fetch a group's committed offset; SHMQ_E_NOT_FOUND if never committed. */
int shmq_ctl_offset_get(const shmq_ctl_t *ctl, const char *group, const char *topic,
                        int32_t queue_id, int64_t *offset);

/* Commit (insert under the offsets lock, byte 3 of <root>/lock, or update in place). */
int shmq_ctl_offset_set(shmq_ctl_t *ctl, const char *group, const char *topic, int32_t queue_id,
                        int64_t offset);

/*
 * Move a group's offset forward to offset: insert it when missing, raise it
 * when it is behind (never lowered: a commit racing with this stays).  1
 * when it changed (offsets_dirty is set), 0 when not, or an error.  The
 * ha-receiver's merge of the master's offsets (docs/operations.md).
 */
int shmq_ctl_offset_advance(shmq_ctl_t *ctl, const char *group, const char *topic, int32_t queue_id,
                            int64_t offset);

/*
 * Drop every group's offsets of topic (the store's user: shmqctl topic
 * delete); offsets_dirty is set so that the flusher saves the table too.
 * Returns the number dropped.
 */
int shmq_ctl_offsets_delete_topic(shmq_ctl_t *ctl, const char *topic);

/*
 * Drop every offset of group (the store's user: shmqctl group delete);
 * offsets_dirty is set so that the flusher saves the table.  Returns the
 * number dropped, or an error.
 */
int shmq_ctl_offsets_delete_group(shmq_ctl_t *ctl, const char *group);

/*
 * A reset of offsets behind running consumers (the store's user):
 * begin makes cons->resets odd (consumers stop committing and wait), end
 * makes it even again (they fetch their offsets again).  Between the two
 * the caller changes offsets (shmq_ctl_offset_set, ..._delete_group).
 */
void shmq_ctl_offsets_reset_begin(shmq_ctl_t *ctl);
void shmq_ctl_offsets_reset_end(shmq_ctl_t *ctl);

/* Copy every offset of the consumer area into *t ("topic@group" keys); free it after. */
int shmq_ctl_offsets_snapshot(const shmq_ctl_t *ctl, shmq_offset_table_t *t);

/* Save every offset to config/consumerOffset.json ("topic@group" -> {queue: offset}), one
 * process at a time (a byte of <root>/lock, 5 s at most: then an error and the offsets stay
 * dirty). */
int shmq_ctl_offsets_save(shmq_ctl_t *ctl);

/* The same after offsets were removed: shmq_consumer_offsets_save_dropped (twice). */
int shmq_ctl_offsets_save_dropped(shmq_ctl_t *ctl);

/*
 * Load config/consumerOffset.json into the consumer area (master at start,
 * after the queue table is filled).  Damaged entries are replaced from the
 * .bak or dropped and offsets above their queue's max offset lowered, each
 * with a warning (json_meta.h); offsets_dirty is then set so that the
 * flusher saves the repaired table, else cleared.  Also checks
 * subscriptionGroup.json (warnings only).  Fails with SHMQ_E_JSON when the
 * file and its .bak are unusable, SHMQ_E_RANGE when the table overflows.
 */
int shmq_ctl_offsets_load(shmq_ctl_t *ctl);

/*
 * Fence the running store (fence.h): the first caller's error and part win
 * (CAS on fenced_error); wakes the master and every producer waiting on
 * flushed.  Returns true if this call set the fence.
 */
bool shmq_ctl_fence(shmq_ctl_block_t *b, enum shmq_fence_part part, int err);

#endif
