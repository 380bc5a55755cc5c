"""The live decision's nowcast feed, fed at once (``models.decision.feed``, through
``models.nowcast.feed_leads``) against the plain nowcaster fed hour by hour (the replay's way):
the nowcast's whole feed window, two forecast hours, as a decision at five past the hour has.

    nice -n 10 .venv/bin/python benchmarks/nowcast_feed.py [--repeat 20]

Both give the same state and forecasts bit for bit (tests/test_nowcast_feed.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)

    import numpy as np

    from models.decision import DecisionForecaster, decision_config, feed, feed_hours
    from models.policy import FleetSpec

    cfg = decision_config(FleetSpec("f", "g", "r", "a", 100.0, 1, 80))
    n = feed_hours(cfg, 2)
    rng = np.random.default_rng(5)
    ts = [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(n)]
    shape = np.exp(0.5 * np.sin(2 * np.pi * (np.arange(n) % 24 - 14) / 24))
    y = (1000 * shape * np.exp(rng.normal(0, 0.05, n))).tolist()
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        feed(ts, y, (1, 2), cfg)
    fast = (time.perf_counter() - t0) / args.repeat
    t0 = time.perf_counter()
    for _ in range(max(1, args.repeat // 5)):
        fc = DecisionForecaster((1, 2), cfg)
        for t, v in zip(ts, y, strict=True):
            fc.observe(t, v)
    plain = (time.perf_counter() - t0) / max(1, args.repeat // 5)
    print(machine())
    print(f"\n{n} hours fed, forecast hours 1 and 2\n")
    rows = [("fed at once (live)", f"{fast * 1000:.1f}", ""),
            ("hour by hour (plain)", f"{plain * 1000:.1f}", f"{plain / fast:.1f}x")]  # fmt: skip
    print(table(("feed", "ms per decision", "ratio"), rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
