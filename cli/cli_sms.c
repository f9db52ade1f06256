/*
 * cli_sms — `sealpost sms test NUMBER [--json]`: sends one test SMS
 * through every [sms] route, in order, whatever the route's health, and
 * reports each route's result and latency — the admin's way to see that
 * every provider works ("we send you a few SMS by different paths").
 *
 * Each route's result is also recorded like any SMS (route health, outbox,
 * the smtp driver's mail in the outbound queue), but test SMS count against
 * no rate limit. Exit 0 when every route took its SMS, 1 otherwise (or on
 * a bad number), so monitoring can run it.
 *
 * Trusts: the admin; the number must still be E.164.
 */
#include "cli/cli.h"
#include "lib/db.h"
#include "lib/masterkey.h"
#include "sendlink/sendlink_int.h"
#include "sendlink/sms.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char sms_usage[] = "sms test NUMBER [--json]";

static int sms_test(struct cli *c, const char *number)
{
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    if (!send_phone_valid(number))
        return cli_fail("'%s' is not an E.164 number such as +41791234567", number);
    if (cfg->sms_routes.n == 0)
        return cli_fail("no [sms] routes configured");
    signal(SIGPIPE, SIG_IGN); /* an exec relay that does not read its stdin */
    unsigned char *master = masterkey_load(cfg->master_key);
    if (master == NULL)
        return cli_fail("cannot load the master key %s", cfg->master_key);
    struct db *db = cli_db(c);
    if (db == NULL) {
        masterkey_free(master);
        return CLI_ERR;
    }
    struct sms_router *router = sms_router_new(cfg);
    struct relay_env env = {cfg, db, master};
    char when[16], masked[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%H:%M:%S UTC", &tm);
    sms_phone_mask(number, masked, sizeof(masked));
    json_t *arr = json_array();
    size_t ok = 0, n = sms_router_count(router);
    if (!c->json)
        printf("test SMS to %s through %zu route(s):\n", masked, n);
    for (size_t i = 0; i < n; i++) {
        char text[SMS_TEXT_MAX + 1];
        snprintf(text, sizeof(text), "sealpost test SMS via route %.64s (%zu of %zu) at %.15s",
                 sms_router_route(router, i), i + 1, n, when);
        struct sms_message m = {.to = number, .text = text, .kind = "test"};
        struct sms_attempt a;
        int r = sms_send_route(router, i, &env, &m, &a);
        ok += r == 0;
        if (c->json) {
            json_t *o =
                json_pack("{s:s, s:s, s:b, s:s, s:I}", "route", a.route, "driver", a.driver, "ok",
                          r == 0, "status", a.tried ? relay_status_name(a.status) : "not_loaded",
                          "latency_ms", (json_int_t)a.latency_ms);
            json_object_set_new(o, "ref", a.ref[0] ? json_string(a.ref) : json_null());
            json_object_set_new(o, "error", a.error[0] ? json_string(a.error) : json_null());
            json_array_append_new(arr, o);
        } else {
            printf("  %-20s %-7s %-9s %6lld ms  %s\n", a.route, a.driver,
                   r == 0 ? "ok" : (a.tried ? relay_status_name(a.status) : "not loaded"),
                   (long long)a.latency_ms, r == 0 ? a.ref : a.error);
        }
    }
    if (c->json)
        cli_json_print(json_pack("{s:s, s:o, s:i, s:i}", "number", masked, "routes", arr, "ok",
                                 (int)ok, "failed", (int)(n - ok)));
    else {
        json_decref(arr);
        printf("%zu of %zu route(s) took the SMS\n", ok, n);
    }
    sms_router_free(router);
    db_close(db);
    masterkey_free(master);
    return ok == n ? CLI_OK : CLI_ERR;
}

int cmd_sms(struct cli *c, int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "test") == 0)
        return sms_test(c, argv[2]);
    return cli_usage("%s", sms_usage);
}
