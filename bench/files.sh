#!/usr/bin/env bash
# File form, CSV to the per-party, per-category report: costshare's streaming
# path and its general path (COSTSHARE_REPORT_PATH=general: every line parsed
# into a CostLine, kept, allocated, reported) on
#   - the peers' workload (bench/peers/gen.py, fixed splits, no caps): 1M lines;
#   - the same lines ten times over with unique ids: 10M lines (streaming only);
#   - the capped SMA workload (bench/gen_costs.py: monthly pro-rata head-count
#     caps, yearly running money caps, term envelopes): 1M lines.
# Prints the median wall seconds and peak memory (GNU time) of --runs runs,
# and checks that both paths print the same report.
#
#   bench/files.sh [--runs 3] [--work DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
WORK=${TMPDIR:-/tmp}/costshare-files
while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
# COSTSHARE_BIN=PATH measures another build (e.g. the commit before a change)
if [[ -n ${COSTSHARE_BIN:-} ]]; then B=$(realpath "$COSTSHARE_BIN"); else cargo build --release -q; B=$PWD/target/release/costshare; fi
mkdir -p "$WORK"
cd "$WORK"
[[ -f peers/costs.csv ]] || python3 "$OLDPWD/bench/peers/gen.py" 1000000 42 peers > /dev/null
if [[ ! -f costs10m.csv ]]; then
  { head -1 peers/costs.csv; for k in 0 1 2 3 4 5 6 7 8 9; do tail -n +2 peers/costs.csv | sed "s/^L/L$k/"; done; } > costs10m.csv
fi
[[ -f sma.csv ]] || python3 "$OLDPWD/bench/gen_costs.py" 1000000 42 > sma.csv
SMA=$OLDPWD/examples/us-japan-sma-2022.toml

# median of RUNS: "seconds megabytes"
measure() {
  local out=$1; shift
  local s=() m=()
  for ((r = 1; r <= RUNS; r++)); do
    /usr/bin/time -f "%e %M" -o t.txt "$@" > "$out"
    read -r secs kb < t.txt
    s+=("$secs") m+=("$((kb / 1024))")
  done
  local ms mm
  ms=$(printf '%s\n' "${s[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  mm=$(printf '%s\n' "${m[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  echo "$ms $mm"
}
row() {
  local name=$1 lines=$2 path=$3; shift 3
  read -r secs mb <<< "$(measure "out-$name-$path.csv" "$@")"
  local rate
  rate=$(awk -v n="$lines" -v s="$secs" 'BEGIN { if (s > 0) printf "%.2f", n / s / 1e6; else print "-" }')
  printf '| %s | %s | %s | %s s | %s MB | %s M lines/s |\n' "$name" "$lines" "$path" "$secs" "$mb" "$rate"
}
echo "| workload | lines | path | wall (median of $RUNS) | peak memory | rate |"
echo "|---|---:|---|---:|---:|---:|"
report=(report --by party,category --format csv)
row peers 1000000 streaming "$B" "${report[@]}" --agreement peers/agreement.toml --costs peers/costs.csv
row peers 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" --agreement peers/agreement.toml --costs peers/costs.csv
row peers-10x 10000000 streaming "$B" "${report[@]}" --agreement peers/agreement.toml --costs costs10m.csv
row sma-capped 1000000 streaming "$B" "${report[@]}" --agreement "$SMA" --costs sma.csv
row sma-capped 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" --agreement "$SMA" --costs sma.csv
for w in peers sma-capped; do
  cmp -s "out-$w-streaming.csv" "out-$w-general.csv" || { echo "REPORTS DIFFER: $w"; exit 1; }
done
python3 "$OLDPWD/bench/peers/check.py" costshare out-peers-streaming.csv peers/expected.csv > /dev/null \
  || { echo "peers totals differ from expected.csv"; exit 1; }
echo "both paths print the same reports; the peers' totals equal gen.py's exact ones"
