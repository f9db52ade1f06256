/*
 * outbound — notification mail into the queue (see outbound.h).
 *
 * Data flow: sendlink (or the CLI) → outbound_enqueue: mime_compose → DKIM
 * sign (outbound_dkim.c) → encrypt → one committed row in outbound_queue →
 * the runner (outbound_runner.c) hands it to the relay host later.
 *
 * At rest: the store keeps only the encrypted record (outbound_internal.h
 * gives the layout): the link in the body and the recipient's address are
 * never in the database in clear. The key is a subkey of the master key,
 * which lives outside the data directory; the queue id is bound in as
 * additional data, so a record cannot be moved to another row.
 *
 * Durability: the row is committed (WAL, synchronous=FULL) before
 * outbound_enqueue returns its id, so a mail the API acknowledged survives a
 * crash.
 *
 * Trust: the caller's strings are untrusted (mime_compose cleans and checks
 * them); the config and the key file are the admin's.
 */
#include "deliver/outbound_internal.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "mime/mime_compose.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD_AD_PREFIX "sealpost-queue-v1:"
#define RECORD_HEADER (1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
/* Longest envelope address in a record. */
#define RECORD_ADDR_MAX 0xFFFF

void outbound_record_clear(struct outbound_record *r)
{
    free(r->env_from);
    free(r->rcpt);
    if (r->msg) {
        sodium_memzero(r->msg, r->msg_len);
        free(r->msg);
    }
    memset(r, 0, sizeof(*r));
}

static void record_ad(const char *id, unsigned char *ad, size_t *adlen)
{
    size_t p = strlen(RECORD_AD_PREFIX), n = strlen(id);
    memcpy(ad, RECORD_AD_PREFIX, p);
    memcpy(ad + p, id, n);
    *adlen = p + n;
}

void outbound_record_seal(const unsigned char *master, const char *id,
                          const struct outbound_record *r, unsigned char **out, size_t *outlen)
{
    size_t fl = strlen(r->env_from), rl = strlen(r->rcpt);
    if (fl > RECORD_ADDR_MAX || rl > RECORD_ADDR_MAX)
        msg_panic("address too long for a queue record");
    size_t plen = 2 + fl + 2 + rl + r->msg_len;
    unsigned char *plain = xmalloc(plen);
    size_t at = 0;
    plain[at++] = (unsigned char)(fl >> 8);
    plain[at++] = (unsigned char)fl;
    memcpy(plain + at, r->env_from, fl);
    at += fl;
    plain[at++] = (unsigned char)(rl >> 8);
    plain[at++] = (unsigned char)rl;
    memcpy(plain + at, r->rcpt, rl);
    at += rl;
    memcpy(plain + at, r->msg, r->msg_len);

    unsigned char key[MASTERKEY_SUBKEY_BYTES];
    unsigned char ad[sizeof(RECORD_AD_PREFIX) + DB_ID_MAX];
    size_t adlen;
    record_ad(id, ad, &adlen);
    masterkey_derive(master, OUTBOUND_KDF_CTX, OUTBOUND_KDF_ID, key);
    *outlen = RECORD_HEADER + plen + crypto_aead_xchacha20poly1305_ietf_ABYTES;
    *out = xmalloc(*outlen);
    (*out)[0] = OUTBOUND_RECORD_VERSION;
    randombytes_buf(*out + 1, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(*out + RECORD_HEADER, &clen, plain, plen, ad, adlen,
                                               NULL, *out + 1, key);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(plain, plen);
    free(plain);
}

int outbound_record_open(const unsigned char *master, const char *id, const unsigned char *in,
                         size_t inlen, struct outbound_record *r)
{
    memset(r, 0, sizeof(*r));
    if (inlen < RECORD_HEADER + crypto_aead_xchacha20poly1305_ietf_ABYTES + 4 ||
        in[0] != OUTBOUND_RECORD_VERSION || strlen(id) > DB_ID_MAX)
        return -1;
    unsigned char key[MASTERKEY_SUBKEY_BYTES];
    unsigned char ad[sizeof(RECORD_AD_PREFIX) + DB_ID_MAX];
    size_t adlen;
    record_ad(id, ad, &adlen);
    masterkey_derive(master, OUTBOUND_KDF_CTX, OUTBOUND_KDF_ID, key);
    size_t clen = inlen - RECORD_HEADER;
    unsigned char *plain = xmalloc(clen);
    unsigned long long plen;
    int ok = crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, in + RECORD_HEADER,
                                                        clen, ad, adlen, in + 1, key) == 0;
    sodium_memzero(key, sizeof(key));
    size_t at = 0, fl = 0, rl = 0;
    if (ok && plen >= 2) {
        fl = (size_t)plain[0] << 8 | plain[1];
        at = 2 + fl;
        ok = at + 2 <= plen;
    }
    if (ok) {
        rl = (size_t)plain[at] << 8 | plain[at + 1];
        ok = at + 2 + rl <= plen;
    }
    if (ok) {
        r->env_from = xmemdup(plain + 2, fl + 1);
        r->env_from[fl] = '\0';
        r->rcpt = xmemdup(plain + at + 2, rl + 1);
        r->rcpt[rl] = '\0';
        at += 2 + rl;
        r->msg_len = (size_t)plen - at;
        r->msg = xmalloc(r->msg_len + 1);
        memcpy(r->msg, plain + at, r->msg_len);
        r->msg[r->msg_len] = '\0';
        /* NUL inside an address would cut it: refuse the record. */
        ok = strlen(r->env_from) == fl && strlen(r->rcpt) == rl;
    }
    sodium_memzero(plain, clen);
    free(plain);
    if (!ok)
        outbound_record_clear(r);
    return ok ? 0 : -1;
}

/* Reads the DKIM key into a buffer wiped on free. */
static char *dkim_key_read(const char *path, size_t *len)
{
    char *pem = NULL;
    if (read_file(path, OUTBOUND_DKIM_KEY_MAX, &pem, len) < 0) {
        msg_error("outbound: cannot read the DKIM key %s: %s (run: sealpost dkim keygen)", path,
                  strerror(errno));
        return NULL;
    }
    return pem;
}

int outbound_enqueue(struct db *db, const struct config *cfg, const unsigned char *master,
                     const struct outbound_mail *m, char id[RAND_ID_LEN + 1])
{
    const char *kind = m->kind ? m->kind : "notify";
    rand_id(id);

    struct mime_compose_in in = {
        .from_addr = cfg->from,
        .from_name = m->from_name ? m->from_name : cfg->from_name,
        .to_addr = m->to,
        .reply_to = m->reply_to,
        .subject = m->subject,
        .text = m->text,
        .html = m->html,
        .date = (int64_t)time(NULL),
    };
    char *mid = xasprintf("%s@%s", id, cfg->dkim_domain);
    in.message_id = mid;
    char *msg = NULL;
    size_t msglen = 0;
    const char *why = NULL;
    int rc = mime_compose(&in, &msg, &msglen, &why);
    free(mid);
    if (rc < 0) {
        msg_warn("%s: outbound refused: kind=%s, send=%s, reason=%s", id, scrub(kind),
                 scrub(m->send_id ? m->send_id : "-"), why);
        return -1;
    }

    size_t keylen = 0;
    char *key = dkim_key_read(cfg->dkim_key, &keylen);
    char *signed_msg = NULL;
    size_t signed_len = 0;
    if (key) {
        rc = outbound_dkim_sign(key, cfg->dkim_selector, cfg->dkim_domain, id, msg, msglen,
                                &signed_msg, &signed_len, &why);
        sodium_memzero(key, keylen);
        free(key);
        if (rc < 0)
            msg_error("%s: outbound: DKIM signing failed: %s", id, why);
    } else {
        rc = -1;
    }
    sodium_memzero(msg, msglen);
    free(msg);
    if (rc < 0)
        return -1;

    struct outbound_record rec = {
        .env_from = (char *)cfg->from,
        .rcpt = (char *)m->to,
        .msg = signed_msg,
        .msg_len = signed_len,
    };
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    outbound_record_seal(master, id, &rec, &sealed, &sealed_len);
    sodium_memzero(signed_msg, signed_len);
    free(signed_msg);

    int64_t now = (int64_t)time(NULL);
    struct db_queue_entry e = {
        .send_id = m->send_id,
        .kind = kind,
        .created = now,
        .next_try = now,
        .size = (int64_t)signed_len,
        .data = sealed,
        .data_len = sealed_len,
    };
    memcpy(e.id, id, RAND_ID_LEN + 1);
    /* Committed (WAL fsynced) before the id is returned: the caller may say
     * "sent" to its client from here on. */
    enum db_rc r = db_begin(db);
    if (r == DB_OK) {
        r = db_queue_insert(db, &e);
        if (r == DB_OK)
            r = db_commit(db);
        if (r != DB_OK)
            db_rollback(db);
    }
    free(sealed);
    if (r != DB_OK) {
        msg_error("%s: outbound: cannot queue (store error %d)", id, (int)r);
        return -1;
    }
    msg_info("%s: queued: kind=%s, send=%s, size=%zu", id, scrub(kind),
             scrub(m->send_id ? m->send_id : "-"), signed_len);
    outbound_runner_wake();
    return 0;
}

int outbound_flush(const struct config *cfg)
{
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    struct db *db = NULL;
    enum db_rc r = db_open(path, &db);
    free(path);
    if (r != DB_OK) {
        msg_error("outbound: cannot open the store in %s", cfg->data_dir);
        return -1;
    }
    int n = 0;
    r = db_queue_flush(db, (int64_t)time(NULL), &n);
    db_close(db);
    if (r != DB_OK)
        return -1;
    msg_info("outbound: flush: %d mail(s) due now", n);
    return n;
}
