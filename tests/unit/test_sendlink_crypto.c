/*
 * test_sendlink_crypto — the keys of a send (sendlink_crypto.c): token
 * encoding and parsing, keyed hashes, file-key wrapping by token and code,
 * code normalisation and MACs, sealed recipient; and the field rules of
 * send_fields_check (403 for plan features, 422 naming the field).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/xalloc.h"
#include "sendlink/sendlink_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *ID = "abcdefghjkmnpqrstuvw";

static void test_token(void **state)
{
    (void)state;
    unsigned char raw[SEND_TOKEN_BYTES], back[SEND_TOKEN_BYTES];
    char text[SEND_TOKEN_CHARS + 1];
    send_token_new(raw, text);
    if (strlen(text) != SEND_TOKEN_CHARS)
        fail_msg("token text: got %zu characters, want %d", strlen(text), SEND_TOKEN_CHARS);
    assert_int_equal(send_token_parse(text, back), 0);
    assert_memory_equal(raw, back, sizeof(raw));
    const char *bad[] = {"", "short", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+", NULL};
    for (size_t i = 0; bad[i]; i++)
        if (send_token_parse(bad[i], back) == 0)
            fail_msg("token %s: got accepted, want refused", bad[i]);
    char longer[SEND_TOKEN_CHARS + 2];
    snprintf(longer, sizeof(longer), "%sA", text);
    assert_int_not_equal(send_token_parse(longer, back), 0);
}

static void test_hashes_keyed(void **state)
{
    (void)state;
    unsigned char m1[32], m2[32], raw[SEND_TOKEN_BYTES], h1[32], h2[32], h3[32];
    char text[SEND_TOKEN_CHARS + 1];
    randombytes_buf(m1, sizeof(m1));
    randombytes_buf(m2, sizeof(m2));
    send_token_new(raw, text);
    send_token_hash(m1, raw, h1);
    send_token_hash(m1, raw, h2);
    send_token_hash(m2, raw, h3);
    assert_memory_equal(h1, h2, 32);
    assert_memory_not_equal(h1, h3, 32); /* another master key, another hash */
    send_code_mac(m1, ID, "ABCD2345", h1);
    send_code_mac(m1, "bbcdefghjkmnpqrstuvw", "ABCD2345", h2);
    assert_memory_not_equal(h1, h2, 32); /* bound to the send */
    apikey_hash(m1, "sp_live_x", h1);
    apikey_hash(m2, "sp_live_x", h2);
    assert_memory_not_equal(h1, h2, 32);
}

static void test_wrap(void **state)
{
    (void)state;
    unsigned char raw[SEND_TOKEN_BYTES], other[SEND_TOKEN_BYTES], fk[32], out[32], wk[32];
    unsigned char w[SEND_WRAPPED_BYTES];
    char text[SEND_TOKEN_CHARS + 1];
    send_token_new(raw, text);
    send_token_new(other, text);
    randombytes_buf(fk, sizeof(fk));
    struct {
        const char *wrap_code, *open_code;
        const unsigned char *open_token;
        const char *id;
        int want;
    } cases[] = {
        {NULL, NULL, raw, ID, 0},
        {"ABCD2345", "ABCD2345", raw, ID, 0},
        {"ABCD2345", "ABCD2346", raw, ID, -1},
        {"ABCD2345", NULL, raw, ID, -1},
        {NULL, NULL, other, ID, -1},
        {NULL, NULL, raw, "bbcdefghjkmnpqrstuvw", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        send_wrap_key(raw, cases[i].wrap_code, wk);
        send_key_wrap(wk, ID, fk, w);
        send_wrap_key(cases[i].open_token, cases[i].open_code, wk);
        int got = send_key_unwrap(wk, cases[i].id, w, sizeof(w), out);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
        if (got == 0)
            assert_memory_equal(out, fk, 32);
    }
    send_wrap_key(raw, NULL, wk);
    send_key_wrap(wk, ID, fk, w);
    w[30] ^= 1;
    assert_int_not_equal(send_key_unwrap(wk, ID, w, sizeof(w), out), 0);
    assert_int_not_equal(send_key_unwrap(wk, ID, w, sizeof(w) - 1, out), 0);
}

static void test_code_normalise(void **state)
{
    (void)state;
    struct {
        const char *in, *want; /* want NULL: refused */
    } cases[] = {
        {"abcd2345", "ABCD2345"},
        {"ABCD-2345", "ABCD2345"},
        {" ab cd ", "ABCD"},
        {"ABC!", NULL},
        {"ÄBC", NULL},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[SEND_CODE_MAX + 1];
        int r = send_code_normalise(cases[i].in, out, sizeof(out));
        if (cases[i].want == NULL && r == 0)
            fail_msg("%s: got %s, want refused", cases[i].in, out);
        if (cases[i].want && (r != 0 || strcmp(out, cases[i].want) != 0))
            fail_msg("%s: got %s (%d), want %s", cases[i].in, r ? "refused" : out, r,
                     cases[i].want);
    }
    char out[8];
    assert_int_not_equal(send_code_normalise("ABCDEFGHIJK", out, sizeof(out)), 0);
    char code[13];
    send_code_new(12, code);
    assert_int_equal(strlen(code), 12);
    assert_int_equal(strspn(code, RAND_ALPHA_UPPER), 12);
}

static void test_sealed(void **state)
{
    (void)state;
    unsigned char m1[32], m2[32], *c;
    size_t clen;
    randombytes_buf(m1, sizeof(m1));
    randombytes_buf(m2, sizeof(m2));
    send_secret_seal(m1, ID, "to", "bob@example.org", &c, &clen);
    assert_null(memmem(c, clen, "bob", 3));
    char *p = send_secret_open(m1, ID, "to", c, clen);
    assert_non_null(p);
    assert_string_equal(p, "bob@example.org");
    free(p);
    assert_null(send_secret_open(m2, ID, "to", c, clen));
    assert_null(send_secret_open(m1, ID, "phone", c, clen));
    assert_null(send_secret_open(m1, "bbcdefghjkmnpqrstuvw", "to", c, clen));
    free(c);
}

static void test_fields(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.default_expiry = 7 * 86400;
    cfg.max_expiry = 30 * 86400;
    cfg.min_expiry = 3600;
    cfg.max_downloads = 10;
    cfg.code_length = 8;
    struct plan pro = {
        .name = "pro", .max_file_size = 1 << 20, .mtan = true, .code = true, .choose_expiry = true};
    struct plan free_plan = {.name = "free", .max_file_size = 1 << 20};
    struct {
        const struct plan *plan;
        struct send_fields f;
        int status;
        const char *field;
    } cases[] = {
        {&pro, {.to = "bob@example.org"}, 0, NULL},
        {&pro, {.to = "bob@example.org", .protect = "code"}, 0, NULL},
        {&pro, {.to = "bob@example.org", .code = "ABCD2345"}, 0, NULL},
        {&pro, {.to = "bob@example.org", .expires = "2d", .max_downloads = "10"}, 0, NULL},
        {&pro, {.to = "bob@example.org", .protect = "mtan", .phone = "+41791234567"}, 0, NULL},
        {&free_plan, {.to = "bob@example.org", .protect = "code"}, 403, "protect"},
        {&free_plan, {.to = "bob@example.org", .code = "ABCD2345"}, 403, "protect"},
        {&free_plan, {.to = "bob@example.org", .protect = "mtan"}, 403, "protect"},
        {&free_plan, {.to = "bob@example.org", .expires = "2d"}, 403, "expires"},
        {&pro, {.to = NULL}, 422, "to"},
        {&pro, {.to = "bob"}, 422, "to"},
        {&pro, {.to = "bob@localhost"}, 422, "to"},
        {&pro, {.to = "bob@exa mple.org"}, 422, "to"},
        {&pro, {.to = "bob@example.org\r\nBcc: x@y.z"}, 422, "to"},
        {&pro, {.to = "bob@example.org", .phone = "+0123456789"}, 422, "phone"},
        {&pro, {.to = "bob@example.org", .phone = "+4179"}, 422, "phone"},
        {&pro, {.to = "bob@example.org", .protect = "mtan"}, 422, "phone"},
        {&pro, {.to = "bob@example.org", .protect = "yes"}, 422, "protect"},
        {&pro, {.to = "bob@example.org", .expires = "10m"}, 422, "expires"},
        {&pro, {.to = "bob@example.org", .expires = "31d"}, 422, "expires"},
        {&pro, {.to = "bob@example.org", .max_downloads = "0"}, 422, "max_downloads"},
        {&pro, {.to = "bob@example.org", .max_downloads = "11"}, 422, "max_downloads"},
        {&pro, {.to = "bob@example.org", .max_downloads = "-1"}, 422, "max_downloads"},
        {&pro, {.to = "bob@example.org", .protect = "none", .code = "ABCD2345"}, 422, "code"},
        {&pro, {.to = "bob@example.org", .code = "ABC"}, 422, "code"},
        {&pro, {.to = "bob@example.org", .code = "ABCD_2345"}, 422, "code"},
        {&pro, {.to = "bob@example.org", .message = "bell \a"}, 422, "message"},
        {&pro, {.to = "bob@example.org", .message = "bad \xc3\x28 utf-8"}, 422, "message"},
        {&pro, {.to = "bob@example.org", .message = "Grüße\nfrom Zürich"}, 0, NULL},
        {&pro, {.to = "bob@example.org", .lang = "it"}, 422, "lang"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct send_problem pb = {0};
        int r = send_fields_check(&cfg, cases[i].plan, &cases[i].f, &pb);
        int got = r == 0 ? 0 : pb.status;
        if (got != cases[i].status)
            fail_msg("case %zu: got status %d (%s), want %d", i, got, pb.detail, cases[i].status);
        if (cases[i].field && (pb.field == NULL || strcmp(pb.field, cases[i].field) != 0))
            fail_msg("case %zu: got field %s, want %s", i, pb.field ? pb.field : "(none)",
                     cases[i].field);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),  cmocka_unit_test(test_hashes_keyed),
        cmocka_unit_test(test_wrap),   cmocka_unit_test(test_code_normalise),
        cmocka_unit_test(test_sealed), cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
