/*
 * produce: send COUNT messages of SIZE bytes to a running store with every
 * sending mode of the producer API, for tests that check what the store
 * answered against what it holds.
 *
 *   produce STORE TOPIC COUNT SIZE [--async K] [--batch K] [--oneway]
 *           [--timeout MS] [--tags T] [--keys K] [--queue Q] [--sharding-key K]
 *           [--compress-over N]
 *
 * Modes: synchronous shmq_send (default); --async K: up to K requests in
 * flight (callbacks from shmq_producer_poll); --batch K: shmq_send_batch of
 * K messages at a time (with --async A: shmq_send_batch_async, A batches in
 * flight); --oneway: shmq_send_oneway (no answer: no "ok" line).
 * --compress-over N sets each message's compress_over (0: the producer's
 * threshold, > 0: compress a body of at least N bytes, < 0: never).
 * Body of message i: "m<i>-" then 'x' up to SIZE bytes (at least the prefix).
 *
 * stdout, one line per answered message, in completion order:
 *   ok <uniq key> <queue id> <queue offset> <phys offset> <msg id> <status>
 *   err <seq> <error code> <error text>
 * then "done <ok> <errors>".  Exit 0 when every message was answered OK
 * (or, with --oneway, every send returned 0), 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq/producer.h"

typedef struct prod_stats {
    long ok;
    long errors;
    int inflight;
} prod_stats_t;

typedef struct pending {
    prod_stats_t *st;
    long seq;
    shmq_send_result_t *res; /* a batch's results (--batch with --async), else NULL */
    int n;
} pending_t;

static void print_ok(const shmq_send_result_t *r)
{
    printf("ok %s %d %lld %lld %s %d\n", r->uniq_key, r->queue_id, (long long)r->queue_offset,
           (long long)r->phys_offset, r->msg_id, r->status);
}

static void print_err(long seq, int err)
{
    printf("err %ld %d %s: %s\n", seq, err, shmq_strerror(err), shmq_error_detail());
}

static void on_done(void *arg, int err, const shmq_send_result_t *res)
{
    pending_t *pd = arg;
    if (pd->res != NULL) {
        for (int k = 0; k < pd->n; k++) {
            if (err == 0) {
                print_ok(&pd->res[k]);
                pd->st->ok++;
            } else {
                print_err(pd->seq + k, err);
                pd->st->errors++;
            }
        }
        free(pd->res);
    } else if (err == 0) {
        print_ok(res);
        pd->st->ok++;
    } else {
        print_err(pd->seq, err);
        pd->st->errors++;
    }
    pd->st->inflight--;
    free(pd);
}

static size_t make_body(char *buf, size_t size, long seq)
{
    int n = snprintf(buf, size + 32, "m%ld-", seq);
    size_t len = (size_t)n > size ? (size_t)n : size;
    memset(buf + n, 'x', len - (size_t)n);
    return len;
}

static void usage(void)
{
    fprintf(stderr, "usage: produce STORE TOPIC COUNT SIZE [--async K] [--batch K] [--oneway]\n"
                    "               [--timeout MS] [--tags T] [--keys K] [--queue Q] "
                    "[--sharding-key K] [--compress-over N]\n");
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        usage();
        return 2;
    }
    const char *store = argv[1], *topic = argv[2];
    long count = atol(argv[3]);
    long size = atol(argv[4]);
    int async = 0, batch = 0, oneway = 0, timeout = 3000, queue = -1, compress_over = 0;
    const char *tags = NULL, *keys = NULL, *skey = NULL;
    for (int i = 5; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--oneway") == 0) {
            oneway = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--async") == 0) {
            async = atoi(v);
        } else if (strcmp(a, "--batch") == 0) {
            batch = atoi(v);
        } else if (strcmp(a, "--timeout") == 0) {
            timeout = atoi(v);
        } else if (strcmp(a, "--tags") == 0) {
            tags = v;
        } else if (strcmp(a, "--keys") == 0) {
            keys = v;
        } else if (strcmp(a, "--queue") == 0) {
            queue = atoi(v);
        } else if (strcmp(a, "--sharding-key") == 0) {
            skey = v;
        } else if (strcmp(a, "--compress-over") == 0) {
            compress_over = atoi(v);
        } else {
            usage();
            return 2;
        }
    }
    if (count < 0 || size < 0 || async < 0 || batch < 0 || (batch > 0 && batch > 65535)) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    shmq_producer_options_t po = {.send_timeout_ms = timeout, .group = "produce"};
    shmq_producer_t *p;
    int rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "produce: cannot open producer: %s: %s\n", shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    int per = batch > 0 ? batch : 1;
    char **bodies = calloc((size_t)per, sizeof(*bodies));
    shmq_message_t *msgs = calloc((size_t)per, sizeof(*msgs));
    shmq_send_result_t *res = calloc((size_t)per, sizeof(*res));
    for (int k = 0; bodies && k < per; k++) {
        bodies[k] = malloc((size_t)size + 32);
        if (bodies[k] == NULL) {
            return 1;
        }
    }
    if (!bodies || !msgs || !res) {
        return 1;
    }
    prod_stats_t st = {0};
    for (long seq = 0; seq < count;) {
        int n = (int)(count - seq < per ? count - seq : per);
        for (int k = 0; k < n; k++) {
            size_t len = make_body(bodies[k], (size_t)size, seq + k);
            shmq_message_init(&msgs[k], topic, bodies[k], len);
            msgs[k].tags = tags;
            msgs[k].keys = keys;
            msgs[k].queue_id = queue;
            msgs[k].sharding_key = skey;
            msgs[k].compress_over = compress_over;
        }
        if (batch > 0 && async > 0) {
            while (st.inflight >= async) {
                shmq_producer_poll(p, 100);
            }
            pending_t *pd = calloc(1, sizeof(*pd));
            shmq_send_result_t *br = calloc((size_t)n, sizeof(*br));
            if (pd == NULL || br == NULL) {
                return 1;
            }
            *pd = (pending_t){.st = &st, .seq = seq, .res = br, .n = n};
            rc = shmq_send_batch_async(p, msgs, (size_t)n, br, on_done, pd);
            if (rc < 0) {
                free(br);
                free(pd);
                for (int k = 0; k < n; k++) {
                    print_err(seq + k, rc);
                    st.errors++;
                }
            } else {
                st.inflight++;
            }
        } else if (batch > 0) {
            rc = shmq_send_batch(p, msgs, (size_t)n, res);
            for (int k = 0; k < n; k++) {
                if (rc == 0) {
                    print_ok(&res[k]);
                    st.ok++;
                } else {
                    print_err(seq + k, rc);
                    st.errors++;
                }
            }
        } else if (oneway) {
            rc = shmq_send_oneway(p, &msgs[0]);
            if (rc < 0) {
                print_err(seq, rc);
                st.errors++;
            } else {
                st.ok++;
            }
        } else if (async > 0) {
            while (st.inflight >= async) {
                shmq_producer_poll(p, 100);
            }
            pending_t *pd = calloc(1, sizeof(*pd));
            if (pd == NULL) {
                return 1;
            }
            pd->st = &st;
            pd->seq = seq;
            rc = shmq_send_async(p, &msgs[0], on_done, pd);
            if (rc < 0) {
                free(pd);
                print_err(seq, rc);
                st.errors++;
            } else {
                st.inflight++;
            }
        } else {
            rc = shmq_send(p, &msgs[0], &res[0]);
            if (rc == 0) {
                print_ok(&res[0]);
                st.ok++;
            } else {
                print_err(seq, rc);
                st.errors++;
            }
        }
        seq += n;
    }
    if (async > 0 && shmq_producer_flush(p, timeout * 2) < 0) {
        fprintf(stderr, "produce: %d requests unanswered\n", st.inflight);
        st.errors += st.inflight;
    }
    shmq_producer_close(p);
    printf("done %ld %ld\n", st.ok, st.errors);
    for (int k = 0; k < per; k++) {
        free(bodies[k]);
    }
    free(bodies);
    free(msgs);
    free(res);
    return st.errors == 0 ? 0 : 1;
}
