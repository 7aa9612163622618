/*
 * shmq-ha-sender's metadata answer (request code 1, format/ha_frame.h):
 * what a slave needs to keep this master's topics, subscription groups,
 * delay offsets and consumer offsets (RocketMQ's SlaveSynchronize asks for
 * the same four tables).  Built on the sender's loop at each request and
 * read-only here: nothing of the store changes.
 *
 * Where each comes from: the topic table is saved to topics.json under the
 * topic lock at every change (and the file keeps attributes the table does
 * not hold); subscriptionGroup.json is itself what consumers read; the
 * scheduler's delay offsets live in its process and are saved to
 * delayOffset.json: those three are sent as on disk.  Consumer offsets
 * are committed into the consumer area and saved by the flusher only every
 * 5 s: they are sent from the area, as of this request.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/ha_frame.h"
#include "format/store_files.h"
#include "ha_sender.h"
#include "shmq/errors.h"

#define META_FILES 4

typedef struct meta_part {
    const char *name;
    char *data;
    size_t len;
} meta_part_t;

static int read_config(const shmq_ctl_t *ctl, meta_part_t *p)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/config/%s", ctl->root, p->name);
    int rc = shmq_store_file_read_all(path, SHMQ_HA_ANSWER_MAX, &p->data, &p->len);
    if (rc == -ENOENT) {
        return 0; /* this master has none: left out */
    }
    if (rc < 0) {
        return shmq_error_set(rc, "%s: %s", path, shmq_strerror(rc));
    }
    return 0;
}

int ha_sender_meta_body(const shmq_ctl_t *ctl, uint8_t **body, size_t *len)
{
    meta_part_t parts[META_FILES] = {
        {.name = "topics.json"},
        {.name = "subscriptionGroup.json"},
        {.name = "delayOffset.json"},
        {.name = "consumerOffset.json"},
    };
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = read_config(ctl, &parts[i]);
    }
    if (rc == 0) {
        shmq_offset_table_t t;
        rc = shmq_ctl_offsets_snapshot(ctl, &t);
        if (rc == 0) {
            rc = shmq_consumer_offsets_dump(&t, &parts[3].data, &parts[3].len);
            shmq_offset_table_free(&t);
        }
        if (rc < 0) {
            rc = shmq_error_set(rc, "the consumer offsets: %s", shmq_strerror(rc));
        }
    }
    size_t total = 0;
    for (int i = 0; i < META_FILES && rc == 0; i++) {
        if (parts[i].data != NULL) {
            total += shmq_ha_file_size(strlen(parts[i].name), parts[i].len);
        }
    }
    if (rc == 0 && total > SHMQ_HA_ANSWER_MAX) {
        rc =
            shmq_error_set(SHMQ_E_TOO_BIG, "the metadata takes %zu bytes, more than an answer's %d",
                           total, SHMQ_HA_ANSWER_MAX);
    }
    uint8_t *out = NULL;
    if (rc == 0) {
        out = malloc(total > 0 ? total : 1);
        if (out == NULL) {
            rc = shmq_error_set(-ENOMEM, "the metadata answer: %zu bytes", total);
        }
    }
    size_t at = 0;
    for (int i = 0; i < META_FILES; i++) {
        if (rc == 0 && parts[i].data != NULL) {
            at +=
                shmq_ha_file_encode(out + at, parts[i].name, parts[i].data, (uint32_t)parts[i].len);
        }
        free(parts[i].data);
    }
    if (rc < 0) {
        free(out);
        return rc;
    }
    *body = out;
    *len = at;
    return 0;
}
