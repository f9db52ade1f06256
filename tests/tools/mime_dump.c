/*
 * mime_dump — test driver for mime/: parses one message file exactly as the
 * daemon does (mime_parse_isolated, in a limited child) and prints a
 * canonical dump for golden-file tests (tests/data/mime/NAME.eml -> NAME.ref):
 *
 *   subject: …          (header values; "(none)" when absent)
 *   from: … / to: … / date: … / message-id: …
 *   part N: kind=text|html|attachment type=… size=BYTES sha256=HEX name=NAME
 *   flags: a,b,… | none
 *
 * It also checks the sink contract (headers once and first; begin, data,
 * end per part) and prints "contract: …" lines when it is broken.
 *
 * usage: mime_dump [--memory 256M] [--cpu 10] [--timeout 10] [--max-depth 20]
 *                  [--max-parts 1000] [--header-size 16K] [--inprocess]
 *                  [--save DIR] [--threads N] [--slices] FILE
 * --slices gives the sink a part_slice (mime.h): a part handed over as a
 * stretch of the file is read from the file and hashed like data, so the
 * dump is the same, and "slices: N" is printed last (N such parts).
 * --inprocess parses without the child (debugging, fuzzing); --save writes
 * each part's bytes to DIR/N (N = the part number) for review; --threads N
 * runs N parses at once and checks they agree. It also checks that no
 * parser child is left unreaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/parse.h"
#include "mime/mime.h"

struct dump {
    int got_headers;
    int in_part;
    unsigned nparts;
    const char *kind;
    char type[MIME_TYPE_MAX + 1];
    char name[MIME_NAME_MAX + 1];
    uint64_t size;
    crypto_hash_sha256_state sha;
    const char *save_dir;
    FILE *save;
    FILE *out; /* where the dump goes */
    int fd;    /* the message (slices are read from it) */
    int part_data, part_sliced;
    unsigned nslices;
};

static void contract(struct dump *d, const char *what)
{
    fprintf(d->out, "contract: %s\n", what);
}

static int dump_headers(void *ctx, const struct mime_headers *h)
{
    struct dump *d = ctx;
    if (d->got_headers)
        contract(d, "headers twice");
    d->got_headers = 1;
    fprintf(d->out, "subject: %s\n", h->subject ? h->subject : "(none)");
    fprintf(d->out, "from: %s\n", h->from ? h->from : "(none)");
    fprintf(d->out, "to: %s\n", h->to ? h->to : "(none)");
    fprintf(d->out, "date: %s\n", h->date ? h->date : "(none)");
    fprintf(d->out, "message-id: %s\n", h->message_id ? h->message_id : "(none)");
    return 0;
}

static int dump_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    struct dump *d = ctx;
    if (!d->got_headers)
        contract(d, "part before headers");
    if (d->in_part)
        contract(d, "part_begin inside a part");
    d->in_part = 1;
    d->kind = kind == MIME_PART_TEXT ? "text" : kind == MIME_PART_HTML ? "html" : "attachment";
    snprintf(d->type, sizeof(d->type), "%s", type);
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->size = 0;
    d->part_data = d->part_sliced = 0;
    crypto_hash_sha256_init(&d->sha);
    if (d->save_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%u", d->save_dir, d->nparts + 1);
        d->save = fopen(path, "wb");
        if (d->save == NULL)
            perror(path);
    }
    return 0;
}

static void dump_bytes(struct dump *d, const void *p, size_t n)
{
    d->size += n;
    crypto_hash_sha256_update(&d->sha, p, n);
    if (d->save && fwrite(p, 1, n, d->save) != n)
        perror("save");
}

static int dump_data(void *ctx, const void *p, size_t n)
{
    struct dump *d = ctx;
    if (!d->in_part)
        contract(d, "part_data outside a part");
    if (d->part_sliced)
        contract(d, "part_data after a slice");
    if (n > MIME_CHUNK)
        contract(d, "part_data chunk too large");
    d->part_data = 1;
    dump_bytes(d, p, n);
    return 0;
}

static int dump_slice(void *ctx, uint64_t off, uint64_t n)
{
    struct dump *d = ctx;
    if (!d->in_part)
        contract(d, "part_slice outside a part");
    if (d->part_data || d->part_sliced)
        contract(d, "part_slice after data or another slice");
    d->part_sliced = 1;
    d->nslices++;
    char b[MIME_CHUNK];
    while (n > 0) {
        ssize_t got = pread(d->fd, b, n < sizeof(b) ? (size_t)n : sizeof(b), (off_t)off);
        if (got <= 0) {
            contract(d, "part_slice beyond the file");
            return -1;
        }
        dump_bytes(d, b, (size_t)got);
        off += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return 0;
}

static int dump_end(void *ctx)
{
    struct dump *d = ctx;
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    if (!d->in_part)
        contract(d, "part_end outside a part");
    d->in_part = 0;
    if (d->save) {
        fclose(d->save);
        d->save = NULL;
    }
    crypto_hash_sha256_final(&d->sha, h);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    d->nparts++;
    fprintf(d->out, "part %u: kind=%s type=%s size=%llu sha256=%s name=%s\n", d->nparts, d->kind,
            d->type, (unsigned long long)d->size, hex, d->name);
    return 0;
}

/* One whole parse into a dump held in memory. */
struct run {
    int fd;
    const struct mime_limits *lim;
    int inprocess;
    int slices;
    const char *save_dir;
    char *text;
    size_t len;
    int sink_err;
};

static void *run_parse(void *arg)
{
    struct run *r = arg;
    struct dump d = {0};
    d.save_dir = r->save_dir;
    d.fd = r->fd;
    d.out = open_memstream(&r->text, &r->len);
    if (d.out == NULL) {
        perror("open_memstream");
        exit(1);
    }
    struct mime_sink sink = {&d,        dump_headers, dump_begin,
                             dump_data, dump_end,     r->slices ? dump_slice : NULL};
    uint32_t flags = r->inprocess ? mime_parse_inprocess(r->fd, r->lim, &sink)
                                  : mime_parse_isolated(r->fd, r->lim, &sink, &r->sink_err);
    if (d.in_part)
        contract(&d, "part not ended");
    if (!d.got_headers)
        contract(&d, "no headers");
    char names[256];
    mime_flags_format(flags, names, sizeof(names));
    fprintf(d.out, "flags: %s\n", names[0] ? names : "none");
    if (r->slices)
        fprintf(d.out, "slices: %u\n", d.nslices);
    fclose(d.out);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: mime_dump [--memory SIZE] [--cpu SECS] [--timeout SECS] "
                    "[--max-depth N] [--max-parts N] [--header-size SIZE] [--inprocess] "
                    "[--save DIR] [--threads N] [--slices] FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    mime_child_entry(argc, argv); /* parser children are this program again */
    struct mime_limits lim = {
        .memory = 256ull << 20,
        .cpu_seconds = 10,
        .wall_seconds = 10,
        .max_parts = 1000,
        .max_depth = 20,
        .header_size = 16 * 1024,
    };
    int inprocess = 0, slices = 0;
    unsigned threads = 1;
    const char *file = NULL;
    const char *save_dir = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        if (strcmp(a, "--inprocess") == 0) {
            inprocess = 1;
            continue;
        }
        if (strcmp(a, "--slices") == 0) {
            slices = 1;
            continue;
        }
        if (a[0] != '-') {
            if (file)
                usage();
            file = a;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *val = argv[++i];
        if (strcmp(a, "--memory") == 0 && parse_size(val, &v) == 0)
            lim.memory = v;
        else if (strcmp(a, "--header-size") == 0 && parse_size(val, &v) == 0)
            lim.header_size = v;
        else if (strcmp(a, "--save") == 0)
            save_dir = val;
        else if (strcmp(a, "--cpu") == 0 && parse_duration(val, &v) == 0)
            lim.cpu_seconds = v;
        else if (strcmp(a, "--timeout") == 0 && parse_duration(val, &v) == 0)
            lim.wall_seconds = v;
        else if (strcmp(a, "--max-depth") == 0 && parse_uint(val, &v) == 0 && v < 100000)
            lim.max_depth = (unsigned)v;
        else if (strcmp(a, "--max-parts") == 0 && parse_uint(val, &v) == 0 && v < 10000000)
            lim.max_parts = (unsigned)v;
        else if (strcmp(a, "--threads") == 0 && parse_uint(val, &v) == 0 && v >= 1 && v <= 64)
            threads = (unsigned)v;
        else
            usage();
    }
    if (file == NULL || (threads > 1 && (inprocess || save_dir)))
        usage();
    if (sodium_init() < 0) {
        fprintf(stderr, "mime_dump: sodium_init failed\n");
        return 1;
    }
    mime_global_init();
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(file);
        return 1;
    }

    /* With --threads N, N parses of the same descriptor run at once and
     * must all give the same dump (mime_parse_isolated is thread-safe). */
    struct run runs[64];
    pthread_t tids[64];
    for (unsigned t = 0; t < threads; t++) {
        runs[t] = (struct run){fd, &lim, inprocess, slices, save_dir, NULL, 0, 0};
        if (threads == 1)
            run_parse(&runs[t]);
        else if (pthread_create(&tids[t], NULL, run_parse, &runs[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    int rc = 0;
    for (unsigned t = 0; t < threads; t++) {
        if (threads > 1)
            pthread_join(tids[t], NULL);
        rc |= runs[t].sink_err != 0;
    }
    fwrite(runs[0].text, 1, runs[0].len, stdout);
    for (unsigned t = 1; t < threads; t++)
        if (runs[t].len != runs[0].len || memcmp(runs[t].text, runs[0].text, runs[0].len) != 0)
            printf("contract: thread %u gave a different dump\n", t);
    /* every parser child must have been reaped once the pool is closed */
    mime_pool_close();
    if (!inprocess && (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD))
        printf("contract: a parser child was left unreaped\n");
    for (unsigned t = 0; t < threads; t++)
        free(runs[t].text);
    close(fd);
    return rc;
}
