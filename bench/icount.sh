#!/usr/bin/env bash
# Instruction-count regression guard for the allocator and the ledger's reads from the
# derived state (callgrind).
#
#   bench/icount.sh            measure each scenario, compare with bench/icount-budget.txt
#   bench/icount.sh --update   measure and rewrite bench/icount-budget.txt with the counts
#
# Builds crates/costshare-core/examples/icount.rs and crates/costshare-app/examples/icount_ledger.rs
# (release) and runs each scenario under
# `valgrind --tool=callgrind --toggle-collect='*icount_measure_*'`, so only the measured
# function and what it calls are counted, not the setup (loading the agreement, generating
# 50,000 seeded lines). The count is the Ir total (instructions executed) of the callgrind
# output file. Scenarios:
#   allocate    alloc::allocate over the 50,000 lines
#   late_line   alloc::Incremental::add_line of three late lines into those 50,000
#   ledger_allocate       `allocate --ledger` (query::allocate) on a 1,460-line SQLite ledger
#                         (the demo history): every line read from the derived state, no replay
#   ledger_report_period  `report --ledger --by party,category --period FY2023` on that ledger:
#                         the derived state's lines with a date filter (PathTaken::DerivedLines)
# The ledger scenarios count opening the ledger and its SQLite reads too (not building it);
# they fail if the derived state is not fresh or the report took another path.
#
# A scenario fails when it counts more than its budget x 1.03. Below budget x 0.90 it passes
# and says so: lower the budget with --update. Counts are deterministic for one toolchain,
# valgrind and glibc; a new rustc may move them, so the budget file records the versions.
#
# Without valgrind: prints "SKIPPED: valgrind not found" and exits 0, or 1 when
# COSTSHARE_REQUIRE_VALGRIND=1 (CI sets it).
#
# Exit status: 0 all within budget (or rewritten); 1 over budget, missing budget, failed run.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=bench/icount-budget.txt
SCENARIOS="allocate late_line ledger_allocate ledger_report_period"
TOLERANCE_PCT=3 # fail above budget x (100 + this) / 100
IMPROVED_PCT=90 # below budget x this / 100: say the budget can come down

UPDATE=0
case "${1:-}" in
  "") ;;
  --update) UPDATE=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: bench/icount.sh [--update]" >&2
    exit 2
    ;;
esac

if ! command -v valgrind >/dev/null 2>&1; then
  echo "SKIPPED: valgrind not found (apt-get install valgrind)"
  if [ "${COSTSHARE_REQUIRE_VALGRIND:-0}" = 1 ]; then
    echo "COSTSHARE_REQUIRE_VALGRIND=1: failing instead of skipping"
    exit 1
  fi
  exit 0
fi

cargo build --release -q -p costshare-core --example icount
cargo build --release -q -p costshare-app --example icount_ledger
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

rustc_v=$(rustc -V)
valgrind_v=$(valgrind --version)
# (sed, not head: under pipefail, head closing the pipe early can fail the line with SIGPIPE)
glibc_v=$(ldd --version 2>/dev/null | sed -n -E '1s/.* ([0-9]+\.[0-9]+)$/glibc \1/p' || true)
versions="$rustc_v; $valgrind_v; $glibc_v"

# measure NAME: prints the Ir count of the measured function for one scenario
measure() {
  local name=$1 bin=target/release/examples/icount
  case $name in ledger_*) bin=target/release/examples/icount_ledger ;; esac
  if ! env -u COSTSHARE_LEDGER_PATH valgrind --tool=callgrind --toggle-collect='*icount_measure_*' \
    --callgrind-out-file="$W/$name.out" "$bin" "$name" >"$W/$name.stdout" 2>"$W/$name.log"; then
    echo "icount: the $name scenario failed under valgrind:" >&2
    cat "$W/$name.log" "$W/$name.stdout" >&2
    return 1
  fi
  local ir
  ir=$(awk '$1 == "totals:" { print $2; exit }' "$W/$name.out")
  if [ -z "$ir" ] || [ "$ir" = 0 ]; then
    echo "icount: $name counted no instructions: is the measured function still named" \
      "icount_measure_* and #[inline(never)]?" >&2
    return 1
  fi
  echo "$ir"
}

declare -A measured
for s in $SCENARIOS; do
  measured[$s]=$(measure "$s")
done

echo "costshare instruction counts (callgrind Ir of the measured part; $versions)"
if [ "$UPDATE" = 1 ]; then
  {
    echo "# Instruction-count budget for the allocator and the ledger's derived reads: bench/icount.sh"
    echo "# checks it (CI runs it). One line per scenario: NAME INSTRUCTIONS, the callgrind Ir total"
    echo "# of the measured function only (crates/costshare-core/examples/icount.rs, 50,000 seeded"
    echo "# lines; crates/costshare-app/examples/icount_ledger.rs, a 1,460-line ledger)."
    echo "# Tolerance: a run fails above budget x 1.$(printf '%02d' "$TOLERANCE_PCT") (+${TOLERANCE_PCT}%); below"
    echo "# budget x 0.${IMPROVED_PCT} it passes and asks for a lower budget. Counts are exact"
    echo "# run to run; a new toolchain or glibc can move them. To accept a change in cost, run"
    echo "# bench/icount.sh --update and commit this file with the reason."
    echo "# measured with: $versions"
    for s in $SCENARIOS; do
      echo "$s ${measured[$s]}"
    done
  } >"$BUDGET"
  for s in $SCENARIOS; do
    printf '  %-20s %14s  %s\n' "$s" "${measured[$s]}" "$(cat "$W/$s.stdout")"
  done
  echo "wrote $BUDGET"
  exit 0
fi

[ -f "$BUDGET" ] || echo "FAIL: no budget file $BUDGET; create it with bench/icount.sh --update"
recorded=$(sed -n 's/^# measured with: //p' "$BUDGET" 2>/dev/null || true)
if [ -n "$recorded" ] && [ "$recorded" != "$versions" ]; then
  echo "note: the budget was measured with $recorded"
fi

status=0
for s in $SCENARIOS; do
  m=${measured[$s]}
  b=$(awk -v s="$s" '$1 == s { print $2; exit }' "$BUDGET" 2>/dev/null || true)
  if [ -z "$b" ]; then
    verdict="FAIL: no budget for $s in $BUDGET (bench/icount.sh --update)"
    status=1
  else
    pct=$(awk -v m="$m" -v b="$b" 'BEGIN { printf "%+.2f%%", (m - b) * 100 / b }')
    if ((m * 100 > b * (100 + TOLERANCE_PCT))); then
      verdict="FAIL: budget $b, $pct, over the +${TOLERANCE_PCT}% tolerance"
      status=1
    elif ((m * 100 < b * IMPROVED_PCT)); then
      verdict="ok: budget $b, $pct: improved; lower the budget with --update"
    else
      verdict="ok: budget $b, $pct"
    fi
  fi
  printf '  %-20s %14s  %s\n' "$s" "$m" "$verdict"
  printf '  %-20s %14s  %s\n' "" "" "$(cat "$W/$s.stdout")"
done
if [ "$status" != 0 ]; then
  echo "icount: FAILED. If the extra cost is intended, run bench/icount.sh --update and commit"
  echo "bench/icount-budget.txt with the reason; otherwise find it with callgrind_annotate."
fi
exit "$status"
