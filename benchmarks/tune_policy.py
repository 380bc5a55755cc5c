"""Tune the policy's rules on steam-dev's validation weeks (days 8-14 of each series), apart
from the hours ``benchmarks/replay.py`` reports (days 14-30).

    .venv/bin/python benchmarks/tune_policy.py /work/shared/data/steam-dev val \\
        '{"defaults": {}, "tolerance 0.15": {"spec": {"tolerance": 0.15}}}' \\
        '[0.2, 0.5, 0.8, 0.95, 0.99, [0.99, 0.1], [0.99, 0.25]]'

Arguments: the folder, the window (``val`` = days 8-14, ``test`` = day 14 to the end), variants
as JSON (FleetSpec fields under ``spec``, NowcastConfig fields under ``cfg``), the knob settings
(service levels, or [service level, safety margin]) and optionally the number of games. Prints
per variant, averaged over the series: hours short of the policy / the seasonal rule at +5%,
+10%, +20% over-provisioning (a level the policy cannot reach counts at reactive's), the ratio to
its own forecaster x (1 + m) (``fc``), on how many series the policy reaches +5%, its lowest
over-provisioning, and changes at +10% against reactive's. Unit capacity = mean / 1000, lead 1 h.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from models.curve import LEVELS, point, policy_at, reference_at  # noqa: E402
from models.nowcast import NowcastConfig  # noqa: E402
from models.policy import FleetSpec  # noqa: E402
from models.replay import replay  # noqa: E402


def load(folder: Path) -> dict[str, tuple[list[Any], np.ndarray]]:
    f = pl.read_csv(folder / "steam_players_hourly.csv", try_parse_dates=True)
    f = (
        f.with_columns(pl.col("ts").dt.truncate("1h"))
        .group_by("game_type", "ts")
        .agg(pl.col("value").mean())
        .sort("game_type", "ts")
    )
    out = {}
    for (g,), part in f.group_by("game_type", maintain_order=True):
        grid = pl.DataFrame(
            {"ts": pl.datetime_range(part["ts"][0], part["ts"][-1], "1h", eager=True)}
        )
        full = grid.join(part, on="ts", how="left")
        out[str(g)] = (
            full["ts"].to_list(),
            full["value"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        )
    return out


def run(series: dict[str, Any], variant: dict[str, Any], knobs: list[Any], window: str) -> str:
    short: dict[float, list[float]] = {lv: [] for lv in LEVELS}
    seas: dict[float, list[float]] = {lv: [] for lv in LEVELS}
    fcs: dict[float, list[float]] = {lv: [] for lv in LEVELS}
    reach5, lows, changes, changes_r = 0, [], [], []
    for g, (ts, y) in series.items():
        days = (8, 14) if window == "val" else (14, None)
        start = (ts[0] + timedelta(days=days[0])).replace(minute=0)
        end = ts[-1] if days[1] is None else (ts[0] + timedelta(days=days[1])).replace(minute=0)
        unit = float(np.nanmean(y)) / 1000
        spec = FleetSpec(
            fleet="f", game_type=g, region="global", asg_name="a", capacity_players=unit,
            min_size=0, max_size=10**6, **variant.get("spec", {}),
        )  # fmt: skip
        pts, last = [], None
        for i, k in enumerate(knobs):
            q, m = k if isinstance(k, list) else (k, 0.0)
            cfg = NowcastConfig(quantile=q, min_log_margin=None, **variant.get("cfg", {}))
            r = replay(
                ts, y, start=start, end=end, spec=replace(spec, safety_margin=m), lead=1,
                config=cfg,
            )  # fmt: skip
            dem = r.frame["demand"].fill_null(float("nan")).to_numpy()
            pts.append(point(dem, r.frame["capacity"].to_numpy(), float(i)))
            last = r
        assert last is not None
        dem = last.frame["demand"].fill_null(float("nan")).to_numpy()
        lows.append(min(p.over for p in pts))
        for lv in LEVELS:
            refs = {
                k: reference_at(last.bases[k], dem, unit, 0, 10**6, lv)
                for k in ("reactive", "seasonal", "forecast")
            }
            p = policy_at(pts, lv)
            if p is None:
                p = refs["reactive"]
            elif lv == 0.05:
                reach5 += 1
            assert p is not None and refs["seasonal"] is not None and refs["forecast"] is not None
            short[lv].append(p.share_short)
            seas[lv].append(refs["seasonal"].share_short)
            fcs[lv].append(refs["forecast"].share_short)
            if lv == 0.10 and refs["reactive"] is not None:
                changes.append(p.changes)
                changes_r.append(refs["reactive"].changes)
    parts = []
    for lv in LEVELS:
        a, s, f = np.mean(short[lv]), np.mean(seas[lv]), np.mean(fcs[lv])
        parts.append(f"{lv:+.0%}: {a:.3%}/{s:.3%}={a / s:.2f}x fc{a / f:.2f}")
    return (
        " ".join(parts)
        + f" | reach5 {reach5}/{len(series)} low med {np.median(lows):+.1%} max {max(lows):+.1%}"
        + f" | ch {np.mean(changes):.0f} vs react {np.mean(changes_r):.0f}"
    )


def main(argv: list[str]) -> int:
    folder, window, variants = Path(argv[0]), argv[1], json.loads(argv[2])
    knobs = json.loads(argv[3]) if len(argv) > 3 else [0.5, 0.7, 0.85, 0.95, 0.98]
    series = load(folder)
    if len(argv) > 4:
        series = dict(sorted(series.items())[: int(argv[4])])
    for name, v in variants.items():
        t0 = time.perf_counter()
        print(name, run(series, v, knobs, window), f"{time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
