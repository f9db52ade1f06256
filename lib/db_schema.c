/*
 * db_schema — the store's schema, as the list of steps that build it.
 *
 * db_migrations[i] brings PRAGMA user_version i to i + 1; lib/db.c runs the
 * missing steps at open, each in its own transaction. Steps are never
 * edited once released: a change is a new step appended at the end.
 */
#include "lib/db_internal.h"

const char *const db_migrations[] = {
    /* 0 -> 1: users, addresses, vault items */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  email TEXT NOT NULL,"
    "  phone TEXT,"
    "  plan TEXT,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  public_key BLOB NOT NULL,"
    "  sk_password BLOB NOT NULL,"
    "  sk_recovery BLOB NOT NULL);"
    "CREATE TABLE addresses ("
    "  address TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  created INTEGER NOT NULL,"
    "  retired INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX addresses_user ON addresses(user_id);"
    "CREATE TABLE items ("
    "  id TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  received INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  blob TEXT NOT NULL UNIQUE,"
    "  sealed_key BLOB NOT NULL,"
    "  meta BLOB NOT NULL);"
    "CREATE INDEX items_user ON items(user_id, received);",
    /* 1 -> 2: events of secure sends (and anything else with an id) */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  subject TEXT NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  client TEXT,"
    "  detail TEXT);"
    "CREATE INDEX events_subject ON events(subject, id);",
};

const size_t db_migrations_count = sizeof(db_migrations) / sizeof(db_migrations[0]);
