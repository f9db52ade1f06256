/*
 * test_db — the SQLite store on a real database file: schema creation and
 * re-open, users, addresses (retired ones never reused), items and usage,
 * the usage counter's migration over a store that already has items,
 * checkpoints deferred out of a connection's commits, and a value SQLite
 * could not copy when it was bound (an error, never a wrong answer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/db.h"
#include "lib/db_internal.h"
#include "lib/xalloc.h"

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/sp-test-db-XXXXXX";
static char *path;

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    path = xasprintf("%s/%s", dir, DB_FILE_NAME);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf %s", dir);
    int r = system(cmd);
    free(cmd);
    free(path);
    return r == 0 ? 0 : -1;
}

/* SQLite's allocator, wrapped: when armed, the next allocation of at least
 * FAIL_MIN_BYTES fails (bigger than a lookaside slot, so SQLite must ask
 * the allocator: a bound copy of a long text). */
#define FAIL_MIN_BYTES 2000
static sqlite3_mem_methods real_mem;
static int fail_armed;

static void *failing_malloc(int n)
{
    if (fail_armed && n >= FAIL_MIN_BYTES) {
        fail_armed = 0;
        return NULL;
    }
    return real_mem.xMalloc(n);
}

static void *failing_realloc(void *p, int n)
{
    if (fail_armed && n >= FAIL_MIN_BYTES) {
        fail_armed = 0;
        return NULL;
    }
    return real_mem.xRealloc(p, n);
}

static void make_user(struct db_user *u, const char *name)
{
    static unsigned char wrap[110];
    memset(u, 0, sizeof(*u));
    u->name = (char *)name;
    u->email = (char *)"x@example.org";
    memset(u->public_key, name[0], sizeof(u->public_key));
    u->sk_password = u->sk_recovery = wrap;
    u->sk_password_len = u->sk_recovery_len = sizeof(wrap);
}

static void test_open_and_reopen(void **state)
{
    (void)state;
    struct db *db;
    assert_int_equal(db_open(path, &db), DB_OK);
    int v = db_schema_version(db);
    assert_true(v >= 1);
    db_close(db);
    assert_int_equal(db_open(path, &db), DB_OK);
    assert_int_equal(db_schema_version(db), v);
    db_close(db);
}

static void test_users_and_addresses(void **state)
{
    (void)state;
    struct db *db;
    assert_int_equal(db_open(path, &db), DB_OK);
    struct db_user u, got;
    make_user(&u, "alice");
    assert_int_equal(db_user_insert(db, &u), DB_OK);
    assert_true(u.id > 0);
    make_user(&u, "alice");
    assert_int_equal(db_user_insert(db, &u), DB_EXISTS);

    assert_int_equal(db_user_get(db, "alice", &got), DB_OK);
    assert_string_equal(got.name, "alice");
    assert_int_equal(got.sk_password_len, 110);
    assert_int_equal(got.public_key[0], 'a');
    int64_t id = got.id;
    db_user_clear(&got);
    assert_int_equal(db_user_get(db, "nobody", &got), DB_NOTFOUND);

    assert_int_equal(db_user_set_disabled(db, id, 1), DB_OK);
    assert_int_equal(db_user_get_by_id(db, id, &got), DB_OK);
    assert_int_equal(got.disabled, 1);
    db_user_clear(&got);
    assert_int_equal(db_user_set_disabled(db, 9999, 1), DB_NOTFOUND);

    assert_int_equal(db_address_insert(db, "abc@mailin.test", id), DB_OK);
    assert_int_equal(db_address_insert(db, "abc@mailin.test", id), DB_EXISTS);
    int64_t uid = 0;
    int retired = -1;
    assert_int_equal(db_address_lookup(db, "abc@mailin.test", &uid, &retired), DB_OK);
    assert_int_equal(uid, id);
    assert_int_equal(retired, 0);
    assert_int_equal(db_address_retire(db, "abc@mailin.test"), DB_OK);
    assert_int_equal(db_address_retire(db, "abc@mailin.test"), DB_NOTFOUND);
    assert_int_equal(db_address_lookup(db, "abc@mailin.test", &uid, &retired), DB_OK);
    assert_int_equal(retired, 1);
    /* A retired address is never issued again. */
    assert_int_equal(db_address_insert(db, "abc@mailin.test", id), DB_EXISTS);
    db_close(db);
}

static int count_items(const struct db_item *it, void *arg)
{
    (void)it;
    (*(int *)arg)++;
    return 0;
}

static void test_items(void **state)
{
    (void)state;
    struct db *db;
    assert_int_equal(db_open(path, &db), DB_OK);
    struct db_user u;
    make_user(&u, "bob");
    assert_int_equal(db_user_insert(db, &u), DB_OK);
    unsigned char key[80] = {1}, meta[10] = {2};
    struct db_item it = {.user_id = u.id,
                         .received = 100,
                         .size = 1000,
                         .sealed_key = key,
                         .sealed_key_len = sizeof(key),
                         .meta = meta,
                         .meta_len = sizeof(meta)};
    snprintf(it.id, sizeof(it.id), "item1");
    snprintf(it.blob, sizeof(it.blob), "blob1");
    assert_int_equal(db_begin(db), DB_OK);
    assert_int_equal(db_item_insert(db, &it), DB_OK);
    snprintf(it.id, sizeof(it.id), "item2");
    snprintf(it.blob, sizeof(it.blob), "blob2");
    it.size = 500;
    assert_int_equal(db_item_insert(db, &it), DB_OK);
    assert_int_equal(db_commit(db), DB_OK);

    /* A rolled back insert leaves nothing. */
    assert_int_equal(db_begin(db), DB_OK);
    snprintf(it.id, sizeof(it.id), "item3");
    snprintf(it.blob, sizeof(it.blob), "blob3");
    assert_int_equal(db_item_insert(db, &it), DB_OK);
    db_rollback(db);

    int64_t used = 0;
    assert_int_equal(db_item_usage(db, u.id, &used), DB_OK);
    assert_int_equal(used, 1500);
    int n = 0;
    assert_int_equal(db_item_foreach(db, u.id, count_items, &n), DB_OK);
    assert_int_equal(n, 2);
    struct db_item got;
    assert_int_equal(db_item_get(db, u.id, "item2", &got), DB_OK);
    assert_string_equal(got.blob, "blob2");
    assert_int_equal(got.sealed_key_len, 80);
    db_item_clear(&got);
    assert_int_equal(db_item_get(db, u.id, "item3", &got), DB_NOTFOUND);
    assert_int_equal(db_blob_referenced(db, "blob1"), DB_OK);
    assert_int_equal(db_blob_referenced(db, "blob3"), DB_NOTFOUND);
    db_close(db);
}

static int collect_kinds(const struct db_event *e, void *arg)
{
    char *acc = arg;
    strcat(acc, e->kind);
    strcat(acc, e->client ? "@" : ",");
    return 0;
}

static void test_events(void **state)
{
    (void)state;
    struct db *db;
    assert_int_equal(db_open(path, &db), DB_OK);
    struct db_event e1 = {.subject = "send1", .kind = "created"};
    struct db_event e2 = {.subject = "send1", .kind = "page_opened", .client = "127.0.0.1"};
    struct db_event e3 = {.subject = "send2", .kind = "created"};
    assert_int_equal(db_event_add(db, &e1), DB_OK);
    assert_int_equal(db_event_add(db, &e2), DB_OK);
    assert_int_equal(db_event_add(db, &e3), DB_OK);
    char acc[128] = "";
    assert_int_equal(db_event_foreach(db, "send1", collect_kinds, acc), DB_OK);
    assert_string_equal(acc, "created,page_opened@");
    assert_int_equal(db_event_delete(db, "send1"), DB_OK);
    acc[0] = '\0';
    assert_int_equal(db_event_foreach(db, "send1", collect_kinds, acc), DB_OK);
    assert_string_equal(acc, "");
    assert_int_equal(db_event_foreach(db, "send2", collect_kinds, acc), DB_OK);
    assert_string_equal(acc, "created,");
    db_close(db);
}

/* A store made by the previous schema, with items, migrated by db_open:
 * the usage counter starts at the sum of what is there, and later inserts
 * add to it. */
static void test_usage_migration(void **state)
{
    (void)state;
    char *old = xasprintf("%s/old.db", dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(old, &h), SQLITE_OK);
    for (size_t v = 0; v + 1 < db_migrations_count; v++)
        assert_int_equal(sqlite3_exec(h, db_migrations[v], NULL, NULL, NULL), SQLITE_OK);
    char *pragma = xasprintf("PRAGMA user_version = %zu", db_migrations_count - 1);
    assert_int_equal(sqlite3_exec(h, pragma, NULL, NULL, NULL), SQLITE_OK);
    free(pragma);
    assert_int_equal(
        sqlite3_exec(h,
                     "INSERT INTO users (id, name, email, public_key, sk_password, sk_recovery, "
                     "plan, created) VALUES (7, 'old', 'o@example.org', x'00', x'00', x'00', "
                     "'default', 1);"
                     "INSERT INTO items VALUES ('i1', 7, 1, 300, 'b1', x'00', x'00');"
                     "INSERT INTO items VALUES ('i2', 7, 2, 45, 'b2', x'00', x'00');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(h);

    struct db *db;
    assert_int_equal(db_open(old, &db), DB_OK);
    assert_int_equal(db_schema_version(db), (int)db_migrations_count);
    int64_t used = 0;
    assert_int_equal(db_item_usage(db, 7, &used), DB_OK);
    assert_int_equal(used, 345);
    unsigned char key[8] = {1}, meta[4] = {2};
    struct db_item it = {.user_id = 7,
                         .received = 3,
                         .size = 5,
                         .sealed_key = key,
                         .sealed_key_len = sizeof(key),
                         .meta = meta,
                         .meta_len = sizeof(meta)};
    snprintf(it.id, sizeof(it.id), "i3");
    snprintf(it.blob, sizeof(it.blob), "b3");
    assert_int_equal(db_begin(db), DB_OK);
    assert_int_equal(db_item_insert(db, &it), DB_OK);
    assert_int_equal(db_commit(db), DB_OK);
    assert_int_equal(db_item_usage(db, 7, &used), DB_OK);
    assert_int_equal(used, 350);
    /* A user without items uses nothing. */
    assert_int_equal(db_item_usage(db, 8, &used), DB_OK);
    assert_int_equal(used, 0);
    db_close(db);
    free(old);
}

/* Inserts one row of `bytes` random bytes in a transaction of its own. */
static void fill_row(struct db *db, int bytes)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db->h, "INSERT INTO fill VALUES (randomblob(?))", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int(st, 1, bytes);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/*
 * A connection with deferred checkpoints never checkpoints in its commits
 * below DB_CHECKPOINT_PAGES_MAX: its WAL grows past DB_CHECKPOINT_PAGES
 * (where SQLite's own hook would have started it over) until a checkpoint
 * on another connection, after which its next commit starts the WAL over.
 * With nobody checkpointing, it checkpoints itself at the bound. Nothing
 * committed is lost.
 */
static void test_deferred_checkpoints(void **state)
{
    (void)state;
    char *p = xasprintf("%s/checkpoints.db", dir);
    struct db *db, *other;
    assert_int_equal(db_open(p, &db), DB_OK);
    assert_int_equal(db_open(p, &other), DB_OK);
    db_defer_checkpoints(db);
    assert_int_equal(sqlite3_exec(db->h, "CREATE TABLE fill (b BLOB)", NULL, NULL, NULL),
                     SQLITE_OK);
    int rows = 0, last = 0;
    while (!db_checkpoint_wanted(db) && rows < 4 * DB_CHECKPOINT_PAGES) {
        fill_row(db, 8000); /* a row with two overflow pages */
        rows++;
        assert_true(db->wal_pages > last); /* grows: never started over */
        last = db->wal_pages;
    }
    assert_true(db_checkpoint_wanted(db));
    for (int i = 0; i < 20; i++, rows++) /* past the point, still no checkpoint */
        fill_row(db, 8000);
    assert_true(db->wal_pages > last);

    db_checkpoint(other);
    fill_row(db, 8000);
    rows++;
    assert_true(db->wal_pages < 16);
    assert_false(db_checkpoint_wanted(db));

    /* Nobody checkpoints: the commit that reaches the bound does. */
    bool restarted = false;
    last = db->wal_pages;
    for (int i = 0; i < 4 * DB_CHECKPOINT_PAGES && !restarted; i++, rows++) {
        fill_row(db, 40000);
        assert_true(db->wal_pages <= DB_CHECKPOINT_PAGES_MAX + 16);
        restarted = db->wal_pages < last;
        last = db->wal_pages;
    }
    assert_true(restarted);
    db_close(db);

    /* Every row is in the database. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(other->h, "SELECT count(*) FROM fill", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), rows);
    sqlite3_finalize(st);
    db_close(other);
    free(p);
}

/* A bind whose copy cannot be allocated leaves the parameter NULL, and the
 * statement would still run: a lookup of an existing address would say
 * "no such address" (a permanent 5.1.1 for a lack of memory). */
static void test_failed_bind(void **state)
{
    (void)state;
    struct db *db;
    assert_int_equal(db_open(path, &db), DB_OK);
    struct db_user u;
    make_user(&u, "bindy");
    assert_int_equal(db_user_insert(db, &u), DB_OK);
    char addr[FAIL_MIN_BYTES + 100];
    memset(addr, 'b', sizeof(addr) - 1);
    addr[sizeof(addr) - 1] = '\0';
    memcpy(addr + sizeof(addr) - 1 - strlen("@mailin.test"), "@mailin.test",
           strlen("@mailin.test"));
    assert_int_equal(db_address_insert(db, addr, u.id), DB_OK);
    int64_t uid = 0;
    int retired = -1;
    assert_int_equal(db_address_lookup(db, addr, &uid, &retired), DB_OK);

    fail_armed = 1;
    assert_int_equal(db_address_lookup(db, addr, &uid, &retired), DB_ERR);
    assert_int_equal(fail_armed, 0); /* the fault was the bind's copy */
    /* The statement is usable again at once. */
    uid = 0;
    assert_int_equal(db_address_lookup(db, addr, &uid, &retired), DB_OK);
    assert_int_equal(uid, u.id);

    /* A write: an address whose bind failed is not inserted as NULL. */
    addr[0] = 'c';
    fail_armed = 1;
    assert_int_equal(db_address_insert(db, addr, u.id), DB_ERR);
    assert_int_equal(db_address_lookup(db, addr, &uid, &retired), DB_NOTFOUND);
    db_close(db);
}

/* db_read_begin: lookups see one snapshot until db_read_end; inside an
 * open transaction it starts nothing. */
static void test_read_snapshot(void **state)
{
    (void)state;
    char *p = xasprintf("%s/snapshot.db", dir);
    struct db *reader, *writer;
    assert_int_equal(db_open(p, &reader), DB_OK);
    assert_int_equal(db_open(p, &writer), DB_OK);
    struct db_user u;
    make_user(&u, "snap");
    assert_int_equal(db_user_insert(writer, &u), DB_OK);
    int64_t uid = 0;
    int retired = 0;

    assert_true(db_read_begin(reader));
    assert_int_equal(db_address_lookup(reader, "new@mailin.test", &uid, &retired), DB_NOTFOUND);
    /* Committed by another connection meanwhile: not in this snapshot. */
    assert_int_equal(db_address_insert(writer, "new@mailin.test", u.id), DB_OK);
    assert_int_equal(db_address_lookup(reader, "new@mailin.test", &uid, &retired), DB_NOTFOUND);
    db_read_end(reader);
    /* A statement on its own sees it. */
    assert_int_equal(db_address_lookup(reader, "new@mailin.test", &uid, &retired), DB_OK);
    assert_int_equal(uid, u.id);

    /* Within a write transaction: nothing started, the transaction stays. */
    assert_int_equal(db_begin(reader), DB_OK);
    assert_false(db_read_begin(reader));
    assert_int_equal(db_commit(reader), DB_OK);
    /* Ended: another read transaction and a write one can start. */
    assert_true(db_read_begin(reader));
    db_read_end(reader);
    assert_int_equal(db_begin(reader), DB_OK);
    db_rollback(reader);

    db_close(writer);
    db_close(reader);
    free(p);
}

int main(void)
{
    /* Before SQLite initialises (test_failed_bind). */
    sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK)
        return 1;
    m = real_mem;
    m.xMalloc = failing_malloc;
    m.xRealloc = failing_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_reopen), cmocka_unit_test(test_users_and_addresses),
        cmocka_unit_test(test_items),           cmocka_unit_test(test_usage_migration),
        cmocka_unit_test(test_events),          cmocka_unit_test(test_deferred_checkpoints),
        cmocka_unit_test(test_failed_bind),     cmocka_unit_test(test_read_snapshot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
