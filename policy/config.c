/*
 * config — the configuration language of sealpost and the one table that
 * declares every key (STYLE.md 18).
 *
 * Data flow: `sealpost serve` and every CLI command load the config once
 * (again on SIGHUP); the immutable, reference-counted struct config is then
 * read by every part. Nothing here touches the network or the database.
 *
 * Trust: config files are written by the admin, who is trusted to mean what
 * the file says but not to write it correctly. Every line is bounded
 * (CONFIG_LINE_MAX, never truncated), every value is parsed strictly and
 * checked against its bound, and every problem is reported as
 * "file:line: message". The loader goes on after an error so that one run
 * shows all of them; a config with any problem is never returned.
 *
 * The language:
 *   [section]  or  [section NAME]   (NAME only for [plan NAME], [relay NAME])
 *   key = value
 *   # comment                       (a whole line)
 *   key = value   # comment         (a '#' after whitespace ends the value;
 *                                    a '#' inside a word, as in a URL
 *                                    fragment, is kept)
 *   key = "a # b "                  (double quotes keep '#' and spaces;
 *                                    \" and \\ are the only escapes)
 *   include = conf.d/[a-z]*.conf     (glob, relative to the including file,
 *                                    sorted; a pattern without wildcards
 *                                    must name an existing file)
 * Values: sizes 10K 50M 2G (powers of 1024), durations 30s 10m 24h 7d,
 * booleans yes/no (also true/false, on/off, 1/0), lists "a, b, c".
 * A section may be opened more than once (for example from an included
 * file), but a key may be set only once per section. Every file starts
 * outside any section; after an include the including file continues in
 * the section it was in. Relative paths (data_dir, dkim_key, tls cert and
 * key) are relative to the directory of the main config file.
 */
#include "policy/config.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest plan/relay/user name. */
#define CONFIG_NAME_MAX 64
/* One SMS in GSM-7: the mTAN text must fit in it. */
#define SMS_CHARS_MAX 160
/* Longest host name (RFC 1035: 253 characters in text form). */
#define HOSTNAME_MAX 253
/* Longest DNS label (RFC 1035). */
#define LABEL_MAX 63
/* Longest e-mail address (RFC 5321 path less the brackets). */
#define ADDRESS_MAX 254

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)
#define DUR_M 60ULL
#define DUR_H 3600ULL
#define DUR_D 86400ULL

enum cf_section {
    SEC_SERVER,
    SEC_TLS,
    SEC_MAILIN,
    SEC_OUTBOUND,
    SEC_SENDLINK,
    SEC_SMS,
    SEC_PLAN,
    SEC_RELAY,
    SEC_COUNT,
    SEC_NONE = -1, /* before the first header of a file */
    SEC_BAD = -2,  /* after a bad header: its keys are skipped silently */
};

static const struct {
    const char *name;
    bool named; /* [plan NAME], [relay NAME] */
} sections[SEC_COUNT] = {
    [SEC_SERVER] = {"server", false},     [SEC_TLS] = {"tls", false},
    [SEC_MAILIN] = {"mailin", false},     [SEC_OUTBOUND] = {"outbound", false},
    [SEC_SENDLINK] = {"sendlink", false}, [SEC_SMS] = {"sms", false},
    [SEC_PLAN] = {"plan", true},          [SEC_RELAY] = {"relay", true},
};

enum cf_type {
    CF_STRING,   /* char *; "" means unset (NULL) unless CFF_REQUIRED */
    CF_PATH,     /* char *; made absolute after load */
    CF_HOSTPORT, /* char *; host:port or [v6]:port */
    CF_ENUM,     /* char *; one of choices */
    CF_LIST,     /* struct strlist */
    CF_SIZE,     /* uint64_t bytes */
    CF_SIZE32,   /* unsigned bytes (line lengths) */
    CF_DURATION, /* uint64_t seconds */
    CF_UINT,     /* unsigned */
    CF_BOOL,     /* bool */
};

#define CFF_REQUIRED 1u /* an empty value is an error */

/* Returns NULL if v is acceptable, else why not ("not a valid host name"). */
typedef const char *(*cf_check_fn)(const char *v);

struct cf_key {
    enum cf_section sec;
    const char *name;
    enum cf_type type;
    size_t off; /* in struct config, struct plan or struct relay_conf */
    const char *def;
    uint64_t min, max;
    unsigned flags;
    const char *const *choices; /* CF_ENUM, NULL-terminated */
    cf_check_fn check;          /* strings and list items */
    const char *doc;
};

static const char *check_hostname(const char *v);
static const char *check_url(const char *v);
static const char *check_username(const char *v);
static const char *check_name(const char *v);
static const char *check_address(const char *v);
static const char *check_template(const char *v);
static const char *check_display_name(const char *v);
static const char *check_prefix(const char *v);

static const char *const kdf_choices[] = {"interactive", "moderate", "sensitive", NULL};
static const char *const driver_choices[] = {"http", "exec", "smtp", "file", "plugin", NULL};

#define CO(f) offsetof(struct config, f)
#define PO(f) offsetof(struct plan, f)
#define RO(f) offsetof(struct relay_conf, f)

/* clang-format off */
static const struct cf_key keys[] = {
    /* [server] */
    {SEC_SERVER, "hostname", CF_STRING, CO(hostname), "", 0, 0, 0, NULL, check_hostname,
     "name in the SMTP banner and Received: (empty: this machine's name)"},
    {SEC_SERVER, "data_dir", CF_PATH, CO(data_dir), "/var/lib/sealpost", 0, 0, CFF_REQUIRED, NULL,
     NULL, "database and blobs (relative to the config file's directory)"},
    {SEC_SERVER, "smtp_listen", CF_HOSTPORT, CO(smtp_listen), "0.0.0.0:25", 0, 0, 0, NULL, NULL,
     "SMTP listener, host:port ([v6]:port for IPv6)"},
    {SEC_SERVER, "http_listen", CF_HOSTPORT, CO(http_listen), "127.0.0.1:8080", 0, 0, 0, NULL,
     NULL, "HTTP listener, host:port (put a TLS reverse proxy in front)"},
    {SEC_SERVER, "public_url", CF_STRING, CO(public_url), "", 0, 0, 0, NULL, check_url,
     "base of the links in notification mail (empty: https://HOSTNAME)"},
    {SEC_SERVER, "user", CF_STRING, CO(user), "", 0, 0, 0, NULL, check_username,
     "started as root: drop to this user after binding (empty: keep running as is)"},
    {SEC_SERVER, "default_plan", CF_STRING, CO(default_plan), "", 0, 0, 0, NULL, check_name,
     "plan of users created without --plan (empty: the built-in plan \"default\")"},
    {SEC_SERVER, "kdf", CF_ENUM, CO(kdf), "interactive", 0, 0, 0, kdf_choices, NULL,
     "Argon2id cost for wrapping user keys: interactive, moderate or sensitive"},
    {SEC_SERVER, "log_syslog", CF_BOOL, CO(log_syslog), "no", 0, 0, 0, NULL, NULL,
     "also log to syslog (facility mail); stderr is always used"},
    {SEC_SERVER, "master_key", CF_PATH, CO(master_key), "/etc/sealpost/master.key", 0, 0, 0, NULL,
     NULL, "32-byte server secret (made by init): keys token hashes, code MACs and the "
     "outbound queue; keep it outside data_dir"},
    {SEC_SERVER, "workers", CF_UINT, CO(workers), "0", 0, 1024, 0, NULL, NULL,
     "threads for parsing and encryption (0: one per CPU core)"},

    /* [tls]: the section's presence turns STARTTLS on */
    {SEC_TLS, "cert", CF_PATH, CO(tls_cert), "", 0, 0, 0, NULL, NULL,
     "PEM certificate chain for STARTTLS (required in [tls])"},
    {SEC_TLS, "key", CF_PATH, CO(tls_key), "", 0, 0, 0, NULL, NULL,
     "PEM private key for STARTTLS (required in [tls])"},

    /* [mailin] */
    {SEC_MAILIN, "domains", CF_LIST, CO(domains), "", 0, 0, 0, NULL, check_hostname,
     "Mail-in domains this MX accepts (empty: none)"},
    {SEC_MAILIN, "message_size_limit", CF_SIZE, CO(message_size_limit), "50M", 1 * KIB, 2 * GIB, 0,
     NULL, NULL, "largest message accepted (announced with SIZE)"},
    {SEC_MAILIN, "max_recipients", CF_UINT, CO(max_recipients), "100", 1, 10000, 0, NULL, NULL,
     "recipients per message"},
    {SEC_MAILIN, "postmaster", CF_STRING, CO(postmaster), "", 0, 0, 0, NULL, check_username,
     "user whose vault gets postmaster@ and abuse@ mail (required with domains)"},
    {SEC_MAILIN, "dkim_verify", CF_BOOL, CO(dkim_verify), "yes", 0, 0, 0, NULL, NULL,
     "verify DKIM signatures of inbound mail"},
    {SEC_MAILIN, "spf", CF_BOOL, CO(spf), "yes", 0, 0, 0, NULL, NULL,
     "check SPF of inbound mail"},
    {SEC_MAILIN, "dns_timeout", CF_DURATION, CO(dns_timeout), "5s", 1, 60, 0, NULL, NULL,
     "timeout of one DNS lookup (DKIM, SPF); no answer gives temperror"},
    {SEC_MAILIN, "parser_memory_limit", CF_SIZE, CO(parser_memory_limit), "512M", 64 * MIB,
     16 * GIB, 0, NULL, NULL, "address space of the MIME parser child"},
    {SEC_MAILIN, "parser_cpu_limit", CF_DURATION, CO(parser_cpu_limit), "30s", 1, DUR_H, 0, NULL,
     NULL, "CPU time of the MIME parser child"},
    {SEC_MAILIN, "parser_timeout", CF_DURATION, CO(parser_timeout), "60s", 1, DUR_H, 0, NULL,
     NULL, "wall-clock time of the MIME parser child"},
    {SEC_MAILIN, "mime_max_parts", CF_UINT, CO(mime_max_parts), "1000", 1, 100000, 0, NULL, NULL,
     "MIME parts per message; more: delivered as original only, flagged"},
    {SEC_MAILIN, "mime_max_depth", CF_UINT, CO(mime_max_depth), "20", 1, 100, 0, NULL, NULL,
     "MIME nesting depth; deeper: delivered as original only, flagged"},
    {SEC_MAILIN, "header_size_limit", CF_SIZE, CO(header_size_limit), "1M", 1 * KIB, 64 * MIB, 0,
     NULL, NULL, "bytes of message header"},
    {SEC_MAILIN, "line_length_limit", CF_SIZE32, CO(line_length_limit), "1000", 512, 64 * KIB, 0,
     NULL, NULL, "SMTP command line, CRLF included (RFC 5321: 512 for commands, 1000 for text)"},
    {SEC_MAILIN, "data_line_length_limit", CF_SIZE32, CO(data_line_length_limit), "16K", 1000,
     1 * MIB, 0, NULL, NULL, "line in DATA (RFC 5321 says 1000; real mail is longer)"},
    {SEC_MAILIN, "command_timeout", CF_DURATION, CO(command_timeout), "5m", 1, DUR_H, 0, NULL,
     NULL, "wait for the next command (RFC 5321 4.5.3.2: 5 minutes)"},
    {SEC_MAILIN, "data_timeout", CF_DURATION, CO(data_timeout), "10m", 1, DUR_H, 0, NULL, NULL,
     "wait for more DATA (RFC 5321 4.5.3.2: 3 minutes per block, 10 for the end)"},
    {SEC_MAILIN, "session_deadline", CF_DURATION, CO(session_deadline), "30m", DUR_M, DUR_D, 0,
     NULL, NULL, "whole SMTP session, however busy"},
    {SEC_MAILIN, "min_data_rate", CF_SIZE, CO(min_data_rate), "512", 0, 1 * GIB, 0, NULL, NULL,
     "bytes per second averaged over DATA, against slowloris (0: off)"},
    {SEC_MAILIN, "greet_pause", CF_DURATION, CO(greet_pause), "0s", 0, 30, 0, NULL, NULL,
     "wait before the banner; a client talking first is refused (0s: no wait)"},
    {SEC_MAILIN, "max_errors", CF_UINT, CO(max_errors), "10", 1, 1000, 0, NULL, NULL,
     "protocol errors before the session is dropped"},
    {SEC_MAILIN, "max_connections", CF_UINT, CO(max_connections), "2000", 1, 1000000, 0, NULL,
     NULL, "concurrent SMTP connections"},
    {SEC_MAILIN, "max_connections_per_ip", CF_UINT, CO(max_connections_per_ip), "50", 1, 1000000,
     0, NULL, NULL, "concurrent SMTP connections from one address"},

    /* [outbound] */
    {SEC_OUTBOUND, "relayhost", CF_HOSTPORT, CO(relayhost), "127.0.0.1:25", 0, 0, 0, NULL, NULL,
     "host:port that notification mail is handed to"},
    {SEC_OUTBOUND, "from", CF_STRING, CO(from), "", 0, 0, 0, NULL, check_address,
     "sender of notification mail (empty: sealpost@HOSTNAME)"},
    {SEC_OUTBOUND, "dkim_domain", CF_STRING, CO(dkim_domain), "", 0, 0, 0, NULL, check_hostname,
     "DKIM d= of notification mail (empty: the domain of from)"},
    {SEC_OUTBOUND, "dkim_selector", CF_STRING, CO(dkim_selector), "sealpost", 0, 0, CFF_REQUIRED,
     NULL, check_hostname, "DKIM s= (the key is published at SELECTOR._domainkey.DOMAIN)"},
    {SEC_OUTBOUND, "dkim_key", CF_PATH, CO(dkim_key), "", 0, 0, 0, NULL, NULL,
     "DKIM private key, PEM (empty: DATA_DIR/dkim/SELECTOR.private, made by init)"},
    {SEC_OUTBOUND, "retry_min", CF_DURATION, CO(retry_min), "1m", 1, DUR_D, 0, NULL, NULL,
     "first retry of a deferred notification"},
    {SEC_OUTBOUND, "retry_max", CF_DURATION, CO(retry_max), "1h", DUR_M, 7 * DUR_D, 0, NULL, NULL,
     "longest wait between retries (backoff doubles up to this)"},
    {SEC_OUTBOUND, "max_queue_age", CF_DURATION, CO(max_queue_age), "5d", DUR_H, 30 * DUR_D, 0,
     NULL, NULL, "give up on a notification after this long"},
    {SEC_OUTBOUND, "from_name", CF_STRING, CO(from_name), "sealpost", 0, 0, 0, NULL,
     check_display_name, "display name of the sender of notification mail (empty: none)"},
    {SEC_OUTBOUND, "smtp_timeout", CF_DURATION, CO(smtp_timeout), "60s", 1, 10 * DUR_M, 0, NULL,
     NULL, "wait for the relay host's reply to one SMTP command (and for the connection)"},

    /* [sendlink] */
    {SEC_SENDLINK, "default_expiry", CF_DURATION, CO(default_expiry), "7d", DUR_H, 365 * DUR_D, 0,
     NULL, NULL, "lifetime of a send when none is asked for"},
    {SEC_SENDLINK, "max_expiry", CF_DURATION, CO(max_expiry), "30d", DUR_H, 3650 * DUR_D, 0, NULL,
     NULL, "longest lifetime a send may ask for"},
    {SEC_SENDLINK, "max_downloads", CF_UINT, CO(max_downloads), "10", 1, 10000, 0, NULL, NULL,
     "downloads per send (the most a send may ask for)"},
    {SEC_SENDLINK, "code_length", CF_UINT, CO(code_length), "8", 4, 12, 0, NULL, NULL,
     "characters of a generated security code"},
    {SEC_SENDLINK, "code_max_attempts", CF_UINT, CO(code_max_attempts), "5", 1, 20, 0, NULL, NULL,
     "wrong codes before the link locks (RULES.md 9: well under 100)"},
    {SEC_SENDLINK, "lockout", CF_DURATION, CO(lockout), "1h", DUR_M, 30 * DUR_D, 0, NULL, NULL,
     "how long a locked link stays locked"},
    {SEC_SENDLINK, "mtan_length", CF_UINT, CO(mtan_length), "6", 6, 8, 0, NULL, NULL,
     "digits of an mTAN"},
    {SEC_SENDLINK, "mtan_ttl", CF_DURATION, CO(mtan_ttl), "10m", 1, 10 * DUR_M, 0, NULL, NULL,
     "lifetime of an mTAN (RULES.md 9: at most 10 minutes; tests use seconds)"},
    {SEC_SENDLINK, "mtan_max_sends", CF_UINT, CO(mtan_max_sends), "3", 1, 10, 0, NULL, NULL,
     "SMS per link (each new mTAN invalidates the previous one)"},
    {SEC_SENDLINK, "sms_template", CF_STRING, CO(sms_template), "Your sealpost code: {code}", 0, 0,
     CFF_REQUIRED, NULL, check_template,
     "text of the mTAN SMS; {code} is replaced; one SMS (160 ASCII characters)"},
    {SEC_SENDLINK, "notify_sender", CF_BOOL, CO(notify_sender), "no", 0, 0, 0, NULL, NULL,
     "mail the sender when a send is downloaded"},
    {SEC_SENDLINK, "min_expiry", CF_DURATION, CO(min_expiry), "1h", 1, 365 * DUR_D, 0, NULL, NULL,
     "shortest lifetime a send may ask for"},
    {SEC_SENDLINK, "sweep_interval", CF_DURATION, CO(sweep_interval), "1m", 1, DUR_H, 0, NULL,
     NULL, "how often expired, revoked and used-up sends are destroyed"},
    {SEC_SENDLINK, "api_rate_limit", CF_UINT, CO(api_rate_limit), "120", 0, 1000000, 0, NULL,
     NULL, "API requests per minute per API key, beyond which 429 (0: no limit)"},
    {SEC_SENDLINK, "http_threads", CF_UINT, CO(http_threads), "4", 1, 256, 0, NULL, NULL,
     "threads serving HTTP (uploads and downloads stream; memory is flat in file size)"},
    {SEC_SENDLINK, "http_max_connections", CF_UINT, CO(http_max_connections), "1000", 1, 100000,
     0, NULL, NULL, "concurrent HTTP connections"},
    {SEC_SENDLINK, "http_timeout", CF_DURATION, CO(http_timeout), "60s", 1, DUR_H, 0, NULL, NULL,
     "an HTTP connection idle this long is closed"},

    /* [sms] */
    {SEC_SMS, "routes", CF_LIST, CO(sms_routes), "", 0, 0, 0, NULL, check_name,
     "[relay NAME]s in the order they are tried (empty: no SMS, no mTAN)"},
    {SEC_SMS, "route_timeout", CF_DURATION, CO(sms_route_timeout), "10s", 1, 60, 0, NULL, NULL,
     "how long one route may take to accept an SMS (a [relay] timeout overrides it)"},
    {SEC_SMS, "failure_threshold", CF_UINT, CO(sms_failure_threshold), "3", 1, 100, 0, NULL,
     NULL, "consecutive failures after which a route is skipped for cooldown"},
    {SEC_SMS, "cooldown", CF_DURATION, CO(sms_cooldown), "5m", 1, DUR_D, 0, NULL, NULL,
     "how long a failing route is skipped before one SMS probes it again"},
    {SEC_SMS, "max_per_number_hour", CF_UINT, CO(sms_max_per_number_hour), "5", 0, 100000, 0,
     NULL, NULL, "SMS to one phone number per hour (0: no limit)"},
    {SEC_SMS, "max_per_sender_day", CF_UINT, CO(sms_max_per_sender_day), "200", 0, 10000000, 0,
     NULL, NULL, "SMS for the sends of one user per day (0: no limit)"},
    {SEC_SMS, "max_per_country_hour", CF_UINT, CO(sms_max_per_country_hour), "100", 0,
     10000000, 0, NULL, NULL, "SMS to one country calling code (+41, +1, …) per hour (0: no limit)"},
    {SEC_SMS, "max_global_hour", CF_UINT, CO(sms_max_global_hour), "1000", 0, 100000000, 0,
     NULL, NULL, "SMS in all per hour: the ceiling against SMS pumping (0: no limit)"},
    {SEC_SMS, "allowed_prefixes", CF_LIST, CO(sms_allowed_prefixes), "", 0, 0, 0, NULL,
     check_prefix, "only numbers starting with one of these get SMS, e.g. +41, +49 (empty: all)"},
    {SEC_SMS, "denied_prefixes", CF_LIST, CO(sms_denied_prefixes), "", 0, 0, 0, NULL,
     check_prefix, "numbers starting with one of these never get SMS, e.g. +882, +883"},

    /* [plan NAME]: defaults are those of the built-in plan "default" */
    {SEC_PLAN, "storage_quota", CF_SIZE, PO(storage_quota), "1G", 0, UINT64_MAX, 0, NULL, NULL,
     "vault bytes per user (0: unlimited)"},
    {SEC_PLAN, "max_file_size", CF_SIZE, PO(max_file_size), "100M", 1 * KIB, 1 * TIB, 0, NULL,
     NULL, "largest secure-send file"},
    {SEC_PLAN, "mtan", CF_BOOL, PO(mtan), "no", 0, 0, 0, NULL, NULL,
     "may create protect=mtan sends (needs [sms] routes)"},
    {SEC_PLAN, "code", CF_BOOL, PO(code), "yes", 0, 0, 0, NULL, NULL,
     "may create protect=code sends"},
    {SEC_PLAN, "choose_expiry", CF_BOOL, PO(choose_expiry), "yes", 0, 0, 0, NULL, NULL,
     "may choose the expiry (up to max_expiry); else default_expiry"},

    /* [relay NAME]: every other key is kept raw for the driver */
    {SEC_RELAY, "driver", CF_ENUM, RO(driver), "", 0, 0, 0, driver_choices, NULL,
     "http, exec, smtp, file or plugin (required)"},
};
/* clang-format on */

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Where a key was set; line 0: not set (default). */
struct origin {
    const char *file;
    int line;
};

/* Loader state of one [plan NAME] or [relay NAME]. */
struct named_state {
    struct origin head; /* first header */
    struct origin seen[NKEYS];
};

struct loader {
    struct config *c;
    struct diag *d;
    size_t errors; /* all problems, also those past CONFIG_DIAG_MAX */
    struct origin seen[NKEYS];
    struct named_state *plan_st;  /* parallel to c->plans */
    struct named_state *relay_st; /* parallel to c->relays */
    struct origin tls_head;       /* line 0: no [tls] */
    char **files;                 /* every file read; origins point here */
    size_t nfiles;
    char *stack[CONFIG_INCLUDE_DEPTH_MAX + 1]; /* real paths being read */
};

/* Per-file parse position. */
struct cursor {
    const char *file;
    int line;
    int depth;
    int sec;    /* enum cf_section, SEC_NONE or SEC_BAD */
    size_t idx; /* plan or relay index for named sections */
};

/* ---------------------------------------------------------------- diag */

void diag_free(struct diag *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = 0;
}

static void diag_push(struct diag *d, char *msg)
{
    d->msgs = xrealloc(d->msgs, (d->n + 1) * sizeof(*d->msgs));
    d->msgs[d->n++] = msg;
}

static void __attribute__((format(printf, 4, 5)))
problem(struct loader *L, const char *file, int line, const char *fmt, ...)
{
    L->errors++;
    if (L->errors > CONFIG_DIAG_MAX + 1)
        return;
    if (L->errors == CONFIG_DIAG_MAX + 1) {
        diag_push(L->d, xasprintf("%s: too many problems, only the first %d are shown", L->c->path,
                                  CONFIG_DIAG_MAX));
        return;
    }
    va_list ap;
    char msg[CONFIG_LINE_MAX];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        diag_push(L->d, xasprintf("%s:%d: %s", file, line, msg));
    else
        diag_push(L->d, xasprintf("%s: %s", file, msg));
}

/* ---------------------------------------------------------------- checks */

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.';
}

static const char *check_hostname(const char *v)
{
    size_t len = strlen(v), label = 0;
    if (len > HOSTNAME_MAX)
        return "not a valid host name (too long)";
    for (const char *p = v;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || p[-1] == '-')
                return "not a valid host name";
            if (*p == '\0')
                return NULL;
            label = 0;
            continue;
        }
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || (*p == '-' && label > 0) || *p == '_';
        if (!ok || ++label > LABEL_MAX)
            return "not a valid host name";
    }
}

static const char *check_url(const char *v)
{
    const char *host;
    if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    else
        return "must start with http:// or https://";
    if (*host == '\0' || *host == '/')
        return "has no host";
    for (const char *p = v; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\')
            return "must be printable ASCII without spaces, quotes or angle brackets";
    return NULL;
}

static const char *check_name_len(const char *v, size_t max, const char *what)
{
    size_t n = strlen(v);
    if (n > max || v[0] == '-' || v[0] == '.')
        return what;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(v[i]))
            return what;
    return NULL;
}

static const char *check_username(const char *v)
{
    return check_name_len(v, CONFIG_NAME_MAX,
                          "not a valid user name (letters, digits, '.', '_', '-')");
}

static const char *check_name(const char *v)
{
    return check_name_len(v, CONFIG_NAME_MAX, "not a valid name (letters, digits, '.', '_', '-')");
}

static const char *check_address(const char *v)
{
    const char *at = strrchr(v, '@');
    if (at == NULL || at == v || strlen(v) > ADDRESS_MAX)
        return "not an address (local@domain)";
    for (const char *p = v; p < at; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),:;<>@[\\]", *p))
            return "not an address (local@domain)";
    if (check_hostname(at + 1))
        return "not an address (local@domain)";
    return NULL;
}

/* A display name: UTF-8 text without control characters, at most 128 bytes. */
static const char *check_display_name(const char *v)
{
    if (strlen(v) > 128)
        return "too long (at most 128 bytes)";
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* The placeholders of sms_template. */
static const char *const sms_placeholders[] = {"code", "sender", "minutes", NULL};
/* The placeholders of relay templates (url, body, headers, address). */
static const char *const relay_placeholders[] = {"to", "to_digits", "text", "id", NULL};

/*
 * Every "{word}" (lower-case letters and '_') in v must be one of known;
 * other braces (JSON) are text. Returns NULL or the problem (static).
 */
static const char *check_placeholders(const char *v, const char *const *known)
{
    static __thread char why[128];
    for (const char *p = strchr(v, '{'); p; p = strchr(p + 1, '{')) {
        size_t n = 0;
        while ((p[1 + n] >= 'a' && p[1 + n] <= 'z') || p[1 + n] == '_')
            n++;
        if (n == 0 || p[1 + n] != '}')
            continue;
        bool ok = false;
        for (size_t i = 0; known[i]; i++)
            ok = ok || (strlen(known[i]) == n && strncmp(known[i], p + 1, n) == 0);
        if (!ok) {
            snprintf(why, sizeof(why), "unknown placeholder {%.*s}", (int)(n > 32 ? 32 : n), p + 1);
            return why;
        }
    }
    return NULL;
}

static const char *check_template(const char *v)
{
    for (const char *p = v; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return "must be printable ASCII (one GSM-7 SMS)";
    if (strstr(v, "{code}") == NULL)
        return "must contain {code}";
    return check_placeholders(v, sms_placeholders);
}

/* A number prefix: '+' and 1 to 15 digits. */
static const char *check_prefix(const char *v)
{
    size_t n = strlen(v);
    if (n < 2 || n > 16 || v[0] != '+' || v[1] == '0')
        return "not a number prefix such as +41";
    for (size_t i = 1; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return "not a number prefix such as +41";
    return NULL;
}

/* host:port or [v6]:port, port 1..65535. */
static const char *check_hostport(const char *v)
{
    const char *colon;
    if (v[0] == '[') {
        const char *end = strchr(v, ']');
        if (end == NULL || end == v + 1 || end[1] != ':')
            return "not host:port";
        for (const char *p = v + 1; p < end; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                  (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return "not host:port";
        colon = end + 1;
    } else {
        colon = strchr(v, ':');
        if (colon == NULL || colon == v || strchr(colon + 1, ':'))
            return "not host:port";
        char host[HOSTNAME_MAX + 1];
        size_t hl = (size_t)(colon - v);
        if (hl > HOSTNAME_MAX)
            return "not host:port";
        memcpy(host, v, hl);
        host[hl] = '\0';
        if (check_hostname(host))
            return "not host:port";
    }
    uint64_t port;
    if (parse_uint(colon + 1, &port) < 0 || port == 0 || port > 65535)
        return "port must be 1 to 65535";
    return NULL;
}

/* ---------------------------------------------------------------- values */

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void set_string(char **slot, const char *v)
{
    free(*slot);
    *slot = *v ? xstrdup(v) : NULL;
}

static void format_bound(const struct cf_key *k, uint64_t v, char *out, size_t outsz)
{
    if (k->type == CF_SIZE || k->type == CF_SIZE32)
        format_size(v, out, outsz);
    else if (k->type == CF_DURATION)
        format_duration(v, out, outsz);
    else
        snprintf(out, outsz, "%llu", (unsigned long long)v);
}

/* "a, b, c" into l; each item trimmed, non-empty and checked. */
static int list_parse(const struct cf_key *k, const char *v, struct strlist *l, char *err,
                      size_t errsz)
{
    struct strlist n = {0};
    const char *p = v;
    /* An empty value is the empty list; "a," and "a,,b" have an empty item. */
    while (*v) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            snprintf(err, errsz, "%s: empty item in list", k->name);
            strlist_free(&n);
            return -1;
        }
        char *item = xstrndup(a, (size_t)(b - a));
        const char *why = k->check ? k->check(item) : NULL;
        if (why) {
            snprintf(err, errsz, "%s: '%s': %s", k->name, scrub(item), why);
            free(item);
            strlist_free(&n);
            return -1;
        }
        n.v = xrealloc(n.v, (n.n + 1) * sizeof(*n.v));
        n.v[n.n++] = item;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    strlist_free(l);
    *l = n;
    return 0;
}

/* Parses v as k's type into base + k->off. On error fills err, changes nothing. */
static int key_set(const struct cf_key *k, void *base, const char *v, char *err, size_t errsz)
{
    char *slot = (char *)base + k->off;
    bool stringy = k->type == CF_STRING || k->type == CF_PATH || k->type == CF_LIST;
    uint64_t n = 0;
    bool b;
    char lo[32], hi[32];

    if (*v == '\0' && (!stringy || (k->flags & CFF_REQUIRED))) {
        snprintf(err, errsz, "%s: empty value", k->name);
        return -1;
    }
    switch (k->type) {
    case CF_STRING:
    case CF_PATH:
        if (*v && k->check && k->check(v)) {
            snprintf(err, errsz, "%s: '%s': %s", k->name, scrub(v), k->check(v));
            return -1;
        }
        set_string((char **)slot, v);
        return 0;
    case CF_HOSTPORT:
        if (check_hostport(v)) {
            snprintf(err, errsz, "%s: '%s': %s", k->name, scrub(v), check_hostport(v));
            return -1;
        }
        set_string((char **)slot, v);
        return 0;
    case CF_ENUM:
        for (size_t i = 0; k->choices[i]; i++) {
            if (strcmp(v, k->choices[i]) == 0) {
                set_string((char **)slot, v);
                return 0;
            }
        }
        {
            char all[256] = "";
            for (size_t i = 0; k->choices[i]; i++) {
                size_t used = strlen(all);
                snprintf(all + used, sizeof(all) - used, "%s%s", i ? ", " : "", k->choices[i]);
            }
            snprintf(err, errsz, "%s: '%s' is not one of %s", k->name, scrub(v), all);
        }
        return -1;
    case CF_LIST:
        return list_parse(k, v, (struct strlist *)slot, err, errsz);
    case CF_BOOL:
        if (parse_bool(v, &b) < 0) {
            snprintf(err, errsz, "%s: bad boolean '%s' (yes or no)", k->name, scrub(v));
            return -1;
        }
        *(bool *)slot = b;
        return 0;
    case CF_SIZE:
    case CF_SIZE32:
        if (parse_size(v, &n) < 0) {
            snprintf(err, errsz, "%s: bad size '%s' (e.g. 512, 10K, 50M, 2G)", k->name, scrub(v));
            return -1;
        }
        break;
    case CF_DURATION:
        if (parse_duration(v, &n) < 0) {
            snprintf(err, errsz, "%s: bad duration '%s' (e.g. 30s, 10m, 24h, 7d)", k->name,
                     scrub(v));
            return -1;
        }
        break;
    case CF_UINT:
        if (parse_uint(v, &n) < 0) {
            snprintf(err, errsz, "%s: bad number '%s'", k->name, scrub(v));
            return -1;
        }
        break;
    }
    if (n < k->min || n > k->max) {
        format_bound(k, n < k->min ? k->min : k->max, lo, sizeof(lo));
        format_bound(k, n, hi, sizeof(hi));
        snprintf(err, errsz, "%s: %s is %s %s", k->name, hi,
                 n < k->min ? "below the minimum" : "above the maximum", lo);
        return -1;
    }
    if (k->type == CF_SIZE || k->type == CF_DURATION)
        *(uint64_t *)slot = n;
    else
        *(unsigned *)slot = (unsigned)n; /* max <= UINT_MAX: table_check() */
    return 0;
}

static void fields_free(void *base, enum cf_section sec)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].sec != sec)
            continue;
        char *slot = (char *)base + keys[i].off;
        switch (keys[i].type) {
        case CF_STRING:
        case CF_PATH:
        case CF_HOSTPORT:
        case CF_ENUM:
            free(*(char **)slot);
            *(char **)slot = NULL;
            break;
        case CF_LIST:
            strlist_free((struct strlist *)slot);
            break;
        default:
            break;
        }
    }
}

/* Every default must parse: a bad table is a programming error. */
static void defaults_apply(void *base, enum cf_section sec)
{
    char err[256];
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cf_key *k = &keys[i];
        if (k->sec != sec)
            continue;
        if ((k->type == CF_UINT || k->type == CF_SIZE32) && k->max > UINT_MAX)
            msg_panic("key %s: bound %llu does not fit its field", k->name,
                      (unsigned long long)k->max);
        if (*k->def == '\0' && k->type != CF_LIST) {
            if (k->type == CF_STRING || k->type == CF_PATH || k->type == CF_ENUM ||
                k->type == CF_HOSTPORT)
                set_string((char **)((char *)base + k->off), "");
            continue;
        }
        if (key_set(k, base, k->def, err, sizeof(err)) < 0)
            msg_panic("default of %s does not parse: %s", k->name, err);
    }
}

static const struct cf_key *key_find(int sec, const char *name, size_t *idx)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if ((int)keys[i].sec == sec && strcmp(keys[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &keys[i];
        }
    }
    return NULL;
}

static size_t key_index(enum cf_section sec, const char *name)
{
    size_t i;
    if (key_find((int)sec, name, &i) == NULL)
        msg_panic("no key %s", name);
    return i;
}

/* ---------------------------------------------------------------- config */

static void config_free(struct config *c)
{
    for (int s = SEC_SERVER; s <= SEC_SMS; s++)
        fields_free(c, (enum cf_section)s);
    for (size_t i = 0; i < c->nplans; i++) {
        fields_free(&c->plans[i], SEC_PLAN);
        free(c->plans[i].name);
    }
    free(c->plans);
    for (size_t i = 0; i < c->nrelays; i++) {
        struct relay_conf *r = &c->relays[i];
        fields_free(r, SEC_RELAY);
        free(r->name);
        free(r->file);
        for (size_t j = 0; j < r->nparams; j++) {
            free(r->params[j].key);
            free(r->params[j].value);
            free(r->params[j].file);
        }
        free(r->params);
    }
    free(c->relays);
    free(c->path);
    free(c->dir);
    free(c);
}

struct config *config_ref(struct config *c)
{
    __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(struct config *c)
{
    if (c == NULL)
        return;
    int left = __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
    if (left < 0)
        msg_panic("reference count below zero");
    if (left == 0)
        config_free(c);
}

const struct plan *config_plan(const struct config *c, const char *name)
{
    if (name == NULL)
        name = c->default_plan ? c->default_plan : PLAN_BUILTIN_NAME;
    for (size_t i = 0; i < c->nplans; i++)
        if (strcmp(c->plans[i].name, name) == 0)
            return &c->plans[i];
    return NULL;
}

bool config_is_mailin_domain(const struct config *c, const char *domain)
{
    if (domain == NULL)
        return false;
    size_t len = strlen(domain);
    if (len > 0 && domain[len - 1] == '.') /* absolute form "example.org." */
        len--;
    for (size_t i = 0; i < c->domains.n; i++) {
        const char *d = c->domains.v[i];
        if (strlen(d) == len && strncasecmp(d, domain, len) == 0)
            return true;
    }
    return false;
}

void config_defaults_foreach(void (*fn)(const char *section, const char *key, const char *def,
                                        void *arg),
                             void *arg)
{
    for (size_t i = 0; i < NKEYS; i++)
        fn(sections[keys[i].sec].name, keys[i].name, keys[i].def, arg);
}

/* ---------------------------------------------------------------- sections */

static size_t plan_open(struct loader *L, const char *name, const char *file, int line)
{
    struct config *c = L->c;
    for (size_t i = 0; i < c->nplans; i++)
        if (strcmp(c->plans[i].name, name) == 0)
            return i;
    c->plans = xrealloc(c->plans, (c->nplans + 1) * sizeof(*c->plans));
    L->plan_st = xrealloc(L->plan_st, (c->nplans + 1) * sizeof(*L->plan_st));
    struct plan *p = &c->plans[c->nplans];
    memset(p, 0, sizeof(*p));
    defaults_apply(p, SEC_PLAN);
    p->name = xstrdup(name);
    memset(&L->plan_st[c->nplans], 0, sizeof(L->plan_st[0]));
    L->plan_st[c->nplans].head = (struct origin){file, line};
    return c->nplans++;
}

static size_t relay_open(struct loader *L, const char *name, const char *file, int line)
{
    struct config *c = L->c;
    for (size_t i = 0; i < c->nrelays; i++)
        if (strcmp(c->relays[i].name, name) == 0)
            return i;
    c->relays = xrealloc(c->relays, (c->nrelays + 1) * sizeof(*c->relays));
    L->relay_st = xrealloc(L->relay_st, (c->nrelays + 1) * sizeof(*L->relay_st));
    struct relay_conf *r = &c->relays[c->nrelays];
    memset(r, 0, sizeof(*r));
    defaults_apply(r, SEC_RELAY);
    r->name = xstrdup(name);
    r->file = xstrdup(file);
    r->line = line;
    memset(&L->relay_st[c->nrelays], 0, sizeof(L->relay_st[0]));
    L->relay_st[c->nrelays].head = (struct origin){file, line};
    return c->nrelays++;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* s points at '['. Sets cur->sec (SEC_BAD after a problem). */
static void section_header(struct loader *L, struct cursor *cur, char *s)
{
    char *end = strchr(s, ']');
    cur->sec = SEC_BAD;
    if (end == NULL) {
        problem(L, cur->file, cur->line, "section header without ']'");
        return;
    }
    char *rest = end + 1;
    while (is_blank(*rest))
        rest++;
    if (*rest != '\0' && *rest != '#') {
        problem(L, cur->file, cur->line, "text after section header");
        return;
    }
    *end = '\0';
    char *words[3] = {NULL, NULL, NULL};
    int nw = 0;
    for (char *p = s + 1; *p;) {
        while (is_blank(*p))
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (nw == 3)
            break;
        words[nw++] = p;
        while (*p && !is_blank(*p))
            p++;
    }
    if (nw == 0) {
        problem(L, cur->file, cur->line, "empty section header");
        return;
    }
    int sec = -1;
    for (int i = 0; i < SEC_COUNT; i++)
        if (strcmp(words[0], sections[i].name) == 0)
            sec = i;
    if (sec < 0) {
        problem(L, cur->file, cur->line, "unknown section [%s]", scrub(words[0]));
        return;
    }
    if (sections[sec].named && nw != 2) {
        problem(L, cur->file, cur->line, "section [%s] needs one name: [%s NAME]", words[0],
                words[0]);
        return;
    }
    if (!sections[sec].named && nw != 1) {
        problem(L, cur->file, cur->line, "section [%s] takes no name", words[0]);
        return;
    }
    if (sections[sec].named) {
        const char *why = check_name(words[1]);
        if (why) {
            problem(L, cur->file, cur->line, "[%s %s]: %s", words[0], scrub(words[1]), why);
            return;
        }
        cur->idx = sec == SEC_PLAN ? plan_open(L, words[1], cur->file, cur->line)
                                   : relay_open(L, words[1], cur->file, cur->line);
    }
    if (sec == SEC_TLS && L->tls_head.line == 0)
        L->tls_head = (struct origin){cur->file, cur->line};
    cur->sec = sec;
}

/*
 * Splits "key = value" in place. The value loses surrounding blanks and a
 * trailing " # comment"; a double-quoted value is unquoted. Returns NULL or
 * the problem.
 */
static const char *split_key_value(char *s, char **key, char **value)
{
    char *p = s;
    while (*p && is_name_char(*p))
        p++;
    if (p == s)
        return "expected 'key = value'";
    char *kend = p;
    while (is_blank(*p))
        p++;
    if (*p != '=')
        return "expected 'key = value'";
    *kend = '\0';
    p++;
    while (is_blank(*p))
        p++;
    *key = s;
    if (*p == '"') {
        char *out = p, *in = p + 1;
        for (;; in++) {
            if (*in == '\0')
                return "unterminated quoted value";
            if (*in == '"')
                break;
            if (*in == '\\' && (in[1] == '"' || in[1] == '\\'))
                in++;
            *out++ = *in;
        }
        in++;
        while (is_blank(*in))
            in++;
        if (*in != '\0' && *in != '#')
            return "text after quoted value";
        *out = '\0';
        *value = p;
        return NULL;
    }
    char *v = p;
    for (char *q = p; *q; q++) {
        if (*q == '#' && (q == v || is_blank(q[-1]))) {
            *q = '\0';
            break;
        }
    }
    char *e = v + strlen(v);
    while (e > v && is_blank(e[-1]))
        *--e = '\0';
    *value = v;
    return NULL;
}

static void load_file(struct loader *L, const char *path, const struct origin *from, int depth);

static bool has_glob_magic(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static void include(struct loader *L, struct cursor *cur, const char *pattern)
{
    struct origin here = {cur->file, cur->line};
    if (*pattern == '\0') {
        problem(L, cur->file, cur->line, "include: empty value");
        return;
    }
    if (cur->depth + 1 > CONFIG_INCLUDE_DEPTH_MAX) {
        problem(L, cur->file, cur->line, "include nested too deep (max %d)",
                CONFIG_INCLUDE_DEPTH_MAX);
        return;
    }
    char *full;
    const char *slash = strrchr(cur->file, '/');
    if (pattern[0] == '/' || slash == NULL)
        full = xstrdup(pattern);
    else
        full = xasprintf("%.*s/%s", (int)(slash - cur->file), cur->file, pattern);
    if (!has_glob_magic(pattern)) {
        load_file(L, full, &here, cur->depth + 1);
        free(full);
        return;
    }
    glob_t g;
    int rc = glob(full, GLOB_ERR, NULL, &g);
    if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            load_file(L, g.gl_pathv[i], &here, cur->depth + 1);
    } else if (rc != GLOB_NOMATCH) {
        problem(L, cur->file, cur->line, "include '%s': cannot read the directory", scrub(full));
    }
    globfree(&g);
    free(full);
}

static void key_line(struct loader *L, struct cursor *cur, const char *key, const char *value)
{
    char err[CONFIG_LINE_MAX];
    struct config *c = L->c;

    if (strcmp(key, "include") == 0) {
        include(L, cur, value);
        return;
    }
    if (cur->sec == SEC_BAD)
        return;
    if (cur->sec == SEC_NONE) {
        problem(L, cur->file, cur->line, "key '%s' outside a section", scrub(key));
        return;
    }
    size_t idx;
    const struct cf_key *k = key_find(cur->sec, key, &idx);
    void *base = c;
    struct origin *seen = L->seen;
    if (cur->sec == SEC_PLAN) {
        base = &c->plans[cur->idx];
        seen = L->plan_st[cur->idx].seen;
    } else if (cur->sec == SEC_RELAY) {
        base = &c->relays[cur->idx];
        seen = L->relay_st[cur->idx].seen;
    }
    if (k == NULL && cur->sec == SEC_RELAY) {
        struct relay_conf *r = &c->relays[cur->idx];
        for (size_t i = 0; i < r->nparams; i++) {
            if (strcmp(r->params[i].key, key) == 0) {
                problem(L, cur->file, cur->line, "duplicate key '%s' (first set at %s:%d)",
                        scrub(key), r->params[i].file, r->params[i].line);
                return;
            }
        }
        r->params = xrealloc(r->params, (r->nparams + 1) * sizeof(*r->params));
        r->params[r->nparams++] =
            (struct kv){xstrdup(key), xstrdup(value), xstrdup(cur->file), cur->line};
        return;
    }
    if (k == NULL) {
        if (cur->sec == SEC_PLAN)
            problem(L, cur->file, cur->line, "unknown key '%s' in [plan %s]", scrub(key),
                    c->plans[cur->idx].name);
        else
            problem(L, cur->file, cur->line, "unknown key '%s' in [%s]", scrub(key),
                    sections[cur->sec].name);
        return;
    }
    if (seen[idx].line) {
        problem(L, cur->file, cur->line, "duplicate key '%s' (first set at %s:%d)", scrub(key),
                seen[idx].file, seen[idx].line);
        return;
    }
    seen[idx] = (struct origin){cur->file, cur->line};
    if (key_set(k, base, value, err, sizeof(err)) < 0)
        problem(L, cur->file, cur->line, "%s", err);
}

static void parse_line(struct loader *L, struct cursor *cur, char *s)
{
    while (is_blank(*s))
        s++;
    if (*s == '\0' || *s == '#')
        return;
    if (*s == '[') {
        section_header(L, cur, s);
        return;
    }
    char *key, *value;
    const char *why = split_key_value(s, &key, &value);
    if (why) {
        problem(L, cur->file, cur->line, "%s", why);
        return;
    }
    key_line(L, cur, key, value);
}

static void parse_text(struct loader *L, const char *file, int depth, char *text, size_t len)
{
    struct cursor cur = {.file = file, .line = 0, .depth = depth, .sec = SEC_NONE};
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        cur.line++;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > CONFIG_LINE_MAX)
            problem(L, file, cur.line, "line too long (%zu bytes, max %d)", n, CONFIG_LINE_MAX);
        else if (memchr(p, '\0', n))
            problem(L, file, cur.line, "NUL byte in line");
        else {
            p[n] = '\0';
            parse_line(L, &cur, p);
        }
        p = eol + 1;
    }
}

static void load_file(struct loader *L, const char *path, const struct origin *from, int depth)
{
    char *real = realpath(path, NULL);
    char *text = NULL;
    size_t len = 0;
    if (real == NULL || read_file(real, CONFIG_FILE_MAX, &text, &len) < 0) {
        char why[128], max[32];
        format_size(CONFIG_FILE_MAX, max, sizeof(max));
        if (errno == EFBIG)
            snprintf(why, sizeof(why), "file too big (max %s)", max);
        else
            snprintf(why, sizeof(why), "%s", strerror(errno));
        if (from)
            problem(L, from->file, from->line, "include '%s': %s", scrub(path), why);
        else
            problem(L, path, 0, "cannot read: %s", why);
        free(real);
        return;
    }
    for (int i = 0; i < depth; i++) {
        if (strcmp(L->stack[i], real) == 0) {
            problem(L, from->file, from->line, "include loop: '%s' is already being read",
                    scrub(path));
            free(real);
            free(text);
            return;
        }
    }
    L->files = xrealloc(L->files, (L->nfiles + 1) * sizeof(*L->files));
    char *name = L->files[L->nfiles++] = xstrdup(path);
    L->stack[depth] = real;
    parse_text(L, name, depth, text, len);
    L->stack[depth] = NULL;
    free(real);
    free(text);
}

/* ---------------------------------------------------------------- after */

static char *path_absolute(const char *dir, const char *v)
{
    if (v[0] == '/')
        return xstrdup(v);
    return xasprintf("%s/%s", dir, v);
}

static void make_absolute(struct config *c, char **slot)
{
    if (*slot == NULL)
        return;
    char *abs = path_absolute(c->dir, *slot);
    free(*slot);
    *slot = abs;
}

/* The origin of global key a if set, else of b, else no line. */
static struct origin origin_of(struct loader *L, size_t a, size_t b)
{
    if (L->seen[a].line)
        return L->seen[a];
    if (L->seen[b].line)
        return L->seen[b];
    return (struct origin){L->c->path, 0};
}

/* Checks that a <= b for two global keys of the same type; reports at a (or b). */
static void check_order(struct loader *L, enum cf_section sa, const char *a, enum cf_section sb,
                        const char *b)
{
    size_t ia = key_index(sa, a), ib = key_index(sb, b);
    const struct cf_key *ka = &keys[ia], *kb = &keys[ib];
    const char *pa = (const char *)L->c + ka->off, *pb = (const char *)L->c + kb->off;
    uint64_t va, vb;
    if (ka->type == CF_SIZE || ka->type == CF_DURATION)
        va = *(const uint64_t *)pa;
    else
        va = *(const unsigned *)pa;
    if (kb->type == CF_SIZE || kb->type == CF_DURATION)
        vb = *(const uint64_t *)pb;
    else
        vb = *(const unsigned *)pb;
    if (va <= vb)
        return;
    char sva[32], svb[32];
    format_bound(ka, va, sva, sizeof(sva));
    format_bound(kb, vb, svb, sizeof(svb));
    struct origin o = origin_of(L, ia, ib);
    problem(L, o.file, o.line, "%s (%s) must not be larger than %s (%s)", a, sva, b, svb);
}

static void hostname_default(struct config *c)
{
    if (c->hostname)
        return;
    char host[HOSTNAME_MAX + 1];
    if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0' || check_hostname(host)) {
        c->hostname = xstrdup("localhost");
        return;
    }
    host[HOSTNAME_MAX] = '\0';
    c->hostname = xstrdup(host);
}

static void check_files(struct loader *L)
{
    struct config *c = L->c;
    if (L->tls_head.line == 0)
        return;
    c->tls_enabled = true;
    static const char *const names[] = {"cert", "key"};
    char **slots[] = {&c->tls_cert, &c->tls_key};
    for (int i = 0; i < 2; i++) {
        size_t idx = key_index(SEC_TLS, names[i]);
        struct stat st;
        if (*slots[i] == NULL)
            problem(L, L->tls_head.file, L->tls_head.line, "[tls] needs %s", names[i]);
        else if (stat(*slots[i], &st) < 0)
            problem(L, L->seen[idx].file, L->seen[idx].line, "%s: '%s': %s", names[i],
                    scrub(*slots[i]), strerror(errno));
        else if (!S_ISREG(st.st_mode))
            problem(L, L->seen[idx].file, L->seen[idx].line, "%s: '%s': not a regular file",
                    names[i], scrub(*slots[i]));
    }
}

static void check_plans(struct loader *L)
{
    struct config *c = L->c;
    size_t idx_mtan = key_index(SEC_PLAN, "mtan");
    /* Before the built-in plan is added: only configured plans have loader state. */
    for (size_t i = 0; i < c->nplans; i++) {
        if (!c->plans[i].mtan || c->sms_routes.n > 0)
            continue;
        struct origin o = L->plan_st[i].seen[idx_mtan];
        problem(L, o.file, o.line, "[plan %s] mtan = yes needs [sms] routes", c->plans[i].name);
    }
    if (config_plan(c, PLAN_BUILTIN_NAME) == NULL) {
        c->plans = xrealloc(c->plans, (c->nplans + 1) * sizeof(*c->plans));
        struct plan *p = &c->plans[c->nplans++];
        memset(p, 0, sizeof(*p));
        defaults_apply(p, SEC_PLAN);
        p->name = xstrdup(PLAN_BUILTIN_NAME);
    }
    if (c->default_plan && config_plan(c, c->default_plan) == NULL) {
        struct origin o = L->seen[key_index(SEC_SERVER, "default_plan")];
        problem(L, o.file, o.line, "default_plan: no plan named '%s'", c->default_plan);
    }
}

/* ---------------------------------------------------------------- relays */

/*
 * The keys each relay driver takes (sendlink/relay_*.c read them). Values
 * are checked here so that check-config finds a bad relay with file:line;
 * paths are made absolute like every other path. A `plugin` relay passes
 * the keys it does not know to the plug-in's init.
 */
enum rk_type {
    RK_URL,      /* http(s)://…, placeholders allowed */
    RK_METHOD,   /* GET | POST | PUT */
    RK_TEXT,     /* printable, one line */
    RK_TEMPLATE, /* printable, relay placeholders */
    RK_HEADER,   /* header value template, no {text} */
    RK_REGEX,    /* POSIX extended regular expression */
    RK_USERPASS, /* user:password */
    RK_BOOL,
    RK_DURATION, /* 1s to RELAY_TIMEOUT_MAX */
    RK_PATH,     /* a file that must exist (plugin) */
    RK_OUTPATH,  /* a file to append to: its directory must exist */
    RK_COMMAND,  /* absolute executable path, then arguments */
    RK_ADDRESS,  /* local@domain with {to} or {to_digits} */
};

#define RK_REQUIRED 1u
#define RK_PREFIX 2u /* key is a prefix: header.NAME */
/* Longest per-route timeout. */
#define RELAY_TIMEOUT_MAX 60
/* Longest HTTP header name of header.NAME. */
#define RELAY_HEADER_NAME_MAX 64

struct relay_key {
    const char *driver;
    const char *key;
    enum rk_type type;
    unsigned flags;
};

static const struct relay_key relay_keys[] = {
    {"http", "url", RK_URL, RK_REQUIRED},      {"http", "method", RK_METHOD, 0},
    {"http", "content_type", RK_TEXT, 0},      {"http", "body", RK_TEMPLATE, 0},
    {"http", "header.", RK_HEADER, RK_PREFIX}, {"http", "success_match", RK_REGEX, 0},
    {"http", "basic_auth", RK_USERPASS, 0},    {"http", "tls_verify", RK_BOOL, 0},
    {"http", "timeout", RK_DURATION, 0},       {"exec", "command", RK_COMMAND, RK_REQUIRED},
    {"exec", "timeout", RK_DURATION, 0},       {"smtp", "address", RK_ADDRESS, RK_REQUIRED},
    {"smtp", "subject", RK_TEXT, 0},           {"file", "path", RK_OUTPATH, RK_REQUIRED},
    {"plugin", "path", RK_PATH, RK_REQUIRED},  {"plugin", "timeout", RK_DURATION, 0},
};

const char *config_relay_param(const struct relay_conf *r, const char *key)
{
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].key, key) == 0)
            return r->params[i].value;
    return NULL;
}

static const char *check_printable(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* Checks one relay value; may rewrite it (paths become absolute). */
static const char *relay_value_check(struct loader *L, const struct relay_key *k, struct kv *p,
                                     char *why, size_t whysz)
{
    const char *v = p->value;
    const char *r;
    if (*v == '\0')
        return "empty value";
    switch (k->type) {
    case RK_URL:
        if ((r = check_url(v)) != NULL)
            return r;
        return check_placeholders(v, relay_placeholders);
    case RK_METHOD:
        if (strcmp(v, "GET") && strcmp(v, "POST") && strcmp(v, "PUT"))
            return "must be GET, POST or PUT";
        return NULL;
    case RK_TEXT:
        return check_printable(v);
    case RK_TEMPLATE:
        if ((r = check_printable(v)) != NULL)
            return r;
        return check_placeholders(v, relay_placeholders);
    case RK_HEADER: {
        const char *name = p->key + strlen(k->key);
        size_t n = strlen(name);
        if (n == 0 || n > RELAY_HEADER_NAME_MAX)
            return "needs a header name: header.NAME = value";
        for (size_t i = 0; i < n; i++)
            if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                  (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
                return "header name: letters, digits and '-'";
        if ((r = check_printable(v)) != NULL)
            return r;
        if (strstr(v, "{text}"))
            return "{text} cannot go into a header";
        return check_placeholders(v, relay_placeholders);
    }
    case RK_REGEX: {
        regex_t re;
        int rc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re, msg, sizeof(msg));
            snprintf(why, whysz, "not a regular expression: %s", msg);
            return why;
        }
        regfree(&re);
        return NULL;
    }
    case RK_USERPASS:
        if (strchr(v, ':') == NULL || v[0] == ':')
            return "must be user:password";
        return check_printable(v);
    case RK_BOOL: {
        bool b;
        return parse_bool(v, &b) < 0 ? "bad boolean (yes or no)" : NULL;
    }
    case RK_DURATION: {
        uint64_t d;
        if (parse_duration(v, &d) < 0)
            return "bad duration (e.g. 5s, 1m)";
        if (d < 1 || d > RELAY_TIMEOUT_MAX)
            return "must be 1s to 60s";
        return NULL;
    }
    case RK_PATH:
    case RK_OUTPATH: {
        char *abs = path_absolute(L->c->dir, v);
        free(p->value);
        p->value = abs;
        struct stat st;
        if (k->type == RK_PATH) {
            if (stat(abs, &st) < 0) {
                snprintf(why, whysz, "'%s': %s", scrub(abs), strerror(errno));
                return why;
            }
            return S_ISREG(st.st_mode) ? NULL : "not a regular file";
        }
        char *dir = xstrdup(abs);
        *strrchr(dir, '/') = '\0';
        int bad = stat(dir[0] ? dir : "/", &st) < 0 || !S_ISDIR(st.st_mode);
        if (bad)
            snprintf(why, whysz, "directory '%s' does not exist", scrub(dir));
        free(dir);
        return bad ? why : NULL;
    }
    case RK_COMMAND: {
        if (v[0] != '/')
            return "must start with an absolute path (no shell is used)";
        if ((r = check_printable(v)) != NULL)
            return r;
        if ((r = check_placeholders(v, relay_placeholders)) != NULL)
            return r;
        if (strstr(v, "{text}"))
            return "{text} goes on stdin, not on the command line";
        size_t n = strcspn(v, " \t");
        char *exe = xstrndup(v, n);
        int bad = access(exe, X_OK) < 0;
        if (bad)
            snprintf(why, whysz, "'%s': %s", scrub(exe), strerror(errno));
        free(exe);
        return bad ? why : NULL;
    }
    case RK_ADDRESS: {
        if (strstr(v, "{to}") == NULL && strstr(v, "{to_digits}") == NULL)
            return "must contain {to} or {to_digits}, e.g. {to_digits}@sms.example.net";
        if ((r = check_placeholders(v, relay_placeholders)) != NULL)
            return r;
        if (strstr(v, "{text}") || strstr(v, "{id}"))
            return "only {to} and {to_digits} may go into the address";
        /* The address with a sample number must be a plain address. */
        char sample[ADDRESS_MAX + 64];
        size_t o = 0;
        for (const char *q = v; *q && o + 20 < sizeof(sample);) {
            if (strncmp(q, "{to_digits}", 11) == 0) {
                o += (size_t)snprintf(sample + o, sizeof(sample) - o, "41791234567");
                q += 11;
            } else if (strncmp(q, "{to}", 4) == 0) {
                o += (size_t)snprintf(sample + o, sizeof(sample) - o, "+41791234567");
                q += 4;
            } else {
                sample[o++] = *q++;
            }
        }
        sample[o] = '\0';
        return check_address(sample) ? "not an address template (local@domain)" : NULL;
    }
    }
    return NULL;
}

static const struct relay_key *relay_key_find(const char *driver, const char *key)
{
    for (size_t i = 0; i < sizeof(relay_keys) / sizeof(relay_keys[0]); i++) {
        const struct relay_key *k = &relay_keys[i];
        if (strcmp(k->driver, driver) != 0)
            continue;
        if ((k->flags & RK_PREFIX) ? strncmp(key, k->key, strlen(k->key)) == 0
                                   : strcmp(key, k->key) == 0)
            return k;
    }
    return NULL;
}

static void check_relay_params(struct loader *L, struct relay_conf *r)
{
    char why[CONFIG_LINE_MAX];
    for (size_t j = 0; j < r->nparams; j++) {
        struct kv *p = &r->params[j];
        const struct relay_key *k = relay_key_find(r->driver, p->key);
        if (k == NULL) {
            if (strcmp(r->driver, "plugin") != 0)
                problem(L, p->file, p->line, "unknown key '%s' for driver %s in [relay %s]",
                        scrub(p->key), r->driver, r->name);
            else if (check_printable(p->value))
                problem(L, p->file, p->line, "%s: must not contain control characters",
                        scrub(p->key));
            continue;
        }
        const char *bad = relay_value_check(L, k, p, why, sizeof(why));
        if (bad)
            problem(L, p->file, p->line, "%s: %s", scrub(p->key), bad);
    }
    for (size_t i = 0; i < sizeof(relay_keys) / sizeof(relay_keys[0]); i++) {
        const struct relay_key *k = &relay_keys[i];
        if (strcmp(k->driver, r->driver) != 0 || !(k->flags & RK_REQUIRED))
            continue;
        if (config_relay_param(r, k->key) == NULL)
            problem(L, r->file, r->line, "[relay %s] driver %s needs %s", r->name, r->driver,
                    k->key);
    }
    if (strcmp(r->driver, "http") == 0) {
        const char *method = config_relay_param(r, "method");
        if (method && strcmp(method, "GET") == 0 && config_relay_param(r, "body")) {
            for (size_t j = 0; j < r->nparams; j++)
                if (strcmp(r->params[j].key, "body") == 0)
                    problem(L, r->params[j].file, r->params[j].line,
                            "body: a GET request has no body (use method = POST)");
        }
    }
}

static void check_relays(struct loader *L)
{
    struct config *c = L->c;
    for (size_t i = 0; i < c->nrelays; i++)
        if (c->relays[i].driver == NULL)
            problem(L, c->relays[i].file, c->relays[i].line,
                    "[relay %s] needs a driver (http, exec, smtp, file or plugin)",
                    c->relays[i].name);
    struct origin o = L->seen[key_index(SEC_SMS, "routes")];
    for (size_t i = 0; i < c->sms_routes.n; i++) {
        const char *name = c->sms_routes.v[i];
        bool found = false;
        for (size_t j = 0; j < c->nrelays; j++)
            found = found || strcmp(c->relays[j].name, name) == 0;
        if (!found)
            problem(L, o.file, o.line, "routes: no [relay %s]", name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->sms_routes.v[j], name) == 0)
                problem(L, o.file, o.line, "routes: '%s' listed twice", name);
    }
    for (size_t i = 0; i < c->nrelays; i++)
        if (c->relays[i].driver)
            check_relay_params(L, &c->relays[i]);
}

static bool prefix_match(const struct strlist *l, const char *phone)
{
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(phone, l->v[i], strlen(l->v[i])) == 0)
            return true;
    return false;
}

bool config_sms_number_allowed(const struct config *c, const char *phone)
{
    if (c->sms_allowed_prefixes.n > 0 && !prefix_match(&c->sms_allowed_prefixes, phone))
        return false;
    return !prefix_match(&c->sms_denied_prefixes, phone);
}

static void check_mailin(struct loader *L)
{
    struct config *c = L->c;
    struct origin o = L->seen[key_index(SEC_MAILIN, "domains")];
    for (size_t i = 0; i < c->domains.n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(c->domains.v[i], c->domains.v[j]) == 0)
                problem(L, o.file, o.line, "domains: '%s' listed twice", c->domains.v[i]);
    /* RFC 5321 4.5.1: every domain we accept mail for must accept postmaster@. */
    if (c->domains.n > 0 && c->postmaster == NULL)
        problem(L, o.file, o.line, "domains need [mailin] postmaster (RFC 5321 4.5.1)");
}

static void check_sms_template(struct loader *L)
{
    struct config *c = L->c;
    /* Each {code} becomes mtan_length digits, {minutes} at most 2; {sender} is
     * shortened at send time to what is left. */
    size_t len = 0;
    for (const char *p = c->sms_template; *p;) {
        if (strncmp(p, "{code}", 6) == 0) {
            len += c->mtan_length;
            p += 6;
        } else if (strncmp(p, "{minutes}", 9) == 0) {
            len += 2;
            p += 9;
        } else if (strncmp(p, "{sender}", 8) == 0) {
            p += 8;
        } else {
            len++;
            p++;
        }
    }
    if (len > SMS_CHARS_MAX) {
        size_t ia = key_index(SEC_SENDLINK, "sms_template");
        struct origin o = origin_of(L, ia, ia);
        problem(L, o.file, o.line, "sms_template: %zu characters with the code, max %d (one SMS)",
                len, SMS_CHARS_MAX);
    }
}

static void derive_defaults(struct config *c)
{
    hostname_default(c);
    if (c->public_url == NULL)
        c->public_url = xasprintf("https://%s", c->hostname);
    size_t ul = strlen(c->public_url);
    while (ul > 0 && c->public_url[ul - 1] == '/')
        c->public_url[--ul] = '\0';
    if (c->from == NULL)
        c->from = xasprintf("sealpost@%s", c->hostname);
    if (c->dkim_domain == NULL)
        c->dkim_domain = xstrdup(strrchr(c->from, '@') + 1);
    make_absolute(c, &c->data_dir);
    if (c->dkim_key == NULL)
        c->dkim_key = xasprintf("%s/dkim/%s.private", c->data_dir, c->dkim_selector);
    make_absolute(c, &c->dkim_key);
    make_absolute(c, &c->master_key);
    make_absolute(c, &c->tls_cert);
    make_absolute(c, &c->tls_key);
}

static void cross_checks(struct loader *L)
{
    check_order(L, SEC_SENDLINK, "default_expiry", SEC_SENDLINK, "max_expiry");
    check_order(L, SEC_MAILIN, "parser_cpu_limit", SEC_MAILIN, "parser_timeout");
    check_order(L, SEC_MAILIN, "header_size_limit", SEC_MAILIN, "message_size_limit");
    check_order(L, SEC_MAILIN, "line_length_limit", SEC_MAILIN, "data_line_length_limit");
    check_order(L, SEC_MAILIN, "max_connections_per_ip", SEC_MAILIN, "max_connections");
    check_order(L, SEC_MAILIN, "command_timeout", SEC_MAILIN, "session_deadline");
    check_order(L, SEC_MAILIN, "data_timeout", SEC_MAILIN, "session_deadline");
    check_order(L, SEC_OUTBOUND, "retry_min", SEC_OUTBOUND, "retry_max");
    check_order(L, SEC_OUTBOUND, "retry_max", SEC_OUTBOUND, "max_queue_age");
    check_mailin(L);
    check_sms_template(L);
    check_files(L);
    check_relays(L);
    check_plans(L);
}

int config_load(const char *path, struct config **out, struct diag *d)
{
    *out = NULL;
    struct config *c = xcalloc(1, sizeof(*c));
    struct loader L = {.c = c, .d = d};
    size_t before = d->n;

    c->path = xstrdup(path ? path : "(no config file)");
    for (int s = SEC_SERVER; s <= SEC_SMS; s++)
        defaults_apply(c, (enum cf_section)s);
    char *real = path ? realpath(path, NULL) : NULL;
    if (real) {
        *strrchr(real, '/') = '\0';
        c->dir = xstrdup(real[0] ? real : "/");
        free(real);
    } else {
        c->dir = xstrdup(".");
    }
    if (path == NULL)
        problem(&L, c->path, 0, "no config file given");
    else
        load_file(&L, path, NULL, 0);
    derive_defaults(c);
    cross_checks(&L);

    for (size_t i = 0; i < L.nfiles; i++)
        free(L.files[i]);
    free(L.files);
    free(L.plan_st);
    free(L.relay_st);
    if (L.errors > 0 || d->n > before) {
        config_free(c);
        return -1;
    }
    c->refs = 1;
    *out = c;
    return 0;
}
