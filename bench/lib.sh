# shellcheck shell=bash
# Shared by the bench/run-*.sh scripts (sourced, not run): a scratch
# directory, a PostgreSQL (RPCQ_DATABASE_URL, or a throwaway cluster made with
# scripts/pg), a migrated database and an rpcqd on free loopback ports, all
# stopped and removed when the script exits, however it exits.
#
# After bench_start_rpcqd: $bench_tmp (scratch directory), $bench_db
# (conninfo), $bench_rpc_url, $bench_rpcqd_log. Background processes started
# with bench_spawn are killed at exit. Needs $root (the source tree), $rpcqd
# and a die function.
# shellcheck disable=SC2154 # root and rpcqd are the sourcing script's

bench_tmp=$(mktemp -d /tmp/rpcq-bench.XXXXXX)
bench_pids=()
bench_pgdir=""

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${bench_pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ -n $bench_pgdir ]]; then
		"$root/scripts/pg" stop "$bench_pgdir" >/dev/null 2>&1 || true
	fi
	rm -rf -- "$bench_tmp"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_spawn LOG CMD...: runs CMD in the background, output to LOG; sets bench_pid.
bench_spawn() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	bench_pid=$!
	bench_pids+=("$bench_pid")
}

# bench_wait_port PORT PID LOG WHAT: waits at most 15 s for a listener on PORT.
bench_wait_port() {
	local port=$1 pid=$2 log=$3 what=$4 i
	for ((i = 0; i < 150; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$log" >&2 || true
	die "$what does not accept connections on 127.0.0.1:$port (log above)"
}

# bench_start_rpcqd [EXTRA FLAGS...]
bench_start_rpcqd() {
	if [[ -n ${RPCQ_DATABASE_URL:-} ]]; then
		bench_db=$RPCQ_DATABASE_URL
	else
		bench_pgdir=$bench_tmp/pg
		bench_db=$(RPCQ_PG_OWNER_PID=$$ "$root/scripts/pg" start "$bench_pgdir") ||
			die "scripts/pg start $bench_pgdir failed"
	fi
	"$rpcqd" migrate --database "$bench_db" >"$bench_tmp/migrate.log" 2>&1 || {
		cat "$bench_tmp/migrate.log" >&2
		die "rpcqd migrate failed"
	}
	local rpc_port pub_port
	rpc_port=$(bench_free_port)
	pub_port=$(bench_free_port)
	bench_rpc_url=tcp://127.0.0.1:$rpc_port
	bench_rpcqd_log=$bench_tmp/rpcqd.log
	bench_spawn "$bench_rpcqd_log" "$rpcqd" serve --listen "$bench_rpc_url" \
		--publish "tcp://127.0.0.1:$pub_port" --database "$bench_db" "$@"
	bench_wait_port "$rpc_port" "$bench_pid" "$bench_rpcqd_log" rpcqd
}
