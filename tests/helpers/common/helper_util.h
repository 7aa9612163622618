/*
 * helper_util: what several test helpers (tests/helpers/X.c) do the same way,
 * compiled once and linked into every helper.
 *
 *   - the stop flag SIGTERM/SIGINT set, and a millisecond sleep;
 *   - the load body ("L1 <crc32> <id> <seq> <len>|<payload>") that
 *     load_producer and ack_producer send and load_consumer checks, and the
 *     generator of its sizes.
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

/* ---- stopping and waiting ------------------------------------------------------------ */

/* Set by SIGTERM or SIGINT once helper_stop_on_signals() installed the handler. */
extern volatile sig_atomic_t helper_stop;

void helper_stop_on_signals(void);

void helper_sleep_ms(int64_t ms);

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

#endif
