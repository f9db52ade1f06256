#!/usr/bin/env python3
"""Generates the varied test message set tests/data/messages/*.eml.

    python3 tests/data/messages/gen_messages.py [OUTDIR]

Deterministic: running it again writes byte-identical files (fixed dates,
boundaries and contents; "random" bytes come from a seeded PRNG), so the
committed .eml files can be checked against it.

Every message carries unique marker strings "MARKER-<12 hex>" in its
subject, From, bodies, file names and attachment contents; the
plaintext-at-rest test searches the data and temp directories for them. The
markers are derived from the message and field name (marker()).

The 5 MB attachment message is not committed (it would add ~7 MB of
incompressible base64 to the repository): tests call big_message() to build
it in memory; `--big` also writes it as 14-big-attachment.eml.

Messages are written byte by byte (not through the email package's
generator) so that encodings, folding and line endings are exactly as listed.
"""

import base64
import hashlib
import os
import random
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATE = "Tue, 04 Jun 2024 10:15:00 +0200"
CRLF = "\r\n"


def marker(msg, field):
    return "MARKER-" + hashlib.sha256(f"{msg}:{field}".encode()).hexdigest()[:12]


def b64lines(data, nl=CRLF):
    s = base64.b64encode(data).decode("ascii")
    return nl.join(s[i:i + 76] for i in range(0, len(s), 76)) + nl


def qp(text, charset="utf-8", nl=CRLF):
    """Quoted-printable of text (soft line breaks at 76)."""
    import quopri
    raw = text.replace("\r\n", "\n").encode(charset)
    enc = quopri.encodestring(raw, quotetabs=False).decode("ascii")
    return enc.replace("\n", nl)


def pseudo_random(n, seed):
    r = random.Random(seed)
    return r.randbytes(n)


def make_pdf(text):
    """A small valid one-page PDF showing text (ASCII)."""
    stream = f"BT /F1 18 Tf 40 760 Td ({text}) Tj ET\n".encode("ascii")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + o + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_png(text, w=4, h=4):
    """A small valid RGB PNG with a tEXt chunk holding text."""
    def chunk(typ, data):
        c = struct.pack(">I", len(data)) + typ + data
        return c + struct.pack(">I", zlib.crc32(typ + data) & 0xffffffff)
    raw = b"".join(b"\x00" + b"".join(bytes([(x * 60) & 255, (y * 60) & 255, 128])
                                      for x in range(w))
                   for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"tEXt", b"Comment\x00" + text.encode("ascii")) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def headers(name, subject_raw, from_raw, extra=()):
    h = [
        f"From: {from_raw}",
        "To: someone@mailin.test",
        f"Subject: {subject_raw}",
        f"Date: {DATE}",
        f"Message-ID: <{marker(name, 'msgid')}@sender.example>",
        "MIME-Version: 1.0",
    ]
    h.extend(extra)
    return h


def std_from(name):
    return f"Sender {marker(name, 'fromname')} <{marker(name, 'from').lower()}@sender.example>"


def join(lines, nl=CRLF):
    return nl.join(lines)


# ---------------------------------------------------------------------------
# The messages. Each function returns bytes.

def m01_plain():
    n = "01-plain"
    h = headers(n, f"Plain text {marker(n, 'subject')}", std_from(n),
                ["Content-Type: text/plain; charset=us-ascii",
                 "Content-Transfer-Encoding: 7bit"])
    body = [f"Hello, this is a plain message {marker(n, 'body')}.",
            "",
            "A line that starts with a dot follows:",
            ".not the end",
            "Last line."]
    return (join(h) + CRLF + CRLF + join(body) + CRLF).encode("ascii")


def m02_alternative():
    n = "02-alternative"
    b = "=_alt_0001"
    h = headers(n, f"Alternative {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/alternative; boundary="{b}"'])
    text = f"Plain version {marker(n, 'text')} with a long line " + "x" * 90 + " end.\n" \
           "Second line =3D not an escape.\n"
    html = (f"<html><body><p>HTML version <b>{marker(n, 'html')}</b></p>"
            "<p>caf\u00e9 \u2013 na\u00efve</p></body></html>\n")
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        qp(text).rstrip("\r\n"),
        f"--{b}",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        qp(html).rstrip("\r\n"),
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + "This is a multi-part message in MIME format." + CRLF +
            join(parts)).encode("ascii")


def m03_pdf():
    n = "03-pdf"
    b = "=_mixed_0003"
    pdf = make_pdf(f"Invoice {marker(n, 'pdfcontent')}")
    fname = f"invoice-{marker(n, 'filename')}.pdf"
    h = headers(n, f"Your invoice {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
        "",
        f"Please find the invoice attached {marker(n, 'body')}.",
        f"--{b}",
        f'Content-Type: application/pdf; name="{fname}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{fname}"',
        "",
        b64lines(pdf).rstrip("\r\n"),
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m04_related():
    n = "04-related-inline-image"
    bo, ba, br = "=_mixed_0004", "=_alt_0004", "=_rel_0004"
    png = make_png(marker(n, "pngcontent"))
    fname = f"logo-{marker(n, 'filename')}.png"
    h = headers(n, f"Newsletter {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/alternative; boundary="{ba}"'])
    del bo
    html = (f'<html><body><img src="cid:logo@sender.example" alt="logo">'
            f'<p>Newsletter {marker(n, "html")}</p></body></html>')
    parts = [
        f"--{ba}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Newsletter text {marker(n, 'text')}",
        f"--{ba}",
        f'Content-Type: multipart/related; boundary="{br}"; type="text/html"',
        "",
        f"--{br}",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
        "",
        html,
        f"--{br}",
        f'Content-Type: image/png; name="{fname}"',
        "Content-Transfer-Encoding: base64",
        "Content-ID: <logo@sender.example>",
        f'Content-Disposition: inline; filename="{fname}"',
        "",
        b64lines(png).rstrip("\r\n"),
        f"--{br}--",
        "",
        f"--{ba}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m05_rfc2231():
    n = "05-rfc2231-filename"
    b = "=_mixed_0005"
    uname = f"\u00dcbersicht {marker(n, 'filename')} \u65e5\u672c\u8a9e \u00e9t\u00e9.txt"
    enc = "".join(c if c.isalnum() and ord(c) < 128 or c in "-." else
                  "".join(f"%{x:02X}" for x in c.encode("utf-8")) for c in uname)
    # RFC 2231 continuations: filename*0*=UTF-8''…; filename*1*=…
    cut = len(enc) // 2
    while enc[cut - 1] == "%" or enc[cut - 2] == "%":
        cut += 1
    content = (f"Attachment content {marker(n, 'content')}\n"
               "\u00e4\u00f6\u00fc \u65e5\u672c\n").encode("utf-8")
    h = headers(n, f"RFC 2231 name {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"See attachment {marker(n, 'body')}",
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment;",
        f" filename*0*=UTF-8''{enc[:cut]};",
        f" filename*1*={enc[cut:]}",
        "",
        b64lines(content).rstrip("\r\n"),
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def _ew_b(s, charset="utf-8"):
    return f"=?{charset}?B?{base64.b64encode(s.encode(charset)).decode()}?="


def _ew_q(s, charset="iso-8859-1"):
    out = []
    for byte in s.encode(charset):
        c = chr(byte)
        if (c.isascii() and c.isalnum()) or c in "-!*+/":
            out.append(c)
        elif c == " ":
            out.append("_")
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def m06_rfc2047():
    n = "06-rfc2047-subject"
    b = "=_mixed_0006"
    subj = (_ew_b(f"Gr\u00fc\u00dfe {marker(n, 'subject')} \u2603") + CRLF + " " +
            _ew_q(" und K\u00e4se"))
    display = _ew_q("J\u00fcrgen " + marker(n, "fromname"))
    frm = f"{display} <{marker(n, 'from')}@sender.example>"
    fname = f"R\u00e9sum\u00e9-{marker(n, 'filename')}.txt"
    content = f"Resume content {marker(n, 'content')}\n".encode("ascii")
    h = headers(n, subj, frm, [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64lines(f"Body in base64 {marker(n, 'body')} \u00fcml\u00e4ute\n"
                 .encode("utf-8")).rstrip("\r\n"),
        f"--{b}",
        # RFC 2047 inside a quoted parameter: not standard, but what many
        # mailers send; both the email package and GMime decode it.
        f'Content-Type: application/octet-stream; name="{_ew_b(fname)}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{_ew_b(fname)}"',
        "",
        b64lines(content).rstrip("\r\n"),
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m07_latin1():
    n = "07-latin1-body"
    b = "=_alt_0007"
    h = headers(n, f"Latin-1 {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/alternative; boundary="{b}"'])
    text = (f"Bonjour {marker(n, 'text')}, \u00e7a co\u00fbte 5 \u00a3 \u00e0 "
            "l'h\u00f4tel, \u00bd \u00e9t\u00e9.\r\nDeuxi\u00e8me ligne \u00ff.\r\n")
    html = f"<p>Caf\u00e9 {marker(n, 'html')} \u00e0 \u00a7 \u00b5</p>\r\n"
    out = (join(h) + CRLF + CRLF).encode("ascii")
    out += join([
        f"--{b}",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: 8bit",
        "", ""]).encode("ascii")
    out += text.encode("iso-8859-1")
    out += join([
        f"--{b}",
        "Content-Type: text/html; charset=ISO-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        qp(html, "iso-8859-1").rstrip("\r\n"),
        f"--{b}--",
        ""]).encode("ascii")
    return out


def m08_nested():
    n = "08-nested-rfc822"
    b, bi = "=_mixed_0008", "=_inner_0008"
    csv = f"id,value\n1,{marker(n, 'innercontent')}\n2,two\n".encode("ascii")
    inner_name = f"table-{marker(n, 'innerfilename')}.csv"
    inner = join([
        f"From: Inner Sender {marker(n, 'innerfromname')} <inner@sender.example>",
        "To: someone@elsewhere.example",
        f"Subject: Inner message {marker(n, 'innersubject')}",
        f"Date: {DATE}",
        "Message-ID: <inner-0008@sender.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{bi}"',
        "",
        f"--{bi}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Inner body {marker(n, 'innerbody')}",
        f"--{bi}",
        f'Content-Type: text/csv; charset=us-ascii; name="{inner_name}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{inner_name}"',
        "",
        b64lines(csv).rstrip("\r\n"),
        f"--{bi}--",
        "",
    ])
    fwd_name = f"forwarded-{marker(n, 'filename')}.eml"
    h = headers(n, f"Fwd: nested {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Forwarding a message {marker(n, 'body')}",
        f"--{b}",
        "Content-Type: message/rfc822",
        f'Content-Disposition: attachment; filename="{fwd_name}"',
        "",
        inner,
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m09_same_names():
    n = "09-same-names"
    b = "=_mixed_0009"
    fname = f"scan-{marker(n, 'filename')}.bin"
    h = headers(n, f"Three scans {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Three files, one name {marker(n, 'body')}",
    ]
    for i in range(3):
        data = marker(n, f"content{i}").encode() + pseudo_random(3000 + 17 * i, f"{n}{i}")
        parts += [
            f"--{b}",
            f'Content-Type: application/octet-stream; name="{fname}"',
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{fname}"',
            "",
            b64lines(data).rstrip("\r\n"),
        ]
    parts += [f"--{b}--", ""]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m10_utf8_headers():
    n = "10-utf8-headers"
    b = "=_mixed_0010"
    fname = f"\u00fcbersicht-{marker(n, 'filename')}-\u6587\u4ef6.txt"
    h = headers(n, f"\u00dcTF-8 raw \u2713 {marker(n, 'subject')} \u65e5\u672c",
                f"Zo\u00eb \u00c7elik {marker(n, 'fromname')} <{marker(n, 'from')}@sender.example>",
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"8-bit body {marker(n, 'body')} \u2014 \u00e9\u00e8 \u4e2d\u6587 \U0001f600",
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        f'Content-Disposition: attachment; filename="{fname}"',
        "",
        f"8-bit attachment {marker(n, 'content')} \u00f1",
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("utf-8")


def m11_lf_only():
    n = "11-lf-only"
    b = "=_mixed_0011"
    nl = "\n"
    data = marker(n, "content").encode() + pseudo_random(1500, n)
    fname = f"data-{marker(n, 'filename')}.dat"
    h = headers(n, f"LF only {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Unix line endings {marker(n, 'body')}",
        "second line",
        f"--{b}",
        f'Content-Type: application/octet-stream; name="{fname}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{fname}"',
        "",
        b64lines(data, nl).rstrip("\n"),
        f"--{b}--",
        "",
    ]
    return (join(h, nl) + nl + nl + join(parts, nl)).encode("ascii")


def m12_mixed_types():
    n = "12-mixed-types"
    b = "=_mixed_0012"
    h = headers(n, f"Several kinds {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    zipish = b"PK\x03\x04" + marker(n, "zipcontent").encode() + pseudo_random(4096, n)
    notes = f"Notes {marker(n, 'notescontent')}\nline two\n"
    inline_txt = f"Inline named text {marker(n, 'inlinecontent')}\n".encode("ascii")
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Body first {marker(n, 'body')}",
        f"--{b}",
        f'Content-Type: application/zip; name="archive-{marker(n, "zipname")}.zip"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="archive-{marker(n, "zipname")}.zip"',
        "",
        b64lines(zipish).rstrip("\r\n"),
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        f'Content-Disposition: attachment; filename="notes-{marker(n, "notesname")}.txt"',
        "",
        qp(notes).rstrip("\r\n"),
        f"--{b}",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: inline; filename="inline-{marker(n, "inlinename")}.txt"',
        "",
        b64lines(inline_txt).rstrip("\r\n"),
        f"--{b}",
        "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="empty-{marker(n, "emptyname")}.bin"',
        "",
        "",
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m13_html_only():
    n = "13-html-only"
    h = headers(n, f"HTML only {marker(n, 'subject')}", std_from(n),
                ["Content-Type: text/html; charset=utf-8",
                 "Content-Transfer-Encoding: base64"])
    html = (f"<!DOCTYPE html><html><body><h1>Only HTML {marker(n, 'html')}</h1>"
            "<p>\u00e9\u00e0\u00fc</p></body></html>\n")
    return (join(h) + CRLF + CRLF + b64lines(html.encode("utf-8"))).encode("ascii")


def m15_reserved_names():
    """Attachments named like the fixed files of `vault get`."""
    n = "15-reserved-names"
    b = "=_mixed_0015"
    h = headers(n, f"Reserved names {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"The real body {marker(n, 'body')}",
    ]
    for fname in ("body.txt", "original.eml", "body.html"):
        data = f"Not the {fname}: {marker(n, 'content-' + fname)}\n".encode("ascii")
        parts += [
            f"--{b}",
            "Content-Type: application/octet-stream",
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{fname}"',
            "",
            b64lines(data).rstrip("\r\n"),
        ]
    parts += [f"--{b}--", ""]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


def m16_hostile_names():
    """File names that must never become paths or hide their extension."""
    n = "16-hostile-names"
    b = "=_mixed_0016"
    h = headers(n, f"Hostile names {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    names = [
        ("ascii", f"../../escape-{marker(n, 'name1')}.txt"),
        ("utf8", f"invoice-{marker(n, 'name2')}-\u202etxt.exe"),
        ("ascii", f"C:\\Windows\\evil-{marker(n, 'name3')}.dll"),
        ("ascii", f"/etc/passwd-{marker(n, 'name4')}"),
    ]
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Hostile names body {marker(n, 'body')}",
    ]
    for i, (kind, fname) in enumerate(names):
        data = f"hostile content {i} {marker(n, f'content{i}')}\n".encode("ascii")
        if kind == "utf8":
            enc = "".join(c if (c.isascii() and c.isalnum()) or c in "-." else
                          "".join(f"%{x:02X}" for x in c.encode("utf-8")) for c in fname)
            disp = f"Content-Disposition: attachment; filename*=UTF-8''{enc}"
        else:
            q = fname.replace("\\", "\\\\")
            disp = f'Content-Disposition: attachment; filename="{q}"'
        parts += [
            f"--{b}",
            "Content-Type: application/octet-stream",
            "Content-Transfer-Encoding: base64",
            disp,
            "",
            b64lines(data).rstrip("\r\n"),
        ]
    parts += [f"--{b}--", ""]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


BIG_SIZE = 5 * 1024 * 1024


def big_message():
    """A message with a 5 MB pseudo-random binary attachment (not committed)."""
    n = "14-big-attachment"
    b = "=_mixed_0014"
    data = marker(n, "content").encode() + pseudo_random(BIG_SIZE, n) + \
        marker(n, "contentend").encode()
    fname = f"big-{marker(n, 'filename')}.bin"
    h = headers(n, f"Big one {marker(n, 'subject')}", std_from(n),
                [f'Content-Type: multipart/mixed; boundary="{b}"'])
    parts = [
        f"--{b}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Five megabytes attached {marker(n, 'body')}",
        f"--{b}",
        f'Content-Type: application/octet-stream; name="{fname}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{fname}"',
        "",
        b64lines(data).rstrip("\r\n"),
        f"--{b}--",
        "",
    ]
    return (join(h) + CRLF + CRLF + join(parts)).encode("ascii")


MESSAGES = {
    "01-plain.eml": m01_plain,
    "02-alternative.eml": m02_alternative,
    "03-pdf.eml": m03_pdf,
    "04-related-inline-image.eml": m04_related,
    "05-rfc2231-filename.eml": m05_rfc2231,
    "06-rfc2047-subject.eml": m06_rfc2047,
    "07-latin1-body.eml": m07_latin1,
    "08-nested-rfc822.eml": m08_nested,
    "09-same-names.eml": m09_same_names,
    "10-utf8-headers.eml": m10_utf8_headers,
    "11-lf-only.eml": m11_lf_only,
    "12-mixed-types.eml": m12_mixed_types,
    "13-html-only.eml": m13_html_only,
    "15-reserved-names.eml": m15_reserved_names,
    "16-hostile-names.eml": m16_hostile_names,
}
BIG_NAME = "14-big-attachment.eml"


def main(argv):
    big = "--big" in argv
    args = [a for a in argv if a != "--big"]
    out = args[0] if args else HERE
    os.makedirs(out, exist_ok=True)
    todo = dict(MESSAGES)
    if big:
        todo[BIG_NAME] = big_message
    for name, fn in todo.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(fn())
    print(f"wrote {len(todo)} messages to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
