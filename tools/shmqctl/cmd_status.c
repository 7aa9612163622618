/*
 * shmqctl status: the live state of a running store, read from its control
 * block (attached read-only: status changes nothing): store state, the
 * CommitLog positions, the workers (pid, state, restarts, uptime,
 * heartbeat), message and flush counters, and the refused entries by cause
 * (bad input, disk full, fenced, append errors).  Text for people, --json for
 * programs (one object; every field is described in docs/operations.md).
 *
 * A store is running when its control block exists, is ready, and its
 * master is alive and holds the store lock.  Otherwise: "store <root> is not
 * running" (or "is starting") on stderr and exit 1.  The lock file is never
 * followed through a link or waited on when it is a FIFO: that is said, naming
 * it, and exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "store/clean.h"
#include "shm/ctl_clean.h"
#include "shm/ctl.h"
#include "shm/progress.h"
#include "store/fence.h"
#include "shm/reg.h"
#include "format/store_files.h"
#include "shmqctl.h"

/*
 * The master that created the block is alive and holds byte 0 of <root>/lock.  The lock
 * file is opened as every file of a store: a link or a FIFO there is not followed or
 * waited on (false, with a detail naming it; the detail is cleared otherwise).
 */
bool shmqctl_master_alive(const shmq_ctl_t *ctl)
{
    shmq_error_clear();
    pid_t pid = ctl->blk->hdr.creator_pid;
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/lock", ctl->root);
    int fd = shmq_store_file_open(path, O_RDONLY, 0);
    if (fd == -EACCES) {
        /* A client of the store group: the lock is the store's user's alone (0600); a master
         * that accepts a connection on its socket is alive. */
        shmq_error_clear();
        fd = shmq_reg_connect(ctl->root);
        if (fd >= 0) {
            close(fd);
        }
        return fd >= 0;
    }
    if (fd < 0) {
        return false;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return held;
}

/*
 * A master (shmqd) that holds the store's lock but has no control block yet is
 * recovering the store: its pid, and in *age_ms how long it has run; 0 if none.
 */
static long starting_master(const char *root, int64_t *age_ms)
{
    shmq_lock_holder_t h[8];
    int n = shmq_store_lock_holders(root, h, 8);
    for (int i = 0; i < n && i < 8; i++) {
        if (!h[i].store_bytes || strcmp(h[i].comm, "shmqd") != 0) {
            continue;
        }
        *age_ms = -1;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", h[i].pid);
        FILE *f = fopen(path, "re");
        double up = 0;
        FILE *u = fopen("/proc/uptime", "re");
        if (f && u && fscanf(u, "%lf", &up) == 1) {
            char line[1024];
            const char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
            unsigned long long start = 0;
            /* field 22, starttime, in clock ticks after boot; the 20th after the ')' */
            if (p && sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu",
                            &start) == 1) {
                *age_ms = (int64_t)((up - (double)start / (double)sysconf(_SC_CLK_TCK)) * 1000);
            }
        }
        if (f) {
            fclose(f);
        }
        if (u) {
            fclose(u);
        }
        return h[i].pid;
    }
    return 0;
}

int shmqctl_attach_running(const char *root, unsigned flags, shmq_ctl_t *ctl)
{
    shmq_error_clear();
    int rc = shmq_ctl_attach(root, flags, ctl);
    if (rc == SHMQ_E_NOT_FOUND) {
        int64_t age;
        long pid = starting_master(root, &age);
        if (pid > 0) {
            shmqctl_err("store %s is starting: its master (pid %ld) is recovering the store "
                        "(for %.1f s); try again when it runs",
                        root, pid, age >= 0 ? (double)age / 1000 : 0.0);
            return SHMQCTL_EXIT_FAIL;
        }
        shmqctl_err("store %s is not running", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc == -EAGAIN) {
        shmqctl_err("store %s is starting (not ready yet)", root);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot attach to the store at %s", root);
    }
    if (!shmqctl_master_alive(ctl)) {
        if (shmq_error_detail()[0] != '\0') {
            shmqctl_err("store %s: cannot tell whether its master (pid %d) runs: %s", root,
                        (int)ctl->blk->hdr.creator_pid, shmq_error_detail());
        } else {
            shmqctl_err("store %s is not running (its master, pid %d, is gone)", root,
                        (int)ctl->blk->hdr.creator_pid);
        }
        shmq_ctl_detach(ctl);
        return SHMQCTL_EXIT_FAIL;
    }
    return 0;
}

/* relaxed loads: a status snapshot; no data is read through these values */
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* cleaner: "disk" (usage, thresholds, full) and "last_clean" (the last run that deleted). */
static void clean_json(json_t *o, const shmq_ctl_t *ctl)
{
    const shmq_ctl_cleaner_t *cs = &ctl->blk->cleaner;
    const shmq_config_t *cfg = &ctl->blk->hdr.config;
    bool checked = LOAD(cs->checked_ms) > 0;
    int32_t used = LOAD(cs->used_pct), cq_used = LOAD(cs->cq_used_pct);
    json_t *d = json_object();
    json_object_set_new(d, "used_ratio",
                        checked && used >= 0 ? json_real(used / 100.0) : json_null());
    json_object_set_new(d, "consumequeue_used_ratio",
                        checked && cq_used >= 0 ? json_real(cq_used / 100.0) : json_null());
    json_object_set_new(d, "max_used_ratio", json_real(cfg->disk_max_used_space_ratio / 100.0));
    json_object_set_new(d, "clean_forcibly_ratio",
                        json_real(cfg->disk_space_clean_forcibly_ratio / 100.0));
    json_object_set_new(d, "warning_ratio", json_real(cfg->disk_space_warning_level_ratio / 100.0));
    json_object_set_new(d, "clean_forcibly_enable", json_boolean(cfg->clean_file_forcibly_enable));
    json_object_set_new(d, "full", json_boolean(LOAD(cs->disk_full) != 0));
    json_object_set_new(d, "checked_ms", json_integer(LOAD(cs->checked_ms)));
    json_object_set_new(o, "disk", d);
    shmq_clean_last_t last;
    memset(&last, 0, sizeof(last));
    shmq_clean_last_read(cs, &last);
    json_t *l = json_object();
    json_object_set_new(l, "time_ms", json_integer(last.time_ms));
    json_object_set_new(l, "reason", json_string(shmq_clean_reason_name(last.reason)));
    json_object_set_new(l, "deleted_commitlog", json_integer(last.commitlog));
    json_object_set_new(l, "deleted_consumequeue", json_integer(last.consumequeue));
    json_object_set_new(l, "deleted_index", json_integer(last.index));
    json_object_set_new(l, "min", json_integer(last.min));
    json_object_set_new(l, "runs", json_integer((json_int_t)LOAD(cs->runs)));
    json_object_set_new(o, "last_clean", l);
}

/* scheduler: delay levels and timer progress ("scheduler" object). */
static void scheduler_json(const shmq_ctl_t *ctl, json_t *o)
{
    const shmq_ctl_scheduler_t *sc = &ctl->blk->scheduler;
    json_t *s = json_object();
    json_object_set_new(s, "delay_delivered", json_integer((json_int_t)LOAD(sc->delay_delivered)));
    json_object_set_new(s, "delay_pending", json_integer((json_int_t)LOAD(sc->delay_pending)));
    json_object_set_new(s, "timer_enqueued", json_integer((json_int_t)LOAD(sc->timer_enqueued)));
    json_object_set_new(s, "timer_delivered", json_integer((json_int_t)LOAD(sc->timer_delivered)));
    json_object_set_new(s, "timer_pending", json_integer((json_int_t)LOAD(sc->timer_pending)));
    json_object_set_new(s, "timer_read_ms", json_integer((json_int_t)LOAD(sc->timer_read_ms)));
    json_object_set_new(s, "dropped", json_integer((json_int_t)LOAD(sc->dropped)));
    json_object_set_new(s, "retries", json_integer((json_int_t)LOAD(sc->retries)));
    json_object_set_new(o, "scheduler", s);
}

/* gateway: its counters ("gateway" object), when the store runs shmq-gateway. */
static void gateway_json(const shmq_ctl_t *ctl, json_t *o)
{
    if (LOAD(ctl->blk->workers[SHMQ_ROLE_GATEWAY].state) == SHMQ_WORKER_NONE) {
        return;
    }
    const shmq_ctl_gateway_t *g = &ctl->blk->gateway;
    json_t *j = json_object();
    const struct {
        const char *name;
        const _Atomic uint64_t *v;
    } f[] = {
        {"connections", &g->connections},
        {"accepted", &g->accepted},
        {"refused", &g->refused},
        {"closed_bad_input", &g->closed_bad},
        {"closed_slow_frame", &g->closed_slow},
        {"requests_send", &g->requests_send},
        {"requests_pull", &g->requests_pull},
        {"requests_other", &g->requests_other},
        {"unsupported", &g->unsupported},
        {"bad_frames", &g->bad_frames},
        {"messages_sent", &g->messages_sent},
        {"send_errors", &g->send_errors},
        {"bytes_in", &g->bytes_in},
        {"bytes_out", &g->bytes_out},
        {"held_pulls", &g->held_pulls},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        /* relaxed: statistics of the gateway (single writer), nothing read through them */
        json_object_set_new(
            j, f[i].name,
            json_integer((json_int_t)atomic_load_explicit(f[i].v, memory_order_relaxed)));
    }
    json_object_set_new(o, "gateway", j);
}

/* A peer's address from the control block, NUL-terminated whatever the block holds. */
static json_t *addr_json(const char raw[SHMQ_CTL_ADDR_MAX])
{
    char addr[SHMQ_CTL_ADDR_MAX];
    memcpy(addr, raw, sizeof(addr));
    addr[sizeof(addr) - 1] = '\0';
    return json_string(addr);
}

/* Replication ("replication" object): the role, and the slaves (a master) or the master (a
 * slave). */
static void replication_json(const shmq_ctl_t *ctl, json_t *o)
{
    const shmq_config_t *cfg = &ctl->blk->hdr.config;
    const shmq_ctl_ha_t *ha = &ctl->blk->ha;
    int64_t wrote = shmq_ctl_load(&ctl->blk->wrote), now = shmq_now_ms();
    json_t *r = json_object();
    bool slave = cfg->broker_role == SHMQ_SLAVE;
    json_object_set_new(r, "role",
                        json_string(slave                                  ? "SLAVE"
                                    : cfg->broker_role == SHMQ_SYNC_MASTER ? "SYNC_MASTER"
                                                                           : "ASYNC_MASTER"));
    json_object_set_new(r, "link",
                        json_string(cfg->ha_secret_file[0] != '\0' ? "tls-psk"
                                    : cfg->ha_plain_link           ? "plain"
                                                                   : "none"));
    json_object_set_new(r, "refused", json_integer((json_int_t)LOAD(ha->refused)));
    json_object_set_new(r, "replicated", json_integer(shmq_ctl_load(&ctl->blk->replicated)));
    if (slave) {
        json_t *m = json_object();
        json_object_set_new(m, "address", addr_json(ha->master_addr));
        json_object_set_new(m, "connected", json_boolean(LOAD(ha->master_connected) != 0));
        int64_t end = LOAD(ha->master_end);
        json_object_set_new(m, "master_end", json_integer(end));
        json_object_set_new(m, "lag_bytes", json_integer(end > wrote ? end - wrote : 0));
        json_object_set_new(m, "last_frame_ms", json_integer(LOAD(ha->last_frame_ms)));
        json_object_set_new(m, "frames", json_integer((json_int_t)LOAD(ha->frames)));
        json_object_set_new(m, "bytes", json_integer((json_int_t)LOAD(ha->bytes)));
        json_object_set_new(m, "refused", json_integer((json_int_t)LOAD(ha->refused)));
        json_object_set_new(r, "master", m);
    }
    json_t *sa = json_array();
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES; i++) {
        const shmq_ctl_slave_t *sl = &ha->slaves[i];
        /* Acquire: the row's fields are written before CONNECTED. */
        if (atomic_load_explicit(&sl->state, memory_order_acquire) != SHMQ_SLAVE_CONNECTED) {
            continue;
        }
        json_t *sj = json_object();
        int64_t acked = LOAD(sl->acked), caught = LOAD(sl->caught_up_ms);
        json_object_set_new(sj, "address", addr_json(sl->addr));
        json_object_set_new(sj, "acked", json_integer(acked));
        json_object_set_new(sj, "sent", json_integer(LOAD(sl->sent)));
        json_object_set_new(sj, "lag_bytes", json_integer(wrote > acked ? wrote - acked : 0));
        json_object_set_new(sj, "lag_ms",
                            json_integer(acked >= wrote || caught == 0 ? 0 : now - caught));
        json_object_set_new(sj, "in_sync", json_boolean(LOAD(sl->in_sync) != 0));
        json_object_set_new(sj, "connected_ms", json_integer(LOAD(sl->connected_ms)));
        json_object_set_new(sj, "broker_id", json_integer(LOAD(sl->broker_id)));
        json_array_append_new(sa, sj);
    }
    json_object_set_new(r, "slaves", sa);
    json_object_set_new(o, "replication", r);
}

/* The controller link ("controller" object, controller mode only): what the ctrl-agent last
 * heard from the controller group's leader. */
static void controller_json(const shmq_ctl_t *ctl, json_t *o)
{
    const shmq_config_t *cfg = &ctl->blk->hdr.config;
    const shmq_ctl_controller_t *cs = &ctl->blk->controller;
    if (!cfg->enable_controller_mode) {
        return;
    }
    json_t *c = json_object();
    json_object_set_new(c, "addresses", json_string(cfg->controller_addr));
    json_object_set_new(c, "connected", json_boolean(LOAD(cs->connected) != 0));
    json_object_set_new(c, "leader", addr_json(cs->leader));
    json_object_set_new(c, "broker_id", json_integer(LOAD(cs->broker_id)));
    json_object_set_new(c, "master_id", json_integer(LOAD(cs->master_id)));
    json_object_set_new(c, "master_address", addr_json(cs->master_addr));
    json_object_set_new(c, "master_epoch", json_integer(LOAD(cs->master_epoch)));
    json_object_set_new(c, "last_heartbeat_ms", json_integer(LOAD(cs->last_heartbeat_ms)));
    json_object_set_new(c, "heartbeats", json_integer((json_int_t)LOAD(cs->heartbeats)));
    json_object_set_new(c, "failures", json_integer((json_int_t)LOAD(cs->failures)));
    /* the set's gateways (RocketMQ clients' route): master first, then live replicas */
    shmq_ctl_route_t rt;
    json_t *gws = json_array();
    if (shmq_ctl_route_get(ctl, &rt) == 0) {
        for (uint32_t i = 0; i < rt.count; i++) {
            json_array_append_new(gws, json_pack("{sIsbss}", "broker_id",
                                                 (json_int_t)rt.e[i].broker_id, "master",
                                                 rt.e[i].master != 0, "address", rt.e[i].gateway));
        }
    }
    json_object_set_new(c, "gateways", gws);
    shmq_ctl_sss_t set;
    if (shmq_ctl_sss_copy(cs, &set) == 0) {
        /* The set this master acknowledges by (allAckInSyncStateSet). */
        json_t *ids = json_array();
        for (uint32_t i = 0; i < set.count; i++) {
            json_array_append_new(ids, json_integer(set.ids[i]));
        }
        json_t *ab = json_object();
        json_object_set_new(ab, "sync_state_set", ids);
        json_object_set_new(ab, "epoch", json_integer(set.epoch));
        json_object_set_new(ab, "generation", json_integer((json_int_t)set.gen));
        json_object_set_new(c, "acked_by", ab);
    }
    /* The lease as its set's master, as ms left (negative: lapsed that long ago; null: never
     * granted): CLOCK_MONOTONIC, the same clock as the ctrl-agent's and the writer's. */
    int64_t until = LOAD(cs->lease_until_ms);
    json_object_set_new(c, "lease_left_ms",
                        until ? json_integer(until - shmq_mono_ms()) : json_null());
    json_object_set_new(c, "leases", json_integer((json_int_t)LOAD(cs->leases)));
    json_object_set_new(c, "broker_timeout_ms", json_integer(LOAD(cs->broker_timeout_ms)));
    json_object_set_new(o, "controller", c);
}

static const char *ring_state_name(uint32_t st)
{
    switch (st) {
    case SHMQ_RING_FREE:
        return "free";
    case SHMQ_RING_ACTIVE:
        return "active";
    case SHMQ_RING_ORPHANED:
        return "orphaned";
    case SHMQ_RING_DRAINED:
        return "drained";
    default:
        return "unknown";
    }
}

/* Append one reason the store is not healthy to the array. */
static void health_problem(json_t *health, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void health_problem(json_t *health, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_array_append_new(health, json_string(text));
}

/* "groups": per consumer group its total lag (queue max minus committed, each at least 0). */
static void groups_json(const shmq_ctl_t *ctl, json_t *o)
{
    shmq_offset_table_t t;
    if (shmq_ctl_offsets_snapshot(ctl, &t) < 0) {
        return;
    }
    json_t *g = json_object();
    for (size_t i = 0; g && i < t.count; i++) {
        char key[512];
        char *group;
        if (!shmq_offset_key_split(&t.entries[i], key, &group)) {
            continue;
        }
        const shmq_ctl_queue_t *q =
            shmq_ctl_queue_find(ctl, key, strlen(key), t.entries[i].queue_id);
        /* Acquire: pairs with the dispatcher's release of max_offset. */
        int64_t max =
            q ? atomic_load_explicit((_Atomic int64_t *)&q->max_offset, memory_order_acquire) : 0;
        int64_t lag = max > t.entries[i].offset ? max - t.entries[i].offset : 0;
        json_t *cur = json_object_get(g, group);
        json_object_set_new(g, group, json_integer(lag + (cur ? json_integer_value(cur) : 0)));
    }
    shmq_offset_table_free(&t);
    if (g) {
        json_object_set_new(o, "groups", g);
    }
}

static json_t *status_json(const shmq_ctl_t *ctl)
{
    shmq_ctl_block_t *b = ctl->blk;
    const shmq_ctl_header_t *h = &b->hdr;
    int64_t now = shmq_now_ms();
    json_t *o = json_object();
    json_t *health = json_array(); /* why the store is not healthy; empty when it is */
    uint32_t store_state = LOAD(h->state);
    if (store_state != SHMQ_STATE_RUNNING) {
        health_problem(health, "the store is %s", shmq_store_state_name(store_state));
    }
    if (LOAD(b->fenced_error) != 0) {
        health_problem(health, "the store is fenced after a failed %s flush",
                       shmq_fence_part_name((enum shmq_fence_part)LOAD(b->fenced_part)));
    }
    json_object_set_new(o, "state", json_string(shmq_store_state_name(store_state)));
    json_object_set_new(o, "store", json_string(ctl->root));
    json_object_set_new(o, "pid", json_integer(h->creator_pid));
    json_object_set_new(o, "uptime_ms", json_integer(now - h->created_ms));
    json_object_set_new(
        o, "flush_disk_type",
        json_string(h->config.flush_disk_type == SHMQ_SYNC_FLUSH ? "SYNC_FLUSH" : "ASYNC_FLUSH"));
    json_t *broker = json_object();
    json_object_set_new(broker, "name", json_string(h->config.broker_name));
    json_object_set_new(broker, "cluster", json_string(h->config.broker_cluster_name));
    json_object_set_new(broker, "id", json_integer(h->config.broker_id));
    json_object_set_new(o, "broker", broker);
    json_t *pos = json_object();
    json_object_set_new(pos, "wrote", json_integer(shmq_ctl_load(&b->wrote)));
    json_object_set_new(pos, "flushed", json_integer(shmq_ctl_load(&b->flushed)));
    json_object_set_new(pos, "dispatched", json_integer(shmq_ctl_load(&b->dispatched)));
    json_object_set_new(pos, "min", json_integer(shmq_ctl_load(&b->min)));
    json_object_set_new(pos, "indexed", json_integer(shmq_ctl_load(&b->indexed)));
    json_object_set_new(o, "positions", pos);
    /* indexer: the checkpoint index time its msyncs cover, and a failed msync */
    json_object_set_new(o, "index_flushed_ts", json_integer(LOAD(b->index.flushed_ts)));
    json_object_set_new(o, "index_flush_error", json_integer(LOAD(b->index.flush_error)));
    json_object_set_new(o, "cq_flushed", json_integer(shmq_ctl_load(&b->cq_flushed)));
    json_object_set_new(o, "writer_journal", json_integer(LOAD(b->writer_journal)));
    json_object_set_new(o, "fenced_error", json_integer(LOAD(b->fenced_error)));
    json_object_set_new(
        o, "fenced_part",
        json_string(shmq_fence_part_name((enum shmq_fence_part)LOAD(b->fenced_part))));
    clean_json(o, ctl);

    json_t *ws = json_array();
    for (int r = 0; r < SHMQ_CTL_MAX_WORKERS; r++) {
        shmq_ctl_worker_t *w = &b->workers[r];
        uint32_t state = LOAD(w->state);
        if (state == SHMQ_WORKER_NONE) {
            continue; /* this store does not run the role */
        }
        int32_t pid = LOAD(w->pid);
        int64_t started = LOAD(w->started_ms);
        int64_t hb = LOAD(w->heartbeat_ms);
        json_t *wj = json_object();
        const char *name = shmq_role_name((enum shmq_role)r);
        /* A running worker whose loop has not turned for a while is not called running. */
        int64_t age = now - (hb > started ? hb : started);
        bool stale = state == SHMQ_WORKER_RUNNING && age > SHMQ_HEARTBEAT_STALE_MS;
        json_object_set_new(wj, "name", json_string(name));
        json_object_set_new(wj, "pid", json_integer(pid));
        json_object_set_new(wj, "state",
                            json_string(stale ? "stale" : shmq_worker_state_name(state)));
        if (stale) {
            health_problem(health, "the %s's heartbeat is %.1f s old", name, (double)age / 1000);
        } else if (state != SHMQ_WORKER_RUNNING) {
            health_problem(health, "the %s is %s", name, shmq_worker_state_name(state));
        }
        json_object_set_new(wj, "restarts", json_integer(LOAD(w->restarts)));
        json_object_set_new(wj, "uptime_ms",
                            json_integer(pid > 0 && started > 0 ? now - started : 0));
        json_object_set_new(wj, "last_exit", json_integer(LOAD(w->last_exit)));
        json_object_set_new(wj, "heartbeat_age_ms", hb > 0 ? json_integer(now - hb) : json_null());
        json_object_set_new(wj, "work_done", json_integer(LOAD(w->work_done)));
        json_array_append_new(ws, wj);
    }
    json_object_set_new(o, "workers", ws);
    /* Controller mode: a store that runs a writer (a master) takes no message without its
     * lease (docs/controller.md "Fencing"). */
    int64_t lease = LOAD(b->controller.lease_until_ms);
    if (h->config.enable_controller_mode &&
        LOAD(b->workers[SHMQ_ROLE_WRITER].state) != SHMQ_WORKER_NONE && shmq_mono_ms() >= lease) {
        health_problem(health,
                       lease ? "the store's lease as master from the controller group lapsed: "
                               "sends are refused"
                             : "the controller group has not named the store master: sends are "
                               "refused");
    }
    json_object_set_new(o, "healthy", json_boolean(json_array_size(health) == 0));
    json_object_set_new(o, "problems", health);

    const shmq_ctl_counters_t *c = &b->counters;
    uint64_t out = LOAD(c->messages_out) + (ctl->wake ? LOAD(ctl->wake->messages_out) : 0);
    json_object_set_new(o, "messages_in", json_integer((json_int_t)LOAD(c->messages_in)));
    json_object_set_new(o, "messages_out", json_integer((json_int_t)out));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)LOAD(c->bytes_in)));
    json_object_set_new(o, "rejects", json_integer((json_int_t)LOAD(c->rejects)));
    json_object_set_new(o, "refused_disk_full",
                        json_integer((json_int_t)LOAD(c->refused_disk_full)));
    json_object_set_new(o, "refused_fenced", json_integer((json_int_t)LOAD(c->refused_fenced)));
    json_object_set_new(o, "refused_not_master",
                        json_integer((json_int_t)LOAD(c->refused_not_master)));
    json_object_set_new(o, "append_errors", json_integer((json_int_t)LOAD(c->append_errors)));
    json_object_set_new(o, "flushes", json_integer((json_int_t)LOAD(c->flush_latency.count)));
    json_object_set_new(o, "flush_ns_total",
                        json_integer((json_int_t)LOAD(c->flush_latency.sum_ns)));
    json_object_set_new(o, "flush_errors", json_integer((json_int_t)LOAD(c->flush_errors)));
    int rings = 0;
    json_t *ra = json_array();
    for (uint32_t i = 0; i < h->ring_count && i < SHMQ_CTL_MAX_RINGS; i++) {
        const shmq_ctl_ring_t *r = &b->rings[i];
        uint32_t st = LOAD(r->state);
        rings += st == SHMQ_RING_ACTIVE;
        if (st == SHMQ_RING_FREE) {
            continue;
        }
        json_t *rj = json_object();
        json_object_set_new(rj, "index", json_integer(i));
        json_object_set_new(rj, "state", json_string(ring_state_name(st)));
        json_object_set_new(rj, "pid", json_integer(LOAD(r->owner_pid)));
        json_object_set_new(rj, "uid", json_integer(LOAD(r->owner_uid)));
        /* The writer's own count (the ring's tail is in the producer's object, not here). */
        json_object_set_new(rj, "consumed_bytes", json_integer((json_int_t)LOAD(r->head)));
        json_array_append_new(ra, rj);
    }
    json_object_set_new(o, "producers", json_integer(rings));
    json_object_set_new(o, "rings", ra);
    scheduler_json(ctl, o);
    gateway_json(ctl, o);
    replication_json(ctl, o);
    controller_json(ctl, o);
    json_object_set_new(o, "role", shmqctl_role_json(ctl->root, ctl, &ctl->blk->hdr.config));
    groups_json(ctl, o);
    return o;
}

static void format_duration(int64_t ms, char *out, size_t len)
{
    if (ms < 0) {
        ms = 0;
    }
    int64_t s = ms / 1000;
    if (s < 60) {
        snprintf(out, len, "%lld.%lds", (long long)s, (long)(ms % 1000) / 100);
    } else if (s < 3600) {
        snprintf(out, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    } else {
        snprintf(out, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    }
}

static int64_t jint(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* cleaner: disk usage and thresholds, the last cleaning. */
static void clean_text(json_t *o)
{
    json_t *d = json_object_get(o, "disk");
    json_t *used = json_object_get(d, "used_ratio");
    char u[16] = "unknown";
    if (json_is_real(used)) {
        snprintf(u, sizeof(u), "%.0f%%", json_real_value(used) * 100);
    }
    printf("disk:      used %s (max used %.0f%%, clean forcibly %.0f%%%s, warning %.0f%%)%s\n", u,
           json_real_value(json_object_get(d, "max_used_ratio")) * 100,
           json_real_value(json_object_get(d, "clean_forcibly_ratio")) * 100,
           json_is_true(json_object_get(d, "clean_forcibly_enable")) ? "" : " disabled",
           json_real_value(json_object_get(d, "warning_ratio")) * 100,
           json_is_true(json_object_get(d, "full")) ? "  FULL: new messages are refused" : "");
    json_t *l = json_object_get(o, "last_clean");
    if (jint(l, "time_ms") <= 0) {
        printf("cleaning:  none yet\n");
        return;
    }
    char when[32];
    shmqctl_format_ts(jint(l, "time_ms"), when, sizeof(when));
    printf("cleaning:  last at %s (%s): %lld CommitLog, %lld ConsumeQueue, %lld index file(s) "
           "deleted\n",
           when, json_string_value(json_object_get(l, "reason")),
           (long long)jint(l, "deleted_commitlog"), (long long)jint(l, "deleted_consumequeue"),
           (long long)jint(l, "deleted_index"));
}

/* scheduler: one line. */
static void scheduler_text(json_t *o)
{
    json_t *s = json_object_get(o, "scheduler");
    printf("scheduler: delayed %lld delivered, %lld pending; timer %lld enqueued, %lld delivered, "
           "%lld pending; %lld dropped\n",
           (long long)jint(s, "delay_delivered"), (long long)jint(s, "delay_pending"),
           (long long)jint(s, "timer_enqueued"), (long long)jint(s, "timer_delivered"),
           (long long)jint(s, "timer_pending"), (long long)jint(s, "dropped"));
}

/* gateway: one line, when it runs. */
static void gateway_text(json_t *o)
{
    json_t *g = json_object_get(o, "gateway");
    if (g == NULL) {
        return;
    }
    printf("gateway:   %lld clients (accepted %lld, refused %lld, closed %lld bad input, %lld "
           "slow); requests %lld send, %lld pull, %lld other; %lld held pulls\n",
           (long long)jint(g, "connections"), (long long)jint(g, "accepted"),
           (long long)jint(g, "refused"), (long long)jint(g, "closed_bad_input"),
           (long long)jint(g, "closed_slow_frame"), (long long)jint(g, "requests_send"),
           (long long)jint(g, "requests_pull"), (long long)jint(g, "requests_other"),
           (long long)jint(g, "held_pulls"));
}

/* replication: the role and link, then one line per slave (a master) or the master (a slave). */
static void replication_text(json_t *o)
{
    json_t *r = json_object_get(o, "replication");
    const char *link = json_string_value(json_object_get(r, "link"));
    printf("replication: %s, link %s%s, replicated %lld\n",
           json_string_value(json_object_get(r, "role")), link,
           strcmp(link, "plain") == 0 ? " (RocketMQ's protocol, no authentication)" : "",
           (long long)jint(r, "replicated"));
    json_t *m = json_object_get(r, "master");
    if (m != NULL) {
        printf("  master %s: %s, its end %lld, %lld bytes behind; %lld frames, %lld refused\n",
               json_string_value(json_object_get(m, "address")),
               json_is_true(json_object_get(m, "connected")) ? "connected" : "not connected",
               (long long)jint(m, "master_end"), (long long)jint(m, "lag_bytes"),
               (long long)jint(m, "frames"), (long long)jint(m, "refused"));
    }
    json_t *sa = json_object_get(r, "slaves");
    for (size_t i = 0; i < json_array_size(sa); i++) {
        json_t *sj = json_array_get(sa, i);
        char id[40] = "";
        if (jint(sj, "broker_id") > 0) {
            snprintf(id, sizeof(id), ", brokerId %lld", (long long)jint(sj, "broker_id"));
        }
        printf("  slave %-21s acked %lld, %lld bytes and %lld ms behind, %s%s\n",
               json_string_value(json_object_get(sj, "address")), (long long)jint(sj, "acked"),
               (long long)jint(sj, "lag_bytes"), (long long)jint(sj, "lag_ms"),
               json_is_true(json_object_get(sj, "in_sync")) ? "in sync" : "NOT in sync", id);
    }
}

/* controller: the link, then the broker set's master as the leader said. */
static void controller_text(json_t *o)
{
    json_t *c = json_object_get(o, "controller");
    if (c == NULL) {
        return;
    }
    const char *leader = json_string_value(json_object_get(c, "leader"));
    int64_t last = jint(c, "last_heartbeat_ms");
    printf("controller: %s, leader %s, brokerId %lld, last heartbeat %lld ms ago (%lld "
           "answered, %lld failed)\n",
           json_is_true(json_object_get(c, "connected")) ? "connected" : "not connected",
           leader && leader[0] ? leader : "-", (long long)jint(c, "broker_id"),
           last ? (long long)(shmq_now_ms() - last) : -1LL, (long long)jint(c, "heartbeats"),
           (long long)jint(c, "failures"));
    const char *maddr = json_string_value(json_object_get(c, "master_address"));
    printf("  master of the set: brokerId %lld %s, epoch %lld\n", (long long)jint(c, "master_id"),
           maddr && maddr[0] ? maddr : "-", (long long)jint(c, "master_epoch"));
    json_t *gws = json_object_get(c, "gateways"), *g;
    size_t i;
    if (json_array_size(gws) > 0) {
        printf("  gateways of the set:");
        json_array_foreach(gws, i, g)
        {
            printf(" %s%lld %s", json_is_true(json_object_get(g, "master")) ? "master " : "",
                   (long long)jint(g, "broker_id"),
                   json_string_value(json_object_get(g, "address")));
        }
        printf("\n");
    }
    json_t *ab = json_object_get(c, "acked_by");
    if (ab != NULL) {
        json_t *ids = json_object_get(ab, "sync_state_set");
        printf("  acknowledging by the sync-state set [");
        for (size_t k = 0; k < json_array_size(ids); k++) {
            printf("%s%lld", k ? "," : "", (long long)json_integer_value(json_array_get(ids, k)));
        }
        printf("] (epoch %lld)\n", (long long)jint(ab, "epoch"));
    }
    json_t *left = json_object_get(c, "lease_left_ms");
    if (!json_is_integer(left)) {
        printf("  lease as master: never granted\n");
    } else if (json_integer_value(left) > 0) {
        printf("  lease as master: %lld ms left\n", (long long)json_integer_value(left));
    } else {
        printf("  lease as master: lapsed %lld ms ago\n", -(long long)json_integer_value(left));
    }
}

static void status_text(json_t *o)
{
    char up[32];
    json_t *pos = json_object_get(o, "positions");
    format_duration(jint(o, "uptime_ms"), up, sizeof(up));
    printf("store %s: %s (master pid %lld, up %s, %s)\n",
           json_string_value(json_object_get(o, "store")),
           json_string_value(json_object_get(o, "state")), (long long)jint(o, "pid"), up,
           json_string_value(json_object_get(o, "flush_disk_type")));
    json_t *broker = json_object_get(o, "broker");
    printf("broker: %s, cluster %s, id %lld\n", json_string_value(json_object_get(broker, "name")),
           json_string_value(json_object_get(broker, "cluster")), (long long)jint(broker, "id"));
    printf("positions: wrote %lld  flushed %lld  dispatched %lld  cq_flushed %lld  min %lld\n",
           (long long)jint(pos, "wrote"), (long long)jint(pos, "flushed"),
           (long long)jint(pos, "dispatched"), (long long)jint(o, "cq_flushed"),
           (long long)jint(pos, "min"));
    printf("index:     indexed %lld  flushed to time %lld%s\n", (long long)jint(pos, "indexed"),
           (long long)jint(o, "index_flushed_ts"),
           jint(o, "index_flush_error") ? "  (an index msync failed)" : "");
    printf("messages:  in %lld  out %lld  (%lld bytes in, %lld producers)\n",
           (long long)jint(o, "messages_in"), (long long)jint(o, "messages_out"),
           (long long)jint(o, "bytes_in"), (long long)jint(o, "producers"));
    /* Rings a producer holds, and those whose producer left (the writer drains them). */
    json_t *ra = json_object_get(o, "rings");
    for (size_t i = 0; i < json_array_size(ra); i++) {
        json_t *r = json_array_get(ra, i);
        printf("ring %-4lld  %-8s  pid %-8lld uid %-6lld %lld bytes taken by the writer\n",
               (long long)jint(r, "index"), json_string_value(json_object_get(r, "state")),
               (long long)jint(r, "pid"), (long long)jint(r, "uid"),
               (long long)jint(r, "consumed_bytes"));
    }
    printf("refused:   %lld bad input, %lld disk full, %lld fenced, %lld not master, %lld append "
           "errors\n",
           (long long)jint(o, "rejects"), (long long)jint(o, "refused_disk_full"),
           (long long)jint(o, "refused_fenced"), (long long)jint(o, "refused_not_master"),
           (long long)jint(o, "append_errors"));
    int64_t flushes = jint(o, "flushes");
    printf("flushes:   %lld (average %.3f ms), errors %lld\n", (long long)flushes,
           flushes ? (double)jint(o, "flush_ns_total") / (double)flushes / 1e6 : 0.0,
           (long long)jint(o, "flush_errors"));
    clean_text(o);
    scheduler_text(o);
    gateway_text(o);
    replication_text(o);
    controller_text(o);
    shmqctl_role_text(json_object_get(o, "role"));
    if (jint(o, "fenced_error") != 0) {
        json_t *part = json_object_get(o, "fenced_part");
        printf("FENCED: a %s flush failed (%s); the store takes no writes; the next start cuts "
               "at the last good flush (see <store>/fence-*)\n",
               json_is_string(part) ? json_string_value(part) : "store file",
               shmq_strerror((int)jint(o, "fenced_error")));
    }
    printf("workers:\n  %-11s %-8s %-9s %-9s %-9s %-10s %s\n", "NAME", "PID", "STATE", "RESTARTS",
           "UPTIME", "LAST EXIT", "HEARTBEAT");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(o, "workers"), i, w)
    {
        char wup[32], hb[32] = "-";
        format_duration(jint(w, "uptime_ms"), wup, sizeof(wup));
        json_t *age = json_object_get(w, "heartbeat_age_ms");
        if (json_is_integer(age)) {
            format_duration(json_integer_value(age), hb, sizeof(hb));
            strncat(hb, " ago", sizeof(hb) - strlen(hb) - 1);
        }
        printf("  %-11s %-8lld %-9s %-9lld %-9s %-10lld %s\n",
               json_string_value(json_object_get(w, "name")), (long long)jint(w, "pid"),
               json_string_value(json_object_get(w, "state")), (long long)jint(w, "restarts"),
               jint(w, "pid") > 0 ? wup : "-", (long long)jint(w, "last_exit"), hb);
    }
    json_t *problems = json_object_get(o, "problems");
    if (json_array_size(problems) == 0) {
        printf("health:    ok\n");
    }
    json_array_foreach(problems, i, w)
    {
        printf("health:    NOT OK: %s\n", json_string_value(w));
    }
}

/* {"done":, "total":} of [from, to) reached at pos. */
static json_t *progress_part(int64_t from, int64_t to, int64_t pos)
{
    int64_t total = to > from ? to - from : 0;
    int64_t done = pos > from ? pos - from : 0;
    return json_pack("{s:I,s:I}", "done", (json_int_t)(done < total ? done : total), "total",
                     (json_int_t)total);
}

/*
 * The recovery progress object of the master pid (progress.h) as the "recovery" object:
 * phase, abnormal, scan and sync (bytes done of total); NULL when it has none.
 */
static json_t *recovery_json(const char *root, long pid)
{
    const shmq_ctl_progress_t *g;
    if (shmq_ctl_progress_open(root, &g) < 0) {
        return NULL;
    }
    if (g->pid != pid) {
        shmq_ctl_progress_close(g); /* a stale one: its master is gone */
        return NULL;
    }
    const shmq_recovery_progress_t *p = &g->p;
    uint32_t phase = LOAD(p->phase);
    json_t *r = json_object();
    json_object_set_new(r, "phase", json_string(shmq_recovery_phase_name(phase)));
    json_object_set_new(r, "abnormal", json_boolean(LOAD(p->abnormal) != 0));
    json_object_set_new(r, "scan",
                        progress_part(LOAD(p->scan_from), LOAD(p->scan_to), LOAD(p->scan_pos)));
    json_object_set_new(r, "sync",
                        progress_part(LOAD(p->sync_from), LOAD(p->sync_to), LOAD(p->sync_pos)));
    shmq_ctl_progress_close(g);
    return r;
}

static void recovery_text(json_t *r)
{
    json_t *s = json_object_get(r, "scan"), *y = json_object_get(r, "sync");
    int64_t sd = jint(s, "done"), st = jint(s, "total"), yd = jint(y, "done"),
            yt = jint(y, "total");
    printf("recovery:  phase %s%s: CommitLog checked %lld of %lld bytes (%.0f%%), synced %lld of "
           "%lld bytes (%.0f%%)\n",
           json_string_value(json_object_get(r, "phase")),
           json_is_true(json_object_get(r, "abnormal")) ? " (abnormal)" : "", (long long)sd,
           (long long)st, st ? 100.0 * (double)sd / (double)st : 100.0, (long long)yd,
           (long long)yt, yt ? 100.0 * (double)yd / (double)yt : 100.0);
}

int shmqctl_cmd_status(shmqctl_args_t *a)
{
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, SHMQ_CTL_RDONLY, &ctl);
    if (rc != 0) {
        int64_t age;
        long pid = starting_master(a->cfg.store_path_root_dir, &age);
        json_t *rec = pid > 0 ? recovery_json(a->cfg.store_path_root_dir, pid) : NULL;
        if (pid > 0 && a->json) {
            /* Recovering: the state, for programs waiting for "running". */
            json_t *o = json_object();
            json_object_set_new(o, "state", json_string("recovering"));
            json_object_set_new(o, "store", json_string(a->cfg.store_path_root_dir));
            json_object_set_new(o, "pid", json_integer(pid));
            json_object_set_new(o, "uptime_ms", age >= 0 ? json_integer(age) : json_null());
            json_object_set_new(o, "healthy", json_false());
            json_object_set_new(o, "problems", json_pack("[s]", "the store is recovering"));
            if (rec != NULL) {
                json_object_set(o, "recovery", rec);
            }
            shmqctl_json_print(o);
        } else if (rec != NULL) {
            recovery_text(rec);
        }
        json_decref(rec);
        return rc;
    }
    json_t *o = status_json(&ctl);
    shmq_ctl_detach(&ctl);
    if (!o) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    /* Exit 1 for a store that is not healthy, after printing why. */
    int ret = json_is_true(json_object_get(o, "healthy")) ? SHMQCTL_EXIT_OK : SHMQCTL_EXIT_FAIL;
    if (a->json) {
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : ret;
    }
    status_text(o);
    json_decref(o);
    return ret;
}
