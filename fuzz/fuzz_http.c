/*
 * fuzz_http — libFuzzer harness for sendlink's HTTP handling: the real
 * service (sendlink_open, libmicrohttpd, routing, API key check, token
 * paths, forms, multipart uploads, the recipient's page and download) run
 * in this thread (sendlink_start_driven: no listening socket, no threads):
 * each run hands libmicrohttpd one end of a socketpair and feeds the input
 * into the other in pieces of random size, running the service between
 * pieces and reading what it answers. No TCP and no thread hops: thousands
 * of runs per second instead of a few hundred over loopback.
 *
 * Input: byte 0 seeds the piece sizes (bit 7 set: up to 4 KiB, else up to
 * 16 bytes); the rest is the stream, after the placeholders of fuzz_net.h
 * ("%K" API key, "%T" the link token of a send made at start, "%I" its id)
 * are filled in, so the fuzzer gets past 401 and 404.
 *
 * Checked, besides "no crash, no sanitizer report": every response starts
 * with a well-formed status line "HTTP/1.x DDD reason" with DDD in
 * 100..599; a 500 is a finding (nothing a client sends may make the service
 * fail: the fault-injection tests cover the 5xx that disk trouble gives);
 * connections do not pile up (libmicrohttpd lets go of each one once its
 * client has closed); the service keeps answering /healthz with 200
 * (checked every FUZZ_HTTP_ALIVE_EVERY runs). FUZZ_LOG=1 shows the
 * service's log, FUZZ_SHOW=1 its responses.
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

#define FUZZ_HTTP_ALIVE_EVERY 500
#define FUZZ_HTTP_STALLS 200  /* rounds without progress before a run ends */
#define FUZZ_HTTP_SETTLE 3    /* idle rounds that end a phase of a run */
#define FUZZ_HTTP_CONNS_MAX 8 /* connections still open after their runs */

static struct sendlink *sl;
static int show; /* FUZZ_SHOW: print each run's responses */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct config *cfg = fuzz_net_setup("fuzz_http");
    char *err = NULL;
    show = getenv("FUZZ_SHOW") != NULL;
    sl = sendlink_open(cfg, &err);
    if (sl == NULL || sendlink_start_driven(sl, &err) != 0) {
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

static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Reads what the service wrote; returns bytes read, -1 once it closed. */
static long drain(int fd, char **r, size_t *len, size_t *cap)
{
    long total = 0;
    for (;;) {
        if (*cap - *len < 4096) {
            if (*cap >= FUZZ_NET_REPLY_MAX) { /* keep the start, drop the rest */
                char tmp[4096];
                ssize_t m = read(fd, tmp, sizeof(tmp));
                if (m == 0)
                    return -1;
                if (m < 0)
                    return total;
                total += m;
                continue;
            }
            *cap *= 2;
            *r = realloc(*r, *cap);
            if (*r == NULL)
                abort();
        }
        ssize_t m = read(fd, *r + *len, *cap - *len - 1);
        if (m == 0)
            return -1;
        if (m < 0)
            return total; /* EAGAIN */
        *len += (size_t)m;
        total += m;
    }
}

/* One client connection: p[0..n) in pieces, then a half-close; returns
 * what came back (malloc'd, NUL-terminated) in *r. */
static void drive(const char *p, size_t n, uint32_t seed, size_t max_piece, char **r, size_t *rlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    if (sendlink_drive_add(sl, sv[1]) != 0) {
        fprintf(stderr, "fuzz_http: libmicrohttpd refused a connection (%u open)\n",
                sendlink_drive_connections(sl));
        abort();
    }
    size_t cap = 8192, len = 0, off = 0;
    *r = malloc(cap);
    if (*r == NULL)
        abort();
    uint32_t x = seed | 1;
    int closed = 0, stalls = 0;
    while (off < n && !closed && stalls < FUZZ_HTTP_STALLS) {
        size_t piece = 1 + rnd(&x) % max_piece;
        if (piece > n - off)
            piece = n - off;
        ssize_t w = write(sv[0], p + off, piece);
        sendlink_drive_run(sl);
        long got = drain(sv[0], r, &len, &cap);
        closed = got < 0;
        if (w > 0) {
            off += (size_t)w;
            stalls = 0;
        } else if (got <= 0) {
            stalls++; /* the service reads no more: it answered, or waits */
        }
    }
    /* Everything sent: let the service answer what it can (pipelined
     * requests included), then half-close and take the rest. */
    for (int half = 0; half < 2 && !closed; half++) {
        if (half)
            (void)shutdown(sv[0], SHUT_WR);
        for (stalls = 0; !closed && stalls < FUZZ_HTTP_SETTLE;) {
            sendlink_drive_run(sl);
            long got = drain(sv[0], r, &len, &cap);
            closed = got < 0;
            stalls = got > 0 ? 0 : stalls + 1;
        }
    }
    close(sv[0]);
    /* libmicrohttpd notices the closed peer on its next rounds. */
    for (int i = 0; i < 4 && sendlink_drive_connections(sl) > 0; i++)
        sendlink_drive_run(sl);
    if (sendlink_drive_connections(sl) > FUZZ_HTTP_CONNS_MAX) {
        fprintf(stderr, "fuzz_http: %u connections still open after their clients left\n",
                sendlink_drive_connections(sl));
        abort();
    }
    (*r)[len] = '\0';
    *rlen = len;
}

static void check_alive(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *r;
    size_t rlen;
    drive(req, sizeof(req) - 1, 1, 4096, &r, &rlen);
    if (rlen < 12 || memcmp(r, "HTTP/1.1 200", 12) != 0) {
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
    char *r;
    size_t rlen;
    size_t max_piece = data[0] & 0x80 ? 4096 : 16;
    drive(in, n, data[0] * 2654435761u, max_piece, &r, &rlen);
    if (show)
        fprintf(stderr, "%.2000s\n----\n", r);
    check_responses(r, rlen);
    free(r);
    free(in);
    return 0;
}
