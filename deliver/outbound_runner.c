/*
 * outbound_runner — takes due mail out of the queue and hands it to the
 * relay host: in serve's background thread (outbound_runner_*) or in the
 * foreground for `queue flush` (outbound_deliver_due).
 *
 * Life of a mail: queued → claimed ("sending", with a lease) → one attempt →
 *   250                     sent; event "notified"; the encrypted data is dropped
 *   5xx to MAIL/RCPT/DATA   failed at once; event "notify_failed"
 *   4xx, no connection, …   queued again after a back-off: retry_min doubled
 *                           per attempt up to retry_max; the last try is at
 *                           created + max_queue_age, after which it fails
 *                           ("expired", event "notify_failed")
 * The result and its event are one transaction. A process that dies between
 * the relay's 250 and that commit sends the mail again once the lease
 * (OUTBOUND_LEASE_SECONDS) ran out: delivery is at least once, never lost.
 *
 * The runner polls the store every OUTBOUND_POLL_SECONDS (mail queued by
 * other processes, `queue flush`) and is woken at once by outbound_enqueue
 * in its own process. It owns one store connection and makes one libetpan
 * session per attempt; nothing is shared with other threads but the
 * reference-counted config, swapped under a mutex on reload.
 *
 * SIGPIPE: a relay that drops the connection mid-write raises it; the
 * process must ignore SIGPIPE (serve and the CLI do).
 */
#include "deliver/outbound_internal.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/masterkey.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t outbound_backoff(const struct config *cfg, unsigned attempts)
{
    int64_t d = (int64_t)cfg->retry_min, max = (int64_t)cfg->retry_max;
    for (unsigned i = 1; i < attempts && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

/* Records the outcome of one attempt and its event, in one transaction. */
static int result_record(struct db *db, const struct config *cfg, const struct db_queue_entry *e,
                         enum outbound_result res, const char *reply, int64_t now,
                         struct outbound_pass_stats *st)
{
    const char *state = NULL, *event = NULL;
    char detail[OUTBOUND_REPLY_MAX + 64];
    char error[OUTBOUND_REPLY_MAX + 16];
    int64_t next = 0;

    snprintf(error, sizeof(error), "%s", reply);
    if (res == OUTBOUND_SENT) {
        state = DB_QUEUE_SENT;
        event = "notified";
        snprintf(detail, sizeof(detail), "%s", e->kind);
    } else if (res == OUTBOUND_PERM) {
        state = DB_QUEUE_FAILED;
        event = "notify_failed";
        snprintf(detail, sizeof(detail), "%s:%s", e->kind, reply);
    } else if (now - e->created >= (int64_t)cfg->max_queue_age) {
        state = DB_QUEUE_FAILED;
        event = "notify_failed";
        snprintf(detail, sizeof(detail), "%s:expired", e->kind);
        snprintf(error, sizeof(error), "expired: %s", reply);
    } else {
        int64_t deadline = e->created + (int64_t)cfg->max_queue_age;
        next = now + outbound_backoff(cfg, e->attempts + 1);
        if (next > deadline)
            next = deadline;
    }

    enum db_rc r = db_begin(db);
    if (r == DB_OK)
        r = state ? db_queue_finish(db, e->id, now, state, error)
                  : db_queue_defer(db, e->id, now, next, error);
    if (r == DB_OK && event && e->send_id) {
        struct db_event ev = {.subject = e->send_id, .time = now, .kind = event, .detail = detail};
        r = db_event_add(db, &ev);
    }
    if (r == DB_OK)
        r = db_commit(db);
    if (r != DB_OK) {
        db_rollback(db);
        msg_error("%s: outbound: cannot record the result (store error %d)", e->id, (int)r);
        return -1;
    }
    metrics_inc("outbound_attempts_total", res == OUTBOUND_SENT ? "result=sent"
                                           : state              ? "result=failed"
                                                                : "result=deferred");
    if (res == OUTBOUND_SENT) {
        st->delivered++;
        msg_info("%s: sent: kind=%s, send=%s, relay=%s, attempts=%u, reply=%s", e->id,
                 scrub(e->kind), scrub(e->send_id ? e->send_id : "-"), scrub(cfg->relayhost),
                 e->attempts + 1, scrub(reply));
    } else if (state) {
        st->failed++;
        msg_warn("%s: failed: kind=%s, send=%s, relay=%s, attempts=%u, reason=%s", e->id,
                 scrub(e->kind), scrub(e->send_id ? e->send_id : "-"), scrub(cfg->relayhost),
                 e->attempts + 1, scrub(error));
    } else {
        st->deferred++;
        msg_info("%s: deferred: kind=%s, send=%s, relay=%s, attempts=%u, reply=%s, "
                 "next_in=%llds",
                 e->id, scrub(e->kind), scrub(e->send_id ? e->send_id : "-"), scrub(cfg->relayhost),
                 e->attempts + 1, scrub(reply), (long long)(next - now));
    }
    return 0;
}

/* One pass; stops early (between mails) when *stop becomes true. */
static int deliver_pass(struct db *db, const struct config *cfg, const unsigned char *master,
                        int64_t now, struct outbound_pass_stats *st, const atomic_bool *stop)
{
    char ids[OUTBOUND_BATCH][DB_ID_MAX + 1];
    memset(st, 0, sizeof(*st));
    for (;;) {
        size_t n = 0, claimed = 0;
        if (db_queue_due(db, now, ids, OUTBOUND_BATCH, &n) != DB_OK)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (stop && atomic_load(stop))
                return 0;
            struct db_queue_entry e;
            int64_t t = (int64_t)time(NULL) > now ? (int64_t)time(NULL) : now;
            enum db_rc r = db_queue_claim(db, ids[i], t, t + OUTBOUND_LEASE_SECONDS, &e);
            if (r == DB_NOTFOUND)
                continue; /* another sender took it */
            if (r != DB_OK)
                return -1;
            claimed++;
            struct outbound_record rec;
            char reply[OUTBOUND_REPLY_MAX];
            enum outbound_result res;
            if (outbound_record_open(master, e.id, e.data, e.data_len, &rec) < 0) {
                msg_error("%s: outbound: cannot decrypt the queued mail (master key changed?)",
                          e.id);
                snprintf(reply, sizeof(reply), "cannot decrypt");
                res = OUTBOUND_TEMP;
            } else {
                res = outbound_smtp_send(cfg, e.id, &rec, reply);
                outbound_record_clear(&rec);
            }
            t = (int64_t)time(NULL) > now ? (int64_t)time(NULL) : now;
            int rc = result_record(db, cfg, &e, res, reply, t, st);
            db_queue_entry_clear(&e);
            if (rc < 0)
                return -1;
        }
        if (n < OUTBOUND_BATCH || claimed == 0)
            break;
    }
    if (db_queue_purge(db, now - OUTBOUND_FINISHED_KEEP) != DB_OK)
        return -1;
    return 0;
}

int outbound_deliver_due(struct db *db, const struct config *cfg, const unsigned char *master,
                         int64_t now, struct outbound_pass_stats *st)
{
    return deliver_pass(db, cfg, master, now, st, NULL);
}

/* ---- the background runner ---- */

struct outbound_runner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct config *cfg; /* under mu */
    bool wake;          /* under mu */
    atomic_bool stop;
    unsigned char *master;
    struct db *db;
};

/* The runner of this process, for outbound_runner_wake. */
static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct outbound_runner *current;

void outbound_runner_wake(void)
{
    pthread_mutex_lock(&current_mu);
    if (current) {
        pthread_mutex_lock(&current->mu);
        current->wake = true;
        pthread_cond_signal(&current->cv);
        pthread_mutex_unlock(&current->mu);
    }
    pthread_mutex_unlock(&current_mu);
}

static void *runner_main(void *arg)
{
    struct outbound_runner *r = arg;
    msg_info("outbound: runner started (polls every %ds)", OUTBOUND_POLL_SECONDS);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (!r->wake && !atomic_load(&r->stop)) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += OUTBOUND_POLL_SECONDS;
            pthread_cond_timedwait(&r->cv, &r->mu, &until);
        }
        r->wake = false;
        struct config *cfg = config_ref(r->cfg);
        pthread_mutex_unlock(&r->mu);
        if (atomic_load(&r->stop)) {
            config_unref(cfg);
            break;
        }
        struct outbound_pass_stats st;
        if (deliver_pass(r->db, cfg, r->master, (int64_t)time(NULL), &st, &r->stop) < 0)
            msg_warn("outbound: delivery pass failed; next in %ds", OUTBOUND_POLL_SECONDS);
        int64_t depth = 0;
        if (db_queue_depth(r->db, &depth) == DB_OK)
            metrics_set("queue_depth", NULL, depth);
        config_unref(cfg);
    }
    msg_info("outbound: runner stopped");
    return NULL;
}

struct outbound_runner *outbound_runner_start(struct config *cfg, char **err)
{
    *err = NULL;
    struct outbound_runner *r = xcalloc(1, sizeof(*r));
    r->master = masterkey_load(cfg->master_key);
    if (r->master == NULL) {
        *err = xasprintf("cannot load the master key %s", cfg->master_key);
        free(r);
        return NULL;
    }
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    enum db_rc dr = db_open(path, &r->db);
    free(path);
    if (dr != DB_OK) {
        *err = xasprintf("cannot open the store in %s", cfg->data_dir);
        masterkey_free(r->master);
        free(r);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->stop, false);
    r->cfg = config_ref(cfg);
    r->wake = true; /* a first pass at once: mail may have waited while we were down */
    int e = pthread_create(&r->thread, NULL, runner_main, r);
    if (e != 0) {
        *err = xasprintf("cannot start the outbound thread: %s", strerror(e));
        config_unref(r->cfg);
        db_close(r->db);
        masterkey_free(r->master);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&current_mu);
    current = r;
    pthread_mutex_unlock(&current_mu);
    return r;
}

void outbound_runner_reload(struct outbound_runner *r, struct config *cfg)
{
    struct config *old;
    pthread_mutex_lock(&r->mu);
    old = r->cfg;
    r->cfg = config_ref(cfg);
    r->wake = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    config_unref(old);
}

void outbound_runner_stop(struct outbound_runner *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&current_mu);
    if (current == r)
        current = NULL;
    pthread_mutex_unlock(&current_mu);
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, true);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    config_unref(r->cfg);
    db_close(r->db);
    masterkey_free(r->master);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
