/*
 * keys — user key pairs and Argon2id-wrapped secret keys (see keys.h and
 * docs/FORMATS.md).
 *
 * Where it sits: `user add` / `user passwd` create and re-wrap records;
 * `vault list/get` unwrap one to open items. The delivery path never calls
 * keys_unwrap: the server fills vaults with the public key only.
 *
 * Trusts: nothing in a record: magic, version, algorithm and the Argon2id
 * limits are checked against bounds before any work, and the record header
 * is authenticated as AEAD associated data, so a changed parameter fails
 * like a wrong password.
 */
#include "deliver/keys.h"
#include "lib/rand.h"

#include <sodium.h>
#include <string.h>

/* Largest Argon2id limits a record may ask for (the SENSITIVE preset). */
#define KEYS_MAX_OPSLIMIT crypto_pwhash_OPSLIMIT_SENSITIVE
#define KEYS_MAX_MEMLIMIT crypto_pwhash_MEMLIMIT_SENSITIVE

int keys_kdf_parse(const char *name, enum keys_kdf *out)
{
    if (strcmp(name, "interactive") == 0)
        *out = KEYS_KDF_INTERACTIVE;
    else if (strcmp(name, "moderate") == 0)
        *out = KEYS_KDF_MODERATE;
    else if (strcmp(name, "sensitive") == 0)
        *out = KEYS_KDF_SENSITIVE;
    else
        return -1;
    return 0;
}

static void kdf_limits(enum keys_kdf kdf, uint64_t *ops, uint64_t *mem)
{
    switch (kdf) {
    case KEYS_KDF_MODERATE:
        *ops = crypto_pwhash_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_MEMLIMIT_MODERATE;
        break;
    case KEYS_KDF_SENSITIVE:
        *ops = crypto_pwhash_OPSLIMIT_SENSITIVE;
        *mem = crypto_pwhash_MEMLIMIT_SENSITIVE;
        break;
    default:
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        break;
    }
}

void keys_pair_new(unsigned char pk[KEYS_PK_BYTES], unsigned char *sk)
{
    crypto_box_keypair(pk, sk);
}

void keys_recovery_code_new(char out[KEYS_RECOVERY_LEN + 1])
{
    rand_string(out, KEYS_RECOVERY_LEN, RAND_ALPHA_UPPER);
}

int keys_recovery_code_normalise(const char *in, char out[KEYS_RECOVERY_LEN + 1])
{
    size_t n = 0;
    for (; *in; in++) {
        char c = *in;
        if (c == ' ' || c == '-' || c == '\t')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (n >= KEYS_RECOVERY_LEN || strchr(RAND_ALPHA_UPPER, c) == NULL || c == '\0')
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == KEYS_RECOVERY_LEN ? 0 : -1;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Offsets inside the record (docs/FORMATS.md). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_ALG = 5,
    OFF_OPS = 6,
    OFF_MEM = 14,
    OFF_SALT = 22,
    OFF_NONCE = OFF_SALT + KEYS_WRAP_SALT_BYTES,
    OFF_CT = OFF_NONCE + KEYS_WRAP_NONCE_BYTES
};

static int derive(unsigned char *kek, const char *secret, size_t secret_len,
                  const unsigned char *salt, uint64_t ops, uint64_t mem)
{
    return crypto_pwhash(kek, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, secret, secret_len, salt,
                         ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13);
}

int keys_wrap(const unsigned char *sk, const char *secret, size_t secret_len, enum keys_kdf kdf,
              unsigned char out[KEYS_WRAP_BYTES])
{
    uint64_t ops, mem;
    kdf_limits(kdf, &ops, &mem);
    memcpy(out + OFF_MAGIC, KEYS_WRAP_MAGIC, 4);
    out[OFF_VERSION] = KEYS_WRAP_VERSION;
    out[OFF_ALG] = KEYS_WRAP_ALG_ARGON2ID_XCHACHA;
    put_u64(out + OFF_OPS, ops);
    put_u64(out + OFF_MEM, mem);
    randombytes_buf(out + OFF_SALT, KEYS_WRAP_SALT_BYTES);
    randombytes_buf(out + OFF_NONCE, KEYS_WRAP_NONCE_BYTES);

    unsigned char *kek = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (kek == NULL)
        return -1;
    if (derive(kek, secret, secret_len, out + OFF_SALT, ops, mem) != 0) {
        sodium_free(kek);
        return -1;
    }
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + OFF_CT, NULL, sk, KEYS_SK_BYTES, out,
                                               KEYS_WRAP_HEADER_BYTES, NULL, out + OFF_NONCE, kek);
    sodium_free(kek);
    return 0;
}

enum keys_unwrap_rc keys_unwrap(const unsigned char *rec, size_t len, const char *secret,
                                size_t secret_len, unsigned char *sk)
{
    if (len != KEYS_WRAP_BYTES || memcmp(rec + OFF_MAGIC, KEYS_WRAP_MAGIC, 4) != 0 ||
        rec[OFF_VERSION] != KEYS_WRAP_VERSION || rec[OFF_ALG] != KEYS_WRAP_ALG_ARGON2ID_XCHACHA)
        return KEYS_BAD_FORMAT;
    uint64_t ops = get_u64(rec + OFF_OPS), mem = get_u64(rec + OFF_MEM);
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > KEYS_MAX_OPSLIMIT ||
        mem < crypto_pwhash_MEMLIMIT_MIN || mem > KEYS_MAX_MEMLIMIT)
        return KEYS_BAD_FORMAT;

    unsigned char *kek = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (kek == NULL)
        return KEYS_NO_MEMORY;
    if (derive(kek, secret, secret_len, rec + OFF_SALT, ops, mem) != 0) {
        sodium_free(kek);
        return KEYS_NO_MEMORY;
    }
    int r = crypto_aead_xchacha20poly1305_ietf_decrypt(
        sk, NULL, NULL, rec + OFF_CT, KEYS_SK_BYTES + 16, rec, KEYS_WRAP_HEADER_BYTES,
        rec + OFF_NONCE, kek);
    sodium_free(kek);
    if (r != 0) {
        sodium_memzero(sk, KEYS_SK_BYTES);
        return KEYS_WRONG_SECRET;
    }
    return KEYS_OK;
}

int keys_match(const unsigned char pk[KEYS_PK_BYTES], const unsigned char *sk)
{
    unsigned char derived[KEYS_PK_BYTES];
    crypto_scalarmult_base(derived, sk);
    int same = sodium_memcmp(derived, pk, KEYS_PK_BYTES) == 0;
    sodium_memzero(derived, sizeof(derived));
    return same;
}
