/*
 * Registration frames and the client side of <root>/shmq.sock (see reg.h):
 * encoding, the decoder every received frame goes through (fuzzed by
 * tests/fuzz/fuzz_reg.c), connecting, and one request/reply round trip with
 * an optional descriptor (SCM_RIGHTS).  The master's side is reg_server.c.
 */
#include "shm/reg.h"

#include "format/names.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shmq/errors.h"

/* ---- little-endian fields ------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* ---- frames ------------------------------------------------------------------------- */

#define COMMIT_FIXED 16 /* group_len, topic_len, queue_id, offset */
#define OK_SIZE      24 /* status, ring, claims, ring_size */
#define TOPIC_FIXED  8  /* topic_len, zero, queues */

int shmq_reg_encode(const shmq_reg_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    uint8_t *p = buf + SHMQ_REG_HDR_SIZE;
    if (cap < SHMQ_REG_FRAME_MAX) {
        return shmq_error_set(SHMQ_E_ARG, "registration frame buffer of %zu bytes", cap);
    }
    switch (m->type) {
    case SHMQ_REG_REGISTER_PRODUCER:
        break;
    case SHMQ_REG_COMMIT_OFFSET:
    case SHMQ_REG_JOIN_GROUP:
    case SHMQ_REG_RELEASE_QUEUE: {
        size_t glen = strnlen(m->group, sizeof(m->group));
        size_t tlen = strnlen(m->topic, sizeof(m->topic));
        size_t elen = m->type == SHMQ_REG_JOIN_GROUP ? strnlen(m->expr, SHMQ_REG_EXPR_MAX) : 0;
        if (glen == 0 || glen > SHMQ_GROUP_MAX || tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY) {
            return shmq_error_set(SHMQ_E_ARG, "offset commit: group or topic name length");
        }
        put16(p, (uint16_t)glen);
        put16(p + 2, (uint16_t)tlen);
        put32(p + 4, (uint32_t)m->queue_id);
        put64(p + 8, (uint64_t)m->offset);
        memcpy(p + COMMIT_FIXED, m->group, glen);
        memcpy(p + COMMIT_FIXED + glen, m->topic, tlen);
        memcpy(p + COMMIT_FIXED + glen + tlen, m->expr, elen);
        len = COMMIT_FIXED + glen + tlen + elen;
        break;
    }
    case SHMQ_REG_ENSURE_TOPIC: {
        size_t tlen = strnlen(m->topic, sizeof(m->topic));
        if (tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY) {
            return shmq_error_set(SHMQ_E_ARG, "topic request: topic name length");
        }
        put16(p, (uint16_t)tlen);
        put16(p + 2, 0);
        put32(p + 4, (uint32_t)m->queue_id);
        memcpy(p + TOPIC_FIXED, m->topic, tlen);
        len = TOPIC_FIXED + tlen;
        break;
    }
    case SHMQ_REG_REPLY_OK:
        put32(p, 0);
        put32(p + 4, m->ring);
        put64(p + 8, m->claims);
        put64(p + 16, m->ring_size);
        len = OK_SIZE;
        break;
    case SHMQ_REG_REPLY_ERROR: {
        size_t tlen = strnlen(m->text, SHMQ_REG_TEXT_MAX);
        put32(p, (uint32_t)(m->status < 0 ? m->status : SHMQ_E_ARG));
        put16(p + 4, (uint16_t)tlen);
        memcpy(p + 6, m->text, tlen);
        len = 6 + tlen;
        break;
    }
    default:
        return shmq_error_set(SHMQ_E_ARG, "registration frame type %u unknown", m->type);
    }
    put32(buf, SHMQ_REG_MAGIC);
    put16(buf + 4, m->type);
    put16(buf + 6, (uint16_t)len);
    return (int)(SHMQ_REG_HDR_SIZE + len);
}

int shmq_reg_decode(const uint8_t *buf, size_t len, shmq_reg_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len < SHMQ_REG_HDR_SIZE || len > SHMQ_REG_FRAME_MAX) {
        return shmq_error_set(SHMQ_E_CORRUPT, "registration frame of %zu bytes: expected %d..%d",
                              len, SHMQ_REG_HDR_SIZE, SHMQ_REG_FRAME_MAX);
    }
    uint32_t magic = get32(buf);
    if (magic != SHMQ_REG_MAGIC) {
        return shmq_error_set(SHMQ_E_CORRUPT, "registration frame magic %08x: expected %08x", magic,
                              SHMQ_REG_MAGIC);
    }
    out->type = get16(buf + 4);
    size_t plen = get16(buf + 6);
    if (plen != len - SHMQ_REG_HDR_SIZE) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "registration frame says %zu payload bytes, carries %zu", plen,
                              len - SHMQ_REG_HDR_SIZE);
    }
    const uint8_t *p = buf + SHMQ_REG_HDR_SIZE;
    switch (out->type) {
    case SHMQ_REG_REGISTER_PRODUCER:
        if (plen != 0) {
            return shmq_error_set(SHMQ_E_CORRUPT, "producer registration with %zu payload bytes",
                                  plen);
        }
        return 0;
    case SHMQ_REG_COMMIT_OFFSET:
    case SHMQ_REG_JOIN_GROUP:
    case SHMQ_REG_RELEASE_QUEUE: {
        if (plen < COMMIT_FIXED) {
            return shmq_error_set(SHMQ_E_CORRUPT, "offset commit of %zu payload bytes", plen);
        }
        size_t glen = get16(p);
        size_t tlen = get16(p + 2);
        /* JOIN_GROUP: the expression is the rest */
        size_t elen = COMMIT_FIXED + glen + tlen <= plen ? plen - COMMIT_FIXED - glen - tlen : 0;
        if (out->type != SHMQ_REG_JOIN_GROUP) {
            elen = 0;
        }
        if (glen == 0 || glen > SHMQ_GROUP_MAX || tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY ||
            elen > SHMQ_REG_EXPR_MAX || COMMIT_FIXED + glen + tlen + elen != plen) {
            return shmq_error_set(SHMQ_E_CORRUPT,
                                  "offset commit: group of %zu bytes and topic of %zu bytes in "
                                  "%zu payload bytes",
                                  glen, tlen, plen);
        }
        out->queue_id = (int32_t)get32(p + 4);
        out->offset = (int64_t)get64(p + 8);
        const char *g = (const char *)p + COMMIT_FIXED;
        const char *t = g + glen;
        if (memchr(g, '\0', glen) != NULL || memchr(t, '\0', tlen) != NULL) {
            return shmq_error_set(SHMQ_E_CORRUPT, "offset commit: a name holds a NUL byte");
        }
        memcpy(out->group, g, glen);
        memcpy(out->topic, t, tlen);
        const char *e = t + tlen;
        for (size_t i = 0; i < elen; i++) {
            if ((unsigned char)e[i] < 0x20 || (unsigned char)e[i] >= 0x7f) {
                return shmq_error_set(SHMQ_E_CORRUPT,
                                      "group join: the subscription holds byte 0x%02x",
                                      (unsigned char)e[i]);
            }
        }
        memcpy(out->expr, e, elen);
        return 0;
    }
    case SHMQ_REG_ENSURE_TOPIC: {
        if (plen < TOPIC_FIXED) {
            return shmq_error_set(SHMQ_E_CORRUPT, "topic request of %zu payload bytes", plen);
        }
        size_t tlen = get16(p);
        if (tlen == 0 || tlen > SHMQ_TOPIC_MAX_ANY || get16(p + 2) != 0 ||
            TOPIC_FIXED + tlen != plen) {
            return shmq_error_set(SHMQ_E_CORRUPT,
                                  "topic request: topic of %zu bytes in %zu payload bytes", tlen,
                                  plen);
        }
        out->queue_id = (int32_t)get32(p + 4);
        const char *t = (const char *)p + TOPIC_FIXED;
        if (memchr(t, '\0', tlen) != NULL) {
            return shmq_error_set(SHMQ_E_CORRUPT, "topic request: the name holds a NUL byte");
        }
        memcpy(out->topic, t, tlen);
        return 0;
    }
    case SHMQ_REG_REPLY_OK:
        if (plen != OK_SIZE) {
            return shmq_error_set(SHMQ_E_CORRUPT, "reply of %zu payload bytes: expected %d", plen,
                                  OK_SIZE);
        }
        out->status = (int32_t)get32(p);
        out->ring = get32(p + 4);
        out->claims = get64(p + 8);
        out->ring_size = get64(p + 16);
        if (out->status != 0) {
            return shmq_error_set(SHMQ_E_CORRUPT, "OK reply with status %d", (int)out->status);
        }
        return 0;
    case SHMQ_REG_REPLY_ERROR: {
        if (plen < 6) {
            return shmq_error_set(SHMQ_E_CORRUPT, "error reply of %zu payload bytes", plen);
        }
        out->status = (int32_t)get32(p);
        size_t tlen = get16(p + 4);
        if (tlen > SHMQ_REG_TEXT_MAX || 6 + tlen != plen || out->status >= 0) {
            return shmq_error_set(SHMQ_E_CORRUPT,
                                  "error reply: status %d, text of %zu bytes in %zu payload bytes",
                                  (int)out->status, tlen, plen);
        }
        /* Shown to a user: printable bytes only. */
        for (size_t i = 0; i < tlen; i++) {
            unsigned char c = p[6 + i];
            out->text[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
        }
        out->text[tlen] = '\0';
        return 0;
    }
    default:
        return shmq_error_set(SHMQ_E_ARG, "registration frame type %u unknown", out->type);
    }
}

int shmq_reg_sock_path(const char *root, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", root, SHMQ_REG_SOCK_NAME);
    if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        return shmq_error_set(-ENAMETOOLONG,
                              "store %s: path of its socket %s is too long for a Unix socket "
                              "(%zu bytes at most)",
                              root, SHMQ_REG_SOCK_NAME,
                              sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    }
    return 0;
}

/* ---- client ----------------------------------------------------------------------------- */

int shmq_reg_connect(const char *root)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = shmq_reg_sock_path(root, sa.sun_path, sizeof(sa.sun_path));
    if (rc < 0) {
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "socket: %s", strerror(-rc));
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        return fd;
    }
    rc = -errno;
    close(fd);
    if (rc == -ENOENT || rc == -ECONNREFUSED) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "store %s is not running (no master at %s)", root,
                              sa.sun_path);
    }
    if (rc == -EACCES || rc == -EPERM) {
        struct stat st;
        char grp[64] = "?";
        if (stat(sa.sun_path, &st) == 0) {
            struct group g, *res = NULL;
            char gbuf[1024];
            if (getgrgid_r(st.st_gid, &g, gbuf, sizeof(gbuf), &res) == 0 && res != NULL) {
                snprintf(grp, sizeof(grp), "%s", res->gr_name);
            } else {
                snprintf(grp, sizeof(grp), "%ld", (long)st.st_gid);
            }
        }
        return shmq_error_set(rc,
                              "store %s: cannot open its socket %s: %s (uid %ld; clients must be "
                              "the store's user or in group %s)",
                              root, sa.sun_path, strerror(-rc), (long)geteuid(), grp);
    }
    return shmq_error_set(rc, "connect %s: %s", sa.sun_path, strerror(-rc));
}

int shmq_reg_call(int fd, const shmq_reg_msg_t *req, shmq_reg_msg_t *rep, int *fd_out,
                  int timeout_ms)
{
    uint8_t buf[SHMQ_REG_FRAME_MAX];
    if (fd_out != NULL) {
        *fd_out = -1;
    }
    int len = shmq_reg_encode(req, buf, sizeof(buf));
    if (len < 0) {
        return len;
    }
    bool sent = send(fd, buf, (size_t)len, MSG_NOSIGNAL) == len;
    int send_err = sent ? 0 : errno;
    if (!sent && send_err != EPIPE && send_err != ECONNRESET) {
        return shmq_error_set(-send_err, "store master: request not sent: %s", strerror(send_err));
    }
    /* Not sent because the master hung up: a refusal it gave at once may still be queued. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int prc;
    do {
        prc = poll(&pfd, 1, sent ? timeout_ms : 0);
    } while (prc < 0 && errno == EINTR);
    if (!sent && prc <= 0) {
        return shmq_error_set(SHMQ_E_NOT_FOUND, "store master: request not sent: %s",
                              strerror(send_err));
    }
    if (prc == 0) {
        return shmq_error_set(-ETIMEDOUT, "store master: no reply in %d ms", timeout_ms);
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf.space,
                        .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == ECONNRESET) {
        /* The master closed without reading our request (a refusal at accept): the kernel
         * reports the reset first, then still delivers the reply it queued. */
        mh.msg_controllen = sizeof(cbuf);
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    }
    if (n <= 0) {
        int err = n == 0 ? 0 : errno;
        if (n == 0 || err == ECONNRESET) {
            return shmq_error_set(SHMQ_E_NOT_FOUND, "store master closed the connection");
        }
        return shmq_error_set(-err, "store master: reply not received: %s", strerror(err));
    }
    int passed = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int))) {
            memcpy(&passed, CMSG_DATA(c), sizeof(int));
        }
    }
    int rc = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0
                 ? shmq_error_set(SHMQ_E_CORRUPT, "store master: reply truncated")
                 : shmq_reg_decode(buf, (size_t)n, rep);
    if (rc == 0 && rep->type == SHMQ_REG_REPLY_ERROR) {
        rc = shmq_error_set(rep->status, "%s", rep->text);
    } else if (rc == 0 && rep->type != SHMQ_REG_REPLY_OK) {
        rc = shmq_error_set(SHMQ_E_CORRUPT, "store master: reply of type %u", rep->type);
    }
    if (passed >= 0) {
        if (rc == 0 && fd_out != NULL) {
            *fd_out = passed;
        } else {
            close(passed);
        }
    }
    return rc;
}

bool shmq_reg_peer_alive(int fd)
{
    if (fd < 0) {
        return false;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) <= 0) {
        return true; /* nothing to read, no hang-up */
    }
    /* The master sends nothing unasked: anything readable is its end. */
    return (pfd.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0;
}

int shmq_reg_request_topic(const char *root, const char *topic, int32_t queues)
{
    shmq_reg_msg_t req = {.type = SHMQ_REG_ENSURE_TOPIC, .queue_id = queues};
    snprintf(req.topic, sizeof(req.topic), "%s", topic);
    int fd = shmq_reg_connect(root);
    if (fd < 0) {
        return fd;
    }
    shmq_reg_msg_t rep;
    int rc = shmq_reg_call(fd, &req, &rep, NULL, SHMQ_REG_TIMEOUT_MS);
    close(fd);
    return rc;
}
