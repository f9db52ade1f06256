/*
 * masterkey — create, load and derive from the server secret (see
 * masterkey.h). Trusts: the file's owner; refuses a file of the wrong size
 * or one that others can read.
 */
#include "lib/masterkey.h"
#include "lib/fsutil.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int masterkey_create(const char *path)
{
    unsigned char key[MASTERKEY_BYTES];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    randombytes_buf(key, sizeof(key));
    int r = write_all(fd, key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    if (r == 0)
        r = fsync(fd);
    int e = errno;
    close(fd);
    if (r < 0) {
        unlink(path);
        errno = e;
    }
    return r;
}

unsigned char *masterkey_load(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        msg_error("master key %s: %s (run: sealpost init)", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || st.st_size != MASTERKEY_BYTES) {
        msg_error("master key %s: not a %d-byte key file", path, MASTERKEY_BYTES);
        close(fd);
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        msg_error("master key %s: readable by others (chmod 600 it)", path);
        close(fd);
        return NULL;
    }
    unsigned char *key = sodium_malloc(MASTERKEY_BYTES);
    if (key == NULL || read_full(fd, key, MASTERKEY_BYTES) != MASTERKEY_BYTES) {
        msg_error("master key %s: cannot read", path);
        if (key)
            sodium_free(key);
        close(fd);
        return NULL;
    }
    close(fd);
    return key;
}

void masterkey_free(unsigned char *key)
{
    if (key)
        sodium_free(key);
}

void masterkey_derive(const unsigned char *key, const char ctx[8], uint64_t id, unsigned char *out)
{
    crypto_kdf_derive_from_key(out, MASTERKEY_SUBKEY_BYTES, id, ctx, key);
}
