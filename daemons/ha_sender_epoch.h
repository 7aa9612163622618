/*
 * The ha-sender's answer to request code 2 (SHMQ_HA_REQ_EPOCH): this
 * master's epoch table and where its log ends, for a slave that must find
 * the last offset both logs agree on before it follows (docs/formats.md
 * "HA requests").
 */
#ifndef SHMQ_HA_SENDER_EPOCH_H
#define SHMQ_HA_SENDER_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/*
 * The body of the answer in a malloc'd *body of *len bytes: the log end
 * (`wrote`, 8 bytes big-endian), then <root>/epochFileCheckpoint's text as
 * shmq_epoch_format writes it (empty when this store has no table).  0, or
 * a negative error (with a detail) for the answer's status.
 */
int ha_sender_epoch_answer(shmq_worker_t *w, uint8_t **body, size_t *len);

#endif
