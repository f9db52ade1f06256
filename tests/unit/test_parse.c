/*
 * test_parse — lib/parse: sizes, durations, booleans, unsigned integers and
 * their formatting. Table-driven: each row is input, whether it must parse,
 * and the value; a failure prints "got X, want Y" for the row.
 */
#include "lib/parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ERR (-1)

struct num_case {
    const char *in;
    int rc; /* 0 or ERR */
    uint64_t want;
};

typedef int (*num_fn)(const char *, uint64_t *);

static int run_num_cases(const char *fname, num_fn fn, const struct num_case *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t got = 0xdeadbeef;
        int rc = fn(cases[i].in, &got);
        if (rc != cases[i].rc) {
            print_error("%s(\"%s\"): got rc %d, want %d\n", fname,
                        cases[i].in ? cases[i].in : "NULL", rc, cases[i].rc);
            bad++;
        } else if (rc == 0 && got != cases[i].want) {
            print_error("%s(\"%s\"): got %llu, want %llu\n", fname, cases[i].in,
                        (unsigned long long)got, (unsigned long long)cases[i].want);
            bad++;
        } else if (rc != 0 && got != 0xdeadbeef) {
            print_error("%s(\"%s\"): failed but wrote %llu\n", fname, cases[i].in,
                        (unsigned long long)got);
            bad++;
        }
    }
    return bad;
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct num_case cases[] = {
        {"0", 0, 0},
        {"512", 0, 512},
        {"10K", 0, 10 * 1024ULL},
        {"10k", 0, 10 * 1024ULL},
        {"50M", 0, 50 * 1024ULL * 1024},
        {"2G", 0, 2 * 1024ULL * 1024 * 1024},
        {"1T", 0, 1024ULL * 1024 * 1024 * 1024},
        {"10KB", 0, 10 * 1024ULL},
        {"18446744073709551615", 0, UINT64_MAX},
        {"16777215T", 0, 16777215ULL << 40},
        /* overflow */
        {"18446744073709551616", ERR, 0},
        {"16777216T", ERR, 0},
        {"99999999999999999999K", ERR, 0},
        /* junk */
        {"", ERR, 0},
        {NULL, ERR, 0},
        {" 10K", ERR, 0},
        {"10K ", ERR, 0},
        {"10 K", ERR, 0},
        {"1.5M", ERR, 0},
        {"10X", ERR, 0},
        {"K", ERR, 0},
        {"10KK", ERR, 0},
        {"0x10", ERR, 0},
        {"10MBs", ERR, 0},
        /* signs */
        {"-1", ERR, 0},
        {"+1", ERR, 0},
        {"-0", ERR, 0},
    };
    assert_int_equal(run_num_cases("parse_size", parse_size, cases, N(cases)), 0);
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct num_case cases[] = {
        {"0", 0, 0},
        {"30", 0, 30},
        {"30s", 0, 30},
        {"10m", 0, 600},
        {"24h", 0, 86400},
        {"7d", 0, 7 * 86400},
        {"2w", 0, 14 * 86400},
        {"18446744073709551615s", 0, UINT64_MAX},
        {"307445734561825860m", 0, 307445734561825860ULL * 60},
        /* overflow */
        {"307445734561825861m", ERR, 0},
        {"18446744073709551615m", ERR, 0},
        {"18446744073709551616", ERR, 0},
        /* junk */
        {"", ERR, 0},
        {NULL, ERR, 0},
        {"s", ERR, 0},
        {"10M", ERR, 0}, /* minutes are lower case; M is a size */
        {"1h30m", ERR, 0},
        {"5 s", ERR, 0},
        {" 5s", ERR, 0},
        {"5s ", ERR, 0},
        {"1.5h", ERR, 0},
        {"10y", ERR, 0},
        /* signs */
        {"-5s", ERR, 0},
        {"+5s", ERR, 0},
    };
    assert_int_equal(run_num_cases("parse_duration", parse_duration, cases, N(cases)), 0);
}

static void test_parse_uint(void **state)
{
    (void)state;
    static const struct num_case cases[] = {
        {"0", 0, 0},
        {"42", 0, 42},
        {"007", 0, 7},
        {"4294967296", 0, 4294967296ULL},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", ERR, 0},
        {"99999999999999999999", ERR, 0},
        {"", ERR, 0},
        {NULL, ERR, 0},
        {" 1", ERR, 0},
        {"1 ", ERR, 0},
        {"1K", ERR, 0},
        {"1e3", ERR, 0},
        {"12abc", ERR, 0},
        {"-1", ERR, 0},
        {"+1", ERR, 0},
    };
    assert_int_equal(run_num_cases("parse_uint", parse_uint, cases, N(cases)), 0);
}

static void test_parse_bool(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        bool want;
    } cases[] = {
        {"yes", 0, true},     {"no", 0, false},     {"YES", 0, true},   {"No", 0, false},
        {"true", 0, true},    {"false", 0, false},  {"on", 0, true},    {"off", 0, false},
        {"1", 0, true},       {"0", 0, false},      {"", ERR, false},   {NULL, ERR, false},
        {"y", ERR, false},    {"n", ERR, false},    {"2", ERR, false},  {"yes ", ERR, false},
        {" yes", ERR, false}, {"yess", ERR, false}, {"-1", ERR, false},
    };
    int bad = 0;
    for (size_t i = 0; i < N(cases); i++) {
        bool got = !cases[i].want;
        int rc = parse_bool(cases[i].in, &got);
        if (rc != cases[i].rc) {
            print_error("parse_bool(\"%s\"): got rc %d, want %d\n",
                        cases[i].in ? cases[i].in : "NULL", rc, cases[i].rc);
            bad++;
        } else if (rc == 0 && got != cases[i].want) {
            print_error("parse_bool(\"%s\"): got %d, want %d\n", cases[i].in, got, cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        bool duration;
        uint64_t in;
        const char *want;
    } cases[] = {
        {false, 0, "0"},           {false, 1000, "1000"},        {false, 1024, "1K"},
        {false, 1536, "1536"},     {false, 50ULL << 20, "50M"},  {false, 2ULL << 30, "2G"},
        {false, 1ULL << 40, "1T"}, {false, 1ULL << 50, "1024T"}, {true, 0, "0s"},
        {true, 59, "59s"},         {true, 600, "10m"},           {true, 3660, "61m"},
        {true, 86400, "1d"},       {true, 90000, "25h"},
    };
    int bad = 0;
    for (size_t i = 0; i < N(cases); i++) {
        char got[32];
        if (cases[i].duration)
            format_duration(cases[i].in, got, sizeof(got));
        else
            format_size(cases[i].in, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) {
            print_error("format_%s(%llu): got \"%s\", want \"%s\"\n",
                        cases[i].duration ? "duration" : "size", (unsigned long long)cases[i].in,
                        got, cases[i].want);
            bad++;
        }
        /* What is formatted must parse back to the same value. */
        uint64_t back = 0;
        int rc = cases[i].duration ? parse_duration(got, &back) : parse_size(got, &back);
        if (rc != 0 || back != cases[i].in) {
            print_error("round trip of %llu via \"%s\": got %llu (rc %d)\n",
                        (unsigned long long)cases[i].in, got, (unsigned long long)back, rc);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size), cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_uint), cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
