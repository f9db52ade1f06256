#!/usr/bin/python3
"""Writes the test messages of tests/data/mime/ (the .eml files are
committed; this script documents how they were made and re-creates them).
Each .eml has a .ref beside it: the expected mime_dump output, reviewed by
hand (see tests/integration/test_mime_golden.sh). Run from anywhere:
    /usr/bin/python3 tests/data/mime/gen.py
"""
import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# A 1x1 PNG, and a small fake PDF: attachment bytes the .ref hashes.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def b64(data, width=76):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width)).encode()


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def head(subject=b"test", extra=b""):
    return (b"From: Alice Example <alice@example.org>\n"
            b"To: Bob <bob@example.net>\n"
            b"Date: Tue, 4 Mar 2025 10:00:00 +0100\n"
            b"Message-ID: <" + subject.replace(b" ", b"-") + b"@example.org>\n"
            b"Subject: " + subject + b"\n" + extra)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def attachment(name_params, ctype, data, disp=b"attachment"):
    return (b"Content-Type: " + ctype + b"\n"
            b"Content-Disposition: " + disp + name_params + b"\n"
            b"Content-Transfer-Encoding: base64\n\n" + b64(data) + b"\n")


def main():
    # multipart/alternative, CRLF line ends
    write("alternative.eml", crlf(
        head(b"alternative", b"MIME-Version: 1.0\n"
             b"Content-Type: multipart/alternative; boundary=\"alt\"\n") +
        b"\nThis is a prologue.\n--alt\n"
        b"Content-Type: text/plain; charset=utf-8\n\nHello Bob,\nplain text here.\n"
        b"--alt\nContent-Type: text/html; charset=utf-8\n\n"
        b"<p>Hello Bob,<br>html here.</p>\n--alt--\nepilogue\n"))

    # multipart/related: html body and an inline image with a name
    write("related.eml",
          head(b"related", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n") +
          b"\n--rel\nContent-Type: text/html; charset=us-ascii\n\n"
          b"<p><img src=\"cid:logo@x\"></p>\n--rel\n"
          b"Content-ID: <logo@x>\n" +
          attachment(b"; filename=\"logo.png\"", b"image/png", PNG, b"inline") +
          b"--rel\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" +
          b64(b"GIF89a-no-name") + b"\n--rel--\n")

    # nested message/rfc822 with its own attachment
    inner = (b"From: Carol <carol@example.com>\nTo: Alice <alice@example.org>\n"
             b"Subject: Inner report\nMIME-Version: 1.0\n"
             b"Content-Type: multipart/mixed; boundary=\"in\"\n\n"
             b"--in\nContent-Type: text/plain\n\ninner body text\n--in\n" +
             attachment(b"; filename=\"inner.pdf\"", b"application/pdf", PDF) +
             b"--in--\n")
    write("nested.eml",
          head(b"nested", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"out\"\n") +
          b"\n--out\nContent-Type: text/plain\n\nsee the forwarded mail\n"
          b"--out\nContent-Type: message/rfc822\n\n" + inner +
          b"\n--out\nContent-Type: message/rfc822\n"
          b"Content-Disposition: attachment; filename=\"forwarded.eml\"\n\n" +
          b"From: dave@example.com\nSubject: second\n\nsecond body\n" +
          b"\n--out\n" + attachment(b"; filename=\"outer.pdf\"", b"application/pdf", PDF) +
          b"--out--\n")

    # RFC 2231: continuations, charset and language, percent-encoding
    write("rfc2231.eml",
          head(b"rfc2231", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nnames\n--b\n" +
          attachment(b";\n filename*0*=UTF-8''%C3%9Cberweisung%20M;\n filename*1*=%C3%A4rz.pdf",
                     b"application/pdf", PDF) + b"--b\n" +
          attachment(b"; filename*=iso-8859-1'fr'r%E9sum%E9.txt", b"text/plain",
                     "résumé\n".encode("latin-1")) + b"--b\n" +
          attachment(b"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.docx",
                     b"application/octet-stream", b"PK\x03\x04docx") + b"--b\n" +
          attachment(b";\n filename*0=\"long-name-\";\n filename*1=\"in-three-\";\n"
                     b" filename*2=\"pieces.txt\"", b"text/plain", b"three\n") +
          b"--b--\n")

    # RFC 2047: subject, display name and a quoted encoded-word file name
    write("rfc2047.eml",
          b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\n"
          b"To: =?ISO-8859-1?Q?Fran=E7ois?= <f@example.fr>\n"
          b"Subject: =?UTF-8?B?w5xiZXJ3ZWlzdW5n?= =?ISO-8859-1?Q?_f=FCr_M=E4rz?=\n"
          b"Date: Tue, 4 Mar 2025 10:00:00 +0100\nMessage-ID: <rfc2047@example.de>\n"
          b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
          b"--b\nContent-Type: text/plain; charset=utf-8\n"
          b"Content-Transfer-Encoding: 8bit\n\n" + "Grüße\n".encode() + b"--b\n" +
          attachment(b"; filename=\"=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=\"",
                     b"application/pdf", PDF) + b"--b\n"
          b"Content-Type: application/octet-stream; name=\"=?UTF-8?B?5aCx5ZGKLnhsc3g=?=\"\n"
          b"Content-Transfer-Encoding: base64\n\n" + b64(b"xlsx-bytes") + b"\n--b--\n")

    # legacy charsets converted to UTF-8 (bodies only; attachments stay bytes)
    write("latin1.eml",
          head(b"latin1", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/alternative; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain; charset=ISO-8859-1\n"
          b"Content-Transfer-Encoding: quoted-printable\n\n"
          b"Gr=FC=DFe aus K=F6ln, 5 =A3 =3D soft=\n break.\n"
          b"--b\nContent-Type: text/html; charset=windows-1252\n"
          b"Content-Transfer-Encoding: 8bit\n\n"
          b"<p>Preis: 5 \x80 \x93quoted\x94</p>\n--b--\n")
    write("koi8r.eml",
          head(b"koi8r", b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=KOI8-R\n"
               b"Content-Transfer-Encoding: 8bit\n") +
          b"\n" + "Привет, мир!\n".encode("koi8-r"))
    write("iso2022jp.eml",
          head(b"iso2022jp", b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=ISO-2022-JP\n"
               b"Content-Transfer-Encoding: 7bit\n") +
          b"\n" + "こんにちは、世界。\n".encode("iso-2022-jp"))
    write("unknown-charset.eml",
          head(b"unknown charset", b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=x-no-such-charset\n"
               b"Content-Transfer-Encoding: 8bit\n") +
          b"\nvalid \xc3\xa4 and invalid \xe4 bytes\n")

    # boundary problems
    write("missing-boundary.eml",
          head(b"missing boundary", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"never-used\"\n") +
          b"\n--other\nContent-Type: text/plain\n\nbody under a wrong boundary\n--other--\n")
    write("no-boundary-param.eml",
          head(b"no boundary parameter", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed\n") +
          b"\n--x\nContent-Type: text/plain\n\ntext\n--x--\n")
    write("truncated-multipart.eml",
          head(b"truncated", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nfirst part\n--b\n" +
          attachment(b"; filename=\"cut.bin\"", b"application/octet-stream", b"0123456789"))

    # transfer-encoding errors
    write("bad-base64.eml",
          head(b"bad base64", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nsee attachment\n--b\n"
          b"Content-Type: application/octet-stream\n"
          b"Content-Disposition: attachment; filename=\"broken.bin\"\n"
          b"Content-Transfer-Encoding: base64\n\n"
          b"SGVsbG8g!!d29y*bGQ=\nQUJD\n--b--\n")
    write("bad-qp.eml",
          head(b"bad qp", b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: quoted-printable\n") +
          b"\nok =C3=A4 then =ZZ broken and =4\n")

    # hostile nesting: 200 multiparts inside each other
    depth = 200
    body = b"Content-Type: text/plain\n\ndeepest\n"
    for i in range(depth - 1, -1, -1):
        body = (b"Content-Type: multipart/mixed; boundary=\"d%d\"\n\n--d%d\n" % (i, i) + body +
                b"--d%d--\n" % i)
    write("deep-nesting.eml", head(b"deep", b"MIME-Version: 1.0\n") + body)

    # 1500 sibling parts (many-parts.args lowers the limit to 20)
    parts = b"".join(b"--m\nContent-Type: application/octet-stream\n\nx%d\n" % i
                     for i in range(1500))
    write("many-parts.eml",
          head(b"many parts", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"m\"\n") +
          b"\n" + parts + b"--m--\n")

    # hostile From: 100000 groups nested in each other (400 KB); GMime's
    # group parser recurses once per level and overflows an 8 MB stack
    n = 100000
    hostile = b"".join(b"g%d:" % (i % 10) for i in range(n)) + b"x@example.org" + b";" * n
    write("hostile-from.eml",
          b"From: " + hostile + b"\nTo: bob@example.net\nSubject: hostile from\n"
          b"Date: Tue, 4 Mar 2025 10:00:00 +0100\nMessage-ID: <hostile@example.org>\n\n"
          b"the body survives\n")
    # the same inside a nested message, where only the child's limits help
    write("hostile-from-nested.eml",
          head(b"hostile nested", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nouter body\n--b\n"
          b"Content-Type: message/rfc822\n\nFrom: " + hostile +
          b"\nSubject: inner\n\ninner body\n--b--\n")

    # GMime allows blanks before a field's colon: "From :" is From too,
    # and was not screened (fuzz_mime, CI smoke, 2026-11-22)
    write("hostile-from-space.eml",
          b"From : " + hostile + b"\nTo: bob@example.net\nSubject: hostile from space\n"
          b"Date: Tue, 4 Mar 2025 10:00:00 +0100\nMessage-ID: <hostile-space@example.org>\n\n"
          b"the body survives\n")

    # an unclosed quote: we would read the rest as quoted text, GMime's loose
    # parser still opens a group per colon; any field with many colons is
    # hidden, however it is quoted
    write("hostile-from-quote.eml",
          b"From: \"" + b"a:" * 2000 + b"\nTo: bob@example.net\nSubject: hostile from quote\n\n"
          b"the body survives\n")

    # exactly MIME_PRESCAN_COLONS_MAX (128) colons, all in a quoted display
    # name: at the limit, not over it, so From is parsed and shown
    write("colons-at-limit.eml",
          b"From: \"" + b"a:" * 128 + b"\" <alice@example.org>\nTo: bob@example.net\n"
          b"Subject: colons at the limit\n\nbody\n")
    write("colons-over-limit.eml",
          b"From: \"" + b"a:" * 129 + b"\" <alice@example.org>\nTo: bob@example.net\n"
          b"Subject: colons over the limit\n\nbody\n")

    # more hostile address fields than the screen hides (1024): the message
    # is not given to GMime at all; only the sealed original keeps it
    write("hostile-many-fields.eml",
          b"".join(b"Cc: g:h:x@example.org;;\n" for _ in range(1100)) +
          b"From: " + hostile + b"\nSubject: too many\n\nbody\n")

    # names that must be cleaned, and duplicates
    def named(params, data):
        return b"--b\n" + attachment(params, b"application/octet-stream", data)
    write("names.eml",
          head(b"names", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nnames\n" +
          named(b"; filename=\"../../etc/passwd\"", b"1") +
          named(b"; filename=\"..\\\\..\\\\boot.ini\"", b"2") +
          named(b"; filename*=UTF-8''invoice%E2%80%AEfdp.exe", b"3") +
          named(b"; filename=\"CON.txt\"", b"4") +
          named(b"; filename=\"nul\"", b"5") +
          named(b"; filename=\"lpt1.tar.gz\"", b"6") +
          named(b"; filename=\"report.pdf\"", b"7") +
          named(b"; filename=\"report.pdf\"", b"8") +
          named(b"; filename=\"Report.PDF\"", b"9") +
          named(b"; filename=\"trailing. . \"", b"10") +
          named(b"; filename=\".hidden\"", b"11") +
          named(b"; filename=\"a:b*c?d<e>f|g\\\"h.txt\"", b"12") +
          named(b"; filename*=UTF-8''evil.exe%00.txt", b"13") +
          named(b"; filename=\"body.txt\"", b"14") +
          named(b"; filename=\"" + b"x" * 300 + b".pdf\"", b"15") +
          named(b"; filename*=UTF-8''%E2%81%A6isolate%E2%81%A9.txt", b"16") +
          b"--b--\n")

    # ordinary non-ASCII names stay exactly as they are (no name_changed)
    write("plain-names.eml",
          head(b"plain names", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\n\nnames\n" +
          named(b"; filename*=UTF-8''%C3%9Cberweisung%20M%C3%A4rz.pdf", PDF) +
          named(b"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.docx", b"docx") +
          named(b"; filename=\"Quarterly report (final) v2.xlsx\"", b"xlsx") +
          b"--b--\n")

    # bodies: first inline text/plain is the body; others are attachments
    write("bodies.eml",
          head(b"bodies", b"MIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\n") +
          b"\n--b\nContent-Type: text/plain\nContent-Disposition: attachment\n\n"
          b"an attached text without a name\n"
          b"--b\nContent-Type: text/plain\n\nthe real body\n"
          b"--b\nContent-Type: text/plain\n\na second inline text\n"
          b"--b\nContent-Type: text/html\n\n<p>html body</p>\n"
          b"--b\nContent-Type: text/html\n\n<p>second html</p>\n"
          b"--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\nEND:VCALENDAR\n--b--\n")

    # a plain RFC 5322 message without MIME
    write("plain.eml",
          b"From: alice@example.org\nTo: bob@example.net\nSubject: plain old mail\n"
          b"Date: Tue, 4 Mar 2025 10:00:00 +0100\n\nJust text.\nTwo lines.\n")

    # raw 8-bit headers: UTF-8 subject, Latin-1 display name
    write("8bit-headers.eml",
          b"From: J\xfcrgen <j@example.de>\nTo: bob@example.net\n"
          b"Subject: " + "Grüße aus Köln ☕".encode() + b"\n"
          b"Date: Tue, 4 Mar 2025 10:00:00 +0100\n\nbody\n")

    # a subject longer than header_size (long-subject.args: 64 bytes), cut
    # on a character boundary; and a group in To:, which is legal
    write("long-subject.eml",
          b"From: alice@example.org\nTo: undisclosed-recipients:;\n"
          b"Subject: " + "Überweisung ".encode() * 10 + b"\n\nbody\n")

    # nothing at all, and binary garbage
    write("empty.eml", b"")
    write("garbage.eml", bytes(range(256)) * 4)


if __name__ == "__main__":
    main()
