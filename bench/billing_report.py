#!/usr/bin/env python3
"""Markdown tables of bench/run-billing.sh: billing_report.py SCRATCH RESULTS.

Reads the kind=... lines of RESULTS and, for each rpcq round, the slice of
PostgreSQL's log (log_min_duration_statement = 0) written during it:
import = first staged chunk to the last billing_merge, billing tail = last
merge to the CLI's return, and the summed time of each statement kind."""
import datetime
import re
import statistics
import sys

scratch, results = sys.argv[1], sys.argv[2]
recs = []
for line in open(results):
    recs.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))

LOG = re.compile(r"(\S+ \S+) UTC \[\d+\] \S+ LOG:  duration: ([\d.]+) ms  (?:execute ([^:]+)|statement): (.{0,80})")
KINDS = {"billing_merge": "merge (per chunk)", "COPY billing_stage": "COPY into staging",
         "billing_claim_range": "claim a range", "billing_range_debts": "read its debts", "COPY billing_bills": "COPY bills",
         "COPY billing_notifications": "COPY outbox"}
# Statements rpcqd runs unprepared (db_exec_fresh) are logged as "execute
# <unnamed>: SQL": told apart by what their text starts with.
UNNAMED = [("INSERT INTO billing_debts", "billing_merge"), ("SELECT d.id, d.debt_id", "billing_range_debts")]


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()


def split(kind, rnd, end):
    first = last_merge = None
    sums = {k: [0, 0.0, 0.0] for k in KINDS}
    waits = 0
    for line in open("%s/pglog-%s-%s.txt" % (scratch, kind, rnd), errors="replace"):
        if "still waiting for" in line:
            waits += 1
        m = LOG.match(line)
        if not m:
            continue
        t, dur, name, text = m.groups()
        key = name if name else " ".join(text.split()[:2])
        if name == "<unnamed>":
            key = next((k for pattern, k in UNNAMED if pattern in text), name)
        if key == "COPY billing_stage" and first is None:
            first = ts(t) - float(dur) / 1000
        if key == "billing_merge":
            last_merge = ts(t)
        if key in sums:
            s = sums[key]
            s[0] += 1
            s[1] += float(dur) / 1000
            s[2] = max(s[2], float(dur) / 1000)
    return first, last_merge, sums, waits


rp = [r for r in recs if r.get("kind") == "rpcq" and "s" in r]
cp = {(r["kind"], r["round"]): float(r["s"]) for r in recs if r.get("kind", "").startswith("copy")}
if rp:
    print("| round | load avg | COPY bigserial PK s | COPY debt_id PK (distinct rows) s | rpcq import --wait bills s | "
          "of it: hash+start s | import (1st chunk→last merge) s | billing tail s | vs COPY bigserial | vs COPY debt_id | "
          "rpcqd CPU s | PostgreSQL CPU s | bills | ≤ 10 s | ≤ 3× debt_id COPY | ≤ 3× bigserial COPY |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|:---|:---|")
    ratios = []
    for r in rp:
        s = float(r["s"])
        first, lm, sums, waits = split("rpcq", r["round"], float(r["end"]))
        a, b = cp.get(("copy_serial", r["round"])), cp.get(("copy_pk", r["round"]))
        def yes(ok):
            return "meets" if ok else "below"
        ratios.append((s, s / a, s / b))
        print("| %s | %s | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f× | %.1f× | %.1f | %.1f | %s | %s | %s | %s |" % (
            r["round"], r["load"], a, b, s, first - float(r["start"]), lm - first, float(r["end"]) - lm,
            s / a, s / b, float(r["rpcqd_cpu_s"]), float(r["pg_cpu_s"]), r["bills"], yes(s <= 10), yes(s / b <= 3),
            yes(s / a <= 3)))
    print("\nmedians: %.1f s, %.1f× the bigserial COPY, %.1f× the debt_id COPY\n" % tuple(
        statistics.median(x[i] for x in ratios) for i in range(3)))
    print("| round | statement | count | total s | max s |")
    print("|---:|---|---:|---:|---:|")
    for r in rp:
        first, lm, sums, waits = split("rpcq", r["round"], float(r["end"]))
        for k, v in sums.items():
            print("| %s | %s (`%s`) | %d | %.1f | %.2f |" % (r["round"], KINDS[k], k, v[0], v[1], v[2]))
        print("| %s | lock waits over 200 ms logged | %d | | |" % (r["round"], waits))
    print()
fl = {}
for r in recs:
    if r.get("kind", "").startswith("floor_") and "s" in r:
        fl.setdefault(r["round"], {})[r["kind"][6:]] = float(r["s"])
if fl:
    print("| round | COPY bigserial PK s | COPY into a stage s | debts: one INSERT ... DISTINCT ON s | "
          "bills: one INSERT s | outbox: one INSERT s | stage + debts + bills + outbox s | vs COPY bigserial | "
          "debts alone vs COPY bigserial |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rnd, f in sorted(fl.items()):
        total = f["stage"] + f["debts"] + f["bills"] + f["outbox"]
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f× | %.1f× |" % (
            rnd, f["copy_serial"], f["stage"], f["debts"], f["bills"], f["outbox"], total,
            total / f["copy_serial"], f["debts"] / f["copy_serial"]))
    print()
mem = [r for r in recs if r.get("kind") in ("rpcq", "small") and "hwm_kb" in r]
if mem:
    print("| file | round | rpcqd VmHWM idle MB | after import MB | growth MB | VmRSS after MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in mem:
        h0, h = int(r["hwm0_kb"]) / 1024, int(r["hwm_kb"]) / 1024
        print("| %s | %s | %.1f | %.1f | +%.1f | %.1f |" % (
            "full" if r["kind"] == "rpcq" else "1/10 size", r["round"], h0, h, h - h0, int(r["rss_kb"]) / 1024))
    print()
for r in recs:
    if r.get("kind") == "mail" and "s" in r:
        sent, span = int(r["sent"]), float(r["mail_span_s"])
        print("mail: %s e-mails sent of %s bills; %.1f s end to end (import --wait emails); first to last sent_at "
              "%.1f s: %.0f e-mails/s; rpcqd CPU %.1f s, PostgreSQL CPU %.1f s; load %s" % (
                  sent, r["bills"], float(r["s"]), span, (sent - 1) / span if span > 0 else 0,
                  float(r["rpcqd_cpu_s"]), float(r["pg_cpu_s"]), r["load"]))
    if r.get("kind") == "sink":
        print("sink: %s messages delivered, %s distinct Message-IDs" % (r["delivered"], r["distinct_message_ids"]))
