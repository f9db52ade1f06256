/*
 * buf — a growable, length-tracked byte buffer with a hard cap.
 *
 * Used instead of strcat/sprintf everywhere. The data is always NUL
 * terminated (not counted in len) so it can be used as a C string when it
 * holds text. An append that would pass the cap fails with -1 and leaves
 * the buffer unchanged: callers turn that into "too big", never into a
 * silent truncation.
 */
#ifndef SEALPOST_BUF_H
#define SEALPOST_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len; 0 means BUF_DEFAULT_MAX */
};

#define BUF_DEFAULT_MAX ((size_t)1 << 30)
#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Wipes the contents (sodium_memzero) before freeing: for secrets. */
void buf_free_secret(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int buf_puts(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_putc(struct buf *b, char c) __attribute__((warn_unused_result));
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0), warn_unused_result));
/* Appends s with the HTML special characters < > & " ' escaped. */
int buf_put_html(struct buf *b, const char *s) __attribute__((warn_unused_result));
/* Hands the data to the caller (NUL terminated, never NULL); b is reset. */
char *buf_steal(struct buf *b);
const char *buf_cstr(struct buf *b);

#endif
