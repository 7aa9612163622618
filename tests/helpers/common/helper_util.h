/*
 * helper_util: what several test helpers (tests/helpers/X.c) do the same way,
 * compiled once and linked into every helper.
 *
 *   - the stop flag SIGTERM/SIGINT set, a millisecond sleep, a nanosecond
 *     clock;
 *   - command-line values: a count, a broker.conf KEY=VALUE;
 *   - the answer to one asynchronous send, kept for later;
 *   - the load body ("L1 <crc32> <id> <seq> <len>|<payload>") that
 *     load_producer and ack_producer send and load_consumer checks, and the
 *     generator of its sizes;
 *   - the command line those producers and key_producer share (--store,
 *     --topic, --id, --count, --size, --size-max, --async, --rate, --timeout);
 *   - sending numbered messages synchronously or with a window of requests
 *     in flight, each answer handed to the helper's report function.
 *
 * Nothing here prints: the helpers keep their own output, which the shell
 * tests parse.
 */
#ifndef SHMQ_TEST_HELPER_UTIL_H
#define SHMQ_TEST_HELPER_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/config.h"
#include "shmq/producer.h"

/* ---- stopping and waiting ------------------------------------------------------------ */

/* Set by SIGTERM or SIGINT once helper_stop_on_signals() installed the handler. */
extern volatile sig_atomic_t helper_stop;

void helper_stop_on_signals(void);

void helper_sleep_ms(int64_t ms);

/* CLOCK_MONOTONIC in nanoseconds, for rates and latencies finer than base/clock.h's ms. */
int64_t helper_mono_ns(void);

/* ---- command-line values ------------------------------------------------------------- */

/* A whole decimal number >= 0 and nothing else into *out; false otherwise. */
bool helper_parse_count(const char *s, long long *out);

/*
 * Apply "KEY=VALUE" (a broker.conf entry) to cfg.  Returns 0, -EINVAL when
 * arg is not KEY=VALUE, or shmq_config_set's error for a bad value.
 */
int helper_config_set_arg(shmq_config_t *cfg, const char *arg);

/* ---- one asynchronous answer --------------------------------------------------------- */

typedef struct helper_answer {
    bool done;
    int err;
    shmq_send_result_t res;
} helper_answer_t;

/* A shmq_send_cb: records the answer in the helper_answer_t arg points to. */
void helper_answer_cb(void *arg, int err, const shmq_send_result_t *res);

/* ---- the load body ------------------------------------------------------------------- */

/* Room a body needs beyond its payload; the smallest body generated. */
#define HELPER_LOAD_HDR_MAX 80

/*
 * Body of message seq of producer id, about size bytes (at least
 * HELPER_LOAD_HDR_MAX), into buf (size bytes at least):
 *
 *   "L1 <crc32 as 8 hex> <id> <seq> <payload length>|<payload>"
 *
 * zlib's crc32 covers everything after the second space; the payload is
 * letters and digits from a generator seeded by id and seq.  Returns the
 * body's length.
 */
size_t helper_load_body(char *buf, size_t size, int id, int64_t seq);

/* Check a load body; on success fill id and seq.  Returns NULL or what failed. */
const char *helper_load_body_check(const char *b, size_t len, int *id, long long *seq);

/* The bodies of one producer: sizes from size to size_max, pseudo-random per message. */
typedef struct helper_load_gen {
    int id;
    long long size;
    long long size_max; /* >= size */
    uint64_t rnd;
} helper_load_gen_t;

/* size_max below size means size. */
void helper_load_gen_init(helper_load_gen_t *g, int id, long long size, long long size_max);

/* Bytes a buffer for helper_load_gen_next needs. */
size_t helper_load_gen_buf_size(const helper_load_gen_t *g);

/* The body of message seq into buf; its length. */
size_t helper_load_gen_next(helper_load_gen_t *g, char *buf, int64_t seq);

/* ---- the producers' command line ----------------------------------------------------- */

typedef struct helper_load_args {
    const char *store;
    const char *topic;
    long long id;
    long long count;
    long long size;
    long long size_max;
    long long window; /* --async: requests in flight, 0 synchronous */
    long long rate;   /* messages a second, 0 as fast as answered */
    long long timeout;
} helper_load_args_t;

/*
 * Take option opt (getopt_long's value) with argument arg when it is one of
 * the shared ones: 's' --store, 't' --topic, 'i' --id, 'n' --count, 'b'
 * --size, 'B' --size-max, 'a' --async, 'r' --rate, 'T' --timeout.  Returns
 * false for any other.  The helper's option table says which it accepts.
 */
bool helper_load_option(helper_load_args_t *a, int opt, const char *arg);

/* ---- sending numbered messages ------------------------------------------------------- */

/* The answer to message seq: err 0 and res, or err < 0 (res NULL when no request was made). */
typedef void helper_report_fn(void *owner, int64_t seq, int err, const shmq_send_result_t *res);

typedef struct helper_slot helper_slot_t;

/*
 * Sends numbered messages through one producer, synchronously (window 0) or
 * with up to window requests in flight.  Every send made is answered once
 * through report(owner, ...), from shmq_producer_poll or flush for an
 * asynchronous one.
 */
typedef struct helper_sender {
    int window;      /* requests in flight at most; 0: synchronous */
    int64_t wait_ms; /* how long to wait for a free slot, and for the last answers */
    int inflight;    /* requests sent and not answered */
    helper_report_fn *report;
    void (*waiting)(void *owner); /* called while waiting for a free slot, or NULL */
    void *owner;
    helper_slot_t *slots;
    helper_slot_t *free_slots;
} helper_sender_t;

/* Returned by helper_sender_send when no slot came free within wait_ms. */
#define HELPER_SEND_STUCK 1

/* Returns 0 or -ENOMEM.  waiting starts NULL. */
int helper_sender_init(helper_sender_t *s, int window, int64_t wait_ms, helper_report_fn *report,
                       void *owner);

/*
 * Send m as message seq through p: synchronously (the answer is reported
 * before the return) or asynchronously once a slot is free (a send refused
 * at once is reported at once).  Returns the send's code, or
 * HELPER_SEND_STUCK: no slot came free, nothing was sent or reported.
 */
int helper_sender_send(helper_sender_t *s, shmq_producer_t *p, const shmq_message_t *m,
                       int64_t seq);

/* Wait up to wait_ms for the answers in flight; returns how many are still missing. */
int helper_sender_flush(helper_sender_t *s, shmq_producer_t *p);

void helper_sender_free(helper_sender_t *s);

#endif
