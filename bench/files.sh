#!/usr/bin/env bash
# File form, CSV to the per-party, per-category report: costshare's streaming
# path and its general path (COSTSHARE_REPORT_PATH=general: every line parsed
# into a CostLine, kept, allocated, reported) on
#   - the peers' workload (bench/peers/gen.py, fixed splits, no caps): 1M lines;
#   - the same lines ten times over with unique ids: 10M lines (streaming only);
#   - the capped SMA workload (bench/gen_costs.py: monthly pro-rata head-count
#     caps, yearly running money caps, term envelopes): 1M lines;
#   - issue 12: the peers' and the SMA's 1M lines with one `replaces` row
#     appended (a `replaces` column added), and with one bad row (an invalid
#     date) in the middle, by both paths.
# Prints the median wall seconds and peak memory (GNU time) of --runs runs,
# and checks that both paths print the same report (stdout, stderr, exit code).
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
# issue 12: one row replacing the second data line (appended), one bad date in the middle
for w in peers/costs.csv sma.csv; do
  n=$(basename "$w" .csv); n=${n/costs/peers}
  [[ -f $n-replaces.csv ]] || awk 'NR == 1 { print $0 ",replaces"; next }
    NR == 3 { r = $0; split($0, f, ","); id = f[1] }
    { print }
    END { sub(/^[^,]*/, "R-issue12", r); print r "," id }' "$w" > "$n-replaces.csv"
  [[ -f $n-bad.csv ]] || awk 'NR == 500001 { sub(/,[0-9]+-[0-9]+-[0-9]+,/, ",2021-02-30,") } { print }' "$w" > "$n-bad.csv"
done
SMA=$OLDPWD/examples/us-japan-sma-2022.toml

# median of RUNS: "seconds megabytes cpu-seconds" (cpu: user + system)
# (stderr to OUT.err; the exit code must be $EXPECT, 0 unless set)
measure() {
  local out=$1; shift
  local s=() m=() c=() rc
  for ((r = 1; r <= RUNS; r++)); do
    rc=0
    /usr/bin/time -f "%e %M %U %S" -o t.txt "$@" > "$out" 2> "$out.err" || rc=$?
    [[ $rc == "${EXPECT:-0}" ]] || { echo "exit $rc (want ${EXPECT:-0}): $*" >&2; cat "$out.err" >&2; exit 1; }
    echo "$rc" > "$out.rc"
    read -r secs kb user sys < <(tail -n 1 t.txt)
    s+=("$secs") m+=("$((kb / 1024))") c+=("$(awk -v u="$user" -v y="$sys" 'BEGIN { printf "%.2f", u + y }')")
  done
  local ms mm mc
  ms=$(printf '%s\n' "${s[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  mm=$(printf '%s\n' "${m[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  mc=$(printf '%s\n' "${c[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  echo "$ms $mm $mc"
}
row() {
  local name=$1 lines=$2 path=$3; shift 3
  read -r secs mb cpu <<< "$(measure "out-$name-$path.csv" "$@")"
  local rate
  rate=$(awk -v n="$lines" -v s="$secs" 'BEGIN { if (s > 0) printf "%.2f", n / s / 1e6; else print "-" }')
  printf '| %s | %s | %s | %s s | %s MB | %s M lines/s |\n' "$name" "$lines" "$path" "$secs" "$mb" "$rate"
  echo "$secs $cpu" > "secs-$name-$path"
}
echo "| workload | lines | path | wall (median of $RUNS) | peak memory | rate |"
echo "|---|---:|---|---:|---:|---:|"
report=(report --by party,category --format csv)
row peers 1000000 streaming "$B" "${report[@]}" --agreement peers/agreement.toml --costs peers/costs.csv
row peers 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" --agreement peers/agreement.toml --costs peers/costs.csv
row peers-10x 10000000 streaming "$B" "${report[@]}" --agreement peers/agreement.toml --costs costs10m.csv
row sma-capped 1000000 streaming "$B" "${report[@]}" --agreement "$SMA" --costs sma.csv
row sma-capped 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" --agreement "$SMA" --costs sma.csv
peers=(--agreement peers/agreement.toml)
sma=(--agreement "$SMA")
row peers+replaces 1000001 streaming "$B" "${report[@]}" "${peers[@]}" --costs peers-replaces.csv
row peers+replaces 1000001 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" "${peers[@]}" --costs peers-replaces.csv
EXPECT=1 row peers+bad 1000000 streaming "$B" "${report[@]}" "${peers[@]}" --costs peers-bad.csv
EXPECT=1 row peers+bad 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" "${peers[@]}" --costs peers-bad.csv
row sma-capped+replaces 1000001 streaming "$B" "${report[@]}" "${sma[@]}" --costs sma-replaces.csv
row sma-capped+replaces 1000001 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" "${sma[@]}" --costs sma-replaces.csv
EXPECT=1 row sma-capped+bad 1000000 streaming "$B" "${report[@]}" "${sma[@]}" --costs sma-bad.csv
EXPECT=1 row sma-capped+bad 1000000 general env COSTSHARE_REPORT_PATH=general "$B" "${report[@]}" "${sma[@]}" --costs sma-bad.csv
for w in peers sma-capped peers+replaces peers+bad sma-capped+replaces sma-capped+bad; do
  for x in "" .err .rc; do
    cmp -s "out-$w-streaming.csv$x" "out-$w-general.csv$x" || { echo "PATHS DIFFER: $w ($x)"; exit 1; }
  done
done
# issue 12: within 1.5x of the clean file's streaming path (wall, and CPU
# seconds, user + system, which other load on the machine moves less)
echo
echo "| issue 12 file | streaming wall (CPU) | general wall (CPU), the fallback before | clean file streaming wall (CPU) | streaming / clean streaming, wall (CPU) |"
echo "|---|---:|---:|---:|---:|"
for w in peers+replaces peers+bad sma-capped+replaces sma-capped+bad; do
  read -r s sc < "secs-$w-streaming"
  read -r g gc < "secs-$w-general"
  read -r c cc < "secs-${w%+*}-streaming"
  awk -v w="$w" -v s="$s" -v sc="$sc" -v g="$g" -v gc="$gc" -v c="$c" -v cc="$cc" \
    'BEGIN { printf "| %s | %s s (%s s) | %s s (%s s) | %s s (%s s) | %.2f (%.2f) |\n", w, s, sc, g, gc, c, cc, s / c, sc / cc }'
done
python3 "$OLDPWD/bench/peers/check.py" costshare out-peers-streaming.csv peers/expected.csv > /dev/null \
  || { echo "peers totals differ from expected.csv"; exit 1; }
echo "both paths print the same reports (and the same errors); the peers' totals equal gen.py's exact ones"
