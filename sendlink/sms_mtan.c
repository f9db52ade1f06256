/*
 * sms_mtan — the mTAN flow: POST /s/{token}/mtan sends a fresh code by SMS
 * to the number the sender gave through the API; the download POST checks
 * it (sms.h).
 *
 * Where it sits: sendlink_page.c calls sms_mtan_send and sms_mtan_check;
 * they use the store (sends, SMS counters) and the router (sms.c).
 *
 * Rules kept here (RULES.md 8-11, DESIGN.md "Security properties" 4):
 *  - the number is only ever the one sealed into the send at creation; the
 *    recipient's request carries nothing but the token;
 *  - caps, checked together before anything is sent: mtan_max_sends per
 *    send, max_per_number_hour, max_per_sender_day, max_per_country_hour,
 *    max_global_hour (fixed windows; 429 with Retry-After until the window
 *    ends), the allowed/denied prefixes and the sender's plan (403); an SMS
 *    no route took is given back to every cap;
 *  - the code: mtan_length digits from randombytes_uniform, stored only as
 *    BLAKE2b-256(id ‖ 0 ‖ code) keyed by kdf(master, "sp-mtan "), valid
 *    mtan_ttl (at most 10 minutes), newest only (a new one replaces the
 *    MAC), single use (consumed by a guarded UPDATE when it opens the file);
 *    compared with sodium_memcmp; wrong ones count like any wrong code;
 *  - counters key a number by a keyed hash (kdf(master, "sp-smsnr")), so
 *    the store never holds a number in clear; logs never show the number
 *    (only its mask) nor the code.
 */
#include "lib/log.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "sendlink/sendlink_int.h"
#include "sendlink/sms.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MK_CTX_MTAN "sp-mtan "  /* master: mTAN MAC key */
#define MK_CTX_SMSNR "sp-smsnr" /* master: number key of the rate-limit counters */
#define SMS_NUMBER_KEY_BYTES 16
#define SMS_HOUR 3600
#define SMS_DAY 86400
/* Retry-After when every route failed. */
#define SMS_RETRY_UNAVAILABLE 30
/* Sender name used when a send has no user (created by an admin). */
#define SMS_SENDER_DEFAULT "sealpost"

/* ---- helpers ---- */

/* E.164 country calling codes: 1 and 7 are one digit; these are two; the rest three. */
static const char *const cc2[] = {
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
    "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", NULL};

int sms_country_code(const char *phone, char *out, size_t outsz)
{
    if (!send_phone_valid(phone))
        return -1;
    size_t n = 3;
    if (phone[1] == '1' || phone[1] == '7')
        n = 1;
    else
        for (size_t i = 0; cc2[i]; i++)
            if (strncmp(phone + 1, cc2[i], 2) == 0)
                n = 2;
    snprintf(out, outsz, "+%.*s", (int)n, phone + 1);
    return 0;
}

void sms_phone_mask(const char *phone, char *out, size_t outsz)
{
    char cc[8];
    size_t len = strlen(phone);
    if (sms_country_code(phone, cc, sizeof(cc)) < 0 || len < strlen(cc) + 2) {
        snprintf(out, outsz, "+…");
        return;
    }
    size_t hidden = len - strlen(cc) - 2;
    size_t o = (size_t)snprintf(out, outsz, "%s", cc);
    for (size_t i = 0; i < hidden && o + 2 < outsz; i++)
        out[o++] = '*';
    snprintf(out + o, outsz - o, "%s", phone + len - 2);
}

int sms_text_render(const char *tmpl, const char *code, const char *sender, unsigned minutes,
                    char *out, size_t outsz)
{
    char mins[16];
    snprintf(mins, sizeof(mins), "%u", minutes);
    /* Length without the sender, to know how much of it fits. */
    size_t fixed = 0, nsender = 0;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{code}", 6) == 0) {
            fixed += strlen(code);
            p += 6;
        } else if (strncmp(p, "{minutes}", 9) == 0) {
            fixed += strlen(mins);
            p += 9;
        } else if (strncmp(p, "{sender}", 8) == 0) {
            nsender++;
            p += 8;
        } else {
            fixed++;
            p++;
        }
    }
    if (fixed > SMS_TEXT_MAX || outsz <= SMS_TEXT_MAX)
        return -1;
    size_t room = nsender ? (SMS_TEXT_MAX - fixed) / nsender : 0;
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *v = NULL;
        size_t vl = 0;
        if (strncmp(p, "{code}", 6) == 0) {
            v = code;
            vl = strlen(code);
            p += 6;
        } else if (strncmp(p, "{minutes}", 9) == 0) {
            v = mins;
            vl = strlen(mins);
            p += 9;
        } else if (strncmp(p, "{sender}", 8) == 0) {
            v = sender;
            vl = strlen(sender) < room ? strlen(sender) : room;
            p += 8;
        } else {
            out[o++] = *p++;
            continue;
        }
        for (size_t i = 0; i < vl; i++) /* one SMS is printable ASCII */
            out[o++] = (v[i] >= ' ' && v[i] < 0x7f) ? v[i] : '?';
    }
    out[o] = '\0';
    return 0;
}

static void mtan_mac(const unsigned char *master, const char *id, const char *code,
                     unsigned char out[DB_HASH_BYTES])
{
    unsigned char key[MASTERKEY_SUBKEY_BYTES];
    masterkey_derive(master, MK_CTX_MTAN, 1, key);
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof(key), DB_HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)code, strlen(code));
    crypto_generichash_final(&st, out, DB_HASH_BYTES);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(&st, sizeof(st));
}

static void number_key(const unsigned char *master, const char *phone, char *hex, size_t hexsz)
{
    unsigned char key[MASTERKEY_SUBKEY_BYTES], h[SMS_NUMBER_KEY_BYTES];
    masterkey_derive(master, MK_CTX_SMSNR, 1, key);
    crypto_generichash(h, sizeof(h), (const unsigned char *)phone, strlen(phone), key, sizeof(key));
    sodium_bin2hex(hex, hexsz, h, sizeof(h));
    sodium_memzero(key, sizeof(key));
}

static void event_add(struct db *db, const char *id, const char *kind, const char *client,
                      const char *detail)
{
    struct db_event e = {.subject = id, .kind = kind, .client = client, .detail = detail};
    if (db_event_add(db, &e) != DB_OK)
        msg_warn("%s: mtan: event %s not recorded", id, kind);
}

static void refuse(struct sms_mtan_result *out, int status, const char *reason, unsigned retry)
{
    out->status = status;
    out->reason = reason;
    out->retry = retry;
    char label[METRICS_LABEL_MAX];
    snprintf(label, sizeof(label), "reason=%s", reason);
    metrics_inc("mtan_refused_total", label);
}

/* ---- send ---- */

/* An SMS that did not leave counts against no cap. */
static void give_back(const struct send_env *env, const char *id, const struct db_sms_cap *caps,
                      size_t n)
{
    if (db_sms_caps_give_back(env->db, caps, n) != DB_OK ||
        db_send_mtan_unclaim(env->db, id) != DB_OK)
        msg_warn("%s: mtan: counters not given back", id);
}

void sms_mtan_send(const struct send_env *env, struct sms_router *router, const struct db_send *s,
                   const char *client, struct sms_mtan_result *out)
{
    const struct config *cfg = env->cfg;
    memset(out, 0, sizeof(*out));
    int64_t now = (int64_t)time(NULL);

    char *phone = send_secret_open(env->master, s->id, "phone", s->phone, s->phone_len);
    if (phone == NULL || !send_phone_valid(phone)) {
        msg_error("%s: mtan: the phone number does not open", s->id);
        free(phone);
        refuse(out, 500, "phone", 0);
        return;
    }
    sms_phone_mask(phone, out->masked, sizeof(out->masked));

    /* The sender's plan must (still) include mTAN: SMS cost money. */
    struct db_user u;
    int have_user = s->user_id > 0 && db_user_get_by_id(env->db, s->user_id, &u) == DB_OK;
    const struct plan *plan = config_plan(cfg, have_user ? u.plan : NULL);
    if (plan == NULL)
        plan = config_plan(cfg, NULL);
    char sender[SMS_TEXT_MAX + 1];
    snprintf(sender, sizeof(sender), "%s", have_user ? u.name : SMS_SENDER_DEFAULT);
    int disabled = have_user && u.disabled;
    if (have_user)
        db_user_clear(&u);
    if (plan == NULL || !plan->mtan || disabled) {
        msg_info("%s: mtan: refused, reason=plan, client=%s", s->id, client);
        refuse(out, 403, "plan", 0);
        goto done;
    }
    if (router == NULL || sms_router_count(router) == 0) {
        msg_warn("%s: mtan: no [sms] routes configured", s->id);
        refuse(out, 503, "no_routes", SMS_RETRY_UNAVAILABLE);
        goto done;
    }
    if (!config_sms_number_allowed(cfg, phone)) {
        msg_info("%s: mtan: refused, reason=prefix, number=%s, client=%s", s->id, out->masked,
                 client);
        refuse(out, 403, "prefix", 0);
        goto done;
    }

    /* Per send first (no window: a link gets mtan_max_sends SMS in its life). */
    int64_t sends = 0;
    enum db_rc dr = db_send_mtan_claim(env->db, s->id, cfg->mtan_max_sends, &sends);
    if (dr == DB_NOTFOUND) {
        msg_info("%s: mtan: refused, reason=per_send, max=%u, client=%s", s->id,
                 cfg->mtan_max_sends, client);
        refuse(out, 429, "per_send", 0);
        goto done;
    }
    if (dr != DB_OK) {
        refuse(out, 503, "store", SMS_RETRY_UNAVAILABLE);
        goto done;
    }

    char nkey[SMS_NUMBER_KEY_BYTES * 2 + 1], skey[64], cc[8];
    number_key(env->master, phone, nkey, sizeof(nkey));
    if (s->user_id > 0)
        snprintf(skey, sizeof(skey), "user:%lld", (long long)s->user_id);
    else
        snprintf(skey, sizeof(skey), "admin");
    if (sms_country_code(phone, cc, sizeof(cc)) < 0)
        snprintf(cc, sizeof(cc), "?");
    int64_t hour_end = (now / SMS_HOUR + 1) * SMS_HOUR, day_end = (now / SMS_DAY + 1) * SMS_DAY;
    struct db_sms_cap caps[] = {
        {"number", nkey, hour_end, cfg->sms_max_per_number_hour, 0},
        {"sender", skey, day_end, cfg->sms_max_per_sender_day, 0},
        {"country", cc, hour_end, cfg->sms_max_per_country_hour, 0},
        {"global", "-", hour_end, cfg->sms_max_global_hour, 0},
    };
    static const char *const cap_reason[] = {"per_number", "per_sender", "per_country", "global"};
    size_t ncaps = sizeof(caps) / sizeof(caps[0]);
    int over = -1;
    dr = db_sms_caps_take(env->db, caps, ncaps, &over);
    if (dr != DB_OK || over >= 0) {
        if (db_send_mtan_unclaim(env->db, s->id) != DB_OK)
            msg_warn("%s: mtan: per-send count not given back", s->id);
        if (dr != DB_OK) {
            refuse(out, 503, "store", SMS_RETRY_UNAVAILABLE);
        } else {
            msg_warn("%s: mtan: refused, reason=%s, limit=%lld, number=%s, client=%s", s->id,
                     cap_reason[over], (long long)caps[over].limit, out->masked, client);
            refuse(out, 429, cap_reason[over], (unsigned)(caps[over].slot_end - now));
        }
        goto done;
    }
    if (db_sms_counters_purge(env->db, now - SMS_DAY) != DB_OK)
        msg_warn("%s: mtan: old SMS counters not purged", s->id);

    /* A fresh code: its MAC replaces the previous one before the SMS leaves. */
    char code[16], text[SMS_TEXT_MAX + 1];
    for (unsigned i = 0; i < cfg->mtan_length && i < sizeof(code) - 1; i++)
        code[i] = (char)('0' + randombytes_uniform(10));
    code[cfg->mtan_length < sizeof(code) - 1 ? cfg->mtan_length : sizeof(code) - 1] = '\0';
    unsigned char mac[DB_HASH_BYTES];
    mtan_mac(env->master, s->id, code, mac);
    out->expires = now + (int64_t)cfg->mtan_ttl;
    unsigned minutes = (unsigned)((cfg->mtan_ttl + 59) / 60);
    int ok = sms_text_render(cfg->sms_template, code, sender, minutes, text, sizeof(text)) == 0 &&
             db_send_mtan_set(env->db, s->id, mac, sizeof(mac), out->expires) == DB_OK;
    sodium_memzero(code, sizeof(code));
    if (!ok) {
        sodium_memzero(text, sizeof(text));
        give_back(env, s->id, caps, ncaps);
        refuse(out, 503, "store", SMS_RETRY_UNAVAILABLE);
        goto done;
    }

    struct relay_env renv = {cfg, env->db, env->master};
    struct sms_message m = {.to = phone, .text = text, .send_id = s->id, .kind = "mtan"};
    struct sms_report rep;
    int sent = sms_send(router, &renv, &m, &rep);
    sodium_memzero(text, sizeof(text));
    char detail[96];
    if (sent == 0) {
        const struct sms_attempt *a = &rep.a[rep.delivered];
        snprintf(out->route, sizeof(out->route), "%s", a->route);
        snprintf(detail, sizeof(detail), "route=%s", a->route);
        event_add(env->db, s->id, "mtan_sent", client, detail);
        metrics_inc("mtan_sent_total", NULL);
        msg_info("%s: mtan: sent, route=%s, sms=%s, sends=%lld/%u, number=%s, client=%s", s->id,
                 a->route, rep.outbox_id, (long long)sends, cfg->mtan_max_sends, out->masked,
                 client);
        out->status = 200;
        out->reason = "sent";
    } else {
        /* No route took it: it cost nothing, so it counts against no cap. */
        give_back(env, s->id, caps, ncaps);
        snprintf(detail, sizeof(detail), "%s, routes=%zu", rep.refused ? "refused" : "failed",
                 rep.n);
        event_add(env->db, s->id, "mtan_failed", client, detail);
        refuse(out, 503, rep.refused ? "refused" : "routes_failed", SMS_RETRY_UNAVAILABLE);
    }
done:
    sodium_memzero(phone, strlen(phone));
    free(phone);
}

/* ---- check ---- */

enum sms_mtan_check sms_mtan_check(const struct send_env *env, const struct db_send *s,
                                   const char *code, int64_t now)
{
    unsigned char mac[DB_HASH_BYTES];
    mtan_mac(env->master, s->id, code, mac);
    if (s->mtan_mac == NULL || s->mtan_mac_len != DB_HASH_BYTES ||
        sodium_memcmp(mac, s->mtan_mac, DB_HASH_BYTES) != 0)
        return SMS_MTAN_WRONG;
    if (now >= s->mtan_expires)
        return SMS_MTAN_EXPIRED;
    /* Single use: only one request consumes it, even two at the same instant. */
    if (db_send_mtan_use(env->db, s->id, mac, sizeof(mac)) != DB_OK)
        return SMS_MTAN_WRONG;
    return SMS_MTAN_OK;
}
