/*
 * probe — an LD_PRELOAD shim for the privilege-separation tests
 * (tests/integration/test_privsep*.py): it runs an attacker's first moves
 * from inside the real code paths and lets the test see what happened.
 *
 * 1. Inside the MIME parser child. GMime is only ever called there, so a
 *    wrapper of g_mime_parser_construct_message runs in the child, after
 *    its setup and sandbox, right where a parser exploit would run.
 *    PROBE_CHILD selects the move:
 *      none        nothing (control: the parse works with the shim loaded)
 *      socket      socket(AF_INET) and connect to 127.0.0.1:PROBE_PORT
 *      open-write  open(PROBE_PATH, O_WRONLY|O_CREAT) and write to it
 *      open-rdwr   open(PROBE_PATH, O_RDWR) of an existing file, write
 *      unlink      unlink(PROBE_PATH)
 *      exec        execve("/bin/sh", …) that would create PROBE_PATH
 *    A sandbox that works kills the child at that call (the parent logs
 *    the signal and flags the item parser_failed) and the effect (the
 *    connection, the file) never happens. The child can report nothing
 *    else, by design: it has nowhere to write.
 *
 * 2. Inside `serve`, after the privilege drop: the first memfd_create of
 *    the process (a DATA transaction spools into one, in a session worker)
 *    tries, for each directory in PROBE_WRITE_DIRS (':'-separated), to
 *    create a file there, then setuid(0), and appends one line per attempt
 *    to PROBE_REPORT: "DIR ok" or "DIR errno=N", "setuid0 ok|errno=N",
 *    "uid=U euid=E". PROBE_REPORT must be somewhere the daemon may write
 *    (its data dir): that it can is part of what is shown.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef void *(*construct_fn)(void *parser, void *options);

static void child_move(void)
{
    const char *move = getenv("PROBE_CHILD");
    const char *path = getenv("PROBE_PATH");
    if (move == NULL || strcmp(move, "none") == 0)
        return;
    if (strcmp(move, "socket") == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_port = htons((unsigned short)atoi(getenv("PROBE_PORT") ? getenv("PROBE_PORT") : "0"));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s >= 0)
            (void)connect(s, (struct sockaddr *)&a, sizeof(a));
    } else if (strcmp(move, "open-write") == 0 && path) {
        int fd = open(path, O_WRONLY | O_CREAT, 0600);
        if (fd >= 0)
            (void)write(fd, "probe\n", 6);
    } else if (strcmp(move, "open-rdwr") == 0 && path) {
        int fd = open(path, O_RDWR);
        if (fd >= 0)
            (void)write(fd, "probe\n", 6);
    } else if (strcmp(move, "unlink") == 0 && path) {
        (void)unlink(path);
    } else if (strcmp(move, "exec") == 0 && path) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "echo probe > '%s'", path);
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        char *envp[] = {NULL};
        (void)execve("/bin/sh", argv, envp);
    }
}

void *g_mime_parser_construct_message(void *parser, void *options);
void *g_mime_parser_construct_message(void *parser, void *options)
{
    static construct_fn real;
    if (real == NULL)
        real = (construct_fn)dlsym(RTLD_NEXT, "g_mime_parser_construct_message");
    child_move();
    return real(parser, options);
}

static atomic_int serve_probed;

static void report(FILE *f, const char *what, int ok, int err)
{
    if (ok)
        fprintf(f, "%s ok\n", what);
    else
        fprintf(f, "%s errno=%d\n", what, err);
}

static void serve_probe(void)
{
    const char *dirs = getenv("PROBE_WRITE_DIRS");
    const char *rep = getenv("PROBE_REPORT");
    if (dirs == NULL || rep == NULL || atomic_exchange(&serve_probed, 1))
        return;
    FILE *f = fopen(rep, "a");
    if (f == NULL)
        return;
    char *list = strdup(dirs);
    for (char *save = NULL, *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/sealpost-probe-%ld", d, (long)getpid());
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
        int e = errno;
        report(f, d, fd >= 0, e);
        if (fd >= 0) {
            close(fd);
            unlink(p);
        }
    }
    free(list);
    int r = setuid(0);
    report(f, "setuid0", r == 0, errno);
    fprintf(f, "uid=%ld euid=%ld\n", (long)getuid(), (long)geteuid());
    fclose(f);
}

int memfd_create(const char *name, unsigned int flags)
{
    serve_probe();
    return (int)syscall(SYS_memfd_create, name, flags);
}
