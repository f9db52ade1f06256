/*
 * vault — writer and reader of the vault item container (see vault.h and
 * docs/FORMATS.md, which this file must match byte for byte).
 *
 * Where it sits: deliver.c writes one container per recipient while the
 * message streams through; the CLI (vault list/get) and later the vault API
 * read them. Plaintext exists only in the chunk buffer (locked memory, wiped).
 *
 * Trusts: nothing read back. Framing lengths are bounded before use; the
 * FINAL tag and the "last chunk" framing bit must agree; every chunk is
 * authenticated (with the container and part headers as associated data)
 * before its bytes reach the sink.
 */
#include "deliver/vault.h"
#include "lib/bytes.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define AD_BYTES (VAULT_HEADER_BYTES + VAULT_PART_HEADER_BYTES)
/* High bit of a chunk's length word marks the part's last chunk. */
#define CHUNK_LAST_BIT 0x80000000u
#define CHUNK_MAX_CIPHER (VAULT_CHUNK_BYTES + SS_ABYTES)

void vault_key_new(unsigned char *key)
{
    crypto_secretstream_xchacha20poly1305_keygen(key);
}

void vault_key_seal(const unsigned char *key, const unsigned char pk[32],
                    unsigned char out[VAULT_SEALED_KEY_BYTES])
{
    crypto_box_seal(out, key, VAULT_KEY_BYTES, pk);
}

int vault_key_open(const unsigned char *sealed, size_t len, const unsigned char pk[32],
                   const unsigned char *sk, unsigned char *key)
{
    if (len != VAULT_SEALED_KEY_BYTES)
        return -1;
    return crypto_box_seal_open(key, sealed, len, pk, sk);
}

static void container_header(unsigned char h[VAULT_HEADER_BYTES], const char *id)
{
    memset(h, 0, VAULT_HEADER_BYTES);
    memcpy(h, VAULT_MAGIC, 8);
    h[8] = VAULT_VERSION;
    h[9] = VAULT_KIND_ITEM;
    memcpy(h + 12, id, VAULT_ID_LEN);
}

static void part_header(unsigned char h[VAULT_PART_HEADER_BYTES], uint32_t index)
{
    memcpy(h, VAULT_PART_MAGIC, 4);
    put_u32(h + 4, index);
    put_u32(h + 8, VAULT_CHUNK_BYTES);
}

static void part_key(unsigned char *subkey, const unsigned char *key, uint32_t index)
{
    crypto_kdf_derive_from_key(subkey, crypto_secretstream_xchacha20poly1305_KEYBYTES,
                               (uint64_t)index + 1, VAULT_KDF_CONTEXT, key);
}

/* ---- writer ---- */

struct vault_writer {
    FILE *f;
    unsigned char ad[AD_BYTES];
    unsigned char *key;                              /* locked: item key */
    unsigned char *plain;                            /* locked: one chunk of plaintext */
    unsigned char *cipher;                           /* length word + one chunk of ciphertext */
    crypto_secretstream_xchacha20poly1305_state *st; /* locked */
    size_t fill;
    int in_part;
    int failed;
    uint64_t offset;
    uint64_t part_size;
};

static int w_write(struct vault_writer *w, const void *p, size_t n)
{
    if (w->failed || fwrite(p, 1, n, w->f) != n) {
        w->failed = 1;
        return -1;
    }
    w->offset += n;
    return 0;
}

/*
 * The locked buffers of finished writers and part readers (a key, a
 * plaintext chunk, a stream state), wiped and kept for the next one:
 * sodium_malloc and sodium_free cost an mmap, several mprotects, an mlock
 * and an munmap each, and every unmap shoots down the TLBs of all the
 * daemon's threads; for a small delivery (two writers per recipient) that
 * was a quarter of its CPU. At most VAULT_LOCKED_CACHE sets are kept
 * (bounded locked memory).
 */
#define VAULT_LOCKED_CACHE 32
struct locked_bufs {
    unsigned char *key;
    unsigned char *plain;
    crypto_secretstream_xchacha20poly1305_state *st;
};
_Static_assert(VAULT_KEY_BYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "one key buffer size for part keys and stream keys");
static pthread_mutex_t lcache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct locked_bufs lcache[VAULT_LOCKED_CACHE]; /* under lcache_lock */
static size_t lcache_n;

/* A set from the cache, or new; 0, or -1 when sodium_malloc failed. */
static int locked_bufs_get(struct locked_bufs *b)
{
    b->key = b->plain = NULL;
    b->st = NULL;
    pthread_mutex_lock(&lcache_lock);
    if (lcache_n > 0)
        *b = lcache[--lcache_n];
    pthread_mutex_unlock(&lcache_lock);
    if (b->key == NULL) {
        b->key = sodium_malloc(VAULT_KEY_BYTES);
        b->plain = sodium_malloc(VAULT_CHUNK_BYTES);
        b->st = sodium_malloc(sizeof(*b->st));
    }
    return b->key && b->plain && b->st ? 0 : -1;
}

/* Wipes a set and keeps or frees it. Only plain[0..dirty) can hold
 * plaintext (a writer wipes each chunk once it is sealed, so a finished
 * writer's buffer is clean): wiping all 64 KiB for a 10 KiB message cost a
 * small delivery more than its own copy. */
static void locked_bufs_put(struct locked_bufs *b, size_t dirty)
{
    if (b->key && b->plain && b->st) {
        sodium_memzero(b->key, VAULT_KEY_BYTES);
        sodium_memzero(b->plain, dirty < VAULT_CHUNK_BYTES ? dirty : VAULT_CHUNK_BYTES);
        sodium_memzero(b->st, sizeof(*b->st));
        pthread_mutex_lock(&lcache_lock);
        int kept = lcache_n < VAULT_LOCKED_CACHE;
        if (kept)
            lcache[lcache_n++] = *b;
        pthread_mutex_unlock(&lcache_lock);
        if (kept) {
            b->key = b->plain = NULL;
            b->st = NULL;
            return;
        }
    }
    sodium_free(b->key); /* sodium_free wipes too, and takes NULL */
    sodium_free(b->plain);
    sodium_free(b->st);
    b->key = b->plain = NULL;
    b->st = NULL;
}

static void writer_bufs_get(struct vault_writer *w)
{
    struct locked_bufs b;
    (void)locked_bufs_get(&b); /* the writer checks its buffers */
    w->key = b.key;
    w->plain = b.plain;
    w->st = b.st;
}

static void writer_bufs_put(struct vault_writer *w)
{
    struct locked_bufs b = {w->key, w->plain, w->st};
    locked_bufs_put(&b, w->fill); /* push_chunk and rewind wipe the rest */
    w->key = w->plain = NULL;
    w->st = NULL;
}

struct vault_writer *vault_writer_new(FILE *f, const char *id, const unsigned char *key)
{
    struct vault_writer *w = xcalloc(1, sizeof(*w));
    w->f = f;
    writer_bufs_get(w);
    w->cipher = xmalloc(4 + CHUNK_MAX_CIPHER);
    if (w->key == NULL || w->plain == NULL || w->st == NULL) {
        vault_writer_free(w);
        return NULL;
    }
    memcpy(w->key, key, VAULT_KEY_BYTES);
    container_header(w->ad, id);
    if (w_write(w, w->ad, VAULT_HEADER_BYTES) < 0) {
        vault_writer_free(w);
        return NULL;
    }
    return w;
}

int vault_part_begin(struct vault_writer *w, uint32_t index)
{
    if (w->in_part || w->failed)
        return -1;
    unsigned char ss_header[SS_HEADER];
    unsigned char subkey[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    part_header(w->ad + VAULT_HEADER_BYTES, index);
    part_key(subkey, w->key, index);
    crypto_secretstream_xchacha20poly1305_init_push(w->st, ss_header, subkey);
    sodium_memzero(subkey, sizeof(subkey));
    if (w_write(w, w->ad + VAULT_HEADER_BYTES, VAULT_PART_HEADER_BYTES) < 0 ||
        w_write(w, ss_header, SS_HEADER) < 0)
        return -1;
    w->in_part = 1;
    w->fill = 0;
    w->part_size = 0;
    return 0;
}

/* Seals plain[0..len) as the part's next chunk and writes it. */
static int push_from(struct vault_writer *w, const unsigned char *plain, size_t len, int last)
{
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(
        w->st, w->cipher + 4, &clen, plain, len, w->ad, AD_BYTES,
        last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
             : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    put_u32(w->cipher, (uint32_t)clen | (last ? CHUNK_LAST_BIT : 0));
    return w_write(w, w->cipher, 4 + (size_t)clen);
}

static int push_chunk(struct vault_writer *w, int last)
{
    int r = push_from(w, w->plain, w->fill, last);
    sodium_memzero(w->plain, w->fill);
    w->fill = 0;
    return r;
}

int vault_part_write(struct vault_writer *w, const void *p, size_t n)
{
    const unsigned char *c = p;
    if (!w->in_part || w->failed)
        return -1;
    while (n > 0) {
        if (w->fill == VAULT_CHUNK_BYTES && push_chunk(w, 0) < 0)
            return -1;
        /* A whole chunk with more behind it (so not the last one) is sealed
         * straight from the caller's bytes, without a copy. */
        if (w->fill == 0 && n > VAULT_CHUNK_BYTES) {
            if (push_from(w, c, VAULT_CHUNK_BYTES, 0) < 0)
                return -1;
            w->part_size += VAULT_CHUNK_BYTES;
            c += VAULT_CHUNK_BYTES;
            n -= VAULT_CHUNK_BYTES;
            continue;
        }
        size_t take = VAULT_CHUNK_BYTES - w->fill;
        if (take > n)
            take = n;
        memcpy(w->plain + w->fill, c, take);
        w->fill += take;
        w->part_size += take;
        c += take;
        n -= take;
    }
    return 0;
}

int vault_part_end(struct vault_writer *w)
{
    if (!w->in_part || w->failed)
        return -1;
    w->in_part = 0;
    return push_chunk(w, 1);
}

uint64_t vault_writer_offset(const struct vault_writer *w)
{
    return w->offset;
}

uint64_t vault_writer_part_size(const struct vault_writer *w)
{
    return w->part_size;
}

int vault_writer_rewind(struct vault_writer *w, uint64_t offset)
{
    if (offset > w->offset || fflush(w->f) != 0 || ftruncate(fileno(w->f), (off_t)offset) < 0 ||
        fseeko(w->f, (off_t)offset, SEEK_SET) < 0) {
        w->failed = 1;
        return -1;
    }
    w->offset = offset;
    w->in_part = 0;
    w->failed = 0;
    sodium_memzero(w->plain, VAULT_CHUNK_BYTES);
    w->fill = 0;
    return 0;
}

int vault_writer_free(struct vault_writer *w)
{
    if (w == NULL)
        return -1;
    int r = (w->failed || w->in_part || fflush(w->f) != 0) ? -1 : 0;
    writer_bufs_put(w);
    free(w->cipher);
    free(w);
    return r;
}

/* ---- reader ---- */

const char *vault_rc_str(enum vault_rc rc)
{
    switch (rc) {
    case VAULT_OK:
        return "ok";
    case VAULT_NOT_FOUND:
        return "no such part";
    case VAULT_BAD_FORMAT:
        return "not a sealpost vault item of a known version";
    case VAULT_TAMPERED:
        return "authentication failed (tampered or wrong key)";
    case VAULT_TRUNCATED:
        return "truncated";
    case VAULT_IO:
        return "read error";
    case VAULT_SINK:
        return "stopped";
    }
    return "unknown";
}

/* 0 on full read, VAULT_TRUNCATED on early EOF, VAULT_IO on error. */
static enum vault_rc read_exact(FILE *f, void *p, size_t n)
{
    if (n == 0)
        return VAULT_OK;
    size_t got = fread(p, 1, n, f);
    if (got == n)
        return VAULT_OK;
    return ferror(f) ? VAULT_IO : VAULT_TRUNCATED;
}

static enum vault_rc read_chunk_len(FILE *f, uint32_t *clen, int *last)
{
    unsigned char lw[4];
    enum vault_rc rc = read_exact(f, lw, 4);
    if (rc != VAULT_OK)
        return rc;
    uint32_t v = get_u32(lw);
    *last = (v & CHUNK_LAST_BIT) != 0;
    *clen = v & ~CHUNK_LAST_BIT;
    if (*clen < SS_ABYTES || *clen > CHUNK_MAX_CIPHER)
        return VAULT_BAD_FORMAT;
    return VAULT_OK;
}

static enum vault_rc skip_part(FILE *f)
{
    if (fseeko(f, SS_HEADER, SEEK_CUR) < 0)
        return VAULT_IO;
    for (;;) {
        uint32_t clen;
        int last;
        enum vault_rc rc = read_chunk_len(f, &clen, &last);
        if (rc != VAULT_OK)
            return rc;
        if (fseeko(f, clen, SEEK_CUR) < 0)
            return VAULT_IO;
        if (last)
            return VAULT_OK;
    }
}

static enum vault_rc pull_part(FILE *f, const unsigned char *ad, const unsigned char *key,
                               uint32_t index, int (*sink)(void *, const void *, size_t), void *arg)
{
    unsigned char ss_header[SS_HEADER];
    enum vault_rc rc = read_exact(f, ss_header, SS_HEADER);
    if (rc != VAULT_OK)
        return rc;
    struct locked_bufs lb;
    unsigned char *cipher = xmalloc(CHUNK_MAX_CIPHER);
    if (locked_bufs_get(&lb) != 0) {
        rc = VAULT_IO;
        goto out;
    }
    unsigned char *subkey = lb.key, *plain = lb.plain;
    crypto_secretstream_xchacha20poly1305_state *st = lb.st;
    part_key(subkey, key, index);
    if (crypto_secretstream_xchacha20poly1305_init_pull(st, ss_header, subkey) != 0) {
        rc = VAULT_BAD_FORMAT;
        goto out;
    }
    for (;;) {
        uint32_t clen;
        int last;
        unsigned long long plen;
        unsigned char tag;
        if ((rc = read_chunk_len(f, &clen, &last)) != VAULT_OK)
            goto out;
        if ((rc = read_exact(f, cipher, clen)) != VAULT_OK)
            goto out;
        if (crypto_secretstream_xchacha20poly1305_pull(st, plain, &plen, &tag, cipher, clen, ad,
                                                       AD_BYTES) != 0) {
            rc = VAULT_TAMPERED;
            goto out;
        }
        int final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
        if (final != last) {
            rc = final ? VAULT_TAMPERED : VAULT_TRUNCATED;
            goto out;
        }
        if (plen > 0 && sink(arg, plain, (size_t)plen) != 0) {
            rc = VAULT_SINK;
            goto out;
        }
        if (final) {
            rc = VAULT_OK;
            goto out;
        }
    }
out:
    locked_bufs_put(&lb, VAULT_CHUNK_BYTES);
    free(cipher);
    return rc;
}

enum vault_rc vault_part_read(FILE *f, const char *id, const unsigned char *key, uint32_t index,
                              int (*sink)(void *arg, const void *p, size_t n), void *arg)
{
    unsigned char ad[AD_BYTES], want[VAULT_HEADER_BYTES];
    enum vault_rc rc;
    if (fseeko(f, 0, SEEK_SET) < 0)
        return VAULT_IO;
    if ((rc = read_exact(f, ad, VAULT_HEADER_BYTES)) != VAULT_OK)
        return rc == VAULT_TRUNCATED ? VAULT_BAD_FORMAT : rc;
    container_header(want, id);
    if (memcmp(ad, VAULT_MAGIC, 8) != 0 || ad[8] != VAULT_VERSION || ad[9] != VAULT_KIND_ITEM)
        return VAULT_BAD_FORMAT;
    if (memcmp(ad, want, VAULT_HEADER_BYTES) != 0)
        return VAULT_BAD_FORMAT; /* another item's container */
    for (;;) {
        unsigned char *ph = ad + VAULT_HEADER_BYTES;
        size_t got = fread(ph, 1, VAULT_PART_HEADER_BYTES, f);
        if (got == 0 && feof(f))
            return VAULT_NOT_FOUND;
        if (got != VAULT_PART_HEADER_BYTES)
            return ferror(f) ? VAULT_IO : VAULT_TRUNCATED;
        if (memcmp(ph, VAULT_PART_MAGIC, 4) != 0 || get_u32(ph + 8) != VAULT_CHUNK_BYTES)
            return VAULT_BAD_FORMAT;
        if (get_u32(ph + 4) == index)
            return pull_part(f, ad, key, index, sink, arg);
        if ((rc = skip_part(f)) != VAULT_OK)
            return rc;
    }
}

int vault_seal_buf(const char *id, const unsigned char *key, uint32_t index, const void *buf,
                   size_t len, unsigned char **out, size_t *outlen)
{
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    if (f == NULL)
        return -1;
    struct vault_writer *w = vault_writer_new(f, id, key);
    int r = -1;
    if (w && vault_part_begin(w, index) == 0 && vault_part_write(w, buf, len) == 0 &&
        vault_part_end(w) == 0)
        r = 0;
    if (vault_writer_free(w) != 0)
        r = -1;
    /* glibc's fclose of a memory stream returns 0 even when its last
     * realloc failed: the buffer is then NULL (a malloc walk of `send
     * create` stored a send whose page record was NULL, exit 0). */
    if (fclose(f) != 0 || mem == NULL)
        r = -1;
    if (r == 0) {
        *out = (unsigned char *)mem;
        *outlen = memlen;
    } else {
        free(mem);
    }
    return r;
}

struct membuf {
    char *p;
    size_t len;
    size_t max;
};

static int membuf_sink(void *arg, const void *p, size_t n)
{
    struct membuf *m = arg;
    if (n > m->max - m->len)
        return -1;
    m->p = xrealloc(m->p, m->len + n + 1);
    memcpy(m->p + m->len, p, n);
    m->len += n;
    m->p[m->len] = '\0';
    return 0;
}

enum vault_rc vault_open_buf(const unsigned char *c, size_t clen, const char *id,
                             const unsigned char *key, uint32_t index, size_t max, char **out,
                             size_t *outlen)
{
    FILE *f = fmemopen((void *)c, clen, "r");
    if (f == NULL)
        return VAULT_IO;
    struct membuf m = {xcalloc(1, 1), 0, max};
    enum vault_rc rc = vault_part_read(f, id, key, index, membuf_sink, &m);
    fclose(f);
    if (rc != VAULT_OK) {
        free(m.p);
        return rc;
    }
    *out = m.p;
    if (outlen)
        *outlen = m.len;
    return VAULT_OK;
}

/* ---- pull reader ---- */

/*
 * The same walk as vault_part_read, turned inside out: open finds the part
 * and its stream header, each read hands out what is left of the current
 * authenticated chunk and pulls the next one only when that is used up.
 * Memory is one chunk, whatever the part's size.
 */
struct vault_reader {
    FILE *f;
    unsigned char ad[AD_BYTES];
    crypto_secretstream_xchacha20poly1305_state *st; /* locked */
    unsigned char *plain;                            /* locked: one chunk */
    unsigned char *cipher;
    size_t have; /* plaintext bytes in plain */
    size_t pos;  /* next byte to hand out */
    int final;   /* the FINAL chunk was pulled */
    enum vault_rc err;
};

void vault_reader_close(struct vault_reader *r)
{
    if (r == NULL)
        return;
    if (r->st)
        sodium_free(r->st);
    if (r->plain)
        sodium_free(r->plain);
    free(r->cipher);
    free(r);
}

struct vault_reader *vault_reader_open(FILE *f, const char *id, const unsigned char *key,
                                       uint32_t index, enum vault_rc *rc)
{
    unsigned char want[VAULT_HEADER_BYTES], ss_header[SS_HEADER];
    struct vault_reader *r = xcalloc(1, sizeof(*r));
    r->f = f;
    r->st = sodium_malloc(sizeof(*r->st));
    r->plain = sodium_malloc(VAULT_CHUNK_BYTES);
    r->cipher = xmalloc(CHUNK_MAX_CIPHER);
    enum vault_rc e;
    if (r->st == NULL || r->plain == NULL) {
        e = VAULT_IO;
        goto fail;
    }
    if (fseeko(f, 0, SEEK_SET) < 0) {
        e = VAULT_IO;
        goto fail;
    }
    if ((e = read_exact(f, r->ad, VAULT_HEADER_BYTES)) != VAULT_OK) {
        if (e == VAULT_TRUNCATED)
            e = VAULT_BAD_FORMAT;
        goto fail;
    }
    container_header(want, id);
    if (memcmp(r->ad, want, VAULT_HEADER_BYTES) != 0) {
        e = VAULT_BAD_FORMAT;
        goto fail;
    }
    for (;;) {
        unsigned char *ph = r->ad + VAULT_HEADER_BYTES;
        size_t got = fread(ph, 1, VAULT_PART_HEADER_BYTES, f);
        if (got == 0 && feof(f)) {
            e = VAULT_NOT_FOUND;
            goto fail;
        }
        if (got != VAULT_PART_HEADER_BYTES) {
            e = ferror(f) ? VAULT_IO : VAULT_TRUNCATED;
            goto fail;
        }
        if (memcmp(ph, VAULT_PART_MAGIC, 4) != 0 || get_u32(ph + 8) != VAULT_CHUNK_BYTES) {
            e = VAULT_BAD_FORMAT;
            goto fail;
        }
        if (get_u32(ph + 4) == index)
            break;
        if ((e = skip_part(f)) != VAULT_OK)
            goto fail;
    }
    if ((e = read_exact(f, ss_header, SS_HEADER)) != VAULT_OK)
        goto fail;
    unsigned char subkey[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    part_key(subkey, key, index);
    int ok = crypto_secretstream_xchacha20poly1305_init_pull(r->st, ss_header, subkey);
    sodium_memzero(subkey, sizeof(subkey));
    if (ok != 0) {
        e = VAULT_BAD_FORMAT;
        goto fail;
    }
    *rc = VAULT_OK;
    return r;
fail:
    vault_reader_close(r);
    *rc = e;
    return NULL;
}

/*
 * Pulls and authenticates the next chunk into out (r->plain, or straight
 * into the caller's buffer when the whole chunk fits there: libsodium
 * checks the tag before it writes any plaintext, so out holds nothing
 * unauthenticated either way). *plen is the chunk's plaintext length.
 */
static enum vault_rc reader_pull(struct vault_reader *r, unsigned char *out, size_t *plen)
{
    uint32_t clen;
    int last;
    unsigned long long mlen;
    unsigned char tag;
    enum vault_rc rc;
    if ((rc = read_chunk_len(r->f, &clen, &last)) != VAULT_OK)
        return rc;
    if ((rc = read_exact(r->f, r->cipher, clen)) != VAULT_OK)
        return rc;
    if (crypto_secretstream_xchacha20poly1305_pull(r->st, out, &mlen, &tag, r->cipher, clen, r->ad,
                                                   AD_BYTES) != 0)
        return VAULT_TAMPERED;
    int final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (final != last)
        return final ? VAULT_TAMPERED : VAULT_TRUNCATED;
    *plen = (size_t)mlen;
    r->final = final;
    return VAULT_OK;
}

/*
 * Fills p with as many bytes as there are, up to n: first what is left of
 * the buffered chunk, then whole chunks decrypted in place, then one more
 * chunk through r->plain for a tail smaller than a chunk. An error after
 * some bytes were copied is kept for the next call.
 */
long vault_reader_read(struct vault_reader *r, void *p, size_t n)
{
    unsigned char *out = p;
    size_t done = 0;
    if (r->err != VAULT_OK)
        return r->err;
    while (done < n) {
        if (r->pos < r->have) {
            size_t take = r->have - r->pos;
            if (take > n - done)
                take = n - done;
            memcpy(out + done, r->plain + r->pos, take);
            r->pos += take;
            done += take;
            continue;
        }
        if (r->final)
            break;
        size_t plen;
        enum vault_rc rc;
        if (n - done >= VAULT_CHUNK_BYTES) {
            rc = reader_pull(r, out + done, &plen);
            if (rc == VAULT_OK)
                done += plen;
        } else {
            sodium_memzero(r->plain, r->have);
            r->have = r->pos = 0;
            rc = reader_pull(r, r->plain, &plen);
            if (rc == VAULT_OK)
                r->have = plen;
        }
        if (rc != VAULT_OK) {
            r->err = rc;
            return done > 0 ? (long)done : rc;
        }
    }
    return (long)done;
}

enum vault_rc vault_part_read_slice(FILE *f, const char *id, const unsigned char *key,
                                    uint32_t index, uint64_t off, uint64_t len,
                                    int (*sink)(void *arg, const void *p, size_t n), void *arg)
{
    if (len > UINT64_MAX - off)
        return VAULT_BAD_FORMAT;
    enum vault_rc rc;
    struct vault_reader *r = vault_reader_open(f, id, key, index, &rc);
    if (r == NULL)
        return rc;
    unsigned char *b = sodium_malloc(VAULT_CHUNK_BYTES); /* plaintext: locked */
    const uint64_t end = off + len;
    uint64_t at = 0; /* part offset of b[0] */
    rc = b ? VAULT_OK : VAULT_IO;
    while (rc == VAULT_OK && at < end) {
        long got = vault_reader_read(r, b, VAULT_CHUNK_BYTES);
        if (got <= 0) {
            rc = got < 0 ? (enum vault_rc)got : VAULT_BAD_FORMAT; /* shorter than said */
            break;
        }
        uint64_t from = at > off ? at : off;
        uint64_t to = at + (uint64_t)got < end ? at + (uint64_t)got : end;
        if (to > from && sink(arg, b + (from - at), (size_t)(to - from)) != 0)
            rc = VAULT_SINK;
        at += (uint64_t)got;
    }
    if (b) {
        sodium_memzero(b, VAULT_CHUNK_BYTES);
        sodium_free(b);
    }
    vault_reader_close(r);
    return rc;
}
