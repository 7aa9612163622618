/*
 * USDT probes (provider "shmq") at the points of a message's life and of a
 * store's: docs/tracing.md lists each probe and its arguments, and
 * tools/shmq-trace attaches to them.
 *
 * A probe is sys/sdt.h's: a single nop in the code and a note in the ELF
 * file (.note.stapsdt) naming where its arguments are.  With no tracer
 * attached it costs the nop and having its arguments in registers; a
 * tracer replaces the nop with a breakpoint.  Built without sys/sdt.h
 * (systemtap-sdt-dev), or with -DSHMQ_NO_PROBES, a probe is nothing at all.
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
#include <sys/sdt.h>
#define SHMQ_HAVE_PROBES 1
#endif
#endif

#ifdef SHMQ_HAVE_PROBES
#define SHMQ_PROBE(name, ...) STAP_PROBEV(shmq, name, ##__VA_ARGS__)
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
