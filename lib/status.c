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
    [SP_TOO_MANY_RCPTS] = {"too_many_recipients", 452, "4.5.3", "Too many recipients",
                           EX_TEMPFAIL, 422},
    [SP_TEMPFAIL] = {"tempfail", 451, "4.3.0", "Local error, try again later", EX_TEMPFAIL,
                     503},
    [SP_DISK_FULL] = {"disk_full", 452, "4.3.1", "Insufficient system storage", EX_TEMPFAIL,
                      507},
    [SP_BAD_ADDRESS] = {"bad_address", 501, "5.1.3", "Bad address syntax", EX_USAGE, 422},
    [SP_BAD_INPUT] = {"bad_input", 554, "5.6.0", "Message cannot be accepted", EX_DATAERR, 422},
    [SP_NO_RCPTS] = {"no_recipients", 554, "5.5.1", "No valid recipients", EX_USAGE, 422},
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
