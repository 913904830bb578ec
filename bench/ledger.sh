#!/usr/bin/env bash
# Ledger benchmark (issue 12's table): every ledger step at N lines, on SQLite
# or PostgreSQL, with the two anchors measured in the same run:
#
# - `sqlite3 .import` of the same CSV into a table keyed by id (what a bulk
#   `record` is compared with);
# - `sha256sum` over the journal's bytes (what `verify` is compared with).
#
# Steps: init; record N new lines; record the same file again (a no-op); the
# first report after the bulk load; report again; late lines whose caps reset
# monthly, yearly and once a term (--impact); allocate, explain, history --id,
# close, adjustments on the ledger; void one line (from the derived state) and history
# (every entry: it still replays the journal); verify (the integrity check) and verify
# --deep (statements re-derived, the derived state rebuilt and compared); then
# amend and report, explain and allocate after it. Prints wall seconds and
# peak memory (GNU time's maximum resident set size) for each step.
#
#   bench/ledger.sh [N]                 (default 1000000; SQLite)
#   bench/ledger.sh --postgres [N]      (a fresh database on 127.0.0.1:5432)
#
# COSTSHARE_BIN=PATH measures another build (e.g. the commit before a change).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=0
if [[ ${1:-} == --postgres ]]; then PG=1; shift; fi
N=${1:-1000000}
if [[ -n ${COSTSHARE_BIN:-} ]]; then B=$(realpath "$COSTSHARE_BIN"); else cargo build --release -q; B=target/release/costshare; fi
W=$(mktemp -d)
DB=""
cleanup() {
  rm -rf "$W"
  if [[ -n $DB ]]; then psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
python3 bench/gen_costs.py "$N" 42 > "$W/costs.csv"
H='id,date,category,amount,currency,quantity,site,description'
printf '%s\nLATE-1,2023-06-15,labor,9000000,JPY,20,Okinawa,late payroll\n' "$H" > "$W/late-month.csv"
printf '%s\nLATE-2,2023-06-15,utilities,9000000,JPY,,Okinawa,late bill\n' "$H" > "$W/late-year.csv"
printf '%s\nLATE-3,2023-06-15,facilities,9000000,JPY,,Okinawa,late works\n' "$H" > "$W/late-term.csv"
# the amendment: the same agreement from FY2025 with a lower utilities cap
sed 's/FY2025 = "13300000000"/FY2025 = "12000000000"/' examples/us-japan-sma-2022.toml > "$W/amended.toml"
if [[ $PG == 1 ]]; then
  DB="costshare_bench_$$"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
  L="postgres://postgres@127.0.0.1:5432/$DB"
  KIND="PostgreSQL"
else
  L="$W/l.db"
  KIND="SQLite"
fi
step() {
  # wall time from bash's clock; peak memory from GNU time
  local name=$1; shift
  # the previous step's output is removed before the clock starts: truncating
  # `allocate`'s 500 MB by the redirection below took 30-40 ms of the next
  # step's time (`explain` read 53 ms where it took 17)
  rm -f "$W/out" "$W/err"
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o "$W/t" "$@" > "$W/out" 2> "$W/err" || { echo "FAILED: $name"; cat "$W/err"; exit 1; }
  local t1=$EPOCHREALTIME
  read -r kb < "$W/t"
  printf '%-46s %9.3f s %8d MB\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" $((kb / 1024))
}
echo "costshare ledger benchmark: $N lines ($(du -h "$W/costs.csv" | cut -f1) of CSV), $KIND, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- anchors"
step "anchor: sqlite3 .import, table keyed by id" sqlite3 "$W/anchor.db" \
  "CREATE TABLE costs (id TEXT PRIMARY KEY, date TEXT, category TEXT, amount TEXT, currency TEXT, quantity TEXT, site TEXT, description TEXT);" \
  ".mode csv" ".import --skip 1 $W/costs.csv costs"
echo "-- costshare"
step "init" $B init "$L" --agreement examples/us-japan-sma-2022.toml
step "record $N new lines" $B record "$L" "$W/costs.csv"
step "record the same file again (no-op)" $B record "$L" "$W/costs.csv"
step "first report after the bulk load" $B report --ledger "$L" --by party,category --format csv
step "report again (derived state)" $B report --ledger "$L" --by party,category --format csv
for kind in month year term; do
  step "late line, cap per $kind, --impact" $B record "$L" "$W/late-$kind.csv" --impact
done
step "allocate (every line)" $B allocate --ledger "$L" --format csv
step "allocate from the same files" $B allocate --agreement examples/us-japan-sma-2022.toml --costs "$W/costs.csv" --format csv
step "explain one line" $B explain --ledger "$L" --id B00000042
step "history --id" $B history "$L" --id B00000042
step "adjustments" $B adjustments "$L" --as-of 2026-11-29
step "close FY2022" $B close "$L" --period FY2022 --as-of 2026-11-29
step "void one line" $B void "$L" B00000043 --reason "bench: a line voided"
step "history (every entry)" $B history "$L"
step "verify" $B verify "$L"
step "verify --deep" $B verify "$L" --deep
if [[ $PG == 0 ]]; then
  sqlite3 "$L" "SELECT body FROM journal ORDER BY seq" > "$W/journal.bytes"
  echo "journal: $(du -h "$W/journal.bytes" | cut -f1) of entry bytes; ledger file $(du -h "$L" | cut -f1)"
  step "anchor: sha256sum over the journal's bytes" sha256sum "$W/journal.bytes"
else
  psql -q -At -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT convert_from(body, 'UTF8') FROM journal ORDER BY seq" > "$W/journal.bytes"
  echo "journal: $(du -h "$W/journal.bytes" | cut -f1) of entry bytes"
  step "anchor: sha256sum over the journal's bytes" sha256sum "$W/journal.bytes"
fi
step "amend from FY2025" $B amend "$L" --agreement "$W/amended.toml" --effective 2025-04-01
step "report after amend" $B report --ledger "$L" --by party,category --format csv
step "explain after amend" $B explain --ledger "$L" --id B00000042
step "allocate after amend" $B allocate --ledger "$L" --format csv
