#!/usr/bin/env bash
# Access control's cost: rpcq.Health/Echo through two rpcqd processes on one
# database, one with --auth off and one with --auth on (a '*' key made with
# rpcqd keys, sent by librpcq from RPCQ_API_KEY), same payload, concurrency
# and transport (tcp on loopback). Prints one markdown table row per
# concurrency for bench/README.md: medians over RUNS back-to-back pairs (in
# alternating order) and the median of the pairs' ratios on/off.
#
#   bench/run-auth.sh [-d SECONDS (5)] [-w WARMUP (1)] [-c "CALLERS..." ("1 16")]
#                     [-p BYTES (200)] [-r RUNS (5)]
#
# Environment: BUILD (default build), RPCQD, RPCQ_LOAD, RPCQ_DATABASE_URL (else
# a throwaway cluster), RPCQD_ARGS (extra flags for both rpcqd). Every process
# it starts is stopped on exit. Exit status: 0 when every row meets the goal
# (throughput on/off >= 0.95), 3 when a row is below it, 1 when something failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
load=${RPCQ_LOAD:-$build/bench/rpcq-load}
seconds=5
warmup=1
concurrency="1 16"
payload=200
runs=5

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "d:w:c:p:r:h" o; do
	case $o in
	d) seconds=$OPTARG ;;
	w) warmup=$OPTARG ;;
	c) concurrency=$OPTARG ;;
	p) payload=$OPTARG ;;
	r) runs=$OPTARG ;;
	*) usage ;;
	esac
done

die() {
	echo "run-auth: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $load ]] || die "rpcq-load not found at $load (build target rpcq_load, or set RPCQ_LOAD or BUILD)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
# shellcheck disable=SC2086 # RPCQD_ARGS is a list of flags
bench_start_rpcqd --auth off --http '' ${RPCQD_ARGS:-}
off_url=$bench_rpc_url
key=$("$rpcqd" keys create bench --scope '*' --database "$bench_db" 2>"$tmp/keys.log") || {
	cat "$tmp/keys.log" >&2
	die "rpcqd keys create failed"
}
on_port=$(bench_free_port)
on_url=tcp://127.0.0.1:$on_port
# shellcheck disable=SC2086
bench_spawn "$tmp/rpcqd-on.log" "$rpcqd" serve --listen "$on_url" --publish "tcp://127.0.0.1:$(bench_free_port)" \
	--http '' --database "$bench_db" --auth on ${RPCQD_ARGS:-}
bench_wait_port "$on_port" "$bench_pid" "$tmp/rpcqd-on.log" "rpcqd --auth on"

# Runs one measurement; prints its key=value line with side=off|on.
measure() {
	local side=$1 c=$2 url=$off_url k="" out
	if [[ $side == on ]]; then
		url=$on_url
		k=$key
	fi
	if ! out=$(RPCQ_API_KEY=$k "$load" rpcq --url "$url" -c "$c" -d "$seconds" -w "$warmup" \
		-p "$payload" 2>"$tmp/load.err"); then
		cat "$tmp/load.err" >&2
		die "load on the --auth $side server with $c callers failed"
	fi
	echo "side=$side $out"
}

echo "rpcq.Health/Echo with --auth on (a key per call) vs --auth off: tcp loopback, $payload-byte payload," \
	"${seconds}s measured after ${warmup}s warm-up, $runs run pair(s) per row; $(nproc) cores" >&2
: >"$tmp/results"
for c in $concurrency; do
	for ((r = 0; r < runs; r++)); do
		if ((r % 2 == 0)); then
			a=$(measure off "$c")
			b=$(measure on "$c")
		else
			b=$(measure on "$c")
			a=$(measure off "$c")
		fi
		echo "  $a" >&2
		echo "  $b" >&2
		echo "pair=$r $a" >>"$tmp/results"
		echo "pair=$r $b" >>"$tmp/results"
	done
done
# Every call of the "on" side was checked: none was refused.
if grep -q "auth: refused" "$tmp/rpcqd-on.log"; then
	grep "auth: refused" "$tmp/rpcqd-on.log" | head -3 >&2
	die "the --auth on server refused calls"
fi

status=0
python3 - "$tmp/results" <<'PY' || status=$?
import re
import statistics as st
import sys

runs = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\w+)=([\w.]+)", line))
    runs.setdefault(int(kv["callers"]), {}).setdefault(int(kv["pair"]), {})[kv["side"]] = kv
print("| callers | payload | off calls/s | on calls/s | throughput on/off | off p50 µs | on p50 µs "
      "| p50 on/off | off p99 µs | on p99 µs | goal (≥0.95) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
below = False
for c, pairs in runs.items():
    ps = list(pairs.values())
    med = lambda side, key: st.median(float(p[side][key]) for p in ps)
    tr = st.median(float(p["on"]["calls_per_s"]) / float(p["off"]["calls_per_s"]) for p in ps)
    lr = st.median(float(p["on"]["p50_us"]) / float(p["off"]["p50_us"]) for p in ps)
    ok = tr >= 0.95
    below |= not ok
    print(f"| {c} | {ps[0]['off']['payload']} B | {med('off', 'calls_per_s'):.0f} | {med('on', 'calls_per_s'):.0f} "
          f"| {tr:.2f} | {med('off', 'p50_us'):.0f} | {med('on', 'p50_us'):.0f} | {lr:.2f}× "
          f"| {med('off', 'p99_us'):.0f} | {med('on', 'p99_us'):.0f} | {'meets' if ok else 'below'} |")
sys.exit(3 if below else 0)
PY
if ((status == 3)); then
	echo "run-auth: below goal (throughput on/off >= 0.95) for at least one row" >&2
fi
exit "$status"
