#!/usr/bin/env bash
# Compare costshare with peer plain-text accounting tools on the same seeded workload.
#
#   bench/peers/run.sh [--lines 100000,1000000] [--runs 3] [--skip TOOL@LINES,...]
#                      [--timeout 300] [--budget 300] [--mem-limit-mb 20000] [--seed 42]
#                      [--tools costshare,ledger,hledger,beancount] [--work DIR]
#                      [--out FILE | --no-write] [--no-install]
#
# 1. Installs the peers if missing: Debian's ledger and hledger (apt-get), PyPI's beancount
#    and beanquery (pip, into a venv in the work dir); builds costshare (cargo build --release).
# 2. For each size, generates the workload with gen.py (seeded): N cost lines split between
#    two parties by a fixed percentage per category, written as a costshare agreement and costs
#    CSV, a ledger journal with automated transactions, an hledger journal with auto postings
#    and a Beancount file whose plugin (costshare_split.py) does the split.
# 3. Runs each tool's per-party, per-category totals query --runs times under
#    /usr/bin/time -f "%e %M" (wall seconds, peak resident memory), checks every output
#    against the exact totals (check.py: to the cent, or the run fails), and takes medians.
#    A run is stopped past --timeout seconds or --mem-limit-mb and recorded as such. After
#    the first run, another is started only while the runs so far plus one more stay within
#    --budget seconds (so a slow tool at a large size runs fewer times; the table says how
#    many). --skip hledger@1000000 (or just hledger) leaves a tool out at a size.
# 4. Prints the table and writes it, with versions, machine and method, into BENCHMARKS.md
#    at the repository root (--out FILE elsewhere, --no-write not at all).
#
# Exit status: 0 when every tool that ran gave the exact totals; 1 when any differed or failed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ARGS="$*"

LINES=100000,1000000
RUNS=3
SEED=42
TIMEOUT=300
BUDGET=300
MEM_MB=20000
SKIP=
TOOLS=costshare,ledger,hledger,beancount
WORK=${TMPDIR:-/tmp}/costshare-peers
OUT=$ROOT/BENCHMARKS.md
INSTALL=1

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while (($#)); do
  case $1 in
    --lines) LINES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --mem-limit-mb) MEM_MB=$2; shift 2 ;;
    --skip) SKIP=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-write) OUT=; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
  esac
done
for v in RUNS TIMEOUT BUDGET MEM_MB; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ${v} must be a positive integer, not '${!v}'" >&2; exit 2; }
done
[[ $SEED =~ ^[0-9]+$ ]] || { echo "run.sh: --seed must be an integer" >&2; exit 2; }
IFS=, read -ra SIZES <<< "$LINES"
IFS=, read -ra TOOL_LIST <<< "$TOOLS"
for n in "${SIZES[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: bad --lines entry '$n'" >&2; exit 2; }; done
for t in "${TOOL_LIST[@]}"; do
  case $t in costshare|ledger|hledger|beancount) ;; *) echo "run.sh: unknown tool '$t'" >&2; exit 2 ;; esac
done
has_tool() { [[ ",$TOOLS," == *",$1,"* ]]; }
skipped() { [[ ",$SKIP," == *",$1,"* || ",$SKIP," == *",$1@$2,"* ]]; }

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
VENV=$WORK/venv
say() { printf '== %s\n' "$*" >&2; }

# ---- 1. install the peers, build costshare -------------------------------------------------
if ((INSTALL)); then
  apt_pkgs=()
  has_tool ledger && ! command -v ledger >/dev/null && apt_pkgs+=(ledger)
  has_tool hledger && ! command -v hledger >/dev/null && apt_pkgs+=(hledger)
  if ((${#apt_pkgs[@]})); then
    SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    say "apt-get install ${apt_pkgs[*]}"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_pkgs[@]}"
  fi
  if has_tool beancount && [[ ! -x $VENV/bin/bean-query ]]; then
    say "pip install beancount beanquery into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'beancount>=3,<4' 'beanquery>=0.2,<0.3'
  fi
fi
for t in ledger hledger; do
  has_tool $t && ! command -v $t >/dev/null && { echo "run.sh: $t is not installed" >&2; exit 1; }
done
has_tool beancount && [[ ! -x $VENV/bin/bean-query ]] && { echo "run.sh: no $VENV/bin/bean-query" >&2; exit 1; }
say "cargo build --release"
(cd "$ROOT" && cargo build --release -q)
COSTSHARE=$ROOT/target/release/costshare

# versions, machine
VERSIONS=$WORK/versions.tsv
{
  printf 'costshare\t%s\n' "$("$COSTSHARE" --version)"
  has_tool ledger && printf 'ledger\t%s\n' "$(ledger --version | head -n1 | sed 's/, the command-line accounting tool//')"
  has_tool hledger && printf 'hledger\t%s\n' "$(hledger --version | head -n1)"
  has_tool beancount && printf 'beancount\t%s (Python %s)\n' "$("$VENV/bin/bean-query" --version | head -n1)" "$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
  true
} > "$VERSIONS"
META=$WORK/meta.tsv
{
  printf 'command\tbench/peers/run.sh%s\n' "${ARGS:+ $ARGS}"
  printf 'date\t%s\n' "$(date -u +%Y-%m-%d)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'memory\t%s\n' "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'runs\t%s\nseed\t%s\ntimeout\t%s\nbudget\t%s\nmem_limit_mb\t%s\n' "$RUNS" "$SEED" "$TIMEOUT" "$BUDGET" "$MEM_MB"
} > "$META"

# ---- measuring one run ---------------------------------------------------------------------
# watchdog ROOT_PID MARK: kill ROOT_PID's descendants when their resident memory adds up past
# the limit, and say so in MARK.
watchdog() {
  local root=$1 mark=$2 limit=$((MEM_MB * 1024)) line rss
  while kill -0 "$root" 2>/dev/null; do
    line=$(ps -eo pid=,ppid=,rss= | awk -v root="$root" '
      { pp[$1] = $2; rs[$1] = $3 }
      END {
        for (p in pp) {
          q = p; n = 0
          while (q != root && (q in pp) && n++ < 64) q = pp[q]
          if (q == root && p != root) { s += rs[p]; l = l " " p }
        }
        print s + 0 l
      }')
    rss=${line%% *}
    if ((rss > limit)); then
      echo "$rss" > "$mark"
      # shellcheck disable=SC2086
      kill -KILL ${line#* } 2>/dev/null || true
      return
    fi
    sleep 0.5
  done
}

# measure OUT ERR CMD...: sets M_STATUS (ok|timeout|memory|failed), M_SECS, M_KB
measure() {
  local out=$1 err=$2 tf=$WORK/time.txt mark=$WORK/killed.txt rc=0 pid wd
  shift 2
  rm -f "$tf" "$mark"
  /usr/bin/time -f "%e %M" -o "$tf" timeout -k 10 "$TIMEOUT" "$@" > "$out" 2> "$err" &
  pid=$!
  watchdog "$pid" "$mark" &
  wd=$!
  wait "$pid" || rc=$?
  wait "$wd" || true  # it ends by itself within half a second of the run
  M_SECS=$TIMEOUT M_KB=0
  [[ -s $tf ]] && read -r M_SECS M_KB < <(tail -n1 "$tf")
  if [[ -s $mark ]]; then M_STATUS=memory M_KB=$(cat "$mark")
  elif ((rc == 124 || rc == 137)); then M_STATUS=timeout
  elif ((rc != 0)); then M_STATUS=failed
  else M_STATUS=ok
  fi
}

# tool_cmd TOOL DIR: the query printing per-party, per-category totals
tool_cmd() {
  local d=$2
  case $1 in
    costshare) CMD=("$COSTSHARE" report --agreement "$d/agreement.toml" --costs "$d/costs.csv" --by party,category --format csv) ;;
    ledger) CMD=(ledger --args-only -f "$d/journal.ledger" balance --flat --no-total
                 --balance-format '%(account)\t%(display_total)\n' '^Expenses:Party:') ;;
    hledger) CMD=(hledger -f "$d/journal.hledger" balance --auto -O csv '^Expenses:Party:') ;;
    beancount) CMD=(env BEANCOUNT_DISABLE_LOAD_CACHE=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$HERE" "$VENV/bin/bean-query" -f csv "$d/journal.beancount"
                    "SELECT account, sum(position) AS total WHERE account ~ '^Expenses:Party:' GROUP BY account ORDER BY account") ;;
  esac
}
tool_input() {
  case $1 in
    costshare) echo costs.csv ;; ledger) echo journal.ledger ;; hledger) echo journal.hledger ;; beancount) echo journal.beancount ;;
  esac
}

# ---- 2-3. generate, run, check ---------------------------------------------------------------
SUMMARY=$WORK/summary.tsv
printf 'tool\tlines\tstatus\tinput_bytes\tsecs\tkb\n' > "$SUMMARY"
FAILED=0
declare -A CS_OK=()
GEN_STAMP=$(sha256sum < "$HERE/gen.py" | cut -c1-16)  # generated files are reused until gen.py changes
for n in "${SIZES[@]}"; do
  d=$WORK/data-$n-seed$SEED
  if [[ ! -f $d/.done || $(cat "$d/.done") != "$GEN_STAMP" ]]; then
    say "generating $n lines (seed $SEED) into $d"
    rm -rf "$d"
    python3 "$HERE/gen.py" "$n" "$SEED" "$d" || { echo "run.sh: gen.py failed" >&2; exit 1; }
    echo "$GEN_STAMP" > "$d/.done"
  fi
  for t in "${TOOL_LIST[@]}"; do
    bytes=$(stat -c %s "$d/$(tool_input "$t")")
    if skipped "$t" "$n"; then
      say "$t @ $n: skipped (--skip)"
      printf '%s\t%s\tskipped\t%s\t\t\n' "$t" "$n" "$bytes" >> "$SUMMARY"
      continue
    fi
    tool_cmd "$t" "$d"
    secs=() kbs=() status=ok total=0
    for ((r = 1; r <= RUNS; r++)); do
      out=$WORK/out-$t-$n.txt err=$WORK/err-$t-$n.txt
      measure "$out" "$err" "${CMD[@]}"
      if [[ $M_STATUS != ok ]]; then
        status=$M_STATUS
        say "$t @ $n run $r: $M_STATUS after ${M_SECS} s, ${M_KB} KB"
        [[ $M_STATUS == failed ]] && { sed 's/^/    /' "$err" | tail -n 20 >&2; FAILED=1; }
        secs=("$M_SECS") kbs=("$M_KB")
        break
      fi
      if ! chk=$(python3 "$HERE/check.py" "$t" "$out" "$d/expected.csv"); then
        status=differ FAILED=1
        say "$t @ $n run $r: TOTALS DIFFER (output kept in $out)"
        secs+=("$M_SECS") kbs+=("$M_KB")
        break
      fi
      # and, literally, against costshare's own output at this size when it ran
      cs_out=$WORK/out-costshare-$n.txt
      if [[ $t != costshare && -n ${CS_OK[$n]:-} ]] && ! python3 "$HERE/check.py" "$t" "$out" "$cs_out" > /dev/null; then
        status=differ FAILED=1
        say "$t @ $n run $r: TOTALS DIFFER from costshare's (output kept in $out)"
        secs+=("$M_SECS") kbs+=("$M_KB")
        break
      fi
      [[ $t == costshare ]] && CS_OK[$n]=1
      secs+=("$M_SECS") kbs+=("$M_KB")
      say "$t @ $n run $r: ${M_SECS} s, $((M_KB / 1024)) MB, totals exact ($chk)"
      total=$(awk -v a="$total" -v b="$M_SECS" 'BEGIN { print a + b }')
      if ((r < RUNS)) && awk -v t="$total" -v s="$M_SECS" -v b="$BUDGET" 'BEGIN { exit !(t + s > b) }'; then
        say "$t @ $n: another run would pass the ${BUDGET} s budget; $r run(s)"
        break
      fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$n" "$status" "$bytes" "${secs[*]}" "${kbs[*]}" >> "$SUMMARY"
  done
done

# ---- 4. table ---------------------------------------------------------------------------------
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$META"
python3 "$HERE/table.py" --summary "$SUMMARY" --versions "$VERSIONS" --meta "$META" \
  --expected "$(for n in "${SIZES[@]}"; do printf '%s=%s ' "$n" "$WORK/data-$n-seed$SEED/expected.csv"; done)" \
  ${OUT:+--out "$OUT"}
exit "$FAILED"
