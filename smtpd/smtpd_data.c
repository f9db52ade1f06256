/*
 * smtpd_data — the DATA reader: raw bytes after 354 in, the unstuffed
 * message into a memfd out (never persistent disk: the message is in clear
 * here).
 *
 * RFC 5321 4.1.1.4 and 4.5.2; RULES.md 2 (SMTP smuggling,
 * CVE-2023-51764/51765/51766): only <CR><LF>.<CR><LF> ends the message. A
 * bare CR or a bare LF anywhere is recorded and reading goes on to the real
 * end, so bytes after a fake terminator (<LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>,
 * …) stay inside this message and can never become a second one; the
 * message is then refused. Problems are collected as flags (STYLE.md 8) and
 * turned into one reply at the end: NUL bytes, over-long lines
 * ([mailin] data_line_length_limit), size over the limit (bytes past it are
 * read and dropped).
 *
 * Trusts nothing in the input; the caller bounds time and rate.
 */
#include "smtpd/smtpd_int.h"

#include "lib/fsutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define DATA_F_BARE_EOL 0x01u
#define DATA_F_NUL 0x02u
#define DATA_F_LONG_LINE 0x04u
#define DATA_F_TOO_BIG 0x08u
#define DATA_F_IO 0x10u

/* Where we are relative to line structure. */
enum data_lex {
    DL_BOL,    /* at the start of a line (after CRLF, or the first byte) */
    DL_MID,    /* inside a line */
    DL_CR,     /* a CR was seen, not yet emitted */
    DL_DOT,    /* a '.' at the start of a line, not yet emitted */
    DL_DOT_CR, /* ".<CR>" at the start of a line */
    DL_END     /* <CRLF>.<CRLF> seen */
};

struct smtpd_data {
    int fd;
    enum data_lex lex;
    unsigned flags;
    uint64_t limit;      /* message_size_limit, 0 = none */
    unsigned line_limit; /* data line length limit with CRLF, 0 = none */
    unsigned line_len;
    uint64_t size; /* unstuffed bytes */
    uint64_t raw;  /* bytes received */
    uint64_t started;
    char *wbuf;
    size_t wlen;
};

struct smtpd_data *smtpd_data_new(int fd, uint64_t size_limit, unsigned line_limit)
{
    struct smtpd_data *d = xcalloc(1, sizeof(*d));
    d->fd = fd;
    d->lex = DL_BOL;
    d->limit = size_limit;
    d->line_limit = line_limit;
    d->started = smtpd_now_ms();
    d->wbuf = xmalloc(SMTPD_DATA_WBUF);
    return d;
}

static void data_flush(struct smtpd_data *d)
{
    if (d->wlen == 0)
        return;
    if (!(d->flags & DATA_F_IO) && write_all(d->fd, d->wbuf, d->wlen) < 0)
        d->flags |= DATA_F_IO;
    d->wlen = 0;
}

/* Stores p[0..n) as data_emit would byte by byte, line length apart:
 * nothing once the message is refused, at most up to the size limit. */
static void data_store(struct smtpd_data *d, const char *p, size_t n)
{
    if (d->flags & (DATA_F_TOO_BIG | DATA_F_BARE_EOL | DATA_F_NUL | DATA_F_IO))
        return; /* refused anyway: read on, keep nothing */
    if (d->limit) {
        uint64_t room = d->size >= d->limit ? 0 : d->limit - d->size;
        if (n > room) {
            n = (size_t)room;
            d->flags |= DATA_F_TOO_BIG; /* what fits is kept, as byte by byte */
        }
    }
    d->size += n;
    while (n > 0) {
        size_t take = SMTPD_DATA_WBUF - d->wlen;
        if (take > n)
            take = n;
        memcpy(d->wbuf + d->wlen, p, take);
        d->wlen += take;
        p += take;
        n -= take;
        if (d->wlen == SMTPD_DATA_WBUF)
            data_flush(d);
    }
}

/* Adds n bytes to the current line's length (CRLF included) and flags a
 * line over the limit. */
static inline void data_line_add(struct smtpd_data *d, size_t n)
{
    d->line_len += (unsigned)n;
    if (d->line_limit && d->line_len > d->line_limit)
        d->flags |= DATA_F_LONG_LINE;
}

/* One byte of the message, with the same outcome as in bulk. */
static inline void data_emit(struct smtpd_data *d, char c)
{
    data_line_add(d, 1);
    data_store(d, &c, 1);
}

/* Index of the first CR, LF or NUL in p[0..n), n if none: 16 bytes per
 * step where SSE2 exists (every x86-64), else byte by byte. */
static size_t data_special(const char *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), nul = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                 _mm_cmpeq_epi8(v, nul));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits)
            return i + (size_t)__builtin_ctz(bits);
    }
#endif
    for (; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return i;
    return n;
}

/*
 * The bulk path: from p[0] (inside a line, or at the start of a line that
 * does not begin with a dot) over every whole ordinary line (no CR, LF or
 * NUL but its CRLF) and up to the first byte that needs the state machine:
 * a CR, LF or NUL that is not a plain line end, a dot at the start of a
 * line, or the end of the input. Same flags, sizes and bytes as feeding the
 * state machine byte by byte; the caller is at state DL_BOL (when *bol) or
 * DL_MID. Returns the bytes consumed; *bol says whether that ended a line.
 */
static size_t data_bulk(struct smtpd_data *d, const char *p, size_t n, bool *bol)
{
    size_t pos = 0;
    *bol = false; /* p[0] is an ordinary byte: taking it puts us inside a line */
    for (;;) {
        size_t k = pos + data_special(p + pos, n - pos);
        if (k + 1 >= n || p[k] != '\r' || p[k + 1] != '\n') {
            if (k > pos) { /* part of a line: the state machine goes on at p[k] */
                data_line_add(d, k - pos);
                *bol = false;
            }
            pos = k;
            break;
        }
        data_line_add(d, k + 2 - pos); /* a whole line with its CRLF */
        d->line_len = 0;
        pos = k + 2;
        *bol = true;
        if (pos == n || p[pos] == '.')
            break;
    }
    data_store(d, p, pos);
    return pos;
}

/* One byte inside a line (state DL_MID semantics). */
static inline void data_mid(struct smtpd_data *d, char c)
{
    switch (c) {
    case '\r':
        d->lex = DL_CR;
        return;
    case '\n':
        d->flags |= DATA_F_BARE_EOL; /* a line end only counts as CRLF */
        break;
    case '\0':
        d->flags |= DATA_F_NUL;
        break;
    default:
        break;
    }
    data_emit(d, c);
    d->lex = DL_MID;
}

size_t smtpd_data_push(struct smtpd_data *d, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && d->lex != DL_END) {
        /* Ordinary bytes and whole ordinary lines in bulk. */
        if ((d->lex == DL_MID || (d->lex == DL_BOL && p[i] != '.')) && p[i] != '\r' &&
            p[i] != '\n' && p[i] != '\0') {
            bool bol;
            i += data_bulk(d, p + i, n - i, &bol);
            d->lex = bol ? DL_BOL : DL_MID;
            continue;
        }
        char c = p[i++];
        switch (d->lex) {
        case DL_BOL:
            if (c == '.')
                d->lex = DL_DOT;
            else
                data_mid(d, c);
            break;
        case DL_MID:
            data_mid(d, c);
            break;
        case DL_CR:
            if (c == '\n') {
                data_emit(d, '\r');
                data_emit(d, '\n');
                d->line_len = 0;
                d->lex = DL_BOL;
            } else {
                d->flags |= DATA_F_BARE_EOL;
                data_emit(d, '\r');
                data_mid(d, c);
            }
            break;
        case DL_DOT:
            /* Dot-stuffing: a leading dot is dropped (RFC 5321 4.5.2). */
            if (c == '\r')
                d->lex = DL_DOT_CR;
            else
                data_mid(d, c);
            break;
        case DL_DOT_CR:
            if (c == '\n') {
                d->lex = DL_END;
            } else {
                d->flags |= DATA_F_BARE_EOL;
                data_emit(d, '\r');
                data_mid(d, c);
            }
            break;
        case DL_END:
            break;
        }
    }
    d->raw += i;
    if (d->lex == DL_END)
        data_flush(d);
    return i;
}

bool smtpd_data_done(const struct smtpd_data *d)
{
    return d->lex == DL_END;
}

enum sp_status smtpd_data_verdict(struct smtpd_data *d)
{
    if (d->flags & DATA_F_BARE_EOL)
        return SP_SMTP_BARE_EOL;
    if (d->flags & DATA_F_NUL)
        return SP_SMTP_NUL;
    if (d->flags & DATA_F_TOO_BIG)
        return SP_TOO_BIG;
    if (d->flags & DATA_F_LONG_LINE)
        return SP_SMTP_LINE_TOO_LONG;
    if (d->flags & DATA_F_IO)
        return SP_TEMPFAIL;
    return SP_OK;
}

uint64_t smtpd_data_size(const struct smtpd_data *d)
{
    return d->size;
}

uint64_t smtpd_data_raw(const struct smtpd_data *d)
{
    return d->raw;
}

uint64_t smtpd_data_started(const struct smtpd_data *d)
{
    return d->started;
}

int smtpd_data_take_fd(struct smtpd_data *d)
{
    int fd = d->fd; /* its offset is left at the end: every reader preads */
    d->fd = -1;
    return fd;
}

void smtpd_data_free(struct smtpd_data *d)
{
    if (d == NULL)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->wbuf);
    free(d);
}
