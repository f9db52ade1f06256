/*
 * parse — strict parsing of the value types used in config, CLI and API:
 * sizes ("10K 50M 2G", powers of 1024), durations ("30s 10m 24h 7d"),
 * booleans (yes/no/true/false/on/off/1/0) and unsigned integers.
 *
 * Every function takes the whole string: trailing junk, overflow, empty
 * input and signs are errors (return -1), never a silent truncation.
 */
#ifndef SEALPOST_PARSE_H
#define SEALPOST_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int parse_uint(const char *s, uint64_t *out) __attribute__((warn_unused_result));
int parse_size(const char *s, uint64_t *out) __attribute__((warn_unused_result));
/* Durations are in seconds; a bare number means seconds. */
int parse_duration(const char *s, uint64_t *out) __attribute__((warn_unused_result));
int parse_bool(const char *s, bool *out) __attribute__((warn_unused_result));

/* Formats for humans: "10M", "7d" when exact, else the plain number. */
void format_size(uint64_t v, char *out, size_t outsz);
void format_duration(uint64_t secs, char *out, size_t outsz);

#endif
