/*
 * db_send — the sends, apikeys and idempotency tables (see db.h "sends /
 * api keys").
 *
 * Where it sits: below sendlink/ (HTTP service, sweeper) and the CLI (send,
 * apikey). Rows hold only ids, times, counters, keyed hashes and sealed
 * blobs: the plaintext of a send (its file, name, message, recipient) is
 * never here (DESIGN.md "Send").
 *
 * Counters move in single UPDATE statements (downloads, attempts) so two
 * connections never lose an increment; state changes are guarded by the
 * state they leave ("WHERE state = 'active'").
 *
 * Trusts: its callers for argument sanity; blob lengths read back are
 * checked by the caller's decryption.
 */
#include "lib/db.h"
#include "lib/db_internal.h"
#include "lib/xalloc.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND_COLS                                                                                  \
    "id, user_id, apikey_id, token_hash, created, expires, max_downloads, downloads, protect, "    \
    "state, attempts, failures, locked_until, destroyed, size, page_views, sender_notified, "      \
    "code_mac, wrapped_key, page, recipient, phone, mtan_mac, mtan_expires, mtan_sends"
#define APIKEY_COLS "id, user_id, label, hash, created, revoked, last_used"

static const char SQL_SEND_INSERT[] =
    "INSERT INTO sends (" SEND_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char SQL_SEND_GET[] = "SELECT " SEND_COLS " FROM sends WHERE id = ?";
static const char SQL_SEND_BY_TOKEN[] = "SELECT " SEND_COLS " FROM sends WHERE token_hash = ?";
static const char SQL_SEND_OF_USER[] = "SELECT " SEND_COLS " FROM sends WHERE user_id = ? "
                                       "ORDER BY created DESC, rowid DESC";
static const char SQL_SEND_ALL[] =
    "SELECT " SEND_COLS " FROM sends ORDER BY created DESC, rowid DESC";
static const char SQL_SEND_DUE[] = "SELECT " SEND_COLS " FROM sends WHERE destroyed = 0 AND "
                                   "(state <> 'active' OR expires <= ?)";
static const char SQL_SEND_END[] = "UPDATE sends SET state = ? WHERE id = ? AND state = 'active'";
static const char SQL_SEND_DESTROY[] =
    "UPDATE sends SET destroyed = ?, code_mac = NULL, wrapped_key = NULL, page = NULL, "
    "recipient = NULL, phone = NULL, mtan_mac = NULL WHERE id = ? AND destroyed = 0";
static const char SQL_SEND_DOWNLOAD[] =
    "UPDATE sends SET downloads = downloads + 1, state = CASE WHEN downloads + 1 >= "
    "max_downloads THEN 'used_up' ELSE state END WHERE id = ? AND state = 'active' "
    "RETURNING downloads";
static const char SQL_SEND_CODE_FAILED[] =
    "UPDATE sends SET attempts = attempts + 1, failures = failures + 1, locked_until = CASE "
    "WHEN failures + 1 >= ?3 THEN 9223372036854775807 WHEN attempts + 1 >= ?1 THEN ?2 "
    "ELSE locked_until END WHERE id = ?4 RETURNING attempts, locked_until";
static const char SQL_SEND_ATTEMPTS_RESET[] =
    "UPDATE sends SET attempts = 0, locked_until = 0 WHERE id = ? AND "
    "locked_until <> 9223372036854775807";
static const char SQL_SEND_VIEWED[] =
    "UPDATE sends SET page_views = page_views + 1 WHERE id = ? RETURNING page_views";
static const char SQL_SEND_NOTIFY_CLAIM[] =
    "UPDATE sends SET sender_notified = ? WHERE id = ? AND sender_notified = 0";
static const char SQL_SEND_MTAN_CLAIM[] =
    "UPDATE sends SET mtan_sends = mtan_sends + 1 WHERE id = ? AND state = 'active' AND "
    "destroyed = 0 AND mtan_sends < ? RETURNING mtan_sends";
static const char SQL_SEND_MTAN_UNCLAIM[] =
    "UPDATE sends SET mtan_sends = mtan_sends - 1 WHERE id = ? AND mtan_sends > 0";
static const char SQL_SEND_MTAN_SET[] =
    "UPDATE sends SET mtan_mac = ?, mtan_expires = ? WHERE id = ? AND destroyed = 0";
static const char SQL_SEND_MTAN_USE[] =
    "UPDATE sends SET mtan_mac = NULL, mtan_expires = 0 WHERE id = ? AND mtan_mac = ?";

static const char SQL_APIKEY_INSERT[] =
    "INSERT INTO apikeys (" APIKEY_COLS ") VALUES (?,?,?,?,?,?,?)";
static const char SQL_APIKEY_BY_HASH[] = "SELECT " APIKEY_COLS " FROM apikeys WHERE hash = ?";
static const char SQL_APIKEY_ALL[] = "SELECT " APIKEY_COLS " FROM apikeys ORDER BY created, id";
static const char SQL_APIKEY_REVOKE[] =
    "UPDATE apikeys SET revoked = ? WHERE id = ? AND revoked = 0";
static const char SQL_APIKEY_TOUCH[] = "UPDATE apikeys SET last_used = ? WHERE id = ?";

static const char SQL_IDEM_CLAIM[] =
    "INSERT INTO idempotency (apikey_id, key, created) VALUES (?,?,?)";
static const char SQL_IDEM_GET[] = "SELECT done, created, fingerprint, status, response "
                                   "FROM idempotency WHERE apikey_id = ? AND key = ?";
static const char SQL_IDEM_FINISH[] =
    "UPDATE idempotency SET done = 1, fingerprint = ?, status = ?, response = ? "
    "WHERE apikey_id = ? AND key = ?";
static const char SQL_IDEM_DELETE[] = "DELETE FROM idempotency WHERE apikey_id = ? AND key = ?";
static const char SQL_IDEM_EXPIRE[] = "DELETE FROM idempotency WHERE (done = 1 AND created < ?) "
                                      "OR (done = 0 AND created < ?)";

/* ---- sends ---- */

void db_send_clear(struct db_send *s)
{
    free(s->code_mac);
    free(s->wrapped_key);
    free(s->page);
    free(s->recipient);
    free(s->phone);
    free(s->mtan_mac);
    memset(s, 0, sizeof(*s));
}

static void bind_blob_or_null(struct db *db, sqlite3_stmt *st, int i, const unsigned char *p,
                              size_t n)
{
    if (p)
        db_bind_blob(db, st, i, p, (int)n);
    else
        sqlite3_bind_null(st, i);
}

static void copy_text(char *dst, size_t dstsz, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, dstsz, "%s", t ? (const char *)t : "");
}

static void send_from_row(sqlite3_stmt *st, struct db_send *s)
{
    memset(s, 0, sizeof(*s));
    copy_text(s->id, sizeof(s->id), st, 0);
    s->user_id = sqlite3_column_int64(st, 1);
    copy_text(s->apikey_id, sizeof(s->apikey_id), st, 2);
    if (sqlite3_column_bytes(st, 3) == DB_HASH_BYTES)
        memcpy(s->token_hash, sqlite3_column_blob(st, 3), DB_HASH_BYTES);
    s->created = sqlite3_column_int64(st, 4);
    s->expires = sqlite3_column_int64(st, 5);
    s->max_downloads = sqlite3_column_int64(st, 6);
    s->downloads = sqlite3_column_int64(st, 7);
    copy_text(s->protect, sizeof(s->protect), st, 8);
    copy_text(s->state, sizeof(s->state), st, 9);
    s->attempts = sqlite3_column_int64(st, 10);
    s->failures = sqlite3_column_int64(st, 11);
    s->locked_until = sqlite3_column_int64(st, 12);
    s->destroyed = sqlite3_column_int64(st, 13);
    s->size = sqlite3_column_int64(st, 14);
    s->page_views = sqlite3_column_int64(st, 15);
    s->sender_notified = sqlite3_column_int64(st, 16);
    s->code_mac = db_col_blob(st, 17, &s->code_mac_len);
    s->wrapped_key = db_col_blob(st, 18, &s->wrapped_key_len);
    s->page = db_col_blob(st, 19, &s->page_len);
    s->recipient = db_col_blob(st, 20, &s->recipient_len);
    s->phone = db_col_blob(st, 21, &s->phone_len);
    s->mtan_mac = db_col_blob(st, 22, &s->mtan_mac_len);
    s->mtan_expires = sqlite3_column_int64(st, 23);
    s->mtan_sends = sqlite3_column_int64(st, 24);
}

enum db_rc db_send_insert(struct db *db, const struct db_send *s)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_INSERT);
    db_bind_text(db, st, 1, s->id, -1);
    sqlite3_bind_int64(st, 2, s->user_id);
    db_bind_text(db, st, 3, s->apikey_id, -1);
    db_bind_blob(db, st, 4, s->token_hash, DB_HASH_BYTES);
    sqlite3_bind_int64(st, 5, s->created ? s->created : db_now());
    sqlite3_bind_int64(st, 6, s->expires);
    sqlite3_bind_int64(st, 7, s->max_downloads);
    sqlite3_bind_int64(st, 8, s->downloads);
    db_bind_text(db, st, 9, s->protect, -1);
    db_bind_text(db, st, 10, s->state[0] ? s->state : DB_SEND_ACTIVE, -1);
    sqlite3_bind_int64(st, 11, s->attempts);
    sqlite3_bind_int64(st, 12, s->failures);
    sqlite3_bind_int64(st, 13, s->locked_until);
    sqlite3_bind_int64(st, 14, s->destroyed);
    sqlite3_bind_int64(st, 15, s->size);
    sqlite3_bind_int64(st, 16, s->page_views);
    sqlite3_bind_int64(st, 17, s->sender_notified);
    bind_blob_or_null(db, st, 18, s->code_mac, s->code_mac_len);
    bind_blob_or_null(db, st, 19, s->wrapped_key, s->wrapped_key_len);
    bind_blob_or_null(db, st, 20, s->page, s->page_len);
    bind_blob_or_null(db, st, 21, s->recipient, s->recipient_len);
    bind_blob_or_null(db, st, 22, s->phone, s->phone_len);
    bind_blob_or_null(db, st, 23, s->mtan_mac, s->mtan_mac_len);
    sqlite3_bind_int64(st, 24, s->mtan_expires);
    sqlite3_bind_int64(st, 25, s->mtan_sends);
    return db_stmt_exec(db, st, "send insert");
}

static enum db_rc send_fetch(struct db *db, sqlite3_stmt *st, struct db_send *out)
{
    int rc = db_step(db, st);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        send_from_row(st, out);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "send get");
    }
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_send_get(struct db *db, const char *id, struct db_send *out)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_GET);
    db_bind_text(db, st, 1, id, -1);
    return send_fetch(db, st, out);
}

enum db_rc db_send_get_by_token(struct db *db, const unsigned char hash[DB_HASH_BYTES],
                                struct db_send *out)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_BY_TOKEN);
    db_bind_blob(db, st, 1, hash, DB_HASH_BYTES);
    return send_fetch(db, st, out);
}

static enum db_rc send_iterate(struct db *db, sqlite3_stmt *st,
                               int (*fn)(const struct db_send *s, void *arg), void *arg)
{
    int rc;
    while ((rc = db_step(db, st)) == SQLITE_ROW) {
        struct db_send s;
        send_from_row(st, &s);
        int stop = fn(&s, arg);
        db_send_clear(&s);
        if (stop)
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "send list");
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_send_foreach(struct db *db, int64_t user_id,
                           int (*fn)(const struct db_send *s, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (user_id < 0) {
        st = db_stmt(db, SQL_SEND_ALL);
    } else {
        st = db_stmt(db, SQL_SEND_OF_USER);
        sqlite3_bind_int64(st, 1, user_id);
    }
    return send_iterate(db, st, fn, arg);
}

enum db_rc db_send_foreach_due(struct db *db, int64_t now,
                               int (*fn)(const struct db_send *s, void *arg), void *arg)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_DUE);
    sqlite3_bind_int64(st, 1, now);
    return send_iterate(db, st, fn, arg);
}

enum db_rc db_send_end(struct db *db, const char *id, const char *state)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_END);
    db_bind_text(db, st, 1, state, -1);
    db_bind_text(db, st, 2, id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "send end"));
}

enum db_rc db_send_destroy(struct db *db, const char *id, int64_t now)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_DESTROY);
    sqlite3_bind_int64(st, 1, now ? now : db_now());
    db_bind_text(db, st, 2, id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "send destroy"));
}

/* Steps an UPDATE … RETURNING: DB_OK with the row's values, DB_NOTFOUND if none changed. */
static enum db_rc update_returning(struct db *db, sqlite3_stmt *st, const char *what, int64_t *a,
                                   int64_t *b)
{
    int rc = db_step(db, st);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        if (a)
            *a = sqlite3_column_int64(st, 0);
        if (b)
            *b = sqlite3_column_int64(st, 1);
        rc = db_step(db, st); /* runs the statement to its end */
        r = rc == SQLITE_DONE ? DB_OK : db_rc_from(db, rc, what);
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, what);
    }
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_send_download_count(struct db *db, const char *id, int64_t *downloads)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_DOWNLOAD);
    db_bind_text(db, st, 1, id, -1);
    return update_returning(db, st, "send download", downloads, NULL);
}

enum db_rc db_send_code_failed(struct db *db, const char *id, int64_t max_attempts,
                               int64_t lock_until, int64_t hard_max, int64_t *attempts,
                               int64_t *locked_until)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_CODE_FAILED);
    sqlite3_bind_int64(st, 1, max_attempts);
    sqlite3_bind_int64(st, 2, lock_until);
    sqlite3_bind_int64(st, 3, hard_max);
    db_bind_text(db, st, 4, id, -1);
    return update_returning(db, st, "send code failed", attempts, locked_until);
}

enum db_rc db_send_attempts_reset(struct db *db, const char *id)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_ATTEMPTS_RESET);
    db_bind_text(db, st, 1, id, -1);
    return db_stmt_exec(db, st, "send attempts reset");
}

enum db_rc db_send_page_viewed(struct db *db, const char *id, int64_t *views)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_VIEWED);
    db_bind_text(db, st, 1, id, -1);
    return update_returning(db, st, "send viewed", views, NULL);
}

enum db_rc db_send_sender_notify_claim(struct db *db, const char *id)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_NOTIFY_CLAIM);
    sqlite3_bind_int64(st, 1, db_now());
    db_bind_text(db, st, 2, id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "send notify claim"));
}

enum db_rc db_send_mtan_claim(struct db *db, const char *id, int64_t max_sends, int64_t *sends)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_MTAN_CLAIM);
    db_bind_text(db, st, 1, id, -1);
    sqlite3_bind_int64(st, 2, max_sends);
    return update_returning(db, st, "send mtan claim", sends, NULL);
}

enum db_rc db_send_mtan_unclaim(struct db *db, const char *id)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_MTAN_UNCLAIM);
    db_bind_text(db, st, 1, id, -1);
    return db_stmt_exec(db, st, "send mtan unclaim");
}

enum db_rc db_send_mtan_set(struct db *db, const char *id, const unsigned char *mac, size_t len,
                            int64_t expires)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_MTAN_SET);
    db_bind_blob(db, st, 1, mac, (int)len);
    sqlite3_bind_int64(st, 2, expires);
    db_bind_text(db, st, 3, id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "send mtan set"));
}

enum db_rc db_send_mtan_use(struct db *db, const char *id, const unsigned char *mac, size_t len)
{
    sqlite3_stmt *st = db_stmt(db, SQL_SEND_MTAN_USE);
    db_bind_text(db, st, 1, id, -1);
    db_bind_blob(db, st, 2, mac, (int)len);
    return db_changed_one(db, db_stmt_exec(db, st, "send mtan use"));
}

/* ---- api keys ---- */

void db_apikey_clear(struct db_apikey *k)
{
    free(k->label);
    memset(k, 0, sizeof(*k));
}

static void apikey_from_row(sqlite3_stmt *st, struct db_apikey *k)
{
    memset(k, 0, sizeof(*k));
    copy_text(k->id, sizeof(k->id), st, 0);
    k->user_id = sqlite3_column_int64(st, 1);
    k->label = db_col_text(st, 2);
    if (sqlite3_column_bytes(st, 3) == DB_HASH_BYTES)
        memcpy(k->hash, sqlite3_column_blob(st, 3), DB_HASH_BYTES);
    k->created = sqlite3_column_int64(st, 4);
    k->revoked = sqlite3_column_int64(st, 5);
    k->last_used = sqlite3_column_int64(st, 6);
}

enum db_rc db_apikey_insert(struct db *db, const struct db_apikey *k)
{
    sqlite3_stmt *st = db_stmt(db, SQL_APIKEY_INSERT);
    db_bind_text(db, st, 1, k->id, -1);
    sqlite3_bind_int64(st, 2, k->user_id);
    db_bind_text_or_null(db, st, 3, k->label);
    db_bind_blob(db, st, 4, k->hash, DB_HASH_BYTES);
    sqlite3_bind_int64(st, 5, k->created ? k->created : db_now());
    sqlite3_bind_int64(st, 6, k->revoked);
    sqlite3_bind_int64(st, 7, k->last_used);
    return db_stmt_exec(db, st, "apikey insert");
}

enum db_rc db_apikey_get_by_hash(struct db *db, const unsigned char hash[DB_HASH_BYTES],
                                 struct db_apikey *out)
{
    sqlite3_stmt *st = db_stmt(db, SQL_APIKEY_BY_HASH);
    db_bind_blob(db, st, 1, hash, DB_HASH_BYTES);
    int rc = db_step(db, st);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        apikey_from_row(st, out);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "apikey get");
    }
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_apikey_foreach(struct db *db, int (*fn)(const struct db_apikey *k, void *arg),
                             void *arg)
{
    sqlite3_stmt *st = db_stmt(db, SQL_APIKEY_ALL);
    int rc;
    while ((rc = db_step(db, st)) == SQLITE_ROW) {
        struct db_apikey k;
        apikey_from_row(st, &k);
        int stop = fn(&k, arg);
        db_apikey_clear(&k);
        if (stop)
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "apikey list");
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_apikey_revoke(struct db *db, const char *id)
{
    sqlite3_stmt *st = db_stmt(db, SQL_APIKEY_REVOKE);
    sqlite3_bind_int64(st, 1, db_now());
    db_bind_text(db, st, 2, id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "apikey revoke"));
}

enum db_rc db_apikey_touch(struct db *db, const char *id, int64_t now)
{
    sqlite3_stmt *st = db_stmt(db, SQL_APIKEY_TOUCH);
    sqlite3_bind_int64(st, 1, now);
    db_bind_text(db, st, 2, id, -1);
    return db_stmt_exec(db, st, "apikey touch");
}

/* ---- idempotency ---- */

void db_idem_clear(struct db_idem *r)
{
    free(r->response);
    memset(r, 0, sizeof(*r));
}

enum db_rc db_idem_claim(struct db *db, const char *apikey_id, const char *key, int64_t now)
{
    sqlite3_stmt *st = db_stmt(db, SQL_IDEM_CLAIM);
    db_bind_text(db, st, 1, apikey_id, -1);
    db_bind_text(db, st, 2, key, -1);
    sqlite3_bind_int64(st, 3, now);
    return db_stmt_exec(db, st, "idempotency claim");
}

enum db_rc db_idem_get(struct db *db, const char *apikey_id, const char *key, struct db_idem *out)
{
    sqlite3_stmt *st = db_stmt(db, SQL_IDEM_GET);
    db_bind_text(db, st, 1, apikey_id, -1);
    db_bind_text(db, st, 2, key, -1);
    int rc = db_step(db, st);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        out->done = sqlite3_column_int(st, 0);
        out->created = sqlite3_column_int64(st, 1);
        if (sqlite3_column_bytes(st, 2) == DB_HASH_BYTES)
            memcpy(out->fingerprint, sqlite3_column_blob(st, 2), DB_HASH_BYTES);
        out->status = sqlite3_column_int(st, 3);
        out->response = db_col_blob(st, 4, &out->response_len);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "idempotency get");
    }
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_idem_finish(struct db *db, const char *apikey_id, const char *key,
                          const struct db_idem *r)
{
    sqlite3_stmt *st = db_stmt(db, SQL_IDEM_FINISH);
    db_bind_blob(db, st, 1, r->fingerprint, DB_HASH_BYTES);
    sqlite3_bind_int(st, 2, r->status);
    bind_blob_or_null(db, st, 3, r->response, r->response_len);
    db_bind_text(db, st, 4, apikey_id, -1);
    db_bind_text(db, st, 5, key, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "idempotency finish"));
}

enum db_rc db_idem_delete(struct db *db, const char *apikey_id, const char *key)
{
    sqlite3_stmt *st = db_stmt(db, SQL_IDEM_DELETE);
    db_bind_text(db, st, 1, apikey_id, -1);
    db_bind_text(db, st, 2, key, -1);
    return db_stmt_exec(db, st, "idempotency delete");
}

enum db_rc db_idem_expire(struct db *db, int64_t done_before, int64_t pending_before)
{
    sqlite3_stmt *st = db_stmt(db, SQL_IDEM_EXPIRE);
    sqlite3_bind_int64(st, 1, done_before);
    sqlite3_bind_int64(st, 2, pending_before);
    return db_stmt_exec(db, st, "idempotency expire");
}
