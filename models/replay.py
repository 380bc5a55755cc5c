"""Replay history hour by hour: the capacity policy against two references, priced.

Pure: arrays and dataclasses in, a frame and figures out; no DuckDB, no Prefect, no clock.

Timing convention. The series is an hourly grid ``ts[0..n)`` with demand ``y`` (NaN =
missing). The decision labelled hour ``d`` is taken at ``ts[d] + decision_minute`` once
``y[d]`` is known and sees only ``y[0..d]``. Its target is sent then: a scale-out serves one
lead ``L`` (minutes) later, a scale-in at once. The capacity serving hour ``t`` is the smallest
target decided between ``t:30 - L`` and ``t:30`` (:func:`serving_window`); for a whole-hour lead
decided at the hour that is ``min(target(t - L), ..., target(t))``. Capacity is in the metric's
units: instances x unit capacity. Hours ``start..end`` are scored; decisions start ``warmup``
hours before the first one that serves ``start``.

Policy: :func:`models.decision.decide_fleet`, the function ``fleetcast scale`` calls, with the
fleet's spec (lead ``L``), the current capacity = its own previous target (the group's desired
capacity), observed demand = the newest hourly value, and the decision forecaster fed to hour
``d`` (one nowcast per hour the new capacity serves).

References, the same lead rounded up to whole hours (``ceil((L + decision_minute) / 60)``),
the same instance rounding (ceil) and the same min / max:

- reactive target tracking: ``capacity(d+L) = y_last(d) * (1 + m)``;
- seasonal rule: ``capacity(d+L) = y_last(d) * y(d+L-168) / y(d-168) * (1 + m)``; when the
  week-ago values are missing (first week, gaps) the day-ago ratio is used (``L <= 24``),
  else 1 (reactive).

``y_last(d)`` is the newest non-missing demand at or before ``d``.

Scores over the scored hours with known demand: share of hours short (demand > capacity),
unserved (sum of max(0, demand - capacity), metric-hours), idle (sum of max(0, capacity -
demand)), changes (hours whose capacity differs from the hour before, over the scored range).
Each reference is also priced at the policy's idle: its margin ``m`` is bisected to the
smallest value whose idle reaches the policy's (idle is non-decreasing in ``m``), and its
hours short / unserved are reported there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from models.clock import lead_hours
from models.decision import (
    DecisionData,
    DecisionForecaster,
    FleetState,
    decide_fleet,
    decision_config,
    lead_offsets,
    observed_demand,
)
from models.hourly import DAY, WEEK
from models.nowcast import EventWindow, NowcastConfig
from models.policy import Decision, FleetSpec, Override, SeriesForecast

_EPS = 1e-9


@dataclass(frozen=True)
class Score:
    hours: int  # scored hours with known demand
    hours_short: int
    share_short: float
    unserved: float  # metric-hours
    idle: float  # metric-hours
    changes: int
    margin: float | None = None  # the reference's margin (None for the policy)


@dataclass(frozen=True)
class ReplayResult:
    frame: pl.DataFrame  # ts, demand, forecast, upper, capacity, reactive, seasonal
    policy: Score
    reactive: Score
    seasonal: Score
    reactive_at_idle: Score  # reactive with its margin bisected to the policy's idle
    seasonal_at_idle: Score
    decisions: tuple[Decision, ...]
    # planned demand of each reference over the scored hours, margin aside (for the curve):
    # reactive, seasonal, forecast (the decision forecaster's point forecast one lead ahead)
    bases: Mapping[str, np.ndarray] = field(default_factory=dict)
    unit: float = 1.0
    min_size: int = 0
    max_size: int = 1_000_000

    def table(self) -> pl.DataFrame:
        rows = [
            ("policy", self.policy),
            ("reactive", self.reactive),
            ("seasonal", self.seasonal),
            ("reactive @ policy idle", self.reactive_at_idle),
            ("seasonal @ policy idle", self.seasonal_at_idle),
        ]
        return pl.DataFrame(
            {
                "plan": [n for n, _ in rows],
                "margin": [s.margin for _, s in rows],
                "hours": [s.hours for _, s in rows],
                "hours_short": [s.hours_short for _, s in rows],
                "share_short": [round(s.share_short, 4) for _, s in rows],
                "unserved": [round(s.unserved, 1) for _, s in rows],
                "idle": [round(s.idle, 1) for _, s in rows],
                "changes": [s.changes for _, s in rows],
            }
        )


# --------------------------------------------------------------------------- scoring


def score(demand: np.ndarray, capacity: np.ndarray, margin: float | None = None) -> Score:
    """Hours short, unserved, idle and changes of ``capacity`` against ``demand`` (same
    length; NaN demand hours are not scored, but count for changes)."""
    demand = np.asarray(demand, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    if demand.shape != capacity.shape:
        raise ValueError(f"demand and capacity differ in length: {demand.shape} {capacity.shape}")
    if np.isnan(capacity).any():
        raise ValueError("capacity has missing hours: every scored hour needs a capacity")
    known = ~np.isnan(demand)
    d, c = demand[known], capacity[known]
    short = d > c + _EPS
    changes = int(np.count_nonzero(np.abs(np.diff(capacity)) > _EPS))
    n = int(known.sum())
    return Score(
        hours=n,
        hours_short=int(short.sum()),
        share_short=float(short.mean()) if n else 0.0,
        unserved=float(np.maximum(d - c, 0.0).sum()),
        idle=float(np.maximum(c - d, 0.0).sum()),
        changes=changes,
        margin=margin,
    )


# --------------------------------------------------------------------------- references


def last_observed(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newest non-missing value at or before each hour, and its index (-1 = none yet)."""
    y = np.asarray(y, dtype=float)
    idx = np.where(~np.isnan(y), np.arange(y.size), -1)
    idx = np.maximum.accumulate(idx)
    val = np.where(idx >= 0, y[np.maximum(idx, 0)], np.nan)
    return val, idx


def reactive_base(y: np.ndarray, lead: int) -> np.ndarray:
    """Demand the reactive rule plans for hour ``t`` (decided at ``t - lead``), margin aside."""
    val, _ = last_observed(y)
    base = np.full(y.size, np.nan)
    base[lead:] = val[: y.size - lead]
    return base


def seasonal_base(y: np.ndarray, lead: int) -> np.ndarray:
    """Demand the seasonal rule plans for hour ``t``: ``y_last(d) * y(t-168) / y(j-168)``
    with ``d = t - lead`` and ``j`` the hour of ``y_last(d)``; day-ago ratio as fallback."""
    y = np.asarray(y, dtype=float)
    val, idx = last_observed(y)
    n = y.size
    base = np.full(n, np.nan)
    for t in range(lead, n):
        d = t - lead
        j = int(idx[d])
        if j < 0:
            continue
        ratio = 1.0
        for period in (WEEK, DAY):
            if lead > period:
                continue
            a = t - period
            b = j - period
            if b >= 0 and a <= d and y[a] > 0 and y[b] > 0:
                ratio = y[a] / y[b]
                break
        base[t] = val[d] * ratio
    return base


def size(base: np.ndarray, margin: float, unit: float, min_size: int, max_size: int) -> np.ndarray:
    """Capacity (metric units) for planned demand ``base``: whole instances, rounded up,
    within [min, max]; NaN base (nothing known yet) = min."""
    need = np.where(np.isnan(base), 0.0, np.maximum(base, 0.0) * (1.0 + margin))
    inst = np.ceil(need / unit - _EPS)
    inst = np.clip(inst, min_size, max_size)
    return inst * unit


def at_idle(
    base: np.ndarray,
    demand: np.ndarray,
    unit: float,
    min_size: int,
    max_size: int,
    idle: float,
    lo: float = -0.9,
    hi: float = 20.0,
    iterations: int = 60,
) -> Score:
    """The reference's score at the smallest margin whose idle reaches ``idle``."""

    def idle_at(m: float) -> float:
        return score(demand, size(base, m, unit, min_size, max_size)).idle

    if idle_at(lo) >= idle:
        m = lo
    elif idle_at(hi) < idle:
        m = hi
    else:
        for _ in range(iterations):
            mid = (lo + hi) / 2
            if idle_at(mid) >= idle:
                hi = mid
            else:
                lo = mid
        m = hi
    return score(demand, size(base, m, unit, min_size, max_size), margin=m)


# --------------------------------------------------------------------------- the replay


def _check_grid(ts: Sequence[datetime]) -> None:
    for a, b in zip(ts, ts[1:], strict=False):
        if b - a != timedelta(hours=1):
            raise ValueError(
                f"the series must be an hourly grid without gaps (NaN for missing hours); "
                f"found {a} then {b}"
            )


def serving_window(lead_minutes: int, decision_minute: int) -> tuple[int, int]:
    """Offsets (lo, hi) such that the capacity serving hour ``t`` is the smallest target
    decided at hours ``t + lo .. t + hi``: the capacity at the middle of the hour (``t:30``)
    is what was requested at least one lead earlier (scale-out arrives after the lead), lowered
    by any later decision made before ``t:30`` (scale-in takes effect when it is sent)."""
    hi = math.floor((30 - decision_minute) / 60)
    lo = math.floor((30 - lead_minutes - decision_minute) / 60)
    return lo, hi


def replay(
    ts: Sequence[datetime],
    demand: Sequence[float],
    *,
    start: datetime,
    end: datetime,
    spec: FleetSpec,
    lead: int,
    margin: float = 0.1,
    config: NowcastConfig | None = None,
    events: Sequence[EventWindow] = (),
    warmup: int = 24,
    calibrate_to_plan: bool = False,
    lead_minutes: int | None = None,
    decision_minute: int = 0,
    initial: int | None = None,
    overrides: Sequence[Override] = (),
    stored: Callable[[datetime], Mapping[str, SeriesForecast]] | None = None,
    observed_max_age: timedelta = timedelta(minutes=120),
    max_forecast_age: timedelta = timedelta(hours=6),
    busy: Mapping[datetime, int] | None = None,
) -> ReplayResult:
    """Replay hours ``start..end`` (inclusive); see the module docstring.

    Each decision is :func:`models.decision.decide_fleet`, the function ``fleetcast scale``
    calls, at ``ts[d] + decision_minute`` with the forecaster fed to hour ``d``. ``lead_minutes``
    (default ``lead`` hours) is the fleet's lead; ``initial`` the desired capacity before the
    first decision (default: none known); ``busy``: busy instances by decision time (default
    0); ``stored``: the stored forecasts at a time (used
    while the series is too short for the nowcast); ``events`` only with the what-if
    ``NowcastConfig`` path (they are not part of the live decision)."""
    ts = list(ts)
    y = np.asarray(demand, dtype=float)
    if len(ts) != y.size or not ts:
        raise ValueError("ts and demand must be non-empty and of equal length")
    lead_min = lead * 60 if lead_minutes is None else lead_minutes
    if lead_min < 1:
        raise ValueError(f"lead must be at least 1 minute, got {lead_min}")
    if not 0 <= decision_minute < 60:
        raise ValueError(f"decision_minute must be in [0, 60), got {decision_minute}")
    _check_grid(ts)
    if start not in ts or end not in ts or end < start:
        raise ValueError(f"start {start} and end {end} must be hours of the series, start <= end")
    i0, i1 = ts.index(start), ts.index(end)
    unit = spec.capacity_players
    fleet = replace(spec, lead_time_minutes=lead_min)
    metric = fleet.demand_metric
    ref_lead = lead_hours(lead_min + decision_minute)  # whole hours the references lead
    lo, hi = serving_window(lead_min, decision_minute)

    cfg = config or decision_config(fleet)
    if calibrate_to_plan and cfg.plan_margin is None:
        cfg = replace(cfg, plan_margin=fleet.safety_margin)
    offsets = lead_offsets(lead_min, fleet.window_minutes, decision_minute)
    fcr = DecisionForecaster(offsets, cfg, events)  # events: what-if only (not used live)
    first_decision = max(0, i0 + lo - warmup)
    cap_inst = np.full(y.size, np.nan)
    fc_yhat = np.full(y.size, np.nan)
    fc_upper = np.full(y.size, np.nan)
    current: int | None = initial
    history: list[tuple[datetime, int]] = []
    decisions: list[Decision] = []
    stab = timedelta(minutes=fleet.scale_in_stabilisation_minutes + 60)
    age_h = math.ceil(observed_max_age.total_seconds() / 3600) + 1
    last = min(i1 + hi, y.size - 1)
    for d in range(0, last + 1):
        fcr.observe(ts[d], float(y[d]))
        if d < first_decision:
            continue
        now = ts[d] + timedelta(minutes=decision_minute)
        a = max(0, d - age_h)
        obs = observed_demand(ts[a : d + 1], y[a : d + 1].tolist(), now, observed_max_age)
        data = DecisionData(
            forecaster=fcr,
            stored=stored(now) if stored is not None and not fcr.ready() else {},
            observed={metric: obs} if obs is not None else {},
        )
        dec = decide_fleet(
            fleet,
            now,
            data,
            FleetState(
                current=current,
                busy=(busy or {}).get(now, 0),
                overrides=overrides,
                history=tuple(history),
            ),
            max_forecast_age=max_forecast_age,
        )
        decisions.append(dec)
        current = dec.target
        history.append((now, dec.recommended))
        history = [(t, r) for t, r in history if t >= now - stab]
        cap_inst[d] = dec.target
        if fcr.ready() and d + ref_lead < y.size:
            point = fcr.series_forecast(metric).points[min(ref_lead, max(offsets)) - 1]
            fc_yhat[d + ref_lead] = point.yhat
            fc_upper[d + ref_lead] = point.upper

    # serving capacity of hour t: the smallest target decided at t + lo .. t + hi
    before = initial if initial is not None else (decisions[0].target if decisions else 0)
    filled = np.where(np.isnan(cap_inst), np.nan, cap_inst)
    filled[:first_decision] = before
    serving = np.full(y.size, np.nan)
    for t in range(i0, i1 + 1):
        window = filled[max(0, t + lo) : min(y.size, t + hi + 1)]
        serving[t] = np.nanmin(window) if window.size and not np.isnan(window).all() else before
    lead = ref_lead
    sl = slice(i0, i1 + 1)
    dem = y[sl]
    cap = serving[sl] * unit
    lo, hi = fleet.min_size, fleet.max_size
    r_base = reactive_base(y, lead)[sl]
    s_base = seasonal_base(y, lead)[sl]
    r_cap = size(r_base, margin, unit, lo, hi)
    s_cap = size(s_base, margin, unit, lo, hi)
    pol = score(dem, cap)
    frame = pl.DataFrame(
        {
            "ts": ts[i0 : i1 + 1],
            "demand": dem,
            "forecast": fc_yhat[sl],
            "upper": fc_upper[sl],
            "capacity": cap,
            "reactive": r_cap,
            "seasonal": s_cap,
        },
        schema={
            "ts": pl.Datetime("us"),
            "demand": pl.Float64,
            "forecast": pl.Float64,
            "upper": pl.Float64,
            "capacity": pl.Float64,
            "reactive": pl.Float64,
            "seasonal": pl.Float64,
        },
    ).with_columns(pl.col("demand", "forecast", "upper").fill_nan(None))
    return ReplayResult(
        frame=frame,
        policy=pol,
        reactive=score(dem, r_cap, margin),
        seasonal=score(dem, s_cap, margin),
        reactive_at_idle=at_idle(r_base, dem, unit, lo, hi, pol.idle),
        seasonal_at_idle=at_idle(s_base, dem, unit, lo, hi, pol.idle),
        decisions=tuple(decisions),
        bases={"reactive": r_base, "seasonal": s_base, "forecast": fc_yhat[sl]},
        unit=unit,
        min_size=lo,
        max_size=hi,
    )
