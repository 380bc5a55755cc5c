"""prefect.yaml and the Prefect building blocks, without running anything: every deployment
points at a flow, its parameters validate, tags/limits/timeouts follow the rules; artifacts
render; the retry condition retries I/O only."""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefect.flows import Flow

from fleetcast.resources.db import DatabaseBusy
from fleetcast.stages.orchestration import is_transient_error
from flows.params import SAMPLE_GAME_TYPES
from models.names import InvalidName
from tasks.artifacts import (
    RunSummary,
    artifact_key,
    render_forecast_table,
    render_plan_table,
    render_summary,
    why_not_scaled,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = CONFIG["deployments"]


def _flow(entrypoint: str) -> Flow:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def _interval_seconds(schedule: dict[str, Any]) -> int:
    if "interval" in schedule:
        return int(schedule["interval"])
    minute, hour, *_ = schedule["cron"].split()
    return 3600 if hour == "*" else 86400


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_is_complete_and_its_parameters_validate(dep: dict[str, Any]) -> None:
    flow = _flow(dep["entrypoint"])
    assert isinstance(flow, Flow)
    assert dep["enforce_parameter_schema"] is True
    if dep["entrypoint"].startswith(("flows/forecast_and_scale.py", "flows/pipeline.py")):
        # these can pause for approval: a deployment slot would be released by the pause and
        # the paused run killed when its lease renewal fails; the run lock serialises them
        assert "concurrency_limit" not in dep
    else:
        assert dep["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert dep["work_pool"]["name"] == "fleetcast"
    assert any(t.startswith("game:") for t in dep["tags"])
    params = dep.get("parameters", {}).get("params")
    model = flow.fn.__annotations__["params"]
    model = getattr(importlib.import_module(flow.fn.__module__), model, model)
    if params is not None:
        model.model_validate(params)  # the UI form would accept it
        assert f"game:{params['game_type']}" in dep["tags"]
    for schedule in dep.get("schedules", []):
        assert flow.timeout_seconds is not None
        assert flow.timeout_seconds < _interval_seconds(schedule), dep["name"]
    if dep.get("schedules"):
        retried = flow.retries or 0
        assert retried == 0  # whole runs are never retried: steps retry where safe


def test_every_sample_game_type_has_its_cycle() -> None:
    names = {d["name"] for d in DEPLOYMENTS}
    for game in SAMPLE_GAME_TYPES:
        for stage in ("forecast-and-scale", "train", "accuracy", "pipeline"):
            assert f"{stage}-{game}" in names
    assert {"ingest", "backfill"} <= names
    backfill = next(d for d in DEPLOYMENTS if d["name"] == "backfill")
    assert "schedules" not in backfill  # ad hoc


def test_retry_condition_retries_io_only() -> None:
    assert is_transient_error(DatabaseBusy("busy"))
    assert is_transient_error(ConnectionResetError())
    assert not is_transient_error(InvalidName("bad"))
    assert not is_transient_error(PermissionError("refused"))
    assert not is_transient_error(ValueError("validation failed"))

    class ClientError(Exception):
        def __init__(self, code: str) -> None:
            self.response = {"Error": {"Code": code}}

    assert is_transient_error(ClientError("Throttling"))
    assert not is_transient_error(ClientError("AccessDenied"))


def test_artifact_keys_are_stable_and_valid() -> None:
    assert artifact_key("forecast", "battle_royale") == "forecast-battle-royale"
    assert artifact_key("capacity-plan", None) == "capacity-plan-all"


def test_render_tables_and_summary() -> None:
    ts = [datetime(2026, 11, 1, h) for h in range(3)]
    forecast = pl.DataFrame(
        {
            "game_type": ["g"] * 3,
            "region": ["r"] * 3,
            "metric": ["players"] * 3,
            "ts": ts,
            "yhat": [1.0, 5.0, 2.0],
            "yhat_lower": [0.5, 4.0, 1.0],
            "yhat_upper": [2.0, 6.0, 3.0],
            "model": ["prophet"] * 3,
        }
    )
    rows = render_forecast_table(forecast)
    assert rows == [
        {
            "game_type": "g",
            "region": "r",
            "metric": "players",
            "from": "2026-11-01 00:00:00",
            "to": "2026-11-01 02:00:00",
            "peak_at": "2026-11-01 01:00:00",
            "peak_yhat": 5.0,
            "peak_lower": 4.0,
            "peak_upper": 6.0,
            "model": "prophet",
        }
    ]
    shadow = {
        "fleet": "f1",
        "mode": "forecast_only",
        "current": 2,
        "target": 4,
        "applied": False,
        "reason": "2 -> 4",
        "demand_forecast": 10.0,
        "status": "ok",
    }
    held = {**shadow, "fleet": "f2", "mode": "scale", "target": 2, "outcome": ""}
    assert why_not_scaled(shadow).startswith("forecast-only mode")
    assert why_not_scaled(held).startswith("already at target")
    assert render_plan_table([shadow])[0]["target"] == 4
    text = render_summary(
        RunSummary(
            flow="pipeline",
            scope="g",
            ingest=[{"file": "/x/a.csv", "status": "rejected", "rows_quarantined": 3}],
            decisions=[shadow, held],
            margins={"f1": 0.1},
            overrides=[{"fleet": "f1", "kind": "min", "value": 3, "reason": "launch"}],
        )
    )
    assert "1 rejected, 3 row(s) quarantined" in text
    assert "| f1 | 10% |" in text and "forecast-only mode" in text and "launch" in text
