/*
 * test_smtpd_data — the SMTP DATA reader and the MAIL/RCPT path parser.
 *
 * Every DATA case is fed three ways (whole, one byte at a time, random
 * chunks) and must give the same verdict, the same stored (unstuffed) bytes
 * and stop consuming right after the real <CRLF>.<CRLF>, so that no byte
 * after it can ever become a second message (RULES.md 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/fsutil.h"
#include "lib/status.h"
#include "lib/xalloc.h"
#include "smtpd/smtpd_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct data_case {
    const char *name;
    const char *in;
    size_t inlen; /* 0: strlen(in) */
    enum sp_status want;
    const char *stored; /* unstuffed message, NULL: not checked (refused) */
    size_t rest;        /* bytes after the real end, left unconsumed */
    uint64_t limit;
    unsigned line_limit;
};

#define S(x) x, sizeof(x) - 1

static const struct data_case data_cases[] = {
    {"plain", S("a\r\nb\r\n.\r\n"), SP_OK, "a\r\nb\r\n", 0, 0, 0},
    {"empty message", S(".\r\n"), SP_OK, "", 0, 0, 0},
    {"dot unstuffing", S("..x\r\n.\r\n"), SP_OK, ".x\r\n", 0, 0, 0},
    {"dot inside a line", S("a.b\r\n.\r\n"), SP_OK, "a.b\r\n", 0, 0, 0},
    {"pipelined command after the end", S("a\r\n.\r\nQUIT\r\n"), SP_OK, "a\r\n", 6, 0, 0},
    {"LF.CRLF is not an end", S("a\n.\r\nb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"LF.LF is not an end", S("a\n.\nMAIL FROM:<x@y>\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"CR.CR is not an end", S("a\r.\rb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"CRLF.LF is not an end", S("a\r\n.\nb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"CRLF.CR is not an end", S("a\r\n.\rb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"bare LF in a line", S("a\nb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"bare CR in a line", S("a\rb\r\n.\r\n"), SP_SMTP_BARE_EOL, NULL, 0, 0, 0},
    {"NUL before the dot", S("a\r\n\0.\r\n.\r\n"), SP_SMTP_NUL, NULL, 0, 0, 0},
    {"NUL in a line", S("a\0b\r\n.\r\n"), SP_SMTP_NUL, NULL, 0, 0, 0},
    {"too big, read to the end", S("0123456789\r\n0123456789\r\n.\r\nX"), SP_TOO_BIG, NULL, 1, 16,
     0},
    {"at the size limit", S("0123456789\r\n.\r\n"), SP_OK, "0123456789\r\n", 0, 12, 0},
    {"line too long", S("0123456789\r\nabc\r\n.\r\n"), SP_SMTP_LINE_TOO_LONG, NULL, 0, 0, 8},
    {"line at the limit", S("012345\r\n.\r\n"), SP_OK, "012345\r\n", 0, 0, 8},
};

/* Feeds in with chunk sizes from fn; returns consumed and leaves d done. */
static size_t feed(struct smtpd_data *d, const char *in, size_t n, int mode, unsigned seed)
{
    size_t off = 0;
    while (off < n && !smtpd_data_done(d)) {
        size_t take = n - off;
        if (mode == 1)
            take = 1;
        else if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            take = 1 + (seed >> 16) % 7;
            if (take > n - off)
                take = n - off;
        }
        size_t used = smtpd_data_push(d, in + off, take);
        off += used;
        if (used < take)
            break; /* stopped at the end */
    }
    return off;
}

static void test_data_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
        const struct data_case *c = &data_cases[i];
        size_t n = c->inlen ? c->inlen : strlen(c->in);
        for (int mode = 0; mode < 3; mode++) {
            int fd = memfd_open("test-data");
            assert_true(fd >= 0);
            struct smtpd_data *d = smtpd_data_new(fd, c->limit, c->line_limit);
            size_t used = feed(d, c->in, n, mode, (unsigned)i + 1);
            if (!smtpd_data_done(d))
                fail_msg("%s (mode %d): not done after %zu of %zu bytes", c->name, mode, used, n);
            if (n - used != c->rest)
                fail_msg("%s (mode %d): got %zu bytes left over, want %zu", c->name, mode, n - used,
                         c->rest);
            enum sp_status v = smtpd_data_verdict(d);
            if (v != c->want)
                fail_msg("%s (mode %d): got %s, want %s", c->name, mode, sp_status_name(v),
                         sp_status_name(c->want));
            if (c->stored) {
                int mfd = smtpd_data_take_fd(d);
                char got[256];
                ssize_t r = pread(mfd, got, sizeof(got), 0);
                size_t want_len = strlen(c->stored);
                if (r != (ssize_t)want_len || memcmp(got, c->stored, want_len) != 0)
                    fail_msg("%s (mode %d): stored %zd bytes, want \"%s\"", c->name, mode, r,
                             c->stored);
                if (smtpd_data_size(d) != want_len)
                    fail_msg("%s (mode %d): size %llu, want %zu", c->name, mode,
                             (unsigned long long)smtpd_data_size(d), want_len);
                close(mfd);
            }
            smtpd_data_free(d);
        }
    }
}

/*
 * Random DATA streams (ordinary lines of every length around the 16-byte
 * scan step, empty lines, dot-stuffed lines, and now and then a bare CR, a
 * bare LF, a NUL or a fake terminator), each fed whole, bytewise and in
 * random chunks under random size and line limits: the bulk path (whole
 * lines at once) and the byte-by-byte state machine must agree on the
 * verdict, the stored bytes and where the message ends.
 */
struct fed {
    size_t used;
    enum sp_status verdict;
    uint64_t size;
    char *stored;
    ssize_t stored_len;
};

static struct fed feed_one(const char *in, size_t n, int mode, unsigned seed, uint64_t limit,
                           unsigned line_limit)
{
    struct fed f = {0};
    int fd = memfd_open("test-data");
    assert_true(fd >= 0);
    struct smtpd_data *d = smtpd_data_new(fd, limit, line_limit);
    f.used = feed(d, in, n, mode, seed);
    assert_true(smtpd_data_done(d));
    f.verdict = smtpd_data_verdict(d);
    f.size = smtpd_data_size(d);
    int mfd = smtpd_data_take_fd(d);
    f.stored = xmalloc(n + 1);
    f.stored_len = pread(mfd, f.stored, n + 1, 0);
    close(mfd);
    smtpd_data_free(d);
    return f;
}

static size_t random_stream(char *out, size_t cap, unsigned *seed)
{
    static const char *const odd[] = {"\r", "\n", "\0", "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n"};
    size_t n = 0;
#define RND() (*seed = *seed * 1103515245u + 12345u, (*seed >> 16) & 0x7fff)
    unsigned lines = 1 + RND() % 60;
    for (unsigned l = 0; l < lines && n + 300 < cap; l++) {
        bool dot = RND() % 8 == 0;
        if (dot)
            out[n++] = '.';
        unsigned len = RND() % 5 == 0 ? RND() % 200 : RND() % 40;
        if (dot && len == 0)
            len = 1; /* a lone dot would be the real end */
        for (unsigned j = 0; j < len; j++)
            out[n++] = (char)('a' + RND() % 26);
        if (RND() % 25 == 0) {
            const char *o = odd[RND() % (sizeof(odd) / sizeof(odd[0]))];
            size_t ol = *o ? strlen(o) : 1;
            memcpy(out + n, o, ol);
            n += ol;
        }
        out[n++] = '\r';
        out[n++] = '\n';
    }
    memcpy(out + n, ".\r\nQUIT\r\n", 9);
#undef RND
    return n + 9;
}

static void test_data_random(void **state)
{
    (void)state;
    enum { CAP = 32 * 1024 };
    char *in = xmalloc(CAP);
    unsigned seed = 20261122u;
    unsigned differ_ok = 0;
    for (unsigned round = 0; round < 3000; round++) {
        size_t n = random_stream(in, CAP, &seed);
        uint64_t limit = round % 3 == 0 ? (seed >> 8) % 4000 : 0;
        unsigned line_limit = round % 4 == 0 ? 20 + (seed >> 4) % 180 : 0;
        struct fed base = feed_one(in, n, 1, round, limit, line_limit);
        differ_ok += base.verdict != SP_OK;
        for (int mode = 0; mode < 3; mode += 2) {
            struct fed f = feed_one(in, n, mode, round * 7u + 3u, limit, line_limit);
            if (f.used != base.used || f.verdict != base.verdict || f.size != base.size ||
                f.stored_len != base.stored_len ||
                memcmp(f.stored, base.stored, (size_t)base.stored_len) != 0)
                fail_msg("round %u (mode %d): used %zu/%zu, verdict %s/%s, size %llu/%llu", round,
                         mode, f.used, base.used, sp_status_name(f.verdict),
                         sp_status_name(base.verdict), (unsigned long long)f.size,
                         (unsigned long long)base.size);
            free(f.stored);
        }
        /* Nothing after the real end is consumed: "QUIT\r\n" stays. */
        if (n - base.used != 6)
            fail_msg("round %u: %zu bytes left after the end, want 6", round, n - base.used);
        free(base.stored);
    }
    /* The streams must exercise refusals as well as clean messages. */
    assert_true(differ_ok > 100 && differ_ok < 2900);
    free(in);
}

struct path_case {
    const char *arg;
    const char *keyword;
    int null_ok;
    enum sp_status want;
    const char *mailbox;
    const char *params;
};

static const struct path_case path_cases[] = {
    {"FROM:<a@example.org>", "FROM:", 1, SP_OK, "a@example.org", ""},
    {"from:<a@example.org> SIZE=100 BODY=8BITMIME", "FROM:", 1, SP_OK, "a@example.org",
     "SIZE=100 BODY=8BITMIME"},
    {"FROM: <a@example.org>", "FROM:", 1, SP_OK, "a@example.org", ""},
    {"FROM:<>", "FROM:", 1, SP_OK, "", ""},
    {"TO:<>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<Postmaster>", "TO:", 0, SP_OK, "Postmaster", ""},
    {"TO:<@relay.example:u@example.org>", "TO:", 0, SP_OK, "u@example.org", ""},
    {"TO:<\"quoted > part\"@example.org>", "TO:", 0, SP_OK, "\"quoted > part\"@example.org", ""},
    {"TO:a@example.org", "TO:", 0, SP_SMTP_SYNTAX, NULL, NULL},
    {"TO:<a@example.org", "TO:", 0, SP_SMTP_SYNTAX, NULL, NULL},
    {"TO:<a@example.org>x", "TO:", 0, SP_SMTP_SYNTAX, NULL, NULL},
    {"TO:<a@@example.org>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<noat>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<a..b@example.org>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<a@-bad.example>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<a@bad-.example>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<a@good-name.example>", "TO:", 0, SP_OK, "a@good-name.example", ""},
    /* SMTPUTF8 paths: UTF-8 passes the syntax check, other 8-bit bytes do not. */
    {"TO:<j\xc3\xbcrgen@b\xc3\xbc"
     "cher.example>",
     "TO:", 0, SP_OK,
     "j\xc3\xbcrgen@b\xc3\xbc"
     "cher.example",
     ""},
    {"FROM:<j\x85rgen@example.org>", "FROM:", 1, SP_BAD_ADDRESS, NULL, NULL},
    {"TO:<a@b\xc3.example>", "TO:", 0, SP_BAD_ADDRESS, NULL, NULL},
    /* 65-character local part: over RFC 5321's 64. */
    {"TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>", "TO:", 0,
     SP_BAD_ADDRESS, NULL, NULL},
};

static void test_path_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        char *mb = NULL;
        const char *params = NULL;
        enum sp_status got = smtpd_path_parse(c->arg, c->keyword, c->null_ok, &mb, &params);
        if (got != c->want)
            fail_msg("%s: got %s, want %s", c->arg, sp_status_name(got), sp_status_name(c->want));
        if (c->mailbox && (mb == NULL || strcmp(mb, c->mailbox) != 0))
            fail_msg("%s: got mailbox \"%s\", want \"%s\"", c->arg, mb ? mb : "(null)", c->mailbox);
        if (c->params && strcmp(params, c->params) != 0)
            fail_msg("%s: got params \"%s\", want \"%s\"", c->arg, params, c->params);
        free(mb);
    }
    /* A path longer than 256 characters. */
    char longpath[400];
    snprintf(longpath, sizeof(longpath), "TO:<a@%0300d.example>", 0);
    char *mb = NULL;
    const char *params = NULL;
    assert_int_equal(smtpd_path_parse(longpath, "TO:", 0, &mb, &params), SP_BAD_ADDRESS);
    free(mb);
}

static void test_helo(void **state)
{
    (void)state;
    assert_true(smtpd_helo_valid("mail.example.org"));
    assert_true(smtpd_helo_valid("[192.0.2.1]"));
    assert_false(smtpd_helo_valid(""));
    assert_false(smtpd_helo_valid("bad name with spaces"));
    /* U-labels (RFC 6531) are UTF-8; any other 8-bit byte is refused
     * (fuzz finding: it reached the metadata record, which must be UTF-8). */
    assert_true(smtpd_helo_valid("m\xc3\xbcller.example"));
    assert_false(smtpd_helo_valid("clien\x85t.example"));
    assert_false(smtpd_helo_valid("overlong\xc0\xaf.example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_cases),
        cmocka_unit_test(test_data_random),
        cmocka_unit_test(test_path_cases),
        cmocka_unit_test(test_helo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
