#!/usr/bin/env python3
"""Vesting schedule, the plain way: the baseline that `rpcq vesting` is timed against.

    vesting.py FILE TARGET_DATE [PRECISION]

Reads a ledger of vesting events (CSV, six fields, no header; rules in
shared/spec/vesting.md) and prints, for every (employee, award) in it, the
shares vested net of cancellations on or before TARGET_DATE, ordered by
employee id then award id (byte order), with exactly PRECISION decimals,
lines separated by a line break and none after the last (as the examples).
Only the standard library: csv for the rows, decimal for exact arithmetic.
Bad input is one line on stderr ("vesting.py: FILE: line N: reason") and
exit status 1; bad arguments exit with status 2.

Where the spec leaves room, this follows rpcqd's reader: blanks around a
field are spaces, tabs and carriage returns; a line of nothing but blanks is
skipped; a quantity may be written "5." or ".5"; the employee's name is the
first non-empty one; a CANCEL may not take an award's net vested total below
zero at its own date (all events of that date counted).
"""

import csv
import datetime
import decimal
import re
import sys

D = decimal.Decimal
# rpcqd keeps quantities as int64 micro-shares: anything larger overflows.
QTY_MAX = D("9223372036854.775807")
QTY_RE = re.compile(r"[0-9]*(\.[0-9]*)?")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
BLANKS = " \t\r"


class BadInput(Exception):
    """A row that breaks the spec; the message names the line."""


def parse_date(text, what):
    if not DATE_RE.fullmatch(text):
        raise BadInput(f"{what} {text!r} is not a date (YYYY-MM-DD)")
    try:
        datetime.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a real calendar date") from None
    return text  # ISO dates compare correctly as strings


def parse_quantity(text, unit):
    if text.startswith("-"):
        raise BadInput(f"quantity {text!r} is negative")
    if not text or text == "." or not QTY_RE.fullmatch(text):
        raise BadInput(f"quantity {text!r} is not a decimal number")
    q = D(text + "0" if text.endswith(".") else text)
    if q > QTY_MAX:
        raise BadInput(f"quantity {text!r} is too large")
    return q.quantize(unit, rounding=decimal.ROUND_DOWN)


def read_events(path, unit):
    """(events, names): events as (employee_id, award_id, action, date, qty, line)."""
    events = []
    names = {}
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, skipinitialspace=True)
        line = 1
        try:
            for row in reader:
                start, line = line, reader.line_num + 1
                fields = [x.strip(BLANKS) for x in row]
                if not fields or fields == [""]:
                    continue
                try:
                    if len(fields) != 6:
                        raise BadInput(f"expected 6 fields, found {len(fields)}")
                    action, emp, name, award, date, qty = fields
                    if action not in ("VEST", "CANCEL"):
                        raise BadInput(f"unknown action {action!r} (VEST or CANCEL)")
                    if not emp:
                        raise BadInput("empty employee id")
                    if not award:
                        raise BadInput("empty award id")
                    date = parse_date(date, "date")
                    q = parse_quantity(qty, unit)
                except BadInput as e:
                    raise BadInput(f"line {start}: {e}") from None
                if name and emp not in names:
                    names[emp] = name
                events.append((emp, award, action == "CANCEL", date, q, start))
        except csv.Error as e:
            raise BadInput(f"line {line}: {e}") from None
    return events, names


def schedule(events, target):
    """Net vested per (employee_id, award_id) at target; checks every CANCEL."""
    by_award = {}
    for ev in events:
        by_award.setdefault((ev[0], ev[1]), []).append(ev)
    totals = {}
    for key, evs in by_award.items():
        evs.sort(key=lambda e: (e[3], e[5]))
        net = D(0)
        i = 0
        while i < len(evs):
            date = evs[i][3]
            first_cancel = None
            while i < len(evs) and evs[i][3] == date:
                _, _, cancel, _, q, line = evs[i]
                if cancel:
                    net -= q
                    if first_cancel is None:
                        first_cancel = line
                else:
                    net += q
                    if net > QTY_MAX:
                        raise BadInput(f"line {line}: the award's total overflows")
                i += 1
            if net < 0:
                raise BadInput(
                    f"line {first_cancel}: CANCEL takes award {key[1]} of employee {key[0]} "
                    f"below zero vested shares on {date}"
                )
            if date <= target:
                totals[key] = net
        totals.setdefault(key, D(0))
    return totals


def csv_field(s):
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def main(argv):
    if len(argv) not in (3, 4) or argv[1] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    path = argv[1]
    prec_text = argv[3] if len(argv) == 4 else "0"
    if not re.fullmatch(r"[0-6]", prec_text):
        print(f"vesting.py: precision {prec_text!r} is not an integer from 0 to 6", file=sys.stderr)
        return 2
    precision = int(prec_text)
    try:
        target = parse_date(argv[2], "target date")
    except BadInput as e:
        print(f"vesting.py: {e}", file=sys.stderr)
        return 2
    unit = D(1).scaleb(-precision)
    decimal.getcontext().prec = 40
    try:
        events, names = read_events(path, unit)
        totals = schedule(events, target)
    except BadInput as e:
        print(f"vesting.py: {path}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vesting.py: {path}: {e.strerror}", file=sys.stderr)
        return 1

    def byte_key(k):
        return (k[0].encode("utf-8", "surrogateescape"), k[1].encode("utf-8", "surrogateescape"))

    out = []
    for emp, award in sorted(totals, key=byte_key):
        q = totals[(emp, award)].quantize(unit)
        out.append(f"{csv_field(emp)},{csv_field(names.get(emp, ''))},{csv_field(award)},{q:f}")
    # As the examples of the spec (and `rpcq vesting`): no line break after the last line.
    sys.stdout.reconfigure(encoding="utf-8", errors="surrogateescape", newline="\n")
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
