"""One fleet's capacity decision at time T from data: the one path that ``fleetcast scale``
(live, :mod:`fleetcast.stages.decide`) and ``fleetcast backtest`` (replay, :mod:`models.replay`)
both take. Pure: no DuckDB, no clock, no AWS.

The decision at ``now`` for a fleet:

1. **Forecaster** (:class:`DecisionForecaster`): the anchored nowcast of :mod:`models.nowcast`,
   fed the fleet's hourly demand series hour by hour up to the newest hour (``floor(now)``) and
   therefore conditioned on the newest observation, with one nowcaster per forecast hour the
   decision needs (:func:`lead_offsets`: every hour the window ``[now + lead, now + lead +
   window)`` overlaps, and the hours before it that a scale-in, which takes effect when it is
   sent, also covers). Its upper quantile is calibrated on its own past errors at that lead,
   which is what sizing needs. The stored forecasts (Prophet and the other champions, made every
   few hours for 48 h) are used instead only while the series has fewer than
   :data:`MIN_NOWCAST_HOURS` observed hours in the fed window (a new fleet); the choice is in
   ``decision.inputs["decision_forecaster"]`` (recorded in ``allocations.inputs``).
2. **Fleet state** (:class:`FleetState`): the desired capacity in effect, MaxSize, busy
   instances, overrides and earlier recommendations (stabilisation).
3. **Observed demand**: the newest hourly value no older than the observed-age limit.
4. :func:`models.precedence.decide_one`: the policy (:func:`models.policy.decide`) and the
   event hold, in the one documented order of the rules (the same code live and replayed).

Live and replay agree exactly because both feed the same hourly values from the same first hour
(:func:`feed_hours` before the decision, or the series' first hour): the nowcast's state depends
only on the last ``feed_hours`` hours (4 weeks of shape, 14 days of errors, refit alignment), so
a replay that started feeding earlier holds the same state (events are not used on this path
yet; with ``events`` the forecaster adds their learned effect, :mod:`models.events`, and
:meth:`DecisionForecaster.event_notes` says which forecast hours are inside an event and
which of those are of a kind never seen).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from models.nowcast import (
    DAY,
    WEEK,
    EventWindow,
    Nowcast,
    NowcastConfig,
    Nowcaster,
    feed_leads,
)
from models.policy import (
    Decision,
    FleetSpec,
    ForecastPoint,
    Override,
    PolicyInput,
    SeriesForecast,
)
from models.precedence import decide_one

# fewer observed hours than this in the fed window: the stored forecast decides (a new fleet)
MIN_NOWCAST_HOURS = WEEK
NOWCAST = "nowcast"
STORED = "stored"


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def lead_offsets(lead_minutes: int, window_minutes: int, decision_minute: int) -> tuple[int, ...]:
    """Hours after the decision's hour (``floor(now)``) whose forecast a decision needs: each
    hour the window [now + lead, now + lead + window) overlaps, and every hour between (a
    scale-in takes effect when sent, so it must cover them too). Hour 0, the current one, is
    observed (the reactive floor), not forecast. ``(1,)`` for a 60-minute lead at the hour."""
    end = decision_minute + lead_minutes + window_minutes  # minutes after floor(now)
    last = math.ceil(end / 60) - 1  # the last hour [60h, 60h + 60) starting before ``end``
    return tuple(range(1, max(last, 1) + 1))


def decision_config(spec: FleetSpec, **changes: object) -> NowcastConfig:
    """The decision forecaster's configuration for a fleet: sized at its service level, free to
    size below the point forecast at a low one (the observed-demand floor still holds)."""
    return replace(
        NowcastConfig(quantile=spec.service_level, min_log_margin=None),
        **changes,  # type: ignore[arg-type]
    )


def feed_hours(config: NowcastConfig, max_offset: int) -> int:
    """Hours of history fed before a decision: the nowcast's memory (shape weeks, error window,
    refit alignment, lead), so that any earlier start gives the same state."""
    shape = max(config.weeks * WEEK, config.days * DAY) + DAY
    return shape + config.error_hours + 3 * config.refit_hours + max_offset


class DecisionForecaster:
    """Nowcasts for the hour offsets a fleet's decisions need, fed one hour at a time."""

    def __init__(
        self,
        offsets: Sequence[int],
        config: NowcastConfig | None = None,
        events: Sequence[EventWindow] = (),
    ) -> None:
        if not offsets or min(offsets) < 1:
            raise ValueError(f"offsets must be >= 1, got {offsets}")
        self.config = config or NowcastConfig()
        self.offsets = tuple(sorted(set(offsets)))
        self._nc = {k: Nowcaster(k, self.config, events) for k in self.offsets}
        self._latest: dict[int, Nowcast | None] = {}
        self.window = feed_hours(self.config, max(self.offsets))
        self._finite: deque[datetime] = deque()  # observed hours within ``window``
        self.last_hour: datetime | None = None
        self.last_observed: datetime | None = None

    def observe(self, ts: datetime, value: float) -> None:
        """The demand of hour ``ts`` (NaN = missing); hours in increasing order."""
        for k, nc in self._nc.items():
            nc.observe(ts, value)
            self._latest[k] = nc.forecast()
        self.last_hour = ts
        if math.isfinite(value) and value > 0:
            self._finite.append(ts)
            self.last_observed = ts
        while self._finite and self._finite[0] <= ts - timedelta(hours=self.window):
            self._finite.popleft()

    def nowcaster(self, offset: int | None = None) -> Nowcaster:
        """The nowcaster fed for ``offset`` (default: the shortest), e.g. for
        :meth:`models.nowcast.Nowcaster.project`; read it, do not feed it."""
        k = self.offsets[0] if offset is None else offset
        if k not in self._nc:
            raise ValueError(f"no nowcaster for offset {k}; offsets are {self.offsets}")
        return self._nc[k]

    @property
    def observed_hours(self) -> int:
        return len(self._finite)

    def event_notes(self) -> tuple[Nowcast, ...]:
        """The newest nowcasts whose target hour an event touches (``event_note`` set);
        ``unknown_event`` on those inside an event of a kind never seen before."""
        return tuple(
            nc for k in self.offsets if (nc := self._latest.get(k)) is not None and nc.event_note
        )

    def unknown_event_now(self) -> str | None:
        """An event of a kind never seen at the newest hour (see :class:`Nowcaster`)."""
        return self._nc[self.offsets[0]].unknown_event_now()

    def ready(self) -> bool:
        return self.observed_hours >= MIN_NOWCAST_HOURS and all(
            self._latest.get(k) is not None for k in self.offsets
        )

    def series_forecast(self, metric: str) -> SeriesForecast:
        """The forecast made after the newest hour: one point per offset; ``created_at`` is the
        newest observed hour (stale data make a stale forecast: fail-static)."""
        pts = []
        for k in self.offsets:
            nc = self._latest[k]
            if nc is None:
                raise ValueError(f"no nowcast for offset {k}: check ready() first")
            pts.append(ForecastPoint(nc.target, nc.yhat, nc.upper))
        source = self._latest[self.offsets[-1]]
        return SeriesForecast(
            metric=metric,
            points=tuple(pts),
            created_at=self.last_observed,
            model=f"{NOWCAST}-{source.shape_source if source else 'none'}",
        )


def feed(
    ts: Sequence[datetime],
    values: Sequence[float],
    offsets: Sequence[int],
    config: NowcastConfig | None = None,
    events: Sequence[EventWindow] = (),
) -> DecisionForecaster:
    """A forecaster fed a whole hourly grid at once (the live path: the newest ``feed_hours``):
    the same state and forecasts as :meth:`DecisionForecaster.observe` hour by hour (the
    replay's way), through :func:`models.nowcast.feed_leads`, which skips the work the newest
    hour no longer depends on."""
    fc = DecisionForecaster(offsets, config, events)
    if len(ts) == 0:
        return fc
    fc._nc, fc._latest = feed_leads(ts, values, fc.offsets, fc.config, events)
    fc.last_hour = ts[-1]
    oldest = ts[-1] - timedelta(hours=fc.window)
    for t, v in zip(ts, values, strict=True):
        if math.isfinite(v) and v > 0:
            fc.last_observed = t
            if t > oldest:
                fc._finite.append(t)
    return fc


def observed_demand(
    ts: Sequence[datetime], values: Sequence[float], now: datetime, max_age: timedelta
) -> float | None:
    """The newest finite hourly value whose hour starts no earlier than ``now - max_age``."""
    for t, v in zip(reversed(ts), reversed(values), strict=True):
        if t < floor_hour(now - max_age):
            return None
        if t <= now and math.isfinite(v) and v >= 0:
            return float(v)
    return None


@dataclass(frozen=True)
class FleetState:
    """The fleet as it is at the decision: group state, busy count, overrides, history."""

    current: int | None
    current_max: int | None = None
    busy: int = 0
    overrides: Sequence[Override] = ()
    history: Sequence[tuple[datetime, int]] = ()  # earlier (decided_at, recommended)


@dataclass(frozen=True)
class DecisionData:
    """What the data says at the decision: the forecaster fed to the newest hour (None: no
    series), the stored forecasts per metric, observed demand per metric."""

    forecaster: DecisionForecaster | None
    stored: Mapping[str, SeriesForecast] = field(default_factory=dict)
    observed: Mapping[str, float] = field(default_factory=dict)


def decide_fleet(
    spec: FleetSpec,
    now: datetime,
    data: DecisionData,
    state: FleetState,
    *,
    forecast_error: str | None = None,
    max_forecast_age: timedelta = timedelta(hours=6),
) -> Decision:
    """The capacity decision for one fleet at ``now`` (see the module docstring)."""
    forecasts = dict(data.stored)
    fc = data.forecaster
    if fc is not None and fc.ready():
        forecasts[spec.demand_metric] = fc.series_forecast(spec.demand_metric)
        chosen = f"{NOWCAST} (anchored on the newest hour; {fc.observed_hours} h observed)"
    else:
        stored = data.stored.get(spec.demand_metric)
        seen = fc.observed_hours if fc is not None else 0
        chosen = (
            f"{STORED} {stored.model} (only {seen} h observed, nowcast needs {MIN_NOWCAST_HOURS})"
            if stored is not None
            else f"none (only {seen} h observed and no stored forecast)"
        )
    hold: Callable[[Decision], Decision] | None = None
    if fc is not None and fc.ready():  # the event hold (step 5 of models/precedence.py)
        hold = partial(with_events, notes=fc.event_notes(), unknown_now=fc.unknown_event_now())

    d = decide_one(
        PolicyInput(
            fleet=spec,
            now=now,
            current=state.current,
            busy=state.busy,
            forecasts=forecasts,
            observed=dict(data.observed),
            overrides=state.overrides,
            history=tuple(state.history),
            current_max=state.current_max,
            forecast_error=forecast_error,
            max_forecast_age=max_forecast_age,
        ),
        hold,
    )
    return replace(d, inputs={**d.inputs, "decision_forecaster": chosen})


def with_events(d: Decision, notes: Sequence[Nowcast], unknown_now: str | None = None) -> Decision:
    """The decision with the events at its forecast hours: their effect named in the reason
    (and ``inputs.events``), and no scale-in while a forecast hour or the current one is inside
    an event of a kind never seen before (its effect unknown: from one lead before it through
    its first hours), nor while a forecast hour is inside an event of a kind never seen whose
    row's expected multiplier is below 1 (a row's number alone never shrinks a fleet)."""
    if not notes and unknown_now is None:
        return d
    if not notes:
        notes = ()
    inputs = {
        **d.inputs,
        "events": [
            {"target": n.target.isoformat(), "effect": round(math.exp(n.event_effect), 4),
             "unknown": n.unknown_event, "note": n.event_note}
            for n in notes
        ],
    }  # fmt: skip
    if notes:
        reason = f"{d.reason}; event: {max(notes, key=lambda n: n.upper).event_note}"
    else:
        reason = f"{d.reason}; event now: {unknown_now}"
    unknown = unknown_now is not None or any(n.unknown_event for n in notes)
    low = any(n.low_expected for n in notes)
    target = d.target
    if (unknown or low) and d.current is not None and d.target < d.current:
        target = min(d.current, max(d.max_size, d.target))
        if target > d.target:
            why = (
                "an event of a kind never seen before, with no expected multiplier, for its "
                "first hours"
                if unknown
                else "an event of a kind never seen before whose expected multiplier is below "
                "1 (a multiplier alone never scales in)"
            )
            reason += f"; scale-in held at {target} (not {d.target}): {why}"
    return replace(d, target=target, reason=reason, inputs=inputs)
