#!/usr/bin/env bash
# Which ledger reads use the derived state: each read on an N-line SQLite ledger (default
# 100000; bench/gen_costs.py, recorded in one file, so the derived state is fresh), the best of
# three runs in wall seconds, as it runs and with COSTSHARE_LEDGER_PATH=replay (a forced
# replay). A read whose two times are equal replays the journal either way.
#
#   bench/ledger_reads.sh [N]
#
# COSTSHARE_BIN=PATH measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
if [[ -n ${COSTSHARE_BIN:-} ]]; then B=$(realpath "$COSTSHARE_BIN"); else cargo build --release -q; B=target/release/costshare; fi
E=$PWD/examples
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_costs.py "$N" 42 > "$W/costs.csv"
L="$W/l.db"
"$B" init "$L" --agreement "$E/us-japan-sma-2022.toml" > /dev/null
"$B" record "$L" "$W/costs.csv" > /dev/null
"$B" report --ledger "$L" --by party > /dev/null
"$B" verify "$L" | grep -q "derived state: sealed under the head" || { echo "the derived state is not fresh"; exit 1; }
best() {
  local best=999 t0 t1
  for _ in 1 2 3; do
    t0=$EPOCHREALTIME
    "$@" > /dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN { d = b - a; print (d < m) ? d : m }')
  done
  echo "$best"
}
row() {
  local name=$1 d r
  shift
  d=$(best "$@")
  r=$(COSTSHARE_LEDGER_PATH=replay best "$@")
  printf '%-36s derived %7.3f s   replay %7.3f s\n' "$name" "$d" "$r"
}
echo "ledger reads: $N lines, SQLite, load $(cut -d' ' -f1-3 /proc/loadavg)"
A=(--as-of 2026-11-15)
row "report --by party" "$B" report --ledger "$L" --by party "${A[@]}"
row "report --by party --period FY2023" "$B" report --ledger "$L" --by party --period FY2023 "${A[@]}"
row "allocate --format csv" "$B" allocate --ledger "$L" --format csv "${A[@]}"
row "explain --id B00000005" "$B" explain --ledger "$L" --id B00000005 "${A[@]}"
row "ceilings" "$B" ceilings --ledger "$L" "${A[@]}"
row "compare --against sma-2016" "$B" compare --ledger "$L" --against "$E/us-japan-sma-2016.toml" --by party "${A[@]}"
row "forecast --until 2027-03-31" "$B" forecast --ledger "$L" --until 2027-03-31 --by party "${A[@]}"
row "settle" "$B" settle --ledger "$L" "${A[@]}"
row "export --format csv" "$B" export --ledger "$L" --format csv "${A[@]}"
row "history" "$B" history "$L"
row "history --id B00000005" "$B" history "$L" --id B00000005
row "adjustments" "$B" adjustments "$L" "${A[@]}"
row "verify" "$B" verify "$L"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
