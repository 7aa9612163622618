/*
 * USDT probes (provider "shmq") at the points of a message's life and of a
 * store's: docs/tracing.md lists each probe and its arguments, and
 * tools/shmq-trace attaches to them.
 *
 * A probe is sys/sdt.h's: a single nop in the code and a note in the ELF
 * file (.note.stapsdt) naming where its arguments are and its semaphore, a
 * counter (libshm/base/probes.c) that a tracer raises while it is attached
 * (libbpf: the uprobe's reference counter).  With no tracer attached a
 * probe costs a load and a branch not taken: its arguments are computed
 * only while it is traced; a tracer replaces the nop with a breakpoint.
 * Built without sys/sdt.h (systemtap-sdt-dev), or with -DSHMQ_NO_PROBES, a
 * probe is nothing at all.
 *
 * Arguments are integers (offsets, sizes, counts, nanoseconds) or pointers
 * the tracer reads from: a topic (pointer and length: not NUL-terminated),
 * a role or a phase name (NUL-terminated).  A pointer argument stays valid
 * only while the probe fires.
 */
#ifndef SHMQ_PROBES_H
#define SHMQ_PROBES_H

#if !defined(SHMQ_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#define SDT_USE_VARIADIC 1
/* Arguments in registers or constants, never memory operands: libbpf cannot read an
 * argument in base+index memory (-8@16(%r13,%rax)). */
#define STAP_SDT_ARG_CONSTRAINT nr
#define _SDT_HAS_SEMAPHORES     1
#include <sys/sdt.h>
#define SHMQ_HAVE_PROBES 1
#endif
#endif

#ifdef SHMQ_HAVE_PROBES
/* Every probe's name, once: its semaphore is shmq_<name>_semaphore (probes.c). */
#define SHMQ_PROBE_NAMES(X)                                                                        \
    X(produce)                                                                                     \
    X(append)                                                                                      \
    X(flush)                                                                                       \
    X(flush_error)                                                                                 \
    X(dispatch)                                                                                    \
    X(pull)                                                                                        \
    X(worker_start)                                                                                \
    X(worker_exit)                                                                                 \
    X(recovery)
#define SHMQ_PROBE_SEMAPHORE_DECLARE(name) extern volatile unsigned short shmq_##name##_semaphore;
SHMQ_PROBE_NAMES(SHMQ_PROBE_SEMAPHORE_DECLARE)
#define SHMQ_PROBE(name, ...)                                                                      \
    do {                                                                                           \
        if (__builtin_expect(shmq_##name##_semaphore != 0, 0)) {                                   \
            STAP_PROBEV(shmq, name, ##__VA_ARGS__);                                                \
        }                                                                                          \
    } while (0)
#else
/* No probes: the arguments are still referenced (no unused variable), never evaluated. */
static inline void shmq_probe_none(int unused, ...)
{
    (void)unused;
}
#define SHMQ_PROBE(name, ...)                                                                      \
    do {                                                                                           \
        if (0) {                                                                                   \
            shmq_probe_none(0, ##__VA_ARGS__);                                                     \
        }                                                                                          \
    } while (0)
#endif

#endif
