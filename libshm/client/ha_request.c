/*
 * A blocking client of shmq's requests on the HA port (ha_request.h).
 */
#include "client/ha_request.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/hostport.h"
#include "format/ha_frame.h"
#include "shmq/errors.h"

/* Wait for fd to be ready for events until deadline (monotonic ms). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - shmq_mono_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

static int read_full(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0) {
            return rc;
        }
        ssize_t n = read(fd, buf + got, len - got);
        if (n == 0) {
            return -ECONNRESET;
        }
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            return -errno;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    return 0;
}

static int connect_to(const char *hostport, int64_t deadline, int *out)
{
    char host[256], port[16];
    int portnum;
    int rc = shmq_hostport_split(hostport, host, sizeof(host), &portnum);
    if (rc < 0) {
        return rc;
    }
    snprintf(port, sizeof(port), "%d", portnum);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        return shmq_error_set(-EHOSTUNREACH, "%s: cannot resolve", hostport);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -errno;
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (rc < 0) {
        rc = wait_fd(fd, POLLOUT, deadline);
        int err = 0;
        socklen_t len = sizeof(err);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
            rc = -err;
        }
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    *out = fd;
    return 0;
}

int shmq_ha_fetch_epochs(const char *hostport, int timeout_ms, shmq_epoch_table_t *t, int64_t *end)
{
    int64_t deadline = shmq_mono_ms() + timeout_ms;
    int fd = -1;
    int rc = connect_to(hostport, deadline, &fd);
    if (rc < 0) {
        return shmq_error_set(rc, "master %s: %s", hostport, shmq_strerror(rc));
    }
    uint8_t req[SHMQ_HA_REQ_SIZE];
    shmq_ha_request_encode(SHMQ_HA_REQ_EPOCH, req);
    uint8_t *body = NULL;
    if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
        rc = shmq_error_set(-EPIPE, "master %s: cannot send the request", hostport);
        goto out;
    }
    uint8_t hdr[SHMQ_HA_ANSWER_SIZE];
    rc = read_full(fd, hdr, sizeof(hdr), deadline);
    if (rc < 0) {
        rc = shmq_error_set(rc, "master %s: no answer to the epoch request: %s", hostport,
                            shmq_strerror(rc));
        goto out;
    }
    int32_t status;
    uint32_t len;
    if (shmq_ha_answer_header_decode(hdr, &status, &len) < 0 || len > 8 + SHMQ_EPOCH_FILE_MAX ||
        (status == 0 && len < 8)) {
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
    body = malloc(len);
    if (body == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = read_full(fd, body, len, deadline);
    if (rc < 0) {
        rc = shmq_error_set(rc, "master %s: the answer was cut: %s", hostport, shmq_strerror(rc));
        goto out;
    }
    *end = (int64_t)shmq_get_be64(body);
    t->n = 0;
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
    free(body);
    close(fd);
    return rc;
}
