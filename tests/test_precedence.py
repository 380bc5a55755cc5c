"""The one order of the rules (models/precedence.py), on literal decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from models.budgets import BudgetRule, Claim
from models.policy import Decision, FleetSpec, Override, PolicyInput
from models.precedence import ORDER, BudgetScope, apply_budgets, decide_one, settle

NOW = datetime(2024, 5, 1, 10, 0)


def decision(fleet: str, current: int, target: int, **kw: Any) -> Decision:
    base: dict[str, Any] = dict(
        fleet=fleet, game_type="g", region="eu", asg_name=f"{fleet}-asg", mode="scale",
        decided_at=NOW, current=current, target=target, recommended=target,
        processes_per_instance=1, status="ok", reason=f"{current} -> {target} (+0): x",
        min_size=1, max_size=100, priority=20,
    )  # fmt: skip
    base.update(kw)
    return Decision(**base)


def test_the_order_is_written_once() -> None:
    assert ORDER.index("capacity override") < ORDER.index("budgets") < ORDER.index("approval")
    assert ORDER[-1] == "busy floor"


def test_a_soft_budget_keeps_an_override_and_names_the_breach_a_hard_one_cuts() -> None:
    launch = decision("launch", 2, 40, status="override")
    other = decision("other", 3, 6, priority=10)
    soft = BudgetRule("pool", "all", max_instances=10)
    out = {
        d.fleet: d for d in apply_budgets([launch, other], [BudgetScope(soft)], {"launch", "other"})
    }
    assert out["launch"].target == 40 and out["launch"].status == "override"
    # the override's 40 takes the whole room: the other fleet is lowered to its minimum
    assert out["other"].target == 1 and "budget pool: 5 instances not served" in out["other"].reason
    for d in out.values():
        assert "budget pool exceeded (scope 41 of 10 instances" in d.reason
        assert "override holds on launch" in d.reason
    hard = replace(soft, hard=True)
    out = {
        d.fleet: d for d in apply_budgets([launch, other], [BudgetScope(hard)], {"launch", "other"})
    }
    assert out["other"].target == 6 and out["launch"].target == 4  # priority 10 first
    assert "(the budget is hard)" in out["launch"].reason and "exceeded" not in out["launch"].reason


def test_a_peer_holding_the_room_and_the_busy_floor_last() -> None:
    busy = decision("busy", 8, 8, busy=8)
    peer = Claim("peer", 10, current=5, want=5, floor=5, in_run=False)
    rule = BudgetRule("pool", "all", max_instances=6)
    [d], proposals = settle(
        [busy], budgets=[BudgetScope(rule, (peer,))], counted={"busy"}, rules={}, pending={},
        now=NOW, new_id=lambda: "x",
    )  # fmt: skip
    assert d.target == 8 and proposals == []  # never below the busy instances


def test_the_event_hold_never_moves_a_persons_override() -> None:
    spec = FleetSpec(
        fleet="f", game_type="g", region="eu", asg_name="f-asg", capacity_players=100.0,
        min_size=1, max_size=30, mode="scale",
    )  # fmt: skip
    o = Override("o1", "f", "capacity", 5, "maintenance", NOW, datetime(2024, 5, 2))
    inp = PolicyInput(fleet=spec, now=NOW, current=12, overrides=(o,))

    def hold(d: Decision) -> Decision:
        return replace(d, target=d.current or d.target, reason=d.reason + "; held")

    d = decide_one(inp, hold)
    assert d.status == "override" and d.target == 5 and "held" not in d.reason
    plain = decide_one(replace(inp, overrides=()), hold)
    assert plain.target == 12 and "held" in plain.reason
