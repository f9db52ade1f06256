/*
 * db_event — the events table: what happened to a send (created, notified,
 * page opened, code failed, downloaded, locked, expired, revoked) with time
 * and client address. Details are short machine words, never secrets.
 */
#include "lib/db_internal.h"

static const char SQL_EVENT_ADD[] =
    "INSERT INTO events (subject, time, kind, client, detail) VALUES (?,?,?,?,?)";
static const char SQL_EVENT_OF[] =
    "SELECT subject, time, kind, client, detail FROM events WHERE subject = ? ORDER BY id";
static const char SQL_EVENT_DELETE[] = "DELETE FROM events WHERE subject = ?";

enum db_rc db_event_add(struct db *db, const struct db_event *e)
{
    sqlite3_stmt *s = db_stmt(db, SQL_EVENT_ADD);
    db_bind_text(db, s, 1, e->subject, -1);
    sqlite3_bind_int64(s, 2, e->time ? e->time : db_now());
    db_bind_text(db, s, 3, e->kind, -1);
    db_bind_text_or_null(db, s, 4, e->client);
    db_bind_text_or_null(db, s, 5, e->detail);
    return db_stmt_exec(db, s, "event add");
}

enum db_rc db_event_foreach(struct db *db, const char *subject,
                            int (*fn)(const struct db_event *e, void *arg), void *arg)
{
    sqlite3_stmt *s = db_stmt(db, SQL_EVENT_OF);
    db_bind_text(db, s, 1, subject, -1);
    int rc;
    while ((rc = db_step(db, s)) == SQLITE_ROW) {
        struct db_event e = {
            .subject = (const char *)sqlite3_column_text(s, 0),
            .time = sqlite3_column_int64(s, 1),
            .kind = (const char *)sqlite3_column_text(s, 2),
            .client = (const char *)sqlite3_column_text(s, 3),
            .detail = (const char *)sqlite3_column_text(s, 4),
        };
        if (fn(&e, arg))
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "event list");
    db_stmt_done(db, s);
    return r;
}

enum db_rc db_event_delete(struct db *db, const char *subject)
{
    sqlite3_stmt *s = db_stmt(db, SQL_EVENT_DELETE);
    db_bind_text(db, s, 1, subject, -1);
    return db_stmt_exec(db, s, "event delete");
}
