/*
 * test_outbound_compose — the notification mail composer (mime/mime_compose):
 * header injection attempts through the subject and the display name never
 * produce a header line of their own; encoded words round-trip through an
 * independent parse (GMime's parser); text cleaning and address checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime_compose.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct mime_compose_in base(void)
{
    struct mime_compose_in in = {
        .from_addr = "notify@example.org",
        .from_name = "sealpost",
        .to_addr = "bob@example.net",
        .subject = "A file for you",
        .text = "Open https://send.example/s/abc\n",
        .html = "<p>Open</p>",
        .message_id = "q1@example.org",
        .date = 1700000000,
    };
    return in;
}

/* The header block of msg, as a copy. */
static char *head_of(const char *msg)
{
    const char *e = strstr(msg, "\r\n\r\n");
    assert_non_null(e);
    size_t n = (size_t)(e - msg) + 2;
    char *h = malloc(n + 1);
    memcpy(h, msg, n);
    h[n] = '\0';
    return h;
}

/* Number of header fields named name (case-insensitive) in the header block. */
static int count_field(const char *head, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *p = head; *p;) {
        if (strncasecmp(p, name, len) == 0 && p[len] == ':')
            n++;
        const char *nl = strstr(p, "\r\n");
        if (nl == NULL)
            break;
        p = nl + 2;
    }
    return n;
}

/* Every line of the header block ends in CRLF, no bare CR/LF, 7-bit. */
static void assert_clean_head(const char *head)
{
    for (const char *p = head; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r')
            assert_true(p[1] == '\n');
        else if (c == '\n')
            assert_true(p > head && p[-1] == '\r');
        else
            assert_true((c >= 0x20 && c < 0x7f) || c == '\t');
    }
}

/* Undoes folding that GMime's parser leaves in a display name: each line
 * break with the whitespace after it stands for the one space it replaced. */
static char *unfold(const char *v)
{
    char *out = malloc(strlen(v) + 1), *o = out;
    for (const char *p = v; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            while (p[1] == '\r' || p[1] == '\n' || p[1] == ' ' || p[1] == '\t')
                p++;
            *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* Parses msg with GMime and returns the decoded subject and From display name. */
/* do_unfold: only for long values GMime folds; the injection cases are short
 * and are checked raw, so a decoded line break cannot hide. */
static void parse_back(const char *msg, size_t len, char **subject, char **name, char **addr,
                       bool do_unfold)
{
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(msg, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    assert_non_null(m);
    const char *subj = g_mime_message_get_subject(m);
    *subject = do_unfold ? unfold(subj ? subj : "") : strdup(subj ? subj : "");
    InternetAddressList *from = g_mime_message_get_from(m);
    assert_int_equal(internet_address_list_length(from), 1);
    InternetAddress *a = internet_address_list_get_address(from, 0);
    const char *n = internet_address_get_name(a);
    *name = do_unfold ? unfold(n ? n : "") : strdup(n ? n : "");
    *addr = strdup(internet_address_mailbox_get_addr((InternetAddressMailbox *)a));
    g_object_unref(m);
    g_object_unref(p);
    g_object_unref(s);
}

static const struct {
    const char *subject;
    const char *name;
} injections[] = {
    {"hi\r\nBcc: victim@evil.example", "Eve"},
    {"hi\nBcc: victim@evil.example", "Eve\r\nX-Injected: 1"},
    {"hi\rBcc: victim@evil.example", "Eve\nTo: other@evil.example"},
    {"hi\r\n\r\n<body injected>", "Eve\r\n\r\nbody"},
    {"=?utf-8?q?a=0D=0ABcc:_victim@evil.example?=", "=?utf-8?q?x=0D=0ABcc:_y@z?="},
    {"\xe2\x80\xa8"
     "Bcc: victim@evil.example",
     "\xc2\x85"
     "Bcc: y@z"},
    {"Gr\xc3\xbc\xc3\x9f"
     "e\r\n Bcc: folded@evil.example",
     "Zo\xc3\xab\t\tSender"},
};

static void test_injection(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(injections) / sizeof(injections[0]); i++) {
        struct mime_compose_in in = base();
        in.subject = injections[i].subject;
        in.from_name = injections[i].name;
        char *msg = NULL;
        size_t len = 0;
        const char *err = NULL;
        assert_int_equal(mime_compose(&in, &msg, &len, &err), 0);
        char *head = head_of(msg);
        assert_clean_head(head);
        int bcc = count_field(head, "Bcc"), xi = count_field(head, "X-Injected"),
            to = count_field(head, "To"), subj = count_field(head, "Subject");
        if (bcc != 0 || xi != 0 || to != 1 || subj != 1)
            fail_msg("case %zu: got Bcc=%d X-Injected=%d To=%d Subject=%d, want 0 0 1 1\n%s", i,
                     bcc, xi, to, subj, head);
        char *s, *n, *a;
        parse_back(msg, len, &s, &n, &a, false);
        if (strchr(s, '\r') || strchr(s, '\n') || strchr(n, '\r') || strchr(n, '\n'))
            fail_msg("case %zu: decoded subject %s / name %s has a line break", i, s, n);
        if (strcmp(a, "notify@example.org") != 0)
            fail_msg("case %zu: From address got %s, want notify@example.org", i, a);
        free(s);
        free(n);
        free(a);
        free(head);
        free(msg);
    }
}

static const char *const roundtrip[] = {
    "Plain ASCII subject",
    "Ein Dokument f\xc3\xbcr Sie",
    "\xe6\x96\x87\xe4\xbb\xb6\xe5\xb7\xb2\xe5\x8f\x91\xe9\x80\x81",
    "=?utf-8?q?looks_encoded?= but is typed text",
    "Emoji \xf0\x9f\x93\x8e attached",
    "A very long subject that goes on and on \xc3\xa9\xc3\xa9 to make GMime fold the "
    "header over more than one line, because it is longer than seventy-eight characters",
};

static void test_encoded_words_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(roundtrip) / sizeof(roundtrip[0]); i++) {
        struct mime_compose_in in = base();
        in.subject = roundtrip[i];
        in.from_name = roundtrip[i];
        char *msg = NULL, *s, *n, *a;
        size_t len = 0;
        const char *err = NULL;
        assert_int_equal(mime_compose(&in, &msg, &len, &err), 0);
        char *head = head_of(msg);
        assert_clean_head(head);
        parse_back(msg, len, &s, &n, &a, true);
        if (strcmp(s, roundtrip[i]) != 0)
            fail_msg("subject: got \"%s\", want \"%s\"", s, roundtrip[i]);
        char *want_name = mime_header_text_clean(roundtrip[i], MIME_COMPOSE_NAME_MAX);
        char *eq = strstr(want_name, "=?");
        if (eq) { /* display names get "= ?" (mime_compose.h) */
            char *w = malloc(strlen(want_name) + 2);
            sprintf(w, "%.*s= %s", (int)(eq - want_name), want_name, eq + 1);
            free(want_name);
            want_name = w;
        }
        if (strcmp(n, want_name) != 0)
            fail_msg("name: got \"%s\", want \"%s\"", n, want_name);
        free(want_name);
        free(s);
        free(n);
        free(a);
        free(head);
        free(msg);
    }
}

static void test_structure(void **state)
{
    (void)state;
    struct mime_compose_in in = base();
    in.reply_to = "alice@example.com";
    char *msg = NULL;
    size_t len = 0;
    const char *err = NULL;
    assert_int_equal(mime_compose(&in, &msg, &len, &err), 0);
    assert_int_equal(strlen(msg), len);
    char *head = head_of(msg);
    static const char *const want[] = {"From",         "To",           "Reply-To",
                                       "Subject",      "Date",         "Message-Id",
                                       "MIME-Version", "Content-Type", "Auto-Submitted"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (count_field(head, want[i]) != 1)
            fail_msg("header %s: got %d, want 1\n%s", want[i], count_field(head, want[i]), head);
    assert_non_null(strstr(head, "multipart/alternative"));
    assert_non_null(strstr(head, "Message-Id: <q1@example.org>"));
    assert_non_null(strstr(head, "Date: Tue, 14 Nov 2023 22:13:20 +0000"));
    const char *plain = strstr(msg, "text/plain"), *html = strstr(msg, "text/html");
    assert_non_null(plain);
    assert_non_null(html);
    assert_true(plain < html); /* RFC 2046 5.1.4: plainest first */
    /* Every line of the whole message ends in CRLF. */
    for (const char *p = msg; *p; p++)
        if (*p == '\n')
            assert_true(p > msg && p[-1] == '\r');
    free(head);
    free(msg);

    in = base();
    in.html = NULL;
    assert_int_equal(mime_compose(&in, &msg, &len, &err), 0);
    assert_null(strstr(msg, "multipart"));
    assert_non_null(strstr(msg, "text/plain"));
    free(msg);
}

static const struct {
    const char *addr;
    bool ok;
} addrs[] = {
    {"bob@example.net", true},
    {"first.last+tag@sub.example.co.uk", true},
    {"bob@localhost", true},
    {"", false},
    {"bob", false},
    {"@example.net", false},
    {"bob@", false},
    {"bob@@example.net", false},
    {"bob@example.net\r\nRCPT TO:<x@y>", false},
    {"<bob@example.net>", false},
    {"bob smith@example.net", false},
    {"\"bob\"@example.net", false},
    {"bob@example.net,eve@evil.example", false},
    {"bob@exa_mple.net", false},
    {"bob@-example.net", false},
    {".bob@example.net", false},
    {"bo..b@example.net", false},
    {"b\xc3\xb6"
     "b@example.net",
     false},
    {"bob@[127.0.0.1]", false},
};

static void test_address_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
        if (mime_address_valid(addrs[i].addr) != addrs[i].ok)
            fail_msg("mime_address_valid(\"%s\"): got %d, want %d", addrs[i].addr, !addrs[i].ok,
                     addrs[i].ok);
    char longaddr[300];
    memset(longaddr, 'a', sizeof(longaddr));
    memcpy(longaddr + 250, "@ex.org", 8);
    assert_false(mime_address_valid(longaddr));
}

static const struct {
    const char *in;
    size_t max;
    const char *want;
} cleans[] = {
    {"plain", 100, "plain"},
    {"  a\r\n\r\n b\t c  ", 100, "a b c"},
    {"bad \xff byte", 100, "bad \xef\xbf\xbd byte"},
    {"overlong \xc0\xaf", 100, "overlong \xef\xbf\xbd\xef\xbf\xbd"},
    {"rlo \xe2\x80\xae"
     "gpj.exe",
     100, "rlo gpj.exe"},
    {"line\xe2\x80\xa8sep", 100, "line sep"},
    {"c1\xc2\x85x", 100, "c1 x"},
    {"\xc3\xa9\xc3\xa9\xc3\xa9", 5, "\xc3\xa9\xc3\xa9"},
    {NULL, 10, ""},
};

static void test_header_text_clean(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cleans) / sizeof(cleans[0]); i++) {
        char *got = mime_header_text_clean(cleans[i].in, cleans[i].max);
        if (strcmp(got, cleans[i].want) != 0)
            fail_msg("clean case %zu: got \"%s\", want \"%s\"", i, got, cleans[i].want);
        free(got);
    }
}

static void test_body_clean(void **state)
{
    (void)state;
    char *b = mime_body_clean("a\r\nb\rc\nd\x01\x7f\te", 100);
    assert_string_equal(b, "a\nb\nc\nd\te");
    free(b);
    assert_null(mime_body_clean("0123456789", 5));
    struct mime_compose_in in = base();
    char *big = malloc(MIME_COMPOSE_BODY_MAX + 2);
    memset(big, 'x', MIME_COMPOSE_BODY_MAX + 1);
    big[MIME_COMPOSE_BODY_MAX + 1] = '\0';
    in.text = big;
    char *msg = NULL;
    size_t len;
    const char *err = NULL;
    assert_int_equal(mime_compose(&in, &msg, &len, &err), -1);
    assert_null(msg);
    assert_string_equal(err, "body too large");
    free(big);
}

static void test_refuses_bad_addresses(void **state)
{
    (void)state;
    const char *err;
    char *msg;
    size_t len;
    struct mime_compose_in in = base();
    in.to_addr = "bob@example.net\r\nBcc: x@y";
    assert_int_equal(mime_compose(&in, &msg, &len, &err), -1);
    in = base();
    in.reply_to = "a@b.c>, <evil@x.y";
    assert_int_equal(mime_compose(&in, &msg, &len, &err), -1);
    in = base();
    in.message_id = "a>\r\nBcc: <x@y";
    assert_int_equal(mime_compose(&in, &msg, &len, &err), -1);
}

int main(void)
{
    g_mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_encoded_words_round_trip),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_address_valid),
        cmocka_unit_test(test_header_text_clean),
        cmocka_unit_test(test_body_clean),
        cmocka_unit_test(test_refuses_bad_addresses),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    g_mime_shutdown();
    return r;
}
