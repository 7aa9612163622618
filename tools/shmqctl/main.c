/*
 * shmqctl: command-line entry point.  Parses the options every command
 * shares (-c FILE, --set KEY=VALUE, --store DIR) and the command-specific
 * ones with one getopt_long table, builds the configuration (defaults, then
 * the file, then the overrides in command-line order, then validation) and
 * dispatches to the command.
 *
 *   shmqctl COMMAND [OPTIONS] [ARGS]
 *
 * Exit codes: 0 success, 1 failure, 2 usage or configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmqctl.h"

enum {
    OPT_SET = 256,
    OPT_STORE,
    OPT_JSON,
    OPT_TOPIC,
    OPT_COUNT,
    OPT_SIZE,
    OPT_QUEUES,
    OPT_TAGS,
    OPT_KEYS,
    OPT_FROM,
    OPT_NO_CHECK,
    OPT_FORCE,
    OPT_REBUILD,
    OPT_READ_QUEUES,
    OPT_WRITE_QUEUES,
    OPT_PERM,
    OPT_ORDER,
    OPT_DELAY_LEVEL,
    OPT_QUEUE,
    OPT_SHARDING_KEY,
    OPT_ASYNC,
    OPT_GROUP,
    OPT_TIMEOUT,
    OPT_QUERY_KEY,
    OPT_BEGIN,
    OPT_END,
    OPT_MAX,
    OPT_MSG_ID,
    OPT_UNIQ_KEY,
    OPT_PHYS_OFFSET,
    OPT_TIME,
    OPT_DELIVER_AT,
    OPT_DELIVER_AFTER,
    OPT_FAIL,
    OPT_SKIP_CORRUPT,
    OPT_BROADCAST,
    OPT_ORDERLY,
    OPT_PROMOTE,
    OPT_SLAVE,
    OPT_MASTER,
    OPT_CLEAR,
    OPT_TO,
    OPT_RAW,
    OPT_COMPRESS_OVER,
    OPT_CONTROLLER,
};

typedef struct shmqctl_cmd {
    const char *name;
    int (*run)(shmqctl_args_t *a);
    unsigned opts; /* SHMQCTL_OPT_* accepted */
    int min_pos;
    int max_pos;
    const char *usage;
} shmqctl_cmd_t;

static const shmqctl_cmd_t commands[] = {
    {"gen", shmqctl_cmd_gen,
     SHMQCTL_OPT_TOPIC | SHMQCTL_OPT_COUNT | SHMQCTL_OPT_SIZE | SHMQCTL_OPT_QUEUES |
         SHMQCTL_OPT_TAGS | SHMQCTL_OPT_KEYS,
     0, 0,
     "gen --store DIR --topic T --count N --size B [--queues Q] [--tags TAG] [--keys]\n"
     "    Write N synthetic messages of B bytes (K/M/G suffix allowed) into a stopped\n"
     "    store, round-robin over Q queues (default 4).  --tags sets the TAGS property,\n"
     "    --keys sets KEYS to \"key-<i>\".  Every message gets a UNIQ_KEY.\n"},
    {"dump", shmqctl_cmd_dump,
     SHMQCTL_OPT_JSON | SHMQCTL_OPT_FROM | SHMQCTL_OPT_COUNT | SHMQCTL_OPT_NO_CHECK |
         SHMQCTL_OPT_RAW,
     1, 3,
     "dump --store DIR commitlog [--from OFFSET] [--count N] [--json] [--no-check] [--raw]\n"
     "  or: dump --store DIR consumequeue TOPIC QUEUE [--from QOFFSET] [--count N] [--json]\n"
     "    Print records (or ConsumeQueue units) one per line, as text or JSON lines.\n"
     "    Opens the store read-only: works while a broker runs.  --no-check skips the\n"
     "    CRC checks (records are still checked for structure).  A compressed body\n"
     "    (sysflag COMPRESSED) is shown decompressed; --raw shows the stored bytes.\n"},
    {"verify", shmqctl_cmd_verify, 0, 0, 0,
     "verify --store DIR\n"
     "    Check every CommitLog record (CRCs, offsets, segment ends) and every\n"
     "    ConsumeQueue unit against the records.  Exit 0 when all is well, 1 with a\n"
     "    list of problems (file and offset) otherwise.  On a running store it checks\n"
     "    what the store had published when verify started (below wrote, each queue\n"
     "    below its max offset) and leaves what is written meanwhile alone.\n"},
    {"recover", shmqctl_cmd_recover, SHMQCTL_OPT_JSON | SHMQCTL_OPT_FORCE | SHMQCTL_OPT_REBUILD, 0,
     0,
     "recover --store DIR [--json] [--force] [--rebuild]\n"
     "    Run store recovery on a stopped store (cut a torn tail, rebuild and trim\n"
     "    ConsumeQueues) and report what it did.  A bad record below the checkpoint\n"
     "    (data that was flushed) is refused unless --force: then the log is cut\n"
     "    there and every later record is lost.  --rebuild rebuilds every\n"
     "    ConsumeQueue from the CommitLog.\n"},
    {"topic", shmqctl_cmd_topic, SHMQCTL_OPT_JSON | SHMQCTL_OPT_QUEUES | SHMQCTL_OPT_TOPIC_CONF, 1,
     2,
     "topic --store DIR create|update TOPIC [--queues N] [--read-queues N] [--write-queues N]\n"
     "          [--perm P] [--order]\n"
     "  or: topic --store DIR list [--json]\n"
     "  or: topic --store DIR delete TOPIC\n"
     "    Create, change, list or delete topics: through the control block of a\n"
     "    running store, or in config/topics.json of a stopped one.  Queue counts\n"
     "    are 1..1024 (default defaultTopicQueueNums); perm is RocketMQ's (6 = rw).\n"},
    {"send", shmqctl_cmd_send,
     SHMQCTL_OPT_TAGS | SHMQCTL_OPT_KEYS | SHMQCTL_OPT_KEYS_ARG | SHMQCTL_OPT_COUNT |
         SHMQCTL_OPT_SIZE | SHMQCTL_OPT_SEND | SHMQCTL_OPT_DELIVER | SHMQCTL_OPT_COMPRESS,
     1, 2,
     "send --store DIR TOPIC [BODY] [--tags T] [--keys K] [--count N] [--size B]\n"
     "          [--delay-level L | --deliver-at TIME | --deliver-after MS]\n"
     "          [--queue Q] [--sharding-key K] [--async K] [--compress-over B]\n"
     "    Send messages to a running store.  The body is BODY, else stdin when it is\n"
     "    not a terminal (at most maxMessageSize bytes), else --size generated bytes.\n"
     "    Prints one SEND_OK line per message, or a summary with --count.  --async K\n"
     "    keeps up to K requests in flight.  Exit 1 if any send failed.\n"
     "    --delay-level L delivers after the store's messageDelayLevel L; --deliver-at\n"
     "    (ms since the epoch or local \"YYYY-MM-DD HH:MM:SS[.mmm]\") and\n"
     "    --deliver-after MS at a time (timerPrecisionMs, up to timerMaxDelaySec).\n"
     "    A body of B bytes or more (default 4096; 0: never) is stored LZ4-compressed.\n"},
    {"consume", shmqctl_cmd_consume,
     SHMQCTL_OPT_GROUP | SHMQCTL_OPT_COUNT | SHMQCTL_OPT_FROM | SHMQCTL_OPT_FROM_WORD |
         SHMQCTL_OPT_TIMEOUT | SHMQCTL_OPT_JSON | SHMQCTL_OPT_TAGS | SHMQCTL_OPT_FAIL |
         SHMQCTL_OPT_NO_CHECK | SHMQCTL_OPT_SKIP_CORRUPT | SHMQCTL_OPT_MEMBER | SHMQCTL_OPT_RAW,
     1, 1,
     "consume --store DIR TOPIC --group G [--count N] [--from first|last] [--timeout MS]\n"
     "          [--json] [--tags EXPR] [--fail] [--no-check] [--skip-corrupt [T:]Q:OFF]\n"
     "          [--broadcast | --orderly] [--raw]\n"
     "    Read a running store's messages of TOPIC as a member of group G: of the\n"
     "    queues the group gives this member (its members share them; every queue\n"
     "    with --broadcast, positions kept to itself; held as locks with --orderly)\n"
     "    from the group's committed offsets (none: --from first, the default, or\n"
     "    last), print them (text or JSON lines) and commit the group's offsets.\n"
     "    Stops after N\n"
     "    messages (exit 1 if fewer came) or when nothing arrives for --timeout ms\n"
     "    (default 3000).  --tags filters: \"TagA || TagB\".  The group's retry topic\n"
     "    %RETRY%G is read too.  --fail sends every message back (retried later with\n"
     "    the next delay level; after maxReconsumeTimes into %DLQ%G).\n"
     "    A message whose record fails its checks (CRCs, or its ConsumeQueue unit)\n"
     "    stops the queue: exit 1, naming its CommitLog file and offset and its queue\n"
     "    offset.  --skip-corrupt Q:OFF first gives up that one message of queue Q\n"
     "    (of TOPIC, or of topic T) for the group, which must stand at it, and\n"
     "    prints a line naming it (with --count 0: only that).  --no-check turns\n"
     "    the CRC checks off (check.crcs=false).  Compressed bodies are printed\n"
     "    decompressed (one that does not decompress is a corrupt message); --raw\n"
     "    prints them as stored.\n"},
    {"dlq", shmqctl_cmd_dlq, SHMQCTL_OPT_GROUP | SHMQCTL_OPT_COUNT | SHMQCTL_OPT_JSON, 0, 0,
     "dlq --store DIR --group G [--count N] [--json]\n"
     "    List the dead-letter queue %DLQ%G of a running store: the messages the\n"
     "    group failed more than its retries allow (first N; commits nothing).\n"},
    {"status", shmqctl_cmd_status, SHMQCTL_OPT_JSON, 0, 0,
     "status --store DIR [--json]\n"
     "    State of a running store: positions, workers (pid, state, restarts, uptime,\n"
     "    heartbeat), counters.  Exit 1 with \"store DIR is not running\" otherwise.\n"},
    {"metrics", shmqctl_cmd_metrics, 0, 0, 0,
     "metrics --store DIR\n"
     "    A running store's metrics in the Prometheus text format (what the\n"
     "    metrics worker serves at http://metricsListen/metrics).\n"},
    {"log-level", shmqctl_cmd_log_level, 0, 0, 1,
     "log-level --store DIR [ERROR|WARN|INFO|DEBUG]\n"
     "    Print, or set, the level every process of a running store logs up to.  A\n"
     "    change holds at once and until the store stops (the next start takes\n"
     "    logLevel from broker.conf).\n"},
    {"restart", shmqctl_cmd_restart, SHMQCTL_OPT_TIMEOUT, 1, 1,
     "restart --store DIR WORKER [--timeout MS]\n"
     "    Have the master restart one worker (writer, flusher, dispatcher, indexer,\n"
     "    scheduler, cleaner, ha-sender, ha-receiver: those the store runs) and wait\n"
     "    (default 10000 ms) until it runs again; prints the old and the new pid.\n"},
    {"clean", shmqctl_cmd_clean, SHMQCTL_OPT_JSON | SHMQCTL_OPT_TIMEOUT, 0, 0,
     "clean --store DIR [--json] [--timeout MS]\n"
     "    Ask the cleaner to delete expired CommitLog segments now, whatever the hour\n"
     "    (for its next 20 runs), then ConsumeQueue and index files below the new\n"
     "    minimum; waits (default 10000 ms) and prints what the first run deleted.\n"},
    {"query", shmqctl_cmd_query,
     SHMQCTL_OPT_QUERY | SHMQCTL_OPT_TOPIC | SHMQCTL_OPT_JSON | SHMQCTL_OPT_RAW, 0, 0,
     "query --store DIR --topic T --key K [--begin TIME] [--end TIME] [--max N] [--json]\n"
     "  or: query --store DIR --uniq-key ID [--topic T] [--json]\n"
     "  or: query --store DIR --msg-id ID [--json]\n"
     "  or: query --store DIR --phys-offset OFFSET [--json]\n"
     "    Find messages through the index (by a KEYS token or a UNIQ_KEY, newest\n"
     "    first, at most N, default maxMsgsNumBatch) or by offset message id or\n"
     "    CommitLog offset, in a running or a stopped store, read-only.  TIME is ms\n"
     "    since the epoch or local \"YYYY-MM-DD HH:MM:SS\".  Output as consume's\n"
     "    (--raw: compressed bodies as stored).\n"
     "    Exit 1 when nothing is found.\n"},
    {"offset-by-time", shmqctl_cmd_offset_by_time,
     SHMQCTL_OPT_QUERY | SHMQCTL_OPT_TOPIC | SHMQCTL_OPT_SEND | SHMQCTL_OPT_JSON, 0, 0,
     "offset-by-time --store DIR --topic T --queue Q --time TIME [--json]\n"
     "    Print the queue offset of the first message of T/Q stored at or after TIME\n"
     "    (the queue's max offset when every message is older).\n"},
    {"group", shmqctl_cmd_group, SHMQCTL_OPT_JSON | SHMQCTL_OPT_FORCE, 1, 2,
     "group --store DIR list [--json]\n"
     "  or: group --store DIR show GROUP [--json]\n"
     "  or: group --store DIR progress GROUP [--json]\n"
     "  or: group --store DIR delete GROUP [--force]\n"
     "    list: the groups with live members on a running store.  show: the group's\n"
     "    members (client id, pid, user, topic, model, queues held and being given\n"
     "    back, joined, last commit).  progress: per topic and queue the group has\n"
     "    offsets for, the queue's max and min offsets, the group's committed offset,\n"
     "    its lag (max minus committed, never below 0) and the member holding the\n"
     "    queue, and the group's total lag.  delete: remove every offset of the\n"
     "    group (refused while it has live members, unless --force).  progress and\n"
     "    delete: running store (control block) or stopped store\n"
     "    (config/consumerOffset.json and the ConsumeQueue files).\n"},
    {"offsets", shmqctl_cmd_offsets,
     SHMQCTL_OPT_GROUP | SHMQCTL_OPT_TOPIC | SHMQCTL_OPT_SEND | SHMQCTL_OPT_TO, 1, 1,
     "offsets --store DIR reset --group G --topic T --to earliest|latest|OFFSET|@MS|TIME\n"
     "          [--queue Q]\n"
     "    Set the committed offsets of group G in every queue of T (or queue Q):\n"
     "    earliest (the queue's min offset), latest (its max), OFFSET (clamped to\n"
     "    [min, max] of each queue), or the offset of the first message stored at\n"
     "    or after a time: @MS (ms since the epoch) or local \"YYYY-MM-DD HH:MM:SS\".\n"
     "    Running store: set in the control block; a running shmqctl consume of G\n"
     "    takes the new offsets at its next pull.  Stopped store: consumerOffset.json\n"
     "    is rewritten.\n"},
    {"role", shmqctl_cmd_role, SHMQCTL_OPT_ROLE | SHMQCTL_OPT_TIMEOUT | SHMQCTL_OPT_JSON, 0, 0,
     "role --store DIR [--json]\n"
     "  or: role --store DIR --promote [--timeout MS]\n"
     "  or: role --store DIR --slave --master HOST:PORT\n"
     "  or: role --store DIR --clear\n"
     "    Show the store's role (and where it comes from), epoch and epoch table;\n"
     "    --promote turns a running slave into a master (ASYNC_MASTER; SYNC_MASTER\n"
     "    in controller mode): its\n"
     "    ha-receiver stops, a new epoch begins at its log's end, the writer starts;\n"
     "    --slave makes a stopped store a slave of HOST:PORT at its next start\n"
     "    (an old master after a failover: its divergent tail is cut then);\n"
     "    --clear removes the override: broker.conf decides again.  The role is\n"
     "    kept in <store>/roleOverride (docs/operations.md \"Failover\").\n"},
    {"controller", shmqctl_cmd_controller,
     SHMQCTL_OPT_CTRL | SHMQCTL_OPT_JSON | SHMQCTL_OPT_TIMEOUT, 1, 1,
     "controller status --controller HOST:PORT [--json] [--timeout MS]\n"
     "    Ask a shmq-controller (its controllerListen address) for its group: the\n"
     "    members and the leader, and per broker set the master (brokerId, address),\n"
     "    the master epoch, the sync-state set and its epoch, and the replicas.  Any\n"
     "    member answers with what it holds; only the leader knows which replicas are\n"
     "    alive.  --timeout bounds the exchange (default 5000 ms).\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char common_usage[] =
    "Options of every command:\n"
    "    -c, --config FILE     read a broker.conf\n"
    "    --set KEY=VALUE       set a configuration key (repeatable, after the file)\n"
    "    --store DIR           short for --set storePathRootDir=DIR\n"
    "    -h, --help            this text\n";

static const shmqctl_cmd_t *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

void shmqctl_usage(FILE *f, const char *cmd)
{
    const shmqctl_cmd_t *c = cmd ? find_command(cmd) : NULL;
    if (c) {
        fprintf(f, "usage: shmqctl %s\n%s", c->usage, common_usage);
        return;
    }
    fprintf(f, "usage: shmqctl COMMAND [OPTIONS] [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "  %s", commands[i].usage);
    }
    fprintf(f, "  help [COMMAND]\n    This text, or the usage of one command.\n");
    fprintf(f, "  version\n    Print the version.\n\n%s", common_usage);
    fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage or configuration error.\n");
}

void shmqctl_err(const char *fmt, ...)
{
    va_list ap;
    fputs("shmqctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int shmqctl_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    const char *detail = shmq_error_detail();
    fputs("shmqctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s", shmq_strerror(rc));
    if (detail[0]) {
        fprintf(stderr, ": %s", detail);
    }
    fputc('\n', stderr);
    return SHMQCTL_EXIT_FAIL;
}

int shmqctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("shmqctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    shmqctl_usage(stderr, cmd);
    return SHMQCTL_EXIT_USAGE;
}

static void config_warn(void *arg, const char *file, int line, const char *msg)
{
    (void)arg;
    if (file) {
        fprintf(stderr, "shmqctl: warning: %s:%d: %s\n", file, line, msg);
    } else {
        fprintf(stderr, "shmqctl: warning: %s\n", msg);
    }
}

/* A config error: the library's detail, else the code's text.  Returns 2. */
static int config_error(int rc, const char *what)
{
    const char *detail = shmq_error_detail();
    if (detail[0]) {
        shmqctl_err("%s", detail);
    } else {
        shmqctl_err("%s: %s", what, shmq_strerror(rc));
    }
    return SHMQCTL_EXIT_USAGE;
}

/* One --set or --store, applied in command-line order after the file. */
typedef struct override {
    const char *key; /* NULL: arg is KEY=VALUE */
    const char *arg;
} override_t;

static int build_config(shmqctl_args_t *a, const char *conf_file, const override_t *ov, int nov)
{
    int rc;
    shmq_config_defaults(&a->cfg);
    if (conf_file) {
        shmq_error_clear();
        rc = shmq_config_load(&a->cfg, conf_file, config_warn, NULL);
        if (rc < 0 && rc > -4096) {
            shmqctl_err("cannot read config file %s: %s", conf_file, strerror(-rc));
            return SHMQCTL_EXIT_USAGE;
        }
        if (rc < 0) {
            return config_error(rc, conf_file);
        }
    }
    for (int i = 0; i < nov; i++) {
        char key[256];
        const char *value;
        if (ov[i].key) {
            snprintf(key, sizeof(key), "%s", ov[i].key);
            value = ov[i].arg;
        } else {
            const char *eq = strchr(ov[i].arg, '=');
            size_t klen = eq ? (size_t)(eq - ov[i].arg) : 0;
            if (!eq || klen == 0 || klen >= sizeof(key)) {
                return shmqctl_usage_error(a->cmd, "--set expects KEY=VALUE, got '%s'", ov[i].arg);
            }
            memcpy(key, ov[i].arg, klen);
            key[klen] = '\0';
            value = eq + 1;
        }
        shmq_error_clear();
        rc = shmq_config_set(&a->cfg, key, value, config_warn, NULL);
        if (rc < 0) {
            return config_error(rc, key);
        }
    }
    /* Sizes the configuration leaves at their defaults: those of the store's own files. */
    shmqctl_sizes_from_files(&a->cfg);
    shmq_config_fit(&a->cfg, NULL, NULL); /* a limit of sends, not of reading: no warning */
    shmq_error_clear();
    rc = shmq_config_validate(&a->cfg);
    if (rc < 0) {
        return config_error(rc, "configuration");
    }
    return 0;
}

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"set", required_argument, NULL, OPT_SET},
    {"store", required_argument, NULL, OPT_STORE},
    {"help", no_argument, NULL, 'h'},
    {"json", no_argument, NULL, OPT_JSON},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"count", required_argument, NULL, OPT_COUNT},
    {"size", required_argument, NULL, OPT_SIZE},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"tags", required_argument, NULL, OPT_TAGS},
    {"keys", no_argument, NULL, OPT_KEYS},
    {"from", required_argument, NULL, OPT_FROM},
    {"no-check", no_argument, NULL, OPT_NO_CHECK},
    {"broadcast", no_argument, NULL, OPT_BROADCAST},
    {"orderly", no_argument, NULL, OPT_ORDERLY},
    {"force", no_argument, NULL, OPT_FORCE},
    {"rebuild", no_argument, NULL, OPT_REBUILD},
    {"read-queues", required_argument, NULL, OPT_READ_QUEUES},
    {"write-queues", required_argument, NULL, OPT_WRITE_QUEUES},
    {"perm", required_argument, NULL, OPT_PERM},
    {"order", no_argument, NULL, OPT_ORDER},
    {"delay-level", required_argument, NULL, OPT_DELAY_LEVEL},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"sharding-key", required_argument, NULL, OPT_SHARDING_KEY},
    {"async", required_argument, NULL, OPT_ASYNC},
    {"group", required_argument, NULL, OPT_GROUP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"key", required_argument, NULL, OPT_QUERY_KEY},
    {"begin", required_argument, NULL, OPT_BEGIN},
    {"end", required_argument, NULL, OPT_END},
    {"max", required_argument, NULL, OPT_MAX},
    {"msg-id", required_argument, NULL, OPT_MSG_ID},
    {"uniq-key", required_argument, NULL, OPT_UNIQ_KEY},
    {"phys-offset", required_argument, NULL, OPT_PHYS_OFFSET},
    {"time", required_argument, NULL, OPT_TIME},
    {"deliver-at", required_argument, NULL, OPT_DELIVER_AT},
    {"deliver-after", required_argument, NULL, OPT_DELIVER_AFTER},
    {"fail", no_argument, NULL, OPT_FAIL},
    {"skip-corrupt", required_argument, NULL, OPT_SKIP_CORRUPT},
    {"promote", no_argument, NULL, OPT_PROMOTE},
    {"slave", no_argument, NULL, OPT_SLAVE},
    {"master", required_argument, NULL, OPT_MASTER},
    {"clear", no_argument, NULL, OPT_CLEAR},
    {"to", required_argument, NULL, OPT_TO},
    {"raw", no_argument, NULL, OPT_RAW},
    {"compress-over", required_argument, NULL, OPT_COMPRESS_OVER},
    {"controller", required_argument, NULL, OPT_CONTROLLER},
    {NULL, 0, NULL, 0},
};

static unsigned opt_bit(int opt)
{
    switch (opt) {
    case OPT_JSON:
        return SHMQCTL_OPT_JSON;
    case OPT_TOPIC:
        return SHMQCTL_OPT_TOPIC;
    case OPT_COUNT:
        return SHMQCTL_OPT_COUNT;
    case OPT_SIZE:
        return SHMQCTL_OPT_SIZE;
    case OPT_QUEUES:
        return SHMQCTL_OPT_QUEUES;
    case OPT_TAGS:
        return SHMQCTL_OPT_TAGS;
    case OPT_KEYS:
        return SHMQCTL_OPT_KEYS;
    case OPT_FROM:
        return SHMQCTL_OPT_FROM;
    case OPT_NO_CHECK:
        return SHMQCTL_OPT_NO_CHECK;
    case OPT_FORCE:
        return SHMQCTL_OPT_FORCE;
    case OPT_REBUILD:
        return SHMQCTL_OPT_REBUILD;
    case OPT_READ_QUEUES:
    case OPT_WRITE_QUEUES:
    case OPT_PERM:
    case OPT_ORDER:
        return SHMQCTL_OPT_TOPIC_CONF;
    case OPT_DELAY_LEVEL:
    case OPT_QUEUE:
    case OPT_SHARDING_KEY:
    case OPT_ASYNC:
        return SHMQCTL_OPT_SEND;
    case OPT_GROUP:
        return SHMQCTL_OPT_GROUP;
    case OPT_TO:
        return SHMQCTL_OPT_TO;
    case OPT_RAW:
        return SHMQCTL_OPT_RAW;
    case OPT_COMPRESS_OVER:
        return SHMQCTL_OPT_COMPRESS;
    case OPT_CONTROLLER:
        return SHMQCTL_OPT_CTRL;
    case OPT_TIMEOUT:
        return SHMQCTL_OPT_TIMEOUT;
    case OPT_QUERY_KEY:
    case OPT_BEGIN:
    case OPT_END:
    case OPT_MAX:
    case OPT_MSG_ID:
    case OPT_UNIQ_KEY:
    case OPT_PHYS_OFFSET:
    case OPT_TIME:
        return SHMQCTL_OPT_QUERY;
    case OPT_DELIVER_AT:
    case OPT_DELIVER_AFTER:
        return SHMQCTL_OPT_DELIVER;
    case OPT_FAIL:
        return SHMQCTL_OPT_FAIL;
    case OPT_SKIP_CORRUPT:
        return SHMQCTL_OPT_SKIP_CORRUPT;
    case OPT_BROADCAST:
    case OPT_ORDERLY:
        return SHMQCTL_OPT_MEMBER;
    case OPT_PROMOTE:
    case OPT_SLAVE:
    case OPT_MASTER:
    case OPT_CLEAR:
        return SHMQCTL_OPT_ROLE;
    default:
        return 0;
    }
}

static const char *opt_name(int opt)
{
    for (const struct option *o = long_opts; o->name; o++) {
        if (o->val == opt) {
            return o->name;
        }
    }
    return "?";
}

/* Parse argv[1..] of command c into a; returns 0, or an exit code (2, or -1 for help). */
static int parse_args(const shmqctl_cmd_t *c, int argc, char **argv, shmqctl_args_t *a)
{
    const char *conf_file = NULL;
    override_t *ov = calloc((size_t)argc + 1, sizeof(*ov));
    struct option opts[sizeof(long_opts) / sizeof(long_opts[0])];
    int nov = 0;
    int64_t v;
    int opt, rc;

    if (!ov) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    /* --keys is a flag for gen and takes a value for send. */
    memcpy(opts, long_opts, sizeof(opts));
    for (struct option *o = opts; o->name; o++) {
        if (o->val == OPT_KEYS && (c->opts & SHMQCTL_OPT_KEYS_ARG)) {
            o->has_arg = required_argument;
        }
    }
    a->cmd = c->name;
    a->count = -1;
    a->size = -1;
    a->from = -1;
    a->queues = 4;
    a->read_queues = -1;
    a->write_queues = -1;
    a->perm = -1;
    a->queue_id = -1;
    a->timeout_ms = -1;
    a->max = -1;
    a->phys_offset = -1;
    a->deliver_after_ms = -1;
    a->compress_over = -1;
    opterr = 0;
    optind = 1;
    /* argv[0] is the command name, as getopt expects a program name there. */
    while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        unsigned bit = opt_bit(opt);
        if (bit && !(c->opts & bit)) {
            rc = shmqctl_usage_error(c->name, "%s does not take --%s", c->name, opt_name(opt));
            goto out;
        }
        switch (opt) {
        case 'c':
            conf_file = optarg;
            break;
        case OPT_SET:
            ov[nov].key = NULL;
            ov[nov++].arg = optarg;
            break;
        case OPT_STORE:
            if (!optarg[0]) {
                rc = shmqctl_usage_error(c->name, "--store needs a directory");
                goto out;
            }
            ov[nov].key = "storePathRootDir";
            ov[nov++].arg = optarg;
            break;
        case 'h':
            shmqctl_usage(stdout, c->name);
            rc = -1;
            goto out;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_NO_CHECK:
            a->no_check = true;
            break;
        case OPT_FORCE:
            a->force = true;
            break;
        case OPT_REBUILD:
            a->rebuild = true;
            break;
        case OPT_TOPIC:
            a->topic = optarg;
            break;
        case OPT_TAGS:
            a->tags = optarg;
            break;
        case OPT_KEYS:
            a->keys = true;
            a->keys_arg = optarg; /* NULL unless the command takes a value */
            break;
        case OPT_COUNT:
            if (shmqctl_parse_int(optarg, 0, INT64_MAX, false, &a->count) < 0) {
                rc = shmqctl_usage_error(c->name, "--count: not a count: '%s'", optarg);
                goto out;
            }
            break;
        case OPT_SIZE:
            if (shmqctl_parse_int(optarg, 0, INT32_MAX, true, &a->size) < 0) {
                rc = shmqctl_usage_error(c->name, "--size: not a size: '%s'", optarg);
                goto out;
            }
            break;
        case OPT_QUEUES:
            if (shmqctl_parse_int(optarg, 1, 65536, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--queues: expected 1..65536, got '%s'", optarg);
                goto out;
            }
            a->queues = (int32_t)v;
            a->queues_set = true;
            break;
        case OPT_READ_QUEUES:
        case OPT_WRITE_QUEUES:
            if (shmqctl_parse_int(optarg, 1, 1024, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--%s: expected 1..1024, got '%s'", opt_name(opt),
                                         optarg);
                goto out;
            }
            *(opt == OPT_READ_QUEUES ? &a->read_queues : &a->write_queues) = (int32_t)v;
            break;
        case OPT_PERM:
            if (shmqctl_parse_int(optarg, 0, 15, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--perm: expected 0..15, got '%s'", optarg);
                goto out;
            }
            a->perm = (int32_t)v;
            break;
        case OPT_ORDER:
            a->order = true;
            break;
        case OPT_DELAY_LEVEL:
            if (shmqctl_parse_int(optarg, 0, SHMQ_MAX_DELAY_LEVELS, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--delay-level: expected 0..%d, got '%s'",
                                         SHMQ_MAX_DELAY_LEVELS, optarg);
                goto out;
            }
            a->delay_level = (int32_t)v;
            break;
        case OPT_QUEUE:
            if (shmqctl_parse_int(optarg, 0, 65535, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--queue: expected 0..65535, got '%s'", optarg);
                goto out;
            }
            a->queue_id = (int32_t)v;
            break;
        case OPT_SHARDING_KEY:
            a->sharding_key = optarg;
            break;
        case OPT_ASYNC:
            if (shmqctl_parse_int(optarg, 1, 256, false, &v) < 0) {
                rc = shmqctl_usage_error(c->name, "--async: expected 1..256, got '%s'", optarg);
                goto out;
            }
            a->async = (int32_t)v;
            break;
        case OPT_GROUP:
            a->group = optarg;
            break;
        case OPT_TIMEOUT:
            if (shmqctl_parse_int(optarg, 0, 86400000, false, &a->timeout_ms) < 0) {
                rc = shmqctl_usage_error(c->name, "--timeout: expected 0..86400000 ms, got '%s'",
                                         optarg);
                goto out;
            }
            break;
        case OPT_QUERY_KEY:
            a->query_key = optarg;
            break;
        case OPT_BEGIN:
            a->begin_arg = optarg;
            break;
        case OPT_END:
            a->end_arg = optarg;
            break;
        case OPT_MSG_ID:
            a->msg_id = optarg;
            break;
        case OPT_UNIQ_KEY:
            a->uniq_key = optarg;
            break;
        case OPT_TIME:
            a->time_arg = optarg;
            break;
        case OPT_MAX:
            if (shmqctl_parse_int(optarg, 1, 1024, false, &a->max) < 0) {
                rc = shmqctl_usage_error(c->name, "--max: expected 1..1024, got '%s'", optarg);
                goto out;
            }
            break;
        case OPT_PHYS_OFFSET:
            if (shmqctl_parse_int(optarg, 0, INT64_MAX, false, &a->phys_offset) < 0) {
                rc = shmqctl_usage_error(c->name, "--phys-offset: not an offset: '%s'", optarg);
                goto out;
            }
            break;
        case OPT_FROM:
            a->from_arg = optarg;
            if (c->opts & SHMQCTL_OPT_FROM_WORD) {
                break; /* the command reads the word itself */
            }
            if (shmqctl_parse_int(optarg, 0, INT64_MAX, true, &a->from) < 0) {
                rc = shmqctl_usage_error(c->name, "--from: not an offset: '%s'", optarg);
                goto out;
            }
            break;
        case OPT_DELIVER_AT:
            a->deliver_at_arg = optarg;
            break;
        case OPT_DELIVER_AFTER:
            if (shmqctl_parse_int(optarg, 0, INT64_MAX / 2, false, &a->deliver_after_ms) < 0) {
                rc = shmqctl_usage_error(c->name, "--deliver-after: expected ms, got '%s'", optarg);
                goto out;
            }
            break;
        case OPT_FAIL:
            a->fail = true;
            break;
        case OPT_SKIP_CORRUPT:
            a->skip_corrupt = optarg; /* consume parses it */
            break;
        case OPT_BROADCAST:
            a->broadcast = true;
            break;
        case OPT_ORDERLY:
            a->orderly = true;
            break;
        case OPT_PROMOTE:
            a->promote = true;
            break;
        case OPT_SLAVE:
            a->slave = true;
            break;
        case OPT_MASTER:
            a->master = optarg;
            break;
        case OPT_CLEAR:
            a->clear = true;
            break;
        case OPT_TO:
            a->to_arg = optarg; /* offsets reset parses it */
            break;
        case OPT_RAW:
            a->raw = true;
            break;
        case OPT_CONTROLLER:
            a->controller = optarg;
            break;
        case OPT_COMPRESS_OVER:
            if (shmqctl_parse_int(optarg, 0, INT32_MAX, true, &a->compress_over) < 0) {
                rc = shmqctl_usage_error(c->name, "--compress-over: not a size: '%s'", optarg);
                goto out;
            }
            break;
        case ':':
            rc = shmqctl_usage_error(c->name, "option %s needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = shmqctl_usage_error(c->name, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    if (a->npos < c->min_pos || a->npos > c->max_pos) {
        rc = shmqctl_usage_error(
            c->name, a->npos < c->min_pos ? "%s: missing arguments" : "%s: too many arguments",
            c->name);
        goto out;
    }
    rc = build_config(a, conf_file, ov, nov);
out:
    free(ov);
    return rc;
}

int main(int argc, char **argv)
{
    const shmqctl_cmd_t *c;
    shmqctl_args_t *a;
    int rc;

    if (argc < 2) {
        shmqctl_usage(stderr, NULL);
        return SHMQCTL_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc > 2 && (!strcmp(argv[2], "help") || !strcmp(argv[2], "version"))) {
            printf("%s\n", !strcmp(argv[2], "help")
                               ? "help [COMMAND]\n    Print the usage of every command, or of one."
                               : "version\n    Print the version.");
            return SHMQCTL_EXIT_OK;
        }
        if (argc > 2 && !find_command(argv[2])) {
            return shmqctl_usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        shmqctl_usage(stdout, argc > 2 ? argv[2] : NULL);
        return SHMQCTL_EXIT_OK;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("shmqctl (shmq) %s\n", SHMQCTL_VERSION);
        return SHMQCTL_EXIT_OK;
    }
    c = find_command(argv[1]);
    if (!c) {
        return shmqctl_usage_error(NULL, "unknown command '%s'", argv[1]);
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    rc = parse_args(c, argc - 1, argv + 1, a);
    if (rc == 0) {
        rc = c->run(a);
    } else if (rc < 0) {
        rc = SHMQCTL_EXIT_OK; /* --help */
    }
    free(a);
    if (fflush(stdout) != 0 && rc == SHMQCTL_EXIT_OK) {
        shmqctl_err("cannot write output: %s", strerror(errno));
        rc = SHMQCTL_EXIT_FAIL;
    }
    return rc;
}
