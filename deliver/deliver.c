/*
 * deliver — one message into the vaults of its recipients (see deliver.h).
 *
 * Data flow: the message arrives in a memfd (never on persistent disk in
 * clear). deliver_prepare creates, for every recipient, one container file
 * under its final name in blobs/XX/ and writes, in order: part 1, the
 * sealed original (trace headers + message bytes, sealed FIRST so that a
 * parser failure can only ever degrade to "original only, flagged"); then
 * the parts the isolated MIME child finds (the child starts parsing before
 * the sealing and works meanwhile; its records are only taken after part 1
 * is written); then it seals the metadata record (it goes into the
 * database row). deliver_commit takes one or more such pending messages
 * (group commit: smtpd's committer thread hands it every message that
 * finished while the previous batch was being committed) and makes them
 * durable: an fsync per container, an fsync per blob directory used, one
 * transaction for every row of the batch.
 *
 * Crash reasoning (RULES.md 1, STYLE.md 14): an item exists only when its
 * row is committed. Before the commit a crash leaves blobs that no row
 * names (whole or cut short): invisible to readers, who find blobs only
 * through rows, and removed by deliver_cleanup after DELIVER_ORPHAN_GRACE.
 * The rows are inserted only after every blob file of the batch and every
 * directory holding one were fsynced, so a committed row always names a
 * whole, durable container. SQLite runs WAL with synchronous=FULL, so
 * COMMIT returns after the WAL is on disk. Only then does the caller
 * answer 250 / exit 0. A failed fsync is never retried: the messages it
 * touches become temporary failures, and a failed commit fails every
 * message of its batch (none of it is acknowledged).
 *
 * Trusts: the recipients (resolved by deliver_rcpt_check) and the config.
 * The message is hostile and only ever touched by the MIME child.
 */
#include "deliver/deliver.h"
#include "deliver/blobs.h"
#include "deliver/vault.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bounds of an SMTP address (RFC 5321 4.5.3.1). */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
/* Read size when copying the message into the containers. */
#define DELIVER_COPY_CHUNK (64 * 1024)
/* Buffer of each container's stream. */
#define DELIVER_FILE_BUFFER (64 * 1024)
/* Messages from this size on are sealed from a mapping instead of reads. */
#define DELIVER_MAP_MIN (256 * 1024)
/* Bytes of a container written since its last write-back start from which
 * the end of a part starts another one. */
#define DELIVER_WRITEBACK_MIN (256 * 1024)
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

/* Where cfg's blobs are (the one spelling spares and deliveries share). */
static char *blobs_dir_of(const struct config *cfg)
{
    return xasprintf("%s/blobs", cfg->data_dir);
}

struct deliver_ctx *deliver_open(struct config *cfg, char **err)
{
    struct deliver_ctx *d = xcalloc(1, sizeof(*d));
    char *dbpath = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    d->blobs_dir = blobs_dir_of(cfg);
    d->tmp_dir = xasprintf("%s/tmp", cfg->data_dir);
    d->lock_path = xasprintf("%s/%s", cfg->data_dir, DELIVER_LOCK_NAME);
    d->lock_fd = -1;
    struct stat st;
    if (stat(dbpath, &st) < 0 || stat(d->blobs_dir, &st) < 0 || stat(d->tmp_dir, &st) < 0) {
        if (errno == EACCES)
            *err =
                xasprintf("data directory %s: permission denied (it must belong to the user "
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

void deliver_defer_checkpoints(struct deliver_ctx *d)
{
    db_defer_checkpoints(d->db);
}

bool deliver_checkpoint_wanted(const struct deliver_ctx *d)
{
    return db_checkpoint_wanted(d->db);
}

void deliver_checkpoint(struct deliver_ctx *d)
{
    db_checkpoint(d->db);
}

void deliver_never_wait(struct deliver_ctx *d)
{
    db_never_wait(d->db);
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
    bool rd = false; /* a read transaction is open */
    enum sp_status s = address_split(address, &local, &tag, &domain);
    memset(out, 0, sizeof(*out));
    if (s != SP_OK)
        return s;
    if (!config_is_mailin_domain(d->cfg, domain)) {
        s = SP_RELAY_DENIED;
        goto done;
    }
    /* The address, its user and the user's usage from one snapshot. */
    rd = db_read_begin(d->db);
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
    memcpy(out->public_key, u.public_key, sizeof(out->public_key));
done:
    if (rd)
        db_read_end(d->db);
    db_user_clear(&u);
    free(local);
    free(tag);
    free(domain);
    return s;
}

/* ---- one delivery ---- */

int deliver_blob_dirs_prepare(struct deliver_ctx *d, char **err)
{
    return blob_dirs_prepare(d->blobs_dir, err);
}

bool deliver_spares_wanted(const struct deliver_ctx *d)
{
    return blob_spares_wanted(d->blobs_dir);
}

int deliver_spares_fill(const struct config *cfg)
{
    char *dir = blobs_dir_of(cfg);
    int n = blob_spares_fill(dir);
    free(dir);
    return n;
}

/*
 * Item keys live in locked memory from item_open to the sealing of the
 * metadata. Their 32-byte regions are wiped and kept for the next item
 * (sodium_malloc/sodium_free cost an mmap, mprotects, an mlock and an munmap
 * with a TLB shootdown each); at most DELIVER_KEY_CACHE are kept.
 */
#define DELIVER_KEY_CACHE 64
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *key_cache[DELIVER_KEY_CACHE]; /* under key_cache_lock */
static size_t key_cache_n;

static unsigned char *item_key_new(void)
{
    unsigned char *k = NULL;
    pthread_mutex_lock(&key_cache_lock);
    if (key_cache_n > 0)
        k = key_cache[--key_cache_n];
    pthread_mutex_unlock(&key_cache_lock);
    return k ? k : sodium_malloc(VAULT_KEY_BYTES);
}

static void item_key_free(unsigned char *k)
{
    if (k == NULL)
        return;
    sodium_memzero(k, VAULT_KEY_BYTES);
    pthread_mutex_lock(&key_cache_lock);
    if (key_cache_n < DELIVER_KEY_CACHE) {
        key_cache[key_cache_n++] = k;
        k = NULL;
    }
    pthread_mutex_unlock(&key_cache_lock);
    sodium_free(k);
}

struct part_info {
    enum mime_part_kind kind;
    char *name;
    char *type;
    uint64_t size;
    uint32_t index;
    bool begun;      /* its part is open (or done) in the containers */
    bool sliced;     /* stored inside the original: nothing in the containers */
    uint64_t offset; /* sliced: where in the original part (trace included) */
};

struct item_out {
    const struct rcpt *rcpt; /* only while preparing */
    int64_t user_id;
    char *user_name;
    char id[RAND_ID_LEN + 1];
    char blob[RAND_ID_LEN + 1];
    unsigned char *key; /* locked */
    unsigned char sealed_key[VAULT_SEALED_KEY_BYTES];
    char *dir;  /* blobs/XX */
    char *path; /* blobs/XX/blob: ours, unlinked unless committed */
    bool spare; /* a spare container: its directory entry is durable */
    FILE *f;    /* open until the commit has synced it */
    char *fbuf; /* f's buffer (DELIVER_FILE_BUFFER) */
    struct vault_writer *w;
    bool keep;        /* committed: the file stays */
    uint64_t wb_mark; /* container offset at the last write-back start */
    unsigned char *meta;
    size_t meta_len;
    uint64_t file_size;
};

/*
 * One message on its way: containers written (not yet durable), metadata
 * records sealed. Also the sink of the MIME parse while it is prepared.
 */
struct deliver_pending {
    struct deliver_ctx *d; /* only while preparing */
    struct item_out *items;
    size_t n;
    uint32_t next_index;
    struct part_info *parts;
    size_t nparts;
    char *subject, *from, *to, *date, *message_id;
    int io_error; /* errno of the first write failure */
    int lock_fd;  /* shared flock from the first file to the commit */
    time_t received;
    uint64_t original_size;
    uint64_t message_size; /* of the message as it came (fstat once) */
    uint64_t trace_len;    /* bytes of our headers on top of the original part */
    uint32_t flags;
    char queue_id[RAND_ID_LEN + 1];
};

/*
 * Starts the write-back of what the containers hold so far, once a part
 * ended and enough was written since the last start: the disk then works
 * while the next part is sealed, and the commit's fsync finds less to
 * write (1 MiB, one session: ~10% more messages/s). The write-back itself
 * is only a hint (its errors surface in the commit's fsync), but the
 * flush of our buffer is a write like any other: if it fails, the
 * delivery fails (dl->io_error), never a later retry that succeeds.
 */
static int items_writeback(struct deliver_pending *dl)
{
    for (size_t i = 0; i < dl->n; i++) {
        struct item_out *it = &dl->items[i];
        uint64_t at = it->w ? vault_writer_offset(it->w) : 0;
        if (it->f == NULL || at < it->wb_mark + DELIVER_WRITEBACK_MIN)
            continue;
        if (fflush(it->f) != 0) {
            if (!dl->io_error)
                dl->io_error = errno ? errno : EIO;
            return -1;
        }
        (void)sync_file_range(fileno(it->f), 0, 0, SYNC_FILE_RANGE_WRITE);
        it->wb_mark = at;
    }
    return 0;
}

static int all_writers(struct deliver_pending *dl,
                       int (*fn)(struct vault_writer *, const void *, size_t), const void *p,
                       size_t n)
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
    struct deliver_pending *dl = ctx;
    dl->subject = dup_or_null(h->subject);
    dl->from = dup_or_null(h->from);
    dl->to = dup_or_null(h->to);
    dl->date = dup_or_null(h->date);
    dl->message_id = dup_or_null(h->message_id);
    return 0;
}

/* A part is opened in the containers on its first data (or at its end,
 * when empty), not at its begin: a part that turns out to be a slice of
 * the original takes no room there. */
static int sink_part_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    struct deliver_pending *dl = ctx;
    dl->parts = xrealloc(dl->parts, (dl->nparts + 1) * sizeof(*dl->parts));
    dl->parts[dl->nparts++] = (struct part_info){.kind = kind,
                                                 .name = dup_or_null(name),
                                                 .type = dup_or_null(type),
                                                 .index = dl->next_index++};
    return 0;
}

static int part_open(struct deliver_pending *dl, struct part_info *p)
{
    if (p->begun)
        return 0;
    for (size_t i = 0; i < dl->n; i++) {
        if (vault_part_begin(dl->items[i].w, p->index) < 0) {
            if (!dl->io_error)
                dl->io_error = errno ? errno : EIO;
            return -1;
        }
    }
    p->begun = true;
    return 0;
}

static int sink_part_data(void *ctx, const void *p, size_t n)
{
    struct deliver_pending *dl = ctx;
    struct part_info *pi = &dl->parts[dl->nparts - 1];
    if (part_open(dl, pi) < 0)
        return -1;
    pi->size += n;
    return all_writers(dl, w_write, p, n);
}

/* The part is bytes [off, off + n) of the message: the sealed original
 * holds them already (after our trace headers), so the metadata says where
 * and nothing more is sealed or written (docs/FORMATS.md "slice").
 * mime_child lets a slice through only once per part, never with data,
 * and only within the message (test_mime_slice holds it to that). */
static int sink_part_slice(void *ctx, uint64_t off, uint64_t n)
{
    struct deliver_pending *dl = ctx;
    struct part_info *pi = &dl->parts[dl->nparts - 1];
    pi->sliced = true;
    pi->offset = dl->trace_len + off;
    pi->size = n;
    return 0;
}

static int sink_part_end(void *ctx)
{
    struct deliver_pending *dl = ctx;
    struct part_info *pi = &dl->parts[dl->nparts - 1];
    if (pi->sliced)
        return 0;
    if (part_open(dl, pi) < 0)
        return -1;
    int r = all_writers(dl, w_end, NULL, 0);
    return r == 0 ? items_writeback(dl) : r;
}

void deliver_pending_free(struct deliver_pending *dl)
{
    if (dl == NULL)
        return;
    for (size_t i = 0; i < dl->n; i++) {
        struct item_out *it = &dl->items[i];
        if (it->w)
            (void)vault_writer_free(it->w);
        if (it->f)
            fclose(it->f);
        free(it->fbuf);
        if (it->path && !it->keep)
            unlink(it->path); /* never committed: not referenced */
        item_key_free(it->key);
        free(it->user_name);
        free(it->dir);
        free(it->path);
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
    if (dl->lock_fd >= 0)
        close(dl->lock_fd); /* releases the shared lock */
    free(dl);
}

static enum sp_status status_from_errno(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? SP_DISK_FULL : SP_TEMPFAIL;
}

static const char *kind_name(enum mime_part_kind k)
{
    switch (k) {
    case MIME_PART_TEXT:
        return "text";
    case MIME_PART_HTML:
        return "html";
    default:
        return "attachment";
    }
}

/* The metadata record of one item (docs/FORMATS.md "Metadata record"),
 * written with lib/jsonw (the text jansson would write, at a fraction of
 * its cost: this runs for every item). JSON text must be UTF-8: bytes that
 * are not (an envelope given to `sealpost deliver`, say) become U+FFFD. */
static char *meta_build(const struct deliver_pending *dl, const struct item_out *it,
                        const struct arrival *a, time_t received, uint64_t original_size,
                        uint32_t flags)
{
    char fl[256];
    mime_flags_format(flags, fl, sizeof(fl));
    static const struct arrival unknown; /* every field null */
    if (a == NULL)
        a = &unknown;
    struct jsonw w;
    jsonw_init(&w, 0);
    jsonw_object_begin(&w);
    jsonw_member_int(&w, "version", VAULT_META_VERSION);
    jsonw_member_string(&w, "id", it->id);
    jsonw_member_int(&w, "received", (int64_t)received);
    jsonw_member_string(&w, "tag", it->rcpt->tag);
    jsonw_member_string(&w, "to_address", it->rcpt->address);
    jsonw_member_string(&w, "subject", dl->subject);
    jsonw_member_string(&w, "from", dl->from);
    jsonw_member_string(&w, "to", dl->to);
    jsonw_member_string(&w, "date", dl->date);
    jsonw_member_string(&w, "message_id", dl->message_id);
    jsonw_key(&w, "flags");
    jsonw_array_begin(&w);
    for (char *tok = fl, *save = NULL; (tok = strtok_r(tok, ",", &save)) != NULL; tok = NULL)
        jsonw_string(&w, tok);
    jsonw_array_end(&w);
    jsonw_key(&w, "auth");
    jsonw_object_begin(&w);
    jsonw_member_string(&w, "dkim", a->dkim);
    jsonw_member_string(&w, "spf", a->spf);
    jsonw_object_end(&w);
    jsonw_key(&w, "tls");
    jsonw_object_begin(&w);
    jsonw_member_string(&w, "version", a->tls_version);
    jsonw_member_string(&w, "cipher", a->tls_cipher);
    jsonw_object_end(&w);
    jsonw_key(&w, "envelope");
    jsonw_object_begin(&w);
    jsonw_member_string(&w, "via", a->via);
    jsonw_member_string(&w, "helo", a->helo);
    jsonw_member_string(&w, "mail_from", a->mail_from);
    if (a->client_addr)
        jsonw_member_string(&w, "client", a->client_addr);
    jsonw_object_end(&w);
    jsonw_key(&w, "parts");
    jsonw_array_begin(&w);
    jsonw_object_begin(&w);
    jsonw_member_int(&w, "index", VAULT_PART_ORIGINAL);
    jsonw_member_string(&w, "kind", "original");
    jsonw_member_string(&w, "name", "original.eml");
    jsonw_member_string(&w, "type", "message/rfc822");
    jsonw_member_int(&w, "size", (int64_t)original_size);
    jsonw_object_end(&w);
    for (size_t i = 0; i < dl->nparts; i++) {
        const struct part_info *p = &dl->parts[i];
        jsonw_object_begin(&w);
        jsonw_member_int(&w, "index", p->index);
        jsonw_member_string(&w, "kind", kind_name(p->kind));
        jsonw_member_string(&w, "name", p->name);
        jsonw_member_string(&w, "type", p->type);
        jsonw_member_int(&w, "size", (int64_t)p->size);
        if (p->sliced) {
            jsonw_key(&w, "slice");
            jsonw_object_begin(&w);
            jsonw_member_int(&w, "index", VAULT_PART_ORIGINAL);
            jsonw_member_int(&w, "offset", (int64_t)p->offset);
            jsonw_object_end(&w);
        }
        jsonw_object_end(&w);
    }
    jsonw_array_end(&w);
    jsonw_object_end(&w);
    char *s = jsonw_finish(&w);
    if (s == NULL)
        msg_panic("metadata record could not be built");
    return s;
}

/*
 * Creates the container of one recipient under its final name in
 * blobs/XX/ (made here if missing), or takes a spare one (blobs.c), and
 * starts it. Only a committed row makes an item: a crash before the
 * commit leaves an unreferenced blob for deliver_cleanup, and readers find
 * blobs only through rows. (No rename: the file's own fsync then carries
 * its directory entry on most file systems, so the commit's directory
 * fsync finds little left to write; a spare's entry is durable already.)
 */
static enum sp_status item_open(struct deliver_pending *dl, struct item_out *it)
{
    struct deliver_ctx *d = dl->d;
    /* The user as deliver_rcpt_check read it: users are never deleted and
     * their public key never changes; the commit reads the user again (its
     * quota) inside the transaction. */
    it->user_id = it->rcpt->user_id;
    it->user_name = xstrdup(it->rcpt->user_name);
    rand_id(it->id);
    it->key = item_key_new();
    if (it->key == NULL)
        return SP_TEMPFAIL;
    vault_key_new(it->key);
    vault_key_seal(it->key, it->rcpt->public_key, it->sealed_key);
    /* A spare container if there is one, else a new file. */
    char *path = NULL;
    int fd = blob_spare_take(d->blobs_dir, it->blob, &it->dir, &path);
    it->spare = fd >= 0;
    if (fd < 0) {
        blob_id_new(it->blob);
        fd = blob_create(d->blobs_dir, it->blob, &it->dir, &path);
    }
    if (fd < 0) {
        int e = errno;
        msg_error("deliver: cannot create blob %s in %s: %s", it->blob, d->blobs_dir, strerror(e));
        return status_from_errno(e);
    }
    it->path = path; /* ours from here on: unlinked unless committed */
    if ((it->f = fdopen(fd, "w")) == NULL) {
        int e = errno;
        close(fd);
        return status_from_errno(e);
    }
    /* A small message's container leaves in one write, not 4 KiB at a
     * time (stdio's default: the file system's block size). */
    it->fbuf = xmalloc(DELIVER_FILE_BUFFER);
    setvbuf(it->f, it->fbuf, _IOFBF, DELIVER_FILE_BUFFER);
    it->w = vault_writer_new(it->f, it->id, it->key);
    if (it->w == NULL)
        return status_from_errno(errno);
    return SP_OK;
}

/* Appends the message bytes of fd to every item's open part. A large
 * message is read from a read-only mapping of its memfd (no copy; mapped
 * whole at once, not a page fault at a time); a small one, or a descriptor
 * that cannot be mapped, in chunks (an unmap costs every thread a TLB
 * flush). */
static enum sp_status copy_message(struct deliver_pending *dl, int fd, uint64_t *size)
{
    uint64_t total = dl->message_size;
    if (total >= DELIVER_MAP_MIN) {
        void *m = mmap(NULL, (size_t)total, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (m != MAP_FAILED) {
            int r = all_writers(dl, w_write, m, (size_t)total);
            munmap(m, (size_t)total);
            if (r < 0)
                return status_from_errno(dl->io_error);
            *size += total;
            return SP_OK;
        }
    }
    enum sp_status s = SP_OK;
    char *b = xmalloc(DELIVER_COPY_CHUNK);
    size_t used = 0; /* bytes of b that held message text, to wipe */
    off_t off = 0;
    /* The size deliver_prepare's fstat gave (the size checked against the
     * limit; no read only to see the end). */
    while ((uint64_t)off < total) {
        size_t want = total - (uint64_t)off < DELIVER_COPY_CHUNK ? (size_t)(total - (uint64_t)off)
                                                                 : DELIVER_COPY_CHUNK;
        ssize_t n = pread(fd, b, want, off);
        if (n > 0 && (size_t)n > used)
            used = (size_t)n;
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
    sodium_memzero(b, used);
    free(b);
    return s;
}

static enum sp_status seal_original(struct deliver_pending *dl, int fd, const char *trace,
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
    dl->trace_len = *size;
    enum sp_status s = copy_message(dl, fd, size);
    if (s == SP_OK && all_writers(dl, w_end, NULL, 0) < 0)
        s = status_from_errno(dl->io_error);
    return s;
}

/* Ends a container's writing and starts its write-back (not yet durable:
 * deliver_commit syncs it). */
static enum sp_status item_finish(struct item_out *it)
{
    /* Every byte of the container went through the writer, from an empty
     * file on: its offset is the file's size. */
    it->file_size = vault_writer_offset(it->w);
    int r = vault_writer_free(it->w);
    it->w = NULL;
    if (r < 0 || fflush(it->f) != 0)
        return status_from_errno(errno);
    /* Only a hint that lets the disk work while the message waits for its
     * batch; errors surface in the commit's fsync. */
    (void)sync_file_range(fileno(it->f), 0, 0, SYNC_FILE_RANGE_WRITE);
    return SP_OK;
}

/* The parse limits of cfg (the prewarmed children must have the same). */
static struct mime_limits parser_limits(const struct config *cfg)
{
    return (struct mime_limits){
        .memory = cfg->parser_memory_limit,
        .cpu_seconds = cfg->parser_cpu_limit,
        .wall_seconds = cfg->parser_timeout,
        .max_parts = cfg->mime_max_parts,
        .max_depth = cfg->mime_max_depth,
        .header_size = cfg->header_size_limit,
    };
}

void deliver_parser_prewarm(const struct config *cfg, unsigned n)
{
    struct mime_limits lim = parser_limits(cfg);
    mime_pool_prewarm(&lim, n);
}

enum sp_status deliver_prepare(struct deliver_ctx *d, int fd, const struct rcpt *rcpts, size_t n,
                               const struct arrival *a, char queue_id[RAND_ID_LEN + 1],
                               struct deliver_pending **out)
{
    enum sp_status s = SP_OK;
    struct stat st;

    *out = NULL;
    if (queue_id[0] == '\0')
        rand_id(queue_id);
    if (n == 0)
        return SP_NO_RCPTS;
    /* Both callers hand over a memfd: either failure is a bug, not a bad
     * message. */
    if (fstat(fd, &st) < 0) {
        msg_error("%s: fstat of the message: %s", queue_id, strerror(errno));
        return SP_TEMPFAIL;
    }
    if (!S_ISREG(st.st_mode)) {
        msg_error("%s: the message is not in a regular file", queue_id);
        return SP_TEMPFAIL;
    }
    if ((uint64_t)st.st_size > d->cfg->message_size_limit) {
        msg_info("%s: status=refused, reason=too_big, size=%lld", queue_id, (long long)st.st_size);
        return SP_TOO_BIG;
    }

    struct deliver_pending *dl = xcalloc(1, sizeof(*dl));
    dl->d = d;
    dl->next_index = VAULT_PART_ORIGINAL + 1;
    dl->received = time(NULL);
    dl->message_size = (uint64_t)st.st_size;
    memcpy(dl->queue_id, queue_id, sizeof(dl->queue_id));
    /* Our own descriptor (flock belongs to the open file description), held
     * until the pending is committed or dropped, whichever thread does it. */
    dl->lock_fd = open(d->lock_path, O_RDWR | O_CLOEXEC);
    if (dl->lock_fd < 0 || flock(dl->lock_fd, LOCK_SH) < 0) {
        msg_error("%s: lock %s: %s", queue_id, d->lock_path, strerror(errno));
        deliver_pending_free(dl);
        return SP_TEMPFAIL;
    }
    /* The isolated parse starts now: the child parses while this thread
     * seals the original, and its records are taken after that. */
    struct mime_limits lim = parser_limits(d->cfg);
    struct mime_parse *mp = mime_parse_start(fd, dl->message_size, &lim);
    dl->items = xcalloc(n, sizeof(*dl->items));
    dl->n = n;
    for (size_t i = 0; i < n && s == SP_OK; i++) {
        dl->items[i].rcpt = &rcpts[i];
        s = item_open(dl, &dl->items[i]);
    }
    if (s == SP_OK)
        s = seal_original(dl, fd, a ? a->trace : NULL, &dl->original_size);
    if (s == SP_OK && items_writeback(dl) < 0)
        s = status_from_errno(dl->io_error);

    /* Its result; a failure degrades to "original only, flagged". */
    if (s == SP_OK) {
        uint64_t mark = vault_writer_offset(dl->items[0].w);
        struct mime_sink sink = {
            dl, sink_headers, sink_part_begin, sink_part_data, sink_part_end, sink_part_slice};
        int sink_err = 0;
        dl->flags = mime_parse_finish(mp, &sink, &sink_err);
        mp = NULL;
        if (dl->io_error) {
            s = status_from_errno(dl->io_error);
        } else if (dl->flags & MIME_F_PARSER_FAILED) {
            for (size_t i = 0; i < n && s == SP_OK; i++)
                if (vault_writer_rewind(dl->items[i].w, mark) < 0)
                    s = status_from_errno(errno);
            for (size_t i = 0; i < dl->nparts; i++) {
                free(dl->parts[i].name);
                free(dl->parts[i].type);
            }
            dl->nparts = 0;
            /* Header facts a failed child sent before it failed go too:
             * the item says only what the original says. */
            char **facts[] = {&dl->subject, &dl->from, &dl->to, &dl->date, &dl->message_id};
            for (size_t i = 0; i < sizeof(facts) / sizeof(facts[0]); i++) {
                free(*facts[i]);
                *facts[i] = NULL;
            }
            msg_warn("%s: parser failed; keeping the sealed original only", queue_id);
        }
    }

    mime_parse_abandon(mp); /* only when this failed before the parse's result */

    /* The files are finished first, so their write-back runs while the
     * metadata records (kept in the rows) are sealed; durable at the commit. */
    for (size_t i = 0; i < n && s == SP_OK; i++)
        s = item_finish(&dl->items[i]);
    for (size_t i = 0; i < n && s == SP_OK; i++) {
        struct item_out *it = &dl->items[i];
        char *m = meta_build(dl, it, a, dl->received, dl->original_size, dl->flags);
        if (vault_seal_buf(it->id, it->key, VAULT_PART_META, m, strlen(m), &it->meta,
                           &it->meta_len) < 0)
            s = SP_TEMPFAIL;
        sodium_memzero(m, strlen(m));
        free(m);
        item_key_free(it->key); /* sealed into sealed_key; not needed any more */
        it->key = NULL;
        it->rcpt = NULL;
    }
    dl->d = NULL;
    if (s != SP_OK) {
        msg_warn("%s: rcpts=%zu, status=deferred, reason=%s", queue_id, n, sp_status_name(s));
        deliver_pending_free(dl);
        return s;
    }
    *out = dl;
    return SP_OK;
}

/* Makes one container's bytes durable (its directory entry is made durable
 * later, per directory). */
static enum sp_status item_sync(const char *qid, struct item_out *it)
{
    int fd = fileno(it->f);
    /* Never retried: a failed fsync may have dropped the dirty pages, a
     * second one would succeed on nothing (RULES.md 1). */
    if (fsync(fd) < 0) {
        int e = errno;
        msg_error("%s: fsync %s: %s", qid, it->path, strerror(e));
        return status_from_errno(e);
    }
    FILE *f = it->f;
    it->f = NULL;
    int r = fclose(f);
    free(it->fbuf);
    it->fbuf = NULL;
    return r != 0 ? status_from_errno(errno) : SP_OK;
}

/* Whether any item of p that is no spare lives in directory index di. */
static bool pending_uses_dir(const struct deliver_pending *p, size_t di)
{
    for (size_t i = 0; i < p->n; i++)
        if (!p->items[i].spare && blob_dir_index(p->items[i].blob) == di)
            return true;
    return false;
}

/* Directory entries: every blob directory the batch created a file in,
 * once each, and blobs/ itself when a directory is new to this process. */
static void batch_sync_dirs(struct deliver_ctx *d, struct deliver_pending **pv, size_t n,
                            enum sp_status *st)
{
    size_t *dirs = xcalloc(BLOB_DIRS, sizeof(*dirs)); /* 1 + index of an item using it */
    size_t ndirs = 0;
    bool top = false;
    size_t *list = xmalloc(BLOB_DIRS * sizeof(*list));
    for (size_t k = 0; k < n; k++) {
        if (st[k] != SP_OK)
            continue;
        for (size_t i = 0; i < pv[k]->n; i++) {
            if (pv[k]->items[i].spare)
                continue; /* its entry was made durable with the spare */
            size_t di = blob_dir_index(pv[k]->items[i].blob);
            if (dirs[di])
                continue;
            dirs[di] = k + 1;
            list[ndirs++] = di;
            top |= !blob_dir_known(d->blobs_dir, di);
        }
    }
    if (top && fsync_dir(d->blobs_dir) < 0) {
        int e = errno;
        msg_error("deliver: fsync of %s: %s", d->blobs_dir, strerror(e));
        for (size_t k = 0; k < n; k++)
            if (st[k] == SP_OK)
                st[k] = status_from_errno(e);
        goto out;
    }
    for (size_t j = 0; j < ndirs; j++) {
        size_t di = list[j];
        const struct deliver_pending *p = pv[dirs[di] - 1];
        const char *dir = NULL;
        for (size_t i = 0; i < p->n && dir == NULL; i++)
            if (!p->items[i].spare && blob_dir_index(p->items[i].blob) == di)
                dir = p->items[i].dir;
        if (fsync_dir(dir) < 0) {
            int e = errno;
            msg_error("deliver: fsync of blob directory %s: %s", dir, strerror(e));
            for (size_t k = 0; k < n; k++)
                if (st[k] == SP_OK && pending_uses_dir(pv[k], di))
                    st[k] = status_from_errno(e);
            continue;
        }
        if (top)
            blob_dir_mark(d->blobs_dir, di);
    }
out:
    free(list);
    free(dirs);
}

/* Quota of every item of p, counting the items before it in this
 * transaction (the store sees our own uncommitted rows) and in p. */
static enum sp_status pending_quota(struct deliver_ctx *d, const struct deliver_pending *p,
                                    enum db_rc *r)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct item_out *it = &p->items[i];
        uint64_t size = it->file_size + it->meta_len;
        for (size_t j = 0; j < i; j++)
            if (p->items[j].user_id == it->user_id)
                size += p->items[j].file_size + p->items[j].meta_len;
        struct db_user u = {0};
        *r = db_user_get_by_id(d->db, it->user_id, &u);
        enum sp_status s = *r == DB_OK ? quota_check(d, &u, size) : SP_OK;
        db_user_clear(&u);
        if (*r != DB_OK)
            return status_from_db(*r);
        if (s != SP_OK)
            return s;
    }
    return SP_OK;
}

/* One transaction for every message of the batch still standing. */
static void batch_insert(struct deliver_ctx *d, struct deliver_pending **pv, size_t n,
                         enum sp_status *st)
{
    size_t live = 0;
    for (size_t k = 0; k < n; k++)
        live += st[k] == SP_OK;
    if (live == 0)
        return;
    enum db_rc r = db_begin(d->db);
    for (size_t k = 0; k < n && r == DB_OK; k++) {
        struct deliver_pending *p = pv[k];
        if (st[k] != SP_OK)
            continue;
        /* A message over quota is refused alone, before any of its rows. */
        st[k] = pending_quota(d, p, &r);
        for (size_t i = 0; i < p->n && st[k] == SP_OK && r == DB_OK; i++) {
            struct item_out *it = &p->items[i];
            struct db_item row = {.user_id = it->user_id,
                                  .received = p->received,
                                  .size = (int64_t)(it->file_size + it->meta_len),
                                  .sealed_key = it->sealed_key,
                                  .sealed_key_len = sizeof(it->sealed_key),
                                  .meta = it->meta,
                                  .meta_len = it->meta_len};
            memcpy(row.id, it->id, sizeof(it->id));
            memcpy(row.blob, it->blob, sizeof(it->blob));
            r = db_item_insert(d->db, &row);
        }
    }
    if (r == DB_OK)
        r = db_commit(d->db);
    if (r != DB_OK) {
        /* Nothing of the batch is committed: every message in it fails. */
        db_rollback(d->db);
        for (size_t k = 0; k < n; k++)
            if (st[k] == SP_OK || st[k] == SP_OVER_QUOTA)
                st[k] = status_from_db(r);
        return;
    }
    for (size_t k = 0; k < n; k++)
        if (st[k] == SP_OK)
            for (size_t i = 0; i < pv[k]->n; i++)
                pv[k]->items[i].keep = true; /* committed: keep the files */
}

void deliver_commit(struct deliver_ctx *d, struct deliver_pending **pv, size_t n,
                    enum sp_status *st)
{
    /* 1. Every container's bytes (one fsync each, never retried). */
    for (size_t k = 0; k < n; k++) {
        st[k] = SP_OK;
        for (size_t i = 0; i < pv[k]->n && st[k] == SP_OK; i++)
            st[k] = item_sync(pv[k]->queue_id, &pv[k]->items[i]);
    }
    /* 2. Their directory entries. 3. The rows, in one transaction: SQLite
     * WAL with synchronous=FULL returns from COMMIT once the WAL is on disk.
     * Only then is a message's status SP_OK, so 250 always follows a
     * durable file, a durable entry and a committed row. */
    batch_sync_dirs(d, pv, n, st);
    batch_insert(d, pv, n, st);

    for (size_t k = 0; k < n; k++) {
        struct deliver_pending *p = pv[k];
        char fl[256];
        mime_flags_format(p->flags, fl, sizeof(fl));
        if (st[k] == SP_OK) {
            for (size_t i = 0; i < p->n; i++)
                msg_info("%s: user=%s, item=%s, size=%llu, parts=%zu, flags=%s, "
                         "status=delivered",
                         p->queue_id, scrub(p->items[i].user_name), p->items[i].id,
                         (unsigned long long)p->original_size, p->nparts + 1, fl[0] ? fl : "none");
        } else {
            msg_warn("%s: rcpts=%zu, status=deferred, reason=%s", p->queue_id, p->n,
                     sp_status_name(st[k]));
        }
        deliver_pending_free(p);
        pv[k] = NULL;
    }
}

enum sp_status deliver_message(struct deliver_ctx *d, int fd, const struct rcpt *rcpts, size_t n,
                               const struct arrival *a, char queue_id[RAND_ID_LEN + 1])
{
    struct deliver_pending *p = NULL;
    enum sp_status s = deliver_prepare(d, fd, rcpts, n, a, queue_id, &p);
    if (s != SP_OK)
        return s;
    deliver_commit(d, &p, 1, &s);
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
