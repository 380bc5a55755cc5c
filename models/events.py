"""Event effects for the anchored nowcast: what a known event does to demand, learned per kind.

An event (a row of the events table that applies to the series) touches the hours from
``pre_hours`` before its start to ``post_hours`` after its end. Each touched hour has a *key*:

- ``("pre", -k)``: k hours before the start (a pre-event ramp);
- ``("in", k)``: k hours after the start, inside ``[start, end)``;
- ``("post", k)``: k hours after the end (a post-event surge, or the tail of a dip).

The *effect* of an event at a key is the log ratio of demand to what the shape and the level
before the event would have said: ``log y(h) - shape(h) - level(before the event)``, minus the
effects of other events touching the same hour. The nowcast removes the summed effect from
the data it fits its shape on and from the level it anchors on (so event hours neither leak
into the weekly shape nor make the anchor stale), and adds it back for the target hour.

An event's expected effect at a key (:meth:`EventModel.effect`) comes from the *earlier*
events of its kind (the newest ``history``):

1. fewer than ``min_events`` earlier events and the row carries ``multiplier``:
   ``log(multiplier)`` inside the event, 0 around it ("expected");
2. no earlier event: 0 ("unknown": in the event's first ``unknown_hours`` the nowcast flags
   the target hour, and the decision holds scale-in);
3. else the median of the earlier events' effects at the same key once ``own_events`` of them
   have it, before that pooled with the keys up to ``smooth`` hours either side (same phase),
   so a steep edge (a ramp, a first hour, a surge's peak) is not blurred into its neighbours
   once the kind has shown it often enough; for an ``in`` key no
   earlier event reached (a longer event) the median of their late inside hours (the last
   ``late_hours`` learned offsets); a pre / post key without samples: 0. Behind fewer than
   ``min_events`` events, shrunk by ``n / (n + shrink)`` (n = events behind the value);
   0 when below ``floor`` in size (noise of a few per cent is no event); capped at +-``cap``.

Events that recur at the same hour of the week do not count twice: the shape is fitted on the
data with the effect removed, so whatever the effect explains is not also in the shape.

Pure: no I/O, no clock; fed in hour order by :class:`models.nowcast.Nowcaster`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

Key = tuple[str, int]
# An event row without an ``announced`` time is known this long before its start (but never
# before fleetcast stored it): a studio's calendar names tournaments and updates a day ahead
# at least; the same rule live and in the replay.
NOTICE = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class EventWindow:
    """A known event (from the events table): [start, end), naive UTC.

    ``multiplier``: the expected peak multiplier of demand, used for a kind with fewer than
    ``min_events`` earlier events; ``announced``: when it became known (None: always known).
    An event is used at an hour only once it is known by that hour's start (learning from its
    hours, the shape's correction, a forecast made then), so a row added later changes no
    forecast made before it was known, live or replayed."""

    kind: str
    start: datetime
    end: datetime
    name: str = ""
    multiplier: float | None = None
    announced: datetime | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"event {self.name or self.kind}: end {self.end} <= start")
        if self.multiplier is not None and not (
            math.isfinite(self.multiplier) and self.multiplier > 0
        ):
            raise ValueError(f"event {self.name or self.kind}: multiplier must be > 0")


@dataclass(frozen=True)
class EventConfig:
    pre_hours: int = 3  # hours before the start an event touches (ramp)
    post_hours: int = 12  # hours after the end an event touches (surge, recovery)
    min_events: int = 2  # earlier events of a kind before its learned effect replaces multiplier
    shrink: float = 1.0  # behind n < min_events events: effect x n / (n + shrink)
    cap: float = math.log(4.0)  # |effect| at most this (log)
    history: int = 8  # newest earlier events of a kind used
    # ... started at most this long before the event (a bounded memory, like the shape's four
    # weeks: what a live decision re-fed its feed window learns is what the replay learned)
    memory_hours: int = 4 * 7 * 24
    late_hours: int = 24  # an unlearned inside offset: the median of the last learned ones
    smooth: int = 3  # the samples of a key pooled with those of keys up to this many hours away
    # ... unless this many earlier events have the key itself: then its own median (3: the first
    # median one odd event cannot move). Pooling blurs the steep hours (a tournament's ramp and
    # first hour: x1.25 then x1.7 then x2 read as one), where the anchored level then sits on a
    # wrong effect. 3 rather than never (99): on the tune half of steam-dev (benchmarks/events.py,
    # seed 1) event hours short at +10% 3.59% against 5.01% and all hours 3.20% against 3.59%;
    # 2 (a median of two: a mean) was noisy on multi-day promotions (4.92% / 3.72%)
    own_events: int = 3
    weekly: bool = True  # an event recurring at the same hour a week earlier: left to the shape
    floor: float = 0.1  # |effect| below this counts as none
    # an event of a kind never seen (no multiplier) flags its first this many hours "unknown"
    # (no scale-in then); later the anchored level has taken in what it does. 4 rather than
    # 24 or the whole event: on the sample (benchmarks/events.py) 24 h cost 1.8x the hours
    # short at +10% over-provisioning (a 3-day promotion pinned at its first peak), 4 h none
    unknown_hours: int = 4
    # margin where the risk is (:meth:`EventModel.spread`): an event hour's forecast gets a
    # wider upper bound from the spread of the earlier occurrences' effects at its key, in log
    # sd, shrunk towards ``spread_prior`` as if it were ``spread_k`` more occurrences (few
    # occurrences: wide; consistent ones: narrow); the nowcast adds ``spread_z`` x z(its
    # quantile) x that sd to its margin in event hours. 0 = no event margin. 0.3 chosen on the
    # tune half of steam-dev (benchmarks/events.py, seed 1): fewer hours short both inside
    # events and over all hours at equal cost than 0 (0.4-0.7 move shortage from event hours
    # to ordinary ones)
    spread_z: float = 0.3
    spread_prior: float = 0.3
    spread_k: float = 2.0


@dataclass(frozen=True)
class EffectAt:
    """One event's expected effect at one hour."""

    event: EventWindow
    key: Key
    value: float  # log effect
    source: str  # "learned" | "pooled" | "expected" | "unknown" | "none"
    earlier: int  # earlier events of the kind it was learned from


def hour_index(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds() // 3600)


def _ceil_hour(ts: datetime) -> int:
    """The index of the first hour starting at or after ``ts``."""
    h = hour_index(ts)
    return h if ts == _EPOCH + timedelta(hours=h) else h + 1


def _median(values: Sequence[float]) -> float:
    return float(np.median(values))


class EventModel:
    """The learned effects of a fixed list of events; fed residuals hour by hour."""

    def __init__(self, events: Sequence[EventWindow], config: EventConfig | None = None) -> None:
        self.cfg = config or EventConfig()
        self.events = tuple(sorted(events, key=lambda e: (e.start, e.kind, e.name)))
        cfg_weekly = self.cfg.weekly
        self._hours: dict[int, list[tuple[int, Key]]] = {}  # hour -> touching (event, key)
        # an event with a twin of its kind and length exactly one week earlier: a kind most of
        # whose events have one recurs at the same hour of the week, which the hour-of-week
        # shape holds (decided from the calendar's data, not from the kind's name)
        week = timedelta(days=7)
        slots = {(e.kind, e.start, e.end) for e in self.events}
        self._twinned = [
            cfg_weekly and (e.kind, e.start - week, e.end - week) in slots for e in self.events
        ]
        # the first hour index at whose start each event is known
        self._known = [
            -(10**9) if e.announced is None else _ceil_hour(e.announced) for e in self.events
        ]
        for i, e in enumerate(self.events):
            s, t = hour_index(e.start), hour_index(e.end)
            t = max(t, s + 1)
            for h in range(s - self.cfg.pre_hours, t + self.cfg.post_hours):
                key: Key = ("pre", h - s) if h < s else ("in", h - s) if h < t else ("post", h - t)
                self._hours.setdefault(h, []).append((i, key))
        # kind -> event index -> key -> learned effect
        self._seen: dict[str, dict[int, dict[Key, float]]] = {}
        self._weekly_cache: dict[tuple[str, int], bool] = {}
        self._base: dict[int, float] = {}  # event index -> level before the event

    # ------------------------------------------------------------------ learning

    def touching(self, h: int, at: int | None = None) -> list[tuple[int, Key]]:
        """The (event, key) pairs touching hour ``h`` of the events known at hour ``at``
        (default ``h``)."""
        at = h if at is None else at
        return [(i, k) for i, k in self._hours.get(h, []) if self._known[i] <= at]

    def learn(self, h: int, resid: float, level: float | None) -> None:
        """Hour ``h``'s log demand minus its shape (``resid``), seen with the level before
        this hour's update: each touching event learns its effect against the level it had
        before its first touched hour, less the other touching events' expected effects."""
        touching = self.touching(h)
        if not touching or level is None or not math.isfinite(resid):
            return
        touching = [(i, key) for i, key in touching if not self.weekly(i, h)]
        if not touching:
            return
        for i, _ in touching:
            self._base.setdefault(i, level)
        expected = {i: self.effect(i, key, at=h).value for i, key in touching}
        total = sum(expected.values())
        for i, key in touching:
            value = resid - self._base[i] - (total - expected[i])
            kind = self.events[i].kind
            self._seen.setdefault(kind, {}).setdefault(i, {})[key] = value

    # ------------------------------------------------------------------ effects

    def _earlier(self, i: int, include_self: bool) -> list[int]:
        e = self.events[i]
        seen = self._seen.get(e.kind, {})
        oldest = e.start - timedelta(hours=self.cfg.memory_hours)
        out = [
            j for j in seen if oldest <= self.events[j].start < e.start or (include_self and j == i)
        ]
        out.sort(key=lambda j: self.events[j].start)
        return out[-self.cfg.history :]

    def _pooled(self, i: int, key: Key, earlier: list[int]) -> tuple[float, int, str]:
        seen = self._seen.get(self.events[i].kind, {})
        own = [seen[j][key] for j in earlier if key in seen[j]]
        if len(own) >= self.cfg.own_events:  # enough of its own: the hour's profile kept
            return _median(own), len(own), "learned"
        near = [(key[0], key[1] + d) for d in range(-self.cfg.smooth, self.cfg.smooth + 1)]
        vals = [seen[j][k] for j in earlier for k in near if k in seen[j]]
        if vals:
            n = sum(1 for j in earlier if key in seen[j]) or 1
            return _median(vals), n, "learned"
        if key[0] != "in":
            return 0.0, 0, "none"
        late = []
        for j in earlier:
            inside = sorted((k[1], v) for k, v in seen[j].items() if k[0] == "in")
            if inside:
                late.append(_median([v for _, v in inside[-self.cfg.late_hours :]]))
        if late:
            return _median(late), len(late), "pooled"
        return 0.0, 0, "none"

    def weekly(self, i: int, at: int) -> bool:
        """Event ``i``'s kind recurs weekly: more than half of its events known at hour ``at``
        that have started by then (two at least) had a twin a week earlier. The hour-of-week
        shape holds such a kind: its events are neither learned from, nor added, nor taken out
        of the shape."""
        kind = self.events[i].kind
        key = (kind, at)
        got = self._weekly_cache.get(key)
        if got is None:
            past = [
                j
                for j, e in enumerate(self.events)
                if e.kind == kind and self._known[j] <= at and hour_index(e.start) <= at
            ]
            twins = sum(self._twinned[j] for j in past)
            got = twins >= 2 and twins > len(past) / 2
            self._weekly_cache[key] = got
        return got

    def effect(
        self, i: int, key: Key, include_self: bool = False, at: int | None = None
    ) -> EffectAt:
        """Event ``i``'s expected log effect at ``key`` (see the module docstring);
        ``include_self``: also from the event's own hours seen so far (for removing an
        observed event from the data the shape is fitted on)."""
        cfg = self.cfg
        e = self.events[i]
        if at is not None and self.weekly(i, at):  # the shape holds it: nothing added or removed
            return EffectAt(e, key, 0.0, "weekly", 0)
        earlier = self._earlier(i, include_self)
        n = len(earlier)
        if n < cfg.min_events and e.multiplier is not None:
            value = math.log(e.multiplier) if key[0] == "in" else 0.0
            return EffectAt(e, key, value, "expected", n)
        if n == 0:
            hold = key[0] == "in" and key[1] < cfg.unknown_hours
            return EffectAt(e, key, 0.0, "unknown" if hold else "none", 0)
        value, m, source = self._pooled(i, key, earlier)
        if not include_self and 0 < m < cfg.min_events:
            value *= m / (m + cfg.shrink)
        if abs(value) < cfg.floor:  # in the shape too: a small effect the forecast would not
            value = 0.0  # add back stays in the shape (a weekly-recurring one, for one)
        value = min(max(value, -cfg.cap), cfg.cap)
        return EffectAt(e, key, value, source, n)

    def _samples(self, i: int, key: Key, earlier: list[int]) -> dict[int, float]:
        """One value per earlier event of ``i``'s kind at ``key``: its own, else the mean of
        its values at the keys up to ``smooth`` hours away (same phase), else (inside, past
        its end) the mean of its last ``late_hours`` inside values."""
        seen = self._seen.get(self.events[i].kind, {})
        near = [(key[0], key[1] + d) for d in range(-self.cfg.smooth, self.cfg.smooth + 1)]
        out: dict[int, float] = {}
        for j in earlier:
            got = seen[j]
            if key in got:
                out[j] = got[key]
                continue
            vals = [got[k] for k in near if k in got]
            if not vals and key[0] == "in":
                inside = sorted((k[1], v) for k, v in got.items() if k[0] == "in")
                vals = [v for _, v in inside[-self.cfg.late_hours :]]
            if vals:
                out[j] = float(np.mean(vals))
        return out

    def spread(self, i: int, key: Key, at: int | None = None, since: Key | None = None) -> float:
        """How uncertain event ``i``'s effect at ``key`` is (log sd) for a forecast made at
        an hour the event touched at key ``since`` (None: before it): the level anchored
        there already holds how this occurrence differs at ``since``, so what is uncertain is
        the change from ``since`` to ``key``. It is the spread of that change over the kind's
        earlier occurrences (:meth:`_samples`), pooled with ``spread_prior`` weighted as
        ``spread_k`` occurrences, times sqrt(1 + 1/n) (the median itself is estimated);
        ``spread_prior`` inside an event of a kind never seen or known only by the row's
        multiplier (before its first hour); 0 for a weekly-recurring kind (the shape and its
        errors hold it) and where the kind has no sample."""
        cfg = self.cfg
        if at is not None and self.weekly(i, at):
            return 0.0
        earlier = self._earlier(i, include_self=False)
        few = len(earlier) < cfg.min_events and self.events[i].multiplier is not None
        if few or not earlier:
            return cfg.spread_prior if key[0] == "in" and since is None else 0.0
        at_key = self._samples(i, key, earlier)
        if since is None:
            v = list(at_key.values())
        else:
            at_since = self._samples(i, since, earlier)
            v = [x - at_since[j] for j, x in at_key.items() if j in at_since]
        n = len(v)
        if n == 0:
            return 0.0
        ss = float(np.var(v, ddof=1)) * (n - 1) if n > 1 else 0.0
        var = (ss + cfg.spread_k * cfg.spread_prior**2) / (n - 1 + cfg.spread_k)
        return math.sqrt(var * (1 + 1 / n))

    def spread_at(self, h: int, at: int | None = None) -> float:
        """The log sd of the summed effect at hour ``h`` for a forecast made at hour ``at``
        (events known then), the events taken as independent."""
        at = h if at is None else at
        now = {i: k for i, k in self._hours.get(at, [])}
        return math.sqrt(
            sum(self.spread(i, key, at, now.get(i)) ** 2 for i, key in self.touching(h, at))
        )

    def effects_at(self, h: int, at: int | None = None) -> list[EffectAt]:
        """The expected effect of each event touching hour ``h`` known at hour ``at``."""
        at = h if at is None else at
        return [self.effect(i, key, at=at) for i, key in self.touching(h, at)]

    def total(self, h: int, include_self: bool = False, at: int | None = None) -> float:
        """The summed expected log effect of the events touching hour ``h`` known at ``at``."""
        at = h if at is None else at
        return sum(
            self.effect(i, key, include_self, at=at).value for i, key in self.touching(h, at)
        )


def describe(
    effects: Sequence[EffectAt],
    total: float,
    spread: float | None = None,
    log_margin: float | None = None,
) -> str:
    """A short human line naming the events at a target hour and their effect, e.g.
    ``tournament spring_cup from 19:00: x2.10, learned from 4 earlier tournaments``; with the
    event margin (:meth:`EventModel.spread`, the forecast's log margin), e.g. ``; margin +35%
    (such effects vary by about +-28%)``."""
    parts = []
    for a in effects:
        e = a.event
        name = f"{e.kind} {e.name}".strip() if e.name else e.kind
        head = f"{name} from {e.start:%Y-%m-%d %H:%M}"
        if a.source == "weekly":
            parts.append(f"{head}: recurs weekly, in the hour-of-week shape")
        elif a.source == "unknown":
            parts.append(f"{head}: a kind never seen before, effect unknown")
        elif a.source == "expected":
            parts.append(f"{head}: x{math.exp(a.value):.2f} expected (the event's multiplier)")
        elif a.source == "none":
            parts.append(f"{head} ({a.key[0]} {a.key[1]:+d} h): no effect learned")
        else:
            plural = "s" if a.earlier != 1 else ""
            parts.append(
                f"{head} ({a.key[0]} {a.key[1]:+d} h): x{math.exp(a.value):.2f}, "
                f"{a.source} from {a.earlier} earlier {e.kind}{plural}"
            )
    if len(effects) > 1:
        parts.append(f"together x{math.exp(total):.2f}")
    if spread is not None and log_margin is not None:
        parts.append(
            f"margin {math.exp(log_margin) - 1:+.0%} (such effects vary by about "
            f"+-{math.exp(spread) - 1:.0%})"
        )
    return "; ".join(parts)
