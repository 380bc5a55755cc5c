"""Replay speed: a 31-day replay of one fleet (744 scored hours, 7 weeks of history fed to the
decision forecaster), one knob setting, three times.

    .venv/bin/python benchmarks/replay_speed.py
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from models.policy import FleetSpec  # noqa: E402
from models.replay import replay  # noqa: E402


def main() -> int:
    rng = np.random.default_rng(1)
    n = 24 * 7 * 7 + 24 * 31
    h = np.arange(n)
    y = 1000 * np.exp(0.8 * np.cos(2 * np.pi * h / 24) + rng.normal(0, 0.1, n))
    ts = [datetime(2026, 1, 5) + timedelta(hours=i) for i in range(n)]
    spec = FleetSpec(
        fleet="f", game_type="g", region="global", asg_name="a", capacity_players=1.0,
        min_size=0, max_size=10**6,
    )  # fmt: skip
    for _ in range(3):
        t0, cpu0 = time.perf_counter(), time.process_time()
        r = replay(ts, y, start=ts[n - 24 * 31], end=ts[-1], spec=spec, lead=1)
        print(
            f"31 days scored ({r.frame.height} h, {len(r.decisions)} decisions): "
            f"{time.perf_counter() - t0:.2f} s wall, {time.process_time() - cpu0:.2f} s CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
