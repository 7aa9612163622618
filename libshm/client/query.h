/*
 * The admin (query) handle's entry points for shmq's own tools and tests,
 * which carry a full configuration (include/shmq/admin.h is the public API).
 */
#ifndef SHMQ_QUERY_H
#define SHMQ_QUERY_H

#include <stdbool.h>

#include "format/config.h"
#include "shmq/admin.h"

/*
 * Open the store cfg->store_path_root_dir names, with cfg's sizes unless the
 * store is running (then the broker's configuration is used).
 */
int shmq_admin_open_config(const shmq_config_t *cfg, shmq_admin_t **out);

/* True while the handle follows a running broker's control block. */
bool shmq_admin_running(const shmq_admin_t *a);

#endif
