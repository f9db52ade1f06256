/*
 * bench_sscrypt — the ceiling that libsodium sets on this CPU: raw
 * crypto_secretstream_xchacha20poly1305 push and pull throughput over
 * memory, in the chunk size the vault uses (64 KiB) and a few others,
 * with the same 44 bytes of associated data as a vault part.
 *
 * Where it sits: run by bench/http.sh, never by the daemon. No disk, no
 * network: one buffer encrypted and decrypted over and over.
 *
 * Speeds are per CPU-second of this thread (CLOCK_THREAD_CPUTIME_ID), the
 * best of BEST_OF rounds, so that other work on the machine does not lower
 * them much.
 *
 * Usage: bench_sscrypt [MIB]    prints "push CHUNK MB/s" and "pull CHUNK MB/s"
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AD_BYTES 44
#define DEFAULT_MIB 256
#define BEST_OF 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(size_t chunk, size_t total, double *push_best, double *pull_best)
{
    size_t n = total / chunk;
    unsigned char key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    unsigned char hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    unsigned char ad[AD_BYTES];
    crypto_secretstream_xchacha20poly1305_state st;
    size_t cstride = chunk + crypto_secretstream_xchacha20poly1305_ABYTES;
    /* A window of ciphertext chunks that fits no cache, reused round robin. */
    size_t window = (64u << 20) / chunk;
    if (window > n)
        window = n;
    unsigned char *plain = malloc(chunk);
    unsigned char *cipher = malloc(window * cstride);
    if (plain == NULL || cipher == NULL)
        return -1;
    randombytes_buf(plain, chunk);
    randombytes_buf(ad, sizeof(ad));
    crypto_secretstream_xchacha20poly1305_keygen(key);

    crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, key);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        crypto_secretstream_xchacha20poly1305_push(
            &st, cipher + (i % window) * cstride, NULL, plain, chunk, ad, sizeof(ad),
            i + 1 == n ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    double push = (double)(n * chunk) / (now_s() - t0) / 1e6;

    /* Pull needs the exact stream: re-encrypt the window with a fresh header and pull it. */
    unsigned long long plen;
    unsigned char tag;
    double pull_time = 0;
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < window ? n - done : window;
        crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, key);
        for (size_t i = 0; i < k; i++)
            crypto_secretstream_xchacha20poly1305_push(&st, cipher + i * cstride, NULL, plain,
                                                       chunk, ad, sizeof(ad), 0);
        crypto_secretstream_xchacha20poly1305_state ps;
        if (crypto_secretstream_xchacha20poly1305_init_pull(&ps, hdr, key) != 0)
            return -1;
        double t1 = now_s();
        for (size_t i = 0; i < k; i++)
            if (crypto_secretstream_xchacha20poly1305_pull(
                    &ps, plain, &plen, &tag, cipher + i * cstride, cstride, ad, sizeof(ad)) != 0)
                return -1;
        pull_time += now_s() - t1;
        done += k;
    }
    double pull = (double)(n * chunk) / pull_time / 1e6;
    if (push > *push_best)
        *push_best = push;
    if (pull > *pull_best)
        *pull_best = pull;
    free(plain);
    free(cipher);
    return 0;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : DEFAULT_MIB;
    if (sodium_init() < 0 || mib == 0)
        return 1;
    static const size_t chunks[] = {16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        double push = 0, pull = 0;
        for (int k = 0; k < BEST_OF; k++)
            if (run(chunks[i], mib << 20, &push, &pull) < 0) {
                fprintf(stderr, "bench_sscrypt: failed at chunk %zu\n", chunks[i]);
                return 1;
            }
        printf("push %zu %.0f\npull %zu %.0f\n", chunks[i], push, chunks[i], pull);
    }
    return 0;
}
