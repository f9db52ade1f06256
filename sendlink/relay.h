/*
 * relay — the SMS relay drivers behind one struct of function pointers
 * (STYLE.md 3, like OpenSMTPD's queue_backend): http (libcurl), exec (a
 * command, sysexits), smtp (e-mail-to-SMS through the outbound queue),
 * file (JSON lines, for development) and plugin (a shared object with the
 * ABI of sendlink/relay_abi.h).
 *
 * Where it sits: sendlink/sms.c opens one relay per [relay NAME] that
 * [sms] routes names and calls send per SMS, route after route. The keys of
 * each driver were checked by policy/config.c (file:line errors at
 * check-config), so open only turns them into its context.
 *
 * Results: SENT (the provider took it; ref is its message id), TEMPFAIL
 * (this route failed now: the next route is tried and the failure counts
 * against the route's health) or PERMFAIL (the SMS itself was refused, as
 * exec's non-75 exit codes say: no other route is tried).
 */
#ifndef SEALPOST_RELAY_H
#define SEALPOST_RELAY_H

#include "lib/buf.h"
#include "lib/db.h"
#include "policy/config.h"

#include <stddef.h>

enum relay_status {
    RELAY_SENT = 0,
    RELAY_TEMPFAIL,
    RELAY_PERMFAIL,
};

#define RELAY_REF_MAX 128
#define RELAY_ERROR_MAX 256
/* Bytes of a provider's answer (HTTP body, exec output) looked at. */
#define RELAY_RESPONSE_MAX (64 * 1024)

/* One SMS. The text holds a security code: never logged, never stored. */
struct relay_msg {
    const char *to;      /* E.164 */
    const char *text;    /* printable ASCII */
    const char *id;      /* idempotency key (the outbox id) */
    const char *send_id; /* may be NULL */
};

struct relay_result {
    char ref[RELAY_REF_MAX];     /* provider's message id, or "" */
    char error[RELAY_ERROR_MAX]; /* scrubbed reason, or "" */
};

/* What a driver may use while sending (the smtp driver queues a mail). */
struct relay_env {
    const struct config *cfg;
    struct db *db;
    const unsigned char *master;
};

struct relay_ops {
    const char *driver;
    /* A relay from its checked section: 0 with *ctx, or -1 with err filled. */
    int (*open)(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                size_t errsz);
    enum relay_status (*send)(void *ctx, const struct relay_env *env, const struct relay_msg *m,
                              unsigned timeout_ms, struct relay_result *res);
    void (*close)(void *ctx);
};

extern const struct relay_ops relay_http_ops;
extern const struct relay_ops relay_exec_ops;
extern const struct relay_ops relay_smtp_ops;
extern const struct relay_ops relay_file_ops;
extern const struct relay_ops relay_plugin_ops;

/* The driver by its name in [relay NAME] driver, or NULL. */
const struct relay_ops *relay_ops_find(const char *driver);
const char *relay_status_name(enum relay_status s);

/* How placeholders are encoded when a template is expanded. */
enum relay_enc {
    RELAY_ENC_NONE, /* as they are */
    RELAY_ENC_FORM, /* percent-encoded (application/x-www-form-urlencoded, URLs) */
    RELAY_ENC_JSON, /* JSON string escaping (inside "…" of the template) */
};

/* Expands {to} {to_digits} {text} {id} of tmpl into out; -1 if out's cap is passed. */
int relay_expand(struct buf *out, const char *tmpl, const struct relay_msg *m, enum relay_enc enc)
    __attribute__((warn_unused_result));

/* printf into a result's error field, scrubbed. */
void relay_error(struct relay_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
