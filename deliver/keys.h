/*
 * keys — a user's X25519 key pair and the wrapped records of its secret key.
 *
 * The server keeps the public key in clear (it fills vaults) and the secret
 * key only wrapped: once under a key derived (Argon2id) from the password,
 * once under a key derived from the 36-character recovery code. Layout of
 * the record: docs/FORMATS.md "Wrapped key record".
 */
#ifndef SEALPOST_KEYS_H
#define SEALPOST_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_PK_BYTES 32
#define KEYS_SK_BYTES 32
#define KEYS_RECOVERY_LEN 36
/* Recovery codes use the unambiguous upper-case alphabet of lib/rand.h. */

#define KEYS_WRAP_MAGIC "SPWK"
#define KEYS_WRAP_VERSION 1
#define KEYS_WRAP_ALG_ARGON2ID_XCHACHA 1
#define KEYS_WRAP_SALT_BYTES 16
#define KEYS_WRAP_NONCE_BYTES 24
/* magic 4, version 1, alg 1, opslimit 8, memlimit 8, salt, nonce, sk + tag 16 */
#define KEYS_WRAP_HEADER_BYTES (4 + 1 + 1 + 8 + 8 + KEYS_WRAP_SALT_BYTES + KEYS_WRAP_NONCE_BYTES)
#define KEYS_WRAP_BYTES (KEYS_WRAP_HEADER_BYTES + KEYS_SK_BYTES + 16)

enum keys_kdf { KEYS_KDF_INTERACTIVE, KEYS_KDF_MODERATE, KEYS_KDF_SENSITIVE };
/* "interactive" | "moderate" | "sensitive" -> 0, else -1. */
int keys_kdf_parse(const char *name, enum keys_kdf *out);

/* New key pair; sk must be sodium_malloc'd memory of KEYS_SK_BYTES. */
void keys_pair_new(unsigned char pk[KEYS_PK_BYTES], unsigned char *sk);

/* A fresh recovery code, KEYS_RECOVERY_LEN chars + NUL. */
void keys_recovery_code_new(char out[KEYS_RECOVERY_LEN + 1]);
/*
 * Normalises a typed recovery code: drops spaces and dashes, upper-cases,
 * checks length and alphabet. Returns 0 or -1. out has KEYS_RECOVERY_LEN+1.
 */
int keys_recovery_code_normalise(const char *in, char out[KEYS_RECOVERY_LEN + 1]);

/* Wraps sk under secret; out must have KEYS_WRAP_BYTES. 0 or -1 (out of memory). */
int keys_wrap(const unsigned char *sk, const char *secret, size_t secret_len, enum keys_kdf kdf,
              unsigned char out[KEYS_WRAP_BYTES]) __attribute__((warn_unused_result));

enum keys_unwrap_rc {
    KEYS_OK = 0,
    KEYS_WRONG_SECRET = -1, /* authentication failed: wrong secret or tampered */
    KEYS_BAD_FORMAT = -2,   /* not a record we know (magic, version, size, limits) */
    KEYS_NO_MEMORY = -3
};
/* Unwraps into sk (sodium_malloc'd, KEYS_SK_BYTES). */
enum keys_unwrap_rc keys_unwrap(const unsigned char *rec, size_t len, const char *secret,
                                size_t secret_len, unsigned char *sk)
    __attribute__((warn_unused_result));

/* True if sk is the secret key of pk. */
int keys_match(const unsigned char pk[KEYS_PK_BYTES], const unsigned char *sk);

#endif
