/* Clocks in milliseconds: CLOCK_REALTIME (record times) and CLOCK_MONOTONIC (waits, ages). */
#ifndef SHMQ_CLOCK_H
#define SHMQ_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t shmq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t shmq_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
