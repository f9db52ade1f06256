/*
 * relay_abi — the ABI of SMS relay plug-ins: a shared object that sealpost
 * loads for a `[relay NAME] driver = plugin` section (sendlink/relay_plugin.c).
 *
 * This header is self-contained (C99 and the C library only) so that a
 * plug-in builds outside the sealpost tree. A plug-in exports one symbol,
 * SEALPOST_RELAY_SYMBOL, a const struct sealpost_relay_plugin:
 *
 *   const struct sealpost_relay_plugin sealpost_relay_v1 = {
 *       .abi_major = SEALPOST_RELAY_ABI_MAJOR,
 *       .abi_minor = SEALPOST_RELAY_ABI_MINOR,
 *       .struct_size = sizeof(struct sealpost_relay_plugin),
 *       .name = "example",
 *       .flags = SEALPOST_RELAY_THREADSAFE,
 *       .init = my_init, .send = my_send, .free = my_free,
 *   };
 *
 * Versioning: sealpost refuses a plug-in whose abi_major differs from its
 * own, or whose struct_size is smaller than the struct of the minor version
 * sealpost was built with. New minor versions only append members, so an
 * older sealpost can load a newer plug-in of the same major (it reads the
 * members it knows), and a newer sealpost checks struct_size before it uses
 * a member a plug-in may not have.
 *
 * Loading: dlopen(path, RTLD_NOW | RTLD_LOCAL) — every symbol is resolved at
 * load, nothing leaks into other plug-ins. The file must be owned by root or
 * by the user sealpost runs as and must not be writable by group or others.
 *
 * Calls: init once per (re)load of the config with the [relay] section's
 * key/value pairs (driver and path excluded); send per SMS; free at
 * unload. Without SEALPOST_RELAY_THREADSAFE sealpost serialises the calls
 * of one relay. send must return within msg->timeout_ms (sealpost cannot
 * interrupt it). Strings are NUL-terminated UTF-8 (SMS texts are ASCII) and
 * valid only during the call. A plug-in never logs the text: it holds a
 * security code.
 */
#ifndef SEALPOST_RELAY_ABI_H
#define SEALPOST_RELAY_ABI_H

#include <stddef.h>
#include <stdint.h>

#define SEALPOST_RELAY_ABI_MAJOR 1
#define SEALPOST_RELAY_ABI_MINOR 0
/* The exported symbol (one per major version). */
#define SEALPOST_RELAY_SYMBOL "sealpost_relay_v1"

/* flags */
#define SEALPOST_RELAY_THREADSAFE 1u /* send may run in several threads at once */

/* send's results. */
#define SEALPOST_RELAY_SENT 0      /* the provider took the SMS */
#define SEALPOST_RELAY_TEMPFAIL 75 /* this route failed now: try the next route (EX_TEMPFAIL) */
#define SEALPOST_RELAY_PERMFAIL 1  /* the SMS itself was refused: no other route is tried */

/* Sizes of the text buffers of a result (the plug-in truncates). */
#define SEALPOST_RELAY_REF_MAX 128
#define SEALPOST_RELAY_ERROR_MAX 256

struct sealpost_relay_kv {
    const char *key;
    const char *value;
};

struct sealpost_relay_msg {
    size_t struct_size;  /* sizeof at the caller's minor version */
    const char *to;      /* E.164: "+41791234567" */
    const char *text;    /* the SMS text, printable ASCII, at most 160 characters */
    const char *id;      /* idempotency key: the same SMS is never sent twice under one id */
    unsigned timeout_ms; /* the route's timeout */
};

struct sealpost_relay_result {
    char ref[SEALPOST_RELAY_REF_MAX];     /* the provider's message id, or "" */
    char error[SEALPOST_RELAY_ERROR_MAX]; /* why it failed (no secrets), or "" */
};

struct sealpost_relay_plugin {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t struct_size; /* sizeof(struct sealpost_relay_plugin) of the plug-in */
    const char *name;   /* short name for logs */
    uint32_t flags;     /* SEALPOST_RELAY_THREADSAFE */
    /*
     * Reads its settings; returns its context (non-NULL), or NULL with a
     * one-line reason in err (errsz bytes, NUL-terminated).
     */
    void *(*init)(const struct sealpost_relay_kv *kv, size_t nkv, char *err, size_t errsz);
    /* One SMS: SEALPOST_RELAY_SENT, _TEMPFAIL or _PERMFAIL; res is zeroed by the caller. */
    int (*send)(void *ctx, const struct sealpost_relay_msg *msg, struct sealpost_relay_result *res);
    void (*free)(void *ctx);
};

#endif
