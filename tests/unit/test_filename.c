/*
 * test_filename — mime_filename_clean and mime_nameset (RULES.md 7):
 * table-driven; each case says what it got and what it wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime/mime.h"
#include "lib/utf8.h"

struct clean_case {
    const char *what;
    const char *in;
    size_t inlen; /* 0: strlen(in) */
    const char *want;
    int changed;
};

static const struct clean_case clean_cases[] = {
    /* ordinary names stay exactly as they are */
    {"ascii", "report.pdf", 0, "report.pdf", 0},
    {"umlauts",
     "\xc3\x9c"
     "berweisung M\xc3\xa4rz.pdf",
     0,
     "\xc3\x9c"
     "berweisung M\xc3\xa4rz.pdf",
     0},
    {"cjk", "\xe5\xa0\xb1\xe5\x91\x8a.docx", 0, "\xe5\xa0\xb1\xe5\x91\x8a.docx", 0},
    {"spaces and brackets", "Quarterly report (final) v2.xlsx", 0,
     "Quarterly report (final) v2.xlsx", 0},
    {"inner dots", "archive.tar.gz", 0, "archive.tar.gz", 0},
    {"emoji", "\xf0\x9f\x93\x8e clip.png", 0, "\xf0\x9f\x93\x8e clip.png", 0},
    /* traversal and path characters */
    {"dotdot slash", "../../etc/passwd", 0, "_.._etc_passwd", 1},
    {"dotdot backslash", "..\\..\\boot.ini", 0, "_.._boot.ini", 1},
    {"absolute", "/etc/passwd", 0, "_etc_passwd", 1},
    {"drive letter", "C:\\x.txt", 0, "C__x.txt", 1},
    {"specials", "a:b*c?d\"e<f>g|h", 0, "a_b_c_d_e_f_g_h", 1},
    /* control characters */
    {"tab newline", "a\tb\nc.txt", 0, "a_b_c.txt", 1},
    {"del", "a\x7f.txt", 0, "a_.txt", 1},
    {"c1 control", "a\xc2\x85.txt", 0, "a_.txt", 1},
    {"escape", "\x1b[31mred.txt", 0, "_[31mred.txt", 1},
    /* bidi overrides, embeddings, isolates, marks */
    {"rlo U+202E",
     "invoice\xe2\x80\xae"
     "fdp.exe",
     0, "invoice_fdp.exe", 1},
    {"lre U+202A",
     "\xe2\x80\xaa"
     "a.txt",
     0, "_a.txt", 1},
    {"isolates U+2066/9",
     "\xe2\x81\xa6"
     "x\xe2\x81\xa9.txt",
     0, "_x_.txt", 1},
    {"rlm U+200F", "a\xe2\x80\x8f.txt", 0, "a_.txt", 1},
    /* reserved device names */
    {"CON", "CON", 0, "_CON", 1},
    {"con.txt", "con.txt", 0, "_con.txt", 1},
    {"Com1.tar.gz", "Com1.tar.gz", 0, "_Com1.tar.gz", 1},
    {"LPT9", "LPT9", 0, "_LPT9", 1},
    {"nul with space", "NUL .txt", 0, "_NUL .txt", 1},
    {"aux", "aux", 0, "_aux", 1},
    {"prn.", "prn.", 0, "_prn", 1},
    {"COM superscript", "COM\xc2\xb9.txt", 0, "_COM\xc2\xb9.txt", 1},
    {"CONSOLE ok", "CONSOLE.txt", 0, "CONSOLE.txt", 0},
    {"COM10 ok", "COM10", 0, "COM10", 0},
    {"aux_file ok", "aux_file.c", 0, "aux_file.c", 0},
    /* NUL inside: stop there, and say so */
    {"nul byte", "evil.exe\0.txt", 13, "evil.exe", 1},
    {"nul first", "\0abc", 4, "attachment", 1},
    /* invalid UTF-8 is dropped */
    {"lone ff",
     "a\xff"
     "b.txt",
     0, "ab.txt", 1},
    {"overlong slash",
     "a\xc0\xaf"
     "b",
     0, "ab", 1},
    {"surrogate",
     "a\xed\xa0\x80"
     "b",
     0, "ab", 1},
    {"truncated at end", "ab\xe2\x82", 0, "ab", 1},
    {"above U+10FFFF",
     "a\xf4\x90\x80\x80"
     "b",
     0, "ab", 1},
    {"latin1 bytes", "r\xe9sum\xe9.txt", 0, "rsum.txt", 1},
    /* dots and spaces at the ends */
    {"leading dot", ".bashrc", 0, "bashrc", 1},
    {"leading dots", "...x", 0, "x", 1},
    {"trailing dot space", "x.txt. . ", 0, "x.txt", 1},
    {"trailing dot", "x.", 0, "x", 1},
    {"leading space kept", " x.txt", 0, " x.txt", 0},
    /* nothing left */
    {"empty", "", 0, "attachment", 1},
    {"only dots", "...", 0, "attachment", 1},
    {"only spaces", "   ", 0, "attachment", 1},
    {"only invalid", "\xff\xfe", 0, "attachment", 1},
};

static void test_clean_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(clean_cases) / sizeof(clean_cases[0]); i++) {
        const struct clean_case *c = &clean_cases[i];
        char out[MIME_NAME_MAX + 1];
        size_t inlen = c->inlen ? c->inlen : strlen(c->in);
        int changed = mime_filename_clean(c->in, inlen, out, sizeof(out));
        if (strcmp(out, c->want) != 0 || changed != c->changed) {
            print_error("%s: got \"%s\" changed=%d, want \"%s\" changed=%d\n", c->what, out,
                        changed, c->want, c->changed);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Checks s is valid UTF-8 (the cut never splits a character). */
static int valid_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

struct long_case {
    const char *what;
    const char *unit; /* repeated */
    size_t repeat;
    const char *ext;
    size_t outsz;
    size_t want_len;
    const char *want_suffix;
};

static const struct long_case long_cases[] = {
    {"ascii keeps extension", "a", 300, ".pdf", MIME_NAME_MAX + 1, 255, "a.pdf"},
    {"two-byte chars cut on a boundary", "\xc3\xa9", 200, ".txt", MIME_NAME_MAX + 1, 254,
     "\xc3\xa9.txt"},
    {"three-byte chars cut on a boundary", "\xe5\xa0\xb1", 100, ".docx", MIME_NAME_MAX + 1, 254,
     "\xe5\xa0\xb1.docx"},
    {"four-byte chars cut on a boundary", "\xf0\x9f\x93\x8e", 80, ".png", MIME_NAME_MAX + 1, 252,
     "\xf0\x9f\x93\x8e.png"},
    {"no extension", "b", 300, "", MIME_NAME_MAX + 1, 255, "bbb"},
    {"overlong extension is not kept", "c", 10,
     ".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     MIME_NAME_MAX + 1, 255, "xxx"},
    {"small buffer keeps extension", "abcdefghijkl", 1, ".txt", 10, 9, "abcde.txt"},
};

static void test_clean_long(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(long_cases) / sizeof(long_cases[0]); i++) {
        const struct long_case *c = &long_cases[i];
        size_t ul = strlen(c->unit), el = strlen(c->ext);
        char *in = malloc(ul * c->repeat + el + 1);
        assert_non_null(in);
        for (size_t k = 0; k < c->repeat; k++)
            memcpy(in + k * ul, c->unit, ul);
        memcpy(in + ul * c->repeat, c->ext, el + 1);
        char out[MIME_NAME_MAX + 1];
        int changed = mime_filename_clean(in, strlen(in), out, c->outsz);
        size_t len = strlen(out), sl = strlen(c->want_suffix);
        if (len != c->want_len || !changed || !valid_utf8(out) || len < sl ||
            strcmp(out + len - sl, c->want_suffix) != 0) {
            print_error("%s: got %zu bytes ending \"%s\" changed=%d valid=%d, want %zu bytes "
                        "ending \"%s\" changed=1 valid=1\n",
                        c->what, len, len > 12 ? out + len - 12 : out, changed, valid_utf8(out),
                        c->want_len, c->want_suffix);
            failures++;
        }
        free(in);
    }
    assert_int_equal(failures, 0);
}

static void test_nameset_sequence(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } seq[] = {
        {"a.pdf", "a.pdf"},
        {"a.pdf", "a (2).pdf"},
        {"A.PDF", "A (3).PDF"},
        {"a (2).pdf", "a (2) (2).pdf"},
        {"noext", "noext"},
        {"noext", "noext (2)"},
        {"b.txt", "b.txt"},
        {"NoExt", "NoExt (3)"},
        {"archive.tar.gz", "archive.tar.gz"},
        {"archive.tar.gz", "archive.tar (2).gz"},
    };
    struct mime_nameset s = {0};
    int failures = 0;
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        char name[MIME_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", seq[i].in);
        mime_nameset_claim(&s, name, sizeof(name));
        if (strcmp(name, seq[i].want) != 0) {
            print_error("claim %zu \"%s\": got \"%s\", want \"%s\"\n", i, seq[i].in, name,
                        seq[i].want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(s.n, sizeof(seq) / sizeof(seq[0]));
    mime_nameset_free(&s);
    assert_int_equal(s.n, 0);
    assert_null(s.names);
}

static void test_nameset_long(void **state)
{
    (void)state;
    struct mime_nameset s = {0};
    char first[MIME_NAME_MAX + 1], name[MIME_NAME_MAX + 1];
    /* 250 bytes of two-byte characters + ".pdf": the suffix forces a cut */
    size_t k = 0;
    while (k + 2 <= MIME_NAME_MAX - 4) {
        memcpy(first + k, "\xc3\xa9", 2);
        k += 2;
    }
    memcpy(first + k, ".pdf", 5);
    memcpy(name, first, sizeof(first));
    mime_nameset_claim(&s, name, sizeof(name));
    assert_string_equal(name, first);
    memcpy(name, first, sizeof(first));
    mime_nameset_claim(&s, name, sizeof(name));
    size_t len = strlen(name);
    if (len > MIME_NAME_MAX || !valid_utf8(name) || len < 8 ||
        strcmp(name + len - 8, " (2).pdf") != 0)
        fail_msg("got %zu bytes ending \"%s\", want at most %d bytes of valid UTF-8 ending "
                 "\" (2).pdf\"",
                 len, len > 8 ? name + len - 8 : name, MIME_NAME_MAX);
    mime_nameset_free(&s);
}

static void test_nameset_many(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct mime_nameset s = {0};
    char name[MIME_NAME_MAX + 1];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "same.txt");
        mime_nameset_claim(&s, name, sizeof(name));
    }
    assert_int_equal(s.n, N);
    char want[64];
    snprintf(want, sizeof(want), "same (%d).txt", N);
    assert_string_equal(name, want);
    /* all distinct, without regard to case */
    for (size_t i = 1; i < s.n; i++)
        assert_string_not_equal(s.names[i - 1], s.names[i]);
    mime_nameset_free(&s);
}

static void test_flags_format(void **state)
{
    (void)state;
    char out[256];
    mime_flags_format(0, out, sizeof(out));
    assert_string_equal(out, "");
    mime_flags_format(MIME_F_PARSER_FAILED | MIME_F_NAME_CHANGED, out, sizeof(out));
    assert_string_equal(out, "parser_failed,name_changed");
    mime_flags_format(MIME_F_NOT_MIME | 0x8000u, out, sizeof(out));
    assert_string_equal(out, "not_mime,0x8000");
    mime_flags_format(0x01ffu, out, 20); /* cut, never overrun */
    assert_true(strlen(out) < 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_table),      cmocka_unit_test(test_clean_long),
        cmocka_unit_test(test_nameset_sequence), cmocka_unit_test(test_nameset_long),
        cmocka_unit_test(test_nameset_many),     cmocka_unit_test(test_flags_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
