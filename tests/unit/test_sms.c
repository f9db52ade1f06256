/*
 * test_sms — the pure parts of the SMS code, table-driven: template
 * expansion with the encoding of the content type (sendlink/relay.c), the
 * E.164 country code and the number's mask, the SMS text from
 * sms_template (sender shortened to fit one SMS), the driver table, and
 * the router's health bookkeeping in a real store (failures, cool-down,
 * one probe) with the file driver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/db.h"
#include "lib/xalloc.h"
#include "sendlink/relay.h"
#include "sendlink/sms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct expand_case {
    const char *tmpl;
    enum relay_enc enc;
    const char *want;
};

static void test_expand(void **state)
{
    (void)state;
    struct relay_msg m = {.to = "+41791234567", .text = "Code 123456 \"x\" & y=z\\", .id = "ID1"};
    static const struct expand_case cases[] = {
        {"to={to}&text={text}", RELAY_ENC_FORM,
         "to=%2B41791234567&text=Code%20123456%20%22x%22%20%26%20y%3Dz%5C"},
        {"{\"to\": \"{to}\", \"text\": \"{text}\"}", RELAY_ENC_JSON,
         "{\"to\": \"+41791234567\", \"text\": \"Code 123456 \\\"x\\\" & y=z\\\\\"}"},
        {"{to_digits}@gw.example", RELAY_ENC_NONE, "41791234567@gw.example"},
        {"id={id} {unknown} {to", RELAY_ENC_NONE, "id=ID1 {unknown} {to"},
        {"", RELAY_ENC_FORM, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, 4096);
        assert_int_equal(relay_expand(&b, cases[i].tmpl, &m, cases[i].enc), 0);
        if (strcmp(buf_cstr(&b), cases[i].want) != 0)
            fail_msg("expand %s: got \"%s\", want \"%s\"", cases[i].tmpl, buf_cstr(&b),
                     cases[i].want);
        buf_free(&b);
    }
    /* Over the cap: -1, never a truncated request. */
    struct buf small;
    buf_init(&small, 8);
    assert_int_equal(relay_expand(&small, "to={to}", &m, RELAY_ENC_FORM), -1);
    buf_free(&small);
}

static void test_country_and_mask(void **state)
{
    (void)state;
    static const struct {
        const char *phone, *cc, *mask;
    } cases[] = {
        {"+41791234567", "+41", "+41*******67"},     {"+14155550100", "+1", "+1********00"},
        {"+79161234567", "+7", "+7********67"},      {"+358401234567", "+358", "+358*******67"},
        {"+4915112345678", "+49", "+49*********78"}, {"+88212345678", "+882", "+882******78"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cc[8], mask[32];
        assert_int_equal(sms_country_code(cases[i].phone, cc, sizeof(cc)), 0);
        if (strcmp(cc, cases[i].cc) != 0)
            fail_msg("country of %s: got %s, want %s", cases[i].phone, cc, cases[i].cc);
        sms_phone_mask(cases[i].phone, mask, sizeof(mask));
        if (strcmp(mask, cases[i].mask) != 0)
            fail_msg("mask of %s: got %s, want %s", cases[i].phone, mask, cases[i].mask);
    }
    char cc[8];
    assert_int_equal(sms_country_code("0791234567", cc, sizeof(cc)), -1);
}

static void test_text_render(void **state)
{
    (void)state;
    char out[SMS_TEXT_MAX + 1];
    assert_int_equal(sms_text_render("Code {code} from {sender}, {minutes} min", "123456", "alice",
                                     10, out, sizeof(out)),
                     0);
    assert_string_equal(out, "Code 123456 from alice, 10 min");
    /* The sender is cut so that the SMS stays one SMS. */
    char tmpl[200], sender[300];
    memset(tmpl, 'x', 140);
    snprintf(tmpl + 140, sizeof(tmpl) - 140, "{code}{sender}");
    memset(sender, 's', 299);
    sender[299] = '\0';
    assert_int_equal(sms_text_render(tmpl, "123456", sender, 1, out, sizeof(out)), 0);
    if (strlen(out) != SMS_TEXT_MAX)
        fail_msg("rendered length: got %zu, want %d", strlen(out), SMS_TEXT_MAX);
    /* Control characters in a sender never reach the SMS. */
    assert_int_equal(sms_text_render("{sender}{code}", "1", "a\nb", 1, out, sizeof(out)), 0);
    assert_string_equal(out, "a?b1");
}

static void test_drivers(void **state)
{
    (void)state;
    const char *names[] = {"http", "exec", "smtp", "file", "plugin"};
    for (size_t i = 0; i < 5; i++) {
        const struct relay_ops *o = relay_ops_find(names[i]);
        if (o == NULL || strcmp(o->driver, names[i]) != 0)
            fail_msg("driver %s: got %s, want it", names[i], o ? o->driver : "NULL");
    }
    assert_null(relay_ops_find("smpp"));
    assert_null(relay_ops_find(NULL));
}

/* The router against a real store: threshold 2, a long cool-down. */
static void test_router_health(void **state)
{
    (void)state;
    char dir[] = "/tmp/sealpost-sms-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *conf = xasprintf("%s/main.conf", dir), *out = xasprintf("%s/out.jsonl", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "[server]\ndata_dir = %s\n[sms]\nroutes = broken, good\nfailure_threshold = 2\n"
            "cooldown = 1h\n[relay broken]\ndriver = file\npath = %s/x.jsonl\n"
            "[relay good]\ndriver = file\npath = %s\n",
            dir, dir, out);
    fclose(f);
    struct config *cfg = NULL;
    struct diag d = {0};
    if (config_load(conf, &cfg, &d) != 0)
        fail_msg("config: %s", d.n ? d.msgs[0] : "?");
    /* Make the first route fail: its file is a directory. */
    char *xdir = xasprintf("%s/x.jsonl", dir);
    assert_int_equal(mkdir(xdir, 0700), 0);
    struct db *db = NULL;
    char *dbp = xasprintf("%s/sealpost.db", dir);
    assert_int_equal(db_open(dbp, &db), DB_OK);
    struct sms_router *r = sms_router_new(cfg);
    assert_int_equal(sms_router_count(r), 2);
    struct relay_env env = {cfg, db, NULL};
    struct sms_message m = {.to = "+41791234567", .text = "Code 1", .kind = "test"};
    /* Sends 1-2: "broken" tried first and fails; 3-4: it cools down, passed over. */
    static const size_t want_attempts[] = {2, 2, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        struct sms_report rep;
        assert_int_equal(sms_send(r, &env, &m, &rep), 0);
        const struct sms_attempt *got = &rep.a[rep.delivered];
        if (strcmp(got->route, "good") != 0)
            fail_msg("send %zu: delivered by %s, want good", i, got->route);
        if (rep.n != want_attempts[i])
            fail_msg("send %zu: got %zu attempts, want %zu", i, rep.n, want_attempts[i]);
        if (rep.n == 2 && strcmp(rep.a[0].route, "broken") != 0)
            fail_msg("send %zu: first tried %s, want broken", i, rep.a[0].route);
    }
    struct db_sms_route h;
    assert_int_equal(db_sms_route_get(db, "broken", &h), DB_OK);
    if (h.failures != 2 || h.skip_until <= (int64_t)time(NULL))
        fail_msg("broken: got failures=%lld skip_until=%lld, want 2 and in the future",
                 (long long)h.failures, (long long)h.skip_until);
    db_sms_route_clear(&h);
    sms_router_free(r);
    db_close(db);
    config_unref(cfg);
    diag_free(&d);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(conf);
    free(out);
    free(xdir);
    free(dbp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),        cmocka_unit_test(test_country_and_mask),
        cmocka_unit_test(test_text_render),   cmocka_unit_test(test_drivers),
        cmocka_unit_test(test_router_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
