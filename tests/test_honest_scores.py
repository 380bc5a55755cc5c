"""Scores measured honestly (issue 13): nothing after a CV cutoff reaches the score made at it,
not even through a gap that straddles the cutoff; events enter a champion's forecast once."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import SeriesKey
from fleetcast.stages.training import _fit_panel
from models import global_gbm
from models.baselines import MSTLForecaster, SeasonalNaive
from models.selection import CVConfig, train_series

START = datetime(2026, 1, 5)
SMALL = global_gbm.GBMConfig(num_rounds=40, max_cutoffs=30, num_leaves=15)


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    quiet_libraries()


def series(seed: int, hours: int, level: float = 500.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours, freq="h")
    shape = np.exp(0.6 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 14) / 24))
    y = level * (1 + seed / 4) * shape * np.exp(rng.normal(0, 0.1, hours))
    return pd.DataFrame({"ds": ts, "y": y})


def with_gap_and_changed_future(
    frame: pd.DataFrame, gap: tuple[int, int], after: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the series with hours gap[0]..gap[1]-1 missing, the same with every value from hour
    ``after`` on tripled)."""
    keep = np.ones(len(frame), dtype=bool)
    keep[gap[0] : gap[1]] = False
    a = frame[keep].reset_index(drop=True)
    y = frame["y"].to_numpy().copy()
    y[after:] *= 3.0
    b = frame.assign(y=y)[keep].reset_index(drop=True)
    return a, b


def test_cv_score_ignores_values_after_a_gap_across_the_cutoff() -> None:
    """A gap from 6 hours before the first CV cutoff to 4 hours into the second window: the first
    origin's score (forecast, its in-sample scale and its actuals) must not move when the values
    after the gap change. Linear interpolation across the gap let them in."""
    n = 12 * 24
    cv = CVConfig(horizon=24, n_origins=2)
    c1, c2 = n - 48, n - 24
    a, b = with_gap_and_changed_future(series(0, n), (c1 - 6, c2 + 4), after=c2 + 4)
    forecasters = {"snaive24": SeasonalNaive(24), "mstl": MSTLForecaster()}
    ta = train_series(a, config=cv, forecasters=forecasters, ensembles={})
    tb = train_series(b, config=cv, forecasters=forecasters, ensembles={})
    for name in forecasters:
        first_a, second_a = ta.candidates[name].origin_mase
        first_b, second_b = tb.candidates[name].origin_mase
        assert first_a == first_b, name  # nothing after the cutoff leaked into origin 1
        assert second_a != second_b, name  # the change is seen where it belongs: origin 2


def test_panel_holdout_ignores_values_after_a_gap_across_it() -> None:
    """The panel model holds out each series' last 48 hours; a gap across that boundary must not
    carry the held-out values into the model CV scores (same forecast and CV MASE at origin 1;
    the served model is retrained with those hours, ``GBMConfig.refit``, and may differ)."""
    hours = 16 * 24
    cv = CVConfig(horizon=24, n_origins=2)
    keys = [SeriesKey(f"g{i}", "global", "players") for i in range(4)]
    hist, changed = {}, {}
    for i, k in enumerate(keys):
        hist[k], changed[k] = with_gap_and_changed_future(
            series(i, hours), (hours - 52, hours - 20), after=hours - 20
        )
    a = _fit_panel("players", hist, cv, local="none", threads=1, config=SMALL)
    b = _fit_panel("players", changed, cv, local="none", threads=1, config=SMALL)
    assert a.model_json is not None and b.model_json is not None
    for k in keys:
        pa, pb = a.scores[k].result.cv_points, b.scores[k].result.cv_points
        np.testing.assert_array_equal(pa[hours - 48], pb[hours - 48])
        assert a.scores[k].result.origin_mase[0] == b.scores[k].result.origin_mase[0]


# ------------------------------------------------------------------ events counted once

LIFT = 1.5  # a tournament every Saturday 18:00-22:00 multiplies demand by this


def weekly_tournament(seed: int, hours: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(history, demand without the tournaments) for a series with a weekly tournament."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours + 48, freq="h")
    base = 800 * (1 + seed / 3) * np.exp(0.6 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 14) / 24))
    during = (ts.dayofweek.to_numpy() == 5) & (ts.hour.to_numpy() >= 18) & (ts.hour < 22)
    y = base * np.where(during, LIFT, 1.0) * np.exp(rng.normal(0, 0.03, len(ts)))
    return pd.DataFrame({"ds": ts[:hours], "y": y[:hours]}), base


def tournaments(hours: int) -> pd.DataFrame:
    starts = [d + pd.Timedelta(hours=18) for d in pd.date_range(START, periods=hours // 24 + 3)
              if d.dayofweek == 5]  # fmt: skip
    return pd.DataFrame(
        {
            "kind": "tournament",
            "starts_at": starts,
            "ends_at": [s + pd.Timedelta(hours=4) for s in starts],
        }
    )


def test_global_model_champion_forecasts_a_weekly_tournament_once() -> None:
    """The global model sees last week's tournament through its lags: served as scored (plain),
    it forecasts the tournament hours within 25% of the real uplift; Prophet's learned uplift
    laid on top as well would nearly double it."""
    from fleetcast.stages.training import PANEL, panel_frame
    from models.prophet_model import ProphetForecaster
    from models.selection import FORECASTERS, PrecomputedForecaster, forecast_series

    hours = 5 * 168 + 5 * 24  # ends on a Friday 23:00: the next 48 h hold a tournament
    panel = {f"s{i}": weekly_tournament(i, hours) for i in range(4)}
    events = tournaments(hours)
    fitted = global_gbm.fit(
        {k: h["y"].to_numpy() for k, (h, _) in panel.items()}, 48, n_jobs=1,
        config=global_gbm.GBMConfig(num_rounds=150),
    )  # fmt: skip
    history, base = panel["s0"]
    pred = global_gbm.predict(fitted, {"s0": (START, history["y"].to_numpy())}, 48)
    assert pred["model"][0] == global_gbm.MODEL_NAME
    prophet = ProphetForecaster().fit(history, events)
    assert "event_tournament" in prophet["regressors"]  # Prophet did learn the uplift
    forecasters = {**{n: f() for n, f in FORECASTERS.items()}}
    forecasters[PANEL] = PrecomputedForecaster(PANEL, panel_frame(pred))
    result = forecast_series(
        {PANEL: {"kind": PANEL}, "prophet": prophet},
        [PANEL, "prophet"],
        history,
        48,
        events,
        forecasters=forecasters,
    )
    assert result.model == PANEL  # served as scored: no event effect added
    ts = pd.DatetimeIndex(result.frame["ds"])
    during = (ts.dayofweek == 5) & (ts.hour >= 18) & (ts.hour < 22)
    assert during.sum() == 4
    uplift = result.frame["yhat"].to_numpy()[during] / base[hours:][during] - 1
    real = LIFT - 1
    assert abs(uplift.mean() - real) <= 0.25 * real, uplift  # not (LIFT * LIFT - 1)


def test_the_served_variant_is_the_scored_one_and_is_recorded() -> None:
    """With events and Prophet among the candidates, every other candidate also competes as its
    ``+events`` variant in CV; the forecast is made by exactly the champion's variant."""
    from models.selection import FORECASTERS, forecast_series

    hours = 3 * 168 + 5 * 24
    history, _ = weekly_tournament(1, hours)
    events = tournaments(hours)
    names = ("prophet", "snaive168", "snaive24")
    cands = {n: FORECASTERS[n]() for n in names}
    training = train_series(
        history, events, config=CVConfig(horizon=24, n_origins=2), forecasters=cands, ensembles={}
    )
    scored = set(training.candidates)
    assert {"snaive168+events", "snaive24+events"} <= scored and "prophet+events" not in scored
    assert all(np.isfinite(training.candidates[n].cv_mase) for n in scored)
    models = {n: c.model for n, c in training.candidates.items() if c.model is not None}
    result = forecast_series(models, training.chain, history, 48, events, forecasters=cands)
    assert result.model == training.champion and not result.notes
    # the plain candidate is served plain: no event effect reaches it
    plain = forecast_series(models, ["snaive168"], history, 48, events, forecasters=cands)
    last_week = history["y"].to_numpy()[-168:][:48]
    np.testing.assert_allclose(plain.frame["yhat"].to_numpy(), last_week)


# ------------------------------------------------------------------ calibrated intervals


def persistent_noise(seed: int, hours: int) -> pd.DataFrame:
    """A daily shape with AR(1) log noise: errors persist for hours, the case MSTL's and the
    seasonal naive's own intervals get wrong."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours, freq="h")
    e = np.zeros(hours)
    for t in range(1, hours):
        e[t] = 0.8 * e[t - 1] + rng.normal(0, 0.05)
    y = 1000 * (1 + seed / 5) * np.exp(0.6 * np.sin(2 * np.pi * ts.hour.to_numpy() / 24) + e)
    return pd.DataFrame({"ds": ts, "y": y})


def test_conformal_intervals_cover_in_cv_and_held_out() -> None:
    """The 80% interval of a served MSTL covers 75-85% of the held-out next 48 hours (12 series
    pooled) and of its CV windows (each origin calibrated on the others only); its 0.9 quantile
    86-94% of both."""
    from models.selection import FORECASTERS, forecast_series

    inside, below_q90, cv, cv_q90 = [], [], [], []
    for seed in range(12):
        full = persistent_noise(seed, 10 * 24 + 48)
        hist, actual = full.iloc[:-48], full["y"].to_numpy()[-48:]
        cands = {"mstl": FORECASTERS["mstl"]()}
        training = train_series(hist, config=CVConfig(), forecasters=cands, ensembles={})
        assert "conformal" in (training.candidates["mstl"].model or {})
        models = {n: c.model for n, c in training.candidates.items() if c.model is not None}
        frame = forecast_series(models, training.chain, hist, 48, forecasters=cands).frame
        lo, hi = frame["yhat_lower"].to_numpy(), frame["yhat_upper"].to_numpy()
        inside.append(np.mean((actual >= lo) & (actual <= hi)))
        below_q90.append(np.mean(actual <= frame["yhat_q90"].to_numpy()))
        cv.append(training.candidates["mstl"].cv_coverage)
        cv_q90.append(training.candidates["mstl"].cv_coverage_q90)
    assert 0.75 <= np.mean(inside) <= 0.85, np.mean(inside)
    assert 0.75 <= np.mean(cv) <= 0.85, np.mean(cv)
    assert 0.86 <= np.mean(below_q90) <= 0.94, np.mean(below_q90)
    assert 0.86 <= np.mean(cv_q90) <= 0.94, np.mean(cv_q90)
