/*
 * sealpost — the command line: `sealpost [-c CONFIG] COMMAND …`.
 *
 * Finds the config (-c, $SEALPOST_CONFIG, /etc/sealpost/sealpost.conf,
 * ./etc/sealpost.conf), initialises libsodium and GMime once before any
 * thread exists, and dispatches through one command table. Nothing in the
 * other parts depends on this folder.
 */
#include "cli/cli.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mime/mime.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct command {
    const char *name;
    cli_fn fn;
    const char *usage;
};

static const struct command commands[] = {
    {"init", cmd_init, "init"},
    {"check-config", cmd_check_config, "check-config"},
    {"user", cmd_user,
     "user add NAME --email E [--phone P] [--plan P] | list | show NAME | disable NAME |\n"
     "       enable NAME | passwd NAME [--recovery-code] | address add NAME |\n"
     "       address remove ADDRESS"},
    {"vault", cmd_vault, "vault list NAME | vault get NAME ITEM [--out DIR]"},
    {"deliver", cmd_deliver, "deliver --to ADDRESS [--to ADDRESS …] < message.eml"},
    {"serve", cmd_serve, "serve"},
    {"queue", cmd_queue, "queue list | queue flush"},
    {"dkim", cmd_dkim, "dkim keygen [--selector S] [--force] | dkim record"},
    {"sms", cmd_sms, "sms test NUMBER"},
    {"apikey", cmd_apikey, "apikey create NAME [--label TEXT] | apikey list | apikey revoke ID"},
    {"send", cmd_send,
     "send create --file F --to EMAIL [--phone P] [--message TEXT] [--expires D]\n"
     "       [--max-downloads N] [--protect none|code|mtan] [--code C] [--lang L] [--user NAME]\n"
     "       | send list [--user NAME] | send revoke ID"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sealpost [-c CONFIG] [--json] [--password-stdin] COMMAND …\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %s\n", commands[i].usage);
}

static const char *default_config_path(void)
{
    const char *env = getenv("SEALPOST_CONFIG");
    if (env && *env)
        return env;
    if (access("/etc/sealpost/sealpost.conf", F_OK) == 0)
        return "/etc/sealpost/sealpost.conf";
    return "./etc/sealpost.conf";
}

/* OpenSSL's allocator (CRYPTO_set_mem_functions): ours, which aborts
 * when memory runs out. A size of 0 means what it means to OpenSSL's
 * own: malloc gives NULL, realloc frees. */
static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return n ? xmalloc(n) : NULL;
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    if (n == 0) {
        free(p);
        return NULL;
    }
    return xrealloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    free(p);
}

int main(int argc, char **argv)
{
    /* A MIME parser child is this program started again: it leaves here. */
    mime_child_entry(argc, argv);

    struct cli c = {.prog = "sealpost"};
    int i = 1;

    /* Global options come before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (++i >= argc)
                return cli_usage("-c needs a file");
            c.config_path = argv[i];
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--password-stdin") == 0) {
            c.password_stdin = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return CLI_OK;
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (c.config_path == NULL)
        c.config_path = default_config_path();

    log_open("sealpost", 1, 0);
    /* Out of memory has one exit (xmalloc aborts), for jansson too: a NULL
     * from json_pack would otherwise silently drop a record's entry (a fault
     * walk found the metadata losing its "original" part that way). */
    json_set_alloc_funcs(xmalloc, free);
    /* And for OpenSSL: an allocation failing deep in an RSA signature left
     * a half-built key that dkim_free then crashed on (SIGSEGV in
     * BN_MONT_CTX_free; a malloc walk of `send create`). Must come before
     * OpenSSL's first allocation. */
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
        msg_warn("-: OpenSSL allocated before its allocator could be set");
    if (sodium_init() < 0)
        msg_fatal("libsodium initialisation failed");
    mime_global_init();

    /* --json and --password-stdin may also follow the command words. */
    int n = i + 1;
    for (int k = i + 1; k < argc; k++) {
        if (strcmp(argv[k], "--json") == 0)
            c.json = true;
        else if (strcmp(argv[k], "--password-stdin") == 0)
            c.password_stdin = true;
        else
            argv[n++] = argv[k];
    }
    argc = n;
    argv[argc] = NULL;

    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(argv[i], commands[k].name) == 0) {
            int rc = commands[k].fn(&c, argc - i, argv + i);
            if (c.cfg)
                config_unref(c.cfg);
            /* Output that did not reach its file (a full disk, a closed
             * pipe) fails the command: an API key or a link shown only
             * once must not be lost behind exit 0. */
            errno = 0;
            if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "sealpost: %s: the output could not be written%s%s\n", argv[i],
                        errno ? ": " : "", errno ? strerror(errno) : "");
                if (rc == CLI_OK)
                    rc = CLI_ERR;
            }
            return rc;
        }
    }
    fprintf(stderr, "sealpost: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return CLI_USAGE;
}
