/*
 * A unit test's store directory with a control block: the directory (with
 * its lock file), the default configuration rooted there, and the master's
 * handle, created and ready.  Include after cmocka.h.
 */
#ifndef SHMQ_TEST_CTL_FIXTURE_H
#define SHMQ_TEST_CTL_FIXTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tmp_tree.h"
#include "format/config.h"
#include "shm/ctl.h"

typedef struct fixture {
    char dir[64];
    shmq_config_t cfg;
    shmq_ctl_t ctl; /* the master's handle (created, ready) */
} fixture_t;

/* The directory and its lock file, no control block yet. */
static inline fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-ctl-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return NULL;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/lock", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(f);
        return NULL;
    }
    close(fd);
    shmq_config_defaults(&f->cfg);
    snprintf(f->cfg.store_path_root_dir, sizeof(f->cfg.store_path_root_dir), "%s", f->dir);
    f->ctl.lock_fd = -1;
    f->ctl.topic_lock_fd = -1;
    return f;
}

/* A created, ready control block. */
static inline int setup_ready(void **state)
{
    fixture_t *f = fixture_new();
    if (f == NULL || shmq_ctl_create(&f->cfg, f->dir, &f->ctl) != 0) {
        free(f);
        return -1;
    }
    shmq_ctl_set_ready(&f->ctl);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fixture_t *f = *state;
    shmq_ctl_detach(&f->ctl);
    shmq_ctl_unlink(f->dir);
    tmp_tree_remove(f->dir);
    free(f);
    return 0;
}

#endif
