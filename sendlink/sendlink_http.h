/*
 * sendlink_http — the request state and reply helpers shared by the HTTP
 * files (sendlink_http.c: daemon and routing; sendlink_api.c: the API;
 * sendlink_page.c: the recipient's page and the download). Only these
 * files include <microhttpd.h> (STYLE.md 3).
 */
#ifndef SEALPOST_SENDLINK_HTTP_H
#define SEALPOST_SENDLINK_HTTP_H

#include "lib/buf.h"
#include "sendlink/sendlink_int.h"

#include <microhttpd.h>
#include <netinet/in.h>

/* Bytes of a request body that is not an upload (the page's code form). */
#define HTTP_FORM_MAX 4096
/* Room for the fields of an upload beside the file itself. */
#define HTTP_UPLOAD_OVERHEAD (64 * 1024)
/* Buffer of MHD's post processor. */
#define HTTP_POST_BUFFER (64 * 1024)
/* Plaintext handed to MHD per content-reader call (one vault chunk). */
#define HTTP_DOWNLOAD_BLOCK (64 * 1024)

enum http_route {
    ROUTE_NONE = 0,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_API_CREATE, /* POST /api/v1/sends */
    ROUTE_API_SEND,   /* GET, DELETE /api/v1/sends/{id} */
    ROUTE_PAGE,       /* GET, HEAD, POST /s/{token} */
    ROUTE_MTAN        /* POST /s/{token}/mtan */
};

struct api_create;

struct req {
    struct sendlink *sl;
    struct config *cfg; /* reference held for the request's life */
    struct send_env env;
    enum http_route route;
    const char *method;
    char client[INET6_ADDRSTRLEN + 1];
    char arg[SEND_TOKEN_CHARS + 1]; /* send id or token from the path */
    int queued;                     /* a response was queued */
    unsigned retry_after;           /* Retry-After of the next response (0: none) */
    int status;
    /* body of a form or an upload */
    struct MHD_PostProcessor *pp;
    uint64_t body_bytes;
    int body_bad;
    struct api_create *ac; /* POST /api/v1/sends */
    struct buf code;       /* POST /s/{token}: the code field */
    int code_seen;
    /* a download in flight (the content reader sets dl_complete) */
    int dl_started;
    int dl_complete;
    struct db_send *dl_send;
};

/* Queues a response with the security headers every reply carries; frees nothing. */
enum MHD_Result http_queue(struct req *r, struct MHD_Connection *c, unsigned status,
                           struct MHD_Response *resp);
/* Queues body (copied) with content type. */
enum MHD_Result http_reply(struct req *r, struct MHD_Connection *c, unsigned status,
                           const char *ctype, const char *body, size_t len);
/* RFC 9457 problem+json: {type, title, status, detail, field?}. */
enum MHD_Result http_problem(struct req *r, struct MHD_Connection *c, unsigned status,
                             const char *field, const char *detail);
/* Sets the Retry-After header on the next queued problem. */
enum MHD_Result http_problem_retry(struct req *r, struct MHD_Connection *c, unsigned status,
                                   const char *detail, unsigned retry_after);
const char *http_reason(unsigned status);

/* sendlink_api.c */
enum MHD_Result api_create_begin(struct req *r, struct MHD_Connection *c);
enum MHD_Result api_create_data(struct req *r, struct MHD_Connection *c, const char *data,
                                size_t size);
enum MHD_Result api_create_end(struct req *r, struct MHD_Connection *c);
enum MHD_Result api_send(struct req *r, struct MHD_Connection *c);
void api_create_free(struct req *r);

/* sendlink_page.c */
int page_style_init(struct sendlink *sl);
enum MHD_Result page_get(struct req *r, struct MHD_Connection *c);
enum MHD_Result page_post_begin(struct req *r, struct MHD_Connection *c);
enum MHD_Result page_post_data(struct req *r, struct MHD_Connection *c, const char *data,
                               size_t size);
enum MHD_Result page_post_end(struct req *r, struct MHD_Connection *c);
enum MHD_Result page_mtan(struct req *r, struct MHD_Connection *c);
/* Called when the request ends: counts a download that was handed over whole. */
void page_download_done(struct req *r, int completed);

#endif
