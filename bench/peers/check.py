#!/usr/bin/env python3
"""Parse one tool's per-party, per-category totals and compare them with the exact ones.

Usage: check.py TOOL OUTPUT EXPECTED.csv

TOOL is costshare, ledger, hledger or beancount; OUTPUT is what the tool printed for the
query run.sh gives it. EXPECTED.csv (party,category,amount) holds the totals gen.py computed
with integers. Exit 0 when every (party, category) total is equal to the cent, and nothing
else is there; exit 1 with the differences otherwise.
"""
import csv
import sys
from decimal import Decimal, InvalidOperation


def cents(text):
    t = text.strip().replace(",", "")
    if t.endswith("USD"):
        t = t[:-3].strip()
    try:
        d = Decimal(t)
    except InvalidOperation:
        raise SystemExit(f"check.py: not an amount: {text!r}")
    c = d * 100
    if c != c.to_integral_value():
        raise SystemExit(f"check.py: not a whole number of cents: {text!r}")
    return int(c)


def from_account(acct):
    # Expenses:Party:A:Groceries -> ("A", "groceries")
    parts = acct.strip().split(":")
    if len(parts) != 4 or parts[:2] != ["Expenses", "Party"]:
        raise SystemExit(f"check.py: unexpected account {acct!r}")
    return parts[2], parts[3].lower()


def parse(tool, path):
    totals = {}

    def put(key, value):
        if key in totals:
            raise SystemExit(f"check.py: {tool}: {key} twice")
        if value:
            totals[key] = value

    with open(path, newline="") as f:
        if tool == "costshare":
            rows = list(csv.reader(f))
            assert rows[0] == ["party", "category", "amount"], rows[0]
            for party, cat, amount in rows[1:]:
                put((party, cat), cents(amount))
        elif tool == "ledger":  # --balance-format '%(account)\t%(display_total)\n'
            for line in f:
                if line.strip():
                    acct, amount = line.rstrip("\n").split("\t")
                    put(from_account(acct), cents(amount))
        elif tool == "hledger":  # balance -O csv: "account","balance" ... "total"
            rows = list(csv.reader(f))
            assert rows[0] == ["account", "balance"], rows[0]
            for acct, amount in rows[1:]:
                if acct != "total":
                    put(from_account(acct), cents(amount))
        elif tool == "beancount":  # bean-query -f csv: account,total
            rows = list(csv.reader(f))
            assert [c.strip() for c in rows[0]] == ["account", "total"], rows[0]
            for acct, amount in rows[1:]:
                put(from_account(acct), cents(amount))
        else:
            raise SystemExit(f"check.py: unknown tool {tool}")
    return totals


def main():
    tool, output, expected_path = sys.argv[1:4]
    got = parse(tool, output)
    expected = parse("costshare", expected_path)
    if not expected:
        raise SystemExit("check.py: no expected totals")
    bad = []
    for key in sorted(set(got) | set(expected)):
        g, e = got.get(key, 0), expected.get(key, 0)
        if g != e:
            bad.append(f"  {key[0]},{key[1]}: {tool} {g / 100:.2f}, expected {e / 100:.2f}, diff {(g - e) / 100:+.2f}")
    if bad:
        print(f"{tool}: per-party, per-category totals DIFFER from the exact ones:", file=sys.stderr)
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print(f"{len(got)} totals, {sum(got.values()) / 100:.2f} USD in all")


if __name__ == "__main__":
    main()
