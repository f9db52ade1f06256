/*
 * deliver — puts one received message into the vaults of its recipients.
 *
 * Data flow: smtpd (after DATA) or `sealpost deliver` (stdin) → here →
 * mime (isolated parse) → vault writer → store. Called with the message in a
 * memfd: the message is never written to persistent disk in clear.
 *
 * Contract: deliver_message returns SP_OK only when every recipient's item
 * (sealed original, parsed parts, sealed metadata) is on stable storage and
 * committed (RULES.md 1). Recipients are all-or-nothing: one transaction
 * holds every recipient's item, so a 4xx never leaves some of them behind
 * (with group commit one transaction holds several messages).
 */
#ifndef SEALPOST_DELIVER_H
#define SEALPOST_DELIVER_H

#include "lib/db.h"
#include "lib/rand.h"
#include "lib/status.h"
#include "policy/config.h"

#include <stddef.h>
#include <stdint.h>

struct deliver_ctx;

/* One per thread (it holds a store connection). Takes a config reference. */
struct deliver_ctx *deliver_open(struct config *cfg, char **err);
void deliver_close(struct deliver_ctx *d);
/* From now on d's store reads and writes fail at once (SP_TEMPFAIL)
 * instead of waiting for a lock (a caller that must never block). */
void deliver_never_wait(struct deliver_ctx *d);
/* Store checkpoints (lib/db.h "Checkpoints off the commit path"): d's
 * commits leave them to deliver_checkpoint on another context, called
 * when deliver_checkpoint_wanted(d) says the WAL is long enough. */
void deliver_defer_checkpoints(struct deliver_ctx *d);
bool deliver_checkpoint_wanted(const struct deliver_ctx *d);
void deliver_checkpoint(struct deliver_ctx *d);

/* A resolved recipient. */
struct rcpt {
    char *address; /* user@domain as typed (lower-cased, tag removed) */
    char *tag;     /* the +tag, or NULL */
    int64_t user_id;
    char *user_name;
    /* The user's public key, read with the user (it never changes: items
     * are sealed to it without reading the user again). */
    unsigned char public_key[DB_PUBKEY_BYTES];
};
void rcpt_clear(struct rcpt *r);

/*
 * Resolves address to a recipient: SP_OK, SP_UNKNOWN_USER, SP_DISABLED_USER,
 * SP_RELAY_DENIED (not a Mail-in domain), SP_OVER_QUOTA (size_hint bytes
 * would not fit, or the vault is full), SP_BAD_ADDRESS, SP_TEMPFAIL.
 * postmaster@ and abuse@ each Mail-in domain resolve to [mailin] postmaster.
 */
enum sp_status deliver_rcpt_check(struct deliver_ctx *d, const char *address, uint64_t size_hint,
                                  struct rcpt *out) __attribute__((warn_unused_result));

/* What the receiving side saw; every string may be NULL. */
struct arrival {
    const char *trace; /* header lines to put on top of the original,
                          CRLF-terminated (Received:, Authentication-Results:) */
    const char *via;   /* "smtp", "esmtps", "local", … */
    const char *helo;
    const char *client_addr;
    const char *mail_from;
    const char *tls_version;
    const char *tls_cipher;
    const char *dkim; /* e.g. "pass (d=example.org)" / "none" / "temperror" */
    const char *spf;  /* e.g. "pass" / "none" / "temperror" */
};

/*
 * Delivers the message in fd (read from offset 0) to rcpts[0..n). queue_id
 * names the delivery in every log line: pass one made with rand_id() (e.g.
 * the id already written into a Received: header), or an empty string to
 * have one made here. Returns SP_OK, SP_TOO_BIG, SP_OVER_QUOTA, SP_DISK_FULL
 * or SP_TEMPFAIL.
 */
enum sp_status deliver_message(struct deliver_ctx *d, int fd, const struct rcpt *rcpts, size_t n,
                               const struct arrival *a, char queue_id[RAND_ID_LEN + 1])
    __attribute__((warn_unused_result));

/*
 * The same in two steps, for group commit. deliver_prepare does all the
 * work but the durability: on SP_OK *out holds the message (containers
 * written, not yet synced). deliver_commit makes pv[0..n) durable with
 * one fsync per container, one per blob directory and one transaction,
 * and sets st[k] to SP_OK only for a message whose every item and row is
 * durable and committed; it logs each message and frees every pending.
 * Any thread may commit or free a pending (it owns its descriptors and
 * its share of the cleanup lock); the committing context must use the
 * same data directory.
 */
struct deliver_pending;
enum sp_status deliver_prepare(struct deliver_ctx *d, int fd, const struct rcpt *rcpts, size_t n,
                               const struct arrival *a, char queue_id[RAND_ID_LEN + 1],
                               struct deliver_pending **out) __attribute__((warn_unused_result));
void deliver_commit(struct deliver_ctx *d, struct deliver_pending **pv, size_t n,
                    enum sp_status *st);
/* Drops a pending without committing it (its files are removed). */
void deliver_pending_free(struct deliver_pending *p);
/* Moves new blobs to another directory (the committer calls it per batch,
 * so that one batch's blobs share few directories). */
void deliver_blob_prefix_next(void);
/*
 * Creates every blob directory that is missing and makes blobs/ durable
 * once, so this process's commits never fsync blobs/ again (a long-lived
 * daemon calls it at start; without it the first commit into each
 * directory does that fsync). 0, or -1 with *err.
 */
int deliver_blob_dirs_prepare(struct deliver_ctx *d, char **err);
/*
 * Spare containers (deliver/blobs.c): empty blob files made ahead of time,
 * their directory already durable, so that a delivery neither creates a
 * file nor waits for a directory fsync. A daemon fills the stock for cfg's
 * data directory at start and then from a thread of its own whenever
 * deliver_spares_wanted says it runs low (deliver_spares_fill: the number
 * made, or -1, logged), and drops what it did not use when it stops.
 * Without a fill, deliveries create their files as before.
 */
bool deliver_spares_wanted(const struct deliver_ctx *d);
int deliver_spares_fill(const struct config *cfg);
void deliver_spares_drop(void);
/* Starts n MIME parser children for cfg's parse limits in the background
 * (a daemon calls it at start, one per delivery worker). */
void deliver_parser_prewarm(const struct config *cfg, unsigned n);

/*
 * Removes crash leftovers in the data directory: temp files, and blobs no
 * committed item refers to, older than grace seconds. Returns how many
 * files were removed, or -1.
 */
long deliver_cleanup(struct deliver_ctx *d, unsigned grace);

/* Grace before an unreferenced blob is taken for a crash leftover. */
#define DELIVER_ORPHAN_GRACE (60 * 60)

#endif
