/*
 * fuzz_config — libFuzzer harness for the config parser (policy/config.c).
 *
 * Input: the bytes of one config file. The harness writes them to a file in
 * a private temporary directory and calls config_load on it, the same path
 * `sealpost check-config` and `serve` take. A second file, inc.conf, sits in
 * that directory so that relative includes (and globs like "*.conf") have
 * something to read; includes that leave the directory (a '/' on an include
 * line) are skipped so the fuzzer cannot wander over the file system.
 *
 * Checked: no crash or sanitizer report; a load returns either a config and
 * no problems, or -1, no config and at least one "file:line: message".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "policy/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[96];

static const char inc_text[] = "[plan inc]\nstorage_quota = 1M\nmax_file_size = 10K\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/fuzz_config.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/fuzz.conf", dir);
    char inc[96];
    snprintf(inc, sizeof(inc), "%s/inc.conf", dir);
    FILE *f = fopen(inc, "w");
    if (f == NULL || fwrite(inc_text, 1, sizeof(inc_text) - 1, f) != sizeof(inc_text) - 1 ||
        fclose(f) != 0)
        abort();
    log_open("fuzz_config", 0, 0);
    return 0;
}

/* True if some line that mentions "include" also has a '/'. */
static int include_leaves_dir(const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t *nl = memchr(d + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - d) : n;
        if (memmem(d + i, e - i, "include", 7) && memchr(d + i, '/', e - i))
            return 1;
        i = e + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (include_leaves_dir(data, size))
        return -1; /* not added to the corpus */
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();

    struct config *c = NULL;
    struct diag d = {0};
    int rc = config_load(path, &c, &d);
    if (rc == 0 && (c == NULL || d.n != 0)) {
        fprintf(stderr, "config_load ok but config=%p problems=%zu\n", (void *)c, d.n);
        abort();
    }
    if (rc != 0 && (c != NULL || d.n == 0)) {
        fprintf(stderr, "config_load failed but config=%p problems=%zu\n", (void *)c, d.n);
        abort();
    }
    for (size_t i = 0; i < d.n; i++)
        if (d.msgs[i] == NULL || strchr(d.msgs[i], '\n') != NULL) {
            fprintf(stderr, "problem %zu is NULL or has a line break\n", i);
            abort();
        }
    if (c) {
        (void)config_plan(c, NULL);
        (void)config_is_mailin_domain(c, "mailin.test");
        config_unref(c);
    }
    diag_free(&d);
    return 0;
}
