/*
 * "host:port" parsing (see hostport.h): pure string work, no resolution.
 */
#include "base/hostport.h"

#include "shmq/errors.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int shmq_hostport_split(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        return shmq_error_set(SHMQ_E_ARG, "'%s': expected host:port", s);
    }
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0) {
        return shmq_error_set(SHMQ_E_ARG, "'%s': empty host before ':'", s);
    }
    if (hlen >= host_size) {
        return shmq_error_set(SHMQ_E_ARG, "'%s': host longer than %zu bytes", s, host_size - 1);
    }
    const char *p = colon + 1;
    long v = 0;
    if (*p == '\0') {
        return shmq_error_set(SHMQ_E_ARG, "'%s': no port after ':'", s);
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return shmq_error_set(SHMQ_E_ARG, "'%s': port '%s' is not a decimal number", s,
                                  colon + 1);
        }
        v = v * 10 + (*p - '0');
        if (v > 65535) {
            return shmq_error_set(SHMQ_E_ARG, "'%s': port %s is above 65535", s, colon + 1);
        }
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

int shmq_hostport_resolve(const char *hostport, char *out, size_t len)
{
    char host[256], port[16];
    int portnum;
    int rc = shmq_hostport_split(hostport, host, sizeof(host), &portnum);
    if (rc < 0) {
        return rc;
    }
    snprintf(port, sizeof(port), "%d", portnum);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int grc = getaddrinfo(host, port, &hints, &ai);
    if (grc != 0 || ai == NULL) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: %s", hostport, gai_strerror(grc));
    }
    char ip[64];
    grc = getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (grc != 0) {
        return shmq_error_set(SHMQ_E_CONFIG, "%s: %s", hostport, gai_strerror(grc));
    }
    snprintf(out, len, v6 ? "[%s]:%s" : "%s:%s", ip, port);
    return 0;
}
