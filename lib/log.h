/*
 * log — one line per event, to stderr and/or syslog(LOG_MAIL).
 *
 * Lines read "ID: key=value, key=value" (Postfix style), the id being a
 * queue id, send id or "-". Anything that came from outside (HELO names,
 * addresses, file names, config values) passes log_scrub() first: only
 * printable ASCII survives, the rest becomes '?'. Secrets never reach these
 * functions (RULES.md 12).
 *
 * Three kinds of failure, three calls (STYLE.md 9): msg_warn for trouble
 * that is handled, msg_fatal for environment trouble that ends the program
 * (exit 1), msg_panic for a broken invariant (abort, with the function).
 */
#ifndef SEALPOST_LOG_H
#define SEALPOST_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* ident: program name; to_stderr/to_syslog choose sinks. Safe to call again. */
void log_open(const char *ident, int to_stderr, int to_syslog);
void log_set_level(enum log_level min);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * An event loop's lines: after log_defer(1), the calling thread's info and
 * warning lines to stderr are kept (at most LOG_DEFER_MAX bytes) until its
 * next log_flush, so that a reply leaves before the line that tells of it
 * and one write carries several lines. Errors are written at once, after
 * whatever was kept. log_defer(0) flushes and stops.
 */
#define LOG_DEFER_MAX (16 * 1024)
void log_defer(int on);
void log_flush(void);
#define msg_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define msg_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define msg_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define msg_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define msg_panic(fmt, ...) msg_panic_at(__func__, fmt, ##__VA_ARGS__)
void msg_panic_at(const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Copies at most dstsz-1 bytes of src[0..srclen) into dst, replacing every
 * byte that is not printable ASCII (or is '"' or '\\') by '?', and marks a
 * cut with "...". Returns dst. srclen may be (size_t)-1 for a C string.
 */
char *log_scrub(char *dst, size_t dstsz, const char *src, size_t srclen);
/* Scrubbed copy of an untrusted C string in a per-thread rotating buffer
 * (LOG_SCRUB_SLOTS slots of LOG_SCRUB_MAX bytes): for use inside one log call. */
#define LOG_SCRUB_MAX 256
#define LOG_SCRUB_SLOTS 8
const char *scrub(const char *s);

#endif
