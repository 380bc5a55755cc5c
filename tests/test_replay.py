"""The replay (models/replay.py): scores, reference formulas, equal-idle pricing, no look-ahead."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.events import EventConfig, EventWindow
from models.nowcast import NowcastConfig
from models.policy import FleetSpec
from models.replay import (
    at_idle,
    reactive_base,
    replay,
    score,
    seasonal_base,
    size,
)

T0 = datetime(2026, 1, 5)  # a Monday


def _spec(unit: float = 10.0, **kw: object) -> FleetSpec:
    return FleetSpec(
        fleet="f",
        game_type="g",
        region="global",
        asg_name="asg-f",
        capacity_players=unit,
        min_size=0,
        max_size=1_000_000,
        **kw,  # type: ignore[arg-type]
    )


def _series(hours: int, seed: int = 3) -> tuple[list[datetime], np.ndarray]:
    """Daily + weekly cycle with multiplicative noise (demand-like)."""
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    daily = np.exp(0.8 * (np.cos(2 * np.pi * (h % 24 - 20) / 24) - 1))
    weekly = 1 + 0.2 * ((h // 24) % 7 >= 5)
    y = np.round(1000 * daily * weekly * np.exp(rng.normal(0, 0.04, hours)))
    return [T0 + timedelta(hours=i) for i in range(hours)], y


# --------------------------------------------------------------------------- scores


def test_score_hand_checked() -> None:
    demand = np.array([10.0, 20.0, 30.0, np.nan, 5.0])
    capacity = np.array([12.0, 20.0, 25.0, 25.0, 10.0])
    s = score(demand, capacity)
    assert s.hours == 4  # the missing hour is not scored
    assert s.hours_short == 1  # 30 > 25; 20 == 20 is served
    assert s.share_short == pytest.approx(0.25)
    assert s.unserved == pytest.approx(5.0)  # 30 - 25
    assert s.idle == pytest.approx(2.0 + 0.0 + 0.0 + 5.0)  # (12-10) + (10-5)
    assert s.changes == 3  # 12->20, 20->25, 25->10 (25->25 is no change)


def test_score_rejects_missing_capacity() -> None:
    with pytest.raises(ValueError, match="capacity has missing hours"):
        score(np.array([1.0, 2.0]), np.array([1.0, np.nan]))


# --------------------------------------------------------------------------- references


def test_reactive_reference_uses_last_observed_demand() -> None:
    y = np.array([5.0, 7.0, np.nan, 4.0, 6.0])
    assert np.isnan(reactive_base(y, 1)[0])
    np.testing.assert_array_equal(reactive_base(y, 1)[1:], [5.0, 7.0, 7.0, 4.0])  # gap: keep 7
    np.testing.assert_array_equal(reactive_base(y, 2)[2:], [5.0, 7.0, 7.0])


def test_seasonal_reference_formula_on_literal_series() -> None:
    # two weeks: value = hour index + 1, so every ratio is easy to check by hand
    y = np.arange(1.0, 2 * 168 + 1)
    lead = 3
    base = seasonal_base(y, lead)
    for t in (171, 200, 300, 335):  # d = t - 3 >= 168
        d = t - lead
        expected = y[d] * y[t - 168] / y[d - 168]
        assert base[t] == pytest.approx(expected)
    # before a week of history: the day-ago ratio (lead <= 24)
    t = 100
    d = t - lead
    assert base[t] == pytest.approx(y[d] * y[t - 24] / y[d - 24])
    # before a day of history: reactive
    assert base[10] == pytest.approx(y[7])


def test_seasonal_reference_after_a_gap_uses_the_hour_of_the_last_observation() -> None:
    y = np.arange(1.0, 2 * 168 + 1)
    y[199] = np.nan
    base = seasonal_base(y, 1)
    # decision at 199 (missing): last observed is hour 198 -> ratio uses 200-168 and 198-168
    assert base[200] == pytest.approx(y[198] * y[200 - 168] / y[198 - 168])


def test_size_rounds_up_to_whole_instances_within_min_max() -> None:
    base = np.array([0.0, 9.0, 10.0, 10.5, np.nan, 1000.0])
    cap = size(base, 0.1, unit=10.0, min_size=1, max_size=50)
    # 0 -> min 1; 9.9 -> 1; 11 -> 2; 11.55 -> 2; unknown -> min; 1100 -> max 50
    np.testing.assert_array_equal(cap, [10.0, 10.0, 20.0, 20.0, 10.0, 500.0])


def test_at_idle_finds_the_smallest_margin_reaching_the_idle() -> None:
    ts, y = _series(24 * 10)
    base = reactive_base(y, 1)[24:]
    dem = y[24:]
    target = score(dem, size(base, 0.25, 1.0, 0, 10**9)).idle
    s = at_idle(base, dem, 1.0, 0, 10**9, target)
    assert s.idle >= target
    assert s.margin is not None and s.margin <= 0.25 + 1e-9
    below = score(dem, size(base, s.margin - 1e-4, 1.0, 0, 10**9))
    assert below.idle < target


# --------------------------------------------------------------------------- the replay


def test_capacity_at_ts_is_the_target_decided_one_lead_earlier_unless_cut_since() -> None:
    """Scale-out arrives one lead after it is sent, scale-in at once: the capacity serving hour
    t is the smallest target decided from t - lead to t."""
    ts, y = _series(24 * 16)
    lead = 2
    start, end = ts[24 * 14], ts[-1]
    r = replay(ts, y, start=start, end=end, spec=_spec(25.0), lead=lead, margin=0.1)
    assert r.frame.height == 24 * 2
    by_time = {d.decided_at: d for d in r.decisions}
    cut_by_scale_in = 0
    for row in r.frame.iter_rows(named=True):
        targets = [by_time[row["ts"] - timedelta(hours=h)].target for h in range(lead, -1, -1)]
        assert row["capacity"] == min(targets) * 25.0
        assert row["capacity"] % 25.0 == 0
        cut_by_scale_in += min(targets) < targets[0]
    assert cut_by_scale_in > 0  # the case is exercised
    # the scores are the scores of the frame's columns
    dem = r.frame["demand"].to_numpy()
    assert r.policy == score(dem, r.frame["capacity"].to_numpy())
    assert r.reactive.idle == score(dem, r.frame["reactive"].to_numpy()).idle


def test_reactive_column_is_last_demand_times_margin_in_instances() -> None:
    ts, y = _series(24 * 9)
    r = replay(ts, y, start=ts[24 * 8], end=ts[-1], spec=_spec(10.0), lead=1, margin=0.2)
    for i, row in enumerate(r.frame.iter_rows(named=True)):
        prev = y[24 * 8 + i - 1]
        assert row["reactive"] == math.ceil(prev * 1.2 / 10.0 - 1e-9) * 10.0


@pytest.mark.parametrize("lead", [1, 3])
def test_no_look_ahead_changing_later_data_changes_no_earlier_decision(lead: int) -> None:
    ts, y = _series(24 * 21)
    start, end = ts[24 * 15], ts[-1]
    cfg = NowcastConfig()
    base = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=lead, config=cfg)
    rng = np.random.default_rng(11)
    for cut in (24 * 16 + 5, 24 * 18 + 17, 24 * 20):
        changed = y.copy()
        changed[cut + 1 :] = changed[cut + 1 :] * rng.uniform(0.2, 3.0, changed.size - cut - 1)
        other = replay(ts, changed, start=start, end=end, spec=_spec(20.0), lead=lead, config=cfg)
        # every decision taken at or before the cut is identical ...
        a = [d for d in base.decisions if d.decided_at <= ts[cut]]
        b = [d for d in other.decisions if d.decided_at <= ts[cut]]
        assert len(a) == len(b) > 0
        for x, z in zip(a, b, strict=True):
            assert (x.target, x.recommended, x.demand_forecast, x.reason) == (
                z.target,
                z.recommended,
                z.demand_forecast,
                z.reason,
            )
        # ... and so is every plan row those decisions set alone (a decision after the cut
        # may scale in at once, so rows up to the cut)
        limit = ts[cut]
        cols = ["ts", "forecast", "upper", "capacity", "reactive", "seasonal"]
        pa = base.frame.filter(base.frame["ts"] <= limit).select(cols)
        pb = other.frame.filter(other.frame["ts"] <= limit).select(cols)
        assert pa.equals(pb)
        # and the change is real: some later decision differs
        later_a = [d.target for d in base.decisions if d.decided_at > ts[cut]]
        later_b = [d.target for d in other.decisions if d.decided_at > ts[cut]]
        assert later_a != later_b


def test_replay_rejects_a_grid_with_gaps() -> None:
    ts, y = _series(48)
    del ts[10]
    with pytest.raises(ValueError, match="hourly grid"):
        replay(ts, y[:-1], start=ts[30], end=ts[-1], spec=_spec(), lead=1)


def test_missing_hours_are_not_scored_and_policy_never_sees_them_as_zero() -> None:
    ts, y = _series(24 * 10)
    y[24 * 9 + 3 : 24 * 9 + 6] = np.nan
    r = replay(ts, y, start=ts[24 * 9], end=ts[-1], spec=_spec(10.0), lead=1)
    assert r.policy.hours == 21
    assert r.frame["capacity"].min() > 0  # a gap never collapses the fleet


def _with_tournaments(hours: int, days: list[float], lift: float = 2.5) -> tuple[
    list[datetime], np.ndarray, list[EventWindow]
]:  # fmt: skip
    """The demand-like series with 3-hour tournaments at irregular days and hours (x lift)."""
    ts, y = _series(hours)
    events = []
    for k, day in enumerate(days):
        s = int(day * 24)
        y[s : s + 3] *= lift
        events.append(EventWindow("tournament", ts[s], ts[s + 3], name=f"cup{k}"))
    return ts, y, events


def test_an_event_row_known_later_changes_no_earlier_decision() -> None:
    """An event is used from when it is known (``announced``): a replay that has the row
    decides exactly as one without it until then, and differently after."""
    ts, y, events = _with_tournaments(24 * 21, [3.3, 7.8, 11.4, 18.6])
    start, end = ts[24 * 15], ts[-1]
    spec = _spec(20.0)
    last = events[-1]
    known = last.start - timedelta(hours=5, minutes=30)
    late = [*events[:-1], replace(last, announced=known)]
    without = replay(ts, y, start=start, end=end, spec=spec, lead=1, events=events[:-1])
    with_late = replay(ts, y, start=start, end=end, spec=spec, lead=1, events=late)
    before = [(d.decided_at, d.target, d.reason) for d in without.decisions if d.decided_at < known]
    after = [
        (d.decided_at, d.target, d.reason) for d in with_late.decisions if d.decided_at < known
    ]
    assert before == after and len(before) > 24
    # known, it changes decisions before the tournament: provisioned ahead of its first hour
    ahead = [
        (a.target, b.target, b.reason)
        for a, b in zip(without.decisions, with_late.decisions, strict=True)
        if known <= a.decided_at < last.start
    ]
    assert any(b > a for a, b, _ in ahead), ahead
    assert any("tournament cup3" in r for _, _, r in ahead)


def test_an_announced_tournament_is_provisioned_before_its_first_hour() -> None:
    """Learned from three earlier tournaments at other days and hours, the fourth's capacity
    is in place at its first hour; without the events it is short there."""
    ts, y, events = _with_tournaments(24 * 21, [3.3, 7.8, 11.4, 18.6])
    start, end = ts[24 * 15], ts[-1]
    spec = _spec(20.0)
    first = events[-1].start
    with_ev = replay(ts, y, start=start, end=end, spec=spec, lead=1, events=events)
    without = replay(ts, y, start=start, end=end, spec=spec, lead=1)
    row = {r["ts"]: r for r in with_ev.frame.iter_rows(named=True)}[first]
    row0 = {r["ts"]: r for r in without.frame.iter_rows(named=True)}[first]
    assert row["capacity"] >= row["demand"] > row0["capacity"]


def test_scale_in_is_held_inside_an_event_of_a_kind_never_seen() -> None:
    """A first launch (kind never seen, no multiplier): no scale-in from one lead before it
    through its first hours (``EventConfig.unknown_hours``), and the reason says so; with an
    expected multiplier the forecast uses it."""
    ts, y = _series(24 * 16)
    start, end = ts[24 * 14], ts[-1]
    s = 24 * 15 + 2  # 02:00, demand falling into the night
    launch = EventWindow("other", ts[s], ts[s + 6], name="launch")
    base = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=1)
    held = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=1, events=[launch])
    hold = EventConfig().unknown_hours
    inside = [d for d in held.decisions if ts[s - 1] <= d.decided_at < ts[s + hold]]
    assert inside and all(d.current is None or d.target >= d.current for d in inside)
    assert any("scale-in held" in d.reason and "never seen" in d.reason for d in inside)
    shrank = [d for d in base.decisions if ts[s - 1] <= d.decided_at < ts[s + hold]]
    assert any(d.current is not None and d.target < d.current for d in shrank)
    # an expected multiplier is used at once: x2 for the launch's first hour, decided one
    # lead before it (later, the level anchors on demand with the effect removed, so a launch
    # that draws less than expected is not provisioned at x2 throughout)
    expected = replace(launch, multiplier=2.0)
    up = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=1, events=[expected])
    at = {d.decided_at: d for d in up.decisions}[ts[s - 1]]
    assert "x2.00 expected" in at.reason
    assert at.target >= 1.8 * {d.decided_at: d for d in base.decisions}[ts[s - 1]].target


def test_a_low_multiplier_for_a_kind_never_seen_never_scales_in() -> None:
    """An events row of a kind never seen with a multiplier below 1 (a maintenance announced
    at x0.3, or a typo): the forecast uses it, but no decision from one lead before the event
    to its end scales in, and the reason says why; without the row the fleet does not shrink
    there either, so every scale-in the row would cause is held."""
    ts, y = _series(24 * 17)
    start, end = ts[24 * 14], ts[-1]
    s = 24 * 15 + 14  # 14:00, demand rising to its evening peak
    quiet = EventWindow("maintenance", ts[s], ts[s + 6], name="patch", multiplier=0.3)
    base = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=1)
    with_row = replay(ts, y, start=start, end=end, spec=_spec(20.0), lead=1, events=[quiet])
    window = [d for d in with_row.decisions if ts[s - 1] <= d.decided_at < ts[s + 6]]
    assert window and all(d.current is None or d.target >= d.current for d in window)
    held = [d for d in window if "scale-in held" in d.reason]
    assert held and all("expected multiplier is below 1" in d.reason for d in held)
    assert all("x0.30 expected" in d.reason for d in held)
    # the row did lower the forecast: the held decisions would have scaled in
    raw = [d for d in held if int(d.reason.split("(not ")[1].split(")")[0]) < d.current]
    assert len(raw) == len(held)
    unheld = {d.decided_at: d for d in base.decisions}
    assert all(unheld[d.decided_at].target >= unheld[d.decided_at].current for d in held)
