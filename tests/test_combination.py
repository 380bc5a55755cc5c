"""The served forecast: the best three candidates by CV MASE, weighted by 1 / CV MASE."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.accuracy import mase, mase_scale
from models.baselines import MSTLForecaster, SeasonalNaive
from models.selection import (
    COMBINATION,
    COMBINE_BEST,
    COMBINE_WITHIN,
    CONFORMAL_PROBS,
    PANEL_KEEP_MARGIN,
    CandidateResult,
    CVConfig,
    combination,
    conformal,
    cv_cutoffs,
    forecast_at,
    forecast_series,
    train_series,
)


def series(days: int = 10, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("1970-01-01", periods=24 * days, freq="h")
    weekly = 1 + 0.2 * (ds.dayofweek.to_numpy() >= 5)
    y = (500 + 300 * np.sin(2 * np.pi * ds.hour.to_numpy() / 24)) * weekly
    return pd.DataFrame({"ds": ds, "y": y + rng.normal(0, 40, len(ds))})


@dataclass(frozen=True)
class Flat:
    """A poor candidate: the history's mean, flat."""

    name: str = "flat"

    def fit(self, history: pd.DataFrame, events: Any = None) -> dict[str, Any]:
        return {"kind": self.name}

    def predict(
        self, model: dict, history: pd.DataFrame, horizon: int, events: Any = None
    ) -> pd.DataFrame:
        ds = pd.date_range(history["ds"].iloc[-1] + pd.Timedelta(hours=1), periods=horizon,
                           freq="h")  # fmt: skip
        level = float(history["y"].mean())
        return pd.DataFrame({"ds": ds, "yhat": level, "yhat_lower": level * 0.9,
                             "yhat_upper": level * 1.1, "yhat_q90": level * 1.1})  # fmt: skip


def candidates() -> dict[str, Any]:
    return {
        "snaive24": SeasonalNaive(24),
        "snaive168": SeasonalNaive(168),
        "mstl": MSTLForecaster(),
        "flat": Flat(),
    }


@pytest.fixture(scope="module")
def trained():
    history = series(14)  # two weeks: snaive168 forecasts at all six origins
    fcs = candidates()
    return history, fcs, train_series(history, forecasters=fcs, ensembles={})


def test_the_best_three_by_cv_are_combined_weighted_by_inverse_cv_mase(trained) -> None:
    history, fcs, training = trained
    assert training.champion == COMBINATION and training.chain[0] == COMBINATION
    scores = {n: r.cv_mase for n, r in training.candidates.items() if n != COMBINATION}
    best = sorted(scores, key=lambda n: scores[n])[:COMBINE_BEST]
    assert "flat" not in best  # the poor one is out
    assert all(scores[n] <= (1 + COMBINE_WITHIN) * scores[best[0]] for n in best)
    model = training.candidates[COMBINATION].model
    assert model["members"] == best
    inverse = np.array([1 / scores[n] for n in best])
    assert model["weights"] == pytest.approx(list(inverse / inverse.sum()))
    assert training.chain[1:] == sorted(scores, key=lambda n: scores[n])


def test_its_cv_score_is_the_combined_cv_forecasts_scored_at_the_same_origins(trained) -> None:
    history, fcs, training = trained
    combo = training.candidates[COMBINATION]
    model, y = combo.model, history["y"].to_numpy()
    cuts = cv_cutoffs(len(history), CVConfig())
    assert combo.origins == len(cuts) == 2
    for cut, got in zip(cuts, combo.origin_mase, strict=True):
        point = sum(
            w * forecast_at(fcs[m], history, cut, 24)["yhat"].to_numpy()
            for m, w in zip(model["members"], model["weights"], strict=True)
        )
        assert got == pytest.approx(mase(y[cut : cut + 24], point, mase_scale(y[:cut], 24)))
    # by the triangle inequality the combination cannot score worse than its members' weighted
    # mean (origin by origin)
    for j, got in enumerate(combo.origin_mase):
        members = [training.candidates[m].origin_mase[j] for m in model["members"]]
        assert got <= float(np.dot(model["weights"], members)) + 1e-12


def test_the_served_forecast_is_the_weighted_mean_with_its_own_calibrated_interval(
    trained,
) -> None:
    history, fcs, training = trained
    models = {n: r.model for n, r in training.candidates.items()}
    served = forecast_series(models, training.chain, history, 48, forecasters=fcs)
    assert served.model == COMBINATION and not served.notes
    model = models[COMBINATION]
    alone = [forecast_series(models, [m], history, 48, forecasters=fcs).frame
             for m in model["members"]]  # fmt: skip
    want = sum(w * f["yhat"].to_numpy() for w, f in zip(model["weights"], alone, strict=True))
    np.testing.assert_allclose(served.frame["yhat"].to_numpy(), want)
    # the interval is the combination's own: conformal quantiles of its CV errors at every
    # origin (6 here), not an average of the members' intervals
    cal = model["conformal"]
    scale = mase_scale(history["y"].to_numpy(), 24)
    upper = np.maximum(want[:24] + scale * np.asarray(cal["0.9"]), want[:24])
    np.testing.assert_allclose(served.frame["yhat_upper"].to_numpy()[:24], upper)
    pairs = zip(model["weights"], alone, strict=True)
    averaged = sum(w * f["yhat_upper"].to_numpy() for w, f in pairs)
    assert not np.allclose(served.frame["yhat_upper"].to_numpy(), averaged)
    assert (served.frame["yhat_lower"] <= served.frame["yhat"]).all()
    assert (served.frame["yhat"] <= served.frame["yhat_upper"]).all()


def test_its_interval_is_calibrated_on_its_errors_at_all_six_origins(trained) -> None:
    history, fcs, training = trained
    combo, y = training.candidates[COMBINATION], history["y"].to_numpy()
    model = combo.model
    config = CVConfig()
    six = cv_cutoffs(len(history), replace(config, n_origins=config.calibration_origins))
    assert len(six) == 6
    errors = []
    for cut in six:
        point = sum(
            w * forecast_at(fcs[m], history, cut, 24)["yhat"].to_numpy()
            for m, w in zip(model["members"], model["weights"], strict=True)
        )
        errors.append((y[cut : cut + 24] - point) / mase_scale(y[:cut], 24))
    want = conformal(np.stack(errors))
    for p in ("0.05", "0.1", "0.9", "0.95"):
        np.testing.assert_allclose(model["conformal"][p], want[p])
    assert 0.0 < combo.cv_coverage <= 1.0  # leave-one-origin-out, as for every candidate
    assert 0.0 < combo.cv_coverage_q90 <= 1.0


def test_a_member_that_cannot_forecast_is_left_out_and_one_member_left_falls_back(trained) -> None:
    history, fcs, training = trained
    models = {n: r.model for n, r in training.candidates.items()}
    first, second, third = models[COMBINATION]["members"]
    w = dict(zip(models[COMBINATION]["members"], models[COMBINATION]["weights"], strict=True))
    served = forecast_series(models, training.chain, history, 24, forecasters=fcs,
                             refused={first: "HMAC not verified"})  # fmt: skip
    assert served.model == COMBINATION  # the other two, their weights renormalised
    parts = {m: forecast_series(models, [m], history, 24, forecasters=fcs).frame["yhat"]
             for m in (second, third)}  # fmt: skip
    want = (w[second] * parts[second] + w[third] * parts[third]) / (w[second] + w[third])
    np.testing.assert_allclose(served.frame["yhat"].to_numpy(), want.to_numpy())

    two_gone = {first: "HMAC not verified", second: "sha256 mismatch"}
    served = forecast_series(models, training.chain, history, 24, forecasters=fcs,
                             refused=two_gone)  # fmt: skip
    assert served.model == third  # next of the chain that can forecast, and the note says why
    assert any("combination failed: 1 of its members could forecast" in n for n in served.notes)


def test_a_candidate_over_twice_the_best_cv_mase_is_not_a_member() -> None:
    history = series()
    fcs = {"snaive24": SeasonalNaive(24), "mstl": MSTLForecaster(), "flat": Flat()}
    training = train_series(history, forecasters=fcs, ensembles={})
    scores = {n: training.candidates[n].cv_mase for n in fcs}
    assert scores["flat"] > (1 + COMBINE_WITHIN) * min(scores.values())  # the case under test
    model = training.candidates[COMBINATION].model
    assert model["members"] == sorted(["snaive24", "mstl"], key=lambda n: scores[n])
    assert training.chain[-1] == "flat"  # still a fallback


@dataclass(frozen=True)
class Raising:
    name: str = "raising"

    def fit(self, history: pd.DataFrame, events: Any = None) -> dict[str, Any]:
        return {"kind": self.name}

    def predict(self, model: dict, history: pd.DataFrame, horizon: int, events: Any = None):
        raise RuntimeError("solver blew up")


def test_with_fewer_than_two_scored_candidates_the_champion_serves_alone() -> None:
    history = series(4)
    one = train_series(history, forecasters={"snaive24": SeasonalNaive(24)}, ensembles={})
    assert one.champion == "snaive24" and COMBINATION not in one.candidates
    # a candidate that fails its CV has no finite score and is never a member
    two = train_series(
        history, forecasters={"snaive24": SeasonalNaive(24), "raising": Raising()}, ensembles={}
    )
    assert two.champion == "snaive24" and COMBINATION not in two.candidates
    assert two.chain == ["snaive24", "raising"]


def _panel(cv_mase: float) -> CandidateResult:
    """A panel candidate scored elsewhere (as ``panel_candidate`` gives it), without CV points."""
    return CandidateResult("global_gbm", {"kind": "global_gbm"}, cv_mase, cv_mase, 0.8, 2)


@pytest.mark.parametrize(
    ("ratio", "served"),
    [
        (0.9, "global_gbm"),  # the panel is the best by CV
        (0.999 / (1 - PANEL_KEEP_MARGIN), "global_gbm"),  # the best local is not 20% below it
        (1.001 / (1 - PANEL_KEEP_MARGIN), "best local"),  # it is: the panel is a member with
        # no CV points here, so no combination: the lowest CV MASE serves alone
        (3.0, COMBINATION),  # far behind: the locals' combination
    ],
)
def test_a_panel_model_is_served_alone_unless_a_local_one_is_20_percent_better(
    trained, ratio: float, served: str
) -> None:
    history, fcs, plain = trained
    scores = {n: r.cv_mase for n, r in plain.candidates.items() if n != COMBINATION}
    best = min(scores.values())
    served = min(scores, key=lambda n: scores[n]) if served == "best local" else served
    training = train_series(
        history,
        forecasters=fcs,
        ensembles={},
        extra_candidates={"global_gbm": _panel(best * ratio)},
    )
    assert training.champion == served and training.chain[0] == served
    assert "global_gbm" in training.chain
    if served == "global_gbm":  # kept: no combination is built, the locals follow by CV
        assert COMBINATION not in training.candidates
        rest = [n for n in training.chain if n != "global_gbm"]
        assert rest == sorted(rest, key=lambda n: training.candidates[n].cv_mase)


def test_conformal_quantiles_are_each_steps_pooled_errors_quantiles() -> None:
    """The conformal quantiles of a step are those of the errors within +-pool steps of it (NaN
    errors left out), the upper tail never narrowing and the lower never widening back."""
    rng = np.random.default_rng(5)
    errors = rng.standard_t(3, size=(6, 24))
    errors[rng.random(errors.shape) < 0.1] = np.nan
    got = conformal(errors, pool=3)
    for p in CONFORMAL_PROBS:
        plain = [np.nanquantile(errors[:, max(0, h - 3) : h + 4], p) for h in range(24)]
        want = np.maximum.accumulate(plain) if p > 0.5 else np.minimum.accumulate(plain)
        np.testing.assert_array_equal(got[repr(p)], want)


def test_with_one_origin_where_every_member_forecast_the_others_calibrate_renormalised() -> None:
    """8 days of history: a week's copy forecasts only at the 7-day origin, the other members at
    all six. One origin would calibrate the interval on one day's errors, leaning one way;
    instead every origin calibrates it, where the week's copy is missing with the other members'
    weights renormalised (as at forecast time when a member fails)."""
    y = series(8)["y"].to_numpy()
    origins = [48, 72, 96, 120, 144, 168]
    rng = np.random.default_rng(1)
    points = {
        n: {c: y[c : c + 24] + rng.normal(shift, 40, 24) for c in origins}
        for n, shift in (("a", 30.0), ("b", -20.0))
    }
    points["week"] = {168: y[168:192] + rng.normal(0, 30, 24)}
    results = {
        n: CandidateResult(n, {"kind": n}, mase_, 1.0, 0.8, 1, cv_points=points[n])
        for n, mase_ in (("week", 0.5), ("a", 0.55), ("b", 0.6))
    }
    combo = combination(results, ["week", "a", "b"], y, [168], origins, CVConfig())
    assert combo is not None and combo.model is not None
    w = dict(zip(combo.model["members"], combo.model["weights"], strict=True))
    assert set(w) == {"week", "a", "b"}
    errors = []
    for c in origins:
        have = [n for n in ("week", "a", "b") if c in points[n]]
        point = sum(w[n] / sum(w[m] for m in have) * points[n][c] for n in have)
        errors.append((y[c : c + 24] - point) / mase_scale(y[:c], 24))
    want = conformal(np.stack(errors))
    for p in ("0.05", "0.1", "0.9", "0.95"):
        np.testing.assert_allclose(combo.model["conformal"][p], want[p])
    assert 0.0 < combo.cv_coverage <= 1.0  # measured leaving one of six origins out
    # scored where every member forecast: the 7-day origin, all three members
    full = sum(w[n] * points[n][168] for n in ("week", "a", "b"))
    assert combo.origin_mase == [pytest.approx(mase(y[168:192], full, mase_scale(y[:168], 24)))]
