/*
 * db — the store: one interface in front of SQLite (STYLE.md 3).
 *
 * Every part that keeps state goes through these functions; SQL never
 * leaves lib/db*.c and is always a prepared statement with bound values.
 * A later PostgreSQL back end implements the same functions.
 *
 * The store holds no plaintext of any message: items carry only ids,
 * times, sizes, the blob name, the item key sealed to the user's public key
 * and the sealed metadata record (DESIGN.md "Security properties").
 *
 * Durability: WAL journal, synchronous=FULL; db_commit returns only after
 * SQLite has fsynced the WAL (RULES.md 1).
 */
#ifndef SEALPOST_DB_H
#define SEALPOST_DB_H

#include <stddef.h>
#include <stdint.h>

enum db_rc {
    DB_OK = 0,
    DB_NOTFOUND, /* no such row */
    DB_EXISTS,   /* unique key taken */
    DB_BUSY,     /* locked longer than DB_BUSY_TIMEOUT_MS: try again */
    DB_FULL,     /* disk full */
    DB_ERR       /* anything else (logged) */
};

/* How long a writer waits for another writer before DB_BUSY. */
#define DB_BUSY_TIMEOUT_MS 10000
/* Name of the database file inside the data directory. */
#define DB_FILE_NAME "sealpost.db"

struct db;

/* Opens (creating and migrating as needed) the database at path. */
enum db_rc db_open(const char *path, struct db **out) __attribute__((warn_unused_result));
void db_close(struct db *db);
/* Schema version of the open database (PRAGMA user_version). */
int db_schema_version(struct db *db);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
enum db_rc db_begin(struct db *db) __attribute__((warn_unused_result));
enum db_rc db_commit(struct db *db) __attribute__((warn_unused_result));
void db_rollback(struct db *db);

/* ---- users ---- */

#define DB_PUBKEY_BYTES 32

struct db_user {
    int64_t id;
    char *name;
    char *email;
    char *phone; /* may be NULL */
    char *plan;  /* may be NULL: default plan */
    int disabled;
    int64_t created;
    unsigned char public_key[DB_PUBKEY_BYTES];
    unsigned char *sk_password; /* wrapped secret key records (deliver/keys.h) */
    size_t sk_password_len;
    unsigned char *sk_recovery;
    size_t sk_recovery_len;
};
void db_user_clear(struct db_user *u);

/* Sets u->id. DB_EXISTS when the name is taken. */
enum db_rc db_user_insert(struct db *db, struct db_user *u) __attribute__((warn_unused_result));
enum db_rc db_user_get(struct db *db, const char *name, struct db_user *out)
    __attribute__((warn_unused_result));
enum db_rc db_user_get_by_id(struct db *db, int64_t id, struct db_user *out)
    __attribute__((warn_unused_result));
/* Calls fn for every user, by name; stops early if fn returns non-zero. */
enum db_rc db_user_foreach(struct db *db, int (*fn)(const struct db_user *u, void *arg), void *arg);
enum db_rc db_user_set_disabled(struct db *db, int64_t id, int disabled)
    __attribute__((warn_unused_result));
/* Replaces one or both wrapped key records (NULL keeps the old one). */
enum db_rc db_user_set_wraps(struct db *db, int64_t id, const unsigned char *sk_password,
                             size_t pw_len, const unsigned char *sk_recovery, size_t rc_len)
    __attribute__((warn_unused_result));

/* ---- Mail-in addresses (lower-case "local@domain", no +tag) ---- */

struct db_address {
    const char *address;
    int64_t user_id;
    int64_t created;
    int retired;
};

/* DB_EXISTS when the address was ever issued (retired ones are never reused). */
enum db_rc db_address_insert(struct db *db, const char *address, int64_t user_id)
    __attribute__((warn_unused_result));
/* DB_OK with *user_id and *retired, or DB_NOTFOUND. */
enum db_rc db_address_lookup(struct db *db, const char *address, int64_t *user_id, int *retired)
    __attribute__((warn_unused_result));
enum db_rc db_address_retire(struct db *db, const char *address)
    __attribute__((warn_unused_result));
enum db_rc db_address_foreach(struct db *db, int64_t user_id,
                              int (*fn)(const struct db_address *a, void *arg), void *arg);

/* ---- vault items ---- */

#define DB_ID_MAX 32

struct db_item {
    char id[DB_ID_MAX + 1];
    int64_t user_id;
    int64_t received;
    int64_t size; /* bytes on disk: blob + metadata record */
    char blob[DB_ID_MAX + 1];
    unsigned char *sealed_key;
    size_t sealed_key_len;
    unsigned char *meta;
    size_t meta_len;
};
void db_item_clear(struct db_item *it);

enum db_rc db_item_insert(struct db *db, const struct db_item *it)
    __attribute__((warn_unused_result));
enum db_rc db_item_get(struct db *db, int64_t user_id, const char *id, struct db_item *out)
    __attribute__((warn_unused_result));
/* Items of one user, oldest first. */
enum db_rc db_item_foreach(struct db *db, int64_t user_id,
                           int (*fn)(const struct db_item *it, void *arg), void *arg);
/* Sum of item sizes of one user. */
enum db_rc db_item_usage(struct db *db, int64_t user_id, int64_t *bytes)
    __attribute__((warn_unused_result));
/* DB_OK if some item refers to blob, DB_NOTFOUND if none. */
enum db_rc db_blob_referenced(struct db *db, const char *blob) __attribute__((warn_unused_result));

/* ---- events (lib/db_event.c) ---- */

/* One thing that happened to a send (or other object named by subject). */
struct db_event {
    const char *subject; /* e.g. a send id */
    int64_t time;
    const char *kind;    /* created, notified, page_opened, code_failed, downloaded, … */
    const char *client;  /* client address, may be NULL */
    const char *detail;  /* short machine-readable detail, may be NULL; never a secret */
};

/* time 0 means now. */
enum db_rc db_event_add(struct db *db, const struct db_event *e) __attribute__((warn_unused_result));
/* Events of subject in order. */
enum db_rc db_event_foreach(struct db *db, const char *subject,
                            int (*fn)(const struct db_event *e, void *arg), void *arg);
/* Removes the events of subject (when the object itself is gone for good). */
enum db_rc db_event_delete(struct db *db, const char *subject) __attribute__((warn_unused_result));

#endif
