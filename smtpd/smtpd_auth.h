/*
 * smtpd_auth — inbound message authentication: DKIM (libopendkim) and SPF
 * (libspf2), reported as one RFC 8601 Authentication-Results: header and as
 * plain fields for the item's sealed metadata.
 *
 * Called from a worker thread (never the event loop) once per received
 * message. Every DNS lookup of one check shares one deadline of
 * dns_timeout seconds: the call never blocks longer than that, and with no
 * resolver answering the results are temperror, not a stall.
 */
#ifndef SEALPOST_SMTPD_AUTH_H
#define SEALPOST_SMTPD_AUTH_H

#include <stdbool.h>

/* DKIM signatures evaluated per message; further ones are ignored. */
#define SMTPD_AUTH_DKIM_MAX_SIGS 4
/* A result keyword: "pass", "fail", "softfail", "neutral", "none",
 * "policy", "temperror", "permerror" (RFC 8601 2.7, RFC 7208 2.6). */
#define SMTPD_AUTH_RESULT_MAX 16
/* Domain names (RFC 1035: 253 characters) and DKIM selectors. */
#define SMTPD_AUTH_DOMAIN_MAX 256
/* The whole Authentication-Results: field, CRLF included. */
#define SMTPD_AUTH_HEADER_MAX 4096

struct smtpd_auth_request {
    const char *client_ip;   /* textual IPv4 or IPv6 address of the client */
    const char *helo;        /* HELO/EHLO argument as sent; may be NULL */
    const char *mail_from;   /* reverse-path without <>; "" or NULL: <> */
    const char *authserv_id; /* our host name: the A-R authserv-id */
    bool dkim;               /* [mailin] dkim_verify */
    bool spf;                /* [mailin] spf */
    unsigned dns_timeout;    /* [mailin] dns_timeout: seconds for the check */
    /* Test only; NULL in production. */
    const char *dkim_keyfile; /* libopendkim DKIM_QUERY_FILE key file */
    const char *spf_zonefile; /* SPF DNS answers from a file (spf_dns_zone) */
    const char *dns_server;   /* "IPv4:port" instead of /etc/resolv.conf */
};

/* One DKIM signature as evaluated. */
struct smtpd_auth_sig {
    char result[SMTPD_AUTH_RESULT_MAX];
    char domain[SMTPD_AUTH_DOMAIN_MAX];   /* d= */
    char selector[SMTPD_AUTH_DOMAIN_MAX]; /* s= */
};

/*
 * The outcome. Every string is NUL terminated and printable ASCII only
 * (anything else taken from the message or the peer became '?'); empty
 * where a check was disabled or had nothing to report.
 */
struct smtpd_auth_result {
    /* DKIM: the best signature (first passing one, else the first one);
     * dkim is "" when the check is disabled, "none" when unsigned. */
    char dkim[SMTPD_AUTH_RESULT_MAX];
    char dkim_domain[SMTPD_AUTH_DOMAIN_MAX];
    char dkim_selector[SMTPD_AUTH_DOMAIN_MAX];
    struct smtpd_auth_sig sigs[SMTPD_AUTH_DKIM_MAX_SIGS]; /* in message order */
    unsigned nsigs;
    /* SPF: "" when disabled. spf_domain is the domain checked; spf_helo
     * says the HELO identity was used (null reverse-path, RFC 7208 2.4). */
    char spf[SMTPD_AUTH_RESULT_MAX];
    char spf_domain[SMTPD_AUTH_DOMAIN_MAX];
    bool spf_helo;
    /* "Authentication-Results: id; ...\r\n", folded, every line < 998. */
    char header[SMTPD_AUTH_HEADER_MAX];
};

/* Once in main before threads start: libopendkim and libspf2 set-up.
 * 0 on success, -1 (logged) when a library cannot be initialised. */
int smtpd_auth_open(void) __attribute__((warn_unused_result));
/* At exit, after the last check. */
void smtpd_auth_close(void);

/*
 * Checks the message in msg_fd (read with pread from offset 0 to EOF:
 * headers and body with CRLF line ends as received, dot-stuffing removed)
 * and fills *out. Returns 0; -1 only when msg_fd cannot be read (out then
 * holds temperror for DKIM). Thread-safe; blocks at most dns_timeout
 * seconds plus CPU time.
 */
int smtpd_auth_check(const struct smtpd_auth_request *rq, int msg_fd, struct smtpd_auth_result *out)
    __attribute__((warn_unused_result));

#endif
