/*
 * cli_serve — `sealpost serve`: the supervisor of the long-running services.
 *
 * Design.
 *   1. Load the config (file:line errors and exit 1 if invalid).
 *   2. Block SIGTERM, SIGINT and SIGHUP in this thread before any other
 *      thread exists, so every thread inherits the mask and only this one
 *      receives them (sigwaitinfo); ignore SIGPIPE (sockets use
 *      MSG_NOSIGNAL, TLS writes may not).
 *   3. Open every service in the table below: each binds its sockets here,
 *      while we may still be root (ports below 1024).
 *   4. Drop privileges when root and [server] user is set: setgroups,
 *      setgid, setuid, then verify that root cannot be regained. Root
 *      without a user is allowed, with a warning (the example config).
 *      Then confine file writes to the data dir (cli_sandbox.c, Landlock).
 *   5. Remove crash leftovers (deliver_cleanup), create the blob
 *      directories (deliver_blob_dirs_prepare) and the first stock of spare
 *      containers (deliver_spares_fill), as the unprivileged user.
 *   6. Start each service (threads; workers open the store as that user).
 *   7. Wait for signals: SIGHUP loads the config again; if it is invalid the
 *      problems are logged with file:line and the old one stays; if valid it
 *      is handed to every service, whose sessions in progress finish on the
 *      snapshot they hold. SIGTERM/SIGINT stop every service: stop
 *      accepting, let transactions in flight finish for at most
 *      SERVE_DRAIN_SECONDS, join; exit 0.
 *
 * A later service (HTTP, outbound queue, sweepers) is one more row in
 * `services` with the same five functions.
 */
#include "cli/cli.h"
#include "deliver/deliver.h"
#include "lib/log.h"
#include "deliver/outbound.h"
#include "lib/xalloc.h"
#include "sendlink/sendlink.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_auth.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long SIGTERM waits for transactions in flight before closing them. */
#define SERVE_DRAIN_SECONDS 30

struct service {
    const char *name;
    /* Binds; NULL state and *err on failure. Runs before the privilege drop. */
    void *(*open)(struct config *cfg, char **err);
    int (*start)(void *st, char **err);
    void (*reload)(void *st, struct config *cfg);
    void (*stop)(void *st, unsigned drain_seconds);
    void (*close)(void *st);
};

static void *smtp_open(struct config *cfg, char **err)
{
    return smtpd_server_new(cfg, err);
}

static int smtp_start(void *st, char **err)
{
    return smtpd_server_start(st, err);
}

static void smtp_reload(void *st, struct config *cfg)
{
    smtpd_server_reload(st, cfg);
}

static void smtp_stop(void *st, unsigned drain_seconds)
{
    smtpd_server_stop(st, drain_seconds);
}

static void smtp_close(void *st)
{
    smtpd_server_free(st);
}

/* The outbound queue runner: nothing to bind, a thread once started. */
struct outbound_service {
    struct config *cfg;
    struct outbound_runner *r;
};

static void *outbound_open(struct config *cfg, char **err)
{
    (void)err;
    struct outbound_service *o = xcalloc(1, sizeof(*o));
    o->cfg = config_ref(cfg);
    return o;
}

static int outbound_start(void *st, char **err)
{
    struct outbound_service *o = st;
    o->r = outbound_runner_start(o->cfg, err);
    return o->r ? 0 : -1;
}

static void outbound_reload(void *st, struct config *cfg)
{
    outbound_runner_reload(((struct outbound_service *)st)->r, cfg);
}

static void outbound_stop(void *st, unsigned drain_seconds)
{
    (void)drain_seconds; /* a send in progress is bounded by smtp_timeout */
    struct outbound_service *o = st;
    outbound_runner_stop(o->r);
    o->r = NULL;
}

static void outbound_close(void *st)
{
    struct outbound_service *o = st;
    config_unref(o->cfg);
    free(o);
}

/* ---- sendlink: the HTTP service (API, pages, downloads) and its sweeper ---- */

static void *http_open(struct config *cfg, char **err)
{
    return sendlink_open(cfg, err);
}

static int http_start(void *st, char **err)
{
    return sendlink_start(st, err);
}

static void http_reload(void *st, struct config *cfg)
{
    sendlink_reload(st, cfg);
}

static void http_stop(void *st, unsigned drain_seconds)
{
    sendlink_stop(st, drain_seconds);
}

static void http_close(void *st)
{
    sendlink_free(st);
}

/* ---- end sendlink ---- */

static const struct service services[] = {
    {"smtp", smtp_open, smtp_start, smtp_reload, smtp_stop, smtp_close},
    {"http", http_open, http_start, http_reload, http_stop, http_close},
    {"outbound", outbound_open, outbound_start, outbound_reload, outbound_stop, outbound_close},
};
#define NSERVICES (sizeof(services) / sizeof(services[0]))

static int privileges_drop(const struct config *cfg)
{
    if (geteuid() != 0)
        return 0;
    if (cfg->user == NULL || cfg->user[0] == '\0') {
        msg_warn("-: running as root: set [server] user to drop privileges");
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL) {
        msg_error("-: [server] user %s: no such user", scrub(cfg->user));
        return -1;
    }
    if (pw->pw_uid == 0) {
        msg_error("-: [server] user %s is root", scrub(cfg->user));
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (setgroups(1, &gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        msg_error("-: cannot drop privileges to %s: %s", scrub(cfg->user), strerror(errno));
        return -1;
    }
    /* Verify: no way back to root. */
    if (setuid(0) == 0 || geteuid() == 0 || getuid() != pw->pw_uid || getgid() != pw->pw_gid) {
        msg_error("-: privilege drop to %s did not stick", scrub(cfg->user));
        return -1;
    }
    msg_info("-: running as %s (uid %ld)", scrub(cfg->user), (long)pw->pw_uid);
    return 0;
}

static void leftovers_remove(struct config *cfg)
{
    char *err = NULL;
    struct deliver_ctx *d = deliver_open(cfg, &err);
    if (d == NULL) {
        msg_warn("-: cleanup skipped: %s", err ? scrub(err) : "cannot open the store");
        free(err);
        return;
    }
    long n = deliver_cleanup(d, DELIVER_ORPHAN_GRACE);
    if (n > 0)
        msg_info("-: cleanup: removed %ld crash leftovers", n);
    if (deliver_blob_dirs_prepare(d, &err) < 0) { /* commits then do it per directory */
        msg_warn("-: blob directories not prepared: %s", scrub(err));
        free(err);
    }
    (void)deliver_spares_fill(cfg); /* a failure is logged; deliveries create files */
    deliver_close(d);
}

static struct config *config_reload(const char *path)
{
    struct config *cfg = NULL;
    struct diag d = {0};
    if (config_load(path, &cfg, &d) < 0) {
        for (size_t i = 0; i < d.n; i++)
            msg_error("-: reload: %s", scrub(d.msgs[i]));
        msg_error("-: reload: %s is invalid, keeping the running config", scrub(path));
        diag_free(&d);
        return NULL;
    }
    diag_free(&d);
    return cfg;
}

int cmd_serve(struct cli *c, int argc, char **argv)
{
    if (argc > 1)
        return cli_usage("serve (unexpected '%s')", argv[1]);
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    log_open("sealpost", 1, cfg->log_syslog);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Inbound DKIM/SPF: libopendkim is initialised once, before threads. */
    if (smtpd_auth_open() < 0)
        return cli_fail("cannot initialise DKIM verification");

    void *st[NSERVICES] = {0};
    size_t opened = 0, started = 0;
    int rc = CLI_OK;
    char *err = NULL;
    for (; opened < NSERVICES; opened++) {
        st[opened] = services[opened].open(cfg, &err);
        if (st[opened] == NULL) {
            rc = cli_fail("%s: %s", services[opened].name, err ? err : "cannot open");
            goto out;
        }
    }
    if (privileges_drop(cfg) < 0) {
        rc = cli_fail("cannot drop privileges");
        goto out;
    }
    /* Only a dropped daemon is confined: one run by hand as a user (make
     * run, tests) keeps that user's rights. */
    if (cfg->user && cfg->user[0] && getuid() != 0 && serve_confine(cfg) < 0) {
        rc = cli_fail("cannot confine file writes to the data directory");
        goto out;
    }
    leftovers_remove(cfg);
    for (; started < NSERVICES; started++) {
        if (services[started].start(st[started], &err) < 0) {
            rc = cli_fail("%s: %s", services[started].name, err ? err : "cannot start");
            goto out;
        }
    }
    msg_info("-: sealpost serve ready, pid=%ld", (long)getpid());

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            msg_error("-: sigwaitinfo: %s", strerror(errno));
            break;
        }
        if (sig == SIGHUP) {
            msg_info("-: SIGHUP: reloading %s", scrub(c->config_path));
            struct config *n = config_reload(c->config_path);
            if (n == NULL)
                continue;
            for (size_t i = 0; i < started; i++)
                services[i].reload(st[i], n);
            /* cli owns one reference to the running config. */
            config_unref(c->cfg);
            c->cfg = n;
            msg_info("-: reload done");
            continue;
        }
        msg_info("-: %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }

out:
    for (size_t i = started; i-- > 0;)
        services[i].stop(st[i], SERVE_DRAIN_SECONDS);
    for (size_t i = opened; i-- > 0;)
        services[i].close(st[i]);
    free(err);
    smtpd_auth_close();
    if (rc == CLI_OK)
        msg_info("-: sealpost serve stopped");
    return rc;
}
