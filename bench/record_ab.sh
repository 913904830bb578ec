#!/usr/bin/env bash
# The bulk `record` against its anchor, alternated: single runs on a shared
# machine vary by a fifth from one minute to the next (the anchor too), so
# this runs, ROUNDS times, `sqlite3 .import` of the CSV into a table keyed by
# id (the anchor of bench/ledger.sh), then a bulk `record` of the same file
# into a fresh ledger by each binary given, each after a `sync`; it prints
# every run and, per binary, the median time and the median of its ratios to
# the anchor of the same round.
#
#   bench/record_ab.sh [--postgres] [--rounds R] [--lines N] BIN...
#
#   bench/record_ab.sh --rounds 5 stop19/costshare target/release/costshare
#
# --postgres records into a fresh database on 127.0.0.1:5432 (the anchor is
# still SQLite's import, as in bench/ledger.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=0
ROUNDS=5
N=1000000
while [[ $# -gt 0 ]]; do
  case $1 in
    --postgres) PG=1; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --lines) N=$2; shift 2 ;;
    *) break ;;
  esac
done
if [[ $# -eq 0 ]]; then echo "usage: bench/record_ab.sh [--postgres] [--rounds R] [--lines N] BIN..." >&2; exit 2; fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
W=$(mktemp -d)
DB="costshare_ab_$$"
cleanup() {
  rm -rf "$W"
  if [[ $PG == 1 ]]; then psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
python3 bench/gen_costs.py "$N" 42 > "$W/costs.csv"
A=examples/us-japan-sma-2022.toml
secs() { # run a command, print its wall seconds
  local t0=$EPOCHREALTIME
  "$@" > /dev/null 2> "$W/err" || { echo "FAILED: $*" >&2; cat "$W/err" >&2; exit 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
ledger() {
  if [[ $PG == 1 ]]; then
    PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
    echo "postgres://postgres@127.0.0.1:5432/$DB"
  else
    rm -f "$W"/l.db*
    echo "$W/l.db"
  fi
}
echo "bulk record of $N lines, $( [[ $PG == 1 ]] && echo PostgreSQL || echo SQLite ), $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A times ratios
for r in $(seq "$ROUNDS"); do
  rm -f "$W/anchor.db"
  sync
  a=$(secs sqlite3 "$W/anchor.db" \
    "CREATE TABLE costs (id TEXT PRIMARY KEY, date TEXT, category TEXT, amount TEXT, currency TEXT, quantity TEXT, site TEXT, description TEXT);" \
    ".mode csv" ".import --skip 1 $W/costs.csv costs")
  line="round $r: anchor $a s"
  for i in "${!BINS[@]}"; do
    b=${BINS[$i]}
    L=$(ledger)
    "$b" init "$L" --agreement "$A" > /dev/null
    sync
    t=$(secs "$b" record "$L" "$W/costs.csv")
    times[$i]+="$t "
    ratios[$i]+="$(awk -v t="$t" -v a="$a" 'BEGIN { printf "%.3f", t / a }') "
    line+="; $((i + 1)): $t s"
  done
  echo "$line"
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for i in "${!BINS[@]}"; do
  echo "$((i + 1)) ${BINS[$i]}: median $(echo "${times[$i]}" | median) s, median ratio to the anchor $(echo "${ratios[$i]}" | median)"
done
