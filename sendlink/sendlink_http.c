/*
 * sendlink_http — the HTTP service of secure send (libmicrohttpd), its
 * routing table, the reply helpers every route uses, and the sweeper
 * thread.
 *
 * Where it sits: `serve` opens it like its other services (sendlink.h).
 * Requests arrive on MHD's thread pool ([sendlink] http_threads, epoll);
 * each thread keeps its own store connection. Uploads and downloads are
 * streamed: an upload passes MHD's post processor chunk by chunk into the
 * vault writer, a download is a content-reader response that decrypts
 * HTTP_DOWNLOAD_BLOCK (a few chunks) per call (memory is flat in the file
 * size).
 *
 * Every reply carries Cache-Control: no-store, Referrer-Policy:
 * no-referrer, X-Content-Type-Options: nosniff and a strict CSP (no
 * scripts, the page's own style sheet by hash, forms only to ourselves).
 *
 * Trusts: nothing from the network. Paths are matched exactly; ids and
 * tokens are checked for length and alphabet before any lookup; bodies are
 * capped (forms HTTP_FORM_MAX, uploads the plan's max_file_size).
 * RFCs: 9110 (HTTP semantics), 9457 (problem details), 6750 (Bearer).
 */
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "sendlink/sendlink_http.h"
#include "sendlink/sms.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* listen(2) backlog. */
#define HTTP_BACKLOG 128
/* Longest host:port in [server] http_listen. */
#define HTTP_LISTEN_MAX 300
/* How long stop waits at most for requests in flight (serve's drain may be longer). */
#define HTTP_STOP_WAIT_MAX 10
/* The port a driven connection's peer is shown with (any; only logs see it). */
#define HTTP_DRIVEN_PEER_PORT 40000
/* Store connections are per thread; their destructor closes them. */

struct rate_slot {
    char id[DB_ID_MAX + 1];
    unsigned count;
};

/* ---- config, store, rate limit ---- */

struct config *sendlink_config(struct sendlink *sl)
{
    pthread_mutex_lock(&sl->lock);
    struct config *c = config_ref(sl->cfg);
    pthread_mutex_unlock(&sl->lock);
    return c;
}

static struct sms_ref *sms_ref_new(const struct config *cfg)
{
    struct sms_ref *ref = xcalloc(1, sizeof(*ref));
    ref->router = sms_router_new(cfg);
    ref->refs = 1;
    return ref;
}

struct sms_ref *sendlink_sms(struct sendlink *sl)
{
    pthread_mutex_lock(&sl->lock);
    struct sms_ref *ref = sl->sms;
    if (ref)
        __atomic_fetch_add(&ref->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&sl->lock);
    return ref;
}

void sendlink_sms_release(struct sms_ref *ref)
{
    if (ref == NULL)
        return;
    if (__atomic_sub_fetch(&ref->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        sms_router_free(ref->router);
        free(ref);
    }
}

static void db_destructor(void *p)
{
    db_close(p);
}

struct db *sendlink_db(struct sendlink *sl)
{
    struct db *db = pthread_getspecific(sl->db_key);
    if (db)
        return db;
    struct config *cfg = sendlink_config(sl);
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    if (db_open(path, &db) != DB_OK) {
        msg_error("-: http: cannot open the store %s", path);
        db = NULL;
    } else {
        pthread_setspecific(sl->db_key, db);
    }
    free(path);
    config_unref(cfg);
    return db;
}

int sendlink_rate_check(struct sendlink *sl, const char *apikey_id, unsigned limit)
{
    if (limit == 0)
        return 0;
    time_t now = time(NULL);
    int64_t minute = (int64_t)now / 60;
    int wait = 0;
    pthread_mutex_lock(&sl->lock);
    if (minute != sl->rate_minute) {
        sl->rate_minute = minute;
        sl->nrates = 0;
    }
    struct rate_slot *s = NULL;
    for (size_t i = 0; i < sl->nrates; i++)
        if (strcmp(sl->rates[i].id, apikey_id) == 0)
            s = &sl->rates[i];
    if (s == NULL) {
        sl->rates = xrealloc(sl->rates, (sl->nrates + 1) * sizeof(*sl->rates));
        s = &sl->rates[sl->nrates++];
        snprintf(s->id, sizeof(s->id), "%s", apikey_id);
        s->count = 0;
    }
    if (s->count >= limit)
        wait = (int)(60 - now % 60);
    else
        s->count++;
    pthread_mutex_unlock(&sl->lock);
    return wait;
}

/* ---- replies ---- */

const char *http_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 423:
        return "Locked";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    }
    return "Error";
}

enum MHD_Result http_queue(struct req *r, struct MHD_Connection *c, unsigned status,
                           struct MHD_Response *resp)
{
    char csp[256];
    snprintf(csp, sizeof(csp),
             "default-src 'none'; style-src '%s'; img-src 'self'; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'",
             r->sl->style_hash);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
    if (r->retry_after && MHD_get_response_header(resp, "Retry-After") == NULL) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    enum MHD_Result ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        r->queued = 1;
        r->status = (int)status;
        char label[16];
        snprintf(label, sizeof(label), "code=%uxx", status / 100);
        metrics_inc("http_requests_total", label);
    }
    return ok;
}

enum MHD_Result http_reply(struct req *r, struct MHD_Connection *c, unsigned status,
                           const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, "Content-Type", ctype);
    return http_queue(r, c, status, resp);
}

static enum MHD_Result problem_queue(struct req *r, struct MHD_Connection *c, unsigned status,
                                     const char *field, const char *detail, unsigned retry)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                          http_reason(status), "status", (int)status, "detail", detail);
    if (field)
        json_object_set_new(o, "field", json_string(field));
    char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/problem+json");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate",
                                "Bearer realm=\"sealpost\", error=\"invalid_token\"");
    if (retry) {
        char v[16];
        snprintf(v, sizeof(v), "%u", retry);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    return http_queue(r, c, status, resp);
}

enum MHD_Result http_problem(struct req *r, struct MHD_Connection *c, unsigned status,
                             const char *field, const char *detail)
{
    return problem_queue(r, c, status, field, detail, status == 503 ? 5 : 0);
}

enum MHD_Result http_problem_retry(struct req *r, struct MHD_Connection *c, unsigned status,
                                   const char *detail, unsigned retry_after)
{
    return problem_queue(r, c, status, NULL, detail, retry_after);
}

static enum MHD_Result method_not_allowed(struct req *r, struct MHD_Connection *c,
                                          const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Allow", allow);
    return http_queue(r, c, 405, resp);
}

/* ---- routing ---- */

static int id_ok(const char *s)
{
    if (strlen(s) != RAND_ID_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (strchr(RAND_ALPHA_LOWER, *p) == NULL)
            return 0;
    return 1;
}

static int token_chars_ok(const char *s)
{
    size_t n = strlen(s);
    if (n != SEND_TOKEN_CHARS)
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return 0;
    }
    return 1;
}

static void client_address(struct MHD_Connection *c, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, outsz, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outsz);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outsz);
}

static void req_free(struct req *r)
{
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    api_create_free(r);
    buf_free_secret(&r->code);
    if (r->dl_send) {
        db_send_clear(r->dl_send);
        free(r->dl_send);
    }
    config_unref(r->cfg);
    free(r);
}

static int is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* First call of a request: route it; queue at once what needs no body. */
static enum MHD_Result req_begin(struct req *r, struct MHD_Connection *c, const char *url)
{
    const char *m = r->method;
    int get = is(m, "GET") || is(m, "HEAD");
    if (is(url, "/healthz")) {
        if (!get)
            return method_not_allowed(r, c, "GET, HEAD");
        r->route = ROUTE_HEALTH;
        return http_reply(r, c, 200, "text/plain; charset=utf-8", "ok\n", 3);
    }
    if (is(url, "/metrics")) {
        if (!get)
            return method_not_allowed(r, c, "GET, HEAD");
        r->route = ROUTE_METRICS;
        struct buf b = BUF_INIT;
        if (metrics_format(&b) < 0) {
            buf_free(&b);
            return http_problem(r, c, 500, NULL, "metrics too large");
        }
        enum MHD_Result res = http_reply(r, c, 200, "text/plain; version=0.0.4; charset=utf-8",
                                         b.data ? b.data : "", b.len);
        buf_free(&b);
        return res;
    }
    if (is(url, "/api/v1/sends")) {
        if (!is(m, "POST"))
            return method_not_allowed(r, c, "POST");
        r->route = ROUTE_API_CREATE;
        return api_create_begin(r, c);
    }
    const char *api = "/api/v1/sends/";
    if (strncmp(url, api, strlen(api)) == 0) {
        const char *id = url + strlen(api);
        if (!id_ok(id))
            return http_problem(r, c, 404, NULL, "no such send");
        if (!is(m, "GET") && !is(m, "DELETE"))
            return method_not_allowed(r, c, "GET, DELETE");
        snprintf(r->arg, sizeof(r->arg), "%s", id);
        r->route = ROUTE_API_SEND;
        return api_send(r, c);
    }
    if (strncmp(url, "/s/", 3) == 0) {
        const char *tok = url + 3;
        const char *slash = strchr(tok, '/');
        size_t tl = slash ? (size_t)(slash - tok) : strlen(tok);
        if (tl == SEND_TOKEN_CHARS) {
            memcpy(r->arg, tok, tl);
            r->arg[tl] = '\0';
        }
        if (slash && is(slash, "/mtan")) {
            if (!is(m, "POST"))
                return method_not_allowed(r, c, "POST");
            r->route = ROUTE_MTAN;
            return MHD_YES; /* answered when the (ignored) body is in */
        }
        if (slash == NULL) {
            if (!get && !is(m, "POST"))
                return method_not_allowed(r, c, "GET, HEAD, POST");
            if (!token_chars_ok(r->arg))
                r->arg[0] = '\0'; /* the page says "unknown link" */
            r->route = ROUTE_PAGE;
            if (get)
                return page_get(r, c);
            return page_post_begin(r, c);
        }
    }
    if (strncmp(url, "/api/", 5) == 0)
        return http_problem(r, c, 404, NULL, "no such resource");
    static const char nf[] = "Not found\n";
    return http_reply(r, c, 404, "text/plain; charset=utf-8", nf, sizeof(nf) - 1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct sendlink *sl = cls;
    struct req *r = *con_cls;
    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->sl = sl;
        r->cfg = sendlink_config(sl);
        r->env.cfg = r->cfg;
        r->env.master = sl->master;
        r->method = method;
        client_address(c, r->client, sizeof(r->client));
        *con_cls = r;
        r->env.db = sendlink_db(sl);
        if (r->env.db == NULL)
            return http_problem(r, c, 503, NULL, "the store is not available; try again");
        return req_begin(r, c, url);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->queued)
            return MHD_YES; /* answered already: the rest is ignored */
        r->body_bytes += n;
        if (r->route == ROUTE_API_CREATE)
            return api_create_data(r, c, upload_data, n);
        if (r->route == ROUTE_PAGE)
            return page_post_data(r, c, upload_data, n);
        if (r->body_bytes > HTTP_FORM_MAX)
            return http_problem(r, c, 413, NULL, "request body too large");
        return MHD_YES;
    }
    if (r->queued)
        return MHD_YES;
    switch (r->route) {
    case ROUTE_API_CREATE:
        return api_create_end(r, c);
    case ROUTE_PAGE:
        return page_post_end(r, c);
    case ROUTE_MTAN:
        return page_mtan(r, c);
    default:
        return http_problem(r, c, 500, NULL, "unrouted request");
    }
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    struct req *r = *con_cls;
    if (r == NULL)
        return;
    if (r->dl_started)
        page_download_done(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->dl_complete);
    req_free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    msg_warn("-: http: %s", scrub(line));
}

/* ---- sweeper ---- */

static void *sweeper_main(void *arg)
{
    struct sendlink *sl = arg;
    pthread_mutex_lock(&sl->stop_lock);
    while (!sl->stopping) {
        pthread_mutex_unlock(&sl->stop_lock);
        struct config *cfg = sendlink_config(sl);
        struct db *db = sendlink_db(sl);
        if (db) {
            struct send_env env = {cfg, db, sl->master};
            long n = send_sweep(&env, (int64_t)time(NULL));
            if (n > 0)
                msg_info("-: sweep: %ld send file(s) destroyed", n);
        }
        uint64_t interval = cfg->sweep_interval;
        config_unref(cfg);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)interval;
        pthread_mutex_lock(&sl->stop_lock);
        while (!sl->stopping &&
               pthread_cond_timedwait(&sl->stop_cond, &sl->stop_lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&sl->stop_lock);
    return NULL;
}

/* ---- life cycle ---- */

static int listen_open(const char *hostport, char **err)
{
    char host[HTTP_LISTEN_MAX], *port;
    if (strlen(hostport) >= sizeof(host)) {
        *err = xstrdup("http_listen too long");
        return -1;
    }
    snprintf(host, sizeof(host), "%s", hostport);
    char *h = host;
    if (h[0] == '[') {
        char *close_br = strchr(h, ']');
        if (close_br == NULL || close_br[1] != ':') {
            *err = xasprintf("bad http_listen %s", hostport);
            return -1;
        }
        *close_br = '\0';
        h++;
        port = close_br + 2;
    } else {
        port = strrchr(h, ':');
        if (port == NULL) {
            *err = xasprintf("bad http_listen %s", hostport);
            return -1;
        }
        *port++ = '\0';
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(h[0] ? h : NULL, port, &hints, &res);
    if (gai != 0) {
        *err = xasprintf("http_listen %s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
        *err = xasprintf("http_listen %s: %s", hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/*
 * DATA_DIR/sends, made here because open runs before serve drops root: a
 * root-started serve gives it to [server] user, who writes it afterwards.
 */
static int sends_dir_make(const struct config *cfg, char **err)
{
    char *dir = xasprintf("%s/%s", cfg->data_dir, SEND_DIR);
    int r = mkdir_p(dir, 0700);
    if (r < 0) {
        *err = xasprintf("cannot create %s: %s", dir, strerror(errno));
    } else if (geteuid() == 0 && cfg->user && cfg->user[0]) {
        struct passwd *pw = getpwnam(cfg->user);
        if (pw && chown(dir, pw->pw_uid, pw->pw_gid) < 0) {
            *err = xasprintf("cannot give %s to %s: %s", dir, cfg->user, strerror(errno));
            r = -1;
        }
    }
    free(dir);
    return r;
}

struct sendlink *sendlink_open(struct config *cfg, char **err)
{
    struct sendlink *sl = xcalloc(1, sizeof(*sl));
    pthread_mutex_init(&sl->lock, NULL);
    pthread_mutex_init(&sl->stop_lock, NULL);
    pthread_cond_init(&sl->stop_cond, NULL);
    sl->listen_fd = -1;
    sl->cfg = config_ref(cfg);
    if (pthread_key_create(&sl->db_key, db_destructor) != 0) {
        *err = xstrdup("pthread_key_create failed");
        config_unref(sl->cfg);
        free(sl);
        return NULL;
    }
    sl->master = masterkey_load(cfg->master_key);
    if (sl->master == NULL) {
        *err = xasprintf("cannot load the master key %s", cfg->master_key);
        sendlink_free(sl);
        return NULL;
    }
    if (page_style_init(sl) < 0) {
        *err = xstrdup("cannot hash the page style");
        sendlink_free(sl);
        return NULL;
    }
    if (sends_dir_make(cfg, err) < 0) {
        sendlink_free(sl);
        return NULL;
    }
    sl->listen_fd = listen_open(cfg->http_listen, err);
    if (sl->listen_fd < 0) {
        sendlink_free(sl);
        return NULL;
    }
    sl->sms = sms_ref_new(cfg);
    return sl;
}

/* libmicrohttpd with our handler and limits; listen_fd < 0: no listening
 * socket (connections come from sendlink_drive_add). */
static struct MHD_Daemon *mhd_start(struct sendlink *sl, unsigned flags, int listen_fd)
{
    struct config *cfg = sl->cfg;
    if (listen_fd < 0)
        return MHD_start_daemon(flags | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                handler, sl, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, sl,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, sl, MHD_OPTION_END);
    return MHD_start_daemon(flags | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, sl,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, sl, MHD_OPTION_LISTEN_SOCKET,
                            listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, sl, MHD_OPTION_END);
}

int sendlink_start(struct sendlink *sl, char **err)
{
    struct config *cfg = sl->cfg;
    sl->mhd = mhd_start(sl, MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, sl->listen_fd);
    if (sl->mhd == NULL) {
        *err = xstrdup("cannot start the HTTP service (libmicrohttpd)");
        return -1;
    }
    if (pthread_create(&sl->sweeper, NULL, sweeper_main, sl) != 0) {
        *err = xstrdup("cannot start the sweeper");
        MHD_stop_daemon(sl->mhd);
        sl->mhd = NULL;
        return -1;
    }
    sl->sweeper_running = 1;
    msg_info("-: http: listening on %s, threads=%u", scrub(cfg->http_listen), cfg->http_threads);
    return 0;
}

int sendlink_start_driven(struct sendlink *sl, char **err)
{
    sl->mhd = mhd_start(sl, 0, -1);
    if (sl->mhd == NULL) {
        *err = xstrdup("cannot start the HTTP service (libmicrohttpd)");
        return -1;
    }
    return 0;
}

int sendlink_drive_add(struct sendlink *sl, int fd)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(HTTP_DRIVEN_PEER_PORT)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_add_connection(sl->mhd, fd, (const struct sockaddr *)&peer, sizeof(peer)) == MHD_YES
               ? 0
               : -1;
}

void sendlink_drive_run(struct sendlink *sl)
{
    (void)MHD_run(sl->mhd);
}

unsigned sendlink_drive_connections(struct sendlink *sl)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(sl->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

void sendlink_reload(struct sendlink *sl, struct config *cfg)
{
    struct sms_ref *sms = sms_ref_new(cfg); /* relays are opened outside the lock */
    pthread_mutex_lock(&sl->lock);
    struct config *old = sl->cfg;
    struct sms_ref *old_sms = sl->sms;
    sl->cfg = config_ref(cfg);
    sl->sms = sms;
    pthread_mutex_unlock(&sl->lock);
    sendlink_sms_release(old_sms); /* requests still sending keep theirs */
    if (strcmp(old->http_listen, cfg->http_listen) != 0)
        msg_warn("-: reload: http_listen changes only with a restart");
    if (strcmp(old->master_key, cfg->master_key) != 0)
        msg_warn("-: reload: master_key changes only with a restart");
    config_unref(old);
}

void sendlink_stop(struct sendlink *sl, unsigned drain_seconds)
{
    if (sl->sweeper_running) {
        pthread_mutex_lock(&sl->stop_lock);
        sl->stopping = 1;
        pthread_cond_broadcast(&sl->stop_cond);
        pthread_mutex_unlock(&sl->stop_lock);
        pthread_join(sl->sweeper, NULL);
        sl->sweeper_running = 0;
    }
    if (sl->mhd == NULL)
        return;
    /* Stop accepting; the listening socket stays ours (closed in sendlink_free). */
    (void)MHD_quiesce_daemon(sl->mhd);
    unsigned wait = drain_seconds < HTTP_STOP_WAIT_MAX ? drain_seconds : HTTP_STOP_WAIT_MAX;
    for (unsigned i = 0; i < wait * 10; i++) {
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(sl->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (di == NULL || di->num_connections == 0)
            break;
        usleep(100000);
    }
    MHD_stop_daemon(sl->mhd);
    sl->mhd = NULL;
    msg_info("-: http: stopped");
}

void sendlink_free(struct sendlink *sl)
{
    if (sl == NULL)
        return;
    if (sl->mhd)
        sendlink_stop(sl, 0);
    if (sl->listen_fd >= 0)
        close(sl->listen_fd);
    masterkey_free(sl->master);
    sendlink_sms_release(sl->sms);
    pthread_key_delete(sl->db_key);
    config_unref(sl->cfg);
    free(sl->style_hash);
    free(sl->rates);
    pthread_mutex_destroy(&sl->lock);
    pthread_mutex_destroy(&sl->stop_lock);
    pthread_cond_destroy(&sl->stop_cond);
    free(sl);
}
