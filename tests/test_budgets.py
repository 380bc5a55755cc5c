"""Budgets as data: the pure sharing rule on literal claims, the table and CLI, and three game
types planned separately against a moto server under one budget."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from helpers_aws import desired
from helpers_reliability import NOW, seed, spec

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.aws import AwsBackend
from fleetcast.resources.local_aws import provision_groups
from fleetcast.stages.allocate import allocate
from fleetcast.stages.budgets import BudgetError, clear_budget, list_budgets, set_budget
from fleetcast.stages.pages import RunSummary, render_plan_table, render_summary
from fleetcast.stages.status import read_status, status_rows
from models.budgets import BudgetRule, Claim, share, usage
from models.names import InvalidName

# --------------------------------------------------------------------------- pure rule


def _claim(fleet: str, priority: int, current: int, want: int, **kw: Any) -> Claim:
    return Claim(fleet=fleet, priority=priority, current=current, want=want, floor=1, **kw)


def test_share_serves_priority_first_and_only_grows_into_free_room() -> None:
    rule = BudgetRule("pool", "all", max_instances=30)
    claims = [
        _claim("casual", 30, 2, 15),
        _claim("ranked", 20, 12, 12, in_run=False),
        _claim("tourney", 10, 3, 10, in_run=False),  # wants 7 more
    ]
    out = share(rule, claims)
    assert set(out) == {"casual"}  # only this run's fleets get a target
    # tournament and ranked first (10 + 12), casual gets the rest (8), not its 15
    assert out["casual"].target == 8 and out["casual"].unserved == 7
    assert usage(claims, {"casual": 8}).instances == 8 + 12 + 3 <= 30

    # the casual fleet already holds 15: it is lowered to its share (never below its floor)
    held = [replace(claims[0], current=15), *claims[1:]]
    out = share(rule, held)
    assert out["casual"].target == 8 and out["casual"].lowered == 7

    # the tournament fleet of this run wants 10 but casual still holds 15: it grows only into
    # the room actually free (30 - 15 - 12 = 3), never over the limit
    mine = [
        _claim("casual", 30, 15, 15, in_run=False),
        _claim("ranked", 20, 12, 12, in_run=False),
        _claim("tourney", 10, 2, 10),
    ]
    out = share(rule, mine)
    assert out["tourney"].target == 3 and out["tourney"].unserved == 7
    assert usage(mine, {"tourney": 3}).instances == 30


def test_share_with_a_cost_limit_and_no_growth_above_the_policy_target() -> None:
    rule = BudgetRule("money", "all", max_cost_per_hour=10.0)
    claims = [
        _claim("a", 10, 1, 4, cost_per_hour=2.0),  # 4 x 2 = 8
        _claim("b", 20, 1, 5, cost_per_hour=1.0),  # 2 left: 1 + 1 more
    ]
    out = share(rule, claims)
    assert out["a"].target == 4 and out["a"].unserved == 0
    assert out["b"].target == 2 and out["b"].unserved == 3
    assert usage(claims, {k: v.target for k, v in out.items()}).cost_per_hour <= 10.0
    # a generous budget changes nothing (never raises a target)
    out = share(BudgetRule("big", "all", max_instances=1000), claims)
    assert {k: v.target for k, v in out.items()} == {"a": 4, "b": 5}


def test_scopes_cover_their_fleets() -> None:
    assert BudgetRule("r", "region", max_instances=1, region="eu").covers("x", "eu")
    assert not BudgetRule("r", "region", max_instances=1, region="eu").covers("x", "us")
    g = BudgetRule("g", "game_types", max_instances=1, game_types=("a", "b"))
    assert g.covers("a", "eu") and not g.covers("c", "eu")


# --------------------------------------------------------------------------- table and CLI


def test_budget_table_refuses_bad_input_and_keeps_what_was_there(settings: Settings) -> None:
    with db.session(settings.db_path) as con:
        set_budget(con, name="pool", scope="all", max_instances=10, reason="r", now=NOW)
        with pytest.raises(BudgetError, match="needs a limit"):
            set_budget(con, name="pool", scope="all", reason="r", now=NOW)
        with pytest.raises(InvalidName):
            set_budget(
                con, name="x", scope="game_types", game_types="a;drop table budgets", now=NOW,
                max_instances=1, reason="r",
            )  # fmt: skip
        with pytest.raises(BudgetError, match="scope"):
            set_budget(con, name="x", scope="everywhere", max_instances=1, reason="r", now=NOW)
        [rule] = list_budgets(con)
        assert rule.max_instances == 10  # the refused replacement changed nothing
        assert clear_budget(con, "pool") and not clear_budget(con, "pool")


def test_budget_cli(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    db_ = str(settings.db_path)
    set_args = ["--game-types", "ranked_arena,casual_puzzle", "--instances", "30"]
    assert main(["budget", "set", "--db", db_, "--name", "pool", *set_args, "--reason", "r"]) == 0
    assert main(["budget", "list", "--db", db_]) == 0
    out = capsys.readouterr().out
    assert "game types casual_puzzle, ranked_arena: 30 instances" in out
    assert main(["budget", "clear", "--db", db_, "--name", "pool"]) == 0
    assert main(["budget", "clear", "--db", db_, "--name", "pool"]) == 1


# --------------------------------------------------------------------------- against moto

GAMES = {  # game type: (priority, instances wanted)
    "casual_puzzle": (30, 15),
    "ranked_arena": (20, 12),
    "tournament_series": (10, 10),
}
LIMIT = 30


def _fleets() -> list[Any]:
    return [
        spec(f"{g}-eu", game_type=g, priority=p, session_type=g.split("_")[0])
        for g, (p, _) in GAMES.items()
    ]


def test_three_game_types_planned_separately_share_one_budget(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    fleets = _fleets()
    groups = [(f.asg_name, 1, 30, 2) for f in fleets] + [("shadow-eu-asg", 1, 30, 2)]
    provision_groups(url, aws_settings.aws_region, groups)
    for f in fleets:
        seed(aws_settings, [f], players=GAMES[f.game_type][1] * 100.0)  # wants n instances
    # a forecast-only fleet in the scope: never counted, never capped
    shadow = spec(
        "shadow-eu", game_type="casual_puzzle", region="us", mode="forecast_only", priority=5
    )
    seed(aws_settings, [shadow], players=2500.0)
    with db.session(aws_settings.db_path) as con:
        set_budget(
            con,
            name="pool",
            scope="game_types",
            game_types=list(GAMES),
            max_instances=LIMIT,
            reason="shared pool",
            now=NOW - timedelta(hours=2),
        )
    backend = AwsBackend(aws_settings)
    totals = []
    order = ["casual_puzzle", "ranked_arena", "tournament_series"]  # worst order for priority
    for cycle in range(3):
        for g in order:
            now = NOW + timedelta(hours=cycle, minutes=order.index(g))
            allocate(aws_settings, game_type=g, now=now, backend=backend)
            totals.append(sum(desired(url, f.asg_name) for f in fleets))
    assert max(totals) <= LIMIT, totals
    final = {f.game_type: desired(url, f.asg_name) for f in fleets}
    # the tournament fleet gets everything it wants, then ranked, and casual the rest
    assert final == {"tournament_series": 10, "ranked_arena": 12, "casual_puzzle": 8}

    status = {r["fleet"]: r for r in status_rows(read_status(aws_settings))}
    assert status["casual_puzzle-eu"]["unserved"] == "7"
    assert status["tournament_series-eu"]["unserved"] == "0"
    assert status["shadow-eu"]["unserved"] == "0"
    # the report's per-fleet summary carries it too
    from fleetcast.interface.demo import fleet_summary

    report = dict(fleet_summary(aws_settings).select("fleet", "unserved").rows())
    assert report["casual_puzzle-eu"] == 7 and report["tournament_series-eu"] == 0
    with db.session(aws_settings.db_path, read_only=True) as con:
        last = con.sql(
            "select fleet, arg_max(inputs, decided_at), arg_max(reason, decided_at), "
            "arg_max(target_desired, decided_at) from allocations group by fleet"
        ).fetchall()
    by_fleet = {r[0]: (json.loads(r[1]), r[2], r[3]) for r in last}
    inputs, reason, _ = by_fleet["casual_puzzle-eu"]
    assert inputs["budget"]["wanted"] == 15 and inputs["budget"]["budgets"]["pool"]["unserved"]
    assert "budget pool: 7 instances not served (priority 30)" in reason
    assert "budget" not in by_fleet["shadow-eu"][0] and by_fleet["shadow-eu"][2] == 25


def test_plan_table_shows_unserved() -> None:
    from datetime import datetime

    from models.policy import Decision

    d = Decision(
        fleet="f", game_type="g", region="r", asg_name="a", mode="scale",
        decided_at=datetime(2024, 1, 1), current=1, target=2, recommended=5,
        processes_per_instance=1, status="capped", reason="x", unserved_instances=3,
    )  # fmt: skip
    assert render_plan_table([d])[0]["unserved"] == "3 instances"  # with its unit


def test_a_fail_static_fleet_is_never_lowered_by_a_budget(settings: Settings) -> None:
    from fleetcast.resources.aws import GroupState, RecordedBackend

    low = spec("low-eu", game_type="casual_puzzle", priority=30)
    high = spec("high-eu", game_type="tournament_series", priority=10)
    seed(settings, [low], players=800.0)
    seed(settings, [high], players=900.0)
    groups = [
        GroupState(low.asg_name, 8, 1, 30, tags={"fleetcast:managed": "true"}),
        GroupState(high.asg_name, 1, 1, 30, tags={"fleetcast:managed": "true"}),
    ]
    capped = replace(settings, budget_instances=10)
    errors = {"casual_puzzle": "validation failed"}  # the casual fleet cannot be sized: keep 8
    out = {
        d.fleet: d
        for d in allocate(capped, now=NOW, backend=RecordedBackend(groups), forecast_errors=errors)
    }
    assert out["low-eu"].status == "fail_static" and out["low-eu"].target == 8
    assert out["high-eu"].target == 2 and out["high-eu"].unserved_instances == 7  # 10 - 8


def test_the_budget_settings_are_a_per_run_budget(settings: Settings) -> None:
    from fleetcast.resources.aws import GroupState, RecordedBackend

    a = spec("a-eu", game_type="casual_puzzle", priority=30)
    b = spec("b-eu", game_type="tournament_series", priority=10)
    seed(settings, [a], players=800.0)
    seed(settings, [b], players=600.0)
    groups = [GroupState(f.asg_name, 1, 1, 30, tags={"fleetcast:managed": "true"}) for f in (a, b)]
    backend = RecordedBackend(groups)
    capped = replace(settings, budget_instances=10)
    out = {d.fleet: d for d in allocate(capped, now=NOW, backend=backend)}
    assert out["b-eu"].target == 6 and out["a-eu"].target == 4  # 10 in all, priority first
    assert out["a-eu"].unserved_instances == 4 and "budget run:" in out["a-eu"].reason


def test_a_soft_budget_keeps_a_persons_override_and_a_hard_one_cuts_it(
    aws_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 27: a fleet overridden to 40 for a launch under a budget of 10 instances. Soft (the
    default): the override holds on the moto group and the reason names the breach, the budget
    and the fleet; ``budget set --hard``: the budget cuts it."""
    from fleetcast.stages.overrides import set_override

    url = aws_settings.aws_endpoint_url or ""
    launch = spec("launch-eu", game_type="ranked_arena", max_size=50)
    provision_groups(url, aws_settings.aws_region, [(launch.asg_name, 1, 50, 2)])
    seed(aws_settings, [launch], players=300.0)  # the forecast alone wants 3 instances
    with db.session(aws_settings.db_path) as con:
        set_override(
            con, fleet="launch-eu", kind="capacity", value=40, reason="launch day",
            expires_at=NOW + timedelta(hours=6), now=NOW - timedelta(minutes=5),
        )  # fmt: skip
    db_ = str(aws_settings.db_path)
    budget = ["budget", "set", "--db", db_, "--name", "pool", "--all", "--instances", "10"]
    assert main([*budget, "--reason", "Q4 capacity"]) == 0
    backend = AwsBackend(aws_settings)

    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert desired(url, launch.asg_name) == 40 and d.target == 40 and d.status == "override"
    assert "budget pool exceeded (scope 40 of 10 instances" in d.reason
    assert "capacity override holds on launch-eu" in d.reason
    assert d.inputs["budget"]["budgets"]["pool"]["breach"] == ["launch-eu"]
    [row] = [r for r in status_rows(read_status(aws_settings)) if r["fleet"] == "launch-eu"]
    assert "budget pool exceeded" in row["why"] and "launch-eu" in row["why"]
    capsys.readouterr()
    assert main(["status", "--db", str(aws_settings.db_path)]) == 0
    shown = capsys.readouterr().out.split("budgets exceeded")[1]
    assert "pool: scope 40 of 10 instances over 1 fleet(s); a person's capacity override holds" in (
        " ".join(shown.split())
    )
    # the run summary says it in a section of its own, with the fleet it affects
    text = render_summary(RunSummary(flow="pipeline", scope="all", decisions=[d]))
    breach = text.split("## Budgets exceeded")[1].split("\n## ")[0]
    assert "| pool | scope 40 of 10 instances over 1 fleet(s) | launch-eu |" in breach

    assert main([*budget, "--hard", "--reason", "Q4 capacity, no exceptions"]) == 0
    assert main(["budget", "list", "--db", db_]) == 0
    assert "every fleet: 10 instances (hard)" in capsys.readouterr().out
    [d] = allocate(aws_settings, now=NOW + timedelta(minutes=5), backend=backend)
    assert desired(url, launch.asg_name) == 10 and d.target == 10 and d.status == "capped"
    assert "budget pool: 30 instances not served" in d.reason
    assert "below a person's capacity override (the budget is hard)" in d.reason
