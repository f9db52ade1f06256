/*
 * test_vault — the vault container: round trips, and every way a damaged
 * container must be refused (tampered byte, truncation, unknown version,
 * another item's id, swapped parts, wrong key, sealed item keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/vault.h"
#include "lib/xalloc.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *ID = "abcdefghjkmnpqrstuvw";
static const char *ID2 = "bbcdefghjkmnpqrstuvw";

struct acc {
    unsigned char *p;
    size_t n;
};

static int acc_sink(void *arg, const void *p, size_t n)
{
    struct acc *a = arg;
    a->p = xrealloc(a->p, a->n + n);
    memcpy(a->p + a->n, p, n);
    a->n += n;
    return 0;
}

/* How build() hands each part to the writer: in odd-sized pieces that cross
 * chunk boundaries, or whole (the writer then seals whole chunks straight
 * from the caller's buffer). */
static size_t build_piece = 7777;

/* Builds a container with parts 1..nparts of the given sizes into memory. */
static void build(const unsigned char *key, const size_t *sizes, size_t nparts, unsigned char **out,
                  size_t *outlen, unsigned char ***plain)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    struct vault_writer *w = vault_writer_new(f, ID, key);
    assert_non_null(w);
    *plain = xcalloc(nparts, sizeof(**plain));
    for (size_t i = 0; i < nparts; i++) {
        (*plain)[i] = xmalloc(sizes[i] + 1);
        randombytes_buf((*plain)[i], sizes[i]);
        assert_int_equal(vault_part_begin(w, (uint32_t)i + 1), 0);
        size_t off = 0;
        while (off < sizes[i]) {
            size_t take = sizes[i] - off < build_piece ? sizes[i] - off : build_piece;
            assert_int_equal(vault_part_write(w, (*plain)[i] + off, take), 0);
            off += take;
        }
        assert_int_equal(vault_part_end(w), 0);
        assert_int_equal(vault_writer_part_size(w), sizes[i]);
    }
    assert_int_equal(vault_writer_free(w), 0);
    fclose(f);
    *out = (unsigned char *)mem;
    *outlen = len;
}

static enum vault_rc read_part(const unsigned char *c, size_t clen, const char *id,
                               const unsigned char *key, uint32_t index, struct acc *a)
{
    FILE *f = fmemopen((void *)c, clen, "r");
    assert_non_null(f);
    enum vault_rc rc = vault_part_read(f, id, key, index, acc_sink, a);
    fclose(f);
    return rc;
}

static void free_plain(unsigned char **plain, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(plain[i]);
    free(plain);
}

static void test_roundtrip(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    const size_t sizes[] = {
        0, 1, VAULT_CHUNK_BYTES, VAULT_CHUNK_BYTES + 1, 3 * VAULT_CHUNK_BYTES, 300000};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, n, &c, &clen, &plain);
    /* The same parts, each handed over whole, read back the same. */
    unsigned char *c2, **plain2;
    size_t clen2;
    build_piece = SIZE_MAX;
    build(key, sizes, n, &c2, &clen2, &plain2);
    build_piece = 7777;
    assert_int_equal(clen2, clen);
    for (size_t i = 0; i < n; i++) {
        struct acc a = {0};
        enum vault_rc rc = read_part(c2, clen2, ID, key, (uint32_t)i + 1, &a);
        if (rc != VAULT_OK || a.n != sizes[i] || (sizes[i] && memcmp(a.p, plain2[i], sizes[i])))
            fail_msg("part %zu written whole: %s, %zu bytes", i + 1, vault_rc_str(rc), a.n);
        free(a.p);
    }
    free(c2);
    free_plain(plain2, n);
    for (size_t i = 0; i < n; i++) {
        struct acc a = {0};
        enum vault_rc rc = read_part(c, clen, ID, key, (uint32_t)i + 1, &a);
        if (rc != VAULT_OK)
            fail_msg("part %zu: got %s, want ok", i + 1, vault_rc_str(rc));
        if (a.n != sizes[i])
            fail_msg("part %zu: got %zu bytes, want %zu", i + 1, a.n, sizes[i]);
        if (sizes[i])
            assert_memory_equal(a.p, plain[i], sizes[i]);
        free(a.p);
    }
    struct acc a = {0};
    assert_int_equal(read_part(c, clen, ID, key, 99, &a), VAULT_NOT_FOUND);
    free(a.p);
    free(c);
    free_plain(plain, n);
}

static void test_tampered_bytes(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    const size_t sizes[] = {100000};
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, 1, &c, &clen, &plain);
    /* Flip one byte at many positions after the headers: never accepted. */
    size_t first = VAULT_HEADER_BYTES + VAULT_PART_HEADER_BYTES;
    for (size_t pos = first; pos < clen; pos += 997) {
        unsigned char *bad = xmemdup(c, clen);
        bad[pos] ^= 0x20;
        struct acc a = {0};
        enum vault_rc rc = read_part(bad, clen, ID, key, 1, &a);
        if (rc == VAULT_OK)
            fail_msg("flip at %zu of %zu: got ok, want a refusal", pos, clen);
        free(a.p);
        free(bad);
    }
    free(c);
    free_plain(plain, 1);
}

static void test_truncated(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    const size_t sizes[] = {3 * VAULT_CHUNK_BYTES + 5};
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, 1, &c, &clen, &plain);
    size_t cuts[] = {0,
                     10,
                     VAULT_HEADER_BYTES,
                     VAULT_HEADER_BYTES + 20,
                     1000,
                     VAULT_CHUNK_BYTES + 100,
                     clen - 17,
                     clen - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct acc a = {0};
        enum vault_rc rc = read_part(c, cuts[i], ID, key, 1, &a);
        if (rc == VAULT_OK)
            fail_msg("cut at %zu: got ok, want a refusal", cuts[i]);
        free(a.p);
    }
    /* A stream cut exactly at a chunk boundary (whole chunks, no FINAL). */
    size_t boundary = VAULT_HEADER_BYTES + VAULT_PART_HEADER_BYTES + 24 + 4 + VAULT_CHUNK_BYTES +
                      crypto_secretstream_xchacha20poly1305_ABYTES;
    struct acc a = {0};
    enum vault_rc rc = read_part(c, boundary, ID, key, 1, &a);
    if (rc != VAULT_TRUNCATED)
        fail_msg("cut at chunk boundary: got %s, want truncated", vault_rc_str(rc));
    free(a.p);
    free(c);
    free_plain(plain, 1);
}

static void test_format_refusals(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES], other[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    randombytes_buf(other, sizeof(other));
    const size_t sizes[] = {1000, 2000};
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, 2, &c, &clen, &plain);
    struct acc a = {0};

    unsigned char *bad = xmemdup(c, clen);
    bad[8] = VAULT_VERSION + 1; /* unknown version */
    assert_int_equal(read_part(bad, clen, ID, key, 1, &a), VAULT_BAD_FORMAT);
    memcpy(bad, c, clen);
    bad[0] = 'X'; /* magic */
    assert_int_equal(read_part(bad, clen, ID, key, 1, &a), VAULT_BAD_FORMAT);
    /* Another item's id: the container is not the one the row names. */
    assert_int_equal(read_part(c, clen, ID2, key, 1, &a), VAULT_BAD_FORMAT);
    /* Wrong key. */
    assert_int_equal(read_part(c, clen, ID, other, 1, &a), VAULT_TAMPERED);
    /* Relabel part 2 as part 1 (index in the part header): must not open. */
    memcpy(bad, c, clen);
    size_t p1 = VAULT_HEADER_BYTES;
    bad[p1 + 7] = 9; /* part 1 claims to be part 9 */
    assert_int_not_equal(read_part(bad, clen, ID, key, 9, &a), VAULT_OK);
    assert_int_equal(a.n, 0);
    free(bad);
    free(a.p);
    free(c);
    free_plain(plain, 2);
}

static void test_seal_buf_and_keys(void **state)
{
    (void)state;
    unsigned char pk[32], sk[32];
    crypto_box_keypair(pk, sk);
    unsigned char *key = sodium_malloc(VAULT_KEY_BYTES), *back = sodium_malloc(VAULT_KEY_BYTES);
    vault_key_new(key);
    unsigned char sealed[VAULT_SEALED_KEY_BYTES];
    vault_key_seal(key, pk, sealed);
    assert_int_equal(vault_key_open(sealed, sizeof(sealed), pk, sk, back), 0);
    assert_memory_equal(key, back, VAULT_KEY_BYTES);
    sealed[5] ^= 1;
    assert_int_equal(vault_key_open(sealed, sizeof(sealed), pk, sk, back), -1);

    const char *msg = "{\"subject\":\"hello\"}";
    unsigned char *c;
    size_t clen;
    assert_int_equal(vault_seal_buf(ID, key, VAULT_PART_META, msg, strlen(msg), &c, &clen), 0);
    assert_null(memmem(c, clen, "hello", 5));
    char *out;
    size_t olen;
    assert_int_equal(vault_open_buf(c, clen, ID, key, VAULT_PART_META, 1024, &out, &olen),
                     VAULT_OK);
    assert_string_equal(out, msg);
    free(out);
    /* The size cap holds. */
    assert_int_equal(vault_open_buf(c, clen, ID, key, VAULT_PART_META, 4, &out, &olen), VAULT_SINK);
    free(c);
    sodium_free(key);
    sodium_free(back);
}

static void test_rewind(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    FILE *f = tmpfile();
    assert_non_null(f);
    struct vault_writer *w = vault_writer_new(f, ID, key);
    assert_int_equal(vault_part_begin(w, 1), 0);
    assert_int_equal(vault_part_write(w, "original", 8), 0);
    assert_int_equal(vault_part_end(w), 0);
    uint64_t mark = vault_writer_offset(w);
    assert_int_equal(vault_part_begin(w, 2), 0);
    assert_int_equal(vault_part_write(w, "half a part", 11), 0);
    assert_int_equal(vault_writer_rewind(w, mark), 0);
    assert_int_equal(vault_writer_free(w), 0);
    struct acc a = {0};
    FILE *r = f;
    assert_int_equal(vault_part_read(r, ID, key, 1, acc_sink, &a), VAULT_OK);
    assert_int_equal(a.n, 8);
    assert_int_equal(vault_part_read(r, ID, key, 2, acc_sink, &a), VAULT_NOT_FOUND);
    free(a.p);
    fclose(f);
}

/* ---- pull reader (vault_reader_*) ---- */

/* Reads part index with the pull reader in pieces of step bytes. */
static long pull_all(const unsigned char *c, size_t clen, const char *id, const unsigned char *key,
                     uint32_t index, size_t step, struct acc *a, enum vault_rc *open_rc)
{
    FILE *f = fmemopen((void *)c, clen, "r");
    assert_non_null(f);
    struct vault_reader *r = vault_reader_open(f, id, key, index, open_rc);
    long got = 0;
    if (r) {
        unsigned char *piece = xmalloc(step);
        while ((got = vault_reader_read(r, piece, step)) > 0)
            acc_sink(a, piece, (size_t)got);
        free(piece);
        vault_reader_close(r);
    }
    fclose(f);
    return got;
}

static void test_reader_pull(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES], other[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    randombytes_buf(other, sizeof(other));
    const size_t sizes[] = {0, 1, VAULT_CHUNK_BYTES, 3 * VAULT_CHUNK_BYTES + 5, 200001};
    const size_t steps[] = {1,
                            1000,
                            VAULT_CHUNK_BYTES,
                            VAULT_CHUNK_BYTES + 1,
                            3 * VAULT_CHUNK_BYTES,
                            8 * VAULT_CHUNK_BYTES};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, n, &c, &clen, &plain);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            if (steps[k] == 1 && sizes[i] > VAULT_CHUNK_BYTES)
                continue; /* byte by byte only for the small parts */
            struct acc a = {0};
            enum vault_rc orc;
            long last = pull_all(c, clen, ID, key, (uint32_t)i + 1, steps[k], &a, &orc);
            if (orc != VAULT_OK || last != 0)
                fail_msg("part %zu step %zu: got open %s, last %ld; want ok, 0", i + 1, steps[k],
                         vault_rc_str(orc), last);
            if (a.n != sizes[i])
                fail_msg("part %zu step %zu: got %zu bytes, want %zu", i + 1, steps[k], a.n,
                         sizes[i]);
            if (sizes[i])
                assert_memory_equal(a.p, plain[i], sizes[i]);
            free(a.p);
        }
    }
    /* Refusals: unknown part, other id, wrong key, a flipped byte, truncation. */
    struct acc a = {0};
    enum vault_rc orc;
    pull_all(c, clen, ID, key, 99, 100, &a, &orc);
    if (orc != VAULT_NOT_FOUND)
        fail_msg("unknown part: got %s, want %s", vault_rc_str(orc), vault_rc_str(VAULT_NOT_FOUND));
    pull_all(c, clen, ID2, key, 1, 100, &a, &orc);
    if (orc != VAULT_BAD_FORMAT)
        fail_msg("other id: got %s, want %s", vault_rc_str(orc), vault_rc_str(VAULT_BAD_FORMAT));
    long last = pull_all(c, clen, ID, other, 2, 100, &a, &orc);
    if (orc != VAULT_OK || last != VAULT_TAMPERED || a.n != 0)
        fail_msg("wrong key: got open %s, last %ld, %zu bytes; want ok, %d, 0", vault_rc_str(orc),
                 last, a.n, VAULT_TAMPERED);
    unsigned char *bad = xmemdup(c, clen);
    bad[clen - 10] ^= 1; /* inside the last chunk of the last part */
    /* 4096: through the reader's chunk buffer; 8 chunks: decrypted in place. */
    const size_t bad_steps[] = {4096, 8 * VAULT_CHUNK_BYTES};
    for (size_t k = 0; k < sizeof(bad_steps) / sizeof(bad_steps[0]); k++) {
        a = (struct acc){0};
        last = pull_all(bad, clen, ID, key, (uint32_t)n, bad_steps[k], &a, &orc);
        if (last != VAULT_TAMPERED)
            fail_msg("flipped byte, step %zu: got %ld, want %d", bad_steps[k], last,
                     VAULT_TAMPERED);
        if (a.n >= sizes[n - 1])
            fail_msg("flipped byte, step %zu: got %zu bytes, want fewer than %zu", bad_steps[k],
                     a.n, sizes[n - 1]);
        free(a.p);
        a = (struct acc){0};
        last = pull_all(c, clen - 30, ID, key, (uint32_t)n, bad_steps[k], &a, &orc);
        if (last != VAULT_TRUNCATED)
            fail_msg("truncated, step %zu: got %ld, want %d", bad_steps[k], last, VAULT_TRUNCATED);
        if (a.n >= sizes[n - 1])
            fail_msg("truncated, step %zu: got %zu bytes, want fewer than %zu", bad_steps[k], a.n,
                     sizes[n - 1]);
        free(a.p);
    }
    /* A chunk decrypted in place that fails its tag leaves the caller's buffer untouched. */
    FILE *f = fmemopen(bad, clen, "r");
    assert_non_null(f);
    struct vault_reader *r = vault_reader_open(f, ID, key, (uint32_t)n, &orc);
    assert_non_null(r);
    size_t big = 8 * VAULT_CHUNK_BYTES;
    unsigned char *piece = xmalloc(big);
    memset(piece, 0xAA, big);
    long got = vault_reader_read(r, piece, big);
    size_t good = sizes[n - 1] / VAULT_CHUNK_BYTES * VAULT_CHUNK_BYTES; /* all but the last chunk */
    if (got != (long)good)
        fail_msg("in place: got %ld bytes before the bad chunk, want %zu", got, good);
    for (size_t i = good; i < big; i++)
        if (piece[i] != 0xAA)
            fail_msg("in place: byte %zu of the buffer written (0x%02x) by a chunk that failed", i,
                     piece[i]);
    if ((got = vault_reader_read(r, piece, big)) != VAULT_TAMPERED)
        fail_msg("in place: got %ld after the bad chunk, want %d", got, VAULT_TAMPERED);
    free(piece);
    vault_reader_close(r);
    fclose(f);
    free(bad);
    free(c);
    free_plain(plain, n);
}

static enum vault_rc read_slice(const unsigned char *c, size_t clen, const unsigned char *key,
                                uint32_t index, uint64_t off, uint64_t len, struct acc *a)
{
    FILE *f = fmemopen((void *)c, clen, "r");
    assert_non_null(f);
    enum vault_rc rc = vault_part_read_slice(f, ID, key, index, off, len, acc_sink, a);
    fclose(f);
    return rc;
}

static int stop_sink(void *arg, const void *p, size_t n)
{
    (void)arg, (void)p, (void)n;
    return -1;
}

/* A stretch of a part: exactly its bytes, wherever it starts and ends
 * (inside a chunk, across chunks, at the very end, empty); a stretch
 * beyond the part's end, a missing part, a tampered chunk on the way and
 * a sink that stops are refused. */
static void test_slice(void **state)
{
    (void)state;
    unsigned char key[VAULT_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    const size_t sizes[] = {3 * VAULT_CHUNK_BYTES + 123, 10};
    unsigned char *c, **plain;
    size_t clen;
    build(key, sizes, 2, &c, &clen, &plain);
    const size_t total = sizes[0];
    const uint64_t cases[][2] = {
        {0, 0},
        {0, 1},
        {5, 100},
        {VAULT_CHUNK_BYTES - 1, 2},
        {VAULT_CHUNK_BYTES, VAULT_CHUNK_BYTES},
        {100, 2 * VAULT_CHUNK_BYTES + 7},
        {0, 3 * VAULT_CHUNK_BYTES + 123},
        {3 * VAULT_CHUNK_BYTES + 122, 1},
        {3 * VAULT_CHUNK_BYTES + 123, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct acc a = {0};
        uint64_t off = cases[i][0], len = cases[i][1];
        enum vault_rc rc = read_slice(c, clen, key, 1, off, len, &a);
        if (rc != VAULT_OK || a.n != len || (len && memcmp(a.p, plain[0] + off, len) != 0))
            fail_msg("slice %llu+%llu: %s, %zu bytes", (unsigned long long)off,
                     (unsigned long long)len, vault_rc_str(rc), a.n);
        free(a.p);
    }
    struct acc a = {0};
    assert_int_equal(read_slice(c, clen, key, 1, total - 10, 11, &a), VAULT_BAD_FORMAT);
    free(a.p);
    a = (struct acc){0};
    assert_int_equal(read_slice(c, clen, key, 1, total + 1, 0, &a), VAULT_BAD_FORMAT);
    free(a.p);
    a = (struct acc){0};
    assert_int_equal(read_slice(c, clen, key, 2, UINT64_MAX, 2, &a), VAULT_BAD_FORMAT);
    assert_int_equal(read_slice(c, clen, key, 3, 0, 1, &a), VAULT_NOT_FOUND);
    free(a.p);
    FILE *f = fmemopen(c, clen, "r");
    assert_non_null(f);
    assert_int_equal(vault_part_read_slice(f, ID, key, 1, 0, 10, stop_sink, NULL), VAULT_SINK);
    fclose(f);
    /* A flipped byte in the second chunk: a slice in the third is never
     * handed out (the stream is pulled through the damage). */
    size_t pos =
        VAULT_HEADER_BYTES + VAULT_PART_HEADER_BYTES + 24 + 4 + VAULT_CHUNK_BYTES + 17 + 4 + 1000;
    c[pos] ^= 1;
    a = (struct acc){0};
    assert_int_equal(read_slice(c, clen, key, 1, 2 * VAULT_CHUNK_BYTES + 5, 10, &a),
                     VAULT_TAMPERED);
    assert_int_equal(a.n, 0);
    free(a.p);
    free(c);
    free_plain(plain, 2);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_tampered_bytes),
        cmocka_unit_test(test_truncated),         cmocka_unit_test(test_format_refusals),
        cmocka_unit_test(test_seal_buf_and_keys), cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_reader_pull),       cmocka_unit_test(test_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
