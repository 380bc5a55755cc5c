"""The fast feed of the live decision (models.nowcast.feed_leads, models.decision.feed) leaves
exactly the state and forecasts of the plain nowcaster fed hour by hour (the replay's way):
compared bit for bit, on series with gaps, missing hours and events, for several configs."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.decision import DecisionForecaster, feed, feed_hours
from models.events import EventWindow
from models.nowcast import NowcastConfig, Nowcaster, feed_leads

T0 = datetime(2026, 1, 5)


def _at(days: int, hours: int = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


EVENTS = (
    EventWindow("tournament", _at(9, 18), _at(9, 22)),
    EventWindow("tournament", _at(23, 18), _at(23, 23)),
    EventWindow("tournament", _at(37, 19), _at(37, 22)),
    EventWindow("launch", _at(44, 10), _at(47), multiplier=2.0),
    EventWindow("sale", _at(45, 20), _at(46, 3), announced=_at(45, 21)),
)


def _series(hours: int, seed: int) -> tuple[list[datetime], list[float]]:
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    y = (
        900
        * np.exp(0.6 * np.sin(2 * np.pi * (h % 24 - 15) / 24))
        * np.exp(rng.normal(0, 0.08, hours))
    )
    for e, lift in zip(EVENTS, (1.8, 1.6, 2.0, 2.2, 1.5), strict=True):  # what events do
        first, stop = (
            int((e.start - T0) / timedelta(hours=1)),
            int((e.end - T0) / timedelta(hours=1)),
        )
        y[first:stop] *= lift
    y[rng.uniform(size=hours) < 0.03] = np.nan  # missing hours
    y[hours // 3 : hours // 3 + 5] = 0.0  # an outage (not > 0: not observed)
    ts = [T0 + timedelta(hours=int(i)) for i in h]
    keep = rng.uniform(size=hours) > 0.02  # a few hours absent from the grid altogether
    keep[-1] = True
    return [t for t, k in zip(ts, keep, strict=True) if k], [
        float(v) for v, k in zip(y, keep, strict=True) if k
    ]


CONFIGS = [
    NowcastConfig(),
    NowcastConfig(min_log_margin=None, quantile=0.9),
    NowcastConfig(
        alpha=0.4,
        median=True,
        local_hours=3,
        ramp_split=True,
        plan_margin=0.1,
        event_errors_apart=True,
    ),
    NowcastConfig(weeks=2, days=5, error_hours=100, refit_hours=6, blend="mean"),
]


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, floats bit for bit."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _state(nc: Nowcaster) -> dict[str, object]:
    shape = nc._shape
    return {
        "log": nc._log,
        "last": nc._last,
        "last_obs": nc._last_obs,
        "level": nc._level,
        "shape": None if shape is None else (shape.fitted_at, shape.weekly, shape.daily),
        "pending": list(nc._pending),
        "errors": list(nc._errors),
        "rising": nc._rising,
        "in_event": nc._in_event,
        "seen": nc._ev._seen,
        "base": nc._ev._base,
    }


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("events", [(), EVENTS])
@pytest.mark.parametrize(("hours", "seed"), [(1300, 1), (400, 2), (30, 3)])
def test_feed_leads_is_the_plain_nowcaster_bit_for_bit(
    config: NowcastConfig, events: tuple[EventWindow, ...], hours: int, seed: int
) -> None:
    ts, y = _series(hours, seed)
    leads = (1, 2, 5)
    fast, latest = feed_leads(ts, y, leads, config, events)
    for lead in leads:
        plain = Nowcaster(lead, config, events)
        last = None
        for t, v in zip(ts, y, strict=True):
            plain.observe(t, v)
            last = plain.forecast()
        assert _same(_state(fast[lead]), _state(plain)), lead
        assert _same(asdict(latest[lead]) if latest[lead] else None,
                     asdict(last) if last else None)  # fmt: skip
        # fed on afterwards (the plain way), both still agree
        nxt = ts[-1] + timedelta(hours=1)
        fast[lead].observe(nxt, 1000.0)
        plain.observe(nxt, 1000.0)
        a, b = fast[lead].forecast(), plain.forecast()
        assert _same(asdict(a) if a else None, asdict(b) if b else None)
        assert _same(_state(fast[lead]), _state(plain))


@pytest.mark.parametrize("events", [(), EVENTS])
def test_decision_feed_is_the_hour_by_hour_forecaster(events: tuple[EventWindow, ...]) -> None:
    config = NowcastConfig(min_log_margin=None)
    offsets = (1, 2)
    ts, y = _series(feed_hours(config, 2) + 50, 7)
    fast = feed(ts, y, offsets, config, events)
    plain = DecisionForecaster(offsets, config, events)
    for t, v in zip(ts, y, strict=True):
        plain.observe(t, v)
    assert fast.ready() == plain.ready() is True
    assert fast.observed_hours == plain.observed_hours
    assert fast.last_hour == plain.last_hour and fast.last_observed == plain.last_observed
    assert _same(asdict(fast.series_forecast("players")), asdict(plain.series_forecast("players")))
    assert fast.event_notes() == plain.event_notes()
    assert fast.unknown_event_now() == plain.unknown_event_now()
    for k in offsets:
        assert _same(_state(fast.nowcaster(k)), _state(plain.nowcaster(k)))


def test_the_shape_average_is_numpys_mean_to_the_bit() -> None:
    from models.nowcast import _robust_mean

    rng = np.random.default_rng(11)
    for _ in range(20_000):
        n = int(rng.integers(1, 160))
        v = (rng.normal(0, 3, n) * 10 ** rng.uniform(-3, 3)).tolist()
        v[int(rng.integers(0, n))] = math.nan  # a missing hour is left out
        finite = sorted(x for x in v if math.isfinite(x))
        want = float(np.mean(finite)) if finite else math.nan
        assert _same(_robust_mean(v, median=False), want)
