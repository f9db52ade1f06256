/*
 * log — event logging (see log.h). Writes to stderr with a timestamp and/or
 * to syslog LOG_MAIL. Trusts its callers to have scrubbed untrusted text.
 */
#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "sealpost";
static int log_to_stderr = 1;
static int log_to_syslog = 0;
static enum log_level log_min = LOG_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Our pid for the stderr prefix: glibc does not cache getpid(), and a
 * session logs a handful of lines. A forked child (none of ours logs,
 * but a library's might) finds it cleared and asks again. */
static _Atomic pid_t log_pid;
static pthread_once_t log_pid_once = PTHREAD_ONCE_INIT;

static void log_pid_forget(void)
{
    log_pid = 0;
}

static void log_pid_watch(void)
{
    pthread_atfork(NULL, NULL, log_pid_forget);
}

/* Longest log line we write; longer ones are cut (the cut is marked). */
#define LOG_LINE_MAX 2048
/* Timestamp, ident, pid and prefix in front of a line. */
#define LOG_PREFIX_MAX 256

void log_open(const char *ident, int to_stderr, int to_syslog)
{
    log_ident = ident;
    log_to_stderr = to_stderr;
    if (log_to_syslog)
        closelog();
    log_to_syslog = to_syslog;
    if (to_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    const char *lvl = getenv("SEALPOST_LOG_LEVEL");
    if (lvl && strcmp(lvl, "debug") == 0)
        log_min = LOG_LVL_DEBUG;
}

void log_set_level(enum log_level min)
{
    log_min = min;
}

/* Writes all of p[0..n) to stderr (a pipe may take less at a time). */
static void log_write(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to say so */
        p += w;
        n -= (size_t)w;
    }
}

/* The calling thread's kept lines (log_defer). */
static _Thread_local char *defer_buf;
static _Thread_local size_t defer_len;

/* Under log_lock. */
static void defer_write(void)
{
    if (defer_len > 0)
        log_write(defer_buf, defer_len);
    defer_len = 0;
}

void log_flush(void)
{
    if (defer_len == 0)
        return;
    pthread_mutex_lock(&log_lock);
    defer_write();
    pthread_mutex_unlock(&log_lock);
}

void log_defer(int on)
{
    if (on && defer_buf == NULL) {
        defer_buf = malloc(LOG_DEFER_MAX);
        defer_len = 0;
    } else if (!on && defer_buf != NULL) {
        log_flush();
        free(defer_buf);
        defer_buf = NULL;
    }
}

static void log_emit(enum log_level lvl, const char *prefix, const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    static const char *const name[] = {"debug: ", "", "warning: ", "error: "};
    char line[LOG_LINE_MAX];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n >= (int)sizeof(line))
        memcpy(line + sizeof(line) - 4, "...", 4);
    /* A format argument might still carry a line break: never split a line. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_once(&log_pid_once, log_pid_watch);
    if (log_to_stderr) {
        pid_t pid = atomic_load_explicit(&log_pid, memory_order_relaxed);
        if (pid == 0) {
            pid = getpid();
            atomic_store_explicit(&log_pid, pid, memory_order_relaxed);
        }
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        char out[LOG_LINE_MAX + LOG_PREFIX_MAX];
        int k =
            snprintf(out, sizeof(out), "%s.%03ldZ %s[%ld]: %s%s%s\n", when, ts.tv_nsec / 1000000L,
                     log_ident, (long)pid, prefix ? prefix : "", name[lvl], line);
        size_t len = k < 0 ? 0 : (size_t)k;
        if (len >= sizeof(out)) { /* cut: still one line */
            len = sizeof(out) - 1;
            out[len - 1] = '\n';
        }
        if (defer_buf != NULL && lvl < LOG_LVL_ERROR && prefix == NULL && len <= LOG_DEFER_MAX) {
            if (defer_len + len > LOG_DEFER_MAX)
                log_flush();
            memcpy(defer_buf + defer_len, out, len);
            defer_len += len;
        } else {
            pthread_mutex_lock(&log_lock);
            defer_write(); /* what this thread kept comes first */
            log_write(out, len);
            pthread_mutex_unlock(&log_lock);
        }
    }
    if (log_to_syslog) {
        pthread_mutex_lock(&log_lock);
        syslog(prio[lvl], "%s%s%s", prefix ? prefix : "", name[lvl], line);
        pthread_mutex_unlock(&log_lock);
    }
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(lvl, NULL, fmt, ap);
    va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_ERROR, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void msg_panic_at(const char *fn, const char *fmt, ...)
{
    char pfx[128];
    snprintf(pfx, sizeof(pfx), "panic: %s: ", fn);
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_ERROR, pfx, fmt, ap);
    va_end(ap);
    abort();
}

char *log_scrub(char *dst, size_t dstsz, const char *src, size_t srclen)
{
    size_t i = 0, o = 0;
    if (dstsz == 0)
        return dst;
    if (src == NULL)
        src = "(null)", srclen = 6;
    if (srclen == (size_t)-1)
        srclen = strlen(src);
    for (; i < srclen && o + 1 < dstsz; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    dst[o] = '\0';
    if (i < srclen && dstsz > 4)
        memcpy(dst + dstsz - 4, "...", 4);
    return dst;
}

const char *scrub(const char *s)
{
    static __thread char slots[LOG_SCRUB_SLOTS][LOG_SCRUB_MAX];
    static __thread unsigned next;
    char *d = slots[next++ % LOG_SCRUB_SLOTS];
    return log_scrub(d, LOG_SCRUB_MAX, s, (size_t)-1);
}
