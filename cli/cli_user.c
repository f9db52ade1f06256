/*
 * cli_user — `sealpost user …`: add, list, show, disable, enable, passwd,
 * address add, address remove (DESIGN.md command table).
 *
 * Secrets come from cli_secret_read (terminal without echo, or one line per
 * secret from stdin with --password-stdin) and live in locked memory. The
 * recovery code is printed once, at creation, and never again.
 */
#include "cli/cli.h"
#include "deliver/users.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Shortest password accepted for a vault key. */
#define USER_PASSWORD_MIN 8
/* E.164: '+' then 8..15 digits, first digit not 0. */
#define E164_DIGITS_MIN 8
#define E164_DIGITS_MAX 15

static int phone_valid(const char *p)
{
    size_t n = 0;
    if (p[0] != '+' || p[1] < '1' || p[1] > '9')
        return 0;
    for (p++; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return 0;
    return n >= E164_DIGITS_MIN && n <= E164_DIGITS_MAX;
}

static int email_valid(const char *e)
{
    const char *at = strchr(e, '@');
    if (at == NULL || at == e || at[1] == '\0' || strchr(at + 1, '@'))
        return 0;
    for (; *e; e++)
        if ((unsigned char)*e <= ' ' || *e == '<' || *e == '>' || *e == '"')
            return 0;
    return 1;
}

/* Reads a new password; on a terminal it is asked twice. */
static char *new_password_read(struct cli *c, const char *prompt)
{
    char *pw = cli_secret_read(c, prompt);
    if (pw == NULL)
        return NULL;
    if (strlen(pw) < USER_PASSWORD_MIN) {
        cli_secret_free(pw);
        cli_fail("password too short (at least %d characters)", USER_PASSWORD_MIN);
        return NULL;
    }
    if (!c->password_stdin) {
        char *again = cli_secret_read(c, "Repeat the password: ");
        int same =
            again && strlen(again) == strlen(pw) && sodium_memcmp(again, pw, strlen(pw)) == 0;
        cli_secret_free(again);
        if (!same) {
            cli_secret_free(pw);
            cli_fail("the passwords differ");
            return NULL;
        }
    }
    return pw;
}

/* What user add prints, made before its commit (users_create). */
struct add_out {
    struct cli *c;
    const char *name;
    char *text; /* holds the recovery code: zeroed when freed */
    size_t len;
};

static int add_out_prepare(const char *address, const char *recovery, void *arg)
{
    struct add_out *o = arg;
    if (o->c->json) {
        json_t *v = json_pack("{s:s,s:s,s:s}", "name", o->name, "address", address, "recovery_code",
                              recovery);
        char *j = v ? json_dumps(v, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
        json_decref(v);
        if (j == NULL)
            return -1;
        int n = asprintf(&o->text, "%s\n", j);
        sodium_memzero(j, strlen(j));
        free(j);
        if (n < 0) {
            o->text = NULL;
            return -1;
        }
        o->len = (size_t)n;
        return 0;
    }
    int n = asprintf(&o->text,
                     "user:          %s\n"
                     "address:       %s\n"
                     "recovery code: %s\n"
                     "Write the recovery code down now and keep it offline: it is shown only "
                     "once,\n"
                     "and without it or the password the vault cannot be opened by anyone.\n",
                     o->name, address, recovery);
    if (n < 0) {
        o->text = NULL;
        return -1;
    }
    o->len = (size_t)n;
    return 0;
}

static void add_out_free(struct add_out *o)
{
    if (o->text)
        sodium_memzero(o->text, o->len);
    free(o->text);
    o->text = NULL;
}

static int user_add(struct cli *c, struct db *db, int argc, char **argv)
{
    const char *email = cli_opt_value(&argc, argv, "--email");
    const char *phone = cli_opt_value(&argc, argv, "--phone");
    const char *plan = cli_opt_value(&argc, argv, "--plan");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2 || email == NULL)
        return cli_usage("user add NAME --email E [--phone P] [--plan P]");
    const char *name = argv[1];
    if (!users_name_valid(name))
        return cli_fail("%s", users_rc_str(USERS_BAD_NAME));
    if (!email_valid(email))
        return cli_fail("bad e-mail address: %s", email);
    if (phone && !phone_valid(phone))
        return cli_fail("bad phone number (E.164, e.g. +41791234567): %s", phone);
    if (plan && config_plan(c->cfg, plan) == NULL)
        return cli_fail("no such plan: %s", plan);
    char *pw = new_password_read(c, "Password for the new user: ");
    if (pw == NULL)
        return CLI_ERR;
    char *address = NULL;
    char recovery[KEYS_RECOVERY_LEN + 1];
    struct add_out out = {.c = c, .name = name};
    enum users_rc rc = users_create(db, c->cfg, name, email, phone, plan, pw, &address, recovery,
                                    add_out_prepare, &out);
    cli_secret_free(pw);
    sodium_memzero(recovery, sizeof(recovery));
    free(address);
    if (rc != USERS_OK) {
        add_out_free(&out);
        return cli_fail("user add %s: %s", name, users_rc_str(rc));
    }
    /* Prepared before the commit: writing it allocates nothing. */
    int e = write_all(STDOUT_FILENO, out.text, out.len) < 0 ? errno : 0;
    add_out_free(&out);
    if (e != 0)
        return cli_fail("user add %s: created, but its address and recovery code could not "
                        "be shown (%s); the password opens the vault",
                        name, strerror(e));
    return CLI_OK;
}

static int list_one(const struct db_user *u, void *arg)
{
    struct cli *c = ((void **)arg)[0];
    json_t *arr = ((void **)arg)[1];
    char when[32];
    cli_time_format(u->created, when, sizeof(when));
    const char *plan = u->plan ? u->plan : "(default)";
    if (c->json)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s?,s:s,s:b,s:s}", "name", u->name, "email",
                                             u->email, "phone", u->phone, "plan", plan, "disabled",
                                             u->disabled, "created", when));
    else
        printf("%-20s %-10s %-8s %s\n", u->name, plan, u->disabled ? "disabled" : "active",
               u->email);
    return 0;
}

static int user_list(struct cli *c, struct db *db, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1)
        return cli_usage("user list");
    json_t *arr = json_array();
    void *arg[2] = {c, arr};
    enum db_rc r = db_user_foreach(db, list_one, arg);
    if (r != DB_OK) {
        json_decref(arr);
        return cli_fail("cannot list users");
    }
    if (c->json)
        cli_json_print(arr);
    else
        json_decref(arr);
    return CLI_OK;
}

static int addr_one(const struct db_address *a, void *arg)
{
    json_t *arr = arg;
    json_array_append_new(arr,
                          json_pack("{s:s,s:b}", "address", a->address, "retired", a->retired));
    return 0;
}

static int user_show(struct cli *c, struct db *db, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("user show NAME");
    struct db_user u;
    if (db_user_get(db, argv[1], &u) != DB_OK)
        return cli_fail("no such user: %s", argv[1]);
    json_t *addrs = json_array();
    int64_t used = 0;
    if (db_address_foreach(db, u.id, addr_one, addrs) != DB_OK ||
        db_item_usage(db, u.id, &used) != DB_OK) {
        json_decref(addrs);
        db_user_clear(&u);
        return cli_fail("cannot read user %s", argv[1]);
    }
    const struct plan *p = config_plan(c->cfg, u.plan);
    char when[32];
    cli_time_format(u.created, when, sizeof(when));
    if (c->json) {
        cli_json_print(json_pack("{s:s,s:s,s:s?,s:s,s:b,s:s,s:I,s:I,s:o}", "name", u.name, "email",
                                 u.email, "phone", u.phone, "plan", p ? p->name : "(unknown)",
                                 "disabled", u.disabled, "created", when, "storage_used",
                                 (json_int_t)used, "storage_quota",
                                 (json_int_t)(p ? p->storage_quota : 0), "addresses", addrs));
    } else {
        printf("name:      %s\nemail:     %s\nphone:     %s\nplan:      %s\nstate:     %s\n"
               "created:   %s\nstorage:   %lld of %llu bytes (0 = unlimited)\n",
               u.name, u.email, u.phone ? u.phone : "-", p ? p->name : "(unknown)",
               u.disabled ? "disabled" : "active", when, (long long)used,
               (unsigned long long)(p ? p->storage_quota : 0));
        size_t i;
        json_t *a;
        json_array_foreach(addrs, i, a)
        {
            printf("address:   %s%s\n", json_string_value(json_object_get(a, "address")),
                   json_is_true(json_object_get(a, "retired")) ? " (retired)" : "");
        }
        json_decref(addrs);
    }
    db_user_clear(&u);
    return CLI_OK;
}

static int user_set_disabled(struct cli *c, struct db *db, int argc, char **argv, int disabled)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("user %s NAME", disabled ? "disable" : "enable");
    struct db_user u;
    if (db_user_get(db, argv[1], &u) != DB_OK)
        return cli_fail("no such user: %s", argv[1]);
    enum db_rc r = db_user_set_disabled(db, u.id, disabled);
    db_user_clear(&u);
    if (r != DB_OK)
        return cli_fail("cannot update user %s", argv[1]);
    if (c->json)
        cli_json_print(json_pack("{s:s,s:b}", "name", argv[1], "disabled", disabled));
    else
        printf("%s %s\n", argv[1], disabled ? "disabled" : "enabled");
    return CLI_OK;
}

static int user_passwd(struct cli *c, struct db *db, int argc, char **argv)
{
    int by_recovery = cli_opt_flag(&argc, argv, "--recovery-code");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("user passwd NAME [--recovery-code]");
    struct db_user u;
    if (db_user_get(db, argv[1], &u) != DB_OK)
        return cli_fail("no such user: %s", argv[1]);
    int rc = CLI_ERR;
    char *secret = cli_secret_read(c, by_recovery ? "Recovery code: " : "Current password: ");
    unsigned char *sk = sodium_malloc(KEYS_SK_BYTES);
    if (secret == NULL || sk == NULL)
        goto out;
    enum users_rc r = users_key_open(&u, secret, by_recovery, sk);
    if (r != USERS_OK) {
        cli_fail("%s", users_rc_str(r));
        goto out;
    }
    char *pw = new_password_read(c, "New password: ");
    if (pw == NULL)
        goto out;
    r = users_password_set(db, c->cfg, &u, sk, pw);
    cli_secret_free(pw);
    if (r != USERS_OK) {
        cli_fail("cannot store the new key record: %s", users_rc_str(r));
        goto out;
    }
    if (c->json)
        cli_json_print(json_pack("{s:s,s:b}", "name", u.name, "changed", 1));
    else
        printf("password of %s changed\n", u.name);
    rc = CLI_OK;
out:
    cli_secret_free(secret);
    if (sk)
        sodium_free(sk);
    db_user_clear(&u);
    return rc;
}

static int user_address(struct cli *c, struct db *db, int argc, char **argv)
{
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 3)
        return cli_usage("user address add NAME | user address remove ADDRESS");
    if (strcmp(argv[1], "add") == 0) {
        struct db_user u;
        if (db_user_get(db, argv[2], &u) != DB_OK)
            return cli_fail("no such user: %s", argv[2]);
        char *address = NULL;
        enum users_rc r = users_address_new(db, c->cfg, u.id, &address);
        db_user_clear(&u);
        if (r != USERS_OK)
            return cli_fail("cannot issue an address: %s", users_rc_str(r));
        if (c->json)
            cli_json_print(json_pack("{s:s,s:s}", "name", argv[2], "address", address));
        else
            printf("%s\n", address);
        free(address);
        return CLI_OK;
    }
    if (strcmp(argv[1], "remove") == 0) {
        char *a = xstrdup(argv[2]);
        for (char *p = a; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        enum db_rc r = db_address_retire(db, a);
        if (r != DB_OK) {
            free(a);
            return cli_fail(r == DB_NOTFOUND ? "no such active address: %s" : "cannot retire %s",
                            argv[2]);
        }
        if (c->json)
            cli_json_print(json_pack("{s:s,s:b}", "address", a, "retired", 1));
        else
            printf("%s retired: mail to it is now refused\n", a);
        free(a);
        return CLI_OK;
    }
    return cli_usage("user address add NAME | user address remove ADDRESS");
}

int cmd_user(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("user add|list|show|disable|enable|passwd|address …");
    struct db *db = cli_db(c);
    if (db == NULL)
        return CLI_ERR;
    const char *sub = argv[1];
    int rc;
    argc--, argv++;
    if (strcmp(sub, "add") == 0)
        rc = user_add(c, db, argc, argv);
    else if (strcmp(sub, "list") == 0)
        rc = user_list(c, db, argc, argv);
    else if (strcmp(sub, "show") == 0)
        rc = user_show(c, db, argc, argv);
    else if (strcmp(sub, "disable") == 0)
        rc = user_set_disabled(c, db, argc, argv, 1);
    else if (strcmp(sub, "enable") == 0)
        rc = user_set_disabled(c, db, argc, argv, 0);
    else if (strcmp(sub, "passwd") == 0)
        rc = user_passwd(c, db, argc, argv);
    else if (strcmp(sub, "address") == 0)
        rc = user_address(c, db, argc, argv);
    else
        rc = cli_usage("user add|list|show|disable|enable|passwd|address …");
    db_close(db);
    return rc;
}
