"""AwsBackend against a real local moto server, exactly: the parameters of every request it
sends, what it reads back, how it classifies AWS errors, and its client configuration.

Small and fast (a few seconds) so mutation testing of fleetcast/resources/aws.py can run it for
every mutant; apply_decision's rules are pinned on the recorded backend in test_aws_backends.py.
Faults moto cannot produce (throttling, a scaling activity in progress) are canned responses
from helpers_aws.inject_error (a botocore 'before-send' hook).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers_aws import (
    CallLog,
    answer_once,
    group,
    inject_error,
    instance_ids,
    make_group,
    mark_busy,
)
from prefect_aws import AwsCredentials

from fleetcast.config import Settings
from fleetcast.resources import aws
from fleetcast.resources.aws import (
    MUTATING_OPERATIONS,
    AwsBackend,
    CredentialsBlockError,
    GroupNotAllowed,
    GroupNotFound,
    GroupState,
    InstanceState,
    ScalingInProgress,
    aws_session,
    botocore_config,
    make_client,
)


def _url(settings: Settings) -> str:
    return settings.aws_endpoint_url or ""


def test_client_configuration_comes_from_settings(aws_settings: Settings) -> None:
    s = replace(aws_settings, aws_region="eu-west-1", aws_max_attempts=7,
                aws_connect_timeout=1.5, aws_read_timeout=2.5)  # fmt: skip
    cfg = botocore_config(s)
    assert cfg.region_name == "eu-west-1"
    assert cfg.retries == {"mode": "standard", "max_attempts": 7}
    assert (cfg.connect_timeout, cfg.read_timeout) == (1.5, 2.5)
    backend = AwsBackend(s)
    for client, service in ((backend.client, "autoscaling"), (backend.ec2, "ec2")):
        assert client.meta.service_model.service_name == service
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == _url(s)
        c = client.meta.config
        assert c.retries == {"mode": "standard", "total_max_attempts": 8}
        assert (c.connect_timeout, c.read_timeout) == (1.5, 2.5)
    assert aws_session(s).region_name == "eu-west-1"
    # no endpoint configured: the real regional AWS endpoint (nothing is sent here)
    real = make_client(replace(s, aws_endpoint_url=""), "autoscaling")
    assert real.meta.endpoint_url == "https://autoscaling.eu-west-1.amazonaws.com"
    # clients handed in are used as they are
    given = AwsBackend(s, autoscaling=backend.client, ec2=backend.ec2)
    assert given.client is backend.client and given.ec2 is backend.ec2
    assert (given.allowed_groups, given.allowed_tag) == ((), "fleetcast:managed")
    named = AwsBackend(replace(s, allowed_groups=["a", "b"], allowed_tag="t:x"),  # type: ignore[arg-type]
                       autoscaling=backend.client, ec2=backend.ec2)  # fmt: skip
    assert (named.allowed_groups, named.allowed_tag) == (("a", "b"), "t:x")


def test_a_credentials_block_session_is_loaded_once_and_errors_say_how_to_fix(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Prefect API lookup itself is covered by test_aws_credentials.py (a real server, slow);
    # here AwsCredentials.load returns an in-process block, so the session wiring is checked
    loads: list[str] = []

    def load(name: str, *_: Any, **__: Any) -> AwsCredentials:
        loads.append(name)
        if name == "missing":
            raise ValueError("Unable to find block document named missing")
        return AwsCredentials(aws_access_key_id="blockkey", aws_secret_access_key="blocksecret",  # noqa: S106
                              region_name="ap-south-1")  # fmt: skip

    monkeypatch.setattr(AwsCredentials, "load", load)
    aws._block_session.cache_clear()
    try:
        s = replace(aws_settings, aws_credentials_block="team-aws", aws_region="eu-west-1")
        session = aws_session(s)
        assert session is aws_session(s) and loads == ["team-aws"]
        assert session.get_credentials().access_key == "blockkey"
        client = make_client(s, "autoscaling")
        assert client.meta.region_name == "eu-west-1"  # the setting, not the block's region
        assert client._request_signer._credentials.access_key == "blockkey"
        with pytest.raises(CredentialsBlockError) as err:
            aws_session(replace(s, aws_credentials_block="missing"))
        assert str(err.value) == (
            "AWS credentials block 'missing' could not be loaded from the Prefect API (Unable to "
            "find block document named missing); create it (prefect block register -m "
            "prefect_aws, then in the UI or with AwsCredentials(...).save(name)) or unset "
            "FLEETCAST_AWS_CREDENTIALS_BLOCK"
        )
        assert isinstance(err.value.__cause__, ValueError)
    finally:
        aws._block_session.cache_clear()


def test_without_prefect_aws_a_credentials_block_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prefect_aws", None)  # the import fails
    aws._block_session.cache_clear()
    try:
        with pytest.raises(CredentialsBlockError) as err:
            aws._block_session("team-aws")
        assert str(err.value) == "the AwsCredentials block needs prefect-aws"
        assert isinstance(err.value.__cause__, ImportError)
    finally:
        aws._block_session.cache_clear()


def test_mutating_operations_are_real_auto_scaling_operations(aws_settings: Settings) -> None:
    names = set(make_client(aws_settings, "autoscaling").meta.service_model.operation_names)
    assert MUTATING_OPERATIONS <= names and len(MUTATING_OPERATIONS) == 7
    assert not any(op.startswith("Describe") for op in MUTATING_OPERATIONS)


def test_describe_reads_groups_in_batches_with_busy_instances(aws_settings: Settings) -> None:
    url = _url(aws_settings)
    make_group(url, "a1", desired=3, min_size=1, max_size=9, tags={"k": "v"})
    make_group(url, "b2", desired=2, managed=False)
    a_ids, b_ids = instance_ids(url, "a1"), instance_ids(url, "b2")
    mark_busy(url, a_ids[1:2])
    # a busy tag that is not "true", and busy instances of a group not asked for
    aws_ec2 = AwsBackend(aws_settings).ec2
    aws_ec2.create_tags(Resources=[a_ids[2]], Tags=[{"Key": "fleetcast:busy", "Value": "no"}])
    aws_ec2.create_tags(Resources=[b_ids[0]], Tags=[{"Key": "fleetcast:busy", "Value": "TRUE"}])
    backend = AwsBackend(aws_settings)
    log, ec2_log = CallLog(backend.client), CallLog(backend.ec2, "ec2")
    # 51 names: two DescribeAutoScalingGroups calls (50 + 1), sorted, duplicates dropped
    names = [f"zz-missing-{n:02d}" for n in range(49)] + ["a1", "b2", "a1", "zzz-last"]
    got = backend.describe_many(names)
    assert sorted(got) == ["a1", "b2"]
    sent = [p for op, p in log.calls if op == "DescribeAutoScalingGroups"]
    assert [p["MaxRecords"] for p in sent] == [100, 100]
    assert [p["AutoScalingGroupNames"] for p in sent] == [
        sorted(set(names))[:50], sorted(set(names))[50:]]  # fmt: skip
    assert ec2_log.calls == [("DescribeTags", {"Filters": [
        {"Name": "resource-type", "Values": ["instance"]},
        {"Name": "key", "Values": ["fleetcast:busy"]}]})]  # fmt: skip
    a = got["a1"]
    assert (a.name, a.desired, a.min_size, a.max_size) == ("a1", 3, 1, 9)
    assert a.tags == {"fleetcast:managed": "true", "k": "v"}
    in_order = [i["InstanceId"] for i in group(url, "a1")["Instances"]]  # as AWS lists them
    assert a.instances == tuple(InstanceState(i, "InService", False, busy=(i == a_ids[1]))
                                for i in in_order)  # fmt: skip
    assert a.busy_ids == frozenset(a_ids[1:2])
    assert got["b2"].busy_ids == frozenset(b_ids[:1]) and got["b2"].tags == {}
    assert backend.describe("a1") == a
    with pytest.raises(GroupNotFound) as err:
        backend.describe("nope")
    assert str(err.value) == "no Auto Scaling group named 'nope'"
    # nothing asked, or groups without instances: no DescribeTags at all
    ec2_log.calls.clear()
    assert backend.describe_many([]) == {}
    make_group(url, "empty", desired=0)
    assert backend.describe("empty").instances == ()
    assert ec2_log.calls == []


def test_group_state_defaults_for_fields_aws_may_leave_out() -> None:
    entry = {"AutoScalingGroupName": "g", "DesiredCapacity": "2", "MinSize": "1", "MaxSize": "5",
             "Tags": [{"Key": "k"}], "Instances": [{"InstanceId": "i-1"}]}  # fmt: skip
    assert aws._group_state(entry, {"i-1"}) == GroupState(
        "g", 2, 1, 5, {"k": ""}, (InstanceState("i-1", "", False, busy=True),)
    )
    bare = {"AutoScalingGroupName": "h", "DesiredCapacity": 0, "MinSize": 0, "MaxSize": 0}
    assert aws._group_state(bare, set()) == GroupState("h", 0, 0, 0, {}, ())
    protected = dict(entry, Instances=[{"InstanceId": "i-2", "LifecycleState": "Pending",
                                        "ProtectedFromScaleIn": True}])  # fmt: skip
    assert aws._group_state(protected, set()).instances == (
        InstanceState("i-2", "Pending", True, busy=False),
    )


def test_error_code_reads_the_aws_code_or_nothing() -> None:
    assert aws._error_code(ClientError({"Error": {"Code": "Throttling"}}, "Op")) == "Throttling"
    assert aws._error_code(ClientError({"Error": {}}, "Op")) == ""
    assert aws._error_code(ClientError({}, "Op")) == ""
    assert aws._error_code(ValueError("no response")) == ""


def test_writes_send_exact_parameters_and_never_describe_again(aws_settings: Settings) -> None:
    url = _url(aws_settings)
    make_group(url, "g1", desired=2, max_size=10)
    ids = instance_ids(url, "g1")
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    backend.describe("g1")
    log.calls.clear()
    backend.set_desired("g1", 3)  # type: ignore[arg-type]
    backend.update_max("g1", 12)
    backend.set_tags("g1", {"fleetcast:processes-per-instance": "4", "x": "y"})
    backend.set_protection("g1", [ids[1], ids[0]], True)
    tag = {"ResourceId": "g1", "ResourceType": "auto-scaling-group", "PropagateAtLaunch": False}
    assert log.calls == [
        ("SetDesiredCapacity",
         {"AutoScalingGroupName": "g1", "DesiredCapacity": 3, "HonorCooldown": False}),
        ("UpdateAutoScalingGroup", {"AutoScalingGroupName": "g1", "MaxSize": 12}),
        ("CreateOrUpdateTags", {"Tags": [
            {**tag, "Key": "fleetcast:processes-per-instance", "Value": "4"},
            {**tag, "Key": "x", "Value": "y"}]}),
        ("SetInstanceProtection", {"AutoScalingGroupName": "g1", "InstanceIds": ids[:2],
                                   "ProtectedFromScaleIn": True}),
    ]  # fmt: skip
    g = group(url, "g1")
    assert (g["DesiredCapacity"], g["MaxSize"]) == (3, 12)
    assert {t["Key"]: t["Value"] for t in g["Tags"]}["fleetcast:processes-per-instance"] == "4"
    assert {i["InstanceId"] for i in g["Instances"] if i["ProtectedFromScaleIn"]} == set(ids[:2])
    log.calls.clear()
    backend.set_protection("g1", ids[:1], False)
    assert log.calls == [
        (
            "SetInstanceProtection",
            {"AutoScalingGroupName": "g1", "InstanceIds": ids[:1], "ProtectedFromScaleIn": False},
        )
    ]
    # a group never read: one DescribeAutoScalingGroups, then the write
    fresh = AwsBackend(aws_settings)
    flog = CallLog(fresh.client)
    fresh.set_desired("g1", 1)
    assert flog.ops == ["DescribeAutoScalingGroups", "SetDesiredCapacity"]


def test_protection_goes_out_50_ids_a_call(aws_settings: Settings) -> None:
    url = _url(aws_settings)
    make_group(url, "g1", desired=1)
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    ids = [f"i-{n:03d}" for n in range(101)]
    backend.set_protection("g1", reversed(ids), True)  # type: ignore[arg-type]
    sent = [p["InstanceIds"] for op, p in log.calls if op == "SetInstanceProtection"]
    assert sent == [ids[:50], ids[50:100], ids[100:]]


def test_every_write_refuses_a_group_off_the_allow_list(aws_settings: Settings) -> None:
    url = _url(aws_settings)
    make_group(url, "stranger", desired=1, managed=False, tags={"fleetcast:managed": "false"})
    ids = instance_ids(url, "stranger")
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    calls = {"set_desired": (3,), "update_max": (3,), "set_tags": ({"k": "v"},),
             "set_protection": (ids, True)}  # fmt: skip
    for call, args in calls.items():
        with pytest.raises(GroupNotAllowed) as err:
            getattr(backend, call)("stranger", *args)
        assert str(err.value) == (
            "group 'stranger' is not on the allow-list: add it to FLEETCAST_ALLOWED_GROUPS or "
            "tag it fleetcast:managed=true; fleetcast changes nothing else"
        ), call
    assert log.mutating == []
    # named in the settings: allowed without the tag, each call goes out once
    named = AwsBackend(replace(aws_settings, allowed_groups=("stranger",)), ec2=backend.ec2)
    nlog = CallLog(named.client)
    for call, args in calls.items():
        getattr(named, call)("stranger", *args)
    assert nlog.mutating_ops == ["SetDesiredCapacity", "UpdateAutoScalingGroup",
                                 "CreateOrUpdateTags", "SetInstanceProtection"]  # fmt: skip


def test_scaling_in_progress_is_its_own_error_other_errors_pass_through(
    aws_settings: Settings,
) -> None:
    make_group(_url(aws_settings), "g1", desired=1)
    backend = AwsBackend(aws_settings)
    backend.describe("g1")
    seen = inject_error(backend.client, "SetDesiredCapacity", "ScalingActivityInProgress", 1)
    with pytest.raises(ScalingInProgress) as err:
        backend.set_desired("g1", 3)
    assert seen == [1]  # not retried by botocore
    assert "ScalingActivityInProgress" in str(err.value) and "injected" in str(err.value)
    assert isinstance(err.value.__cause__, ClientError)
    inject_error(backend.client, "SetDesiredCapacity", "ValidationError", 1)
    with pytest.raises(ClientError) as other:
        backend.set_desired("g1", 3)
    assert other.value.response["Error"]["Code"] == "ValidationError"
    assert not isinstance(other.value, ScalingInProgress)
    assert group(_url(aws_settings), "g1")["DesiredCapacity"] == 1


def test_throttling_is_retried_up_to_max_attempts(aws_settings: Settings) -> None:
    make_group(_url(aws_settings), "g1", desired=1)
    s = replace(aws_settings, aws_max_attempts=1)  # one retry: two attempts in all
    backend = AwsBackend(s)
    backend.describe("g1")
    seen = inject_error(backend.client, "SetDesiredCapacity", "Throttling", 1)
    backend.set_desired("g1", 3)  # one throttled attempt, then through
    assert seen == [1] and group(_url(s), "g1")["DesiredCapacity"] == 3
    seen = inject_error(backend.client, "SetDesiredCapacity", "Throttling", 2)
    with pytest.raises(ClientError) as err:  # both attempts throttled: raised, not swallowed
        backend.set_desired("g1", 4)
    assert seen == [2] and err.value.response["Error"]["Code"] == "Throttling"
    assert group(_url(s), "g1")["DesiredCapacity"] == 3


ASG_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def asg_answer(groups: str | None) -> str:
    """A DescribeAutoScalingGroups answer with these group members (None: no list at all)."""
    inner = "" if groups is None else f"<AutoScalingGroups>{groups}</AutoScalingGroups>"
    return (
        f'<DescribeAutoScalingGroupsResponse xmlns="{ASG_NS}"><DescribeAutoScalingGroupsResult>'
        f"{inner}</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>"
    )


def test_optional_fields_left_out_of_an_answer_read_as_empty(aws_settings: Settings) -> None:
    # the API model makes a group's Instances and Tags and DescribeTags' Tags optional
    backend = AwsBackend(aws_settings)
    group_xml = (
        "<member><AutoScalingGroupName>{name}</AutoScalingGroupName><MinSize>0</MinSize>"
        "<MaxSize>3</MaxSize><DesiredCapacity>1</DesiredCapacity>{extra}</member>"
    )
    groups = group_xml.format(name="bare", extra="") + group_xml.format(
        name="one",
        extra="<Instances><member><InstanceId>i-1</InstanceId><LifecycleState>InService"
        "</LifecycleState><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member></Instances>",
    )
    answer_once(backend.client, "autoscaling.DescribeAutoScalingGroups", asg_answer(groups))
    no_tags = (
        f'<DescribeTagsResponse xmlns="{EC2_NS}"><requestId>r</requestId></DescribeTagsResponse>'
    )
    answer_once(backend.ec2, "ec2.DescribeTags", no_tags)
    got = backend.describe_many(["bare", "one"])
    assert got == {
        "bare": GroupState("bare", 1, 0, 3, {}, ()),
        "one": GroupState("one", 1, 0, 3, {}, (InstanceState("i-1", "InService", False),)),
    }
    # an answer with no AutoScalingGroups element at all: no groups
    answer_once(backend.client, "autoscaling.DescribeAutoScalingGroups", asg_answer(None))
    assert backend.describe_many(["gone"]) == {}
