#!/usr/bin/env bash
# Billing benchmark (issue 13), on one throwaway PostgreSQL cluster:
#
#   1. import: a generated debts file (rpcq-billing-gen, ROWS rows, identical
#      repeats) through `rpcq billing import FILE --wait bills --json`
#      (timed: first chunk to every bill stored) into a fresh migrated
#      database and a fresh rpcqd (--billing-schedule 1, no mail backend),
#      next to bare COPYs of the same data in another fresh database:
#      psql \copy of the whole file into a table with a bigserial primary
#      key, and of its distinct rows (--unique) into a table with a debt_id
#      primary key. Order alternates by round. rpcqd's VmHWM before and
#      after, rpcqd's and PostgreSQL's CPU; PostgreSQL logs every statement
#      (log_min_duration_statement = 0) and lock waits over 200 ms: the
#      import (first chunk to the last merge) and the billing tail (last
#      merge to the CLI's return) are split from that log, with the time of
#      each statement kind.
#   2. memory reference: the same on a file of ROWS/10 rows (one round).
#   3. mail: MAIL_ROWS debts imported with --wait emails into an rpcqd with
#      --smtp-url to tests/integration/smtp_sink.py (aiosmtpd) on loopback;
#      e-mails/s from the first to the last sent_at, and the sink's count.
#   4. floor (not in the default STEPS): what storing the file costs with no
#      chunks and no rpcqd, set-based in one backend, next to the bigserial
#      COPY of the same round, into a migrated database: COPY of the whole
#      file into an unindexed stage, one INSERT ... SELECT DISTINCT ON
#      (debt_id) of the staged rows into billing_debts (its two keys;
#      work_mem 256MB, so the sort stays in memory), then one INSERT of every
#      debt's bill (billing_bills) and one of its e-mail (the outbox), each
#      after a CHECKPOINT.
#
#   bench/run-billing.sh [-n ROWS (1100000)] [-r ROUNDS (2)] [-m MAIL_ROWS (20000)]
#       [-t MAIL_TIMEOUT_S (300)] [-s SEED (1)] [-S STEPS ("import memory mail"; also floor)] [-o OUTDIR]
#
# Environment: BUILD (default build), RPCQD, RPCQ_CLI, RPCQ_BILLING_GEN,
# BENCH_DATA (where generated files are kept; default: the scratch dir).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
cli=${RPCQ_CLI:-$build/client/cli/rpcq}
gen=${RPCQ_BILLING_GEN:-$build/bench/rpcq-billing-gen}
rows=1100000 rounds=2 mail_rows=20000 mail_timeout=300 seed=1 steps="import memory mail" outdir=""

die() {
	echo "run-billing.sh: $*" >&2
	exit 1
}
while getopts "n:r:m:t:s:S:o:h" o; do
	case $o in
	n) rows=$OPTARG ;;
	r) rounds=$OPTARG ;;
	m) mail_rows=$OPTARG ;;
	t) mail_timeout=$OPTARG ;;
	s) seed=$OPTARG ;;
	S) steps=$OPTARG ;;
	o) outdir=$OPTARG ;;
	*) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' >&2 && exit 2 ;;
	esac
done
for f in "$rpcqd" "$cli" "$gen"; do [[ -x $f ]] || die "$f not built"; done

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
data=${BENCH_DATA:-$bench_tmp}
mkdir -p "$data"
res=$bench_tmp/results.txt
: >"$res"

gen_file() { # gen_file NAME ARGS...
	local f=$data/$1
	shift
	if [[ ! -s $f ]]; then "$gen" "$@" --out "$f.tmp" 2>>"$bench_tmp/gen.log" && mv "$f.tmp" "$f"; fi
}
gen_file "debts-$rows-$seed.csv" --rows "$rows" --seed "$seed"
gen_file "debts-$rows-$seed-unique.csv" --rows "$rows" --seed "$seed" --unique
gen_file "debts-$((rows / 10))-$((seed + 1)).csv" --rows $((rows / 10)) --seed $((seed + 1))
gen_file "mail-$mail_rows.csv" --rows "$mail_rows" --seed $((seed + 2))
big=$data/debts-$rows-$seed.csv uniq=$data/debts-$rows-$seed-unique.csv
small=$data/debts-$((rows / 10))-$((seed + 1)).csv mailf=$data/mail-$mail_rows.csv

bench_pgdir=$bench_tmp/pg
cluster=$(RPCQ_PG_OWNER_PID=$$ "$root/scripts/pg" start "$bench_pgdir") || die "scripts/pg start failed"
pglog=$bench_pgdir/postgres.log
psql -qX "$cluster" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "ALTER SYSTEM SET log_lock_waits = on" \
	-c "ALTER SYSTEM SET deadlock_timeout = '200ms'" -c "SELECT pg_reload_conf()" >/dev/null
pg_pid=$(head -n1 "$bench_pgdir/data/postmaster.pid")
dbn=0

fresh_db() { # sets db to the conninfo of a new database, dropping the one before
	if ((dbn > 0)); then
		# So that no autovacuum of its million rows runs during the next step.
		psql -qX "$cluster" -c "DROP DATABASE b$dbn WITH (FORCE)" >/dev/null || die "DROP DATABASE failed"
	fi
	dbn=$((dbn + 1))
	psql -qX "$cluster" -c "CREATE DATABASE b$dbn" >/dev/null || die "CREATE DATABASE failed"
	db=${cluster/dbname=rpcq/dbname=b$dbn}
}
now() { date +%s.%N; }
kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {
	local t=0 p
	for p in $(pgrep -P "$pg_pid"); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done
	echo $t
}
load() { cut -d' ' -f1 /proc/loadavg; }
# Each timed step starts with no dirty buffers left by the one before.
checkpoint() { psql -qX "$cluster" -c CHECKPOINT >/dev/null; }

copy_round() { # copy_round ROUND
	fresh_db
	psql -qX "$db" -c "CREATE TABLE t_serial (id bigserial PRIMARY KEY, name text, government_id text, email text,
		amount numeric, due date, debt_id text)" \
		-c "CREATE TABLE t_pk (name text, government_id text, email text, amount numeric, due date,
		debt_id text PRIMARY KEY)" >/dev/null
	local s e l
	checkpoint
	l=$(load)
	s=$(now)
	psql -qX "$db" -c "\\copy t_serial (name, government_id, email, amount, due, debt_id) FROM '$big' CSV HEADER" >/dev/null
	e=$(now)
	echo "kind=copy_serial round=$1 s=$(echo "$e - $s" | bc) load=$l" >>"$res"
	checkpoint
	l=$(load)
	s=$(now)
	psql -qX "$db" -c "\\copy t_pk FROM '$uniq' CSV HEADER" >/dev/null
	e=$(now)
	echo "kind=copy_pk round=$1 s=$(echo "$e - $s" | bc) load=$l" >>"$res"
}

timed_sql() { # timed_sql KIND ROUND SQL: one psql command after a CHECKPOINT, timed
	local s e l
	checkpoint
	l=$(load)
	s=$(now)
	psql -qX "$db" -v ON_ERROR_STOP=1 -c "SET work_mem = '256MB'" -c "$3" >/dev/null || die "$1: psql failed"
	e=$(now)
	echo "kind=$1 round=$2 s=$(echo "$e - $s" | bc) load=$l" >>"$res"
}

floor_round() { # floor_round ROUND
	fresh_db
	"$rpcqd" migrate --database "$db" >"$bench_tmp/migrate.log" 2>&1 || die "rpcqd migrate failed"
	psql -qX "$db" -c "CREATE TABLE t_serial (id bigserial PRIMARY KEY, name text, government_id text, email text,
		amount numeric, due date, debt_id text)" \
		-c "CREATE TABLE floor_stage (line bigserial, name text, government_id text, email text, amount numeric,
		due date, debt_id text COLLATE \"C\")" >/dev/null
	timed_sql floor_copy_serial "$1" "\\copy t_serial (name, government_id, email, amount, due, debt_id) FROM '$big' CSV HEADER"
	timed_sql floor_stage "$1" "\\copy floor_stage (name, government_id, email, amount, due, debt_id) FROM '$big' CSV HEADER"
	timed_sql floor_debts "$1" "INSERT INTO billing_debts (debt_id, name, government_id, email, amount_cents, due_date,
		import_id, line) SELECT DISTINCT ON (debt_id) debt_id, name, government_id, email, (amount * 100)::int8, due, 1,
		line + 1 FROM floor_stage ORDER BY debt_id, line"
	timed_sql floor_bills "$1" "INSERT INTO billing_bills (debt, barcode, payment_line) SELECT id,
		lpad(id::text, 44, '0'), lpad(id::text, 54, '0') FROM billing_debts"
	timed_sql floor_outbox "$1" "INSERT INTO billing_notifications (debt, message_id) SELECT id,
		'<bill-' || id || '.0123456789abcdef@localhost>' FROM billing_debts"
	echo "kind=floor_rows round=$1 debts=$(psql -qAtX "$db" -c 'SELECT count(*) FROM billing_debts')" >>"$res"
}

rpcq_round() { # rpcq_round KIND ROUND FILE WAIT [rpcqd flags]
	local kind=$1 r=$2 file=$3 wait=$4
	shift 4
	fresh_db
	RPCQ_DATABASE_URL=$db bench_start_rpcqd --billing-schedule 1 "$@"
	local pid=$bench_pid hwm0 c0 p0 l s e off
	sleep 1
	checkpoint
	hwm0=$(kb "$pid" VmHWM) c0=$(ticks "$pid") p0=$(pg_ticks) l=$(load)
	off=$(stat -c %s "$pglog")
	s=$(now)
	"$cli" --server "$bench_rpc_url" --timeout $((mail_timeout * 1000)) billing import "$file" --wait "$wait" --json \
		>"$bench_tmp/$kind-$r.json" 2>"$bench_tmp/$kind-$r.err" || echo "kind=$kind round=$r cli_failed=1" >>"$res"
	e=$(now)
	echo "kind=$kind round=$r s=$(echo "$e - $s" | bc) start=$s end=$e load=$l load_end=$(load)" \
		"hwm0_kb=$hwm0 hwm_kb=$(kb "$pid" VmHWM) rss_kb=$(kb "$pid" VmRSS)" \
		"rpcqd_cpu_s=$(echo "($(ticks "$pid") - $c0) / 100" | bc -l) pg_cpu_s=$(echo "($(pg_ticks) - $p0) / 100" | bc -l)" \
		"bills=$(psql -qAtX "$db" -c 'SELECT count(*) FROM billing_bills')" \
		"sent=$(psql -qAtX "$db" -c 'SELECT count(*) FROM billing_notifications WHERE state = 2')" \
		"mail_span_s=$(psql -qAtX "$db" -c 'SELECT coalesce(extract(epoch FROM max(sent_at) - min(sent_at)), 0) FROM billing_notifications WHERE state = 2')" \
		>>"$res"
	tail -c "+$((off + 1))" "$pglog" >"$bench_tmp/pglog-$kind-$r.txt"
	kill "$pid" && wait "$pid" 2>/dev/null || true
}

echo "billing: $rows rows, $rounds round(s); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %H:%M UTC')" >&2
for step in $steps; do
	case $step in
	import)
		for ((r = 1; r <= rounds; r++)); do
			if ((r % 2)); then copy_round "$r" && rpcq_round rpcq "$r" "$big" bills; else rpcq_round rpcq "$r" "$big" bills && copy_round "$r"; fi
		done
		;;
	memory) rpcq_round small 1 "$small" bills ;;
	floor) for ((r = 1; r <= rounds; r++)); do floor_round "$r"; done ;;
	mail)
		port=$(bench_free_port)
		mkdir -p "$bench_tmp/sink"
		bench_spawn "$bench_tmp/sink.log" /usr/bin/python3 "$root/tests/integration/smtp_sink.py" --port "$port" --dir "$bench_tmp/sink"
		for ((i = 0; i < 100; i++)); do [[ -e $bench_tmp/sink/ready ]] && break; sleep 0.1; done
		rpcq_round mail 1 "$mailf" emails --smtp-url "smtp://127.0.0.1:$port"
		echo "kind=sink delivered=$(wc -l <"$bench_tmp/sink/log") distinct_message_ids=$(grep -rh '^Message-ID:' "$bench_tmp/sink/msgs" | sort -u | wc -l)" >>"$res"
		;;
	esac
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cat "$res"
if [[ -n $outdir ]]; then mkdir -p "$outdir" && cp "$bench_tmp"/*.txt "$bench_tmp"/*.json "$bench_tmp"/*.err "$outdir"/ 2>/dev/null || true; fi
python3 "$here/billing_report.py" "$bench_tmp" "$res"
