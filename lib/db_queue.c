/*
 * db_queue — the outbound_queue table: notification mail waiting for the
 * relay host (see the "outbound queue" section of db.h).
 *
 * The store holds the mail only as the encrypted record deliver/outbound
 * made; nothing here can read it. Claims are a single conditional UPDATE,
 * atomic under SQLite's write lock, so two processes (serve's runner and a
 * `queue flush`) never both own one mail.
 */
#include "lib/db_internal.h"
#include "lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define QUEUE_COLS                                                                                 \
    "id, send_id, kind, state, created, updated, next_try, lease, attempts, last_error, size"

static const char SQL_QUEUE_INSERT[] =
    "INSERT INTO outbound_queue (id, send_id, kind, state, created, updated, next_try, lease, "
    "attempts, last_error, size, data) VALUES (?,?,?,'" DB_QUEUE_QUEUED "',?,?,?,0,0,NULL,?,?)";
static const char SQL_QUEUE_DUE[] =
    "SELECT id FROM outbound_queue WHERE (state = '" DB_QUEUE_QUEUED "' AND next_try <= ?1) "
    "OR (state = '" DB_QUEUE_SENDING "' AND lease <= ?1) ORDER BY next_try, created LIMIT ?2";
static const char SQL_QUEUE_CLAIM[] =
    "UPDATE outbound_queue SET state = '" DB_QUEUE_SENDING "', lease = ?3, updated = ?2 "
    "WHERE id = ?1 AND ((state = '" DB_QUEUE_QUEUED "' AND next_try <= ?2) "
    "OR (state = '" DB_QUEUE_SENDING "' AND lease <= ?2))";
static const char SQL_QUEUE_GET[] = "SELECT " QUEUE_COLS ", data FROM outbound_queue WHERE id = ?";
static const char SQL_QUEUE_DEFER[] =
    "UPDATE outbound_queue SET state = '" DB_QUEUE_QUEUED "', attempts = attempts + 1, "
    "updated = ?2, next_try = ?3, lease = 0, last_error = ?4 WHERE id = ?1";
static const char SQL_QUEUE_FINISH[] =
    "UPDATE outbound_queue SET state = ?3, attempts = attempts + 1, updated = ?2, lease = 0, "
    "last_error = ?4, data = NULL WHERE id = ?1";
static const char SQL_QUEUE_FLUSH[] =
    "UPDATE outbound_queue SET next_try = ? WHERE state = '" DB_QUEUE_QUEUED "'";
static const char SQL_QUEUE_DEPTH[] =
    "SELECT COUNT(*) FROM outbound_queue WHERE state IN ('" DB_QUEUE_QUEUED "', '" DB_QUEUE_SENDING
    "')";
static const char SQL_QUEUE_ALL[] =
    "SELECT " QUEUE_COLS " FROM outbound_queue ORDER BY created, id";
static const char SQL_QUEUE_PURGE[] =
    "DELETE FROM outbound_queue WHERE state IN ('" DB_QUEUE_SENT "', '" DB_QUEUE_FAILED "') "
    "AND updated < ?";

enum db_rc db_queue_insert(struct db *db, const struct db_queue_entry *e)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_INSERT);
    db_bind_text(db, s, 1, e->id, -1);
    db_bind_text_or_null(db, s, 2, e->send_id);
    db_bind_text(db, s, 3, e->kind, -1);
    sqlite3_bind_int64(s, 4, e->created);
    sqlite3_bind_int64(s, 5, e->created);
    sqlite3_bind_int64(s, 6, e->next_try);
    sqlite3_bind_int64(s, 7, e->size);
    db_bind_blob(db, s, 8, e->data, (int)e->data_len);
    return db_stmt_exec(db, s, "queue insert");
}

enum db_rc db_queue_due(struct db *db, int64_t now, char (*ids)[DB_ID_MAX + 1], size_t max,
                        size_t *n)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_DUE);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int rc;
    *n = 0;
    while ((rc = db_step(db, s)) == SQLITE_ROW && *n < max) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        if (id == NULL || strlen(id) > DB_ID_MAX)
            continue;
        strcpy(ids[(*n)++], id);
    }
    enum db_rc r = db_rc_from(db, rc, "queue due");
    db_stmt_done(db, s);
    return r;
}

/* Fills e from a row of QUEUE_COLS (strings point into the statement). */
static void entry_from_row(sqlite3_stmt *s, struct db_queue_entry *e)
{
    const char *id = (const char *)sqlite3_column_text(s, 0);
    memset(e, 0, sizeof(*e));
    if (id && strlen(id) <= DB_ID_MAX)
        strcpy(e->id, id);
    e->send_id = (const char *)sqlite3_column_text(s, 1);
    e->kind = (const char *)sqlite3_column_text(s, 2);
    e->state = (const char *)sqlite3_column_text(s, 3);
    e->created = sqlite3_column_int64(s, 4);
    e->updated = sqlite3_column_int64(s, 5);
    e->next_try = sqlite3_column_int64(s, 6);
    e->lease = sqlite3_column_int64(s, 7);
    e->attempts = (unsigned)sqlite3_column_int64(s, 8);
    e->last_error = (const char *)sqlite3_column_text(s, 9);
    e->size = sqlite3_column_int64(s, 10);
}

enum db_rc db_queue_claim(struct db *db, const char *id, int64_t now, int64_t lease_until,
                          struct db_queue_entry *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_CLAIM);
    db_bind_text(db, s, 1, id, -1);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, lease_until);
    enum db_rc r = db_changed_one(db, db_stmt_exec(db, s, "queue claim"));
    if (r != DB_OK)
        return r;
    s = db_stmt(db, SQL_QUEUE_GET);
    db_bind_text(db, s, 1, id, -1);
    int rc = db_step(db, s);
    if (rc == SQLITE_ROW) {
        struct db_queue_entry e;
        entry_from_row(s, &e);
        *out = e;
        out->send_id = e.send_id ? xstrdup(e.send_id) : NULL;
        out->kind = xstrdup(e.kind ? e.kind : "");
        out->state = xstrdup(e.state ? e.state : "");
        out->last_error = e.last_error ? xstrdup(e.last_error) : NULL;
        out->data = db_col_blob(s, 11, &out->data_len);
        r = out->data ? DB_OK : DB_NOTFOUND;
    } else {
        r = rc == SQLITE_DONE ? DB_NOTFOUND : db_rc_from(db, rc, "queue get");
    }
    db_stmt_done(db, s);
    if (r != DB_OK)
        db_queue_entry_clear(out);
    return r;
}

void db_queue_entry_clear(struct db_queue_entry *e)
{
    free((char *)e->send_id);
    free((char *)e->kind);
    free((char *)e->state);
    free((char *)e->last_error);
    free((unsigned char *)e->data);
    memset(e, 0, sizeof(*e));
}

enum db_rc db_queue_defer(struct db *db, const char *id, int64_t now, int64_t next_try,
                          const char *error)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_DEFER);
    db_bind_text(db, s, 1, id, -1);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, next_try);
    db_bind_text_or_null(db, s, 4, error);
    return db_changed_one(db, db_stmt_exec(db, s, "queue defer"));
}

enum db_rc db_queue_finish(struct db *db, const char *id, int64_t now, const char *state,
                           const char *error)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_FINISH);
    db_bind_text(db, s, 1, id, -1);
    sqlite3_bind_int64(s, 2, now);
    db_bind_text(db, s, 3, state, -1);
    db_bind_text_or_null(db, s, 4, error);
    return db_changed_one(db, db_stmt_exec(db, s, "queue finish"));
}

enum db_rc db_queue_flush(struct db *db, int64_t now, int *n)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_FLUSH);
    sqlite3_bind_int64(s, 1, now);
    enum db_rc r = db_stmt_exec(db, s, "queue flush");
    *n = r == DB_OK ? sqlite3_changes(db->h) : 0;
    return r;
}

enum db_rc db_queue_foreach(struct db *db, int (*fn)(const struct db_queue_entry *e, void *arg),
                            void *arg)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_ALL);
    int rc;
    while ((rc = db_step(db, s)) == SQLITE_ROW) {
        struct db_queue_entry e;
        entry_from_row(s, &e);
        if (fn(&e, arg))
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "queue list");
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_queue_purge(struct db *db, int64_t before)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_PURGE);
    sqlite3_bind_int64(s, 1, before);
    return db_stmt_exec(db, s, "queue purge");
}

enum db_rc db_queue_depth(struct db *db, int64_t *n)
{
    sqlite3_stmt *s = db_stmt(db, SQL_QUEUE_DEPTH);
    int rc = db_step(db, s);
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "queue depth");
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(s, 0);
    db_stmt_done(db, s);
    return r;
}
