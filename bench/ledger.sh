#!/usr/bin/env bash
# Ledger benchmark: record N lines into a new SQLite ledger, report from it
# (which replays the journal once and writes the derived state), then record
# late lines whose caps reset monthly, yearly and once a term, each taken in
# from the derived state, and report again. Prints wall seconds and peak
# memory (GNU time's maximum resident set size) for each step.
#
#   bench/ledger.sh [N]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
# COSTSHARE_BIN=PATH measures another build (e.g. the commit before a change)
if [[ -n ${COSTSHARE_BIN:-} ]]; then B=$(realpath "$COSTSHARE_BIN"); else cargo build --release -q; B=target/release/costshare; fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_costs.py "$N" 42 > "$W/costs.csv"
H='id,date,category,amount,currency,quantity,site,description'
printf '%s\nLATE-1,2023-06-15,labor,9000000,JPY,20,Okinawa,late payroll\n' "$H" > "$W/late-month.csv"
printf '%s\nLATE-2,2023-06-15,utilities,9000000,JPY,,Okinawa,late bill\n' "$H" > "$W/late-year.csv"
printf '%s\nLATE-3,2023-06-15,facilities,9000000,JPY,,Okinawa,late works\n' "$H" > "$W/late-term.csv"
step() {
  # wall time from bash's clock (milliseconds); peak memory from GNU time
  local name=$1; shift
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o "$W/t" "$@" > "$W/out" 2> "$W/err" || { cat "$W/err"; exit 1; }
  local t1=$EPOCHREALTIME
  read -r kb < "$W/t"
  printf '%-40s %9.3f s %8d MB\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" $((kb / 1024))
}
echo "costshare ledger benchmark: $N lines ($(du -h "$W/costs.csv" | cut -f1) of CSV), SQLite"
step "init" $B init "$W/l.db" --agreement examples/us-japan-sma-2022.toml
step "record $N lines" $B record "$W/l.db" "$W/costs.csv"
step "report --by party,category" $B report --ledger "$W/l.db" --by party,category --format csv
step "record the same file again (no-op)" $B record "$W/l.db" "$W/costs.csv"
step "report again (from the derived state)" $B report --ledger "$W/l.db" --by party,category --format csv
for kind in month year term; do
  step "late line, cap per $kind, --impact" $B record "$W/l.db" "$W/late-$kind.csv" --impact
  grep '^impact' "$W/out" | sed 's/^/    /'
done
step "report after the late lines" $B report --ledger "$W/l.db" --by party,category --format csv
step "verify" $B verify "$W/l.db"
echo "ledger file: $(du -h "$W/l.db" | cut -f1)"
