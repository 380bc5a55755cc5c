"""Capacity backends: read an Auto Scaling group, set an absolute capacity, protect busy servers.

``CapacityBackend`` is the interface; ``AwsBackend`` talks to EC2 Auto Scaling through boto3
(or a local moto server when ``Settings.aws_endpoint_url`` is set), ``RecordedBackend`` keeps
groups in memory and records what it was asked to do (no AWS at all). :func:`apply_decision`
holds the rules every backend shares: read before write, no call when nothing changes,
absolute targets only, the allow-list, forecast-only mode, busy-instance protection.

Credentials come from a Prefect ``AwsCredentials`` block when ``Settings.aws_credentials_block``
names one (:func:`aws_session`), else from the standard chain (environment, profile, instance
role); nothing here reads or stores a key.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.policy import Decision

PPI_TAG = "fleetcast:processes-per-instance"
BUSY_TAG = "fleetcast:busy"
MANAGED_VALUE = "true"
MUTATING_OPERATIONS = frozenset(
    {
        "SetDesiredCapacity",
        "UpdateAutoScalingGroup",
        "SetInstanceProtection",
        "CreateOrUpdateTags",
        "DeleteTags",
        "TerminateInstanceInAutoScalingGroup",
        "DeleteAutoScalingGroup",
    }
)
DESCRIBE_BATCH = 50  # group names per DescribeAutoScalingGroups call


class GroupNotAllowed(PermissionError):
    """A group that is not on the allow-list: fleetcast never changes it."""


class GroupNotFound(LookupError):
    """No Auto Scaling group with that name."""


class ScalingInProgress(RuntimeError):
    """AWS refused a change while a scaling activity runs (retried on the next cycle)."""


@dataclass(frozen=True)
class InstanceState:
    instance_id: str
    lifecycle_state: str
    protected: bool
    busy: bool = False


@dataclass(frozen=True)
class GroupState:
    name: str
    desired: int
    min_size: int
    max_size: int
    tags: Mapping[str, str] = field(default_factory=dict)
    instances: tuple[InstanceState, ...] = ()

    @property
    def busy_ids(self) -> frozenset[str]:
        return frozenset(i.instance_id for i in self.instances if i.busy)


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # a SetDesiredCapacity was sent and accepted
    applied_desired: int | None  # what was sent (None = nothing sent)
    sent_max: int | None  # a MaxSize sent with UpdateAutoScalingGroup
    protected: tuple[str, ...]
    released: tuple[str, ...]
    calls: tuple[str, ...]  # mutating operations made
    outcome: str


class CapacityBackend(Protocol):
    """What fleetcast needs from a capacity provider."""

    def describe(self, asg_name: str) -> GroupState: ...

    def describe_many(self, asg_names: Collection[str]) -> dict[str, GroupState]: ...

    def set_desired(self, asg_name: str, desired: int) -> None: ...

    def update_max(self, asg_name: str, max_size: int) -> None: ...

    def set_tags(self, asg_name: str, tags: Mapping[str, str]) -> None: ...

    def set_protection(
        self, asg_name: str, instance_ids: Collection[str], protected: bool
    ) -> None: ...


def is_allowed(state: GroupState, allowed_groups: Iterable[str], allowed_tag: str) -> bool:
    """A group may be changed when named in the allow-list or tagged ``<allowed_tag>=true``."""
    if state.name in set(allowed_groups):
        return True
    return str(state.tags.get(allowed_tag, "")).lower() == MANAGED_VALUE


def _not_allowed(name: str, allowed_tag: str) -> GroupNotAllowed:
    return GroupNotAllowed(
        f"group {name!r} is not on the allow-list: add it to FLEETCAST_ALLOWED_GROUPS or tag "
        f"it {allowed_tag}=true; fleetcast changes nothing else"
    )


# ---------------------------------------------------------------------------------------------
# AWS (boto3)


class AwsSettings(Protocol):
    """What the AWS backend reads from the composition root's ``fleetcast.config.Settings``
    (a protocol, so that this floor never imports the root that builds it)."""

    @property
    def aws_region(self) -> str: ...
    @property
    def aws_endpoint_url(self) -> str | None: ...
    @property
    def aws_credentials_block(self) -> str | None: ...
    @property
    def aws_max_attempts(self) -> int: ...
    @property
    def aws_connect_timeout(self) -> float: ...
    @property
    def aws_read_timeout(self) -> float: ...
    @property
    def allowed_groups(self) -> tuple[str, ...]: ...
    @property
    def allowed_tag(self) -> str: ...


def botocore_config(settings: AwsSettings) -> Any:
    """Standard retry mode (throttling and transient errors, with backoff) and timeouts."""
    from botocore.config import Config

    return Config(
        region_name=settings.aws_region,
        retries={
            "mode": "standard",
            "max_attempts": settings.aws_max_attempts,
        },
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
    )


class CredentialsBlockError(RuntimeError):
    """The configured Prefect AwsCredentials block could not be loaded."""


@functools.cache
def _block_session(block: str) -> Any:
    """The boto3 session of a Prefect ``AwsCredentials`` block, loaded once per process."""
    try:
        from prefect_aws import AwsCredentials
    except ImportError as exc:  # pragma: no cover - prefect-aws is a locked dependency
        raise CredentialsBlockError("the AwsCredentials block needs prefect-aws") from exc
    try:
        credentials = AwsCredentials.load(block)
    except Exception as exc:
        raise CredentialsBlockError(
            f"AWS credentials block {block!r} could not be loaded from the Prefect API ({exc}); "
            "create it (prefect block register -m prefect_aws, then in the UI or with "
            "AwsCredentials(...).save(name)) or unset FLEETCAST_AWS_CREDENTIALS_BLOCK"
        ) from exc
    return credentials.get_boto3_session()


def aws_session(settings: AwsSettings) -> Any:
    """The boto3 session every client is built from, resolved once: the Prefect
    ``AwsCredentials`` block named by ``settings.aws_credentials_block`` when set (loaded from
    the Prefect API the first time, then reused), else the standard credential chain."""
    import boto3

    if settings.aws_credentials_block:
        return _block_session(settings.aws_credentials_block)
    return boto3.session.Session(region_name=settings.aws_region)


def make_client(settings: AwsSettings, service: str) -> Any:
    """A boto3 client from Settings, on :func:`aws_session` (a credentials block or the
    standard chain), in ``settings.aws_region``."""
    session = aws_session(settings)
    return session.client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url or None,  # only for a local moto server
        config=botocore_config(settings),
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _group_state(g: Mapping[str, Any], busy: Collection[str]) -> GroupState:
    """A GroupState from one DescribeAutoScalingGroups entry and the busy instance ids."""
    return GroupState(
        name=g["AutoScalingGroupName"],
        desired=int(g["DesiredCapacity"]),
        min_size=int(g["MinSize"]),
        max_size=int(g["MaxSize"]),
        tags={t["Key"]: t.get("Value", "") for t in g.get("Tags", [])},
        instances=tuple(
            InstanceState(
                instance_id=i["InstanceId"],
                lifecycle_state=i.get("LifecycleState", ""),
                protected=bool(i.get("ProtectedFromScaleIn", False)),
                busy=i["InstanceId"] in busy,
            )
            for i in g.get("Instances", [])
        ),
    )


class AwsBackend:
    """EC2 Auto Scaling through boto3. Every mutating call checks the allow-list first."""

    def __init__(
        self,
        settings: AwsSettings,
        *,
        autoscaling: Any | None = None,
        ec2: Any | None = None,
    ) -> None:
        self.allowed_groups = tuple(settings.allowed_groups)
        self.allowed_tag = settings.allowed_tag
        self.client = autoscaling or make_client(settings, "autoscaling")
        self.ec2 = ec2 or make_client(settings, "ec2")
        self._states: dict[str, GroupState] = {}

    def describe(self, asg_name: str) -> GroupState:
        state = self.describe_many([asg_name]).get(asg_name)
        if state is None:
            raise GroupNotFound(f"no Auto Scaling group named {asg_name!r}")
        return state

    def describe_many(self, asg_names: Collection[str]) -> dict[str, GroupState]:
        """Every named group that exists, by name, in as few calls as the API allows: one
        paginated DescribeAutoScalingGroups per ``DESCRIBE_BATCH`` names and one paginated
        DescribeTags for the busy tags (``_busy_instances``), not two calls per group.
        Names that match no group are absent from the result."""
        names = sorted(set(asg_names))
        groups: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("describe_auto_scaling_groups")
        for start in range(0, len(names), DESCRIBE_BATCH):
            chunk = names[start : start + DESCRIBE_BATCH]
            for page in paginator.paginate(AutoScalingGroupNames=chunk, MaxRecords=100):
                groups.extend(page.get("AutoScalingGroups", []))
        busy = self._busy_instances(
            [i["InstanceId"] for g in groups for i in g.get("Instances", [])]
        )
        out: dict[str, GroupState] = {}
        for g in groups:
            state = _group_state(g, busy)
            self._states[state.name] = state
            out[state.name] = state
        return out

    def _busy_instances(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are tagged ``fleetcast:busy=true`` (the game server sets it while
        hosting): one paginated DescribeTags of that tag key on instances, intersected with
        ``ids``. (DescribeInstances per 200 ids made the 100-group cycle wait on the instance
        scan each time: 11 s on moto with ~3,000 instances.)"""
        if not ids:
            return set()
        wanted, busy = set(ids), set()
        filters = [
            {"Name": "resource-type", "Values": ["instance"]},
            {"Name": "key", "Values": [BUSY_TAG]},
        ]
        for page in self.ec2.get_paginator("describe_tags").paginate(Filters=filters):
            for tag in page.get("Tags", []):
                rid = tag.get("ResourceId", "")
                if rid in wanted and str(tag.get("Value", "")).lower() == "true":
                    busy.add(rid)
        return busy

    def _guard(self, asg_name: str) -> None:
        state = self._states.get(asg_name) or self.describe(asg_name)
        if not is_allowed(state, self.allowed_groups, self.allowed_tag):
            raise _not_allowed(asg_name, self.allowed_tag)

    def set_desired(self, asg_name: str, desired: int) -> None:
        from botocore.exceptions import ClientError

        self._guard(asg_name)
        try:
            self.client.set_desired_capacity(
                AutoScalingGroupName=asg_name, DesiredCapacity=int(desired), HonorCooldown=False
            )
        except ClientError as exc:
            if _error_code(exc) == "ScalingActivityInProgress":
                raise ScalingInProgress(str(exc)) from exc
            raise

    def update_max(self, asg_name: str, max_size: int) -> None:
        self._guard(asg_name)
        self.client.update_auto_scaling_group(AutoScalingGroupName=asg_name, MaxSize=int(max_size))

    def set_tags(self, asg_name: str, tags: Mapping[str, str]) -> None:
        self._guard(asg_name)
        self.client.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": asg_name,
                    "ResourceType": "auto-scaling-group",
                    "Key": k,
                    "Value": v,
                    "PropagateAtLaunch": False,
                }
                for k, v in tags.items()
            ]
        )

    def set_protection(self, asg_name: str, instance_ids: Collection[str], protected: bool) -> None:
        self._guard(asg_name)
        ids = sorted(instance_ids)
        for start in range(0, len(ids), 50):  # the API takes at most 50 ids per call
            self.client.set_instance_protection(
                AutoScalingGroupName=asg_name,
                InstanceIds=ids[start : start + 50],
                ProtectedFromScaleIn=protected,
            )


# ---------------------------------------------------------------------------------------------
# Recorded (no AWS)


class RecordedBackend:
    """Groups kept in memory; records every request and applies it to its own state.

    For runs without AWS (a dry demo, a replay): nothing leaves the process.
    """

    def __init__(
        self,
        groups: Iterable[GroupState] = (),
        *,
        allowed_groups: Iterable[str] = (),
        allowed_tag: str = "fleetcast:managed",
    ) -> None:
        self.groups: dict[str, GroupState] = {g.name: g for g in groups}
        self.allowed_groups = tuple(allowed_groups)
        self.allowed_tag = allowed_tag
        self.calls: list[tuple[str, str, Any]] = []

    def describe(self, asg_name: str) -> GroupState:
        if asg_name not in self.groups:
            raise GroupNotFound(f"no Auto Scaling group named {asg_name!r}")
        return self.groups[asg_name]

    def describe_many(self, asg_names: Collection[str]) -> dict[str, GroupState]:
        return {n: self.groups[n] for n in asg_names if n in self.groups}

    def _guard(self, asg_name: str) -> GroupState:
        state = self.describe(asg_name)
        if not is_allowed(state, self.allowed_groups, self.allowed_tag):
            raise _not_allowed(asg_name, self.allowed_tag)
        return state

    def set_desired(self, asg_name: str, desired: int) -> None:
        from dataclasses import replace

        state = self._guard(asg_name)
        self.calls.append(("SetDesiredCapacity", asg_name, desired))
        self.groups[asg_name] = replace(state, desired=int(desired))

    def update_max(self, asg_name: str, max_size: int) -> None:
        from dataclasses import replace

        state = self._guard(asg_name)
        self.calls.append(("UpdateAutoScalingGroup", asg_name, max_size))
        self.groups[asg_name] = replace(state, max_size=int(max_size))

    def set_tags(self, asg_name: str, tags: Mapping[str, str]) -> None:
        from dataclasses import replace

        state = self._guard(asg_name)
        self.calls.append(("CreateOrUpdateTags", asg_name, dict(tags)))
        self.groups[asg_name] = replace(state, tags={**state.tags, **tags})

    def set_protection(self, asg_name: str, instance_ids: Collection[str], protected: bool) -> None:
        from dataclasses import replace

        state = self._guard(asg_name)
        ids = set(instance_ids)
        self.calls.append(("SetInstanceProtection", asg_name, (sorted(ids), protected)))
        instances = tuple(
            replace(i, protected=protected) if i.instance_id in ids else i for i in state.instances
        )
        self.groups[asg_name] = replace(state, instances=instances)


# ---------------------------------------------------------------------------------------------
# The shared apply rules


def apply_decision(
    backend: CapacityBackend,
    decision: Decision,
    state: GroupState,
    *,
    allowed_groups: Iterable[str],
    allowed_tag: str,
    busy_ids: Collection[str] = (),
) -> ApplyResult:
    """Bring ``state`` (read just before) to ``decision`` with the fewest calls.

    forecast_only mode: no mutating call at all. Otherwise: refuse groups off the allow-list;
    raise MaxSize first when the decision says so; protect busy instances before any scale-in
    and release protected instances that have drained, never going below the busy instances
    in ``state`` (sessions that started after the plan) nor below a desired capacity raised
    since the plan read ``decision.current`` (its scale-in was never checked); write the
    processes-per-instance tag only when it changed; send an absolute SetDesiredCapacity (never
    above the group's max, never below its min) only when it differs from the current desired;
    restore a raised max last. ``ScalingActivityInProgress`` is recorded as deferred, not raised.
    """
    name = state.name
    target = decision.target
    if decision.mode != "scale":
        would = "no change" if target == state.desired else f"would set {target}"
        return ApplyResult(False, None, None, (), (), (), f"forecast-only: {would}")
    if not is_allowed(state, allowed_groups, allowed_tag):
        raise _not_allowed(name, allowed_tag)

    calls: list[str] = []
    notes: list[str] = []
    sent_max: int | None = None
    group_max = state.max_size
    want_max = decision.new_max_size
    if want_max is not None and want_max > state.max_size:
        backend.update_max(name, want_max)
        calls.append("UpdateAutoScalingGroup")
        sent_max = group_max = want_max
    if target > group_max:
        notes.append(f"target {target} capped at the group's MaxSize {group_max}")
        target = group_max
    if target < state.min_size:
        notes.append(f"target {target} raised to the group's MinSize {state.min_size}")
        target = state.min_size
    # Raised since the plan read it (by hand, or another scaler): the plan's scale-in checks
    # were made from the lower value, so this cycle never lowers the group below what it is now.
    if decision.current is not None and decision.current < state.desired and target < state.desired:
        notes.append(
            f"target {target} held at {state.desired}: the group was raised from "
            f"{decision.current} since the plan, so no scale-in this cycle"
        )
        target = state.desired

    busy = set(state.busy_ids) | set(busy_ids)
    live = {i.instance_id: i for i in state.instances if i.lifecycle_state != "Terminating"}
    # Sessions may have started since the plan: never below the busy instances read now (R5).
    floor = min(len(busy & live.keys()), group_max)
    if target < floor:
        notes.append(f"target {target} raised to the {floor} busy instances read before apply")
        target = floor
    protect = sorted(i for i in busy if i in live and not live[i].protected)
    release = sorted(i for i, inst in live.items() if inst.protected and i not in busy)
    if protect:
        backend.set_protection(name, protect, True)
        calls.append("SetInstanceProtection")
    if release:
        backend.set_protection(name, release, False)
        calls.append("SetInstanceProtection")

    ppi = str(decision.processes_per_instance)
    if state.tags.get(PPI_TAG) != ppi:
        backend.set_tags(name, {PPI_TAG: ppi})
        calls.append("CreateOrUpdateTags")

    applied = False
    applied_desired: int | None = None
    if target != state.desired:
        try:
            backend.set_desired(name, target)
            calls.append("SetDesiredCapacity")
            applied, applied_desired = True, target
            notes.append(f"set desired {state.desired} -> {target}")
        except ScalingInProgress:
            notes.append(
                f"deferred: a scaling activity is in progress; {target} retried next cycle"
            )
    else:
        notes.append(f"desired already {target}: nothing sent")

    if (
        want_max is not None
        and want_max < state.max_size
        and (applied_desired if applied_desired is not None else state.desired) <= want_max
    ):
        backend.update_max(name, want_max)
        calls.append("UpdateAutoScalingGroup")
        sent_max = want_max
    if sent_max is not None:
        notes.append(f"MaxSize {state.max_size} -> {sent_max}")
    if protect:
        notes.append(f"protected {len(protect)} busy")
    if release:
        notes.append(f"released {len(release)} drained")
    return ApplyResult(
        applied=applied,
        applied_desired=applied_desired,
        sent_max=sent_max,
        protected=tuple(protect),
        released=tuple(release),
        calls=tuple(calls),
        outcome="; ".join(notes),
    )
