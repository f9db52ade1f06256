/*
 * status — the outcomes every part reports, and their one mapping to SMTP
 * replies (with RFC 3463 enhanced codes), sysexits(3) codes for the local
 * delivery agent, and HTTP statuses (STYLE.md 7: replies are never
 * hand-written at the failure site).
 */
#ifndef SEALPOST_STATUS_H
#define SEALPOST_STATUS_H

enum sp_status {
    SP_OK = 0,
    SP_UNKNOWN_USER,   /* 550 5.1.1 / EX_NOUSER */
    SP_DISABLED_USER,  /* 550 5.2.1 */
    SP_RELAY_DENIED,   /* 554 5.7.1: not one of our domains */
    SP_OVER_QUOTA,     /* 452 4.2.2 */
    SP_TOO_BIG,        /* 552 5.3.4 */
    SP_TOO_MANY_RCPTS, /* 452 4.5.3 */
    SP_TEMPFAIL,       /* 451 4.3.0: local error, try again */
    SP_DISK_FULL,      /* 452 4.3.1 */
    SP_BAD_ADDRESS,    /* 501 5.1.3: syntax of an address */
    SP_BAD_INPUT,      /* 554 5.6.0: the message cannot be taken as is */
    SP_NO_RCPTS,       /* 554 5.5.1 */
    /* SMTP protocol replies (smtpd). */
    SP_SMTP_GREETING,        /* 220 (text follows the host name) */
    SP_SMTP_BYE,             /* 221 2.0.0 */
    SP_SMTP_HELP,            /* 214 2.0.0 */
    SP_SMTP_VRFY,            /* 252 2.0.0 */
    SP_SMTP_SENDER_OK,       /* 250 2.1.0 */
    SP_SMTP_RCPT_OK,         /* 250 2.1.5 */
    SP_SMTP_START_DATA,      /* 354 */
    SP_SMTP_START_TLS,       /* 220 2.0.0 */
    SP_SMTP_SHUTDOWN,        /* 421 4.3.2 */
    SP_SMTP_TIMEOUT,         /* 421 4.4.2 */
    SP_SMTP_TOO_SLOW,        /* 421 4.4.2: below the minimum data rate */
    SP_SMTP_DEADLINE,        /* 421 4.4.2: session deadline */
    SP_SMTP_TOO_MANY_CONN,   /* 421 4.7.0 */
    SP_SMTP_TOO_MANY_ERRORS, /* 421 4.7.0 */
    SP_SMTP_TLS_UNAVAILABLE, /* 454 4.7.0 */
    SP_SMTP_UNRECOGNIZED,    /* 500 5.5.2 */
    SP_SMTP_LINE_TOO_LONG,   /* 500 5.5.2 */
    SP_SMTP_SYNTAX,          /* 501 5.5.4 */
    SP_SMTP_NOT_IMPLEMENTED, /* 502 5.5.1 */
    SP_SMTP_BAD_SEQUENCE,    /* 503 5.5.1 */
    SP_SMTP_NEED_HELO,       /* 503 5.5.1 */
    SP_SMTP_NEED_MAIL,       /* 503 5.5.1 */
    SP_SMTP_NESTED_MAIL,     /* 503 5.5.1 */
    SP_SMTP_NEED_UTF8,       /* 553 5.6.7: non-ASCII address without SMTPUTF8 */
    SP_SMTP_BARE_EOL,        /* 554 5.5.0: bare CR or LF (SMTP smuggling) */
    SP_SMTP_PIPELINING,      /* 554 5.5.0: sent past a sync point */
    SP_SMTP_EARLY_TALKER,    /* 554 5.5.0: talked before the greeting */
    SP_SMTP_NUL,             /* 554 5.6.0: NUL byte */
    SP_SMTP_BAD_PARAM,       /* 555 5.5.4: unknown MAIL/RCPT parameter */
    SP_STATUS_MAX
};

struct sp_status_info {
    const char *name;     /* short name for logs and metrics */
    int smtp;             /* SMTP reply code */
    const char *enhanced; /* RFC 3463 code */
    const char *text;     /* human text of the reply */
    int sysexit;          /* for sealpost deliver */
    int http;             /* HTTP status */
};

const struct sp_status_info *sp_status_info(enum sp_status s);
const char *sp_status_name(enum sp_status s);

#endif
