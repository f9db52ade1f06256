/*
 * cli_dkim — `sealpost dkim keygen [--selector S] [--force] [--json]` and
 * `sealpost dkim record [--json]`: the DKIM key of notification mail and the
 * DNS TXT record to publish for it.
 *
 * keygen writes an RSA-2048 key (PKCS#8 PEM, mode 0600) to [outbound]
 * dkim_key, or, with a --selector other than the configured one, to
 * SELECTOR.private beside it (key rotation: publish the new record, then set
 * dkim_selector and dkim_key). It never replaces a key without --force.
 */
#include "cli/cli.h"
#include "deliver/outbound.h"
#include "lib/xalloc.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A selector is one DNS label (letters, digits, hyphen; RFC 6376 3.1). */
#define SELECTOR_MAX 63

static bool selector_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SELECTOR_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            return false;
    return true;
}

/* Prints name and record of the key at path. */
static int record_print(struct cli *c, const char *path, const char *selector, const char *domain,
                        bool created)
{
    char *record = NULL, *err = NULL;
    if (outbound_dkim_record(path, &record, &err) < 0) {
        int rc = cli_fail("%s", err);
        free(err);
        return rc;
    }
    char *name = xasprintf("%s._domainkey.%s", selector, domain);
    if (c->json) {
        json_t *o = json_pack("{s:s,s:s}", "name", name, "record", record);
        if (created) {
            json_object_set_new(o, "key", json_string(path));
            json_object_set_new(o, "selector", json_string(selector));
        }
        cli_json_print(o);
    } else {
        if (created)
            printf("wrote %s\npublish this DNS TXT record:\n", path);
        printf("%s. IN TXT \"%s\"\n", name, record);
    }
    free(name);
    free(record);
    return CLI_OK;
}

static int dkim_keygen(struct cli *c, int argc, char **argv)
{
    const char *selector = cli_opt_value(&argc, argv, "--selector");
    bool force = cli_opt_flag(&argc, argv, "--force");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("dkim keygen [--selector S] [--force] [--json]");
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    if (selector && !selector_valid(selector))
        return cli_fail("bad selector '%s' (letters, digits and hyphens)", selector);
    char *path;
    if (selector == NULL || strcmp(selector, cfg->dkim_selector) == 0) {
        selector = cfg->dkim_selector;
        path = xstrdup(cfg->dkim_key);
    } else {
        char *copy = xstrdup(cfg->dkim_key);
        path = xasprintf("%s/%s.private", dirname(copy), selector);
        free(copy);
    }
    char *err = NULL;
    int rc;
    if (outbound_dkim_keygen(path, force, &err) < 0) {
        rc = cli_fail("%s", err);
        free(err);
    } else {
        rc = record_print(c, path, selector, cfg->dkim_domain, true);
        if (rc == CLI_OK && !c->json && strcmp(selector, cfg->dkim_selector) != 0)
            printf("then set [outbound] dkim_selector = %s and dkim_key = %s\n", selector, path);
    }
    free(path);
    return rc;
}

int cmd_dkim(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return dkim_keygen(c, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "record") == 0) {
        if (cli_no_more_options(argc - 1, argv + 1) != CLI_OK || argc != 2)
            return cli_usage("dkim record [--json]");
        struct config *cfg = cli_config(c);
        if (cfg == NULL)
            return CLI_ERR;
        return record_print(c, cfg->dkim_key, cfg->dkim_selector, cfg->dkim_domain, false);
    }
    return cli_usage("dkim keygen [--selector S] [--force] | dkim record");
}
