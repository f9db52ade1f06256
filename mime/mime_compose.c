/*
 * mime_compose — the notification mail, built with GMime (see mime_compose.h).
 *
 * Where it sits: deliver/outbound calls mime_compose when a mail is queued;
 * the bytes returned are DKIM-signed and stored encrypted. Nothing is parsed
 * here: we only write.
 *
 * Trust: none of the strings. Header text is cleaned before GMime sees it and
 * GMime encodes what is not plain ASCII as RFC 2047 encoded words (RFC 2047,
 * RFC 6532 is not used: the output is 7-bit); addresses are checked against
 * a deliberately narrow addr-spec (RFC 5322 3.4.1 without quoted local parts
 * or domain literals). As a last line of defence the serialised header block
 * is walked line by line: every line must be one of the fields we wrote or a
 * folded continuation of one, and no line may pass MIME_COMPOSE_LINE_MAX.
 *
 * Standards: RFC 5322 (format), RFC 2045–2047 (MIME, quoted-printable,
 * encoded words), RFC 2046 5.1.4 (multipart/alternative: plainest first),
 * RFC 3834 (Auto-Submitted).
 */
#include "mime/mime_compose.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <gmime/gmime.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length and the
 * code point in *cp, or 0 when the bytes are not valid (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0], need, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    for (unsigned i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need + 1;
}

static bool is_control(unsigned cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

static bool is_bidi_control(unsigned cp)
{
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

char *mime_header_text_clean(const char *s, size_t max)
{
    struct buf b = BUF_INIT;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    bool pending_space = false;

    buf_init(&b, 0);
    while (n > 0) {
        unsigned cp;
        size_t len = utf8_next(p, n, &cp);
        const char *out = (const char *)p;
        size_t outlen = len;
        if (len == 0) {
            out = UTF8_REPLACEMENT;
            outlen = 3;
            len = 1;
            cp = 0xFFFD;
        }
        p += len;
        n -= len;
        if (is_bidi_control(cp))
            continue;
        if (is_control(cp) || cp == ' ') {
            pending_space = b.len > 0;
            continue;
        }
        size_t add = outlen + (pending_space ? 1 : 0);
        if (b.len + add > max)
            break;
        if ((pending_space && buf_putc(&b, ' ') < 0) || buf_append(&b, out, outlen) < 0)
            break;
        pending_space = false;
    }
    return buf_steal(&b);
}

char *mime_body_clean(const char *s, size_t max)
{
    struct buf b = BUF_INIT;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);

    buf_init(&b, max);
    while (n > 0) {
        unsigned cp;
        size_t len = utf8_next(p, n, &cp);
        int r = 0;
        if (len == 0) {
            r = buf_append(&b, UTF8_REPLACEMENT, 3);
            len = 1;
        } else if (cp == '\r') {
            r = buf_putc(&b, '\n');
            if (n > 1 && p[1] == '\n')
                len = 2;
        } else if (cp == '\n' || cp == '\t' || !is_control(cp) || cp == 0x2028 || cp == 0x2029) {
            r = buf_append(&b, p, len);
        }
        if (r < 0) {
            buf_free(&b);
            return NULL;
        }
        p += len;
        n -= len;
    }
    return buf_steal(&b);
}

static bool domain_valid(const char *d)
{
    size_t label = 0, labels = 0;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || p[-1] == '-')
                return false;
            labels++;
            if (*p == '\0')
                return labels >= 1;
            label = 0;
            continue;
        }
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || (*p == '-' && label > 0);
        if (!ok || ++label > 63)
            return false;
    }
}

bool mime_address_valid(const char *addr)
{
    if (addr == NULL)
        return false;
    size_t len = strlen(addr);
    const char *at = strchr(addr, '@');
    if (len == 0 || len > MIME_COMPOSE_ADDR_MAX || at == NULL || at == addr ||
        strchr(at + 1, '@') != NULL || at - addr > 64)
        return false;
    for (const char *p = addr; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7F || strchr("\"(),:;<>[\\]", c) != NULL)
            return false;
    }
    if (addr[0] == '.' || at[-1] == '.' || strstr(addr, "..") != NULL)
        return false;
    return domain_valid(at + 1);
}

/* ---- the last check: the header block as GMime wrote it ---- */

static const char *const written_fields[] = {
    "From",           "To",           "Reply-To",
    "Subject",        "Date",         "Message-Id",
    "MIME-Version",   "Content-Type", "Content-Transfer-Encoding",
    "Auto-Submitted", NULL,
};

static bool field_known(const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return false;
    for (size_t i = 0; written_fields[i]; i++) {
        size_t n = strlen(written_fields[i]);
        if ((size_t)(colon - line) == n && strncasecmp(line, written_fields[i], n) == 0)
            return true;
    }
    return false;
}

/* 0 when every header line is one we wrote (or its folding), CRLF-terminated,
 * 7-bit and at most MIME_COMPOSE_LINE_MAX long; -1 otherwise. */
static int headers_check(const char *msg, size_t len)
{
    size_t at = 0;
    while (at < len) {
        const char *line = msg + at;
        const char *crlf = memmem(line, len - at, "\r\n", 2);
        if (crlf == NULL)
            return -1;
        size_t n = (size_t)(crlf - line);
        if (n == 0)
            return 0; /* end of the header block */
        if (n > MIME_COMPOSE_LINE_MAX)
            return -1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
                return -1;
        }
        if (line[0] != ' ' && line[0] != '\t' && !field_known(line, n))
            return -1;
        at += n + 2;
    }
    return -1;
}

/* ---- composing ---- */

/* Bytes of UTF-8 per encoded word: base64 of 45 bytes is 60 characters, so
 * "=?UTF-8?B?" + 60 + "?=" stays within RFC 2047's 75. */
#define EW_CHUNK 45

/*
 * Text that itself looks like an encoded word ("=?utf-8?q?a=0D=0A…?=") would
 * be written by GMime as typed, and then DECODED by the reader's mail program
 * into whatever it says, line breaks included. Such text is encoded here,
 * whole, as UTF-8 B-words (cut at character boundaries), so the reader sees
 * exactly what was typed. NULL when the text has no "=?" (GMime encodes it).
 */
static char *encode_words_if_needed(const char *text)
{
    if (strstr(text, "=?") == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    size_t n = strlen(text), at = 0;
    while (at < n) {
        size_t take = n - at < EW_CHUNK ? n - at : EW_CHUNK;
        /* Back off to a character boundary (the text is valid UTF-8). */
        while (at + take < n && take > 0 && (text[at + take] & 0xC0) == 0x80)
            take--;
        char b64[sodium_base64_ENCODED_LEN(EW_CHUNK, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)text + at, take,
                          sodium_base64_VARIANT_ORIGINAL);
        if (buf_printf(&b, "%s=?UTF-8?B?%s?=", at ? " " : "", b64) < 0)
            msg_panic("encoded words of a bounded text overflowed");
        at += take;
    }
    return buf_steal(&b);
}

/*
 * A display name, cleaned. GMime re-formats From from its parsed address
 * list, so a name cannot be pre-encoded like the subject: a typed "=?" (the
 * start of an encoded word) becomes "= ?" instead, which no reader decodes.
 */
static char *display_name_clean(const char *s)
{
    char *name = mime_header_text_clean(s, MIME_COMPOSE_NAME_MAX);
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    for (const char *p = name; *p; p++)
        if (buf_putc(&b, *p) < 0 || (p[0] == '=' && p[1] == '?' && buf_putc(&b, ' ') < 0))
            msg_panic("display name of bounded length overflowed");
    free(name);
    return buf_steal(&b);
}

static GMimeObject *text_part_new(const char *subtype, const char *body)
{
    GMimePart *part = (GMimePart *)g_mime_text_part_new_with_subtype(subtype);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(body, strlen(body));
    GMimeDataWrapper *content =
        g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, content);
    g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    g_mime_object_set_content_type_parameter((GMimeObject *)part, "charset", "utf-8");
    g_object_unref(content);
    g_object_unref(stream);
    return (GMimeObject *)part;
}

int mime_compose(const struct mime_compose_in *in, char **out, size_t *outlen, const char **err)
{
    *out = NULL;
    *outlen = 0;
    if (!mime_address_valid(in->from_addr)) {
        *err = "bad sender address";
        return -1;
    }
    if (!mime_address_valid(in->to_addr)) {
        *err = "bad recipient address";
        return -1;
    }
    if (in->reply_to && !mime_address_valid(in->reply_to)) {
        *err = "bad reply-to address";
        return -1;
    }
    if (in->message_id == NULL || !mime_address_valid(in->message_id)) {
        *err = "bad message id";
        return -1;
    }
    char *text = mime_body_clean(in->text, MIME_COMPOSE_BODY_MAX);
    char *html = in->html ? mime_body_clean(in->html, MIME_COMPOSE_BODY_MAX) : NULL;
    if (text == NULL || (in->html && html == NULL)) {
        free(text);
        free(html);
        *err = "body too large";
        return -1;
    }
    char *subject = mime_header_text_clean(in->subject, MIME_COMPOSE_SUBJECT_MAX);
    char *name = display_name_clean(in->from_name);

    GMimeMessage *msg = g_mime_message_new(TRUE);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, name[0] ? name : NULL, in->from_addr);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, in->to_addr);
    if (in->reply_to)
        g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_REPLY_TO, NULL, in->reply_to);
    char *subject_ew = encode_words_if_needed(subject);
    if (subject_ew)
        g_mime_object_set_header((GMimeObject *)msg, "Subject", subject_ew, NULL);
    else
        g_mime_message_set_subject(msg, subject, "utf-8");
    free(subject_ew);
    GDateTime *date = g_date_time_new_from_unix_utc(in->date);
    g_mime_message_set_date(msg, date);
    g_date_time_unref(date);
    g_mime_message_set_message_id(msg, in->message_id);
    g_mime_object_set_header((GMimeObject *)msg, "Auto-Submitted", "auto-generated", NULL);

    GMimeObject *body = text_part_new("plain", text);
    if (html) {
        GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
        GMimeObject *hp = text_part_new("html", html);
        g_mime_multipart_add(alt, body);
        g_mime_multipart_add(alt, hp);
        g_object_unref(body);
        g_object_unref(hp);
        body = (GMimeObject *)alt;
    }
    g_mime_message_set_mime_part(msg, body);
    g_object_unref(body);

    GMimeFormatOptions *opts = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(opts, GMIME_NEWLINE_FORMAT_DOS);
    GMimeStream *mem = g_mime_stream_mem_new();
    ssize_t w = g_mime_object_write_to_stream((GMimeObject *)msg, opts, mem);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem);
    int rc = -1;
    if (w < 0 || bytes == NULL) {
        *err = "cannot write the message";
    } else if (headers_check((const char *)bytes->data, bytes->len) < 0) {
        *err = "header check failed";
    } else {
        *out = xmalloc(bytes->len + 1);
        memcpy(*out, bytes->data, bytes->len);
        (*out)[bytes->len] = '\0';
        *outlen = bytes->len;
        rc = 0;
    }
    g_object_unref(mem);
    g_mime_format_options_free(opts);
    g_object_unref(msg);
    free(subject);
    free(name);
    free(text);
    free(html);
    return rc;
}
