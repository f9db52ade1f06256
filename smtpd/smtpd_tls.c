/*
 * smtpd_tls — STARTTLS (RFC 3207) with OpenSSL on non-blocking sockets.
 *
 * The context is built from [tls] cert and key (a new one on every reload;
 * sessions keep the one they started with: OpenSSL counts references). The
 * handshake and every read and write are driven by the I/O loop: a call
 * that would block reports which direction it waits for. What was buffered
 * before the handshake is discarded by the session (CVE-2011-0411) and the
 * client must EHLO again.
 *
 * Trusts: the certificate files named by the admin. TLS 1.2 at least.
 */
#include "smtpd/smtpd_int.h"

#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <openssl/err.h>

static char *tls_errstr(const char *what)
{
    char e[256];
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, e, sizeof(e));
    else
        snprintf(e, sizeof(e), "unknown error");
    ERR_clear_error();
    return xasprintf("%s: %s", what, e);
}

SSL_CTX *smtpd_tls_ctx_new(const struct config *cfg, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        *err = tls_errstr("SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Partial writes and moving buffers suit our output buffer; idle
     * sessions give their TLS buffers back (memory per idle connection). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        char *e = tls_errstr(cfg->tls_cert);
        *err = e;
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        *err = tls_errstr(cfg->tls_key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

bool smtpd_tls_offered(struct smtpd_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    bool on = srv->tls != NULL;
    pthread_mutex_unlock(&srv->lock);
    return on;
}

int smtpd_tls_begin(struct smtpd_session *s)
{
    pthread_mutex_lock(&s->srv->lock);
    SSL_CTX *ctx = s->srv->tls;
    s->ssl = ctx ? SSL_new(ctx) : NULL;
    pthread_mutex_unlock(&s->srv->lock);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        char *e = tls_errstr("SSL_new");
        msg_warn("%s: tls=failed, reason=%s", s->id, e);
        free(e);
        return -1;
    }
    SSL_set_accept_state(s->ssl);
    return 0;
}

int smtpd_tls_step(struct smtpd_session *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        s->hs_wants_out = false;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        s->hs_wants_out = true;
        return 0;
    }
    char *why = tls_errstr("handshake");
    msg_info("%s: tls=failed, reason=%s", s->id, scrub(why));
    free(why);
    return -1;
}

long smtpd_tls_read(struct smtpd_session *s, char *p, size_t n)
{
    ERR_clear_error();
    s->rd_wants_out = false;
    int r = SSL_read(s->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        s->rd_wants_out = true;
        errno = EAGAIN;
        return -1;
    default:
        ERR_clear_error();
        return -2;
    }
}

long smtpd_tls_write(struct smtpd_session *s, const char *p, size_t n)
{
    ERR_clear_error();
    s->wr_wants_in = false;
    int r = SSL_write(s->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_READ:
        s->wr_wants_in = true;
        errno = EAGAIN;
        return -1;
    default:
        ERR_clear_error();
        return -2;
    }
}

const char *smtpd_tls_version(const struct smtpd_session *s)
{
    return s->ssl ? SSL_get_version(s->ssl) : NULL;
}

const char *smtpd_tls_cipher(const struct smtpd_session *s)
{
    return s->ssl ? SSL_get_cipher_name(s->ssl) : NULL;
}

int smtpd_tls_bits(const struct smtpd_session *s)
{
    int alg = 0;
    return s->ssl ? SSL_get_cipher_bits(s->ssl, &alg) : 0;
}
