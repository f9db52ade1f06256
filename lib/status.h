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
