"""The anchored nowcast: the forecaster the replay (and the policy) reads at each decision.

A seasonal *shape* refitted once a day, *anchored* on the newest observation:

- shape: for each hour of the week, the average log demand over the last ``weeks`` weeks
  (``median=True``: the median, robust to an unlisted one-off), blended (``weekly_weight``)
  with the hour-of-day average of the last ``days`` days; the daily one alone before a week
  of history. Refitted at midnight from the data before midnight (``refit_hours``).
  Defaults (alpha 1, weekly_weight 0.5, mean, 4 weeks, 14 days) were chosen on 4 sample
  fleets and M4 H1-H20 by one-hour log MAE: 0.81x the seasonal rule's on average.
  ``blend="max"`` (the default) takes the larger of the weekly and the daily step instead of
  the weighted mean: a forecast read for *capacity*, so a weekly spike (a tournament night)
  that the daily profile averages away is not halved. Chosen on the replay (hours short at
  the same idle), sample fleets and M4 H1-H20; its errors still calibrate ``upper``.
- level: an exponentially smoothed log ratio actual / shape over recent hours (``alpha``; 1 =
  the newest observation alone), so ``forecast(d + h) = shape(d + h) * exp(level(d))``, which
  for ``alpha = 1`` is ``y(d) * shape(d + h) / shape(d)``: the seasonal rule with a multi-week
  shape instead of one noisy week.
- upper: ``forecast * exp(q)``, q = the ``quantile`` of this forecaster's own past log errors
  at the same lead, over the last ``error_hours`` hours whose outcome is known (a calibrated
  margin); ``default_log_margin`` until ``min_errors`` errors are known.

Events (optional, :mod:`models.events`): each known event's effect per hour relative to its
start (a few hours before it to a tail after its end) is learned from the earlier events of
its kind; the summed effect is removed from the data the shape is fitted on and from the level
(which keeps updating through an event, anchored on actual / (shape x effect)), and added to
the forecast of a target hour it touches. A target hour inside an event of a kind never seen
(and without an expected multiplier) is flagged (``Nowcast.unknown_event``); ``event_note``
names the events at the target hour and their effect. :meth:`Nowcaster.project` reads the same
forecast for any later hour (days ahead: ``fleetcast events``) without registering it.

Strictly causal by construction: :class:`Nowcaster` is fed one hour at a time with
:meth:`Nowcaster.observe` and never sees a later value. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import NormalDist

import numpy as np

from models.events import EffectAt, EventConfig, EventModel, EventWindow, describe, hour_index
from models.hourly import DAY, WEEK

__all__ = [
    "EventWindow",
    "Nowcast",
    "NowcastConfig",
    "Nowcaster",
    "Projection",
    "feed_leads",
    "nowcast_series",
]

_TINY = 1e-9
# Upper quantile of past errors used for sizing. 0.95 rather than 0.9: on the replay (sample
# fleets, M4 H1-H20) it gives fewer hours short at the same idle than 0.9 (idle +7%), most
# visibly at a lower idle (``--policy-margin 0``); 0.97-0.99 do better still there but cost more.
DEFAULT_QUANTILE = 0.95


@dataclass(frozen=True)
class NowcastConfig:
    weeks: int = 4  # weeks averaged for the hour-of-week shape
    days: int = 14  # days averaged for the hour-of-day shape (less than a week of history)
    alpha: float = 1.0  # smoothing of the level (log actual / shape); 1 = newest hour only
    quantile: float = DEFAULT_QUANTILE  # upper quantile of past log errors used for sizing
    error_hours: int = 14 * DAY  # window of past errors for the quantile
    min_errors: int = 24  # fewer known errors: use default_log_margin
    default_log_margin: float = 0.1
    refit_hours: int = DAY  # the shape is refitted at multiples of this (midnight UTC)
    event: EventConfig = field(default_factory=EventConfig)  # the event model (models.events)
    weekly_weight: float = 0.5  # blend of the hour-of-week and hour-of-day shapes (1 = weekly)
    median: bool = False  # median over weeks (robust to unlisted one-offs); False = mean of logs
    plan_margin: float | None = None  # calibrate to the plan max(upper, y(d)) x (1 + margin)
    blend: str = "max"  # "max": the larger of the weekly and daily steps; "mean": weekly_weight
    # margin where the risk is: the quantile over past errors whose target hour of the day is
    # within +-local_hours of this target's (0 = over all past errors); the global quantile
    # while fewer than min_errors such errors are known
    local_hours: int = 0
    # floor of the log margin (0: upper >= yhat); None lets a low service level size below the
    # point forecast when the forecaster's errors say it runs high (the decision path does)
    min_log_margin: float | None = 0.0
    # margin on ramps: the quantile over past errors of forecasts that rose (or fell) from the
    # newest observation as this one does (False = all past errors)
    ramp_split: bool = False
    # the quantile of an hour outside events over past errors of hours outside events only
    # (the event hours' larger errors widen only event hours, through the event margin of
    # models.events) once min_errors of them are known; False = over all past errors
    event_errors_apart: bool = False

    def __post_init__(self) -> None:
        if self.weeks < 1 or self.days < 1:
            raise ValueError("weeks and days must be >= 1")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.blend not in ("mean", "max"):
            raise ValueError(f"blend must be 'mean' or 'max', got {self.blend!r}")
        if self.refit_hours < 1:
            raise ValueError("refit_hours must be >= 1")


@dataclass(frozen=True)
class Nowcast:
    """One forecast made at ``made_at`` for ``target``."""

    made_at: datetime
    target: datetime
    yhat: float
    upper: float
    log_margin: float  # log(upper / yhat)
    shape_source: str  # "weekly" | "daily" | "none"
    event_effect: float = 0.0  # log effect of the events touching the target hour (added)
    unknown_event: bool = False  # the target hour is inside an event of a kind never seen
    event_note: str = ""  # the events at the target hour and their effect, for people
    # the target hour is inside an event of a kind never seen whose row's multiplier is below
    # 1: it lowers the forecast, but no scale-in may follow from it (fail-static)
    low_expected: bool = False


@dataclass(frozen=True)
class Projection:
    """The anchored forecast of one future hour (:meth:`Nowcaster.project`)."""

    target: datetime
    yhat: float
    event_effect: float  # summed log effect of the known events touching the target hour
    effects: tuple[EffectAt, ...]  # each of those events' effect and where it came from
    shape_source: str  # "weekly" | "daily" | "none"
    note: str = ""  # the events at the target hour and their effect, for people


def _hour_index(ts: datetime) -> int:
    return hour_index(ts)


def _robust_mean(values: Sequence[float], median: bool = True) -> float:
    v = sorted(x for x in values if math.isfinite(x))
    if not v:
        return math.nan
    if median and len(v) >= 3:
        return float(np.median(v))
    return _sum(v) / len(v)  # np.mean(v) to the bit, without its overhead


def _sum(v: Sequence[float]) -> float:
    """``np.add.reduce`` of a short float64 array, to the bit: numpy's pairwise summation
    (up to 128 values it adds eight running sums, then the rest in order; fewer than eight,
    in order from -0.0), here without the array (``tests/test_nowcast_feed.py`` checks it
    against numpy)."""
    n = len(v)
    if n > 128:  # numpy splits longer arrays recursively: let it
        return float(np.add.reduce(np.asarray(v, dtype=np.float64)))
    if n < 8:
        r = -0.0
        for x in v:
            r += x
        return r
    r0, r1, r2, r3, r4, r5, r6, r7 = v[:8]
    i, stop = 8, n - n % 8
    while i < stop:
        r0 += v[i]
        r1 += v[i + 1]
        r2 += v[i + 2]
        r3 += v[i + 3]
        r4 += v[i + 4]
        r5 += v[i + 5]
        r6 += v[i + 6]
        r7 += v[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += v[i]
        i += 1
    return res


@dataclass
class _Shape:
    """Log shape fitted at ``fitted_at`` (hour index): per hour-of-week or per hour-of-day."""

    fitted_at: int
    weekly: dict[int, float] = field(default_factory=dict)  # hour of week -> log level
    daily: dict[int, float] = field(default_factory=dict)  # hour of day -> log level

    def at(self, hour: int) -> tuple[float, str]:
        w = self.weekly.get(hour % WEEK, math.nan)
        if math.isfinite(w):
            return w, "weekly"
        d = self.daily.get(hour % DAY, math.nan)
        if math.isfinite(d):
            return d, "daily"
        return math.nan, "none"

    def ratio(
        self, target: int, now: int, weekly_weight: float = 1.0, blend: str = "mean"
    ) -> tuple[float, str]:
        """log shape(target) - log shape(now): the weekly profile blended with the daily one
        (``weekly_weight``), or whichever exists."""
        steps = {}
        for table, period, name in ((self.weekly, WEEK, "weekly"), (self.daily, DAY, "daily")):
            a = table.get(target % period, math.nan)
            b = table.get(now % period, math.nan)
            if math.isfinite(a) and math.isfinite(b):
                steps[name] = a - b
        if "weekly" in steps and "daily" in steps:
            if blend == "max":
                return max(steps["weekly"], steps["daily"]), "weekly"
            w = weekly_weight
            return w * steps["weekly"] + (1 - w) * steps["daily"], "weekly"
        for name in ("weekly", "daily"):
            if name in steps:
                return steps[name], name
        return math.nan, "none"


class Nowcaster:
    """Feed hourly observations in order; ask for a forecast ``lead`` hours ahead.

    Missing hours are passed as NaN (or skipped: a gap in timestamps counts as missing).
    """

    def __init__(
        self,
        lead: int,
        config: NowcastConfig | None = None,
        events: Sequence[EventWindow] = (),
    ) -> None:
        if lead < 1:
            raise ValueError(f"lead must be at least 1 hour, got {lead}")
        self.lead = lead
        self.cfg = config or NowcastConfig()
        self._ev = EventModel(events, self.cfg.event)
        self.events = self._ev.events
        keep = max(self.cfg.weeks * WEEK, self.cfg.days * DAY) + DAY
        self._log: dict[int, float] = {}  # hour index -> log demand (only kept hours)
        self._keep = keep
        self._last: int | None = None  # hour index of the newest observation slot
        self._last_obs: tuple[int, float] | None = None  # newest non-missing (hour, value)
        self._shape: _Shape | None = None
        self._level: float | None = None
        # (target hour, log forecast, log of the newest observation when it was made)
        self._pending: deque[tuple[int, float, float]] = deque()
        self._errors: deque[tuple[int, float]] = deque()  # (target hour, log error)
        self._rising: dict[int, bool] = {}  # target hour -> the forecast rose from the newest
        self._in_event: set[int] = set()  # target hours an event (not weekly) touched
        self._fits: _FitCache | None = None  # set by feed_leads: fits shared, slots memoised

    # ------------------------------------------------------------------ feeding

    def observe(self, ts: datetime, value: float) -> None:
        """The demand of hour ``ts`` (NaN = missing). Hours must come in increasing order."""
        h = _hour_index(ts)
        if self._last is not None and h <= self._last:
            raise ValueError(f"observations must be in increasing hourly order; got {ts}")
        if self._last is not None:
            for missing in range(self._last + 1, h):
                self._step(missing, math.nan)
        self._step(h, value)

    def _step(self, h: int, value: float) -> None:
        cfg = self.cfg
        if self._shape is None or h - self._shape.fitted_at >= cfg.refit_hours:
            if h % cfg.refit_hours == 0 or self._shape is None:
                self._shape = self._fit(h)
        ok = value is not None and math.isfinite(value) and value > 0
        logv = math.log(value) if ok else math.nan
        if ok:
            self._log[h] = logv
            self._last_obs = (h, float(value))
        self._log.pop(h - self._keep, None)
        self._last = h
        # resolve pending forecasts whose target is this hour
        while self._pending and self._pending[0][0] <= h:
            target, logf, logfloor = self._pending.popleft()
            if target == h and ok:
                self._errors.append((h, self._needed(logv, logf, logfloor)))
            else:
                self._rising.pop(target, None)
                self._in_event.discard(target)
        while self._errors and self._errors[0][0] <= h - cfg.error_hours:
            old = self._errors.popleft()[0]
            self._rising.pop(old, None)
            self._in_event.discard(old)
        # level: smoothed log(actual / (shape x event effect)); event effects learned first,
        # against the level before this hour
        shape, _ = self._shape.at(h) if self._shape else (math.nan, "none")
        if ok and math.isfinite(shape):
            self._ev.learn(h, logv - shape, self._level)
            r = logv - shape - self._ev.total(h)
            self._level = (
                r if self._level is None else (cfg.alpha * r + (1 - cfg.alpha) * self._level)
            )

    def _needed(self, logv: float, logf: float, logfloor: float) -> float:
        """The log margin this outcome needed: the plain log error, or with ``plan_margin``
        the margin over the forecast that the plan max(upper, floor) x (1 + m) needed
        (-inf when the floor of observed demand alone covered it)."""
        m = self.cfg.plan_margin
        if m is None:
            return logv - logf
        need = logv - math.log1p(m)
        if math.isfinite(logfloor) and need <= logfloor:
            return -math.inf
        return need - logf

    def _fit(self, h: int) -> _Shape:
        """Shape from the data strictly before hour ``h``, each event's effect (learned so
        far, its own hours included) removed from the hours it touched."""
        if self._fits is not None:
            return self._fits.fit(self, h)
        cfg = self.cfg
        shape = _Shape(fitted_at=h)
        ev = self._ev
        usable = {
            k: (v - ev.total(k, include_self=True, at=h) if ev.touching(k, h) else v)
            for k, v in self._log.items()
            if k < h
        }
        if not usable:
            return shape
        # Anchoring cancels the level, so only the relative shape matters: a robust average
        # per slot is enough (no trend term).
        for slot_hour in range(h - WEEK, h):
            vals = [usable.get(slot_hour - WEEK * k, math.nan) for k in range(cfg.weeks)]
            shape.weekly[slot_hour % WEEK] = _robust_mean(vals, cfg.median)
        for slot_hour in range(h - DAY, h):
            vals = [usable.get(slot_hour - DAY * k, math.nan) for k in range(cfg.days)]
            shape.daily[slot_hour % DAY] = _robust_mean(vals, cfg.median)
        return shape

    # ------------------------------------------------------------------ forecasting

    def unknown_event_now(self) -> str | None:
        """The note of an event of a kind never seen touching the newest observed hour (the
        current one, which a scale-in would cut at once), or None."""
        if self._last is None:
            return None
        effects = self._ev.effects_at(self._last, at=self._last)
        if any(a.source == "unknown" for a in effects):
            return describe(effects, sum(a.value for a in effects))
        return None

    def _log_base(self, target: int) -> tuple[float, str] | None:
        """The log forecast of hour ``target`` made after the newest observed hour, before
        event effects: shape(newest) + level + step(newest -> target), persistence of the
        newest observation until a shape exists; None without data."""
        if self._last is None or self._shape is None:
            return None
        d = self._last
        s_d, _ = self._shape.at(d)
        step, source = self._shape.ratio(target, d, self.cfg.weekly_weight, self.cfg.blend)
        if self._level is not None and math.isfinite(s_d) and math.isfinite(step):
            return s_d + self._level + step, source
        if self._last_obs is not None:
            return math.log(self._last_obs[1]), "none"  # persistence until a shape exists
        return None

    def project(self, target: datetime) -> Projection | None:
        """The anchored forecast for any hour after the newest observed one (the hour of
        ``target``), as :meth:`forecast` would make it at that lead: the shape's step from the
        newest hour, the level, and the effect of the events touching the target that are known
        at the newest hour. Pure: registers nothing (no error is learned from it) and changes
        no state. None without data."""
        if self._last is None:
            return None
        t = _hour_index(target)
        if t <= self._last:
            raise ValueError(
                f"project: {target} is not after the newest observed hour "
                f"{datetime(1970, 1, 1) + timedelta(hours=self._last)}"
            )
        base = self._log_base(t)
        if base is None:
            return None
        logf, source = base
        effects = tuple(self._ev.effects_at(t, at=self._last))
        effect = sum(a.value for a in effects)
        return Projection(
            target=datetime(1970, 1, 1) + timedelta(hours=t),
            yhat=math.exp(logf + effect),
            event_effect=effect,
            effects=effects,
            shape_source=source,
            note=describe(effects, effect) if effects else "",
        )

    def _register(
        self,
    ) -> tuple[int, int, float, str, list[EffectAt], float, bool] | None:
        """The state half of :meth:`forecast`: the log forecast of ``lead`` hours after the
        newest observed hour, registered so that its error is learned when the target hour is
        observed; None (nothing registered) without data. Returns (newest hour, target hour,
        log forecast, shape source, event effects, summed effect, rose from the newest)."""
        if self._last is None or self._shape is None:
            return None
        d = self._last
        target = d + self.lead
        base = self._log_base(target)
        if base is None:
            return None
        logf, source = base
        effects = self._ev.effects_at(target, at=d)
        effect = sum(a.value for a in effects)
        logf += effect
        rising = bool(self._last_obs is not None and logf > math.log(max(self._last_obs[1], _TINY)))
        logfloor = (
            math.log(self._last_obs[1]) if self._last_obs and self._last_obs[1] > 0 else (-math.inf)
        )
        self._pending.append((target, logf, logfloor))
        self._rising[target] = rising
        if any(a.source != "weekly" for a in effects):
            self._in_event.add(target)
        return d, target, logf, source, effects, effect, rising

    def forecast(self) -> Nowcast | None:
        """The forecast for ``lead`` hours after the newest observed hour (None: no data yet).

        Registers it so that its error is learned when the target hour is observed.
        """
        made = self._register()
        if made is None:
            return None
        d, target, logf, source, effects, effect, rising = made
        made_at = datetime(1970, 1, 1) + timedelta(hours=d)
        target_ts = made_at + timedelta(hours=self.lead)
        errs = [e for _, e in self._errors]
        if self.cfg.event_errors_apart:
            apart = [e for h, e in self._errors if h not in self._in_event]
            if len(apart) >= self.cfg.min_errors:
                errs = apart
        if self.cfg.local_hours > 0:
            w = self.cfg.local_hours
            local = [e for h, e in self._errors if abs((h - target + 12) % DAY - 12) <= w]
            if len(local) >= self.cfg.min_errors:
                errs = local
        if self.cfg.ramp_split:
            same = [e for h, e in self._errors if self._rising.get(h) == rising]
            if len(same) >= self.cfg.min_errors:
                errs = same
        if len(errs) >= self.cfg.min_errors:
            finite = np.maximum(np.asarray(errs, dtype=float), -10.0)  # -inf: floor covered it
            q = float(np.quantile(finite, self.cfg.quantile))
        else:
            q = self.cfg.default_log_margin
        spread = self._ev.spread_at(target, at=d) if self.cfg.event.spread_z > 0 else 0.0
        if spread > 0:  # margin where the risk is: an event's effect is uncertain
            z = max(0.0, NormalDist().inv_cdf(self.cfg.quantile))
            extra = self.cfg.event.spread_z * z * spread  # the two taken as independent
            q = math.hypot(q, extra) if q > 0 else q + extra
        if self.cfg.min_log_margin is not None:
            q = max(q, self.cfg.min_log_margin)
        yhat = math.exp(logf)
        return Nowcast(
            made_at,
            target_ts,
            yhat,
            yhat * math.exp(q),
            q,
            source,
            event_effect=effect,
            unknown_event=any(a.source == "unknown" for a in effects),
            event_note=describe(effects, effect, spread if spread > 0 else None, q)
            if effects
            else "",
            low_expected=any(a.source == "expected" and a.value < 0 for a in effects),
        )


def nowcast_series(
    ts: Sequence[datetime],
    values: Sequence[float],
    lead: int,
    config: NowcastConfig | None = None,
    events: Sequence[EventWindow] = (),
) -> list[Nowcast | None]:
    """Convenience: the forecast made after each hour of an hourly series (index-aligned)."""
    nc = Nowcaster(lead, config, events)
    out: list[Nowcast | None] = []
    for t, v in zip(ts, values, strict=True):
        nc.observe(t, float(v))
        out.append(nc.forecast())
    return out


class _FitCache:
    """Shapes shared by nowcasters fed the same series and events (one per lead): each fit once,
    and the average of a slot none of whose hours an event touches kept from the fit before
    (its hours' values never change once observed). Gives exactly the plain ``_fit``: the same
    values, averaged by the same function in the same order."""

    def __init__(self, cfg: NowcastConfig, events: EventModel) -> None:
        self.cfg = cfg
        self.touched = frozenset(events._hours)  # hours any event touches (known or not)
        self.shapes: dict[int, _Shape] = {}
        self.weekly: dict[int, float] = {}  # slot hour -> average (untouched slots only)
        self.daily: dict[int, float] = {}

    def fit(self, nc: Nowcaster, h: int) -> _Shape:
        got = self.shapes.get(h)
        if got is not None:
            return got
        cfg, ev, log = self.cfg, nc._ev, nc._log
        shape = _Shape(fitted_at=h)
        self.shapes[h] = shape
        if not log:  # every kept hour is before h: no data before h
            return shape
        touched, nan = self.touched, math.nan

        def value(k: int) -> float:
            v = log.get(k, math.nan)
            if k in touched and k in log and ev.touching(k, h):
                return v - ev.total(k, include_self=True, at=h)
            return v

        # the weekly, then the daily shape: each slot the robust mean of the same hour over the
        # last periods, memoised while no event touches those hours
        for memo, period, count, out in (
            (self.weekly, WEEK, cfg.weeks, shape.weekly),
            (self.daily, DAY, cfg.days, shape.daily),
        ):
            for slot_hour in range(h - period, h):
                mean = memo.get(slot_hour)  # only clean slots are kept
                if mean is None:
                    hours = [slot_hour - period * k for k in range(count)]
                    vals = (
                        [value(k) for k in hours] if touched else [log.get(k, nan) for k in hours]
                    )
                    mean = _robust_mean(vals, cfg.median)
                    if not touched or touched.isdisjoint(hours):
                        memo[slot_hour] = mean
                out[slot_hour % period] = mean
        return shape


def feed_leads(
    ts: Sequence[datetime],
    values: Sequence[float],
    leads: Sequence[int],
    config: NowcastConfig | None = None,
    events: Sequence[EventWindow] = (),
) -> tuple[dict[int, Nowcaster], dict[int, Nowcast | None]]:
    """One nowcaster per lead fed a whole hourly series at once, and each one's forecast after
    the newest hour: exactly the state and forecasts of feeding them hour by hour with
    :meth:`Nowcaster.observe` then :meth:`Nowcaster.forecast` (``tests/test_nowcast_feed.py``
    compares them bit for bit), without the work whose result the newest hour no longer holds:
    the shapes are fitted once for all leads (:class:`_FitCache`); a forecast whose target hour
    is older than the error window at the newest hour is not made (its error would have
    expired); the quantile of past errors is taken at the newest hour only."""
    cfg = config or NowcastConfig()
    ncs = {k: Nowcaster(k, cfg, events) for k in sorted(set(leads))}
    if not ncs:
        return {}, {}
    cache = _FitCache(cfg, next(iter(ncs.values()))._ev)
    for nc in ncs.values():
        nc._fits = cache
    latest: dict[int, Nowcast | None] = {k: None for k in ncs}
    if len(ts) == 0:
        return ncs, latest
    newest = _hour_index(ts[-1])
    horizon = newest - cfg.error_hours  # a target at or before it: error gone by the newest hour
    last = len(ts) - 1
    for i, (t, v) in enumerate(zip(ts, values, strict=True)):
        for k, nc in ncs.items():
            nc.observe(t, float(v))
            if i == last:
                latest[k] = nc.forecast()
            elif nc._last is not None and nc._last + k > horizon:
                nc._register()
    for nc in ncs.values():
        nc._fits = None  # later fits (a caller feeding on) are the plain ones
    return ncs, latest
