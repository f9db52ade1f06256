/*
 * test_jsonw — the compact JSON writer writes exactly what jansson's
 * json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) writes for the same
 * document: random documents (nesting, every kind of value, strings of
 * random code points and of random bytes, integers at the edges) are built
 * both ways and compared byte for byte; and misuse (a value without its
 * key, unbalanced containers, too deep, past the cap) gives NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/jsonw.h"
#include "lib/utf8.h"
#include "lib/xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random documents compared. */
#define DOCS 3000
/* Longest random string (code points or bytes). */
#define STR_MAX 40

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(next() % n);
}

/* Appends the UTF-8 of cp to s. */
static size_t put_utf8(unsigned char *s, uint32_t cp)
{
    if (cp < 0x80) {
        s[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (unsigned char)(0xC0 | cp >> 6);
        s[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (unsigned char)(0xE0 | cp >> 12);
        s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    s[0] = (unsigned char)(0xF0 | cp >> 18);
    s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    s[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A random C string: valid UTF-8 of code points from every range that
 * matters (controls, quote, backslash, slash, DEL, BMP, astral), or, one
 * time in four, random bytes (invalid sequences included). */
static char *random_string(void)
{
    unsigned char *s = xmalloc(STR_MAX * 4 + 1);
    size_t n = 0, len = pick(STR_MAX + 1);
    bool bytes = pick(4) == 0;
    for (size_t i = 0; i < len; i++) {
        if (bytes) {
            unsigned char c = (unsigned char)(1 + pick(255));
            s[n++] = c;
            continue;
        }
        static const uint32_t special[] = {'"',    '\\',   '/',     0x7F,    '\b', '\f',
                                           '\n',   '\r',   '\t',    1,       0x1F, 0x80,
                                           0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
        uint32_t cp;
        switch (pick(5)) {
        case 0:
            cp = special[pick(sizeof(special) / sizeof(special[0]))];
            break;
        case 1:
            cp = 0x20 + pick(0x5F);
            break;
        case 2:
            cp = 1 + pick(0x7FF);
            break;
        case 3:
            do
                cp = 0x800 + pick(0x10000 - 0x800);
            while (cp >= 0xD800 && cp <= 0xDFFF);
            break;
        default:
            cp = 0x10000 + pick(0x100000);
            break;
        }
        n += put_utf8(s + n, cp);
    }
    s[n] = '\0';
    return (char *)s;
}

static int64_t random_int(void)
{
    static const int64_t edge[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    if (pick(3) == 0)
        return edge[pick(sizeof(edge) / sizeof(edge[0]))];
    return (int64_t)next() >> pick(64);
}

/* jansson takes valid UTF-8 only: the same repair the writer does. */
static json_t *jansson_string(const char *s)
{
    if (utf8_valid(s, strlen(s)))
        return json_string(s);
    char *fixed = utf8_repair(s);
    json_t *j = json_string(fixed);
    free(fixed);
    return j;
}

/* A random value, written to w and returned as the same jansson value. */
static json_t *random_value(struct jsonw *w, int depth)
{
    unsigned kind = pick(depth < 5 ? 6 : 3);
    if (kind == 0) {
        jsonw_null(w);
        return json_null();
    }
    if (kind == 1) {
        int64_t v = random_int();
        jsonw_int(w, v);
        return json_integer(v);
    }
    if (kind == 2) {
        char *s = random_string();
        jsonw_string(w, s);
        json_t *j = jansson_string(s);
        free(s);
        return j;
    }
    if (kind == 3) {
        json_t *a = json_array();
        jsonw_array_begin(w);
        unsigned n = pick(5);
        for (unsigned i = 0; i < n; i++)
            json_array_append_new(a, random_value(w, depth + 1));
        jsonw_array_end(w);
        return a;
    }
    json_t *o = json_object();
    jsonw_object_begin(w);
    unsigned n = pick(5);
    for (unsigned i = 0; i < n; i++) {
        char *k = random_string();
        /* distinct keys (jansson would replace a repeated one); a key is
         * repaired the same way as a value */
        char *key = xasprintf("%s%u", k, i);
        char *fixed = utf8_valid(key, strlen(key)) ? xstrdup(key) : utf8_repair(key);
        jsonw_key(w, key);
        json_object_set_new(o, fixed, random_value(w, depth + 1));
        free(fixed);
        free(key);
        free(k);
    }
    jsonw_object_end(w);
    return o;
}

static void test_same_as_jansson(void **state)
{
    (void)state;
    for (int d = 0; d < DOCS; d++) {
        struct jsonw w;
        jsonw_init(&w, 0);
        json_t *j = random_value(&w, 0);
        char *ours = jsonw_finish(&w);
        char *theirs = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        assert_non_null(ours);
        assert_non_null(theirs);
        if (strcmp(ours, theirs) != 0)
            fail_msg("document %d:\n ours   %s\n jansson %s", d, ours, theirs);
        /* and it reads back as the same document */
        json_t *back = json_loads(ours, JSON_DECODE_ANY, NULL);
        assert_non_null(back);
        assert_true(json_equal(back, j));
        json_decref(back);
        free(ours);
        free(theirs);
        json_decref(j);
    }
}

static void test_known_text(void **state)
{
    (void)state;
    struct jsonw w;
    jsonw_init(&w, 0);
    jsonw_object_begin(&w);
    jsonw_member_int(&w, "a", -12);
    jsonw_key(&w, "s");
    jsonw_string(&w, "q\"\\/\x01\x7f\xc3\xa9\xf0\x9f\x98\x80\xff");
    jsonw_member_string(&w, "n", NULL);
    jsonw_key(&w, "l");
    jsonw_array_begin(&w);
    jsonw_array_begin(&w);
    jsonw_array_end(&w);
    jsonw_object_begin(&w);
    jsonw_object_end(&w);
    jsonw_null(&w);
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    char *t = jsonw_finish(&w);
    assert_string_equal(
        t, "{\"a\":-12,\"s\":\"q\\\"\\\\/\\u0001\x7f\\u00E9\\uD83D\\uDE00\\uFFFD\",\"n\":null,"
           "\"l\":[[],{},null]}");
    free(t);
}

static void test_misuse(void **state)
{
    (void)state;
    struct jsonw w;
    jsonw_init(&w, 0);
    /* a value in an object without its key */
    jsonw_object_begin(&w);
    jsonw_int(&w, 1);
    jsonw_object_end(&w);
    assert_null(jsonw_finish(&w));
    /* a key in an array */
    jsonw_array_begin(&w);
    jsonw_key(&w, "k");
    jsonw_null(&w);
    jsonw_array_end(&w);
    assert_null(jsonw_finish(&w));
    /* a key without its value */
    jsonw_object_begin(&w);
    jsonw_key(&w, "k");
    jsonw_object_end(&w);
    assert_null(jsonw_finish(&w));
    /* unbalanced, or the wrong closer */
    jsonw_object_begin(&w);
    assert_null(jsonw_finish(&w));
    jsonw_array_begin(&w);
    jsonw_object_end(&w);
    assert_null(jsonw_finish(&w));
    jsonw_array_end(&w);
    assert_null(jsonw_finish(&w));
    /* two top-level values; nothing at all */
    jsonw_null(&w);
    jsonw_null(&w);
    assert_null(jsonw_finish(&w));
    assert_null(jsonw_finish(&w));
    /* too deep */
    for (int i = 0; i <= JSONW_DEPTH_MAX; i++)
        jsonw_array_begin(&w);
    for (int i = 0; i <= JSONW_DEPTH_MAX; i++)
        jsonw_array_end(&w);
    assert_null(jsonw_finish(&w));
    /* deep enough is fine, and w works again after a failure */
    for (int i = 0; i < JSONW_DEPTH_MAX; i++)
        jsonw_array_begin(&w);
    for (int i = 0; i < JSONW_DEPTH_MAX; i++)
        jsonw_array_end(&w);
    char *t = jsonw_finish(&w);
    assert_non_null(t);
    assert_int_equal(strlen(t), 2 * JSONW_DEPTH_MAX);
    free(t);
    /* past the cap */
    struct jsonw c;
    jsonw_init(&c, 8);
    jsonw_string(&c, "12345678");
    assert_null(jsonw_finish(&c));
    jsonw_string(&c, "123456");
    t = jsonw_finish(&c);
    assert_string_equal(t, "\"123456\"");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_jansson),
        cmocka_unit_test(test_known_text),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
