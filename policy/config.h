/*
 * config — the parsed sealpost configuration (see docs and
 * etc/sealpost.conf.example for every key).
 *
 * A config is immutable once loaded and reference counted: SIGHUP loads a
 * new one and swaps it in, sessions in progress keep the snapshot they hold
 * (config_ref/config_unref). Every key has one name, one default and one
 * bound, declared in one table in policy/config.c (STYLE.md 18).
 *
 * Sizes are bytes, durations are seconds.
 */
#ifndef SEALPOST_CONFIG_H
#define SEALPOST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the config language (see policy/config.c). */
#define CONFIG_LINE_MAX 4096          /* bytes per line, newline excluded */
#define CONFIG_FILE_MAX (1024 * 1024) /* bytes per file */
#define CONFIG_INCLUDE_DEPTH_MAX 8    /* include nesting; the main file is 0 */
#define CONFIG_DIAG_MAX 100           /* problems kept; one more says "too many" */

/* A list value: "a, b, c". */
struct strlist {
    char **v;
    size_t n;
};

/* A raw key/value pair kept with its position (relay sections). */
struct kv {
    char *key;
    char *value;
    char *file;
    int line;
};

/* Name of the built-in plan used when none is configured. */
#define PLAN_BUILTIN_NAME "default"

struct plan {
    char *name;
    uint64_t storage_quota; /* bytes of vault per user; 0 = unlimited */
    uint64_t max_file_size; /* largest secure-send file */
    bool mtan;              /* may create protect=mtan sends */
    bool code;              /* may create protect=code sends */
    bool choose_expiry;     /* may pick expiry (else default_expiry) */
};

struct relay_conf {
    char *name;
    char *driver;      /* http | exec | smtp | file | plugin */
    struct kv *params; /* every key of the section but driver */
    size_t nparams;
    char *file;
    int line;
};

struct config {
    char *path; /* the main file as given */
    char *dir;  /* its directory: base of relative paths */

    /* [server] */
    char *hostname;
    char *data_dir; /* absolute after load */
    char *smtp_listen;
    char *http_listen;
    char *public_url;
    char *user;         /* NULL: do not drop privileges */
    char *default_plan; /* NULL: PLAN_BUILTIN_NAME */
    char *kdf;          /* interactive | moderate | sensitive */
    char *master_key;   /* absolute path of the 32-byte server secret */
    bool log_syslog;
    unsigned workers; /* CPU pool size; 0 = number of cores */

    /* [tls] — tls_enabled when the section is present */
    bool tls_enabled;
    char *tls_cert;
    char *tls_key;

    /* [mailin] */
    struct strlist domains;
    uint64_t message_size_limit;
    unsigned max_recipients;
    char *postmaster;
    bool dkim_verify;
    bool spf;
    uint64_t dns_timeout;
    uint64_t parser_memory_limit;
    uint64_t parser_cpu_limit;
    uint64_t parser_timeout;
    unsigned mime_max_parts;
    unsigned mime_max_depth;
    uint64_t header_size_limit;
    unsigned line_length_limit;      /* commands, RFC 5321: 1000 with CRLF */
    unsigned data_line_length_limit; /* lenient cap for DATA lines */
    uint64_t command_timeout;
    uint64_t data_timeout;
    uint64_t session_deadline;
    uint64_t min_data_rate; /* bytes per second over DATA */
    uint64_t greet_pause;   /* wait before the banner to catch early talkers */
    unsigned max_errors;
    unsigned max_connections;
    unsigned max_connections_per_ip;

    /* [outbound] */
    char *relayhost;
    char *from;
    char *dkim_domain;
    char *dkim_selector;
    char *dkim_key; /* absolute after load */
    uint64_t retry_min;
    uint64_t retry_max;
    uint64_t max_queue_age;
    char *from_name;       /* display name of the sender, NULL: none */
    uint64_t smtp_timeout; /* per SMTP command to the relay host */

    /* [sendlink] */
    uint64_t default_expiry;
    uint64_t max_expiry;
    unsigned max_downloads;
    unsigned code_length;
    unsigned code_max_attempts;
    uint64_t lockout;
    unsigned mtan_length;
    uint64_t mtan_ttl;
    unsigned mtan_max_sends;
    char *sms_template;
    bool notify_sender;
    uint64_t min_expiry;     /* shortest lifetime a send may ask for */
    uint64_t sweep_interval; /* how often the sweeper destroys ended sends */
    unsigned api_rate_limit; /* API requests per minute per API key; 0 = off */
    unsigned http_threads;   /* HTTP worker threads */
    unsigned http_max_connections;
    uint64_t http_timeout; /* idle HTTP connection */

    /* [sms] */
    struct strlist sms_routes;
    uint64_t sms_route_timeout;          /* per route, unless its [relay] sets timeout */
    unsigned sms_failure_threshold;      /* consecutive failures before a cool-down */
    uint64_t sms_cooldown;               /* a failing route is skipped this long */
    unsigned sms_max_per_number_hour;    /* 0: no limit */
    unsigned sms_max_per_sender_day;     /* 0: no limit */
    unsigned sms_max_per_country_hour;   /* per E.164 country code; 0: no limit */
    unsigned sms_max_global_hour;        /* 0: no limit */
    struct strlist sms_allowed_prefixes; /* "+41", …; empty: every number */
    struct strlist sms_denied_prefixes;

    /* [plan NAME] (always at least the built-in default plan) */
    struct plan *plans;
    size_t nplans;

    /* [relay NAME] */
    struct relay_conf *relays;
    size_t nrelays;

    int refs; /* atomic reference count */
};

/* Problems found while loading: "file:line: message" strings. */
struct diag {
    char **msgs;
    size_t n;
};
void diag_free(struct diag *d);

/*
 * Loads and validates path (and its includes). On success returns 0 and a
 * config with one reference. On any problem returns -1, *out is NULL and d
 * holds every problem found (the parser goes on after an error so that one
 * run shows them all).
 */
int config_load(const char *path, struct config **out, struct diag *d)
    __attribute__((warn_unused_result));
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* The value of key in a [relay NAME] section, or NULL when not set. */
const char *config_relay_param(const struct relay_conf *r, const char *key);
/* True if phone (E.164) may get SMS: it matches an allowed prefix (when any
 * are set) and no denied one. */
bool config_sms_number_allowed(const struct config *c, const char *phone);

/* The plan by name; NULL name means the default plan. NULL if unknown. */
const struct plan *config_plan(const struct config *c, const char *name);
/* True if domain (case-insensitive) is one of [mailin] domains. */
bool config_is_mailin_domain(const struct config *c, const char *domain);

/*
 * Built-in defaults, for documentation and tests: calls fn once per key in
 * table order with its section, name and default as written in the config
 * language ("" when it has none).
 */
void config_defaults_foreach(void (*fn)(const char *section, const char *key, const char *def,
                                        void *arg),
                             void *arg);

#endif
