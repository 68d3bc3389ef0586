#!/usr/bin/env python3
"""Checks RFC 5322 messages with Python's own e-mail parser, for the billing
mail tests (tests/unit/test_billing_mail.c, tests/integration/test_billing_mail.c).

    mail_check.py DIR...

Each DIR holds message.eml and the values it must read back as, one file
each (absent: not checked): want_from_name, want_from_addr, want_to_name,
want_to_addr, want_subject, want_message_id, want_date (seconds since the
epoch) and want_body (the body's text, compared with line ends as LF).
Every message must also be ASCII with CRLF line ends, no line over 998
bytes, and parse without defects. Prints each problem; exits 1 if any.
"""
import email
import email.policy
import email.utils
import os
import sys


def read(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read().decode("utf-8")


def check(d):
    bad = []
    with open(os.path.join(d, "message.eml"), "rb") as f:
        raw = f.read()
    if any(b > 0x7F for b in raw):
        bad.append("not ASCII")
    lines = raw.split(b"\r\n")
    if lines[-1] != b"":
        bad.append("does not end in CRLF")
    for i, line in enumerate(lines):
        if b"\r" in line or b"\n" in line:
            bad.append("line %d: a bare CR or LF" % (i + 1))
        if len(line) > 998:
            bad.append("line %d: %d bytes" % (i + 1, len(line)))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.defects:
        bad.append("defects: %r" % msg.defects)
    for k in msg.keys():
        h = msg[k]
        if getattr(h, "defects", None):
            bad.append("%s: defects %r" % (k, h.defects))
    want = {n: read(d, "want_" + n) for n in
            ("from_name", "from_addr", "to_name", "to_addr", "subject", "message_id", "date", "body")}
    for field, key in (("From", "from"), ("To", "to")):
        addrs = msg[field].addresses if msg[field] is not None else ()
        if len(addrs) != 1:
            bad.append("%s: %d addresses in %r" % (field, len(addrs), str(msg[field])))
            continue
        if want[key + "_name"] is not None and addrs[0].display_name != want[key + "_name"]:
            bad.append("%s name: %r, not %r" % (field, addrs[0].display_name, want[key + "_name"]))
        if want[key + "_addr"] is not None and addrs[0].addr_spec != want[key + "_addr"]:
            bad.append("%s address: %r, not %r" % (field, addrs[0].addr_spec, want[key + "_addr"]))
    if want["subject"] is not None and str(msg["Subject"]) != want["subject"]:
        bad.append("Subject: %r, not %r" % (str(msg["Subject"]), want["subject"]))
    if want["message_id"] is not None:
        mid = str(msg["Message-ID"])
        if mid != want["message_id"]:
            bad.append("Message-ID: %r, not %r" % (mid, want["message_id"]))
        # The strict msg-id grammar: Python's parser reads it as one msg-id.
        parsed = email.policy.default.header_factory("Message-ID", mid)
        if parsed.defects:
            bad.append("Message-ID defects: %r" % parsed.defects)
    if want["date"] is not None:
        t = email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp()
        if int(t) != int(want["date"]):
            bad.append("Date: %r is %d, not %s" % (str(msg["Date"]), t, want["date"]))
    if msg.get_content_type() != "text/plain" or msg.get_content_charset() != "utf-8":
        bad.append("Content-Type: %r" % str(msg["Content-Type"]))
    if str(msg["MIME-Version"]) != "1.0":
        bad.append("MIME-Version: %r" % str(msg["MIME-Version"]))
    if want["body"] is not None:
        body = msg.get_content().replace("\r\n", "\n")
        if body != want["body"]:
            bad.append("body: %r, not %r" % (body[:300], want["body"][:300]))
    return ["%s: %s" % (d, b) for b in bad]


def main():
    problems = []
    for d in sys.argv[1:]:
        problems += check(d)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
