/*
 * The worker skeleton (see worker.h): argument parsing, attaching to the
 * control block, the workers' shared lock, master-death detection, signal
 * flags, the bounded work/idle loop, and daemon logging.
 */
#include "worker.h"
#include "worker_uv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/probes.h"
#include "shmq/errors.h"
#include "format/store_files.h"

/* A lost death signal is noticed within this (getppid() at most once per period). */
#define WORKER_PARENT_CHECK_MS 1000

static shmq_worker_t *the_worker;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (the_worker) {
        the_worker->stop = 1;
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleeping futex wait returns EINTR and the loop sees the flag. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

void shmq_worker_log_reader(const shmq_config_t *cfg, shmq_cl_cursor_t *cur)
{
    if (cfg->flush_disk_type == SHMQ_SYNC_FLUSH &&
        shmq_cl_cursor_read_through(cur, SHMQ_CL_READ_THROUGH_BYTES) < 0) {
        shmq_log(SHMQ_LOG_WARN, "no memory for the read buffer: reading through the mapping");
    }
}

bool shmq_worker_master_gone(const shmq_worker_t *w)
{
    return getppid() != w->master_pid;
}

/*
 * Shared lock on byte 1 of <root>/lock: a new master refuses to start while it is held.
 * The file is opened as every file of a store (no link followed, a regular file only);
 * a failure leaves a detail naming it.
 */
static int take_worker_lock(const char *root)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", root);
    int fd = shmq_store_file_open(path, O_RDWR, 0);
    if (fd < 0) {
        return fd == -ENOENT ? shmq_error_set(fd, "%s: %s", path, strerror(-fd)) : fd;
    }
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 1;
    fl.l_len = 1;
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int e = -errno;
        close(fd);
        return shmq_error_set(e, "%s: lock byte 1: %s", path, strerror(-e));
    }
    return fd;
}

static void usage(const char *name)
{
    fprintf(stderr, "usage: shmq-%s --store DIR\n(started by shmqd; not meant to be run by hand)\n",
            name);
}

int shmq_worker_main(int argc, char **argv, enum shmq_role role, const shmq_worker_ops_t *ops)
{
    shmq_worker_t w;
    memset(&w, 0, sizeof(w));
    w.role = role;
    w.name = shmq_role_name(role);
    w.lock_fd = -1;
    shmq_log_init(w.name);
    const char *root = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else {
            usage(w.name);
            return SHMQ_EXIT_CONFIG;
        }
    }
    if (!root) {
        usage(w.name);
        return SHMQ_EXIT_CONFIG;
    }
    the_worker = &w;
    install_signals();
    /* The kernel tells us when the master dies. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    int rc = -EAGAIN;
    for (int tries = 0; tries < 50 && (rc == -EAGAIN || rc == SHMQ_E_NOT_FOUND); tries++) {
        rc = shmq_ctl_attach(root, 0, &w.ctl);
        if (rc == -EAGAIN || rc == SHMQ_E_NOT_FOUND) {
            usleep(100 * 1000);
        }
    }
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot attach to the store at %s: %s", root,
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(rc));
        return SHMQ_EXIT_ERROR;
    }
    w.cfg = &w.ctl.blk->hdr.config;
    w.master_pid = w.ctl.blk->hdr.creator_pid;
    w.self = &w.ctl.blk->workers[role];
    shmq_log_set_level(w.cfg->log_level);
    shmq_log_follow(&w.ctl.blk->ops.log_level); /* shmqctl log-level */
    if (shmq_worker_master_gone(&w)) {
        shmq_log(SHMQ_LOG_ERROR, "the master (pid %d) is not my parent: exiting", w.master_pid);
        shmq_log_follow(NULL);
        shmq_ctl_detach(&w.ctl);
        return SHMQ_EXIT_ERROR;
    }
    shmq_error_clear();
    w.lock_fd = take_worker_lock(root);
    if (w.lock_fd < 0) {
        shmq_log(SHMQ_LOG_ERROR, "cannot take the workers' lock on %s/lock: %s", root,
                 shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(w.lock_fd));
        shmq_log_follow(NULL);
        shmq_ctl_detach(&w.ctl);
        return SHMQ_EXIT_ERROR;
    }

    void *state = NULL;
    if (ops->init) {
        rc = ops->init(&w, &state);
        if (rc != 0) {
            shmq_log_follow(NULL);
            shmq_ctl_detach(&w.ctl);
            close(w.lock_fd);
            return rc;
        }
    }
    atomic_store_explicit(&w.self->state, SHMQ_WORKER_RUNNING, memory_order_release);
    shmq_log(SHMQ_LOG_INFO, "running");
    SHMQ_PROBE(worker_start, w.name, (int)getpid());

    int exit_code = SHMQ_EXIT_OK;
    /* The master's death sends us SIGTERM (PR_SET_PDEATHSIG above, checked after it was
     * set): the loop sees it as w.stop and asks getppid() only then, and once a second in
     * case the signal was lost (no system call per loop).  The heartbeat is wall-clock
     * time (the master and status compare it with theirs) made from the turn's monotonic
     * read and an offset between the two clocks read again at each of these looks: a
     * step of the wall clock shows in the heartbeat within a second. */
    int64_t parent_checked = shmq_mono_ms();
    int64_t wall_offset = shmq_now_ms() - parent_checked;
    /* Relaxed: work_done has one writer, this worker (a restarted one starts after the
     * master reaped its predecessor): a plain add and store, no locked instruction. */
    int64_t work_done = atomic_load_explicit(&w.self->work_done, memory_order_relaxed);
    for (;;) {
        if (w.stop) {
            if (shmq_worker_master_gone(&w)) {
                shmq_log(SHMQ_LOG_WARN, "the master is gone: exiting");
            }
            break;
        }
        int64_t now = shmq_mono_ms();
        w.mono_ms = now;
        if (now - parent_checked >= WORKER_PARENT_CHECK_MS) {
            parent_checked = now;
            wall_offset = shmq_now_ms() - now;
            if (shmq_worker_master_gone(&w)) {
                shmq_log(SHMQ_LOG_WARN, "the master is gone: exiting");
                w.stop = 1;
                break;
            }
        }
        /* Relaxed: a status value; no data depends on it. */
        atomic_store_explicit(&w.self->heartbeat_ms, now + wall_offset, memory_order_relaxed);
        if (ops->done && ops->done(&w, state)) {
            break;
        }
        int64_t n = ops->work(&w, state);
        if (n < 0) {
            shmq_log(SHMQ_LOG_ERROR, "stopping after an error: %s",
                     shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror((int)n));
            exit_code = SHMQ_EXIT_ERROR;
            break;
        }
        if (n > 0) {
            work_done += n;
            atomic_store_explicit(&w.self->work_done, work_done, memory_order_relaxed);
        }
        if ((n == 0 || w.took_all) && ops->idle) {
            w.took_all = false;
            ops->idle(&w, state, 100);
        }
    }
    atomic_store_explicit(&w.self->state, SHMQ_WORKER_STOPPING, memory_order_release);
    if (ops->finish) {
        int frc = ops->finish(&w, state);
        if (exit_code == SHMQ_EXIT_OK) {
            exit_code = frc;
        }
    }
    shmq_log(SHMQ_LOG_INFO, "exiting with status %d", exit_code);
    shmq_log_follow(NULL);
    shmq_ctl_detach(&w.ctl);
    close(w.lock_fd);
    return exit_code;
}

/* ---- roles on a libuv loop (worker_uv.h) ---------------------------------------------- */

static void uv_idle_timer(uv_timer_t *t)
{
    (void)t; /* its firing ends the turn */
}

void shmq_worker_uv_idle(uv_loop_t *loop, uv_timer_t *timer, int timeout_ms)
{
    uv_timer_start(timer, uv_idle_timer, (uint64_t)timeout_ms, 0);
    uv_run(loop, UV_RUN_ONCE);
    uv_timer_stop(timer);
}

static void uv_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

void shmq_worker_uv_close(uv_loop_t *loop)
{
    uv_walk(loop, uv_close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

/* ---- the replication link (worker_uv.h) ---------------------------------------------------- */

#define HA_TLS_IDENTITY "shmq-ha/1" /* the PSK identity: the use and its version */

int shmq_worker_ha_tls(const shmq_config_t *cfg, bool server, shmq_net_tls_t **out)
{
    *out = NULL;
    if (cfg->ha_secret_file[0] == '\0') {
        return 0;
    }
    uint8_t key[SHMQ_NET_PSK_SIZE];
    int rc = shmq_net_secret_load(cfg->ha_secret_file, key);
    if (rc == 0) {
        rc = shmq_net_tls_psk(server, HA_TLS_IDENTITY, key, out);
    }
    explicit_bzero(key, sizeof(key));
    if (rc < 0) {
        shmq_log(SHMQ_LOG_ERROR, "haSecretFile: %s", shmq_error_detail());
        return SHMQ_E_CONFIG;
    }
    return 0;
}

const char *shmq_worker_ha_link(const shmq_config_t *cfg)
{
    static char text[1100];
    if (cfg->ha_secret_file[0] == '\0') {
        return "RocketMQ's plain HA protocol: no authentication (haPlainLink=true)";
    }
    snprintf(text, sizeof(text), "TLS 1.3, pre-shared key of %s", cfg->ha_secret_file);
    return text;
}
