/*
 * users — account creation, addresses, opening and re-wrapping keys (see
 * users.h).
 *
 * Where it sits: called by the CLI (and later the HTTP API); writes through
 * lib/db. Trusts: the caller to have read secrets safely; secrets passed in
 * are never logged or copied outside locked memory.
 */
#include "deliver/users.h"
#include "lib/log.h"
#include "lib/rand.h"
#include "lib/xalloc.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *users_rc_str(enum users_rc rc)
{
    switch (rc) {
    case USERS_OK:
        return "ok";
    case USERS_EXISTS:
        return "a user of that name exists";
    case USERS_NOT_FOUND:
        return "no such user";
    case USERS_BAD_NAME:
        return "bad user name (use 1-64 of a-z 0-9 . _ -)";
    case USERS_BAD_PLAN:
        return "no such plan";
    case USERS_WRONG_SECRET:
        return "wrong password or recovery code";
    case USERS_BAD_RECORD:
        return "the stored key record is damaged";
    case USERS_STORE:
        return "store error";
    }
    return "unknown error";
}

int users_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > USERS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

static enum keys_kdf cfg_kdf(const struct config *cfg)
{
    enum keys_kdf k = KEYS_KDF_INTERACTIVE;
    if (cfg->kdf && keys_kdf_parse(cfg->kdf, &k) < 0)
        k = KEYS_KDF_INTERACTIVE;
    return k;
}

enum users_rc users_address_new(struct db *db, const struct config *cfg, int64_t user_id,
                                char **address)
{
    if (cfg->domains.n == 0)
        return USERS_STORE;
    for (int tries = 0; tries < USERS_ADDRESS_TRIES; tries++) {
        char local[USERS_ADDRESS_LEN + 1];
        rand_string(local, USERS_ADDRESS_LEN, RAND_ALPHA_LOWER);
        char *a = xasprintf("%s@%s", local, cfg->domains.v[0]);
        for (char *p = a; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        enum db_rc r = db_address_insert(db, a, user_id);
        if (r == DB_OK) {
            *address = a;
            return USERS_OK;
        }
        free(a);
        if (r != DB_EXISTS)
            return USERS_STORE;
    }
    return USERS_STORE;
}

enum users_rc users_create(struct db *db, const struct config *cfg, const char *name,
                           const char *email, const char *phone, const char *plan,
                           const char *password, char **address,
                           char recovery[KEYS_RECOVERY_LEN + 1],
                           users_before_commit_fn before_commit, void *arg)
{
    if (!users_name_valid(name))
        return USERS_BAD_NAME;
    if (plan && config_plan(cfg, plan) == NULL)
        return USERS_BAD_PLAN;
    unsigned char *sk = sodium_malloc(KEYS_SK_BYTES);
    if (sk == NULL)
        return USERS_STORE;
    struct db_user u = {
        .name = (char *)name, .email = (char *)email, .phone = (char *)phone, .plan = (char *)plan};
    unsigned char wrap_pw[KEYS_WRAP_BYTES], wrap_rc[KEYS_WRAP_BYTES];
    enum users_rc rc = USERS_STORE;
    keys_pair_new(u.public_key, sk);
    keys_recovery_code_new(recovery);
    if (keys_wrap(sk, password, strlen(password), cfg_kdf(cfg), wrap_pw) < 0 ||
        keys_wrap(sk, recovery, KEYS_RECOVERY_LEN, cfg_kdf(cfg), wrap_rc) < 0)
        goto out;
    u.sk_password = wrap_pw;
    u.sk_password_len = sizeof(wrap_pw);
    u.sk_recovery = wrap_rc;
    u.sk_recovery_len = sizeof(wrap_rc);
    if (db_begin(db) != DB_OK)
        goto out;
    enum db_rc r = db_user_insert(db, &u);
    if (r == DB_EXISTS) {
        rc = USERS_EXISTS;
    } else if (r == DB_OK) {
        rc = users_address_new(db, cfg, u.id, address);
        if (rc == USERS_OK && ((before_commit && before_commit(*address, recovery, arg) < 0) ||
                               db_commit(db) != DB_OK)) {
            free(*address);
            *address = NULL;
            rc = USERS_STORE;
        }
    }
    if (rc != USERS_OK)
        db_rollback(db);
out:
    sodium_free(sk);
    if (rc != USERS_OK)
        sodium_memzero(recovery, KEYS_RECOVERY_LEN + 1);
    return rc;
}

enum users_rc users_key_open(const struct db_user *u, const char *secret, int by_recovery,
                             unsigned char *sk)
{
    const unsigned char *rec = by_recovery ? u->sk_recovery : u->sk_password;
    size_t len = by_recovery ? u->sk_recovery_len : u->sk_password_len;
    char norm[KEYS_RECOVERY_LEN + 1];
    if (by_recovery) {
        if (keys_recovery_code_normalise(secret, norm) < 0)
            return USERS_WRONG_SECRET;
        secret = norm;
    }
    enum keys_unwrap_rc r = keys_unwrap(rec, len, secret, strlen(secret), sk);
    sodium_memzero(norm, sizeof(norm));
    switch (r) {
    case KEYS_OK:
        if (!keys_match(u->public_key, sk)) {
            sodium_memzero(sk, KEYS_SK_BYTES);
            return USERS_BAD_RECORD;
        }
        return USERS_OK;
    case KEYS_WRONG_SECRET:
        return USERS_WRONG_SECRET;
    case KEYS_BAD_FORMAT:
        return USERS_BAD_RECORD;
    default:
        return USERS_STORE;
    }
}

enum users_rc users_password_set(struct db *db, const struct config *cfg, const struct db_user *u,
                                 const unsigned char *sk, const char *new_password)
{
    unsigned char wrap[KEYS_WRAP_BYTES];
    if (keys_wrap(sk, new_password, strlen(new_password), cfg_kdf(cfg), wrap) < 0)
        return USERS_STORE;
    enum db_rc r = db_user_set_wraps(db, u->id, wrap, sizeof(wrap), NULL, 0);
    return r == DB_OK ? USERS_OK : r == DB_NOTFOUND ? USERS_NOT_FOUND : USERS_STORE;
}
