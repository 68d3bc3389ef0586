#!/usr/bin/env bash
# Echo benchmark: rpcq.Health/Echo through rpcqd and librpcq against a bare
# nng req/rep echo with the same payload, concurrency and transport (tcp on
# loopback). Prints one markdown table row per concurrency, ready for
# bench/README.md, with the ratios rpcq/raw of throughput and median latency.
# Each row is RUNS pairs of runs (raw and rpcq back to back, in alternating
# order): medians of each side, and the median of the pairs' ratios, which is
# what stays steady on a machine shared with other work.
#
#   bench/run-echo.sh [-d SECONDS (5)] [-w WARMUP (1)] [-c "CALLERS..." ("1 16")]
#                     [-p BYTES (200)] [-r RUNS (3)]
#
# Environment: BUILD (build directory, default build), RPCQD (default
# $BUILD/server/rpcqd), RPCQ_LOAD (default $BUILD/bench/rpcq-load),
# RPCQ_DATABASE_URL (else a throwaway cluster made with scripts/pg and removed
# at exit), RPCQD_ARGS (extra rpcqd flags, e.g. "--workers 2").
# Every process it starts is stopped on exit; the run is bounded by
# RUNS x 2 x (warm-up + seconds) per concurrency plus start-up. Exit status:
# 0 when every row meets the goal (throughput ratio >= 0.85, p50 ratio <= 1.2),
# 3 when a row is below it, 1 when something failed.
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
runs=3

usage() {
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
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
	echo "run-echo: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $load ]] || die "rpcq-load not found at $load (build target rpcq_load, or set RPCQ_LOAD or BUILD)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
# shellcheck disable=SC2086 # RPCQD_ARGS is a list of flags
bench_start_rpcqd ${RPCQD_ARGS:-}
rpc_url=$bench_rpc_url
raw_port=$(bench_free_port)
bench_spawn "$tmp/raw.log" "$load" raw-server --listen "tcp://127.0.0.1:$raw_port"
bench_wait_port "$raw_port" "$bench_pid" "$tmp/raw.log" "the raw echo server"
raw_url=tcp://127.0.0.1:$raw_port

# Runs one measurement; prints its key=value line.
measure() {
	local mode=$1 url=$2 c=$3 out
	if ! out=$("$load" "$mode" --url "$url" -c "$c" -d "$seconds" -w "$warmup" \
		-p "$payload" 2>"$tmp/load.err"); then
		cat "$tmp/load.err" >&2
		die "$mode load with $c callers failed"
	fi
	echo "$out"
}

echo "rpcq.Health/Echo vs raw nng req/rep echo: tcp loopback, $payload-byte payload," \
	"${seconds}s measured after ${warmup}s warm-up, $runs run pair(s) per row; $(nproc) cores" >&2
: >"$tmp/results"
for c in $concurrency; do
	for ((r = 0; r < runs; r++)); do
		# Alternate the order so that neither side always runs on a warmer machine.
		if ((r % 2 == 0)); then
			raw=$(measure raw "$raw_url" "$c")
			rq=$(measure rpcq "$rpc_url" "$c")
		else
			rq=$(measure rpcq "$rpc_url" "$c")
			raw=$(measure raw "$raw_url" "$c")
		fi
		echo "  $raw" >&2
		echo "  $rq" >&2
		echo "pair=$r $raw" >>"$tmp/results"
		echo "pair=$r $rq" >>"$tmp/results"
	done
done

# One row per concurrency: medians over the runs of each side, and the
# median of the ratios of runs made back to back (the two sides of a pair see
# the same machine, which matters on a shared one).
status=0
python3 - "$tmp/results" <<'PY' || status=$?
import re
import statistics as st
import sys

runs = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\w+)=([\w.]+)", line))
    runs.setdefault(int(kv["callers"]), {}).setdefault(int(kv["pair"]), {})[kv["mode"]] = kv
print("| callers | payload | raw calls/s | rpcq calls/s | throughput rpcq/raw | raw p50 µs | rpcq p50 µs "
      "| p50 rpcq/raw | raw p99 µs | rpcq p99 µs | goal (≥0.85, ≤1.2×) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
below = False
for c, pairs in runs.items():
    ps = list(pairs.values())
    med = lambda mode, key: st.median(float(p[mode][key]) for p in ps)
    tr = st.median(float(p["rpcq"]["calls_per_s"]) / float(p["raw"]["calls_per_s"]) for p in ps)
    lr = st.median(float(p["rpcq"]["p50_us"]) / float(p["raw"]["p50_us"]) for p in ps)
    ok = tr >= 0.85 and lr <= 1.2
    below |= not ok
    print(f"| {c} | {ps[0]['raw']['payload']} B | {med('raw', 'calls_per_s'):.0f} | {med('rpcq', 'calls_per_s'):.0f} "
          f"| {tr:.2f} | {med('raw', 'p50_us'):.0f} | {med('rpcq', 'p50_us'):.0f} | {lr:.2f}× "
          f"| {med('raw', 'p99_us'):.0f} | {med('rpcq', 'p99_us'):.0f} | {'meets' if ok else 'below'} |")
sys.exit(3 if below else 0)
PY
if ((status == 3)); then
	echo "run-echo: below goal (throughput ratio >= 0.85 and p50 ratio <= 1.2) for at least one row" >&2
fi
exit "$status"
