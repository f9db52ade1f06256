/*
 * smtpd_int — what the files of smtpd/ share: the server, the session, the
 * jobs run by the worker pool, and the named limits that are not config
 * keys. Not for use outside smtpd/.
 */
#ifndef SEALPOST_SMTPD_INT_H
#define SEALPOST_SMTPD_INT_H

#include "deliver/deliver.h"
#include "lib/buf.h"
#include "lib/rand.h"
#include "lib/status.h"
#include "policy/config.h"
#include "smtpd/smtpd.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* Named limits (the rest are [mailin] config keys). */
#define SMTPD_READ_CHUNK (64 * 1024) /* one read from a socket (shared scratch) */
#define SMTPD_OUT_HIGH (64 * 1024)   /* replies queued: stop reading above this */
#define SMTPD_TICK_MS 200            /* timer resolution */
#define SMTPD_LISTEN_BACKLOG 1024    /* listen(2) backlog */
#define SMTPD_RATE_GRACE 10          /* seconds of DATA before the rate is judged */
#define SMTPD_DATA_WBUF (64 * 1024)  /* DATA bytes gathered before a memfd write */
#define SMTPD_LOCAL_MAX 64           /* RFC 5321 4.5.3.1.1 */
#define SMTPD_DOMAIN_MAX 255         /* RFC 5321 4.5.3.1.2 */
#define SMTPD_PATH_MAX 256           /* RFC 5321 4.5.3.1.3 */
#define SMTPD_HELO_MAX 255           /* a domain or an address literal */
#define SMTPD_EVENTS_MAX 256         /* epoll events per wait */
#define SMTPD_READS_PER_EVENT 16     /* fairness: reads per session per wakeup */
#define SMTPD_IP_BUCKETS 1024        /* per-IP connection counter table */

enum smtpd_state {
    SS_GREET_WAIT,    /* accepted, greet_pause running, nothing sent yet */
    SS_CONNECTED,     /* banner sent, waiting for EHLO/HELO */
    SS_HELO,          /* greeted, no transaction */
    SS_MAIL,          /* MAIL accepted, no recipient yet */
    SS_RCPT,          /* at least one recipient accepted */
    SS_DATA,          /* reading the message after 354 */
    SS_DELIVERING,    /* message handed to a worker, waiting for the result */
    SS_TLS_HANDSHAKE, /* 220 to STARTTLS sent, TLS handshake running */
    SS_CLOSING        /* last reply queued; close once it is written */
};
const char *smtpd_state_name(enum smtpd_state st);

/* Tags for epoll user data: the first member of each watched object. */
enum smtpd_ev_kind { EV_LISTENER, EV_JOBS, EV_CONTROL, EV_SESSION };

struct smtpd_data; /* DATA reader state (smtpd_data.c) */
struct smtpd_job;
struct smtpd_ipcount;

struct smtpd_session {
    enum smtpd_ev_kind ev; /* EV_SESSION */
    struct smtpd_server *srv;
    struct smtpd_session *prev, *next;
    struct config *cfg; /* snapshot taken at accept */
    int fd;
    char id[RAND_ID_LEN + 1];
    char addr[INET6_ADDRSTRLEN];
    struct smtpd_ipcount *ipc;
    enum smtpd_state state;
    uint32_t events;   /* epoll mask now registered */
    uint64_t t_start;  /* ms, monotonic */
    uint64_t t_active; /* last input or state change */
    unsigned errors;
    unsigned ncmds;
    unsigned nmsgs;
    bool esmtp;        /* EHLO (not HELO) */
    bool tls;          /* TLS established */
    bool closing;      /* close after the output is written */
    bool quit;         /* closed by QUIT (for the log) */
    bool line_long;    /* discarding an over-long command line */
    bool line_cr;      /* in discard mode: last byte seen was CR */
    bool line_bad_eol; /* current command line holds a bare CR or LF */
    bool rd_wants_out; /* TLS read needs the socket writable */
    bool wr_wants_in;  /* TLS write needs the socket readable */
    bool hs_wants_out; /* TLS handshake waits for writability */
    bool unwatched;    /* removed from epoll (peer gone while a job runs) */
    bool registered;   /* added to epoll (after its first reply) */
    bool discard_rest; /* STARTTLS: drop the rest of the buffered input */
    char *helo;
    /* The transaction. */
    char *mail_from; /* "" for <> */
    bool smtputf8;
    bool body8;
    uint64_t size_hint; /* MAIL SIZE= */
    struct rcpt *rcpts;
    size_t nrcpts;
    size_t rcpt_cap;
    unsigned rcpts_accepted; /* RCPTs answered 250 (duplicates included) */
    char *rcpt_pending;      /* address under check by a worker */
    struct smtpd_data *data;
    struct smtpd_job *job; /* in a worker: the session waits (busy) */
    /* I/O buffers, allocated only while they hold bytes. */
    struct buf in;
    struct buf out;
    SSL *ssl;
};

struct smtpd_ipcount {
    struct smtpd_ipcount *next;
    unsigned n;
    char addr[INET6_ADDRSTRLEN];
};

enum smtpd_job_kind { JOB_RCPT, JOB_DELIVER };

struct smtpd_job {
    enum smtpd_job_kind kind;
    struct smtpd_job *next;
    struct smtpd_session *sess; /* owned by the I/O thread: workers never touch it */
    struct config *cfg;         /* reference held by the job */
    char sid[RAND_ID_LEN + 1];
    enum sp_status status;
    /* JOB_RCPT */
    char *address;
    uint64_t size_hint;
    struct rcpt rcpt;
    /* JOB_DELIVER: every field is the job's own copy */
    int fd;
    struct rcpt *rcpts;
    size_t nrcpts;
    char *received;
    char *helo;
    char *client_addr;
    char *mail_from;
    char *via;
    char *tls_version;
    char *tls_cipher;
    uint64_t size;
    char queue_id[RAND_ID_LEN + 1];
};

struct smtpd_pool;

struct smtpd_server {
    enum smtpd_ev_kind ev_listener; /* tags, addresses used as epoll data */
    enum smtpd_ev_kind ev_control;
    int lfd; /* listening socket */
    int epfd;
    int cfd; /* eventfd: stop requested */
    int port;
    pthread_t io;
    bool started;
    pthread_mutex_t lock; /* guards cfg and tls */
    struct config *cfg;
    SSL_CTX *tls;
    struct smtpd_session *sessions;
    struct smtpd_session *graveyard; /* closed, freed after the event batch */
    unsigned nsessions;
    struct smtpd_ipcount *ips[SMTPD_IP_BUCKETS];
    struct smtpd_pool *pool;
    char *scratch; /* SMTPD_READ_CHUNK bytes, I/O thread only */
    /* Recipient lookups on the I/O thread (smtpd_lookup_ctx), I/O thread
     * only: a store connection for lookup_cfg (it holds a reference), and
     * a config whose store did not open (a reference), not tried again. */
    struct deliver_ctx *lookup;
    struct config *lookup_cfg;
    struct config *lookup_failed;
    bool draining;
    uint64_t drain_until;
    unsigned drain_seconds;
};

/* smtpd_server.c: I/O on one session (I/O thread only). */
uint64_t smtpd_now_ms(void);
/* The I/O thread's store connection for recipient lookups of sessions on
 * cfg, or NULL when a worker must do them (cfg is not the server's current
 * config, or its store does not open). Its reads never wait for a lock. */
struct deliver_ctx *smtpd_lookup_ctx(struct smtpd_server *srv, struct config *cfg);
void smtpd_io_update(struct smtpd_session *s); /* recompute the epoll mask */
void smtpd_io_flush(struct smtpd_session *s);  /* write queued output */
/* A job is done: the reply goes out; TLS reads what it decrypted already. */
void smtpd_io_resume(struct smtpd_session *s);
void smtpd_session_unwatch(struct smtpd_session *s);
/* Closes the socket now; the memory goes after the current event batch
 * (fd becomes -1, so later events for it in the batch are ignored). */
void smtpd_session_free(struct smtpd_session *s);

/* smtpd_session.c */
void smtpd_session_begin(struct smtpd_session *s);
void smtpd_session_input(struct smtpd_session *s, const char *p, size_t n);
void smtpd_session_tick(struct smtpd_session *s, uint64_t now);
/* Takes the job's result; the caller frees j (after the reply is out). */
void smtpd_session_job_done(struct smtpd_session *s, struct smtpd_job *j);
void smtpd_session_tls_done(struct smtpd_session *s);
void smtpd_session_eof(struct smtpd_session *s);
void smtpd_session_drain(struct smtpd_session *s);
bool smtpd_session_readable(const struct smtpd_session *s);
void smtpd_session_close(struct smtpd_session *s, enum sp_status why);
void smtpd_session_reset(struct smtpd_session *s);
/* Frees what the session holds (transaction, HELO name, I/O buffers); the
 * struct itself stays for the caller. */
void smtpd_session_release(struct smtpd_session *s);

/* smtpd_data.c: the DATA reader. */
struct smtpd_data *smtpd_data_new(int fd, uint64_t size_limit, unsigned line_limit);
/* Consumes bytes of the message; returns how many, stops right after the
 * end "<CRLF>.<CRLF>" (then smtpd_data_done is true). */
size_t smtpd_data_push(struct smtpd_data *d, const char *p, size_t n);
bool smtpd_data_done(const struct smtpd_data *d);
/* After done: SP_OK or why the message is refused. */
enum sp_status smtpd_data_verdict(struct smtpd_data *d);
uint64_t smtpd_data_size(const struct smtpd_data *d);
uint64_t smtpd_data_raw(const struct smtpd_data *d);
uint64_t smtpd_data_started(const struct smtpd_data *d);
/* Hands over the memfd to the caller, -1 if already taken. Its offset is
 * left at the end: readers use pread or explicit bounds. */
int smtpd_data_take_fd(struct smtpd_data *d);
void smtpd_data_free(struct smtpd_data *d);

/* smtpd_reply.c */
void smtpd_reply(struct smtpd_session *s, enum sp_status st);
void smtpd_reply_extra(struct smtpd_session *s, enum sp_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void smtpd_reply_greeting(struct smtpd_session *s);
void smtpd_reply_helo(struct smtpd_session *s);
void smtpd_reply_ehlo(struct smtpd_session *s);
/* Sends a reply straight to a socket that has no session (connection caps). */
void smtpd_reply_raw(int fd, enum sp_status st);
/* Our Received: header, CRLF-terminated (RFC 5321 4.4); safe for any helo. */
char *smtpd_received_new(const struct smtpd_session *s, const char *tid, const char *tls_version,
                         const char *tls_cipher);

/* smtpd_addr.c: paths and parameters of MAIL and RCPT. */
enum sp_status smtpd_path_parse(const char *arg, const char *keyword, bool null_ok, char **mailbox,
                                const char **params);
bool smtpd_is_ascii(const char *s);
/* HELO/EHLO argument: a domain or an address literal. */
bool smtpd_helo_valid(const char *arg);

/* smtpd_tls.c */
SSL_CTX *smtpd_tls_ctx_new(const struct config *cfg, char **err);
/* Whether STARTTLS is offered now (a reload may change it). */
bool smtpd_tls_offered(struct smtpd_server *srv);
/* Starts the handshake: 0, or -1 (session closed). */
int smtpd_tls_begin(struct smtpd_session *s);
/* Continues the handshake: 1 done, 0 wait, -1 failed. */
int smtpd_tls_step(struct smtpd_session *s);
/* read/write: bytes, 0 on EOF (read), -1 with errno EAGAIN, or -2 on failure. */
long smtpd_tls_read(struct smtpd_session *s, char *p, size_t n);
long smtpd_tls_write(struct smtpd_session *s, const char *p, size_t n);
const char *smtpd_tls_version(const struct smtpd_session *s);
const char *smtpd_tls_cipher(const struct smtpd_session *s);
int smtpd_tls_bits(const struct smtpd_session *s);

/* smtpd_pool.c */
struct smtpd_pool *smtpd_pool_new(unsigned workers);
int smtpd_pool_start(struct smtpd_pool *p, char **err);
int smtpd_pool_fd(const struct smtpd_pool *p); /* readable when jobs are done */
unsigned smtpd_pool_size(const struct smtpd_pool *p);
void smtpd_pool_push(struct smtpd_pool *p, struct smtpd_job *j);
/* Finished jobs, as a list (I/O thread). */
struct smtpd_job *smtpd_pool_collect(struct smtpd_pool *p);
void smtpd_pool_stop(struct smtpd_pool *p);
void smtpd_pool_free(struct smtpd_pool *p);
struct smtpd_job *smtpd_job_new(enum smtpd_job_kind kind, struct smtpd_session *s);
void smtpd_job_free(struct smtpd_job *j);

#endif
