/*
 * smtpd_addr — syntax of the reverse-path and forward-path of MAIL and
 * RCPT, and of the HELO/EHLO argument (RFC 5321 4.1.2, with the RFC 6531
 * extension to UTF-8 local parts and domains).
 *
 * Bounds come first (RULES.md 5): path 256, local part 64, domain 255
 * octets. The input is an untrusted command line without CRLF; the output
 * mailbox is "local@domain" (source route dropped, RFC 5321 4.1.1.3, quoted
 * local parts kept as written).
 */
#include "smtpd/smtpd_int.h"

#include "lib/utf8.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true; /* UTF-8 (RFC 6531); the caller checks SMTPUTF8 */
    if (isalnum(c))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool smtpd_is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Longest label of a domain name (RFC 1035 2.3.4). */
#define SMTPD_LABEL_MAX 63

/* Domain: dot-separated labels of letters, digits, '-' (or UTF-8) that do
 * not start or end with '-' (RFC 5321 Let-dig), or an address literal
 * "[...]" of printable characters. */
static bool domain_valid(const char *d, size_t n)
{
    if (n == 0 || n > SMTPD_DOMAIN_MAX)
        return false;
    if (d[0] == '[') {
        if (n < 3 || d[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)d[i];
            if (c < 0x21 || c > 0x7e || c == '[' || c == ']' || c == '\\')
                return false;
        }
        return true;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!(isalnum(c) || c == '-' || c >= 0x80))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > SMTPD_LABEL_MAX)
            return false;
    }
    return label > 0 && d[n - 1] != '-';
}

static bool local_valid(const char *l, size_t n)
{
    if (n == 0 || n > SMTPD_LOCAL_MAX)
        return false;
    if (l[0] == '"') {
        if (n < 2 || l[n - 1] != '"')
            return false;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)l[i];
            if (c == '\\') {
                if (++i + 1 >= n)
                    return false;
                c = (unsigned char)l[i];
                if (c < 0x20 || c == 0x7f)
                    return false;
            } else if (c == '"' || c < 0x20 || c == 0x7f) {
                return false;
            }
        }
        return true;
    }
    bool dot_ok = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        if (c == '.') {
            if (!dot_ok)
                return false;
            dot_ok = false;
        } else if (is_atext(c)) {
            dot_ok = true;
        } else {
            return false;
        }
    }
    return dot_ok;
}

/* End of the path: the '>' that is not inside a quoted local part. */
static const char *path_end(const char *p)
{
    bool quoted = false;
    for (; *p; p++) {
        if (quoted && *p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '>' && !quoted)
            return p;
    }
    return NULL;
}

enum sp_status smtpd_path_parse(const char *arg, const char *keyword, bool null_ok, char **mailbox,
                                const char **params)
{
    size_t kl = strlen(keyword);
    *mailbox = NULL;
    *params = "";
    if (strncasecmp(arg, keyword, kl) != 0)
        return SP_SMTP_SYNTAX;
    const char *p = arg + kl;
    while (*p == ' ')
        p++; /* "MAIL FROM: <x>" is common; tolerated */
    if (*p != '<')
        return SP_SMTP_SYNTAX;
    const char *end = path_end(p + 1);
    if (end == NULL)
        return SP_SMTP_SYNTAX;
    if ((size_t)(end - p + 1) > SMTPD_PATH_MAX)
        return SP_BAD_ADDRESS;
    const char *q = end + 1;
    if (*q != '\0' && *q != ' ')
        return SP_SMTP_SYNTAX;
    while (*q == ' ')
        q++;
    *params = q;

    const char *a = p + 1;
    size_t n = (size_t)(end - a);
    if (n == 0) {
        if (!null_ok)
            return SP_BAD_ADDRESS;
        *mailbox = xstrdup("");
        return SP_OK;
    }
    if (a[0] == '@') { /* source route "@a,@b:" (RFC 5321 4.1.1.3): ignored */
        const char *colon = memchr(a, ':', n);
        if (colon == NULL)
            return SP_BAD_ADDRESS;
        n -= (size_t)(colon + 1 - a);
        a = colon + 1;
    }
    /* The '@' that separates local part and domain: the last one. */
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (a[i] == '@')
            at = a + i;
    if (at == NULL) {
        /* RFC 5321 4.5.1: "<Postmaster>" without a domain must be taken. */
        if (!null_ok && n == 10 && strncasecmp(a, "postmaster", 10) == 0) {
            *mailbox = xstrndup(a, n);
            return SP_OK;
        }
        return SP_BAD_ADDRESS;
    }
    if (!local_valid(a, (size_t)(at - a)) || !domain_valid(at + 1, n - (size_t)(at - a) - 1) ||
        !utf8_valid(a, n))
        return SP_BAD_ADDRESS;
    *mailbox = xstrndup(a, n);
    return SP_OK;
}

bool smtpd_helo_valid(const char *arg)
{
    size_t n = strlen(arg);
    if (n == 0 || n > SMTPD_HELO_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    /* 8-bit only as UTF-8 (U-labels, RFC 6531 3.7.1): it reaches the
     * Received: header and the metadata record, which must be UTF-8. */
    return utf8_valid(arg, n);
}
