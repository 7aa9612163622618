/*
 * shmqctl query and offset-by-time: look messages up in a store, running or
 * stopped, through the read-only admin API (include/shmq/admin.h).
 *
 *   query --topic T --key K [--begin TIME] [--end TIME] [--max N] [--json]
 *   query --uniq-key ID [--topic T] [--json]
 *   query --msg-id ID [--json]
 *   query --phys-offset OFFSET [--json]
 *   offset-by-time --topic T --queue Q --time TIME [--json]
 *
 * TIME is milliseconds since the epoch or local "YYYY-MM-DD HH:MM:SS[.mmm]".
 * Messages are printed as `consume` prints them: one text line each, or
 * with --json one object per line with the same fields.  Exit codes: 0
 * found, 1 nothing found or an error, 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/query.h"
#include "shmq/admin.h"
#include "shmqctl.h"

/* ---- arguments ---------------------------------------------------------------------------- */

int shmqctl_parse_time(const char *s, int64_t *out)
{
    if (shmqctl_parse_int(s, 0, INT64_MAX, false, out) == 0) {
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0, used = 0;
    int n = sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used);
    if (n != 6) {
        return -1;
    }
    if (s[used] == '.') {
        int more = 0;
        if (sscanf(s + used + 1, "%3d%n", &ms, &more) != 1 || more != 3) {
            return -1;
        }
        used += 4;
    }
    if (s[used] != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1 || t < 0) {
        return -1;
    }
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

static int time_arg(shmqctl_args_t *a, const char *opt, const char *s, int64_t *out)
{
    if (shmqctl_parse_time(s, out) < 0) {
        return shmqctl_usage_error(a->cmd,
                                   "%s: expected ms since the epoch or \"YYYY-MM-DD HH:MM:SS\", "
                                   "got '%s'",
                                   opt, s);
    }
    return 0;
}

/* Options of the send family that only offset-by-time's --queue shares. */
static int reject_send_options(shmqctl_args_t *a)
{
    if (a->delay_level || a->sharding_key || a->async) {
        return shmqctl_usage_error(a->cmd, "%s takes no --delay-level, --sharding-key or --async",
                                   a->cmd);
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static int open_admin(shmqctl_args_t *a, shmq_admin_t **out)
{
    shmq_error_clear();
    int rc = shmq_admin_open_config(&a->cfg, out);
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("no store at %s", a->cfg.store_path_root_dir);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "cannot open the store at %s", a->cfg.store_path_root_dir);
    }
    return 0;
}

/* ---- query -------------------------------------------------------------------------------- */

static int query_check(shmqctl_args_t *a)
{
    int modes = (a->query_key != NULL) + (a->uniq_key != NULL) + (a->msg_id != NULL) +
                (a->phys_offset >= 0);
    if (modes != 1) {
        return shmqctl_usage_error(a->cmd,
                                   "query needs exactly one of --key, --uniq-key, --msg-id, "
                                   "--phys-offset");
    }
    if (a->time_arg) {
        return shmqctl_usage_error(a->cmd, "query takes no --time (see --begin and --end)");
    }
    if (!a->query_key && (a->begin_arg || a->end_arg || a->max >= 0)) {
        return shmqctl_usage_error(a->cmd, "--begin, --end and --max go with --key");
    }
    if (a->query_key && !a->topic) {
        return shmqctl_usage_error(a->cmd, "--key needs --topic");
    }
    if ((a->msg_id || a->phys_offset >= 0) && a->topic) {
        return shmqctl_usage_error(a->cmd, "--msg-id and --phys-offset take no --topic");
    }
    return 0;
}

static int query_one(shmqctl_args_t *a, shmq_admin_t *ad)
{
    shmq_msg_view_t v;
    int rc = a->msg_id ? shmq_query_by_msg_id(ad, a->msg_id, &v)
                       : shmq_query_by_phys_offset(ad, a->phys_offset, &v);
    if (rc == SHMQ_E_MSGID) {
        return shmqctl_usage_error(a->cmd, "--msg-id: not an offset message id: '%s'", a->msg_id);
    }
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("no message found: %s", shmq_error_detail());
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "query failed");
    }
    return shmqctl_print_message(a, &v) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
}

int shmqctl_cmd_query(shmqctl_args_t *a)
{
    int rc = query_check(a);
    if (rc) {
        return rc;
    }
    int64_t begin = 0, end = INT64_MAX;
    if ((a->begin_arg && (rc = time_arg(a, "--begin", a->begin_arg, &begin)) != 0) ||
        (a->end_arg && (rc = time_arg(a, "--end", a->end_arg, &end)) != 0)) {
        return rc;
    }
    if (begin > end) {
        return shmqctl_usage_error(a->cmd, "--begin is after --end");
    }
    int max = (int)a->max;
    if (a->max < 0) {
        max = a->cfg.max_msgs_num_batch;
        max = max < 1 ? 1 : max > SHMQ_QUERY_MAX ? SHMQ_QUERY_MAX : max;
    }
    shmq_admin_t *ad;
    rc = open_admin(a, &ad);
    if (rc) {
        return rc;
    }
    if (a->msg_id || a->phys_offset >= 0) {
        rc = query_one(a, ad);
        shmq_admin_close(ad);
        return rc;
    }
    shmq_query_result_t *res = malloc(sizeof(*res));
    if (!res) {
        shmq_admin_close(ad);
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_error_clear();
    if (a->query_key) {
        rc = shmq_query_by_key(ad, a->topic, a->query_key, begin, end, max, res);
    } else {
        rc = shmq_query_by_uniq_key(ad, a->topic, a->uniq_key, res);
    }
    int ret = SHMQCTL_EXIT_OK;
    if (rc == SHMQ_E_ARG) {
        ret = shmqctl_usage_error(a->cmd, "%s", shmq_error_detail());
    } else if (rc < 0) {
        ret = shmqctl_fail(rc, "query failed");
    } else if (res->count == 0) {
        shmqctl_err("no message found");
        ret = SHMQCTL_EXIT_FAIL;
    }
    if (rc >= 0 && res->corrupt > 0) {
        shmqctl_err("%zu candidate%s left out: corrupt (the first at CommitLog offset %lld; "
                    "shmqctl verify names the damage)",
                    res->corrupt, res->corrupt == 1 ? "" : "s", (long long)res->corrupt_phys);
        ret = SHMQCTL_EXIT_FAIL;
    }
    for (size_t i = 0; ret == SHMQCTL_EXIT_OK && i < res->count; i++) {
        if (shmqctl_print_message(a, &res->msgs[i]) < 0) {
            ret = SHMQCTL_EXIT_FAIL;
        }
    }
    free(res);
    shmq_admin_close(ad);
    return ret;
}

/* ---- offset-by-time ----------------------------------------------------------------------- */

int shmqctl_cmd_offset_by_time(shmqctl_args_t *a)
{
    int rc = reject_send_options(a);
    if (rc) {
        return rc;
    }
    if (a->query_key || a->uniq_key || a->msg_id || a->phys_offset >= 0 || a->begin_arg ||
        a->end_arg || a->max >= 0) {
        return shmqctl_usage_error(a->cmd, "offset-by-time takes --topic, --queue and --time");
    }
    if (!a->topic || a->queue_id < 0 || !a->time_arg) {
        return shmqctl_usage_error(a->cmd, "offset-by-time needs --topic, --queue and --time");
    }
    int64_t ts;
    rc = time_arg(a, "--time", a->time_arg, &ts);
    if (rc) {
        return rc;
    }
    shmq_admin_t *ad;
    rc = open_admin(a, &ad);
    if (rc) {
        return rc;
    }
    int64_t off = 0;
    shmq_error_clear();
    rc = shmq_query_offset_by_time(ad, a->topic, a->queue_id, ts, &off);
    shmq_admin_close(ad);
    if (rc == SHMQ_E_NOT_FOUND) {
        shmqctl_err("no queue %s/%d", a->topic, (int)a->queue_id);
        return SHMQCTL_EXIT_FAIL;
    }
    if (rc < 0) {
        return shmqctl_fail(rc, "offset-by-time failed");
    }
    if (a->json) {
        json_t *o = json_object();
        if (!o) {
            return SHMQCTL_EXIT_FAIL;
        }
        json_object_set_new(o, "topic", shmqctl_json_str(a->topic, strlen(a->topic)));
        json_object_set_new(o, "queue", json_integer(a->queue_id));
        json_object_set_new(o, "time", json_integer(ts));
        json_object_set_new(o, "offset", json_integer(off));
        return shmqctl_json_print(o) < 0 ? SHMQCTL_EXIT_FAIL : SHMQCTL_EXIT_OK;
    }
    printf("%lld\n", (long long)off);
    return SHMQCTL_EXIT_OK;
}
