#!/usr/bin/env python3
"""Seeds for fuzz_smtp and fuzz_http (layouts in those files): SMTP
transcripts and HTTP requests, with %R/%K/%T/%I placeholders."""
import os
import sys

out = sys.argv[1]
msgs = sys.argv[2:]


def put(sub, name, data):
    d = os.path.join(out, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def smtp(name, lines, seed=0x05):
    put("smtp", name, bytes([seed]) + b"".join(lines))


def dot_stuff(msg):
    msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in msg.split(b"\r\n"))


# %W: wait for the replies to the lines before (a sync point), %D: wait for
# the reply to a message body.
base = [b"EHLO client.example\r\n%W", b"MAIL FROM:<a@sender.example>\r\n",
        b"RCPT TO:<%R>\r\n", b"DATA\r\n%W"]
smtp("plain", base + [b"Subject: hi\r\n\r\nhello\r\n.\r\n%D", b"QUIT\r\n"])
smtp("plain-big-pieces", base + [b"Subject: hi\r\n\r\nhello\r\n.\r\n%D", b"QUIT\r\n"], 0x85)
smtp("helo", [b"HELO x\r\n%W", b"MAIL FROM:<>\r\n", b"RCPT TO:<postmaster@mailin.test>\r\n",
              b"DATA\r\n%W", b"x\r\n.\r\n%D", b"RSET\r\n%W", b"NOOP\r\n%W", b"QUIT\r\n"])
smtp("params", [b"EHLO c\r\n%W", b"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n",
                b"RCPT TO:<%R> NOTIFY=NEVER\r\n", b"RCPT TO:<nobody@mailin.test>\r\n",
                b"RCPT TO:<x@elsewhere.example>\r\n", b"VRFY x\r\n", b"EXPN x\r\n",
                b"HELP\r\n%W", b"STARTTLS\r\n%W", b"QUIT\r\n"])
smtp("smuggle", base + [b"a\r\n\n.\n\r\nMAIL FROM:<x@y>\r\n.\r\n%D", b"QUIT\r\n"])
smtp("bare-lf", [b"EHLO c\n%W", b"MAIL FROM:<a@b>\r\r\n%W", b"QUIT\r\n"])
smtp("pipelined", [b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<%R>\r\nDATA\r\nearly\r\n.\r\n"])
smtp("long-line", [b"EHLO " + b"a" * 1200 + b"\r\n", b"QUIT\r\n"])
smtp("empty-body", base + [b"\r\n.\r\n%D", b"QUIT\r\n"])
smtp("two-messages", base + [b"one\r\n.\r\n%D", b"MAIL FROM:<b@c>\r\nRCPT TO:<%R>\r\n"
                             b"RCPT TO:<%R>\r\nDATA\r\n%W", b"two\r\n.\r\n%D",
                             b"QUIT\r\n"])
for path in msgs:
    with open(path, "rb") as f:
        m = f.read()
    if len(m) > 60000:
        continue
    smtp("msg-" + os.path.basename(path), base + [dot_stuff(m) + b"\r\n.\r\n%D", b"QUIT\r\n"],
         0x85)


def http(name, req, seed=0x85):
    put("http", name, bytes([seed]) + req)


CL = b"Connection: close\r\n"
http("healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + CL + b"\r\n")
http("metrics", b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + CL + b"\r\n")
http("page", b"GET /s/%T HTTP/1.1\r\nHost: x\r\n" + CL + b"\r\n")
http("head", b"HEAD /s/%T HTTP/1.1\r\nHost: x\r\n" + CL + b"\r\n")
http("page-unknown", b"GET /s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n" + CL +
     b"\r\n")
body = b"code=fuzzcode123"
http("code", b"POST /s/%T HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
     b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + CL + b"\r\n" + body)
body = b"code=wrongcode000"
http("code-wrong", b"POST /s/%T HTTP/1.1\r\nHost: x\r\nContent-Type: "
     b"application/x-www-form-urlencoded\r\nContent-Length: " + str(len(body)).encode() +
     b"\r\n" + CL + b"\r\n" + body)
http("mtan", b"POST /s/%T/mtan HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + CL + b"\r\n")
http("status", b"GET /api/v1/sends/%I HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %K\r\n" +
     CL + b"\r\n")
http("status-nokey", b"GET /api/v1/sends/%I HTTP/1.1\r\nHost: x\r\n" + CL + b"\r\n")
b = b"XyZb0undary"
mp = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nr@example.net\r\n"
      b"--" + b + b"\r\nContent-Disposition: form-data; name=\"protect\"\r\n\r\ncode\r\n"
      b"--" + b + b"\r\nContent-Disposition: form-data; name=\"expires\"\r\n\r\n2d\r\n"
      b"--" + b + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
      b"Content-Type: text/plain\r\n\r\nfile body\r\n--" + b + b"--\r\n")
http("create", b"POST /api/v1/sends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %K\r\n"
     b"Idempotency-Key: k1\r\nContent-Type: multipart/form-data; boundary=" + b +
     b"\r\nContent-Length: " + str(len(mp)).encode() + b"\r\n" + CL + b"\r\n" + mp)
http("create-chunked", b"POST /api/v1/sends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %K\r\n"
     b"Content-Type: multipart/form-data; boundary=" + b + b"\r\nTransfer-Encoding: chunked\r\n" +
     CL + b"\r\n" + hex(len(mp))[2:].encode() + b"\r\n" + mp + b"\r\n0\r\n\r\n")
http("delete", b"DELETE /api/v1/sends/nonexistent HTTP/1.1\r\nHost: x\r\nAuthorization: "
     b"Bearer %K\r\n" + CL + b"\r\n")
http("pipelined", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /s/%T HTTP/1.1\r\nHost: x\r\n" +
     CL + b"\r\n")
