/*
 * test_config — policy/config: the config language, the key table, the
 * cross-checks and check-config.
 *
 * Every test writes its files into a fresh mkdtemp directory and removes it
 * afterwards. Error cases are a table: config text in, the exact first
 * "file:line: message" out (the temp directory is stripped from messages so
 * that they read "main.conf:3: ...").
 */
#include "cli/cli.h"
#include "lib/xalloc.h"
#include "policy/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

/* ------------------------------------------------------------ helpers */

static char tmp[PATH_MAX];      /* as created */
static char tmp_real[PATH_MAX]; /* realpath: what the loader makes absolute */

static int tmp_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/sealpost-config-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmp) == NULL || realpath(tmp, tmp_real) == NULL)
        return -1;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int tmp_teardown(void **state)
{
    (void)state;
    return nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_path(const char *name)
{
    return xasprintf("%s/%s", tmp, name);
}

/* Writes len bytes (or strlen) to tmp/name, creating parent folders. */
static void write_bytes(const char *name, const char *text, size_t len)
{
    char *path = tmp_path(name);
    for (char *p = path + strlen(tmp) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
        fail_msg("cannot write %s", path);
    free(path);
}

static void write_text(const char *name, const char *text)
{
    write_bytes(name, text, strlen(text));
}

/* Copy of msg with the temp directory prefixes removed. */
static char *strip(const char *msg)
{
    char *out = xstrdup(msg);
    const char *dirs[] = {tmp_real, tmp};
    for (size_t i = 0; i < N(dirs); i++) {
        char *pre = xasprintf("%s/", dirs[i]);
        size_t pl = strlen(pre);
        char *p;
        while ((p = strstr(out, pre)) != NULL)
            memmove(p, p + pl, strlen(p + pl) + 1);
        free(pre);
    }
    return out;
}

static int load_file_named(const char *name, struct config **c, struct diag *d)
{
    char *path = tmp_path(name);
    int rc = config_load(path, c, d);
    free(path);
    return rc;
}

/* Loads text as main.conf; on failure returns -1 and *c stays NULL. */
static int load_text(const char *text, struct config **c, struct diag *d)
{
    write_text("main.conf", text);
    return load_file_named("main.conf", c, d);
}

static void print_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_error("  %s\n", d->msgs[i]);
}

/* Loads text and fails the test unless it is valid. */
static struct config *load_ok(const char *text)
{
    struct config *c = NULL;
    struct diag d = {0};
    if (load_text(text, &c, &d) != 0 || c == NULL) {
        print_diag(&d);
        diag_free(&d);
        fail_msg("config did not load");
    }
    if (d.n != 0) {
        print_diag(&d);
        fail_msg("config loaded with %zu problems", d.n);
    }
    diag_free(&d);
    return c;
}

/* Loads name (already written) and returns the first problem, stripped. */
static char *first_problem_of(const char *name, size_t *count)
{
    struct config *c = NULL;
    struct diag d = {0};
    int rc = load_file_named(name, &c, &d);
    if (rc == 0 || c != NULL || d.n == 0) {
        config_unref(c);
        diag_free(&d);
        return NULL;
    }
    char *m = strip(d.msgs[0]);
    if (count)
        *count = d.n;
    diag_free(&d);
    return m;
}

static void expect_problem(const char *name, const char *want)
{
    char *got = first_problem_of(name, NULL);
    if (got == NULL)
        fail_msg("%s: got no problem, want \"%s\"", name, want);
    if (strcmp(got, want) != 0) {
        print_error("got  \"%s\"\nwant \"%s\"\n", got, want);
        free(got);
        fail();
    }
    free(got);
}

/* ------------------------------------------------------------ errors */

struct err_case {
    const char *text;
    const char *want; /* first problem */
};

static const struct err_case err_cases[] = {
    /* syntax */
    {"hello\n", "main.conf:1: expected 'key = value'"},
    {"[server]\nhostname localhost\n", "main.conf:2: expected 'key = value'"},
    {"[server]\n= x\n", "main.conf:2: expected 'key = value'"},
    {"foo = 1\n", "main.conf:1: key 'foo' outside a section"},
    {"[nope]\n", "main.conf:1: unknown section [nope]"},
    {"[Server]\n", "main.conf:1: unknown section [Server]"},
    {"[server\n", "main.conf:1: section header without ']'"},
    {"[server] x\n", "main.conf:1: text after section header"},
    {"[]\n", "main.conf:1: empty section header"},
    {"[server main]\n", "main.conf:1: section [server] takes no name"},
    {"[plan]\n", "main.conf:1: section [plan] needs one name: [plan NAME]"},
    {"[relay a b]\n", "main.conf:1: section [relay] needs one name: [relay NAME]"},
    {"[plan b@d]\n", "main.conf:1: [plan b@d]: not a valid name (letters, digits, '.', '_', '-')"},
    {"[server]\nfoo = 1\n", "main.conf:2: unknown key 'foo' in [server]"},
    {"[server]\nHostname = x\n", "main.conf:2: unknown key 'Hostname' in [server]"},
    {"[tls]\ndomains = x\n", "main.conf:2: unknown key 'domains' in [tls]"},
    {"[plan x]\nfoo = 1\n", "main.conf:2: unknown key 'foo' in [plan x]"},
    {"[server]\nworkers = 1\nworkers = 2\n",
     "main.conf:3: duplicate key 'workers' (first set at main.conf:2)"},
    {"[server]\nworkers = 1\n[mailin]\n[server]\nworkers = 2\n",
     "main.conf:5: duplicate key 'workers' (first set at main.conf:2)"},
    {"[plan p]\ncode = no\n[plan p]\ncode = yes\n",
     "main.conf:4: duplicate key 'code' (first set at main.conf:2)"},
    {"[sendlink]\nsms_template = \"abc {code}\n", "main.conf:2: unterminated quoted value"},
    {"[sendlink]\nsms_template = \"x {code}\" y\n", "main.conf:2: text after quoted value"},
    /* value types */
    {"[mailin]\nmessage_size_limit = 50X\n",
     "main.conf:2: message_size_limit: bad size '50X' (e.g. 512, 10K, 50M, 2G)"},
    {"[mailin]\nmessage_size_limit = -5M\n",
     "main.conf:2: message_size_limit: bad size '-5M' (e.g. 512, 10K, 50M, 2G)"},
    {"[mailin]\ndns_timeout = 5 s\n",
     "main.conf:2: dns_timeout: bad duration '5 s' (e.g. 30s, 10m, 24h, 7d)"},
    {"[mailin]\ndns_timeout = 1.5s\n",
     "main.conf:2: dns_timeout: bad duration '1.5s' (e.g. 30s, 10m, 24h, 7d)"},
    {"[mailin]\nspf = maybe\n", "main.conf:2: spf: bad boolean 'maybe' (yes or no)"},
    {"[mailin]\nmax_recipients = -1\n", "main.conf:2: max_recipients: bad number '-1'"},
    {"[mailin]\nmax_recipients = 10K\n", "main.conf:2: max_recipients: bad number '10K'"},
    {"[mailin]\nmax_recipients = 99999999999999999999\n",
     "main.conf:2: max_recipients: bad number '99999999999999999999'"},
    {"[mailin]\nspf =\n", "main.conf:2: spf: empty value"},
    {"[mailin]\nmax_errors = # nothing\n", "main.conf:2: max_errors: empty value"},
    {"[server]\ndata_dir =\n", "main.conf:2: data_dir: empty value"},
    {"[server]\nsmtp_listen =\n", "main.conf:2: smtp_listen: empty value"},
    {"[server]\nkdf = fast\n",
     "main.conf:2: kdf: 'fast' is not one of interactive, moderate, sensitive"},
    {"[server]\nsmtp_listen = 127.0.0.1\n", "main.conf:2: smtp_listen: '127.0.0.1': not host:port"},
    {"[server]\nsmtp_listen = ::1:25\n", "main.conf:2: smtp_listen: '::1:25': not host:port"},
    {"[server]\nhttp_listen = 127.0.0.1:0\n",
     "main.conf:2: http_listen: '127.0.0.1:0': port must be 1 to 65535"},
    {"[outbound]\nrelayhost = [::1]:65536\n",
     "main.conf:2: relayhost: '[::1]:65536': port must be 1 to 65535"},
    {"[server]\nhostname = bad host\n", "main.conf:2: hostname: 'bad host': not a valid host name"},
    {"[server]\nhostname = -x.example\n",
     "main.conf:2: hostname: '-x.example': not a valid host name"},
    {"[server]\npublic_url = ftp://x\n",
     "main.conf:2: public_url: 'ftp://x': must start with http:// or https://"},
    {"[server]\npublic_url = https://\n", "main.conf:2: public_url: 'https://': has no host"},
    {"[server]\nuser = root user\n",
     "main.conf:2: user: 'root user': not a valid user name (letters, digits, '.', '_', '-')"},
    {"[mailin]\npostmaster = a/b\n",
     "main.conf:2: postmaster: 'a/b': not a valid user name (letters, digits, '.', '_', '-')"},
    {"[outbound]\nfrom = nobody\n", "main.conf:2: from: 'nobody': not an address (local@domain)"},
    {"[outbound]\nfrom = a b@example.org\n",
     "main.conf:2: from: 'a b@example.org': not an address (local@domain)"},
    {"[sendlink]\nsms_template = hello\n",
     "main.conf:2: sms_template: 'hello': must contain {code}"},
    {"[sendlink]\nsms_template =\n", "main.conf:2: sms_template: empty value"},
    /* bounds */
    {"[sendlink]\nmtan_ttl = 15m\n", "main.conf:2: mtan_ttl: 15m is above the maximum 10m"},
    {"[sendlink]\nmtan_ttl = 0s\n", "main.conf:2: mtan_ttl: 0s is below the minimum 1s"},
    {"[sendlink]\ncode_length = 3\n", "main.conf:2: code_length: 3 is below the minimum 4"},
    {"[sendlink]\ncode_length = 13\n", "main.conf:2: code_length: 13 is above the maximum 12"},
    {"[sendlink]\nmtan_length = 5\n", "main.conf:2: mtan_length: 5 is below the minimum 6"},
    {"[sendlink]\nmtan_length = 9\n", "main.conf:2: mtan_length: 9 is above the maximum 8"},
    {"[sendlink]\ncode_max_attempts = 100\n",
     "main.conf:2: code_max_attempts: 100 is above the maximum 20"},
    {"[mailin]\nmessage_size_limit = 3G\n",
     "main.conf:2: message_size_limit: 3G is above the maximum 2G"},
    {"[mailin]\nline_length_limit = 100\n",
     "main.conf:2: line_length_limit: 100 is below the minimum 512"},
    {"[server]\nworkers = 5000\n", "main.conf:2: workers: 5000 is above the maximum 1024"},
    {"[plan p]\nmax_file_size = 2T\n", "main.conf:2: max_file_size: 2T is above the maximum 1T"},
    /* lists */
    {"[mailin]\npostmaster = admin\ndomains = a.example, , b.example\n",
     "main.conf:3: domains: empty item in list"},
    {"[mailin]\npostmaster = admin\ndomains = a.example,\n",
     "main.conf:3: domains: empty item in list"},
    {"[mailin]\npostmaster = admin\ndomains = a.example, b!d\n",
     "main.conf:3: domains: 'b!d': not a valid host name"},
    {"[mailin]\ndomains = a.example\n",
     "main.conf:2: domains need [mailin] postmaster (RFC 5321 4.5.1)"},
    {"[mailin]\npostmaster = admin\ndomains = a.example, A.Example\n",
     "main.conf:3: domains: 'A.Example' listed twice"},
    /* cross-checks: the line of the key that was set */
    {"[sendlink]\ndefault_expiry = 60d\n",
     "main.conf:2: default_expiry (60d) must not be larger than max_expiry (30d)"},
    {"[sendlink]\nmax_expiry = 2d\n",
     "main.conf:2: default_expiry (7d) must not be larger than max_expiry (2d)"},
    {"[sendlink]\nmax_expiry = 2d\ndefault_expiry = 3d\n",
     "main.conf:3: default_expiry (3d) must not be larger than max_expiry (2d)"},
    {"[mailin]\nparser_cpu_limit = 2m\n",
     "main.conf:2: parser_cpu_limit (2m) must not be larger than parser_timeout (1m)"},
    {"[mailin]\nmessage_size_limit = 512K\n",
     "main.conf:2: header_size_limit (1M) must not be larger than message_size_limit (512K)"},
    {"[mailin]\n\nmax_connections = 10\n",
     "main.conf:3: max_connections_per_ip (50) must not be larger than max_connections (10)"},
    {"[mailin]\ndata_line_length_limit = 1000\nline_length_limit = 2K\n",
     "main.conf:3: line_length_limit (2K) must not be larger than data_line_length_limit (1000)"},
    {"[mailin]\nsession_deadline = 2m\n",
     "main.conf:2: command_timeout (5m) must not be larger than session_deadline (2m)"},
    {"[outbound]\nretry_min = 2h\n",
     "main.conf:2: retry_min (2h) must not be larger than retry_max (1h)"},
    {"[outbound]\nmax_queue_age = 1h\nretry_max = 2h\n",
     "main.conf:3: retry_max (2h) must not be larger than max_queue_age (1h)"},
    /* tls */
    {"[tls]\n", "main.conf:1: [tls] needs cert"},
    {"\n[tls]\ncert = /dev/null\n", "main.conf:3: cert: '/dev/null': not a regular file"},
    {"[tls]\ncert = nope.pem\nkey = nope.key\n",
     "main.conf:2: cert: 'nope.pem': No such file or directory"},
    /* relays, routes, plans */
    {"[relay a]\nurl = x\n",
     "main.conf:1: [relay a] needs a driver (http, exec, smtp, file or plugin)"},
    {"[relay a]\ndriver = smpp\n",
     "main.conf:2: driver: 'smpp' is not one of http, exec, smtp, file, plugin"},
    {"[relay a]\ndriver = http\ndriver = exec\n",
     "main.conf:3: duplicate key 'driver' (first set at main.conf:2)"},
    {"[relay a]\ndriver = http\nurl = x\nurl = y\n",
     "main.conf:4: duplicate key 'url' (first set at main.conf:3)"},
    {"[sms]\nroutes = a\n", "main.conf:2: routes: no [relay a]"},
    {"[relay a]\ndriver = file\n[sms]\nroutes = a, a\n", "main.conf:4: routes: 'a' listed twice"},
    {"[sms]\nroutes = a b\n",
     "main.conf:2: routes: 'a b': not a valid name (letters, digits, '.', '_', '-')"},
    {"[plan p]\nmtan = yes\n", "main.conf:2: [plan p] mtan = yes needs [sms] routes"},
    {"[plan default]\n\nmtan = yes\n", "main.conf:3: [plan default] mtan = yes needs [sms] routes"},
    {"[server]\ndefault_plan = gold\n", "main.conf:2: default_plan: no plan named 'gold'"},
    {"[server]\ndefault_plan = free\n[plan Free]\n",
     "main.conf:2: default_plan: no plan named 'free'"},
    /* includes */
    {"include = nope.conf\n", "main.conf:1: include 'nope.conf': No such file or directory"},
    {"include =\n", "main.conf:1: include: empty value"},
    {"include = main.conf\n", "main.conf:1: include loop: 'main.conf' is already being read"},
};

static void test_errors(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < N(err_cases); i++) {
        write_text("main.conf", err_cases[i].text);
        char *got = first_problem_of("main.conf", NULL);
        if (got == NULL || strcmp(got, err_cases[i].want) != 0) {
            print_error("case %zu:\n%s  got  \"%s\"\n  want \"%s\"\n", i, err_cases[i].text,
                        got ? got : "(no problem: config loaded)", err_cases[i].want);
            bad++;
        }
        free(got);
    }
    assert_int_equal(bad, 0);
}

/* The loader goes on after an error and reports every problem, in order. */
static void test_collects_all(void **state)
{
    (void)state;
    write_text("main.conf", "[server]\n"
                            "workers = many\n"
                            "[bogus]\n"
                            "ignored = because the section is bad\n"
                            "[mailin]\n"
                            "spf = perhaps\n"
                            "nokey = 1\n"
                            "[sendlink]\n"
                            "mtan_ttl = 1h\n");
    static const char *const want[] = {
        "main.conf:2: workers: bad number 'many'",
        "main.conf:3: unknown section [bogus]",
        "main.conf:6: spf: bad boolean 'perhaps' (yes or no)",
        "main.conf:7: unknown key 'nokey' in [mailin]",
        "main.conf:9: mtan_ttl: 1h is above the maximum 10m",
    };
    struct config *c = NULL;
    struct diag d = {0};
    assert_int_equal(load_file_named("main.conf", &c, &d), -1);
    assert_null(c);
    if (d.n != N(want)) {
        print_diag(&d);
        fail_msg("got %zu problems, want %zu", d.n, N(want));
    }
    for (size_t i = 0; i < N(want); i++) {
        char *got = strip(d.msgs[i]);
        if (strcmp(got, want[i]) != 0)
            fail_msg("problem %zu: got \"%s\", want \"%s\"", i, got, want[i]);
        free(got);
    }
    diag_free(&d);
}

static void test_too_many_problems(void **state)
{
    (void)state;
    char *text = xstrdup("[server]\n");
    for (int i = 0; i < CONFIG_DIAG_MAX + 20; i++) {
        char *t = xasprintf("%snokey%d = 1\n", text, i);
        free(text);
        text = t;
    }
    write_text("main.conf", text);
    free(text);
    struct config *c = NULL;
    struct diag d = {0};
    assert_int_equal(load_file_named("main.conf", &c, &d), -1);
    assert_int_equal(d.n, CONFIG_DIAG_MAX + 1);
    char *last = strip(d.msgs[d.n - 1]);
    char want[128];
    snprintf(want, sizeof(want), "main.conf: too many problems, only the first %d are shown",
             CONFIG_DIAG_MAX);
    assert_string_equal(last, want);
    free(last);
    diag_free(&d);
}

static void test_line_limits(void **state)
{
    (void)state;
    /* A comment of exactly CONFIG_LINE_MAX bytes is fine, one more is not. */
    size_t n = CONFIG_LINE_MAX;
    char *line = xmalloc(n + 2);
    memset(line, 'x', n + 1);
    line[0] = '#';
    line[n] = '\0';
    char *text = xasprintf("[server]\n%s\r\nworkers = 2\n", line);
    struct config *c = load_ok(text);
    assert_int_equal(c->workers, 2);
    config_unref(c);
    free(text);

    line[n] = 'x';
    line[n + 1] = '\0';
    text = xasprintf("[server]\n%s\nworkers = 2\n", line);
    write_text("main.conf", text);
    char want[128];
    snprintf(want, sizeof(want), "main.conf:2: line too long (%d bytes, max %d)",
             CONFIG_LINE_MAX + 1, CONFIG_LINE_MAX);
    expect_problem("main.conf", want);
    free(text);
    free(line);

    static const char nul[] = "[server]\nwor\0kers = 1\n";
    write_bytes("main.conf", nul, sizeof(nul) - 1);
    expect_problem("main.conf", "main.conf:2: NUL byte in line");

    /* A file larger than CONFIG_FILE_MAX is refused, not read in part. */
    size_t big = CONFIG_FILE_MAX + 1;
    char *huge = xmalloc(big);
    memset(huge, '\n', big);
    write_bytes("main.conf", huge, big);
    free(huge);
    expect_problem("main.conf", "main.conf: cannot read: file too big (max 1M)");

    expect_problem("missing.conf", "missing.conf: cannot read: No such file or directory");
}

/* ------------------------------------------------------------ good configs */

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = load_ok("# nothing but defaults\n\n");
    char host[256] = "";
    gethostname(host, sizeof(host));
    assert_non_null(c->hostname);
    if (host[0] && strcmp(c->hostname, host) != 0 && strcmp(c->hostname, "localhost") != 0)
        fail_msg("hostname: got %s, want %s (or localhost)", c->hostname, host);
    assert_string_equal(c->data_dir, "/var/lib/sealpost");
    assert_string_equal(c->smtp_listen, "0.0.0.0:25");
    assert_string_equal(c->http_listen, "127.0.0.1:8080");
    char *url = xasprintf("https://%s", c->hostname);
    assert_string_equal(c->public_url, url);
    free(url);
    assert_null(c->user);
    assert_null(c->default_plan);
    assert_string_equal(c->kdf, "interactive");
    assert_false(c->log_syslog);
    assert_int_equal(c->workers, 0);
    assert_false(c->tls_enabled);
    assert_null(c->tls_cert);
    assert_null(c->tls_key);

    assert_int_equal(c->domains.n, 0);
    assert_int_equal(c->message_size_limit, 50 * MIB);
    assert_int_equal(c->max_recipients, 100);
    assert_null(c->postmaster);
    assert_true(c->dkim_verify);
    assert_true(c->spf);
    assert_int_equal(c->dns_timeout, 5);
    assert_int_equal(c->parser_memory_limit, 512 * MIB);
    assert_int_equal(c->parser_cpu_limit, 30);
    assert_int_equal(c->parser_timeout, 60);
    assert_int_equal(c->mime_max_parts, 1000);
    assert_int_equal(c->mime_max_depth, 20);
    assert_int_equal(c->header_size_limit, 1 * MIB);
    assert_int_equal(c->line_length_limit, 1000);
    assert_int_equal(c->data_line_length_limit, 16 * KIB);
    assert_int_equal(c->command_timeout, 300);
    assert_int_equal(c->data_timeout, 600);
    assert_int_equal(c->session_deadline, 1800);
    assert_int_equal(c->min_data_rate, 512);
    assert_int_equal(c->greet_pause, 0);
    assert_int_equal(c->max_errors, 10);
    assert_int_equal(c->max_connections, 2000);
    assert_int_equal(c->max_connections_per_ip, 50);

    assert_string_equal(c->relayhost, "127.0.0.1:25");
    char *from = xasprintf("sealpost@%s", c->hostname);
    assert_string_equal(c->from, from);
    free(from);
    assert_string_equal(c->dkim_domain, c->hostname);
    assert_string_equal(c->dkim_selector, "sealpost");
    assert_string_equal(c->dkim_key, "/var/lib/sealpost/dkim/sealpost.private");
    assert_int_equal(c->retry_min, 60);
    assert_int_equal(c->retry_max, 3600);
    assert_int_equal(c->max_queue_age, 5 * 86400);

    assert_int_equal(c->default_expiry, 7 * 86400);
    assert_int_equal(c->max_expiry, 30 * 86400);
    assert_int_equal(c->max_downloads, 10);
    assert_int_equal(c->code_length, 8);
    assert_int_equal(c->code_max_attempts, 5);
    assert_int_equal(c->lockout, 3600);
    assert_int_equal(c->mtan_length, 6);
    assert_int_equal(c->mtan_ttl, 600);
    assert_int_equal(c->mtan_max_sends, 3);
    assert_string_equal(c->sms_template, "Your sealpost code: {code}");
    assert_false(c->notify_sender);
    assert_int_equal(c->sms_routes.n, 0);

    assert_int_equal(c->nplans, 1);
    const struct plan *p = config_plan(c, NULL);
    assert_non_null(p);
    assert_ptr_equal(p, config_plan(c, PLAN_BUILTIN_NAME));
    assert_string_equal(p->name, PLAN_BUILTIN_NAME);
    assert_int_equal(p->storage_quota, 1 * GIB);
    assert_int_equal(p->max_file_size, 100 * MIB);
    assert_false(p->mtan);
    assert_true(p->code);
    assert_true(p->choose_expiry);
    assert_int_equal(c->nrelays, 0);
    config_unref(c);
}

struct defaults_text {
    char *global; /* [section] key = def, for every global key with a default */
    char *plan;
    int nkeys;
};

static void collect_default(const char *section, const char *key, const char *def, void *arg)
{
    struct defaults_text *t = arg;
    t->nkeys++;
    if (*def == '\0' || strcmp(section, "relay") == 0)
        return;
    char **dst = strcmp(section, "plan") == 0 ? &t->plan : &t->global;
    char *s = xasprintf("%s[%s]\n%s = %s\n", *dst ? *dst : "", section, key, def);
    free(*dst);
    *dst = s;
}

/* Writing every default explicitly gives the same config as writing none. */
static void test_defaults_table(void **state)
{
    (void)state;
    struct defaults_text t = {0};
    config_defaults_foreach(collect_default, &t);
    assert_true(t.nkeys >= 60);
    char *plan_text = xstrdup(t.plan ? t.plan : "");
    /* Plan keys go into a named plan. */
    for (char *p; (p = strstr(plan_text, "[plan]")) != NULL;) {
        char *s = xasprintf("%.*s[plan x]%s", (int)(p - plan_text), plan_text, p + 6);
        free(plan_text);
        plan_text = s;
    }
    char *text = xasprintf("%s%s", t.global, plan_text);
    struct config *a = load_ok(text);
    struct config *b = load_ok("");
#define SAME(f) assert_true(a->f == b->f)
#define SAME_STR(f) assert_string_equal(a->f, b->f)
    SAME_STR(data_dir);
    SAME_STR(smtp_listen);
    SAME_STR(http_listen);
    SAME_STR(kdf);
    SAME_STR(relayhost);
    SAME_STR(dkim_selector);
    SAME_STR(sms_template);
    SAME(log_syslog);
    SAME(workers);
    SAME(message_size_limit);
    SAME(max_recipients);
    SAME(dkim_verify);
    SAME(spf);
    SAME(dns_timeout);
    SAME(parser_memory_limit);
    SAME(parser_cpu_limit);
    SAME(parser_timeout);
    SAME(mime_max_parts);
    SAME(mime_max_depth);
    SAME(header_size_limit);
    SAME(line_length_limit);
    SAME(data_line_length_limit);
    SAME(command_timeout);
    SAME(data_timeout);
    SAME(session_deadline);
    SAME(min_data_rate);
    SAME(greet_pause);
    SAME(max_errors);
    SAME(max_connections);
    SAME(max_connections_per_ip);
    SAME(retry_min);
    SAME(retry_max);
    SAME(max_queue_age);
    SAME(default_expiry);
    SAME(max_expiry);
    SAME(max_downloads);
    SAME(code_length);
    SAME(code_max_attempts);
    SAME(lockout);
    SAME(mtan_length);
    SAME(mtan_ttl);
    SAME(mtan_max_sends);
    SAME(notify_sender);
#undef SAME
#undef SAME_STR
    const struct plan *px = config_plan(a, "x"), *pd = config_plan(b, PLAN_BUILTIN_NAME);
    assert_non_null(px);
    assert_non_null(pd);
    assert_int_equal(px->storage_quota, pd->storage_quota);
    assert_int_equal(px->max_file_size, pd->max_file_size);
    assert_int_equal(px->mtan, pd->mtan);
    assert_int_equal(px->code, pd->code);
    assert_int_equal(px->choose_expiry, pd->choose_expiry);
    config_unref(a);
    config_unref(b);
    free(text);
    free(plan_text);
    free(t.global);
    free(t.plan);
}

static void test_good_config(void **state)
{
    (void)state;
    write_text("cert.pem", "not really a certificate\n");
    write_text("tls/key.pem", "not really a key\n");
    struct config *c =
        load_ok("# A full config: CRLF, tabs, comments and quotes.\r\n"
                "[server]\r\n"
                "\thostname\t=\tmx1.example.org   # trailing comment\r\n"
                "data_dir = /srv/sealpost\n"
                "smtp_listen = [::1]:2525\n"
                "http_listen = localhost:8080\n"
                "public_url = https://send.example.org/base/#frag/\n"
                "user = sealpost\n"
                "default_plan = pro\n"
                "kdf = moderate\n"
                "log_syslog = on\n"
                "workers = 4\n"
                "  [ tls ]  # STARTTLS on\n"
                "cert = cert.pem\n"
                "key = tls/key.pem\n"
                "[mailin]\n"
                "domains = Mailin.Example.org,  second.example ,third.example\n"
                "postmaster = admin\n"
                "message_size_limit = 20M\n"
                "max_recipients = 7\n"
                "dkim_verify = no\n"
                "spf = false\n"
                "dns_timeout = 2s\n"
                "greet_pause = 3s\n"
                "data_line_length_limit = 64K\n"
                "min_data_rate = 0\n"
                "[outbound]\n"
                "relayhost = 127.0.0.1:2526\n"
                "from = noreply@example.org\n"
                "dkim_key = keys/dkim.pem\n"
                "[sendlink]\n"
                "default_expiry = 2d\n"
                "max_expiry = 1w\n"
                "mtan_ttl = 5m\n"
                "sms_template = \"Code: {code} # not a comment \\\"quoted\\\" \"  # a comment\n"
                "[relay twilio]\n"
                "driver = http\n"
                "url = https://api.example/send#x\n"
                "header.X-Token = \"a # b\"\n"
                "[relay backup]\n"
                "driver = exec\n"
                "command = /bin/true {to}\n"
                "[sms]\n"
                "routes = backup, twilio\n"
                "[plan pro]\n"
                "storage_quota = 0\n"
                "max_file_size = 2G\n"
                "mtan = yes\n"
                "[plan free]\n"
                "choose_expiry = no\n");
    assert_string_equal(c->hostname, "mx1.example.org");
    assert_string_equal(c->data_dir, "/srv/sealpost");
    assert_string_equal(c->smtp_listen, "[::1]:2525");
    assert_string_equal(c->http_listen, "localhost:8080");
    assert_string_equal(c->public_url, "https://send.example.org/base/#frag");
    assert_string_equal(c->user, "sealpost");
    assert_string_equal(c->kdf, "moderate");
    assert_true(c->log_syslog);
    assert_int_equal(c->workers, 4);
    assert_true(c->tls_enabled);
    char *want = xasprintf("%s/cert.pem", tmp_real);
    assert_string_equal(c->tls_cert, want);
    free(want);
    want = xasprintf("%s/tls/key.pem", tmp_real);
    assert_string_equal(c->tls_key, want);
    free(want);

    assert_int_equal(c->domains.n, 3);
    assert_string_equal(c->domains.v[0], "Mailin.Example.org");
    assert_string_equal(c->domains.v[1], "second.example");
    assert_string_equal(c->domains.v[2], "third.example");
    assert_string_equal(c->postmaster, "admin");
    assert_int_equal(c->message_size_limit, 20 * MIB);
    assert_int_equal(c->max_recipients, 7);
    assert_false(c->dkim_verify);
    assert_false(c->spf);
    assert_int_equal(c->dns_timeout, 2);
    assert_int_equal(c->greet_pause, 3);
    assert_int_equal(c->data_line_length_limit, 64 * KIB);
    assert_int_equal(c->min_data_rate, 0);

    assert_string_equal(c->relayhost, "127.0.0.1:2526");
    assert_string_equal(c->from, "noreply@example.org");
    assert_string_equal(c->dkim_domain, "example.org");
    want = xasprintf("%s/keys/dkim.pem", tmp_real);
    assert_string_equal(c->dkim_key, want);
    free(want);

    assert_int_equal(c->default_expiry, 2 * 86400);
    assert_int_equal(c->max_expiry, 7 * 86400);
    assert_int_equal(c->mtan_ttl, 300);
    assert_string_equal(c->sms_template, "Code: {code} # not a comment \"quoted\" ");

    assert_int_equal(c->nrelays, 2);
    assert_string_equal(c->relays[0].name, "twilio");
    assert_string_equal(c->relays[0].driver, "http");
    assert_int_equal(c->relays[0].line, 36);
    assert_int_equal(c->relays[0].nparams, 2);
    assert_string_equal(c->relays[0].params[0].key, "url");
    assert_string_equal(c->relays[0].params[0].value, "https://api.example/send#x");
    assert_int_equal(c->relays[0].params[0].line, 38);
    char *f = strip(c->relays[0].params[0].file);
    assert_string_equal(f, "main.conf");
    free(f);
    assert_string_equal(c->relays[0].params[1].key, "header.X-Token");
    assert_string_equal(c->relays[0].params[1].value, "a # b");
    assert_string_equal(c->relays[1].name, "backup");
    assert_string_equal(c->relays[1].driver, "exec");
    assert_int_equal(c->relays[1].nparams, 1);
    assert_int_equal(c->sms_routes.n, 2);
    assert_string_equal(c->sms_routes.v[0], "backup");
    assert_string_equal(c->sms_routes.v[1], "twilio");

    /* pro, free, and the built-in default */
    assert_int_equal(c->nplans, 3);
    const struct plan *p = config_plan(c, NULL);
    assert_non_null(p);
    assert_string_equal(p->name, "pro");
    assert_int_equal(p->storage_quota, 0);
    assert_int_equal(p->max_file_size, 2 * GIB);
    assert_true(p->mtan);
    assert_true(p->code);
    p = config_plan(c, "free");
    assert_non_null(p);
    assert_false(p->choose_expiry);
    assert_int_equal(p->storage_quota, 1 * GIB);
    assert_non_null(config_plan(c, PLAN_BUILTIN_NAME));
    assert_null(config_plan(c, "gold"));
    assert_null(config_plan(c, "Pro"));

    static const struct {
        const char *domain;
        bool want;
    } dom[] = {
        {"mailin.example.org", true},
        {"MAILIN.EXAMPLE.ORG", true},
        {"mailin.example.org.", true},
        {"Second.Example", true},
        {"example.org", false},
        {"xmailin.example.org", false},
        {"mailin.example.or", false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < N(dom); i++)
        if (config_is_mailin_domain(c, dom[i].domain) != dom[i].want)
            fail_msg("config_is_mailin_domain(%s): got %d, want %d",
                     dom[i].domain ? dom[i].domain : "NULL", !dom[i].want, dom[i].want);
    config_unref(c);
}

static void test_plan_default_override(void **state)
{
    (void)state;
    struct config *c = load_ok("[plan default]\nstorage_quota = 5G\n");
    assert_int_equal(c->nplans, 1);
    const struct plan *p = config_plan(c, NULL);
    assert_non_null(p);
    assert_string_equal(p->name, PLAN_BUILTIN_NAME);
    assert_int_equal(p->storage_quota, 5 * GIB);
    assert_int_equal(p->max_file_size, 100 * MIB);
    config_unref(c);

    c = load_ok("[server]\ndefault_plan = default\n[plan free]\n");
    assert_int_equal(c->nplans, 2);
    assert_string_equal(config_plan(c, NULL)->name, PLAN_BUILTIN_NAME);
    assert_string_equal(config_plan(c, "free")->name, "free");
    config_unref(c);
}

static void test_relative_paths(void **state)
{
    (void)state;
    /* data_dir relative to the main file's folder, even when set in an include. */
    write_text("conf/main.conf", "include = conf.d/*.conf\n[outbound]\ndkim_selector = s1\n");
    write_text("conf/conf.d/paths.conf", "[server]\ndata_dir = ../var/data\n");
    struct config *c = NULL;
    struct diag d = {0};
    if (load_file_named("conf/main.conf", &c, &d) != 0) {
        print_diag(&d);
        fail();
    }
    char *want = xasprintf("%s/conf", tmp_real);
    assert_string_equal(c->dir, want);
    free(want);
    want = xasprintf("%s/conf/../var/data", tmp_real);
    assert_string_equal(c->data_dir, want);
    free(want);
    want = xasprintf("%s/conf/../var/data/dkim/s1.private", tmp_real);
    assert_string_equal(c->dkim_key, want);
    free(want);
    char *path = tmp_path("conf/main.conf");
    assert_string_equal(c->path, path);
    free(path);
    config_unref(c);
    diag_free(&d);

    c = load_ok("[server]\ndata_dir = /abs/data\n[outbound]\ndkim_key = /etc/dkim.pem\n");
    assert_string_equal(c->data_dir, "/abs/data");
    assert_string_equal(c->dkim_key, "/etc/dkim.pem");
    config_unref(c);
}

/* ------------------------------------------------------------ includes */

static void test_include_glob(void **state)
{
    (void)state;
    write_text("main.conf", "[server]\n"
                            "include = conf.d/*.conf   # sorted: a, b\n"
                            "workers = 4\n"
                            "include = empty.d/*.conf\n");
    write_text("conf.d/b.conf", "[mailin]\nmax_recipients = 7\n");
    write_text("conf.d/a.conf", "[plan a]\ninclude = more/x.conf\ncode = no\n");
    write_text("conf.d/more/x.conf", "[sendlink]\nmax_downloads = 3\n");
    write_text("conf.d/ignored.txt", "not = a config\n");
    char *empty = tmp_path("empty.d");
    assert_int_equal(mkdir(empty, 0700), 0);
    free(empty);
    struct config *c = NULL;
    struct diag d = {0};
    if (load_file_named("main.conf", &c, &d) != 0) {
        print_diag(&d);
        fail();
    }
    assert_int_equal(c->workers, 4); /* main goes on in [server] after the include */
    assert_int_equal(c->max_recipients, 7);
    assert_int_equal(c->max_downloads, 3);
    assert_false(config_plan(c, "a")->code); /* a.conf goes on in [plan a] */
    config_unref(c);
    diag_free(&d);

    /* Order: a.conf is read before b.conf, so b.conf holds the duplicate. */
    write_text("conf.d/a.conf", "[server]\nhostname = a.example\n");
    write_text("conf.d/b.conf", "[server]\nhostname = b.example\n");
    write_text("conf.d/more/x.conf", "");
    write_text("main.conf", "include = conf.d/*.conf\n");
    expect_problem("main.conf",
                   "conf.d/b.conf:2: duplicate key 'hostname' (first set at conf.d/a.conf:2)");

    /* Each included file starts outside any section. */
    write_text("main.conf", "[server]\ninclude = conf.d/c.conf\n");
    write_text("conf.d/c.conf", "workers = 1\n");
    expect_problem("main.conf", "conf.d/c.conf:1: key 'workers' outside a section");

    /* Absolute patterns. */
    char *abs = xasprintf("include = %s/conf.d/a.conf\n", tmp);
    struct config *c2 = load_ok(abs);
    free(abs);
    assert_string_equal(c2->hostname, "a.example");
    config_unref(c2);
}

static void test_include_loops(void **state)
{
    (void)state;
    write_text("main.conf", "include = a.conf\n");
    write_text("a.conf", "\ninclude = sub/b.conf\n");
    write_text("sub/b.conf", "include = ../a.conf\n");
    expect_problem("main.conf",
                   "sub/b.conf:1: include loop: 'sub/../a.conf' is already being read");

    /* The same file twice but not nested is no loop (its keys then clash). */
    write_text("main.conf", "include = a.conf\ninclude = a.conf\n");
    write_text("a.conf", "[server]\nworkers = 1\n");
    expect_problem("main.conf", "a.conf:2: duplicate key 'workers' (first set at a.conf:2)");
}

static void test_include_depth(void **state)
{
    (void)state;
    /* main.conf (depth 0) includes f1 ... each fN includes fN+1. */
    write_text("main.conf", "include = f1.conf\n");
    for (int i = 1; i <= CONFIG_INCLUDE_DEPTH_MAX + 2; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "f%d.conf", i);
        snprintf(text, sizeof(text), "include = f%d.conf\n", i + 1);
        write_text(name, text);
    }
    char last[32];
    snprintf(last, sizeof(last), "f%d.conf", CONFIG_INCLUDE_DEPTH_MAX + 3);
    write_text(last, "");
    char want[128];
    snprintf(want, sizeof(want), "f%d.conf:1: include nested too deep (max %d)",
             CONFIG_INCLUDE_DEPTH_MAX, CONFIG_INCLUDE_DEPTH_MAX);
    size_t count = 0;
    char *got = first_problem_of("main.conf", &count);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", got, want);
    free(got);
    assert_int_equal(count, 1);

    /* Exactly the limit is fine. */
    snprintf(last, sizeof(last), "f%d.conf", CONFIG_INCLUDE_DEPTH_MAX);
    write_text(last, "[server]\nworkers = 3\n");
    struct config *c = NULL;
    struct diag d = {0};
    if (load_file_named("main.conf", &c, &d) != 0) {
        print_diag(&d);
        fail();
    }
    assert_int_equal(c->workers, 3);
    config_unref(c);
    diag_free(&d);
}

/* ------------------------------------------------------------ misc */

static void test_sms_template_length(void **state)
{
    (void)state;
    /* 154 + 6 = 160 fits; with mtan_length 8 it is 162. */
    char body[155];
    memset(body, 'x', 154);
    body[154] = '\0';
    char *text = xasprintf("[sendlink]\nsms_template = %s{code}\n", body);
    struct config *c = load_ok(text);
    config_unref(c);
    free(text);
    text = xasprintf("[sendlink]\nsms_template = %s{code}\nmtan_length = 8\n", body);
    write_text("main.conf", text);
    free(text);
    expect_problem("main.conf",
                   "main.conf:2: sms_template: 162 characters with the code, max 160 (one SMS)");
}

static void test_refcount(void **state)
{
    (void)state;
    struct config *c = load_ok("[server]\nworkers = 2\n");
    assert_int_equal(c->refs, 1);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(c->refs, 2);
    config_unref(c);
    assert_int_equal(c->refs, 1);
    assert_int_equal(c->workers, 2);
    config_unref(c); /* freed: ASan reports a double free or leak */
    config_unref(NULL);
}

/* The example config: found via $SEALPOST_SRC, the current directory (tests
 * run from the repo root) or the test binary's location (build/tests/). */
static char *example_path(void)
{
    const char *rel = "etc/sealpost.conf.example";
    const char *src = getenv("SEALPOST_SRC");
    char *p;
    if (src && *src) {
        p = xasprintf("%s/%s", src, rel);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    if (access(rel, R_OK) == 0)
        return xstrdup(rel);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        *strrchr(exe, '/') = '\0';
        p = xasprintf("%s/../../%s", exe, rel);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    fail_msg("cannot find %s (set SEALPOST_SRC)", rel);
    return NULL;
}

static void test_example_loads(void **state)
{
    (void)state;
    char *path = example_path();
    struct config *c = NULL;
    struct diag d = {0};
    if (config_load(path, &c, &d) != 0) {
        print_diag(&d);
        fail_msg("%s does not load", path);
    }
    assert_int_equal(d.n, 0);
    assert_string_equal(c->hostname, "localhost");
    assert_string_equal(c->smtp_listen, "127.0.0.1:2525");
    assert_string_equal(c->http_listen, "127.0.0.1:8080");
    assert_string_equal(c->public_url, "http://127.0.0.1:8080");
    assert_string_equal(c->default_plan, "free");
    assert_string_equal(c->postmaster, "admin");
    assert_true(config_is_mailin_domain(c, "mailin.localhost"));
    assert_false(c->tls_enabled);
    assert_null(c->user);
    size_t dl = strlen(c->data_dir);
    assert_true(c->data_dir[0] == '/' && dl > 9 && strcmp(c->data_dir + dl - 9, "/etc/data") == 0);
    assert_non_null(config_plan(c, "free"));
    assert_non_null(config_plan(c, "pro"));
    assert_non_null(config_plan(c, PLAN_BUILTIN_NAME));
    assert_string_equal(config_plan(c, NULL)->name, "free");
    config_unref(c);
    diag_free(&d);
    free(path);
}

struct doc_check {
    const char *text;
    int missing;
};

static void doc_one(const char *section, const char *key, const char *def, void *arg)
{
    struct doc_check *dc = arg;
    char *line = xasprintf("\n# %s =%s%s\n", key, *def ? " " : "", def);
    if (strstr(dc->text, line) == NULL) {
        print_error("example lacks the line \"# %s =%s%s\" (in [%s])\n", key, *def ? " " : "", def,
                    section);
        dc->missing++;
    }
    free(line);
}

/* Every key is documented in the example with its default. */
static void test_example_documents_every_key(void **state)
{
    (void)state;
    char *path = example_path();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[256 * 1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(text) - 1);
    text[n] = '\0';
    struct doc_check dc = {text, 0};
    config_defaults_foreach(doc_one, &dc);
    assert_int_equal(dc.missing, 0);
    free(path);
}

/* check-config: runs the command with stdout (or stderr) in a file. */
static int run_check_config(const char *path, bool json, int fd_no, char *out, size_t outsz)
{
    char *capture = tmp_path("capture.out");
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd_no);
    int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, fd_no);
    close(fd);
    struct cli cl = {.prog = "sealpost", .config_path = path, .json = json};
    char *argv[] = {"check-config", NULL};
    int rc = cmd_check_config(&cl, 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd_no);
    close(saved);
    if (cl.cfg)
        config_unref(cl.cfg);
    FILE *f = fopen(capture, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outsz - 1, f);
    out[n] = '\0';
    fclose(f);
    free(capture);
    return rc;
}

static void test_check_config(void **state)
{
    (void)state;
    char out[4096];
    write_text("good.conf", "[server]\nworkers = 1\n");
    write_text("bad.conf", "[server]\nworkers = x\nnokey = 1\n");
    char *good = tmp_path("good.conf"), *bad = tmp_path("bad.conf");

    assert_int_equal(run_check_config(good, false, STDOUT_FILENO, out, sizeof(out)), 0);
    assert_string_equal(out, "OK\n");
    assert_int_equal(run_check_config(good, true, STDOUT_FILENO, out, sizeof(out)), 0);
    assert_string_equal(out, "{\"ok\":true}\n");

    assert_int_equal(run_check_config(bad, false, STDERR_FILENO, out, sizeof(out)), 1);
    char *want = xasprintf("%s:2: workers: bad number 'x'\n%s:3: unknown key 'nokey' in [server]\n",
                           bad, bad);
    assert_string_equal(out, want);
    free(want);
    assert_int_equal(run_check_config(bad, true, STDOUT_FILENO, out, sizeof(out)), 1);
    want = xasprintf("{\"ok\":false,\"errors\":[\"%s:2: workers: bad number 'x'\","
                     "\"%s:3: unknown key 'nokey' in [server]\"]}\n",
                     bad, bad);
    assert_string_equal(out, want);
    free(want);
    free(good);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_errors, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_collects_all, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_too_many_problems, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_line_limits, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_defaults, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_defaults_table, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_good_config, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_plan_default_override, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_relative_paths, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_include_glob, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_include_loops, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_include_depth, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_sms_template_length, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_refcount, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_documents_every_key),
        cmocka_unit_test_setup_teardown(test_check_config, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
