/*
 * cli_send — `sealpost send create | list | revoke`: secure sends without
 * HTTP (DESIGN.md). The same life cycle as the API (sendlink/sendlink.h):
 * the same rules (the plan of --user, else the default plan), the same
 * encryption, the same notification mail; the link and any code are
 * printed once.
 */
#include "cli/cli.h"
#include "lib/db.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "sendlink/sendlink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read size while encrypting the file. */
#define SEND_CLI_CHUNK (64 * 1024)

static const char send_create_usage[] =
    "send create --file F --to EMAIL [--phone P] [--message TEXT] [--expires D]\n"
    "       [--max-downloads N] [--protect none|code|mtan] [--code C] [--lang en|fr|de]\n"
    "       [--user NAME] [--json]";

static void time_rfc3339(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int send_create_cmd(struct cli *c, struct send_env *env, int argc, char **argv)
{
    const char *file = cli_opt_value(&argc, argv, "--file");
    const char *user_name = cli_opt_value(&argc, argv, "--user");
    struct send_fields f = {
        .to = cli_opt_value(&argc, argv, "--to"),
        .phone = cli_opt_value(&argc, argv, "--phone"),
        .message = cli_opt_value(&argc, argv, "--message"),
        .expires = cli_opt_value(&argc, argv, "--expires"),
        .max_downloads = cli_opt_value(&argc, argv, "--max-downloads"),
        .protect = cli_opt_value(&argc, argv, "--protect"),
        .code = cli_opt_value(&argc, argv, "--code"),
        .lang = cli_opt_value(&argc, argv, "--lang"),
    };
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1 || file == NULL || f.to == NULL)
        return cli_usage("%s", send_create_usage);

    struct db_user u;
    int have_user = 0;
    if (user_name) {
        enum db_rc dr = db_user_get(env->db, user_name, &u);
        if (dr == DB_NOTFOUND)
            return cli_fail("no user %s", user_name);
        if (dr != DB_OK)
            return cli_fail("cannot read the store");
        if (u.disabled) {
            db_user_clear(&u);
            return cli_fail("user %s is disabled", user_name);
        }
        have_user = 1;
    }
    const struct plan *plan = config_plan(env->cfg, have_user ? u.plan : NULL);
    if (plan == NULL)
        plan = config_plan(env->cfg, NULL);
    struct send_problem pb = {0};
    /* The rules that need no file first: nothing is written for a refusal. */
    if (send_fields_check(env->cfg, plan, &f, &pb) < 0) {
        if (have_user)
            db_user_clear(&u);
        return cli_fail("%s%s%s", pb.field ? pb.field : "", pb.field ? ": " : "", pb.detail);
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (have_user)
            db_user_clear(&u);
        return cli_fail("%s: %s", file, strerror(errno));
    }
    char *copy = xstrdup(file);
    f.filename = basename(copy);

    char *err = NULL;
    struct send_upload *up = send_upload_new(env, &err);
    int rc = CLI_OK;
    if (up == NULL) {
        rc = cli_fail("%s", err ? err : "cannot start the upload");
        free(err);
        goto out;
    }
    unsigned char *chunk = xmalloc(SEND_CLI_CHUNK);
    ssize_t n;
    while ((n = read(fd, chunk, SEND_CLI_CHUNK)) > 0) {
        if (send_upload_size(up) + (uint64_t)n > plan->max_file_size) {
            rc = cli_fail("file: larger than the plan's max_file_size");
            break;
        }
        if (send_upload_write(up, chunk, (size_t)n) < 0) {
            rc = cli_fail("cannot write the encrypted file");
            break;
        }
    }
    if (n < 0)
        rc = cli_fail("%s: %s", file, strerror(errno));
    free(chunk);
    if (rc != CLI_OK) {
        send_upload_abort(up);
        goto out;
    }
    struct send_created cr;
    if (send_commit(env, have_user ? &u : NULL, NULL, &f, up, "cli", &cr, &pb) < 0) {
        send_upload_abort(up);
        rc = cli_fail("%s%s%s", pb.field ? pb.field : "", pb.field ? ": " : "", pb.detail);
        goto out;
    }
    char when[32];
    time_rfc3339(cr.expires, when, sizeof(when));
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "id", cr.id, "url", cr.url,
                              "expires_at", when, "max_downloads", (json_int_t)cr.max_downloads,
                              "protect", cr.protect, "notified", cr.notified);
        if (cr.code[0])
            json_object_set_new(o, "code", json_string(cr.code));
        cli_json_print(o);
    } else {
        printf("id:       %s\nurl:      %s\nexpires:  %s\ndownloads: %lld\nprotect:  %s\n", cr.id,
               cr.url, when, (long long)cr.max_downloads, cr.protect);
        if (cr.code[0])
            printf("code:     %s   (give it to the recipient another way than mail)\n", cr.code);
        if (!cr.notified)
            printf("note:     the notification mail could not be queued\n");
    }
    send_created_clear(&cr);
out:
    close(fd);
    free(copy);
    if (have_user)
        db_user_clear(&u);
    return rc;
}

struct list_ctx {
    struct send_env *env;
    json_t *arr;
    int64_t now;
};

static int list_one(const struct db_send *s, void *arg)
{
    struct list_ctx *lc = arg;
    char created[32], expires[32];
    time_rfc3339(s->created, created, sizeof(created));
    time_rfc3339(s->expires, expires, sizeof(expires));
    char *user = NULL;
    struct db_user u;
    if (s->user_id > 0 && db_user_get_by_id(lc->env->db, s->user_id, &u) == DB_OK) {
        user = xstrdup(u.name);
        db_user_clear(&u);
    }
    char *to = send_recipient_open(lc->env->master, s);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b}", "id", s->id, "state",
                  send_state_name(s, lc->now), "user", user ? user : "-", "created", created,
                  "expires", expires, "size", (json_int_t)s->size, "downloads",
                  (json_int_t)s->downloads, "max_downloads", (json_int_t)s->max_downloads,
                  "protect", s->protect, "file_destroyed", s->destroyed != 0);
    json_object_set_new(o, "to", to ? json_string(to) : json_null());
    json_array_append_new(lc->arr, o);
    free(to);
    free(user);
    return 0;
}

static int send_list_cmd(struct cli *c, struct send_env *env, int argc, char **argv)
{
    const char *user_name = cli_opt_value(&argc, argv, "--user");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("send list [--user NAME] [--json]");
    int64_t uid = -1;
    if (user_name) {
        struct db_user u;
        if (db_user_get(env->db, user_name, &u) != DB_OK)
            return cli_fail("no user %s", user_name);
        uid = u.id;
        db_user_clear(&u);
    }
    struct list_ctx lc = {env, json_array(), (int64_t)time(NULL)};
    if (db_send_foreach(env->db, uid, list_one, &lc) != DB_OK) {
        json_decref(lc.arr);
        return cli_fail("cannot read the store");
    }
    if (c->json) {
        cli_json_print(lc.arr);
        return CLI_OK;
    }
    printf("%-20s  %-8s  %-12s  %-20s  %-9s  %-7s  %s\n", "ID", "STATE", "USER", "EXPIRES",
           "DOWNLOADS", "PROTECT", "TO");
    size_t i;
    json_t *o;
    json_array_foreach(lc.arr, i, o)
    {
        char dl[32];
        snprintf(dl, sizeof(dl), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(o, "downloads")),
                 (long long)json_integer_value(json_object_get(o, "max_downloads")));
        const char *to = json_string_value(json_object_get(o, "to"));
        printf("%-20s  %-8s  %-12s  %-20s  %-9s  %-7s  %s\n",
               json_string_value(json_object_get(o, "id")),
               json_string_value(json_object_get(o, "state")),
               json_string_value(json_object_get(o, "user")),
               json_string_value(json_object_get(o, "expires")), dl,
               json_string_value(json_object_get(o, "protect")), to ? to : "-");
    }
    json_decref(lc.arr);
    return CLI_OK;
}

static int send_revoke_cmd(struct cli *c, struct send_env *env, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("send revoke ID");
    struct send_problem pb = {0};
    if (send_revoke(env, argv[1], "cli", &pb) < 0)
        return cli_fail("%s: %s", argv[1], pb.detail);
    if (c->json)
        cli_json_print(json_pack("{s:s, s:b}", "id", argv[1], "revoked", 1));
    else
        printf("send %s revoked; its file is destroyed\n", argv[1]);
    return CLI_OK;
}

int cmd_send(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("%s | send list | send revoke ID", send_create_usage);
    struct db *db = cli_db(c);
    if (db == NULL)
        return CLI_ERR;
    unsigned char *master = masterkey_load(c->cfg->master_key);
    if (master == NULL) {
        db_close(db);
        return cli_fail("cannot load the master key %s", c->cfg->master_key);
    }
    struct send_env env = {c->cfg, db, master};
    int r;
    if (strcmp(argv[1], "create") == 0)
        r = send_create_cmd(c, &env, argc - 1, argv + 1);
    else if (strcmp(argv[1], "list") == 0)
        r = send_list_cmd(c, &env, argc - 1, argv + 1);
    else if (strcmp(argv[1], "revoke") == 0)
        r = send_revoke_cmd(c, &env, argc - 1, argv + 1);
    else
        r = cli_usage("%s | send list | send revoke ID", send_create_usage);
    masterkey_free(master);
    db_close(db);
    return r;
}
