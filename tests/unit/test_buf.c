/*
 * test_buf — the capped buffer: appends within the cap, refusals past it
 * (nothing half-appended), printf growth, HTML escaping, log scrubbing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

static void test_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "12345"), 0);
    assert_int_equal(buf_puts(&b, "6789"), -1); /* would pass the cap */
    assert_string_equal(buf_cstr(&b), "12345"); /* unchanged */
    assert_int_equal(buf_puts(&b, "678"), 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(buf_putc(&b, 'x'), -1);
    assert_int_equal(buf_printf(&b, "%d", 1), -1);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
}

static void test_printf_grows(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_printf(&b, "%04d,", i), 0);
    assert_int_equal(b.len, 5000);
    assert_memory_equal(b.data + 4995, "0999,", 5);
    char *s = buf_steal(&b);
    assert_int_equal(strlen(s), 5000);
    assert_null(b.data);
    free(s);
}

static void test_html(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"<script>alert('x')</script>", "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"},
        {"a & \"b\"", "a &amp; &quot;b&quot;"},
        {"Grüße", "Grüße"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(buf_put_html(&b, cases[i].in), 0);
        if (strcmp(buf_cstr(&b), cases[i].want) != 0)
            fail_msg("html(\"%s\"): got \"%s\", want \"%s\"", cases[i].in, buf_cstr(&b),
                     cases[i].want);
        buf_free(&b);
    }
}

static void test_scrub(void **state)
{
    (void)state;
    char out[16];
    assert_string_equal(log_scrub(out, sizeof(out), "ok text", (size_t)-1), "ok text");
    assert_string_equal(log_scrub(out, sizeof(out), "a\r\nb\"c\\", (size_t)-1), "a??b?c?");
    assert_string_equal(log_scrub(out, sizeof(out), "\xc3\xa4", (size_t)-1), "??");
    log_scrub(out, sizeof(out), "0123456789abcdefghij", (size_t)-1);
    assert_int_equal(strlen(out), 15);
    assert_string_equal(out + 12, "...");
    assert_string_equal(log_scrub(out, sizeof(out), "a\0b", 3), "a?b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_printf_grows),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_scrub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
