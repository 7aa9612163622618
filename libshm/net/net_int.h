/*
 * What net.c (connections), net_listen.c and net_connect.c share: the
 * connection object and its internal life cycle.  Not for other layers.
 */
#ifndef SHMQ_NET_INT_H
#define SHMQ_NET_INT_H

#include "net/net.h"

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
    char peer[64];
    char reason[160];
    char buf[SHMQ_NET_READ_SIZE]; /* the read buffer, reused by every read */
};

/* A connection with its handles initialised on loop, not yet connected. */
int shmq_net_conn_new(uv_loop_t *loop, const shmq_net_conn_cfg_t *cfg, void *arg,
                      shmq_net_conn_t **out);

/* Socket options, peer text, the idle timer, reading (unless paused or
 * closed by the caller's delivery callback, which runs in between). */
void shmq_net_conn_prepare(shmq_net_conn_t *c);
void shmq_net_conn_start(shmq_net_conn_t *c);

/* Called by the last close callback before c is freed (net_connect.c). */
void shmq_net_connector_conn_gone(shmq_net_connector_t *k, shmq_net_conn_t *c);

/* "ip:port" / "[ip6]:port" of a socket address; "?" when unknown. */
void shmq_net_addr_text(const struct sockaddr *sa, char *out, size_t size);

#endif
