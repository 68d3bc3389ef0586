#!/usr/bin/env bash
# Vesting benchmark: the rpcq vesting service against a plain Python program
# (bench/baseline/vesting.py, csv + decimal) on a generated ledger of one
# million events over 100,000 awards. Times, end to end as a user runs them:
#   1. the Python baseline on the file;
#   2. `rpcq vesting FILE DATE PREC` (Compute: the CLI sends the file in chunks),
#      as the first call of a fresh rpcqd and as the median of 3 more;
#   3. `rpcq vesting append LEDGER FILE` (the file into a PostgreSQL ledger);
#   4. `rpcq vesting schedule LEDGER DATE PREC` (the schedule from the database);
# checks that every schedule is byte-for-byte the baseline's, and prints a
# markdown table for bench/README.md. A step that fails is reported as failed
# with its error and the others still run. First, the baseline is checked
# against the examples of shared/data/vesting.
#
#   bench/run-vesting.sh [-n EVENTS] [-a AWARDS] [-t DATE] [-p PRECISION] [-s SEED]
#
# Defaults: 1000000 events, 100000 awards, target 2024-06-30, precision 2.
# Environment: BUILD (build directory, default build), RPCQD (default
# $BUILD/server/rpcqd), RPCQ_CLI (default $BUILD/client/cli/rpcq),
# RPCQ_DATABASE_URL (else a throwaway cluster made with scripts/pg),
# RPCQ_SHARED_DIR (default ../shared next to the source tree), BENCH_DATA (a
# directory where the generated ledger is kept between runs; default: none).
# With RPCQ_DATABASE_URL the ledger bench_<pid> stays in that database.
# Exit status 0 when every step ran and matched, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
cli=${RPCQ_CLI:-$build/client/cli/rpcq}
shared=${RPCQ_SHARED_DIR:-$root/../shared}
events=1000000
awards=100000
target=2024-06-30
precision=2
seed=1

usage() {
	sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "n:a:t:p:s:h" o; do
	case $o in
	n) events=$OPTARG ;;
	a) awards=$OPTARG ;;
	t) target=$OPTARG ;;
	p) precision=$OPTARG ;;
	s) seed=$OPTARG ;;
	*) usage ;;
	esac
done

die() {
	echo "run-vesting: $*" >&2
	exit 1
}

[[ -x $rpcqd ]] || die "rpcqd not found at $rpcqd (build it, or set RPCQD or BUILD)"
[[ -x $cli ]] || die "rpcq not found at $cli (build target rpcq_cli, or set RPCQ_CLI or BUILD)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
failures=0
rows=()

now() {
	date +%s.%N
}

secs() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

# 1. The baseline reproduces the examples of the spec, byte for byte.
check_example() {
	local csv=$1 date=$2 prec=$3 expected=$4
	if ! python3 "$here/baseline/vesting.py" "$csv" "$date" "$prec" >"$tmp/example.out"; then
		echo "baseline: FAILED on $csv" >&2
		return 1
	fi
	if ! cmp -s "$tmp/example.out" "$expected"; then
		echo "baseline: output for $csv at $date differs from $expected" >&2
		diff "$tmp/example.out" "$expected" >&2 || true
		return 1
	fi
	echo "baseline: $(basename "$csv") at $date matches $(basename "$expected") byte for byte" >&2
}
ex=$shared/data/vesting
if [[ -d $ex ]]; then
	check_example "$ex/example1.csv" 2020-04-01 0 "$ex/example1.2020-04-01.expected" || failures=$((failures + 1))
	check_example "$ex/example2.csv" 2021-01-01 0 "$ex/example2.2021-01-01.expected" || failures=$((failures + 1))
else
	echo "baseline: $ex not found (set RPCQ_SHARED_DIR); examples not checked" >&2
	failures=$((failures + 1))
fi

# 2. The ledger, generated once per (events, awards, seed).
name=vesting-$events-$awards-$seed.csv
if [[ -n ${BENCH_DATA:-} ]]; then
	mkdir -p -- "$BENCH_DATA"
	ledger=$BENCH_DATA/$name
else
	ledger=$tmp/$name
fi
if [[ ! -s $ledger ]]; then
	t0=$(now)
	python3 "$here/vesting_gen.py" -n "$events" -a "$awards" -s "$seed" -o "$ledger.part"
	mv -- "$ledger.part" "$ledger"
	echo "generated $ledger in $(secs "$t0" "$(now)") s" >&2
fi
size_mb=$(awk -v b="$(stat -c %s "$ledger")" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "ledger: $events events, $awards awards, $size_mb MiB; target $target, precision $precision" >&2

# 3. The Python baseline.
t0=$(now)
python3 "$here/baseline/vesting.py" "$ledger" "$target" "$precision" >"$tmp/baseline.out" ||
	die "the Python baseline failed on $ledger"
py_s=$(secs "$t0" "$(now)")
echo "baseline: $(awk 'END { print NR }' "$tmp/baseline.out") lines in $py_s s" >&2
rows+=("| Python baseline (csv + decimal) | $py_s | 1.0× | reference |")

# Runs one timed step: step LABEL OUTFILE CMD...; sets step_s and step_ok.
step() {
	local label=$1 outfile=$2
	shift 2
	local t0 rc=0
	t0=$(now)
	"$@" >"$outfile" 2>"$tmp/step.err" || rc=$?
	step_s=$(secs "$t0" "$(now)")
	if ((rc != 0)); then
		step_ok=0
		echo "$label: FAILED (exit $rc, $step_s s): $(head -n 3 "$tmp/step.err")" >&2
		return 0
	fi
	step_ok=1
	echo "$label: $step_s s" >&2
}

# The failed step's first error line, fit for a table cell.
first_error() {
	head -n 1 "$tmp/step.err" | tr '|' '/'
}

# The verdict on a schedule: identical to the baseline's output or not.
same_as_baseline() {
	if cmp -s "$1" "$tmp/baseline.out"; then
		echo "identical to baseline"
	else
		echo "DIFFERS from baseline" >&2
		diff "$1" "$tmp/baseline.out" | head -n 6 >&2 || true
		echo "**differs** ($(awk 'END { print NR }' "$1") lines)"
	fi
}

ratio() {
	awk -v a="$py_s" -v b="$1" 'BEGIN { if (b > 0) printf "%.1f× faster", a / b; else print "-" }'
}

# shellcheck disable=SC2119 # no extra rpcqd flags
bench_start_rpcqd
rpcq() {
	"$cli" --server "$bench_rpc_url" --timeout 120000 "$@"
}

# 4. Compute: the file, stateless.
step "rpcq vesting FILE" "$tmp/compute.out" rpcq vesting "$ledger" "$target" "$precision"
if ((step_ok)); then
	verdict=$(same_as_baseline "$tmp/compute.out")
	[[ $verdict == identical* ]] || failures=$((failures + 1))
	rows+=("| \`rpcq vesting FILE $target $precision\` (Compute, first call of a fresh rpcqd) | $step_s | $(ratio "$step_s") | $verdict |")
	# rpcqd is a long-running daemon: also the same call once its heap is
	# warm (median of 3 more), as every later file meets it.
	warm=()
	for _ in 1 2 3; do
		step "rpcq vesting FILE (warm)" "$tmp/compute.out" rpcq vesting "$ledger" "$target" "$precision"
		((step_ok)) && cmp -s "$tmp/compute.out" "$tmp/baseline.out" && warm+=("$step_s")
	done
	if ((${#warm[@]} == 3)); then
		step_s=$(printf '%s\n' "${warm[@]}" | sort -n | sed -n 2p)
		rows+=("| \`rpcq vesting FILE $target $precision\` (Compute, warm rpcqd, median of 3) | $step_s | $(ratio "$step_s") | identical to baseline |")
	else
		failures=$((failures + 1))
		rows+=("| \`rpcq vesting FILE $target $precision\` (Compute, warm rpcqd) | failed | - | a warm run failed or differed |")
	fi
else
	failures=$((failures + 1))
	rows+=("| \`rpcq vesting FILE $target $precision\` (Compute) | failed | - | $(first_error) |")
fi

# 5. Ledger: append the file, then ask the database for the schedule.
ledger_name=bench_$$
step "rpcq vesting append" "$tmp/append.out" rpcq vesting append "$ledger_name" "$ledger"
if ((step_ok)); then
	rate=$(awk -v n="$events" -v s="$step_s" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }')
	rows+=("| \`rpcq vesting append LEDGER FILE\` ($events events) | $step_s | $rate events/s | appended |")
	step "rpcq vesting schedule" "$tmp/schedule.out" rpcq vesting schedule "$ledger_name" "$target" "$precision"
	if ((step_ok)); then
		verdict=$(same_as_baseline "$tmp/schedule.out")
		[[ $verdict == identical* ]] || failures=$((failures + 1))
		rows+=("| \`rpcq vesting schedule LEDGER $target $precision\` | $step_s | $(ratio "$step_s") | $verdict |")
	else
		failures=$((failures + 1))
		rows+=("| \`rpcq vesting schedule LEDGER $target $precision\` | failed | - | $(first_error) |")
	fi
else
	failures=$((failures + 2))
	rows+=("| \`rpcq vesting append LEDGER FILE\` ($events events) | failed | - | $(first_error) |")
	rows+=("| \`rpcq vesting schedule LEDGER $target $precision\` | not run | - | needs the append |")
fi

echo
echo "Vesting, $events events over $awards awards ($size_mb MiB), target $target, precision $precision;" \
	"$(nproc) cores, wall-clock seconds end to end"
echo
echo "| step | seconds | vs Python | output |"
echo "|---|---:|---:|---|"
printf '%s\n' "${rows[@]}"
if ((failures)); then
	echo "run-vesting: $failures step(s) failed or differ (see above)" >&2
	exit 1
fi
