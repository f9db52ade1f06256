/*
 * outbound_internal — what the deliver/outbound*.c files share (and what the
 * unit tests call directly). Not for other parts: they use outbound.h.
 */
#ifndef SEALPOST_OUTBOUND_INTERNAL_H
#define SEALPOST_OUTBOUND_INTERNAL_H

#include "deliver/outbound.h"

#include <stddef.h>
#include <stdint.h>

/* ---- DKIM (outbound_dkim.c) ---- */

/* Largest DKIM key file we read. */
#define OUTBOUND_DKIM_KEY_MAX (64 * 1024)

/*
 * Signs msg (CRLF lines, as composed) with the PEM key: RSA-SHA256,
 * relaxed/relaxed, headers From (oversigned), To, Cc, Reply-To, Subject,
 * Date, Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding,
 * Auto-Submitted. Returns 0 with *out (malloc'd) = "DKIM-Signature: …\r\n"
 * followed by msg, or -1 with *err a static reason. id names the mail in
 * libopendkim's messages.
 */
int outbound_dkim_sign(const char *key_pem, const char *selector, const char *domain,
                       const char *id, const char *msg, size_t len, char **out, size_t *outlen,
                       const char **err) __attribute__((warn_unused_result));

/* ---- the encrypted queue record (outbound.c) ---- */

/*
 * Layout of outbound_queue.data (version 1):
 *   byte 0        OUTBOUND_RECORD_VERSION
 *   bytes 1..24   nonce (random)
 *   rest          XChaCha20-Poly1305-IETF ciphertext (16-byte tag at the end)
 *                 with additional data "sealpost-queue-v1:" || queue id
 * The key is the master key's subkey ("sp-queue", id 1). The plaintext is
 *   u16be len || envelope sender || u16be len || recipient || message bytes
 * (the message exactly as it goes into DATA: signed, CRLF lines).
 */
#define OUTBOUND_RECORD_VERSION 1
#define OUTBOUND_KDF_CTX "sp-queue"
#define OUTBOUND_KDF_ID 1

struct outbound_record {
    char *env_from;
    char *rcpt;
    char *msg; /* NUL-terminated for convenience; msg_len bytes */
    size_t msg_len;
};
void outbound_record_clear(struct outbound_record *r);

/* Encrypts r for queue id; *out malloc'd. */
void outbound_record_seal(const unsigned char *master, const char *id,
                          const struct outbound_record *r, unsigned char **out, size_t *outlen);
/* Decrypts and parses; 0, or -1 when the record is not authentic or malformed. */
int outbound_record_open(const unsigned char *master, const char *id, const unsigned char *in,
                         size_t inlen, struct outbound_record *r)
    __attribute__((warn_unused_result));

/* ---- one SMTP transaction with the relay host (outbound_smtp.c) ---- */

enum outbound_result {
    OUTBOUND_SENT, /* 250 after DATA */
    OUTBOUND_TEMP, /* 4xx, no answer, connection trouble: try later */
    OUTBOUND_PERM, /* 5xx to MAIL, RCPT or DATA: give up now */
};

/* Size of a reply summary: "451 4.3.0", "connect", "ehlo". */
#define OUTBOUND_REPLY_MAX 64

/*
 * Hands one message to cfg's relayhost: connect, EHLO (HELO if refused),
 * STARTTLS when offered (certificate NOT verified: libetpan cannot; the relay
 * host must be trusted), EHLO again, MAIL, RCPT, DATA, QUIT. reply gets the
 * relay's code and enhanced status code (never its text, which may quote the
 * address), or a word for local trouble.
 */
enum outbound_result outbound_smtp_send(const struct config *cfg, const char *id,
                                        const struct outbound_record *r,
                                        char reply[OUTBOUND_REPLY_MAX]);

/* ---- the queue (outbound_runner.c) ---- */

/* Mails claimed per store query in one pass. */
#define OUTBOUND_BATCH 32
/* How long a claim holds: longer than any one attempt can take. */
#define OUTBOUND_LEASE_SECONDS (15 * 60)
/* How long sent and failed mail stays visible in `queue list`. */
#define OUTBOUND_FINISHED_KEEP (7 * 24 * 3600)

/* Wait before attempt n+1 after n failed attempts (n >= 1): retry_min
 * doubled n-1 times, at most retry_max. */
int64_t outbound_backoff(const struct config *cfg, unsigned attempts);

/* Wakes the runner of this process, if one is running (after an enqueue). */
void outbound_runner_wake(void);

#endif
