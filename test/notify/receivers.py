#!/usr/bin/python3
"""Real receivers for lockbox-notify's tests, demo and benchmark.

  receivers.py smtp --port P --dir D
      an SMTP server (aiosmtpd): each message accepted is written to
      D/mail/N.eml, and a line "<unix time> <Message-ID> <rcpt,rcpt>" is
      appended to D/smtp.log.  A recipient whose local part begins with
      "reject" is refused with 550 (an invalid address).

  receivers.py http --port P --dir D --secret S
      an HTTP receiver (http.server) of signed webhooks: it verifies
      X-Lockbox-Signature (t=<unix>,v1=<hex HMAC-SHA256(S, "<t>." + body)>),
      appends "<unix time> <X-Lockbox-Id> <valid|INVALID> <event>" to
      D/http.log and the body to D/hooks/N.json.  While D/http.mode holds
      "fail" it answers 500; "slow N" waits N seconds before answering.

Run with Debian's /usr/bin/python3 (aiosmtpd is a Debian package).
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time


def smtp(args):
    import asyncio
    from aiosmtpd.controller import Controller
    from email import message_from_bytes

    os.makedirs(os.path.join(args.dir, "mail"), exist_ok=True)
    log = open(os.path.join(args.dir, "smtp.log"), "a", buffering=1)
    counter = [0]

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.split("@")[0].startswith("reject"):
                return "550 5.1.1 <%s>: recipient address rejected" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            msg = message_from_bytes(envelope.content)
            counter[0] += 1
            with open(os.path.join(args.dir, "mail", "%d.eml" % counter[0]), "wb") as f:
                f.write(envelope.content)
            log.write("%.6f %s %s\n" % (time.time(), msg.get("Message-ID", "-"),
                                        ",".join(envelope.rcpt_tos)))
            return "250 2.0.0 accepted"

    controller = Controller(Handler(), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("smtp listening on 127.0.0.1:%d" % args.port, flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


def http(args):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    os.makedirs(os.path.join(args.dir, "hooks"), exist_ok=True)
    log = open(os.path.join(args.dir, "http.log"), "a", buffering=1)
    lock = threading.Lock()
    counter = [0]
    secret = args.secret.encode()

    def verify(headers, body):
        sig = headers.get("X-Lockbox-Signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        if "t" not in parts or "v1" not in parts:
            return False
        if abs(time.time() - int(parts["t"])) > 300:
            return False
        want = hmac.new(secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, parts["v1"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                mode = open(os.path.join(args.dir, "http.mode")).read().split()
            except OSError:
                mode = []
            if mode[:1] == ["slow"]:
                time.sleep(float(mode[1]))
            if mode[:1] == ["fail"]:
                self.send_response(500)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"oops\n")
                return
            valid = verify(self.headers, body)
            try:
                event = json.loads(body).get("event", "-")
            except ValueError:
                event = "-"
            with lock:
                counter[0] += 1
                with open(os.path.join(args.dir, "hooks", "%d.json" % counter[0]), "wb") as f:
                    f.write(body)
                log.write("%.6f %s %s %s\n" % (time.time(), self.headers.get("X-Lockbox-Id", "-"),
                                               "valid" if valid else "INVALID", event))
            self.send_response(200 if valid else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("http listening on 127.0.0.1:%d" % args.port, flush=True)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["smtp", "http"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--secret", default="")
    args = p.parse_args()
    smtp(args) if args.kind == "smtp" else http(args)


if __name__ == "__main__":
    sys.exit(main())
