#!/usr/bin/env python3
"""Seeded costs CSV for the 2022 SMA agreement: N lines of mixed categories.

Usage: bench/gen_costs.py N SEED > costs.csv
Integers only (no floats reach the CSV): amounts in yen, head counts whole.
"""
import random
import sys

n = int(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
sites = ["Okinawa", "Yokosuka", "Yokota", "Iwakuni", "Misawa", "Zama", "Sasebo"]
cats = ["labor"] * 40 + ["welfare"] * 15 + ["utilities"] * 25 + ["training_relocation"] * 5 + ["facilities"] * 10 + ["training_equipment"] * 5
out = sys.stdout
out.write("id,date,category,amount,currency,quantity,site,description\n")
# days of the term 2022-04-01 .. 2027-03-31
import datetime
start = datetime.date(2022, 4, 1)
days = (datetime.date(2027, 3, 31) - start).days + 1
buf = []
for i in range(n):
    c = rng.choice(cats)
    d = start + datetime.timedelta(days=rng.randrange(days))
    site = rng.choice(sites)
    if c == "labor":
        heads = rng.randint(1, 400)
        buf.append(f"B{i:08d},{d.isoformat()},labor,{heads * rng.randint(400000, 520000)},JPY,{heads},{site},payroll\n")
    else:
        buf.append(f"B{i:08d},{d.isoformat()},{c},{rng.randint(1000, 900000000)},JPY,,{site},\n")
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf = []
out.write("".join(buf))
