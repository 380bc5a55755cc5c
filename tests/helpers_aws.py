"""The one place tests create and read Auto Scaling groups on the local moto server, count the
calls a boto3 client makes, and inject AWS faults. No fixtures here (conftest.py holds those).

Mutating calls are counted with a botocore 'before-parameter-build' event hook (observation
only); faults are injected with a 'before-send' hook that returns a canned AWS error response,
so the request never reaches moto (moto itself has no fault injection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from fleetcast.resources.aws import MUTATING_OPERATIONS

REGION = "us-east-1"
MANAGED_TAG = "fleetcast:managed"
BUSY_TAG = "fleetcast:busy"


def client(url: str, service: str = "autoscaling") -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=url)


def make_group(
    url: str,
    name: str,
    *,
    desired: int = 2,
    min_size: int = 0,
    max_size: int = 30,
    managed: bool = True,
    tags: Mapping[str, str] | None = None,
) -> None:
    """An Auto Scaling group on the moto server (moto launches ``desired`` instances), tagged
    ``fleetcast:managed=true`` when ``managed``; ``tags`` adds (or overrides) group tags."""
    # a fixed AMI id: listing moto's images costs seconds and moto does not check the id
    client(url, "ec2").create_launch_template(
        LaunchTemplateName=f"lt-{name}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    values = {MANAGED_TAG: "true"} if managed else {}
    values.update(tags or {})
    client(url).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"lt-{name}", "Version": "$Latest"},
        MinSize=min_size,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
            }
            for k, v in values.items()
        ],  # fmt: skip
    )


def group(url: str, name: str) -> dict[str, Any]:
    resp = client(url).describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return resp["AutoScalingGroups"][0]  # type: ignore[no-any-return]


def desired(url: str, name: str) -> int:
    return int(group(url, name)["DesiredCapacity"])


def all_desired(url: str) -> dict[str, int]:
    """Every group's desired capacity, by name."""
    groups = client(url).describe_auto_scaling_groups()["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: int(g["DesiredCapacity"]) for g in groups}


def instance_ids(url: str, name: str) -> list[str]:
    return sorted(i["InstanceId"] for i in group(url, name)["Instances"])


def set_desired(url: str, name: str, value: int) -> None:
    """Change a group behind fleetcast's back (as an operator or another system would)."""
    client(url).set_desired_capacity(
        AutoScalingGroupName=name, DesiredCapacity=value, HonorCooldown=False
    )


def mark_busy(url: str, ids: Iterable[str], busy: bool = True) -> None:
    """Tag instances as hosting a live session (``busy``) or remove that tag."""
    ids = list(ids)
    if busy:
        client(url, "ec2").create_tags(Resources=ids, Tags=[{"Key": BUSY_TAG, "Value": "true"}])
    else:
        client(url, "ec2").delete_tags(Resources=ids, Tags=[{"Key": BUSY_TAG}])


class CallLog:
    """Every operation a boto3 client makes (Auto Scaling unless ``service`` says otherwise),
    with its API parameters."""

    def __init__(self, boto_client: Any, service: str = "autoscaling") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        boto_client.meta.events.register(f"before-parameter-build.{service}", self._on)

    def _on(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    @property
    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    @property
    def mutating(self) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] in MUTATING_OPERATIONS]

    @property
    def mutating_ops(self) -> list[str]:
        return [op for op, _ in self.mutating]

    @property
    def touched(self) -> set[str]:
        """Names of the groups a mutating call was made on."""
        return {
            p.get("AutoScalingGroupName") or p["Tags"][0]["ResourceId"] for _, p in self.mutating
        }

    def sent(self, op: str, key: str) -> list[Any]:
        return [p[key] for o, p in self.mutating if o == op]


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def error_response(request: Any, code: str, status: int = 400) -> AWSResponse:
    """A canned AWS query-protocol error, as the service would answer."""
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>injected {code}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
    ).encode()
    return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Body(body))


def inject_error(
    boto_client: Any, operation: str, code: str, times: int, *, only: str | None = None
) -> list[int]:
    """Answer the next ``times`` HTTP requests of ``operation`` (whose body names ``only``,
    e.g. one group, when given) with a canned 400 ``code`` (botocore 'before-send': the request
    never reaches moto). Returns a live counter."""
    seen = [0]

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        if seen[0] >= times:
            return None
        sent = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if only is not None and only not in sent:
            return None
        seen[0] += 1
        return error_response(request, code)

    boto_client.meta.events.register(f"before-send.autoscaling.{operation}", handler)
    return seen


def answer_once(boto_client: Any, event: str, body: str) -> None:
    """Answer the next request of ``event`` (``service.Operation``) with ``body``, HTTP 200, as
    the service would (botocore 'before-send': the request never reaches moto); a shape moto
    never produces, such as an answer leaving out the optional members."""
    used = [False]

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        if used[0]:
            return None
        used[0] = True
        return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, _Body(body.encode()))

    boto_client.meta.events.register(f"before-send.{event}", handler)
