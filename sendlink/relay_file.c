/*
 * relay_file — the `file` SMS relay: appends one JSON line per SMS,
 *   {"time": "2026-…Z", "id": "…", "to": "+41…", "text": "…"}
 * to `path`, for development and tests. The file holds codes in clear:
 * never a production route (docs/SMS.md).
 *
 * Each line is one write(2) to a file opened with O_APPEND, so lines of
 * concurrent senders never interleave; the line is fsynced before SENT.
 */
#include "lib/xalloc.h"
#include "sendlink/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct file_relay {
    char *path; /* absolute (config) */
};

static void file_close(void *ctx)
{
    struct file_relay *f = ctx;
    if (f == NULL)
        return;
    free(f->path);
    free(f);
}

static int file_open(const struct config *cfg, const struct relay_conf *rc, void **ctx, char *err,
                     size_t errsz)
{
    (void)cfg;
    (void)err;
    (void)errsz;
    struct file_relay *f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(config_relay_param(rc, "path"));
    *ctx = f;
    return 0;
}

static enum relay_status file_send(void *ctx, const struct relay_env *env,
                                   const struct relay_msg *m, unsigned timeout_ms,
                                   struct relay_result *res)
{
    (void)env;
    (void)timeout_ms;
    struct file_relay *f = ctx;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s}", "time", when, "id", m->id, "to", m->to, "text", m->text);
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (line == NULL) {
        relay_error(res, "out of memory");
        return RELAY_TEMPFAIL;
    }
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps's NUL becomes the newline; written by length */
    enum relay_status st = RELAY_TEMPFAIL;
    int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        relay_error(res, "%s: %s", f->path, strerror(errno));
    } else {
        ssize_t w = write(fd, line, len + 1);
        if (w != (ssize_t)(len + 1) || fsync(fd) < 0)
            relay_error(res, "%s: %s", f->path, w < 0 ? strerror(errno) : "short write");
        else
            st = RELAY_SENT;
        close(fd);
    }
    sodium_memzero(line, len + 1);
    free(line);
    if (st == RELAY_SENT)
        snprintf(res->ref, sizeof(res->ref), "file:%s", m->id);
    return st;
}

const struct relay_ops relay_file_ops = {"file", file_open, file_send, file_close};
