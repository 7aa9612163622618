/*
 * shmq-bench idle: what an idle broker costs.  After a short settling time,
 * reads the CPU time (/proc/<pid>/schedstat) and the context
 * switches (/proc/<pid>/status) of the master and of every worker in the
 * worker table, waits --seconds, reads them again.  The figure is the share
 * of one core the whole broker used, and the wake-ups per second: an idle
 * broker that spins shows up at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"

#define IDLE_SETTLE_NS (2LL * 1000000000)

typedef struct idle_proc {
    pid_t pid;
    char name[32];
    uint64_t ticks0, ticks1; /* CPU ns */
    uint64_t switches0, switches1;
} idle_proc_t;

/* CPU time of pid in ns: /proc/<pid>/schedstat (ns), else utime + stime (clock ticks). */
static int read_cpu_ns(pid_t pid, uint64_t *ns)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long v;
    if (f) {
        int ok = fscanf(f, "%llu", &v) == 1;
        fclose(f);
        if (ok) {
            *ns = v;
            return 0;
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        return -errno;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces): state is field 3. */
    char *p = strrchr(buf, ')');
    if (!p) {
        return -EINVAL;
    }
    unsigned long long ut = 0, stt = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2) {
        return -EINVAL;
    }
    *ns = (ut + stt) * (1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK));
    return 0;
}

static int read_switches(pid_t pid, uint64_t *sw)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -errno;
    }
    uint64_t total = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
            sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1) {
            total += v;
        }
    }
    fclose(f);
    *sw = total;
    return 0;
}

static int list_procs(const bench_broker_t *b, idle_proc_t *out, int max)
{
    shmq_ctl_t ctl;
    int rc = shmq_ctl_attach(b->root, SHMQ_CTL_RDONLY, &ctl);
    if (rc < 0) {
        return rc;
    }
    int n = 0;
    out[n].pid = ctl.blk->hdr.creator_pid;
    snprintf(out[n].name, sizeof(out[n].name), "shmqd");
    n++;
    for (int r = 0; r < SHMQ_ROLE_COUNT && n < max; r++) {
        /* Relaxed: a pid to look at; a restart in between shows as a missing process. */
        pid_t pid = atomic_load_explicit(&ctl.blk->workers[r].pid, memory_order_relaxed);
        if (pid > 0) {
            out[n].pid = pid;
            snprintf(out[n].name, sizeof(out[n].name), "shmq-%s", shmq_role_name(r));
            n++;
        }
    }
    shmq_ctl_detach(&ctl);
    return n;
}

int bench_idle(const bench_opts_t *o, bench_report_t *r)
{
    bench_broker_t b;
    int rc = bench_broker_open(o, NULL, 0, &b);
    if (rc < 0) {
        return rc;
    }
    bench_machine_measure(b.root, true, &r->machine);
    r->config = bench_config_json(o, &b);
    bench_sleep_ns(IDLE_SETTLE_NS);
    idle_proc_t procs[SHMQ_ROLE_COUNT + 1];
    int n = list_procs(&b, procs, SHMQ_ROLE_COUNT + 1);
    if (n < 0) {
        bench_broker_close(&b, o->keep);
        return n;
    }
    for (int i = 0; i < n; i++) {
        read_cpu_ns(procs[i].pid, &procs[i].ticks0);
        read_switches(procs[i].pid, &procs[i].switches0);
    }
    int64_t t0 = bench_now_ns();
    bench_sleep_ns((int64_t)((o->seconds > 0 ? o->seconds : 10) * 1e9));
    int64_t t1 = bench_now_ns();
    double secs = (double)(t1 - t0) / 1e9;
    r->extra = json_object();
    json_t *list = json_array();
    double total_cpu = 0, total_wakeups = 0;
    for (int i = 0; i < n; i++) {
        if (read_cpu_ns(procs[i].pid, &procs[i].ticks1) < 0 ||
            read_switches(procs[i].pid, &procs[i].switches1) < 0) {
            r->errors++;
            snprintf(r->note, sizeof(r->note), "%s (pid %d) went away during the run",
                     procs[i].name, (int)procs[i].pid);
            continue;
        }
        double cpu = (double)(procs[i].ticks1 - procs[i].ticks0) / 1e9 / secs * 100.0;
        double wk = (double)(procs[i].switches1 - procs[i].switches0) / secs;
        total_cpu += cpu;
        total_wakeups += wk;
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(procs[i].name));
        json_object_set_new(e, "pid", json_integer(procs[i].pid));
        json_object_set_new(e, "cpu_percent", json_real(cpu));
        json_object_set_new(e, "wakeups_per_sec", json_real(wk));
        json_array_append_new(list, e);
    }
    r->seconds = secs;
    r->latency_what = "none (idle)";
    json_object_set_new(r->extra, "processes", list);
    json_object_set_new(r->extra, "cpu_percent_of_one_core", json_real(total_cpu));
    json_object_set_new(r->extra, "wakeups_per_sec", json_real(total_wakeups));
    bench_broker_close(&b, o->keep);
    return 0;
}
