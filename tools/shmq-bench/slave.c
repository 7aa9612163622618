/*
 * shmq-bench --slave: the started broker gets a slave, a second shmqd on a
 * store of its own in a temporary directory, following it over the
 * default link (TLS 1.3 with a pre-shared key from a secret file made for
 * the run) on 127.0.0.1.  The run starts once the slave is in sync; the
 * master's role is brokerRole from --set (ASYNC_MASTER by default,
 * SYNC_MASTER to measure acknowledgements that wait for the slave).
 *
 * While the load runs, a sampler thread reads `wrote` of both control
 * blocks every millisecond: the lag in bytes (master minus slave) at each
 * sample, and the lag in time (from the sample where the master's end
 * first passed an offset to the sample where the slave's end reached it;
 * the one-millisecond sampling is part of it).  Both go into the report's
 * "replication" object.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "shm/ctl.h"
#include "shmq/errors.h"

#define SLAVE_SAMPLE_NS 1000000LL /* the sampler's period */
#define SLAVE_PENDING   (1 << 20) /* master ends waiting for the slave (a ring) */
#define SLAVE_WAIT_MS   60000     /* for the slave to be in sync before the run */

/* A free TCP port of 127.0.0.1 (the kernel's pick); 0 when none. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

int bench_slave_prepare(const bench_opts_t *o, bench_slave_t *s)
{
    memset(s, 0, sizeof(*s));
    int rc = bench_tmpdir(o, "slave", s->tmp, sizeof(s->tmp));
    if (rc < 0) {
        return rc;
    }
    snprintf(s->secret, sizeof(s->secret), "%s/ha.secret", s->tmp);
    int fd = open(s->secret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    unsigned char key[32];
    char hex[65];
    if (fd < 0 || rnd < 0 || read(rnd, key, sizeof(key)) != (ssize_t)sizeof(key)) {
        bench_warn("cannot make the replication secret in %s: %s", s->tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        if (rnd >= 0) {
            close(rnd);
        }
        return -EIO;
    }
    close(rnd);
    for (size_t i = 0; i < sizeof(key); i++) {
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    }
    ssize_t w = write(fd, hex, 64);
    close(fd);
    if (w != 64) {
        return -EIO;
    }
    int port = free_port();
    if (port <= 1) {
        bench_warn("no free port for the replication link");
        return -EADDRNOTAVAIL;
    }
    snprintf(s->set_secret, sizeof(s->set_secret), "haSecretFile=%s", s->secret);
    snprintf(s->set_ha_port, sizeof(s->set_ha_port), "haListenPort=%d", port);
    snprintf(s->set_master, sizeof(s->set_master), "haMasterAddress=127.0.0.1:%d", port);
    s->master_sets[0] = s->set_secret;
    s->master_sets[1] = s->set_ha_port;
    s->nmaster_sets = 2;
    return 0;
}

/* Whether the master lists a slave in sync. */
static bool master_has_slave_in_sync(const char *root)
{
    shmq_ctl_t ctl;
    if (shmq_ctl_attach(root, SHMQ_CTL_RDONLY, &ctl) < 0) {
        return false;
    }
    bool yes = false;
    for (int i = 0; i < SHMQ_CTL_MAX_SLAVES && !yes; i++) {
        const shmq_ctl_slave_t *sl = &ctl.blk->ha.slaves[i];
        /* Acquire: the row is written before CONNECTED. */
        yes = atomic_load_explicit(&sl->state, memory_order_acquire) == SHMQ_SLAVE_CONNECTED &&
              atomic_load_explicit(&sl->in_sync, memory_order_relaxed) != 0;
    }
    shmq_ctl_detach(&ctl);
    return yes;
}

int bench_slave_start(const bench_opts_t *o, const bench_broker_t *master, bench_slave_t *s)
{
    bench_broker_t *b = &s->b;
    snprintf(b->root, sizeof(b->root), "%s/store", s->tmp);
    snprintf(b->log, sizeof(b->log), "%s/shmqd.log", s->tmp);
    /* The master's --set values (its segment size: the slave's must be the same), then the
     * slave's own, which win (a later --set wins): all through extra, none through o->sets. */
    bench_opts_t so = *o;
    so.nsets = 0;
    const char *sets[BENCH_MAX_EXTRA];
    int n = 0;
    for (int i = 0; i < o->nsets && n < BENCH_MAX_SETS; i++) {
        sets[n++] = o->sets[i];
    }
    sets[n++] = "brokerRole=SLAVE";
    sets[n++] = "brokerId=1";
    sets[n++] = s->set_secret;
    sets[n++] = s->set_master;
    sets[n++] = "haListenPort=1";
    sets[n++] = "listenPort=2";
    sets[n++] = o->flush == 1 ? "flushDiskType=SYNC_FLUSH" : "flushDiskType=ASYNC_FLUSH";
    int rc = bench_broker_spawn(&so, b->root, sets, n, b);
    if (rc == 0) {
        rc = bench_broker_wait(b, SLAVE_WAIT_MS);
    }
    int64_t deadline = bench_now_ns() + (int64_t)SLAVE_WAIT_MS * 1000000;
    while (rc == 0 && !master_has_slave_in_sync(master->root)) {
        if (bench_interrupted || bench_now_ns() > deadline) {
            bench_warn("the slave did not get in sync within %d ms (logs: %s, %s)", SLAVE_WAIT_MS,
                       master->log, b->log);
            rc = -ETIMEDOUT;
            break;
        }
        bench_sleep_ns(10000000);
    }
    return rc;
}

/* Master ends [*tail, head) that the slave's end sl reached: their time lag, taken out. */
static void resolve(bench_slave_t *s, const int64_t *pend_pos, const int64_t *pend_ns, size_t *tail,
                    size_t head, int64_t sl, int64_t now)
{
    while (*tail < head && pend_pos[*tail % SLAVE_PENDING] <= sl) {
        bench_hist_add(&s->lag_ns, (uint64_t)(now - pend_ns[*tail % SLAVE_PENDING]));
        (*tail)++;
    }
}

static void *sampler_main(void *arg)
{
    bench_slave_t *s = arg;
    int64_t *pend_pos = malloc(sizeof(int64_t) * SLAVE_PENDING);
    int64_t *pend_ns = malloc(sizeof(int64_t) * SLAVE_PENDING);
    size_t head = 0, tail = 0; /* [tail, head) wait for the slave */
    int64_t last_m = -1;
    while (pend_pos != NULL && pend_ns != NULL &&
           !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int64_t now = bench_now_ns();
        int64_t m = shmq_ctl_load(&s->mctl.blk->wrote);
        int64_t sl = shmq_ctl_load(&s->sctl.blk->wrote);
        bench_hist_add(&s->lag_bytes, (uint64_t)(m > sl ? m - sl : 0));
        if (m > last_m && head - tail < SLAVE_PENDING) {
            pend_pos[head % SLAVE_PENDING] = m;
            pend_ns[head % SLAVE_PENDING] = now;
            head++;
            last_m = m;
        }
        resolve(s, pend_pos, pend_ns, &tail, head, sl, now);
        bench_sleep_ns(SLAVE_SAMPLE_NS);
    }
    /* The last look: the run ended with the slave caught up (or not). */
    if (pend_pos != NULL && pend_ns != NULL) {
        resolve(s, pend_pos, pend_ns, &tail, head, shmq_ctl_load(&s->sctl.blk->wrote),
                bench_now_ns());
    }
    s->unresolved = (int64_t)(head - tail);
    free(pend_pos);
    free(pend_ns);
    return NULL;
}

int bench_slave_sample_start(const bench_broker_t *master, bench_slave_t *s)
{
    bench_hist_init(&s->lag_bytes);
    bench_hist_init(&s->lag_ns);
    int rc = shmq_ctl_attach(master->root, SHMQ_CTL_RDONLY, &s->mctl);
    if (rc < 0) {
        return rc;
    }
    rc = shmq_ctl_attach(s->b.root, SHMQ_CTL_RDONLY, &s->sctl);
    if (rc < 0) {
        shmq_ctl_detach(&s->mctl);
        return rc;
    }
    atomic_store_explicit(&s->stop, false, memory_order_relaxed);
    if (pthread_create(&s->sampler, NULL, sampler_main, s) != 0) {
        shmq_ctl_detach(&s->sctl);
        shmq_ctl_detach(&s->mctl);
        return -EAGAIN;
    }
    s->sampling = true;
    return 0;
}

/* The slave's end reached the master's (at most 30 s): the lag figures then include the tail. */
static void wait_caught_up(bench_slave_t *s)
{
    int64_t deadline = bench_now_ns() + 30LL * 1000000000;
    while (!bench_interrupted && bench_now_ns() < deadline &&
           shmq_ctl_load(&s->sctl.blk->wrote) < shmq_ctl_load(&s->mctl.blk->wrote)) {
        bench_sleep_ns(SLAVE_SAMPLE_NS);
    }
}

void bench_slave_sample_stop(bench_slave_t *s, bench_report_t *r)
{
    if (!s->sampling) {
        return;
    }
    wait_caught_up(s);
    atomic_store_explicit(&s->stop, true, memory_order_relaxed);
    pthread_join(s->sampler, NULL);
    s->sampling = false;
    int64_t m = shmq_ctl_load(&s->mctl.blk->wrote), sl = shmq_ctl_load(&s->sctl.blk->wrote);
    shmq_ctl_detach(&s->sctl);
    shmq_ctl_detach(&s->mctl);
    json_t *j = json_object();
    json_object_set_new(j, "link", json_string("tls-psk, 127.0.0.1"));
    json_object_set_new(j, "samples", json_integer((json_int_t)s->lag_bytes.count));
    json_object_set_new(j, "lag_bytes_p50",
                        json_integer((json_int_t)bench_hist_quantile(&s->lag_bytes, 0.5)));
    json_object_set_new(j, "lag_bytes_p99",
                        json_integer((json_int_t)bench_hist_quantile(&s->lag_bytes, 0.99)));
    json_object_set_new(j, "lag_bytes_max", json_integer((json_int_t)s->lag_bytes.max));
    json_object_set_new(j, "lag_ms_p50",
                        json_real((double)bench_hist_quantile(&s->lag_ns, 0.5) / 1e6));
    json_object_set_new(j, "lag_ms_p99",
                        json_real((double)bench_hist_quantile(&s->lag_ns, 0.99) / 1e6));
    json_object_set_new(j, "lag_ms_max", json_real((double)s->lag_ns.max / 1e6));
    json_object_set_new(j, "caught_up_at_end", json_boolean(sl >= m));
    json_object_set_new(j, "unresolved_samples", json_integer((json_int_t)s->unresolved));
    if (r->extra == NULL) {
        r->extra = json_object();
    }
    json_object_set_new(r->extra, "replication", j);
}

void bench_slave_close(bench_slave_t *s, bool keep)
{
    if (s->sampling) {
        atomic_store_explicit(&s->stop, true, memory_order_relaxed);
        pthread_join(s->sampler, NULL);
        shmq_ctl_detach(&s->sctl);
        shmq_ctl_detach(&s->mctl);
        s->sampling = false;
    }
    if (s->b.started) {
        int st = bench_broker_stop(&s->b);
        if (st != 0 && st != -1) {
            bench_warn("the slave's shmqd exited with status %d (log: %s)", st, s->b.log);
        }
        s->b.started = false;
    }
    if (s->tmp[0] && !keep) {
        shmq_ctl_unlink(s->b.root);
        bench_rmtree(s->tmp);
    } else if (s->tmp[0]) {
        bench_warn("kept the slave's store in %s", s->tmp);
    }
    s->tmp[0] = '\0';
}

int bench_open_with_slave(const bench_opts_t *o, bench_broker_t *b, bench_slave_t *s)
{
    memset(s, 0, sizeof(*s));
    if (!o->slave) {
        return bench_broker_open(o, NULL, 0, b);
    }
    int rc = bench_slave_prepare(o, s);
    if (rc == 0) {
        rc = bench_broker_open(o, s->master_sets, s->nmaster_sets, b);
        if (rc < 0) {
            bench_slave_close(s, o->keep);
            return rc;
        }
        rc = bench_slave_start(o, b, s);
    }
    if (rc < 0) {
        bench_slave_close(s, o->keep);
        bench_broker_close(b, o->keep);
    }
    return rc;
}
