/*
 * Unit tests for the daemons' log (daemons/log.c, compiled in here): the
 * line format, the level filter (set, and followed from a word as the
 * control block's), the rate limit of one call site, and the journal's
 * priority prefix when JOURNAL_STREAM names stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemons/log.c"

/* ---- stderr captured in a temporary file ----------------------------------- */

static int saved_stderr = -1;
static FILE *capture;

static int capture_start(void **state)
{
    (void)state;
    fflush(stderr);
    capture = tmpfile();
    assert_non_null(capture);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
    memset(sites, 0, sizeof(sites));
    log_level_word = NULL;
    log_level = SHMQ_LOG_INFO;
    unsetenv("JOURNAL_STREAM");
    shmq_log_init("test-log");
    return 0;
}

static int capture_stop(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fclose(capture);
    return 0;
}

/* The captured lines, and how many. */
static int captured(char *out, size_t len)
{
    size_t n = 0;
    int lines = 0;
    rewind(capture);
    int c;
    while ((c = fgetc(capture)) != EOF && n + 1 < len) {
        out[n++] = (char)c;
        lines += c == '\n';
    }
    out[n] = '\0';
    return lines;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_format(void **state)
{
    (void)state;
    char buf[4096], want[128];
    shmq_log(SHMQ_LOG_WARN, "disk %d%% used", 91);
    assert_int_equal(captured(buf, sizeof(buf)), 1);
    /* 2026-12-06 02:51:07.120 WARN  test-log[PID]: disk 91% used */
    assert_int_equal(strlen(buf) > 24, 1);
    assert_true(buf[4] == '-' && buf[10] == ' ' && buf[19] == '.' && buf[23] == ' ');
    snprintf(want, sizeof(want), "WARN  test-log[%d]: disk 91%% used\n", (int)getpid());
    assert_string_equal(buf + 24, want);
}

static void test_level_filter(void **state)
{
    (void)state;
    char buf[4096];
    shmq_log_set_level(SHMQ_LOG_WARN);
    shmq_log(SHMQ_LOG_INFO, "info dropped");
    shmq_log(SHMQ_LOG_DEBUG, "debug dropped");
    shmq_log(SHMQ_LOG_ERROR, "error kept");
    shmq_log(SHMQ_LOG_WARN, "warn kept");
    assert_int_equal(captured(buf, sizeof(buf)), 2);
    assert_null(strstr(buf, "dropped"));
    /* A word followed (the control block's) decides from now on. */
    _Atomic int32_t word = SHMQ_LOG_DEBUG;
    shmq_log_follow(&word);
    assert_int_equal(shmq_log_level_now(), SHMQ_LOG_DEBUG);
    shmq_log(SHMQ_LOG_DEBUG, "debug now kept");
    atomic_store(&word, SHMQ_LOG_ERROR);
    shmq_log(SHMQ_LOG_WARN, "warn now dropped");
    /* A value out of range (a scribbled word) falls back to the level set. */
    atomic_store(&word, 77);
    assert_int_equal(shmq_log_level_now(), SHMQ_LOG_WARN);
    shmq_log_follow(NULL);
    assert_int_equal(captured(buf, sizeof(buf)), 3);
    assert_non_null(strstr(buf, "debug now kept"));
    assert_null(strstr(buf, "now dropped"));
}

static void test_rate_limit(void **state)
{
    (void)state;
    char buf[1 << 16];
    for (int i = 0; i < 5 * LOG_BURST; i++) {
        shmq_log(SHMQ_LOG_ERROR, "repeated failure %d", i);
    }
    shmq_log(SHMQ_LOG_ERROR, "another site");
    /* One site: LOG_BURST lines in its window; the other site is not held back. */
    assert_int_equal(captured(buf, sizeof(buf)), LOG_BURST + 1);
    assert_non_null(strstr(buf, "another site"));
    char last[64];
    snprintf(last, sizeof(last), "repeated failure %d\n", LOG_BURST - 1);
    assert_non_null(strstr(buf, last));
    /* After the window, the next line of the site says how many were dropped. */
    log_site_t *s = NULL;
    for (int i = 0; i < LOG_SITES; i++) {
        if (sites[i].suppressed > 0) {
            s = &sites[i];
        }
    }
    assert_non_null(s);
    assert_int_equal(s->suppressed, 4 * LOG_BURST);
    s->window_ms -= LOG_WINDOW_MS;
    shmq_log(SHMQ_LOG_ERROR, s->fmt, 999);
    captured(buf, sizeof(buf));
    char more[96];
    snprintf(more, sizeof(more), "repeated failure 999 (%d more like it suppressed)\n",
             4 * LOG_BURST);
    assert_non_null(strstr(buf, more));
}

static void test_journal_prefix(void **state)
{
    (void)state;
    char buf[4096], js[64], want[128];
    struct stat sb;
    assert_int_equal(fstat(STDERR_FILENO, &sb), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)sb.st_dev,
             (unsigned long long)sb.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    shmq_log_init("test-log");
    shmq_log(SHMQ_LOG_ERROR, "to the journal");
    shmq_log(SHMQ_LOG_INFO, "info to the journal");
    /* Another stream named: not the journal. */
    setenv("JOURNAL_STREAM", "1:1", 1);
    shmq_log_init("test-log");
    shmq_log(SHMQ_LOG_WARN, "plain again");
    captured(buf, sizeof(buf));
    snprintf(want, sizeof(want),
             "<3>ERROR test-log[%d]: to the journal\n<6>INFO  test-log[%d]: ", (int)getpid(),
             (int)getpid());
    assert_memory_equal(buf, want, strlen(want));
    assert_null(strstr(buf, "<4>"));
    assert_non_null(strstr(buf, "WARN  test-log"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_level_filter, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_rate_limit, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_journal_prefix, capture_start, capture_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
