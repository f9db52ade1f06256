/*
 * smtpd_pool — the bounded worker pool that does the slow work of sessions
 * off the I/O thread: delivery (DKIM/SPF checks, MIME parse, encryption,
 * fsync, commit), and the recipient lookups the I/O thread could not
 * answer at once (its own store connection would have had to wait, or
 * failed, or belongs to a newer config than the session's).
 *
 * [server] workers threads (0 = the number of cores), each with its own
 * deliver context (a store connection) opened with the config snapshot of
 * the job, reopened when a reload changed it. The I/O thread pushes jobs;
 * a worker runs one, puts it on the done list and writes the eventfd; the
 * I/O thread collects finished jobs and hands each back to its session.
 * Each session has at most one job at a time, so the queue is bounded by
 * the number of sessions, and memory by the workers in use.
 *
 * Group commit: a worker only prepares a message (deliver_prepare: sealed
 * containers written, metadata sealed) and hands it to the committer
 * thread, then takes the next job. The committer takes every message
 * waiting, makes the whole batch durable at once (deliver_commit: an fsync
 * per container, one per blob directory, one transaction), and only then
 * puts each job on the done list, so the session answers 250 only for a
 * message whose transaction committed, and 4xx for every message of a
 * batch that failed. While one batch commits the next one gathers.
 *
 * Lines logged by workers and the committer are kept (log_defer) until
 * their jobs are handed on, so a write to the log never delays a reply.
 *
 * Checkpoints: the committer's commits never copy the WAL into the
 * database (lib/db.h "Checkpoints off the commit path"). When its WAL is
 * long enough it asks the checkpointer thread, which runs the checkpoint
 * on a store connection of its own while batches go on committing, so no
 * session waits for it.
 *
 * Spare containers: a delivery that finds a spare blob file (deliver.h)
 * neither creates a file nor has its commit wait for a directory fsync.
 * serve fills the stock at start; the spare filler thread tops it up when
 * the committer finds that a batch left it low.
 * With the filler behind (a burst), deliveries create their own files.
 *
 * Threads are named smtpd-worker, smtpd-commit, smtpd-ckpt and
 * smtpd-spares (the I/O thread smtpd-io) for ps -L and top -H.
 *
 * Workers and the committer touch only the job (their own copies of every
 * string), never the session.
 */
#include "smtpd/smtpd_auth.h"
#include "smtpd/smtpd_int.h"

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Most messages one transaction commits. */
#define SMTPD_COMMIT_BATCH_MAX 64

/* A prepared message waiting for the committer. */
struct commit_item {
    struct commit_item *next;
    struct smtpd_job *job;
    struct deliver_pending *pending;
};

struct worker;

/*
 * A helper thread (the checkpointer, the spare filler). A request is the
 * config (one reference) of the data directory to work on, kept until the
 * work is done: one at a time; asking while one is pending does nothing.
 */
struct helper {
    const char *name;                                  /* of the thread */
    void (*run)(struct worker *w, struct config *cfg); /* w: its own, if it needs a store */
    struct smtpd_pool *p;
    pthread_t thread;
    bool started; /* under the pool's lock, like the rest */
    pthread_cond_t cond;
    struct config *cfg;
    bool stop;
};

struct smtpd_pool {
    unsigned n;
    pthread_t *threads;
    unsigned started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct smtpd_job *head, *tail; /* waiting */
    struct smtpd_job *done;        /* finished, newest first */
    bool stop;
    int efd;
    /* The committer, under lock too. */
    pthread_t committer;
    bool committer_started;
    pthread_cond_t commit_cond;
    struct commit_item *c_head, *c_tail;
    bool commit_stop;
    struct helper ckpt, spares;
};

struct worker {
    struct deliver_ctx *dc;
    struct config *cfg;     /* the config dc was opened with */
    bool defer_checkpoints; /* the committer's: see "Checkpoints" above */
};

static struct deliver_ctx *worker_ctx(struct worker *w, struct config *cfg)
{
    if (w->dc && w->cfg == cfg)
        return w->dc;
    if (w->dc)
        deliver_close(w->dc);
    w->dc = NULL;
    w->cfg = NULL;
    char *err = NULL;
    w->dc = deliver_open(cfg, &err);
    if (w->dc == NULL) {
        msg_error("-: smtpd worker cannot open the store: %s", err ? scrub(err) : "unknown");
        free(err);
        return NULL;
    }
    if (w->defer_checkpoints)
        deliver_defer_checkpoints(w->dc);
    w->cfg = cfg;
    return w->dc;
}

static void job_rcpt(struct worker *w, struct smtpd_job *j)
{
    struct deliver_ctx *dc = worker_ctx(w, j->cfg);
    if (dc == NULL) {
        j->status = SP_TEMPFAIL;
        return;
    }
    j->status = deliver_rcpt_check(dc, j->address, j->size_hint, &j->rcpt);
}

static void commit_push(struct smtpd_pool *p, struct smtpd_job *j, struct deliver_pending *pend)
{
    struct commit_item *c = xcalloc(1, sizeof(*c));
    c->job = j;
    c->pending = pend;
    pthread_mutex_lock(&p->lock);
    if (p->c_tail)
        p->c_tail->next = c;
    else
        p->c_head = c;
    p->c_tail = c;
    pthread_cond_signal(&p->commit_cond);
    pthread_mutex_unlock(&p->lock);
}

/* Returns true when the job went to the committer (it finishes it). */
static bool job_deliver(struct smtpd_pool *p, struct worker *w, struct smtpd_job *j)
{
    struct deliver_ctx *dc = worker_ctx(w, j->cfg);
    if (dc == NULL) {
        j->status = SP_TEMPFAIL;
        return false;
    }
    /* DKIM and SPF of the message (bounded by dns_timeout), then the
     * Authentication-Results line goes below our Received: line. */
    struct smtpd_auth_request rq = {
        .client_ip = j->client_addr,
        .helo = j->helo,
        .mail_from = j->mail_from,
        .authserv_id = j->cfg->hostname,
        .dkim = j->cfg->dkim_verify,
        .spf = j->cfg->spf,
        .dns_timeout = (unsigned)j->cfg->dns_timeout,
    };
    struct smtpd_auth_result *ar = xcalloc(1, sizeof(*ar));
    if (smtpd_auth_check(&rq, j->fd, ar) < 0) /* ar still says temperror */
        msg_warn("%s: authentication checks could not read the message", j->queue_id);
    char dkim[SMTPD_AUTH_RESULT_MAX + SMTPD_AUTH_DOMAIN_MAX + 8];
    if (ar->dkim_domain[0])
        snprintf(dkim, sizeof(dkim), "%s (d=%s)", ar->dkim, ar->dkim_domain);
    else
        snprintf(dkim, sizeof(dkim), "%s", ar->dkim[0] ? ar->dkim : "none");
    char *trace = xasprintf("%s%s", j->received, ar->header);
    struct arrival a = {
        .trace = trace,
        .via = j->via,
        .helo = j->helo,
        .client_addr = j->client_addr,
        .mail_from = j->mail_from,
        .tls_version = j->tls_version,
        .tls_cipher = j->tls_cipher,
        .dkim = rq.dkim ? dkim : NULL,
        .spf = rq.spf ? (ar->spf[0] ? ar->spf : "none") : NULL,
    };
    struct deliver_pending *pend = NULL;
    j->status = deliver_prepare(dc, j->fd, j->rcpts, j->nrcpts, &a, j->queue_id, &pend);
    free(trace);
    free(ar);
    if (j->status != SP_OK)
        return false;
    commit_push(p, j, pend);
    return true;
}

/* Puts finished jobs on the done list and wakes the I/O thread once. */
static void done_push(struct smtpd_pool *p, struct smtpd_job **jobs, size_t n)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->next = p->done;
        p->done = jobs[i];
    }
    pthread_mutex_unlock(&p->lock);
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/* Asks helper h to work on cfg's data directory, unless a request is
 * pending or it does not run. */
static void helper_ask(struct smtpd_pool *p, struct helper *h, struct config *cfg)
{
    pthread_mutex_lock(&p->lock);
    if (h->started && h->cfg == NULL) {
        h->cfg = config_ref(cfg);
        pthread_cond_signal(&h->cond);
    }
    pthread_mutex_unlock(&p->lock);
}

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    struct smtpd_pool *p = h->p;
    pthread_setname_np(pthread_self(), h->name);
    struct worker w = {0};
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (h->cfg == NULL && !h->stop)
            pthread_cond_wait(&h->cond, &p->lock);
        if (h->stop)
            break;
        struct config *cfg = h->cfg;
        pthread_mutex_unlock(&p->lock);
        h->run(&w, cfg);
        pthread_mutex_lock(&p->lock);
        config_unref(h->cfg);
        h->cfg = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (w.dc)
        deliver_close(w.dc);
    return NULL;
}

static void run_checkpoint(struct worker *w, struct config *cfg)
{
    struct deliver_ctx *dc = worker_ctx(w, cfg);
    if (dc)
        deliver_checkpoint(dc);
}

static void run_spares(struct worker *w, struct config *cfg)
{
    (void)w;                        /* no store needed */
    (void)deliver_spares_fill(cfg); /* a failure is logged; deliveries create files */
}

/* After a commit: a checkpoint when the committer's WAL is long enough
 * (lib/db.h), spares when the stock runs low. */
static void after_commit(struct smtpd_pool *p, struct deliver_ctx *dc, struct config *cfg)
{
    if (deliver_checkpoint_wanted(dc))
        helper_ask(p, &p->ckpt, cfg);
    if (deliver_spares_wanted(dc))
        helper_ask(p, &p->spares, cfg);
}

static void *committer_main(void *arg)
{
    struct smtpd_pool *p = arg;
    pthread_setname_np(pthread_self(), "smtpd-commit");
    log_defer(1);
    struct worker w = {.defer_checkpoints = true};
    struct deliver_pending *pv[SMTPD_COMMIT_BATCH_MAX];
    struct smtpd_job *jobs[SMTPD_COMMIT_BATCH_MAX];
    enum sp_status st[SMTPD_COMMIT_BATCH_MAX];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->c_head == NULL && !p->commit_stop)
            pthread_cond_wait(&p->commit_cond, &p->lock);
        if (p->c_head == NULL) { /* stop, and nothing left */
            pthread_mutex_unlock(&p->lock);
            break;
        }
        /* Every message waiting, as long as they share a config snapshot
         * (the store is opened with it). */
        size_t n = 0;
        struct config *cfg = p->c_head->job->cfg;
        while (p->c_head && n < SMTPD_COMMIT_BATCH_MAX && p->c_head->job->cfg == cfg) {
            struct commit_item *c = p->c_head;
            p->c_head = c->next;
            jobs[n] = c->job;
            pv[n] = c->pending;
            n++;
            free(c);
        }
        if (p->c_head == NULL)
            p->c_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        metrics_inc("smtp_commits_total", NULL);
        metrics_add("smtp_committed_messages_total", NULL, n);
        /* Messages prepared from now on go to the next batch's directory. */
        deliver_blob_prefix_next();
        struct deliver_ctx *dc = worker_ctx(&w, cfg);
        if (dc == NULL) {
            for (size_t i = 0; i < n; i++) {
                msg_warn("%s: status=deferred, reason=%s", jobs[i]->queue_id,
                         sp_status_name(SP_TEMPFAIL));
                deliver_pending_free(pv[i]);
                st[i] = SP_TEMPFAIL;
            }
        } else {
            deliver_commit(dc, pv, n, st);
        }
        for (size_t i = 0; i < n; i++)
            jobs[i]->status = st[i];
        done_push(p, jobs, n);
        log_flush();
        if (dc) /* dc holds a reference to cfg: alive though the jobs are gone */
            after_commit(p, dc, cfg);
    }
    if (w.dc)
        deliver_close(w.dc);
    log_defer(0);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct smtpd_pool *p = arg;
    pthread_setname_np(pthread_self(), "smtpd-worker");
    log_defer(1);
    struct worker w = {0};
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->head == NULL) { /* stop, and nothing left */
            pthread_mutex_unlock(&p->lock);
            break;
        }
        struct smtpd_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);

        if (j->kind == JOB_RCPT)
            job_rcpt(&w, j);
        else if (job_deliver(p, &w, j)) {
            log_flush();
            continue; /* the committer finishes it */
        }
        done_push(p, &j, 1);
        log_flush();
    }
    if (w.dc)
        deliver_close(w.dc);
    log_defer(0);
    return NULL;
}

struct smtpd_pool *smtpd_pool_new(unsigned workers)
{
    struct smtpd_pool *p = xcalloc(1, sizeof(*p));
    if (workers == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        workers = cores > 0 ? (unsigned)cores : 1;
    }
    p->n = workers;
    p->threads = xcalloc(workers, sizeof(*p->threads));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_cond_init(&p->commit_cond, NULL);
    p->ckpt = (struct helper){.name = "smtpd-ckpt", .run = run_checkpoint, .p = p};
    p->spares = (struct helper){.name = "smtpd-spares", .run = run_spares, .p = p};
    pthread_cond_init(&p->ckpt.cond, NULL);
    pthread_cond_init(&p->spares.cond, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        msg_fatal("eventfd: %s", strerror(errno));
    return p;
}

static int helper_start(struct helper *h, char **err)
{
    if (h->started)
        return 0;
    int rc = pthread_create(&h->thread, NULL, helper_main, h);
    if (rc != 0) {
        *err = xasprintf("cannot start the %s thread: %s", h->name, strerror(rc));
        return -1;
    }
    pthread_mutex_lock(&h->p->lock);
    h->started = true;
    pthread_mutex_unlock(&h->p->lock);
    return 0;
}

int smtpd_pool_start(struct smtpd_pool *p, char **err)
{
    if (helper_start(&p->ckpt, err) < 0 || helper_start(&p->spares, err) < 0)
        return -1;
    if (!p->committer_started) {
        int rc = pthread_create(&p->committer, NULL, committer_main, p);
        if (rc != 0) {
            *err = xasprintf("cannot start the committer thread: %s", strerror(rc));
            return -1;
        }
        p->committer_started = true;
    }
    for (; p->started < p->n; p->started++) {
        int rc = pthread_create(&p->threads[p->started], NULL, worker_main, p);
        if (rc != 0) {
            *err = xasprintf("cannot start a worker thread: %s", strerror(rc));
            return -1;
        }
    }
    return 0;
}

unsigned smtpd_pool_size(const struct smtpd_pool *p)
{
    return p->n;
}

int smtpd_pool_fd(const struct smtpd_pool *p)
{
    return p->efd;
}

void smtpd_pool_push(struct smtpd_pool *p, struct smtpd_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

struct smtpd_job *smtpd_pool_collect(struct smtpd_pool *p)
{
    uint64_t v;
    while (read(p->efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&p->lock);
    struct smtpd_job *list = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->lock);
    /* Oldest first. */
    struct smtpd_job *rev = NULL;
    while (list) {
        struct smtpd_job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    return rev;
}

/* Tells a thread (the committer, a helper) to stop and waits for it, if
 * it runs. */
static void thread_stop(struct smtpd_pool *p, bool *started, bool *stop, pthread_cond_t *cond,
                        pthread_t thread)
{
    pthread_mutex_lock(&p->lock);
    bool running = *started;
    if (running) {
        *stop = true;
        pthread_cond_broadcast(cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (!running)
        return;
    pthread_join(thread, NULL);
    pthread_mutex_lock(&p->lock);
    *started = false;
    pthread_mutex_unlock(&p->lock);
}

static void helper_stop(struct smtpd_pool *p, struct helper *h)
{
    thread_stop(p, &h->started, &h->stop, &h->cond, h->thread);
    config_unref(h->cfg);
    h->cfg = NULL;
}

void smtpd_pool_stop(struct smtpd_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
    /* The workers are gone, so nothing more is handed over: the committer
     * commits what is waiting, then stops. */
    thread_stop(p, &p->committer_started, &p->commit_stop, &p->commit_cond, p->committer);
    /* Nothing commits any more: a checkpoint asked for is not needed (the
     * store's last connection to close checkpoints anyway), and the spares
     * left are removed. */
    helper_stop(p, &p->ckpt);
    helper_stop(p, &p->spares);
    deliver_spares_drop();
}

void smtpd_pool_free(struct smtpd_pool *p)
{
    if (p == NULL)
        return;
    struct smtpd_job *j;
    while ((j = p->done) != NULL) {
        p->done = j->next;
        smtpd_job_free(j);
    }
    while ((j = p->head) != NULL) {
        p->head = j->next;
        smtpd_job_free(j);
    }
    struct commit_item *c;
    while ((c = p->c_head) != NULL) {
        p->c_head = c->next;
        deliver_pending_free(c->pending);
        smtpd_job_free(c->job);
        free(c);
    }
    close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->commit_cond);
    pthread_cond_destroy(&p->ckpt.cond);
    pthread_cond_destroy(&p->spares.cond);
    free(p->threads);
    free(p);
}
