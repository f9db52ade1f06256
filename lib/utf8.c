/*
 * utf8 — strict UTF-8 decoding and checks (RFC 3629 section 4 grammar).
 *
 * Data flow: used on untrusted bytes everywhere text crosses a boundary
 * that demands UTF-8 (SMTP command arguments, decoded MIME headers, JSON
 * metadata). Trusts nothing it is given; never reads past n.
 */
#include "lib/utf8.h"

#include "lib/buf.h"
#include "lib/xalloc.h"

#include <string.h>

size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* The top bit of each of eight bytes: any set means a non-ASCII byte. */
#define UTF8_HIGH_BITS 0x8080808080808080ull

bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        /* ASCII is valid as it is: skip it eight bytes at a time (a text
         * body of a MiB is checked on every delivery). */
        uint64_t w;
        while (n - i >= sizeof(w) && (memcpy(&w, p + i, sizeof(w)), !(w & UTF8_HIGH_BITS)))
            i += sizeof(w);
        if (i >= n)
            break;
        uint32_t cp;
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

char *utf8_repair(const char *s)
{
    static const unsigned char replacement[] = {0xef, 0xbf, 0xbd}; /* U+FFFD */
    size_t n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    /* Worst case: every byte becomes three. */
    char *out = xmalloc(n * sizeof(replacement) + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            memcpy(out + o, replacement, sizeof(replacement));
            o += sizeof(replacement);
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}
