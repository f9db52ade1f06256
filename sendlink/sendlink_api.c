/*
 * sendlink_api — the secure-send API (DESIGN.md "HTTP", docs/openapi.yaml):
 *
 *   POST   /api/v1/sends        multipart upload → 201 {id, url, expires_at, …}
 *   GET    /api/v1/sends/{id}   state, counters, events
 *   DELETE /api/v1/sends/{id}   revoke: the file is destroyed at once
 *
 * Authentication: "Authorization: Bearer sp_live_…" (RFC 6750); a key acts
 * for its user, whose plan applies. Errors are RFC 9457 problem+json;
 * 422 names the field. Idempotency-Key (IETF httpapi draft): the first
 * request claims (API key, key); a repeat while it runs gets 409; a repeat
 * after it succeeded is read to its end, and if its fingerprint (a keyed
 * hash of every field and the file's bytes) matches it gets the stored
 * response again, else 422. The stored response holds the link, so it is
 * sealed under a key derived from the presented API key itself: neither
 * the data directory nor the master key opens it; the Idempotency-Key
 * itself is kept only as a keyed hash under that same key.
 *
 * Trusts: nothing in the request. Fields are capped (SEND_FIELD_MAX), the
 * file is capped by the plan while it streams, unknown or repeated fields
 * are refused.
 */
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "sendlink/sendlink_http.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Longest Idempotency-Key value accepted. */
#define IDEM_KEY_MAX 255
/* Idempotency records: a pending one older than this is a crashed request. */
#define IDEM_PENDING_MAX (60 * 60)

enum field_id {
    F_TO,
    F_PHONE,
    F_MESSAGE,
    F_EXPIRES,
    F_MAX_DOWNLOADS,
    F_PROTECT,
    F_CODE,
    F_LANG,
    NFIELDS
};
static const char *const field_names[NFIELDS] = {
    "to", "phone", "message", "expires", "max_downloads", "protect", "code", "lang",
};

enum idem_state { IDEM_NONE, IDEM_CLAIMED, IDEM_REPLAY };

struct api_create {
    struct db_apikey key;
    struct db_user user;
    const struct plan *plan;
    struct send_upload *up;
    struct buf fields[NFIELDS];
    int seen[NFIELDS];
    char *filename;
    int file_seen;
    uint64_t file_bytes;
    /* the first refusal found while reading the body */
    unsigned fail_status;
    const char *fail_field;
    char fail_detail[256];
    /* Idempotency-Key */
    enum idem_state idem;
    char *idem_key;
    char idem_ref[2 * DB_HASH_BYTES + 1]; /* what the store keeps: a keyed hash of idem_key */
    unsigned char *idem_secret;           /* locked: derived from the presented API key */
    crypto_generichash_state *fp;
    struct db_idem stored;
};

/* ---- authentication ---- */

/*
 * Checks the Bearer key: 0 with key and user filled, or -1 after queueing
 * the refusal (*res holds the queue result).
 */
static int authenticate(struct req *r, struct MHD_Connection *c, struct db_apikey *key,
                        struct db_user *user, enum MHD_Result *res, char **presented)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    memset(key, 0, sizeof(*key));
    memset(user, 0, sizeof(*user));
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        *res = http_problem(r, c, 401, NULL, "an API key is required (Authorization: Bearer …)");
        return -1;
    }
    const char *k = h + 7;
    while (*k == ' ')
        k++;
    enum db_rc dr = apikey_verify(&r->env, k, key);
    if (dr == DB_NOTFOUND) {
        msg_info("-: api: bad API key, client=%s", r->client);
        metrics_inc("sends_refused_total", "reason=bad_api_key");
        *res = http_problem(r, c, 401, NULL, "the API key is not valid");
        return -1;
    }
    if (dr != DB_OK) {
        *res = http_problem(r, c, 503, NULL, "the store is busy; try again");
        return -1;
    }
    dr = db_user_get_by_id(r->env.db, key->user_id, user);
    if (dr != DB_OK || user->disabled) {
        if (dr == DB_OK)
            db_user_clear(user);
        db_apikey_clear(key);
        *res = dr == DB_OK || dr == DB_NOTFOUND
                   ? http_problem(r, c, 403, NULL, "the API key's user is disabled or gone")
                   : http_problem(r, c, 503, NULL, "the store is busy; try again");
        return -1;
    }
    int wait = sendlink_rate_check(r->sl, key->id, r->cfg->api_rate_limit);
    if (wait > 0) {
        db_user_clear(user);
        db_apikey_clear(key);
        metrics_inc("sends_refused_total", "reason=rate_limited");
        *res = http_problem_retry(r, c, 429, "too many requests for this API key", (unsigned)wait);
        return -1;
    }
    if (db_apikey_touch(r->env.db, key->id, (int64_t)time(NULL)) != DB_OK)
        msg_warn("%s: api: last use not recorded", key->id);
    if (presented)
        *presented = xstrdup(k);
    return 0;
}

/* ---- idempotency ---- */

/* secret = BLAKE2b-256("sp-idem1" || api key); the store never sees it. */
static void idem_secret_derive(const char *apikey, unsigned char *out)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)"sp-idem1", 8);
    crypto_generichash_update(&st, (const unsigned char *)apikey, strlen(apikey));
    crypto_generichash_final(&st, out, 32);
}

static void idem_subkey(const struct api_create *ac, const char *what, unsigned char out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, ac->idem_secret, 32, 32);
    crypto_generichash_update(&st, (const unsigned char *)what, strlen(what) + 1);
    crypto_generichash_update(&st, (const unsigned char *)ac->idem_key, strlen(ac->idem_key));
    crypto_generichash_final(&st, out, 32);
}

static void fp_update(struct api_create *ac, const void *p, size_t n)
{
    if (ac->fp)
        crypto_generichash_update(ac->fp, p, n);
}

static void fp_final(struct api_create *ac, unsigned char out[DB_HASH_BYTES])
{
    for (int i = 0; i < NFIELDS; i++) {
        unsigned char present = (unsigned char)ac->seen[i];
        fp_update(ac, field_names[i], strlen(field_names[i]) + 1);
        fp_update(ac, &present, 1);
        fp_update(ac, buf_cstr(&ac->fields[i]), ac->fields[i].len + 1);
    }
    crypto_generichash_final(ac->fp, out, DB_HASH_BYTES);
}

static int idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX)
        return 0;
    for (const char *p = k; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return 0;
    return 1;
}

/* Seals the response under the idempotency subkey: nonce || AEAD(body, AD = key). */
static void idem_seal(const struct api_create *ac, const char *body, unsigned char **out,
                      size_t *outlen)
{
    unsigned char k[32];
    size_t bl = strlen(body);
    size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    unsigned char *c = xmalloc(n + bl + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    idem_subkey(ac, "response", k);
    randombytes_buf(c, n);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + n, NULL, (const unsigned char *)body, bl,
                                               (const unsigned char *)ac->idem_key,
                                               strlen(ac->idem_key), NULL, c, k);
    sodium_memzero(k, sizeof(k));
    *out = c;
    *outlen = n + bl + crypto_aead_xchacha20poly1305_ietf_ABYTES;
}

static char *idem_open(const struct api_create *ac, const unsigned char *c, size_t clen)
{
    size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    size_t a = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    if (c == NULL || clen < n + a)
        return NULL;
    unsigned char k[32];
    char *p = xmalloc(clen - n - a + 1);
    idem_subkey(ac, "response", k);
    int r = crypto_aead_xchacha20poly1305_ietf_decrypt(
        (unsigned char *)p, NULL, NULL, c + n, clen - n, (const unsigned char *)ac->idem_key,
        strlen(ac->idem_key), c, k);
    sodium_memzero(k, sizeof(k));
    if (r != 0) {
        free(p);
        return NULL;
    }
    p[clen - n - a] = '\0';
    return p;
}

/* ---- the upload ---- */

void api_create_free(struct req *r)
{
    struct api_create *ac = r->ac;
    if (ac == NULL)
        return;
    if (ac->idem == IDEM_CLAIMED && r->env.db)
        if (db_idem_delete(r->env.db, ac->key.id, ac->idem_ref) != DB_OK) /* did not finish */
            msg_warn("-: api: Idempotency-Key record left pending (expires by itself)");
    send_upload_abort(ac->up);
    for (int i = 0; i < NFIELDS; i++)
        buf_free_secret(&ac->fields[i]);
    free(ac->filename);
    free(ac->idem_key);
    if (ac->idem_secret)
        sodium_free(ac->idem_secret);
    if (ac->fp)
        sodium_free(ac->fp);
    db_idem_clear(&ac->stored);
    db_apikey_clear(&ac->key);
    db_user_clear(&ac->user);
    free(ac);
    r->ac = NULL;
}

static enum MHD_Result fail(struct api_create *ac, unsigned status, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Records the first refusal and stops the post processor. */
static enum MHD_Result fail(struct api_create *ac, unsigned status, const char *field,
                            const char *fmt, ...)
{
    if (ac->fail_status == 0) {
        va_list ap;
        ac->fail_status = status;
        ac->fail_field = field;
        va_start(ap, fmt);
        vsnprintf(ac->fail_detail, sizeof(ac->fail_detail), fmt, ap);
        va_end(ap);
    }
    return MHD_NO;
}

static enum MHD_Result field_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    struct req *r = cls;
    struct api_create *ac = r->ac;
    if (ac->fail_status)
        return MHD_NO;
    /* libmicrohttpd hands a part whose Content-Disposition has no usable
     * name over with key == NULL (fuzz finding: it crashed serve). */
    if (key == NULL)
        return fail(ac, 422, NULL, "form part without a name");
    if (strcmp(key, "file") == 0) {
        if (filename == NULL)
            return fail(ac, 422, "file", "file must be sent as a file part (with a filename)");
        if (off == 0 && ac->file_bytes > 0)
            return fail(ac, 422, "file", "file is given more than once");
        if (!ac->file_seen) {
            ac->file_seen = 1;
            ac->filename = xstrndup(filename, SEND_FILENAME_MAX * 4);
            fp_update(ac, "file", 5);
            fp_update(ac, ac->filename, strlen(ac->filename) + 1);
        }
        if (size == 0)
            return MHD_YES;
        if (ac->file_bytes + size > ac->plan->max_file_size) {
            char lim[32];
            format_size(ac->plan->max_file_size, lim, sizeof(lim));
            return fail(ac, 413, "file", "the file is larger than %s (plan %s)", lim,
                        ac->plan->name);
        }
        ac->file_bytes += size;
        fp_update(ac, data, size);
        if (ac->up && send_upload_write(ac->up, data, size) < 0)
            return fail(ac, 503, NULL, "the file could not be stored; try again");
        return MHD_YES;
    }
    for (int i = 0; i < NFIELDS; i++) {
        if (strcmp(key, field_names[i]) != 0)
            continue;
        if (off == 0 && ac->seen[i] && ac->fields[i].len > 0)
            return fail(ac, 422, field_names[i], "%s is given more than once", field_names[i]);
        ac->seen[i] = 1;
        if (buf_append(&ac->fields[i], data, size) < 0)
            return fail(ac, 422, field_names[i], "%s is too long", field_names[i]);
        return MHD_YES;
    }
    char name[64];
    log_scrub(name, sizeof(name), key, (size_t)-1);
    return fail(ac, 422, NULL, "unknown field %s", name);
}

enum MHD_Result api_create_begin(struct req *r, struct MHD_Connection *c)
{
    struct api_create *ac = xcalloc(1, sizeof(*ac));
    r->ac = ac;
    enum MHD_Result res;
    char *presented = NULL;
    if (authenticate(r, c, &ac->key, &ac->user, &res, &presented) < 0)
        return res;
    for (int i = 0; i < NFIELDS; i++)
        buf_init(&ac->fields[i], i == F_MESSAGE ? SEND_MESSAGE_MAX * 4 : SEND_FIELD_MAX);
    ac->plan = config_plan(r->cfg, ac->user.plan);
    if (ac->plan == NULL)
        ac->plan = config_plan(r->cfg, NULL);

    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > ac->plan->max_file_size + HTTP_UPLOAD_OVERHEAD) {
            char lim[32];
            format_size(ac->plan->max_file_size, lim, sizeof(lim));
            sodium_memzero(presented, strlen(presented));
            free(presented);
            metrics_inc("sends_refused_total", "reason=too_big");
            char d[128];
            snprintf(d, sizeof(d), "the file is larger than %s (plan %s)", lim, ac->plan->name);
            return http_problem(r, c, 413, "file", d);
        }
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        sodium_memzero(presented, strlen(presented));
        free(presented);
        return http_problem(r, c, 415, NULL, "send the fields as multipart/form-data");
    }

    const char *ik = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (ik) {
        if (!idem_key_ok(ik)) {
            sodium_memzero(presented, strlen(presented));
            free(presented);
            return http_problem(r, c, 422, "Idempotency-Key",
                                "Idempotency-Key must be 1 to 255 printable ASCII characters");
        }
        ac->idem_key = xstrdup(ik);
        ac->idem_secret = sodium_malloc(32);
        ac->fp = sodium_malloc(sizeof(*ac->fp));
        if (ac->idem_secret == NULL || ac->fp == NULL) {
            sodium_memzero(presented, strlen(presented));
            free(presented);
            return http_problem(r, c, 503, NULL, "out of secure memory; try again");
        }
        idem_secret_derive(presented, ac->idem_secret);
        unsigned char ref[DB_HASH_BYTES];
        idem_subkey(ac, "reference", ref);
        sodium_bin2hex(ac->idem_ref, sizeof(ac->idem_ref), ref, sizeof(ref));
        unsigned char fk[32];
        idem_subkey(ac, "fingerprint", fk);
        crypto_generichash_init(ac->fp, fk, sizeof(fk), DB_HASH_BYTES);
        sodium_memzero(fk, sizeof(fk));
        int64_t now = (int64_t)time(NULL);
        enum db_rc dr = db_idem_claim(r->env.db, ac->key.id, ac->idem_ref, now);
        if (dr == DB_EXISTS) {
            dr = db_idem_get(r->env.db, ac->key.id, ac->idem_ref, &ac->stored);
            if (dr == DB_OK && !ac->stored.done && ac->stored.created < now - IDEM_PENDING_MAX) {
                /* A request that never finished (crash): start afresh. */
                db_idem_clear(&ac->stored);
                if (db_idem_delete(r->env.db, ac->key.id, ac->idem_ref) == DB_OK)
                    dr = db_idem_claim(r->env.db, ac->key.id, ac->idem_ref, now);
                if (dr == DB_OK)
                    ac->idem = IDEM_CLAIMED;
            } else if (dr == DB_OK && !ac->stored.done) {
                sodium_memzero(presented, strlen(presented));
                free(presented);
                return http_problem(r, c, 409, "Idempotency-Key",
                                    "a request with this Idempotency-Key is still in progress");
            } else if (dr == DB_OK) {
                ac->idem = IDEM_REPLAY;
            }
        } else if (dr == DB_OK) {
            ac->idem = IDEM_CLAIMED;
        }
        if (dr != DB_OK) {
            sodium_memzero(presented, strlen(presented));
            free(presented);
            return http_problem(r, c, 503, NULL, "the store is busy; try again");
        }
    }
    sodium_memzero(presented, strlen(presented));
    free(presented);

    r->pp = MHD_create_post_processor(c, HTTP_POST_BUFFER, field_iter, r);
    if (r->pp == NULL)
        return http_problem(r, c, 415, NULL, "send the fields as multipart/form-data");
    if (ac->idem != IDEM_REPLAY) {
        char *err = NULL;
        ac->up = send_upload_new(&r->env, &err);
        if (ac->up == NULL) {
            msg_error("-: api: %s", err ? err : "cannot start the upload");
            free(err);
            return http_problem(r, c, 503, NULL, "the file could not be stored; try again");
        }
    }
    return MHD_YES;
}

static enum MHD_Result refuse(struct req *r, struct MHD_Connection *c)
{
    struct api_create *ac = r->ac;
    char label[48];
    snprintf(label, sizeof(label), "reason=http_%u", ac->fail_status);
    metrics_inc("sends_refused_total", label);
    msg_info("-: api: send refused, status=%u, field=%s, client=%s", ac->fail_status,
             ac->fail_field ? ac->fail_field : "-", r->client);
    return http_problem(r, c, ac->fail_status, ac->fail_field, ac->fail_detail);
}

enum MHD_Result api_create_data(struct req *r, struct MHD_Connection *c, const char *data,
                                size_t size)
{
    (void)c;
    struct api_create *ac = r->ac;
    if (ac->fail_status == 0 && MHD_post_process(r->pp, data, size) != MHD_YES &&
        ac->fail_status == 0)
        fail(ac, 422, NULL, "the multipart body is malformed");
    if (ac->fail_status == 0)
        return MHD_YES;
    /*
     * Refused while the body streams in: stop storing (the temp file goes
     * now) and read the rest without keeping it, so that the client gets
     * the answer (libmicrohttpd answers only after the request); a body
     * that goes on past the upload limit is cut off.
     */
    send_upload_abort(ac->up);
    ac->up = NULL;
    if (r->body_bytes > ac->plan->max_file_size + HTTP_UPLOAD_OVERHEAD)
        return MHD_NO;
    return MHD_YES;
}

static const char *field_or_null(struct api_create *ac, enum field_id i)
{
    return ac->seen[i] ? buf_cstr(&ac->fields[i]) : NULL;
}

enum MHD_Result api_create_end(struct req *r, struct MHD_Connection *c)
{
    struct api_create *ac = r->ac;
    if (ac->fail_status == 0 && !ac->file_seen)
        fail(ac, 422, "file", "file is required");
    if (ac->fail_status)
        return refuse(r, c);

    if (ac->idem == IDEM_REPLAY) {
        unsigned char fp[DB_HASH_BYTES];
        fp_final(ac, fp);
        if (sodium_memcmp(fp, ac->stored.fingerprint, DB_HASH_BYTES) != 0)
            return http_problem(r, c, 422, "Idempotency-Key",
                                "this Idempotency-Key was used with a different request");
        char *body = idem_open(ac, ac->stored.response, ac->stored.response_len);
        if (body == NULL)
            return http_problem(r, c, 500, NULL, "the stored response does not open");
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        sodium_memzero(body, strlen(body));
        free(body);
        if (resp == NULL)
            return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        return http_queue(r, c, (unsigned)ac->stored.status, resp);
    }

    struct send_fields f = {
        .to = field_or_null(ac, F_TO),
        .phone = field_or_null(ac, F_PHONE),
        .message = field_or_null(ac, F_MESSAGE),
        .expires = field_or_null(ac, F_EXPIRES),
        .max_downloads = field_or_null(ac, F_MAX_DOWNLOADS),
        .protect = field_or_null(ac, F_PROTECT),
        .code = field_or_null(ac, F_CODE),
        .lang = field_or_null(ac, F_LANG),
        .filename = ac->filename,
    };
    /* An empty optional field counts as not given. */
    const char **opt[] = {&f.phone,   &f.message, &f.expires, &f.max_downloads,
                          &f.protect, &f.code,    &f.lang};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        if (*opt[i] && (*opt[i])[0] == '\0')
            *opt[i] = NULL;

    struct send_created cr;
    struct send_problem pb = {0};
    if (send_commit(&r->env, &ac->user, ac->key.id, &f, ac->up, r->client, &cr, &pb) < 0) {
        ac->fail_status = (unsigned)pb.status;
        ac->fail_field = pb.field;
        snprintf(ac->fail_detail, sizeof(ac->fail_detail), "%s", pb.detail);
        return refuse(r, c);
    }
    ac->up = NULL; /* consumed */

    char when[32];
    send_time_format(cr.expires, when, sizeof(when));
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "id", cr.id, "url", cr.url,
                          "expires_at", when, "max_downloads", (json_int_t)cr.max_downloads,
                          "protect", cr.protect, "notified", cr.notified);
    if (cr.code[0])
        json_object_set_new(o, "code", json_string(cr.code));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char location[64];
    snprintf(location, sizeof(location), "/api/v1/sends/%s", cr.id);
    send_created_clear(&cr);
    if (body == NULL)
        return MHD_NO;

    if (ac->idem == IDEM_CLAIMED) {
        struct db_idem rec = {.done = 1, .status = 201};
        fp_final(ac, rec.fingerprint);
        idem_seal(ac, body, &rec.response, &rec.response_len);
        if (db_idem_finish(r->env.db, ac->key.id, ac->idem_ref, &rec) == DB_OK)
            ac->idem = IDEM_NONE; /* keep the record */
        free(rec.response);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    sodium_memzero(body, strlen(body));
    free(body);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Location", location);
    return http_queue(r, c, 201, resp);
}

/* ---- GET / DELETE /api/v1/sends/{id} ---- */

static int event_json(const struct db_event *e, void *arg)
{
    char when[32];
    send_time_format(e->time, when, sizeof(when));
    json_t *o = json_pack("{s:s, s:s}", "time", when, "kind", e->kind);
    if (e->client)
        json_object_set_new(o, "client", json_string(e->client));
    if (e->detail)
        json_object_set_new(o, "detail", json_string(e->detail));
    json_array_append_new(arg, o);
    return 0;
}

enum MHD_Result api_send(struct req *r, struct MHD_Connection *c)
{
    struct db_apikey key;
    struct db_user user;
    enum MHD_Result res;
    if (authenticate(r, c, &key, &user, &res, NULL) < 0)
        return res;
    struct db_send s;
    enum db_rc dr = db_send_get(r->env.db, r->arg, &s);
    if (dr == DB_OK && s.user_id != key.user_id) {
        db_send_clear(&s);
        dr = DB_NOTFOUND; /* another user's send does not exist for this key */
    }
    db_apikey_clear(&key);
    db_user_clear(&user);
    if (dr == DB_NOTFOUND)
        return http_problem(r, c, 404, NULL, "no such send");
    if (dr != DB_OK)
        return http_problem(r, c, 503, NULL, "the store is busy; try again");

    if (strcmp(r->method, "DELETE") == 0) {
        db_send_clear(&s);
        struct send_problem pb = {0};
        if (send_revoke(&r->env, r->arg, r->client, &pb) < 0)
            return http_problem(r, c, (unsigned)pb.status, pb.field, pb.detail);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp == NULL)
            return MHD_NO;
        return http_queue(r, c, 204, resp);
    }

    int64_t now = (int64_t)time(NULL);
    char created[32], expires[32];
    send_time_format(s.created, created, sizeof(created));
    send_time_format(s.expires, expires, sizeof(expires));
    int64_t left = s.max_downloads - s.downloads;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "id", s.id,
                          "state", send_state_name(&s, now), "created_at", created, "expires_at",
                          expires, "protect", s.protect, "size", (json_int_t)s.size,
                          "max_downloads", (json_int_t)s.max_downloads, "downloads",
                          (json_int_t)s.downloads, "downloads_left",
                          (json_int_t)(left > 0 && strcmp(s.state, DB_SEND_ACTIVE) == 0 ? left : 0),
                          "attempts", (json_int_t)s.attempts, "file_destroyed", s.destroyed != 0);
    if (s.locked_until > now) {
        if (s.locked_until == INT64_MAX) {
            json_object_set_new(o, "locked_until", json_string("forever"));
        } else {
            char lu[32];
            send_time_format(s.locked_until, lu, sizeof(lu));
            json_object_set_new(o, "locked_until", json_string(lu));
        }
    }
    if (strcmp(s.protect, "mtan") == 0) /* SMS sent for this link (of mtan_max_sends) */
        json_object_set_new(o, "mtan_sends", json_integer((json_int_t)s.mtan_sends));
    char *to = send_recipient_open(r->sl->master, &s);
    if (to) {
        json_object_set_new(o, "to", json_string(to));
        free(to);
    }
    json_t *events = json_array();
    (void)db_event_foreach(r->env.db, s.id, event_json, events);
    json_object_set_new(o, "events", events);
    db_send_clear(&s);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return http_queue(r, c, 200, resp);
}
