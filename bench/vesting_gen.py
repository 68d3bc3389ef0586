#!/usr/bin/env python3
"""Generates a vesting ledger for benchmarks (CSV of shared/spec/vesting.md).

    vesting_gen.py [-n EVENTS] [-a AWARDS] [-s SEED] [-o FILE]

Defaults: 1,000,000 events over 100,000 awards, seed 1, standard output.
The same arguments always give the same bytes. The ledger looks like a real
one: about four awards per employee; each award is a grant of a fractional
number of shares (up to three decimals) vesting in equal monthly or quarterly
tranches from a grant date in 2016..2024; about a fifth of the awards end
with a CANCEL of part of what had vested (so the CANCEL rule is exercised but
never broken, at any precision); rows come in date order, as a ledger grows.
One employee name in fifty contains a comma or a quote, so the output
exercises CSV quoting, and every name is a plain ASCII one.
"""

import argparse
import datetime
import random
import sys

FIRST = ["Alice", "Bobby", "Cat", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kofi", "Lena",
         "Mateo", "Nia", "Oren", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vic", "Wen", "Yara"]
LAST = ["Smith", "Jones", "Helms", "Novak", "Okafor", "Garcia", "Tanaka", "Muller", "Rossi", "Dubois",
        "Kowalski", "Silva", "Haddad", "Larsen", "Nguyen", "Ortiz", "Petrov", "Quist", "Reyes", "Stone"]
PREFIX = ["ISO", "NSO", "RSU"]
EPOCH = datetime.date(2016, 1, 1)


def add_months(d, months):
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = min(d.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                      31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return datetime.date(year, month, day)


def fmt_milli(milli):
    """Thousandths of a share as the shortest decimal text ("12", "12.5", "0.125")."""
    whole, frac = divmod(milli, 1000)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:03d}".rstrip("0")


def employee_name(rng):
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    r = rng.random()
    if r < 0.01:
        first, last = name.split(" ")
        return f"{last}, {first}"
    if r < 0.02:
        first, last = name.split(" ")
        return f'{first} "{rng.choice(["Ace", "Bo", "Kit"])}" {last}'
    return name


def csv_field(s):
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def generate(n_events, n_awards, seed, out):
    rng = random.Random(seed)
    n_employees = max(1, n_awards // 4)
    names = [employee_name(rng) for _ in range(n_employees)]
    base, extra = divmod(n_events, n_awards)
    rows = []
    for a in range(n_awards):
        k = base + (1 if a < extra else 0)
        if k == 0:
            continue
        emp = rng.randrange(n_employees)
        award = f"{PREFIX[a % 3]}-{a + 1:06d}"
        grant = EPOCH + datetime.timedelta(days=rng.randrange(9 * 365))
        step = rng.choice((1, 3))
        cancel = k >= 2 and rng.random() < 0.2
        tranches = k - 1 if cancel else k
        total = rng.randrange(1000, 200000) * 1000 + (rng.randrange(1000) if rng.random() < 0.7 else 0)
        each = total // tranches
        # Whole shares vested before the cancel: the cancel never exceeds them,
        # so it is valid at every precision (truncation only lowers a vest by
        # less than one share and never raises the cancel).
        whole_vested = 0
        for t in range(tranches):
            milli = each if t < tranches - 1 else total - each * (tranches - 1)
            date = add_months(grant, step * (t + 1))
            rows.append((date, "VEST", emp, award, milli))
            whole_vested += milli // 1000
        if cancel:
            date = add_months(grant, step * tranches + rng.randrange(0, 3))
            milli = rng.randrange(0, max(1, whole_vested)) * 1000 + rng.randrange(1000)
            milli = min(milli, whole_vested * 1000)
            rows.append((date, "CANCEL", emp, award, milli))
    rows.sort(key=lambda r: r[0])
    w = out.write
    for date, action, emp, award, milli in rows:
        w(f"{action},E{emp + 1:06d},{csv_field(names[emp])},{award},{date.isoformat()},{fmt_milli(milli)}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--events", type=int, default=1_000_000, help="number of events (rows)")
    p.add_argument("-a", "--awards", type=int, default=100_000, help="number of awards")
    p.add_argument("-s", "--seed", type=int, default=1, help="random seed")
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    args = p.parse_args()
    if args.events < 0 or args.awards < 1:
        p.error("events must be >= 0 and awards >= 1")
    if args.output:
        with open(args.output, "w", newline="\n", encoding="ascii") as f:
            generate(args.events, args.awards, args.seed, f)
    else:
        generate(args.events, args.awards, args.seed, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
