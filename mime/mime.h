/*
 * mime — turns one received message into the pieces a vault item holds:
 * header facts (subject, from, to, date, message-id, UTF-8), a text body, an
 * HTML body and attachments with cleaned names. GMime lives only in this
 * folder (STYLE.md 3).
 *
 * Data flow: smtpd/deliver hand us a read-only descriptor of the message
 * (a memfd: the message is never on persistent disk in clear); we replay
 * what we find to a sink, which encrypts it on the fly.
 *
 * Trust: the message is hostile. Parsing happens in a child process with
 * memory, CPU and wall-clock limits (RULES.md 6); the parent trusts only the
 * framed records the child writes to a pipe, and checks their sizes. A child
 * that dies or overruns a limit yields MIME_F_PARSER_FAILED: the caller keeps
 * the sealed original and flags the item; nothing is lost.
 */
#ifndef SEALPOST_MIME_H
#define SEALPOST_MIME_H

#include <stddef.h>
#include <stdint.h>

enum mime_part_kind {
    MIME_PART_TEXT = 1, /* the message's text/plain body (UTF-8) */
    MIME_PART_HTML = 2, /* the message's text/html body (UTF-8) */
    MIME_PART_ATTACHMENT = 3
};

/* Parser findings, as bits (STYLE.md 8): policy decides what they mean. */
#define MIME_F_PARSER_FAILED 0x0001u  /* child crashed, was killed or hit a limit */
#define MIME_F_TOO_MANY_PARTS 0x0002u /* parts beyond mime_max_parts were dropped */
#define MIME_F_TOO_DEEP 0x0004u       /* nesting beyond mime_max_depth was not entered */
#define MIME_F_NO_BOUNDARY 0x0008u    /* multipart without (or with a missing) boundary */
#define MIME_F_BAD_ENCODING 0x0010u   /* base64/QP errors in a part */
#define MIME_F_BAD_CHARSET 0x0020u    /* unknown charset or invalid bytes, converted lossily */
#define MIME_F_HEADER_LIMIT 0x0040u   /* a header was too long or too complex; cut */
#define MIME_F_NAME_CHANGED 0x0080u   /* an attachment name had to be cleaned */
#define MIME_F_NOT_MIME 0x0100u       /* no parsable message at all */

/* Returns "parser_failed,too_many_parts,…" names for flags into out. */
void mime_flags_format(uint32_t flags, char *out, size_t outsz);

struct mime_headers {
    const char *subject;    /* decoded (RFC 2047), UTF-8, may be NULL */
    const char *from;       /* decoded display form, UTF-8, may be NULL */
    const char *to;         /* decoded display form, UTF-8, may be NULL */
    const char *date;       /* as written, may be NULL */
    const char *message_id; /* without <>, may be NULL */
};

struct mime_sink {
    void *ctx;
    /* Called once, first. */
    int (*headers)(void *ctx, const struct mime_headers *h);
    /* One part: begin, data zero or more times, end. name is cleaned
     * (mime_filename_clean) and unique within the message; type is
     * "major/minor" lower case. A non-zero return stops the parse. */
    int (*part_begin)(void *ctx, enum mime_part_kind kind, const char *name, const char *type);
    int (*part_data)(void *ctx, const void *p, size_t n);
    int (*part_end)(void *ctx);
    /* Optional (NULL: not used): the whole content of the part just begun
     * is, byte for byte, the bytes [off, off + n) of the message that was
     * parsed (no transfer encoding, no charset conversion, a text body
     * already valid UTF-8), so a sink that keeps that message anyway need
     * not store them twice. Called at most once per part, instead of
     * part_data, before part_end. A sink without it gets the same bytes
     * through part_data. */
    int (*part_slice)(void *ctx, uint64_t off, uint64_t n);
};

struct mime_limits {
    uint64_t memory;      /* RLIMIT_AS of the child, bytes */
    uint64_t cpu_seconds; /* RLIMIT_CPU of the child */
    uint64_t wall_seconds;
    unsigned max_parts;
    unsigned max_depth;
    uint64_t header_size; /* longest header value looked at */
};

/* Call once in main before any thread starts (g_mime_init). */
void mime_global_init(void);

/*
 * A program that parses in isolation (mime_parse_isolated/_start) calls
 * this first thing in main, before anything else, with main's arguments:
 * parser children are that same program started again with an argument
 * of their own, and here it becomes the child (and never returns). In any
 * other run it returns at once. Without it, no child can be started.
 */
void mime_child_entry(int argc, char **argv);

/*
 * Parses the message readable from fd (seekable; read from offset 0, the
 * offset is left unspecified) in a limited child and replays the result to
 * sink. Returns the MIME_F_* flags. If the sink returns non-zero the parse
 * stops and the function returns with the flags so far; *sink_err is set to
 * that value (else 0).
 */
uint32_t mime_parse_isolated(int fd, const struct mime_limits *lim, const struct mime_sink *sink,
                             int *sink_err);

/*
 * The same in two steps, so the caller can work while the child parses:
 * mime_parse_start hands fd to a child at once (it never fails: a child
 * that cannot be started shows as MIME_F_PARSER_FAILED at the finish);
 * mime_parse_finish replays the result exactly as mime_parse_isolated
 * does, its wall-clock limit counted from the finish (the child may wait
 * on a full socket until then), and frees mp. A caller that gives up in
 * between calls mime_parse_abandon (kills the child). fd must stay open
 * and unchanged until one of the two; the child never moves its offset.
 * size: the message's size when the caller knows it already, else 0.
 */
struct mime_parse;
struct mime_parse *mime_parse_start(int fd, uint64_t size, const struct mime_limits *lim);
uint32_t mime_parse_finish(struct mime_parse *mp, const struct mime_sink *sink, int *sink_err);
void mime_parse_abandon(struct mime_parse *mp);

/*
 * Parser children are pooled: mime_parse_isolated keeps a few alive
 * between calls (each parses up to a bounded number of messages). This
 * ends and reaps every idle one; children still parsing are not touched.
 * Optional: a child also ends when this process does.
 */
void mime_pool_close(void);

/* Starts children with these limits in the background until n are idle
 * (at most the pool's size), so the first messages do not wait for a
 * start (~12 ms each, one at a time). */
void mime_pool_prewarm(const struct mime_limits *lim, unsigned n);

/* The same parse in this process (the child's body; also for fuzzing). */
uint32_t mime_parse_inprocess(int fd, const struct mime_limits *lim, const struct mime_sink *sink);

/*
 * File-name cleaning (RULES.md 7): for display and download only, never a
 * path. Keeps ordinary names exactly (including non-ASCII UTF-8); replaces
 * / \ : * ? " < > | and control/bidi-override characters with '_'; drops
 * invalid UTF-8; stops at NUL; strips leading dots and trailing dots and
 * spaces; renames reserved device names (CON, NUL, COM1, …); cuts to at most
 * MIME_NAME_MAX bytes keeping the extension; falls back to "attachment"
 * when nothing is left. Returns 1 if the name changed, 0 if not.
 */
#define MIME_NAME_MAX 255
int mime_filename_clean(const char *in, size_t inlen, char *out, size_t outsz);

/* Makes names unique within one message: "a.pdf", "a (2).pdf", … */
struct mime_nameset {
    char **names;
    size_t n;
    /* Added: an open-addressing index over names (case-insensitive), so
     * that a thousand equal names cost O(n^2), not O(n^3). Zero-init. */
    size_t *slots;
    size_t nslots;
};
/* Rewrites name (buffer of MIME_NAME_MAX+1 bytes) in place if taken, records it. */
void mime_nameset_claim(struct mime_nameset *s, char *name, size_t namesz);
void mime_nameset_free(struct mime_nameset *s);

/*
 * Helpers shared by the files of mime/ (not for other parts).
 */
/* Cleans a decoded header value for display into out (NUL terminated, at
 * most outmax bytes of text, cut on a character boundary): invalid UTF-8
 * becomes U+FFFD, control characters become a space, runs of white space
 * collapse, ends are trimmed. Returns a MIME_F_* bit set: HEADER_LIMIT when
 * cut, BAD_CHARSET when invalid UTF-8 was replaced. */
struct buf;
uint32_t mime_text_clean(const char *in, size_t inlen, size_t outmax, struct buf *out);
/* Registers mime_parse's GTypes (from mime_global_init, before threads). */
void mime_parse_types_init(void);
/* Longest value of mime_limits.header_size honoured (larger is lowered). */
#define MIME_HEADER_SIZE_MAX (64u * 1024u)
/* Longest "major/minor" content type passed to a sink. */
#define MIME_TYPE_MAX 127
/* Largest part_data piece handed to a sink and sent over the child pipe. */
#define MIME_CHUNK (64u * 1024u)

#endif
