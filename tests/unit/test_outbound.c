/*
 * test_outbound — deliver/outbound without a network:
 *  - DKIM: a key from outbound_dkim_keygen signs a composed mail; libopendkim
 *    verifies it offline (DKIM_QUERY_FILE with the record of
 *    outbound_dkim_record); a changed header breaks it; keygen refuses to
 *    overwrite without force and writes mode 0600;
 *  - the encrypted queue record: round trip, and refusal when the bytes, the
 *    queue id or the master key differ;
 *  - back-off: retry_min doubling up to retry_max;
 *  - the store: a claim is exclusive until its lease runs out;
 *  - a pass against a closed port defers, and one past max_queue_age gives
 *    up with a "notify_failed" event (time passed in, not waited for).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/outbound_internal.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "mime/mime_compose.h"

#include <gmime/gmime.h>
#include <opendkim/dkim.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/sp-test-outbound-XXXXXX";
static struct config *cfg;
static unsigned char *master;

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    char *conf = xasprintf("%s/sealpost.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    /* Port 1 on loopback: nothing listens, connections are refused. */
    fprintf(f, "[server]\nhostname = test.local\ndata_dir = data\nmaster_key = master.key\n"
               "[outbound]\nrelayhost = 127.0.0.1:1\nfrom = notify@example.org\n"
               "retry_min = 1s\nretry_max = 1m\nmax_queue_age = 1h\nsmtp_timeout = 2s\n");
    fclose(f);
    struct diag d = {0};
    int r = config_load(conf, &cfg, &d);
    diag_free(&d);
    free(conf);
    if (r < 0)
        return -1;
    char *data = xasprintf("%s/data", dir);
    r = mkdir(data, 0700);
    free(data);
    if (r < 0 || masterkey_create(cfg->master_key) < 0)
        return -1;
    master = masterkey_load(cfg->master_key);
    char *err = NULL;
    if (master == NULL || outbound_dkim_keygen(cfg->dkim_key, false, &err) < 0) {
        free(err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf %s", dir);
    int r = system(cmd);
    free(cmd);
    masterkey_free(master);
    config_unref(cfg);
    return r == 0 ? 0 : -1;
}

static struct db *db_open_test(void)
{
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    struct db *db = NULL;
    assert_int_equal(db_open(path, &db), DB_OK);
    free(path);
    return db;
}

/* Composes and signs a test mail; returns the signed bytes. */
/* noinline: GCC 12 sees a dangling pointer here that is not there. */
static __attribute__((noinline)) char *signed_mail(size_t *len)
{
    struct mime_compose_in in = {
        .from_addr = cfg->from,
        .from_name = "Zo\xc3\xab",
        .to_addr = "bob@example.net",
        .subject = "Gr\xc3\xbc\xc3\x9f"
                   "e",
        .text = "Open https://send.example/s/token\n.\nlast line\n",
        .html = "<p>Open</p>",
        .message_id = "t1@example.org",
        .date = 1700000000,
    };
    char *msg = NULL, *key = NULL, *out = NULL;
    size_t msglen = 0, keylen = 0;
    const char *err = NULL;
    assert_int_equal(mime_compose(&in, &msg, &msglen, &err), 0);
    assert_int_equal(read_file(cfg->dkim_key, OUTBOUND_DKIM_KEY_MAX, &key, &keylen), 0);
    int r = outbound_dkim_sign(key, cfg->dkim_selector, cfg->dkim_domain, "t1", msg, msglen, &out,
                               len, &err);
    if (r != 0)
        fail_msg("outbound_dkim_sign: got -1 (%s), want 0", err);
    free(key);
    free(msg);
    return out;
}

/* Verifies msg with libopendkim against the configured key's record. */
static DKIM_STAT verify(const char *msg, size_t len, int *passed)
{
    char *record = NULL, *err = NULL;
    assert_int_equal(outbound_dkim_record(cfg->dkim_key, &record, &err), 0);
    char *keyfile = xasprintf("%s/keys", dir);
    FILE *f = fopen(keyfile, "w");
    assert_non_null(f);
    fprintf(f, "%s._domainkey.%s %s\n", cfg->dkim_selector, cfg->dkim_domain, record);
    fclose(f);
    free(record);

    DKIM_LIB *lib = dkim_init(NULL, NULL);
    dkim_query_t qm = DKIM_QUERY_FILE;
    assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm, sizeof(qm)),
                     DKIM_STAT_OK);
    assert_int_equal(
        dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, keyfile, strlen(keyfile)),
        DKIM_STAT_OK);
    DKIM_STAT st;
    DKIM *d = dkim_verify(lib, (const unsigned char *)"v", NULL, &st);
    assert_non_null(d);
    st = dkim_chunk(d, (u_char *)msg, len);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(d, NULL, 0);
    if (st == DKIM_STAT_OK)
        st = dkim_eom(d, NULL);
    *passed = 0;
    DKIM_SIGINFO **sigs;
    int nsigs = 0;
    if (dkim_getsiglist(d, &sigs, &nsigs) == DKIM_STAT_OK && nsigs == 1) {
        DKIM_SIGINFO *s = sigs[0];
        *passed = (dkim_sig_getflags(s) & DKIM_SIGFLAG_PASSED) &&
                  dkim_sig_getbh(s) == DKIM_SIGBH_MATCH &&
                  strcmp((char *)dkim_sig_getdomain(s), "example.org") == 0 &&
                  dkim_sig_hdrsigned(s, (u_char *)"subject") &&
                  dkim_sig_hdrsigned(s, (u_char *)"message-id");
    }
    dkim_free(d);
    dkim_close(lib);
    unlink(keyfile);
    free(keyfile);
    return st;
}

static void test_dkim_sign_verify(void **state)
{
    (void)state;
    size_t len;
    char *msg = signed_mail(&len);
    assert_true(strncmp(msg, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53) == 0);
    int passed;
    DKIM_STAT st = verify(msg, len, &passed);
    if (st != DKIM_STAT_OK || !passed)
        fail_msg("verify: got stat %d passed %d, want %d and 1", st, passed, DKIM_STAT_OK);
    /* From is oversigned: h= names it twice. */
    const char *h = strstr(msg, "h=");
    assert_non_null(h);
    assert_non_null(strstr(h, "From:"));
    assert_non_null(strstr(h, ":from;"));

    /* A changed subject no longer verifies. */
    char *subj = strstr(msg, "\r\nSubject: ");
    assert_non_null(subj);
    subj[11] = subj[11] == 'X' ? 'Y' : 'X';
    st = verify(msg, len, &passed);
    if (passed)
        fail_msg("verify after tampering: got passed (stat %d), want a failure", st);
    free(msg);
}

static void test_dkim_keygen(void **state)
{
    (void)state;
    char *err = NULL;
    /* The setup's key exists: refused without force. */
    assert_int_equal(outbound_dkim_keygen(cfg->dkim_key, false, &err), -1);
    assert_non_null(strstr(err, "--force"));
    free(err);
    struct stat st;
    assert_int_equal(stat(cfg->dkim_key, &st), 0);
    if ((st.st_mode & 0777) != 0600)
        fail_msg("key mode: got %o, want 600", st.st_mode & 0777);

    char *other = xasprintf("%s/data/dkim/other.private", dir);
    char *r1 = NULL, *r2 = NULL;
    assert_int_equal(outbound_dkim_keygen(other, false, &err), 0);
    assert_int_equal(outbound_dkim_record(other, &r1, &err), 0);
    assert_int_equal(outbound_dkim_keygen(other, true, &err), 0);
    assert_int_equal(outbound_dkim_record(other, &r2, &err), 0);
    assert_true(strncmp(r1, "v=DKIM1; k=rsa; p=MII", 21) == 0);
    if (strcmp(r1, r2) == 0)
        fail_msg("keygen --force: got the same key again, want a new one");
    /* 2048-bit SPKI DER is 294 bytes: 392 base64 characters. */
    assert_int_equal(strlen(r1) - strlen("v=DKIM1; k=rsa; p="), 392);
    free(r1);
    free(r2);
    free(other);
}

static void test_record_seal_open(void **state)
{
    (void)state;
    struct outbound_record in = {
        .env_from = "notify@example.org",
        .rcpt = "bob@example.net",
        .msg = "Subject: x\r\n\r\nhttps://send.example/s/SECRET\r\n",
    };
    in.msg_len = strlen(in.msg);
    unsigned char *sealed;
    size_t n;
    outbound_record_seal(master, "id1", &in, &sealed, &n);
    assert_null(memmem(sealed, n, "SECRET", 6));
    assert_null(memmem(sealed, n, "bob@", 4));
    struct outbound_record out;
    assert_int_equal(outbound_record_open(master, "id1", sealed, n, &out), 0);
    assert_string_equal(out.env_from, in.env_from);
    assert_string_equal(out.rcpt, in.rcpt);
    assert_int_equal(out.msg_len, in.msg_len);
    assert_memory_equal(out.msg, in.msg, in.msg_len);
    outbound_record_clear(&out);

    /* Another row's id, a flipped byte, another key, a cut: all refused. */
    assert_int_equal(outbound_record_open(master, "id2", sealed, n, &out), -1);
    sealed[n / 2] ^= 1;
    assert_int_equal(outbound_record_open(master, "id1", sealed, n, &out), -1);
    sealed[n / 2] ^= 1;
    assert_int_equal(outbound_record_open(master, "id1", sealed, n - 1, &out), -1);
    unsigned char other[MASTERKEY_BYTES];
    memset(other, 7, sizeof(other));
    assert_int_equal(outbound_record_open(other, "id1", sealed, n, &out), -1);
    sealed[0] = OUTBOUND_RECORD_VERSION + 1;
    assert_int_equal(outbound_record_open(master, "id1", sealed, n, &out), -1);
    free(sealed);
}

static void test_backoff(void **state)
{
    (void)state;
    /* retry_min 1s, retry_max 1m */
    static const int64_t want[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int64_t got = outbound_backoff(cfg, i + 1);
        if (got != want[i])
            fail_msg("backoff after %u attempts: got %lld, want %lld", i + 1, (long long)got,
                     (long long)want[i]);
    }
}

static int find_event(const struct db_event *e, void *arg)
{
    char *out = arg;
    snprintf(out, 128, "%s %s", e->kind, e->detail ? e->detail : "-");
    return 0;
}

struct find_ctx {
    const char *id;
    struct db_queue_entry e;
    char state[16];
    char error[64];
};

static int find_entry(const struct db_queue_entry *e, void *arg)
{
    struct find_ctx *x = arg;
    if (strcmp(e->id, x->id) != 0)
        return 0;
    x->e = *e;
    snprintf(x->state, sizeof(x->state), "%s", e->state);
    snprintf(x->error, sizeof(x->error), "%s", e->last_error ? e->last_error : "");
    return 1;
}

static void test_claim_defer_expire(void **state)
{
    (void)state;
    struct db *db = db_open_test();
    struct outbound_mail m = {
        .to = "bob@example.net",
        .subject = "s",
        .text = "t",
        .send_id = "send-x",
        .kind = "notify",
    };
    char id[RAND_ID_LEN + 1];
    assert_int_equal(outbound_enqueue(db, cfg, master, &m, id), 0);
    int64_t now = (int64_t)time(NULL);

    /* Claims are exclusive until the lease runs out. */
    struct db_queue_entry e1, e2;
    assert_int_equal(db_queue_claim(db, id, now, now + 100, &e1), DB_OK);
    assert_int_equal(db_queue_claim(db, id, now, now + 100, &e2), DB_NOTFOUND);
    assert_int_equal(db_queue_claim(db, id, now + 100, now + 200, &e2), DB_OK);
    assert_string_equal(e2.send_id, "send-x");
    db_queue_entry_clear(&e1);
    db_queue_entry_clear(&e2);
    assert_int_equal(db_queue_defer(db, id, now, now, "test"), DB_OK);

    /* Nothing listens on the relay: deferred, next try retry_min later. */
    struct outbound_pass_stats st;
    assert_int_equal(outbound_deliver_due(db, cfg, master, now, &st), 0);
    if (st.deferred != 1 || st.delivered != 0 || st.failed != 0)
        fail_msg("pass 1: got %u/%u/%u delivered/deferred/failed, want 0/1/0", st.delivered,
                 st.deferred, st.failed);
    struct find_ctx x = {.id = id};
    assert_int_equal(db_queue_foreach(db, find_entry, &x), DB_OK);
    assert_string_equal(x.state, DB_QUEUE_QUEUED);
    assert_string_equal(x.error, "connect");
    assert_int_equal(x.e.attempts, 2); /* the manual defer above counted one */
    assert_true(x.e.next_try > now && x.e.next_try <= (int64_t)time(NULL) + 2);

    /* Not due yet: a pass at the same time does nothing. */
    assert_int_equal(outbound_deliver_due(db, cfg, master, now, &st), 0);
    assert_int_equal(st.deferred + st.delivered + st.failed, 0);

    /* Past max_queue_age: given up, with an event. */
    assert_int_equal(outbound_deliver_due(db, cfg, master, now + 3600 + 5, &st), 0);
    if (st.failed != 1)
        fail_msg("pass past max_queue_age: got %u failed, want 1", st.failed);
    memset(&x, 0, sizeof(x));
    x.id = id;
    assert_int_equal(db_queue_foreach(db, find_entry, &x), DB_OK);
    assert_string_equal(x.state, DB_QUEUE_FAILED);
    assert_string_equal(x.error, "expired: connect");
    char ev[128] = "";
    assert_int_equal(db_event_foreach(db, "send-x", find_event, ev), DB_OK);
    assert_string_equal(ev, "notify_failed notify:expired");

    /* Failed mail is never claimed again. */
    assert_int_equal(db_queue_claim(db, id, now + 99999, now + 99999, &e1), DB_NOTFOUND);
    db_close(db);
}

static void test_enqueue_refuses(void **state)
{
    (void)state;
    struct db *db = db_open_test();
    struct outbound_mail m = {
        .to = "bob@example.net\r\nRCPT TO:<eve@evil.example>",
        .subject = "s",
        .text = "t",
    };
    char id[RAND_ID_LEN + 1];
    assert_int_equal(outbound_enqueue(db, cfg, master, &m, id), -1);
    db_close(db);
}

int main(void)
{
    log_open("test_outbound", 1, 0);
    log_set_level(LOG_LVL_ERROR);
    if (sodium_init() < 0)
        return 1;
    g_mime_init();
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dkim_sign_verify),   cmocka_unit_test(test_dkim_keygen),
        cmocka_unit_test(test_record_seal_open),   cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_claim_defer_expire), cmocka_unit_test(test_enqueue_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
