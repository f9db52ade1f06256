/*
 * relay_plugin — the `plugin` SMS relay: a shared object with the ABI of
 * sendlink/relay_abi.h, loaded with dlopen(RTLD_NOW | RTLD_LOCAL).
 *
 * Keys: path (the .so; made absolute by the config loader), timeout, and
 * any other key, which goes to the plug-in's init as a key/value pair.
 *
 * Trust: a plug-in runs inside sealpost with its privileges, so it is
 * loaded only when the file is owned by root or by the user sealpost runs
 * as and is not writable by group or others, and only when it exports
 * SEALPOST_RELAY_SYMBOL with our ABI major version and a struct at least as
 * large as ours (relay_abi.h "Versioning"). A plug-in without
 * SEALPOST_RELAY_THREADSAFE is called under a mutex. Its results are
 * checked: anything but SENT, TEMPFAIL, PERMFAIL counts as TEMPFAIL; its
 * strings are cut at their buffer and scrubbed.
 */
#include "lib/log.h"
#include "lib/xalloc.h"
#include "sendlink/relay.h"
#include "sendlink/relay_abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct plugin_relay {
    void *dl;
    const struct sealpost_relay_plugin *p;
    void *pctx;
    bool serial;
    pthread_mutex_t lock;
};

static void plugin_close(void *ctx)
{
    struct plugin_relay *x = ctx;
    if (x == NULL)
        return;
    if (x->p && x->pctx && x->p->free)
        x->p->free(x->pctx);
    if (x->dl)
        dlclose(x->dl);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

/* Owned by root or by us, not writable by group or others. */
static int file_trusted(const char *path, char *err, size_t errsz)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errsz, "%s: %s", scrub(path), strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s: not a regular file", scrub(path));
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errsz, "%s: owned by uid %u, neither root nor us", scrub(path),
                 (unsigned)st.st_uid);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errsz, "%s: writable by group or others", scrub(path));
        return -1;
    }
    return 0;
}

static int plugin_open(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                       size_t errsz)
{
    (void)cfg;
    const char *path = config_relay_param(rc, "path");
    if (path == NULL || file_trusted(path, err, errsz) < 0)
        return -1;
    struct plugin_relay *x = xcalloc(1, sizeof(*x));
    pthread_mutex_init(&x->lock, NULL);
    x->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (x->dl == NULL) {
        const char *why = dlerror();
        snprintf(err, errsz, "dlopen: %s", why ? scrub(why) : "failed");
        plugin_close(x);
        return -1;
    }
    x->p = dlsym(x->dl, SEALPOST_RELAY_SYMBOL);
    const struct sealpost_relay_plugin *p = x->p;
    if (p == NULL) {
        snprintf(err, errsz, "%s does not export %s", scrub(path), SEALPOST_RELAY_SYMBOL);
        plugin_close(x);
        return -1;
    }
    if (p->abi_major != SEALPOST_RELAY_ABI_MAJOR) {
        snprintf(err, errsz, "relay ABI %u.%u, sealpost speaks %d.x", (unsigned)p->abi_major,
                 (unsigned)p->abi_minor, SEALPOST_RELAY_ABI_MAJOR);
        x->p = NULL;
        plugin_close(x);
        return -1;
    }
    if (p->struct_size < sizeof(struct sealpost_relay_plugin) || p->init == NULL ||
        p->send == NULL) {
        snprintf(err, errsz, "relay ABI struct too small or without init/send");
        x->p = NULL;
        plugin_close(x);
        return -1;
    }
    x->serial = !(p->flags & SEALPOST_RELAY_THREADSAFE);
    struct sealpost_relay_kv *kv = xcalloc(rc->nparams + 1, sizeof(*kv));
    size_t n = 0;
    for (size_t i = 0; i < rc->nparams; i++) {
        const char *k = rc->params[i].key;
        if (strcmp(k, "path") == 0 || strcmp(k, "timeout") == 0)
            continue;
        kv[n].key = k;
        kv[n].value = rc->params[i].value;
        n++;
    }
    char perr[SEALPOST_RELAY_ERROR_MAX] = "";
    x->pctx = p->init(kv, n, perr, sizeof(perr));
    free(kv);
    if (x->pctx == NULL) {
        perr[sizeof(perr) - 1] = '\0';
        snprintf(err, errsz, "plug-in %s: %s", p->name ? scrub(p->name) : "?",
                 perr[0] ? scrub(perr) : "init failed");
        plugin_close(x);
        return -1;
    }
    *ctx = x;
    return 0;
}

static enum relay_status plugin_send(void *ctx, const struct relay_env *env,
                                     const struct relay_msg *m, unsigned timeout_ms,
                                     struct relay_result *res)
{
    (void)env;
    struct plugin_relay *x = ctx;
    struct sealpost_relay_msg msg = {.struct_size = sizeof(msg),
                                     .to = m->to,
                                     .text = m->text,
                                     .id = m->id,
                                     .timeout_ms = timeout_ms};
    struct sealpost_relay_result pr;
    memset(&pr, 0, sizeof(pr));
    if (x->serial)
        pthread_mutex_lock(&x->lock);
    int rc = x->p->send(x->pctx, &msg, &pr);
    if (x->serial)
        pthread_mutex_unlock(&x->lock);
    pr.ref[sizeof(pr.ref) - 1] = '\0';
    pr.error[sizeof(pr.error) - 1] = '\0';
    log_scrub(res->ref, sizeof(res->ref), pr.ref, (size_t)-1);
    if (pr.error[0])
        relay_error(res, "%s", pr.error);
    switch (rc) {
    case SEALPOST_RELAY_SENT:
        return RELAY_SENT;
    case SEALPOST_RELAY_PERMFAIL:
        if (res->error[0] == '\0')
            relay_error(res, "refused by the plug-in");
        return RELAY_PERMFAIL;
    case SEALPOST_RELAY_TEMPFAIL:
        if (res->error[0] == '\0')
            relay_error(res, "failed in the plug-in");
        return RELAY_TEMPFAIL;
    default:
        relay_error(res, "plug-in returned %d", rc);
        return RELAY_TEMPFAIL;
    }
}

const struct relay_ops relay_plugin_ops = {"plugin", plugin_open, plugin_send, plugin_close};
