/*
 * sms — SMS for sealpost: the router that sends one SMS over the [sms]
 * routes with failover and cool-down (sms.c), and the mTAN flow on top of
 * it (sms_mtan.c): caps, code, template, single-use check.
 *
 * Where it sits: sendlink's HTTP service owns one router per config (made
 * at open and on reload, used by POST /s/{token}/mtan); `sealpost sms test`
 * makes its own. Relays are the drivers of sendlink/relay.h. Route health,
 * rate-limit counters and the outbox live in the store (lib/db_sms.c), so
 * serve and the CLI see the same state.
 */
#ifndef SEALPOST_SMS_H
#define SEALPOST_SMS_H

#include "lib/db.h"
#include "policy/config.h"
#include "sendlink/relay.h"
#include "sendlink/sendlink.h"

#include <stdint.h>

/* Routes one router holds at most. */
#define SMS_ROUTES_MAX 16
/* Longest SMS text (one GSM-7 SMS). */
#define SMS_TEXT_MAX 160
/* Longest route (relay) name (policy/config.c CONFIG_NAME_MAX). */
#define SMS_ROUTE_NAME_MAX 64

struct sms_router;

/*
 * Opens every relay that [sms] routes names, in order. Never fails as a
 * whole: a relay that cannot be opened (a plug-in that does not load) is
 * kept as a route that fails with the reason, and logged.
 */
struct sms_router *sms_router_new(const struct config *cfg);
void sms_router_free(struct sms_router *r);
size_t sms_router_count(const struct sms_router *r);
const char *sms_router_route(const struct sms_router *r, size_t i);
const char *sms_router_driver(const struct sms_router *r, size_t i);

/* What happened on one route. */
struct sms_attempt {
    char route[SMS_ROUTE_NAME_MAX + 1];
    char driver[16];
    int tried; /* 0: skipped (cooling down, another caller probing, not loaded) */
    int probe; /* tried as the probe after a cool-down */
    enum relay_status status;
    int64_t latency_ms;
    char ref[RELAY_REF_MAX];
    char error[RELAY_ERROR_MAX];
};

struct sms_report {
    char outbox_id[DB_ID_MAX + 1];
    struct sms_attempt a[SMS_ROUTES_MAX * 2];
    size_t n;
    int delivered; /* index into a of the route that took it, or -1 */
    int refused;   /* a route refused the SMS itself (PERMFAIL): no other was tried */
};

/* One SMS to send. */
struct sms_message {
    const char *to;      /* E.164 */
    const char *text;    /* printable ASCII, at most SMS_TEXT_MAX */
    const char *send_id; /* may be NULL */
    const char *kind;    /* "mtan", "test" */
};

/*
 * Sends m over the routes in order until one takes it: healthy routes
 * first; a route with failure_threshold failures in a row is skipped for
 * cooldown, then one SMS probes it; routes skipped so are tried last when
 * no other took the SMS. Records health, the outbox row and metrics.
 * Returns 0 when a route took it (rep->delivered), -1 otherwise.
 */
int sms_send(struct sms_router *r, const struct relay_env *env, const struct sms_message *m,
             struct sms_report *rep) __attribute__((warn_unused_result));

/* One route only, whatever its health (`sms test`); health and outbox recorded. 0 or -1. */
int sms_send_route(struct sms_router *r, size_t i, const struct relay_env *env,
                   const struct sms_message *m, struct sms_attempt *a)
    __attribute__((warn_unused_result));

/* ---- helpers (sms_mtan.c) ---- */

/* "+41•••••••67": the country code and the last two digits. */
void sms_phone_mask(const char *phone, char *out, size_t outsz);
/* The E.164 country calling code of phone ("+41", "+1", "+358"): 0, or -1. */
int sms_country_code(const char *phone, char *out, size_t outsz);
/* The SMS text from sms_template; {sender} is shortened to fit SMS_TEXT_MAX. */
int sms_text_render(const char *tmpl, const char *code, const char *sender, unsigned minutes,
                    char *out, size_t outsz) __attribute__((warn_unused_result));

/* ---- the mTAN flow (sms_mtan.c) ---- */

struct sms_mtan_result {
    int status;         /* 200 sent; 403, 429, 503, 500 */
    unsigned retry;     /* Retry-After seconds (429, 503), 0: none */
    const char *reason; /* short word for logs, events and metrics */
    char route[SMS_ROUTE_NAME_MAX + 1];
    char masked[32];
    int64_t expires;
};

/*
 * POST /s/{token}/mtan for the active mtan send s: checks the plan, the
 * number's prefix and every cap (per send, number, sender, country,
 * global), makes a fresh code (the previous one stops working), sends it
 * over the router. Records events and metrics. Fills out in every case.
 */
void sms_mtan_send(const struct send_env *env, struct sms_router *router, const struct db_send *s,
                   const char *client, struct sms_mtan_result *out);

enum sms_mtan_check {
    SMS_MTAN_OK,      /* right and fresh: consumed now (single use) */
    SMS_MTAN_WRONG,   /* count it as a wrong code */
    SMS_MTAN_EXPIRED, /* it was right but its mtan_ttl is over (not counted) */
};
/* Compares code (normalised) with s's current mTAN in constant time. */
enum sms_mtan_check sms_mtan_check(const struct send_env *env, const struct db_send *s,
                                   const char *code, int64_t now);

#endif
