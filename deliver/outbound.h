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

#include <stdbool.h>
#include <stdint.h>

struct outbound_mail {
    const char *to;       /* one recipient address */
    const char *subject;  /* UTF-8; the composer encodes it (RFC 2047): no header injection */
    const char *text;     /* text/plain body, UTF-8 */
    const char *html;     /* text/html body, UTF-8, may be NULL */
    const char *reply_to; /* may be NULL */
    const char *send_id;  /* the send this mail is about (events), may be NULL */
    const char *kind;     /* "notify", "sender_notify", "sms", … (logs and metrics) */
    /* Added by the outbound part; optional, so designated initialisers keep working: */
    const char *from_name; /* display name, UTF-8, RFC 2047-encoded by the composer;
                              NULL: [outbound] from_name */
};

/*
 * Composes, signs and queues m. master is the loaded [server] master_key.
 * Returns 0 with the queue id, or -1 (logged). The mail leaves later.
 */
int outbound_enqueue(struct db *db, const struct config *cfg, const unsigned char *master,
                     const struct outbound_mail *m, char id[RAND_ID_LEN + 1])
    __attribute__((warn_unused_result));

/* ---- added by the outbound part (deliver/outbound*.c) ----
 *
 * Signing happens at enqueue (outbound_enqueue): the queued bytes are final,
 * so every retry sends the very same message (same Message-ID, same
 * signature), a bad or missing key fails the API call instead of piling up
 * unsendable mail, and the runner needs no key. The key file is read on
 * every enqueue, so a new key (dkim keygen --force) applies at once.
 *
 * Events: "notified" (detail: the kind) when the relay answered 250;
 * "notify_failed" (detail "KIND:REASON", REASON the relay's reply code and
 * enhanced code such as "550 5.1.1", or "expired" after max_queue_age) when
 * given up. Both under the mail's send_id.
 */

/* Counts of one delivery pass. */
struct outbound_pass_stats {
    unsigned delivered; /* relay said 250 */
    unsigned deferred;  /* 4xx, connection trouble: tried again later */
    unsigned failed;    /* 5xx, or max_queue_age reached: given up */
};

/*
 * One delivery pass in the calling thread: every mail due at now (and every
 * mail whose sender died mid-attempt, once its lease ran out) is claimed,
 * tried once and marked delivered, deferred or failed. Claims are atomic in
 * the store, so a `queue flush` and serve's runner never send one mail twice.
 * Returns 0 (st filled) or -1 when the store failed (logged).
 */
int outbound_deliver_due(struct db *db, const struct config *cfg, const unsigned char *master,
                         int64_t now, struct outbound_pass_stats *st)
    __attribute__((warn_unused_result));

/* Makes every queued mail due now (opens the store of cfg). Returns how many,
 * or -1 (logged). serve's runner picks them up within OUTBOUND_POLL_SECONDS. */
int outbound_flush(const struct config *cfg) __attribute__((warn_unused_result));

/* How often serve's runner looks at the store for mail queued by other
 * processes or made due by `queue flush` (mail queued inside serve wakes it
 * at once). */
#define OUTBOUND_POLL_SECONDS 2

/*
 * The runner: one thread that delivers due mail (outbound_deliver_due) with
 * its own store connection and libetpan session. start takes a config
 * reference and loads the master key; NULL with *err (malloc'd) on failure.
 * reload swaps the config (the pass in progress finishes on the old one);
 * stop finishes the mail in flight (bounded by [outbound] smtp_timeout per
 * command), joins the thread and frees r.
 */
struct outbound_runner;
struct outbound_runner *outbound_runner_start(struct config *cfg, char **err);
void outbound_runner_reload(struct outbound_runner *r, struct config *cfg);
void outbound_runner_stop(struct outbound_runner *r);

/* DKIM key management (`dkim keygen`, `dkim record`, `init`). */
#define OUTBOUND_DKIM_BITS 2048
/* Writes a new RSA key (PKCS#8 PEM, mode 0600; parent directory made 0700).
 * Refuses an existing file unless force (then replaced atomically).
 * 0, or -1 with *err (malloc'd). */
int outbound_dkim_keygen(const char *path, bool force, char **err)
    __attribute__((warn_unused_result));
/* The DNS TXT value for the key at path: "v=DKIM1; k=rsa; p=BASE64".
 * 0 with *record (malloc'd), or -1 with *err (malloc'd). */
int outbound_dkim_record(const char *path, char **record, char **err)
    __attribute__((warn_unused_result));

#endif
