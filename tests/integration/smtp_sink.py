#!/usr/bin/env python3
"""A real SMTP server on loopback for the billing mail tests (aiosmtpd,
Debian's python3-aiosmtpd), keeping every message it accepts.

    smtp_sink.py --port P --dir D [--idle-timeout S]
                 [--tls starttls|implicit --tls-cert PEM --tls-key PEM]

Each accepted message goes to D/msgs/<n>/message.eml (n from 0, the bytes
as received, dot-unstuffed) before the server answers 250, then one line
to D/log: "<n> <client port> <MAIL FROM> <RCPT TO>". Recipients whose
local part starts with "reject" get 550, "busy" 451, "slowbusy" 451 after
5 s, and "slow" an answer only after 5 s. D/ready appears once the server accepts connections. It
runs until SIGTERM or SIGINT.

--tls starttls offers STARTTLS and refuses everything but EHLO, NOOP, QUIT
and STARTTLS until the client has started TLS (530); --tls implicit speaks
TLS from the first byte, as an smtps:// server on port 465 does. Either
way with the certificate chain and key given. Handshakes that fail (a
client that does not trust the certificate) are logged on stderr, and
no message is kept.
"""
import argparse
import asyncio
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, root):
        self.root = root
        self.n = 0
        self.lock = threading.Lock()
        os.makedirs(os.path.join(root, "msgs"), exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local.startswith("slowbusy"):
            await asyncio.sleep(5)
            return "451 4.3.0 <%s>: try again later" % address
        if local.startswith("busy"):
            return "451 4.3.0 <%s>: try again later" % address
        if local.startswith("slow"):
            await asyncio.sleep(5)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = self.n
            self.n += 1
        d = os.path.join(self.root, "msgs", str(n))
        os.makedirs(d)
        with open(os.path.join(d, "message.eml"), "wb") as f:
            f.write(envelope.original_content)
        with open(os.path.join(self.root, "log"), "a") as f:
            f.write("%d %d %s %s\n" % (n, session.peer[1], envelope.mail_from, ",".join(envelope.rcpt_tos)))
        return "250 OK queued as %d" % n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--idle-timeout", type=float, default=300)
    ap.add_argument("--tls", choices=["starttls", "implicit"])
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    kw = {}
    if a.tls:
        if not (a.tls_cert and a.tls_key):
            ap.error("--tls needs --tls-cert and --tls-key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.tls == "starttls":
            kw = {"tls_context": ctx, "require_starttls": True}
        else:
            kw = {"ssl_context": ctx}
    c = Controller(Sink(a.dir), hostname="127.0.0.1", port=a.port, timeout=a.idle_timeout, **kw)
    c.start()
    open(os.path.join(a.dir, "ready"), "w").close()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.05):
        pass
    c.stop()


if __name__ == "__main__":
    main()
