"""The anchored nowcast (models/nowcast.py) on tiny literal series."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.events import EventConfig
from models.nowcast import EventWindow, NowcastConfig, Nowcaster, nowcast_series

T0 = datetime(2026, 1, 5)


def _ts(n: int) -> list[datetime]:
    return [T0 + timedelta(hours=i) for i in range(n)]


def _weekly(n: int) -> np.ndarray:
    h = np.arange(n)
    return 100 + 50 * np.sin(2 * np.pi * (h % 24) / 24) + 30 * ((h // 24) % 7 >= 5)


def test_exact_weekly_pattern_is_forecast_exactly_with_zero_margin() -> None:
    y = _weekly(24 * 28)
    cfg = NowcastConfig(min_errors=24, error_hours=24 * 7, weekly_weight=1.0, blend="mean")
    out = nowcast_series(_ts(y.size), y, lead=2, config=cfg)
    # the weekly shape is exact from day 8; its errors (0) fill the error window by day 15
    for d in range(24 * 16, y.size - 2):
        fc = out[d]
        assert fc is not None and fc.shape_source == "weekly"
        assert fc.yhat == pytest.approx(y[d + 2], rel=1e-9)
        assert fc.target == T0 + timedelta(hours=d + 2)
        assert fc.log_margin == pytest.approx(0.0, abs=1e-9)  # no past error: no margin


def test_anchored_on_the_newest_observation() -> None:
    y = _weekly(24 * 15)
    y[-1] *= 2.0  # demand suddenly doubles in the newest hour
    nc = Nowcaster(lead=1, config=NowcastConfig(alpha=1.0, weekly_weight=1.0))
    for t, v in zip(_ts(y.size), y, strict=True):
        nc.observe(t, float(v))
    fc = nc.forecast()
    assert fc is not None
    truth = _weekly(y.size + 1)[-1]  # the shape's next value
    assert fc.yhat == pytest.approx(2.0 * truth, rel=1e-9)
    # with smoothing the level moves part of the way only
    nc2 = Nowcaster(lead=1, config=NowcastConfig(alpha=0.5, weekly_weight=1.0))
    for t, v in zip(_ts(y.size), y, strict=True):
        nc2.observe(t, float(v))
    fc2 = nc2.forecast()
    assert fc2 is not None and truth < fc2.yhat < 2.0 * truth


def test_margin_is_the_quantile_of_its_own_past_errors() -> None:
    rng = np.random.default_rng(5)
    y = _weekly(24 * 28) * np.exp(rng.normal(0, 0.05, 24 * 28))
    cfg = NowcastConfig(quantile=0.9, alpha=1.0)
    out = nowcast_series(_ts(y.size), y, lead=1, config=cfg)
    # recompute the errors from the forecasts and the data (those known by the last hour)
    last = y.size - 1
    errs = []
    for d in range(last):
        fc = out[d]
        if fc is not None and last - cfg.error_hours < d + 1 <= last:
            errs.append(math.log(y[d + 1]) - math.log(fc.yhat))
    fc = out[last]
    assert fc is not None
    assert fc.log_margin == pytest.approx(max(float(np.quantile(errs, 0.9)), 0.0), rel=1e-9)
    assert fc.upper == pytest.approx(fc.yhat * math.exp(fc.log_margin))
    # calibration: about 90 % of outcomes over the last two weeks fall under the upper
    hits = [y[d + 1] <= out[d].upper for d in range(24 * 14, last) if out[d] is not None]  # type: ignore[union-attr]
    assert 0.8 <= np.mean(hits) <= 0.97


def test_causal_order_enforced_and_missing_hours_tolerated() -> None:
    nc = Nowcaster(lead=1)
    nc.observe(T0, 10.0)
    with pytest.raises(ValueError, match="increasing"):
        nc.observe(T0, 11.0)
    nc.observe(T0 + timedelta(hours=3), float("nan"))  # gap then a missing value
    fc = nc.forecast()
    assert fc is not None and fc.yhat == pytest.approx(10.0)  # persistence until a shape exists


def test_recurring_event_uplift_is_learned_and_applied() -> None:
    n = 24 * 24
    y = np.full(n, 100.0)
    events = []
    for day in (3, 10, 13, 20):  # not weekly: the shape alone cannot know about it
        s = T0 + timedelta(days=day, hours=12)
        events.append(EventWindow("tournament", s, s + timedelta(hours=3)))
        i = day * 24 + 12
        y[i : i + 3] = 250.0
    cfg = NowcastConfig(alpha=1.0, weekly_weight=1.0)  # the weekly shape alone
    with_ev = nowcast_series(_ts(n), y, lead=1, config=cfg, events=events)
    without = nowcast_series(_ts(n), y, lead=1, config=cfg)
    d = 20 * 24 + 11  # the hour before the last event starts
    assert with_ev[d] is not None and without[d] is not None
    assert with_ev[d].yhat == pytest.approx(250.0, rel=0.05)  # type: ignore[union-attr]
    # without the events table the event of day 13 leaks into the weekly shape (median of two
    # weeks of logs = their geometric mean) and the next event is missed
    assert without[d].yhat == pytest.approx(math.sqrt(100.0 * 250.0), rel=0.01)  # type: ignore[union-attr]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="quantile"):
        NowcastConfig(quantile=1.5)
    with pytest.raises(ValueError, match="lead"):
        Nowcaster(lead=0)


# --------------------------------------------------------------------------- the event model


def _flat_with(events: list[tuple[EventWindow, list[tuple[int, float]]]], n: int) -> np.ndarray:
    """A flat series of 100 with each event's (hour offset from its start, multiplier)."""
    y = np.full(n, 100.0)
    for e, lifts in events:
        s = int((e.start - T0).total_seconds() // 3600)
        for k, m in lifts:
            y[s + k] *= m
    return y


def test_a_kind_seen_once_is_shrunk_and_a_kind_seen_twice_is_not() -> None:
    cfg = NowcastConfig(event=EventConfig(smooth=0, floor=0.0))
    evs = [EventWindow("tournament", T0 + timedelta(days=d, hours=12),
                       T0 + timedelta(days=d, hours=14)) for d in (3, 9, 16)]  # fmt: skip
    y = _flat_with([(e, [(0, 2.0), (1, 2.0)]) for e in evs], 24 * 18)
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, config=cfg, events=evs)
    # before the second event: learned from one, shrunk to half the log effect (x sqrt 2)
    second = out[9 * 24 + 11]
    assert second is not None and second.yhat == pytest.approx(100 * math.sqrt(2), rel=0.02)
    assert not second.unknown_event and "1 earlier tournament" in second.event_note
    third = out[16 * 24 + 11]
    assert third is not None and third.yhat == pytest.approx(200.0, rel=0.02)


def test_a_multi_day_event_keeps_the_anchor_and_ends_on_time() -> None:
    cfg = NowcastConfig(event=EventConfig(post_hours=0))
    days = 3
    evs = [EventWindow("promotion", T0 + timedelta(days=d), T0 + timedelta(days=d + days))
           for d in (2, 8, 15)]  # fmt: skip
    # the third promotion runs on a market that grew by 10% the day it started
    y = _flat_with([(e, [(k, 1.5) for k in range(days * 24)]) for e in evs], 24 * 21)
    y[15 * 24 :] *= 1.1
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, config=cfg, events=evs)
    mid = out[16 * 24 + 5]  # inside the third promotion: anchored on it, the effect cancels
    assert mid is not None and mid.yhat == pytest.approx(165.0, rel=0.02)
    end = out[18 * 24 - 1]  # its last hour: the hour after it is back to the grown market
    assert end is not None and end.yhat == pytest.approx(110.0, rel=0.02)
    # an offset no earlier event reached is given the kind's late inside effect
    longer = EventWindow("promotion", T0 + timedelta(days=2), T0 + timedelta(days=9))
    nc = Nowcaster(1, cfg, [*evs[:1], longer])
    for t, v in zip(_ts(24 * 7), np.full(24 * 7, 100.0), strict=True):
        nc.observe(t, float(v))
    assert nc._ev.effect(1, ("in", 24 * 6)).source in ("pooled", "none")


def test_a_weekly_recurring_event_is_not_counted_twice() -> None:
    evs = [EventWindow("tournament", T0 + timedelta(days=2 + 7 * w, hours=19),
                       T0 + timedelta(days=2 + 7 * w, hours=22)) for w in range(5)]  # fmt: skip
    y = _flat_with([(e, [(0, 2.0), (1, 2.0), (2, 2.0)]) for e in evs], 24 * 35)
    with_ev = nowcast_series(_ts(y.size), y.tolist(), lead=1, events=evs)
    without = nowcast_series(_ts(y.size), y.tolist(), lead=1)
    d = (2 + 28) * 24 + 19 - 1  # the hour before the fifth tournament
    a, b = with_ev[d], without[d]
    assert a is not None and b is not None
    assert b.yhat == pytest.approx(200.0, rel=0.02)  # the weekly shape holds it
    assert a.yhat == pytest.approx(200.0, rel=0.05)  # and the event model does not add it again


def test_a_never_seen_kind_uses_its_multiplier_or_is_flagged() -> None:
    s = T0 + timedelta(days=10, hours=19)
    y = np.full(24 * 11, 100.0)
    with_m = EventWindow("other", s, s + timedelta(hours=4), name="spring_cup", multiplier=2.0)
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, events=[with_m])
    fc = out[10 * 24 + 18]
    assert fc is not None and fc.yhat == pytest.approx(200.0, rel=0.01) and not fc.unknown_event
    assert "other spring_cup" in fc.event_note and "x2.00 expected" in fc.event_note
    bare = replace(with_m, multiplier=None)
    fc = nowcast_series(_ts(y.size), y.tolist(), lead=1, events=[bare])[10 * 24 + 18]
    assert fc is not None and fc.unknown_event and fc.yhat == pytest.approx(100.0)
    assert "never seen" in fc.event_note


def test_pre_event_ramp_and_post_event_surge_are_learned() -> None:
    cfg = NowcastConfig(event=EventConfig(smooth=0, floor=0.0))
    evs = [EventWindow("game_update", T0 + timedelta(days=d, hours=9),
                       T0 + timedelta(days=d, hours=11)) for d in (2, 6, 11, 17)]  # fmt: skip
    lifts = [(-1, 1.3), (0, 0.4), (1, 0.4), (2, 2.0), (3, 1.6), (4, 1.3)]  # ramp, dip, surge
    y = _flat_with([(e, lifts) for e in evs], 24 * 19)
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, config=cfg, events=evs)
    s = 17 * 24 + 9
    for k, m in lifts:
        fc = out[s + k - 1]  # made the hour before
        assert fc is not None and fc.yhat == pytest.approx(100 * m, rel=0.03), (k, fc)
    after = out[s + 6 - 1]
    assert after is not None and after.yhat == pytest.approx(100.0, rel=0.03)


def test_a_steep_first_hour_is_not_blurred_into_its_neighbours() -> None:
    """Three earlier tournaments with a ramp (x1.25 the hour before), a first hour at x1.7 and
    x2 after: each hour of the fourth is forecast at its own effect. Pooled with the hours
    around it (the default config before), the first hour read as x2 and the anchored level
    sat too low, so the second hour was forecast at x1.7."""
    starts = [(2, 19), (5, 8), (9, 14), (13, 21), (16, 11)]  # irregular days and hours
    evs = [EventWindow("tournament", T0 + timedelta(days=d, hours=h),
                       T0 + timedelta(days=d, hours=h + 4)) for d, h in starts]  # fmt: skip
    lifts = [(-1, 1.25), (0, 1.7), (1, 2.0), (2, 2.0), (3, 2.0), (4, 1.3)]
    y = _flat_with([(e, lifts) for e in evs], 24 * 18)
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, events=evs)
    s = 16 * 24 + 11
    for k, m in lifts:
        fc = out[s + k - 1]  # made the hour before
        assert fc is not None and fc.yhat == pytest.approx(100 * m, rel=0.03), (k, fc)


def test_project_reads_the_anchored_forecast_for_any_later_hour() -> None:
    """A clean weekly series: the projection of any later hour (one day, three days and a half,
    past the week) is the series' own value there; the lead's own hour is what ``forecast``
    says; projecting changes nothing the forecaster learns."""
    n = 24 * 28
    y = _weekly(n + 24 * 9)
    cfg = NowcastConfig(weekly_weight=1.0, blend="mean")
    nc = Nowcaster(3, cfg)
    for t, v in zip(_ts(n), y[:n], strict=True):
        nc.observe(t, float(v))
    last = T0 + timedelta(hours=n - 1)
    for ahead in (1, 24, 84, 24 * 8 + 5):
        p = nc.project(last + timedelta(hours=ahead))
        assert p is not None and p.shape_source == "weekly" and p.effects == ()
        assert p.yhat == pytest.approx(y[n - 1 + ahead], rel=1e-9)
        assert p.target == last + timedelta(hours=ahead) and p.event_effect == 0.0
    fc = nc.forecast()
    assert fc is not None
    at_lead = nc.project(fc.target)
    assert at_lead is not None and at_lead.yhat == pytest.approx(fc.yhat, rel=1e-12)
    with pytest.raises(ValueError, match="not after the newest observed hour"):
        nc.project(last)
    # the default (max blend) agrees with forecast at its lead too
    dflt = Nowcaster(2)
    for t, v in zip(_ts(n), y[:n], strict=True):
        dflt.observe(t, float(v))
    p2 = dflt.project(last + timedelta(hours=2))
    f2 = dflt.forecast()
    assert p2 is not None and f2 is not None and p2.yhat == pytest.approx(f2.yhat, rel=1e-12)


def test_project_adds_a_known_future_event() -> None:
    """An event days ahead of the newest hour: its expected multiplier inside it, none outside;
    a kind never seen is flagged with no effect."""
    n = 24 * 14
    y = np.full(n, 100.0)
    start = T0 + timedelta(hours=n - 1 + 24 * 3 + 19)
    cup = EventWindow("tournament", start, start + timedelta(hours=3), "cup", multiplier=2.5)
    odd = EventWindow("other", start + timedelta(days=1), start + timedelta(days=1, hours=2))
    nc = Nowcaster(1, events=[cup, odd])
    for t, v in zip(_ts(n), y, strict=True):
        nc.observe(t, float(v))
    inside = nc.project(start + timedelta(hours=1))
    assert inside is not None and inside.yhat == pytest.approx(250.0, rel=1e-6)
    assert [a.source for a in inside.effects] == ["expected"]
    assert "tournament cup" in inside.note and "x2.50 expected" in inside.note
    before = nc.project(start - timedelta(hours=5))
    assert before is not None and before.yhat == pytest.approx(100.0) and before.note == ""
    unknown = nc.project(odd.start)
    assert unknown is not None and unknown.yhat == pytest.approx(100.0)
    assert [a.source for a in unknown.effects] == ["unknown"] and "never seen" in unknown.note


def test_the_event_margin_goes_where_the_risk_is() -> None:
    """The upper bound of an event hour widens by the spread of its kind's earlier effects: a
    kind whose lifts varied gets more than one whose lifts agreed, a kind seen once more
    still, an hour outside events none; inside an event, with the level anchored on its first
    hour, only the change from there is uncertain (narrower)."""
    cfg = NowcastConfig(event=EventConfig(smooth=0, floor=0.0, spread_z=1.0))
    day = timedelta(days=1)

    def at(kind: str, d: int, hour: int) -> EventWindow:
        s = T0 + d * day + timedelta(hours=hour)
        return EventWindow(kind, s, s + timedelta(hours=2), name=f"{kind}{d}")

    steady = [at("tournament", d, 12) for d in (2, 5, 8, 12)]
    erratic = [at("promotion", d, 6) for d in (3, 6, 9, 13)]
    once = [at("holiday", d, 18) for d in (10, 14)]
    lifted = (
        [(e, [(0, 2.0), (1, 2.0)]) for e in steady]
        + [(e, [(0, m), (1, m)]) for e, m in zip(erratic, (1.5, 3.0, 2.0, 2.0), strict=True)]
        + [(e, [(0, 2.0), (1, 2.0)]) for e in once]
    )
    y = _flat_with(lifted, 24 * 15)
    evs = steady + erratic + once
    out = nowcast_series(_ts(y.size), y.tolist(), lead=1, config=cfg, events=evs)
    plain = nowcast_series(_ts(y.size), y.tolist(), lead=1, config=replace(
        cfg, event=EventConfig(smooth=0, floor=0.0)), events=evs)  # fmt: skip

    def margin(e: EventWindow, k: int = 0, series: list | None = None) -> float:
        fc = (series or out)[int((e.start - T0).total_seconds() // 3600) + k - 1]
        assert fc is not None
        return fc.log_margin

    ordinary = out[14 * 24 + 2]
    assert ordinary is not None and ordinary.event_note == ""
    assert margin(once[-1]) > margin(erratic[-1]) > margin(steady[-1]) > ordinary.log_margin
    assert margin(erratic[-1], 1) < margin(erratic[-1])  # anchored inside: the change only
    assert margin(steady[-1]) > margin(steady[-1], series=plain)  # spread_z=0: no event margin
    note = out[int((once[-1].start - T0).total_seconds() // 3600) - 1]
    assert note is not None and "margin +" in note.event_note and "vary by about" in note.event_note
