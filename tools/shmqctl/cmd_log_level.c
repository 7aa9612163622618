/*
 * shmqctl log-level [LEVEL]: the level every process of a running store logs
 * up to (ERROR, WARN, INFO, DEBUG), read from or set in the control block's
 * operator settings.  The processes read it at each line: a change holds at
 * once, until the store stops (the next start takes logLevel from
 * broker.conf again).  Setting needs write access to the control block (the
 * store's user).
 *
 * Exit: 0, 1 not running or no access, 2 unknown level.
 */
#include <stdio.h>

#include "base/log.h"
#include "format/config.h"
#include "shm/ctl.h"
#include "shmqctl.h"

int shmqctl_cmd_log_level(shmqctl_args_t *a)
{
    int level = -1;
    if (a->npos > 0) {
        level = shmq_log_level_parse(a->pos[0]);
        if (level < 0) {
            return shmqctl_usage_error(a->cmd, "unknown level '%s' (ERROR, WARN, INFO, DEBUG)",
                                       a->pos[0]);
        }
    }
    shmq_ctl_t ctl;
    int rc =
        shmqctl_attach_running(a->cfg.store_path_root_dir, level < 0 ? SHMQ_CTL_RDONLY : 0, &ctl);
    if (rc != 0) {
        return rc;
    }
    _Atomic int32_t *word = &ctl.blk->ops.log_level;
    /* relaxed: a setting, read by every process at each line */
    int32_t old = atomic_load_explicit(word, memory_order_relaxed);
    if (level >= 0) {
        atomic_store_explicit(word, level, memory_order_relaxed);
        printf("log level: %s (was %s)\n", shmq_log_level_text(level), shmq_log_level_text(old));
    } else {
        printf("log level: %s\n", shmq_log_level_text(old));
    }
    shmq_ctl_detach(&ctl);
    return SHMQCTL_EXIT_OK;
}
