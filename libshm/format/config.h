/*
 * Broker configuration: RocketMQ's broker.conf keys and defaults
 * (ROCKETMQ-FACTS §21), read from a Java-properties style file and from
 * KEY=VALUE overrides.
 *
 * Unknown keys are reported as warnings (the caller decides where they go);
 * a bad value is refused with SHMQ_E_CONFIG and a detail naming the key, the
 * value and what was expected.  RocketMQ's old spellings (mapedFileSize*)
 * are accepted as aliases.
 */
#ifndef SHMQ_CONFIG_H
#define SHMQ_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "shmq/types.h"

enum shmq_flush_disk_type { SHMQ_ASYNC_FLUSH = 0, SHMQ_SYNC_FLUSH = 1 };
enum shmq_broker_role { SHMQ_ASYNC_MASTER = 0, SHMQ_SYNC_MASTER = 1, SHMQ_SLAVE = 2 };

#define SHMQ_MAX_DELAY_LEVELS       64
#define SHMQ_CONFIG_CONTROLLERS_MAX 8 /* addresses in controllerAddr */

typedef struct shmq_config {
    /* paths */
    char store_path_root_dir[PATH_MAX];   /* storePathRootDir, shmq default "./data" */
    char store_path_commit_log[PATH_MAX]; /* storePathCommitLog, default <root>/commitlog */
    char broker_name[128];                /* brokerName */
    char broker_cluster_name[128];        /* brokerClusterName */
    int64_t broker_id;                    /* brokerId */
    int32_t listen_port; /* listenPort, 10911: the store port in offset message ids */
    char broker_ip1[64]; /* brokerIP1: store host address in records; "" = detect */
    /* clientUnixGroup (shmq's own): the Unix group whose members may register over
     * <root>/shmq.sock (produce, commit offsets); "" = the group of the store root */
    char client_unix_group[64];
    /* aclEnable: <root>/config/acl.json says who may publish and subscribe to what
     * (libshm/format/acl.h); false: every member of the client group may use every topic */
    bool acl_enable;

    /* sizes */
    int64_t mapped_file_size_commit_log;    /* 1 GiB */
    int64_t mapped_file_size_consume_queue; /* 6,000,000, rounded up to x20 */
    int32_t max_message_size;               /* 4 MiB */
    int32_t max_topic_length;               /* 127 */

    /* flush */
    enum shmq_flush_disk_type flush_disk_type;     /* ASYNC_FLUSH */
    enum shmq_broker_role broker_role;             /* ASYNC_MASTER */
    int32_t flush_interval_commit_log;             /* 500 ms */
    bool flush_commit_log_timed;                   /* true */
    int32_t flush_commit_log_least_pages;          /* 4 */
    int32_t flush_commit_log_thorough_interval;    /* 10000 ms */
    int32_t flush_interval_consume_queue;          /* 1000 ms */
    int32_t flush_consume_queue_least_pages;       /* 2 */
    int32_t flush_consume_queue_thorough_interval; /* 60000 ms */
    int32_t sync_flush_timeout;                    /* 5000 ms */
    int32_t put_message_timeout;                   /* 8000 ms */
    bool check_crc_on_recover;                     /* true */
    bool warm_mapped_file_enable;                  /* false; shmq pre-faults regardless */
    bool mlock_enable;                             /* shmq: mlock CommitLog segments, false */

    /* cleaning */
    int32_t file_reserved_time;               /* 72 h */
    char delete_when[64];                     /* "04" */
    int32_t disk_max_used_space_ratio;        /* 75, clamped 10..95 */
    int32_t disk_space_warning_level_ratio;   /* 90, clamped 35..90 */
    int32_t disk_space_clean_forcibly_ratio;  /* 85, clamped 30..85 */
    int32_t clean_resource_interval;          /* 10000 ms */
    int32_t delete_commit_log_files_interval; /* 100 ms */
    int32_t delete_file_batch_max;            /* 10 */
    bool clean_file_forcibly_enable;          /* true */

    /* index */
    bool message_index_enable;  /* true */
    bool message_index_safe;    /* false */
    int32_t max_hash_slot_num;  /* 5,000,000 */
    int32_t max_index_num;      /* 20,000,000 */
    int32_t max_msgs_num_batch; /* 64 */

    /* topics */
    bool auto_create_topic_enable;    /* true */
    int32_t default_topic_queue_nums; /* 4 */

    /* schedule / timer */
    char message_delay_level[512]; /* "1s 5s ... 2h" */
    int32_t delay_level_count;
    int64_t delay_level_ms[SHMQ_MAX_DELAY_LEVELS]; /* parsed table, level i+1 */
    int32_t flush_delay_offset_interval;           /* 10000 ms */
    int32_t timer_precision_ms;                    /* 1000 */
    int32_t timer_max_delay_sec;                   /* 259200 */
    bool timer_wheel_enable;                       /* true */
    int64_t mapped_file_size_timer_log;            /* 100 MiB */
    int32_t max_reconsume_times; /* maxReconsumeTimes (shmq key): 16, retryMaxTimes default */

    /* HA */
    int32_t ha_listen_port;             /* 10912 */
    char ha_master_address[256];        /* "" */
    int32_t ha_send_heartbeat_interval; /* 5000 */
    int32_t ha_housekeeping_interval;   /* 20000 */
    int32_t ha_transfer_batch_size;     /* 32 KiB */
    int64_t ha_max_gap_not_in_sync;     /* 256 MiB */
    int32_t slave_timeout;              /* 3000 */
    /* haPlainLink (shmq key): replicate over RocketMQ's plain, unauthenticated HA protocol. */
    bool ha_plain_link;
    /* haSecretFile (shmq key): replicate over TLS 1.3 with the key of this secret file
     * (0600, the broker's user; both sides hold the same).  Neither this nor haPlainLink:
     * no ha-sender runs, and neither a SLAVE nor a SYNC_MASTER starts. */
    char ha_secret_file[1024];
    /* logLevel (shmq key): ERROR, WARN, INFO (default) or DEBUG; shmqctl log-level
     * changes it while the store runs. */
    int32_t log_level;
    /* metricsListen (shmq key): "" (off, the default), "PORT" (127.0.0.1) or "HOST:PORT":
     * the shmq-metrics worker serves http://HOST:PORT/metrics. */
    char metrics_listen[256];
    /* gatewayEnable (shmq key): false (default); true: the shmq-gateway worker serves
     * RocketMQ's remoting protocol (name server and broker) on listenPort. */
    bool gateway_enable;
    /* gatewayBindAddress (shmq key): the address the gateway listens on, 127.0.0.1. */
    char gateway_bind_address[64];
    /* gatewayMaxConnections (shmq key): client connections the gateway holds at once, 1024. */
    int32_t gateway_max_connections;
    /* enableControllerMode (RocketMQ's key): false (default); true: the shmq-ctrl-agent worker
     * registers the store with the controller group (controllerAddr) and heartbeats. */
    bool enable_controller_mode;
    /* controllerAddr (RocketMQ's key): the controllers' client addresses, "host:port;host:port"
     * ("" by default; needed in controller mode). */
    char controller_addr[512];
    /* allAckInSyncStateSet (RocketMQ's key): true (shmq's default; RocketMQ's is false): a
     * SYNC_MASTER in controller mode acknowledges a send once every member of the sync-state
     * set holds it; false: once one slave in sync does, as without the group. */
    bool all_ack_in_sync_state_set;
} shmq_config_t;

/* Fill cfg with RocketMQ's defaults (and shmq's for its own keys). */
void shmq_config_defaults(shmq_config_t *cfg);

/* A SYNC_MASTER in controller mode with allAckInSyncStateSet: it acknowledges a send once
 * every member of the sync-state set holds it (the ha-sender, the ctrl-agent and producers
 * decide by this one rule). */
static inline bool shmq_config_acks_by_sync_state_set(const shmq_config_t *cfg)
{
    return cfg->enable_controller_mode && cfg->all_ack_in_sync_state_set &&
           cfg->broker_role == SHMQ_SYNC_MASTER;
}

/* Every key shmq reads, one "key=value" line each, in the order of the key table
 * (shmqd --print-config).  0, or -EIO when f failed. */
int shmq_config_write(const shmq_config_t *cfg, FILE *f);

/*
 * Callback for warnings (unknown keys, deprecated spellings).  file may be
 * NULL for overrides; line is 0 then.
 */
typedef void (*shmq_config_warn_fn)(void *arg, const char *file, int line, const char *msg);

/*
 * Apply one KEY=VALUE.  Returns 0, 1 if the key is unknown (warned, not an
 * error), or SHMQ_E_CONFIG (bad value; detail names key and value).
 */
int shmq_config_set(shmq_config_t *cfg, const char *key, const char *value,
                    shmq_config_warn_fn warn, void *warn_arg);

/*
 * Read a broker.conf (Java properties: `key=value` or `key: value`, `#`/`!`
 * comments, surrounding whitespace trimmed).  Stops at the first bad value
 * with SHMQ_E_CONFIG naming the file, line and key; -errno if unreadable.
 */
int shmq_config_load(shmq_config_t *cfg, const char *path, shmq_config_warn_fn warn,
                     void *warn_arg);

/*
 * Check cross-field rules after all values are in (the list is documented
 * above shmq_config_validate in config.c): a maxMessageSize record fits a
 * CommitLog segment, CQ size multiple of 20, ratios in range, timer
 * precision divides 1000, IndexFile size fits an int, ports differ, a SLAVE
 * has brokerId > 0 and haMasterAddress.  SHMQ_E_CONFIG naming the key.
 */
int shmq_config_validate(const shmq_config_t *cfg);

/*
 * Before shmq_config_validate: a maxMessageSize whose largest record does not
 * fit one CommitLog segment is capped to what fits, with a warning (a small
 * segment with the default 4 MiB maxMessageSize is not a reason to refuse
 * the whole configuration).  A segment too small for any record is left to
 * validate to refuse.
 */
/* A logLevel value (ERROR, WARN, INFO, DEBUG; any case): the level, or -1.  And its text. */
int shmq_log_level_parse(const char *s);
const char *shmq_log_level_text(int level);

void shmq_config_fit(shmq_config_t *cfg, shmq_config_warn_fn warn, void *warn_arg);

/*
 * The store host the writer stamps on records and producers put in offset
 * message ids: brokerIP1 if set (IPv4, or IPv6: records then carry
 * RocketMQ's 20-byte IPv6 store host and 56-digit message ids), else the
 * first non-loopback IPv4 address; port listenPort.  SHMQ_E_CONFIG for a
 * brokerIP1 that is neither.
 */
int shmq_config_store_host(const shmq_config_t *cfg, shmq_host_t *out);

/*
 * Parse a messageDelayLevel string ("1s 5s 10m 2h 1d") into ms values.
 * Returns the level count or SHMQ_E_CONFIG.
 */
int shmq_config_parse_delay_levels(const char *s, int64_t *ms, int max);

/* The CommitLog directory: storePathCommitLog if set, else <root>/commitlog. */
void shmq_config_commitlog_dir(const shmq_config_t *cfg, char *out, size_t len);

#endif
