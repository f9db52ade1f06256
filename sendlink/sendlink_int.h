/*
 * sendlink_int — what the files of sendlink/ share: the key derivations of
 * a send (sendlink_crypto.c, specified in docs/FORMATS.md "Send"), limits,
 * and the HTTP service's state (sendlink_http.c, _api.c, _page.c).
 */
#ifndef SEALPOST_SENDLINK_INT_H
#define SEALPOST_SENDLINK_INT_H

#include "lib/db.h"
#include "lib/rand.h"
#include "policy/config.h"
#include "sendlink/sendlink.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ---- */

#define SEND_TOKEN_BYTES 32 /* 256 random bits (RULES.md 9: >= 128) */
#define SEND_TOKEN_CHARS 43 /* base64url without padding */
#define SEND_KEY_BYTES 32
#define SEND_WRAPPED_BYTES (24 + 32 + 16) /* nonce, file key, tag */
#define SEND_CODE_MAX 32                  /* characters of a security code */
#define SEND_TO_MAX 254                   /* RFC 5321 path minus the brackets */
#define SEND_MESSAGE_MAX 2000             /* bytes of the sender's message */
#define SEND_FILENAME_MAX 255             /* bytes, after cleaning (RULES.md 7) */
#define SEND_FIELD_MAX 4096               /* any other form field */
#define SEND_PAGE_MAX (16 * 1024)         /* page record, decrypted */
#define SEND_SECRET_MAX 1024              /* recipient or phone, decrypted */
#define SEND_LOCK_ROUNDS 4                /* lockouts before a link locks for good */
#define SEND_PAGE_EVENTS_MAX 20           /* page_opened events kept per send */
#define SEND_DIR "sends"                  /* DATA_DIR/sends/ID */
#define SEND_TMP_DIR "tmp"                /* DATA_DIR/tmp/send-ID.tmp */

/* Key derivation contexts (crypto_kdf, exactly 8 characters). */
#define SEND_KDF_TOKEN "sp-send1" /* subkeys of the link token */
#define SEND_SUBKEY_PAGE 1
#define SEND_SUBKEY_WRAP 2
#define MK_CTX_TOKEN "sp-token"  /* master: token hash pepper */
#define MK_CTX_CODE "sp-code "   /* master: code MAC key */
#define MK_CTX_APIKEY "sp-apiky" /* master: API key hash key */
#define MK_CTX_SEALED "sp-rcpt " /* master: recipient and phone */

/* ---- sendlink_crypto.c ---- */

void send_token_new(unsigned char raw[SEND_TOKEN_BYTES], char text[SEND_TOKEN_CHARS + 1]);
/* 0 if text is exactly a token's encoding. */
int send_token_parse(const char *text, unsigned char raw[SEND_TOKEN_BYTES]);
void send_token_hash(const unsigned char *master, const unsigned char raw[SEND_TOKEN_BYTES],
                     unsigned char out[DB_HASH_BYTES]);
void send_page_key(const unsigned char raw[SEND_TOKEN_BYTES], unsigned char key[SEND_KEY_BYTES]);
/* code: normalised, or NULL when the file key is wrapped by the token alone. */
void send_wrap_key(const unsigned char raw[SEND_TOKEN_BYTES], const char *code,
                   unsigned char key[SEND_KEY_BYTES]);
void send_key_wrap(const unsigned char wk[SEND_KEY_BYTES], const char *id,
                   const unsigned char *file_key, unsigned char out[SEND_WRAPPED_BYTES]);
int send_key_unwrap(const unsigned char wk[SEND_KEY_BYTES], const char *id, const unsigned char *w,
                    size_t wlen, unsigned char *file_key) __attribute__((warn_unused_result));
void send_code_mac(const unsigned char *master, const char *id, const char *code,
                   unsigned char out[DB_HASH_BYTES]);
/* A fresh code of len characters from RAND_ALPHA_UPPER. */
void send_code_new(unsigned len, char *out);
/* Upper-cases and drops spaces and dashes: -1 if anything else is not [A-Z0-9]. */
int send_code_normalise(const char *in, char *out, size_t outsz);
/* Seals text under the server key, bound to id and field. */
void send_secret_seal(const unsigned char *master, const char *id, const char *field,
                      const char *text, unsigned char **out, size_t *outlen);
/* NULL if it does not open. */
char *send_secret_open(const unsigned char *master, const char *id, const char *field,
                       const unsigned char *c, size_t clen);
void apikey_hash(const unsigned char *master, const char *key, unsigned char out[DB_HASH_BYTES]);

/* ---- sendlink_send.c helpers used by the HTTP side ---- */

/* The decrypted page record. */
struct send_page {
    char *name;    /* cleaned file name */
    char *message; /* may be "" */
    char *sender_name;
    char *sender_email;
    char *lang;
    int64_t size;
};
void send_page_clear(struct send_page *p);
int send_page_open(const struct db_send *s, const unsigned char raw[SEND_TOKEN_BYTES],
                   struct send_page *out) __attribute__((warn_unused_result));
/* RFC 3339 UTC. */
void send_time_format(int64_t t, char *out, size_t outsz);
/* E.164: '+', a non-zero digit, 7 to 15 digits in all. */
int send_phone_valid(const char *s);
int send_address_valid(const char *s);
/* Destroys the file of s (unlink, then forget the keys in the store). */
int send_destroy(const struct send_env *env, const struct db_send *s, const char *why);
/* Queues the one "first download" mail to the sender when notify_sender is set. */
void send_notify_sender(const struct send_env *env, const struct db_send *s);

/* ---- the HTTP service (sendlink_http.c) ---- */

struct MHD_Daemon;
struct MHD_Connection;

struct sendlink {
    pthread_mutex_t lock;
    struct config *cfg; /* current; requests take a reference */
    unsigned char *master;
    int listen_fd;
    struct MHD_Daemon *mhd;
    pthread_key_t db_key; /* one store connection per HTTP thread */
    pthread_t sweeper;
    int sweeper_running;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stopping;
    char *style_hash;    /* CSP hash of the page's style sheet */
    struct sms_ref *sms; /* SMS routes of the current config */
    /* API rate limit: requests per API key in the current minute. */
    struct rate_slot *rates;
    size_t nrates;
    int64_t rate_minute;
};

/* The SMS router of one config, shared by the requests that use it. */
struct sms_router;
struct sms_ref {
    struct sms_router *router;
    int refs; /* atomic */
};

struct config *sendlink_config(struct sendlink *sl);
/* The current SMS router (a reference: give it back with sendlink_sms_release). */
struct sms_ref *sendlink_sms(struct sendlink *sl);
void sendlink_sms_release(struct sms_ref *ref);
/* This thread's store connection; NULL (logged) if it cannot be opened. */
struct db *sendlink_db(struct sendlink *sl);
/* 0 when allowed; else seconds until the next minute (429 Retry-After). */
int sendlink_rate_check(struct sendlink *sl, const char *apikey_id, unsigned limit);

#endif
