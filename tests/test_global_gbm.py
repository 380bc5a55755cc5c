"""The global LightGBM forecaster on small deterministic synthetic panels."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from models import global_gbm
from models.global_gbm import GBMConfig, forecast_panel
from models.m4_scoring import mase

H = 48
T0 = datetime(2026, 1, 5)  # a Monday
# Smaller than the benchmark defaults to keep the suite fast; same code path.
FAST = GBMConfig(stride=6, max_cutoffs=40, num_rounds=80, num_leaves=15)


def _series(n: int, seed: int, level: float, trend: float) -> np.ndarray:
    """Trend x daily x weekly (weekend uplift) pattern with multiplicative noise, > 0."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    hour, day = t % 24, (t // 24) % 7
    daily = 1 + 0.5 * np.sin(2 * np.pi * (hour - 6) / 24)
    weekly = np.where(day >= 5, 1.4, 1.0)
    return level * (1 + trend * t) * daily * weekly * rng.lognormal(0, 0.05, n)


def _panel(n_series: int, n: int = 700) -> dict[str, np.ndarray]:
    return {
        f"s{i}": _series(n, seed=i, level=50 + 30 * i, trend=0.0008 * (i % 3))
        for i in range(n_series)
    }


def _long(arrays: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.concat(
        pl.DataFrame(
            {
                "unique_id": uid,
                "ds": pl.datetime_range(T0, T0 + timedelta(hours=len(y) - 1), "1h", eager=True),
                "y": y,
            }
        )
        for uid, y in arrays.items()
    )


def _mase_vs_snaive(arrays: dict[str, np.ndarray], fc: pl.DataFrame) -> tuple[float, float]:
    gbm, snaive = [], []
    for uid, y in arrays.items():
        hist, actual = y[:-H], y[-H:]
        f = fc.filter(pl.col("unique_id") == uid).sort("ds")["yhat"].to_numpy()
        gbm.append(mase(actual, f, hist))
        snaive.append(mase(actual, np.resize(hist[-24:], H), hist))
    return float(np.mean(gbm)), float(np.mean(snaive))


def _check_frame(fc: pl.DataFrame, n_series: int) -> None:
    assert fc.height == n_series * H
    num = fc.select(pl.exclude("unique_id", "ds", "model"))
    assert num.null_count().sum_horizontal().item() == 0
    assert not num.select(pl.any_horizontal(pl.all().is_nan()).any()).item()
    assert (fc["yhat"] >= 0).all()
    assert (fc["yhat_lower"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper"]).all()
    assert (fc["q90"] >= fc["yhat"]).all()
    assert (fc["lo_90"] <= fc["lo_80"]).all() and (fc["hi_80"] <= fc["hi_90"]).all()


@pytest.fixture(scope="module")
def panel() -> dict[str, np.ndarray]:
    return _panel(6)


@pytest.fixture(scope="module")
def panel_forecast(panel: dict[str, np.ndarray]) -> pl.DataFrame:
    history = _long({k: v[:-H] for k, v in panel.items()})
    return forecast_panel(history, H, n_jobs=1, config=FAST)


def test_panel_beats_seasonal_naive(
    panel: dict[str, np.ndarray], panel_forecast: pl.DataFrame
) -> None:
    _check_frame(panel_forecast, len(panel))
    assert set(panel_forecast["model"]) == {global_gbm.MODEL_NAME}
    ours, snaive = _mase_vs_snaive(panel, panel_forecast)
    assert ours < 0.8 * snaive, (ours, snaive)


def test_forecast_timestamps_continue_history(
    panel: dict[str, np.ndarray], panel_forecast: pl.DataFrame
) -> None:
    last = T0 + timedelta(hours=len(panel["s0"]) - H - 1)
    s0 = panel_forecast.filter(pl.col("unique_id") == "s0").sort("ds")["ds"]
    assert s0[0] == last + timedelta(hours=1) and s0[-1] == last + timedelta(hours=H)


def test_single_series_works_and_beats_seasonal_naive() -> None:
    arrays = {"only": _series(700, seed=42, level=80, trend=0.001)}
    fc = forecast_panel(_long({k: v[:-H] for k, v in arrays.items()}), H, n_jobs=1, config=FAST)
    _check_frame(fc, 1)
    ours, snaive = _mase_vs_snaive(arrays, fc)
    assert ours < snaive, (ours, snaive)


def test_rows_after_cutoff_are_ignored() -> None:
    arrays = _panel(2, n=500)
    history = _long(arrays)
    cutoff = T0 + timedelta(hours=400 - 1)
    before = forecast_panel(history.filter(pl.col("ds") <= cutoff), H, n_jobs=1, config=FAST)
    changed = history.with_columns(
        pl.when(pl.col("ds") > cutoff).then(pl.col("y") * 10).otherwise(pl.col("y")).alias("y")
    )
    with_future = forecast_panel(changed, H, n_jobs=1, config=FAST, cutoff=cutoff)
    assert with_future["ds"].min() == cutoff + timedelta(hours=1)
    assert before.equals(with_future)


def test_short_series_falls_back_and_is_named() -> None:
    arrays = _panel(3)
    arrays["new"] = _series(100, seed=9, level=20, trend=0.0)  # under MIN_HISTORY hours
    fc = forecast_panel(_long(arrays), H, n_jobs=1, config=FAST)
    _check_frame(fc, 4)
    models = dict(fc.select("unique_id", "model").unique().iter_rows())
    assert models["new"] == global_gbm.FALLBACK_NAME
    assert {models[k] for k in ("s0", "s1", "s2")} == {global_gbm.MODEL_NAME}
    new = fc.filter(pl.col("unique_id") == "new").sort("ds")["yhat"].to_numpy()
    assert np.allclose(new, np.resize(arrays["new"][-24:], H))


def test_too_little_history_everywhere_still_forecasts() -> None:
    fc = forecast_panel(_long({"a": np.arange(30.0) + 1}), 12, config=FAST)
    assert fc.height == 12 and set(fc["model"]) == {global_gbm.FALLBACK_NAME}
    assert fc["yhat"].is_finite().all()


def test_gaps_are_filled_on_an_hourly_grid() -> None:
    arrays = _panel(2, n=500)
    history = _long(arrays).filter(
        ~pl.col("ds").dt.hour().is_in([3]) | (pl.col("ds").dt.day() != 10)
    )
    grid = global_gbm.regularize(history)
    assert all(len(y) == 500 and np.isfinite(y).all() for _, y in grid.values())
    fc = forecast_panel(history, H, n_jobs=1, config=FAST)
    _check_frame(fc, 2)


def test_predict_fast_path_uses_newest_observation(panel: dict[str, np.ndarray]) -> None:
    grid = {k: (T0, v[:-H]) for k, v in panel.items()}
    fitted = global_gbm.fit({k: v for k, (_, v) in grid.items()}, H, n_jobs=1, config=FAST)
    first = global_gbm.predict(fitted, grid)
    newer = {k: (T0, v[: -H + 1]) for k, v in panel.items()}  # one more hour observed
    second = global_gbm.predict(fitted, newer, 24)
    assert second.height == len(panel) * 24
    assert second["ds"].min() == first["ds"].min() + timedelta(hours=1)


@pytest.mark.parametrize(("hours", "origins"), [(600, 4), (16 * 24, 3)])
def test_intervals_are_calibrated_on_windows_before_the_held_out_hours(
    hours: int, origins: int
) -> None:
    """The last `horizon` hours are the windows the product scores the model on (its CV): no step
    of the fit reads them. Changing them changes neither the trees nor the interval quantiles,
    so the coverage recorded there is measured on windows the calibration never saw. All the
    calibration origins when the history allows them; fewer (said so) when it is short."""
    arrays = _panel(4, n=hours)
    rng = np.random.default_rng(7)
    changed = {k: np.r_[v[:-H], v[-H:] * rng.lognormal(0, 0.5, H)] for k, v in arrays.items()}
    a = global_gbm.fit(arrays, H, n_jobs=1, config=FAST).scored()  # not the refit served one
    b = global_gbm.fit(changed, H, n_jobs=1, config=FAST).scored()
    assert a.booster is not None and b.booster is not None
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.quantiles.keys() == b.quantiles.keys() and a.quantiles
    for p in a.quantiles:
        np.testing.assert_array_equal(a.quantiles[p], b.quantiles[p])
    assert a.difficulty == b.difficulty and len(a.difficulty) == 4
    assert a.notes == [
        f"intervals calibrated on {4 * origins} windows of 48 h ({origins} origins 24 h apart, "
        "before the held-out last 48 h) forecast by a model trained before them; normalised by "
        "each series' own calibration error",
        "served model retrained with the held-out last 48 h",
    ]


def test_refit_serves_the_held_out_hours_and_cv_reads_the_model_that_never_saw_them() -> None:
    """With ``refit`` the served booster is retrained with the held-out hours (it reads them),
    while the model the CV windows are scored with, and the intervals, are the calibration
    model's, trained without them: unchanged when those hours change, the intervals the same as
    with ``refit`` off (where the served model, trained without them, is the one scored)."""
    arrays = _panel(4, n=600)
    rng = np.random.default_rng(7)
    changed = {k: np.r_[v[:-H], v[-H:] * rng.lognormal(0, 0.5, H)] for k, v in arrays.items()}
    on, off = replace(FAST, refit=True), replace(FAST, refit=False)
    a = global_gbm.fit(arrays, H, n_jobs=1, config=on)
    b = global_gbm.fit(changed, H, n_jobs=1, config=on)
    plain = global_gbm.fit(arrays, H, n_jobs=1, config=off)
    assert plain.held_out is None and plain.scored() is plain
    assert a.booster is not None and b.booster is not None and plain.booster is not None
    assert a.booster.model_to_string() != b.booster.model_to_string()  # the refit read them
    held = [f.scored().booster for f in (a, b)]
    assert held[0] is not None and held[1] is not None
    assert held[0].model_to_string() == held[1].model_to_string()
    assert held[0].model_to_string() != a.booster.model_to_string()
    for p in plain.quantiles:
        np.testing.assert_array_equal(a.quantiles[p], plain.quantiles[p])
        np.testing.assert_array_equal(b.quantiles[p], plain.quantiles[p])
    assert a.notes[-1] == "served model retrained with the held-out last 48 h"
    assert global_gbm.loads(global_gbm.dumps(a)).held_out is None  # what is stored is served


@pytest.mark.parametrize("stride", [1, 3, 4])
@pytest.mark.parametrize("every", [2, 3, 4])
def test_thinned_steps_keep_a_kth_of_each_cutoff_every_step_and_the_hours(
    stride: int, every: int
) -> None:
    """``steps_every=k`` keeps a k-th of each cutoff's steps, not the same ones at every cutoff:
    every step is still trained on, and of the hours seen from 3k cutoffs or more at most 10% are
    no longer a target (each is lost with probability about (1 - 1/k) ** 3k; none in all)."""
    n = 60
    keep = global_gbm.kept_steps(n, H, every).reshape(n, H)
    assert (keep.sum(axis=1) == H // every).all()
    assert keep.any(axis=0).all()
    seen = np.zeros(n * stride + H, dtype=int)
    kept = np.zeros_like(seen)
    for i in range(n):
        seen[i * stride : i * stride + H] += 1
        kept[i * stride : i * stride + H] += keep[i]
    lost = kept[seen >= 3 * every] == 0
    assert lost.size > 0 and lost.mean() <= 0.1
    y = np.random.default_rng(0).gamma(2.0, 50.0, 700)
    x_all, _ = global_gbm._training_rows([y], H, replace(FAST, stride=stride, steps_every=1))
    x_thin, _ = global_gbm._training_rows([y], H, replace(FAST, stride=stride, steps_every=every))
    assert x_thin.shape[0] * every == x_all.shape[0]


def test_too_short_for_an_earlier_calibration_window_is_said() -> None:
    """Long enough to train, too short for any window before the held-out hours: the intervals
    are calibrated on the held-out hours and the model's notes say the coverage is optimistic."""
    fitted = global_gbm.fit(_panel(4, n=290), H, n_jobs=1, config=FAST)
    assert fitted.booster is not None and fitted.quantiles
    note, refit = fitted.notes
    assert refit == "served model retrained with the held-out last 48 h"
    assert note.startswith("intervals calibrated on the held-out last 48 h (4 windows)")
    assert "optimistic" in note


def test_difficulty_divides_each_window_by_its_series_other_windows() -> None:
    """Series 0 has windows of mean |error| 1 and 3, series 1 one window of 2, series 2 none: the
    served multipliers are 2, 2 and the median 2 (NaN marks "no windows"); window 0 is divided by
    3 (its series' other window), window 1 by 1, and series 1's only window by the median."""
    errors = np.array([[1.0, -1.0], [3.0, -3.0], [-2.0, 2.0]])
    per_series, per_window, default = global_gbm.difficulty(errors, np.array([0, 0, 1]), 3)
    np.testing.assert_array_equal(per_series[:2], [2.0, 2.0])
    assert np.isnan(per_series[2])
    np.testing.assert_array_equal(per_window, [3.0, 1.0, 2.0])
    assert default == 2.0


def test_difficulty_is_floored_at_a_share_of_the_median() -> None:
    """A series whose calibration windows were forecast perfectly does not get a zero-width
    interval; an all-zero panel gets multiplier 1."""
    errors = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 2.0], [2.0, 2.0], [4.0, 4.0], [4.0, 4.0]])
    per_series, per_window, default = global_gbm.difficulty(errors, np.repeat([0, 1, 2], 2), 3)
    assert default == 2.0
    floor = global_gbm.DIFFICULTY_FLOOR * 2.0
    np.testing.assert_array_equal(per_series, [floor, 2.0, 4.0])
    assert per_window.min() == floor
    _, _, none = global_gbm.difficulty(np.zeros((2, 3)), np.array([0, 1]), 2)
    assert none == 1.0


def _calm_and_noisy(n_each: int, n: int = 600) -> dict[str, np.ndarray]:
    """Two kinds of series of one scale: a strong weekly pattern with little noise (the model
    forecasts it far better than a day-ago value does) and a flat level with large iid noise
    (nothing to forecast)."""
    t = np.arange(n)
    weekly = (1 + 0.6 * np.sin(2 * np.pi * t / 168)) * (1 + 0.5 * np.sin(2 * np.pi * t / 24))
    out = {}
    for i in range(n_each):
        rng = np.random.default_rng(100 + i)
        out[f"calm{i}"] = 100 * weekly * rng.lognormal(0, 0.03, n)
        out[f"noisy{i}"] = np.maximum(100 + 40 * rng.standard_normal(n), 0.0)
    return out


def _held_out_q90_coverage(fitted: global_gbm.FittedGBM, arrays: dict[str, np.ndarray]) -> dict:
    scored = fitted.scored()
    past = {k: (T0, v[:-H]) for k, v in arrays.items()}
    fc = global_gbm.predict(scored, past, H)
    out: dict[str, list[float]] = {"calm": [], "noisy": []}
    for uid, v in arrays.items():
        q90 = fc.filter(pl.col("unique_id") == uid).sort("ds")["q90"].to_numpy()
        out[uid.rstrip("0123456789")].append(float(np.mean(v[-H:] <= q90)))
    return {k: float(np.mean(c)) for k, c in out.items()}


def test_normalised_intervals_cover_calm_and_noisy_series_alike() -> None:
    """Pooled over a panel, one set of scaled quantiles over-covers the series the model forecasts
    well and under-covers the ones it cannot: the pooled q90 covers the calm series' held-out
    hours nearly always and the noisy ones' well below 90%. Normalised by each series' own
    calibration error, both kinds are covered near 90%, with a far narrower calm interval."""
    arrays = _calm_and_noisy(8)
    pooled = global_gbm.fit(arrays, H, n_jobs=1, config=replace(FAST, normalise=False))
    normal = global_gbm.fit(arrays, H, n_jobs=1, config=replace(FAST, normalise=True))
    assert pooled.difficulty == {} and len(normal.difficulty) == 16
    calm = np.mean([d for k, d in normal.difficulty.items() if k.startswith("calm")])
    noisy = np.mean([d for k, d in normal.difficulty.items() if k.startswith("noisy")])
    assert noisy > 2 * calm
    before, after = _held_out_q90_coverage(pooled, arrays), _held_out_q90_coverage(normal, arrays)
    assert before["calm"] > 0.97 and before["noisy"] < 0.85
    assert 0.84 <= after["calm"] <= 0.96 and 0.84 <= after["noisy"] <= 0.96
    stored = global_gbm.loads(global_gbm.dumps(normal))
    assert stored.difficulty == normal.difficulty
    assert stored.difficulty_default == normal.difficulty_default


def test_each_tail_is_read_at_its_share_of_the_nominal_probability() -> None:
    """``tail_share`` 0.8 reads q90 at the errors' 0.92 quantile and the 80% interval's lower end
    at 0.08 (both tails wider), keyed by the nominal probability; the point forecast is the
    same model's."""
    rng = np.random.default_rng(3)
    errors = rng.standard_normal((400, H))
    read = global_gbm._step_quantiles(errors, small=False, tail_share=0.8)
    nominal = global_gbm._step_quantiles(errors, small=False, tail_share=1.0)
    # step 10 pools steps 8-12 (+-2), and the tails never narrow with the step
    assert read[0.9][10] >= np.quantile(errors[:, 8:13], 0.92) - 1e-12
    assert np.quantile(errors[:, 8:13], 0.92) > np.quantile(errors[:, 8:13], 0.9)
    assert np.all(read[0.9] > nominal[0.9]) and np.all(read[0.1] < nominal[0.1])
    assert read[0.9][0] == pytest.approx(np.quantile(errors[:, 0:3], 0.92))
    assert read[0.1][0] == pytest.approx(np.quantile(errors[:, 0:3], 0.08))

    arrays = _panel(6)
    wide = global_gbm.fit(arrays, H, n_jobs=1, config=replace(FAST, tail_share=0.8))
    narrow = global_gbm.fit(arrays, H, n_jobs=1, config=replace(FAST, tail_share=1.0))
    series = {k: (T0, v) for k, v in arrays.items()}
    fw, fn = global_gbm.predict(wide, series), global_gbm.predict(narrow, series)
    assert fw["yhat"].to_list() == fn["yhat"].to_list()
    assert (fw["q90"] >= fn["q90"]).all() and (fw["q90"] > fn["q90"]).any()
    assert (fw["yhat_lower"] <= fn["yhat_lower"]).all()
