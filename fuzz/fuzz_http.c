/*
 * fuzz_http — libFuzzer harness for sendlink's HTTP handling: the real
 * service (sendlink_open/start: libmicrohttpd, routing, API key check,
 * token paths, forms, multipart uploads, the recipient's page and
 * download) on a loopback port, fed the input as one client's bytes in
 * pieces of random size.
 *
 * Input: byte 0 seeds the piece sizes (bit 7 set: up to 4 KiB, else up to
 * 16 bytes); the rest is the stream, after the placeholders of fuzz_net.h
 * ("%K" API key, "%T" the link token of a send made at start, "%I" its id)
 * are filled in, so the fuzzer gets past 401 and 404.
 *
 * Checked, besides "no crash, no sanitizer report" in every thread: every
 * response starts with a well-formed status line "HTTP/1.x DDD reason"
 * with DDD in 100..599; a 500 is a finding (nothing a client sends may make
 * the service fail: the fault-injection tests cover the 5xx that disk
 * trouble gives); the service keeps answering /healthz (checked every
 * FUZZ_HTTP_ALIVE_EVERY runs).
 */
#include "fuzz/fuzz_net.h"

#include <signal.h>
#include <sodium.h>

#include "lib/log.h"
#include "mime/mime.h"
#include "policy/config.h"
#include "sendlink/sendlink.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libmicrohttpd keeps a connection after the client's half-close (until
 * http_timeout) when the request is unfinished, or after an answer: this
 * much silence after the last byte ends a run. Liveness is checked instead
 * every FUZZ_HTTP_ALIVE_EVERY runs: GET /healthz must answer 200. */
#define FUZZ_HTTP_IDLE_MS 60
#define FUZZ_HTTP_ALIVE_EVERY 500

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    fuzz_instance_make(NULL);
    log_open("fuzz_http", getenv("FUZZ_LOG") != NULL, 0);
    if (sodium_init() < 0)
        abort();
    mime_global_init();
    struct config *cfg = NULL;
    struct diag d = {0};
    char *err = NULL;
    if (config_load(fuzz_inst.conf, &cfg, &d) != 0)
        abort();
    struct sendlink *sl = sendlink_open(cfg, &err);
    if (sl == NULL || sendlink_start(sl, &err) != 0) {
        fprintf(stderr, "fuzz_http: service: %s\n", err ? err : "?");
        abort();
    }
    if (fuzz_inst.token[0] == '\0' || fuzz_inst.apikey[0] == '\0')
        fprintf(stderr, "fuzz_http: warning: no send or no API key made at start\n");
    return 0;
}

static void check_responses(const char *r, size_t n)
{
    /* Every "HTTP/" at a line start is a status line (bodies are ours:
     * HTML, JSON or the file; the file is "a file to send"). */
    for (size_t i = 0; i < n;) {
        const char *l = r + i;
        if ((i == 0 || r[i - 1] == '\n') && n - i >= 5 && memcmp(l, "HTTP/", 5) == 0) {
            if (n - i < 13 || !(l[5] == '1' && l[6] == '.' && (l[7] == '0' || l[7] == '1')) ||
                l[8] != ' ' || l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
                l[11] < '0' || l[11] > '9' || (l[12] != ' ' && l[12] != '\r')) {
                fprintf(stderr, "fuzz_http: bad status line: \"%.80s\"\n", l);
                abort();
            }
            /* 500: the service failed on what a client sent. (Other 5xx
             * are answers about the request: 501 for the mTAN flow, not
             * built yet (issue 5); 505 from libmicrohttpd for a bad HTTP
             * version; 503 when busy.) */
            if (memcmp(l + 9, "500", 3) == 0) {
                fprintf(stderr, "fuzz_http: server error: \"%.80s\"\n", l);
                abort();
            }
        }
        const char *nl = memchr(l, '\n', n - i);
        i = nl ? (size_t)(nl - r) + 1 : n;
    }
}

static void check_alive(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int s = fuzz_connect(fuzz_http_port);
    char *r;
    size_t rlen;
    int rc = fuzz_exchange(s, req, sizeof(req) - 1, 1, 4096, 0, 0, &r, &rlen);
    close(s);
    if (rc != 0 || rlen < 12 || memcmp(r, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "fuzz_http: the service no longer answers /healthz: \"%.80s\"\n", r);
        abort();
    }
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    if (++runs % FUZZ_HTTP_ALIVE_EVERY == 0)
        check_alive();
    if (size < 1)
        return 0;
    size_t n;
    char *in = fuzz_expand(data + 1, size - 1, &n);
    int s = fuzz_connect(fuzz_http_port);
    char *r;
    size_t rlen;
    size_t max_piece = data[0] & 0x80 ? 4096 : 16;
    int rc =
        fuzz_exchange(s, in, n, data[0] * 2654435761u, max_piece, 0, FUZZ_HTTP_IDLE_MS, &r, &rlen);
    close(s);
    if (rc != 0) {
        fprintf(stderr, "fuzz_http: no response and no close for %d ms:\n%.2000s\n",
                FUZZ_NET_WAIT_MS, r);
        abort();
    }
    check_responses(r, rlen);
    free(r);
    free(in);
    return 0;
}
