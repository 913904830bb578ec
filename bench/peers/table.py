#!/usr/bin/env python3
"""Turn run.sh's measurements into the table it prints and the BENCHMARKS.md it writes.

Usage: table.py --summary S.tsv --versions V.tsv --meta M.tsv --expected "N=path ..." [--out FILE]
"""
import argparse
import csv
import statistics

TOOLS = {
    "costshare": "costshare",
    "ledger": "Ledger",
    "hledger": "hledger",
    "beancount": "Beancount + beanquery",
}


def tsv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def mb(n_bytes):
    return f"{n_bytes / 1e6:.0f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


MARKER = "<!-- kept by bench/peers/table.py: the sections below are costshare's own -->"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()

    meta = {k: v for k, v in tsv(a.meta)}
    versions = {k: v for k, v in tsv(a.versions)}
    rows = tsv(a.summary)[1:]
    timeout, mem_limit = meta["timeout"], meta["mem_limit_mb"]

    medians = {}
    for tool, lines, status, nbytes, secs, kbs in rows:
        if secs and status == "ok":
            medians[(tool, lines)] = statistics.median(float(x) for x in secs.split())

    table = [
        "| tool | lines | input | wall s (median) | peak memory (median) | runs | × costshare time | totals |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    bad = []
    for tool, lines, status, nbytes, secs, kbs in rows:
        name = TOOLS[tool]
        n = f"{int(lines):,}"
        inp = mb(int(nbytes))
        s = [float(x) for x in secs.split()] if secs else []
        k = [int(x) for x in kbs.split()] if kbs else []
        if status == "skipped":
            table.append(f"| {name} | {n} | {inp} | not run (skipped with `--skip`) | | 0 | | |")
            continue
        if status == "timeout":
            at_stop = f"{k[0] / 1048576:.2f} GB when stopped" if k and k[0] else ""
            table.append(f"| {name} | {n} | {inp} | not finished: stopped after {timeout} s | {at_stop} | 1 | | not checked |")
            continue
        if status == "memory":
            table.append(f"| {name} | {n} | {inp} | stopped at {s[0]:.1f} s | > {mem_limit} MB | 1 | | not checked |")
            continue
        if status == "failed":
            table.append(f"| {name} | {n} | {inp} | failed (see run.sh output) | | 1 | | not checked |")
            bad.append(f"{name} at {n} lines failed")
            continue
        wall = statistics.median(s)
        peak = statistics.median(k) / 1024
        base = medians.get(("costshare", lines))
        ratio = f"{wall / base:.0f}×" if base and tool != "costshare" and base > 0 else ("1×" if tool == "costshare" else "")
        verdict = "exact" if status == "ok" else "**DIFFER**"
        if status != "ok":
            bad.append(f"{name} at {n} lines: totals differ")
        peak_txt = f"{peak / 1024:.2f} GB" if peak >= 1024 else f"{peak:.0f} MB"
        table.append(f"| {name} | {n} | {inp} | {wall:.2f} | {peak_txt} | {len(s)} | {ratio} | {verdict} |")

    exact = []
    for item in a.expected.split():
        lines, path = item.split("=", 1)
        with open(path, newline="") as f:
            exp = list(csv.reader(f))[1:]
        total = sum(int(r[2].replace(".", "")) for r in exp)
        checked = [TOOLS[t] for t, l, st, *_ in rows if l == lines and st == "ok"]
        exact.append(f"- {int(lines):,} lines: {len(exp)} (party, category) totals, "
                     f"{total // 100:,}.{total % 100:02d} USD in all; equal to the cent in "
                     f"{', '.join(checked) if checked else 'no tool'}.")

    load_end = meta.get("load_end")
    if not load_end:
        with open("/proc/loadavg") as f:
            load_end = " ".join(f.read().split()[:3])
    vers = "\n".join(f"- {TOOLS[t]}: {v}" for t, v in versions.items())
    text = f"""# Benchmarks: costshare and peer accounting tools

costshare against Ledger, hledger and Beancount on one workload: cost lines split between two
parties by a fixed percentage per category, reported as totals per party and category. Every
tool's totals are checked against the exact ones before its time counts.

Reproduce (from the repository root; installs the peers if missing, builds costshare, generates
the seeded workload, runs, checks and rewrites this file):

    {meta['command']}

Measured {meta['date']} on this project's machine kind: {meta['cores']} cores ({meta['cpu']}),
{meta['memory']} of memory, {meta['os']}. Load average (1, 5, 15 min) when the script
started: {meta['load_start']}; when it ended: {load_end} (the tools are single-threaded, so a
load near 1 is the benchmark itself; above that, something else shared the machine).

{vers}

## Results

{chr(10).join(table)}

Wall seconds and peak memory (maximum resident set size) are GNU time's `%e` and `%M`, the
median of the runs counted in the table. Every run's output was checked. A run is stopped after
{timeout} s or above {mem_limit} MB. After its first run, a tool runs again only while the
runs so far plus one more stay within {meta['budget']} s, so slow tools at large sizes ran
fewer times than the {meta['runs']} asked for. costshare's figure is the whole command: reading
and validating the agreement and the costs CSV, exact allocation of every line, and the report.
`input` is the size of the file each tool reads.

**Exactness check:** {"passed" if not bad else "FAILED: " + "; ".join(bad)}.

{chr(10).join(exact)}

## Method

- **Workload** (`bench/peers/gen.py N SEED`, seed {meta['seed']}): N cost lines, dated at
  random over 2020–2029, in six categories, each with one fixed split between parties A and B:
  rent 50/50, utilities 61/39, groceries 75/25, travel 33.33/66.67, insurance 12.5/87.5,
  internet 40/60. Amounts run from 1.00 to 5,000.00 USD and each is a multiple of the smallest
  amount its split divides exactly (2, 100, 4, 10,000, 8 and 5 cents), so every share of every
  line is a whole number of cents, no tool has anything to round, and all totals can be
  compared to the cent. The generator uses integers only and computes the exact totals itself
  (`expected.csv`); `bench/peers/check.py` compares each tool's output with them, and so with
  costshare's.
- **costshare**: an agreement (USD, parties A and B, one uncapped layer per category with
  `split = {{ A = "61%", B = "39%" }}` and so on) and a costs CSV (`id,date,category,amount`);
  `costshare report --agreement agreement.toml --costs costs.csv --by party,category --format csv`.
  Each line is split under the rule of SPEC §2 (floor, then largest remainder), with exact
  integer arithmetic.
- **Ledger**: one transaction per line (`Expenses:Shared:<Category>` against `Assets:Bank`) and
  one automated transaction per category, `= /^Expenses:Shared:Utilities$/`, whose postings
  move the amount to the parties by multipliers (`-1`, `0.61`, `0.39`);
  `ledger balance --flat --no-total ^Expenses:Party:` with a tab-separated `--balance-format`.
- **hledger**: the same journal with auto posting rules (`= acct:^Expenses:Shared:Utilities$`,
  postings `*-1`, `*0.61`, `*0.39`); `hledger balance --auto -O csv ^Expenses:Party:`.
- **Beancount 3 + beanquery**: the same transactions; the split is a Beancount plugin,
  `bench/peers/costshare_split.py` (about 40 lines, configured in the file with the
  percentages), which replaces each `Expenses:Shared:<Category>` posting by one posting per
  party (Decimal arithmetic) before Beancount validates that transactions balance;
  `bean-query -f csv FILE "SELECT account, sum(position) ... GROUP BY account"`. The load cache
  is disabled (`BEANCOUNT_DISABLE_LOAD_CACHE=1`): otherwise every run after the first reads a
  pickle of the already-processed file.
- Each tool does the same job: read its text input, apply the per-category split to every
  line, and total per party and category. The peers also book and validate double-entry
  transactions, which costshare does not model; costshare validates the agreement and every
  cost line (dates in term, known categories, amount syntax and decimals, duplicate ids).
- The performance issue quoted figures for this machine kind (ledger 3.3: 2.5 s / 433 MB at
  100,000 lines and 36.7 s / 4.2 GB at 1,000,000; hledger 1.25: 12.9 s / 1.0 GB and
  Beancount 3: 14.0 s / 296 MB at 100,000). They do not come from this script and their
  workload may differ (here every line's shared expense is re-posted to both parties by
  its category's rule), so compare tools within the table above.
- A tool that is stopped (time or memory) is shown as such, not as a figure. Generated files
  live in the work directory (`${{TMPDIR:-/tmp}}/costshare-peers`, `--work DIR`) and are reused
  on the next run with the same size and seed.
"""
    print("\n".join(table))
    print()
    print("Exactness check:", "passed" if not bad else "FAILED: " + "; ".join(bad))
    if a.out:
        # the sections after the marker are written by hand (costshare's own
        # measurements): keep them
        kept = ""
        try:
            with open(a.out) as f:
                old = f.read()
            if MARKER in old:
                kept = old[old.index(MARKER):]
        except FileNotFoundError:
            pass
        with open(a.out, "w") as f:
            f.write(text + ("\n" + kept if kept else ""))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
