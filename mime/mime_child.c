/*
 * mime_child — the sacrificial parser children (RULES.md 6):
 * mime_parse_isolated hands the message to a child process from a small
 * pool; the child parses under memory, CPU, file and core limits and
 * writes framed records to its socket; the parent checks every record and
 * replays it to the caller's sink under a wall-clock deadline.
 *
 * Data flow: deliver (a worker thread) -> mime_parse_start(memfd) ->
 * pool child (memfd passed with SCM_RIGHTS): mime_parse_inprocess ->
 * socket records -> parent: checks -> the caller's sink (which encrypts
 * into the vault item).
 *
 * The child parses inside a seccomp-bpf sandbox (child_sandbox, entered
 * after the setup): no network, no file writes, no exec; see there.
 *
 * Trust: the parent trusts nothing the child sends. Records have a type and
 * a length checked against a per-type maximum before anything is read; the
 * order (headers, then begin/data or slice/end per part, flags, done) is
 * checked; names are cleaned and made unique again, types and header text
 * checked again. A child that dies by a signal, exits non-zero, overruns the
 * deadline, breaks the protocol or never says "done" gives
 * MIME_F_PARSER_FAILED; what it sent before stays (the sink's contract is
 * kept: an open part is ended, headers are always delivered first).
 *
 * Record: 1 byte type, 4 bytes length (big-endian), payload.
 *   HEADERS     5 x (u32 length or 0xffffffff for none, bytes):
 *               subject, from, to, date, message-id
 *   PART_BEGIN  u8 kind, u16 name length, name, u16 type length, type
 *   PART_DATA   1 .. MIME_CHUNK bytes
 *   PART_SLICE  u64 offset, u64 length: the part is exactly those bytes of
 *               the message (mime.h part_slice); once, instead of data, and
 *               only within the message's size, which the parent knows
 *   PART_END    empty
 *   FLAGS       u32 MIME_F_* bits
 *   DONE        empty, the last record
 *
 * Why a fresh image (exec), not a fork of the daemon: after fork only the
 * calling thread exists in the child, so every lock another thread held
 * at that instant stays locked forever. glibc resets its malloc's locks,
 * no other allocator does: under ASan a child forked while a worker held
 * a lock of ASan's allocator hung in its first malloc until the wall-clock
 * limit killed it (a CI run of test_smtp_group_commit, 60 s for one
 * message). A forked child would also carry a copy of the whole daemon's
 * memory into the process that parses hostile input. So a child is our
 * own program started afresh: mime_child_entry (first thing in main)
 * opens the running binary (/proc/self/exe, O_PATH: the file itself, even
 * if it is replaced later or its directory is closed to the user we drop
 * to; valgrind gives its client here, not itself), and the spawner
 * posix_spawn()s that file with MIME_CHILD_ARG, its limits and our pid;
 * in the child, mime_child_entry sees the argument, initialises GMime and
 * becomes the child. posix_spawn execs at once (no malloc between clone and exec).
 * A program that never called mime_child_entry cannot start children
 * (its own main would run instead): mime_parse_start then fails the parse.
 * The child dies with the spawner thread (PR_SET_PDEATHSIG, checked
 * against getppid), does not log, and leaves with _exit. We wait for our
 * own pids only; the caller must not reap our children behind our back
 * (no SIGCHLD set to SIG_IGN, no waitpid(-1)). The child gets only its
 * socket (posix_spawn closes every other descriptor before the exec).
 *
 * A pool of long-lived children (issue 3, speed): a process per message
 * cost a process start plus a fresh GMime heap every time (and a start of
 * the program costs ~12 ms, mostly the dynamic linker). mime_parse_isolated
 * checks a child out of a small pool (or starts one, with the same
 * limits), passes it the message descriptor over
 * a socketpair (SCM_RIGHTS, with the message's parse limits), reads the
 * records above up to DONE, and returns the child to the pool. A child that
 * dies, overruns the wall-clock deadline, breaks the protocol or is
 * stopped by the sink is killed and reaped, and the message is
 * parser_failed exactly as before; the next message gets a fresh child.
 * A child is recycled after MIME_POOL_RECYCLE messages (leaks and heap
 * growth stay bounded; RLIMIT_AS holds for its whole life), and its
 * RLIMIT_CPU is a per-message budget: before each message the parent sets
 * the soft limit to the CPU time used so far plus parser_cpu_limit
 * (prlimit), so SIGXCPU ends a message that burns more. A child whose
 * limits no longer match the caller's (a reload) is not reused. The
 * successor of a recycled child is started by the spawner in the
 * background, so a message waits for a start only when no child is idle
 * (the first message, a burst).
 *
 * Start and finish (issue 3, latency): mime_parse_start sends the request
 * and returns; the caller seals the original meanwhile and then takes the
 * records with mime_parse_finish (mime_parse_isolated is the two in a
 * row). The child works on until its socket buffer is full, so for most
 * messages the whole parse is done by the time the parent reads.
 */
#include "mime/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/bytes.h"
#include "lib/parse.h"
#include "lib/xalloc.h"

enum mime_rec_type {
    MIME_REC_HEADERS = 1,
    MIME_REC_PART_BEGIN = 2,
    MIME_REC_PART_DATA = 3,
    MIME_REC_PART_END = 4,
    MIME_REC_FLAGS = 5,
    MIME_REC_DONE = 6,
    MIME_REC_PART_SLICE = 7 /* u64 offset, u64 length: the part is those message bytes */
};

#define MIME_REC_HDR 5
#define MIME_REC_NULLSTR 0xffffffffu
/* Largest payload per record type: a longer one is a protocol error. */
#define MIME_REC_HEADERS_MAX (5u * (4u + MIME_HEADER_SIZE_MAX))
#define MIME_REC_BEGIN_MAX (1u + 2u + MIME_NAME_MAX + 2u + MIME_TYPE_MAX)
#define MIME_REC_DATA_MAX MIME_CHUNK
#define MIME_REC_FLAGS_LEN 4u
#define MIME_REC_SLICE_LEN 16u

/* Descriptors in the child: 3 stays free (messages arrive at the lowest
 * free number), 4 is the socket to the parent. */
#define MIME_CHILD_FD_MSG 3
#define MIME_CHILD_FD_PIPE 4
#define MIME_CHILD_FD_FIRST_FREE 5
/* RLIMIT_NOFILE of the child: the two above, stdio on /dev/null, and a
 * few for iconv's gconv modules. */
#define MIME_CHILD_NOFILE 16
/* Stack of the child's main thread: deep recursion in GMime ends in
 * SIGSEGV at this depth whatever "ulimit -s" the daemon was started with
 * (the child sets its own RLIMIT_STACK, within the hard limit). */
#define MIME_CHILD_STACK (8u * 1024u * 1024u)
/* Child exit codes (anything but 0 is a failure to the parent). */
#define MIME_CHILD_EXIT_SETUP 70
#define MIME_CHILD_EXIT_PIPE 71
/* Step of the wait for a child that closed its pipe but is not yet reaped. */
#define MIME_REAP_STEP_NS 1000000L

#define MIME_F_ALL 0x01ffu

/* The pool of parser children. */
#define MIME_POOL_IDLE_MAX 32  /* idle children kept; more are ended */
#define MIME_POOL_RECYCLE 1024 /* messages one child parses before it is replaced */
#define MIME_POOL_REAP_MS 1000 /* wait for an ended child before SIGKILL */
/* Request to a pool child: u32 max_parts, u32 max_depth, u64 header_size,
 * with the message descriptor attached (SCM_RIGHTS). */
#define MIME_REQ_LEN 16

/* ---------- child ---------- */

static int write_full(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

struct pipe_sink {
    int fd;
    struct buf rec; /* the record being built */
    struct buf out; /* whole records not yet written (at most MIME_CHUNK) */
};

/* Starts a record in ps->rec (length filled in by rec_send). */
static void rec_start(struct pipe_sink *ps, enum mime_rec_type type)
{
    unsigned char h[MIME_REC_HDR] = {(unsigned char)type, 0, 0, 0, 0};
    buf_reset(&ps->rec);
    if (buf_append(&ps->rec, h, sizeof(h)) != 0)
        msg_panic("record buffer");
}

static int rec_add(struct pipe_sink *ps, const void *p, size_t n)
{
    return buf_append(&ps->rec, p, n);
}

/* Writes the records gathered so far. */
static int rec_flush(struct pipe_sink *ps)
{
    int r = ps->out.len ? write_full(ps->fd, ps->out.data, ps->out.len) : 0;
    buf_reset(&ps->out);
    return r;
}

/* Records are gathered and written MIME_CHUNK at a time (one wake-up of
 * the parent per chunk, not per record); rec_flush writes the rest. */
static int rec_send(struct pipe_sink *ps)
{
    put_u32((unsigned char *)ps->rec.data + 1, (uint32_t)(ps->rec.len - MIME_REC_HDR));
    if (ps->out.len + ps->rec.len > MIME_CHUNK && rec_flush(ps) != 0)
        return -1;
    if (ps->rec.len >= MIME_CHUNK)
        return write_full(ps->fd, ps->rec.data, ps->rec.len);
    return buf_append(&ps->out, ps->rec.data, ps->rec.len);
}

static int rec_add_str(struct pipe_sink *ps, const char *s, size_t max)
{
    unsigned char len[4];
    size_t n = s ? strlen(s) : 0;
    if (n > max)
        n = max; /* mime_parse already cut it; never send more than allowed */
    put_u32(len, s ? (uint32_t)n : MIME_REC_NULLSTR);
    return rec_add(ps, len, 4) || (s && rec_add(ps, s, n));
}

static int child_headers(void *ctx, const struct mime_headers *h)
{
    struct pipe_sink *ps = ctx;
    rec_start(ps, MIME_REC_HEADERS);
    const char *v[5] = {h->subject, h->from, h->to, h->date, h->message_id};
    for (int i = 0; i < 5; i++)
        if (rec_add_str(ps, v[i], MIME_HEADER_SIZE_MAX) != 0)
            return -1;
    return rec_send(ps);
}

static int child_part_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    struct pipe_sink *ps = ctx;
    size_t nl = strlen(name), tl = strlen(type);
    if (nl > MIME_NAME_MAX || tl > MIME_TYPE_MAX)
        return -1;
    unsigned char k = (unsigned char)kind;
    unsigned char l[2];
    rec_start(ps, MIME_REC_PART_BEGIN);
    int fail = rec_add(ps, &k, 1);
    l[0] = (unsigned char)(nl >> 8), l[1] = (unsigned char)nl;
    fail |= rec_add(ps, l, 2) | rec_add(ps, name, nl);
    l[0] = (unsigned char)(tl >> 8), l[1] = (unsigned char)tl;
    fail |= rec_add(ps, l, 2) | rec_add(ps, type, tl);
    return fail ? -1 : rec_send(ps);
}

static int child_part_data(void *ctx, const void *p, size_t n)
{
    struct pipe_sink *ps = ctx;
    const char *s = p;
    while (n > 0) {
        size_t take = n < MIME_REC_DATA_MAX ? n : MIME_REC_DATA_MAX;
        rec_start(ps, MIME_REC_PART_DATA);
        if (rec_add(ps, s, take) != 0 || rec_send(ps) != 0)
            return -1;
        s += take;
        n -= take;
    }
    return 0;
}

static int child_simple(struct pipe_sink *ps, enum mime_rec_type type, const void *p, size_t n)
{
    rec_start(ps, type);
    if (rec_add(ps, p, n) != 0)
        return -1;
    return rec_send(ps);
}

static int child_part_end(void *ctx)
{
    return child_simple(ctx, MIME_REC_PART_END, NULL, 0);
}

static int child_part_slice(void *ctx, uint64_t off, uint64_t n)
{
    unsigned char b[MIME_REC_SLICE_LEN];
    put_u32(b, (uint32_t)(off >> 32));
    put_u32(b + 4, (uint32_t)off);
    put_u32(b + 8, (uint32_t)(n >> 32));
    put_u32(b + 12, (uint32_t)n);
    return child_simple(ctx, MIME_REC_PART_SLICE, b, sizeof(b));
}

static void child_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    if (setrlimit(resource, &rl) != 0)
        _exit(MIME_CHILD_EXIT_SETUP);
}

#if !defined(__SANITIZE_ADDRESS__)
/*
 * Address space the child has before it parses: the program and its
 * libraries (tens of MB). RLIMIT_AS counts it, so the limit is this plus
 * mime_limits.memory, i.e. memory is what the parse may add. 0 when /proc
 * cannot tell.
 */
static uint64_t child_vm_size(void)
{
    char b[64];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof(b) - 1);
    close(fd);
    uint64_t pages = 0;
    for (ssize_t i = 0; i < n && b[i] >= '0' && b[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(b[i] - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}
#endif

/* Everything the child does before parsing: descriptors, signals, limits.
 * Its socket to the parent is MIME_CHILD_FD_PIPE (put there by
 * posix_spawn); messages come later, one at a time. */
static void child_setup(const struct mime_limits *lim, pid_t parent)
{
    (void)close(MIME_CHILD_FD_MSG); /* the program, from posix_spawn */
    if (close_range(MIME_CHILD_FD_FIRST_FREE, ~0u, 0) != 0)
        _exit(MIME_CHILD_EXIT_SETUP);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) {
        if (null >= 0)
            (void)dup2(null, fd);
        else
            (void)close(fd);
    }
    if (null > 2)
        (void)close(null);

    /* The parent's handlers and mask mean nothing here. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL); /* a gone parent shows as EPIPE */
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* Die with the thread that started us; it may already be gone. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    (void)prctl(PR_SET_NAME, "mime-parser", 0, 0, 0); /* for ps and top */
    if (getppid() != parent)
        _exit(MIME_CHILD_EXIT_SETUP);

    child_limit(RLIMIT_CORE, 0, 0);
    child_limit(RLIMIT_FSIZE, 0, 0); /* we write no files; sockets are not files */
    child_limit(RLIMIT_NOFILE, MIME_CHILD_NOFILE, MIME_CHILD_NOFILE);
    struct rlimit st;
    if (getrlimit(RLIMIT_STACK, &st) == 0)
        child_limit(RLIMIT_STACK,
                    st.rlim_max != RLIM_INFINITY && st.rlim_max < MIME_CHILD_STACK
                        ? st.rlim_max
                        : MIME_CHILD_STACK,
                    st.rlim_max);
    rlim_t cpu = lim->cpu_seconds > 0 ? (rlim_t)lim->cpu_seconds : 1;
    /* SIGXCPU ends a message that overruns its budget: the parent moves the
     * soft limit on per message (prlimit; it could not raise a hard one),
     * and the wall-clock deadline SIGKILLs whatever ignores it. */
    child_limit(RLIMIT_CPU, cpu, RLIM_INFINITY);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan reserves terabytes of shadow address space: an RLIMIT_AS would
     * kill every child. Sanitizer builds are for tests only. */
#else
    if (lim->memory > 0) {
        rlim_t as = (rlim_t)(child_vm_size() + lim->memory);
        child_limit(RLIMIT_AS, as, as);
    }
#endif
}

/*
 * The sandbox (seccomp-bpf), entered after child_setup, before the parse:
 * what an exploited parser could do is what GMime needs and nothing more.
 *   - no network: no socket, connect, sendto, ... (not on the list);
 *   - no writes but to the record socket and to stderr (/dev/null here),
 *     no reads from a socket but the next request from the parent
 *     (recvmsg on that socket only: the message descriptor arrives there);
 *   - open/openat for reading only (iconv loads gconv modules and tables),
 *     never O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND/O_TMPFILE;
 *   - mmap never MAP_SHARED with PROT_WRITE (the message memfd is
 *     writable: a shared writable mapping would be a write);
 *   - no exec, no fork, no kill, no ptrace, no rename/unlink/mkdir/chmod,
 *     no setuid, no prctl, no ioctl.
 * Anything else kills the child (SIGSYS): the parent sees a signal death,
 * i.e. MIME_F_PARSER_FAILED, and the item keeps its sealed original. A
 * foreign architecture or the x32 ABI is refused the same way.
 */
#if defined(__x86_64__)
#define MIME_SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MIME_SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef MIME_SECCOMP_ARCH
#define SC_LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define SC_ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define SC_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define SC_KILL BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
/* if nr == n: allow, else fall through */
#define SC_ALLOW_NR(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), SC_ALLOW

/* Open flags that mean writing or creating. */
#define MIME_SC_OPEN_DENY                                                                          \
    ((uint32_t)(O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY)))

static int child_sandbox(void)
{
    struct sock_filter f[] = {
        SC_LOAD(arch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MIME_SECCOMP_ARCH, 1, 0),
        SC_KILL,
        SC_LOAD(nr),
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1), /* x32 */
        SC_KILL,
#endif
        /* write and writev: only to the pipe and stderr */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_writev, 0, 5),
        SC_ARG_LO(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MIME_CHILD_FD_PIPE, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, STDERR_FILENO, 1, 0),
        SC_KILL,
        SC_ALLOW,
        /* recvmsg: only the next request (and its descriptor) from the
         * socket to the parent (a pool child parses many messages) */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_recvmsg, 0, 4),
        SC_ARG_LO(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MIME_CHILD_FD_PIPE, 1, 0),
        SC_KILL,
        SC_ALLOW,
        /* openat(dirfd, path, flags, mode): read only */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 4),
        SC_ARG_LO(2),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MIME_SC_OPEN_DENY, 0, 1),
        SC_KILL,
        SC_ALLOW,
#ifdef SYS_open
        /* open(path, flags, mode): read only */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 0, 4),
        SC_ARG_LO(1),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MIME_SC_OPEN_DENY, 0, 1),
        SC_KILL,
        SC_ALLOW,
#endif
        /* mmap(addr, len, prot, flags, fd, off): no shared writable map
         * (MAP_SHARED_VALIDATE has the MAP_SHARED bit too) */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 7),
        SC_ARG_LO(3),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_SHARED, 0, 3),
        SC_ARG_LO(2),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_WRITE, 0, 1),
        SC_KILL,
        SC_ALLOW,
        SC_LOAD(nr), /* (reloads nr after the argument checks above) */
        SC_ALLOW_NR(SYS_read),
        SC_ALLOW_NR(SYS_readv),
        SC_ALLOW_NR(SYS_pread64),
        SC_ALLOW_NR(SYS_lseek),
        SC_ALLOW_NR(SYS_close),
        SC_ALLOW_NR(SYS_fstat),
        SC_ALLOW_NR(SYS_newfstatat),
        SC_ALLOW_NR(SYS_statx),
#ifdef SYS_stat
        SC_ALLOW_NR(SYS_stat),
        SC_ALLOW_NR(SYS_lstat),
#endif
        SC_ALLOW_NR(SYS_fcntl),
        SC_ALLOW_NR(SYS_brk),
        SC_ALLOW_NR(SYS_munmap),
        SC_ALLOW_NR(SYS_mremap),
        SC_ALLOW_NR(SYS_madvise),
        SC_ALLOW_NR(SYS_mprotect),
        SC_ALLOW_NR(SYS_futex),
        SC_ALLOW_NR(SYS_getrandom),
        SC_ALLOW_NR(SYS_clock_gettime),
        SC_ALLOW_NR(SYS_gettimeofday),
        SC_ALLOW_NR(SYS_getpid),
        SC_ALLOW_NR(SYS_gettid),
        SC_ALLOW_NR(SYS_sched_yield),
        SC_ALLOW_NR(SYS_rt_sigreturn),
        SC_ALLOW_NR(SYS_rt_sigprocmask),
        SC_ALLOW_NR(SYS_restart_syscall),
        SC_ALLOW_NR(SYS_sigaltstack), /* sanitizer runtimes, at exit */
        SC_ALLOW_NR(SYS_exit),
        SC_ALLOW_NR(SYS_exit_group),
        SC_KILL,
    };
    /* The mmap branch jumps over its argument loads to the reload of nr:
     * nothing between "SC_ARG_LO(3)" and "SC_LOAD(nr)" may move. */
    struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
#else
#error "mime_child: no seccomp filter for this architecture"
#endif

/* Receives one request: the message descriptor, or -1 at EOF (the parent
 * ended us) or on anything malformed. */
static int pool_child_recv(int sock, struct mime_limits *l)
{
    unsigned char req[MIME_REQ_LEN];
    struct iovec iov = {req, sizeof(req)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof(u.buf);
    ssize_t n;
    while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
    int fd = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    if (n != (ssize_t)sizeof(req) || fd < 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    l->max_parts = get_u32(req);
    l->max_depth = get_u32(req + 4);
    l->header_size = (uint64_t)get_u32(req + 8) << 32 | get_u32(req + 12);
    return fd;
}

/* A pool child: parses message after message until the parent closes the
 * socket (or kills it). */
__attribute__((noreturn)) static void pool_child_main(const struct mime_limits *lim, pid_t parent)
{
    child_setup(lim, parent);
    struct pipe_sink ps = {MIME_CHILD_FD_PIPE, BUF_INIT, BUF_INIT};
    buf_init(&ps.rec, MIME_REC_HDR + MIME_REC_HEADERS_MAX);
    buf_init(&ps.out, MIME_CHUNK);
    if (child_sandbox() != 0)
        _exit(MIME_CHILD_EXIT_SETUP);
    struct mime_sink sink = {
        &ps, child_headers, child_part_begin, child_part_data, child_part_end, child_part_slice};
    for (;;) {
        struct mime_limits l = *lim;
        int fd = pool_child_recv(MIME_CHILD_FD_PIPE, &l);
        if (fd < 0)
            _exit(0);
        uint32_t flags = mime_parse_inprocess(fd, &l, &sink);
        (void)close(fd);
        unsigned char f[4];
        put_u32(f, flags);
        if (child_simple(&ps, MIME_REC_FLAGS, f, sizeof(f)) != 0 ||
            child_simple(&ps, MIME_REC_DONE, NULL, 0) != 0 || rec_flush(&ps) != 0)
            _exit(MIME_CHILD_EXIT_PIPE);
    }
}

/* A program started with this argument becomes a parser child:
 *   PROGRAM MIME_CHILD_ARG MEMORY CPU_SECONDS PARENT_PID */
#define MIME_CHILD_ARG "--mime-parser-child"
#define MIME_CHILD_ARGC 5
/* argv[0] of a child (ps shows it); its thread name is "mime-parser". */
#define MIME_CHILD_ARGV0 "sealpost: mime-parser"
/* The running program (see the top of the file). */
#define MIME_CHILD_SELF "/proc/self/exe"

/* Set by mime_child_entry in a process that is not a child: the program
 * (O_PATH, at MIME_CHILD_FD_FIRST_FREE or above, so that putting it on
 * MIME_CHILD_FD_MSG in the child cannot clobber the socket), or -1 with
 * exe_errno. Children can only be started when it is set. */
static bool child_entry_seen;
static int exe_fd = -1;
static int exe_errno;

void mime_child_entry(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], MIME_CHILD_ARG) != 0) {
        int fd = open(MIME_CHILD_SELF, O_PATH | O_CLOEXEC);
        if (fd >= 0) {
            exe_fd = fcntl(fd, F_DUPFD_CLOEXEC, MIME_CHILD_FD_FIRST_FREE);
            exe_errno = errno;
            close(fd);
        } else {
            exe_errno = errno;
        }
        child_entry_seen = true;
        return;
    }
    struct mime_limits lim = {0};
    uint64_t parent;
    if (argc != MIME_CHILD_ARGC || parse_uint(argv[2], &lim.memory) != 0 ||
        parse_uint(argv[3], &lim.cpu_seconds) != 0 || parse_uint(argv[4], &parent) != 0 ||
        parent < 2 || parent > INT32_MAX)
        _exit(MIME_CHILD_EXIT_SETUP);
    mime_global_init();
    pool_child_main(&lim, (pid_t)parent);
}

/* ---------- parent ---------- */

#define NS_PER_SEC 1000000000LL
#define NS_PER_MS 1000000LL

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    return mono_ns() / NS_PER_MS;
}

enum read_result { READ_OK, READ_EOF, READ_TIMEOUT, READ_ERROR };

/*
 * The parent's reader of a child's socket (non-blocking): reads as much as
 * there is, so that one wake-up serves every record the child wrote at
 * once. Records are taken from the buffer in place.
 */
#define MIME_RBUF_CAP (MIME_REC_HDR + MIME_REC_HEADERS_MAX + MIME_CHUNK)
struct rbuf {
    unsigned char *b;
    size_t start, end; /* unread bytes: b[start..end) */
};

/* Makes n bytes (n <= MIME_RBUF_CAP) readable at b + start before the
 * deadline. READ_EOF only when the child closed with nothing unread (at a
 * record boundary); an EOF inside a record is an error. */
static enum read_result rbuf_need(struct rbuf *rb, int fd, size_t n, int64_t deadline)
{
    if (rb->end - rb->start >= n)
        return READ_OK;
    memmove(rb->b, rb->b + rb->start, rb->end - rb->start);
    rb->end -= rb->start;
    rb->start = 0;
    while (rb->end < n) {
        ssize_t k = read(fd, rb->b + rb->end, MIME_RBUF_CAP - rb->end);
        if (k > 0) {
            rb->end += (size_t)k;
            continue;
        }
        if (k == 0)
            return rb->end == 0 ? READ_EOF : READ_ERROR;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return READ_ERROR;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return READ_TIMEOUT;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left) < 0 && errno != EINTR)
            return READ_ERROR;
    }
    return READ_OK;
}

struct replay {
    const struct mime_sink *sink;
    size_t header_size;
    int fd;            /* the message (a slice is read from it for a sink without part_slice) */
    uint64_t msg_size; /* its size: no slice reaches past it */
    char *slice_buf;   /* MIME_CHUNK, for those reads; allocated on first use */
    int got_headers;
    int in_part;
    int part_data;  /* the open part had data */
    int part_slice; /* the open part is a slice: nothing may follow but its end */
    int done;
    int sink_err;
    uint32_t flags; /* from the FLAGS record */
    uint32_t extra; /* found by our own checks */
    struct mime_nameset names;
};

static const char *replay_str(struct replay *r, const unsigned char **p, const unsigned char *end,
                              struct buf *out, int *bad)
{
    if (end - *p < 4) {
        *bad = 1;
        return NULL;
    }
    uint32_t n = get_u32(*p);
    *p += 4;
    if (n == MIME_REC_NULLSTR)
        return NULL;
    if ((size_t)(end - *p) < n) {
        *bad = 1;
        return NULL;
    }
    r->extra |= mime_text_clean((const char *)*p, n, r->header_size, out);
    *p += n;
    return buf_cstr(out);
}

static int replay_headers(struct replay *r, const unsigned char *p, size_t n)
{
    struct buf v[5] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
    const unsigned char *end = p + n;
    int bad = 0;
    struct mime_headers h;
    h.subject = replay_str(r, &p, end, &v[0], &bad);
    h.from = replay_str(r, &p, end, &v[1], &bad);
    h.to = replay_str(r, &p, end, &v[2], &bad);
    h.date = replay_str(r, &p, end, &v[3], &bad);
    h.message_id = replay_str(r, &p, end, &v[4], &bad);
    if (!bad && p == end) {
        r->got_headers = 1;
        r->sink_err = r->sink->headers(r->sink->ctx, &h);
    } else {
        bad = 1;
    }
    for (int i = 0; i < 5; i++)
        buf_free(&v[i]);
    return bad ? -1 : 0;
}

static int type_ok(const char *t, size_t n)
{
    int slashes = 0;
    if (n == 0 || t[0] == '/' || t[n - 1] == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == '/')
            slashes++;
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                   (ch != 0 && strchr("!#$&^_.+-", ch))))
            return 0;
    }
    return slashes == 1;
}

static int replay_begin(struct replay *r, const unsigned char *p, size_t n)
{
    if (n < 5)
        return -1;
    unsigned kind = p[0];
    size_t nl = (size_t)p[1] << 8 | p[2];
    if (nl > MIME_NAME_MAX || 3 + nl + 2 > n)
        return -1;
    const char *name = (const char *)p + 3;
    size_t tl = (size_t)p[3 + nl] << 8 | p[4 + nl];
    if (tl > MIME_TYPE_MAX || 5 + nl + tl != n)
        return -1;
    char type[MIME_TYPE_MAX + 1];
    memcpy(type, p + 5 + nl, tl);
    type[tl] = '\0';
    if (!type_ok(type, tl))
        snprintf(type, sizeof(type), "application/octet-stream");

    char clean[MIME_NAME_MAX + 1];
    if (kind == MIME_PART_TEXT) {
        snprintf(clean, sizeof(clean), "body.txt");
    } else if (kind == MIME_PART_HTML) {
        snprintf(clean, sizeof(clean), "body.html");
    } else if (kind == MIME_PART_ATTACHMENT) {
        if (mime_filename_clean(name, nl, clean, sizeof(clean)))
            r->extra |= MIME_F_NAME_CHANGED;
        mime_nameset_claim(&r->names, clean, sizeof(clean));
    } else {
        return -1;
    }
    r->in_part = 1;
    r->part_data = r->part_slice = 0;
    r->sink_err = r->sink->part_begin(r->sink->ctx, (enum mime_part_kind)kind, clean, type);
    return 0;
}

/* A slice: the part is the message bytes [off, off + len), which the child
 * may only claim within the message, once, instead of data. A sink that
 * does not take slices gets those bytes read from the message. */
static int replay_slice(struct replay *r, const unsigned char *p, size_t n)
{
    if (!r->in_part || r->part_data || r->part_slice || n != MIME_REC_SLICE_LEN)
        return -1;
    uint64_t off = (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
    uint64_t len = (uint64_t)get_u32(p + 8) << 32 | get_u32(p + 12);
    if (off > r->msg_size || len > r->msg_size - off)
        return -1;
    r->part_slice = 1;
    if (r->sink->part_slice) {
        r->sink_err = r->sink->part_slice(r->sink->ctx, off, len);
        return 0;
    }
    if (r->slice_buf == NULL)
        r->slice_buf = xmalloc(MIME_CHUNK);
    while (len > 0 && r->sink_err == 0) {
        size_t take = len < MIME_CHUNK ? (size_t)len : MIME_CHUNK;
        ssize_t got = pread(r->fd, r->slice_buf, take, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            msg_warn("-: mime parser: reading the message at %llu: %s", (unsigned long long)off,
                     got < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        r->sink_err = r->sink->part_data(r->sink->ctx, r->slice_buf, (size_t)got);
        off += (uint64_t)got;
        len -= (uint64_t)got;
    }
    return 0;
}

/* One record: 0 to go on, -1 protocol error; r->sink_err set when the
 * sink asked to stop. */
static int replay_record(struct replay *r, unsigned type, const unsigned char *p, size_t n)
{
    switch (type) {
    case MIME_REC_HEADERS:
        return r->got_headers ? -1 : replay_headers(r, p, n);
    case MIME_REC_PART_BEGIN:
        return !r->got_headers || r->in_part ? -1 : replay_begin(r, p, n);
    case MIME_REC_PART_DATA:
        if (!r->in_part || r->part_slice || n == 0)
            return -1;
        r->part_data = 1;
        r->sink_err = r->sink->part_data(r->sink->ctx, p, n);
        return 0;
    case MIME_REC_PART_SLICE:
        return replay_slice(r, p, n);
    case MIME_REC_PART_END:
        if (!r->in_part || n != 0)
            return -1;
        r->in_part = 0;
        r->sink_err = r->sink->part_end(r->sink->ctx);
        return 0;
    case MIME_REC_FLAGS:
        if (!r->got_headers || r->in_part || n != MIME_REC_FLAGS_LEN)
            return -1;
        r->flags |= get_u32(p) & MIME_F_ALL;
        return 0;
    case MIME_REC_DONE:
        if (!r->got_headers || r->in_part || n != 0)
            return -1;
        r->done = 1;
        return 0;
    default:
        return -1;
    }
}

static size_t rec_max(unsigned type)
{
    switch (type) {
    case MIME_REC_HEADERS:
        return MIME_REC_HEADERS_MAX;
    case MIME_REC_PART_BEGIN:
        return MIME_REC_BEGIN_MAX;
    case MIME_REC_PART_DATA:
        return MIME_REC_DATA_MAX;
    case MIME_REC_FLAGS:
        return MIME_REC_FLAGS_LEN;
    case MIME_REC_PART_SLICE:
        return MIME_REC_SLICE_LEN;
    default:
        return 0;
    }
}

/* Waits for pid until the deadline, then kills it; never leaves a zombie.
 * Returns the wait status, or -1 when the pid was not ours to reap. */
static int child_reap(pid_t pid, int64_t deadline)
{
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (now_ms() >= deadline) {
            (void)kill(pid, SIGKILL);
            while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
            return w == pid ? status : -1;
        }
        struct timespec step = {0, MIME_REAP_STEP_NS};
        nanosleep(&step, NULL);
    }
}

static void replay_finish(struct replay *r)
{
    if (r->sink_err != 0)
        return;
    if (!r->got_headers) {
        struct mime_headers none = {0};
        r->got_headers = 1;
        r->sink_err = r->sink->headers(r->sink->ctx, &none);
    }
    if (r->in_part && r->sink_err == 0) {
        r->in_part = 0;
        r->sink_err = r->sink->part_end(r->sink->ctx);
    }
}

static void replay_reserve_names(struct replay *r)
{
    static const char *const reserved[] = {"body.txt", "body.html", "original.eml"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        char n[MIME_NAME_MAX + 1];
        snprintf(n, sizeof(n), "%s", reserved[i]);
        mime_nameset_claim(&r->names, n, sizeof(n));
    }
}

/* ---------- the pool (parent side) ---------- */

struct pool_child {
    struct pool_child *next;
    pid_t pid;
    int sock;
    unsigned uses;
    uint64_t memory, cpu_seconds; /* the limits it was started with */
    int away;                     /* the CPU it was last kept off, or -1 */
    bool have_clock;              /* clock: its CPU clock */
    clockid_t clock;
    bool budget_set;     /* its CPU limit was set from a reading of clock: */
    int64_t cpu_ns;      /* the CPU time read then */
    int64_t cpu_read_ns; /* and when (CLOCK_MONOTONIC) */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_child *pool_idle; /* under pool_lock */
static unsigned pool_nidle;

/* Ends a child: closing its socket makes an idle one exit; force kills. */
static int pool_child_end(struct pool_child *c, bool force, int64_t deadline)
{
    if (force)
        (void)kill(c->pid, SIGKILL);
    close(c->sock);
    int status = child_reap(c->pid, deadline);
    free(c);
    return status;
}

/* Starts a child with these limits (see the top of the file), or NULL
 * (logged). Runs on the spawner thread. */
static struct pool_child *pool_start_child(const struct mime_limits *lim)
{
    if (!child_entry_seen) {
        msg_warn("-: mime parser not started: this program has no parser child entry "
                 "(mime_child_entry)");
        return NULL;
    }
    if (exe_fd < 0) {
        msg_warn("-: mime parser not started: %s could not be opened at start: %s", MIME_CHILD_SELF,
                 strerror(exe_errno));
        return NULL;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        msg_warn("-: mime parser not started: socketpair: %s", strerror(errno));
        return NULL;
    }
    char mem[24], cpu[24], parent[24];
    snprintf(mem, sizeof(mem), "%llu", (unsigned long long)lim->memory);
    snprintf(cpu, sizeof(cpu), "%llu", (unsigned long long)lim->cpu_seconds);
    snprintf(parent, sizeof(parent), "%ld", (long)getpid());
    char *argv[] = {MIME_CHILD_ARGV0, MIME_CHILD_ARG, mem, cpu, parent, NULL};
    char program[32];
    snprintf(program, sizeof(program), "/proc/self/fd/%d", MIME_CHILD_FD_MSG);

    /* The socket on MIME_CHILD_FD_PIPE (first: it may sit on
     * MIME_CHILD_FD_MSG now), the program on MIME_CHILD_FD_MSG (the
     * child closes it), nothing else open but stdio; every signal default
     * and unblocked. */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    pid_t pid = -1;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc == 0) {
        rc = posix_spawnattr_init(&at);
        if (rc == 0) {
            if ((rc = posix_spawn_file_actions_adddup2(&fa, sv[1], MIME_CHILD_FD_PIPE)) == 0 &&
                (rc = posix_spawn_file_actions_adddup2(&fa, exe_fd, MIME_CHILD_FD_MSG)) == 0 &&
                (rc = posix_spawn_file_actions_addclosefrom_np(&fa, MIME_CHILD_FD_FIRST_FREE)) ==
                    0 &&
                (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
                (rc = posix_spawnattr_setsigdefault(&at, &all)) == 0 &&
                (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                                        POSIX_SPAWN_SETSIGDEF)) == 0)
                rc = posix_spawn(&pid, program, &fa, &at, argv, environ);
            posix_spawnattr_destroy(&at);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    close(sv[1]);
    if (rc != 0) {
        msg_warn("-: mime parser not started: %s: %s", MIME_CHILD_SELF, strerror(rc));
        close(sv[0]);
        return NULL;
    }
    int fl = fcntl(sv[0], F_GETFL);
    if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        msg_warn("-: mime parser not started: fcntl: %s", strerror(errno));
        (void)kill(pid, SIGKILL);
        close(sv[0]);
        (void)child_reap(pid, now_ms() + MIME_POOL_REAP_MS);
        return NULL;
    }
    struct pool_child *c = xcalloc(1, sizeof(*c));
    c->pid = pid;
    c->sock = sv[0];
    c->memory = lim->memory;
    c->cpu_seconds = lim->cpu_seconds;
    c->away = -1;
    c->have_clock = clock_getcpuclockid(pid, &c->clock) == 0;
    return c;
}

/*
 * Children are started by one thread that lives as long as the process
 * (the spawner), never by the caller's thread: PR_SET_PDEATHSIG fires when
 * the thread that started the child ends, and a pooled child outlives the
 * call that made it (a caller thread that ended would take its children,
 * checked out or not, down with it).
 */
struct spawn_req {
    struct spawn_req *next;
    struct mime_limits lim;
    struct pool_child *child;
    bool done;
    bool background; /* a successor for the idle pool: nobody waits for it */
};

static pthread_once_t spawner_once = PTHREAD_ONCE_INIT;
static bool spawner_ok;
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawn_cond = PTHREAD_COND_INITIALIZER;
static struct spawn_req *spawn_queue; /* under spawn_lock */

static void pool_idle_add(struct pool_child *c);

static void *spawner_main(void *arg)
{
    (void)arg;
    /* Not the name of the thread that started it (ps -L, top -H). */
    pthread_setname_np(pthread_self(), "mime-spawner");
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are for other threads */
    pthread_mutex_lock(&spawn_lock);
    for (;;) {
        while (spawn_queue == NULL)
            pthread_cond_wait(&spawn_cond, &spawn_lock);
        struct spawn_req *rq = spawn_queue;
        spawn_queue = rq->next;
        pthread_mutex_unlock(&spawn_lock);
        struct pool_child *c = pool_start_child(&rq->lim);
        if (rq->background) {
            if (c)
                pool_idle_add(c);
            free(rq);
            pthread_mutex_lock(&spawn_lock);
            continue;
        }
        pthread_mutex_lock(&spawn_lock);
        rq->child = c;
        rq->done = true;
        pthread_cond_broadcast(&spawn_cond);
    }
    return NULL;
}

static void spawner_start(void)
{
    pthread_attr_t at;
    pthread_t t;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, spawner_main, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0)
        msg_warn("-: mime parser spawner not started: %s", strerror(rc));
    spawner_ok = rc == 0;
}

/* Queues a request for the spawner; false when there is no spawner. A
 * caller that waits goes before the background starts. */
static bool spawn_queue_add(struct spawn_req *rq)
{
    pthread_once(&spawner_once, spawner_start);
    if (!spawner_ok)
        return false;
    pthread_mutex_lock(&spawn_lock);
    struct spawn_req **at = &spawn_queue;
    while (rq->background && *at)
        at = &(*at)->next;
    rq->next = *at;
    *at = rq;
    pthread_cond_broadcast(&spawn_cond);
    pthread_mutex_unlock(&spawn_lock);
    return true;
}

/* A new child with these limits, or NULL (logged). */
static struct pool_child *pool_spawn(const struct mime_limits *lim)
{
    struct spawn_req rq = {.lim = *lim};
    if (!spawn_queue_add(&rq))
        return NULL;
    pthread_mutex_lock(&spawn_lock);
    while (!rq.done)
        pthread_cond_wait(&spawn_cond, &spawn_lock);
    pthread_mutex_unlock(&spawn_lock);
    return rq.child;
}

/* A new child with these limits for the idle pool, started meanwhile. */
static void pool_spawn_background(const struct mime_limits *lim)
{
    struct spawn_req *rq = xcalloc(1, sizeof(*rq));
    rq->lim = *lim;
    rq->background = true;
    if (!spawn_queue_add(rq))
        free(rq);
}

/* An idle child started with these limits, else a new one (NULL if none
 * could be started). An idle child whose socket is readable or hung up
 * has died or spoken out of turn: it is ended, not used. */
static struct pool_child *pool_get(const struct mime_limits *lim)
{
    struct pool_child *c = NULL, *stale = NULL;
    pthread_mutex_lock(&pool_lock);
    while (c == NULL && pool_idle != NULL) {
        c = pool_idle;
        pool_idle = c->next;
        pool_nidle--;
        struct pollfd pfd = {c->sock, POLLIN, 0};
        if (c->memory != lim->memory || c->cpu_seconds != lim->cpu_seconds ||
            poll(&pfd, 1, 0) != 0) {
            c->next = stale;
            stale = c;
            c = NULL;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    while (stale) {
        struct pool_child *n = stale->next;
        (void)pool_child_end(stale, true, now_ms() + MIME_POOL_REAP_MS);
        stale = n;
    }
    return c ? c : pool_spawn(lim);
}

/* Into the idle pool, or ended when the pool is full. */
static void pool_idle_add(struct pool_child *c)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_nidle < MIME_POOL_IDLE_MAX) {
        c->next = pool_idle;
        pool_idle = c;
        pool_nidle++;
        c = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (c)
        (void)pool_child_end(c, false, now_ms() + MIME_POOL_REAP_MS);
}

void mime_pool_prewarm(const struct mime_limits *lim, unsigned n)
{
    unsigned idle = 0;
    pthread_mutex_lock(&pool_lock);
    for (const struct pool_child *c = pool_idle; c; c = c->next)
        idle += c->memory == lim->memory && c->cpu_seconds == lim->cpu_seconds;
    pthread_mutex_unlock(&pool_lock);
    for (; idle < n && idle < MIME_POOL_IDLE_MAX; idle++)
        pool_spawn_background(lim);
}

/* Back to the pool after a whole message; a child that has done its share
 * is ended and a successor with its limits started in the background. */
static void pool_put(struct pool_child *c)
{
    if (++c->uses < MIME_POOL_RECYCLE) {
        pool_idle_add(c);
        return;
    }
    struct mime_limits lim = {.memory = c->memory, .cpu_seconds = c->cpu_seconds};
    (void)pool_child_end(c, false, now_ms() + MIME_POOL_REAP_MS);
    pool_spawn_background(&lim);
}

void mime_pool_close(void)
{
    pthread_mutex_lock(&pool_lock);
    struct pool_child *c = pool_idle;
    pool_idle = NULL;
    pool_nidle = 0;
    pthread_mutex_unlock(&pool_lock);
    while (c) {
        struct pool_child *n = c->next;
        (void)pool_child_end(c, false, now_ms() + MIME_POOL_REAP_MS);
        c = n;
    }
}

/* The request: the message descriptor and the parse limits. */
static int pool_send(struct pool_child *c, int fd, const struct mime_limits *lim)
{
    unsigned char req[MIME_REQ_LEN];
    put_u32(req, lim->max_parts);
    put_u32(req + 4, lim->max_depth);
    put_u32(req + 8, (uint32_t)(lim->header_size >> 32));
    put_u32(req + 12, (uint32_t)lim->header_size);
    struct iovec iov = {req, sizeof(req)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof(u.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
    ssize_t n;
    while ((n = sendmsg(c->sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof(req) ? 0 : -1;
}

/*
 * This message's CPU budget: the whole seconds the child used so far, plus
 * one, plus cpu_seconds (RLIMIT_CPU counts whole seconds). The limit set
 * for an earlier message is this very one while the child cannot have
 * reached its next whole second since it was read: the child runs one
 * thread (its filter allows no clone), so its CPU time grows no faster
 * than the wall clock. Then neither the clock read nor the prlimit is
 * needed (two calls a message, made about once a second instead).
 * If its clock cannot be read, the child parses this message only.
 */
static void pool_cpu_budget(struct pool_child *c, const struct mime_limits *lim)
{
    struct timespec ts;
    rlim_t cpu = lim->cpu_seconds > 0 ? (rlim_t)lim->cpu_seconds : 1;
    if (c->have_clock && c->budget_set) {
        int64_t upper = c->cpu_ns + (mono_ns() - c->cpu_read_ns);
        if (upper / NS_PER_SEC == c->cpu_ns / NS_PER_SEC)
            return;
    }
    c->budget_set = false;
    int64_t read_at = mono_ns(); /* before the reading: an upper bound later */
    if (c->have_clock && clock_gettime(c->clock, &ts) == 0) {
        struct rlimit rl = {(rlim_t)ts.tv_sec + 1 + cpu, RLIM_INFINITY};
        if (prlimit(c->pid, RLIMIT_CPU, &rl, NULL) == 0) {
            /* Not for a fresh child: it sets its start-up limit itself
             * and may do so after this. */
            c->budget_set = c->uses > 0;
            c->cpu_ns = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
            c->cpu_read_ns = read_at;
            return;
        }
    }
    if (c->uses == 0)
        return;                  /* a fresh child: its start-up limit is this budget */
    c->uses = MIME_POOL_RECYCLE; /* ended after this message */
}

struct mime_parse {
    struct pool_child *c; /* NULL: none could be started */
    struct mime_limits lim;
    int fd;        /* the message */
    uint64_t size; /* its size, 0 if not known yet */
};

/*
 * Keeps the child off the CPU the caller runs on, where there is another:
 * a socket wake-up puts the woken task on the waker's CPU, so the child
 * would take turns with the caller there instead of parsing while the
 * caller seals. Only a hint, set again before a message when the caller
 * runs on another CPU than for the child's last one.
 */
static void pool_child_elsewhere(struct pool_child *c)
{
    cpu_set_t set;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu == c->away || sched_getaffinity(0, sizeof(set), &set) != 0 ||
        !CPU_ISSET(cpu, &set) || CPU_COUNT(&set) < 2)
        return;
    CPU_CLR(cpu, &set);
    if (sched_setaffinity(c->pid, sizeof(set), &set) == 0)
        c->away = cpu;
}

struct mime_parse *mime_parse_start(int fd, uint64_t size, const struct mime_limits *lim)
{
    struct mime_parse *mp = xcalloc(1, sizeof(*mp));
    mp->lim = *lim;
    mp->fd = fd;
    mp->size = size;
    /* An idle child may have died since it was put back; the request then
     * fails before it parsed anything, and a new child gets the message. */
    struct pool_child *c = pool_get(lim);
    if (c)
        pool_child_elsewhere(c);
    if (c && pool_send(c, fd, lim) < 0) {
        (void)pool_child_end(c, true, now_ms() + MIME_POOL_REAP_MS);
        c = pool_spawn(lim);
        if (c)
            pool_child_elsewhere(c);
        if (c && pool_send(c, fd, lim) < 0) {
            msg_warn("-: mime parser not started: send: %s", strerror(errno));
            (void)pool_child_end(c, true, now_ms() + MIME_POOL_REAP_MS);
            c = NULL;
        }
    }
    if (c)
        pool_cpu_budget(c, lim);
    mp->c = c;
    return mp;
}

void mime_parse_abandon(struct mime_parse *mp)
{
    if (mp == NULL)
        return;
    if (mp->c) /* mid-message: never reused */
        (void)pool_child_end(mp->c, true, now_ms() + MIME_POOL_REAP_MS);
    free(mp);
}

uint32_t mime_parse_isolated(int fd, const struct mime_limits *lim, const struct mime_sink *sink,
                             int *sink_err)
{
    return mime_parse_finish(mime_parse_start(fd, 0, lim), sink, sink_err);
}

uint32_t mime_parse_finish(struct mime_parse *mp, const struct mime_sink *sink, int *sink_err)
{
    const struct mime_limits *lim = &mp->lim;
    struct pool_child *c = mp->c;
    struct replay r = {0};
    r.sink = sink;
    r.fd = mp->fd;
    struct stat st;
    if (mp->size > 0)
        r.msg_size = mp->size;
    else if (fstat(mp->fd, &st) == 0 && st.st_size > 0)
        r.msg_size = (uint64_t)st.st_size;
    r.header_size =
        lim->header_size < MIME_HEADER_SIZE_MAX ? (size_t)lim->header_size : MIME_HEADER_SIZE_MAX;
    replay_reserve_names(&r);
    int64_t deadline = now_ms() + (int64_t)(lim->wall_seconds > 0 ? lim->wall_seconds : 1) * 1000;
    const char *why = NULL;

    if (sink_err)
        *sink_err = 0;
    if (c == NULL)
        goto fail;

    struct rbuf rb = {xmalloc(MIME_RBUF_CAP), 0, 0};
    while (!r.done && r.sink_err == 0) {
        enum read_result rr = rbuf_need(&rb, c->sock, MIME_REC_HDR, deadline);
        if (rr == READ_OK) {
            unsigned type = rb.b[rb.start];
            uint32_t len = get_u32(rb.b + rb.start + 1);
            if (len > rec_max(type) ||
                (rr = rbuf_need(&rb, c->sock, MIME_REC_HDR + (size_t)len, deadline)) != READ_OK) {
                why = rr == READ_TIMEOUT ? "timeout" : "protocol";
                break;
            }
            const unsigned char *payload = rb.b + rb.start + MIME_REC_HDR;
            rb.start += MIME_REC_HDR + (size_t)len;
            /* The wall-clock limit is the parser's: time spent in the
             * caller's sink (encrypting, writing) does not count. */
            int64_t t0 = now_ms();
            int bad = replay_record(&r, type, payload, len);
            deadline += now_ms() - t0;
            if (bad) {
                why = "protocol";
                break;
            }
            continue;
        }
        why = rr == READ_TIMEOUT ? "timeout" : rr == READ_EOF ? "no_done" : "protocol";
        break;
    }
    /* Bytes after DONE are a protocol error too: that child is not reused. */
    if (r.done && rb.end != rb.start) {
        why = "protocol";
        r.done = 0;
    }
    free(rb.b);

    if (r.done) {
        pool_put(c); /* a whole message: the child may parse the next one */
        goto out;
    }
    /* Timeout, protocol error, death, or the sink stopped us mid-message. */
    int status = pool_child_end(c, true, deadline);
    if (r.sink_err == 0 && why != NULL) {
        if (status >= 0 && WIFSIGNALED(status))
            msg_warn("-: mime parser failed: reason=%s, signal=%d", why, WTERMSIG(status));
        else if (status >= 0 && WIFEXITED(status))
            msg_warn("-: mime parser failed: reason=%s, exit=%d", why, WEXITSTATUS(status));
        else
            msg_warn("-: mime parser failed: reason=%s", why);
        goto fail;
    }
    goto out;

fail:
    r.flags |= MIME_F_PARSER_FAILED;
out:
    replay_finish(&r);
    mime_nameset_free(&r.names);
    free(r.slice_buf);
    free(mp);
    if (sink_err)
        *sink_err = r.sink_err;
    return r.flags | r.extra;
}

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void mime_init_once(void)
{
    g_mime_init();
    mime_parse_types_init();
    /* Initialise every class a child uses, here before threads exist, so no
     * child ever needs the GType lock for it (see the fork note above). */
    GType types[] = {
        GMIME_TYPE_PARSER,
        GMIME_TYPE_STREAM_MMAP,
        GMIME_TYPE_STREAM_FS,
        GMIME_TYPE_STREAM_MEM,
        GMIME_TYPE_STREAM_CAT,
        GMIME_TYPE_FILTER_BASIC,
        GMIME_TYPE_FILTER_CHARSET,
        GMIME_TYPE_MESSAGE,
        GMIME_TYPE_MESSAGE_PART,
        GMIME_TYPE_MULTIPART,
        GMIME_TYPE_PART,
        GMIME_TYPE_TEXT_PART,
        GMIME_TYPE_CONTENT_TYPE,
        GMIME_TYPE_CONTENT_DISPOSITION,
        GMIME_TYPE_DATA_WRAPPER,
        GMIME_TYPE_HEADER_LIST,
        INTERNET_ADDRESS_LIST_TYPE,
        INTERNET_ADDRESS_TYPE_MAILBOX,
        INTERNET_ADDRESS_TYPE_GROUP,
        GMIME_TYPE_MULTIPART_SIGNED,
        GMIME_TYPE_MULTIPART_ENCRYPTED,
        GMIME_TYPE_MESSAGE_PARTIAL,
        GMIME_TYPE_APPLICATION_PKCS7_MIME,
        GMIME_TYPE_PARAM_LIST,
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        g_type_class_unref(g_type_class_ref(types[i]));
}

void mime_global_init(void)
{
    pthread_once(&mime_once, mime_init_once);
}
