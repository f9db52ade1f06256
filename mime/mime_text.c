/*
 * mime_text — small text helpers shared by the files of mime/: cleaning of decoded header values
 * for display, and the names of the MIME_F_* flags.
 *
 * Data flow: mime_parse uses these on what GMime decoded from a hostile
 * message; mime_child uses them again in the parent on what the child sent,
 * so a compromised child still cannot hand the caller invalid UTF-8 or
 * control characters. Trusts nothing it is given. Follows RFC 3629 (UTF-8).
 */
#include "mime/mime.h"

#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/utf8.h"

/* Characters never shown as such in a header value: controls and the
 * bidirectional overrides/isolates that can disguise text (U+202E). */
static int text_is_hidden(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0x2028 || cp == 0x2029;
}

uint32_t mime_text_clean(const char *in, size_t inlen, size_t outmax, struct buf *out)
{
    static const unsigned char replacement[] = {0xef, 0xbf, 0xbd}; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)in;
    uint32_t flags = 0;
    size_t start = out->len;
    int pending_space = 0;

    for (size_t i = 0; i < inlen;) {
        uint32_t cp;
        const unsigned char *seq = p + i;
        size_t len = utf8_decode(p + i, inlen - i, &cp);
        if (len == 0) { /* skip one byte, show U+FFFD */
            flags |= MIME_F_BAD_CHARSET;
            i++;
            seq = replacement;
            len = sizeof(replacement);
            cp = 0xfffd;
        } else {
            i += len;
        }
        if (cp == ' ' || text_is_hidden(cp)) {
            pending_space = out->len > start;
            continue;
        }
        size_t need = len + (pending_space ? 1 : 0);
        if (out->len - start + need > outmax) {
            flags |= MIME_F_HEADER_LIMIT;
            break;
        }
        if ((pending_space && buf_putc(out, ' ') != 0) || buf_append(out, seq, len) != 0) {
            flags |= MIME_F_HEADER_LIMIT;
            break;
        }
        pending_space = 0;
    }
    return flags;
}

void mime_flags_format(uint32_t flags, char *out, size_t outsz)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {MIME_F_PARSER_FAILED, "parser_failed"}, {MIME_F_TOO_MANY_PARTS, "too_many_parts"},
        {MIME_F_TOO_DEEP, "too_deep"},           {MIME_F_NO_BOUNDARY, "no_boundary"},
        {MIME_F_BAD_ENCODING, "bad_encoding"},   {MIME_F_BAD_CHARSET, "bad_charset"},
        {MIME_F_HEADER_LIMIT, "header_limit"},   {MIME_F_NAME_CHANGED, "name_changed"},
        {MIME_F_NOT_MIME, "not_mime"},
    };
    size_t used = 0;
    uint32_t known = 0;

    if (outsz == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        known |= names[i].bit;
        if (!(flags & names[i].bit))
            continue;
        int n = snprintf(out + used, outsz - used, "%s%s", used ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= outsz - used)
            return; /* cut: the buffer was too small */
        used += (size_t)n;
    }
    if (flags & ~known)
        snprintf(out + used, outsz - used, "%s0x%x", used ? "," : "", flags & ~known);
}
