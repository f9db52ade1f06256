/*
 * sms — the SMS router: one SMS over the [sms] routes, in order, with
 * failover, a per-route timeout and a cool-down for routes that keep
 * failing (see sms.h).
 *
 * Where it sits: called by the mTAN flow (sms_mtan.c) and `sms test`;
 * calls the relay drivers (relay.h); keeps route health, the outbox and
 * metrics in the store and in sendlink/metrics.
 *
 * Health: a TEMPFAIL counts against the route; failure_threshold of them
 * in a row start a cool-down of `cooldown` seconds in which the route is
 * passed over (sms_skipped_total). When it is over one caller claims the
 * probe in the store (the others keep passing over it); a success puts the
 * route back, a failure starts another cool-down. A route passed over is
 * still tried at the end when no other route took the SMS: a cool-down
 * reorders, it never leaves a recipient without a code while a route
 * might work. A PERMFAIL (the SMS itself refused) stops the SMS without
 * touching the route's health.
 *
 * Logs: one line per attempt, "OUTBOXID: sms: …, route=NAME", never the
 * number or the text (it holds a code).
 */
#include "sendlink/sms.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/rand.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sms_route {
    char name[SMS_ROUTE_NAME_MAX + 1];
    const struct relay_ops *ops;
    void *ctx; /* NULL when not loaded */
    char open_error[RELAY_ERROR_MAX];
    unsigned timeout_ms;
};

struct sms_router {
    struct sms_route routes[SMS_ROUTES_MAX];
    size_t n;
    unsigned threshold;
    uint64_t cooldown;
};

static const struct relay_conf *relay_conf_of(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nrelays; i++)
        if (strcmp(cfg->relays[i].name, name) == 0)
            return &cfg->relays[i];
    return NULL;
}

struct sms_router *sms_router_new(const struct config *cfg)
{
    struct sms_router *r = xcalloc(1, sizeof(*r));
    r->threshold = cfg->sms_failure_threshold;
    r->cooldown = cfg->sms_cooldown;
    for (size_t i = 0; i < cfg->sms_routes.n && r->n < SMS_ROUTES_MAX; i++) {
        struct sms_route *rt = &r->routes[r->n++];
        snprintf(rt->name, sizeof(rt->name), "%s", cfg->sms_routes.v[i]);
        const struct relay_conf *rc = relay_conf_of(cfg, rt->name);
        uint64_t secs = cfg->sms_route_timeout;
        const char *t = rc ? config_relay_param(rc, "timeout") : NULL;
        if (t && parse_duration(t, &secs) < 0)
            secs = cfg->sms_route_timeout; /* checked by the config loader */
        rt->timeout_ms = (unsigned)(secs * 1000);
        rt->ops = rc ? relay_ops_find(rc->driver) : NULL;
        if (rt->ops == NULL) {
            snprintf(rt->open_error, sizeof(rt->open_error), "no such relay or driver");
        } else if (rt->ops->open(cfg, rc, &rt->ctx, rt->open_error, sizeof(rt->open_error)) < 0) {
            rt->ctx = NULL;
            if (rt->open_error[0] == '\0')
                snprintf(rt->open_error, sizeof(rt->open_error), "cannot open");
        }
        if (rt->ctx == NULL)
            msg_error("-: sms: route %s not loaded: %s", rt->name, rt->open_error);
    }
    if (cfg->sms_routes.n > SMS_ROUTES_MAX)
        msg_warn("-: sms: only the first %d routes are used", SMS_ROUTES_MAX);
    return r;
}

void sms_router_free(struct sms_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->routes[i].ctx)
            r->routes[i].ops->close(r->routes[i].ctx);
    free(r);
}

size_t sms_router_count(const struct sms_router *r)
{
    return r ? r->n : 0;
}

const char *sms_router_route(const struct sms_router *r, size_t i)
{
    return i < r->n ? r->routes[i].name : NULL;
}

const char *sms_router_driver(const struct sms_router *r, size_t i)
{
    return i < r->n && r->routes[i].ops ? r->routes[i].ops->driver : "-";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tries route rt once; fills a, records health and metrics. */
static void route_try(struct sms_router *r, struct sms_route *rt, const struct relay_env *env,
                      const struct relay_msg *rm, const char *outbox_id, struct sms_attempt *a)
{
    char label[METRICS_LABEL_MAX + 16];
    snprintf(label, sizeof(label), "route=%s", rt->name);
    snprintf(a->route, sizeof(a->route), "%s", rt->name);
    snprintf(a->driver, sizeof(a->driver), "%s", rt->ops ? rt->ops->driver : "-");
    if (rt->ctx == NULL) {
        a->tried = 0;
        a->status = RELAY_TEMPFAIL;
        snprintf(a->error, sizeof(a->error), "not loaded: %.200s", rt->open_error);
        metrics_inc("sms_failed_total", label);
        msg_warn("%s: sms: route not loaded, route=%s, error=%s", outbox_id, rt->name, a->error);
        return;
    }
    struct relay_result res;
    memset(&res, 0, sizeof(res));
    int64_t t0 = now_ms();
    a->tried = 1;
    a->status = rt->ops->send(rt->ctx, env, rm, rt->timeout_ms, &res);
    a->latency_ms = now_ms() - t0;
    snprintf(a->ref, sizeof(a->ref), "%s", res.ref);
    snprintf(a->error, sizeof(a->error), "%s", res.error);
    int64_t now = (int64_t)time(NULL);
    struct db *db = env ? env->db : NULL;
    if (a->status == RELAY_SENT) {
        metrics_inc("sms_sent_total", label);
        metrics_set("sms_route_cooling", label, 0);
        if (db && db_sms_route_ok(db, rt->name, now) != DB_OK)
            msg_warn("%s: sms: route health not recorded, route=%s", outbox_id, rt->name);
        msg_info("%s: sms: sent, route=%s, driver=%s, latency_ms=%lld, ref=%s", outbox_id, rt->name,
                 a->driver, (long long)a->latency_ms, res.ref[0] ? res.ref : "-");
        return;
    }
    if (a->status == RELAY_PERMFAIL) {
        metrics_inc("sms_refused_total", label);
        msg_warn("%s: sms: refused, route=%s, latency_ms=%lld, error=%s", outbox_id, rt->name,
                 (long long)a->latency_ms, a->error);
        return;
    }
    metrics_inc("sms_failed_total", label);
    int64_t failures = 0;
    if (db && db_sms_route_failed(db, rt->name, now, r->threshold, now + (int64_t)r->cooldown,
                                  a->error, &failures) != DB_OK)
        msg_warn("%s: sms: route health not recorded, route=%s", outbox_id, rt->name);
    if (failures >= r->threshold)
        metrics_set("sms_route_cooling", label, 1);
    msg_warn("%s: sms: route failed, route=%s, latency_ms=%lld, failures=%lld, error=%s", outbox_id,
             rt->name, (long long)a->latency_ms, (long long)failures, a->error);
}

/* 1 when rt may be tried now (healthy, or this caller got the probe), 0 when passed over. */
static int route_usable(struct sms_router *r, struct sms_route *rt, struct db *db, int *probe)
{
    *probe = 0;
    if (db == NULL)
        return 1;
    struct db_sms_route h;
    enum db_rc dr = db_sms_route_get(db, rt->name, &h);
    if (dr != DB_OK)
        return 1; /* never seen, or the store cannot say: try it */
    int64_t now = (int64_t)time(NULL);
    int usable = 1;
    if (h.failures >= (int64_t)r->threshold) {
        if (h.skip_until > now)
            usable = 0;
        else if (db_sms_route_probe(db, rt->name, now, now + (int64_t)r->cooldown) == DB_OK)
            *probe = 1;
        else
            usable = 0; /* another caller probes it */
    }
    db_sms_route_clear(&h);
    return usable;
}

static void outbox_begin(struct db *db, const struct sms_message *m, char *id)
{
    rand_id(id);
    if (db == NULL)
        return;
    struct db_sms_out o = {.send_id = m->send_id, .kind = m->kind, .state = DB_SMS_SENDING};
    snprintf(o.id, sizeof(o.id), "%s", id);
    if (db_sms_outbox_insert(db, &o) != DB_OK)
        msg_warn("%s: sms: outbox row not written", id);
}

static void outbox_end(struct db *db, const char *id, const struct sms_attempt *last, int delivered,
                       int64_t attempts)
{
    if (db == NULL)
        return;
    struct db_sms_out o = {.state = delivered ? DB_SMS_SENT : DB_SMS_FAILED,
                           .route = last ? last->route : NULL,
                           .provider_ref = delivered && last->ref[0] ? last->ref : NULL,
                           .attempts = attempts,
                           .last_error = !delivered && last && last->error[0] ? last->error : NULL};
    snprintf(o.id, sizeof(o.id), "%s", id);
    if (db_sms_outbox_finish(db, &o) != DB_OK)
        msg_warn("%s: sms: outbox row not updated", id);
}

int sms_send(struct sms_router *r, const struct relay_env *env, const struct sms_message *m,
             struct sms_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->delivered = -1;
    struct db *db = env ? env->db : NULL;
    outbox_begin(db, m, rep->outbox_id);
    struct relay_msg rm = {
        .to = m->to, .text = m->text, .id = rep->outbox_id, .send_id = m->send_id};
    int passed[SMS_ROUTES_MAX];
    size_t npassed = 0;
    int64_t tries = 0;

    /* Healthy routes (and a due probe) first, in the configured order. */
    for (size_t i = 0; i < r->n && rep->delivered < 0 && !rep->refused; i++) {
        struct sms_route *rt = &r->routes[i];
        int probe;
        if (rt->ctx && !route_usable(r, rt, db, &probe)) {
            char label[METRICS_LABEL_MAX + 16];
            snprintf(label, sizeof(label), "route=%s", rt->name);
            metrics_inc("sms_skipped_total", label);
            msg_info("%s: sms: route cooling down, passed over, route=%s", rep->outbox_id,
                     rt->name);
            passed[npassed++] = (int)i;
            continue;
        }
        struct sms_attempt *a = &rep->a[rep->n++];
        a->probe = rt->ctx ? probe : 0;
        route_try(r, rt, env, &rm, rep->outbox_id, a);
        tries += a->tried;
        if (a->status == RELAY_SENT)
            rep->delivered = (int)(rep->n - 1);
        else if (a->status == RELAY_PERMFAIL)
            rep->refused = 1;
    }
    /* Nothing took it: the routes passed over are the last resort. */
    for (size_t k = 0; k < npassed && rep->delivered < 0 && !rep->refused; k++) {
        struct sms_route *rt = &r->routes[passed[k]];
        struct sms_attempt *a = &rep->a[rep->n++];
        route_try(r, rt, env, &rm, rep->outbox_id, a);
        tries += a->tried;
        if (a->status == RELAY_SENT)
            rep->delivered = (int)(rep->n - 1);
        else if (a->status == RELAY_PERMFAIL)
            rep->refused = 1;
    }
    const struct sms_attempt *last =
        rep->delivered >= 0 ? &rep->a[rep->delivered] : (rep->n ? &rep->a[rep->n - 1] : NULL);
    outbox_end(db, rep->outbox_id, last, rep->delivered >= 0, tries);
    if (rep->delivered < 0)
        msg_warn("%s: sms: not sent, routes_tried=%lld, kind=%s, send=%s", rep->outbox_id,
                 (long long)tries, m->kind, m->send_id ? m->send_id : "-");
    return rep->delivered >= 0 ? 0 : -1;
}

int sms_send_route(struct sms_router *r, size_t i, const struct relay_env *env,
                   const struct sms_message *m, struct sms_attempt *a)
{
    memset(a, 0, sizeof(*a));
    if (i >= r->n)
        return -1;
    char id[DB_ID_MAX + 1];
    struct db *db = env ? env->db : NULL;
    outbox_begin(db, m, id);
    struct relay_msg rm = {.to = m->to, .text = m->text, .id = id, .send_id = m->send_id};
    route_try(r, &r->routes[i], env, &rm, id, a);
    outbox_end(db, id, a, a->status == RELAY_SENT, a->tried);
    return a->status == RELAY_SENT ? 0 : -1;
}
