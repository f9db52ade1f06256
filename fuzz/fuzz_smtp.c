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
 *   - the replies are well formed (fuzz_smtp_reply.h);
 *   - the server answers (or closes) within FUZZ_NET_WAIT_MS, and keeps
 *     accepting connections (the next run connects).
 */
#include "fuzz/fuzz_net.h"
#include "fuzz/fuzz_smtp_reply.h"

#include <signal.h>
#include <sodium.h>

#include "lib/log.h"
#include "mime/mime.h"
#include "policy/config.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct config *cfg = fuzz_net_setup("fuzz_smtp");
    char *err = NULL;
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
    fuzz_smtp_check_replies(r, rlen);
    free(r);
    free(in);
    return 0;
}
