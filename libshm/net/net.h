/*
 * net — TCP connections on a caller's libuv loop: what the HA sender and
 * receiver (and later a client gateway) share.  A transport only: bytes in,
 * bytes out; it knows nothing of the store, frames or replication.
 *
 * Everything runs on the caller's uv_loop_t, in the thread that runs it:
 * no call blocks (but shmq_net_exchange, which runs a loop of its own), the module starts no thread
 * and resolves no names (hosts are IPv4/IPv6 literals).  Callbacks run from the loop, never from
 * inside the call that caused them, and any function of this header may be called from inside any
 * callback (closing the object the callback is about included).
 *
 * Lifetimes: a connection is the caller's from its delivery (on_accept,
 * on_connected) to its on_close, which comes exactly once (unless its
 * connector is stopped first); the pointer is invalid when on_close returns.  A listener or
 * connector is the caller's until shmq_net_listener_close() / shmq_net_connector_stop(): no
 * callback of it runs after that.  Memory is released by the loop's close callbacks: run the loop
 * until it has no handles before uv_loop_close().
 *
 * Security: a connection is plain TCP, or TLS 1.3 authenticated by a
 * pre-shared key (cfg.tls, net_tls.c) when both ends hold the same secret.
 * A TLS connection is delivered (on_accept, on_connected) only once its
 * handshake has succeeded, so a caller never sees bytes from a peer that
 * did not prove the secret; every record is then authenticated and
 * encrypted (AES-GCM or ChaCha20-Poly1305), and a record altered on the way
 * closes the connection ("TLS: bad record mac").
 *
 * Errors: negative errno (libuv's codes are negative errno) or SHMQ_E_ARG,
 * with a shmq_error_set() detail.
 */
#ifndef SHMQ_NET_H
#define SHMQ_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

/* Defaults of the zero fields below. */
#define SHMQ_NET_HIGH_WATER         (4u << 20) /* bytes queued before writes say -EAGAIN */
#define SHMQ_NET_BACKOFF_MIN_MS     100u       /* first reconnect delay, doubling ... */
#define SHMQ_NET_BACKOFF_MAX_MS     5000u      /* ... up to this (RocketMQ's slave: 5 s) */
#define SHMQ_NET_CONNECT_TIMEOUT_MS 3000u      /* RocketMQ's connectTimeoutMillis */
#define SHMQ_NET_KEEPALIVE_S        60u        /* TCP keepalive idle time */
#define SHMQ_NET_READ_SIZE          65536u     /* one read's buffer */

typedef struct shmq_net_conn shmq_net_conn_t;
typedef struct shmq_net_listener shmq_net_listener_t;
typedef struct shmq_net_connector shmq_net_connector_t;
typedef struct shmq_net_tls shmq_net_tls_t;

/* ---- addresses ----------------------------------------------------------- */

typedef struct shmq_net_addr {
    struct sockaddr_storage sa;
    char text[64]; /* "127.0.0.1:10912", "[::1]:10912" */
} shmq_net_addr_t;

/*
 * Parse "host:port" (base/hostport.h: "[::1]:10912" or "::1:10912") with
 * host an IPv4 or IPv6 literal ("0.0.0.0" and "::" for any).  Port 0 is
 * refused unless any_port.  Returns 0 or SHMQ_E_ARG with a detail such as
 * "'master:10912': host 'master' is not an IPv4 or IPv6 address".
 */
int shmq_net_addr_parse(const char *hostport, bool any_port, shmq_net_addr_t *out);

/* ---- connections --------------------------------------------------------- */

/*
 * What a connection does; copied when a listener or connector is made and
 * given to each of its connections.  Zero fields take the defaults.
 */
typedef struct shmq_net_conn_cfg {
    /* Bytes as they arrived (any split: the caller frames them); data is
     * valid only during the call.  Required. */
    void (*on_read)(shmq_net_conn_t *c, const char *data, size_t len);
    /* The write queue fell to low_water after a write said -EAGAIN; once
     * per -EAGAIN episode.  Optional. */
    void (*on_drain)(shmq_net_conn_t *c);
    /* The connection is closed; reason is the first close's ("closed by
     * peer", "idle 20 s", "read: connection reset by peer", or the
     * caller's own).  Exactly once; c is freed when it returns.  Optional. */
    void (*on_close)(shmq_net_conn_t *c, const char *reason);
    size_t high_water; /* 0: SHMQ_NET_HIGH_WATER */
    size_t low_water;  /* 0: high_water / 4; above high_water: high_water */
    uint32_t idle_ms;  /* close when nothing was read for so long; 0: never */
    /* SO_SNDBUF / SO_RCVBUF in bytes (RocketMQ's HA connections: 64 KiB);
     * 0: the kernel sizes them as it goes. */
    int sndbuf, rcvbuf;
    /* TLS 1.3 with a pre-shared key (shmq_net_tls_psk()), NULL: plain TCP.
     * Shared by the connections; must outlive them. */
    const shmq_net_tls_t *tls;
} shmq_net_conn_cfg_t;

/*
 * Queue a copy of data for sending (the caller may reuse its buffer at
 * once).  Returns 0 when queued; -EAGAIN, queueing nothing, when the bytes
 * queued and not yet taken by the kernel are at or above high_water (a
 * write is taken whole while the queue is below it, so the queue exceeds
 * high_water by at most one write); then on_drain comes when the queue
 * has fallen to low_water.  -EPIPE once the connection is closing; -ENOMEM.
 * A failure of the send itself closes the connection ("write: ...").
 */
int shmq_net_conn_write(shmq_net_conn_t *c, const void *data, size_t len);

/* shmq_net_conn_write() of the pieces in order, as one copy (a header and
 * its body). */
int shmq_net_conn_writev(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt);

/* Bytes queued and not yet taken by the kernel. */
size_t shmq_net_conn_queued(const shmq_net_conn_t *c);

/*
 * Stop / restart reading: back pressure toward the peer (its sends stall
 * once the kernel's buffers are full).  While paused the idle timeout does
 * not run; it restarts from the resume.  0, or -EPIPE once closing.
 */
int shmq_net_conn_pause_read(shmq_net_conn_t *c);
int shmq_net_conn_resume_read(shmq_net_conn_t *c);

/*
 * Close: stop reading, drop what is queued, and call on_close with the
 * reason (printf format) from the loop.  A second close does nothing; the
 * first reason stays.  c remains valid until on_close.
 */
void shmq_net_conn_close(shmq_net_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The peer's address as text ("127.0.0.1:4711", "[::1]:4711"). */
const char *shmq_net_conn_peer(const shmq_net_conn_t *c);

/* What protects the connection: "plain", or "TLSv1.3 TLS_AES_128_GCM_SHA256". */
const char *shmq_net_conn_security(const shmq_net_conn_t *c);

/* The caller's pointer: the listener's or connector's arg until set. */
void *shmq_net_conn_arg(const shmq_net_conn_t *c);
void shmq_net_conn_set_arg(shmq_net_conn_t *c, void *arg);

/* ---- listener ------------------------------------------------------------ */

typedef struct shmq_net_listen_cfg {
    /* A new connection (reading starts when this returns, unless it was
     * paused or closed here); or c NULL and err < 0 when accept() failed
     * (EMFILE...): listening goes on.  Required. */
    void (*on_accept)(shmq_net_listener_t *l, shmq_net_conn_t *c, int err);
    /* A TLS connection that failed its handshake (wrong secret, garbage, a
     * plain client, silence for idle_ms) and was closed undelivered: peer
     * and reason ("TLS handshake: ..."), for a log line.  Optional. */
    void (*on_refused)(shmq_net_listener_t *l, const char *peer, const char *reason);
    void *arg;                /* shmq_net_listener_arg(), each new connection's arg */
    bool any_port;            /* port 0 allowed: the kernel picks one */
    int backlog;              /* 0: 128 */
    shmq_net_conn_cfg_t conn; /* for accepted connections */
} shmq_net_listen_cfg_t;

/*
 * Listen on hostport ("0.0.0.0:10912").  Returns 0 and *out, or
 * SHMQ_E_ARG (bad address), or the bind/listen errno (-EADDRINUSE...)
 * with a detail naming the address.
 */
int shmq_net_listen(uv_loop_t *loop, const char *hostport, const shmq_net_listen_cfg_t *cfg,
                    shmq_net_listener_t **out);

/* The port bound (the kernel's choice for port 0). */
int shmq_net_listener_port(const shmq_net_listener_t *l);
void *shmq_net_listener_arg(const shmq_net_listener_t *l);

/* Stop listening; no callback of l runs after.  Accepted connections stay. */
void shmq_net_listener_close(shmq_net_listener_t *l);

/* ---- connector ----------------------------------------------------------- */

typedef struct shmq_net_connector_cfg {
    /* Connected; c is the caller's until its on_close.  Required. */
    void (*on_connected)(shmq_net_connector_t *k, shmq_net_conn_t *c);
    /* An attempt failed or the connection ended (after its on_close);
     * the next attempt starts in retry_ms.  Optional. */
    void (*on_disconnected)(shmq_net_connector_t *k, const char *reason, uint32_t retry_ms);
    void *arg;                   /* shmq_net_connector_arg(), the connection's arg */
    uint32_t backoff_min_ms;     /* 0: SHMQ_NET_BACKOFF_MIN_MS */
    uint32_t backoff_max_ms;     /* 0: SHMQ_NET_BACKOFF_MAX_MS */
    uint32_t connect_timeout_ms; /* 0: SHMQ_NET_CONNECT_TIMEOUT_MS */
    shmq_net_conn_cfg_t conn;    /* for the connection */
} shmq_net_connector_cfg_t;

/*
 * Keep one connection to hostport: connect now, and whenever an attempt
 * fails or the connection closes, again after a delay that starts at
 * backoff_min_ms and doubles up to backoff_max_ms.  The delay returns to
 * the minimum only after a connection that lasted backoff_max_ms, so a
 * peer that accepts and closes at once is not hammered.  Returns 0 and
 * *out, or SHMQ_E_ARG (bad address or cfg).
 */
int shmq_net_connector_start(uv_loop_t *loop, const char *hostport,
                             const shmq_net_connector_cfg_t *cfg, shmq_net_connector_t **out);

void *shmq_net_connector_arg(const shmq_net_connector_t *k);

/* Stop: cancel the pending attempt and close the connection without its
 * on_close; no callback of k or of its connection runs after, and neither
 * pointer may be used once the calling callback (or this call) returns. */
void shmq_net_connector_stop(shmq_net_connector_t *k);

/* ---- one request, one answer, blocking (net_exchange.c) ------------------ */

/*
 * Connect to hostport (an address literal), over tls when not NULL, send
 * req, and read until answer_size says the answer is complete: it gets the
 * bytes so far and returns the answer's whole length once it can tell
 * (that many bytes are then read), 0 while it cannot, or a negative error
 * (the answer is refused).  At most max bytes are taken; all within
 * timeout_ms.  The one place that blocks in this module: it runs a loop of
 * its own, not the caller's.  0 with a malloc'd *out of *out_len bytes
 * (exactly the answer), or a negative errno (-ETIMEDOUT, -ECONNREFUSED,
 * -ECONNRESET for a close before the answer, -EMSGSIZE past max, -EACCES
 * when TLS failed: "TLS handshake: ..."), or answer_size's error; a detail
 * is set.
 */
int shmq_net_exchange(const char *hostport, const shmq_net_tls_t *tls, const void *req,
                      size_t req_len, long (*answer_size)(const uint8_t *buf, size_t len),
                      size_t max, int timeout_ms, uint8_t **out, size_t *out_len);

/* ---- TLS with a pre-shared key (net_tls.c) ------------------------------- */

#define SHMQ_NET_PSK_SIZE   32   /* the key: SHA-256 of the secret */
#define SHMQ_NET_SECRET_MIN 16   /* bytes of secret a file must hold, at least */
#define SHMQ_NET_SECRET_MAX 4096 /* ... and at most */

/*
 * Read a secret file into a key: the file must be a regular file owned by
 * this process's user, with no permission for group or others (0600 or
 * 0400), and hold SHMQ_NET_SECRET_MIN..MAX bytes (trailing white space,
 * such as the newline of `openssl rand -hex 32 > file`, is not part of
 * it); the key is the SHA-256 of the secret.  SHMQ_E_CONFIG with a
 * detail naming the file and what is wrong ("mode 0644: readable by
 * group or others; chmod 600 it").
 */
int shmq_net_secret_load(const char *path, uint8_t key[SHMQ_NET_PSK_SIZE]);

/*
 * A TLS context for one side (server: accepted connections; client: a
 * connector's), TLS 1.3 only, authenticated by the key alone (no
 * certificates): identity names the use ("shmq-ha"), and a peer must
 * present the same identity and key.  Returns 0 and *out, or SHMQ_E_ARG /
 * -ENOMEM with a detail.
 */
int shmq_net_tls_psk(bool server, const char *identity, const uint8_t key[SHMQ_NET_PSK_SIZE],
                     shmq_net_tls_t **out);

/* Free a context no connection uses any more; NULL is allowed. */
void shmq_net_tls_free(shmq_net_tls_t *t);

#endif
