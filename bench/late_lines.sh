#!/usr/bin/env bash
# Late lines and `explain` of capped lines on a ledger already recorded (issue 12):
# CPU (perf stat task-clock) and wall milliseconds, median and minimum of N runs.
#
#   bench/late_lines.sh N BIN:LEDGER.db ...          SQLite: each late line on a fresh copy
#   bench/late_lines.sh N BIN:pg:DBNAME ...          PostgreSQL on 127.0.0.1:5432: each late
#                                                    line on CREATE DATABASE ... TEMPLATE DBNAME
#
# Give several BIN:LEDGER pairs (e.g. the build before a change and after, each on a ledger its
# own build recorded: `python3 bench/gen_costs.py 1000000 42 > costs.csv`, `init`, `record`) to
# compare them in one run. The late lines are bench/ledger.sh's (cap per month, year, term);
# explain is of B00000042 (utilities, a fiscal year tied) and B00000006 (facilities, the term).
set -euo pipefail
N=$1; shift
W=$(mktemp -d)
P="psql -q -h 127.0.0.1 -U postgres -d postgres"
cleanup() { rm -rf "$W"; $P -c "DROP DATABASE IF EXISTS costshare_late_x" >/dev/null 2>&1 || true; }
trap cleanup EXIT
H='id,date,category,amount,currency,quantity,site,description'
printf '%s\nLATE-1,2023-06-15,labor,9000000,JPY,20,Okinawa,late payroll\n' "$H" > "$W/late-month.csv"
printf '%s\nLATE-2,2023-06-15,utilities,9000000,JPY,,Okinawa,late bill\n' "$H" > "$W/late-year.csv"
printf '%s\nLATE-3,2023-06-15,facilities,9000000,JPY,,Okinawa,late works\n' "$H" > "$W/late-term.csv"
med() { sort -n | awk '{a[NR]=$1} END{printf "%6.1f (min %5.1f)", a[int((NR+1)/2)], a[1]}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{print (b-a)*1000}'; }
# run CMD...: appends wall ms to w, CPU ms to c
run() {
  local t0 t1 out
  t0=$EPOCHREALTIME
  out=$(perf stat -x, -e task-clock "$@" 2>&1 >/dev/null)
  t1=$EPOCHREALTIME
  echo "$out" | grep task-clock | cut -d, -f1 >> "$W/c"
  ms "$t0" "$t1" >> "$W/w"
}
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
for spec in "$@"; do
  B=${spec%%:*}; L=${spec#*:}
  for k in month year term; do
    : > "$W/w"; : > "$W/c"
    for _ in $(seq "$N"); do
      if [[ $L == pg:* ]]; then
        $P -c "DROP DATABASE IF EXISTS costshare_late_x" -c "CREATE DATABASE costshare_late_x TEMPLATE ${L#pg:}" 2>/dev/null
        run "$B" record postgres://postgres@127.0.0.1:5432/costshare_late_x "$W/late-$k.csv" --impact
      else
        cp "$L" "$W/x.db"; sync
        run "$B" record "$W/x.db" "$W/late-$k.csv" --impact
      fi
    done
    printf '%-24s %-14s late, cap per %-5s wall %s  cpu %s\n' "$(basename "$B")" "$(basename "$L")" "$k" "$(med < "$W/w")" "$(med < "$W/c")"
  done
  for id in B00000042 B00000006; do
    : > "$W/w"; : > "$W/c"
    if [[ $L == pg:* ]]; then T=postgres://postgres@127.0.0.1:5432/${L#pg:}; else T=$L; fi
    for _ in $(seq "$N"); do run "$B" explain --ledger "$T" --id "$id"; done
    printf '%-24s %-14s explain %s  wall %s  cpu %s\n' "$(basename "$B")" "$(basename "$L")" "$id" "$(med < "$W/w")" "$(med < "$W/c")"
  done
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
