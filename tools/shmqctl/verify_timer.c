/*
 * shmqctl verify: the timer files (timerwheel, timerlog/, config/timercheck),
 * read-only, with the checks the scheduler makes when it opens them
 * (libshm/format/timer.c, shmq_timer_check): a timer log unit below the checkpoint's
 * flush position that does not decode, a unit not linked to the one before it
 * in its slot, a slot not yet read that does not name the units the log holds
 * for it, a checkpoint field whose copy differs, a checkpoint of zeros with
 * units in the log.  Each is a problem: the scheduler repairs it at its next
 * start, and says what it loses.  A running store's timer files change while
 * they are read: they are not checked then (a note).
 */
#include <string.h>

#include "format/json_meta.h"
#include "format/timer.h"
#include "verify.h"

static void timer_sink(void *arg, enum shmq_meta_level level, const char *msg)
{
    verify_t *v = arg;
    if (level == SHMQ_META_WARN) {
        verify_problem(v, "%s", msg);
    } else {
        verify_note(v, "%s", msg);
    }
}

void verify_timer(verify_t *v)
{
    const shmq_config_t *cfg = &v->a->cfg;
    const char *root = cfg->store_path_root_dir;
    shmq_timer_store_t ts;

    if (!shmq_timer_exists(root)) {
        return; /* no timed message so far */
    }
    if (v->live) {
        verify_note(v,
                    "%s/timerwheel, timerlog/, config/timercheck: not checked on a running "
                    "store (the scheduler writes them)",
                    root);
        return;
    }
    shmq_meta_set_warn(timer_sink, v);
    shmq_error_clear();
    int rc = shmq_timer_check(&ts, root, cfg->timer_precision_ms,
                              (size_t)cfg->mapped_file_size_timer_log, shmq_now_ms());
    shmq_meta_set_warn(NULL, NULL);
    if (rc < 0) {
        const char *d = shmq_error_detail();
        verify_problem(v,
                       "timer files of %s cannot be checked: %s%s%s (the scheduler does not "
                       "start)",
                       root, shmq_strerror(rc), d[0] ? ": " : "", d);
    }
}
