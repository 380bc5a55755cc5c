"""The pure capacity policy: literal cases and Hypothesis properties."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from helpers_policy import NOW, H, fleet, forecast, inp, ovr
from hypothesis import given, settings
from hypothesis import strategies as st

from models.policy import (
    Budget,
    ForecastPoint,
    PolicyInput,
    SeriesForecast,
    apply_budget,
    decide,
    processes_per_instance,
)

# --- literal cases -----------------------------------------------------------------------------


def test_sizes_the_window_one_lead_ahead_from_the_upper_quantile_plus_margin() -> None:
    fc = forecast([500, 500, 2000, 500], upper=1.5)  # ts 10:00, 11:00, 12:00, 13:00
    d = decide(
        inp(
            current=5,
            forecasts={"players": fc},
            observed={"players": 400},
            fleet=fleet(lead_time_minutes=120),
        )
    )
    # window 12:00-13:00: upper 3000 x 1.1 = 3300 players -> 33 instances
    assert d.target == 33 and d.demand_forecast == pytest.approx(3300)
    assert "lead 120 min" in d.reason
    d60 = decide(inp(current=5, forecasts={"players": fc}, observed={"players": 400}))
    assert d60.target == 9  # window 11:00: 750 x 1.1 = 825 -> 9


def test_largest_resource_wins_and_network_uses_the_busier_direction() -> None:
    f = fleet(capacity_cpu=8.0, capacity_net_mbps=100.0)
    fcs = {
        "players": forecast([500] * 3),  # 550 -> 6
        "cpu_cores": forecast([80] * 3, metric="cpu_cores"),  # 88 / 8 -> 11
        "net_in_mbps": forecast([100] * 3, metric="net_in_mbps"),
        "net_out_mbps": forecast([1200] * 3, metric="net_out_mbps"),  # 1320 / 100 -> 14
    }
    d = decide(inp(fleet=f, current=5, forecasts=fcs, observed={"players": 100}))
    assert d.target == 14 and "14 instances for 1,320 Mbps (x1.1 margin, 100 Mbps per" in d.reason


def test_reactive_floor_when_forecast_is_low() -> None:
    d = decide(inp(forecasts={"players": forecast([100] * 3)}, observed={"players": 2000}))
    assert d.target == 22 and d.reactive_floor == 22


def test_forecast_alone_never_shrinks_the_fleet() -> None:
    d = decide(inp(current=20, forecasts={"players": forecast([100] * 3)}, observed={}))
    assert d.target == 20 and "no scale-in without observed demand" in d.reason


def test_scale_in_waits_for_a_stabilisation_window_highest_wins() -> None:
    low = {"players": forecast([300] * 3)}
    # no history older than the window yet: hold
    d = decide(inp(current=20, forecasts=low, observed={"players": 300}, history=[]))
    assert d.target == 20 and "history" in d.reason
    # history covers the window: highest recommendation in it (15) wins
    hist = [(NOW - timedelta(minutes=40), 30), (NOW - timedelta(minutes=20), 15)]
    d = decide(inp(current=20, forecasts=low, observed={"players": 300}, history=hist))
    assert d.target == 15 and d.recommended == 4
    hist = [(NOW - timedelta(minutes=40), 30)]
    d = decide(inp(current=20, forecasts=low, observed={"players": 300}, history=hist))
    assert d.target == 4


def test_tolerance_band_holds() -> None:
    f = fleet(tolerance=0.15)  # off by default (docs/performance.md): configured here
    d = decide(inp(fleet=f, current=11, forecasts={"players": forecast([1000] * 3)}))  # wants 11
    assert d.status == "hold"
    d = decide(inp(fleet=f, current=12, forecasts={"players": forecast([1000] * 3)}))
    assert d.target == 12 and "tolerance" in d.reason


def test_step_limits() -> None:
    f = fleet(max_step_up=3, max_step_down=2)
    d = decide(inp(fleet=f, current=10, forecasts={"players": forecast([4000] * 3)}))
    assert d.target == 13 and "step up" in d.reason
    d = decide(
        inp(
            fleet=f, current=10, forecasts={"players": forecast([10] * 3)}, observed={"players": 10}
        )
    )
    assert d.target == 8 and "step down" in d.reason


def test_max_honoured_or_raised_by_a_buffer() -> None:
    fc = {"players": forecast([6000] * 3)}  # 6600 -> 66 instances
    d = decide(inp(fleet=fleet(max_size=50), forecasts=fc))
    assert d.target == 50 and d.unserved_instances == 16 and d.status == "capped"
    d = decide(
        inp(fleet=fleet(max_size=50, max_breach="raise", max_breach_buffer_pct=10), forecasts=fc)
    )
    assert d.target == 66 and d.new_max_size == math.ceil(66 * 1.1) and d.unserved_instances == 0
    # later, the need is back under the max: restore the configured max
    d = decide(inp(fleet=fleet(max_size=50, max_breach="raise"), current_max=73))
    assert d.new_max_size == 50


def test_never_below_busy() -> None:
    d = decide(
        inp(current=20, busy=9, forecasts={"players": forecast([10] * 3)}, observed={"players": 10})
    )
    assert d.target == 9


def test_processes_per_instance_from_per_process_needs() -> None:
    f = fleet(
        capacity_cpu=16.0,
        capacity_memory_gb=64.0,
        capacity_net_mbps=1000.0,
        process_cpu=1.5,
        process_memory_gb=4.0,
        process_net_mbps=50.0,
    )
    assert processes_per_instance(f) == 10  # cpu 10, memory 16, network 20
    assert processes_per_instance(fleet(processes_per_instance=3)) == 3
    assert decide(inp(fleet=f)).processes_per_instance == 10


def test_fail_static_on_each_fault() -> None:
    cases = {
        "stale": dict(forecasts={"players": forecast([100] * 3, created=NOW - 7 * H)}),
        "no forecast": dict(forecasts={}),
        "NaN": dict(forecasts={"players": forecast([100, math.nan, 100])}),
        "negative": dict(forecasts={"players": forecast([100, -5, 100])}),
        "does not cover": dict(forecasts={"players": forecast([100])}),
        "model unloadable": dict(forecast_error="model unloadable: sha256 mismatch"),
        "invalid fleet": dict(fleet=fleet(min_size=5, max_size=2)),
    }
    for word, kw in cases.items():
        d = decide(inp(current=20, observed={"players": 100}, **kw))  # type: ignore[arg-type]
        assert d.status == "fail_static" and d.target == 20, word
        assert word.split()[0] in d.reason, (word, d.reason)
    # reactive floor higher than current: raised
    d = decide(inp(current=5, forecasts={}, observed={"players": 2000}))
    assert d.target == 22 and d.status == "fail_static"


def test_overrides_and_expiry() -> None:
    d = decide(inp(overrides=[ovr("capacity", 30)]))
    assert d.target == 30 and d.status == "override" and "ops call" in d.reason
    d = decide(inp(overrides=[ovr("min", 25)]))
    assert d.target == 25
    d = decide(inp(overrides=[ovr("max", 5)]))
    assert d.target == 5
    d = decide(inp(current=10, overrides=[ovr("multiplier", 2.0)]))
    assert d.target == 22  # 1000 x 2 x 1.1
    expired = ovr("capacity", 30, expires=NOW)
    assert decide(inp(overrides=[expired])).target == decide(inp()).target
    cleared = replace(ovr("capacity", 30), cleared_at=NOW - timedelta(minutes=1))
    assert decide(inp(overrides=[cleared])).target == decide(inp()).target
    other_fleet = replace(ovr("capacity", 30), fleet="other")
    assert decide(inp(overrides=[other_fleet])).target == decide(inp()).target


def test_budget_serves_priority_first_and_reports_the_rest() -> None:
    def d_for(name: str, priority: int, cur: int, want: int) -> object:
        f = fleet(fleet=name, asg_name=name, priority=priority, cost_per_hour=2.0)
        return decide(
            inp(
                fleet=f,
                current=cur,
                forecasts={"players": forecast([want * 100 / 1.1] * 3)},
                observed={"players": 100},
            )
        )

    tour = d_for("tournament", 10, 5, 20)
    ranked = d_for("ranked", 20, 5, 15)
    casual = d_for("casual", 30, 5, 15)
    out = apply_budget([casual, ranked, tour], Budget(max_instances=40))  # type: ignore[list-item]
    got = {d.fleet: d for d in out}
    assert [d.fleet for d in out] == ["casual", "ranked", "tournament"]  # order kept
    assert got["tournament"].target == 20 and got["ranked"].target == 15
    assert got["casual"].target == 5 and got["casual"].unserved_instances == 10
    assert "budget: 10 instances not served" in got["casual"].reason
    out = apply_budget([casual, ranked, tour], Budget(max_cost_per_hour=60.0))  # type: ignore[list-item]
    got = {d.fleet: d for d in out}
    assert (got["tournament"].target, got["ranked"].target, got["casual"].target) == (20, 5, 5)


# --- properties ----------------------------------------------------------------------------


@st.composite
def policy_inputs(draw: st.DrawFn) -> PolicyInput:
    lo = draw(st.integers(0, 20))
    hi = draw(st.integers(lo, 60))
    f = fleet(
        min_size=lo,
        max_size=hi,
        capacity_players=draw(st.sampled_from([10.0, 50.0, 100.0])),
        max_step_up=draw(st.none() | st.integers(1, 10)),
        max_step_down=draw(st.none() | st.integers(1, 10)),
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.2])),
        lead_time_minutes=draw(st.sampled_from([0, 30, 60, 120])),
        max_breach=draw(st.sampled_from(["honour", "raise"])),
        scale_in_stabilisation_minutes=draw(st.sampled_from([0, 30, 60, 120])),
    )
    current = draw(st.integers(lo, hi))
    busy = draw(st.integers(0, current))
    values = draw(st.lists(st.floats(0, 8000, allow_nan=False), min_size=5, max_size=5))
    fc = forecast(values, upper=draw(st.floats(1.0, 1.5)))
    observed = draw(st.none() | st.floats(0, 8000, allow_nan=False))
    hist = draw(st.lists(st.tuples(st.integers(1, 120), st.integers(0, 80)), max_size=4))
    return PolicyInput(
        fleet=f,
        now=NOW,
        current=current,
        busy=busy,
        forecasts={"players": fc},
        observed={} if observed is None else {"players": observed},
        history=[(NOW - timedelta(minutes=m), r) for m, r in hist],
    )


@settings(max_examples=300, deadline=None)
@given(policy_inputs())
def test_property_within_min_max_and_never_below_busy(p: PolicyInput) -> None:
    d = decide(p)
    upper = (
        d.new_max_size
        if d.new_max_size is not None and d.new_max_size > p.fleet.max_size
        else p.fleet.max_size
    )
    assert p.fleet.min_size <= d.target <= upper
    if p.fleet.max_breach == "honour":
        assert d.target <= p.fleet.max_size
    assert d.target >= p.busy


@settings(max_examples=300, deadline=None)
@given(policy_inputs())
def test_property_step_limits_held(p: PolicyInput) -> None:
    d = decide(p)
    assert p.current is not None
    if p.fleet.max_step_up is not None:
        assert d.target - p.current <= p.fleet.max_step_up
    if p.fleet.max_step_down is not None:
        assert p.current - d.target <= p.fleet.max_step_down


@settings(max_examples=300, deadline=None)
@given(policy_inputs(), st.floats(0.0, 1.0))
def test_property_never_scale_in_on_forecast_alone(p: PolicyInput, shrink: float) -> None:
    d = decide(p)
    assert p.current is not None
    if not p.observed:
        assert d.target >= p.current  # no observed demand: never smaller
    else:
        assert d.reactive_floor is not None
        if d.target < p.current:
            assert d.target >= min(d.reactive_floor, d.max_size)
    # a lower forecast never takes the fleet below what observed demand needs
    lower = {
        k: replace(
            v,
            points=tuple(
                replace(pt, yhat=pt.yhat * shrink, upper=pt.upper * shrink) for pt in v.points
            ),
        )
        for k, v in p.forecasts.items()
    }
    d2 = decide(replace(p, forecasts=lower))
    floor = d2.reactive_floor if d2.reactive_floor is not None else p.current
    assert d2.target >= min(floor, p.current, d2.max_size)


@settings(max_examples=200, deadline=None)
@given(
    policy_inputs(),
    st.sampled_from(["capacity", "min", "max", "multiplier"]),
    st.integers(0, 60),
    st.integers(-90, 90),
)
def test_property_overrides_win_until_they_expire(
    p: PolicyInput, kind: str, value: int, expiry_min: int
) -> None:
    value_f = float(value) if kind != "multiplier" else value / 20
    o = ovr(kind, value_f, expires=NOW + timedelta(minutes=expiry_min))
    d = decide(replace(p, overrides=[o]))
    if expiry_min <= 0:  # expired: exactly as if it never existed
        assert d == decide(p)
        return
    if kind == "capacity":
        assert d.target == max(min(value, p.fleet.max_size), p.busy)
    elif kind == "min":
        assert d.target >= min(value, p.fleet.max_size)
    elif kind == "max":
        assert d.target <= max(value, p.busy)
    else:
        assert "override multiplier" in d.reason


def test_oscillating_forecast_gives_bounded_direction_changes() -> None:
    """R2: a forecast that flips every decision must not flip the fleet every decision."""
    f = fleet(min_size=0, scale_in_stabilisation_minutes=60)
    current, history, targets = 10, [], []
    for step in range(24):
        now = NOW + step * timedelta(minutes=15)
        level = 1500.0 if step % 2 else 500.0
        pts = tuple(ForecastPoint(now + h * H, level, level) for h in range(3))
        d = decide(
            PolicyInput(
                fleet=f,
                now=now,
                current=current,
                forecasts={"players": SeriesForecast("players", pts, now)},
                observed={"players": 500.0},
                history=tuple(history),
            )
        )
        history.append((now, d.recommended))
        targets.append(d.target)
        current = d.target
    moves = [b - a for a, b in zip(targets, targets[1:], strict=False) if b != a]
    flips = sum(1 for a, b in zip(moves, moves[1:], strict=False) if (a > 0) != (b > 0))
    assert flips <= 1 and targets[-1] == 17  # up once to the peak, held there


def test_tolerance_band_never_holds_below_observed_need() -> None:
    f = fleet(safety_margin=0.0, tolerance=0.1)
    d = decide(
        inp(
            fleet=f,
            current=10,
            forecasts={"players": forecast([100] * 3)},
            observed={"players": 1050.0},
        )
    )
    assert d.target == 11


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.integers(0, 30), st.integers(0, 30), st.integers(0, 5)),
        min_size=1,
        max_size=5,
    ),
    st.integers(0, 100),
)
def test_property_budget_never_shrinks_and_serves_priority_first(
    fleets_: list[tuple[int, int, int, int]], budget: int
) -> None:
    decisions = []
    for n, (prio, cur, target, busy) in enumerate(fleets_):
        busy = min(busy, cur, target)
        f = fleet(fleet=f"f{n}", asg_name=f"f{n}", priority=prio)
        d = decide(inp(fleet=f, current=cur, busy=busy))
        decisions.append(replace(d, target=target, current=cur, busy=busy, unserved_instances=0))
    out = apply_budget(decisions, Budget(max_instances=budget))
    floors = sum(max(min(d.target, d.current or 0), d.busy) for d in decisions)
    for before, after in zip(decisions, out, strict=True):
        assert min(before.target, before.current or 0) <= after.target <= before.target
        assert after.target >= before.busy
        assert after.unserved_instances == before.target - after.target
    assert sum(d.target for d in out) <= max(budget, floors)
    # once a fleet is short, no fleet of lower priority grows past what it keeps
    ranked = sorted(zip(decisions, out, strict=True), key=lambda p: (p[0].priority, p[0].fleet))
    for i, (_, after) in enumerate(ranked):
        if after.unserved_instances:
            for b, a in ranked[i + 1 :]:
                assert a.target == max(min(b.target, b.current or 0), b.busy)


def test_tolerance_band_never_blocks_scale_up() -> None:
    """The band holds scale-in only: a 10% rise wanted by the forecast is granted."""
    d = decide(
        inp(current=10, forecasts={"players": forecast([1000] * 3)}, observed={"players": 500})
    )
    assert d.target == 11  # 1000 x 1.1 -> 11, within 10% of 10, still granted


def test_reactive_floor_margin_on_the_way_up_bare_need_on_the_way_down() -> None:
    low = {"players": forecast([300] * 3)}
    hist = [(NOW - 2 * H, 5)]
    # below observed x (1 + margin) = 11: raised to it (target tracking)
    d = decide(inp(current=9, forecasts=low, observed={"players": 1000.0}, history=hist))
    assert d.target == 11 and d.reactive_floor == 11
    # above it and the forecast falls: scale in to what observed demand needs now (10), not 11
    d = decide(inp(current=20, forecasts=low, observed={"players": 1000.0}, history=hist))
    assert d.target == 10 and d.reactive_floor == 10


def test_a_60_min_stabilisation_holds_at_an_hourly_cadence() -> None:
    f = fleet(scale_in_stabilisation_minutes=60)  # off by default (docs/performance.md)
    low = {"players": forecast([300] * 3)}
    # the previous hourly decision still wanted 20: hold this hour
    d = decide(
        inp(fleet=f, current=20, forecasts=low, observed={"players": 300}, history=[(NOW - H, 20)])
    )
    assert d.target == 20 and "stabilisation" in d.reason
    # two decisions in a row want 4: scale in
    hist = [(NOW - 2 * H, 20), (NOW - H, 4)]
    d = decide(inp(fleet=f, current=20, forecasts=low, observed={"players": 300}, history=hist))
    assert d.target == 4


def test_a_sub_hour_lead_sizes_every_hour_the_new_capacity_covers() -> None:
    """At 05:20 with a 45-minute lead, capacity sent now serves from 06:05 to the next
    decision's 07:05: the 06:00 hour (a 500-player peak) must be sized, not only 07:00."""
    now = datetime(2024, 5, 1, 5, 20)
    pts = tuple(
        ForecastPoint(datetime(2024, 5, 1, h), v, v)
        for h, v in ((5, 120.0), (6, 500.0), (7, 120.0), (8, 120.0))
    )
    fc = SeriesForecast("players", pts, now - timedelta(minutes=10), "prophet", "run-1")
    d = decide(
        PolicyInput(
            fleet=fleet(lead_time_minutes=45, safety_margin=0.0),
            now=now,
            current=2,
            forecasts={"players": fc},
        )
    )
    assert d.target == 5  # 500 players / 100 per instance, not 120 / 100 -> 2
    # a whole-hour lead at the hour still sizes exactly one hour (07:00 from 06:00)
    d = decide(
        PolicyInput(
            fleet=fleet(lead_time_minutes=60, safety_margin=0.0),
            now=datetime(2024, 5, 1, 6, 0),
            current=2,
            forecasts={"players": fc},
        )
    )
    assert d.target == 2
