/*
 * shmqctl dump: print CommitLog records or ConsumeQueue units of a store,
 * one per line, as text or as JSON lines (--json).
 *
 * The store is opened read-only (no lock, no recovery), so dump works while
 * a broker runs: the CommitLog alone, and the one ConsumeQueue asked for,
 * so that damage elsewhere in the store does not hide the log.  Read-only stores have no wrote_pos:
 * the CommitLog is read up to the zero tail after the last record (the first decode failure whose
 * bytes are all zero); any other decode failure is reported with its offset
 * and makes dump exit 1.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shmqctl.h"

#include "format/compress.h"

/* A property value as a JSON string, or JSON null when absent. */
static json_t *prop_json(const shmq_record_t *r, const char *name)
{
    size_t vlen;
    const char *v = shmq_props_get(r->props, r->props_len, name, &vlen);
    return v ? shmqctl_json_str(v, vlen) : json_null();
}

static json_t *record_json(const shmq_record_t *r, const void *body, size_t body_len)
{
    json_t *o = json_object();
    json_t *props = json_object();
    char host[64], msgid[SHMQ_MSGID_MAX];
    const char *name, *value;
    size_t nlen, vlen, pos = 0;

    if (!o || !props) {
        json_decref(o);
        json_decref(props);
        return NULL;
    }
    json_object_set_new(o, "phys_offset", json_integer(r->phys_offset));
    json_object_set_new(o, "size", json_integer(r->total_size));
    json_object_set_new(o, "magic", json_string(r->magic == SHMQ_MAGIC_V2 ? "V2" : "V1"));
    json_object_set_new(o, "topic", shmqctl_json_str(r->topic, r->topic_len));
    json_object_set_new(o, "queue_id", json_integer(r->queue_id));
    json_object_set_new(o, "queue_offset", json_integer(r->queue_offset));
    json_object_set_new(o, "sysflag", json_integer(r->sysflag));
    json_object_set_new(o, "flag", json_integer(r->flag));
    json_object_set_new(o, "born_ts", json_integer(r->born_ts));
    json_object_set_new(o, "store_ts", json_integer(r->store_ts));
    shmqctl_format_host(&r->born_host, host, sizeof(host));
    json_object_set_new(o, "born_host", json_string(host));
    shmqctl_format_host(&r->store_host, host, sizeof(host));
    json_object_set_new(o, "store_host", json_string(host));
    json_object_set_new(o, "reconsume_times", json_integer(r->reconsume_times));
    json_object_set_new(o, "prepared_tx_offset", json_integer(r->prepared_tx_offset));
    json_object_set_new(o, "body_crc", json_integer(r->body_crc));
    json_object_set_new(o, "body_len", json_integer((json_int_t)body_len));
    json_object_set_new(o, "stored_len", json_integer(r->body_len));
    int ct = shmq_body_compression(r->sysflag);
    json_object_set_new(o, "compression", json_string(shmqctl_compression_name(ct)));
    shmq_msgid_format(&r->store_host, r->phys_offset, msgid);
    json_object_set_new(o, "msg_id", json_string(msgid));
    json_object_set_new(o, "uniq_key", prop_json(r, SHMQ_PROP_UNIQ_KEY));
    json_object_set_new(o, "tags", prop_json(r, SHMQ_PROP_TAGS));
    json_object_set_new(o, "keys", prop_json(r, SHMQ_PROP_KEYS));
    /* Later duplicates replace earlier ones, as RocketMQ's decoder does. */
    while (shmq_props_next(r->props, r->props_len, &pos, &name, &nlen, &value, &vlen)) {
        json_t *k = shmqctl_json_str(name, nlen); /* keys must be valid UTF-8 too */
        const char *ks = k ? json_string_value(k) : NULL;
        if (ks) {
            json_object_set_new(props, ks, shmqctl_json_str(value, vlen));
        }
        json_decref(k);
    }
    json_object_set_new(o, "properties", props);
    if (shmqctl_utf8_printable(body, body_len)) {
        json_object_set_new(o, "body", json_stringn((const char *)body, body_len));
        json_object_set_new(o, "body_encoding", json_string("text"));
    } else {
        json_object_set_new(o, "body", shmqctl_json_base64(body, body_len));
        json_object_set_new(o, "body_encoding", json_string("base64"));
    }
    return o;
}

static void print_prop_text(const shmq_record_t *r, const char *label, const char *name)
{
    size_t vlen;
    const char *v = shmq_props_get(r->props, r->props_len, name, &vlen);
    printf(" %s=", label);
    if (v) {
        shmqctl_print_text(stdout, v, vlen);
    } else {
        putchar('-');
    }
}

static void record_text(const shmq_record_t *r)
{
    char ts[64], msgid[SHMQ_MSGID_MAX];

    shmqctl_format_ts(r->store_ts, ts, sizeof(ts));
    shmq_msgid_format(&r->store_host, r->phys_offset, msgid);
    printf("phys=%lld size=%d topic=", (long long)r->phys_offset, (int)r->total_size);
    shmqctl_print_text(stdout, r->topic, r->topic_len);
    printf(" qid=%d qoff=%lld store_ts=%lld (%s) sysflag=0x%x body_len=%u", (int)r->queue_id,
           (long long)r->queue_offset, (long long)r->store_ts, ts, (unsigned)r->sysflag,
           (unsigned)r->body_len);
    if (r->sysflag & SHMQ_SYSFLAG_COMPRESSED) {
        printf(" compression=%s", shmqctl_compression_name(shmq_body_compression(r->sysflag)));
        shmq_error_clear();
    }
    print_prop_text(r, "tags", SHMQ_PROP_TAGS);
    print_prop_text(r, "keys", SHMQ_PROP_KEYS);
    printf(" msgid=%s", msgid);
    print_prop_text(r, "uniq_key", SHMQ_PROP_UNIQ_KEY);
    putchar('\n');
}

static int dump_commitlog(shmqctl_args_t *a, shmq_commitlog_t *cl)
{
    unsigned flags = a->no_check ? SHMQ_DECODE_CHECK_PHYS : SHMQ_DECODE_CHECK_ALL;
    int64_t min = shmq_commitlog_min_offset(cl);
    int64_t limit = shmq_mfq_end_offset(&cl->q);
    int64_t pos = a->from > min ? a->from : min;
    int64_t n = 0;
    shmq_record_t rec;
    int rc;

    while (a->count < 0 || n < a->count) {
        memset(&rec, 0, sizeof(rec));
        shmq_error_clear();
        rc = shmq_commitlog_next(cl, &pos, limit, flags, &rec);
        if (rc == SHMQ_E_END) {
            break;
        }
        if (rc < 0) {
            char path[PATH_MAX + 32];
            const shmq_mapped_file_t *seg = NULL;
            size_t avail;
            if (rc == SHMQ_E_MAGIC && shmqctl_is_zero_tail(cl, pos)) {
                break; /* end of the data */
            }
            shmqctl_cl_seg_path(cl, pos, path, sizeof(path));
            shmqctl_cl_bytes(cl, pos, &avail, &seg);
            shmqctl_fail(rc, "record at offset %lld (file %s offset %lld): error %d",
                         (long long)pos, path, seg ? (long long)(pos - seg->start_offset) : -1LL,
                         rc);
            return SHMQCTL_EXIT_FAIL;
        }
        if (a->json) {
            uint8_t *owned;
            const void *body;
            size_t body_len;
            rc = shmqctl_body_decompress(rec.sysflag, rec.body, rec.body_len,
                                         a->cfg.max_message_size, a->raw, &owned, &body, &body_len);
            if (rc < 0) {
                shmqctl_err("record at offset %lld: the body (sysflag 0x%x) does not "
                            "decompress: %s",
                            (long long)rec.phys_offset, (unsigned)rec.sysflag, shmq_error_detail());
                return SHMQCTL_EXIT_FAIL;
            }
            rc = shmqctl_json_print(record_json(&rec, body, body_len));
            free(owned);
            if (rc < 0) {
                shmqctl_err("cannot format record at offset %lld as JSON",
                            (long long)rec.phys_offset);
                return SHMQCTL_EXIT_FAIL;
            }
        } else {
            record_text(&rec);
        }
        n++;
    }
    return SHMQCTL_EXIT_OK;
}

/* Whether the record at unit u matches it; *why explains a mismatch. */
static bool unit_matches(const shmq_commitlog_t *cl, const char *topic, int32_t qid, int64_t qoff,
                         const shmq_cq_unit_t *u, char *why, size_t len)
{
    shmq_record_t rec;
    int rc = shmqctl_record_at(cl, u->phys_offset, SHMQ_DECODE_CHECK_PHYS, &rec);
    size_t tlen = strlen(topic);

    if (rc < 0) {
        snprintf(why, len, "no record: %s", shmq_strerror(rc));
    } else if (rc == 0) {
        snprintf(why, len, "blank record");
    } else if (rec.total_size != u->size) {
        snprintf(why, len, "record size %d", (int)rec.total_size);
    } else if (rec.topic_len != tlen || memcmp(rec.topic, topic, tlen) != 0) {
        snprintf(why, len, "record topic %.*s", (int)(rec.topic_len > 255 ? 255 : rec.topic_len),
                 rec.topic);
    } else if (rec.queue_id != qid) {
        snprintf(why, len, "record queue id %d", (int)rec.queue_id);
    } else if (rec.queue_offset != qoff) {
        snprintf(why, len, "record queue offset %lld", (long long)rec.queue_offset);
    } else {
        why[0] = '\0';
        return true;
    }
    return false;
}

static int dump_consumequeue(shmqctl_args_t *a, shmq_commitlog_t *cl)
{
    const char *topic = a->pos[1];
    char dir[PATH_MAX + 300];
    int64_t qid64, min, max, qoff, n = 0;
    shmq_cq_t *cq;
    struct stat sb;
    int rc, ret = SHMQCTL_EXIT_OK;

    if (shmqctl_parse_int(a->pos[2], 0, INT32_MAX, false, &qid64) < 0) {
        return shmqctl_usage_error(a->cmd, "not a queue id: '%s'", a->pos[2]);
    }
    snprintf(dir, sizeof(dir), "%s/consumequeue/%s/%d", a->cfg.store_path_root_dir, topic,
             (int)qid64);
    if (!topic[0] || strchr(topic, '/') || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        shmqctl_err("no consume queue for topic %s queue %d (%s)", topic, (int)qid64, dir);
        return SHMQCTL_EXIT_FAIL;
    }
    cq = calloc(1, sizeof(*cq));
    if (!cq) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_error_clear();
    rc = shmq_cq_open(cq, a->cfg.store_path_root_dir, topic, (int32_t)qid64,
                      shmq_cq_file_size((size_t)a->cfg.mapped_file_size_consume_queue),
                      SHMQ_MF_READONLY);
    if (rc < 0) {
        free(cq);
        return shmqctl_fail(rc, "cannot open consume queue %s/%d", topic, (int)qid64);
    }
    min = shmq_cq_min_offset(cq);
    max = shmq_cq_max_offset(cq);
    for (qoff = a->from > min ? a->from : min; qoff < max && (a->count < 0 || n < a->count);
         qoff++, n++) {
        shmq_cq_unit_t u;
        char why[320];
        bool match;
        rc = shmq_cq_read(cq, qoff, &u);
        if (rc < 0) {
            ret = shmqctl_fail(rc, "consume queue %s/%d: cannot read unit %lld", topic, (int)qid64,
                               (long long)qoff);
            break;
        }
        match = unit_matches(cl, topic, (int32_t)qid64, qoff, &u, why, sizeof(why));
        if (a->json) {
            json_t *o = json_object();
            if (o) {
                json_object_set_new(o, "queue_offset", json_integer(qoff));
                json_object_set_new(o, "phys_offset", json_integer(u.phys_offset));
                json_object_set_new(o, "size", json_integer(u.size));
                json_object_set_new(o, "tags_code", json_integer(u.tags_code));
                json_object_set_new(o, "match", json_boolean(match));
                if (!match) {
                    json_object_set_new(o, "mismatch", shmqctl_json_str(why, strlen(why)));
                }
            }
            if (shmqctl_json_print(o) < 0) {
                shmqctl_err("cannot format unit %lld as JSON", (long long)qoff);
                ret = SHMQCTL_EXIT_FAIL;
                break;
            }
        } else {
            printf("qoff=%lld phys=%lld size=%d tags_code=%lld match=%s", (long long)qoff,
                   (long long)u.phys_offset, (int)u.size, (long long)u.tags_code,
                   match ? "yes" : "no");
            if (!match) {
                printf(" (%s)", why);
            }
            putchar('\n');
        }
    }
    shmq_cq_close(cq);
    free(cq);
    return ret;
}

int shmqctl_cmd_dump(shmqctl_args_t *a)
{
    shmq_commitlog_t *cl;
    bool is_cl;
    int ret;

    if (!strcmp(a->pos[0], "commitlog")) {
        is_cl = true;
        if (a->npos != 1) {
            return shmqctl_usage_error(a->cmd, "dump commitlog takes no arguments");
        }
    } else if (!strcmp(a->pos[0], "consumequeue")) {
        is_cl = false;
        if (a->npos != 3) {
            return shmqctl_usage_error(a->cmd, "dump consumequeue needs TOPIC and QUEUE");
        }
        if (a->no_check) {
            return shmqctl_usage_error(a->cmd, "--no-check is for dump commitlog");
        }
    } else {
        return shmqctl_usage_error(
            a->cmd, "dump what? expected commitlog or consumequeue, got '%s'", a->pos[0]);
    }
    cl = calloc(1, sizeof(*cl));
    if (!cl) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    if (shmqctl_log_open(a, cl) < 0) {
        free(cl);
        return SHMQCTL_EXIT_FAIL;
    }
    ret = is_cl ? dump_commitlog(a, cl) : dump_consumequeue(a, cl);
    shmq_commitlog_close(cl);
    free(cl);
    return ret;
}
