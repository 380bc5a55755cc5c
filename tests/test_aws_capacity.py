"""Apply against a real local moto server: allow-list, busy protection, retries, no-op runs.

Groups, call counting and fault injection come from helpers_aws.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers_aws import CallLog, group, inject_error, instance_ids, make_group, mark_busy

from fleetcast.config import Settings
from fleetcast.resources.aws import (
    PPI_TAG,
    AwsBackend,
    GroupNotAllowed,
    RecordedBackend,
    apply_decision,
)
from models.policy import Decision


def decision(name: str, target: int, *, mode: str = "scale", **kw: Any) -> Decision:
    return Decision(
        fleet=name,
        game_type="br",
        region="global",
        asg_name=name,
        mode=mode,  # type: ignore[arg-type]
        decided_at=datetime(2024, 5, 1, 10),
        current=None,
        target=target,
        recommended=target,
        processes_per_instance=kw.pop("ppi", 4),
        status="ok",
        reason="test",
        **kw,
    )


def _apply(backend: AwsBackend, d: Decision, settings: Settings, **kw: Any) -> Any:
    state = backend.describe(d.asg_name)
    return apply_decision(
        backend,
        d,
        state,
        allowed_groups=settings.allowed_groups,
        allowed_tag=settings.allowed_tag,
        **kw,
    )


def test_botocore_config_uses_standard_retries_and_timeouts(aws_settings: Settings) -> None:
    backend = AwsBackend(aws_settings)
    cfg = backend.client.meta.config
    assert cfg.retries["mode"] == "standard" and cfg.retries["total_max_attempts"] >= 3
    assert cfg.connect_timeout and cfg.read_timeout
    assert backend.client.meta.endpoint_url == aws_settings.aws_endpoint_url


def test_scale_sets_absolute_desired_and_tag_then_second_run_is_a_noop(
    aws_settings: Settings,
) -> None:
    make_group(aws_settings.aws_endpoint_url or "", "g1", desired=1)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    first = _apply(backend, decision("g1", 3), aws_settings)
    assert first.applied and first.applied_desired == 3
    ops = [c[0] for c in log.mutating]
    assert ops == ["CreateOrUpdateTags", "SetDesiredCapacity"]
    sent = dict(log.mutating[1][1])
    assert sent["DesiredCapacity"] == 3 and sent["HonorCooldown"] is False
    g = group(aws_settings.aws_endpoint_url or "", "g1")
    assert g["DesiredCapacity"] == 3
    assert {t["Key"]: t["Value"] for t in g["Tags"]}[PPI_TAG] == "4"

    log.calls.clear()
    second = _apply(backend, decision("g1", 3), aws_settings)
    assert not second.applied and log.mutating == []
    assert "nothing sent" in second.outcome


def test_a_group_raised_since_the_plan_is_not_lowered_below_it(aws_settings: Settings) -> None:
    """The plan read desired 4 and decided 6; someone raised the group to 10 before apply. The
    plan never checked a scale-in from 10, so apply keeps 10 and says why. A plan that read 10
    (its checks made from 10), or a group lowered since the plan, is applied as decided."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "g1", desired=10, max_size=20)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    held = _apply(backend, replace(decision("g1", 6), current=4), aws_settings)
    assert not held.applied and "SetDesiredCapacity" not in [c[0] for c in log.mutating]
    assert held.outcome == (
        "target 6 held at 10: the group was raised from 4 since the plan, so no scale-in this "
        "cycle; desired already 10: nothing sent"
    )
    assert group(url, "g1")["DesiredCapacity"] == 10
    up = _apply(backend, replace(decision("g1", 12), current=4), aws_settings)
    assert up.applied_desired == 12 and up.outcome == "set desired 10 -> 12"
    planned_here = _apply(backend, replace(decision("g1", 7), current=12), aws_settings)
    assert planned_here.applied_desired == 7 and planned_here.outcome == "set desired 12 -> 7"
    lowered_since = _apply(backend, replace(decision("g1", 5), current=9), aws_settings)
    assert lowered_since.applied_desired == 5 and group(url, "g1")["DesiredCapacity"] == 5


def test_forecast_only_makes_no_mutating_call(aws_settings: Settings) -> None:
    make_group(aws_settings.aws_endpoint_url or "", "g1", desired=1)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    result = _apply(backend, decision("g1", 5, mode="forecast_only"), aws_settings)
    assert not result.applied and "would set 5" in result.outcome
    assert log.mutating == [] and [c[0] for c in log.calls] == ["DescribeAutoScalingGroups"]
    assert group(aws_settings.aws_endpoint_url or "", "g1")["DesiredCapacity"] == 1


def test_group_off_the_allow_list_is_refused(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "stranger", desired=2, managed=False)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    with pytest.raises(GroupNotAllowed, match="allow-list"):
        _apply(backend, decision("stranger", 5), aws_settings)
    # the backend itself refuses too (defence in depth), before any request goes out
    with pytest.raises(GroupNotAllowed):
        backend.set_desired("stranger", 5)
    assert log.mutating == []
    assert group(url, "stranger")["DesiredCapacity"] == 2
    # named in Settings.allowed_groups: allowed without the tag
    named = replace(aws_settings, allowed_groups=("stranger",))
    assert _apply(AwsBackend(named), decision("stranger", 3), named).applied


def test_busy_instances_survive_a_scale_in_and_are_released_after_drain(
    aws_settings: Settings,
) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "g1", desired=4)
    ids = instance_ids(url, "g1")
    busy = ids[1:3]  # not the first: a plain scale-in would be free to pick them
    mark_busy(url, busy)
    backend = AwsBackend(aws_settings)
    state = backend.describe("g1")
    assert state.busy_ids == frozenset(busy)
    result = _apply(backend, decision("g1", 2), aws_settings)
    assert result.protected == tuple(busy) and result.applied_desired == 2
    left = {i["InstanceId"]: i for i in group(url, "g1")["Instances"]}
    assert set(busy) <= set(left)
    assert all(left[i]["ProtectedFromScaleIn"] for i in busy)

    # the sessions end: the busy tag is removed, the next run releases the protection
    mark_busy(url, busy, busy=False)
    result = _apply(backend, decision("g1", 2), aws_settings)
    assert result.released == tuple(busy) and not result.applied
    assert not any(i["ProtectedFromScaleIn"] for i in group(url, "g1")["Instances"])


def test_caller_reported_busy_instances_are_protected(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "g1", desired=3)
    ids = instance_ids(url, "g1")
    backend = AwsBackend(aws_settings)
    result = _apply(backend, decision("g1", 1), aws_settings, busy_ids=[ids[2]])
    assert result.protected == (ids[2],)
    assert [i["InstanceId"] for i in group(url, "g1")["Instances"]] == [ids[2]]


def test_throttling_is_retried_and_succeeds(aws_settings: Settings) -> None:
    make_group(aws_settings.aws_endpoint_url or "", "g1", desired=1)
    backend = AwsBackend(aws_settings)
    seen = inject_error(backend.client, "SetDesiredCapacity", "Throttling", times=2)
    responses: list[dict[str, Any]] = []
    backend.client.meta.events.register(
        "after-call.autoscaling.SetDesiredCapacity",
        lambda parsed, **_: responses.append(parsed),
    )
    result = _apply(backend, decision("g1", 3), aws_settings)
    assert seen[0] == 2 and result.applied
    assert responses[-1]["ResponseMetadata"]["RetryAttempts"] == 2
    assert group(aws_settings.aws_endpoint_url or "", "g1")["DesiredCapacity"] == 3


def test_scaling_activity_in_progress_is_deferred_not_raised(aws_settings: Settings) -> None:
    make_group(aws_settings.aws_endpoint_url or "", "g1", desired=1)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    inject_error(backend.client, "SetDesiredCapacity", "ScalingActivityInProgress", times=1)
    result = _apply(backend, decision("g1", 3), aws_settings)
    assert not result.applied and result.applied_desired is None
    assert "deferred" in result.outcome
    # botocore does not retry it: exactly one attempt was made
    assert [c[0] for c in log.mutating].count("SetDesiredCapacity") == 1
    assert group(aws_settings.aws_endpoint_url or "", "g1")["DesiredCapacity"] == 1
    # next cycle: goes through
    assert _apply(backend, decision("g1", 3), aws_settings).applied


def test_value_sent_never_exceeds_max_size(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "g1", desired=1, max_size=4)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    result = _apply(backend, decision("g1", 9), aws_settings)
    sent = [p["DesiredCapacity"] for op, p in log.mutating if op == "SetDesiredCapacity"]
    assert sent == [4] and result.applied_desired == 4 and "capped" in result.outcome


def test_breach_raise_updates_max_before_desired(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "g1", desired=1, max_size=4)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    _apply(backend, decision("g1", 6, new_max_size=7), aws_settings)
    ops = [(op, p.get("MaxSize", p.get("DesiredCapacity"))) for op, p in log.mutating]
    assert ops == [
        ("UpdateAutoScalingGroup", 7),
        ("CreateOrUpdateTags", None),
        ("SetDesiredCapacity", 6),
    ]
    g = group(url, "g1")
    assert (g["MaxSize"], g["DesiredCapacity"]) == (7, 6)


def test_recorded_backend_never_reaches_aws() -> None:
    from fleetcast.resources.aws import GroupState

    rec = RecordedBackend(
        [GroupState("g1", 2, 0, 10, {"fleetcast:managed": "true"})],
    )
    result = apply_decision(
        rec,
        decision("g1", 5),
        rec.describe("g1"),
        allowed_groups=(),
        allowed_tag="fleetcast:managed",
    )
    assert result.applied and rec.groups["g1"].desired == 5
    assert [c[0] for c in rec.calls] == ["CreateOrUpdateTags", "SetDesiredCapacity"]


IAM = Path(__file__).resolve().parent.parent / "iam" / "fleetcast-policy.json"


def test_iam_policy_is_least_privilege() -> None:
    doc = json.loads(IAM.read_text())
    assert doc["Version"] == "2012-10-17"
    allowed: set[str] = set()
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        allowed |= set(actions)
        writes = [a for a in actions if not a.split(":")[1].startswith("Describe")]
        if writes:
            # every write is scoped to groups tagged fleetcast:managed=true
            cond = st["Condition"]["StringEquals"]
            assert cond["aws:ResourceTag/fleetcast:managed"] == "true"
            assert st["Resource"] != "*"
            assert all(a.startswith("autoscaling:") for a in writes)
    writes = {a for a in allowed if not a.split(":")[1].startswith("Describe")}
    assert writes == {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SetInstanceProtection",
        "autoscaling:CreateOrUpdateTags",
    }
    assert "*" not in allowed and "autoscaling:*" not in allowed
    text = IAM.read_text().lower()
    for bad in ("terminate", "delete", "iam:", "passrole", "notaction"):
        assert bad not in text
    assert "autoscaling:Describe*" in allowed
