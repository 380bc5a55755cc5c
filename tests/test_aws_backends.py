"""The recorded backend (no AWS) and the allow-list rule on their own: fast, no moto, so
mutation testing of fleetcast/resources/aws.py can run them for every mutant."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from fleetcast.resources.aws import (
    ApplyResult,
    GroupNotAllowed,
    GroupNotFound,
    GroupState,
    InstanceState,
    RecordedBackend,
    ScalingInProgress,
    apply_decision,
    is_allowed,
)
from models.policy import Decision

TAG = "fleetcast:managed"


def group(name: str = "g", **kw: object) -> GroupState:
    base: dict[str, object] = dict(
        name=name, desired=2, min_size=0, max_size=10, tags={TAG: "true"},
        instances=(InstanceState("i-1", "InService", False), InstanceState("i-2", "InService",
                   False, busy=True), InstanceState("i-3", "InService", True)),
    )  # fmt: skip
    base.update(kw)
    return GroupState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tags", "named", "want"),
    [({TAG: "true"}, (), True), ({TAG: "TRUE"}, (), True), ({TAG: "false"}, (), False),
     ({TAG: ""}, (), False), ({}, (), False), ({"other": "true"}, (), False),
     ({}, ("g",), True), ({TAG: "false"}, ("g",), True), ({}, ("h",), False)],
)  # fmt: skip
def test_allow_list_needs_the_tag_true_or_the_name(
    tags: dict[str, str], named: tuple[str, ...], want: bool
) -> None:
    assert is_allowed(group(tags=tags), named, TAG) is want


def test_recorded_backend_applies_and_records_each_request() -> None:
    rec = RecordedBackend([group(), group("h", tags={})], allowed_tag=TAG)
    assert rec.describe("g") == group()
    assert rec.describe_many(["g", "nope"]) == {"g": group()}
    with pytest.raises(GroupNotFound, match="'nope'"):
        rec.describe("nope")
    rec.set_desired("g", 5)
    rec.update_max("g", 12)
    rec.set_tags("g", {"k": "v"})
    rec.set_protection("g", ["i-1", "i-2"], True)
    rec.set_protection("g", ["i-3"], False)
    g = rec.describe("g")
    assert (g.desired, g.max_size, g.min_size) == (5, 12, 0)
    assert g.tags == {TAG: "true", "k": "v"}
    assert [(i.instance_id, i.protected, i.busy) for i in g.instances] == [
        ("i-1", True, False), ("i-2", True, True), ("i-3", False, False)]  # fmt: skip
    assert rec.calls == [
        ("SetDesiredCapacity", "g", 5),
        ("UpdateAutoScalingGroup", "g", 12),
        ("CreateOrUpdateTags", "g", {"k": "v"}),
        ("SetInstanceProtection", "g", (["i-1", "i-2"], True)),
        ("SetInstanceProtection", "g", (["i-3"], False)),
    ]
    assert rec.describe("h") == group("h", tags={})  # untouched


@pytest.mark.parametrize("call", ["set_desired", "update_max", "set_tags", "set_protection"])
def test_recorded_backend_refuses_a_group_off_the_allow_list(call: str) -> None:
    rec = RecordedBackend([group("h", tags={TAG: "false"})], allowed_tag=TAG)
    args = {"set_desired": (3,), "update_max": (3,), "set_tags": ({"k": "v"},),
            "set_protection": (["i-1"], True)}[call]  # fmt: skip
    with pytest.raises(GroupNotAllowed, match="'h' is not on the allow-list: .* tag it "
                       "fleetcast:managed=true"):  # fmt: skip
        getattr(rec, call)("h", *args)
    assert rec.calls == [] and rec.describe("h") == group("h", tags={TAG: "false"})
    named = RecordedBackend([group("h", tags={})], allowed_groups=["h"], allowed_tag=TAG)
    getattr(named, call)("h", *args)  # on the list by name: allowed
    assert len(named.calls) == 1


def test_recorded_backend_defaults_to_the_managed_tag() -> None:
    rec = RecordedBackend([group("h", tags={"fleetcast:managed": "true"}), group("s", tags={})])
    rec.set_desired("h", 4)
    with pytest.raises(GroupNotAllowed):
        rec.set_desired("s", 4)
    assert rec.calls == [("SetDesiredCapacity", "h", 4)]


def test_refusal_message_names_the_group_the_tag_and_the_setting() -> None:
    rec = RecordedBackend([group("h", tags={})], allowed_tag="team:ok")
    with pytest.raises(GroupNotAllowed) as err:
        rec.set_desired("h", 1)
    assert str(err.value) == (
        "group 'h' is not on the allow-list: add it to FLEETCAST_ALLOWED_GROUPS or tag it "
        "team:ok=true; fleetcast changes nothing else"
    )


# ---------------------------------------------------------------------------------------------
# apply_decision on the recorded backend: every call, its order and the outcome text, exactly


def decision(target: int, *, mode: str = "scale", ppi: int = 4, **kw: object) -> Decision:
    return Decision(
        fleet="g", game_type="br", region="global", asg_name="g", mode=mode,  # type: ignore[arg-type]
        decided_at=datetime(2024, 5, 1, 10), current=None, target=target, recommended=target,
        processes_per_instance=ppi, status="ok", reason="test", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def inst(iid: str, *, state: str = "InService", protected: bool = False, busy: bool = False):  # type: ignore[no-untyped-def]
    return InstanceState(iid, state, protected, busy=busy)


def plain(**kw: object) -> GroupState:
    """A managed group whose processes-per-instance tag is already 4, no instances."""
    base: dict[str, object] = dict(
        name="g", desired=2, min_size=0, max_size=10,
        tags={TAG: "true", PPI_TAG_TEXT: "4"}, instances=(),
    )  # fmt: skip
    base.update(kw)
    return GroupState(**base)  # type: ignore[arg-type]


PPI_TAG_TEXT = "fleetcast:processes-per-instance"  # literal: the tag's name is a contract


def run(state: GroupState, d: Decision, **kw: Any) -> tuple[ApplyResult, list[Any]]:
    rec = RecordedBackend([state], allowed_tag=TAG, allowed_groups=kw.pop("named", ()))
    result = apply_decision(rec, d, state, allowed_groups=kw.pop("allowed", ()),
                            allowed_tag=TAG, **kw)  # fmt: skip
    return result, rec.calls


HELD = "the group was raised from {} since the plan, so no scale-in this cycle"


@pytest.mark.parametrize(
    ("current", "target", "calls", "outcome"),
    [
        (4, 6, [], f"target 6 held at 10: {HELD.format(4)}; desired already 10: nothing sent"),
        (9, 9, [], f"target 9 held at 10: {HELD.format(9)}; desired already 10: nothing sent"),
        (9, 10, [], "desired already 10: nothing sent"),
        (9, 12, [("SetDesiredCapacity", "g", 12)], "set desired 10 -> 12"),
        (10, 6, [("SetDesiredCapacity", "g", 6)], "set desired 10 -> 6"),
        (11, 6, [("SetDesiredCapacity", "g", 6)], "set desired 10 -> 6"),
        (None, 6, [("SetDesiredCapacity", "g", 6)], "set desired 10 -> 6"),
    ],
)
def test_apply_never_lowers_a_group_raised_since_the_plan(
    current: int | None, target: int, calls: list[Any], outcome: str
) -> None:
    """The plan read ``current``; the group reads 10 at apply. Raised since the plan: no
    scale-in below 10 this cycle (the plan's checks were made from the lower value)."""
    result, sent = run(plain(desired=10, max_size=20), replace(decision(target), current=current))
    assert (sent, result.outcome) == (calls, outcome)


def test_apply_holds_a_raised_group_after_the_min_and_before_the_busy_floor() -> None:
    busy = tuple(inst(f"i-{n}", busy=True, protected=True) for n in range(7))
    state = plain(desired=5, min_size=3, max_size=20, instances=busy)
    result, sent = run(state, replace(decision(1), current=2))
    assert sent == [("SetDesiredCapacity", "g", 7)]
    assert result.outcome == (
        f"target 1 raised to the group's MinSize 3; target 3 held at 5: {HELD.format(2)}; "
        "target 5 raised to the 7 busy instances read before apply; set desired 5 -> 7"
    )


def test_apply_forecast_only_says_what_it_would_do_and_calls_nothing() -> None:
    stranger = plain(tags={})
    assert run(stranger, decision(5, mode="forecast_only")) == (
        ApplyResult(False, None, None, (), (), (), "forecast-only: would set 5"),
        [],
    )
    assert run(stranger, decision(2, mode="forecast_only")) == (
        ApplyResult(False, None, None, (), (), (), "forecast-only: no change"), [])  # fmt: skip


def test_apply_refuses_a_group_off_the_allow_list_unless_named() -> None:
    stranger = plain(tags={TAG: "false", PPI_TAG_TEXT: "4"})
    with pytest.raises(GroupNotAllowed, match=r"^group 'g' is not on the allow-list: add it to "
                       r"FLEETCAST_ALLOWED_GROUPS or tag it fleetcast:managed=true; "
                       r"fleetcast changes nothing else$"):  # fmt: skip
        run(stranger, decision(5))
    with pytest.raises(GroupNotAllowed):  # apply checks on its own, before any backend call
        run(stranger, decision(5), named=("g",))
    result, calls = run(stranger, decision(5), named=("g",), allowed=("g",))
    assert result.applied and calls == [("SetDesiredCapacity", "g", 5)]


def test_apply_sends_an_absolute_desired_and_the_ppi_tag_only_when_changed() -> None:
    result, calls = run(plain(tags={TAG: "true", PPI_TAG_TEXT: "3"}), decision(7, ppi=4))
    assert calls == [("CreateOrUpdateTags", "g", {PPI_TAG_TEXT: "4"}),
                     ("SetDesiredCapacity", "g", 7)]  # fmt: skip
    ops = ("CreateOrUpdateTags", "SetDesiredCapacity")
    assert result == ApplyResult(True, 7, None, (), (), ops, "set desired 2 -> 7")
    # the tag already right, the desired already the target: nothing at all
    assert run(plain(), decision(2)) == (
        ApplyResult(False, None, None, (), (), (), "desired already 2: nothing sent"),
        [],
    )
    # no tag yet: written
    _, calls = run(plain(tags={TAG: "true"}), decision(2, ppi=11))
    assert calls == [("CreateOrUpdateTags", "g", {PPI_TAG_TEXT: "11"})]


def test_apply_caps_at_max_and_raises_to_min_with_a_note_each() -> None:
    assert run(plain(max_size=4), decision(9)) == (
        ApplyResult(True, 4, None, (), (), ("SetDesiredCapacity",),
                    "target 9 capped at the group's MaxSize 4; set desired 2 -> 4"),
        [("SetDesiredCapacity", "g", 4)])  # fmt: skip
    assert run(plain(min_size=3), decision(1)) == (
        ApplyResult(True, 3, None, (), (), ("SetDesiredCapacity",),
                    "target 1 raised to the group's MinSize 3; set desired 2 -> 3"),
        [("SetDesiredCapacity", "g", 3)])  # fmt: skip
    # exactly at the bounds: no note
    assert run(plain(min_size=4, max_size=4), decision(4))[0].outcome == "set desired 2 -> 4"


def test_apply_raises_max_first_and_caps_at_the_new_max() -> None:
    result, calls = run(plain(max_size=4), decision(9, new_max_size=7))
    assert calls == [("UpdateAutoScalingGroup", "g", 7), ("SetDesiredCapacity", "g", 7)]
    assert result == ApplyResult(
        True,
        7,
        7,
        (),
        (),
        ("UpdateAutoScalingGroup", "SetDesiredCapacity"),
        "target 9 capped at the group's MaxSize 7; set desired 2 -> 7; MaxSize 4 -> 7",
    )
    # a new max equal to the group's: no UpdateAutoScalingGroup, before or after
    result, calls = run(plain(max_size=4), decision(3, new_max_size=4))
    assert calls == [("SetDesiredCapacity", "g", 3)] and result.sent_max is None
    assert result.outcome == "set desired 2 -> 3"


def test_apply_restores_a_lower_max_last_only_when_desired_fits_under_it() -> None:
    result, calls = run(plain(desired=8, max_size=10), decision(3, new_max_size=5))
    assert calls == [("SetDesiredCapacity", "g", 3), ("UpdateAutoScalingGroup", "g", 5)]
    ops = ("SetDesiredCapacity", "UpdateAutoScalingGroup")
    assert result == ApplyResult(True, 3, 5, (), (), ops, "set desired 8 -> 3; MaxSize 10 -> 5")
    # desired exactly at the new max: restored
    _, calls = run(plain(desired=8, max_size=10), decision(5, new_max_size=5))
    assert calls[-1] == ("UpdateAutoScalingGroup", "g", 5)
    # desired would stay above it: not restored
    result, calls = run(plain(desired=8, max_size=10), decision(6, new_max_size=5))
    assert calls == [("SetDesiredCapacity", "g", 6)] and result.sent_max is None
    # nothing sent for desired: the group's own desired decides
    _, calls = run(plain(desired=4, max_size=10), decision(4, new_max_size=5))
    assert calls == [("UpdateAutoScalingGroup", "g", 5)]
    _, calls = run(plain(desired=6, max_size=10), decision(6, new_max_size=5))
    assert calls == []
    # scaled to 0 from above the new max: 0 was sent, so the max is restored
    result, calls = run(plain(desired=8, max_size=10), decision(0, new_max_size=2))
    assert calls == [("SetDesiredCapacity", "g", 0), ("UpdateAutoScalingGroup", "g", 2)]
    assert (result.applied_desired, result.sent_max) == (0, 2)


class _Busy(RecordedBackend):
    """A recorded backend whose SetDesiredCapacity meets a scaling activity in progress."""

    def set_desired(self, asg_name: str, desired: int) -> None:
        self.calls.append(("refused", asg_name, desired))
        raise ScalingInProgress("ScalingActivityInProgress")


def test_apply_defers_when_a_scaling_activity_is_in_progress() -> None:
    state = plain(desired=8, max_size=10)
    rec = _Busy([state], allowed_tag=TAG)
    result = apply_decision(rec, decision(3, new_max_size=9), state, allowed_groups=(),
                            allowed_tag=TAG)  # fmt: skip
    # not applied; the max is restored on the group's current desired (8 <= 9)
    assert result == ApplyResult(
        False,
        None,
        9,
        (),
        (),
        ("UpdateAutoScalingGroup",),
        "deferred: a scaling activity is in progress; 3 retried next cycle; MaxSize 10 -> 9",
    )
    assert rec.calls == [("refused", "g", 3), ("UpdateAutoScalingGroup", "g", 9)]


def test_apply_protects_busy_releases_drained_and_keeps_a_floor_of_busy() -> None:
    state = plain(desired=5, instances=(
        inst("i-a", busy=True), inst("i-b", busy=True, protected=True), inst("i-c"),
        inst("i-d", protected=True), inst("i-e", state="Terminating", busy=True),
        inst("i-f", state="Terminating", protected=True)))  # fmt: skip
    # the caller reports i-c busy too, and i-x (not in the group: ignored)
    result, calls = run(state, decision(1), busy_ids=["i-x", "i-c"])
    assert calls == [
        ("SetInstanceProtection", "g", (["i-a", "i-c"], True)),
        ("SetInstanceProtection", "g", (["i-d"], False)),
        ("SetDesiredCapacity", "g", 3),
    ]
    assert result == ApplyResult(
        True,
        3,
        None,
        ("i-a", "i-c"),
        ("i-d",),
        ("SetInstanceProtection", "SetInstanceProtection", "SetDesiredCapacity"),
        "target 1 raised to the 3 busy instances read before apply; set desired 5 -> 3; "
        "protected 2 busy; released 1 drained",
    )


def test_apply_busy_floor_never_exceeds_the_max_and_equal_is_no_note() -> None:
    busy = tuple(inst(f"i-{n}", busy=True, protected=True) for n in range(4))
    result, calls = run(plain(desired=2, max_size=3, instances=busy), decision(1))
    assert calls == [("SetDesiredCapacity", "g", 3)]
    assert result.outcome == (
        "target 1 raised to the 3 busy instances read before apply; set desired 2 -> 3"
    )
    result, _ = run(plain(desired=2, instances=busy), decision(4))
    assert result.outcome == "set desired 2 -> 4"
    # only protection to release, nothing else
    result, calls = run(plain(instances=(inst("i-1", protected=True),)), decision(2))
    assert calls == [("SetInstanceProtection", "g", (["i-1"], False))]
    assert result == ApplyResult(False, None, None, (), ("i-1",), ("SetInstanceProtection",),
                                 "desired already 2: nothing sent; released 1 drained")  # fmt: skip
