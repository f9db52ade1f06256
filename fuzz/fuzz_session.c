/*
 * fuzz_session — libFuzzer harness for the SMTP session state machine: the
 * real smtpd/smtpd_session.c, smtpd_data.c (DATA reader), smtpd_addr.c
 * (paths, parameters, EHLO argument) and smtpd_reply.c, driven in one
 * thread with no sockets, no epoll and no worker pool. This file is the
 * I/O layer instead: it defines the functions of smtpd_server.c,
 * smtpd_pool.c and smtpd_tls.c that the session calls (smtpd_int.h), so
 * the linker takes the session objects from libsealpost.a and never the
 * server's. fuzz_smtp.c runs the same inputs through the whole daemon on
 * loopback (slow, end to end); this one runs thousands per second.
 *
 * Input: the layout of fuzz_smtp.c (corpora are shared). Byte 0 seeds a
 * PRNG that chooses piece sizes (bit 7 set: up to 4 KiB, else up to 16
 * bytes), the config (defaults, or tight limits with a greet pause), the
 * outcome of each recipient check and delivery (accepted, or each refusal
 * the pool can give), whether STARTTLS is offered and the handshake
 * succeeds, and how far the clock moves between pieces (timeouts, greet
 * pause, session deadline, data rate). FUZZ_LOG=1 shows the session's log,
 * FUZZ_SHOW=1 its replies. "%W" and "%D" end a piece (the
 * client waits for replies there); "%R" becomes a Mail-in address.
 *
 * Checked, besides "no crash, no sanitizer report":
 *   - the replies, by fuzz_smtp_reply.h;
 *   - a session freed never has a job in flight; a job is never started
 *     while another one runs; input is only given while the session reads;
 *   - a delivery job: at least one recipient, its memfd holds exactly
 *     `size` bytes with CRLF line ends only (no bare CR or LF gets past the
 *     DATA reader), and our Received: header is printable ASCII lines
 *     ending in CRLF with no bare CR or LF (no header injection);
 *   - nothing is written after the session closed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fuzz/fuzz_smtp_reply.h"
#include "lib/log.h"
#include "lib/rand.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "smtpd/smtpd_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FS_REPLY_MAX (256u * 1024u) /* replies kept per run */
#define FS_FAKE_FD 1000             /* the session's "socket": never used for I/O */
#define FS_ADDRESS "victim@mailin.test"

/* The two configs: the defaults, and tight limits with a greet pause. */
static const char conf_default[] = "[server]\nhostname = fuzz.test\ndata_dir = data\n"
                                   "[mailin]\ndomains = mailin.test\npostmaster = victim\n";
static const char conf_tight[] =
    "[server]\nhostname = fuzz.test\ndata_dir = data\n"
    "[mailin]\ndomains = mailin.test\npostmaster = victim\ngreet_pause = 2s\n"
    "max_errors = 4\nmax_recipients = 3\nmessage_size_limit = 4K\nheader_size_limit = "
    "2K\nline_length_limit = 512\n"
    "data_line_length_limit = 1000\ncommand_timeout = 30s\ndata_timeout = 60s\n"
    "session_deadline = 5m\nmin_data_rate = 100\n";
static struct config *configs[2];
static bool show; /* FUZZ_SHOW: print each run's replies */

/* ---- the run's state (one session at a time, one thread) ---- */

static struct {
    uint64_t now;   /* the fake clock, ms */
    uint32_t prng;  /* xorshift state */
    bool tls_offer; /* STARTTLS offered */
    struct smtpd_job *job;
    char *replies;
    size_t nreplies;
    bool freed;
} run;

static uint32_t rnd(void)
{
    run.prng ^= run.prng << 13;
    run.prng ^= run.prng >> 17;
    run.prng ^= run.prng << 5;
    return run.prng;
}

static void fs_abort(const char *why)
{
    fprintf(stderr, "fuzz_session: %s\n", why);
    abort();
}

/* ---- the I/O layer the session calls (smtpd_int.h) ---- */

uint64_t smtpd_now_ms(void)
{
    return run.now;
}

void smtpd_io_update(struct smtpd_session *s)
{
    (void)s;
}

void smtpd_io_flush(struct smtpd_session *s)
{
    if (s->fd < 0) {
        if (s->out.len)
            fs_abort("output queued on a freed session");
        return;
    }
    if (s->out.len) {
        size_t n = s->out.len;
        if (n > FS_REPLY_MAX - run.nreplies)
            n = FS_REPLY_MAX - run.nreplies;
        memcpy(run.replies + run.nreplies, s->out.data, n);
        run.nreplies += n;
    }
    buf_free(&s->out);
    if (s->closing && s->job == NULL)
        smtpd_session_free(s);
}

void smtpd_io_resume(struct smtpd_session *s)
{
    smtpd_io_flush(s);
}

void smtpd_session_unwatch(struct smtpd_session *s)
{
    s->unwatched = true;
}

void smtpd_session_free(struct smtpd_session *s)
{
    if (s->job)
        fs_abort("session freed with a job in flight");
    if (s->fd < 0)
        return;
    s->fd = -1;
    smtpd_session_release(s);
    run.freed = true;
}

void smtpd_pool_push(struct smtpd_pool *p, struct smtpd_job *j)
{
    (void)p;
    if (run.job)
        fs_abort("a job started while another one runs");
    run.job = j;
}

/* No store here: every recipient lookup is a job the harness answers. */
struct deliver_ctx *smtpd_lookup_ctx(struct smtpd_server *srv, struct config *cfg)
{
    (void)srv;
    (void)cfg;
    return NULL;
}

bool smtpd_tls_offered(struct smtpd_server *srv)
{
    (void)srv;
    return run.tls_offer;
}

int smtpd_tls_begin(struct smtpd_session *s)
{
    (void)s;
    return rnd() % 8 == 0 ? -1 : 0; /* sometimes SSL_new fails */
}

const char *smtpd_tls_version(const struct smtpd_session *s)
{
    (void)s;
    return "TLSv1.3";
}

const char *smtpd_tls_cipher(const struct smtpd_session *s)
{
    (void)s;
    return "TLS_AES_256_GCM_SHA384";
}

int smtpd_tls_bits(const struct smtpd_session *s)
{
    (void)s;
    return 256;
}

/* ---- the driver ---- */

static const enum sp_status rcpt_outcomes[] = {
    SP_UNKNOWN_USER, SP_DISABLED_USER, SP_RELAY_DENIED, SP_OVER_QUOTA, SP_BAD_ADDRESS, SP_TEMPFAIL,
};
static const enum sp_status deliver_outcomes[] = {
    SP_TEMPFAIL, SP_DISK_FULL, SP_OVER_QUOTA, SP_TOO_BIG, SP_BAD_INPUT, SP_UNKNOWN_USER,
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check_received(const char *r)
{
    if (r == NULL || *r == '\0')
        fs_abort("delivery without a Received: header");
    size_t n = strlen(r);
    if (n < 2 || r[n - 2] != '\r' || r[n - 1] != '\n')
        fs_abort("Received: header does not end in CRLF");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r[i];
        if (c == '\r' && (i + 1 >= n || r[i + 1] != '\n'))
            fs_abort("bare CR in the Received: header");
        if (c == '\n' && (i == 0 || r[i - 1] != '\r'))
            fs_abort("bare LF in the Received: header");
        if (c == '\n' && i + 1 < n && r[i + 1] != ' ' && r[i + 1] != '\t')
            fs_abort("Received: header continues with a new header line");
        if (c != '\r' && c != '\n' && c != '\t' && (c < 0x20 || c > 0x7e))
            fs_abort("control or 8-bit byte in the Received: header");
    }
}

/* An accepted message holds CRLF line ends only: a bare CR or LF in DATA
 * refuses the message (RULES.md 2), so none may reach a delivery. */
static void check_stored(int fd, uint64_t size)
{
    char *m = xmalloc(size + 1);
    if (pread(fd, m, size, 0) != (ssize_t)size)
        fs_abort("delivery job: cannot read the memfd");
    for (uint64_t i = 0; i < size; i++) {
        if (m[i] == '\r' && (i + 1 >= size || m[i + 1] != '\n'))
            fs_abort("accepted message holds a bare CR");
        if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
            fs_abort("accepted message holds a bare LF");
    }
    free(m);
}

/* Plays the worker: answers the job in flight the way the pool can. */
static void job_finish(struct smtpd_session *s)
{
    struct smtpd_job *j = run.job;
    run.job = NULL;
    if (j->kind == JOB_RCPT) {
        if (rnd() % 4 != 0) {
            j->status = SP_OK;
            j->rcpt.address = xstrdup(j->address);
            j->rcpt.user_id = 1 + (int64_t)(rnd() % 3); /* duplicates happen */
            j->rcpt.user_name = xstrdup("victim");
        } else {
            j->status = rcpt_outcomes[rnd() % N(rcpt_outcomes)];
        }
    } else {
        if (j->nrcpts == 0)
            fs_abort("delivery job without recipients");
        struct stat st;
        if (j->fd < 0 || fstat(j->fd, &st) != 0 || (uint64_t)st.st_size != j->size)
            fs_abort("delivery job: the memfd does not hold `size` bytes");
        check_received(j->received);
        check_stored(j->fd, j->size);
        if (rnd() % 4 != 0) {
            j->status = SP_OK;
            memcpy(j->queue_id, "FUZZQUEUEID", sizeof("FUZZQUEUEID"));
        } else {
            j->status = deliver_outcomes[rnd() % N(deliver_outcomes)];
        }
    }
    s->job = NULL;
    smtpd_session_job_done(s, j);
    smtpd_io_resume(s);
    smtpd_job_free(j);
}

/* Runs what the server would between two reads: finished jobs, the TLS
 * handshake, the timer. */
static void settle(struct smtpd_session *s)
{
    while (s->fd >= 0 && (run.job || s->state == SS_TLS_HANDSHAKE)) {
        if (run.job) {
            job_finish(s);
        } else if (rnd() % 4 == 0) {
            smtpd_session_free(s); /* handshake failed */
        } else {
            smtpd_session_tls_done(s);
            smtpd_io_flush(s);
        }
    }
    if (s->fd < 0)
        return;
    uint32_t r = rnd() % 16;
    if (r >= 12) { /* the client pauses: seconds, or minutes */
        run.now += r == 15 ? (uint64_t)(rnd() % 600) * 1000u : (uint64_t)(rnd() % 5000);
        smtpd_session_tick(s, run.now);
        smtpd_io_flush(s);
    }
}

/* Expands "%R" into out; returns the length. "%W"/"%D" stay (piece ends). */
static size_t expand(const uint8_t *d, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '%' && i + 1 < n && d[i + 1] == 'R') {
            memcpy(out + k, FS_ADDRESS, sizeof(FS_ADDRESS) - 1);
            k += sizeof(FS_ADDRESS) - 1;
            i++;
            continue;
        }
        out[k++] = (char)d[i];
    }
    return k;
}

/* Length of the next piece at p[0..n): up to a marker, else random. */
static size_t next_piece(const char *p, size_t n, size_t max_piece, size_t *skip)
{
    size_t want = 1 + rnd() % max_piece;
    if (want > n)
        want = n;
    *skip = 0;
    for (size_t i = 0; i + 1 < n && i < want; i++) {
        if (p[i] == '%' && (p[i + 1] == 'W' || p[i + 1] == 'D')) {
            *skip = 2;
            return i;
        }
    }
    return want;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_open("fuzz_session", getenv("FUZZ_LOG") != NULL, 0);
    if (sodium_init() < 0)
        fs_abort("sodium_init");
    char dir[] = "/dev/shm/sealpost-fuzz-session.XXXXXX";
    if (mkdtemp(dir) == NULL)
        fs_abort("mkdtemp");
    const char *texts[2] = {conf_default, conf_tight};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/c%d.conf", dir, i);
        FILE *f = fopen(path, "w");
        if (f == NULL || fputs(texts[i], f) < 0 || fclose(f) != 0)
            fs_abort("cannot write a config");
        struct diag d = {0};
        if (config_load(path, &configs[i], &d) != 0) {
            for (size_t k = 0; k < d.n; k++)
                fprintf(stderr, "%s\n", d.msgs[k]);
            fs_abort("config_load");
        }
        unlink(path);
    }
    rmdir(dir);
    run.replies = xmalloc(FS_REPLY_MAX);
    show = getenv("FUZZ_SHOW") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    run.prng = 0x9e3779b9u ^ (uint32_t)data[0] * 2654435761u;
    run.now = 1000000;
    run.job = NULL;
    run.nreplies = 0;
    run.freed = false;
    run.tls_offer = rnd() % 2;
    size_t max_piece = data[0] & 0x80 ? 4096 : 16;

    char *in = xmalloc((size - 1) * sizeof(FS_ADDRESS) + 1);
    size_t n = expand(data + 1, size - 1, in);

    struct smtpd_server srv = {0};
    struct smtpd_session *s = xcalloc(1, sizeof(*s));
    s->ev = EV_SESSION;
    s->srv = &srv;
    s->cfg = config_ref(configs[rnd() % 4 == 0]);
    srv.cfg = s->cfg;
    s->fd = FS_FAKE_FD;
    rand_id(s->id);
    snprintf(s->addr, sizeof(s->addr), "192.0.2.1");
    s->t_start = s->t_active = run.now;
    smtpd_session_begin(s);
    smtpd_io_flush(s);

    for (size_t off = 0; off < n && s->fd >= 0;) {
        settle(s);
        if (s->fd < 0)
            break;
        if (!(smtpd_session_readable(s) || s->state == SS_GREET_WAIT))
            fs_abort("session neither readable nor waiting for anything");
        size_t skip;
        size_t len = next_piece(in + off, n - off, max_piece, &skip);
        if (len > 0) {
            s->t_active = run.now;
            smtpd_session_input(s, in + off, len);
            smtpd_io_flush(s);
        }
        off += len + skip;
    }
    /* The client goes away, maybe while a job runs: the job still
     * finishes, and then the session is gone. */
    if (s->fd >= 0) {
        smtpd_session_eof(s);
        if (run.job)
            job_finish(s);
        if (s->fd >= 0)
            fs_abort("session still open after EOF and its last job");
    }
    if (show)
        fprintf(stderr, "%.*s", (int)run.nreplies, run.replies);
    fuzz_smtp_check_replies(run.replies, run.nreplies);
    config_unref(s->cfg);
    free(s);
    free(in);
    return 0;
}
