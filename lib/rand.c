/*
 * rand — CSPRNG strings (see rand.h). randombytes_uniform avoids modulo bias.
 */
#include "lib/rand.h"

#include <sodium.h>
#include <string.h>

void rand_string(char *out, size_t n, const char *alphabet)
{
    uint32_t k = (uint32_t)strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[randombytes_uniform(k)];
    out[n] = '\0';
}

void rand_id(char out[RAND_ID_LEN + 1])
{
    rand_string(out, RAND_ID_LEN, RAND_ALPHA_LOWER);
}
