/*
 * replay_main — a plain main for the fuzz harnesses (fuzz/fuzz_*.c), built
 * with the ordinary compiler: runs LLVMFuzzerTestOneInput once per file
 * named on the command line (or per file in a named directory). Tests use
 * it to replay kept crash inputs (tests/data/fuzz-regressions/NAME/) in
 * every build, including the ASan one; a harness that finds its contract
 * broken aborts, so the exit status says it all.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_FILE_MAX (64u * 1024u * 1024u)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    uint8_t *data = malloc(REPLAY_FILE_MAX);
    size_t n = data ? fread(data, 1, REPLAY_FILE_MAX, f) : 0;
    int bad = data == NULL || ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read (or larger than %u bytes)\n", path, REPLAY_FILE_MAX);
        free(data);
        return -1;
    }
    (void)LLVMFuzzerTestOneInput(data, n);
    free(data);
    printf("replayed %s (%zu bytes)\n", path, n);
    return 0;
}

int main(int argc, char **argv)
{
    int fails = 0;
    (void)LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
                fails += replay_file(p) != 0;
            }
            if (d)
                closedir(d);
        } else {
            fails += replay_file(argv[i]) != 0;
        }
    }
    return fails ? 1 : 0;
}
