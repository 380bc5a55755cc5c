"""Train: fit and cross-validate every series' candidates, record the champions."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled
from pydantic import Field

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.orchestration import settings_for
from flows.params import RunParams
from tasks.train import train_models


class TrainParams(RunParams):
    """Train the models of one game type (or all)."""

    metric: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="Metric to train (e.g. players); empty = every metric",
    )
    if_needed: bool = Field(
        default=False,
        description="Only retrain series whose realised accuracy fell behind their backtest",
    )


@flow(name="train", flow_run_name="train-{params.scope}", timeout_seconds=50 * 60)
def train(params: TrainParams = TrainParams()) -> int:  # noqa: B008
    logger = get_run_logger()
    settings = settings_for(params)
    try:  # one writer of the DuckDB file at a time (fleetcast/locking.py)
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="train"):
            results = train_models(settings, params.game_type, params.metric, params.if_needed)
    except RunLockTimeout as exc:
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    trained = [r for r in results if r.status == "trained"]
    for r in results:
        if r.status != "trained":
            logger.warning("%s %s: %s", r.key.label(), r.status, r.message)
    logger.info("%s: %d of %d series trained", params.scope, len(trained), len(results))
    return len(trained)
