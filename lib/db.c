/*
 * db — the SQLite store (see db.h).
 *
 * Where it sits: below every part. This file holds the connection, the
 * schema migration, transactions and the statement cache, plus the users,
 * addresses and items tables; other tables live in lib/db_*.c files of
 * their own (same rules). Statements are prepared once per connection
 * (cached by the address of their SQL text) and always bound, never
 * formatted. The schema is versioned with PRAGMA
 * user_version and migrated forward in one transaction per step.
 *
 * Trusts: its callers for argument sanity; nothing read from the database is
 * trusted to be well-formed beyond SQLite's own typing (lengths are checked).
 */
#include "lib/db.h"
#include "lib/db_internal.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#define USER_COLS                                                                                  \
    "id, name, email, phone, plan, disabled, created, public_key, sk_password, sk_recovery"
#define ITEM_COLS "id, user_id, received, size, blob, sealed_key, meta"

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_BEGIN_READ[] = "BEGIN DEFERRED";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_USER_INSERT[] =
    "INSERT INTO users (name, email, phone, plan, disabled, created, "
    "public_key, sk_password, sk_recovery) VALUES (?,?,?,?,?,?,?,?,?)";
static const char SQL_USER_GET[] = "SELECT " USER_COLS " FROM users WHERE name = ?";
static const char SQL_USER_GET_ID[] = "SELECT " USER_COLS " FROM users WHERE id = ?";
static const char SQL_USER_ALL[] = "SELECT " USER_COLS " FROM users ORDER BY name";
static const char SQL_USER_DISABLE[] = "UPDATE users SET disabled = ? WHERE id = ?";
static const char SQL_USER_WRAP_PW[] = "UPDATE users SET sk_password = ? WHERE id = ?";
static const char SQL_USER_WRAP_RC[] = "UPDATE users SET sk_recovery = ? WHERE id = ?";
static const char SQL_ADDR_INSERT[] =
    "INSERT INTO addresses (address, user_id, created) VALUES (?,?,?)";
static const char SQL_ADDR_LOOKUP[] = "SELECT user_id, retired FROM addresses WHERE address = ?";
static const char SQL_ADDR_RETIRE[] =
    "UPDATE addresses SET retired = 1 WHERE address = ? AND retired = 0";
static const char SQL_ADDR_OF_USER[] = "SELECT address, user_id, created, retired FROM addresses "
                                       "WHERE user_id = ? ORDER BY created, address";
static const char SQL_ITEM_INSERT[] = "INSERT INTO items (" ITEM_COLS ") VALUES (?,?,?,?,?,?,?)";
static const char SQL_ITEM_GET[] = "SELECT " ITEM_COLS " FROM items WHERE user_id = ? AND id = ?";
static const char SQL_ITEM_OF_USER[] = "SELECT " ITEM_COLS " FROM items WHERE user_id = ? "
                                       "ORDER BY received, rowid";
static const char SQL_ITEM_USAGE[] =
    "SELECT COALESCE((SELECT bytes FROM item_usage WHERE user_id = ?), 0)";
static const char SQL_BLOB_REF[] = "SELECT 1 FROM items WHERE blob = ?";

enum db_rc db_rc_from(struct db *db, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return DB_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        msg_warn("db: %s: busy", what);
        return DB_BUSY;
    case SQLITE_FULL:
        msg_error("db: %s: disk full", what);
        return DB_FULL;
    case SQLITE_CONSTRAINT:
        return DB_EXISTS;
    default:
        /* The connection's message when it is about rc (not for a failed
         * bind that db_step returned: SQLite has moved on since). */
        msg_error("db: %s: %s", what,
                  db->h && (sqlite3_errcode(db->h) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(db->h)
                                                                          : sqlite3_errstr(rc));
        return DB_ERR;
    }
}

sqlite3_stmt *db_stmt(struct db *db, const char *sql)
{
    /* Open addressing on the address of the (static) SQL text. */
    size_t h = ((uintptr_t)sql >> 3) % DB_STMT_CACHE;
    for (size_t i = 0; i < DB_STMT_CACHE; i++) {
        struct db_stmt_slot *slot = &db->cache[(h + i) % DB_STMT_CACHE];
        if (slot->sql == sql)
            return slot->st;
        if (slot->sql == NULL) {
            int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL);
            if (rc != SQLITE_OK)
                msg_panic("prepare \"%.60s\": %s", sql, sqlite3_errmsg(db->h));
            slot->sql = sql;
            return slot->st;
        }
    }
    msg_panic("statement cache full (DB_STMT_CACHE=%d)", DB_STMT_CACHE);
}

/* SQLite copies a bound text or blob (SQLITE_TRANSIENT), and a copy that
 * cannot be allocated leaves the parameter NULL while the statement still
 * runs: "WHERE address = ?" would find no address, a permanent "unknown"
 * for what was a lack of memory. So a failed bind is kept, every step
 * fails with it until the statement is done, and the caller gets an error
 * (a temporary failure) instead of a wrong answer. */
void db_bind_text(struct db *db, sqlite3_stmt *s, int i, const char *v, int n)
{
    int rc = sqlite3_bind_text(s, i, v, n, SQLITE_TRANSIENT);
    if (rc != SQLITE_OK && db->bind_rc == SQLITE_OK)
        db->bind_rc = rc;
}

void db_bind_blob(struct db *db, sqlite3_stmt *s, int i, const void *v, int n)
{
    int rc = sqlite3_bind_blob(s, i, v, n, SQLITE_TRANSIENT);
    if (rc != SQLITE_OK && db->bind_rc == SQLITE_OK)
        db->bind_rc = rc;
}

int db_step(struct db *db, sqlite3_stmt *s)
{
    if (db->bind_rc != SQLITE_OK)
        return db->bind_rc; /* db_rc_from logs it */
    return sqlite3_step(s);
}

void db_stmt_done(struct db *db, sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    db->bind_rc = SQLITE_OK;
}

/* Runs a statement that returns no rows. */
enum db_rc db_stmt_exec(struct db *db, sqlite3_stmt *s, const char *what)
{
    int rc = db_step(db, s);
    db_stmt_done(db, s);
    return db_rc_from(db, rc, what);
}

int64_t db_now(void)
{
    return (int64_t)time(NULL);
}

char *db_col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? xstrdup((const char *)t) : NULL;
}

unsigned char *db_col_blob(sqlite3_stmt *s, int i, size_t *len)
{
    const void *b = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);
    *len = (size_t)n;
    return b ? xmemdup(b, (size_t)n) : NULL;
}

void db_bind_text_or_null(struct db *db, sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        db_bind_text(db, s, i, v, -1);
    else
        sqlite3_bind_null(s, i);
}

static enum db_rc db_exec_script(struct db *db, const char *sql, const char *what)
{
    char *err = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        msg_error("db: %s: %s", what, err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return rc == SQLITE_BUSY ? DB_BUSY : rc == SQLITE_FULL ? DB_FULL : DB_ERR;
    }
    return DB_OK;
}

int db_schema_version(struct db *db)
{
    sqlite3_stmt *s;
    int v = -1;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static enum db_rc db_migrate(struct db *db)
{
    for (;;) {
        enum db_rc r = db_exec_script(db, "BEGIN IMMEDIATE", "migrate begin");
        if (r != DB_OK)
            return r;
        int v = db_schema_version(db);
        if (v < 0 || (size_t)v > db_migrations_count) {
            db_exec_script(db, "ROLLBACK", "migrate");
            msg_error("db: schema version %d is newer than this program (%zu)", v,
                      db_migrations_count);
            return DB_ERR;
        }
        if ((size_t)v == db_migrations_count)
            return db_exec_script(db, "COMMIT", "migrate commit");
        /* PRAGMA takes no bound parameters; v is our own integer. */
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if ((r = db_exec_script(db, db_migrations[v], "migrate")) != DB_OK ||
            (r = db_exec_script(db, pragma, "migrate version")) != DB_OK ||
            (r = db_exec_script(db, "COMMIT", "migrate commit")) != DB_OK) {
            db_exec_script(db, "ROLLBACK", "migrate rollback");
            return r;
        }
        msg_info("db: schema migrated to version %d", v + 1);
    }
}

/* fsync of the directory that holds path ("." when it names none). */
static int db_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return fsync_dir(".");
    if (slash == path)
        return fsync_dir("/");
    char *dir = xstrndup(path, (size_t)(slash - path));
    int r = fsync_dir(dir);
    int e = errno;
    free(dir);
    errno = e;
    return r;
}

enum db_rc db_open(const char *path, struct db **out)
{
    struct db *db = xcalloc(1, sizeof(*db));
    int rc = sqlite3_open_v2(
        path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        msg_error("db: open %s: %s", path, db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        sqlite3_close(db->h);
        free(db);
        return DB_ERR;
    }
    /* SQLite falls back to read-only when it cannot open the file for
     * writing (a transient EIO, EMFILE, ENFILE...): such a handle would make
     * every later write of this connection fail, for the whole life of the
     * worker that holds it. Refuse it here; the caller retries the open. */
    if (sqlite3_db_readonly(db->h, "main") == 1) {
        msg_error("db: open %s: opened read-only (could not open it for writing)", path);
        sqlite3_close(db->h);
        free(db);
        return DB_ERR;
    }
    sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db->h, 0);
    enum db_rc r;
    if ((r = db_exec_script(db, "PRAGMA journal_mode=WAL", "journal_mode")) != DB_OK ||
        (r = db_exec_script(db, "PRAGMA synchronous=FULL", "synchronous")) != DB_OK ||
        (r = db_exec_script(db, "PRAGMA foreign_keys=ON", "foreign_keys")) != DB_OK ||
        (r = db_exec_script(db, "PRAGMA secure_delete=ON", "secure_delete")) != DB_OK ||
        (r = db_migrate(db)) != DB_OK) {
        db_close(db);
        return r;
    }
    /*
     * The WAL (and -shm) now exist, maybe created just now: the last
     * connection's close deletes the WAL after its checkpoint. SQLite
     * fsyncs the directory of a new WAL itself but ignores a failure of
     * that fsync, so a commit could be acknowledged while the WAL's
     * directory entry is not on disk. We sync the directory here, before
     * any transaction, and a failure is an error like any other
     * (RULES.md 1: a failed fsync is never acknowledged).
     */
    if (db_sync_dir(path) != 0) {
        msg_error("db: fsync of the directory of %s: %s", path, strerror(errno));
        db_close(db);
        return DB_ERR;
    }
    *out = db;
    return DB_OK;
}

void db_never_wait(struct db *db)
{
    sqlite3_busy_timeout(db->h, 0);
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < DB_STMT_CACHE; i++)
        sqlite3_finalize(db->cache[i].st);
    sqlite3_close(db->h);
    free(db);
}

/* The WAL hook of a connection with deferred checkpoints (it replaces
 * SQLite's, which checkpoints here at DB_CHECKPOINT_PAGES). */
static int db_wal_noted(void *arg, sqlite3 *h, const char *name, int pages)
{
    ((struct db *)arg)->wal_pages = pages;
    if (pages >= DB_CHECKPOINT_PAGES_MAX)
        (void)sqlite3_wal_checkpoint(h, name); /* nobody else did it */
    return SQLITE_OK;
}

void db_defer_checkpoints(struct db *db)
{
    sqlite3_wal_hook(db->h, db_wal_noted, db);
}

bool db_checkpoint_wanted(const struct db *db)
{
    return db->wal_pages >= DB_CHECKPOINT_PAGES;
}

void db_checkpoint(struct db *db)
{
    int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* busy: another one runs */
        msg_warn("db: checkpoint: %s", sqlite3_errmsg(db->h));
}

enum db_rc db_begin(struct db *db)
{
    return db_stmt_exec(db, db_stmt(db, SQL_BEGIN), "begin");
}

enum db_rc db_commit(struct db *db)
{
    return db_stmt_exec(db, db_stmt(db, SQL_COMMIT), "commit");
}

void db_rollback(struct db *db)
{
    if (!sqlite3_get_autocommit(db->h))
        (void)db_stmt_exec(db, db_stmt(db, SQL_ROLLBACK), "rollback");
}

bool db_read_begin(struct db *db)
{
    if (!sqlite3_get_autocommit(db->h))
        return false;
    return db_stmt_exec(db, db_stmt(db, SQL_BEGIN_READ), "begin read") == DB_OK;
}

void db_read_end(struct db *db)
{
    /* Nothing was written: a failed COMMIT still leaves a rollback. */
    if (db_stmt_exec(db, db_stmt(db, SQL_COMMIT), "end read") != DB_OK)
        db_rollback(db);
}

/* ---- users ---- */

void db_user_clear(struct db_user *u)
{
    free(u->name);
    free(u->email);
    free(u->phone);
    free(u->plan);
    free(u->sk_password);
    free(u->sk_recovery);
    memset(u, 0, sizeof(*u));
}

static void user_from_row(sqlite3_stmt *s, struct db_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(s, 0);
    u->name = db_col_text(s, 1);
    u->email = db_col_text(s, 2);
    u->phone = db_col_text(s, 3);
    u->plan = db_col_text(s, 4);
    u->disabled = sqlite3_column_int(s, 5);
    u->created = sqlite3_column_int64(s, 6);
    if (sqlite3_column_bytes(s, 7) == DB_PUBKEY_BYTES)
        memcpy(u->public_key, sqlite3_column_blob(s, 7), DB_PUBKEY_BYTES);
    u->sk_password = db_col_blob(s, 8, &u->sk_password_len);
    u->sk_recovery = db_col_blob(s, 9, &u->sk_recovery_len);
}

enum db_rc db_user_insert(struct db *db, struct db_user *u)
{
    sqlite3_stmt *s = db_stmt(db, SQL_USER_INSERT);
    if (u->created == 0)
        u->created = db_now();
    db_bind_text(db, s, 1, u->name, -1);
    db_bind_text(db, s, 2, u->email, -1);
    db_bind_text_or_null(db, s, 3, u->phone);
    db_bind_text_or_null(db, s, 4, u->plan);
    sqlite3_bind_int(s, 5, u->disabled);
    sqlite3_bind_int64(s, 6, u->created);
    db_bind_blob(db, s, 7, u->public_key, DB_PUBKEY_BYTES);
    db_bind_blob(db, s, 8, u->sk_password, (int)u->sk_password_len);
    db_bind_blob(db, s, 9, u->sk_recovery, (int)u->sk_recovery_len);
    enum db_rc r = db_stmt_exec(db, s, "user insert");
    if (r == DB_OK)
        u->id = sqlite3_last_insert_rowid(db->h);
    return r;
}

static enum db_rc user_fetch(struct db *db, sqlite3_stmt *s, struct db_user *out)
{
    int rc = db_step(db, s);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        user_from_row(s, out);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "user get");
    }
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_user_get(struct db *db, const char *name, struct db_user *out)
{
    sqlite3_stmt *s = db_stmt(db, SQL_USER_GET);
    db_bind_text(db, s, 1, name, -1);
    return user_fetch(db, s, out);
}

enum db_rc db_user_get_by_id(struct db *db, int64_t id, struct db_user *out)
{
    sqlite3_stmt *s = db_stmt(db, SQL_USER_GET_ID);
    sqlite3_bind_int64(s, 1, id);
    return user_fetch(db, s, out);
}

enum db_rc db_user_foreach(struct db *db, int (*fn)(const struct db_user *u, void *arg), void *arg)
{
    sqlite3_stmt *s = db_stmt(db, SQL_USER_ALL);
    int rc;
    while ((rc = db_step(db, s)) == SQLITE_ROW) {
        struct db_user u;
        user_from_row(s, &u);
        int stop = fn(&u, arg);
        db_user_clear(&u);
        if (stop)
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "user list");
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_changed_one(struct db *db, enum db_rc r)
{
    if (r == DB_OK && sqlite3_changes(db->h) == 0)
        return DB_NOTFOUND;
    return r;
}

enum db_rc db_user_set_disabled(struct db *db, int64_t id, int disabled)
{
    sqlite3_stmt *s = db_stmt(db, SQL_USER_DISABLE);
    sqlite3_bind_int(s, 1, disabled);
    sqlite3_bind_int64(s, 2, id);
    return db_changed_one(db, db_stmt_exec(db, s, "user disable"));
}

enum db_rc db_user_set_wraps(struct db *db, int64_t id, const unsigned char *sk_password,
                             size_t pw_len, const unsigned char *sk_recovery, size_t rc_len)
{
    enum db_rc r = DB_OK;
    if (sk_password) {
        sqlite3_stmt *s = db_stmt(db, SQL_USER_WRAP_PW);
        db_bind_blob(db, s, 1, sk_password, (int)pw_len);
        sqlite3_bind_int64(s, 2, id);
        r = db_changed_one(db, db_stmt_exec(db, s, "user wrap"));
    }
    if (r == DB_OK && sk_recovery) {
        sqlite3_stmt *s = db_stmt(db, SQL_USER_WRAP_RC);
        db_bind_blob(db, s, 1, sk_recovery, (int)rc_len);
        sqlite3_bind_int64(s, 2, id);
        r = db_changed_one(db, db_stmt_exec(db, s, "user wrap"));
    }
    return r;
}

/* ---- addresses ---- */

enum db_rc db_address_insert(struct db *db, const char *address, int64_t user_id)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ADDR_INSERT);
    db_bind_text(db, s, 1, address, -1);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, db_now());
    return db_stmt_exec(db, s, "address insert");
}

enum db_rc db_address_lookup(struct db *db, const char *address, int64_t *user_id, int *retired)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ADDR_LOOKUP);
    db_bind_text(db, s, 1, address, -1);
    int rc = db_step(db, s);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        *user_id = sqlite3_column_int64(s, 0);
        *retired = sqlite3_column_int(s, 1);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "address lookup");
    }
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_address_retire(struct db *db, const char *address)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ADDR_RETIRE);
    db_bind_text(db, s, 1, address, -1);
    return db_changed_one(db, db_stmt_exec(db, s, "address retire"));
}

enum db_rc db_address_foreach(struct db *db, int64_t user_id,
                              int (*fn)(const struct db_address *a, void *arg), void *arg)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ADDR_OF_USER);
    sqlite3_bind_int64(s, 1, user_id);
    int rc;
    while ((rc = db_step(db, s)) == SQLITE_ROW) {
        struct db_address a = {
            .address = (const char *)sqlite3_column_text(s, 0),
            .user_id = sqlite3_column_int64(s, 1),
            .created = sqlite3_column_int64(s, 2),
            .retired = sqlite3_column_int(s, 3),
        };
        if (fn(&a, arg))
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "address list");
    db_stmt_done(db, s);
    return r;
}

/* ---- items ---- */

void db_item_clear(struct db_item *it)
{
    free(it->sealed_key);
    free(it->meta);
    memset(it, 0, sizeof(*it));
}

static void item_from_row(sqlite3_stmt *s, struct db_item *it)
{
    memset(it, 0, sizeof(*it));
    const unsigned char *id = sqlite3_column_text(s, 0);
    const unsigned char *blob = sqlite3_column_text(s, 4);
    snprintf(it->id, sizeof(it->id), "%s", id ? (const char *)id : "");
    it->user_id = sqlite3_column_int64(s, 1);
    it->received = sqlite3_column_int64(s, 2);
    it->size = sqlite3_column_int64(s, 3);
    snprintf(it->blob, sizeof(it->blob), "%s", blob ? (const char *)blob : "");
    it->sealed_key = db_col_blob(s, 5, &it->sealed_key_len);
    it->meta = db_col_blob(s, 6, &it->meta_len);
}

enum db_rc db_item_insert(struct db *db, const struct db_item *it)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ITEM_INSERT);
    db_bind_text(db, s, 1, it->id, -1);
    sqlite3_bind_int64(s, 2, it->user_id);
    sqlite3_bind_int64(s, 3, it->received);
    sqlite3_bind_int64(s, 4, it->size);
    db_bind_text(db, s, 5, it->blob, -1);
    db_bind_blob(db, s, 6, it->sealed_key, (int)it->sealed_key_len);
    db_bind_blob(db, s, 7, it->meta, (int)it->meta_len);
    return db_stmt_exec(db, s, "item insert");
}

enum db_rc db_item_get(struct db *db, int64_t user_id, const char *id, struct db_item *out)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ITEM_GET);
    sqlite3_bind_int64(s, 1, user_id);
    db_bind_text(db, s, 2, id, -1);
    int rc = db_step(db, s);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        item_from_row(s, out);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "item get");
    }
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_item_foreach(struct db *db, int64_t user_id,
                           int (*fn)(const struct db_item *it, void *arg), void *arg)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ITEM_OF_USER);
    sqlite3_bind_int64(s, 1, user_id);
    int rc;
    while ((rc = db_step(db, s)) == SQLITE_ROW) {
        struct db_item it;
        item_from_row(s, &it);
        int stop = fn(&it, arg);
        db_item_clear(&it);
        if (stop)
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "item list");
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_item_usage(struct db *db, int64_t user_id, int64_t *bytes)
{
    sqlite3_stmt *s = db_stmt(db, SQL_ITEM_USAGE);
    sqlite3_bind_int64(s, 1, user_id);
    int rc = db_step(db, s);
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "item usage");
    if (rc == SQLITE_ROW)
        *bytes = sqlite3_column_int64(s, 0);
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_blob_referenced(struct db *db, const char *blob)
{
    sqlite3_stmt *s = db_stmt(db, SQL_BLOB_REF);
    db_bind_text(db, s, 1, blob, -1);
    int rc = db_step(db, s);
    enum db_rc r = rc == SQLITE_ROW    ? DB_OK
                   : rc == SQLITE_DONE ? DB_NOTFOUND
                                       : db_rc_from(db, rc, "blob ref");
    db_stmt_done(db, s);
    return r;
}
