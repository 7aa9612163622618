/*
 * A blocking client of shmq's requests on the HA port (ha_request.h), over
 * net's one-shot exchange: the link's TLS when the store has one.
 */
#include "client/ha_request.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/bytes.h"
#include "base/hostport.h"
#include "format/ha_frame.h"
#include "shmq/errors.h"

/* The length of an answer (its head and body) once its head is in. */
static long answer_size(const uint8_t *buf, size_t len)
{
    if (len < SHMQ_HA_ANSWER_HEAD_SIZE) {
        return 0;
    }
    return SHMQ_HA_ANSWER_HEAD_SIZE + (long)shmq_get_be32(buf + 4);
}

int shmq_ha_fetch_epochs(const char *hostport, const shmq_net_tls_t *tls, int timeout_ms,
                         shmq_epoch_table_t *t, int64_t *end)
{
    char addr[300];
    int rc = shmq_hostport_resolve(hostport, addr, sizeof(addr));
    if (rc < 0) {
        return shmq_error_set(-EHOSTUNREACH, "master %s: cannot resolve", hostport);
    }
    uint8_t req[SHMQ_HA_REQ_SIZE];
    shmq_ha_request_encode(SHMQ_HA_REQ_EPOCH, req);
    uint8_t *ans = NULL;
    size_t alen = 0;
    rc = shmq_net_exchange(addr, tls, req, sizeof(req), answer_size,
                           SHMQ_HA_ANSWER_HEAD_SIZE + 8 + SHMQ_EPOCH_FILE_MAX, timeout_ms, &ans,
                           &alen);
    if (rc == -EMSGSIZE) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "master %s: the answer to the epoch request is too long to be one",
                              hostport);
    }
    if (rc < 0) {
        return rc; /* a transport error (a TLS failure: -EACCES), detail set */
    }
    int32_t status;
    uint32_t len;
    const uint8_t *body = ans + SHMQ_HA_ANSWER_HEAD_SIZE;
    if (shmq_ha_answer_decode(ans, &status, &len) < 0 || (status == 0 && len < 8)) {
        rc = shmq_error_set(SHMQ_E_CORRUPT,
                            "master %s: the answer to the epoch request is not one (an shmq "
                            "master answers; a RocketMQ master does not)",
                            hostport);
        goto out;
    }
    if (status != 0) {
        /* An answer, not a transport error: a status outside shmq's codes is not one. */
        bool known = status <= SHMQ_E_BASE && status > SHMQ_E_LAST;
        rc = shmq_error_set(known ? status : SHMQ_E_CORRUPT,
                            "master %s refused the epoch request: %s", hostport,
                            shmq_strerror(status));
        goto out;
    }
    *end = (int64_t)shmq_get_be64(body);
    t->n = 0;
    rc = 0;
    if (*end < 0) {
        rc = shmq_error_set(SHMQ_E_CORRUPT, "master %s: a log end of %lld", hostport,
                            (long long)*end);
    } else if (len > 8) {
        rc = shmq_epoch_parse((const char *)body + 8, len - 8, t);
        if (rc < 0) {
            rc = shmq_error_wrap(rc, "master %s's epoch table", hostport);
        }
    }
out:
    free(ans);
    return rc;
}
