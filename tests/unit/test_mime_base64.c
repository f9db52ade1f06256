/*
 * test_mime_base64 — base64 parts through the parse (mime/mime_parse.c:
 * GLib's decoder fed up to the padding, our own check of the encoding):
 *   - random data of every length 0..300 decodes back exactly, unflagged,
 *     whatever the line length;
 *   - the padding split by the parser's read boundary (MIME_CHUNK), as
 *     "=" | "=" and "=" | CRLF "=", still finishes the last quantum;
 *   - data after the padding is not decoded and the part is flagged
 *     bad_encoding; a character outside the alphabet and a cut quantum
 *     are flagged too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct mime_limits lim = {.memory = 256ull << 20,
                                       .cpu_seconds = 5,
                                       .wall_seconds = 10,
                                       .max_parts = 100,
                                       .max_depth = 10,
                                       .header_size = 64 * 1024};

struct got {
    unsigned char *p;
    size_t n;
    int parts;
};

static int s_headers(void *ctx, const struct mime_headers *h)
{
    (void)ctx, (void)h;
    return 0;
}
static int s_begin(void *ctx, enum mime_part_kind k, const char *n, const char *t)
{
    (void)k, (void)n, (void)t;
    ((struct got *)ctx)->parts++;
    return 0;
}
static int s_data(void *ctx, const void *p, size_t n)
{
    struct got *g = ctx;
    g->p = realloc(g->p, g->n + n);
    assert_non_null(g->p);
    memcpy(g->p + g->n, p, n);
    g->n += n;
    return 0;
}
static int s_end(void *ctx)
{
    (void)ctx;
    return 0;
}

/* Parses a message whose one part is an attachment with this base64
 * content; returns the flags, the decoded bytes in *g. */
static uint32_t parse_b64(const char *content, size_t len, struct got *g)
{
    static const char head[] = "From: a@example.org\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: application/octet-stream\r\n"
                               "Content-Disposition: attachment; filename=d.bin\r\n"
                               "Content-Transfer-Encoding: base64\r\n"
                               "\r\n";
    int fd = memfd_create("msg", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, head, sizeof(head) - 1), (ssize_t)(sizeof(head) - 1));
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    struct mime_sink sink = {g, s_headers, s_begin, s_data, s_end, NULL};
    uint32_t flags = mime_parse_inprocess(fd, &lim, &sink);
    close(fd);
    assert_int_equal(g->parts, 1);
    return flags;
}

/* base64 of data with CRLF every line characters. */
static char *encode(const unsigned char *data, size_t n, size_t line, size_t *outlen)
{
    gchar *e = g_base64_encode(data, n);
    size_t el = strlen(e);
    char *out = malloc(el + 2 * (el / line + 2) + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < el; i += line) {
        size_t k = el - i < line ? el - i : line;
        memcpy(out + o, e + i, k);
        o += k;
        out[o++] = '\r';
        out[o++] = '\n';
    }
    g_free(e);
    *outlen = o;
    return out;
}

static void test_roundtrip(void **state)
{
    (void)state;
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 131 + 7);
    static const size_t lines[] = {4, 76, 1000};
    for (size_t l = 0; l < sizeof(lines) / sizeof(lines[0]); l++) {
        for (size_t n = 0; n <= sizeof(data); n++) {
            size_t len;
            char *c = encode(data, n, lines[l], &len);
            struct got g = {0};
            uint32_t flags = parse_b64(c, len, &g);
            if (flags != 0 || g.n != n || (n && memcmp(g.p, data, n) != 0))
                fail_msg("%zu bytes, lines of %zu: flags 0x%x, %zu bytes back", n, lines[l], flags,
                         g.n);
            free(g.p);
            free(c);
        }
    }
}

/* The padding "==" of data (n % 3 == 1) placed so that the parser's read
 * of MIME_CHUNK bytes ends right after the first '=' (with sep between
 * the two). */
static void padding_split(const char *sep)
{
    unsigned char data[3001];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7);
    size_t len;
    char *c = encode(data, sizeof(data), 76, &len);
    char *eq = strchr(c, '=');
    assert_non_null(eq);
    size_t before = (size_t)(eq - c) + 1; /* through the first '=' */
    assert_true(before < MIME_CHUNK);
    /* Blank lines in front (allowed, ignored) move it to the boundary. */
    size_t pad = MIME_CHUNK - before;
    size_t total = pad + before + strlen(sep) + (len - before);
    char *m = malloc(total);
    assert_non_null(m);
    for (size_t i = 0; i < pad; i++)
        m[i] = i % 2 ? '\n' : '\r';
    if (pad % 2)
        m[pad - 1] = ' ';
    memcpy(m + pad, c, before);
    memcpy(m + pad + before, sep, strlen(sep));
    memcpy(m + pad + before + strlen(sep), c + before, len - before);
    struct got g = {0};
    uint32_t flags = parse_b64(m, total, &g);
    assert_int_equal(flags, 0);
    assert_int_equal(g.n, sizeof(data));
    assert_memory_equal(g.p, data, sizeof(data));
    free(g.p);
    free(m);
    free(c);
}

static void test_padding_across_reads(void **state)
{
    (void)state;
    padding_split("");
    padding_split("\r\n");
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"SGVsbG8gd29ybGQ=QUJD\r\n", "Hello world"}, /* data after the padding */
        {"SGVs*bG8=\r\n", "Hello"},                  /* outside the alphabet: skipped */
        {"SGVsbG8gd29ybG\r\n", "Hello wor"},         /* a cut quantum */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct got g = {0};
        uint32_t flags = parse_b64(cases[i].in, strlen(cases[i].in), &g);
        if (!(flags & MIME_F_BAD_ENCODING) || g.n != strlen(cases[i].want) ||
            memcmp(g.p, cases[i].want, g.n) != 0)
            fail_msg("%s: flags 0x%x, got %.*s", cases[i].in, flags, (int)g.n, g.p);
        free(g.p);
    }
}

int main(void)
{
    mime_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_padding_across_reads),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
