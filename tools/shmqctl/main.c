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
     SHMQCTL_OPT_JSON | SHMQCTL_OPT_FROM | SHMQCTL_OPT_COUNT | SHMQCTL_OPT_NO_CHECK, 1, 3,
     "dump --store DIR commitlog [--from OFFSET] [--count N] [--json] [--no-check]\n"
     "  or: dump --store DIR consumequeue TOPIC QUEUE [--from QOFFSET] [--count N] [--json]\n"
     "    Print records (or ConsumeQueue units) one per line, as text or JSON lines.\n"
     "    Opens the store read-only: works while a broker runs.  --no-check skips the\n"
     "    CRC checks (records are still checked for structure).\n"},
    {"verify", shmqctl_cmd_verify, 0, 0, 0,
     "verify --store DIR\n"
     "    Check every CommitLog record (CRCs, offsets, segment ends) and every\n"
     "    ConsumeQueue unit against the records.  Exit 0 when all is well, 1 with a\n"
     "    list of problems (file and offset) otherwise.\n"},
    {"recover", shmqctl_cmd_recover, SHMQCTL_OPT_JSON | SHMQCTL_OPT_FORCE | SHMQCTL_OPT_REBUILD, 0,
     0,
     "recover --store DIR [--json] [--force] [--rebuild]\n"
     "    Run store recovery on a stopped store (cut a torn tail, rebuild and trim\n"
     "    ConsumeQueues) and report what it did.  A bad record below the checkpoint\n"
     "    (data that was flushed) is refused unless --force: then the log is cut\n"
     "    there and every later record is lost.  --rebuild rebuilds every\n"
     "    ConsumeQueue from the CommitLog.\n"},
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
    shmq_error_clear();
    rc = shmq_config_validate(&a->cfg);
    if (rc < 0) {
        return config_error(rc, "configuration");
    }
    return 0;
}

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},        {"set", required_argument, NULL, OPT_SET},
    {"store", required_argument, NULL, OPT_STORE},   {"help", no_argument, NULL, 'h'},
    {"json", no_argument, NULL, OPT_JSON},           {"topic", required_argument, NULL, OPT_TOPIC},
    {"count", required_argument, NULL, OPT_COUNT},   {"size", required_argument, NULL, OPT_SIZE},
    {"queues", required_argument, NULL, OPT_QUEUES}, {"tags", required_argument, NULL, OPT_TAGS},
    {"keys", no_argument, NULL, OPT_KEYS},           {"from", required_argument, NULL, OPT_FROM},
    {"no-check", no_argument, NULL, OPT_NO_CHECK},   {"force", no_argument, NULL, OPT_FORCE},
    {"rebuild", no_argument, NULL, OPT_REBUILD},     {NULL, 0, NULL, 0},
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
    int nov = 0;
    int64_t v;
    int opt, rc;

    if (!ov) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    a->cmd = c->name;
    a->count = -1;
    a->size = -1;
    a->from = -1;
    a->queues = 4;
    opterr = 0;
    optind = 1;
    /* argv[0] is the command name, as getopt expects a program name there. */
    while ((opt = getopt_long(argc, argv, ":c:h", long_opts, NULL)) != -1) {
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
            break;
        case OPT_FROM:
            if (shmqctl_parse_int(optarg, 0, INT64_MAX, true, &a->from) < 0) {
                rc = shmqctl_usage_error(c->name, "--from: not an offset: '%s'", optarg);
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
