/*
 * mime_parse — the in-process parse of one received message with GMime 3:
 * header facts, the text body, the HTML body and the attachments, replayed
 * to a sink (mime.h). This is the body of the sacrificial parser child
 * (mime_child.c) and the entry point for fuzzing; the daemon never calls it
 * directly (RULES.md 6).
 *
 * Data flow: fd (a memfd with the whole message) -> GMime parser over a
 * copy of a small message or a mapping of a large one (parts are
 * substreams of it, nothing more is copied) -> our own walk of
 * the tree with depth and part-count limits -> per leaf: raw bytes ->
 * encoding check -> base64 (GLib) / QP / uuencode (GMime filters) decoder
 * -> (text bodies only) charset filter to UTF-8 -> UTF-8 check -> sink in
 * chunks of at most MIME_CHUNK bytes; or, when none of these would change
 * a byte, the part's place in the message (a slice, mime.h). No part is
 * ever held whole in memory by us.
 *
 * Which part is what (the choice is ours; RFC 2046 leaves it to the reader):
 *  - the first text/plain leaf that has no file name and no
 *    "Content-Disposition: attachment" is MIME_PART_TEXT ("body.txt"), the
 *    first such text/html leaf is MIME_PART_HTML ("body.html");
 *  - every other leaf is MIME_PART_ATTACHMENT: its cleaned file name, or a
 *    generated "part-N.ext" (N = position of the part in the walk, counting
 *    containers, from 1; ext from the type, ".bin" when unknown);
 *  - a message/rfc822 part is one attachment holding the whole nested
 *    message (its file name, else its Subject + ".eml", else "part-N.eml"),
 *    as GMime re-serialises it (same headers and bodies, LF line ends;
 *    the sealed original keeps the exact bytes); then we descend into it and emit its
 *    attachments too. Its own bodies stay inside the .eml: they are not the
 *    outer message's bodies;
 *  - a multipart whose boundary never appears (everything fell into the
 *    prologue) gives its prologue as an attachment "part-N.txt", flagged
 *    no_boundary, so nothing is hidden.
 * Names "body.txt", "body.html" and "original.eml" are reserved up front, so
 * an attachment of that name becomes "body (2).txt" and `vault get` can
 * write all files of an item side by side.
 *
 * A message without MIME-Version is plain RFC 5322 text: the default
 * text/plain of RFC 2045 applies and no flag is set. MIME_F_NOT_MIME means
 * GMime found no message at all (empty input, no header).
 *
 * Trust: everything in the message is hostile. GMime recurses on nested
 * address groups ("From: a:b:c:...;;;") while it parses a header, the
 * top-level one and that of every nested message alike, so the whole file
 * is screened first (mime_prescan below) and any address field that is too
 * long, nests groups or holds many colons is hidden from GMime (a message
 * with too many such fields is not parsed at all); what still goes wrong
 * is caught by the child's limits.
 * RFCs: 5322, 2045-2047, 2231, 2183, 6532 (8-bit headers as UTF-8 or
 * windows-1252).
 */
#include "mime/mime.h"
#include "lib/utf8.h"

#include <gmime/gmime.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <errno.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* Group nesting we render in From:/To: (RFC 5322 allows none). */
#define MIME_ADDR_GROUP_DEPTH_MAX 2
/* Group nesting an address header may have before GMime sees it (RFC 5322
 * allows one level: "undisclosed-recipients:;"). */
#define MIME_PRESCAN_GROUP_DEPTH_MAX 1
/* Colons an address header may hold at all, quoted or not. GMime's loose
 * parser does not read quotes as we do (an unclosed '"' still lets it open
 * groups), and each group costs it a few hundred bytes of stack: this bound
 * holds its recursion to a few dozen KiB whatever the tokenising. Real
 * headers stay far below it (display names like "Re: x", IPv6 literals). */
#define MIME_PRESCAN_COLONS_MAX 128
/* A message up to this size is parsed from a copy in memory (one pread),
 * a larger one from a mapping (mmap and munmap cost a small message's
 * parse more than the copy; a large one is not copied). */
#define MIME_READ_MAX (256u * 1024u)

struct parse_ctx {
    const struct mime_limits *lim;
    const struct mime_sink *sink;
    size_t header_size;
    uint32_t flags;
    int halt;        /* sink failed or part limit reached: walk no further */
    unsigned nparts; /* objects visited, containers included */
    struct mime_nameset names;
    char *chunk;   /* MIME_CHUNK read buffer (bufs_need) */
    char *decoded; /* MIME_CHUNK: base64 decoded from chunk */
    char *stage;   /* MIME_CHUNK output staging */
    size_t nstage;
    const char *map; /* the message, when GMime reads it from a copy or mapping */
    size_t maplen;
    struct buf scratch; /* UTF-8 check: carry + input */
    unsigned char carry[4];
    size_t ncarry;
};

/* One level of message: the outer one or a nested message/rfc822. */
struct msg_level {
    int outer;
    int have_text;
    int have_html;
};

/* ---------- output to the sink ---------- */

static void stage_flush(struct parse_ctx *c)
{
    if (c->nstage == 0 || c->halt)
        return;
    if (c->sink->part_data(c->sink->ctx, c->stage, c->nstage) != 0)
        c->halt = 1;
    c->nstage = 0;
}

/* The streaming buffers, made on first use: a message whose parts are
 * all slices (or headers only) never needs them. */
static void bufs_need(struct parse_ctx *c)
{
    if (c->chunk != NULL)
        return;
    c->chunk = xmalloc(MIME_CHUNK);
    c->decoded = xmalloc(MIME_CHUNK);
    c->stage = xmalloc(MIME_CHUNK);
}

static void emit_bytes(struct parse_ctx *c, const char *p, size_t n)
{
    bufs_need(c);
    while (n > 0 && !c->halt) {
        size_t take = MIME_CHUNK - c->nstage;
        if (take > n)
            take = n;
        memcpy(c->stage + c->nstage, p, take);
        c->nstage += take;
        p += take;
        n -= take;
        if (c->nstage == MIME_CHUNK)
            stage_flush(c);
    }
}

/* Length of the longest tail of p[0..n) that is the start of a UTF-8
 * sequence still missing bytes (at most 3), else 0. */
static size_t utf8_incomplete_tail(const unsigned char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = p[n - back];
        if ((c & 0xc0) == 0x80)
            continue;
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 1;
        return need > back && c < 0xf5 ? back : 0;
    }
    return 0;
}

/* Text bodies: passes valid UTF-8, turns anything else into U+FFFD. */
/* The top bit of each of eight bytes: any set means a non-ASCII byte. */
#define UTF8_HIGH_BITS 0x8080808080808080ull

static void emit_utf8(struct parse_ctx *c, const char *p, size_t n, int final)
{
    static const char replacement[] = "\xef\xbf\xbd";
    buf_reset(&c->scratch);
    if (buf_append(&c->scratch, c->carry, c->ncarry) != 0 || buf_append(&c->scratch, p, n) != 0)
        msg_panic("scratch buffer cap");
    c->ncarry = 0;
    const unsigned char *s = (const unsigned char *)c->scratch.data;
    size_t len = c->scratch.len;
    if (!final) {
        c->ncarry = utf8_incomplete_tail(s, len);
        len -= c->ncarry;
        memcpy(c->carry, s + len, c->ncarry);
    }
    size_t run = 0; /* start of the current valid run */
    for (size_t i = 0; i < len;) {
        /* ASCII is valid as it is: skip it eight bytes at a time. */
        uint64_t w;
        while (len - i >= sizeof(w) && (memcpy(&w, s + i, sizeof(w)), !(w & UTF8_HIGH_BITS)))
            i += sizeof(w);
        if (i < len && s[i] < 0x80) {
            i++;
            continue;
        }
        if (i >= len)
            break;
        uint32_t cp;
        size_t k = utf8_decode(s + i, len - i, &cp);
        if (k > 0) {
            i += k;
            continue;
        }
        emit_bytes(c, (const char *)s + run, i - run);
        emit_bytes(c, replacement, 3);
        c->flags |= MIME_F_BAD_CHARSET;
        i++;
        run = i;
    }
    emit_bytes(c, (const char *)s + run, len - run);
}

/* ---------- the nested message as a stream that writes to the sink ---------- */

typedef struct {
    GMimeStream parent;
    struct parse_ctx *ctx;
} MimeSinkStream;

typedef struct {
    GMimeStreamClass parent_class;
} MimeSinkStreamClass;

GType mime_sink_stream_get_type(void);
G_DEFINE_TYPE(MimeSinkStream, mime_sink_stream, GMIME_TYPE_STREAM)

static ssize_t sink_stream_write(GMimeStream *stream, const char *p, size_t n)
{
    struct parse_ctx *c = ((MimeSinkStream *)stream)->ctx;
    emit_bytes(c, p, n);
    if (c->halt)
        return -1;
    stream->position += (gint64)n;
    return (ssize_t)n;
}

static ssize_t sink_stream_read(GMimeStream *stream, char *p, size_t n)
{
    (void)stream, (void)p, (void)n;
    return -1;
}

static int sink_stream_zero(GMimeStream *stream)
{
    (void)stream;
    return 0;
}

static gboolean sink_stream_eos(GMimeStream *stream)
{
    (void)stream;
    return TRUE;
}

static gint64 sink_stream_seek(GMimeStream *stream, gint64 off, GMimeSeekWhence whence)
{
    (void)stream, (void)off, (void)whence;
    return -1;
}

static gint64 sink_stream_tell(GMimeStream *stream)
{
    return stream->position;
}

static gint64 sink_stream_length(GMimeStream *stream)
{
    (void)stream;
    return -1;
}

static GMimeStream *sink_stream_substream(GMimeStream *stream, gint64 start, gint64 end)
{
    (void)stream, (void)start, (void)end;
    return NULL;
}

static void mime_sink_stream_class_init(MimeSinkStreamClass *klass)
{
    GMimeStreamClass *sc = GMIME_STREAM_CLASS(klass);
    sc->read = sink_stream_read;
    sc->write = sink_stream_write;
    sc->flush = sink_stream_zero;
    sc->close = sink_stream_zero;
    sc->eos = sink_stream_eos;
    sc->reset = sink_stream_zero;
    sc->seek = sink_stream_seek;
    sc->tell = sink_stream_tell;
    sc->length = sink_stream_length;
    sc->substream = sink_stream_substream;
}

static void mime_sink_stream_init(MimeSinkStream *s)
{
    s->ctx = NULL;
}

/* ---------- checks of the transfer encoding ---------- */

struct enc_check {
    GMimeContentEncoding enc;
    int state;           /* QP: see enc_check_push */
    unsigned long count; /* base64: significant characters, mod 4 */
    int padded;          /* base64: '=' seen */
    int bad;
};

static int is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* Byte classes of base64 text (RFC 2045 6.8), filled once by
 * mime_parse_types_init: anything else is an error. */
enum { B64_OTHER = 0, B64_ALPHABET, B64_SPACE, B64_PAD };
static unsigned char b64_class[256];

static void b64_class_init(void)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (const char *a = alphabet; *a; a++)
        b64_class[(unsigned char)*a] = B64_ALPHABET;
    b64_class[' '] = b64_class['\t'] = b64_class['\r'] = b64_class['\n'] = B64_SPACE;
    b64_class['='] = B64_PAD;
}

/* Base64: only the alphabet, blanks and line ends, '=' only at the end,
 * whole quanta (checked at the end). Runs of the alphabet are skipped in
 * a tight loop: this check reads every byte of every attachment. */
static void b64_check_push(struct enc_check *e, const unsigned char *p, size_t n)
{
    unsigned long count = e->count;
    int padded = e->padded, bad = e->bad;
    for (size_t i = 0; i < n && !bad;) {
        size_t run = i;
        while (i < n && b64_class[p[i]] == B64_ALPHABET)
            i++;
        if (i > run) {
            count += i - run;
            bad = padded; /* data after the padding */
            continue;
        }
        switch (b64_class[p[i]]) {
        case B64_SPACE:
            break;
        case B64_PAD:
            padded = 1;
            count++;
            break;
        default:
            bad = 1;
            break;
        }
        i++;
    }
    e->count = count & 3;
    e->padded = padded;
    e->bad = bad;
}

/* Quoted-printable: every '=' starts a hex pair or a soft line break
 * (blanks allowed before its line end). Text between is skipped with
 * memchr. States: 0 text, 1 after '=', 2 after '=X', 3 soft break blanks,
 * 4 after CR. */
static void qp_check_push(struct enc_check *e, const unsigned char *p, size_t n)
{
    int state = e->state, bad = e->bad;
    for (size_t i = 0; i < n && !bad; i++) {
        unsigned char ch = p[i];
        switch (state) {
        case 0: {
            const unsigned char *eq = memchr(p + i, '=', n - i);
            if (eq == NULL)
                i = n;
            else
                i = (size_t)(eq - p), state = 1;
            break;
        }
        case 1:
            if (is_hex(ch))
                state = 2;
            else if (ch == ' ' || ch == '\t')
                state = 3;
            else if (ch == '\r')
                state = 4;
            else if (ch == '\n')
                state = 0;
            else
                bad = 1;
            break;
        case 2:
            bad = !is_hex(ch);
            state = 0;
            break;
        case 3:
            if (ch == '\r')
                state = 4;
            else if (ch == '\n')
                state = 0;
            else if (ch != ' ' && ch != '\t')
                bad = 1;
            break;
        default:
            bad = ch != '\n';
            state = 0;
            break;
        }
    }
    e->state = state;
    e->bad = bad;
}

static void enc_check_push(struct enc_check *e, const unsigned char *p, size_t n)
{
    if (e->enc == GMIME_CONTENT_ENCODING_BASE64)
        b64_check_push(e, p, n);
    else if (e->enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
        qp_check_push(e, p, n);
    /* nothing to check in the other encodings */
}

void mime_parse_types_init(void)
{
    b64_class_init();
    g_type_class_unref(g_type_class_ref(mime_sink_stream_get_type()));
}

static int enc_check_end(const struct enc_check *e)
{
    if (e->bad)
        return 1;
    if (e->enc == GMIME_CONTENT_ENCODING_BASE64)
        return e->count != 0;
    if (e->enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
        return e->state == 2;
    return 0;
}

/* ---------- one leaf ---------- */

static int is_utf8_name(const char *cs)
{
    return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
           strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

static void filter_run(GMimeFilter *f, char **p, size_t *n, int final)
{
    size_t prespace;
    if (f == NULL)
        return;
    if (final)
        g_mime_filter_complete(f, *p, *n, 0, p, n, &prespace);
    else
        g_mime_filter_filter(f, *p, *n, 0, p, n, &prespace);
}

/* The message bytes a memory or map stream (or a window on one) reads
 * from, or NULL for any other stream. */
static const char *stream_base(GMimeStream *s)
{
    if (GMIME_IS_STREAM_MMAP(s))
        return ((GMimeStreamMmap *)s)->map;
    if (GMIME_IS_STREAM_MEM(s) && ((GMimeStreamMem *)s)->buffer != NULL)
        return (const char *)((GMimeStreamMem *)s)->buffer->data;
    return NULL;
}

/*
 * Hands the part's content to the sink as a stretch of the message when
 * the sink takes stretches and the streaming below would hand over the
 * very same bytes: raw is GMime's window on our copy or mapping of the message
 * (not on the concatenation that hides hostile fields), there is no
 * transfer decoding and no charset conversion, and a text body is valid
 * UTF-8 already. Returns 1 when done that way, 0 to stream instead.
 */
static int leaf_slice(struct parse_ctx *c, GMimeStream *raw, int as_text)
{
    if (c->sink->part_slice == NULL || c->map == NULL || stream_base(raw) != c->map)
        return 0;
    gint64 start = raw->bound_start;
    gint64 end = raw->bound_end < 0 ? (gint64)c->maplen : raw->bound_end;
    if (start < 0 || start > end || (uint64_t)end > c->maplen)
        return 0;
    if (as_text && !utf8_valid(c->map + start, (size_t)(end - start)))
        return 0; /* streamed: invalid bytes become U+FFFD */
    if (c->sink->part_slice(c->sink->ctx, (uint64_t)start, (uint64_t)(end - start)) != 0)
        c->halt = 1;
    return 1;
}

/*
 * How much of p[0..n) GLib's base64 decoder gets: the data ends with its
 * padding (RFC 2045 6.8; GMime and Python stop there too), so after the
 * first '=' only more '=' and blanks are fed (they finish the last
 * quantum, also across reads); whatever follows is not decoded (the
 * encoding check flags it). *end: the padding began.
 */
static size_t b64_feed(const char *p, size_t n, int *end)
{
    size_t i = 0;
    if (!*end) {
        const char *eq = memchr(p, '=', n);
        if (eq == NULL)
            return n;
        *end = 1;
        i = (size_t)(eq - p);
    }
    while (i < n && (p[i] == '=' || b64_class[(unsigned char)p[i]] == B64_SPACE))
        i++;
    return i;
}

/* Streams the decoded content of part to the sink (already begun). */
static void leaf_content(struct parse_ctx *c, GMimePart *part, int as_text)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return;
    GMimeStream *raw = g_mime_data_wrapper_get_stream(w);
    if (raw == NULL)
        return;
    struct enc_check chk = {0};
    chk.enc = g_mime_data_wrapper_get_encoding(w);
    /* Base64 with GLib's decoder (GMime's filter does the same at less than
     * half the speed: 4.3 against 2.5 ns a byte here, and attachments are
     * base64); quoted-printable and uuencode with GMime's filters. */
    int b64 = chk.enc == GMIME_CONTENT_ENCODING_BASE64, b64_state = 0, b64_end = 0;
    unsigned b64_save = 0;
    GMimeFilter *decoder = NULL;
    if (chk.enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        chk.enc == GMIME_CONTENT_ENCODING_UUENCODE)
        decoder = g_mime_filter_basic_new(chk.enc, FALSE);
    GMimeFilter *charset = NULL;
    if (as_text) {
        const char *cs = g_mime_object_get_content_type_parameter((GMimeObject *)part, "charset");
        if (cs != NULL && !is_utf8_name(cs)) {
            charset = g_mime_filter_charset_new(cs, "UTF-8");
            if (charset == NULL)
                c->flags |= MIME_F_BAD_CHARSET; /* unknown: shown as UTF-8, lossily */
        }
        c->ncarry = 0;
    }
    if (!b64 && decoder == NULL && charset == NULL && leaf_slice(c, raw, as_text))
        return;

    bufs_need(c);
    g_mime_stream_reset(raw);
    for (;;) {
        ssize_t got = g_mime_stream_read(raw, c->chunk, MIME_CHUNK);
        int final = got <= 0;
        char *p = c->chunk;
        size_t n = got > 0 ? (size_t)got : 0;
        enc_check_push(&chk, (const unsigned char *)p, n);
        if (b64) {
            n = g_base64_decode_step(p, b64_feed(p, n, &b64_end), (guchar *)c->decoded, &b64_state,
                                     &b64_save);
            p = c->decoded;
        }
        filter_run(decoder, &p, &n, final);
        if (as_text) {
            filter_run(charset, &p, &n, final);
            emit_utf8(c, p, n, final);
        } else {
            emit_bytes(c, p, n);
        }
        if (final || c->halt)
            break;
    }
    if (enc_check_end(&chk))
        c->flags |= MIME_F_BAD_ENCODING;
    if (decoder)
        g_object_unref(decoder);
    if (charset)
        g_object_unref(charset);
}

/* "major/minor" in lower case, checked; application/octet-stream if odd. */
static void part_type(GMimeObject *obj, char *out, size_t outsz)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *t = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    size_t len = t ? strlen(t) : 0;
    int ok = len > 0 && len < outsz && len <= MIME_TYPE_MAX;
    int slashes = 0;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch >= 'A' && ch <= 'Z')
            t[i] = (char)(ch - 'A' + 'a');
        else if (ch == '/')
            slashes++;
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("!#$&^_.+-", ch)))
            ok = 0;
    }
    if (ok && slashes == 1 && t[0] != '/' && t[len - 1] != '/')
        memcpy(out, t, len + 1);
    else
        snprintf(out, outsz, "application/octet-stream");
    g_free(t);
}

static const char *type_extension(const char *type)
{
    static const struct {
        const char *type, *ext;
    } map[] = {
        {"text/plain", ".txt"},      {"text/html", ".html"},      {"text/calendar", ".ics"},
        {"text/csv", ".csv"},        {"image/png", ".png"},       {"image/jpeg", ".jpg"},
        {"image/gif", ".gif"},       {"image/webp", ".webp"},     {"application/pdf", ".pdf"},
        {"application/zip", ".zip"}, {"message/rfc822", ".eml"},  {"application/json", ".json"},
        {"text/xml", ".xml"},        {"application/xml", ".xml"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(type, map[i].type) == 0)
            return map[i].ext;
    return strncmp(type, "text/", 5) == 0 ? ".txt" : ".bin";
}

/* GMime hands us names as C strings, so an RFC 2231 "%00" has already cut
 * "evil.exe%00.txt" to "evil.exe". Such a cut must not pass unflagged. */
static int name_had_nul(GMimeObject *obj)
{
    static const char *const headers[] = {"Content-Disposition", "Content-Type"};
    GMimeHeaderList *list = g_mime_object_get_header_list(obj);
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        GMimeHeader *h = list ? g_mime_header_list_get_header(list, headers[i]) : NULL;
        const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
        if (raw != NULL && strstr(raw, "%00") != NULL)
            return 1;
    }
    return 0;
}

/* The attachment name: the sender's (cleaned, flagged when changed) or a
 * generated one; then made unique. */
static void attachment_name(struct parse_ctx *c, GMimeObject *obj, const char *given,
                            const char *type, char *name, size_t namesz)
{
    if (given != NULL && given[0] != '\0') {
        if (mime_filename_clean(given, strlen(given), name, namesz) ||
            (obj != NULL && name_had_nul(obj)))
            c->flags |= MIME_F_NAME_CHANGED;
    } else {
        snprintf(name, namesz, "part-%u%s", c->nparts, type_extension(type));
    }
    mime_nameset_claim(&c->names, name, namesz);
}

static void part_emit_begin(struct parse_ctx *c, enum mime_part_kind kind, const char *name,
                            const char *type)
{
    c->nstage = 0;
    if (c->sink->part_begin(c->sink->ctx, kind, name, type) != 0)
        c->halt = 1;
}

static void part_emit_end(struct parse_ctx *c)
{
    stage_flush(c);
    if (!c->halt && c->sink->part_end(c->sink->ctx) != 0)
        c->halt = 1;
}

static void walk_leaf(struct parse_ctx *c, GMimePart *part, struct msg_level *lvl)
{
    GMimeObject *obj = (GMimeObject *)part;
    char type[MIME_TYPE_MAX + 1];
    char name[MIME_NAME_MAX + 1];
    part_type(obj, type, sizeof(type));
    const char *disp = g_mime_object_get_disposition(obj);
    const char *fname = g_mime_part_get_filename(part);
    int body_ok = (fname == NULL || fname[0] == '\0') &&
                  (disp == NULL || strcasecmp(disp, "attachment") != 0);

    if (body_ok && strcmp(type, "text/plain") == 0 && !lvl->have_text) {
        lvl->have_text = 1;
        if (!lvl->outer)
            return; /* a nested message's body stays in its .eml */
        part_emit_begin(c, MIME_PART_TEXT, "body.txt", type);
    } else if (body_ok && strcmp(type, "text/html") == 0 && !lvl->have_html) {
        lvl->have_html = 1;
        if (!lvl->outer)
            return;
        part_emit_begin(c, MIME_PART_HTML, "body.html", type);
    } else {
        attachment_name(c, obj, fname, type, name, sizeof(name));
        part_emit_begin(c, MIME_PART_ATTACHMENT, name, type);
        if (!c->halt)
            leaf_content(c, part, 0);
        part_emit_end(c);
        return;
    }
    if (!c->halt)
        leaf_content(c, part, 1);
    part_emit_end(c);
}

static void walk(struct parse_ctx *c, GMimeObject *obj, unsigned depth, struct msg_level *lvl);

static void walk_message_part(struct parse_ctx *c, GMimeMessagePart *mp, unsigned depth)
{
    GMimeObject *obj = (GMimeObject *)mp;
    GMimeMessage *msg = g_mime_message_part_get_message(mp);
    char name[MIME_NAME_MAX + 1];
    const char *given = g_mime_object_get_content_disposition_parameter(obj, "filename");
    if (given == NULL)
        given = g_mime_object_get_content_type_parameter(obj, "name");

    if (given != NULL && given[0] != '\0') {
        attachment_name(c, obj, given, "message/rfc822", name, sizeof(name));
    } else {
        const char *subject = msg ? g_mime_message_get_subject(msg) : NULL;
        struct buf s = BUF_INIT;
        (void)mime_text_clean(subject ? subject : "", subject ? strlen(subject) : 0, MIME_NAME_MAX,
                              &s);
        if (s.len > 0 && buf_puts(&s, ".eml") == 0)
            mime_filename_clean(s.data, s.len, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "part-%u.eml", c->nparts);
        buf_free(&s);
        mime_nameset_claim(&c->names, name, sizeof(name));
    }

    part_emit_begin(c, MIME_PART_ATTACHMENT, name, "message/rfc822");
    if (!c->halt && msg != NULL) {
        MimeSinkStream *out = g_object_new(mime_sink_stream_get_type(), NULL);
        g_mime_stream_construct((GMimeStream *)out, 0, -1);
        out->ctx = c;
        g_mime_object_write_to_stream((GMimeObject *)msg, NULL, (GMimeStream *)out);
        g_object_unref(out);
    }
    part_emit_end(c);

    GMimeObject *body = msg ? g_mime_message_get_mime_part(msg) : NULL;
    if (body == NULL || c->halt)
        return;
    if (depth + 1 > c->lim->max_depth) {
        c->flags |= MIME_F_TOO_DEEP;
        return;
    }
    struct msg_level nested = {0, 0, 0};
    walk(c, body, depth + 1, &nested);
}

static void walk_multipart(struct parse_ctx *c, GMimeMultipart *mp, unsigned depth,
                           struct msg_level *lvl)
{
    int count = g_mime_multipart_get_count(mp);
    if (count == 0) {
        /* No boundary found: the content is all prologue. */
        const char *pro = g_mime_multipart_get_prologue(mp);
        c->flags |= MIME_F_NO_BOUNDARY;
        if (pro != NULL && pro[0] != '\0') {
            char name[MIME_NAME_MAX + 1];
            attachment_name(c, NULL, NULL, "text/plain", name, sizeof(name));
            part_emit_begin(c, MIME_PART_ATTACHMENT, name, "text/plain");
            emit_bytes(c, pro, strlen(pro));
            part_emit_end(c);
        }
        return;
    }
    if (depth + 1 > c->lim->max_depth) {
        c->flags |= MIME_F_TOO_DEEP;
        return;
    }
    for (int i = 0; i < count && !c->halt; i++)
        walk(c, g_mime_multipart_get_part(mp, i), depth + 1, lvl);
}

static void walk(struct parse_ctx *c, GMimeObject *obj, unsigned depth, struct msg_level *lvl)
{
    if (c->halt || obj == NULL)
        return;
    if (c->nparts >= c->lim->max_parts) {
        c->flags |= MIME_F_TOO_MANY_PARTS;
        c->halt = 1;
        return;
    }
    c->nparts++;
    if (GMIME_IS_MULTIPART(obj))
        walk_multipart(c, (GMimeMultipart *)obj, depth, lvl);
    else if (GMIME_IS_MESSAGE_PART(obj))
        walk_message_part(c, (GMimeMessagePart *)obj, depth);
    else if (GMIME_IS_PART(obj))
        walk_leaf(c, (GMimePart *)obj, lvl);
    /* message/partial and other containers carry nothing we show. */
}

/* ---------- headers ---------- */

static void addr_render(struct parse_ctx *c, InternetAddressList *list, int depth, struct buf *b)
{
    int n = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        const char *name = internet_address_get_name(ia);
        int fail = 0;
        if (i > 0)
            fail |= buf_puts(b, ", ");
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            fail |= buf_printf(b, "%s:", name ? name : "");
            if (depth + 1 > MIME_ADDR_GROUP_DEPTH_MAX)
                c->flags |= MIME_F_HEADER_LIMIT;
            else
                addr_render(c, internet_address_group_get_members((InternetAddressGroup *)ia),
                            depth + 1, b);
            fail |= buf_putc(b, ';');
        } else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            const char *addr = internet_address_mailbox_get_addr((InternetAddressMailbox *)ia);
            if (name != NULL && name[0] != '\0')
                fail |= buf_printf(b, "%s <%s>", name, addr ? addr : "");
            else
                fail |= buf_puts(b, addr ? addr : "");
        }
        if (fail) {
            c->flags |= MIME_F_HEADER_LIMIT;
            return;
        }
    }
}

/* Cleans value into out; NULL stays NULL. */
static const char *header_text(struct parse_ctx *c, const char *value, struct buf *out)
{
    if (value == NULL)
        return NULL;
    c->flags |= mime_text_clean(value, strlen(value), c->header_size, out);
    return buf_cstr(out);
}

static const char *header_addresses(struct parse_ctx *c, InternetAddressList *list, struct buf *out)
{
    if (list == NULL || internet_address_list_length(list) == 0)
        return NULL;
    struct buf raw;
    buf_init(&raw, c->header_size * 2 + 16);
    addr_render(c, list, 0, &raw);
    const char *s = header_text(c, buf_cstr(&raw), out);
    buf_free(&raw);
    return s;
}

static int emit_headers(struct parse_ctx *c, GMimeMessage *msg)
{
    struct buf v[5] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
    struct mime_headers h = {0};
    if (msg != NULL) {
        h.subject = header_text(c, g_mime_message_get_subject(msg), &v[0]);
        h.from = header_addresses(c, g_mime_message_get_from(msg), &v[1]);
        h.to = header_addresses(c, g_mime_message_get_to(msg), &v[2]);
        h.date = header_text(c, g_mime_object_get_header((GMimeObject *)msg, "Date"), &v[3]);
        h.message_id = header_text(c, g_mime_message_get_message_id(msg), &v[4]);
    }
    int rc = c->sink->headers(c->sink->ctx, &h);
    for (int i = 0; i < 5; i++)
        buf_free(&v[i]);
    return rc;
}

/* ---------- screening of the top-level header block ---------- */

static int is_address_header(const char *name, size_t len)
{
    static const char *const names[] = {"from",      "to",         "cc",           "bcc",
                                        "reply-to",  "sender",     "resent-from",  "resent-to",
                                        "resent-cc", "resent-bcc", "resent-sender"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0)
            return 1;
    return 0;
}

/* Deepest nesting of groups in an address header value: a ':' outside
 * quotes, comments and angle brackets opens a group, ';' closes one. */
static unsigned group_depth(const char *p, size_t n)
{
    unsigned depth = 0, deepest = 0, comment = 0;
    int quoted = 0, angle = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (quoted) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                quoted = 0;
        } else if (comment) {
            if (ch == '\\')
                i++;
            else if (ch == '(')
                comment++;
            else if (ch == ')')
                comment--;
        } else if (ch == '"') {
            quoted = 1;
        } else if (ch == '(') {
            comment = 1;
        } else if (ch == '<') {
            angle = 1;
        } else if (ch == '>') {
            angle = 0;
        } else if (ch == ':' && !angle) {
            if (++depth > deepest)
                deepest = depth;
        } else if (ch == ';' && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

static size_t colon_count(const char *p, size_t n)
{
    size_t count = 0;
    for (const char *end = p + n; (p = memchr(p, ':', (size_t)(end - p))) != NULL; p++)
        count++;
    return count;
}

/*
 * Screens the whole of map[0..size) line by line and returns in *hide the
 * byte ranges of address fields GMime must not parse: too long, groups
 * nested deeper than one level, or more than MIME_PRESCAN_COLONS_MAX colons
 * ("From :" with blanks before the colon is From to GMime). Every line
 * that starts like an address field counts, not only those of the
 * top-level header block: GMime parses the header of every nested
 * message/rfc822 part too, with the same recursion, and telling a nested
 * header block from body text would need the MIME structure we are about
 * to parse. A body line that only looks
 * like such a field loses nothing: the sealed original keeps every byte,
 * and MIME_F_HEADER_LIMIT says something was hidden. Base64 never contains
 * ':', so encoded attachments are never touched. Returns the number of
 * ranges, in file order, or max + 1 when there are more than max.
 */
struct range {
    size_t start, end;
};
static size_t mime_prescan(const char *map, size_t size, size_t header_size, struct range *hide,
                           size_t max)
{
    size_t nhide = 0;
    size_t i = 0;
    while (i < size) {
        size_t start = i;
        /* a field: this line and its continuation lines */
        for (;;) {
            const char *nl = memchr(map + i, '\n', size - i);
            i = nl ? (size_t)(nl - map) + 1 : size;
            if (i >= size || (map[i] != ' ' && map[i] != '\t'))
                break;
        }
        const char *c = memchr(map + start, ':', i - start);
        /* GMime allows blanks between a field name and its colon
         * ("From :"), so they are not part of the name here either. */
        size_t nlen = c != NULL ? (size_t)(c - map) - start : 0;
        while (nlen > 0 && (map[start + nlen - 1] == ' ' || map[start + nlen - 1] == '\t'))
            nlen--;
        if (c != NULL && is_address_header(map + start, nlen)) {
            size_t vlen = i - (size_t)(c + 1 - map);
            if (vlen > header_size || colon_count(c + 1, vlen) > MIME_PRESCAN_COLONS_MAX ||
                group_depth(c + 1, vlen) > MIME_PRESCAN_GROUP_DEPTH_MAX) {
                if (nhide == max)
                    return max + 1;
                hide[nhide].start = start;
                hide[nhide].end = i;
                nhide++;
            }
        }
    }
    return nhide;
}

/* Hostile fields hidden per message; a message with more is not parsed at
 * all (MIME_F_NOT_MIME | MIME_F_HEADER_LIMIT: only the sealed original). */
#define MIME_PRESCAN_HIDE_MAX 1024

/* The stream GMime reads: the file itself, or when hostile address fields
 * were found, the file without them (a concatenation of its other byte
 * ranges; nothing is copied); NULL when there are too many to hide. */
static GMimeStream *message_stream(struct parse_ctx *c, GMimeStream *file)
{
    gint64 len = g_mime_stream_length(file);
    const char *map = c->map;
    if (len <= 0 || map == NULL || stream_base(file) != map || (uint64_t)len > c->maplen)
        return g_object_ref(file);
    struct range *hide = xmalloc(MIME_PRESCAN_HIDE_MAX * sizeof(*hide));
    size_t nhide = mime_prescan(map, (size_t)len, c->header_size, hide, MIME_PRESCAN_HIDE_MAX);
    if (nhide == 0) {
        free(hide);
        return g_object_ref(file);
    }
    c->flags |= MIME_F_HEADER_LIMIT;
    if (nhide > MIME_PRESCAN_HIDE_MAX) {
        free(hide);
        return NULL;
    }
    GMimeStream *cat = g_mime_stream_cat_new();
    size_t at = 0;
    for (size_t k = 0; k <= nhide; k++) {
        size_t to = k < nhide ? hide[k].start : (size_t)len;
        if (to > at) {
            GMimeStream *piece = g_mime_stream_substream(file, (gint64)at, (gint64)to);
            g_mime_stream_cat_add_source((GMimeStreamCat *)cat, piece);
            g_object_unref(piece);
        }
        if (k < nhide)
            at = hide[k].end;
    }
    free(hide);
    return cat;
}

/* ---------- the parse ---------- */

static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
    struct parse_ctx *c = data;
    (void)offset, (void)item;
    switch (code) {
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    case GMIME_WARN_MALFORMED_MULTIPART:
    case GMIME_WARN_TRUNCATED_MESSAGE:
        c->flags |= MIME_F_NO_BOUNDARY;
        break;
    case GMIME_CRIT_NESTING_OVERFLOW:
        c->flags |= MIME_F_TOO_DEEP;
        break;
    default:
        break;
    }
}

/*
 * The stream GMime parses the message from. A message up to MIME_READ_MAX
 * bytes is read into memory (*copy, ours to wipe and free after the
 * stream): for a small message an mmap and munmap cost more than the
 * copy. A larger one is mapped.
 */
static GMimeStream *file_stream(int fd, GByteArray **copy)
{
    struct stat st;
    *copy = NULL;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return NULL;
    if (st.st_size <= MIME_READ_MAX) {
        GByteArray *a = g_byte_array_sized_new((guint)st.st_size);
        g_byte_array_set_size(a, (guint)st.st_size);
        size_t got = 0;
        while (got < a->len) {
            ssize_t r = pread(fd, a->data + got, a->len - got, (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got == a->len) {
            GMimeStream *s = g_mime_stream_mem_new_with_byte_array(a);
            g_mime_stream_mem_set_owner((GMimeStreamMem *)s, FALSE);
            *copy = a;
            return s;
        }
        explicit_bzero(a->data, got); /* a short read: mapped instead */
        g_byte_array_free(a, TRUE);
    }
    /* Explicit bounds: GMime would otherwise start at the descriptor's
     * current offset, which the caller leaves wherever it likes (and which
     * a forked child shares with its parent, so we never lseek).
     * The map stream owns a duplicate of fd: GMime unmaps only what it
     * owns, so a stream that did not own its map left one mapping of every
     * message behind in a pooled child (pinning the memfd's pages). */
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    GMimeStream *s = own < 0 ? NULL
                             : g_mime_stream_mmap_new_with_bounds(own, PROT_READ, MAP_PRIVATE, 0,
                                                                  (gint64)st.st_size);
    if (s != NULL)
        return s; /* owner: munmap and close(own) when the stream goes */
    if (own >= 0)
        close(own);
    s = g_mime_stream_fs_new_with_bounds(fd, 0, (gint64)st.st_size);
    g_mime_stream_fs_set_owner((GMimeStreamFs *)s, FALSE);
    return s;
}

uint32_t mime_parse_inprocess(int fd, const struct mime_limits *lim, const struct mime_sink *sink)
{
    struct parse_ctx c = {0};
    c.lim = lim;
    c.sink = sink;
    c.header_size =
        lim->header_size < MIME_HEADER_SIZE_MAX ? (size_t)lim->header_size : MIME_HEADER_SIZE_MAX;
    buf_init(&c.scratch, 0);

    GByteArray *copy;
    GMimeStream *file = file_stream(fd, &copy);
    if (copy != NULL) {
        c.map = (const char *)copy->data;
        c.maplen = copy->len;
    } else if (file != NULL && GMIME_IS_STREAM_MMAP(file)) {
        c.map = ((GMimeStreamMmap *)file)->map;
        c.maplen = ((GMimeStreamMmap *)file)->maplen;
    }
    GMimeMessage *msg = NULL;
    GMimeParser *parser = NULL;
    GMimeParserOptions *opts = g_mime_parser_options_new();
    static const char *fallback[] = {"utf-8", "windows-1252", NULL};
    g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_fallback_charsets(opts, fallback);
    g_mime_parser_options_set_warning_callback(opts, parser_warning, &c);

    if (file != NULL) {
        GMimeStream *in = message_stream(&c, file);
        if (in != NULL) {
            parser = g_mime_parser_new_with_stream(in);
            g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
            msg = g_mime_parser_construct_message(parser, opts);
            g_object_unref(in);
        }
    }
    if (msg == NULL ||
        g_mime_header_list_get_count(g_mime_object_get_header_list((GMimeObject *)msg)) == 0)
        c.flags |= MIME_F_NOT_MIME;

    if (emit_headers(&c, msg) != 0)
        c.halt = 1;
    if (msg != NULL && !c.halt) {
        static const char *const reserved[] = {"body.txt", "body.html", "original.eml"};
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
            char n[MIME_NAME_MAX + 1];
            snprintf(n, sizeof(n), "%s", reserved[i]);
            mime_nameset_claim(&c.names, n, sizeof(n));
        }
        struct msg_level outer = {1, 0, 0};
        walk(&c, g_mime_message_get_mime_part(msg), 0, &outer);
    }

    if (msg)
        g_object_unref(msg);
    if (parser)
        g_object_unref(parser);
    if (file)
        g_object_unref(file);
    if (copy != NULL) { /* a pooled child parses other people's mail next */
        explicit_bzero(copy->data, copy->len);
        g_byte_array_free(copy, TRUE);
    }
    g_mime_parser_options_free(opts);
    mime_nameset_free(&c.names);
    buf_free(&c.scratch);
    free(c.chunk);
    free(c.decoded);
    free(c.stage);
    return c.flags;
}
