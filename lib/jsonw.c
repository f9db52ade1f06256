/*
 * jsonw — compact ASCII JSON writer (see jsonw.h).
 *
 * Sits at the end of the delivery path (deliver's metadata record, sealed
 * right after). Trusts nothing in the strings it is given: every byte is
 * either copied as printable ASCII, escaped, or replaced.
 */
#include "lib/jsonw.h"

#include "lib/utf8.h"

#include <string.h>

/* U+FFFD, written for each byte that is not part of valid UTF-8. */
#define JSONW_REPLACEMENT 0xFFFDu
/* "\uXXXX" */
#define JSONW_ESCAPE_LEN 6

void jsonw_init(struct jsonw *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    buf_init(&w->b, max);
}

static void put(struct jsonw *w, const void *p, size_t n)
{
    if (!w->failed && buf_append(&w->b, p, n) < 0)
        w->failed = true;
}

/* The separator a value needs where it stands; false when no value may
 * stand here (an object member without its key). */
static bool value_slot(struct jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return true;
    }
    if (w->depth == 0)
        return w->b.len == 0; /* one top-level value */
    if (w->in_object[w->depth - 1])
        return false;
    if (!w->first[w->depth - 1])
        put(w, ",", 1);
    w->first[w->depth - 1] = false;
    return true;
}

static void escape_cp(struct jsonw *w, uint32_t cp)
{
    static const char hex[] = "0123456789ABCDEF"; /* jansson writes upper case */
    char e[JSONW_ESCAPE_LEN] = {'\\', 'u'};
    for (int i = 0; i < 4; i++)
        e[2 + i] = hex[(cp >> (12 - 4 * i)) & 0xf];
    put(w, e, sizeof(e));
}

static void put_string(struct jsonw *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    put(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i; /* printable ASCII that needs no escape, copied at once */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            put(w, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        const char *short_esc = NULL;
        switch (c) {
        case '"':
            short_esc = "\\\"";
            break;
        case '\\':
            short_esc = "\\\\";
            break;
        case '\b':
            short_esc = "\\b";
            break;
        case '\f':
            short_esc = "\\f";
            break;
        case '\n':
            short_esc = "\\n";
            break;
        case '\r':
            short_esc = "\\r";
            break;
        case '\t':
            short_esc = "\\t";
            break;
        default:
            break;
        }
        if (short_esc != NULL) {
            put(w, short_esc, 2);
            i++;
            continue;
        }
        if (c < 0x20) {
            escape_cp(w, c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(p + i, n - i, &cp);
        if (len == 0) {
            cp = JSONW_REPLACEMENT;
            len = 1;
        }
        if (cp > 0xFFFF) { /* a surrogate pair (RFC 8259 7) */
            cp -= 0x10000;
            escape_cp(w, 0xD800 | (cp >> 10));
            escape_cp(w, 0xDC00 | (cp & 0x3FF));
        } else {
            escape_cp(w, cp);
        }
        i += len;
    }
    put(w, "\"", 1);
}

static void open_container(struct jsonw *w, bool object)
{
    if (!value_slot(w) || w->depth == JSONW_DEPTH_MAX) {
        w->failed = true;
        return;
    }
    put(w, object ? "{" : "[", 1);
    w->in_object[w->depth] = object;
    w->first[w->depth] = true;
    w->depth++;
}

static void close_container(struct jsonw *w, bool object)
{
    if (w->depth == 0 || w->in_object[w->depth - 1] != object || w->after_key) {
        w->failed = true;
        return;
    }
    w->depth--;
    put(w, object ? "}" : "]", 1);
}

void jsonw_object_begin(struct jsonw *w)
{
    open_container(w, true);
}

void jsonw_object_end(struct jsonw *w)
{
    close_container(w, true);
}

void jsonw_array_begin(struct jsonw *w)
{
    open_container(w, false);
}

void jsonw_array_end(struct jsonw *w)
{
    close_container(w, false);
}

void jsonw_key(struct jsonw *w, const char *key)
{
    if (w->depth == 0 || !w->in_object[w->depth - 1] || w->after_key) {
        w->failed = true;
        return;
    }
    if (!w->first[w->depth - 1])
        put(w, ",", 1);
    w->first[w->depth - 1] = false;
    put_string(w, key);
    put(w, ":", 1);
    w->after_key = true;
}

void jsonw_string(struct jsonw *w, const char *s)
{
    if (s == NULL) {
        jsonw_null(w);
        return;
    }
    if (!value_slot(w)) {
        w->failed = true;
        return;
    }
    put_string(w, s);
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    if (!value_slot(w)) {
        w->failed = true;
        return;
    }
    char d[24]; /* 19 digits and a sign */
    size_t i = sizeof(d);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        d[--i] = '-';
    put(w, d + i, sizeof(d) - i);
}

void jsonw_null(struct jsonw *w)
{
    if (!value_slot(w)) {
        w->failed = true;
        return;
    }
    put(w, "null", 4);
}

void jsonw_member_string(struct jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    jsonw_string(w, s);
}

void jsonw_member_int(struct jsonw *w, const char *key, int64_t v)
{
    jsonw_key(w, key);
    jsonw_int(w, v);
}

char *jsonw_finish(struct jsonw *w)
{
    char *out = NULL;
    size_t max = w->b.max;
    if (!w->failed && w->depth == 0 && !w->after_key && w->b.len > 0)
        out = buf_steal(&w->b);
    buf_free(&w->b);
    jsonw_init(w, max);
    return out;
}
