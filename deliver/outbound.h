/*
 * outbound — notification mail: composed (mime/), DKIM-signed (OpenDKIM),
 * queued durably in the store, encrypted at rest (it holds links), and
 * handed to [outbound] relayhost by a background runner (libetpan SMTP
 * client) with retries and back-off until [outbound] max_queue_age.
 *
 * Callers (sendlink, the smtp SMS relay) only enqueue; serve runs the
 * runner; `queue list` / `queue flush` inspect and push it. Delivery results
 * are recorded as events of the mail's send_id (lib/db.h db_event_add):
 * "notified" on 250, "notify_failed" when given up.
 */
#ifndef SEALPOST_OUTBOUND_H
#define SEALPOST_OUTBOUND_H

#include "lib/db.h"
#include "lib/rand.h"
#include "policy/config.h"

struct outbound_mail {
    const char *to;       /* one recipient address */
    const char *subject;  /* UTF-8; the composer encodes it (RFC 2047): no header injection */
    const char *text;     /* text/plain body, UTF-8 */
    const char *html;     /* text/html body, UTF-8, may be NULL */
    const char *reply_to; /* may be NULL */
    const char *send_id;  /* the send this mail is about (events), may be NULL */
    const char *kind;     /* "notify", "sender_notify", "sms", … (logs and metrics) */
};

/*
 * Composes, signs and queues m. master is the loaded [server] master_key.
 * Returns 0 with the queue id, or -1 (logged). The mail leaves later.
 */
int outbound_enqueue(struct db *db, const struct config *cfg, const unsigned char *master,
                     const struct outbound_mail *m, char id[RAND_ID_LEN + 1])
    __attribute__((warn_unused_result));

#endif
