"""Training throughput: series/s of `fleetcast.forecasting.train_all` on N generated hourly series
with 1 worker and with 2 workers (threads: Prophet fits run in cmdstan subprocesses), and the
speed-up.

    .venv/bin/python benchmarks/training.py [--series 16] [--days 14] [--candidates a,b]

Each run is its own fresh process (own peak RSS) on its own copy of the same DuckDB file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import in_child, machine, peak_rss_mb, table  # noqa: E402


def make_db(path: Path, series: int, days: int) -> None:
    import numpy as np
    import polars as pl

    from fleetcast import db

    hours = days * 24
    end = datetime(2026, 1, 1)
    rng = np.random.default_rng(11)
    parts = []
    for i in range(series):
        t = np.arange(hours)
        y = (500 + 50 * i) * np.exp(0.5 * np.sin(2 * np.pi * (t % 24 - 14) / 24))
        y = y * (1 + 0.15 * (t % 168 >= 120)) * np.exp(rng.normal(0, 0.05, hours))
        parts.append(pl.DataFrame({
            "ts": [end - timedelta(hours=hours - int(h)) for h in t],
            "game_type": f"game_{i}", "region": "global", "metric": "players",
            "value": y, "batch_id": "bench"}))  # fmt: skip
    frame = pl.concat(parts)  # noqa: F841 (read by name in the SQL below)
    with db.session(path) as con:
        con.execute("insert into metrics select * from frame").fetchall()


def stage(db_path: Path, workers: int, candidates: str) -> dict:
    from fleetcast.config import Settings
    from fleetcast.forecasting import train_all

    settings = Settings(db_path=db_path, work_dir=db_path.parent / "work")
    t0 = time.perf_counter()
    results = train_all(settings, workers=workers, candidates=tuple(candidates.split(",")),
                        panel=False)  # fmt: skip
    took = time.perf_counter() - t0
    trained = sum(1 for r in results if r.model_ids)
    return {"workers": workers, "series": len(results), "trained": trained, "seconds": took,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--series", type=int, default=16)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--candidates", default="prophet,snaive24")
    p.add_argument("--stage", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        db_path, workers, cands = args.stage
        print(json.dumps(stage(Path(db_path), int(workers), cands)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        base = Path(tmp) / "base.duckdb"
        make_db(base, args.series, args.days)
        for workers in (1, 2):
            copy = Path(tmp) / f"w{workers}" / "f.duckdb"
            copy.parent.mkdir()
            shutil.copy(base, copy)
            results.append(in_child(__file__, str(copy), str(workers), args.candidates))
    one = results[0]["seconds"]
    rows = [(r["workers"], r["series"], r["trained"], f"{r['seconds']:.1f}",
             f"{r['series'] / r['seconds']:.2f}", f"{one / r['seconds']:.2f}x",
             f"{r['peak_rss_mb']:.0f}") for r in results]  # fmt: skip
    print(machine())
    print(f"\n{args.series} series x {args.days * 24} hourly points, candidates "
          f"{args.candidates} (rolling-origin CV + final fit each), panel stage off\n")  # fmt: skip
    print(table(("workers", "series", "trained", "seconds", "series/s", "speed-up",
                 "peak RSS MB"), rows))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
