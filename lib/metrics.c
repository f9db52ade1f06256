/*
 * metrics — the counter table behind GET /metrics (see metrics.h).
 *
 * One mutex, one fixed array: a scrape or a bump costs a scan of at most
 * METRICS_MAX short strings, which is nothing next to an HTTP request or
 * an SMTP transaction. Series keep their first-use order within a name.
 *
 * Trusts: callers to pass constant names and labels; both are still
 * checked against the exposition syntax and refused (logged) if wrong.
 */
#include "lib/metrics.h"
#include "lib/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct series {
    char name[METRICS_NAME_MAX + 1];
    char lkey[METRICS_LABEL_MAX + 1];
    char lval[METRICS_LABEL_MAX + 1];
    bool gauge;
    int64_t v;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series table[METRICS_MAX];
static size_t used;
static bool full_warned;

/* Known metrics: HELP text. Others are exposed without HELP. */
static const struct {
    const char *name;
    const char *help;
} helps[] = {
    {"sends_created_total", "Secure sends created"},
    {"sends_downloaded_total", "Whole files handed to a recipient"},
    {"sends_code_failed_total", "Wrong security codes entered"},
    {"sends_locked_total", "Links locked after too many wrong codes"},
    {"sends_expired_total", "Sends that reached their expiry"},
    {"sends_revoked_total", "Sends revoked by their sender or an admin"},
    {"sends_used_up_total", "Sends that reached their download limit"},
    {"sends_destroyed_total", "Send files destroyed by the sweeper or a revoke"},
    {"sends_refused_total", "Send requests refused, by reason"},
    {"http_requests_total", "HTTP requests, by status class"},
    {"notifications_queued_total", "Notification mails queued"},
    {"notifications_failed_total", "Notification mails that could not be queued"},
    {"messages_received_total", "Messages accepted by SMTP"},
    {"messages_refused_total", "Messages refused by SMTP, by reason"},
    {"smtp_commits_total", "Store commits of received messages (group commit)"},
    {"smtp_committed_messages_total", "Messages in those commits (more than commits: batched)"},
    {"sms_sent_total", "SMS sent, by route"},
    {"queue_depth", "Notification mails waiting in the outbound queue"},
};

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static bool value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > METRICS_LABEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* Finds or makes a series; NULL if the arguments are bad or the table is full. Lock held. */
static struct series *series_get(const char *name, const char *label, bool gauge, bool create)
{
    char key[METRICS_LABEL_MAX + 1] = "", val[METRICS_LABEL_MAX + 1] = "";
    if (!name_ok(name)) {
        msg_warn("-: metrics: bad name %s", scrub(name));
        return NULL;
    }
    if (label) {
        const char *eq = strchr(label, '=');
        if (eq == NULL || (size_t)(eq - label) > METRICS_LABEL_MAX) {
            msg_warn("-: metrics: bad label %s", scrub(label));
            return NULL;
        }
        memcpy(key, label, (size_t)(eq - label));
        key[eq - label] = '\0';
        if (!name_ok(key) || !value_ok(eq + 1)) {
            msg_warn("-: metrics: bad label %s", scrub(label));
            return NULL;
        }
        snprintf(val, sizeof(val), "%s", eq + 1);
    }
    for (size_t i = 0; i < used; i++)
        if (strcmp(table[i].name, name) == 0 && strcmp(table[i].lkey, key) == 0 &&
            strcmp(table[i].lval, val) == 0)
            return &table[i];
    if (!create)
        return NULL;
    if (used == METRICS_MAX) {
        if (!full_warned)
            msg_warn("-: metrics: table full (METRICS_MAX=%d), %s dropped", METRICS_MAX, name);
        full_warned = true;
        return NULL;
    }
    struct series *s = &table[used++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->lkey, sizeof(s->lkey), "%s", key);
    snprintf(s->lval, sizeof(s->lval), "%s", val);
    s->gauge = gauge;
    s->v = 0;
    return s;
}

void metrics_add(const char *name, const char *label, uint64_t n)
{
    pthread_mutex_lock(&lock);
    struct series *s = series_get(name, label, false, true);
    if (s)
        s->v += (int64_t)n;
    pthread_mutex_unlock(&lock);
}

void metrics_inc(const char *name, const char *label)
{
    metrics_add(name, label, 1);
}

void metrics_set(const char *name, const char *label, int64_t v)
{
    pthread_mutex_lock(&lock);
    struct series *s = series_get(name, label, true, true);
    if (s)
        s->v = v;
    pthread_mutex_unlock(&lock);
}

int64_t metrics_get(const char *name, const char *label)
{
    int64_t v = 0;
    pthread_mutex_lock(&lock);
    struct series *s = series_get(name, label, false, false);
    if (s)
        v = s->v;
    pthread_mutex_unlock(&lock);
    return v;
}

static const char *help_of(const char *name)
{
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
        if (strcmp(helps[i].name, name) == 0)
            return helps[i].help;
    return NULL;
}

int metrics_format(struct buf *b)
{
    int r = 0;
    pthread_mutex_lock(&lock);
    bool done[METRICS_MAX] = {false};
    for (size_t i = 0; i < used && r == 0; i++) {
        if (done[i])
            continue;
        const char *help = help_of(table[i].name);
        if (help)
            r |= buf_printf(b, "# HELP sealpost_%s %s\n", table[i].name, help);
        r |= buf_printf(b, "# TYPE sealpost_%s %s\n", table[i].name,
                        table[i].gauge ? "gauge" : "counter");
        for (size_t k = i; k < used && r == 0; k++) {
            if (done[k] || strcmp(table[k].name, table[i].name) != 0)
                continue;
            done[k] = true;
            if (table[k].lkey[0])
                r |= buf_printf(b, "sealpost_%s{%s=\"%s\"} %lld\n", table[k].name, table[k].lkey,
                                table[k].lval, (long long)table[k].v);
            else
                r |= buf_printf(b, "sealpost_%s %lld\n", table[k].name, (long long)table[k].v);
        }
    }
    /* Families with no series yet are still named (a scrape right after
     * start shows every family, never an empty page). */
    for (size_t j = 0; j < sizeof(helps) / sizeof(helps[0]) && r == 0; j++) {
        bool seen = false;
        for (size_t i = 0; i < used && !seen; i++)
            seen = strcmp(table[i].name, helps[j].name) == 0;
        if (seen)
            continue;
        size_t n = strlen(helps[j].name);
        bool counter = n > 6 && strcmp(helps[j].name + n - 6, "_total") == 0;
        r |= buf_printf(b, "# HELP sealpost_%s %s\n# TYPE sealpost_%s %s\n", helps[j].name,
                        helps[j].help, helps[j].name, counter ? "counter" : "gauge");
    }
    pthread_mutex_unlock(&lock);
    return r ? -1 : 0;
}
