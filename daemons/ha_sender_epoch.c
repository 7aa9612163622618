/*
 * The ha-sender's handler of request code 2 (ha_sender.h): the epoch
 * table is read from the file each time (shmqd writes it: at a master's
 * first start and at a promotion, before any record of the epoch exists),
 * and the log end is `wrote` read after it, so every entry the answer names
 * starts at or below the end it gives.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/bytes.h"
#include "format/epoch.h"
#include "ha_sender.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

int ha_sender_epoch_answer(shmq_worker_t *w, uint8_t **body, size_t *len)
{
    shmq_epoch_table_t *t = malloc(sizeof(*t));
    uint8_t *b = malloc(8 + SHMQ_EPOCH_FILE_MAX);
    if (t == NULL || b == NULL) {
        free(t);
        free(b);
        return shmq_error_set(-ENOMEM, "no memory for the epoch table");
    }
    int rc = shmq_epoch_load(w->ctl.root, t);
    if (rc < 0) {
        free(t);
        free(b);
        return rc;
    }
    int64_t end = shmq_ctl_load(&w->ctl.blk->wrote);
    shmq_put_be64(b, (uint64_t)end);
    int n = t->n > 0 ? shmq_epoch_format(t, (char *)b + 8, SHMQ_EPOCH_FILE_MAX) : 0;
    free(t);
    if (n < 0) {
        free(b);
        return n;
    }
    *body = b;
    *len = 8 + (size_t)n;
    return 0;
}
