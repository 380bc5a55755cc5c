"""The hourly cycle forecasts only the series due (models/refresh.py), on a real DuckDB file:
every series the first time, none again within the hour, a retrained one at once, all of them
within the refresh period, about a third each hour, and never a stored forecast old enough to
be held as stale."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from test_forecast_pipeline import insert_metrics

from fleetcast.config import SettingError, Settings
from fleetcast.resources import db
from fleetcast.resources.registry import champion_sets, model_key
from fleetcast.stages.histories import load_histories
from fleetcast.stages.serving import forecast_all, series_due
from fleetcast.stages.training import train_all
from models.clock import utcnow
from models.decision import MIN_NOWCAST_HOURS
from models.refresh import StoredForecast, forecast_due, turn

NOW = datetime(2026, 12, 7, 10, 5)


def _stored(made: datetime, model: str = "m1", hours: int = 48) -> StoredForecast:
    return StoredForecast(made, made.replace(minute=0) + timedelta(hours=hours), model)


def _due(stored: StoredForecast | None, now: datetime = NOW, **kw: object) -> str | None:
    args: dict = {"model_ids": {"m1"}, "observed_hours": 500, "refresh": 3, "horizon": 48}
    args.update(kw)
    return forecast_due("g/r/players", stored, now=now, **args)


def test_each_reason_to_forecast_again() -> None:
    assert _due(None) == "no stored forecast"
    assert _due(_stored(NOW), model_ids={"m2"}) == "retrained since its newest forecast"
    new = _due(_stored(NOW - timedelta(hours=1)), observed_hours=MIN_NOWCAST_HOURS - 1)
    assert new is not None and "new series" in new
    old = _due(_stored(NOW - timedelta(hours=3)))
    assert old is not None and "3.0 h old" in old
    short = _due(_stored(NOW - timedelta(hours=1), hours=12))
    assert short is not None and "ends at" in short
    assert _due(_stored(NOW - timedelta(minutes=10))) is None  # made this hour: kept
    assert _due(_stored(NOW - timedelta(minutes=10)), refresh=1) is None
    assert _due(_stored(NOW - timedelta(hours=1)), refresh=1) is not None  # the old behaviour
    with pytest.raises(ValueError, match="at least 1"):
        _due(None, refresh=0)


def test_series_are_spread_over_the_cycle_and_never_kept_too_long() -> None:
    """200 series, hourly runs at a few minutes past each hour for two days: after the first
    run each series is forecast once every 3 hours, about a third of them per run, and no
    stored forecast is ever 3 h old or more at a run."""
    labels = [f"game/region-{i}/players" for i in range(200)]
    made: dict[str, datetime] = {}
    per_run = []
    for h in range(48):
        now = NOW + timedelta(hours=h, minutes=(7 * h) % 11)  # runs start a few minutes apart
        due = []
        for label in labels:
            stored = _stored(made[label]) if label in made else None
            if stored is not None:
                assert now - stored.created_at < timedelta(hours=3, minutes=30)
            if forecast_due(label, stored, {"m1"}, 500, now, refresh=3, horizon=48):
                due.append(label)
        for label in due:
            made[label] = now
        per_run.append(len(due))
    assert per_run[0] == 200
    steady = per_run[3:]
    assert all(a == b for a, b in zip(steady, steady[3:], strict=False))  # the same each cycle
    assert sum(steady) == 200 * 45 / 3  # each series once every 3 hours
    spread = Counter(turn(label, 3) for label in labels)
    assert sorted(steady[:3]) == sorted(spread.values())  # its turn's share each hour
    assert max(steady) < 0.4 * 200  # about a third each


def test_the_refresh_period_must_be_below_the_freshness_limit() -> None:
    with pytest.raises(SettingError, match="must be below FLEETCAST_FRESHNESS_HOURS"):
        Settings.from_mapping({"FLEETCAST_FORECAST_REFRESH_HOURS": "6"})
    assert Settings.from_mapping({"FLEETCAST_FORECAST_REFRESH_HOURS": "1"}).refresh_hours == 1
    assert Settings().refresh_hours == 3  # half the freshness limit of 6 h
    assert Settings(freshness_hours=1).refresh_hours == 1  # a tighter limit: every hour
    assert Settings(freshness_hours=1, forecast_refresh_hours=1).refresh_hours == 1
    assert Settings(freshness_hours=12).refresh_hours == 6


def _age_stored_forecasts(settings: Settings, hours: float) -> None:
    with db.session(settings.db_path) as con:
        con.execute(
            "update forecasts set created_at = created_at - to_microseconds(?)",
            [int(hours * 3600e6)],
        ).fetchall()


def test_the_hourly_cycle_forecasts_only_the_series_due(settings: Settings) -> None:
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    for i in range(6):
        insert_metrics(settings, "ranked_arena", "players", 24 * 10, region=f"r{i}", start=start)
    train_all(settings, candidates=("snaive24",))

    first = forecast_all(settings, 48, refresh=3)
    assert first.select("region").n_unique() == 6  # nothing stored yet: every series
    again = forecast_all(settings, 48, refresh=3)
    assert again.height == 0 and "run_id" in again.columns  # all made within the hour
    with db.session(settings.db_path) as con:
        assert con.sql("select count(distinct run_id) from forecasts").fetchall() == [(1,)]

    _age_stored_forecasts(settings, 1)
    now = utcnow()
    with db.session(settings.db_path) as con:
        sets = champion_sets(con, mac_key=model_key(settings))
        due = series_due(con, sets, load_histories(con), None, 48, 3, now)
    hour = int((now - datetime(1970, 1, 1)).total_seconds() // 3600) % 3
    assert {k.region for k in due} == {k.region for k in sets if turn(k.label(), 3) == hour}
    assert all(why == "its turn in the 3-hour cycle" for why in due.values())

    _age_stored_forecasts(settings, 2)  # 3 h old now: every series
    assert forecast_all(settings, 48, refresh=3).select("region").n_unique() == 6
    train_all(settings, candidates=("snaive24",))  # new models: every series at once
    assert forecast_all(settings, 48, refresh=3).select("region").n_unique() == 6
    assert forecast_all(settings, 48).select("region").n_unique() == 6  # no refresh: all


def test_the_run_summary_says_what_was_forecast_and_what_was_kept() -> None:
    from fleetcast.stages.pages import RunSummary, forecast_sentence

    s = RunSummary(flow="forecast-and-scale", scope="all", forecast_rows=960)
    assert forecast_sentence(s) == "960 forecast row(s) written."
    s.forecast_series, s.forecast_refresh_hours = (20, 60), 3
    text = forecast_sentence(s)
    assert text.startswith("20 series forecast (960 forecast row(s) written)")
    assert "the other 40 keep their newest forecast, each made within the last 3 h" in text
