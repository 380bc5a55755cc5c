"""Averages the per-series tables printed by benchmarks/replay.py (a run stopped early, or
parts of two runs) exactly as its summary does: ``python benchmarks/replay_summary.py LOG``."""

import re
import sys

import numpy as np

LV = ("+5%", "+10%", "+20%")


def parse(path):
    groups = {}
    cur = None
    for line in open(path):
        m = re.match(r"^-- (\S+) (\S+):", line)
        if m:
            cur = {"group": m.group(1), "name": m.group(2), "rows": {}}
            groups.setdefault(m.group(1), []).append(cur)
            continue
        if cur is None:
            continue
        for plan in ("policy", "forecast x (1+m)", "reactive", "seasonal rule"):
            if line.startswith(plan + " ") and len(line.split()) >= 8:
                rest = line[len(plan) :].split()
                cur["rows"][plan] = rest
    return groups


def val(x):
    return None if x == "-" else float(x.rstrip("%")) / 100


for group, series in parse(sys.argv[1]).items():
    series = [s for s in series if len(s["rows"]) == 4]
    print(f"== {group}: {len(series)} series")
    means = {}
    for plan in ("policy", "forecast x (1+m)", "reactive", "seasonal rule"):
        out = []
        for i, _lv in enumerate(LV):
            for j in (0, 1):
                vals = []
                for s in series:
                    v = val(s["rows"][plan][1 + 2 * i + j])
                    if v is None and plan == "policy":
                        v = val(s["rows"]["reactive"][1 + 2 * i + j])
                    vals.append(v)
                out.append(np.mean(vals))
        ch = []
        for s in series:
            c = s["rows"][plan][7]
            ch.append(float(c) if c != "-" else float(s["rows"]["reactive"][7]))
        means[plan] = out
        print(
            f"{plan:<22}"
            + "".join(f" {x:>9.2%}" if k % 2 == 0 else f" {x:>9.3%}" for k, x in enumerate(out))
            + f" {np.mean(ch):>8.1f}"
        )
    for ref in ("seasonal rule", "forecast x (1+m)"):
        print(
            f"{'policy / ' + ref:<22}"
            + "".join(
                f" {a / b:>8.2f}x" if b else "      inf"
                for a, b in zip(means["policy"], means[ref], strict=False)
            )
        )
    reach = [sum(1 for s in series if s["rows"]["policy"][1 + 2 * i] != "-") for i in range(3)]
    lows = [float(s["rows"]["policy"][0].rstrip("%")) / 100 for s in series]
    print(
        f"policy reaches +5% on {reach[0]}, +10% on {reach[1]}, +20% on {reach[2]} of "
        f"{len(series)}; lowest over median {np.median(lows):+.1%}, worst {max(lows):+.1%}"
    )
