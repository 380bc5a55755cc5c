"""The recorded backend (no AWS) and the allow-list rule on their own: fast, no moto, so
mutation testing of fleetcast/resources/aws.py can run them for every mutant."""

from __future__ import annotations

import pytest

from fleetcast.resources.aws import (
    GroupNotAllowed,
    GroupNotFound,
    GroupState,
    InstanceState,
    RecordedBackend,
    is_allowed,
)

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
