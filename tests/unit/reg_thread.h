/*
 * For unit tests that run clients without a master: serve <root>/shmq.sock
 * (offset commits; rings through the given operations) from a thread, as
 * the master's loop does.  Include once per test program.
 */
#ifndef SHMQ_TEST_REG_THREAD_H
#define SHMQ_TEST_REG_THREAD_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "shm/reg.h"

typedef struct reg_thread {
    shmq_reg_server_t srv;
    pthread_t tid;
    atomic_bool stop;
    bool running;
} reg_thread_t;

static void *reg_thread_main(void *arg)
{
    reg_thread_t *t = arg;
    static struct pollfd pfd[1 + SHMQ_REG_MAX_CONNS];
    while (!atomic_load(&t->stop)) {
        size_t n = shmq_reg_server_pollfds(&t->srv, pfd, sizeof(pfd) / sizeof(pfd[0]));
        if (poll(pfd, n, 20) > 0) {
            shmq_reg_server_handle(&t->srv, pfd, n);
        }
    }
    return NULL;
}

/* Open the socket for ctl's store and serve it; 0 or a negative error. */
static int reg_thread_start(reg_thread_t *t, shmq_ctl_t *ctl, const shmq_config_t *cfg,
                            const shmq_reg_ring_ops_t *ops)
{
    memset(t, 0, sizeof(*t));
    int rc = shmq_reg_server_open(&t->srv, ctl, cfg, ops);
    if (rc < 0) {
        return rc;
    }
    if (pthread_create(&t->tid, NULL, reg_thread_main, t) != 0) {
        shmq_reg_server_close(&t->srv);
        return -1;
    }
    t->running = true;
    return 0;
}

static void reg_thread_stop(reg_thread_t *t)
{
    if (!t->running) {
        return;
    }
    atomic_store(&t->stop, true);
    pthread_join(t->tid, NULL);
    shmq_reg_server_close(&t->srv);
    t->running = false;
}

#endif
