/*
 * sendlink — secure send: the HTTP service (API, recipient pages,
 * downloads, /healthz, /metrics), the send life cycle shared with the CLI,
 * API keys, and the sweeper. libmicrohttpd is used only in this folder.
 *
 * Data flow: an app POSTs a file → it streams through the vault writer
 * into DATA_DIR/tmp, is renamed to DATA_DIR/sends/ID, the store gets the
 * row (token hash, wrapped key, sealed page record) → outbound queues the
 * recipient's mail with the link → the recipient's POST with the code
 * streams the file back, decrypted chunk by chunk → the sweeper destroys
 * it when it expires, is revoked or is used up.
 *
 * serve runs it like any other service: sendlink_open binds (before the
 * privilege drop), sendlink_start starts the threads, sendlink_reload
 * swaps the config, sendlink_stop drains and stops, sendlink_free frees.
 */
#ifndef SEALPOST_SENDLINK_H
#define SEALPOST_SENDLINK_H

#include "lib/db.h"
#include "lib/rand.h"
#include "policy/config.h"

#include <stdint.h>

struct sendlink;

/* Binds [server] http_listen and loads the master key; NULL and *err on failure. */
struct sendlink *sendlink_open(struct config *cfg, char **err);
/* Starts the HTTP threads and the sweeper; -1 and *err on failure. */
int sendlink_start(struct sendlink *sl, char **err);
/* For harnesses (fuzz/fuzz_http.c): the same service with no threads and
 * no listening socket. The caller hands it connected sockets
 * (sendlink_drive_add, peer shown as 127.0.0.1) and runs it
 * (sendlink_drive_run: one non-blocking round of libmicrohttpd); no sweeper. */
int sendlink_start_driven(struct sendlink *sl, char **err);
int sendlink_drive_add(struct sendlink *sl, int fd);
void sendlink_drive_run(struct sendlink *sl);
unsigned sendlink_drive_connections(struct sendlink *sl);
/* New config for new requests (requests in flight keep theirs). */
void sendlink_reload(struct sendlink *sl, struct config *cfg);
/* Stops accepting, lets requests in flight finish for a while, stops. */
void sendlink_stop(struct sendlink *sl, unsigned drain_seconds);
void sendlink_free(struct sendlink *sl);

/* ---- the send life cycle, shared by the HTTP API and the CLI ---- */

/* What a send operation works with. master: the loaded [server] master_key. */
struct send_env {
    const struct config *cfg;
    struct db *db;
    const unsigned char *master;
};

/* A refusal: HTTP status (403, 404, 410, 413, 422, 503), the field it is about, why. */
struct send_problem {
    int status;
    const char *field; /* NULL when not about one field */
    char detail[256];
};

/* The fields of a new send as given (NULL: not given). */
struct send_fields {
    const char *to;
    const char *phone;
    const char *message;
    const char *expires;       /* duration: "3d", "3600" */
    const char *max_downloads; /* decimal */
    const char *protect;       /* none | code | mtan */
    const char *code;
    const char *lang; /* en | fr | de: language of the recipient's mail */
    const char *filename;
};

/* A file being encrypted into DATA_DIR/tmp under a fresh send id. */
struct send_upload;
struct send_upload *send_upload_new(const struct send_env *env, char **err);
int send_upload_write(struct send_upload *u, const void *p, size_t n)
    __attribute__((warn_unused_result));
uint64_t send_upload_size(const struct send_upload *u);
const char *send_upload_id(const struct send_upload *u);
/* Removes the temp file and frees u. */
void send_upload_abort(struct send_upload *u);

/* The result of a committed send (token and code shown once, never stored). */
struct send_created {
    char id[DB_ID_MAX + 1];
    char *url; /* malloc'd: PUBLIC_URL/s/TOKEN */
    int64_t expires;
    int64_t max_downloads;
    char protect[8];
    char code[64]; /* "" unless protect=code */
    int notified;  /* the recipient's mail was queued */
};
void send_created_clear(struct send_created *c);

/*
 * Checks fields against the config and the plan of user (NULL: the default
 * plan), then makes the upload durable, writes the send and queues the
 * recipient's mail. On success u is consumed and 0 returned; on failure -1
 * with pb filled, and u is left to the caller (abort it).
 */
int send_commit(const struct send_env *env, const struct db_user *user, const char *apikey_id,
                const struct send_fields *f, struct send_upload *u, const char *client,
                struct send_created *out, struct send_problem *pb)
    __attribute__((warn_unused_result));

/* Plan checks that need only the fields (403 before anything is uploaded, 413 sizes). */
int send_fields_check(const struct config *cfg, const struct plan *plan,
                      const struct send_fields *f, struct send_problem *pb)
    __attribute__((warn_unused_result));

/* Revokes a send and destroys its file at once: 0, or -1 (pb: 404, 503). */
int send_revoke(const struct send_env *env, const char *id, const char *client,
                struct send_problem *pb) __attribute__((warn_unused_result));

/* State for display: active, locked, expired, revoked, used_up. */
const char *send_state_name(const struct db_send *s, int64_t now);

/* Opens the recipient stored sealed under the server key (malloc'd) or NULL. */
char *send_recipient_open(const unsigned char *master, const struct db_send *s);

/* Destroys the files of every ended send; returns how many, or -1. */
long send_sweep(const struct send_env *env, int64_t now);

/* Path of a send's encrypted file (malloc'd). */
char *send_blob_path(const struct config *cfg, const char *id);

/* ---- API keys ---- */

/* Visible prefix of every API key. */
#define APIKEY_PREFIX "sp_live_"

/* Creates a key acting for user_id; key (malloc'd) is shown once. 0 or -1. */
int apikey_create(const struct send_env *env, int64_t user_id, const char *label,
                  char id[RAND_ID_LEN + 1], char **key) __attribute__((warn_unused_result));
/* Looks up a presented key: DB_OK with the (unrevoked) key's row, DB_NOTFOUND, or a store error. */
enum db_rc apikey_verify(const struct send_env *env, const char *key, struct db_apikey *out)
    __attribute__((warn_unused_result));

#endif
