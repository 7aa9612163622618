/*
 * shmq-controller's keys (controller_config.h): defaults, one key's
 * parsing and bounds, the file, and the checks of the whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hostport.h"
#include "format/controller_config.h"
#include "shmq/errors.h"

#define CONF_LINE_MAX 4096

void shmq_ctrl_config_defaults(shmq_ctrl_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->group, sizeof(cfg->group), "%s", "DefaultControllerGroup");
    snprintf(cfg->store_path, sizeof(cfg->store_path), "%s", "./controller-store");
    snprintf(cfg->listen, sizeof(cfg->listen), "%s", "127.0.0.1:9880");
    cfg->broker_timeout_ms = 10000;
    cfg->election_timeout_ms = 1000;
    cfg->snapshot_threshold = 1024;
}

static int invalid(const char *key, const char *value, const char *want)
{
    return shmq_error_set(SHMQ_E_CONFIG, "%s=%.200s: %s", key, value, want);
}

static int parse_i32(const char *key, const char *value, long lo, long hi, int32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (!value[0] || *end || errno || v < lo || v > hi || value[0] == '+' || value[0] == ' ') {
        char want[96];
        snprintf(want, sizeof(want), "expected an integer in %ld..%ld", lo, hi);
        return invalid(key, value, want);
    }
    *out = (int32_t)v;
    return 0;
}

/* An IPv4 literal and a port 1..65535 (libraft's TCP transport takes IPv4 only). */
static int ipv4_hostport(const char *key, const char *value, bool any_host)
{
    char host[SHMQ_CTRL_ADDR_MAX];
    int port;
    struct in_addr a;
    if (strlen(value) >= SHMQ_CTRL_ADDR_MAX ||
        shmq_hostport_split(value, host, sizeof(host), &port) < 0 || port == 0 ||
        inet_pton(AF_INET, host, &a) != 1 || (!any_host && a.s_addr == htonl(INADDR_ANY))) {
        return invalid(key, value, "expected an IPv4 address and a port, such as 127.0.0.1:9877");
    }
    return 0;
}

static int parse_peers(shmq_ctrl_config_t *cfg, const char *value)
{
    const char *key = "controllerDLegerPeers";
    char buf[CONF_LINE_MAX];
    char *save = NULL;
    int n = 0;
    shmq_ctrl_peer_t peers[SHMQ_CTRL_MAX_MEMBERS];

    if (strlen(value) >= sizeof(buf)) {
        return invalid(key, value, "too long");
    }
    snprintf(buf, sizeof(buf), "%s", value);
    for (char *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *dash = strchr(tok, '-');
        if (n >= SHMQ_CTRL_MAX_MEMBERS) {
            return invalid(key, value, "more than 16 controllers");
        }
        if (!dash || dash == tok || (size_t)(dash - tok) >= sizeof(peers[0].name)) {
            return invalid(key, value,
                           "expected id-host:port;id-host:port;... such as "
                           "n0-127.0.0.1:9877;n1-127.0.0.1:9878;n2-127.0.0.1:9879");
        }
        *dash = '\0';
        for (const char *c = tok; *c; c++) {
            if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
                !(*c >= '0' && *c <= '9') && *c != '_') {
                return invalid(key, value, "a controller id is letters, digits and '_'");
            }
        }
        if (ipv4_hostport(key, dash + 1, false) < 0) {
            return SHMQ_E_CONFIG;
        }
        for (int i = 0; i < n; i++) {
            if (!strcmp(peers[i].name, tok) || !strcmp(peers[i].address, dash + 1)) {
                return invalid(key, value, "a controller id or address appears twice");
            }
        }
        snprintf(peers[n].name, sizeof(peers[n].name), "%s", tok);
        snprintf(peers[n].address, sizeof(peers[n].address), "%s", dash + 1);
        peers[n].raft_id = (uint64_t)n + 1;
        n++;
    }
    if (n == 0) {
        return invalid(key, value, "no controller");
    }
    memcpy(cfg->peers, peers, sizeof(peers[0]) * (size_t)n);
    cfg->npeers = n;
    return 0;
}

int shmq_ctrl_config_set(shmq_ctrl_config_t *cfg, const char *key, const char *value,
                         shmq_ctrl_config_warn_fn warn)
{
    if (!strcmp(key, "controllerDLegerGroup")) {
        if (!value[0] || strlen(value) >= sizeof(cfg->group)) {
            return invalid(key, value, "expected 1..127 bytes");
        }
        snprintf(cfg->group, sizeof(cfg->group), "%s", value);
    } else if (!strcmp(key, "controllerDLegerPeers")) {
        return parse_peers(cfg, value);
    } else if (!strcmp(key, "controllerDLegerSelfId")) {
        if (!value[0] || strlen(value) >= sizeof(cfg->self_id)) {
            return invalid(key, value, "expected one of controllerDLegerPeers' ids");
        }
        snprintf(cfg->self_id, sizeof(cfg->self_id), "%s", value);
    } else if (!strcmp(key, "controllerStorePath")) {
        if (!value[0] || strlen(value) >= sizeof(cfg->store_path)) {
            return invalid(key, value, "expected a directory");
        }
        snprintf(cfg->store_path, sizeof(cfg->store_path), "%s", value);
    } else if (!strcmp(key, "enableElectUncleanMaster")) {
        if (strcmp(value, "true") && strcmp(value, "false")) {
            return invalid(key, value, "expected true or false");
        }
        cfg->elect_unclean = !strcmp(value, "true");
    } else if (!strcmp(key, "controllerListen")) {
        if (ipv4_hostport(key, value, true) < 0) {
            return SHMQ_E_CONFIG;
        }
        snprintf(cfg->listen, sizeof(cfg->listen), "%s", value);
    } else if (!strcmp(key, "controllerBrokerTimeoutMillis")) {
        return parse_i32(key, value, 100, 600000, &cfg->broker_timeout_ms);
    } else if (!strcmp(key, "controllerElectionTimeoutMillis")) {
        return parse_i32(key, value, 50, 60000, &cfg->election_timeout_ms);
    } else if (!strcmp(key, "controllerSnapshotThreshold")) {
        return parse_i32(key, value, 4, 1000000, &cfg->snapshot_threshold);
    } else if (warn) {
        char msg[300];
        snprintf(msg, sizeof(msg), "unknown key '%.200s' ignored", key);
        warn(msg);
    }
    return 0;
}

static char *trim(char *s)
{
    char *e = s + strlen(s);
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) {
        *--e = '\0';
    }
    return s;
}

int shmq_ctrl_config_load(shmq_ctrl_config_t *cfg, const char *path, shmq_ctrl_config_warn_fn warn)
{
    FILE *f = fopen(path, "re");
    char line[CONF_LINE_MAX];
    int rc = 0;
    if (!f) {
        int e = errno;
        shmq_error_set(-e, "%s: %s", path, strerror(e));
        return -e;
    }
    for (int no = 1; rc == 0 && fgets(line, sizeof(line), f); no++) {
        char *s, *sep;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "%s:%d: line too long", path, no);
            break;
        }
        s = trim(line);
        if (!*s || *s == '#' || *s == '!') {
            continue;
        }
        sep = strpbrk(s, "=:");
        if (!sep) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "%s:%d: expected key=value, got '%.100s'", path, no,
                                s);
            break;
        }
        *sep = '\0';
        rc = shmq_ctrl_config_set(cfg, trim(s), trim(sep + 1), warn);
        if (rc < 0) {
            shmq_error_wrap(rc, "%s:%d", path, no);
        }
    }
    fclose(f);
    return rc;
}

const shmq_ctrl_peer_t *shmq_ctrl_config_self(const shmq_ctrl_config_t *cfg)
{
    for (int i = 0; i < cfg->npeers; i++) {
        if (!strcmp(cfg->peers[i].name, cfg->self_id)) {
            return &cfg->peers[i];
        }
    }
    return NULL;
}

int shmq_ctrl_config_validate(const shmq_ctrl_config_t *cfg)
{
    if (cfg->npeers == 0) {
        return shmq_error_set(SHMQ_E_CONFIG, "controllerDLegerPeers is not set");
    }
    if (!cfg->self_id[0]) {
        return shmq_error_set(SHMQ_E_CONFIG, "controllerDLegerSelfId is not set");
    }
    if (!shmq_ctrl_config_self(cfg)) {
        return shmq_error_set(SHMQ_E_CONFIG,
                              "controllerDLegerSelfId=%s is not an id of controllerDLegerPeers",
                              cfg->self_id);
    }
    for (int i = 0; i < cfg->npeers; i++) {
        if (!strcmp(cfg->peers[i].address, cfg->listen)) {
            return shmq_error_set(SHMQ_E_CONFIG, "controllerListen=%s is also %s's Raft address",
                                  cfg->listen, cfg->peers[i].name);
        }
    }
    return 0;
}
