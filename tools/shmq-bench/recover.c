/*
 * shmq-bench recover: how fast a store comes back.
 *
 *   1. Generate a store of --store-bytes CommitLog bytes, messages of
 *      --size bytes round-robin over --queues queues of the bench topic
 *      (single process, the store engine): all but the last --tail-bytes,
 *      clean close (the checkpoint names that point); then the tail,
 *      abandoned as a killed broker leaves it (abort present, checkpoint
 *      behind); then the last record is torn (bytes in its middle
 *      overwritten).
 *   2. Abnormal recovery (shmq_store_open): timed; the rate is the
 *      CommitLog bytes it checked (scan start to recovered end) per second;
 *      the tear must be found (bytes truncated).  Then a clean close.
 *   3. One start of shmqd (not timed: it indexes the generated messages),
 *      then --restarts clean restarts: from the start of shmqd to the first
 *      acknowledged send (the latency histogram).
 *
 * --cold drops the store's files from the page cache (POSIX_FADV_DONTNEED,
 * only those files) before each timed step.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"
#include "format/message.h"
#include "shmq/producer.h"
#include "store/store.h"

#define GEN_BORN_EVERY 64

static int config_for(const bench_opts_t *o, const char *root, shmq_config_t *cfg)
{
    shmq_config_defaults(cfg);
    int rc = shmq_config_set(cfg, "storePathRootDir", root, NULL, NULL);
    for (int i = 0; rc >= 0 && i < o->nsets; i++) {
        char kv[512];
        snprintf(kv, sizeof(kv), "%s", o->sets[i]);
        char *eq = strchr(kv, '=');
        if (!eq) {
            bench_warn("--set %s: expected KEY=VALUE", o->sets[i]);
            return -EINVAL;
        }
        *eq = '\0';
        rc = shmq_config_set(cfg, kv, eq + 1, NULL, NULL);
    }
    if (rc < 0 || (rc = shmq_config_validate(cfg)) < 0) {
        bench_warn("configuration: %s", shmq_error_detail());
        return rc;
    }
    return 0;
}

/* Append messages until the CommitLog reaches end; the last record's position and size. */
static int fill(shmq_store_t *st, const bench_opts_t *o, int64_t end, int64_t *seq,
                shmq_append_result_t *last)
{
    uint8_t *body = malloc((size_t)o->size + 1);
    if (!body) {
        return -ENOMEM;
    }
    for (int64_t i = 0; i < o->size; i++) {
        body[i] = (uint8_t)('A' + i % 26);
    }
    char props[128];
    char uniq[SHMQ_UNIQ_KEY_MAX];
    shmq_msg_in_t m;
    memset(&m, 0, sizeof(m));
    m.topic = o->topic;
    m.topic_len = strlen(o->topic);
    m.body = body;
    m.body_len = (size_t)o->size;
    m.props = props;
    shmq_local_host(&m.born_host, 0);
    m.store_host = st->cl.store_host;
    int rc = 0;
    while (st->cl.wrote_pos < end && !bench_interrupted) {
        size_t len = 0;
        shmq_uniq_key_generate(uniq);
        shmq_props_append(props, sizeof(props), &len, SHMQ_PROP_UNIQ_KEY, uniq, strlen(uniq));
        m.props_len = len;
        m.queue_id = (int32_t)(*seq % o->queues);
        if (*seq % GEN_BORN_EVERY == 0) {
            m.born_ts = shmq_now_ms();
        }
        rc = shmq_store_put(st, &m, last);
        if (rc < 0) {
            bench_warn("generating: %s", shmq_error_detail());
            break;
        }
        (*seq)++;
    }
    free(body);
    return rc < 0 ? rc : 0;
}

static int open_store(const shmq_config_t *cfg, shmq_store_t *st, shmq_recovery_report_t *rep)
{
    int rc = shmq_store_open(st, cfg, 0, rep);
    if (rc < 0) {
        bench_warn("opening the store: %s", shmq_error_detail());
    }
    return rc;
}

static int topic_queues(shmq_store_t *st, const bench_opts_t *o)
{
    shmq_topic_config_t tc;
    memset(&tc, 0, sizeof(tc));
    snprintf(tc.name, sizeof(tc.name), "%s", o->topic);
    tc.read_queue_nums = tc.write_queue_nums = o->queues;
    tc.perm = SHMQ_PERM_READ | SHMQ_PERM_WRITE;
    int rc = shmq_topic_table_put(&st->topics, &tc);
    st->topics_dirty = true;
    return rc;
}

/* Overwrite 16 bytes in the middle of the record at phys (size bytes): a torn append. */
static int tear(const shmq_config_t *cfg, int64_t phys, int32_t size)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], name[21];
    shmq_config_commitlog_dir(cfg, dir, sizeof(dir));
    int64_t seg = cfg->mapped_file_size_commit_log;
    shmq_segment_name(phys - phys % seg, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        return -errno;
    }
    uint8_t junk[16];
    memset(junk, 0xA5, sizeof(junk));
    off_t at = (off_t)(phys % seg + size / 2);
    int rc = pwrite(fd, junk, sizeof(junk), at) == (ssize_t)sizeof(junk) ? 0 : -errno;
    close(fd);
    return rc;
}

/* Drop every file under dir from the page cache (after writing it back). */
static void drop_cache(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) {
            drop_cache(path);
            continue;
        }
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    closedir(d);
}

/* Start shmqd on root and time it until a send is acknowledged (ns), < 0 on failure. */
static int64_t time_serving(const bench_opts_t *o, const char *root, const char *log)
{
    bench_broker_t b;
    memset(&b, 0, sizeof(b));
    snprintf(b.root, sizeof(b.root), "%s", root);
    snprintf(b.log, sizeof(b.log), "%s", log);
    int64_t t0 = bench_now_ns();
    if (bench_broker_spawn(o, root, NULL, 0, &b) < 0) {
        return -1;
    }
    shmq_producer_t *p = NULL;
    shmq_producer_options_t po = {.send_timeout_ms = 30000, .attach_timeout_ms = 30000};
    int64_t limit = t0 + 60LL * 1000000000;
    int rc;
    while ((rc = shmq_producer_open(root, &po, &p)) == SHMQ_E_NOT_FOUND && bench_now_ns() < limit &&
           !bench_interrupted) {
        bench_sleep_ns(200000);
    }
    int64_t took = -1;
    if (rc == 0) {
        static const char body[] = "hello";
        shmq_message_t m;
        shmq_message_init(&m, o->topic, body, sizeof(body) - 1);
        shmq_send_result_t res;
        rc = shmq_send(p, &m, &res);
        if (rc == 0) {
            took = bench_now_ns() - t0;
        }
        shmq_producer_close(p);
    }
    if (rc < 0) {
        bench_warn("the restarted broker did not serve: %s", shmq_error_detail());
    }
    /* Up to 2 s to exit cleanly is not part of the figure. */
    bench_broker_wait(&b, 30000);
    int st = bench_broker_stop(&b);
    if (st != 0) {
        bench_warn("shmqd exited with status %d after a timed restart (log: %s)", st, log);
        return -1;
    }
    return took;
}

int bench_recover(const bench_opts_t *o, bench_report_t *r)
{
    char tmp[PATH_MAX], root[PATH_MAX + 16], log[PATH_MAX + 16];
    int rc = bench_tmpdir(o, "recover", tmp, sizeof(tmp));
    if (rc < 0) {
        return rc;
    }
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(log, sizeof(log), "%s/shmqd.log", tmp);
    shmq_config_t *cfg = calloc(1, sizeof(*cfg));
    shmq_store_t *st = calloc(1, sizeof(*st));
    shmq_recovery_report_t rep;
    if (!cfg || !st || config_for(o, root, cfg) < 0) {
        rc = -EINVAL;
        goto out;
    }
    bench_machine_measure(tmp, o->no_baseline, &r->machine);
    r->config = json_object();
    json_object_set_new(r->config, "store_bytes", json_integer(o->store_bytes));
    json_object_set_new(r->config, "tail_bytes", json_integer(o->tail_bytes));
    json_object_set_new(r->config, "queues", json_integer(o->queues));
    json_object_set_new(r->config, "size", json_integer(o->size));
    json_object_set_new(r->config, "restarts", json_integer(o->restarts));
    json_object_set_new(r->config, "cold", json_boolean(o->cold));
    json_object_set_new(r->config, "segment_bytes", json_integer(cfg->mapped_file_size_commit_log));
    r->extra = json_object();

    /* 1. Generate. */
    int64_t t0 = bench_now_ns(), seq = 0;
    shmq_append_result_t last;
    int64_t head_end = o->store_bytes - o->tail_bytes;
    if ((rc = open_store(cfg, st, &rep)) < 0 || (rc = topic_queues(st, o)) < 0 ||
        (rc = fill(st, o, head_end, &seq, &last)) < 0) {
        goto out;
    }
    if ((rc = shmq_store_close(st)) < 0) {
        bench_warn("closing the generated store: %s", shmq_error_detail());
        goto out;
    }
    memset(st, 0, sizeof(*st));
    if ((rc = open_store(cfg, st, &rep)) < 0 ||
        (rc = fill(st, o, o->store_bytes, &seq, &last)) < 0) {
        goto out;
    }
    int64_t end = st->cl.wrote_pos;
    shmq_store_abandon(st); /* as a killed broker: abort stays, checkpoint behind */
    memset(st, 0, sizeof(*st));
    if ((rc = tear(cfg, last.phys_offset, last.size)) < 0) {
        bench_warn("tearing the last record: %s", strerror(-rc));
        goto out;
    }
    json_object_set_new(r->extra, "generated_messages", json_integer(seq));
    json_object_set_new(r->extra, "generated_bytes", json_integer(end));
    json_object_set_new(r->extra, "generate_seconds",
                        json_real((double)(bench_now_ns() - t0) / 1e9));

    /* 2. Abnormal recovery. */
    if (o->cold) {
        drop_cache(root);
    }
    int64_t a0 = bench_now_ns();
    rc = open_store(cfg, st, &rep);
    int64_t a1 = bench_now_ns();
    if (rc < 0) {
        goto out;
    }
    double secs = (double)(a1 - a0) / 1e9;
    int64_t checked = rep.recovered_end - rep.scan_from;
    r->msgs = rep.records_checked;
    r->seconds = secs;
    r->msgs_per_sec = secs > 0 ? (double)rep.records_checked / secs : 0;
    r->mb_per_sec = secs > 0 ? (double)checked / secs / 1e6 : 0;
    r->store_mb_per_sec = r->mb_per_sec;
    if (r->machine.measured && r->machine.memcpy_bytes_per_sec > 0) {
        r->frac_memcpy = r->mb_per_sec * 1e6 / r->machine.memcpy_bytes_per_sec;
    }
    json_object_set_new(r->extra, "abnormal", json_boolean(rep.abnormal));
    json_object_set_new(r->extra, "recovery_seconds", json_real(secs));
    json_object_set_new(r->extra, "scan_from", json_integer(rep.scan_from));
    json_object_set_new(r->extra, "recovered_end", json_integer(rep.recovered_end));
    json_object_set_new(r->extra, "checked_bytes", json_integer(checked));
    json_object_set_new(r->extra, "records_checked", json_integer(rep.records_checked));
    json_object_set_new(r->extra, "truncated_bytes", json_integer(rep.truncated_bytes));
    json_object_set_new(r->extra, "units_truncated", json_integer(rep.units_truncated));
    json_object_set_new(r->extra, "recovery_gb_per_sec",
                        json_real(secs > 0 ? (double)checked / secs / 1e9 : 0));
    if (!rep.abnormal || rep.truncated_bytes <= 0) {
        r->errors++;
        snprintf(r->note, sizeof(r->note),
                 "recovery did not find the torn tail (%s, %lld bytes cut)",
                 rep.abnormal ? "abnormal" : "normal", (long long)rep.truncated_bytes);
    }
    if ((rc = shmq_store_close(st)) < 0) {
        bench_warn("closing the recovered store: %s", shmq_error_detail());
        goto out;
    }
    memset(st, 0, sizeof(*st));

    /* 3. Clean restarts of the broker, to the first acknowledged send.  The first
     * start is not timed: it builds what the engine does not write (the message
     * index of every generated message); the restarts after it are clean restarts
     * of a store the broker itself stopped. */
    r->latency_what = "clean restart of shmqd to the first acknowledged send";
    json_t *times = json_array();
    int64_t first = o->restarts > 0 ? time_serving(o, root, log) : 0;
    json_object_set_new(r->extra, "first_start_ms", json_real((double)first / 1e6));
    for (int i = 0; i < o->restarts && first >= 0 && !bench_interrupted; i++) {
        if (o->cold) {
            drop_cache(root);
        }
        int64_t ns = time_serving(o, root, log);
        if (ns < 0) {
            r->errors++;
            rc = -1;
            break;
        }
        bench_hist_add(r->hist, (uint64_t)ns);
        json_array_append_new(times, json_real((double)ns / 1e6));
    }
    if (first < 0) {
        r->errors++;
        rc = -1;
    }
    json_object_set_new(r->extra, "restart_ms", times);
    rc = rc < 0 ? rc : 0;
out:
    free(cfg);
    free(st);
    if (!o->keep) {
        bench_rmtree(tmp);
    } else {
        bench_warn("kept the store in %s", tmp);
    }
    return rc;
}
