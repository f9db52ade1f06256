/*
 * smtpd_session — one SMTP session: the state machine, the command table
 * and what each command does (RFC 5321; ESMTP extensions SIZE RFC 1870,
 * 8BITMIME RFC 1652, ENHANCEDSTATUSCODES RFC 2034, PIPELINING RFC 2920,
 * STARTTLS RFC 3207, SMTPUTF8 RFC 6531).
 *
 * Data flow: bytes from smtpd_server (already off the socket, through TLS
 * when on) → command lines or the DATA reader → jobs for the worker pool
 * (recipient checks, delivery) → replies in the output buffer.
 *
 * Trust: none in the client. Every line is bounded before it is parsed
 * ([mailin] line_length_limit; 500 5.5.2 after reading to its end). Only
 * <CRLF> ends a command line: a bare CR or LF in one is a protocol error
 * (554 5.5.0, session closed; RULES.md 2). Commands that must end a
 * pipelined group (RFC 2920 sync points: EHLO, HELO, DATA, NOOP, VRFY, EXPN,
 * QUIT) followed by more input already received mean the client did not wait
 * for our reply: 554 5.5.0 and the session is closed (RULES.md 4); input
 * behind STARTTLS is discarded instead (RULES.md 3). Talking before the
 * greeting (greet_pause) is refused. Errors are counted (max_errors);
 * timeouts, session deadline and the minimum data rate close with 421.
 *
 * The session waits without reading while a job runs; replies for a
 * pipelined group leave in one write.
 */
#include "smtpd/smtpd_int.h"

#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[] = {
    [SS_GREET_WAIT] = "greet_wait",
    [SS_CONNECTED] = "connected",
    [SS_HELO] = "helo",
    [SS_MAIL] = "mail",
    [SS_RCPT] = "rcpt",
    [SS_DATA] = "data",
    [SS_DELIVERING] = "delivering",
    [SS_TLS_HANDSHAKE] = "tls_handshake",
    [SS_CLOSING] = "closing",
};

const char *smtpd_state_name(enum smtpd_state st)
{
    if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
        msg_panic("bad state %d", (int)st);
    return state_names[st];
}

static void enter_state(struct smtpd_session *s, enum smtpd_state st)
{
    msg_debug("%s: state %s -> %s", s->id, smtpd_state_name(s->state), smtpd_state_name(st));
    s->state = st;
    s->t_active = smtpd_now_ms();
}

void smtpd_session_reset(struct smtpd_session *s)
{
    free(s->mail_from);
    s->mail_from = NULL;
    for (size_t i = 0; i < s->nrcpts; i++)
        rcpt_clear(&s->rcpts[i]);
    free(s->rcpts);
    s->rcpts = NULL;
    s->nrcpts = s->rcpt_cap = 0;
    s->rcpts_accepted = 0;
    free(s->rcpt_pending);
    s->rcpt_pending = NULL;
    smtpd_data_free(s->data);
    s->data = NULL;
    s->smtputf8 = false;
    s->body8 = false;
    s->size_hint = 0;
}

void smtpd_session_release(struct smtpd_session *s)
{
    smtpd_session_reset(s);
    free(s->helo);
    s->helo = NULL;
    buf_free(&s->in);
    buf_free(&s->out);
}

/* Back to "greeted, no transaction" (or "connected" before any HELO). */
static void transaction_end(struct smtpd_session *s)
{
    smtpd_session_reset(s);
    enter_state(s, s->helo ? SS_HELO : SS_CONNECTED);
}

void smtpd_session_close(struct smtpd_session *s, enum sp_status why)
{
    if (s->closing)
        return;
    msg_info("%s: close: reason=%s, state=%s", s->id, sp_status_name(why),
             smtpd_state_name(s->state));
    /* No reply in the middle of a TLS handshake: it would not be TLS. */
    if (s->state != SS_TLS_HANDSHAKE)
        smtpd_reply(s, why);
    s->closing = true;
    buf_free(&s->in);
    smtpd_session_reset(s);
    enter_state(s, SS_CLOSING);
}

bool smtpd_session_readable(const struct smtpd_session *s)
{
    if (s->closing || s->job || s->state == SS_DELIVERING || s->state == SS_TLS_HANDSHAKE)
        return false;
    return s->out.len < SMTPD_OUT_HIGH;
}

void smtpd_session_begin(struct smtpd_session *s)
{
    if (s->cfg->greet_pause > 0) {
        enter_state(s, SS_GREET_WAIT);
        smtpd_io_update(s); /* watch for early talkers */
        return;
    }
    smtpd_reply_greeting(s);
    enter_state(s, SS_CONNECTED);
}

/* ---- the commands ---- */

#define CMD_SYNC 0x01u      /* must end a pipelined group (RFC 2920) */
#define CMD_NEED_HELO 0x02u /* only after EHLO/HELO */
#define CMD_ARG 0x04u       /* needs an argument */
#define CMD_NO_ARG 0x08u    /* takes none */

struct smtpd_cmd {
    const char *verb;
    /* Is it allowed now? SP_OK or the refusal. NULL: always. */
    enum sp_status (*check)(struct smtpd_session *s, const char *arg);
    /* Does it and queues the reply (or starts a job). */
    void (*proceed)(struct smtpd_session *s, const char *arg);
    unsigned flags;
};

static enum sp_status check_mail(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    if (s->state == SS_MAIL || s->state == SS_RCPT)
        return SP_SMTP_NESTED_MAIL;
    return SP_OK;
}

static enum sp_status check_rcpt(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    if (s->state != SS_MAIL && s->state != SS_RCPT)
        return SP_SMTP_NEED_MAIL;
    if (s->cfg->max_recipients && s->rcpts_accepted >= s->cfg->max_recipients)
        return SP_TOO_MANY_RCPTS;
    return SP_OK;
}

static enum sp_status check_data(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    if (s->state == SS_MAIL)
        return SP_NO_RCPTS;
    if (s->state != SS_RCPT)
        return SP_SMTP_NEED_MAIL;
    return SP_OK;
}

static enum sp_status check_starttls(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    if (!smtpd_tls_offered(s->srv))
        return SP_SMTP_NOT_IMPLEMENTED; /* not offered */
    if (s->tls)
        return SP_SMTP_BAD_SEQUENCE;
    if (s->state != SS_HELO)
        return SP_SMTP_BAD_SEQUENCE; /* not inside a transaction */
    return SP_OK;
}

static void do_helo_common(struct smtpd_session *s, const char *arg, bool esmtp)
{
    smtpd_session_reset(s);
    free(s->helo);
    s->helo = xstrdup(arg);
    s->esmtp = esmtp;
    enter_state(s, SS_HELO);
    msg_info("%s: helo=%s, esmtp=%s, tls=%s", s->id, scrub(arg), esmtp ? "yes" : "no",
             s->tls ? "yes" : "no");
}

static enum sp_status check_helo(struct smtpd_session *s, const char *arg)
{
    (void)s;
    return smtpd_helo_valid(arg) ? SP_OK : SP_SMTP_SYNTAX;
}

static void do_ehlo(struct smtpd_session *s, const char *arg)
{
    do_helo_common(s, arg, true);
    smtpd_reply_ehlo(s);
}

static void do_helo(struct smtpd_session *s, const char *arg)
{
    do_helo_common(s, arg, false);
    smtpd_reply_helo(s);
}

/* MAIL parameters: SIZE=n (RFC 1870), BODY=7BIT|8BITMIME (RFC 1652),
 * SMTPUTF8 (RFC 6531). */
static enum sp_status mail_params(struct smtpd_session *s, const char *params)
{
    char *copy = xstrdup(params);
    char *save = NULL;
    enum sp_status st = SP_OK;
    bool seen_size = false, seen_body = false, seen_utf8 = false;
    for (char *t = strtok_r(copy, " ", &save); t && st == SP_OK; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        if (eq)
            *eq++ = '\0';
        if (strcasecmp(t, "SIZE") == 0 && eq && !seen_size) {
            uint64_t v;
            seen_size = true;
            if (parse_uint(eq, &v) < 0)
                st = SP_SMTP_SYNTAX;
            else if (s->cfg->message_size_limit && v > s->cfg->message_size_limit)
                st = SP_TOO_BIG;
            else
                s->size_hint = v;
        } else if (strcasecmp(t, "BODY") == 0 && eq && !seen_body) {
            seen_body = true;
            if (strcasecmp(eq, "8BITMIME") == 0)
                s->body8 = true;
            else if (strcasecmp(eq, "7BIT") != 0)
                st = SP_SMTP_SYNTAX;
        } else if (strcasecmp(t, "SMTPUTF8") == 0 && !eq && !seen_utf8) {
            seen_utf8 = true;
            s->smtputf8 = true;
        } else if (strcasecmp(t, "SIZE") == 0 || strcasecmp(t, "BODY") == 0 ||
                   strcasecmp(t, "SMTPUTF8") == 0) {
            st = SP_SMTP_SYNTAX; /* repeated or malformed */
        } else {
            st = SP_SMTP_BAD_PARAM;
        }
    }
    free(copy);
    return st;
}

static void do_mail(struct smtpd_session *s, const char *arg)
{
    char *box = NULL;
    const char *params;
    enum sp_status st = smtpd_path_parse(arg, "FROM:", true, &box, &params);
    if (st == SP_OK && !s->esmtp && *params)
        st = SP_SMTP_BAD_PARAM; /* parameters are ESMTP only */
    if (st == SP_OK)
        st = mail_params(s, params);
    if (st == SP_OK && !s->smtputf8 && !smtpd_is_ascii(box))
        st = SP_SMTP_NEED_UTF8;
    if (st != SP_OK) {
        msg_info("%s: reject: MAIL, status=%s", s->id, sp_status_name(st));
        free(box);
        s->size_hint = 0;
        s->smtputf8 = s->body8 = false;
        smtpd_reply(s, st);
        return;
    }
    s->mail_from = box;
    enter_state(s, SS_MAIL);
    msg_info("%s: mail: size=%llu, body=%s, smtputf8=%s", s->id, (unsigned long long)s->size_hint,
             s->body8 ? "8bitmime" : "7bit", s->smtputf8 ? "yes" : "no");
    smtpd_reply(s, SP_SMTP_SENDER_OK);
}

static void rcpt_done(struct smtpd_session *s, struct smtpd_job *j);

static void do_rcpt(struct smtpd_session *s, const char *arg)
{
    char *box = NULL;
    const char *params;
    enum sp_status st = smtpd_path_parse(arg, "TO:", false, &box, &params);
    if (st == SP_OK && *params)
        st = SP_SMTP_BAD_PARAM; /* no RCPT parameters are offered */
    if (st == SP_OK && !s->smtputf8 && !smtpd_is_ascii(box))
        st = SP_SMTP_NEED_UTF8;
    if (st == SP_OK && strchr(box, '@') == NULL) {
        /* "<Postmaster>" (RFC 5321 4.5.1): ours, in the first Mail-in domain. */
        if (s->cfg->domains.n == 0) {
            st = SP_RELAY_DENIED;
        } else {
            char *full = xasprintf("postmaster@%s", s->cfg->domains.v[0]);
            free(box);
            box = full;
        }
    }
    if (st != SP_OK) {
        msg_info("%s: reject: RCPT to=<%s>, status=%s", s->id, scrub(box ? box : ""),
                 sp_status_name(st));
        free(box);
        smtpd_reply(s, st);
        return;
    }
    struct smtpd_job *j = smtpd_job_new(JOB_RCPT, s);
    j->address = box;
    j->size_hint = s->size_hint;
    /* Answered here when the store answers at once (a few indexed reads;
     * WAL readers do not wait for writers): two thread hand-overs less per
     * recipient. A lookup that would wait for a lock, or fails, goes to a
     * worker, which may wait and reports what went wrong. */
    struct deliver_ctx *dc = smtpd_lookup_ctx(s->srv, s->cfg);
    if (dc) {
        j->status = deliver_rcpt_check(dc, j->address, j->size_hint, &j->rcpt);
        if (j->status != SP_TEMPFAIL && j->status != SP_DISK_FULL) {
            rcpt_done(s, j);
            smtpd_job_free(j);
            return;
        }
        rcpt_clear(&j->rcpt);
    }
    s->job = j;
    smtpd_pool_push(s->srv->pool, j);
}

/* "reason=NAME" of a status, for metric labels (a constant per status). */
static const char *smtpd_metric_reason(enum sp_status st)
{
    static __thread char label[METRICS_LABEL_MAX];
    snprintf(label, sizeof(label), "reason=%s", sp_status_name(st));
    return label;
}

static void rcpt_done(struct smtpd_session *s, struct smtpd_job *j)
{
    msg_info("%s: to=<%s>, status=%s", s->id, scrub(j->address), sp_status_name(j->status));
    if (j->status != SP_OK) {
        metrics_inc("recipients_refused_total", smtpd_metric_reason(j->status));
        smtpd_reply(s, j->status);
        return;
    }
    s->rcpts_accepted++; /* duplicates count against max_recipients too */
    /* One item per user and message: a second address of the same user is
     * accepted but not stored twice. */
    for (size_t i = 0; i < s->nrcpts; i++) {
        if (s->rcpts[i].user_id == j->rcpt.user_id) {
            smtpd_reply(s, SP_SMTP_RCPT_OK);
            return;
        }
    }
    if (s->nrcpts == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
    }
    s->rcpts[s->nrcpts++] = j->rcpt;
    memset(&j->rcpt, 0, sizeof(j->rcpt));
    enter_state(s, SS_RCPT);
    smtpd_reply(s, SP_SMTP_RCPT_OK);
}

static void do_data(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    int fd = memfd_open("sealpost-smtpd-data");
    if (fd < 0) {
        msg_error("%s: memfd: %m", s->id);
        smtpd_reply(s, SP_TEMPFAIL);
        return;
    }
    s->data = smtpd_data_new(fd, s->cfg->message_size_limit, s->cfg->data_line_length_limit);
    enter_state(s, SS_DATA);
    smtpd_reply(s, SP_SMTP_START_DATA);
}

static void data_end(struct smtpd_session *s)
{
    enum sp_status st = smtpd_data_verdict(s->data);
    uint64_t size = smtpd_data_size(s->data);
    if (st != SP_OK) {
        msg_info("%s: reject: DATA nrcpt=%zu, bytes=%llu, status=%s", s->id, s->nrcpts,
                 (unsigned long long)smtpd_data_raw(s->data), sp_status_name(st));
        metrics_inc("messages_refused_total", smtpd_metric_reason(st));
        if (st == SP_SMTP_BARE_EOL) {
            smtpd_session_close(s, st); /* a smuggling attempt ends the session */
            return;
        }
        smtpd_reply(s, st);
        transaction_end(s);
        return;
    }
    struct smtpd_job *j = smtpd_job_new(JOB_DELIVER, s);
    j->fd = smtpd_data_take_fd(s->data);
    if (j->fd < 0) {
        smtpd_job_free(j);
        smtpd_reply(s, SP_TEMPFAIL);
        transaction_end(s);
        return;
    }
    char tid[RAND_ID_LEN + 1];
    rand_id(tid);
    const char *tv = s->tls ? smtpd_tls_version(s) : NULL;
    const char *tc = s->tls ? smtpd_tls_cipher(s) : NULL;
    j->received = smtpd_received_new(s, tid, tv, tc);
    j->rcpts = s->rcpts;
    j->nrcpts = s->nrcpts;
    s->rcpts = NULL;
    s->nrcpts = s->rcpt_cap = 0;
    j->helo = s->helo ? xstrdup(s->helo) : NULL;
    j->client_addr = xstrdup(s->addr);
    j->mail_from = xstrdup(s->mail_from ? s->mail_from : "");
    j->via = xstrdup(s->esmtp ? (s->tls ? "esmtps" : "esmtp") : "smtp");
    j->tls_version = tv ? xstrdup(tv) : NULL;
    j->tls_cipher = tc ? xstrdup(tc) : NULL;
    j->size = size;
    smtpd_data_free(s->data);
    s->data = NULL;
    enter_state(s, SS_DELIVERING);
    s->job = j;
    smtpd_pool_push(s->srv->pool, j);
}

static void deliver_done(struct smtpd_session *s, struct smtpd_job *j)
{
    if (j->status == SP_OK) {
        s->nmsgs++;
        msg_info("%s: queued_as=%s, nrcpt=%zu, size=%llu", s->id, j->queue_id, j->nrcpts,
                 (unsigned long long)j->size);
        metrics_inc("messages_received_total", NULL);
        metrics_add("message_bytes_received_total", NULL, j->size);
        smtpd_reply_extra(s, SP_OK, ": queued as %s", j->queue_id);
    } else {
        msg_info("%s: reject: DATA nrcpt=%zu, size=%llu, status=%s", s->id, j->nrcpts,
                 (unsigned long long)j->size, sp_status_name(j->status));
        metrics_inc("messages_refused_total", smtpd_metric_reason(j->status));
        smtpd_reply(s, j->status);
    }
    transaction_end(s);
}

static void do_rset(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    transaction_end(s);
    smtpd_reply(s, SP_OK);
}

static void do_noop(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    smtpd_reply(s, SP_OK);
}

static void do_quit(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    s->quit = true;
    smtpd_reply(s, SP_SMTP_BYE);
    s->closing = true;
    buf_free(&s->in);
    smtpd_session_reset(s);
    enter_state(s, SS_CLOSING);
}

static void do_vrfy(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    smtpd_reply(s, SP_SMTP_VRFY);
}

static void do_help(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    smtpd_reply(s, SP_SMTP_HELP);
}

static void do_not_implemented(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    smtpd_reply(s, SP_SMTP_NOT_IMPLEMENTED);
}

static void do_starttls(struct smtpd_session *s, const char *arg)
{
    (void)arg;
    /* CVE-2011-0411: whatever came with or after STARTTLS in clear is
     * dropped; the client starts over with EHLO inside TLS. */
    s->discard_rest = true;
    if (smtpd_tls_begin(s) < 0) {
        smtpd_reply(s, SP_SMTP_TLS_UNAVAILABLE);
        return;
    }
    smtpd_reply(s, SP_SMTP_START_TLS);
    enter_state(s, SS_TLS_HANDSHAKE);
}

static const struct smtpd_cmd commands[] = {
    {"EHLO", check_helo, do_ehlo, CMD_SYNC | CMD_ARG},
    {"HELO", check_helo, do_helo, CMD_SYNC | CMD_ARG},
    {"MAIL", check_mail, do_mail, CMD_NEED_HELO | CMD_ARG},
    {"RCPT", check_rcpt, do_rcpt, CMD_NEED_HELO | CMD_ARG},
    {"DATA", check_data, do_data, CMD_SYNC | CMD_NEED_HELO | CMD_NO_ARG},
    {"RSET", NULL, do_rset, CMD_NO_ARG},
    {"NOOP", NULL, do_noop, CMD_SYNC},
    {"QUIT", NULL, do_quit, CMD_SYNC | CMD_NO_ARG},
    {"VRFY", NULL, do_vrfy, CMD_SYNC | CMD_ARG},
    {"EXPN", NULL, do_not_implemented, CMD_SYNC},
    {"HELP", NULL, do_help, 0},
    {"STARTTLS", check_starttls, do_starttls, CMD_SYNC | CMD_NEED_HELO | CMD_NO_ARG},
    /* Known, not offered. */
    {"BDAT", NULL, do_not_implemented, 0},
    {"AUTH", NULL, do_not_implemented, 0},
    {"ETRN", NULL, do_not_implemented, 0},
    {"TURN", NULL, do_not_implemented, 0},
};

static const struct smtpd_cmd *cmd_find(const char *verb)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcasecmp(commands[i].verb, verb) == 0)
            return &commands[i];
    return NULL;
}

/* One complete command line (without CRLF); rest = bytes received after it. */
static void command_run(struct smtpd_session *s, const char *p, size_t len, size_t rest)
{
    s->ncmds++;
    if (memchr(p, '\r', len) || memchr(p, '\n', len)) {
        msg_info("%s: reject: bare CR or LF in a command", s->id);
        smtpd_session_close(s, SP_SMTP_BARE_EOL);
        return;
    }
    if (memchr(p, '\0', len)) {
        smtpd_reply(s, SP_SMTP_UNRECOGNIZED);
        return;
    }
    char *line = xstrndup(p, len);
    while (len > 0 && line[len - 1] == ' ')
        line[--len] = '\0'; /* trailing spaces are common and harmless */
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = '\0';
        while (*arg == ' ')
            arg++;
    } else {
        arg = line + len;
    }
    const struct smtpd_cmd *c = cmd_find(line);
    enum sp_status st = SP_OK;
    if (c == NULL)
        st = SP_SMTP_UNRECOGNIZED;
    else if ((c->flags & CMD_SYNC) && rest > 0 && strcasecmp(c->verb, "STARTTLS") != 0 &&
             strcasecmp(c->verb, "QUIT") != 0)
        st = SP_SMTP_PIPELINING;
    else if ((c->flags & CMD_NEED_HELO) && s->helo == NULL)
        st = SP_SMTP_NEED_HELO;
    else if ((c->flags & CMD_ARG) && *arg == '\0')
        st = SP_SMTP_SYNTAX;
    else if ((c->flags & CMD_NO_ARG) && *arg != '\0')
        st = SP_SMTP_SYNTAX;
    else if (c->check)
        st = c->check(s, arg);

    if (st == SP_SMTP_PIPELINING) {
        msg_info("%s: reject: %s with %zu bytes pipelined behind it", s->id, c->verb, rest);
        smtpd_session_close(s, st);
    } else if (st != SP_OK) {
        /* The verb only: arguments may carry the sender (RULES.md 12); an
         * unknown verb is the client's text, so it is not logged at all. */
        msg_info("%s: reject: cmd=%s, status=%s, state=%s", s->id, c ? c->verb : "(unknown)",
                 sp_status_name(st), smtpd_state_name(s->state));
        smtpd_reply(s, st);
    } else {
        c->proceed(s, arg);
    }
    free(line);
}

/* After a command: error limit and drain. */
static void command_after(struct smtpd_session *s)
{
    if (s->closing)
        return;
    if (s->cfg->max_errors && s->errors >= s->cfg->max_errors) {
        smtpd_session_close(s, SP_SMTP_TOO_MANY_ERRORS);
        return;
    }
    if (s->srv->draining && s->job == NULL && (s->state == SS_CONNECTED || s->state == SS_HELO))
        smtpd_session_close(s, SP_SMTP_SHUTDOWN);
}

/* Finds the CRLF that ends a command line; NULL if none yet. */
static const char *find_crlf(const char *p, size_t n)
{
    const char *q = p;
    const char *end = p + n;
    while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        if (q > p && q[-1] == '\r')
            return q - 1;
        q++;
    }
    return NULL;
}

/* Processes input; returns the bytes consumed (the rest waits). */
static size_t input_run(struct smtpd_session *s, const char *p, size_t n)
{
    size_t off = 0;
    unsigned limit = s->cfg->line_length_limit;
    while (off < n) {
        if (s->closing || s->job || s->state == SS_DELIVERING || s->state == SS_TLS_HANDSHAKE)
            break;
        if (s->state == SS_DATA) {
            off += smtpd_data_push(s->data, p + off, n - off);
            if (smtpd_data_done(s->data)) {
                data_end(s);
                command_after(s);
            }
            continue;
        }
        if (s->line_long) { /* discarding an over-long line up to its CRLF */
            size_t i = off;
            for (; i < n; i++) {
                if (s->line_cr && p[i] == '\n')
                    break;
                s->line_cr = p[i] == '\r';
            }
            if (i == n) {
                off = n;
                break;
            }
            off = i + 1;
            s->line_long = s->line_cr = false;
            s->ncmds++;
            msg_info("%s: reject: command line too long", s->id);
            smtpd_reply(s, SP_SMTP_LINE_TOO_LONG);
            command_after(s);
            continue;
        }
        const char *crlf = find_crlf(p + off, n - off);
        if (crlf == NULL) {
            if (limit && n - off >= limit) {
                s->line_long = true;
                s->line_cr = p[n - 1] == '\r';
                off = n;
            }
            break;
        }
        size_t len = (size_t)(crlf - (p + off));
        size_t start = off;
        off = (size_t)(crlf - p) + 2;
        if (limit && len + 2 > limit) {
            s->ncmds++;
            msg_info("%s: reject: command line too long", s->id);
            smtpd_reply(s, SP_SMTP_LINE_TOO_LONG);
            command_after(s);
            continue;
        }
        command_run(s, p + start, len, n - off);
        if (s->discard_rest) {
            s->discard_rest = false;
            if (n > off)
                msg_info("%s: starttls: discarded %zu bytes sent behind STARTTLS", s->id, n - off);
            off = n;
        }
        command_after(s);
    }
    return off;
}

void smtpd_session_input(struct smtpd_session *s, const char *p, size_t n)
{
    if (s->closing)
        return;
    if (s->state == SS_GREET_WAIT) {
        msg_info("%s: reject: %zu bytes sent before the greeting", s->id, n);
        smtpd_session_close(s, SP_SMTP_EARLY_TALKER);
        return;
    }
    if (s->in.len == 0) {
        size_t used = input_run(s, p, n);
        if (used < n && !s->closing) {
            buf_init(&s->in, (size_t)s->cfg->line_length_limit + 2 * SMTPD_READ_CHUNK);
            if (buf_append(&s->in, p + used, n - used) < 0)
                msg_panic("input buffer over its cap");
        }
        return;
    }
    if (buf_append(&s->in, p, n) < 0) {
        smtpd_session_close(s, SP_SMTP_LINE_TOO_LONG);
        return;
    }
    size_t used = input_run(s, s->in.data, s->in.len);
    if (s->closing || used == s->in.len) {
        buf_free(&s->in);
    } else if (used > 0) {
        memmove(s->in.data, s->in.data + used, s->in.len - used);
        s->in.len -= used;
    }
}

/* Runs input that waited while a job ran. */
static void input_continue(struct smtpd_session *s)
{
    if (s->in.len == 0 || s->closing)
        return;
    size_t used = input_run(s, s->in.data, s->in.len);
    if (s->closing || used == s->in.len) {
        buf_free(&s->in);
    } else if (used > 0) {
        memmove(s->in.data, s->in.data + used, s->in.len - used);
        s->in.len -= used;
    }
}

void smtpd_session_job_done(struct smtpd_session *s, struct smtpd_job *j)
{
    if (s->closing) { /* the peer left while the job ran */
        if (j->kind == JOB_DELIVER)
            msg_info("%s: %s after the client left, status=%s%s%s", s->id,
                     j->status == SP_OK ? "delivered" : "not delivered", sp_status_name(j->status),
                     j->status == SP_OK ? ", queued_as=" : "",
                     j->status == SP_OK ? j->queue_id : "");
        return;
    }
    if (j->kind == JOB_RCPT)
        rcpt_done(s, j);
    else
        deliver_done(s, j);
    command_after(s);
    input_continue(s);
}

void smtpd_session_tls_done(struct smtpd_session *s)
{
    s->tls = true;
    free(s->helo);
    s->helo = NULL; /* RFC 3207 4.2: forget everything, EHLO again */
    s->esmtp = false;
    smtpd_session_reset(s);
    buf_free(&s->in);
    enter_state(s, SS_CONNECTED);
    msg_info("%s: tls=%s, cipher=%s", s->id, smtpd_tls_version(s), smtpd_tls_cipher(s));
}

void smtpd_session_eof(struct smtpd_session *s)
{
    if (s->state == SS_DATA || s->state == SS_MAIL || s->state == SS_RCPT)
        msg_info("%s: lost connection in state %s", s->id, smtpd_state_name(s->state));
    if (s->job) {
        s->closing = true;
        smtpd_session_unwatch(s);
        return;
    }
    smtpd_session_free(s);
}

void smtpd_session_drain(struct smtpd_session *s)
{
    if (s->closing || s->job)
        return;
    if (s->state == SS_GREET_WAIT || s->state == SS_CONNECTED || s->state == SS_HELO ||
        s->state == SS_TLS_HANDSHAKE)
        smtpd_session_close(s, SP_SMTP_SHUTDOWN);
}

void smtpd_session_tick(struct smtpd_session *s, uint64_t now)
{
    const struct config *c = s->cfg;
    if (s->job)
        return; /* our turn, not the client's */
    if (s->closing) {
        /* A client that does not read its last reply: give up on it. */
        if (c->command_timeout && now - s->t_active >= c->command_timeout * 1000u) {
            buf_free(&s->out);
            smtpd_session_free(s);
        }
        return;
    }
    if (s->state == SS_GREET_WAIT) {
        if (now - s->t_start >= c->greet_pause * 1000u) {
            smtpd_reply_greeting(s);
            enter_state(s, SS_CONNECTED);
        }
        return;
    }
    if (c->session_deadline && now - s->t_start >= c->session_deadline * 1000u) {
        if (s->state == SS_TLS_HANDSHAKE) {
            smtpd_session_free(s);
            return;
        }
        smtpd_session_close(s, SP_SMTP_DEADLINE);
        return;
    }
    if (s->state == SS_DATA) {
        if (c->data_timeout && now - s->t_active >= c->data_timeout * 1000u) {
            smtpd_session_close(s, SP_SMTP_TIMEOUT);
            return;
        }
        uint64_t secs = (now - smtpd_data_started(s->data)) / 1000u;
        if (c->min_data_rate && secs >= SMTPD_RATE_GRACE &&
            smtpd_data_raw(s->data) < c->min_data_rate * secs)
            smtpd_session_close(s, SP_SMTP_TOO_SLOW);
        return;
    }
    if (c->command_timeout && now - s->t_active >= c->command_timeout * 1000u) {
        if (s->state == SS_TLS_HANDSHAKE) {
            msg_info("%s: tls handshake timeout", s->id);
            smtpd_session_free(s);
            return;
        }
        smtpd_session_close(s, SP_SMTP_TIMEOUT);
    }
}
