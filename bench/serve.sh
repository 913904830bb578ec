#!/usr/bin/env bash
# Server load benchmark (issue 11): `costshare serve` on loopback under
# 32 concurrent clients (wrk), on a ledger of LINES lines.
#
#   bench/serve.sh [LINES]                 SQLite (default 1000000 lines)
#   bench/serve.sh --postgres [LINES]      PostgreSQL: a fresh database on
#                                          postgres://postgres@127.0.0.1:5432
#
# Steps: build (release), generate LINES lines with bench/gen_costs.py (the
# generator of bench/ledger.sh), init + record them, create a viewer and a
# recorder token, start the server, time the first report (it may replay the
# journal and write the derived state) and a second one, then two wrk runs,
# each bounded in time (SERVE_BENCH_SECONDS, default 20) and, for the
# writes, in count (SERVE_BENCH_MAX_RECORDS, default 20000):
#
#   report   GET  /api/v1/report?by=party,fiscal_year&format=csv
#   record   POST /api/v1/costs, one new line per request (bench/serve-record.lua)
#
# and prints requests per second, p50 and p99 latency and the errors. Then
# it checks the ledger: the line count went up by exactly the number of
# records answered, the served report equals `costshare report`, and
# `costshare verify` passes. Exits non-zero on any error (a non-2xx answer,
# a socket error, a write that did not record one line, a check failing).
# A third run mixes them: CONNS-1 clients read the report while one client
# records lines (each write moves the head, so reports are computed again).
#
# Environment: COSTSHARE_BIN=PATH measures another build; SERVE_BENCH_CONNS
# (32), SERVE_BENCH_THREADS (2), SERVE_BENCH_CATEGORY (welfare: uncapped;
# utilities, labor, facilities tie a late line to its cap period's lines).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=0
if [[ ${1:-} == --postgres ]]; then PG=1; shift; fi
N=${1:-1000000}
SECS=${SERVE_BENCH_SECONDS:-20}
MAXREC=${SERVE_BENCH_MAX_RECORDS:-20000}
CONNS=${SERVE_BENCH_CONNS:-32}
THREADS=${SERVE_BENCH_THREADS:-2}
CATEGORY=${SERVE_BENCH_CATEGORY:-welfare}
command -v wrk > /dev/null || { echo "serve.sh needs wrk (apt-get install -y wrk)" >&2; exit 2; }
command -v curl > /dev/null || { echo "serve.sh needs curl" >&2; exit 2; }
if [[ -n ${COSTSHARE_BIN:-} ]]; then B=$(realpath "$COSTSHARE_BIN"); else cargo build --release -q -p costshare-cli; B=target/release/costshare; fi
W=$(mktemp -d)
SERVER=
DB=
cleanup() {
  if [[ -n $SERVER ]]; then kill "$SERVER" 2> /dev/null || true; wait "$SERVER" 2> /dev/null || true; fi
  if [[ -n $DB ]]; then psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" > /dev/null 2>&1 || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
step() {
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@" > "$W/out" 2> "$W/err" || { cat "$W/err" >&2; exit 1; }
  printf '%-44s %9s ms\n' "$name" "$(ms "$t0" "$EPOCHREALTIME")"
}

if [[ $PG == 1 ]]; then
  DB=costshare_serve_bench_$$
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" > /dev/null
  L=postgres://postgres@127.0.0.1:5432/$DB
  KIND=PostgreSQL
else
  L=$W/l.db
  KIND=SQLite
fi
echo "costshare server benchmark: $N lines, $KIND, $CONNS connections, $THREADS wrk threads, ${SECS}s per run"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo); $(date -u '+%Y-%m-%d %H:%M UTC'); binary $B"
python3 bench/gen_costs.py "$N" 42 > "$W/costs.csv"
step "init" "$B" init "$L" --agreement examples/us-japan-sma-2022.toml
step "record $N lines (CLI)" "$B" record "$L" "$W/costs.csv"
VIEW=$("$B" token create "$L" --role viewer --name bench-viewer | tail -1)
REC=$("$B" token create "$L" --role recorder --name bench-recorder | tail -1)

# the server, quiet (no log line per request); its first line names the port
"$B" serve "$L" --listen 127.0.0.1:0 --quiet > "$W/serve.out" 2> "$W/serve.err" &
SERVER=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$W/serve.out" 2> /dev/null && break
  kill -0 "$SERVER" 2> /dev/null || { cat "$W/serve.err" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$W/serve.out" | head -1)
[[ -n $URL ]] || { echo "the server did not say where it listens" >&2; cat "$W/serve.err" >&2; exit 1; }
echo "server: $URL (pid $SERVER)"
REPORT="/api/v1/report?by=party,fiscal_year&format=csv"

get() { # get NAME PATH TOKEN: one timed request, the body kept in $W/body, fails on non-2xx
  local code
  code=$(curl -s -o "$W/body" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $3" "$URL$2")
  [[ ${code%% *} == 2* ]] || { echo "$1: HTTP ${code%% *}" >&2; cat "$W/body" >&2; exit 1; }
  printf '%-44s %9.1f ms\n' "$1" "$(awk -v t="${code#* }" 'BEGIN { print t * 1000 }')"
}
lines() { # the ledger's line count, from /api/v1/info
  curl -sf -H "Authorization: Bearer $VIEW" "$URL/api/v1/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["lines"])'
}
get "first report (replay, writes derived state)" "$REPORT" "$VIEW"
get "second report (cached at this head)" "$REPORT" "$VIEW"
"$B" report --ledger "$L" --by party,fiscal_year --format csv > "$W/cli.csv"
cmp -s "$W/body" "$W/cli.csv" || { echo "the served report differs from costshare report" >&2; diff "$W/body" "$W/cli.csv" | head >&2; exit 1; }
echo "served report = costshare report (byte for byte)"
BEFORE=$(lines)

# parse wrk's --latency output into one line; fail on errors
summarize() { # summarize NAME FILE
  awk -v name="$1" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +75%/ { p75 = ms($2) } /^ +90%/ { p90 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx or 3xx responses/ { non2xx = $NF }
    /Socket errors/ { sockerr = $0 }
    END {
      printf "%-15s %8d requests %9.1f req/s   p50 %7.2f ms   p75 %7.2f ms   p90 %7.2f ms   p99 %7.2f ms   non-2xx %d\n", name, n, rps, p50, p75, p90, p99, non2xx
      if (sockerr != "") { print "  " sockerr }
      if (non2xx + 0 > 0 || sockerr != "" || n + 0 == 0) exit 1
    }' "$2"
}
FAIL=0
echo "load: $(uptime | sed 's/.*load average/load average/')"
wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s --latency \
  -H "Authorization: Bearer $VIEW" "$URL$REPORT" > "$W/wrk-report.txt"
summarize report "$W/wrk-report.txt" || FAIL=1

echo "load: $(uptime | sed 's/.*load average/load average/')"
RUN=$$-$(date +%s)
# wrk's threads each stop after MAXREC/THREADS answers
SERVE_BENCH_TOKEN=$REC SERVE_BENCH_RUN=$RUN SERVE_BENCH_CATEGORY=$CATEGORY SERVE_BENCH_MAX=$(((MAXREC + THREADS - 1) / THREADS)) \
  wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s --latency -s bench/serve-record.lua "$URL/" > "$W/wrk-record.txt"
summarize "record" "$W/wrk-record.txt" || FAIL=1
CHECKED=$(sed -n 's/^checked answers: //p' "$W/wrk-record.txt")
echo "  record answers checked: $CHECKED"
[[ $CHECKED == *"non-2xx: 0, 2xx not recording one line: 0" ]] || FAIL=1
echo "load: $(uptime | sed 's/.*load average/load average/')"

# mixed: CONNS-1 clients read the report while one records lines; every
# write moves the journal's head, so the next report is computed again
SERVE_BENCH_TOKEN=$REC SERVE_BENCH_RUN=$RUN-mixed SERVE_BENCH_CATEGORY=$CATEGORY SERVE_BENCH_MAX=$MAXREC \
  wrk -t1 -c1 -d"${SECS}s" --timeout 10s --latency -s bench/serve-record.lua "$URL/" > "$W/wrk-mixed-record.txt" &
MIXW=$!
wrk -t"$THREADS" -c$((CONNS - 1)) -d"${SECS}s" --timeout 10s --latency \
  -H "Authorization: Bearer $VIEW" "$URL$REPORT" > "$W/wrk-mixed-report.txt"
wait "$MIXW"
summarize "mixed: report" "$W/wrk-mixed-report.txt" || FAIL=1
summarize "mixed: record" "$W/wrk-mixed-record.txt" || FAIL=1
MIXED=$(sed -n 's/^checked answers: //p' "$W/wrk-mixed-record.txt")
echo "  record answers checked: $MIXED"
[[ $MIXED == *"non-2xx: 0, 2xx not recording one line: 0" ]] || FAIL=1
echo "load: $(uptime | sed 's/.*load average/load average/')"

# writes still queued in the server when wrk stopped land now: wait until
# the journal's head stays put for a second
entries() { curl -sf -H "Authorization: Bearer $VIEW" "$URL/api/v1/whoami" | python3 -c 'import json, sys; print(json.load(sys.stdin)["journal"]["entries"])'; }
t0=$EPOCHREALTIME; prev=$(entries)
while sleep 1; do now=$(entries); [[ $now == "$prev" ]] && break; prev=$now; done
echo "writes settled $(ms "$t0" "$EPOCHREALTIME") ms after wrk stopped"
get "first report after the writes" "$REPORT" "$VIEW"
get "second report after the writes" "$REPORT" "$VIEW"
AFTER=$(lines)
ANSWERED=$((${CHECKED%%,*} + ${MIXED%%,*}))
# wrk counts answers, not requests still in flight when it stops; an
# unanswered POST may have landed, so the count may exceed the answers by at
# most one per connection
ADDED=$((AFTER - BEFORE))
echo "lines: $BEFORE before, $AFTER after: $ADDED added for $ANSWERED answered writes"
if ((ADDED < ANSWERED || ADDED > ANSWERED + CONNS)); then echo "line count off" >&2; FAIL=1; fi
kill "$SERVER"; wait "$SERVER" 2> /dev/null || true; SERVER=
"$B" report --ledger "$L" --by party,fiscal_year --format csv > "$W/cli.csv"
cmp -s "$W/body" "$W/cli.csv" || { echo "the served report after the writes differs from costshare report" >&2; FAIL=1; }
step "verify (CLI, server stopped)" "$B" verify "$L"
if [[ -n ${SERVE_BENCH_KEEP:-} ]]; then cp "$W"/wrk-*.txt "$SERVE_BENCH_KEEP"/; fi
if [[ $FAIL != 0 ]]; then echo "FAILED: errors above" >&2; exit 1; fi
echo "ok: zero errors"
