/*
 * fuzz_mime — libFuzzer harness for the MIME stage: the code the parser
 * child runs (mime_parse_inprocess on a memfd, mime/mime_parse.c), then the
 * parent's own checks on what the child reports (names cleaned and made
 * unique, types checked), driven through the same sink contract.
 *
 * Every input is parsed on a thread with a small stack (FUZZ_MIME_STACK,
 * an eighth of the child's 8 MiB): recursion that grows with the input
 * overflows it on a fuzz-sized message and shows up as a crash here, long
 * before a real message of megabytes would overflow the child's stack.
 *
 * Checked (the sink contract of mime/mime.h): headers exactly once and
 * first; parts strictly begin, data* or one slice, end; a slice lies
 * within the input, and a text or HTML body's slice is valid UTF-8 (the
 * sink takes slices, as the daemon's does); kinds known; names non-empty,
 * valid UTF-8, at most MIME_NAME_MAX bytes, free of path and control
 * characters, unique; types "major/minor" lower case; no flag outside
 * MIME_F_*; data pieces at most MIME_CHUNK bytes.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log.h"
#include "mime/mime.h"
#include "lib/utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MIME_STACK (1024u * 1024u)
#define FUZZ_MIME_NAMES 4096

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "contract: " __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct check {
    const uint8_t *msg; /* the input, for slices */
    size_t msglen;
    int headers;
    int in_part;
    int kind, had_data, sliced; /* of the open part */
    size_t nparts;
    char *names[FUZZ_MIME_NAMES];
    size_t nnames;
};

/* Checks s is valid UTF-8; with names set, also that it carries none of
 * the code points a file name must not (C1 controls, bidi marks). */
static void check_utf8(const char *s, const char *what, int names)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        CHECK(k > 0, "%s: invalid UTF-8 at byte %zu", what, i);
        CHECK(!names || !((cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
                          cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
                          (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029),
              "%s: code point U+%04X", what, (unsigned)cp);
        i += k;
    }
}

static int s_headers(void *ctx, const struct mime_headers *h)
{
    struct check *c = ctx;
    CHECK(c->headers == 0 && c->nparts == 0, "headers twice or after a part");
    c->headers = 1;
    const char *v[] = {h->subject, h->from, h->to, h->date, h->message_id};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (v[i]) {
            check_utf8(v[i], "header", 0);
            CHECK(strpbrk(v[i], "\r\n") == NULL, "header %zu has a line break", i);
            CHECK(strlen(v[i]) <= MIME_HEADER_SIZE_MAX, "header %zu too long", i);
        }
    return 0;
}

static int s_part_begin(void *ctx, enum mime_part_kind kind, const char *name, const char *type)
{
    struct check *c = ctx;
    CHECK(c->headers && !c->in_part, "part_begin out of order");
    CHECK(kind == MIME_PART_TEXT || kind == MIME_PART_HTML || kind == MIME_PART_ATTACHMENT,
          "kind %d", (int)kind);
    size_t nl = strlen(name);
    CHECK(nl > 0 && nl <= MIME_NAME_MAX, "name length %zu", nl);
    check_utf8(name, "name", 1);
    CHECK(kind != MIME_PART_ATTACHMENT ||
              (strcasecmp(name, "original.eml") != 0 && strcasecmp(name, "body.txt") != 0 &&
               strcasecmp(name, "body.html") != 0),
          "attachment takes reserved name '%s'", name);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        CHECK(*p >= 0x20 && *p != 0x7f && !strchr("/\\:*?\"<>|", *p), "name byte 0x%02x", *p);
    CHECK(name[nl - 1] != '.' && name[nl - 1] != ' ', "name ends in dot or space");
    CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0, "name is a dot path");
    for (size_t i = 0; i < c->nnames; i++)
        CHECK(strcasecmp(c->names[i], name) != 0, "name '%s' twice", name);
    if (c->nnames < FUZZ_MIME_NAMES)
        c->names[c->nnames++] = strdup(name);
    size_t tl = strlen(type);
    CHECK(tl > 0 && tl <= MIME_TYPE_MAX, "type length %zu", tl);
    const char *slash = strchr(type, '/');
    CHECK(slash && slash != type && slash[1] && !strchr(slash + 1, '/'), "type '%s'", type);
    for (const char *p = type; *p; p++)
        CHECK(!(*p >= 'A' && *p <= 'Z') && (unsigned char)*p > 0x20, "type '%s'", type);
    c->in_part = 1;
    c->kind = (int)kind;
    c->had_data = c->sliced = 0;
    c->nparts++;
    return 0;
}

static int s_part_data(void *ctx, const void *p, size_t n)
{
    struct check *c = ctx;
    CHECK(c->in_part, "data outside a part");
    CHECK(!c->sliced, "data after a slice");
    CHECK(n > 0 && n <= MIME_CHUNK, "data piece of %zu bytes", n);
    c->had_data = 1;
    volatile const unsigned char *b = p;
    (void)b[0];
    (void)b[n - 1];
    return 0;
}

static int s_part_slice(void *ctx, uint64_t off, uint64_t n)
{
    struct check *c = ctx;
    CHECK(c->in_part && !c->had_data && !c->sliced, "slice out of order");
    CHECK(off <= c->msglen && n <= c->msglen - off, "slice %llu+%llu of %zu bytes",
          (unsigned long long)off, (unsigned long long)n, c->msglen);
    CHECK(c->kind == MIME_PART_ATTACHMENT || utf8_valid((const char *)c->msg + off, (size_t)n),
          "a body's slice is not UTF-8");
    c->sliced = 1;
    return 0;
}

static int s_part_end(void *ctx)
{
    struct check *c = ctx;
    CHECK(c->in_part, "part_end outside a part");
    c->in_part = 0;
    return 0;
}

struct job {
    int fd;
    struct check c;
    uint32_t flags;
};

static const struct mime_limits limits = {
    .memory = 512u << 20,
    .cpu_seconds = 30,
    .wall_seconds = 60,
    .max_parts = 1000, /* the config defaults */
    .max_depth = 20,
    .header_size = 1u << 20,
};

/* One long-lived parse thread with the small stack: creating a thread per
 * input costs more than most parses. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *pending;
static int finished;

static void *parse_thread(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (pending == NULL)
            pthread_cond_wait(&cv, &mu);
        struct job *j = pending;
        pthread_mutex_unlock(&mu);
        struct mime_sink sink = {&j->c,       s_headers,  s_part_begin,
                                 s_part_data, s_part_end, s_part_slice};
        j->flags = mime_parse_inprocess(j->fd, &limits, &sink);
        pthread_mutex_lock(&mu);
        pending = NULL;
        finished = 1;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void run_on_small_stack(struct job *j)
{
    pthread_mutex_lock(&mu);
    finished = 0;
    pending = j;
    pthread_cond_broadcast(&cv);
    while (!finished)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_open("fuzz_mime", 0, 0);
    mime_global_init();
    memfd = memfd_create("fuzz_mime", MFD_CLOEXEC);
    pthread_attr_t attr;
    pthread_t t;
    if (memfd < 0 || pthread_attr_init(&attr) != 0 ||
        pthread_attr_setstacksize(&attr, FUZZ_MIME_STACK) != 0 ||
        pthread_create(&t, &attr, parse_thread, NULL) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        abort();
    /* The descriptor's offset is wherever the last write left it, as in
     * deliver (mime_parse_inprocess reads from offset 0 regardless). */
    static struct job j;
    memset(&j, 0, sizeof(j));
    j.fd = memfd;
    j.c.msg = data;
    j.c.msglen = size;
    run_on_small_stack(&j);
    CHECK(j.c.headers == 1, "headers never delivered");
    CHECK(!j.c.in_part, "a part was never ended");
    CHECK((j.flags & ~0x01ffu) == 0, "unknown flags 0x%x", j.flags);
    CHECK(!(j.flags & MIME_F_PARSER_FAILED), "in-process parse reports parser_failed");
    for (size_t i = 0; i < j.c.nnames; i++)
        free(j.c.names[i]);
    return 0;
}
