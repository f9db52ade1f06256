/*
 * fsutil — full reads/writes, fsync, mkdir -p, memfd (see fsutil.h).
 */
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Size of the bounce buffer used when copying between descriptors. */
#define COPY_CHUNK (64 * 1024)

int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

ssize_t read_full(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, c + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int r = mkdir(p, mode);
    free(p);
    if (r < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size > max) {
        if (errno == 0 || (size_t)st.st_size > max)
            errno = EFBIG;
        close(fd);
        return -1;
    }
    char *b = xmalloc((size_t)st.st_size + 1);
    ssize_t r = read_full(fd, b, (size_t)st.st_size);
    int e = errno;
    close(fd);
    if (r < 0) {
        free(b);
        errno = e;
        return -1;
    }
    b[r] = '\0';
    *out = b;
    if (outlen)
        *outlen = (size_t)r;
    return 0;
}

int memfd_open(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}

long long copy_fd(int fd_in, int fd_out, unsigned long long max)
{
    char *b = xmalloc(COPY_CHUNK);
    unsigned long long total = 0;
    for (;;) {
        ssize_t r = read(fd_in, b, COPY_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free(b);
            return -1;
        }
        if (r == 0)
            break;
        if (total + (unsigned long long)r > max) {
            free(b);
            return -2;
        }
        if (write_all(fd_out, b, (size_t)r) < 0) {
            free(b);
            return -1;
        }
        total += (unsigned long long)r;
    }
    free(b);
    return (long long)total;
}
