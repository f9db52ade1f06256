/*
 * relay — the driver table and what the drivers share: template expansion
 * with the encoding of the content type (RFC 3986 percent-encoding for
 * forms and URLs, RFC 8259 string escaping for JSON) and result helpers.
 *
 * Trusts: templates come from the checked config; values come from the
 * mTAN flow (an E.164 number, an ASCII text, an id) and are encoded here,
 * so a value can never break out of its place in a body or URL.
 */
#include "sendlink/relay.h"
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct relay_ops *const drivers[] = {
    &relay_http_ops, &relay_exec_ops, &relay_smtp_ops, &relay_file_ops, &relay_plugin_ops,
};

const struct relay_ops *relay_ops_find(const char *driver)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (driver && strcmp(drivers[i]->driver, driver) == 0)
            return drivers[i];
    return NULL;
}

const char *relay_status_name(enum relay_status s)
{
    switch (s) {
    case RELAY_SENT:
        return "sent";
    case RELAY_TEMPFAIL:
        return "tempfail";
    case RELAY_PERMFAIL:
        return "permfail";
    }
    return "?";
}

static int put_encoded(struct buf *out, const char *v, enum relay_enc enc)
{
    int r = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p && r == 0; p++) {
        unsigned char c = *p;
        switch (enc) {
        case RELAY_ENC_NONE:
            r = buf_putc(out, (char)c);
            break;
        case RELAY_ENC_FORM:
            /* RFC 3986 unreserved characters stay; everything else is %XX. */
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~')
                r = buf_putc(out, (char)c);
            else
                r = buf_printf(out, "%%%02X", c);
            break;
        case RELAY_ENC_JSON:
            if (c == '"' || c == '\\')
                r = buf_printf(out, "\\%c", c);
            else if (c < 0x20 || c == 0x7f)
                r = buf_printf(out, "\\u%04x", c);
            else
                r = buf_putc(out, (char)c);
            break;
        }
    }
    return r;
}

int relay_expand(struct buf *out, const char *tmpl, const struct relay_msg *m, enum relay_enc enc)
{
    const char *digits = m->to[0] == '+' ? m->to + 1 : m->to;
    int r = 0;
    for (const char *p = tmpl; *p && r == 0;) {
        if (strncmp(p, "{to}", 4) == 0) {
            r = put_encoded(out, m->to, enc);
            p += 4;
        } else if (strncmp(p, "{to_digits}", 11) == 0) {
            r = put_encoded(out, digits, enc);
            p += 11;
        } else if (strncmp(p, "{text}", 6) == 0) {
            r = put_encoded(out, m->text, enc);
            p += 6;
        } else if (strncmp(p, "{id}", 4) == 0) {
            r = put_encoded(out, m->id, enc);
            p += 4;
        } else {
            r = buf_putc(out, *p++);
        }
    }
    return r;
}

void relay_error(struct relay_result *res, const char *fmt, ...)
{
    char raw[RELAY_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    log_scrub(res->error, sizeof(res->error), raw, strlen(raw));
}
