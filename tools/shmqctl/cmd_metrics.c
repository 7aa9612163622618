/*
 * shmqctl metrics: a running store's metrics in the Prometheus text format
 * (shm/metrics.h), read from its control block attached read-only: the
 * same text the shmq-metrics worker serves over HTTP (metricsListen), for a
 * node exporter's textfile collector or a one-off look.
 *
 * Exit: 0, 1 not running.
 */
#include <stdio.h>
#include <stdlib.h>

#include "shm/ctl.h"
#include "shm/metrics.h"
#include "shmqctl.h"

int shmqctl_cmd_metrics(shmqctl_args_t *a)
{
    shmq_ctl_t ctl;
    int rc = shmqctl_attach_running(a->cfg.store_path_root_dir, SHMQ_CTL_RDONLY, &ctl);
    if (rc != 0) {
        return rc;
    }
    char *text = NULL;
    size_t len = 0;
    rc = shmq_metrics_text(&ctl, &text, &len);
    shmq_ctl_detach(&ctl);
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot format the metrics");
    }
    int ret = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? SHMQCTL_EXIT_OK
                                                                         : SHMQCTL_EXIT_FAIL;
    free(text);
    return ret;
}
