/*
 * sendlink_apikey — API keys for apps (DESIGN.md `apikey create`).
 *
 * A key reads "sp_live_" ID "_" SECRET: a visible prefix (so that secret
 * scanners and people recognise it), the key's public id (for `apikey list`
 * and `apikey revoke ID`), then 256 random bits in base64url. It is shown
 * once; the store keeps only BLAKE2b(key, kdf(master, "sp-apiky")), and a
 * presented key is found by that hash (a keyed hash of a 256-bit secret:
 * the index lookup leaks nothing a timing attack could use).
 *
 * Trusts: nothing presented; the user a key acts for is checked at use.
 */
#include "lib/log.h"
#include "lib/xalloc.h"
#include "sendlink/sendlink_int.h"

#include <sodium.h>
#include <string.h>

#define APIKEY_SECRET_BYTES 32
/* Longest key we look at (prefix, id, separator, secret, with room). */
#define APIKEY_MAX 128

int apikey_create(const struct send_env *env, int64_t user_id, const char *label,
                  char id[RAND_ID_LEN + 1], char **key)
{
    unsigned char secret[APIKEY_SECRET_BYTES];
    char b64[sodium_base64_ENCODED_LEN(APIKEY_SECRET_BYTES,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    struct db_apikey k;
    memset(&k, 0, sizeof(k));
    rand_id(id);
    randombytes_buf(secret, sizeof(secret));
    sodium_bin2base64(b64, sizeof(b64), secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof(secret));
    char *full = xasprintf("%s%s_%s", APIKEY_PREFIX, id, b64);
    sodium_memzero(b64, sizeof(b64));
    snprintf(k.id, sizeof(k.id), "%s", id);
    k.user_id = user_id;
    k.label = (char *)label;
    apikey_hash(env->master, full, k.hash);
    if (db_apikey_insert(env->db, &k) != DB_OK) {
        sodium_memzero(full, strlen(full));
        free(full);
        return -1;
    }
    msg_info("%s: apikey: created, user_id=%lld", id, (long long)user_id);
    *key = full;
    return 0;
}

enum db_rc apikey_verify(const struct send_env *env, const char *key, struct db_apikey *out)
{
    size_t n = strlen(key);
    if (n > APIKEY_MAX || strncmp(key, APIKEY_PREFIX, strlen(APIKEY_PREFIX)) != 0)
        return DB_NOTFOUND;
    unsigned char h[DB_HASH_BYTES];
    apikey_hash(env->master, key, h);
    enum db_rc r = db_apikey_get_by_hash(env->db, h, out);
    if (r != DB_OK)
        return r;
    if (sodium_memcmp(h, out->hash, DB_HASH_BYTES) != 0 || out->revoked != 0) {
        db_apikey_clear(out);
        return DB_NOTFOUND;
    }
    return DB_OK;
}
