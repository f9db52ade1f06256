/*
 * test_keys — key pair wrapping under password and recovery code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/keys.h"
#include "lib/rand.h"

#include <sodium.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void test_wrap_roundtrip(void **state)
{
    (void)state;
    unsigned char pk[KEYS_PK_BYTES];
    unsigned char *sk = sodium_malloc(KEYS_SK_BYTES), *out = sodium_malloc(KEYS_SK_BYTES);
    unsigned char rec[KEYS_WRAP_BYTES];
    keys_pair_new(pk, sk);
    assert_int_equal(keys_wrap(sk, "correct horse", 13, KEYS_KDF_INTERACTIVE, rec), 0);
    assert_memory_equal(rec, KEYS_WRAP_MAGIC, 4);
    assert_int_equal(keys_unwrap(rec, sizeof(rec), "correct horse", 13, out), KEYS_OK);
    assert_memory_equal(out, sk, KEYS_SK_BYTES);
    assert_true(keys_match(pk, out));
    /* Wrong secret, one letter off. */
    assert_int_equal(keys_unwrap(rec, sizeof(rec), "correct horsf", 13, out), KEYS_WRONG_SECRET);
    sodium_free(sk);
    sodium_free(out);
}

static void test_wrap_tamper(void **state)
{
    (void)state;
    unsigned char pk[KEYS_PK_BYTES];
    unsigned char *sk = sodium_malloc(KEYS_SK_BYTES), *out = sodium_malloc(KEYS_SK_BYTES);
    unsigned char rec[KEYS_WRAP_BYTES], bad[KEYS_WRAP_BYTES];
    keys_pair_new(pk, sk);
    assert_int_equal(keys_wrap(sk, "pw-123456", 9, KEYS_KDF_INTERACTIVE, rec), 0);
    /* Every byte of salt, nonce and ciphertext is authenticated. */
    size_t probes[] = {22, 30, 38, 46, 60, KEYS_WRAP_BYTES - 1, KEYS_WRAP_HEADER_BYTES + 3};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        memcpy(bad, rec, sizeof(rec));
        bad[probes[i]] ^= 0x01;
        int r = keys_unwrap(bad, sizeof(bad), "pw-123456", 9, out);
        if (r != KEYS_WRONG_SECRET)
            fail_msg("flip at byte %zu: got %d, want %d", probes[i], r, KEYS_WRONG_SECRET);
    }
    /* Header fields that are checked before any work. */
    struct {
        size_t off;
        unsigned char val;
    } fmt[] = {{0, 'X'}, {4, 2}, {5, 9}, {6, 0xff}, {14, 0xff}};
    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        memcpy(bad, rec, sizeof(rec));
        bad[fmt[i].off] = fmt[i].val;
        int r = keys_unwrap(bad, sizeof(bad), "pw-123456", 9, out);
        if (r != KEYS_BAD_FORMAT)
            fail_msg("byte %zu=%u: got %d, want %d", fmt[i].off, fmt[i].val, r, KEYS_BAD_FORMAT);
    }
    assert_int_equal(keys_unwrap(rec, sizeof(rec) - 1, "pw-123456", 9, out), KEYS_BAD_FORMAT);
    sodium_free(sk);
    sodium_free(out);
}

static void test_recovery_code(void **state)
{
    (void)state;
    char code[KEYS_RECOVERY_LEN + 1], norm[KEYS_RECOVERY_LEN + 1];
    keys_recovery_code_new(code);
    assert_int_equal(strlen(code), KEYS_RECOVERY_LEN);
    for (size_t i = 0; i < KEYS_RECOVERY_LEN; i++)
        assert_non_null(strchr(RAND_ALPHA_UPPER, code[i]));
    assert_int_equal(keys_recovery_code_normalise(code, norm), 0);
    assert_string_equal(norm, code);
    /* Typed with dashes, spaces and lower case. */
    char typed[80];
    size_t o = 0;
    for (size_t i = 0; i < KEYS_RECOVERY_LEN; i++) {
        if (i && i % 6 == 0)
            typed[o++] = i % 12 ? ' ' : '-';
        typed[o++] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] - 'A' + 'a' : code[i]);
    }
    typed[o] = '\0';
    assert_int_equal(keys_recovery_code_normalise(typed, norm), 0);
    assert_string_equal(norm, code);
    struct {
        const char *in;
        int want;
    } cases[] = {
        {"", -1},
        {"ABC", -1},
        {"ABCDEFGHJKLMNPQRSTUVWXYZ23456789ABCD", 0},
        {"ABCDEFGHJKLMNPQRSTUVWXYZ23456789ABCDE", -1}, /* 37 */
        {"0BCDEFGHJKLMNPQRSTUVWXYZ23456789ABCD", -1},  /* 0 is not in the alphabet */
        {"IBCDEFGHJKLMNPQRSTUVWXYZ23456789ABCD", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = keys_recovery_code_normalise(cases[i].in, norm);
        if (got != cases[i].want)
            fail_msg("normalise(\"%s\"): got %d, want %d", cases[i].in, got, cases[i].want);
    }
}

static void test_kdf_names(void **state)
{
    (void)state;
    enum keys_kdf k;
    assert_int_equal(keys_kdf_parse("interactive", &k), 0);
    assert_int_equal(k, KEYS_KDF_INTERACTIVE);
    assert_int_equal(keys_kdf_parse("moderate", &k), 0);
    assert_int_equal(k, KEYS_KDF_MODERATE);
    assert_int_equal(keys_kdf_parse("fast", &k), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap_roundtrip),
        cmocka_unit_test(test_wrap_tamper),
        cmocka_unit_test(test_recovery_code),
        cmocka_unit_test(test_kdf_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
