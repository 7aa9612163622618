/*
 * Unit tests of the producer's asynchronous callbacks (libshm/client/producer_send.c)
 * against a real store: shmqd (next to this test in the build) is started on a
 * temporary directory for each test and stopped after it.  They prove that
 * callbacks which send again and poll again (a nested shmq_producer_poll) each
 * run exactly once with the answer of their own message.  Skipped when shmqd
 * is not built.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "format/message.h"
#include "shmq/errors.h"
#include "shmq/producer.h"

#define FIRST    200 /* messages sent from the test */
#define AGAIN    100 /* of those, the first AGAIN send one more from their callback */
#define MSGS_MAX (FIRST + AGAIN)

typedef struct fixture {
    char dir[64];
    pid_t shmqd;
    shmq_producer_t *p;
} fixture_t;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    char exe[PATH_MAX], shmqd[PATH_MAX + 16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) {
        return -1;
    }
    exe[len] = '\0';
    /* build/tests/unit/test_producer -> build/shmqd */
    snprintf(shmqd, sizeof(shmqd), "%s/../../shmqd", dirname(exe));
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    *state = f;
    if (access(shmqd, X_OK) != 0) {
        return 0; /* the tests skip */
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/shmq-test-producer.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    f->shmqd = fork();
    if (f->shmqd < 0) {
        return -1;
    }
    if (f->shmqd == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(shmqd, shmqd, "--store", f->dir, "--set", "mappedFileSizeCommitLog=1048576", "--set",
              "mappedFileSizeConsumeQueue=6000", "--set", "maxMessageSize=65536", "--set",
              "maxHashSlotNum=4096", "--set", "maxIndexNum=16384", (char *)NULL);
        _exit(127);
    }
    shmq_producer_options_t po = {.send_timeout_ms = 10000, .attach_timeout_ms = 10000};
    for (int i = 0; i < 300; i++) { /* up to 30 s for the store to run */
        if (shmq_producer_open(f->dir, &po, &f->p) == 0) {
            return 0;
        }
        sleep_ms(100);
    }
    return -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->p != NULL) {
        shmq_producer_close(f->p);
    }
    if (f->shmqd > 0) {
        kill(f->shmqd, SIGTERM);
        int st;
        for (int i = 0; i < 600 && waitpid(f->shmqd, &st, WNOHANG) == 0; i++) {
            sleep_ms(100);
        }
        if (waitpid(f->shmqd, &st, WNOHANG) == 0) {
            kill(f->shmqd, SIGKILL);
            waitpid(f->shmqd, &st, 0);
        }
    }
    if (f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", f->dir);
        }
    }
    free(f);
    return 0;
}

/* What the callbacks saw: each message's number is its callback's argument. */
typedef struct seen {
    shmq_producer_t *p;
    shmq_message_t m;
    int sent;
    int calls[MSGS_MAX];
    int errs;
    int64_t phys[MSGS_MAX];
    char msg_id[MSGS_MAX][SHMQ_MSGID_MAX];
    char uniq[MSGS_MAX][SHMQ_UNIQ_KEY_MAX];
} seen_t;

static seen_t seen;

static void on_done(void *arg, int err, const shmq_send_result_t *res)
{
    int i = (int)(intptr_t)arg;
    seen.calls[i]++;
    if (err != 0 || res->status != SHMQ_SEND_OK) {
        seen.errs++;
        return;
    }
    seen.phys[i] = res->phys_offset;
    snprintf(seen.msg_id[i], sizeof(seen.msg_id[i]), "%s", res->msg_id);
    snprintf(seen.uniq[i], sizeof(seen.uniq[i]), "%s", res->uniq_key);
    if (i < AGAIN) {
        /* From the callback: one more message, and every 7th a nested poll. */
        int j = seen.sent++;
        if (shmq_send_async(seen.p, &seen.m, on_done, (void *)(intptr_t)j) != 0) {
            seen.errs++;
        }
        if (i % 7 == 0) {
            shmq_producer_poll(seen.p, 0);
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_callbacks_that_send_and_poll_again_each_run_once(void **state)
{
    fixture_t *f = *state;
    if (f->p == NULL) {
        skip();
    }
    static const char body[] = "callback body";
    memset(&seen, 0, sizeof(seen));
    seen.p = f->p;
    shmq_message_init(&seen.m, "ProducerCallbackTopic", body, sizeof(body) - 1);
    for (int k = 0; k < FIRST; k++) {
        int i = seen.sent++;
        assert_int_equal(shmq_send_async(f->p, &seen.m, on_done, (void *)(intptr_t)i), 0);
        if (k % 16 == 0) {
            shmq_producer_poll(f->p, 0);
        }
    }
    assert_int_equal(shmq_producer_flush(f->p, 20000), 0);
    assert_int_equal(seen.sent, MSGS_MAX);
    assert_int_equal(seen.errs, 0);
    for (int i = 0; i < MSGS_MAX; i++) {
        assert_int_equal(seen.calls[i], 1);
        assert_int_equal(strlen(seen.uniq[i]), SHMQ_UNIQ_KEY_LEN);
        shmq_host_t h;
        int64_t phys;
        assert_int_equal(shmq_msgid_parse(seen.msg_id[i], &h, &phys), 0);
        assert_int_equal(phys, seen.phys[i]);
    }
    /* Each callback had its own message's answer: every offset and key differs. */
    int64_t sorted[MSGS_MAX];
    memcpy(sorted, seen.phys, sizeof(sorted));
    qsort(sorted, MSGS_MAX, sizeof(sorted[0]), cmp_i64);
    for (int i = 1; i < MSGS_MAX; i++) {
        assert_true(sorted[i] > sorted[i - 1]);
    }
    qsort(seen.uniq, MSGS_MAX, SHMQ_UNIQ_KEY_MAX, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < MSGS_MAX; i++) {
        assert_string_not_equal(seen.uniq[i - 1], seen.uniq[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_callbacks_that_send_and_poll_again_each_run_once,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
