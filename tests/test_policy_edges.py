"""Edges of the capacity policy that mutation testing (`make mutation`) showed no test pinned:
a budget with a missing current, free or cheap fleets, and an override's active window.
Literal cases on the pure functions of models/policy.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from models.policy import Budget, Decision, apply_budget

NOW = datetime(2024, 5, 1, 10, 0)


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
    from datetime import timedelta

    from models.policy import Override

    o = Override("o1", "f", "capacity", 3, "ops", NOW, NOW + timedelta(hours=1))
    assert o.active(NOW)  # in force from the second it is set
    assert not o.active(NOW - timedelta(seconds=1))
    assert not o.active(NOW + timedelta(hours=1))  # expired at its expiry
    cleared = replace(o, cleared_at=NOW + timedelta(minutes=5))
    assert cleared.active(NOW + timedelta(minutes=4))
    assert not cleared.active(NOW + timedelta(minutes=5))  # cleared at that second
