"""Scale-out: with FLEETCAST_DASK_ADDRESS set, a run over every game type forecasts each game
type as its own task on the Dask cluster (Prefect's DaskTaskRunner); a small local cluster here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fleetcast.config import Settings
from fleetcast.interface.sample import generate
from fleetcast.stages.fleets import import_fleets
from fleetcast.stages.ingest import ingest_paths
from fleetcast.stages.orchestration import DASK_ADDRESS_ENV, settings_for, task_runner
from fleetcast.stages.training import train_all
from flows.params import ForecastAndScaleParams

GAMES = ("casual_puzzle", "ranked_arena")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c.scheduler_address


def test_task_runner_follows_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert isinstance(task_runner(settings_for(None)), ThreadPoolTaskRunner)
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://127.0.0.1:8786")
    assert isinstance(task_runner(settings_for(None)), DaskTaskRunner)


def test_forecast_runs_per_game_type_on_a_dask_cluster(
    tmp_path: Path, prefect_harness: None, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    from flows.forecast_and_scale import forecast_and_scale

    landing, db = tmp_path / "landing", tmp_path / "fleetcast.duckdb"
    end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    generate(landing, days=8, seed=3, end=end - timedelta(hours=1))
    for path in landing.iterdir():  # two game types' players, and their fleets
        if path.name not in {f"metrics_wide_{g}.csv" for g in GAMES} | {"fleets.csv"}:
            path.unlink()
    fleets = pl.read_csv(landing / "fleets.csv").filter(pl.col("game_type").is_in(GAMES))
    fleets.write_csv(tmp_path / "fleets.csv")
    (landing / "fleets.csv").unlink()
    import_fleets(tmp_path / "fleets.csv", db)
    settings = Settings(db_path=db, landing_dir=landing, work_dir=tmp_path / "work")
    ingest_paths(settings, [landing], data_docs=False)
    for game in GAMES:
        assert any(r.status == "trained" for r in train_all(settings, game, "players"))

    monkeypatch.setenv(DASK_ADDRESS_ENV, cluster)
    params = ForecastAndScaleParams(
        db=str(db), landing=str(landing), capacity_mode="forecast_only", horizon_hours=6
    )
    state = forecast_and_scale(params, return_state=True)
    assert state.is_completed(), state
    summary = state.result()

    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = con.sql(
            "select game_type, count(distinct run_id) from forecasts group by game_type order by 1"
        ).fetchall()
        decided = con.sql("select count(distinct game_type) from allocations").fetchall()[0][0]
    finally:
        con.close()
    assert runs == [(g, 1) for g in sorted(GAMES)]  # one forecast task (and run) per game type
    assert decided == len(GAMES) and len(summary.decisions) == fleets.height

    with Client(cluster) as client:
        keys = client.run_on_scheduler(
            lambda dask_scheduler: [str(t[0]) for t in dask_scheduler.transition_log]
        )
    assert sum("forecast_series" in k for k in set(keys)) == len(GAMES), set(keys)
