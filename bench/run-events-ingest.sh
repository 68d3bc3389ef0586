#!/usr/bin/env bash
# Events ingest benchmark: rpcqd's Sync of a provider feed (the HTTP GET from
# the simulator on loopback, the streaming expat parse, the comparison with
# the in-memory index, and the batched writes to PostgreSQL) against a bare
# expat scan of the same bytes (rpcq-expat-scan: the file read into memory,
# empty element handlers), in the same run.
#
# Each feed (EVENTSxZONES, default "5000x200 50000x20 5000x2") is generated
# once by provider-sim and fetched with curl into a file; then, ROUNDS times:
# a fresh empty database, provider-sim serving that file (file mode: every
# request gets the same bytes), an rpcqd with --provider-interval-s 0 pointing
# at it, and
#   - the bare transfer: curl -o /dev/null of the feed;
#   - the first ingest: `rpcq events sync` on the empty database;
#   - a repeat with nothing changed: `rpcq events sync` again;
#   - rpcq-expat-scan of the file before each sync (after it in odd rounds);
#   - rpcqd's VmHWM and VmRSS (/proc/PID/status) before the first sync and
#     after each, and its CPU time during each.
# The 5000x2 feed has the events of 5000x200 with 2 zones each instead of 200:
# the same index, 1/60 of the bytes, so that its peak memory next to the big
# one's shows what the feed's size costs.
#
#   bench/run-events-ingest.sh [-r ROUNDS (3)] [-f "FEEDS" ("5000x200 50000x20 5000x2")]
#
# Prints two markdown tables (time, memory) for bench/README.md: medians over
# the rounds and the medians of each round's ratios, in wall-clock time and
# in CPU time (rpcqd's during the Sync against the scan's: steadier on a
# shared machine; PostgreSQL's CPU time is shown beside it). Environment: BUILD
# (build directory, default build), RPCQD, RPCQ_CLI, PROVIDER_SIM,
# RPCQ_EXPAT_SCAN (default: in BUILD). It always makes its own throwaway
# cluster with scripts/pg (each round needs an empty database of its own).
# Every process it starts is stopped on exit; each step is bounded (curl 300 s,
# a sync 300 s). Exit status: 0 when every goal is met (first ingest <= 2x the
# scan, repeat <= 1.2x, wall-clock, for feeds of 10 MB or more; peak memory not growing with the feed's bytes: at most
# 50 kB of peak per MB of feed between the two feeds of the same events), 3
# when one is not, 1 when something failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
cli=${RPCQ_CLI:-$build/client/cli/rpcq}
sim=${PROVIDER_SIM:-$build/tools/provider-sim/provider-sim}
scan=${RPCQ_EXPAT_SCAN:-$build/bench/rpcq-expat-scan}
rounds=3
feeds="5000x200 50000x20 5000x2"

usage() {
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "r:f:h" o; do
	case $o in
	r) rounds=$OPTARG ;;
	f) feeds=$OPTARG ;;
	*) usage ;;
	esac
done

die() {
	echo "run-events-ingest: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $cli ]] || die "rpcq not found at $cli (build target rpcq_cli, or set RPCQ_CLI or BUILD)"
[[ -x $sim ]] || die "provider-sim not found at $sim (build target provider-sim, or set PROVIDER_SIM or BUILD)"
[[ -x $scan ]] || die "rpcq-expat-scan not found at $scan (build target rpcq_expat_scan, or set RPCQ_EXPAT_SCAN or BUILD)"
command -v curl >/dev/null || die "curl not found"
command -v psql >/dev/null || die "psql not found (postgresql-client-15)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
hz=$(getconf CLK_TCK)

# stop PID: stops one process started with bench_spawn, and forgets it.
stop() {
	local p=$1 i
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for i in "${!bench_pids[@]}"; do
		[[ ${bench_pids[i]} == "$p" ]] && unset 'bench_pids[i]'
	done
	return 0
}

# status_kb PID FIELD: VmHWM or VmRSS in kB.
status_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# CPU ticks of the cluster: the postmaster, its exited and live children (backends).
pg_ticks() {
	local t c
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pg_pid/stat")
	for c in $(pgrep -P "$pg_pid" || true); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

elapsed() {
	python3 -c "print(f'{$2 - $1:.3f}')"
}

bench_pgdir=$tmp/pg
cluster=$(RPCQ_PG_OWNER_PID=$$ "$root/scripts/pg" start "$bench_pgdir") || die "scripts/pg start $bench_pgdir failed"
pg_pid=$(head -n 1 "$bench_pgdir/data/postmaster.pid")

# The feeds, generated once each and fetched into files.
for f in $feeds; do
	[[ $f =~ ^([0-9]+)x([0-9]+)$ ]] || die "a feed is EVENTSxZONES, not $f"
	port=$(bench_free_port)
	bench_spawn "$tmp/gen-$f.log" "$sim" --listen "http://127.0.0.1:$port" \
		--events "${BASH_REMATCH[1]}" --zones "${BASH_REMATCH[2]}"
	pid=$bench_pid
	bench_wait_port "$port" "$pid" "$tmp/gen-$f.log" "provider-sim (generating $f)"
	curl -sS --fail --max-time 300 -o "$tmp/feed-$f.xml" "http://127.0.0.1:$port/feed" ||
		die "fetching the generated feed $f failed"
	stop "$pid"
	echo "feed $f: $(wc -c <"$tmp/feed-$f.xml") bytes" >&2
done

# run_scan FEED ROUND WHEN: one rpcq-expat-scan line into the results.
run_scan() {
	local out
	out=$("$scan" "$tmp/feed-$1.xml") || die "rpcq-expat-scan of $1 failed"
	echo "kind=scan feed=$1 round=$2 when=$3 $out" >>"$tmp/results"
	echo "  scan ($3): $out" >&2
}

# run_sync FEED ROUND WHICH PID URL: one `rpcq events sync`, timed, with
# rpcqd's memory after it and its CPU time during it.
run_sync() {
	local f=$1 r=$2 which=$3 pid=$4 url=$5 t0 t1 c0 c1 p0 p1 summary ms
	c0=$(cpu_ticks "$pid")
	p0=$(pg_ticks)
	t0=$EPOCHREALTIME
	"$cli" --server "$url" --timeout 300000 events sync >"$tmp/sync.out" 2>"$tmp/sync.err" || {
		cat "$tmp/sync.err" >&2
		die "rpcq events sync ($which, $f) failed"
	}
	t1=$EPOCHREALTIME
	c1=$(cpu_ticks "$pid")
	p1=$(pg_ticks)
	summary=$(tail -n 1 "$tmp/sync.err")
	# rpcqd's own line: "provider feed: N event(s) in MS ms: ..."
	ms=$(grep -o 'provider feed: [0-9]* event(s) in [0-9]* ms' "$bench_rpcqd_log" | tail -n 1 | awk '{ print $6 }')
	echo "kind=sync feed=$f round=$r which=$which seconds=$(elapsed "$t0" "$t1") log_ms=${ms:-0}" \
		"cpu_s=$(python3 -c "print(f'{($c1 - $c0) / $hz:.2f}')") pg_cpu_s=$(python3 -c "print(f'{($p1 - $p0) / $hz:.2f}')")" \
		"hwm_kb=$(status_kb "$pid" VmHWM) rss_kb=$(status_kb "$pid" VmRSS)" \
		"seen=$(awk '{ print $1 }' <<<"$summary") new=$(sed -E 's/.*: ([0-9]+) new.*/\1/' <<<"$summary")" \
		"unchanged=$(sed -E 's/.* ([0-9]+) unchanged.*/\1/' <<<"$summary")" >>"$tmp/results"
	echo "  sync ($which): $(tail -n 1 "$tmp/results" | cut -d' ' -f5-)" >&2
}

echo "events ingest: feeds $feeds, $rounds round(s) each; $(nproc) cores;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$tmp/results"
for f in $feeds; do
	for ((r = 0; r < rounds; r++)); do
		echo "feed $f, round $r:" >&2
		dbname=ingest_${f}_$r
		psql -qX "$cluster" -c "CREATE DATABASE $dbname" >/dev/null || die "CREATE DATABASE $dbname failed"
		db=$(sed -E "s/dbname=[^ ]+/dbname=$dbname/" <<<"$cluster")
		"$rpcqd" migrate --database "$db" >"$tmp/migrate.log" 2>&1 || {
			cat "$tmp/migrate.log" >&2
			die "rpcqd migrate failed"
		}
		sim_port=$(bench_free_port)
		feed_url=http://127.0.0.1:$sim_port/feed
		bench_spawn "$tmp/sim-$f-$r.log" "$sim" --listen "http://127.0.0.1:$sim_port" "$tmp/feed-$f.xml"
		sim_pid=$bench_pid
		bench_wait_port "$sim_port" "$sim_pid" "$tmp/sim-$f-$r.log" "provider-sim (serving $f)"

		rpc_port=$(bench_free_port)
		pub_port=$(bench_free_port)
		rpc_url=tcp://127.0.0.1:$rpc_port
		bench_rpcqd_log=$tmp/rpcqd-$f-$r.log
		bench_spawn "$bench_rpcqd_log" "$rpcqd" serve --listen "$rpc_url" --publish "tcp://127.0.0.1:$pub_port" \
			--http "" --database "$db" --provider-url "$feed_url" --provider-interval-s 0 \
			--provider-timeout-ms 120000
		rpcqd_pid=$bench_pid
		bench_wait_port "$rpc_port" "$rpcqd_pid" "$bench_rpcqd_log" rpcqd
		for ((i = 0; i < 100; i++)); do
			grep -q 'events index: .* loaded' "$bench_rpcqd_log" && break
			sleep 0.1
		done

		t=$(curl -sS --fail --max-time 300 -o /dev/null -w '%{time_total}' "$feed_url") ||
			die "curl of $feed_url failed"
		echo "kind=transfer feed=$f round=$r seconds=$t bytes=$(wc -c <"$tmp/feed-$f.xml")" >>"$tmp/results"
		echo "kind=idle feed=$f round=$r hwm_kb=$(status_kb "$rpcqd_pid" VmHWM)" \
			"rss_kb=$(status_kb "$rpcqd_pid" VmRSS)" >>"$tmp/results"
		# Alternate the order so that neither side always runs on a warmer machine.
		if ((r % 2 == 0)); then
			run_scan "$f" "$r" first
			run_sync "$f" "$r" first "$rpcqd_pid" "$rpc_url"
			run_scan "$f" "$r" repeat
			run_sync "$f" "$r" repeat "$rpcqd_pid" "$rpc_url"
		else
			run_sync "$f" "$r" first "$rpcqd_pid" "$rpc_url"
			run_scan "$f" "$r" first
			run_sync "$f" "$r" repeat "$rpcqd_pid" "$rpc_url"
			run_scan "$f" "$r" repeat
		fi
		stop "$rpcqd_pid"
		stop "$sim_pid"
	done
done

status=0
python3 - "$tmp/results" <<'PY' || status=$?
import re
import statistics as st
import sys

rows = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in open(sys.argv[1])]
med = st.median
feeds = list(dict.fromkeys(r["feed"] for r in rows))
below = False


def get(kind, feed, **kw):
    return [r for r in rows if r["kind"] == kind and r["feed"] == feed and all(r.get(k) == v for k, v in kw.items())]


def ratio(feed, which, num="seconds", den="parse_s"):
    out = []
    for s in get("sync", feed, which=which):
        sc = get("scan", feed, round=s["round"], when=which)[0]
        out.append(float(s[num]) / float(sc[den]))
    return med(out)


print("| feed (events × zones) | bytes | bare transfer s | bare scan s (CPU s) | first ingest s | first / scan "
      "| repeat s | repeat / scan | rpcqd CPU s: first, repeat | rpcqd CPU / scan CPU: first, repeat "
      "| PostgreSQL CPU s: first, repeat | goal (≤2×, ≤1.2×) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
for f in feeds:
    fi, re_ = get("sync", f, which="first"), get("sync", f, which="repeat")
    sc = get("scan", f)
    tr = get("transfer", f)
    rf, rr = ratio(f, "first"), ratio(f, "repeat")
    cf, cr = ratio(f, "first", "cpu_s", "parse_cpu_s"), ratio(f, "repeat", "cpu_s", "parse_cpu_s")
    small = int(tr[0]["bytes"]) < 10_000_000  # fixed costs dominate: memory reference only
    ok = rf <= 2 and rr <= 1.2
    below |= not ok and not small
    m = lambda rs, k: med(float(r[k]) for r in rs)
    print(f"| {f.replace('x', ' × ')} | {int(tr[0]['bytes']):,} | {m(tr, 'seconds'):.3f} "
          f"| {m(sc, 'parse_s'):.3f} ({m(sc, 'parse_cpu_s'):.3f}) "
          f"| {m(fi, 'seconds'):.3f} | {rf:.2f}× | {m(re_, 'seconds'):.3f} | {rr:.2f}× "
          f"| {m(fi, 'cpu_s'):.2f}, {m(re_, 'cpu_s'):.2f} | {cf:.2f}×, {cr:.2f}× "
          f"| {m(fi, 'pg_cpu_s'):.2f}, {m(re_, 'pg_cpu_s'):.2f} "
          f"| {'n/a (memory reference)' if small else 'meets' if ok else 'below'} |")

print()
print("| feed (events × zones) | bytes | rpcqd VmHWM idle MB | after first ingest | after repeat "
      "| peak growth in first ingest | VmRSS after repeat | rpcq-expat-scan VmHWM MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
growth = {}
for f in feeds:
    idle = get("idle", f)
    fi, re_ = get("sync", f, which="first"), get("sync", f, which="repeat")
    m = lambda rs, k: med(float(r[k]) for r in rs) / 1024
    growth[f] = med(float(s["hwm_kb"]) - float(i["hwm_kb"]) for s, i in zip(fi, idle)) / 1024
    print(f"| {f.replace('x', ' × ')} | {int(get('transfer', f)[0]['bytes']):,} | {m(idle, 'hwm_kb'):.1f} "
          f"| {m(fi, 'hwm_kb'):.1f} | {m(re_, 'hwm_kb'):.1f} | +{growth[f]:.1f} | {m(re_, 'rss_kb'):.1f} "
          f"| {m(get('scan', f), 'vmhwm_kb'):.1f} |")

# Feeds of the same event count, different sizes: what a MB of feed costs in peak memory.
by_events = {}
for f in feeds:
    by_events.setdefault(f.split("x")[0], []).append(f)
for ev, fs in by_events.items():
    if len(fs) < 2:
        continue
    fs.sort(key=lambda f: int(get("transfer", f)[0]["bytes"]))
    small, big = fs[0], fs[-1]
    mb = (int(get("transfer", big)[0]["bytes"]) - int(get("transfer", small)[0]["bytes"])) / 1e6
    per_mb = (growth[big] - growth[small]) * 1024 / mb
    ok = per_mb <= 50
    below |= not ok
    print(f"\npeak memory, {big} vs {small} ({ev} events each): {growth[big] - growth[small]:+.1f} MB for "
          f"{mb:.0f} MB more feed = {per_mb:.1f} kB per MB of feed: {'independent' if ok else 'grows with the feed'}")
sys.exit(3 if below else 0)
PY
if ((status == 3)); then
	echo "run-events-ingest: below a goal (first ingest <= 2x the scan, repeat <= 1.2x, memory independent of size)" >&2
fi
exit "$status"
