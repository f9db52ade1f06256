/*
 * cli_init — `sealpost init`: creates the data directory (mode 0700) with
 * its blobs/ and tmp/ folders and the store, migrated to the current schema,
 * and the server's master key ([server] master_key, 0600) if it is missing.
 * Safe to run again: existing data is kept.
 */
#include "cli/cli.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_init(struct cli *c, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("init");
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    const char *sub[] = {"", "/blobs", "/tmp"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char *d = xasprintf("%s%s", cfg->data_dir, sub[i]);
        int r = mkdir_p(d, 0700);
        int e = errno;
        free(d);
        if (r < 0)
            return cli_fail("cannot create %s%s: %s", cfg->data_dir, sub[i], strerror(e));
    }
    int made_key = 0;
    if (masterkey_create(cfg->master_key) == 0)
        made_key = 1;
    else if (errno != EEXIST)
        return cli_fail("cannot create the master key %s: %s", cfg->master_key, strerror(errno));
    /* db_open creates the store on the first run and migrates it later. */
    struct db *db = NULL;
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    enum db_rc r = db_open(path, &db);
    free(path);
    if (r != DB_OK)
        return cli_fail("cannot create the store in %s", cfg->data_dir);
    int version = db_schema_version(db);
    db_close(db);
    if (c->json)
        cli_json_print(json_pack("{s:s,s:i,s:s,s:b}", "data_dir", cfg->data_dir, "schema",
                                 version, "master_key", cfg->master_key, "master_key_created",
                                 made_key));
    else
        printf("initialised %s (store schema %d)\n%s master key %s\n", cfg->data_dir, version,
               made_key ? "created" : "kept", cfg->master_key);
    return CLI_OK;
}
