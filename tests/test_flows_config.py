"""prefect.yaml and the Prefect building blocks, without running anything: every deployment
points at a flow, its parameters validate, tags/limits/timeouts follow the rules; artifacts
render; the retry condition retries I/O only."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefect.flows import Flow

from fleetcast.resources.db import DatabaseBusy
from fleetcast.stages.deployments import expand, load_config
from fleetcast.stages.orchestration import is_transient_error
from fleetcast.stages.pages import (
    RunSummary,
    artifact_key,
    forecast_description,
    render_forecast_table,
    render_plan_table,
    render_replay_table,
    render_summary,
    why_not_scaled,
)
from flows.params import SAMPLE_GAME_TYPES
from models.names import InvalidName

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
# what `fleetcast deployments sync` deploys for the sample's fleets
DEPLOYMENTS = expand(load_config(ROOT / "prefect.yaml"), list(SAMPLE_GAME_TYPES))["deployments"]


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
    assert not backfill["schedules"]  # ad hoc


def test_deployments_per_game_type_come_from_templates_staggered_and_paused() -> None:
    config = load_config(ROOT / "prefect.yaml")
    assert [d["name"] for d in CONFIG["deployments"]] == ["ingest", "backfill"]  # shared only
    one = expand(config, ["zeta", "alpha"])["deployments"]
    by_name = {d["name"]: d for d in one}
    assert set(by_name) == {"ingest", "backfill"} | {
        f"{stage}-{g}"
        for stage in ("forecast-and-scale", "train", "accuracy", "pipeline")
        for g in ("alpha", "zeta")
    }
    alpha, zeta = by_name["train-alpha"], by_name["train-zeta"]
    assert alpha["parameters"] == {"params": {"game_type": "alpha"}}
    assert "game:zeta" in zeta["tags"] and "stage:train" in zeta["tags"]
    assert (alpha["schedules"][0]["cron"], zeta["schedules"][0]["cron"]) == (
        "0 2 * * *",
        "20 2 * * *",
    )
    assert by_name["forecast-and-scale-zeta"]["schedules"][0]["cron"] == "10 * * * *"
    assert not any(s["active"] for d in one for s in d["schedules"])  # paused unless asked
    on = {d["name"]: d for d in expand(config, ["alpha"], activate=True)["deployments"]}
    assert on["forecast-and-scale-alpha"]["schedules"][0]["active"] is True
    assert on["ingest"]["schedules"][0]["active"] is True
    assert on["pipeline-alpha"]["schedules"][0]["active"] is False  # off by design
    kept = expand(config, ["alpha"], keep_active=frozenset({"train-alpha"}))["deployments"]
    assert [d["name"] for d in kept if any(s["active"] for s in d["schedules"])] == ["train-alpha"]
    with pytest.raises(InvalidName):
        expand(config, ["x'; drop table fleets; --"])


def test_run_form_has_no_null_branches_and_game_type_is_a_choice() -> None:
    from prefect.utilities.callables import parameter_schema

    from fleetcast.stages.deployments import offer_choices
    from flows.forecast_and_scale import forecast_and_scale

    schema = parameter_schema(forecast_and_scale.fn).model_dump()
    props = schema["definitions"]["ForecastAndScaleParams"]["properties"]
    assert "null" not in str(props) and "anyOf" not in str(props)
    assert props["aws_concurrency"]["type"] == "integer"  # optional, and no null branch
    offered = offer_choices(schema, ["b", "a"])
    assert offered["definitions"]["ForecastAndScaleParams"]["properties"]["game_type"]["enum"] == [
        "a",
        "b",
    ]
    assert "enum" not in props["game_type"]  # the original is not changed


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
            "region": "r",
            "metric": "players",
            "model": "prophet",
            "peak": "5 players",
            "peak at (UTC)": "Sun 01 Nov 01:00",
            "band (low - high)": "4 - 6",
        }
    ]  # game type and hours covered are in the description, not on every row
    described = forecast_description(forecast, "g")
    assert "**g**" in described and "2026-11-01 00:00 to 2026-11-01 02:00" in described
    assert "prophet" in described
    big = forecast.with_columns(pl.col("yhat") * 503.7777, pl.col("yhat_upper") * 503.7777)
    assert render_forecast_table(big)[0]["peak"] == "2,519 players"  # rounded, with its unit
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
    real = {
        **held,
        "fleet": "battle_royale-na-east",
        "current": 2,
        "target": 104,
        "applied": True,
        "applied_desired": 104,
        "demand_forecast": 2518.897,
        "inputs": {"forecast_models": {"players": "prophet"}},
        "reason": "2 -> 104 (+102): 103 instances for 2,519 players (x1.1 margin, 24.5 "
        "players per instance) from 2026-12-07 05:31 UTC (lead 45 min); forecast: nowcast-weekly; "
        "observed demand needs 104 instances (players)",
    }
    [row] = render_plan_table([real])
    assert list(row)[:5] == ["fleet", "current -> target", "applied", "status", "why"]  # first
    assert row["current -> target"] == "2 -> 104 (+102)" and row["applied"] == "yes: 104"
    # the short reason: what decided and with which forecaster, without the lead detail
    assert row["why"] == (
        "103 instances for 2,519 players (x1.1 margin, 24.5 players per instance) from "
        "05:31 UTC; forecast: nowcast-weekly"
    )
    assert "full reason" not in row  # it is in the summary, where it wraps
    assert row["demand (with margin)"] == "2,519 players"
    assert render_plan_table([shadow])[0]["applied"] == "no: forecast-only"
    several = {**real, "inputs": {"forecast_models": {"players": "p", "cpu_cores": "s"},
                                  "required_players": 2518.897}}  # fmt: skip
    assert render_plan_table([several])[0]["demand (with margin)"] == "2,519 players"
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
    assert "1 file(s): 0 loaded, 1 rejected whole. Rows: 0 stored, 3 quarantined" in text
    dups = render_summary(
        RunSummary(
            flow="ingest", scope="all", ingest=[{"file": "a.csv", "status": "duplicate"}] * 7
        )
    )
    assert "7 file(s): 0 loaded, 7 duplicate (already ingested, skipped), 0 rejected" in dups
    assert "| f1 | 10% |" in text and "forecast-only mode" in text and "launch" in text
    whole = render_summary(RunSummary(flow="pipeline", scope="g", decisions=[real]))
    # the full reason of each fleet under the table, with the forecaster that decided
    assert "- **battle_royale-na-east** (2 -> 104 (+102)): 103 instances for 2,519 players" in whole
    assert whole.rstrip().count("observed demand needs 104 instances (players)") == 1
    assert "from 2026-12-07 05:31 UTC (lead 45 min)" in whole  # the full reason has the date


def test_replay_table_has_figures_not_paths() -> None:
    table = [
        {"plan": "policy", "hours": 24, "hours_short": 1, "unserved": 12.34, "idle": 3456.7,
         "changes": 3},
        {"plan": "reactive", "hours": 24, "hours_short": 6, "unserved": 250.0, "idle": 1200.2,
         "changes": 9},
        {"plan": "seasonal", "hours": 24, "hours_short": 2, "unserved": 1.0, "idle": 1.0,
         "changes": 1},
    ]  # fmt: skip
    rows = render_replay_table(
        [{"fleet": "f", "metric": "players", "out": "/w/reports/backfill/f-x.csv", "table": table}]
    )
    assert [(r["plan"], r["hours short"], r["changes"]) for r in rows] == [
        ("policy", 1, 3),
        ("reactive", 6, 9),
    ]
    assert rows[0]["idle"] == "3,457 players-h" and rows[0]["unserved"] == "12.3 players-h"
    assert rows[0]["plan file"] == "f-x.csv"


def test_the_last_recorded_capacity_is_held_until_the_next_run() -> None:
    from fleetcast.stages.pages import hold_last_step

    t0 = datetime(2026, 5, 1, 10)
    history = pl.DataFrame({"ts": [t0 - timedelta(hours=2), t0], "capacity": [800, 2000]})
    out = hold_last_step(history, t0 + timedelta(hours=1))
    assert out.rows() == [
        (t0 - timedelta(hours=2), 800.0),
        (t0, 2000.0),
        (t0 + timedelta(hours=1), 2000.0),
    ]
    empty = history.clear()
    assert hold_last_step(empty, t0).height == 0  # no group read: nothing to draw


def test_a_short_capacity_history_is_said_on_the_plot() -> None:
    from fleetcast.stages.pages import history_note

    t0 = datetime(2026, 5, 1, 10)
    one = pl.DataFrame({"ts": [t0], "capacity": [800.0]})
    assert (
        history_note(one)
        == "capacity history starts 2026-05-01 10:00 UTC: 1 decision so far (marked)"
    )
    two = pl.DataFrame({"ts": [t0, t0 + timedelta(minutes=5)], "capacity": [800.0, 900.0]})
    assert history_note(two) is not None and "2 decisions so far" in (history_note(two) or "")
    week = pl.DataFrame({"ts": [t0 - timedelta(days=7), t0], "capacity": [800.0, 900.0]})
    assert history_note(week) is None  # a history that reads as a line needs no word
    assert history_note(one.clear()) == "no capacity recorded for this fleet yet"
