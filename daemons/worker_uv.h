/*
 * The worker skeleton (worker.h) for roles that live on a libuv loop (the
 * ha-sender and the ha-receiver): the skeleton's idle sleeps in the loop,
 * bounded as every idle is, and the loop is closed with all its handles;
 * and the replication link both HA roles set up from broker.conf.
 */
#ifndef SHMQ_WORKER_UV_H
#define SHMQ_WORKER_UV_H

#include <stdbool.h>
#include <uv.h>

#include "format/config.h"
#include "net/net.h"

/*
 * A worker's idle on its loop: one turn of the loop (its I/O and timers),
 * at most timeout_ms (the skeleton's bound) through timer, a timer of that
 * loop the caller initialised for this alone.
 */
void shmq_worker_uv_idle(uv_loop_t *loop, uv_timer_t *timer, int timeout_ms);

/* Close every handle of the loop not closing yet, run their close callbacks, close the loop. */
void shmq_worker_uv_close(uv_loop_t *loop);

/*
 * The replication link's TLS context for one side (server: the ha-sender):
 * haSecretFile's key, or *out NULL for haPlainLink.  A bad secret file is
 * logged; SHMQ_E_CONFIG then (the worker exits with a configuration error).
 */
int shmq_worker_ha_tls(const shmq_config_t *cfg, bool server, shmq_net_tls_t **out);

/* The link for log lines: "TLS 1.3, pre-shared key of FILE" or the plain protocol's warning. */
const char *shmq_worker_ha_link(const shmq_config_t *cfg);

#endif
