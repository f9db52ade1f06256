/*
 * vault — the vault item format: a self-describing encrypted container of
 * parts (docs/FORMATS.md "Vault item").
 *
 * An item has one random 32-byte key, sealed to the user's X25519 public key
 * (crypto_box_seal, once per item). Part i is encrypted with the subkey
 * crypto_kdf_derive_from_key(i + 1, "spvault1", item key) as a
 * crypto_secretstream_xchacha20poly1305 stream whose every chunk carries the
 * container header and part header as associated data, and which ends with a
 * FINAL tag (truncation is detected). Part 0 is the metadata record, stored
 * in the database in the same container format; parts 1.. are in the blob
 * file: 1 is the original message, then the parsed bodies and attachments.
 *
 * Readers refuse unknown magic or versions, tampered bytes, truncation and
 * data after FINAL (STYLE.md 12–13). Nothing decrypted is handed out before
 * its chunk authenticated.
 */
#ifndef SEALPOST_VAULT_H
#define SEALPOST_VAULT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VAULT_MAGIC "SEALPOST"
#define VAULT_VERSION 1
#define VAULT_KIND_ITEM 1
#define VAULT_ID_LEN 20
#define VAULT_HEADER_BYTES 32 /* magic 8, version 1, kind 1, reserved 2, id 20 */
#define VAULT_PART_MAGIC "PART"
#define VAULT_PART_HEADER_BYTES 12 /* magic 4, index 4, chunk size 4 (then stream header) */
#define VAULT_CHUNK_BYTES (64 * 1024)
#define VAULT_KEY_BYTES 32
#define VAULT_SEALED_KEY_BYTES (VAULT_KEY_BYTES + 48) /* crypto_box_SEALBYTES */
#define VAULT_KDF_CONTEXT "spvault1"
#define VAULT_PART_META 0
#define VAULT_PART_ORIGINAL 1
/* Version of the metadata record (part 0, JSON) written now: 2 may hold
 * parts stored inside another ("slice"), 1 never does. Readers take both. */
#define VAULT_META_VERSION 2

/* Seals a fresh item key to pk; key must be sodium_malloc'd. */
void vault_key_new(unsigned char *key);
void vault_key_seal(const unsigned char *key, const unsigned char pk[32],
                    unsigned char out[VAULT_SEALED_KEY_BYTES]);
/* 0, or -1 when the sealed key does not open with this key pair. */
int vault_key_open(const unsigned char *sealed, size_t len, const unsigned char pk[32],
                   const unsigned char *sk, unsigned char *key) __attribute__((warn_unused_result));

/* ---- writer ---- */

struct vault_writer;
/*
 * Starts a container on f (a file opened for writing, or open_memstream).
 * key is copied into locked memory; id is VAULT_ID_LEN characters.
 */
struct vault_writer *vault_writer_new(FILE *f, const char *id, const unsigned char *key);
int vault_part_begin(struct vault_writer *w, uint32_t index) __attribute__((warn_unused_result));
int vault_part_write(struct vault_writer *w, const void *p, size_t n)
    __attribute__((warn_unused_result));
int vault_part_end(struct vault_writer *w) __attribute__((warn_unused_result));
/* Bytes written to f so far (container header and finished parts). */
uint64_t vault_writer_offset(const struct vault_writer *w);
/* Plaintext bytes of the current or last part. */
uint64_t vault_writer_part_size(const struct vault_writer *w);
/*
 * Forgets everything written after offset (a part boundary returned by
 * vault_writer_offset) so the container ends there; f must be a real file.
 */
int vault_writer_rewind(struct vault_writer *w, uint64_t offset)
    __attribute__((warn_unused_result));
/* Flushes f; frees the writer (not f) and wipes the keys. */
int vault_writer_free(struct vault_writer *w);

/* ---- reader ---- */

enum vault_rc {
    VAULT_OK = 0,
    VAULT_NOT_FOUND = -1,  /* no such part */
    VAULT_BAD_FORMAT = -2, /* magic, version, kind, id or framing wrong */
    VAULT_TAMPERED = -3,   /* authentication failed */
    VAULT_TRUNCATED = -4,  /* stream ended without FINAL */
    VAULT_IO = -5,
    VAULT_SINK = -6 /* the sink asked to stop */
};
const char *vault_rc_str(enum vault_rc rc);

/*
 * Decrypts part index of the container read from f (from its start) and
 * hands each authenticated chunk to sink. id must match the container's.
 */
enum vault_rc vault_part_read(FILE *f, const char *id, const unsigned char *key, uint32_t index,
                              int (*sink)(void *arg, const void *p, size_t n), void *arg)
    __attribute__((warn_unused_result));

/*
 * Hands sink the bytes [off, off + len) of part index, in pieces: a part
 * the metadata says is stored inside another one (a body that is, byte for
 * byte, a stretch of the original; docs/FORMATS.md "slice"). The part is
 * decrypted from its start up to the end of the stretch; every byte handed
 * out has authenticated. VAULT_BAD_FORMAT when the part is shorter than
 * off + len.
 */
enum vault_rc vault_part_read_slice(FILE *f, const char *id, const unsigned char *key,
                                    uint32_t index, uint64_t off, uint64_t len,
                                    int (*sink)(void *arg, const void *p, size_t n), void *arg)
    __attribute__((warn_unused_result));

/* Convenience for small parts (metadata): seal buf as part index into a malloc'd container. */
int vault_seal_buf(const char *id, const unsigned char *key, uint32_t index, const void *buf,
                   size_t len, unsigned char **out, size_t *outlen)
    __attribute__((warn_unused_result));
/* Opens a container in memory; *out is malloc'd and NUL-terminated (max bytes). */
enum vault_rc vault_open_buf(const unsigned char *c, size_t clen, const char *id,
                             const unsigned char *key, uint32_t index, size_t max, char **out,
                             size_t *outlen) __attribute__((warn_unused_result));

/* ---- pull reader (for streaming a part out, e.g. an HTTP download) ---- */

struct vault_reader;
/*
 * Positions a reader on part index of the container in f (same checks as
 * vault_part_read). NULL with *rc set when the container or part is not
 * right. f stays the caller's; key is copied into locked memory.
 */
struct vault_reader *vault_reader_open(FILE *f, const char *id, const unsigned char *key,
                                       uint32_t index, enum vault_rc *rc);
/*
 * Copies up to n bytes of authenticated plaintext into p (fewer only at
 * the end of the part or before an error; whole chunks are decrypted
 * straight into p when they fit, so n of a few chunks saves a copy).
 * Returns the bytes copied (> 0), 0 once the part ended with its FINAL
 * tag, or a negative enum vault_rc (tampered, truncated, I/O); after an
 * error every call returns it again.
 */
long vault_reader_read(struct vault_reader *r, void *p, size_t n);
/* Wipes and frees the reader (not f). */
void vault_reader_close(struct vault_reader *r);

#endif
