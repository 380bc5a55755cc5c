"""Rolling-origin CV without look-ahead, the champion and its fallback chain."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fleetcast.resources.logs import quiet_libraries
from models.baselines import (
    CleanMSTLForecaster,
    MSTLForecaster,
    SeasonalNaive,
    clean_log,
    clip_negative,
    level_shift_adjust,
    regularize,
    stl_jumps,
)
from models.selection import (
    COMBINATION,
    FORECASTERS,
    CVConfig,
    cv_cutoffs,
    forecast_at,
    forecast_series,
    scored_cutoffs,
    train_series,
)


def series(days: int = 10, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("1970-01-01", periods=24 * days, freq="h")
    y = 500 + 300 * np.sin(2 * np.pi * ds.hour.to_numpy() / 24) + rng.normal(0, 20, len(ds))
    return pd.DataFrame({"ds": ds, "y": y})


@dataclass(frozen=True)
class Raising:
    name: str = "raising"

    def fit(self, history: pd.DataFrame, events: Any) -> dict[str, Any]:
        return {"kind": self.name}

    def predict(
        self, model: dict, history: pd.DataFrame, horizon: int, events: Any
    ) -> pd.DataFrame:
        raise RuntimeError("solver blew up")


@dataclass(frozen=True)
class ReturnsNaN:
    name: str = "nan_model"

    def fit(self, history: pd.DataFrame, events: Any) -> dict[str, Any]:
        return {"kind": self.name}

    def predict(
        self, model: dict, history: pd.DataFrame, horizon: int, events: Any
    ) -> pd.DataFrame:
        out = SeasonalNaive(24).predict({"season": 24}, history, horizon)
        out.loc[3, "yhat"] = np.nan
        return out


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def test_cutoffs_are_time_ordered_and_leave_enough_history() -> None:
    cfg = CVConfig(horizon=24, n_origins=3, min_train=48)
    assert cv_cutoffs(240, cfg) == [168, 192, 216]
    assert cv_cutoffs(96, cfg) == [48, 72]  # the oldest origin would see only 24 hours
    assert cv_cutoffs(60, cfg) == []


def test_a_scored_origin_too_early_for_a_week_is_left_to_calibration() -> None:
    """8 days of history: the origin at 6 days would sink ``snaive168`` (it needs a week), so
    the candidates are scored at the 7-day origin alone and ``snaive168`` competes; the earlier
    origin still calibrates the intervals. With a week before every origin, or before none,
    nothing changes."""
    cfg = CVConfig(horizon=24, n_origins=2)
    assert cv_cutoffs(192, cfg) == [144, 168] and scored_cutoffs(192, cfg) == [168]
    assert scored_cutoffs(216, cfg) == cv_cutoffs(216, cfg) == [168, 192]
    assert scored_cutoffs(180, cfg) == cv_cutoffs(180, cfg) == [132, 156]
    history = series(8)
    cands = {"snaive24": SeasonalNaive(24), "snaive168": SeasonalNaive(168)}
    got = train_series(history, forecasters=cands, ensembles={}, config=cfg)
    week = got.candidates["snaive168"]
    assert week.error is None and math.isfinite(week.cv_mase) and week.origins == 1
    # one origin to calibrate its interval on: its CV coverage is not measured, not its raw
    # interval's (zero width on exactly a week of history)
    assert math.isnan(week.cv_coverage) and math.isnan(week.cv_coverage_q90)
    assert math.isfinite(got.candidates["snaive24"].cv_coverage)  # 6 origins
    assert got.candidates["snaive24"].origins == 1
    assert 168 in week.cv_points and 144 in got.candidates["snaive24"].cv_points
    # what sank it before: at the 6-day origin it cannot forecast at all
    with pytest.raises(ValueError, match="needs at least 168 hours"):
        SeasonalNaive(168).fit(history.iloc[:144])


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_no_look_ahead_changing_data_after_cutoff_keeps_forecast(name: str) -> None:
    history = series(16)
    cutoff = 24 * 14
    changed = history.copy()
    changed.loc[cutoff:, "y"] = changed.loc[cutoff:, "y"] * 5 + 1000  # the future goes wild
    fc = FORECASTERS[name]()
    a = forecast_at(fc, history, cutoff, 24)
    b = forecast_at(fc, changed, cutoff, 24)
    pd.testing.assert_frame_equal(a, b)
    assert a["ds"].iloc[0] == history["ds"].iloc[cutoff]  # the first hour after the cutoff


def test_cv_scores_do_not_depend_on_data_after_the_last_scored_hour() -> None:
    history = series(12)
    cands = {"snaive24": SeasonalNaive(24), "mstl": MSTLForecaster()}
    cfg = CVConfig(horizon=24, n_origins=2)
    base = train_series(history, forecasters=cands, ensembles={}, config=cfg)
    longer = pd.concat(
        [history, pd.DataFrame({"ds": history["ds"] + pd.Timedelta(days=12), "y": 9e6})],
        ignore_index=True,
    )
    # CV on the longer series scores later origins; scoring the original cutoffs by hand on it
    # gives the same forecasts as on the original series.
    for cut in cv_cutoffs(len(history), cfg):
        for fc in cands.values():
            pd.testing.assert_frame_equal(
                forecast_at(fc, history, cut, 24), forecast_at(fc, longer, cut, 24)
            )
    assert math.isfinite(base.candidates["snaive24"].cv_mase)


def test_failing_and_nan_candidates_fall_back_and_are_recorded() -> None:
    history = series(6)
    cands = {"raising": Raising(), "nan_model": ReturnsNaN(), "snaive24": SeasonalNaive(24)}
    training = train_series(history, forecasters=cands, ensembles={})
    assert training.champion == "snaive24"
    assert math.isinf(training.candidates["raising"].cv_mase)
    assert "solver blew up" in (training.candidates["raising"].error or "")
    assert "NaN" in (training.candidates["nan_model"].error or "")
    assert training.chain[0] == "snaive24"
    assert any("raising failed" in n for n in training.notes)

    # At forecast time a chain that starts with broken models walks on to one that works.
    models = {n: r.model for n, r in training.candidates.items() if r.model is not None}
    result = forecast_series(models, ["nan_model", "raising", "snaive24"], history, 24,
                             forecasters=cands)  # fmt: skip
    assert result.model == "snaive24"
    assert any(n.startswith("nan_model failed") and "NaN" in n for n in result.notes)
    assert any(n.startswith("raising failed") for n in result.notes)
    assert "fell back to snaive24" in result.notes
    assert np.isfinite(result.frame["yhat"]).all()


def test_refused_model_falls_back() -> None:
    history = series(4)
    spec = {"kind": "snaive24", "season": 24}
    result = forecast_series(
        {"mstl": {"kind": "mstl", "seasons": [24]}, "snaive24": spec},
        ["mstl", "snaive24"],
        history,
        12,
        refused={"mstl": "sha256 mismatch"},
    )
    assert result.model == "snaive24"
    assert "mstl refused: sha256 mismatch" in result.notes


@pytest.mark.parametrize("seasons", [[24], [24, 168]])
def test_mstl_loess_steps_are_r_defaults_for_the_longest_seasons_windows(
    seasons: list[int],
) -> None:
    from statsmodels.tsa.seasonal import STL

    # statsmodels' own windows for the longest season, as statsforecast's MSTL sets it up
    config = STL(np.zeros(400), period=max(seasons), seasonal=7 + 4 * len(seasons)).config
    steps = stl_jumps(seasons)
    for part in ("seasonal", "trend", "low_pass"):
        assert steps[f"{part}_jump"] == math.ceil(config[part] / 10)


def test_mstl_is_served_with_the_loess_steps_it_was_scored_with() -> None:
    history = series(21)
    fast, exact = MSTLForecaster(), MSTLForecaster(jumps=False)
    stored = fast.fit(history)
    assert stored["stl_jumps"] is True and exact.fit(history)["stl_jumps"] is False
    with_steps = fast.predict(stored, history, 48)
    # a model stored before the steps existed (no "stl_jumps") is served as it was scored
    old = {k: v for k, v in stored.items() if k != "stl_jumps"}
    every_hour = fast.predict(old, history, 48)
    pd.testing.assert_frame_equal(every_hour, exact.predict(exact.fit(history), history, 48))
    assert not np.array_equal(with_steps["yhat"], every_hour["yhat"])
    # the steps interpolate the same decomposition: the forecasts stay within a percent
    np.testing.assert_allclose(with_steps["yhat"], every_hour["yhat"], rtol=0.01)


def test_candidates_are_chained_by_cv_mase_behind_their_combination() -> None:
    history = series(9)
    training = train_series(
        history,
        forecasters={"snaive24": SeasonalNaive(24), "mstl": MSTLForecaster()},
        ensembles={"ensemble": ("snaive24", "mstl")},
    )
    scores = {n: r.cv_mase for n, r in training.candidates.items() if n != COMBINATION}
    assert set(scores) == {"snaive24", "mstl", "ensemble"}
    assert training.champion == COMBINATION == training.chain[0]
    assert training.chain[1:] == sorted(scores, key=lambda n: scores[n])
    assert training.candidates["ensemble"].origins == 2


def test_regularize_fills_gaps_and_truncates_to_hour() -> None:
    frame = pd.DataFrame(
        {
            "ds": pd.to_datetime(["1970-01-01 00:10", "1970-01-01 01:00", "1970-01-01 03:00"]),
            "y": [1.0, 2.0, 4.0],
        }
    )
    out = regularize(frame)
    assert list(out["ds"].dt.hour) == [0, 1, 2, 3]
    # the missing hour 2 is filled from the past only (the last value: no day back yet), not
    # interpolated towards hour 3's value
    assert out["y"].tolist() == [1.0, 2.0, 2.0, 4.0]
    assert frame["ds"].iloc[0].minute == 10  # the argument is not mutated


def test_panel_forecaster_plugs_in_as_a_candidate() -> None:
    from models.selection import PanelAdapter

    def forecast_panel(history: pd.DataFrame, horizon: int, levels=(80, 90)) -> pd.DataFrame:
        rows = []
        for uid, part in history.groupby("unique_id"):
            last, level = part["ds"].max(), part["y"].iloc[-24:].mean()
            for h in range(1, horizon + 1):
                ts = last + pd.Timedelta(hours=h)
                rows.append((uid, ts, level, level - 50, level + 50, level + 40))
        cols = ["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper", "q90"]
        return pd.DataFrame(rows, columns=cols)

    history = series(5)
    cands = {
        "global_gbm": PanelAdapter("global_gbm", forecast_panel),
        "snaive24": SeasonalNaive(24),
    }
    training = train_series(history, forecasters=cands, ensembles={})
    assert math.isfinite(training.candidates["global_gbm"].cv_mase)
    models = {n: r.model for n, r in training.candidates.items() if r.model is not None}
    result = forecast_series(models, ["global_gbm"], history, 6, forecasters=cands)
    assert result.model == "global_gbm"
    # served with the intervals calibrated on its own CV errors (conformal), not its own ones
    assert "conformal" in models["global_gbm"]
    assert not (result.frame["yhat_q90"] - result.frame["yhat"]).round(6).eq(40).all()
    assert (result.frame["yhat_q90"] >= result.frame["yhat"]).all()


def test_clip_negative_is_pandas_clip_at_zero() -> None:
    """Negative values become 0; NaN, -0.0 and non-negative values are kept, bit for bit as
    pandas' ``clip(lower=0.0)`` (which it replaced on the CV path)."""
    values = np.array([-2.5, -0.0, 0.0, 1e-300, -1e-300, np.nan, 3.0, -np.inf, np.inf])
    got = clip_negative(values)
    want = pd.Series(values).clip(lower=0.0).to_numpy()
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def players(days: int, seed: int = 11) -> pd.DataFrame:
    """Hourly players: a wide daily swing (x6 trough to peak), weekends 40% higher, 4% more
    players a day, noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2026-01-05", periods=24 * days, freq="h")  # a Monday
    hour, dow = ds.hour.to_numpy(), ds.dayofweek.to_numpy()
    y = 2000 * np.exp(0.9 * np.sin(2 * np.pi * (hour - 14) / 24)) * (1 + 0.4 * (dow >= 5))
    y = y * np.exp(0.04 * np.arange(len(ds)) / 24)
    return pd.DataFrame({"ds": ds, "y": y * np.exp(rng.normal(0, 0.03, len(ds)))})


def test_clean_log_interpolates_glitches_and_keeps_every_other_hour() -> None:
    y = players(7)["y"].to_numpy()
    glitched = y.copy()
    glitched[[30, 31, 100]] = 0.0  # a dropout of two hours and one of one
    glitched[140] = np.nan
    glitched[60] = 5 * y[60]  # a spike
    x = clean_log(glitched)
    bad = [30, 31, 60, 100, 140]
    ok = np.setdiff1d(np.arange(y.size), bad)
    np.testing.assert_array_equal(x[ok], np.log(y[ok]))
    assert np.all(np.isfinite(x))
    # each glitch replaced by a value between its neighbours' (linear in log)
    for i in bad:
        lo, hi = sorted((x[i - 1] if i - 1 not in bad else x[i - 2], x[i + 1]))
        assert lo - 1e-9 <= x[i] <= hi + 1e-9


def test_a_launch_step_is_taken_out_of_the_past_and_a_weekend_is_not() -> None:
    x = np.log(players(21)["y"].to_numpy())
    # the weekend lift recurs every week: not a step
    np.testing.assert_array_equal(level_shift_adjust(x), x)
    launched = x.copy()
    launched[: 24 * 9] -= np.log(8.0)  # 8x more players from day 9 on
    adjusted = level_shift_adjust(launched)
    np.testing.assert_allclose(adjusted[24 * 9 :], x[24 * 9 :])
    before = adjusted[: 24 * 9] - x[: 24 * 9]
    assert np.abs(before).max() < np.log(1.15)  # the past moved to the new level, about


def test_mstl_clean_uses_the_log_scale_despite_glitch_zeros_and_forecasts_closer() -> None:
    """One glitch zero keeps plain MSTL off the log scale: as the players grow, its additive
    seasonality keeps last weeks' swing where the cleaned log scale grows it with them."""
    full = players(26)
    history, actual = full.iloc[:-48].copy(), full["y"].to_numpy()[-48:]
    history.loc[[200, 401], "y"] = 0.0
    clean, plain = CleanMSTLForecaster(), MSTLForecaster()
    got = clean.predict(clean.fit(history), history, 48)
    base = plain.predict(plain.fit(history), history, 48)
    assert plain.fit(history)["log"] is False
    assert len(got) == 48 and got["ds"].iloc[0] == history["ds"].iloc[-1] + pd.Timedelta(hours=1)
    assert (got["yhat_lower"] <= got["yhat"]).all() and (got["yhat"] <= got["yhat_upper"]).all()
    err_clean = np.abs(got["yhat"].to_numpy() - actual).mean()
    err_plain = np.abs(base["yhat"].to_numpy() - actual).mean()
    assert err_clean < 0.5 * err_plain


def test_mstl_clean_stays_on_the_raw_scale_where_zeros_are_real_and_needs_two_days() -> None:
    history = players(14)
    history.loc[history["ds"].dt.hour.between(2, 5), "y"] = 0.0  # idle every night: real zeros
    clean = CleanMSTLForecaster()
    got = clean.predict(clean.fit(history), history, 48)
    assert np.all(np.isfinite(got["yhat"])) and (got["yhat"] >= 0).all()
    # the idle hours forecast below the hours around them (cleaned as glitches on the log
    # scale, they would be interpolated between them)
    hour = got["ds"].dt.hour
    idle, around = got["yhat"][hour.between(2, 5)], got["yhat"][hour.isin([1, 6])]
    assert idle.max() < around.min()
    with pytest.raises(ValueError, match="48 hours"):
        clean.fit(history.iloc[:47])
