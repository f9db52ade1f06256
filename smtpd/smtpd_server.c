/*
 * smtpd_server — the listener and the one I/O thread of the SMTP receiver.
 *
 * Design. One thread runs an epoll loop over the listening socket, every
 * session socket (non-blocking), the pool's eventfd (finished jobs) and a
 * control eventfd (stop). Sessions never block: anything slow is a job for
 * the worker pool (smtpd_pool.c) and the session waits without reading
 * (its input stays in the socket or in its buffer). The one store access
 * on this thread is the recipient lookup (a few indexed reads on a
 * connection that never waits for a lock: smtpd_lookup_ctx); it saves
 * every RCPT two thread hand-overs, and a lookup that would wait goes to
 * a worker. An idle connection
 * costs one struct smtpd_session and its socket: input and output buffers
 * are allocated only while they hold bytes, reads go through one shared
 * scratch buffer. Timers are a scan of all sessions every SMTPD_TICK_MS.
 *
 * Accept applies the caps ([mailin] max_connections, total, and
 * max_connections_per_ip) with 421 4.7.0. Draining (SIGTERM): the listener
 * is closed, sessions between transactions get 421 4.3.2, the others finish
 * their transaction first; after drain_seconds the rest are closed; jobs in
 * workers always run to their end (a delivery is never cut mid-commit).
 *
 * Trusts: nothing from sockets. The config snapshot is immutable.
 */
#include "smtpd/smtpd_int.h"

#include "lib/log.h"
#include "lib/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t smtpd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "host:port", "[v6]:port" or ":port". */
static int listen_split(const char *spec, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon[1] == '\0')
        return -1;
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostsz || strlen(colon + 1) >= portsz)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portsz, "%s", colon + 1);
    return 0;
}

static int listen_open(const char *spec, int *port_out, char **err)
{
    char host[256], port[32];
    if (spec == NULL || listen_split(spec, host, sizeof(host), port, sizeof(port)) < 0) {
        *err = xasprintf("bad smtp_listen address '%s'", spec ? scrub(spec) : "");
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        *err = xasprintf("smtp_listen %s: %s", scrub(spec), gai_strerror(rc));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Replies leave at once; accepted sockets inherit it (Linux). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SMTPD_LISTEN_BACKLOG) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        *err = xasprintf("cannot listen on %s: %s", scrub(spec), strerror(e));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

struct smtpd_server *smtpd_server_new(struct config *cfg, char **err)
{
    struct smtpd_server *s = xcalloc(1, sizeof(*s));
    s->ev_listener = EV_LISTENER;
    s->ev_control = EV_CONTROL;
    s->epfd = s->cfd = -1;
    s->lfd = listen_open(cfg->smtp_listen, &s->port, err);
    if (s->lfd < 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = config_ref(cfg);
    if (cfg->tls_enabled) {
        s->tls = smtpd_tls_ctx_new(cfg, err);
        if (s->tls == NULL) {
            smtpd_server_free(s);
            return NULL;
        }
    }
    return s;
}

int smtpd_server_port(const struct smtpd_server *s)
{
    return s->port;
}

void smtpd_server_reload(struct smtpd_server *s, struct config *cfg)
{
    SSL_CTX *tls = NULL;
    bool keep_tls = false;
    if (cfg->tls_enabled) {
        char *err = NULL;
        tls = smtpd_tls_ctx_new(cfg, &err);
        if (tls == NULL) {
            /* Unreadable certificate or key: keep offering the old one. */
            msg_error("-: smtpd reload: %s; keeping the running TLS setup", scrub(err));
            free(err);
            keep_tls = true;
        }
    }
    pthread_mutex_lock(&s->lock);
    struct config *old = s->cfg;
    SSL_CTX *old_tls = s->tls;
    s->cfg = config_ref(cfg);
    if (!keep_tls)
        s->tls = tls;
    pthread_mutex_unlock(&s->lock);
    if (old->smtp_listen && cfg->smtp_listen && strcmp(old->smtp_listen, cfg->smtp_listen) != 0)
        msg_warn("-: smtpd reload: smtp_listen changed; takes effect on restart");
    config_unref(old);
    /* Sessions in TLS hold their own reference to the old context. */
    if (old_tls && !keep_tls)
        SSL_CTX_free(old_tls);
}

/* ---- per-IP counters ---- */

static unsigned ip_hash(const char *a)
{
    unsigned h = 5381;
    for (; *a; a++)
        h = h * 33u + (unsigned char)*a;
    return h % SMTPD_IP_BUCKETS;
}

static struct smtpd_ipcount *ip_get(struct smtpd_server *s, const char *addr)
{
    unsigned h = ip_hash(addr);
    for (struct smtpd_ipcount *c = s->ips[h]; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    struct smtpd_ipcount *c = xcalloc(1, sizeof(*c));
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->next = s->ips[h];
    s->ips[h] = c;
    return c;
}

static void ip_put(struct smtpd_server *s, struct smtpd_ipcount *c)
{
    if (--c->n > 0)
        return;
    struct smtpd_ipcount **pp = &s->ips[ip_hash(c->addr)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    free(c);
}

/* ---- session I/O ---- */

void smtpd_io_update(struct smtpd_session *s)
{
    uint32_t ev = 0;
    if (s->state == SS_TLS_HANDSHAKE && !s->closing) {
        ev = s->hs_wants_out ? EPOLLOUT : EPOLLIN;
        if (s->out.len)
            ev |= EPOLLOUT;
    } else {
        if (s->out.len || s->rd_wants_out)
            ev |= EPOLLOUT;
        if ((smtpd_session_readable(s) || s->wr_wants_in) && !s->closing)
            ev |= EPOLLIN;
    }
    if ((ev == s->events && s->registered) || s->unwatched || s->fd < 0)
        return;
    /* A new session is added once its first reply is out, with the mask
     * that reply leaves it wanting. */
    struct epoll_event e = {.events = ev, .data.ptr = s};
    if (epoll_ctl(s->srv->epfd, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &e) < 0)
        msg_panic("epoll_ctl: %s", strerror(errno));
    s->events = ev;
    s->registered = true;
}

static long io_write(struct smtpd_session *s, const char *p, size_t n)
{
    if (s->ssl && s->state != SS_TLS_HANDSHAKE)
        return smtpd_tls_write(s, p, n);
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -2;
    return w;
}

static long io_read(struct smtpd_session *s, char *p, size_t n)
{
    if (s->ssl)
        return smtpd_tls_read(s, p, n);
    ssize_t r = recv(s->fd, p, n, 0);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -2;
    return r;
}

void smtpd_io_flush(struct smtpd_session *s)
{
    size_t off = 0;
    if (s->fd < 0)
        return;
    while (off < s->out.len) {
        long w = io_write(s, s->out.data + off, s->out.len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w == -2) { /* the peer is gone: nothing more to say */
            buf_free(&s->out);
            s->closing = true;
            if (s->job == NULL)
                smtpd_session_free(s);
            return;
        }
        break; /* EAGAIN: wait for EPOLLOUT */
    }
    if (off == s->out.len) {
        buf_free(&s->out); /* idle sessions hold no buffer */
    } else if (off > 0) {
        memmove(s->out.data, s->out.data + off, s->out.len - off);
        s->out.len -= off;
    }
    if (s->closing && s->out.len == 0 && s->job == NULL) {
        smtpd_session_free(s);
        return;
    }
    smtpd_io_update(s);
}

static void io_readable(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    for (int i = 0; i < SMTPD_READS_PER_EVENT || (s->ssl && SSL_pending(s->ssl) > 0); i++) {
        if (!(smtpd_session_readable(s) || s->state == SS_GREET_WAIT))
            break;
        long r = io_read(s, srv->scratch, SMTPD_READ_CHUNK);
        if (r == 0 || r == -2) {
            smtpd_session_eof(s);
            return;
        }
        if (r < 0)
            break;
        s->t_active = smtpd_now_ms();
        smtpd_session_input(s, srv->scratch, (size_t)r);
        if (s->closing || s->fd < 0)
            break;
        /* A short read drained the socket: the next recv would only say
         * EAGAIN (one wasted call per command), and the level-triggered
         * epoll reports whatever arrives later. TLS may hold decrypted
         * bytes of its own, so it reads on until it says so. */
        if (!s->ssl && (size_t)r < SMTPD_READ_CHUNK)
            break;
    }
    smtpd_io_flush(s);
}

void smtpd_io_resume(struct smtpd_session *s)
{
    if (s->fd < 0)
        return;
    /* The reply first. What the client sent meanwhile waits in the socket
     * (the level-triggered epoll reports it once the session reads again),
     * except what TLS decrypted already: only a read gets that. */
    if (s->ssl && smtpd_session_readable(s) && !s->unwatched)
        io_readable(s);
    else
        smtpd_io_flush(s);
}

static void io_event(struct smtpd_session *s, uint32_t ev)
{
    if (s->fd < 0)
        return; /* closed earlier in this batch */
    if (s->state == SS_TLS_HANDSHAKE && !s->closing) {
        if (s->out.len) { /* the 220 first, in clear */
            smtpd_io_flush(s);
            return;
        }
        int r = smtpd_tls_step(s);
        if (r < 0) {
            smtpd_session_free(s);
        } else if (r > 0) {
            smtpd_session_tls_done(s);
            smtpd_io_flush(s);
        } else {
            smtpd_io_update(s);
        }
        return;
    }
    if (ev & EPOLLOUT) {
        if (s->rd_wants_out)
            io_readable(s);
        else
            smtpd_io_flush(s);
        if (s->fd < 0)
            return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (s->wr_wants_in)
            smtpd_io_flush(s);
        else if (smtpd_session_readable(s) || s->state == SS_GREET_WAIT)
            io_readable(s);
        else if (ev & (EPOLLHUP | EPOLLERR))
            smtpd_session_eof(s);
    }
}

void smtpd_session_free(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    if (s->job)
        msg_panic("session %s freed with a job in flight", s->id);
    if (s->fd < 0)
        return;
    uint64_t secs = (smtpd_now_ms() - s->t_start) / 1000u;
    msg_info("%s: disconnect, client=[%s], commands=%u, messages=%u, errors=%u, seconds=%llu%s",
             s->id, s->addr, s->ncmds, s->nmsgs, s->errors, (unsigned long long)secs,
             s->quit ? ", quit=yes" : "");
    if (s->registered && !s->unwatched)
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    close(s->fd);
    s->fd = -1;
    smtpd_session_release(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    ip_put(srv, s->ipc);
    s->ipc = NULL;
    s->prev = NULL;
    s->next = srv->graveyard;
    srv->graveyard = s;
}

static void graveyard_empty(struct smtpd_server *srv)
{
    struct smtpd_session *s;
    while ((s = srv->graveyard) != NULL) {
        srv->graveyard = s->next;
        config_unref(s->cfg);
        free(s);
    }
}

void smtpd_session_unwatch(struct smtpd_session *s)
{
    if (s->unwatched || s->fd < 0)
        return;
    if (s->registered)
        epoll_ctl(s->srv->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->unwatched = true;
}

static void accept_one(struct smtpd_server *srv, int fd, const struct sockaddr_storage *ss)
{
    char addr[INET6_ADDRSTRLEN] = "unknown";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));

    pthread_mutex_lock(&srv->lock);
    struct config *cfg = config_ref(srv->cfg);
    pthread_mutex_unlock(&srv->lock);

    struct smtpd_ipcount *ipc = ip_get(srv, addr);
    bool total = cfg->max_connections && srv->nsessions >= cfg->max_connections;
    bool per_ip = cfg->max_connections_per_ip && ipc->n >= cfg->max_connections_per_ip;
    if (total || per_ip) {
        msg_warn("-: reject connection from [%s]: %s limit reached (%u)", addr,
                 total ? "max_connections" : "max_connections_per_ip",
                 total ? cfg->max_connections : cfg->max_connections_per_ip);
        smtpd_reply_raw(fd, SP_SMTP_TOO_MANY_CONN);
        close(fd);
        ipc->n++;
        ip_put(srv, ipc);
        config_unref(cfg);
        return;
    }
    ipc->n++;

    struct smtpd_session *s = xcalloc(1, sizeof(*s));
    s->ev = EV_SESSION;
    s->srv = srv;
    s->cfg = cfg;
    s->fd = fd;
    s->ipc = ipc;
    rand_id(s->id);
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->t_start = s->t_active = smtpd_now_ms();
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    msg_info("%s: connect, client=[%s]", s->id, addr);
    smtpd_session_begin(s);
    smtpd_io_flush(s);
}

/* One connection per round of events: the listener is level-triggered,
 * so the next round reports the next one, and a lone client costs no
 * accept that can only say EAGAIN. */
static void accept_ready(struct smtpd_server *srv)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                msg_warn("-: accept: %s", strerror(errno));
            return;
        }
        accept_one(srv, fd, &ss);
        return;
    }
}

/* Finished jobs: every reply goes out before the jobs (and the copies of
 * their messages) are freed. */
static void jobs_ready(struct smtpd_server *srv)
{
    struct smtpd_job *list = smtpd_pool_collect(srv->pool);
    for (struct smtpd_job *j = list; j; j = j->next) {
        struct smtpd_session *s = j->sess;
        s->job = NULL;
        smtpd_session_job_done(s, j);
        smtpd_io_resume(s);
    }
    while (list) {
        struct smtpd_job *next = list->next;
        smtpd_job_free(list);
        list = next;
    }
}

static void drain_begin(struct smtpd_server *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    srv->drain_until = smtpd_now_ms() + (uint64_t)srv->drain_seconds * 1000u;
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->lfd, NULL);
    close(srv->lfd);
    srv->lfd = -1;
    msg_info("-: smtpd draining: sessions=%u, wait=%us", srv->nsessions, srv->drain_seconds);
    for (struct smtpd_session *s = srv->sessions, *n; s; s = n) {
        n = s->next;
        smtpd_session_drain(s);
        smtpd_io_flush(s);
    }
}

static void timers_run(struct smtpd_server *srv)
{
    uint64_t now = smtpd_now_ms();
    bool hard = srv->draining && now >= srv->drain_until;
    for (struct smtpd_session *s = srv->sessions, *n; s; s = n) {
        n = s->next;
        if (hard && !s->closing && s->job == NULL)
            smtpd_session_close(s, SP_SMTP_SHUTDOWN);
        else
            smtpd_session_tick(s, now);
        smtpd_io_flush(s);
    }
}

struct deliver_ctx *smtpd_lookup_ctx(struct smtpd_server *srv, struct config *cfg)
{
    if (srv->lookup && srv->lookup_cfg == cfg)
        return srv->lookup;
    pthread_mutex_lock(&srv->lock);
    bool current = cfg == srv->cfg;
    pthread_mutex_unlock(&srv->lock);
    if (!current || cfg == srv->lookup_failed)
        return NULL; /* sessions from before a reload: the workers' */
    deliver_close(srv->lookup);
    srv->lookup = NULL;
    srv->lookup_cfg = NULL;
    char *err = NULL;
    struct deliver_ctx *d = deliver_open(cfg, &err);
    if (d == NULL) { /* the workers report it, with every lookup */
        free(err);
        config_unref(srv->lookup_failed);
        srv->lookup_failed = config_ref(cfg);
        return NULL;
    }
    deliver_never_wait(d);
    srv->lookup = d;
    srv->lookup_cfg = cfg;
    return d;
}

static void *io_main(void *arg)
{
    struct smtpd_server *srv = arg;
    /* Named for ps -L, top -H and the fault shim (FAULT_THREAD). */
    pthread_setname_np(pthread_self(), "smtpd-io");
    struct epoll_event evs[SMTPD_EVENTS_MAX];
    uint64_t next_tick = smtpd_now_ms() + SMTPD_TICK_MS;
    /* A round's log lines are written after its replies, in one write,
     * before the thread waits again (lib/log.h). */
    log_defer(1);
    for (;;) {
        log_flush();
        if (srv->draining && srv->nsessions == 0)
            break;
        uint64_t now = smtpd_now_ms();
        int wait = now >= next_tick ? 0 : (int)(next_tick - now);
        int n = epoll_wait(srv->epfd, evs, SMTPD_EVENTS_MAX, wait);
        if (n < 0 && errno != EINTR)
            msg_fatal("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            enum smtpd_ev_kind *k = evs[i].data.ptr;
            switch (*k) {
            case EV_LISTENER:
                if (!srv->draining)
                    accept_ready(srv);
                break;
            case EV_CONTROL: {
                uint64_t v;
                if (read(srv->cfd, &v, sizeof(v)) > 0)
                    drain_begin(srv);
                break;
            }
            case EV_JOBS:
                jobs_ready(srv);
                break;
            case EV_SESSION:
                io_event((struct smtpd_session *)k, evs[i].events);
                break;
            }
        }
        now = smtpd_now_ms();
        if (now >= next_tick) {
            timers_run(srv);
            next_tick = now + SMTPD_TICK_MS;
        }
        graveyard_empty(srv);
    }
    graveyard_empty(srv);
    log_defer(0);
    deliver_close(srv->lookup);
    srv->lookup = NULL;
    srv->lookup_cfg = NULL;
    config_unref(srv->lookup_failed);
    srv->lookup_failed = NULL;
    return NULL;
}

/* The pool's eventfd needs a tag too: a static one is enough. */
static enum smtpd_ev_kind ev_jobs_tag = EV_JOBS;

int smtpd_server_start(struct smtpd_server *s, char **err)
{
    s->scratch = xmalloc(SMTPD_READ_CHUNK);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->cfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->cfd < 0) {
        *err = xasprintf("epoll/eventfd: %s", strerror(errno));
        return -1;
    }
    s->pool = smtpd_pool_new(s->cfg->workers);
    if (smtpd_pool_start(s->pool, err) < 0)
        return -1;
    /* A parser child per worker, started now rather than by the first
     * messages (~12 ms each). */
    deliver_parser_prewarm(s->cfg, smtpd_pool_size(s->pool));
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->ev_listener};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e);
    e.data.ptr = &s->ev_control;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->cfd, &e);
    e.data.ptr = &ev_jobs_tag;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, smtpd_pool_fd(s->pool), &e);
    int rc = pthread_create(&s->io, NULL, io_main, s);
    if (rc != 0) {
        *err = xasprintf("cannot start the smtpd thread: %s", strerror(rc));
        return -1;
    }
    s->started = true;
    msg_info("-: smtpd listening on %s (port %d), workers=%u, tls=%s", scrub(s->cfg->smtp_listen),
             s->port, smtpd_pool_size(s->pool), s->tls ? "yes" : "no");
    return 0;
}

void smtpd_server_stop(struct smtpd_server *s, unsigned drain_seconds)
{
    if (!s->started)
        return;
    s->drain_seconds = drain_seconds;
    uint64_t one = 1;
    if (write(s->cfd, &one, sizeof(one)) < 0)
        msg_warn("-: smtpd stop: %s", strerror(errno));
    pthread_join(s->io, NULL);
    smtpd_pool_stop(s->pool);
    s->started = false;
    msg_info("-: smtpd stopped");
}

void smtpd_server_free(struct smtpd_server *s)
{
    if (s == NULL)
        return;
    if (s->pool)
        smtpd_pool_free(s->pool);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->cfd >= 0)
        close(s->cfd);
    if (s->tls)
        SSL_CTX_free(s->tls);
    if (s->cfg)
        config_unref(s->cfg);
    pthread_mutex_destroy(&s->lock);
    free(s->scratch);
    free(s);
}
