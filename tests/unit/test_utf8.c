/*
 * test_utf8 — lib/utf8: which byte strings are UTF-8 (RFC 3629 section 4
 * and its Table 3-7 edge cases) and what utf8_repair makes of those that
 * are not. Table-driven; a failing row prints its input in hex.
 */
#include "lib/utf8.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void hex(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *s && o + 3 < outsz; s++)
        o += (size_t)snprintf(out + o, outsz - o, "%02x", (unsigned char)*s);
    out[o] = '\0';
}

static const struct {
    const char *in;
    int valid;
    const char *repaired;
} cases[] = {
    {"", 1, ""},
    {"plain ascii", 1, "plain ascii"},
    {"\xc3\xbc", 1, "\xc3\xbc"},                                 /* U+00FC */
    {"\xe2\x82\xac", 1, "\xe2\x82\xac"},                         /* U+20AC */
    {"\xf0\x9f\x98\x80", 1, "\xf0\x9f\x98\x80"},                 /* U+1F600 */
    {"\xf4\x8f\xbf\xbf", 1, "\xf4\x8f\xbf\xbf"},                 /* U+10FFFF, the last */
    {"a\x85z", 0, "a\xef\xbf\xbdz"},                             /* lone continuation byte */
    {"\xc0\xaf", 0, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
    {"\xe0\x80\xaf", 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
    {"\xed\xa0\x80", 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate D800 */
    {"\xf4\x90\x80\x80", 0,
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* above U+10FFFF */
    {"\xf5", 0, "\xef\xbf\xbd"},
    {"x\xc3", 0, "x\xef\xbf\xbd"}, /* truncated at the end */
    {"\xe2\x82x", 0, "\xef\xbf\xbd\xef\xbf\xbdx"},
};

static void test_utf8_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < N(cases); i++) {
        char h[64];
        hex(cases[i].in, h, sizeof(h));
        int got = utf8_valid(cases[i].in, strlen(cases[i].in));
        if (got != cases[i].valid) {
            print_error("utf8_valid(%s): got %d, want %d\n", h, got, cases[i].valid);
            bad++;
        }
        char *r = utf8_repair(cases[i].in);
        if (strcmp(r, cases[i].repaired) != 0) {
            char hr[64];
            hex(r, hr, sizeof(hr));
            print_error("utf8_repair(%s): got %s\n", h, hr);
            bad++;
        }
        if (!utf8_valid(r, strlen(r))) {
            print_error("utf8_repair(%s) is not valid UTF-8\n", h);
            bad++;
        }
        free(r);
    }
    assert_int_equal(bad, 0);
}

static void test_utf8_decode(void **state)
{
    (void)state;
    uint32_t cp = 0;
    assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20ac);
    /* Never reads past n: a sequence cut by n is invalid. */
    assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 2, &cp), 0);
    assert_int_equal(utf8_decode((const unsigned char *)"A", 0, &cp), 0);
}

/* Each case again inside ASCII runs of every length from 0 to 17 on both
 * sides (NULs among them: ASCII too), so it sits at every offset of the
 * eight-byte steps utf8_valid takes over ASCII; never read past n either
 * (the buffer is exactly n bytes on the heap, so ASan sees an overread). */
static void test_utf8_valid_in_ascii(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < N(cases); i++) {
        size_t len = strlen(cases[i].in);
        for (size_t pre = 0; pre <= 17; pre++) {
            for (size_t post = 0; post <= 17; post++) {
                size_t n = pre + len + post;
                char *b = malloc(n ? n : 1);
                assert_non_null(b);
                for (size_t k = 0; k < pre; k++)
                    b[k] = k % 5 ? 'a' : '\0';
                memcpy(b + pre, cases[i].in, len);
                for (size_t k = 0; k < post; k++)
                    b[pre + len + k] = k % 3 ? 'z' : '\0';
                if ((int)utf8_valid(b, n) != cases[i].valid) {
                    char h[64];
                    hex(cases[i].in, h, sizeof(h));
                    print_error("utf8_valid(%zu ASCII + %s + %zu ASCII): got %d\n", pre, h, post,
                                !cases[i].valid);
                    bad++;
                }
                free(b);
            }
        }
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_cases),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_utf8_valid_in_ascii),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
