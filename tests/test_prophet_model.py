"""Prophet for hourly demand: JSON + sha256 round trip, tamper refusal, minimum history, events."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import ModelIntegrityError, load_model, model_hash
from models.prophet_model import ProphetConfig, ProphetForecaster, dumps, event_columns
from models.selection import InsufficientHistory, forecast_series, train_series

ROOT = Path(__file__).resolve().parent.parent
TOURNAMENT_DAYS = (3, 7, 10, 14, 17)  # past tournaments, 19:00-23:00


def demand(days: int, seed: int = 3, lift: float = 1.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly players with a daily cycle, weekends higher, and tournaments lifting demand."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("1970-01-01", periods=24 * days, freq="h")
    hour, dow = ds.hour.to_numpy(), ds.dayofweek.to_numpy()
    y = 1000 * np.exp(0.7 * np.sin(2 * np.pi * (hour - 14) / 24)) * (1 + 0.15 * (dow >= 5))
    y = y * np.exp(rng.normal(0, 0.04, len(ds)))
    starts = [ds[24 * d + 19] for d in TOURNAMENT_DAYS if 24 * d + 23 <= len(ds)]
    for s in starts:
        y[(ds >= s) & (ds < s + pd.Timedelta(hours=4))] *= lift
    events = pd.DataFrame(
        {
            "kind": "tournament",
            "starts_at": starts,
            "ends_at": [s + pd.Timedelta(hours=4) for s in starts],
        }
    )
    return pd.DataFrame({"ds": ds, "y": y}), events


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def test_fit_serialize_hash_round_trip() -> None:
    history, _ = demand(4)
    fc = ProphetForecaster()
    model = fc.fit(history, None)
    text = dumps(model)
    sha = model_hash(text)
    loaded = load_model(text, sha, "m1")
    assert loaded == model
    a = fc.predict(model, history, 24, None)
    b = fc.predict(loaded, history, 24, None)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper", "yhat_q90"]
    assert a["ds"].iloc[0] == history["ds"].iloc[-1] + pd.Timedelta(hours=1)
    assert (a["yhat_lower"] <= a["yhat"]).all() and (a["yhat"] <= a["yhat_upper"]).all()
    assert model["log"] is True  # strictly positive with a wide daily swing: log scale


def test_tampered_model_is_refused() -> None:
    text = dumps({"kind": "snaive24", "season": 24})
    sha = model_hash(text)
    tampered = text.replace("24", "25")
    with pytest.raises(ModelIntegrityError, match="refused: sha256"):
        load_model(tampered, sha, "m2")


def test_min_history_message_says_what_is_needed() -> None:
    history, _ = demand(2)
    with pytest.raises(InsufficientHistory) as info:
        train_series(history.iloc[:30], what="battle_royale/global/players")
    msg = str(info.value)
    assert "battle_royale/global/players: 30 hours" in msg
    assert "at least 48 hours (2 days)" in msg


def test_event_windows_are_hourly() -> None:
    ds = pd.date_range("2026-01-01", periods=48, freq="h")
    events = pd.DataFrame(
        {
            "kind": ["tournament"],
            "starts_at": [pd.Timestamp("2026-01-01 19:30")],
            "ends_at": [pd.Timestamp("2026-01-01 23:00")],
        }
    )
    cols = event_columns(ds, events, ProphetConfig(after_hours=2))
    during = ds[cols["event_tournament"].to_numpy() == 1]
    assert list(during.hour) == [19, 20, 21, 22]
    after = ds[cols["event_tournament_after"].to_numpy() == 1]
    assert list(after.hour) == [23, 0]


def test_event_uplift_is_forecast_for_a_scheduled_tournament() -> None:
    history, past = demand(19)
    last = history["ds"].iloc[-1]
    start = last.normalize() + pd.Timedelta(days=1, hours=19)  # tomorrow 19:00
    scheduled = pd.DataFrame(
        {"kind": ["tournament"], "starts_at": [start], "ends_at": [start + pd.Timedelta(hours=4)]}
    )
    events = pd.concat([past, scheduled], ignore_index=True)
    fc = ProphetForecaster()
    model = fc.fit(history, events)
    assert "event_tournament" in model["regressors"]
    frame = fc.predict(model, history, 48, events).set_index("ds")
    during = frame.loc[start : start + pd.Timedelta(hours=3), "yhat"].to_numpy()
    next_day = start + pd.Timedelta(days=1)
    plain_day = frame.loc[next_day : next_day + pd.Timedelta(hours=3), "yhat"].to_numpy()
    ratio = during.mean() / plain_day.mean()
    assert 1.4 < ratio < 2.3, ratio  # true lift 1.8 (weekday effects aside)

    # The events variant of a non-Prophet champion gets Prophet's learned event effect on top.
    variant = {"kind": "snaive24+events", "base": "snaive24", "events": "prophet"}
    base = forecast_series(
        {
            "snaive24": {"kind": "snaive24", "season": 24},
            "snaive24+events": variant,
            "prophet": model,
        },
        ["snaive24+events"],
        history,
        48,
        events,
    )
    assert base.model == "snaive24+events"
    lifted = base.frame.set_index("ds").loc[start : start + pd.Timedelta(hours=3), "yhat"]
    plain = history.set_index("ds")["y"].iloc[-24:].to_numpy()
    assert lifted.mean() > 1.4 * plain[19:23].mean()


def test_the_fit_gives_the_event_effect_history_effect_gives() -> None:
    """CV reads each origin's past event effect off the fit's own in-sample prediction instead
    of predicting again (``fit_with_effect``): the same numbers as ``history_effect``, and none
    without events."""
    history, events = demand(19)
    fc = ProphetForecaster()
    model, effect = fc.fit_with_effect(history, events)
    assert "event_tournament" in model["regressors"]
    again = fc.history_effect(model, history, events)
    np.testing.assert_array_equal(effect, again)
    assert effect.max() > 0.3  # the tournaments' learned uplift (log scale, true log(1.8))
    plain, none = fc.fit_with_effect(history, None)
    assert not plain["regressors"] and not none.any() and len(none) == len(history)


def test_no_pickle_anywhere() -> None:
    for folder in ("models", "fleetcast", "tasks", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                assert not any(n.split(".")[0] in {"pickle", "cloudpickle", "dill", "joblib"}
                               for n in names), path  # fmt: skip


def test_past_events_are_not_counted_twice_by_a_model_that_copies_the_past() -> None:
    """A weekly tournament is in last week's data: a weekly-naive champion must not repeat it
    AND get Prophet's uplift on top (that would forecast lift**2)."""
    lift = 1.8
    history, past = demand(22, lift=lift)
    last = history["ds"].iloc[-1]
    start = history["ds"].iloc[-1 - 24 * 7 + 1] + pd.Timedelta(days=7)  # same hour one week on
    start = start.normalize() + pd.Timedelta(hours=19)
    assert start > last
    # the tournament a week before the scheduled one is in the history
    week_ago = start - pd.Timedelta(days=7)
    h = history.set_index("ds")
    extra = h.loc[week_ago : week_ago + pd.Timedelta(hours=3)].index
    h.loc[extra, "y"] *= lift
    history = h.reset_index()
    events = pd.concat(
        [
            past,
            pd.DataFrame(
                {
                    "kind": ["tournament", "tournament"],
                    "starts_at": [week_ago, start],
                    "ends_at": [week_ago + pd.Timedelta(hours=4), start + pd.Timedelta(hours=4)],
                }
            ),
        ],
        ignore_index=True,
    )
    model = ProphetForecaster().fit(history, events)
    variant = {"kind": "snaive168+events", "base": "snaive168", "events": "prophet"}
    result = forecast_series(
        {
            "snaive168": {"kind": "snaive168", "season": 168},
            "snaive168+events": variant,
            "prophet": model,
        },
        ["snaive168+events"],
        history,
        24 * 8,
        events,
    )
    frame = result.frame.set_index("ds")
    during = frame.loc[start : start + pd.Timedelta(hours=3), "yhat"].mean()
    copied = h.loc[week_ago : week_ago + pd.Timedelta(hours=3), "y"].mean()  # lift once
    assert during < 1.3 * copied, (during, copied)  # not lift squared (1.8x more)
    assert during > 0.7 * copied


def test_stan_reads_prophets_data_through_ujson_and_the_fit_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cmdstanpy writes each fit's data for Stan with stanio, which takes ujson when installed
    (a pyproject dependency for that alone: a Prophet fit about a quarter cheaper). Its path is
    in use, and the fitted model is the one the standard library's path gives, to the bit."""
    import json

    import stanio.json

    assert stanio.json.UJSON_AVAILABLE, "ujson missing: every Prophet fit writes JSON in Python"
    history, events = demand(21)
    fast = ProphetForecaster().fit(history, events)
    monkeypatch.setattr(stanio.json, "UJSON_AVAILABLE", False)
    monkeypatch.setattr(stanio.json, "json", json)
    slow = ProphetForecaster().fit(history, events)
    assert dumps(fast) == dumps(slow)
