/*
 * "host:port" parsing (see hostport.h): pure string work, no resolution.
 */
#include "base/hostport.h"

#include "shmq/errors.h"

#include <string.h>

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
