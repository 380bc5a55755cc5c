"""Prophet tuned for hourly demand, with events as hourly regressors, stored as JSON.

Choices (and why):

- Multiplicative series (strictly positive, wide daily swing) are modelled on the log scale, so
  the daily and weekly cycles and the event uplifts scale with the level.
- Daily (Fourier order 10) and weekly (order 5, from one week of data on) seasonality; yearly off.
  A low changepoint prior (0.01) keeps the trend from chasing the daily cycle on a few weeks of
  hourly data.
- Events: Prophet's own ``holidays`` are whole days (``make_holiday_features`` strips timestamps
  to dates), far too coarse for a four-hour tournament. Each event kind therefore becomes an
  hourly regressor ``event_<kind>`` that is 1 over the event's window (its start hour to its
  end, widened by ``lower_window``/``upper_window`` hours), plus ``event_<kind>_after`` for the
  ``after_hours`` that follow (a game update's surge). The uplift of a kind is learned from its
  past occurrences and applied to scheduled ones. Only kinds seen in the training window are used.
- Intervals: ``uncertainty_samples=0`` (fast predict); the interval comes from the spread of the
  in-sample residuals on the model's scale (normal), which the CV backtest scores for coverage.

Models are stored with ``prophet.serialize.model_to_json`` inside a JSON wrapper; no pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.baselines import (
    DEFAULT_LEVEL,
    frame_from,
    future_index,
    is_multiplicative,
)


@dataclass(frozen=True)
class ProphetConfig:
    daily_order: int = 10
    weekly_order: int = 5
    changepoint_prior_scale: float = 0.01
    seasonality_prior_scale: float = 10.0
    event_prior_scale: float = 10.0
    n_changepoints: int = 15
    lower_window_hours: int = 0  # hours before an event's start included in its window
    upper_window_hours: int = 0  # hours after its end included in its window
    after_hours: int = 24  # the "after" window (e.g. a game update's surge)
    level: int = DEFAULT_LEVEL


def event_columns(
    ds: pd.Series | pd.DatetimeIndex, events: pd.DataFrame | None, config: ProphetConfig
) -> pd.DataFrame:
    """One 0/1 column per event kind (``event_<kind>``) and its after-window
    (``event_<kind>_after``) for each hour in ``ds``. ``events``: ``kind, starts_at, ends_at``
    (naive UTC), already filtered to the series' game type and region."""
    hours = pd.DatetimeIndex(pd.to_datetime(pd.Series(ds)).to_numpy())
    t = hours.to_numpy()
    out: dict[str, np.ndarray] = {}
    if events is None or events.empty:
        return pd.DataFrame(index=range(len(hours)))
    lower = pd.Timedelta(hours=config.lower_window_hours)
    upper = pd.Timedelta(hours=config.upper_window_hours)
    after = pd.Timedelta(hours=config.after_hours)
    for row in events.itertuples(index=False):
        kind = str(row.kind)
        start = pd.Timestamp(row.starts_at).floor("h") - lower
        end = pd.Timestamp(row.ends_at) + upper
        during = (t >= start.to_datetime64()) & (t < end.to_datetime64())
        post = (t >= end.to_datetime64()) & (t < (end + after).to_datetime64())
        col = f"event_{kind}"
        out[col] = np.maximum(out.get(col, np.zeros(len(t))), during.astype(float))
        if config.after_hours > 0:
            col_after = f"{col}_after"
            out[col_after] = np.maximum(
                out.get(col_after, np.zeros(len(t))), post.astype(float) * (1 - during)
            )
    return pd.DataFrame(out)


@dataclass(frozen=True)
class ProphetForecaster:
    config: ProphetConfig = ProphetConfig()

    @property
    def name(self) -> str:
        return "prophet"

    def _new_model(self, regressors: list[str], weekly: bool) -> Any:
        from prophet import Prophet

        c = self.config
        m = Prophet(
            growth="linear",
            daily_seasonality=False,
            weekly_seasonality=False,
            yearly_seasonality=False,
            changepoint_prior_scale=c.changepoint_prior_scale,
            n_changepoints=c.n_changepoints,
            changepoint_range=0.9,
            uncertainty_samples=0,
        )
        m.add_seasonality(
            name="daily",
            period=1,
            fourier_order=c.daily_order,
            prior_scale=c.seasonality_prior_scale,
        )
        if weekly:
            m.add_seasonality(
                name="weekly",
                period=7,
                fourier_order=c.weekly_order,
                prior_scale=c.seasonality_prior_scale,
            )
        for name in regressors:
            m.add_regressor(name, prior_scale=c.event_prior_scale, standardize=False)
        return m

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        return self.fit_with_effect(history, events)[0]

    def fit_with_effect(
        self, history: pd.DataFrame, events: pd.DataFrame | None = None
    ) -> tuple[dict[str, Any], np.ndarray]:
        """The model ``fit`` returns and its learned event effect at each hour of ``history``
        (what ``history_effect`` gives for it), read off the fit's own in-sample prediction
        instead of a second one."""
        from prophet.serialize import model_to_json

        y = history["y"].to_numpy(dtype=float)
        if y.size < 48:
            raise ValueError(f"prophet needs at least 48 hours of history, got {y.size}")
        log = is_multiplicative(y)
        frame = pd.DataFrame({"ds": pd.to_datetime(history["ds"]).to_numpy(), "y": y})
        if log:
            frame["y"] = np.log(y)
        ev = event_columns(frame["ds"], events, self.config)
        regressors = [c for c in ev.columns if ev[c].sum() > 0]
        for col in regressors:
            frame[col] = ev[col].to_numpy()
        weekly = (frame["ds"].iloc[-1] - frame["ds"].iloc[0]) >= pd.Timedelta(days=7)
        m = self._new_model(regressors, weekly)
        m.fit(frame)
        insample = m.predict(frame.drop(columns="y"))
        resid = frame["y"].to_numpy() - insample["yhat"].to_numpy()
        sigma = float(np.std(resid[-24 * 14 :])) if resid.size > 1 else 0.0
        effect = np.zeros(len(frame))
        if regressors and "extra_regressors_additive" in insample.columns:
            effect = insample["extra_regressors_additive"].to_numpy(dtype=float)
        model = {
            "kind": self.name,
            "log": log,
            "sigma": sigma,
            "regressors": regressors,
            "weekly": bool(weekly),
            "nonnegative": bool(np.min(y) >= 0),
            "config": asdict(self.config),
            "train_start": frame["ds"].iloc[0].isoformat(),
            "train_end": frame["ds"].iloc[-1].isoformat(),
            "n_obs": int(y.size),
            "prophet": model_to_json(m),
        }
        return model, effect

    def predict_components(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The forecast frame and the event effect per step on the model's scale (log scale
        when the model is multiplicative)."""
        from prophet.serialize import model_from_json

        m = model_from_json(model["prophet"])
        ds = future_index(history["ds"].iloc[-1], horizon)
        future = pd.DataFrame({"ds": ds})
        ev = event_columns(future["ds"], events, self.config)
        for col in model["regressors"]:
            future[col] = ev[col].to_numpy() if col in ev.columns else 0.0
        pred = m.predict(future)
        mean = pred["yhat"].to_numpy(dtype=float)
        effect = (
            pred["extra_regressors_additive"].to_numpy(dtype=float)
            if "extra_regressors_additive" in pred.columns
            else np.zeros(horizon)
        )
        sigma = np.full(horizon, float(model["sigma"]))
        frame = frame_from(
            ds,
            mean,
            sigma,
            level=int(model["config"].get("level", DEFAULT_LEVEL)),
            log=bool(model["log"]),
            nonnegative=bool(model.get("nonnegative", False)),
        )
        return frame, effect

    def history_effect(
        self, model: dict[str, Any], history: pd.DataFrame, events: pd.DataFrame | None
    ) -> np.ndarray:
        """The learned event effect at each hour of ``history`` (model scale; zeros when the
        model has no event regressors), to take past events out before another model copies
        them."""
        if not model.get("regressors") or events is None or events.empty:
            return np.zeros(len(history))
        from prophet.serialize import model_from_json

        m = model_from_json(model["prophet"])
        frame = pd.DataFrame({"ds": pd.to_datetime(history["ds"]).to_numpy()})
        ev = event_columns(frame["ds"], events, self.config)
        for col in model["regressors"]:
            frame[col] = ev[col].to_numpy() if col in ev.columns else 0.0
        pred = m.predict(frame)
        if "extra_regressors_additive" not in pred.columns:
            return np.zeros(len(history))
        return pred["extra_regressors_additive"].to_numpy(dtype=float)

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        return self.predict_components(model, history, horizon, events)[0]


def remove_events(history: pd.DataFrame, effect: np.ndarray, *, log: bool) -> pd.DataFrame:
    """History with a learned event effect taken out (a new frame): divided by exp(effect) on
    the log scale, minus effect otherwise. The inverse of :func:`event_overlay`."""
    out = history.copy()
    y = out["y"].to_numpy(dtype=float)
    out["y"] = y / np.exp(effect) if log else y - effect
    return out


def event_overlay(
    base: pd.DataFrame, effect: np.ndarray, *, log: bool, nonnegative: bool
) -> pd.DataFrame:
    """Apply Prophet's learned event effect to another model's forecast (a new frame): times
    exp(effect) on the log scale, plus effect otherwise. Hours without events are unchanged."""
    out = base.copy()
    effect = np.asarray(effect, dtype=float)
    for col in ("yhat", "yhat_lower", "yhat_upper", "yhat_q90"):
        vals = out[col].to_numpy(dtype=float)
        out[col] = vals * np.exp(effect) if log else vals + effect
        if nonnegative:
            out[col] = out[col].clip(lower=0.0)
    return out


def dumps(model: dict[str, Any]) -> str:
    """The stored text of a model: canonical JSON (sorted keys) so its hash is stable."""
    return json.dumps(model, sort_keys=True, separators=(",", ":"))
