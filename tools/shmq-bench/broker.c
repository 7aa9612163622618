/*
 * shmq-bench: the broker a run measures.  With --store DIR it is the running
 * broker of DIR (attached read-only for its configuration, counters and
 * worker pids); without, shmq-bench starts shmqd (found next to itself, or
 * --shmqd) on a fresh store in a temporary directory, waits until it serves,
 * and at the end stops it (SIGTERM, bounded wait) and removes the store.
 *
 * The started shmqd gets SIGTERM if shmq-bench dies (PR_SET_PDEATHSIG), and
 * its workers follow their master: a killed benchmark leaves no broker.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

int bench_tmpdir(const bench_opts_t *o, const char *what, char *out, size_t len)
{
    const char *base = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    int n = snprintf(out, len, "%s/shmq-bench-%s.XXXXXX", base, what);
    if (n < 0 || (size_t)n >= len) {
        return -ENAMETOOLONG;
    }
    if (mkdtemp(out) == NULL) {
        int rc = -errno;
        bench_warn("cannot create a directory under %s: %s", base, strerror(errno));
        return rc;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

void bench_rmtree(const char *path)
{
    if (path && path[0]) {
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* shmqd: --shmqd, else next to this executable. */
static void shmqd_path(const bench_opts_t *o, char *out, size_t len)
{
    if (o->shmqd) {
        snprintf(out, len, "%s", o->shmqd);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(out, len, "shmqd");
        return;
    }
    self[n] = '\0';
    snprintf(out, len, "%s/shmqd", dirname(self));
}

int bench_broker_spawn(const bench_opts_t *o, const char *root, const char *const *extra,
                       int nextra, bench_broker_t *b)
{
    char prog[PATH_MAX];
    shmqd_path(o, prog, sizeof(prog));
    if (access(prog, X_OK) != 0) {
        bench_warn("cannot run %s: %s (build it with make, or give --shmqd PATH)", prog,
                   strerror(errno));
        return -ENOENT;
    }
    const char *argv[4 + 2 * (BENCH_MAX_SETS + BENCH_MAX_EXTRA)];
    int ac = 0;
    argv[ac++] = prog;
    argv[ac++] = "--store";
    argv[ac++] = root;
    for (int i = 0; i < nextra && i < BENCH_MAX_EXTRA; i++) {
        argv[ac++] = "--set";
        argv[ac++] = extra[i];
    }
    for (int i = 0; i < o->nsets; i++) {
        argv[ac++] = "--set";
        argv[ac++] = o->sets[i];
    }
    argv[ac] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        /* The broker goes when we go. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(127);
        }
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(prog, (char *const *)argv);
        fprintf(stderr, "shmq-bench: exec %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    b->pid = pid;
    b->started = true;
    return 0;
}

static void show_log(const bench_broker_t *b)
{
    FILE *f = fopen(b->log, "r");
    if (!f) {
        return;
    }
    char lines[20][512];
    int n = 0;
    while (fgets(lines[n % 20], sizeof(lines[0]), f)) {
        n++;
    }
    fclose(f);
    bench_warn("the last lines of %s:", b->log);
    for (int i = n > 20 ? n - 20 : 0; i < n; i++) {
        fprintf(stderr, "    %s", lines[i % 20]);
    }
}

int bench_broker_wait(bench_broker_t *b, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!bench_interrupted) {
        if (b->pid > 0) {
            int status;
            if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
                b->pid = 0;
                bench_warn("shmqd exited (status %d) before serving", WEXITSTATUS(status));
                show_log(b);
                return -ECHILD;
            }
        }
        shmq_ctl_t ctl;
        if (shmq_ctl_attach(b->root, SHMQ_CTL_RDONLY, &ctl) == 0) {
            shmq_ctl_block_t *blk = ctl.blk;
            /* Acquire: pairs with the master's and workers' release stores of states. */
            bool up =
                atomic_load_explicit(&blk->hdr.state, memory_order_acquire) == SHMQ_STATE_RUNNING;
            /* A slave's ha-receiver stands in for the writer. */
            bool slave = blk->hdr.config.broker_role == SHMQ_SLAVE;
            for (int r = SHMQ_ROLE_WRITER; up && r <= SHMQ_ROLE_DISPATCHER; r++) {
                int role = r == SHMQ_ROLE_WRITER && slave ? SHMQ_ROLE_HA_RECEIVER : r;
                up = atomic_load_explicit(&blk->workers[role].state, memory_order_acquire) ==
                     SHMQ_WORKER_RUNNING;
            }
            if (up) {
                const shmq_config_t *cfg = &blk->hdr.config;
                b->flush_sync = cfg->flush_disk_type == SHMQ_SYNC_FLUSH;
                b->seg_size = cfg->mapped_file_size_commit_log;
                b->max_message_size = cfg->max_message_size;
            }
            shmq_ctl_detach(&ctl);
            if (up) {
                return 0;
            }
        }
        if (bench_now_ns() > deadline) {
            bench_warn("the store at %s did not start serving within %d ms", b->root, timeout_ms);
            if (b->started) {
                show_log(b);
            }
            return -ETIMEDOUT;
        }
        bench_sleep_ns(2000000);
    }
    return -EINTR;
}

int bench_broker_open(const bench_opts_t *o, const char *const *extra, int nextra,
                      bench_broker_t *b)
{
    memset(b, 0, sizeof(*b));
    if (o->store) {
        snprintf(b->root, sizeof(b->root), "%s", o->store);
        int rc = bench_broker_wait(b, 100);
        if (rc < 0) {
            bench_warn("no running broker serves %s (start shmqd, or leave out --store)", o->store);
            return rc;
        }
        if (o->flush >= 0 && o->flush != b->flush_sync) {
            bench_warn("the broker at %s runs %s, not the --flush asked for", o->store,
                       b->flush_sync ? "SYNC_FLUSH" : "ASYNC_FLUSH");
            return -EINVAL;
        }
        return 0;
    }
    int rc = bench_tmpdir(o, "store", b->tmp, sizeof(b->tmp));
    if (rc < 0) {
        return rc;
    }
    snprintf(b->root, sizeof(b->root), "%s/store", b->tmp);
    snprintf(b->log, sizeof(b->log), "%s/shmqd.log", b->tmp);
    const char *sets[10];
    int n = 0;
    sets[n++] = o->flush == 1 ? "flushDiskType=SYNC_FLUSH" : "flushDiskType=ASYNC_FLUSH";
    for (int i = 0; i < nextra && n < 8; i++) {
        sets[n++] = extra[i];
    }
    rc = bench_broker_spawn(o, b->root, sets, n, b);
    if (rc == 0) {
        rc = bench_broker_wait(b, 60000);
    }
    if (rc < 0) {
        bench_broker_close(b, o->keep);
    }
    return rc;
}

int bench_broker_stop(bench_broker_t *b)
{
    if (b->pid <= 0) {
        return -1;
    }
    kill(b->pid, SIGTERM);
    int status = 0;
    int64_t deadline = bench_now_ns() + 90LL * 1000000000;
    for (;;) {
        pid_t r = waitpid(b->pid, &status, WNOHANG);
        if (r == b->pid || (r < 0 && errno != EINTR)) {
            break;
        }
        if (bench_now_ns() > deadline) {
            bench_warn("shmqd (pid %d) did not stop in 90 s: killing it", (int)b->pid);
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            break;
        }
        bench_sleep_ns(5000000);
    }
    b->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void bench_broker_close(bench_broker_t *b, bool keep)
{
    if (!b->started) {
        return;
    }
    int st = bench_broker_stop(b);
    if (st != 0 && st != -1) {
        bench_warn("shmqd exited with status %d (log: %s)", st, b->log);
    }
    if (b->tmp[0] && !keep) {
        shmq_ctl_unlink(b->root); /* nothing when it stopped cleanly */
        bench_rmtree(b->tmp);
    } else if (b->tmp[0]) {
        bench_warn("kept the store in %s", b->tmp);
    }
    b->started = false;
}

pid_t bench_broker_worker_pid(const bench_broker_t *b, int role)
{
    shmq_ctl_t ctl;
    if (shmq_ctl_attach(b->root, SHMQ_CTL_RDONLY, &ctl) < 0) {
        return 0;
    }
    /* Relaxed: a pid to signal; a stale one only makes one kill miss. */
    pid_t pid = atomic_load_explicit(&ctl.blk->workers[role].pid, memory_order_relaxed);
    if (atomic_load_explicit(&ctl.blk->workers[role].state, memory_order_acquire) !=
        SHMQ_WORKER_RUNNING) {
        pid = 0;
    }
    shmq_ctl_detach(&ctl);
    return pid;
}

int bench_broker_counters(const bench_broker_t *b, uint64_t *msgs, uint64_t *bytes)
{
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(b->root, SHMQ_CTL_RDONLY, &ctl);
    if (rc < 0) {
        return rc;
    }
    /* Relaxed: statistics. */
    *msgs = atomic_load_explicit(&ctl.blk->counters.messages_in, memory_order_relaxed);
    *bytes = atomic_load_explicit(&ctl.blk->counters.bytes_in, memory_order_relaxed);
    shmq_ctl_detach(&ctl);
    return 0;
}
