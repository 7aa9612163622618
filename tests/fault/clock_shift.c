/*
 * A clock shim for the corruption campaign (LD_PRELOAD): moves the wall
 * clock of every process of a store ahead, so that delayed and timed
 * messages sent days ahead fall due as soon as the store starts, and what
 * the scheduler's files say about them is put to use at once.
 *
 * Environment (read at each call):
 *   SHMQ_CLOCK_SHIFT_MS   milliseconds added to CLOCK_REALTIME (and its
 *                         coarse variant), time() and gettimeofday(); 0 or
 *                         unset: the real clock
 * Monotonic clocks are left alone (timeouts and intervals stay real).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int64_t shift_ms(void)
{
    const char *s = getenv("SHMQ_CLOCK_SHIFT_MS");
    return s ? strtoll(s, NULL, 10) : 0;
}

static void shift(struct timespec *ts, int64_t ms)
{
    int64_t ns = (int64_t)ts->tv_nsec + (ms % 1000) * 1000000;
    ts->tv_sec += ms / 1000 + ns / 1000000000;
    ns %= 1000000000;
    if (ns < 0) {
        ns += 1000000000;
        ts->tv_sec--;
    }
    ts->tv_nsec = ns;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = (int)syscall(SYS_clock_gettime, id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t ms = shift_ms();
        if (ms) {
            shift(ts, ms);
        }
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return -1;
    }
    tv->tv_sec = ts.tv_sec; /* declared nonnull */
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return (time_t)-1;
    }
    if (out) {
        *out = ts.tv_sec;
    }
    return ts.tv_sec;
}
