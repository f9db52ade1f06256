/*
 * cli_util — helpers shared by the subcommands (see cli.h): config loading
 * with file:line errors, secret input, option scanning.
 */
#include "cli/cli.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Longest secret (password, recovery code) read from a terminal or stdin. */
#define CLI_SECRET_MAX 1024

struct config *cli_config(struct cli *c)
{
    if (c->cfg)
        return c->cfg;
    struct diag d = {0};
    if (config_load(c->config_path, &c->cfg, &d) < 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.msgs[i]);
        if (d.n == 0)
            fprintf(stderr, "%s: cannot load config\n", c->config_path);
        diag_free(&d);
        return NULL;
    }
    diag_free(&d);
    return c->cfg;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("sealpost: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERR;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("sealpost: usage: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_USAGE;
}

char *cli_secret_read(struct cli *c, const char *prompt)
{
    char *s = sodium_malloc(CLI_SECRET_MAX + 2);
    if (s == NULL) {
        cli_fail("cannot allocate secure memory");
        return NULL;
    }
    FILE *in = stdin;
    FILE *tty = NULL;
    struct termios old, quiet;
    bool echo_off = false;
    if (!c->password_stdin) {
        tty = fopen("/dev/tty", "r+");
        if (tty == NULL) {
            sodium_free(s);
            cli_fail("no terminal to read the secret from (use --password-stdin)");
            return NULL;
        }
        in = tty;
        fputs(prompt, tty);
        fflush(tty);
        if (tcgetattr(fileno(tty), &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
        }
    }
    /* Read byte by byte so nothing after the line stays in a stdio buffer. */
    size_t n = 0;
    int ch = EOF;
    bool too_long = false;
    while ((ch = getc(in)) != EOF && ch != '\n') {
        if (n < CLI_SECRET_MAX)
            s[n++] = (char)ch;
        else
            too_long = true;
    }
    if (n > 0 && s[n - 1] == '\r')
        n--;
    s[n] = '\0';
    if (tty) {
        if (echo_off)
            tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fputc('\n', tty);
        fclose(tty);
    }
    if (too_long || (n == 0 && ch == EOF)) {
        sodium_free(s);
        cli_fail(too_long ? "secret too long" : "no secret given");
        return NULL;
    }
    return s;
}

void cli_secret_free(char *s)
{
    if (s)
        sodium_free(s); /* sodium_free wipes before freeing */
}

static void remove_args(int *argc, char **argv, int at, int count)
{
    for (int i = at; i + count <= *argc; i++)
        argv[i] = argv[i + count];
    *argc -= count;
}

const char *cli_opt_value(int *argc, char **argv, const char *name)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], name) == 0 && i + 1 < *argc) {
            const char *v = argv[i + 1];
            remove_args(argc, argv, i, 2);
            return v;
        }
        size_t len = strlen(name);
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') {
            const char *v = argv[i] + len + 1;
            remove_args(argc, argv, i, 1);
            return v;
        }
    }
    return NULL;
}

bool cli_opt_flag(int *argc, char **argv, const char *name)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            remove_args(argc, argv, i, 1);
            return true;
        }
    }
    return false;
}

const char **cli_opt_values(int *argc, char **argv, const char *name, size_t *n)
{
    const char **v = xcalloc((size_t)*argc + 1, sizeof(*v));
    const char *x;
    *n = 0;
    while ((x = cli_opt_value(argc, argv, name)) != NULL)
        v[(*n)++] = x;
    return v;
}

int cli_no_more_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0)
            return cli_usage("unknown option %s", argv[i]);
    return CLI_OK;
}

#include "lib/db.h"

#include <jansson.h>
#include <sys/stat.h>
#include <time.h>

struct db *cli_db(struct cli *c)
{
    struct config *cfg = cli_config(c);
    if (cfg == NULL)
        return NULL;
    char *path = xasprintf("%s/%s", cfg->data_dir, DB_FILE_NAME);
    struct stat st;
    struct db *db = NULL;
    if (stat(path, &st) < 0)
        cli_fail("data directory %s is not initialised (run: sealpost init)", cfg->data_dir);
    else if (db_open(path, &db) != DB_OK)
        cli_fail("cannot open the store %s", path);
    free(path);
    return db;
}

void cli_json_print(struct json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    fputc('\n', stdout);
    json_decref(v);
}

void cli_time_format(long long t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
