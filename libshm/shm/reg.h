/*
 * Registration: the Unix socket <root>/shmq.sock through which clients ask
 * the master for what they may not take themselves (a producer ring, a
 * consumer offset commit), and the frames they exchange.
 *
 * The socket is SOCK_SEQPACKET (one frame per message, the kernel keeps the
 * boundaries), mode 0660 with the group of the store root.  The master
 * learns each peer's uid, gid and pid from SO_PEERCRED and admits the
 * store's user and members of the client group (clientUnixGroup, default
 * the group of the store root; primary or supplementary).  A producer keeps
 * its connection open as long as it lives: the master sees its end (EOF,
 * HUP) and hands its ring to the writer to drain.
 *
 * Frame (little-endian): magic u32 "SMR1", type u16, payload length u16,
 * then the payload; at most SHMQ_REG_FRAME_MAX bytes in all.
 *
 *   REGISTER_PRODUCER  (no payload)
 *   COMMIT_OFFSET      group_len u16, topic_len u16, queue_id i32,
 *                      offset i64, group bytes, topic bytes
 *   JOIN_GROUP         as COMMIT_OFFSET, queue_id holding the member's flags
 *                      (enum shmq_member_flags), offset the FNV-1a hash of
 *                      its subscription expression, then after the topic
 *                      the expression (at most SHMQ_REG_EXPR_MAX printable
 *                      bytes: a longer one is cut, its hash is whole's):
 *                      this connection becomes a member of group consuming
 *                      topic (groups.h) until it closes; REPLY_OK with ring
 *                      = its entry in the consumer area's member table,
 *                      claims = its id
 *   RELEASE_QUEUE      as COMMIT_OFFSET (offset -1: nothing to commit): the
 *                      member gives up a queue it was asked to release,
 *                      committing offset first
 *   ENSURE_TOPIC       topic_len u16, zero u16, queues i32, topic bytes: a
 *                      consumer's retry or dead-letter topic
 *                      (%RETRY%<group>, %DLQ%<group>) must exist with at
 *                      least that many queues (send-back)
 *   REPLY_OK           status i32 (0), ring u32, claims u64, ring_size u64;
 *                      to REGISTER_PRODUCER with the ring's descriptor
 *                      (SCM_RIGHTS)
 *   REPLY_ERROR        status i32 (< 0), text_len u16, text
 *
 * Frames are untrusted on both sides: shmq_reg_decode() checks the magic,
 * the type, every length against the frame and the names' characters
 * before anything is used.  An unknown type gets an error reply and the
 * connection is closed.
 */
#ifndef SHMQ_REG_H
#define SHMQ_REG_H

#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/ctl.h"

#define SHMQ_REG_SOCK_NAME  "shmq.sock"
#define SHMQ_REG_MAGIC      0x31524d53u /* "SMR1" as little-endian bytes */
#define SHMQ_REG_HDR_SIZE   8
#define SHMQ_REG_FRAME_MAX  512
#define SHMQ_REG_TEXT_MAX   400                 /* bytes of an error reply's text */
#define SHMQ_REG_TIMEOUT_MS 5000                /* a client waits this long for a reply */
#define SHMQ_REG_EXPR_MAX   SHMQ_MEMBER_SUB_MAX /* bytes of a JOIN_GROUP's expression */

enum shmq_reg_type {
    SHMQ_REG_REGISTER_PRODUCER = 1,
    SHMQ_REG_COMMIT_OFFSET = 2,
    SHMQ_REG_ENSURE_TOPIC = 3,
    SHMQ_REG_JOIN_GROUP = 4,
    SHMQ_REG_RELEASE_QUEUE = 5,
    SHMQ_REG_REPLY_OK = 0x81,
    SHMQ_REG_REPLY_ERROR = 0x82,
};

/* One frame, decoded (or to encode): only the fields of its type are meaningful. */
typedef struct shmq_reg_msg {
    uint16_t type;
    /* COMMIT_OFFSET */
    char group[SHMQ_GROUP_MAX + 1];
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t queue_id; /* COMMIT_OFFSET: the queue; ENSURE_TOPIC: the queues wanted */
    int64_t offset;
    char expr[SHMQ_REG_EXPR_MAX + 1]; /* JOIN_GROUP: the subscription (offset: its hash) */
    /* replies */
    int32_t status;
    char text[SHMQ_REG_TEXT_MAX + 1];
    uint32_t ring;      /* REPLY_OK to REGISTER_PRODUCER: the ring's index */
    uint64_t claims;    /* its registration count (names the object) */
    uint64_t ring_size; /* bytes of its data */
} shmq_reg_msg_t;

/*
 * Encode m into buf (cap >= SHMQ_REG_FRAME_MAX suffices).  Returns the frame
 * length, or SHMQ_E_ARG for a type this encoder does not know or a name
 * that does not fit.
 */
int shmq_reg_encode(const shmq_reg_msg_t *m, uint8_t *buf, size_t cap);

/*
 * Decode and validate one frame of len bytes.  Returns 0, or SHMQ_E_CORRUPT
 * (with a detail saying what is wrong: short frame, magic, length, name)
 * or SHMQ_E_ARG for an unknown type (out->type is set then).
 */
int shmq_reg_decode(const uint8_t *buf, size_t len, shmq_reg_msg_t *out);

/* "<root>/shmq.sock" for the realpath'd root. */
int shmq_reg_sock_path(const char *root, char *out, size_t len);

/* ---- client side -------------------------------------------------------------- */

/*
 * Connect to the master of the store at root (realpath'd).  Returns the
 * socket (O_CLOEXEC) or SHMQ_E_NOT_FOUND (not running), or -EACCES with a
 * detail naming the socket, its group and the caller's uid.
 */
int shmq_reg_connect(const char *root);

/*
 * Send req and wait (at most timeout_ms) for the reply.  A descriptor passed
 * with the reply is stored in *fd_out (-1 when none; pass NULL to refuse
 * one: it is closed).  Returns 0 on REPLY_OK, the reply's negative status
 * on REPLY_ERROR (detail: the master's text), SHMQ_E_NOT_FOUND when the
 * master closed the connection, -ETIMEDOUT, or an I/O error.
 */
int shmq_reg_call(int fd, const shmq_reg_msg_t *req, shmq_reg_msg_t *rep, int *fd_out,
                  int timeout_ms);

/*
 * True while the master still holds the connection's other end (no EOF, no
 * HUP): a non-blocking poll, for producers' liveness checks.
 */
bool shmq_reg_peer_alive(int fd);

/* ---- master side (reg_server.c) ----------------------------------------------------- */

#define SHMQ_REG_MAX_CONNS 256

/* What the server asks the master to do with rings (the master owns them). */
typedef struct shmq_reg_ring_ops {
    /* Give a ring to a producer: 0 with the ring's fd and reply fields, or a negative
     * error with a detail (no free ring, shared memory full). */
    int (*assign)(void *arg, pid_t pid, const shmq_acl_ident_t *id, int *ring_fd,
                  shmq_reg_msg_t *rep);
    /* The producer holding ring idx went away. */
    void (*orphan)(void *arg, uint32_t idx);
    /* A client was refused (not authorised, too many connections): for the log. */
    void (*refused)(void *arg, pid_t pid, const char *why);
    /* A consumer group member joined or left (groups.h): for the log; may be NULL. */
    void (*member)(void *arg, const char *line);
    /* A member of group joined (after member): record the group; inconsistent: "" or how
     * the group's members subscribe otherwise (groups.h); may be NULL. */
    void (*joined)(void *arg, const char *group, const char *inconsistent);
    void *arg;
} shmq_reg_ring_ops_t;

typedef struct shmq_reg_conn {
    int fd; /* -1 when the entry is free */
    pid_t pid;
    shmq_acl_ident_t id; /* uid and groups when it connected */
    int64_t ring;        /* ring index this producer holds, -1 */
    bool member;         /* a consumer group member: its entry is members[this index] */
} shmq_reg_conn_t;

typedef struct shmq_reg_server {
    int listen_fd;
    shmq_ctl_t *ctl; /* the master's read-write handle: offsets are stored here */
    uid_t store_uid;
    gid_t client_gid;
    char client_group[64]; /* its name, for messages */
    char path[PATH_MAX];
    shmq_reg_ring_ops_t ops;
    shmq_reg_conn_t conns[SHMQ_REG_MAX_CONNS];
    uint64_t refused; /* connections refused (not authorised, too many) */
    bool acl_enable;  /* aclEnable: offset commits and retry topics obey acl */
    shmq_acl_watch_t acl;
} shmq_reg_server_t;

/*
 * Master: create <root>/shmq.sock (a stale socket at that name is removed
 * by name; anything else there is refused naming it), mode 0660, with
 * the client group (shmq_ctl_client_gid(): cfg's clientUnixGroup, else the
 * group of the store root).  SHMQ_E_CONFIG for an unknown group, and with
 * aclEnable for an ACL file that does not load (acl.h).
 */
int shmq_reg_server_open(shmq_reg_server_t *s, shmq_ctl_t *ctl, const shmq_config_t *cfg,
                         const shmq_reg_ring_ops_t *ops);
void shmq_reg_server_close(shmq_reg_server_t *s);

/* The descriptors to poll (listening socket first); returns how many. */
size_t shmq_reg_server_pollfds(const shmq_reg_server_t *s, struct pollfd *pfd, size_t cap);

/* Handle what poll reported on pfd[0..n) (as filled by shmq_reg_server_pollfds). */
void shmq_reg_server_handle(shmq_reg_server_t *s, const struct pollfd *pfd, size_t n);

/*
 * Whether a peer (id: from shmq_acl_ident_peer) may connect: the store's
 * user, or a member (primary or supplementary group) of the client group.
 * When not, why holds the rule it broke.
 */
bool shmq_reg_peer_allowed(const shmq_reg_server_t *s, const shmq_acl_ident_t *id, char *why,
                           size_t len);

/*
 * Validate and store a consumer offset commit (the group name's rules; the
 * topic and queue exist; 0 <= offset <= the queue's max offset).  0, or a
 * negative error with a detail saying which rule.
 */
int shmq_reg_commit_offset(shmq_ctl_t *ctl, const shmq_reg_msg_t *req);

/* Retry and dead-letter topics a client may ask for: 1..SHMQ_REG_TOPIC_QUEUES_MAX queues. */
#define SHMQ_REG_TOPIC_QUEUES_MAX 64

/*
 * Validate and serve ENSURE_TOPIC: only %RETRY%<group> and %DLQ%<group>
 * (a valid group name), 1..SHMQ_REG_TOPIC_QUEUES_MAX queues; created or
 * widened under the topic lock.  0, or a negative error with a detail.
 */
int shmq_reg_ensure_topic(shmq_ctl_t *ctl, const shmq_reg_msg_t *req);

/*
 * Client side of ENSURE_TOPIC: one connection, one round trip (rare: only
 * when the topic is missing).  0 or the master's refusal.
 */
int shmq_reg_request_topic(const char *root, const char *topic, int32_t queues);

#endif
