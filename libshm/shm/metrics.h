/*
 * A running store's metrics in the Prometheus text exposition format
 * (version 0.0.4), read from its control block: positions, message and byte
 * counters (in all and per topic), refusals by cause, the send latency and
 * flush duration histograms, disk usage, workers (up,
 * restarts, heartbeat age), per queue the messages stored and per consumer
 * group the committed offset and the lag, the scheduler, replication.
 * Reading takes relaxed loads of shared counters: it never takes a lock
 * and never slows the processes that write them.  Served by `shmqctl
 * metrics` and by the shmq-metrics worker (metricsListen);
 * docs/operations.md, "Metrics", lists every series.
 */
#ifndef SHMQ_METRICS_H
#define SHMQ_METRICS_H

#include <stddef.h>

#include "shm/ctl.h"

/* The exposition text for ctl (attached, read-only is enough) in a malloc'd
 * buffer *out of *len bytes (the caller frees it).  0, or -ENOMEM. */
int shmq_metrics_text(const shmq_ctl_t *ctl, char **out, size_t *len);

#endif
