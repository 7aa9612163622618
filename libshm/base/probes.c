/*
 * The probes' semaphores (probes.h): one per probe, in the ELF section
 * .probes where sys/sdt.h's notes name them.  A tracer attached to a probe
 * raises its semaphore in every process that maps the file (the kernel's
 * uprobe reference counter) and lowers it when it detaches.
 */
#include "base/probes.h"

#ifdef SHMQ_HAVE_PROBES
#define SHMQ_PROBE_SEMAPHORE_DEFINE(name)                                                          \
    __attribute__((section(".probes"))) volatile unsigned short shmq_##name##_semaphore;
SHMQ_PROBE_NAMES(SHMQ_PROBE_SEMAPHORE_DEFINE)
#endif
