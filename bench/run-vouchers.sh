#!/usr/bin/env bash
# Vouchers benchmark (issue 12), on one throwaway PostgreSQL cluster:
#
#   1. import: rpcq-vouchers-bench import (StartImport, the two files in
#      1 MiB chunks, FinishImport; upload and FinishImport timed apart) into
#      a fresh migrated database, next to a bare COPY of the same two files
#      (psql \copy, one transaction) into tables with the indexes of the
#      stock's (bench/vouchers_copy.sql) in another fresh database, order
#      alternating by round; with -L also `rpcq vouchers import` (the CLI)
#      into a third. PostgreSQL logs every statement of 200 ms or more
#      (log_min_duration_statement): the apply statements' times are read
#      from that log.
#   2. reports on the last imported stock: rpcq-vouchers-bench reports
#      (ListVouchers first page, a page from the middle of the order through
#      page_token, one customer's, TopCustomers 5 and 100, CountUnused),
#      median of CALLS each, plus EXPLAIN (ANALYZE, BUFFERS) of the page
#      statements into the kept output.
#   3. issue: a stock of unused barcodes imported on top (ISSUE_STOCK rows,
#      generated with --orders 0 --unused-pct 100), then for each caller
#      count, ROUNDS times in alternating order: rpcq-load --method
#      IssueVouchers (quantity 2; customers spread: '"customer_id":"%d"' with
#      --vary CUSTOMERS, or all calls for one customer with -1) and pgbench
#      running bench/vouchers_issue.sql (the same statements, -M prepared,
#      customers at random over the same range, or the one customer) at the
#      same client count; and pgbench of bench/vouchers_floor.sql (SELECT 1:
#      the same one round trip doing nothing), the ceiling of any
#      one-statement transaction on this machine. With -4 also pgbench of
#      bench/vouchers_issue4.sql (the issue as four round trips, BEGIN,
#      voucher_issue, stream_append, COMMIT, as rpcqd sent it before
#      migration 0007) and of its floor, bench/vouchers_floor4.sql.
#
#   bench/run-vouchers.sh [-s ORDERSxBARCODES (1000000x5000000)] [-C CUSTOMERS (200000)]
#       [-i IMPORT_ROUNDS (1)] [-n REPORT_CALLS (20)] [-r ISSUE_ROUNDS (2)] [-d SECONDS (5)]
#       [-c "CALLERS" ("1 8 32")] [-k ISSUE_STOCK (2000000)] [-1] [-4] [-L] [-o OUTDIR]
#       [-S STEPS ("import reports issue")]
#
# Environment: BUILD (default build), RPCQD, RPCQ_CLI, RPCQ_LOAD,
# RPCQ_VOUCHERS_GEN, RPCQ_VOUCHERS_BENCH (default: in BUILD), RPCQD_FLAGS
# (more `rpcqd serve` flags, e.g. "--workers 8"), BENCH_DATA (where the
# generated files are kept between runs; default: the scratch directory).
# With -o the raw results, the PostgreSQL log, rpcqd's logs and the EXPLAIN
# output are copied to OUTDIR. Prints markdown tables for bench/README.md;
# exit status 0 when every goal is met (import <= 2x the COPY, each report
# < 100 ms, >= 5000 issues/s at 32 callers with p99 <= 20 ms), 3 when one is
# not, 1 when something failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
rpcqd=${RPCQD:-$build/server/rpcqd}
cli=${RPCQ_CLI:-$build/client/cli/rpcq}
load=${RPCQ_LOAD:-$build/bench/rpcq-load}
gen=${RPCQ_VOUCHERS_GEN:-$build/bench/rpcq-vouchers-gen}
vb=${RPCQ_VOUCHERS_BENCH:-$build/bench/rpcq-vouchers-bench}
size=1000000x5000000
customers=200000
import_rounds=1
report_calls=20
issue_rounds=2
seconds=5
callers="1 8 32"
issue_stock=2000000
one_customer=0
four=0
with_cli=0
outdir=""
steps="import reports issue"

usage() {
	sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "s:C:i:n:r:d:c:k:14Lo:S:h" o; do
	case $o in
	s) size=$OPTARG ;;
	C) customers=$OPTARG ;;
	i) import_rounds=$OPTARG ;;
	n) report_calls=$OPTARG ;;
	r) issue_rounds=$OPTARG ;;
	d) seconds=$OPTARG ;;
	c) callers=$OPTARG ;;
	k) issue_stock=$OPTARG ;;
	1) one_customer=1 ;;
	4) four=1 ;;
	L) with_cli=1 ;;
	o) outdir=$OPTARG ;;
	S) steps=$OPTARG ;;
	*) usage ;;
	esac
done

die() {
	echo "run-vouchers: $*" >&2
	exit 1
}

[[ $size =~ ^([0-9]+)x([0-9]+)$ ]] || die "-s is ORDERSxBARCODES, not $size"
n_orders=${BASH_REMATCH[1]}
n_barcodes=${BASH_REMATCH[2]}
for p in "$rpcqd" "$load" "$gen" "$vb"; do
	[[ -x $p ]] || die "$p not found (build with RPCQ_BENCH on, or set BUILD)"
done
((with_cli == 0)) || [[ -x $cli ]] || die "rpcq not found at $cli"
command -v psql >/dev/null || die "psql not found"
command -v pgbench >/dev/null || [[ $steps != *issue* ]] || die "pgbench not found (postgresql-client)"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
tmp=$bench_tmp
data=${BENCH_DATA:-$tmp/data}
results=$tmp/results
: >"$results"

save() {
	[[ -n $outdir ]] || return 0
	mkdir -p "$outdir"
	cp -f "$results" "$tmp"/*.log "$tmp"/*.txt "$outdir"/ 2>/dev/null || true
	cp -f "$bench_pgdir/postgres.log" "$outdir/postgres.log" 2>/dev/null || true
}

stop() {
	local p=$1 i
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for i in "${!bench_pids[@]}"; do
		[[ ${bench_pids[i]} == "$p" ]] && unset 'bench_pids[i]'
	done
	return 0
}

load_avg() {
	cut -d' ' -f1 /proc/loadavg
}

# The generated files: the stock to import, and the unused stock for issues.
gen_files() {
	local dir=$1
	shift
	if [[ -f $dir/args && $(cat "$dir/args") == "$*" && -f $dir/barcodes.csv ]]; then
		echo "  reusing $dir ($*)" >&2
		return 0
	fi
	mkdir -p "$dir"
	"$gen" "$@" --out "$dir" 2>"$dir/gen.txt" || die "rpcq-vouchers-gen $* failed: $(cat "$dir/gen.txt")"
	echo "$*" >"$dir/args"
	echo "  $(cat "$dir/gen.txt")" >&2
}

echo "vouchers: $size, $customers customers; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg);" \
	"$(date -u '+%Y-%m-%d %H:%M UTC')" >&2
gen_files "$data/stock" --orders "$n_orders" --barcodes "$n_barcodes" --customers "$customers" --seed 1
# Past every barcode of the first file (its barcodes are below 10^10 + 2^36).
gen_files "$data/unused" --orders 0 --barcodes "$issue_stock" --unused-pct 100 --dup-pct 0 --seed 2 \
	--first-barcode 78719476736
bytes=$(($(wc -c <"$data/stock/orders.csv") + $(wc -c <"$data/stock/barcodes.csv")))

bench_pgdir=$tmp/pg
cluster=$(RPCQ_PG_OWNER_PID=$$ "$root/scripts/pg" start "$bench_pgdir") || die "scripts/pg start failed"
psql -qX "$cluster" -c "ALTER SYSTEM SET log_min_duration_statement = 200" -c "SELECT pg_reload_conf()" >/dev/null
pglog=$bench_pgdir/postgres.log

# new_db NAME: a fresh migrated database; prints its conninfo.
new_db() {
	psql -qX "$cluster" -c "CREATE DATABASE $1" >/dev/null || die "CREATE DATABASE $1 failed"
	local db
	db=$(sed -E "s/dbname=[^ ]+/dbname=$1/" <<<"$cluster")
	"$rpcqd" migrate --database "$db" >"$tmp/migrate.log" 2>&1 || {
		cat "$tmp/migrate.log" >&2
		die "rpcqd migrate failed"
	}
	echo "$db"
}

# start_rpcqd DB NAME: sets rpcqd_pid and rpc_url.
start_rpcqd() {
	local rpc_port pub_port
	rpc_port=$(bench_free_port)
	pub_port=$(bench_free_port)
	rpc_url=tcp://127.0.0.1:$rpc_port
	# shellcheck disable=SC2086 # RPCQD_FLAGS is a list of flags
	bench_spawn "$tmp/rpcqd-$2.log" "$rpcqd" serve --listen "$rpc_url" --publish "tcp://127.0.0.1:$pub_port" \
		--http "" --database "$1" ${RPCQD_FLAGS:-}
	rpcqd_pid=$bench_pid
	bench_wait_port "$rpc_port" "$rpcqd_pid" "$tmp/rpcqd-$2.log" rpcqd
}

# The apply statements' durations from the log lines since byte $1 of it,
# one result line per statement name (summed).
log_statements() {
	local from=$1 round=$2
	tail -c +"$((from + 1))" "$pglog" | python3 -c '
import re, sys
tot = {}
for line in sys.stdin:
    m = re.search(r"duration: ([0-9.]+) ms  (?:execute (\w+)|statement: (ANALYZE \w+|COMMIT|COPY\s+\w+))", line)
    if m:
        name = m.group(2) or re.sub(r"\s+", "_", m.group(3))
        tot[name] = tot.get(name, 0) + float(m.group(1))
for k, v in tot.items():
    print(f"kind=stmt round={sys.argv[1]} name={k} ms={v:.0f}")
' "$round" >>"$results"
}

run_copy() {
	local r=$1 db t0 t1 from
	db=$(new_db "copy_$r")
	psql -qX "$db" -v ON_ERROR_STOP=1 -f "$here/vouchers_copy.sql" >/dev/null 2>&1 || die "vouchers_copy.sql failed"
	from=$(stat -c %s "$pglog")
	local la
	la=$(load_avg)
	t0=$EPOCHREALTIME
	psql -qX "$db" -v ON_ERROR_STOP=1 -c "BEGIN" \
		-c "\\copy bench_copy_orders (order_id, customer_id) FROM '$data/stock/orders.csv' (FORMAT csv, HEADER)" \
		-c "\\copy bench_copy_barcodes (barcode, order_id) FROM '$data/stock/barcodes.csv' (FORMAT csv, HEADER)" \
		-c "COMMIT" >/dev/null || die "the bare COPY failed"
	t1=$EPOCHREALTIME
	echo "kind=copy round=$r seconds=$(python3 -c "print(f'{$t1 - $t0:.3f}')") load=$la" >>"$results"
	echo "  bare COPY: $(tail -n 1 "$results" | cut -d' ' -f3-)" >&2
	log_statements "$from" "copy$r"
	psql -qX "$cluster" -c "DROP DATABASE copy_$r" >/dev/null
}

run_import() {
	local r=$1 db from out la
	db=$(new_db "stock_$r")
	start_rpcqd "$db" "import-$r"
	from=$(stat -c %s "$pglog")
	la=$(load_avg)
	out=$("$vb" import --url "$rpc_url" --orders "$data/stock/orders.csv" --barcodes "$data/stock/barcodes.csv") ||
		die "the import failed"
	echo "kind=import round=$r load=$la $out" >>"$results"
	log_statements "$from" "import$r"
	echo "  import: $out" >&2
	stop "$rpcqd_pid"
	last_db=$db
}

run_cli() {
	local r=$1 db t0 t1 la
	db=$(new_db "cli_$r")
	start_rpcqd "$db" "cli-$r"
	la=$(load_avg)
	t0=$EPOCHREALTIME
	"$cli" --server "$rpc_url" vouchers import --orders "$data/stock/orders.csv" \
		--barcodes "$data/stock/barcodes.csv" >"$tmp/cli-$r.txt" 2>&1 || die "rpcq vouchers import failed"
	t1=$EPOCHREALTIME
	echo "kind=cli round=$r seconds=$(python3 -c "print(f'{$t1 - $t0:.3f}')") load=$la" >>"$results"
	echo "  rpcq vouchers import: $(tail -n 1 "$results" | cut -d' ' -f3-)" >&2
	stop "$rpcqd_pid"
	psql -qX "$cluster" -c "DROP DATABASE cli_$r" >/dev/null
}

last_db=""
if [[ $steps == *import* ]]; then
	for ((r = 0; r < import_rounds; r++)); do
		echo "import round $r:" >&2
		if ((r % 2 == 0)); then
			run_copy "$r"
			run_import "$r"
		else
			run_import "$r"
			run_copy "$r"
		fi
		((with_cli == 0)) || run_cli "$r"
		# Keep only the last stock (for the reports and issues).
		if ((r + 1 < import_rounds)); then
			psql -qX "$cluster" -c "DROP DATABASE stock_$r" >/dev/null
		fi
	done
fi
if [[ -z $last_db ]]; then
	# Reports and issues without the timed import: import once, untimed.
	last_db=$(new_db stock_x)
	start_rpcqd "$last_db" import-x
	"$vb" import --url "$rpc_url" --orders "$data/stock/orders.csv" --barcodes "$data/stock/barcodes.csv" \
		>/dev/null || die "the import failed"
	stop "$rpcqd_pid"
fi
save

if [[ $steps == *reports* ]]; then
	echo "reports:" >&2
	psql -qX "$last_db" -c "VACUUM ANALYZE" >/dev/null
	start_rpcqd "$last_db" reports
	token=$(psql -qXAt "$last_db" -c "SELECT order_id FROM voucher_orders ORDER BY customer_key, customer_id,
		order_key, order_id OFFSET (SELECT count(*) / 2 FROM voucher_orders) LIMIT 1")
	# The customer with the most orders: the largest one-customer listing.
	customer=$(psql -qXAt "$last_db" -c "SELECT customer_id FROM voucher_orders GROUP BY customer_id
		ORDER BY count(*) DESC, customer_id LIMIT 1")
	la=$(load_avg)
	"$vb" reports --url "$rpc_url" -n "$report_calls" --token "$token" --customer "$customer" >"$tmp/reports.txt" ||
		die "the reports failed"
	sed "s/^/kind=report load=$la /" "$tmp/reports.txt" >>"$results"
	sed 's/^/  /' "$tmp/reports.txt" >&2
	stop "$rpcqd_pid"
	{
		echo "-- ListVouchers, first page (1001 orders, at most 100,001 barcodes)"
		psql -qX "$last_db" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT o.customer_id, o.order_id, b.barcode, b.pos FROM
			(SELECT o.order_id, o.customer_id, o.customer_key, o.order_key FROM voucher_orders o
			WHERE EXISTS (SELECT 1 FROM voucher_barcodes x WHERE x.order_id = o.order_id)
			ORDER BY o.customer_key, o.customer_id, o.order_key, o.order_id LIMIT 1001) o
			JOIN voucher_barcodes b ON b.order_id = o.order_id
			ORDER BY o.customer_key, o.customer_id, o.order_key, o.order_id, b.pos LIMIT 100001"
		echo "-- ListVouchers of customer $customer"
		psql -qX "$last_db" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT o.customer_id, o.order_id, b.barcode, b.pos FROM
			(SELECT o.order_id, o.customer_id, o.customer_key, o.order_key FROM voucher_orders o
			WHERE o.customer_key = voucher_sort_key('$customer') AND o.customer_id = '$customer'
			AND EXISTS (SELECT 1 FROM voucher_barcodes x WHERE x.order_id = o.order_id)
			ORDER BY o.customer_key, o.customer_id, o.order_key, o.order_id LIMIT 1001) o
			JOIN voucher_barcodes b ON b.order_id = o.order_id
			ORDER BY o.customer_key, o.customer_id, o.order_key, o.order_id, b.pos LIMIT 100001"
	} >"$tmp/explain-reports.txt" 2>&1
	save
fi

if [[ $steps == *issue* ]]; then
	echo "issue: importing $issue_stock unused barcodes" >&2
	start_rpcqd "$last_db" issue
	"$vb" import --url "$rpc_url" --orders "$data/unused/orders.csv" --barcodes "$data/unused/barcodes.csv" \
		>"$tmp/unused-import.txt" || die "the unused stock's import failed"
	psql -qX "$last_db" -c "VACUUM ANALYZE voucher_barcodes" >/dev/null
	if ((one_customer)); then
		json='{"customer_id":"1","quantity":2}'
		vary=1
		pg_customers=1
	else
		json='{"customer_id":"%d","quantity":2}'
		vary=$customers
		pg_customers=$customers
	fi
	# pgbench's connections, without rpcqd's pool settings: plain conninfo.
	pg_port=$(cat "$bench_pgdir/port")
	run_rpcq() {
		local c=$1 r=$2 out la
		la=$(load_avg)
		out=$("$load" rpcq --url "$rpc_url" --method rpcq.vouchers.VoucherService/IssueVouchers --json "$json" \
			--vary "$vary" -c "$c" -d "$seconds" -w 1) || die "rpcq-load IssueVouchers failed"
		echo "kind=issue side=rpcq callers=$c round=$r load=$la $out" >>"$results"
		echo "  rpcq $c: $out" >&2
	}
	# run_pgbench CALLERS ROUND [SIDE SCRIPT]: pgbench of vouchers_issue.sql (or of
	# vouchers_floor.sql: the same round trips doing nothing).
	run_pgbench() {
		local c=$1 r=$2 side=${3:-pgbench} script=${4:-$here/vouchers_issue.sql} la j
		j=$((c < 2 ? 1 : 2))
		la=$(load_avg)
		rm -rf "$tmp/pgb" && mkdir -p "$tmp/pgb"
		(cd "$tmp/pgb" && pgbench -h 127.0.0.1 -p "$pg_port" -U rpcq -n -M prepared -c "$c" -j "$j" \
			-T "$seconds" -f "$script" -D quantity=2 -D customers="$pg_customers" -l \
			"${last_db##*dbname=}" >"$tmp/pgbench.txt" 2>&1) || {
			cat "$tmp/pgbench.txt" >&2
			die "pgbench failed"
		}
		python3 - "$tmp/pgb" "$c" "$r" "$la" "$tmp/pgbench.txt" "$side" >>"$results" <<'PY'
import glob, re, sys
lat = []
for f in glob.glob(sys.argv[1] + "/pgbench_log.*"):
    for line in open(f):
        p = line.split()
        if len(p) >= 3 and p[2].isdigit():
            lat.append(int(p[2]))
lat.sort()
tps = re.search(r"tps = ([0-9.]+) \(without initial", open(sys.argv[5]).read()).group(1)
pct = lambda q: lat[min(len(lat) - 1, max(0, int(q * len(lat) + 0.999999) - 1))] if lat else 0
fails = re.search(r"number of failed transactions: (\d+)", open(sys.argv[5]).read())
print(f"kind=issue side={sys.argv[6]} callers={sys.argv[2]} round={sys.argv[3]} load={sys.argv[4]} calls={len(lat)} "
      f"calls_per_s={float(tps):.0f} p50_us={pct(0.5)} p99_us={pct(0.99)} errors={fails.group(1) if fails else 0}")
PY
		echo "  $side $c: $(tail -n 1 "$results" | cut -d' ' -f5-)" >&2
	}
	for ((r = 0; r < issue_rounds; r++)); do
		for c in $callers; do
			if (((r + c) % 2 == 0)); then
				run_rpcq "$c" "$r"
				run_pgbench "$c" "$r"
			else
				run_pgbench "$c" "$r"
				run_rpcq "$c" "$r"
			fi
			run_pgbench "$c" "$r" floor "$here/vouchers_floor.sql"
			if ((four)); then
				run_pgbench "$c" "$r" pgbench4 "$here/vouchers_issue4.sql"
				run_pgbench "$c" "$r" floor4 "$here/vouchers_floor4.sql"
			fi
		done
	done
	psql -qXAt "$last_db" -c "SELECT 'kind=check sold_twice=' || (SELECT count(*) FROM (SELECT barcode FROM
		voucher_barcodes GROUP BY barcode HAVING count(*) > 1) d) || ' unused=' || (SELECT count(*) FROM
		voucher_barcodes WHERE order_id IS NULL) || ' stock_unused=' || (SELECT sum(unused) FROM voucher_stock)" \
		>>"$results"
	stop "$rpcqd_pid"
	save
fi

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
save
status=0
python3 - "$results" "$bytes" <<'PY' || status=$?
import re
import statistics as st
import sys

rows = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in open(sys.argv[1])]
get = lambda kind, **kw: [r for r in rows if r["kind"] == kind and all(r.get(k) == str(v) for k, v in kw.items())]
med = lambda xs: st.median(xs) if xs else float("nan")
below = False

imports, copies, clis = get("import"), get("copy"), get("cli")
if imports:
    print(f"| step | seconds (median of {len(imports)}) | vs bare COPY | load average at start |")
    print("|---|---:|---:|---:|")
    cp = med([float(r["seconds"]) for r in copies])
    ratio = med([float(i["total_s"]) / float(c["seconds"]) for i, c in zip(imports, copies)])
    below |= ratio > 2
    print(f"| bare COPY of both files (psql \\copy, indexed tables) | {cp:.1f} | 1.00× | "
          f"{', '.join(r['load'] for r in copies)} |")
    up = med([float(r["upload_s"]) for r in imports])
    fin = med([float(r["finish_s"]) for r in imports])
    tot = med([float(r["total_s"]) for r in imports])
    la = ", ".join(r["load"] for r in imports)
    print(f"| import: StartImport + chunks (upload) | {up:.1f} | {up / cp:.2f}× | {la} |")
    print(f"| import: FinishImport | {fin:.1f} | {fin / cp:.2f}× | |")
    print(f"| **import total** | **{tot:.1f}** | **{ratio:.2f}×** ({'meets' if ratio <= 2 else 'below'} ≤2×) | |")
    if clis:
        c = med([float(r["seconds"]) for r in clis])
        print(f"| `rpcq vouchers import` (CLI) | {c:.1f} | {c / cp:.2f}× | {', '.join(r['load'] for r in clis)} |")
    i0 = imports[-1]
    print(f"\n{int(sys.argv[2]):,} bytes; counts of the last import: " + ", ".join(
        f"{k} {int(v):,}" for k, v in i0.items() if k.startswith(("orders_", "barcodes_")) or k == "rejections"))
    print("\n| statement (PostgreSQL log, ≥ 200 ms) | ms |")
    print("|---|---:|")
    for r in get("stmt"):
        print(f"| {r['round']}: {r['name']} | {int(r['ms']):,} |")

reps = get("report")
if reps:
    print("\n| report | calls | p50 ms | min ms | max ms | items | goal (< 100 ms) |")
    print("|---|---:|---:|---:|---:|---:|:---|")
    for r in reps:
        ok = float(r["p50_ms"]) < 100
        below |= not ok
        print(f"| {r['report']} | {r['calls']} | {float(r['p50_ms']):.1f} | {float(r['min_ms']):.1f} "
              f"| {float(r['max_ms']):.1f} | {r['items']} | {'meets' if ok else 'below'} |")

iss = get("issue")
if iss:
    four = bool(get("issue", side="pgbench4"))
    print("\n| callers | rpcq issues/s | pgbench issues/s | rpcq/pgbench | rpcq p50 ms | rpcq p99 ms "
          "| pgbench p50 ms | pgbench p99 ms | floor tx/s | rpcq/floor |"
          + (" pgbench 4-RT issues/s | floor 4-RT tx/s |" if four else "")
          + " load averages | goal at 32 (≥5000/s, p99 ≤ 20 ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if four else "") + "---|:---|")
    for c in dict.fromkeys(r["callers"] for r in iss):
        a, b = get("issue", side="rpcq", callers=c), get("issue", side="pgbench", callers=c)
        m = lambda rs, k: med([float(r[k]) for r in rs])
        ratio = med([float(x["calls_per_s"]) / float(y["calls_per_s"]) for x, y in zip(a, b)])
        fl = get("issue", side="floor", callers=c)
        fratio = med([float(x["calls_per_s"]) / float(y["calls_per_s"]) for x, y in zip(a, fl)])
        extra = ""
        if four:
            extra = (f" {m(get('issue', side='pgbench4', callers=c), 'calls_per_s'):.0f} "
                     f"| {m(get('issue', side='floor4', callers=c), 'calls_per_s'):.0f} |")
        goal = ""
        if c == "32":
            ok = m(a, "calls_per_s") >= 5000 and m(a, "p99_us") <= 20000
            below |= not ok
            goal = "meets" if ok else "below"
        print(f"| {c} | {m(a, 'calls_per_s'):.0f} | {m(b, 'calls_per_s'):.0f} | {ratio:.2f} "
              f"| {m(a, 'p50_us') / 1e3:.2f} | {m(a, 'p99_us') / 1e3:.2f} | {m(b, 'p50_us') / 1e3:.2f} "
              f"| {m(b, 'p99_us') / 1e3:.2f} | {m(fl, 'calls_per_s'):.0f} | {fratio:.2f} |{extra}"
              f" {', '.join(r['load'] for r in a + b)} | {goal} |")
    for r in get("check"):
        print(f"\nafter the issues: {r['sold_twice']} barcodes stored twice, {r['unused']} unused "
              f"(voucher_stock says {r['stock_unused']})")
sys.exit(3 if below else 0)
PY
exit "$status"
