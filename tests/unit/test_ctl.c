/*
 * Unit tests for libshm/shm/ctl.c and libshm/shm/ctl_tables.c: creating and
 * attaching the control block, futex positions across processes, the
 * seqlocked topic table and its lock, the queue table, consumer offsets and
 * their JSON round trip, and the read-only mapping of consumers.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl_fixture.h"
#include "tmp_tree.h"
#include "base/bytes.h"
#include "format/config.h"
#include "shm/ctl.h"
#include "shm/groups.h"
#include "shm/progress.h"
#include "base/clock.h"
#include "shm/stats.h"
#include "format/json_meta.h"
#include "shmq/errors.h"
#include "format/store_files.h"

/* ---- fixtures ------------------------------------------------------------ */

/* A store directory with no control block yet. */
static int setup_dir(void **state)
{
    fixture_t *f = fixture_new();
    *state = f;
    return f == NULL ? -1 : 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void write_full(int fd, const void *p, size_t n)
{
    if (write(fd, p, n) != (ssize_t)n) {
        _exit(90);
    }
}

static bool read_full(int fd, void *p, size_t n)
{
    return read(fd, p, n) == (ssize_t)n;
}

/* Child exit status, or 128 + signal. */
static int child_status(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- naming, creation, attachment ----------------------------------------- */

static void test_name_is_hash_of_realpath(void **state)
{
    fixture_t *f = *state;
    char a[64], b[64], alt[128];
    assert_int_equal(shmq_ctl_name(f->dir, a, sizeof(a)), 0);
    snprintf(alt, sizeof(alt), "%s/./", f->dir);
    assert_int_equal(shmq_ctl_name(alt, b, sizeof(b)), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), strlen("/shmq-") + 16);
    assert_memory_equal(a, "/shmq-", 6);
    assert_int_equal(shmq_ctl_name("/tmp", b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(shmq_ctl_name("/nonexistent/shmq/dir", b, sizeof(b)), -ENOENT);
}

static void test_create_then_attach_sees_config_and_ready(void **state)
{
    fixture_t *f = *state;
    f->cfg.max_message_size = 1000;
    f->cfg.default_topic_queue_nums = 7;
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    const shmq_ctl_header_t *h = &f->ctl.blk->hdr;
    assert_int_equal(h->creator_pid, getpid());
    assert_true(h->generation != 0);
    assert_int_equal(h->ready, 0);
    assert_int_equal(f->ctl.cons->generation, h->generation);
    assert_string_equal(f->ctl.blk->workers[SHMQ_ROLE_DISPATCHER].name, "dispatcher");
    shmq_ctl_publish(&f->ctl.blk->wrote, 4242);
    shmq_ctl_set_ready(&f->ctl);

    for (int ro = 0; ro < 2; ro++) {
        shmq_ctl_t c;
        assert_int_equal(shmq_ctl_attach(f->dir, ro ? SHMQ_CTL_RDONLY : 0, &c), 0);
        assert_int_equal(c.readonly, ro != 0);
        assert_int_equal(c.blk->hdr.ready, 1);
        assert_int_equal(c.blk->hdr.generation, h->generation);
        assert_int_equal(c.blk->hdr.config.default_topic_queue_nums, 7);
        assert_int_equal(c.blk->hdr.config.max_message_size, 1000);
        assert_string_equal(c.blk->hdr.store_root, f->ctl.root);
        assert_int_equal(shmq_ctl_load(&c.blk->wrote), 4242);
        assert_int_equal(c.blk_size, f->ctl.blk_size);
        assert_string_equal(c.name, f->ctl.name);
        shmq_ctl_detach(&c);
        assert_null(c.blk);
    }
}

static void test_ring_size_is_power_of_two_holding_two_messages(void **state)
{
    fixture_t *f = *state;
    f->cfg.max_message_size = 4 * 1024 * 1024;
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    const shmq_ctl_header_t *h = &f->ctl.blk->hdr;
    assert_int_equal(h->ring_size, 16u << 20);
    assert_int_equal(h->ring_count, SHMQ_CTL_MAX_RINGS);
    /* The block holds no ring data (rings are objects of their own) and is allocated. */
    assert_int_equal(h->total_size, (sizeof(shmq_ctl_block_t) + 4095) & ~(size_t)4095);
    assert_int_equal(f->ctl.blk_size, h->total_size);
    shmq_ctl_detach(&f->ctl);
    shmq_ctl_unlink(f->dir);

    f->cfg.max_message_size = 100;
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    assert_int_equal(f->ctl.blk->hdr.ring_size, 1u << 20);
}

static void test_attach_before_ready_returns_eagain(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), -EAGAIN);
    assert_null(c.blk);
    shmq_ctl_set_ready(&f->ctl);
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), 0);
    shmq_ctl_detach(&c);
}

static void test_attach_without_block_returns_not_found(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_NOT_FOUND);
    assert_non_null(strstr(shmq_error_detail(), "is not running"));
    assert_int_equal(shmq_ctl_attach("/nonexistent/shmq/store", 0, &c), SHMQ_E_NOT_FOUND);
    /* After a clean stop (unlink) attaching fails the same way. */
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    shmq_ctl_set_ready(&f->ctl);
    assert_int_equal(shmq_ctl_unlink(f->dir), 0);
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_unlink(f->dir), 0); /* already gone: fine */
}

static void test_attach_to_block_of_dead_master_returns_not_found(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t c;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(0);
    }
    assert_int_equal(child_status(pid), 0);
    f->ctl.blk->hdr.creator_pid = pid; /* a master that died without cleaning up */
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_NOT_FOUND);
    assert_non_null(strstr(shmq_error_detail(), "is gone"));
    f->ctl.blk->hdr.creator_pid = getpid();
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), 0);
    shmq_ctl_detach(&c);
}

static void test_attach_layout_mismatch_returns_version(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t c;
    shmq_ctl_header_t *h = &f->ctl.blk->hdr;

    h->magic = 0x1122334455667788ULL;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_VERSION);
    assert_non_null(strstr(shmq_error_detail(), "not a shmq control block"));
    h->magic = SHMQ_CTL_MAGIC;

    h->version = SHMQ_CTL_VERSION + 1;
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), SHMQ_E_VERSION);
    h->version = SHMQ_CTL_VERSION;

    h->config_size -= 8;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_VERSION);
    h->config_size += 8;

    h->total_size += 4096;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_VERSION);
    h->total_size -= 4096;

    f->ctl.cons->magic = 1;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), SHMQ_E_VERSION);
    f->ctl.cons->magic = SHMQ_CTL_CONS_MAGIC;

    f->ctl.cons->generation ^= 1; /* a consumer area of another master start */
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), -EAGAIN);
    f->ctl.cons->generation ^= 1;

    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), 0);
    shmq_ctl_detach(&c);
}

static void test_create_replaces_stale_block(void **state)
{
    fixture_t *f = *state;
    uint64_t old_gen = f->ctl.blk->hdr.generation;
    shmq_ctl_publish(&f->ctl.blk->wrote, 77);
    shmq_ctl_t fresh;
    /* A new master (holding the store lock) replaces what a dead one left. */
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &fresh), 0);
    assert_true(fresh.blk->hdr.generation != old_gen);
    assert_int_equal(shmq_ctl_load(&fresh.blk->wrote), 0);
    /* The old mapping stays valid for whoever still has it. */
    assert_int_equal(shmq_ctl_load(&f->ctl.blk->wrote), 77);
    shmq_ctl_set_ready(&fresh);
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &c), 0);
    assert_int_equal(c.blk->hdr.generation, fresh.blk->hdr.generation);
    shmq_ctl_detach(&c);
    shmq_ctl_detach(&fresh);
}

static void test_names_of_roles_and_states(void **state)
{
    (void)state;
    const char *roles[] = {"writer",    "flusher", "dispatcher", "indexer",
                           "scheduler", "cleaner", "ha-sender",  "ha-receiver",
                           "metrics",   "gateway", "ctrl-agent"};
    assert_int_equal(sizeof(roles) / sizeof(roles[0]), SHMQ_ROLE_COUNT);
    for (int i = 0; i < SHMQ_ROLE_COUNT; i++) {
        assert_string_equal(shmq_role_name((enum shmq_role)i), roles[i]);
        assert_int_equal(shmq_role_from_name(roles[i]), i);
    }
    assert_int_equal(shmq_role_from_name("master"), -1);
    assert_int_equal(shmq_role_from_name(NULL), -1);
    assert_string_equal(shmq_role_name(SHMQ_ROLE_COUNT), "unknown");
    assert_string_equal(shmq_store_state_name(SHMQ_STATE_RUNNING), "running");
    assert_string_equal(shmq_store_state_name(SHMQ_STATE_FINISHING), "finishing");
    assert_string_equal(shmq_store_state_name(SHMQ_STATE_FAILED), "failed");
    assert_string_equal(shmq_store_state_name(99), "unknown");
    assert_string_equal(shmq_worker_state_name(SHMQ_WORKER_NONE), "none");
    assert_string_equal(shmq_worker_state_name(SHMQ_WORKER_EXITED), "exited");
    assert_string_equal(shmq_worker_state_name(SHMQ_WORKER_FAILED), "failed");
    assert_string_equal(shmq_worker_state_name(6), "unknown");
    int64_t now = shmq_now_ms();
    assert_true(now > 1600000000000LL);
    int64_t m1 = shmq_mono_ms();
    assert_true(shmq_mono_ms() >= m1);
}

/* ---- futex positions ---------------------------------------------------------- */

/* Wait until someone sleeps on the word (bounded). */
static bool wait_for_waiter(_Atomic uint32_t *waiters)
{
    for (int i = 0; i < 20000; i++) {
        if (atomic_load(waiters) != 0) {
            return true;
        }
        sleep_ms(1);
    }
    return false;
}

static void test_publish_wakes_waiting_child(void **state)
{
    fixture_t *f = *state;
    int c2p[2];
    assert_int_equal(pipe(c2p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        if (shmq_ctl_attach(f->dir, 0, &c) != 0) {
            _exit(10);
        }
        for (int64_t target = 100; target <= 300; target += 100) {
            int64_t res[2];
            res[0] = shmq_ctl_wait_pos(&c.blk->wrote, target, 15000);
            res[1] = shmq_ctl_load(&c.blk->wrote);
            write_full(c2p[1], res, sizeof(res));
        }
        shmq_ctl_detach(&c);
        _exit(0);
    }
    close(c2p[1]);
    shmq_ctl_position_t *p = &f->ctl.blk->wrote;
    for (int64_t target = 100; target <= 300; target += 100) {
        /* Publish only once the child sleeps: the wake must reach it. */
        assert_true(wait_for_waiter(&p->waiters));
        uint32_t seq = atomic_load(&p->seq);
        shmq_ctl_publish(p, target);
        assert_true(atomic_load(&p->seq) != seq); /* a sleeper was seen: seq bumped */
        int64_t res[2];
        assert_true(read_full(c2p[0], res, sizeof(res)));
        assert_int_equal(res[0], 0);
        assert_int_equal(res[1], target);
    }
    close(c2p[0]);
    assert_int_equal(child_status(pid), 0);
    assert_int_equal(atomic_load(&p->waiters), 0);
}

static void test_wait_pos_times_out(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_position_t *p = &f->ctl.blk->flushed;
    shmq_ctl_publish(p, 10);
    assert_int_equal(shmq_ctl_wait_pos(p, 11, 30), -ETIMEDOUT);
    assert_int_equal(shmq_ctl_wait_pos(p, 11, 0), -ETIMEDOUT);
    assert_int_equal(atomic_load(&p->waiters), 0);
    assert_int_equal(shmq_ctl_wait_pos(p, 10, 0), 0);
    assert_int_equal(shmq_ctl_wait_pos(p, 5, 1000), 0);
}

static void test_publish_without_sleepers_leaves_seq(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_position_t *p = &f->ctl.blk->dispatched;
    uint32_t seq = atomic_load(&p->seq);
    shmq_ctl_publish(p, 1);
    shmq_ctl_publish(p, 2);
    assert_int_equal(atomic_load(&p->seq), seq); /* no sleeper: no bump, no syscall */
    assert_int_equal(shmq_ctl_load(p), 2);
    uint32_t w = atomic_load(&f->ctl.wake->writer_wake.seq);
    shmq_ctl_wake(&f->ctl.wake->writer_wake);
    assert_int_equal(atomic_load(&f->ctl.wake->writer_wake.seq), w);
}

/* The set's gateways (controller mode): a reader gets what was published whole; a writer
 * killed mid-change (odd seq) makes readers give up with -EAGAIN, and the next publish (the
 * restarted ctrl-agent) repairs it. */
static void test_route_seqlock(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_route_t r, got;
    assert_int_equal(shmq_ctl_route_get(&f->ctl, &got), 0);
    assert_int_equal(got.count, 0);
    memset(&r, 0, sizeof(r));
    r.updates = 1;
    r.master_id = 2;
    r.master_epoch = 3;
    r.count = 2;
    r.e[0].broker_id = 2;
    r.e[0].master = 1;
    snprintf(r.e[0].gateway, sizeof(r.e[0].gateway), "127.0.0.1:10921");
    r.e[1].broker_id = 1;
    snprintf(r.e[1].gateway, sizeof(r.e[1].gateway), "127.0.0.1:10911");
    shmq_ctl_route_publish(&f->ctl, &r);
    assert_int_equal(shmq_ctl_route_get(&f->ctl, &got), 0);
    assert_memory_equal(&got, &r, sizeof(r));
    assert_int_equal(atomic_load(&f->ctl.blk->controller.route_seq) & 1, 0);

    /* a writer killed inside a change */
    atomic_fetch_add(&f->ctl.blk->controller.route_seq, 1);
    assert_int_equal(shmq_ctl_route_get(&f->ctl, &got), -EAGAIN);
    r.updates = 2;
    shmq_ctl_route_publish(&f->ctl, &r);
    assert_int_equal(atomic_load(&f->ctl.blk->controller.route_seq) & 1, 0);
    assert_int_equal(shmq_ctl_route_get(&f->ctl, &got), 0);
    assert_int_equal(got.updates, 2);
}

static void test_futex_wait_returns_eagain_when_word_differs(void **state)
{
    (void)state;
    _Atomic uint32_t word = 5;
    assert_int_equal(shmq_futex_wait(&word, 4, 1000), -EAGAIN);
    assert_int_equal(shmq_futex_wait(&word, 5, 10), -ETIMEDOUT);
    assert_int_equal(shmq_futex_wake(&word, INT32_MAX), 0);
}

static bool flag_set(void *arg)
{
    return atomic_load((_Atomic uint64_t *)arg) != 0;
}

static void test_sleep_returns_ready_or_is_woken(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_wake_t *w = &f->ctl.wake->writer_wake;
    _Atomic uint64_t *flag = &f->ctl.blk->counters.messages_in;
    atomic_store(flag, 1);
    assert_int_equal(shmq_ctl_sleep(w, flag_set, (void *)flag, 10000), 1);
    atomic_store(flag, 0);
    assert_int_equal(shmq_ctl_sleep(w, flag_set, (void *)flag, 10), 0); /* timed out */
    assert_int_equal(atomic_load(&w->waiters), 0);

    int c2p[2];
    assert_int_equal(pipe(c2p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        if (shmq_ctl_attach(f->dir, 0, &c) != 0) {
            _exit(10);
        }
        _Atomic uint64_t *cflag = &c.blk->counters.messages_in;
        int rc = 0;
        for (int i = 0; i < 100 && !flag_set((void *)cflag); i++) {
            rc = shmq_ctl_sleep(&c.wake->writer_wake, flag_set, (void *)cflag, 15000);
        }
        uint64_t seen[2] = {(uint64_t)rc, atomic_load(cflag)};
        write_full(c2p[1], seen, sizeof(seen));
        _exit(0);
    }
    close(c2p[1]);
    assert_true(wait_for_waiter(&w->waiters));
    uint32_t seq = atomic_load(&w->seq);
    atomic_store(flag, 9);
    shmq_ctl_wake(w);
    assert_true(atomic_load(&w->seq) != seq);
    uint64_t seen[2];
    assert_true(read_full(c2p[0], seen, sizeof(seen)));
    close(c2p[0]);
    assert_int_equal(seen[1], 9);
    assert_int_equal(child_status(pid), 0);
}

/* A child that attaches and sleeps on the writer's wake word (how == 0) or waits for the
 * dispatched position to pass 1<<40 (how == 1), for a minute; the caller kills it. */
static pid_t sleeping_child(fixture_t *f, int how)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        if (shmq_ctl_attach(f->dir, 0, &c) != 0) {
            _exit(10);
        }
        for (;;) {
            if (how == 0) {
                shmq_ctl_sleep(&c.wake->writer_wake, NULL, NULL, 60000);
            } else {
                shmq_ctl_wait_pos(&c.blk->dispatched, (int64_t)1 << 40, 60000);
            }
        }
    }
    return pid;
}

/* kill -9 a sleeper: its registration is left behind; the next wake clears it, and the
 * publishes after that make no system call (not one each for the rest of the run). */
static void test_sleeper_killed_costs_one_wake_not_one_per_publish(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_wake_t *w = &f->ctl.wake->writer_wake;
    shmq_ctl_position_t *p = &f->ctl.blk->dispatched;
    for (int how = 0; how < 2; how++) {
        _Atomic uint32_t *waiters = how == 0 ? &w->waiters : &p->waiters;
        pid_t pid = sleeping_child(f, how);
        assert_true(wait_for_waiter(waiters));
        sleep_ms(20); /* in FUTEX_WAIT by now (or about to be: the count is what matters) */
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(child_status(pid), 128 + SIGKILL);
        assert_int_equal(atomic_load(waiters), 1); /* the dead sleeper's registration */
        uint64_t before = shmq_ctl_wake_syscalls();
        for (int i = 1; i <= 5000; i++) {
            if (how == 0) {
                shmq_ctl_wake(w);
            } else {
                shmq_ctl_publish(p, i);
            }
        }
        /* One wake for 5,000 publishes: the first clears the dead sleeper's registration. */
        assert_int_equal(shmq_ctl_wake_syscalls() - before, 1);
        assert_int_equal(atomic_load(waiters), 0);
    }
}

/* A wake consumes the registrations: a burst of publishes to one sleeper makes one wake
 * system call, however late the sleeper runs after it. */
static void test_burst_of_publishes_wakes_a_sleeper_once(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_position_t *p = &f->ctl.blk->wrote;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        if (shmq_ctl_attach(f->dir, 0, &c) != 0) {
            _exit(10);
        }
        _exit(shmq_ctl_wait_pos(&c.blk->wrote, 1, 60000) == 0 ? 0 : 11);
    }
    assert_true(wait_for_waiter(&p->waiters));
    uint64_t before = shmq_ctl_wake_syscalls();
    for (int i = 1; i <= 5000; i++) {
        shmq_ctl_publish(p, i);
    }
    assert_int_equal(shmq_ctl_wake_syscalls() - before, 1);
    assert_int_equal(child_status(pid), 0);
    assert_int_equal(atomic_load(&p->waiters), 0);
    /* Nobody sleeps: no system call at all. */
    before = shmq_ctl_wake_syscalls();
    for (int i = 5001; i <= 10000; i++) {
        shmq_ctl_publish(p, i);
    }
    assert_int_equal(shmq_ctl_wake_syscalls() - before, 0);
}

/* The wake words are client-writable: scribbled values cost a spurious wake or a sleeper's
 * timeout, never a crash or an unbounded sleep. */
static void test_scribbled_wake_word_costs_latency_only(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_wake_t *w = &f->ctl.wake->writer_wake;
    atomic_store(&w->word, UINT64_MAX); /* seq and waiters all ones */
    uint64_t before = shmq_ctl_wake_syscalls();
    shmq_ctl_wake(w);
    shmq_ctl_wake(w);
    assert_int_equal(shmq_ctl_wake_syscalls() - before, 1);
    assert_int_equal(atomic_load(&w->waiters), 0);
    assert_int_equal(atomic_load(&w->seq), 0); /* wrapped */
    /* Nobody wakes: the sleep ends at its timeout and takes its registration back. */
    int64_t t0 = shmq_mono_ns();
    assert_int_equal(shmq_ctl_sleep(w, NULL, NULL, 20), 0);
    assert_true(shmq_mono_ns() - t0 < 5LL * 1000 * 1000 * 1000);
    assert_int_equal(atomic_load(&w->waiters), 0);
    /* A count at its maximum: registering wraps it (the sleep still ends at its timeout). */
    atomic_store(&w->waiters, UINT32_MAX);
    assert_int_equal(shmq_ctl_sleep(w, NULL, NULL, 5), 0);
    shmq_ctl_wake(w);
    assert_int_equal(atomic_load(&w->waiters), 0);
}

/* ---- statistics (stats.h) --------------------------------------------------------------- */

static void test_histogram_bucket_is_the_first_bound_at_or_above(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_hist_t *h = &f->ctl.blk->counters.flush_latency;
    const shmq_hist_bounds_t *b = &shmq_hist_flush;
    shmq_hist_add(h, b, b->ns[0], 1);                /* le the first bound */
    shmq_hist_add(h, b, b->ns[0] + 1, 2);            /* the second (weight 2) */
    shmq_hist_add(h, b, -5, 1);                      /* a clock that went back: 0 */
    shmq_hist_add(h, b, b->ns[b->count - 1] + 1, 1); /* above every bound: +Inf */
    assert_int_equal(atomic_load(&h->bucket[0]), 2);
    assert_int_equal(atomic_load(&h->bucket[1]), 2);
    assert_int_equal(atomic_load(&h->bucket[b->count]), 1);
    assert_int_equal(atomic_load(&h->count), 5);
    assert_int_equal(atomic_load(&h->sum_ns),
                     (uint64_t)(b->ns[0] + 2 * (b->ns[0] + 1) + b->ns[b->count - 1] + 1));
    for (int i = 1; i < b->count; i++) {
        assert_true(b->ns[i] > b->ns[i - 1]);
    }
    assert_true(shmq_hist_send.count <= SHMQ_HIST_BOUNDS && b->count <= SHMQ_HIST_BOUNDS);
}

static void test_stamps_are_taken_once_in_order_up_to_the_position(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_stamps_t *s = &f->ctl.blk->stamps;
    shmq_ctl_hist_t *h = &f->ctl.blk->counters.append_dispatch;
    uint64_t cursor = shmq_stamps_now(s);
    int64_t now = shmq_now_ns();
    shmq_stamp_put(s, 100, now - 2000000000LL, 3); /* 2 s before: above 1 s, at most 10 s */
    shmq_stamp_put(s, 200, now - 2000000000LL, 4);
    shmq_stamp_put(s, 300, now + 3600LL * 1000000000, 5);   /* a clock ahead: 0 */
    shmq_stamps_take(s, &cursor, 150, h, &shmq_hist_stage); /* the first only */
    assert_int_equal(atomic_load(&h->count), 3);
    assert_int_equal(cursor, 1);
    shmq_stamps_take(s, &cursor, 150, h, &shmq_hist_stage); /* taken once */
    assert_int_equal(atomic_load(&h->count), 3);
    shmq_stamps_take(s, &cursor, 1000, h, &shmq_hist_stage);
    assert_int_equal(atomic_load(&h->count), 12);
    assert_int_equal(atomic_load(&h->bucket[0]), 5); /* the one from ahead counts as 0 */
    assert_int_equal(atomic_load(&h->bucket[shmq_hist_stage.count - 1]), 7);
    assert_int_equal(cursor, 3);
    /* A reader far behind skips the overwritten stamps and takes the last SHMQ_STAMPS. */
    for (int i = 0; i < SHMQ_STAMPS + 10; i++) {
        shmq_stamp_put(s, 1000 + i, now, 1);
    }
    shmq_stamps_take(s, &cursor, INT64_MAX, h, &shmq_hist_stage);
    assert_int_equal(atomic_load(&h->count), 12 + SHMQ_STAMPS);
    assert_int_equal(cursor, shmq_stamps_now(s));
    /* A cursor past the stamps (a new control block) starts again from them. */
    cursor = shmq_stamps_now(s) + 99;
    shmq_stamps_take(s, &cursor, INT64_MAX, h, &shmq_hist_stage);
    assert_int_equal(cursor, shmq_stamps_now(s));
    assert_int_equal(atomic_load(&h->count), 12 + SHMQ_STAMPS);
}

/* shmq_stamps_take_inline() (the dispatcher's) against shmq_stamps_take(): the same sequence
 * as above, every cursor and count equal; a slot the writer reuses while it is read. */
static void test_inline_stamps_take_equals_take(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_stamps_t *s = &f->ctl.blk->stamps;
    shmq_ctl_hist_t *h = &f->ctl.blk->counters.append_dispatch;
    shmq_ctl_hist_t *g = &f->ctl.blk->counters.append_flush;
    uint64_t ci = shmq_stamps_now(s), co = ci;
    int64_t now = shmq_now_ns();
    static const int64_t positions[] = {50, 150, 150, 250, 1000, 1000, 5000, INT64_MAX};
    for (int round = 0; round < 3000; round++) {
        if (round % 3 != 2) {
            /* An hour ahead (0) or behind (the last bucket): the same bucket for both takes,
             * however long the test runs. */
            int64_t hour = 3600LL * 1000000000;
            shmq_stamp_put(s, 100 + round * 10, round % 2 ? now + hour : now - hour, 1 + round % 3);
        }
        if (round == 1000) {
            /* A reader far behind; an hour back too: a stamp of now would give the two
             * takes, made moments apart, latencies that a bucket's bound can split. */
            for (int i = 0; i < SHMQ_STAMPS + 10; i++) {
                shmq_stamp_put(s, 100 + round * 10, now - 3600LL * 1000000000, 1);
            }
        }
        int64_t pos = round % 5 == 0 ? positions[round % 8] : 100 + (round - 3) * 10;
        shmq_stamps_take_inline(s, &ci, pos, h, &shmq_hist_stage);
        shmq_stamps_take(s, &co, pos, g, &shmq_hist_stage);
        assert_int_equal(ci, co);
        assert_int_equal(atomic_load(&h->count), atomic_load(&g->count));
        for (int i = 0; i <= SHMQ_HIST_BOUNDS; i++) {
            assert_int_equal(atomic_load(&h->bucket[i]), atomic_load(&g->bucket[i]));
        }
    }
    assert_true(atomic_load(&h->count) > 1000);
    /* A cursor past the stamps (a new control block) starts again from them. */
    ci = co = shmq_stamps_now(s) + 99;
    shmq_stamps_take_inline(s, &ci, INT64_MAX, h, &shmq_hist_stage);
    shmq_stamps_take(s, &co, INT64_MAX, g, &shmq_hist_stage);
    assert_int_equal(ci, co);
}

static void test_shared_histogram_adds_only_the_buckets_used(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_hist_t *h = &f->ctl.wake->store_pull;
    uint64_t b[SHMQ_HIST_BOUNDS + 1] = {0};
    b[2] = 7;
    b[SHMQ_HIST_BOUNDS] = 1;
    shmq_hist_add_shared(h, b, 8, 1234);
    shmq_hist_add_shared(h, b, 8, 1234);
    assert_int_equal(atomic_load(&h->bucket[2]), 14);
    assert_int_equal(atomic_load(&h->bucket[SHMQ_HIST_BOUNDS]), 2);
    assert_int_equal(atomic_load(&h->bucket[0]), 0);
    assert_int_equal(atomic_load(&h->count), 16);
    assert_int_equal(atomic_load(&h->sum_ns), 2468);
}

static void test_topic_counts_start_again_when_the_slot_takes_a_new_topic(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_topic_t t;
    const shmq_ctl_topic_t *e;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicC", 4, 4, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_get_entry(&f->ctl, "TopicC", 6, &t, &e), 0);
    shmq_ctl_block_t *b = f->ctl.blk;
    shmq_ctl_topic_count_t *c = &b->topic_counts[e - b->topics];
    shmq_topic_count_add(b, e, t.incarnation, 3, 300);
    shmq_topic_count_add(b, e, t.incarnation, 2, 200);
    assert_int_equal(atomic_load(&c->messages_in), 5);
    assert_int_equal(atomic_load(&c->bytes_in), 500);
    /* An update is not a new topic: the counts stay. */
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicC", 8, 8, 6, false), 0);
    uint32_t inc = t.incarnation;
    assert_int_equal(shmq_ctl_topic_get_entry(&f->ctl, "TopicC", 6, &t, &e), 0);
    assert_int_equal(t.incarnation, inc);
    /* Deleted and created again in its slot: a new incarnation, counted from 0. */
    assert_int_equal(shmq_ctl_topic_delete(&f->ctl, "TopicC"), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicC", 4, 4, 6, false), 0);
    const shmq_ctl_topic_t *e2;
    assert_int_equal(shmq_ctl_topic_get_entry(&f->ctl, "TopicC", 6, &t, &e2), 0);
    assert_ptr_equal(e2, e);
    assert_int_not_equal(t.incarnation, inc);
    shmq_topic_count_add(b, e2, t.incarnation, 1, 100);
    assert_int_equal(atomic_load(&c->messages_in), 1);
    assert_int_equal(atomic_load(&c->bytes_in), 100);
    assert_int_equal(atomic_load(&c->incarnation), t.incarnation);
    /* The slot's snapshot for readers (metrics) */
    shmq_ctl_topic_t at;
    assert_int_equal(shmq_ctl_topic_at(&f->ctl, (size_t)(e - b->topics), &at), 0);
    assert_string_equal(at.name, "TopicC");
    shmq_ctl_topic_unlock(&f->ctl);
}

/* ---- topics ----------------------------------------------------------------------- */

static void test_topic_put_get_delete_and_reuse(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_topic_t t;
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicA", 6, &t), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicA", 8, 4, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicB", 2, 2, 6, true), 0);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicA", 6, &t), 0);
    assert_string_equal(t.name, "TopicA");
    assert_int_equal(t.read_queue_nums, 8);
    assert_int_equal(t.write_queue_nums, 4);
    assert_int_equal(t.perm, 6);
    assert_int_equal(t.order, 0);
    /* Lookups take (name, len): a prefix or longer name is another topic. */
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicABC", 5, &t), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicBxyz", 6, &t), 0);
    assert_string_equal(t.name, "TopicB");
    assert_int_equal(t.order, 1);

    /* Update in place. */
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "TopicA", 16, 16, 4, true), 0);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicA", 6, &t), 0);
    assert_int_equal(t.read_queue_nums, 16);
    assert_int_equal(t.perm, 4);

    assert_int_equal(shmq_ctl_topic_delete(&f->ctl, "TopicA"), 0);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicA", 6, &t), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_topic_delete(&f->ctl, "TopicA"), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "TopicB", 6, &t), 0);

    /* Many topics (probe chains through deleted slots), deleted slots reused. */
    char name[32];
    for (int i = 0; i < SHMQ_CTL_MAX_TOPICS - 1; i++) {
        snprintf(name, sizeof(name), "T%d", i);
        assert_int_equal(shmq_ctl_topic_put(&f->ctl, name, i, i, 6, false), 0);
    }
    /* TopicB plus 1023 others: full, except the deleted TopicA slot was reused. */
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "OneTooMany", 1, 1, 6, false), SHMQ_E_RANGE);
    assert_int_equal(shmq_ctl_topic_delete(&f->ctl, "T17"), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "OneTooMany", 1, 1, 6, false), 0);
    for (int i = 0; i < SHMQ_CTL_MAX_TOPICS - 1; i++) {
        snprintf(name, sizeof(name), "T%d", i);
        int rc = shmq_ctl_topic_get(&f->ctl, name, strlen(name), &t);
        if (i == 17) {
            assert_int_equal(rc, SHMQ_E_NOT_FOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(t.read_queue_nums, i);
        }
    }
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "OneTooMany", 10, &t), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "", 1, 1, 6, false), SHMQ_E_TOPIC);
    shmq_ctl_topic_unlock(&f->ctl);
}

static int count_topic(const shmq_ctl_topic_t *t, void *arg)
{
    int *n = arg;
    (*n)++;
    return strcmp(t->name, "stop") == 0 ? 42 : 0;
}

static void test_topic_foreach_visits_active_topics(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "a", 1, 1, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "b", 1, 1, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "c", 1, 1, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_delete(&f->ctl, "b"), 0);
    int n = 0;
    assert_int_equal(shmq_ctl_topic_foreach(&f->ctl, count_topic, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "stop", 1, 1, 6, false), 0);
    n = 0;
    assert_int_equal(shmq_ctl_topic_foreach(&f->ctl, count_topic, &n), 42);
    shmq_ctl_topic_unlock(&f->ctl);
}

struct seqlock_run {
    shmq_ctl_t *ctl;
    _Atomic int done;
    int rc;
};

static void *topic_updater(void *arg)
{
    struct seqlock_run *r = arg;
    r->rc = shmq_ctl_topic_lock(r->ctl, 5000);
    for (int i = 1; r->rc == 0 && i <= 100000; i++) {
        /* Fields derived from each other: a torn read shows. */
        r->rc = shmq_ctl_topic_put(r->ctl, "Hot", i, i, (i * 7) & 0xffff, (i & 1) != 0);
        /* Churn a neighbour: deletes and re-inserts in the probe chains. */
        if (r->rc == 0 && (i % 3) == 0) {
            r->rc = (i % 2) ? shmq_ctl_topic_delete(r->ctl, "Cold")
                            : shmq_ctl_topic_put(r->ctl, "Cold", 1, 1, 6, false);
        }
    }
    shmq_ctl_topic_unlock(r->ctl);
    atomic_store(&r->done, 1);
    return NULL;
}

static void test_topic_seqlock_reader_never_sees_torn_entry(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "Hot", 0, 0, 0, false), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "Cold", 1, 1, 6, false), 0);
    shmq_ctl_topic_unlock(&f->ctl);

    struct seqlock_run r = {.ctl = &f->ctl};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, topic_updater, &r), 0);
    long reads = 0, torn = 0, missing = 0;
    int32_t last = -1;
    bool went_back = false;
    bool finished;
    do { /* at least one read, however the threads are scheduled */
        finished = atomic_load(&r.done);
        shmq_ctl_topic_t t;
        if (shmq_ctl_topic_get(&f->ctl, "Hot", 3, &t) != 0) {
            missing++;
            continue;
        }
        reads++;
        if (t.write_queue_nums != t.read_queue_nums ||
            t.perm != ((t.read_queue_nums * 7) & 0xffff) || t.order != (t.read_queue_nums & 1)) {
            torn++;
        }
        went_back |= t.read_queue_nums < last;
        last = t.read_queue_nums;
    } while (!finished);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(torn, 0);
    assert_int_equal(missing, 0);
    assert_false(went_back);
    assert_true(reads > 0);
    shmq_ctl_topic_t t;
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "Hot", 3, &t), 0);
    assert_int_equal(t.read_queue_nums, 100000);
}

/* The sync-state set (ctl_sss.c): none until published; a reader sees whole sets only. */
struct sss_run {
    shmq_ctl_controller_t *cs;
    _Atomic bool done;
};

static void *sss_updater(void *arg)
{
    struct sss_run *r = arg;
    for (int32_t e = 1; e <= 20000; e++) {
        shmq_ctl_sss_t set = {.count = (uint32_t)(e % 3) + 1, .epoch = e, .master = 1};
        for (uint32_t i = 0; i < set.count; i++) {
            set.ids[i] = e * 10 + i; /* every id names the set's epoch */
        }
        shmq_ctl_sss_publish(r->cs, &set);
    }
    atomic_store(&r->done, true);
    return NULL;
}

static void test_sync_state_set_reader_sees_whole_sets(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_controller_t *cs = &f->ctl.blk->controller;
    shmq_ctl_sss_t got;
    assert_int_equal(shmq_ctl_sss_copy(cs, &got), SHMQ_E_NOT_FOUND);
    shmq_ctl_sss_t one = {.count = 2, .epoch = 4, .master = 1, .ids = {1, 3}};
    shmq_ctl_sss_publish(cs, &one);
    assert_int_equal(shmq_ctl_sss_copy(cs, &got), 0);
    assert_int_equal(got.count, 2);
    assert_int_equal(got.epoch, 4);
    assert_true(shmq_ctl_sss_has(&got, 3));
    assert_false(shmq_ctl_sss_has(&got, 2));
    uint64_t gen = got.gen;
    struct sss_run r = {.cs = cs};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sss_updater, &r), 0);
    long reads = 0, torn = 0;
    bool finished;
    do {
        finished = atomic_load(&r.done);
        if (shmq_ctl_sss_copy(cs, &got) != 0) {
            continue;
        }
        reads++;
        bool whole = got.count == (uint32_t)(got.epoch % 3) + 1 || got.epoch == 4;
        for (uint32_t i = 0; i < got.count && got.epoch != 4; i++) {
            whole = whole && got.ids[i] == got.epoch * 10 + (int64_t)i;
        }
        torn += whole ? 0 : 1;
    } while (!finished);
    pthread_join(th, NULL);
    assert_int_equal(torn, 0);
    assert_true(reads > 0);
    assert_int_equal(shmq_ctl_sss_copy(cs, &got), 0);
    assert_int_equal(got.epoch, 20000);
    assert_true(got.gen == gen + 20000);
}

/* ---- the checkpoint's mark (shmq_ctl_cq_mark_t) and a process's marks ------------ */

/* The time every test publication gives a position: a read that pairs a position with
 * another publication's time shows. */
static int64_t mark_ts_of(int64_t pos)
{
    return pos / 1000 * 3 + 1;
}

static void test_cq_mark_reads_whole_publications_only(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_cq_mark_t *m = &f->ctl.blk->cq_mark;
    int64_t pos = -1, ts = -1;
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), SHMQ_E_NOT_FOUND);
    shmq_ctl_cq_mark_publish(m, 1000, 4);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 1000 && ts == 4);
    shmq_ctl_cq_mark_publish(m, 2000, 7); /* gen 2, slot 0 */
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 2000 && ts == 7);
    uint64_t g = atomic_load(&m->gen);
    assert_int_equal(g, 2);

    /* A slot gen names but whose rewrite has begun (gen_begin ahead): refused, not mixed. */
    shmq_ctl_mark_slot_t *s = &m->slot[g & 1];
    atomic_store(&s->gen_begin, g + 2);
    atomic_store(&s->pos, 4000);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), -EAGAIN);
    /* ...or whose closing stamp is not its generation: refused. */
    atomic_store(&s->gen_begin, g);
    atomic_store(&s->gen_end, g - 2);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), -EAGAIN);
    atomic_store(&s->gen_end, g);
    atomic_store(&s->pos, 2000);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 2000 && ts == 7);

    /* A writer killed after filling the other slot, before (or after) closing it, and
     * before gen named it: the previous publication is read whole. */
    shmq_ctl_mark_slot_t *o = &m->slot[(g + 1) & 1];
    atomic_store(&o->gen_begin, g + 1);
    atomic_store(&o->pos, 3000);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 2000 && ts == 7);
    atomic_store(&o->ts, 10);
    atomic_store(&o->gen_end, g + 1);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 2000 && ts == 7);
    /* The next writer (a restarted dispatcher) writes that slot again and names it. */
    shmq_ctl_cq_mark_publish(m, 3500, 11);
    assert_int_equal(atomic_load(&m->gen), g + 1);
    assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
    assert_true(pos == 3500 && ts == 11);
}

/* A writer in another process publishing as fast as it can, then killed at a random
 * moment (mid-publication, likely): the reader never pairs a position with another
 * publication's time, positions never go back, and a new writer carries on. */
static void test_cq_mark_reader_never_mixes_two_publications_of_another_process(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_cq_mark_t *m = &f->ctl.blk->cq_mark;
    shmq_ctl_cq_mark_publish(m, 1000, mark_ts_of(1000));
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int64_t p0, t0;
            if (shmq_ctl_cq_mark_read(m, &p0, &t0) != 0) {
                _exit(1);
            }
            for (int64_t pos = p0 + 1000;; pos += 1000) {
                shmq_ctl_cq_mark_publish(m, pos, mark_ts_of(pos));
            }
        }
        long reads = 0, mixed = 0, back = 0, busy = 0;
        int64_t last = 0;
        int64_t t_end = shmq_mono_ms() + 150 + 50 * round;
        while (shmq_mono_ms() < t_end) {
            int64_t pos, ts;
            int rc = shmq_ctl_cq_mark_read(m, &pos, &ts);
            if (rc == -EAGAIN) {
                busy++;
                continue;
            }
            assert_int_equal(rc, 0);
            reads++;
            mixed += ts != mark_ts_of(pos);
            back += pos < last;
            last = pos;
        }
        kill(pid, SIGKILL);
        assert_int_equal(child_status(pid), 128 + SIGKILL);
        assert_int_equal(mixed, 0);
        assert_int_equal(back, 0);
        assert_true(reads > 0);
        (void)busy;
        /* Whatever the kill left: the last whole publication, then the next writer's. */
        int64_t pos, ts;
        assert_int_equal(shmq_ctl_cq_mark_read(m, &pos, &ts), 0);
        assert_true(pos >= last && ts == mark_ts_of(pos));
        shmq_ctl_cq_mark_publish(m, pos + 1000, mark_ts_of(pos + 1000));
        int64_t pos2, ts2;
        assert_int_equal(shmq_ctl_cq_mark_read(m, &pos2, &ts2), 0);
        assert_true(pos2 == pos + 1000 && ts2 == mark_ts_of(pos2));
    }
}

/* The highest offered boundary at or below upto, by the definition (every boundary kept). */
static bool marks_ref(const int64_t *offered, int n, int64_t upto, int64_t *pos)
{
    for (int i = n; i-- > 0;) {
        if (offered[i] <= upto) {
            *pos = offered[i];
            return true;
        }
    }
    return false;
}

/* The marks list against a list that keeps every boundary: it returns only boundaries
 * offered, with their times, at or below the limit; the newest when it is below; never
 * one below what it returned before; and ignores what is not increasing. */
static void test_marks_take_only_offered_boundaries_at_or_below_the_limit(void **state)
{
    (void)state;
    shmq_marks_t l;
    shmq_marks_init(&l);
    int64_t pos, ts;
    assert_false(shmq_marks_take(&l, INT64_MAX, &pos, &ts));
    shmq_marks_add(&l, 5000, mark_ts_of(5000));
    assert_false(shmq_marks_take(&l, 4999, &pos, &ts));
    shmq_marks_add(&l, 5000, 999); /* not above the newest: ignored */
    shmq_marks_add(&l, 4000, 999);
    assert_true(shmq_marks_take(&l, 5000, &pos, &ts));
    assert_true(pos == 5000 && ts == mark_ts_of(5000));

    static int64_t offered[200000];
    int n = 0;
    int64_t next = 6000, last_taken = 5000, upto = 5000;
    offered[n++] = 5000;
    srandom(7);
    long takes = 0, coarse = 0;
    for (int step = 0; step < 400000; step++) {
        if (random() % 8 != 0 || n < 2) {
            if (n < (int)(sizeof(offered) / sizeof(offered[0]))) {
                offered[n++] = next;
                shmq_marks_add(&l, next, mark_ts_of(next));
            }
            next += 1000 * (1 + random() % 3);
            continue;
        }
        /* A limit that moves forward, anywhere between boundaries. */
        upto += random() % (next - upto + 1);
        bool got = shmq_marks_take(&l, upto, &pos, &ts);
        int64_t ref;
        assert_true(marks_ref(offered, n, upto, &ref));
        assert_true(got);
        takes++;
        assert_true(pos <= upto);
        assert_true(pos >= last_taken);
        assert_int_equal(ts, mark_ts_of(pos));
        if (upto >= offered[n - 1]) {
            assert_true(pos == offered[n - 1]); /* the newest, exactly */
        }
        coarse += pos != ref;
        last_taken = pos;
        assert_true(l.n <= SHMQ_MARKS);
    }
    assert_true(takes > 1000);
    (void)coarse;

    /* Many boundaries, no take: the list spans them all; the oldest and newest held, and
     * any limit between finds a boundary not far below it. */
    shmq_marks_init(&l);
    for (int64_t p = 1000; p <= 1000000; p += 1000) {
        shmq_marks_add(&l, p, mark_ts_of(p));
    }
    assert_true(l.n <= SHMQ_MARKS && l.n >= SHMQ_MARKS / 2);
    assert_int_equal(l.pos[0], 1000);
    assert_int_equal(l.last_pos, 1000000);
    shmq_marks_t copy = l;
    assert_true(shmq_marks_take(&copy, 500500, &pos, &ts));
    assert_true(pos <= 500500 && ts == mark_ts_of(pos));
    assert_true(500500 - pos <= (int64_t)l.every * 2 * 1000);
    copy = l;
    assert_false(shmq_marks_take(&copy, 999, &pos, &ts));
    assert_memory_equal(&copy, &l, sizeof(l)); /* nothing changed */
}

static void test_topic_lock_repairs_entry_left_mid_change(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_topic_t t;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "X", 3, 3, 6, false), 0);
    shmq_ctl_topic_unlock(&f->ctl);
    /* A writer killed inside a change leaves an odd sequence number. */
    for (int i = 0; i < SHMQ_CTL_MAX_TOPICS; i++) {
        if (strcmp(f->ctl.blk->topics[i].name, "X") == 0) {
            atomic_fetch_add(&f->ctl.blk->topics[i].seq, 1);
        }
    }
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "X", 1, &t), -EAGAIN); /* bounded wait */
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    shmq_ctl_topic_unlock(&f->ctl);
    assert_int_equal(shmq_ctl_topic_get(&f->ctl, "X", 1, &t), 0);
    assert_int_equal(t.read_queue_nums, 3);
}

static void test_topic_lock_excludes_child_until_released(void **state)
{
    fixture_t *f = *state;
    int p2c[2], c2p[2];
    assert_int_equal(pipe(p2c), 0);
    assert_int_equal(pipe(c2p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        char go;
        if (shmq_ctl_attach(f->dir, 0, &c) != 0) {
            _exit(10);
        }
        int rc[2];
        if (!read_full(p2c[0], &go, 1)) {
            _exit(11);
        }
        rc[0] = shmq_ctl_topic_lock(&c, 20); /* held by the parent */
        write_full(c2p[1], &rc[0], sizeof(rc[0]));
        if (!read_full(p2c[0], &go, 1)) {
            _exit(12);
        }
        rc[1] = shmq_ctl_topic_lock(&c, 10000); /* released by now */
        write_full(c2p[1], &rc[1], sizeof(rc[1]));
        shmq_ctl_topic_unlock(&c);
        shmq_ctl_detach(&c);
        _exit(0);
    }
    int rc;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    write_full(p2c[1], "L", 1);
    assert_true(read_full(c2p[0], &rc, sizeof(rc)));
    assert_int_equal(rc, -ETIMEDOUT);
    shmq_ctl_topic_unlock(&f->ctl);
    write_full(p2c[1], "R", 1);
    assert_true(read_full(c2p[0], &rc, sizeof(rc)));
    assert_int_equal(rc, 0);
    assert_int_equal(child_status(pid), 0);
    close(p2c[0]);
    close(p2c[1]);
    close(c2p[0]);
    close(c2p[1]);
}

static void test_topic_lock_released_when_holder_killed(void **state)
{
    fixture_t *f = *state;
    int c2p[2];
    assert_int_equal(pipe(c2p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shmq_ctl_t c;
        int rc = shmq_ctl_attach(f->dir, 0, &c);
        if (rc == 0) {
            rc = shmq_ctl_topic_lock(&c, 5000);
        }
        write_full(c2p[1], &rc, sizeof(rc));
        sleep(30); /* killed long before */
        _exit(20);
    }
    int rc;
    assert_true(read_full(c2p[0], &rc, sizeof(rc)));
    assert_int_equal(rc, 0);
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 0), -ETIMEDOUT);
    kill(pid, SIGKILL);
    assert_int_equal(child_status(pid), 128 + SIGKILL);
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    shmq_ctl_topic_unlock(&f->ctl);
    close(c2p[0]);
    close(c2p[1]);
}

static void *try_topic_lock(void *arg)
{
    shmq_ctl_t *ctl = arg;
    shmq_ctl_t mine = *ctl; /* the same process, its own handle state */
    mine.topic_lock_fd = -1;
    intptr_t rc = shmq_ctl_topic_lock(&mine, 0);
    if (rc == 0) {
        shmq_ctl_topic_unlock(&mine);
    }
    return (void *)rc;
}

static void test_topic_lock_excludes_other_thread(void **state)
{
    fixture_t *f = *state;
    pthread_t th;
    void *res;
    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(pthread_create(&th, NULL, try_topic_lock, &f->ctl), 0);
    pthread_join(th, &res);
    assert_int_equal((intptr_t)res, -ETIMEDOUT);
    shmq_ctl_topic_unlock(&f->ctl);
    assert_int_equal(pthread_create(&th, NULL, try_topic_lock, &f->ctl), 0);
    pthread_join(th, &res);
    assert_int_equal((intptr_t)res, 0);
}

static void test_topics_save_writes_active_topics_keeping_attributes(void **state)
{
    fixture_t *f = *state;
    shmq_topic_table_t t = {0};
    shmq_topic_config_t tc = {0};
    snprintf(tc.name, sizeof(tc.name), "Kept");
    tc.read_queue_nums = tc.write_queue_nums = 1;
    tc.perm = 6;
    tc.multi_tag = true;
    snprintf(tc.attributes, sizeof(tc.attributes), "{\"+message.type\":\"FIFO\"}");
    assert_int_equal(shmq_topic_table_put(&t, &tc), 0);
    snprintf(tc.name, sizeof(tc.name), "Gone");
    assert_int_equal(shmq_topic_table_put(&t, &tc), 0);
    assert_int_equal(shmq_topics_save(f->dir, &t), 0);
    int64_t counter = t.data_version_counter;
    shmq_topic_table_free(&t);

    assert_int_equal(shmq_ctl_topic_lock(&f->ctl, 1000), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "Kept", 8, 8, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_put(&f->ctl, "New", 4, 2, 2, true), 0);
    assert_int_equal(shmq_ctl_topics_save(&f->ctl), 0);
    shmq_ctl_topic_unlock(&f->ctl);

    assert_int_equal(shmq_topics_load(f->dir, &t), 0);
    assert_int_equal(t.count, 2);
    assert_true(t.data_version_counter > counter);
    const shmq_topic_config_t *k = shmq_topic_table_get(&t, "Kept");
    assert_non_null(k);
    assert_int_equal(k->read_queue_nums, 8);
    assert_true(k->multi_tag);
    assert_non_null(strstr(k->attributes, "FIFO"));
    const shmq_topic_config_t *n = shmq_topic_table_get(&t, "New");
    assert_non_null(n);
    assert_int_equal(n->read_queue_nums, 4);
    assert_int_equal(n->write_queue_nums, 2);
    assert_int_equal(n->perm, 2);
    assert_true(n->order);
    assert_null(shmq_topic_table_get(&t, "Gone"));
    shmq_topic_table_free(&t);
}

/* ---- queues ------------------------------------------------------------------------- */

static void queue_key(int i, char *topic, size_t len, int32_t *qid)
{
    snprintf(topic, len, "topic-%d", i / 8);
    *qid = i % 8;
}

static void test_queue_insert_and_find_many(void **state)
{
    fixture_t *f = *state;
    enum { N = 12000 }; /* 73% load: many probe collisions */
    char topic[32];
    int32_t qid;
    shmq_ctl_queue_t *q, *again;
    for (int i = 0; i < N; i++) {
        queue_key(i, topic, sizeof(topic), &qid);
        assert_int_equal(shmq_ctl_queue_insert(&f->ctl, topic, strlen(topic), qid, &q), 0);
        assert_int_equal(q->queue_id, qid);
        assert_int_equal(atomic_load(&q->next_offset), 0);
        atomic_store(&q->next_offset, i);
        atomic_store(&q->max_offset, i * 2);
    }
    int displaced = 0;
    for (int i = 0; i < N; i++) {
        queue_key(i, topic, sizeof(topic), &qid);
        q = shmq_ctl_queue_find(&f->ctl, topic, strlen(topic), qid);
        assert_non_null(q);
        assert_int_equal(atomic_load(&q->next_offset), i);
        assert_int_equal(atomic_load(&q->max_offset), i * 2);
        assert_int_equal(q->topic_len, strlen(topic));
        assert_memory_equal(q->topic, topic, strlen(topic));
        assert_int_equal(shmq_ctl_queue_insert(&f->ctl, topic, strlen(topic), qid, &again), 0);
        assert_ptr_equal(again, q);
        /* An entry right after an occupied slot may have been pushed there
         * by a collision: with this load there must be many. */
        ptrdiff_t idx = q - f->ctl.blk->queues;
        displaced += idx > 0 && atomic_load(&f->ctl.blk->queues[idx - 1].state) != 0;
    }
    assert_true(displaced > 0);
    assert_null(shmq_ctl_queue_find(&f->ctl, "topic-0", 7, 8));
    assert_null(shmq_ctl_queue_find(&f->ctl, "topic-", 6, 0));
    assert_null(shmq_ctl_queue_find(&f->ctl, "nope", 4, 0));
    assert_int_equal(shmq_ctl_queue_insert(&f->ctl, "", 0, 0, &q), SHMQ_E_TOPIC);
    assert_int_equal(shmq_ctl_queue_insert(&f->ctl, "t", 1, -1, &q), SHMQ_E_ARG);

    /* Another process sees the same entries. */
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), 0);
    queue_key(N - 1, topic, sizeof(topic), &qid);
    q = shmq_ctl_queue_find(&c, topic, strlen(topic), qid);
    assert_non_null(q);
    assert_int_equal(atomic_load(&q->next_offset), N - 1);
    assert_int_equal(shmq_ctl_queue_insert(&c, "fresh", 5, 0, &q), -EROFS);
    shmq_ctl_detach(&c);
}

static void test_queue_table_full_returns_range(void **state)
{
    fixture_t *f = *state;
    char topic[32];
    int32_t qid;
    shmq_ctl_queue_t *q;
    for (int i = 0; i < SHMQ_CTL_MAX_QUEUES; i++) {
        queue_key(i, topic, sizeof(topic), &qid);
        assert_int_equal(shmq_ctl_queue_insert(&f->ctl, topic, strlen(topic), qid, &q), 0);
    }
    assert_int_equal(shmq_ctl_queue_insert(&f->ctl, "extra", 5, 0, &q), SHMQ_E_RANGE);
    assert_null(shmq_ctl_queue_find(&f->ctl, "extra", 5, 0));
    queue_key(SHMQ_CTL_MAX_QUEUES - 1, topic, sizeof(topic), &qid);
    assert_non_null(shmq_ctl_queue_find(&f->ctl, topic, strlen(topic), qid));
}

/* ---- consumer offsets --------------------------------------------------------------- */

static void test_offsets_delete_group_drops_only_its_entries_and_resets_count_moves(void **state)
{
    fixture_t *f = *state;
    int64_t off;
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g1", "TopicA", 0, 5), 0);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g1", "TopicB", 1, 7), 0);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g10", "TopicA", 0, 9), 0);
    atomic_store(&f->ctl.cons->offsets_dirty, 0);
    uint32_t r0 = atomic_load(&f->ctl.cons->resets);
    assert_int_equal(r0 & 1, 0);
    shmq_ctl_offsets_reset_begin(&f->ctl);
    assert_int_equal(atomic_load(&f->ctl.cons->resets) & 1, 1); /* odd while it changes */
    assert_int_equal(shmq_ctl_offsets_delete_group(&f->ctl, "g1"), 2);
    shmq_ctl_offsets_reset_end(&f->ctl);
    uint32_t r1 = atomic_load(&f->ctl.cons->resets);
    assert_int_equal(r1 & 1, 0);
    assert_true(r1 != r0);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 1);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicB", 1, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g10", "TopicA", 0, &off), 0);
    assert_int_equal(off, 9);
    assert_int_equal(shmq_ctl_offsets_delete_group(&f->ctl, "g1"), 0);
    assert_int_equal(shmq_ctl_offsets_delete_group(&f->ctl, ""), SHMQ_E_ARG);
    /* A begin left behind (a tool killed mid-way): the next begin stays odd, its end even. */
    shmq_ctl_offsets_reset_begin(&f->ctl);
    shmq_ctl_offsets_reset_begin(&f->ctl);
    assert_int_equal(atomic_load(&f->ctl.cons->resets) & 1, 1);
    shmq_ctl_offsets_reset_end(&f->ctl);
    assert_int_equal(atomic_load(&f->ctl.cons->resets) & 1, 0);
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), 0);
    assert_int_equal(shmq_ctl_offsets_delete_group(&c, "g10"), -EROFS);
    shmq_ctl_detach(&c);
}

static void test_offsets_set_get_save_load_round_trip(void **state)
{
    fixture_t *f = *state;
    int64_t off;
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 0);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g1", "TopicA", 0, 5), 0);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 1);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g1", "TopicA", 1, 7), 0);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g2", "TopicA", 0, 9), 0);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g1", "TopicA", 0, 6), 0); /* update */
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), 0);
    assert_int_equal(off, 6);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g2", "TopicA", 0, &off), 0);
    assert_int_equal(off, 9);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g2", "TopicA", 1, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "", "TopicA", 0, 1), SHMQ_E_ARG);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g", "", 0, 1), SHMQ_E_TOPIC);

    /* A client's handle maps the consumer area read-only: it reads offsets, and a
     * commit through it is refused (clients commit through the master's socket). */
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), 0);
    assert_int_equal(shmq_ctl_offset_set(&c, "g3", "%RETRY%g3", 2, 11), -EROFS);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g3", "%RETRY%g3", 2, 11), 0);
    assert_int_equal(shmq_ctl_offset_get(&c, "g1", "TopicA", 1, &off), 0);
    assert_int_equal(off, 7);
    shmq_ctl_detach(&c);

    assert_int_equal(shmq_ctl_offsets_save(&f->ctl), 0);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 0);
    shmq_offset_table_t t = {0};
    assert_int_equal(shmq_consumer_offsets_load(f->dir, &t), 0);
    assert_int_equal(t.count, 4);
    assert_int_equal(shmq_offset_table_get(&t, "TopicA@g1", 0, &off), 0);
    assert_int_equal(off, 6);
    assert_int_equal(shmq_offset_table_get(&t, "TopicA@g1", 1, &off), 0);
    assert_int_equal(off, 7);
    assert_int_equal(shmq_offset_table_get(&t, "TopicA@g2", 0, &off), 0);
    assert_int_equal(off, 9);
    assert_int_equal(shmq_offset_table_get(&t, "%RETRY%g3@g3", 2, &off), 0);
    assert_int_equal(off, 11);
    shmq_offset_table_free(&t);

    /* A new master start loads them back. */
    shmq_ctl_detach(&f->ctl);
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), SHMQ_E_NOT_FOUND);
    assert_int_equal(shmq_ctl_offsets_load(&f->ctl), 0);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 0);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), 0);
    assert_int_equal(off, 6);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g2", "TopicA", 0, &off), 0);
    assert_int_equal(off, 9);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g3", "%RETRY%g3", 2, &off), 0);
    assert_int_equal(off, 11);
}

/* The slave's merge of its master's offsets: missing ones are added, ones behind are raised,
 * ones ahead (a group consuming on this side) are never moved back; the snapshot and its JSON
 * text hold what the area holds. */
static void test_offset_advance_only_moves_forward(void **state)
{
    fixture_t *f = *state;
    int64_t off;
    assert_int_equal(shmq_ctl_offset_advance(&f->ctl, "g1", "TopicA", 0, 5), 1);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 1);
    atomic_store(&f->ctl.cons->offsets_dirty, 0);
    assert_int_equal(shmq_ctl_offset_advance(&f->ctl, "g1", "TopicA", 0, 3), 0);
    assert_int_equal(shmq_ctl_offset_advance(&f->ctl, "g1", "TopicA", 0, 5), 0);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 0);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), 0);
    assert_int_equal(off, 5);
    assert_int_equal(shmq_ctl_offset_advance(&f->ctl, "g1", "TopicA", 0, 8), 1);
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), 0);
    assert_int_equal(off, 8);
    assert_int_equal(atomic_load(&f->ctl.cons->offsets_dirty), 1);
    assert_int_equal(shmq_ctl_offset_advance(&f->ctl, "", "TopicA", 0, 1), SHMQ_E_ARG);
    assert_int_equal(shmq_ctl_offset_set(&f->ctl, "g2", "TopicB", 3, 11), 0);

    shmq_offset_table_t t;
    assert_int_equal(shmq_ctl_offsets_snapshot(&f->ctl, &t), 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(shmq_offset_table_get(&t, "TopicA@g1", 0, &off), 0);
    assert_int_equal(off, 8);
    assert_int_equal(shmq_offset_table_get(&t, "TopicB@g2", 3, &off), 0);
    assert_int_equal(off, 11);
    char *text;
    size_t len;
    assert_int_equal(shmq_consumer_offsets_dump(&t, &text, &len), 0);
    assert_string_equal(text,
                        "{\"offsetTable\":{\"TopicA@g1\":{\"0\":8},\"TopicB@g2\":{\"3\":11}}}");
    assert_int_equal(len, strlen(text));
    free(text);
    shmq_offset_table_free(&t);
}

static char load_warned[1024];

static void capture_warning(void *arg, enum shmq_meta_level level, const char *msg)
{
    (void)arg;
    (void)level;
    size_t n = strlen(load_warned);
    snprintf(load_warned + n, sizeof(load_warned) - n, "%s\n", msg);
}

/* An entry whose key names no group is dropped with a warning naming it; the load goes on. */
static void test_offsets_load_drops_key_without_group_with_a_warning(void **state)
{
    fixture_t *f = *state;
    shmq_offset_table_t t = {0};
    assert_int_equal(shmq_offset_table_set(&t, "NoGroupHere", 0, 3), 0);
    assert_int_equal(shmq_offset_table_set(&t, "TopicA@g1", 0, 4), 0);
    assert_int_equal(shmq_consumer_offsets_save(f->dir, &t), 0);
    shmq_offset_table_free(&t);
    load_warned[0] = '\0';
    shmq_meta_set_warn(capture_warning, NULL);
    int rc = shmq_ctl_offsets_load(&f->ctl);
    shmq_meta_set_warn(NULL, NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(load_warned, "NoGroupHere"));
    int64_t off = -1;
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g1", "TopicA", 0, &off), 0);
    assert_int_equal(off, 4);
}

struct offset_racer {
    shmq_ctl_t *ctl;
    int rc;
};

static void *offset_race(void *arg)
{
    struct offset_racer *r = arg;
    for (int i = 0; i < 200 && r->rc == 0; i++) {
        char group[16];
        snprintf(group, sizeof(group), "g%d", i);
        r->rc = shmq_ctl_offset_set(r->ctl, group, "Race", 0, i);
    }
    return NULL;
}

static void test_offsets_concurrent_inserts_make_one_entry_per_key(void **state)
{
    fixture_t *f = *state;
    struct offset_racer r[3] = {{&f->ctl, 0}, {&f->ctl, 0}, {&f->ctl, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, offset_race, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    int active = 0;
    for (int i = 0; i < SHMQ_CTL_MAX_OFFSETS; i++) {
        active += atomic_load(&f->ctl.cons->offsets[i].state) == 1;
    }
    assert_int_equal(active, 200);
    int64_t off;
    assert_int_equal(shmq_ctl_offset_get(&f->ctl, "g150", "Race", 0, &off), 0);
    assert_int_equal(off, 150);
}

/* ---- read-only mapping -------------------------------------------------------------- */

static void test_rdonly_attach_maps_block_read_only(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t c;
    assert_int_equal(shmq_ctl_attach(f->dir, SHMQ_CTL_RDONLY, &c), 0);
    assert_true(c.readonly);
    assert_int_equal(shmq_ctl_topic_put(&c, "T", 1, 1, 6, false), -EROFS);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGSEGV, SIG_DFL); /* die by the signal, not a sanitizer's report */
        ((volatile shmq_ctl_block_t *)c.blk)->hdr.pad = 1;
        _exit(0); /* reached only if the write succeeded */
    }
    assert_int_equal(child_status(pid), 128 + SIGSEGV);
    shmq_ctl_detach(&c);
}

/* The recovery progress object lives in /dev/shm under a name any local user can compute:
 * status believes it only when the store directory's owner owns it. */
static void test_recovery_progress_read_only_from_the_store_owner(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_progress_t *p = NULL;
    const shmq_ctl_progress_t *g = NULL;
    char base[64], path[128];

    assert_int_equal(shmq_ctl_progress_create(f->dir, (gid_t)-1, &p), 0);
    assert_int_equal(shmq_ctl_progress_open(f->dir, &g), 0);
    shmq_ctl_progress_close(g);
    if (geteuid() != 0) {
        shmq_ctl_progress_remove(f->dir, p);
        skip(); /* giving the object to another user needs root */
    }
    assert_int_equal(shmq_ctl_name(f->dir, base, sizeof(base)), 0);
    snprintf(path, sizeof(path), "/dev/shm%s.recovery", base);
    /* As if another user (nobody) had made it first: present, well formed, not believed. */
    assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
    g = NULL;
    assert_int_equal(shmq_ctl_progress_open(f->dir, &g), SHMQ_E_NOT_FOUND);
    assert_null(g);
    assert_int_equal(chown(path, geteuid(), (gid_t)-1), 0);
    assert_int_equal(shmq_ctl_progress_open(f->dir, &g), 0);
    shmq_ctl_progress_close(g);
    shmq_ctl_progress_remove(f->dir, p);
}

/* ---- consumer groups (groups.c) ---------------------------------------------------------- */

/* "q0 q1 ..." of the queues members[slot] holds of its topic (release: those asked back). */
static const char *held(const shmq_ctl_t *ctl, int slot, bool release)
{
    static char buf[512];
    const shmq_ctl_member_t *e = &ctl->cons->members[slot];
    size_t len = 0;
    buf[0] = '\0';
    for (int32_t q = 0; q < 64; q++) {
        if (shmq_member_bit(release ? e->release : e->own, q)) {
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%d", len ? " " : "", (int)q);
        }
    }
    return buf;
}

/* A member joins at slot with the subscription "*". */
static int join_as(shmq_ctl_t *ctl, int slot, pid_t pid, const char *group, const char *topic,
                   uint32_t flags, uint64_t *id)
{
    shmq_member_join_t j = {.pid = pid,
                            .group = group,
                            .topic = topic,
                            .sub = "*",
                            .sub_hash = shmq_fnv1a64(SHMQ_FNV_BASIS, "*", 1),
                            .flags = flags};
    return shmq_groups_join(ctl, slot, &j, id, NULL, 0);
}

static void test_groups_divide_averagely_and_hand_over_through_the_owner(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t *ctl = &f->ctl;
    assert_int_equal(shmq_ctl_topic_put(ctl, "TopicM", 8, 8, 6, false), 0);
    uint64_t id1, id2, id3;
    uint64_t gen0 = atomic_load(&ctl->cons->members_gen);
    assert_int_equal(join_as(ctl, 5, 100, "GM", "TopicM", 0, &id1), 0);
    assert_string_equal(held(ctl, 5, false), "0 1 2 3 4 5 6 7");
    assert_true(atomic_load(&ctl->cons->members_gen) > gen0);
    /* A second member: the first is asked to release the second half; nobody holds it twice. */
    assert_int_equal(join_as(ctl, 9, 101, "GM", "TopicM", 0, &id2), 0);
    assert_true(id2 > id1);
    assert_string_equal(held(ctl, 5, false), "0 1 2 3 4 5 6 7");
    assert_string_equal(held(ctl, 5, true), "4 5 6 7");
    assert_string_equal(held(ctl, 9, false), "");
    /* The owner still commits what it holds; the other may not. */
    assert_int_equal(shmq_groups_may_commit(ctl, 5, "GM", "TopicM", 6), 0);
    assert_int_equal(shmq_groups_may_commit(ctl, 9, "GM", "TopicM", 6), SHMQ_E_NOT_OWNER);
    /* Not a member, or another group or topic: not this file's to refuse. */
    assert_int_equal(shmq_groups_may_commit(ctl, 7, "GM", "TopicM", 6), 0);
    assert_int_equal(shmq_groups_may_commit(ctl, 9, "GX", "TopicM", 6), 0);
    /* A queue it was not asked for cannot be released; one asked for goes to the other. */
    assert_int_equal(shmq_groups_release(ctl, 5, "GM", "TopicM", 1), SHMQ_E_ARG);
    assert_int_equal(shmq_groups_release(ctl, 5, "GM", "TopicM", 4), 0);
    assert_string_equal(held(ctl, 9, false), "4");
    for (int32_t q = 5; q < 8; q++) {
        assert_int_equal(shmq_groups_release(ctl, 5, "GM", "TopicM", q), 0);
    }
    assert_string_equal(held(ctl, 5, false), "0 1 2 3");
    assert_string_equal(held(ctl, 5, true), "");
    assert_string_equal(held(ctl, 9, false), "4 5 6 7");
    assert_int_equal(ctl->cons->members[5].release_since_ms, 0);
    /* A third: 8 queues over 3 members is 3, 3, 2 (AllocateMessageQueueAveragely), in
     * the order of the client ids ("100@1" < "101@2" < "102@3"). */
    assert_int_equal(join_as(ctl, 2, 102, "GM", "TopicM", 0, &id3), 0);
    assert_string_equal(held(ctl, 5, true), "3");
    assert_string_equal(held(ctl, 9, true), "6 7");
    assert_int_equal(shmq_groups_release(ctl, 5, "GM", "TopicM", 3), 0);
    assert_int_equal(shmq_groups_release(ctl, 9, "GM", "TopicM", 6), 0);
    assert_int_equal(shmq_groups_release(ctl, 9, "GM", "TopicM", 7), 0);
    assert_string_equal(held(ctl, 5, false), "0 1 2");
    assert_string_equal(held(ctl, 9, false), "3 4 5");
    assert_string_equal(held(ctl, 2, false), "6 7");
    assert_int_equal(ctl->cons->members[2].queues_held, 2);
    /* A member that dies gives its queues up at once; they are divided again. */
    shmq_groups_leave(ctl, 9);
    assert_int_equal(ctl->cons->members[9].state, SHMQ_ENTRY_FREE);
    assert_string_equal(held(ctl, 5, false), "0 1 2 3");
    assert_string_equal(held(ctl, 2, false), "4 5 6 7");
    assert_string_equal(held(ctl, 2, true), "");
    assert_int_equal(shmq_groups_release(ctl, 5, "GM", "TopicM", 3), SHMQ_E_ARG);
    /* The topic gains queues: the next tick gives them out, through their owner again. */
    assert_int_equal(shmq_ctl_topic_put(ctl, "TopicM", 10, 10, 6, false), 0);
    assert_int_equal(shmq_groups_tick(ctl, shmq_mono_ms(), NULL, 0), 0);
    assert_string_equal(held(ctl, 2, false), "4 5 6 7 8 9");
    assert_string_equal(held(ctl, 2, true), "4");
    assert_int_equal(shmq_groups_release(ctl, 2, "GM", "TopicM", 4), 0);
    assert_string_equal(held(ctl, 5, false), "0 1 2 3 4");
    assert_string_equal(held(ctl, 2, false), "5 6 7 8 9");
    /* Joining twice on one connection, bad names and flags are refused. */
    assert_int_equal(join_as(ctl, 5, 100, "GM", "TopicM", 0, &id1), -EBUSY);
    assert_int_equal(join_as(ctl, 6, 100, "G@M", "TopicM", 0, &id1), SHMQ_E_ARG);
    assert_int_equal(join_as(ctl, 6, 100, "GM", "TopicM", 0x80, &id1), SHMQ_E_ARG);
    assert_int_equal(join_as(ctl, SHMQ_CTL_MAX_MEMBERS, 1, "GM", "T", 0, &id1), SHMQ_E_ARG);
}

static void test_groups_take_what_is_not_released_in_time(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t *ctl = &f->ctl;
    assert_int_equal(shmq_ctl_topic_put(ctl, "TopicR", 2, 2, 6, false), 0);
    assert_int_equal(shmq_ctl_topic_put(ctl, "%RETRY%GR", 1, 1, 6, false), 0);
    uint64_t id;
    assert_int_equal(join_as(ctl, 0, 200, "GR", "TopicR", 0, &id), 0);
    assert_string_equal(held(ctl, 0, false), "0 1");
    assert_int_equal(ctl->cons->members[0].own_retry, 1); /* the retry queue too */
    assert_int_equal(join_as(ctl, 1, 201, "GR", "TopicR", 0, &id), 0);
    assert_string_equal(held(ctl, 0, true), "1");
    /* A broadcasting member of the same group holds nothing and changes nothing. */
    assert_int_equal(join_as(ctl, 3, 202, "GR", "TopicR", SHMQ_MEMBER_BROADCASTING, &id), 0);
    assert_string_equal(held(ctl, 3, false), "");
    assert_string_equal(held(ctl, 0, true), "1");
    /* Not given back: before the limit nothing moves, after it the queue is taken. */
    int64_t since = ctl->cons->members[0].release_since_ms;
    assert_true(since > 0);
    char note[400] = "";
    assert_int_equal(
        shmq_groups_tick(ctl, since + SHMQ_GROUP_RELEASE_MS - 1000, note, sizeof(note)), 0);
    assert_string_equal(held(ctl, 1, false), "");
    assert_int_equal(
        shmq_groups_tick(ctl, since + SHMQ_GROUP_RELEASE_MS + 1000, note, sizeof(note)), 1);
    assert_non_null(strstr(note, "did not release 1 queue(s)"));
    assert_string_equal(held(ctl, 0, false), "0");
    assert_string_equal(held(ctl, 1, false), "1");
    /* Its late commit of the queue taken is refused. */
    assert_int_equal(shmq_groups_may_commit(ctl, 0, "GR", "TopicR", 1), SHMQ_E_NOT_OWNER);
    assert_int_equal(shmq_groups_may_commit(ctl, 1, "GR", "TopicR", 1), 0);
    /* The broadcasting member made the group inconsistent; so does another expression. */
    assert_false(shmq_groups_consistent(ctl, "GR"));
    shmq_groups_leave(ctl, 3);
    assert_true(shmq_groups_consistent(ctl, "GR"));
    char why[600];
    shmq_member_join_t j = {.pid = 203,
                            .group = "GR",
                            .topic = "TopicR",
                            .sub = "TagA || TagB",
                            .sub_hash = shmq_fnv1a64(SHMQ_FNV_BASIS, "TagA || TagB", 12)};
    assert_int_equal(shmq_groups_join(ctl, 4, &j, &id, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "group GR is inconsistent: member 203@"));
    assert_non_null(strstr(why, "subscribes TopicR 'TagA || TagB' (clustering)"));
    assert_false(shmq_groups_consistent(ctl, "GR"));
    assert_string_equal(ctl->cons->members[4].sub, "TagA || TagB");
}

int main(void)
{
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_name_is_hash_of_realpath, setup_dir),
        T(test_recovery_progress_read_only_from_the_store_owner, setup_dir),
        T(test_create_then_attach_sees_config_and_ready, setup_dir),
        T(test_ring_size_is_power_of_two_holding_two_messages, setup_dir),
        T(test_attach_before_ready_returns_eagain, setup_dir),
        T(test_attach_without_block_returns_not_found, setup_dir),
        T(test_attach_to_block_of_dead_master_returns_not_found, setup_ready),
        T(test_attach_layout_mismatch_returns_version, setup_ready),
        T(test_create_replaces_stale_block, setup_ready),
        T(test_names_of_roles_and_states, setup_dir),
        T(test_publish_wakes_waiting_child, setup_ready),
        T(test_wait_pos_times_out, setup_ready),
        T(test_publish_without_sleepers_leaves_seq, setup_ready),
        T(test_route_seqlock, setup_ready),
        T(test_futex_wait_returns_eagain_when_word_differs, setup_dir),
        T(test_sleep_returns_ready_or_is_woken, setup_ready),
        T(test_sleeper_killed_costs_one_wake_not_one_per_publish, setup_ready),
        T(test_burst_of_publishes_wakes_a_sleeper_once, setup_ready),
        T(test_scribbled_wake_word_costs_latency_only, setup_ready),
        T(test_topic_put_get_delete_and_reuse, setup_ready),
        T(test_histogram_bucket_is_the_first_bound_at_or_above, setup_ready),
        T(test_stamps_are_taken_once_in_order_up_to_the_position, setup_ready),
        T(test_inline_stamps_take_equals_take, setup_ready),
        T(test_shared_histogram_adds_only_the_buckets_used, setup_ready),
        T(test_topic_counts_start_again_when_the_slot_takes_a_new_topic, setup_ready),
        T(test_topic_foreach_visits_active_topics, setup_ready),
        T(test_topic_seqlock_reader_never_sees_torn_entry, setup_ready),
        T(test_sync_state_set_reader_sees_whole_sets, setup_ready),
        T(test_cq_mark_reads_whole_publications_only, setup_ready),
        T(test_cq_mark_reader_never_mixes_two_publications_of_another_process, setup_ready),
        T(test_marks_take_only_offered_boundaries_at_or_below_the_limit, setup_ready),
        T(test_topic_lock_repairs_entry_left_mid_change, setup_ready),
        T(test_topic_lock_excludes_child_until_released, setup_ready),
        T(test_topic_lock_released_when_holder_killed, setup_ready),
        T(test_topic_lock_excludes_other_thread, setup_ready),
        T(test_topics_save_writes_active_topics_keeping_attributes, setup_ready),
        T(test_queue_insert_and_find_many, setup_ready),
        T(test_queue_table_full_returns_range, setup_ready),
        T(test_offsets_set_get_save_load_round_trip, setup_ready),
        T(test_offsets_delete_group_drops_only_its_entries_and_resets_count_moves, setup_ready),
        T(test_offset_advance_only_moves_forward, setup_ready),
        T(test_groups_divide_averagely_and_hand_over_through_the_owner, setup_ready),
        T(test_groups_take_what_is_not_released_in_time, setup_ready),
        T(test_offsets_load_drops_key_without_group_with_a_warning, setup_ready),
        T(test_offsets_concurrent_inserts_make_one_entry_per_key, setup_ready),
        T(test_rdonly_attach_maps_block_read_only, setup_ready),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
