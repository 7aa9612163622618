/*
 * Internal to shmq-ha-sender (daemons/ha_sender*.c): what the answers to
 * requests on the HA port (format/ha_frame.h) share with the link.
 *
 *   ha_sender.c       the link to each slave, and the dispatch of a
 *                     request connection to the answer of its code
 *   ha_sender_meta.c  the metadata answer (code 1): the four config files
 *   ha_sender_epoch.c the epoch answer (code 2): the log end and the epoch table
 */
#ifndef SHMQ_HA_SENDER_H
#define SHMQ_HA_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "shm/ctl.h"
#include "worker.h"

/*
 * The body of the metadata answer: named files (ha_frame.h) in this order:
 * topics.json, subscriptionGroup.json and delayOffset.json as they are on
 * disk (each replaced whole by a rename: a read sees one version), a file
 * this master lacks left out; consumerOffset.json made from the consumer
 * area (its file lags the flusher's save by up to 5 s).  0 and a malloc'd
 * *body of *len bytes, or an error with a detail (a file unreadable, the
 * body above SHMQ_HA_ANSWER_MAX).
 */
int ha_sender_meta_body(const shmq_ctl_t *ctl, uint8_t **body, size_t *len);

/*
 * The body of the epoch answer in a malloc'd *body of *len bytes: the log
 * end (`wrote`, 8 bytes big-endian), then <root>/epochFileCheckpoint's text
 * as shmq_epoch_format writes it (empty when this store has no table), for
 * a slave that must find the last offset both logs agree on before it
 * follows.  0, or a negative error (with a detail) for the answer's status.
 */
int ha_sender_epoch_answer(shmq_worker_t *w, uint8_t **body, size_t *len);

#endif
