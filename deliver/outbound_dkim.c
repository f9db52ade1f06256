/*
 * outbound_dkim — DKIM for notification mail: signing with libopendkim,
 * key generation and the DNS record with OpenSSL.
 *
 * Where it sits: outbound_enqueue signs the composed message before it is
 * encrypted and queued; `sealpost dkim keygen|record` and `init` manage the
 * key. OpenDKIM stays in deliver/ (STYLE.md 3).
 *
 * Trust: the key file is the admin's (it must be a private key OpenSSL can
 * read; libopendkim checks it again when signing). The message comes from
 * mime_compose, already checked.
 *
 * Standards: RFC 6376 (DKIM: relaxed/relaxed, rsa-sha256, oversigning From
 * as in 8.15 against added From fields), RFC 8301 (RSA keys of at least 1024,
 * we make 2048), RFC 5958 (PKCS#8 key files).
 */
#include "deliver/outbound_internal.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <opendkim/dkim.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The header fields we sign; From is also oversigned (RFC 6376 8.15). */
static const char *sign_headers[] = {
    "from",           "to",         "cc",           "reply-to",     "subject",
    "date",           "message-id", "mime-version", "content-type", "content-transfer-encoding",
    "auto-submitted", NULL,
};
static const char *oversign_headers[] = {"from", NULL};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *lib; /* shared by every thread (libopendkim allows it); never closed */

static void lib_init(void)
{
    DKIM_LIB *l = dkim_init(NULL, NULL);
    if (l == NULL)
        return;
    if (dkim_options(l, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign_headers, sizeof(char **)) !=
            DKIM_STAT_OK ||
        dkim_options(l, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, oversign_headers,
                     sizeof(char **)) != DKIM_STAT_OK) {
        dkim_close(l);
        return;
    }
    lib = l;
}

int outbound_dkim_sign(const char *key_pem, const char *selector, const char *domain,
                       const char *id, const char *msg, size_t len, char **out, size_t *outlen,
                       const char **err)
{
    *out = NULL;
    *outlen = 0;
    pthread_once(&lib_once, lib_init);
    if (lib == NULL) {
        *err = "libopendkim initialisation failed";
        return -1;
    }
    const char *eoh = memmem(msg, len, "\r\n\r\n", 4);
    if (eoh == NULL) {
        *err = "message without a header block";
        return -1;
    }
    DKIM_STAT st;
    DKIM *d = dkim_sign(lib, (const unsigned char *)id, NULL, (dkim_sigkey_t)key_pem,
                        (const unsigned char *)selector, (const unsigned char *)domain,
                        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    if (d == NULL) {
        *err = "cannot start signing (bad key?)";
        return -1;
    }
    /* Each field with its folding, without the final CRLF. */
    const char *p = msg, *end = eoh + 2;
    while (st == DKIM_STAT_OK && p < end) {
        const char *q = p;
        for (;;) {
            const char *crlf = memmem(q, (size_t)(end - q), "\r\n", 2);
            q = crlf + 2;
            if (q >= end || (*q != ' ' && *q != '\t'))
                break;
        }
        st = dkim_header(d, (u_char *)p, (size_t)(q - 2 - p));
        p = q;
    }
    if (st == DKIM_STAT_OK)
        st = dkim_eoh(d);
    if (st == DKIM_STAT_OK)
        st = dkim_body(d, (u_char *)eoh + 4, len - (size_t)(eoh + 4 - msg));
    if (st == DKIM_STAT_OK)
        st = dkim_eom(d, NULL);
    u_char *sig = NULL;
    size_t siglen = 0;
    if (st == DKIM_STAT_OK)
        st = dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &sig, &siglen);
    if (st != DKIM_STAT_OK) {
        msg_warn("%s: dkim sign: %s", id, dkim_getresultstr(st));
        dkim_free(d);
        *err = "signing failed";
        return -1;
    }
    /* dkim_getsighdr_d gives the value only (folded with CRLF + TAB). */
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    if (buf_puts(&b, DKIM_SIGNHEADER ": ") < 0 || buf_append(&b, sig, siglen) < 0 ||
        buf_puts(&b, "\r\n") < 0 || buf_append(&b, msg, len) < 0) {
        buf_free(&b);
        dkim_free(d);
        *err = "message too large";
        return -1;
    }
    dkim_free(d);
    *outlen = b.len;
    *out = buf_steal(&b);
    return 0;
}

/* ---- keys ---- */

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    *err = s ? s : xstrdup("out of memory");
    return -1;
}

/* Writes data to path with mode 0600 via a temporary file: if force, it
 * replaces path (rename); else link() creates path only if it is absent.
 * Either way path is whole or not there, then the directory is synced. */
static int key_file_write(const char *path, const char *data, size_t len, bool force, char **err)
{
    char *tmp = xasprintf("%s.tmp", path);
    char *dircopy = xstrdup(path);
    const char *dir = dirname(dircopy);
    int rc = -1;

    if (mkdir_p(dir, 0700) < 0) {
        fail(err, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fail(err, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        fail(err, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (force) {
        if (rename(tmp, path) < 0) {
            fail(err, "cannot replace %s: %s", path, strerror(errno));
            unlink(tmp);
            goto out;
        }
    } else {
        int r = link(tmp, path);
        int e = errno;
        unlink(tmp);
        if (r < 0) {
            if (e == EEXIST)
                fail(err, "%s exists (use --force to replace it)", path);
            else
                fail(err, "cannot create %s: %s", path, strerror(e));
            goto out;
        }
    }
    if (fsync_dir(dir) < 0) {
        fail(err, "cannot sync %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    free(dircopy);
    return rc;
}

int outbound_dkim_keygen(const char *path, bool force, char **err)
{
    *err = NULL;
    if (!force && access(path, F_OK) == 0)
        return fail(err, "%s exists (use --force to replace it)", path);
    EVP_PKEY *pkey = EVP_RSA_gen(OUTBOUND_DKIM_BITS);
    if (pkey == NULL)
        return fail(err, "cannot generate an RSA key");
    /* Secure-heap memory BIO: the PEM text is wiped when it is freed. */
    BIO *mem = BIO_new(BIO_s_secmem());
    int rc = -1;
    if (mem == NULL || PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        fail(err, "cannot encode the key");
    } else {
        char *data = NULL;
        long n = BIO_get_mem_data(mem, &data);
        rc = n > 0 ? key_file_write(path, data, (size_t)n, force, err)
                   : fail(err, "cannot encode the key");
    }
    BIO_free(mem);
    EVP_PKEY_free(pkey);
    return rc;
}

int outbound_dkim_record(const char *path, char **record, char **err)
{
    *record = NULL;
    *err = NULL;
    char *pem = NULL;
    size_t pemlen = 0;
    if (read_file(path, OUTBOUND_DKIM_KEY_MAX, &pem, &pemlen) < 0)
        return fail(err, "cannot read the DKIM key %s: %s (run: sealpost dkim keygen)", path,
                    strerror(errno));
    BIO *bio = BIO_new_mem_buf(pem, (int)pemlen);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    sodium_memzero(pem, pemlen);
    free(pem);
    if (pkey == NULL)
        return fail(err, "%s is not a PEM private key", path);
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pkey);
        return fail(err, "%s is not an RSA key", path);
    }
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    EVP_PKEY_free(pkey);
    if (n <= 0)
        return fail(err, "cannot encode the public key of %s", path);
    size_t b64len = sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = xmalloc(b64len);
    sodium_bin2base64(b64, b64len, der, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
    OPENSSL_free(der);
    *record = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
    free(b64);
    return 0;
}
