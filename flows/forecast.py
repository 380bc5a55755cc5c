"""Forecast: each series' champion forecasts the next hours from its last observation."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled
from pydantic import Field

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.orchestration import settings_for
from flows.params import RunParams
from tasks.forecast import forecast_series


class ForecastParams(RunParams):
    """Forecast one game type (or all) and store the run."""

    horizon_hours: int = Field(
        default=48, ge=1, le=24 * 14, description="Hours to forecast from each series' last point"
    )
    out: str | None = Field(default=None, description="Also write the forecast CSV here")


@flow(
    name="forecast",
    flow_run_name="forecast-{params.scope}-{params.horizon_hours}h",
    timeout_seconds=30 * 60,
)
def forecast(params: ForecastParams = ForecastParams()) -> int:  # noqa: B008
    from pathlib import Path

    settings = settings_for(params)
    out = Path(params.out) if params.out else None
    try:  # one writer of the DuckDB file at a time (fleetcast/locking.py)
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="forecast"):
            frame = forecast_series(settings, params.horizon_hours, params.game_type, out)
    except RunLockTimeout as exc:
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    get_run_logger().info("%s: %d forecast rows", params.scope, frame.height)
    return frame.height
