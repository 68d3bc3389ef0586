#!/usr/bin/env bash
# HTTP gateway benchmark: POST /rpc/rpcq.Health/Echo with a 200-byte JSON body
# (bench/echo200.lua) through rpcqd's gateway, against the ceiling: nng's own
# HTTP server answering the same route with a static body, the bytes of the
# gateway's own reply (rpcq-http-static). wrk at each connection count, RUNS
# pairs of runs (gateway and ceiling back to back, in alternating order); one
# markdown table row per count with medians and the median of the pairs'
# ratios, and the servers' CPU time and context switches per request. Then the
# cost of /metrics: wrk at 16 connections on the gateway with no scraper, with
# one that scrapes every 0.1 s (python3, one kept-alive connection; Prometheus
# scrapes every 15 s by default) and with a continuous one (wrk, 1
# connection, GET /metrics back to back), in a rotating order.
#
#   bench/run-http.sh [-d SECONDS (10)] [-w WARMUP (1)] [-c "CONNECTIONS..." ("1 16 64")]
#                     [-t WRK_THREADS (2)] [-r RUNS (3)] [-q QUIET_PCT (15)] [-a TRIES (3)]
#                     [-M (skip the /metrics part)]
#
# wrk runs with min(WRK_THREADS, connections) threads. Each measurement also
# records what the rest of the machine used meanwhile (busy CPU time less the
# server's, wrk's and the scraper's, in percent of all CPUs); a pair (or a
# scraper measurement) over QUIET_PCT is run again, up to TRIES times, and the
# tables take the medians of the quiet ones (all of them when none is quiet,
# and say so). Environment: BUILD (build directory, default build), RPCQD
# (default $BUILD/server/rpcqd), RPCQ_HTTP_STATIC (default
# $BUILD/bench/rpcq-http-static), WRK (default wrk), RPCQ_DATABASE_URL (else a
# throwaway cluster made with scripts/pg and removed at exit), RPCQD_ARGS
# (extra rpcqd flags, e.g. "--workers 2").
# Every process it starts is stopped on exit; the run is bounded by
# TRIES x RUNS x (2 x connection counts + 3) x (warm-up + seconds) plus
# start-up (RUNS x (2 x counts + 3) x (warm-up + seconds) on a quiet machine).
# Exit status: 0 when the 16-connection row meets the goal (requests/s ratio
# >= 0.6, p99 ratio <= 2), 3 when it is below, 1 when something failed
# (including any non-2xx reply or socket error during a measurement).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
static=${RPCQ_HTTP_STATIC:-$build/bench/rpcq-http-static}
wrk=${WRK:-wrk}
script=$here/echo200.lua
route=/rpc/rpcq.Health/Echo
seconds=10
warmup=1
concurrency="1 16 64"
threads=2
runs=3
quiet=15
tries=3
metrics=1

usage() {
	sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "d:w:c:t:r:q:a:Mh" o; do
	case $o in
	d) seconds=$OPTARG ;;
	w) warmup=$OPTARG ;;
	c) concurrency=$OPTARG ;;
	t) threads=$OPTARG ;;
	r) runs=$OPTARG ;;
	q) quiet=$OPTARG ;;
	a) tries=$OPTARG ;;
	M) metrics=0 ;;
	*) usage ;;
	esac
done

die() {
	echo "run-http: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $static ]] || die "rpcq-http-static not found at $static (build target rpcq_http_static, or set RPCQ_HTTP_STATIC or BUILD)"
command -v "$wrk" >/dev/null || die "wrk not found (apt-get install wrk, or set WRK)"
command -v curl >/dev/null || die "curl not found"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
hz=$(getconf CLK_TCK)
ncpu=$(nproc)

# The scrapers run in the background during one measurement; stopped at exit
# too, before lib.sh's cleanup stops the servers.
scraper_pid=""
stop_scraper() {
	if [[ -n $scraper_pid ]]; then
		kill "$scraper_pid" 2>/dev/null || true
		wait "$scraper_pid" 2>/dev/null || true
		scraper_pid=""
	fi
}
trap 'stop_scraper; bench_cleanup' EXIT

# The request body, from the wrk script (one source for both).
python3 - "$script" "$tmp/request.json" <<'PY' || die "no 200-byte wrk.body in $script"
import re, sys
body = re.search(r"^wrk\.body = '(.*)'$", open(sys.argv[1]).read(), re.M).group(1)
assert len(body) == 200, len(body)
open(sys.argv[2], "w").write(body)
PY

http_port=$(bench_free_port)
gateway_base=http://127.0.0.1:$http_port
# shellcheck disable=SC2086 # RPCQD_ARGS is a list of flags
bench_start_rpcqd --http "$gateway_base" ${RPCQD_ARGS:-}
gateway_pid=$bench_pid
bench_wait_port "$http_port" "$gateway_pid" "$bench_rpcqd_log" "rpcqd's HTTP gateway"

# post URL OUT: the Echo request through curl; prints "code content-type header-bytes".
post() {
	curl -sS --max-time 5 -o "$2" -w '%{http_code} %{content_type} %{size_header}\n' \
		-H 'Content-Type: application/json' --data-binary "@$tmp/request.json" "$1$route"
}
read -r code ctype gateway_hdr < <(post "$gateway_base" "$tmp/reply.json") ||
	die "curl POST $gateway_base$route failed"
[[ $code == 200 ]] || die "gateway: POST $route answered $code: $(head -c 300 "$tmp/reply.json")"
[[ $ctype == application/json* ]] || die "gateway: POST $route answered Content-Type $ctype"
python3 - "$tmp/request.json" "$tmp/reply.json" <<'PY' || die "gateway: the Echo reply is not the request's payload"
import base64, json, sys
def payload(path):
    p = json.load(open(path))["payload"]
    return base64.b64decode(p + "=" * (-len(p) % 4))
assert payload(sys.argv[1]) == payload(sys.argv[2])
PY
reply_bytes=$(wc -c <"$tmp/reply.json")

static_port=$(bench_free_port)
static_base=http://127.0.0.1:$static_port
bench_spawn "$tmp/static.log" "$static" --listen "$static_base" --body "$tmp/reply.json"
static_pid=$bench_pid
bench_wait_port "$static_port" "$static_pid" "$tmp/static.log" "rpcq-http-static"
read -r code ctype static_hdr < <(post "$static_base" "$tmp/static-reply.json") ||
	die "curl POST $static_base$route failed"
[[ $code == 200 ]] || die "rpcq-http-static: POST $route answered $code"
cmp -s "$tmp/reply.json" "$tmp/static-reply.json" || die "rpcq-http-static does not send the gateway's reply"

if ((metrics)); then
	code=$(curl -sS --max-time 5 -o "$tmp/metrics.txt" -w '%{http_code}' "$gateway_base/metrics") ||
		die "curl GET $gateway_base/metrics failed"
	[[ $code == 200 ]] || die "gateway: GET /metrics answered $code"
	metrics_bytes=$(wc -c <"$tmp/metrics.txt")
fi

# proc_sample PID [SCRAPER_PID]: "CPU-ticks context-switches" of the server
# (all its threads), the machine's busy and stolen ticks (all CPUs,
# /proc/stat; busy counts interrupts and softirqs, which tick-based
# accounting also charges to the task they interrupted), and the CPU ticks of
# the scraper with its waited-for children (0 without one).
proc_sample() {
	local ticks sw extra=0
	ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
	sw=$(cat "/proc/$1"/task/*/status 2>/dev/null |
		awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }')
	if [[ -n ${2:-} ]]; then
		extra=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$2/stat" 2>/dev/null) || extra=0
	fi
	echo "$ticks $sw $(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat) $extra"
}

# measure SIDE PID BASE CONNECTIONS TAG [SCRAPER_PID]: a warm-up, then one
# wrk run. Sets measured (its key=value line) and measured_others. Besides
# wrk's numbers: the server's CPU ticks and context switches, wrk's CPU
# seconds, the scraper's, and what everything else on the machine used
# (busy - server - wrk - scraper), in percent of all CPUs: others_pct.
measure() {
	local side=$1 pid=$2 base=$3 c=$4 tag=$5 scraper=${6:-} t=$threads out line before after TIMEFORMAT
	((t > c)) && t=$c
	if [[ $warmup != 0 ]]; then
		"$wrk" -t "$t" -c "$c" -d "${warmup}s" -s "$script" "$base$route" >/dev/null 2>&1 ||
			die "wrk warm-up on $side failed"
	fi
	TIMEFORMAT=$'\nwrk_cpu: %3U %3S'
	before=$(proc_sample "$pid" "$scraper")
	out=$({ time "$wrk" --latency -t "$t" -c "$c" -d "${seconds}s" -s "$script" "$base$route"; } 2>&1) || {
		echo "$out" >&2
		die "wrk on $side with $c connections failed"
	}
	after=$(proc_sample "$pid" "$scraper")
	line=$(grep '^wrk: ' <<<"$out") || {
		echo "$out" >&2
		die "wrk printed no summary (echo200.lua's done)"
	}
	line="side=$side connections=$c threads=$t $tag ${line#wrk: } $(
		read -r b0 b1 b2 b3 b4 <<<"$before"
		read -r a0 a1 a2 a3 a4 <<<"$after"
		read -r _ u s < <(grep '^wrk_cpu: ' <<<"$out")
		awk -v srv=$((a0 - b0)) -v sw=$((a1 - b1)) -v busy=$((a2 - b2)) -v steal=$((a3 - b3)) \
			-v scr=$((a4 - b4)) -v wrk="$u + $s" -v hz="$hz" -v ncpu="$ncpu" -v line="$line" 'BEGIN {
			split(wrk, w, / \+ /); wrk = w[1] + w[2]
			match(line, /duration_us=[0-9]+/); span = substr(line, RSTART + 12, RLENGTH - 12) / 1e6
			others = ((busy - srv - scr) / hz - wrk) / (span * ncpu) * 100
			printf "cpu_ticks=%d ctxsw=%d wrk_cpu_s=%.3f scraper_cpu_s=%.2f machine_ticks=%d steal_ticks=%d others_pct=%.0f\n",
				srv, sw, wrk, scr / hz, busy, steal, others
		}'
	)"
	measured=$line
	measured_others=$(sed -E 's/.*others_pct=(-?[0-9]+).*/\1/' <<<"$line")
	echo "  $line" >&2
}

# quiet_enough PCT...: every measurement's others_pct at most $quiet.
quiet_enough() {
	local o
	for o in "$@"; do
		((o <= quiet)) || return 1
	done
}

echo "rpcq.Health/Echo over HTTP: rpcqd's gateway vs nng's HTTP server with a static reply;" \
	"200-byte JSON request, $reply_bytes-byte reply (response headers: gateway $gateway_hdr B," \
	"ceiling $static_hdr B); wrk ${seconds}s after ${warmup}s warm-up, at most $threads thread(s)," \
	"$runs run pair(s) per row, each tried up to $tries times until other work used at most $quiet% of" \
	"the CPUs; tcp loopback; $ncpu cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$tmp/results"
for c in $concurrency; do
	for ((r = 0; r < runs; r++)); do
		for ((a = 1; ; a++)); do
			# Alternate the order so that neither side always runs on a warmer machine.
			if ((r % 2 == 0)); then
				measure ceiling "$static_pid" "$static_base" "$c" "pair=$r"
				l1=$measured o1=$measured_others
				measure gateway "$gateway_pid" "$gateway_base" "$c" "pair=$r"
			else
				measure gateway "$gateway_pid" "$gateway_base" "$c" "pair=$r"
				l1=$measured o1=$measured_others
				measure ceiling "$static_pid" "$static_base" "$c" "pair=$r"
			fi
			noisy=0
			quiet_enough "$o1" "$measured_others" && break
			noisy=1
			((a < tries)) || break
			echo "  other work used ${o1}% and ${measured_others}% of the CPUs: pair again" >&2
		done
		echo "$l1 noisy=$noisy attempts=$a" >>"$tmp/results"
		echo "$measured noisy=$noisy attempts=$a" >>"$tmp/results"
	done
done

if ((metrics)); then
	echo "/metrics ($metrics_bytes bytes) while wrk runs 16 connections on the gateway:" \
		"no scraper, one every 0.1 s, wrk -c1 back to back" >&2
	# One kept-alive connection, GET /metrics every 0.1 s; at SIGTERM, the
	# number of 200 replies and of others on stdout.
	scrape_paced() {
		exec python3 -c '
import http.client, signal, sys, time
ok = bad = 0
def stop(*_):
    print(ok, bad, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
while True:
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        ok, bad = (ok + 1, bad) if r.status == 200 else (ok, bad + 1)
    except Exception:
        bad += 1
        conn.close()
    time.sleep(0.1)
' 127.0.0.1 "$http_port"
	}
	# measure_scraped KIND PAIR: one measurement with that scraper running
	# from before the warm-up to the end; adds scrapes= and span= (its seconds).
	measure_scraped() {
		local kind=$1 r=$2 t0 n span ok bad
		case $kind in
		none)
			measure gateway "$gateway_pid" "$gateway_base" 16 "pair=$r scraper=none"
			measured+=" scrapes=0 span=1"
			;;
		paced)
			t0=$EPOCHREALTIME
			scrape_paced >"$tmp/scrapes" 2>&1 &
			scraper_pid=$!
			measure gateway "$gateway_pid" "$gateway_base" 16 "pair=$r scraper=paced" "$scraper_pid"
			stop_scraper
			span=$(python3 -c "print(round($EPOCHREALTIME - $t0, 3))")
			read -r ok bad <"$tmp/scrapes" || die "paced scraper: $(cat "$tmp/scrapes")"
			((bad == 0)) || die "paced scraper: $bad of $((ok + bad)) scrapes failed"
			echo "  paced scraper: $ok scrapes in ${span}s" >&2
			measured+=" scrapes=$ok span=$span"
			;;
		continuous)
			# Longer than the measurement with its warm-up; stopped right after it.
			"$wrk" -t1 -c1 -d "$((seconds + warmup + 5))s" "$gateway_base/metrics" >"$tmp/scraper.out" 2>&1 &
			scraper_pid=$!
			measure gateway "$gateway_pid" "$gateway_base" 16 "pair=$r scraper=continuous" "$scraper_pid"
			# wrk prints its totals when interrupted.
			kill -INT "$scraper_pid" 2>/dev/null || true
			wait "$scraper_pid" 2>/dev/null || true
			scraper_pid=""
			if grep -q 'Non-2xx' "$tmp/scraper.out"; then
				die "continuous scraper: non-2xx replies from /metrics"
			fi
			# "  N requests in 11.02s, ..."
			read -r n span < <(awk '/requests in/ { sub(/s,$/, "", $4); print $1, $4 }' "$tmp/scraper.out") ||
				die "continuous scraper: no wrk summary: $(cat "$tmp/scraper.out")"
			echo "  continuous scraper: $n scrapes in ${span}s" >&2
			measured+=" scrapes=$n span=$span"
			;;
		esac
	}
	kinds=(none paced continuous)
	for ((r = 0; r < runs; r++)); do
		# A rotating order: none, paced, continuous; then paced, continuous, none...
		for k in 0 1 2; do
			kind=${kinds[(k + r) % 3]}
			for ((a = 1; ; a++)); do
				measure_scraped "$kind" "$r"
				noisy=0
				quiet_enough "$measured_others" && break
				noisy=1
				((a < tries)) || break
				echo "  other work used ${measured_others}% of the CPUs: again" >&2
			done
			echo "$measured noisy=$noisy attempts=$a" >>"$tmp/results"
		done
	done
fi

status=0
python3 - "$tmp/results" "$hz" "$quiet" <<'PY' || status=$?
import re
import statistics as st
import sys

hz, quiet = float(sys.argv[2]), sys.argv[3]
rows = [dict(re.findall(r"(\w+)=([\w.-]+)", line)) for line in open(sys.argv[1])]
med = st.median
failed = sum(int(r["non2xx"]) + int(r["errors"]) for r in rows)

def span(r):
    return int(r["duration_us"]) / 1e6

def cpu_us(r):  # server CPU per request, µs
    return float(r["cpu_ticks"]) / hz * 1e6 / max(int(r["requests"]), 1)

def sw(r):
    return float(r["ctxsw"]) / max(int(r["requests"]), 1)

def pick(groups):
    """The quiet groups (no measurement over the others threshold), or all of them when none is."""
    q = [g for g in groups if all(r["noisy"] == "0" for r in g.values())]
    return (q, f"{len(q)}/{len(groups)}") if q else (groups, f"0/{len(groups)}")

pairs = {}
for r in rows:
    if "scraper" not in r:
        pairs.setdefault(int(r["connections"]), {}).setdefault(int(r["pair"]), {})[r["side"]] = r

print(f"| connections | wrk threads | ceiling req/s | gateway req/s | req/s gateway/ceiling | ceiling p50 µs "
      f"| gateway p50 µs | ceiling p99 µs | gateway p99 µs | p99 gateway/ceiling | quiet pairs (others ≤{quiet}%) "
      f"| goal at 16 (≥0.6×, p99 ≤2×) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
below = False
chosen = {}
for c, ps in pairs.items():
    ps, nq = pick([p for p in ps.values() if len(p) == 2])
    chosen[c] = ps
    m = lambda side, key: med(float(p[side][key]) for p in ps)
    tr = med(float(p["gateway"]["rps"]) / float(p["ceiling"]["rps"]) for p in ps)
    lr = med(float(p["gateway"]["p99_us"]) / float(p["ceiling"]["p99_us"]) for p in ps)
    goal = ""
    if c == 16:
        ok = tr >= 0.6 and lr <= 2
        below |= not ok
        goal = ("meets" if ok else "below") + (" (no quiet pair)" if nq.startswith("0/") else "")
    print(f"| {c} | {ps[0]['gateway']['threads']} | {m('ceiling', 'rps'):.0f} | {m('gateway', 'rps'):.0f} | {tr:.2f} "
          f"| {m('ceiling', 'p50_us'):.0f} | {m('gateway', 'p50_us'):.0f} | {m('ceiling', 'p99_us'):.0f} "
          f"| {m('gateway', 'p99_us'):.0f} | {lr:.2f}× | {nq} | {goal} |")

print()
print("| connections | ceiling CPU µs/req | gateway CPU µs/req | ceiling context switches/req "
      "| gateway context switches/req | wrk CPU (ceiling, gateway) |")
print("|---:|---:|---:|---:|---:|---:|")
for c, ps in chosen.items():
    m = lambda side, f: med(f(p[side]) for p in ps)
    wrk = lambda r: float(r["wrk_cpu_s"]) / span(r)
    print(f"| {c} | {m('ceiling', cpu_us):.0f} | {m('gateway', cpu_us):.0f} | {m('ceiling', sw):.1f} "
          f"| {m('gateway', sw):.1f} | {m('ceiling', wrk):.2f}, {m('gateway', wrk):.2f} CPUs |")

scr = {}
for r in rows:
    if "scraper" in r:
        scr.setdefault(int(r["pair"]), {})[r["scraper"]] = r
if scr:
    names = {"none": "none", "paced": "every 0.1 s (python3, kept alive)", "continuous": "wrk -c1, back to back"}
    groups, nq = pick([g for g in scr.values() if len(g) == 3])
    print()
    print(f"| /metrics scraper | scrapes/s | gateway req/s (16 connections) | vs no scraper | gateway p50 µs "
          f"| gateway p99 µs | gateway CPU µs/req | scraper CPU | rpcqd CPU µs/scrape (est.) |")
    print("|:---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in ("none", "paced", "continuous"):
        g = groups
        rate = med(float(p[k]["scrapes"]) / float(p[k]["span"]) for p in g) if k != "none" else 0
        ratio = med(float(p[k]["rps"]) / float(p["none"]["rps"]) for p in g)
        scpu = med(float(p[k]["scraper_cpu_s"]) / span(p[k]) for p in g)
        # rpcqd's CPU beyond what its requests cost at the no-scraper rate, per scrape
        per = "" if k != "continuous" else f"{med((float(p[k]['cpu_ticks']) / hz - int(p[k]['requests']) * cpu_us(p['none']) / 1e6) / max(int(p[k]['scrapes']) * span(p[k]) / float(p[k]['span']), 1) * 1e6 for p in g):.0f}"
        print(f"| {names[k]} | {rate:.0f} | {med(float(p[k]['rps']) for p in g):.0f} | {ratio:.2f} "
              f"| {med(float(p[k]['p50_us']) for p in g):.0f} | {med(float(p[k]['p99_us']) for p in g):.0f} "
              f"| {med(cpu_us(p[k]) for p in g):.0f} | {scpu:.2f} CPUs | {per} |")
    print()
    print(f"Quiet rounds (all three ≤{quiet}% others): {nq}.")

# What else ran: machine busy time minus the server's, wrk's and the
# scraper's, as a share of all CPUs over each measurement.
o = sorted(float(r["others_pct"]) for r in rows)
print()
print(f"Other work on the machine during the measurements: median {med(o):.0f}%, max {o[-1]:.0f}% of the CPUs "
      f"({sum(r['noisy'] == '1' for r in rows)} of {len(rows)} kept over {quiet}% after retries, "
      f"{sum(int(r['attempts']) for r in rows) - len(rows)} retried); stolen by the hypervisor: "
      f"max {max(100 * float(r['steal_ticks']) / hz / span(r) for r in rows):.1f}% of one CPU.")

if failed:
    print(f"run-http: {failed} non-2xx replies or socket errors during the measurements", file=sys.stderr)
    sys.exit(1)
sys.exit(3 if below else 0)
PY
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if ((status == 3)); then
	echo "run-http: below goal at 16 connections (requests/s ratio >= 0.6 and p99 ratio <= 2)" >&2
fi
exit "$status"
