"""Train and forecast against a real DuckDB file: registry, forecasts table, CSV contract,
1970 timestamps, events from the events table, tampered models, the CLI and the tasks."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers_data import store_metrics

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import champion_sets, list_models, model_key
from fleetcast.stages.serving import CSV_COLUMNS, forecast_all, latest_forecasts
from fleetcast.stages.training import train_all

FAST = ("snaive24", "snaive168", "mstl")  # no Prophet fit where the test is not about Prophet
START = datetime(1970, 1, 1)


def insert_metrics(
    settings: Settings,
    game_type: str,
    metric: str,
    hours: int,
    *,
    region: str = "global",
    start: datetime = START,
    level: float = 1000.0,
    lift_at: list[datetime] | None = None,
    seed: int = 1,
) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=hours, freq="h")
    y = level * np.exp(0.6 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 14) / 24))
    y = y * np.exp(rng.normal(0, 0.04, hours))
    for s in lift_at or []:
        y[(ts >= s) & (ts < s + timedelta(hours=4))] *= 1.8
    frame = pl.DataFrame(
        {
            "ts": ts.to_numpy(),
            "game_type": game_type,
            "region": region,
            "metric": metric,
            "value": y,
            "batch_id": "test",
        }
    )
    store_metrics(settings, frame)


def insert_event(settings: Settings, name: str, kind: str, start: datetime, hours: int,
                 game_type: str | None = None, region: str | None = None) -> None:  # fmt: skip
    with db.session(settings.db_path) as con:
        con.execute(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id) values (md5(?), ?, ?, ?, ?, ?, ?, 'test')",
            [
                f"{name}{start}",
                name,
                kind,
                game_type,
                region,
                start,
                start + timedelta(hours=hours),
            ],
        ).fetchall()


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def test_train_forecast_csv_contract_with_1970_timestamps(settings: Settings, tmp_path) -> None:
    insert_metrics(settings, "battle_royale", "players", 24 * 10)
    insert_metrics(settings, "casual_puzzle", "players", 24 * 9 + 5, seed=2)  # ends earlier
    insert_metrics(settings, "casual_puzzle", "cpu_cores", 30, seed=3)  # too short

    results = {r.key.label(): r for r in train_all(settings, candidates=FAST)}
    assert results["battle_royale/global/players"].status == "trained"
    short = results["casual_puzzle/global/cpu_cores"]
    assert short.status == "skipped" and "at least 48 hours" in short.message

    out = tmp_path / "f.csv"
    frame = forecast_all(settings, 24, out=out)
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 2 * 24
    first = {(r["game_type"], r["metric"]): r["ts"] for r in rows[::24]}
    # Each series starts one hour after its own last observation, in 1970, not from now.
    assert first[("battle_royale", "players")] == "1970-01-11T00:00:00"
    assert first[("casual_puzzle", "players")] == "1970-01-10T05:00:00"
    assert all(float(r["yhat_lower"]) <= float(r["yhat"]) <= float(r["yhat_upper"]) for r in rows)

    with db.session(settings.db_path) as con:
        stored = con.sql(
            "select run_id, model, model_id, created_at, yhat_q90, yhat_upper from forecasts"
        ).pl()
        champions = con.sql(
            "select model_id, kind from models where is_champion order by game_type"
        ).fetchall()
        latest = latest_forecasts(con)
        registry = list_models(con)
    assert stored.height == 48 and stored["run_id"].n_unique() == 1
    assert stored["model_id"].is_in([m for m, _ in champions]).all()
    assert stored["yhat_q90"].is_not_null().all()
    assert frame.height == 48 and latest.height == 48
    assert set(registry["kind"]) == {"snaive24", "snaive168", "mstl", "ensemble", "combination"}
    assert registry.filter(pl.col("is_champion")).height == 2


def test_new_run_replaces_latest_and_versions_are_kept(settings: Settings) -> None:
    insert_metrics(settings, "ranked_arena", "players", 24 * 4)
    for _ in range(2):
        train_all(settings, candidates=("snaive24",))
    forecast_all(settings, 6)
    second = forecast_all(settings, 6)
    with db.session(settings.db_path) as con:
        latest = latest_forecasts(con, "ranked_arena")
        versions = list_models(con, all_versions=True)
        champs = con.sql("select count(*) from models where is_champion").fetchall()[0][0]
    assert latest["run_id"].unique().to_list() == [second["run_id"][0]]
    assert sorted(versions["version"].to_list()) == [1, 2]
    assert champs == 1


def test_tampered_champion_is_refused_and_fallback_recorded(settings: Settings) -> None:
    insert_metrics(settings, "battle_royale", "players", 24 * 5)
    train_all(settings, candidates=("mstl", "snaive24"))
    with db.session(settings.db_path) as con:
        champion = con.sql("select kind from models where is_champion").fetchall()[0][0]
        con.execute(
            "update models set model_json = replace(model_json, '24', '23') where is_champion"
        ).fetchall()
        sets = champion_sets(con, mac_key=model_key(settings))
    (cs,) = sets.values()
    assert champion in cs.refused and "sha256" in cs.refused[champion]
    frame = forecast_all(settings, 12)
    assert frame["model"][0] != champion
    assert f"{champion} refused" in frame["note"][0]
    with db.session(settings.db_path) as con:
        note = con.sql("select distinct note from forecasts").fetchall()[0][0]
    assert "refused" in note and "fell back" in note


def test_events_table_drives_prophet_uplift(settings: Settings) -> None:
    days = 15
    past = [START + timedelta(days=d, hours=19) for d in (2, 5, 8, 11, 13)]
    insert_metrics(settings, "tournament_series", "players", 24 * days, region="na-east",
                   lift_at=past)  # fmt: skip
    for i, s in enumerate(past):
        insert_event(settings, f"cup-{i}", "tournament", s, 4, "tournament_series", "na-east")
    future = START + timedelta(days=days, hours=19)  # the first forecast day, 19:00
    insert_event(settings, "cup-next", "tournament", future, 4, "tournament_series", None)
    insert_event(settings, "other-game", "promotion", future, 4, "battle_royale", None)

    (result,) = train_all(settings, candidates=("prophet", "snaive24"), workers=1)
    assert result.status == "trained"
    frame = forecast_all(settings, 48).to_pandas().set_index("ts")
    during = frame.loc[future : future + timedelta(hours=3), "yhat"].mean()
    next_day = frame.loc[future + timedelta(days=1) : future + timedelta(days=1, hours=3), "yhat"]
    assert during > 1.4 * next_day.mean()
    with db.session(settings.db_path) as con:
        (text,) = con.sql("select model_json from models where kind = 'prophet'").fetchall()[0]
    assert "event_tournament" in text and 'event_promotion"' not in text


def test_cli_and_tasks(settings: Settings, tmp_path, capsys) -> None:
    from tasks.forecast import forecast_series
    from tasks.train import train_models

    insert_metrics(settings, "casual_puzzle", "players", 24 * 3)
    assert main(["--db", str(settings.db_path), "forecast", "--horizon", "4"]) == 1
    assert "run `fleetcast train` first" in capsys.readouterr().err
    assert main(["--db", str(settings.db_path), "train", "--game-type", "bad name"]) == 1
    assert "invalid game type" in capsys.readouterr().err

    results = train_models.fn(settings, "casual_puzzle", "players")
    assert [r.status for r in results] == ["trained"]
    out = tmp_path / "cli.csv"
    code = main(["--db", str(settings.db_path), "forecast", "--horizon", "6", "--out", str(out)])
    assert code == 0 and out.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    capsys.readouterr()  # what forecast printed
    assert main(["--db", str(settings.db_path), "models"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("casual_puzzle")]
    with db.session(settings.db_path, read_only=True) as con:
        (champ, n_models), *_ = con.sql(
            "select max(kind) filter (where is_champion), count(*) from models"
        ).fetchall()
    assert len(lines) == 1 and lines[0].split()[:2] == ["casual_puzzle/global/players", champ]
    assert lines[0].split()[-1] == str(n_models)  # the candidates it was chosen from
    assert main(["--db", str(settings.db_path), "models", "--verbose"]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("casual_puzzle")]
    assert len(rows) == n_models and sum(" * " in r for r in rows) == 1
    assert main(["--db", str(settings.db_path), "models", "casual_puzzle/global/players"]) == 0
    detail = capsys.readouterr().out
    assert detail.startswith("casual_puzzle/global/players: trained") and "champion" in detail
    assert main(["--db", str(settings.db_path), "models", "casual_puzzle/eu/players"]) == 1
    assert forecast_series.fn(settings, 3, "casual_puzzle").height == 3
