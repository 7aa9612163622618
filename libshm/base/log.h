/*
 * The daemons' log: "<time> <level> <role>[pid]: message" on stderr,
 * written by daemons/log.c.  Declared here, below every layer of the
 * library, so that library code run by the daemons can log; such code
 * refers to shmq_log weakly (tools and client programs do not link it)
 * and says what it found through its own sink otherwise.
 */
#ifndef SHMQ_LOG_H
#define SHMQ_LOG_H

enum shmq_log_level {
    SHMQ_LOG_ERROR = 0,
    SHMQ_LOG_WARN = 1,
    SHMQ_LOG_INFO = 2,
    SHMQ_LOG_DEBUG = 3
};

#include <stdatomic.h>
#include <stdint.h>

/* The process's name in every line; detects a journal on stderr (daemons/log.c). */
void shmq_log_init(const char *who);

/* A line above the level in force is dropped (and repeats of one call site are
 * rate-limited: daemons/log.c). */
void shmq_log(enum shmq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The level in force until the process follows a word (logLevel from broker.conf). */
void shmq_log_set_level(int level);

/* From now on the level is the word's (the control block's, set by shmqctl log-level);
 * a value outside ERROR..DEBUG leaves the level set before. */
void shmq_log_follow(const _Atomic int32_t *word);

/* The level in force (its name: shmq_log_level_text, format/config.h). */
int shmq_log_level_now(void);

#endif
