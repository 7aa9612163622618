/*
 * shmqctl controller status --controller HOST:PORT [--json]: one status
 * request to a shmq-controller's client port (format/controller_frame.h)
 * and its answer, as text or as the controller's JSON.  The controller
 * answers with its own view; a follower's has no "alive" per replica (only
 * the leader hears heartbeats).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/controller_frame.h"
#include "net/net.h"
#include "shmqctl.h"

static long answer_size(const uint8_t *buf, size_t len)
{
    return shmq_ctrl_frame_size(buf, len);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_ids(json_t *a)
{
    size_t i;
    json_t *e;
    printf("[");
    json_array_foreach(a, i, e)
    {
        printf("%s%lld", i ? "," : "", (long long)json_integer_value(e));
    }
    printf("]");
}

static void print_text(json_t *o)
{
    json_t *self = json_object_get(o, "self"), *e, *set;
    size_t i, k;
    const char *leader = jstr(o, "leader");

    printf("group %s: answered by %s (%s), term %lld, applied index %lld\n", jstr(o, "group"),
           jstr(self, "id"), jstr(self, "role"), jint(o, "term"), jint(o, "appliedIndex"));
    printf("leader: %s\n", jint(o, "leaderRaftId")
                               ? (leader[0] ? leader : "(address not known yet)")
                               : "none (no quorum)");
    printf("members:\n");
    json_array_foreach(json_object_get(o, "members"), i, e)
    {
        const char *addr = jstr(e, "address");
        printf("  %-8s raft %-21s clients %-21s%s\n", jstr(e, "id"), jstr(e, "raftAddress"),
               addr[0] ? addr : "-", json_is_true(json_object_get(e, "leader")) ? " leader" : "");
    }
    json_array_foreach(json_object_get(o, "brokerSets"), i, set)
    {
        long long master = jint(set, "masterId");
        printf("broker set %s (cluster %s): ", jstr(set, "brokerName"), jstr(set, "clusterName"));
        if (master < 0) {
            printf("no master");
        } else {
            printf("master %lld %s", master, jstr(set, "masterAddress"));
        }
        printf(", master epoch %lld, sync-state set ", jint(set, "masterEpoch"));
        print_ids(json_object_get(set, "syncStateSet"));
        printf(" epoch %lld\n", jint(set, "syncStateSetEpoch"));
        json_array_foreach(json_object_get(set, "replicas"), k, e)
        {
            json_t *alive = json_object_get(e, "alive");
            const char *gw = jstr(e, "gatewayAddress");
            printf("  replica %lld %s max offset %lld epoch %lld%s%s%s\n", jint(e, "brokerId"),
                   jstr(e, "address"), jint(e, "maxOffset"), jint(e, "epoch"),
                   alive ? (json_is_true(alive) ? " alive" : " not alive") : "",
                   gw[0] ? ", gateway " : "", gw);
        }
    }
}

int shmqctl_cmd_controller(shmqctl_args_t *a)
{
    static const char req[] = "{\"cmd\":\"status\"}";
    uint8_t frame[SHMQ_CTRL_FRAME_HEAD + sizeof(req)];
    uint32_t head = htonl((uint32_t)(sizeof(req) - 1));
    uint8_t *ans = NULL;
    size_t ans_len = 0;
    json_error_t jerr;
    json_t *o;
    int rc;
    int timeout = a->timeout_ms > 0 ? (int)a->timeout_ms : 5000;

    if (strcmp(a->pos[0], "status") != 0) {
        return shmqctl_usage_error(a->cmd, "controller: unknown subcommand '%s'", a->pos[0]);
    }
    if (!a->controller) {
        return shmqctl_usage_error(a->cmd, "controller status needs --controller HOST:PORT");
    }
    memcpy(frame, &head, sizeof(head));
    memcpy(frame + SHMQ_CTRL_FRAME_HEAD, req, sizeof(req) - 1);
    shmq_error_clear();
    rc = shmq_net_exchange(a->controller, NULL, frame, SHMQ_CTRL_FRAME_HEAD + sizeof(req) - 1,
                           answer_size, SHMQ_CTRL_FRAME_HEAD + SHMQ_CTRL_FRAME_MAX, timeout, &ans,
                           &ans_len);
    if (rc < 0) {
        const char *detail = shmq_error_detail();
        shmqctl_err("controller %s: %s", a->controller, detail[0] ? detail : shmq_strerror(rc));
        return SHMQCTL_EXIT_FAIL;
    }
    o = json_loadb((const char *)ans + SHMQ_CTRL_FRAME_HEAD, ans_len - SHMQ_CTRL_FRAME_HEAD, 0,
                   &jerr);
    free(ans);
    if (!o || !json_is_true(json_object_get(o, "ok"))) {
        shmqctl_err("controller %s: %s", a->controller,
                    o ? jstr(o, "error") : "the answer is not JSON");
        json_decref(o);
        return SHMQCTL_EXIT_FAIL;
    }
    if (a->json) {
        char *text = json_dumps(o, JSON_COMPACT);
        if (text) {
            printf("%s\n", text);
            free(text);
        }
    } else {
        print_text(o);
    }
    json_decref(o);
    return SHMQCTL_EXIT_OK;
}
