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

#include <stdbool.h>
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
/* Locks are not waited for (DB_BUSY at once) instead of up to
 * DB_BUSY_TIMEOUT_MS. */
void db_never_wait(struct db *db);
/* Schema version of the open database (PRAGMA user_version). */
int db_schema_version(struct db *db);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
enum db_rc db_begin(struct db *db) __attribute__((warn_unused_result));
enum db_rc db_commit(struct db *db) __attribute__((warn_unused_result));
void db_rollback(struct db *db);
/*
 * Several lookups in one read transaction: one snapshot, and the WAL's
 * read lock taken and dropped once instead of per statement. BEGIN
 * DEFERRED takes no lock itself (the first read does, and may say
 * DB_BUSY as it would alone). Returns false, starting nothing, when a
 * transaction is open already; db_read_end ends one that was started.
 */
bool db_read_begin(struct db *db);
void db_read_end(struct db *db);

/*
 * Checkpoints off the commit path. SQLite's own checkpoint runs inside the
 * COMMIT that takes the WAL past DB_CHECKPOINT_PAGES: one commit in many
 * then also copies the WAL into the database and fsyncs it (milliseconds,
 * more the larger the store). After db_defer_checkpoints, this
 * connection's commits only note the WAL's length; db_checkpoint_wanted
 * says when it has passed DB_CHECKPOINT_PAGES, and db_checkpoint, on any
 * connection (another thread's), runs a PASSIVE checkpoint, which never
 * waits for readers or writers. Should that fall behind, a commit that
 * takes the WAL past DB_CHECKPOINT_PAGES_MAX checkpoints itself, as SQLite
 * would, so the WAL stays bounded.
 */
#define DB_CHECKPOINT_PAGES 1000
#define DB_CHECKPOINT_PAGES_MAX (4 * DB_CHECKPOINT_PAGES)
void db_defer_checkpoints(struct db *db);
bool db_checkpoint_wanted(const struct db *db);
void db_checkpoint(struct db *db);

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
    const char *kind;   /* created, notified, page_opened, code_failed, downloaded, … */
    const char *client; /* client address, may be NULL */
    const char *detail; /* short machine-readable detail, may be NULL; never a secret */
};

/* time 0 means now. */
enum db_rc db_event_add(struct db *db, const struct db_event *e)
    __attribute__((warn_unused_result));
/* Events of subject in order. */
enum db_rc db_event_foreach(struct db *db, const char *subject,
                            int (*fn)(const struct db_event *e, void *arg), void *arg);
/* Removes the events of subject (when the object itself is gone for good). */
enum db_rc db_event_delete(struct db *db, const char *subject) __attribute__((warn_unused_result));

/* ---- outbound queue (lib/db_queue.c) ----
 *
 * Notification mail waiting for the relay host. The message and its
 * envelope live only in data, encrypted by deliver/outbound (the store never
 * sees an address or a link); the other columns are ids, times, counters and
 * the relay's reply code. A mail is claimed (state "sending" with a lease)
 * before it is sent, so two senders never take the same mail, and a sender
 * that died mid-attempt releases it when the lease runs out. Finished mail
 * ("sent", "failed") keeps its row, without data, for `queue list`.
 */

#define DB_QUEUE_QUEUED "queued"
#define DB_QUEUE_SENDING "sending"
#define DB_QUEUE_SENT "sent"
#define DB_QUEUE_FAILED "failed"

struct db_queue_entry {
    char id[DB_ID_MAX + 1];
    const char *send_id; /* may be NULL */
    const char *kind;    /* "notify", … */
    const char *state;   /* DB_QUEUE_* */
    int64_t created;
    int64_t updated;  /* last state change */
    int64_t next_try; /* queued: when it is due */
    int64_t lease;    /* sending: until when the claim holds */
    unsigned attempts;
    const char *last_error;    /* may be NULL */
    int64_t size;              /* plaintext message bytes */
    const unsigned char *data; /* encrypted record; NULL once finished */
    size_t data_len;
};

/* Inserts a new mail (state queued). DB_EXISTS when the id is taken. */
enum db_rc db_queue_insert(struct db *db, const struct db_queue_entry *e)
    __attribute__((warn_unused_result));
/* Ids of up to max mails due at now (queued with next_try <= now, or sending
 * with an expired lease), oldest due first, into ids[]; count in *n. */
enum db_rc db_queue_due(struct db *db, int64_t now, char (*ids)[DB_ID_MAX + 1], size_t max,
                        size_t *n) __attribute__((warn_unused_result));
/* Claims a due mail until lease_until: DB_OK with the entry and its data in
 * *out (owned: free with db_queue_entry_clear), or DB_NOTFOUND when it is not
 * due or another sender holds it. */
enum db_rc db_queue_claim(struct db *db, const char *id, int64_t now, int64_t lease_until,
                          struct db_queue_entry *out) __attribute__((warn_unused_result));
/* Frees what db_queue_claim filled in. */
void db_queue_entry_clear(struct db_queue_entry *e);
/* Back to queued after a failed attempt: attempts + 1, due at next_try. */
enum db_rc db_queue_defer(struct db *db, const char *id, int64_t now, int64_t next_try,
                          const char *error) __attribute__((warn_unused_result));
/* Finished (DB_QUEUE_SENT or DB_QUEUE_FAILED): attempts + 1, data dropped. */
enum db_rc db_queue_finish(struct db *db, const char *id, int64_t now, const char *state,
                           const char *error) __attribute__((warn_unused_result));
/* Makes every queued mail due at now; *n = how many. */
enum db_rc db_queue_flush(struct db *db, int64_t now, int *n) __attribute__((warn_unused_result));
/* Every mail, oldest first, without data. */
enum db_rc db_queue_foreach(struct db *db, int (*fn)(const struct db_queue_entry *e, void *arg),
                            void *arg);
/* Mail still to be sent (queued or being sent). */
enum db_rc db_queue_depth(struct db *db, int64_t *n) __attribute__((warn_unused_result));
/* Deletes finished mail last changed before t. */
enum db_rc db_queue_purge(struct db *db, int64_t before) __attribute__((warn_unused_result));
/* ==== sends / api keys (lib/db_send.c; owned by sendlink/) ==== */

#define DB_HASH_BYTES 32

/* States of a send; "locked" is not a state but locked_until > now. */
#define DB_SEND_ACTIVE "active"
#define DB_SEND_REVOKED "revoked"
#define DB_SEND_EXPIRED "expired"
#define DB_SEND_USED_UP "used_up"

/*
 * One secure send. Nothing here is readable without the link token (file
 * key, page record) or the server's master key (recipient, phone, MACs);
 * see sendlink/sendlink_crypto.c and docs/FORMATS.md "Send".
 */
struct db_send {
    char id[DB_ID_MAX + 1];
    int64_t user_id;               /* 0: created by an admin without --user */
    char apikey_id[DB_ID_MAX + 1]; /* "" when not created through the API */
    unsigned char token_hash[DB_HASH_BYTES];
    int64_t created;
    int64_t expires;
    int64_t max_downloads;
    int64_t downloads;
    char protect[8];      /* none | code | mtan */
    char state[12];       /* DB_SEND_* */
    int64_t attempts;     /* wrong codes since the last success or unlock */
    int64_t failures;     /* wrong codes in total */
    int64_t locked_until; /* 0: not locked; INT64_MAX: for good */
    int64_t destroyed;    /* when the file was destroyed; 0: still there */
    int64_t size;         /* plaintext bytes of the file */
    int64_t page_views;
    int64_t sender_notified; /* when the sender was told of the first download */
    unsigned char *code_mac; /* protect=code; NULL otherwise or once destroyed */
    size_t code_mac_len;
    unsigned char *wrapped_key; /* file key wrapped by the token (+ code) */
    size_t wrapped_key_len;
    unsigned char *page; /* page record sealed under the token */
    size_t page_len;
    unsigned char *recipient; /* recipient address sealed under the server key */
    size_t recipient_len;
    unsigned char *phone; /* E.164 number sealed under the server key, or NULL */
    size_t phone_len;
    unsigned char *mtan_mac; /* current mTAN (issue 5), or NULL */
    size_t mtan_mac_len;
    int64_t mtan_expires;
    int64_t mtan_sends;
};
void db_send_clear(struct db_send *s);

enum db_rc db_send_insert(struct db *db, const struct db_send *s)
    __attribute__((warn_unused_result));
enum db_rc db_send_get(struct db *db, const char *id, struct db_send *out)
    __attribute__((warn_unused_result));
enum db_rc db_send_get_by_token(struct db *db, const unsigned char hash[DB_HASH_BYTES],
                                struct db_send *out) __attribute__((warn_unused_result));
/* Sends of user_id (all sends when user_id < 0), newest first. */
enum db_rc db_send_foreach(struct db *db, int64_t user_id,
                           int (*fn)(const struct db_send *s, void *arg), void *arg);
/* Sends whose file must go: not destroyed and not active, or expired by now. */
enum db_rc db_send_foreach_due(struct db *db, int64_t now,
                               int (*fn)(const struct db_send *s, void *arg), void *arg);
/* Moves an active send to state (revoked/expired); DB_NOTFOUND if it was not active. */
enum db_rc db_send_end(struct db *db, const char *id, const char *state)
    __attribute__((warn_unused_result));
/* Forgets the wrapped key, page record, recipient, phone and MACs; sets destroyed. */
enum db_rc db_send_destroy(struct db *db, const char *id, int64_t now)
    __attribute__((warn_unused_result));
/*
 * Counts one whole download of an active send; the send becomes used_up at
 * max_downloads. *downloads gets the new count. DB_NOTFOUND if not active.
 */
enum db_rc db_send_download_count(struct db *db, const char *id, int64_t *downloads)
    __attribute__((warn_unused_result));
/*
 * Counts a wrong code. When attempts reach max_attempts the link locks until
 * lock_until (and for good, INT64_MAX, once failures reach hard_max).
 * *attempts and *locked_until get the new values.
 */
enum db_rc db_send_code_failed(struct db *db, const char *id, int64_t max_attempts,
                               int64_t lock_until, int64_t hard_max, int64_t *attempts,
                               int64_t *locked_until) __attribute__((warn_unused_result));
/* Clears attempts and an ended (temporary) lock. */
enum db_rc db_send_attempts_reset(struct db *db, const char *id)
    __attribute__((warn_unused_result));
enum db_rc db_send_page_viewed(struct db *db, const char *id, int64_t *views)
    __attribute__((warn_unused_result));
/* Claims the one "first download" mail: DB_OK once, DB_NOTFOUND after. */
enum db_rc db_send_sender_notify_claim(struct db *db, const char *id)
    __attribute__((warn_unused_result));

/* Claims one more SMS for the send's mTAN: DB_OK with the new count when it
 * is active and below max_sends; DB_NOTFOUND when the cap is reached or the
 * send is no longer active. */
enum db_rc db_send_mtan_claim(struct db *db, const char *id, int64_t max_sends, int64_t *sends)
    __attribute__((warn_unused_result));
/* Gives back a claim when no SMS left (every route failed). */
enum db_rc db_send_mtan_unclaim(struct db *db, const char *id) __attribute__((warn_unused_result));
/* The current mTAN (its keyed MAC) and when it expires; replaces the previous one. */
enum db_rc db_send_mtan_set(struct db *db, const char *id, const unsigned char *mac, size_t len,
                            int64_t expires) __attribute__((warn_unused_result));
/* Consumes the mTAN whose MAC is mac (single use): DB_OK once, DB_NOTFOUND when
 * it is no longer the current one (used, replaced). */
enum db_rc db_send_mtan_use(struct db *db, const char *id, const unsigned char *mac, size_t len)
    __attribute__((warn_unused_result));

/* ==== SMS bookkeeping (lib/db_sms.c; owned by sendlink/sms*.c) ==== */

/* Health of one SMS route (relay): consecutive failures and a cool-down. */
struct db_sms_route {
    char name[65];
    int64_t failures;   /* consecutive failures; 0 after a success */
    int64_t skip_until; /* skipped until then (cool-down); 0: not cooling down */
    int64_t last_ok;
    int64_t last_fail;
    char *last_error; /* may be NULL */
};
void db_sms_route_clear(struct db_sms_route *r);
/* DB_NOTFOUND: the route never failed nor succeeded (healthy). */
enum db_rc db_sms_route_get(struct db *db, const char *name, struct db_sms_route *out)
    __attribute__((warn_unused_result));
/* A success: failures 0, cool-down over. */
enum db_rc db_sms_route_ok(struct db *db, const char *name, int64_t now)
    __attribute__((warn_unused_result));
/* A failure: failures + 1; once they reach threshold the route cools down
 * until cool_until. *failures gets the new count. */
enum db_rc db_sms_route_failed(struct db *db, const char *name, int64_t now, int64_t threshold,
                               int64_t cool_until, const char *error, int64_t *failures)
    __attribute__((warn_unused_result));
/* After its cool-down one caller probes the route: DB_OK for the one that
 * may (the cool-down is pushed to cool_until meanwhile), DB_NOTFOUND for the others. */
enum db_rc db_sms_route_probe(struct db *db, const char *name, int64_t now, int64_t cool_until)
    __attribute__((warn_unused_result));
enum db_rc db_sms_route_foreach(struct db *db, int (*fn)(const struct db_sms_route *r, void *arg),
                                void *arg);

/* One rate-limit counter: scope ("number", "sender", "country", "global"), a
 * key within it (never a phone number in clear), the end of its fixed window. */
struct db_sms_cap {
    const char *scope;
    const char *key;
    int64_t slot_end;
    int64_t limit; /* 0: no limit (the counter still counts) */
    int64_t count; /* out: the count after taking */
};
/*
 * Takes one from every counter at once (one transaction): DB_OK with *over
 * = -1 when every one was below its limit (all incremented), or DB_OK with
 * *over = the index of the first counter at its limit (nothing changed).
 */
enum db_rc db_sms_caps_take(struct db *db, struct db_sms_cap *caps, size_t n, int *over)
    __attribute__((warn_unused_result));
/* Gives one back to every counter (an SMS that no route took). */
enum db_rc db_sms_caps_give_back(struct db *db, const struct db_sms_cap *caps, size_t n)
    __attribute__((warn_unused_result));
/* Drops counters whose window ended before t. */
enum db_rc db_sms_counters_purge(struct db *db, int64_t before) __attribute__((warn_unused_result));

/* The SMS outbox: one row per SMS, with the route that took it and the
 * provider's message id; never the number or the text. */
#define DB_SMS_SENDING "sending"
#define DB_SMS_SENT "sent"
#define DB_SMS_FAILED "failed"

struct db_sms_out {
    char id[DB_ID_MAX + 1];
    const char *send_id; /* may be NULL (sms test) */
    const char *kind;    /* "mtan", "test" */
    const char *state;   /* DB_SMS_* */
    int64_t created;
    int64_t updated;
    const char *route;        /* the route that took it, or the last tried; may be NULL */
    const char *provider_ref; /* the provider's message id; may be NULL */
    int64_t attempts;         /* routes tried */
    const char *last_error;   /* may be NULL */
};
enum db_rc db_sms_outbox_insert(struct db *db, const struct db_sms_out *o)
    __attribute__((warn_unused_result));
enum db_rc db_sms_outbox_finish(struct db *db, const struct db_sms_out *o)
    __attribute__((warn_unused_result));
/* Rows of send_id (every row when NULL), oldest first. */
enum db_rc db_sms_outbox_foreach(struct db *db, const char *send_id,
                                 int (*fn)(const struct db_sms_out *o, void *arg), void *arg);
/* Deletes rows created before t. */
enum db_rc db_sms_outbox_purge(struct db *db, int64_t before) __attribute__((warn_unused_result));

struct db_apikey {
    char id[DB_ID_MAX + 1];
    int64_t user_id;
    char *label; /* may be NULL */
    unsigned char hash[DB_HASH_BYTES];
    int64_t created;
    int64_t revoked; /* 0: valid */
    int64_t last_used;
};
void db_apikey_clear(struct db_apikey *k);

enum db_rc db_apikey_insert(struct db *db, const struct db_apikey *k)
    __attribute__((warn_unused_result));
enum db_rc db_apikey_get_by_hash(struct db *db, const unsigned char hash[DB_HASH_BYTES],
                                 struct db_apikey *out) __attribute__((warn_unused_result));
enum db_rc db_apikey_foreach(struct db *db, int (*fn)(const struct db_apikey *k, void *arg),
                             void *arg);
/* DB_NOTFOUND if no such key or it was revoked already. */
enum db_rc db_apikey_revoke(struct db *db, const char *id) __attribute__((warn_unused_result));
enum db_rc db_apikey_touch(struct db *db, const char *id, int64_t now)
    __attribute__((warn_unused_result));

/* An Idempotency-Key of one API key: pending while the first request runs. */
struct db_idem {
    int done;
    int64_t created;
    unsigned char fingerprint[DB_HASH_BYTES];
    int status;
    unsigned char *response; /* sealed under a key only the API key opens */
    size_t response_len;
};
void db_idem_clear(struct db_idem *r);

/* Inserts a pending record: DB_OK, or DB_EXISTS when the key is known. */
enum db_rc db_idem_claim(struct db *db, const char *apikey_id, const char *key, int64_t now)
    __attribute__((warn_unused_result));
enum db_rc db_idem_get(struct db *db, const char *apikey_id, const char *key, struct db_idem *out)
    __attribute__((warn_unused_result));
enum db_rc db_idem_finish(struct db *db, const char *apikey_id, const char *key,
                          const struct db_idem *r) __attribute__((warn_unused_result));
enum db_rc db_idem_delete(struct db *db, const char *apikey_id, const char *key)
    __attribute__((warn_unused_result));
/* Drops finished records created before done_before and pending ones before pending_before. */
enum db_rc db_idem_expire(struct db *db, int64_t done_before, int64_t pending_before)
    __attribute__((warn_unused_result));

#endif
