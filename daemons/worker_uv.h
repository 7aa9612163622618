/*
 * The worker skeleton (worker.h) for roles that live on a libuv loop (the
 * ha-sender and the ha-receiver): the skeleton's idle sleeps in the loop,
 * bounded as every idle is, and the loop is closed with all its handles.
 */
#ifndef SHMQ_WORKER_UV_H
#define SHMQ_WORKER_UV_H

#include <uv.h>

/*
 * A worker's idle on its loop: one turn of the loop (its I/O and timers),
 * at most timeout_ms (the skeleton's bound) through timer, a timer of that
 * loop the caller initialised for this alone.
 */
void shmq_worker_uv_idle(uv_loop_t *loop, uv_timer_t *timer, int timeout_ms);

/* Close every handle of the loop not closing yet, run their close callbacks, close the loop. */
void shmq_worker_uv_close(uv_loop_t *loop);

#endif
