/*
 * cli_config — `sealpost check-config`: loads the config at c->config_path
 * with every include and cross-check, the way `serve` would, and reports.
 *
 * Valid: prints "OK" (with --json: {"ok":true}) and exits 0.
 * Invalid: prints every "file:line: message" on stderr (with --json:
 * {"ok":false,"errors":[...]} on stdout) and exits 1. Meant for
 * ExecStartPre= and for checking before a SIGHUP reload (like nginx -t,
 * postfix check). Trusts nothing in the file; prints nothing secret (the
 * loader's messages quote values scrubbed to printable ASCII).
 */
#include "cli/cli.h"
#include "lib/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* JSON strings must be UTF-8: a message that is not (a file name) is scrubbed. */
static json_t *json_message(const char *msg)
{
    json_t *s = json_string(msg);
    if (s == NULL) {
        char clean[CONFIG_LINE_MAX];
        s = json_string(log_scrub(clean, sizeof(clean), msg, (size_t)-1));
    }
    return s;
}

static int print_json(bool ok, const struct diag *d)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "ok", json_boolean(ok));
    if (!ok) {
        json_t *errors = json_array();
        for (size_t i = 0; i < d->n; i++)
            json_array_append_new(errors, json_message(d->msgs[i]));
        json_object_set_new(doc, "errors", errors);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return cli_fail("cannot format JSON");
    puts(text);
    free(text);
    return ok ? CLI_OK : CLI_ERR;
}

int cmd_check_config(struct cli *c, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK)
        return CLI_USAGE;
    if (argc > 1)
        return cli_usage("check-config takes no arguments");

    struct diag d = {0};
    struct config *cfg = NULL;
    bool ok = config_load(c->config_path, &cfg, &d) == 0;
    int rc;
    if (c->json) {
        rc = print_json(ok, &d);
    } else if (ok) {
        puts("OK");
        rc = CLI_OK;
    } else {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.msgs[i]);
        rc = CLI_ERR;
    }
    diag_free(&d);
    if (cfg) {
        if (c->cfg == NULL)
            c->cfg = cfg; /* main() drops it */
        else
            config_unref(cfg);
    }
    if (fflush(stdout) != 0)
        return cli_fail("cannot write the result");
    return rc;
}
