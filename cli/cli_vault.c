/*
 * cli_vault — `sealpost vault list NAME`, `vault get NAME ITEM [--out DIR]`,
 * `vault cleanup [--grace D]`.
 *
 * The user's password (or, with --recovery-code, the recovery code) opens
 * the secret key; each item's sealed key opens with it; the metadata record
 * and the parts decrypt from there. This is the client side of the vault:
 * the server-side delivery path never holds these keys.
 *
 * Trusts: nothing in a container before it authenticated; part names from
 * the metadata are cleaned again (mime_filename_clean) before they name a
 * file, and files are created with O_EXCL|O_NOFOLLOW inside the out dir.
 */
#include "cli/cli.h"
#include "deliver/deliver.h"
#include "deliver/users.h"
#include "deliver/vault.h"
#include "lib/db.h"
#include "lib/fsutil.h"
#include "lib/parse.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest metadata record we decrypt. */
#define VAULT_META_MAX (4 * 1024 * 1024)

struct opened {
    struct db *db;
    struct db_user u;
    unsigned char *sk;
};

static void opened_close(struct opened *o)
{
    if (o->sk)
        sodium_free(o->sk);
    db_user_clear(&o->u);
    if (o->db)
        db_close(o->db);
}

/* Opens the user's store and secret key; prints the reason and returns -1 on failure. */
static int vault_unlock(struct cli *c, const char *name, int by_recovery, struct opened *o)
{
    memset(o, 0, sizeof(*o));
    if ((o->db = cli_db(c)) == NULL)
        return -1;
    if (db_user_get(o->db, name, &o->u) != DB_OK) {
        cli_fail("no such user: %s", name);
        return -1;
    }
    char *secret = cli_secret_read(c, by_recovery ? "Recovery code: " : "Password: ");
    if (secret == NULL)
        return -1;
    o->sk = sodium_malloc(KEYS_SK_BYTES);
    enum users_rc r = o->sk ? users_key_open(&o->u, secret, by_recovery, o->sk) : USERS_STORE;
    cli_secret_free(secret);
    if (r != USERS_OK) {
        cli_fail("cannot open the vault of %s: %s", name, users_rc_str(r));
        return -1;
    }
    return 0;
}

/* Drops what item_open made when it fails: the caller sees NULLs, so its
 * own cleanup frees nothing twice. */
static int item_open_fail(unsigned char **key, json_t **meta)
{
    sodium_free(*key);
    *key = NULL;
    json_decref(*meta);
    *meta = NULL;
    return -1;
}

/* Opens an item's key (locked memory) and metadata (parsed JSON). On
 * failure both are NULL. */
static int item_open(const struct opened *o, const struct db_item *it, unsigned char **key,
                     json_t **meta)
{
    *meta = NULL;
    *key = sodium_malloc(VAULT_KEY_BYTES);
    if (*key == NULL)
        return -1;
    if (vault_key_open(it->sealed_key, it->sealed_key_len, o->u.public_key, o->sk, *key) < 0) {
        fprintf(stderr, "sealpost: item %s: the sealed key does not open\n", it->id);
        return item_open_fail(key, meta);
    }
    char *m = NULL;
    size_t mlen = 0;
    enum vault_rc rc = vault_open_buf(it->meta, it->meta_len, it->id, *key, VAULT_PART_META,
                                      VAULT_META_MAX, &m, &mlen);
    if (rc != VAULT_OK) {
        fprintf(stderr, "sealpost: item %s: metadata: %s\n", it->id, vault_rc_str(rc));
        return item_open_fail(key, meta);
    }
    json_error_t err;
    *meta = json_loadb(m, mlen, 0, &err);
    sodium_memzero(m, mlen);
    free(m);
    if (*meta == NULL || !json_is_object(*meta)) {
        fprintf(stderr, "sealpost: item %s: metadata is not a record\n", it->id);
        return item_open_fail(key, meta);
    }
    json_int_t v = json_integer_value(json_object_get(*meta, "version"));
    if (v < 1 || v > VAULT_META_VERSION) {
        fprintf(stderr, "sealpost: item %s: metadata version %lld is not one this program reads\n",
                it->id, (long long)v);
        return item_open_fail(key, meta);
    }
    return 0;
}

static const char *jget(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Copies at most max display columns (code points) of UTF-8 s, padded with spaces. */
static void column(char *out, size_t outsz, const char *s, size_t max)
{
    size_t o = 0, cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && cols < max;) {
        size_t n = *p < 0x80         ? 1
                   : (*p >> 5) == 6  ? 2
                   : (*p >> 4) == 14 ? 3
                   : (*p >> 3) == 30 ? 4
                                     : 1;
        if (o + n >= outsz)
            break;
        for (size_t k = 0; k < n && p[k]; k++)
            out[o++] = (char)p[k];
        p += n;
        cols++;
    }
    for (; cols < max && o + 1 < outsz; cols++)
        out[o++] = ' ';
    out[o] = '\0';
}

struct list_ctx {
    struct cli *c;
    struct opened *o;
    json_t *out;
    const char *tag;
    int errors;
};

static int list_one(const struct db_item *it, void *arg)
{
    struct list_ctx *lc = arg;
    unsigned char *key;
    json_t *meta;
    if (item_open(lc->o, it, &key, &meta) < 0) {
        lc->errors++;
        return 0;
    }
    sodium_free(key);
    const char *tag = json_string_value(json_object_get(meta, "tag"));
    if (lc->tag && (tag == NULL || strcmp(tag, lc->tag) != 0)) {
        json_decref(meta);
        return 0;
    }
    char when[32];
    cli_time_format(it->received, when, sizeof(when));
    json_t *parts = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(meta, "parts"), i, p)
    {
        json_array_append_new(
            parts, json_pack("{s:O,s:O,s:O,s:O}", "name", json_object_get(p, "name"), "type",
                             json_object_get(p, "type"), "size", json_object_get(p, "size"), "kind",
                             json_object_get(p, "kind")));
    }
    if (lc->c->json) {
        json_t *auth = json_object_get(meta, "auth");
        json_t *tls = json_object_get(meta, "tls");
        json_array_append_new(
            lc->out,
            json_pack("{s:s,s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:I,s:o}", "id", it->id, "received",
                      when, "from", json_object_get(meta, "from"), "subject",
                      json_object_get(meta, "subject"), "to", json_object_get(meta, "to"), "tag",
                      json_object_get(meta, "tag"), "flags", json_object_get(meta, "flags"), "auth",
                      auth ? auth : json_null(), "tls", tls ? tls : json_null(), "envelope",
                      json_object_get(meta, "envelope") ? json_object_get(meta, "envelope")
                                                        : json_null(),
                      "size", (json_int_t)it->size, "parts", parts));
    } else {
        json_t *flags = json_object_get(meta, "flags");
        char from[128], subject[192];
        column(from, sizeof(from), jget(meta, "from"), 30);
        column(subject, sizeof(subject), jget(meta, "subject"), 40);
        printf("%s  %s  %s  %s  %zu part(s)%s%s%s\n", it->id, when, from, subject,
               json_array_size(parts), tag ? "  +" : "", tag ? tag : "",
               json_array_size(flags) ? "  [flagged]" : "");
        json_decref(parts);
    }
    json_decref(meta);
    return 0;
}

static int vault_list(struct cli *c, int argc, char **argv)
{
    int by_recovery = cli_opt_flag(&argc, argv, "--recovery-code");
    const char *tag = cli_opt_value(&argc, argv, "--tag");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 2)
        return cli_usage("vault list NAME [--tag TAG] [--recovery-code]");
    struct opened o;
    if (vault_unlock(c, argv[1], by_recovery, &o) < 0) {
        opened_close(&o);
        return CLI_ERR;
    }
    struct list_ctx lc = {c, &o, json_array(), tag, 0};
    enum db_rc r = db_item_foreach(o.db, o.u.id, list_one, &lc);
    opened_close(&o);
    if (c->json)
        cli_json_print(lc.out);
    else
        json_decref(lc.out);
    if (r != DB_OK)
        return cli_fail("cannot list the vault");
    if (lc.errors)
        return cli_fail("%d item(s) could not be opened", lc.errors);
    return CLI_OK;
}

struct fd_sink {
    int fd;
    uint64_t written;
};

static int fd_sink_write(void *arg, const void *p, size_t n)
{
    struct fd_sink *s = arg;
    if (write_all(s->fd, p, n) < 0)
        return -1;
    s->written += n;
    return 0;
}

/* Where a part's bytes are: its own part of the container, or (metadata
 * version 2) a stretch of another part, "slice": {"index", "offset"} with
 * the part's "size". */
struct part_where {
    uint32_t index; /* the part's own */
    uint32_t from;  /* the container part its bytes are in */
    bool sliced;
    uint64_t offset, size;
};

/* 0, or -1 when the metadata's part entry makes no sense. */
static int part_where(json_t *p, struct part_where *w)
{
    json_int_t index = json_integer_value(json_object_get(p, "index"));
    json_t *slice = json_object_get(p, "slice");
    if (index <= 0 || index > UINT32_MAX)
        return -1;
    *w = (struct part_where){.index = (uint32_t)index, .from = (uint32_t)index};
    if (slice == NULL)
        return 0;
    json_int_t in = json_integer_value(json_object_get(slice, "index"));
    json_int_t off = json_integer_value(json_object_get(slice, "offset"));
    json_int_t size = json_integer_value(json_object_get(p, "size"));
    if (!json_is_integer(json_object_get(slice, "index")) || in <= 0 || in > UINT32_MAX ||
        in == index || !json_is_integer(json_object_get(slice, "offset")) || off < 0 ||
        !json_is_integer(json_object_get(p, "size")) || size < 0)
        return -1;
    *w = (struct part_where){(uint32_t)index, (uint32_t)in, true, (uint64_t)off, (uint64_t)size};
    return 0;
}

/* Writes one part to dir/name; returns 0 or -1 (message printed). */
static int part_write(FILE *blob, const struct db_item *it, const unsigned char *key,
                      const struct part_where *w, int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "sealpost: cannot create %s: %s\n", name, strerror(errno));
        return -1;
    }
    struct fd_sink s = {fd, 0};
    enum vault_rc rc = w->sliced ? vault_part_read_slice(blob, it->id, key, w->from, w->offset,
                                                         w->size, fd_sink_write, &s)
                                 : vault_part_read(blob, it->id, key, w->from, fd_sink_write, &s);
    if (close(fd) < 0 && rc == VAULT_OK)
        rc = VAULT_IO;
    if (rc != VAULT_OK) {
        unlinkat(dirfd, name, 0);
        fprintf(stderr, "sealpost: item %s part %u: %s\n", it->id, w->index, vault_rc_str(rc));
        return -1;
    }
    return 0;
}

static int vault_get(struct cli *c, int argc, char **argv)
{
    int by_recovery = cli_opt_flag(&argc, argv, "--recovery-code");
    const char *out = cli_opt_value(&argc, argv, "--out");
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 3)
        return cli_usage("vault get NAME ITEM [--out DIR] [--recovery-code]");
    const char *item_id = argv[2];
    if (out == NULL)
        out = item_id;
    struct opened o;
    struct db_item it = {0};
    unsigned char *key = NULL;
    json_t *meta = NULL, *files = json_array();
    FILE *blob = NULL;
    int dirfd = -1, rc = CLI_ERR;
    struct mime_nameset names = {0};

    if (vault_unlock(c, argv[1], by_recovery, &o) < 0)
        goto done;
    if (db_item_get(o.db, o.u.id, item_id, &it) != DB_OK) {
        cli_fail("no item %s in the vault of %s", item_id, argv[1]);
        goto done;
    }
    if (item_open(&o, &it, &key, &meta) < 0) {
        cli_fail("item %s cannot be opened", item_id);
        goto done;
    }
    char *path = xasprintf("%s/blobs/%.2s/%s", c->cfg->data_dir, it.blob, it.blob);
    blob = fopen(path, "rb");
    if (blob == NULL) {
        cli_fail("item %s: container %s: %s", item_id, path, strerror(errno));
        free(path);
        goto done;
    }
    free(path);
    if (mkdir(out, 0700) < 0 && errno != EEXIST) {
        cli_fail("cannot create %s: %s", out, strerror(errno));
        goto done;
    }
    dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        cli_fail("cannot open %s: %s", out, strerror(errno));
        goto done;
    }
    /* The fixed names come first so an attachment cannot take them. */
    const char *fixed[] = {"original.eml", "body.txt", "body.html"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        char tmp[MIME_NAME_MAX + 1];
        snprintf(tmp, sizeof(tmp), "%s", fixed[i]);
        mime_nameset_claim(&names, tmp, sizeof(tmp));
    }
    int failures = 0, have_text = 0, have_html = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(meta, "parts"), i, p)
    {
        const char *kind = jget(p, "kind");
        struct part_where where;
        char name[MIME_NAME_MAX + 1];
        if (part_where(p, &where) < 0) {
            fprintf(stderr, "sealpost: item %s: part %zu: its metadata makes no sense\n", it.id,
                    i + 1);
            failures++;
            continue;
        }
        if (strcmp(kind, "original") == 0) {
            snprintf(name, sizeof(name), "original.eml");
        } else if (strcmp(kind, "text") == 0 && !have_text) {
            snprintf(name, sizeof(name), "body.txt");
            have_text = 1;
        } else if (strcmp(kind, "html") == 0 && !have_html) {
            snprintf(name, sizeof(name), "body.html");
            have_html = 1;
        } else {
            const char *n = jget(p, "name");
            mime_filename_clean(n, strlen(n), name, sizeof(name));
            mime_nameset_claim(&names, name, sizeof(name));
        }
        if (part_write(blob, &it, key, &where, dirfd, name) < 0)
            failures++;
        else
            json_array_append_new(files, json_string(name));
    }
    if (failures) {
        cli_fail("item %s: %d part(s) could not be written", item_id, failures);
        goto done;
    }
    if (c->json) {
        cli_json_print(json_pack("{s:s,s:s,s:O}", "id", it.id, "dir", out, "files", files));
    } else {
        json_t *f;
        json_array_foreach(files, i, f) printf("%s/%s\n", out, json_string_value(f));
    }
    rc = CLI_OK;
done:
    mime_nameset_free(&names);
    json_decref(files);
    json_decref(meta);
    if (blob)
        fclose(blob);
    if (dirfd >= 0)
        close(dirfd);
    if (key)
        sodium_free(key);
    db_item_clear(&it);
    opened_close(&o);
    return rc;
}

static int vault_cleanup(struct cli *c, int argc, char **argv)
{
    const char *g = cli_opt_value(&argc, argv, "--grace");
    uint64_t grace = DELIVER_ORPHAN_GRACE;
    if (cli_no_more_options(argc, argv) != CLI_OK || argc != 1 ||
        (g && parse_duration(g, &grace) < 0) || grace > UINT32_MAX)
        return cli_usage("vault cleanup [--grace DURATION]");
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return CLI_ERR;
    char *err = NULL;
    struct deliver_ctx *d = deliver_open(cfg, &err);
    if (d == NULL) {
        cli_fail("%s", err);
        free(err);
        return CLI_ERR;
    }
    long n = deliver_cleanup(d, (unsigned)grace);
    deliver_close(d);
    if (n < 0)
        return cli_fail("cleanup failed");
    if (c->json)
        cli_json_print(json_pack("{s:I}", "removed", (json_int_t)n));
    else
        printf("removed %ld leftover file(s)\n", n);
    return CLI_OK;
}

int cmd_vault(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0)
        return vault_list(c, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "get") == 0)
        return vault_get(c, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "cleanup") == 0)
        return vault_cleanup(c, argc - 1, argv + 1);
    return cli_usage("vault list NAME | vault get NAME ITEM [--out DIR] | vault cleanup");
}
