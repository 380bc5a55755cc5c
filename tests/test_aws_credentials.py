"""AWS credentials from a Prefect AwsCredentials block, saved to and loaded from a real local
Prefect server (the test harness), used against moto; the standard chain otherwise."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from fleetcast.config import SettingError, Settings
from fleetcast.resources import aws
from fleetcast.resources.aws import AwsBackend, CredentialsBlockError, aws_session, make_client
from fleetcast.stages.orchestration import settings_for
from flows.params import ForecastAndScaleParams

# Dummy keys for the local moto server only (conftest sets "testing" for the standard chain).
BLOCK_KEY = "block-key-for-moto-only"  # pragma: allowlist secret
BLOCK_SECRET = "block-secret-for-moto-only"  # pragma: allowlist secret  # noqa: S105


def _signed_with(client: Any) -> list[str]:
    """The access key ids the client signs its requests with (from the Authorization header)."""
    seen: list[str] = []

    def on_send(request: Any, **_: Any) -> None:
        header = request.headers.get("Authorization", b"")
        text = header.decode() if isinstance(header, bytes) else str(header)
        seen.append(text.split("Credential=")[1].split("/")[0])

    client.meta.events.register("before-send.autoscaling", on_send)
    return seen


@pytest.fixture
def block(prefect_harness: None) -> str:
    from prefect_aws import AwsCredentials

    name = "fleetcast-test-aws"
    AwsCredentials(
        aws_access_key_id=BLOCK_KEY,
        aws_secret_access_key=SecretStr(BLOCK_SECRET),
        region_name="us-east-1",
    ).save(name, overwrite=True)
    aws._block_session.cache_clear()
    yield name
    aws._block_session.cache_clear()


def test_a_credentials_block_signs_the_requests(aws_settings: Settings, block: str) -> None:
    settings = replace(aws_settings, aws_credentials_block=block)
    client = make_client(settings, "autoscaling")
    seen = _signed_with(client)
    assert client.describe_auto_scaling_groups()["AutoScalingGroups"] == []  # moto answered
    assert seen == [BLOCK_KEY]
    # resolved once: every client (and the capacity backend's) comes from the same session
    assert aws_session(settings) is aws_session(settings)
    backend = AwsBackend(settings)
    assert backend.client._request_signer._credentials.access_key == BLOCK_KEY
    assert backend.ec2._request_signer._credentials.access_key == BLOCK_KEY

    # without a block: the standard chain (here the environment's dummy key)
    plain = make_client(aws_settings, "autoscaling")
    seen_plain = _signed_with(plain)
    plain.describe_auto_scaling_groups()
    assert seen_plain == ["testing"]


def test_a_missing_block_is_a_clear_error(aws_settings: Settings, prefect_harness: None) -> None:
    aws._block_session.cache_clear()
    settings = replace(aws_settings, aws_credentials_block="no-such-block")
    with pytest.raises(CredentialsBlockError, match="'no-such-block' could not be loaded"):
        make_client(settings, "autoscaling")


def test_the_block_is_a_setting_and_a_flow_parameter() -> None:
    env = {"FLEETCAST_AWS_CREDENTIALS_BLOCK": "prod-aws"}
    assert Settings.from_mapping(env).aws_credentials_block == "prod-aws"
    assert Settings.from_mapping({}).aws_credentials_block is None
    with pytest.raises(SettingError, match="FLEETCAST_AWS_CREDENTIALS_BLOCK"):
        Settings.from_mapping({"FLEETCAST_AWS_CREDENTIALS_BLOCK": "Bad Name!"})
    params = ForecastAndScaleParams(aws_credentials_block="team-aws")
    assert settings_for(params).aws_credentials_block == "team-aws"
    with pytest.raises(ValidationError):
        ForecastAndScaleParams(aws_credentials_block="../x")
