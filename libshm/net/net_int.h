/*
 * What net.c (connections), net_listen.c and net_connect.c share: the
 * connection object and its internal life cycle.  Not for other layers.
 */
#ifndef SHMQ_NET_INT_H
#define SHMQ_NET_INT_H

#include "net/net.h"

#include <openssl/ssl.h>

struct shmq_net_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout; the connect timeout while connecting */
    uv_connect_t connect_req;
    shmq_net_conn_cfg_t cfg;
    void *arg;
    shmq_net_connector_t *owner; /* the connector that made it, or NULL */
    uint64_t last_read_ms;       /* loop time of the last read (or resume) */
    uint64_t up_ms;              /* loop time of the delivery */
    int open_handles;            /* tcp and timer until their close callbacks */
    bool closing;                /* shmq_net_conn_close() ran: no more I/O */
    bool delivered;              /* the caller has it: on_close is owed */
    bool silent;                 /* closed by a stopping connector: no on_close */
    bool started;                /* shmq_net_conn_start() ran */
    bool paused;                 /* reading stopped by the caller */
    bool want_drain;             /* a write said -EAGAIN: on_drain is owed */
    /* TLS (net_tls.c): the session over two memory BIOs, NULL when plain */
    SSL *ssl;
    bool tls_up; /* the handshake succeeded: delivered */
    /* who gets the connection once its handshake succeeded (the listener's
     * or connector's delivery), and the listener while it is undelivered */
    void (*on_secure)(shmq_net_conn_t *c);
    shmq_net_listener_t *lis;
    shmq_net_conn_t *pend_next, *pend_prev; /* the listener's undelivered list */
    char security[64];
    char peer[64];
    char reason[160];
    char buf[SHMQ_NET_READ_SIZE]; /* the read buffer, reused by every read */
};

/* A connection with its handles initialised on loop, not yet connected. */
int shmq_net_conn_new(uv_loop_t *loop, const shmq_net_conn_cfg_t *cfg, void *arg,
                      shmq_net_conn_t **out);

/* Socket options and peer text (prepare); the caller has it (deliver);
 * the idle timer and reading (start: unless paused or closed by the
 * caller's delivery callback, which runs between deliver and start). */
void shmq_net_conn_prepare(shmq_net_conn_t *c);
void shmq_net_conn_deliver(shmq_net_conn_t *c);
void shmq_net_conn_start(shmq_net_conn_t *c);

/* Queue bytes for the socket as they are (net.c; TLS records from net_tls.c). */
int shmq_net_conn_submit(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt);

/* TLS (net_tls.c).  start: the session of a prepared connection whose cfg
 * has tls, its handshake started (a client sends its hello) and reading,
 * on_secure called once it succeeded (a failure closes c); input: bytes
 * read from the socket (NULL, 0: deliver what is decrypted and waiting,
 * after a resume); write: encrypt and queue; end: free the session.
 * pending: decrypted or undecrypted bytes wait inside the session. */
void shmq_net_tls_start(shmq_net_conn_t *c, void (*on_secure)(shmq_net_conn_t *c));
void shmq_net_tls_input(shmq_net_conn_t *c, const char *data, size_t len);
int shmq_net_tls_write(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt);
bool shmq_net_tls_pending(const shmq_net_conn_t *c);
void shmq_net_tls_end(shmq_net_conn_t *c);

/* Called by the last close callback of a connection still undelivered by
 * its listener (a TLS handshake that failed), before c is freed (net_listen.c). */
void shmq_net_listener_conn_gone(shmq_net_listener_t *l, shmq_net_conn_t *c);

/* Called by the last close callback before c is freed (net_connect.c). */
void shmq_net_connector_conn_gone(shmq_net_connector_t *k, shmq_net_conn_t *c);

/* "ip:port" / "[ip6]:port" of a socket address; "?" when unknown. */
void shmq_net_addr_text(const struct sockaddr *sa, char *out, size_t size);

#endif
