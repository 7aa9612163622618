/*
 * What the parts of shmq-gateway share (gateway.c: connections, frames and
 * the dispatch of requests; gateway_send.c: sends; gateway_pull.c: pulls and
 * offsets; gateway_admin.c: routes, clients and groups, queue locks,
 * queries and send-backs).  One thread runs all of it on one libuv loop.
 */
#ifndef SHMQ_GATEWAY_H
#define SHMQ_GATEWAY_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "format/remoting.h"
#include "net/net.h"
#include "shmq/admin.h"
#include "shmq/consumer.h"
#include "shmq/producer.h"
#include "worker.h"

#define GW_OUT_PAUSE      (4u << 20)   /* answers queued to a client before its frames wait */
#define GW_OUT_HIGH_WATER (256u << 20) /* answers queued before the client is closed */
#define GW_FRAME_MS       30000        /* a frame begun must be whole within this */
#define GW_IDLE_MS        120000       /* a client silent this long is closed (RocketMQ: 120 s) */
#define GW_SENDS_MAX      200          /* sends in flight through the producer (its ring: 256) */
#define GW_SEND_OVERHEAD  256          /* ring bytes of a send besides topic, properties, body */
#define GW_SUSPENDED_MAX  1024         /* long-polling pulls held per client (one per queue) ... */
#define GW_HELD_MAX       65536        /* ... and of all clients together */
#define GW_PULL_BYTES     (1u << 20)   /* a pull answer's records, at least one message */
#define GW_GROUPS_MAX     256          /* consumer groups with an open handle */
#define GW_CLIENTS_MAX    4096         /* registered client ids (heartbeats) */
#define GW_LOCKS_MAX      8192         /* queue locks (lockBatchMQ) */
#define GW_LOCK_MS        60000  /* a queue lock not renewed lapses (rebalanceLockMaxLiveTime) */
#define GW_CLIENT_MS      120000 /* a client id without a heartbeat for this long is dropped */
#define GW_TICK_MS        1000   /* slow frames, lapsed clients and locks, counters */
#define GW_BUFFERED_MAX   (256u << 20) /* bytes of partial frames of all clients together */
#define GW_WARN_LINES     20           /* warnings about clients logged ... */
#define GW_WARN_WINDOW_MS 10000        /* ... per this window; the others counted */
#define GW_POLL_MS        250          /* held pulls past their time are answered this often */
#define GW_WAIT_MS        1000         /* the waiter's longest sleep on `dispatched` */

typedef struct gw gw_t;

/* One client connection. */
typedef struct gw_conn {
    gw_t *gw;
    shmq_net_conn_t *c;
    struct gw_conn *prev, *next; /* gw->conns */
    uint8_t *buf;                /* bytes read, not yet a whole frame handled */
    size_t len, cap;
    int64_t frame_start_ms; /* when the frame at buf began arriving (0: none) */
    int refs;               /* answers still to come (sends in flight, suspended pulls) */
    int suspended;          /* its pulls held for long polling */
    bool closed;            /* on_close came: free once refs is 0 */
    bool paused;            /* reading paused: its answers queue, or the producer is full */
    bool want_drain;
    bool v6;
    shmq_host_t peer; /* the born host of its messages */
    char peer_text[64];
} gw_conn_t;

/* A pull held until a message arrives or its time is up (RocketMQ's PullRequestHoldService). */
typedef struct gw_pull {
    struct gw_pull *next;
    gw_conn_t *conn;
    shmq_rmt_cmd_t cmd; /* ext only (the body is not kept) */
    int64_t deadline_ms;
} gw_pull_t;

/* A consumer group's handle (offsets, pulls with its permissions, send-backs). */
typedef struct gw_group {
    char name[128];
    shmq_consumer_t *c;
} gw_group_t;

/* A client id registered by a heartbeat, for a group. */
typedef struct gw_client {
    char group[128];
    char client_id[256];
    gw_conn_t *conn;
    int64_t seen_ms;
} gw_client_t;

/* A queue held by a client (lockBatchMQ). */
typedef struct gw_lock {
    char group[128];
    char topic[SHMQ_TOPIC_MAX_ANY + 1];
    int32_t queue_id;
    char client_id[256];
    int64_t until_ms;
} gw_lock_t;

/* What the gateway counts (logged every minute when they moved; the control block's gateway
 * section after every unit of work: gw_counts_publish). */
typedef struct gw_counts {
    uint64_t accepted, refused_conns, closed_bad, requests, unsupported, bad_frames;
    uint64_t sends, send_errors, pulls, slow_closed;
    uint64_t requests_send, requests_pull; /* of requests, by kind */
    uint64_t bytes_in, bytes_out;
} gw_counts_t;

struct gw {
    shmq_worker_t *w;
    const shmq_config_t *cfg;
    uv_loop_t loop;
    bool loop_open;
    uv_timer_t idle_timer, tick, poll;
    bool poll_on;
    uv_async_t wake; /* the waiter: `dispatched` moved while pulls are held */
    /* the waiter thread: sleeps on `dispatched` while pulls are held */
    pthread_t waiter;
    bool waiter_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want; /* pulls are held: wake the loop once `dispatched` passes want_pos */
    int64_t want_pos;
    bool quit;
    shmq_net_listener_t *lis;
    gw_conn_t *conns;
    int nconns;
    int64_t now_ms;
    char addr[80];           /* the broker address routes name: "127.0.0.1:10911" */
    shmq_producer_t *p;      /* opened on the first send */
    int sends;               /* in flight */
    uint64_t send_bytes;     /* ... and the ring bytes they take, about */
    shmq_consumer_t *reader; /* group-less: offsets of queues */
    shmq_admin_t *admin;     /* queries by key and offset; opened on first use */
    gw_pull_t *pulls;        /* suspended */
    int nheld;               /* pulls in the list */
    gw_group_t groups[GW_GROUPS_MAX];
    int ngroups;
    gw_client_t *clients;
    int nclients;
    gw_lock_t *locks;
    int nlocks;
    uint8_t *scratch; /* a pull answer's records */
    size_t scratch_cap;
    shmq_pull_result_t *res;
    gw_counts_t counts, logged;
    size_t buffered; /* bytes of the clients' read buffers */
    int64_t warn_window_ms;
    int warn_lines;
    uint64_t warn_suppressed;
    bool stopping;
};

/* ---- gateway.c ---- */

/* A warning about a client: at most GW_WARN_LINES per GW_WARN_WINDOW_MS, the rest counted. */
void gw_warn(gw_t *gw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Answer cmd on conn: code, remark (may be NULL), ext (may be NULL, borrowed), body. */
void gw_answer(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int code, const char *remark,
               const json_t *ext, const void *body, size_t body_len);
/* gw_answer() with a printf remark and no ext or body. */
void gw_answer_err(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Send a request of code to conn, one-way (NOTIFY_CONSUMER_IDS_CHANGED). */
void gw_notify(gw_conn_t *conn, int code, const json_t *ext);
/* An answer for a request held (send, suspended pull) has come: drop conn's reference. */
void gw_conn_unref(gw_conn_t *conn);
/* The consumer handle of group (opened on first use), or NULL with an error detail. */
shmq_consumer_t *gw_group(gw_t *gw, const char *group);
/* An extFields value that must be there: NULL after answering the error. */
const char *gw_need(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, const char *name, char *buf,
                    size_t cap);
/* An integer extFields value that must be there: false after answering the error. */
bool gw_need_i64(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, const char *name, int64_t lo,
                 int64_t hi, int64_t *out);
/* The RocketMQ answer code of a store error. */
int gw_code_of(int err);
/* Start the pull timer when pulls are held. */
void gw_poll_start(gw_t *gw);

/* ---- gateway_send.c ---- */

/* The gateway's producer (opened on first use), or NULL with an error detail. */
shmq_producer_t *gw_producer(gw_t *gw);
void gw_send(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_send_batch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);

/* ---- gateway_pull.c ---- */

void gw_pull(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
/* Look at the held pulls again: answer those with messages or past their time. */
void gw_pulls_check(gw_t *gw, bool all_now);
void gw_offsets(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
/*
 * Append the record of view m, as RocketMQ's clients decode it (its body
 * decompressed, no compression bits, the store's offsets), to *buf.  0 or
 * a negative error.
 */
int gw_put_record(gw_t *gw, const shmq_msg_view_t *m, uint8_t **buf, size_t *len, size_t *cap);

/* ---- gateway_admin.c ---- */

/* The store is a slave now (brokerRole=SLAVE and not promoted since it started). */
bool gw_store_is_slave(gw_t *gw);
/* Controller mode: the set's master's gateway address into out (the ctrl-agent's route); false
 * when not in controller mode or not known. */
bool gw_master_gateway(gw_t *gw, char *out, size_t cap);
void gw_route(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_cluster(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_heartbeat(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_unregister(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_consumer_list(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_lock_batch(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd, bool lock);
void gw_query(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_view(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
void gw_send_back(gw_conn_t *conn, const shmq_rmt_cmd_t *cmd);
/* A connection went: its client ids leave their groups (the others are told). */
void gw_clients_drop_conn(gw_t *gw, gw_conn_t *conn);
/* Drop client ids and locks past their time. */
void gw_admin_tick(gw_t *gw);

#endif
