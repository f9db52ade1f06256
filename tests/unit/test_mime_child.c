/*
 * test_mime_child — the MIME parser child is this very program started
 * afresh (mime/mime_child.c), never a fork of a running process:
 *   - a program that has not called mime_child_entry starts no child (its
 *     own main would run in it): the parse fails, flagged parser_failed;
 *   - after mime_child_entry, a parse in isolation works, and the pooled
 *     child it leaves is our binary (the same file) run with the child's
 *     argument, one thread, holding only stdio and its socket;
 *   - mime_pool_close ends and reaps it;
 *   - a pooled child's CPU limit (RLIMIT_CPU, whole seconds) before each
 *     message is the whole seconds it used so far + 1 + cpu_seconds, also
 *     when the parent skips reading its clock (mime_child.c
 *     pool_cpu_budget): checked message by message while the child's CPU
 *     time crosses whole seconds.
 * main calls mime_child_entry at once only when it has arguments (a child
 * always has; a test run has none), so the first test runs without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mime/mime.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The argument mime_child.c starts a child with. */
#define CHILD_ARG "--mime-parser-child"
/* The socket's descriptor number in a child. */
#define CHILD_SOCKET_FD 4

static const char message[] = "From: a@example.org\r\n"
                              "Subject: isolated\r\n"
                              "\r\n"
                              "body\r\n";

struct seen {
    int headers;
    char subject[64];
};

static int s_headers(void *ctx, const struct mime_headers *h)
{
    struct seen *s = ctx;
    s->headers++;
    snprintf(s->subject, sizeof(s->subject), "%s", h->subject ? h->subject : "");
    return 0;
}
static int s_begin(void *ctx, enum mime_part_kind k, const char *n, const char *t)
{
    (void)ctx, (void)k, (void)n, (void)t;
    return 0;
}
static int s_data(void *ctx, const void *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
    return 0;
}
static int s_end(void *ctx)
{
    (void)ctx;
    return 0;
}

#define CPU_SECONDS 5

static uint32_t parse_text(struct seen *s, const char *text, size_t len)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    struct mime_limits lim = {.memory = 256ull << 20,
                              .cpu_seconds = CPU_SECONDS,
                              .wall_seconds = 10,
                              .max_parts = 100,
                              .max_depth = 10,
                              .header_size = 64 * 1024};
    struct mime_sink sink = {s, s_headers, s_begin, s_data, s_end, NULL};
    int err = 0;
    uint32_t flags = mime_parse_isolated(fd, &lim, &sink, &err);
    close(fd);
    assert_int_equal(err, 0);
    return flags;
}

static uint32_t parse(struct seen *s)
{
    return parse_text(s, message, sizeof(message) - 1);
}

/* Our child processes (by /proc/PID/stat's ppid), up to max; the count. */
static int children(pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], b[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(b, 1, sizeof(b) - 1, f);
        fclose(f);
        b[len] = 0;
        const char *close_paren = strrchr(b, ')'); /* comm may hold spaces */
        char state;
        int ppid;
        if (close_paren && sscanf(close_paren + 2, "%c %d", &state, &ppid) == 2 &&
            ppid == getpid() && state != 'Z') {
            if (n < max)
                out[n] = atoi(e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_no_entry_no_child(void **state)
{
    (void)state;
    struct seen s = {0};
    uint32_t flags = parse(&s);
    assert_true(flags & MIME_F_PARSER_FAILED);
    assert_int_equal(s.headers, 1); /* the sink's contract: headers always come */
    assert_string_equal(s.subject, "");
    pid_t pids[4];
    assert_int_equal(children(pids, 4), 0);
}

static void test_child_is_this_program_afresh(void **state)
{
    (void)state;
    struct seen s = {0};
    uint32_t flags = parse(&s);
    assert_false(flags & MIME_F_PARSER_FAILED);
    assert_string_equal(s.subject, "isolated");

    pid_t pids[4];
    assert_int_equal(children(pids, 4), 1); /* the pooled child, idle */
    char path[64];

    /* The same file as ours (opened, not stat'ed by name: under valgrind
     * only an open of /proc/self/exe gives the program, not valgrind). */
    struct stat mine, its;
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pids[0]);
    int self = open("/proc/self/exe", O_PATH | O_CLOEXEC);
    assert_true(self >= 0);
    assert_int_equal(fstat(self, &mine), 0);
    close(self);
    assert_int_equal(stat(path, &its), 0);
    assert_true(mine.st_dev == its.st_dev && mine.st_ino == its.st_ino);

    /* Started with the child's argument (a fork would show our own). */
    char cmd[512];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pids[0]);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    cmd[len] = 0;
    const char *arg1 = cmd + strlen(cmd) + 1;
    assert_true(arg1 < cmd + len);
    assert_string_equal(arg1, CHILD_ARG);

    /* One thread; stdio and the socket, nothing of ours. */
    char b[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[0]);
    f = fopen(path, "r");
    assert_non_null(f);
    len = fread(b, 1, sizeof(b) - 1, f);
    fclose(f);
    b[len] = 0;
    assert_non_null(strstr(b, "\nThreads:\t1\n"));
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pids[0]);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    int fds = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != CHILD_SOCKET_FD)
            fail_msg("the child holds descriptor %d", fd);
        fds++;
    }
    closedir(d);
    assert_int_equal(fds, 4);

    /* A second message: the same child parses it. */
    struct seen s2 = {0};
    assert_false(parse(&s2) & MIME_F_PARSER_FAILED);
    pid_t again[4];
    assert_int_equal(children(again, 4), 1);
    assert_int_equal(again[0], pids[0]);

    mime_pool_close(); /* ends and reaps it */
    assert_int_equal(children(again, 4), 0);
}

/* A child's CPU time (its CPU clock, as the parent reads it), in ns. */
static int64_t child_cpu_ns(pid_t pid)
{
    clockid_t clk;
    struct timespec ts;
    assert_int_equal(clock_getcpuclockid(pid, &clk), 0);
    assert_int_equal(clock_gettime(clk, &ts), 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Its soft RLIMIT_CPU in seconds, from /proc/PID/limits. */
static long child_cpu_limit(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long soft = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Max cpu time", 12) == 0)
            soft = strtol(line + 12, NULL, 10);
    fclose(f);
    assert_true(soft > 0);
    return soft;
}

/* The idle pooled child (there is one). */
static pid_t the_child(void)
{
    pid_t pids[4];
    assert_int_equal(children(pids, 4), 1);
    return pids[0];
}

static void test_cpu_budget_per_message(void **state)
{
    (void)state;
    /* A message that costs the child some CPU: many header fields and a
     * quoted-printable body it decodes. */
    size_t cap = 4u << 20, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "From: a@example.org\r\nSubject: cpu\r\n");
    for (int i = 0; i < 500; i++)
        len += (size_t)snprintf(text + len, cap - len, "X-Filler-%d: =?utf-8?q?caf=C3=A9_%d?=\r\n",
                                i, i);
    len += (size_t)snprintf(text + len, cap - len,
                            "Content-Type: text/plain\r\n"
                            "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    while (len + 80 < cap - 16)
        len +=
            (size_t)snprintf(text + len, cap - len,
                             "caf=C3=A9 =E2=82=AC soft=\r\nline break and some more text here\r\n");

    struct seen s = {0};
    assert_false(parse(&s) & MIME_F_PARSER_FAILED);
    pid_t child = the_child();
    int crossed = 0, checked = 0;
    int64_t start = child_cpu_ns(child);
    /* Until the child's CPU time crossed two whole seconds after the
     * first message (bounded: the test fails if it never gets there). */
    for (int i = 0; i < 2000 && crossed < 2; i++) {
        int64_t before = child_cpu_ns(child);
        struct seen t = {0};
        assert_false(parse_text(&t, text, len) & MIME_F_PARSER_FAILED);
        assert_int_equal(the_child(), child); /* the same child each time */
        int64_t after = child_cpu_ns(child);
        /* Set once the request was sent: the child may have started. */
        long lo = (long)(before / 1000000000) + 1 + CPU_SECONDS;
        long hi = (long)(after / 1000000000) + 1 + CPU_SECONDS;
        long got = child_cpu_limit(child);
        if (got < lo || got > hi)
            fail_msg("message %d: the child had used %" PRId64 " ms (%" PRId64
                     " ms after); its CPU limit is %ld s, want %ld s",
                     i, before / 1000000, after / 1000000, got, lo);
        checked++;
        crossed = (int)(after / 1000000000 - start / 1000000000);
    }
    if (crossed < 2)
        fail_msg("the child's CPU time crossed %d whole seconds in %d messages, want 2", crossed,
                 checked);
    free(text);
    mime_pool_close();
}

int main(int argc, char **argv)
{
    if (argc > 1) /* a parser child: it never comes back */
        mime_child_entry(argc, argv);
    mime_global_init();
    const struct CMUnitTest before[] = {
        cmocka_unit_test(test_no_entry_no_child),
    };
    const struct CMUnitTest after[] = {
        cmocka_unit_test(test_child_is_this_program_afresh),
        cmocka_unit_test(test_cpu_budget_per_message),
    };
    int failed = cmocka_run_group_tests_name("without mime_child_entry", before, NULL, NULL);
    mime_child_entry(argc, argv);
    return failed + cmocka_run_group_tests_name("with mime_child_entry", after, NULL, NULL);
}
