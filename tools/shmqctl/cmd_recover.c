/*
 * shmqctl recover: run store recovery on a stopped store and report what it
 * did (text, or one JSON object with --json).
 *
 * The store is opened writable with SHMQ_STORE_NO_RECOVER (so the lock is
 * held but nothing is changed yet), then shmq_store_recover() does the work:
 * normal or abnormal recovery per the abort file, cutting and zeroing a torn
 * tail, trimming and rebuilding ConsumeQueues.  A clean close afterwards
 * writes the checkpoint and removes `abort`.  If recovery fails the store is
 * abandoned (not closed cleanly), so the next open recovers again.
 *
 * A record that fails its checks below the checkpoint is flushed data gone
 * bad, not a torn tail: recovery refuses to cut there unless --force
 * (SHMQ_STORE_FORCE).  --rebuild (SHMQ_STORE_REBUILD) rebuilds every
 * ConsumeQueue from the CommitLog.
 */
#include <stdlib.h>
#include <string.h>

#include "shmqctl.h"

/* Segment file and offset inside it of CommitLog offset off. */
static void where(const shmq_commitlog_t *cl, int64_t off, char *path, size_t len, int64_t *rel)
{
    shmqctl_cl_seg_path(cl, off, path, len);
    *rel = cl->q.seg_size ? off % (int64_t)cl->q.seg_size : off;
}

static int report_json(const shmq_recovery_report_t *r, const char *file, int64_t rel, int err)
{
    json_t *o = json_object();
    if (!o) {
        return -1;
    }
    json_object_set_new(o, "ok", json_boolean(err == 0));
    if (err) {
        const char *d = shmq_error_detail();
        json_object_set_new(o, "error", json_integer(err));
        json_object_set_new(o, "error_text", json_string(shmq_strerror(err)));
        json_object_set_new(o, "error_detail", shmqctl_json_str(d, strlen(d)));
    }
    json_object_set_new(o, "abnormal", json_boolean(r->abnormal));
    json_object_set_new(o, "scan_from", json_integer(r->scan_from));
    json_object_set_new(o, "recovered_end", json_integer(r->recovered_end));
    json_object_set_new(o, "old_end", json_integer(r->old_end));
    json_object_set_new(o, "truncated_bytes", json_integer(r->truncated_bytes));
    json_object_set_new(o, "truncated_file", json_string(file));
    json_object_set_new(o, "truncated_file_offset", json_integer(rel));
    json_object_set_new(o, "below_checkpoint", json_boolean(r->below_checkpoint));
    json_object_set_new(o, "bad_checkpoint", json_boolean(r->bad_checkpoint));
    json_object_set_new(o, "fence_commitlog", json_integer(r->fence_commitlog));
    json_object_set_new(o, "fence_consumequeue", json_integer(r->fence_cq));
    json_object_set_new(o, "records_checked", json_integer(r->records_checked));
    json_object_set_new(o, "units_rebuilt", json_integer(r->units_rebuilt));
    json_object_set_new(o, "units_truncated", json_integer(r->units_truncated));
    json_object_set_new(o, "queues_touched", json_integer(r->queues_touched));
    json_object_set_new(o, "stop_error", json_integer(r->stop_error));
    json_object_set_new(o, "stop_error_text",
                        r->stop_error ? json_string(shmq_strerror(r->stop_error)) : json_null());
    json_object_set_new(
        o, "stop_reason",
        shmqctl_json_str(r->stop_reason, strnlen(r->stop_reason, sizeof(r->stop_reason))));
    return shmqctl_json_print(o);
}

static void report_text(const shmq_commitlog_t *cl, const shmq_recovery_report_t *r,
                        const char *file, int64_t rel)
{
    char path[PATH_MAX + 32];
    int64_t srel;

    printf("recovery: %s\n", r->abnormal ? "abnormal (abort file was present)"
                                         : "normal (previous shutdown was clean)");
    where(cl, r->scan_from, path, sizeof(path), &srel);
    printf("scan start: %lld (file %s offset %lld)\n", (long long)r->scan_from, path,
           (long long)srel);
    printf("recovered end: %lld\n", (long long)r->recovered_end);
    printf("old end: %lld\n", (long long)r->old_end);
    if (r->truncated_bytes > 0) {
        printf("truncated: %lld bytes at file %s offset %lld\n", (long long)r->truncated_bytes,
               file, (long long)rel);
    } else {
        printf("truncated: 0 bytes\n");
    }
    printf("below checkpoint: %s\n",
           r->below_checkpoint ? "yes (the cut records had been flushed; the files were damaged "
                                 "after they were written)"
                               : "no");
    if (r->bad_checkpoint) {
        printf("bad checkpoint: confirmPhyOffset %lld names bytes the CommitLog never held "
               "(zeros or no file after %lld); not believed, nothing cut for it\n",
               (long long)r->bad_checkpoint_phys, (long long)r->recovered_end);
    }
    if (r->fence_commitlog >= 0) {
        printf("fenced run: the log was cut at its last good flush %lld\n",
               (long long)r->fence_commitlog);
    }
    if (r->fence_cq >= 0) {
        printf("fenced run: consume queue units past %lld were rebuilt\n", (long long)r->fence_cq);
    }
    printf("records checked: %lld\n", (long long)r->records_checked);
    printf("units rebuilt: %lld\n", (long long)r->units_rebuilt);
    printf("units truncated: %lld\n", (long long)r->units_truncated);
    printf("queues touched: %d\n", (int)r->queues_touched);
    if (r->stop_error) {
        printf("stop reason: %s (error %d)%s%.*s\n", shmq_strerror(r->stop_error), r->stop_error,
               r->stop_reason[0] ? ": " : "", (int)sizeof(r->stop_reason), r->stop_reason);
    } else {
        printf("stop reason: clean end of log%s%.*s\n", r->stop_reason[0] ? ": " : "",
               (int)sizeof(r->stop_reason), r->stop_reason);
    }
}

int shmqctl_cmd_recover(shmqctl_args_t *a)
{
    shmq_store_t *st = calloc(1, sizeof(*st));
    shmq_recovery_report_t rep;
    char file[PATH_MAX + 32];
    unsigned flags = SHMQ_STORE_NO_RECOVER;
    int64_t rel;
    int rc, ret = SHMQCTL_EXIT_OK;

    if (!st) {
        shmqctl_err("out of memory");
        return SHMQCTL_EXIT_FAIL;
    }
    if (a->force) {
        flags |= SHMQ_STORE_FORCE;
    }
    if (a->rebuild) {
        flags |= SHMQ_STORE_REBUILD;
    }
    if (shmqctl_store_check(a) < 0 || shmqctl_store_open(a, st, flags, NULL) < 0) {
        free(st);
        return SHMQCTL_EXIT_FAIL;
    }
    memset(&rep, 0, sizeof(rep));
    shmq_error_clear();
    rc = shmq_store_recover(st, &rep);
    where(&st->cl, rep.recovered_end, file, sizeof(file), &rel);
    if (a->json) {
        if (report_json(&rep, file, rel, rc < 0 ? rc : 0) < 0) {
            shmqctl_err("cannot format the report as JSON");
            ret = SHMQCTL_EXIT_FAIL;
        }
    } else {
        /* On failure the report still says how far the scan got. */
        report_text(&st->cl, &rep, file, rel);
    }
    if (rc < 0) {
        shmqctl_fail(rc, "recovery of %s failed", a->cfg.store_path_root_dir);
        shmq_store_abandon(st);
        free(st);
        return SHMQCTL_EXIT_FAIL;
    }
    shmq_error_clear();
    rc = shmq_store_close(st);
    if (rc < 0) {
        ret = shmqctl_fail(rc, "closing the store after recovery");
    }
    free(st);
    return ret;
}
