/*
 * smtpd_reply — every reply a session sends comes from the one status table
 * (lib/status.c, STYLE.md 7): "CODE ENHANCED TEXT" (RFC 2034 enhanced codes
 * on all but the greeting and the EHLO lines), multi-line EHLO (RFC 5321
 * 4.2.1), and our Received: header (RFC 5321 4.4, RFC 3848 keywords,
 * RFC 6531 UTF8SMTP keywords).
 *
 * Replies are queued in the session's output buffer and written by the I/O
 * loop; a batch of pipelined commands gets its replies in one write
 * (RFC 2920). Text from the client never goes into a reply. Into the
 * Received: header it goes only through header_clean(): no CR, LF, NUL or
 * anything that could end a comment or the header (RULES.md 13).
 */
#include "smtpd/smtpd_int.h"

#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Longest reply line we build (RFC 5321 4.5.3.1.5: 512 with CRLF). */
#define REPLY_LINE_MAX 512

static void reply_queue(struct smtpd_session *s, const char *line, size_t n)
{
    if (s->out.max == 0)
        buf_init(&s->out, 0);
    if (buf_append(&s->out, line, n) < 0)
        msg_panic("output buffer over its cap");
}

static void reply_format(struct smtpd_session *s, enum sp_status st, const char *extra)
{
    const struct sp_status_info *si = sp_status_info(st);
    char line[REPLY_LINE_MAX];
    int n;
    if (si->enhanced)
        n = snprintf(line, sizeof(line), "%d %s %s%s\r\n", si->smtp, si->enhanced, si->text, extra);
    else
        n = snprintf(line, sizeof(line), "%d %s%s\r\n", si->smtp, si->text, extra);
    if (n < 0 || (size_t)n >= sizeof(line))
        msg_panic("reply for %s too long", si->name);
    reply_queue(s, line, (size_t)n);
    if (si->smtp >= 400)
        s->errors++;
}

void smtpd_reply(struct smtpd_session *s, enum sp_status st)
{
    reply_format(s, st, "");
}

void smtpd_reply_extra(struct smtpd_session *s, enum sp_status st, const char *fmt, ...)
{
    char extra[REPLY_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof(extra), fmt, ap);
    va_end(ap);
    reply_format(s, st, extra);
}

void smtpd_reply_greeting(struct smtpd_session *s)
{
    const struct sp_status_info *si = sp_status_info(SP_SMTP_GREETING);
    char line[REPLY_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%d %s %s\r\n", si->smtp, s->cfg->hostname, si->text);
    if (n < 0 || (size_t)n >= sizeof(line))
        msg_panic("greeting too long");
    reply_queue(s, line, (size_t)n);
}

void smtpd_reply_helo(struct smtpd_session *s)
{
    char line[REPLY_LINE_MAX];
    int n = snprintf(line, sizeof(line), "250 %s\r\n", s->cfg->hostname);
    if (n < 0 || (size_t)n >= sizeof(line))
        msg_panic("helo line too long");
    reply_queue(s, line, (size_t)n);
}

void smtpd_reply_ehlo(struct smtpd_session *s)
{
    /* Keywords after the host name line; STARTTLS only when offered. */
    const char *kw[8];
    char size[48];
    size_t k = 0;
    kw[k++] = "PIPELINING";
    snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)s->cfg->message_size_limit);
    kw[k++] = s->cfg->message_size_limit ? size : "SIZE";
    kw[k++] = "8BITMIME";
    kw[k++] = "ENHANCEDSTATUSCODES";
    kw[k++] = "SMTPUTF8";
    if (!s->tls && smtpd_tls_offered(s->srv))
        kw[k++] = "STARTTLS";
    char line[REPLY_LINE_MAX];
    int n = snprintf(line, sizeof(line), "250-%s\r\n", s->cfg->hostname);
    if (n < 0 || (size_t)n >= sizeof(line))
        msg_panic("ehlo line too long");
    reply_queue(s, line, (size_t)n);
    for (size_t i = 0; i < k; i++) {
        n = snprintf(line, sizeof(line), "250%c%s\r\n", i + 1 == k ? ' ' : '-', kw[i]);
        reply_queue(s, line, (size_t)n);
    }
}

void smtpd_reply_raw(int fd, enum sp_status st)
{
    const struct sp_status_info *si = sp_status_info(st);
    char line[REPLY_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%d %s %s\r\n", si->smtp, si->enhanced ? si->enhanced : "",
                     si->text);
    if (n > 0 && (size_t)n < sizeof(line)) {
        /* Best effort on a fresh socket: the kernel buffer takes it. */
        ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
}

/*
 * Copies untrusted text for a header comment or clause: printable ASCII
 * without ( ) < > ; \ " and spaces, which could end or change the clause;
 * everything else (CR, LF, NUL, UTF-8, controls) becomes '?'.
 */
static void header_clean(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (; in && *in && o + 1 < outsz; in++) {
        unsigned char c = (unsigned char)*in;
        bool ok = c > 0x20 && c < 0x7f && strchr("()<>;\\\"", c) == NULL;
        out[o++] = ok ? (char)c : '?';
    }
    out[o] = '\0';
}

/* A mailbox for "for <…>": ASCII printable only, else left out. */
static bool rcpt_printable(const char *a)
{
    for (; *a; a++) {
        unsigned char c = (unsigned char)*a;
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
            return false;
    }
    return true;
}

char *smtpd_received_new(const struct smtpd_session *s, const char *tid, const char *tls_version,
                         const char *tls_cipher)
{
    char helo[SMTPD_HELO_MAX + 1];
    char date[64];
    struct buf b;
    struct tm tm;
    time_t now = time(NULL);
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    header_clean(helo, sizeof(helo), s->helo ? s->helo : "unknown");

    /* RFC 3848 / RFC 6531 protocol keywords. */
    const char *with;
    if (s->smtputf8)
        with = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
    else if (!s->esmtp)
        with = s->tls ? "SMTPS" : "SMTP";
    else
        with = s->tls ? "ESMTPS" : "ESMTP";

    buf_init(&b, 4096);
    int rc = buf_printf(&b, "Received: from %s (unknown [%s])\r\n", helo, s->addr);
    if (s->tls && tls_version && tls_cipher) {
        char v[64], c[128];
        header_clean(v, sizeof(v), tls_version);
        header_clean(c, sizeof(c), tls_cipher);
        int bits = smtpd_tls_bits(s);
        rc |= buf_printf(&b, "\t(using %s with cipher %s (%d/%d bits))\r\n", v, c, bits, bits);
    }
    rc |= buf_printf(&b, "\tby %s (sealpost) with %s id %s", s->cfg->hostname, with, tid);
    if (s->nrcpts == 1 && rcpt_printable(s->rcpts[0].address))
        rc |= buf_printf(&b, "\r\n\tfor <%s>", s->rcpts[0].address);
    rc |= buf_printf(&b, "; %s\r\n", date);
    if (rc != 0)
        msg_panic("Received header over its cap");
    return buf_steal(&b);
}
