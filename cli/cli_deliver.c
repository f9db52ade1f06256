/*
 * cli_deliver — `sealpost deliver --to ADDRESS [--to …] < message.eml`, the
 * local delivery agent: puts one message into the vaults of its recipients
 * exactly as the SMTP receiver would, for Postfix's pipe(8) transport.
 *
 * Exit codes are sysexits(3), as pipe(8) reads them: 0 delivered, 67
 * (EX_NOUSER) unknown or disabled address, 65 (EX_DATAERR) message too big,
 * 64 (EX_USAGE) bad arguments, 75 (EX_TEMPFAIL) anything worth retrying
 * (store busy, disk full, over quota, config trouble). Recipients are
 * all-or-nothing: if one is refused nothing is delivered, so a retry never
 * duplicates (use destination_recipient_limit = 1 in Postfix for per-recipient
 * results).
 *
 * The message is read from stdin into a memfd (memory, never disk) with a
 * hard cap of [mailin] message_size_limit.
 */
#include "cli/cli.h"
#include "deliver/deliver.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* Longest host name put into our Received: header. */
#define TRACE_HOST_MAX 255

int cmd_deliver(struct cli *c, int argc, char **argv)
{
    size_t n = 0;
    const char **to = cli_opt_values(&argc, argv, "--to", &n);
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1 || n == 0) {
        free(to);
        cli_usage("deliver --to ADDRESS [--to ADDRESS …] < message.eml");
        return EX_USAGE;
    }
    struct config *cfg = cli_config(c);
    if (cfg == NULL) {
        free(to);
        return EX_TEMPFAIL;
    }
    char *err = NULL;
    struct deliver_ctx *d = deliver_open(cfg, &err);
    if (d == NULL) {
        cli_fail("%s", err);
        free(err);
        free(to);
        return EX_TEMPFAIL;
    }
    struct rcpt *rcpts = xcalloc(n, sizeof(*rcpts));
    int rc = EX_OK;
    int fd = -1;
    for (size_t i = 0; i < n && rc == EX_OK; i++) {
        enum sp_status s = deliver_rcpt_check(d, to[i], 0, &rcpts[i]);
        if (s != SP_OK) {
            const struct sp_status_info *si = sp_status_info(s);
            fprintf(stderr, "sealpost: %s: %s %s %s\n", to[i], si->enhanced, si->text,
                    s == SP_RELAY_DENIED ? "(not a Mail-in domain)" : "");
            rc = si->sysexit;
        }
    }
    if (rc == EX_OK) {
        fd = memfd_open("sealpost-deliver");
        long long got = fd < 0 ? -1 : copy_fd(STDIN_FILENO, fd, cfg->message_size_limit);
        if (got == -2) {
            cli_fail("message larger than message_size_limit (%llu bytes)",
                     (unsigned long long)cfg->message_size_limit);
            rc = EX_DATAERR;
        } else if (got < 0) {
            cli_fail("cannot read the message from stdin");
            rc = EX_TEMPFAIL;
        }
    }
    if (rc == EX_OK) {
        char queue_id[RAND_ID_LEN + 1];
        char date[64], trace[512 + TRACE_HOST_MAX];
        time_t now = time(NULL);
        struct tm tm;
        rand_id(queue_id);
        localtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
        snprintf(trace, sizeof(trace), "Received: by %s (sealpost) with local id %s;\r\n\t%s\r\n",
                 scrub(cfg->hostname), queue_id, date);
        struct arrival a = {.trace = trace, .via = "local"};
        enum sp_status s = deliver_message(d, fd, rcpts, n, &a, queue_id);
        if (s != SP_OK) {
            const struct sp_status_info *si = sp_status_info(s);
            fprintf(stderr, "sealpost: not delivered: %s %s\n", si->enhanced, si->text);
            rc = si->sysexit;
        } else if (c->json) {
            printf("{\"queue_id\":\"%s\",\"recipients\":%zu}\n", queue_id, n);
        }
    }
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < n; i++)
        rcpt_clear(&rcpts[i]);
    free(rcpts);
    free(to);
    deliver_close(d);
    return rc;
}
