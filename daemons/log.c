/*
 * The daemons' log (base/log.h), one format for every process:
 *
 *   2026-12-06 02:51:07.120 WARN  shmq-writer[4245]: message
 *
 * on stderr, one write(2) per line so that the lines of several processes
 * do not interleave.  Under systemd (stderr is the journal: JOURNAL_STREAM
 * names it) each line starts with the journal's priority prefix ("<4>")
 * instead of the time, which the journal records itself.
 *
 * Levels: a line above the level in force is dropped before it is
 * formatted.  The level is logLevel from broker.conf until the process
 * follows the control block's word (shmq_log_follow), which `shmqctl
 * log-level` sets while the store runs.
 *
 * Repeats: one call site (its format string) logs at most LOG_BURST lines
 * per LOG_WINDOW_MS; the rest are counted and the next line of that site
 * after the window says how many were suppressed.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "format/config.h"

#define LOG_BURST     50
#define LOG_WINDOW_MS 10000
#define LOG_SITES     64

static char log_who[32] = "shmq";
static int log_level = SHMQ_LOG_INFO;
static const _Atomic int32_t *log_level_word; /* the control block's, once attached */
static bool log_journal;

typedef struct log_site {
    const char *fmt; /* the call site */
    int64_t window_ms;
    uint32_t count;      /* lines in this window */
    uint64_t suppressed; /* dropped since the last line */
} log_site_t;

static log_site_t sites[LOG_SITES];

/* stderr is the journal's stream when JOURNAL_STREAM ("dev:ino") names it. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &sb) != 0) {
        return false;
    }
    return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

void shmq_log_init(const char *who)
{
    snprintf(log_who, sizeof(log_who), "%s", who);
    log_journal = stderr_is_journal();
}

void shmq_log_set_level(int level)
{
    if (level >= SHMQ_LOG_ERROR && level <= SHMQ_LOG_DEBUG) {
        log_level = level;
    }
}

void shmq_log_follow(const _Atomic int32_t *word)
{
    log_level_word = word;
}

int shmq_log_level_now(void)
{
    if (log_level_word != NULL) {
        /* relaxed: a setting; a line more or less around a change does not matter */
        int32_t v = atomic_load_explicit(log_level_word, memory_order_relaxed);
        if (v >= SHMQ_LOG_ERROR && v <= SHMQ_LOG_DEBUG) {
            return v;
        }
    }
    return log_level;
}

/* The site's share of the window: false to drop the line; *suppressed the count to report. */
static bool site_admits(const char *fmt, uint64_t *suppressed)
{
    *suppressed = 0;
    size_t h = ((uintptr_t)fmt >> 3) % LOG_SITES;
    log_site_t *s = &sites[h];
    int64_t now = shmq_mono_ms();
    if (s->fmt != fmt) {
        /* A new site in this slot (or a collision): start its own window. */
        s->fmt = fmt;
        s->window_ms = now;
        s->count = 0;
        s->suppressed = 0;
    }
    if (now - s->window_ms >= LOG_WINDOW_MS) {
        s->window_ms = now;
        s->count = 0;
        *suppressed = s->suppressed;
        s->suppressed = 0;
    }
    if (s->count >= LOG_BURST) {
        s->suppressed++;
        return false;
    }
    s->count++;
    return true;
}

void shmq_log(enum shmq_log_level level, const char *fmt, ...)
{
    if ((int)level > shmq_log_level_now()) {
        return;
    }
    uint64_t suppressed;
    if (!site_admits(fmt, &suppressed)) {
        return;
    }
    static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char more[64] = "";
    if (suppressed > 0) {
        snprintf(more, sizeof(more), " (%llu more like it suppressed)",
                 (unsigned long long)suppressed);
    }
    char line[1200];
    int n;
    if (log_journal) {
        n = snprintf(line, sizeof(line), "%s%-5s %s[%d]: %s%s\n", prio[level],
                     shmq_log_level_text(level), log_who, (int)getpid(), msg, more);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ld %-5s %s[%d]: %s%s\n", when, ts.tv_nsec / 1000000,
                     shmq_log_level_text(level), log_who, (int)getpid(), msg, more);
    }
    if (n > (int)sizeof(line)) {
        n = (int)sizeof(line);
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
