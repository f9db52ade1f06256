/*
 * sendlink_page — the recipient's side: GET /s/{token} (the page), POST
 * /s/{token} (code → the file), POST /s/{token}/mtan.
 *
 * The page is plain HTML with one inline style sheet allowed by its hash in
 * the CSP: no scripts, no external assets, readable on a phone, in English,
 * French or German after Accept-Language. Every outcome is a page of its
 * own with the right status: 200, 403 wrong code (attempts left) or
 * cross-site post, 404 unknown link, 410 expired/revoked/used up, 423
 * locked; for POST …/mtan also 429 (a cap, Retry-After) and 503 (no
 * route took the SMS). The mTAN flow itself is sendlink/sms_mtan.c.
 *
 * GET and HEAD change nothing that matters (RULES.md 8): they never count a
 * download or an attempt; a GET records a page_opened event (the first
 * SEND_PAGE_EVENTS_MAX of them). Only a POST with the code downloads. A
 * download counts when MHD reports the whole response handed over
 * (page_download_done); the file is decrypted chunk by chunk in the content
 * reader, so memory does not grow with the file.
 *
 * Trusts: nothing from the request. The token is checked for length and
 * alphabet and only its keyed hash is looked up; codes are compared as
 * keyed MACs in constant time; a POST whose Origin or Sec-Fetch-Site says
 * it came from another site is refused. Sender-supplied text (name,
 * message, file name) is HTML-escaped; the file name is cleaned (RULES.md
 * 7) and sent with RFC 6266 filename*.
 */
#include "deliver/vault.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "sendlink/sendlink_http.h"
#include "sendlink/sms.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The file is part 1 of its container (sendlink_send.c). */
#define PAGE_PART_FILE 1
/* Longest Accept-Language header looked at. */
#define ACCEPT_LANGUAGE_MAX 512

static const char page_css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:1.05rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:#1b1f24;background:#f3f5f7}"
    "main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;"
    "box-shadow:0 1px 3px rgba(0,0,0,.15)}"
    "h1{font-size:1.5rem;margin:0 0 1rem}"
    "blockquote{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #0b5cad;"
    "background:#eef4fb;white-space:pre-wrap;overflow-wrap:anywhere}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:1rem 0}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}"
    "label{display:block;font-weight:600;margin:1rem 0 .25rem}"
    "input{width:100%;font:inherit;font-size:1.25rem;letter-spacing:.1em;padding:.5rem;"
    "border:2px solid #555;border-radius:.25rem}"
    "input:focus,button:focus{outline:3px solid #f5a623;outline-offset:2px}"
    "button{margin-top:1rem;width:100%;font:inherit;font-weight:600;padding:.75rem;"
    "color:#fff;background:#0b5cad;border:0;border-radius:.25rem;cursor:pointer}"
    ".error{padding:.75rem 1rem;border-radius:.25rem;background:#fdecea;color:#8a1c12}"
    ".note{color:#4a5560;font-size:.95rem}"
    "@media (prefers-color-scheme:dark){body{background:#111;color:#e8e8e8}"
    "main{background:#1c1f23}blockquote{background:#1a2a3a}"
    "input{background:#111;color:#fff;border-color:#999}.note{color:#aab}"
    ".error{background:#3a1512;color:#ffb4a9}}";

struct page_text {
    const char *lang;
    const char *title;
    const char *from;
    const char *file;
    const char *size;
    const char *until;
    const char *left;
    const char *code_label;
    const char *download;
    const char *code_note;
    const char *mtan_note;
    const char *mtan_button;
    const char *enter_code;
    const char *wrong_code; /* %lld: attempts left */
    const char *locked;     /* %s: until */
    const char *locked_forever;
    const char *not_found_title;
    const char *not_found;
    const char *gone_title;
    const char *expired;
    const char *revoked;
    const char *used_up;
    const char *cross_site;
    const char *mtan_unavailable;
    const char *phone;
    const char *mtan_sent; /* %s: masked number, %u: minutes */
    const char *mtan_expired;
    const char *mtan_capped;
    const char *mtan_refused;
    const char *mtan_not_used;
    const char *error_title;
    const char *error;
    const char *bytes;
    char decimal;
};

static const struct page_text texts[] = {
    {"en",
     "A file for you",
     "From",
     "File",
     "Size",
     "Available until",
     "Downloads left",
     "Security code",
     "Download",
     "The sender gives you the security code separately.",
     "A code is sent to your phone by SMS.",
     "Send me the code by SMS",
     "Please enter the security code.",
     "This code is not right. Attempts left before the link locks: %lld.",
     "Too many wrong codes: this link is locked until %s. The sender can see this and send "
     "the file again.",
     "Too many wrong codes: this link is locked. The sender can see this and send the file "
     "again.",
     "Unknown link",
     "This link does not exist. Check that you copied all of it.",
     "No longer available",
     "This link has expired.",
     "The sender has withdrawn this file.",
     "This file has been downloaded as often as the sender allowed.",
     "This form was sent from another site and was refused.",
     "The code could not be sent by SMS right now. Please try again in a moment.",
     "Phone",
     "A code was sent to %s. It is valid for %u minutes; a new code replaces it.",
     "This code has expired. Please ask for a new one.",
     "No more codes can be sent for this link right now.",
     "Codes by SMS cannot be sent for this link. Please ask the sender for another way.",
     "This link does not use codes by SMS.",
     "Something went wrong",
     "The file cannot be delivered right now. Please try again later.",
     "bytes",
     '.'},
    {"fr",
     "Un fichier pour vous",
     "De",
     "Fichier",
     "Taille",
     "Disponible jusqu'au",
     "Téléchargements restants",
     "Code de sécurité",
     "Télécharger",
     "L'expéditeur vous transmet le code de sécurité séparément.",
     "Un code vous est envoyé par SMS.",
     "M'envoyer le code par SMS",
     "Veuillez saisir le code de sécurité.",
     "Ce code n'est pas correct. Essais restants avant le blocage du lien : %lld.",
     "Trop de codes erronés : ce lien est bloqué jusqu'au %s. L'expéditeur le voit et peut "
     "renvoyer le fichier.",
     "Trop de codes erronés : ce lien est bloqué. L'expéditeur le voit et peut renvoyer le "
     "fichier.",
     "Lien inconnu",
     "Ce lien n'existe pas. Vérifiez que vous l'avez copié en entier.",
     "Plus disponible",
     "Ce lien a expiré.",
     "L'expéditeur a retiré ce fichier.",
     "Ce fichier a été téléchargé autant de fois que l'expéditeur l'a permis.",
     "Ce formulaire a été envoyé depuis un autre site et a été refusé.",
     "Le code n'a pas pu être envoyé par SMS. Réessayez dans un instant.",
     "Téléphone",
     "Un code a été envoyé au %s. Il est valable %u minutes ; un nouveau code le remplace.",
     "Ce code a expiré. Demandez-en un nouveau.",
     "Plus aucun code ne peut être envoyé pour ce lien pour le moment.",
     "Les codes par SMS ne peuvent pas être envoyés pour ce lien. Demandez à l'expéditeur un "
     "autre moyen.",
     "Ce lien n'utilise pas de codes par SMS.",
     "Une erreur est survenue",
     "Le fichier ne peut pas être délivré pour le moment. Réessayez plus tard.",
     "octets",
     ','},
    {"de",
     "Eine Datei für Sie",
     "Von",
     "Datei",
     "Größe",
     "Verfügbar bis",
     "Verbleibende Downloads",
     "Sicherheitscode",
     "Herunterladen",
     "Den Sicherheitscode teilt Ihnen der Absender separat mit.",
     "Ein Code wird Ihnen per SMS gesendet.",
     "Code per SMS senden",
     "Bitte geben Sie den Sicherheitscode ein.",
     "Dieser Code ist falsch. Verbleibende Versuche, bevor der Link gesperrt wird: %lld.",
     "Zu viele falsche Codes: Dieser Link ist bis %s gesperrt. Der Absender sieht das und kann "
     "die Datei erneut senden.",
     "Zu viele falsche Codes: Dieser Link ist gesperrt. Der Absender sieht das und kann die "
     "Datei erneut senden.",
     "Unbekannter Link",
     "Diesen Link gibt es nicht. Prüfen Sie, ob Sie ihn vollständig "
     "kopiert haben.",
     "Nicht mehr verfügbar",
     "Dieser Link ist abgelaufen.",
     "Der Absender hat diese Datei zurückgezogen.",
     "Diese Datei wurde so oft heruntergeladen, wie der Absender es erlaubt hat.",
     "Dieses Formular wurde von einer anderen Website gesendet und abgelehnt.",
     "Der Code konnte gerade nicht per SMS gesendet werden. Bitte versuchen Sie es gleich "
     "noch einmal.",
     "Telefon",
     "Ein Code wurde an %s gesendet. Er gilt %u Minuten; ein neuer Code ersetzt ihn.",
     "Dieser Code ist abgelaufen. Bitte fordern Sie einen neuen an.",
     "Für diesen Link können gerade keine Codes mehr gesendet werden.",
     "Für diesen Link können keine Codes per SMS gesendet werden. Bitten Sie den Absender um "
     "einen anderen Weg.",
     "Dieser Link verwendet keine Codes per SMS.",
     "Etwas ist schiefgegangen",
     "Die Datei kann gerade nicht ausgeliefert werden. Bitte versuchen Sie es später.",
     "Bytes",
     ','},
};

int page_style_init(struct sendlink *sl)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_hash_sha256(h, (const unsigned char *)page_css, sizeof(page_css) - 1);
    sodium_bin2base64(b64, sizeof(b64), h, sizeof(h), sodium_base64_VARIANT_ORIGINAL);
    sl->style_hash = xasprintf("sha256-%s", b64);
    return 0;
}

/* The best of en/fr/de by the q values of Accept-Language (RFC 9110 12.5.4). */
static const struct page_text *text_for(struct MHD_Connection *c)
{
    const char *al = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Language");
    const struct page_text *best = &texts[0];
    double best_q = 0.0;
    if (al == NULL || strlen(al) > ACCEPT_LANGUAGE_MAX)
        return best;
    char copy[ACCEPT_LANGUAGE_MAX + 1];
    snprintf(copy, sizeof(copy), "%s", al);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char tag[3] = {0};
        if (!isalpha((unsigned char)item[0]) || !isalpha((unsigned char)item[1]) ||
            (item[2] != '\0' && item[2] != '-' && item[2] != ';' && item[2] != ' '))
            continue;
        tag[0] = (char)tolower((unsigned char)item[0]);
        tag[1] = (char)tolower((unsigned char)item[1]);
        double q = 1.0;
        const char *qp = strstr(item, "q=");
        if (qp)
            q = strtod(qp + 2, NULL);
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
            if (strcmp(texts[i].lang, tag) == 0 && q > best_q) {
                best = &texts[i];
                best_q = q;
            }
    }
    return best;
}

static void size_human(const struct page_text *t, int64_t n, char *out, size_t outsz)
{
    static const char *const units[] = {"KB", "MB", "GB", "TB"};
    if (n < 1000) {
        snprintf(out, outsz, "%lld %s", (long long)n, t->bytes);
        return;
    }
    double v = (double)n;
    size_t u = 0;
    v /= 1000.0;
    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    snprintf(out, outsz, "%.1f %s", v, units[u]);
    char *dot = strchr(out, '.');
    if (dot)
        *dot = t->decimal;
}

static void time_human(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outsz, "%Y-%m-%d %H:%M UTC", &tm);
}

static int page_head(struct buf *b, const struct page_text *t, const char *title)
{
    int r = buf_printf(b,
                       "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                       "<meta name=\"robots\" content=\"noindex, nofollow\"><title>",
                       t->lang);
    r |= buf_put_html(b, title);
    r |= buf_printf(b, "</title><style>%s</style></head><body><main>\n<h1>", page_css);
    r |= buf_put_html(b, title);
    r |= buf_puts(b, "</h1>\n");
    return r;
}

static enum MHD_Result page_send(struct req *r, struct MHD_Connection *c, unsigned status,
                                 struct buf *b)
{
    if (buf_puts(b, "</main></body></html>\n") < 0) {
        buf_free(b);
        return MHD_NO;
    }
    enum MHD_Result res = http_reply(r, c, status, "text/html; charset=utf-8", b->data, b->len);
    buf_free_secret(b);
    return res;
}

/* A page with a title and one message (an error or a notice). */
static enum MHD_Result page_message(struct req *r, struct MHD_Connection *c, unsigned status,
                                    const struct page_text *t, const char *title, const char *msg)
{
    struct buf b = BUF_INIT;
    int e = page_head(&b, t, title);
    e |= buf_printf(&b, "<p class=\"%s\" id=\"message\">", status >= 400 ? "error" : "note");
    e |= buf_put_html(&b, msg);
    e |= buf_puts(&b, "</p>\n");
    if (e) {
        buf_free(&b);
        return MHD_NO;
    }
    return page_send(r, c, status, &b);
}

static enum MHD_Result page_not_found(struct req *r, struct MHD_Connection *c,
                                      const struct page_text *t)
{
    return page_message(r, c, 404, t, t->not_found_title, t->not_found);
}

static enum MHD_Result page_error(struct req *r, struct MHD_Connection *c,
                                  const struct page_text *t)
{
    return page_message(r, c, 500, t, t->error_title, t->error);
}

/* The path part of public_url ("" or "/base"): forms post to PATH/s/TOKEN… */
static void public_path(const struct config *cfg, char *out, size_t outsz)
{
    const char *u = cfg->public_url;
    const char *p = strstr(u, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    snprintf(out, outsz, "%s", p ? p : "");
    size_t n = strlen(out);
    char *frag = strpbrk(out, "?#");
    if (frag)
        *frag = '\0';
    n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

/*
 * The page with the file's details and the form. notice (an error) and
 * info (a note, e.g. "a code was sent") may be NULL.
 */
static enum MHD_Result page_main_ex(struct req *r, struct MHD_Connection *c, unsigned status,
                                    const struct page_text *t, const struct db_send *s,
                                    const struct send_page *p, const char *notice, const char *info)
{
    struct buf b = BUF_INIT;
    char size[64], until[64], base[512];
    size_human(t, p->size, size, sizeof(size));
    time_human(s->expires, until, sizeof(until));
    public_path(r->cfg, base, sizeof(base));
    int mtan = strcmp(s->protect, "mtan") == 0;
    int e = page_head(&b, t, t->title);
    if (notice) {
        e |= buf_puts(&b, "<p class=\"error\" id=\"message\" role=\"alert\">");
        e |= buf_put_html(&b, notice);
        e |= buf_puts(&b, "</p>\n");
    }
    if (info) {
        e |= buf_puts(&b, "<p class=\"note\" id=\"info\" role=\"status\">");
        e |= buf_put_html(&b, info);
        e |= buf_puts(&b, "</p>\n");
    }
    e |= buf_printf(&b, "<p>%s <strong id=\"sender\">", t->from);
    e |= buf_put_html(&b, p->sender_name);
    e |= buf_puts(&b, "</strong>");
    if (p->sender_email[0]) {
        e |= buf_puts(&b, " &lt;");
        e |= buf_put_html(&b, p->sender_email);
        e |= buf_puts(&b, "&gt;");
    }
    e |= buf_puts(&b, "</p>\n");
    if (p->message[0]) {
        e |= buf_puts(&b, "<blockquote id=\"sender-message\">");
        e |= buf_put_html(&b, p->message);
        e |= buf_puts(&b, "</blockquote>\n");
    }
    e |= buf_printf(&b, "<dl><dt>%s</dt><dd id=\"file-name\">", t->file);
    e |= buf_put_html(&b, p->name);
    e |= buf_printf(&b, "</dd><dt>%s</dt><dd id=\"file-size\">", t->size);
    e |= buf_put_html(&b, size);
    e |= buf_printf(&b, "</dd><dt>%s</dt><dd id=\"expires\">", t->until);
    e |= buf_put_html(&b, until);
    e |= buf_printf(&b, "</dd><dt>%s</dt><dd id=\"downloads-left\">%lld", t->left,
                    (long long)(s->max_downloads - s->downloads));
    if (mtan) {
        /* Only the mask: the page is no place for the number (RULES.md 11). */
        char masked[32] = "+…";
        char *phone = send_secret_open(r->sl->master, s->id, "phone", s->phone, s->phone_len);
        if (phone) {
            sms_phone_mask(phone, masked, sizeof(masked));
            sodium_memzero(phone, strlen(phone));
            free(phone);
        }
        e |= buf_printf(&b, "</dd><dt>%s</dt><dd id=\"phone\">", t->phone);
        e |= buf_put_html(&b, masked);
    }
    e |= buf_puts(&b, "</dd></dl>\n");
    /* The form posts to the page's URL, also when shown after POST …/mtan. */
    e |= buf_puts(&b, "<form method=\"post\" action=\"");
    e |= buf_put_html(&b, base);
    e |= buf_printf(&b, "/s/%s\">\n", r->arg);
    if (strcmp(s->protect, "code") == 0 || strcmp(s->protect, "mtan") == 0) {
        e |= buf_printf(&b, "<p class=\"note\">%s</p>\n",
                        strcmp(s->protect, "code") == 0 ? t->code_note : t->mtan_note);
        e |= buf_printf(&b,
                        "<label for=\"code\">%s</label>"
                        "<input id=\"code\" name=\"code\" type=\"text\" required "
                        "autocomplete=\"one-time-code\" autocapitalize=\"characters\" "
                        "spellcheck=\"false\" maxlength=\"%d\">\n",
                        t->code_label, SEND_CODE_MAX * 2);
    }
    e |= buf_printf(&b, "<button type=\"submit\" id=\"download\">%s</button>\n</form>\n",
                    t->download);
    if (mtan) {
        /* A POST form: opening the page (GET) never sends an SMS (RULES.md 8). */
        e |= buf_puts(&b, "<form method=\"post\" action=\"");
        e |= buf_put_html(&b, base);
        e |= buf_printf(&b,
                        "/s/%s/mtan\"><button type=\"submit\" id=\"mtan\">%s</button>"
                        "</form>\n",
                        r->arg, t->mtan_button);
    }
    if (e) {
        buf_free(&b);
        return MHD_NO;
    }
    return page_send(r, c, status, &b);
}

static enum MHD_Result page_main(struct req *r, struct MHD_Connection *c, unsigned status,
                                 const struct page_text *t, const struct db_send *s,
                                 const struct send_page *p, const char *notice)
{
    return page_main_ex(r, c, status, t, s, p, notice, NULL);
}

/*
 * Finds the send of r->arg: 0 with s (and raw, the token) when it may be
 * used now, or -1 after queueing the page that says why not (404, 410, 423).
 */
static int page_lookup(struct req *r, struct MHD_Connection *c, const struct page_text *t,
                       struct db_send *s, unsigned char raw[SEND_TOKEN_BYTES], enum MHD_Result *res)
{
    unsigned char h[DB_HASH_BYTES];
    if (r->arg[0] == '\0' || send_token_parse(r->arg, raw) < 0) {
        *res = page_not_found(r, c, t);
        return -1;
    }
    send_token_hash(r->sl->master, raw, h);
    enum db_rc dr = db_send_get_by_token(r->env.db, h, s);
    if (dr == DB_NOTFOUND) {
        *res = page_not_found(r, c, t);
        return -1;
    }
    if (dr != DB_OK) {
        *res = page_error(r, c, t);
        return -1;
    }
    int64_t now = (int64_t)time(NULL);
    const char *state = send_state_name(s, now);
    const char *why = NULL;
    if (strcmp(state, DB_SEND_EXPIRED) == 0)
        why = t->expired;
    else if (strcmp(state, DB_SEND_REVOKED) == 0)
        why = t->revoked;
    else if (strcmp(state, DB_SEND_USED_UP) == 0)
        why = t->used_up;
    else if (s->destroyed || s->page == NULL)
        why = t->expired;
    if (why) {
        db_send_clear(s);
        *res = page_message(r, c, 410, t, t->gone_title, why);
        return -1;
    }
    if (s->locked_until > now) {
        char msg[512], until[64];
        if (s->locked_until == INT64_MAX) {
            snprintf(msg, sizeof(msg), "%s", t->locked_forever);
        } else {
            time_human(s->locked_until, until, sizeof(until));
            snprintf(msg, sizeof(msg), t->locked, until);
        }
        db_send_clear(s);
        *res = page_message(r, c, 423, t, t->gone_title, msg);
        return -1;
    }
    return 0;
}

static int event_add(struct req *r, const char *id, const char *kind, const char *detail)
{
    struct db_event e = {.subject = id, .kind = kind, .client = r->client, .detail = detail};
    return db_event_add(r->env.db, &e) == DB_OK ? 0 : -1;
}

enum MHD_Result page_get(struct req *r, struct MHD_Connection *c)
{
    const struct page_text *t = text_for(c);
    struct db_send s;
    unsigned char raw[SEND_TOKEN_BYTES];
    enum MHD_Result res;
    if (page_lookup(r, c, t, &s, raw, &res) < 0)
        return res;
    struct send_page p;
    int ok = send_page_open(&s, raw, &p);
    sodium_memzero(raw, sizeof(raw));
    if (ok < 0) {
        db_send_clear(&s);
        return page_error(r, c, t);
    }
    if (strcmp(r->method, "GET") == 0) {
        int64_t views = 0;
        if (db_send_page_viewed(r->env.db, s.id, &views) == DB_OK && views <= SEND_PAGE_EVENTS_MAX)
            (void)event_add(r, s.id, "page_opened", NULL);
    }
    res = page_main(r, c, 200, t, &s, &p, NULL);
    send_page_clear(&p);
    db_send_clear(&s);
    return res;
}

/* ---- POST: cross-site check, the code form ---- */

/* scheme://host[:port] of url into out. */
static void origin_of(const char *url, char *out, size_t outsz)
{
    const char *p = strstr(url, "://");
    size_t n = strlen(url);
    if (p) {
        const char *slash = strchr(p + 3, '/');
        if (slash)
            n = (size_t)(slash - url);
    }
    snprintf(out, outsz, "%.*s", (int)n, url);
}

/*
 * Browsers say where a form post comes from in Sec-Fetch-Site (all current
 * ones) and Origin. Our pages send Referrer-Policy: no-referrer, under
 * which a browser's own same-origin post carries "Origin: null", so Origin
 * decides only when Sec-Fetch-Site is absent and it names a real origin.
 */
static int cross_site(struct req *r, struct MHD_Connection *c)
{
    const char *sfs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (sfs)
        return strcmp(sfs, "same-origin") != 0 && strcmp(sfs, "none") != 0;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin == NULL || strcmp(origin, "null") == 0)
        return 0;
    char ours[512];
    origin_of(r->cfg->public_url, ours, sizeof(ours));
    if (strcasecmp(origin, ours) == 0)
        return 0;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (host) {
        char a[512];
        snprintf(a, sizeof(a), "http://%s", host);
        if (strcasecmp(origin, a) == 0)
            return 0;
        snprintf(a, sizeof(a), "https://%s", host);
        if (strcasecmp(origin, a) == 0)
            return 0;
    }
    return 1;
}

static enum MHD_Result code_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    (void)off;
    struct req *r = cls;
    /* A multipart part without a usable name arrives with key == NULL. */
    if (key == NULL || strcmp(key, "code") != 0)
        return MHD_YES; /* other fields (a button's name) are ignored */
    r->code_seen = 1;
    if (buf_append(&r->code, data, size) < 0) {
        r->body_bad = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

enum MHD_Result page_post_begin(struct req *r, struct MHD_Connection *c)
{
    const struct page_text *t = text_for(c);
    if (cross_site(r, c)) {
        msg_info("-: page: cross-site post refused, client=%s", r->client);
        return page_message(r, c, 403, t, t->error_title, t->cross_site);
    }
    buf_init(&r->code, SEND_CODE_MAX * 4);
    r->pp = MHD_create_post_processor(c, HTTP_FORM_MAX, code_iter, r);
    /* No form body at all (a plain POST) is fine for protect=none. */
    return MHD_YES;
}

enum MHD_Result page_post_data(struct req *r, struct MHD_Connection *c, const char *data,
                               size_t size)
{
    (void)c;
    if (r->body_bytes > HTTP_FORM_MAX) {
        r->body_bad = 1;
        return MHD_YES;
    }
    if (r->pp && !r->body_bad && MHD_post_process(r->pp, data, size) != MHD_YES)
        r->body_bad = 1;
    return MHD_YES;
}

struct download {
    FILE *f;
    struct vault_reader *vr;
    uint64_t size;
    uint64_t sent;
    struct req *r;
    char id[DB_ID_MAX + 1];
};

static ssize_t download_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct download *d = cls;
    long n = vault_reader_read(d->vr, buf, max);
    if (n < 0) {
        msg_error("%s: download: %s", d->id, vault_rc_str((enum vault_rc)n));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (n == 0)
        return d->sent == d->size ? MHD_CONTENT_READER_END_OF_STREAM
                                  : MHD_CONTENT_READER_END_WITH_ERROR;
    d->sent += (uint64_t)n;
    if (d->sent > d->size) {
        msg_error("%s: download: file longer than recorded", d->id);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (d->sent == d->size)
        d->r->dl_complete = 1;
    return (ssize_t)n;
}

static void download_free(void *cls)
{
    struct download *d = cls;
    vault_reader_close(d->vr);
    if (d->f)
        fclose(d->f);
    free(d);
}

/* RFC 6266 / RFC 8187: filename="ascii fallback"; filename*=UTF-8''percent-encoded. */
static char *content_disposition(const char *name)
{
    struct buf b = BUF_INIT;
    int e = buf_puts(&b, "attachment; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        e |= buf_putc(&b, (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') ? '_' : (char)*p);
    e |= buf_puts(&b, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (isalnum(*p) || strchr("!#$&+-.^_`|~", *p))
            e |= buf_putc(&b, (char)*p);
        else
            e |= buf_printf(&b, "%%%02X", *p);
    }
    if (e) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

/* Answers a wrong code: counts it, locks the link when the limit is reached. */
static enum MHD_Result code_wrong(struct req *r, struct MHD_Connection *c,
                                  const struct page_text *t, struct db_send *s,
                                  const struct send_page *p)
{
    int64_t now = (int64_t)time(NULL), attempts = 0, locked_until = 0;
    const struct config *cfg = r->cfg;
    enum db_rc dr = db_send_code_failed(
        r->env.db, s->id, cfg->code_max_attempts, now + (int64_t)cfg->lockout,
        (int64_t)cfg->code_max_attempts * SEND_LOCK_ROUNDS, &attempts, &locked_until);
    if (dr != DB_OK)
        return page_error(r, c, t);
    char detail[32];
    snprintf(detail, sizeof(detail), "attempt=%lld", (long long)attempts);
    (void)event_add(r, s->id, "code_failed", detail);
    metrics_inc("sends_code_failed_total", NULL);
    msg_info("%s: page: wrong code, attempts=%lld, client=%s", s->id, (long long)attempts,
             r->client);
    if (locked_until > now) {
        (void)event_add(r, s->id, "locked", locked_until == INT64_MAX ? "forever" : NULL);
        metrics_inc("sends_locked_total", NULL);
        msg_info("%s: page: link locked, client=%s", s->id, r->client);
        char msg[512], until[64];
        if (locked_until == INT64_MAX) {
            snprintf(msg, sizeof(msg), "%s", t->locked_forever);
        } else {
            time_human(locked_until, until, sizeof(until));
            snprintf(msg, sizeof(msg), t->locked, until);
        }
        return page_message(r, c, 423, t, t->gone_title, msg);
    }
    char msg[512];
    snprintf(msg, sizeof(msg), t->wrong_code, (long long)(cfg->code_max_attempts - attempts));
    return page_main(r, c, 403, t, s, p, msg);
}

enum MHD_Result page_post_end(struct req *r, struct MHD_Connection *c)
{
    const struct page_text *t = text_for(c);
    if (r->body_bad)
        return page_message(r, c, 413, t, t->error_title, t->enter_code);
    struct db_send s;
    unsigned char raw[SEND_TOKEN_BYTES];
    enum MHD_Result res;
    if (page_lookup(r, c, t, &s, raw, &res) < 0)
        return res;
    struct send_page p;
    if (send_page_open(&s, raw, &p) < 0) {
        sodium_memzero(raw, sizeof(raw));
        db_send_clear(&s);
        return page_error(r, c, t);
    }
    int64_t now = (int64_t)time(NULL);
    if (s.locked_until != 0 && s.locked_until <= now)
        if (db_send_attempts_reset(r->env.db, s.id) != DB_OK) /* the lockout is over */
            msg_warn("%s: page: lock not reset", s.id);

    char code[SEND_CODE_MAX + 1] = "";
    res = MHD_NO;
    if (strcmp(s.protect, "mtan") == 0) {
        /* The mTAN opens nothing by itself: the file key is wrapped by the
         * token alone, the code only gates it (counted like any code). */
        char given_code[SEND_CODE_MAX + 1];
        const char *given = buf_cstr(&r->code);
        if (send_code_normalise(given, given_code, sizeof(given_code)) < 0) {
            res = code_wrong(r, c, t, &s, &p);
            goto out;
        }
        if (given_code[0] == '\0') {
            res = page_main(r, c, 403, t, &s, &p, t->enter_code);
            goto out;
        }
        enum sms_mtan_check mc = sms_mtan_check(&r->env, &s, given_code, now);
        sodium_memzero(given_code, sizeof(given_code));
        if (mc == SMS_MTAN_EXPIRED) {
            (void)event_add(r, s.id, "mtan_expired", NULL);
            res = page_main(r, c, 403, t, &s, &p, t->mtan_expired);
            goto out;
        }
        if (mc == SMS_MTAN_WRONG) {
            res = code_wrong(r, c, t, &s, &p);
            goto out;
        }
        if (s.attempts > 0)
            if (db_send_attempts_reset(r->env.db, s.id) != DB_OK)
                msg_warn("%s: page: attempts not reset", s.id);
    }
    if (strcmp(s.protect, "code") == 0) {
        const char *given = buf_cstr(&r->code);
        int blank = 1;
        for (const char *q = given; *q; q++)
            if (*q != ' ' && *q != '-' && *q != '\t')
                blank = 0;
        if (blank) {
            res = page_main(r, c, 403, t, &s, &p, t->enter_code);
            goto out;
        }
        unsigned char mac[DB_HASH_BYTES];
        int bad = send_code_normalise(given, code, sizeof(code)) < 0;
        if (!bad)
            send_code_mac(r->sl->master, s.id, code, mac);
        if (bad || s.code_mac == NULL || s.code_mac_len != DB_HASH_BYTES ||
            sodium_memcmp(mac, s.code_mac, DB_HASH_BYTES) != 0) {
            res = code_wrong(r, c, t, &s, &p);
            goto out;
        }
        if (s.attempts > 0)
            if (db_send_attempts_reset(r->env.db, s.id) != DB_OK)
                msg_warn("%s: page: attempts not reset", s.id);
    }

    unsigned char wk[SEND_KEY_BYTES];
    unsigned char *file_key = sodium_malloc(VAULT_KEY_BYTES);
    send_wrap_key(raw, code[0] ? code : NULL, wk);
    int ok = file_key && send_key_unwrap(wk, s.id, s.wrapped_key, s.wrapped_key_len, file_key) == 0;
    sodium_memzero(wk, sizeof(wk));
    struct download *d = NULL;
    if (ok) {
        d = xcalloc(1, sizeof(*d));
        char *path = send_blob_path(r->cfg, s.id);
        d->f = fopen(path, "re");
        free(path);
        enum vault_rc vrc = VAULT_IO;
        if (d->f)
            d->vr = vault_reader_open(d->f, s.id, file_key, PAGE_PART_FILE, &vrc);
        if (d->vr == NULL) {
            msg_error("%s: download: cannot open the file: %s", s.id, vault_rc_str(vrc));
            download_free(d);
            d = NULL;
        }
    } else {
        msg_error("%s: download: the file key does not unwrap", s.id);
    }
    if (file_key)
        sodium_free(file_key);
    if (d == NULL) {
        res = page_error(r, c, t);
        goto out;
    }
    d->size = (uint64_t)s.size;
    d->r = r;
    snprintf(d->id, sizeof(d->id), "%s", s.id);
    struct MHD_Response *resp = MHD_create_response_from_callback(
        (uint64_t)s.size, HTTP_DOWNLOAD_BLOCK, download_read, d, download_free);
    if (resp == NULL) {
        download_free(d);
        res = page_error(r, c, t);
        goto out;
    }
    char *cd = content_disposition(p.name);
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    if (cd)
        MHD_add_response_header(resp, "Content-Disposition", cd);
    free(cd);
    if (s.size == 0)
        r->dl_complete = 1;
    r->dl_started = 1;
    r->dl_send = xmemdup(&s, sizeof(s));
    memset(&s, 0, sizeof(s)); /* the copy owns the blobs now */
    msg_info("%s: download: started, size=%lld, client=%s", r->dl_send->id,
             (long long)r->dl_send->size, r->client);
    res = http_queue(r, c, 200, resp);
out:
    sodium_memzero(code, sizeof(code));
    sodium_memzero(raw, sizeof(raw));
    send_page_clear(&p);
    db_send_clear(&s);
    return res;
}

void page_download_done(struct req *r, int completed)
{
    struct db_send *s = r->dl_send;
    if (r->env.db == NULL || s == NULL)
        return;
    if (!completed) {
        (void)event_add(r, s->id, "download_incomplete", NULL);
        msg_info("%s: download: not completed, client=%s", s->id, r->client);
        return;
    }
    int64_t n = 0;
    enum db_rc dr = db_send_download_count(r->env.db, s->id, &n);
    if (dr != DB_OK) {
        msg_warn("%s: download: completed but not counted (send no longer active)", s->id);
        return;
    }
    char detail[48];
    snprintf(detail, sizeof(detail), "%lld/%lld", (long long)n, (long long)s->max_downloads);
    (void)event_add(r, s->id, "downloaded", detail);
    metrics_inc("sends_downloaded_total", NULL);
    msg_info("%s: download: completed, downloads=%s, client=%s", s->id, detail, r->client);
    if (n >= s->max_downloads) {
        (void)event_add(r, s->id, "used_up", NULL);
        metrics_inc("sends_used_up_total", NULL);
    }
    send_notify_sender(&r->env, s);
}

enum MHD_Result page_mtan(struct req *r, struct MHD_Connection *c)
{
    const struct page_text *t = text_for(c);
    if (cross_site(r, c))
        return page_message(r, c, 403, t, t->error_title, t->cross_site);
    struct db_send s;
    unsigned char raw[SEND_TOKEN_BYTES];
    enum MHD_Result res;
    if (page_lookup(r, c, t, &s, raw, &res) < 0)
        return res;
    struct send_page p;
    int ok = send_page_open(&s, raw, &p);
    sodium_memzero(raw, sizeof(raw));
    if (ok < 0) {
        db_send_clear(&s);
        return page_error(r, c, t);
    }
    if (strcmp(s.protect, "mtan") != 0) {
        res = page_main(r, c, 403, t, &s, &p, t->mtan_not_used);
        goto out;
    }
    struct sms_ref *ref = sendlink_sms(r->sl);
    struct sms_mtan_result mr;
    sms_mtan_send(&r->env, ref ? ref->router : NULL, &s, r->client, &mr);
    sendlink_sms_release(ref);
    char msg[512];
    switch (mr.status) {
    case 200:
        snprintf(msg, sizeof(msg), t->mtan_sent, mr.masked,
                 (unsigned)((r->cfg->mtan_ttl + 59) / 60));
        res = page_main_ex(r, c, 200, t, &s, &p, NULL, msg);
        break;
    case 403:
        res = page_main(r, c, 403, t, &s, &p, t->mtan_refused);
        break;
    case 429:
    case 503:
        r->retry_after = mr.retry;
        res = page_main(r, c, (unsigned)mr.status, t, &s, &p,
                        mr.status == 429 ? t->mtan_capped : t->mtan_unavailable);
        break;
    default:
        res = page_error(r, c, t);
    }
out:
    send_page_clear(&p);
    db_send_clear(&s);
    return res;
}
