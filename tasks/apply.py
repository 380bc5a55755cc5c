"""Prefect task: apply a capacity plan through the capacity backend and record each decision.

No task-level retries: AWS calls already retry (botocore standard mode), a refused or failed
fleet is recorded, and a deferred change is retried by the next scheduled run.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetcast.config import Settings
from fleetcast.resources.aws import CapacityBackend
from fleetcast.stages.allocate import Plan, apply_and_record
from models.policy import Decision


@task(name="apply-capacity", cache_policy=NO_CACHE)
def apply_capacity(settings: Settings, plan: Plan, *, backend: CapacityBackend) -> list[Decision]:
    return apply_and_record(settings, plan, backend=backend)
