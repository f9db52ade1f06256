/*
 * db_internal — what the lib/db*.c files share. Only lib/db*.c include this
 * (STYLE.md 3: SQLite stays behind the store interface).
 *
 * A table's functions live in a lib/db_<table>.c file of their own: SQL as
 * `static const char SQL_X[] = "…"` constants, run through db_stmt (prepared
 * once per connection, cached by the constant's address) with bound values
 * only; schema changes are appended to db_migrations[] in lib/db_schema.c.
 */
#ifndef SEALPOST_DB_INTERNAL_H
#define SEALPOST_DB_INTERNAL_H

#include "lib/db.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Prepared statements one connection may hold. */
#define DB_STMT_CACHE 128

struct db_stmt_slot {
    const char *sql;
    sqlite3_stmt *st;
};

struct db {
    sqlite3 *h;
    struct db_stmt_slot cache[DB_STMT_CACHE];
    int wal_pages; /* checkpoints deferred: the WAL's length after the last commit */
    int bind_rc;   /* a failed db_bind_* since the last db_stmt_done (SQLITE_OK: none) */
};

/* migrations[i] brings schema version i to i + 1 (lib/db_schema.c). */
extern const char *const db_migrations[];
extern const size_t db_migrations_count;

/* The cached prepared statement of sql (a static constant). */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);
/* Bind a text / blob (copied). A failure is kept: db_step returns it. */
void db_bind_text(struct db *db, sqlite3_stmt *s, int i, const char *v, int n);
void db_bind_blob(struct db *db, sqlite3_stmt *s, int i, const void *v, int n);
/* sqlite3_step, or the error of a failed bind (then nothing runs). */
int db_step(struct db *db, sqlite3_stmt *s);
/* Resets and clears bindings (and a failed bind) after use. */
void db_stmt_done(struct db *db, sqlite3_stmt *s);
/* Steps a statement that returns no rows, then db_stmt_done. */
enum db_rc db_stmt_exec(struct db *db, sqlite3_stmt *s, const char *what);
/* SQLite result code -> db_rc (logs errors). */
enum db_rc db_rc_from(struct db *db, int rc, const char *what);
/* DB_NOTFOUND when the last statement changed no row. */
enum db_rc db_changed_one(struct db *db, enum db_rc r);

int64_t db_now(void);
char *db_col_text(sqlite3_stmt *s, int i);
unsigned char *db_col_blob(sqlite3_stmt *s, int i, size_t *len);
void db_bind_text_or_null(struct db *db, sqlite3_stmt *s, int i, const char *v);

#endif
