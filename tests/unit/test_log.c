/*
 * test_log — the log's stderr lines: one line per event, cut long lines
 * still end in one newline, and a deferring thread's lines (log_defer)
 * stay unwritten until log_flush, come out in order, are written before an
 * error line, never overflow the buffer, and are flushed by log_defer(0).
 * stderr is a temporary file here, read back after each step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/test_log.XXXXXX";
static int saved_stderr = -1;

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    log_open("test_log", 1, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    unlink(path);
    return 0;
}

/* What stderr holds so far (malloc'ed), and how many lines. */
static char *written(size_t *lines)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *s = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&s, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(s);
        s = calloc(1, 1);
        n = 0;
    }
    *lines = 0;
    for (ssize_t i = 0; i < n; i++)
        *lines += s[i] == '\n';
    return s;
}

static void truncate_log(void)
{
    assert_int_equal(ftruncate(STDERR_FILENO, 0), 0);
    assert_true(lseek(STDERR_FILENO, 0, SEEK_SET) == 0);
}

static void test_lines(void **state)
{
    (void)state;
    truncate_log();
    msg_info("one: a=%d", 1);
    msg_warn("two\r\nthree");
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    msg_info("%s", big);
    free(big);
    size_t lines;
    char *s = written(&lines);
    assert_int_equal(lines, 3);
    assert_non_null(strstr(s, "test_log["));
    assert_non_null(strstr(s, "]: one: a=1\n"));
    assert_non_null(strstr(s, "]: warning: two  three\n")); /* never split */
    assert_non_null(strstr(s, "xxx...\n"));                 /* cut, and marked */
    free(s);
}

static void test_defer(void **state)
{
    (void)state;
    truncate_log();
    size_t lines;
    log_defer(1);
    msg_info("first");
    msg_warn("second");
    char *s = written(&lines);
    assert_int_equal(lines, 0); /* kept */
    free(s);
    log_flush();
    s = written(&lines);
    assert_int_equal(lines, 2);
    assert_true(strstr(s, "first") < strstr(s, "second"));
    free(s);

    /* an error is written at once, after what was kept */
    msg_info("third");
    msg_error("fourth");
    s = written(&lines);
    assert_int_equal(lines, 4);
    assert_non_null(strstr(s, "third"));
    assert_true(strstr(s, "third") < strstr(s, "error: fourth"));
    free(s);

    /* more than the buffer holds: written as it fills, every line whole */
    truncate_log();
    char *line = malloc(1000);
    memset(line, 'y', 999);
    line[999] = '\0';
    int n = 3 * LOG_DEFER_MAX / 1000;
    for (int i = 0; i < n; i++)
        msg_info("%d %s", i, line);
    free(line);
    s = written(&lines);
    assert_true(lines > 0 && lines < (size_t)n);
    free(s);
    log_defer(0); /* flushes */
    s = written(&lines);
    assert_int_equal(lines, (size_t)n);
    char want[32];
    snprintf(want, sizeof(want), "]: %d yyy", n - 1);
    assert_non_null(strstr(s, want));
    free(s);

    /* not deferring any more: at once */
    truncate_log();
    msg_info("fifth");
    s = written(&lines);
    assert_int_equal(lines, 1);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_defer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
