/*
 * mime_filename — sender-supplied attachment names made safe for display
 * and download (RULES.md 7), and made unique within one message.
 *
 * Data flow: mime_parse cleans every name GMime decoded (RFC 2231 / RFC 2047)
 * before a sink sees it; mime_child cleans again in the parent. The vault
 * stores blobs under random ids: these names are never used as paths by us,
 * but a user will save the file under this name on Windows, macOS or Linux,
 * so the name must be harmless on all three.
 *
 * Trust: the input is attacker-controlled bytes of any length. Ordinary
 * names, including non-ASCII ones ("Überweisung März.pdf", "報告.docx"),
 * pass unchanged byte for byte; Unicode normalisation is not touched.
 */
#include "mime/mime.h"
#include "lib/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"

/* An extension longer than this is not kept when a long name is cut. */
#define MIME_NAME_EXT_MAX 32
/* Fallback when nothing usable is left of a name. */
#define MIME_NAME_FALLBACK "attachment"

/* Replaced by '_': path and shell-special characters on some system,
 * controls, and the bidi marks/overrides/isolates that disguise an
 * extension ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf"). */
static int name_char_is_bad(uint32_t cp)
{
    if (cp < 0x80)
        return cp < 0x20 || cp == 0x7f || strchr("/\\:*?\"<>|", (int)cp) != NULL;
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
           cp == 0x2029;
}

/* Length of s[0..len) cut to at most max bytes without splitting UTF-8. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

static size_t strip_trailing(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '.' || s[len - 1] == ' '))
        len--;
    return len;
}

/* Offset of the extension's dot (a dot not at the start, with a short
 * extension after it), or len when there is none. */
static size_t ext_offset(const char *s, size_t len)
{
    for (size_t i = len; i > 1; i--) {
        if (s[i - 1] == '.')
            return len - (i - 1) <= MIME_NAME_EXT_MAX ? i - 1 : len;
    }
    return len;
}

/* Windows device names: CON, PRN, AUX, NUL, COM0-9, LPT0-9 (and the
 * superscript digits Windows also maps), alone or before any extension,
 * in any case, with trailing spaces. */
static int name_is_reserved(const char *s, size_t len)
{
    static const char *const plain[] = {"CON", "PRN", "AUX", "NUL"};
    static const char *const superscripts[] = {"\xc2\xb9", "\xc2\xb2", "\xc2\xb3"};
    size_t stem = 0;
    while (stem < len && s[stem] != '.')
        stem++;
    while (stem > 0 && s[stem - 1] == ' ')
        stem--;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (stem == 3 && strncasecmp(s, plain[i], 3) == 0)
            return 1;
    if (stem >= 4 && (strncasecmp(s, "COM", 3) == 0 || strncasecmp(s, "LPT", 3) == 0)) {
        if (stem == 4 && s[3] >= '0' && s[3] <= '9')
            return 1;
        for (size_t i = 0; i < sizeof(superscripts) / sizeof(superscripts[0]); i++)
            if (stem == 5 && memcmp(s + 3, superscripts[i], 2) == 0)
                return 1;
    }
    return 0;
}

int mime_filename_clean(const char *in, size_t inlen, char *out, size_t outsz)
{
    if (outsz < 2)
        msg_panic("output buffer of %zu bytes", outsz);
    size_t max = outsz - 1 < MIME_NAME_MAX ? outsz - 1 : MIME_NAME_MAX;
    const unsigned char *p = (const unsigned char *)in;
    /* Every step below keeps or shrinks the length, except the '_' before
     * a reserved name: one byte of headroom; and room for the fallback. */
    size_t tmpsz = inlen + 2 > sizeof(MIME_NAME_FALLBACK) ? inlen + 2 : sizeof(MIME_NAME_FALLBACK);
    char *tmp = xmalloc(tmpsz);
    size_t len = 0;

    for (size_t i = 0; i < inlen;) {
        uint32_t cp;
        if (p[i] == '\0')
            break; /* a NUL ends the name: what follows is never shown */
        size_t n = utf8_decode(p + i, inlen - i, &cp);
        if (n == 0) {
            i++; /* invalid UTF-8 is dropped */
            continue;
        }
        if (name_char_is_bad(cp)) {
            tmp[len++] = '_';
        } else {
            memcpy(tmp + len, p + i, n);
            len += n;
        }
        i += n;
    }

    size_t lead = 0;
    while (lead < len && tmp[lead] == '.')
        lead++;
    memmove(tmp, tmp + lead, len - lead);
    len = strip_trailing(tmp, len - lead);

    if (len > 0 && name_is_reserved(tmp, len)) {
        memmove(tmp + 1, tmp, len);
        tmp[0] = '_';
        len++;
    }

    if (len > max) {
        size_t dot = ext_offset(tmp, len);
        size_t extlen = len - dot;
        size_t stem = utf8_cut(tmp, dot, max - extlen);
        memmove(tmp + stem, tmp + dot, extlen);
        len = strip_trailing(tmp, stem + extlen);
    }

    if (len == 0) {
        memcpy(tmp, MIME_NAME_FALLBACK, sizeof(MIME_NAME_FALLBACK) - 1);
        len = utf8_cut(tmp, sizeof(MIME_NAME_FALLBACK) - 1, max);
    }
    memcpy(out, tmp, len);
    out[len] = '\0';
    free(tmp);
    return !(len == inlen && memcmp(out, in, len) == 0);
}

/* FNV-1a over the ASCII-lower-cased name: Windows and macOS compare
 * names without case, so "A.pdf" and "a.pdf" would overwrite each other. */
static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ull;
    }
    return (size_t)h;
}

static int nameset_taken(const struct mime_nameset *s, const char *name)
{
    if (s->nslots == 0)
        return 0;
    for (size_t i = name_hash(name) & (s->nslots - 1);; i = (i + 1) & (s->nslots - 1)) {
        if (s->slots[i] == 0)
            return 0;
        if (strcasecmp(s->names[s->slots[i] - 1], name) == 0)
            return 1;
    }
}

static void nameset_index(struct mime_nameset *s, size_t idx)
{
    size_t i = name_hash(s->names[idx]) & (s->nslots - 1);
    while (s->slots[i] != 0)
        i = (i + 1) & (s->nslots - 1);
    s->slots[i] = idx + 1;
}

static void nameset_add(struct mime_nameset *s, const char *name)
{
    if ((s->n + 1) * 2 > s->nslots) {
        size_t nslots = s->nslots ? s->nslots * 2 : 16;
        free(s->slots);
        s->slots = xcalloc(nslots, sizeof(*s->slots));
        s->nslots = nslots;
        for (size_t i = 0; i < s->n; i++)
            nameset_index(s, i);
    }
    s->names = xrealloc(s->names, (s->n + 1) * sizeof(*s->names));
    s->names[s->n] = xstrdup(name);
    nameset_index(s, s->n);
    s->n++;
}

void mime_nameset_claim(struct mime_nameset *s, char *name, size_t namesz)
{
    if (namesz < 2)
        msg_panic("name buffer of %zu bytes", namesz);
    if (!nameset_taken(s, name)) {
        nameset_add(s, name);
        return;
    }
    size_t max = namesz - 1 < MIME_NAME_MAX ? namesz - 1 : MIME_NAME_MAX;
    size_t len = strlen(name);
    size_t dot = ext_offset(name, len);
    size_t extlen = len - dot;
    char cand[MIME_NAME_MAX + 1];
    /* At most n names are taken, so one of 2 .. n+2 is free. */
    for (size_t k = 2;; k++) {
        char suffix[32];
        int sl = snprintf(suffix, sizeof(suffix), " (%zu)", k);
        size_t room = max > extlen + (size_t)sl ? max - extlen - (size_t)sl : 0;
        size_t stem = utf8_cut(name, dot, room);
        if (stem + (size_t)sl + extlen > max) /* absurdly small buffer */
            msg_panic("no room for a unique name in %zu bytes", namesz);
        memcpy(cand, name, stem);
        memcpy(cand + stem, suffix, (size_t)sl);
        memcpy(cand + stem + sl, name + dot, extlen);
        cand[stem + (size_t)sl + extlen] = '\0';
        if (!nameset_taken(s, cand)) {
            memcpy(name, cand, strlen(cand) + 1);
            nameset_add(s, name);
            return;
        }
    }
}

void mime_nameset_free(struct mime_nameset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    free(s->slots);
    s->names = NULL;
    s->slots = NULL;
    s->n = 0;
    s->nslots = 0;
}
