"""Training throughput: series/s of `fleetcast.stages.training.train_all` on N generated
hourly series with 1 worker (in-process) and with 2 workers (the pool `train_all` chooses:
spawned processes for this many series with a slow candidate such as Prophet), and the speed-up.

    .venv/bin/python benchmarks/training.py [--series 48] [--metrics 2] [--days 56]
        [--candidates default|a,b]

The defaults are the product's own training job, not a toy: 56 days (`MAX_HISTORY_DAYS`, the
8-week window the product trains on) per series, the product's default local candidate set
(`default`: prophet, mstl, snaive168, snaive24 and the ensemble, each rolling-origin CV + final
fit), and 48 series of each of 2 metrics (players, sessions: the product trains every metric
of a game type and region), just under `LARGE_PANEL` per metric (50: above it the product
trains only the cheap candidates beside the panel model). About 80 s with one worker on a
2-core machine. Fixed costs (a worker's start-up, about a second; the tail, when one worker
finishes the last series alone) weigh less the more series there are: 48 series of one metric
(`--metrics 1`) gave 1.74-1.81x where 96 gave 1.84x. The
panel stage (one LightGBM per metric, not parallelised by the pool) is off.

Each run is its own fresh process on its own copy of the same DuckDB file. "peak RSS MB" is
that process's; "peak tree RSS MB" the largest sum, sampled every 0.25 s, of its RSS and its
child processes' (pool workers, cmdstan runs), and at least the former: the memory the run
needs (a little high: pages shared between processes count in each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import in_child, machine, peak_rss_mb, table  # noqa: E402

DEFAULT = "default"  # the product's default local candidates (train_all(candidates=None))


METRICS = ("players", "sessions", "cpu_cores", "memory_gb")


def make_db(path: Path, series: int, days: int, metrics: int = 1) -> None:
    import numpy as np
    import polars as pl

    from fleetcast.resources import db

    hours = days * 24
    end = datetime(2026, 1, 1)
    rng = np.random.default_rng(11)
    parts = []
    for m, i in ((m, i) for m in METRICS[:metrics] for i in range(series)):
        t = np.arange(hours)
        y = (500 + 50 * i) * np.exp(0.5 * np.sin(2 * np.pi * (t % 24 - 14) / 24))
        y = y * (1 + 0.15 * (t % 168 >= 120)) * np.exp(rng.normal(0, 0.05, hours))
        parts.append(pl.DataFrame({
            "ts": [end - timedelta(hours=hours - int(h)) for h in t],
            "game_type": f"game_{i}", "region": "global", "metric": m,
            "value": y, "batch_id": "bench"}))  # fmt: skip
    frame = pl.concat(parts)  # noqa: F841 (read by name in the SQL below)
    with db.session(path) as con:
        con.execute("insert into metrics select * from frame").fetchall()


def tree_rss_mb(root: int) -> float:
    """Summed RSS of process ``root`` and all its descendants now, in MB (Linux ``/proc``)."""
    parent, rss = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue
        parent[int(name)], rss[int(name)] = int(fields[1]), int(fields[21])  # ppid, rss pages
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakTreeRss:
    """Samples ``tree_rss_mb`` of this process every ``every`` seconds; ``peak`` is the max."""

    def __init__(self, every: float = 0.25) -> None:
        self.peak, self._every, self._stop = 0.0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))
            self._stop.wait(self._every)

    def __enter__(self) -> PeakTreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stage(db_path: Path, workers: int, candidates: str) -> dict:
    from fleetcast.config import Settings
    from fleetcast.resources.pool import training_pool
    from fleetcast.stages.training import slow_candidates, train_all

    settings = Settings(db_path=db_path, work_dir=db_path.parent / "work")
    chosen = None if candidates == DEFAULT else tuple(candidates.split(","))
    with PeakTreeRss() as tree:
        t0 = time.perf_counter()
        results = train_all(settings, workers=workers, candidates=chosen, panel=False)
        took = time.perf_counter() - t0
    trained = sum(1 for r in results if r.model_ids)
    # the choice train_all just made (panel off: the local candidates are `chosen`)
    kind, n = training_pool(len(results), workers, slow=slow_candidates(chosen))
    return {"workers": workers, "series": len(results), "trained": trained, "seconds": took,
            "pool": kind if kind == "in-process" else f"{kind} x{n}",
            "peak_rss_mb": peak_rss_mb(), "tree_rss_mb": max(tree.peak, peak_rss_mb())}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--series", type=int, default=48, help="series per metric")
    p.add_argument("--metrics", type=int, default=2, choices=range(1, len(METRICS) + 1),
                   help="metrics per series key (players, sessions, ...)")  # fmt: skip
    p.add_argument("--days", type=int, default=56)
    p.add_argument("--candidates", default=DEFAULT,
                   help=f"a,b,... or {DEFAULT!r} (the product's default local set)")  # fmt: skip
    p.add_argument("--stage", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        db_path, workers, cands = args.stage
        print(json.dumps(stage(Path(db_path), int(workers), cands)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        base = Path(tmp) / "base.duckdb"
        make_db(base, args.series, args.days, args.metrics)
        for workers in (1, 2):
            copy = Path(tmp) / f"w{workers}" / "f.duckdb"
            copy.parent.mkdir()
            shutil.copy(base, copy)
            results.append(in_child(__file__, str(copy), str(workers), args.candidates))
    one = results[0]["seconds"]
    rows = [(r["workers"], r["pool"], r["series"], r["trained"], f"{r['seconds']:.1f}",
             f"{r['series'] / r['seconds']:.2f}", f"{one / r['seconds']:.2f}x",
             f"{r['peak_rss_mb']:.0f}", f"{r['tree_rss_mb']:.0f}") for r in results]  # fmt: skip
    cands = args.candidates
    if cands == DEFAULT:
        from models.selection import ENSEMBLES, FORECASTERS

        cands = ",".join([*FORECASTERS, *ENSEMBLES]) + " (the default set)"
    print(machine())
    print(f"\n{args.series} series x {args.metrics} metrics x {args.days * 24} hourly points, "
          f"candidates {cands} (rolling-origin CV + final fit each), panel off\n")  # fmt: skip
    print(table(("workers", "pool", "series", "trained", "seconds", "series/s", "speed-up",
                 "peak RSS MB", "peak tree RSS MB"), rows))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
