/*
 * db_sms — SMS bookkeeping (see db.h "SMS bookkeeping"): the health of each
 * route (consecutive failures, cool-down), the rate-limit counters of the
 * mTAN flow, and the SMS outbox.
 *
 * Where it sits: below sendlink/sms*.c (router, mTAN) and `sms test`.
 * Nothing here is a secret or a phone number: counters are keyed by the
 * caller (a keyed hash of the number, a user id, a country code), the outbox
 * holds ids, route names and the provider's reference.
 *
 * Counters move in single statements or in one transaction (caps_take), so
 * two processes (serve and a CLI) never lose an increment; the probe after a
 * cool-down is claimed with a guarded UPDATE, so one caller probes.
 */
#include "lib/db.h"
#include "lib/db_internal.h"
#include "lib/xalloc.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_COLS "name, failures, skip_until, last_ok, last_fail, last_error"
#define OUT_COLS                                                                                   \
    "id, send_id, kind, state, created, updated, route, provider_ref, attempts, last_error"

static const char SQL_ROUTE_GET[] = "SELECT " ROUTE_COLS " FROM sms_routes WHERE name = ?";
static const char SQL_ROUTE_ALL[] = "SELECT " ROUTE_COLS " FROM sms_routes ORDER BY name";
static const char SQL_ROUTE_OK[] =
    "INSERT INTO sms_routes (name, failures, skip_until, last_ok) VALUES (?1, 0, 0, ?2) "
    "ON CONFLICT(name) DO UPDATE SET failures = 0, skip_until = 0, last_ok = ?2";
static const char SQL_ROUTE_FAILED[] =
    "INSERT INTO sms_routes (name, failures, skip_until, last_fail, last_error) "
    "VALUES (?1, 1, CASE WHEN 1 >= ?3 THEN ?4 ELSE 0 END, ?2, ?5) "
    "ON CONFLICT(name) DO UPDATE SET failures = failures + 1, last_fail = ?2, last_error = ?5, "
    "skip_until = CASE WHEN failures + 1 >= ?3 THEN ?4 ELSE skip_until END "
    "RETURNING failures";
static const char SQL_ROUTE_PROBE[] =
    "UPDATE sms_routes SET skip_until = ?3 WHERE name = ?1 AND skip_until <= ?2";

static const char SQL_CAP_GET[] =
    "SELECT count FROM sms_counters WHERE scope = ? AND key = ? AND slot_end = ?";
static const char SQL_CAP_ADD[] =
    "INSERT INTO sms_counters (scope, key, slot_end, count) VALUES (?1, ?2, ?3, 1) "
    "ON CONFLICT(scope, key, slot_end) DO UPDATE SET count = count + 1 RETURNING count";
static const char SQL_CAP_SUB[] = "UPDATE sms_counters SET count = count - 1 "
                                  "WHERE scope = ? AND key = ? AND slot_end = ? AND count > 0";
static const char SQL_CAP_PURGE[] = "DELETE FROM sms_counters WHERE slot_end < ?";

static const char SQL_OUT_INSERT[] =
    "INSERT INTO sms_outbox (" OUT_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?)";
static const char SQL_OUT_FINISH[] =
    "UPDATE sms_outbox SET state = ?, updated = ?, route = ?, provider_ref = ?, attempts = ?, "
    "last_error = ? WHERE id = ?";
static const char SQL_OUT_OF[] =
    "SELECT " OUT_COLS " FROM sms_outbox WHERE send_id = ? ORDER BY created, rowid";
static const char SQL_OUT_ALL[] = "SELECT " OUT_COLS " FROM sms_outbox ORDER BY created, rowid";
static const char SQL_OUT_PURGE[] = "DELETE FROM sms_outbox WHERE created < ?";

/* ---- route health ---- */

void db_sms_route_clear(struct db_sms_route *r)
{
    free(r->last_error);
    memset(r, 0, sizeof(*r));
}

static void route_from_row(sqlite3_stmt *st, struct db_sms_route *r)
{
    memset(r, 0, sizeof(*r));
    const unsigned char *name = sqlite3_column_text(st, 0);
    snprintf(r->name, sizeof(r->name), "%s", name ? (const char *)name : "");
    r->failures = sqlite3_column_int64(st, 1);
    r->skip_until = sqlite3_column_int64(st, 2);
    r->last_ok = sqlite3_column_int64(st, 3);
    r->last_fail = sqlite3_column_int64(st, 4);
    r->last_error = db_col_text(st, 5);
}

enum db_rc db_sms_route_get(struct db *db, const char *name, struct db_sms_route *out)
{
    sqlite3_stmt *st = db_stmt(db, SQL_ROUTE_GET);
    db_bind_text(db, st, 1, name, -1);
    int rc = db_step(db, st);
    enum db_rc r = DB_NOTFOUND;
    if (rc == SQLITE_ROW) {
        route_from_row(st, out);
        r = DB_OK;
    } else if (rc != SQLITE_DONE) {
        r = db_rc_from(db, rc, "sms route get");
    }
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_sms_route_ok(struct db *db, const char *name, int64_t now)
{
    sqlite3_stmt *st = db_stmt(db, SQL_ROUTE_OK);
    db_bind_text(db, st, 1, name, -1);
    sqlite3_bind_int64(st, 2, now);
    return db_stmt_exec(db, st, "sms route ok");
}

enum db_rc db_sms_route_failed(struct db *db, const char *name, int64_t now, int64_t threshold,
                               int64_t cool_until, const char *error, int64_t *failures)
{
    sqlite3_stmt *st = db_stmt(db, SQL_ROUTE_FAILED);
    db_bind_text(db, st, 1, name, -1);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, threshold);
    sqlite3_bind_int64(st, 4, cool_until);
    db_bind_text_or_null(db, st, 5, error);
    int rc = db_step(db, st);
    enum db_rc r;
    if (rc == SQLITE_ROW) {
        if (failures)
            *failures = sqlite3_column_int64(st, 0);
        rc = db_step(db, st);
    }
    r = rc == SQLITE_DONE ? DB_OK : db_rc_from(db, rc, "sms route failed");
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_sms_route_probe(struct db *db, const char *name, int64_t now, int64_t cool_until)
{
    sqlite3_stmt *st = db_stmt(db, SQL_ROUTE_PROBE);
    db_bind_text(db, st, 1, name, -1);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, cool_until);
    return db_changed_one(db, db_stmt_exec(db, st, "sms route probe"));
}

enum db_rc db_sms_route_foreach(struct db *db, int (*fn)(const struct db_sms_route *r, void *arg),
                                void *arg)
{
    sqlite3_stmt *st = db_stmt(db, SQL_ROUTE_ALL);
    int rc;
    while ((rc = db_step(db, st)) == SQLITE_ROW) {
        struct db_sms_route r;
        route_from_row(st, &r);
        int stop = fn(&r, arg);
        db_sms_route_clear(&r);
        if (stop)
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "sms route list");
    db_stmt_done(db, st);
    return r;
}

/* ---- rate-limit counters ---- */

static void cap_bind(struct db *db, sqlite3_stmt *st, const struct db_sms_cap *c)
{
    db_bind_text(db, st, 1, c->scope, -1);
    db_bind_text(db, st, 2, c->key, -1);
    sqlite3_bind_int64(st, 3, c->slot_end);
}

static enum db_rc cap_count(struct db *db, const struct db_sms_cap *c, int64_t *count)
{
    sqlite3_stmt *st = db_stmt(db, SQL_CAP_GET);
    cap_bind(db, st, c);
    int rc = db_step(db, st);
    enum db_rc r = DB_OK;
    *count = 0;
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        r = db_rc_from(db, rc, "sms cap get");
    db_stmt_done(db, st);
    return r;
}

static enum db_rc cap_add(struct db *db, struct db_sms_cap *c)
{
    sqlite3_stmt *st = db_stmt(db, SQL_CAP_ADD);
    cap_bind(db, st, c);
    int rc = db_step(db, st);
    if (rc == SQLITE_ROW) {
        c->count = sqlite3_column_int64(st, 0);
        rc = db_step(db, st);
    }
    enum db_rc r = rc == SQLITE_DONE ? DB_OK : db_rc_from(db, rc, "sms cap add");
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_sms_caps_take(struct db *db, struct db_sms_cap *caps, size_t n, int *over)
{
    *over = -1;
    enum db_rc r = db_begin(db);
    if (r != DB_OK)
        return r;
    for (size_t i = 0; i < n && r == DB_OK; i++) {
        int64_t count = 0;
        r = cap_count(db, &caps[i], &count);
        caps[i].count = count;
        if (r == DB_OK && caps[i].limit > 0 && count >= caps[i].limit) {
            *over = (int)i;
            db_rollback(db);
            return DB_OK;
        }
    }
    for (size_t i = 0; i < n && r == DB_OK; i++)
        r = cap_add(db, &caps[i]);
    if (r == DB_OK)
        r = db_commit(db);
    if (r != DB_OK)
        db_rollback(db);
    return r;
}

enum db_rc db_sms_caps_give_back(struct db *db, const struct db_sms_cap *caps, size_t n)
{
    enum db_rc r = DB_OK;
    for (size_t i = 0; i < n && r == DB_OK; i++) {
        sqlite3_stmt *st = db_stmt(db, SQL_CAP_SUB);
        cap_bind(db, st, &caps[i]);
        r = db_stmt_exec(db, st, "sms cap give back");
    }
    return r;
}

enum db_rc db_sms_counters_purge(struct db *db, int64_t before)
{
    sqlite3_stmt *st = db_stmt(db, SQL_CAP_PURGE);
    sqlite3_bind_int64(st, 1, before);
    return db_stmt_exec(db, st, "sms counters purge");
}

/* ---- outbox ---- */

enum db_rc db_sms_outbox_insert(struct db *db, const struct db_sms_out *o)
{
    sqlite3_stmt *st = db_stmt(db, SQL_OUT_INSERT);
    int64_t now = o->created ? o->created : db_now();
    db_bind_text(db, st, 1, o->id, -1);
    db_bind_text_or_null(db, st, 2, o->send_id);
    db_bind_text(db, st, 3, o->kind, -1);
    db_bind_text(db, st, 4, o->state ? o->state : DB_SMS_SENDING, -1);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, o->updated ? o->updated : now);
    db_bind_text_or_null(db, st, 7, o->route);
    db_bind_text_or_null(db, st, 8, o->provider_ref);
    sqlite3_bind_int64(st, 9, o->attempts);
    db_bind_text_or_null(db, st, 10, o->last_error);
    return db_stmt_exec(db, st, "sms outbox insert");
}

enum db_rc db_sms_outbox_finish(struct db *db, const struct db_sms_out *o)
{
    sqlite3_stmt *st = db_stmt(db, SQL_OUT_FINISH);
    db_bind_text(db, st, 1, o->state, -1);
    sqlite3_bind_int64(st, 2, o->updated ? o->updated : db_now());
    db_bind_text_or_null(db, st, 3, o->route);
    db_bind_text_or_null(db, st, 4, o->provider_ref);
    sqlite3_bind_int64(st, 5, o->attempts);
    db_bind_text_or_null(db, st, 6, o->last_error);
    db_bind_text(db, st, 7, o->id, -1);
    return db_changed_one(db, db_stmt_exec(db, st, "sms outbox finish"));
}

enum db_rc db_sms_outbox_foreach(struct db *db, const char *send_id,
                                 int (*fn)(const struct db_sms_out *o, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (send_id) {
        st = db_stmt(db, SQL_OUT_OF);
        db_bind_text(db, st, 1, send_id, -1);
    } else {
        st = db_stmt(db, SQL_OUT_ALL);
    }
    int rc;
    while ((rc = db_step(db, st)) == SQLITE_ROW) {
        struct db_sms_out o;
        memset(&o, 0, sizeof(o));
        const unsigned char *id = sqlite3_column_text(st, 0);
        snprintf(o.id, sizeof(o.id), "%s", id ? (const char *)id : "");
        o.send_id = (const char *)sqlite3_column_text(st, 1);
        o.kind = (const char *)sqlite3_column_text(st, 2);
        o.state = (const char *)sqlite3_column_text(st, 3);
        o.created = sqlite3_column_int64(st, 4);
        o.updated = sqlite3_column_int64(st, 5);
        o.route = (const char *)sqlite3_column_text(st, 6);
        o.provider_ref = (const char *)sqlite3_column_text(st, 7);
        o.attempts = sqlite3_column_int64(st, 8);
        o.last_error = (const char *)sqlite3_column_text(st, 9);
        if (fn(&o, arg))
            break;
    }
    enum db_rc r = rc == SQLITE_ROW ? DB_OK : db_rc_from(db, rc, "sms outbox list");
    db_stmt_done(db, st);
    return r;
}

enum db_rc db_sms_outbox_purge(struct db *db, int64_t before)
{
    sqlite3_stmt *st = db_stmt(db, SQL_OUT_PURGE);
    sqlite3_bind_int64(st, 1, before);
    return db_stmt_exec(db, st, "sms outbox purge");
}
