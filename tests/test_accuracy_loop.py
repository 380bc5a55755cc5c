"""Realised accuracy of stored forecasts and the retraining trigger."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.stages.accuracy import series_needing_retrain
from fleetcast.stages.serving import forecast_all
from fleetcast.stages.training import train_all, train_if_needed
from models.accuracy import RetrainPolicy, coverage, mase, mase_scale, retrain_flags, smape

START = datetime(1970, 1, 1)


def insert(settings: Settings, game_type: str, start: datetime, hours: int, scale: float) -> None:
    ts = pd.date_range(start, periods=hours, freq="h")
    rng = np.random.default_rng(hours)
    y = scale * (500 + 300 * np.sin(2 * np.pi * ts.hour.to_numpy() / 24)) + rng.normal(0, 10, hours)
    frame = pl.DataFrame({"ts": ts.to_numpy(), "game_type": game_type, "value": y})
    with db.session(settings.db_path) as con:
        con.register("frame", frame)
        con.execute(
            "insert into metrics select ts, game_type, 'global', 'players', value, 't' from frame"
        ).fetchall()


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def test_metrics_on_literal_arrays() -> None:
    actual = np.array([10.0, 20.0, 30.0])
    assert smape(actual, actual) == 0.0
    assert smape(np.array([0.0]), np.array([0.0])) == 0.0
    assert smape(np.array([10.0]), np.array([30.0])) == pytest.approx(100.0)
    assert mase(actual, actual + 2, 4.0) == pytest.approx(0.5)
    assert mase_scale(np.arange(30, dtype=float), season=24) == pytest.approx(24.0)
    assert math.isnan(mase_scale(np.ones(30)))  # a flat history has no scale
    assert coverage(actual, actual - 1, actual + 1) == 1.0
    assert coverage(actual, actual + 1, actual + 2) == 0.0


def test_retrain_flags_margin_and_minimum_points() -> None:
    realised = pl.DataFrame(
        {"model_id": ["a", "b", "c", "d"], "n": [24, 24, 5, 24], "mase": [2.0, 1.1, 9.0, 4.0]}
    )
    backtest = pl.DataFrame({"model_id": ["a", "b", "c"], "backtest_mase": [1.0, 1.0, 1.0]})
    out = retrain_flags(realised, backtest, RetrainPolicy(margin=0.25, min_points=12))
    flags = dict(zip(out["model_id"], out["retrain"], strict=True))
    assert flags == {"a": True, "b": False, "c": False, "d": True}  # d: no backtest, MASE > 3
    reasons = dict(zip(out["model_id"], out["reason"], strict=True))
    assert "backtest" in reasons["a"] and "only 5 actuals" in reasons["c"]


def test_accuracy_loop_flags_drift_and_retrains_only_that_series(settings: Settings) -> None:
    insert(settings, "steady", START, 24 * 5, 1.0)
    insert(settings, "drifting", START, 24 * 5, 1.0)
    first = {r.key.game_type: r for r in train_all(settings, candidates=("snaive24",))}
    forecast_all(settings, 24)
    later = START + timedelta(days=5)
    insert(settings, "steady", later, 24, 1.0)  # actuals as forecast
    insert(settings, "drifting", later, 24, 3.0)  # demand tripled

    scored = pl.DataFrame()
    assert main(["--db", str(settings.db_path), "accuracy"]) == 0
    with db.session(settings.db_path) as con:
        scored = con.sql("select * from accuracy order by game_type").pl()
        flagged = series_needing_retrain(con)
    assert scored["n"].to_list() == [24, 24]
    rows = {r["game_type"]: r for r in scored.iter_rows(named=True)}
    assert rows["drifting"]["retrain"] and not rows["steady"]["retrain"]
    assert rows["steady"]["mase"] < 1.0 < rows["drifting"]["mase"]
    assert rows["steady"]["backtest_mase"] == pytest.approx(first["steady"].score)
    assert 0.0 <= rows["steady"]["coverage"] <= 1.0
    assert [k.game_type for k, _ in flagged] == ["drifting"]

    retrained = train_if_needed(settings, candidates=("snaive24",))
    assert [r.key.game_type for r in retrained] == ["drifting"]
    with db.session(settings.db_path) as con:
        assert series_needing_retrain(con) == []  # trained since it was scored
        versions = dict(
            con.sql("select game_type, max(version) from models group by all").fetchall()
        )
    assert versions == {"steady": 1, "drifting": 2}
    assert train_if_needed(settings) == []
