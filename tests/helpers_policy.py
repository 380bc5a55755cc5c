"""Builders of the pure capacity policy's inputs, shared by test_policy and test_policy_edges:
one fleet (100 players per instance, margin 10%, scale mode) at NOW, hourly forecast points."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from models.policy import FleetSpec, ForecastPoint, Override, PolicyInput, SeriesForecast

NOW = datetime(2024, 5, 1, 10, 0)
H = timedelta(hours=1)


def fleet(**kw: object) -> FleetSpec:
    base: dict[str, object] = dict(
        fleet="br-eu",
        game_type="battle_royale",
        region="eu",
        asg_name="br-eu-asg",
        capacity_players=100.0,
        min_size=1,
        max_size=50,
        safety_margin=0.1,
        mode="scale",
        scale_in_stabilisation_minutes=30,  # literal cases: history an hour old is outside it
    )
    base.update(kw)
    return FleetSpec(**base)  # type: ignore[arg-type]


def forecast(
    values: list[float],
    metric: str = "players",
    *,
    upper: float = 1.0,
    created: datetime | None = NOW - H,
    problem: str | None = None,
) -> SeriesForecast:
    """Hourly points from NOW; the upper quantile is ``upper`` x the mean."""
    pts = tuple(
        ForecastPoint(NOW + h * H, v, v * upper if math.isfinite(v) else v)
        for h, v in enumerate(values)
    )
    return SeriesForecast(metric, pts, created, "prophet", "run-1", problem)


def inp(points: int = 4, **kw: object) -> PolicyInput:
    """A fleet at 10 instances, 1000 players observed and forecast for ``points`` hours."""
    base: dict[str, object] = dict(
        fleet=fleet(),
        now=NOW,
        current=10,
        forecasts={"players": forecast([1000.0] * points)},
        observed={"players": 1000.0},
        history=[(NOW - H, 10)],
    )
    base.update(kw)
    return PolicyInput(**base)  # type: ignore[arg-type]


def ovr(
    kind: str, value: float, *, expires: datetime = NOW + H, created: datetime = NOW - H
) -> Override:
    return Override("o1", "br-eu", kind, value, "ops call", created, expires)  # type: ignore[arg-type]
