/*
 * cli — the `sealpost` command: shared state of one invocation and the
 * helpers every subcommand uses (config loading, secrets from the terminal
 * or stdin, JSON output, exit codes).
 *
 * Exit codes (DESIGN.md): 0 success, 1 user error with a one-line message
 * on stderr, 2 usage error. `deliver` uses sysexits.h instead.
 */
#ifndef SEALPOST_CLI_H
#define SEALPOST_CLI_H

#include "policy/config.h"

#include <stdbool.h>
#include <stddef.h>

#define CLI_OK 0
#define CLI_ERR 1
#define CLI_USAGE 2

struct cli {
    const char *prog;
    const char *config_path;
    struct config *cfg; /* loaded by cli_config() */
    bool json;
    bool password_stdin;
};

/* Loads the config once; prints file:line problems and returns NULL on error. */
struct config *cli_config(struct cli *c);

/* One-line error on stderr ("sealpost: …"); returns CLI_ERR. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Reads one secret: from stdin (one line) with --password-stdin, else from
 * the terminal without echo, after printing prompt. Returns a
 * sodium_malloc'd NUL-terminated string to free with cli_secret_free, or
 * NULL (message printed).
 */
char *cli_secret_read(struct cli *c, const char *prompt);
void cli_secret_free(char *s);

/* Option scanning: removes recognised "--name value"/"--flag" from argv. */
const char *cli_opt_value(int *argc, char **argv, const char *name);
bool cli_opt_flag(int *argc, char **argv, const char *name);
/* All values of a repeatable option, e.g. --to A --to B (NULL-terminated, malloc'd). */
const char **cli_opt_values(int *argc, char **argv, const char *name, size_t *n);
/* After options were taken out: fails on any leftover "--x". */
int cli_no_more_options(int argc, char **argv);

/* Opens the store of the configured data dir; NULL (message printed) if
 * the config is bad or the data dir was never initialised. */
struct db *cli_db(struct cli *c);
/* Prints a JSON value on stdout (indented) and frees it. */
struct json_t;
void cli_json_print(struct json_t *v);
/* RFC 3339 UTC time for listings. */
void cli_time_format(long long t, char *out, size_t outsz);

typedef int (*cli_fn)(struct cli *c, int argc, char **argv);

/* Subcommands (one file each under cli/). argv[0] is the (sub)command word. */
int cmd_init(struct cli *c, int argc, char **argv);
int cmd_check_config(struct cli *c, int argc, char **argv);
int cmd_user(struct cli *c, int argc, char **argv);
int cmd_vault(struct cli *c, int argc, char **argv);
int cmd_deliver(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_apikey(struct cli *c, int argc, char **argv);
int cmd_send(struct cli *c, int argc, char **argv);
int cmd_queue(struct cli *c, int argc, char **argv);
int cmd_dkim(struct cli *c, int argc, char **argv);
int cmd_sms(struct cli *c, int argc, char **argv);

/* serve: confines file writes to [server] data_dir (cli_sandbox.c). 0 or -1. */
int serve_confine(const struct config *cfg);

#endif
