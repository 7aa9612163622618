/*
 * Unit tests of ring objects (libshm/shm/ring_ctl.c): the master gives a free
 * ring to a producer as a sealed object of its own (nobody can shrink it
 * under the writer), the writer maps the same object through the master's
 * descriptor and refuses one whose header does not match the table, rings
 * go ACTIVE -> ORPHANED -> DRAINED -> FREE and come back under a new claim,
 * the writer's judgement of a producer's tail, and slots answered only for
 * the request that waits (with that request's error text, which the
 * producer reads back bounded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/config.h"
#include "shm/ctl.h"
#include "shm/ring.h"
#include "shmq/errors.h"

typedef struct fixture {
    char dir[64];
    shmq_config_t cfg;
    shmq_ctl_t ctl;
} fixture_t;

/* Producers' identities as the master records them (uid, groups). */
static const shmq_acl_ident_t id1000 = {.uid = 1000, .ngroups = 2, .groups = {1000, 27}};
static const shmq_acl_ident_t id1 = {.uid = 1, .ngroups = 1, .groups = {1}};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-ring-ctl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
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
    shmq_ring_reap(&f->ctl, true);
    shmq_ctl_detach(&f->ctl);
    shmq_ctl_unlink(f->dir);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A ring as a producer gets it: assigned by the master, mapped from the descriptor. */
static uint32_t take_ring(fixture_t *f, shmq_ring_map_t *m)
{
    uint32_t idx;
    int fd = -1;
    assert_int_equal(shmq_ring_assign(&f->ctl, 4242, &id1000, &idx, &fd), 0);
    assert_true(fd >= 0);
    uint64_t claims = atomic_load(&f->ctl.blk->rings[idx].claims);
    assert_int_equal(shmq_ring_map_fd(fd, idx, claims, f->ctl.blk->hdr.ring_size, m), 0);
    return idx;
}

static void test_assign_gives_a_sealed_ring_of_its_own(void **state)
{
    fixture_t *f = *state;
    uint32_t idx;
    int fd = -1;
    assert_int_equal(shmq_ring_assign(&f->ctl, 4242, &id1000, &idx, &fd), 0);
    shmq_ctl_ring_t *t = &f->ctl.blk->rings[idx];
    assert_int_equal(atomic_load(&t->state), SHMQ_RING_ACTIVE);
    assert_int_equal(atomic_load(&t->owner_pid), 4242);
    assert_int_equal(atomic_load(&t->owner_uid), 1000);
    assert_int_equal(atomic_load(&t->owner_ngroups), 2);
    assert_int_equal(t->owner_groups[0], 1000);
    assert_int_equal(t->owner_groups[1], 27);
    assert_int_equal(atomic_load(&t->claims), 1);
    assert_true(atomic_load(&t->master_fd) >= 0);
    assert_int_not_equal(atomic_load(&t->master_fd), fd);
    /* Allocated at once, sealed: the producer's descriptor cannot shrink or grow it. */
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, SHMQ_RING_DATA_OFF + f->ctl.blk->hdr.ring_size);
    assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size);
    assert_int_equal(ftruncate(fd, 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(fd, st.st_size * 2), -1);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1); /* no more seals either */
    int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    shmq_ring_map_t p;
    assert_int_equal(shmq_ring_map_fd(fd, idx, 1, f->ctl.blk->hdr.ring_size, &p), 0);
    /* The writer maps the same object through the master's descriptor. */
    shmq_ring_map_t w;
    assert_int_equal(shmq_ring_map(&f->ctl, idx, &w), 0);
    atomic_store(&p.r->tail, 64);
    p.data[63] = 0x5a;
    assert_int_equal(atomic_load(&w.r->tail), 64);
    assert_int_equal(w.data[63], 0x5a);
    /* A map with the wrong claims is another ring's. */
    shmq_ring_map_t x;
    assert_int_equal(shmq_ring_map_fd(fd2, idx, 2, f->ctl.blk->hdr.ring_size, &x), -ESTALE);
    shmq_ring_unmap(&w);
    shmq_ring_unmap(&p);
}

static void test_ring_goes_orphaned_drained_free_and_returns_under_a_new_claim(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t p;
    uint32_t idx = take_ring(f, &p);
    shmq_ctl_ring_t *t = &f->ctl.blk->rings[idx];
    assert_false(shmq_ring_set_drained(&f->ctl, idx)); /* only an orphan can be drained */
    assert_int_equal(shmq_ring_reap(&f->ctl, false), 0);
    shmq_ring_orphan(&f->ctl, idx);
    assert_int_equal(atomic_load(&t->state), SHMQ_RING_ORPHANED);
    shmq_ring_map_t w;
    assert_int_equal(shmq_ring_map(&f->ctl, idx, &w), 0); /* the writer still drains it */
    assert_int_equal(shmq_ring_reap(&f->ctl, false), 0);  /* not before it is drained */
    assert_true(shmq_ring_set_drained(&f->ctl, idx));
    assert_int_equal(shmq_ring_reap(&f->ctl, false), 1);
    assert_int_equal(atomic_load(&t->state), SHMQ_RING_FREE);
    assert_int_equal(atomic_load(&t->master_fd), -1);
    shmq_ring_map_t gone;
    assert_int_equal(shmq_ring_map(&f->ctl, idx, &gone), -ENOENT);
    shmq_ring_unmap(&w);
    shmq_ring_unmap(&p);
    /* The same entry again: a new object under the next claim. */
    shmq_ring_map_t q;
    assert_int_equal(take_ring(f, &q), idx);
    assert_int_equal(q.claims, 2);
    assert_int_equal(atomic_load(&q.r->tail), 0);
    shmq_ring_unmap(&q);
}

static void test_assign_fails_with_ebusy_when_every_ring_is_taken(void **state)
{
    fixture_t *f = *state;
    for (uint32_t i = 0; i < f->ctl.blk->hdr.ring_count; i++) {
        uint32_t idx;
        int fd;
        assert_int_equal(shmq_ring_assign(&f->ctl, 1, &id1, &idx, &fd), 0);
        assert_int_equal(idx, i);
        close(fd);
    }
    uint32_t idx;
    int fd;
    assert_int_equal(shmq_ring_assign(&f->ctl, 1, &id1, &idx, &fd), -EBUSY);
    assert_non_null(strstr(shmq_error_detail(), "producer rings are taken"));
}

static void test_writer_refuses_a_ring_whose_header_its_producer_rewrote(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t p;
    uint32_t idx = take_ring(f, &p);
    p.r->claims = 99; /* the producer scribbles its own ring's header */
    shmq_ring_map_t w;
    assert_int_equal(shmq_ring_map(&f->ctl, idx, &w), -ESTALE);
    p.r->claims = 1;
    p.r->magic = 0;
    assert_int_equal(shmq_ring_map(&f->ctl, idx, &w), -ESTALE);
    shmq_ring_unmap(&p);
}

static void test_tail_is_judged_against_the_writers_head(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t p;
    take_ring(f, &p);
    uint64_t size = f->ctl.blk->hdr.ring_size;
    uint64_t tail;
    atomic_store(&p.r->tail, 1000);
    assert_int_equal(shmq_ring_tail(&p, size, 1000, &tail), 0);
    assert_int_equal(tail, 1000);
    atomic_store(&p.r->tail, 1000 + size);
    assert_int_equal(shmq_ring_tail(&p, size, 1000, &tail), 0); /* a full ring */
    atomic_store(&p.r->tail, 1000 + size + 8);
    assert_int_equal(shmq_ring_tail(&p, size, 1000, &tail), 1); /* more than the ring */
    atomic_store(&p.r->tail, 992);
    assert_int_equal(shmq_ring_tail(&p, size, 1000, &tail), -1); /* behind our head */
    atomic_store(&p.r->tail, UINT64_MAX);
    assert_int_equal(shmq_ring_tail(&p, size, 1000, &tail), 1);
    shmq_ring_unmap(&p);
}

static void test_complete_answers_only_the_pending_request(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t m;
    take_ring(f, &m);
    shmq_ring_shm_t *r = m.r;
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
    shmq_ring_unmap(&m);
}

static void test_fail_pending_answers_every_waiting_slot(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t m;
    take_ring(f, &m);
    shmq_ring_shm_t *r = m.r;
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
    shmq_ring_unmap(&m);
}

/* Each answer carries its own request's text; nothing of an earlier answer or of the
 * producer's own older errors comes along, and an overlong text is cut, not overrun. */
static void test_completion_error_text_is_the_requests_own(void **state)
{
    fixture_t *f = *state;
    shmq_ring_map_t m;
    take_ring(f, &m);
    shmq_ring_shm_t *r = m.r;
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
    shmq_ring_unmap(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_assign_gives_a_sealed_ring_of_its_own, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_ring_goes_orphaned_drained_free_and_returns_under_a_new_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_fails_with_ebusy_when_every_ring_is_taken,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_writer_refuses_a_ring_whose_header_its_producer_rewrote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_is_judged_against_the_writers_head, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_answers_only_the_pending_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fail_pending_answers_every_waiting_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_completion_error_text_is_the_requests_own, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
