"""Training through a Dask cluster against the local pool, on this machine: the same series,
the same candidates, wall time, per-series cost and the bytes each series' job ships.

    nice -n 10 .venv/bin/python benchmarks/dask_training.py [--series 2000] [--workers 2]

Setup (not timed): ``--series`` hourly players series of ``--days`` days in a fresh DuckDB
file. Then ``train_all`` twice from the same data: once on the local pool (``--workers``
processes), once with ``dask_address`` set to a ``LocalCluster`` of ``--workers`` single-thread
worker processes started here (its start-up not timed). Bytes shipped: each job as Dask
pickles it (``distributed.protocol.serialize``), summed over the series; results come back
about as large (the fitted candidates and scores). A projection for N workers is the per-series
cost over N plus the owner's share (reads, the panel model, writes), stated as a projection.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, peak_rss_mb, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--candidates", default=None, help="local candidates (default: the product's)")
    args = p.parse_args(argv)

    import numpy as np
    import polars as pl
    from distributed import LocalCluster
    from distributed.protocol import serialize

    from fleetcast.config import Settings
    from fleetcast.resources import db
    from fleetcast.stages.histories import events_for, load_events, load_histories
    from fleetcast.stages.training import train_all

    candidates = tuple(args.candidates.split(",")) if args.candidates else None
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        local = Settings(db_path=folder / "local.duckdb", work_dir=folder / "work")
        hours = args.days * 24
        rng = np.random.default_rng(5)
        t = np.arange(hours)
        base = 300 + 40 * (np.arange(args.series) % 50)
        shape = np.exp(0.5 * np.sin(2 * np.pi * (t % 24 - 14) / 24))
        values = base[:, None] * shape * np.exp(rng.normal(0, 0.06, (args.series, hours)))
        ts = pl.datetime_range(
            pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1) + pl.duration(hours=hours - 1),
            "1h", eager=True,
        ).to_list()  # fmt: skip
        frame = pl.DataFrame(  # noqa: F841 (read by name in the SQL below)
            {
                "ts": ts * args.series,
                "game_type": np.repeat([f"game_{i // 5}" for i in range(args.series)], hours),
                "region": np.repeat([f"r{i % 5}" for i in range(args.series)], hours),
                "metric": "players",
                "value": values.ravel(),
                "batch_id": "bench",
            }
        )
        with db.session(local.db_path) as con:
            con.execute("insert into metrics select * from frame").fetchall()
            histories, events = load_histories(con), load_events(con)
        shipped = sum(
            sum(len(f) for f in serialize((k, h, events_for(events, k)), on_error="raise")[1])
            for k, h in histories.items()
        )
        remote_db = folder / "remote.duckdb"
        shutil.copy(local.db_path, remote_db)

        t0 = time.perf_counter()
        here = train_all(local, candidates=candidates, workers=args.workers)
        local_s = time.perf_counter() - t0
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:  # fmt: skip
            remote = replace(local, db_path=remote_db, dask_address=cluster.scheduler_address)
            t0 = time.perf_counter()
            there = train_all(remote, candidates=candidates)
            dask_s = time.perf_counter() - t0
    n = args.series
    same = [(r.key, r.champion) for r in here] == [(r.key, r.champion) for r in there]
    rows = [
        ("local pool", f"{local_s:.1f}", f"{local_s / n * 1000:.0f}",
         sum(r.status == "trained" for r in here), ""),
        (f"Dask LocalCluster ({args.workers} workers)", f"{dask_s:.1f}",
         f"{dask_s / n * 1000:.0f}", sum(r.status == "trained" for r in there),
         f"same champions: {same}"),
    ]  # fmt: skip
    print(machine())
    print(f"\n{n} series x {args.days} days, candidates {candidates or 'the default'}; "
          f"shipped to workers: {shipped / n / 1024:.1f} KiB per series "
          f"({shipped / 2**20:.1f} MiB in all)\n")  # fmt: skip
    print(table(("where", "seconds", "ms/series", "trained", "note"), rows))
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
