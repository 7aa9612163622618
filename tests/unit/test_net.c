/*
 * Unit tests of the network layer (libshm/net/) over 127.0.0.1 with ports
 * the kernel picks: bytes echoed both ways; writes refused with -EAGAIN
 * past the high-water mark while the peer does not read, and on_drain once
 * it does; the idle timeout and what postpones it; the connector's
 * reconnects with growing delays (to a listener that appears late, after a
 * server's close) and the reset after a connection that lasted; writes
 * after a close; closing and stopping from inside callbacks; addresses.
 * TLS with a pre-shared key: the same exchanges encrypted; a wrong key, a
 * plain client and garbage fail the handshake undelivered (on_refused on
 * the server, on_disconnected with the reason on the client); paused
 * reading keeps decrypted bytes until the resume; the secret file's checks.
 *
 * Times are the loop's (uv_now) and are only asserted as "not before":
 * the machine may be loaded, so no test expects anything to be quick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/net.h"
#include "shmq/errors.h"

#define HANG_GUARD_MS 30000 /* a stuck test fails instead of hanging */
#define MAX_EVENTS    16

typedef struct fx fx_t;

/* One end of a connection, as the test sees it. */
typedef struct side {
    fx_t *f;
    shmq_net_conn_t *conn;
    char got[4096]; /* the first bytes received, as text */
    size_t got_len;
    size_t got_total;      /* every byte received */
    size_t pattern_errors; /* bytes not matching the pattern (pattern mode) */
    uint64_t up_at, last_read_at, closed_at;
    int closes;
    char reasons[MAX_EVENTS][160]; /* on_close reasons, in order */
    int drains;
    int write_in_close_rc; /* a write from inside on_close */
} side_t;

struct fx {
    uv_loop_t loop;
    uv_timer_t guard; /* wakes UV_RUN_ONCE while the test waits */
    bool loop_closed;
    shmq_net_listener_t *l;
    shmq_net_connector_t *k;
    int port;
    side_t srv, cli;
    /* server behaviour */
    bool pattern;             /* check received bytes against the pattern */
    bool srv_echo;            /* write back what was read */
    bool srv_pause_on_accept; /* a peer that does not read */
    int srv_close_accepts;    /* close this many connections in on_accept */
    bool srv_close_on_read;   /* close in on_read ("bad frame") */
    bool close_listener_on_accept;
    const char *srv_hello; /* written in on_accept */
    /* client behaviour */
    const char *cli_hello; /* written in on_connected */
    bool cli_stop_on_connected;
    bool cli_stop_on_disconnected;
    int listen_after_disconnects; /* open the listener at this disconnect */
    shmq_net_listen_cfg_t lcfg;
    /* what happened */
    int accepts, accept_errors, connects, disconnects;
    uint64_t connect_at[MAX_EVENTS];
    uint64_t disc_at[MAX_EVENTS];
    uint32_t retry_ms[MAX_EVENTS];
    char disc_reason[MAX_EVENTS][160];
    int srv_write_after_close_rc;
    int late_listen_rc;
    int ticks_sent;
    int refused;
    char refused_reason[160];
    shmq_net_tls_t *tls_srv, *tls_cli;
};

static uint64_t now(fx_t *f)
{
    return uv_now(&f->loop);
}

static void guard_tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until cond holds (fails the test after HANG_GUARD_MS). */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        int64_t end_ = shmq_mono_ms() + HANG_GUARD_MS;                                             \
        uv_timer_start(&(f)->guard, guard_tick, 20, 20);                                           \
        while (!(cond) && shmq_mono_ms() < end_) {                                                 \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        }                                                                                          \
        uv_timer_stop(&(f)->guard);                                                                \
        if (!(cond)) {                                                                             \
            fail_msg("still not true after %d ms: %s", HANG_GUARD_MS, #cond);                      \
        }                                                                                          \
    } while (0)

/* Run the loop for at least ms of loop time. */
static void run_for(fx_t *f, uint64_t ms)
{
    uint64_t start = now(f);
    RUN_UNTIL(f, now(f) - start >= ms);
}

static unsigned char pattern_byte(size_t offset)
{
    return (unsigned char)(offset % 251);
}

/* ---- callbacks ----------------------------------------------------------- */

static void side_read(shmq_net_conn_t *c, const char *data, size_t len)
{
    side_t *s = shmq_net_conn_arg(c);
    fx_t *f = s->f;
    for (size_t i = 0; i < len; i++) {
        if (f->pattern && (unsigned char)data[i] != pattern_byte(s->got_total + i)) {
            s->pattern_errors++;
        }
        if (s->got_len < sizeof(s->got) - 1) {
            s->got[s->got_len++] = data[i];
        }
    }
    s->got_total += len;
    s->last_read_at = now(f);
    if (s == &f->srv && f->srv_echo) {
        assert_int_equal(shmq_net_conn_write(c, data, len), 0);
    }
    if (s == &f->srv && f->srv_close_on_read) {
        shmq_net_conn_close(c, "bad frame: %zu bytes", len);
        shmq_net_conn_close(c, "second close");
        f->srv_write_after_close_rc = shmq_net_conn_write(c, "x", 1);
    }
}

static void side_drained(shmq_net_conn_t *c)
{
    side_t *s = shmq_net_conn_arg(c);
    s->drains++;
}

static void side_closed(shmq_net_conn_t *c, const char *reason)
{
    side_t *s = shmq_net_conn_arg(c);
    if (s->closes < MAX_EVENTS) {
        snprintf(s->reasons[s->closes], sizeof(s->reasons[0]), "%s", reason);
    }
    s->closes++;
    s->closed_at = now(s->f);
    s->write_in_close_rc = shmq_net_conn_write(c, "x", 1);
    shmq_net_conn_close(c, "close inside on_close");
    if (s->conn == c) {
        s->conn = NULL;
    }
}

static void srv_accept(shmq_net_listener_t *l, shmq_net_conn_t *c, int err)
{
    fx_t *f = shmq_net_listener_arg(l);
    if (err < 0) {
        f->accept_errors++;
        return;
    }
    f->accepts++;
    shmq_net_conn_set_arg(c, &f->srv);
    f->srv.conn = c;
    f->srv.up_at = now(f);
    if (f->close_listener_on_accept) {
        shmq_net_listener_close(l);
        f->l = NULL;
    }
    if (f->srv_hello != NULL) {
        assert_int_equal(shmq_net_conn_write(c, f->srv_hello, strlen(f->srv_hello)), 0);
    }
    if (f->srv_pause_on_accept) {
        assert_int_equal(shmq_net_conn_pause_read(c), 0);
    }
    if (f->srv_close_accepts > 0) {
        f->srv_close_accepts--;
        shmq_net_conn_close(c, "go away");
    }
}

static void cli_connected(shmq_net_connector_t *k, shmq_net_conn_t *c)
{
    fx_t *f = shmq_net_connector_arg(k);
    if (f->connects < MAX_EVENTS) {
        f->connect_at[f->connects] = now(f);
    }
    f->connects++;
    shmq_net_conn_set_arg(c, &f->cli);
    f->cli.conn = c;
    f->cli.up_at = now(f);
    if (f->cli_hello != NULL) {
        assert_int_equal(shmq_net_conn_write(c, f->cli_hello, strlen(f->cli_hello)), 0);
    }
    if (f->cli_stop_on_connected) {
        shmq_net_connector_stop(k);
        f->k = NULL;
        f->cli.conn = NULL;
    }
}

static void start_listener(fx_t *f, const char *hostport);

static void cli_disconnected(shmq_net_connector_t *k, const char *reason, uint32_t retry_ms)
{
    fx_t *f = shmq_net_connector_arg(k);
    if (f->disconnects < MAX_EVENTS) {
        f->disc_at[f->disconnects] = now(f);
        f->retry_ms[f->disconnects] = retry_ms;
        snprintf(f->disc_reason[f->disconnects], sizeof(f->disc_reason[0]), "%s", reason);
    }
    f->disconnects++;
    if (f->listen_after_disconnects == f->disconnects) {
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
        f->late_listen_rc = shmq_net_listen(&f->loop, addr, &f->lcfg, &f->l);
    }
    if (f->cli_stop_on_disconnected) {
        shmq_net_connector_stop(k);
        f->k = NULL;
    }
}

static void srv_refused(shmq_net_listener_t *l, const char *peer, const char *reason)
{
    fx_t *f = shmq_net_listener_arg(l);
    assert_true(strncmp(peer, "127.0.0.1:", 10) == 0);
    f->refused++;
    snprintf(f->refused_reason, sizeof(f->refused_reason), "%s", reason);
}

/* ---- set-up -------------------------------------------------------------- */

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->srv.f = f;
    f->cli.f = f;
    f->lcfg.on_accept = srv_accept;
    f->lcfg.arg = f;
    f->lcfg.conn.on_read = side_read;
    f->lcfg.conn.on_drain = side_drained;
    f->lcfg.conn.on_close = side_closed;
    f->lcfg.on_refused = srv_refused;
    *state = f;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* After a failed test: close what is left so that the next test starts clean. */
static int teardown(void **state)
{
    fx_t *f = *state;
    if (!f->loop_closed) {
        uv_walk(&f->loop, close_any, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    shmq_net_tls_free(f->tls_srv);
    shmq_net_tls_free(f->tls_cli);
    free(f);
    return 0;
}

static void start_listener(fx_t *f, const char *hostport)
{
    f->lcfg.any_port = true;
    int rc = shmq_net_listen(&f->loop, hostport, &f->lcfg, &f->l);
    if (rc < 0) {
        fail_msg("listen %s: %s", hostport, shmq_error_detail());
    }
    f->port = shmq_net_listener_port(f->l);
    assert_true(f->port > 0);
}

static shmq_net_connector_cfg_t connector_cfg(fx_t *f)
{
    shmq_net_connector_cfg_t kc = {
        .on_connected = cli_connected,
        .on_disconnected = cli_disconnected,
        .arg = f,
        .backoff_min_ms = 50,
        .backoff_max_ms = 1000,
        .conn = {.on_read = side_read, .on_drain = side_drained, .on_close = side_closed},
    };
    return kc;
}

static void start_connector(fx_t *f, const shmq_net_connector_cfg_t *kc)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    int rc = shmq_net_connector_start(&f->loop, addr, kc, &f->k);
    if (rc < 0) {
        fail_msg("connect %s: %s", addr, shmq_error_detail());
    }
}

/* Close what the test still holds; every handle must then go away. */
static void finish(fx_t *f)
{
    if (f->k != NULL) {
        shmq_net_connector_stop(f->k);
        f->k = NULL;
    }
    if (f->l != NULL) {
        shmq_net_listener_close(f->l);
        f->l = NULL;
    }
    if (f->srv.conn != NULL) {
        shmq_net_conn_close(f->srv.conn, "test over");
    }
    uv_close((uv_handle_t *)&f->guard, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&f->loop); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    f->loop_closed = true;
}

/* ---- tests --------------------------------------------------------------- */

static void test_bytes_are_echoed_both_ways_and_peers_named(void **state)
{
    fx_t *f = *state;
    f->srv_echo = true;
    f->srv_hello = "hello from server;";
    f->cli_hello = "ping 1;";
    f->cli_stop_on_disconnected = true;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);

    const char *want = "hello from server;ping 1;";
    RUN_UNTIL(f, f->cli.got_total == strlen(want));
    assert_memory_equal(f->cli.got, want, strlen(want));
    assert_int_equal(f->srv.got_total, strlen("ping 1;"));
    assert_memory_equal(f->srv.got, "ping 1;", strlen("ping 1;"));

    char want_peer[64];
    snprintf(want_peer, sizeof(want_peer), "127.0.0.1:%d", f->port);
    assert_string_equal(shmq_net_conn_peer(f->cli.conn), want_peer);
    assert_true(strncmp(shmq_net_conn_peer(f->srv.conn), "127.0.0.1:", 10) == 0);
    assert_string_not_equal(shmq_net_conn_peer(f->srv.conn), want_peer);

    shmq_net_conn_close(f->cli.conn, "done after %d bytes", 25);
    RUN_UNTIL(f, f->srv.closes == 1 && f->disconnects == 1);
    assert_int_equal(f->cli.closes, 1);
    assert_string_equal(f->cli.reasons[0], "done after 25 bytes");
    assert_string_equal(f->srv.reasons[0], "closed by peer");
    assert_string_equal(f->disc_reason[0], "done after 25 bytes");
    assert_int_equal(f->connects, 1);
    finish(f);
}

/* Both sides on TLS: the server with key srv_key, the client with cli_key. */
static void use_tls(fx_t *f, shmq_net_connector_cfg_t *kc, char srv_key, char cli_key)
{
    uint8_t key[SHMQ_NET_PSK_SIZE];
    memset(key, srv_key, sizeof(key));
    assert_int_equal(shmq_net_tls_psk(true, "shmq-test", key, &f->tls_srv), 0);
    memset(key, cli_key, sizeof(key));
    assert_int_equal(shmq_net_tls_psk(false, "shmq-test", key, &f->tls_cli), 0);
    f->lcfg.conn.tls = f->tls_srv;
    kc->conn.tls = f->tls_cli;
}

static void high_water_then_drain(fx_t *f, bool tls)
{
    const size_t high = 256 * 1024, low = 64 * 1024, chunk = 64 * 1024;
    f->pattern = true;
    f->srv_pause_on_accept = true;
    f->lcfg.conn.idle_ms = 1000;     /* does not run while paused */
    f->lcfg.conn.rcvbuf = 64 * 1024; /* fixed buffers: the kernel takes no more later */
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    kc.conn.high_water = high;
    kc.conn.low_water = low;
    kc.conn.sndbuf = 64 * 1024;
    if (tls) {
        use_tls(f, &kc, 7, 7);
    }
    start_listener(f, "127.0.0.1:0");
    start_connector(f, &kc);
    RUN_UNTIL(f, f->cli.conn != NULL && f->srv.conn != NULL);

    /* The kernel takes a few MB first; then libuv queues, then -EAGAIN. */
    static unsigned char buf[64 * 1024];
    size_t sent = 0;
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        for (size_t j = 0; j < chunk; j++) {
            buf[j] = pattern_byte(sent + j);
        }
        rc = shmq_net_conn_write(f->cli.conn, buf, chunk);
        if (rc == 0) {
            sent += chunk;
        }
    }
    assert_int_equal(rc, -EAGAIN);
    assert_non_null(strstr(shmq_error_detail(), "high-water"));
    assert_true(shmq_net_conn_queued(f->cli.conn) >= high);
    assert_true(shmq_net_conn_queued(f->cli.conn) < high + chunk);
    assert_int_equal(shmq_net_conn_write(f->cli.conn, buf, 1), -EAGAIN);

    /* Nobody reads: no drain, and the paused reader is not idle. */
    run_for(f, 1200);
    assert_int_equal(f->cli.drains, 0);
    assert_int_equal(f->srv.got_total, 0);
    assert_int_equal(f->srv.closes, 0);

    assert_int_equal(shmq_net_conn_resume_read(f->srv.conn), 0);
    RUN_UNTIL(f, f->cli.drains == 1);
    assert_true(shmq_net_conn_queued(f->cli.conn) <= low);
    RUN_UNTIL(f, f->srv.got_total == sent);
    assert_int_equal(f->srv.pattern_errors, 0);
    assert_int_equal(f->cli.drains, 1);
    assert_int_equal(f->srv.closes, 0);
    /* Writable again. */
    buf[0] = pattern_byte(sent);
    assert_int_equal(shmq_net_conn_write(f->cli.conn, buf, 1), 0);
    RUN_UNTIL(f, f->srv.got_total == sent + 1);
    finish(f);
}

static void test_writes_past_high_water_get_eagain_then_drain_when_peer_reads(void **state)
{
    high_water_then_drain(*state, false);
}

static void test_tls_writes_past_high_water_drain_and_paused_reads_resume(void **state)
{
    high_water_then_drain(*state, true);
}

static void test_tls_bytes_go_both_ways_encrypted(void **state)
{
    fx_t *f = *state;
    f->srv_echo = true;
    f->srv_hello = "hello from server;";
    f->cli_hello = "ping 1;";
    f->cli_stop_on_disconnected = true;
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    use_tls(f, &kc, 1, 1);
    start_listener(f, "127.0.0.1:0");
    start_connector(f, &kc);

    const char *want = "hello from server;ping 1;";
    RUN_UNTIL(f, f->cli.got_total == strlen(want));
    assert_memory_equal(f->cli.got, want, strlen(want));
    assert_memory_equal(f->srv.got, "ping 1;", strlen("ping 1;"));
    assert_true(strncmp(shmq_net_conn_security(f->cli.conn), "TLSv1.3 TLS_", 12) == 0);
    assert_true(strncmp(shmq_net_conn_security(f->srv.conn), "TLSv1.3 TLS_", 12) == 0);
    assert_int_equal(f->refused, 0);

    shmq_net_conn_close(f->cli.conn, "done");
    RUN_UNTIL(f, f->srv.closes == 1 && f->disconnects == 1);
    assert_string_equal(f->srv.reasons[0], "closed by peer");
    finish(f);
}

static void test_tls_wrong_key_is_refused_undelivered_on_both_sides(void **state)
{
    fx_t *f = *state;
    f->srv_hello = "secret data;";
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    use_tls(f, &kc, 1, 2);
    start_listener(f, "127.0.0.1:0");
    start_connector(f, &kc);
    RUN_UNTIL(f, f->refused >= 2 && f->disconnects >= 2);
    /* Never delivered: no accept, no connect, not a byte to either caller. */
    assert_int_equal(f->accepts, 0);
    assert_int_equal(f->connects, 0);
    assert_int_equal(f->cli.got_total, 0);
    assert_int_equal(f->srv.got_total, 0);
    assert_non_null(strstr(f->refused_reason, "TLS handshake: "));
    assert_non_null(strstr(f->disc_reason[0], "TLS handshake: "));
    /* ... and the connector keeps trying, with growing delays. */
    assert_true(f->retry_ms[1] > f->retry_ms[0]);
    finish(f);
}

static void test_tls_server_refuses_a_plain_client_and_garbage(void **state)
{
    fx_t *f = *state;
    f->cli_hello = "GET / HTTP/1.0\r\n\r\n";        /* not a TLS record */
    shmq_net_connector_cfg_t kc = connector_cfg(f); /* the client stays plain */
    uint8_t key[SHMQ_NET_PSK_SIZE];
    memset(key, 3, sizeof(key));
    assert_int_equal(shmq_net_tls_psk(true, "shmq-test", key, &f->tls_srv), 0);
    f->lcfg.conn.tls = f->tls_srv;
    start_listener(f, "127.0.0.1:0");
    start_connector(f, &kc);
    RUN_UNTIL(f, f->refused >= 1 && f->disconnects >= 1);
    assert_int_equal(f->accepts, 0);
    assert_int_equal(f->srv.got_total, 0);
    assert_non_null(strstr(f->refused_reason, "TLS handshake: "));
    finish(f);
}

static void test_tls_silent_peer_is_closed_by_the_idle_timeout(void **state)
{
    fx_t *f = *state;
    shmq_net_connector_cfg_t kc = connector_cfg(f); /* plain, says nothing */
    uint8_t key[SHMQ_NET_PSK_SIZE];
    memset(key, 3, sizeof(key));
    assert_int_equal(shmq_net_tls_psk(true, "shmq-test", key, &f->tls_srv), 0);
    f->lcfg.conn.tls = f->tls_srv;
    f->lcfg.conn.idle_ms = 300;
    start_listener(f, "127.0.0.1:0");
    start_connector(f, &kc);
    RUN_UNTIL(f, f->refused >= 1);
    assert_int_equal(f->accepts, 0);
    assert_string_equal(f->refused_reason, "idle 300 ms");
    finish(f);
}

/* Write a secret file with the given text and mode. */
static void write_secret(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_secret_file_is_checked_and_hashed(void **state)
{
    (void)state;
    char dir[] = "/tmp/shmq-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/ha.secret", dir);
    uint8_t k1[SHMQ_NET_PSK_SIZE], k2[SHMQ_NET_PSK_SIZE], k3[SHMQ_NET_PSK_SIZE];

    write_secret(path, "0123456789abcdef0123456789abcdef\n", 0600);
    assert_int_equal(shmq_net_secret_load(path, k1), 0);
    write_secret(path, "0123456789abcdef0123456789abcdef", 0400);
    assert_int_equal(shmq_net_secret_load(path, k2), 0);
    assert_memory_equal(k1, k2, sizeof(k1)); /* the newline is not part of it */
    write_secret(path, "0123456789abcdef0123456789abcdeX", 0600);
    assert_int_equal(shmq_net_secret_load(path, k3), 0);
    assert_memory_not_equal(k1, k3, sizeof(k1));

    write_secret(path, "0123456789abcdef0123456789abcdef", 0640);
    assert_int_equal(shmq_net_secret_load(path, k3), SHMQ_E_CONFIG);
    assert_non_null(strstr(shmq_error_detail(), "mode 0640"));
    assert_non_null(strstr(shmq_error_detail(), "chmod 600"));
    write_secret(path, "short\n", 0600);
    assert_int_equal(shmq_net_secret_load(path, k3), SHMQ_E_CONFIG);
    assert_non_null(strstr(shmq_error_detail(), "5 bytes of secret"));
    assert_int_equal(shmq_net_secret_load(dir, k3), SHMQ_E_CONFIG);
    assert_non_null(strstr(shmq_error_detail(), "not a regular file"));
    unlink(path);
    assert_int_equal(shmq_net_secret_load(path, k3), SHMQ_E_CONFIG);
    assert_non_null(strstr(shmq_error_detail(), "No such file"));
    /* A symlink is not followed. */
    write_secret(path, "0123456789abcdef0123456789abcdef", 0600);
    char link[160];
    snprintf(link, sizeof(link), "%s/link", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(shmq_net_secret_load(link, k3), SHMQ_E_CONFIG);
    unlink(link);
    unlink(path);
    rmdir(dir);
}

static void test_idle_connection_is_closed_with_the_reason(void **state)
{
    fx_t *f = *state;
    f->lcfg.conn.idle_ms = 1000;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->srv.closes == 1 && f->disconnects == 1);
    assert_string_equal(f->srv.reasons[0], "idle 1 s");
    assert_true(f->srv.closed_at - f->srv.up_at >= 1000);
    assert_string_equal(f->disc_reason[0], "closed by peer");
    finish(f);
}

/* The client sends a byte every 100 ms for 1.5 s: the idle timeout of
 * 1 s counts from the last read, not from the connection's start. */
static void tick_send(uv_timer_t *t)
{
    fx_t *f = t->data;
    if (f->cli.conn != NULL && shmq_net_conn_write(f->cli.conn, "t", 1) == 0) {
        f->ticks_sent++;
    }
    if (f->ticks_sent == 15) {
        uv_timer_stop(t);
    }
}

static void test_reads_postpone_the_idle_timeout(void **state)
{
    fx_t *f = *state;
    f->lcfg.conn.idle_ms = 1000;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->cli.conn != NULL && f->srv.conn != NULL);
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    tick.data = f;
    uv_timer_start(&tick, tick_send, 100, 100);
    RUN_UNTIL(f, f->srv.closes == 1);
    uv_close((uv_handle_t *)&tick, NULL);
    assert_int_equal(f->srv.got_total, 15);
    assert_string_equal(f->srv.reasons[0], "idle 1 s");
    /* It outlived the idle period while reading, then waited a full one. */
    assert_true(f->srv.last_read_at - f->srv.up_at >= 1500);
    assert_true(f->srv.closed_at - f->srv.last_read_at >= 1000);
    finish(f);
}

static void test_connector_retries_with_growing_delays_until_listener_appears(void **state)
{
    fx_t *f = *state;
    /* A port that was free a moment ago, and is closed now. */
    start_listener(f, "127.0.0.1:0");
    shmq_net_listener_close(f->l);
    f->l = NULL;
    run_for(f, 1);
    f->lcfg.any_port = false;
    f->listen_after_disconnects = 3;
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->connects == 1 || f->late_listen_rc < 0);
    if (f->late_listen_rc < 0) {
        fail_msg("listen again on %d: %s", f->port, shmq_error_detail());
    }
    assert_int_equal(f->disconnects, 3);
    char want[96];
    snprintf(want, sizeof(want), "connect 127.0.0.1:%d: connection refused", f->port);
    uint32_t delays[3] = {50, 100, 200};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(f->disc_reason[i], want);
        assert_int_equal(f->retry_ms[i], delays[i]);
    }
    /* Each attempt came no earlier than the delay announced before it. */
    assert_true(f->disc_at[1] - f->disc_at[0] >= 50);
    assert_true(f->disc_at[2] - f->disc_at[1] >= 100);
    assert_true(f->connect_at[0] - f->disc_at[2] >= 200);
    RUN_UNTIL(f, f->accepts == 1);
    finish(f);
}

static void test_connector_reconnects_after_server_closes_with_growing_delays(void **state)
{
    fx_t *f = *state;
    f->srv_close_accepts = 3;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->connects == 4 && f->accepts == 4);
    run_for(f, 100); /* the fourth stays */
    assert_int_equal(f->disconnects, 3);
    assert_int_equal(f->cli.closes, 3);
    assert_int_equal(f->srv.closes, 3);
    uint32_t delays[3] = {50, 100, 200};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(f->srv.reasons[i], "go away");
        assert_string_equal(f->cli.reasons[i], "closed by peer");
        assert_string_equal(f->disc_reason[i], "closed by peer");
        assert_int_equal(f->retry_ms[i], delays[i]);
        assert_true(f->connect_at[i + 1] - f->disc_at[i] >= delays[i]);
    }
    finish(f);
}

static void test_connection_that_lasted_resets_the_backoff(void **state)
{
    fx_t *f = *state;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    kc.backoff_max_ms = 200;
    start_connector(f, &kc);
    RUN_UNTIL(f, f->connects == 1 && f->srv.conn != NULL);
    run_for(f, 250);
    f->srv_close_accepts = 2; /* the next two are refused at once */
    shmq_net_conn_close(f->srv.conn, "bye");
    RUN_UNTIL(f, f->disconnects == 3);
    assert_int_equal(f->retry_ms[0], 50);  /* it lasted 250 ms >= 200 */
    assert_int_equal(f->retry_ms[1], 100); /* short ones grow again */
    assert_int_equal(f->retry_ms[2], 200);
    RUN_UNTIL(f, f->connects == 4);
    finish(f);
}

static void test_write_after_close_fails_cleanly(void **state)
{
    fx_t *f = *state;
    f->cli_stop_on_disconnected = true;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->cli.conn != NULL && f->srv.conn != NULL);
    shmq_net_conn_t *c = f->cli.conn;
    shmq_net_conn_close(c, "done");
    assert_int_equal(shmq_net_conn_write(c, "late", 4), -EPIPE);
    assert_non_null(strstr(shmq_error_detail(), "closing (done)"));
    assert_int_equal(shmq_net_conn_pause_read(c), -EPIPE);
    assert_int_equal(shmq_net_conn_resume_read(c), -EPIPE);
    shmq_net_conn_close(c, "another reason");
    assert_int_equal(f->cli.closes, 0); /* on_close comes from the loop */
    RUN_UNTIL(f, f->cli.closes == 1 && f->srv.closes == 1);
    assert_string_equal(f->cli.reasons[0], "done");
    assert_int_equal(f->cli.write_in_close_rc, -EPIPE);
    assert_string_equal(f->srv.reasons[0], "closed by peer");
    assert_int_equal(f->srv.write_in_close_rc, -EPIPE);
    run_for(f, 20);
    assert_int_equal(f->cli.closes, 1);
    assert_int_equal(f->srv.closes, 1);
    finish(f);
}

static void test_closing_inside_callbacks_is_safe(void **state)
{
    fx_t *f = *state;
    f->close_listener_on_accept = true;
    f->srv_close_on_read = true;
    f->cli_hello = "frame one;";
    f->cli_stop_on_disconnected = true;
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->srv.closes == 1 && f->disconnects == 1);
    assert_null(f->l); /* closed inside on_accept */
    assert_int_equal(f->accepts, 1);
    assert_string_equal(f->srv.reasons[0], "bad frame: 10 bytes");
    assert_int_equal(f->srv_write_after_close_rc, -EPIPE);
    assert_int_equal(f->cli.closes, 1);
    assert_null(f->k); /* stopped inside on_disconnected: no retry */
    run_for(f, 200);
    assert_int_equal(f->connects, 1);
    assert_int_equal(f->disconnects, 1);
    finish(f);
}

static void test_stop_inside_on_connected_runs_no_more_callbacks(void **state)
{
    fx_t *f = *state;
    f->cli_stop_on_connected = true;
    f->cli_hello = "last words;";
    start_listener(f, "127.0.0.1:0");
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    start_connector(f, &kc);
    RUN_UNTIL(f, f->srv.closes == 1);
    assert_int_equal(f->connects, 1);
    assert_int_equal(f->cli.closes, 0);
    assert_int_equal(f->disconnects, 0);
    finish(f);
}

static void expect_bad_addr(const char *s, bool any_port, const char *part)
{
    shmq_net_addr_t a;
    assert_int_equal(shmq_net_addr_parse(s, any_port, &a), SHMQ_E_ARG);
    if (strstr(shmq_error_detail(), part) == NULL) {
        fail_msg("'%s': detail \"%s\" lacks \"%s\"", s, shmq_error_detail(), part);
    }
}

static void test_addresses_are_parsed_with_clear_errors(void **state)
{
    fx_t *f = *state;
    shmq_net_addr_t a;
    assert_int_equal(shmq_net_addr_parse("127.0.0.1:10912", false, &a), 0);
    assert_string_equal(a.text, "127.0.0.1:10912");
    assert_int_equal(shmq_net_addr_parse("[::1]:10912", false, &a), 0);
    assert_string_equal(a.text, "[::1]:10912");
    assert_int_equal(shmq_net_addr_parse("::1:10912", false, &a), 0);
    assert_string_equal(a.text, "[::1]:10912");
    assert_int_equal(shmq_net_addr_parse("0.0.0.0:0", true, &a), 0);
    assert_string_equal(a.text, "0.0.0.0:0");
    expect_bad_addr("0.0.0.0:0", false, "port 0");
    expect_bad_addr("master:10912", false, "host 'master' is not an IPv4 or IPv6 address");
    expect_bad_addr("10.0.0.2", false, "expected host:port");
    expect_bad_addr("10.0.0.2:", false, "no port");
    expect_bad_addr(":10912", false, "empty host");
    expect_bad_addr("[]:10912", false, "empty host");
    expect_bad_addr("10.0.0.2:65536", false, "above 65535");
    expect_bad_addr("10.0.0.2:+80", false, "not a decimal number");
    expect_bad_addr("10.0.0.1.5:80", false, "not an IPv4 or IPv6 address");

    shmq_net_listener_t *l;
    shmq_net_connector_t *k;
    assert_int_equal(shmq_net_listen(&f->loop, "127.0.0.1:0", &f->lcfg, &l), SHMQ_E_ARG);
    assert_non_null(strstr(shmq_error_detail(), "port 0"));
    shmq_net_connector_cfg_t kc = connector_cfg(f);
    assert_int_equal(shmq_net_connector_start(&f->loop, "master:10911", &kc, &k), SHMQ_E_ARG);

    /* A port in use: the errno, naming the address. */
    start_listener(f, "127.0.0.1:0");
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    assert_int_equal(shmq_net_listen(&f->loop, addr, &f->lcfg, &l), -EADDRINUSE);
    assert_non_null(strstr(shmq_error_detail(), addr));
    finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_are_echoed_both_ways_and_peers_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_writes_past_high_water_get_eagain_then_drain_when_peer_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_bytes_go_both_ways_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_tls_writes_past_high_water_drain_and_paused_reads_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_wrong_key_is_refused_undelivered_on_both_sides,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_server_refuses_a_plain_client_and_garbage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls_silent_peer_is_closed_by_the_idle_timeout, setup,
                                        teardown),
        cmocka_unit_test(test_secret_file_is_checked_and_hashed),
        cmocka_unit_test_setup_teardown(test_idle_connection_is_closed_with_the_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reads_postpone_the_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connector_retries_with_growing_delays_until_listener_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connector_reconnects_after_server_closes_with_growing_delays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_that_lasted_resets_the_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_after_close_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_inside_callbacks_is_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_inside_on_connected_runs_no_more_callbacks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_addresses_are_parsed_with_clear_errors, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
