/*
 * test_mime_maps — mime_parse_inprocess gives back what it maps: a pooled
 * parser child parses hundreds of messages, so a mapping (or a descriptor)
 * left behind per message would pin every message's pages in the child.
 * Parses one message many times and counts the process's mappings and
 * open descriptors before and after. Fails on GMime's map stream when it
 * does not own its map (it then never unmaps it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/fsutil.h"
#include "mime/mime.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PARSES 64

static int s_headers(void *ctx, const struct mime_headers *h)
{
    (void)h;
    ++*(int *)ctx;
    return 0;
}

static int s_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    (void)ctx;
    (void)kind;
    (void)name;
    (void)type;
    return 0;
}

static int s_data(void *ctx, const void *p, size_t n)
{
    (void)ctx;
    (void)p;
    (void)n;
    return 0;
}

static int s_end(void *ctx)
{
    (void)ctx;
    return 0;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_no_mapping_left(void **state)
{
    (void)state;
    static const char msg[] = "From: a@example.org\r\nTo: b@example.org\r\nSubject: maps\r\n"
                              "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n"
                              "\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                              "--x\r\nContent-Type: application/octet-stream\r\n"
                              "Content-Disposition: attachment; filename=a.bin\r\n\r\nAAAA\r\n"
                              "--x--\r\n";
    int fd = memfd_open("test-mime-maps");
    assert_true(fd >= 0);
    assert_int_equal(write(fd, msg, sizeof(msg) - 1), (ssize_t)(sizeof(msg) - 1));
    struct mime_limits lim = {.max_parts = 100, .max_depth = 10, .header_size = 65536};
    int calls = 0;
    struct mime_sink sink = {&calls, s_headers, s_begin, s_data, s_end, NULL};
    /* One parse first: GLib's and GMime's one-time setup is not a leak. */
    (void)mime_parse_inprocess(fd, &lim, &sink);
    int maps0 = count_lines("/proc/self/maps");
    int fds0 = count_fds();
    for (int i = 0; i < PARSES; i++)
        (void)mime_parse_inprocess(fd, &lim, &sink);
    int maps1 = count_lines("/proc/self/maps");
    int fds1 = count_fds();
    close(fd);
    assert_int_equal(calls, PARSES + 1);
    if (maps1 - maps0 >= PARSES / 2)
        fail_msg("%d parses left %d more mappings (%d -> %d)", PARSES, maps1 - maps0, maps0, maps1);
    if (fds1 != fds0)
        fail_msg("%d parses changed the open descriptors %d -> %d", PARSES, fds0, fds1);
}

int main(void)
{
    mime_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_mapping_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
