#!/usr/bin/env bash
# Issue 12's file cases, interleaved: each round runs every case once (this
# build on the clean and issue-12 files, and COSTSHARE_BASE, another build,
# on the clean files), so that other load on the machine falls on all of them
# alike. Prints per case the minimum and median wall seconds and the median
# CPU seconds (user + system) of N rounds. Uses the files bench/files.sh
# wrote into WORK (run it first).
#
#   COSTSHARE_BASE=PATH [N=9] bench/files-interleaved.sh [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
S=$PWD/examples/us-japan-sma-2022.toml
NEW=$PWD/target/release/costshare
BASE=${COSTSHARE_BASE:?the build to compare with}
N=${N:-9}
cd "${1:-${TMPDIR:-/tmp}/costshare-files}"
declare -A W C
cases=(
  "new peers peers/agreement.toml peers/costs.csv"
  "base peers peers/agreement.toml peers/costs.csv"
  "new peers+replaces peers/agreement.toml peers-replaces.csv"
  "new peers+bad peers/agreement.toml peers-bad.csv"
  "new sma $S sma.csv"
  "base sma $S sma.csv"
  "new sma+replaces $S sma-replaces.csv"
  "new sma+bad $S sma-bad.csv"
)
for ((r = 0; r < N; r++)); do
  for c in "${cases[@]}"; do
    read -r bin name ag costs <<< "$c"
    B=$NEW; [[ $bin == base ]] && B=$BASE
    /usr/bin/time -f "%e %U %S" -o tt.txt "$B" report --by party,category --format csv --agreement "$ag" --costs "$costs" > /dev/null 2>&1 || true
    read -r e u s < <(tail -n 1 tt.txt)
    W["$bin $name"]+="$e "
    C["$bin $name"]+="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') "
  done
done
for c in "${cases[@]}"; do
  read -r bin name _ <<< "$c"
  k="$bin $name"
  min=$(tr ' ' '\n' <<< "${W[$k]}" | grep . | sort -n | head -1)
  med=$(tr ' ' '\n' <<< "${W[$k]}" | grep . | sort -n | sed -n "$(((N + 1) / 2))p")
  cmed=$(tr ' ' '\n' <<< "${C[$k]}" | grep . | sort -n | sed -n "$(((N + 1) / 2))p")
  echo "$k: wall min $min median $med; cpu median $cmed"
done
