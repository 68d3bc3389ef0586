#!/usr/bin/env bash
# Events search benchmark. A store of EVENTS events (a provider-sim feed of
# EVENTS x 2 zones, ingested once with Sync), then, with the simulator
# answering HTTP 500 throughout (POST /control?mode=error), searches of
# windows holding about 20 events each:
#
# over HTTP, wrk at each connection count (bench/events_search.lua: a window
# picked at random per request from a precomputed list), in a rotating order:
#   - rpcqd: GET /search on its gateway;
#   - ceiling: rpcq-http-static (nng's HTTP server) answering a static body,
#     one /search reply of rpcqd captured with curl (POST with the same path
#     and query: it answers POST only);
#   - python: bench/baseline/events_search.py (FastAPI + uvicorn + asyncpg,
#     uvicorn --workers 2) on the events table rpcqd wrote, with the plain
#     query (starts_at >= $1 AND ends_at <= $2 ORDER BY starts_at, id);
#   - python-bounded: the same with EVENTS_SEARCH_QUERY=bounded (also
#     starts_at <= $2, which stops the index scan at the window's end; the
#     same answers on a store where no event ends before it starts, checked);
# over RPC, rpcq-load at each caller count, Search of one such window
# (--method rpcq.events.EventService/Search --json ...) and Echo of 200
# bytes, back to back in alternating order.
#
#   bench/run-events-search.sh [-n EVENTS (100000)] [-k PER_WINDOW (20)] [-d SECONDS (10)]
#                              [-w WARMUP (1)] [-c "CONNECTIONS" ("16 64")] [-t WRK_THREADS (2)]
#                              [-r RUNS (3)] [-C "CALLERS" ("1 16")] [-D RPC_SECONDS (5)]
#                              [-H (skip HTTP)] [-R (skip RPC)]
#
# The windows: 1000 of them, each starting at the start of a random event
# and ending at the PER_WINDOW-th earliest end among the events starting
# after it (so that PER_WINDOW events, or a few more on ties, lie inside);
# the script checks some replies of both HTTP servers against each other and
# says how many events a window holds on average.
#
# Prints markdown tables for bench/README.md: medians over RUNS, the medians
# of the runs' ratios, each server's CPU time per request, and what the rest
# of the machine used meanwhile. Environment: BUILD (default build), RPCQD,
# PROVIDER_SIM, RPCQ_LOAD, RPCQ_HTTP_STATIC (default: in BUILD), WRK (wrk),
# PYTHON (/usr/bin/python3, with python3-fastapi python3-uvicorn
# python3-asyncpg), RPCQ_DATABASE_URL (else a throwaway cluster made with
# scripts/pg and removed at exit). Every process it starts is stopped on
# exit; the run is bounded by about RUNS x (4 x connection counts x (WARMUP +
# SECONDS) + 2 x caller counts x (1 + RPC_SECONDS)) plus the ingest (a Sync
# bounded by 300 s). Exit status: 0 when every goal is met (at 16 and 64
# connections rpcqd >= 20x python and >= 0.5x the ceiling, p99 < 5 ms at 16;
# Search >= 0.8x Echo in calls/s), 3 when one is not, 1 when something
# failed (any non-2xx reply, or a socket error from rpcqd or the ceiling; the
# Python baseline's time-outs under load, wrk --timeout 10s, are counted and
# shown instead).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
sim=${PROVIDER_SIM:-$build/tools/provider-sim/provider-sim}
load=${RPCQ_LOAD:-$build/bench/rpcq-load}
static=${RPCQ_HTTP_STATIC:-$build/bench/rpcq-http-static}
wrk=${WRK:-wrk}
python=${PYTHON:-/usr/bin/python3}
script=$here/events_search.lua
events=100000
per_window=20
seconds=10
warmup=1
concurrency="16 64"
threads=2
runs=3
callers="1 16"
rpc_seconds=5
do_http=1
do_rpc=1

usage() {
	sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "n:k:d:w:c:t:r:C:D:HRh" o; do
	case $o in
	n) events=$OPTARG ;;
	k) per_window=$OPTARG ;;
	d) seconds=$OPTARG ;;
	w) warmup=$OPTARG ;;
	c) concurrency=$OPTARG ;;
	t) threads=$OPTARG ;;
	r) runs=$OPTARG ;;
	C) callers=$OPTARG ;;
	D) rpc_seconds=$OPTARG ;;
	H) do_http=0 ;;
	R) do_rpc=0 ;;
	*) usage ;;
	esac
done

die() {
	echo "run-events-search: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $sim ]] || die "provider-sim not found at $sim (build target provider-sim, or set PROVIDER_SIM or BUILD)"
[[ -x $load ]] || die "rpcq-load not found at $load (build target rpcq_load, or set RPCQ_LOAD or BUILD)"
[[ -x $static ]] || die "rpcq-http-static not found at $static (build target rpcq_http_static, or set RPCQ_HTTP_STATIC or BUILD)"
command -v "$wrk" >/dev/null || die "wrk not found (apt-get install wrk, or set WRK)"
command -v curl >/dev/null || die "curl not found"
command -v psql >/dev/null || die "psql not found (postgresql-client-15)"
"$python" -c 'import fastapi, uvicorn, asyncpg' 2>/dev/null ||
	die "$python lacks fastapi, uvicorn or asyncpg (apt-get install python3-fastapi python3-uvicorn python3-asyncpg)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
hz=$(getconf CLK_TCK)
ncpu=$(nproc)

# The store: a generated feed served by the simulator, fetched once by Sync.
sim_port=$(bench_free_port)
sim_base=http://127.0.0.1:$sim_port
bench_spawn "$tmp/sim.log" "$sim" --listen "$sim_base" --events "$events" --zones 2
sim_pid=$bench_pid
bench_wait_port "$sim_port" "$sim_pid" "$tmp/sim.log" provider-sim
http_port=$(bench_free_port)
rpcqd_base=http://127.0.0.1:$http_port
bench_start_rpcqd --http "$rpcqd_base" --provider-url "$sim_base/feed" --provider-interval-s 0 \
	--provider-timeout-ms 120000
rpcqd_pid=$bench_pid
bench_wait_port "$http_port" "$rpcqd_pid" "$bench_rpcqd_log" "rpcqd's HTTP gateway"
t0=$EPOCHREALTIME
"$build/client/cli/rpcq" --server "$bench_rpc_url" --timeout 300000 events sync >/dev/null 2>"$tmp/sync.err" || {
	cat "$tmp/sync.err" >&2
	die "the first Sync failed"
}
echo "store: $(tail -n 1 "$tmp/sync.err") in $(python3 -c "print(round($EPOCHREALTIME - $t0, 1))") s" >&2
curl -sS --fail --max-time 5 -X POST "$sim_base/control?mode=error" >/dev/null || die "POST /control?mode=error failed"

q() { psql -qAtX "$bench_db" -c "$1"; }
stored=$(q "SELECT count(*) FROM events")
((stored >= events)) || die "only $stored events stored"

# The index follows the log behind the Sync's reply for large ingests: wait
# until the event with the highest seq is found by a search.
read -r last_id last_from last_to < <(q "SELECT id, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI:SS'),
	to_char(ends_at, 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM events ORDER BY seq DESC LIMIT 1" | tr '|' ' ')
for ((i = 0; ; i++)); do
	curl -sS --max-time 5 "$rpcqd_base/search?starts_at=$last_from&ends_at=$last_to" 2>/dev/null |
		grep -q "$last_id" && break
	((i < 600)) || die "rpcqd's index does not hold the last stored event after 60 s"
	sleep 0.1
done

# The windows.
q "COPY (SELECT to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI:SS'), to_char(ends_at, 'YYYY-MM-DD\"T\"HH24:MI:SS')
	FROM events ORDER BY starts_at, id) TO STDOUT" >"$tmp/events.tsv"
python3 - "$tmp/events.tsv" "$per_window" "$tmp/windows.txt" >"$tmp/windows.info" <<'PY'
import bisect, random, statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
starts = [r[0] for r in rows]
k = int(sys.argv[2])
rnd = random.Random(1)
counts, out = [], []
while len(out) < 1000:
    i = rnd.randrange(len(rows) - 10 * k)
    s = starts[i]
    lo = bisect.bisect_left(starts, s)
    ends = sorted(r[1] for r in rows[lo:lo + 50 * k] if r[1] >= s)
    if len(ends) < k:
        continue
    e = ends[k - 1]
    hi = bisect.bisect_right(starts, e)
    n = sum(1 for r in rows[lo:hi] if r[1] <= e)
    counts.append(n)
    out.append(f"{s}Z {e}Z\n")
open(sys.argv[3], "w").writelines(out)
print(f"windows=1000 mean_events={statistics.mean(counts):.1f} min_events={min(counts)} max_events={max(counts)}")
PY
echo "windows: $(cat "$tmp/windows.info")" >&2
read -r w_from w_to < "$tmp/windows.txt"

# The ceiling's body: rpcqd's reply to the first window.
curl -sS --fail --max-time 5 -o "$tmp/reply.json" "$rpcqd_base/search?starts_at=$w_from&ends_at=$w_to" ||
	die "GET /search failed"
reply_bytes=$(wc -c <"$tmp/reply.json")
static_port=$(bench_free_port)
static_base=http://127.0.0.1:$static_port
bench_spawn "$tmp/static.log" "$static" --listen "$static_base" --body "$tmp/reply.json" --path /search
static_pid=$bench_pid
bench_wait_port "$static_port" "$static_pid" "$tmp/static.log" rpcq-http-static

py_port=$(bench_free_port)
py_base=http://127.0.0.1:$py_port
bench_spawn "$tmp/python.log" env EVENTS_DATABASE_URL="$bench_db" "$python" -m uvicorn --app-dir "$here/baseline" \
	events_search:app --host 127.0.0.1 --port "$py_port" --workers 2 --log-level warning --no-access-log
py_pid=$bench_pid
bench_wait_port "$py_port" "$py_pid" "$tmp/python.log" "uvicorn (events_search.py)"
inverted=$(q "SELECT count(*) FROM events WHERE ends_at < starts_at")
((inverted == 0)) || die "$inverted stored events end before they start: python-bounded would answer differently"
pyb_port=$(bench_free_port)
pyb_base=http://127.0.0.1:$pyb_port
bench_spawn "$tmp/python-bounded.log" env EVENTS_DATABASE_URL="$bench_db" EVENTS_SEARCH_QUERY=bounded \
	"$python" -m uvicorn --app-dir "$here/baseline" events_search:app --host 127.0.0.1 --port "$pyb_port" \
	--workers 2 --log-level warning --no-access-log
pyb_pid=$bench_pid
bench_wait_port "$pyb_port" "$pyb_pid" "$tmp/python-bounded.log" "uvicorn (events_search.py, bounded)"

# The same answers from rpcqd and Python for some windows (prices compared as numbers).
for ((i = 1; i <= 20; i++)); do
	read -r a b < <(sed -n "$((i * 37))p" "$tmp/windows.txt")
	curl -sS --fail --max-time 10 -o "$tmp/r.json" "$rpcqd_base/search?starts_at=$a&ends_at=$b" || die "rpcqd /search failed"
	curl -sS --fail --max-time 10 -o "$tmp/p.json" "$py_base/search?starts_at=$a&ends_at=$b" || die "python /search failed"
	curl -sS --fail --max-time 10 -o "$tmp/pb.json" "$pyb_base/search?starts_at=$a&ends_at=$b" ||
		die "python-bounded /search failed"
	python3 -c 'import json, sys; a, b, c = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(not a == b == c)' \
		"$tmp/r.json" "$tmp/p.json" "$tmp/pb.json" || die "rpcqd and python answer $a..$b differently"
done

# cpu_of PID...: CPU ticks of the processes and their children (python's workers).
cpu_of() {
	local p t=0 c
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
		for c in $(pgrep -P "$p" || true); do
			t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
		done
	done
	echo "$t"
}
# The cluster's postmaster (its backends are its children), when the script made it.
pg_pid=""
if [[ -n $bench_pgdir && -r $bench_pgdir/data/postmaster.pid ]]; then
	pg_pid=$(head -n 1 "$bench_pgdir/data/postmaster.pid")
fi
db_cpu() {
	if [[ -n $pg_pid ]]; then cpu_of "$pg_pid"; else echo 0; fi
}
machine_busy() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# measure_http SIDE PID BASE METHOD CONNECTIONS PAIR: a warm-up, then one wrk run.
measure_http() {
	local side=$1 pid=$2 base=$3 method=$4 c=$5 pair=$6 t=$threads out line s0 s1 d0 d1 m0 m1 TIMEFORMAT
	((t > c)) && t=$c
	export SEARCH_WINDOWS=$tmp/windows.txt SEARCH_METHOD=$method
	if [[ $warmup != 0 ]]; then
		"$wrk" -t "$t" -c "$c" -d "${warmup}s" -s "$script" "$base/search" >/dev/null 2>&1 ||
			die "wrk warm-up on $side failed"
	fi
	TIMEFORMAT=$'\nwrk_cpu: %3U %3S'
	s0=$(cpu_of "$pid")
	d0=$(db_cpu)
	m0=$(machine_busy)
	out=$({ time "$wrk" --latency --timeout 10s -t "$t" -c "$c" -d "${seconds}s" -s "$script" "$base/search"; } 2>&1) || {
		echo "$out" >&2
		die "wrk on $side with $c connections failed"
	}
	s1=$(cpu_of "$pid")
	d1=$(db_cpu)
	m1=$(machine_busy)
	line=$(grep '^wrk: ' <<<"$out") || {
		echo "$out" >&2
		die "wrk printed no summary"
	}
	line="kind=http side=$side connections=$c pair=$pair ${line#wrk: } $(
		read -r _ u s < <(grep '^wrk_cpu: ' <<<"$out")
		awk -v srv=$((s1 - s0)) -v db=$((d1 - d0)) -v busy=$((m1 - m0)) -v wrk="$u + $s" -v hz="$hz" -v ncpu="$ncpu" -v line="$line" 'BEGIN {
			split(wrk, w, / \+ /); wrk = w[1] + w[2]
			match(line, /duration_us=[0-9]+/); span = substr(line, RSTART + 12, RLENGTH - 12) / 1e6
			printf "cpu_ticks=%d db_ticks=%d wrk_cpu_s=%.2f others_pct=%.0f\n", srv, db, wrk,
				((busy - srv - db) / hz - wrk) / (span * ncpu) * 100
		}'
	)"
	# The Python baseline may time out under load (wrk --timeout 10s): counted, shown, not fatal.
	if [[ $side != python* ]]; then
		grep -q 'non2xx=0 errors=0' <<<"$line" || die "$side answered non-2xx or failed: $line"
	else
		grep -q 'non2xx=0 ' <<<"$line" || die "$side answered non-2xx: $line"
	fi
	echo "  $line" >&2
	echo "$line" >>"$tmp/results"
}

# measure_rpc SIDE CALLERS PAIR: one rpcq-load run.
measure_rpc() {
	local side=$1 c=$2 pair=$3 out
	local args=(-p 200)
	if [[ $side == search ]]; then
		args=(--method rpcq.events.EventService/Search --json "{\"starts_at\":\"$w_from\",\"ends_at\":\"$w_to\"}")
	fi
	out=$("$load" rpcq --url "$bench_rpc_url" -c "$c" -d "$rpc_seconds" -w 1 "${args[@]}" 2>"$tmp/load.err") || {
		cat "$tmp/load.err" >&2
		die "rpcq-load ($side, $c callers) failed"
	}
	echo "  $out" >&2
	echo "kind=rpc side=$side pair=$pair $out" >>"$tmp/results"
}

echo "events search: $stored events, windows of ~$per_window events, /search reply of the first window" \
	"$reply_bytes bytes; wrk ${seconds}s after ${warmup}s warm-up, at most $threads thread(s); $runs run(s);" \
	"tcp loopback; $ncpu cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$tmp/results"
sides=(rpcqd ceiling python python-bounded)
if ((do_http)); then
	for c in $concurrency; do
		for ((r = 0; r < runs; r++)); do
			# A rotating order, so that no side always runs on a warmer machine.
			for k in 0 1 2 3; do
				case ${sides[(k + r) % 4]} in
				rpcqd) measure_http rpcqd "$rpcqd_pid" "$rpcqd_base" GET "$c" "$r" ;;
				ceiling) measure_http ceiling "$static_pid" "$static_base" POST "$c" "$r" ;;
				python) measure_http python "$py_pid" "$py_base" GET "$c" "$r" ;;
				python-bounded) measure_http python-bounded "$pyb_pid" "$pyb_base" GET "$c" "$r" ;;
				esac
			done
		done
	done
fi
if ((do_rpc)); then
	for c in $callers; do
		for ((r = 0; r < runs; r++)); do
			if ((r % 2 == 0)); then
				measure_rpc echo "$c" "$r"
				measure_rpc search "$c" "$r"
			else
				measure_rpc search "$c" "$r"
				measure_rpc echo "$c" "$r"
			fi
		done
	done
fi

status=0
python3 - "$tmp/results" "$hz" "$reply_bytes" <<'PY' || status=$?
import re
import statistics as st
import sys

hz, reply = float(sys.argv[2]), int(sys.argv[3])
rows = [dict(re.findall(r"(\w+)=([\w./-]+)", line)) for line in open(sys.argv[1])]
med = st.median
below = False

http = {}
for r in rows:
    if r["kind"] == "http":
        http.setdefault(int(r["connections"]), {}).setdefault(int(r["pair"]), {})[r["side"]] = r
if http:
    print(f"| connections | rpcqd req/s | ceiling req/s | python req/s | python-bounded req/s | rpcqd/ceiling "
          f"| rpcqd/python | rpcqd/python-bounded | rpcqd p50 µs | rpcqd p99 µs | ceiling p99 µs | python p99 µs "
          f"| python-bounded p99 µs | goal (≥0.5× ceiling, ≥20× python, p99 < 5 ms at 16) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
    for c, ps in http.items():
        ps = [p for p in ps.values() if len(p) == 4]
        m = lambda side, key: med(float(p[side][key]) for p in ps)
        rc = med(float(p["rpcqd"]["rps"]) / float(p["ceiling"]["rps"]) for p in ps)
        rp = med(float(p["rpcqd"]["rps"]) / float(p["python"]["rps"]) for p in ps)
        rb = med(float(p["rpcqd"]["rps"]) / float(p["python-bounded"]["rps"]) for p in ps)
        p99 = m("rpcqd", "p99_us")
        ok = rc >= 0.5 and rp >= 20 and (c != 16 or p99 < 5000)
        below |= not ok
        print(f"| {c} | {m('rpcqd', 'rps'):.0f} | {m('ceiling', 'rps'):.0f} | {m('python', 'rps'):.0f} "
              f"| {m('python-bounded', 'rps'):.0f} | {rc:.2f} | {rp:.1f}× | {rb:.1f}× | {m('rpcqd', 'p50_us'):.0f} "
              f"| {p99:.0f} | {m('ceiling', 'p99_us'):.0f} | {m('python', 'p99_us'):.0f} "
              f"| {m('python-bounded', 'p99_us'):.0f} | {'meets' if ok else 'below'} |")
    print()
    print("| connections | rpcqd CPU µs/req | ceiling CPU µs/req | python CPU µs/req (2 workers; plain, bounded) "
          "| PostgreSQL CPU µs/req (rpcqd; python plain, bounded) | wrk CPUs (rpcqd, ceiling, python, bounded) "
          "| python time-outs (plain, bounded) | others on the machine (median, max) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, ps in http.items():
        ps = [p for p in ps.values() if len(p) == 4]
        cpu = lambda side, k="cpu_ticks": med(float(p[side][k]) / hz * 1e6 / int(p[side]["requests"]) for p in ps)
        wrk = lambda side: med(float(p[side]["wrk_cpu_s"]) / (int(p[side]["duration_us"]) / 1e6) for p in ps)
        others = [float(p[s]["others_pct"]) for p in ps for s in p]
        print(f"| {c} | {cpu('rpcqd'):.0f} | {cpu('ceiling'):.0f} | {cpu('python'):.0f}, {cpu('python-bounded'):.0f} "
              f"| {cpu('rpcqd', 'db_ticks'):.0f}; {cpu('python', 'db_ticks'):.0f}, {cpu('python-bounded', 'db_ticks'):.0f} "
              f"| {wrk('rpcqd'):.2f}, {wrk('ceiling'):.2f}, {wrk('python'):.2f}, {wrk('python-bounded'):.2f} "
              f"| {sum(int(p['python']['errors']) for p in ps)}, {sum(int(p['python-bounded']['errors']) for p in ps)} "
              f"| {med(others):.0f}%, {max(others):.0f}% |")

rpc = {}
for r in rows:
    if r["kind"] == "rpc":
        rpc.setdefault(int(r["callers"]), {}).setdefault(int(r["pair"]), {})[r["side"]] = r
if rpc:
    if http:
        print()
    print("| callers | Echo calls/s | Search calls/s | Search/Echo | Echo p50 µs | Search p50 µs | Echo p99 µs "
          "| Search p99 µs | Search reply bytes | goal (≥0.8×) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
    for c, ps in rpc.items():
        ps = [p for p in ps.values() if len(p) == 2]
        m = lambda side, key: med(float(p[side][key]) for p in ps)
        ratio = med(float(p["search"]["calls_per_s"]) / float(p["echo"]["calls_per_s"]) for p in ps)
        ok = ratio >= 0.8
        below |= not ok
        print(f"| {c} | {m('echo', 'calls_per_s'):.0f} | {m('search', 'calls_per_s'):.0f} | {ratio:.2f} "
              f"| {m('echo', 'p50_us'):.0f} | {m('search', 'p50_us'):.0f} | {m('echo', 'p99_us'):.0f} "
              f"| {m('search', 'p99_us'):.0f} | {ps[0]['search']['reply_bytes']} | {'meets' if ok else 'below'} |")
sys.exit(3 if below else 0)
PY
if ((status == 3)); then
	echo "run-events-search: below a goal for at least one row" >&2
fi
exit "$status"
