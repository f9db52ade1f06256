/*
 * masterkey — the server's 32-byte secret ([server] master_key), kept outside
 * the data directory. Parts never use it directly: each derives its own
 * subkey (crypto_kdf_derive_from_key) with a context of its own, e.g.
 * "sp-token" for link-token hashes, "sp-code " for code MACs, "sp-queue" for
 * the outbound queue, "sp-apiky" for API key hashes.
 */
#ifndef SEALPOST_MASTERKEY_H
#define SEALPOST_MASTERKEY_H

#include <stdint.h>

#define MASTERKEY_BYTES 32
#define MASTERKEY_SUBKEY_BYTES 32

/* Creates the file (0600, exclusive) with fresh random bytes; 0, or -1 with errno
 * (EEXIST when it is there already). */
int masterkey_create(const char *path) __attribute__((warn_unused_result));
/* Loads the key into locked memory (sodium_malloc'd, MASTERKEY_BYTES); NULL + log on error. */
unsigned char *masterkey_load(const char *path);
void masterkey_free(unsigned char *key);
/* out: MASTERKEY_SUBKEY_BYTES; ctx: exactly 8 characters. */
void masterkey_derive(const unsigned char *key, const char ctx[8], uint64_t id, unsigned char *out);

#endif
