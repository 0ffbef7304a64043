"""Summarizes criterion results of the `envelope` bench: mean per event and
the fastest sample (per-iteration time of the quickest of the 100 samples),
which is what an uncontended core gives on a shared, busy machine.

python3 crates/cdc-envelope/benches/summarize.py target/criterion/employees
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion/employees"
rows = []
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name, "new")
    if not os.path.isdir(d):
        continue
    est = json.load(open(os.path.join(d, "estimates.json")))
    sample = json.load(open(os.path.join(d, "sample.json")))
    per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
    rows.append((name, est["mean"]["point_estimate"], est["median"]["point_estimate"], min(per_iter)))
print("| benchmark | mean | median | fastest sample |")
print("|---|---:|---:|---:|")
for name, mean, median, best in rows:
    print(f"| {name} | {mean:,.0f} ns | {median:,.0f} ns | {best:,.0f} ns |")
