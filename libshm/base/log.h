/*
 * The daemons' log: "<time> <level> <role>[pid]: message" on stderr,
 * written by daemons/worker.c.  Declared here, below every layer of the
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

void shmq_log_init(const char *who);
void shmq_log(enum shmq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
