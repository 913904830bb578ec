#!/usr/bin/env bash
# Coverage-guided fuzzing of the input readers, on the stable toolchain.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of them) for SECONDS (default 60) with
# libFuzzer through cargo-fuzz, `--sanitizer none` (AddressSanitizer needs a
# nightly compiler; safe Rust does not need it to find panics, overflows and
# hangs). Installs cargo-fuzz when it is missing. The corpus of each target
# lives in fuzz/corpus/<target>/: the committed seeds plus what the fuzzer
# finds (files named by their SHA-1, ignored by git). A crash, a panic, a
# timeout (over 10 s for one input) or running out of memory (2 GiB) leaves
# the input in fuzz/artifacts/<target>/ and makes the script fail, after
# every target has run. Prints the executions each target survived.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(load costs rates journal); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets"
cargo fuzz build --sanitizer none

logs=$(mktemp -d)
status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzzing $t for ${secs}s"
  set +e
  cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$logs/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$logs/$t.log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -n 60 "$logs/$t.log"
    summary+=("$t: FAILED after ${execs:-?} executions (input in fuzz/artifacts/$t/)")
  else
    summary+=("$t: ${execs:-?} executions, no crash")
  fi
done
echo "== fuzzing summary (${secs}s a target)"
printf '%s\n' "${summary[@]}"
rm -rf "$logs"
exit "$status"
