/*
 * deliver — one message into the vaults of its recipients (see deliver.h).
 *
 * Data flow: the message arrives in a memfd (never on persistent disk in
 * clear). For every recipient we open one container file under tmp/ and
 * write, in order: part 1, the sealed original (trace headers + message
 * bytes, sealed FIRST so that a parser failure can only ever degrade to
 * "original only, flagged"); then the parts the isolated MIME child finds.
 * Then the metadata record is sealed (it goes into the database row), the
 * files are made durable and renamed into blobs/, and one transaction
 * inserts every recipient's row.
 *
 * Crash reasoning (RULES.md 1, STYLE.md 14): an item exists only when its
 * row is committed. Before the commit a crash leaves temp files or renamed
 * blobs that no row names: invisible to readers, and removed by
 * deliver_cleanup after DELIVER_ORPHAN_GRACE. The row is inserted only
 * after the blob file and its directory were fsynced, so a committed row
 * always names a whole, durable container. SQLite runs WAL with
 * synchronous=FULL, so COMMIT returns after the WAL is on disk. Only then
 * does the caller answer 250 / exit 0. A failed fsync is never retried: it
 * becomes a temporary failure.
 *
 * Trusts: the recipients (resolved by deliver_rcpt_check) and the config.
 * The message is hostile and only ever touched by the MIME child.
 */
#include "deliver/deliver.h"
#include "deliver/vault.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bounds of an SMTP address (RFC 5321 4.5.3.1). */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
/* Read size when copying the message into the containers. */
#define DELIVER_COPY_CHUNK (64 * 1024)
/* Version of the sealed metadata record (docs/FORMATS.md). */
#define META_VERSION 1
/* Largest metadata record a reader accepts. */
#define META_MAX (4 * 1024 * 1024)

/*
 * Deliveries hold a shared flock on this file from their first temp file to
 * their commit; cleanup takes it exclusively, so it never removes a blob
 * that a delivery in flight is about to commit.
 */
#define DELIVER_LOCK_NAME "tmp/.delivery.lock"
/* How long cleanup tries to get the exclusive lock before giving up. */
#define DELIVER_CLEANUP_LOCK_TRIES 50
#define DELIVER_CLEANUP_LOCK_WAIT_US 100000

struct deliver_ctx {
    struct config *cfg;
    struct db *db;
    char *blobs_dir;
    char *tmp_dir;
    char *lock_path;
    int lock_fd;
};

void rcpt_clear(struct rcpt *r)
{
    free(r->address);
    free(r->tag);
    free(r->user_name);
    memset(r, 0, sizeof(*r));
}

struct deliver_ctx *deliver_open(struct config *cfg, char **err)
{
    struct deliver_ctx *d = xcalloc(1, sizeof(*d));
    char *dbpath = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    d->blobs_dir = xasprintf("%s/blobs", cfg->data_dir);
    d->tmp_dir = xasprintf("%s/tmp", cfg->data_dir);
    d->lock_path = xasprintf("%s/%s", cfg->data_dir, DELIVER_LOCK_NAME);
    d->lock_fd = -1;
    struct stat st;
    if (stat(dbpath, &st) < 0 || stat(d->blobs_dir, &st) < 0 || stat(d->tmp_dir, &st) < 0) {
        if (errno == EACCES)
            *err = xasprintf("data directory %s: permission denied (it must belong to the user "
                             "sealpost runs as: run `sealpost init` as root with [server] user set)",
                             cfg->data_dir);
        else
            *err = xasprintf("data directory %s is not initialised (run: sealpost init)",
                             cfg->data_dir);
        goto fail;
    }
    d->lock_fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0) {
        *err = xasprintf("cannot open %s: %s", d->lock_path, strerror(errno));
        goto fail;
    }
    if (db_open(dbpath, &d->db) != DB_OK) {
        *err = xasprintf("cannot open the store %s", dbpath);
        goto fail;
    }
    free(dbpath);
    d->cfg = config_ref(cfg);
    return d;
fail:
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    free(dbpath);
    free(d->blobs_dir);
    free(d->tmp_dir);
    free(d->lock_path);
    free(d);
    return NULL;
}

void deliver_close(struct deliver_ctx *d)
{
    if (d == NULL)
        return;
    db_close(d->db);
    config_unref(d->cfg);
    close(d->lock_fd);
    free(d->blobs_dir);
    free(d->tmp_dir);
    free(d->lock_path);
    free(d);
}

/* ---- recipients ---- */

static enum sp_status status_from_db(enum db_rc r)
{
    return r == DB_FULL ? SP_DISK_FULL : SP_TEMPFAIL;
}

/* Splits and checks "local[+tag]@domain"; lower-cases into the outputs. */
static enum sp_status address_split(const char *address, char **local, char **tag, char **domain)
{
    size_t len = strlen(address);
    const char *at = strrchr(address, '@');
    if (len == 0 || len > ADDR_PATH_MAX || at == NULL || at == address || at[1] == '\0')
        return SP_BAD_ADDRESS;
    size_t llen = (size_t)(at - address), dlen = strlen(at + 1);
    if (llen > ADDR_LOCAL_MAX || dlen > ADDR_DOMAIN_MAX)
        return SP_BAD_ADDRESS;
    for (const char *p = address; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == '\\')
            return SP_BAD_ADDRESS;
    char *l = xstrndup(address, llen);
    for (char *p = l; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    char *plus = strchr(l, '+');
    *tag = NULL;
    if (plus) {
        *plus = '\0';
        if (plus[1])
            *tag = xstrdup(plus + 1);
    }
    if (l[0] == '\0') {
        free(l);
        free(*tag);
        *tag = NULL;
        return SP_BAD_ADDRESS;
    }
    char *dm = xstrdup(at + 1);
    for (char *p = dm; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    *local = l;
    *domain = dm;
    return SP_OK;
}

static enum sp_status quota_check(struct deliver_ctx *d, const struct db_user *u, uint64_t more)
{
    const struct plan *p = config_plan(d->cfg, u->plan);
    if (p == NULL)
        p = config_plan(d->cfg, NULL);
    if (p == NULL || p->storage_quota == 0)
        return SP_OK;
    int64_t used = 0;
    enum db_rc r = db_item_usage(d->db, u->id, &used);
    if (r != DB_OK)
        return status_from_db(r);
    if ((uint64_t)used >= p->storage_quota || more > p->storage_quota - (uint64_t)used)
        return SP_OVER_QUOTA;
    return SP_OK;
}

enum sp_status deliver_rcpt_check(struct deliver_ctx *d, const char *address, uint64_t size_hint,
                                  struct rcpt *out)
{
    char *local = NULL, *tag = NULL, *domain = NULL;
    struct db_user u = {0};
    enum sp_status s = address_split(address, &local, &tag, &domain);
    memset(out, 0, sizeof(*out));
    if (s != SP_OK)
        return s;
    if (!config_is_mailin_domain(d->cfg, domain)) {
        s = SP_RELAY_DENIED;
        goto done;
    }
    enum db_rc r;
    if (strcmp(local, "postmaster") == 0 || strcmp(local, "abuse") == 0) {
        r = d->cfg->postmaster ? db_user_get(d->db, d->cfg->postmaster, &u) : DB_NOTFOUND;
    } else {
        char *base = xasprintf("%s@%s", local, domain);
        int64_t uid = 0;
        int retired = 0;
        r = db_address_lookup(d->db, base, &uid, &retired);
        free(base);
        if (r == DB_OK && retired)
            r = DB_NOTFOUND;
        if (r == DB_OK)
            r = db_user_get_by_id(d->db, uid, &u);
    }
    if (r == DB_NOTFOUND) {
        s = SP_UNKNOWN_USER;
        goto done;
    }
    if (r != DB_OK) {
        s = status_from_db(r);
        goto done;
    }
    if (u.disabled) {
        s = SP_DISABLED_USER;
        goto done;
    }
    if ((s = quota_check(d, &u, size_hint)) != SP_OK)
        goto done;
    out->address = xasprintf("%s@%s", local, domain);
    out->tag = tag;
    tag = NULL;
    out->user_id = u.id;
    out->user_name = xstrdup(u.name);
done:
    db_user_clear(&u);
    free(local);
    free(tag);
    free(domain);
    return s;
}

/* ---- one delivery ---- */

struct part_info {
    enum mime_part_kind kind;
    char *name;
    char *type;
    uint64_t size;
};

struct item_out {
    const struct rcpt *rcpt;
    char id[RAND_ID_LEN + 1];
    char blob[RAND_ID_LEN + 1];
    unsigned char *key; /* locked */
    unsigned char sealed_key[VAULT_SEALED_KEY_BYTES];
    char *tmp_path;
    char *final_path;
    FILE *f;
    struct vault_writer *w;
    int renamed;
    unsigned char *meta;
    size_t meta_len;
    uint64_t file_size;
};

struct delivery {
    struct deliver_ctx *d;
    struct item_out *items;
    size_t n;
    uint32_t next_index;
    struct part_info *parts;
    size_t nparts;
    char *subject, *from, *to, *date, *message_id;
    int io_error; /* errno of the first write failure */
};

static int all_writers(struct delivery *dl, int (*fn)(struct vault_writer *, const void *, size_t),
                       const void *p, size_t n)
{
    for (size_t i = 0; i < dl->n; i++) {
        if (fn(dl->items[i].w, p, n) < 0) {
            if (!dl->io_error)
                dl->io_error = errno ? errno : EIO;
            return -1;
        }
    }
    return 0;
}

static int w_write(struct vault_writer *w, const void *p, size_t n)
{
    return vault_part_write(w, p, n);
}

static int w_end(struct vault_writer *w, const void *p, size_t n)
{
    (void)p, (void)n;
    return vault_part_end(w);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int sink_headers(void *ctx, const struct mime_headers *h)
{
    struct delivery *dl = ctx;
    dl->subject = dup_or_null(h->subject);
    dl->from = dup_or_null(h->from);
    dl->to = dup_or_null(h->to);
    dl->date = dup_or_null(h->date);
    dl->message_id = dup_or_null(h->message_id);
    return 0;
}

static int sink_part_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    struct delivery *dl = ctx;
    uint32_t index = dl->next_index++;
    for (size_t i = 0; i < dl->n; i++) {
        if (vault_part_begin(dl->items[i].w, index) < 0) {
            if (!dl->io_error)
                dl->io_error = errno ? errno : EIO;
            return -1;
        }
    }
    dl->parts = xrealloc(dl->parts, (dl->nparts + 1) * sizeof(*dl->parts));
    dl->parts[dl->nparts++] = (struct part_info){kind, dup_or_null(name), dup_or_null(type), 0};
    return 0;
}

static int sink_part_data(void *ctx, const void *p, size_t n)
{
    struct delivery *dl = ctx;
    dl->parts[dl->nparts - 1].size += n;
    return all_writers(dl, w_write, p, n);
}

static int sink_part_end(void *ctx)
{
    return all_writers(ctx, w_end, NULL, 0);
}

static void delivery_free(struct delivery *dl)
{
    for (size_t i = 0; i < dl->n; i++) {
        struct item_out *it = &dl->items[i];
        if (it->w)
            (void)vault_writer_free(it->w);
        if (it->f)
            fclose(it->f);
        if (it->tmp_path)
            unlink(it->tmp_path);
        if (it->renamed)
            unlink(it->final_path); /* never committed: not referenced */
        if (it->key)
            sodium_free(it->key);
        free(it->tmp_path);
        free(it->final_path);
        free(it->meta);
    }
    free(dl->items);
    for (size_t i = 0; i < dl->nparts; i++) {
        free(dl->parts[i].name);
        free(dl->parts[i].type);
    }
    free(dl->parts);
    free(dl->subject);
    free(dl->from);
    free(dl->to);
    free(dl->date);
    free(dl->message_id);
}

static enum sp_status status_from_errno(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? SP_DISK_FULL : SP_TEMPFAIL;
}

static const char *kind_name(enum mime_part_kind k)
{
    switch (k) {
    case MIME_PART_TEXT: return "text";
    case MIME_PART_HTML: return "html";
    default: return "attachment";
    }
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The metadata record of one item (docs/FORMATS.md "Metadata record"). */
static char *meta_build(const struct delivery *dl, const struct item_out *it,
                        const struct arrival *a, time_t received, uint64_t original_size,
                        uint32_t flags)
{
    char fl[256];
    mime_flags_format(flags, fl, sizeof(fl));
    json_t *parts = json_array();
    json_array_append_new(parts, json_pack("{s:i,s:s,s:s,s:s,s:I}", "index", VAULT_PART_ORIGINAL,
                                           "kind", "original", "name", "original.eml", "type",
                                           "message/rfc822", "size", (json_int_t)original_size));
    for (size_t i = 0; i < dl->nparts; i++) {
        const struct part_info *p = &dl->parts[i];
        json_array_append_new(parts, json_pack("{s:i,s:s,s:o,s:o,s:I}", "index",
                                               (int)(VAULT_PART_ORIGINAL + 1 + i), "kind",
                                               kind_name(p->kind), "name", jstr(p->name), "type",
                                               jstr(p->type), "size", (json_int_t)p->size));
    }
    json_t *flist = json_array();
    for (char *tok = fl, *save = NULL; (tok = strtok_r(tok, ",", &save)) != NULL; tok = NULL)
        json_array_append_new(flist, json_string(tok));
    json_t *m = json_pack(
        "{s:i,s:s,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:{s:o,s:o},s:{s:o,s:o},s:{s:o,s:o,s:o},"
        "s:o}",
        "version", META_VERSION, "id", it->id, "received", (json_int_t)received, "tag",
        jstr(it->rcpt->tag), "to_address", jstr(it->rcpt->address), "subject", jstr(dl->subject),
        "from", jstr(dl->from), "to", jstr(dl->to), "date", jstr(dl->date), "message_id",
        jstr(dl->message_id), "flags", flist, "auth", "dkim", jstr(a ? a->dkim : NULL), "spf",
        jstr(a ? a->spf : NULL), "tls", "version", jstr(a ? a->tls_version : NULL), "cipher",
        jstr(a ? a->tls_cipher : NULL), "envelope", "via", jstr(a ? a->via : NULL), "helo",
        jstr(a ? a->helo : NULL), "mail_from", jstr(a ? a->mail_from : NULL), "parts", parts);
    if (m == NULL)
        msg_panic("metadata record could not be built");
    if (a && a->client_addr)
        json_object_set_new(json_object_get(m, "envelope"), "client", json_string(a->client_addr));
    char *s = json_dumps(m, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(m);
    if (s == NULL)
        msg_panic("metadata record could not be serialised");
    return s;
}

/* Opens the temp container of one recipient and seals the original into it. */
static enum sp_status item_open(struct delivery *dl, struct item_out *it)
{
    struct deliver_ctx *d = dl->d;
    struct db_user u = {0};
    enum db_rc r = db_user_get_by_id(d->db, it->rcpt->user_id, &u);
    if (r != DB_OK)
        return r == DB_NOTFOUND ? SP_UNKNOWN_USER : status_from_db(r);
    rand_id(it->id);
    rand_id(it->blob);
    it->key = sodium_malloc(VAULT_KEY_BYTES);
    if (it->key == NULL) {
        db_user_clear(&u);
        return SP_TEMPFAIL;
    }
    vault_key_new(it->key);
    vault_key_seal(it->key, u.public_key, it->sealed_key);
    db_user_clear(&u);
    it->tmp_path = xasprintf("%s/%s.tmp", d->tmp_dir, it->blob);
    it->final_path = xasprintf("%s/%.2s/%s", d->blobs_dir, it->blob, it->blob);
    int fd = open(it->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (it->f = fdopen(fd, "w")) == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        msg_error("deliver: cannot create %s: %s", it->tmp_path, strerror(e));
        return status_from_errno(e);
    }
    it->w = vault_writer_new(it->f, it->id, it->key);
    if (it->w == NULL)
        return status_from_errno(errno);
    return SP_OK;
}

static enum sp_status seal_original(struct delivery *dl, int fd, const char *trace,
                                    uint64_t *size)
{
    for (size_t i = 0; i < dl->n; i++)
        if (vault_part_begin(dl->items[i].w, VAULT_PART_ORIGINAL) < 0)
            return status_from_errno(errno);
    *size = 0;
    if (trace && *trace) {
        if (all_writers(dl, w_write, trace, strlen(trace)) < 0)
            return status_from_errno(dl->io_error);
        *size += strlen(trace);
    }
    char *b = xmalloc(DELIVER_COPY_CHUNK);
    off_t off = 0;
    enum sp_status s = SP_OK;
    for (;;) {
        ssize_t n = pread(fd, b, DELIVER_COPY_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            msg_error("deliver: reading the message: %s", strerror(errno));
            s = SP_TEMPFAIL;
            break;
        }
        if (n == 0)
            break;
        if (all_writers(dl, w_write, b, (size_t)n) < 0) {
            s = status_from_errno(dl->io_error);
            break;
        }
        off += n;
        *size += (uint64_t)n;
    }
    sodium_memzero(b, DELIVER_COPY_CHUNK);
    free(b);
    if (s == SP_OK && all_writers(dl, w_end, NULL, 0) < 0)
        s = status_from_errno(dl->io_error);
    return s;
}

/* Makes one container durable under its final name (see the crash reasoning on top). */
static enum sp_status item_commit_file(struct deliver_ctx *d, struct item_out *it)
{
    int r = vault_writer_free(it->w);
    it->w = NULL;
    if (r < 0 || fflush(it->f) != 0)
        return status_from_errno(errno);
    int fd = fileno(it->f);
    struct stat st;
    if (fsync(fd) < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        msg_error("deliver: fsync %s: %s", it->tmp_path, strerror(e));
        return status_from_errno(e);
    }
    it->file_size = (uint64_t)st.st_size;
    FILE *f = it->f;
    it->f = NULL;
    if (fclose(f) != 0)
        return status_from_errno(errno);
    char *dir = xasprintf("%s/%.2s", d->blobs_dir, it->blob);
    if (mkdir(dir, 0700) == 0) {
        if (fsync_dir(d->blobs_dir) < 0) {
            int e = errno;
            free(dir);
            return status_from_errno(e);
        }
    } else if (errno != EEXIST) {
        int e = errno;
        msg_error("deliver: mkdir %s: %s", dir, strerror(e));
        free(dir);
        return status_from_errno(e);
    }
    if (rename(it->tmp_path, it->final_path) < 0) {
        int e = errno;
        msg_error("deliver: rename to %s: %s", it->final_path, strerror(e));
        free(dir);
        return status_from_errno(e);
    }
    free(it->tmp_path);
    it->tmp_path = NULL;
    it->renamed = 1;
    int fr = fsync_dir(dir);
    int e = errno;
    free(dir);
    if (fr < 0) {
        msg_error("deliver: fsync of blob directory: %s", strerror(e));
        return status_from_errno(e);
    }
    return SP_OK;
}

enum sp_status deliver_message(struct deliver_ctx *d, int fd, const struct rcpt *rcpts, size_t n,
                               const struct arrival *a, char queue_id[RAND_ID_LEN + 1])
{
    struct delivery dl = {.d = d, .next_index = VAULT_PART_ORIGINAL + 1};
    enum sp_status s = SP_OK;
    uint64_t original_size = 0;
    uint32_t flags = 0;
    time_t received = time(NULL);
    struct stat st;

    if (queue_id[0] == '\0')
        rand_id(queue_id);
    if (n == 0)
        return SP_NO_RCPTS;
    if (fstat(fd, &st) < 0)
        return SP_TEMPFAIL;
    if ((uint64_t)st.st_size > d->cfg->message_size_limit) {
        msg_info("%s: status=refused, reason=too_big, size=%lld", queue_id,
                 (long long)st.st_size);
        return SP_TOO_BIG;
    }

    if (flock(d->lock_fd, LOCK_SH) < 0) {
        msg_error("%s: lock %s: %s", queue_id, d->lock_path, strerror(errno));
        return SP_TEMPFAIL;
    }
    dl.items = xcalloc(n, sizeof(*dl.items));
    dl.n = n;
    for (size_t i = 0; i < n && s == SP_OK; i++) {
        dl.items[i].rcpt = &rcpts[i];
        s = item_open(&dl, &dl.items[i]);
    }
    if (s == SP_OK)
        s = seal_original(&dl, fd, a ? a->trace : NULL, &original_size);

    /* The isolated parse; a failure degrades to "original only, flagged". */
    if (s == SP_OK) {
        uint64_t mark = vault_writer_offset(dl.items[0].w);
        struct mime_limits lim = {
            .memory = d->cfg->parser_memory_limit,
            .cpu_seconds = d->cfg->parser_cpu_limit,
            .wall_seconds = d->cfg->parser_timeout,
            .max_parts = d->cfg->mime_max_parts,
            .max_depth = d->cfg->mime_max_depth,
            .header_size = d->cfg->header_size_limit,
        };
        struct mime_sink sink = {&dl, sink_headers, sink_part_begin, sink_part_data,
                                 sink_part_end};
        int sink_err = 0;
        flags = mime_parse_isolated(fd, &lim, &sink, &sink_err);
        if (dl.io_error) {
            s = status_from_errno(dl.io_error);
        } else if (flags & MIME_F_PARSER_FAILED) {
            for (size_t i = 0; i < n && s == SP_OK; i++)
                if (vault_writer_rewind(dl.items[i].w, mark) < 0)
                    s = status_from_errno(errno);
            for (size_t i = 0; i < dl.nparts; i++) {
                free(dl.parts[i].name);
                free(dl.parts[i].type);
            }
            dl.nparts = 0;
            msg_warn("%s: parser failed; keeping the sealed original only", queue_id);
        }
    }

    /* Metadata records, then durable files. */
    for (size_t i = 0; i < n && s == SP_OK; i++) {
        struct item_out *it = &dl.items[i];
        char *m = meta_build(&dl, it, a, received, original_size, flags);
        if (vault_seal_buf(it->id, it->key, VAULT_PART_META, m, strlen(m), &it->meta,
                           &it->meta_len) < 0)
            s = SP_TEMPFAIL;
        sodium_memzero(m, strlen(m));
        free(m);
        if (s == SP_OK)
            s = item_commit_file(d, it);
    }

    /* One transaction for every recipient: all or nothing. */
    if (s == SP_OK) {
        enum db_rc r = db_begin(d->db);
        for (size_t i = 0; i < n && r == DB_OK && s == SP_OK; i++) {
            struct item_out *it = &dl.items[i];
            struct db_user u = {0};
            uint64_t size = it->file_size + it->meta_len;
            r = db_user_get_by_id(d->db, it->rcpt->user_id, &u);
            if (r == DB_OK)
                s = quota_check(d, &u, size);
            db_user_clear(&u);
            if (r != DB_OK || s != SP_OK)
                break;
            struct db_item row = {.user_id = it->rcpt->user_id,
                                  .received = received,
                                  .size = (int64_t)size,
                                  .sealed_key = it->sealed_key,
                                  .sealed_key_len = sizeof(it->sealed_key),
                                  .meta = it->meta,
                                  .meta_len = it->meta_len};
            memcpy(row.id, it->id, sizeof(it->id));
            memcpy(row.blob, it->blob, sizeof(it->blob));
            r = db_item_insert(d->db, &row);
        }
        if (r == DB_OK && s == SP_OK)
            r = db_commit(d->db);
        if (r != DB_OK || s != SP_OK) {
            db_rollback(d->db);
            if (s == SP_OK)
                s = status_from_db(r);
        } else {
            for (size_t i = 0; i < n; i++)
                dl.items[i].renamed = 0; /* committed: keep the files */
        }
    }

    char fl[256];
    mime_flags_format(flags, fl, sizeof(fl));
    if (s == SP_OK) {
        for (size_t i = 0; i < n; i++)
            msg_info("%s: user=%s, item=%s, size=%llu, parts=%zu, flags=%s, status=delivered",
                     queue_id, scrub(rcpts[i].user_name), dl.items[i].id,
                     (unsigned long long)original_size, dl.nparts + 1, fl[0] ? fl : "none");
    } else {
        msg_warn("%s: rcpts=%zu, status=deferred, reason=%s", queue_id, n, sp_status_name(s));
    }
    delivery_free(&dl);
    flock(d->lock_fd, LOCK_UN);
    return s;
}

/* ---- crash leftovers ---- */

static long cleanup_scan(struct deliver_ctx *d, time_t now, unsigned grace);

static int old_enough(const char *path, time_t now, unsigned grace)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime >= (time_t)grace;
}

long deliver_cleanup(struct deliver_ctx *d, unsigned grace)
{
    long removed = 0;
    time_t now = time(NULL);
    /* Our own descriptor: flock belongs to the open file description. */
    int lk = open(d->lock_path, O_RDWR | O_CLOEXEC);
    int tries = 0;
    while (lk >= 0 && flock(lk, LOCK_EX | LOCK_NB) < 0 && ++tries < DELIVER_CLEANUP_LOCK_TRIES)
        usleep(DELIVER_CLEANUP_LOCK_WAIT_US);
    if (lk < 0 || tries >= DELIVER_CLEANUP_LOCK_TRIES) {
        msg_warn("cleanup: deliveries kept the store busy; skipped this time");
        if (lk >= 0)
            close(lk);
        return -1;
    }
    removed = cleanup_scan(d, now, grace);
    close(lk); /* releases the lock */
    if (removed > 0)
        msg_info("cleanup: removed %ld crash leftover file(s)", removed);
    return removed;
}

static long cleanup_scan(struct deliver_ctx *d, time_t now, unsigned grace)
{
    long removed = 0;
    DIR *dir = opendir(d->tmp_dir);
    struct dirent *e;
    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* also keeps the lock file */
        char *p = xasprintf("%s/%s", d->tmp_dir, e->d_name);
        if (old_enough(p, now, grace) && unlink(p) == 0)
            removed++;
        free(p);
    }
    closedir(dir);

    DIR *top = opendir(d->blobs_dir);
    if (top == NULL)
        return -1;
    while ((e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = xasprintf("%s/%s", d->blobs_dir, e->d_name);
        DIR *sd = opendir(sub);
        struct dirent *b;
        while (sd && (b = readdir(sd)) != NULL) {
            if (b->d_name[0] == '.')
                continue;
            char *p = xasprintf("%s/%s", sub, b->d_name);
            /* Age first: a young blob may belong to a delivery in flight. */
            if (old_enough(p, now, grace) && db_blob_referenced(d->db, b->d_name) == DB_NOTFOUND &&
                unlink(p) == 0)
                removed++;
            free(p);
        }
        if (sd)
            closedir(sd);
        free(sub);
    }
    closedir(top);
    return removed;
}
