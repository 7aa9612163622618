/*
 * The master's side of <root>/shmq.sock (see reg.h): the listening socket,
 * who may connect, and what a request does.  The master's loop polls the
 * descriptors this file gives it and calls shmq_reg_server_handle(); ring
 * assignment and orphaning are the master's (callbacks), offset commits
 * are validated and stored here.
 *
 * Nothing a client sends is trusted: a frame is received whole into a
 * fixed buffer (SOCK_SEQPACKET, MSG_TRUNC tells an oversized one), decoded
 * and checked (reg.c), and answered without blocking: a client that does
 * not read its replies is dropped.  Peers are identified by SO_PEERCRED.
 */
#include "shm/reg.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shm/groups.h"
#include "shm/schedule.h"
#include "shmq/errors.h"
#include "store/store.h"

_Static_assert(SHMQ_REG_MAX_CONNS == SHMQ_CTL_MAX_MEMBERS,
               "a connection's index is its member entry's");

/* ---- identities ---------------------------------------------------------------------- */

bool shmq_reg_peer_allowed(const shmq_reg_server_t *s, const shmq_acl_ident_t *id, char *why,
                           size_t len)
{
    if (id->owner || shmq_acl_ident_in_group(id, s->client_gid)) {
        return true;
    }
    char who[96];
    shmq_acl_ident_name(id->uid, who, sizeof(who));
    snprintf(why, len, "%s is not in group %s (clientUnixGroup)", who, s->client_group);
    return false;
}

/* ---- offsets ---------------------------------------------------------------------------- */

int shmq_reg_commit_offset(shmq_ctl_t *ctl, const shmq_reg_msg_t *req)
{
    size_t glen = strnlen(req->group, sizeof(req->group));
    size_t tlen = strnlen(req->topic, sizeof(req->topic));
    /* Acquire: the master's own state word (a stopping store saved its offsets already). */
    uint32_t st = atomic_load_explicit(&ctl->blk->hdr.state, memory_order_acquire);
    if (st == SHMQ_STATE_FINISHING || st == SHMQ_STATE_STOPPED || st == SHMQ_STATE_FAILED) {
        return shmq_error_set(-ESHUTDOWN, "store %s is stopping (%s): offset not committed",
                              ctl->root, shmq_store_state_name(st));
    }
    int rc = shmq_group_validate(req->group, glen);
    if (rc < 0) {
        return rc;
    }
    if ((rc = shmq_topic_validate(req->topic, tlen, SHMQ_TOPIC_MAX_ANY)) < 0) {
        return rc;
    }
    if (req->queue_id < 0 || req->queue_id > 65535) {
        return shmq_error_set(SHMQ_E_RANGE, "topic %s: queue id %d outside 0..65535", req->topic,
                              (int)req->queue_id);
    }
    int64_t max;
    shmq_ctl_queue_t *q = shmq_ctl_queue_find(ctl, req->topic, tlen, req->queue_id);
    if (q != NULL) {
        /* Acquire: the dispatcher's release; consumers never read at or above it. */
        max = atomic_load_explicit(&q->max_offset, memory_order_acquire);
    } else {
        shmq_ctl_topic_t t;
        if (shmq_ctl_topic_get(ctl, req->topic, tlen, &t) != 0) {
            return shmq_error_set(SHMQ_E_NOT_FOUND, "no topic %s in this store", req->topic);
        }
        int32_t nq =
            t.read_queue_nums > t.write_queue_nums ? t.read_queue_nums : t.write_queue_nums;
        if (req->queue_id >= nq) {
            return shmq_error_set(SHMQ_E_NOT_FOUND, "topic %s has no queue %d (%d queues)",
                                  req->topic, (int)req->queue_id, (int)nq);
        }
        max = 0; /* a queue that never held a message */
    }
    if (req->offset < 0) {
        return shmq_error_set(SHMQ_E_RANGE, "offset %lld of group %s in %s/%d is below 0",
                              (long long)req->offset, req->group, req->topic, (int)req->queue_id);
    }
    if (req->offset > max) {
        return shmq_error_set(SHMQ_E_RANGE,
                              "offset %lld of group %s in %s/%d is above the queue's max offset "
                              "%lld",
                              (long long)req->offset, req->group, req->topic, (int)req->queue_id,
                              (long long)max);
    }
    return shmq_ctl_offset_set(ctl, req->group, req->topic, req->queue_id, req->offset);
}

/* ---- topics ----------------------------------------------------------------------------- */

int shmq_reg_ensure_topic(shmq_ctl_t *ctl, const shmq_reg_msg_t *req)
{
    size_t tlen = strnlen(req->topic, sizeof(req->topic));
    const char *group = NULL;
    if (strncmp(req->topic, SHMQ_RETRY_PREFIX, strlen(SHMQ_RETRY_PREFIX)) == 0) {
        group = req->topic + strlen(SHMQ_RETRY_PREFIX);
    } else if (strncmp(req->topic, SHMQ_DLQ_PREFIX, strlen(SHMQ_DLQ_PREFIX)) == 0) {
        group = req->topic + strlen(SHMQ_DLQ_PREFIX);
    } else {
        return shmq_error_set(-EACCES,
                              "topic %s: clients may ask only for retry and dead-letter topics "
                              "(%s<group>, %s<group>)",
                              req->topic, SHMQ_RETRY_PREFIX, SHMQ_DLQ_PREFIX);
    }
    int rc = shmq_group_validate(group, tlen - (size_t)(group - req->topic));
    if (rc < 0) {
        return rc;
    }
    if (req->queue_id < 1 || req->queue_id > SHMQ_REG_TOPIC_QUEUES_MAX) {
        return shmq_error_set(SHMQ_E_RANGE, "topic %s: %d queues asked for: give 1..%d", req->topic,
                              (int)req->queue_id, SHMQ_REG_TOPIC_QUEUES_MAX);
    }
    return shmq_schedule_topic_ensure(ctl, req->topic, req->queue_id);
}

/* ---- the socket -------------------------------------------------------------------------- */

/* A socket left at the path by a master that died is removed (by name); anything else refused. */
static int clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : shmq_error_set(-errno, "%s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode)) {
        return shmq_error_set(-EEXIST,
                              "%s exists and is not a socket: shmq will not replace it (remove "
                              "it if it is not needed)",
                              path);
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        return shmq_error_set(-errno, "%s: cannot remove the stale socket: %s", path,
                              strerror(errno));
    }
    return 0;
}

int shmq_reg_server_open(shmq_reg_server_t *s, shmq_ctl_t *ctl, const shmq_config_t *cfg,
                         const shmq_reg_ring_ops_t *ops)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    s->ctl = ctl;
    s->store_uid = geteuid();
    if (ops != NULL) {
        s->ops = *ops;
    }
    for (int i = 0; i < SHMQ_REG_MAX_CONNS; i++) {
        s->conns[i].fd = -1;
        s->conns[i].ring = -1;
    }
    int rc = shmq_ctl_client_gid(cfg, ctl->root, &s->client_gid, s->client_group,
                                 sizeof(s->client_group));
    if (rc == 0 && cfg != NULL && cfg->acl_enable) {
        /* Refused at start rather than refusing every client later. */
        s->acl_enable = true;
        rc = shmq_acl_watch_poll(&s->acl, ctl->root, shmq_mono_ms());
        rc = rc > 0 ? 0 : rc;
    }
    if (rc < 0 || (rc = shmq_reg_sock_path(ctl->root, s->path, sizeof(s->path))) < 0 ||
        (rc = clear_stale(s->path)) < 0) {
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        return shmq_error_set(rc, "socket: %s", strerror(-rc));
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
    /* Created 0660 at once (bind applies the umask): never open to others, not even briefly. */
    mode_t old = umask(0117);
    int brc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int berr = errno;
    umask(old);
    if (brc != 0) {
        close(fd);
        return shmq_error_set(-berr, "bind %s: %s", s->path, strerror(berr));
    }
    /* The directory is the store's user's alone (checked at start): no one swaps the name. */
    if (lchown(s->path, (uid_t)-1, s->client_gid) != 0 || chmod(s->path, 0660) != 0) {
        rc = -errno;
        close(fd);
        unlink(s->path);
        return shmq_error_set(rc,
                              "%s: cannot give it to group %s (clientUnixGroup) with mode 0660: %s",
                              s->path, s->client_group, strerror(-rc));
    }
    if (listen(fd, 64) != 0) {
        rc = -errno;
        close(fd);
        unlink(s->path);
        return shmq_error_set(rc, "listen %s: %s", s->path, strerror(-rc));
    }
    s->listen_fd = fd;
    return 0;
}

static int conn_slot(const shmq_reg_server_t *s, const shmq_reg_conn_t *c)
{
    return (int)(c - s->conns);
}

static void member_note(shmq_reg_server_t *s, const shmq_reg_conn_t *c, const char *what)
{
    if (s->ops.member == NULL) {
        return;
    }
    const shmq_ctl_member_t *e = &s->ctl->cons->members[conn_slot(s, c)];
    char line[400];
    snprintf(line, sizeof(line), "group %s: member %s (pid %ld, topic %s '%s'%s) %s", e->group,
             e->client_id, (long)c->pid, e->topic, e->sub,
             (e->flags & SHMQ_MEMBER_BROADCASTING) ? ", broadcasting"
             : (e->flags & SHMQ_MEMBER_ORDERLY)    ? ", orderly"
                                                   : "",
             what);
    s->ops.member(s->ops.arg, line);
}

static void conn_close(shmq_reg_server_t *s, shmq_reg_conn_t *c)
{
    if (c->ring >= 0 && s->ops.orphan != NULL) {
        s->ops.orphan(s->ops.arg, (uint32_t)c->ring);
    }
    if (c->member) {
        member_note(s, c, "left");
        shmq_groups_leave(s->ctl, conn_slot(s, c));
        c->member = false;
    }
    close(c->fd);
    c->fd = -1;
    c->ring = -1;
}

void shmq_reg_server_close(shmq_reg_server_t *s)
{
    shmq_acl_watch_free(&s->acl);
    for (int i = 0; i < SHMQ_REG_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0) {
            close(s->conns[i].fd);
            s->conns[i].fd = -1;
        }
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
        unlink(s->path);
    }
}

size_t shmq_reg_server_pollfds(const shmq_reg_server_t *s, struct pollfd *pfd, size_t cap)
{
    size_t n = 0;
    if (s->listen_fd >= 0 && n < cap) {
        pfd[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    }
    for (int i = 0; i < SHMQ_REG_MAX_CONNS && n < cap; i++) {
        if (s->conns[i].fd >= 0) {
            pfd[n++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
        }
    }
    return n;
}

/* Send a reply (with a descriptor when fd >= 0) without blocking; false if it could not go. */
static bool reply(int sock, const shmq_reg_msg_t *m, int fd)
{
    uint8_t buf[SHMQ_REG_FRAME_MAX];
    int len = shmq_reg_encode(m, buf, sizeof(buf));
    if (len < 0) {
        return false;
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.space;
        mh.msg_controllen = sizeof(cbuf.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == len;
}

static bool reply_error(int sock, int status, const char *text)
{
    shmq_reg_msg_t m = {.type = SHMQ_REG_REPLY_ERROR, .status = status < 0 ? status : SHMQ_E_ARG};
    snprintf(m.text, sizeof(m.text), "%s", text && text[0] ? text : shmq_strerror(status));
    return reply(sock, &m, -1);
}

static void accept_all(shmq_reg_server_t *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN: all taken; anything else: the next poll retries */
        }
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        char why[256];
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
            close(fd);
            continue;
        }
        shmq_acl_ident_t id;
        shmq_acl_ident_peer(&id, s->store_uid, cr.uid, cr.gid, cr.pid);
        if (!shmq_reg_peer_allowed(s, &id, why, sizeof(why))) {
            s->refused++;
            if (s->ops.refused != NULL) {
                s->ops.refused(s->ops.arg, cr.pid, why);
            }
            reply_error(fd, -EACCES, why);
            close(fd);
            continue;
        }
        shmq_reg_conn_t *c = NULL;
        for (int i = 0; i < SHMQ_REG_MAX_CONNS && c == NULL; i++) {
            if (s->conns[i].fd < 0) {
                c = &s->conns[i];
            }
        }
        if (c == NULL) {
            s->refused++;
            snprintf(why, sizeof(why), "the store serves %d client connections at most",
                     SHMQ_REG_MAX_CONNS);
            if (s->ops.refused != NULL) {
                s->ops.refused(s->ops.arg, cr.pid, why);
            }
            reply_error(fd, -EBUSY, why);
            close(fd);
            continue;
        }
        *c = (shmq_reg_conn_t){.fd = fd, .pid = cr.pid, .id = id, .ring = -1};
    }
}

/*
 * aclEnable: a retry or dead-letter topic needs SUB on its group, an offset
 * commit SUB on its group and topic (acl.h), under the rules the master's
 * loop keeps loaded (s->acl).  0 or -EACCES naming the rule.
 */
static int acl_check(shmq_reg_server_t *s, const shmq_reg_conn_t *c, const shmq_reg_msg_t *req)
{
    if (!s->acl_enable) {
        return 0;
    }
    size_t tlen = strnlen(req->topic, sizeof(req->topic));
    if (req->type != SHMQ_REG_ENSURE_TOPIC) { /* commit, join, release: the group's */
        return shmq_acl_watch_may_subscribe(&s->acl, &c->id, req->topic, tlen, req->group);
    }
    const shmq_acl_account_t *acct;
    int rc = shmq_acl_watch_account(&s->acl, &c->id, &acct);
    return rc < 0 ? rc : shmq_acl_may_publish(acct, &c->id, req->topic, tlen);
}

/* One frame from c; false when the connection must be closed. */
static bool serve_frame(shmq_reg_server_t *s, shmq_reg_conn_t *c)
{
    uint8_t buf[SHMQ_REG_FRAME_MAX];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
        return errno == EAGAIN || errno == EINTR;
    }
    if (n == 0) {
        return false; /* the client is gone */
    }
    shmq_reg_msg_t req, rep;
    shmq_error_clear();
    int rc =
        (size_t)n > sizeof(buf)
            ? shmq_error_set(SHMQ_E_CORRUPT, "frame of %zd bytes exceeds %d", n, SHMQ_REG_FRAME_MAX)
            : shmq_reg_decode(buf, (size_t)n, &req);
    if (rc < 0) {
        /* Garbage or an unknown request: say why, then hang up. */
        reply_error(c->fd, rc, shmq_error_detail());
        return false;
    }
    switch (req.type) {
    case SHMQ_REG_REGISTER_PRODUCER: {
        if (c->ring >= 0) {
            return reply_error(c->fd, -EBUSY, "this connection already holds a producer ring");
        }
        if (s->ops.assign == NULL) {
            return reply_error(c->fd, -ENOTSUP, "this store takes no producers");
        }
        int ring_fd = -1;
        memset(&rep, 0, sizeof(rep));
        rc = s->ops.assign(s->ops.arg, c->pid, &c->id, &ring_fd, &rep);
        if (rc < 0) {
            return reply_error(c->fd, rc, shmq_error_detail());
        }
        c->ring = rep.ring;
        rep.type = SHMQ_REG_REPLY_OK;
        bool sent = reply(c->fd, &rep, ring_fd);
        close(ring_fd);
        return sent;
    }
    case SHMQ_REG_ENSURE_TOPIC:
        rc = acl_check(s, c, &req);
        rc = rc < 0 ? rc : shmq_reg_ensure_topic(s->ctl, &req);
        if (rc < 0) {
            return reply_error(c->fd, rc, shmq_error_detail());
        }
        memset(&rep, 0, sizeof(rep));
        rep.type = SHMQ_REG_REPLY_OK;
        return reply(c->fd, &rep, -1);
    case SHMQ_REG_COMMIT_OFFSET:
        rc = acl_check(s, c, &req);
        rc = rc < 0 ? rc
                    : shmq_groups_may_commit(s->ctl, conn_slot(s, c), req.group, req.topic,
                                             req.queue_id);
        rc = rc < 0 ? rc : shmq_reg_commit_offset(s->ctl, &req);
        if (rc < 0) {
            return reply_error(c->fd, rc, shmq_error_detail());
        }
        shmq_groups_committed(s->ctl, conn_slot(s, c));
        memset(&rep, 0, sizeof(rep));
        rep.type = SHMQ_REG_REPLY_OK;
        return reply(c->fd, &rep, -1);
    case SHMQ_REG_JOIN_GROUP: {
        uint64_t id = 0;
        char note[600];
        shmq_member_join_t j = {.pid = c->pid,
                                .uid = c->id.uid,
                                .group = req.group,
                                .topic = req.topic,
                                .sub = req.expr,
                                .sub_hash = (uint64_t)req.offset,
                                .flags = (uint32_t)req.queue_id};
        rc = acl_check(s, c, &req);
        rc = rc < 0 ? rc : shmq_groups_join(s->ctl, conn_slot(s, c), &j, &id, note, sizeof(note));
        if (rc < 0) {
            return reply_error(c->fd, rc, shmq_error_detail());
        }
        c->member = true;
        member_note(s, c, "joined");
        if (s->ops.joined != NULL) {
            s->ops.joined(s->ops.arg, req.group, note);
        }
        memset(&rep, 0, sizeof(rep));
        rep.type = SHMQ_REG_REPLY_OK;
        rep.ring = (uint32_t)conn_slot(s, c);
        rep.claims = id;
        return reply(c->fd, &rep, -1);
    }
    case SHMQ_REG_RELEASE_QUEUE:
        /* Its last offset first, under the commit's rules (it still holds the queue). */
        rc = acl_check(s, c, &req);
        if (rc == 0 && req.offset >= 0) {
            rc =
                shmq_groups_may_commit(s->ctl, conn_slot(s, c), req.group, req.topic, req.queue_id);
            rc = rc < 0 ? rc : shmq_reg_commit_offset(s->ctl, &req);
        }
        rc = rc < 0
                 ? rc
                 : shmq_groups_release(s->ctl, conn_slot(s, c), req.group, req.topic, req.queue_id);
        if (rc < 0) {
            return reply_error(c->fd, rc, shmq_error_detail());
        }
        memset(&rep, 0, sizeof(rep));
        rep.type = SHMQ_REG_REPLY_OK;
        return reply(c->fd, &rep, -1);
    default:
        reply_error(c->fd, SHMQ_E_ARG, "not a request");
        return false;
    }
}

void shmq_reg_server_handle(shmq_reg_server_t *s, const struct pollfd *pfd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (pfd[i].revents == 0) {
            continue;
        }
        if (pfd[i].fd == s->listen_fd) {
            accept_all(s);
            continue;
        }
        shmq_reg_conn_t *c = NULL;
        for (int k = 0; k < SHMQ_REG_MAX_CONNS && c == NULL; k++) {
            if (s->conns[k].fd == pfd[i].fd) {
                c = &s->conns[k];
            }
        }
        if (c == NULL) {
            continue;
        }
        bool keep = (pfd[i].revents & POLLIN) ? serve_frame(s, c) : false;
        if (!keep) {
            conn_close(s, c);
        }
    }
}
