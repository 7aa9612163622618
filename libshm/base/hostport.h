/* "host:port" split into its host and port: the one parser of the
 * configuration's addresses (format/config.c) and of the network layer
 * (net/), which neither may include from the other. */
#ifndef SHMQ_HOSTPORT_H
#define SHMQ_HOSTPORT_H

#include <stddef.h>

/*
 * Split s = "host:port" at its last ':'.  The host is non-empty and copied
 * to host (host_size bytes with the NUL); a bracketed host ("[::1]:10912")
 * loses its brackets, so that an IPv6 literal may be written either way
 * ("::1:10912" is host "::1" as well, RocketMQ's reading).  The port is
 * decimal digits only, 0..65535; callers refuse 0 where it means nothing.
 * The host is not checked further: a name or an address, the caller decides.
 * Returns 0, or SHMQ_E_ARG with a detail naming what is wrong; host and
 * port are then unchanged.
 */
int shmq_hostport_split(const char *s, char *host, size_t host_size, int *port);

/*
 * "host:port" with the host looked up (getaddrinfo: it may block) into an
 * address literal: "10.0.0.5:10912", "[fe80::1]:10912" (the first address
 * found).  Returns 0, or SHMQ_E_CONFIG with a detail naming hostport.
 */
int shmq_hostport_resolve(const char *hostport, char *out, size_t len);

#endif
