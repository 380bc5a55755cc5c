"""One owner of the database, work on a Dask cluster: with an address configured, training,
forecasting and the hourly cycle's decisions ship plain data to the workers of a real
``LocalCluster`` (worker processes started in an empty folder, guarded against opening any
DuckDB file) and write what comes back here; the stored models, forecasts and decisions are
those of the local run, and a worker killed mid-run loses no result."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cloudpickle
import helpers_dask
import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers_data import store_metrics

from fleetcast.config import Settings, job_runner
from fleetcast.resources import db
from fleetcast.resources.aws import GroupState, RecordedBackend
from fleetcast.resources.dask_pool import DaskPool
from fleetcast.resources.pool import LocalPool
from fleetcast.stages.allocate import allocate
from fleetcast.stages.fleets import upsert_fleets
from fleetcast.stages.orchestration import DASK_ADDRESS_ENV, settings_for
from fleetcast.stages.serving import forecast_all
from fleetcast.stages.training import train_all
from models.policy import FleetSpec

CANDIDATES = ("snaive24", "mstl")  # with their ensemble; mstl takes a while per series
SERIES = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two worker processes started in an empty folder, each guarded (helpers_dask)."""
    from distributed import Client, LocalCluster

    empty = tmp_path_factory.mktemp("workers-cwd")
    here = Path.cwd()
    os.chdir(empty)  # the workers' working directory: nothing in it
    try:
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None, local_directory=str(empty))  # fmt: skip
    finally:
        os.chdir(here)
    cloudpickle.register_pickle_by_value(helpers_dask)
    with c, Client(c.scheduler_address, set_as_default=False) as client:
        client.register_plugin(helpers_dask.NoDatabase())
        assert all(client.run(helpers_dask.probe).values())  # the guard refuses a connection
        yield c.scheduler_address
        assert list(os.listdir(empty)) == [] or all(
            not name.endswith((".duckdb", ".wal")) for name in os.listdir(empty)
        )


def _guard_records(address: str) -> list[str]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        got = client.run(helpers_dask.seen)
    return [x for records in got.values() for x in records]


START = pd.Timestamp("2026-02-01")
HOURS = 24 * 12


def _data(settings: Settings) -> None:
    rng = np.random.default_rng(3)
    ts = pd.date_range(START, periods=HOURS, freq="h")
    parts = []
    for i in range(SERIES):
        y = (300 + 90 * i) * np.exp(0.5 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 12 + i) / 24))
        parts.append(pl.DataFrame({"ts": ts.to_numpy(), "game_type": f"game_{i % 3}",
                                   "region": f"r{i // 3}", "metric": "players",
                                   "value": y * np.exp(rng.normal(0, 0.06, ts.size)),
                                   "batch_id": "test"}))  # fmt: skip
    store_metrics(settings, pl.concat(parts))


def _models(settings: Settings) -> pl.DataFrame:
    with db.session(settings.db_path, read_only=True) as con:
        return con.sql(
            "select game_type, region, metric, kind, is_champion, score, model_json, sha256 "
            "from models order by all"
        ).pl()


def _forecasts(settings: Settings) -> pl.DataFrame:
    with db.session(settings.db_path, read_only=True) as con:
        return con.sql(
            "select game_type, region, metric, ts, model, yhat, yhat_lower, yhat_upper, yhat_q90 "
            "from forecasts order by game_type, region, metric, ts"
        ).pl()


def _scale(settings: Settings) -> list[tuple[str, int, str, str]]:
    """The hourly cycle's plan, apply and record (what ``fleetcast scale`` and the
    forecast-and-scale flow run after the forecast) for a fleet per series, 20 minutes after
    the newest hour, against groups held in memory: (fleet, target, status, reason)."""
    specs = [
        FleetSpec(fleet=f"game_{i % 3}-r{i // 3}", game_type=f"game_{i % 3}", region=f"r{i // 3}",
                  asg_name=f"g{i}-asg", capacity_players=50.0, min_size=1, max_size=60,
                  mode="scale")
        for i in range(SERIES)
    ]  # fmt: skip
    with db.session(settings.db_path) as con:
        upsert_fleets(con, specs)
    backend = RecordedBackend(
        [GroupState(f.asg_name, 2, 1, 60, {"fleetcast:managed": "true"}) for f in specs]
    )
    now = (START + pd.Timedelta(hours=HOURS - 1, minutes=20)).to_pydatetime()
    done = allocate(settings, now=now, backend=backend, run_id="hourly")
    return [(d.fleet, d.target, d.status, d.reason) for d in done]


def test_the_composition_root_chooses_where_jobs_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert job_runner(settings_for(None), 3) == LocalPool(3)
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    assert job_runner(settings_for(None)) == DaskPool("tcp://10.0.0.5:8786")


def test_train_forecast_and_the_hourly_cycle_on_the_cluster_store_what_the_local_run_does(
    settings: Settings, tmp_path: Path, cluster: str
) -> None:
    from distributed import Client

    _data(settings)
    remote = replace(settings, db_path=tmp_path / "remote" / "f.duckdb", dask_address=cluster)
    remote.db_path.parent.mkdir()
    shutil.copy(settings.db_path, remote.db_path)

    local_trained = train_all(settings, candidates=CANDIDATES, workers=1)
    remote_trained = train_all(remote, candidates=CANDIDATES)
    assert [r.status for r in remote_trained] == ["trained"] * SERIES
    assert [(r.key, r.champion, r.score) for r in remote_trained] == [
        (r.key, r.champion, r.score) for r in local_trained
    ]
    assert _models(remote).equals(_models(settings))

    forecast_all(settings, 12, workers=1)
    forecast_all(remote, 12)
    assert _forecasts(remote).height == SERIES * 12
    assert _forecasts(remote).equals(_forecasts(settings))

    decided = _scale(remote)  # the hourly cycle's decisions, made on the cluster
    assert decided == _scale(settings)
    assert len({t for _, t, _, _ in decided}) >= 3 and all("nowcast" in r for *_, r in decided)

    # the jobs did run on the cluster's workers
    with Client(cluster, set_as_default=False) as client:
        keys = client.run_on_scheduler(
            lambda dask_scheduler: {str(t[0]) for t in dask_scheduler.transition_log}
        )
    assert sum(k.startswith("train_job-") for k in keys) >= SERIES
    assert sum(k.startswith("forecast_job-") for k in keys) >= SERIES
    assert any(k.startswith("decide_batch-") for k in keys)
    assert _guard_records(cluster) == []  # no worker connected to or opened a database


def test_a_worker_killed_mid_run_loses_no_result(
    settings: Settings, tmp_path: Path, cluster: str
) -> None:
    from distributed import Client

    _data(settings)
    local = replace(settings, db_path=tmp_path / "local.duckdb")
    shutil.copy(settings.db_path, local.db_path)
    remote = replace(settings, dask_address=cluster)
    killed: list[int] = []

    def kill_one_busy_worker() -> None:
        with Client(cluster, set_as_default=False) as client:
            pids = client.run(os.getpid)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [w for w, keys in client.processing().items()
                        if any(str(k).startswith("train_job-") for k in keys)]  # fmt: skip
                if busy and busy[0] in pids:
                    time.sleep(0.3)  # inside the fit
                    os.kill(pids[busy[0]], signal.SIGKILL)  # a worker process this test started
                    killed.append(pids[busy[0]])
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    results = train_all(remote, candidates=CANDIDATES)
    killer.join()
    assert killed, "no worker was busy to kill"
    assert [r.status for r in results] == ["trained"] * SERIES
    stored = _models(remote)
    # each series' result written once: one champion per series, the local run's models
    assert stored.filter(pl.col("is_champion")).height == SERIES
    train_all(local, candidates=CANDIDATES, workers=1)
    assert stored.equals(_models(local))
    assert _guard_records(cluster) == []
