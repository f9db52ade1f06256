/*
 * faultinject — an LD_PRELOAD shim that makes one kind of call fail at the
 * Nth time, for the fault-injection tests (tests/integration/test_faults*).
 * Product code is untouched: the shim sits between it and libc.
 *
 * Environment (nothing set: the shim only counts nothing and passes all):
 *   FAULT_OP      write | read | fsync | rename | open | malloc
 *                   write   write, pwrite, pwrite64, writev, and the stdio
 *                           calls that write (fwrite, fputs, fputc, fflush,
 *                           fclose of a stream with a descriptor)
 *                   read    read, pread, pread64 (SQLite reads pages
 *                           with pread64; readv and stdio are not covered)
 *                   fsync   fsync, fdatasync
 *                   rename  rename, renameat, renameat2
 *                   open    open, open64, openat, openat64 (any flags),
 *                           fopen, fopen64, mkstemp is not covered
 *                   malloc  malloc, calloc, realloc (not free)
 *                   realloc realloc only (few calls: a walk can try each,
 *                           e.g. the one glibc makes when a memory
 *                           stream is closed)
 *   FAULT_N       the call (1-based, counting only eligible ones) that fails
 *   FAULT_PERSIST 1: every eligible call from the Nth on fails (a full disk)
 *   FAULT_ERRNO   EIO (default), ENOSPC, EDQUOT, ENOMEM, EACCES, or a number
 *   FAULT_PATH    only calls on paths (for descriptors: the path the
 *                 descriptor names) that contain this string are eligible;
 *                 SQLite's files under the data dir are eligible like any
 *                 other (sealpost.db, -wal, -shm)
 *   FAULT_THREAD  only calls made on threads of this name (the program's
 *                 pthread_setname_np, e.g. smtpd-io) are eligible
 *   FAULT_REPORT  a file the shim writes at exit: "calls=N fired=K" (the
 *                 eligible calls seen, the faults injected), so a test knows
 *                 how far to walk N
 *   FAULT_TRACE   a file the shim appends "K FUNCTION TARGET" to for every
 *                 eligible call (K its number), so a test can tell which
 *                 call the Nth is; lines the program prints to stderr with
 *                 fprintf or write (its log) go there too as "- stderr LINE", so the
 *                 test sees which calls came before "status=delivered"
 *
 * Calls made by the shim itself (readlink, the report) are not counted.
 * Threads: counters are atomic. Faults are for the process the test
 * started: the shim takes the FAULT_* variables out of the environment,
 * so a program that process starts (the MIME parser child: our own
 * binary run afresh) loads the shim with nothing to do.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

enum fault_op {
    FOP_NONE,
    FOP_WRITE,
    FOP_READ,
    FOP_FSYNC,
    FOP_RENAME,
    FOP_OPEN,
    FOP_MALLOC,
    FOP_REALLOC
};

static enum fault_op fault_op = FOP_NONE;
static long fault_n;
static int fault_persist;
static int fault_errno = EIO;
static const char *fault_path;
static const char *fault_thread;
static const char *fault_report;
static const char *fault_trace;
static atomic_long fault_calls;
static atomic_long fault_fired;
static int fault_ready;
static __thread int fault_inside; /* the shim's own calls */

/* glibc's allocator entry points: usable before dlsym, never recursive. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

__attribute__((constructor)) static void fault_init(void)
{
    const char *op = getenv("FAULT_OP");
    const char *n = getenv("FAULT_N");
    const char *e = getenv("FAULT_ERRNO");
    if (op && n) {
        if (strcmp(op, "write") == 0)
            fault_op = FOP_WRITE;
        else if (strcmp(op, "read") == 0)
            fault_op = FOP_READ;
        else if (strcmp(op, "fsync") == 0)
            fault_op = FOP_FSYNC;
        else if (strcmp(op, "rename") == 0)
            fault_op = FOP_RENAME;
        else if (strcmp(op, "open") == 0)
            fault_op = FOP_OPEN;
        else if (strcmp(op, "malloc") == 0)
            fault_op = FOP_MALLOC;
        else if (strcmp(op, "realloc") == 0)
            fault_op = FOP_REALLOC;
        fault_n = strtol(n, NULL, 10);
    }
    fault_persist = getenv("FAULT_PERSIST") && strcmp(getenv("FAULT_PERSIST"), "1") == 0;
    if (e) {
        if (strcmp(e, "ENOSPC") == 0)
            fault_errno = ENOSPC;
        else if (strcmp(e, "EDQUOT") == 0)
            fault_errno = EDQUOT;
        else if (strcmp(e, "ENOMEM") == 0)
            fault_errno = ENOMEM;
        else if (strcmp(e, "EACCES") == 0)
            fault_errno = EACCES;
        else if (strcmp(e, "EIO") == 0)
            fault_errno = EIO;
        else
            fault_errno = atoi(e);
    }
    fault_path = getenv("FAULT_PATH");
    if (fault_path && !*fault_path)
        fault_path = NULL;
    fault_thread = getenv("FAULT_THREAD");
    if (fault_thread && !*fault_thread)
        fault_thread = NULL;
    fault_report = getenv("FAULT_REPORT");
    fault_trace = getenv("FAULT_TRACE");
    /* (unsetenv only moves the environ pointers; the strings stay.) */
    static const char *const vars[] = {"FAULT_OP",     "FAULT_N",    "FAULT_PERSIST",
                                       "FAULT_ERRNO",  "FAULT_PATH", "FAULT_THREAD",
                                       "FAULT_REPORT", "FAULT_TRACE"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        (void)unsetenv(vars[i]);
    fault_ready = 1;
}

__attribute__((destructor)) static void fault_fini(void)
{
    if (!fault_report || fault_op == FOP_NONE)
        return;
    fault_inside++;
    char line[96];
    int len = snprintf(line, sizeof(line), "calls=%ld fired=%ld pid=%ld\n",
                       atomic_load(&fault_calls), atomic_load(&fault_fired), (long)getpid());
    /* Appends (forked children report too); raw syscalls: not counted. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, fault_report, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        (void)syscall(SYS_write, fd, line, (size_t)len);
        (void)syscall(SYS_close, fd);
    }
    fault_inside--;
}

static __thread char fault_target[4096 + 8]; /* what the last eligibility check looked at */

static int path_ok(const char *path)
{
    snprintf(fault_target, sizeof(fault_target), "%s", path ? path : "-");
    return fault_path == NULL || (path && strstr(path, fault_path) != NULL);
}

static int fd_ok(int fd)
{
    snprintf(fault_target, sizeof(fault_target), "fd %d", fd);
    if (fault_path == NULL && fault_trace == NULL)
        return 1;
    struct stat st;
    /* Pipes, sockets and devices are never under a data directory, and
     * telling so by fstat keeps readlink out of sandboxed children. */
    if (fd < 0 || fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return 0;
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    snprintf(fault_target, sizeof(fault_target), "%s", target);
    return fault_path == NULL || strstr(target, fault_path) != NULL;
}

static void trace(long k, const char *fn)
{
    char line[sizeof(fault_target) + 64];
    int len = k ? snprintf(line, sizeof(line), "%ld %s %s\n", k, fn, fault_target)
                : snprintf(line, sizeof(line), "- %s %s\n", fn, fault_target);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, fault_trace, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        (void)syscall(SYS_write, fd, line, (size_t)(len < (int)sizeof(line) ? len : 0));
        (void)syscall(SYS_close, fd);
    }
}

/* Whether the calling thread is the one FAULT_THREAD names (or none is). */
static int thread_ok(void)
{
    char name[17] = {0}; /* the kernel's TASK_COMM_LEN (16) and a NUL */
    if (fault_thread == NULL)
        return 1;
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0)
        return 0;
    return strcmp(name, fault_thread) == 0;
}

/* Counts one eligible call of op; 1 when it must fail (errno is set). */
#define fault_hit(op, eligible) fault_hit_fn(op, eligible, __func__)
static int fault_hit_fn(enum fault_op op, int eligible, const char *fn)
{
    if (!fault_ready || fault_inside || op != fault_op || !eligible || !thread_ok())
        return 0;
    long k = atomic_fetch_add(&fault_calls, 1) + 1;
    if (fault_trace && op != FOP_MALLOC && op != FOP_REALLOC)
        trace(k, fn);
    if (k == fault_n || (fault_persist && k > fault_n)) {
        atomic_fetch_add(&fault_fired, 1);
        errno = fault_errno;
        return 1;
    }
    return 0;
}

#define REAL(ret, name, ...)                                                                       \
    static ret (*real_##name)(__VA_ARGS__);                                                        \
    if (real_##name == NULL)                                                                       \
        real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);

/* ---- read ---- */

ssize_t read(int fd, void *p, size_t n)
{
    REAL(ssize_t, read, int, void *, size_t);
    if (fault_op == FOP_READ && fault_hit(FOP_READ, fd_ok(fd)))
        return -1;
    return real_read(fd, p, n);
}

ssize_t pread(int fd, void *p, size_t n, off_t off)
{
    REAL(ssize_t, pread, int, void *, size_t, off_t);
    if (fault_op == FOP_READ && fault_hit(FOP_READ, fd_ok(fd)))
        return -1;
    return real_pread(fd, p, n, off);
}

ssize_t pread64(int fd, void *p, size_t n, off_t off)
{
    REAL(ssize_t, pread64, int, void *, size_t, off_t);
    if (fault_op == FOP_READ && fault_hit(FOP_READ, fd_ok(fd)))
        return -1;
    return real_pread64(fd, p, n, off);
}

/* ---- write ---- */

/* Each line of a write to stderr (the program's log) into the trace. */
static void trace_stderr(const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        size_t keep = len < sizeof(fault_target) - 1 ? len : sizeof(fault_target) - 1;
        memcpy(fault_target, p, keep);
        fault_target[keep] = '\0';
        trace(0, "stderr");
        len += nl != NULL;
        p += len;
        n -= len;
    }
}

ssize_t write(int fd, const void *p, size_t n)
{
    REAL(ssize_t, write, int, const void *, size_t);
    if (fault_trace && fd == STDERR_FILENO && !fault_inside)
        trace_stderr(p, n);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, fd_ok(fd)))
        return -1;
    return real_write(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, fd_ok(fd)))
        return -1;
    return real_pwrite(fd, p, n, off);
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off)
{
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, fd_ok(fd)))
        return -1;
    return real_pwrite64(fd, p, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(ssize_t, writev, int, const struct iovec *, int);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, fd_ok(fd)))
        return -1;
    return real_writev(fd, iov, cnt);
}

/* glibc's stdio writes through its own internal write, which no preload
 * can reach: the stdio calls that write are wrapped instead. A failing
 * fwrite writes nothing; a failing fflush leaves the buffer as it is; a
 * failing fclose still closes and frees the stream. */
static int file_ok(FILE *f)
{
    return f != NULL && fd_ok(fileno(f));
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
    REAL(size_t, fwrite, const void *, size_t, size_t, FILE *);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, file_ok(f)))
        return 0;
    return real_fwrite(p, size, n, f);
}

int fputs(const char *s, FILE *f)
{
    REAL(int, fputs, const char *, FILE *);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, file_ok(f)))
        return EOF;
    return real_fputs(s, f);
}

int fputc(int c, FILE *f)
{
    REAL(int, fputc, int, FILE *);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, file_ok(f)))
        return EOF;
    return real_fputc(c, f);
}

int fflush(FILE *f)
{
    REAL(int, fflush, FILE *);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, file_ok(f)))
        return EOF;
    return real_fflush(f);
}

int fclose(FILE *f)
{
    REAL(int, fclose, FILE *);
    if (fault_op == FOP_WRITE && fault_hit(FOP_WRITE, file_ok(f))) {
        int e = errno;
        (void)real_fclose(f);
        errno = e;
        return EOF;
    }
    return real_fclose(f);
}

int fprintf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (fault_trace && f == stderr && !fault_inside) {
        va_list aq;
        va_copy(aq, ap);
        char line[512];
        (void)vsnprintf(line, sizeof(line), fmt, aq);
        va_end(aq);
        line[strcspn(line, "\n")] = '\0';
        snprintf(fault_target, sizeof(fault_target), "%s", line);
        trace(0, "stderr");
    }
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- fsync ---- */

int fsync(int fd)
{
    REAL(int, fsync, int);
    if (fault_op == FOP_FSYNC && fault_hit(FOP_FSYNC, fd_ok(fd)))
        return -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(int, fdatasync, int);
    if (fault_op == FOP_FSYNC && fault_hit(FOP_FSYNC, fd_ok(fd)))
        return -1;
    return real_fdatasync(fd);
}

/* ---- rename ---- */

int rename(const char *a, const char *b)
{
    REAL(int, rename, const char *, const char *);
    if (fault_op == FOP_RENAME && fault_hit(FOP_RENAME, path_ok(a) || path_ok(b)))
        return -1;
    return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
    REAL(int, renameat, int, const char *, int, const char *);
    if (fault_op == FOP_RENAME && fault_hit(FOP_RENAME, path_ok(a) || path_ok(b)))
        return -1;
    return real_renameat(da, a, db, b);
}

/* ---- open ---- */

static mode_t open_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    REAL(int, open, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t m = open_mode(flags, ap);
    va_end(ap);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return -1;
    return real_open(path, flags, m);
}

int open64(const char *path, int flags, ...)
{
    REAL(int, open64, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t m = open_mode(flags, ap);
    va_end(ap);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return -1;
    return real_open64(path, flags, m);
}

int openat(int dfd, const char *path, int flags, ...)
{
    REAL(int, openat, int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t m = open_mode(flags, ap);
    va_end(ap);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return -1;
    return real_openat(dfd, path, flags, m);
}

int openat64(int dfd, const char *path, int flags, ...)
{
    REAL(int, openat64, int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t m = open_mode(flags, ap);
    va_end(ap);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return -1;
    return real_openat64(dfd, path, flags, m);
}

FILE *fopen(const char *path, const char *mode)
{
    REAL(FILE *, fopen, const char *, const char *);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return NULL;
    return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    REAL(FILE *, fopen64, const char *, const char *);
    if (fault_op == FOP_OPEN && fault_hit(FOP_OPEN, path_ok(path)))
        return NULL;
    return real_fopen64(path, mode);
}

/* ---- malloc ---- */

void *malloc(size_t n)
{
    if (fault_op == FOP_MALLOC && fault_hit(FOP_MALLOC, 1))
        return NULL;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (fault_op == FOP_MALLOC && fault_hit(FOP_MALLOC, 1))
        return NULL;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if ((fault_op == FOP_MALLOC || fault_op == FOP_REALLOC) && fault_hit(fault_op, 1))
        return NULL;
    return __libc_realloc(p, n);
}
