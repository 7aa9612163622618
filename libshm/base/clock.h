/* Clocks in milliseconds: CLOCK_REALTIME (record times) and CLOCK_MONOTONIC (waits, ages);
 * nanoseconds and the CPU's pause for the short spins bounded by them. */
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

/* Monotonic nanoseconds: spins too short for milliseconds, and seeds. */
/* The wall clock in nanoseconds (CLOCK_REALTIME: comparable with other processes' times). */
static inline int64_t shmq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t shmq_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One turn of a bounded spin: the pause hint lets the sibling hyperthread run. */
static inline void shmq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
