/*
 * rand — CSPRNG strings (see rand.h). No modulo bias: a random byte is
 * used only below the largest multiple of the alphabet size (rejection
 * sampling, as randombytes_uniform does for 32-bit words). Bytes are drawn
 * RAND_BATCH at a time: libsodium's randombytes_uniform costs one getrandom
 * system call per symbol, which showed in the profile of a delivery (four
 * or five ids per message).
 */
#include "lib/rand.h"

#include <sodium.h>
#include <string.h>

#define RAND_BATCH 64

void rand_string(char *out, size_t n, const char *alphabet)
{
    uint32_t k = (uint32_t)strlen(alphabet);
    if (k == 0 || k > 256) {
        for (size_t i = 0; i < n; i++)
            out[i] = alphabet[randombytes_uniform(k)];
        out[n] = '\0';
        return;
    }
    unsigned limit = 256u - 256u % k; /* bytes below this map uniformly */
    unsigned char b[RAND_BATCH];
    size_t have = 0, pos = 0;
    for (size_t i = 0; i < n;) {
        if (pos == have) {
            randombytes_buf(b, sizeof(b));
            have = sizeof(b);
            pos = 0;
        }
        unsigned v = b[pos++];
        if (v < limit)
            out[i++] = alphabet[v % k];
    }
    sodium_memzero(b, sizeof(b));
    out[n] = '\0';
}

void rand_id(char out[RAND_ID_LEN + 1])
{
    rand_string(out, RAND_ID_LEN, RAND_ALPHA_LOWER);
}
