"""Training through a Dask cluster against the local pool, on this machine: the same series,
the same candidates, wall time, per-series cost and the bytes each series' job ships.

    nice -n 10 .venv/bin/python benchmarks/dask_training.py [--series 2000] [--workers 2]

Setup (not timed): ``--series`` hourly players series of ``--days`` days in a fresh DuckDB
file. Then ``train_all`` twice from the same data: once on the local pool (``--workers``
processes), once with ``dask_address`` set to a ``LocalCluster`` of ``--workers`` single-thread
worker processes started here (its start-up not timed). Each run is split into the jobs (the
job runner's ``run``: per-series CV and fits, on the workers) and the owner's share (reads, the
panel model, writes: the rest of ``train_all``), with the CPU seconds of each side (the local
pool: this process and its spawned workers; the cluster: its worker processes, read from them).
Bytes shipped: each job as pickled to cross to a worker (the series' key, history, events, CV
configuration, candidates and its panel score), and each result as pickled to come back,
summed over the series. A projection for N workers is the jobs' CPU per series over N plus the
owner's share, stated as a projection.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, peak_rss_mb, table  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (a local pool's)."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _worker_cpu() -> float:
    """CPU seconds of a Dask worker process so far (run on each worker by ``client.run``)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Timed:
    """The training jobs' share of a run: wall seconds, bytes each way, what ran them."""

    seconds: float = 0.0
    sent: int = 0
    returned: int = 0
    jobs: int = 0
    log: list[str] = field(default_factory=list)


def timed_runner(real: Any, timed: Timed) -> Any:
    """``fleetcast.config.job_runner`` wrapped: the runner it returns, its ``run`` timed and
    its jobs and results measured as pickled to cross to a worker and back."""

    def make(settings: Any, workers: int | None = None) -> Any:
        runner = real(settings, workers)

        class Measured:
            def run(self, fn: Any, jobs: Any, **kw: Any) -> Any:
                timed.sent += sum(len(pickle.dumps(j, protocol=5)) for j in jobs)
                timed.jobs += len(jobs)
                t0 = time.perf_counter()
                out = runner.run(fn, jobs, **kw)
                timed.seconds += time.perf_counter() - t0
                timed.returned += sum(len(pickle.dumps(r, protocol=5)) for r in out)
                timed.log.append(type(runner).__name__)
                return out

        return Measured()

    return make


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--candidates", default=None, help="local candidates (default: the product's)")
    args = p.parse_args(argv)

    import numpy as np
    import polars as pl
    from distributed import Client, LocalCluster

    from fleetcast.config import Settings
    from fleetcast.resources import db
    from fleetcast.stages import training
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
        remote_db = folder / "remote.duckdb"
        shutil.copy(local.db_path, remote_db)
        real = training.job_runner
        here_jobs, there_jobs = Timed(), Timed()

        training.job_runner = timed_runner(real, here_jobs)
        c0, t0 = _cpu(), time.perf_counter()
        here = train_all(local, candidates=candidates, workers=args.workers)
        local_s, local_cpu = time.perf_counter() - t0, _cpu() - c0
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
        with cluster, Client(cluster.scheduler_address, set_as_default=False) as client:
            remote = replace(local, db_path=remote_db, dask_address=cluster.scheduler_address)
            training.job_runner = timed_runner(real, there_jobs)
            w0 = sum(client.run(_worker_cpu).values())
            c0, t0 = _cpu(), time.perf_counter()
            there = train_all(remote, candidates=candidates)
            dask_s, dask_own = time.perf_counter() - t0, _cpu() - c0
            workers_cpu = sum(client.run(_worker_cpu).values()) - w0
        training.job_runner = real
    n = args.series
    same = [(r.key, r.champion) for r in here] == [(r.key, r.champion) for r in there]
    trained = [sum(r.status == "trained" for r in x) for x in (here, there)]
    rows: list[tuple[object, ...]] = [
        ("local pool: whole run", f"{local_s:.1f}", f"{local_s / n * 1000:.0f}",
         f"{local_cpu:.1f}", trained[0], "CPU: this process and its pool"),
        ("  of which the jobs", f"{here_jobs.seconds:.1f}",
         f"{here_jobs.seconds / n * 1000:.0f}", "", "", " ".join(here_jobs.log)),
        ("  the owner's share", f"{local_s - here_jobs.seconds:.1f}", "", "", "",
         "reads, panel model, writes"),
        (f"Dask LocalCluster ({args.workers} workers): whole run", f"{dask_s:.1f}",
         f"{dask_s / n * 1000:.0f}", f"{dask_own + workers_cpu:.1f}", trained[1],
         f"same champions: {same}"),
        ("  of which the jobs", f"{there_jobs.seconds:.1f}",
         f"{there_jobs.seconds / n * 1000:.0f}", f"{workers_cpu:.1f}", "",
         "CPU: the workers' " + " ".join(there_jobs.log)),
        ("  the owner's share", f"{dask_s - there_jobs.seconds:.1f}", "", f"{dask_own:.1f}",
         "", "CPU: this process (owner, client)"),
    ]  # fmt: skip
    print(machine())
    print(f"\n{n} series x {args.days} days, candidates {candidates or 'the default'}\n")
    print(table(("where", "wall s", "wall ms/series", "CPU s", "trained", "note"), rows))
    per = workers_cpu / n
    owner = dask_s - there_jobs.seconds
    print(
        f"\nshipped per series: {there_jobs.sent / n / 1024:.1f} KiB to a worker, "
        f"{there_jobs.returned / n / 1024:.1f} KiB back "
        f"({there_jobs.sent / 2**20:.1f} / {there_jobs.returned / 2**20:.1f} MiB in all)"
    )
    print(f"the workers' CPU per series: {per * 1000:.0f} ms")
    print(
        "projection (not measured): N workers on their own cores, the owner's share as here: "
        + ", ".join(f"N={k}: {owner + per * n / k:.0f} s" for k in (2, 4, 8, 16, 32))
    )
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
