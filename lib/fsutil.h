/*
 * fsutil — careful file I/O: full reads/writes that retry EINTR and short
 * counts, fsync of files and directories, directory creation.
 *
 * The durable-commit protocol (RULES.md 1) is built from these: a failed
 * fsync is returned to the caller, never retried here.
 */
#ifndef SEALPOST_FSUTIL_H
#define SEALPOST_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* 0 or -1 with errno. */
int write_all(int fd, const void *p, size_t n) __attribute__((warn_unused_result));
/* Bytes read (short only at EOF) or -1 with errno. */
ssize_t read_full(int fd, void *p, size_t n) __attribute__((warn_unused_result));
int fsync_dir(const char *dir) __attribute__((warn_unused_result));
/* mkdir -p with the given mode for created directories. */
int mkdir_p(const char *path, mode_t mode) __attribute__((warn_unused_result));
/* Reads a whole (small) file into a malloc'd NUL-terminated buffer, at most max bytes. */
int read_file(const char *path, size_t max, char **out, size_t *outlen)
    __attribute__((warn_unused_result));
/* Creates an anonymous in-memory file (memfd): never on persistent disk. */
int memfd_open(const char *name) __attribute__((warn_unused_result));
/* Copies all of fd_in from its current offset to fd_out, at most max bytes:
 * returns bytes copied, -1 with errno, or -2 when more than max were there. */
long long copy_fd(int fd_in, int fd_out, unsigned long long max)
    __attribute__((warn_unused_result));

#endif
