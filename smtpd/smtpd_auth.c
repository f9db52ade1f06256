/*
 * smtpd_auth — DKIM and SPF verification of inbound mail, reported as an
 * RFC 8601 Authentication-Results: header field and as plain fields that
 * go into the item's sealed metadata.
 *
 * Data flow: the SMTP session spools DATA into a memfd; after end-of-data a
 * worker thread calls smtpd_auth_check(), prepends result.header to the
 * stored original and copies the fields into the metadata record. Nothing
 * here writes to disk.
 *
 * Trust: the message, HELO name, reverse-path and every DNS answer are
 * untrusted. Whatever of them reaches the header or the result fields is
 * reduced to printable ASCII (RFC 8601 values are tokens or quoted-strings),
 * so no CR, LF or NUL can be injected (RULES.md 13). Lines are folded below
 * 998 characters (RFC 5322 2.1.1).
 *
 * DNS: libopendkim's stock resolver and libspf2's resolv layer both call
 * res_nquery/res_nsend with the system's retry policy from resolv.conf
 * (glibc default: 5 s per try, 2 tries, for each name server), which cannot
 * be bounded per call; libopendkim's stock stub also ignores
 * DKIM_OPTS_TIMEOUT. So both libraries are given our own small
 * stub resolver instead: UDP with EDNS0, TCP on truncation, non-blocking
 * sockets and poll(), and one deadline (dns_timeout) shared by every
 * lookup of one check. Past the deadline every lookup fails at once as a
 * temporary error, so a check never blocks longer than dns_timeout. The
 * name servers are those of /etc/resolv.conf (res_ninit), read at a
 * check's first lookup (most checks make none), tried in order.
 * libopendkim reaches the resolver through its query-service hooks; those
 * hooks have no per-message argument, so the check in progress is found in
 * a thread-local pointer (the shared library handle's DKIM_OPTS_TIMEOUT is
 * thus moot: the deadline rules). libspf2 gets a DNS layer of its own per
 * check, so no libspf2 object is shared between threads.
 *
 * DKIM (RFC 6376) results map to RFC 8601 2.7.1: pass; fail (bad signature
 * or body hash); temperror (key lookup failed for now); permerror (no key,
 * revoked or unusable key record); policy (key too small); neutral (the
 * signature could not be processed: syntax, expiry, missing tags). At most
 * SMTPD_AUTH_DKIM_MAX_SIGS signatures are evaluated, one dkim= clause each.
 * A message whose header block (read whole in the first 64 KiB) does not
 * hold the text "dkim-signature" in any case is "none" without a
 * libopendkim handle, which would find no signature either.
 *
 * SPF (RFC 7208) checks the MAIL FROM identity, or postmaster@HELO for the
 * null reverse-path (2.4); an identity that is not a multi-label domain
 * (an address literal, nothing at all) is "none" (4.3). The SPF RR type is
 * never queried (3.1). libspf2 passes loopback clients unconditionally;
 * we report "none" for them instead, as a pass would vouch for whatever
 * sender a local relay hands us.
 */
#include "smtpd/smtpd_auth.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdint.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <opendkim/dkim.h>
#include <sodium.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* Bytes read from the message file per dkim_chunk() call. */
#define AUTH_READ_CHUNK 65536
/* A DNS message over TCP (RFC 1035 4.2.2: 16-bit length). */
#define AUTH_DNS_TCP_MAX 65535
/* EDNS0 UDP payload we advertise (the DNS flag day 2020 value). */
#define AUTH_DNS_UDP_PAYLOAD 1232
/* Name servers tried per lookup (resolv.conf's MAXNS). */
#define AUTH_DNS_MAX_NS MAXNS
/* EDNS0 OPT record (RFC 6891 6.1.2) with no options: 11 bytes. */
#define AUTH_DNS_OPT_LEN 11
/* QTYPE and QCLASS after the question name. */
#define AUTH_DNS_QTAIL 4
/* A question: header, name, type and class, OPT record. */
#define AUTH_DNS_QUERY_MAX (HFIXEDSZ + NS_MAXCDNAME + AUTH_DNS_QTAIL + AUTH_DNS_OPT_LEN)
/* Header bits (RFC 1035 4.1.1): byte 2 QR|Opcode|AA|TC|RD, byte 3 RA|Z|RCODE. */
#define AUTH_DNS_QR 0x80
#define AUTH_DNS_OPCODE 0x78
#define AUTH_DNS_TC 0x02
#define AUTH_DNS_RD 0x01
#define AUTH_DNS_RCODE 0x0f
/* Untrusted text put into one header value (an SMTP path is 256). */
#define AUTH_VALUE_MAX 256
/* Longest reason="" text (library error strings are short). */
#define AUTH_REASON_MAX 64
/* Fold the header before a property that would pass this column. */
#define AUTH_FOLD_COLUMN 78
/* RFC 5322 2.1.1: a line is at most 998 characters before CRLF. */
#define AUTH_LINE_MAX 998
#define AUTH_HEADER_NAME "Authentication-Results:"
/* The field whose presence sends a message through libopendkim (lower case). */
#define AUTH_DKIM_FIELD "dkim-signature"

/* ---- one check's DNS: deadline and name servers ---- */

struct auth_dns {
    int64_t deadline;   /* CLOCK_MONOTONIC milliseconds */
    const char *server; /* the test's name server, or NULL: resolv.conf's */
    bool loaded;        /* ns[] filled (at the first lookup: most checks make none) */
    struct sockaddr_storage ns[AUTH_DNS_MAX_NS];
    socklen_t nslen[AUTH_DNS_MAX_NS];
    int nns;
};

/* The check this thread is running, for libopendkim's DNS hooks. */
static _Thread_local struct auth_dns *auth_dns_current;

static DKIM_LIB *auth_dkim_lib;
static char auth_dkim_service; /* non-NULL query service handle */

static int64_t auth_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "a.b.c.d:port" (test only). 0 or -1. */
static int auth_dns_parse_server(struct auth_dns *d, const char *s)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(s, ':');
    struct sockaddr_in *sin = (struct sockaddr_in *)&d->ns[0];
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
        return -1;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -1;
    d->nslen[0] = sizeof(*sin);
    d->nns = 1;
    return 0;
}

/* Starts the clock and loads the name servers. With none usable every
 * lookup fails as temporary. */
static void auth_dns_begin(struct auth_dns *d, unsigned timeout, const char *server)
{
    memset(d, 0, sizeof(*d));
    d->deadline = auth_now() + (int64_t)timeout * 1000;
    d->server = server;
}

/* The name servers, read when a check makes its first lookup. */
static void auth_dns_load(struct auth_dns *d)
{
    struct __res_state st;

    d->loaded = true;
    if (d->server != NULL) {
        if (auth_dns_parse_server(d, d->server) < 0)
            msg_warn("smtpd_auth: bad test dns_server=%s", scrub(d->server));
        return;
    }
    memset(&st, 0, sizeof(st));
    if (res_ninit(&st) != 0) {
        msg_warn("smtpd_auth: res_ninit failed: no name servers for DKIM/SPF");
        return;
    }
    for (int i = 0; i < st.nscount && d->nns < AUTH_DNS_MAX_NS; i++) {
        /* glibc keeps IPv6 servers in _u._ext.nsaddrs, IPv4 in nsaddr_list */
        if (st._u._ext.nsaddrs[i] != NULL) {
            memcpy(&d->ns[d->nns], st._u._ext.nsaddrs[i], sizeof(struct sockaddr_in6));
            d->nslen[d->nns++] = sizeof(struct sockaddr_in6);
        } else if (st.nsaddr_list[i].sin_family == AF_INET) {
            memcpy(&d->ns[d->nns], &st.nsaddr_list[i], sizeof(struct sockaddr_in));
            d->nslen[d->nns++] = sizeof(struct sockaddr_in);
        }
    }
    res_nclose(&st);
}

/* Waits for ev on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int auth_fd_wait(int fd, short ev, int64_t until)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = ev, .revents = 0};
        int64_t left = until - auth_now();
        int n;

        if (left <= 0)
            return 0;
        n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        return 1;
    }
}

/*
 * Builds a recursive query for name/type with an EDNS0 OPT record
 * advertising payload bytes. Returns its length, -1 for a bad name.
 */
static int auth_dns_question(unsigned char *q, size_t qsz, const char *name, int type, uint16_t id,
                             uint16_t payload)
{
    unsigned char *p = q + HFIXEDSZ;
    int n;

    memset(q, 0, HFIXEDSZ);
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = AUTH_DNS_RD;
    q[5] = 1;  /* QDCOUNT */
    q[11] = 1; /* ARCOUNT: the OPT record */
    n = dn_comp(name, p, (int)(qsz - HFIXEDSZ - AUTH_DNS_QTAIL - AUTH_DNS_OPT_LEN), NULL, NULL);
    if (n < 0)
        return -1;
    p += n;
    *p++ = (unsigned char)(type >> 8);
    *p++ = (unsigned char)type;
    *p++ = 0;
    *p++ = ns_c_in;
    /* OPT: root name, type 41, class = payload, ttl 0, rdlength 0 */
    *p++ = 0;
    *p++ = 0;
    *p++ = ns_t_opt;
    *p++ = (unsigned char)(payload >> 8);
    *p++ = (unsigned char)payload;
    memset(p, 0, 6);
    p += 6;
    return (int)(p - q);
}

/* The reply answers our question: same id, a response, same question. */
static bool auth_dns_reply_ok(const unsigned char *q, size_t qlen, const unsigned char *a,
                              size_t alen)
{
    size_t qsect = qlen - HFIXEDSZ - AUTH_DNS_OPT_LEN; /* name, type, class */

    if (alen < HFIXEDSZ + qsect)
        return false;
    if (a[0] != q[0] || a[1] != q[1] || (a[2] & AUTH_DNS_QR) == 0 || (a[2] & AUTH_DNS_OPCODE) != 0)
        return false;
    if (a[4] != 0 || a[5] != 1)
        return false;
    size_t tail = HFIXEDSZ + qsect - AUTH_DNS_QTAIL;

    for (size_t i = HFIXEDSZ; i < tail; i++)
        if (tolower(a[i]) != tolower(q[i]))
            return false;
    return memcmp(a + tail, q + tail, AUTH_DNS_QTAIL) == 0;
}

static int auth_dns_udp(const struct sockaddr *sa, socklen_t salen, const unsigned char *q,
                        size_t qlen, unsigned char *ans, size_t anssz, int64_t until)
{
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ret = -1;

    if (fd < 0)
        return -1;
    /* connected: an ICMP refusal shows up as ECONNREFUSED at once */
    if (connect(fd, sa, salen) < 0 || send(fd, q, qlen, 0) != (ssize_t)qlen)
        goto out;
    while (auth_fd_wait(fd, POLLIN, until) == 1) {
        ssize_t n = recv(fd, ans, anssz, 0);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            break;
        if (auth_dns_reply_ok(q, qlen, ans, (size_t)n)) {
            ret = (int)n;
            break;
        }
    }
out:
    close(fd);
    return ret;
}

/* Reads or writes exactly n bytes before the deadline. 0 or -1. */
static int auth_io_full(int fd, unsigned char *p, size_t n, bool out, int64_t until)
{
    while (n > 0) {
        ssize_t r;

        if (auth_fd_wait(fd, out ? POLLOUT : POLLIN, until) != 1)
            return -1;
        r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int auth_dns_tcp(const struct sockaddr *sa, socklen_t salen, const unsigned char *q,
                        size_t qlen, unsigned char *ans, size_t anssz, int64_t until)
{
    unsigned char msg[2 + AUTH_DNS_QUERY_MAX];
    unsigned char len[2];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t errlen = sizeof(err);
    size_t n;
    int ret = -1;

    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS)
        goto out;
    if (auth_fd_wait(fd, POLLOUT, until) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err != 0)
        goto out;
    msg[0] = (unsigned char)(qlen >> 8);
    msg[1] = (unsigned char)qlen;
    memcpy(msg + 2, q, qlen);
    if (auth_io_full(fd, msg, qlen + 2, true, until) < 0 ||
        auth_io_full(fd, len, 2, false, until) < 0)
        goto out;
    n = (size_t)len[0] << 8 | len[1];
    if (n > anssz || auth_io_full(fd, ans, n, false, until) < 0)
        goto out;
    if (auth_dns_reply_ok(q, qlen, ans, n))
        ret = (int)n;
out:
    close(fd);
    return ret;
}

/*
 * Asks each name server in turn, sharing the time left fairly among those
 * not yet asked. Returns the reply length when a server answered NOERROR
 * or NXDOMAIN (rcode in the reply), -1 for "try again later": deadline
 * passed, no server, servers failing or refusing.
 */
static int auth_dns_query(struct auth_dns *d, const char *name, int type, unsigned char *ans,
                          size_t anssz)
{
    unsigned char q[AUTH_DNS_QUERY_MAX];
    size_t payload = anssz < AUTH_DNS_UDP_PAYLOAD ? anssz : AUTH_DNS_UDP_PAYLOAD;
    int qlen;

    if (anssz < NS_PACKETSZ)
        msg_panic("answer buffer of %zu bytes", anssz);
    if (!d->loaded)
        auth_dns_load(d);
    qlen = auth_dns_question(q, sizeof(q), name, type, (uint16_t)randombytes_uniform(65536),
                             (uint16_t)payload);
    if (qlen < 0)
        return -1;
    for (int i = 0; i < d->nns; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&d->ns[i];
        int64_t now = auth_now();
        int64_t until = now + (d->deadline - now) / (d->nns - i);
        int n;
        int rcode;

        if (d->deadline <= now)
            break;
        n = auth_dns_udp(sa, d->nslen[i], q, (size_t)qlen, ans, payload, until);
        if (n > 0 && (ans[2] & AUTH_DNS_TC) != 0) /* truncated: ask again over TCP */
            n = auth_dns_tcp(sa, d->nslen[i], q, (size_t)qlen, ans, anssz, d->deadline);
        if (n < 0)
            continue;
        rcode = ans[3] & AUTH_DNS_RCODE;
        if (rcode == ns_r_noerror || rcode == ns_r_nxdomain)
            return n;
    }
    return -1;
}

/* ---- libopendkim's DNS hooks ---- */

struct auth_dkim_query {
    size_t len;
};

static int auth_dkim_dns_start(void *srv, int type, unsigned char *query, unsigned char *buf,
                               size_t buflen, void **qh)
{
    struct auth_dkim_query *aq;
    int n;

    (void)srv;
    if (auth_dns_current == NULL)
        return -1;
    n = auth_dns_query(auth_dns_current, (const char *)query, type, buf, buflen);
    if (n < 0)
        return -1; /* libopendkim: key retrieval failed (KEYFAIL) */
    aq = xmalloc(sizeof(*aq));
    aq->len = (size_t)n;
    *qh = aq;
    return 0;
}

/* The lookup already finished in start; hand over its length. */
static int auth_dkim_dns_waitreply(void *srv, void *qh, struct timeval *to, size_t *bytes,
                                   int *error, int *dnssec)
{
    const struct auth_dkim_query *aq = qh;

    (void)srv;
    (void)to;
    if (bytes != NULL)
        *bytes = aq->len;
    if (error != NULL)
        *error = 0;
    if (dnssec != NULL)
        *dnssec = DKIM_DNSSEC_UNKNOWN;
    return DKIM_DNS_SUCCESS;
}

static int auth_dkim_dns_cancel(void *srv, void *qh)
{
    (void)srv;
    free(qh);
    return 0;
}

/* Ignores signatures past the cap so they cost no lookup and no CPU. */
static DKIM_CBSTAT auth_dkim_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
    (void)dkim;
    for (int i = SMTPD_AUTH_DKIM_MAX_SIGS; i < nsigs; i++)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

/* A verifying library handle. keyfile: DKIM_QUERY_FILE (tests) instead of
 * our DNS hooks. NULL on failure (logged). */
static DKIM_LIB *auth_dkim_lib_new(const char *keyfile, unsigned timeout)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    uint32_t flags = DKIM_LIBFLAGS_BADSIGHANDLES;
    unsigned int to = timeout;

    if (lib == NULL) {
        msg_error("smtpd_auth: dkim_init failed");
        return NULL;
    }
    if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) != DKIM_STAT_OK ||
        dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &to, sizeof(to)) != DKIM_STAT_OK ||
        dkim_set_prescreen(lib, auth_dkim_prescreen) != DKIM_STAT_OK)
        goto fail;
    if (keyfile != NULL) {
        dkim_query_t qm = DKIM_QUERY_FILE;

        if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm, sizeof(qm)) !=
                DKIM_STAT_OK ||
            dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)keyfile,
                         strlen(keyfile)) != DKIM_STAT_OK)
            goto fail;
        return lib;
    }
    dkim_dns_set_init(lib, NULL);
    dkim_dns_set_close(lib, NULL);
    dkim_dns_set_query_service(lib, &auth_dkim_service);
    dkim_dns_set_query_start(lib, auth_dkim_dns_start);
    dkim_dns_set_query_waitreply(lib, auth_dkim_dns_waitreply);
    dkim_dns_set_query_cancel(lib, auth_dkim_dns_cancel);
    return lib;
fail:
    msg_error("smtpd_auth: cannot set libopendkim options");
    dkim_close(lib);
    return NULL;
}

/* ---- libspf2's DNS layer on our resolver ---- */

static SPF_dns_rr_t *auth_spf_rr_new(SPF_dns_server_t *srv, const char *domain, ns_type type,
                                     SPF_dns_stat_t herrno)
{
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(srv, domain, type, 0, herrno);

    if (rr == NULL)
        msg_fatal("smtpd_auth: out of memory in libspf2");
    return rr;
}

/* One resource record of a reply, located by auth_dns_rr_next(). */
struct auth_dns_rr {
    int type;
    int class;
    uint32_t ttl;
    const unsigned char *rdata;
    size_t rdlen;
};

/* Steps *pos past the question section of reply a[0..alen). -1: corrupt. */
static int auth_dns_skip_question(const unsigned char *a, size_t alen, size_t *pos)
{
    int n = dn_skipname(a + HFIXEDSZ, a + alen);

    if (alen < HFIXEDSZ || n < 0 || HFIXEDSZ + (size_t)n + AUTH_DNS_QTAIL > alen)
        return -1;
    *pos = HFIXEDSZ + (size_t)n + AUTH_DNS_QTAIL;
    return 0;
}

/* Reads the record at *pos and steps past it. -1: corrupt. */
static int auth_dns_rr_next(const unsigned char *a, size_t alen, size_t *pos,
                            struct auth_dns_rr *rr)
{
    int n = dn_skipname(a + *pos, a + alen);
    const unsigned char *p;

    if (n < 0 || *pos + (size_t)n + 10 > alen)
        return -1;
    p = a + *pos + n;
    rr->type = p[0] << 8 | p[1];
    rr->class = p[2] << 8 | p[3];
    rr->ttl = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    rr->rdlen = (size_t)p[8] << 8 | p[9];
    rr->rdata = p + 10;
    if (*pos + (size_t)n + 10 + rr->rdlen > alen)
        return -1;
    *pos += (size_t)n + 10 + rr->rdlen;
    return 0;
}

/* Copies one answer record of the type asked into rr. 0, or -1 to skip. */
static int auth_spf_rr_add(SPF_dns_rr_t *rr, int idx, const unsigned char *a, size_t alen,
                           const struct auth_dns_rr *r)
{
    const unsigned char *rd = r->rdata;
    size_t rdlen = r->rdlen;
    char name[NS_MAXDNAME];

    switch (r->type) {
    case ns_t_a:
        if (rdlen != sizeof(struct in_addr) ||
            SPF_dns_rr_buf_realloc(rr, idx, sizeof(struct in_addr)) != SPF_E_SUCCESS)
            return -1;
        memcpy(&rr->rr[idx]->a, rd, rdlen);
        return 0;
    case ns_t_aaaa:
        if (rdlen != sizeof(struct in6_addr) ||
            SPF_dns_rr_buf_realloc(rr, idx, sizeof(struct in6_addr)) != SPF_E_SUCCESS)
            return -1;
        memcpy(&rr->rr[idx]->aaaa, rd, rdlen);
        return 0;
    case ns_t_mx:
    case ns_t_ptr: {
        size_t skip = r->type == ns_t_mx ? NS_INT16SZ : 0;

        if (rdlen < skip + 1 || dn_expand(a, a + alen, rd + skip, name, sizeof(name)) < 0 ||
            SPF_dns_rr_buf_realloc(rr, idx, strlen(name) + 1) != SPF_E_SUCCESS)
            return -1;
        strcpy(r->type == ns_t_mx ? rr->rr[idx]->mx : rr->rr[idx]->ptr, name);
        return 0;
    }
    case ns_t_txt: {
        /* character-strings concatenated (RFC 7208 3.3) */
        char *out;
        size_t o = 0;

        if (SPF_dns_rr_buf_realloc(rr, idx, rdlen + 1) != SPF_E_SUCCESS)
            return -1;
        out = rr->rr[idx]->txt;
        for (size_t i = 0; i < rdlen;) {
            size_t len = rd[i++];

            if (len > rdlen - i)
                return -1;
            memcpy(out + o, rd + i, len);
            o += len;
            i += len;
        }
        out[o] = '\0';
        return 0;
    }
    default:
        return -1;
    }
}

static SPF_dns_rr_t *auth_spf_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type,
                                     int should_cache)
{
    struct auth_dns *d = srv->hook;
    unsigned char *ans;
    SPF_dns_rr_t *rr;
    size_t pos;
    int n;
    int cnt = 0;

    (void)should_cache;
    if (type == ns_t_spf) /* RFC 7208 3.1: discontinued, never asked */
        return auth_spf_rr_new(srv, domain, type, NO_DATA);
    ans = xmalloc(AUTH_DNS_TCP_MAX);
    n = auth_dns_query(d, domain, type, ans, AUTH_DNS_TCP_MAX);
    if (n < 0 || auth_dns_skip_question(ans, (size_t)n, &pos) < 0) {
        free(ans);
        return auth_spf_rr_new(srv, domain, type, TRY_AGAIN);
    }
    if ((ans[3] & AUTH_DNS_RCODE) == ns_r_nxdomain) {
        free(ans);
        return auth_spf_rr_new(srv, domain, type, HOST_NOT_FOUND);
    }
    rr = auth_spf_rr_new(srv, domain, type, NETDB_SUCCESS);
    for (int i = 0; i < (ans[6] << 8 | ans[7]); i++) {
        struct auth_dns_rr r;

        if (auth_dns_rr_next(ans, (size_t)n, &pos, &r) < 0)
            break;
        if (r.type != (int)type || r.class != ns_c_in)
            continue; /* CNAMEs: the server followed them for us */
        if (auth_spf_rr_add(rr, cnt, ans, (size_t)n, &r) == 0) {
            if (cnt == 0 || (time_t)r.ttl < rr->ttl)
                rr->ttl = (time_t)r.ttl;
            cnt++;
        }
    }
    rr->num_rr = cnt;
    if (cnt == 0)
        rr->herrno = NO_DATA;
    free(ans);
    return rr;
}

static void auth_spf_layer_free(SPF_dns_server_t *srv)
{
    free(srv);
}

static SPF_dns_server_t *auth_spf_layer_new(struct auth_dns *d)
{
    SPF_dns_server_t *srv = xcalloc(1, sizeof(*srv));

    srv->destroy = auth_spf_layer_free;
    srv->lookup = auth_spf_lookup;
    srv->name = "sealpost";
    srv->hook = d;
    return srv;
}

/*
 * Test zone file: "name TYPE data" per line, TYPE one of TXT A AAAA MX PTR
 * (data as libspf2's zone layer takes it), or "name NXDOMAIN" / "name
 * TRYAGAIN" (no data). '#' starts a comment line. Unknown names are
 * NXDOMAIN. NULL when the file cannot be read or has a bad line.
 */
static SPF_dns_server_t *auth_spf_zone_load(const char *path)
{
    static const struct {
        const char *name;
        ns_type type;
        SPF_dns_stat_t herrno;
    } types[] = {
        {"TXT", ns_t_txt, NETDB_SUCCESS},   {"A", ns_t_a, NETDB_SUCCESS},
        {"AAAA", ns_t_aaaa, NETDB_SUCCESS}, {"MX", ns_t_mx, NETDB_SUCCESS},
        {"PTR", ns_t_ptr, NETDB_SUCCESS},   {"NXDOMAIN", ns_t_any, HOST_NOT_FOUND},
        {"TRYAGAIN", ns_t_any, TRY_AGAIN},
    };
    SPF_dns_server_t *zone = NULL;
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0;

    if (f == NULL) {
        msg_warn("smtpd_auth: %s: %s", scrub(path), strerror(errno));
        return NULL;
    }
    zone = SPF_dns_zone_new(NULL, "test-zone", 0);
    if (zone == NULL)
        msg_fatal("smtpd_auth: out of memory in libspf2");
    while (fgets(line, sizeof(line), f) != NULL) {
        char *name;
        char *type;
        char *data;
        size_t t;

        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        name = strtok(line, " \t");
        if (name == NULL || name[0] == '#')
            continue;
        type = strtok(NULL, " \t");
        data = strtok(NULL, "");
        while (data != NULL && (*data == ' ' || *data == '\t'))
            data++;
        for (t = 0; type != NULL && t < sizeof(types) / sizeof(types[0]); t++)
            if (strcmp(type, types[t].name) == 0)
                break;
        if (type == NULL || t == sizeof(types) / sizeof(types[0]) ||
            (types[t].herrno == NETDB_SUCCESS) != (data != NULL && *data != '\0') ||
            SPF_dns_zone_add_str(zone, name, types[t].type, types[t].herrno,
                                 types[t].herrno == NETDB_SUCCESS ? data : NULL) != SPF_E_SUCCESS) {
            msg_warn("smtpd_auth: %s:%d: bad zone line", scrub(path), lineno);
            SPF_dns_free(zone);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    return zone;
}

/* libspf2 talks through these process-wide hooks. */
static void auth_spf_log_error(const char *file, int line, const char *errmsg)
    __attribute__((noreturn));
static void auth_spf_log_error(const char *file, int line, const char *errmsg)
{
    msg_panic("libspf2 %s:%d: %s", scrub(file), line, scrub(errmsg));
}

static void auth_spf_log_warning(const char *file, int line, const char *errmsg)
{
    (void)file;
    (void)line;
    msg_warn("smtpd_auth: libspf2: %s", scrub(errmsg));
}

static void auth_spf_log_debug(const char *file, int line, const char *errmsg)
{
    (void)file;
    (void)line;
    msg_debug("smtpd_auth: libspf2: %s", scrub(errmsg));
}

/* ---- small text helpers ---- */

/* Copies src into dst, every byte that is not printable ASCII becoming '?'. */
static void auth_copy(char *dst, size_t dstsz, const char *src)
{
    size_t i = 0;

    for (; src != NULL && src[i] != '\0' && i + 1 < dstsz; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[i] = '\0';
}

/* The reverse-path without the <> a caller may have left on it. */
static void auth_path_strip(char *dst, const char *src)
{
    size_t len = 0;

    if (src != NULL) {
        if (*src == '<')
            src++;
        len = strcspn(src, ">");
        if (len > AUTH_VALUE_MAX)
            len = AUTH_VALUE_MAX;
        memcpy(dst, src, len);
    }
    dst[len] = '\0';
}

/* RFC 7208 4.3: a usable domain has several labels of 1..63 characters. */
static bool auth_domain_ok(const char *s)
{
    size_t len = strlen(s);
    size_t label = 0;
    int labels = 0;

    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (label == 0 || label > 63)
                return false;
            labels++;
            label = 0;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
            label++;
        } else {
            return false;
        }
    }
    return labels >= 2;
}

static bool auth_ip_loopback(const char *ip)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, ip, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, ip, &a6) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/* ---- DKIM ---- */

/* RFC 8601 2.7.1 result for a signature error (see the file header). */
static const struct {
    int err;
    const char *result;
} auth_dkim_errors[] = {
    {DKIM_SIGERROR_BADSIG, "fail"},
    {DKIM_SIGERROR_KEYFAIL, "temperror"},
    {DKIM_SIGERROR_NOKEY, "permerror"},
    {DKIM_SIGERROR_KEYREVOKED, "permerror"},
    {DKIM_SIGERROR_DNSSYNTAX, "permerror"},
    {DKIM_SIGERROR_MULTIREPLY, "permerror"},
    {DKIM_SIGERROR_KEYVERSION, "permerror"},
    {DKIM_SIGERROR_KEYUNKNOWNHASH, "permerror"},
    {DKIM_SIGERROR_KEYHASHMISMATCH, "permerror"},
    {DKIM_SIGERROR_NOTEMAILKEY, "permerror"},
    {DKIM_SIGERROR_KEYTYPEMISSING, "permerror"},
    {DKIM_SIGERROR_KEYTYPEUNKNOWN, "permerror"},
    {DKIM_SIGERROR_KEYDECODE, "permerror"},
    {DKIM_SIGERROR_SUBDOMAIN, "permerror"},
    {DKIM_SIGERROR_KEYTOOSMALL, "policy"},
};

static const char *auth_dkim_sig_result(DKIM_SIGINFO *sig)
{
    unsigned int flags = dkim_sig_getflags(sig);
    int err = dkim_sig_geterror(sig);

    if (DKIM_SIG_CHECK(sig) && (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN))
        return "pass";
    if (err == DKIM_SIGERROR_OK)
        return "fail"; /* key found, signature or body hash wrong */
    if (err == DKIM_SIGERROR_UNKNOWN)
        /* evaluation stopped before this one (e.g. a library error) */
        return (flags & DKIM_SIGFLAG_PROCESSED) != 0 ? "fail" : "temperror";
    for (size_t i = 0; i < sizeof(auth_dkim_errors) / sizeof(auth_dkim_errors[0]); i++)
        if (auth_dkim_errors[i].err == err)
            return auth_dkim_errors[i].result;
    return "neutral"; /* signature syntax, expiry, tags: not processable */
}

/*
 * Whether the message starting with p[0..n) certainly carries no
 * DKIM-Signature field, so that libopendkim would only say "none" (it
 * costs a small delivery ~20 us to find that out): its header block ends
 * within p, and AUTH_DKIM_FIELD appears nowhere in that block, in any
 * case, at a line start or not. Anything less certain (a header longer
 * than p, lines that do not end in LF) goes through libopendkim.
 */
static bool auth_dkim_unsigned(const unsigned char *p, size_t n)
{
    const size_t flen = sizeof(AUTH_DKIM_FIELD) - 1;
    size_t end = SIZE_MAX; /* where the empty line that ends the header starts */
    if ((n >= 1 && p[0] == '\n') || (n >= 2 && p[0] == '\r' && p[1] == '\n'))
        end = 0;
    for (const unsigned char *q = memchr(p, '\n', n); q != NULL && end == SIZE_MAX;
         q = memchr(q + 1, '\n', n - (size_t)(q + 1 - p))) {
        size_t i = (size_t)(q - p) + 1;
        if ((i < n && p[i] == '\n') || (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n'))
            end = i;
    }
    if (end == SIZE_MAX)
        return false;
    for (size_t i = 0; i + flen <= end; i++)
        if ((p[i] | 0x20) == AUTH_DKIM_FIELD[0] &&
            strncasecmp((const char *)p + i, AUTH_DKIM_FIELD, flen) == 0)
            return false;
    return true;
}

/* Feeds the message to a verifying handle; fills the DKIM part of out.
 * reasons[i] gets a short text for sigs[i] (or ""). -1 when unreadable. */
static int auth_dkim_run(const struct smtpd_auth_request *rq, int fd, struct smtpd_auth_result *out,
                         char reasons[][AUTH_REASON_MAX])
{
    DKIM_LIB *lib = auth_dkim_lib;
    DKIM_SIGINFO **sigs = NULL;
    DKIM_STAT st;
    DKIM *dkim;
    unsigned char *chunk;
    off_t off = 0;
    int nsigs = 0;
    int ret = 0;
    bool fed = true;

    if (rq->dkim_keyfile != NULL)
        lib = auth_dkim_lib_new(rq->dkim_keyfile, rq->dns_timeout);
    if (lib == NULL)
        msg_panic("smtpd_auth_open() was not called");
    chunk = xmalloc(AUTH_READ_CHUNK);
    ssize_t n;
    while ((n = pread(fd, chunk, AUTH_READ_CHUNK, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        msg_warn("smtpd_auth: message read: %s", strerror(errno));
        auth_copy(out->dkim, sizeof(out->dkim), "temperror");
        free(chunk);
        ret = -1;
        goto done;
    }
    if (auth_dkim_unsigned(chunk, (size_t)n)) {
        auth_copy(out->dkim, sizeof(out->dkim), "none");
        free(chunk);
        goto done;
    }
    dkim = dkim_verify(lib, (const unsigned char *)"smtpd_auth", NULL, &st);
    if (dkim == NULL) {
        msg_warn("smtpd_auth: dkim_verify failed: status=%d", (int)st);
        auth_copy(out->dkim, sizeof(out->dkim), "temperror");
        free(chunk);
        goto done;
    }
    for (bool first = true;; first = false) {
        if (!first)
            n = pread(fd, chunk, AUTH_READ_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            msg_warn("smtpd_auth: message read: %s", strerror(errno));
            ret = -1;
            break;
        }
        if (n == 0)
            break;
        off += n;
        /* NOSIG (no signature in the header) or a refusal (malformed
         * header block): the body need not be read; dkim_eom still reports
         * the signatures seen so far. */
        if (dkim_chunk(dkim, chunk, (size_t)n) != DKIM_STAT_OK) {
            fed = false;
            break;
        }
    }
    free(chunk);
    if (ret < 0) {
        auth_copy(out->dkim, sizeof(out->dkim), "temperror");
        dkim_free(dkim);
        goto done;
    }
    if (fed)
        (void)dkim_chunk(dkim, NULL, 0);
    st = dkim_eom(dkim, NULL);
    if (dkim_getsiglist(dkim, &sigs, &nsigs) != DKIM_STAT_OK)
        nsigs = 0;
    for (int i = 0; i < nsigs && out->nsigs < SMTPD_AUTH_DKIM_MAX_SIGS; i++) {
        struct smtpd_auth_sig *s = &out->sigs[out->nsigs];
        int err = dkim_sig_geterror(sigs[i]);

        if ((dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) != 0)
            continue;
        auth_copy(s->result, sizeof(s->result), auth_dkim_sig_result(sigs[i]));
        auth_copy(s->domain, sizeof(s->domain), (const char *)dkim_sig_getdomain(sigs[i]));
        auth_copy(s->selector, sizeof(s->selector), (const char *)dkim_sig_getselector(sigs[i]));
        reasons[out->nsigs][0] = '\0';
        if (strcmp(s->result, "pass") == 0)
            ;
        else if (strcmp(s->result, "fail") == 0 && dkim_sig_getbh(sigs[i]) == DKIM_SIGBH_MISMATCH)
            auth_copy(reasons[out->nsigs], AUTH_REASON_MAX, "body hash mismatch");
        else if (err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK)
            auth_copy(reasons[out->nsigs], AUTH_REASON_MAX, dkim_sig_geterrorstr(err));
        else if (strcmp(s->result, "fail") == 0)
            auth_copy(reasons[out->nsigs], AUTH_REASON_MAX, "signature mismatch");
        out->nsigs++;
    }
    if (out->nsigs == 0) {
        /* unsigned, or too malformed to carry a signature */
        bool trouble = st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL;

        auth_copy(out->dkim, sizeof(out->dkim), trouble ? "temperror" : "none");
    } else {
        unsigned best = 0;

        for (unsigned i = 0; i < out->nsigs; i++)
            if (strcmp(out->sigs[i].result, "pass") == 0) {
                best = i;
                break;
            }
        memcpy(out->dkim, out->sigs[best].result, sizeof(out->dkim));
        memcpy(out->dkim_domain, out->sigs[best].domain, sizeof(out->dkim_domain));
        memcpy(out->dkim_selector, out->sigs[best].selector, sizeof(out->dkim_selector));
    }
    dkim_free(dkim);
done:
    if (lib != auth_dkim_lib)
        dkim_close(lib);
    return ret;
}

/* ---- SPF ---- */

/*
 * libspf2 1.2.10 leaves the result INVALID when it stopped on an error and
 * says why only in the return code of the query: a DNS failure (even while
 * fetching the record) is temperror, a record that does not compile is
 * permerror (RFC 7208 4.6).
 */
static const char *auth_spf_result_name(SPF_response_t *resp, SPF_errcode_t err)
{
    switch (SPF_response_result(resp)) {
    case SPF_RESULT_PASS:
        return "pass";
    case SPF_RESULT_FAIL:
        return "fail";
    case SPF_RESULT_SOFTFAIL:
        return "softfail";
    case SPF_RESULT_NEUTRAL:
        return "neutral";
    case SPF_RESULT_NONE:
        return "none";
    case SPF_RESULT_PERMERROR:
        return "permerror";
    case SPF_RESULT_INVALID:
        return err == SPF_E_DNS_ERROR || err == SPF_E_NO_MEMORY ? "temperror" : "permerror";
    case SPF_RESULT_TEMPERROR:
    default:
        return "temperror";
    }
}

static void auth_spf_run(const struct smtpd_auth_request *rq, struct auth_dns *d,
                         struct smtpd_auth_result *out)
{
    char from[AUTH_VALUE_MAX + 1];
    const char *helo = rq->helo != NULL ? rq->helo : "";
    const char *domain;
    SPF_dns_server_t *layer;
    SPF_server_t *server;
    SPF_request_t *req;
    SPF_response_t *resp = NULL;
    struct in6_addr a6;
    struct in_addr a4;
    bool v4;

    auth_path_strip(from, rq->mail_from);
    out->spf_helo = from[0] == '\0';
    domain = out->spf_helo ? helo : (strrchr(from, '@') ? strrchr(from, '@') + 1 : from);
    auth_copy(out->spf_domain, sizeof(out->spf_domain), domain);
    v4 = inet_pton(AF_INET, rq->client_ip, &a4) == 1;
    if (!auth_domain_ok(domain) || auth_ip_loopback(rq->client_ip) ||
        (!v4 && inet_pton(AF_INET6, rq->client_ip, &a6) != 1)) {
        auth_copy(out->spf, sizeof(out->spf), "none");
        return;
    }
    if (rq->spf_zonefile != NULL) {
        layer = auth_spf_zone_load(rq->spf_zonefile);
        if (layer == NULL) {
            auth_copy(out->spf, sizeof(out->spf), "temperror");
            return;
        }
    } else {
        layer = auth_spf_layer_new(d);
    }
    server = SPF_server_new_dns(layer, 0);
    if (server == NULL)
        msg_fatal("smtpd_auth: out of memory in libspf2");
    req = SPF_request_new(server);
    if (req == NULL)
        msg_fatal("smtpd_auth: out of memory in libspf2");
    if ((v4 ? SPF_request_set_ipv4(req, a4) : SPF_request_set_ipv6(req, a6)) != SPF_E_SUCCESS ||
        (helo[0] != '\0' && SPF_request_set_helo_dom(req, helo) != SPF_E_SUCCESS) ||
        SPF_request_set_env_from(req, out->spf_helo ? "" : from) != 0) {
        auth_copy(out->spf, sizeof(out->spf), "permerror");
    } else {
        SPF_errcode_t err = SPF_request_query_mailfrom(req, &resp);

        auth_copy(out->spf, sizeof(out->spf),
                  resp != NULL ? auth_spf_result_name(resp, err) : "temperror");
    }
    if (resp != NULL)
        SPF_response_free(resp);
    SPF_request_free(req);
    SPF_server_free(server);
    SPF_dns_free(layer);
}

/* ---- the header ---- */

struct auth_hdr {
    struct buf b;
    size_t col; /* characters on the current line */
};

static void auth_hdr_raw(struct auth_hdr *h, const char *s)
{
    if (buf_puts(&h->b, s) < 0)
        msg_panic("header over %d bytes", SMTPD_AUTH_HEADER_MAX);
    h->col += strlen(s);
}

static void auth_hdr_newline(struct auth_hdr *h)
{
    auth_hdr_raw(h, "\r\n\t");
    h->col = 1;
}

/* Appends " word", folding first when the line would grow too long. */
static void auth_hdr_word(struct auth_hdr *h, const char *word)
{
    if (h->col + 1 + strlen(word) > AUTH_FOLD_COLUMN && h->col > 1)
        auth_hdr_newline(h);
    else
        auth_hdr_raw(h, " ");
    if (h->col + strlen(word) > AUTH_LINE_MAX)
        msg_panic("header word of %zu bytes", strlen(word));
    auth_hdr_raw(h, word);
}

static bool auth_char_plain(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c == '+';
}

/*
 * Encodes value as an RFC 8601 pvalue into dst (at least
 * AUTH_VALUE_BYTES): left bare when it is a token or local@domain of plain
 * characters, else a quoted-string in which anything but printable ASCII
 * has become '?'. Values are cut at AUTH_VALUE_MAX characters.
 */
#define AUTH_VALUE_BYTES (AUTH_VALUE_MAX * 2 + 3)
static void auth_value_encode(char *dst, const char *value)
{
    size_t len = strnlen(value, AUTH_VALUE_MAX);
    const char *at = memchr(value, '@', len);
    bool plain = len > 0;
    size_t o = 0;

    for (size_t i = 0; i < len && plain; i++)
        plain = auth_char_plain((unsigned char)value[i]) || value + i == at;
    if (at != NULL && (at == value || at == value + len - 1))
        plain = false;
    if (!plain)
        dst[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c == '"' || c == '\\')
            dst[o++] = '\\';
        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (!plain)
        dst[o++] = '"';
    dst[o] = '\0';
}

/* Appends " name=value" (value encoded), folding when needed. */
static void auth_hdr_prop(struct auth_hdr *h, const char *name, const char *value)
{
    char enc[AUTH_VALUE_BYTES];
    char word[AUTH_VALUE_BYTES + 32];

    auth_value_encode(enc, value);
    snprintf(word, sizeof(word), "%s=%s", name, enc);
    auth_hdr_word(h, word);
}

static void auth_hdr_method(struct auth_hdr *h, const char *method, const char *result)
{
    auth_hdr_raw(h, ";");
    auth_hdr_newline(h);
    auth_hdr_raw(h, method);
    auth_hdr_raw(h, "=");
    auth_hdr_raw(h, result);
}

static void auth_header_build(const struct smtpd_auth_request *rq, struct smtpd_auth_result *out,
                              char reasons[][AUTH_REASON_MAX])
{
    struct auth_hdr h = {BUF_INIT, 0};
    char id[AUTH_VALUE_BYTES];
    char from[AUTH_VALUE_MAX + 1];

    buf_init(&h.b, sizeof(out->header) - 1);
    auth_hdr_raw(&h, AUTH_HEADER_NAME);
    auth_value_encode(id, rq->authserv_id);
    auth_hdr_word(&h, id);
    if (out->dkim[0] != '\0' && out->nsigs == 0)
        auth_hdr_method(&h, "dkim", out->dkim);
    for (unsigned i = 0; i < out->nsigs; i++) {
        auth_hdr_method(&h, "dkim", out->sigs[i].result);
        if (reasons[i][0] != '\0')
            auth_hdr_prop(&h, "reason", reasons[i]);
        if (out->sigs[i].domain[0] != '\0')
            auth_hdr_prop(&h, "header.d", out->sigs[i].domain);
        if (out->sigs[i].selector[0] != '\0')
            auth_hdr_prop(&h, "header.s", out->sigs[i].selector);
    }
    if (out->spf[0] != '\0') {
        auth_hdr_method(&h, "spf", out->spf);
        auth_path_strip(from, rq->mail_from);
        if (!out->spf_helo)
            auth_hdr_prop(&h, "smtp.mailfrom", from);
        else if (out->spf_domain[0] != '\0')
            auth_hdr_prop(&h, "smtp.helo", out->spf_domain);
    }
    if (out->dkim[0] == '\0' && out->spf[0] == '\0') /* RFC 8601 2.2 */
        auth_hdr_raw(&h, "; none");
    auth_hdr_raw(&h, "\r\n");
    memcpy(out->header, h.b.data, h.b.len + 1);
    buf_free(&h.b);
}

/* ---- public ---- */

int smtpd_auth_open(void)
{
    if (auth_dkim_lib != NULL)
        return 0;
    SPF_error_handler = auth_spf_log_error;
    SPF_warning_handler = auth_spf_log_warning;
    SPF_info_handler = auth_spf_log_debug;
    SPF_debug_handler = auth_spf_log_debug;
    auth_dkim_lib = auth_dkim_lib_new(NULL, 0);
    return auth_dkim_lib != NULL ? 0 : -1;
}

void smtpd_auth_close(void)
{
    if (auth_dkim_lib != NULL)
        dkim_close(auth_dkim_lib);
    auth_dkim_lib = NULL;
}

int smtpd_auth_check(const struct smtpd_auth_request *rq, int msg_fd, struct smtpd_auth_result *out)
{
    char reasons[SMTPD_AUTH_DKIM_MAX_SIGS][AUTH_REASON_MAX];
    struct auth_dns dns;
    int ret = 0;

    if (rq->authserv_id == NULL || rq->client_ip == NULL)
        msg_panic("authserv_id and client_ip are required");
    memset(out, 0, sizeof(*out));
    if (rq->dkim || rq->spf)
        auth_dns_begin(&dns, rq->dns_timeout, rq->dns_server);
    if (rq->dkim) {
        auth_dns_current = &dns;
        ret = auth_dkim_run(rq, msg_fd, out, reasons);
        auth_dns_current = NULL;
    }
    if (rq->spf)
        auth_spf_run(rq, &dns, out);
    auth_header_build(rq, out, reasons);
    return ret;
}
