/*
 * rand — random identifiers and codes from libsodium's CSPRNG.
 *
 * Alphabets avoid look-alikes (no 0/o, 1/l/i). Ids are for blobs, items,
 * queue ids; addresses are the users' Mail-in local parts; recovery codes
 * are shown once and typed by people.
 */
#ifndef SEALPOST_RAND_H
#define SEALPOST_RAND_H

#include <stddef.h>

/* Lowercase unambiguous alphabet (31 symbols: a-z, 2-9, minus i l o). */
#define RAND_ALPHA_LOWER "abcdefghjkmnpqrstuvwxyz23456789"
/* Uppercase unambiguous alphabet for recovery codes (32 symbols). */
#define RAND_ALPHA_UPPER "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

/* Fills out[0..n) with symbols uniformly drawn from alphabet; out[n] = 0. */
void rand_string(char *out, size_t n, const char *alphabet);
/* A 20-character lowercase id (about 99 bits): item, blob and queue ids. */
#define RAND_ID_LEN 20
void rand_id(char out[RAND_ID_LEN + 1]);

#endif
