/*
 * sendlink_send — the life cycle of a send, shared by the HTTP API and the
 * CLI: upload (encrypt while streaming), rules (plan, limits), commit
 * (durable file, then the row), notification, revoke, sweep.
 *
 * Where it sits: sendlink_api.c and cli/cli_send.c call in; it calls the
 * vault writer (deliver/vault.h), the store and outbound_enqueue.
 *
 * Durability: the encrypted file is written to DATA_DIR/tmp/send-ID.tmp,
 * fsynced, renamed to DATA_DIR/sends/ID and the directory fsynced before
 * the row is committed; a crash before the commit leaves a temp file or an
 * unreferenced file (removed by deliver_cleanup and send_sweep), never a
 * row without its file. Destroying goes the other way: unlink the file,
 * then forget the keys; a crash in between leaves a row the next sweep
 * finishes.
 *
 * Trusts: nothing in the fields: every one is checked here against a named
 * limit; the file name is cleaned (RULES.md 7) and only stored sealed.
 */
#include "deliver/outbound.h"
#include "deliver/vault.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/xalloc.h"
#include "mime/mime.h"
#include "lib/metrics.h"
#include "sendlink/sendlink_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The file is part 1 of its container (part 0 unused: the page record is apart). */
#define SEND_PART_FILE 1
/* Version of the page record (docs/FORMATS.md). */
#define SEND_PAGE_VERSION 1
/* Idempotency records: replayed for a day; a pending one older than this was a crash. */
#define SEND_IDEM_TTL (24 * 60 * 60)
#define SEND_IDEM_PENDING_MAX (60 * 60)
/* SMS outbox rows (ids, routes, provider references) are kept this long. */
#define SEND_SMS_OUTBOX_KEEP (90 * 24 * 60 * 60)

struct send_upload {
    char id[RAND_ID_LEN + 1];
    char *tmp_path;
    FILE *f;
    unsigned char *key; /* locked: the file key */
    struct vault_writer *w;
    uint64_t size;
    int failed;
};

void send_created_clear(struct send_created *c)
{
    free(c->url);
    sodium_memzero(c->code, sizeof(c->code));
    memset(c, 0, sizeof(*c));
}

char *send_blob_path(const struct config *cfg, const char *id)
{
    return xasprintf("%s/%s/%s", cfg->data_dir, SEND_DIR, id);
}

void send_time_format(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- upload ---- */

struct send_upload *send_upload_new(const struct send_env *env, char **err)
{
    struct send_upload *u = xcalloc(1, sizeof(*u));
    rand_id(u->id);
    u->tmp_path = xasprintf("%s/%s/send-%s.tmp", env->cfg->data_dir, SEND_TMP_DIR, u->id);
    int fd = open(u->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        *err = xasprintf("cannot create %s: %s", u->tmp_path, strerror(errno));
        free(u->tmp_path);
        free(u);
        return NULL;
    }
    u->f = fdopen(fd, "w");
    u->key = sodium_malloc(VAULT_KEY_BYTES);
    if (u->f == NULL || u->key == NULL) {
        if (u->f == NULL)
            close(fd);
        *err = xstrdup("out of memory");
        u->w = NULL;
        send_upload_abort(u);
        return NULL;
    }
    vault_key_new(u->key);
    u->w = vault_writer_new(u->f, u->id, u->key);
    if (u->w == NULL || vault_part_begin(u->w, SEND_PART_FILE) < 0) {
        *err = xasprintf("cannot write %s", u->tmp_path);
        send_upload_abort(u);
        return NULL;
    }
    return u;
}

int send_upload_write(struct send_upload *u, const void *p, size_t n)
{
    if (u->failed || vault_part_write(u->w, p, n) < 0) {
        u->failed = 1;
        return -1;
    }
    u->size += n;
    return 0;
}

uint64_t send_upload_size(const struct send_upload *u)
{
    return u->size;
}

const char *send_upload_id(const struct send_upload *u)
{
    return u->id;
}

static void upload_free(struct send_upload *u)
{
    if (u->w)
        (void)vault_writer_free(u->w);
    if (u->f)
        fclose(u->f);
    if (u->key)
        sodium_free(u->key);
    free(u->tmp_path);
    free(u);
}

void send_upload_abort(struct send_upload *u)
{
    if (u == NULL)
        return;
    unlink(u->tmp_path);
    upload_free(u);
}

/*
 * Ends the container and makes it durable under DATA_DIR/sends/ID: fsync
 * the file, rename, fsync the directory (STYLE.md 14). A failed fsync is
 * not retried: the send fails.
 */
static int upload_finish(const struct send_env *env, struct send_upload *u)
{
    int r = vault_part_end(u->w);
    if (vault_writer_free(u->w) < 0)
        r = -1;
    u->w = NULL;
    if (r == 0 && (fflush(u->f) != 0 || fsync(fileno(u->f)) < 0))
        r = -1;
    if (fclose(u->f) != 0)
        r = -1;
    u->f = NULL;
    if (r < 0) {
        msg_error("%s: send: cannot write the encrypted file: %s", u->id, strerror(errno));
        return -1;
    }
    char *dir = xasprintf("%s/%s", env->cfg->data_dir, SEND_DIR);
    char *final = send_blob_path(env->cfg, u->id);
    if (mkdir_p(dir, 0700) < 0 || rename(u->tmp_path, final) < 0 || fsync_dir(dir) < 0) {
        msg_error("%s: send: cannot store %s: %s", u->id, final, strerror(errno));
        unlink(final);
        r = -1;
    }
    free(dir);
    free(final);
    return r;
}

/* ---- rules ---- */

static int problem(struct send_problem *pb, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int problem(struct send_problem *pb, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    pb->status = status;
    pb->field = field;
    va_start(ap, fmt);
    vsnprintf(pb->detail, sizeof(pb->detail), fmt, ap);
    va_end(ap);
    return -1;
}

int send_phone_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 8 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int send_address_valid(const char *s)
{
    const char *at = strrchr(s, '@');
    size_t n = strlen(s);
    if (at == NULL || at == s || n > SEND_TO_MAX || (size_t)(at - s) > 64)
        return 0;
    for (const char *p = s; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("()<>[]:;@\\,\"", c))
            return 0;
    }
    const char *d = at + 1;
    size_t dl = strlen(d), label = 0;
    int dots = 0;
    if (dl == 0 || dl > 253 || d[0] == '.' || d[dl - 1] == '.')
        return 0;
    for (const char *p = d; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            dots++;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return dots > 0;
}

/* Valid UTF-8 without control characters other than tab, CR and LF. */
static int text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t need;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3;
        else
            return 0;
        uint32_t cp = c & (0x3f >> need);
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += need + 1;
    }
    return 1;
}

static const char *protect_of(const struct send_fields *f)
{
    if (f->protect)
        return f->protect;
    return f->code ? "code" : "none";
}

int send_fields_check(const struct config *cfg, const struct plan *plan,
                      const struct send_fields *f, struct send_problem *pb)
{
    const char *protect = protect_of(f);
    if (strcmp(protect, "none") != 0 && strcmp(protect, "code") != 0 &&
        strcmp(protect, "mtan") != 0)
        return problem(pb, 422, "protect", "protect must be none, code or mtan");
    /* Features the plan lacks: 403, before any field detail. */
    if (strcmp(protect, "code") == 0 && !plan->code)
        return problem(pb, 403, "protect", "plan %s does not include code-protected sends",
                       plan->name);
    if (strcmp(protect, "mtan") == 0 && !plan->mtan)
        return problem(pb, 403, "protect", "plan %s does not include mTAN-protected sends",
                       plan->name);
    if (f->expires && !plan->choose_expiry)
        return problem(pb, 403, "expires", "plan %s does not allow choosing the expiry",
                       plan->name);

    if (f->to == NULL || f->to[0] == '\0')
        return problem(pb, 422, "to", "to (the recipient's address) is required");
    if (!send_address_valid(f->to))
        return problem(pb, 422, "to", "to is not a valid mail address");
    if (f->phone && !send_phone_valid(f->phone))
        return problem(pb, 422, "phone", "phone must be an E.164 number such as +41791234567");
    if (strcmp(protect, "mtan") == 0 && f->phone == NULL)
        return problem(pb, 422, "phone", "phone is required with protect=mtan");
    /* [sms] allowed_prefixes / denied_prefixes: say so now, not when the SMS is due. */
    if (strcmp(protect, "mtan") == 0 && !config_sms_number_allowed(cfg, f->phone))
        return problem(pb, 422, "phone", "SMS to this number's prefix are not allowed here");
    if (f->message && (strlen(f->message) > SEND_MESSAGE_MAX || !text_ok(f->message)))
        return problem(pb, 422, "message", "message must be UTF-8 text of at most %d bytes",
                       SEND_MESSAGE_MAX);
    if (f->expires) {
        uint64_t secs;
        uint64_t min =
            cfg->min_expiry < cfg->default_expiry ? cfg->min_expiry : cfg->default_expiry;
        if (parse_duration(f->expires, &secs) < 0)
            return problem(pb, 422, "expires", "expires must be a duration such as 3600, 90m, 7d");
        if (secs < min || secs > cfg->max_expiry) {
            char lo[32], hi[32];
            format_duration(min, lo, sizeof(lo));
            format_duration(cfg->max_expiry, hi, sizeof(hi));
            return problem(pb, 422, "expires", "expires must be between %s and %s", lo, hi);
        }
    }
    if (f->max_downloads) {
        uint64_t n;
        if (parse_uint(f->max_downloads, &n) < 0 || n < 1 || n > cfg->max_downloads)
            return problem(pb, 422, "max_downloads", "max_downloads must be 1 to %u",
                           cfg->max_downloads);
    }
    if (f->code) {
        char norm[SEND_CODE_MAX + 1];
        size_t len;
        if (strcmp(protect, "code") != 0)
            return problem(pb, 422, "code", "code is only for protect=code");
        if (send_code_normalise(f->code, norm, sizeof(norm)) < 0 ||
            (len = strlen(norm)) < cfg->code_length)
            return problem(pb, 422, "code", "code must be %u to %d letters and digits",
                           cfg->code_length, SEND_CODE_MAX);
        sodium_memzero(norm, sizeof(norm));
    }
    if (f->lang && strcmp(f->lang, "en") != 0 && strcmp(f->lang, "fr") != 0 &&
        strcmp(f->lang, "de") != 0)
        return problem(pb, 422, "lang", "lang must be en, fr or de");
    return 0;
}

/* ---- page record ---- */

void send_page_clear(struct send_page *p)
{
    free(p->name);
    free(p->message);
    free(p->sender_name);
    free(p->sender_email);
    free(p->lang);
    memset(p, 0, sizeof(*p));
}

static char *json_str_dup(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return xstrdup(v ? v : "");
}

int send_page_open(const struct db_send *s, const unsigned char raw[SEND_TOKEN_BYTES],
                   struct send_page *out)
{
    memset(out, 0, sizeof(*out));
    if (s->page == NULL)
        return -1;
    unsigned char key[SEND_KEY_BYTES];
    char *text = NULL;
    size_t len = 0;
    send_page_key(raw, key);
    enum vault_rc rc =
        vault_open_buf(s->page, s->page_len, s->id, key, 0, SEND_PAGE_MAX, &text, &len);
    sodium_memzero(key, sizeof(key));
    if (rc != VAULT_OK) {
        msg_warn("%s: send: page record does not open: %s", s->id, vault_rc_str(rc));
        return -1;
    }
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    sodium_memzero(text, len);
    free(text);
    if (!json_is_object(o) || json_integer_value(json_object_get(o, "v")) != SEND_PAGE_VERSION) {
        json_decref(o);
        return -1;
    }
    out->name = json_str_dup(o, "name");
    out->message = json_str_dup(o, "message");
    out->sender_name = json_str_dup(o, "sender_name");
    out->sender_email = json_str_dup(o, "sender_email");
    out->lang = json_str_dup(o, "lang");
    out->size = json_integer_value(json_object_get(o, "size"));
    json_decref(o);
    return 0;
}

/* ---- notification mail ---- */

struct mail_text {
    const char *lang;
    const char *subject;   /* %s: sender */
    const char *intro;     /* %s: sender */
    const char *link;      /* %s: expiry */
    const char *downloads; /* %lld: downloads */
    const char *code;
    const char *mtan;
    const char *ignore;
};

static const struct mail_text mail_texts[] = {
    {"en", "%s sent you a file", "%s sent you a file with sealpost.",
     "Open this link to download it (until %s):", "The link works for %lld download(s).",
     "You need a security code to download it: the sender gives it to you separately.",
     "You need a code that will be sent to your phone by SMS.",
     "If you did not expect this mail, you can ignore it."},
    {"fr", "%s vous a envoyé un fichier", "%s vous a envoyé un fichier avec sealpost.",
     "Ouvrez ce lien pour le télécharger (jusqu'au %s) :", "Le lien permet %lld téléchargement(s).",
     "Un code de sécurité est nécessaire : l'expéditeur vous le transmet séparément.",
     "Un code vous sera envoyé par SMS.",
     "Si vous n'attendiez pas ce message, vous pouvez l'ignorer."},
    {"de", "%s hat Ihnen eine Datei gesendet", "%s hat Ihnen mit sealpost eine Datei gesendet.",
     "Öffnen Sie diesen Link, um sie herunterzuladen (bis %s):",
     "Der Link gilt für %lld Download(s).",
     "Zum Herunterladen brauchen Sie einen Sicherheitscode, den Ihnen der Absender separat "
     "mitteilt.",
     "Sie erhalten einen Code per SMS auf Ihr Telefon.",
     "Wenn Sie diese Nachricht nicht erwartet haben, können Sie sie ignorieren."},
};

static const struct mail_text *mail_text_for(const char *lang)
{
    for (size_t i = 0; i < sizeof(mail_texts) / sizeof(mail_texts[0]); i++)
        if (lang && strcmp(mail_texts[i].lang, lang) == 0)
            return &mail_texts[i];
    return &mail_texts[0];
}
static int notify_recipient(const struct send_env *env, const struct send_fields *f,
                            const char *sender, const char *reply_to, const char *protect,
                            const struct send_created *c)
{
    const struct mail_text *t = mail_text_for(f->lang);
    char when[32], subject[512], line[512];
    struct buf text = BUF_INIT, html = BUF_INIT;
    send_time_format(c->expires, when, sizeof(when));
    snprintf(subject, sizeof(subject), t->subject, sender);
    int r = 0;
    r |= buf_printf(&text, t->intro, sender);
    r |= buf_puts(&text, "\n\n");
    r |= buf_puts(&html, "<!DOCTYPE html><html><body><p>");
    snprintf(line, sizeof(line), t->intro, sender);
    r |= buf_put_html(&html, line);
    r |= buf_puts(&html, "</p>");
    if (f->message && f->message[0]) {
        r |= buf_printf(&text, "%s\n\n", f->message);
        r |= buf_puts(&html, "<blockquote style=\"white-space:pre-wrap\">");
        r |= buf_put_html(&html, f->message);
        r |= buf_puts(&html, "</blockquote>");
    }
    snprintf(line, sizeof(line), t->link, when);
    r |= buf_printf(&text, "%s\n%s\n\n", line, c->url);
    r |= buf_puts(&html, "<p>");
    r |= buf_put_html(&html, line);
    r |= buf_puts(&html, "<br><a href=\"");
    r |= buf_put_html(&html, c->url);
    r |= buf_puts(&html, "\">");
    r |= buf_put_html(&html, c->url);
    r |= buf_puts(&html, "</a></p>");
    snprintf(line, sizeof(line), t->downloads, (long long)c->max_downloads);
    r |= buf_printf(&text, "%s\n", line);
    r |= buf_puts(&html, "<p>");
    r |= buf_put_html(&html, line);
    const char *extra = strcmp(protect, "code") == 0   ? t->code
                        : strcmp(protect, "mtan") == 0 ? t->mtan
                                                       : NULL;
    if (extra) {
        r |= buf_printf(&text, "%s\n", extra);
        r |= buf_puts(&html, "<br>");
        r |= buf_put_html(&html, extra);
    }
    r |= buf_printf(&text, "\n%s\n", t->ignore);
    r |= buf_puts(&html, "</p><p>");
    r |= buf_put_html(&html, t->ignore);
    r |= buf_puts(&html, "</p></body></html>\n");
    int ok = -1;
    if (r == 0) {
        struct outbound_mail m = {.to = f->to,
                                  .subject = subject,
                                  .text = buf_cstr(&text),
                                  .html = buf_cstr(&html),
                                  .reply_to = reply_to,
                                  .send_id = c->id,
                                  .kind = "notify"};
        char qid[RAND_ID_LEN + 1];
        ok = outbound_enqueue(env->db, env->cfg, env->master, &m, qid);
        if (ok == 0)
            msg_info("%s: send: notification queued, queue_id=%s", c->id, qid);
    }
    /* The text holds the link: wipe it. */
    buf_free_secret(&text);
    buf_free_secret(&html);
    metrics_inc(ok == 0 ? "notifications_queued_total" : "notifications_failed_total",
                "kind=notify");
    return ok;
}

void send_notify_sender(const struct send_env *env, const struct db_send *s)
{
    if (!env->cfg->notify_sender || s->user_id <= 0)
        return;
    if (db_send_sender_notify_claim(env->db, s->id) != DB_OK)
        return; /* told already */
    struct db_user u;
    if (db_user_get_by_id(env->db, s->user_id, &u) != DB_OK)
        return;
    char when[32];
    send_time_format(time(NULL), when, sizeof(when));
    char *text = xasprintf("Your send %s was downloaded for the first time (%s).\n"
                           "It stays available until it expires, is used up or you revoke it.\n",
                           s->id, when);
    char *subject = xasprintf("Your file was downloaded (send %s)", s->id);
    struct outbound_mail m = {
        .to = u.email, .subject = subject, .text = text, .send_id = s->id, .kind = "sender_notify"};
    char qid[RAND_ID_LEN + 1];
    int ok = outbound_enqueue(env->db, env->cfg, env->master, &m, qid);
    if (ok == 0)
        msg_info("%s: send: sender notification queued, queue_id=%s", s->id, qid);
    else
        msg_warn("%s: send: sender notification could not be queued", s->id);
    metrics_inc(ok == 0 ? "notifications_queued_total" : "notifications_failed_total",
                "kind=sender_notify");
    free(text);
    free(subject);
    db_user_clear(&u);
}

/* ---- commit ---- */

static int event_add(struct db *db, const char *id, const char *kind, const char *client,
                     const char *detail)
{
    struct db_event e = {.subject = id, .kind = kind, .client = client, .detail = detail};
    return db_event_add(db, &e) == DB_OK ? 0 : -1;
}

int send_commit(const struct send_env *env, const struct db_user *user, const char *apikey_id,
                const struct send_fields *f, struct send_upload *u, const char *client,
                struct send_created *out, struct send_problem *pb)
{
    const struct config *cfg = env->cfg;
    const struct plan *plan = config_plan(cfg, user ? user->plan : NULL);
    if (plan == NULL)
        plan = config_plan(cfg, NULL);
    memset(out, 0, sizeof(*out));
    if (send_fields_check(cfg, plan, f, pb) < 0)
        return -1;
    if (u->failed)
        return problem(pb, 503, NULL, "the file could not be stored; try again");
    if (u->size > plan->max_file_size) {
        char lim[32];
        format_size(plan->max_file_size, lim, sizeof(lim));
        return problem(pb, 413, "file", "the file is larger than %s (plan %s)", lim, plan->name);
    }

    const char *protect = protect_of(f);
    int64_t now = (int64_t)time(NULL);
    uint64_t secs = cfg->default_expiry, maxdl = cfg->max_downloads;
    if (f->expires && parse_duration(f->expires, &secs) < 0)
        return problem(pb, 422, "expires", "bad expires");
    if (f->max_downloads && parse_uint(f->max_downloads, &maxdl) < 0)
        return problem(pb, 422, "max_downloads", "bad max_downloads");
    char code[SEND_CODE_MAX + 1] = "";
    if (strcmp(protect, "code") == 0) {
        if (f->code) {
            if (send_code_normalise(f->code, code, sizeof(code)) < 0)
                return problem(pb, 422, "code", "bad code");
        } else {
            send_code_new(cfg->code_length, code);
        }
    }
    char name[MIME_NAME_MAX + 1];
    const char *given = f->filename && f->filename[0] ? f->filename : "file";
    mime_filename_clean(given, strlen(given), name, sizeof(name));

    if (upload_finish(env, u) < 0) {
        sodium_memzero(code, sizeof(code));
        return problem(pb, 503, NULL, "the file could not be stored; try again");
    }

    /* Keys: token → page key, wrap key (+ code) → wrapped file key. */
    unsigned char raw[SEND_TOKEN_BYTES], key[SEND_KEY_BYTES];
    char token[SEND_TOKEN_CHARS + 1];
    unsigned char wrapped[SEND_WRAPPED_BYTES], code_mac[DB_HASH_BYTES];
    struct db_send s;
    memset(&s, 0, sizeof(s));
    snprintf(s.id, sizeof(s.id), "%s", u->id);
    s.user_id = user ? user->id : 0;
    snprintf(s.apikey_id, sizeof(s.apikey_id), "%s", apikey_id ? apikey_id : "");
    send_token_new(raw, token);
    send_token_hash(env->master, raw, s.token_hash);
    s.created = now;
    s.expires = now + (int64_t)secs;
    s.max_downloads = (int64_t)maxdl;
    snprintf(s.protect, sizeof(s.protect), "%s", protect);
    snprintf(s.state, sizeof(s.state), "%s", DB_SEND_ACTIVE);
    s.size = (int64_t)u->size;

    send_wrap_key(raw, code[0] ? code : NULL, key);
    send_key_wrap(key, s.id, u->key, wrapped);
    s.wrapped_key = wrapped;
    s.wrapped_key_len = sizeof(wrapped);
    if (code[0]) {
        send_code_mac(env->master, s.id, code, code_mac);
        s.code_mac = code_mac;
        s.code_mac_len = sizeof(code_mac);
    }

    const char *sender_name = user ? user->name : "sealpost";
    const char *sender_email = user ? user->email : (cfg->from ? cfg->from : "");
    json_t *page = json_pack("{s:i, s:s, s:I, s:s, s:s, s:s, s:s}", "v", SEND_PAGE_VERSION, "name",
                             name, "size", (json_int_t)u->size, "message",
                             f->message ? f->message : "", "sender_name", sender_name,
                             "sender_email", sender_email, "lang", f->lang ? f->lang : "en");
    char *page_text = json_dumps(page, JSON_COMPACT);
    json_decref(page);
    send_page_key(raw, key);
    int r = page_text
                ? vault_seal_buf(s.id, key, 0, page_text, strlen(page_text), &s.page, &s.page_len)
                : -1;
    if (page_text) {
        sodium_memzero(page_text, strlen(page_text));
        free(page_text);
    }
    sodium_memzero(key, sizeof(key));
    sodium_memzero(raw, sizeof(raw));
    send_secret_seal(env->master, s.id, "to", f->to, &s.recipient, &s.recipient_len);
    if (f->phone)
        send_secret_seal(env->master, s.id, "phone", f->phone, &s.phone, &s.phone_len);

    char detail[64];
    snprintf(detail, sizeof(detail), "protect=%s", protect);
    enum db_rc dr = DB_ERR;
    if (r == 0 && (dr = db_begin(env->db)) == DB_OK) {
        if ((dr = db_send_insert(env->db, &s)) == DB_OK &&
            event_add(env->db, s.id, "created", client, detail) == 0)
            dr = db_commit(env->db);
        else if (dr == DB_OK)
            dr = DB_ERR;
        if (dr != DB_OK)
            db_rollback(env->db);
    }
    free(s.page);
    free(s.recipient);
    free(s.phone);
    s.page = s.recipient = s.phone = NULL;
    s.wrapped_key = s.code_mac = NULL;
    sodium_memzero(wrapped, sizeof(wrapped));
    if (dr != DB_OK) {
        char *path = send_blob_path(cfg, s.id);
        unlink(path);
        free(path);
        sodium_memzero(token, sizeof(token));
        sodium_memzero(code, sizeof(code));
        return problem(pb, 503, NULL, "the store is busy; try again");
    }
    upload_free(u);

    snprintf(out->id, sizeof(out->id), "%s", s.id);
    out->url = xasprintf("%s/s/%s", cfg->public_url, token);
    sodium_memzero(token, sizeof(token));
    out->expires = s.expires;
    out->max_downloads = s.max_downloads;
    snprintf(out->protect, sizeof(out->protect), "%s", protect);
    snprintf(out->code, sizeof(out->code), "%s", code);
    sodium_memzero(code, sizeof(code));
    msg_info("%s: send: created, user=%s, size=%lld, protect=%s, max_downloads=%lld, "
             "expires=%lld, client=%s",
             s.id, user ? scrub(user->name) : "-", (long long)s.size, protect,
             (long long)s.max_downloads, (long long)s.expires, client ? scrub(client) : "-");
    metrics_inc("sends_created_total", NULL);

    char sender[512];
    if (user)
        snprintf(sender, sizeof(sender), "%s <%s>", user->name, user->email);
    else
        snprintf(sender, sizeof(sender), "%s", sender_email[0] ? sender_email : "sealpost");
    out->notified = notify_recipient(env, f, sender, user ? user->email : NULL, protect, out) == 0;
    if (!out->notified) {
        msg_warn("%s: send: the recipient's notification could not be queued", s.id);
        (void)event_add(env->db, s.id, "notify_failed", NULL, "enqueue");
    }
    return 0;
}

/* ---- revoke, destroy, sweep ---- */

int send_destroy(const struct send_env *env, const struct db_send *s, const char *why)
{
    char *path = send_blob_path(env->cfg, s->id);
    int r = 0;
    if (unlink(path) < 0 && errno != ENOENT) {
        msg_error("%s: send: cannot remove %s: %s", s->id, path, strerror(errno));
        r = -1;
    }
    free(path);
    if (r == 0) {
        enum db_rc dr = db_send_destroy(env->db, s->id, 0);
        if (dr == DB_OK) {
            (void)event_add(env->db, s->id, "destroyed", NULL, why);
            metrics_inc("sends_destroyed_total", NULL);
            msg_info("%s: send: file destroyed, reason=%s", s->id, why);
        } else if (dr != DB_NOTFOUND) {
            r = -1;
        }
    }
    return r;
}

int send_revoke(const struct send_env *env, const char *id, const char *client,
                struct send_problem *pb)
{
    struct db_send s;
    enum db_rc dr = db_send_get(env->db, id, &s);
    if (dr == DB_NOTFOUND)
        return problem(pb, 404, NULL, "no such send");
    if (dr != DB_OK)
        return problem(pb, 503, NULL, "the store is busy; try again");
    dr = db_send_end(env->db, id, DB_SEND_REVOKED);
    if (dr == DB_OK) {
        (void)event_add(env->db, id, "revoked", client, NULL);
        metrics_inc("sends_revoked_total", NULL);
        msg_info("%s: send: revoked, client=%s", id, client ? scrub(client) : "-");
    } else if (dr != DB_NOTFOUND) {
        db_send_clear(&s);
        return problem(pb, 503, NULL, "the store is busy; try again");
    }
    int r = s.destroyed ? 0 : send_destroy(env, &s, "revoked");
    db_send_clear(&s);
    if (r < 0)
        return problem(pb, 503, NULL, "the file could not be destroyed; try again");
    return 0;
}

const char *send_state_name(const struct db_send *s, int64_t now)
{
    if (strcmp(s->state, DB_SEND_ACTIVE) != 0)
        return s->state;
    if (s->expires <= now)
        return DB_SEND_EXPIRED;
    if (s->locked_until > now)
        return "locked";
    return DB_SEND_ACTIVE;
}

char *send_recipient_open(const unsigned char *master, const struct db_send *s)
{
    return send_secret_open(master, s->id, "to", s->recipient, s->recipient_len);
}

struct due {
    struct db_send *v;
    size_t n;
};

static int due_collect(const struct db_send *s, void *arg)
{
    struct due *d = arg;
    d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
    struct db_send *c = &d->v[d->n++];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, s->id, sizeof(c->id));
    memcpy(c->state, s->state, sizeof(c->state));
    c->expires = s->expires;
    return 0;
}

long send_sweep(const struct send_env *env, int64_t now)
{
    struct due d = {NULL, 0};
    if (db_send_foreach_due(env->db, now, due_collect, &d) != DB_OK) {
        free(d.v);
        return -1;
    }
    long done = 0;
    for (size_t i = 0; i < d.n; i++) {
        struct db_send *s = &d.v[i];
        const char *why = s->state;
        if (strcmp(s->state, DB_SEND_ACTIVE) == 0) {
            if (db_send_end(env->db, s->id, DB_SEND_EXPIRED) == DB_OK) {
                (void)event_add(env->db, s->id, "expired", NULL, NULL);
                metrics_inc("sends_expired_total", NULL);
                msg_info("%s: send: expired", s->id);
            }
            why = DB_SEND_EXPIRED;
        }
        if (send_destroy(env, s, why) == 0)
            done++;
    }
    free(d.v);
    if (db_idem_expire(env->db, now - SEND_IDEM_TTL, now - SEND_IDEM_PENDING_MAX) != DB_OK)
        msg_warn("-: sweep: idempotency records not expired this time");
    if (db_sms_outbox_purge(env->db, now - SEND_SMS_OUTBOX_KEEP) != DB_OK ||
        db_sms_counters_purge(env->db, now) != DB_OK)
        msg_warn("-: sweep: SMS outbox and counters not purged this time");
    return done;
}
