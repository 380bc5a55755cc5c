"""Prefect task: plan every fleet's capacity (reads DuckDB and the groups; changes nothing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetcast.config import Settings
from fleetcast.resources.aws import CapacityBackend
from fleetcast.stages.allocate import Plan, plan


def _retry_reads(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only transient read failures (a busy database, a network blip), never bad input."""
    try:
        state.result()
    except (ValueError, PermissionError, LookupError):
        return False
    except Exception:
        return True
    return False


@task(
    name="plan-capacity",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_reads,
    cache_policy=NO_CACHE,  # reads live group state
)
def plan_capacity(
    settings: Settings,
    forecast_only: bool = False,
    game_type: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    *,
    backend: CapacityBackend,
) -> Plan:
    from prefect.runtime import flow_run

    return plan(
        settings,
        forecast_only=forecast_only,
        game_type=game_type,
        run_id=run_id,
        now=now,
        backend=backend,
        asked_by=f"flow run {flow_run.name} [{flow_run.id}]",  # what asks for approval
    )
