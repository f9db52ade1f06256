/*
 * test_mime_slice — parts handed over as stretches of the message
 * (mime.h part_slice) through a parser child:
 *   - a real child slices a plain body and an identity-encoded
 *     attachment, never a base64 part or a body it had to convert; the
 *     stretch is exactly the part's bytes; a sink without part_slice gets
 *     the same bytes as data (the parent reads them from the message);
 *   - a hostile child (this program again, playing the child from records
 *     the test hands it in SP_TEST_CHILD_RECORDS) is held to the protocol:
 *     a slice past the message's end, one that overflows, a slice after
 *     data or data after a slice, two slices, a slice outside a part or of
 *     the wrong length all end the parse as parser_failed, and the sink
 *     never sees a byte of the bad stretch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/bytes.h"
#include "mime/mime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* What mime_child.c starts a child with, and where its socket is. */
#define CHILD_ARG "--mime-parser-child"
#define CHILD_SOCKET_FD 4
/* Records a fake child sends for each message (hex), see fake_child. */
#define FAKE_ENV "SP_TEST_CHILD_RECORDS"
/* The record types of mime_child.c. */
enum { R_HEADERS = 1, R_BEGIN = 2, R_DATA = 3, R_END = 4, R_FLAGS = 5, R_DONE = 6, R_SLICE = 7 };

static const struct mime_limits lim = {.memory = 256ull << 20,
                                       .cpu_seconds = 5,
                                       .wall_seconds = 10,
                                       .max_parts = 100,
                                       .max_depth = 10,
                                       .header_size = 64 * 1024};

/* ---- the fake child ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Answers every request on its socket with the same records, until the
 * parent closes it. Never returns. */
__attribute__((noreturn)) static void fake_child(const char *hex)
{
    size_t n = strlen(hex) / 2;
    unsigned char *rec = malloc(n ? n : 1);
    if (rec == NULL)
        _exit(70);
    for (size_t i = 0; i < n; i++)
        rec[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    for (;;) {
        unsigned char req[64];
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {req, sizeof(req)};
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = u.buf;
        m.msg_controllen = sizeof(u.buf);
        ssize_t got = recvmsg(CHILD_SOCKET_FD, &m, 0);
        if (got <= 0)
            _exit(0);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        if (c && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof(fd));
            close(fd);
        }
        if (write(CHILD_SOCKET_FD, rec, n) != (ssize_t)n)
            _exit(71);
    }
}

/* ---- records, built here ---- */

struct recs {
    unsigned char b[4096];
    size_t n;
};

static void rec(struct recs *r, unsigned type, const void *p, size_t n)
{
    assert_true(r->n + 5 + n <= sizeof(r->b));
    r->b[r->n] = (unsigned char)type;
    put_u32(r->b + r->n + 1, (uint32_t)n);
    if (n)
        memcpy(r->b + r->n + 5, p, n);
    r->n += 5 + n;
}

static void rec_headers(struct recs *r)
{
    unsigned char h[20];
    for (int i = 0; i < 5; i++)
        put_u32(h + 4 * i, 0xffffffffu); /* no subject, from, ... */
    rec(r, R_HEADERS, h, sizeof(h));
}

static void rec_begin(struct recs *r)
{
    static const unsigned char b[] = {1 /* text */, 0,   8,   'b', 'o', 'd', 'y', '.',
                                      't',          'x', 't', 0,   10,  't', 'e', 'x',
                                      't',          '/', 'p', 'l', 'a', 'i', 'n'};
    rec(r, R_BEGIN, b, sizeof(b));
}

static void rec_slice(struct recs *r, uint64_t off, uint64_t len, size_t reclen)
{
    unsigned char b[17] = {0};
    put_u32(b, (uint32_t)(off >> 32));
    put_u32(b + 4, (uint32_t)off);
    put_u32(b + 8, (uint32_t)(len >> 32));
    put_u32(b + 12, (uint32_t)len);
    rec(r, R_SLICE, b, reclen);
}

static void rec_tail(struct recs *r)
{
    unsigned char f[4] = {0};
    rec(r, R_FLAGS, f, sizeof(f));
    rec(r, R_DONE, NULL, 0);
}

/* ---- the sink ---- */

struct seen {
    int parts, ended, slices;
    uint64_t off, len;
    char data[4096];
    size_t ndata;
};

static int s_headers(void *ctx, const struct mime_headers *h)
{
    (void)ctx, (void)h;
    return 0;
}
static int s_begin(void *ctx, enum mime_part_kind k, const char *n, const char *t)
{
    (void)k, (void)n, (void)t;
    ((struct seen *)ctx)->parts++;
    return 0;
}
static int s_data(void *ctx, const void *p, size_t n)
{
    struct seen *s = ctx;
    assert_true(s->ndata + n <= sizeof(s->data));
    memcpy(s->data + s->ndata, p, n);
    s->ndata += n;
    return 0;
}
static int s_end(void *ctx)
{
    ((struct seen *)ctx)->ended++;
    return 0;
}
static int s_slice(void *ctx, uint64_t off, uint64_t len)
{
    struct seen *s = ctx;
    s->slices++;
    s->off = off;
    s->len = len;
    return 0;
}

/* Parses the len bytes of m in a child; with_slice: the sink takes slices. */
static uint32_t parse(const char *m, size_t len, int with_slice, struct seen *s)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, m, len), (ssize_t)len);
    struct mime_sink sink = {s, s_headers, s_begin, s_data, s_end, with_slice ? s_slice : NULL};
    int err = 0;
    uint32_t flags = mime_parse_isolated(fd, &lim, &sink, &err);
    close(fd);
    assert_int_equal(err, 0);
    mime_pool_close(); /* the next case starts its own child */
    return flags;
}

/* ---- real children ---- */

static const char plain[] = "From: a@example.org\r\n"
                            "Subject: plain\r\n"
                            "\r\n"
                            "line one\r\n"
                            "line two \xc3\xa4\r\n";

static void test_real_plain_body(void **state)
{
    (void)state;
    struct seen s = {0};
    uint32_t flags = parse(plain, sizeof(plain) - 1, 1, &s);
    assert_false(flags & MIME_F_PARSER_FAILED);
    assert_int_equal(s.parts, 1);
    assert_int_equal(s.ended, 1);
    assert_int_equal(s.slices, 1);
    assert_int_equal(s.ndata, 0);
    const char *body = strstr(plain, "\r\n\r\n") + 4;
    assert_int_equal(s.off, (uint64_t)(body - plain));
    assert_int_equal(s.len, strlen(body));

    /* Without part_slice: the same bytes, as data. */
    struct seen d = {0};
    assert_false(parse(plain, sizeof(plain) - 1, 0, &d) & MIME_F_PARSER_FAILED);
    assert_int_equal(d.slices, 0);
    assert_int_equal(d.ndata, strlen(body));
    assert_memory_equal(d.data, body, strlen(body));
}

static const char mixed[] = "From: a@example.org\r\n"
                            "MIME-Version: 1.0\r\n"
                            "Content-Type: multipart/mixed; boundary=b\r\n"
                            "\r\n"
                            "--b\r\n"
                            "Content-Type: text/plain; charset=iso-8859-1\r\n"
                            "\r\n"
                            "caf\xe9\r\n"
                            "--b\r\n"
                            "Content-Type: application/octet-stream\r\n"
                            "Content-Disposition: attachment; filename=a.bin\r\n"
                            "Content-Transfer-Encoding: base64\r\n"
                            "\r\n"
                            "aGVsbG8=\r\n"
                            "--b\r\n"
                            "Content-Type: application/octet-stream\r\n"
                            "Content-Disposition: attachment; filename=b.bin\r\n"
                            "Content-Transfer-Encoding: binary\r\n"
                            "\r\n"
                            "raw\xff\x00"
                            "bytes\r\n"
                            "--b--\r\n";

/* A converted body and a base64 part are data; a binary attachment is a
 * slice of exactly its bytes. */
static void test_real_mixed(void **state)
{
    (void)state;
    struct seen s = {0};
    uint32_t flags = parse(mixed, sizeof(mixed) - 1, 1, &s); /* it holds a NUL */
    assert_false(flags & MIME_F_PARSER_FAILED);
    assert_int_equal(s.parts, 3);
    assert_int_equal(s.slices, 1);
    /* Latin-1 made UTF-8, base64 decoded (the line end before a boundary is
     * the boundary's) */
    static const char want_data[] = "caf\xc3\xa9hello";
    assert_int_equal(s.ndata, sizeof(want_data) - 1);
    assert_memory_equal(s.data, want_data, sizeof(want_data) - 1);
    static const char raw[] = "raw\xff\x00"
                              "bytes";
    assert_int_equal(s.len, sizeof(raw) - 1);
    assert_true(s.off + s.len <= sizeof(mixed) - 1);
    assert_memory_equal(mixed + s.off, raw, sizeof(raw) - 1);
}

/* ---- a hostile child ---- */

static const char msg20[] = "0123456789abcdefghij"; /* the message: 20 bytes */

/* Runs one parse against a fake child sending r; returns its flags. */
static uint32_t fake_parse(const struct recs *r, int with_slice, struct seen *s)
{
    char *hex = malloc(2 * r->n + 1);
    assert_non_null(hex);
    for (size_t i = 0; i < r->n; i++)
        snprintf(hex + 2 * i, 3, "%02x", r->b[i]);
    assert_int_equal(setenv(FAKE_ENV, hex, 1), 0);
    free(hex);
    uint32_t flags = parse(msg20, sizeof(msg20) - 1, with_slice, s);
    unsetenv(FAKE_ENV);
    return flags;
}

static void test_fake_good_slice(void **state)
{
    (void)state;
    struct recs r = {0};
    rec_headers(&r);
    rec_begin(&r);
    rec_slice(&r, 10, 10, 16); /* the last ten bytes: allowed */
    rec(&r, R_END, NULL, 0);
    rec_tail(&r);
    struct seen s = {0};
    assert_false(fake_parse(&r, 1, &s) & MIME_F_PARSER_FAILED);
    assert_int_equal(s.slices, 1);
    assert_int_equal(s.off, 10);
    assert_int_equal(s.len, 10);
    struct seen d = {0};
    assert_false(fake_parse(&r, 0, &d) & MIME_F_PARSER_FAILED);
    assert_int_equal(d.ndata, 10);
    assert_memory_equal(d.data, "abcdefghij", 10);
}

static void test_fake_bad_slices(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint64_t off, len;
        size_t reclen;
        int data_before, data_after, twice, outside;
    } cases[] = {
        {"past the end", 18, 3, 16, 0, 0, 0, 0},
        {"starts past the end", 21, 0, 16, 0, 0, 0, 0},
        {"overflows", 1, UINT64_MAX, 16, 0, 0, 0, 0},
        {"huge offset", UINT64_MAX, 1, 16, 0, 0, 0, 0},
        {"after data", 0, 2, 16, 1, 0, 0, 0},
        {"before data", 0, 2, 16, 0, 1, 0, 0},
        {"twice", 0, 2, 16, 0, 0, 1, 0},
        {"outside a part", 0, 2, 16, 0, 0, 0, 1},
        {"short record", 0, 2, 15, 0, 0, 0, 0},
        {"long record", 0, 2, 17, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int with_slice = 0; with_slice <= 1; with_slice++) {
            struct recs r = {0};
            rec_headers(&r);
            if (cases[i].outside)
                rec_slice(&r, cases[i].off, cases[i].len, cases[i].reclen);
            rec_begin(&r);
            if (cases[i].data_before)
                rec(&r, R_DATA, "XY", 2);
            if (!cases[i].outside)
                rec_slice(&r, cases[i].off, cases[i].len, cases[i].reclen);
            if (cases[i].twice)
                rec_slice(&r, cases[i].off, cases[i].len, cases[i].reclen);
            if (cases[i].data_after)
                rec(&r, R_DATA, "XY", 2);
            rec(&r, R_END, NULL, 0);
            rec_tail(&r);
            struct seen s = {0};
            uint32_t flags = fake_parse(&r, with_slice, &s);
            if (!(flags & MIME_F_PARSER_FAILED))
                fail_msg("slice %s (sink %s slices): not refused", cases[i].what,
                         with_slice ? "takes" : "without");
            /* Nothing of a refused slice reached the sink: only the data
             * sent before it, or before the slice that broke the rules. */
            size_t want = cases[i].data_before ? 2 : 0;
            if (cases[i].twice || cases[i].data_after)
                want = with_slice ? 0 : 2;
            if (s.ndata != want || (want && memcmp(s.data, cases[i].data_before ? "XY" : "01", 2)))
                fail_msg("slice %s (sink %s slices): the sink got %zu bytes", cases[i].what,
                         with_slice ? "takes" : "without", s.ndata);
            assert_int_equal(s.ended, s.parts); /* the contract: an open part is ended */
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], CHILD_ARG) == 0 && getenv(FAKE_ENV) != NULL)
        fake_child(getenv(FAKE_ENV));
    mime_child_entry(argc, argv); /* a real parser child never comes back */
    mime_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_plain_body),
        cmocka_unit_test(test_real_mixed),
        cmocka_unit_test(test_fake_good_slice),
        cmocka_unit_test(test_fake_bad_slices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
