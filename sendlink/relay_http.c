/*
 * relay_http — the `http` SMS relay: any HTTP SMS gateway by configuration
 * (libcurl; curl is used only in sendlink/).
 *
 * Keys ([relay NAME], checked by policy/config.c): url, method (POST,
 * GET, PUT), content_type, body, header.NAME (one per header name),
 * success_match (POSIX ERE the response body must match), basic_auth
 * (user:password), tls_verify, timeout. Templates take {to} {to_digits}
 * {text} {id}, encoded for where they go: percent-encoding in the URL and
 * in form bodies, JSON string escaping in JSON bodies, as they are in any
 * other body type. The default body is "to={to}&text={text}" (form) or
 * {"to": "{to}", "text": "{text}"} (JSON).
 *
 * Result: a 2xx answer (that matches success_match when set) is SENT, with
 * the provider's message id when the answer is JSON carrying one; anything
 * else — other statuses, a timeout, a refused connection — is TEMPFAIL, so
 * the next route gets the SMS. Redirects are not followed; only http and
 * https are spoken; certificates are verified unless tls_verify = no.
 * RFCs: 9110 (HTTP), 3986 (percent-encoding), 8259 (JSON), 7617 (Basic).
 */
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/xalloc.h"
#include "sendlink/relay.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest expanded URL, body or header. */
#define HTTP_RELAY_FIELD_MAX (16 * 1024)
#define HTTP_RELAY_HEADERS_MAX 32
#define HTTP_RELAY_UA "sealpost-sms/1"

struct http_header {
    char *name;
    char *value; /* template */
};

struct http_relay {
    char *url;
    char *method;
    char *content_type;
    char *body;
    enum relay_enc body_enc;
    struct http_header headers[HTTP_RELAY_HEADERS_MAX];
    size_t nheaders;
    bool has_match;
    regex_t match;
    char *basic_auth;
    bool tls_verify;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void http_close(void *ctx)
{
    struct http_relay *h = ctx;
    if (h == NULL)
        return;
    free(h->url);
    free(h->method);
    free(h->content_type);
    free(h->body);
    for (size_t i = 0; i < h->nheaders; i++) {
        free(h->headers[i].name);
        free(h->headers[i].value);
    }
    if (h->has_match)
        regfree(&h->match);
    free(h->basic_auth);
    free(h);
}

static int http_open(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                     size_t errsz)
{
    (void)cfg;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errsz, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return -1;
    }
    struct http_relay *h = xcalloc(1, sizeof(*h));
    const char *v;
    h->url = xstrdup(config_relay_param(rc, "url"));
    h->method = xstrdup((v = config_relay_param(rc, "method")) ? v : "POST");
    h->content_type = xstrdup(
        (v = config_relay_param(rc, "content_type")) ? v : "application/x-www-form-urlencoded");
    if (strstr(h->content_type, "json"))
        h->body_enc = RELAY_ENC_JSON;
    else if (strstr(h->content_type, "x-www-form-urlencoded"))
        h->body_enc = RELAY_ENC_FORM;
    else
        h->body_enc = RELAY_ENC_NONE;
    if ((v = config_relay_param(rc, "body")) != NULL)
        h->body = xstrdup(v);
    else if (h->body_enc == RELAY_ENC_JSON)
        h->body = xstrdup("{\"to\": \"{to}\", \"text\": \"{text}\"}");
    else
        h->body = xstrdup("to={to}&text={text}");
    for (size_t i = 0; i < rc->nparams; i++) {
        const struct kv *p = &rc->params[i];
        if (strncmp(p->key, "header.", 7) != 0)
            continue;
        if (h->nheaders == HTTP_RELAY_HEADERS_MAX) {
            snprintf(err, errsz, "more than %d headers", HTTP_RELAY_HEADERS_MAX);
            http_close(h);
            return -1;
        }
        h->headers[h->nheaders].name = xstrdup(p->key + 7);
        h->headers[h->nheaders].value = xstrdup(p->value);
        h->nheaders++;
    }
    if ((v = config_relay_param(rc, "success_match")) != NULL) {
        if (regcomp(&h->match, v, REG_EXTENDED | REG_NOSUB) != 0) {
            snprintf(err, errsz, "success_match does not compile");
            http_close(h);
            return -1;
        }
        h->has_match = true;
    }
    if ((v = config_relay_param(rc, "basic_auth")) != NULL)
        h->basic_auth = xstrdup(v);
    h->tls_verify = true;
    if ((v = config_relay_param(rc, "tls_verify")) != NULL && parse_bool(v, &h->tls_verify) < 0)
        h->tls_verify = true; /* checked by the config loader */
    *ctx = h;
    return 0;
}

static size_t body_write(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = size * n;
    /* Past the cap the rest is dropped: success_match sees the first part. */
    size_t room = b->len < RELAY_RESPONSE_MAX ? RELAY_RESPONSE_MAX - b->len : 0;
    if (room > 0 && buf_append(b, p, len < room ? len : room) < 0)
        return 0;
    return len;
}

/* The provider's message id in a JSON answer: Twilio "sid", Vonage
 * messages[0]["message-id"], common "id" / "message_id" / "MessageId". */
static void ref_from_json(const char *body, size_t len, char *ref, size_t refsz)
{
    static const char *const keys[] = {"sid",       "message_id", "message-id", "messageId",
                                       "MessageId", "id",         NULL};
    json_t *o = json_loadb(body, len, 0, NULL);
    if (o == NULL)
        return;
    json_t *msgs = json_object_get(o, "messages");
    json_t *places[] = {o, json_is_array(msgs) ? json_array_get(msgs, 0) : NULL};
    for (size_t p = 0; p < 2 && ref[0] == '\0'; p++) {
        for (size_t i = 0; places[p] && keys[i] && ref[0] == '\0'; i++) {
            json_t *v = json_object_get(places[p], keys[i]);
            if (json_is_string(v))
                log_scrub(ref, refsz, json_string_value(v), (size_t)-1);
            else if (json_is_integer(v))
                snprintf(ref, refsz, "%lld", (long long)json_integer_value(v));
        }
    }
    json_decref(o);
}

static enum relay_status http_send(void *ctx, const struct relay_env *env,
                                   const struct relay_msg *m, unsigned timeout_ms,
                                   struct relay_result *res)
{
    (void)env;
    struct http_relay *h = ctx;
    struct buf url, body, resp;
    buf_init(&url, HTTP_RELAY_FIELD_MAX);
    buf_init(&body, HTTP_RELAY_FIELD_MAX);
    buf_init(&resp, RELAY_RESPONSE_MAX + 1);
    struct curl_slist *hdrs = NULL;
    enum relay_status st = RELAY_TEMPFAIL;
    bool has_body = strcmp(h->method, "GET") != 0;
    CURL *c = NULL;

    if (relay_expand(&url, h->url, m, RELAY_ENC_FORM) < 0 ||
        (has_body && relay_expand(&body, h->body, m, h->body_enc) < 0)) {
        relay_error(res, "request larger than %d bytes", HTTP_RELAY_FIELD_MAX);
        goto out;
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        struct buf line;
        buf_init(&line, HTTP_RELAY_FIELD_MAX);
        int e = buf_printf(&line, "%s: ", h->headers[i].name);
        e |= relay_expand(&line, h->headers[i].value, m, RELAY_ENC_NONE);
        if (e == 0)
            hdrs = curl_slist_append(hdrs, buf_cstr(&line));
        buf_free(&line);
    }
    if (has_body) {
        char ct[512];
        snprintf(ct, sizeof(ct), "Content-Type: %s", h->content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */

    c = curl_easy_init();
    if (c == NULL) {
        relay_error(res, "libcurl: cannot make a handle");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, HTTP_RELAY_UA);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->tls_verify ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->tls_verify ? 2L : 0L);
    if (h->basic_auth) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, h->basic_auth);
    }
    if (strcmp(h->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body.len ? body.data : "");
        if (strcmp(h->method, "PUT") == 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            relay_error(res, "timeout after %u ms", timeout_ms);
        else
            relay_error(res, "%s", curl_easy_strerror(rc));
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
        relay_error(res, "HTTP %ld", code);
        goto out;
    }
    if (h->has_match && regexec(&h->match, buf_cstr(&resp), 0, NULL, 0) != 0) {
        relay_error(res, "HTTP %ld but the answer does not match success_match", code);
        goto out;
    }
    ref_from_json(resp.data ? resp.data : "", resp.len, res->ref, sizeof(res->ref));
    if (res->ref[0] == '\0')
        snprintf(res->ref, sizeof(res->ref), "HTTP %ld", code);
    st = RELAY_SENT;
out:
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    buf_free_secret(&url); /* a GET gateway has the code in the URL */
    buf_free_secret(&body);
    buf_free(&resp);
    return st;
}

const struct relay_ops relay_http_ops = {"http", http_open, http_send, http_close};
