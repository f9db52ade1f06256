/*
 * users — accounts, their key pairs and Mail-in addresses.
 *
 * Creating a user makes an X25519 key pair, wraps the secret key under the
 * password and under a fresh recovery code (deliver/keys.h), and issues one
 * random Mail-in address. Opening a user's key (users_key_open) is what the
 * vault readers do; the delivery path never does it.
 */
#ifndef SEALPOST_USERS_H
#define SEALPOST_USERS_H

#include "deliver/keys.h"
#include "lib/db.h"
#include "policy/config.h"

/* Length of the random local part of a Mail-in address (>= 10, DESIGN.md). */
#define USERS_ADDRESS_LEN 12
/* Tries before giving up on an address collision (astronomically unlikely). */
#define USERS_ADDRESS_TRIES 8
/* User names: 1..USERS_NAME_MAX of [a-z0-9._-], starting with a letter or digit. */
#define USERS_NAME_MAX 64

enum users_rc {
    USERS_OK = 0,
    USERS_EXISTS,
    USERS_NOT_FOUND,
    USERS_BAD_NAME,
    USERS_BAD_PLAN,
    USERS_WRONG_SECRET,
    USERS_BAD_RECORD,
    USERS_STORE /* store error (logged) */
};
const char *users_rc_str(enum users_rc rc);

int users_name_valid(const char *name);

/*
 * Creates a user. address receives the first Mail-in address (malloc'd),
 * recovery the recovery code to show once. before_commit (may be NULL) is
 * called with both once the rows are written but not yet committed; when
 * it returns < 0 nothing is committed (USERS_STORE). The recovery code is
 * shown only once, so whoever shows it prepares that output there: after
 * the commit nothing that could fail (an allocation) should stand between
 * the new user and its recovery code reaching the admin.
 */
typedef int (*users_before_commit_fn)(const char *address, const char *recovery, void *arg);
enum users_rc
users_create(struct db *db, const struct config *cfg, const char *name, const char *email,
             const char *phone, const char *plan, const char *password, char **address,
             char recovery[KEYS_RECOVERY_LEN + 1], users_before_commit_fn before_commit, void *arg)
    __attribute__((warn_unused_result));

/* Issues one more random Mail-in address (malloc'd) for user_id. */
enum users_rc users_address_new(struct db *db, const struct config *cfg, int64_t user_id,
                                char **address) __attribute__((warn_unused_result));

/*
 * Opens the secret key of u with the password (or, with by_recovery, the
 * recovery code) into sk (sodium_malloc'd, KEYS_SK_BYTES).
 */
enum users_rc users_key_open(const struct db_user *u, const char *secret, int by_recovery,
                             unsigned char *sk) __attribute__((warn_unused_result));

/* Re-wraps the (opened) sk of u under a new password. */
enum users_rc users_password_set(struct db *db, const struct config *cfg, const struct db_user *u,
                                 const unsigned char *sk, const char *new_password)
    __attribute__((warn_unused_result));

#endif
