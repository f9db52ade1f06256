/*
 * fuzz_smtp — libFuzzer harness for the SMTP session: the real server
 * (smtpd_server_new/start: listener, epoll I/O thread, state machine, DATA
 * reader, worker pool, deliver, the parser child) on a loopback port, fed
 * the input as one client's byte stream in pieces of random size (so that
 * commands, CRLFs and the DATA terminator are split every possible way),
 * while the harness reads the replies.
 *
 * Input: byte 0 seeds the piece sizes (and bit 7 set: pieces of up to 4
 * KiB, else up to 16 bytes); the rest is the stream, after "%R" becomes
 * the Mail-in address of the instance's user (fuzz_net.h), so RCPT and DATA
 * get past "unknown user". The harness waits for the banner first.
 *
 * Checked, besides "no crash, no sanitizer report" in every thread:
 *   - every reply line is "DDD" or "DDD SP text" / "DDD-text", ends in CRLF,
 *     is at most 512 bytes, and is printable ASCII;
 *   - a multi-line reply keeps one code; the first digit is 2..5;
 *   - an enhanced status code (RFC 3463) has the class of the reply;
 *   - the first reply is the 220 banner (or a 421/554 refusal);
 *   - the server answers (or closes) within FUZZ_NET_WAIT_MS, and keeps
 *     accepting connections (the next run connects).
 */
#include "fuzz/fuzz_net.h"

#include <signal.h>
#include <sodium.h>

#include "lib/log.h"
#include "mime/mime.h"
#include "policy/config.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMTP_LINE_MAX 512 /* RFC 5321 4.5.3.1.5, with CRLF */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    fuzz_instance_make(NULL);
    log_open("fuzz_smtp", getenv("FUZZ_LOG") != NULL, 0);
    if (sodium_init() < 0)
        abort();
    mime_global_init();
    struct config *cfg = NULL;
    struct diag d = {0};
    char *err = NULL;
    if (config_load(fuzz_inst.conf, &cfg, &d) != 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.msgs[i]);
        abort();
    }
    if (smtpd_auth_open() < 0)
        abort();
    struct smtpd_server *srv = smtpd_server_new(cfg, &err);
    if (srv == NULL || smtpd_server_start(srv, &err) != 0) {
        fprintf(stderr, "fuzz_smtp: server: %s\n", err ? err : "?");
        abort();
    }
    (void)smtpd_server_port(srv);
    return 0;
}

static void fail(const char *why, const char *r, size_t at)
{
    fprintf(stderr, "fuzz_smtp: %s at reply byte %zu: \"%.200s\"\n", why, at, r + at);
    abort();
}

static void check_replies(const char *r, size_t n)
{
    size_t i = 0;
    int first = 1;
    char multi[4] = "";
    while (i < n) {
        const char *nl = memchr(r + i, '\n', n - i);
        if (nl == NULL)
            fail("reply without line end", r, i);
        size_t len = (size_t)(nl - (r + i)) + 1;
        if (len < 5 || r[i + len - 2] != '\r')
            fail("reply line too short or without CRLF", r, i);
        if (len > SMTP_LINE_MAX)
            fail("reply line longer than 512 bytes", r, i);
        const char *l = r + i;
        if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || l[2] < '0' || l[2] > '9')
            fail("bad reply code", r, i);
        if (len > 5 && l[3] != ' ' && l[3] != '-')
            fail("no SP or '-' after the code", r, i);
        for (size_t k = 0; k < len - 2; k++)
            if ((unsigned char)l[k] < 0x20 || (unsigned char)l[k] > 0x7e)
                fail("control or 8-bit byte in a reply", r, i + k);
        if (multi[0] && memcmp(multi, l, 3) != 0)
            fail("code changes inside a multi-line reply", r, i);
        if (first &&
            !(memcmp(l, "220", 3) == 0 || memcmp(l, "421", 3) == 0 || memcmp(l, "554", 3) == 0))
            fail("first reply is not a banner", r, i);
        /* Enhanced status code: "D.D{1,3}.D{1,3} " right after the code. */
        if (len > 9 && (l[4] == '2' || l[4] == '4' || l[4] == '5') && l[5] == '.' && l[6] >= '0' &&
            l[6] <= '9' && l[4] != l[0] && !(l[0] == '3'))
            fail("enhanced status class differs from the reply code", r, i);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n;
    char *in = fuzz_expand(data + 1, size - 1, &n);
    int s = fuzz_connect(fuzz_smtp_port);
    char *r;
    size_t rlen;
    size_t max_piece = data[0] & 0x80 ? 4096 : 16;
    int rc = fuzz_exchange(s, in, n, data[0] * 2654435761u, max_piece, 1, 0, &r, &rlen);
    close(s);
    if (rc != 0) {
        fprintf(stderr, "fuzz_smtp: no reply and no close for %d ms; replies so far:\n%.2000s\n",
                FUZZ_NET_WAIT_MS, r);
        abort();
    }
    check_replies(r, rlen);
    free(r);
    free(in);
    return 0;
}
