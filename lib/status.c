/*
 * status — the single status table (see status.h).
 */
#include "lib/status.h"
#include "lib/log.h"

#include <sysexits.h>

static const struct sp_status_info status_table[SP_STATUS_MAX] = {
    [SP_OK] = {"ok", 250, "2.0.0", "Ok", EX_OK, 200},
    [SP_UNKNOWN_USER] = {"unknown_user", 550, "5.1.1", "Recipient address rejected: unknown",
                         EX_NOUSER, 404},
    [SP_DISABLED_USER] = {"disabled_user", 550, "5.2.1", "Mailbox disabled", EX_NOUSER, 403},
    [SP_RELAY_DENIED] = {"relay_denied", 554, "5.7.1", "Relay access denied", EX_NOUSER, 403},
    [SP_OVER_QUOTA] = {"over_quota", 452, "4.2.2", "Mailbox over quota, try again later",
                       EX_TEMPFAIL, 507},
    [SP_TOO_BIG] = {"too_big", 552, "5.3.4", "Message too big", EX_DATAERR, 413},
    [SP_TOO_MANY_RCPTS] = {"too_many_recipients", 452, "4.5.3", "Too many recipients", EX_TEMPFAIL,
                           422},
    [SP_TEMPFAIL] = {"tempfail", 451, "4.3.0", "Local error, try again later", EX_TEMPFAIL, 503},
    [SP_DISK_FULL] = {"disk_full", 452, "4.3.1", "Insufficient system storage", EX_TEMPFAIL, 507},
    [SP_BAD_ADDRESS] = {"bad_address", 501, "5.1.3", "Bad address syntax", EX_USAGE, 422},
    [SP_BAD_INPUT] = {"bad_input", 554, "5.6.0", "Message cannot be accepted", EX_DATAERR, 422},
    [SP_NO_RCPTS] = {"no_recipients", 554, "5.5.1", "No valid recipients", EX_USAGE, 422},
    /* SMTP protocol replies: the sysexit/HTTP columns are not used for these. */
    [SP_SMTP_GREETING] = {"greeting", 220, NULL, "ESMTP sealpost", EX_OK, 200},
    [SP_SMTP_BYE] = {"bye", 221, "2.0.0", "Bye", EX_OK, 200},
    [SP_SMTP_HELP] = {"help", 214, "2.0.0",
                      "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY "
                      "HELP STARTTLS (RFC 5321)",
                      EX_OK, 200},
    [SP_SMTP_VRFY] = {"vrfy", 252, "2.0.0", "Cannot VRFY user, but will accept message", EX_OK,
                      200},
    [SP_SMTP_SENDER_OK] = {"sender_ok", 250, "2.1.0", "Sender ok", EX_OK, 200},
    [SP_SMTP_RCPT_OK] = {"recipient_ok", 250, "2.1.5", "Recipient ok", EX_OK, 200},
    [SP_SMTP_START_DATA] = {"start_data", 354, NULL, "End data with <CR><LF>.<CR><LF>", EX_OK, 200},
    [SP_SMTP_START_TLS] = {"start_tls", 220, "2.0.0", "Ready to start TLS", EX_OK, 200},
    [SP_SMTP_SHUTDOWN] = {"shutdown", 421, "4.3.2", "Service shutting down, try again later",
                          EX_TEMPFAIL, 503},
    [SP_SMTP_TIMEOUT] = {"timeout", 421, "4.4.2", "Timeout, closing connection", EX_TEMPFAIL, 408},
    [SP_SMTP_TOO_SLOW] = {"too_slow", 421, "4.4.2", "Data rate too low, closing connection",
                          EX_TEMPFAIL, 408},
    [SP_SMTP_DEADLINE] = {"deadline", 421, "4.4.2", "Session too long, closing connection",
                          EX_TEMPFAIL, 408},
    [SP_SMTP_TOO_MANY_CONN] = {"too_many_connections", 421, "4.7.0",
                               "Too many connections, try again later", EX_TEMPFAIL, 429},
    [SP_SMTP_TOO_MANY_ERRORS] = {"too_many_errors", 421, "4.7.0",
                                 "Too many errors, closing connection", EX_TEMPFAIL, 429},
    [SP_SMTP_TLS_UNAVAILABLE] = {"tls_unavailable", 454, "4.7.0",
                                 "TLS not available due to temporary reason", EX_TEMPFAIL, 503},
    [SP_SMTP_UNRECOGNIZED] = {"unrecognized", 500, "5.5.2", "Command unrecognized", EX_PROTOCOL,
                              400},
    [SP_SMTP_LINE_TOO_LONG] = {"line_too_long", 500, "5.5.2", "Line too long", EX_PROTOCOL, 400},
    [SP_SMTP_SYNTAX] = {"syntax", 501, "5.5.4", "Syntax error in parameters or arguments",
                        EX_PROTOCOL, 400},
    [SP_SMTP_NOT_IMPLEMENTED] = {"not_implemented", 502, "5.5.1", "Command not implemented",
                                 EX_PROTOCOL, 501},
    [SP_SMTP_BAD_SEQUENCE] = {"bad_sequence", 503, "5.5.1", "Bad sequence of commands", EX_PROTOCOL,
                              400},
    [SP_SMTP_NEED_HELO] = {"need_helo", 503, "5.5.1", "Send EHLO or HELO first", EX_PROTOCOL, 400},
    [SP_SMTP_NEED_MAIL] = {"need_mail", 503, "5.5.1", "Need MAIL command first", EX_PROTOCOL, 400},
    [SP_SMTP_NESTED_MAIL] = {"nested_mail", 503, "5.5.1", "Sender already specified", EX_PROTOCOL,
                             400},
    [SP_SMTP_NEED_UTF8] = {"need_smtputf8", 553, "5.6.7", "Non-ASCII address requires SMTPUTF8",
                           EX_DATAERR, 422},
    [SP_SMTP_BARE_EOL] = {"bare_eol", 554, "5.5.0", "Protocol error: bare <CR> or <LF> received",
                          EX_PROTOCOL, 400},
    [SP_SMTP_PIPELINING] = {"pipelining", 554, "5.5.0",
                            "Protocol error: input sent before the reply", EX_PROTOCOL, 400},
    [SP_SMTP_EARLY_TALKER] = {"early_talker", 554, "5.5.0",
                              "Protocol error: input sent before the greeting", EX_PROTOCOL, 400},
    [SP_SMTP_NUL] = {"nul", 554, "5.6.0", "Message contains a NUL byte", EX_DATAERR, 422},
    [SP_SMTP_BAD_PARAM] = {"bad_parameter", 555, "5.5.4", "Parameter not recognized", EX_PROTOCOL,
                           400},
};

const struct sp_status_info *sp_status_info(enum sp_status s)
{
    if ((unsigned)s >= SP_STATUS_MAX)
        msg_panic("bad status %d", (int)s);
    return &status_table[s];
}

const char *sp_status_name(enum sp_status s)
{
    return sp_status_info(s)->name;
}
