/*
 * bench_vault — the ceiling of our own vault layer without HTTP: write a
 * container of N MB with the vault writer (as an upload does, fsync
 * included), then read it back with the pull reader in 64 KiB reads (as
 * the download's content reader does), on a real file.
 *
 * Where it sits: run by bench/http.sh, linked with build/libsealpost.a.
 *
 * The writer is timed on the wall clock (its fsync waits for the disk), the
 * reader per CPU-second of the process (user + kernel: the read copies
 * too), best of BEST_OF reads, so that other work on the machine does not
 * lower it much.
 *
 * Usage: bench_vault FILE MB    prints "what|chunk|MB/s" lines
 */
#include "deliver/vault.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* As the download hands MHD (sendlink/sendlink_http.h HTTP_DOWNLOAD_BLOCK). */
#define READ_BYTES (256 * 1024)
#define BENCH_ID "benchbenchbenchbench"
#define BEST_OF 5

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* Reads part 1 of the container at path; CPU seconds, or -1. */
static double read_all(const char *path, const unsigned char *key, unsigned char *buf, size_t total)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    double t0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    enum vault_rc rc;
    struct vault_reader *r = vault_reader_open(f, BENCH_ID, key, 1, &rc);
    if (r == NULL) {
        fclose(f);
        return -1;
    }
    size_t got = 0;
    long n;
    while ((n = vault_reader_read(r, buf, READ_BYTES)) > 0)
        got += (size_t)n;
    vault_reader_close(r);
    fclose(f);
    double t = clock_s(CLOCK_PROCESS_CPUTIME_ID) - t0;
    if (n < 0 || got != total) {
        fprintf(stderr, "bench_vault: read %zu of %zu bytes: %s\n", got, total,
                n < 0 ? vault_rc_str((enum vault_rc)n) : "short");
        return -1;
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc != 3 || sodium_init() < 0)
        return 2;
    const char *path = argv[1];
    size_t total = strtoul(argv[2], NULL, 10) * 1000000;
    unsigned char *key = sodium_malloc(VAULT_KEY_BYTES);
    unsigned char *buf = malloc(READ_BYTES);
    if (key == NULL || buf == NULL)
        return 1;
    vault_key_new(key);
    randombytes_buf(buf, READ_BYTES);

    FILE *f = fopen(path, "w");
    if (f == NULL)
        return 1;
    double t0 = now_s();
    struct vault_writer *w = vault_writer_new(f, BENCH_ID, key);
    if (w == NULL || vault_part_begin(w, 1) < 0)
        return 1;
    for (size_t done = 0; done < total; done += READ_BYTES)
        if (vault_part_write(w, buf, total - done < READ_BYTES ? total - done : READ_BYTES) < 0)
            return 1;
    if (vault_part_end(w) < 0 || vault_writer_free(w) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) < 0 || fclose(f) != 0)
        return 1;
    double wt = now_s() - t0;

    double rt = 0;
    for (int k = 0; k < BEST_OF; k++) {
        double t = read_all(path, key, buf, total);
        if (t < 0)
            return 1;
        if (rt == 0 || t < rt)
            rt = t;
    }
    printf("vault writer to a file, fsync included|%d KiB writes|%.0f\n", READ_BYTES / 1024,
           (double)total / wt / 1e6);
    printf("vault reader from a file (page cache), per CPU-second|%d KiB reads|%.0f\n",
           READ_BYTES / 1024, (double)total / rt / 1e6);
    sodium_free(key);
    free(buf);
    return 0;
}
