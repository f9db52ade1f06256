/*
 * mime_compose — builds the notification mail sealpost sends (GMime lives
 * only in mime/, STYLE.md 3).
 *
 * Data flow: deliver/outbound → here (compose) → DKIM signing → queue.
 *
 * Trust: every string may come from a sender through the API (subject, display
 * names, bodies). Nothing here lets it shape a header (RULES.md 13): text
 * that goes into a header is cleaned (mime_header_text_clean: valid UTF-8, no
 * control or bidi-override characters, bounded) and RFC 2047-encoded by GMime;
 * addresses must pass mime_address_valid; and the finished header block is
 * checked once more, line by line, before it is returned.
 */
#ifndef SEALPOST_MIME_COMPOSE_H
#define SEALPOST_MIME_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a subject kept after cleaning (cut at a character boundary). */
#define MIME_COMPOSE_SUBJECT_MAX 400
/* Bytes of a display name kept after cleaning. */
#define MIME_COMPOSE_NAME_MAX 128
/* Bytes of each body (text, html). */
#define MIME_COMPOSE_BODY_MAX (1024 * 1024)
/* Longest address (RFC 5321 path less the brackets). */
#define MIME_COMPOSE_ADDR_MAX 254
/* Longest header line we write, CRLF excluded (RFC 5322 2.1.1). */
#define MIME_COMPOSE_LINE_MAX 998

struct mime_compose_in {
    const char *from_addr;  /* envelope and header sender, addr-spec */
    const char *from_name;  /* display name, UTF-8, may be NULL */
    const char *to_addr;    /* one recipient, addr-spec */
    const char *reply_to;   /* addr-spec, may be NULL */
    const char *subject;    /* UTF-8 */
    const char *text;       /* text/plain body, UTF-8 */
    const char *html;       /* text/html body, UTF-8, may be NULL */
    const char *message_id; /* "local@domain", without <> */
    int64_t date;           /* Unix time of the Date: header */
};

/*
 * Composes the message: multipart/alternative (text, then html) or a single
 * text/plain part when html is NULL; quoted-printable UTF-8 bodies; From, To,
 * Reply-To, Subject, Date, Message-ID, MIME-Version, Auto-Submitted
 * (RFC 3834). Lines end in CRLF, ready for DKIM signing and SMTP.
 * Subject and display name are cleaned (mime_header_text_clean); a subject
 * containing "=?" is encoded whole by us so it reads exactly as typed, and a
 * "=?" in a display name is written as "= ?" (no reader decodes it).
 * Returns 0 with a malloc'd message in *out (*outlen bytes, NUL-terminated),
 * or -1 with *err a static reason ("bad recipient address", …).
 */
int mime_compose(const struct mime_compose_in *in, char **out, size_t *outlen, const char **err)
    __attribute__((warn_unused_result));

/*
 * True for a plain addr-spec we are willing to write: local@domain, printable
 * ASCII without spaces, quotes, angle brackets, commas, semicolons,
 * parentheses or backslashes, one '@', a dotted domain of letters, digits and
 * hyphens, at most MIME_COMPOSE_ADDR_MAX bytes.
 */
bool mime_address_valid(const char *addr);

/*
 * A copy of s fit for a header's text: invalid UTF-8 becomes U+FFFD; every
 * run of control characters (C0, DEL, C1; so CR, LF, TAB) and Unicode line or
 * paragraph separators becomes one space; bidi overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069) are dropped; leading and trailing spaces go;
 * at most max bytes, cut at a character boundary. Never NULL (malloc'd).
 */
char *mime_header_text_clean(const char *s, size_t max);

/*
 * A copy of a body fit for a text part: line ends become LF; control
 * characters other than TAB and LF are dropped; invalid UTF-8 becomes U+FFFD.
 * NULL if the result would exceed max bytes.
 */
char *mime_body_clean(const char *s, size_t max);

#endif
