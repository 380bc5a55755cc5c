"""Approval as a property of the fleet: the pure rules, and the scale / approve / reject / expire
paths on a real DuckDB file and a moto server over HTTP (no Prefect)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetcast.config import Settings, capacity_backend
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.stages.allocate import allocate
from fleetcast.stages.approval import NothingPending, decide_change, list_changes
from fleetcast.stages.approval_rules import load_rules, set_rule
from fleetcast.stages.fleets import FleetConfigError, import_fleets, upsert_fleets
from models.approval import ApprovalRule, PendingChange, band, gate, why_approval
from models.clock import utcnow
from models.policy import Decision, FleetSpec
from tests.test_allocate import desired, make_group, spec

# ------------------------------------------------------------------------------- pure rules


def _decision(current: int, target: int, **kw: Any) -> Decision:
    base: dict[str, Any] = dict(
        fleet="f",
        game_type="g",
        region="eu",
        asg_name="f-asg",
        mode="scale",
        decided_at=datetime(2024, 1, 1),
        current=current,
        target=target,
        recommended=target,
        processes_per_instance=1,
        status="ok",
        reason=f"{current} -> {target}",
    )
    base.update(kw)
    return Decision(**base)


def test_band_pct_instances_and_floor() -> None:
    assert band(ApprovalRule("f", max_change_pct=20), 10) == (8, 12)
    assert band(ApprovalRule("f", max_change_pct=20), 2) == (2, 2)  # 20% of 2 rounds down to 0
    assert band(ApprovalRule("f", max_change_instances=3), 10) == (7, 13)
    both = ApprovalRule("f", max_change_pct=50, max_change_instances=3)
    assert band(both, 10) == (7, 13)  # the stricter of the two
    floor = ApprovalRule("f", scale_in_floor=6)
    assert band(floor, 10)[0] == 6 and band(floor, 10)[1] > 1000  # scale-out never asks
    assert band(floor, 4)[0] == 4  # already below the floor: any scale-in asks
    assert why_approval(ApprovalRule("f", max_change_pct=20), 10, 12) is None
    assert "20%" in (why_approval(ApprovalRule("f", max_change_pct=20), 10, 13) or "")
    assert "floor 6" in (why_approval(floor, 10, 5) or "")


def test_gate_holds_at_the_band_and_proposes() -> None:
    now = datetime(2024, 1, 1, 10)
    rule = ApprovalRule("f", max_change_pct=20, expiry_minutes=30)
    g = gate(_decision(10, 30), rule, None, now=now, new_id="c1")
    assert g.decision.target == 12 and g.decision.status == "pending"
    assert g.proposal is not None and g.proposal.proposed == 30 and g.proposal.current == 10
    assert g.proposal.expires_at == now + timedelta(minutes=30)
    assert g.decision.inputs["approval"]["change_id"] == "c1"
    # inside the band, or no rule, or shadow mode: unchanged
    assert gate(_decision(10, 12), rule, None, now=now, new_id="x").decision.target == 12
    assert gate(_decision(10, 30), None, None, now=now, new_id="x").proposal is None
    shadow = _decision(10, 30, mode="forecast_only")
    assert gate(shadow, rule, None, now=now, new_id="x").decision.target == 30
    override = _decision(10, 30, status="override")  # a person's capacity override
    assert gate(override, rule, None, now=now, new_id="x").decision.target == 30


def _pending(current: int, proposed: int, now: datetime, **kw: Any) -> PendingChange:
    base: dict[str, Any] = dict(
        change_id="p1",
        fleet="f",
        game_type="g",
        asg_name="f-asg",
        current=current,
        proposed=proposed,
        held=current,
        reason="r",
        asked_by="run",
        created_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(minutes=25),
    )
    base.update(kw)
    return PendingChange(**base)


def test_gate_while_pending_keeps_the_band_of_the_recorded_capacity() -> None:
    now = datetime(2024, 1, 1, 10)
    rule = ApprovalRule("f", max_change_pct=20)
    p = _pending(10, 30, now)
    # the fleet is at 12 now (the held step); the band stays 8-12 around the recorded 10
    same = gate(_decision(12, 30), rule, p, now=now, new_id="c2")
    assert same.decision.target == 12 and same.proposal is None  # same proposal: nothing new
    other = gate(_decision(12, 20), rule, p, now=now, new_id="c2")
    assert other.proposal is not None and other.proposal.supersedes == "p1"
    inside = gate(_decision(12, 11), rule, p, now=now, new_id="c2")
    assert inside.decision.target == 11 and "waits for approval" in inside.decision.reason
    # an expired or decided change no longer holds anything
    gone = gate(_decision(12, 20), rule, replace(p, status="rejected"), now=now, new_id="c3")
    assert gone.decision.target == 14 and gone.proposal is not None  # band 10-14 around 12
    assert gone.proposal.current == 12 and gone.proposal.supersedes is None


def test_gate_exception_scale_out_observed_demand_needs_now() -> None:
    now = datetime(2024, 1, 1, 10)
    rule = ApprovalRule("f", max_change_pct=20)
    g = gate(_decision(10, 30, reactive_floor=18), rule, None, now=now, new_id="c1")
    assert g.decision.target == 18 and g.exception and "observed demand needs 18" in g.exception
    assert g.proposal is not None and g.proposal.proposed == 30
    assert g.decision.inputs["approval"]["exception"] == g.exception
    # the exception is for scale-out only: a scale-in is held at the band
    down = gate(_decision(10, 2, reactive_floor=2), rule, None, now=now, new_id="c1")
    assert down.decision.target == 8 and down.exception is None


# ------------------------------------------------------------------------- scale on moto


def _seed(settings: Settings, fleets: list[FleetSpec], now: datetime, players: float) -> None:
    """Forecasts of ``players`` around ``now`` (no observed demand: no reactive floor)."""
    with db.session(settings.db_path) as con:
        upsert_fleets(con, fleets)
        for gt, region in {(f.game_type, f.region) for f in fleets}:
            for h in range(-1, 5):
                con.execute(
                    "insert into forecasts (run_id, game_type, region, metric, ts, yhat, "
                    "yhat_lower, yhat_upper, model, created_at) "
                    "values ('run-1', ?, ?, 'players', ?, ?, ?, ?, 'prophet', ?)",
                    [
                        gt,
                        region,
                        now + timedelta(hours=h),
                        players,
                        players * 0.8,
                        players * 1.2,
                        now - timedelta(hours=1),
                    ],
                ).fetchall()


def _allocs(settings: Settings, fleet: str) -> list[dict[str, Any]]:
    with db.session(settings.db_path) as con:
        return (
            con.sql(
                "select run_id, status, current_desired, target_desired, applied_desired, "
                "applied, reason, inputs from allocations where fleet = ? order by decided_at",
                params=[fleet],
            )
            .pl()
            .to_dicts()
        )


NOW0 = datetime(2026, 12, 7, 10, 0)


@pytest.fixture
def held(aws_settings: Settings, moto: Any) -> tuple[Settings, datetime]:
    """br-eu at 2 instances, a forecast that needs 14, a 20% rule: one change pending."""
    now = utcnow().replace(second=0, microsecond=0)
    make_group(moto.url, "br-eu-asg", desired=2)
    _seed(aws_settings, [spec()], now, players=1000.0)
    with db.session(aws_settings.db_path) as con:
        set_rule(con, ApprovalRule("br-eu", max_change_pct=20, expiry_minutes=30), now)
    out = allocate(aws_settings, now=now, run_id="run-a", backend=capacity_backend(aws_settings))
    assert [d.status for d in out] == ["pending"] and out[0].target == 2
    return aws_settings, now


def test_scale_holds_the_change_and_records_it_before_applying(
    held: tuple[Settings, datetime], moto: Any
) -> None:
    settings, now = held
    assert desired(moto.url, "br-eu-asg") == 2
    with db.session(settings.db_path) as con:
        [c] = list_changes(con)
    assert (c.fleet, c.current, c.proposed, c.held, c.status) == ("br-eu", 2, 14, 2, "pending")
    assert c.asked_by == "run-a (fleetcast scale)" and "20%" in c.reason
    assert c.expires_at == now + timedelta(minutes=30)
    # another run (a later cycle, or the CLI) neither applies it nor asks again
    again = allocate(
        settings, now=now + timedelta(minutes=5), run_id="run-b", backend=capacity_backend(settings)
    )
    assert again[0].target == 2 and again[0].status == "pending"
    assert c.change_id in again[0].reason
    assert desired(moto.url, "br-eu-asg") == 2
    with db.session(settings.db_path) as con:
        assert [x.change_id for x in list_changes(con)] == [c.change_id]
    assert main(["scale", "--db", str(settings.db_path), "--aws-endpoint", moto.url]) == 0
    assert desired(moto.url, "br-eu-asg") == 2


def test_cli_approve_applies_once_with_the_note(
    held: tuple[Settings, datetime], moto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = held
    args = ["--db", str(settings.db_path), "--aws-endpoint", moto.url, "--fleet", "br-eu"]
    assert main(["approve", *args, "--note", "tournament tonight"]) == 0
    assert "approved" in capsys.readouterr().out
    assert desired(moto.url, "br-eu-asg") == 14
    with db.session(settings.db_path) as con:
        [c] = list_changes(con, include_decided=True)
    assert (c.status, c.note, c.applied_desired) == ("approved", "tournament tonight", 14)
    assert c.decided_by and c.decided_by.startswith("cli")
    rows = _allocs(settings, "br-eu")
    assert [r["status"] for r in rows] == ["pending", "approved"]
    assert rows[-1]["applied"] and rows[-1]["applied_desired"] == 14
    assert "tournament tonight" in rows[-1]["reason"]
    assert json.loads(rows[0]["inputs"])["approval"]["proposed"] == 14
    # once: a second approve has nothing to apply
    assert main(["approve", *args]) == 2
    assert "nothing to approve" in capsys.readouterr().out


def test_the_report_after_an_approval_gives_the_sizing_reason_then_the_approval(
    held: tuple[Settings, datetime], moto: Any
) -> None:
    from fleetcast.interface.demo import fleet_summary, write_fleet_report

    settings, _ = held
    args = ["--db", str(settings.db_path), "--aws-endpoint", moto.url, "--fleet", "br-eu"]
    assert main(["approve", *args, "--note", "launch"]) == 0
    [reason] = fleet_summary(settings).filter(pl.col("fleet") == "br-eu")["reason"].to_list()
    sized, approval = reason.split("; then ")
    assert "14 instances for" in sized and "players per instance" in sized  # with its units
    assert "approved by cli" in approval and "launch" in approval
    page = write_fleet_report(settings, fleet_summary(settings), 1).read_text()
    assert "14 instances for" in page.split("<h2>Overview</h2>")[1].split("</table>")[0]
    assert "reason in full" in page  # the approval is in the reason in full


def test_pages_after_an_answer_show_what_was_applied(
    held: tuple[Settings, datetime], moto: Any
) -> None:
    """The run's pages are published again after the answer: the plan says what was applied
    (or kept), the summary no longer reads "pending"."""
    from fleetcast.stages.pages import RunSummary, render_plan_table, render_summary
    from tasks.approval import decisions_after_answers

    settings, now = held
    [planned] = allocate(
        settings, now=now + timedelta(minutes=1), run_id="run-b", backend=capacity_backend(settings)
    )
    with db.session(settings.db_path) as con:
        [c] = list_changes(con)
    assert planned.status == "pending" and render_plan_table([planned])[0]["applied"] != "yes: 14"
    args = ["--db", str(settings.db_path), "--aws-endpoint", moto.url, "--fleet", "br-eu"]
    assert main(["approve", *args, "--note", "launch"]) == 0
    [after] = decisions_after_answers.fn(settings, [planned], [c.change_id])
    assert (after.status, after.applied, after.applied_desired) == ("approved", True, 14)
    assert after.outcome.startswith("approved by cli") and after.outcome.endswith(
        "(launch): 14 applied"
    )
    [row] = render_plan_table([after])
    assert (row["applied"], row["status"]) == ("yes: 14", "approved")
    assert row["current -> target"] == "2 -> 14 (+12)"  # the approved target, as applied
    text = render_summary(RunSummary(flow="pipeline", scope="all", decisions=[after]))
    capacity = text.split("## Capacity")[1].split("\n## ")[0]
    assert "pending" not in capacity and "| yes: 14 |" in capacity
    # a change nobody asked about in this run leaves the decision as planned
    assert decisions_after_answers.fn(settings, [planned], ["other"]) == [planned]


def test_pages_after_a_rejection_show_what_was_kept() -> None:
    from models.approval import with_answers

    d = Decision(
        fleet="br-eu", game_type="g", region="eu", asg_name="a", mode="scale", decided_at=NOW0,
        current=2, target=2, recommended=14, processes_per_instance=1, status="pending",
        reason="2 -> 2 (+0): held",
    )  # fmt: skip
    c = PendingChange(
        change_id="c1", fleet="br-eu", game_type="g", asg_name="a", current=2, proposed=14,
        held=2, reason="r", asked_by="run", created_at=NOW0, expires_at=NOW0, status="rejected",
        decided_by="Prefect UI", note="too big",
    )  # fmt: skip
    [out] = with_answers([d], [c])
    assert (out.status, out.applied, out.outcome) == (
        "rejected", False, "rejected by Prefect UI (too big): 2 kept"
    )  # fmt: skip
    assert out.reason.endswith("; rejected by Prefect UI (too big): 2 kept")
    # still pending: unchanged
    assert with_answers([d], [replace(c, status="pending")]) == [d]


def test_approve_rechecks_the_group_now(held: tuple[Settings, datetime], moto: Any) -> None:
    settings, _ = held
    with db.session(settings.db_path) as con:
        upsert_fleets(con, [spec(max_size=9)])  # the max was lowered since the proposal
    done = decide_change(
        settings,
        fleet="br-eu",
        approve=True,
        note="ok",
        decided_by="t",
        backend=capacity_backend(settings),
    )
    assert done.decision is not None and done.decision.target == 9
    assert "capped at max 9" in done.decision.reason
    assert desired(moto.url, "br-eu-asg") == 9


def test_cli_reject_records_and_changes_nothing(held: tuple[Settings, datetime], moto: Any) -> None:
    settings, now = held
    args = ["--db", str(settings.db_path), "--aws-endpoint", moto.url, "--fleet", "br-eu"]
    assert main(["reject", *args, "--note", "forecast looks wrong"]) == 0
    assert desired(moto.url, "br-eu-asg") == 2
    with db.session(settings.db_path) as con:
        [c] = list_changes(con, include_decided=True)
    assert (c.status, c.note) == ("rejected", "forecast looks wrong")
    assert [r["status"] for r in _allocs(settings, "br-eu")] == ["pending", "rejected"]
    # the next run may propose again (a new change), still held
    out = allocate(
        settings,
        now=now + timedelta(minutes=10),
        run_id="run-c",
        backend=capacity_backend(settings),
    )
    assert out[0].target == 2 and out[0].status == "pending"
    with db.session(settings.db_path) as con:
        assert [x.status for x in list_changes(con, include_decided=True)] == [
            "pending",
            "rejected",
        ]


def test_expiry_records_and_changes_nothing(held: tuple[Settings, datetime], moto: Any) -> None:
    settings, now = held
    later = now + timedelta(minutes=31)
    with pytest.raises(NothingPending, match="expired"):
        decide_change(
            settings, fleet="br-eu", approve=True, now=later, backend=capacity_backend(settings)
        )
    assert desired(moto.url, "br-eu-asg") == 2
    with db.session(settings.db_path) as con:
        [c] = list_changes(con, include_decided=True)
    assert (c.status, c.decided_by) == ("expired", "expiry")
    assert [r["status"] for r in _allocs(settings, "br-eu")] == ["pending", "expired"]


def test_cli_status_and_approval_list_show_the_pending_change(
    held: tuple[Settings, datetime], moto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = held
    assert main(["status", "--db", str(settings.db_path)]) == 0
    out = capsys.readouterr().out
    assert "changes waiting for approval" in out and "br-eu: 2 -> 14" in out
    assert main(["approval", "list", "--db", str(settings.db_path)]) == 0
    assert "br-eu: 2 -> 14" in capsys.readouterr().out


def test_rules_from_the_fleet_file_and_the_command(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleets.csv"
    head = "fleet,game_type,asg_name,capacity_players,min_size,max_size,"
    head += "approval_max_change_pct,approval_scale_in_floor\n"
    path.write_text(head + "a,g,a-asg,100,1,10,25,\nb,g,b-asg,100,1,10,,\n")
    import_fleets(path, settings.db_path)
    with db.session(settings.db_path) as con:
        rules = load_rules(con)
    assert set(rules) == {"a"} and rules["a"].max_change_pct == 25
    bad = tmp_path / "bad.csv"
    bad.write_text(head + "a,g,a-asg,100,1,10,-5,\n")
    with pytest.raises(FleetConfigError, match="row 1: .*max_change_pct"):
        import_fleets(bad, settings.db_path)
    dbarg = ["--db", str(settings.db_path)]
    assert main(["approval", "set", *dbarg, "--game-type", "g", "--max-change-instances", "3"]) == 0
    with db.session(settings.db_path) as con:
        rules = load_rules(con)
    assert {f: r.max_change_instances for f, r in rules.items()} == {"a": 3, "b": 3}
    assert rules["a"].max_change_pct is None  # set replaces the whole rule
    assert main(["approval", "clear", *dbarg, "--fleet", "a"]) == 0
    capsys.readouterr()
    assert main(["approval", "rules", *dbarg]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "b: asks for more than 3 instances; expires after 60 min"
    ]
    # a file without approval columns leaves the rules as they are
    plain = tmp_path / "plain.csv"
    plain.write_text(
        "fleet,game_type,asg_name,capacity_players,min_size,max_size\nb,g,b-asg,100,1,10\n"
    )
    import_fleets(plain, settings.db_path)
    with db.session(settings.db_path) as con:
        assert set(load_rules(con)) == {"b"}


def test_report_and_run_summary_show_the_pending_change(held: tuple[Settings, datetime]) -> None:
    from fleetcast.interface.demo import fleet_summary, write_fleet_report
    from fleetcast.stages.pages import RunSummary, render_summary
    from fleetcast.stages.status import read_status

    settings, _ = held
    page = write_fleet_report(settings, fleet_summary(settings), 1).read_text()
    assert "Changes waiting for approval" in page and "2 -&gt; 14" in page
    waiting = read_status(settings).approvals
    text = render_summary(RunSummary(flow="scale", scope="all", approvals=waiting))
    assert "## Waiting for approval" in text and "| br-eu |" in text and "2 -> 14" in text
    assert "Nothing." in render_summary(RunSummary(flow="scale", scope="all"))


def test_a_run_that_dies_while_waiting_leaves_the_change_pending_and_saying_so(
    held: tuple[Settings, datetime],
) -> None:
    import uuid

    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Crashed

    from fleetcast.stages.approval import describe_change, set_waiting
    from tasks.approval import mark_run_ended

    settings, now = held
    with db.session(settings.db_path) as con:
        [c] = list_changes(con)
    run = FlowRun(
        id=uuid.uuid4(), flow_id=uuid.uuid4(), parameters={"params": {"db": str(settings.db_path)}}
    )
    until = now + timedelta(minutes=10)
    set_waiting(settings, [c.change_id], f"flow run x [{run.id}] waits until {until}", until)
    with db.session(settings.db_path) as con:
        [c] = list_changes(con)
    assert "no longer waiting" not in describe_change(c, now)
    # killed without a hook (SIGKILL): past the time it waited until, the record says so
    assert "no longer waiting" in describe_change(c, until + timedelta(minutes=1))
    # a crash the flow's hook sees: written on the record, which stays pending
    mark_run_ended(None, run, Crashed())
    with db.session(settings.db_path) as con:
        [c] = list_changes(con)
    assert c.status == "pending" and c.waiting and "the run ended Crashed" in c.waiting
    assert "fleetcast approve|reject" in c.waiting
