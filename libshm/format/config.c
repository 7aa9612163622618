/*
 * Broker configuration: RocketMQ's broker.conf keys with RocketMQ's defaults
 * (ROCKETMQ-FACTS §21), read from a Java-properties style file or applied
 * one KEY=VALUE at a time (command-line overrides).  See config.h.
 *
 * Values are checked strictly: integers are the whole string (optional
 * sign, decimal), within the bounds listed in config_keys[] below; booleans
 * are true/false (any case); enums are RocketMQ's names (any case).  A bad
 * value fails with SHMQ_E_CONFIG and the detail
 *     <file>:<line>: key '<k>': bad value '<v>': expected ...
 * (no file part for overrides).  Unknown keys only warn.  The disk ratios are
 * clamped the way RocketMQ clamps them (§15), which warns but is not an error.
 *
 * The properties subset understood: `key=value`, `key = value`,
 * `key: value`; `#` and `!` comment lines; blank lines; leading and trailing
 * whitespace trimmed; CRLF line ends; a UTF-8 BOM.  Not supported (refused,
 * not misread): backslash line continuation.  Escapes are not interpreted.
 */
#include "format/config.h"

#include "base/log.h"

#include "format/message.h"
#include "format/names.h"

#include "shmq/errors.h"
#include "shmq/types.h"
#include "base/hostport.h"
#include "format/store_files.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_DELAY_LEVELS "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"

#define MS_HOUR     3600000LL
#define MS_DAY      86400000LL
#define TIB         (1LL << 40)
#define CQ_SIZE_MAX 2147483640LL /* largest multiple of 20 that fits RocketMQ's int */
#define CONF_MAX    ((size_t)1 << 20)

/* A record of maxMessageSize must fit in one CommitLog segment with the
 * largest header (IPv6 hosts, V2 topic length), topic, properties and the
 * segment's end-of-file blank. */
#define RECORD_OVERHEAD_MAX 160

enum key_kind {
    KEY_I32,
    KEY_I64,
    KEY_BOOL,
    KEY_NAME,          /* non-empty text that fits */
    KEY_FLUSH,         /* ASYNC_FLUSH | SYNC_FLUSH */
    KEY_ROLE,          /* ASYNC_MASTER | SYNC_MASTER | SLAVE */
    KEY_RATIO,         /* percentage, clamped to [lo, hi] */
    KEY_DELAY,         /* messageDelayLevel */
    KEY_DELETE_WHEN,   /* "04" or "01;13" */
    KEY_CQ_SIZE,       /* rounded up to a multiple of 20 */
    KEY_COMMITLOG_DIR, /* one directory or "" */
    KEY_IP,            /* "" or an IPv4/IPv6 address */
    KEY_HOSTPORT,      /* "" or host:port */
    KEY_ABS_PATH,      /* "" or an absolute path */
    KEY_LOG_LEVEL,     /* ERROR | WARN | INFO | DEBUG */
    KEY_LISTEN,        /* "" | PORT (127.0.0.1) | host:port */
    KEY_HOSTPORT_LIST, /* "" or host:port;host:port... */
};

typedef struct key_def {
    const char *name;
    enum key_kind kind;
    size_t off;
    size_t size;
    int64_t lo, hi;
} key_def_t;

#define FIELD(f) offsetof(shmq_config_t, f), sizeof(((shmq_config_t *)0)->f)
#define K(name, kind, f, lo, hi)                                                                   \
    {                                                                                              \
        name, kind, FIELD(f), lo, hi                                                               \
    }

/*
 * Every key shmq reads, with its bounds.  Durations are in ms unless named
 * otherwise; an interval of 0 is allowed where RocketMQ treats it as
 * "always" (thorough flush intervals, least pages, deletion pause).
 * timerPrecisionMs is 100..1000 and must divide 1000 (checked in validate).
 */
static const key_def_t config_keys[] = {
    /* paths and identity */
    K("storePathRootDir", KEY_NAME, store_path_root_dir, 0, 0),
    K("storePathCommitLog", KEY_COMMITLOG_DIR, store_path_commit_log, 0, 0),
    K("brokerName", KEY_NAME, broker_name, 0, 0),
    K("brokerClusterName", KEY_NAME, broker_cluster_name, 0, 0),
    K("brokerId", KEY_I64, broker_id, 0, INT64_MAX),
    K("listenPort", KEY_I32, listen_port, 1, 65535),
    K("brokerIP1", KEY_IP, broker_ip1, 0, 0),
    K("clientUnixGroup", KEY_NAME, client_unix_group, 0, 0),
    K("aclEnable", KEY_BOOL, acl_enable, 0, 0),
    /* sizes */
    K("mappedFileSizeCommitLog", KEY_I64, mapped_file_size_commit_log, 4096, TIB),
    K("mappedFileSizeConsumeQueue", KEY_CQ_SIZE, mapped_file_size_consume_queue, 20, CQ_SIZE_MAX),
    K("maxMessageSize", KEY_I32, max_message_size, 1, 1 << 30),
    K("maxTopicLength", KEY_I32, max_topic_length, 1, SHMQ_TOPIC_MAX_ANY),
    /* flush */
    K("flushDiskType", KEY_FLUSH, flush_disk_type, 0, 0),
    K("brokerRole", KEY_ROLE, broker_role, 0, 0),
    K("flushIntervalCommitLog", KEY_I32, flush_interval_commit_log, 1, MS_DAY),
    K("flushCommitLogTimed", KEY_BOOL, flush_commit_log_timed, 0, 0),
    K("flushCommitLogLeastPages", KEY_I32, flush_commit_log_least_pages, 0, 1 << 20),
    K("flushCommitLogThoroughInterval", KEY_I32, flush_commit_log_thorough_interval, 0, MS_DAY),
    K("flushIntervalConsumeQueue", KEY_I32, flush_interval_consume_queue, 1, MS_DAY),
    K("flushConsumeQueueLeastPages", KEY_I32, flush_consume_queue_least_pages, 0, 1 << 20),
    K("flushConsumeQueueThoroughInterval", KEY_I32, flush_consume_queue_thorough_interval, 0,
      MS_DAY),
    K("syncFlushTimeout", KEY_I32, sync_flush_timeout, 1, MS_HOUR),
    K("putMessageTimeout", KEY_I32, put_message_timeout, 1, MS_HOUR),
    K("checkCRCOnRecover", KEY_BOOL, check_crc_on_recover, 0, 0),
    K("warmMapedFileEnable", KEY_BOOL, warm_mapped_file_enable, 0, 0),
    K("mlockEnable", KEY_BOOL, mlock_enable, 0, 0),
    /* cleaning (fileReservedTime in hours, up to 100 years) */
    K("fileReservedTime", KEY_I32, file_reserved_time, 0, 876000),
    K("deleteWhen", KEY_DELETE_WHEN, delete_when, 0, 0),
    K("diskMaxUsedSpaceRatio", KEY_RATIO, disk_max_used_space_ratio, 10, 95),
    K("diskSpaceWarningLevelRatio", KEY_RATIO, disk_space_warning_level_ratio, 35, 90),
    K("diskSpaceCleanForciblyRatio", KEY_RATIO, disk_space_clean_forcibly_ratio, 30, 85),
    K("cleanResourceInterval", KEY_I32, clean_resource_interval, 1, MS_DAY),
    K("deleteCommitLogFilesInterval", KEY_I32, delete_commit_log_files_interval, 0, MS_HOUR),
    K("deleteFileBatchMax", KEY_I32, delete_file_batch_max, 1, 1000000),
    K("cleanFileForciblyEnable", KEY_BOOL, clean_file_forcibly_enable, 0, 0),
    /* index (the file size they imply is checked in validate) */
    K("messageIndexEnable", KEY_BOOL, message_index_enable, 0, 0),
    K("messageIndexSafe", KEY_BOOL, message_index_safe, 0, 0),
    K("maxHashSlotNum", KEY_I32, max_hash_slot_num, 1, INT32_MAX),
    K("maxIndexNum", KEY_I32, max_index_num, 1, INT32_MAX),
    K("maxMsgsNumBatch", KEY_I32, max_msgs_num_batch, 1, 1000000),
    /* topics */
    K("autoCreateTopicEnable", KEY_BOOL, auto_create_topic_enable, 0, 0),
    K("defaultTopicQueueNums", KEY_I32, default_topic_queue_nums, 1, SHMQ_TOPIC_QUEUES_MAX),
    /* schedule and timer (timerMaxDelaySec up to 10 years) */
    K("messageDelayLevel", KEY_DELAY, message_delay_level, 0, 0),
    K("flushDelayOffsetInterval", KEY_I32, flush_delay_offset_interval, 1, MS_DAY),
    K("timerPrecisionMs", KEY_I32, timer_precision_ms, 100, 1000),
    K("timerMaxDelaySec", KEY_I32, timer_max_delay_sec, 1, 315360000),
    K("timerWheelEnable", KEY_BOOL, timer_wheel_enable, 0, 0),
    K("mappedFileSizeTimerLog", KEY_I64, mapped_file_size_timer_log, 4096, TIB),
    /* shmq's own: the retry count when a group does not say */
    K("maxReconsumeTimes", KEY_I32, max_reconsume_times, 0, 65535),
    /* HA */
    K("haListenPort", KEY_I32, ha_listen_port, 1, 65535),
    K("haMasterAddress", KEY_HOSTPORT, ha_master_address, 0, 0),
    K("haSendHeartbeatInterval", KEY_I32, ha_send_heartbeat_interval, 1, MS_HOUR),
    K("haHousekeepingInterval", KEY_I32, ha_housekeeping_interval, 1, MS_HOUR),
    K("haTransferBatchSize", KEY_I32, ha_transfer_batch_size, 1, 64 << 20),
    K("haMaxGapNotInSync", KEY_I64, ha_max_gap_not_in_sync, 0, 1LL << 50),
    K("slaveTimeout", KEY_I32, slave_timeout, 1, MS_HOUR),
    K("haPlainLink", KEY_BOOL, ha_plain_link, 0, 0),
    K("haSecretFile", KEY_ABS_PATH, ha_secret_file, 0, 0),
    /* logs */
    K("logLevel", KEY_LOG_LEVEL, log_level, 0, 0),
    /* metrics */
    K("metricsListen", KEY_LISTEN, metrics_listen, 0, 0),
    /* the RocketMQ gateway (shmq keys; its port is listenPort) */
    K("gatewayEnable", KEY_BOOL, gateway_enable, 0, 0),
    K("gatewayBindAddress", KEY_IP, gateway_bind_address, 0, 0),
    K("gatewayMaxConnections", KEY_I32, gateway_max_connections, 1, 65536),
    /* controller mode (RocketMQ 5's keys) */
    K("enableControllerMode", KEY_BOOL, enable_controller_mode, 0, 0),
    K("controllerAddr", KEY_HOSTPORT_LIST, controller_addr, 0, 0),
    K("allAckInSyncStateSet", KEY_BOOL, all_ack_in_sync_state_set, 0, 0),
};

/* Older spellings RocketMQ used, mapped to today's key (warned as deprecated). */
static const struct {
    const char *old_name, *name;
} config_aliases[] = {
    {"mapedFileSizeCommitLog", "mappedFileSizeCommitLog"},
    {"mapedFileSizeConsumeQueue", "mappedFileSizeConsumeQueue"},
    {"haSlaveFallbehindMax", "haMaxGapNotInSync"},
};

/*
 * RocketMQ broker keys that mean nothing to a single-host store (name
 * server, network thread pools, ACL, DLedger/controller, transient store
 * pool, read-path tuning of the remoting layer, ...).  An existing
 * broker.conf keeps working: they are accepted with a "has no effect"
 * warning instead of "unknown key".
 */
static const char *const config_ignored[] = {
    "namesrvAddr",
    "rocketmqHome",
    "fetchNamesrvAddrByAddressServer",
    "brokerIP2",
    "brokerPermission",
    "autoCreateSubscriptionGroup",
    "clusterTopicEnable",
    "brokerTopicEnable",
    "traceTopicEnable",
    "msgTraceTopicName",
    "enablePropertyFilter",
    "filterSupportRetry",
    "rejectTransactionMessage",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "processReplyMessageThreadPoolNums",
    "queryMessageThreadPoolNums",
    "adminBrokerThreadPoolNums",
    "clientManageThreadPoolNums",
    "consumerManageThreadPoolNums",
    "heartbeatThreadPoolNums",
    "endTransactionThreadPoolNums",
    "serverWorkerThreads",
    "serverSelectorThreads",
    "clientWorkerThreads",
    "waitTimeMillsInSendQueue",
    "brokerFastFailureEnable",
    "osPageCacheBusyTimeOutMills",
    "useReentrantLockWhenPutMessage",
    "transientStorePoolEnable",
    "transientStorePoolSize",
    "commitIntervalCommitLog",
    "commitCommitLogLeastPages",
    "commitCommitLogThoroughInterval",
    "enableDLegerCommitLog",
    "dLegerGroup",
    "dLegerPeers",
    "dLegerSelfId",
    "inSyncReplicas",
    "totalReplicas",
    "minInSyncReplicas",
    "enableSlaveActingMaster",
    "enableAutoInSyncReplicas",
    "duplicationEnable",
    "offsetCheckInSlave",
    "maxTransferBytesOnMessageInMemory",
    "maxTransferCountOnMessageInMemory",
    "maxTransferBytesOnMessageInDisk",
    "maxTransferCountOnMessageInDisk",
    "accessMessageInMemoryMaxRatio",
    "maxFilterMessageSize",
    "defaultQueryMaxNum",
    "putMsgIndexHightWater",
    "destroyMapedFileIntervalForcibly",
    "redeleteHangedFileInterval",
    "deleteConsumeQueueFilesInterval",
    "flushLeastPagesWhenWarmMapedFile",
    "enableConsumeQueueExt",
    "mappedFileSizeConsumeQueueExt",
    "enableLmq",
    "enableMultiDispatch",
    "travelCqFileNumWhenGetMessage",
    "dataReadAheadEnable",
    "maxRecoveryCommitlogFiles",
    "recoverConcurrently",
    "storeType",
    "timerRollWindowSlot",
    "timerFlushIntervalMs",
    "timerCongestNumEachSlot",
    "enabledAppendPropCRC",
    "forceVerifyPropCRC",
    "autoMessageVersionOnTopicLen",
    "transactionTimeOut",
    "transactionCheckMax",
    "transactionCheckInterval",
    "enableScheduleAsyncDeliver",
    "storePathEpochFile",
    "storePathBrokerIdentity",
};

/* ---- errors and warnings ------------------------------------------------- */

static int config_bad(const char *file, int line, const char *key, const char *value,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int config_bad(const char *file, int line, const char *key, const char *value,
                      const char *fmt, ...)
{
    char expected[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(expected, sizeof(expected), fmt, ap);
    va_end(ap);
    if (file != NULL) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s:%d: key '%s': bad value '%.120s': expected %s",
                              file, line, key, value, expected);
    }
    return shmq_error_set(SHMQ_E_CONFIG, "key '%s': bad value '%.120s': expected %s", key, value,
                          expected);
}

static void config_warn(shmq_config_warn_fn warn, void *arg, const char *file, int line,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void config_warn(shmq_config_warn_fn warn, void *arg, const char *file, int line,
                        const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    if (warn == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warn(arg, file, file != NULL ? line : 0, msg);
}

/* ---- value parsers ------------------------------------------------------- */

/* Whole string, optional sign, decimal digits, no spaces. */
static bool parse_int64(const char *s, int64_t *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (*p < '0' || *p > '9') {
        return false;
    }
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9') {
            return false;
        }
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcasecmp(s, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* ';'-separated hours 0..23, one or two digits each ("04", "1;13"). */
static bool parse_delete_when(const char *s)
{
    const char *p = s;
    for (;;) {
        int digits = 0, hour = 0;
        while (*p >= '0' && *p <= '9') {
            hour = hour * 10 + (*p - '0');
            if (++digits > 2) {
                return false;
            }
            p++;
        }
        if (digits == 0 || hour > 23) {
            return false;
        }
        if (*p == '\0') {
            return true;
        }
        if (*p != ';') {
            return false;
        }
        p++;
    }
}

/* "host:port" with a non-empty host (a name or an address) and a port 1..65535. */
static bool parse_hostport(const char *s)
{
    char host[256];
    int port;
    return shmq_hostport_split(s, host, sizeof(host), &port) == 0 && port >= 1;
}

/* "host:port;host:port..." (a trailing ';' allowed, no empty element between two). */
static bool parse_hostport_list(const char *s)
{
    char one[300];
    int count = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ";");
        if (len == 0 || len >= sizeof(one)) {
            return false;
        }
        memcpy(one, s, len);
        one[len] = '\0';
        if (!parse_hostport(one) || ++count > SHMQ_CONFIG_CONTROLLERS_MAX) {
            return false;
        }
        s += len;
        if (*s == ';') {
            s++;
        }
    }
    return count > 0;
}

int shmq_config_parse_delay_levels(const char *s, int64_t *ms, int max)
{
    /* Each level at most 10 years, so that ms arithmetic never overflows. */
    const int64_t limit_ms = 3650LL * 86400000LL;
    int count = 0;
    const char *p = s;

    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        int64_t v = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 12) {
                return shmq_error_set(SHMQ_E_CONFIG, "delay level %d: number too long", count + 1);
            }
            v = v * 10 + (*p - '0');
            p++;
        }
        int64_t unit;
        switch (*p) {
        case 's':
            unit = 1000;
            break;
        case 'm':
            unit = 60000;
            break;
        case 'h':
            unit = 3600000;
            break;
        case 'd':
            unit = 86400000;
            break;
        default:
            unit = 0;
            break;
        }
        if (digits == 0 || unit == 0 || (p[1] != '\0' && p[1] != ' ' && p[1] != '\t')) {
            return shmq_error_set(SHMQ_E_CONFIG,
                                  "delay level %d: expected a positive number with unit s, m, h "
                                  "or d",
                                  count + 1);
        }
        p++;
        if (v <= 0 || v > limit_ms / unit) {
            return shmq_error_set(SHMQ_E_CONFIG, "delay level %d: must be 1s..3650d", count + 1);
        }
        if (count >= max) {
            return shmq_error_set(SHMQ_E_CONFIG, "more than %d delay levels", max);
        }
        ms[count++] = v * unit;
    }
    if (count == 0) {
        return shmq_error_set(SHMQ_E_CONFIG, "no delay levels");
    }
    return count;
}

/* ---- defaults ------------------------------------------------------------ */

void shmq_config_defaults(shmq_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->store_path_root_dir, sizeof(cfg->store_path_root_dir), "./data");
    cfg->store_path_commit_log[0] = '\0'; /* <root>/commitlog */
    snprintf(cfg->broker_name, sizeof(cfg->broker_name), "broker-a");
    snprintf(cfg->broker_cluster_name, sizeof(cfg->broker_cluster_name), "DefaultCluster");
    cfg->broker_id = 0;
    cfg->listen_port = 10911;
    cfg->broker_ip1[0] = '\0';
    cfg->gateway_enable = false;
    snprintf(cfg->gateway_bind_address, sizeof(cfg->gateway_bind_address), "127.0.0.1");
    cfg->gateway_max_connections = 1024;
    cfg->enable_controller_mode = false;
    cfg->controller_addr[0] = '\0';
    /* RocketMQ's default is false; shmq's promise is that nothing acknowledged is lost to a
     * failover, which in controller mode only the whole sync-state set can keep. */
    cfg->all_ack_in_sync_state_set = true;

    cfg->mapped_file_size_commit_log = 1024LL * 1024 * 1024;
    cfg->mapped_file_size_consume_queue = 300000LL * SHMQ_CQ_UNIT_SIZE;
    cfg->max_message_size = 4 * 1024 * 1024;
    cfg->max_topic_length = SHMQ_TOPIC_MAX;

    cfg->flush_disk_type = SHMQ_ASYNC_FLUSH;
    cfg->broker_role = SHMQ_ASYNC_MASTER;
    cfg->flush_interval_commit_log = 500;
    cfg->flush_commit_log_timed = true;
    cfg->flush_commit_log_least_pages = 4;
    cfg->flush_commit_log_thorough_interval = 10000;
    cfg->flush_interval_consume_queue = 1000;
    cfg->flush_consume_queue_least_pages = 2;
    cfg->flush_consume_queue_thorough_interval = 60000;
    cfg->sync_flush_timeout = 5000;
    cfg->put_message_timeout = 8000;
    cfg->check_crc_on_recover = true;
    cfg->warm_mapped_file_enable = false;
    cfg->mlock_enable = false;

    cfg->file_reserved_time = 72;
    snprintf(cfg->delete_when, sizeof(cfg->delete_when), "04");
    cfg->disk_max_used_space_ratio = 75;
    cfg->disk_space_warning_level_ratio = 90;
    cfg->disk_space_clean_forcibly_ratio = 85;
    cfg->clean_resource_interval = 10000;
    cfg->delete_commit_log_files_interval = 100;
    cfg->delete_file_batch_max = 10;
    cfg->clean_file_forcibly_enable = true;

    cfg->message_index_enable = true;
    cfg->message_index_safe = false;
    cfg->max_hash_slot_num = 5000000;
    cfg->max_index_num = 20000000;
    cfg->max_msgs_num_batch = 64;

    cfg->auto_create_topic_enable = true;
    cfg->default_topic_queue_nums = 4;

    snprintf(cfg->message_delay_level, sizeof(cfg->message_delay_level), "%s",
             DEFAULT_DELAY_LEVELS);
    int n = shmq_config_parse_delay_levels(DEFAULT_DELAY_LEVELS, cfg->delay_level_ms,
                                           SHMQ_MAX_DELAY_LEVELS);
    cfg->delay_level_count = n > 0 ? n : 0;
    cfg->flush_delay_offset_interval = 10000;
    cfg->timer_precision_ms = 1000;
    cfg->timer_max_delay_sec = 259200;
    cfg->timer_wheel_enable = true;
    cfg->mapped_file_size_timer_log = 100LL * 1024 * 1024;
    cfg->max_reconsume_times = 16;

    cfg->ha_listen_port = 10912;
    cfg->ha_master_address[0] = '\0';
    cfg->ha_secret_file[0] = '\0';
    cfg->log_level = SHMQ_LOG_INFO;
    cfg->ha_send_heartbeat_interval = 5000;
    cfg->ha_housekeeping_interval = 20000;
    cfg->ha_transfer_batch_size = 32 * 1024;
    cfg->ha_max_gap_not_in_sync = 256LL * 1024 * 1024;
    cfg->slave_timeout = 3000;
}

/* ---- setting one key ----------------------------------------------------- */

static const key_def_t *config_key_find(const char *name)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        if (strcmp(config_keys[i].name, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

static int config_set_string(const key_def_t *k, void *field, const char *file, int line,
                             const char *value)
{
    size_t n = strlen(value);
    if (n >= k->size) {
        return config_bad(file, line, k->name, value, "at most %zu bytes", k->size - 1);
    }
    memcpy(field, value, n + 1);
    return 0;
}

static int config_apply(shmq_config_t *cfg, const key_def_t *k, const char *value, const char *file,
                        int line, shmq_config_warn_fn warn, void *warn_arg)
{
    char *field = (char *)cfg + k->off;
    int64_t v;
    bool b;

    switch (k->kind) {
    case KEY_I32:
    case KEY_I64:
    case KEY_CQ_SIZE:
        if (!parse_int64(value, &v)) {
            return config_bad(file, line, k->name, value, "an integer %lld..%lld", (long long)k->lo,
                              (long long)k->hi);
        }
        if (v < k->lo || v > k->hi) {
            return config_bad(file, line, k->name, value, "a value in %lld..%lld", (long long)k->lo,
                              (long long)k->hi);
        }
        if (k->kind == KEY_CQ_SIZE) {
            /* RocketMQ rounds the ConsumeQueue file size up to whole 20-byte units. */
            v = (v + SHMQ_CQ_UNIT_SIZE - 1) / SHMQ_CQ_UNIT_SIZE * SHMQ_CQ_UNIT_SIZE;
        }
        if (k->size == sizeof(int32_t)) {
            *(int32_t *)(void *)field = (int32_t)v;
        } else {
            *(int64_t *)(void *)field = v;
        }
        return 0;
    case KEY_RATIO:
        if (!parse_int64(value, &v) || v < INT32_MIN || v > INT32_MAX) {
            return config_bad(file, line, k->name, value, "an integer percentage");
        }
        if (v < k->lo || v > k->hi) {
            int64_t c = v < k->lo ? k->lo : k->hi;
            config_warn(warn, warn_arg, file, line,
                        "key '%s': %lld clamped to %lld (RocketMQ's range is %lld..%lld)", k->name,
                        (long long)v, (long long)c, (long long)k->lo, (long long)k->hi);
            v = c;
        }
        *(int32_t *)(void *)field = (int32_t)v;
        return 0;
    case KEY_BOOL:
        if (!parse_bool(value, &b)) {
            return config_bad(file, line, k->name, value, "true or false");
        }
        *(bool *)(void *)field = b;
        return 0;
    case KEY_FLUSH:
        if (strcasecmp(value, "ASYNC_FLUSH") == 0) {
            cfg->flush_disk_type = SHMQ_ASYNC_FLUSH;
        } else if (strcasecmp(value, "SYNC_FLUSH") == 0) {
            cfg->flush_disk_type = SHMQ_SYNC_FLUSH;
        } else {
            return config_bad(file, line, k->name, value, "ASYNC_FLUSH or SYNC_FLUSH");
        }
        return 0;
    case KEY_ROLE:
        if (strcasecmp(value, "ASYNC_MASTER") == 0) {
            cfg->broker_role = SHMQ_ASYNC_MASTER;
        } else if (strcasecmp(value, "SYNC_MASTER") == 0) {
            cfg->broker_role = SHMQ_SYNC_MASTER;
        } else if (strcasecmp(value, "SLAVE") == 0) {
            cfg->broker_role = SHMQ_SLAVE;
        } else {
            return config_bad(file, line, k->name, value, "ASYNC_MASTER, SYNC_MASTER or SLAVE");
        }
        return 0;
    case KEY_DELAY: {
        int64_t ms[SHMQ_MAX_DELAY_LEVELS];
        int n = shmq_config_parse_delay_levels(value, ms, SHMQ_MAX_DELAY_LEVELS);
        if (n < 0) {
            char why[160];
            snprintf(why, sizeof(why), "%s", shmq_error_detail());
            return config_bad(file, line, k->name, value,
                              "1..%d space-separated delays like \"1s 5m 2h 1d\" (%s)",
                              SHMQ_MAX_DELAY_LEVELS, why);
        }
        int rc = config_set_string(k, field, file, line, value);
        if (rc < 0) {
            return rc;
        }
        memcpy(cfg->delay_level_ms, ms, (size_t)n * sizeof(ms[0]));
        cfg->delay_level_count = n;
        return 0;
    }
    case KEY_DELETE_WHEN:
        if (!parse_delete_when(value)) {
            return config_bad(file, line, k->name, value,
                              "hours 00..23 separated by ';' (e.g. \"04\" or \"01;13\")");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_COMMITLOG_DIR:
        if (strchr(value, ',') != NULL) {
            return config_bad(file, line, k->name, value,
                              "a single directory (',' separated multi-path is not supported)");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_IP: {
        unsigned char addr[16];
        if (value[0] != '\0' && inet_pton(AF_INET, value, addr) != 1 &&
            inet_pton(AF_INET6, value, addr) != 1) {
            return config_bad(file, line, k->name, value, "an IPv4 or IPv6 address");
        }
        return config_set_string(k, field, file, line, value);
    }
    case KEY_ABS_PATH:
        if (value[0] != '\0' && value[0] != '/') {
            return config_bad(file, line, k->name, value, "an absolute path");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_HOSTPORT:
        if (value[0] != '\0' && !parse_hostport(value)) {
            return config_bad(file, line, k->name, value, "host:port with a port 1..65535");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_HOSTPORT_LIST:
        if (value[0] != '\0' && !parse_hostport_list(value)) {
            return config_bad(file, line, k->name, value,
                              "host:port[;host:port...] with ports 1..65535");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_LISTEN:
        if (value[0] != '\0' && strspn(value, "0123456789") == strlen(value)) {
            int64_t port;
            if (!parse_int64(value, &port) || port < 1 || port > 65535) {
                return config_bad(file, line, k->name, value, "a port 1..65535 or host:port");
            }
            snprintf(field, k->size, "127.0.0.1:%d", (int)port);
            return 0;
        }
        if (value[0] != '\0' && !parse_hostport(value)) {
            return config_bad(file, line, k->name, value, "a port 1..65535 or host:port");
        }
        return config_set_string(k, field, file, line, value);
    case KEY_LOG_LEVEL: {
        int level = shmq_log_level_parse(value);
        if (level < 0) {
            return config_bad(file, line, k->name, value, "ERROR, WARN, INFO or DEBUG");
        }
        cfg->log_level = level;
        return 0;
    }
    case KEY_NAME:
        if (value[0] == '\0') {
            /* Empty means the default where the default is empty (clientUnixGroup): what
             * --print-config prints reads back. */
            shmq_config_t def;
            shmq_config_defaults(&def);
            if (((const char *)&def)[k->off] == '\0') {
                field[0] = '\0';
                return 0;
            }
            return config_bad(file, line, k->name, value, "a non-empty value");
        }
        return config_set_string(k, field, file, line, value);
    }
    return config_bad(file, line, k->name, value, "a known kind of value");
}

/*
 * RocketMQ store keys shmq reads and checks (so that --print-config shows
 * them and a bad value is still an error) but whose choice it does not
 * offer: a value other than RocketMQ's default draws a warning that says
 * why (the default is what shmq does, or changes nothing).
 */
static const struct {
    const char *name;
    const char *why;
} config_inert[] = {
    {"flushCommitLogTimed", "the flusher flushes every flushIntervalCommitLog"},
    {"putMessageTimeout", "a send is bounded by the producer's send timeout"},
    {"warmMapedFileEnable", "CommitLog segments are always pre-faulted ahead of the writer"},
    {"messageIndexSafe", "recovery starts the index from its own checkpointed position"},
};

static int config_set_at(shmq_config_t *cfg, const char *key, const char *value, const char *file,
                         int line, shmq_config_warn_fn warn, void *warn_arg)
{
    const key_def_t *k = config_key_find(key);
    if (k == NULL) {
        for (size_t i = 0; i < sizeof(config_aliases) / sizeof(config_aliases[0]); i++) {
            if (strcmp(config_aliases[i].old_name, key) == 0) {
                config_warn(warn, warn_arg, file, line, "key '%s' is the old spelling of '%s'", key,
                            config_aliases[i].name);
                k = config_key_find(config_aliases[i].name);
                break;
            }
        }
    }
    if (k != NULL) {
        int rc = config_apply(cfg, k, value, file, line, warn, warn_arg);
        for (size_t i = 0; rc == 0 && i < sizeof(config_inert) / sizeof(config_inert[0]); i++) {
            if (strcmp(config_inert[i].name, k->name) == 0) {
                shmq_config_t def;
                shmq_config_defaults(&def);
                if (memcmp((const char *)cfg + k->off, (const char *)&def + k->off, k->size) != 0) {
                    config_warn(warn, warn_arg, file, line, "key '%s=%s' has no effect in shmq: %s",
                                k->name, value, config_inert[i].why);
                }
            }
        }
        return rc;
    }
    for (size_t i = 0; i < sizeof(config_ignored) / sizeof(config_ignored[0]); i++) {
        if (strcmp(config_ignored[i], key) == 0) {
            config_warn(warn, warn_arg, file, line, "key '%s' has no effect in shmq", key);
            return 0;
        }
    }
    config_warn(warn, warn_arg, file, line, "unknown key '%.200s'", key);
    return 1;
}

int shmq_config_write(const shmq_config_t *cfg, FILE *f)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        const key_def_t *k = &config_keys[i];
        const char *field = (const char *)cfg + k->off;
        switch (k->kind) {
        case KEY_I32:
        case KEY_I64:
        case KEY_CQ_SIZE:
        case KEY_RATIO:
            fprintf(f, "%s=%lld\n", k->name,
                    k->size == sizeof(int32_t) ? (long long)*(const int32_t *)(const void *)field
                                               : (long long)*(const int64_t *)(const void *)field);
            break;
        case KEY_BOOL:
            fprintf(f, "%s=%s\n", k->name, *(const bool *)(const void *)field ? "true" : "false");
            break;
        case KEY_FLUSH:
            fprintf(f, "%s=%s\n", k->name,
                    cfg->flush_disk_type == SHMQ_SYNC_FLUSH ? "SYNC_FLUSH" : "ASYNC_FLUSH");
            break;
        case KEY_LOG_LEVEL:
            fprintf(f, "%s=%s\n", k->name, shmq_log_level_text(cfg->log_level));
            break;
        case KEY_ROLE:
            fprintf(f, "%s=%s\n", k->name,
                    cfg->broker_role == SHMQ_SLAVE         ? "SLAVE"
                    : cfg->broker_role == SHMQ_SYNC_MASTER ? "SYNC_MASTER"
                                                           : "ASYNC_MASTER");
            break;
        default: /* text */
            fprintf(f, "%s=%.*s\n", k->name, (int)strnlen(field, k->size), field);
            break;
        }
    }
    return ferror(f) ? -EIO : 0;
}

int shmq_config_set(shmq_config_t *cfg, const char *key, const char *value,
                    shmq_config_warn_fn warn, void *warn_arg)
{
    if (cfg == NULL || key == NULL || value == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "shmq_config_set: NULL argument");
    }
    return config_set_at(cfg, key, value, NULL, 0, warn, warn_arg);
}

/* ---- broker.conf --------------------------------------------------------- */

static bool conf_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trim in place; returns the start of the trimmed text. */
static char *conf_trim(char *s, char *end)
{
    while (s < end && conf_space(*s)) {
        s++;
    }
    while (end > s && conf_space(end[-1])) {
        end--;
    }
    *end = '\0';
    return s;
}

int shmq_config_load(shmq_config_t *cfg, const char *path, shmq_config_warn_fn warn, void *warn_arg)
{
    char *data;
    size_t len;
    int rc = shmq_file_read_all(path, CONF_MAX, &data, &len);
    if (rc < 0) {
        if (rc == -ENOENT) {
            shmq_error_set(rc, "%s: no such file", path);
        }
        return rc;
    }
    char *p = data, *end = data + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3; /* UTF-8 byte order mark */
    }
    for (int line = 1; p < end && rc >= 0; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl != NULL ? nl : end;
        char *next = nl != NULL ? nl + 1 : end;
        if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "%s:%d: line contains a NUL byte", path, line);
            break;
        }
        char *s = conf_trim(p, eol);
        p = next;
        if (*s == '\0' || *s == '#' || *s == '!') {
            continue;
        }
        size_t n = strlen(s);
        if (s[n - 1] == '\\') {
            rc = shmq_error_set(SHMQ_E_CONFIG,
                                "%s:%d: line continuation ('\\' at the end) is "
                                "not supported",
                                path, line);
            break;
        }
        char *sep = strpbrk(s, "=:");
        if (sep == NULL) {
            rc = shmq_error_set(SHMQ_E_CONFIG,
                                "%s:%d: expected 'key=value' or 'key: value', got "
                                "'%.100s'",
                                path, line, s);
            break;
        }
        char *key = conf_trim(s, sep);
        char *value = conf_trim(sep + 1, s + n);
        if (*key == '\0' || strpbrk(key, " \t") != NULL) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "%s:%d: bad key '%.100s': expected 'key=value'",
                                path, line, key);
            break;
        }
        rc = config_set_at(cfg, key, value, path, line, warn, warn_arg);
    }
    free(data);
    return rc < 0 ? rc : 0;
}

/* ---- cross-field checks -------------------------------------------------- */

static int config_invalid(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int config_invalid(const char *key, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return shmq_error_set(SHMQ_E_CONFIG, "key '%s': %s", key, msg);
}

/*
 * Rules that involve more than one key (each single value was range-checked
 * when set; these also catch fields set directly in the struct):
 * - a record of maxMessageSize with the longest topic and properties fits
 *   in one CommitLog segment;
 * - the ConsumeQueue file size is a positive multiple of 20;
 * - the ratios lie in RocketMQ's clamp ranges.  Their relative order is not
 *   enforced: RocketMQ accepts e.g. a warning level below the forced-clean
 *   level, and so does shmq (the warning level then also cleans);
 * - timerPrecisionMs is 100..1000 and divides 1000 (slots per second);
 * - the IndexFile size (40 + 4 x slots + 20 x entries) fits an int, as
 *   RocketMQ computes it;
 * - 1..64 delay levels;
 * - haListenPort differs from listenPort;
 * - a SLAVE has brokerId > 0 (RocketMQ refuses otherwise), an
 *   haMasterAddress (shmq has no name server to learn it from) and a
 *   replication link: haSecretFile (TLS with a pre-shared key) or, said
 *   explicitly, haPlainLink=true (RocketMQ's plain protocol); so does a
 *   SYNC_MASTER; never both.
 */
/* logLevel's values, indexed by enum shmq_log_level (the log lines print them too). */
static const char *const log_level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int shmq_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof(log_level_names) / sizeof(log_level_names[0])); i++) {
        if (strcasecmp(s, log_level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *shmq_log_level_text(int level)
{
    return level >= 0 && level < (int)(sizeof(log_level_names) / sizeof(log_level_names[0]))
               ? log_level_names[level]
               : "INFO";
}

void shmq_config_fit(shmq_config_t *cfg, shmq_config_warn_fn warn, void *warn_arg)
{
    int64_t overhead =
        RECORD_OVERHEAD_MAX + cfg->max_topic_length + SHMQ_PROPS_MAX + SHMQ_BLANK_MIN_LEN;
    int64_t fit = cfg->mapped_file_size_commit_log - overhead;
    if (fit <= 0 || cfg->max_message_size <= fit) {
        return; /* fits, or no record fits at all: validate says so */
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "maxMessageSize %d does not fit a CommitLog segment of %lld bytes "
             "(mappedFileSizeCommitLog; a record has up to %lld bytes of header, topic and "
             "properties besides the body): capped to %lld",
             cfg->max_message_size, (long long)cfg->mapped_file_size_commit_log,
             (long long)overhead, (long long)fit);
    cfg->max_message_size = (int32_t)fit;
    if (warn) {
        warn(warn_arg, NULL, 0, msg);
    }
}

int shmq_config_validate(const shmq_config_t *cfg)
{
    if (cfg->store_path_root_dir[0] == '\0') {
        return config_invalid("storePathRootDir", "must not be empty");
    }
    if (cfg->enable_controller_mode && cfg->controller_addr[0] == '\0') {
        return config_invalid("controllerAddr",
                              "enableControllerMode=true needs the controllers' client addresses "
                              "(host:port;host:port)");
    }
    int64_t record_max = (int64_t)cfg->max_message_size + RECORD_OVERHEAD_MAX +
                         cfg->max_topic_length + SHMQ_PROPS_MAX + SHMQ_BLANK_MIN_LEN;
    if (cfg->max_message_size <= 0 || record_max > cfg->mapped_file_size_commit_log) {
        return config_invalid("maxMessageSize",
                              "%d: a record of this size (up to %lld bytes with header, topic "
                              "and properties) does not fit a CommitLog segment of %lld bytes "
                              "(mappedFileSizeCommitLog)",
                              cfg->max_message_size, (long long)record_max,
                              (long long)cfg->mapped_file_size_commit_log);
    }
    if (cfg->mapped_file_size_consume_queue < SHMQ_CQ_UNIT_SIZE ||
        cfg->mapped_file_size_consume_queue % SHMQ_CQ_UNIT_SIZE != 0) {
        return config_invalid("mappedFileSizeConsumeQueue", "%lld is not a positive multiple of %d",
                              (long long)cfg->mapped_file_size_consume_queue, SHMQ_CQ_UNIT_SIZE);
    }
    static const struct {
        const char *key;
        size_t off;
        int lo, hi;
    } ratios[] = {
        {"diskMaxUsedSpaceRatio", offsetof(shmq_config_t, disk_max_used_space_ratio), 10, 95},
        {"diskSpaceWarningLevelRatio", offsetof(shmq_config_t, disk_space_warning_level_ratio), 35,
         90},
        {"diskSpaceCleanForciblyRatio", offsetof(shmq_config_t, disk_space_clean_forcibly_ratio),
         30, 85},
    };
    for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
        int32_t v = *(const int32_t *)(const void *)((const char *)cfg + ratios[i].off);
        if (v < ratios[i].lo || v > ratios[i].hi) {
            return config_invalid(ratios[i].key, "%d is outside %d..%d", v, ratios[i].lo,
                                  ratios[i].hi);
        }
    }
    if (cfg->timer_precision_ms < 100 || cfg->timer_precision_ms > 1000 ||
        1000 % cfg->timer_precision_ms != 0) {
        return config_invalid("timerPrecisionMs", "%d must be 100..1000 and divide 1000",
                              cfg->timer_precision_ms);
    }
    int64_t index_size =
        40 + 4 * (int64_t)cfg->max_hash_slot_num + 20 * (int64_t)cfg->max_index_num;
    if (cfg->max_hash_slot_num <= 0 || cfg->max_index_num <= 0 || index_size > INT32_MAX) {
        return config_invalid("maxIndexNum",
                              "an IndexFile of %d slots and %d entries (%lld bytes) exceeds "
                              "2 GiB",
                              cfg->max_hash_slot_num, cfg->max_index_num, (long long)index_size);
    }
    if (cfg->delay_level_count < 1 || cfg->delay_level_count > SHMQ_MAX_DELAY_LEVELS) {
        return config_invalid("messageDelayLevel", "%d levels, expected 1..%d",
                              cfg->delay_level_count, SHMQ_MAX_DELAY_LEVELS);
    }
    if (cfg->ha_listen_port == cfg->listen_port) {
        return config_invalid("haListenPort", "%d is also listenPort", cfg->ha_listen_port);
    }
    bool link = cfg->ha_plain_link || cfg->ha_secret_file[0] != '\0';
    if (cfg->ha_plain_link && cfg->ha_secret_file[0] != '\0') {
        return config_invalid("haSecretFile",
                              "%s is set together with haPlainLink=true: the link is either "
                              "authenticated (haSecretFile) or plain, not both",
                              cfg->ha_secret_file);
    }
    if (cfg->broker_role == SHMQ_SYNC_MASTER && !link) {
        return config_invalid("haSecretFile",
                              "a SYNC_MASTER answers a send once a slave has it: set "
                              "haSecretFile to a secret file shared with the slaves (TLS with a "
                              "pre-shared key), or haPlainLink=true for RocketMQ's plain HA "
                              "protocol, which has no authentication");
    }
    if (cfg->broker_role == SHMQ_SLAVE) {
        if (!link) {
            return config_invalid("haSecretFile",
                                  "a SLAVE follows its master over a replication link: set "
                                  "haSecretFile to the secret file its master has (TLS with a "
                                  "pre-shared key), or haPlainLink=true for RocketMQ's plain HA "
                                  "protocol, which has no authentication");
        }
        if (cfg->broker_id <= 0 && !cfg->enable_controller_mode) {
            return config_invalid("brokerId", "a SLAVE needs brokerId > 0, got %lld",
                                  (long long)cfg->broker_id);
        }
        if (cfg->ha_master_address[0] == '\0') {
            return config_invalid("haMasterAddress", "a SLAVE needs the master's host:port");
        }
    }
    return 0;
}

void shmq_config_commitlog_dir(const shmq_config_t *cfg, char *out, size_t len)
{
    if (cfg->store_path_commit_log[0] != '\0') {
        snprintf(out, len, "%s", cfg->store_path_commit_log);
    } else {
        snprintf(out, len, "%s/commitlog", cfg->store_path_root_dir);
    }
}

int shmq_config_store_host(const shmq_config_t *cfg, shmq_host_t *out)
{
    shmq_local_host(out, cfg->listen_port);
    if (cfg->broker_ip1[0]) {
        uint8_t addr[16];
        memset(addr, 0, sizeof(addr));
        /* IPv4 (4 address bytes) or IPv6: RocketMQ's 20-byte store host, sysflag
         * STOREHOSTADDRESS_V6_FLAG (the record encoder sets it from is_v6). */
        if (inet_pton(AF_INET, cfg->broker_ip1, addr) == 1) {
            out->is_v6 = 0;
        } else if (inet_pton(AF_INET6, cfg->broker_ip1, addr) == 1) {
            out->is_v6 = 1;
        } else {
            return shmq_error_set(SHMQ_E_CONFIG,
                                  "key 'brokerIP1': bad value '%s': expected an IPv4 or IPv6 "
                                  "address",
                                  cfg->broker_ip1);
        }
        memcpy(out->addr, addr, sizeof(out->addr));
    }
    return 0;
}
