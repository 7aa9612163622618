/*
 * shmqd under systemd (Type=notify, init/shmqd.service): the service
 * manager's notification protocol through libsystemd's sd_notify.
 *
 *   READY=1      once every worker runs: the store serves
 *   STATUS=...   the master's state, and how many workers run
 *   STOPPING=1   an orderly stop began
 *   WATCHDOG=1   every half WatchdogSec while the master's loop turns
 *
 * Without NOTIFY_SOCKET (not started by systemd) every call returns at
 * once and nothing is sent.  A failed send is logged once and otherwise
 * ignored: the service manager's view is not a reason to stop serving.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "base/clock.h"
#include "base/log.h"
#include "master.h"

static bool ready_sent;
static bool send_failed;
static int64_t watchdog_every_ms; /* 0: no watchdog */
static int64_t watchdog_next_ms;

static void notify(const char *what)
{
    int rc = sd_notify(0, what);
    if (rc < 0 && !send_failed) {
        send_failed = true;
        shmq_log(SHMQ_LOG_WARN, "cannot notify the service manager (%s): %s", what, strerror(-rc));
    }
}

void master_notify_start(void)
{
    uint64_t usec = 0;
    /* 0: do not unset the environment, the re-executed master reads it again. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_every_ms = (int64_t)(usec / 2000);
        if (watchdog_every_ms < 1) {
            watchdog_every_ms = 1;
        }
        watchdog_next_ms = 0;
        shmq_log(SHMQ_LOG_INFO, "the service manager's watchdog expects a ping every %lld ms",
                 (long long)(usec / 1000));
    }
}

void master_notify_state(const char *state, int running, int workers)
{
    char msg[160];
    if (workers > 0) {
        snprintf(msg, sizeof(msg), "STATUS=%s, %d of %d workers running", state, running, workers);
    } else {
        snprintf(msg, sizeof(msg), "STATUS=%s", state);
    }
    notify(msg);
}

void master_notify_ready(void)
{
    if (!ready_sent) {
        ready_sent = true;
        notify("READY=1");
    }
}

void master_notify_stopping(void)
{
    notify("STOPPING=1");
}

void master_notify_watchdog(void)
{
    if (watchdog_every_ms == 0) {
        return;
    }
    int64_t now = shmq_mono_ms();
    if (now >= watchdog_next_ms) {
        watchdog_next_ms = now + watchdog_every_ms;
        notify("WATCHDOG=1");
    }
}
