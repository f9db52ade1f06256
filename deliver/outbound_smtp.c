/*
 * outbound_smtp — one SMTP transaction with [outbound] relayhost, on
 * libetpan's client (libetpan stays in deliver/, STYLE.md 3).
 *
 * Where it sits: the runner (outbound_runner.c) calls outbound_smtp_send for
 * each mail it claimed; the result decides sent / deferred / failed.
 *
 * Trust and its limits:
 *  - The relay host is meant to be a local or otherwise trusted MTA (Postfix
 *    on 127.0.0.1:25) that does MX lookup, TLS policy and its own retries.
 *    STARTTLS is used when offered, but Debian's libetpan (GnuTLS build)
 *    does NOT verify the certificate: it protects against a passive reader,
 *    not against a man in the middle. Don't point relayhost across an
 *    untrusted network.
 *  - Replies after STARTTLS are not trusted from before it: Debian's 1.9.4
 *    carries the fix for CVE-2020-15953 (a reply pipelined behind "220" fails
 *    the handshake), and we EHLO again on the TLS channel (RULES.md 3), which
 *    libetpan does not do by itself.
 *  - The relay's reply text may quote the recipient address: only the reply
 *    code and enhanced status code are kept (queue, events, logs).
 *
 * libetpan facts that shape this file (docs/LIBRARIES.md 2.1): one mailsmtp
 * per thread and per attempt, never shared; the EHLO name is whatever
 * gethostname() says, with no setter — when that is not a dotted host name
 * (RFC 5321 4.1.1.1 wants an FQDN) we send the address literal of our end of
 * the connection instead (mailesmtp_ehlo_with_ip). The whole message is in
 * memory; libetpan dot-stuffs it on the way out, and it is already CRLF.
 *
 * Bounces: MAIL FROM carries RET=HDRS and ENVID=<queue id> and RCPT
 * NOTIFY=FAILURE when the relay offers DSN (RFC 3461), so a bounce never
 * returns the body with its link.
 *
 * Standards: RFC 5321, RFC 3207 (STARTTLS), RFC 3461 (DSN), RFC 3463
 * (enhanced status codes).
 */
#include "deliver/outbound_internal.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <libetpan/libetpan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest host name gethostname may give us. */
#define EHLO_NAME_MAX 255

/* "host:port" or "[v6]:port" (checked by the config parser) into parts. */
static int relay_split(const char *hostport, char **host, uint16_t *port)
{
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        return -1;
    const char *h = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    long p = strtol(colon + 1, NULL, 10);
    if (hl == 0 || p <= 0 || p > 65535)
        return -1;
    *host = xmemdup(h, hl + 1);
    (*host)[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* True when gethostname() gives a name fit for EHLO: dotted, LDH labels. */
static bool ehlo_name_usable(void)
{
    char name[EHLO_NAME_MAX + 1];
    if (gethostname(name, sizeof(name)) < 0)
        return false;
    name[EHLO_NAME_MAX] = '\0';
    if (strchr(name, '.') == NULL || name[0] == '.' || name[strlen(name) - 1] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

/* "550 5.1.1" from the session's last reply, or word when there was none. */
static void reply_format(mailsmtp *s, const char *word, char reply[OUTBOUND_REPLY_MAX])
{
    int code = s ? s->response_code : 0;
    if (code < 200 || code > 599) {
        snprintf(reply, OUTBOUND_REPLY_MAX, "%s", word);
        return;
    }
    /* Enhanced status code: class.subject.detail at the start of the text. */
    const char *t = s->response ? s->response : "";
    size_t n = 0, dots = 0;
    while (n < 12 && (isdigit((unsigned char)t[n]) || (t[n] == '.' && n > 0))) {
        dots += t[n] == '.';
        n++;
    }
    if (dots == 2 && n >= 5 && isdigit((unsigned char)t[n - 1]) && t[0] == '0' + code / 100)
        snprintf(reply, OUTBOUND_REPLY_MAX, "%d %.*s", code, (int)n, t);
    else
        snprintf(reply, OUTBOUND_REPLY_MAX, "%d", code);
}

/* Result of a failed step: 5xx is permanent only where it is about this
 * mail (MAIL, RCPT, DATA); before that it is about us or the relay, and a
 * fixed config lets every mail through again, so it is temporary. */
static enum outbound_result step_failed(mailsmtp *s, bool about_mail, const char *word,
                                        char reply[OUTBOUND_REPLY_MAX])
{
    reply_format(s, word, reply);
    int code = s->response_code;
    if (about_mail && code >= 500 && code <= 599)
        return OUTBOUND_PERM;
    return OUTBOUND_TEMP;
}

static int ehlo(mailsmtp *s, bool use_ip)
{
    int r = use_ip ? mailesmtp_ehlo_with_ip(s, 1) : mailesmtp_ehlo(s);
    if (r != MAILSMTP_NO_ERROR && s->response_code >= 500 && s->response_code <= 599)
        r = use_ip ? mailsmtp_helo_with_ip(s, 1) : mailsmtp_helo(s);
    return r;
}

enum outbound_result outbound_smtp_send(const struct config *cfg, const char *id,
                                        const struct outbound_record *rec,
                                        char reply[OUTBOUND_REPLY_MAX])
{
    char *host = NULL;
    uint16_t port = 0;
    if (relay_split(cfg->relayhost, &host, &port) < 0) {
        snprintf(reply, OUTBOUND_REPLY_MAX, "bad relayhost");
        return OUTBOUND_TEMP;
    }
    mailsmtp *s = mailsmtp_new(0, NULL);
    if (s == NULL) {
        free(host);
        snprintf(reply, OUTBOUND_REPLY_MAX, "out of memory");
        return OUTBOUND_TEMP;
    }
    mailsmtp_set_timeout(s, (time_t)cfg->smtp_timeout);
    bool use_ip = !ehlo_name_usable();
    bool tls = false;
    enum outbound_result res;

    int r = mailsmtp_socket_connect(s, host, port);
    if (r != MAILSMTP_NO_ERROR) {
        res = step_failed(s, false, r == MAILSMTP_ERROR_CONNECTION_REFUSED ? "connect" : "greeting",
                          reply);
        goto done;
    }
    if (ehlo(s, use_ip) != MAILSMTP_NO_ERROR) {
        res = step_failed(s, false, "ehlo", reply);
        goto quit;
    }
    if (s->esmtp & MAILSMTP_ESMTP_STARTTLS) {
        if (mailsmtp_socket_starttls(s) != MAILSMTP_NO_ERROR) {
            res = step_failed(s, false, "starttls", reply);
            goto done; /* the stream is in an unknown state: no QUIT */
        }
        tls = true;
        if (ehlo(s, use_ip) != MAILSMTP_NO_ERROR) {
            res = step_failed(s, false, "ehlo", reply);
            goto quit;
        }
    }
    r = s->esmtp ? mailesmtp_mail_size(s, rec->env_from, 0, id, rec->msg_len)
                 : mailsmtp_mail(s, rec->env_from);
    if (r != MAILSMTP_NO_ERROR) {
        res = step_failed(s, true, "mail", reply);
        goto quit;
    }
    r = s->esmtp ? mailesmtp_rcpt(s, rec->rcpt, MAILSMTP_DSN_NOTIFY_FAILURE, NULL)
                 : mailsmtp_rcpt(s, rec->rcpt);
    if (r != MAILSMTP_NO_ERROR) {
        res = step_failed(s, true, "rcpt", reply);
        goto quit;
    }
    if (mailsmtp_data(s) != MAILSMTP_NO_ERROR) {
        res = step_failed(s, true, "data", reply);
        goto quit;
    }
    if (mailsmtp_data_message(s, rec->msg, rec->msg_len) != MAILSMTP_NO_ERROR) {
        res = step_failed(s, true, "data", reply);
        goto quit;
    }
    reply_format(s, "250", reply);
    res = OUTBOUND_SENT;
quit:
    mailsmtp_quit(s);
done:
    msg_debug("%s: relay=%s, tls=%s, ehlo=%s, reply=%s", id, scrub(cfg->relayhost),
              tls ? "yes" : "no", use_ip ? "address-literal" : "hostname", reply);
    mailsmtp_free(s);
    free(host);
    return res;
}
