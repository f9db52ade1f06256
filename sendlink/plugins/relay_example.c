/*
 * relay_example — an example SMS relay plug-in (sendlink/relay_abi.h),
 * built by `make` into build/plugins/relay_example.so and used by the tests.
 *
 * It "sends" an SMS by appending one JSON line to a file, like the file
 * driver, and can pretend to fail, which makes it a template for a real
 * plug-in and a test double for failover:
 *
 *   [relay example]
 *   driver = plugin
 *   path = /usr/local/lib/sealpost/relay_example.so
 *   output = /var/lib/sealpost/sms-example.jsonl   # required
 *   fail = no                                      # no | temp | perm
 *   sender = sealpost                              # optional, echoed in each line
 *
 * It uses nothing but the C library and is thread-safe (one write(2) per
 * line with O_APPEND), so it declares SEALPOST_RELAY_THREADSAFE.
 */
#include "sendlink/relay_abi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE_LINE_MAX 2048
#define EXAMPLE_VALUE_MAX 512

enum example_fail { FAIL_NO, FAIL_TEMP, FAIL_PERM };

struct example {
    char output[EXAMPLE_VALUE_MAX];
    char sender[EXAMPLE_VALUE_MAX];
    enum example_fail fail;
};

/* JSON string escaping of s into out; 0, or -1 when out is too small. */
static int json_escape(char *out, size_t outsz, const char *s)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        size_t n;
        if (*p == '"' || *p == '\\')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
        else
            n = (size_t)snprintf(tmp, sizeof(tmp), "%c", *p);
        if (o + n + 1 > outsz)
            return -1;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

static void *example_init(const struct sealpost_relay_kv *kv, size_t nkv, char *err, size_t errsz)
{
    struct example *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        if (strlen(v) >= EXAMPLE_VALUE_MAX) {
            snprintf(err, errsz, "%s: value too long", k);
            free(x);
            return NULL;
        }
        if (strcmp(k, "output") == 0) {
            snprintf(x->output, sizeof(x->output), "%s", v);
        } else if (strcmp(k, "sender") == 0) {
            snprintf(x->sender, sizeof(x->sender), "%s", v);
        } else if (strcmp(k, "fail") == 0) {
            if (strcmp(v, "no") == 0)
                x->fail = FAIL_NO;
            else if (strcmp(v, "temp") == 0)
                x->fail = FAIL_TEMP;
            else if (strcmp(v, "perm") == 0)
                x->fail = FAIL_PERM;
            else {
                snprintf(err, errsz, "fail must be no, temp or perm");
                free(x);
                return NULL;
            }
        } else {
            snprintf(err, errsz, "unknown key '%s' (output, fail, sender)", k);
            free(x);
            return NULL;
        }
    }
    if (x->output[0] != '/') {
        snprintf(err, errsz, "output (an absolute path) is required");
        free(x);
        return NULL;
    }
    return x;
}

static int example_send(void *ctx, const struct sealpost_relay_msg *msg,
                        struct sealpost_relay_result *res)
{
    struct example *x = ctx;
    if (x->fail == FAIL_TEMP) {
        snprintf(res->error, sizeof(res->error), "example: configured to fail (temp)");
        return SEALPOST_RELAY_TEMPFAIL;
    }
    if (x->fail == FAIL_PERM) {
        snprintf(res->error, sizeof(res->error), "example: configured to refuse (perm)");
        return SEALPOST_RELAY_PERMFAIL;
    }
    char to[64], text[EXAMPLE_VALUE_MAX], id[128], sender[EXAMPLE_VALUE_MAX * 2];
    if (json_escape(to, sizeof(to), msg->to) < 0 ||
        json_escape(text, sizeof(text), msg->text) < 0 ||
        json_escape(id, sizeof(id), msg->id) < 0 ||
        json_escape(sender, sizeof(sender), x->sender) < 0) {
        snprintf(res->error, sizeof(res->error), "example: message too long");
        return SEALPOST_RELAY_PERMFAIL;
    }
    char line[EXAMPLE_LINE_MAX];
    int n = snprintf(line, sizeof(line),
                     "{\"plugin\":\"example\",\"id\":\"%s\",\"to\":\"%s\",\"text\":\"%s\","
                     "\"sender\":\"%s\"}\n",
                     id, to, text, sender);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        snprintf(res->error, sizeof(res->error), "example: line too long");
        return SEALPOST_RELAY_PERMFAIL;
    }
    int fd = open(x->output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(res->error, sizeof(res->error), "example: %s", strerror(errno));
        return SEALPOST_RELAY_TEMPFAIL;
    }
    ssize_t w = write(fd, line, (size_t)n);
    int saved = errno;
    close(fd);
    memset(line, 0, sizeof(line)); /* it held the code */
    memset(text, 0, sizeof(text));
    if (w != n) {
        snprintf(res->error, sizeof(res->error), "example: %s",
                 w < 0 ? strerror(saved) : "short write");
        return SEALPOST_RELAY_TEMPFAIL;
    }
    snprintf(res->ref, sizeof(res->ref), "example-%s", msg->id);
    return SEALPOST_RELAY_SENT;
}

static void example_free(void *ctx)
{
    free(ctx);
}

/* The one exported symbol (visibility default even with -fvisibility=hidden). */
__attribute__((visibility("default"))) const struct sealpost_relay_plugin sealpost_relay_v1 = {
    .abi_major = SEALPOST_RELAY_ABI_MAJOR,
    .abi_minor = SEALPOST_RELAY_ABI_MINOR,
    .struct_size = sizeof(struct sealpost_relay_plugin),
    .name = "example",
    .flags = SEALPOST_RELAY_THREADSAFE,
    .init = example_init,
    .send = example_send,
    .free = example_free,
};
