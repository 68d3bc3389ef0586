#!/usr/bin/env bash
# Streams benchmark: publish-to-receive latency (p50/p99) and messages per
# second to 1 and 10 subscribers, through rpcqd (stream_append + COMMIT,
# the publisher, librpcq subscriptions) against bare nng pub/sub with the same
# payload and transport (tcp on loopback), in one run. Prints a markdown
# table ready for bench/README.md.
#
#   bench/run-streams.sh [-s "1 10"] [-m LAT_MESSAGES] [-r RATE] [-n THR_MESSAGES] [-b PER_TX] [-p BYTES]
#
# Environment: BUILD (build directory, default build), RPCQD (default
# $BUILD/server/rpcqd), RPCQ_STREAM_BENCH (default
# $BUILD/bench/rpcq-stream-bench), RPCQ_DATABASE_URL (else a throwaway
# cluster made with scripts/pg and removed at exit), RPCQD_ARGS (extra rpcqd
# flags). Every process it starts is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
bench=${RPCQ_STREAM_BENCH:-$build/bench/rpcq-stream-bench}

die() {
	echo "run-streams: $*" >&2
	exit 1
}

[[ ${1:-} == -h || ${1:-} == --help ]] && {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $bench ]] || die "rpcq-stream-bench not found at $bench (build target rpcq_stream_bench, or set BUILD)"

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
# shellcheck disable=SC2086 # RPCQD_ARGS is a list of flags
bench_start_rpcqd ${RPCQD_ARGS:-}
echo "update streams, rpcq vs raw nng pub/sub: tcp loopback; $(nproc) cores" >&2
"$bench" --server "$bench_rpc_url" --database "$bench_db" "$@"
