/*
 * jsonw — writes one compact, ASCII-only JSON text (RFC 8259) into a buf,
 * value by value, for the records written on every delivery (the sealed
 * metadata of each item).
 *
 * The text is byte for byte what jansson's json_dumps(JSON_COMPACT |
 * JSON_ENSURE_ASCII) writes for the same document built in the same order
 * (tests/unit/test_jsonw.c holds it to that), so readers see no
 * difference; it costs a small fraction of building and dumping a jansson
 * tree (jansson 2.14 checks every container it dumps for cycles with a
 * hash table keyed by a printed pointer: 35 us for a 700-byte record here).
 * Everything that reads JSON still uses jansson.
 *
 * Strings are C strings taken as UTF-8: each byte that is not part of a
 * valid sequence is written as U+FFFD (as utf8_repair does). Errors (too
 * deep, keys and values out of place, the buffer's cap) are remembered
 * and reported once by jsonw_finish.
 */
#ifndef SEALPOST_JSONW_H
#define SEALPOST_JSONW_H

#include "lib/buf.h"

#include <stdbool.h>
#include <stdint.h>

/* Objects and arrays nested at most. */
#define JSONW_DEPTH_MAX 16

struct jsonw {
    struct buf b;
    int depth;                       /* open containers */
    bool in_object[JSONW_DEPTH_MAX]; /* per open container: object, or array */
    bool first[JSONW_DEPTH_MAX];     /* nothing written in it yet */
    bool after_key;                  /* a key was written: its value is next */
    bool failed;
};

/* max: cap on the text's length (0: BUF_DEFAULT_MAX). */
void jsonw_init(struct jsonw *w, size_t max);
void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
/* A member's name, inside an object; its value follows. */
void jsonw_key(struct jsonw *w, const char *key);
/* A string value; NULL writes null. */
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_null(struct jsonw *w);
/* A member: jsonw_key, then the value (a NULL string writes null). */
void jsonw_member_string(struct jsonw *w, const char *key, const char *s);
void jsonw_member_int(struct jsonw *w, const char *key, int64_t v);
/* The text (malloc'ed, NUL-terminated), or NULL when anything went wrong
 * or a container is still open; w is reset either way. */
char *jsonw_finish(struct jsonw *w);

#endif
