/*
 * sendlink_crypto — the keys of a send (DESIGN.md "Send", docs/FORMATS.md
 * "Send", which this file must match byte for byte).
 *
 *   token      32 random bytes; the link carries base64url(token), no padding
 *   token_hash BLAKE2b-256(token, key = kdf(master, 1, "sp-token"))
 *   page key   kdf(token, 1, "sp-send1")  seals the page record (vault container)
 *   wrap key   kdf(token, 2, "sp-send1"); with a code:
 *              BLAKE2b-256(code, key = kdf(token, 2, "sp-send1"))
 *   wrapped    nonce(24) || XChaCha20-Poly1305(file key, AD = send id)
 *   code MAC   BLAKE2b-256(id || 0x00 || code, key = kdf(master, 1, "sp-code "))
 *   sealed     recipient / phone: nonce(24) || XChaCha20-Poly1305(text,
 *              AD = id || 0x00 || field), key = kdf(master, 1, "sp-rcpt ")
 *   API key    BLAKE2b-256(key string, key = kdf(master, 1, "sp-apiky"))
 *
 * So the store alone opens nothing: the file key needs the token (and the
 * code), which only the hash of is kept; the recipient needs the master key,
 * which lives outside the data directory.
 *
 * Trusts: nothing it opens; every AEAD failure is a refusal. Secrets stay
 * on the stack only as long as needed and are wiped.
 */
#include "sendlink/sendlink_int.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"

#include <sodium.h>
#include <string.h>

#define AEAD_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

void send_token_new(unsigned char raw[SEND_TOKEN_BYTES], char text[SEND_TOKEN_CHARS + 1])
{
    randombytes_buf(raw, SEND_TOKEN_BYTES);
    sodium_bin2base64(text, SEND_TOKEN_CHARS + 1, raw, SEND_TOKEN_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int send_token_parse(const char *text, unsigned char raw[SEND_TOKEN_BYTES])
{
    size_t len = 0;
    const char *end = NULL;
    if (strlen(text) != SEND_TOKEN_CHARS)
        return -1;
    if (sodium_base642bin(raw, SEND_TOKEN_BYTES, text, SEND_TOKEN_CHARS, NULL, &len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != SEND_TOKEN_BYTES || end != text + SEND_TOKEN_CHARS)
        return -1;
    return 0;
}

static void keyed_hash(const unsigned char *master, const char ctx[8], const void *in, size_t inlen,
                       unsigned char out[DB_HASH_BYTES])
{
    unsigned char k[MASTERKEY_SUBKEY_BYTES];
    masterkey_derive(master, ctx, 1, k);
    crypto_generichash(out, DB_HASH_BYTES, in, inlen, k, sizeof(k));
    sodium_memzero(k, sizeof(k));
}

void send_token_hash(const unsigned char *master, const unsigned char raw[SEND_TOKEN_BYTES],
                     unsigned char out[DB_HASH_BYTES])
{
    keyed_hash(master, MK_CTX_TOKEN, raw, SEND_TOKEN_BYTES, out);
}

void send_page_key(const unsigned char raw[SEND_TOKEN_BYTES], unsigned char key[SEND_KEY_BYTES])
{
    crypto_kdf_derive_from_key(key, SEND_KEY_BYTES, SEND_SUBKEY_PAGE, SEND_KDF_TOKEN, raw);
}

void send_wrap_key(const unsigned char raw[SEND_TOKEN_BYTES], const char *code,
                   unsigned char key[SEND_KEY_BYTES])
{
    crypto_kdf_derive_from_key(key, SEND_KEY_BYTES, SEND_SUBKEY_WRAP, SEND_KDF_TOKEN, raw);
    if (code) {
        unsigned char base[SEND_KEY_BYTES];
        memcpy(base, key, sizeof(base));
        crypto_generichash(key, SEND_KEY_BYTES, (const unsigned char *)code, strlen(code), base,
                           sizeof(base));
        sodium_memzero(base, sizeof(base));
    }
}

void send_key_wrap(const unsigned char wk[SEND_KEY_BYTES], const char *id,
                   const unsigned char *file_key, unsigned char out[SEND_WRAPPED_BYTES])
{
    randombytes_buf(out, AEAD_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + AEAD_NONCE, NULL, file_key, SEND_KEY_BYTES,
                                               (const unsigned char *)id, strlen(id), NULL, out,
                                               wk);
}

int send_key_unwrap(const unsigned char wk[SEND_KEY_BYTES], const char *id, const unsigned char *w,
                    size_t wlen, unsigned char *file_key)
{
    if (w == NULL || wlen != SEND_WRAPPED_BYTES)
        return -1;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(file_key, NULL, NULL, w + AEAD_NONCE,
                                                      wlen - AEAD_NONCE, (const unsigned char *)id,
                                                      strlen(id), w, wk);
}

void send_code_mac(const unsigned char *master, const char *id, const char *code,
                   unsigned char out[DB_HASH_BYTES])
{
    size_t il = strlen(id), cl = strlen(code);
    unsigned char *in = sodium_malloc(il + 1 + cl);
    if (in == NULL) {
        /* Out of locked memory: a MAC of nothing never matches a real one. */
        randombytes_buf(out, DB_HASH_BYTES);
        return;
    }
    memcpy(in, id, il);
    in[il] = 0;
    memcpy(in + il + 1, code, cl);
    keyed_hash(master, MK_CTX_CODE, in, il + 1 + cl, out);
    sodium_free(in);
}

void send_code_new(unsigned len, char *out)
{
    rand_string(out, len, RAND_ALPHA_UPPER);
}

int send_code_normalise(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '-' || c == '\t')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return -1;
        if (n + 1 >= outsz)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

static unsigned char *sealed_ad(const char *id, const char *field, size_t *len)
{
    size_t il = strlen(id), fl = strlen(field);
    unsigned char *ad = xmalloc(il + 1 + fl);
    memcpy(ad, id, il);
    ad[il] = 0;
    memcpy(ad + il + 1, field, fl);
    *len = il + 1 + fl;
    return ad;
}

void send_secret_seal(const unsigned char *master, const char *id, const char *field,
                      const char *text, unsigned char **out, size_t *outlen)
{
    unsigned char k[MASTERKEY_SUBKEY_BYTES];
    size_t tl = strlen(text), adlen;
    unsigned char *ad = sealed_ad(id, field, &adlen);
    unsigned char *c = xmalloc(AEAD_NONCE + tl + AEAD_ABYTES);
    masterkey_derive(master, MK_CTX_SEALED, 1, k);
    randombytes_buf(c, AEAD_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + AEAD_NONCE, NULL, (const unsigned char *)text,
                                               tl, ad, adlen, NULL, c, k);
    sodium_memzero(k, sizeof(k));
    free(ad);
    *out = c;
    *outlen = AEAD_NONCE + tl + AEAD_ABYTES;
}

char *send_secret_open(const unsigned char *master, const char *id, const char *field,
                       const unsigned char *c, size_t clen)
{
    if (c == NULL || clen < AEAD_NONCE + AEAD_ABYTES || clen > SEND_SECRET_MAX)
        return NULL;
    unsigned char k[MASTERKEY_SUBKEY_BYTES];
    size_t adlen;
    unsigned char *ad = sealed_ad(id, field, &adlen);
    size_t plen = clen - AEAD_NONCE - AEAD_ABYTES;
    char *p = xmalloc(plen + 1);
    masterkey_derive(master, MK_CTX_SEALED, 1, k);
    int r = crypto_aead_xchacha20poly1305_ietf_decrypt(
        (unsigned char *)p, NULL, NULL, c + AEAD_NONCE, clen - AEAD_NONCE, ad, adlen, c, k);
    sodium_memzero(k, sizeof(k));
    free(ad);
    if (r != 0 || memchr(p, '\0', plen) != NULL) {
        free(p);
        return NULL;
    }
    p[plen] = '\0';
    return p;
}

void apikey_hash(const unsigned char *master, const char *key, unsigned char out[DB_HASH_BYTES])
{
    keyed_hash(master, MK_CTX_APIKEY, key, strlen(key), out);
}
