/*
 * shmqd: the master of one store.
 *
 *   shmqd [-c broker.conf] [--store DIR] [--set KEY=VALUE]...
 *
 * Runs in the foreground and logs to stderr.  It takes the store lock (byte
 * 0 of <root>/lock) and runs recovery through shmq_store_open, refuses to
 * start while workers of an earlier master still hold byte 1 of the lock
 * file, builds the control block from the recovered files, then starts the
 * workers (shmq-writer, shmq-flusher, shmq-dispatcher, found next to this
 * binary) and supervises them: reaps them on SIGCHLD, restarts crashed ones
 * with a backoff, restarts one on an operator's request (`shmqctl restart`),
 * and warns about stale heartbeats.
 *
 * Before all that it checks access (docs/security.md): the store root and
 * its top-level directories must belong to its user and be writable by no
 * one else (exit 2 otherwise); world-readable names at the top level are
 * logged, never chmodded; a lock file on which only other users' processes
 * hold locks is replaced so that they cannot keep the store down.
 *
 * States (enum shmq_store_state, every transition logged):
 *   starting -> recovering -> running -> draining -> finishing -> stopped
 *   and failed (a worker exited 2, a flush failed, or a forced stop).
 *
 * Signals: SIGTERM/SIGINT start an orderly stop (a second one forces it);
 * SIGCHLD wakes the loop to reap; SIGHUP and SIGPIPE are ignored.  Handlers
 * only set flags.  The master owns the store state and the worker table;
 * it writes no data position after start (it sets them all once, from the
 * files, before the control block is ready).
 *
 * If the master dies, the kernel sends SIGTERM to the workers (PDEATHSIG)
 * and they exit; `abort` stays, and the next master recovers from the files.
 *
 * Exit status: 0 clean stop (abort removed), 1 error (store locked, held by
 * old workers, recovery failed, unclean stop), 2 configuration error (bad
 * option or value, or a worker exited 2).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/probes.h"
#include "net/net.h"
#include "shm/progress.h"
#include "shm/ctl.h"
#include "store/fence.h"
#include "shmq/errors.h"
#include "store/index_service.h"
#include "shm/groups.h"
#include "shm/reg.h"
#include "shm/ring.h"
#include "store/store.h"
#include "format/delay_check.h"
#include "format/role_override.h"
#include "format/store_files.h"
#include "master.h"
#include "worker.h"

#define TICK_MS           100   /* longest sleep of the loop */
#define BACKOFF_MIN_MS    100   /* first restart delay after a crash */
#define BACKOFF_MAX_MS    5000  /* doubling stops here */
#define BACKOFF_RESET_MS  10000 /* a worker up this long starts again from BACKOFF_MIN_MS */
#define RESTART_NOW_UP_MS 1000  /* a crash after this long up restarts at once (no crash loop) */
#define TERM_WAIT_MS      10000 /* SIGTERM, then SIGKILL after this */
#define STOP_TIMEOUT_MS   60000 /* an orderly stop taking longer is forced */
/* Workers every store runs, then the ones it runs when their program is installed. */
/* The first that runs (role_runs) is the one whose orderly stop ends DRAINING. */
static const enum shmq_role required_roles[] = {SHMQ_ROLE_WRITER, SHMQ_ROLE_HA_RECEIVER,
                                                SHMQ_ROLE_FLUSHER, SHMQ_ROLE_DISPATCHER};
static const enum shmq_role optional_roles[] = {
    SHMQ_ROLE_INDEXER, SHMQ_ROLE_SCHEDULER, SHMQ_ROLE_CLEANER,   SHMQ_ROLE_HA_SENDER,
    SHMQ_ROLE_METRICS, SHMQ_ROLE_GATEWAY,   SHMQ_ROLE_CTRL_AGENT};

typedef struct master_worker {
    enum shmq_role role;
    char path[PATH_MAX];     /* the executable */
    pid_t pid;               /* 0 when not running */
    int64_t started_mono;    /* when the current process was started */
    int64_t next_start_mono; /* not running: start again at this time (-1: never) */
    int backoff_ms;          /* next crash's restart delay */
    int64_t term_mono;       /* SIGTERM sent at (0: not sent); SIGKILL after TERM_WAIT_MS */
    bool restarting;         /* SIGTERMed for a restart request: start again at once */
    bool done;               /* exited 0 as its part of an orderly stop */
    bool failed;             /* exited 2: not restarted */
    bool started_once;
    bool hb_warned;
    bool retired;  /* a role this store no longer runs (the ha-receiver after a promotion) */
    int last_exit; /* exit code, or -signal */
} master_worker_t;

typedef struct master {
    shmq_config_t cfg;
    char root[PATH_MAX]; /* realpath of the store root */
    enum shmq_store_state state;
    shmq_ctl_t ctl;
    bool have_ctl;
    int lock_fd;
    master_worker_t w[SHMQ_ROLE_COUNT];
    int nworkers;
    int64_t stop_mono;     /* orderly stop began at */
    bool forced;           /* stopping without waiting for the orderly sequence */
    int stops_seen;        /* stop signals handled so far (got_stop counts them) */
    int fail_code;         /* exit code when the store failed (1 or 2) */
    shmq_reg_server_t reg; /* <root>/shmq.sock: client registrations and offset commits */
    bool have_reg;
    bool role_overridden;     /* brokerRole came from <root>/roleOverride */
    shmq_epoch_entry_t epoch; /* the epoch this store is in (0: none known) */
    bool promoting;           /* the ha-receiver stops for a promotion */
    bool epoch_checked;       /* a slave's log was checked against its master's at start */
    bool reexec;              /* stopped to start again (the ha-receiver found a divergent tail) */
    int notified_running;     /* workers running in the last STATUS sent (-1: none sent) */
    bool notified_stopping;   /* STOPPING=1 sent */
} master_t;

static volatile sig_atomic_t got_stop; /* count of SIGTERM/SIGINT */
static volatile sig_atomic_t got_chld;

static void on_stop(int sig)
{
    (void)sig;
    got_stop = got_stop + 1;
}

static void on_chld(int sig)
{
    (void)sig;
    got_chld = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal ends the futex sleep of the loop (EINTR). */
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

/* ---- state machine ------------------------------------------------------------ */

/* Workers in state running (their own report in the control block). */
static int workers_running(const master_t *m)
{
    int n = 0;
    for (int i = 0; m->have_ctl && i < m->nworkers; i++) {
        const master_worker_t *w = &m->w[i];
        /* relaxed: status only */
        if (w->pid > 0 && !w->retired &&
            atomic_load_explicit(&m->ctl.blk->workers[w->role].state, memory_order_relaxed) ==
                SHMQ_WORKER_RUNNING) {
            n++;
        }
    }
    return n;
}

static int workers_wanted(const master_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nworkers; i++) {
        n += !m->w[i].retired && !m->w[i].failed;
    }
    return n;
}

/* The service manager's view (init/shmqd.service): STATUS, STOPPING, READY once all run. */
static void notify_state(master_t *m)
{
    int running = workers_running(m), wanted = workers_wanted(m);
    m->notified_running = running;
    master_notify_state(
        shmq_store_state_name(m->state), running,
        m->state == SHMQ_STATE_STARTING || m->state == SHMQ_STATE_RECOVERING ? 0 : wanted);
    if (!m->notified_stopping &&
        (m->state == SHMQ_STATE_DRAINING || m->state == SHMQ_STATE_FINISHING ||
         m->state == SHMQ_STATE_STOPPED || m->state == SHMQ_STATE_FAILED)) {
        m->notified_stopping = true;
        master_notify_stopping();
    }
}

/* Once per loop: a changed count of running workers, READY=1 once all run, the watchdog. */
static void notify_progress(master_t *m)
{
    int running = workers_running(m);
    if (running != m->notified_running) {
        notify_state(m);
        if (m->state == SHMQ_STATE_RUNNING && running == workers_wanted(m)) {
            master_notify_ready();
        }
    }
    master_notify_watchdog();
}

static void set_state(master_t *m, enum shmq_store_state s)
{
    if (s == m->state) {
        return;
    }
    shmq_log(SHMQ_LOG_INFO, "state: %s -> %s", shmq_store_state_name(m->state),
             shmq_store_state_name(s));
    m->state = s;
    notify_state(m);
    if (m->have_ctl) {
        /* release: whatever the master set up for this state is visible with it */
        atomic_store_explicit(&m->ctl.blk->hdr.state, (uint32_t)s, memory_order_release);
        /* Workers that sleep re-read the state when woken. */
        shmq_ctl_wake(&m->ctl.wake->writer_wake);
        shmq_ctl_wake(&m->ctl.blk->flusher_wake);
        shmq_ctl_wake(&m->ctl.blk->dispatcher_wake);
    }
}

static bool stopping(const master_t *m)
{
    return m->state == SHMQ_STATE_DRAINING || m->state == SHMQ_STATE_FINISHING ||
           m->state == SHMQ_STATE_FAILED || m->forced;
}

/* ---- configuration ------------------------------------------------------------ */

static void config_warn(void *arg, const char *file, int line, const char *msg)
{
    (void)arg;
    if (file) {
        shmq_log(SHMQ_LOG_WARN, "%s:%d: %s", file, line, msg);
    } else {
        shmq_log(SHMQ_LOG_WARN, "%s", msg);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmqd [-c|--config broker.conf] [--store DIR] [--set KEY=VALUE]...\n"
               "             [--print-config] [-h|--help]\n"
               "    Run the store's master in the foreground (log on stderr).  With no\n"
               "    options it serves ./data.  SIGTERM or SIGINT stops it cleanly.\n"
               "    --print-config checks the configuration and prints every key shmq\n"
               "    reads with the value it would use (key=value lines), then exits.\n"
               "Exit status: 0 clean stop, 1 error, 2 configuration error.\n");
}

static int config_fail(int rc)
{
    const char *d = shmq_error_detail();
    shmq_log(SHMQ_LOG_ERROR, "configuration error: %s", d[0] ? d : shmq_strerror(rc));
    return SHMQ_EXIT_CONFIG;
}

/* Defaults, then -c FILE, then --store / --set in command-line order, then the checks. */
static bool print_config; /* --print-config */

static int parse_config(int argc, char **argv, shmq_config_t *cfg)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"store", required_argument, NULL, 's'},
        {"set", required_argument, NULL, 'S'},    {"help", no_argument, NULL, 'h'},
        {"print-config", no_argument, NULL, 'P'}, {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    int opt;
    opterr = 0;
    /* First pass: the file comes first whatever its position. */
    while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        if (opt == 'c') {
            file = optarg;
        } else if (opt == 'P') {
            print_config = true;
        } else if (opt == 'h') {
            usage(stdout);
            exit(0);
        } else if (opt == ':' || opt == '?') {
            shmq_log(SHMQ_LOG_ERROR, "%s option '%s'", opt == ':' ? "missing value for" : "unknown",
                     argv[optind - 1]);
            usage(stderr);
            return SHMQ_EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        shmq_log(SHMQ_LOG_ERROR, "unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return SHMQ_EXIT_CONFIG;
    }
    shmq_config_defaults(cfg);
    int rc;
    if (file) {
        shmq_error_clear();
        rc = shmq_config_load(cfg, file, config_warn, NULL);
        if (rc < 0 && rc > -4096) {
            shmq_log(SHMQ_LOG_ERROR, "cannot read config file %s: %s", file, strerror(-rc));
            return SHMQ_EXIT_CONFIG;
        }
        if (rc < 0) {
            return config_fail(rc);
        }
    }
    optind = 0; /* GNU getopt: 0 re-initialises the scan */
    while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        char key[256];
        const char *value;
        if (opt == 's') {
            snprintf(key, sizeof(key), "storePathRootDir");
            value = optarg;
        } else if (opt == 'S') {
            const char *eq = strchr(optarg, '=');
            size_t klen = eq ? (size_t)(eq - optarg) : 0;
            if (!eq || klen == 0 || klen >= sizeof(key)) {
                shmq_log(SHMQ_LOG_ERROR, "--set expects KEY=VALUE, got '%s'", optarg);
                return SHMQ_EXIT_CONFIG;
            }
            memcpy(key, optarg, klen);
            key[klen] = '\0';
            value = eq + 1;
        } else {
            continue;
        }
        shmq_error_clear();
        rc = shmq_config_set(cfg, key, value, config_warn, NULL);
        if (rc < 0) {
            return config_fail(rc);
        }
    }
    shmq_config_fit(cfg, config_warn, NULL);
    shmq_error_clear();
    rc = shmq_config_validate(cfg);
    if (rc == 0 && cfg->ha_secret_file[0] != '\0') {
        /* The HA roles read it when they start; a bad one is a configuration error now. */
        uint8_t key[SHMQ_NET_PSK_SIZE];
        rc = shmq_net_secret_load(cfg->ha_secret_file, key);
        explicit_bzero(key, sizeof(key));
        if (rc < 0) {
            char why[512];
            snprintf(why, sizeof(why), "%s", shmq_error_detail());
            rc = shmq_error_set(SHMQ_E_CONFIG, "haSecretFile: %s", why);
        }
    }
    return rc < 0 ? config_fail(rc) : 0;
}

/* ---- workers ------------------------------------------------------------------------ */

static shmq_ctl_worker_t *slot(master_t *m, const master_worker_t *w)
{
    return &m->ctl.blk->workers[w->role];
}

static const char *wname(const master_worker_t *w)
{
    return shmq_role_name(w->role);
}

static void start_worker(master_t *m, master_worker_t *w)
{
    shmq_ctl_worker_t *s = slot(m, w);
    pid_t master_pid = getpid();
    /* relaxed: status only; the worker sets RUNNING itself once attached */
    atomic_store_explicit(&s->state, SHMQ_WORKER_STARTING, memory_order_relaxed);
    atomic_store_explicit(&s->heartbeat_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&s->started_ms, shmq_now_ms(), memory_order_relaxed);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        /* A session of its own: a terminal's Ctrl-C (SIGINT to the foreground
         * process group) or hangup reaches the master only, which stops the
         * workers in order. */
        setsid();
        /* Die with the master even before the worker asks for it itself. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != master_pid) {
            _exit(SHMQ_EXIT_ERROR);
        }
        char *argv[] = {(char *)w->path, "--store", m->root, NULL};
        /* A measuring hook for benchmarks (bench/cost runs each worker under callgrind):
         * SHMQ_WORKER_WRAP names a program run as "WRAP WORKER --store ROOT". */
        const char *wrap = getenv("SHMQ_WORKER_WRAP");
        if (wrap != NULL && wrap[0] != '\0') {
            char *wargv[] = {(char *)wrap, (char *)w->path, "--store", m->root, NULL};
            execv(wrap, wargv);
            shmq_log(SHMQ_LOG_ERROR, "cannot run %s (SHMQ_WORKER_WRAP) for %s: %s", wrap, w->path,
                     strerror(errno));
            _exit(SHMQ_EXIT_ERROR);
        }
        execv(w->path, argv);
        shmq_log(SHMQ_LOG_ERROR, "cannot run %s: %s", w->path, strerror(errno));
        _exit(SHMQ_EXIT_ERROR);
    }
    if (pid < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot fork the %s: %s; trying again in %d ms", wname(w),
                 strerror(errno), w->backoff_ms);
        w->next_start_mono = shmq_mono_ms() + w->backoff_ms;
        atomic_store_explicit(&s->state, SHMQ_WORKER_EXITED, memory_order_relaxed);
        return;
    }
    if (w->started_once) {
        atomic_fetch_add_explicit(&s->restarts, 1, memory_order_relaxed);
    }
    w->started_once = true;
    w->pid = pid;
    w->started_mono = shmq_mono_ms();
    w->next_start_mono = -1;
    w->term_mono = 0;
    w->hb_warned = false;
    atomic_store_explicit(&s->pid, pid, memory_order_release);
    shmq_log(SHMQ_LOG_INFO, "started the %s: pid %d", wname(w), (int)pid);
}

/* SIGTERM a running worker (restart request or forced stop); SIGKILL follows if it lingers. */
static void term_worker(master_worker_t *w)
{
    if (w->pid > 0 && w->term_mono == 0) {
        kill(w->pid, SIGTERM);
        w->term_mono = shmq_mono_ms();
    }
}

static void fail_store(master_t *m, int code, const char *why)
{
    if (m->state == SHMQ_STATE_FAILED) {
        return;
    }
    shmq_log(SHMQ_LOG_ERROR, "store failed: %s; stopping (abort stays: the next start recovers)",
             why);
    if (m->fail_code == 0) {
        m->fail_code = code;
    }
    set_state(m, SHMQ_STATE_FAILED);
    for (int i = 0; i < m->nworkers; i++) {
        m->w[i].next_start_mono = -1;
        term_worker(&m->w[i]);
    }
}

static void worker_exited(master_t *m, master_worker_t *w, int status)
{
    shmq_ctl_worker_t *s = slot(m, w);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    SHMQ_PROBE(worker_exit, wname(w), (int)w->pid, code);
    int64_t up = shmq_mono_ms() - w->started_mono;
    if (code >= 0) {
        shmq_log(code == 0 ? SHMQ_LOG_INFO : SHMQ_LOG_WARN, "the %s (pid %d) exited with status %d",
                 wname(w), (int)w->pid, code);
    } else {
        shmq_log(SHMQ_LOG_WARN, "the %s (pid %d) was killed by signal %d (%s)", wname(w),
                 (int)w->pid, -code, strsignal(-code));
    }
    w->pid = 0;
    w->last_exit = code;
    w->term_mono = 0;
    atomic_store_explicit(&s->last_exit, code, memory_order_relaxed);
    atomic_store_explicit(&s->pid, 0, memory_order_relaxed);
    atomic_store_explicit(&s->state, SHMQ_WORKER_EXITED, memory_order_release);

    if (code == SHMQ_EXIT_CONFIG) {
        w->failed = true;
        w->next_start_mono = -1;
        atomic_store_explicit(&s->state, SHMQ_WORKER_FAILED, memory_order_release);
        fail_store(m, SHMQ_EXIT_CONFIG, "a worker reported a configuration error (exit 2)");
        return;
    }
    if (m->state == SHMQ_STATE_FAILED || m->forced) {
        w->next_start_mono = -1;
        return;
    }
    if (w->retired) {
        w->next_start_mono = -1;
        return;
    }
    if (w->restarting) {
        /* An operator's restart: not a crash, no backoff. */
        w->restarting = false;
        w->next_start_mono = shmq_mono_ms();
        return;
    }
    bool writer_drained = (w->role == SHMQ_ROLE_WRITER || w->role == SHMQ_ROLE_HA_RECEIVER) &&
                          m->state == SHMQ_STATE_DRAINING;
    if (code == 0 && (writer_drained || m->state == SHMQ_STATE_FINISHING)) {
        w->done = true;
        w->next_start_mono = -1;
        return;
    }
    if (up >= BACKOFF_RESET_MS) {
        w->backoff_ms = BACKOFF_MIN_MS;
    }
    /* A crash after a healthy run is restarted at once: producers wait for the writer
     * meanwhile.  Only quick crashes (a crash loop) wait for the backoff. */
    if (up >= RESTART_NOW_UP_MS) {
        w->next_start_mono = shmq_mono_ms();
        shmq_log(SHMQ_LOG_INFO, "restarting the %s now (it ran %lld ms)", wname(w), (long long)up);
        return;
    }
    w->next_start_mono = shmq_mono_ms() + w->backoff_ms;
    shmq_log(SHMQ_LOG_INFO, "restarting the %s in %d ms", wname(w), w->backoff_ms);
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

static void reap(master_t *m)
{
    got_chld = 0;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < m->nworkers; i++) {
            if (m->w[i].pid == pid) {
                worker_exited(m, &m->w[i], status);
                break;
            }
        }
    }
}

static void handle_restart_requests(master_t *m)
{
    shmq_ctl_block_t *b = m->ctl.blk;
    for (int r = 0; r < SHMQ_CTL_MAX_WORKERS; r++) {
        /* acquire: pairs with shmqctl's release store of the request */
        if (atomic_load_explicit(&b->workers[r].restart_request, memory_order_acquire) == 0) {
            continue;
        }
        atomic_store_explicit(&b->workers[r].restart_request, 0, memory_order_relaxed);
        master_worker_t *w = NULL;
        for (int i = 0; i < m->nworkers; i++) {
            if ((int)m->w[i].role == r) {
                w = &m->w[i];
            }
        }
        const char *name = shmq_role_name((enum shmq_role)r);
        if (!w) {
            shmq_log(SHMQ_LOG_WARN, "restart of the %s requested: this store runs no %s", name,
                     name);
        } else if (m->state != SHMQ_STATE_RUNNING) {
            shmq_log(SHMQ_LOG_WARN, "restart of the %s requested: ignored while %s", name,
                     shmq_store_state_name(m->state));
        } else if (w->pid > 0) {
            shmq_log(SHMQ_LOG_INFO, "restart of the %s requested: stopping pid %d", name,
                     (int)w->pid);
            w->restarting = true;
            term_worker(w);
        } else if (!w->failed) {
            shmq_log(SHMQ_LOG_INFO, "restart of the %s requested: starting it now", name);
            w->next_start_mono = shmq_mono_ms();
        }
    }
}

static void watch_workers(master_t *m)
{
    int64_t now = shmq_mono_ms();
    int64_t wall = shmq_now_ms();
    for (int i = 0; i < m->nworkers; i++) {
        master_worker_t *w = &m->w[i];
        shmq_ctl_worker_t *s = slot(m, w);
        if (w->pid == 0) {
            if (w->next_start_mono >= 0 && now >= w->next_start_mono && !w->done && !w->failed &&
                m->state != SHMQ_STATE_FAILED && !m->forced) {
                start_worker(m, w);
            }
            continue;
        }
        if (w->term_mono && now - w->term_mono > TERM_WAIT_MS) {
            shmq_log(SHMQ_LOG_WARN, "the %s (pid %d) ignored SIGTERM for %d ms: SIGKILL", wname(w),
                     (int)w->pid, TERM_WAIT_MS);
            kill(w->pid, SIGKILL);
            w->term_mono = now; /* once per TERM_WAIT_MS */
        }
        /* relaxed: status values, no data depends on them */
        int64_t hb = atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
        int64_t since = atomic_load_explicit(&s->started_ms, memory_order_relaxed);
        int64_t age = wall - (hb > since ? hb : since);
        if (age > SHMQ_HEARTBEAT_STALE_MS && !w->hb_warned) {
            shmq_log(SHMQ_LOG_WARN, "the %s (pid %d) has not reported a heartbeat for %lld ms",
                     wname(w), (int)w->pid, (long long)age);
            w->hb_warned = true;
        } else if (age <= SHMQ_HEARTBEAT_STALE_MS && w->hb_warned) {
            shmq_log(SHMQ_LOG_INFO, "the %s (pid %d) reports heartbeats again", wname(w),
                     (int)w->pid);
            w->hb_warned = false;
        }
    }
}

static bool any_running(const master_t *m)
{
    for (int i = 0; i < m->nworkers; i++) {
        if (m->w[i].pid > 0) {
            return true;
        }
    }
    return false;
}

/* ---- stop ------------------------------------------------------------------------------- */

static void force_stop(master_t *m, const char *why)
{
    if (m->forced) {
        return;
    }
    shmq_log(SHMQ_LOG_WARN, "forced stop: %s", why);
    m->forced = true;
    for (int i = 0; i < m->nworkers; i++) {
        m->w[i].next_start_mono = -1;
        term_worker(&m->w[i]);
    }
}

/* Signals and the orderly sequence: running -> draining -> finishing. */
static void advance_stop(master_t *m)
{
    int stops = got_stop;
    if (stops != m->stops_seen) {
        m->stops_seen = stops;
        if (m->state == SHMQ_STATE_RUNNING) {
            shmq_log(SHMQ_LOG_INFO, "stop requested: draining the producer rings");
            m->stop_mono = shmq_mono_ms();
            set_state(m, SHMQ_STATE_DRAINING);
        } else if (stops > 1 && stopping(m) && !m->forced) {
            force_stop(m, "second stop signal");
        }
    }
    if (m->state == SHMQ_STATE_DRAINING && m->w[0].done) {
        set_state(m, SHMQ_STATE_FINISHING);
    }
    if ((m->state == SHMQ_STATE_DRAINING || m->state == SHMQ_STATE_FINISHING) && !m->forced &&
        shmq_mono_ms() - m->stop_mono > STOP_TIMEOUT_MS) {
        force_stop(m, "the orderly stop did not finish in time");
    }
    /* acquire: the flusher stores the error before anything else about the fence */
    int fenced = atomic_load_explicit(&m->ctl.blk->fenced_error, memory_order_acquire);
    if (fenced != 0 && m->state != SHMQ_STATE_FAILED) {
        char why[200];
        /* relaxed: set just after the error by the same worker; for the message only */
        int part = atomic_load_explicit(&m->ctl.blk->fenced_part, memory_order_relaxed);
        snprintf(why, sizeof(why),
                 "a %s flush failed (%s): no write is acknowledged past it; check the kernel "
                 "log and the disk before restarting",
                 part ? shmq_fence_part_name((enum shmq_fence_part)part) : "store file",
                 shmq_strerror(fenced));
        /* Producers waiting for a SYNC_FLUSH sleep on the wake-up object: they answer
         * SHMQ_E_FENCED now (the fencing worker woke only the control block's words). */
        shmq_ctl_wake(&m->ctl.wake->flushed_wake);
        fail_store(m, SHMQ_EXIT_ERROR, why);
    }
}

static bool finished(const master_t *m)
{
    if (any_running(m)) {
        return false;
    }
    if (m->state == SHMQ_STATE_FAILED || m->forced) {
        return true;
    }
    if (m->state != SHMQ_STATE_FINISHING) {
        return false;
    }
    for (int i = 0; i < m->nworkers; i++) {
        if (!m->w[i].done) {
            return false;
        }
    }
    return true;
}

/*
 * A fenced store: make sure the fence point is on disk even if the worker that
 * failed could not write it.  Its position in the control block never moved
 * after the failure (flushed for the CommitLog, cq_flushed for the queues);
 * an existing file (the worker's own record) is kept.
 */
static void record_fence(master_t *m, int64_t flushed, int64_t cq_flushed)
{
    int part = atomic_load_explicit(&m->ctl.blk->fenced_part, memory_order_relaxed);
    int err = atomic_load_explicit(&m->ctl.blk->fenced_error, memory_order_relaxed);
    int rc = 0;
    if (part == SHMQ_FENCE_COMMITLOG) {
        rc = shmq_fence_record(m->root, SHMQ_FENCE_COMMITLOG, flushed, err);
    } else if (part == SHMQ_FENCE_CONSUMEQUEUE) {
        rc = shmq_fence_record(m->root, SHMQ_FENCE_CONSUMEQUEUE, cq_flushed, err);
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR,
                 "cannot record the fence point (%s): before restarting, check the disk; the next "
                 "start cannot tell which bytes past the last good flush (%lld) reached it",
                 d[0] ? d : shmq_strerror(rc), (long long)flushed);
    }
}

/* After every worker exited: topics.json, abort (only after a clean stop), the control block. */
static int shut_down(master_t *m)
{
    shmq_ctl_block_t *b = m->ctl.blk;
    int64_t wrote = shmq_ctl_load(&b->wrote);
    int64_t flushed = shmq_ctl_load(&b->flushed);
    int64_t dispatched = shmq_ctl_load(&b->dispatched);
    int64_t cq_flushed = shmq_ctl_load(&b->cq_flushed);
    bool all_zero = true;
    for (int i = 0; i < m->nworkers; i++) {
        all_zero = all_zero && m->w[i].started_once && m->w[i].last_exit == 0;
    }
    bool clean = all_zero && m->state != SHMQ_STATE_FAILED && flushed == wrote &&
                 dispatched == wrote && cq_flushed == wrote;
    /* acquire: pairs with the fencing worker's CAS */
    if (atomic_load_explicit(&b->fenced_error, memory_order_acquire) != 0) {
        clean = false;
        record_fence(m, flushed, cq_flushed);
    }
    int rc = shmq_ctl_topic_lock(&m->ctl, 5000);
    if (rc == 0) {
        rc = shmq_ctl_topics_save(&m->ctl);
        shmq_ctl_topic_unlock(&m->ctl);
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot write topics.json: %s", d[0] ? d : shmq_strerror(rc));
        clean = false;
    }
    if (clean) {
        rc = shmq_abort_remove(m->root);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "cannot remove %s/abort: %s", m->root, shmq_strerror(rc));
            clean = false;
        } else {
            shmq_log(SHMQ_LOG_INFO, "clean stop at %lld: abort removed", (long long)wrote);
        }
    } else {
        shmq_log(SHMQ_LOG_WARN,
                 "unclean stop (wrote %lld, flushed %lld, dispatched %lld, cq_flushed %lld%s): "
                 "abort stays, the next start recovers",
                 (long long)wrote, (long long)flushed, (long long)dispatched, (long long)cq_flushed,
                 all_zero ? "" : ", a worker did not exit 0");
    }
    if (m->state != SHMQ_STATE_FAILED) {
        set_state(m, SHMQ_STATE_STOPPED);
    }
    if (m->have_reg) {
        shmq_reg_server_close(&m->reg);
        m->have_reg = false;
    }
    shmq_ring_reap(&m->ctl, true);
    rc = shmq_ctl_unlink(m->root);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_WARN, "cannot remove the control block %s: %s", m->ctl.name,
                 shmq_strerror(rc));
    }
    shmq_log_follow(NULL);
    shmq_ctl_detach(&m->ctl);
    m->have_ctl = false;
    shmq_store_unlock(m->lock_fd);
    m->lock_fd = -1;
    if (m->fail_code) {
        return m->fail_code;
    }
    return clean ? SHMQ_EXIT_OK : SHMQ_EXIT_ERROR;
}

/* ---- main --------------------------------------------------------------------------------- */

static bool loop_ready(void *arg)
{
    master_t *m = arg;
    if (got_stop != m->stops_seen || got_chld) {
        return true;
    }
    for (int r = 0; r < SHMQ_CTL_MAX_WORKERS; r++) {
        /* relaxed: only decides whether to sleep; handled with acquire afterwards */
        if (atomic_load_explicit(&m->ctl.blk->workers[r].restart_request, memory_order_relaxed)) {
            return true;
        }
    }
    /* relaxed: as above */
    return atomic_load_explicit(&m->ctl.blk->role.promote, memory_order_relaxed) ==
           SHMQ_PROMOTE_ASKED;
}

/*
 * Whether role runs on this store: a SLAVE has the ha-receiver in the
 * writer's place and neither scheduler (its master delivers delays and
 * timers) nor ha-sender; a master has an ha-sender when its replication
 * link is configured; the indexer runs with messageIndexEnable.
 */
static bool role_runs(const shmq_config_t *cfg, enum shmq_role role)
{
    bool slave = cfg->broker_role == SHMQ_SLAVE;
    switch (role) {
    case SHMQ_ROLE_WRITER:
    case SHMQ_ROLE_SCHEDULER:
        return !slave;
    case SHMQ_ROLE_HA_RECEIVER:
        return slave;
    case SHMQ_ROLE_HA_SENDER:
        return !slave && (cfg->ha_plain_link || cfg->ha_secret_file[0] != '\0');
    case SHMQ_ROLE_INDEXER:
        return cfg->message_index_enable;
    case SHMQ_ROLE_METRICS:
        return cfg->metrics_listen[0] != '\0';
    case SHMQ_ROLE_GATEWAY:
        return cfg->gateway_enable;
    case SHMQ_ROLE_CTRL_AGENT:
        return cfg->enable_controller_mode;
    default:
        return true;
    }
}

static int find_workers(master_t *m)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot find my executable: %s", strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    const char *dir = dirname(exe);
    m->nworkers = 0;
    size_t nreq = sizeof(required_roles) / sizeof(required_roles[0]);
    size_t nopt = sizeof(optional_roles) / sizeof(optional_roles[0]);
    for (size_t i = 0; i < nreq + nopt; i++) {
        bool required = i < nreq;
        enum shmq_role role = required ? required_roles[i] : optional_roles[i - nreq];
        if (!role_runs(&m->cfg, role)) {
            continue;
        }
        master_worker_t *w = &m->w[m->nworkers];
        memset(w, 0, sizeof(*w));
        w->role = role;
        w->backoff_ms = BACKOFF_MIN_MS;
        w->next_start_mono = 0;
        snprintf(w->path, sizeof(w->path), "%s/shmq-%s", dir, shmq_role_name(w->role));
        if (access(w->path, X_OK) != 0) {
            if (!required) {
                /* not installed: this store runs without it, and says so */
                shmq_log(SHMQ_LOG_WARN,
                         "the %s is not installed (%s: %s): the store runs "
                         "without it",
                         shmq_role_name(role), w->path, strerror(errno));
                continue;
            }
            shmq_log(SHMQ_LOG_ERROR, "worker program %s: %s", w->path, strerror(errno));
            return -1;
        }
        m->nworkers++;
    }
    return 0;
}

static void client_refused(void *arg, pid_t pid, const char *why)
{
    (void)arg;
    shmq_log(SHMQ_LOG_WARN, "client pid %ld refused: %s", (long)pid, why);
}

static void member_note(void *arg, const char *line)
{
    (void)arg;
    shmq_log(SHMQ_LOG_INFO, "%s", line);
}

static void member_joined(void *arg, const char *group, const char *inconsistent)
{
    (void)arg;
    (void)group;
    if (inconsistent[0]) {
        shmq_log(SHMQ_LOG_WARN, "%s", inconsistent);
    }
}

/*
 * REGISTER_PRODUCER: a ring of its own for the producer.  Also while the store stops, as
 * an attach always could: such a producer's sends are refused (-ESHUTDOWN) but it opens,
 * so that a worker that is a producer (the scheduler) starts and then stops cleanly.
 */
static int ring_assign(void *arg, pid_t pid, const shmq_acl_ident_t *id, int *ring_fd,
                       shmq_reg_msg_t *rep)
{
    master_t *m = arg;
    if (m->cfg.broker_role == SHMQ_SLAVE) {
        return shmq_error_set(-EROFS,
                              "store %s is a slave (brokerRole=SLAVE): it stores only what its "
                              "master %s sends; send to the master",
                              m->root, m->cfg.ha_master_address);
    }
    if (m->state != SHMQ_STATE_RUNNING && m->state != SHMQ_STATE_DRAINING &&
        m->state != SHMQ_STATE_FINISHING) {
        return shmq_error_set(-ESHUTDOWN, "store %s is %s: it takes no new producer", m->root,
                              shmq_store_state_name(m->state));
    }
    uint32_t idx;
    int rc = shmq_ring_assign(&m->ctl, pid, id, &idx, ring_fd);
    if (rc < 0) {
        shmq_log(SHMQ_LOG_WARN, "producer pid %ld (uid %ld) gets no ring: %s", (long)pid,
                 (long)id->uid, shmq_error_detail());
        return rc;
    }
    rep->ring = idx;
    rep->claims = atomic_load_explicit(&m->ctl.blk->rings[idx].claims, memory_order_relaxed);
    rep->ring_size = m->ctl.blk->hdr.ring_size;
    return 0;
}

/* The producer's connection ended (exit, crash, kill -9): the writer drains its ring. */
static void ring_orphan(void *arg, uint32_t idx)
{
    master_t *m = arg;
    shmq_ring_orphan(&m->ctl, idx);
    shmq_ctl_wake(&m->ctl.wake->writer_wake);
}

/* <root>/shmq.sock: 0, or the exit code (2 for a bad clientUnixGroup). */
static int open_socket(master_t *m)
{
    shmq_reg_ring_ops_t ops = {.assign = ring_assign,
                               .orphan = ring_orphan,
                               .refused = client_refused,
                               .member = member_note,
                               .joined = member_joined,
                               .arg = m};
    shmq_error_clear();
    int rc = shmq_reg_server_open(&m->reg, &m->ctl, &m->cfg, &ops);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot open the client socket: %s", d[0] ? d : shmq_strerror(rc));
        return rc == SHMQ_E_CONFIG ? SHMQ_EXIT_CONFIG : SHMQ_EXIT_ERROR;
    }
    m->have_reg = true;
    shmq_log(SHMQ_LOG_INFO, "clients register at %s (group %s)%s", m->reg.path, m->reg.client_group,
             m->reg.acl_enable ? "; config/" SHMQ_ACL_FILE " applies" : "");
    return 0;
}

/* Sleep until a client, a request, a signal (EINTR) or the tick; never spins. */
static void loop_sleep(master_t *m)
{
    static struct pollfd pfd[1 + SHMQ_REG_MAX_CONNS];
    size_t n = shmq_reg_server_pollfds(&m->reg, pfd, sizeof(pfd) / sizeof(pfd[0]));
    int timeout = loop_ready(m) ? 0 : TICK_MS;
    if (m->reg.acl_enable) {
        /* config/acl.json edited: the new rules, or the old ones and why. */
        int rc = shmq_acl_watch_poll(&m->reg.acl, m->root, shmq_mono_ms());
        if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "%s: the rules loaded before stay in force",
                     shmq_error_detail());
        } else if (rc > 0) {
            shmq_log(SHMQ_LOG_INFO, "config/%s reloaded (%zu accounts)", SHMQ_ACL_FILE,
                     m->reg.acl.acl.naccounts);
        }
    }
    if (poll(pfd, n, timeout) > 0) {
        shmq_reg_server_handle(&m->reg, pfd, n);
    }
    /* Consumer groups: queues not released in time, topics that gained queues. */
    char note[400];
    if (shmq_groups_tick(&m->ctl, shmq_mono_ms(), note, sizeof(note)) > 0) {
        shmq_log(SHMQ_LOG_WARN, "%s", note);
    }
    /* Rings the writer drained after their producer left: free them. */
    shmq_ring_reap(&m->ctl, false);
}

/* ---- roles and epochs (docs/operations.md "Failover") -------------------------------------- */

/* <root>/roleOverride, when there is one, decides the role over broker.conf. */
static int apply_role_override(master_t *m)
{
    enum shmq_broker_role conf = m->cfg.broker_role;
    shmq_error_clear();
    int rc = shmq_role_override_apply(m->cfg.store_path_root_dir, &m->cfg, &m->role_overridden);
    if (rc == 0 && m->role_overridden) {
        rc = shmq_config_validate(&m->cfg);
    }
    if (rc < 0) {
        return config_fail(rc);
    }
    if (m->role_overridden) {
        shmq_log(SHMQ_LOG_INFO,
                 "role %s from %s/%s (broker.conf says %s; `shmqctl role` changes it)",
                 shmq_broker_role_name(m->cfg.broker_role), m->cfg.store_path_root_dir,
                 SHMQ_ROLE_OVERRIDE_FILE, shmq_broker_role_name(conf));
    }
    return 0;
}

/* The store's epoch once recovered, before any worker runs (master_epoch.c). */
static int start_epoch(master_t *m, shmq_store_t *st)
{
    if (m->cfg.broker_role == SHMQ_SLAVE) {
        /* Its log may be cut below what the scheduler delivered while this store was a
         * master, and another master delivers meanwhile: a later promotion resumes from
         * delayOffset.json (the master's, replicated), never from a stale delaycheck. */
        int rc = shmq_delaycheck_remove(st->root);
        if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "cannot start as a slave: %s", shmq_error_detail());
            return SHMQ_EXIT_ERROR;
        }
        return master_epoch_slave_start(&m->cfg, st, &got_stop, &m->epoch, &m->epoch_checked);
    }
    m->epoch_checked = true;
    int rc = master_epoch_master_start(st->root, shmq_commitlog_min_offset(&st->cl),
                                       st->cl.wrote_pos, &m->epoch);
    return rc < 0 ? SHMQ_EXIT_ERROR : 0;
}

static void promote_done(master_t *m, uint32_t state, int err)
{
    m->promoting = false;
    atomic_store_explicit(&m->ctl.blk->role.error, err, memory_order_relaxed);
    /* release: error (and the epoch) are set before it */
    atomic_store_explicit(&m->ctl.blk->role.promote, state, memory_order_release);
}

/* A worker entry for role (installed programs only); NULL when it is not installed. */
static master_worker_t *add_worker(master_t *m, master_worker_t *w, enum shmq_role role)
{
    char path[PATH_MAX];
    const char *slash = strrchr(m->w[0].path, '/');
    int dirlen = slash ? (int)(slash - m->w[0].path) : 1;
    snprintf(path, sizeof(path), "%.*s/shmq-%s", dirlen, m->w[0].path, shmq_role_name(role));
    if (access(path, X_OK) != 0) {
        return NULL;
    }
    if (w == NULL) {
        if (m->nworkers >= SHMQ_ROLE_COUNT) {
            return NULL;
        }
        w = &m->w[m->nworkers++];
    }
    memset(w, 0, sizeof(*w));
    w->role = role;
    w->backoff_ms = BACKOFF_MIN_MS;
    w->next_start_mono = shmq_mono_ms();
    snprintf(w->path, sizeof(w->path), "%s", path);
    return w;
}

/*
 * The receiver stopped: what it published stays (bytes after `wrote` are
 * not taken: the writer zeroes them at its start).  The new epoch is saved
 * and the role override written before the writer starts; then the writer
 * takes the receiver's place (first in the table: its orderly stop ends
 * DRAINING), and the scheduler and ha-sender start.
 */
static void promote_finish(master_t *m, master_worker_t *rw)
{
    int64_t wrote = shmq_ctl_load(&m->ctl.blk->wrote);
    shmq_epoch_entry_t e;
    /* Elected by the controller group: a SYNC_MASTER, as RocketMQ's changeToMaster, so that
     * allAckInSyncStateSet holds on the new master too (a store promoted as ASYNC_MASTER
     * acknowledged what its slaves lacked, and the next failover lost it).  By hand
     * (operations.md): an ASYNC_MASTER, which needs no slave to answer SEND_OK. */
    enum shmq_broker_role role =
        m->cfg.enable_controller_mode ? SHMQ_SYNC_MASTER : SHMQ_ASYNC_MASTER;
    shmq_error_clear();
    int rc = master_epoch_promote(m->root, wrote, &e);
    if (rc == 0) {
        rc = shmq_role_override_save(m->root, role, NULL);
    }
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "promotion failed: %s; following the master again",
                 shmq_error_detail());
        rw->retired = false;
        rw->next_start_mono = shmq_mono_ms();
        promote_done(m, SHMQ_PROMOTE_FAILED, rc);
        return;
    }
    m->epoch = e;
    master_epoch_publish(&m->ctl, &e);
    m->cfg.broker_role = role;
    m->role_overridden = true;
    /* Workers read the configuration from the block; none that reads brokerRole runs now. */
    m->ctl.blk->hdr.config.broker_role = role;
    atomic_store_explicit(&m->ctl.blk->role.overridden, 1, memory_order_relaxed);
    atomic_store_explicit(&m->ctl.blk->workers[SHMQ_ROLE_HA_RECEIVER].state, SHMQ_WORKER_NONE,
                          memory_order_relaxed);
    add_worker(m, rw, SHMQ_ROLE_WRITER);
    add_worker(m, NULL, SHMQ_ROLE_SCHEDULER);
    if (role_runs(&m->cfg, SHMQ_ROLE_HA_SENDER)) {
        add_worker(m, NULL, SHMQ_ROLE_HA_SENDER);
    }
    shmq_log(SHMQ_LOG_INFO,
             "promoted: master (%s, in %s/%s) in epoch %d from offset %lld; starting the writer",
             role == SHMQ_SYNC_MASTER ? "SYNC_MASTER" : "ASYNC_MASTER", m->root,
             SHMQ_ROLE_OVERRIDE_FILE, e.epoch, (long long)e.start);
    promote_done(m, SHMQ_PROMOTE_DONE, 0);
}

/* `shmqctl role --promote` (or the ctrl-agent's): stop the ha-receiver, then promote_finish.
 * Also a request to start the store again (the ha-receiver's: its log must be cut at start;
 * the ctrl-agent's: it saved a role override naming another master). */
static void handle_promote(master_t *m)
{
    shmq_ctl_role_t *r = &m->ctl.blk->role;
    /* acquire: pairs with the ha-receiver's release store */
    if (!m->reexec && m->state == SHMQ_STATE_RUNNING &&
        atomic_load_explicit(&r->restart_store, memory_order_acquire) != 0) {
        shmq_log(SHMQ_LOG_WARN, "a worker asks to start the store again (the ha-receiver found "
                                "a divergent tail, or the controller named another master): "
                                "stopping the store to start again");
        m->reexec = true;
        got_stop = got_stop + 1; /* the orderly stop, as for SIGTERM */
        return;
    }
    master_worker_t *rw = NULL;
    for (int i = 0; i < m->nworkers; i++) {
        if (m->w[i].role == SHMQ_ROLE_HA_RECEIVER) {
            rw = &m->w[i];
        }
    }
    if (m->promoting) {
        if (m->state != SHMQ_STATE_RUNNING) {
            promote_done(m, SHMQ_PROMOTE_FAILED, -ESHUTDOWN);
        } else if (rw->pid == 0) {
            promote_finish(m, rw);
        }
        return;
    }
    /* acquire: pairs with shmqctl's release store of the request */
    if (atomic_load_explicit(&r->promote, memory_order_acquire) != SHMQ_PROMOTE_ASKED) {
        return;
    }
    if (m->state != SHMQ_STATE_RUNNING || rw == NULL || m->cfg.broker_role != SHMQ_SLAVE) {
        shmq_log(SHMQ_LOG_WARN, "promotion requested: refused, the store is %s and %s",
                 shmq_store_state_name(m->state), rw ? "a slave" : "not a slave");
        promote_done(m, SHMQ_PROMOTE_FAILED, rw == NULL ? -EALREADY : -ESHUTDOWN);
        return;
    }
    shmq_log(SHMQ_LOG_INFO, "promotion requested: stopping the ha-receiver (its published log "
                            "stays)");
    atomic_store_explicit(&r->promote, SHMQ_PROMOTE_RUNNING, memory_order_relaxed);
    m->promoting = true;
    rw->retired = true;
    rw->next_start_mono = -1;
    term_worker(rw);
    if (rw->pid == 0) {
        promote_finish(m, rw);
    }
}

/* starting -> recovering -> running: lock, recover, build the control block.  *prog: the
 * recovery progress object once created (the caller removes it). */
static int start_store_steps(master_t *m, shmq_ctl_progress_t **prog)
{
    int rc = master_check_store_access(m->cfg.store_path_root_dir);
    if (rc != 0) {
        return rc;
    }
    if (master_check_lock_squatters(m->cfg.store_path_root_dir) < 0 ||
        master_check_old_workers(m->cfg.store_path_root_dir) < 0) {
        return SHMQ_EXIT_ERROR;
    }
    set_state(m, SHMQ_STATE_RECOVERING);
    shmq_store_t st;
    shmq_recovery_report_t rep;
    memset(&rep, 0, sizeof(rep));
    shmq_error_clear();
    rc = shmq_store_open(&st, &m->cfg, SHMQ_STORE_NO_RECOVER, &rep);
    if (rc == 0) {
        /* Locked: the progress object is ours (shmqctl status shows how far recovery is). */
        gid_t gid;
        char gname[64];
        if (shmq_ctl_client_gid(&m->cfg, m->cfg.store_path_root_dir, &gid, gname, sizeof(gname)) <
            0) {
            gid = (gid_t)-1;
        }
        if (shmq_ctl_progress_create(m->cfg.store_path_root_dir, gid, prog) == 0) {
            st.progress = &(*prog)->p;
        } else {
            shmq_log(SHMQ_LOG_WARN, "recovery progress not shown: %s", shmq_error_detail());
        }
        shmq_error_clear();
        rc = shmq_store_recover(&st, &rep);
        if (rc < 0) {
            shmq_store_abandon(&st);
        }
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot open the store at %s: %s", m->cfg.store_path_root_dir,
                 d[0] ? d : shmq_strerror(rc));
        return SHMQ_EXIT_ERROR;
    }
    st.progress = NULL; /* removed by our caller, perhaps before the store */
    if (*prog != NULL) {
        /* Relaxed: a report (progress.h). */
        atomic_store_explicit(&(*prog)->p.phase, SHMQ_RECOVERY_INDEX, memory_order_relaxed);
    }
    master_log_recovery(&rep);
    bool indexer = false;
    for (int i = 0; i < m->nworkers; i++) {
        indexer = indexer || m->w[i].role == SHMQ_ROLE_INDEXER;
    }
    master_recover_index(&m->cfg, indexer, &rep);
    rc = start_epoch(m, &st);
    if (rc == SHMQ_EXIT_CONFIG) {
        shmq_store_close(&st); /* nothing was changed: a clean stop */
        return rc;
    }
    if (rc != 0) {
        shmq_store_abandon(&st);
        return rc;
    }
    /*
     * The segment the writer appends to next exists before anyone sends, so
     * the first send never waits for a segment to be allocated and pre-faulted.
     */
    if (!shmq_mfq_find(&st.cl.q, st.cl.wrote_pos)) {
        shmq_mapped_file_t *mf;
        int64_t seg = (int64_t)st.cl.q.seg_size;
        rc = shmq_mfq_get_or_create(&st.cl.q, st.cl.wrote_pos - st.cl.wrote_pos % seg, &mf);
        if (rc == -ENOSPC) {
            /* cleaner: a full disk is no reason not to start (the cleaner may free space);
             * the writer creates the segment once there is room, sends get -ENOSPC meanwhile. */
            shmq_log(SHMQ_LOG_WARN, "no space for the CommitLog segment at %lld yet: %s",
                     (long long)st.cl.wrote_pos, shmq_error_detail());
            rc = 0;
        } else if (rc < 0) {
            shmq_log(SHMQ_LOG_ERROR, "cannot create the CommitLog segment at %lld: %s",
                     (long long)st.cl.wrote_pos, shmq_strerror(rc));
            shmq_store_abandon(&st);
            return SHMQ_EXIT_ERROR;
        }
    }
    if (!realpath(m->cfg.store_path_root_dir, m->root)) {
        shmq_log(SHMQ_LOG_ERROR, "store %s: %s", m->cfg.store_path_root_dir, strerror(errno));
        shmq_store_abandon(&st);
        return SHMQ_EXIT_ERROR;
    }
    snprintf(m->cfg.store_path_root_dir, sizeof(m->cfg.store_path_root_dir), "%s", m->root);
    /* Old workers that started after the first check (their master died since). */
    if (master_check_old_workers(m->root) < 0) {
        shmq_store_abandon(&st);
        return SHMQ_EXIT_ERROR;
    }
    if (got_stop) {
        shmq_log(SHMQ_LOG_INFO, "stop requested during recovery: closing the store");
        rc = shmq_store_close(&st);
        return rc < 0 ? SHMQ_EXIT_ERROR : SHMQ_EXIT_OK;
    }
    shmq_error_clear();
    rc = shmq_ctl_create(&m->cfg, m->root, &m->ctl);
    if (rc == 0) {
        m->have_ctl = true;
        rc = master_fill_ctl(&m->ctl, &st);
    }
    if (rc < 0) {
        const char *d = shmq_error_detail();
        shmq_log(SHMQ_LOG_ERROR, "cannot build the control block: %s",
                 d[0] ? d : shmq_strerror(rc));
        if (m->have_ctl) {
            shmq_ctl_unlink(m->root);
            shmq_log_follow(NULL);
            shmq_ctl_detach(&m->ctl);
            m->have_ctl = false;
        }
        shmq_store_abandon(&st);
        return SHMQ_EXIT_ERROR;
    }
    /* relaxed: a setting; every process reads it when it logs */
    atomic_store_explicit(&m->ctl.blk->ops.log_level, m->cfg.log_level, memory_order_relaxed);
    shmq_log_follow(&m->ctl.blk->ops.log_level);
    master_epoch_publish(&m->ctl, &m->epoch);
    atomic_store_explicit(&m->ctl.blk->role.overridden, m->role_overridden, memory_order_relaxed);
    atomic_store_explicit(&m->ctl.blk->role.epoch_checked, m->epoch_checked, memory_order_relaxed);
    rc = open_socket(m);
    if (rc != 0) {
        shmq_ctl_unlink(m->root);
        shmq_log_follow(NULL);
        shmq_ctl_detach(&m->ctl);
        m->have_ctl = false;
        shmq_store_abandon(&st);
        return rc;
    }
    /* The workers open the files themselves; the master keeps only the lock. */
    m->lock_fd = shmq_store_detach(&st);
    atomic_store_explicit(&m->ctl.blk->hdr.state, (uint32_t)m->state, memory_order_relaxed);
    shmq_ctl_set_ready(&m->ctl);
    set_state(m, SHMQ_STATE_RUNNING);
    return 0;
}

static int start_store(master_t *m)
{
    shmq_ctl_progress_t *prog = NULL;
    int rc = start_store_steps(m, &prog);
    shmq_ctl_progress_remove(m->cfg.store_path_root_dir, prog);
    return rc;
}

int main(int argc, char **argv)
{
    static master_t m;
    shmq_log_init("shmqd");
    m.state = SHMQ_STATE_STARTING;
    m.lock_fd = -1;
    m.notified_running = -1;
    master_notify_start();
    int rc = parse_config(argc, argv, &m.cfg);
    if (rc != 0) {
        return rc;
    }
    shmq_log_set_level(m.cfg.log_level);
    if (print_config) {
        return shmq_config_write(&m.cfg, stdout) == 0 && fflush(stdout) == 0 ? SHMQ_EXIT_OK
                                                                             : SHMQ_EXIT_ERROR;
    }
    rc = apply_role_override(&m);
    if (rc != 0) {
        return rc;
    }
    install_signals();
    if (find_workers(&m) < 0) {
        return SHMQ_EXIT_ERROR;
    }
    shmq_log(SHMQ_LOG_INFO, "starting: store %s, %s", m.cfg.store_path_root_dir,
             m.cfg.flush_disk_type == SHMQ_SYNC_FLUSH ? "SYNC_FLUSH" : "ASYNC_FLUSH");
    rc = start_store(&m);
    if (rc != 0 || !m.have_ctl) {
        if (rc != 0) {
            set_state(&m, SHMQ_STATE_FAILED);
        }
        return rc;
    }
    for (;;) {
        if (got_chld) {
            reap(&m);
        }
        advance_stop(&m);
        handle_restart_requests(&m);
        handle_promote(&m);
        watch_workers(&m);
        notify_progress(&m);
        if (finished(&m)) {
            break;
        }
        loop_sleep(&m);
    }
    rc = shut_down(&m);
    if (m.reexec && rc == SHMQ_EXIT_OK && got_stop == m.stops_seen && m.stops_seen == 1) {
        shmq_log(SHMQ_LOG_INFO, "starting again");
        execv("/proc/self/exe", argv);
        shmq_log(SHMQ_LOG_ERROR, "cannot start again: %s", strerror(errno));
        rc = SHMQ_EXIT_ERROR;
    }
    shmq_log(SHMQ_LOG_INFO, "exiting with status %d", rc);
    return rc;
}
