/*
 * net: TLS 1.3 with a pre-shared key (net.h), through OpenSSL over two
 * memory BIOs so that libuv keeps doing the socket I/O: bytes read from the
 * socket go into the session (input), what the session has to send goes
 * out through the connection's ordinary write queue (flush).  No
 * certificates: both ends derive the key from the same secret file, and a
 * handshake succeeds only when the peer holds it (a wrong key fails the
 * PSK binder: "decrypt error"; a peer without one finds no cipher it
 * can use).  The connection is delivered to its owner (on_secure) when the
 * handshake succeeds; until then nothing read reaches the caller.
 */
#include "net/net_int.h"

#include "shmq/errors.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_PLAIN_CHUNK 16384 /* one TLS record's plaintext, at most */

struct shmq_net_tls {
    SSL_CTX *ctx;
    bool server;
    char identity[64];
    uint8_t key[SHMQ_NET_PSK_SIZE];
};

/* ---- the secret file ----------------------------------------------------- */

int shmq_net_secret_load(const char *path, uint8_t key[SHMQ_NET_PSK_SIZE])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        return shmq_error_set(SHMQ_E_CONFIG, "secret file %s: %s", path, strerror(errno));
    }
    struct stat st;
    char buf[SHMQ_NET_SECRET_MAX + 2];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = shmq_error_set(SHMQ_E_CONFIG, "secret file %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = shmq_error_set(SHMQ_E_CONFIG, "secret file %s: not a regular file", path);
    } else if (st.st_uid != geteuid()) {
        rc = shmq_error_set(SHMQ_E_CONFIG,
                            "secret file %s: owned by uid %u, not by this broker's user (uid %u)",
                            path, (unsigned)st.st_uid, (unsigned)geteuid());
    } else if ((st.st_mode & 077) != 0) {
        rc = shmq_error_set(SHMQ_E_CONFIG,
                            "secret file %s: mode %04o: readable or writable by group or others; "
                            "chmod 600 it",
                            path, (unsigned)(st.st_mode & 07777));
    } else {
        n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            rc = shmq_error_set(SHMQ_E_CONFIG, "secret file %s: %s", path, strerror(errno));
        }
    }
    close(fd);
    if (rc < 0) {
        return rc;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) {
        n--;
    }
    if (n < SHMQ_NET_SECRET_MIN || n > SHMQ_NET_SECRET_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return shmq_error_set(SHMQ_E_CONFIG,
                              "secret file %s: %zd bytes of secret, expected %d..%d (e.g. "
                              "`openssl rand -hex 32 > %s`)",
                              path, n, SHMQ_NET_SECRET_MIN, SHMQ_NET_SECRET_MAX, path);
    }
    unsigned int klen = 0;
    int ok = EVP_Digest(buf, (size_t)n, key, &klen, EVP_sha256(), NULL);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!ok || klen != SHMQ_NET_PSK_SIZE) {
        return shmq_error_set(SHMQ_E_CONFIG, "secret file %s: hashing failed", path);
    }
    return 0;
}

/* ---- contexts ------------------------------------------------------------ */

static const shmq_net_tls_t *tls_of(SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static unsigned int psk_client(SSL *ssl, const char *hint, char *identity,
                               unsigned int max_identity_len, unsigned char *psk,
                               unsigned int max_psk_len)
{
    (void)hint;
    const shmq_net_tls_t *t = tls_of(ssl);
    size_t idlen = strlen(t->identity);
    if (idlen + 1 > max_identity_len || max_psk_len < SHMQ_NET_PSK_SIZE) {
        return 0;
    }
    memcpy(identity, t->identity, idlen + 1);
    memcpy(psk, t->key, SHMQ_NET_PSK_SIZE);
    return SHMQ_NET_PSK_SIZE;
}

static unsigned int psk_server(SSL *ssl, const char *identity, unsigned char *psk,
                               unsigned int max_psk_len)
{
    const shmq_net_tls_t *t = tls_of(ssl);
    if (identity == NULL || strcmp(identity, t->identity) != 0 || max_psk_len < SHMQ_NET_PSK_SIZE) {
        return 0; /* unknown identity: no key, the handshake fails */
    }
    memcpy(psk, t->key, SHMQ_NET_PSK_SIZE);
    return SHMQ_NET_PSK_SIZE;
}

int shmq_net_tls_psk(bool server, const char *identity, const uint8_t key[SHMQ_NET_PSK_SIZE],
                     shmq_net_tls_t **out)
{
    if (identity == NULL || identity[0] == '\0' || strlen(identity) >= 64) {
        return shmq_error_set(SHMQ_E_ARG, "tls: an identity of 1..63 bytes is required");
    }
    shmq_net_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return shmq_error_set(-ENOMEM, "tls: no memory");
    }
    t->server = server;
    snprintf(t->identity, sizeof(t->identity), "%s", identity);
    memcpy(t->key, key, SHMQ_NET_PSK_SIZE);
    t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    /* TLS 1.3 only; SHA-256 suites (a PSK is bound to its hash); no
     * tickets (every connection proves the key afresh). */
    if (t->ctx == NULL || !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") ||
        !SSL_CTX_set_num_tickets(t->ctx, 0)) {
        shmq_net_tls_free(t);
        return shmq_error_set(-ENOMEM, "tls: cannot make a TLS 1.3 context: %s",
                              ERR_reason_error_string(ERR_get_error()));
    }
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_app_data(t->ctx, t);
    if (server) {
        SSL_CTX_set_psk_server_callback(t->ctx, psk_server);
    } else {
        SSL_CTX_set_psk_client_callback(t->ctx, psk_client);
    }
    *out = t;
    return 0;
}

void shmq_net_tls_free(shmq_net_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->ctx);
    OPENSSL_cleanse(t->key, sizeof(t->key));
    free(t);
}

/* ---- a connection's session ---------------------------------------------- */

/* OpenSSL's reason for the last failure (its queue is cleared before each call). */
static const char *tls_reason(SSL *ssl, int ret)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        return r != NULL ? r : "error";
    }
    int err = SSL_get_error(ssl, ret);
    return err == SSL_ERROR_ZERO_RETURN ? "closed by peer" : "protocol error";
}

/* Send what the session produced (handshake messages, records, alerts). */
static int tls_flush(shmq_net_conn_t *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    size_t n = BIO_ctrl_pending(w);
    if (n == 0) {
        return 0;
    }
    char *p;
    long len = BIO_get_mem_data(w, &p);
    struct iovec iov = {.iov_base = p, .iov_len = (size_t)len};
    int rc = shmq_net_conn_submit(c, &iov, 1);
    (void)BIO_reset(w);
    return rc;
}

static int tls_begin(shmq_net_conn_t *c)
{
    const shmq_net_tls_t *t = c->cfg.tls;
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    c->ssl = SSL_new(t->ctx);
    if (c->ssl == NULL || r == NULL || w == NULL) {
        BIO_free(r);
        BIO_free(w);
        return shmq_error_set(-ENOMEM, "%s: no memory for a TLS session", c->peer);
    }
    /* An empty read BIO says "retry", not end of file. */
    BIO_set_mem_eof_return(r, -1);
    SSL_set_bio(c->ssl, r, w);
    snprintf(c->security, sizeof(c->security), "TLS handshake");
    if (t->server) {
        SSL_set_accept_state(c->ssl);
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    ERR_clear_error();
    int ret = SSL_do_handshake(c->ssl); /* the hello: wants the server's answer */
    if (ret <= 0 && SSL_get_error(c->ssl, ret) != SSL_ERROR_WANT_READ) {
        return shmq_error_set(SHMQ_E_ARG, "TLS handshake: %s", tls_reason(c->ssl, ret));
    }
    return tls_flush(c);
}

void shmq_net_tls_start(shmq_net_conn_t *c, void (*on_secure)(shmq_net_conn_t *c))
{
    c->on_secure = on_secure;
    if (tls_begin(c) < 0) {
        shmq_net_conn_close(c, "%s", shmq_error_detail());
        return;
    }
    shmq_net_conn_start(c); /* reading: the handshake, then on_secure */
}

void shmq_net_tls_end(shmq_net_conn_t *c)
{
    SSL_free(c->ssl); /* and both BIOs */
    c->ssl = NULL;
}

bool shmq_net_tls_pending(const shmq_net_conn_t *c)
{
    return c->ssl != NULL &&
           (SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0);
}

/* The handshake, as far as the bytes in allow; true once it succeeded. */
static bool tls_handshake(shmq_net_conn_t *c)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(c->ssl);
    int frc = tls_flush(c); /* our next flight, or the alert that ends it */
    if (ret == 1) {
        if (frc == 0) {
            c->tls_up = true;
            snprintf(c->security, sizeof(c->security), "%s %s", SSL_get_version(c->ssl),
                     SSL_get_cipher_name(c->ssl));
        }
        return c->tls_up;
    }
    if (SSL_get_error(c->ssl, ret) != SSL_ERROR_WANT_READ) {
        shmq_net_conn_close(c, "TLS handshake: %s", tls_reason(c->ssl, ret));
    }
    return false;
}

void shmq_net_tls_input(shmq_net_conn_t *c, const char *data, size_t len)
{
    if (len > 0 && BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len) {
        shmq_net_conn_close(c, "TLS: no memory for %zu bytes read", len);
        return;
    }
    if (!c->tls_up) {
        if (!tls_handshake(c) || c->closing) {
            return;
        }
        c->on_secure(c); /* delivered: on_accept / on_connected */
    }
    char plain[TLS_PLAIN_CHUNK];
    while (!c->closing && !c->paused) {
        size_t n = 0;
        ERR_clear_error();
        int ret = SSL_read_ex(c->ssl, plain, sizeof(plain), &n);
        if (ret == 1) {
            c->cfg.on_read(c, plain, n);
            continue;
        }
        int err = SSL_get_error(c->ssl, ret);
        if (err == SSL_ERROR_ZERO_RETURN) {
            shmq_net_conn_close(c, "closed by peer");
        } else if (err != SSL_ERROR_WANT_READ) {
            shmq_net_conn_close(c, "TLS: %s", tls_reason(c->ssl, ret));
        }
        break;
    }
    if (!c->closing) {
        tls_flush(c); /* key updates, alerts */
    }
}

int shmq_net_tls_write(shmq_net_conn_t *c, const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        size_t n = 0;
        ERR_clear_error();
        /* A memory BIO takes everything: the write is whole or fails. */
        int ret = SSL_write_ex(c->ssl, iov[i].iov_base, iov[i].iov_len, &n);
        if (ret != 1 || n != iov[i].iov_len) {
            shmq_net_conn_close(c, "TLS: write: %s", tls_reason(c->ssl, ret));
            return shmq_error_set(-EPIPE, "%s: TLS write failed", c->peer);
        }
    }
    return tls_flush(c);
}
