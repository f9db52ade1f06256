/*
 * fuzz_smtp_reply — the well-formedness check of an SMTP server's replies,
 * shared by the SMTP harnesses (fuzz_smtp.c on the whole daemon,
 * fuzz_session.c on the state machine). Aborts with the offending line:
 *   - every reply line is "DDD" or "DDD SP text" / "DDD-text", ends in CRLF,
 *     is at most 512 bytes, and is printable ASCII;
 *   - a multi-line reply keeps one code; the first digit is 2..5;
 *   - an enhanced status code (RFC 3463) has the class of the reply;
 *   - the first reply is the 220 banner (or a 421/554 refusal).
 * Header-only: each harness is one translation unit.
 */
#ifndef SEALPOST_FUZZ_SMTP_REPLY_H
#define SEALPOST_FUZZ_SMTP_REPLY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_LINE_MAX 512 /* RFC 5321 4.5.3.1.5, with CRLF */

static void fuzz_smtp_fail(const char *why, const char *r, size_t at)
{
    fprintf(stderr, "fuzz: %s at reply byte %zu: \"%.200s\"\n", why, at, r + at);
    abort();
}

static void fuzz_smtp_check_replies(const char *r, size_t n)
{
    size_t i = 0;
    int first = 1;
    char multi[4] = "";
    while (i < n) {
        const char *nl = memchr(r + i, '\n', n - i);
        if (nl == NULL)
            fuzz_smtp_fail("reply without line end", r, i);
        size_t len = (size_t)(nl - (r + i)) + 1;
        if (len < 5 || r[i + len - 2] != '\r')
            fuzz_smtp_fail("reply line too short or without CRLF", r, i);
        if (len > SMTP_LINE_MAX)
            fuzz_smtp_fail("reply line longer than 512 bytes", r, i);
        const char *l = r + i;
        if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || l[2] < '0' || l[2] > '9')
            fuzz_smtp_fail("bad reply code", r, i);
        if (len > 5 && l[3] != ' ' && l[3] != '-')
            fuzz_smtp_fail("no SP or '-' after the code", r, i);
        for (size_t k = 0; k < len - 2; k++)
            if ((unsigned char)l[k] < 0x20 || (unsigned char)l[k] > 0x7e)
                fuzz_smtp_fail("control or 8-bit byte in a reply", r, i + k);
        if (multi[0] && memcmp(multi, l, 3) != 0)
            fuzz_smtp_fail("code changes inside a multi-line reply", r, i);
        if (first &&
            !(memcmp(l, "220", 3) == 0 || memcmp(l, "421", 3) == 0 || memcmp(l, "554", 3) == 0))
            fuzz_smtp_fail("first reply is not a banner", r, i);
        /* Enhanced status code: "D.D{1,3}.D{1,3} " right after the code. */
        if (len > 9 && (l[4] == '2' || l[4] == '4' || l[4] == '5') && l[5] == '.' && l[6] >= '0' &&
            l[6] <= '9' && l[4] != l[0] && !(l[0] == '3'))
            fuzz_smtp_fail("enhanced status class differs from the reply code", r, i);
        if (len > 5 && l[3] == '-') {
            memcpy(multi, l, 3);
            multi[3] = '\0';
        } else {
            multi[0] = '\0';
            first = 0;
        }
        i += len;
    }
}

#endif
