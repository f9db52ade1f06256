/*
 * test_smtpd_auth — DKIM and SPF results and the Authentication-Results:
 * header of smtpd_auth_check(), all offline:
 *  - DKIM keys come from libopendkim's file query (DKIM_QUERY_FILE); the
 *    RSA key is generated here at start-up, messages are signed here with
 *    libopendkim, so no private key is committed;
 *  - SPF answers come from tests/data/auth/spf.zone (libspf2 zone layer);
 *  - our own stub resolver is tested against a DNS responder on loopback
 *    run by this test (answers, refusals, silence).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/buf.h"
#include "smtpd/smtpd_auth.h"

#define ZONE_FILE "tests/data/auth/spf.zone"
#define TEST_DOMAIN "example.org"
#define TEST_SELECTOR "sel2025"
#define TEST_HOST "mx.sealpost.test"
#define TEST_KEY_BITS 2048

static char tmpdir[64];
static char keyfile[128];
static char *privkey_pem;
static char *pubkey_b64;

static const char plain_msg[] = "From: Alice <alice@example.org>\r\n"
                                "To: k7q2xw9m4t@mailin.example\r\n"
                                "Subject: quarterly figures\r\n"
                                "Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n"
                                "Message-ID: <1@example.org>\r\n"
                                "\r\n"
                                "Hello,\r\n"
                                "the figures are attached.\r\n";

/* ---- helpers ---- */

static void check_str(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", what, got, want);
}

static void check_contains(const char *what, const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", what, hay, needle);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int memfd_with(const char *data, size_t len)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

/* Signs msg with the test key as selector/domain; returns a new message
 * (DKIM-Signature: prepended), to be freed. */
static char *dkim_sign_msg(const char *msg, const char *selector, const char *domain)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    DKIM_STAT st;
    DKIM *d;
    unsigned char sig[4096];
    char *out;

    assert_non_null(lib);
    d = dkim_sign(lib, (const unsigned char *)"test", NULL, (dkim_sigkey_t)privkey_pem,
                  (const unsigned char *)selector, (const unsigned char *)domain,
                  DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    assert_non_null(d);
    assert_int_equal(dkim_chunk(d, (unsigned char *)msg, strlen(msg)), DKIM_STAT_OK);
    assert_int_equal(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
    assert_int_equal(dkim_eom(d, NULL), DKIM_STAT_OK);
    assert_int_equal(dkim_getsighdr(d, sig, sizeof(sig), strlen(DKIM_SIGNHEADER) + 2),
                     DKIM_STAT_OK);
    out = malloc(strlen(msg) + strlen((char *)sig) + 64);
    assert_non_null(out);
    sprintf(out, "%s: %s\r\n%s", DKIM_SIGNHEADER, (char *)sig, msg);
    dkim_free(d);
    dkim_close(lib);
    return out;
}

static void request_init(struct smtpd_auth_request *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->client_ip = "192.0.2.10";
    rq->helo = "client.example.org";
    rq->mail_from = "alice@pass.example";
    rq->authserv_id = TEST_HOST;
    rq->dkim = true;
    rq->spf = true;
    rq->dns_timeout = 2;
    rq->dkim_keyfile = keyfile;
    rq->spf_zonefile = ZONE_FILE;
}

static void run_check(const struct smtpd_auth_request *rq, const char *msg,
                      struct smtpd_auth_result *res)
{
    int fd = memfd_with(msg, strlen(msg));

    assert_int_equal(smtpd_auth_check(rq, fd, res), 0);
    close(fd);
}

/*
 * The header is one well-formed RFC 8601 field: our name, only printable
 * ASCII, CRLF only as a fold (followed by TAB) or at the very end, lines
 * below 998 characters, and after unfolding "id; method=result props..."
 * with every clause of the form method=result and name=value properties.
 */
static void check_header_form(const char *h)
{
    const char *prefix = "Authentication-Results: ";
    size_t len = strlen(h);
    size_t col = 0;
    char unfolded[SMTPD_AUTH_HEADER_MAX];
    size_t u = 0;
    int n = 0;
    bool quoted = false;

    if (strncmp(h, prefix, strlen(prefix)) != 0)
        fail_msg("header starts \"%.30s\", want \"%s\"", h, prefix);
    if (len < 2 || strcmp(h + len - 2, "\r\n") != 0)
        fail_msg("header does not end in CRLF: \"%s\"", h);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c == '\r') {
            if (h[i + 1] != '\n' || (i + 2 != len && h[i + 2] != '\t'))
                fail_msg("bare CR or CRLF not followed by TAB at %zu in \"%s\"", i, h);
            col = 0;
            i++;
            continue;
        }
        if (c == '\n')
            fail_msg("bare LF at %zu in \"%s\"", i, h);
        if ((c < 0x20 && c != '\t') || c >= 0x7f)
            fail_msg("byte 0x%02x at %zu in \"%s\"", c, i, h);
        if (++col >= 998)
            fail_msg("line of %zu characters", col);
        unfolded[u++] = (char)c;
    }
    unfolded[u] = '\0';
    /* clauses split on ';' outside quoted-strings; words on blanks outside
     * them: "id", then "method=result" and "name=value" words */
    for (char *p = unfolded + strlen(prefix), *start = p;; p++) {
        if (*p == '\\' && quoted && p[1] != '\0') {
            p++;
            continue;
        }
        if (*p == '"')
            quoted = !quoted;
        if ((*p == ';' && !quoted) || *p == '\0') {
            bool end = *p == '\0';
            char words[16][SMTPD_AUTH_HEADER_MAX / 4];
            int nw = 0;
            bool q = false;
            size_t w = 0;

            if (end && quoted)
                fail_msg("unterminated quoted-string in \"%s\"", h);
            for (const char *c = start; c <= p; c++) {
                if (c == p || ((*c == ' ' || *c == '\t') && !q)) {
                    if (w > 0) {
                        words[nw][w] = '\0';
                        if (++nw == 16)
                            fail_msg("too many words in a clause of \"%s\"", h);
                    }
                    w = 0;
                    continue;
                }
                if (*c == '\\' && q) {
                    words[nw][w++] = *c++;
                } else if (*c == '"') {
                    q = !q;
                }
                words[nw][w++] = *c;
            }
            if (nw == 0)
                fail_msg("empty clause %d in \"%s\"", n, h);
            if (n == 0) {
                check_str("authserv-id", words[0], TEST_HOST);
            } else if (strcmp(words[0], "none") != 0) {
                for (int i = 0; i < nw; i++) {
                    const char *eq = strchr(words[i], '=');

                    if (eq == NULL || eq == words[i] || eq[1] == '\0')
                        fail_msg("word \"%s\" is not name=value in \"%s\"", words[i], h);
                }
            }
            n++;
            if (end)
                break;
            start = p + 1;
        }
    }
    if (n < 2)
        fail_msg("header has %d clauses: \"%s\"", n, h);
}

/* ---- a DNS responder on loopback for the stub resolver ---- */

enum dns_mode {
    DNS_ANSWER,   /* answer over UDP */
    DNS_TRUNCATE, /* UDP answers carry only the TC bit; TCP answers */
    DNS_SILENT,   /* read queries, never answer */
};

struct dns_rec {
    const char *name;
    int type;
    char *txt;
};

struct dns_srv {
    int fd;  /* UDP */
    int tfd; /* TCP listener on the same port */
    uint16_t port;
    enum dns_mode mode;
    struct dns_rec recs[4];
    int nrecs;
    int queries;
    int tcp_queries;
    volatile bool stop;
    pthread_t thr;
};

/* Reads the question name as dotted lowercase; returns bytes consumed. */
static size_t dns_qname(const unsigned char *p, size_t len, char *out, size_t outsz)
{
    size_t i = 0;
    size_t o = 0;

    while (i < len && p[i] != 0) {
        size_t l = p[i++];

        for (size_t k = 0; k < l && i < len && o + 2 < outsz; k++)
            out[o++] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i++] + 32 : p[i++]);
        out[o++] = '.';
    }
    if (o > 0)
        o--;
    out[o] = '\0';
    return i + 1;
}

/* Builds the reply to query q into a; returns its length. */
static size_t dns_answer(const struct dns_srv *s, const unsigned char *q, size_t n,
                         unsigned char *a, bool udp)
{
    char name[256];
    size_t qn = dns_qname(q + 12, n - 12, name, sizeof(name));
    int type = q[12 + qn] << 8 | q[12 + qn + 1];
    const struct dns_rec *hit = NULL;
    bool exists = false;
    size_t o = 12 + qn + 4;

    for (int i = 0; i < s->nrecs; i++) {
        exists = exists || strcmp(s->recs[i].name, name) == 0;
        if (strcmp(s->recs[i].name, name) == 0 && s->recs[i].type == type)
            hit = &s->recs[i];
    }
    memcpy(a, q, o);
    a[2] = 0x81; /* QR RD */
    a[3] = 0x80; /* RA */
    memset(a + 6, 0, 6);
    if (!exists)
        a[3] |= 3; /* NXDOMAIN */
    if (hit != NULL && udp && s->mode == DNS_TRUNCATE) {
        a[2] |= 0x02; /* TC */
    } else if (hit != NULL) {
        size_t tl = strlen(hit->txt);
        size_t rdlen = tl + (tl + 254) / 255;
        static const unsigned char rr[] = {0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 0x2c}; /* TXT IN 300 */

        a[7] = 1;
        memcpy(a + o, rr, sizeof(rr));
        o += sizeof(rr);
        a[o++] = (unsigned char)(rdlen >> 8);
        a[o++] = (unsigned char)rdlen;
        for (size_t i = 0; i < tl; i += 255) {
            size_t l = tl - i > 255 ? 255 : tl - i;

            a[o++] = (unsigned char)l;
            memcpy(a + o, hit->txt + i, l);
            o += l;
        }
    }
    return o;
}

static void dns_serve_tcp(struct dns_srv *s)
{
    unsigned char q[514];
    unsigned char a[4096];
    size_t got = 0;
    size_t want = 2;
    size_t n;
    int c = accept(s->tfd, NULL, NULL);

    if (c < 0)
        return;
    while (got < want) {
        ssize_t r = recv(c, q + got, want - got, 0);

        if (r <= 0)
            goto out;
        got += (size_t)r;
        if (got == 2)
            want = 2 + ((size_t)q[0] << 8 | q[1]);
        if (want > sizeof(q) || want < 14)
            goto out;
    }
    s->tcp_queries++;
    n = dns_answer(s, q + 2, want - 2, a + 2, false);
    a[0] = (unsigned char)(n >> 8);
    a[1] = (unsigned char)n;
    (void)send(c, a, n + 2, MSG_NOSIGNAL);
out:
    close(c);
}

static void *dns_serve(void *arg)
{
    struct dns_srv *s = arg;

    while (!s->stop) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->tfd, .events = POLLIN}};
        unsigned char q[512];
        unsigned char a[2048];
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        ssize_t n;

        if (poll(p, 2, 50) <= 0)
            continue;
        if (p[1].revents & POLLIN)
            dns_serve_tcp(s);
        if ((p[0].revents & POLLIN) == 0)
            continue;
        n = recvfrom(s->fd, q, sizeof(q), 0, (struct sockaddr *)&peer, &plen);
        if (n < 12)
            continue;
        s->queries++;
        if (s->mode == DNS_SILENT)
            continue;
        (void)sendto(s->fd, a, dns_answer(s, q, (size_t)n, a, true), 0, (struct sockaddr *)&peer,
                     plen);
    }
    return NULL;
}

static void dns_start(struct dns_srv *s)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int one = 1;

    /* The UDP port the kernel picks may be taken for TCP by another
     * process (tests run beside each other): try again with a new one. */
    for (int tries = 0;; tries++) {
        sin.sin_port = 0;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->fd = socket(AF_INET, SOCK_DGRAM, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        len = sizeof(sin);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &len), 0);
        s->port = ntohs(sin.sin_port);
        s->tfd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(s->tfd >= 0);
        assert_int_equal(setsockopt(s->tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
        if (bind(s->tfd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
            break;
        close(s->fd);
        close(s->tfd);
        if (tries >= 50)
            fail_msg("no loopback port free for both UDP and TCP");
    }
    assert_int_equal(listen(s->tfd, 4), 0);
    s->stop = false;
    assert_int_equal(pthread_create(&s->thr, NULL, dns_serve, s), 0);
}

static void dns_stop(struct dns_srv *s)
{
    s->stop = true;
    pthread_join(s->thr, NULL);
    close(s->fd);
    close(s->tfd);
}

/* A loopback UDP port with nothing bound to it: queries are refused. */
static uint16_t closed_udp_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- set-up: key pair and key file ---- */

static int group_setup(void **state)
{
    EVP_PKEY *pk = EVP_RSA_gen(TEST_KEY_BITS);
    BIO *bio = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    char *pem;
    long pemlen;
    int derlen;
    FILE *f;

    (void)state;
    if (pk == NULL || bio == NULL || !PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL))
        return -1;
    pemlen = BIO_get_mem_data(bio, &pem);
    privkey_pem = strndup(pem, (size_t)pemlen);
    derlen = i2d_PUBKEY(pk, &der);
    if (derlen <= 0)
        return -1;
    pubkey_b64 = malloc((size_t)derlen * 2 + 4);
    EVP_EncodeBlock((unsigned char *)pubkey_b64, der, derlen);
    OPENSSL_free(der);
    BIO_free(bio);
    EVP_PKEY_free(pk);

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtpd_auth.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(keyfile, sizeof(keyfile), "%s/keys", tmpdir);
    f = fopen(keyfile, "w");
    if (f == NULL)
        return -1;
    /* libopendkim's file query: "<selector>._domainkey.<domain> <key record>" */
    fprintf(f, "%s._domainkey.%s v=DKIM1; k=rsa; p=%s\n", TEST_SELECTOR, TEST_DOMAIN, pubkey_b64);
    fprintf(f, "revoked._domainkey.%s v=DKIM1; k=rsa; p=\n", TEST_DOMAIN);
    fclose(f);
    return smtpd_auth_open();
}

static int group_teardown(void **state)
{
    (void)state;
    smtpd_auth_close();
    unlink(keyfile);
    rmdir(tmpdir);
    free(privkey_pem);
    free(pubkey_b64);
    return 0;
}

/* ---- DKIM ---- */

static void test_dkim_pass(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char *msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);

    (void)state;
    request_init(&rq);
    run_check(&rq, msg, &res);
    check_str("dkim", res.dkim, "pass");
    check_str("dkim_domain", res.dkim_domain, TEST_DOMAIN);
    check_str("dkim_selector", res.dkim_selector, TEST_SELECTOR);
    assert_int_equal(res.nsigs, 1);
    check_contains("header", res.header,
                   "dkim=pass header.d=" TEST_DOMAIN " header.s=" TEST_SELECTOR);
    check_header_form(res.header);
    free(msg);
}

/* Each tampering of a signed message, and what the verifier must say. */
static void test_dkim_table(void **state)
{
    static const struct {
        const char *name;
        const char *selector;  /* signing selector */
        const char *from, *to; /* first occurrence replaced after signing */
        const char *want;
        const char *want_in_header;
    } cases[] = {
        {"untouched", TEST_SELECTOR, NULL, NULL, "pass", "dkim=pass"},
        {"body byte", TEST_SELECTOR, "figures are", "figures arE", "fail",
         "reason=\"body hash mismatch\""},
        {"signed header", TEST_SELECTOR, "quarterly", "Quarterly", "fail", "dkim=fail"},
        {"unsigned header added", TEST_SELECTOR, "\r\n\r\nHello", "\r\nX-New: 1\r\n\r\nHello",
         "pass", "dkim=pass"},
        /* file query: no line for the selector -> DKIM_STAT_NOKEY ->
         * DKIM_SIGERROR_NOKEY: permerror (RFC 6376 6.1.2: no key) */
        {"unknown selector", "nosuch", NULL, NULL, "permerror", "dkim=permerror"},
        /* empty p=: revoked key (RFC 6376 3.6.1) */
        {"revoked key", "revoked", NULL, NULL, "permerror", "dkim=permerror"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtpd_auth_request rq;
        struct smtpd_auth_result res;
        char *msg = dkim_sign_msg(plain_msg, cases[i].selector, TEST_DOMAIN);

        if (cases[i].from != NULL) {
            char *at = strstr(msg, cases[i].from);
            size_t fl = strlen(cases[i].from), tl = strlen(cases[i].to);
            char *m2 = malloc(strlen(msg) + tl + 1);

            assert_non_null(at);
            sprintf(m2, "%.*s%s%s", (int)(at - msg), msg, cases[i].to, at + fl);
            free(msg);
            msg = m2;
        }
        request_init(&rq);
        run_check(&rq, msg, &res);
        if (strcmp(res.dkim, cases[i].want) != 0)
            fail_msg("%s: dkim got \"%s\", want \"%s\" (header %s)", cases[i].name, res.dkim,
                     cases[i].want, res.header);
        check_contains(cases[i].name, res.header, cases[i].want_in_header);
        check_str(cases[i].name, res.dkim_selector, cases[i].selector);
        check_header_form(res.header);
        free(msg);
    }
}

static void test_dkim_unsigned(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;

    (void)state;
    request_init(&rq);
    run_check(&rq, plain_msg, &res);
    check_str("dkim", res.dkim, "none");
    assert_int_equal(res.nsigs, 0);
    check_contains("header", res.header, "dkim=none");
    check_header_form(res.header);
}

/* Messages libopendkim cannot take apart are unsigned or neutral, never
 * a pass and never a temperror. */
static void test_dkim_malformed(void **state)
{
    static const struct {
        const char *msg;
        const char *want;
    } cases[] = {
        {"", "none"},
        {"From: a@example.org\r\n", "none"},
        {"From: a@example.org\r\nbroken line\r\n\r\nbody\r\n", "none"},
        {"DKIM-Signature: garbage\r\nFrom: a@example.org\r\n\r\nbody\r\n", "neutral"},
        /* the field name in any case, LF line ends, after other fields: never
         * taken for an unsigned message without asking libopendkim */
        {"dkim-signature: garbage\r\nFrom: a@example.org\r\n\r\nbody\r\n", "neutral"},
        {"From: a@example.org\r\ndKiM-SiGnAtUrE: garbage\r\n\r\nbody\r\n", "neutral"},
        {"DKIM-Signature: garbage\nFrom: a@example.org\n\nbody\n", "neutral"},
        {"From: a@example.org\r\nDKIM-Signature: garbage\r\n", "neutral"},
        /* in the body only: unsigned */
        {"From: a@example.org\r\n\r\nDKIM-Signature: garbage\r\n", "none"},
        {"\r\nDKIM-Signature: garbage\r\n", "none"},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=" TEST_SELECTOR
         "; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nbody\r\n",
         "fail"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtpd_auth_request rq;
        struct smtpd_auth_result res;

        request_init(&rq);
        rq.spf = false;
        run_check(&rq, cases[i].msg, &res);
        if (strcmp(res.dkim, cases[i].want) != 0)
            fail_msg("case %zu: dkim got \"%s\", want \"%s\" (%s)", i, res.dkim, cases[i].want,
                     res.header);
        check_header_form(res.header);
    }
}

/* A signature behind a header longer than what is read at first (64 KiB)
 * is still verified; a signed message whose field name is in lower case
 * still passes. */
static void test_dkim_long_header(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    struct buf b = BUF_INIT;
    char *signed_msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);
    char *name = strstr(signed_msg, "DKIM-Signature");

    (void)state;
    for (int i = 0; i < 80; i++) {
        assert_int_equal(buf_puts(&b, "X-Pad: "), 0);
        for (int k = 0; k < 900; k++)
            assert_int_equal(buf_putc(&b, 'p'), 0);
        assert_int_equal(buf_puts(&b, "\r\n"), 0);
    }
    assert_int_equal(buf_puts(&b, signed_msg), 0);
    request_init(&rq);
    rq.spf = false;
    run_check(&rq, buf_cstr(&b), &res);
    check_str("long header", res.dkim, "pass");

    assert_non_null(name);
    memcpy(name, "dkim-signature", strlen("dkim-signature"));
    request_init(&rq);
    rq.spf = false;
    run_check(&rq, signed_msg, &res);
    check_str("lower case", res.dkim, "pass");
    buf_free(&b);
    free(signed_msg);
}

/* Several signatures: one clause each, the best one in the summary, and
 * no more than SMTPD_AUTH_DKIM_MAX_SIGS of them. */
static void test_dkim_multiple(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char *m1 = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);
    char *m2 = dkim_sign_msg(m1, "nosuch", TEST_DOMAIN); /* on top: first */
    char *many = strdup(m2);
    const char *p;
    unsigned clauses = 0;

    (void)state;
    request_init(&rq);
    run_check(&rq, m2, &res);
    assert_int_equal(res.nsigs, 2);
    check_str("sig 0", res.sigs[0].result, "permerror");
    check_str("sig 1", res.sigs[1].result, "pass");
    check_str("best", res.dkim, "pass");
    check_str("best selector", res.dkim_selector, TEST_SELECTOR);
    check_header_form(res.header);

    for (int i = 0; i < SMTPD_AUTH_DKIM_MAX_SIGS + 2; i++) {
        char *next = dkim_sign_msg(many, "nosuch", TEST_DOMAIN);

        free(many);
        many = next;
    }
    run_check(&rq, many, &res);
    assert_int_equal(res.nsigs, SMTPD_AUTH_DKIM_MAX_SIGS);
    for (p = res.header; (p = strstr(p, "dkim=")) != NULL; p++)
        clauses++;
    if (clauses != SMTPD_AUTH_DKIM_MAX_SIGS)
        fail_msg("dkim clauses: got %u, want %d", clauses, SMTPD_AUTH_DKIM_MAX_SIGS);
    check_header_form(res.header);
    free(m1);
    free(m2);
    free(many);
}

/* ---- SPF ---- */

static void test_spf_table(void **state)
{
    static const struct {
        const char *ip, *helo, *mail_from;
        const char *want, *want_domain, *want_in_header;
    } cases[] = {
        {"192.0.2.10", "c.example", "alice@pass.example", "pass", "pass.example",
         "spf=pass smtp.mailfrom=alice@pass.example"},
        {"192.0.2.10", "c.example", "<alice@pass.example>", "pass", "pass.example",
         "smtp.mailfrom=alice@pass.example"},
        {"192.0.2.10", "c.example", "bob@fail.example", "fail", "fail.example", "spf=fail"},
        {"192.0.2.10", "c.example", "bob@softfail.example", "softfail", "softfail.example",
         "spf=softfail"},
        {"192.0.2.10", "c.example", "bob@neutral.example", "neutral", "neutral.example",
         "spf=neutral"},
        {"192.0.2.10", "c.example", "bob@nothing.example", "none", "nothing.example", "spf=none"},
        {"192.0.2.10", "c.example", "bob@broken.example", "permerror", "broken.example",
         "spf=permerror"},
        {"192.0.2.10", "c.example", "bob@temp.example", "temperror", "temp.example",
         "spf=temperror"},
        {"192.0.2.25", "c.example", "bob@mx.example", "pass", "mx.example", "spf=pass"},
        {"192.0.2.26", "c.example", "bob@mx.example", "fail", "mx.example", "spf=fail"},
        {"192.0.2.99", "c.example", "bob@include.example", "pass", "include.example", "spf=pass"},
        {"2001:db8::25", "c.example", "bob@six.example", "pass", "six.example", "spf=pass"},
        {"2001:db9::25", "c.example", "bob@six.example", "fail", "six.example", "spf=fail"},
        /* null reverse-path: postmaster@HELO (RFC 7208 2.4) */
        {"192.0.2.7", "helo.example", "", "pass", "helo.example",
         "spf=pass smtp.helo=helo.example"},
        {"192.0.2.8", "helo.example", NULL, "fail", "helo.example",
         "spf=fail smtp.helo=helo.example"},
        /* no usable identity: address literal, single label, nothing */
        {"192.0.2.7", "[192.0.2.7]", "", "none", "[192.0.2.7]", "spf=none"},
        {"192.0.2.7", "localhost", "", "none", "localhost", "spf=none"},
        {"192.0.2.7", NULL, "", "none", "", "spf=none"},
        {"192.0.2.7", "c.example", "bob@[192.0.2.1]", "none", "[192.0.2.1]", "spf=none"},
        /* loopback clients are not vouched for */
        {"127.0.0.1", "c.example", "bob@fail.example", "none", "fail.example", "spf=none"},
        {"::1", "c.example", "bob@fail.example", "none", "fail.example", "spf=none"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtpd_auth_request rq;
        struct smtpd_auth_result res;

        request_init(&rq);
        rq.dkim = false;
        rq.spf = true;
        rq.client_ip = cases[i].ip;
        rq.helo = cases[i].helo;
        rq.mail_from = cases[i].mail_from;
        run_check(&rq, plain_msg, &res);
        if (strcmp(res.spf, cases[i].want) != 0)
            fail_msg("case %zu (%s from %s): spf got \"%s\", want \"%s\"", i, cases[i].ip,
                     cases[i].mail_from ? cases[i].mail_from : "(null)", res.spf, cases[i].want);
        check_str("spf_domain", res.spf_domain, cases[i].want_domain);
        check_contains("header", res.header, cases[i].want_in_header);
        if (strstr(res.header, "dkim") != NULL)
            fail_msg("case %zu: DKIM disabled but header has it: %s", i, res.header);
        check_header_form(res.header);
    }
}

/* ---- the stub resolver ---- */

/* Answers from a live responder: DKIM key and SPF record over the wire. */
static void test_dns_answers(void **state)
{
    struct dns_srv srv = {0};
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char server[32];
    char *keyrec = NULL;
    char *msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);

    (void)state;
    assert_true(asprintf(&keyrec, "v=DKIM1; k=rsa; p=%s", pubkey_b64) > 0);
    srv.recs[0] = (struct dns_rec){TEST_SELECTOR "._domainkey." TEST_DOMAIN, 16, keyrec};
    srv.recs[1] = (struct dns_rec){"pass.example", 16, "v=spf1 ip4:192.0.2.0/24 -all"};
    srv.nrecs = 2;
    dns_start(&srv);
    snprintf(server, sizeof(server), "127.0.0.1:%u", srv.port);
    request_init(&rq);
    rq.dkim = rq.spf = true;
    rq.dkim_keyfile = NULL;
    rq.spf_zonefile = NULL;
    rq.dns_server = server;
    run_check(&rq, msg, &res);
    check_str("dkim over DNS", res.dkim, "pass");
    check_str("spf over DNS", res.spf, "pass");

    /* unknown selector: NXDOMAIN -> permerror; SPF for a name that is
     * not there: none */
    free(msg);
    msg = dkim_sign_msg(plain_msg, "other", TEST_DOMAIN);
    rq.mail_from = "bob@nothing.example";
    run_check(&rq, msg, &res);
    check_str("dkim NXDOMAIN", res.dkim, "permerror");
    check_str("spf NXDOMAIN", res.spf, "none");
    check_header_form(res.header);
    dns_stop(&srv);
    if (srv.queries < 4)
        fail_msg("responder saw %d queries, want at least 4", srv.queries);
    free(keyrec);
    free(msg);
}

/* A truncated UDP reply is asked again over TCP. */
static void test_dns_tcp_fallback(void **state)
{
    struct dns_srv srv = {0};
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char server[32];
    char *keyrec = NULL;
    char *msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);

    (void)state;
    assert_true(asprintf(&keyrec, "v=DKIM1; k=rsa; p=%s", pubkey_b64) > 0);
    srv.mode = DNS_TRUNCATE;
    srv.recs[0] = (struct dns_rec){TEST_SELECTOR "._domainkey." TEST_DOMAIN, 16, keyrec};
    srv.recs[1] = (struct dns_rec){"pass.example", 16, "v=spf1 ip4:192.0.2.0/24 -all"};
    srv.nrecs = 2;
    dns_start(&srv);
    snprintf(server, sizeof(server), "127.0.0.1:%u", srv.port);
    request_init(&rq);
    rq.dkim_keyfile = NULL;
    rq.spf_zonefile = NULL;
    rq.dns_server = server;
    run_check(&rq, msg, &res);
    dns_stop(&srv);
    check_str("dkim over TCP", res.dkim, "pass");
    check_str("spf over TCP", res.spf, "pass");
    if (srv.tcp_queries < 2)
        fail_msg("TCP queries: got %d, want at least 2", srv.tcp_queries);
    free(keyrec);
    free(msg);
}

/* Nothing listening: refused at once, temperror, no waiting. */
static void test_dns_refused(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char server[32];
    char *msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);
    double t0;
    double took;

    (void)state;
    snprintf(server, sizeof(server), "127.0.0.1:%u", closed_udp_port());
    request_init(&rq);
    rq.dkim = rq.spf = true;
    rq.dkim_keyfile = NULL;
    rq.spf_zonefile = NULL;
    rq.dns_server = server;
    rq.dns_timeout = 5;
    t0 = now_s();
    run_check(&rq, msg, &res);
    took = now_s() - t0;
    check_str("dkim", res.dkim, "temperror");
    check_str("spf", res.spf, "temperror");
    check_contains("header", res.header, "dkim=temperror");
    check_contains("header", res.header, "spf=temperror");
    check_header_form(res.header);
    if (took > 1.0)
        fail_msg("refused DNS took %.2f s, want well under dns_timeout (5 s)", took);
    free(msg);
}

/* A server that never answers: the whole check ends at dns_timeout. */
static void test_dns_silent_bounded(void **state)
{
    struct dns_srv srv = {0};
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char server[32];
    char *msg = dkim_sign_msg(plain_msg, TEST_SELECTOR, TEST_DOMAIN);
    double t0;
    double took;

    (void)state;
    srv.mode = DNS_SILENT;
    dns_start(&srv);
    snprintf(server, sizeof(server), "127.0.0.1:%u", srv.port);
    request_init(&rq);
    rq.dkim = rq.spf = true;
    rq.dkim_keyfile = NULL;
    rq.spf_zonefile = NULL;
    rq.dns_server = server;
    rq.dns_timeout = 1;
    t0 = now_s();
    run_check(&rq, msg, &res);
    took = now_s() - t0;
    dns_stop(&srv);
    check_str("dkim", res.dkim, "temperror");
    check_str("spf", res.spf, "temperror");
    if (took < 0.9 || took > 1.9)
        fail_msg("silent DNS: check took %.2f s, want about dns_timeout (1 s)", took);
    if (srv.queries < 1)
        fail_msg("silent DNS saw no query");
    free(msg);
}

/* ---- the header ---- */

static void test_header_injection(void **state)
{
    static const struct {
        const char *helo, *mail_from;
    } cases[] = {
        {"evil.example\r\nX-Injected: yes", ""},
        {"c.example", "a\r\nX-Injected: yes@pass.example"},
        {"c.example", "\"a\\\"b\\r\\n\"@pass.example"},
        {"c.example", "a\nb@pass.example"},
        {"c.example\r", "x@pass.example\r\n\r\nbody"},
        {"c.example", "caf\xc3\xa9@pass.example"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtpd_auth_request rq;
        struct smtpd_auth_result res;

        request_init(&rq);
        rq.dkim = rq.spf = true;
        rq.helo = cases[i].helo;
        rq.mail_from = cases[i].mail_from;
        run_check(&rq, plain_msg, &res);
        check_header_form(res.header);
        if (strstr(res.header, "\nX-Injected") != NULL)
            fail_msg("case %zu: injected header line: %s", i, res.header);
        for (const char *p = res.spf_domain; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                fail_msg("case %zu: spf_domain has byte 0x%02x", i, (unsigned char)*p);
    }
}

static void test_header_disabled(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;

    (void)state;
    request_init(&rq);
    rq.dkim = rq.spf = false;
    run_check(&rq, plain_msg, &res);
    check_str("header", res.header, "Authentication-Results: " TEST_HOST "; none\r\n");
    check_str("dkim", res.dkim, "");
    check_str("spf", res.spf, "");
}

/* Long values fold and quote, but no line reaches 998 characters. */
static void test_header_long_values(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;
    char from[300];

    (void)state;
    memset(from, 'x', 240);
    strcpy(from + 240, "@pass.example");
    request_init(&rq);
    rq.dkim = rq.spf = true;
    rq.mail_from = from;
    rq.helo = "c.example";
    run_check(&rq, plain_msg, &res);
    check_str("spf", res.spf, "pass");
    check_contains("header", res.header, from);
    check_header_form(res.header);

    /* quoting: a space and a quote in the local part */
    rq.mail_from = "\"al ice\\\"x\"@pass.example";
    run_check(&rq, plain_msg, &res);
    check_contains("quoted", res.header, "smtp.mailfrom=\"\\\"al ice\\\\\\\"x\\\"@pass.example\"");
    check_header_form(res.header);
}

/* An unreadable message fd is reported, DKIM then says temperror. */
static void test_bad_fd(void **state)
{
    struct smtpd_auth_request rq;
    struct smtpd_auth_result res;

    (void)state;
    request_init(&rq);
    rq.dkim = true;
    assert_int_equal(smtpd_auth_check(&rq, -1, &res), -1);
    check_str("dkim", res.dkim, "temperror");
    check_header_form(res.header);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dkim_pass),
        cmocka_unit_test(test_dkim_table),
        cmocka_unit_test(test_dkim_unsigned),
        cmocka_unit_test(test_dkim_malformed),
        cmocka_unit_test(test_dkim_multiple),
        cmocka_unit_test(test_dkim_long_header),
        cmocka_unit_test(test_spf_table),
        cmocka_unit_test(test_dns_answers),
        cmocka_unit_test(test_dns_tcp_fallback),
        cmocka_unit_test(test_dns_refused),
        cmocka_unit_test(test_dns_silent_bounded),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_header_disabled),
        cmocka_unit_test(test_header_long_values),
        cmocka_unit_test(test_bad_fd),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
