"""Edges of the capacity policy that mutation testing (`make mutation`) showed no test pinned:
a budget with a missing current, free or cheap fleets, an override's active window, each
decision's reason and recorded inputs, every fleet-config error, and the bounds of each rule.
Literal cases on the pure functions of models/policy.py."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from helpers_policy import NOW, H, fleet, forecast, ovr
from helpers_policy import inp as policy_input

from models.policy import (
    Budget,
    Decision,
    ForecastPoint,
    Override,
    PolicyInput,
    SeriesForecast,
    active_overrides,
    apply_budget,
    decide,
    instances_for,
    processes_per_instance,
    validate_fleet,
)


def decision(current: int | None, target: int, **kw: object) -> Decision:
    base: dict[str, object] = dict(
        fleet="f", game_type="g", region="eu", asg_name="f-asg", mode="scale", decided_at=NOW,
        current=current, target=target, recommended=target, processes_per_instance=1,
        status="ok", reason="r",
    )  # fmt: skip
    base.update(kw)
    return Decision(**base)  # type: ignore[arg-type]


def test_no_budget_returns_the_decisions_unchanged() -> None:
    ds = [decision(5, 10), decision(3, 1, fleet="g")]
    assert apply_budget(ds, Budget()) == ds
    # a budget large enough changes nothing either (no 'capped', no budget note)
    assert apply_budget(ds, Budget(max_instances=100, max_cost_per_hour=1e6)) == ds


def test_budget_floor_of_an_unread_group_is_its_busy_count() -> None:
    d = decision(None, 5, busy=2)
    [out] = apply_budget([d], Budget(max_instances=3))
    assert (out.target, out.unserved_instances, out.status) == (3, 2, "capped")
    assert "budget: 2 instances not served" in out.reason


def test_cost_budget_with_free_and_cheap_fleets() -> None:
    free = decision(5, 20, fleet="free", cost_per_hour=0.0, priority=1)
    cheap = decision(5, 15, fleet="cheap", cost_per_hour=0.5, priority=2)
    out = {d.fleet: d for d in apply_budget([free, cheap], Budget(max_cost_per_hour=5.0))}
    assert out["free"] == free  # costs nothing: never limited by a cost budget
    # floors cost 2.5 of 5.0; 2.5 left buys 5 more at 0.5 each: 10, not 15
    assert (out["cheap"].target, out["cheap"].unserved_instances) == (10, 5)
    assert replace(out["cheap"], target=15, unserved_instances=0, status="ok", reason="r") == cheap


def test_override_is_active_from_its_creation_until_cleared_or_expired() -> None:
    o = Override("o1", "f", "capacity", 3, "ops", NOW, NOW + timedelta(hours=1))
    assert o.active(NOW)  # in force from the second it is set
    assert not o.active(NOW - timedelta(seconds=1))
    assert not o.active(NOW + timedelta(hours=1))  # expired at its expiry
    cleared = replace(o, cleared_at=NOW + timedelta(minutes=5))
    assert cleared.active(NOW + timedelta(minutes=4))
    assert not cleared.active(NOW + timedelta(minutes=5))  # cleared at that second


# --- what each decision says, exactly -----------------------------------------------------------
# The reason is the operator's only account of a decision (R3): these cases pin it whole, with
# the numbers behind it (capacity 100 players per instance, margin 10%, hourly forecast points).


def inp(**kw: object) -> PolicyInput:
    """These cases forecast three hours."""
    return policy_input(3, **kw)


def fc(n: int, players: str, knobs: str = "x1.1 margin") -> str:
    """The forecast clause: n instances for the players needed (upper x multiplier x 1.1) over
    the window one lead ahead of 10:00, with the forecaster that gave it."""
    return (
        f"{n} instances for {players} players ({knobs}, 100 players per instance) from "
        "2024-05-01 11:00 UTC (lead 60 min); forecast: prophet"
    )


def test_scale_up_reason_and_every_recorded_input() -> None:
    # window 11:00-12:00 holds only the 11:00 point: 1500 x 1.1 = 1650 -> 17; observed 900 x
    # 1.1 = 990 -> 10 <= current, so the floor is the bare need: 900 -> 9
    d = decide(inp(forecasts={"players": forecast([1000, 1500, 3000])}, observed={"players": 900}))
    assert (d.target, d.recommended, d.status, d.reactive_floor) == (17, 17, "ok", 9)
    assert d.demand_forecast == pytest.approx(1650)
    assert (
        d.reason == f"10 -> 17 (+7): {fc(17, '1,650')}; observed demand needs 9 instances (players)"
    )
    assert d.inputs == {
        "now": "2024-05-01T10:00:00", "current": 10, "current_max": None, "busy": 0,
        "observed": {"players": 900}, "forecast_runs": {"players": "run-1"},
        "forecast_models": {"players": "prophet"}, "needs": {"players": 17},
        "reactive_needs": {"players": 9}, "multiplier": 1.0, "overrides": [], "history": 1,
        "fail": None, "window_start": "2024-05-01T11:00:00", "window_end": "2024-05-01T12:00:00",
        "required_players": 1650.0,
    }  # fmt: skip
    assert (d.fleet, d.game_type, d.region, d.asg_name, d.mode, d.decided_at) == (
        "br-eu", "battle_royale", "eu", "br-eu-asg", "scale", NOW
    )  # fmt: skip
    assert (d.min_size, d.max_size, d.new_max_size, d.unserved_instances) == (1, 50, None, 0)
    assert (d.priority, d.cost_per_hour, d.processes_per_instance) == (100, 0.0, 1)


def test_hold_with_busy_instances_and_an_unknown_current() -> None:
    d = decide(inp(busy=3, observed={"players": 900}, forecasts={"players": forecast([900] * 3)}))
    assert (d.target, d.status, d.busy) == (10, "hold", 3)
    assert d.reason == (
        f"10 -> 10 (+0): {fc(10, '990')}; observed demand needs 9 instances (players); "
        "3 busy instances kept"
    )
    d = decide(inp(current=None, forecasts={"players": forecast([500] * 3)}, observed={}))
    assert (d.target, d.status, d.current, d.reactive_floor) == (6, "ok", None, None)
    assert d.reason == f"? -> 6: {fc(6, '550')}; no observed demand"
    # busy instances above the need: kept, and said so
    d = decide(inp(busy=14, forecasts={"players": forecast([500] * 3)}, observed={}))
    assert (d.target, d.recommended, d.status, d.busy) == (14, 14, "ok", 14)
    assert d.reason.startswith(f"10 -> 14 (+4): {fc(6, '550')}")
    assert d.reason.endswith("; no observed demand; 14 busy instances kept")
    assert decide(inp(busy=-2)).busy == 0


def test_capped_at_the_max_with_a_multiplier_override() -> None:
    d = decide(inp(fleet=fleet(max_size=8), current=8, overrides=[ovr("multiplier", 2.0)]))
    # 1000 x 2 x 1.1 = 2200 -> 22, max 8: 14 not served
    assert (d.target, d.recommended, d.status, d.unserved_instances) == (8, 22, "capped", 14)
    assert d.reason == (
        f"8 -> 8 (+0): {fc(22, '2,200', 'x1.1 margin, x2 override')}; "
        "observed demand needs 11 instances (players); capped at max 8; "
        "14 instances not served (max 8); "
        "override multiplier=2 until 2024-05-01 11:00 (ops call)"
    )
    assert d.inputs["multiplier"] == 2.0 and d.inputs["overrides"] == ["o1"]
    # a multiplier that is not a finite non-negative number is ignored
    for bad in (-1.0, math.inf, math.nan):
        assert decide(inp(overrides=[ovr("multiplier", bad)])).inputs["multiplier"] == 1.0
    assert decide(inp(overrides=[ovr("multiplier", 0.0)])).inputs["multiplier"] == 0.0


def test_max_raised_on_a_breach_then_restored() -> None:
    raising = fleet(max_size=8, max_breach="raise", max_breach_buffer_pct=10.0)
    d = decide(inp(fleet=raising, current=8))
    # need 11 > max 8: the max goes to ceil(11 x 1.1) = 13
    assert (d.target, d.max_size, d.new_max_size, d.status) == (11, 13, 13, "ok")
    assert d.reason == (
        f"8 -> 11 (+3): {fc(11, '1,100')}; observed demand needs 11 instances (players); "
        "max raised to 13 (need 11 > max 8)"
    )
    # a buffer of 0: the max is exactly the need
    assert decide(inp(fleet=replace(raising, max_breach_buffer_pct=0.0))).new_max_size == 11
    # the breach is over (need 11 <= 20, current 12 <= 20) and MaxSize is still 25: restore
    d = decide(inp(fleet=fleet(max_size=20, max_breach="raise"), current=12, current_max=25))
    assert (d.target, d.new_max_size) == (11, 20)
    assert d.reason.endswith("; observed demand needs 10 instances (players); max restored to 20")
    restoring = dict(fleet=fleet(max_size=11, max_breach="raise"), current=11, current_max=25)
    assert decide(inp(**restoring)).new_max_size == 11  # need 11 == max 11: over too
    # not while the current is above the configured max, nor with a max override
    assert decide(inp(**{**restoring, "current": 12})).new_max_size is None
    assert decide(inp(**restoring, overrides=[ovr("max", 30)])).new_max_size is None
    assert decide(inp(**{**restoring, "current_max": 11})).new_max_size is None  # not raised
    honour = fleet(max_size=11)
    assert decide(inp(fleet=honour, current=11, current_max=25)).new_max_size is None
    # a human's bound wins over the breach rule: no raise with a max or capacity override
    assert decide(inp(fleet=raising, current=8, overrides=[ovr("max", 9)])).new_max_size is None
    d = decide(inp(fleet=raising, current=8, overrides=[ovr("capacity", 9)]))
    assert (d.new_max_size, d.target) == (None, 8)
    # nor on fail-static
    assert decide(inp(fleet=raising, current=8, forecasts={})).new_max_size is None


def test_fail_static_reasons_and_bounds() -> None:
    nf = "fail-static: no forecast for players"
    d = decide(inp(current=3, forecasts={}, fleet=fleet(min_size=5, max_size=9)))
    # keeps 3, raised to the reactive floor 1000 x 1.1 -> 11, capped at 9
    assert (d.target, d.recommended, d.status, d.unserved_instances) == (9, 11, "fail_static", 2)
    assert (
        d.reason == f"3 -> 9 (+6): {nf}; keep 3, raised to the reactive floor 11; capped at max 9"
    )
    assert d.inputs["fail"] == "no forecast for players" and d.demand_forecast is None
    d = decide(inp(current=12, forecasts={}, observed={"players": 100}, fleet=fleet(max_size=9)))
    assert (d.target, d.recommended) == (9, 12)
    assert d.reason == f"12 -> 9 (-3): {nf}; keep 12; capped at max 9"
    d = decide(inp(current=2, forecasts={}, observed={}, fleet=fleet(min_size=4)))
    assert d.target == 4 and d.reason == f"2 -> 4 (+2): {nf}; keep 2; raised to min 4"
    d = decide(inp(current=None, forecasts={}, observed={}, fleet=fleet(min_size=4)))
    assert d.target == 4 and d.reason == f"? -> 4: {nf}; keep 4"
    d = decide(inp(current=6, forecasts={}, observed={"players": 500}))
    assert (d.target, d.status) == (6, "fail_static")
    assert d.reason == f"6 -> 6 (+0): {nf}; keep 6"  # the floor (6) does not raise it
    # an invalid config: keep, even outside its (suspect) bounds
    d = decide(inp(current=12, fleet=fleet(min_size=5, max_size=2)))
    assert (d.target, d.status, d.min_size, d.max_size) == (12, "fail_static", 2, 2)
    assert d.reason == (
        "12 -> 12 (+0): fail-static: invalid fleet config: max_size 2 < min_size 5; keep 12"
    )
    assert d.inputs["needs"] == {} and "window_start" not in d.inputs
    d = decide(inp(current=1, fleet=fleet(min_size=5, max_size=2)))
    assert d.target == 11  # the reactive floor (1000 x 1.1) still holds


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        (dict(forecasts={"players": forecast([100] * 3, created=NOW - 7 * H)}),
         "forecast of players is stale (7.0 h old, limit 6.0 h)"),
        (dict(forecasts={"players": forecast([100] * 3, problem="every model refused")}),
         "forecast of players not trusted: every model refused"),
        (dict(forecasts={"players": forecast([100])}),
         "forecast of players does not cover 2024-05-01 11:00"),
        (dict(forecasts={"players": forecast([100, -1, 100])}),
         "forecast of players at 2024-05-01 11:00 is NaN or negative"),
        (dict(forecasts={"players": forecast([100, math.nan, 100])}),
         "forecast of players at 2024-05-01 11:00 is NaN or negative"),
        (dict(forecast_error="model unloadable"), "model unloadable"),
        (dict(forecasts={"players": forecast([100] * 3),
                         "cpu_cores": forecast([1] * 3, "cpu_cores", problem="x")},
              fleet=fleet(capacity_cpu=8.0)),
         "forecast of cpu_cores not trusted: x"),
    ],
)  # fmt: skip
def test_each_forecast_fault_is_named(kw: dict[str, object], why: str) -> None:
    d = decide(inp(current=20, observed={"players": 100}, **kw))
    assert d.reason == f"20 -> 20 (+0): fail-static: {why}; keep 20"
    assert d.status == "fail_static" and d.inputs["fail"] == why


def test_a_forecast_exactly_at_the_age_limit_is_used() -> None:
    fresh = forecast([100] * 3, created=NOW - 6 * H)
    assert decide(inp(forecasts={"players": fresh})).status != "fail_static"
    d = decide(inp(forecasts={"players": fresh}, max_forecast_age=timedelta(hours=5)))
    assert "stale (6.0 h old, limit 5.0 h)" in d.reason
    # a forecast without a creation time has no age to check
    undated = forecast([100] * 3, created=None)
    assert decide(inp(forecasts={"players": undated}, max_forecast_age=timedelta(0))).status == "ok"
    assert decide(inp(forecasts={"players": fresh}, max_forecast_age=timedelta(0))).status == (
        "fail_static"
    )


def test_capacity_override_capped_at_the_max() -> None:
    d = decide(inp(current=12, overrides=[ovr("capacity", 70)]))
    assert (d.target, d.status, d.unserved_instances) == (50, "override", 0)
    assert d.reason == (
        "12 -> 50 (+38): capacity override 70 capped at max 50; "
        "override capacity=70 until 2024-05-01 11:00 (ops call)"
    )
    d = decide(inp(current=12, overrides=[ovr("capacity", 6.6)]))
    assert d.target == 7 and d.reason.startswith("12 -> 7 (-5): capacity override 7; override")
    assert decide(inp(overrides=[ovr("capacity", -3)])).target == 0
    d = decide(inp(busy=4, overrides=[ovr("capacity", 2)]))
    assert d.target == 4 and "capacity override 2; raised to the 4 busy instances" in d.reason


def test_min_and_max_overrides_bound_the_target() -> None:
    d = decide(inp(overrides=[ovr("min", 25)]))
    assert (d.target, d.min_size) == (25, 25) and "; raised to min 25" in d.reason
    d = decide(inp(overrides=[ovr("max", 5)]))
    assert (d.target, d.max_size, d.status) == (5, 5, "capped")
    assert "; capped at max 5; 6 instances not served (max 5)" in d.reason
    d = decide(inp(overrides=[ovr("max", -4)]))  # a negative max means 0, and so the min
    assert (d.target, d.max_size, d.min_size) == (0, 0, 0)
    d = decide(inp(overrides=[ovr("min", -4)]))
    assert d.min_size == 0
    d = decide(inp(overrides=[ovr("min", 60)]))  # never above the max
    assert (d.target, d.min_size) == (50, 50)


def test_step_limits_in_the_reason() -> None:
    d = decide(inp(fleet=fleet(max_step_up=2), forecasts={"players": forecast([3000] * 3)}))
    assert (d.target, d.recommended, d.unserved_instances, d.status) == (12, 33, 21, "ok")
    assert d.reason.endswith(
        "; observed demand needs 11 instances (players); step up limited to +2"
    )
    assert decide(inp(fleet=fleet(max_step_up=23), forecasts={"players": forecast([3000] * 3)})
                  ).target == 33  # fmt: skip
    down = fleet(max_step_down=3, scale_in_stabilisation_minutes=0)
    low = {"players": forecast([300] * 3)}
    d = decide(inp(fleet=down, current=30, forecasts=low, observed={"players": 300}))
    assert (d.target, d.recommended) == (27, 4)
    assert d.reason.endswith(
        "; observed demand needs 3 instances (players); step down limited to -3"
    )
    d = decide(inp(fleet=replace(down, max_step_down=26), current=30, forecasts=low,
                   observed={"players": 300}))  # fmt: skip
    assert d.target == 4 and "step down" not in d.reason
    # no step limit when the current is unknown
    d = decide(
        inp(fleet=fleet(max_step_up=2), current=None, forecasts={"players": forecast([3000] * 3)})
    )
    assert d.target == 33


def test_scale_in_guards_in_the_reason() -> None:
    low = {"players": forecast([300] * 3)}
    d = decide(inp(current=20, forecasts=low, observed={"players": 300}, history=[]))
    assert (d.target, d.status) == (20, "hold")
    assert d.reason.endswith(
        "; observed demand needs 3 instances (players); no scale-in before a 30 min history"
    )
    # a history exactly one window old counts; the highest recommendation in the window wins
    hist = [(NOW - timedelta(minutes=30), 9), (NOW - timedelta(minutes=10), 15)]
    d = decide(inp(current=20, forecasts=low, observed={"players": 300}, history=hist))
    assert (d.target, d.status) == (15, "ok")
    assert d.reason.endswith(
        "; observed demand needs 3 instances (players); stabilisation keeps 15"
    )
    d = decide(inp(current=20, forecasts=low, observed={"players": 300},
                   history=[(NOW - timedelta(minutes=30), 9), (NOW, 25)]))  # fmt: skip
    assert d.target == 20 and d.reason.endswith("; stabilisation keeps 20")  # never above base
    # an older recommendation is outside the window
    d = decide(inp(current=20, forecasts=low, observed={"players": 300},
                   history=[(NOW - timedelta(minutes=31), 18)]))  # fmt: skip
    assert d.target == 4 and "stabilisation" not in d.reason
    # the tolerance band: a cut of at most tolerance x current is not made
    band = fleet(tolerance=0.2, scale_in_stabilisation_minutes=0)
    d = decide(inp(fleet=band, current=10, forecasts={"players": forecast([600] * 3)},
                   observed={"players": 600}))  # fmt: skip
    assert d.target == 7 and "tolerance" not in d.reason  # 600 x 1.1 -> 7: a cut of 3 > 20%
    d = decide(inp(fleet=band, current=10, forecasts={"players": forecast([700] * 3)},
                   observed={"players": 700}))  # fmt: skip
    assert (d.target, d.status) == (10, "hold")  # 770 -> 8: a cut of 2 is within 20%
    assert d.reason.endswith(
        "; observed demand needs 7 instances (players); within the 20% tolerance band"
    )


def test_extra_resources_forecast_and_observed() -> None:
    f = fleet(capacity_cpu=8.0, capacity_memory_gb=16.0, capacity_net_mbps=100.0)
    observed = {"players": 100, "cpu_cores": 80.0, "memory_gb": math.nan, "net_in_mbps": -1.0,
                "net_out_mbps": 500.0}  # fmt: skip
    d = decide(inp(fleet=f, current=5, forecasts={"players": forecast([100] * 3)},
                   observed=observed))  # fmt: skip
    # only players is forecast; observed: cpu 80 x 1.1 / 8 -> 11, net out 550 / 100 -> 6,
    # memory NaN and the negative net in are ignored
    assert d.inputs["reactive_needs"] == {"players": 2, "cpu": 11, "net": 6}
    assert d.inputs["needs"] == {"players": 2} and d.target == 11
    assert d.reason.endswith("; observed demand needs 11 instances (cpu)")
    fcs = {"players": forecast([100] * 3), "memory_gb": forecast([40] * 3, "memory_gb")}
    d = decide(inp(fleet=f, current=1, forecasts=fcs, observed={}))
    assert d.inputs["needs"] == {"players": 2, "memory": 3}  # 44 / 16 -> 3
    assert d.inputs["required_memory"] == 44.0 and d.demand_forecast == pytest.approx(110)
    assert d.reason.startswith(
        "1 -> 3 (+2): 3 instances for 44 GB (x1.1 margin, 16 GB per instance) from 2024-05-01 "
        "11:00 UTC (lead 60 min); forecast: prophet;"
    )
    # demand not observed (NaN or negative players): no reactive floor at all
    for bad in (math.nan, -1.0):
        d = decide(inp(current=5, observed={"players": bad, "cpu_cores": 80.0}, fleet=f))
        assert d.reactive_floor is None and d.inputs["reactive_needs"] == {}


def test_validate_fleet_names_every_problem() -> None:
    nan = math.nan
    bad = fleet(capacity_players=0.0, min_size=-1, max_size=-2, capacity_cpu=nan,
                capacity_memory_gb=1.0, capacity_net_mbps=math.inf, process_cpu=0.0,
                process_memory_gb=2.0, process_net_mbps=nan, processes_per_instance=0,
                lead_time_minutes=-1, window_minutes=0, safety_margin=-0.1, mode="x",
                max_breach="y", max_breach_buffer_pct=-1.0, max_step_up=0, max_step_down=0,
                tolerance=1.0, service_level=1.0)  # fmt: skip
    assert validate_fleet(bad) == [
        "min_size -1 < 0",
        "max_size -2 < min_size -1",
        "capacity_players must be > 0 (got 0.0)",
        "capacity of players must be a positive number (got 0.0)",
        "capacity of cpu must be a positive number (got nan)",
        "capacity of net must be a positive number (got inf)",
        "mode 'x' not in ('forecast_only', 'scale')",
        "max_breach 'y' not in ('honour', 'raise')",
        "safety_margin must be >= 0 (got -0.1)",
        "lead_time_minutes must be >= 0 and window_minutes > 0",
        "max_step_up must be >= 1 or empty (got 0)",
        "max_step_down must be >= 1 or empty (got 0)",
        "tolerance must be in [0, 1) (got 1.0)",
        "service_level must be in (0, 1) (got 1.0)",
        "max_breach_buffer_pct must be >= 0",
        "processes_per_instance must be >= 1",
        "process cpu need must be > 0 (got 0.0)",
        "one process needs more memory (2.0) than an instance has (1.0)",
        "process net need must be > 0 (got nan)",
    ]
    # every bound itself is valid
    edge = fleet(capacity_players=1e-9, min_size=0, max_size=0, capacity_cpu=2.0, process_cpu=2.0,
                 lead_time_minutes=0, window_minutes=1, safety_margin=0.0,
                 max_breach_buffer_pct=0.0, max_step_up=1, max_step_down=1, tolerance=0.0,
                 service_level=0.01, processes_per_instance=1, max_breach="raise",
                 mode="forecast_only")  # fmt: skip
    assert validate_fleet(edge) == []
    one = {
        "lead_time_minutes must be >= 0 and window_minutes > 0": [
            dict(lead_time_minutes=-1), dict(window_minutes=0)],
        "safety_margin must be >= 0 (got nan)": [dict(safety_margin=nan)],
        "safety_margin must be >= 0 (got inf)": [dict(safety_margin=math.inf)],
        "tolerance must be in [0, 1) (got -0.1)": [dict(tolerance=-0.1)],
        "service_level must be in (0, 1) (got 0)": [dict(service_level=0)],
        "service_level must be in (0, 1) (got 0.95)": [dict(service_level="0.95")],
        "min_size -1 < 0": [dict(min_size=-1)],
        "process cpu need must be > 0 (got -1.0)": [dict(process_cpu=-1.0)],
        "process memory need must be > 0 (got inf)": [dict(process_memory_gb=math.inf)],
        "one process needs more cpu (9.0) than an instance has (8.0)": [
            dict(capacity_cpu=8.0, process_cpu=9.0)],
        "one process needs more net (9.0) than an instance has (8.0)": [
            dict(capacity_net_mbps=8.0, process_net_mbps=9.0)],
    }  # fmt: skip
    for error, variants in one.items():
        for kw in variants:
            assert validate_fleet(fleet(**kw)) == [error], kw
    assert validate_fleet(fleet(process_cpu=9.0)) == []  # no instance cpu to compare with


def test_processes_per_instance_and_instances_for() -> None:
    assert processes_per_instance(fleet(capacity_cpu=1.0, process_cpu=1 / 3)) == 3  # not 2
    assert processes_per_instance(fleet(processes_per_instance=4)) == 4
    assert processes_per_instance(fleet(processes_per_instance=0)) == 1
    tight = fleet(capacity_cpu=8.0, process_cpu=2.0, capacity_memory_gb=16.0,
                  process_memory_gb=6.0, capacity_net_mbps=100.0,
                  process_net_mbps=10.0)  # fmt: skip
    assert processes_per_instance(tight) == 2  # memory: 16 / 6
    assert processes_per_instance(replace(tight, process_memory_gb=None)) == 4  # cpu
    assert processes_per_instance(replace(tight, process_memory_gb=None, process_cpu=None)) == 10
    assert processes_per_instance(fleet(capacity_cpu=1.0, process_cpu=2.0)) == 1  # at least 1
    assert processes_per_instance(fleet(process_cpu=2.0, processes_per_instance=3)) == 3
    assert processes_per_instance(fleet(capacity_cpu=4.0, process_cpu=0.0, processes_per_instance=3)
                                  ) == 3  # fmt: skip
    assert decide(inp(fleet=tight)).processes_per_instance == 2
    assert [instances_for(x, 100.0) for x in (0, -5, 100, 100 + 1e-8, 100.5, 201)] == [
        0, 0, 1, 1, 2, 3]  # fmt: skip
    assert instances_for(0.3, 0.1) == 3  # 0.3 / 0.1 is 2.9999999999999996


def test_newest_active_override_of_a_kind_wins() -> None:
    old = Override("a", "br-eu", "capacity", 5, "old", NOW - 2 * H, NOW + H)
    new = Override("b", "br-eu", "capacity", 7, "new", NOW - H, NOW + H)
    other = Override("c", "other", "capacity", 9, "x", NOW, NOW + H)
    assert active_overrides([new, old, other], "br-eu", NOW) == {"capacity": new}
    assert active_overrides([new, old], "br-eu", NOW - H - H / 2) == {"capacity": old}
    assert active_overrides([new, old], "other", NOW) == {}
    d = decide(inp(overrides=[new, old]))
    assert d.target == 7 and d.inputs["overrides"] == ["b"]


def test_budget_reason_and_cost_shares() -> None:
    [out] = apply_budget([decision(5, 12, priority=7)], Budget(max_instances=8))
    assert (out.target, out.unserved_instances, out.status) == (8, 4, "capped")
    assert out.reason == "r; budget: 4 instances not served (priority 7), target 12 -> 8"
    a = decision(2, 6, fleet="a", cost_per_hour=1.5)
    b = decision(2, 6, fleet="b", cost_per_hour=1.5)

    def targets(budget: Budget) -> list[int]:
        return [d.target for d in apply_budget([a, b], budget)]

    assert targets(Budget(max_cost_per_hour=9.0)) == [4, 2]  # floors cost 6: 3 buys 2 more
    assert targets(Budget(max_cost_per_hour=7.5)) == [3, 2]
    assert targets(Budget(max_cost_per_hour=3.0)) == [2, 2]  # never below the floors
    assert targets(Budget(max_instances=3, max_cost_per_hour=100.0)) == [2, 2]
    assert targets(Budget(max_instances=5, max_cost_per_hour=100.0)) == [3, 2]
    assert targets(Budget(max_instances=100, max_cost_per_hour=100.0)) == [6, 6]
    # both limits: each grant is the smaller (3 instances left, but 3.0 left buys only 2)
    assert targets(Budget(max_instances=7, max_cost_per_hour=9.0)) == [4, 2]
    tenth = decision(0, 10, fleet="t", cost_per_hour=0.1)
    assert apply_budget([tenth], Budget(max_cost_per_hour=0.3))[0].target == 3
    # ties in priority are served by fleet name
    x, y = decision(0, 4, fleet="y"), decision(0, 4, fleet="x")
    assert [d.target for d in apply_budget([x, y], Budget(max_instances=5))] == [1, 4]
    # a fleet that shrinks keeps its lower target, and frees nothing for others
    shrink = decision(8, 3, fleet="s", priority=1)
    grow = decision(0, 10, fleet="g", priority=2)
    assert [d.target for d in apply_budget([shrink, grow], Budget(max_instances=5))] == [3, 2]


def test_zero_demand_is_demand_not_a_fault() -> None:
    for level in (0.0, 0.5):
        d = decide(inp(forecasts={"players": forecast([level] * 3)}, observed={"players": level},
                       fleet=fleet(min_size=0, scale_in_stabilisation_minutes=0)))  # fmt: skip
        assert (d.status, d.target, d.reactive_floor) == ("ok", 1 if level else 0, d.target)


def test_a_point_is_bad_when_either_its_mean_or_its_upper_is() -> None:
    for yhat, upper in ((math.nan, 100.0), (100.0, math.nan), (-1.0, 100.0), (100.0, -1.0)):
        pts = tuple(ForecastPoint(NOW + h * H, yhat, upper) for h in range(3))
        fc = SeriesForecast("players", pts, NOW - H, "prophet", "run-1")
        d = decide(inp(forecasts={"players": fc}))
        assert d.status == "fail_static" and "is NaN or negative" in d.reason, (yhat, upper)


def test_the_forecast_grid_sets_each_point_period() -> None:
    # half-hourly points: 10:30 stands for 10:30-11:00, outside the 11:00-12:00 window
    pts = tuple(
        ForecastPoint(NOW + m * timedelta(minutes=30), v, v)
        for m, v in enumerate((100.0, 5000.0, 200.0, 300.0, 100.0))
    )
    fc = SeriesForecast("players", pts, NOW - H, "prophet", "run-1")
    d = decide(inp(forecasts={"players": fc}, observed={}, current=1))
    assert d.demand_forecast == pytest.approx(330)  # max(200, 300) x 1.1, not 5000
    # a repeated timestamp is no grid step: the grid stays hourly
    pts = (ForecastPoint(NOW, 1, 1), ForecastPoint(NOW + H, 700, 700),
           ForecastPoint(NOW + H, 700, 700))  # fmt: skip
    fc = SeriesForecast("players", pts, NOW - H, "prophet", "run-1")
    d = decide(inp(forecasts={"players": fc}, observed={}, current=1))
    assert (d.status, d.demand_forecast) == ("ok", pytest.approx(770))


def test_scale_in_guards_need_observed_demand_and_a_whole_window() -> None:
    low = {"players": forecast([300] * 3)}
    d = decide(inp(current=20, forecasts=low, observed={}))
    assert d.target == 20 and d.reason == (
        f"20 -> 20 (+0): {fc(4, '330')}; no observed demand; no scale-in without observed demand"
    )
    # a recent history is not a whole window
    d = decide(inp(current=20, forecasts=low, observed={"players": 300},
                   history=[(NOW - timedelta(minutes=10), 20)]))  # fmt: skip
    assert d.target == 20 and d.reason.endswith("; no scale-in before a 30 min history")
    # no stabilisation window: scale in at once, even with no history at all
    d = decide(inp(fleet=fleet(scale_in_stabilisation_minutes=0), current=20, forecasts=low,
                   observed={"players": 300}, history=[]))  # fmt: skip
    assert d.target == 4 and d.reason.endswith("; observed demand needs 3 instances (players)")


def test_one_instance_short_of_a_budget_is_reported() -> None:
    [out] = apply_budget([decision(5, 7)], Budget(max_instances=6))
    assert (out.target, out.unserved_instances, out.status) == (6, 1, "capped")
    assert out.reason == "r; budget: 1 instances not served (priority 100), target 7 -> 6"


def test_network_sized_from_whichever_direction_is_forecast() -> None:
    f = fleet(capacity_net_mbps=100.0)
    fcs = {"players": forecast([100] * 3), "net_out_mbps": forecast([950] * 3, "net_out_mbps")}
    d = decide(inp(fleet=f, current=1, forecasts=fcs, observed={}))
    assert d.inputs["needs"] == {"players": 2, "net": 11}  # no net_in forecast: net_out sizes it
    assert d.inputs["required_net"] == pytest.approx(1045)


def test_recorded_required_demand_is_rounded_to_three_places() -> None:
    d = decide(inp(forecasts={"players": forecast([1122.3434] * 3)}))
    assert d.inputs["required_players"] == 1234.578  # 1122.3434 x 1.1 = 1234.57774
    assert d.demand_forecast == pytest.approx(1234.57774)


def test_stale_forecast_ages_in_hours_to_one_place() -> None:
    extra = timedelta(minutes=3, seconds=1)
    fc = forecast([100] * 3, created=NOW - 7 * H - extra)
    d = decide(inp(forecasts={"players": fc}, max_forecast_age=6 * H + extra))
    assert "forecast of players is stale (7.1 h old, limit 6.1 h)" in d.reason


def test_every_config_error_is_in_the_fail_static_reason() -> None:
    d = decide(inp(fleet=fleet(min_size=-1, tolerance=2.0), observed={}))
    assert d.reason == (
        "10 -> 10 (+0): fail-static: invalid fleet config: min_size -1 < 0; "
        "tolerance must be in [0, 1) (got 2.0); keep 10"
    )
    assert d.demand_forecast is None and d.inputs["needs"] == {}


def test_bounds_met_exactly_are_not_reported_as_limits() -> None:
    # the need (11) is exactly the min and the max: neither capped nor raised
    d = decide(inp(fleet=fleet(min_size=11, max_size=11)))
    assert (
        d.reason
        == f"10 -> 11 (+1): {fc(11, '1,100')}; observed demand needs 11 instances (players)"
    )
    # the step limit met exactly: not limited
    d = decide(inp(fleet=fleet(max_step_up=1)))
    assert d.target == 11 and "step up" not in d.reason
    # the need equals the current without observed demand: a hold, no scale-in guard
    d = decide(inp(current=6, forecasts={"players": forecast([500] * 3)}, observed={}))
    assert d.reason == f"6 -> 6 (+0): {fc(6, '550')}; no observed demand"
    # fail-static at the max, and at a reactive floor equal to the current
    d = decide(inp(current=9, forecasts={}, observed={}, fleet=fleet(max_size=9)))
    assert d.reason == "9 -> 9 (+0): fail-static: no forecast for players; keep 9"
    d = decide(inp(current=10, forecasts={}, fleet=fleet(safety_margin=0.0)))
    assert d.reactive_floor == 10
    assert d.reason == "10 -> 10 (+0): fail-static: no forecast for players; keep 10"


def test_raised_to_min_and_several_overrides_in_the_reason() -> None:
    mn = Override("a", "br-eu", "min", 25, "event", NOW - 2 * H, NOW + H)
    mult = Override("b", "br-eu", "multiplier", 1.5, "promo", NOW - H, NOW + 2 * H)
    d = decide(inp(overrides=[mult, mn]))
    # 1000 x 1.5 x 1.1 = 1650 -> 17, raised to the min 25
    assert d.reason == (
        f"10 -> 25 (+15): {fc(17, '1,650', 'x1.1 margin, x1.5 override')}; "
        "observed demand needs 11 instances (players); raised to min 25; "
        "override min=25 until 2024-05-01 11:00 (event); "
        "override multiplier=1.5 until 2024-05-01 12:00 (promo)"
    )
    assert d.inputs["overrides"] == ["a", "b"]


def test_zero_needs_and_busy_floors_in_the_recommendation() -> None:
    zero = fleet(min_size=0)
    # no forecast, nothing observed, nothing running: 0 recommended, 0 kept, nothing unserved
    d = decide(inp(fleet=zero, current=0, forecasts={}, observed={"players": 0.0}))
    assert (d.target, d.recommended, d.unserved_instances, d.reactive_floor) == (0, 0, 0, 0)
    # fail-static: busy instances count in the recommendation too
    d = decide(inp(fleet=zero, current=3, busy=6, forecasts={}, observed={}))
    assert (d.target, d.recommended, d.unserved_instances) == (6, 6, 0)
    # an override is never "unserved", whatever the need
    d = decide(inp(overrides=[ovr("capacity", 2)]))
    assert (d.target, d.recommended, d.unserved_instances, d.status) == (2, 11, 0, "override")


def test_max_raised_by_the_buffer_percentage() -> None:
    f = fleet(max_size=50, max_breach="raise", max_breach_buffer_pct=1.0, safety_margin=0.0)
    d = decide(inp(fleet=f, current=50, forecasts={"players": forecast([10100.0] * 3)},
                   observed={}))  # fmt: skip
    assert (d.recommended, d.new_max_size, d.target) == (101, 103, 101)  # ceil(101 x 1.01)


def test_a_process_may_need_less_than_one_unit() -> None:
    f = fleet(capacity_cpu=8.0, process_cpu=0.5, capacity_memory_gb=4.0, process_memory_gb=0.25)
    assert validate_fleet(f) == [] and processes_per_instance(f) == 16


@pytest.mark.parametrize(
    ("kw", "floor"),
    [
        (dict(capacity_players=0.0), None),  # no capacity to size observed demand with
        (dict(capacity_players=math.nan), None),
        (dict(capacity_players=0.0, capacity_cpu=8.0), 11),  # cpu: 80 x 1.1 / 8
        (dict(capacity_cpu=0.0), 11),  # players: 1000 x 1.1 / 100
        (dict(capacity_cpu=math.inf), 11),
        (dict(safety_margin=math.nan), 10),  # the bare observed need
        (dict(safety_margin=math.inf), 10),
    ],
)
def test_an_invalid_capacity_or_margin_is_fail_static_not_a_crash(
    kw: dict[str, object], floor: int | None
) -> None:
    """load_fleets leaves config problems to the policy: a zero or NaN capacity, or a NaN
    margin, once made decide() raise (ZeroDivisionError, ValueError) while sizing the reactive
    floor, instead of keeping the fleet."""
    d = decide(inp(fleet=fleet(**kw), current=5, observed={"players": 1000.0, "cpu_cores": 80.0}))
    assert d.status == "fail_static" and "invalid fleet config" in d.reason
    assert d.reactive_floor == floor and d.target == max(5, floor or 0)


def test_a_capacity_below_one_unit_still_sizes_observed_demand() -> None:
    d = decide(inp(fleet=fleet(capacity_players=0.5), current=1, observed={"players": 1.0},
                   forecasts={"players": forecast([1.0] * 3)}))  # fmt: skip
    assert (d.reactive_floor, d.target) == (3, 3)  # 1 x 1.1 / 0.5 -> 3
