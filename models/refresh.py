"""Which series the hourly cycle forecasts again: the stored forecasts on their own schedule.

Capacity is decided by the nowcast (:mod:`models.decision`), fed the newest hour at every
decision; the stored forecasts (each series' champion, made for ``horizon`` hours) size the
resources the nowcast does not forecast (cpu, memory, network), decide a new fleet's demand
and serve the published forecast. A stored forecast is used until it is older than the
freshness limit (``FLEETCAST_FRESHNESS_HOURS``, 6 h: older ones hold the fleet, fail-static), so
forecasting every series every hour buys little. The hourly cycle forecasts a series again
(:func:`forecast_due`) when

1. it has no stored forecast;
2. its newest forecast was made by a model no longer in its champion's training run
   (retrained, or a champion changed by hand);
3. it has fewer than :data:`models.decision.MIN_NOWCAST_HOURS` observed hours: a new fleet,
   sized from the stored forecast, which then follows every new hour;
4. its newest forecast is ``refresh`` hours old (less half an hour: the hourly runs start a few
   minutes apart), or reaches less than half the horizon ahead;
5. it is the series' turn: series are spread over the ``refresh`` hours of a cycle by a stable
   hash of their name, so that each hourly run forecasts about ``1 / refresh`` of them, not all
   of them once every ``refresh`` hours.

``refresh = 1`` forecasts every series every hour (the behaviour before). Above 1 it must be
below the freshness limit (the default is half of it), so that a run that fails (or two, at the
defaults 3 and 6) never leaves a fleet with a stale forecast.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.decision import MIN_NOWCAST_HOURS

SLACK = timedelta(minutes=30)  # hourly runs start a few minutes apart
EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class StoredForecast:
    """The newest stored forecast of one series: when it was made, its last hour, its model."""

    created_at: datetime
    last_ts: datetime
    model_id: str | None


def turn(label: str, refresh: int) -> int:
    """The hour of the ``refresh``-hour cycle (0..refresh-1) at which a series comes due: a
    stable hash of its name (the same in every process, unlike ``hash``)."""
    return zlib.crc32(label.encode("utf-8")) % refresh


def forecast_due(
    label: str,
    stored: StoredForecast | None,
    model_ids: set[str],
    observed_hours: int,
    now: datetime,
    *,
    refresh: int,
    horizon: int,
) -> str | None:
    """Why the series ``label`` is forecast again at ``now`` (module docstring), or None when
    its newest stored forecast still serves."""
    if refresh < 1:
        raise ValueError(f"refresh must be at least 1 hour, got {refresh}")
    if stored is None:
        return "no stored forecast"
    if stored.model_id not in model_ids:
        return "retrained since its newest forecast"
    if observed_hours < MIN_NOWCAST_HOURS:
        return f"a new series ({observed_hours} h observed): its stored forecast sizes its fleet"
    age = now - stored.created_at
    if age >= timedelta(hours=refresh) - SLACK:
        return f"its newest forecast is {age.total_seconds() / 3600:.1f} h old"
    if stored.last_ts < now + timedelta(hours=horizon / 2):
        return f"its newest forecast ends at {stored.last_ts:%Y-%m-%d %H:%M} UTC"
    hour = int((now - EPOCH).total_seconds() // 3600)  # naive UTC, as stored
    if age >= SLACK and hour % refresh == turn(label, refresh):
        return f"its turn in the {refresh}-hour cycle"
    return None
