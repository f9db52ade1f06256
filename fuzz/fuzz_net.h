/*
 * fuzz_net — what the network harnesses (fuzz_smtp.c, fuzz_http.c) share:
 * a throw-away sealpost instance (config, `init`, a user, an API key, one
 * send) made with the real `sealpost` binary, and a loopback client that
 * sends a byte stream in pieces while it reads the replies.
 *
 * The instance lives in /dev/shm (fsync is free there: the harness is about
 * parsing, not durability) and is removed at exit. The binary is
 * $SEALPOST_BIN, else build/sealpost beside the repository's build-fuzz/.
 * Header-only: each harness is one translation unit.
 */
#ifndef SEALPOST_FUZZ_NET_H
#define SEALPOST_FUZZ_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>
#include <sodium.h>

#include "lib/log.h"
#include "mime/mime.h"
#include "policy/config.h"

#define FUZZ_NET_REPLY_MAX (1u << 20) /* replies kept per run */
#define FUZZ_NET_WAIT_MS 5000         /* a server that says nothing this long: a hang */
#define FUZZ_NET_MARK_MS 250          /* longest wait at a marker for a reply not owed */

struct fuzz_instance {
    char dir[64];
    char conf[96];
    char address[128]; /* the user's Mail-in address */
    char apikey[160];
    char token[128]; /* the link token of one send */
    char send_id[64];
};

static struct fuzz_instance fuzz_inst;

static const char *fuzz_bin(void)
{
    static char path[4096];
    const char *e = getenv("SEALPOST_BIN");
    if (e && *e)
        return e;
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    if (n < 0)
        abort();
    path[n] = '\0';
    /* REPO/build-fuzz/fuzz/fuzz_x -> REPO/build/sealpost */
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(path, '/');
        if (s == NULL)
            abort();
        *s = '\0';
    }
    strcat(path, "/build/sealpost");
    return path;
}

/* Runs "sealpost -c CONF args" with input on stdin; its stdout in out. */
static int fuzz_sealpost(const char *args, const char *input, char *out, size_t outsz)
{
    char cmd[8192], in[128];
    snprintf(in, sizeof(in), "%s/stdin", fuzz_inst.dir);
    FILE *f = fopen(in, "w");
    if (f == NULL)
        return -1;
    fputs(input ? input : "", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' -c '%s' %s <'%s' 2>>'%s/setup.log'", fuzz_bin(),
             fuzz_inst.conf, args, in, fuzz_inst.dir);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

/* The string value of "key" in a small flat JSON document. */
static int fuzz_json_str(const char *doc, const char *key, char *out, size_t outsz)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(doc, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p++ != '"')
        return -1;
    size_t n = strcspn(p, "\"");
    if (n >= outsz)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void fuzz_instance_cleanup(void)
{
    char cmd[128];
    if (getenv("FUZZ_KEEP") == NULL && fuzz_inst.dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fuzz_inst.dir);
        (void)system(cmd);
    }
}

/* A loopback port free right now (the config language wants a real one). */
static int fuzz_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t l = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &l) != 0)
        abort();
    close(s);
    return ntohs(a.sin_port);
}

static int fuzz_smtp_port, fuzz_http_port;

/* Makes the instance; extra is appended to the config. Aborts on failure. */
static void fuzz_instance_make(const char *extra)
{
    snprintf(fuzz_inst.dir, sizeof(fuzz_inst.dir), "/dev/shm/sealpost-fuzz.XXXXXX");
    if (mkdtemp(fuzz_inst.dir) == NULL)
        abort();
    atexit(fuzz_instance_cleanup);
    snprintf(fuzz_inst.conf, sizeof(fuzz_inst.conf), "%s/sealpost.conf", fuzz_inst.dir);
    FILE *f = fopen(fuzz_inst.conf, "w");
    if (f == NULL)
        abort();
    fuzz_smtp_port = fuzz_free_port();
    do
        fuzz_http_port = fuzz_free_port();
    while (fuzz_http_port == fuzz_smtp_port);
    fprintf(f,
            "[server]\nhostname = fuzz.test\ndata_dir = data\nsmtp_listen = 127.0.0.1:%d\n"
            "http_listen = 127.0.0.1:%d\npublic_url = http://127.0.0.1:%d\nkdf = interactive\n"
            "master_key = master.key\n"
            "[mailin]\ndomains = mailin.test\npostmaster = victim\ndkim_verify = no\nspf = no\n"
            "greet_pause = 0s\nmax_connections_per_ip = 1000\nmax_connections = 2000\n"
            "parser_timeout = 5s\nparser_cpu_limit = 2s\n"
            "[sendlink]\nmax_downloads = 10000\ncode_max_attempts = 20\nlockout = 1m\n"
            "[plan default]\nstorage_quota = 0\n%s",
            fuzz_smtp_port, fuzz_http_port, fuzz_http_port, extra ? extra : "");
    fclose(f);
    char out[4096];
    if (fuzz_sealpost("init", NULL, out, sizeof(out)) != 0 ||
        fuzz_sealpost("user add victim --email victim@example.org --json --password-stdin",
                      "fuzz-password\n", out, sizeof(out)) != 0 ||
        fuzz_json_str(out, "address", fuzz_inst.address, sizeof(fuzz_inst.address)) != 0) {
        fprintf(stderr, "fuzz: cannot set up the instance in %s (see setup.log)\n", fuzz_inst.dir);
        abort();
    }
    if (fuzz_sealpost("apikey create victim --json", NULL, out, sizeof(out)) == 0)
        (void)fuzz_json_str(out, "key", fuzz_inst.apikey, sizeof(fuzz_inst.apikey));
    char file[128], args[512], url[512];
    snprintf(file, sizeof(file), "%s/sendfile.txt", fuzz_inst.dir);
    f = fopen(file, "w");
    if (f) {
        fputs("a file to send\n", f);
        fclose(f);
        snprintf(args, sizeof(args),
                 "send create --file '%s' --to r@example.net --protect code --code fuzzcode123 "
                 "--max-downloads 10000 "
                 "--user victim --json",
                 file);
        if (fuzz_sealpost(args, NULL, out, sizeof(out)) == 0 &&
            fuzz_json_str(out, "url", url, sizeof(url)) == 0 && strstr(url, "/s/")) {
            snprintf(fuzz_inst.token, sizeof(fuzz_inst.token), "%s", strstr(url, "/s/") + 3);
            (void)fuzz_json_str(out, "id", fuzz_inst.send_id, sizeof(fuzz_inst.send_id));
        }
    }
}

/*
 * Expands the placeholders of a fuzz input into out (malloc'd):
 *   %R  the user's Mail-in address    %K  the API key
 *   %T  the send's link token         %I  the send's id
 * so that seeds and the fuzzer reach past "unknown user" and "401".
 */
static char *fuzz_expand(const uint8_t *d, size_t n, size_t *outlen)
{
    size_t cap = n * 4 + 256, k = 0;
    char *o = malloc(cap);
    if (o == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *sub = NULL;
        if (d[i] == '%' && i + 1 < n) {
            switch (d[i + 1]) {
            case 'R':
                sub = fuzz_inst.address;
                break;
            case 'K':
                sub = fuzz_inst.apikey;
                break;
            case 'T':
                sub = fuzz_inst.token;
                break;
            case 'I':
                sub = fuzz_inst.send_id;
                break;
            default:
                break;
            }
        }
        if (sub) {
            size_t l = strlen(sub);
            if (k + l + 1 > cap) {
                cap = (k + l + 1) * 2;
                o = realloc(o, cap);
                if (o == NULL)
                    abort();
            }
            memcpy(o + k, sub, l);
            k += l;
            i++;
        } else {
            if (k + 2 > cap) {
                cap *= 2;
                o = realloc(o, cap);
                if (o == NULL)
                    abort();
            }
            o[k++] = (char)d[i];
        }
    }
    *outlen = k;
    return o;
}

__attribute__((unused)) static int fuzz_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "fuzz: connect to port %d: %s (server gone?)\n", port, strerror(errno));
        abort();
    }
    int one = 1;
    (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)fcntl(s, F_SETFL, O_NONBLOCK);
    return s;
}

static uint64_t fuzz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Counts the final reply lines ("DDD " or "DDD\r\n") in r[*scanned..got). */
static size_t fuzz_count_finals(const char *r, size_t got, size_t *scanned)
{
    size_t finals = 0, i = *scanned;
    for (;;) {
        const char *nl = memchr(r + i, '\n', got - i);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (r + i)) + 1;
        if (len >= 4 && r[i + 3] != '-')
            finals++;
        i += len;
    }
    *scanned = i;
    return finals;
}

/*
 * Sends p[0..n) on s in pieces of 1..max_piece bytes (sizes from seed),
 * reading all the while (a server may stop reading while its replies are
 * not taken), then half-closes and reads to EOF. Wait markers in p make
 * the client wait like a real one at a synchronisation point (RFC 2920):
 * "%W" waits for one final reply per line sent since the last marker,
 * "%D" for one final reply (after a message body); wait_first waits for
 * the banner. The markers are not sent. Replies go to *r (malloc'd,
 * NUL-terminated, at most FUZZ_NET_REPLY_MAX). idle_ms > 0: once all is
 * sent, idle_ms of silence (a quarter of it once something came back)
 * ends the exchange (an HTTP server keeps the
 * connection after an answer, or waits for the rest of a request we cut
 * short: the caller checks liveness another way). Returns 0, or -1
 * when the server went silent for FUZZ_NET_WAIT_MS without closing.
 */
__attribute__((unused)) static int fuzz_exchange(int s, const char *p, size_t n, uint32_t seed,
                                                 size_t max_piece, int wait_first, unsigned idle_ms,
                                                 char **r, size_t *rlen)
{
    size_t cap = 4096, got = 0, sent = 0, scanned = 0, finals = 0, lines = 0;
    size_t need = wait_first ? 1 : 0;
    char *buf = malloc(cap);
    int wr_closed = 0, rc = 0;
    uint64_t last = fuzz_now_ms();
    if (buf == NULL)
        abort();
    for (;;) {
        /* Markers at the send position: account for them, never send them. */
        while (sent + 1 < n && p[sent] == '%' && (p[sent + 1] == 'W' || p[sent + 1] == 'D') &&
               finals >= need) {
            need = finals + (p[sent + 1] == 'W' ? lines : 1);
            lines = 0;
            sent += 2;
        }
        int can_send = !wr_closed && finals >= need;
        struct pollfd pfd = {s, POLLIN | (can_send ? POLLOUT : 0), 0};
        int k = poll(&pfd, 1, idle_ms && wr_closed ? 5 : 100);
        if (k < 0 && errno == EINTR)
            continue;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (cap - got < 4096 && cap < FUZZ_NET_REPLY_MAX + 4096) {
                cap *= 2;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    abort();
            }
            ssize_t m = cap - got > 1 ? read(s, buf + got, cap - got - 1) : 0;
            if (m == 0 || (m < 0 && errno != EAGAIN && errno != EINTR))
                break; /* closed (or reset) by the server */
            if (m > 0) {
                got += (size_t)m;
                finals += fuzz_count_finals(buf, got, &scanned);
                last = fuzz_now_ms();
            }
        }
        if (can_send && (pfd.revents & POLLOUT)) {
            if (sent < n) {
                seed = seed * 1103515245u + 12345u;
                size_t piece = 1 + (seed >> 8) % max_piece;
                if (piece > n - sent)
                    piece = n - sent;
                /* A piece ends before the next marker. */
                for (size_t k2 = sent; k2 + 1 < sent + piece; k2++)
                    if (p[k2] == '%' && (p[k2 + 1] == 'W' || p[k2 + 1] == 'D')) {
                        piece = k2 - sent;
                        break;
                    }
                ssize_t w = piece ? send(s, p + sent, piece, MSG_NOSIGNAL) : 0;
                if (w > 0) {
                    for (ssize_t k2 = 0; k2 < w; k2++)
                        lines += p[sent + (size_t)k2] == '\n';
                    sent += (size_t)w;
                    last = fuzz_now_ms();
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    wr_closed = 1; /* the server closed on us: fine */
                }
            }
            if (sent == n && !wr_closed) {
                (void)shutdown(s, SHUT_WR);
                wr_closed = 1;
            }
        }
        if (!wr_closed && finals < need && fuzz_now_ms() - last > FUZZ_NET_MARK_MS) {
            need = finals; /* (see below) */
            last = fuzz_now_ms();
            continue;
        }
        if (idle_ms && wr_closed && fuzz_now_ms() - last > (got ? idle_ms / 4 : idle_ms))
            break; /* all sent; the server keeps the connection: enough */
        if (fuzz_now_ms() - last > FUZZ_NET_WAIT_MS) {
            if (!wr_closed && finals < need) {
                /* We wait for a reply the server does not owe (the input
                 * asked for more than it sent lines for): give up the
                 * wait, send the rest. Not a hang of the server. */
                need = finals;
                last = fuzz_now_ms();
                continue;
            }
            rc = -1;
            break;
        }
    }
    buf[got] = '\0';
    *r = buf;
    *rlen = got;
    return rc;
}

/* What both network harnesses do first: the instance, logging (FUZZ_LOG),
 * libsodium, GMime, and the instance's config (problems printed, then abort). */
__attribute__((unused)) static struct config *fuzz_net_setup(const char *name)
{
    signal(SIGPIPE, SIG_IGN);
    fuzz_instance_make(NULL);
    log_open(name, getenv("FUZZ_LOG") != NULL, 0);
    if (sodium_init() < 0)
        abort();
    mime_global_init();
    struct config *cfg = NULL;
    struct diag d = {0};
    if (config_load(fuzz_inst.conf, &cfg, &d) != 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.msgs[i]);
        abort();
    }
    return cfg;
}

#endif
