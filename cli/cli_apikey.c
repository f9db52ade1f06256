/*
 * cli_apikey — `sealpost apikey create NAME | list | revoke ID`: API keys
 * for apps (DESIGN.md). A key acts for user NAME, whose plan applies; it is
 * printed once and the store keeps only its keyed hash
 * (sendlink/sendlink_apikey.c).
 */
#include "cli/cli.h"
#include "lib/db.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "sendlink/sendlink.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest label of a key. */
#define APIKEY_LABEL_MAX 100

static int apikey_create_cmd(struct cli *c, struct db *db, int argc, char **argv)
{
    const char *label = cli_opt_value(&argc, argv, "--label");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("apikey create NAME [--label TEXT] [--json]");
    if (label && strlen(label) > APIKEY_LABEL_MAX)
        return cli_fail("label too long (at most %d bytes)", APIKEY_LABEL_MAX);
    struct db_user u;
    enum db_rc dr = db_user_get(db, argv[1], &u);
    if (dr == DB_NOTFOUND)
        return cli_fail("no user %s", argv[1]);
    if (dr != DB_OK)
        return cli_fail("cannot read the store");
    unsigned char *master = masterkey_load(c->cfg->master_key);
    if (master == NULL) {
        db_user_clear(&u);
        return cli_fail("cannot load the master key %s", c->cfg->master_key);
    }
    struct send_env env = {c->cfg, db, master};
    char id[RAND_ID_LEN + 1];
    char *key = NULL;
    int r = apikey_create(&env, u.id, label, id, &key);
    masterkey_free(master);
    if (r < 0) {
        db_user_clear(&u);
        return cli_fail("cannot store the key");
    }
    if (c->json) {
        cli_json_print(json_pack("{s:s, s:s, s:s}", "id", id, "key", key, "user", u.name));
    } else {
        printf("id:   %s\nuser: %s\nkey:  %s\n", id, u.name, key);
        printf("The key is shown only now: keep it in the app's secret store.\n");
    }
    sodium_memzero(key, strlen(key));
    free(key);
    db_user_clear(&u);
    return CLI_OK;
}

struct list_ctx {
    struct db *db;
    json_t *arr;
};

static int list_one(const struct db_apikey *k, void *arg)
{
    struct list_ctx *lc = arg;
    struct db_user u;
    char *user = NULL;
    if (db_user_get_by_id(lc->db, k->user_id, &u) == DB_OK) {
        user = xstrdup(u.name);
        db_user_clear(&u);
    }
    char created[32], used[32] = "", revoked[32] = "";
    cli_time_format(k->created, created, sizeof(created));
    if (k->last_used)
        cli_time_format(k->last_used, used, sizeof(used));
    if (k->revoked)
        cli_time_format(k->revoked, revoked, sizeof(revoked));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", k->id, "user", user ? user : "?", "label",
                          k->label ? k->label : "", "created", created);
    json_object_set_new(o, "last_used", k->last_used ? json_string(used) : json_null());
    json_object_set_new(o, "revoked", k->revoked ? json_string(revoked) : json_null());
    json_array_append_new(lc->arr, o);
    free(user);
    return 0;
}

static int apikey_list_cmd(struct cli *c, struct db *db, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("apikey list [--json]");
    struct list_ctx lc = {db, json_array()};
    if (db_apikey_foreach(db, list_one, &lc) != DB_OK) {
        json_decref(lc.arr);
        return cli_fail("cannot read the store");
    }
    if (c->json) {
        cli_json_print(lc.arr);
        return CLI_OK;
    }
    printf("%-20s  %-16s  %-20s  %-20s  %s\n", "ID", "USER", "CREATED", "LAST USED", "STATE");
    size_t i;
    json_t *o;
    json_array_foreach(lc.arr, i, o)
    {
        const char *used = json_string_value(json_object_get(o, "last_used"));
        printf("%-20s  %-16s  %-20s  %-20s  %s\n", json_string_value(json_object_get(o, "id")),
               json_string_value(json_object_get(o, "user")),
               json_string_value(json_object_get(o, "created")), used ? used : "-",
               json_is_null(json_object_get(o, "revoked")) ? "active" : "revoked");
    }
    json_decref(lc.arr);
    return CLI_OK;
}

static int apikey_revoke_cmd(struct cli *c, struct db *db, int argc, char **argv)
{
    (void)c;
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("apikey revoke ID");
    enum db_rc dr = db_apikey_revoke(db, argv[1]);
    if (dr == DB_NOTFOUND)
        return cli_fail("no active API key %s", argv[1]);
    if (dr != DB_OK)
        return cli_fail("cannot update the store");
    if (!c->json)
        printf("API key %s revoked\n", argv[1]);
    else
        cli_json_print(json_pack("{s:s, s:b}", "id", argv[1], "revoked", 1));
    return CLI_OK;
}

int cmd_apikey(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("apikey create NAME [--label TEXT] | apikey list | apikey revoke ID");
    struct db *db = cli_db(c);
    if (db == NULL)
        return CLI_ERR;
    int r;
    if (strcmp(argv[1], "create") == 0)
        r = apikey_create_cmd(c, db, argc - 1, argv + 1);
    else if (strcmp(argv[1], "list") == 0)
        r = apikey_list_cmd(c, db, argc - 1, argv + 1);
    else if (strcmp(argv[1], "revoke") == 0)
        r = apikey_revoke_cmd(c, db, argc - 1, argv + 1);
    else
        r = cli_usage("apikey create NAME [--label TEXT] | apikey list | apikey revoke ID");
    db_close(db);
    return r;
}
