/*
 * relay_exec — the `exec` SMS relay: runs a command per SMS, the escape
 * hatch for SMPP helpers and exotic vendors (Postfix pipe(8) semantics).
 *
 * Keys: command (absolute path, then arguments split on blanks; {to},
 * {to_digits} and {id} may be arguments), timeout. Never a shell: the
 * words go to posix_spawn as they are. The child gets a small fixed
 * environment, its own process group, and on stdin one JSON document
 *   {"to": "+41…", "text": "…", "id": "…"}
 * (the text never goes on the command line, where `ps` would show it; the
 * id is an idempotency key: the same SMS is never sent twice under it).
 *
 * Exit codes (sysexits.h): 0 = sent, the first stdout line is the
 * provider's message id; 75 (EX_TEMPFAIL) = this route failed, try the
 * next; anything else = the SMS is refused (no other route is tried). A
 * child that outlives the timeout is killed with its process group and
 * counts as EX_TEMPFAIL. The first stderr line goes into the error.
 */
#include "lib/log.h"
#include "lib/xalloc.h"
#include "sendlink/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define EXEC_ARGS_MAX 32
#define EXEC_ARG_MAX 1024
/* How long a killed child may take to be reaped. */
#define EXEC_REAP_MS 2000

static const char *const exec_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL};

struct exec_relay {
    char *words[EXEC_ARGS_MAX]; /* templates */
    size_t nwords;
};

static void exec_close(void *ctx)
{
    struct exec_relay *x = ctx;
    if (x == NULL)
        return;
    for (size_t i = 0; i < x->nwords; i++)
        free(x->words[i]);
    free(x);
}

static int exec_open(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                     size_t errsz)
{
    (void)cfg;
    const char *cmd = config_relay_param(rc, "command");
    struct exec_relay *x = xcalloc(1, sizeof(*x));
    for (const char *p = cmd; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        size_t n = strcspn(p, " \t");
        if (x->nwords == EXEC_ARGS_MAX - 1) {
            snprintf(err, errsz, "more than %d words in command", EXEC_ARGS_MAX - 1);
            exec_close(x);
            return -1;
        }
        x->words[x->nwords++] = xstrndup(p, n);
        p += n;
    }
    if (x->nwords == 0) {
        snprintf(err, errsz, "empty command");
        exec_close(x);
        return -1;
    }
    *ctx = x;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first line of b (scrubbed) into out. */
static void first_line(struct buf *b, char *out, size_t outsz)
{
    const char *s = buf_cstr(b);
    size_t n = strcspn(s, "\r\n");
    log_scrub(out, outsz, s, n);
}

/* Kills the child's group and reaps it; returns its wait status or -1. */
static int reap(pid_t pid, bool kill_first)
{
    int status = -1;
    if (kill_first)
        kill(-pid, SIGKILL);
    int64_t until = now_ms() + EXEC_REAP_MS;
    for (;;) {
        pid_t w = waitpid(pid, &status, kill_first ? WNOHANG : 0);
        if (w == pid)
            return status;
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_ms() > until) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return status;
        }
        if (w == 0)
            usleep(10000);
    }
}

static enum relay_status exec_send(void *ctx, const struct relay_env *env,
                                   const struct relay_msg *m, unsigned timeout_ms,
                                   struct relay_result *res)
{
    (void)env;
    struct exec_relay *x = ctx;
    char *argv[EXEC_ARGS_MAX + 1] = {0};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
    struct buf sout, serr;
    buf_init(&sout, RELAY_RESPONSE_MAX);
    buf_init(&serr, RELAY_RESPONSE_MAX);
    enum relay_status st = RELAY_TEMPFAIL;
    char *input = NULL;
    pid_t pid = -1;

    for (size_t i = 0; i < x->nwords; i++) {
        struct buf w;
        buf_init(&w, EXEC_ARG_MAX);
        if (relay_expand(&w, x->words[i], m, RELAY_ENC_NONE) < 0) {
            buf_free(&w);
            relay_error(res, "argument %zu too long", i);
            goto out;
        }
        argv[i] = buf_steal(&w);
    }
    json_t *doc = json_pack("{s:s, s:s, s:s}", "to", m->to, "text", m->text, "id", m->id);
    input = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (input == NULL || pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(errp, O_CLOEXEC) < 0) {
        relay_error(res, "cannot make pipes: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, (char *const *)exec_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    close(errp[1]);
    in[0] = out[1] = errp[1] = -1;
    if (rc != 0) {
        pid = -1;
        relay_error(res, "cannot run %s: %s", argv[0], strerror(rc));
        goto out;
    }

    /* stdin: a few hundred bytes, far below a pipe's buffer; SIGPIPE is
     * ignored by serve and the CLI, so a child that never reads gives EPIPE. */
    size_t ilen = strlen(input);
    if (write(in[1], input, ilen) != (ssize_t)ilen && errno != EPIPE)
        relay_error(res, "cannot write to the command: %s", strerror(errno));
    close(in[1]);
    in[1] = -1;

    int64_t deadline = now_ms() + timeout_ms;
    struct pollfd pf[2] = {{out[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    int open_fds = 2;
    bool timed_out = false;
    while (open_fds > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(pf, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t r = read(pf[i].fd, chunk, sizeof(chunk));
            if (r <= 0) {
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            struct buf *b = i == 0 ? &sout : &serr;
            size_t room = b->len < RELAY_RESPONSE_MAX - 1 ? RELAY_RESPONSE_MAX - 1 - b->len : 0;
            if (room && buf_append(b, chunk, (size_t)r < room ? (size_t)r : room) < 0)
                room = 0;
        }
    }
    int status = 0;
    if (!timed_out) {
        /* Output closed: wait for the exit within what is left of the timeout. */
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                break;
            if (w < 0 && errno != EINTR) {
                status = -1;
                break;
            }
            if (now_ms() >= deadline) {
                timed_out = true;
                break;
            }
            usleep(5000);
        }
    }
    if (timed_out) {
        reap(pid, true);
        pid = -1;
        relay_error(res, "timeout after %u ms (killed)", timeout_ms);
        goto out;
    }
    pid = -1;
    char line[RELAY_ERROR_MAX];
    first_line(&serr, line, sizeof(line));
    if (status == -1) {
        relay_error(res, "lost the command's exit status");
    } else if (WIFSIGNALED(status)) {
        relay_error(res, "killed by signal %d", WTERMSIG(status));
    } else if (WEXITSTATUS(status) == 0) {
        first_line(&sout, res->ref, sizeof(res->ref));
        st = RELAY_SENT;
    } else if (WEXITSTATUS(status) == EX_TEMPFAIL) {
        relay_error(res, "exit 75 (EX_TEMPFAIL)%s%s", line[0] ? ": " : "", line);
    } else {
        relay_error(res, "exit %d%s%s", WEXITSTATUS(status), line[0] ? ": " : "", line);
        st = RELAY_PERMFAIL;
    }
out:
    if (pid > 0)
        reap(pid, true);
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    for (size_t i = 0; i < EXEC_ARGS_MAX && argv[i]; i++)
        free(argv[i]);
    if (input) {
        sodium_memzero(input, strlen(input)); /* it holds the code */
        free(input);
    }
    buf_free(&sout);
    buf_free(&serr);
    return st;
}

const struct relay_ops relay_exec_ops = {"exec", exec_open, exec_send, exec_close};
