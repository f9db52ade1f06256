/*
 * relay_smtp — the `smtp` SMS relay: e-mail-to-SMS through the outbound
 * queue (deliver/outbound.h), for providers that turn a mail to
 * NUMBER@gateway into an SMS.
 *
 * Keys: address (a template with {to} or {to_digits}, e.g.
 * "{to_digits}@sms.example.net"), subject (default "SMS"). The text is the
 * mail's body. The mail is DKIM-signed, queued encrypted (it holds the
 * code) and sent by the outbound runner with its retries; SENT means
 * queued, and the queue id is the reference (`queue list` shows the rest).
 * A mail that cannot be queued is TEMPFAIL: the next route is tried.
 */
#include "deliver/outbound.h"
#include "lib/xalloc.h"
#include "sendlink/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_RELAY_ADDRESS_MAX 254
#define SMTP_RELAY_SUBJECT "SMS"

struct smtp_relay {
    char *address;
    char *subject;
};

static void smtp_close(void *ctx)
{
    struct smtp_relay *s = ctx;
    if (s == NULL)
        return;
    free(s->address);
    free(s->subject);
    free(s);
}

static int smtp_open(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                     size_t errsz)
{
    (void)cfg;
    (void)err;
    (void)errsz;
    struct smtp_relay *s = xcalloc(1, sizeof(*s));
    const char *v = config_relay_param(rc, "subject");
    s->address = xstrdup(config_relay_param(rc, "address"));
    s->subject = xstrdup(v ? v : SMTP_RELAY_SUBJECT);
    *ctx = s;
    return 0;
}

static enum relay_status smtp_send(void *ctx, const struct relay_env *env,
                                   const struct relay_msg *m, unsigned timeout_ms,
                                   struct relay_result *res)
{
    (void)timeout_ms;
    struct smtp_relay *s = ctx;
    if (env == NULL || env->db == NULL || env->master == NULL) {
        relay_error(res, "no store to queue the mail in");
        return RELAY_TEMPFAIL;
    }
    struct buf to;
    buf_init(&to, SMTP_RELAY_ADDRESS_MAX);
    if (relay_expand(&to, s->address, m, RELAY_ENC_NONE) < 0) {
        buf_free(&to);
        relay_error(res, "address longer than %d", SMTP_RELAY_ADDRESS_MAX);
        return RELAY_TEMPFAIL;
    }
    struct outbound_mail mail = {.to = buf_cstr(&to),
                                 .subject = s->subject,
                                 .text = m->text,
                                 .send_id = m->send_id,
                                 .kind = "sms"};
    char qid[RAND_ID_LEN + 1];
    int r = outbound_enqueue(env->db, env->cfg, env->master, &mail, qid);
    buf_free(&to);
    if (r < 0) {
        relay_error(res, "the mail could not be queued");
        return RELAY_TEMPFAIL;
    }
    snprintf(res->ref, sizeof(res->ref), "queue:%s", qid);
    return RELAY_SENT;
}

const struct relay_ops relay_smtp_ops = {"smtp", smtp_open, smtp_send, smtp_close};
