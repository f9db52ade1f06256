/*
 * parse — sizes, durations, booleans, integers (see parse.h). Input is
 * untrusted (config files, API fields); every path is bounded.
 */
#include "lib/parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest accepted number string; longer input cannot be a sane value. */
#define PARSE_NUMBER_MAX 20

static int parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (++n > PARSE_NUMBER_MAX || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    if (n == 0)
        return -1;
    *sp = s;
    *out = v;
    return 0;
}

int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v;
    if (s == NULL || parse_digits(&s, &v) < 0 || *s != '\0')
        return -1;
    *out = v;
    return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mul = 1;
    if (s == NULL || parse_digits(&s, &v) < 0)
        return -1;
    switch (*s) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024ULL;
        s++;
        break;
    case 'm':
    case 'M':
        mul = 1024ULL * 1024;
        s++;
        break;
    case 'g':
    case 'G':
        mul = 1024ULL * 1024 * 1024;
        s++;
        break;
    case 't':
    case 'T':
        mul = 1024ULL * 1024 * 1024 * 1024;
        s++;
        break;
    default:
        return -1;
    }
    if (*s == 'B' || *s == 'b')
        s++;
    if (*s != '\0')
        return -1;
    return scale(v, mul, out);
}

int parse_duration(const char *s, uint64_t *out)
{
    uint64_t v, mul = 1;
    if (s == NULL || parse_digits(&s, &v) < 0)
        return -1;
    switch (*s) {
    case '\0':
        break;
    case 's':
        mul = 1;
        s++;
        break;
    case 'm':
        mul = 60;
        s++;
        break;
    case 'h':
        mul = 3600;
        s++;
        break;
    case 'd':
        mul = 86400;
        s++;
        break;
    case 'w':
        mul = 7 * 86400;
        s++;
        break;
    default:
        return -1;
    }
    if (*s != '\0')
        return -1;
    return scale(v, mul, out);
}

int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

void format_size(uint64_t v, char *out, size_t outsz)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (v && v % 1024 == 0 && u < 3) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, outsz, "%llu", (unsigned long long)v);
    else
        snprintf(out, outsz, "%llu%c", (unsigned long long)v, units[u]);
}

void format_duration(uint64_t secs, char *out, size_t outsz)
{
    if (secs && secs % 86400 == 0)
        snprintf(out, outsz, "%llud", (unsigned long long)(secs / 86400));
    else if (secs && secs % 3600 == 0)
        snprintf(out, outsz, "%lluh", (unsigned long long)(secs / 3600));
    else if (secs && secs % 60 == 0)
        snprintf(out, outsz, "%llum", (unsigned long long)(secs / 60));
    else
        snprintf(out, outsz, "%llus", (unsigned long long)secs);
}
