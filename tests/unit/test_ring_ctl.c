/*
 * Unit tests of ring ownership and completion in the control block
 * (libshm/ring_ctl.c): claiming takes the ring's lock byte and resets it,
 * giving a ring back frees or orphans it, the writer's owner check finds
 * rings whose lock is gone (and claimers that died mid-claim), a claimer
 * stalled in the middle of its claim never undoes another producer's claim,
 * slots are answered only for the request that waits (with that request's
 * error text, which the producer reads back bounded), and store liveness
 * follows the store lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "ring.h"
#include "store_files.h"

/*
 * Fault shim: this program's fcntl() replaces the C library's for the code
 * it links (libshmq.a).  A thread that sets shim_stall_me stops before its
 * next F_OFD_SETLK of a ring's lock byte until the test releases it: a
 * producer descheduled in the middle of a claim.
 */
static pthread_mutex_t shim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t shim_cv = PTHREAD_COND_INITIALIZER;
static _Thread_local bool shim_stall_me;
static bool shim_stalled, shim_released;

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    if (shim_stall_me && cmd == F_OFD_SETLK) {
        const struct flock *fl = (const struct flock *)arg;
        if (fl->l_type == F_WRLCK && fl->l_start >= SHMQ_RING_LOCK_BYTE(0)) {
            shim_stall_me = false;
            pthread_mutex_lock(&shim_mu);
            shim_stalled = true;
            pthread_cond_broadcast(&shim_cv);
            while (!shim_released) {
                pthread_cond_wait(&shim_cv, &shim_mu);
            }
            pthread_mutex_unlock(&shim_mu);
        }
    }
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

typedef struct fixture {
    char dir[64];
    shmq_config_t cfg;
    shmq_ctl_t ctl;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-ring-ctl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660); /* as the store makes it */
    assert_true(fd >= 0);
    close(fd);
    shmq_config_defaults(&f->cfg);
    f->cfg.max_message_size = 4096; /* small rings */
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s", f->dir);
    assert_int_equal(shmq_ctl_create(&f->cfg, f->dir, &f->ctl), 0);
    shmq_ctl_set_ready(&f->ctl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_detach(&f->ctl);
    shmq_ctl_unlink(f->dir);
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Is byte SHMQ_RING_LOCK_BYTE(i) locked, seen through a fresh descriptor? */
static bool ring_locked(const fixture_t *f, uint32_t i)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHMQ_RING_LOCK_BYTE(i), .l_len = 1};
    assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
    close(fd);
    return fl.l_type != F_UNLCK;
}

static void test_claim_takes_a_free_ring_locks_it_and_resets_it(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_ring_t *r0 = &f->ctl.blk->rings[0];
    atomic_store(&r0->tail, 4096);
    atomic_store(&r0->head, 100);
    atomic_store(&r0->slots[5].state, SHMQ_SLOT_DONE);
    shmq_ctl_t p;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &p), 0);
    uint32_t i = 99;
    assert_int_equal(shmq_ring_claim(&p, &i), 0);
    assert_int_equal(i, 0);
    assert_int_equal(atomic_load(&r0->state), SHMQ_RING_ACTIVE);
    assert_int_equal(atomic_load(&r0->head), 4096);
    assert_int_equal(atomic_load(&r0->slots[5].state), SHMQ_SLOT_FREE);
    assert_int_equal(atomic_load(&r0->owner_pid), getpid());
    assert_int_equal(atomic_load(&r0->claims), 1);
    assert_true(ring_locked(f, 0));
    /* A second producer gets the next ring. */
    shmq_ctl_t q;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &q), 0);
    assert_int_equal(shmq_ring_claim(&q, &i), 0);
    assert_int_equal(i, 1);
    shmq_ring_release(&q, 1);
    shmq_ctl_detach(&q);
    shmq_ring_release(&p, 0);
    shmq_ctl_detach(&p);
    assert_false(ring_locked(f, 0));
}

static void test_release_frees_a_drained_ring_and_orphans_a_busy_one(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_t p;
    uint32_t i;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &p), 0);
    assert_int_equal(shmq_ring_claim(&p, &i), 0);
    shmq_ring_release(&p, i);
    assert_int_equal(atomic_load(&f->ctl.blk->rings[i].state), SHMQ_RING_FREE);
    assert_int_equal(shmq_ring_claim(&p, &i), 0);
    atomic_fetch_add(&f->ctl.blk->rings[i].tail, 64); /* published, not yet taken */
    shmq_ring_release(&p, i);
    assert_int_equal(atomic_load(&f->ctl.blk->rings[i].state), SHMQ_RING_ORPHANED);
    shmq_ctl_detach(&p);
    /* The writer empties it, then frees it. */
    assert_int_equal(shmq_ring_free_orphans(&f->ctl), 0);
    atomic_store(&f->ctl.blk->rings[i].head, atomic_load(&f->ctl.blk->rings[i].tail));
    assert_int_equal(shmq_ring_free_orphans(&f->ctl), 1);
    assert_int_equal(atomic_load(&f->ctl.blk->rings[i].state), SHMQ_RING_FREE);
}

static void test_claim_fails_with_ebusy_when_every_ring_is_taken(void **state)
{
    fixture_t *f = *state;
    for (uint32_t i = 0; i < f->ctl.blk->hdr.ring_count; i++) {
        atomic_store(&f->ctl.blk->rings[i].state, SHMQ_RING_ACTIVE);
    }
    uint32_t i;
    assert_int_equal(shmq_ring_claim(&f->ctl, &i), -EBUSY);
}

static void test_owner_check_orphans_an_active_ring_without_its_lock(void **state)
{
    fixture_t *f = *state;
    shmq_ring_watch_t watch;
    memset(&watch, 0, sizeof(watch));
    shmq_ctl_t p;
    uint32_t i;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &p), 0);
    assert_int_equal(shmq_ring_claim(&p, &i), 0);
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 0); /* owned */
    /* The producer dies: the kernel drops its lock, the state stays ACTIVE. */
    shmq_ctl_detach(&p);
    assert_int_equal(atomic_load(&f->ctl.blk->rings[i].state), SHMQ_RING_ACTIVE);
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 1);
    assert_int_equal(atomic_load(&f->ctl.blk->rings[i].state), SHMQ_RING_ORPHANED);
}

static void test_owner_check_frees_a_ring_stuck_claiming(void **state)
{
    fixture_t *f = *state;
    shmq_ring_watch_t watch;
    memset(&watch, 0, sizeof(watch));
    shmq_ctl_ring_t *r = &f->ctl.blk->rings[2];
    atomic_store(&r->state, SHMQ_RING_CLAIMING);
    atomic_store(&r->claims, 7);
    /* First sighting: a claimer may be about to take the lock. */
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 0);
    assert_int_equal(atomic_load(&r->state), SHMQ_RING_CLAIMING);
    /* A new claim in between: still not stuck. */
    atomic_store(&r->claims, 8);
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 0);
    /* Same claim, still unlocked at the next check: its claimer died. */
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 1);
    assert_int_equal(atomic_load(&r->state), SHMQ_RING_FREE);
}

typedef struct claimer {
    shmq_ctl_t ctl;
    uint32_t idx;
    int rc;
} claimer_t;

static void *stalled_claim(void *arg)
{
    claimer_t *c = arg;
    shim_stall_me = true;
    c->rc = shmq_ring_claim(&c->ctl, &c->idx);
    return NULL;
}

static void test_a_stalled_claimer_never_frees_a_ring_another_producer_claimed(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_ring_t *r0 = &f->ctl.blk->rings[0];
    claimer_t a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &a.ctl), 0);
    shim_stalled = shim_released = false;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stalled_claim, &a), 0);
    /* Producer A stops in the middle of claiming ring 0. */
    pthread_mutex_lock(&shim_mu);
    while (!shim_stalled) {
        pthread_cond_wait(&shim_cv, &shim_mu);
    }
    pthread_mutex_unlock(&shim_mu);
    /* The writer looks twice (a claim stuck without its lock is a dead claimer's), ... */
    shmq_ring_watch_t watch;
    memset(&watch, 0, sizeof(watch));
    shmq_ring_check_owners(&f->ctl, &watch);
    shmq_ring_check_owners(&f->ctl, &watch);
    /* ... and producer B claims ring 0 and sends. */
    shmq_ctl_t b;
    uint32_t ib = 99;
    assert_int_equal(shmq_ctl_attach(f->dir, 0, &b), 0);
    assert_int_equal(shmq_ring_claim(&b, &ib), 0);
    assert_int_equal(ib, 0);
    assert_int_equal(atomic_load(&r0->state), SHMQ_RING_ACTIVE);
    uint64_t b_claim = atomic_load(&r0->claims);
    /* A resumes: it must not undo B's claim. */
    pthread_mutex_lock(&shim_mu);
    shim_released = true;
    pthread_cond_broadcast(&shim_cv);
    pthread_mutex_unlock(&shim_mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_not_equal(a.idx, 0);
    assert_int_equal(atomic_load(&r0->state), SHMQ_RING_ACTIVE);
    assert_int_equal(atomic_load(&r0->claims), b_claim);
    assert_true(ring_locked(f, 0));
    assert_int_equal(atomic_load(&f->ctl.blk->rings[a.idx].state), SHMQ_RING_ACTIVE);
    /* The writer finds both rings owned. */
    assert_int_equal(shmq_ring_check_owners(&f->ctl, &watch), 0);
    shmq_ring_release(&a.ctl, a.idx);
    shmq_ctl_detach(&a.ctl);
    shmq_ring_release(&b, ib);
    shmq_ctl_detach(&b);
}

static void test_complete_answers_only_the_pending_request(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_ring_t *r = &f->ctl.blk->rings[0];
    shmq_ring_slot_t *s = &r->slots[9];
    shmq_ring_slot_t res = {.req_id = 77,
                            .status = 0,
                            .phys_offset = 1234,
                            .end_pos = 1500,
                            .queue_offset = 5,
                            .store_ts = 42,
                            .queue_id = 2,
                            .size = 266,
                            .count = 1};
    /* Not armed: nothing written. */
    assert_false(shmq_ring_complete(r, 9, &res));
    s->req_id = 76;
    atomic_store(&s->state, SHMQ_SLOT_PENDING);
    assert_false(shmq_ring_complete(r, 9, &res)); /* another request waits there */
    s->req_id = 77;
    assert_true(shmq_ring_complete(r, 9, &res));
    assert_int_equal(atomic_load(&s->state), SHMQ_SLOT_DONE);
    assert_int_equal(s->phys_offset, 1234);
    assert_int_equal(s->end_pos, 1500);
    assert_int_equal(s->queue_offset, 5);
    assert_int_equal(s->queue_id, 2);
    assert_int_equal(s->size, 266);
    assert_false(shmq_ring_complete(r, 9, &res)); /* answered once */
    assert_false(shmq_ring_complete(r, SHMQ_RING_SLOTS, &res));
}

static void test_fail_pending_answers_every_waiting_slot(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_ring_t *r = &f->ctl.blk->rings[0];
    atomic_store(&r->slots[1].state, SHMQ_SLOT_PENDING);
    atomic_store(&r->slots[200].state, SHMQ_SLOT_PENDING);
    atomic_store(&r->slots[3].state, SHMQ_SLOT_DONE);
    r->slots[3].status = 0;
    assert_int_equal(shmq_ring_fail_pending(r, SHMQ_E_CORRUPT, "ring garbage"), 2);
    assert_int_equal(r->slots[1].status, SHMQ_E_CORRUPT);
    assert_int_equal(r->slots[200].status, SHMQ_E_CORRUPT);
    assert_int_equal(atomic_load(&r->slots[200].state), SHMQ_SLOT_DONE);
    assert_int_equal(r->slots[3].status, 0);
    shmq_error_set(SHMQ_E_NOT_FOUND, "topic TopicA not found"); /* the producer's own, older */
    assert_int_equal(shmq_ring_slot_error(&r->slots[200]), SHMQ_E_CORRUPT);
    assert_string_equal(shmq_error_detail(), "ring garbage");
}

/* Each answer carries its own request's text; nothing of an earlier answer or of the
 * producer's own older errors comes along, and an overlong text is cut, not overrun. */
static void test_completion_error_text_is_the_requests_own(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_ring_t *r = &f->ctl.blk->rings[0];
    shmq_ring_slot_t *s = &r->slots[4];
    shmq_ring_slot_t res = {.status = SHMQ_E_DISK_FULL, .req_id = 1};
    snprintf(res.detail, sizeof(res.detail), "disk full: 93%% used");
    s->req_id = 1;
    atomic_store(&s->state, SHMQ_SLOT_PENDING);
    assert_true(shmq_ring_complete(r, 4, &res));
    shmq_error_set(SHMQ_E_NOT_FOUND, "topic TopicA not found");
    assert_int_equal(shmq_ring_slot_error(s), SHMQ_E_DISK_FULL);
    assert_string_equal(shmq_error_detail(), "disk full: 93% used");

    /* The next request in that slot: refused without a text of its own. */
    shmq_ring_slot_t res2 = {.status = -ENOSPC, .req_id = 2};
    s->req_id = 2;
    atomic_store(&s->state, SHMQ_SLOT_PENDING);
    assert_true(shmq_ring_complete(r, 4, &res2));
    assert_int_equal(shmq_ring_slot_error(s), -ENOSPC);
    assert_non_null(strstr(shmq_error_detail(), "No space left on device"));
    assert_null(strstr(shmq_error_detail(), "93%"));

    /* A text without its NUL in the slot: read up to the slot's size, terminated. */
    memset(s->detail, 'x', sizeof(s->detail));
    assert_int_equal(shmq_ring_slot_error(s), -ENOSPC);
    assert_int_equal(strlen(shmq_error_detail()), SHMQ_RING_DETAIL_MAX - 1);
}

static void test_store_is_alive_while_its_creator_holds_the_store_lock(void **state)
{
    fixture_t *f = *state;
    /* No store lock held: the block's creator is gone. */
    assert_false(shmq_ring_store_alive(&f->ctl));
    int fd;
    assert_int_equal(shmq_store_lock(f->dir, &fd), 0); /* writes our pid: the creator */
    assert_true(shmq_ring_store_alive(&f->ctl));
    /* The lock file names another process: this block is stale. */
    f->ctl.blk->hdr.creator_pid = getpid() + 1;
    assert_false(shmq_ring_store_alive(&f->ctl));
    f->ctl.blk->hdr.creator_pid = getpid();
    shmq_store_unlock(fd);
    assert_false(shmq_ring_store_alive(&f->ctl));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_takes_a_free_ring_locks_it_and_resets_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release_frees_a_drained_ring_and_orphans_a_busy_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_fails_with_ebusy_when_every_ring_is_taken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_owner_check_orphans_an_active_ring_without_its_lock,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_check_frees_a_ring_stuck_claiming, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stalled_claimer_never_frees_a_ring_another_producer_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_answers_only_the_pending_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fail_pending_answers_every_waiting_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_completion_error_text_is_the_requests_own, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_is_alive_while_its_creator_holds_the_store_lock,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
