"""Flow parameters: one pydantic model per flow, so the Prefect UI renders a real form.

Every model carries the same optional storage overrides (``db``, ``landing``, ``aws_endpoint``,
``aws_credentials_block``);
left empty, the run takes them from the worker's environment (``FLEETCAST_DB``,
``FLEETCAST_LANDING``, ``FLEETCAST_AWS_ENDPOINT``) through ``Settings.from_env``. Game types are
validated names (``^[a-z0-9_-]{1,64}$``) before they reach SQL or a path.

Two things make the run form and ``--param`` safe:

- Optional fields appear in the schema as their one real type (no ``null`` branch, which the UI
  shows as "Property is type 'None'"); left empty, the default applies.
- A run of a deployment that sets only some fields (``prefect deployment run
  'forecast-and-scale/forecast-and-scale-ranked_arena' --param params='{"capacity_mode":
  "forecast_only"}'``, which replaces the deployment's whole ``params`` object) keeps the
  deployment's other defaults (its ``game_type`` above all): fields the run did not give are
  taken from the deployment's ``params`` before the model's own defaults
  (:func:`deployment_defaults`). ``fleetcast deployments sync`` also offers the game types of
  the fleets table as a choice.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.names import NAME_PATTERN

SAMPLE_GAME_TYPES = ("battle_royale", "ranked_arena", "casual_puzzle", "tournament_series")

GameType = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="A game type: lowercase letters, digits, '_' or '-'",
        examples=list(SAMPLE_GAME_TYPES),
    ),
]

CapacityMode = Literal["fleet_setting", "forecast_only"]
SeriesScope = Literal["capacity", "demand", "all"]
RetrainPolicy = Literal["if_due", "always", "never"]


def _form_schema(schema: dict[str, Any]) -> None:
    """Optional fields as their one real type, without a ``null`` default, in the run form."""
    for prop in (schema.get("properties") or {}).values():
        branches = prop.get("anyOf")
        if not branches or {"type": "null"} not in branches:
            continue
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            del prop["anyOf"]
            prop.update(rest[0])
            if prop.get("default", 0) is None:
                del prop["default"]


_DEPLOYMENT_PARAMS: dict[str, dict[str, Any]] = {}


def deployment_defaults() -> dict[str, Any]:
    """The ``params`` defaults of the deployment this flow run belongs to ({} outside one)."""
    from prefect.context import FlowRunContext
    from prefect.runtime import deployment

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None and ctx.flow_run.deployment_id is None:
        return {}  # a run outside a deployment (tests, the CLI) or a subflow
    deployment_id = deployment.id
    if not deployment_id:
        return {}
    if deployment_id not in _DEPLOYMENT_PARAMS:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            found = client.read_deployment(deployment_id)
        _DEPLOYMENT_PARAMS[deployment_id] = dict((found.parameters or {}).get("params") or {})
    return _DEPLOYMENT_PARAMS[deployment_id]


class RunParams(BaseModel):
    """What every fleetcast flow accepts: where the data lives, and how long to wait for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_form_schema)

    @model_validator(mode="before")
    @classmethod
    def _merge_deployment_defaults(cls, data: Any) -> Any:
        """Fields a deployment run did not give come from the deployment's ``params``."""
        if not isinstance(data, dict):
            return data
        defaults = {k: v for k, v in deployment_defaults().items() if k in cls.model_fields}
        return {**defaults, **data} if defaults else data

    game_type: GameType | None = Field(
        default=None, description="Game type to run for; empty = every game type"
    )
    db: str | None = Field(
        default=None,
        description="DuckDB file; empty = $FLEETCAST_DB on the worker (default fleetcast.duckdb)",
    )
    landing: str | None = Field(
        default=None,
        description="Landing folder; empty = $FLEETCAST_LANDING on the worker (default landing/)",
    )
    aws_endpoint: str | None = Field(
        default=None,
        description="AWS endpoint override for a local stand-in (moto); empty = real AWS",
    )
    aws_credentials_block: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,99}$",
        description="A Prefect AwsCredentials block (prefect-aws) holding the AWS access; "
        "empty = $FLEETCAST_AWS_CREDENTIALS_BLOCK on the worker, else the standard chain "
        "(environment, profile, instance or task role)",
    )
    lock_wait_minutes: float = Field(
        default=10,
        ge=0,
        le=120,
        description="How long to wait for another run writing the same DuckDB file; "
        "then this run ends Cancelled without touching anything",
    )

    @property
    def scope(self) -> str:
        """The game type or ``all``: used in run names and artifact keys."""
        return self.game_type or "all"


class ForecastAndScaleParams(RunParams):
    """Forecast the next hours, then plan (and in scale mode apply) each fleet's capacity."""

    horizon_hours: int = Field(
        default=48, ge=1, le=24 * 14, description="Hours to forecast from each series' last point"
    )
    series: SeriesScope = Field(
        default="capacity",
        description="Series to train and forecast: capacity = the metrics fleets are sized on "
        "(players, cpu, memory, network); demand = each fleet's demand metric only; all = every "
        "metric (slow: for the nightly retrain)",
    )
    approval_timeout_minutes: float = Field(
        default=30,
        gt=0,
        le=40,
        description="How long this run waits in the UI for an answer about the changes a "
        "fleet's approval rule held (fleetcast approval set); unanswered, they stay pending "
        "(fleetcast approve|reject) until their expiry, and nothing is applied",
    )
    capacity_mode: CapacityMode = Field(
        default="fleet_setting",
        description="fleet_setting: each fleet's own mode (forecast_only or scale); "
        "forecast_only: record decisions, change nothing in AWS",
    )
    aws_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Fleets applied at once; empty = $FLEETCAST_AWS_CONCURRENCY on the worker "
        "(default 8)",
    )
    observed_max_age_minutes: int | None = Field(
        default=None,
        ge=1,
        description="Observed demand older than this is not used as the reactive floor; empty = "
        "$FLEETCAST_OBSERVED_MAX_AGE_MINUTES on the worker (default 120)",
    )


class PipelineParams(ForecastAndScaleParams):
    """The whole cycle: ingest -> train (if due) -> forecast -> plan and apply."""

    ingest: bool = Field(default=True, description="Ingest new files from the landing folder first")
    retrain: RetrainPolicy = Field(
        default="if_due",
        description="if_due: train when the newest model is older than retrain_after_hours "
        "(or there is none); always; never",
    )
    retrain_after_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="Age of the newest model that makes training due"
    )


class AccuracyParams(RunParams):
    """Score stored forecasts against the actuals that have arrived since."""


class BackfillParams(RunParams):
    """Re-run a date range: re-ingest, re-validate, re-forecast, re-score; safe to run twice."""

    start: date = Field(description="First day (UTC) of landing files to re-ingest")
    end: date = Field(description="Last day (UTC), inclusive")
    horizon_hours: int = Field(
        default=48, ge=1, le=24 * 14, description="Hours to forecast from each series' last point"
    )
    reforecast: Literal["if_changed", "always"] = Field(
        default="if_changed",
        description="if_changed: forecast and re-score only when this backfill stored new data "
        "(or no forecast exists yet), so a second run changes nothing; always: also after a "
        "model change (adds a new forecast run)",
    )
    replay_decisions: bool = Field(
        default=False,
        description="Also replay capacity decisions over the range, per fleet, into plan CSVs "
        "under the reports folder (recorded, never applied)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackfillParams:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days > 366:
            raise ValueError("a backfill covers at most 366 days; split it into several runs")
        return self
