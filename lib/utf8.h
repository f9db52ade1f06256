/*
 * utf8 — strict UTF-8 (RFC 3629): decoding one sequence, checking a
 * string, and a repaired copy. Shared by the MIME stage (decoded headers),
 * the SMTP receiver (SMTPUTF8 paths, EHLO U-labels) and the delivery
 * metadata (JSON must be valid UTF-8).
 */
#ifndef SEALPOST_UTF8_H
#define SEALPOST_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 sequence at p[0..n): returns its length (1-4) and sets
 * *cp, or 0 when the bytes are not valid UTF-8 (overlong, surrogate, above
 * U+10FFFF, truncated). */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);
/* Whether s[0..n) is valid UTF-8 throughout (NUL bytes count as valid). */
bool utf8_valid(const char *s, size_t n);
/* A malloc'ed, NUL-terminated copy of the C string s with every byte that
 * is not part of a valid sequence replaced by U+FFFD. */
char *utf8_repair(const char *s);

#endif
