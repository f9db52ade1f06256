/*
 * fuzz_vault — libFuzzer harness for the vault reader (deliver/vault.c):
 * vault_part_read, vault_open_buf and vault_part_read_slice on hostile
 * containers.
 *
 * Input byte 0 picks the mode:
 *   even  the rest is a container, read as is (every part index 0..3, with
 *         the harness's fixed key and id): must be refused, never crash.
 *   odd   "tamper": the harness writes a genuine container of up to three
 *         parts whose sizes and contents come from the input (parts can
 *         span several 64 KiB chunks), then applies the edits the rest of
 *         the input describes (flip a byte, cut, insert, delete, overwrite
 *         a length word) and reads every part back.
 *
 * The invariant in both modes: a read either fails, or returns exactly the
 * plaintext that was sealed into that part — never other bytes, never a
 * prefix (truncation must be detected: DESIGN.md "Keys and formats"). A
 * slice read (a stretch the input picks) either fails or returns exactly
 * that stretch of the sealed plaintext, which must lie within it.
 */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/vault.h"
#include "lib/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_VAULT_PARTS 3
#define FUZZ_VAULT_PART_MAX (200u * 1024u) /* > three chunks */
#define FUZZ_VAULT_READ_MAX (1u << 20)
#define FUZZ_VAULT_EDITS 16

static const char id[VAULT_ID_LEN + 1] = "fuzzfuzzfuzzfuzzfuzz";
static unsigned char *key;

/* What a read returned. Buffers are allocated once and reused (fresh
 * large allocations per run made the harness spend its time in page
 * faults); one read result is looked at at a time. */
struct out {
    unsigned char *p;
    size_t len;
};
static unsigned char *outbuf;                     /* FUZZ_VAULT_READ_MAX bytes */
static unsigned char *plainbuf[FUZZ_VAULT_PARTS]; /* FUZZ_VAULT_PART_MAX each */

static int sink(void *arg, const void *p, size_t n)
{
    struct out *o = arg;
    if (n > FUZZ_VAULT_READ_MAX - o->len)
        return -1;
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

/* Reads part index of c; returns its rc and, on VAULT_OK, the plaintext. */
static enum vault_rc read_part(const unsigned char *c, size_t clen, uint32_t index, struct out *o)
{
    o->p = outbuf;
    o->len = 0;
    if (clen == 0)
        return VAULT_BAD_FORMAT;
    FILE *f = fmemopen((void *)c, clen, "r");
    if (f == NULL)
        abort();
    enum vault_rc rc = vault_part_read(f, id, key, index, sink, o);
    fclose(f);
    return rc;
}

/* The same part through the buffer API: must agree with read_part. */
static void check_buf(const unsigned char *c, size_t clen, uint32_t index, enum vault_rc want,
                      const struct out *o)
{
    if (clen == 0)
        return;
    char *p = NULL;
    size_t n = 0;
    enum vault_rc rc = vault_open_buf(c, clen, id, key, index, FUZZ_VAULT_READ_MAX, &p, &n);
    if ((rc == VAULT_OK) != (want == VAULT_OK) ||
        (rc == VAULT_OK && (n != o->len || (n && memcmp(p, o->p, n) != 0) || p[n] != '\0'))) {
        fprintf(stderr, "vault_open_buf part %u: rc %d, vault_part_read rc %d\n", index, rc, want);
        abort();
    }
    free(p);
}

/* A stretch [off, off + len) of part index through vault_part_read_slice:
 * an OK read must be exactly plain[off, off + len) of a part that has
 * those bytes (plain NULL: no such part, nothing may read OK but an empty
 * stretch, which hands out nothing). */
static void check_slice(const unsigned char *c, size_t clen, uint32_t index, uint64_t off,
                        uint64_t len, const unsigned char *plain, size_t plen)
{
    if (clen == 0)
        return;
    struct out o = {outbuf, 0};
    FILE *f = fmemopen((void *)c, clen, "r");
    if (f == NULL)
        abort();
    enum vault_rc rc = vault_part_read_slice(f, id, key, index, off, len, sink, &o);
    fclose(f);
    if (rc != VAULT_OK)
        return;
    if (plain == NULL ? len != 0
                      : off > plen || len > plen - off || o.len != len ||
                            (len && memcmp(o.p, plain + off, len) != 0)) {
        fprintf(stderr, "slice %llu+%llu of part %u read OK with %zu bytes\n",
                (unsigned long long)off, (unsigned long long)len, index, o.len);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_open("fuzz_vault", 0, 0);
    if (sodium_init() < 0)
        abort();
    key = sodium_malloc(VAULT_KEY_BYTES);
    if (key == NULL)
        abort();
    for (size_t i = 0; i < VAULT_KEY_BYTES; i++)
        key[i] = (unsigned char)(i * 7 + 1);
    outbuf = malloc(FUZZ_VAULT_READ_MAX);
    if (outbuf == NULL)
        abort();
    for (size_t p = 0; p < FUZZ_VAULT_PARTS; p++)
        if ((plainbuf[p] = malloc(FUZZ_VAULT_PART_MAX)) == NULL)
            abort();
    return 0;
}

static int raw_mode(const uint8_t *d, size_t n)
{
    for (uint32_t i = 0; i <= FUZZ_VAULT_PARTS; i++) {
        struct out o;
        enum vault_rc rc = read_part(d, n, i, &o);
        if (rc == VAULT_OK) {
            /* Forging a Poly1305 tag is out of a fuzzer's reach: an OK here
             * means something was accepted without authentication. */
            fprintf(stderr, "raw input accepted as part %u (%zu bytes)\n", i, o.len);
            abort();
        }
        check_buf(d, n, i, rc, &o);
        check_slice(d, n, i, n > 0 ? d[0] : 0, n > 1 ? d[1] : 1, NULL, 0);
    }
    return 0;
}

struct cursor {
    const uint8_t *d;
    size_t n, i;
};

static unsigned take(struct cursor *c)
{
    return c->i < c->n ? c->d[c->i++] : 0;
}

static int tamper_mode(const uint8_t *d, size_t n)
{
    struct cursor cur = {d, n, 0};
    unsigned nparts = take(&cur) % (FUZZ_VAULT_PARTS + 1);
    unsigned char *plain[FUZZ_VAULT_PARTS] = {0};
    size_t plen[FUZZ_VAULT_PARTS] = {0};
    uint32_t pidx[FUZZ_VAULT_PARTS] = {0};

    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    struct vault_writer *w = f ? vault_writer_new(f, id, key) : NULL;
    if (w == NULL)
        abort();
    for (unsigned p = 0; p < nparts; p++) {
        size_t len = ((size_t)take(&cur) << 8 | take(&cur)) * 4u % (FUZZ_VAULT_PART_MAX + 1);
        unsigned seed = take(&cur);
        pidx[p] = p == 0 ? (take(&cur) & 1) : pidx[p - 1] + 1 + (take(&cur) & 1);
        plain[p] = plainbuf[p];
        /* Content from the seed (libsodium's deterministic stream: fast,
         * and outside the instrumented code). */
        unsigned char pseed[randombytes_SEEDBYTES] = {(unsigned char)seed, (unsigned char)p};
        randombytes_buf_deterministic(plain[p], len, pseed);
        plen[p] = len;
        /* Writes in pieces whose sizes the input picks. */
        if (vault_part_begin(w, pidx[p]) != 0)
            abort();
        for (size_t off = 0; off < len;) {
            /* Once the input is used up, the rest goes in one write. */
            size_t piece = cur.i < cur.n ? 1 + ((size_t)take(&cur) << 9) : len - off;
            if (piece > len - off)
                piece = len - off;
            if (vault_part_write(w, plain[p] + off, piece) != 0)
                abort();
            off += piece;
        }
        if (vault_part_end(w) != 0)
            abort();
    }
    if (vault_writer_free(w) != 0 || fclose(f) != 0)
        abort();

    /* The genuine container reads back exactly. */
    unsigned char *c = (unsigned char *)mem;
    size_t clen = memlen;
    for (unsigned p = 0; p < nparts; p++) {
        struct out o;
        enum vault_rc rc = read_part(c, clen, pidx[p], &o);
        if (rc != VAULT_OK || o.len != plen[p] || (o.len && memcmp(o.p, plain[p], o.len) != 0)) {
            fprintf(stderr, "genuine part %u: rc %d, %zu bytes, want %zu\n", pidx[p], rc, o.len,
                    plen[p]);
            abort();
        }
    }

    /* Edits. */
    unsigned nedits = take(&cur) % (FUZZ_VAULT_EDITS + 1);
    for (unsigned e = 0; e < nedits && clen > 0; e++) {
        unsigned op = take(&cur) % 5;
        size_t at = ((size_t)take(&cur) << 16 | (size_t)take(&cur) << 8 | take(&cur)) % clen;
        unsigned v = take(&cur);
        switch (op) {
        case 0: /* flip */
            c[at] ^= (unsigned char)(v ? v : 0x80);
            break;
        case 1: /* cut */
            clen = at;
            break;
        case 2: /* insert */
            c = realloc(c, clen + 1);
            memmove(c + at + 1, c + at, clen - at);
            c[at] = (unsigned char)v;
            clen++;
            break;
        case 3: { /* delete */
            size_t k = 1 + v % 64;
            if (k > clen - at)
                k = clen - at;
            memmove(c + at, c + at + k, clen - at - k);
            clen -= k;
            break;
        }
        default: /* overwrite a 32-bit word (length fields, indexes) */
            if (clen - at >= 4) {
                uint32_t x = v & 1 ? 0x80000000u | (uint32_t)(v << 8) : (uint32_t)v << 12;
                c[at] = (unsigned char)(x >> 24);
                c[at + 1] = (unsigned char)(x >> 16);
                c[at + 2] = (unsigned char)(x >> 8);
                c[at + 3] = (unsigned char)x;
            }
            break;
        }
    }

    for (uint32_t i = 0; i <= pidx[nparts ? nparts - 1 : 0] + 1; i++) {
        struct out o;
        enum vault_rc rc = read_part(c, clen, i, &o);
        if (rc == VAULT_OK) {
            int p = -1;
            for (unsigned k = 0; k < nparts; k++)
                if (pidx[k] == i)
                    p = (int)k;
            if (p < 0 || o.len != plen[p] || (o.len && memcmp(o.p, plain[p], o.len) != 0)) {
                fprintf(stderr, "edited container: part %u read OK with %zu bytes, want %s\n", i,
                        o.len, p < 0 ? "refusal" : "the sealed bytes");
                abort();
            }
        }
        check_buf(c, clen, i, rc, &o);
        /* A stretch the input picks, within the part or reaching past it. */
        int p = -1;
        for (unsigned k = 0; k < nparts; k++)
            if (pidx[k] == i)
                p = (int)k;
        uint64_t off = ((uint64_t)take(&cur) << 10 | take(&cur)) % (FUZZ_VAULT_PART_MAX + 2);
        uint64_t len = ((uint64_t)take(&cur) << 10 | take(&cur)) % (FUZZ_VAULT_PART_MAX + 2);
        check_slice(c, clen, i, off, len, p < 0 ? NULL : plain[p], p < 0 ? 0 : plen[p]);
    }
    free(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    return data[0] & 1 ? tamper_mode(data + 1, size - 1) : raw_mode(data + 1, size - 1);
}
